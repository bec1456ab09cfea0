//! The git-relay binary under test.

use std::process::Command;

/// Variables that would point git-relay somewhere other than where a test
/// says: proxies (the test servers are on loopback and must be reached
/// directly) and trust-store overrides (TLS tests pass their CA explicitly).
const AMBIENT: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// A command for the git-relay binary built by cargo for these tests, with
/// the ambient environment that could change its behaviour removed: its own
/// `GIT_RELAY_*` settings, proxies and CA overrides.
pub fn relay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_git-relay"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIT_RELAY_") {
            cmd.env_remove(&name);
        }
    }
    for name in AMBIENT {
        cmd.env_remove(name);
    }
    cmd
}

//! Child processes without the secrets of ours.
//!
//! git-relay takes tokens from its environment (`GIT_RELAY_*_TOKEN`, and on
//! an Azure Pipelines agent `SYSTEM_ACCESSTOKEN`, the task's `INPUT_*`
//! values and the `ENDPOINT_AUTH_*` service connections), and a proxy URL
//! may carry a password. A child inherits
//! the environment by default, and a child such as `git upload-pack` runs
//! hooks, pagers and helpers of the repository's choosing, so every process
//! git-relay starts is made here, with those variables removed: a token
//! reaches a server only through our own HTTP client.

use std::ffi::OsStr;
use std::process::Command;

/// Prefixes of the variables that hold credentials, or may (a task input can
/// carry a token; git-relay's own settings name usernames and tokens).
const SECRET_PREFIXES: &[&str] = &["GIT_RELAY_", "INPUT_", "ENDPOINT_AUTH_"];

/// Whole names of further credential variables.
const SECRET_NAMES: &[&str] = &[
    "SYSTEM_ACCESSTOKEN",
    "AGENT_PROXYUSERNAME",
    "AGENT_PROXYPASSWORD",
];

/// Proxy variables, secret when their URL names a user (and so, usually, a
/// password).
const PROXY_NAMES: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"];

/// A command for `program` whose environment is ours minus every variable
/// that could hold a credential.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, value) in std::env::vars_os() {
        if is_secret(&name, &value) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Names compare without case: Windows variables are case-insensitive, and
/// the agent's may arrive in either case.
fn is_secret(name: &OsStr, value: &OsStr) -> bool {
    let name = name.to_string_lossy().to_ascii_uppercase();
    SECRET_PREFIXES.iter().any(|p| name.starts_with(p))
        || SECRET_NAMES.contains(&name.as_str())
        || (PROXY_NAMES.contains(&name.as_str()) && value.to_string_lossy().contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_secret_and_the_rest_is_not() {
        for name in [
            "GIT_RELAY_SOURCE_TOKEN",
            "git_relay_dest_token",
            "INPUT_DESTINATIONGITREPOSITORYPERSONALACCESSTOKEN",
            "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN",
            "System_AccessToken",
        ] {
            assert!(is_secret(OsStr::new(name), OsStr::new("x")), "{name}");
        }
        for name in ["PATH", "HOME", "GIT_PROTOCOL", "GIT_DIR", "SYSTEM_DEBUG"] {
            assert!(!is_secret(OsStr::new(name), OsStr::new("x")), "{name}");
        }
        let proxy = |value| is_secret(OsStr::new("https_proxy"), OsStr::new(value));
        assert!(proxy("http://user:pass@proxy.example:3128"));
        assert!(!proxy("http://proxy.example:3128"));
    }
}

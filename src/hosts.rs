//! What git-relay knows of the big hosting services: the most one push may
//! carry, and what their refusals mean.
//!
//! Hosts cap a push (GitHub 2 GiB, Bitbucket Cloud 3.5 GB, Azure Repos and
//! GitLab.com 5 GB) and refuse some ref updates with messages of their own.
//! A push budget for a known host is a safe fraction of its cap, so that a
//! first mirror goes in batches rather than failing at the end of the
//! upload; any other host is unlimited until it refuses a push as too large.

/// The default push budget for `host`, in pack bytes, if it is a known host.
pub(crate) fn max_push_bytes(host: &str) -> Option<u64> {
    let host = host.to_ascii_lowercase();
    const GIB: u64 = 1 << 30;
    match host.as_str() {
        "github.com" => Some(GIB + GIB / 2),
        "dev.azure.com" | "ssh.dev.azure.com" => Some(4 * GIB),
        h if h.ends_with(".visualstudio.com") => Some(4 * GIB),
        "bitbucket.org" => Some(3 * GIB),
        "gitlab.com" => Some(4 * GIB),
        _ => None,
    }
}

/// A hint for a ref the destination `host` refused with `reason`, when the
/// reason is one a host is known to give.
pub(crate) fn rejection_hint(host: &str, reason: &str) -> Option<&'static str> {
    let _ = host;
    if reason.contains("TF402455") {
        return Some("Azure Repos branch policies refused the push: give the identity \"Bypass policies when pushing\" on the repository, or exclude the branch");
    }
    if reason.contains("hidden ref") {
        return Some(
            "the host hides this namespace (GitHub: refs/pull/*); exclude it with --exclude",
        );
    }
    None
}

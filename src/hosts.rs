//! What git-relay knows of the big hosting services: the most one push may
//! carry, and what their refusals mean.
//!
//! Hosts cap a push (GitHub 2 GiB, Bitbucket Cloud 3.5 GB, Azure Repos and
//! GitLab.com 5 GB) and refuse some ref updates with messages of their own.
//! A push budget for a known host is a safe fraction of its cap, so that a
//! first mirror goes in batches rather than failing at the end of the
//! upload; any other host is unlimited until it refuses a push as too large.
//!
//! The engine asks [`max_push_bytes`] when the user gave no
//! `--dest-max-push-bytes`, and [`rejection_hint`] for every ref a
//! destination refuses. Refusals are matched on the words hosts are seen to
//! send (in report-status `ng` reasons and in `remote:` side-band lines);
//! nothing here depends on a host being what it claims: a wrong guess costs
//! a hint, never a decision.

const GIB: u64 = 1 << 30;
const GB: u64 = 1_000_000_000;

/// A hosting service whose push cap is published.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KnownHost {
    /// The service, for messages.
    pub(crate) name: &'static str,
    /// The most one push may carry, as the service states it.
    pub(crate) push_cap: u64,
}

impl KnownHost {
    /// The budget git-relay keeps to by default: four fifths of the cap.
    ///
    /// Why not the cap itself: the engine counts the pack, while a host
    /// counts its request (ref commands and framing too) and may round its
    /// own figure differently (GitHub has written its limit both as 2 GB
    /// and 2 GiB); a batch's size is also known only from the source's
    /// packs, which differ a little from one request to the next. A fifth
    /// of headroom covers all of that; the cost is a few more pushes on a
    /// first mirror of a huge repository, where a refused push would cost a
    /// whole upload.
    pub(crate) fn budget(&self) -> u64 {
        self.push_cap / 5 * 4
    }
}

const GITHUB: KnownHost = KnownHost {
    name: "GitHub",
    push_cap: 2 * GIB,
};
const AZURE_REPOS: KnownHost = KnownHost {
    name: "Azure Repos",
    push_cap: 5 * GB,
};
const BITBUCKET_CLOUD: KnownHost = KnownHost {
    name: "Bitbucket Cloud",
    push_cap: 3 * GB + GB / 2,
};
const GITLAB_COM: KnownHost = KnownHost {
    name: "GitLab.com",
    push_cap: 5 * GB,
};

/// The known host at `host` (a URL's host name), if it is one.
pub(crate) fn known(host: &str) -> Option<&'static KnownHost> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match host.as_str() {
        "github.com" => Some(&GITHUB),
        "dev.azure.com" => Some(&AZURE_REPOS),
        // The old Azure DevOps Services URLs, ORG.visualstudio.com.
        h if h.ends_with(".visualstudio.com") => Some(&AZURE_REPOS),
        "bitbucket.org" => Some(&BITBUCKET_CLOUD),
        "gitlab.com" => Some(&GITLAB_COM),
        _ => None,
    }
}

/// The default push budget for `host`, in pack bytes, if it is a known host.
pub(crate) fn max_push_bytes(host: &str) -> Option<u64> {
    known(host).map(KnownHost::budget)
}

/// A hint for a ref the destination `host` refused with `reason`, when the
/// reason is one a host is known to give. `reason` may be the report-status
/// reason, the server's `remote:` lines, or both joined.
pub(crate) fn rejection_hint(host: &str, reason: &str) -> Option<&'static str> {
    let reason = reason.to_ascii_lowercase();
    let has = |words: &str| reason.contains(words);
    let host = known(host).map(|h| h.name);
    // Most specific first: a GitHub refusal also ends in "hook declined".
    Some(if has("tf402455") {
        // Azure Repos branch policies (e.g. "require a pull request").
        "Azure Repos branch policies refused the push: give the identity \"Bypass policies when pushing\" (and \"Force push\" for rewritten history) on the repository or branch, or leave the branch out with --exclude"
    } else if has("deny updating a hidden ref") {
        // git's own refusal, sent for namespaces a host hides: GitHub's
        // refs/pull/*, GitLab's refs/merge-requests/*.
        "the destination hides this namespace (GitHub refs/pull/*, GitLab refs/merge-requests/*) and no push may write it; leave it out with --exclude, or drop an --include that brought it in"
    } else if has("without `workflow` scope") || has("without `workflows` permission") {
        "GitHub refuses changes under .github/workflows from a token without the workflow permission: give a classic token the `workflow` scope, a fine-grained token \"Workflows: Read and write\", or a GitHub App the workflows permission"
    } else if has("can not update more than") {
        // A ruleset's "Restrict updates per push" (GH013 in remote: lines).
        "a GitHub ruleset limits how many branches or tags one push may update: set --max-ref-updates (task input maxRefUpdates) to its number, or add the pushing identity to the ruleset's bypass list"
    } else if has("gh013") || has("repository rule violations") {
        "GitHub repository rules (rulesets) refused the update: add the pushing identity to the ruleset's bypass list, or leave the ref out with --exclude"
    } else if has("gh006") || has("protected branch hook declined") {
        "GitHub branch protection refused the update: allow the pushing identity to bypass the protection (and allow force pushes for rewritten history), or leave the branch out with --exclude"
    } else if has("gh003") {
        "GitHub refuses force pushes to this branch: allow force pushes in its protection rule or ruleset, or leave the branch out with --exclude"
    } else if has("not allowed to force push") {
        "GitLab refuses force pushes to this protected branch: turn on \"Allowed to force push\" for it (Settings > Repository > Protected branches), or unprotect it while mirroring"
    } else if has("not allowed to push code to protected branches")
        || (has("protected branch") && host == Some("GitLab.com"))
    {
        "GitLab refused a push to a protected branch: the pushing identity needs a role listed under \"Allowed to push and merge\" (usually Maintainer)"
    } else if has("branch restriction")
        || (has("pre-receive hook declined") && host == Some("Bitbucket Cloud"))
    {
        "Bitbucket branch restrictions refused the update: add the pushing user to the branch's write access and allow rewriting history, or leave the branch out with --exclude"
    } else if has("pack exceeds maximum allowed size") {
        "the destination refused the push as too large: lower --dest-max-push-bytes (task input destMaxPushBytes) so that each push stays under its limit"
    } else if has("pre-receive hook declined") || has("hook declined") {
        "a server-side hook of the destination refused the update; the server's message says why (branch protection, push rules, file size)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_and_their_budgets() {
        assert_eq!(max_push_bytes("github.com"), Some(2 * GIB / 5 * 4));
        assert_eq!(max_push_bytes("GitHub.com."), max_push_bytes("github.com"));
        assert_eq!(max_push_bytes("dev.azure.com"), Some(4 * GB));
        assert_eq!(max_push_bytes("fabrikam.visualstudio.com"), Some(4 * GB));
        assert_eq!(max_push_bytes("bitbucket.org"), Some(2_800_000_000));
        assert_eq!(max_push_bytes("gitlab.com"), Some(4 * GB));
        for other in [
            "gitlab.example.com",
            "github.example.com",
            "visualstudio.com",
            "notgithub.com",
            "127.0.0.1",
            "",
        ] {
            assert_eq!(max_push_bytes(other), None, "{other}");
        }
    }

    #[test]
    fn every_budget_is_under_its_cap() {
        for host in ["github.com", "dev.azure.com", "bitbucket.org", "gitlab.com"] {
            let known = known(host).unwrap();
            assert!(known.budget() < known.push_cap, "{host}");
            assert!(known.budget() >= known.push_cap / 2, "{host}");
        }
    }

    fn hint(host: &str, reason: &str) -> &'static str {
        rejection_hint(host, reason).unwrap_or_else(|| panic!("no hint for {reason}"))
    }

    #[test]
    fn azure_branch_policies() {
        let reason = "TF402455: Pushes to this branch are not permitted; you must use a pull request to update this branch.";
        assert!(hint("dev.azure.com", reason).contains("Bypass policies when pushing"));
    }

    #[test]
    fn github_refusals() {
        assert!(hint("github.com", "deny updating a hidden ref").contains("--exclude"));
        assert!(hint("github.com", "protected branch hook declined").contains("branch protection"));
        assert!(hint(
            "github.com",
            "GH006: Protected branch update failed for refs/heads/main."
        )
        .contains("branch protection"));
        assert!(hint(
            "github.com",
            "push declined due to repository rule violations"
        )
        .contains("bypass list"));
        assert!(hint(
            "github.com",
            "GH013: Repository rule violations found for refs/heads/main."
        )
        .contains("rulesets"));
        let workflow = "refusing to allow a Personal Access Token to create or update workflow `.github/workflows/ci.yml` without `workflow` scope";
        assert!(hint("github.com", workflow).contains("Workflows: Read and write"));
        let app = "refusing to allow a GitHub App to create or update workflow `.github/workflows/ci.yml` without `workflows` permission";
        assert!(hint("github.com", app).contains("workflow"));
        let per_push = "GH013: Repository rule violations found for refs/heads/a.\n- Pushes can not update more than 5 branches or tags.";
        assert!(hint("github.com", per_push).contains("--max-ref-updates"));
    }

    #[test]
    fn gitlab_refusals() {
        let force =
            "GitLab: You are not allowed to force push code to a protected branch on this project.";
        assert!(hint("gitlab.com", force).contains("Allowed to force push"));
        let push =
            "GitLab: You are not allowed to push code to protected branches on this project.";
        assert!(hint("gitlab.example.com", push).contains("Maintainer"));
        assert!(hint("gitlab.com", "deny updating a hidden ref").contains("merge-requests"));
    }

    #[test]
    fn bitbucket_and_generic_refusals() {
        assert!(
            hint("bitbucket.org", "Branch restrictions prevented the push").contains("Bitbucket")
        );
        assert!(hint("bitbucket.org", "pre-receive hook declined").contains("Bitbucket"));
        // Elsewhere the same words are only a hook's refusal.
        assert!(hint("git.example.com", "pre-receive hook declined").contains("server's message"));
        assert!(hint("git.example.com", "hook declined").contains("server's message"));
        assert!(hint(
            "git.example.com",
            "unpack index-pack abnormal exit\nremote: fatal: pack exceeds maximum allowed size"
        )
        .contains("--dest-max-push-bytes"));
    }

    #[test]
    fn ordinary_refusals_get_no_hint() {
        for reason in [
            "non-fast-forward",
            "fetch first",
            "failed to lock",
            "",
            "stale info",
        ] {
            assert_eq!(rejection_hint("github.com", reason), None, "{reason}");
        }
    }
}

//! The command line's words turned into the task's: messages and hints
//! name flags (`--force`, `--proxy`), because the engine and the sign-in
//! modules speak to the command line, which most of their users have. In a
//! pipeline a flag the task does not have sends the reader looking for
//! it, so task mode rewrites every line it prints through [`in_task_words`]
//! to name the input that means the same.
//!
//! Whole phrases are rewritten first, where a flag's verb or its
//! environment variable would read wrongly once the flag became an input;
//! then every remaining flag with an input is replaced on its own. Flags
//! the task has no input for (`--retries`, `--low-speed-limit`) stay as
//! they are: they are still true of the binary the task runs.

/// Phrases rewritten as a whole, before single flags.
const PHRASES: &[(&str, &str)] = &[
    (
        "--source-app-key (or GIT_RELAY_SOURCE_APP_KEY)",
        "the input `sourceGitHubAppPrivateKey`",
    ),
    (
        "--dest-app-key (or GIT_RELAY_DEST_APP_KEY)",
        "the input `destinationGitHubAppPrivateKey`",
    ),
    (
        "--source-token / --dest-token (or GIT_RELAY_SOURCE_TOKEN / GIT_RELAY_DEST_TOKEN)",
        "the inputs `sourceGitRepositoryPersonalAccessToken` / `destinationGitRepositoryPersonalAccessToken` (or another authentication)",
    ),
    (
        "--source-token / --dest-token or GIT_RELAY_SOURCE_TOKEN / GIT_RELAY_DEST_TOKEN",
        "the inputs `sourceGitRepositoryPersonalAccessToken` / `destinationGitRepositoryPersonalAccessToken` (or another authentication)",
    ),
    (
        "rerun with --force to overwrite",
        "set the input `force` to true to overwrite",
    ),
    ("use --force to allow", "set the input `force` to true to allow"),
    (
        "use --proxy or HTTPS_PROXY",
        "set the input `proxyUrl` (or the agent's proxy settings)",
    ),
    (
        "check --proxy / HTTPS_PROXY / HTTP_PROXY and NO_PROXY",
        "check the input `proxyUrl` and the agent's proxy settings",
    ),
    (
        "--source-insecure / --dest-insecure skip verification",
        "setting `sourceVerifySSLCertificate` / `destinationVerifySSLCertificate` to false skips verification",
    ),
    ("--ca-file (or SSL_CERT_FILE)", "the input `caCertificateFile`"),
    (
        "--source-ssh-key / --dest-ssh-key (or its text in GIT_RELAY_SOURCE_SSH_KEY / GIT_RELAY_DEST_SSH_KEY)",
        "the inputs `sourceSshKey` / `destinationSshKey`",
    ),
    (
        "--source-ssh-key / --dest-ssh-key",
        "the inputs `sourceSshKey` / `destinationSshKey`",
    ),
    (
        "with --ssh-known-hosts FILE (or its lines in GIT_RELAY_SSH_KNOWN_HOSTS; ",
        "in the inputs `sourceSshKnownHosts` / `destinationSshKnownHosts` (",
    ),
    (
        "with --ssh-accept-new-host-keys",
        "by setting `sourceSshAcceptNewHostKeys` / `destinationSshAcceptNewHostKeys` to true",
    ),
    ("kept (--no-prune)", "kept (prune: false)"),
    ("--lfs always", "lfs: always"),
    ("--dest-max-push-bytes (task input destMaxPushBytes)", "--dest-max-push-bytes"),
    ("--max-ref-updates (task input maxRefUpdates)", "--max-ref-updates"),
    ("--include/--exclude", "--include / --exclude"),
    ("drop an --include", "drop a pattern of --include"),
];

/// Flags and the inputs that mean the same.
const FLAGS: &[(&str, &str)] = &[
    ("force", "force"),
    ("proxy", "proxyUrl"),
    ("ca-file", "caCertificateFile"),
    ("timeout", "timeout"),
    ("deadline", "deadline"),
    ("allow-redirect-host", "allowRedirectHosts"),
    ("include", "includeRefs"),
    ("exclude", "excludeRefs"),
    ("dest-max-push-bytes", "destMaxPushBytes"),
    ("max-ref-updates", "maxRefUpdates"),
    ("lfs", "lfs"),
    ("lfs-jobs", "lfsJobs"),
    ("source-lfs-url", "sourceLfsUrl"),
    ("dest-lfs-url", "destinationLfsUrl"),
    ("source-token", "sourceGitRepositoryPersonalAccessToken"),
    ("dest-token", "destinationGitRepositoryPersonalAccessToken"),
    ("source-username", "sourceUsername"),
    ("dest-username", "destinationUsername"),
    ("source-app-id", "sourceGitHubAppId"),
    ("dest-app-id", "destinationGitHubAppId"),
    ("source-app-key", "sourceGitHubAppPrivateKey"),
    ("dest-app-key", "destinationGitHubAppPrivateKey"),
    ("source-app-api", "sourceGitHubAppApiUrl"),
    ("dest-app-api", "destinationGitHubAppApiUrl"),
    ("source-kind", "sourceKind"),
    ("dest-kind", "destinationKind"),
    ("dest-scope", "destinationScopeUri"),
    ("create-missing", "createMissing"),
    ("filter", "filter"),
    ("skip", "skip"),
    ("jobs", "jobs"),
    ("shard", "shard"),
    ("prune", "prune"),
    ("dry-run", "dryRun"),
];

/// `text` with the command line's flags replaced by the task's inputs.
pub(crate) fn in_task_words(text: &str) -> String {
    if !text.contains("--") {
        return text.to_owned();
    }
    let text = PHRASES
        .iter()
        .fold(text.to_owned(), |text, (phrase, words)| {
            text.replace(phrase, words)
        });
    replace_flags(&text)
}

/// Replaces each `--flag` that has an input by "the input `name`"; a flag
/// ends at the first character that cannot be part of one, so `--lfs`
/// never matches the start of `--lfs-jobs`.
fn replace_flags(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        // `--` inside a word (a ref such as `a--b`) is not a flag.
        let glued = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '/' | '.' | '_'));
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        let flag = after[..len].trim_end_matches('-');
        match FLAGS.iter().find(|(f, _)| *f == flag).filter(|_| !glued) {
            Some((_, input)) => {
                out.push_str("the input `");
                out.push_str(input);
                out.push('`');
                rest = &after[flag.len()..];
            }
            None => {
                out.push_str("--");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_and_proxy_hints_name_inputs() {
        assert_eq!(
            in_task_words("3 ref(s) protected: inspect them, then rerun with --force to overwrite"),
            "3 ref(s) protected: inspect them, then set the input `force` to true to overwrite"
        );
        assert_eq!(
            in_task_words("check the host; use --proxy or HTTPS_PROXY if a proxy is required"),
            "check the host; set the input `proxyUrl` (or the agent's proxy settings) if a proxy is required"
        );
        assert_eq!(
            in_task_words("the server stalled; raise --timeout if it is slow"),
            "the server stalled; raise the input `timeout` if it is slow"
        );
    }

    #[test]
    fn flags_given_with_their_input_are_named_once() {
        assert_eq!(
            in_task_words("lower --dest-max-push-bytes (task input destMaxPushBytes) below it"),
            "lower the input `destMaxPushBytes` below it"
        );
    }

    #[test]
    fn flags_match_whole_names_only() {
        assert_eq!(
            in_task_words("lower --lfs-jobs; --lfs: --lfs."),
            "lower the input `lfsJobs`; the input `lfs`: the input `lfs`."
        );
        // No input for it: left as the binary's flag.
        assert_eq!(
            in_task_words("raise --retries or --low-speed-limit"),
            "raise --retries or --low-speed-limit"
        );
        // Not a flag: inside a word, or a ref name.
        assert_eq!(in_task_words("refs/heads/a--force"), "refs/heads/a--force");
        assert_eq!(in_task_words("refs/heads/--force"), "refs/heads/--force");
        assert_eq!(in_task_words("no flags here"), "no flags here");
    }

    #[test]
    fn app_and_token_hints_name_inputs() {
        assert_eq!(
            in_task_words("pass --dest-app-key (or GIT_RELAY_DEST_APP_KEY)"),
            "pass the input `destinationGitHubAppPrivateKey`"
        );
        assert_eq!(
            in_task_words("give --source-app-id and --source-app-api"),
            "give the input `sourceGitHubAppId` and the input `sourceGitHubAppApiUrl`"
        );
        let hint = in_task_words("pass a valid one with --source-token / --dest-token (or GIT_RELAY_SOURCE_TOKEN / GIT_RELAY_DEST_TOKEN)");
        assert!(
            !hint.contains("--") && !hint.contains("GIT_RELAY"),
            "{hint}"
        );
        assert!(
            hint.contains("`sourceGitRepositoryPersonalAccessToken`"),
            "{hint}"
        );
    }

    #[test]
    fn every_engine_hint_about_refs_reads_as_inputs() {
        // The hints src/hosts.rs gives for refused pushes.
        let hint = in_task_words(
            "allow force pushes in its protection rule or ruleset, or leave the branch out with --exclude",
        );
        assert!(
            hint.ends_with("leave the branch out with the input `excludeRefs`"),
            "{hint}"
        );
        let hint =
            in_task_words("leave it out with --exclude, or drop an --include that brought it in");
        assert_eq!(
            hint,
            "leave it out with the input `excludeRefs`, or drop a pattern of the input `includeRefs` that brought it in"
        );
        assert_eq!(
            in_task_words("1 unchanged, 2 kept (--no-prune)"),
            "1 unchanged, 2 kept (prune: false)"
        );
    }

    #[test]
    fn ssh_hints_name_the_ssh_inputs() {
        use crate::transport::SshError;
        let unknown = SshError::HostKeyUnknown { host: "h".into() };
        let denied = SshError::PermissionDenied {
            detail: "publickey".into(),
        };
        for hint in [unknown.hint().unwrap(), denied.hint().unwrap()] {
            let words = in_task_words(hint);
            assert!(!words.contains("--"), "{words}");
            assert!(!words.contains("GIT_RELAY_"), "{words}");
        }
        assert_eq!(
            in_task_words(unknown.hint().unwrap()),
            "give the host's key in the inputs `sourceSshKnownHosts` / `destinationSshKnownHosts` \
             (`ssh-keyscan HOST` prints them, check them against the host's published fingerprints), \
             or trust it on first use by setting `sourceSshAcceptNewHostKeys` / \
             `destinationSshAcceptNewHostKeys` to true"
        );
    }
}

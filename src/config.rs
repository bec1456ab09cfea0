//! The configuration between the front ends and what they run: plain
//! values, no clap, no agent environment.
//!
//! `cli` (flags) and `pipelines` (the agent's `INPUT_*` variables) are
//! peers: each turns its input into these values, and neither imports the
//! other. A side's settings (`SideConfig`) become engine `Endpoint`s
//! here, by one set of rules, and a sweep of an organization takes a
//! [`SweepConfig`]. Defaults both front ends offer are written once: the
//! timeout here, the bounds on a server in `transport::Limits`, the number
//! of retries in `mirror::RetryPolicy`; sizes and the push limits are read
//! here by one set of rules, so a flag and its task input accept the same
//! text.

use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};

use crate::auth::entra::{self, EntraSettings};
use crate::auth::{CredentialSources, Credentials, Scheme};
use crate::forge::Kind;
use crate::mirror::{Endpoint, LfsMode, LfsOptions, PushBudget, PushLimits, RetryPolicy};
use crate::sweep::Shard;
use crate::transport::{Location, NetworkOptions};

/// Seconds to wait for a connection, and for data, unless told otherwise.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The timeouts accepted, in seconds: from one second to a day.
pub(crate) const TIMEOUT_SECS: RangeInclusive<u64> = 1..=86_400;

/// How one side signs in and is reached, whichever repository it names (a
/// sweep uses one for every repository of a side).
#[derive(Clone, Debug, Default)]
pub(crate) struct SideConfig {
    /// The token, from a flag, the environment or a service connection.
    pub(crate) token: Option<String>,
    /// The user name sent with the token (Basic).
    pub(crate) username: Option<String>,
    /// How the token is sent.
    pub(crate) scheme: Scheme,
    /// Where the side's credentials come from.
    pub(crate) sign_in: SignIn,
    /// TLS, proxy, timeout, redirect policy and limits.
    pub(crate) network: NetworkOptions,
}

/// Where a side's credentials come from (`--source-auth`, `--dest-auth`;
/// the task's service connections).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum SignIn {
    /// Installation tokens of a GitHub App (`--source-auth github-app`),
    /// for git, LFS and the API alike.
    GitHubApp(crate::auth::github_app::GitHubApp),
    /// The side's token, or the URL's password, sent as the side's
    /// `scheme` says.
    #[default]
    Token,
    /// Entra ID access tokens (`--source-auth entra`): workload identity or
    /// managed identity, as the environment and these settings say.
    Entra(EntraSettings, Shared),
    /// Short-lived tokens from a source the front end made (the task's
    /// Entra ID service connection): the same credentials, and so one
    /// token at a time, for every repository of the side and its forge API.
    Source(Credentials),
    /// A user name and password from `git credential fill` for the side's
    /// URL, reported back with `approve` / `reject`.
    CredentialHelper,
}

/// Credentials made once from a side's token source and shared by every
/// repository a sweep mirrors on that side, and by its forge API: one
/// token, refreshed once, rather than one per repository. Not part of the
/// value: two settings that are equal compare equal whatever they hold.
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<OnceLock<Credentials>>);

impl Shared {
    fn get_or_make(
        &self,
        make: impl FnOnce() -> Result<Credentials, String>,
    ) -> Result<Credentials, String> {
        if let Some(made) = self.0.get() {
            return Ok(made.clone());
        }
        let made = make()?;
        Ok(self.0.get_or_init(|| made).clone())
    }
}

impl PartialEq for Shared {
    fn eq(&self, _: &Shared) -> bool {
        true
    }
}

impl Eq for Shared {}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl SideConfig {
    /// The endpoint for `location` (what the user typed, or a clone URL a
    /// forge listed); `what` names the side in messages. Without a
    /// `default_username` a bare token goes with `git` (`x-access-token`
    /// for github.com); a sweep passes the one its forge documents.
    pub(crate) fn endpoint(
        &self,
        what: &str,
        location: &str,
        default_username: Option<&str>,
    ) -> Result<Endpoint, String> {
        if let Some(token) = &self.token {
            // Learn the secret before anything could print it.
            crate::auth::register_secret(token);
        }
        let location = Location::parse(location).map_err(|e| format!("{what}: {e}"))?;
        let credentials = match (&location, &self.sign_in) {
            // SSH signs in with the side's key (`NetworkOptions::ssh`).
            (Location::Local(_) | Location::Ssh { .. }, _) => None,
            (Location::Http { .. }, SignIn::Entra(..) | SignIn::Source(_)) => {
                self.signed_in(what)?
            }
            (
                Location::Http {
                    url,
                    username: url_username,
                    password,
                },
                SignIn::Token,
            ) => {
                let (mut username, mut token) = (self.username.as_deref(), self.token.as_deref());
                // Bitbucket Cloud: an API token comes with the account's
                // email, which its API takes and git does not.
                if url.host_str() == Some("bitbucket.org") && self.scheme == Scheme::Basic {
                    let api_token = crate::forge::api_token_for_git(
                        username.or(url_username.as_deref()),
                        token.or(password.as_deref()),
                    );
                    if let Some(secret) = api_token {
                        (username, token) = (Some(crate::forge::API_TOKEN_GIT_USER), Some(secret));
                    }
                }
                Credentials::resolve(&CredentialSources {
                    username,
                    token,
                    url_username: url_username.as_deref(),
                    url_password: password.as_deref(),
                    scheme: self.scheme,
                    default_username: default_username.unwrap_or(match url.host_str() {
                        Some("github.com") => "x-access-token",
                        _ => "git",
                    }),
                })
            }
            (
                Location::Http {
                    url,
                    username: url_username,
                    ..
                },
                SignIn::CredentialHelper,
            ) => {
                let username = (self.username.as_deref())
                    .filter(|u| !u.is_empty())
                    .or(url_username.as_deref());
                let helper = crate::auth::helper::CredentialHelper::new(url, username);
                Some(Credentials::from_source(std::sync::Arc::new(helper)))
            }
            (Location::Http { url, .. }, SignIn::GitHubApp(app)) => {
                Some(app.git_credentials(what, url, &self.network)?)
            }
        };
        Ok(Endpoint {
            location,
            credentials,
            network: self.network.clone(),
        })
    }

    /// The credentials of a side that signs in through a token source
    /// (`None` for a plain token), the same for git, LFS and the forge
    /// API; `what` names the side in messages.
    pub(crate) fn signed_in(&self, what: &str) -> Result<Option<Credentials>, String> {
        match &self.sign_in {
            SignIn::Token => Ok(None),
            SignIn::Entra(settings, shared) => shared
                .get_or_make(|| {
                    let env = |name: &str| std::env::var(name).ok();
                    let source = entra::source(what, settings, &env, &self.network)?;
                    Ok(Credentials::from_source(source))
                })
                .map(Some),
            SignIn::Source(credentials) => Ok(Some(credentials.clone())),
            // Asked per URL: the answer depends on the repository (and, for
            // an app, on the installation of its owner).
            SignIn::CredentialHelper | SignIn::GitHubApp(_) => Ok(None),
        }
    }
}

/// A forge scope: where repositories are listed or created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ForgeConfig {
    /// The organization, group or workspace URL, as typed.
    pub(crate) scope: String,
    /// The kind of forge; `None` infers it from a public host.
    pub(crate) kind: Option<Kind>,
    /// The API base, when it cannot be derived from the scope.
    pub(crate) api: Option<String>,
}

impl SideConfig {
    /// The credentials of a forge API at `api` about the account `owner`
    /// (a sweep's listing and creating), where the side signs in otherwise
    /// than with a token of its own; `None` for a token, which the sweep
    /// sends as each forge's API wants it. `what` names the side.
    pub(crate) fn api_sign_in(
        &self,
        what: &str,
        api: &url::Url,
        owner: &str,
    ) -> Option<Credentials> {
        match &self.sign_in {
            SignIn::GitHubApp(app) => Some(app.api_credentials(what, api, owner, &self.network)),
            // A token goes as each forge's API wants it.
            _ => None,
        }
    }
}

/// What a sweep of an organization does: `mirror-all`, and the task's
/// organization mode.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Where the repositories are listed.
    pub(crate) source_scope: ForgeConfig,
    /// Where each repository goes, with `{owner}`, `{project}`, `{repo}`.
    pub(crate) template: String,
    /// Where missing destinations are created, if they are.
    pub(crate) create_in: Option<ForgeConfig>,
    /// The source's credentials and network settings (API and git alike).
    pub(crate) source: SideConfig,
    /// The destination's.
    pub(crate) destination: SideConfig,
    /// Regular expressions on `project/repo`: any may match.
    pub(crate) filter: Vec<String>,
    /// Regular expressions on `project/repo` left out.
    pub(crate) skip: Vec<String>,
    /// Leave out archived repositories.
    pub(crate) skip_archived: bool,
    /// Leave out forks.
    pub(crate) skip_forks: bool,
    /// Mirror each repository's wiki too, as `{repo}.wiki`.
    pub(crate) include_wikis: bool,
    /// This machine's share of the repositories.
    pub(crate) shard: Option<Shard>,
    /// Repositories mirrored at once; `None` for the default.
    pub(crate) jobs: Option<u16>,
    /// Ref globs to include, as typed (checked for each repository).
    pub(crate) include: Vec<String>,
    /// Ref globs to leave alone.
    pub(crate) exclude: Vec<String>,
    /// Delete destination refs the source does not have.
    pub(crate) prune: bool,
    /// Overwrite destination-only history.
    pub(crate) force: bool,
    /// Change nothing; say what would change.
    pub(crate) dry_run: bool,
    /// How each repository's transient failures are retried.
    pub(crate) retry: RetryPolicy,
    /// What one push to each destination may carry.
    pub(crate) push: PushLimits,
    /// Whether and how each repository's LFS objects move (no per-side
    /// URL: each repository's LFS server is where git-lfs finds it).
    pub(crate) lfs: LfsOptions,
    /// Only the repositories whose clone URL this accepts (`git-relay
    /// serve` mirrors the one repository a webhook names); `None` for all.
    pub(crate) only: Option<Only>,
}

/// A choice of repositories by their clone URL, made by the caller.
#[derive(Clone)]
pub(crate) struct Only(pub(crate) Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Only {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Only(..)")
    }
}

/// A size in bytes: a whole number, optionally followed by a unit. `KiB`,
/// `MiB` and `GiB` (also `K`, `M`, `G`) are powers of 1024; `KB`, `MB` and
/// `GB` are powers of 1000, as hosts state their caps (Azure Repos' 5 GB).
/// Units are read without regard to case, and a space may separate them.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: use a number of bytes, or e.g. 64MiB"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{}` (use KiB, MiB, GiB, or KB, MB, GB for powers of 1000)",
                text[split..].trim()
            ))
        }
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `--dest-max-push-bytes` and the `destMaxPushBytes` input: a size, `0`
/// for no limit. Not given is [`PushBudget::HostDefault`].
pub(crate) fn parse_push_budget(text: &str) -> Result<PushBudget, String> {
    Ok(match parse_size(text)? {
        0 => PushBudget::Unlimited,
        n => PushBudget::Bytes(n),
    })
}

/// `--lfs` and the `lfs` input: `auto`, `always` or `never`.
pub(crate) fn parse_lfs_mode(text: &str) -> Result<LfsMode, String> {
    LfsMode::parse(text.trim())
}

/// `--source-lfs-url`, `--dest-lfs-url` and their inputs: an http(s) URL
/// without credentials (the side's token signs the LFS requests too).
pub(crate) fn parse_lfs_url(text: &str) -> Result<url::Url, String> {
    match crate::lfs::explicit_endpoint(text.trim())? {
        Location::Http {
            username: None,
            password: None,
            url,
        } => Ok(url),
        Location::Http { .. } => Err(
            "an LFS server URL takes no credentials: the side's token signs its requests".into(),
        ),
        Location::Local(_) | Location::Ssh { .. } => {
            Err("an LFS server URL must be http:// or https://".into())
        }
    }
}

/// `--lfs-jobs` and the `lfsJobs` input: objects moved at once, 1 to 64.
pub(crate) fn parse_lfs_jobs(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n @ 1..=64) => Ok(n),
        _ => Err(format!("{text:?}: give a number of objects from 1 to 64")),
    }
}

/// `--max-ref-updates` and the `maxRefUpdates` input: a whole number, at
/// least 1.
pub(crate) fn parse_max_ref_updates(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of ref updates per push, at least 1, got `{text}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_both_kinds_of_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("3500MB"), Ok(3_500_000_000));
        assert_eq!(parse_size("7kB"), Ok(7_000));
        assert_eq!(parse_size(" 10B "), Ok(10));
    }

    #[test]
    fn units_are_read_in_any_case() {
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("1GIB"), Ok(1 << 30));
        assert_eq!(parse_size("1gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("1Mb"), Ok(1_000_000));
    }

    #[test]
    fn garbage_and_overflow_are_refused_with_a_reason() {
        let unit = parse_size("1TB").unwrap_err();
        assert!(unit.contains("unknown unit `TB`"), "{unit}");
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("12 34").is_err());
        let overflow = parse_size("99999999999999GiB").unwrap_err();
        assert!(overflow.contains("too large"), "{overflow}");
        assert!(parse_size("18446744073709551616").is_err());
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn push_budget_zero_is_unlimited() {
        assert_eq!(parse_push_budget("0"), Ok(PushBudget::Unlimited));
        assert_eq!(parse_push_budget("0GiB"), Ok(PushBudget::Unlimited));
        assert_eq!(parse_push_budget("1GiB"), Ok(PushBudget::Bytes(1 << 30)));
        assert!(parse_push_budget("lots").is_err());
    }

    #[test]
    fn ref_updates_are_at_least_one() {
        assert_eq!(parse_max_ref_updates("5000"), Ok(5000));
        assert_eq!(parse_max_ref_updates("1"), Ok(1));
        assert!(parse_max_ref_updates("0").is_err());
        assert!(parse_max_ref_updates("-3").is_err());
        assert!(parse_max_ref_updates("many").is_err());
    }
}

#[cfg(test)]
mod bitbucket_tests {
    use super::*;
    use base64::Engine as _;

    fn git_login(side: &SideConfig, url: &str) -> String {
        let endpoint = side.endpoint("source", url, None).unwrap();
        let header = endpoint.credentials.unwrap().header().unwrap();
        let b64 = header.strip_prefix("Basic ").unwrap();
        let pair = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        String::from_utf8(pair).unwrap()
    }

    // Every token here is registered with the process's redactor, which
    // other tests share: none is short enough to mask their text.
    #[test]
    fn git_on_bitbucket_cloud_signs_an_api_token_in_with_the_static_user() {
        let side = |username: Option<&str>, token: &str| SideConfig {
            username: username.map(str::to_owned),
            token: Some(token.to_owned()),
            ..SideConfig::default()
        };
        let cloud = "https://bitbucket.org/ws/repo.git";
        let email = Some("dev@example.com");
        assert_eq!(
            git_login(&side(email, "api-tok-1"), cloud),
            "x-bitbucket-api-token-auth:api-tok-1"
        );
        assert_eq!(
            git_login(&side(None, "dev@example.com:api-tok-2"), cloud),
            "x-bitbucket-api-token-auth:api-tok-2"
        );
        // The email in the URL, the token in the environment.
        assert_eq!(
            git_login(
                &side(None, "api-tok-3"),
                "https://dev%40example.com@bitbucket.org/ws/repo.git"
            ),
            "x-bitbucket-api-token-auth:api-tok-3"
        );
        // An app password with the Bitbucket user name, and any other host,
        // as given.
        assert_eq!(git_login(&side(Some("dev"), "app-pw"), cloud), "dev:app-pw");
        assert_eq!(
            git_login(
                &side(email, "other-host-tok"),
                "https://git.example.com/r.git"
            ),
            "dev@example.com:other-host-tok"
        );
    }
}

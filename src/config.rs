//! The configuration between the front ends and what they run: plain
//! values, no clap, no agent environment.
//!
//! `cli` (flags) and `pipelines` (the agent's `INPUT_*` variables) are
//! peers: each turns its input into these values, and neither imports the
//! other. A side's settings ([`SideConfig`]) become engine `Endpoint`s
//! here, by one set of rules, and a sweep of an organization takes a
//! [`SweepConfig`]. Defaults both front ends offer are written once: the
//! timeout here, the bounds on a server in `transport::Limits`, the number
//! of retries in `mirror::RetryPolicy`.

use std::ops::RangeInclusive;

use crate::auth::{CredentialSources, Credentials, Scheme};
use crate::forge::Kind;
use crate::mirror::{Endpoint, RetryPolicy};
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
    /// TLS, proxy, timeout, redirect policy and limits.
    pub(crate) network: NetworkOptions,
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
        let credentials = match &location {
            Location::Http {
                url,
                username: url_username,
                password,
            } => Credentials::resolve(&CredentialSources {
                username: self.username.as_deref(),
                token: self.token.as_deref(),
                url_username: url_username.as_deref(),
                url_password: password.as_deref(),
                scheme: self.scheme,
                default_username: default_username.unwrap_or(match url.host_str() {
                    Some("github.com") => "x-access-token",
                    _ => "git",
                }),
            }),
            Location::Local(_) => None,
        };
        Ok(Endpoint {
            location,
            credentials,
            network: self.network.clone(),
        })
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
}

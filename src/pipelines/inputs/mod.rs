//! The task's inputs: reading them as the agent passes them, validating
//! them with messages that name the input, and turning them into engine
//! [`Options`](crate::mirror::Options) or a sweep's configuration.
//!
//! `environment` is how the agent passes them; `credentials` reads a
//! side's authentication; `repository` and `organization` read each
//! mode's inputs. What both modes share (the network inputs, booleans,
//! patterns, the collection of problems and secrets) is here.
//!
//! Reading never prints: the caller must first tell the agent every secret
//! found here (`Reading::secrets`), and only then report problems.

mod credentials;
mod environment;
mod organization;
mod repository;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use percent_encoding::utf8_percent_encode;

use crate::auth::{Credentials, USERINFO};
use crate::config;
use crate::mirror::{LfsOptions, PushBudget, PushLimits, RefSelection, DEFAULT_MAX_REF_UPDATES};
use crate::transport::{Deadline, Limits, Location, NetworkOptions, RedirectPolicy, SshOptions};
pub(crate) use environment::Environment;
pub(crate) use organization::read_organization;
pub(crate) use repository::read;

/// Every input the binary reads; task.json declares exactly these (a test
/// checks both directions).
pub const INPUTS: &[&str] = &[
    "sourceGitRepositoryUri",
    "sourceAuthentication",
    "sourceUsername",
    "sourceGitRepositoryPersonalAccessToken",
    "sourceServiceConnection",
    "sourceGitHubConnection",
    "sourceAzureReposConnection",
    "sourceAzureSubscription",
    "sourceGitHubAppId",
    "sourceGitHubAppPrivateKey",
    "sourceGitHubAppApiUrl",
    "sourceVerifySSLCertificate",
    "sourceSshKey",
    "sourceSshKnownHosts",
    "sourceSshAcceptNewHostKeys",
    "sourceGitRepositoryCloneDirectoryName",
    "destinationGitRepositoryUri",
    "destinationAuthentication",
    "destinationUsername",
    "destinationGitRepositoryPersonalAccessToken",
    "destinationServiceConnection",
    "destinationGitHubConnection",
    "destinationAzureReposConnection",
    "destinationAzureSubscription",
    "destinationGitHubAppId",
    "destinationGitHubAppPrivateKey",
    "destinationGitHubAppApiUrl",
    "destinationVerifySSLCertificate",
    "destinationSshKey",
    "destinationSshKnownHosts",
    "destinationSshAcceptNewHostKeys",
    "includeRefs",
    "excludeRefs",
    "prune",
    "force",
    "dryRun",
    "caCertificateFile",
    "proxyUrl",
    "timeout",
    "deadline",
    "allowRedirectHosts",
    "mode",
    "sourceScopeUri",
    "sourceKind",
    "destinationTemplate",
    "createMissing",
    "destinationScopeUri",
    "destinationKind",
    "filter",
    "skip",
    "skipArchived",
    "skipForks",
    "jobs",
    "shard",
    "destMaxPushBytes",
    "maxRefUpdates",
    "lfs",
    "lfsJobs",
    "sourceLfsUrl",
    "destinationLfsUrl",
    "failOn",
];

/// The values of the `failOn` pick list, as task.json lists them.
pub const FAIL_ON_CHOICES: &[&str] = &["rejected", "differences", "never"];

/// Which refs left different fail the task (input `failOn`). Errors (a
/// side unreachable, a ref that could not be sent) fail it whatever this
/// says: they are not differences the destination chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FailOn {
    /// Refs the destination refused fail the task, as the old task's
    /// failed push did; protected refs (destination-only commits kept
    /// because `force` is off) only make it succeed with issues.
    #[default]
    Rejected,
    /// Any ref left different, protected ones included, fails the task.
    Differences,
    /// Refused and protected refs only make the task succeed with issues.
    Never,
}

/// The inputs that hold secrets: an unexpanded `$(...)` in one of them is
/// reported without quoting it, since the rest of the value is secret.
const SECRET_INPUTS: &[&str] = &[
    "sourceGitRepositoryPersonalAccessToken",
    "destinationGitRepositoryPersonalAccessToken",
    "sourceGitHubAppPrivateKey",
    "destinationGitHubAppPrivateKey",
    "sourceSshKey",
    "destinationSshKey",
];

/// The values of the `lfs` pick list, as task.json lists them.
pub const LFS_CHOICES: &[&str] = &["auto", "always", "never"];

/// The values of the `mode` pick list, as task.json lists them.
pub const MODES: &[&str] = &["repository", "organization"];

/// The values of the forge kind pick lists, as task.json lists them:
/// `auto` infers the kind from the public hosts, the others are the names
/// `mirror-all --source-kind` takes.
pub const FORGE_KINDS: &[&str] = &[
    "auto",
    "azure-devops",
    "github",
    "gitlab",
    "bitbucket",
    "bitbucket-server",
    "gitea",
];

/// The values of the authentication pick lists, as task.json lists them.
pub const AUTHENTICATION_CHOICES: &[&str] = &[
    "token",
    "systemAccessToken",
    "serviceConnection",
    "gitHubConnection",
    "azureReposConnection",
    "entra",
    "gitHubApp",
];

/// A problem with one input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("input {input}: {message}")]
pub(crate) struct InputError {
    /// The input's name, as in task.json and YAML.
    pub(crate) input: &'static str,
    /// What is wrong and what to do.
    pub(crate) message: String,
}

/// What the inputs of a mode ask for.
#[derive(Debug)]
pub(crate) struct TaskConfig<T> {
    /// What to run: the engine options, or a sweep.
    pub(crate) run: T,
    /// How each side signs in, for the log: (source, destination).
    pub(crate) authentication: (String, String),
    /// Things worth telling the user that are not problems.
    pub(crate) notes: Vec<String>,
    /// Which refs left different fail the task.
    pub(crate) fail_on: FailOn,
}

/// The result of reading the inputs.
#[derive(Debug)]
pub(crate) struct Reading<T> {
    /// Every secret found, in every form in which it could be printed: the
    /// caller hands each to the agent before printing anything.
    pub(crate) secrets: Vec<String>,
    /// The configuration, or every problem found (not only the first).
    pub(crate) config: Result<TaskConfig<T>, Vec<InputError>>,
}

/// Collects problems and secrets while the inputs are read.
#[derive(Default)]
struct Collector {
    errors: Vec<InputError>,
    secrets: Vec<String>,
}

impl Collector {
    fn error(&mut self, input: &'static str, message: impl Into<String>) {
        self.errors.push(InputError {
            input,
            message: message.into(),
        });
    }

    /// Records a secret value in every printable form.
    fn secret(&mut self, raw: &str) {
        if !raw.is_empty() {
            self.secrets.extend(Credentials::bearer(raw).secret_forms());
        }
    }

    /// Records the password in a URL's user information, if any; whether
    /// the text is an http(s) URL.
    fn url_secret(&mut self, text: &str) -> bool {
        let Ok(Location::Http { password, .. }) = Location::parse(text) else {
            return false;
        };
        self.secret(password.as_deref().unwrap_or(""));
        true
    }

    /// An optional input: `None` when not given, else what `parse` makes
    /// of it; a value it refuses is a problem with that input.
    fn parse<T>(
        &mut self,
        env: &Environment,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match env.input(name) {
            "" => None,
            text => parse(text).map_err(|e| self.error(name, e)).ok(),
        }
    }

    /// The end of reading either mode: the secrets found, each once, and
    /// what to run (with how each side signs in) unless a problem was found.
    fn finish<T>(mut self, env: &Environment, run: Option<(T, (String, String))>) -> Reading<T> {
        let clone_directory = env.input("sourceGitRepositoryCloneDirectoryName");
        let notes = Vec::from_iter((!clone_directory.is_empty()).then(|| {
            "sourceGitRepositoryCloneDirectoryName is ignored: git-relay relays the git protocol between the two servers and clones nothing".to_owned()
        }));
        let fail_on = self.parse(env, "failOn", parse_fail_on).unwrap_or_default();
        self.unexpanded_variables(env);
        self.secrets.sort();
        self.secrets.dedup();
        let config = match run {
            Some((run, authentication)) if self.errors.is_empty() => Ok(TaskConfig {
                run,
                authentication,
                notes,
                fail_on,
            }),
            _ => Err(self.errors),
        };
        Reading {
            secrets: self.secrets,
            config,
        }
    }
}

impl Collector {
    /// Replaces the problems found with an input that still holds a
    /// `$(Variable)` by one that says so. The agent leaves a macro it
    /// cannot resolve as it is (a classic release pipeline has no
    /// `Build.*` variables, a variable group may not be linked), and the
    /// value then fails as a URL or a token for a reason that hides the
    /// real one.
    /// Only the inputs this run read are checked (see
    /// [`Environment::was_read`]); the ignored clone directory never is.
    fn unexpanded_variables(&mut self, env: &Environment) {
        let used = INPUTS
            .iter()
            .filter(|&&i| env.was_read(i) && i != "sourceGitRepositoryCloneDirectoryName");
        for &input in used {
            let Some(variable) = unexpanded_variable(env.input(input)) else {
                continue;
            };
            self.errors.retain(|e| e.input != input);
            let quoted = if SECRET_INPUTS.contains(&input) {
                "a variable reference".to_owned()
            } else {
                format!("`$({variable})`")
            };
            self.error(
                input,
                format!(
                    "still holds {quoted}, which no variable of this pipeline defined: \
                     define the variable (in a classic release pipeline, under Variables \
                     or a linked variable group; Build.* variables exist only in build \
                     pipelines) or set the input to the value itself"
                ),
            );
        }
    }
}

/// The name inside the first `$(name)` of `value`, when it has the shape
/// of a pipeline variable the agent would have expanded.
pub(crate) fn unexpanded_variable(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(at) = rest.find("$(") {
        let after = &rest[at + 2..];
        let end = after.find(')')?;
        let name = &after[..end];
        let is_variable = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if is_variable {
            return Some(name);
        }
        rest = after;
    }
    None
}

fn parse_fail_on(text: &str) -> Result<FailOn, String> {
    match text.to_ascii_lowercase().as_str() {
        "rejected" => Ok(FailOn::Rejected),
        "differences" => Ok(FailOn::Differences),
        "never" => Ok(FailOn::Never),
        _ => Err(format!(
            "unknown value `{text}`: use one of {}",
            FAIL_ON_CHOICES.join(", ")
        )),
    }
}

/// How a side signs in, for the log: a side left at "no token" whose URL
/// carries credentials signs in with those, and saying "no token" would
/// send the reader looking for a missing secret.
fn described_with_url(described: String, url: &str) -> String {
    if described == NO_TOKEN && url_has_credentials(url) {
        "credentials in the URL".to_owned()
    } else {
        described
    }
}

/// How a side without a token is described in the log.
const NO_TOKEN: &str = "no token";

/// Whether an http(s) URL carries its own credentials (a password or
/// token in its user information), which the engine then uses. A user
/// name alone (`https://org@dev.azure.com/...`, as Azure Repos shows its
/// clone URLs) is not a credential.
fn url_has_credentials(text: &str) -> bool {
    matches!(
        Location::parse(text),
        Ok(Location::Http { password: Some(p), .. }) if !p.is_empty()
    )
}

/// The network inputs, which both sides and both modes share; each side
/// then sets its own certificate check.
fn read_network(env: &Environment, c: &mut Collector) -> NetworkOptions {
    let timeout = read_timeout(env, c);
    // As `--deadline` reads it.
    let deadline = c.parse(env, "deadline", crate::store::archive::parse_age);
    let deadline = deadline.map(|d| Deadline::after(Instant::now(), d));
    NetworkOptions {
        ca_file: read_ca_file(env, c),
        insecure: false,
        proxy: read_proxy(env, c),
        timeout,
        redirects: RedirectPolicy::allowing(patterns(env, "allowRedirectHosts")),
        limits: Limits {
            deadline,
            ..Limits::default()
        },
        // Each side sets its own (see `side_network`).
        ssh: Default::default(),
    }
}

/// What one push to the destination may carry, read as the command line
/// reads `--dest-max-push-bytes` and `--max-ref-updates`; both modes share
/// it.
fn read_push(env: &Environment, c: &mut Collector) -> PushLimits {
    let max_bytes = c.parse(env, "destMaxPushBytes", config::parse_push_budget);
    let max_ref_updates = c.parse(env, "maxRefUpdates", config::parse_max_ref_updates);
    PushLimits {
        max_bytes: max_bytes.unwrap_or(PushBudget::HostDefault),
        max_ref_updates: max_ref_updates.unwrap_or(DEFAULT_MAX_REF_UPDATES),
    }
}

/// How LFS objects move, read as the command line reads `--lfs`,
/// `--lfs-jobs` and the LFS URLs (organization mode takes no URL: each
/// repository's server is where git-lfs looks).
fn read_lfs(env: &Environment, c: &mut Collector, urls: bool) -> LfsOptions {
    let defaults = LfsOptions::default();
    let mode = c.parse(env, "lfs", config::parse_lfs_mode);
    let jobs = c.parse(env, "lfsJobs", config::parse_lfs_jobs);
    let (source_url, dest_url) = match urls {
        true => (
            c.parse(env, "sourceLfsUrl", config::parse_lfs_url),
            c.parse(env, "destinationLfsUrl", config::parse_lfs_url),
        ),
        false => (None, None),
    };
    LfsOptions {
        mode: mode.unwrap_or(defaults.mode),
        source_url,
        dest_url,
        jobs: jobs.unwrap_or(defaults.jobs),
    }
}

/// One side's network settings: the shared ones, its certificate check and
/// its SSH settings.
fn side_network(network: &NetworkOptions, verify: bool, ssh: SshOptions) -> NetworkOptions {
    NetworkOptions {
        insecure: !verify,
        ssh,
        ..network.clone()
    }
}

/// What the task does, from the `mode` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskMode {
    /// One repository to another (the old task's job).
    Repository,
    /// Every repository of an organization, as `mirror-all`.
    Organization,
}

/// The `mode` input; an unknown value is an error naming the input.
pub(crate) fn task_mode(env: &Environment) -> Result<TaskMode, InputError> {
    match env.input("mode") {
        "" => Ok(TaskMode::Repository),
        v if v.eq_ignore_ascii_case("repository") => Ok(TaskMode::Repository),
        v if v.eq_ignore_ascii_case("organization") => Ok(TaskMode::Organization),
        other => Err(InputError {
            input: "mode",
            message: format!("unknown value `{other}`: use one of {}", MODES.join(", ")),
        }),
    }
}

fn read_bool(env: &Environment, name: &'static str, default: bool, c: &mut Collector) -> bool {
    c.parse(env, name, |v| match v {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("expected true or false, got `{other}`")),
    })
    .unwrap_or(default)
}

fn read_timeout(env: &Environment, c: &mut Collector) -> Duration {
    let (min, max) = config::TIMEOUT_SECS.into_inner();
    let secs = c.parse(env, "timeout", |text| {
        (text.parse().ok())
            .filter(|n| config::TIMEOUT_SECS.contains(n))
            .ok_or_else(|| {
                format!("expected a whole number of seconds from {min} to {max}, got `{text}`")
            })
    });
    Duration::from_secs(secs.unwrap_or(config::DEFAULT_TIMEOUT_SECS))
}

fn read_ca_file(env: &Environment, c: &mut Collector) -> Option<PathBuf> {
    let value = env.input("caCertificateFile");
    if value.is_empty() {
        return None;
    }
    let path = PathBuf::from(value);
    // The agent turns an empty filePath input into the sources directory,
    // so a directory means "not given".
    if path.is_dir() {
        return None;
    }
    if !path.is_file() {
        c.error("caCertificateFile", format!("no such file: {value}"));
        return None;
    }
    Some(path)
}

/// The proxy: the input, else the agent's own proxy settings (a
/// self-hosted agent behind a proxy passes them to every task), else none,
/// which lets the engine honour HTTPS_PROXY and friends.
fn read_proxy(env: &Environment, c: &mut Collector) -> Option<String> {
    let input = env.input("proxyUrl");
    if !input.is_empty() {
        c.url_secret(input);
        if !input.contains("://") {
            c.error("proxyUrl", "expected a URL such as http://proxy:3128");
        }
        return Some(input.to_owned());
    }
    let agent_proxy = env.var("AGENT_PROXYURL")?;
    let (Some(user), Some((scheme, rest))) = (
        env.var("AGENT_PROXYUSERNAME"),
        agent_proxy.split_once("://"),
    ) else {
        return Some(agent_proxy.to_owned());
    };
    let password = env.var("AGENT_PROXYPASSWORD").unwrap_or("");
    c.secret(password);
    let encoded = utf8_percent_encode(password, USERINFO).to_string();
    c.secret(&encoded);
    Some(format!(
        "{scheme}://{}:{encoded}@{rest}",
        utf8_percent_encode(user, USERINFO)
    ))
}

/// The multiLine pattern inputs: one pattern per line; blank lines and
/// `#` comments are skipped.
fn patterns(env: &Environment, name: &'static str) -> Vec<String> {
    env.input(name)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn read_selection(env: &Environment, c: &mut Collector) -> Option<RefSelection> {
    let include = patterns(env, "includeRefs");
    let exclude = patterns(env, "excludeRefs");
    // Checked one list at a time so the message names the right input.
    let include_ok = RefSelection::new(&include, &[]).map_err(|e| c.error("includeRefs", e));
    let exclude_ok = RefSelection::new(&[], &exclude).map_err(|e| c.error("excludeRefs", e));
    (include_ok.is_ok() && exclude_ok.is_ok())
        .then(|| RefSelection::new(&include, &exclude).ok())
        .flatten()
}

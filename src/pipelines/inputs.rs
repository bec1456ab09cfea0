//! The task's inputs: reading them as the agent passes them, validating
//! them with messages that name the input, and turning them into engine
//! [`Options`].
//!
//! The agent hands a task its inputs as environment variables: input
//! `fooBar` arrives as `INPUT_FOOBAR` (upper-cased, `.` and space as `_`),
//! with task.json's defaults already applied. A service connection input
//! holds only the connection's id; its URL and credentials arrive as
//! `ENDPOINT_URL_<id>`, `ENDPOINT_AUTH_<id>` (JSON) and
//! `ENDPOINT_AUTH_PARAMETER_<id>_<KEY>`. The pipeline's own token is the
//! `SYSTEMVSSCONNECTION` endpoint's `ACCESSTOKEN`.
//!
//! Reading never prints: the caller must first tell the agent every secret
//! found here ([`Reading::secrets`]), and only then report problems.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use percent_encoding::utf8_percent_encode;

use regex::Regex;

use crate::auth::{Credentials, Scheme, USERINFO};
use crate::config::{self, ForgeConfig, SideConfig, SweepConfig};
use crate::forge::Kind;
use crate::mirror::{Endpoint, Mode, Options, RefSelection, RetryPolicy};
use crate::sweep::{Shard, MAX_JOBS};
use crate::transport::{Deadline, Limits, Location, NetworkOptions, RedirectPolicy};

/// Every input the binary reads; task.json declares exactly these (a test
/// checks both directions).
pub const INPUTS: &[&str] = &[
    "sourceGitRepositoryUri",
    "sourceAuthentication",
    "sourceUsername",
    "sourceGitRepositoryPersonalAccessToken",
    "sourceServiceConnection",
    "sourceGitHubConnection",
    "sourceVerifySSLCertificate",
    "sourceGitRepositoryCloneDirectoryName",
    "destinationGitRepositoryUri",
    "destinationAuthentication",
    "destinationUsername",
    "destinationGitRepositoryPersonalAccessToken",
    "destinationServiceConnection",
    "destinationGitHubConnection",
    "destinationVerifySSLCertificate",
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
];

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
];

/// The environment the agent gave the task, looked up case-insensitively
/// (Windows variables are; endpoint ids arrive in either case).
#[derive(Clone, Debug, Default)]
pub(crate) struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// This process's environment.
    pub(crate) fn from_process() -> Environment {
        Environment::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An environment made of these pairs (for tests).
    pub(crate) fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_uppercase(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; unset and empty are the same to the agent.
    pub(crate) fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(&name.to_ascii_uppercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An input's value, trimmed, or "" when not given.
    pub(crate) fn input(&self, name: &str) -> &str {
        debug_assert!(
            INPUTS.contains(&name),
            "input {name} is not in INPUTS (and so not in task.json)"
        );
        self.var(&input_variable(name)).map(str::trim).unwrap_or("")
    }

    /// Whether a variable holds `true` (any case), as the agent writes booleans.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// One authorization parameter of an endpoint: the per-parameter variable
    /// first, then the `parameters` object of `ENDPOINT_AUTH_<id>`, keys
    /// compared without case as the agent's own helpers do.
    pub(crate) fn endpoint_parameter(&self, id: &str, key: &str) -> Option<String> {
        if let Some(value) = self.var(&format!("ENDPOINT_AUTH_PARAMETER_{id}_{key}")) {
            return Some(value.to_owned());
        }
        let auth: serde_json::Value =
            serde_json::from_str(self.var(&format!("ENDPOINT_AUTH_{id}"))?).ok()?;
        let parameters = auth
            .get("parameters")
            .or_else(|| auth.get("Parameters"))?
            .as_object()?;
        parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The authorization scheme of an endpoint, when the agent passed one.
    pub(crate) fn endpoint_scheme(&self, id: &str) -> Option<String> {
        if let Some(scheme) = self.var(&format!("ENDPOINT_AUTH_SCHEME_{id}")) {
            return Some(scheme.to_owned());
        }
        let auth: serde_json::Value =
            serde_json::from_str(self.var(&format!("ENDPOINT_AUTH_{id}"))?).ok()?;
        auth.get("scheme")
            .or_else(|| auth.get("Scheme"))?
            .as_str()
            .map(str::to_owned)
    }
}

/// The environment variable the agent uses for an input.
pub(crate) fn input_variable(name: &str) -> String {
    format!(
        "INPUT_{}",
        name.replace(['.', ' '], "_").to_ascii_uppercase()
    )
}

/// A problem with one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InputError {
    /// The input's name, as in task.json and YAML.
    pub(crate) input: &'static str,
    /// What is wrong and what to do.
    pub(crate) message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input {}: {}", self.input, self.message)
    }
}

/// What the inputs ask for.
#[derive(Debug)]
pub(crate) struct TaskConfig {
    /// The engine options.
    pub(crate) options: Options,
    /// How each side signs in, for the log: (source, destination).
    pub(crate) authentication: (String, String),
    /// Things worth telling the user that are not problems.
    pub(crate) notes: Vec<String>,
}

/// The result of reading the inputs.
#[derive(Debug)]
pub(crate) struct Reading {
    /// Every secret found, in every form in which it could be printed: the
    /// caller hands each to the agent before printing anything.
    pub(crate) secrets: Vec<String>,
    /// The configuration, or every problem found (not only the first).
    pub(crate) config: Result<TaskConfig, Vec<InputError>>,
}

/// The input names of one side.
struct SideInputs {
    side: &'static str,
    uri: &'static str,
    authentication: &'static str,
    username: &'static str,
    token: &'static str,
    service_connection: &'static str,
    github_connection: &'static str,
    verify: &'static str,
}

const SOURCE: SideInputs = SideInputs {
    side: "source",
    uri: "sourceGitRepositoryUri",
    authentication: "sourceAuthentication",
    username: "sourceUsername",
    token: "sourceGitRepositoryPersonalAccessToken",
    service_connection: "sourceServiceConnection",
    github_connection: "sourceGitHubConnection",
    verify: "sourceVerifySSLCertificate",
};

const DESTINATION: SideInputs = SideInputs {
    side: "destination",
    uri: "destinationGitRepositoryUri",
    authentication: "destinationAuthentication",
    username: "destinationUsername",
    token: "destinationGitRepositoryPersonalAccessToken",
    service_connection: "destinationServiceConnection",
    github_connection: "destinationGitHubConnection",
    verify: "destinationVerifySSLCertificate",
};

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

    /// The secrets found, each once, and the notes both modes give.
    fn finish(&mut self, env: &Environment) -> (Vec<String>, Vec<String>) {
        let mut notes = Vec::new();
        if !env
            .input("sourceGitRepositoryCloneDirectoryName")
            .is_empty()
        {
            notes.push("sourceGitRepositoryCloneDirectoryName is ignored: git-relay relays the git protocol between the two servers and clones nothing".to_owned());
        }
        let mut secrets = std::mem::take(&mut self.secrets);
        secrets.sort();
        secrets.dedup();
        (secrets, notes)
    }
}

/// The network inputs, which both sides and both modes share; each side
/// then sets its own certificate check.
fn read_network(env: &Environment, c: &mut Collector) -> NetworkOptions {
    let timeout = read_timeout(env, c);
    let deadline = read_deadline(env, c).map(|d| Deadline::after(Instant::now(), d));
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
    }
}

/// One side's network settings: the shared ones and its certificate check.
fn side_network(network: &NetworkOptions, verify: bool) -> NetworkOptions {
    NetworkOptions {
        insecure: !verify,
        ..network.clone()
    }
}

/// Reads and validates every input.
pub(crate) fn read(env: &Environment) -> Reading {
    let mut c = Collector::default();
    let network = read_network(env, &mut c);
    let source = read_side(env, &SOURCE, &mut c, &network);
    let destination = read_side(env, &DESTINATION, &mut c, &network);
    let selection = read_selection(env, &mut c);
    let prune = read_bool(env, "prune", true, &mut c);
    let force = read_bool(env, "force", false, &mut c);
    let dry_run = read_bool(env, "dryRun", false, &mut c);

    let (secrets, notes) = c.finish(env);
    let config = match (source, destination, selection) {
        (Some(source), Some(destination), Some(selection)) if c.errors.is_empty() => {
            Ok(TaskConfig {
                authentication: (source.1, destination.1),
                options: Options {
                    source: source.0,
                    destination: destination.0,
                    selection,
                    prune,
                    force,
                    mode: if dry_run { Mode::DryRun } else { Mode::Mirror },
                },
                notes,
            })
        }
        _ => Err(c.errors),
    };
    Reading { secrets, config }
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

/// What the inputs ask for in organization mode.
#[derive(Debug)]
pub(crate) struct OrganizationConfig {
    /// The sweep, as `mirror-all` would run it.
    pub(crate) sweep: SweepConfig,
    /// How each side signs in, for the log: (source, destination).
    pub(crate) authentication: (String, String),
    /// Things worth telling the user that are not problems.
    pub(crate) notes: Vec<String>,
}

/// The result of reading the inputs of organization mode.
#[derive(Debug)]
pub(crate) struct OrganizationReading {
    /// As [`Reading::secrets`].
    pub(crate) secrets: Vec<String>,
    /// The configuration, or every problem found.
    pub(crate) config: Result<OrganizationConfig, Vec<InputError>>,
}

/// Reads and validates the inputs of organization mode. The credential,
/// selection, network, dry-run and force inputs mean what they mean in
/// repository mode; the repository URLs are not read.
pub(crate) fn read_organization(env: &Environment) -> OrganizationReading {
    let mut c = Collector::default();
    let network = read_network(env, &mut c);
    let source_verify = read_bool(env, SOURCE.verify, true, &mut c);
    let dest_verify = read_bool(env, DESTINATION.verify, true, &mut c);
    let source = read_credentials(env, &SOURCE, &mut c);
    let destination = read_credentials(env, &DESTINATION, &mut c);
    // Validated as in repository mode; the sweep takes the patterns.
    let selection = read_selection(env, &mut c)
        .map(|_| (patterns(env, "includeRefs"), patterns(env, "excludeRefs")));
    let prune = read_bool(env, "prune", true, &mut c);
    let force = read_bool(env, "force", false, &mut c);
    let dry_run = read_bool(env, "dryRun", false, &mut c);

    let scope = required_url(
        env,
        "sourceScopeUri",
        "the organization, group or workspace to mirror, e.g. https://dev.azure.com/ORG",
        &mut c,
    );
    let source_kind = read_kind(env, "sourceKind", &mut c);
    let template = env.input("destinationTemplate");
    if template.is_empty() {
        c.error("destinationTemplate", "required: where each repository goes, e.g. https://github.com/acme-mirror/{project}-{repo}.git or a path on the agent such as $(Pipeline.Workspace)/backup/{project}/{repo}.git");
    } else if let Ok(Location::Http {
        password: Some(password),
        ..
    }) = Location::parse(template)
    {
        c.secret(&password);
    }
    let create_missing = read_bool(env, "createMissing", false, &mut c);
    let dest_scope = if create_missing {
        required_url(
            env,
            "destinationScopeUri",
            "with createMissing, the organization or group where missing repositories are created",
            &mut c,
        )
    } else {
        None
    };
    let dest_kind = read_kind(env, "destinationKind", &mut c);
    let filter = read_regexes(env, "filter", &mut c);
    let skip = read_regexes(env, "skip", &mut c);
    let skip_archived = read_bool(env, "skipArchived", false, &mut c);
    let skip_forks = read_bool(env, "skipForks", false, &mut c);
    let jobs = read_jobs(env, &mut c);
    let shard = read_shard(env, &mut c);

    // The same token serves the API and git, and git may send it with the
    // user name the forge documents: tell the agent every Basic form it
    // could take, since the agent masks only what it is told.
    for side in [&source, &destination].into_iter().flatten() {
        let Some(token) = &side.token else { continue };
        let mut users: Vec<&str> = FORGE_KINDS
            .iter()
            .filter_map(|k| Kind::from_name(k))
            .map(Kind::git_username)
            .collect();
        users.push("x-access-token");
        users.extend(side.username.as_deref());
        // As on the command line, `user:secret` names the user only when
        // no user name was given; otherwise the colon is the token's own.
        if let (None, Some((user, secret))) = (&side.username, token.split_once(':')) {
            users.push(user);
            c.secret(secret);
        }
        for user in users {
            c.secrets
                .extend(Credentials::basic(user, token.as_str()).secret_forms());
        }
    }

    let (secrets, notes) = c.finish(env);
    let config = match (source, destination, selection, scope) {
        (Some(source), Some(destination), Some(selection), Some(scope)) if c.errors.is_empty() => {
            let authentication = (source.described.clone(), destination.described.clone());
            Ok(OrganizationConfig {
                sweep: SweepConfig {
                    source_scope: ForgeConfig {
                        scope,
                        kind: source_kind,
                        api: None,
                    },
                    template: template.to_owned(),
                    create_in: dest_scope.map(|scope| ForgeConfig {
                        scope,
                        kind: dest_kind,
                        api: None,
                    }),
                    source: source.config(side_network(&network, source_verify)),
                    destination: destination.config(side_network(&network, dest_verify)),
                    filter,
                    skip,
                    skip_archived,
                    skip_forks,
                    shard,
                    jobs,
                    include: selection.0,
                    exclude: selection.1,
                    prune,
                    force,
                    dry_run,
                    retry: RetryPolicy::default(),
                },
                authentication,
                notes,
            })
        }
        _ => Err(c.errors),
    };
    OrganizationReading { secrets, config }
}

/// A required URL input; credentials in it are secrets.
fn required_url(
    env: &Environment,
    name: &'static str,
    what: &str,
    c: &mut Collector,
) -> Option<String> {
    let value = env.input(name);
    if value.is_empty() {
        c.error(name, format!("required: {what}"));
        return None;
    }
    match Location::parse(value) {
        Ok(Location::Http { password, .. }) => {
            if let Some(password) = password {
                c.secret(&password);
            }
            Some(value.to_owned())
        }
        _ => {
            c.error(
                name,
                format!("expected an https:// URL ({what}), got `{value}`"),
            );
            None
        }
    }
}

/// A forge kind pick list; `auto` (or nothing) leaves the kind to be
/// inferred from the URL.
fn read_kind(env: &Environment, name: &'static str, c: &mut Collector) -> Option<Kind> {
    match env.input(name) {
        "" | "auto" => None,
        value => match Kind::from_name(value) {
            Some(kind) => Some(kind),
            None => {
                c.error(
                    name,
                    format!(
                        "unknown value `{value}`: use one of {}",
                        FORGE_KINDS.join(", ")
                    ),
                );
                None
            }
        },
    }
}

/// A multiLine input of regular expressions, each checked here so that a
/// bad one is reported against its input.
fn read_regexes(env: &Environment, name: &'static str, c: &mut Collector) -> Vec<String> {
    let lines = patterns(env, name);
    for line in &lines {
        if let Err(e) = Regex::new(line) {
            c.error(
                name,
                format!("`{line}` is not a valid regular expression: {e}"),
            );
        }
    }
    lines
}

fn read_jobs(env: &Environment, c: &mut Collector) -> Option<u16> {
    match env.input("jobs") {
        "" => None,
        text => match text.parse::<u16>() {
            Ok(n) if (1..=MAX_JOBS).contains(&usize::from(n)) => Some(n),
            _ => {
                c.error(
                    "jobs",
                    format!("expected a whole number from 1 to {MAX_JOBS}, got `{text}`"),
                );
                None
            }
        },
    }
}

fn read_shard(env: &Environment, c: &mut Collector) -> Option<Shard> {
    match env.input("shard") {
        "" => None,
        text => match text.parse::<Shard>() {
            Ok(shard) => Some(shard),
            Err(e) => {
                c.error("shard", format!("{e}; in a matrix of N jobs use $(System.JobPositionInPhase)/$(System.TotalJobsInPhase)"));
                None
            }
        },
    }
}

/// Reads one side; returns the endpoint and how it signs in.
fn read_side(
    env: &Environment,
    names: &SideInputs,
    c: &mut Collector,
    network: &NetworkOptions,
) -> Option<(Endpoint, String)> {
    let verify = read_bool(env, names.verify, true, c);
    let credentials = read_credentials(env, names, c);
    let uri = env.input(names.uri);
    if uri.is_empty() {
        c.error(
            names.uri,
            format!("required: the URL of the {} repository", names.side),
        );
        return None;
    }
    // The URL is checked even when the credentials were not usable, so that
    // every problem is reported at once.
    let chosen = credentials.is_some();
    let credentials = credentials.unwrap_or_default();
    // The command line's own rules turn a URL and a token into credentials.
    let endpoint = credentials
        .config(side_network(network, verify))
        .endpoint(names.uri, uri, None)
        .map_err(|e| {
            let message = e
                .strip_prefix(&format!("{}: ", names.uri))
                .unwrap_or(&e)
                .to_owned();
            c.error(names.uri, message)
        })
        .ok()?;
    if let Location::Http {
        password: Some(password),
        ..
    } = &endpoint.location
    {
        c.secret(password);
    }
    if let Some(credentials) = &endpoint.credentials {
        c.secrets.extend(credentials.secret_forms());
    }
    chosen.then_some((endpoint, credentials.described))
}

/// What one side's authentication inputs amount to, before the URL is
/// taken into account.
#[derive(Default)]
struct SideCredentials {
    token: Option<String>,
    username: Option<String>,
    auth: Scheme,
    /// How the side signs in, for the log.
    described: String,
}

impl SideCredentials {
    /// The side's settings with these credentials.
    fn config(&self, network: NetworkOptions) -> SideConfig {
        SideConfig {
            token: self.token.clone(),
            username: self.username.clone(),
            scheme: self.auth,
            network,
        }
    }
}

/// A side's credentials from its authentication choice; `None` when the
/// choice cannot be honoured.
fn read_credentials(
    env: &Environment,
    names: &SideInputs,
    c: &mut Collector,
) -> Option<SideCredentials> {
    let choice = match env.input(names.authentication) {
        "" => "token",
        other => other,
    };
    let choice = AUTHENTICATION_CHOICES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(choice))
        .copied();
    match choice {
        Some("token") => {
            let token = env.input(names.token);
            c.secret(token);
            let username = Some(env.input(names.username)).filter(|u| !u.is_empty());
            let described = if token.is_empty() {
                "no token"
            } else {
                "personal access token"
            };
            Some(SideCredentials {
                token: Some(token.to_owned()).filter(|t| !t.is_empty()),
                username: username.map(str::to_owned),
                auth: Scheme::Basic,
                described: described.to_owned(),
            })
        }
        Some("systemAccessToken") => {
            let token = env
                .endpoint_parameter("SYSTEMVSSCONNECTION", "ACCESSTOKEN")
                .or_else(|| env.var("SYSTEM_ACCESSTOKEN").map(str::to_owned));
            match token {
                Some(token) => {
                    c.secret(&token);
                    Some(SideCredentials {
                        token: Some(token),
                        username: None,
                        auth: Scheme::Bearer,
                        described: "System.AccessToken (bearer)".to_owned(),
                    })
                }
                None => {
                    c.error(
                        names.authentication,
                        "systemAccessToken was chosen but the agent passed no System.AccessToken (ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN is not set); run on an Azure Pipelines agent, or map it with `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`",
                    );
                    None
                }
            }
        }
        Some(kind @ ("serviceConnection" | "gitHubConnection")) => {
            let input = if kind == "serviceConnection" {
                names.service_connection
            } else {
                names.github_connection
            };
            read_connection(env, input, kind == "gitHubConnection", c)
        }
        _ => {
            c.error(
                names.authentication,
                format!(
                    "unknown value `{}`: use one of {}",
                    env.input(names.authentication),
                    AUTHENTICATION_CHOICES.join(", ")
                ),
            );
            None
        }
    }
}

/// Reads the credentials of a service connection named by `input`.
fn read_connection(
    env: &Environment,
    input: &'static str,
    github: bool,
    c: &mut Collector,
) -> Option<SideCredentials> {
    let id = env.input(input);
    if id.is_empty() {
        c.error(
            input,
            "required when this authentication is chosen: the service connection to use",
        );
        return None;
    }
    let Some(scheme) = env.endpoint_scheme(id) else {
        c.error(
            input,
            format!("the agent passed no credentials for service connection {id}: check that it exists and that this pipeline is allowed to use it"),
        );
        return None;
    };
    if github {
        // A GitHub PAT connection names its parameter `accessToken`; OAuth
        // and token connections `AccessToken`: the lookup ignores case.
        let Some(token) = env.endpoint_parameter(id, "ACCESSTOKEN") else {
            c.error(input, format!("GitHub service connection {id} (scheme {scheme}) carries no access token; use a personal access token or OAuth connection"));
            return None;
        };
        c.secret(&token);
        let described = format!("GitHub service connection ({scheme})");
        return Some(SideCredentials {
            token: Some(token),
            username: Some("x-access-token".to_owned()),
            auth: Scheme::Basic,
            described,
        });
    }
    let password = env
        .endpoint_parameter(id, "PASSWORD")
        .or_else(|| env.endpoint_parameter(id, "ACCESSTOKEN"))
        .or_else(|| env.endpoint_parameter(id, "APITOKEN"));
    let Some(password) = password else {
        c.error(
            input,
            format!("service connection {id} (scheme {scheme}) carries no password or token"),
        );
        return None;
    };
    c.secret(&password);
    let username = env.endpoint_parameter(id, "USERNAME");
    Some(SideCredentials {
        token: Some(password),
        username,
        auth: Scheme::Basic,
        described: format!("service connection ({scheme})"),
    })
}

fn read_bool(env: &Environment, name: &'static str, default: bool, c: &mut Collector) -> bool {
    match env.input(name) {
        "" => default,
        v if v.eq_ignore_ascii_case("true") => true,
        v if v.eq_ignore_ascii_case("false") => false,
        other => {
            c.error(name, format!("expected true or false, got `{other}`"));
            default
        }
    }
}

fn read_timeout(env: &Environment, c: &mut Collector) -> Duration {
    let default = config::DEFAULT_TIMEOUT_SECS;
    let secs = match env.input("timeout") {
        "" => default,
        text => match text.parse::<u64>() {
            Ok(n) if config::TIMEOUT_SECS.contains(&n) => n,
            _ => {
                let (min, max) = config::TIMEOUT_SECS.into_inner();
                c.error(
                    "timeout",
                    format!("expected a whole number of seconds from {min} to {max}, got `{text}`"),
                );
                default
            }
        },
    };
    Duration::from_secs(secs)
}

/// The optional `deadline` input, as `--deadline` reads it.
fn read_deadline(env: &Environment, c: &mut Collector) -> Option<Duration> {
    match env.input("deadline") {
        "" => None,
        text => crate::store::archive::parse_age(text)
            .map_err(|e| c.error("deadline", e))
            .ok(),
    }
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
        if let Ok(Location::Http {
            password: Some(password),
            ..
        }) = Location::parse(input)
        {
            c.secret(&password);
        }
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
    let mut ok = true;
    if let Err(e) = RefSelection::new(&include, &[]) {
        c.error("includeRefs", e);
        ok = false;
    }
    if let Err(e) = RefSelection::new(&[], &exclude) {
        c.error("excludeRefs", e);
        ok = false;
    }
    if !ok {
        return None;
    }
    RefSelection::new(&include, &exclude).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        let mut all = vec![
            (
                "INPUT_SOURCEGITREPOSITORYURI",
                "https://org@dev.azure.com/org/p/_git/r",
            ),
            ("INPUT_SOURCEAUTHENTICATION", "token"),
            (
                "INPUT_DESTINATIONGITREPOSITORYURI",
                "https://github.com/acme/r.git",
            ),
            ("INPUT_DESTINATIONAUTHENTICATION", "token"),
            ("INPUT_PRUNE", "true"),
            ("INPUT_FORCE", "false"),
            ("INPUT_DRYRUN", "false"),
            ("INPUT_TIMEOUT", "60"),
        ];
        for (k, v) in pairs {
            all.retain(|(name, _)| name != k);
            all.push((k, v));
        }
        Environment::from_pairs(all.iter().map(|(k, v)| (*k, *v)))
    }

    fn errors(e: &Environment) -> Vec<InputError> {
        read(e).config.expect_err("invalid inputs")
    }

    #[test]
    fn variable_names_follow_the_agent() {
        assert_eq!(
            input_variable("sourceGitRepositoryUri"),
            "INPUT_SOURCEGITREPOSITORYURI"
        );
        assert_eq!(input_variable("a.b c"), "INPUT_A_B_C");
    }

    #[test]
    fn old_task_inputs_work() {
        let e = env(&[
            ("INPUT_SOURCEGITREPOSITORYPERSONALACCESSTOKEN", "src/tok@en"),
            (
                "INPUT_DESTINATIONGITREPOSITORYPERSONALACCESSTOKEN",
                "user:dst-token",
            ),
            ("INPUT_SOURCEVERIFYSSLCERTIFICATE", "false"),
        ]);
        let reading = read(&e);
        let config = reading.config.unwrap();
        let source = config.options.source.credentials.unwrap();
        assert_eq!(source.username(), "org");
        assert!(config.options.source.network.insecure);
        let dest = config.options.destination.credentials.unwrap();
        assert_eq!(dest.username(), "user");
        assert!(reading.secrets.iter().any(|s| s == "src/tok@en"));
        assert!(reading.secrets.iter().any(|s| s == "src%2Ftok%40en"));
        assert!(reading.secrets.iter().any(|s| s == "user:dst-token"));
        assert_eq!(config.options.mode, Mode::Mirror);
        assert!(config.options.prune);
    }

    #[test]
    fn system_access_token_is_a_bearer() {
        let e = env(&[
            ("INPUT_DESTINATIONAUTHENTICATION", "systemAccessToken"),
            (
                "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN",
                "sys-tok",
            ),
        ]);
        let reading = read(&e);
        let dest = reading
            .config
            .unwrap()
            .options
            .destination
            .credentials
            .unwrap();
        assert_eq!(dest.authorization(), "Bearer sys-tok");
        assert!(reading.secrets.contains(&"sys-tok".to_owned()));
    }

    #[test]
    fn missing_system_access_token_names_the_input() {
        let errs = errors(&env(&[("INPUT_SOURCEAUTHENTICATION", "systemAccessToken")]));
        assert_eq!(errs[0].input, "sourceAuthentication");
    }

    #[test]
    fn generic_connection_from_its_auth_json() {
        let id = "2f3c0a4e-1111-4222-8333-944445555666";
        let e = env(&[
            ("INPUT_DESTINATIONAUTHENTICATION", "serviceConnection"),
            ("INPUT_DESTINATIONSERVICECONNECTION", id),
            (
                &format!("ENDPOINT_AUTH_{id}"),
                r#"{"parameters":{"username":"bob","password":"pw;x"},"scheme":"UsernamePassword"}"#,
            ),
        ]);
        let reading = read(&e);
        let dest = reading
            .config
            .unwrap()
            .options
            .destination
            .credentials
            .unwrap();
        assert_eq!(dest.username(), "bob");
        assert!(reading.secrets.contains(&"pw;x".to_owned()));
    }

    #[test]
    fn github_connection_token_any_case() {
        let id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
        let e = env(&[
            ("INPUT_DESTINATIONAUTHENTICATION", "gitHubConnection"),
            ("INPUT_DESTINATIONGITHUBCONNECTION", id),
            (
                &format!("ENDPOINT_AUTH_SCHEME_{}", id.to_uppercase()),
                "PersonalAccessToken",
            ),
            (
                &format!("ENDPOINT_AUTH_PARAMETER_{id}_ACCESSTOKEN"),
                "ghp_x",
            ),
        ]);
        let dest = read(&e)
            .config
            .unwrap()
            .options
            .destination
            .credentials
            .unwrap();
        assert_eq!(dest.username(), "x-access-token");
    }

    #[test]
    fn every_problem_is_reported_with_its_input() {
        let errs = errors(&env(&[
            ("INPUT_DESTINATIONGITREPOSITORYURI", ""),
            ("INPUT_PRUNE", "yes"),
            ("INPUT_TIMEOUT", "0"),
            ("INPUT_DEADLINE", "soon"),
            ("INPUT_INCLUDEREFS", "main\nrefs/tags/*"),
            ("INPUT_SOURCEAUTHENTICATION", "ssh"),
            ("INPUT_DESTINATIONAUTHENTICATION", "serviceConnection"),
        ]));
        let named: Vec<&str> = errs.iter().map(|e| e.input).collect();
        for input in [
            "timeout",
            "deadline",
            "sourceAuthentication",
            "destinationServiceConnection",
            "includeRefs",
            "prune",
        ] {
            assert!(named.contains(&input), "{input} missing from {errs:?}");
        }
    }

    #[test]
    fn allowed_redirect_hosts_reach_both_sides() {
        let e = env(&[(
            "INPUT_ALLOWREDIRECTHOSTS",
            "mirror.example.com\n\nOther.Example.com\n",
        )]);
        let options = read(&e).config.unwrap().options;
        let expected = RedirectPolicy::allowing(["mirror.example.com", "other.example.com"]);
        assert_eq!(options.source.network.redirects, expected);
        assert_eq!(options.destination.network.redirects, expected);
        let e = env(&[]);
        let options = read(&e).config.unwrap().options;
        assert_eq!(options.source.network.redirects, RedirectPolicy::default());
    }

    #[test]
    fn deadline_reaches_both_sides() {
        let e = env(&[("INPUT_DEADLINE", "30m")]);
        let options = read(&e).config.unwrap().options;
        for network in [&options.source.network, &options.destination.network] {
            let deadline = network.limits.deadline.expect("a deadline");
            assert_eq!(deadline.allowed, Duration::from_secs(30 * 60));
        }
        let e = env(&[]);
        assert_eq!(
            read(&e)
                .config
                .unwrap()
                .options
                .source
                .network
                .limits
                .deadline,
            None
        );
    }

    #[test]
    fn empty_destination_is_required() {
        let errs = errors(&env(&[("INPUT_DESTINATIONGITREPOSITORYURI", "")]));
        assert_eq!(errs[0].input, "destinationGitRepositoryUri");
    }

    #[test]
    fn directory_file_path_means_not_given() {
        let dir = std::env::temp_dir();
        let e = env(&[("INPUT_CACERTIFICATEFILE", dir.to_str().unwrap())]);
        assert!(read(&e)
            .config
            .unwrap()
            .options
            .source
            .network
            .ca_file
            .is_none());
        let e = env(&[("INPUT_CACERTIFICATEFILE", "/nonexistent/ca.pem")]);
        assert_eq!(errors(&e)[0].input, "caCertificateFile");
    }

    #[test]
    fn patterns_skip_blanks_and_comments() {
        let e = env(&[(
            "INPUT_INCLUDEREFS",
            "refs/heads/*\n\n  # tags too\nrefs/tags/v* \r\n",
        )]);
        assert_eq!(
            patterns(&e, "includeRefs"),
            ["refs/heads/*", "refs/tags/v*"]
        );
    }

    #[test]
    fn organization_inputs_become_a_sweep() {
        let e = env(&[
            ("INPUT_MODE", "organization"),
            ("INPUT_SOURCESCOPEURI", "https://dev.azure.com/fabrikam"),
            ("INPUT_SOURCEKIND", "auto"),
            ("INPUT_SOURCEGITREPOSITORYPERSONALACCESSTOKEN", "org-pat"),
            (
                "INPUT_DESTINATIONTEMPLATE",
                "https://github.com/acme-mirror/{project}-{repo}.git",
            ),
            (
                "INPUT_DESTINATIONGITREPOSITORYPERSONALACCESSTOKEN",
                "ghp_dst",
            ),
            ("INPUT_CREATEMISSING", "true"),
            (
                "INPUT_DESTINATIONSCOPEURI",
                "https://github.com/acme-mirror",
            ),
            ("INPUT_DESTINATIONKIND", "github"),
            ("INPUT_FILTER", "^Fabrikam/\n# comment\n"),
            ("INPUT_SKIP", "-old$"),
            ("INPUT_SKIPFORKS", "true"),
            ("INPUT_JOBS", "4"),
            ("INPUT_SHARD", "2/3"),
            ("INPUT_PRUNE", "false"),
            ("INPUT_DRYRUN", "true"),
        ]);
        assert_eq!(task_mode(&e), Ok(TaskMode::Organization));
        let reading = read_organization(&e);
        let sweep = reading.config.expect("valid inputs").sweep;
        assert_eq!(sweep.source_scope.scope, "https://dev.azure.com/fabrikam");
        assert_eq!(sweep.source_scope.kind, None);
        let create_in = sweep.create_in.expect("createMissing");
        assert_eq!(create_in.kind, Some(Kind::GitHub));
        assert!(sweep.skip_forks && !sweep.skip_archived);
        assert_eq!(sweep.filter, ["^Fabrikam/"]);
        assert_eq!(sweep.skip, ["-old$"]);
        assert_eq!(sweep.jobs, Some(4));
        assert_eq!(sweep.shard.map(|s| s.to_string()).as_deref(), Some("2/3"));
        assert!(!sweep.prune && sweep.dry_run && !sweep.force);
        assert_eq!(sweep.destination.token.as_deref(), Some("ghp_dst"));
        // The Basic forms git may send to each forge are secrets too.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghp_dst");
        assert!(reading.secrets.contains(&b64), "{:?}", reading.secrets);
        assert!(reading.secrets.contains(&"org-pat".to_owned()));
    }

    #[test]
    fn mode_defaults_to_repository() {
        assert_eq!(task_mode(&env(&[])), Ok(TaskMode::Repository));
        assert_eq!(
            task_mode(&env(&[("INPUT_MODE", "all")])).unwrap_err().input,
            "mode"
        );
    }

    #[test]
    fn agent_proxy_credentials_are_secret() {
        let e = env(&[
            ("AGENT_PROXYURL", "http://proxy:3128"),
            ("AGENT_PROXYUSERNAME", "me"),
            ("AGENT_PROXYPASSWORD", "p@ss"),
        ]);
        let reading = read(&e);
        assert!(reading.secrets.contains(&"p@ss".to_owned()));
        assert_eq!(
            reading
                .config
                .unwrap()
                .options
                .source
                .network
                .proxy
                .as_deref(),
            Some("http://me:p%40ss@proxy:3128")
        );
    }
}

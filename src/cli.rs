//! The command line: every flag, its documentation, and how flags become
//! engine [`Options`].
//!
//! Flags are defined once here, with the help text users read; nothing else
//! in the crate parses arguments. Tokens are accepted from flags but the
//! documented way is the environment (`GIT_RELAY_SOURCE_TOKEN`, ...), which
//! keeps them out of process listings; `--help` never shows their values.

// The doc comments of the flags are their `--help` text, written for a
// terminal: bare URLs and `<placeholders>` there are meant as they are.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::auth::entra::EntraSettings;
use crate::auth::github_app::{AppKey, GitHubApp};
use crate::auth::Scheme;
use crate::config::{self, ForgeConfig, SideConfig, SignIn, SweepConfig};
use crate::forge::Kind;
use crate::mirror::{
    LfsMode, LfsOptions, LocalOptions, LocalReader, Mode, Options, PushBudget, PushLimits,
    RefSelection, RetryPolicy, DEFAULT_MAX_REF_UPDATES,
};
use crate::sweep::Shard;
use crate::transport::{Deadline, Limits, Location, NetworkOptions, RedirectPolicy, SshOptions};

const EXAMPLES: &str = "\
Examples:
  # Back up this checkout into a local bare repository (offline):
  git-relay mirror . /tmp/backup.git

  # Azure Repos -> GitHub, tokens from the environment:
  export GIT_RELAY_SOURCE_TOKEN=<azure-devops-pat> GIT_RELAY_DEST_TOKEN=<github-pat>
  git-relay mirror https://dev.azure.com/org/project/_git/repo https://github.com/acme/repo.git

  # Only branches and release tags, keeping destination-only branches:
  git-relay mirror SRC DST --include 'refs/heads/*' --include 'refs/tags/v*' --no-prune

  # Into a server behind a proxy that takes at most 100 MB a request (pushed in batches):
  git-relay mirror SRC https://git.example.com/acme/repo.git --dest-max-push-bytes 90MB

  # What would change? (exit code 3 when something differs)
  git-relay status SRC DST --json

Exit codes:
  0  the destination matches the source (after `mirror`), or already matched (`status`)
  1  error: nothing was changed, or the run stopped; the message names the side and the cause
  2  usage error: bad flag, malformed URL or pattern
  3  finished, but refs still differ: protected, rejected, or `status`/`--dry-run` found differences";

/// Mirror git repositories by relaying the git protocol between two servers.
///
/// git-relay makes the destination's refs identical to the source's (like
/// `git push --mirror`) without cloning: it lists the refs of both sides,
/// asks the source for exactly the objects the destination lacks, and
/// streams that pack into the destination's receive-pack. Commits that
/// exist only on the destination are never overwritten without --force.
#[derive(Debug, Parser)]
#[command(name = "git-relay", version, after_long_help = EXAMPLES, after_help = "Run `git-relay help mirror` for examples and exit codes.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Print only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print every request and protocol decision.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make DESTINATION's refs identical to SOURCE's, moving only missing objects.
    #[command(after_long_help = EXAMPLES)]
    Mirror(RelayArgs),
    /// Compare SOURCE and DESTINATION and show what `mirror` would change; change nothing.
    #[command(after_long_help = EXAMPLES)]
    Status(RelayArgs),
    /// Mirror every repository of an organization, group or workspace (Azure DevOps, GitHub, GitLab, Bitbucket, Gitea), in parallel.
    #[command(after_long_help = MIRROR_ALL_EXAMPLES)]
    MirrorAll(MirrorAllArgs),
    /// Check a backup (or any local repository): every ref's history present, every reachable object intact. Exit 0 when sound, 1 otherwise.
    Verify(VerifyArgs),
    /// Run as a service: mirror on every push (webhooks), poll as a safety net, serve /status and /metrics.
    #[command(after_long_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Run as an Azure Pipelines task: read the inputs from INPUT_* / ENDPOINT_* (called by the task's wrapper).
    #[command(hide = true)]
    Task,
}

/// How one side signs in: a token sent as Basic or Bearer, or a source of
/// short-lived tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuthChoice {
    pub(crate) scheme: Scheme,
    pub(crate) sign_in: SignIn,
}

/// Reads how one side signs in (`--source-auth`, `--dest-auth`).
fn auth_choice() -> impl TypedValueParser<Value = AuthChoice> {
    let choices = [
        PossibleValue::new("basic")
            .help("HTTP Basic with username and token (personal access tokens)"),
        PossibleValue::new("bearer")
            .help("`Authorization: Bearer <token>` (System.AccessToken, OAuth, an Entra ID token)"),
        PossibleValue::new("entra")
            .help("Entra ID access tokens for Azure DevOps: workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID), else the machine's managed identity"),
        PossibleValue::new("credential-helper")
            .help("user name and password from git's credential helpers (`git credential fill` for the side's URL), sent as Basic"),
        PossibleValue::new("github-app").help(
            "installation tokens of a GitHub App (--source-app-id and --source-app-key, or --dest-...)",
        ),
    ];
    PossibleValuesParser::new(choices).map(|s| {
        let token = |scheme| AuthChoice {
            scheme,
            sign_in: SignIn::Token,
        };
        match s.as_str() {
            "bearer" => token(Scheme::Bearer),
            "entra" => AuthChoice {
                scheme: Scheme::Bearer,
                sign_in: SignIn::Entra(Default::default(), Default::default()),
            },
            "credential-helper" => AuthChoice {
                scheme: Scheme::Basic,
                sign_in: SignIn::CredentialHelper,
            },
            // The app's id and key are other flags: `CredentialArgs::sides`
            // puts them in.
            "github-app" => AuthChoice {
                scheme: Scheme::Basic,
                sign_in: SignIn::GitHubApp(GitHubApp::new("", AppKey::Pem(String::new()), None)),
            },
            _ => token(Scheme::Basic),
        }
    })
}

/// Reads a forge kind by the names and with the help [`Kind`] gives.
fn forge_kind() -> impl TypedValueParser<Value = Kind> {
    let names = Kind::ALL.map(|k| PossibleValue::new(k.name()).help(k.description()));
    PossibleValuesParser::new(names).map(|name| Kind::from_name(&name).expect("a listed kind"))
}

/// The arguments of `mirror` and `status`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The repository to mirror from: an https:// URL, a file:// URL or a local path.
    #[arg(value_name = "SOURCE")]
    pub(crate) source: String,

    /// The repository to mirror to: an https:// URL, a file:// URL or a local path (created as a bare repository when missing).
    #[arg(value_name = "DESTINATION")]
    pub(crate) destination: String,

    #[command(flatten)]
    pub(crate) credentials: CredentialArgs,

    #[command(flatten)]
    pub(crate) selection: SelectionArgs,

    /// Allow overwriting or deleting destination refs whose commits the source does not have (destination-only history is lost).
    #[arg(long)]
    pub(crate) force: bool,

    /// Show the plan and change nothing.
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,

    /// Print a machine-readable report on stdout (refs with old, new, action, result, reason; totals; bytes; duration).
    #[arg(long)]
    pub json: bool,

    /// TLS, proxy, timeout and retry flags.
    #[command(flatten)]
    pub network: NetworkArgs,

    #[command(flatten)]
    pub(crate) push: PushArgs,

    #[command(flatten)]
    pub(crate) lfs: LfsArgs,

    /// Local DESTINATION (a backup) only: delete archived tips (refs/archive/<UTC time>/<ref>, kept when the source deletes or force-pushes a ref) older than DURATION, e.g. 30d, 12h, 2w.
    #[arg(long, value_name = "DURATION", value_parser = crate::store::archive::parse_age)]
    pub(crate) prune_archive_older_than: Option<Duration>,

    /// Read a local SOURCE with `git` (upload-pack) or `git2` (libgit2) instead of choosing by whether git is installed. Hidden: for tests of either reader.
    #[arg(long, value_name = "READER", value_parser = local_reader, hide = true)]
    pub(crate) local_source: Option<LocalReader>,

    /// `--junit` and `--metrics`.
    #[command(flatten)]
    pub reports: ReportArgs,
}

/// Report files for CI test views and monitoring (`--junit`, `--metrics`).
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write a JUnit XML report to FILE: one test case per repository (failed, rejected or protected refs as failures, skipped repositories as skipped), for a CI's test view (Azure Pipelines' PublishTestResults, GitLab's junit report). Written even when the run fails.
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    pub junit: Option<PathBuf>,

    /// Write Prometheus metrics to FILE (text format, for node-exporter's textfile collector: name it *.prom in the collector's directory): per repository last run time, duration, result, refs changed, bytes and LFS objects moved; totals. Replaced atomically; written even when the run fails.
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    pub metrics: Option<PathBuf>,
}

impl ReportArgs {
    /// The files these flags ask for.
    pub fn files(&self) -> crate::report::ReportFiles {
        crate::report::ReportFiles {
            junit: self.junit.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

fn local_reader(name: &str) -> Result<LocalReader, String> {
    match name {
        "git" => Ok(LocalReader::Git),
        "git2" => Ok(LocalReader::Git2),
        _ => Err("use git or git2".to_owned()),
    }
}

/// The arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The repository to check: a local path or file:// URL (a backup made by `mirror`).
    #[arg(value_name = "PATH")]
    pub path: String,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Tokens, user names and schemes of both sides (shared by `mirror`,
/// `status` and `mirror-all`).
#[derive(Debug, Args)]
pub(crate) struct CredentialArgs {
    /// Token for the source. Prefer the environment variable: flags are visible in process listings. With basic auth and no --source-username, a token holding `:` is read as `user:secret` (the form Google Cloud Source Repositories hands out); to send such a token whole, name the user, or pass --source-username '' for the URL's user or the default.
    #[arg(
        long,
        env = "GIT_RELAY_SOURCE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Credentials"
    )]
    pub(crate) source_token: Option<String>,

    /// Token for the destination (see --source-token).
    #[arg(
        long,
        env = "GIT_RELAY_DEST_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Credentials"
    )]
    pub(crate) dest_token: Option<String>,

    /// Username sent with the source token (Basic auth). Default: the part of a `user:secret` token before the `:`, else the user in the URL, else `git` (`x-access-token` for github.com). Naming one, even '' (the URL's user or the default), sends the token whole. With a Bitbucket Cloud API token, your Atlassian account email: its API takes that, and git is sent x-bitbucket-api-token-auth.
    #[arg(
        long,
        env = "GIT_RELAY_SOURCE_USERNAME",
        hide_env_values = true,
        value_name = "USER",
        help_heading = "Credentials"
    )]
    pub(crate) source_username: Option<String>,

    /// Username sent with the destination token (see --source-username).
    #[arg(
        long,
        env = "GIT_RELAY_DEST_USERNAME",
        hide_env_values = true,
        value_name = "USER",
        help_heading = "Credentials"
    )]
    pub(crate) dest_username: Option<String>,

    /// How the source signs in.
    #[arg(long, value_parser = auth_choice(), default_value = "basic", value_name = "HOW", help_heading = "Credentials")]
    pub(crate) source_auth: AuthChoice,

    /// How the destination signs in.
    #[arg(long, value_parser = auth_choice(), default_value = "basic", value_name = "HOW", help_heading = "Credentials")]
    pub(crate) dest_auth: AuthChoice,

    /// With --source-auth entra: the client id of the source's application (workload identity) or user-assigned managed identity. Default: AZURE_CLIENT_ID.
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub(crate) source_entra_client_id: Option<String>,

    /// With --source-auth entra: the source identity's tenant id (workload identity). Default: AZURE_TENANT_ID.
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub(crate) source_entra_tenant: Option<String>,

    /// With --dest-auth entra: the destination's client id (see --source-entra-client-id).
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub(crate) dest_entra_client_id: Option<String>,

    /// With --dest-auth entra: the destination identity's tenant id. Default: AZURE_TENANT_ID.
    #[arg(long, value_name = "ID", help_heading = "Credentials")]
    pub(crate) dest_entra_tenant: Option<String>,
    /// With --source-auth github-app: the GitHub App's id (or client id), from its settings page.
    #[arg(
        long,
        env = "GIT_RELAY_SOURCE_APP_ID",
        value_name = "ID",
        required_if_eq("source_auth", "github-app"),
        help_heading = "Credentials"
    )]
    pub(crate) source_app_id: Option<String>,

    /// With --source-auth github-app: the app's private key, a .pem file from its settings (PKCS#1 as GitHub hands it out, or PKCS#8).
    #[arg(
        long,
        env = "GIT_RELAY_SOURCE_APP_KEY",
        value_name = "FILE",
        required_if_eq("source_auth", "github-app"),
        help_heading = "Credentials"
    )]
    pub(crate) source_app_key: Option<PathBuf>,

    /// With --source-auth github-app: the GitHub API, where it is not https://api.github.com (github.com) or https://HOST/api/v3 (GitHub Enterprise Server).
    #[arg(long, value_name = "URL", help_heading = "Credentials")]
    pub(crate) source_app_api: Option<url::Url>,

    /// With --dest-auth github-app: the GitHub App's id (see --source-app-id).
    #[arg(
        long,
        env = "GIT_RELAY_DEST_APP_ID",
        value_name = "ID",
        required_if_eq("dest_auth", "github-app"),
        help_heading = "Credentials"
    )]
    pub(crate) dest_app_id: Option<String>,

    /// With --dest-auth github-app: the app's private key file (see --source-app-key).
    #[arg(
        long,
        env = "GIT_RELAY_DEST_APP_KEY",
        value_name = "FILE",
        required_if_eq("dest_auth", "github-app"),
        help_heading = "Credentials"
    )]
    pub(crate) dest_app_key: Option<PathBuf>,

    /// With --dest-auth github-app: the GitHub API (see --source-app-api).
    #[arg(long, value_name = "URL", help_heading = "Credentials")]
    pub(crate) dest_app_api: Option<url::Url>,
}

impl CredentialArgs {
    /// The settings of both sides: (source, destination).
    fn sides(&self, n: &NetworkArgs) -> (SideConfig, SideConfig) {
        let side = |token: &Option<String>,
                    username: &Option<String>,
                    auth: &AuthChoice,
                    entra: [&Option<String>; 2],
                    app: (&Option<String>, &Option<PathBuf>, &Option<url::Url>),
                    (insecure, source): (bool, bool)| SideConfig {
            token: token.clone(),
            username: username.clone(),
            scheme: auth.scheme,
            sign_in: match (&auth.sign_in, app) {
                (SignIn::Entra(_, shared), _) => SignIn::Entra(
                    EntraSettings {
                        client_id: entra[0].clone(),
                        tenant: entra[1].clone(),
                    },
                    shared.clone(),
                ),
                (SignIn::GitHubApp(_), (id, key, api)) => SignIn::GitHubApp(GitHubApp::new(
                    id.clone().unwrap_or_default(),
                    AppKey::File(key.clone().unwrap_or_default()),
                    api.clone(),
                )),
                (other, _) => other.clone(),
            },
            network: n.side(insecure, source),
        };
        (
            side(
                &self.source_token,
                &self.source_username,
                &self.source_auth,
                [&self.source_entra_client_id, &self.source_entra_tenant],
                (
                    &self.source_app_id,
                    &self.source_app_key,
                    &self.source_app_api,
                ),
                (n.source_insecure, true),
            ),
            side(
                &self.dest_token,
                &self.dest_username,
                &self.dest_auth,
                [&self.dest_entra_client_id, &self.dest_entra_tenant],
                (&self.dest_app_id, &self.dest_app_key, &self.dest_app_api),
                (n.dest_insecure, false),
            ),
        )
    }
}

/// The flags whose values are secrets. A `serve` config names these by
/// reference (an environment variable or a file) and never holds them
/// inline; add any new flag that carries a secret here.
pub(crate) const SECRET_FLAGS: [&str; 2] = ["source-token", "dest-token"];

impl CredentialArgs {
    /// Sets the secret flag `long` (one of [`SECRET_FLAGS`]) to `value`,
    /// read from where a `serve` config says: set after parsing, so that no
    /// parse error can quote it. False for any other flag.
    pub(crate) fn set_secret(&mut self, long: &str, value: String) -> bool {
        let field = match long {
            "source-token" => &mut self.source_token,
            "dest-token" => &mut self.dest_token,
            _ => return false,
        };
        *field = Some(value);
        true
    }
}

/// Which refs take part (shared by `mirror`, `status` and `mirror-all`).
#[derive(Debug, Args)]
pub(crate) struct SelectionArgs {
    /// Mirror only refs matching GLOB (full ref names; `*` matches across `/`). Repeatable. Default: every ref except refs/stash and the host-internal namespaces refs/pull/*, refs/merge-requests/*, refs/pipelines/*, refs/environments/* and refs/keep-around/*; an --include inside one of those (e.g. 'refs/pull/*') brings it back.
    #[arg(long = "include", value_name = "GLOB", help_heading = "Selection")]
    pub(crate) include: Vec<String>,

    /// Leave refs matching GLOB alone on both sides. Repeatable.
    #[arg(long = "exclude", value_name = "GLOB", help_heading = "Selection")]
    pub(crate) exclude: Vec<String>,

    /// Keep destination refs that the source no longer has.
    #[arg(long, help_heading = "Selection")]
    pub(crate) no_prune: bool,
}

/// TLS, proxy, timeout and retry flags (shared by `mirror`, `status` and
/// `mirror-all`).
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Trust the CA certificates in this PEM file, in addition to the system's (SSL_CERT_FILE replaces the system's).
    #[arg(long, value_name = "PEM", help_heading = "Network")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Do not verify the source's TLS certificate (prints a warning).
    #[arg(long, help_heading = "Network")]
    pub(crate) source_insecure: bool,

    /// Do not verify the destination's TLS certificate (prints a warning).
    #[arg(long, help_heading = "Network")]
    pub(crate) dest_insecure: bool,

    /// Proxy for both sides, e.g. http://proxy:3128. Default: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, honouring NO_PROXY.
    #[arg(long, value_name = "URL", help_heading = "Network")]
    pub(crate) proxy: Option<String>,

    /// Let credentials follow a redirect to HOST (any port), which is otherwise refused: a token is sent only to the scheme, host and port it was given for. Repeatable. A redirect from https:// to http:// is never followed.
    #[arg(long, value_name = "HOST", help_heading = "Network")]
    pub(crate) allow_redirect_host: Vec<String>,

    /// Seconds to wait for a connection, and for data during a transfer, before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = config::DEFAULT_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(config::TIMEOUT_SECS), help_heading = "Network")]
    pub(crate) timeout: u64,

    /// Fail a transfer from a server that averages fewer bytes per second than this over --timeout seconds of waiting on it: one trickling bytes, or sending progress and no data. While a server prepares its pack it may send only keep-alives or progress for 5 such windows; raise --timeout for one that takes longer. Local repositories are exempt. 0 turns the check off.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT_LOW_SPEED_LIMIT, help_heading = "Network")]
    pub(crate) low_speed_limit: u64,

    /// End the whole run, retries included, after this long, e.g. 90s, 30m, 2h. Default: no deadline.
    #[arg(long, value_name = "DURATION", value_parser = crate::store::archive::parse_age, help_heading = "Network")]
    pub(crate) deadline: Option<Duration>,

    /// Refuse a ref advertisement that lists more refs than this.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_REFS, value_parser = clap::value_parser!(usize), help_heading = "Network")]
    pub(crate) max_advertised_refs: usize,

    /// Refuse a ref advertisement, or any other answer but a pack, larger than this, e.g. 512MiB, 64MiB, 1000000.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = config::parse_size, help_heading = "Network")]
    pub(crate) max_advertisement_bytes: u64,

    /// SSH source: the private key to sign in with (no passphrase). Or its text in GIT_RELAY_SOURCE_SSH_KEY, for CI secrets: written to a private temporary file removed at exit.
    #[arg(long, value_name = "FILE", help_heading = "SSH")]
    pub(crate) source_ssh_key: Option<PathBuf>,

    /// SSH destination: the private key to sign in with (see --source-ssh-key; text in GIT_RELAY_DEST_SSH_KEY).
    #[arg(long, value_name = "FILE", help_heading = "SSH")]
    pub(crate) dest_ssh_key: Option<PathBuf>,

    /// Check SSH host keys against this known-hosts file (or its lines in GIT_RELAY_SSH_KNOWN_HOSTS) instead of ~/.ssh/known_hosts. An unknown or changed host key fails the run.
    #[arg(long, value_name = "FILE", help_heading = "SSH")]
    pub(crate) ssh_known_hosts: Option<PathBuf>,

    /// Trust an SSH host seen for the first time and remember its key (OpenSSH's accept-new); a changed key still fails.
    #[arg(long, help_heading = "SSH")]
    pub(crate) ssh_accept_new_host_keys: bool,

    /// The key texts and known hosts given in the environment.
    #[arg(skip = SshEnvironment::read())]
    pub(crate) ssh_environment: SshEnvironment,

    /// When the run started: --deadline counts from here.
    #[arg(skip = Instant::now())]
    pub(crate) started: Instant,

    /// Start over this many times after a transient failure (busy server, refused or cut connection), waiting 1 s, 2 s, 4 s... with jitter, or what the server's Retry-After asks.
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::DEFAULT_RETRIES, help_heading = "Network")]
    pub(crate) retries: u32,

    /// The first wait before a retry, in milliseconds (default 1000; each later one doubles). Hidden: tests shorten it.
    #[arg(long, value_name = "MS", hide = true)]
    pub(crate) retry_base_ms: Option<u64>,
}

/// What one push to the destination may carry (shared by `mirror`,
/// `status` and `mirror-all`): hosts refuse pushes over a size or with too
/// many ref updates, so a large mirror goes in several pushes.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The most pack bytes one push to the destination may carry, e.g. 1GiB, 1500MiB, 4GB (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000). 0 = no limit. Default: a safe share of the host's cap for github.com (2 GiB), Azure Repos (5 GB), gitlab.com (5 GB) and bitbucket.org (3.5 GB); elsewhere no limit until the server refuses a push as too large.
    #[arg(long, value_name = "SIZE", value_parser = config::parse_push_budget, help_heading = "Push")]
    pub(crate) dest_max_push_bytes: Option<PushBudget>,

    /// The most ref updates in one push; more are sent in several pushes (GitHub answers HTTP 500 to about 10,000 in one push).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_REF_UPDATES, value_parser = config::parse_max_ref_updates, help_heading = "Push")]
    pub(crate) max_ref_updates: usize,
}

/// Git LFS (shared by `mirror` and `status`; `mirror-all` takes all but
/// the URLs).
#[derive(Debug, Args)]
pub(crate) struct LfsArgs {
    #[command(flatten)]
    pub(crate) common: LfsModeArgs,

    /// The source's LFS server, where it is not where git-lfs looks (<SOURCE>.git/info/lfs); the source's credentials sign its requests.
    #[arg(long, value_name = "URL", value_parser = config::parse_lfs_url, help_heading = "Git LFS")]
    pub(crate) source_lfs_url: Option<url::Url>,

    /// The destination's LFS server, where it is not where git-lfs looks (<DESTINATION>.git/info/lfs); the destination's credentials sign its requests.
    #[arg(long, value_name = "URL", value_parser = config::parse_lfs_url, help_heading = "Git LFS")]
    pub(crate) dest_lfs_url: Option<url::Url>,
}

/// Whether LFS objects move, and how many at once.
#[derive(Debug, Args)]
pub(crate) struct LfsModeArgs {
    /// Relay the Git LFS objects the history sent needs, before its refs: auto (when that history holds LFS pointers and the source can send its small blobs alone), always (look whatever it costs; refs wait for every object), never (pointers travel alone).
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = config::parse_lfs_mode, help_heading = "Git LFS")]
    pub(crate) lfs: LfsMode,

    /// LFS objects moved at once (1 to 64).
    #[arg(long, value_name = "N", default_value_t = crate::lfs::DEFAULT_JOBS, value_parser = config::parse_lfs_jobs, help_heading = "Git LFS")]
    pub(crate) lfs_jobs: usize,
}

impl LfsModeArgs {
    fn options(&self) -> LfsOptions {
        LfsOptions {
            mode: self.lfs,
            source_url: None,
            dest_url: None,
            jobs: self.lfs_jobs,
        }
    }
}

impl LfsArgs {
    fn options(&self) -> LfsOptions {
        LfsOptions {
            source_url: self.source_lfs_url.clone(),
            dest_url: self.dest_lfs_url.clone(),
            ..self.common.options()
        }
    }
}

impl PushArgs {
    fn limits(&self) -> PushLimits {
        PushLimits {
            max_bytes: self.dest_max_push_bytes.unwrap_or(PushBudget::HostDefault),
            max_ref_updates: self.max_ref_updates,
        }
    }
}

/// The SSH settings the environment holds: key texts are secrets, so they
/// are not flags (a flag shows in process listings).
#[derive(Clone, Default)]
pub(crate) struct SshEnvironment {
    source_key: Option<String>,
    dest_key: Option<String>,
    known_hosts: Option<String>,
}

impl SshEnvironment {
    fn read() -> SshEnvironment {
        let text = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let environment = SshEnvironment {
            source_key: text("GIT_RELAY_SOURCE_SSH_KEY"),
            dest_key: text("GIT_RELAY_DEST_SSH_KEY"),
            known_hosts: text("GIT_RELAY_SSH_KNOWN_HOSTS"),
        };
        for key in [&environment.source_key, &environment.dest_key]
            .into_iter()
            .flatten()
        {
            for line in key.lines().map(str::trim).filter(|l| !l.is_empty()) {
                crate::auth::register_secret(line);
            }
        }
        environment
    }
}

impl std::fmt::Debug for SshEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SshEnvironment")
    }
}

impl NetworkArgs {
    /// The SSH settings of one side.
    fn ssh(&self, source: bool) -> SshOptions {
        let env = &self.ssh_environment;
        let (key_file, key_text) = match source {
            true => (&self.source_ssh_key, &env.source_key),
            false => (&self.dest_ssh_key, &env.dest_key),
        };
        SshOptions {
            key_file: key_file.clone(),
            key_text: key_text.clone(),
            known_hosts_file: self.ssh_known_hosts.clone(),
            known_hosts_text: env.known_hosts.clone(),
            accept_new_host_keys: self.ssh_accept_new_host_keys,
        }
    }

    fn side(&self, insecure: bool, source: bool) -> NetworkOptions {
        NetworkOptions {
            ssh: self.ssh(source),
            ca_file: self.ca_file.clone(),
            insecure,
            proxy: self.proxy.clone(),
            timeout: Duration::from_secs(self.timeout),
            redirects: RedirectPolicy::allowing(&self.allow_redirect_host),
            limits: Limits {
                max_refs: self.max_advertised_refs,
                max_message_bytes: self.max_advertisement_bytes,
                low_speed_limit: self.low_speed_limit,
                deadline: self
                    .deadline
                    .map(|allowed| Deadline::after(self.started, allowed)),
            },
        }
    }

    /// How transient failures are retried.
    pub fn retry_policy(&self) -> RetryPolicy {
        let mut policy = RetryPolicy::new(self.retries);
        if let Some(ms) = self.retry_base_ms {
            policy.base_delay = Duration::from_millis(ms);
        }
        policy
    }
}

impl RelayArgs {
    /// Settings for local repositories (a backup destination); an `Err` is a usage error.
    pub fn local_options(&self) -> Result<LocalOptions, String> {
        let local = Location::parse(&self.destination)
            .map(|l| l.local_path().is_some())
            .unwrap_or(false);
        if self.prune_archive_older_than.is_some() && !local {
            return Err(
                "--prune-archive-older-than applies to a local DESTINATION (a backup) only".into(),
            );
        }
        Ok(LocalOptions {
            prune_archive_older_than: self.prune_archive_older_than,
            source_reader: self.local_source.unwrap_or_default(),
        })
    }

    /// Turns the arguments into engine options; an `Err` is a usage error.
    pub fn options(&self, mode: Mode) -> Result<Options, String> {
        let mode = if mode == Mode::Mirror && self.dry_run {
            Mode::DryRun
        } else {
            mode
        };
        let (source, destination) = self.credentials.sides(&self.network);
        let source = source.endpoint("source", &self.source, None)?;
        let destination = destination.endpoint("destination", &self.destination, None)?;
        Ok(Options {
            source,
            destination,
            selection: RefSelection::new(&self.selection.include, &self.selection.exclude)?,
            prune: !self.selection.no_prune,
            force: self.force,
            mode,
            push: self.push.limits(),
            lfs: self.lfs.options(),
        })
    }
}

const MIRROR_ALL_EXAMPLES: &str = "\
Examples:
  # Every repository of an Azure DevOps organization into local bare repositories (a nightly backup):
  export GIT_RELAY_SOURCE_TOKEN=<pat with Code read and Project read>
  git-relay mirror-all https://dev.azure.com/org /backup/{project}/{repo}.git

  # One project to a GitHub organization, creating missing repositories there:
  export GIT_RELAY_DEST_TOKEN=<github token with repo scope>
  git-relay mirror-all https://dev.azure.com/org/project 'https://github.com/acme-mirror/{repo}.git' \\
      --create-missing --dest-scope https://github.com/acme-mirror

  # What would change, without changing anything (exit code 3 when anything differs):
  git-relay mirror-all https://github.com/acme 'https://gitlab.example.com/mirror/{repo}.git' --dry-run

  # Share an organization between 4 machines (an Azure Pipelines matrix of 4 jobs):
  git-relay mirror-all SCOPE TEMPLATE --shard $(System.JobPositionInPhase)/$(System.TotalJobsInPhase)

Placeholders in DESTINATION_TEMPLATE, each percent-encoded as one path segment:
  {owner}    the organization, group or workspace of SOURCE_SCOPE
  {project}  the Azure DevOps project, GitLab namespace, or the owner where there is none
  {repo}     the repository's name

Exit codes:
  0  every repository is in sync
  1  some repository failed (the others were still mirrored), or discovery failed
  2  usage error
  3  no failure, but some repository still differs (protected or rejected refs; with --dry-run: would change)";

const SERVE_EXAMPLES: &str = "\
Examples:
  # Check a configuration file, then serve it:
  git-relay serve --config /etc/git-relay/serve.toml --check
  git-relay serve --config /etc/git-relay/serve.toml --log-format json

  # The configuration lists mirrors and sweeps with the flags of `mirror` and
  # `mirror-all`, and the webhook secrets by reference; the commented example
  # is docs/serve.example.toml in the repository.
  [[mirror]]
  source = \"https://dev.azure.com/acme/app/_git/widgets\"
  destination = \"https://github.com/acme/widgets.git\"
  source-token = { env = \"AZDO_PAT\" }
  dest-token = { file = \"/run/secrets/github-token\" }

Endpoints:
  POST /hooks/github|gitlab|azure-devops|bitbucket|gitea   webhooks (signed)
  GET  /status  /status.json  /metrics  /healthz  /readyz

Exit codes:
  0  stopped by SIGTERM or SIGINT after the running mirrors finished (or --check: the file is sound)
  1  could not listen, or mirrors were still running when the grace period ended
  2  the configuration file is wrong (the message names the entry and the key)";

/// The arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (TOML): mirrors, sweeps, webhook secrets, the listening address.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,

    /// Read the configuration, read every secret it names, build every mirror's settings, and exit: 0 when all is sound, 2 otherwise.
    #[arg(long)]
    pub check: bool,

    /// How lines are printed on stderr: `text`, or `json` (one object a line: time, level, mirror, message) for log collectors.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// The arguments of `mirror-all`.
#[derive(Debug, Args)]
pub struct MirrorAllArgs {
    /// The organization, group or workspace: https://dev.azure.com/ORG[/PROJECT], https://ORG.visualstudio.com, a collection URL, https://github.com/ORG, https://gitlab.com/GROUP, https://bitbucket.org/WORKSPACE, https://HOST/projects/KEY (Bitbucket Server), https://HOST/ORG (Gitea).
    #[arg(value_name = "SOURCE_SCOPE")]
    pub(crate) scope: String,

    /// Where each repository goes: a URL or local path with {owner}, {project} and {repo}, e.g. https://github.com/acme-mirror/{project}-{repo}.git or /backup/{project}/{repo}.git.
    #[arg(value_name = "DESTINATION_TEMPLATE")]
    pub(crate) template: String,

    /// The kind of forge SOURCE_SCOPE is; needed for self-hosted servers, inferred for the public hosts.
    #[arg(long, value_parser = forge_kind(), value_name = "KIND", help_heading = "Forges")]
    pub(crate) source_kind: Option<Kind>,

    /// The source API base, when it cannot be derived from SOURCE_SCOPE (a server under a path prefix), e.g. https://example.com/gitlab/api/v4.
    #[arg(long, value_name = "URL", help_heading = "Forges")]
    pub(crate) source_api: Option<String>,

    /// Create destination repositories that do not exist yet, through the API of --dest-scope, before mirroring into them.
    #[arg(long, requires = "dest_scope", help_heading = "Forges")]
    pub(crate) create_missing: bool,

    /// Where --create-missing creates repositories: an organization, group or project URL, as for SOURCE_SCOPE.
    #[arg(long, value_name = "URL", help_heading = "Forges")]
    pub(crate) dest_scope: Option<String>,

    /// The kind of forge --dest-scope is (inferred for the public hosts).
    #[arg(long, value_parser = forge_kind(), value_name = "KIND", help_heading = "Forges")]
    pub(crate) dest_kind: Option<Kind>,

    /// The destination API base, when it cannot be derived from --dest-scope.
    #[arg(long, value_name = "URL", help_heading = "Forges")]
    pub(crate) dest_api: Option<String>,

    /// Mirror only repositories whose `project/repo` name matches REGEX (unanchored; repeatable: any may match).
    #[arg(long, value_name = "REGEX", help_heading = "Repositories")]
    pub(crate) filter: Vec<String>,

    /// Leave out repositories whose `project/repo` name matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX", help_heading = "Repositories")]
    pub(crate) skip: Vec<String>,

    /// Leave out archived repositories.
    #[arg(long, help_heading = "Repositories")]
    pub(crate) skip_archived: bool,

    /// Leave out forks.
    #[arg(long, help_heading = "Repositories")]
    pub(crate) skip_forks: bool,

    /// Mirror wikis too, each as {repo} = NAME.wiki through the same template: GitHub, Gitea and GitLab wikis of repositories that have theirs turned on (one never written is skipped as "no wiki"), and Azure DevOps project wikis (code wikis are folders of repositories, mirrored with them).
    #[arg(long, help_heading = "Repositories")]
    pub(crate) include_wikis: bool,

    /// Mirror only share K of N (1 <= K <= N) of the repositories: a stable partition by name hash, so N machines (an Azure Pipelines matrix) cover everything between them.
    #[arg(long, value_name = "K/N", help_heading = "Repositories")]
    pub(crate) shard: Option<Shard>,

    /// Repositories mirrored at once. Default: twice the cores, at most 8.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=crate::sweep::MAX_JOBS as i64))]
    pub(crate) jobs: Option<u16>,

    #[command(flatten)]
    pub(crate) credentials: CredentialArgs,

    #[command(flatten)]
    pub(crate) selection: SelectionArgs,

    /// Allow overwriting or deleting destination refs whose commits the source does not have (destination-only history is lost).
    #[arg(long)]
    pub(crate) force: bool,

    /// List every repository with its plan; create and change nothing (exit code 3 when anything differs).
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,

    /// Print a machine-readable report of every repository and ref on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub(crate) network: NetworkArgs,

    #[command(flatten)]
    pub(crate) push: PushArgs,

    #[command(flatten)]
    pub(crate) lfs: LfsModeArgs,

    /// `--junit` and `--metrics`.
    #[command(flatten)]
    pub reports: ReportArgs,
}

impl MirrorAllArgs {
    /// The sweep these arguments ask for.
    pub fn config(&self) -> SweepConfig {
        let (mut source, mut destination) = self.credentials.sides(&self.network);
        // A GitHub App signs in to the API its scope names.
        for (side, api) in [
            (&mut source, &self.source_api),
            (&mut destination, &self.dest_api),
        ] {
            if let SignIn::GitHubApp(app) = &side.sign_in {
                let api = api.as_deref().and_then(|a| url::Url::parse(a).ok());
                side.sign_in = SignIn::GitHubApp(app.clone().or_api(api));
            }
        }
        let forge = |scope: &String, kind, api: &Option<String>| ForgeConfig {
            scope: scope.clone(),
            kind,
            api: api.clone(),
        };
        SweepConfig {
            source_scope: forge(&self.scope, self.source_kind, &self.source_api),
            template: self.template.clone(),
            create_in: (self.dest_scope.as_ref())
                .filter(|_| self.create_missing)
                .map(|scope| forge(scope, self.dest_kind, &self.dest_api)),
            source,
            destination,
            filter: self.filter.clone(),
            skip: self.skip.clone(),
            skip_archived: self.skip_archived,
            skip_forks: self.skip_forks,
            include_wikis: self.include_wikis,
            shard: self.shard,
            jobs: self.jobs,
            include: self.selection.include.clone(),
            exclude: self.selection.exclude.clone(),
            prune: !self.selection.no_prune,
            force: self.force,
            dry_run: self.dry_run,
            retry: self.network.retry_policy(),
            push: self.push.limits(),
            lfs: self.lfs.options(),
            only: None,
        }
    }
}

/// The flags of a subcommand (`mirror`'s [`RelayArgs`], `mirror-all`'s
/// [`MirrorAllArgs`]) read from a vector that is not the process's command
/// line (an entry of a `serve` config): no program name, no `--help`.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct Argv<A: Args> {
    #[command(flatten)]
    args: A,
}

/// Parses `argv` (flags, then the positional arguments; no program name)
/// as the subcommand whose flags `A` are would, with its validation and
/// messages: `args_from::<RelayArgs>` for `mirror`, `::<MirrorAllArgs>`
/// for `mirror-all`.
pub(crate) fn args_from<A, I, T>(argv: I) -> Result<A, String>
where
    A: Args,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Argv::<A>::try_parse_from(argv)
        .map(|parsed| parsed.args)
        .map_err(|e| one_line(&e))
}

/// The flags [`args_from`] takes for `A`, for a caller that checks a key
/// before building the vector (whether a flag is a switch).
pub(crate) fn argv_command<A: Args>() -> clap::Command {
    use clap::CommandFactory;
    Argv::<A>::command()
}

/// clap's message without its usage block, on one line: the vector it
/// read was not typed by the user, so "Usage:" and "use '-- --x'" would
/// mislead.
fn one_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.contains("as a value, use") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        argv_command::<RelayArgs>().debug_assert();
        argv_command::<MirrorAllArgs>().debug_assert();
    }

    #[test]
    fn argument_vectors_parse_as_the_command_line_and_errors_fit_one_line() {
        let args =
            args_from::<RelayArgs, _, _>(["--force", "--retries=2", "--", "/a", "/b"]).unwrap();
        assert!(args.force);
        assert_eq!(args.network.retries, 2);
        let err = args_from::<RelayArgs, _, _>(["--forse", "--", "/a", "/b"]).unwrap_err();
        assert!(
            err.starts_with("unexpected argument '--forse' found"),
            "{err}"
        );
        assert!(err.contains("'--force'"), "{err}");
        assert!(!err.contains('\n') && !err.contains("Usage"), "{err}");
        let err = args_from::<RelayArgs, _, _>(["--help", "--", "/a", "/b"]).unwrap_err();
        assert!(err.contains("unexpected argument '--help'"), "{err}");
        let sweep = args_from::<MirrorAllArgs, _, _>([
            "--skip-archived",
            "--",
            "https://github.com/acme",
            "/b/{repo}",
        ]);
        assert!(sweep.unwrap().config().skip_archived);
    }

    #[test]
    fn every_secret_flag_can_be_set_and_exists_in_both_commands() {
        for long in SECRET_FLAGS {
            for command in [argv_command::<RelayArgs>(), argv_command::<MirrorAllArgs>()] {
                assert!(
                    command.get_arguments().any(|a| a.get_long() == Some(long)),
                    "{long}"
                );
            }
            let mut args = args_from::<RelayArgs, _, _>(["--", "/a", "/b"]).unwrap();
            assert!(args.credentials.set_secret(long, "s3cr3t-value".into()));
        }
        let mut args = args_from::<RelayArgs, _, _>(["--", "/a", "/b"]).unwrap();
        assert!(!args.credentials.set_secret("proxy", "x".into()));
    }

    fn relay_args(extra: &[&str]) -> Result<RelayArgs, clap::Error> {
        let args = ["git-relay", "mirror", "/a", "/b"].iter().chain(extra);
        let Command::Mirror(args) = Cli::try_parse_from(args)?.command else {
            panic!("not mirror")
        };
        Ok(args)
    }

    #[test]
    fn push_limits_default_to_the_host_and_5000_updates() {
        let options = relay_args(&[]).unwrap().options(Mode::Mirror).unwrap();
        assert_eq!(options.push, PushLimits::default());
        assert_eq!(options.push.max_bytes, PushBudget::HostDefault);
        assert_eq!(options.push.max_ref_updates, 5000);
    }

    #[test]
    fn push_limit_flags_reach_the_options() {
        let args = relay_args(&[
            "--dest-max-push-bytes",
            "1500MiB",
            "--max-ref-updates",
            "200",
        ]);
        let options = args.unwrap().options(Mode::Mirror).unwrap();
        assert_eq!(options.push.max_bytes, PushBudget::Bytes(1500 << 20));
        assert_eq!(options.push.max_ref_updates, 200);
        let args = relay_args(&["--dest-max-push-bytes", "0"]).unwrap();
        let options = args.options(Mode::Mirror).unwrap();
        assert_eq!(options.push.max_bytes, PushBudget::Unlimited);
    }

    #[test]
    fn bad_push_limits_are_usage_errors() {
        for bad in [
            ["--dest-max-push-bytes", "2TB"],
            ["--dest-max-push-bytes", "big"],
            ["--max-ref-updates", "0"],
            ["--max-ref-updates", "x"],
        ] {
            let err = relay_args(&bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn mirror_all_takes_the_push_limits() {
        let cli = Cli::try_parse_from([
            "git-relay",
            "mirror-all",
            "https://github.com/acme",
            "/backup/{repo}.git",
            "--dest-max-push-bytes",
            "4GB",
            "--max-ref-updates",
            "1000",
        ])
        .unwrap();
        let Command::MirrorAll(args) = cli.command else {
            panic!("not mirror-all")
        };
        let push = args.config().push;
        assert_eq!(push.max_bytes, PushBudget::Bytes(4_000_000_000));
        assert_eq!(push.max_ref_updates, 1000);
    }

    #[test]
    fn dry_run_flag_turns_mirror_into_a_dry_run() {
        let cli = Cli::try_parse_from(["git-relay", "mirror", "/a", "/b", "--dry-run"]).unwrap();
        let Command::Mirror(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.options(Mode::Mirror).unwrap().mode, Mode::DryRun);
    }
}

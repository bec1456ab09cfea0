//! The command line: every flag, its documentation, and how flags become
//! engine [`Options`].
//!
//! Flags are defined once here, with the help text users read; nothing else
//! in the crate parses arguments. Tokens are accepted from flags but the
//! documented way is the environment (`GIT_RELAY_SOURCE_TOKEN`, ...), which
//! keeps them out of process listings; `--help` never shows their values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::{CredentialSources, Credentials, Scheme};
use crate::mirror::{Endpoint, Mode, Options, RefSelection};
use crate::transport::{Location, NetworkOptions};

const EXAMPLES: &str = "\
Examples:
  # Back up this checkout into a local bare repository (offline):
  git-relay mirror . /tmp/backup.git

  # Azure Repos -> GitHub, tokens from the environment:
  export GIT_RELAY_SOURCE_TOKEN=<azure-devops-pat> GIT_RELAY_DEST_TOKEN=<github-pat>
  git-relay mirror https://dev.azure.com/org/project/_git/repo https://github.com/acme/repo.git

  # Only branches and release tags, keeping destination-only branches:
  git-relay mirror SRC DST --include 'refs/heads/*' --include 'refs/tags/v*' --no-prune

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
    /// Run as an Azure Pipelines task: read the inputs from INPUT_* / ENDPOINT_* (called by the task's wrapper).
    #[command(hide = true)]
    Task,
}

/// How one side authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// HTTP Basic with username and token (personal access tokens).
    #[default]
    Basic,
    /// `Authorization: Bearer <token>` (System.AccessToken, OAuth, Entra ID).
    Bearer,
}

impl From<AuthArg> for Scheme {
    fn from(a: AuthArg) -> Scheme {
        match a {
            AuthArg::Basic => Scheme::Basic,
            AuthArg::Bearer => Scheme::Bearer,
        }
    }
}

/// The arguments of `mirror` and `status`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The repository to mirror from: an https:// URL, a file:// URL or a local path.
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// The repository to mirror to: an https:// URL, a file:// URL or a local path (created as a bare repository when missing).
    #[arg(value_name = "DESTINATION")]
    pub destination: String,

    /// Token for the source. Prefer the environment variable: flags are visible in process listings. A token of the form `user:secret` also names the user.
    #[arg(
        long,
        env = "GIT_RELAY_SOURCE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Credentials"
    )]
    pub source_token: Option<String>,

    /// Token for the destination (see --source-token).
    #[arg(
        long,
        env = "GIT_RELAY_DEST_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Credentials"
    )]
    pub dest_token: Option<String>,

    /// Username sent with the source token (Basic auth). Default: the user in the URL, else `git` (`x-access-token` for github.com).
    #[arg(
        long,
        env = "GIT_RELAY_SOURCE_USERNAME",
        value_name = "USER",
        help_heading = "Credentials"
    )]
    pub source_username: Option<String>,

    /// Username sent with the destination token (see --source-username).
    #[arg(
        long,
        env = "GIT_RELAY_DEST_USERNAME",
        value_name = "USER",
        help_heading = "Credentials"
    )]
    pub dest_username: Option<String>,

    /// How the source token is sent.
    #[arg(
        long,
        value_enum,
        default_value_t,
        value_name = "SCHEME",
        help_heading = "Credentials"
    )]
    pub source_auth: AuthArg,

    /// How the destination token is sent.
    #[arg(
        long,
        value_enum,
        default_value_t,
        value_name = "SCHEME",
        help_heading = "Credentials"
    )]
    pub dest_auth: AuthArg,

    /// Mirror only refs matching GLOB (full ref names; `*` matches across `/`). Repeatable. Default: every ref except the host-internal namespaces refs/pull/*, refs/merge-requests/*, refs/pipelines/*, refs/environments/* and refs/keep-around/*; an --include inside one of those (e.g. 'refs/pull/*') brings it back.
    #[arg(long = "include", value_name = "GLOB", help_heading = "Selection")]
    pub include: Vec<String>,

    /// Leave refs matching GLOB alone on both sides. Repeatable.
    #[arg(long = "exclude", value_name = "GLOB", help_heading = "Selection")]
    pub exclude: Vec<String>,

    /// Keep destination refs that the source no longer has.
    #[arg(long, help_heading = "Selection")]
    pub no_prune: bool,

    /// Allow overwriting or deleting destination refs whose commits the source does not have (destination-only history is lost).
    #[arg(long)]
    pub force: bool,

    /// Show the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Print a machine-readable report on stdout (refs with old, new, action, result, reason; totals; bytes; duration).
    #[arg(long)]
    pub json: bool,

    /// Trust the CA certificates in this PEM file, in addition to the system's (SSL_CERT_FILE replaces the system's).
    #[arg(long, value_name = "PEM", help_heading = "Network")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the source's TLS certificate (prints a warning).
    #[arg(long, help_heading = "Network")]
    pub source_insecure: bool,

    /// Do not verify the destination's TLS certificate (prints a warning).
    #[arg(long, help_heading = "Network")]
    pub dest_insecure: bool,

    /// Proxy for both sides, e.g. http://proxy:3128. Default: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, honouring NO_PROXY.
    #[arg(long, value_name = "URL", help_heading = "Network")]
    pub proxy: Option<String>,

    /// Seconds to wait for a connection, and for data during a transfer, before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "Network")]
    pub timeout: u64,
}

impl RelayArgs {
    /// Turns the arguments into engine options; an `Err` is a usage error.
    pub fn options(&self, mode: Mode) -> Result<Options, String> {
        let mode = if mode == Mode::Mirror && self.dry_run {
            Mode::DryRun
        } else {
            mode
        };
        let timeout = Duration::from_secs(self.timeout);
        let source = endpoint(
            "source",
            &self.source,
            self.source_token.as_deref(),
            self.source_username.as_deref(),
            self.source_auth,
            NetworkOptions {
                ca_file: self.ca_file.clone(),
                insecure: self.source_insecure,
                proxy: self.proxy.clone(),
                timeout,
            },
        )?;
        let destination = endpoint(
            "destination",
            &self.destination,
            self.dest_token.as_deref(),
            self.dest_username.as_deref(),
            self.dest_auth,
            NetworkOptions {
                ca_file: self.ca_file.clone(),
                insecure: self.dest_insecure,
                proxy: self.proxy.clone(),
                timeout,
            },
        )?;
        Ok(Options {
            source,
            destination,
            selection: RefSelection::new(&self.include, &self.exclude)?,
            prune: !self.no_prune,
            force: self.force,
            mode,
        })
    }
}

fn endpoint(
    side: &str,
    arg: &str,
    token: Option<&str>,
    username: Option<&str>,
    auth: AuthArg,
    network: NetworkOptions,
) -> Result<Endpoint, String> {
    if let Some(token) = token {
        // Learn the secret before anything could print it.
        crate::auth::register_secret(token);
    }
    let location = Location::parse(arg).map_err(|e| format!("{side}: {e}"))?;
    let credentials = match &location {
        Location::Http {
            url,
            username: url_username,
            password,
        } => Credentials::resolve(&CredentialSources {
            username,
            token,
            url_username: url_username.as_deref(),
            url_password: password.as_deref(),
            scheme: auth.into(),
            default_username: if url.host_str() == Some("github.com") {
                "x-access-token"
            } else {
                "git"
            },
        }),
        Location::Local(_) => None,
    };
    Ok(Endpoint {
        location,
        credentials,
        network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
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

//! The config file of `git-relay serve` (TOML): where the endpoints
//! listen, how the queue behaves, the webhook senders, and the mirrors and
//! sweeps to keep in step.
//!
//! A mirror entry takes exactly the flags of `git-relay mirror` (a sweep
//! those of `mirror-all`): every key but a few of the entry's own becomes
//! `--key=value` and the vector goes through `cli`'s clap definitions, so
//! the validation, defaults and messages are the command line's. Secrets
//! are never in the file: a secret-bearing flag or webhook secret is a
//! reference, `{ env = "NAME" }` or `{ file = "PATH" }`, read when it is
//! used and registered with the redactor before anything can print it.
//!
//! Everything is checked at load (every entry's settings built once, its
//! secrets read), so a bad entry stops the start, with the file and line,
//! instead of failing its first run hours later.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use crate::cli::{self, SECRET_FLAGS};
use crate::mirror::{LocalOptions, Mode, Options, RetryPolicy};
use crate::transport::Location;

/// Where the endpoints listen unless `listen` says otherwise.
const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Mirrors running at once unless `concurrency` says otherwise.
const DEFAULT_CONCURRENCY: usize = 4;
/// The most `concurrency` may be: each run holds a thread and two
/// connections, and hosts rate-limit well before this.
const MAX_CONCURRENCY: usize = 64;
const DEFAULT_POLL: Duration = Duration::from_secs(10 * 60);
/// Runs of one mirror start at least this far apart unless told otherwise.
const DEFAULT_SPACING: Duration = Duration::from_secs(1);
const DEFAULT_GRACE: Duration = Duration::from_secs(60);
const DEFAULT_RETRIES: u32 = 5;
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(30);
const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10 * 60);
const DEFAULT_MAX_BODY: usize = 4 << 20;

/// Flags that make no sense in a service, with the reason given.
const REFUSED: [(&str, &str); 5] = [
    (
        "json",
        "a service reports each run on /status.json, not on stdout",
    ),
    (
        "junit",
        "a service has no single run to report: /status and /metrics show every mirror",
    ),
    (
        "metrics",
        "GET /metrics serves the metrics of every mirror, always current",
    ),
    (
        "dry-run",
        "a service mirrors; `git-relay status SOURCE DESTINATION` shows a plan",
    ),
    ("local-source", "it is a hidden flag for tests"),
];

/// What `git-relay serve --config FILE` says.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    /// Where the webhook, status and metrics endpoints listen.
    pub(crate) listen: SocketAddr,
    /// Mirrors and sweeps running at once, all together (1 to 64).
    pub(crate) concurrency: usize,
    /// The least time between the starts of two runs of one mirror
    /// (`spacing`, default 1 s; "off": none), so that a burst of pushes
    /// costs a few runs however quick each run is. Polling intervals are
    /// the entries' own (`MirrorEntry::poll`).
    pub(crate) spacing: Duration,
    /// At SIGTERM, how long running mirrors may take to finish.
    pub(crate) grace: Duration,
    /// A failed run is tried again this many times...
    pub(crate) retries: u32,
    /// ...first after this long, each later wait doubling...
    pub(crate) retry_delay: Duration,
    /// ...up to this.
    pub(crate) retry_max: Duration,
    /// The largest webhook body accepted, in bytes.
    pub(crate) max_body: usize,
    /// The webhook senders, secrets read.
    pub(crate) webhooks: Webhooks,
    /// The `[[mirror]]` entries, in file order.
    pub(crate) mirrors: Vec<MirrorEntry>,
    /// The `[[sweep]]` entries, in file order.
    pub(crate) sweeps: Vec<SweepEntry>,
}

/// The webhook senders: a forge without a section is `None` (its endpoint
/// answers 404). Secrets are read at load; `Debug` shows none.
#[derive(Default)]
pub(crate) struct Webhooks {
    /// GitHub's HMAC secret (`X-Hub-Signature-256`).
    pub(crate) github: Option<String>,
    /// GitLab's shared token (`X-Gitlab-Token`).
    pub(crate) gitlab: Option<String>,
    /// Azure DevOps service hooks: basic auth and/or a header.
    pub(crate) azure_devops: Option<AzureHook>,
    /// Bitbucket's HMAC secret (`X-Hub-Signature`).
    pub(crate) bitbucket: Option<String>,
    /// Gitea's or Forgejo's HMAC secret.
    pub(crate) gitea: Option<String>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |secret: &Option<String>| secret.as_ref().map(|_| "<secret>");
        f.debug_struct("Webhooks")
            .field("github", &set(&self.github))
            .field("gitlab", &set(&self.gitlab))
            .field("azure_devops", &self.azure_devops)
            .field("bitbucket", &set(&self.bitbucket))
            .field("gitea", &set(&self.gitea))
            .finish()
    }
}

/// How Azure DevOps service hooks prove their sender: basic auth, a
/// header, or both (at least one).
pub(crate) struct AzureHook {
    /// Basic auth: (username, password).
    pub(crate) basic: Option<(String, String)>,
    /// A header: (name, value).
    pub(crate) header: Option<(String, String)>,
}

impl fmt::Debug for AzureHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureHook")
            .field("username", &self.basic.as_ref().map(|(user, _)| user))
            .field("header", &self.header.as_ref().map(|(name, _)| name))
            .finish_non_exhaustive()
    }
}

/// Where a secret is: the config file names it, never holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretRef {
    /// `{ env = "NAME" }`: an environment variable of the server process.
    Env(String),
    /// `{ file = "PATH" }`: a file (a mounted Kubernetes or Docker
    /// secret), read anew each time, so a rotated secret applies to the
    /// next run.
    File(PathBuf),
}

impl SecretRef {
    /// The secret's value, registered with the redactor before it is
    /// returned. A file loses one trailing newline (editors and
    /// `echo > file` add it; no token ends with one); an empty value is an
    /// error, not "no secret".
    pub(crate) fn read(&self) -> Result<String, String> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("the environment variable {name} is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("the environment variable {name} is not UTF-8")
                }
            })?,
            SecretRef::File(path) => {
                let mut text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        crate::auth::register_secret(&value);
        Ok(value)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "the environment variable {name}"),
            SecretRef::File(path) => write!(f, "the file {}", path.display()),
        }
    }
}

/// One `[[mirror]]`: a repository kept equal to its source, as
/// `git-relay mirror SOURCE DESTINATION <flags>` would.
// Its fields are read by the wiring in `serve::mod`, not yet written.
#[derive(Clone, Debug)]
pub(crate) struct MirrorEntry {
    /// Unique among mirrors and sweeps: `name`, else the source's last path
    /// segment without `.git`.
    pub(crate) name: String,
    /// SOURCE as written.
    pub(crate) source: String,
    /// DESTINATION as written.
    pub(crate) destination: String,
    /// How often it is checked without a webhook: its own `poll`, else the
    /// top-level one; `None`: never.
    pub(crate) poll: Option<Duration>,
    flags: Flags,
}

impl MirrorEntry {
    /// Reads the secrets now (so a rotated file applies to the next run) and
    /// builds what `git-relay mirror` would. Call it just before the run:
    /// a `deadline` flag counts from here. An error names the entry.
    pub(crate) fn settings(&self) -> Result<(Options, RetryPolicy, LocalOptions), String> {
        let named = |e: String| format!("mirror \"{}\": {e}", self.name);
        let mut args = cli::args_from::<cli::RelayArgs, _, _>(&self.flags.argv).map_err(named)?;
        for (long, secret) in &self.flags.secrets {
            let value = secret.read().map_err(|e| named(format!("{long}: {e}")))?;
            args.credentials.set_secret(long, value);
        }
        let options = args.options(Mode::Mirror).map_err(named)?;
        let local = args.local_options().map_err(named)?;
        Ok((options, args.network.retry_policy(), local))
    }
}

/// One `[[sweep]]`: every repository of a scope, as `git-relay mirror-all
/// SOURCE_SCOPE DESTINATION_TEMPLATE <flags>` would.
// Its fields are read by the wiring in `serve::mod`, not yet written.
#[derive(Clone, Debug)]
pub(crate) struct SweepEntry {
    /// Unique among mirrors and sweeps: `name`, else the scope's path.
    pub(crate) name: String,
    /// SOURCE_SCOPE (`source` in the file).
    pub(crate) scope: String,
    /// DESTINATION_TEMPLATE (`destination` in the file).
    pub(crate) template: String,
    /// How often the whole sweep runs (new repositories are found then):
    /// its own `poll`, else the top-level one; `None`: never.
    pub(crate) poll: Option<Duration>,
    flags: Flags,
}

impl SweepEntry {
    /// Reads the secrets now and builds what `git-relay mirror-all` would.
    /// An error names the entry.
    pub(crate) fn config(&self) -> Result<crate::config::SweepConfig, String> {
        let named = |e: String| format!("sweep \"{}\": {e}", self.name);
        let mut args =
            cli::args_from::<cli::MirrorAllArgs, _, _>(&self.flags.argv).map_err(named)?;
        for (long, secret) in &self.flags.secrets {
            let value = secret.read().map_err(|e| named(format!("{long}: {e}")))?;
            args.credentials.set_secret(long, value);
        }
        Ok(args.config())
    }
}

/// An entry's command line: the flags and positionals, without secrets,
/// and where each secret flag's value is.
#[derive(Clone, Debug)]
struct Flags {
    argv: Vec<String>,
    secrets: Vec<(&'static str, SecretRef)>,
}

/// Reads the config file at `path`. The message names the file, and the
/// line where one is known.
// The wiring in `serve::mod` (the lead's) is its caller.
pub(crate) fn load(path: &Path) -> Result<ServeConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Reads a config from `text`; `origin` names it in messages (the file).
pub(crate) fn parse(text: &str, origin: &str) -> Result<ServeConfig, String> {
    let file = File { text, origin };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let mut message = e.message().trim_end().to_owned();
        if message.ends_with("expected a sequence") {
            message.push_str(
                " (each mirror or sweep is a [[mirror]] or [[sweep]], in double brackets)",
            );
        }
        match e.span() {
            Some(span) => file.at(&span, &message),
            None => format!("{origin}: {message}"),
        }
    })?;
    let poll = match &raw.poll {
        Some(poll) => file.spanned(poll, |p| interval(p, "poll"))?,
        None => Some(DEFAULT_POLL),
    };
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| match value {
        Some(value) => file.spanned(value, |v| positive(v, key)),
        None => Ok(default),
    };
    let retry_delay = duration(&raw.retry_delay, "retry-delay", DEFAULT_RETRY_DELAY)?;
    let retry_max = duration(&raw.retry_max, "retry-max", DEFAULT_RETRY_MAX)?;
    if retry_max < retry_delay {
        let span = raw.retry_max.as_ref().or(raw.retry_delay.as_ref());
        let span = span.map(Spanned::span).unwrap_or(0..0);
        return Err(file.at(&span, "retry-max is shorter than retry-delay"));
    }
    let grace = match &raw.grace {
        Some(grace) => file.spanned(grace, |g| {
            crate::store::archive::parse_age(g).map_err(|e| format!("grace: {e}"))
        })?,
        None => DEFAULT_GRACE,
    };
    let mut names = Names::default();
    let mut mirrors = Vec::new();
    for (n, entry) in raw.mirror.iter().enumerate() {
        let mirror = mirror_entry(&file, entry, n + 1, poll)?;
        names.claim(&file, entry.span(), "mirror", &mirror.name)?;
        mirror.settings().map_err(|e| file.at(&entry.span(), &e))?;
        mirrors.push(mirror);
    }
    let mut sweeps = Vec::new();
    for (n, entry) in raw.sweep.iter().enumerate() {
        let sweep = sweep_entry(&file, entry, n + 1, poll)?;
        names.claim(&file, entry.span(), "sweep", &sweep.name)?;
        let config = sweep.config().map_err(|e| file.at(&entry.span(), &e))?;
        crate::sweep::check(&config)
            .map_err(|e| file.at(&entry.span(), &format!("sweep \"{}\": {e}", sweep.name)))?;
        sweeps.push(sweep);
    }
    Ok(ServeConfig {
        listen: match &raw.listen {
            Some(listen) => file.spanned(listen, |l| {
                l.trim().parse().map_err(|_| {
                    format!("listen: `{l}` is not an IP address and port, e.g. 0.0.0.0:8080 or [::]:8080")
                })
            })?,
            None => DEFAULT_LISTEN.parse().expect("a valid address"),
        },
        concurrency: match &raw.concurrency {
            Some(n) => file.spanned(n, |&n| {
                usize::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
                    .ok_or_else(|| format!("concurrency: {n} is not between 1 and {MAX_CONCURRENCY}"))
            })?,
            None => DEFAULT_CONCURRENCY,
        },
        spacing: match &raw.spacing {
            Some(spacing) => file.spanned(spacing, |s| interval(s, "spacing"))?
                .unwrap_or(Duration::ZERO),
            None => DEFAULT_SPACING,
        },
        grace,
        retries: match &raw.retries {
            Some(n) => file.spanned(n, |&n| {
                u32::try_from(n).map_err(|_| format!("retries: {n} is not a count (0 or more)"))
            })?,
            None => DEFAULT_RETRIES,
        },
        retry_delay,
        retry_max,
        max_body: match &raw.max_body {
            Some(size) => file.spanned(size, max_body)?,
            None => DEFAULT_MAX_BODY,
        },
        webhooks: webhooks(&file, &raw.webhooks)?,
        mirrors,
        sweeps,
    })
}

/// The file being read, for messages that name it and a line.
struct File<'a> {
    text: &'a str,
    origin: &'a str,
}

impl File<'_> {
    /// `message` prefixed with the file and the line `span` starts on.
    fn at(&self, span: &Range<usize>, message: &str) -> String {
        let start = span.start.min(self.text.len());
        let line = self.text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("{}:{line}: {message}", self.origin)
    }

    /// Reads a spanned value with `read`, its error placed at its line.
    fn spanned<T, U>(
        &self,
        value: &Spanned<T>,
        read: impl FnOnce(&T) -> Result<U, String>,
    ) -> Result<U, String> {
        read(value.get_ref()).map_err(|e| self.at(&value.span(), &e))
    }
}

/// The names taken so far (mirrors and sweeps share one set: they share
/// the status page and the metrics' labels).
#[derive(Default)]
struct Names(HashMap<String, Range<usize>>);

impl Names {
    fn claim(
        &mut self,
        file: &File<'_>,
        span: Range<usize>,
        kind: &str,
        name: &str,
    ) -> Result<(), String> {
        if let Some(first) = self.0.get(name) {
            let first = file.at(first, "");
            let first = first.trim_end_matches(": ");
            return Err(file.at(
                &span,
                &format!("{kind} \"{name}\": the name is taken already (at {first}); give one of them another `name`"),
            ));
        }
        self.0.insert(name.to_owned(), span);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    listen: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    poll: Option<Spanned<String>>,
    spacing: Option<Spanned<String>>,
    grace: Option<Spanned<String>>,
    retries: Option<Spanned<i64>>,
    retry_delay: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
    max_body: Option<Spanned<Value>>,
    #[serde(default)]
    webhooks: RawWebhooks,
    #[serde(default)]
    mirror: Vec<Spanned<Entry>>,
    #[serde(default)]
    sweep: Vec<Spanned<Entry>>,
}

/// A `[[mirror]]` or `[[sweep]]` table: its keys are flags, read in
/// [`flags`] against clap's definitions.
type Entry = BTreeMap<String, Spanned<Value>>;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawWebhooks {
    github: Option<HmacHook>,
    gitlab: Option<TokenHook>,
    azure_devops: Option<Spanned<RawAzureHook>>,
    bitbucket: Option<HmacHook>,
    gitea: Option<HmacHook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HmacHook {
    secret: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenHook {
    token: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAzureHook {
    username: Option<String>,
    password: Option<Spanned<Value>>,
    header: Option<String>,
    value: Option<Spanned<Value>>,
}

fn webhooks(file: &File<'_>, raw: &RawWebhooks) -> Result<Webhooks, String> {
    let secret = |value: &Spanned<Value>, what: &str| -> Result<String, String> {
        file.spanned(value, |v| {
            let reference = secret_ref(v, what)?;
            reference.read().map_err(|e| format!("{what}: {e}"))
        })
    };
    let hmac = |hook: &Option<HmacHook>, forge: &str| {
        (hook.as_ref())
            .map(|h| secret(&h.secret, &format!("webhooks.{forge}.secret")))
            .transpose()
    };
    let azure_devops = match &raw.azure_devops {
        None => None,
        Some(hook) => {
            let span = hook.span();
            let hook = hook.get_ref();
            let pair = |name: &Option<String>,
                        value: &Option<Spanned<Value>>,
                        keys: [&str; 2]|
             -> Result<Option<(String, String)>, String> {
                match (name, value) {
                    (None, None) => Ok(None),
                    (Some(name), Some(value)) if !name.trim().is_empty() => {
                        let what = format!("webhooks.azure-devops.{}", keys[1]);
                        Ok(Some((name.trim().to_owned(), secret(value, &what)?)))
                    }
                    _ => Err(file.at(
                        &span,
                        &format!(
                            "webhooks.azure-devops: `{}` and `{}` go together",
                            keys[0], keys[1]
                        ),
                    )),
                }
            };
            let basic = pair(&hook.username, &hook.password, ["username", "password"])?;
            let header = pair(&hook.header, &hook.value, ["header", "value"])?;
            if basic.is_none() && header.is_none() {
                return Err(file.at(&span, "webhooks.azure-devops: set `username` and `password` (basic auth) or `header` and `value`, or both: a hook that anyone may call is refused"));
            }
            if let Some((name, _)) = &header {
                if axum::http::HeaderName::try_from(name.as_str()).is_err() {
                    return Err(file.at(
                        &span,
                        &format!("webhooks.azure-devops.header: `{name}` is not a header name"),
                    ));
                }
            }
            Some(AzureHook { basic, header })
        }
    };
    Ok(Webhooks {
        github: hmac(&raw.github, "github")?,
        gitlab: (raw.gitlab.as_ref())
            .map(|h| secret(&h.token, "webhooks.gitlab.token"))
            .transpose()?,
        azure_devops,
        bitbucket: hmac(&raw.bitbucket, "bitbucket")?,
        gitea: hmac(&raw.gitea, "gitea")?,
    })
}

/// How a secret is written in the file.
const SECRET_HOWTO: &str =
    "write where it is, { env = \"NAME\" } or { file = \"/path\" }: a secret is never written in the config file";

/// Reads a secret reference: `{ env = "NAME" }` or `{ file = "PATH" }`.
fn secret_ref(value: &Value, what: &str) -> Result<SecretRef, String> {
    let Value::Table(table) = value else {
        return Err(format!("{what} is a secret: {SECRET_HOWTO}"));
    };
    let mut keys = table.iter();
    match (keys.next(), keys.next()) {
        (Some((key, Value::String(name))), None) if key == "env" && !name.is_empty() => {
            Ok(SecretRef::Env(name.clone()))
        }
        (Some((key, Value::String(path))), None) if key == "file" && !path.is_empty() => {
            Ok(SecretRef::File(PathBuf::from(path)))
        }
        _ => Err(format!("{what}: {SECRET_HOWTO}")),
    }
}

/// A polling interval: a duration, or "off".
fn interval(text: &str, key: &str) -> Result<Option<Duration>, String> {
    match text.trim() {
        "off" => Ok(None),
        _ => positive(text, key).map(Some),
    }
}

/// A duration such as "90s", "10m", "1h", "1d"; zero is refused.
fn positive(text: &str, key: &str) -> Result<Duration, String> {
    match crate::store::archive::parse_age(text) {
        Ok(d) if d.is_zero() => Err(format!("{key} must be longer than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{key}: {e}")),
    }
}

fn max_body(value: &Value) -> Result<usize, String> {
    let bytes = match value {
        Value::String(text) => {
            crate::config::parse_size(text).map_err(|e| format!("max-body: {e}"))?
        }
        Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("max-body: {n} is negative"))?,
        _ => return Err("max-body: write a size, e.g. \"4MiB\", or a number of bytes".into()),
    };
    match usize::try_from(bytes) {
        Ok(0) => Err("max-body must be more than zero".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("max-body: {bytes} is too large")),
    }
}

/// The keys of an entry that are not flags.
const ENTRY_KEYS: [&str; 4] = ["name", "source", "destination", "poll"];

/// What an entry's own keys say.
struct Common {
    name: String,
    source: String,
    destination: String,
    poll: Option<Duration>,
}

/// Reads the keys every entry has; `kind` ("mirror", "sweep") and its
/// position `n` name it until it has a name.
fn common(
    file: &File<'_>,
    entry: &Spanned<Entry>,
    kind: &str,
    n: usize,
    default_poll: Option<Duration>,
    default_name: fn(&str) -> Option<String>,
) -> Result<Common, String> {
    let span = entry.span();
    let entry = entry.get_ref();
    let string = |key: &str, label: &str| -> Result<Option<String>, String> {
        match entry.get(key) {
            None => Ok(None),
            Some(value) => file.spanned(value, |v| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                _ => Err(format!("{label}: `{key}` must be a non-empty string")),
            }),
        }
    };
    let numbered = format!("{kind} #{n}");
    let source = string("source", &numbered)?;
    let name = match string("name", &numbered)? {
        Some(name) if name.chars().any(char::is_control) => {
            return Err(file.at(
                &span,
                &format!("{numbered}: the name holds control characters"),
            ))
        }
        Some(name) => name,
        None => match source.as_deref().and_then(default_name) {
            Some(name) => name,
            None => {
                return Err(file.at(
                    &span,
                    &format!("{numbered}: no name can be made from its source: give it a `name`"),
                ))
            }
        },
    };
    let label = format!("{kind} \"{name}\"");
    let (Some(source), Some(destination)) = (source, string("destination", &label)?) else {
        return Err(file.at(
            &span,
            &format!("{label}: `source` and `destination` are required"),
        ));
    };
    for (key, location) in [("source", &source), ("destination", &destination)] {
        if matches!(
            Location::parse(location),
            Ok(Location::Http {
                password: Some(_),
                ..
            })
        ) {
            let flag = if key == "source" {
                "source-token"
            } else {
                "dest-token"
            };
            return Err(file.at(
                &entry[key].span(),
                &format!("{label}: the {key} URL holds a password: leave it out and set {flag} = {{ env = \"NAME\" }} or {{ file = \"/path\" }}"),
            ));
        }
    }
    let poll = match entry.get("poll") {
        None => default_poll,
        Some(value) => file.spanned(value, |v| match v {
            Value::String(text) => interval(text, &format!("{label}: poll")),
            _ => Err(format!(
                "{label}: poll: write a duration, e.g. \"5m\", or \"off\""
            )),
        })?,
    };
    Ok(Common {
        name,
        source,
        destination,
        poll,
    })
}

fn mirror_entry(
    file: &File<'_>,
    entry: &Spanned<Entry>,
    n: usize,
    default_poll: Option<Duration>,
) -> Result<MirrorEntry, String> {
    let common = common(file, entry, "mirror", n, default_poll, mirror_name)?;
    let label = format!("mirror \"{}\"", common.name);
    let mut flags = flags(
        file,
        entry.get_ref(),
        &cli::argv_command::<cli::RelayArgs>(),
        &label,
    )?;
    flags.argv.extend([
        "--".to_owned(),
        common.source.clone(),
        common.destination.clone(),
    ]);
    Ok(MirrorEntry {
        name: common.name,
        source: common.source,
        destination: common.destination,
        poll: common.poll,
        flags,
    })
}

fn sweep_entry(
    file: &File<'_>,
    entry: &Spanned<Entry>,
    n: usize,
    default_poll: Option<Duration>,
) -> Result<SweepEntry, String> {
    let common = common(file, entry, "sweep", n, default_poll, sweep_name)?;
    let label = format!("sweep \"{}\"", common.name);
    let mut flags = flags(
        file,
        entry.get_ref(),
        &cli::argv_command::<cli::MirrorAllArgs>(),
        &label,
    )?;
    flags.argv.extend([
        "--".to_owned(),
        common.source.clone(),
        common.destination.clone(),
    ]);
    Ok(SweepEntry {
        name: common.name,
        scope: common.source,
        template: common.destination,
        poll: common.poll,
        flags,
    })
}

/// A mirror's default name: its source's last path segment without `.git`.
fn mirror_name(source: &str) -> Option<String> {
    let path = source.split(['?', '#']).next().unwrap_or_default();
    let last = path.trim_end_matches('/').rsplit(['/', ':', '\\']).next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_owned())
}

/// A sweep's default name: its scope's path (`acme`, `org/project`), or
/// its host where the path is empty (`https://org.visualstudio.com`).
fn sweep_name(scope: &str) -> Option<String> {
    let url = url::Url::parse(scope).ok()?;
    let path: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match path.is_empty() {
        true => url.host_str().map(str::to_owned),
        false => Some(path.join("/")),
    }
}

/// Turns an entry's flag keys into an argument vector for `command`
/// (`mirror`'s or `mirror-all`'s flags), secrets set aside.
fn flags(
    file: &File<'_>,
    entry: &Entry,
    command: &clap::Command,
    label: &str,
) -> Result<Flags, String> {
    let mut flags = Flags {
        argv: Vec::new(),
        secrets: Vec::new(),
    };
    for (key, value) in entry {
        if ENTRY_KEYS.contains(&key.as_str()) {
            continue;
        }
        let fail = |message: String| file.at(&value.span(), &format!("{label}: {message}"));
        if let Some((_, why)) = REFUSED.iter().find(|(refused, _)| refused == key) {
            return Err(fail(format!("`{key}` has no place in a service: {why}")));
        }
        let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(key)) else {
            // clap says what is wrong with it, and what was meant.
            flags.argv.push(format!("--{key}"));
            continue;
        };
        if let Some(&long) = SECRET_FLAGS.iter().find(|&&s| s == key) {
            let reference = secret_ref(value.get_ref(), key).map_err(fail)?;
            flags.secrets.push((long, reference));
            continue;
        }
        let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let scalar = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Integer(n) => Some(n.to_string()),
            _ => None,
        };
        match value.get_ref() {
            Value::Boolean(true) => flags.argv.push(format!("--{key}")),
            Value::Boolean(false) if switch => {}
            Value::Boolean(false) => {
                return Err(fail(format!("`{key} = false`: --{key} takes a value")))
            }
            Value::Array(items) => {
                for item in items {
                    let item = scalar(item).ok_or_else(|| {
                        fail(format!("`{key}`: each item must be a string or a number"))
                    })?;
                    flags.argv.push(format!("--{key}={item}"));
                }
            }
            Value::Table(_) => {
                return Err(fail(format!(
                    "`{key}` takes a value, not a table (only {} are secret references)",
                    SECRET_FLAGS.join(" and ")
                )))
            }
            other => {
                let item = scalar(other).ok_or_else(|| {
                    fail(format!(
                        "`{key}`: write true, a string, a number or an array"
                    ))
                })?;
                flags.argv.push(format!("--{key}={item}"));
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../docs/serve.example.toml");

    /// A directory of secret files, one per name, each holding `value`.
    struct Secrets(tempfile::TempDir);

    impl Secrets {
        fn new() -> Secrets {
            Secrets(tempfile::tempdir().unwrap())
        }

        /// Writes `value` and a newline to the file `name`, returning its
        /// reference as written in a config.
        fn file(&self, name: &str, value: &str) -> String {
            let path = self.0.path().join(name);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            format!("{{ file = \"{}\" }}", path.display())
        }
    }

    fn header(options: &Options, source: bool) -> String {
        let side = if source {
            &options.source
        } else {
            &options.destination
        };
        side.credentials
            .as_ref()
            .expect("credentials")
            .header()
            .unwrap()
    }

    /// The configurations the README and the Kubernetes example show load
    /// as they are written, their secrets given as files.
    #[test]
    fn the_documented_configurations_load() {
        let readme = include_str!("../../README.md");
        let readme = readme
            .split("```toml\n# serve.toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("README's serve.toml example");
        let kubernetes = include_str!("../../docs/serve/kubernetes.yaml");
        let kubernetes: String = kubernetes
            .split("  serve.toml: |\n")
            .nth(1)
            .and_then(|rest| rest.split("---").next())
            .expect("the ConfigMap's serve.toml")
            .lines()
            .map(|line| format!("{}\n", line.strip_prefix("    ").unwrap_or(line)))
            .collect();
        let secrets = Secrets::new();
        let reference = regex::Regex::new(r#"\{ (env|file) = "(?:[^"]*/)?([^"/]+)" \}"#).unwrap();
        for (name, text) in [("README.md", readme), ("kubernetes.yaml", &kubernetes)] {
            let text = reference.replace_all(text, |c: &regex::Captures<'_>| {
                secrets.file(&c[2], &format!("documented-secret-{}", &c[2]))
            });
            let config = parse(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(config.mirrors.len(), 1, "{name}");
            assert_eq!(config.sweeps.len(), 1, "{name}");
            assert!(config.webhooks.github.is_some(), "{name}");
            config.mirrors[0].settings().unwrap();
            config.sweeps[0].config().unwrap();
        }
    }

    #[test]
    fn the_example_file_loads() {
        // Each `{ env = "NAME" }` and `{ file = "/run/secrets/NAME" }` of the
        // example becomes a file in a temporary directory: the test changes
        // no environment variable that other tests could be reading.
        let secrets = Secrets::new();
        let reference =
            regex::Regex::new(r#"\{ (env|file) = "(?:/run/secrets/)?([^"]+)" \}"#).unwrap();
        let text = reference.replace_all(EXAMPLE, |c: &regex::Captures<'_>| {
            secrets.file(&c[2], &format!("example-secret-of-{}", &c[2]))
        });
        assert!(!text.contains("env ="), "every reference rewritten");
        let config = parse(&text, "serve.example.toml").unwrap();

        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.spacing, Duration::from_secs(1));
        assert_eq!(config.grace, Duration::from_secs(60));
        assert_eq!(
            (config.retries, config.retry_delay, config.retry_max),
            (5, Duration::from_secs(30), Duration::from_secs(600))
        );
        assert_eq!(config.max_body, 4 << 20);

        let hooks = &config.webhooks;
        assert_eq!(
            hooks.github.as_deref(),
            Some("example-secret-of-GITHUB_WEBHOOK_SECRET")
        );
        assert_eq!(
            hooks.gitlab.as_deref(),
            Some("example-secret-of-gitlab-webhook-token")
        );
        let azure = hooks.azure_devops.as_ref().unwrap();
        assert_eq!(
            azure.basic,
            Some((
                "relay".to_owned(),
                "example-secret-of-AZDO_HOOK_PASSWORD".to_owned()
            ))
        );
        assert_eq!(azure.header, None);
        assert!(hooks.bitbucket.is_some() && hooks.gitea.is_some());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("example-secret"),
            "Debug shows no secret: {shown}"
        );

        let names: Vec<&str> = config.mirrors.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["widgets", "api"]);
        let widgets = &config.mirrors[0];
        assert_eq!(widgets.poll, Some(Duration::from_secs(300)));
        assert_eq!(widgets.destination, "https://github.com/acme/widgets.git");
        let (options, _, _) = widgets.settings().unwrap();
        assert!(!options.force);
        assert_eq!(
            options.push.max_bytes,
            crate::mirror::PushBudget::Bytes(1 << 30)
        );
        assert!(header(&options, true).starts_with("Basic "));
        let api = &config.mirrors[1];
        assert_eq!(api.poll, Some(Duration::from_secs(3600)));
        let (_, _, local) = api.settings().unwrap();
        assert_eq!(
            local.prune_archive_older_than,
            Some(Duration::from_secs(30 * 86_400))
        );

        assert_eq!(config.sweeps.len(), 1);
        let acme = &config.sweeps[0];
        assert_eq!(
            (acme.name.as_str(), acme.scope.as_str()),
            ("acme", "https://github.com/acme")
        );
        assert_eq!(acme.poll, Some(Duration::from_secs(3600)));
        let sweep = acme.config().unwrap();
        assert!(sweep.skip_archived && sweep.create_in.is_some());
        assert_eq!(sweep.skip, ["^acme/sandbox-"]);
        assert_eq!(
            sweep.source.token.as_deref(),
            Some("example-secret-of-GITHUB_TOKEN")
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "concurrency = 3\n").unwrap();
        assert_eq!(load(&path).unwrap().concurrency, 3);
        std::fs::write(&path, "concurrency = 3\nconcurrency = 4\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.starts_with(&format!("{}:2: ", path.display())), "{err}");
        let missing = dir.path().join("missing.toml");
        let err = load(&missing).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "cannot read the config file {}: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("", "serve.toml").unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.spacing, Duration::from_secs(1));
        assert_eq!(config.grace, Duration::from_secs(60));
        assert_eq!(config.retries, 5);
        assert_eq!(config.retry_delay, Duration::from_secs(30));
        assert_eq!(config.retry_max, Duration::from_secs(600));
        assert_eq!(config.max_body, 4 * 1024 * 1024);
        let hooks = &config.webhooks;
        assert!(hooks.github.is_none() && hooks.gitlab.is_none() && hooks.azure_devops.is_none());
        assert!(hooks.bitbucket.is_none() && hooks.gitea.is_none());
        assert!(config.mirrors.is_empty() && config.sweeps.is_empty());
    }

    #[test]
    fn a_mirror_polls_as_the_top_level_unless_it_says_and_off_is_never() {
        let text = r#"
            poll = "off"
            [[mirror]]
            source = "/srv/git/a.git"
            destination = "/backup/a.git"
            [[mirror]]
            source = "/srv/git/b"
            destination = "/backup/b.git"
            poll = "90s"
        "#;
        let config = parse(text, "serve.toml").unwrap();
        assert_eq!(config.mirrors[0].name, "a");
        assert_eq!(config.mirrors[0].poll, None);
        assert_eq!(config.mirrors[1].name, "b");
        assert_eq!(config.mirrors[1].poll, Some(Duration::from_secs(90)));
        let text = "[[mirror]]\nsource = \"/a\"\ndestination = \"/b\"\npoll = \"off\"\n";
        assert_eq!(parse(text, "serve.toml").unwrap().mirrors[0].poll, None);
    }

    #[test]
    fn top_level_values_are_checked_with_their_line() {
        for (text, expected) in [
            (
                "listen = \"localhost\"",
                "serve.toml:1: listen: `localhost` is not an IP address",
            ),
            (
                "\nconcurrency = 0",
                "serve.toml:2: concurrency: 0 is not between 1 and 64",
            ),
            (
                "concurrency = 65",
                "concurrency: 65 is not between 1 and 64",
            ),
            ("poll = \"0s\"", "poll must be longer than zero"),
            ("poll = \"10\"", "poll: `10`: unknown unit"),
            (
                "grace = 60",
                "serve.toml:1: invalid type: integer `60`, expected a string",
            ),
            ("retries = -1", "retries: -1 is not a count"),
            (
                "retry-delay = \"5m\"\nretry-max = \"1m\"",
                "serve.toml:2: retry-max is shorter than retry-delay",
            ),
            ("max-body = \"0\"", "max-body must be more than zero"),
            (
                "max-body = \"4 parsecs\"",
                "max-body: `4 parsecs`: unknown unit",
            ),
        ] {
            let err = parse(text, "serve.toml").unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let config = parse(
            "max-body = 1024\nlisten = \"[::1]:9000\"\ngrace = \"0s\"",
            "f",
        )
        .unwrap();
        assert_eq!(config.max_body, 1024);
        assert_eq!(config.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(config.grace, Duration::ZERO);
    }

    #[test]
    fn an_unknown_top_level_key_is_an_error_naming_file_and_line() {
        let err = parse(
            "concurrency = 2\nlisen = \"0.0.0.0:1\"\n",
            "/etc/relay.toml",
        )
        .unwrap_err();
        assert!(
            err.starts_with("/etc/relay.toml:2: unknown field `lisen`"),
            "{err}"
        );
        let err = parse("[mirror]\nsource = \"/a\"\n", "f").unwrap_err();
        assert!(err.contains("in double brackets"), "{err}");
        let err = parse("[[mirrors]]\nsource = \"/a\"\n", "f").unwrap_err();
        assert!(err.contains("unknown field `mirrors`"), "{err}");
        let err = parse("[webhooks.githab]\nsecret = { env = \"X\" }\n", "f").unwrap_err();
        assert!(err.contains("unknown field `githab`"), "{err}");
    }

    #[test]
    fn an_unknown_flag_is_what_clap_says_naming_the_entry() {
        let text = "\n[[mirror]]\nname = \"widgets\"\nsource = \"/a\"\ndestination = \"/b\"\nforse = true\n";
        let err = parse(text, "serve.toml").unwrap_err();
        assert!(
            err.starts_with("serve.toml:2: mirror \"widgets\": unexpected argument '--forse'"),
            "{err}"
        );
        assert!(err.contains("'--force'"), "clap's suggestion: {err}");
        // A flag of `mirror-all` is unknown to `mirror`, and the other way round.
        let text = "[[mirror]]\nsource = \"/a\"\ndestination = \"/b\"\nskip-archived = true\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("mirror \"a\": unexpected argument '--skip-archived'"),
            "{err}"
        );
        let text = "[[sweep]]\nsource = \"https://github.com/acme\"\ndestination = \"/b/{repo}\"\nprune-archive-older-than = \"1d\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("sweep \"acme\": unexpected argument '--prune-archive-older-than'"),
            "{err}"
        );
    }

    #[test]
    fn flag_values_are_checked_as_on_the_command_line() {
        let entry = |flags: &str| {
            format!("[[mirror]]\nsource = \"/src/w.git\"\ndestination = \"/b\"\n{flags}\n")
        };
        for (flags, expected) in [
            (
                "dest-max-push-bytes = \"big\"",
                "mirror \"w\": invalid value 'big' for '--dest-max-push-bytes <SIZE>'",
            ),
            (
                "retries = true",
                "mirror \"w\": a value is required for '--retries <N>'",
            ),
            (
                "retries = false",
                "mirror \"w\": `retries = false`: --retries takes a value",
            ),
            (
                "proxy = [\"http://a:1\", \"http://b:1\"]",
                "mirror \"w\": the argument '--proxy <URL>' cannot be used multiple times",
            ),
            (
                "proxy = { env = \"P\" }",
                "mirror \"w\": `proxy` takes a value, not a table",
            ),
            (
                "include = [true]",
                "`include`: each item must be a string or a number",
            ),
            (
                "timeout = 1.5",
                "`timeout`: write true, a string, a number or an array",
            ),
        ] {
            let err = parse(&entry(flags), "f").unwrap_err();
            assert!(err.contains(expected), "{flags}: {err}");
        }
        let text = entry("force = true\nno-prune = false\ninclude = [\"refs/heads/*\", \"refs/tags/*\"]\nexclude = \"refs/heads/tmp/*\"\nretries = 0\nlfs = \"never\"");
        let config = parse(&text, "f").unwrap();
        let (options, retry, _) = config.mirrors[0].settings().unwrap();
        assert!(options.force && options.prune);
        assert_eq!(retry.retries, 0);
        assert_eq!(options.lfs.mode, crate::mirror::LfsMode::Never);
        let selected = |r: &str| options.selection.selects(r);
        assert!(selected("refs/heads/main") && selected("refs/tags/v1"));
        assert!(!selected("refs/heads/tmp/x") && !selected("refs/notes/n"));
    }

    #[test]
    fn flags_without_a_place_in_a_service_are_refused_with_the_reason() {
        for (key, why) in [
            ("json = true", "/status.json"),
            ("junit = \"r.xml\"", "/metrics"),
            ("metrics = \"m.prom\"", "/metrics"),
            ("dry-run = true", "git-relay status"),
            ("local-source = \"git\"", "hidden flag for tests"),
        ] {
            let text = format!("[[mirror]]\nsource = \"/a\"\ndestination = \"/b\"\n{key}\n");
            let err = parse(&text, "f").unwrap_err();
            assert!(
                err.contains("has no place in a service") && err.contains(why),
                "{key}: {err}"
            );
            assert!(err.starts_with("f:4: mirror \"a\": "), "{err}");
        }
    }

    #[test]
    fn a_literal_secret_is_refused_and_not_repeated() {
        let text = "[[mirror]]\nsource = \"https://h.example/a.git\"\ndestination = \"/b\"\nsource-token = \"ghp_literalLiteral123\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.starts_with("f:4: mirror \"a\": source-token is a secret"),
            "{err}"
        );
        assert!(
            err.contains("{ env = \"NAME\" }") && err.contains("{ file = \"/path\" }"),
            "{err}"
        );
        assert!(!err.contains("ghp_literal"), "{err}");
        let text = "[[sweep]]\nsource = \"https://github.com/acme\"\ndestination = \"/b/{repo}\"\ndest-token = { value = \"x\" }\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("sweep \"acme\": dest-token: write where it is"),
            "{err}"
        );
        for hook in [
            "[webhooks.github]\nsecret = \"s3cr3t-hook-secret\"",
            "[webhooks.gitlab]\ntoken = \"s3cr3t-hook-secret\"",
            "[webhooks.azure-devops]\nusername = \"u\"\npassword = \"s3cr3t-hook-secret\"",
        ] {
            let err = parse(hook, "f").unwrap_err();
            assert!(
                err.contains("is a secret: write where it is"),
                "{hook}: {err}"
            );
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        // A password in a URL is a secret written inline too.
        let text = "[[mirror]]\nsource = \"https://user:pa55word-inline@h.example/a.git\"\ndestination = \"/b\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("mirror \"a\": the source URL holds a password"),
            "{err}"
        );
        assert!(!err.contains("pa55word"), "{err}");
    }

    #[test]
    fn webhook_sections_are_checked() {
        let secrets = Secrets::new();
        let value = secrets.file("hook", "azure-hook-value-1");
        let text = format!("[webhooks.azure-devops]\nheader = \"X-Relay-Key\"\nvalue = {value}\n");
        let hook = parse(&text, "f").unwrap().webhooks.azure_devops.unwrap();
        assert_eq!(hook.basic, None);
        assert_eq!(
            hook.header,
            Some(("X-Relay-Key".to_owned(), "azure-hook-value-1".to_owned()))
        );
        for (text, expected) in [
            ("[webhooks.azure-devops]\n".to_owned(), "a hook that anyone may call is refused"),
            (format!("[webhooks.azure-devops]\npassword = {value}\n"), "`username` and `password` go together"),
            (format!("[webhooks.azure-devops]\nheader = \"bad header\"\nvalue = {value}\n"), "is not a header name"),
            (format!("[webhooks.github]\nsecret = {value}\nextra = 1\n"), "unknown field `extra`"),
            ("[webhooks.gitea]\nsecret = { env = \"GIT_RELAY_TEST_SURELY_UNSET_42\" }\n".to_owned(), "webhooks.gitea.secret: the environment variable GIT_RELAY_TEST_SURELY_UNSET_42 is not set"),
            (format!("[webhooks.bitbucket]\nsecret = {}\n", secrets.file("empty", "")), "is empty"),
        ] {
            let err = parse(&text, "f").unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_rotated_secret_file_applies_to_the_next_settings() {
        let secrets = Secrets::new();
        let reference = secrets.file("token", "first-rotating-token-1");
        let text = format!(
            "[[mirror]]\nsource = \"https://git.example.com/acme/w.git\"\ndestination = \"/b\"\nsource-auth = \"bearer\"\nsource-token = {reference}\n"
        );
        let config = parse(&text, "f").unwrap();
        let mirror = &config.mirrors[0];
        let (options, _, _) = mirror.settings().unwrap();
        assert_eq!(header(&options, true), "Bearer first-rotating-token-1");
        secrets.file("token", "second-rotating-token-2");
        let (options, _, _) = mirror.settings().unwrap();
        assert_eq!(header(&options, true), "Bearer second-rotating-token-2");
        std::fs::remove_file(secrets.0.path().join("token")).unwrap();
        let err = mirror.settings().unwrap_err();
        assert!(
            err.starts_with("mirror \"w\": source-token: cannot read "),
            "{err}"
        );
    }

    #[test]
    fn a_secret_read_from_a_file_is_redacted() {
        // A webhook secret reaches no engine code that would register it:
        // only `SecretRef::read` can have.
        let secrets = Secrets::new();
        let secret = "hook-secret-to-redact-7f3a9c";
        let text = format!(
            "[webhooks.gitlab]\ntoken = {}\n",
            secrets.file("hook", secret)
        );
        parse(&text, "f").unwrap();
        let line = format!("token={secret} and its start {}", &secret[..12]);
        let shown = crate::auth::redact(&line);
        assert!(!shown.contains("hook-secret"), "{shown}");
        // The file's trailing newline is not part of the secret.
        let secret = "read-secret-to-redact-51b0e2";
        secrets.file("read", secret);
        let value = SecretRef::File(secrets.0.path().join("read"))
            .read()
            .unwrap();
        assert_eq!(value, secret);
        assert!(!crate::auth::redact(secret).contains("read-secret"));
    }

    #[test]
    fn names_are_unique_across_mirrors_and_sweeps() {
        let text = "[[mirror]]\nsource = \"https://a.example/x/widgets.git\"\ndestination = \"/b1\"\n\n[[mirror]]\nsource = \"https://b.example/y/widgets\"\ndestination = \"/b2\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.starts_with("f:5: mirror \"widgets\": the name is taken already (at f:1)"),
            "{err}"
        );
        let text = "[[mirror]]\nname = \"acme\"\nsource = \"/a\"\ndestination = \"/b\"\n[[sweep]]\nsource = \"https://github.com/acme\"\ndestination = \"/b/{repo}\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("sweep \"acme\": the name is taken already"),
            "{err}"
        );
        let text = "[[mirror]]\nsource = \"/\"\ndestination = \"/b\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("mirror #1: no name can be made from its source"),
            "{err}"
        );
        let text = "[[mirror]]\nname = \"w\"\ndestination = \"/b\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.contains("mirror \"w\": `source` and `destination` are required"),
            "{err}"
        );
    }

    #[test]
    fn default_names() {
        assert_eq!(
            mirror_name("https://dev.azure.com/acme/app/_git/widgets").as_deref(),
            Some("widgets")
        );
        assert_eq!(
            mirror_name("https://github.com/acme/widgets.git/").as_deref(),
            Some("widgets")
        );
        assert_eq!(
            mirror_name("git@github.com:acme/widgets.git").as_deref(),
            Some("widgets")
        );
        assert_eq!(
            mirror_name("git@host:widgets.git").as_deref(),
            Some("widgets")
        );
        assert_eq!(
            mirror_name("/srv/git/widgets.git").as_deref(),
            Some("widgets")
        );
        assert_eq!(mirror_name("."), None);
        assert_eq!(
            sweep_name("https://dev.azure.com/org/project").as_deref(),
            Some("org/project")
        );
        assert_eq!(
            sweep_name("https://org.visualstudio.com").as_deref(),
            Some("org.visualstudio.com")
        );
        assert_eq!(
            sweep_name("https://github.com/acme/").as_deref(),
            Some("acme")
        );
    }

    #[test]
    fn a_bad_sweep_fails_the_load() {
        let text =
            "[[sweep]]\nsource = \"https://git.example.com/acme\"\ndestination = \"/b/{repo}\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(
            err.starts_with("f:1: sweep \"acme\": source scope: cannot tell which forge"),
            "{err}"
        );
        let text = "[[sweep]]\nsource = \"https://github.com/acme\"\ndestination = \"/b/{repo}\"\nfilter = \"(\"\n";
        let err = parse(text, "f").unwrap_err();
        assert!(err.contains("sweep \"acme\": --filter `(`"), "{err}");
    }
}

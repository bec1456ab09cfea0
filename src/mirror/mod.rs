//! The mirror engine: list, plan, negotiate, relay, verify, report.
//!
//! A run makes the selected refs of the destination equal to the source's
//! without a local clone. `open` connects to both sides and lists them at
//! once; `relay::relay` does the rest in phases:
//!
//! 1. plan each difference (`plan::Plan`); a no-op stops here;
//! 2. negotiate with the source, offering the destination's tips as haves.
//!    The acknowledgments tell which destination tips the source knows: a
//!    tip it does not know holds commits that exist only on the destination,
//!    and its ref is *protected* (not overwritten or deleted) unless
//!    `--force` (the divergence rule, see docs/architecture.md); decide
//!    each ref;
//! 3. transfer: stream the source's pack, which holds only what the
//!    destination lacks, straight into the destination's receive-pack
//!    after the ref commands. Each command carries the old value we saw,
//!    so the destination applies it only if nobody moved the ref meanwhile;
//! 4. confirm: read the destination's report, list it again and check;
//! 5. point the destination's HEAD at the source's default branch (a
//!    backup; servers keep their own), on every mirror run.
//!
//! Symbolic refs of a remote destination other than HEAD are left alone
//! (see `symbolic_refs`): a push through them fails or hits their target.
//!
//! A local destination is a backup ([`crate::store`], through
//! `store_side`): the same stream goes into git2's pack writer instead of
//! a receive-pack, and refs that would drop history are archived. The
//! engine sees both kinds through `DestinationSide`. A local source is
//! read by `git upload-pack`, or through git2 where there is no `git`
//! (`LocalReader`); the engine sees either through `SourceSide`.
//!
//! The engine knows nothing of command lines or pipelines: it takes
//! [`Options`] and returns a [`Report`].

mod batch;
mod bounds;
mod destination;
mod error;
mod lfs;
mod order;
pub(crate) mod plan;
mod relay;
pub(crate) mod report;
pub(crate) mod select;
mod sides;
mod source;
mod store_side;
mod stream;

use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::output;
use crate::protocol::advertisement::Ref;
use crate::protocol::ObjectId;
use crate::transport::{
    HttpTransport, LocalTransport, Location, NetworkOptions, SshTransport, Transport,
};

use destination::Destination;
use error::Blame;
pub use error::{Side, SideError};
pub use lfs::LfsSummary;
pub(crate) use lfs::{LfsMode, LfsOptions};
pub(crate) use plan::{Action, Plan};
pub use report::{Outcome, RefReport, Report, Totals};
pub(crate) use select::RefSelection;
pub(crate) use sides::{DestinationSide, SourceSide};
use source::Source;
use store_side::{LocalSourceSide, StoreSide};

/// One side of a relay: where it is, how to authenticate, how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// The repository.
    pub(crate) location: Location,
    /// Credentials, if any.
    pub(crate) credentials: Option<Credentials>,
    /// TLS, proxy and timeout settings.
    pub(crate) network: NetworkOptions,
}

impl Endpoint {
    fn open(&self, side: Side) -> Result<Box<dyn Transport>, SideError> {
        let blame = Blame::new(side, &self.location.to_string(), self.network.timeout);
        match &self.location {
            Location::Http { url, .. } => {
                if self.network.insecure {
                    output::warn(format_args!(
                        "{side}: TLS certificate verification is off (--{}-insecure)",
                        if side == Side::Source {
                            "source"
                        } else {
                            "dest"
                        }
                    ));
                }
                let transport =
                    HttpTransport::new(url.clone(), self.credentials.as_ref(), &self.network)
                        .map_err(|e| blame.error(e))?;
                Ok(Box::new(transport))
            }
            Location::Local(path) => {
                let transport = LocalTransport::open(path).map_err(|e| blame.error(e))?;
                Ok(Box::new(transport))
            }
            Location::Ssh {
                user,
                host,
                port,
                path,
            } => {
                let transport = SshTransport::new(
                    user.as_deref(),
                    host,
                    *port,
                    path,
                    &self.location.to_string(),
                    &side.to_string(),
                    &self.network,
                )
                .map_err(|e| blame.error(e))?;
                Ok(Box::new(transport))
            }
        }
    }
}

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Make the destination match.
    Mirror,
    /// Show what `Mirror` would do; change nothing.
    DryRun,
    /// Compare only; change nothing.
    Status,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Mirror => "mirror",
            Mode::DryRun => "dry-run",
            Mode::Status => "status",
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to mirror from.
    pub(crate) source: Endpoint,
    /// Where to mirror to.
    pub(crate) destination: Endpoint,
    /// Which refs take part.
    pub(crate) selection: RefSelection,
    /// Delete destination refs the source does not have.
    pub(crate) prune: bool,
    /// Overwrite or delete destination-only history.
    pub(crate) force: bool,
    /// Mirror, dry run or status.
    pub(crate) mode: Mode,
    /// What one push to the destination may carry.
    pub(crate) push: PushLimits,
    /// Whether and how Git LFS objects move.
    pub(crate) lfs: LfsOptions,
}

/// The most ref updates one push carries unless told otherwise: GitHub
/// answers HTTP 500 to about 10,000 in one push, and takes 5,000.
pub(crate) const DEFAULT_MAX_REF_UPDATES: usize = 5_000;

/// What one push to the destination may carry (`--dest-max-push-bytes`,
/// `--max-ref-updates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PushLimits {
    /// The most pack bytes in one push.
    pub(crate) max_bytes: PushBudget,
    /// The most ref updates in one push.
    pub(crate) max_ref_updates: usize,
}

impl Default for PushLimits {
    fn default() -> PushLimits {
        PushLimits {
            max_bytes: PushBudget::HostDefault,
            max_ref_updates: DEFAULT_MAX_REF_UPDATES,
        }
    }
}

/// The most pack bytes one push may carry, as the user set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushBudget {
    /// The known host's default (`crate::hosts`), or unlimited until the
    /// server refuses a push as too large.
    HostDefault,
    /// No limit (`0`).
    Unlimited,
    /// At most this many bytes.
    Bytes(u64),
}

/// Settings for local repositories: a backup on disk as destination, a
/// local path as source. Kept apart from [`Options`] so that everything
/// building `Options` stays as it is; the default is what `mirror-all` and
/// the pipeline task get: archive, never prune, read local sources the
/// fastest available way.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// Delete archive refs (`refs/archive/<time>/...`) older than this.
    pub(crate) prune_archive_older_than: Option<Duration>,
    /// How a local source is read.
    pub(crate) source_reader: LocalReader,
}

/// How a local source repository is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LocalReader {
    /// The machine's `git upload-pack` when `git` is on PATH (it reuses
    /// stored deltas and sends thin packs), else git2 (no `git` needed).
    /// The hidden `--local-source git|git2` chooses one.
    #[default]
    Auto,
    /// `git upload-pack` through a pipe.
    Git,
    /// libgit2, in-process.
    Git2,
}

impl LocalReader {
    fn resolve(self) -> LocalReader {
        if self != LocalReader::Auto {
            return self;
        }
        let git_runs = crate::child::command("git")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if git_runs {
            LocalReader::Git
        } else {
            LocalReader::Git2
        }
    }
}

/// How transient failures are retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Further attempts after the first.
    pub(crate) retries: u32,
    /// The first wait; each later one doubles, with jitter, up to a minute.
    pub(crate) base_delay: Duration,
}

impl RetryPolicy {
    /// The default number of retries.
    pub(crate) const DEFAULT_RETRIES: u32 = 3;

    /// `retries` further attempts, starting one second apart (the hidden
    /// `--retry-base-ms` shortens that for tests).
    pub(crate) fn new(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            base_delay: Duration::from_secs(1),
        }
    }

    fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        const CAP: Duration = Duration::from_secs(60);
        if let Some(asked) = asked {
            return asked.min(CAP * 2);
        }
        let exp = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(CAP);
        // Jitter in [50%, 100%] keeps parallel runs from retrying in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        exp.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(Self::DEFAULT_RETRIES)
    }
}

/// Runs [`run_with_local`], starting over after a transient failure (a busy
/// server, a refused or cut connection).
///
/// No attempt starts once waiting for it would pass the deadline of the
/// source's [`Limits`](crate::transport::Limits) (both sides are given the
/// same one).
///
/// Starting over is safe at any point, even after a push was cut: the next
/// attempt lists both sides again, and every ref update carries the old
/// value it expects, so a change that did land is seen as done and nothing
/// is applied twice.
pub(crate) fn run_with_retries(opts: &Options, policy: RetryPolicy) -> Result<Report, SideError> {
    run_with_retries_and_local(opts, policy, &LocalOptions::default())
}

/// `run_with_retries` with settings for local repositories.
pub fn run_with_retries_and_local(
    opts: &Options,
    policy: RetryPolicy,
    local: &LocalOptions,
) -> Result<Report, SideError> {
    // The deadline bounds the whole run: no retry starts that could not
    // begin before it.
    let deadline = opts.source.network.limits.deadline;
    let mut attempt = 0;
    loop {
        match run_with_local(opts, local) {
            Err(err) if err.is_transient() && attempt < policy.retries => {
                let wait = policy.delay(attempt, err.retry_after());
                if deadline.is_some_and(|d| d.passed(Instant::now() + wait)) {
                    output::warn(format_args!("not retrying: the --deadline would pass"));
                    return Err(err);
                }
                attempt += 1;
                output::warn(format_args!(
                    "{err}; retrying in {} (attempt {} of {})",
                    output::human_duration(wait),
                    attempt + 1,
                    policy.retries + 1
                ));
                std::thread::sleep(wait);
            }
            result => return result,
        }
    }
}

/// Runs one mirror (or status, or dry run) and reports what happened:
/// `open` lists both sides, `relay::relay` does the rest.
///
/// Per-ref trouble (protected, rejected) is part of the report; an `Err`
/// means the run could not finish, and says which side failed.
pub(crate) fn run_with_local(opts: &Options, local: &LocalOptions) -> Result<Report, SideError> {
    let started = Instant::now();
    let opened = open(opts, local)?;
    output::info(format_args!(
        "source      {} (protocol {}): {} refs",
        opts.source.location,
        opened.source.protocol(),
        opened.source_refs.len()
    ));
    output::info(format_args!(
        "destination {}: {} refs",
        opts.destination.location,
        opened.dest_refs.len()
    ));
    relay::relay(
        opts,
        opened.source.as_ref(),
        opened.destination.as_ref(),
        &opened.source_refs,
        &opened.dest_refs,
        started,
    )
}

/// Both sides of a run, connected and listed.
struct Opened {
    source: Box<dyn SourceSide>,
    destination: Box<dyn DestinationSide>,
    source_refs: Vec<Ref>,
    dest_refs: Vec<Ref>,
}

/// Connects to both sides and lists their refs: a remote destination on a
/// thread of its own while the source is listed, so that a no-op costs one
/// side's round trips rather than both. A backup is opened after the
/// source, whose archive refs it needs, and costs no round trip.
fn open(opts: &Options, local: &LocalOptions) -> Result<Opened, SideError> {
    let store_path = opts.destination.location.local_path();
    let connect = || {
        let transport = opts.destination.open(Side::Destination)?;
        Destination::connect(transport, &opts.destination.network)
    };
    let (source, remote_destination) = std::thread::scope(|scope| {
        // The thread keeps its parent's quiet flag (see `output::quietly`).
        let quiet = output::is_quiet();
        let destination = store_path.is_none().then(|| {
            scope.spawn(move || match quiet {
                true => output::quietly(connect),
                false => connect(),
            })
        });
        let source = open_source(opts, local);
        let destination = destination.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (source, destination)
    });
    // The source's failure comes first, as when the sides were listed in turn.
    let (source, mut source_refs) = source?;
    let (destination, mut dest_refs): (Box<dyn DestinationSide>, _) =
        match (store_path, remote_destination) {
            (Some(path), _) => {
                let display = opts.destination.location.to_string();
                let timeout = opts.destination.network.timeout;
                let opened =
                    StoreSide::open(path, &display, opts.mode, local, timeout, &source_refs);
                let (side, refs) = opened?;
                (Box::new(side), refs)
            }
            (None, Some(connected)) => {
                let (side, refs) = connected?;
                (Box::new(side), refs)
            }
            (None, None) => unreachable!("a remote destination is listed on its own thread"),
        };
    if store_path.is_none() {
        let aliases = symbolic_refs(opts, &source_refs, &dest_refs);
        for (name, target) in &aliases {
            output::warn(format_args!(
                "destination: {name} is a symbolic ref to {target}; it follows {target} and is left alone"
            ));
        }
        let aliased = |r: &Ref| aliases.iter().any(|(name, _)| *name == r.name);
        dest_refs.retain(|r| !aliased(r));
        source_refs.retain(|r| !aliased(r));
    }
    Ok(Opened {
        source,
        destination,
        source_refs,
        dest_refs,
    })
}

/// Connects to the source and lists it: through `git upload-pack` or HTTP,
/// or through git2 for a local source where that is the reader.
fn open_source(
    opts: &Options,
    local: &LocalOptions,
) -> Result<(Box<dyn SourceSide>, Vec<Ref>), SideError> {
    match opts.source.location.local_path() {
        Some(path) if local.source_reader.resolve() == LocalReader::Git2 => {
            let display = opts.source.location.to_string();
            let (side, refs) = LocalSourceSide::open(path, &display, opts.source.network.timeout)?;
            Ok((Box::new(side), refs))
        }
        _ => {
            let transport = opts.source.open(Side::Source)?;
            let (side, refs) = Source::connect(transport, &opts.source.network)?;
            Ok((Box::new(side), refs))
        }
    }
}

/// The symbolic refs of a remote destination other than HEAD, as `(name,
/// target)`.
///
/// receive-pack advertises a symbolic ref as a plain ref holding its
/// target's value. A push that moves both is refused ("inconsistent
/// aliased update"), so a mirror would fail on that pair forever, and a
/// push that deletes or moves the symbolic ref alone goes through to its
/// target: deleting `refs/heads/alias` deletes `main`. Only the
/// destination's upload-pack tells symbolic refs apart (protocol v2
/// `ls-refs` names their targets), and only a change to a ref whose value
/// another destination ref shares can touch one, so only then is it asked.
/// If it cannot answer, the push goes ahead as before.
fn symbolic_refs(opts: &Options, source_refs: &[Ref], dest_refs: &[Ref]) -> Vec<(String, String)> {
    let plan = Plan::new(source_refs, dest_refs, &opts.selection, opts.prune);
    let shared = |oid: ObjectId| dest_refs.iter().filter(|r| r.oid == oid).count() > 1;
    if !plan.changes.iter().filter_map(|c| c.old).any(shared) {
        return Vec::new();
    }
    let listed = opts
        .destination
        .open(Side::Destination)
        .and_then(|reader| Source::connect(reader, &opts.destination.network));
    match listed {
        Ok((_, refs)) => refs
            .into_iter()
            .filter(|r| r.name != "HEAD")
            .filter_map(|r| Some((r.name, r.symref_target?)))
            .collect(),
        Err(err) => {
            output::debug(format_args!(
                "cannot list the destination's symbolic refs: {err}"
            ));
            Vec::new()
        }
    }
}

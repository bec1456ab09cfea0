//! The mirror engine: list, plan, negotiate, relay, verify, report.
//!
//! A run makes the selected refs of the destination equal to the source's
//! without a local clone:
//!
//! 1. list the refs of both sides and [plan](plan::Plan) each difference;
//! 2. stop if there is none: a no-op costs two ref listings;
//! 3. negotiate with the source, offering the destination's tips as haves.
//!    The acknowledgments tell which destination tips the source knows: a
//!    tip it does not know holds commits that exist only on the destination,
//!    and its ref is *protected* (not overwritten or deleted) unless
//!    `--force` (the divergence rule, see docs/architecture.md);
//! 4. stream the source's pack, which holds only what the destination
//!    lacks, straight into the destination's receive-pack after the ref
//!    commands. Each command carries the old value we saw, so the
//!    destination applies it only if nobody moved the ref meanwhile;
//! 5. read the destination's report, list it again and confirm;
//! 6. point the destination's HEAD at the source's default branch (a
//!    backup; servers keep their own), on every mirror run.
//!
//! Symbolic refs of a remote destination other than HEAD are left alone
//! (see `symbolic_refs`): a push through them fails or hits their target.
//!
//! A local destination is a backup ([`crate::store`], through
//! `store_side`): the same stream goes into git2's pack writer instead of
//! a receive-pack, and refs that would drop history are archived. The
//! engine sees both kinds through [`DestinationSide`]. A local source is
//! read by `git upload-pack`, or through git2 where there is no `git`
//! ([`LocalReader`]); the engine sees either through [`SourceSide`].
//!
//! The engine knows nothing of command lines or pipelines: it takes
//! [`Options`] and returns a [`Report`].

mod bounds;
mod destination;
mod error;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod select;
mod sides;
mod source;
mod store_side;

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::output;
use crate::protocol::advertisement::Ref;
use crate::protocol::push::{self, Command};
use crate::protocol::ObjectId;
use crate::transport::{
    HttpTransport, LocalTransport, Location, NetworkOptions, Transport, TransportError,
};

use destination::Destination;
use error::Blame;
pub(crate) use error::Cause;
pub use error::{Side, SideError};
pub(crate) use plan::{Action, Plan};
pub use report::{Outcome, RefReport, Report, Totals};
pub(crate) use select::RefSelection;
use sides::PackOptions;
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
    /// `GIT_RELAY_LOCAL_SOURCE` (`git` or `git2`) if set; else the
    /// machine's `git upload-pack` when `git` is on PATH (it reuses stored
    /// deltas and sends thin packs), else git2 (no `git` needed).
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
        match std::env::var("GIT_RELAY_LOCAL_SOURCE").as_deref() {
            Ok("git2") => return LocalReader::Git2,
            Ok("git") => return LocalReader::Git,
            _ => {}
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

    /// `retries` further attempts, starting one second apart
    /// (`GIT_RELAY_RETRY_BASE_MS` shortens that for tests).
    pub(crate) fn new(retries: u32) -> RetryPolicy {
        let base_ms = std::env::var("GIT_RELAY_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        RetryPolicy {
            retries,
            base_delay: Duration::from_millis(base_ms),
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

/// [`run_with_retries`] with settings for local repositories.
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

/// Runs one mirror (or status, or dry run) and reports what happened.
///
/// Per-ref trouble (protected, rejected) is part of the report; an `Err`
/// means the run could not finish, and says which side failed.
pub(crate) fn run_with_local(opts: &Options, local: &LocalOptions) -> Result<Report, SideError> {
    let started = Instant::now();
    let timeout = opts.source.network.timeout;
    let (source, mut source_refs): (Box<dyn SourceSide>, _) =
        match opts.source.location.local_path() {
            Some(path) if local.source_reader.resolve() == LocalReader::Git2 => {
                let (side, refs) =
                    LocalSourceSide::open(path, &opts.source.location.to_string(), timeout)?;
                (Box::new(side), refs)
            }
            _ => {
                let transport = opts.source.open(Side::Source)?;
                let (side, refs) = Source::connect(transport, &opts.source.network)?;
                (Box::new(side), refs)
            }
        };
    let dest_timeout = opts.destination.network.timeout;
    let (destination, mut dest_refs): (Box<dyn DestinationSide>, _) =
        match opts.destination.location.local_path() {
            Some(path) => {
                let (side, refs) = StoreSide::open(
                    path,
                    &opts.destination.location.to_string(),
                    opts.mode,
                    local,
                    dest_timeout,
                    &source_refs,
                )?;
                (Box::new(side), refs)
            }
            None => {
                let transport = opts.destination.open(Side::Destination)?;
                let (side, refs) = Destination::connect(transport, &opts.destination.network)?;
                (Box::new(side), refs)
            }
        };
    if opts.destination.location.local_path().is_none() {
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
    output::info(format_args!(
        "source      {} (protocol {}): {} refs",
        opts.source.location,
        source.protocol(),
        source_refs.len()
    ));
    output::info(format_args!(
        "destination {}: {} refs",
        opts.destination.location,
        dest_refs.len()
    ));

    let report = sync(
        opts,
        source.as_ref(),
        destination.as_ref(),
        &source_refs,
        &dest_refs,
        started,
    )?;
    // Every mirror run, a no-op too, brings the source's default branch
    // along: a backup made from an empty source, or by a run that was cut
    // short, or whose source later changed its default, would otherwise
    // keep a HEAD that `git clone` cannot check out.
    if opts.mode == Mode::Mirror {
        let head = source_refs
            .iter()
            .find(|r| r.name == "HEAD")
            .and_then(|r| r.symref_target.as_deref());
        if let Some(target) = head.filter(|t| opts.selection.selects(t)) {
            destination.adopt_head(target)?;
        }
    }
    Ok(report)
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

/// Plans, negotiates and relays: everything of a run between listing both
/// sides and following the source's HEAD.
fn sync(
    opts: &Options,
    source: &dyn SourceSide,
    destination: &dyn DestinationSide,
    source_refs: &[Ref],
    dest_refs: &[Ref],
    started: Instant,
) -> Result<Report, SideError> {
    let plan = Plan::new(source_refs, dest_refs, &opts.selection, opts.prune);
    let mut report = Report {
        mode: opts.mode.name(),
        source: opts.source.location.to_string(),
        destination: opts.destination.location.to_string(),
        source_protocol: source.protocol(),
        refs: Vec::new(),
        totals: Totals {
            unchanged: plan.unchanged,
            kept: plan.kept,
            ..Totals::default()
        },
        pack_bytes: 0,
        bytes_sent: 0,
        duration_ms: 0,
        in_sync: true,
    };
    if plan.changes.is_empty() {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    // Objects the source advertises are known without asking.
    let advertised: HashSet<ObjectId> = source_refs
        .iter()
        .flat_map(|r| std::iter::once(r.oid).chain(r.peeled))
        .collect();
    let dest_tips: HashSet<ObjectId> = dest_refs.iter().map(|r| r.oid).collect();
    let must_check: Vec<ObjectId> = if opts.force {
        Vec::new()
    } else {
        plan.changes
            .iter()
            .filter(|c| c.action != Action::Create)
            .filter_map(|c| c.old)
            .filter(|old| !advertised.contains(old))
            .collect()
    };
    let mut wants: Vec<ObjectId> = plan
        .changes
        .iter()
        .filter_map(|c| c.new)
        .filter(|new| !dest_tips.contains(new))
        .collect();
    wants.sort();
    wants.dedup();
    let mut haves: Vec<ObjectId> = dest_tips.iter().copied().collect();
    haves.sort();

    let relay = opts.mode == Mode::Mirror;
    // Learning what the source knows needs a want; when nothing is wanted
    // (only deletions), any advertised tip serves and no pack is fetched.
    let probe_wants: Vec<ObjectId> = match source_refs.first() {
        Some(first) if wants.is_empty() && !must_check.is_empty() => vec![first.oid],
        _ => Vec::new(),
    };
    let pack = PackOptions {
        thin: destination.accepts_thin_pack(),
        ofs_delta: destination.accepts_ofs_delta(),
    };
    let negotiated = if !probe_wants.is_empty() {
        source.negotiate(&probe_wants, &haves, &must_check, None)?
    } else {
        source.negotiate(&wants, &haves, &must_check, relay.then_some(pack))?
    };
    let known = |oid: &ObjectId| advertised.contains(oid) || negotiated.known.contains(oid);
    let rewrites = rewrites(source, &plan, &known, opts.force);

    let mut commands = Vec::new();
    for change in &plan.changes {
        let protected = !opts.force
            && change.action != Action::Create
            && change.old.is_some_and(|old| !known(&old));
        let (result, reason) = if protected {
            let tip = change.old.map(|o| o.to_string()).unwrap_or_default();
            let what = if change.action == Action::Delete {
                "deleting"
            } else {
                "overwriting"
            };
            (
                Outcome::Protected,
                Some(format!(
                    "the destination has commits the source does not (up to {}); {what} it would lose them; use --force to allow",
                    &tip[..tip.len().min(12)]
                )),
            )
        } else if change.action == Action::Delete && relay && !destination.allows_delete() {
            (
                Outcome::Rejected,
                Some(
                    "the destination does not allow deleting refs (no delete-refs capability)"
                        .to_owned(),
                ),
            )
        } else {
            if relay {
                commands.push(Command {
                    old: change.old.unwrap_or(ObjectId::ZERO),
                    new: change.new.unwrap_or(ObjectId::ZERO),
                    name: change.name.clone(),
                });
            }
            (
                if relay {
                    Outcome::Failed
                } else {
                    Outcome::Planned
                },
                None,
            )
        };
        report.refs.push(RefReport {
            name: change.name.clone(),
            old: change.old.map(|o| o.to_string()),
            new: change.new.map(|o| o.to_string()),
            action: if rewrites.contains(&change.name) {
                Action::Rewrite
            } else {
                change.action
            },
            result,
            reason,
        });
    }

    if !relay || commands.is_empty() {
        // A pack the source volunteered is dropped here, unread.
        drop(negotiated);
        return Ok(finish(report, started));
    }

    let count = |a: Action| commands_of(&plan, &commands, a);
    output::info(format_args!(
        "relaying: {} to create, {} to update, {} to delete",
        count(Action::Create),
        count(Action::Update),
        count(Action::Delete)
    ));
    let needs_pack = commands.iter().any(|c| !c.new.is_zero());
    let failure = Arc::new(Mutex::new(None));
    let mut counted = negotiated
        .pack
        .map(|pack| Counted::new(pack, failure.clone()));
    let mut empty = io::Cursor::new(push::EMPTY_PACK);
    let pack: Option<&mut (dyn Read + Send)> = match (needs_pack, counted.as_mut()) {
        (false, _) => None,
        (true, Some(stream)) => Some(stream),
        (true, None) => Some(&mut empty),
    };
    let pushed = destination.push(&commands, pack);
    let pack_bytes = counted.as_ref().map_or(0, |c| c.bytes);
    if let Some(c) = counted.as_mut() {
        c.progress.finish(c.bytes);
    }
    report.pack_bytes = pack_bytes;
    let status = match pushed {
        Ok(status) => status,
        Err(err) => {
            // A cut in the source's stream surfaces as a failed upload to the
            // destination; blame the side that actually failed.
            if let Some(source_err) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(source.error(source_err.into()));
            }
            return Err(err);
        }
    };
    report.bytes_sent = pack_bytes;

    if let Err(reason) = &status.unpack {
        // The destination may have refused bytes the source damaged: the
        // rest of the pack and its checksum tell.
        if let Some(c) = counted.as_mut() {
            c.read_rest();
        }
        if let Some(source_err) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(source.error(source_err.into()));
        }
        for r in report
            .refs
            .iter_mut()
            .filter(|r| r.result == Outcome::Failed)
        {
            r.reason = Some(format!(
                "the destination could not unpack the pack: {reason}"
            ));
        }
        return Err(destination.error(Cause::Refused(format!(
            "the server could not store the pack (unpack {reason}); no ref was changed"
        ))));
    }
    for r in report
        .refs
        .iter_mut()
        .filter(|r| r.result == Outcome::Failed)
    {
        match status
            .refs
            .iter()
            .find(|s| s.name == r.name)
            .map(|s| &s.result)
        {
            Some(Ok(())) => r.result = Outcome::Ok,
            Some(Err(reason)) => {
                r.result = Outcome::Rejected;
                r.reason = Some(reason.clone());
            }
            None => {
                r.reason = Some("the destination's report does not mention this ref".to_owned())
            }
        }
    }
    for (name, note) in destination.notes() {
        if let Some(r) = report.refs.iter_mut().find(|r| r.name == name) {
            r.reason.get_or_insert(note);
        }
    }

    // Trust, but verify: list the destination again.
    let after = destination.list_refs()?;
    for r in report.refs.iter_mut().filter(|r| r.result == Outcome::Ok) {
        let now = after
            .iter()
            .find(|a| a.name == r.name)
            .map(|a| a.oid.to_string());
        if now != r.new {
            r.result = Outcome::Failed;
            r.reason = Some(format!(
                "the destination reported success but the ref is now {}",
                now.as_deref().unwrap_or("absent")
            ));
        }
    }
    Ok(finish(report, started))
}

/// The updates that drop history from the destination's ref: those whose
/// old tip the source does not have (only `--force` lets them through) and
/// those the source says are not fast-forwards. An update that looks
/// harmless by the divergence rule (the source's object store has the old
/// tip) may still be one: after a force-push on the source, until its gc.
fn rewrites(
    source: &dyn SourceSide,
    plan: &Plan,
    known: &dyn Fn(&ObjectId) -> bool,
    force: bool,
) -> HashSet<String> {
    let updates: Vec<(&str, ObjectId, ObjectId)> = plan
        .changes
        .iter()
        // A tag is not a line of history: a moved tag stays an update.
        .filter(|c| c.action == Action::Update && !c.name.starts_with("refs/tags/"))
        .filter_map(|c| Some((c.name.as_str(), c.old?, c.new?)))
        .collect();
    let (unknown, probed): (Vec<_>, Vec<_>) =
        updates.into_iter().partition(|(_, old, _)| !known(old));
    let mut rewrites: HashSet<String> = HashSet::new();
    if force {
        // The source lacks the old tip, so the new history cannot hold it.
        rewrites.extend(unknown.iter().map(|(name, ..)| (*name).to_owned()));
    }
    let pairs: Vec<(ObjectId, ObjectId)> = probed.iter().map(|&(_, old, new)| (old, new)).collect();
    for ((name, ..), answer) in probed.iter().zip(source.fast_forwards(&pairs)) {
        match answer {
            Some(false) => {
                rewrites.insert((*name).to_owned());
            }
            Some(true) => {}
            None => output::debug(format_args!(
                "{name}: cannot tell whether the update rewrites history"
            )),
        }
    }
    rewrites
}

fn commands_of(plan: &Plan, commands: &[Command], action: Action) -> usize {
    let sent: HashSet<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    plan.changes
        .iter()
        .filter(|c| c.action == action && sent.contains(c.name.as_str()))
        .count()
}

fn finish(mut report: Report, started: Instant) -> Report {
    report.tally();
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The pack on its way from source to destination: counts bytes, shows
/// progress, checks the pack's own SHA-1 trailer, and remembers a
/// source-side failure so that it is blamed on the source rather than on
/// the upload it interrupted. A pack whose bytes do not match its trailer
/// was damaged before it reached us; it ends in an error rather than
/// reaching its end, so the destination never takes it for whole.
struct Counted {
    inner: Box<dyn Read + Send>,
    bytes: u64,
    progress: output::Progress,
    failure: Arc<Mutex<Option<TransportError>>>,
    sha1: ring::digest::Context,
    /// The last 20 bytes seen: the trailer, once the stream has ended.
    tail: Vec<u8>,
    ended: bool,
}

const TRAILER: usize = 20;

impl Counted {
    fn new(inner: Box<dyn Read + Send>, failure: Arc<Mutex<Option<TransportError>>>) -> Counted {
        Counted {
            inner,
            bytes: 0,
            progress: output::Progress::new("relaying pack"),
            failure,
            sha1: ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            tail: Vec::with_capacity(2 * TRAILER),
            ended: false,
        }
    }

    /// Reads what is left of the pack, checking it; for when the
    /// destination refused the pack before reading all of it.
    fn read_rest(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = self.pull(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e)),
        };
        self.bytes += n as u64;
        if n > 0 {
            self.hash(&buf[..n]);
        } else if !buf.is_empty() && !self.ended {
            self.ended = true;
            let sum = self.sha1.clone().finish();
            if self.bytes > 0 && self.tail != sum.as_ref() {
                return Err(self.fail(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the pack is damaged: its content does not match its SHA-1 checksum (it left the source so, or was altered on the way)",
                )));
            }
        }
        Ok(n)
    }

    /// Hashes everything but the last 20 bytes seen so far.
    fn hash(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > TRAILER {
            let done = self.tail.len() - TRAILER;
            self.sha1.update(&self.tail[..done]);
            self.tail.drain(..done);
        }
    }

    fn fail(&self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(TransportError::Io(e));
        copy
    }
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pull(buf)?;
        self.progress.update(self.bytes);
        Ok(n)
    }
}

//! Pushes that fit the destination: at most a budget of pack bytes, and at
//! most a number of ref updates, in each.
//!
//! Hosts cap what one push may carry (GitHub 2 GiB, Azure Repos 5 GB, a
//! proxy's 413 at a few megabytes; see `crate::hosts`), and some answer
//! HTTP 500 to ten thousand ref updates at once. `git push --mirror` fails
//! on them; a relay must not. [`Pusher`] sends one push when it fits, which
//! is nearly always: the pack is counted as it streams, and one that
//! outgrows the budget is cut before its end, so the destination stores
//! nothing and the run goes on in parts:
//!
//! 1. **Pieces** ([`pieces`]), under a budget of up to 64 MiB (a proxy's
//!    cap, or one learnt from a refusal): the history as one pack from
//!    the source, without offset deltas, cut between objects into packs of
//!    their own, each held by a marker ref. One fetch, whatever the
//!    number of pushes. Where a pack cannot be cut, and under larger
//!    budgets, the increments take the history instead.
//! 2. **Increments** ([`Pusher::increments`]). The commits to send are learnt
//!    as a graph (commits only, `filter tree:0`, where the source can
//!    filter; otherwise the commits at the start of the pack), put in push
//!    order (`order`: every commit after its parents, the source HEAD's
//!    branch first), and pushed a slice at a time: the slice's commits
//!    that none of its others descends from are its checkpoints (one on a
//!    line of history; one more for each side branch that ends in the
//!    slice), each pushed into a ref of its own under
//!    [`CHECKPOINT_PREFIX`], created with compare-and-swap. Under a budget
//!    small enough to hold packs in memory (any proxy's cap; not GitHub's
//!    2 GiB), the history is fetched in units of about half the budget at
//!    the rate of the last units, ahead of the pushes and while the
//!    destination stores the last one, and a push joins as many units as
//!    fit into one pack: joining packs is cheap, so pushes come close to
//!    the budget without a pack fetched too large and thrown away. Above
//!    that, slices are streamed, sized from the bytes of the last push at
//!    80% of the budget. Either halves when it
//!    outgrows the budget; a single commit larger than the budget is an
//!    error naming it. A source that serves only its
//!    advertised tips (protocol v0 without `allowReachableSHA1InWant`)
//!    gets its tags and branches as checkpoints instead.
//! 3. **Chunks** ([`Pusher::in_parts`]). The refs themselves move last, at
//!    most `max_ref_updates` per push, each chunk with the pack of what the
//!    destination still lacks for it (nothing, mostly, once the increments
//!    are in), and the checkpoint refs are deleted in the last ones. The
//!    last increment held in memory goes with the first chunk where the
//!    two fit the budget together ([`Tail`]): one push fewer, and no
//!    checkpoint for each of the side branches that end in it. (Pieces
//!    are all pushed first: a hook that refuses the refs then leaves the
//!    history on the destination, and later chunks need none of it.)
//!
//! A run killed midway leaves its checkpoint refs on the destination; the
//! next run skips the pieces they name, or offers the increments' commits
//! to the source as haves, so it resumes from there rather than from the
//! start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read};

mod pieces;

use super::error::{Cause, SideError};
use super::order::push_order;
use super::sides::{DestinationSide, PackOptions, SourceSide};
use super::stream::Counted;
use crate::output::{self, human_bytes};
use crate::protocol::advertisement::Ref;
use crate::protocol::push::{self, Command, ReportStatus};
use crate::protocol::{ObjectId, ProtocolError};

/// Where checkpoints of a batched push live on the destination, outside
/// branches and tags; the ref selection leaves the namespace out.
pub(super) const CHECKPOINT_PREFIX: &str = "refs/git-relay/";

/// The largest budget under which a pack is held whole before its push
/// (see [`Pusher::push`]): memory stays within tens of megabytes.
const HOLD_MAX: u64 = 16 << 20;

/// The bytes of one ref command besides its name: the pkt-line length, two
/// object ids, two spaces and a newline (the first line's capabilities
/// aside).
const COMMAND_OVERHEAD: u64 = 4 + 40 + 1 + 40 + 1 + 1;

/// What an increment aims at, in percent of the budget, when it is
/// streamed and so measured only as it goes: most of the budget, with room
/// for commits larger than the average.
const PUSH_PERCENT: u64 = 80;

/// What a unit fetched ahead aims at (see [`Ahead`]): about half the
/// budget, so that a push joins two and a commit larger than the average
/// (a binary file's new version) makes a unit that still fits alone.
const UNIT_PERCENT: u64 = 45;

/// The most units held ahead of the push under way (each at most the
/// budget): two of about half the budget fill a push, and memory stays
/// within a few budgets (more would not be faster: the two servers share
/// the same processors on a small machine, and the source is seldom the
/// slower).
const AHEAD_UNITS: usize = 2;

/// What joining one more pack adds besides its entries: nothing, and its
/// header and trailer go.
const JOIN_OVERHEAD: u64 = 12 + 20;

/// The checkpoints the first increment spans: one, and the pushes then
/// measure how many fit, growing up to fourfold while far under the
/// budget, so that a history of even commits goes without a push cut short.
const FIRST_SLICE: usize = 1;

/// Why a push did not go through.
pub(super) enum PushError {
    /// The run cannot go on.
    Side(SideError),
    /// The destination could not store the pack; no ref moved.
    Unpack {
        /// The destination's reason.
        reason: String,
        /// The error for the run.
        error: SideError,
    },
    /// The connection was cut while the pack was being sent, after `sent`
    /// bytes: a network failure, or a limit when it happens again at about
    /// the same offset (see [`Pusher::cut_is_a_limit`]).
    Cut {
        /// Pack bytes handed to the destination before the cut.
        sent: u64,
        /// The failure, for when it was the network.
        error: SideError,
    },
    /// The server refused a chunked body (HTTP 411): the same push goes
    /// again, with a pack fetched anew (the destination now sends it with
    /// its length).
    Resend,
    /// Too large: the pack outgrew the budget (`by_server` false), or the
    /// server refused it as too large after `sent` bytes.
    TooLarge {
        /// Pack bytes handed to the destination before the end.
        sent: u64,
        /// Whether the server refused it (rather than the budget).
        by_server: bool,
        /// What the server said.
        detail: String,
    },
}

/// A push's pack: streamed from the source as the destination reads it,
/// or taken whole first (under a small budget, see [`HOLD_MAX`]), or a
/// piece of one pack in two parts: its header and objects where they were
/// read, and what follows them (see `pieces`).
enum Pack<'a> {
    Streamed(Box<Counted>),
    Held(Vec<u8>),
    Parts(&'a [u8], Vec<u8>),
}

/// The end of the history, fetched and held but not pushed as an
/// increment of its own: it goes with the refs in the first push of
/// [`Pusher::in_parts`], which saves a push and the checkpoint ref of
/// every side branch that ends in it (hundreds, in a repository of many
/// branches), each created and deleted again.
pub(super) struct Tail {
    pack: Vec<u8>,
    /// Its checkpoints, for when it goes on its own after all.
    checkpoints: Vec<Command>,
    /// The haves before it, for when it does not land.
    before: Vec<ObjectId>,
    /// What it is and where it ends, for the messages: "increment up to
    /// X (N of M commits".
    span: String,
}

/// What becomes of the [`Tail`] and the first refs (see
/// [`Pusher::join_tail`]).
enum Joined {
    /// One pack for both.
    Pack(Vec<u8>),
    /// Too large together: the tail goes first, on its own.
    Apart(Tail),
}

/// Takes `pack` whole, as long as it stays within `limit` bytes: one that
/// outgrows it is [`PushError::TooLarge`] before a byte went to the
/// destination.
fn hold(
    source: &dyn SourceSide,
    pack: Box<dyn Read + Send>,
    limit: u64,
    buffers: &Buffers,
) -> Result<Vec<u8>, PushError> {
    let mut counted = Counted::new(pack, Some(limit));
    // Grown as it fills rather than reserved up to the limit: packs fetched
    // ahead are mostly well under it.
    let mut whole = buffers.take();
    let read = counted.read_to_end(&mut whole);
    counted.progress.finish(counted.bytes);
    if read.is_ok() {
        return Ok(whole);
    }
    buffers.give(whole);
    if counted.over_limit {
        return Err(PushError::TooLarge {
            sent: counted.bytes,
            by_server: false,
            detail: String::new(),
        });
    }
    let failure = counted.failure.take().map(|e| source.error(e.into()));
    Err(PushError::Side(failure.unwrap_or_else(|| {
        source.error(Cause::Refused("the pack could not be read".into()))
    })))
}

/// Fetches the history of `wants` that `haves` lack and takes it whole
/// ([`hold`]): one increment, ready to push.
fn fetch_held(
    source: &dyn SourceSide,
    wants: &[ObjectId],
    haves: &[ObjectId],
    options: PackOptions,
    limit: u64,
    buffers: &Buffers,
) -> Result<Vec<u8>, PushError> {
    match source.negotiate(wants, haves, &[], Some(options))?.pack {
        Some(pack) => hold(source, pack, limit, buffers),
        None => {
            let mut empty = buffers.take();
            empty.extend_from_slice(push::EMPTY_PACK);
            Ok(empty)
        }
    }
}

/// The buffers of held packs, used again rather than freed. glibc's
/// allocator raises its threshold for returning memory to the size of a
/// large block once freed, and then keeps that much in every thread's
/// arena: freeing a pack of megabytes per push made a run's peak memory
/// grow with the number of threads that had held one.
#[derive(Default)]
struct Buffers(std::sync::Mutex<Vec<Vec<u8>>>);

impl Buffers {
    /// An empty buffer, one given back earlier if any.
    fn take(&self) -> Vec<u8> {
        let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
        free.pop().unwrap_or_default()
    }

    /// Lets the buffers kept go: sized for a larger budget than the one
    /// now in force, they would hold their pages for the rest of the run.
    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Keeps `buffer` for the next [`Buffers::take`].
    fn give(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
        free.push(buffer);
    }
}

impl From<SideError> for PushError {
    fn from(e: SideError) -> PushError {
        PushError::Side(e)
    }
}

/// Pushes to one destination under its limits, and counts them.
pub(super) struct Pusher<'a> {
    source: &'a dyn SourceSide,
    destination: &'a dyn DestinationSide,
    pack: PackOptions,
    /// The most pack bytes in one push, if any.
    pub(super) budget: Option<u64>,
    max_refs: usize,
    /// Pushes made.
    pub(super) pushes: u32,
    /// Pack bytes relayed, cut pushes included.
    pub(super) bytes: u64,
    /// Pack bytes of the last push.
    last: u64,
    /// Whether the history went in increments.
    pub(super) batched: bool,
    /// Checkpoint refs this run created, to delete at the end.
    checkpoints: Vec<(String, ObjectId)>,
    /// The destination, as this process remembers what it learnt of it.
    key: String,
    /// Whether a push was refused for its chunked body already.
    resent: bool,
}

/// What this process learnt of each destination: where pushes to it were
/// cut, and the budget its refusals taught. A run that fails on a cut is
/// retried from the start (`--retries`), and a sweep mirrors many
/// repositories to one host: both must remember.
#[derive(Default)]
struct Learnt {
    cuts: Vec<u64>,
    budget: Option<u64>,
    /// The smallest push the server refused as too large, and the largest
    /// it took since: a learnt budget settles between them.
    refused: Option<u64>,
    accepted: u64,
    /// The limit the server stated, the budget set from it and what it
    /// said (see [`stated_limit`]).
    stated: Option<(u64, u64, String)>,
    /// Whether it refused a piece of a pack (see [`pieces`]): the history
    /// then goes in increments.
    no_pieces: bool,
}

static LEARNT: std::sync::Mutex<Option<HashMap<String, Learnt>>> = std::sync::Mutex::new(None);

fn learnt<T>(key: &str, f: impl FnOnce(&mut Learnt) -> T) -> T {
    let mut all = LEARNT.lock().unwrap_or_else(|e| e.into_inner());
    f(all
        .get_or_insert_with(HashMap::new)
        .entry(key.to_owned())
        .or_default())
}

/// The push budget for the destination known to this process as `key`:
/// `budget`, or a smaller one learnt earlier in this process.
pub(super) fn budget_for(key: &str, budget: Option<u64>) -> Option<u64> {
    match (budget, learnt(key, |l| l.budget)) {
        (Some(b), Some(l)) => Some(b.min(l)),
        (b, l) => b.or(l),
    }
}

impl<'a> Pusher<'a> {
    /// A pusher to `destination`, known to this process as `key`, with
    /// the budget given or a smaller one learnt earlier in this process.
    pub(super) fn new(
        source: &'a dyn SourceSide,
        destination: &'a dyn DestinationSide,
        key: &str,
        budget: Option<u64>,
        max_refs: usize,
    ) -> Pusher<'a> {
        let budget = budget_for(key, budget);
        Pusher {
            source,
            destination,
            pack: PackOptions {
                thin: destination.accepts_thin_pack(),
                ofs_delta: destination.accepts_ofs_delta(),
            },
            budget,
            max_refs: max_refs.max(1),
            pushes: 0,
            bytes: 0,
            last: 0,
            batched: false,
            checkpoints: Vec::new(),
            key: key.to_owned(),
            resent: false,
        }
    }

    /// Whether a cut after `sent` bytes repeats an earlier one at about the
    /// same offset: a server (or a proxy before it) that hangs up on bodies
    /// past a size, rather than a network that failed once.
    pub(super) fn cut_is_a_limit(&mut self, sent: u64) -> bool {
        learnt(&self.key, |l| {
            let again = repeats(&l.cuts, sent);
            l.cuts.push(sent);
            again
        })
    }

    /// Whether `commands` must go in more than one push whatever the pack.
    pub(super) fn too_many(&self, commands: &[Command]) -> bool {
        commands.len() > self.max_refs
    }

    /// After the server refused a push of `sent` bytes as too large: a
    /// budget of half that, so that the next pushes fit with room to spare.
    ///
    /// What was sent overcounts what the server read before it refused (the
    /// answer is read once the body is out), so the budget then moves up
    /// again with the pushes it takes: halfway between the largest taken
    /// and the smallest refused. A server that says its limit (git's
    /// `receive.maxInputSize`, which GitHub sets) gives the budget at once.
    pub(super) fn learn(&mut self, sent: u64, detail: &str) {
        if let Some(limit) = stated_limit(detail).filter(|&l| l > 0 && l < sent) {
            // Just under it: git rounds the limit it prints to 0.5%.
            let budget = (limit - limit / 100).max(1);
            let budget = self.budget.map_or(budget, |b| b.min(budget));
            learnt(&self.key, |l| {
                l.refused = Some(l.refused.map_or(limit, |r| r.min(limit)));
                l.budget = Some(budget);
                l.stated = Some((limit, budget, detail.to_owned()));
            });
            output::warn(format_args!(
                "destination: the server refused a push of {} as larger than its limit of {}; pushing in batches of at most {} (set --dest-max-push-bytes to choose)",
                human_bytes(sent),
                human_bytes(limit),
                human_bytes(budget)
            ));
            self.budget = Some(budget);
            return;
        }
        let budget = learnt(&self.key, |l| {
            let refused = l.refused.map_or(sent, |r| r.min(sent));
            l.refused = Some(refused);
            let budget = match l.accepted {
                0 => refused / 2,
                // Within 5% of what was refused, the largest push taken:
                // halving a gap that small again costs a refused upload
                // each time and gains next to nothing.
                taken if taken < refused && refused - taken <= refused / 20 => taken,
                taken if taken < refused => taken + (refused - taken) / 2,
                _ => refused / 2,
            }
            .max(1);
            let budget = self.budget.map_or(budget, |b| b.min(budget));
            l.budget = Some(budget);
            budget
        });
        output::warn(format_args!(
            "destination: the server refused a push of {} as too large ({detail}); pushing in batches of at most {} (set --dest-max-push-bytes to choose)",
            human_bytes(sent),
            human_bytes(budget)
        ));
        self.budget = Some(budget);
    }

    /// After the server took a push of `sent` bytes: a budget learnt from
    /// its refusals moves up toward the smallest it refused.
    fn landed(&mut self, sent: u64) {
        let raised = learnt(&self.key, |l| {
            let refused = l.refused?;
            l.accepted = l.accepted.max(sent);
            let middle = l.accepted + refused.saturating_sub(l.accepted) / 2;
            // Within 5% of what was refused is close enough.
            let budget = l.budget?;
            (middle > budget && refused.saturating_sub(middle) > refused / 20).then(|| {
                l.budget = Some(middle);
                middle
            })
        });
        if let Some(budget) = raised {
            output::debug(format_args!(
                "destination took {}: the push budget is now {}",
                human_bytes(sent),
                human_bytes(budget)
            ));
            self.budget = Some(budget);
        }
    }

    /// Takes the verdict on a failed push: `Ok` when it was too large (with
    /// what the server said, if it was the server and not the budget that
    /// refused it; a budget is learnt from it), the error to fail with
    /// otherwise. A first cut connection is the network, not a limit.
    pub(super) fn too_large(&mut self, failure: PushError) -> Result<Option<String>, PushError> {
        match failure {
            PushError::TooLarge {
                sent,
                by_server,
                detail,
            } => {
                if by_server {
                    self.learn(sent, &detail);
                }
                Ok(by_server.then_some(detail))
            }
            PushError::Cut { sent, error } => {
                if !self.cut_is_a_limit(sent) {
                    return Err(PushError::Side(error));
                }
                let detail = "the connection was cut at the same point twice";
                self.learn(sent, detail);
                Ok(Some(detail.to_owned()))
            }
            other => Err(other),
        }
    }

    /// The most pack bytes a push of `commands` may carry: the budget less
    /// the commands, since a host's cap counts the whole body (a chunk of
    /// 5,000 ref updates is about half a megabyte).
    fn limit(&self, commands: &[Command]) -> Option<u64> {
        limit_of(self.budget, commands)
    }

    /// One push of `commands`, with `pack` when any of them needs objects,
    /// counted against the budget.
    pub(super) fn push(
        &mut self,
        commands: &[Command],
        pack: Option<Box<dyn Read + Send>>,
    ) -> Result<ReportStatus, PushError> {
        let limit = self.limit(commands);
        // Under a small budget the pack is taken whole before the push, so
        // one that outgrows the budget costs the source's work only, not an
        // upload and the destination's.
        let pack = match (pack, limit.filter(|&l| l <= HOLD_MAX)) {
            (Some(stream), Some(limit)) => Some(Pack::Held(hold(
                self.source,
                stream,
                limit,
                &Buffers::default(),
            )?)),
            (stream, _) => stream.map(|s| Pack::Streamed(Box::new(Counted::new(s, limit)))),
        };
        self.send(commands, pack, None)
    }

    /// Sends `commands` with `pack` (the empty pack when a command needs
    /// objects and there is none), and tells why the push failed if it did.
    /// A held pack's buffer goes to `keep`, if any, to be used again.
    fn send(
        &mut self,
        commands: &[Command],
        mut pack: Option<Pack<'_>>,
        keep: Option<&Buffers>,
    ) -> Result<ReportStatus, PushError> {
        let needs_pack = commands.iter().any(|c| !c.new.is_zero());
        let mut empty = io::Cursor::new(push::EMPTY_PACK);
        let mut whole;
        let mut parts;
        let body: Option<&mut (dyn Read + Send)> = match (needs_pack, pack.as_mut()) {
            (false, _) => None,
            (true, Some(Pack::Held(bytes))) => {
                whole = io::Cursor::new(bytes.as_slice());
                Some(&mut whole)
            }
            (true, Some(Pack::Parts(head, rest))) => {
                parts = io::Cursor::new(*head).chain(io::Cursor::new(rest.as_slice()));
                Some(&mut parts)
            }
            (true, Some(Pack::Streamed(stream))) => Some(stream),
            (true, None) => Some(&mut empty),
        };
        self.pushes += 1;
        let pushed = self.destination.push(commands, body);
        let mut counted = match pack {
            Some(Pack::Streamed(c)) => Some(*c),
            Some(Pack::Held(bytes)) => {
                self.bytes += bytes.len() as u64;
                self.last = bytes.len() as u64;
                if let Some(buffers) = keep {
                    buffers.give(bytes);
                }
                None
            }
            Some(Pack::Parts(head, rest)) => {
                self.last = (head.len() + rest.len()) as u64;
                self.bytes += self.last;
                None
            }
            None => {
                self.last = 0;
                None
            }
        };
        if let Some(c) = counted.as_mut() {
            self.bytes += c.bytes;
            self.last = c.bytes;
            c.progress.finish(c.bytes);
        }
        let sent = self.last;
        let source_failure = |counted: &mut Option<Counted>| {
            let failure = counted.as_mut().and_then(|c| c.failure.take());
            failure.map(|e| self.source.error(e.into()))
        };
        if counted.as_ref().is_some_and(|c| c.over_limit) {
            return Err(PushError::TooLarge {
                sent,
                by_server: false,
                detail: String::new(),
            });
        }
        let status = match pushed {
            Ok(status) => status,
            Err(err) => {
                if let Some(e) = source_failure(&mut counted) {
                    return Err(PushError::Side(e));
                }
                if sent > 0 && refused_as_too_large(&err) {
                    return Err(PushError::TooLarge {
                        sent,
                        by_server: true,
                        detail: err.cause.to_string(),
                    });
                }
                if sent > 0 && cut_while_sending(&err) {
                    return Err(PushError::Cut { sent, error: err });
                }
                let length_required = matches!(
                    err.cause,
                    Cause::Transport(crate::transport::TransportError::LengthRequired { .. })
                );
                if length_required && !self.resent {
                    self.resent = true;
                    return Err(PushError::Resend);
                }
                return Err(PushError::Side(err));
            }
        };
        let Err(reason) = &status.unpack else {
            return Ok(status);
        };
        // The destination may have refused bytes the source damaged: the rest
        // of the pack and its checksum tell.
        if let Some(c) = counted.as_mut() {
            c.read_rest();
        }
        if let Some(e) = source_failure(&mut counted) {
            return Err(PushError::Side(e));
        }
        if reason.contains("exceeds maximum allowed size") {
            return Err(PushError::TooLarge {
                sent,
                by_server: true,
                detail: reason.clone(),
            });
        }
        Err(PushError::Unpack {
            reason: reason.clone(),
            error: self.destination.error(Cause::Refused(format!(
                "the server could not store the pack (unpack {reason}); no ref was changed"
            ))),
        })
    }

    /// Sends `commands` (the source HEAD's branch first) in as many pushes
    /// as the limits call for: increments first when `history` says the
    /// pack is known to be too large, then chunks of refs. `dest_refs` is
    /// the destination's listing; `source_refs` the source's, whose tips
    /// serve as checkpoints where the source serves nothing else.
    pub(super) fn in_parts(
        &mut self,
        commands: &[Command],
        dest_refs: &[Ref],
        source_refs: &[Ref],
        history: bool,
    ) -> Result<ReportStatus, PushError> {
        let mut haves: Vec<ObjectId> = dest_refs.iter().map(|r| r.oid).collect();
        // Checkpoints a killed run left behind go once the refs are in.
        let leftovers: Vec<(String, ObjectId)> = dest_refs
            .iter()
            .filter(|r| r.name.starts_with(CHECKPOINT_PREFIX))
            .map(|r| (r.name.clone(), r.oid))
            .collect();
        let wants = |from: &[Command], haves: &[ObjectId]| -> Vec<ObjectId> {
            let have: HashSet<&ObjectId> = haves.iter().collect();
            let mut seen = HashSet::new();
            from.iter()
                .map(|c| c.new)
                .filter(|n| !n.is_zero() && !have.contains(n) && seen.insert(*n))
                .collect()
        };
        let mut incremented = false;
        let mut tail = None;
        if history {
            let history = wants(commands, &haves);
            tail = self.history(&history, &mut haves, (source_refs, dest_refs))?;
            incremented = true;
        }
        // The refs, then the checkpoints' deletions: their history is what
        // the refs hold by then.
        let mut queue: Vec<Command> = commands.to_vec();
        self.checkpoints.extend(leftovers);
        self.queue_deletes(&mut queue);
        let mut status = ReportStatus {
            unpack: Ok(()),
            refs: Vec::new(),
        };
        let mut done = 0;
        while done < queue.len() {
            let chunk = &queue[done..(done + self.max_refs).min(queue.len())];
            let needed = wants(chunk, &haves);
            let pushed = match tail.take() {
                Some(held) => {
                    let before = held.before.clone();
                    // The failure, if the tail did not land (none when
                    // there is nothing to learn from it).
                    let outcome = match self.join_tail(chunk, &needed, &haves, held)? {
                        Joined::Pack(pack) => {
                            self.send(chunk, Some(Pack::Held(pack)), None).map_err(Some)
                        }
                        Joined::Apart(held) => match self.tail_alone(held) {
                            Ok(true) => {
                                self.queue_deletes(&mut queue);
                                continue;
                            }
                            Ok(false) => Err(None),
                            Err(failure) => Err(Some(failure)),
                        },
                    };
                    match outcome {
                        Ok(status) => {
                            // A push refused whole by a hook leaves none of
                            // its objects (git quarantines them until the
                            // pre-receive hook accepts it): later chunks
                            // then bring what they need themselves.
                            if status.refs.iter().all(|r| r.result.is_err()) {
                                haves = before;
                            }
                            Ok(status)
                        }
                        Err(failure) => {
                            // It goes in increments of its own first.
                            match failure {
                                None | Some(PushError::Resend) => {}
                                Some(failure) => {
                                    self.too_large(failure)?;
                                }
                            }
                            haves = before;
                            let rest = wants(&queue[done..], &haves);
                            self.increments(&rest, &mut haves, source_refs, false)?;
                            self.queue_deletes(&mut queue);
                            continue;
                        }
                    }
                }
                None => {
                    let pack = match needed.is_empty() {
                        true => None,
                        false => {
                            self.source
                                .negotiate(&needed, &haves, &[], Some(self.pack))?
                                .pack
                        }
                    };
                    self.push(chunk, pack)
                }
            };
            match pushed {
                Ok(s) => {
                    for r in s.refs {
                        match &r.result {
                            Err(reason) if r.name.starts_with(CHECKPOINT_PREFIX) => {
                                output::warn(format_args!(
                                    "destination: could not delete the checkpoint {}: {reason}",
                                    r.name
                                ))
                            }
                            _ => status.refs.push(r),
                        }
                    }
                    haves.extend(needed);
                    done += chunk.len();
                }
                Err(PushError::Resend) => continue,
                Err(failure) if !incremented => {
                    self.too_large(failure)?;
                    let rest = wants(&queue[done..], &haves);
                    tail = self.history(&rest, &mut haves, (source_refs, dest_refs))?;
                    self.queue_deletes(&mut queue);
                    incremented = true;
                }
                Err(failure @ (PushError::TooLarge { .. } | PushError::Cut { .. })) => {
                    self.too_large(failure)?;
                    return Err(PushError::Side(self.destination.error(Cause::Refused(format!(
                        "the objects for {} beyond the history already sent are larger than the push budget of {}",
                        chunk[0].name,
                        human_bytes(self.budget.unwrap_or(0))
                    )))));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(status)
    }

    /// Pushes the history of `wants` that `haves` lack: in pieces of one
    /// pack where that can be done (see [`pieces`]), in increments
    /// otherwise, leaving their tail for the refs.
    fn history(
        &mut self,
        wants: &[ObjectId],
        haves: &mut Vec<ObjectId>,
        (source_refs, dest_refs): (&[Ref], &[Ref]),
    ) -> Result<Option<Tail>, PushError> {
        match self.pieces(wants, haves, dest_refs)? {
            pieces::Pieces::Sent => Ok(None),
            pieces::Pieces::Increments => self.increments(wants, haves, source_refs, true),
        }
    }

    /// The pack for `chunk`, the first refs, with the end of the history
    /// that the increments left (`tail`) and whatever else the chunk needs
    /// beyond it, when the two fit the budget together.
    fn join_tail(
        &mut self,
        chunk: &[Command],
        needed: &[ObjectId],
        haves: &[ObjectId],
        tail: Tail,
    ) -> Result<Joined, PushError> {
        let limit = self.limit(chunk).unwrap_or(u64::MAX);
        // Deletions alone carry no pack.
        if chunk.iter().all(|c| c.new.is_zero()) || tail.pack.len() as u64 > limit {
            return Ok(Joined::Apart(tail));
        }
        let pack = match needed.is_empty() {
            true => tail.pack,
            false => {
                let room = limit + JOIN_OVERHEAD - tail.pack.len() as u64;
                let buffers = Buffers::default();
                match fetch_held(self.source, needed, haves, self.pack, room, &buffers) {
                    Ok(more) => crate::protocol::pack::concatenate(tail.pack, &[more])
                        .map_err(|e| PushError::Side(self.source.error(e.into())))?,
                    Err(PushError::TooLarge { .. }) => return Ok(Joined::Apart(tail)),
                    Err(e) => return Err(e),
                }
            }
        };
        output::info(format_args!(
            "pushing the {}, {}) with the refs",
            tail.span,
            human_bytes(pack.len() as u64)
        ));
        Ok(Joined::Pack(pack))
    }

    /// Pushes `tail` as the increment it is, into its checkpoints: whether
    /// the destination took it, or why the push failed.
    fn tail_alone(&mut self, tail: Tail) -> Result<bool, PushError> {
        let pushed = self.send(&tail.checkpoints, Some(Pack::Held(tail.pack)), None);
        if !pushed?.refs.iter().all(|r| r.result.is_ok()) {
            return Ok(false);
        }
        output::info(format_args!(
            "pushed {}, {})",
            tail.span,
            human_bytes(self.last)
        ));
        self.checkpoints
            .extend(tail.checkpoints.into_iter().map(|c| (c.name, c.new)));
        Ok(true)
    }

    /// Pushes the history of `wants` (the source HEAD's branch first) in
    /// increments under the budget, each into a checkpoint ref; `haves`
    /// grows with every checkpoint the destination takes. When
    /// `leave_tail`, the last increment held in memory is not pushed but
    /// returned, with `haves` as if it had landed (see [`Tail`]).
    fn increments(
        &mut self,
        wants: &[ObjectId],
        haves: &mut Vec<ObjectId>,
        source_refs: &[Ref],
        leave_tail: bool,
    ) -> Result<Option<Tail>, PushError> {
        self.batched = true;
        output::info(format_args!(
            "pushing in increments of at most {}: learning the commits to send",
            human_bytes(self.budget.unwrap_or(u64::MAX))
        ));
        // Learnt on a thread of its own where the source allows: the reader
        // holds up to tens of megabytes of commit bodies while it reads,
        // and the allocator gives a finished thread's memory back, where
        // the main thread's would stay for the rest of the run.
        let graph = match self.source.concurrent() {
            Some(source) => std::thread::scope(|scope| {
                scope
                    .spawn(|| source.commit_graph(wants, haves))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })?,
            None => self.source.commit_graph(wants, haves)?,
        };
        if graph.is_empty() {
            return Ok(None);
        }
        output::debug(format_args!(
            "the commit graph of {} commits holds {}",
            graph.len(),
            human_bytes(graph.heap_bytes() as u64)
        ));
        let order = push_order(&graph, wants);
        if order.is_empty() {
            return Ok(None);
        }
        let mut position = vec![usize::MAX; graph.len()];
        for (at, &commit) in order.iter().enumerate() {
            position[commit as usize] = at;
        }
        // Each checkpoint: where it is in the order, what to want, and the
        // ref that names it when that is not the commit itself (a string for
        // each of a million commits would be tens of megabytes).
        let any = self.source.serves_any_commit();
        let checkpoints: Vec<(usize, ObjectId, Option<String>)> = if any {
            order
                .iter()
                .enumerate()
                .map(|(at, &c)| (at, graph.id(c), None))
                .collect()
        } else {
            output::info(format_args!(
                "the source serves only the history of its refs (protocol v0 without allowReachableSHA1InWant): its tags and branches serve as checkpoints"
            ));
            let mut tips: HashMap<usize, (ObjectId, String)> = HashMap::new();
            for r in source_refs.iter().filter(|r| r.name.starts_with("refs/")) {
                let commit = r.peeled.unwrap_or(r.oid);
                let Some(index) = graph.index(&graph.peel(&commit)) else {
                    continue;
                };
                let at = position[index as usize];
                if at != usize::MAX {
                    tips.entry(at).or_insert((r.oid, r.name.clone()));
                }
            }
            let mut tips: Vec<(usize, ObjectId, Option<String>)> = tips
                .into_iter()
                .map(|(at, (oid, name))| (at, oid, Some(name)))
                .collect();
            tips.sort_by_key(|t| t.0);
            tips
        };
        output::info(format_args!("{} commits to send", order.len()));
        // The wants of the increment `checkpoints[from..=to]`: with any
        // commit served, those of its commits that none of its others has
        // as a parent (the rest are their ancestors, and what came before
        // is the destination's by then); a side branch that ends inside the
        // slice needs its own. With tips only, every tip in the slice.
        let slice_wants = |from: usize, to: usize| -> Vec<ObjectId> {
            if !any {
                let mut seen = HashSet::new();
                return checkpoints[from..=to]
                    .iter()
                    .map(|c| c.1)
                    .filter(|oid| seen.insert(*oid))
                    .collect();
            }
            let mut inner = vec![false; to + 1 - from];
            for &commit in &order[from..=to] {
                for &parent in graph.parents(commit) {
                    let at = position[parent as usize];
                    if (from..=to).contains(&at) {
                        inner[at - from] = true;
                    }
                }
            }
            order[from..=to]
                .iter()
                .zip(&inner)
                .filter(|(_, &inner)| !inner)
                .map(|(&commit, _)| graph.id(commit))
                .collect()
        };
        // The haves once `checkpoints[from..=to]` landed with `wants`: those,
        // less the earlier wants they descend from (fewer haves, the same
        // history).
        let landed = |haves: &[ObjectId], from: usize, to: usize, wants: &[ObjectId]| {
            let covered: HashSet<ObjectId> = match any {
                true => order[from..=to]
                    .iter()
                    .flat_map(|&c| graph.parents(c))
                    .filter(|&&p| position[p as usize] < from)
                    .map(|&p| graph.id(p))
                    .collect(),
                false => HashSet::new(),
            };
            let mut haves: Vec<ObjectId> = haves
                .iter()
                .filter(|h| !covered.contains(h))
                .copied()
                .collect();
            haves.extend(wants);
            haves
        };
        let checkpoint = |want: &ObjectId| Command {
            old: ObjectId::ZERO,
            new: *want,
            name: format!("{CHECKPOINT_PREFIX}{want}"),
        };
        let mut next = 0;
        let mut slice = FIRST_SLICE;
        // Under a budget small enough to hold packs in memory, the history
        // is fetched in units of about half the budget, ahead of the
        // pushes ([`Ahead`]), and each push joins as many of them as fit
        // (`protocol::pack::concatenate`): pushes come close to the budget
        // without one fetched too large and thrown away, and the source
        // packs the next units while the destination stores the last.
        let mut ready: VecDeque<Unit> = VecDeque::new();
        let mut rate = Rate::default();
        let buffers = Buffers::default();
        let mut sized_for = self.budget;
        while next < checkpoints.len() {
            if self.budget < sized_for {
                buffers.clear();
            }
            sized_for = self.budget;
            let held = match (self.source.concurrent(), self.budget) {
                (Some(source), Some(budget)) if budget <= HOLD_MAX => Some((source, budget)),
                _ => None,
            };
            let mut planned = None;
            let (last, wants, commands, pushed) = match held {
                Some((source, budget)) if ready.is_empty() => {
                    // Nothing fetched ahead (the start, or after a
                    // refusal): one unit, while the destination waits.
                    let last = (next + slice).min(checkpoints.len()) - 1;
                    let wants = slice_wants(next, last);
                    let commands: Vec<Command> = wants.iter().map(checkpoint).collect();
                    let limit = limit_of(Some(budget), &commands).unwrap_or(budget);
                    match fetch_held(source, &wants, haves, self.pack, limit, &buffers) {
                        Ok(pack) => {
                            rate.record(pack.len() as u64, last + 1 - next);
                            slice = rate.slice(last + 1 - next, budget);
                            ready.push_back(Unit { to: last, pack });
                            continue;
                        }
                        Err(failure) => (last, wants, commands, Err(failure)),
                    }
                }
                Some((source, budget)) => {
                    // As many units as fit the budget with their commands.
                    let mut joined = 1;
                    let mut bytes = ready[0].pack.len() as u64;
                    while let Some(unit) = ready.get(joined) {
                        let wants = slice_wants(next, unit.to);
                        let commands: Vec<Command> = wants.iter().map(checkpoint).collect();
                        let more = bytes + unit.pack.len() as u64 - JOIN_OVERHEAD;
                        if more > limit_of(Some(budget), &commands).unwrap_or(budget) {
                            break;
                        }
                        bytes = more;
                        joined += 1;
                    }
                    let last = ready[joined - 1].to;
                    let wants = slice_wants(next, last);
                    let commands: Vec<Command> = wants.iter().map(checkpoint).collect();
                    let mut units = ready.drain(..joined).map(|u| u.pack);
                    let first = units.next().expect("at least one unit");
                    let rest: Vec<Vec<u8>> = units.collect();
                    let pack = crate::protocol::pack::concatenate(first, &rest)
                        .map_err(|e| PushError::Side(source.error(e.into())))?;
                    rest.into_iter().for_each(|b| buffers.give(b));
                    if leave_tail && last + 1 == checkpoints.len() {
                        let (at, oid, ref name) = checkpoints[last];
                        let label = name.clone().unwrap_or_else(|| oid.to_string());
                        let span = format!(
                            "increment up to {} ({} of {} commits",
                            &label[..label.len().min(40)],
                            at + 1,
                            order.len()
                        );
                        let before = haves.clone();
                        *haves = landed(haves, next, last, &wants);
                        return Ok(Some(Tail {
                            pack,
                            checkpoints: commands,
                            before,
                            span,
                        }));
                    }
                    // What follows the units still held, up to a budget's
                    // worth, fetched while the destination takes this push.
                    let from = ready.back().map_or(last + 1, |u| u.to + 1);
                    let held_bytes: u64 = ready.iter().map(|u| u.pack.len() as u64).sum();
                    let before = slice_wants(next, from - 1);
                    let ahead_haves = landed(haves, next, from - 1, &before);
                    let options = self.pack;
                    let ahead = Ahead {
                        source,
                        options,
                        budget,
                        slice,
                        room: AHEAD_UNITS.saturating_sub(ready.len()),
                        rate,
                        buffers: &buffers,
                        slice_wants: &slice_wants,
                        landed: &landed,
                        checkpoint: &checkpoint,
                    };
                    let end = checkpoints.len();
                    let (pushed, (fetched, following, measured)) = std::thread::scope(|scope| {
                        let thread =
                            scope.spawn(move || ahead.fetch(from, end, ahead_haves, held_bytes));
                        let pushed = self.send(&commands, Some(Pack::Held(pack)), Some(&buffers));
                        let fetched = thread
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                        (pushed, fetched)
                    });
                    if pushed.is_ok() {
                        ready.extend(fetched);
                        planned = Some(following);
                        rate = measured;
                    } else {
                        // The units ahead assumed this push would land, and
                        // were sized for a budget that may now change.
                        ready
                            .drain(..)
                            .chain(fetched)
                            .for_each(|u| buffers.give(u.pack));
                    }
                    (last, wants, commands, pushed)
                }
                None => {
                    ready.drain(..).for_each(|u| buffers.give(u.pack));
                    let last = (next + slice).min(checkpoints.len()) - 1;
                    let wants = slice_wants(next, last);
                    let commands: Vec<Command> = wants.iter().map(checkpoint).collect();
                    let pack = self
                        .source
                        .negotiate(&wants, haves, &[], Some(self.pack))?
                        .pack;
                    let pushed = self.push(&commands, pack);
                    (last, wants, commands, pushed)
                }
            };
            let (at, oid, ref name) = checkpoints[last];
            let label = name.clone().unwrap_or_else(|| oid.to_string());
            match pushed {
                Ok(status) => {
                    if let Some((name, reason)) = status
                        .refs
                        .iter()
                        .find_map(|r| r.result.as_ref().err().map(|e| (&r.name, e)))
                    {
                        // A run killed during its push may see the server
                        // create the checkpoint after the next run listed
                        // the refs: the same name holds the same commit,
                        // so one that is there now is as good as pushed.
                        if !self.checkpoints_exist(&commands)? {
                            return Err(PushError::Side(self.destination.error(Cause::Refused(
                                format!("the server refused the checkpoint ref {name} that a batched push needs: {reason}"),
                            ))));
                        }
                    }
                    let sent = self.last;
                    output::info(format_args!(
                        "pushed increment up to {} ({} of {} commits, {})",
                        &label[..label.len().min(40)],
                        at + 1,
                        order.len(),
                        human_bytes(sent)
                    ));
                    *haves = landed(haves, next, last, &wants);
                    self.checkpoints
                        .extend(commands.into_iter().map(|c| (c.name, c.new)));
                    self.landed(sent);
                    slice = planned.unwrap_or_else(|| {
                        next_slice(last + 1 - next, sent, self.budget, PUSH_PERCENT)
                    });
                    next = last + 1;
                }
                Err(PushError::Resend) => continue,
                // Too large: a smaller slice, down to one commit. (A first
                // cut connection fails the run, to be retried: it resumes
                // from the checkpoints.)
                Err(failure) => {
                    let refused = self.too_large(failure)?;
                    if last > next {
                        slice = (last - next).div_ceil(2).max(1);
                        continue;
                    }
                    let budget = human_bytes(self.budget.unwrap_or(0));
                    // The budget may be the limit the server stated: then
                    // it is the host's to raise, not the budget's.
                    let stated = learnt(&self.key, |l| l.stated.clone())
                        .filter(|&(_, set, _)| Some(set) == self.budget);
                    let message = if let Some(detail) = refused {
                        format!(
                            "the server refuses even the push of {label} alone as too large: {detail}"
                        )
                    } else if let Some((limit, _, detail)) = stated {
                        let what = match any {
                            true => format!("commit {label} alone"),
                            false => format!("the history up to {label}"),
                        };
                        format!(
                            "{what} is larger than the server's limit of {} a push, which only the host can raise: {detail}",
                            human_bytes(limit)
                        )
                    } else if any {
                        format!(
                            "commit {label} alone brings more than the push budget of {budget}; raise --dest-max-push-bytes above its size (up to what the host accepts)"
                        )
                    } else {
                        format!(
                            "the history up to {label} is larger than the push budget of {budget}, and the source serves only the history of its refs; enable uploadpack.allowReachableSHA1InWant (or protocol v2) on the source, or raise --dest-max-push-bytes"
                        )
                    };
                    // Nothing to resume from until the budget changes: the
                    // checkpoints of this run go, and the destination is as
                    // it was.
                    self.remove_checkpoints();
                    return Err(PushError::Side(
                        self.destination.error(Cause::Refused(message)),
                    ));
                }
            }
        }
        Ok(None)
    }
}

impl Pusher<'_> {
    /// Whether the destination holds every checkpoint of `commands` with
    /// its commit, as listed now.
    fn checkpoints_exist(&self, commands: &[Command]) -> Result<bool, PushError> {
        let listed = self.destination.list_refs()?;
        Ok(commands
            .iter()
            .all(|c| listed.iter().any(|r| r.name == c.name && r.oid == c.new)))
    }

    /// Puts the deletion of every checkpoint known so far at the end of
    /// `queue`.
    fn queue_deletes(&mut self, queue: &mut Vec<Command>) {
        queue.extend(self.checkpoints.drain(..).map(|(name, old)| Command {
            old,
            new: ObjectId::ZERO,
            name,
        }));
    }

    /// Deletes the checkpoints this run made, as far as the destination
    /// lets it (best effort: the run is failing already).
    fn remove_checkpoints(&mut self) {
        let mut deletes = Vec::new();
        self.queue_deletes(&mut deletes);
        for chunk in deletes.chunks(self.max_refs) {
            let _ = self.push(chunk, None);
        }
    }
}

/// The limit a refusal states, as git's index-pack words it for
/// `receive.maxInputSize`: "pack exceeds maximum allowed size (2.00 GiB)"
/// (the size as `strbuf_humanise_bytes` prints it: "512 bytes", "1 byte",
/// or two decimals of KiB, MiB or GiB). Older servers and unpack-objects
/// leave the size out.
fn stated_limit(detail: &str) -> Option<u64> {
    const LEAD: &str = "maximum allowed size (";
    let rest = &detail[detail.find(LEAD)? + LEAD.len()..];
    let stated = &rest[..rest.find(')')?];
    let (number, unit) = stated.split_once(' ')?;
    let unit: u64 = match unit {
        "byte" | "bytes" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    let (whole, hundredths) = match number.split_once('.') {
        Some((whole, fraction)) if fraction.len() == 2 && unit > 1 => (whole, fraction),
        None => (number, "0"),
        _ => return None,
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(hundredths) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let hundredths: u64 = hundredths.parse().ok()?;
    whole
        .checked_mul(unit)?
        .checked_add(hundredths.checked_mul(unit)? / 100)
}

/// Whether a cut after `sent` bytes comes at about the offset of an
/// earlier one (within half: what the sender counts includes what sat in
/// socket buffers when the other end hung up).
fn repeats(cuts: &[u64], sent: u64) -> bool {
    cuts.iter()
        .any(|&earlier| earlier.abs_diff(sent) <= earlier.max(sent) / 2)
}

/// How many checkpoints the next increment (or unit) spans, after `slice`
/// of them made a pack of `sent` bytes: aiming at `percent` of the budget,
/// which leaves room for commits larger than the average. It grows at most
/// sixteenfold while packs are under 1/32 of the budget, fourfold under
/// 1/8, twofold nearer (the first slices are small, so that a history of
/// even commits goes without a push cut short), and halves at most.
fn next_slice(slice: usize, sent: u64, budget: Option<u64>, percent: u64) -> usize {
    let budget = budget.unwrap_or(u64::MAX);
    let target = budget as f64 * percent as f64 / 100.0;
    let scaled = slice as f64 * target / sent.max(1) as f64;
    let growth = match sent {
        s if s < budget / 32 => 16,
        s if s < budget / 8 => 4,
        _ => 2,
    };
    (scaled as usize).clamp((slice / 2).max(1), slice.saturating_mul(growth))
}

/// The most pack bytes a push of `commands` may carry under `budget`: the
/// budget less the commands, since a host's cap counts the whole body (a
/// chunk of 5,000 ref updates is about half a megabyte).
fn limit_of(budget: Option<u64>, commands: &[Command]) -> Option<u64> {
    let commands_bytes: u64 = commands
        .iter()
        .map(|c| c.name.len() as u64 + COMMAND_OVERHEAD)
        .sum();
    budget.map(|b| b.saturating_sub(commands_bytes).max(1))
}

/// The bytes per checkpoint of the last units fetched, which size the
/// next: their median, so that a unit holding a large file (a binary's new
/// version) does not shrink the next ones, which then fill a push two at a
/// time while the one with the file fills a push alone.
#[derive(Clone, Copy, Default)]
struct Rate {
    /// (bytes, checkpoints) of the last [`Rate::UNITS`] units, oldest
    /// first, and how many are set.
    recent: [(u64, usize); Rate::UNITS],
    len: usize,
}

impl Rate {
    const UNITS: usize = 5;

    fn record(&mut self, bytes: u64, checkpoints: usize) {
        if self.len == Self::UNITS {
            self.recent.rotate_left(1);
            self.len -= 1;
        }
        self.recent[self.len] = (bytes, checkpoints);
        self.len += 1;
    }

    /// How many checkpoints the next unit spans, the last having spanned
    /// `slice`: [`UNIT_PERCENT`] of `budget` at the median rate, growing
    /// at most sixteenfold from one unit to the next (the first commits
    /// of a history say little about the rest).
    fn slice(&self, slice: usize, budget: u64) -> usize {
        let mut rates: Vec<f64> = self.recent[..self.len]
            .iter()
            .filter(|&&(_, checkpoints)| checkpoints > 0)
            .map(|&(bytes, checkpoints)| bytes.max(1) as f64 / checkpoints as f64)
            .collect();
        if rates.is_empty() {
            return slice;
        }
        rates.sort_by(f64::total_cmp);
        let per = rates[rates.len() / 2];
        let target = budget as f64 * UNIT_PERCENT as f64 / 100.0;
        ((target / per) as usize).clamp(1, slice.saturating_mul(16).max(1))
    }
}

/// A unit of history fetched ahead of its push: the pack of the checkpoints
/// after the previous unit's, up to `to`.
struct Unit {
    to: usize,
    pack: Vec<u8>,
}

/// The haves once checkpoints `from..=to` landed with their wants, given
/// the haves before (see `Pusher::increments`).
type Landed<'a> = dyn Fn(&[ObjectId], usize, usize, &[ObjectId]) -> Vec<ObjectId> + Sync + 'a;

/// A unit's wants, and its pack or why there is none.
type Fetched = (Vec<ObjectId>, Result<Vec<u8>, PushError>);

/// Fetches units ahead of the pushes, on a thread of its own while the
/// destination takes a push. It sees the plan of the increments only
/// through these functions of `Pusher::increments`.
struct Ahead<'a> {
    source: &'a (dyn SourceSide + Sync),
    options: PackOptions,
    budget: u64,
    /// Checkpoints per unit, as last sized.
    slice: usize,
    /// How many more units memory has room for.
    room: usize,
    rate: Rate,
    buffers: &'a Buffers,
    slice_wants: &'a (dyn Fn(usize, usize) -> Vec<ObjectId> + Sync),
    landed: &'a Landed<'a>,
    checkpoint: &'a (dyn Fn(&ObjectId) -> Command + Sync),
}

impl Ahead<'_> {
    /// The units from checkpoint `from` on (before `end`), given `haves`
    /// once everything before `from` landed, until they and the
    /// `held` bytes already fetched make a budget's worth: enough for the
    /// next push to be as full as it can be, and no more held in memory.
    /// Also how many checkpoints the next unit should span, and the rate
    /// measured. Two units the next push will need are fetched at once.
    /// It stops at the first failure: the pushes fetch that unit again
    /// themselves and meet the error there.
    fn fetch(
        self,
        from: usize,
        end: usize,
        haves: Vec<ObjectId>,
        held: u64,
    ) -> (Vec<Unit>, usize, Rate) {
        let (mut units, mut at, mut slice, mut held, mut haves) =
            (Vec::new(), from, self.slice, held, haves);
        let mut rate = self.rate;
        'fetching: while at < end && held < self.budget && units.len() < self.room {
            // The next unit, and the one after it at the same time where
            // one alone will not make a budget's worth and there is room
            // for two: the source packs them on two processors (a unit's
            // pack depends on where it starts, not on the one before).
            let first = (at, (at + slice).min(end) - 1);
            let pair = units.len() + 2 <= self.room
                && first.1 + 1 < end
                && held < self.budget / 100 * (100 - UNIT_PERCENT);
            let mut ranges = vec![(first, haves.clone())];
            if pair {
                let second = (first.1 + 1, (first.1 + 1 + slice).min(end) - 1);
                let wants = (self.slice_wants)(first.0, first.1);
                let after = (self.landed)(&haves, first.0, first.1, &wants);
                ranges.push((second, after));
            }
            let this = &self;
            let packs: Vec<Fetched> = std::thread::scope(|scope| {
                let threads: Vec<_> = ranges[1..]
                    .iter()
                    .map(|(range, haves)| scope.spawn(move || this.unit(*range, haves)))
                    .collect();
                let mut packs = vec![self.unit(ranges[0].0, &ranges[0].1)];
                packs.extend(threads.into_iter().map(|thread| {
                    thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                }));
                packs
            });
            // In order, up to the first failure; a unit fetched after it
            // goes (a too large one is fetched again in halves, first).
            let mut failed = None;
            for (((from, to), _), (wants, pack)) in ranges.into_iter().zip(packs) {
                match (pack, &failed) {
                    (Ok(pack), Some(_)) => self.buffers.give(pack),
                    (Ok(pack), None) => {
                        rate.record(pack.len() as u64, to + 1 - from);
                        slice = rate.slice(to + 1 - from, self.budget);
                        held += pack.len() as u64;
                        haves = (self.landed)(&haves, from, to, &wants);
                        units.push(Unit { to, pack });
                        at = to + 1;
                    }
                    (Err(e), None) => failed = Some((e, from, to)),
                    (Err(_), Some(_)) => {}
                }
            }
            match failed {
                None => {}
                Some((PushError::TooLarge { .. }, from, to)) if to > from => {
                    slice = (to - from).div_ceil(2).max(1);
                }
                Some(_) => break 'fetching,
            }
        }
        (units, slice, rate)
    }

    /// The pack of checkpoints `from..=to` given `haves`, with the wants
    /// it was asked for.
    fn unit(&self, (from, to): (usize, usize), haves: &[ObjectId]) -> Fetched {
        let wants = (self.slice_wants)(from, to);
        let commands: Vec<Command> = wants.iter().map(self.checkpoint).collect();
        let limit = limit_of(Some(self.budget), &commands).unwrap_or(self.budget);
        let pack = fetch_held(
            self.source,
            &wants,
            haves,
            self.options,
            limit,
            self.buffers,
        );
        (wants, pack)
    }
}

/// Whether a failed push reads as "too large": HTTP 413, or a deadline
/// that cut the upload (408, 504). A cut connection is told apart
/// ([`cut_while_sending`]): once may be the network.
fn refused_as_too_large(err: &SideError) -> bool {
    match &err.cause {
        Cause::Transport(t) => t.refused_as_too_large() && !cut_while_sending(err),
        _ => false,
    }
}

/// Whether the connection was reset or closed while the body was still
/// being sent.
fn cut_while_sending(err: &SideError) -> bool {
    use crate::transport::TransportError as T;
    match &err.cause {
        Cause::Transport(T::RequestCut(_)) => true,
        Cause::Transport(T::Io(e)) | Cause::Protocol(ProtocolError::Io(e)) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_slice_grows_toward_eighty_percent_of_the_budget() {
        // 10 commits made 1 MiB of a 10 MiB budget: 80 would fit, 40 is the step.
        assert_eq!(next_slice(10, MIB, Some(10 * MIB), PUSH_PERCENT), 40);
        // Far under it, sixteenfold: 10 commits of 100 KiB (800 would fit).
        assert_eq!(next_slice(10, MIB / 10, Some(10 * MIB), PUSH_PERCENT), 160);
        // Nearer the budget, twofold at most.
        assert_eq!(next_slice(10, 2 * MIB, Some(10 * MIB), PUSH_PERCENT), 20);
        assert_eq!(next_slice(10, 5 * MIB, Some(10 * MIB), PUSH_PERCENT), 16);
        // 10 commits made 10 MiB of 10: 8 aim at 8 MiB.
        assert_eq!(next_slice(10, 10 * MIB, Some(10 * MIB), PUSH_PERCENT), 8);
        // Never below half, never below one.
        assert_eq!(next_slice(10, 100 * MIB, Some(10 * MIB), PUSH_PERCENT), 5);
        assert_eq!(next_slice(1, 100 * MIB, Some(10 * MIB), PUSH_PERCENT), 1);
    }

    #[test]
    fn units_are_sized_at_the_median_rate_of_the_last_ones() {
        let mut rate = Rate::default();
        // Nothing measured yet: the slice stays.
        assert_eq!(rate.slice(7, 10 * MIB), 7);
        // 100 commits of 10 KiB: 45% of 10 MiB is 460 of them, but a unit
        // grows at most sixteenfold.
        let small = 100 * 10 * 1024;
        rate.record(small, 100);
        assert_eq!(rate.slice(10, 10 * MIB), 160);
        assert_eq!(rate.slice(100, 10 * MIB), 460);
        // A unit holding a 4 MiB file among its commits does not shrink
        // the next ones; two of them would.
        rate.record(4 * MIB + small, 100);
        rate.record(small, 100);
        assert_eq!(rate.slice(100, 10 * MIB), 460);
        rate.record(4 * MIB, 100);
        rate.record(4 * MIB, 100);
        assert!(rate.slice(100, 10 * MIB) < 200);
        // Only the last five count.
        for _ in 0..3 {
            rate.record(small, 100);
        }
        assert_eq!(rate.slice(100, 10 * MIB), 460);
    }

    #[test]
    fn a_limit_the_server_states_is_read_and_anything_else_is_not() {
        let said = |size: &str| {
            stated_limit(&format!(
                "unpack index-pack abnormal exit\nremote: fatal: pack exceeds maximum allowed size ({size})"
            ))
        };
        assert_eq!(said("2.00 GiB"), Some(2 << 30));
        assert_eq!(said("256.00 KiB"), Some(256 << 10));
        assert_eq!(said("7.75 MiB"), Some(7 * MIB + 3 * MIB / 4));
        assert_eq!(said("512 bytes"), Some(512));
        assert_eq!(said("1 byte"), Some(1));
        for garbage in [
            "",
            "GiB",
            "2.00",
            "2.0 GiB",
            "2.000 GiB",
            "-1.00 GiB",
            "1.-1 MiB",
            "2.00 TiB",
            "2.00  GiB",
            "x.00 MiB",
            "1.5 bytes",
            "99999999999999999999.00 GiB",
            "18446744073709551615 bytes",
        ] {
            assert_eq!(said(garbage), None, "{garbage:?}");
        }
        assert_eq!(
            stated_limit("remote: fatal: pack exceeds maximum allowed size"),
            None
        );
        assert_eq!(stated_limit("maximum allowed size (2.00 GiB"), None);
        // Cut anywhere or with bytes changed, a message never panics the
        // reader.
        let whole = "fatal: pack exceeds maximum allowed size (256.00 KiB)";
        for end in 0..=whole.len() {
            let _ = stated_limit(&whole[..end]);
        }
        let mut rng = crate::protocol::fuzz_regressions::XorShift(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"0123456789. ()KMGiBbytes\xff";
        for _ in 0..20_000 {
            let mut bytes = whole.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = 40 + rng.below(bytes.len() - 40);
                bytes[at] = alphabet[rng.below(alphabet.len())];
            }
            let _ = stated_limit(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn a_cut_is_a_limit_when_it_comes_again_at_about_the_same_offset() {
        assert!(!repeats(&[], 10 * MIB));
        assert!(!repeats(&[10 * MIB], 30 * MIB));
        assert!(repeats(&[10 * MIB, 30 * MIB], 12 * MIB));
    }

    #[test]
    fn a_slice_without_a_budget_or_bytes_only_grows() {
        assert_eq!(next_slice(64, 0, Some(MIB), PUSH_PERCENT), 1024);
        assert_eq!(next_slice(64, MIB, None, PUSH_PERCENT), 1024);
    }

    #[test]
    fn refusals_that_mean_too_large() {
        use crate::mirror::error::{Blame, Side};
        use crate::transport::TransportError as T;
        let blame = Blame::new(
            Side::Destination,
            "https://x.example/r",
            std::time::Duration::from_secs(1),
        );
        let status = |status| {
            blame.error(T::Status {
                status,
                detail: String::new(),
            })
        };
        let detail = String::new();
        assert!(refused_as_too_large(&blame.error(T::TooLarge {
            status: 413,
            detail: detail.clone()
        })));
        assert!(refused_as_too_large(
            &blame.error(T::RequestTimeout { detail })
        ));
        assert!(!refused_as_too_large(&status(400)));
        let cut = blame.error(T::RequestCut(io::ErrorKind::ConnectionReset.into()));
        assert!(cut_while_sending(&cut) && !refused_as_too_large(&cut));
        let busy = |status| {
            blame.error(T::Busy {
                status,
                retry_after: None,
                detail: String::new(),
            })
        };
        assert!(refused_as_too_large(&busy(504)));
        assert!(!refused_as_too_large(&busy(503)));
        let io = |kind| blame.error(T::Io(io::Error::from(kind)));
        assert!(cut_while_sending(&io(io::ErrorKind::ConnectionReset)));
        assert!(cut_while_sending(&io(io::ErrorKind::BrokenPipe)));
        assert!(!cut_while_sending(&io(io::ErrorKind::NotFound)));
        assert!(!refused_as_too_large(&io(io::ErrorKind::ConnectionReset)));
    }

    // The increments and chunks, end to end through the relay, against a
    // source whose history is a list of commits of known sizes and a
    // destination that refuses bodies above its cap with HTTP 413.

    use std::cell::RefCell;
    use std::time::{Duration, Instant};

    use crate::mirror::error::{Blame, Side};
    use crate::mirror::sides::Negotiated;
    use crate::mirror::{Endpoint, Mode, Options, Outcome, PushBudget, PushLimits, RefSelection};
    use crate::protocol::graph::CommitGraph;
    use crate::protocol::push::RefStatus;
    use crate::transport::{Location, NetworkOptions, TransportError};

    fn id(n: u32) -> ObjectId {
        let mut bytes = [0u8; 20];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[19] = 1;
        ObjectId::from(bytes)
    }

    fn r(name: &str, oid: ObjectId) -> Ref {
        Ref {
            name: name.to_owned(),
            oid,
            peeled: None,
            symref_target: None,
        }
    }

    /// The pack header and trailer, which the fake destination does not
    /// count: the empty pack weighs nothing.
    pub(super) const FRAME: u64 = 32;

    /// Bytes that pass for a pack of `n` bytes: a header, and the pack's
    /// own checksum at the end, as the stream checks.
    fn pack_of(n: u64) -> Vec<u8> {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
        bytes.resize(12 + n as usize, 0);
        let sum = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &bytes);
        bytes.extend_from_slice(sum.as_ref());
        bytes
    }

    /// Commits 1..=n in a line, commit `c` weighing `sizes(c)` bytes in a
    /// pack; refs as given. `any`: whether any commit may be wanted.
    struct History {
        parents: HashMap<ObjectId, Vec<ObjectId>>,
        size: HashMap<ObjectId, u64>,
        any: bool,
        fetched: std::sync::Mutex<Vec<u64>>,
    }

    impl History {
        fn line(n: u32, size: impl Fn(u32) -> u64) -> History {
            History {
                parents: (1..=n)
                    .map(|c| (id(c), if c > 1 { vec![id(c - 1)] } else { vec![] }))
                    .collect(),
                size: (1..=n).map(|c| (id(c), size(c))).collect(),
                any: true,
                fetched: std::sync::Mutex::new(Vec::new()),
            }
        }

        fn reachable(&self, from: &[ObjectId]) -> HashSet<ObjectId> {
            let mut seen = HashSet::new();
            let mut walk: Vec<ObjectId> = from.to_vec();
            while let Some(c) = walk.pop() {
                if self.parents.contains_key(&c) && seen.insert(c) {
                    walk.extend(self.parents[&c].iter().copied());
                }
            }
            seen
        }

        fn missing(&self, wants: &[ObjectId], haves: &[ObjectId]) -> Vec<ObjectId> {
            let have = self.reachable(haves);
            let mut out: Vec<ObjectId> = self
                .reachable(wants)
                .into_iter()
                .filter(|c| !have.contains(c))
                .collect();
            out.sort();
            out
        }
    }

    impl SourceSide for History {
        fn protocol(&self) -> String {
            "fake".to_owned()
        }
        fn negotiate(
            &self,
            wants: &[ObjectId],
            haves: &[ObjectId],
            _: &[ObjectId],
            pack: Option<PackOptions>,
        ) -> Result<Negotiated, SideError> {
            let bytes: u64 = self
                .missing(wants, haves)
                .iter()
                .map(|c| self.size[c])
                .sum();
            self.fetched.lock().unwrap().push(bytes);
            let stream = Box::new(io::Cursor::new(pack_of(bytes))) as Box<dyn Read + Send>;
            Ok(Negotiated {
                known: HashSet::new(),
                pack: pack.filter(|_| !wants.is_empty()).map(|_| stream),
            })
        }
        fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
            vec![Some(true); updates.len()]
        }
        fn commit_graph(
            &self,
            wants: &[ObjectId],
            haves: &[ObjectId],
        ) -> Result<CommitGraph, SideError> {
            let missing = self.missing(wants, haves);
            let edges: Vec<(ObjectId, &[ObjectId])> = missing
                .iter()
                .map(|c| (*c, self.parents[c].as_slice()))
                .collect();
            Ok(CommitGraph::from_edges(&edges))
        }
        fn serves_any_commit(&self) -> bool {
            self.any
        }
        fn concurrent(&self) -> Option<&(dyn SourceSide + Sync)> {
            Some(self)
        }
        fn packs_can_be_cut(&self) -> bool {
            false
        }
        fn error(&self, cause: Cause) -> SideError {
            Blame::new(Side::Source, "src", Duration::ZERO).error(cause)
        }
    }

    /// A destination that answers 413 to a pack above `cap` bytes and
    /// records every push: its commands and pack size.
    pub(super) struct Capped {
        cap: u64,
        pub(super) refs: RefCell<Vec<Ref>>,
        pub(super) pushes: RefCell<Vec<(Vec<Command>, u64)>>,
        /// Created behind the engine's back as its push for it arrives (a
        /// killed run's push that the server finished late), then
        /// refused as existing.
        racing: RefCell<Option<String>>,
        /// A ref a pre-receive hook refuses: a push that carries it is
        /// refused whole, and git drops its objects.
        hooked: RefCell<Option<String>>,
        /// Why the server cannot store any pack, if it cannot.
        pub(super) unpack_error: RefCell<Option<String>>,
    }

    impl Capped {
        pub(super) fn new(cap: u64, refs: Vec<Ref>) -> Capped {
            Capped {
                cap,
                refs: RefCell::new(refs),
                pushes: RefCell::new(Vec::new()),
                racing: RefCell::new(None),
                hooked: RefCell::new(None),
                unpack_error: RefCell::new(None),
            }
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> =
                self.refs.borrow().iter().map(|r| r.name.clone()).collect();
            names.sort();
            names
        }
    }

    impl DestinationSide for Capped {
        fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
            Ok(self.refs.borrow().clone())
        }
        fn accepts_thin_pack(&self) -> bool {
            true
        }
        fn accepts_ofs_delta(&self) -> bool {
            true
        }
        fn allows_delete(&self) -> bool {
            true
        }
        fn push(
            &self,
            commands: &[Command],
            pack: Option<&mut (dyn Read + Send)>,
        ) -> Result<ReportStatus, SideError> {
            let mut bytes = 0u64;
            if let Some(pack) = pack {
                let mut buf = [0u8; 64];
                loop {
                    let n = pack
                        .read(&mut buf)
                        .map_err(|e| self.error(TransportError::Io(e).into()))?;
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                    if bytes > self.cap + FRAME {
                        return Err(self.error(Cause::Transport(TransportError::TooLarge {
                            status: 413,
                            detail: "Request Entity Too Large".into(),
                        })));
                    }
                }
            }
            if let Some(reason) = self.unpack_error.borrow().clone() {
                return Ok(ReportStatus {
                    unpack: Err(reason),
                    refs: commands
                        .iter()
                        .map(|c| RefStatus {
                            name: c.name.clone(),
                            result: Err("unpacker error".into()),
                        })
                        .collect(),
                });
            }
            self.pushes
                .borrow_mut()
                .push((commands.to_vec(), bytes.saturating_sub(FRAME)));
            let mut refs = self.refs.borrow_mut();
            let mut status = ReportStatus {
                unpack: Ok(()),
                refs: Vec::new(),
            };
            let hooked = self.hooked.borrow().clone();
            if commands.iter().any(|c| Some(&c.name) == hooked.as_ref()) {
                status.refs = commands
                    .iter()
                    .map(|c| RefStatus {
                        name: c.name.clone(),
                        result: Err("pre-receive hook declined".into()),
                    })
                    .collect();
                return Ok(status);
            }
            for c in commands {
                refs.retain(|r| r.name != c.name);
                if !c.new.is_zero() {
                    refs.push(r(&c.name, c.new));
                }
                let raced = self.racing.borrow().as_deref() == Some(&c.name);
                status.refs.push(RefStatus {
                    name: c.name.clone(),
                    result: match raced {
                        true => Err("failed to update ref (reference already exists)".into()),
                        false => Ok(()),
                    },
                });
            }
            Ok(status)
        }
        fn error(&self, cause: Cause) -> SideError {
            Blame::new(Side::Destination, "dst", Duration::ZERO).error(cause)
        }
    }

    fn options(budget: PushBudget, max_ref_updates: usize) -> Options {
        let endpoint = |url: &str| Endpoint {
            location: Location::parse(url).unwrap(),
            credentials: None,
            network: NetworkOptions::default(),
        };
        Options {
            // A destination of its own per test: what a process learns of
            // a destination outlives the run.
            source: endpoint("https://a.example/r"),
            destination: endpoint(&format!("https://b.example/{}", rand_name())),
            selection: RefSelection::new(&[], &[]).unwrap(),
            prune: true,
            force: false,
            mode: Mode::Mirror,
            push: PushLimits {
                max_bytes: budget,
                max_ref_updates,
            },
            lfs: Default::default(),
        }
    }

    fn rand_name() -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        format!("r{}", N.fetch_add(1, Ordering::Relaxed))
    }

    fn head_and(list: Vec<Ref>, head: &str) -> Vec<Ref> {
        let mut h = r("HEAD", list.iter().find(|r| r.name == head).unwrap().oid);
        h.symref_target = Some(head.to_owned());
        std::iter::once(h).chain(list).collect()
    }

    /// Mirrors `source`'s `main` at commit `tip` (HEAD on it) into
    /// `destination` under `budget`, at most 10 ref updates a push.
    fn mirror_main(
        source: &History,
        tip: u32,
        budget: PushBudget,
        destination: &Capped,
    ) -> Result<crate::mirror::Report, SideError> {
        let refs = head_and(vec![r("refs/heads/main", id(tip))], "refs/heads/main");
        relay(&options(budget, 10), source, &refs, destination)
    }

    fn relay(
        opts: &Options,
        source: &History,
        source_refs: &[Ref],
        destination: &Capped,
    ) -> Result<crate::mirror::Report, SideError> {
        let dest_refs = destination.refs.borrow().clone();
        super::super::relay::relay(
            opts,
            source,
            destination,
            source_refs,
            &dest_refs,
            Instant::now(),
        )
    }

    #[test]
    fn a_history_larger_than_the_budget_goes_in_increments_that_fit() {
        let source = History::line(40, |_| 100);
        let destination = Capped::new(1_000, vec![]);
        let report = mirror_main(&source, 40, PushBudget::Bytes(900), &destination).unwrap();
        assert!(report.in_sync && report.batched);
        assert_eq!(
            destination.names(),
            ["refs/heads/main"],
            "no checkpoint is left"
        );
        let pushes = destination.pushes.borrow();
        assert!(pushes.len() > 4, "{} pushes", pushes.len());
        assert!(pushes.iter().all(|(_, bytes)| *bytes <= 900));
        // Every commit went once, whatever the cut attempts cost.
        let stored: u64 = pushes.iter().map(|(_, bytes)| bytes).sum();
        assert_eq!(stored, 4_000);
    }

    /// The pack sizes of the pushes that carried history (checkpoints
    /// only, none deleted), in order.
    fn history_pushes(destination: &Capped) -> Vec<u64> {
        destination
            .pushes
            .borrow()
            .iter()
            .filter(|(commands, _)| {
                commands
                    .iter()
                    .all(|c| c.name.starts_with(CHECKPOINT_PREFIX) && !c.new.is_zero())
            })
            .map(|(_, bytes)| *bytes)
            .collect()
    }

    #[test]
    fn pushes_join_the_units_fetched_ahead_up_to_the_budget() {
        // Even commits: units of about half the budget, two to a push.
        let source = History::line(400, |_| 20);
        let destination = Capped::new(1_000, vec![]);
        let report = mirror_main(&source, 400, PushBudget::Bytes(1_000), &destination).unwrap();
        assert!(report.in_sync && report.batched);
        let history = history_pushes(&destination);
        assert_eq!(history.iter().sum::<u64>(), 8_000, "every commit once");
        assert!(history.iter().all(|&bytes| bytes <= 1_000));
        // Past the first four (the first units are small, to learn the
        // rate), every push but the last carries three quarters of the
        // budget or more.
        let middle = &history[4..history.len() - 1];
        assert!(
            middle.len() > 4 && middle.iter().all(|&b| b >= 750),
            "{history:?}"
        );
        // The source was asked for each unit once, none thrown away, and
        // never for the whole history (into an empty destination under a
        // budget, it would go unread).
        let fetched = source.fetched.lock().unwrap();
        assert_eq!(fetched.iter().sum::<u64>(), 8_000, "{fetched:?}");
        assert!(fetched.len() > history.len(), "units were joined");
    }

    #[test]
    fn the_end_of_the_history_goes_with_the_refs_when_they_fit_together() {
        let source = History::line(4_000, |_| 100);
        let destination = Capped::new(100_000, vec![]);
        let report = mirror_main(&source, 4_000, PushBudget::Bytes(100_000), &destination).unwrap();
        assert!(report.in_sync && report.batched);
        assert_eq!(destination.names(), ["refs/heads/main"]);
        let pushes = destination.pushes.borrow();
        let (last, carried) = pushes.last().unwrap();
        assert_eq!(last[0].name, "refs/heads/main", "the refs go last");
        assert!(
            *carried > 0 && *carried <= 100_000,
            "the last push carries the end of the history: {carried}"
        );
        // No checkpoint for the history that went with the refs: each one
        // created was a push of its own, and is deleted in the last.
        let created: Vec<&str> = pushes
            .iter()
            .flat_map(|(commands, _)| commands)
            .filter(|c| c.name.starts_with(CHECKPOINT_PREFIX) && !c.new.is_zero())
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(created.len(), pushes.len() - 1, "{created:?}");
        assert!(!created.contains(&format!("{CHECKPOINT_PREFIX}{}", id(4_000)).as_str()));
        let total: u64 = pushes.iter().map(|(_, bytes)| bytes).sum();
        assert_eq!(total, 400_000, "every commit once");
    }

    #[test]
    fn refs_after_a_push_a_hook_refused_whole_bring_the_history_again() {
        // One ref per push: the end of the history goes with `main`, which
        // the hook refuses, so `other` (the same commit) must bring it.
        let source = History::line(4_000, |_| 20);
        let tip = id(4_000);
        let refs = head_and(
            vec![r("refs/heads/main", tip), r("refs/heads/other", tip)],
            "refs/heads/main",
        );
        let destination = Capped::new(10_000, vec![]);
        *destination.hooked.borrow_mut() = Some("refs/heads/main".into());
        let report = relay(
            &options(PushBudget::Bytes(10_000), 1),
            &source,
            &refs,
            &destination,
        )
        .unwrap();
        assert!(!report.in_sync);
        assert!(destination.names().contains(&"refs/heads/other".to_owned()));
        let pushes = destination.pushes.borrow();
        let other = pushes
            .iter()
            .find(|(commands, _)| commands[0].name == "refs/heads/other")
            .unwrap();
        assert!(other.1 > 0, "the history came again with the next ref");
    }

    #[test]
    fn a_large_commit_now_and_then_goes_in_a_push_of_its_own() {
        // Every fiftieth commit brings 600 bytes (a binary file's new
        // version): a unit holding one fills a push alone.
        let size = |c: u32| if c.is_multiple_of(50) { 600 } else { 20 };
        let source = History::line(400, size);
        let total: u64 = (1..=400).map(size).sum();
        let destination = Capped::new(1_000, vec![]);
        let report = mirror_main(&source, 400, PushBudget::Bytes(1_000), &destination).unwrap();
        assert!(report.in_sync && report.batched);
        assert_eq!(destination.names(), ["refs/heads/main"]);
        let history = history_pushes(&destination);
        assert_eq!(history.iter().sum::<u64>(), total, "every commit once");
        assert!(history.iter().all(|&bytes| bytes <= 1_000), "{history:?}");
    }

    #[test]
    fn an_increment_across_branches_brings_each_branch_in_it() {
        // main: 1..=20; side: 21..=30 off 5. Increments of about eight
        // commits take main's last ones and the side branch's first ones
        // together: wanting only the side branch's would leave main's tail
        // to the push of the refs, which may not fit.
        let mut source = History::line(20, |_| 100);
        for c in 21..=30 {
            let parent = if c == 21 { 5 } else { c - 1 };
            source.parents.insert(id(c), vec![id(parent)]);
            source.size.insert(id(c), 100);
        }
        let refs = head_and(
            vec![r("refs/heads/main", id(20)), r("refs/heads/side", id(30))],
            "refs/heads/main",
        );
        let destination = Capped::new(100_000, vec![]);
        let report = relay(
            &options(PushBudget::Bytes(1_000), 10),
            &source,
            &refs,
            &destination,
        )
        .unwrap();
        assert!(report.in_sync && report.batched);
        let pushes = destination.pushes.borrow();
        let (refs_push, bytes) = pushes.last().unwrap();
        assert_eq!(refs_push[0].name, "refs/heads/main");
        assert_eq!(*bytes, 0, "every commit went in an increment");
        let stored: u64 = pushes.iter().map(|(_, bytes)| bytes).sum();
        assert_eq!(stored, 3_000, "each commit once");
        assert!(
            pushes.iter().any(|(commands, _)| commands.len() == 2
                && commands
                    .iter()
                    .all(|c| c.name.starts_with(CHECKPOINT_PREFIX))),
            "an increment with main's tail and the side branch's start has a checkpoint for each"
        );
        assert_eq!(destination.names(), ["refs/heads/main", "refs/heads/side"]);
    }

    #[test]
    fn a_checkpoint_another_run_created_meanwhile_counts_as_pushed() {
        let source = History::line(20, |_| 100);
        let refs = head_and(vec![r("refs/heads/main", id(20))], "refs/heads/main");
        let destination = Capped::new(100_000, vec![]);
        let first = format!("{CHECKPOINT_PREFIX}{}", id(1));
        *destination.racing.borrow_mut() = Some(first);
        let report = relay(
            &options(PushBudget::Bytes(1_000), 10),
            &source,
            &refs,
            &destination,
        )
        .unwrap();
        assert!(report.in_sync && report.batched);
        assert_eq!(destination.names(), ["refs/heads/main"]);
    }

    #[test]
    fn a_server_refusal_teaches_a_budget_without_one_set() {
        let source = History::line(30, |_| 100);
        let destination = Capped::new(700, vec![]);
        let report = mirror_main(&source, 30, PushBudget::HostDefault, &destination).unwrap();
        assert!(report.in_sync && report.batched);
        assert_eq!(destination.names(), ["refs/heads/main"]);
    }

    #[test]
    fn a_learnt_budget_settles_on_the_largest_push_taken_once_near_the_refusals() {
        let source = History::line(1, |_| 0);
        let destination = Capped::new(0, vec![]);
        let key = format!("https://learnt.example/{}", rand_name());
        let mut pusher = Pusher::new(&source, &destination, &key, None, 10);
        pusher.learn(100_000, "413");
        assert_eq!(pusher.budget, Some(50_000));
        // Taken: the budget moves up, halfway to the refusal.
        pusher.landed(50_000);
        assert_eq!(pusher.budget, Some(75_000));
        // Refused each time: halfway down, while the gap is wide...
        for (refused, then) in [(75_000, 62_500), (62_500, 56_250), (56_250, 53_125)] {
            pusher.learn(refused, "413");
            assert_eq!(pusher.budget, Some(then));
        }
        pusher.learn(53_125, "413");
        assert_eq!(pusher.budget, Some(51_562));
        // ...and what was taken once within 5% of the smallest refusal,
        // rather than more refused uploads for a few hundred bytes.
        pusher.learn(51_562, "413");
        assert_eq!(pusher.budget, Some(50_000));
        pusher.landed(50_000);
        assert_eq!(pusher.budget, Some(50_000), "not raised again");
    }

    #[test]
    fn a_commit_larger_than_the_budget_is_named() {
        let source = History::line(5, |c| if c == 3 { 5_000 } else { 100 });
        let destination = Capped::new(100_000, vec![]);
        let err = mirror_main(&source, 5, PushBudget::Bytes(1_000), &destination)
            .err()
            .unwrap();
        assert_eq!(err.side, Side::Destination);
        assert!(err.to_string().contains(&id(3).to_string()), "{err}");
        assert!(!destination.names().contains(&"refs/heads/main".to_owned()));
    }

    #[test]
    fn without_any_commit_served_tags_are_the_checkpoints() {
        let mut source = History::line(12, |_| 100);
        source.any = false;
        let mut list: Vec<Ref> = (1..=4)
            .map(|t| r(&format!("refs/tags/t{t}"), id(t * 3)))
            .collect();
        list.push(r("refs/heads/main", id(12)));
        let refs = head_and(list, "refs/heads/main");
        let destination = Capped::new(1_000, vec![]);
        let report = relay(
            &options(PushBudget::Bytes(500), 100),
            &source,
            &refs,
            &destination,
        )
        .unwrap();
        assert!(report.in_sync);
        let pushes = destination.pushes.borrow();
        let checkpoints: Vec<ObjectId> = pushes
            .iter()
            .flat_map(|(cs, _)| cs.iter())
            .filter(|c| c.name.starts_with(CHECKPOINT_PREFIX) && !c.new.is_zero())
            .map(|c| c.new)
            .collect();
        assert_eq!(checkpoints, [id(3), id(6), id(9), id(12)]);
        // Too far apart for the budget: the error says why.
        let destination = Capped::new(1_000, vec![]);
        let err = relay(
            &options(PushBudget::Bytes(250), 100),
            &source,
            &refs,
            &destination,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("allowReachableSHA1InWant"),
            "{err}"
        );
    }

    #[test]
    fn refs_go_in_chunks_with_the_heads_branch_first() {
        let source = History::line(3, |_| 10);
        let mut list: Vec<Ref> = (0..12)
            .map(|t| r(&format!("refs/tags/t{t:02}"), id(3)))
            .collect();
        list.push(r("refs/heads/main", id(3)));
        let refs = head_and(list, "refs/heads/main");
        let destination = Capped::new(1_000, vec![]);
        let report = relay(
            &options(PushBudget::Unlimited, 5),
            &source,
            &refs,
            &destination,
        )
        .unwrap();
        assert!(report.in_sync && !report.batched);
        let pushes = destination.pushes.borrow();
        let sizes: Vec<usize> = pushes.iter().map(|(cs, _)| cs.len()).collect();
        assert_eq!(sizes, [5, 5, 3]);
        assert_eq!(pushes[0].0[0].name, "refs/heads/main");
        // The objects went with the first chunk; the others carry none.
        assert_eq!(pushes[0].1, 30);
        assert!(pushes[1..].iter().all(|(_, bytes)| *bytes == 0));
    }

    #[test]
    fn a_killed_run_resumes_from_its_checkpoints_and_removes_them() {
        let source = History::line(20, |_| 100);
        let refs = head_and(vec![r("refs/heads/main", id(20))], "refs/heads/main");
        let left = format!("{CHECKPOINT_PREFIX}{}", id(12));
        let destination = Capped::new(10_000, vec![r(&left, id(12))]);
        let report = relay(
            &options(PushBudget::Bytes(500), 10),
            &source,
            &refs,
            &destination,
        )
        .unwrap();
        assert!(report.in_sync);
        assert_eq!(destination.names(), ["refs/heads/main"]);
        let stored: u64 = destination.pushes.borrow().iter().map(|(_, b)| b).sum();
        assert_eq!(stored, 800, "only the 8 commits after the checkpoint went");
        assert!(report.refs.iter().all(|r| r.result == Outcome::Ok));
    }
}

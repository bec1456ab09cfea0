//! The history as one pack from the source, cut into pieces that fit the
//! destination's budget.
//!
//! Increments (see [`Pusher::increments`]) ask the source for a pack per
//! push, and every such pack costs the source a walk from its haves, the
//! search for new deltas where an object's stored base is newer than the
//! increment, and the destination the thin bases it then lacks: on the
//! ~100 MiB bench repository behind an 8 MiB cap, 41 fetches cost the
//! source 13 s of processor time against 0.75 s for the whole pack. The
//! whole pack instead comes mostly as the source stores it, and a pack
//! without offset deltas (each delta names its base by id) can be cut at
//! any object boundary: the destination resolves a delta whose base came
//! in an earlier piece from what it stored then (`index-pack --fix-thin`).
//! Each piece carries a [`Marker`] commit for a temporary ref to update
//! (receive-pack takes no pack without one), named after the piece's
//! objects, so that a run killed midway skips the pieces an earlier one
//! left when the source sends the same pack again. The pieces' objects are
//! reachable from no ref until the refs are in.
//!
//! This holds under budgets up to [`PIECES_MAX`], in pieces of at most
//! [`PIECE_MAX`] held in memory (an object larger than that alone, up to
//! the budget). A pack that cannot be cut (an object larger than the
//! budget, an offset delta a source sent anyway), a destination that
//! refuses a piece (one checking each object's links on receipt,
//! `receive.fsckObjects`, refuses the first: its commits name trees that
//! come later) or its marker ref leave the history to the increments,
//! which explain such failures in terms of commits; a refusal is
//! remembered for the destination for the life of the process.

use std::collections::HashSet;

use super::{learnt, limit_of, Pack, PushError, Pusher};
use crate::output::{self, human_bytes};
use crate::protocol::advertisement::Ref;
use crate::protocol::push::Command;
use crate::protocol::slice::{self, Entries, Framing, Marker};
use crate::protocol::ObjectId;

/// Where the markers of pieces live, each named after the SHA-1 of the
/// objects it holds.
const PIECES: &str = "refs/git-relay/pieces/";

/// The largest budget under which the history goes in pieces: above it,
/// pushes of a budget's worth are few enough that increments streamed
/// through cost the source little.
const PIECES_MAX: u64 = 64 << 20;

/// The largest piece. A piece is held in memory while the next is read,
/// so a run holds about three; and a budget learnt from a refusal that
/// stated no limit is a guess (half of what was refused), which pieces of
/// this size fit under most proxies' caps, rather than learning them
/// through more refused uploads. Budgets between this and
/// [`PIECES_MAX`] pay a push more now and then.
const PIECE_MAX: u64 = 8 << 20;

/// How the history went.
pub(in crate::mirror) enum Pieces {
    /// In pieces, every one of them pushed.
    Sent,
    /// Not in pieces: the increments must take it (from the start; pieces
    /// already pushed are only objects the destination holds).
    Increments,
}

/// Why the pieces stop before the end of the pack.
enum Stop {
    /// A delta by offset, which no piece may hold apart from its base.
    OffsetDelta,
    /// An object larger than a push may carry.
    Oversized,
}

impl Pusher<'_> {
    /// Pushes the history of `wants` that `haves` lack in pieces of one
    /// pack, where the budget, the destination and the pack allow (see the
    /// module documentation); `haves` then holds `wants`. `dest_refs` tells
    /// which pieces an earlier run left.
    pub(in crate::mirror) fn pieces(
        &mut self,
        wants: &[ObjectId],
        haves: &mut Vec<ObjectId>,
        dest_refs: &[Ref],
    ) -> Result<Pieces, PushError> {
        let Some(budget) = self.budget.filter(|&b| b <= PIECES_MAX) else {
            return Ok(Pieces::Increments);
        };
        if wants.is_empty() || !self.source.packs_can_be_cut() || learnt(&self.key, |l| l.no_pieces)
        {
            return Ok(Pieces::Increments);
        }
        self.batched = true;
        output::info(format_args!(
            "pushing in pieces of at most {}: the history in one pack, cut between objects",
            human_bytes(budget.min(PIECE_MAX))
        ));
        let left: HashSet<&str> = dest_refs
            .iter()
            .filter_map(|r| r.name.strip_prefix(PIECES))
            .collect();
        let mut options = self.pack;
        options.ofs_delta = false;
        let source = self.source;
        let source_error =
            |e: crate::protocol::ProtocolError| PushError::Side(source.error(e.into()));
        let Some(stream) = source.negotiate(wants, haves, &[], Some(options))?.pack else {
            return Ok(Pieces::Sent);
        };
        let mut entries = Some(Entries::new(stream).map_err(source_error)?);
        let total = entries.as_ref().map_or(0, Entries::objects);
        // Objects read and not pushed yet.
        let mut held = Held::new(slice::HEADER);
        // Objects pushed before `held`.
        let mut first = 0u64;
        // The next piece's objects, read while this one is pushed.
        let mut ahead = Held::new(0);
        // Why the pack was read no further, if it was not.
        let mut stopped = None;
        loop {
            let (limit, largest) = (self.piece_limit(PIECE_MAX), self.piece_limit(PIECES_MAX));
            // Enough to know where the piece ends: past the limit, or all.
            if stopped.is_none() {
                stopped = held
                    .read(&mut entries, limit, largest)
                    .map_err(source_error)?;
            }
            // Nothing more in pieces once the increments must take over.
            if held.starts.is_empty() || stopped.is_some() {
                break;
            }
            // As many objects as fit a piece; one larger than a piece alone,
            // when it fits a push.
            let count = match held.fitting(limit) {
                0 if held.fitting(largest) > 0 => 1,
                count => count,
            };
            if count == 0 {
                stopped = Some(Stop::Oversized);
                break;
            }
            let end = held.end(count - 1);
            let objects = &held.bytes[slice::HEADER..end];
            let sum = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, objects);
            let mut id = [0u8; 20];
            id.copy_from_slice(sum.as_ref());
            let name = ObjectId::from(id).to_string();
            let upto = first + count as u64;
            let span = format!("piece up to object {upto} ({upto} of {total} objects");
            if left.contains(name.as_str()) {
                output::info(format_args!(
                    "{span}) is on the destination from an earlier run"
                ));
                held.drop_front(count);
                first = upto;
                continue;
            }
            let marker = Marker::new(&format!(
                "git-relay: objects {}-{upto} of a pack of {total}, held for a batched mirror",
                first + 1
            ));
            let command = Command {
                old: ObjectId::ZERO,
                new: marker.commit,
                name: format!("{PIECES}{name}"),
            };
            // The next piece is read (inflated, to find where its objects
            // end) while the destination stores this one.
            ahead.clear(limit);
            let room = limit.saturating_sub((held.bytes.len() - end) as u64);
            let rest = slice::frame_in_place(&mut held.bytes[..end], count as u32, &marker);
            let piece = Pack::Parts(&held.bytes[..end], rest);
            let reading = stopped.is_none();
            let (pushed, read) = std::thread::scope(|scope| {
                let (entries, ahead) = (&mut entries, &mut ahead);
                let reader = scope.spawn(move || match reading {
                    true => ahead.read(entries, room, largest),
                    false => Ok(None),
                });
                let pushed = self.send(std::slice::from_ref(&command), Some(piece), None);
                let read = reader
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (pushed, read)
            });
            match pushed {
                Ok(status) => {
                    let refused = status.refs.iter().find_map(|r| r.result.as_ref().err());
                    let landed = match refused {
                        Some(_) => self.checkpoints_exist(std::slice::from_ref(&command))?,
                        None => true,
                    };
                    if landed {
                        output::info(format_args!("pushed {span}, {})", human_bytes(self.last)));
                        self.checkpoints.push((command.name, command.new));
                        let sent = self.last;
                        self.landed(sent);
                        held.drop_front(count);
                        first = upto;
                    } else {
                        let reason = refused.map(String::as_str).unwrap_or_default();
                        return Ok(self.no_pieces(format_args!(
                            "the server refused the temporary ref {} ({reason})",
                            command.name
                        )));
                    }
                }
                // The same piece again, with its length.
                Err(PushError::Resend) => {}
                // A destination that checks every object's links
                // (`receive.fsckObjects`) refuses a piece whose commits'
                // trees come in a later one.
                Err(PushError::Unpack { reason, .. }) => {
                    return Ok(self.no_pieces(format_args!(
                        "the server could not store a piece of the pack ({reason})"
                    )));
                }
                // Too large after all: the budget it taught makes the next
                // piece smaller (or the increments take over when it did
                // not).
                Err(failure) => {
                    self.too_large(failure)?;
                    if self.piece_limit(PIECE_MAX) >= limit {
                        return Ok(Pieces::Increments);
                    }
                }
            }
            held.append(&ahead);
            if stopped.is_none() {
                stopped = read.map_err(source_error)?;
            }
        }
        match stopped {
            None => {
                add_wants(haves, wants);
                Ok(Pieces::Sent)
            }
            Some(Stop::OffsetDelta) => {
                output::info(format_args!(
                    "the source sent offset deltas, which cannot be cut apart: pushing in increments instead"
                ));
                Ok(Pieces::Increments)
            }
            Some(Stop::Oversized) => {
                output::info(format_args!(
                    "an object of the pack is larger than a push of {}: pushing in increments instead",
                    human_bytes(self.piece_limit(PIECES_MAX))
                ));
                Ok(Pieces::Increments)
            }
        }
    }

    /// Says why pieces do not work with this destination, which this
    /// process then remembers (a sweep's other repositories, a retry):
    /// the increments take the history.
    fn no_pieces(&mut self, why: std::fmt::Arguments) -> Pieces {
        output::warn(format_args!(
            "destination: {why}: pushing in increments instead"
        ));
        learnt(&self.key, |l| l.no_pieces = true);
        Pieces::Increments
    }

    /// The most bytes of objects one piece may hold under `most`: the
    /// budget (at most `most`) less its command, marker and framing.
    fn piece_limit(&self, most: u64) -> u64 {
        let budget = self.budget.unwrap_or(u64::MAX).min(most);
        let command = Command {
            old: ObjectId::ZERO,
            new: ObjectId::ZERO,
            name: format!("{PIECES}{}", ObjectId::ZERO),
        };
        limit_of(Some(budget), &[command])
            .unwrap_or(budget)
            .saturating_sub(Marker::MAX_BYTES)
            .max(1)
    }
}

/// Objects of the pack read and not pushed yet: their bytes, after
/// `front` bytes of room for a pack header, and where each starts.
struct Held {
    bytes: Vec<u8>,
    starts: Vec<usize>,
    front: usize,
}

impl Held {
    fn new(front: usize) -> Held {
        Held {
            bytes: vec![0; front],
            starts: Vec::new(),
            front,
        }
    }

    /// The bytes of the objects held.
    fn len(&self) -> usize {
        self.bytes.len() - self.front
    }

    /// Reads objects from `entries` until more than `until` bytes are held
    /// or the pack ends (checking its checksum then, and leaving `None`);
    /// stops, holding none of it, at an object that no piece may hold: a
    /// delta by offset, or one larger than `largest`.
    fn read<R: std::io::Read>(
        &mut self,
        entries: &mut Option<Entries<R>>,
        until: u64,
        largest: u64,
    ) -> Result<Option<Stop>, crate::protocol::ProtocolError> {
        // Grown to what is needed, not doubled past it: a piece is held
        // at a time, of megabytes.
        let room = (until as usize).saturating_add(1 << 20);
        self.bytes.reserve_exact(room.saturating_sub(self.len()));
        while let Some(reader) = entries.as_mut() {
            if self.len() as u64 > until {
                break;
            }
            let at = self.bytes.len();
            match reader.next_into(&mut self.bytes, largest as usize)? {
                Some(Framing::Free) => self.starts.push(at),
                Some(Framing::Offset) => {
                    self.bytes.truncate(at);
                    return Ok(Some(Stop::OffsetDelta));
                }
                Some(Framing::Oversized) => return Ok(Some(Stop::Oversized)),
                None => entries.take().map_or(Ok(()), Entries::finish)?,
            }
        }
        Ok(None)
    }

    /// Where object `i` ends in `bytes`.
    fn end(&self, i: usize) -> usize {
        self.starts.get(i + 1).copied().unwrap_or(self.bytes.len())
    }

    /// How many objects from the first make at most `limit` bytes.
    fn fitting(&self, limit: u64) -> usize {
        (0..self.starts.len())
            .take_while(|&i| (self.end(i) - self.front) as u64 <= limit)
            .count()
    }

    /// Empty, with room for a piece of `limit` bytes and the object after
    /// it: made here, not by the thread that fills it, whose allocations
    /// glibc would keep in an arena of their own for the rest of the run.
    fn clear(&mut self, limit: u64) {
        self.bytes.truncate(self.front);
        self.starts.clear();
        let room = (limit as usize).saturating_add(1 << 20);
        self.bytes.reserve_exact(room);
    }

    /// Forgets the first `count` objects (pushed).
    fn drop_front(&mut self, count: usize) {
        let end = self.end(count - 1);
        self.bytes.drain(self.front..end);
        self.starts.drain(..count);
        let gone = end - self.front;
        self.starts.iter_mut().for_each(|s| *s -= gone);
    }

    /// Holds the objects of `more` after these.
    fn append(&mut self, more: &Held) {
        let shift = self.bytes.len() - more.front;
        self.bytes.reserve_exact(more.len());
        self.bytes.extend_from_slice(&more.bytes[more.front..]);
        self.starts.extend(more.starts.iter().map(|s| s + shift));
    }
}

/// `haves` with `wants` added: what the destination holds once the pieces
/// are in.
fn add_wants(haves: &mut Vec<ObjectId>, wants: &[ObjectId]) {
    let known: HashSet<ObjectId> = haves.iter().copied().collect();
    haves.extend(wants.iter().filter(|w| !known.contains(w)));
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::super::tests::{Capped, FRAME};
    use super::*;
    use crate::mirror::error::{Blame, Cause, Side, SideError};
    use crate::mirror::sides::{Negotiated, PackOptions, SourceSide};
    use crate::protocol::test_repo::Repo;

    const KIB: u64 = 1 << 10;

    /// A source that answers every fetch with the same real pack, and
    /// remembers whether each asked for offset deltas.
    struct OnePack {
        pack: Vec<u8>,
        offset_deltas: Mutex<Vec<bool>>,
    }

    impl SourceSide for OnePack {
        fn protocol(&self) -> String {
            "fake".to_owned()
        }
        fn negotiate(
            &self,
            _: &[ObjectId],
            _: &[ObjectId],
            _: &[ObjectId],
            pack: Option<PackOptions>,
        ) -> Result<Negotiated, SideError> {
            let pack = pack.map(|options| {
                self.offset_deltas.lock().unwrap().push(options.ofs_delta);
                Box::new(io::Cursor::new(self.pack.clone())) as Box<dyn Read + Send>
            });
            Ok(Negotiated {
                known: HashSet::new(),
                pack,
            })
        }
        fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
            vec![Some(true); updates.len()]
        }
        fn error(&self, cause: Cause) -> SideError {
            Blame::new(Side::Source, "src", Duration::ZERO).error(cause)
        }
    }

    /// `commits` commits of a 20 KiB file each, stored undeflated so that
    /// sizes are what they say, and a file that grows a little each time
    /// (deltas); its tip and its pack as `pack-objects` writes it without
    /// offset deltas.
    fn history(commits: usize, big: usize) -> (ObjectId, OnePack) {
        let repo = Repo::new();
        repo.git(&["config", "core.compression", "0"]);
        repo.git(&["config", "pack.compression", "0"]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = |len: usize| -> String {
            (0..len / 16)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    format!("{seed:016x}")
                })
                .collect()
        };
        let mut log = String::new();
        for i in 0..commits {
            std::fs::write(repo.dir.path().join(format!("blob{i}")), noise(big)).unwrap();
            repo.git(&["add", &format!("blob{i}")]);
            log.push_str(&format!("entry {i}\n"));
            repo.commit("log", &log, &format!("commit {i}"));
        }
        let pack = repo.pack(&["--stdout"], "HEAD\n");
        let source = OnePack {
            pack,
            offset_deltas: Mutex::new(Vec::new()),
        };
        (repo.id("HEAD"), source)
    }

    /// A destination known to this process by a name no other test uses:
    /// what a process learns of a destination outlives the run.
    fn key() -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "https://pieces.example/{}",
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The history of `tip` in pieces into `destination` under `budget`,
    /// the destination's refs as `dest_refs`, for the destination known to
    /// this process as `key`: whether it went in pieces (`None`: left to
    /// the increments), the haves after, the markers made.
    fn pieces_keyed(
        source: &OnePack,
        destination: &Capped,
        budget: u64,
        tip: ObjectId,
        dest_refs: &[Ref],
        key: &str,
    ) -> (Option<()>, Vec<ObjectId>, usize) {
        let mut pusher = Pusher::new(source, destination, key, Some(budget), 10);
        let mut haves = Vec::new();
        let outcome = match pusher.pieces(&[tip], &mut haves, dest_refs) {
            Ok(Pieces::Sent) => Some(()),
            Ok(Pieces::Increments) => None,
            Err(_) => panic!("the pieces failed"),
        };
        (outcome, haves, pusher.checkpoints.len())
    }

    fn pieces(
        source: &OnePack,
        destination: &Capped,
        budget: u64,
        tip: ObjectId,
        dest_refs: &[Ref],
    ) -> (Option<()>, Vec<ObjectId>, usize) {
        pieces_keyed(source, destination, budget, tip, dest_refs, &key())
    }

    /// The refs `destination` was pushed, one a push.
    fn piece_names(destination: &Capped) -> Vec<String> {
        destination
            .pushes
            .borrow()
            .iter()
            .map(|(commands, _)| commands[0].name.clone())
            .collect()
    }

    #[test]
    fn one_pack_goes_in_pieces_each_within_the_budget() {
        let (tip, source) = history(12, 20 * KIB as usize);
        let destination = Capped::new(64 * KIB, Vec::new());
        let (outcome, haves, markers) = pieces(&source, &destination, 64 * KIB, tip, &[]);
        assert!(outcome.is_some());
        // One pack asked for, without offset deltas (which cannot be cut).
        assert_eq!(*source.offset_deltas.lock().unwrap(), [false]);
        assert_eq!(haves, [tip]);
        let pushes = destination.pushes.borrow();
        // 240 KiB of blobs cannot go in fewer than four pushes of 64 KiB.
        assert!(pushes.len() >= 4, "{}", pushes.len());
        assert_eq!(markers, pushes.len());
        for (commands, bytes) in pushes.iter() {
            assert!(*bytes <= 64 * KIB, "a piece of {bytes} bytes");
            assert_eq!(commands.len(), 1);
            assert!(commands[0].name.starts_with(PIECES), "{}", commands[0].name);
            assert!(commands[0].old.is_zero());
        }
        // Every object went once: the pieces hold the pack's objects and
        // a marker each.
        let objects = source.pack.len() as u64 - FRAME;
        let pushed: u64 = pushes.iter().map(|(_, bytes)| bytes).sum();
        assert!(pushed >= objects, "{pushed} of {objects}");
        assert!(pushed <= objects + pushes.len() as u64 * Marker::MAX_BYTES);
    }

    #[test]
    fn a_piece_the_server_refuses_as_too_large_goes_again_smaller() {
        let (tip, source) = history(12, 20 * KIB as usize);
        // A budget four times what the server takes, as if set wrong.
        let destination = Capped::new(64 * KIB, Vec::new());
        let (outcome, haves, markers) = pieces(&source, &destination, 256 * KIB, tip, &[]);
        assert!(outcome.is_some());
        assert_eq!(haves, [tip]);
        let pushes = destination.pushes.borrow();
        assert_eq!(markers, pushes.len(), "only pushes taken are recorded");
        let objects = source.pack.len() as u64 - FRAME;
        let pushed: u64 = pushes.iter().map(|(_, bytes)| bytes).sum();
        assert!(
            pushed >= objects,
            "{pushed} of {objects}: a refused piece was lost"
        );
        assert_eq!(
            *source.offset_deltas.lock().unwrap(),
            [false],
            "fetched again"
        );
    }

    #[test]
    fn pieces_an_earlier_run_left_are_not_pushed_again() {
        let (tip, source) = history(12, 20 * KIB as usize);
        let first = Capped::new(64 * KIB, Vec::new());
        pieces(&source, &first, 64 * KIB, tip, &[]);
        let names = piece_names(&first);
        // Killed after two pieces.
        let left: Vec<Ref> = first.pushes.borrow()[..2]
            .iter()
            .map(|(commands, _)| Ref {
                name: commands[0].name.clone(),
                oid: commands[0].new,
                peeled: None,
                symref_target: None,
            })
            .collect();
        let again = Capped::new(64 * KIB, left.clone());
        let (outcome, _, _) = pieces(&source, &again, 64 * KIB, tip, &left);
        assert!(outcome.is_some());
        let pushed = piece_names(&again);
        assert_eq!(pushed, names[2..]);
    }

    #[test]
    fn an_object_larger_than_the_budget_leaves_the_history_to_the_increments() {
        let (tip, source) = history(2, 100 * KIB as usize);
        let destination = Capped::new(64 * KIB, Vec::new());
        let (outcome, haves, _) = pieces(&source, &destination, 64 * KIB, tip, &[]);
        assert!(outcome.is_none());
        assert!(haves.is_empty(), "{haves:?}");
    }

    #[test]
    fn an_object_larger_than_a_piece_goes_alone_when_it_fits_the_budget() {
        // A 9 MiB file under a 16 MiB budget: pieces are 8 MiB at most, but
        // a push may carry it.
        let (tip, source) = history(2, 9 << 20);
        let destination = Capped::new(16 << 20, Vec::new());
        let (outcome, haves, _) = pieces(&source, &destination, 16 << 20, tip, &[]);
        assert!(outcome.is_some());
        assert_eq!(haves, [tip]);
        let pushes = destination.pushes.borrow();
        assert!(pushes.iter().all(|(_, bytes)| *bytes <= 16 << 20));
        assert!(
            pushes.iter().any(|(_, bytes)| *bytes > 9 << 20),
            "{pushes:?}"
        );
    }

    #[test]
    fn a_destination_that_cannot_store_a_piece_gets_increments_from_then_on() {
        // As a server checking every object's links does
        // (`receive.fsckObjects`) with the first piece: commits whose trees
        // come later.
        let (tip, source) = history(12, 20 * KIB as usize);
        let destination = Capped::new(64 * KIB, Vec::new());
        *destination.unpack_error.borrow_mut() =
            Some("index-pack abnormal exit (did not receive expected object)".into());
        let key = key();
        let (outcome, haves, _) = pieces_keyed(&source, &destination, 64 * KIB, tip, &[], &key);
        assert!(outcome.is_none());
        assert!(haves.is_empty());
        assert_eq!(source.offset_deltas.lock().unwrap().len(), 1);
        // The same destination again in this process: not even a fetch.
        let (outcome, _, _) = pieces_keyed(&source, &destination, 64 * KIB, tip, &[], &key);
        assert!(outcome.is_none());
        assert_eq!(source.offset_deltas.lock().unwrap().len(), 1);
    }
}

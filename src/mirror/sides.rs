//! The two traits the relay sees: [`SourceSide`] and [`DestinationSide`].
//!
//! A source is an upload-pack conversation (`source`) or a local
//! repository read through git2; a destination is a receive-pack
//! conversation (`destination`) or a backup on disk (`store_side`). The
//! relay plans, decides and streams the same way for every pairing, and its
//! unit tests drive it through in-memory sides.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::error::{Cause, SideError};
use crate::protocol::advertisement::Ref;
use crate::protocol::blobs::{Place, Scan};
use crate::protocol::graph::CommitGraph;
use crate::protocol::push::{Command, ReportStatus};
use crate::protocol::ObjectId;

/// What a negotiation round learnt, and the pack if one was asked for.
pub(crate) struct Negotiated {
    /// Every object the source acknowledged having.
    pub(crate) known: HashSet<ObjectId>,
    /// The pack, demultiplexed, when one was requested.
    pub(crate) pack: Option<Box<dyn Read + Send>>,
}

/// How the pack should be built, from what the destination accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackOptions {
    /// Deltas may refer to objects the destination already has.
    pub(crate) thin: bool,
    /// Offset deltas are allowed.
    pub(crate) ofs_delta: bool,
}

/// What the engine needs from a source: an upload-pack conversation
/// (`Source`) or a local repository read through git2 (see
/// `crate::store::Git2Reader`).
pub(crate) trait SourceSide {
    /// How the source is read, for the report: `v2`, `v0` or `git2`.
    fn protocol(&self) -> String;
    /// Learns which of `haves` the source has (all of `suspects` are asked
    /// about), and with `pack` returns the pack for `wants` as a stream;
    /// see `Source`'s implementation.
    fn negotiate(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        suspects: &[ObjectId],
        pack: Option<PackOptions>,
    ) -> Result<Negotiated, SideError>;
    /// For each `(old, new)` update, whether `old` is an ancestor of `new`
    /// (a fast-forward) or the source rewrote that history; `None` where
    /// it cannot tell.
    fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>>;
    /// The commits reachable from `wants` and not from `haves`, as a graph:
    /// what a batched push cuts into increments.
    fn commit_graph(
        &self,
        _wants: &[ObjectId],
        _haves: &[ObjectId],
    ) -> Result<CommitGraph, SideError> {
        Err(self.error(Cause::Refused(
            "this source cannot list the commits to send, which a batched push needs (install git for a local source)".into(),
        )))
    }
    /// Whether the source sends the history of any commit it has, not only
    /// of its advertised tips: protocol v2 does, v0 where the server allows
    /// it (`allow-reachable-sha1-in-want`, `allow-any-sha1-in-want`).
    fn serves_any_commit(&self) -> bool {
        false
    }
    /// Gives `found` each blob of at most `max_size` bytes reachable from
    /// `wants` and not from `haves`, with its id: where the engine finds
    /// Git LFS pointers. `None` when the source cannot leave larger blobs
    /// out of a pack and `filtered_only` is set: reading a whole history
    /// for its small blobs costs about what relaying it does.
    fn small_blobs(
        &self,
        _wants: &[ObjectId],
        _haves: &[ObjectId],
        _max_size: u64,
        _filtered_only: bool,
        _found: &mut dyn FnMut(ObjectId, &[u8]),
    ) -> Result<Option<Scan>, SideError> {
        Ok(None)
    }
    /// For each blob of `targets` in the history that `wants` bring and
    /// `haves` lack, a commit whose tree holds it and its path there.
    fn blob_paths(
        &self,
        _wants: &[ObjectId],
        _haves: &[ObjectId],
        _targets: &HashSet<ObjectId>,
    ) -> Result<HashMap<ObjectId, Place>, SideError> {
        Ok(HashMap::new())
    }
    /// Whether its packs may be cut into pieces at object boundaries (see
    /// `batch::pieces`): any real pack may; the unit tests' fake source
    /// sends bytes that only weigh what a pack would.
    fn packs_can_be_cut(&self) -> bool {
        true
    }
    /// This source, where it can be asked from another thread: a batched
    /// push then fetches the next increment while the destination takes
    /// the last one.
    fn concurrent(&self) -> Option<&(dyn SourceSide + Sync)> {
        None
    }
    /// Tags `cause` with this side and its location.
    fn error(&self, cause: Cause) -> SideError;
}

/// What the engine needs from a destination, whatever it is: a
/// receive-pack conversation (`Destination`) or a backup on disk
/// written through git2 (see `crate::store`). The engine plans against
/// `list_refs`, shapes the pack by what the side accepts, and hands it the
/// commands and the pack stream; the side answers like receive-pack would.
pub(crate) trait DestinationSide {
    /// Lists the destination's refs (again, to verify after a push).
    fn list_refs(&self) -> Result<Vec<Ref>, SideError>;
    /// Whether deltas may refer to objects the destination already has.
    fn accepts_thin_pack(&self) -> bool;
    /// Whether offset deltas are understood.
    fn accepts_ofs_delta(&self) -> bool;
    /// Whether refs may be deleted.
    fn allows_delete(&self) -> bool;
    /// Whether pushes here are bounded (size, ref updates), as a server's
    /// are; a backup on disk takes any pack in one go.
    fn has_push_limits(&self) -> bool {
        true
    }
    /// Applies `commands`, with `pack` when any command needs objects, and
    /// reports per ref. An `Err` means the push as a whole failed.
    fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, SideError>;
    /// Points the destination's HEAD at `target`, the source's default
    /// branch, if the destination has that branch. Servers manage their own
    /// HEAD (a push cannot set it), so by default this does nothing.
    fn adopt_head(&self, _target: &str) -> Result<(), SideError> {
        Ok(())
    }
    /// Tags `cause` with this side and its location.
    fn error(&self, cause: Cause) -> SideError;
    /// Notes on refs this side wants in the report, `(ref, note)`: a backup
    /// says where it archived a dropped tip.
    fn notes(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

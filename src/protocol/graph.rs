//! The commit graph of a large pack, read with bounded memory.
//!
//! When a history is too large for one push, the engine cuts it into
//! increments (see `crate::mirror`), and for that it needs the shape of the
//! history: every commit to send and its parents. The source says it with
//! a pack, usually filtered with `tree:0` so that it holds only commits and
//! tags, and this module reads that pack into a [`CommitGraph`].
//!
//! The history may have millions of commits, so nothing is kept per commit
//! but its id and its parents as indices: about 36 bytes a commit, where
//! the probe's reader (`super::pack::commit_parents`) keeps every commit's
//! bytes. Commit and tag bodies are kept only as delta bases, in a cache
//! bounded in bytes that drops the least recently used. Commits are seldom
//! stored as deltas: a delta must save half of a commit, and two commits
//! share little beyond their author lines (`git gc` with its default
//! window stores none of 5,000 dependency-bot commits as a delta). git
//! writes a delta's base before the delta: right before it when the base
//! is older, at the base's own place when it is newer. A base newer by
//! more than the cache holds has left it; the read then fails with an
//! error saying so rather than guessing, and the caller falls back to what
//! it does without a graph. The fetch protocol has no way to ask a server
//! for a pack without deltas.
//!
//! That fallback is the rule, not the exception, for a history repacked
//! with a large window (`git gc --aggressive`, `--window=250`) whose
//! messages are templated: nearly every commit is then a delta, and the
//! cache must hold most of the history (nine tenths in
//! `aggressively_repacked_bot_commits_need_their_bases_held`), so such a
//! history is read only up to some 30,000 commits.
//!
//! Parents usually come after their children (git writes commits newest
//! first), so a commit's parents are given an index when first named and
//! the graph is renumbered in place once the pack is read: ids that never
//! arrived as commits (parents the destination already has) are dropped,
//! and the rest keep the order they were first named in.
//!
//! An unfiltered pack holds trees and blobs after the commits, so once
//! every tip the caller wants is in the graph and trees and blobs arrive,
//! the read can end without downloading the rest of the pack. Not at the
//! first one, though: git writes the objects that tags name (a tree, in
//! some repositories) right after the newest commits, ahead of the older
//! ones. The read ends after a run of [`STOP_AFTER_OTHERS`] trees and
//! blobs with no commit among them, a few hundred kilobytes more.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::Read;

use super::cache::BaseCache;
use super::pack::{self, bad, Kind, PackReader, MAX_KEPT};
use super::{ObjectId, ProtocolError};

/// Bytes of commit and tag bodies kept as delta bases.
const CACHE_BYTES: usize = 32 << 20;
/// Inflated bytes allowed per byte of budget (and at least 1 GiB): commits
/// compress about threefold, a zlib bomb a thousandfold.
const INFLATION_PER_BUDGET_BYTE: u64 = 16;
/// Trees and blobs in a row, once the tips are in, that end the read of an
/// unfiltered pack. git writes every object a tag names (tagged trees and
/// blobs too) right after the commits up to the first tagged one, so a
/// tree may come before the rest of the commits; a thousand of them with
/// no commit between is the tree section.
const STOP_AFTER_OTHERS: u32 = 1024;
/// Marks "no index" in the tables below.
const NONE: u32 = u32::MAX;

/// The commits of a pack as a compact graph: an index per commit, parents
/// as indices.
pub(crate) struct CommitGraph {
    /// By index: the order commits were first named in.
    ids: Chunked<ObjectId>,
    table: IdTable,
    /// Parents of commit `i`: `parents[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    parents: Vec<u32>,
    /// Annotated tags of the pack: what each names, and that object's type
    /// as the tag says it.
    tags: HashMap<ObjectId, (ObjectId, bool)>,
}

impl CommitGraph {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }

    /// The index of a commit in the graph.
    pub(crate) fn index(&self, id: &ObjectId) -> Option<u32> {
        self.table.find(&self.ids, id)
    }

    pub(crate) fn id(&self, commit: u32) -> ObjectId {
        self.ids.at(commit as usize)
    }

    /// Parents that are in the graph (parents outside it are history the
    /// destination already has).
    pub(crate) fn parents(&self, commit: u32) -> &[u32] {
        let i = commit as usize;
        &self.parents[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// Annotated tags seen in the pack, peeled: the commit (or other
    /// object) a tag id finally names. Returns `id` itself when it is not a
    /// known tag.
    pub(crate) fn peel(&self, id: &ObjectId) -> ObjectId {
        peel(&self.tags, id).0
    }

    /// Heap bytes held, for the memory figure.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + self.table.heap_bytes()
            + (self.starts.capacity() + self.parents.capacity()) * 4
            + self.tags.capacity() * (std::mem::size_of::<(ObjectId, (ObjectId, bool))>() + 1)
    }

    /// A graph from commits and their parents, in this order, for tests of
    /// the modules that use one.
    #[cfg(test)]
    pub(crate) fn from_edges(edges: &[(ObjectId, &[ObjectId])]) -> CommitGraph {
        let mut builder = Builder::default();
        for (id, parents) in edges {
            builder
                .add_commit(*id, parents.to_vec())
                .expect("a small graph");
        }
        builder.finish()
    }
}

/// Reads the commits (and annotated tags) of the pack on `reader`, at most
/// `budget` bytes.
///
/// When `tips` are all in the graph (tags peeled) and trees or blobs
/// arrive, reading stops there: git writes commits before trees, so an
/// unfiltered pack need not be read to its end. (It stops after a run of
/// [`STOP_AFTER_OTHERS`] of them: tagged trees come among the commits.) A
/// pack filtered with `tree:0` is simply read to its end.
pub(crate) fn read_commit_graph(
    reader: impl Read,
    tips: &[ObjectId],
    budget: u64,
) -> Result<CommitGraph, ProtocolError> {
    read_graph(reader, tips, budget, CACHE_BYTES)
}

fn read_graph(
    reader: impl Read,
    tips: &[ObjectId],
    budget: u64,
    cache_bytes: usize,
) -> Result<CommitGraph, ProtocolError> {
    let max_inflated = budget
        .saturating_mul(INFLATION_PER_BUDGET_BYTE)
        .max(1 << 30);
    let mut pack = PackReader::new(reader, budget, max_inflated)?;
    let mut builder = Builder::default();
    let mut cache = BaseCache::new(cache_bytes);
    // Where the first object that is neither a commit nor a tag starts:
    // every object before it was kept, so a base there that is not in the
    // cache has left it. Commits and tags after it are listed (git puts
    // none there, so the list stays short).
    let mut first_other = u64::MAX;
    let mut kept_late: Vec<u64> = Vec::new();
    // Whether the tips were all in the graph when last checked, and whether
    // anything arrived since.
    let mut tips_done = false;
    let mut changed = true;
    let mut others_in_a_row = 0u32;
    while let Some(entry) = pack.next()? {
        let (kind, base) = match entry.kind {
            Kind::Commit => (Kept::Commit, None),
            Kind::Tag => (Kept::Tag, None),
            Kind::Tree | Kind::Blob => (Kept::Neither, None),
            Kind::OfsDelta(offset) => match cache.get(offset) {
                Some((kind, data)) => (kind, Some(data)),
                None if offset < first_other || kept_late.binary_search(&offset).is_ok() => {
                    return Err(evicted(entry.start));
                }
                None => (Kept::Neither, None),
            },
            Kind::RefDelta(id) => match cache.get_id(&id) {
                Some((kind, data)) => (kind, Some(data)),
                None if builder.has_commit(&id) || builder.tags.contains_key(&id) => {
                    return Err(evicted(entry.start));
                }
                // A tree or blob, in this pack or (in a thin pack) not: the
                // bases git takes from outside a thin pack are the trees
                // and blobs of the commits the other side has.
                None => (Kept::Neither, None),
            },
        };
        if kind == Kept::Neither {
            first_other = first_other.min(entry.start);
            others_in_a_row += 1;
            if others_in_a_row >= STOP_AFTER_OTHERS {
                if changed {
                    tips_done = builder.has_all(tips);
                    changed = false;
                }
                if tips_done {
                    break;
                }
            }
            continue;
        }
        others_in_a_row = 0;
        if entry.size > MAX_KEPT {
            return Err(bad("a commit or tag larger than 16 MiB"));
        }
        let data = pack.inflate()?;
        let data = match base {
            Some(base) => pack::apply_delta(base, &data)?,
            None => data,
        };
        let id = match kind {
            Kept::Commit => {
                let id = pack::object_id("commit", &data);
                builder.add_commit(id, pack::parent_lines(&data))?;
                id
            }
            _ => {
                let id = pack::object_id("tag", &data);
                builder.add_tag(id, &data)?;
                id
            }
        };
        changed = true;
        if entry.start > first_other {
            kept_late.push(entry.start);
        }
        cache.insert(entry.start, id, kind, data);
    }
    drop(cache);
    Ok(builder.finish())
}

fn evicted(at: u64) -> ProtocolError {
    ProtocolError::Unexpected {
        context: "a pack",
        line: format!(
            "the delta at offset {at} has a commit or tag base that is no longer held \
             (more than {} MiB of commits between them)",
            CACHE_BYTES >> 20
        ),
    }
}

/// What a kept body, or the base of a delta, is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kept {
    Commit,
    Tag,
    Neither,
}

/// The graph while the pack is read: commits are numbered as they are
/// first named, as a commit or as a parent.
#[derive(Default)]
struct Builder {
    /// Every id named so far, by node.
    ids: Chunked<ObjectId>,
    table: IdTable,
    /// By node: where the commit's parents start in `stream`, or `NONE`
    /// while it is only named as a parent.
    start: Chunked<u32>,
    /// The parents of each commit that arrived, in arrival order: nodes,
    /// the last one marked with `LAST`, or `ROOT` alone for a commit
    /// without parents. One word a parent, and nothing per commit but
    /// `start`.
    stream: Chunked<u32>,
    tags: HashMap<ObjectId, (ObjectId, bool)>,
}

/// Marks the last parent of a commit in [`Builder::stream`].
const LAST: u32 = 1 << 31;
/// A commit without parents in [`Builder::stream`].
const ROOT: u32 = u32::MAX;

impl Builder {
    fn node(&mut self, id: ObjectId) -> Result<u32, ProtocolError> {
        if let Some(node) = self.table.find(&self.ids, &id) {
            return Ok(node);
        }
        let node = u32::try_from(self.ids.len())
            .ok()
            .filter(|&n| n < LAST - 1)
            .ok_or_else(|| bad("more commits than a graph can number"))?;
        self.ids.push(id);
        self.start.push(NONE);
        self.table.insert(&self.ids, node);
        Ok(node)
    }

    fn add_commit(
        &mut self,
        id: ObjectId,
        mut parents: Vec<ObjectId>,
    ) -> Result<(), ProtocolError> {
        let node = self.node(id)?;
        if self.start.at(node as usize) != NONE {
            // The same id is the same commit: nothing new.
            return Ok(());
        }
        // A parent named twice is one edge (and costs no memory twice);
        // the order stays, as the first parent is the mainline.
        if parents.len() > 1 {
            let mut seen = std::collections::HashSet::with_capacity(parents.len());
            parents.retain(|parent| seen.insert(*parent));
        }
        let start = u32::try_from(self.stream.len())
            .ok()
            .filter(|&n| n < NONE)
            .ok_or_else(|| bad("more parents than a graph can number"))?;
        self.start.set(node as usize, start);
        if parents.is_empty() {
            self.stream.push(ROOT);
        }
        let count = parents.len();
        for (i, parent) in parents.into_iter().enumerate() {
            let parent = self.node(parent)?;
            self.stream.push(if i + 1 == count {
                parent | LAST
            } else {
                parent
            });
        }
        Ok(())
    }

    fn add_tag(&mut self, id: ObjectId, data: &[u8]) -> Result<(), ProtocolError> {
        let mut target = None;
        let mut is_commit = false;
        for line in pack::header_lines(data) {
            if let Some(hex) = line.strip_prefix(b"object ") {
                target = Some(ObjectId::from_hex(hex)?);
            } else if let Some(kind) = line.strip_prefix(b"type ") {
                is_commit = kind == b"commit";
            }
        }
        let target = target.ok_or_else(|| bad("a tag without an object line"))?;
        self.tags.insert(id, (target, is_commit));
        Ok(())
    }

    fn has_commit(&self, id: &ObjectId) -> bool {
        self.table
            .find(&self.ids, id)
            .is_some_and(|node| self.start.at(node as usize) != NONE)
    }

    /// Whether every tip, peeled, is a commit in the graph or a tag of
    /// something that is not a commit.
    fn has_all(&self, tips: &[ObjectId]) -> bool {
        tips.iter().all(|tip| {
            let (id, is_commit) = peel(&self.tags, tip);
            !is_commit || self.has_commit(&id)
        })
    }

    /// Drops the ids that never arrived as commits and numbers the rest
    /// in the order they were first named, without copying the ids.
    fn finish(self) -> CommitGraph {
        let Builder {
            mut ids,
            mut table,
            start,
            stream,
            tags,
        } = self;
        let ranks = Ranks::new(start.iter().map(|s| s != NONE));
        let mut starts = Vec::with_capacity(ranks.count as usize + 1);
        let mut parents = Vec::with_capacity(stream.len());
        for at in start.iter().filter(|&at| at != NONE) {
            starts.push(parents.len() as u32);
            for word in stream.iter_from(at as usize) {
                if word == ROOT {
                    break;
                }
                if let Some(rank) = ranks.rank(word & !LAST) {
                    parents.push(rank);
                }
                if word & LAST != 0 {
                    break;
                }
            }
        }
        starts.push(parents.len() as u32);
        drop((start, stream));
        parents.shrink_to_fit();
        let mut kept = 0;
        for node in 0..ids.len() {
            if ranks.rank(node as u32).is_some() {
                ids.set(kept, ids.at(node));
                kept += 1;
            }
        }
        drop(ranks);
        ids.truncate(kept);
        table.rebuild(&ids);
        CommitGraph {
            ids,
            table,
            starts,
            parents,
            tags,
        }
    }
}

/// Which nodes arrived, and the place of each among those that did: a bit
/// a node and a count every 64, where a table of places would take 32.
struct Ranks {
    bits: Vec<u64>,
    before: Vec<u32>,
    count: u32,
}

impl Ranks {
    fn new(arrived: impl Iterator<Item = bool>) -> Ranks {
        let (mut bits, mut before, mut count) = (Vec::new(), Vec::new(), 0u32);
        for (node, arrived) in arrived.enumerate() {
            if node % 64 == 0 {
                bits.push(0u64);
                before.push(count);
            }
            if arrived {
                if let Some(word) = bits.last_mut() {
                    *word |= 1 << (node % 64);
                }
                count += 1;
            }
        }
        Ranks {
            bits,
            before,
            count,
        }
    }

    /// The node's place among those that arrived, if it did.
    fn rank(&self, node: u32) -> Option<u32> {
        let (word, bit) = (node as usize / 64, node % 64);
        let bits = *self.bits.get(word)?;
        (bits & (1 << bit) != 0)
            .then(|| self.before[word] + (bits & ((1u64 << bit) - 1)).count_ones())
    }
}

/// What `id` finally names through the tags in `tags`, and whether that is
/// a commit (as far as is known: an id that is no tag is taken for one).
fn peel(tags: &HashMap<ObjectId, (ObjectId, bool)>, id: &ObjectId) -> (ObjectId, bool) {
    let (mut id, mut is_commit) = (*id, true);
    // Tag ids are hashes of their content, so a chain cannot loop; a
    // hostile pack is still stopped after as many steps as there are tags.
    for _ in 0..=tags.len() {
        match tags.get(&id) {
            Some(&(target, commit)) => (id, is_commit) = (target, commit),
            None => break,
        }
    }
    (id, is_commit)
}

/// Ids to indices, in 4 bytes a slot: an open-addressing table of indices
/// into an id list kept elsewhere, where a `HashMap<ObjectId, u32>` would
/// cost 25 bytes a slot. Parent ids are chosen by the server, so slots are
/// found with a keyed hash, not the id's bytes.
#[derive(Default)]
struct IdTable {
    slots: Vec<u32>,
    len: usize,
    hasher: RandomState,
}

impl IdTable {
    fn slot(&self, id: &ObjectId) -> usize {
        self.hasher.hash_one(id) as usize & (self.slots.len() - 1)
    }

    fn find(&self, ids: &Chunked<ObjectId>, id: &ObjectId) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mut at = self.slot(id);
        loop {
            match self.slots[at] {
                NONE => return None,
                index if ids.get(index as usize).as_ref() == Some(id) => return Some(index),
                _ => at = (at + 1) & (self.slots.len() - 1),
            }
        }
    }

    /// Adds `index`, whose id (`ids[index]`) is not in the table yet.
    fn insert(&mut self, ids: &Chunked<ObjectId>, index: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(ids, (self.slots.len() * 2).max(16));
        }
        self.place(ids, index);
        self.len += 1;
    }

    fn place(&mut self, ids: &Chunked<ObjectId>, index: u32) {
        let mut at = self.slot(&ids.at(index as usize));
        while self.slots[at] != NONE {
            at = (at + 1) & (self.slots.len() - 1);
        }
        self.slots[at] = index;
    }

    fn grow(&mut self, ids: &Chunked<ObjectId>, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![NONE; size]);
        for index in old.into_iter().filter(|&i| i != NONE) {
            self.place(ids, index);
        }
    }

    /// Indexes `ids` anew, every one of them.
    fn rebuild(&mut self, ids: &Chunked<ObjectId>) {
        let mut size = 16;
        while ids.len() * 4 > size * 3 {
            size *= 2;
        }
        self.slots = Vec::new();
        self.slots = vec![NONE; size];
        for index in 0..ids.len() as u32 {
            self.place(ids, index);
        }
        self.len = ids.len();
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4
    }
}

/// A list that only grows, in blocks of a fixed size. Growing it never
/// copies or frees, where a doubling `Vec` leaves each old buffer behind as
/// a hole in the heap that stays resident: with a million commits those
/// holes cost about as much as the lists themselves.
struct Chunked<T> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

/// Items a block of a [`Chunked`] holds.
const BLOCK: usize = 1 << 16;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            blocks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> Chunked<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, value: T) {
        if self.len.is_multiple_of(BLOCK) {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        if let Some(block) = self.blocks.last_mut() {
            block.push(value);
            self.len += 1;
        }
    }

    fn get(&self, index: usize) -> Option<T> {
        self.blocks.get(index / BLOCK)?.get(index % BLOCK).copied()
    }

    /// The item at `index`, which must be one (as with a slice).
    fn at(&self, index: usize) -> T {
        self.blocks[index / BLOCK][index % BLOCK]
    }

    fn set(&mut self, index: usize, value: T) {
        self.blocks[index / BLOCK][index % BLOCK] = value;
    }

    fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.iter_from(0)
    }

    fn iter_from(&self, index: usize) -> impl Iterator<Item = T> + '_ {
        self.blocks
            .iter()
            .skip(index / BLOCK)
            .enumerate()
            .flat_map(move |(i, block)| {
                let skip = if i == 0 { index % BLOCK } else { 0 };
                block.iter().skip(skip).copied()
            })
    }

    fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.blocks.truncate(len.div_ceil(BLOCK));
            if let Some(block) = self.blocks.last_mut() {
                block.truncate(len - (len - 1) / BLOCK * BLOCK);
            }
            self.len = len;
        }
        // The last block, cut short, gives back what it no longer holds.
        if let Some(block) = self.blocks.last_mut() {
            block.shrink_to_fit();
        }
    }

    fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Vec<T>>()
            + self
                .blocks
                .iter()
                .map(|b| b.capacity() * std::mem::size_of::<T>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_repo::Repo;
    use std::cell::Cell;
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::rc::Rc;

    use flate2::{Compress, FlushCompress, Status};

    /// The graph holds exactly these commits, each with its parents that
    /// are in it, first parent first.
    fn assert_same(graph: &CommitGraph, expected: &[(ObjectId, Vec<ObjectId>)]) {
        assert_eq!(graph.len(), expected.len());
        for (id, parents) in expected {
            let index = graph.index(id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(graph.id(index), *id);
            let inside: Vec<ObjectId> = parents
                .iter()
                .filter(|p| graph.index(p).is_some())
                .copied()
                .collect();
            let got: Vec<ObjectId> = graph.parents(index).iter().map(|&p| graph.id(p)).collect();
            assert_eq!(got, inside, "parents of {id}");
        }
    }

    /// A history with a side branch, a merge, an octopus, an annotated tag
    /// and a tag of that tag.
    fn history() -> Repo {
        let repo = Repo::new();
        repo.commit("a", "1", "one");
        repo.commit("a", "2", "two");
        repo.git(&["branch", "side"]);
        repo.git(&["branch", "third"]);
        repo.git(&["branch", "fourth"]);
        repo.commit("a", "3", "three");
        repo.git(&["checkout", "-q", "side"]);
        repo.commit("b", "1", "side one");
        repo.commit("b", "2", "side two");
        repo.git(&["checkout", "-q", "third"]);
        repo.commit("c", "1", "third one");
        repo.git(&["checkout", "-q", "fourth"]);
        repo.commit("d", "1", "fourth one");
        repo.git(&["checkout", "-q", "main"]);
        repo.git(&["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
        repo.commit("a", "4", "four");
        repo.git(&["tag", "-a", "-m", "release", "v1"]);
        repo.git(&["tag", "-a", "-m", "signed off", "v1-approved", "v1"]);
        repo.git(&["checkout", "-q", "-b", "octopus", "main~1"]);
        repo.git(&["merge", "-q", "-m", "octopus", "third", "fourth"]);
        repo
    }

    #[test]
    fn merges_and_tags_read_like_rev_list() {
        let repo = history();
        let tips = [repo.id("main"), repo.id("octopus"), repo.id("v1-approved")];
        let have = repo.id("main~3");
        for filter in [&["--filter=tree:0", "--stdout"][..], &["--stdout"][..]] {
            let pack = repo.pack(filter, "main\noctopus\nv1-approved\n^main~3\n");
            let graph = read_commit_graph(&pack[..], &tips, 1 << 20).unwrap();
            let expected = repo.rev_list(&["main", "octopus", "--not", "main~3"]);
            assert_same(&graph, &expected);
            assert!(graph.index(&have).is_none());
            // The octopus has three parents, in order; the merge two.
            let octopus = graph.index(&repo.id("octopus")).unwrap();
            assert_eq!(graph.parents(octopus).len(), 3);
            let merge = graph.index(&repo.id("main~1")).unwrap();
            assert_eq!(graph.parents(merge).len(), 2);
            // Tags peel to their commit through both levels.
            assert_eq!(graph.peel(&repo.id("v1-approved")), repo.id("main"));
            assert_eq!(graph.peel(&repo.id("v1")), repo.id("main"));
            assert_eq!(graph.peel(&have), have);
            assert!(graph.heap_bytes() > 0);
        }
    }

    /// Ten commits with long messages that differ in a line, which
    /// `git pack-objects` stores as deltas of each other.
    fn similar_commits() -> Repo {
        let repo = Repo::new();
        let body: String = (0..200)
            .map(|i| format!("line {i} of a long and repetitive commit message\n"))
            .collect();
        for i in 0..10 {
            repo.commit("a", &i.to_string(), &format!("commit {i}\n\n{body}"));
        }
        repo
    }

    /// Whether `git verify-pack` sees a commit stored as a delta.
    fn has_commit_delta(repo: &Repo, options: &[&str]) -> Vec<u8> {
        let base = repo.dir.path().join("out");
        let mut all = vec!["--window=50", "--depth=50", "--no-reuse-delta"];
        all.extend_from_slice(options);
        all.push(base.to_str().unwrap());
        let hash = String::from_utf8(repo.pack(&all, "main\n")).unwrap();
        let pack = format!("{}-{}.pack", base.display(), hash.trim());
        let listing = repo.git(&["verify-pack", "-v", &pack]);
        // Deltas list a depth and a base after type, sizes and offset.
        assert!(
            listing.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1) == Some(&"commit") && fields.len() == 7
            }),
            "no commit delta in {listing}"
        );
        let data = std::fs::read(&pack).unwrap();
        std::fs::remove_file(&pack).unwrap();
        data
    }

    #[test]
    fn commit_deltas_by_offset_and_by_id_are_resolved() {
        let repo = similar_commits();
        let expected = repo.rev_list(&["main"]);
        for options in [&["--delta-base-offset"][..], &[][..]] {
            let pack = has_commit_delta(&repo, options);
            let graph = read_commit_graph(&pack[..], &[repo.id("main")], 1 << 20).unwrap();
            assert_same(&graph, &expected);
            let ofs = pack_kinds(&pack)
                .iter()
                .any(|kind| matches!(kind, Kind::OfsDelta(_)));
            assert_eq!(ofs, !options.is_empty());
            // With no room for a base, a delta is an error, not a guess.
            let err = read_graph(&pack[..], &[], 1 << 20, 0).err().unwrap();
            assert!(err.to_string().contains("no longer held"), "{err}");
        }
    }

    /// Commits with long templated messages (a dependency bot's), repacked
    /// as `git gc --aggressive` does: nearly every commit is then a delta,
    /// and many bases are far back. With the cache too small to hold the
    /// history, such a pack gives the error; with the whole history held,
    /// the graph.
    #[test]
    fn aggressively_repacked_bot_commits_need_their_bases_held() {
        let repo = Repo::new();
        let mut script = String::new();
        let libs = ["serde", "tokio", "clap", "regex", "rand", "syn", "quote"];
        for i in 1..=600u32 {
            let lib = libs[(i as usize * 7) % libs.len()];
            let (from, to) = (
                format!("1.{}.{}", i % 41, i % 7),
                format!("1.{}.{}", i % 37, i % 9),
            );
            let message = format!(
                "Bump {lib} from {from} to {to}\n\nBumps [{lib}](https://example.com/{lib}) \
                 from {from} to {to}.\n- [Release notes](https://example.com/{lib}/releases)\n\
                 - [Changelog](https://example.com/{lib}/blob/main/CHANGELOG.md)\n\
                 - [Commits](https://example.com/{lib}/compare/v{from}...v{to})\n\n---\n\
                 updated-dependencies:\n- dependency-name: {lib}\n  dependency-type: direct\n\
                 ...\n\nSigned-off-by: bot <bot@example.com>\n"
            );
            script += &format!(
                "commit refs/heads/main\nmark :{i}\ncommitter bot <bot@example.com> {} +0000\n\
                 data {}\n{message}",
                1_700_000_000 + i * 60,
                message.len()
            );
            if i > 1 {
                script += &format!("from :{}\n", i - 1);
            }
            script += &format!(
                "M 644 inline lock\ndata {}\n{lib}{to}\n\n",
                lib.len() + to.len()
            );
        }
        let mut child = repo
            .command(&["fast-import", "--quiet"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        repo.git(&[
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
            "--window=250",
            "--depth=50",
        ]);
        let pack = repo.pack(
            &["--stdout", "--filter=tree:0", "--delta-base-offset"],
            "main\n",
        );
        let deltas = pack_kinds(&pack)
            .iter()
            .filter(|k| matches!(k, Kind::OfsDelta(_)))
            .count();
        assert!(deltas > 500, "{deltas} deltas");
        let graph = read_commit_graph(&pack[..], &[repo.id("main")], 1 << 20).unwrap();
        assert_same(&graph, &repo.rev_list(&["main"]));
        // A tenth of the history in the cache, as 32 MiB is of a history of
        // a million such commits.
        let err = read_graph(&pack[..], &[], 1 << 20, 60 * 1000)
            .err()
            .unwrap();
        assert!(err.to_string().contains("no longer held"), "{err}");
    }

    fn pack_kinds(pack: &[u8]) -> Vec<Kind> {
        let mut reader = PackReader::new(pack, 1 << 20, 1 << 30).unwrap();
        let mut kinds = Vec::new();
        while let Some(entry) = reader.next().unwrap() {
            kinds.push(entry.kind);
        }
        kinds
    }

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: Rc<Cell<usize>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn an_unfiltered_pack_is_read_only_into_its_trees() {
        let repo = Repo::new();
        // Blobs that do not compress, named to come last, so the pack is
        // mostly them; then small files, more than a run that ends the
        // read, named to come first.
        let mut state = 1u64;
        for i in 0..4 {
            let noise: String = (0..100_000)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b'a' + (state % 26) as u8)
                })
                .collect();
            repo.commit(&format!("z{i}"), &noise, &format!("commit {i}"));
        }
        for i in 0..STOP_AFTER_OTHERS + 100 {
            std::fs::write(repo.dir.path().join(format!("a{i:05}")), i.to_string()).unwrap();
        }
        repo.git(&["add", "."]);
        repo.git(&["commit", "-q", "-m", "many small files"]);
        repo.git(&["tag", "-a", "-m", "release", "v1", "HEAD~1"]);
        let pack = repo.pack(&["--stdout"], "main\nv1\n");
        let expected = repo.rev_list(&["main"]);
        for tips in [vec![repo.id("main")], vec![repo.id("v1"), repo.id("main")]] {
            let read = Rc::new(Cell::new(0));
            let counting = Counting {
                inner: &pack[..],
                read: read.clone(),
            };
            let graph = read_commit_graph(counting, &tips, 1 << 30).unwrap();
            assert_same(&graph, &expected);
            assert!(
                read.get() < pack.len() / 4,
                "read {} of {} bytes",
                read.get(),
                pack.len()
            );
        }
        // A tip the pack does not hold: read to the end, whatever it holds.
        // (Bounded by the budget, as ever.)
        let read = Rc::new(Cell::new(0));
        let counting = Counting {
            inner: &pack[..],
            read: read.clone(),
        };
        let graph = read_commit_graph(counting, &[ObjectId::ZERO], 1 << 30).unwrap();
        assert_same(&graph, &expected);
        assert!(read.get() >= pack.len() - 20);
    }

    #[test]
    fn a_tagged_tree_among_the_commits_does_not_end_the_read() {
        let repo = Repo::new();
        for i in 0..20 {
            repo.commit(&format!("f{i}"), &i.to_string(), &format!("c{i}"));
        }
        repo.git(&["tag", "-a", "-m", "a tree", "vtree", "HEAD~15^{tree}"]);
        repo.git(&["tag", "-a", "-m", "middle", "vmid", "HEAD~10"]);
        let pack = repo.pack(&["--stdout"], "main\n");
        // git writes the tagged tree right after the tagged commit's
        // descendants, ahead of its ancestors.
        let kinds = pack_kinds(&pack);
        let first_tree = kinds.iter().position(|k| *k == Kind::Tree).unwrap();
        assert!(kinds[first_tree..].contains(&Kind::Commit));
        let graph = read_commit_graph(&pack[..], &[repo.id("main")], 1 << 20).unwrap();
        assert_same(&graph, &repo.rev_list(&["main"]));
        // A tip that is a tag of a tree needs no commit: it peels to the tree.
        let pack = repo.pack(&["--stdout"], "main\nvtree\n");
        let tips = [repo.id("vtree"), repo.id("main")];
        let graph = read_commit_graph(&pack[..], &tips, 1 << 20).unwrap();
        assert_same(&graph, &repo.rev_list(&["main"]));
        assert_eq!(graph.peel(&tips[0]), repo.id("HEAD~15^{tree}"));
        assert!(graph.index(&graph.peel(&tips[0])).is_none());
    }

    #[test]
    fn a_budget_too_small_or_a_pack_cut_short_is_an_error() {
        let repo = history();
        let pack = repo.pack(&["--stdout", "--filter=tree:0"], "main\noctopus\n");
        let tips = [repo.id("main")];
        assert!(read_commit_graph(&pack[..], &tips, pack.len() as u64).is_ok());
        assert!(matches!(
            read_commit_graph(&pack[..], &tips, 200),
            Err(ProtocolError::MessageTooLarge { limit: 200 })
        ));
        for cut in [0, 11, 12, 40, pack.len() / 2, pack.len() - 21] {
            assert!(
                read_commit_graph(&pack[..cut], &tips, 1 << 20).is_err(),
                "cut at {cut}"
            );
        }
    }

    /// One object as a pack holds it: header, then zlib data.
    fn object(kind: u8, size: u64, extra: &[u8], data: &[u8]) -> Vec<u8> {
        let mut zlib = Compress::new(flate2::Compression::fast(), true);
        object_with(&mut zlib, kind, size, extra, data)
    }

    /// [`object`] with a compressor used again (a new one costs more
    /// than compressing a commit).
    fn object_with(zlib: &mut Compress, kind: u8, size: u64, extra: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = (kind << 4) | (size & 0x0f) as u8;
        let mut rest = size >> 4;
        while rest != 0 {
            out.push(c | 0x80);
            c = (rest & 0x7f) as u8;
            rest >>= 7;
        }
        out.push(c);
        out.extend_from_slice(extra);
        zlib.reset();
        let before = zlib.total_in();
        loop {
            out.reserve(data.len() + 64);
            let done = (zlib.total_in() - before) as usize;
            let status = zlib
                .compress_vec(&data[done..], &mut out, FlushCompress::Finish)
                .unwrap();
            if status == Status::StreamEnd {
                return out;
            }
        }
    }

    fn pack_of(count: u32, objects: &[Vec<u8>]) -> Vec<u8> {
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend_from_slice(&count.to_be_bytes());
        for o in objects {
            pack.extend_from_slice(o);
        }
        pack.extend_from_slice(&[0; 20]);
        pack
    }

    fn commit_body(n: u32, parents: &[ObjectId]) -> Vec<u8> {
        let mut body = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n".to_vec();
        for p in parents {
            body.extend_from_slice(format!("parent {p}\n").as_bytes());
        }
        body.extend_from_slice(
            format!("author A <a@b> {n} +0000\ncommitter A <a@b> {n} +0000\n\ncommit {n}\n")
                .as_bytes(),
        );
        body
    }

    #[test]
    fn hostile_packs_are_errors_not_panics() {
        let first = commit_body(1, &[]);
        let one = object(1, first.len() as u64, &[], &first);
        let ok = pack_of(1, std::slice::from_ref(&one));
        assert_eq!(read_commit_graph(&ok[..], &[], 1 << 20).unwrap().len(), 1);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "more objects announced than sent",
                pack_of(3, std::slice::from_ref(&one)),
            ),
            (
                "an offset delta naming itself",
                pack_of(2, &[one.clone(), object(6, 4, &[0], &[1, 1, 1, b'x'])]),
            ),
            (
                "an offset delta before the pack",
                pack_of(2, &[one.clone(), object(6, 4, &[0x7f], &[1, 1, 1, b'x'])]),
            ),
            (
                "a delta copying past its base",
                pack_of(
                    2,
                    &[
                        one.clone(),
                        object(
                            6,
                            5,
                            &[one.len() as u8],
                            &[first.len() as u8, 9, 0x91, 200, 9],
                        ),
                    ],
                ),
            ),
            (
                "a commit claiming a terabyte",
                pack_of(1, &[object(1, 1 << 40, &[], &first)]),
            ),
            (
                "a blob claiming a petabyte",
                pack_of(2, &[one.clone(), object(3, 1 << 50, &[], b"tiny")]),
            ),
            (
                "a commit of 17 MiB",
                pack_of(1, &[object(1, 17 << 20, &[], &first)]),
            ),
            (
                "a size that does not fit 64 bits",
                pack_of(1, &[object(3, 1 << 60, &[], b"tiny")]),
            ),
            (
                "a commit longer than its header says",
                pack_of(1, &[object(1, 10, &[], &first)]),
            ),
            ("an unknown type", pack_of(1, &[object(5, 4, &[], b"abcd")])),
            (
                "a tag without an object line",
                pack_of(1, &[object(4, 8, &[], b"type tag")]),
            ),
        ];
        for (what, pack) in cases {
            assert!(
                read_commit_graph(&pack[..], &[ObjectId::ZERO], 1 << 20).is_err(),
                "{what}"
            );
        }
    }

    #[test]
    fn parents_outside_the_pack_are_dropped_and_duplicates_merged() {
        let outside: ObjectId = "1".repeat(40).parse().unwrap();
        let root = commit_body(1, &[outside]);
        let root_id = pack::object_id("commit", &root);
        let child = commit_body(2, &[root_id, outside, root_id]);
        let child_id = pack::object_id("commit", &child);
        // Newest first, as git writes; the child twice.
        let objects: Vec<Vec<u8>> = [&child, &root, &child]
            .iter()
            .map(|body| object(1, body.len() as u64, &[], body))
            .collect();
        let pack = pack_of(3, &objects);
        let graph = read_commit_graph(&pack[..], &[child_id], 1 << 20).unwrap();
        assert_eq!(graph.len(), 2);
        let (c, r) = (
            graph.index(&child_id).unwrap(),
            graph.index(&root_id).unwrap(),
        );
        assert_eq!(graph.parents(c), [r]);
        assert!(graph.parents(r).is_empty());
        assert!(graph.index(&outside).is_none());
    }

    #[test]
    fn chunked_lists_read_across_blocks_and_truncate() {
        let mut list = Chunked::default();
        for i in 0..(2 * BLOCK + 10) as u32 {
            list.push(i);
        }
        assert_eq!(list.get(BLOCK), Some(BLOCK as u32));
        assert_eq!(list.get(2 * BLOCK + 10), None);
        let from: Vec<u32> = list.iter_from(BLOCK - 2).take(4).collect();
        assert_eq!(
            from,
            [
                BLOCK as u32 - 2,
                BLOCK as u32 - 1,
                BLOCK as u32,
                BLOCK as u32 + 1
            ]
        );
        assert_eq!(list.iter().count(), 2 * BLOCK + 10);
        list.truncate(BLOCK + 1);
        assert_eq!(list.len(), BLOCK + 1);
        assert_eq!(list.iter().last(), Some(BLOCK as u32));
        list.truncate(BLOCK);
        assert_eq!(list.iter().count(), BLOCK);
        list.truncate(0);
        assert_eq!(list.iter().count(), 0);
        assert_eq!(list.get(0), None);
    }

    #[test]
    fn from_edges_builds_the_same_shape() {
        let id = |n: u8| ObjectId::from([n; 20]);
        let graph = CommitGraph::from_edges(&[
            (id(3), &[id(2), id(1)]),
            (id(2), &[id(1), id(9)]),
            (id(1), &[]),
        ]);
        assert_eq!(graph.len(), 3);
        assert!(!graph.is_empty());
        let parents: Vec<ObjectId> = graph
            .parents(graph.index(&id(3)).unwrap())
            .iter()
            .map(|&p| graph.id(p))
            .collect();
        assert_eq!(parents, [id(2), id(1)]);
        assert_eq!(graph.parents(graph.index(&id(2)).unwrap()).len(), 1);
    }

    #[test]
    fn the_fuzz_corpus_packs_read_whole() {
        // Packs by git 2.47: filtered with merges, an octopus and tags,
        // commit deltas by offset and by id, trees and blobs.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/commit_graph");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let pack = std::fs::read(entry.unwrap().path()).unwrap();
            let graph = read_commit_graph(&pack[..], &[ObjectId::ZERO], 1 << 20).unwrap();
            assert!(graph.len() >= 3);
            seen += 1;
        }
        assert!(seen >= 5);
    }

    const MEMORY_COMMITS: u32 = 1_000_000;

    /// The synthetic history of the memory figure: commit `i` has parent
    /// `i - 1`, and every tenth also `i - 5` (a merge). Ids oldest first.
    fn synthetic_ids() -> Vec<ObjectId> {
        let mut ids: Vec<ObjectId> = Vec::with_capacity(MEMORY_COMMITS as usize);
        for i in 0..MEMORY_COMMITS {
            let body = commit_body(i, &synthetic_parents(&ids, i));
            ids.push(pack::object_id("commit", &body));
        }
        ids
    }

    fn synthetic_parents(ids: &[ObjectId], i: u32) -> Vec<ObjectId> {
        let i = i as usize;
        match i {
            0 => vec![],
            _ if i.is_multiple_of(10) && i >= 5 => vec![ids[i - 1], ids[i - 5]],
            _ => vec![ids[i - 1]],
        }
    }

    /// Writes the synthetic pack, newest commit first as git does.
    fn write_synthetic_pack(path: &Path, ids: &[ObjectId]) {
        let file = std::fs::File::create(path).unwrap();
        let mut out = std::io::BufWriter::new(file);
        let mut zlib = Compress::new(flate2::Compression::fast(), true);
        out.write_all(b"PACK\0\0\0\x02").unwrap();
        out.write_all(&MEMORY_COMMITS.to_be_bytes()).unwrap();
        for i in (0..MEMORY_COMMITS).rev() {
            let body = commit_body(i, &synthetic_parents(ids, i));
            out.write_all(&object_with(&mut zlib, 1, body.len() as u64, &[], &body))
                .unwrap();
        }
        out.write_all(&[0; 20]).unwrap();
        out.flush().unwrap();
    }

    fn vm_hwm_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The memory figure of bench/results/2026-11-30-graph.md:
    /// `cargo test --release --lib graph_memory -- --ignored --nocapture`.
    /// Writes a 1,000,000-commit pack to a temporary file, then reads it in
    /// a process of its own (this test binary, running only
    /// `graph_memory_child`) so that its peak resident set is the reader's.
    #[test]
    #[ignore = "a benchmark: run by hand"]
    fn graph_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.pack");
        let started = std::time::Instant::now();
        let ids = synthetic_ids();
        write_synthetic_pack(&path, &ids);
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "wrote {MEMORY_COMMITS} commits, {size} bytes of pack, in {:?}",
            started.elapsed()
        );
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "protocol::graph::tests::graph_memory_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GIT_RELAY_GRAPH_PACK", &path)
            .env("GIT_RELAY_GRAPH_TIP", ids.last().unwrap().to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("graph: 1000000 commits"), "{stdout}");
    }

    #[test]
    #[ignore = "started by graph_memory"]
    fn graph_memory_child() {
        let Some(path) = std::env::var_os("GIT_RELAY_GRAPH_PACK") else {
            return;
        };
        let tip: ObjectId = std::env::var("GIT_RELAY_GRAPH_TIP")
            .unwrap()
            .parse()
            .unwrap();
        let before = vm_hwm_kib();
        let started = std::time::Instant::now();
        let file = std::fs::File::open(&path).unwrap();
        let size = file.metadata().unwrap().len();
        let read = Rc::new(Cell::new(0));
        let counting = Counting {
            inner: file,
            read: read.clone(),
        };
        let graph = read_commit_graph(counting, &[tip], u64::MAX).unwrap();
        let elapsed = started.elapsed();
        println!("read {} of the pack's {size} bytes", read.get());
        let after = vm_hwm_kib();
        let merges = (0..graph.len() as u32)
            .filter(|&c| graph.parents(c).len() == 2)
            .count();
        println!(
            "graph: {} commits, {merges} merges, heap_bytes {:.1} MiB, read in {elapsed:?}",
            graph.len(),
            graph.heap_bytes() as f64 / 1048576.0
        );
        println!(
            "VmHWM: {:.1} MiB before reading, {:.1} MiB after (peak while reading {:.1} MiB above the start)",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            (after - before) as f64 / 1024.0
        );
        // No count is asserted here (graph_memory does), so that any pack
        // can be measured: GIT_RELAY_GRAPH_PACK=<file> GIT_RELAY_GRAPH_TIP=<id>
        // <test binary> --exact protocol::graph::tests::graph_memory_child
        // --ignored --nocapture
        assert!(!graph.is_empty());
    }
}

//! A bounded cache of object bodies read from a pack, for the deltas
//! that come after them ([`BaseCache`]).
//!
//! A delta names its base by pack offset or by id, and git writes the base
//! first; a reader that needs the delta's result must still hold the base
//! when the delta arrives. Holding every body would hold the pack, so the
//! readers that resolve deltas (`super::graph` for commits,
//! `super::blobs` for small blobs) keep them here, bounded in bytes, the
//! least recently used dropped first, and say so when a base they need
//! has gone rather than guessing.

use std::collections::{BTreeMap, HashMap};

use super::ObjectId;

/// What a cached body costs besides its bytes: its allocation and its
/// entries in the cache's three maps, spare capacity included (about 290
/// bytes: the resident size with the cache full of 170-byte commits).
pub(crate) const CACHE_ENTRY_OVERHEAD: usize = 288;

/// Object bodies by where they start in the pack, each with what the
/// reader knows of it (`K`), the least recently used dropped first once
/// they pass a size in bytes.
pub(crate) struct BaseCache<K> {
    entries: HashMap<u64, Cached<K>>,
    /// Offsets by last use.
    by_use: BTreeMap<u64, u64>,
    /// Offsets by id, for deltas that name their base by id.
    by_id: HashMap<ObjectId, u64>,
    clock: u64,
    bytes: usize,
    limit: usize,
}

struct Cached<K> {
    id: ObjectId,
    kind: K,
    data: Vec<u8>,
    used: u64,
}

impl<K: Copy> BaseCache<K> {
    pub(crate) fn new(limit: usize) -> Self {
        BaseCache {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            by_id: HashMap::new(),
            clock: 0,
            bytes: 0,
            limit,
        }
    }

    /// The body starting at `offset`, if still held.
    pub(crate) fn get(&mut self, offset: u64) -> Option<(K, &[u8])> {
        let entry = self.entries.get_mut(&offset)?;
        self.by_use.remove(&entry.used);
        self.clock += 1;
        entry.used = self.clock;
        self.by_use.insert(self.clock, offset);
        Some((entry.kind, &entry.data))
    }

    /// The body of the object `id`, if still held.
    pub(crate) fn get_id(&mut self, id: &ObjectId) -> Option<(K, &[u8])> {
        let offset = *self.by_id.get(id)?;
        self.get(offset)
    }

    /// Holds the body of `id`, which starts at `offset`; one larger than
    /// the whole cache is not held.
    pub(crate) fn insert(&mut self, offset: u64, id: ObjectId, kind: K, data: Vec<u8>) {
        let cost = data.len() + CACHE_ENTRY_OVERHEAD;
        while self.bytes + cost > self.limit {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.data.len() + CACHE_ENTRY_OVERHEAD;
                if self.by_id.get(&gone.id) == Some(&oldest) {
                    self.by_id.remove(&gone.id);
                }
            }
        }
        if cost > self.limit {
            return;
        }
        self.clock += 1;
        self.by_use.insert(self.clock, offset);
        self.by_id.insert(id, offset);
        self.bytes += cost;
        let previous = self.entries.insert(
            offset,
            Cached {
                id,
                kind,
                data,
                used: self.clock,
            },
        );
        if let Some(previous) = previous {
            self.by_use.remove(&previous.used);
            self.bytes -= previous.data.len() + CACHE_ENTRY_OVERHEAD;
        }
    }
}

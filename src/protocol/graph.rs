//! STUB (replaced by the i11-graph branch): the commits of a pack as a graph.

use std::collections::HashMap;
use std::io::Read;

use super::{pack, ObjectId, ProtocolError};

/// The commits of a pack as a compact graph.
pub(crate) struct CommitGraph {
    ids: Vec<ObjectId>,
    index: HashMap<ObjectId, u32>,
    parents: Vec<Vec<u32>>,
}

impl CommitGraph {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub(crate) fn index(&self, id: &ObjectId) -> Option<u32> {
        self.index.get(id).copied()
    }
    pub(crate) fn id(&self, commit: u32) -> ObjectId {
        self.ids[commit as usize]
    }
    pub(crate) fn parents(&self, commit: u32) -> &[u32] {
        &self.parents[commit as usize]
    }
    pub(crate) fn peel(&self, id: &ObjectId) -> ObjectId {
        *id
    }
}

pub(crate) fn read_commit_graph(
    reader: impl Read,
    _tips: &[ObjectId],
    budget: u64,
) -> Result<CommitGraph, ProtocolError> {
    let parents = pack::commit_parents(reader, budget)?;
    let ids: Vec<ObjectId> = parents.keys().copied().collect();
    let index: HashMap<ObjectId, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    let parents = ids
        .iter()
        .map(|id| {
            parents[id]
                .iter()
                .filter_map(|p| index.get(p).copied())
                .collect()
        })
        .collect();
    Ok(CommitGraph {
        ids,
        index,
        parents,
    })
}

#[cfg(test)]
impl CommitGraph {
    pub(crate) fn from_edges(edges: &[(ObjectId, &[ObjectId])]) -> CommitGraph {
        let ids: Vec<ObjectId> = edges.iter().map(|e| e.0).collect();
        let index: HashMap<ObjectId, u32> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let parents = edges
            .iter()
            .map(|(_, ps)| ps.iter().filter_map(|p| index.get(p).copied()).collect())
            .collect();
        CommitGraph {
            ids,
            index,
            parents,
        }
    }
}

//! STUB (replaced by the i11-graph branch): commits in push order.

use crate::protocol::graph::CommitGraph;
use crate::protocol::ObjectId;

pub(crate) fn push_order(graph: &CommitGraph, tips: &[ObjectId]) -> Vec<u32> {
    let mut done = vec![false; graph.len()];
    let mut out = Vec::new();
    for tip in tips {
        let Some(start) = graph.index(&graph.peel(tip)) else {
            continue;
        };
        let mut stack = vec![(start, false)];
        while let Some((c, expanded)) = stack.pop() {
            if done[c as usize] {
                continue;
            }
            if expanded {
                done[c as usize] = true;
                out.push(c);
                continue;
            }
            stack.push((c, true));
            for &p in graph.parents(c).iter().rev() {
                if !done[p as usize] {
                    stack.push((p, false));
                }
            }
        }
    }
    out
}

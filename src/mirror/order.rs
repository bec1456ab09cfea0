//! The order in which commits are pushed when a history goes in batches.
//!
//! A destination that caps the size of a push gets a large history in
//! increments: each push wants a checkpoint commit and offers what the
//! destination has by then. A checkpoint is only pushable once all its
//! ancestors are, so the increments follow an order in which every commit
//! comes after its parents. Among such orders this one serves the mirror
//! best: the history of the source's default branch first (that is what a
//! user looks at, and a cut-off run leaves it furthest along), then the
//! other tips in the order given, and within each the first-parent history
//! ahead of merged side branches, so the mainline commits, the natural
//! checkpoints, come as early as their ancestry allows.
//!
//! This is a depth-first walk in post-order, parents in their order, with
//! an explicit stack: a history of a million commits in one line must not
//! overflow the thread's stack.

use crate::protocol::graph::CommitGraph;
use crate::protocol::ObjectId;

/// Where a commit stands in the walk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unseen,
    /// On the stack, its parents being walked.
    Open,
    Done,
}

/// The graph's commits in push order: every commit after all its parents
/// in the graph, the history of `tips[0]` (the source HEAD's branch)
/// first, then `tips[1..]` in order (tips not in the graph are skipped;
/// annotated tags are peeled). Iterative (a 1M-commit chain must not
/// overflow the stack). First parents before other parents, so the
/// mainline of `tips[0]` comes as early as possible. Commits that no tip
/// reaches are left out.
pub(crate) fn push_order(graph: &CommitGraph, tips: &[ObjectId]) -> Vec<u32> {
    let mut marks = vec![Mark::Unseen; graph.len()];
    let mut order = Vec::with_capacity(graph.len());
    // Each open commit, with how many of its parents have been taken.
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for tip in tips {
        let Some(tip) = graph.index(&graph.peel(tip)) else {
            continue;
        };
        if marks[tip as usize] != Mark::Unseen {
            continue;
        }
        marks[tip as usize] = Mark::Open;
        stack.push((tip, 0));
        while let Some((commit, taken)) = stack.last_mut() {
            match graph.parents(*commit).get(*taken) {
                Some(&parent) => {
                    *taken += 1;
                    // An open parent would be a cycle, which ids that are
                    // hashes of their content cannot make; it is skipped
                    // rather than walked forever.
                    if marks[parent as usize] == Mark::Unseen {
                        marks[parent as usize] = Mark::Open;
                        stack.push((parent, 0));
                    }
                }
                None => {
                    marks[*commit as usize] = Mark::Done;
                    order.push(*commit);
                    stack.pop();
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ObjectId {
        let mut raw = [0u8; 20];
        raw[..4].copy_from_slice(&n.to_be_bytes());
        raw[19] = 1;
        ObjectId::from(raw)
    }

    /// A graph of numbered commits from `(commit, parents)` pairs.
    fn graph(edges: &[(u32, &[u32])]) -> CommitGraph {
        let parents: Vec<Vec<ObjectId>> = edges
            .iter()
            .map(|(_, ps)| ps.iter().map(|&p| id(p)).collect())
            .collect();
        let edges: Vec<(ObjectId, &[ObjectId])> = edges
            .iter()
            .zip(&parents)
            .map(|((c, _), ps)| (id(*c), &ps[..]))
            .collect();
        CommitGraph::from_edges(&edges)
    }

    /// The order as commit numbers, checked to put each commit once and
    /// after its parents.
    fn order(graph: &CommitGraph, tips: &[u32]) -> Vec<u32> {
        let tips: Vec<ObjectId> = tips.iter().map(|&t| id(t)).collect();
        let order = push_order(graph, &tips);
        let mut place = vec![usize::MAX; graph.len()];
        for (i, &c) in order.iter().enumerate() {
            assert_eq!(place[c as usize], usize::MAX, "commit {c} twice");
            place[c as usize] = i;
        }
        for &c in &order {
            for &p in graph.parents(c) {
                assert!(place[p as usize] < place[c as usize], "parent after child");
            }
        }
        order
            .iter()
            .map(|&c| {
                let raw = graph.id(c);
                u32::from_be_bytes(raw.as_bytes()[..4].try_into().unwrap())
            })
            .collect()
    }

    #[test]
    fn parents_come_before_children_in_a_chain() {
        // Newest first, as a pack lists them.
        let g = graph(&[(3, &[2]), (2, &[1]), (1, &[0]), (0, &[])]);
        assert_eq!(order(&g, &[3]), [0, 1, 2, 3]);
        // A tip inside the history takes only its own ancestry.
        assert_eq!(order(&g, &[1]), [0, 1]);
    }

    #[test]
    fn the_first_tip_goes_first_then_the_others_in_order() {
        // main: 0-1-2-3, feature: 1-10-11, topic: 2-20.
        let g = graph(&[
            (11, &[10]),
            (10, &[1]),
            (20, &[2]),
            (3, &[2]),
            (2, &[1]),
            (1, &[0]),
            (0, &[]),
        ]);
        assert_eq!(order(&g, &[3, 11, 20]), [0, 1, 2, 3, 10, 11, 20]);
        assert_eq!(order(&g, &[11, 3, 20]), [0, 1, 10, 11, 2, 3, 20]);
        // Commits no tip reaches are left out.
        assert_eq!(order(&g, &[20]), [0, 1, 2, 20]);
    }

    #[test]
    fn first_parents_before_merged_side_branches() {
        // 0-1-2-4 mainline, side branch 0-5-6 merged at 3 (parents 2, 6),
        // then 4 on top; a second merge 7 of 4 and 8 (8 on 5).
        let g = graph(&[
            (7, &[4, 8]),
            (4, &[3]),
            (3, &[2, 6]),
            (8, &[5]),
            (6, &[5]),
            (5, &[0]),
            (2, &[1]),
            (1, &[0]),
            (0, &[]),
        ]);
        assert_eq!(order(&g, &[7]), [0, 1, 2, 5, 6, 3, 4, 8, 7]);
        // Parents in the other order put the side branch first.
        let g = graph(&[
            (3, &[6, 2]),
            (6, &[5]),
            (5, &[0]),
            (2, &[1]),
            (1, &[0]),
            (0, &[]),
        ]);
        assert_eq!(order(&g, &[3]), [0, 5, 6, 1, 2, 3]);
    }

    #[test]
    fn diamonds_put_each_commit_once() {
        // 0 -> 1, 2 -> 3 (merge), 3 -> 4, 5 -> 6 (merge), 6 also on 1.
        let g = graph(&[
            (6, &[4, 5, 1]),
            (5, &[3]),
            (4, &[3]),
            (3, &[1, 2]),
            (2, &[0]),
            (1, &[0]),
            (0, &[]),
        ]);
        assert_eq!(order(&g, &[6]), [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn disconnected_tips_missing_tips_and_repeated_tips() {
        let g = graph(&[(2, &[1]), (1, &[]), (11, &[10]), (10, &[]), (3, &[2, 11])]);
        assert_eq!(order(&g, &[11, 99, 2, 11]), [10, 11, 1, 2]);
        assert_eq!(order(&g, &[99]), Vec::<u32>::new());
        assert_eq!(order(&g, &[3]), [1, 2, 10, 11, 3]);
        // Parents outside the graph (history the destination has) are not
        // in it, so a commit on one is a root here.
        let g = graph(&[(2, &[1]), (1, &[77])]);
        assert_eq!(order(&g, &[2]), [1, 2]);
    }

    #[test]
    fn a_cycle_is_walked_once_not_forever() {
        let g = graph(&[(1, &[2]), (2, &[1])]);
        let tips = [id(1)];
        assert_eq!(push_order(&g, &tips).len(), 2);
    }

    #[test]
    fn a_chain_of_a_million_commits_does_not_overflow_the_stack() {
        const N: u32 = 1_000_000;
        let ids: Vec<ObjectId> = (0..N).map(id).collect();
        let parents: Vec<[ObjectId; 1]> = (0..N).map(|i| [id(i.wrapping_sub(1))]).collect();
        let edges: Vec<(ObjectId, &[ObjectId])> = (0..N as usize)
            .rev()
            .map(|i| (ids[i], if i == 0 { &[][..] } else { &parents[i][..] }))
            .collect();
        let g = CommitGraph::from_edges(&edges);
        let order = push_order(&g, &[ids[N as usize - 1]]);
        assert_eq!(order.len(), N as usize);
        assert_eq!(g.id(order[0]), ids[0]);
        assert_eq!(g.id(order[N as usize - 1]), ids[N as usize - 1]);
    }
}

//! What a mirror would change, ref by ref.
//!
//! The plan compares the selected refs of both sides by name only; whether
//! an update would destroy history is decided later, when negotiation has
//! told us which destination tips the source knows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::select::RefSelection;
use crate::protocol::advertisement::Ref;
use crate::protocol::ObjectId;

/// What happens to one destination ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// The source has it, the destination does not.
    Create,
    /// Both have it, at different objects.
    Update,
    /// An update whose new value does not descend from the old one: the
    /// source rewound or rewrote the ref, and the commits only the old tip
    /// reached leave the destination's ref. Decided after negotiation
    /// (the plan itself says `Update`).
    Rewrite,
    /// Only the destination has it (and pruning is on).
    Delete,
}

/// One ref that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RefChange {
    /// Full ref name.
    pub(crate) name: String,
    /// The destination's current value, if the ref exists there.
    pub(crate) old: Option<ObjectId>,
    /// The source's value, if the ref exists there.
    pub(crate) new: Option<ObjectId>,
    /// What to do.
    pub(crate) action: Action,
}

/// Every difference between the selected refs of both sides.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    /// Refs to create, update or delete, sorted by name.
    pub(crate) changes: Vec<RefChange>,
    /// Selected refs already equal on both sides.
    pub(crate) unchanged: usize,
    /// Destination-only refs left alone because of `--no-prune`.
    pub(crate) kept: usize,
}

impl Plan {
    /// Compares the two ref lists.
    pub(crate) fn new(
        source: &[Ref],
        destination: &[Ref],
        selection: &RefSelection,
        prune: bool,
    ) -> Plan {
        let pick = |refs: &[Ref]| -> BTreeMap<String, ObjectId> {
            refs.iter()
                .filter(|r| selection.selects(&r.name))
                .map(|r| (r.name.clone(), r.oid))
                .collect()
        };
        let src = pick(source);
        let dst = pick(destination);
        let mut plan = Plan::default();
        for (name, &new) in &src {
            match dst.get(name) {
                Some(&old) if old == new => plan.unchanged += 1,
                Some(&old) => plan.changes.push(RefChange {
                    name: name.clone(),
                    old: Some(old),
                    new: Some(new),
                    action: Action::Update,
                }),
                None => plan.changes.push(RefChange {
                    name: name.clone(),
                    old: None,
                    new: Some(new),
                    action: Action::Create,
                }),
            }
        }
        for (name, &old) in &dst {
            if src.contains_key(name) {
                continue;
            }
            if prune {
                plan.changes.push(RefChange {
                    name: name.clone(),
                    old: Some(old),
                    new: None,
                    action: Action::Delete,
                });
            } else {
                plan.kept += 1;
            }
        }
        plan.changes.sort_by(|a, b| a.name.cmp(&b.name));
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, byte: u8) -> Ref {
        let hex = format!("{byte:02x}").repeat(20);
        Ref {
            name: name.into(),
            oid: ObjectId::from_hex(hex.as_bytes()).unwrap(),
            peeled: None,
            symref_target: None,
        }
    }

    #[test]
    fn creates_updates_deletes_and_leaves_the_rest() {
        let src = [
            r("refs/heads/a", 1),
            r("refs/heads/b", 2),
            r("refs/heads/c", 3),
            r("refs/pull/1/head", 9),
        ];
        let dst = [
            r("refs/heads/b", 2),
            r("refs/heads/c", 4),
            r("refs/heads/d", 5),
        ];
        let plan = Plan::new(&src, &dst, &RefSelection::default(), true);
        let actions: Vec<_> = plan
            .changes
            .iter()
            .map(|c| (c.name.as_str(), c.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("refs/heads/a", Action::Create),
                ("refs/heads/c", Action::Update),
                ("refs/heads/d", Action::Delete)
            ]
        );
        assert_eq!(plan.unchanged, 1);
        let plan = Plan::new(&src, &dst, &RefSelection::default(), false);
        assert_eq!(plan.changes.len(), 2);
        assert_eq!(plan.kept, 1);
    }
}

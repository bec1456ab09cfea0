//! The outcome of a run, for people and for programs.
//!
//! One [`Report`] value is built by the engine; it is rendered as text on
//! stderr (the plan while it runs, a summary at the end) or serialized as
//! JSON on stdout for `--json`. Callers such as the Azure Pipelines task
//! read the same value, so every surface agrees on what happened.

use std::time::Duration;

use serde::Serialize;

use super::lfs::LfsSummary;
use super::plan::Action;
use crate::error::ExitCode;
use crate::output::{counted, human_bytes, human_duration};

/// What became of one ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The destination accepted the change.
    Ok,
    /// Planned only (`status`, `--dry-run`).
    Planned,
    /// Not done because it would destroy destination-only history.
    Protected,
    /// The destination refused it.
    Rejected,
    /// It did not happen for another reason (the push failed as a whole).
    Failed,
}

/// One ref in the report.
#[derive(Clone, Debug, Serialize)]
pub struct RefReport {
    /// Full ref name.
    pub(crate) name: String,
    /// The destination's value before the run.
    pub(crate) old: Option<String>,
    /// The source's value.
    pub(crate) new: Option<String>,
    /// What was planned.
    pub(crate) action: Action,
    /// What became of it.
    pub result: Outcome,
    /// Why, when it did not simply succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// Counts of each outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Refs created.
    pub(crate) created: usize,
    /// Refs updated (fast-forward or not).
    pub(crate) updated: usize,
    /// Of those, refs whose history was rewritten: the old tip is not in
    /// the new history.
    pub(crate) rewritten: usize,
    /// Refs deleted.
    pub(crate) deleted: usize,
    /// Refs already equal.
    pub(crate) unchanged: usize,
    /// Destination-only refs kept by `--no-prune`.
    pub(crate) kept: usize,
    /// Changes planned but not made (`status`, `--dry-run`).
    pub(crate) planned: usize,
    /// Refs protected by the divergence rule.
    pub protected: usize,
    /// Refs the destination rejected.
    pub(crate) rejected: usize,
    /// Refs that failed otherwise.
    pub(crate) failed: usize,
}

/// The whole outcome of a `mirror` or `status` run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `mirror`, `dry-run` or `status`.
    pub(crate) mode: &'static str,
    /// The source, without credentials.
    pub(crate) source: String,
    /// The destination, without credentials.
    pub(crate) destination: String,
    /// The protocol spoken with the source (`v2` or `v0`).
    pub(crate) source_protocol: String,
    /// Every ref that differed, in name order.
    pub refs: Vec<RefReport>,
    /// Counts.
    pub totals: Totals,
    /// Pack bytes received from the source and relayed.
    pub(crate) pack_bytes: u64,
    /// Total bytes of the push request sent to the destination.
    pub(crate) bytes_sent: u64,
    /// Pushes made to the destination (receive-pack requests with commands).
    pub(crate) pushes: u32,
    /// Whether the history went in increments under a push budget.
    pub(crate) batched: bool,
    /// Wall time in milliseconds.
    pub(crate) duration_ms: u64,
    /// Whether the destination now matches the selected refs of the source.
    pub(crate) in_sync: bool,
    /// Git LFS objects, when the history sent holds pointers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lfs: Option<LfsSummary>,
}

impl Report {
    /// The exit code this outcome calls for: success when the destination
    /// matches (or already matched), `Differs` when refs still differ.
    pub fn exit_code(&self) -> ExitCode {
        if self.in_sync {
            ExitCode::Success
        } else {
            ExitCode::Differs
        }
    }

    pub(crate) fn tally(&mut self) {
        let mut t = Totals {
            unchanged: self.totals.unchanged,
            kept: self.totals.kept,
            ..Totals::default()
        };
        for r in &self.refs {
            match (r.result, r.action) {
                (Outcome::Ok, Action::Create) => t.created += 1,
                (Outcome::Ok, Action::Update) => t.updated += 1,
                (Outcome::Ok, Action::Rewrite) => {
                    t.updated += 1;
                    t.rewritten += 1;
                }
                (Outcome::Ok, Action::Delete) => t.deleted += 1,
                (Outcome::Planned, _) => t.planned += 1,
                (Outcome::Protected, _) => t.protected += 1,
                (Outcome::Rejected, _) => t.rejected += 1,
                (Outcome::Failed, _) => t.failed += 1,
            }
        }
        self.totals = t;
        self.in_sync = self.refs.iter().all(|r| r.result == Outcome::Ok)
            && self.lfs.as_ref().is_none_or(LfsSummary::complete);
    }

    /// The lines for LFS objects that did not arrive, after the refs'.
    pub fn lfs_lines(&self) -> Vec<String> {
        self.lfs
            .as_ref()
            .map(LfsSummary::problem_lines)
            .unwrap_or_default()
    }

    /// The JSON document `--json` prints.
    pub fn to_json(&self) -> String {
        crate::auth::redacted_json(self)
    }

    /// One line per differing ref, as the plan is shown before and after.
    pub fn ref_lines(&self) -> Vec<String> {
        let width = self.refs.iter().map(|r| r.name.len()).max().unwrap_or(0);
        self.refs
            .iter()
            .map(|r| {
                let sign = match (r.result, r.action) {
                    (Outcome::Protected, _) => '!',
                    (Outcome::Rejected | Outcome::Failed, _) => 'x',
                    (_, Action::Create) => '+',
                    (_, Action::Update | Action::Rewrite) => '~',
                    (_, Action::Delete) => '-',
                };
                let short = |o: &Option<String>| {
                    o.as_deref()
                        .map(|s| &s[..s.len().min(12)])
                        .unwrap_or("(none)")
                        .to_owned()
                };
                let change = match r.action {
                    Action::Create => format!("new {}", short(&r.new)),
                    Action::Update => format!("{}..{}", short(&r.old), short(&r.new)),
                    // Three dots, as git shows a forced update.
                    Action::Rewrite => format!(
                        "{}...{} (rewritten: the old tip is not in the new history)",
                        short(&r.old),
                        short(&r.new)
                    ),
                    Action::Delete => format!("delete {}", short(&r.old)),
                };
                let mut line = format!("  {sign} {:width$}  {change}", r.name);
                if r.result != Outcome::Ok && r.result != Outcome::Planned {
                    line.push_str(&format!("  [{}]", outcome_word(r.result)));
                }
                if let Some(reason) = &r.reason {
                    line.push_str(&format!(": {reason}"));
                }
                line
            })
            .collect()
    }

    /// The closing summary line.
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let took = human_duration(Duration::from_millis(self.duration_ms));
        if self.refs.is_empty() {
            return format!(
                "in sync: {} already match{} ({took})",
                plural(t.unchanged, "ref"),
                if t.unchanged == 1 { "es" } else { "" }
            );
        }
        let parts = counted(&[
            (t.created, "created"),
            (t.updated, "updated"),
            (t.rewritten, "of them rewritten"),
            (t.deleted, "deleted"),
            (t.planned, "to change"),
            (t.protected, "protected"),
            (t.rejected, "rejected"),
            (t.failed, "failed"),
            (t.unchanged, "unchanged"),
            (t.kept, "kept (--no-prune)"),
        ]);
        let mut moved = if self.pack_bytes > 0 {
            format!(", relayed {} of pack", human_bytes(self.pack_bytes))
        } else {
            String::new()
        };
        if self.pushes > 1 {
            moved.push_str(&format!(
                " in {} pushes{}",
                self.pushes,
                if self.batched { " (batched)" } else { "" }
            ));
        }
        if let Some(lfs) = &self.lfs {
            let verb = if self.mode == "mirror" {
                "moved"
            } else {
                "to move"
            };
            moved.push_str(&format!(
                ", {} LFS object{} ({}) {verb}",
                lfs.moved,
                if lfs.moved == 1 { "" } else { "s" },
                human_bytes(lfs.bytes)
            ));
            let problems = counted(&[
                (lfs.missing.len(), "missing at the source"),
                (lfs.failed.len(), "not moved"),
            ]);
            if !problems.is_empty() {
                moved.push_str(&format!("; LFS objects {}", problems.join(", ")));
            }
        }
        let state = if self.in_sync {
            "done"
        } else if self.mode == "mirror" {
            "finished with differences"
        } else {
            "differences"
        };
        format!("{state}: {} in {took}{moved}", parts.join(", "))
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Planned => "planned",
        Outcome::Protected => "protected",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
    }
}

//! The end of a sweep: a table for people, a JSON document for programs,
//! and the exit code.

use std::time::Duration;

use serde::Serialize;

use super::fleet::{RepoOutcome, State};
use crate::error::ExitCode;
use crate::output::{counted, human_bytes, human_duration};

/// Counts over all repositories.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Counts {
    /// Repositories listed (after --filter, --skip and --shard).
    pub(crate) repositories: usize,
    /// Already matching.
    pub(crate) in_sync: usize,
    /// Changed and now matching.
    pub(crate) updated: usize,
    /// Still differing (dry run, protected or rejected refs).
    pub(crate) differs: usize,
    /// Missing destinations a dry run would create.
    pub(crate) would_create: usize,
    /// Could not be mirrored.
    pub(crate) failed: usize,
    /// Skipped on purpose.
    pub(crate) skipped: usize,
    /// Destinations created by this run.
    pub(crate) created: usize,
    /// Repositories with a warning (they count as mirrored).
    pub(crate) warned: usize,
}

/// A whole sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `mirror` or `dry-run`.
    pub(crate) mode: &'static str,
    /// The source scope URL.
    pub(crate) scope: String,
    /// `K/N` when sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shard: Option<String>,
    /// Counts.
    pub(crate) totals: Counts,
    /// Every repository, in name order.
    pub(crate) repositories: Vec<RepoOutcome>,
    /// Wall time of the sweep, discovery included.
    pub(crate) duration_ms: u64,
}

impl Summary {
    /// Gathers the outcomes.
    pub(crate) fn new(
        mode: &'static str,
        scope: String,
        shard: Option<String>,
        repositories: Vec<RepoOutcome>,
        duration: Duration,
    ) -> Summary {
        let mut t = Counts {
            repositories: repositories.len(),
            ..Counts::default()
        };
        for r in &repositories {
            match r.result {
                State::InSync => t.in_sync += 1,
                State::Updated => t.updated += 1,
                State::Differs => t.differs += 1,
                State::WouldCreate => t.would_create += 1,
                State::Failed => t.failed += 1,
                State::Skipped => t.skipped += 1,
            }
            t.created += usize::from(r.created);
            t.warned += usize::from(!r.warnings.is_empty());
        }
        Summary {
            mode,
            scope,
            shard,
            totals: t,
            repositories,
            duration_ms: duration.as_millis() as u64,
        }
    }

    /// Success when every repository matches (skipped ones aside),
    /// `Failed` when any failed, `Differs` when any still differs.
    pub fn exit_code(&self) -> ExitCode {
        let t = &self.totals;
        if t.failed > 0 {
            ExitCode::Failed
        } else if t.differs + t.would_create > 0 {
            ExitCode::Differs
        } else {
            ExitCode::Success
        }
    }

    /// The JSON document of `--json`.
    pub fn to_json(&self) -> String {
        crate::auth::redacted_json(self)
    }

    /// The closing table, one line per repository, then a totals line. An
    /// "LFS" column (objects moved, and their bytes) appears when any
    /// repository moved LFS objects.
    pub fn table(&self) -> Vec<String> {
        let lfs = self.repositories.iter().any(|r| r.lfs().is_some());
        let rows: Vec<Vec<String>> = self
            .repositories
            .iter()
            .map(|r| {
                let result = match r.result {
                    State::InSync => "in sync".to_owned(),
                    State::Updated if r.created => "created".to_owned(),
                    State::Updated => "updated".to_owned(),
                    State::Differs => differs(r),
                    State::WouldCreate => "would create".to_owned(),
                    State::Failed => "FAILED".to_owned(),
                    State::Skipped => format!("skipped: {}", r.reason.as_deref().unwrap_or("")),
                };
                let ran = !matches!(r.result, State::Skipped | State::WouldCreate);
                let shown = |value: String| if ran { value } else { "-".into() };
                let mut row = vec![
                    r.name.clone(),
                    shown(r.refs_changed().to_string()),
                    shown(human_bytes(r.bytes())),
                ];
                if lfs {
                    row.push(match r.lfs() {
                        Some(l) => format!("{} ({})", l.moved, human_bytes(l.bytes)),
                        None => "-".into(),
                    });
                }
                row.push(shown(human_duration(Duration::from_millis(r.duration_ms))));
                row.push(result);
                row
            })
            .collect();
        let mut header = vec!["repository", "refs changed", "bytes"];
        if lfs {
            header.push("LFS");
        }
        header.extend(["time", "result"]);
        let header: Vec<String> = header.into_iter().map(String::from).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // The name left-aligned, the figures right-aligned, the result as
        // it comes.
        let line = |row: &Vec<String>| {
            let pad = |s: &str, w: usize| " ".repeat(w.saturating_sub(s.chars().count()));
            let last = row.len() - 1;
            let mut text = format!("{}{}", row[0], pad(&row[0], widths[0]));
            for (cell, &width) in row[1..last].iter().zip(&widths[1..last]) {
                text.push_str(&format!("  {}{cell}", pad(cell, width)));
            }
            text.push_str(&format!("  {}", row[last]));
            text.trim_end().to_owned()
        };
        let mut out = vec![line(&header)];
        out.extend(rows.iter().map(line));
        out.push(self.totals_line());
        // Failures and warnings again at the very end, where a long CI log
        // is read first.
        for r in self
            .repositories
            .iter()
            .filter(|r| r.result == State::Failed)
        {
            out.push(format!(
                "  failed: {}: {}",
                r.name,
                r.reason.as_deref().unwrap_or("unknown error")
            ));
        }
        for r in &self.repositories {
            for warning in &r.warnings {
                out.push(format!("  warning: {}: {warning}", r.name));
            }
        }
        out
    }

    fn totals_line(&self) -> String {
        let t = &self.totals;
        let mut parts = vec![format!("{} repositories", t.repositories)];
        parts.extend(counted(&[
            (t.in_sync, "in sync"),
            (t.updated, "updated"),
            (t.created, "created"),
            (t.differs, "differ"),
            (t.would_create, "to create"),
            (t.failed, "failed"),
            (t.skipped, "skipped"),
            (t.warned, "with warnings"),
        ]));
        format!(
            "{} in {}",
            parts.join(", "),
            human_duration(Duration::from_millis(self.duration_ms))
        )
    }
}

fn differs(r: &RepoOutcome) -> String {
    let Some(t) = r.report.as_ref().map(|r| &r.totals) else {
        return "differs".into();
    };
    let parts = counted(&[
        (t.planned, "to change"),
        (t.protected, "protected"),
        (t.rejected, "rejected"),
        (t.failed, "failed"),
    ]);
    format!("differs ({})", parts.join(", "))
}

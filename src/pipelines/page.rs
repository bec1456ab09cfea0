//! The markdown shown on the pipeline run's summary page.
//!
//! The agent attaches the file to the run (`task.addattachment`, as the
//! run page's "git-relay" section), where people look first when a mirror
//! misbehaves; so it carries the outcome, the totals and a table of every
//! ref that differed (old, new, action, result and why). The JSON report holds the same data for
//! programs. In organization mode the table has a row per repository
//! instead (repository, refs changed, bytes, time, result).
//! Text from servers (rejection reasons) is escaped so it cannot
//! break the table or inject markup, and everything is redacted.

use std::fmt::Write as _;
use std::time::Duration;

use crate::auth;
use crate::error::Failure;
use crate::mirror::{Options, Outcome, Report, SideError};
use crate::output::{human_bytes, human_duration};
use crate::sweep::fleet::{self, State};

/// A report's one-line summary without the state it opens with ("finished
/// with differences: ..."), which the line's own heading already says.
pub(crate) fn without_state(summary: &str) -> &str {
    const STATES: &[&str] = &[
        "done",
        "finished with differences",
        "differences",
        "in sync",
    ];
    match summary.split_once(": ") {
        Some((state, rest)) if STATES.contains(&state) => rest,
        _ => summary,
    }
}

/// Rows shown before the table is cut short; the JSON report has them all.
const MAX_ROWS: usize = 500;

/// The summary of a run that finished (with or without differences);
/// `failed` when its differences failed the task (input `failOn`), so
/// that the page and the task's result agree.
pub(crate) fn report(report: &Report, failed: bool) -> String {
    let mut md = heading(report.mode, &report.source, &report.destination);
    let state = if report.totals.failed > 0 || failed {
        "❌ **Failed**"
    } else if report.totals.protected > 0 || report.totals.rejected > 0 {
        "⚠️ **Finished with differences**"
    } else if report.in_sync {
        "✅ **In sync**"
    } else {
        "ℹ️ **Differences found** (nothing changed)"
    };
    let _ = writeln!(md, "{state}: {}\n", cell(without_state(&report.summary())));
    let t = &report.totals;
    let _ = writeln!(
        md,
        "| created | updated | deleted | unchanged | kept | planned | protected | rejected | failed | pack | time |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        t.created,
        t.updated,
        t.deleted,
        t.unchanged,
        t.kept,
        t.planned,
        t.protected,
        t.rejected,
        t.failed,
        human_bytes(report.pack_bytes),
        human_duration(Duration::from_millis(report.duration_ms)),
    );
    if let Some(lfs) = &report.lfs {
        let _ = writeln!(
            md,
            "**Git LFS**: {} of {} objects moved ({}), {} already there.\n",
            lfs.moved,
            lfs.objects,
            human_bytes(lfs.bytes),
            lfs.present
        );
        for line in lfs.problem_lines() {
            let _ = writeln!(md, "- {}", cell(line.trim_start_matches([' ', 'x'])));
        }
        if !lfs.complete() {
            md.push('\n');
        }
    }
    if report.refs.is_empty() {
        md.push_str("No ref differed.\n");
    } else {
        md.push_str("| Ref | Old | New | Action | Result |\n|---|---|---|---|---|\n");
        for r in report.refs.iter().take(MAX_ROWS) {
            let action = serde_json::to_value(r.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut result = outcome(r.result).to_owned();
            if let Some(reason) = &r.reason {
                result.push_str(": ");
                result.push_str(&cell(reason));
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {action} | {result} |",
                code(&r.name),
                oid(r.old.as_deref()),
                oid(r.new.as_deref()),
            );
        }
        more_rows(&mut md, report.refs.len(), "refs");
    }
    auth::redact(&md).into_owned()
}

/// The summary of a run that stopped on an error.
pub(crate) fn failure(mode: &str, options: &Options, err: &SideError) -> String {
    let (source, destination) = (&options.source.location, &options.destination.location);
    let mut md = heading(mode, &source.to_string(), &destination.to_string());
    let _ = writeln!(
        md,
        "❌ **Failed** on the {}: {}\n",
        err.side,
        cell(&err.cause.to_string())
    );
    if let Some(hint) = err.hint() {
        let _ = writeln!(md, "Hint: {}\n", cell(hint));
    }
    md.push_str("No ref was changed by a failed push: the destination applies a push whole or not at all.\n");
    auth::redact(&md).into_owned()
}

/// The summary of an organization sweep: the outcome, the counts and a
/// row per repository.
pub(crate) fn organization(summary: &crate::sweep::Summary) -> String {
    let t = &summary.totals;
    let mut md = format!(
        "### git-relay {} of {}{}\n\n",
        summary.mode,
        code(&summary.scope),
        summary
            .shard
            .as_ref()
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default()
    );
    let differing = summary.repositories.iter().any(|r| {
        r.report
            .as_ref()
            .is_some_and(|r| r.totals.protected + r.totals.rejected > 0)
    });
    // A repository some of whose refs failed counts as failed, as it does
    // for the task's result.
    let refs_failed = summary
        .repositories
        .iter()
        .any(|r| r.report.as_ref().is_some_and(|r| r.totals.failed > 0));
    let state = if t.failed > 0 || refs_failed {
        "❌ **Failed**: some repositories could not be mirrored"
    } else if differing {
        "⚠️ **Finished with differences**"
    } else if t.differs + t.would_create > 0 {
        "ℹ️ **Differences found** (nothing changed)"
    } else {
        "✅ **In sync**"
    };
    let _ = writeln!(md, "{state}\n");
    let _ = writeln!(
        md,
        "| repositories | in sync | updated | created | differ | failed | skipped | time |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        t.repositories,
        t.in_sync,
        t.updated,
        t.created,
        t.differs + t.would_create,
        t.failed,
        t.skipped,
        human_duration(Duration::from_millis(summary.duration_ms)),
    );
    if summary.repositories.is_empty() {
        md.push_str("No repository was selected.\n");
        return auth::redact(&md).into_owned();
    }
    md.push_str(
        "| Repository | Refs changed | Bytes | Time | Result |\n|---|---:|---:|---:|---|\n",
    );
    for r in summary.repositories.iter().take(MAX_ROWS) {
        let ran = !matches!(r.result, State::Skipped | State::WouldCreate);
        let shown = |value: String| if ran { value } else { "–".to_owned() };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            code(&r.name),
            shown(r.refs_changed().to_string()),
            shown(human_bytes(r.bytes())),
            shown(human_duration(Duration::from_millis(r.duration_ms))),
            repository_result(r),
        );
    }
    more_rows(&mut md, summary.repositories.len(), "repositories");
    auth::redact(&md).into_owned()
}

/// Points to the JSON report for the rows of a table of `total` that
/// were left out.
fn more_rows(md: &mut String, total: usize, what: &str) {
    if total > MAX_ROWS {
        let left_out = total - MAX_ROWS;
        let _ = writeln!(md, "\n… and {left_out} more {what}: see the JSON report.");
    }
}

fn repository_result(r: &fleet::RepoOutcome) -> String {
    let mut result = repository_state(r);
    for warning in &r.warnings {
        result.push_str(&format!("; ⚠️ {}", cell(warning)));
    }
    result
}

fn repository_state(r: &fleet::RepoOutcome) -> String {
    let reason = r.reason.as_deref().map(cell);
    let totals = r.report.as_ref().map(|r| &r.totals);
    match r.result {
        State::InSync => "✅ in sync".to_owned(),
        State::Updated if r.created => "✅ created".to_owned(),
        State::Updated => "✅ updated".to_owned(),
        State::WouldCreate => "ℹ️ would be created".to_owned(),
        State::Skipped => format!("skipped: {}", reason.unwrap_or_default()),
        State::Failed => format!("❌ failed: {}", reason.unwrap_or_default()),
        State::Differs => match totals {
            Some(t) if t.failed > 0 => format!("❌ {} ref(s) failed", t.failed),
            Some(t) if t.protected + t.rejected > 0 => {
                format!("⚠️ {} protected, {} rejected", t.protected, t.rejected)
            }
            Some(t) => format!("ℹ️ {} to change", t.planned),
            None => "differs".to_owned(),
        },
    }
}

/// The summary of a sweep that stopped before mirroring (discovery failed).
pub(crate) fn organization_failure(scope: &str, failure: &Failure) -> String {
    let mut md = format!("### git-relay organization mode: {}\n\n", code(scope));
    let _ = writeln!(md, "❌ **Failed**: {}\n", cell(&failure.message));
    if let Some(hint) = &failure.hint {
        let _ = writeln!(md, "Hint: {}\n", cell(hint));
    }
    md.push_str("No repository was mirrored.\n");
    auth::redact(&md).into_owned()
}

fn heading(mode: &str, source: &str, destination: &str) -> String {
    format!(
        "### git-relay {mode}: {} → {}\n\n",
        code(source),
        code(destination)
    )
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Planned => "planned",
        Outcome::Protected => "⚠️ protected",
        Outcome::Rejected => "❌ rejected",
        Outcome::Failed => "❌ failed",
    }
}

fn oid(o: Option<&str>) -> String {
    match o {
        Some(o) => code(&o[..o.len().min(12)]),
        None => "–".to_owned(),
    }
}

/// Text made safe for a table cell: one line, no column breaks, no HTML;
/// redacted first, since an escaped secret no longer looks like itself.
fn cell(text: &str) -> String {
    auth::redact(text)
        .replace(['\r', '\n'], " ")
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

/// Text as an inline code span; a backtick inside (git allows one in ref
/// names) falls back to escaped plain text.
fn code(text: &str) -> String {
    if text.contains('`') {
        cell(text).replace('`', "\\`")
    } else {
        let text = auth::redact(text);
        format!("`{}`", text.replace(['\r', '\n'], " ").replace('|', "\\|"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{Action, RefReport, Totals};

    fn sample() -> Report {
        Report {
            mode: "mirror",
            source: "https://src.example/r".to_owned(),
            destination: "https://dst.example/r".to_owned(),
            source_protocol: "v2".to_owned(),
            refs: vec![
                RefReport {
                    name: "refs/heads/main".to_owned(),
                    old: Some("1".repeat(40)),
                    new: Some("2".repeat(40)),
                    action: Action::Update,
                    result: Outcome::Ok,
                    reason: None,
                },
                RefReport {
                    name: "refs/heads/x".to_owned(),
                    old: None,
                    new: Some("3".repeat(40)),
                    action: Action::Create,
                    result: Outcome::Rejected,
                    reason: Some("hook | <b>declined</b>\nsecond line".to_owned()),
                },
            ],
            totals: Totals {
                updated: 1,
                rejected: 1,
                ..Totals::default()
            },
            pack_bytes: 2048,
            bytes_sent: 2048,
            pushes: 1,
            batched: false,
            duration_ms: 1500,
            in_sync: false,
            lfs: None,
        }
    }

    #[test]
    fn table_has_a_row_per_ref() {
        let md = report(&sample(), false);
        assert!(
            md.contains("| `refs/heads/main` | `111111111111` | `222222222222` | update | ok |"),
            "{md}"
        );
        assert!(md.contains("| `refs/heads/x` | – | `333333333333` | create | ❌ rejected: hook \\| &lt;b&gt;declined&lt;/b&gt; second line |"), "{md}");
        assert!(md.contains("Finished with differences"));
    }

    #[test]
    fn the_first_line_says_its_state_once() {
        let md = report(&sample(), false);
        let first = md
            .lines()
            .find(|l| l.contains("**Finished with differences**"))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(
            first.starts_with("⚠️ **Finished with differences**: 1 updated, 1 rejected"),
            "{first}"
        );
        assert!(
            !first.to_lowercase()[10..].contains("finished with differences"),
            "{first}"
        );
        assert_eq!(
            without_state("in sync: 3 refs already match (1s)"),
            "3 refs already match (1s)"
        );
        assert_eq!(without_state("no state here"), "no state here");
    }

    #[test]
    fn a_repository_warning_follows_its_result() {
        let outcome = fleet::RepoOutcome {
            name: "acme/a".to_owned(),
            source: "https://src.example/acme/a".to_owned(),
            destination: "https://dst.example/acme/a".to_owned(),
            result: State::Updated,
            created: true,
            reason: None,
            hint: None,
            warnings: vec!["the default branch could not be set | HTTP 403".to_owned()],
            report: Some(sample()),
            duration_ms: 10,
            ended: None,
        };
        assert_eq!(
            repository_result(&outcome),
            "✅ created; ⚠️ the default branch could not be set \\| HTTP 403"
        );
    }

    #[test]
    fn backticks_in_names_do_not_break_code_spans() {
        assert_eq!(code("refs/heads/a`b"), "refs/heads/a\\`b");
        assert_eq!(code("refs/heads/a|b"), "`refs/heads/a\\|b`");
    }
}

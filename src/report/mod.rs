//! Report files for the systems that watch mirrors: a JUnit XML file
//! (`--junit`, one test case per repository, for a CI's test tab) and a
//! Prometheus text file (`--metrics`, for node-exporter's textfile
//! collector).
//!
//! Both are rendered from one `Run`, built from what `mirror` or
//! `mirror-all` knows when it ends, however it ends: a run that stops
//! midway still writes what it learnt, so that a dashboard shows the
//! failure instead of the last good run. The renderers (`junit`,
//! `metrics`) are pure functions of that value; this module builds it and
//! writes the files, each through a temporary file and a rename so that
//! a reader (the textfile collector scrapes at any moment) never sees
//! half a file. Every byte written passes the redactor first.

pub(crate) mod junit;
pub(crate) mod metrics;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::SweepConfig;
use crate::error::{ExitCode, Failure};
use crate::mirror::{Mode, Options, Outcome, Report};
use crate::output;
use crate::sweep::fleet::{RepoOutcome, State};
use crate::sweep::Summary;

/// One run, as the report files see it.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// `mirror`, `status` or `mirror-all`.
    pub(crate) command: &'static str,
    /// What the run covered: the source scope of a sweep, the source of a
    /// single mirror. Printable (no credentials).
    pub(crate) scope: String,
    /// `K/N` when a sweep took one share of the repositories.
    pub(crate) shard: Option<String>,
    /// When the run started.
    pub(crate) started: SystemTime,
    /// Wall time of the whole run.
    pub(crate) duration: Duration,
    /// One per repository, in the order reported.
    pub(crate) cases: Vec<Case>,
    /// Why the run stopped outside any one repository (discovery failed,
    /// say); its repositories are then unknown.
    pub(crate) stopped: Option<String>,
    /// Whether the run ended with exit code 0.
    pub(crate) success: bool,
}

/// One repository of a run.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    /// `project/repo` in a sweep; the source in a single mirror.
    pub(crate) name: String,
    /// Source, printable.
    pub(crate) source: String,
    /// Destination, printable.
    pub(crate) destination: String,
    /// `in-sync`, `updated`, `differs`, `would-create`, `failed` or
    /// `skipped`, as in the JSON report.
    pub(crate) result: &'static str,
    /// What needs attention, when anything does.
    pub(crate) problem: Option<Problem>,
    /// Why it was skipped.
    pub(crate) skipped: Option<String>,
    /// The one-line summary of what happened.
    pub(crate) summary: String,
    /// Refs changed (or, in a dry run, to change).
    pub(crate) refs_changed: u64,
    /// Pack bytes relayed.
    pub(crate) bytes: u64,
    /// LFS objects moved, and their bytes.
    pub(crate) lfs_objects: u64,
    pub(crate) lfs_bytes: u64,
    /// Wall time of this repository.
    pub(crate) duration: Duration,
    /// When it ended.
    pub(crate) ended: SystemTime,
}

/// Why a repository needs attention: the worst kind, a one-line message,
/// and the details (a line per ref or object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// `failed`, `rejected`, `protected` or `lfs`.
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) details: Vec<String>,
}

/// The name the JSON report gives a state.
fn state_name(state: State) -> &'static str {
    match state {
        State::InSync => "in-sync",
        State::Updated => "updated",
        State::Differs => "differs",
        State::WouldCreate => "would-create",
        State::Failed => "failed",
        State::Skipped => "skipped",
    }
}

/// The result names, in the order the metrics list them.
pub(crate) const RESULTS: &[&str] = &[
    "in-sync",
    "updated",
    "differs",
    "would-create",
    "failed",
    "skipped",
];

/// What in a finished mirror needs attention: refs that failed, were
/// rejected or protected, and LFS objects that did not arrive. Refs only
/// planned (a dry run) are news, not trouble.
fn report_problem(report: &Report) -> Option<Problem> {
    let t = &report.totals;
    let mut details: Vec<String> = report
        .refs
        .iter()
        .filter(|r| !matches!(r.result, Outcome::Ok | Outcome::Planned))
        .map(|r| {
            let word = match r.result {
                Outcome::Protected => "protected",
                Outcome::Rejected => "rejected",
                _ => "failed",
            };
            format!(
                "{} {word}: {}",
                r.name,
                r.reason.as_deref().unwrap_or("no reason given")
            )
        })
        .collect();
    details.extend(report.lfs_lines().iter().map(|l| l.trim().to_owned()));
    let lfs_problems = report
        .lfs
        .as_ref()
        .map_or(0, |l| l.missing.len() + l.failed.len());
    let kind = if t.failed > 0 {
        "failed"
    } else if t.rejected > 0 {
        "rejected"
    } else if t.protected > 0 {
        "protected"
    } else if lfs_problems > 0 {
        "lfs"
    } else {
        return None;
    };
    let parts = crate::output::counted(&[
        (t.failed, "ref(s) failed"),
        (t.rejected, "ref(s) rejected by the destination"),
        (
            t.protected,
            "ref(s) protected (the destination has commits the source does not)",
        ),
        (lfs_problems, "LFS object(s) not mirrored"),
    ]);
    Some(Problem {
        kind,
        message: parts.join(", "),
        details,
    })
}

fn failure_problem(message: &str, hint: Option<&str>) -> Problem {
    Problem {
        kind: "failed",
        message: message.to_owned(),
        details: hint.map(|h| vec![format!("hint: {h}")]).unwrap_or_default(),
    }
}

impl Case {
    fn from_outcome(r: &RepoOutcome, fallback_end: SystemTime) -> Case {
        let problem = match r.result {
            State::Failed => Some(failure_problem(
                r.reason.as_deref().unwrap_or("unknown error"),
                r.hint.as_deref(),
            )),
            _ => r.report.as_ref().and_then(report_problem),
        };
        let summary = match (&r.report, r.result) {
            (Some(report), _) => report.summary(),
            (None, State::WouldCreate) => "destination missing: would be created and filled".into(),
            (None, _) => r.reason.clone().unwrap_or_default(),
        };
        let lfs = r.lfs();
        Case {
            name: r.name.clone(),
            source: r.source.clone(),
            destination: r.destination.clone(),
            result: state_name(r.result),
            problem,
            skipped: (r.result == State::Skipped).then(|| r.reason.clone().unwrap_or_default()),
            summary,
            refs_changed: r.refs_changed() as u64,
            bytes: r.bytes(),
            lfs_objects: lfs.map_or(0, |l| l.moved),
            lfs_bytes: lfs.map_or(0, |l| l.bytes),
            duration: Duration::from_millis(r.duration_ms),
            ended: r.ended.unwrap_or(fallback_end),
        }
    }

    fn from_report(report: &Report, ended: SystemTime) -> Case {
        let t = &report.totals;
        let result = if !report.in_sync {
            "differs"
        } else if report.refs.is_empty() {
            "in-sync"
        } else {
            "updated"
        };
        let lfs = report.lfs.as_ref();
        Case {
            name: report.source.clone(),
            source: report.source.clone(),
            destination: report.destination.clone(),
            result,
            problem: report_problem(report),
            skipped: None,
            summary: report.summary(),
            refs_changed: (t.created + t.updated + t.deleted + t.planned) as u64,
            bytes: report.pack_bytes,
            lfs_objects: lfs.map_or(0, |l| l.moved),
            lfs_bytes: lfs.map_or(0, |l| l.bytes),
            duration: Duration::from_millis(report.duration_ms),
            ended,
        }
    }
}

/// Where `--junit` and `--metrics` go, and the writing of both.
#[derive(Clone, Debug, Default)]
pub struct ReportFiles {
    /// The JUnit XML file, if asked for.
    pub junit: Option<PathBuf>,
    /// The Prometheus text file, if asked for.
    pub metrics: Option<PathBuf>,
}

impl ReportFiles {
    /// Whether any file is asked for.
    pub fn any(&self) -> bool {
        self.junit.is_some() || self.metrics.is_some()
    }

    /// Writes the files for a single `mirror`, whether it finished
    /// (`Ok`) or stopped (`Err`, with the failure it printed). `started`
    /// and `duration` cover the whole run, retries included.
    pub fn write_mirror(
        &self,
        options: &Options,
        outcome: Result<&Report, &Failure>,
        started: SystemTime,
        duration: Duration,
    ) -> bool {
        if !self.any() {
            return true;
        }
        let ended = started + duration;
        let source = options.source.location.to_string();
        let case = match outcome {
            Ok(report) => Case::from_report(report, ended),
            Err(failure) => Case {
                name: source.clone(),
                source: source.clone(),
                destination: options.destination.location.to_string(),
                result: "failed",
                problem: Some(failure_problem(&failure.message, failure.hint.as_deref())),
                skipped: None,
                summary: failure.message.clone(),
                refs_changed: 0,
                bytes: 0,
                lfs_objects: 0,
                lfs_bytes: 0,
                duration,
                ended,
            },
        };
        let success = matches!(outcome, Ok(r) if r.exit_code() == ExitCode::Success);
        self.write(&Run {
            // `status` takes the same flags; its reports say which it was.
            command: if options.mode == Mode::Status {
                "status"
            } else {
                "mirror"
            },
            scope: source,
            shard: None,
            started,
            duration,
            cases: vec![case],
            stopped: None,
            success,
        })
    }

    /// Writes the files for a `mirror-all` sweep of `config`, whether it
    /// ran (`Ok`) or stopped before mirroring (`Err`: then the files say
    /// so, with no repository).
    pub fn write_sweep(
        &self,
        config: &SweepConfig,
        outcome: Result<&Summary, &Failure>,
        started: SystemTime,
        duration: Duration,
    ) -> bool {
        if !self.any() {
            return true;
        }
        let scope = crate::auth::redacted_url(&config.source_scope.scope);
        let shard = config.shard.map(|s| s.to_string());
        self.write(&sweep_run(&scope, shard, outcome, started, duration))
    }

    /// Renders and writes each file asked for; a file that cannot be
    /// written is an error on stderr and `false`, never a panic.
    pub(crate) fn write(&self, run: &Run) -> bool {
        let mut ok = true;
        if let Some(path) = &self.junit {
            ok &= write_reported(path, &junit::render(run), "JUnit report");
        }
        if let Some(path) = &self.metrics {
            ok &= write_reported(path, &metrics::render(run), "metrics");
        }
        ok
    }
}

/// The [`Run`] of a sweep.
pub(crate) fn sweep_run(
    scope: &str,
    shard: Option<String>,
    outcome: Result<&Summary, &Failure>,
    started: SystemTime,
    duration: Duration,
) -> Run {
    let ended = started + duration;
    match outcome {
        Ok(summary) => Run {
            command: "mirror-all",
            scope: scope.to_owned(),
            shard: shard.clone(),
            started,
            duration,
            cases: summary
                .repositories
                .iter()
                .map(|r| Case::from_outcome(r, ended))
                .collect(),
            stopped: None,
            success: summary.exit_code() == ExitCode::Success,
        },
        Err(failure) => Run {
            command: "mirror-all",
            scope: scope.to_owned(),
            shard: shard.clone(),
            started,
            duration,
            cases: Vec::new(),
            stopped: Some(match &failure.hint {
                Some(hint) => format!("{} (hint: {hint})", failure.message),
                None => failure.message.clone(),
            }),
            success: false,
        },
    }
}

fn write_reported(path: &Path, text: &str, what: &str) -> bool {
    match write_atomically(path, crate::auth::redact(text).as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            output::error(format_args!(
                "could not write the {what} to {}: {e}",
                path.display()
            ));
            false
        }
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, then a
/// rename: a reader sees the old file or the new one, never a part. The
/// temporary name does not end in `.prom`, so the textfile collector
/// never reads it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Seconds with millisecond precision, as both formats write them.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Seconds since the Unix epoch, with millisecond precision.
pub(crate) fn unix_seconds(t: SystemTime) -> String {
    seconds(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
}

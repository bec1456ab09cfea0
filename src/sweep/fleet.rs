//! Many mirrors at once: a bounded pool of workers, one outcome per
//! repository, and the summary of a sweep.
//!
//! Each repository is an independent [`mirror::run_with_retries`]: one
//! that fails is recorded and the others carry on, which is what makes a
//! nightly sweep of an organization trustworthy. Workers take the next job
//! from a shared counter, so a slow repository delays only its own worker.
//! Two steps supplied by the caller run in the worker around the mirror:
//! `prepare` before it (creating a missing destination, say), and
//! `created` after the first successful mirror into a destination that
//! `prepare` created (setting its default branch, say), whose failure is a
//! warning, never a failed repository. The fleet knows nothing of how, and
//! nothing of forges or their APIs. A job marked as a wiki reads a 404
//! differently: from the source it means the wiki was never written (the
//! job is skipped), from the destination that the wiki is missing there
//! (failed, with the job's own hint).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Failure;
use crate::mirror::{self, LfsSummary, Options, Report, RetryPolicy, Side};
use crate::output;

/// The most parallel mirrors `--jobs` allows: past this, the servers'
/// limits, not ours, decide the pace.
pub(crate) const MAX_JOBS: usize = 64;

/// The default `--jobs`: mirrors mostly wait on servers, so twice the
/// cores, but no more than 8 so a sweep stays polite to one host.
pub(crate) fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).clamp(2, 8)
}

/// One repository of a sweep.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// `project/repo`, as reported.
    pub(crate) name: String,
    /// The source, as it may be printed.
    pub(crate) source: String,
    /// The destination, as it may be printed.
    pub(crate) destination: String,
    /// What to do with it.
    pub(crate) work: Work,
    /// Set for a wiki's repository, which a forge lists before it exists.
    pub(crate) wiki: Option<WikiJob>,
}

/// How a wiki's job reads a missing repository.
#[derive(Clone, Debug)]
pub(crate) struct WikiJob {
    /// The hint for a destination that answers 404: the destination forge
    /// says how one of its wikis comes to exist.
    pub(crate) missing: String,
}

/// The reason a wiki whose source repository does not exist is skipped:
/// a wiki that is turned on but was never written has none.
pub(crate) const NO_WIKI: &str = "no wiki";

/// What a job does.
#[derive(Clone, Debug)]
pub(crate) enum Work {
    /// Mirror with these options.
    Mirror(Box<Options>),
    /// List it as skipped, with the reason (disabled, archived, a fork).
    Skip(String),
    /// It cannot be mirrored as listed (say, the forge gave no clone URL).
    Invalid(String),
}

/// What the caller's preparation decided for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Prepared {
    /// Mirror it.
    Ready,
    /// The destination was just created; mirror it.
    Created,
    /// A dry run found the destination missing: it would be created and
    /// filled; nothing to compare against.
    WouldCreate,
}

/// How one repository ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    /// Nothing differed.
    InSync,
    /// Refs were changed and the destination now matches.
    Updated,
    /// Refs still differ: planned (dry run), protected or rejected.
    Differs,
    /// Dry run: the destination does not exist and would be created.
    WouldCreate,
    /// The mirror could not finish.
    Failed,
    /// Not mirrored on purpose.
    Skipped,
}

/// The outcome of one repository.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct RepoOutcome {
    /// `project/repo`.
    pub(crate) name: String,
    /// Source URL (no credentials).
    pub(crate) source: String,
    /// Destination (no credentials).
    pub(crate) destination: String,
    /// How it ended.
    pub(crate) result: State,
    /// Whether the destination repository was created by this run.
    pub(crate) created: bool,
    /// Why it was skipped, or why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hint: Option<String>,
    /// What went wrong without failing the repository (its default branch
    /// could not be set, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
    /// The mirror's own report, with every ref.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) report: Option<Report>,
    /// Wall time of this repository, preparation included.
    pub(crate) duration_ms: u64,
    /// When it ended (for `--metrics`); `None` for one never started.
    #[serde(skip)]
    pub(crate) ended: Option<SystemTime>,
}

impl RepoOutcome {
    fn new(job: &Job, result: State) -> RepoOutcome {
        RepoOutcome {
            name: job.name.clone(),
            source: job.source.clone(),
            destination: job.destination.clone(),
            result,
            created: false,
            reason: None,
            hint: None,
            warnings: Vec::new(),
            report: None,
            duration_ms: 0,
            ended: None,
        }
    }

    fn because(job: &Job, result: State, reason: String) -> RepoOutcome {
        RepoOutcome {
            reason: Some(reason),
            ..RepoOutcome::new(job, result)
        }
    }

    /// A failure before the mirror, with its hint kept apart from the text.
    fn failed(job: &Job, failure: Failure) -> RepoOutcome {
        RepoOutcome {
            hint: failure.hint,
            ..RepoOutcome::because(job, State::Failed, failure.message)
        }
    }

    /// Refs changed (or, in a dry run, to change).
    pub(crate) fn refs_changed(&self) -> usize {
        self.report.as_ref().map_or(0, |r| {
            let t = &r.totals;
            t.created + t.updated + t.deleted + t.planned
        })
    }

    /// Pack bytes relayed.
    pub(crate) fn bytes(&self) -> u64 {
        self.report.as_ref().map_or(0, |r| r.pack_bytes)
    }

    /// What became of its LFS objects, when its history held pointers.
    pub(crate) fn lfs(&self) -> Option<&LfsSummary> {
        self.report.as_ref().and_then(|r| r.lfs.as_ref())
    }
}

/// A preparation step run in the worker before each mirror.
pub(crate) type Prepare<'a> = dyn Fn(&Job) -> Result<Prepared, Failure> + Sync + 'a;

/// A step run after the first successful mirror into a destination that
/// [`Prepare`] created, with that mirror's report; an `Err` is recorded as
/// a warning.
pub(crate) type AfterCreate<'a> = dyn Fn(&Job, &Report) -> Result<(), String> + Sync + 'a;

/// The caller's steps around each mirror.
#[derive(Clone, Copy)]
pub(crate) struct Steps<'a> {
    pub(crate) prepare: &'a Prepare<'a>,
    pub(crate) created: &'a AfterCreate<'a>,
}

/// Runs every job with at most `parallel` at a time and returns their
/// outcomes in the order of `jobs`. A line is printed as each one ends.
pub(crate) fn run(
    jobs: &[Job],
    parallel: usize,
    retry: RetryPolicy,
    steps: Steps<'_>,
) -> Vec<RepoOutcome> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RepoOutcome>>> = Mutex::new(vec![None; jobs.len()]);
    let workers = parallel.clamp(1, MAX_JOBS).min(jobs.len().max(1));
    let running: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    // On a terminal, a live line under the log says what is running now.
    let show = |running: &[&str], done: usize| {
        let names = running.join(", ");
        let names: String = names.chars().take(100).collect();
        output::status(Some(&format!(
            "[{done}/{}] running {}: {names}",
            jobs.len(),
            running.len()
        )));
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                {
                    let mut now = running.lock().unwrap_or_else(|e| e.into_inner());
                    now.push(&job.name);
                    show(&now, done.load(Ordering::Relaxed));
                }
                let outcome = output::quietly(|| run_one(job, retry, steps));
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                announce(&outcome, n, jobs.len());
                let mut now = running.lock().unwrap_or_else(|e| e.into_inner());
                now.retain(|name| *name != job.name);
                show(&now, n);
                drop(now);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
            });
        }
    });
    output::status(None);
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

fn run_one(job: &Job, retry: RetryPolicy, steps: Steps<'_>) -> RepoOutcome {
    let options = match &job.work {
        Work::Mirror(options) => options,
        Work::Skip(reason) => return RepoOutcome::because(job, State::Skipped, reason.clone()),
        Work::Invalid(reason) => return RepoOutcome::because(job, State::Failed, reason.clone()),
    };
    let started = Instant::now();
    // A bug in one repository's run must not take the sweep down with it.
    let mut outcome = catch_unwind(AssertUnwindSafe(|| attempt(job, options, retry, steps)))
        .unwrap_or_else(|_| {
            let crashed = "git-relay crashed on this repository (a bug; please report it)";
            RepoOutcome::because(job, State::Failed, crashed.to_owned())
        });
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    outcome.ended = Some(SystemTime::now());
    outcome
}

fn attempt(job: &Job, options: &Options, retry: RetryPolicy, steps: Steps<'_>) -> RepoOutcome {
    let created = match (steps.prepare)(job) {
        Ok(Prepared::Ready) => false,
        Ok(Prepared::Created) => true,
        Ok(Prepared::WouldCreate) => return RepoOutcome::new(job, State::WouldCreate),
        Err(failure) => return RepoOutcome::failed(job, failure),
    };
    let mut outcome = match mirror::run_with_retries(options, retry) {
        Ok(report) => {
            let state = if !report.in_sync {
                State::Differs
            } else if report.refs.is_empty() {
                State::InSync
            } else {
                State::Updated
            };
            let mut o = RepoOutcome::new(job, state);
            o.report = Some(report);
            o
        }
        // A wiki that was never written has no repository: nothing to
        // mirror, and nothing wrong.
        Err(err) if job.wiki.is_some() && err.side == Side::Source && err.is_not_found() => {
            RepoOutcome::because(job, State::Skipped, NO_WIKI.to_owned())
        }
        Err(err) => {
            let hint = match &job.wiki {
                Some(wiki) if err.side == Side::Destination && err.is_not_found() => {
                    Some(wiki.missing.clone())
                }
                _ => err.hint().map(str::to_owned),
            };
            RepoOutcome {
                hint,
                ..RepoOutcome::because(job, State::Failed, err.to_string())
            }
        }
    };
    outcome.created = created;
    if let Some(report) = outcome.report.as_ref().filter(|_| created) {
        if let Err(warning) = (steps.created)(job, report) {
            outcome.warnings.push(warning);
        }
    }
    outcome
}

/// The plain line for one finished repository: the same on a terminal and
/// in a CI log, where lines from parallel workers must stand alone.
fn announce(o: &RepoOutcome, n: usize, total: usize) {
    let width = total.to_string().len();
    let head = format!("[{n:>width$}/{total}] {}", o.name);
    let took = output::human_duration(Duration::from_millis(o.duration_ms));
    let created = if o.created { "created, " } else { "" };
    match o.result {
        State::Failed => {
            output::error(format_args!(
                "{head}: failed after {took}: {}",
                o.reason.as_deref().unwrap_or("unknown error")
            ));
            if let Some(hint) = &o.hint {
                output::hint(format_args!("{}: {hint}", o.name));
            }
        }
        State::Skipped => output::info(format_args!(
            "{head}: skipped ({})",
            o.reason.as_deref().unwrap_or("")
        )),
        State::WouldCreate => output::info(format_args!(
            "{head}: destination missing: would be created and filled"
        )),
        _ => {
            let summary = o.report.as_ref().map(Report::summary).unwrap_or_default();
            let line = format!("{head}: {created}{summary}");
            let report = o.report.as_ref();
            // A dry run's planned changes are news, not trouble.
            if report.is_some_and(|r| r.totals.protected + r.totals.rejected + r.totals.failed > 0)
            {
                output::warn(line);
            } else {
                output::info(line);
            }
            if o.result == State::Differs {
                for r in report.map(Report::ref_lines).unwrap_or_default() {
                    output::info(r);
                }
            }
        }
    }
    for warning in &o.warnings {
        output::warn(format_args!("{}: {warning}", o.name));
    }
}

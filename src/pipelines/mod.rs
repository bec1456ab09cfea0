//! Azure Pipelines task mode: `git-relay task`, started by the task's Node
//! wrapper (task/run.js) with the environment the agent built.
//!
//! The order of a run is the contract with the agent:
//!
//! 1. read every input ([`inputs`]) without printing, and hand each secret
//!    found, in each form it could take, to `##vso[task.setsecret]` and to
//!    our own redactor: nothing is printed before that. Secrets learnt
//!    later (tokens from an Entra ID service connection, `oidc`) reach
//!    the agent as the redactor learns them;
//! 2. report invalid inputs, each as a `task.logissue` naming the input;
//! 3. run the engine inside a `##[group]`, then report each ref, write the
//!    JSON report and the markdown summary (`page`, attached as the run
//!    page's "git-relay" section), set the output variables, and end with
//!    `task.complete`, whose result follows the input `failOn` for refs
//!    left different.
//!
//! Everything printed speaks the pipeline's language: flags are named as
//! the inputs that mean the same (`words`), debug lines are the agent's
//! `##[debug]` lines.
//!
//! In organization mode (input `mode: organization`) step 3 is a
//! `mirror-all` sweep instead ([`crate::sweep::sweep`]): the same
//! order, one `task.logissue` per repository that failed, and a summary
//! with a row per repository.
//!
//! The process exits 0 whatever the outcome, as the agent expects of a task
//! that reports its result with `task.complete`; a non-zero exit would add
//! a second, vaguer error to the log.

pub mod inputs;
pub(crate) mod oidc;
pub(crate) mod page;
pub(crate) mod vso;
pub(crate) mod words;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth;
use crate::config::SweepConfig;
use crate::error::{ExitCode, Failure};
use crate::mirror::{self, Mode, Options, Outcome, Report, RetryPolicy};
use crate::output::{self, Verbosity};
use crate::sweep::fleet::State;
use crate::sweep::{self, Summary};
use inputs::{Environment, FailOn, InputError, TaskConfig, TaskMode};
use vso::{Issue, TaskResult};
use words::in_task_words;

/// The output variables the task sets; task.json declares exactly these.
pub const OUTPUT_VARIABLES: &[&str] = &[REFS_CHANGED, IN_SYNC, REPORT_PATH];
const REFS_CHANGED: &str = "refsChanged";
const IN_SYNC: &str = "inSync";
const REPORT_PATH: &str = "reportPath";

/// The name the summary is attached under: the title of its section on
/// the run's page, the same on every run (the file's own name is unique
/// per step, so that two steps of a job keep their own).
const SUMMARY_NAME: &str = "git-relay";

/// Runs the task from the agent's environment; returns the exit code,
/// success whatever the outcome (see above).
pub fn run() -> ExitCode {
    // Engine lines may quote a server; the agent must not obey them.
    output::defuse_logging_commands();
    // Hints name the command line's flags; a pipeline has inputs.
    output::speak_as_task(words::in_task_words);
    let env = Environment::from_process();
    let mode = inputs::task_mode(&env);
    // Organization mode reads its own inputs; a mode that cannot be read
    // still has the inputs read, so that their secrets are registered
    // before the error is printed.
    if mode == Ok(TaskMode::Organization) {
        let reading = inputs::read_organization(&env);
        if let Some(config) = start(&env, &reading.secrets, reading.config) {
            sweep_and_report(&config, &ReportFiles::new(&env));
        }
        return ExitCode::Success;
    }
    let reading = inputs::read(&env);
    let (mut secrets, mut config) = (reading.secrets, reading.config);
    if let Err(error) = mode {
        // Which inputs were meant is unknown: mask what either mode finds.
        secrets.extend(inputs::read_organization(&env).secrets);
        let others = config.err().unwrap_or_default();
        // An unexpanded `$(Variable)` in `mode` was reported by the reading
        // already, in clearer words.
        let mode_error = Some(error).filter(|_| !others.iter().any(|e| e.input == "mode"));
        config = Err(mode_error.into_iter().chain(others).collect());
    }
    if let Some(config) = start(&env, &secrets, config) {
        mirror_and_report(&config, &ReportFiles::new(&env));
    }
    ExitCode::Success
}

/// Registers the secrets, then reports invalid inputs (ending the task) or
/// hands back the configuration.
fn start<T>(
    env: &Environment,
    secrets: &[String],
    config: Result<T, Vec<InputError>>,
) -> Option<T> {
    for secret in secrets {
        vso::set_secret(secret);
        auth::register_secret(secret);
    }
    // Tokens fetched from now on (an Entra access token, the OIDC token
    // behind it, their replacements) are told to the agent as they arrive,
    // before any request that carries them and so before any output that
    // could quote them.
    auth::on_new_secret(vso::set_secret);
    if env.flag("SYSTEM_DEBUG") {
        output::set_verbosity(Verbosity::Verbose);
    }
    match config {
        Ok(config) => Some(config),
        Err(errors) => {
            for error in &errors {
                vso::log_issue(Issue::Error, &error.to_string());
            }
            let message = match errors.as_slice() {
                [one] => one.to_string(),
                many => format!(
                    "{} task inputs are invalid; see the errors above",
                    many.len()
                ),
            };
            vso::complete(TaskResult::Failed, &message);
            None
        }
    }
}

/// Where the JSON report and the summary go: the agent's per-job temporary
/// directory, with a name of their own so that several git-relay steps in
/// one job do not overwrite each other.
struct ReportFiles {
    json: PathBuf,
    markdown: PathBuf,
}

impl ReportFiles {
    fn new(env: &Environment) -> ReportFiles {
        let dir = env
            .var("AGENT_TEMPDIRECTORY")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let stem = format!("git-relay-{stamp}-{}", std::process::id());
        ReportFiles {
            json: dir.join(format!("{stem}.json")),
            markdown: dir.join(format!("{stem}.md")),
        }
    }
}

fn mirror_and_report(config: &TaskConfig<Options>, files: &ReportFiles) {
    let options = &config.run;
    vso::set_progress(5, "inputs read");
    vso::group("git-relay: inputs");
    output::info(format_args!("git-relay {}", env!("CARGO_PKG_VERSION")));
    output::info(format_args!(
        "source       {} ({})",
        options.source.location, config.authentication.0
    ));
    output::info(format_args!(
        "destination  {} ({})",
        options.destination.location, config.authentication.1
    ));
    output::info(format_args!(
        "mode {}, prune {}, force {}",
        mode_name(options.mode),
        options.prune,
        options.force
    ));
    for note in &config.notes {
        output::info(format_args!("note: {note}"));
    }
    vso::end_group();

    vso::group("git-relay: mirror");
    // Transient failures (a busy server, a cut connection) start the run
    // over, as on the command line; every update is a compare-and-swap.
    let outcome = mirror::run_with_retries(options, RetryPolicy::default());
    vso::end_group();
    vso::set_progress(90, "mirror finished");
    match outcome {
        Ok(report) => finished(&report, config.fail_on, files),
        Err(err) => {
            let markdown = page::failure(mode_name(options.mode), options, &err);
            failed(&Failure::from(&err), &markdown, files);
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Mirror => "mirror",
        Mode::DryRun => "dry run",
        Mode::Status => "status",
    }
}

/// The result of a run, or of one repository of a sweep, whose refs
/// ended as counted: refs that could not be sent always fail it; refs the
/// destination refused or protected fail it as `failOn` says.
fn result_of(failed: usize, rejected: usize, protected: usize, fail_on: FailOn) -> TaskResult {
    let fails = failed > 0
        || match fail_on {
            FailOn::Rejected => rejected > 0,
            FailOn::Differences => rejected + protected > 0,
            FailOn::Never => false,
        };
    if fails {
        TaskResult::Failed
    } else if rejected + protected > 0 {
        TaskResult::SucceededWithIssues
    } else {
        TaskResult::Succeeded
    }
}

/// Reports a run that finished, refs protected or rejected included.
fn finished(report: &Report, fail_on: FailOn, files: &ReportFiles) {
    vso::section("git-relay: result");
    for line in report.ref_lines().into_iter().chain(report.lfs_lines()) {
        output::info(vso::neutralize(&line));
    }
    output::info(vso::neutralize(&report.summary()));
    let t = &report.totals;
    let result = result_of(t.failed, t.rejected, t.protected, fail_on);
    // A difference is an error on the summary page when it fails the
    // task, else a warning.
    let severity = |fails: bool| match fails && result == TaskResult::Failed {
        true => Issue::Error,
        false => Issue::Warning,
    };
    for r in &report.refs {
        let reason = r.reason.as_deref().unwrap_or("no reason given");
        match r.result {
            Outcome::Protected => vso::log_issue(
                severity(fail_on == FailOn::Differences),
                &format!("{} protected: {reason}", r.name),
            ),
            Outcome::Rejected => vso::log_issue(
                severity(fail_on != FailOn::Never),
                &format!("{} rejected by the destination: {reason}", r.name),
            ),
            Outcome::Failed => {
                vso::log_issue(Issue::Error, &format!("{} failed: {reason}", r.name))
            }
            Outcome::Ok | Outcome::Planned => {}
        }
    }
    write_outputs(
        (t.created + t.updated + t.deleted).to_string(),
        report.in_sync,
        &report.to_json(),
        &page::report(report, result == TaskResult::Failed),
        files,
    );
    let summary = report.summary();
    // The reason comes first; the summary's own state would repeat it.
    let mut message = if t.failed > 0 {
        let counts = page::without_state(&summary);
        format!("{} ref(s) could not be mirrored: {counts}", t.failed)
    } else if t.rejected > 0 && result == TaskResult::Failed {
        format!(
            "{} ref(s) rejected by the destination (failOn: {}): {}",
            t.rejected,
            fail_on_name(fail_on),
            page::without_state(&summary)
        )
    } else {
        summary
    };
    if t.protected > 0 {
        message.push_str("; protected refs hold commits only the destination has: inspect them, then set the input `force` to true to overwrite");
    }
    vso::complete(result, &message);
}

/// Reports a run or a sweep that stopped: what failed (the side, or the
/// API), why, and what to do; `markdown` is the summary to upload.
fn failed(failure: &Failure, markdown: &str, files: &ReportFiles) {
    let failure = &Failure {
        message: in_task_words(&failure.message),
        hint: failure.hint.as_deref().map(in_task_words),
        ..failure.clone()
    };
    let message = vso::neutralize(&failure.message);
    vso::error_line(&message);
    if let Some(hint) = &failure.hint {
        output::hint(hint);
    }
    vso::log_issue(Issue::Error, &message);
    write_outputs("0".to_owned(), false, &failure.to_json(), markdown, files);
    vso::complete(TaskResult::Failed, &message);
}

fn fail_on_name(fail_on: FailOn) -> &'static str {
    match fail_on {
        FailOn::Rejected => "rejected",
        FailOn::Differences => "differences",
        FailOn::Never => "never",
    }
}

/// Writes the report files and sets the output variables. A file that
/// cannot be written costs a warning, not the mirror that already happened.
fn write_outputs(
    refs_changed: String,
    in_sync: bool,
    json: &str,
    markdown: &str,
    files: &ReportFiles,
) {
    vso::set_output(REFS_CHANGED, &refs_changed);
    vso::set_output(IN_SYNC, if in_sync { "true" } else { "false" });
    if write(&files.json, json) {
        vso::set_output(REPORT_PATH, &files.json.to_string_lossy());
    }
    if write(&files.markdown, &in_task_words(markdown)) {
        vso::attach_summary(SUMMARY_NAME, &files.markdown.to_string_lossy());
    }
    vso::set_progress(100, "done");
}

fn write(path: &Path, text: &str) -> bool {
    match std::fs::write(path, auth::redact(text).as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            vso::warning_line(&format!("could not write {}: {e}", path.display()));
            false
        }
    }
}

/// Organization mode: the inputs, then the sweep, then the report.
fn sweep_and_report(config: &TaskConfig<SweepConfig>, files: &ReportFiles) {
    let sweep = &config.run;
    vso::set_progress(5, "inputs read");
    vso::group("git-relay: inputs");
    output::info(format_args!(
        "git-relay {} (organization mode)",
        env!("CARGO_PKG_VERSION")
    ));
    let kind = |k: Option<crate::forge::Kind>| k.map_or("inferred", crate::forge::Kind::name);
    output::info(format_args!(
        "source       {} ({}, kind {})",
        auth::redacted_url(&sweep.source_scope.scope),
        config.authentication.0,
        kind(sweep.source_scope.kind)
    ));
    output::info(format_args!(
        "destination  {} ({})",
        auth::redacted_url(&sweep.template),
        config.authentication.1
    ));
    if let Some(create_in) = &sweep.create_in {
        output::info(format_args!(
            "create missing repositories in {} (kind {})",
            auth::redacted_url(&create_in.scope),
            kind(create_in.kind)
        ));
    }
    output::info(format_args!(
        "{}, prune {}, force {}, jobs {}{}",
        if sweep.dry_run { "dry run" } else { "mirror" },
        sweep.prune,
        sweep.force,
        sweep.jobs.map_or_else(sweep::default_jobs, usize::from),
        sweep
            .shard
            .map(|s| format!(", shard {s}"))
            .unwrap_or_default()
    ));
    for note in &config.notes {
        output::info(format_args!("note: {note}"));
    }
    vso::end_group();

    vso::set_progress(10, "discovering repositories");
    vso::group("git-relay: discover and mirror");
    // Discovery, then every repository on its own: one that fails never
    // stops the others; each prints a line as it ends.
    let (started, clock) = (SystemTime::now(), std::time::Instant::now());
    let outcome = sweep::sweep(sweep);
    vso::end_group();
    vso::set_progress(90, "sweep finished");
    publish_junit(sweep, outcome.as_ref(), started, clock.elapsed());
    match outcome {
        Ok(summary) => sweep_finished(&summary, config.fail_on, files),
        Err(failure) => {
            let scope = auth::redacted_url(&sweep.source_scope.scope);
            failed(
                &failure,
                &page::organization_failure(&scope, &failure),
                files,
            );
        }
    }
}

/// Reports a sweep that ran: a table in the log, an issue per failed
/// repository, the outputs and the result.
fn sweep_finished(summary: &Summary, fail_on: FailOn, files: &ReportFiles) {
    vso::section("git-relay: result");
    for line in summary.table() {
        output::info(vso::neutralize(&line));
    }
    let mut with_issues = 0;
    let mut failed = 0;
    for r in &summary.repositories {
        let totals = r.report.as_ref().map(|r| &r.totals);
        let refs = totals.map_or(TaskResult::Succeeded, |t| {
            result_of(t.failed, t.rejected, t.protected, fail_on)
        });
        if r.result == State::Failed || refs == TaskResult::Failed {
            failed += 1;
            let mut message = format!(
                "{} failed: {}",
                r.name,
                r.reason.as_deref().unwrap_or(match totals {
                    Some(t) if t.failed == 0 => "refs were left different (see failOn)",
                    _ => "some refs could not be mirrored",
                })
            );
            if let Some(hint) = &r.hint {
                message.push_str(&format!(" (hint: {hint})"));
            }
            vso::log_issue(Issue::Error, &in_task_words(&message));
        } else if let Some(t) = totals.filter(|_| refs == TaskResult::SucceededWithIssues) {
            with_issues += 1;
            vso::log_issue(
                Issue::Warning,
                &format!(
                    "{}: {} ref(s) protected, {} rejected by the destination",
                    r.name, t.protected, t.rejected
                ),
            );
        }
    }
    let refs_changed: usize = summary
        .repositories
        .iter()
        .filter_map(|r| r.report.as_ref())
        .map(|r| r.totals.created + r.totals.updated + r.totals.deleted)
        .sum();
    write_outputs(
        refs_changed.to_string(),
        summary.exit_code() == ExitCode::Success,
        &summary.to_json(),
        &page::organization(summary),
        files,
    );
    let t = &summary.totals;
    let counts = format!(
        "{} repositories: {} in sync, {} updated, {} differ, {} failed, {} skipped",
        t.repositories, t.in_sync, t.updated, t.differs, t.failed, t.skipped
    );
    let (result, message) = if failed > 0 {
        (
            TaskResult::Failed,
            format!(
                "{failed} of {} repositories could not be mirrored; {counts}",
                t.repositories
            ),
        )
    } else if with_issues > 0 {
        (
            TaskResult::SucceededWithIssues,
            format!("{with_issues} repositories still differ (protected or rejected refs: inspect them, then set the input `force` to true to overwrite protected ones); {counts}"),
        )
    } else {
        (TaskResult::Succeeded, counts)
    };
    vso::complete(result, &message);
}

/// Writes the sweep's JUnit report beside the other report files and has
/// the agent publish it, so that each repository is a test in the run's
/// Tests tab (one test run per task, titled "git-relay"). A file that
/// cannot be written is said on stderr and not published; the sweep's
/// result stands.
fn publish_junit(
    config: &SweepConfig,
    outcome: Result<&Summary, &Failure>,
    started: SystemTime,
    duration: std::time::Duration,
) {
    let dir = Environment::from_process()
        .var("AGENT_TEMPDIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("git-relay-junit-{}.xml", std::process::id()));
    let files = crate::report::ReportFiles {
        junit: Some(path.clone()),
        metrics: None,
    };
    if !files.write_sweep(config, outcome, started, duration) {
        return;
    }
    let path = path.to_string_lossy();
    output::logging_command(&vso::command(
        "results.publish",
        &[
            ("type", "JUnit"),
            ("runTitle", "git-relay"),
            ("mergeResults", "false"),
            ("publishRunAttachments", "true"),
            ("resultFiles", &path),
        ],
        "",
    ));
}

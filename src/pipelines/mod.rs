//! Azure Pipelines task mode: `git-relay task`, started by the task's Node
//! wrapper (task/run.js) with the environment the agent built.
//!
//! The order of a run is the contract with the agent:
//!
//! 1. read every input ([`inputs`]) without printing, and hand each secret
//!    found, in each form it could take, to `##vso[task.setsecret]` and to
//!    our own redactor: nothing is printed before that;
//! 2. report invalid inputs, each as a `task.logissue` naming the input;
//! 3. run the engine inside a `##[group]`, then report each ref, write the
//!    JSON report and the markdown summary ([`summary`]), set the output
//!    variables, and end with `task.complete`.
//!
//! The process exits 0 whatever the outcome, as the agent expects of a task
//! that reports its result with `task.complete`; a non-zero exit would add
//! a second, vaguer error to the log.

pub mod inputs;
pub mod summary;
pub mod vso;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth;
use crate::mirror::{self, Mode, Options, Outcome, Report, RetryPolicy, SideError};
use crate::output::{self, Verbosity};
use inputs::{Environment, TaskConfig};
use vso::{Issue, TaskResult};

/// The output variables the task sets; task.json declares exactly these.
pub const OUTPUT_VARIABLES: &[&str] = &[REFS_CHANGED, IN_SYNC, REPORT_PATH];
const REFS_CHANGED: &str = "refsChanged";
const IN_SYNC: &str = "inSync";
const REPORT_PATH: &str = "reportPath";

/// Runs the task from the agent's environment; returns the exit code.
pub fn run() -> i32 {
    // Engine lines may quote a server; the agent must not obey them.
    output::defuse_logging_commands();
    let env = Environment::from_process();
    let reading = inputs::read(&env);
    for secret in &reading.secrets {
        vso::set_secret(secret);
        auth::register_secret(secret);
    }
    if env.flag("SYSTEM_DEBUG") {
        output::set_verbosity(Verbosity::Verbose);
    }
    let config = match reading.config {
        Ok(config) => config,
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
            return 0;
        }
    };
    let files = ReportFiles::new(&env);
    mirror_and_report(&config, &files);
    0
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

fn mirror_and_report(config: &TaskConfig, files: &ReportFiles) {
    let options = &config.options;
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
        Ok(report) => finished(&report, files),
        Err(err) => failed(options, &err, files),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Mirror => "mirror",
        Mode::DryRun => "dry run",
        Mode::Status => "status",
    }
}

/// Reports a run that finished, refs protected or rejected included.
fn finished(report: &Report, files: &ReportFiles) {
    vso::section("git-relay: result");
    for line in report.ref_lines() {
        output::info(vso::neutralize(&line));
    }
    output::info(vso::neutralize(&report.summary()));
    for r in &report.refs {
        let reason = r.reason.as_deref().unwrap_or("no reason given");
        match r.result {
            Outcome::Protected => {
                vso::log_issue(Issue::Warning, &format!("{} protected: {reason}", r.name))
            }
            Outcome::Rejected => vso::log_issue(
                Issue::Error,
                &format!("{} rejected by the destination: {reason}", r.name),
            ),
            Outcome::Failed => {
                vso::log_issue(Issue::Error, &format!("{} failed: {reason}", r.name))
            }
            Outcome::Ok | Outcome::Planned => {}
        }
    }
    let t = &report.totals;
    write_outputs(
        (t.created + t.updated + t.deleted).to_string(),
        report.in_sync,
        &report.to_json(),
        &summary::report(report),
        files,
    );
    let (result, message) = if t.failed > 0 {
        (
            TaskResult::Failed,
            format!(
                "{} ref(s) could not be mirrored: {}",
                t.failed,
                report.summary()
            ),
        )
    } else if t.protected > 0 || t.rejected > 0 {
        let mut message = report.summary();
        if t.protected > 0 {
            message.push_str("; protected refs hold commits only the destination has: inspect them, then set force: true to overwrite");
        }
        (TaskResult::SucceededWithIssues, message)
    } else {
        (TaskResult::Succeeded, report.summary())
    };
    vso::complete(result, &message);
}

/// Reports a run that stopped: which side, why, and what to do.
fn failed(options: &Options, err: &SideError, files: &ReportFiles) {
    let message = vso::neutralize(&err.to_string());
    vso::error_line(&message);
    if let Some(hint) = err.hint() {
        output::hint(hint);
    }
    vso::log_issue(Issue::Error, &message);
    let doc = serde_json::json!({
        "error": { "side": err.side, "message": err.to_string(), "hint": err.hint() }
    });
    write_outputs(
        "0".to_owned(),
        false,
        &serde_json::to_string_pretty(&doc).unwrap_or_default(),
        &summary::failure(
            mode_name(options.mode),
            &options.source.location.to_string(),
            &options.destination.location.to_string(),
            err,
        ),
        files,
    );
    vso::complete(TaskResult::Failed, &message);
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
    if write(&files.markdown, markdown) {
        vso::upload_summary(&files.markdown.to_string_lossy());
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

//! `git-relay serve`: a long-running service that keeps mirrors within
//! seconds of their sources.
//!
//! A forge's webhook says "this repository changed": `webhook` checks the
//! sender and reads which repository, `identity` finds the mirrors and
//! sweeps configured for it, and `queue` runs each at most once at a
//! time, folding a burst of events into one run. Polling (in `queue` too)
//! catches what webhooks miss, and every mirror runs once at startup, so
//! nothing needs keeping between starts: whether a mirror is in sync is
//! read from its two servers on every run. `http` serves the endpoints,
//! `status` what they show, `config` reads the file.
//!
//! The engine runs on the queue's plain threads, exactly as `git-relay
//! mirror` and `mirror-all` run it; only the endpoints are asynchronous.

mod config;
mod http;
mod identity;
mod queue;
mod status;
pub(crate) mod webhook;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Only;
use crate::error::{ExitCode, Failure};
use crate::output;
use crate::sweep::Summary;
use config::{MirrorEntry, ServeConfig, SweepEntry};
use http::Reply;
use queue::{Cause, Outcome, Run, Scheduler, Settings, Submitted};
use status::{RunRecord, RunResult, Status};
use webhook::{Event, Forge, HookAuth, Replays};

/// Delivery ids remembered against replays, per process.
const REPLAYS_REMEMBERED: usize = 10_000;

/// Runs the service the file at `path` describes until SIGTERM or SIGINT;
/// with `check`, reads the file, builds every mirror's settings and exits.
pub fn run(path: &Path, check: bool) -> ExitCode {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(message) => {
            output::error(message);
            return ExitCode::Usage;
        }
    };
    if check {
        output::info(format_args!(
            "{}: sound ({} mirror(s), {} sweep(s), webhooks from {})",
            path.display(),
            config.mirrors.len(),
            config.sweeps.len(),
            hooks(&config.webhooks)
                .iter()
                .map(|(forge, _)| forge.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return ExitCode::Success;
    }
    let stop_signal = StopSignal::catch();
    let listener = match TcpListener::bind(config.listen) {
        Ok(listener) => listener,
        Err(err) => {
            output::error(format_args!("cannot listen on {}: {err}", config.listen));
            output::hint("choose another address with `listen` in the configuration file");
            return ExitCode::Failed;
        }
    };
    let address = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    let (grace, max_body) = (config.grace, config.max_body);
    let relay = Relay::new(config);
    let scheduler = match relay.start() {
        Ok(scheduler) => scheduler,
        Err(err) => {
            output::error(format_args!("cannot start the mirror workers: {err}"));
            return ExitCode::Failed;
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = {
        let relay: Arc<dyn http::Service> = relay.clone();
        std::thread::Builder::new()
            .name("http".into())
            .spawn(move || http::serve(listener, relay, max_body, stopped))
    };
    let server = match server {
        Ok(server) => server,
        Err(err) => {
            output::error(format_args!("cannot start the HTTP server: {err}"));
            return ExitCode::Failed;
        }
    };
    output::info(format_args!("listening on http://{address}"));
    relay.check_everything();
    relay.ready.store(true, Ordering::SeqCst);

    stop_signal.wait();
    relay.ready.store(false, Ordering::SeqCst);
    relay.stopping.store(true, Ordering::SeqCst);
    output::info(format_args!(
        "stopping: waiting up to {} for {} running mirror(s)",
        output::human_duration(grace),
        scheduler.running()
    ));
    let finished = scheduler.stop(grace);
    let _ = stop.send(());
    match server.join() {
        Ok(Err(err)) => output::warn(format_args!("the HTTP server stopped with an error: {err}")),
        Err(_) => output::warn("the HTTP server stopped abnormally"),
        Ok(Ok(())) => {}
    }
    crate::transport::remove_temporary_files();
    if finished {
        output::info("stopped");
        ExitCode::Success
    } else {
        // Safe to cut short: every ref update is a compare-and-swap, and
        // the next start checks every mirror again.
        output::warn("stopped with mirrors still running: the next start finishes them");
        ExitCode::Failed
    }
}

/// SIGTERM or SIGINT, caught from the start so that a signal during the
/// startup check still lets running mirrors finish.
#[cfg(unix)]
struct StopSignal(Option<signal_hook::iterator::Signals>);

#[cfg(unix)]
impl StopSignal {
    fn catch() -> StopSignal {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
            Ok(signals) => StopSignal(Some(signals)),
            Err(err) => {
                output::warn(format_args!(
                    "cannot catch SIGTERM ({err}): a stop will not wait for running mirrors"
                ));
                StopSignal(None)
            }
        }
    }

    fn wait(self) {
        match self.0 {
            Some(mut signals) => {
                signals.forever().next();
            }
            // Nothing will ever come: the default action ends the process.
            None => loop {
                std::thread::park();
            },
        }
    }
}

/// Ctrl+C where there are no signals.
#[cfg(not(unix))]
struct StopSignal;

#[cfg(not(unix))]
impl StopSignal {
    fn catch() -> StopSignal {
        StopSignal
    }

    fn wait(self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => {
                let _ = runtime.block_on(tokio::signal::ctrl_c());
            }
            Err(_) => loop {
                std::thread::park();
            },
        }
    }
}

/// The configured webhook senders and how each proves itself.
fn hooks(webhooks: &config::Webhooks) -> Vec<(Forge, HookAuth)> {
    let mut hooks = vec![];
    let hmac = |forge, secret: &Option<String>| secret.clone().map(|s| (forge, HookAuth::Hmac(s)));
    hooks.extend(hmac(Forge::GitHub, &webhooks.github));
    hooks.extend(
        webhooks
            .gitlab
            .clone()
            .map(|t| (Forge::GitLab, HookAuth::Token(t))),
    );
    hooks.extend(webhooks.azure_devops.as_ref().map(|azure| {
        let auth = HookAuth::Azure {
            basic: azure.basic.clone(),
            header: azure.header.clone(),
        };
        (Forge::AzureDevOps, auth)
    }));
    hooks.extend(hmac(Forge::Bitbucket, &webhooks.bitbucket));
    hooks.extend(hmac(Forge::Gitea, &webhooks.gitea));
    hooks
}

/// What a queue key stands for.
#[derive(Clone, Debug)]
enum Target {
    /// A `[[mirror]]`, by index.
    Mirror(usize),
    /// A whole `[[sweep]]`, by index.
    Sweep(usize),
    /// One repository of a sweep, named by its key (`identity::repo_key`).
    SweepRepository(usize, String),
}

/// The service: the configuration, the queue, and what the endpoints show.
struct Relay {
    config: ServeConfig,
    hooks: Vec<(Forge, HookAuth)>,
    /// Each mirror's source key, in config order.
    mirror_keys: Vec<Option<String>>,
    /// Each sweep's scope key, in config order.
    scope_keys: Vec<Option<String>>,
    targets: Mutex<HashMap<String, Target>>,
    scheduler: OnceLock<Scheduler>,
    replays: Mutex<Replays>,
    status: Status,
    ready: AtomicBool,
    stopping: AtomicBool,
}

impl Relay {
    fn new(config: ServeConfig) -> Arc<Relay> {
        let mut targets = HashMap::new();
        let mut shown = vec![];
        for (i, mirror) in config.mirrors.iter().enumerate() {
            targets.insert(mirror.name.clone(), Target::Mirror(i));
            shown.push((
                mirror.name.clone(),
                mirror.source.clone(),
                mirror.destination.clone(),
            ));
        }
        for (i, sweep) in config.sweeps.iter().enumerate() {
            targets.insert(sweep.name.clone(), Target::Sweep(i));
            shown.push((
                sweep.name.clone(),
                sweep.scope.clone(),
                sweep.template.clone(),
            ));
        }
        Arc::new(Relay {
            hooks: hooks(&config.webhooks),
            mirror_keys: (config.mirrors.iter())
                .map(|m| identity::repo_key(&m.source))
                .collect(),
            scope_keys: (config.sweeps.iter())
                .map(|s| identity::repo_key(&s.scope))
                .collect(),
            targets: Mutex::new(targets),
            scheduler: OnceLock::new(),
            replays: Mutex::new(Replays::new(REPLAYS_REMEMBERED)),
            status: Status::new(shown),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            config,
        })
    }

    /// Starts the queue's workers and its polling.
    fn start(self: &Arc<Relay>) -> std::io::Result<Scheduler> {
        let config = &self.config;
        let mut polls = vec![];
        for mirror in &config.mirrors {
            polls.extend(mirror.poll.map(|every| (mirror.name.clone(), every)));
        }
        for sweep in &config.sweeps {
            polls.extend(sweep.poll.map(|every| (sweep.name.clone(), every)));
        }
        let settings = Settings {
            concurrency: config.concurrency,
            retries: config.retries,
            retry_delay: config.retry_delay,
            retry_max: config.retry_max,
            spacing: config.spacing,
        };
        let relay = Arc::clone(self);
        let runner = Arc::new(move |run: &Run| relay.perform(run));
        let scheduler = Scheduler::start(settings, polls, runner)?;
        let _ = self.scheduler.set(scheduler.clone());
        Ok(scheduler)
    }

    /// Queues every mirror and sweep once: the startup check.
    fn check_everything(&self) {
        let names = (self.config.mirrors.iter().map(|m| &m.name))
            .chain(self.config.sweeps.iter().map(|s| &s.name));
        for name in names {
            self.submit(name, Cause::Startup, Instant::now());
        }
    }

    fn submit(&self, key: &str, cause: Cause, received: Instant) -> Submitted {
        let Some(scheduler) = self.scheduler.get() else {
            return Submitted::Stopping;
        };
        scheduler.submit(key, cause, received)
    }

    /// Runs what `run.key` stands for; called on a queue worker.
    fn perform(&self, run: &Run) -> Outcome {
        let target = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run.key)
            .cloned();
        let Some(target) = target else {
            return Outcome::Done;
        };
        self.status.started(&run.key);
        output::about(&run.key, || match target {
            Target::Mirror(i) => self.mirror(&self.config.mirrors[i], run),
            Target::Sweep(i) => self.sweep(&self.config.sweeps[i], None, run),
            Target::SweepRepository(i, key) => self.sweep(&self.config.sweeps[i], Some(key), run),
        })
    }

    fn mirror(&self, entry: &MirrorEntry, run: &Run) -> Outcome {
        let (started, clock) = (SystemTime::now(), Instant::now());
        let cause = cause_label(&run.cause);
        let result =
            (entry.settings().map_err(Failure::usage)).and_then(|(options, retry, local)| {
                crate::mirror::run_with_retries_and_local(&options, retry, &local)
                    .map_err(|err| Failure::from(&err))
            });
        let (record, outcome) = match result {
            Ok(report) => {
                output::info(report.summary());
                let totals = &report.totals;
                let record = RunRecord {
                    started,
                    duration: clock.elapsed(),
                    result: match report.in_sync {
                        true => RunResult::Ok,
                        false => RunResult::Differs,
                    },
                    cause,
                    in_sync: report.in_sync,
                    refs_changed: (totals.created + totals.updated + totals.deleted) as u64,
                    bytes: report.pack_bytes,
                    error: None,
                    lag: run.first_event.map(|received| received.elapsed()),
                };
                (record, Outcome::Done)
            }
            Err(failure) => {
                let message = one_line(&failure);
                output::error(&message);
                (failed(started, clock, cause, message), Outcome::Failed)
            }
        };
        self.status.finished(&run.key, record);
        outcome
    }

    /// A whole sweep, or the one repository of it that `only` names.
    fn sweep(&self, entry: &SweepEntry, only: Option<String>, run: &Run) -> Outcome {
        let (started, clock) = (SystemTime::now(), Instant::now());
        let one = only.is_some();
        let result = entry
            .config()
            .map_err(Failure::usage)
            .and_then(|mut config| {
                if let Some(key) = only {
                    config.only = Some(Only(Arc::new(move |url: &str| {
                        identity::repo_key(url).as_deref() == Some(key.as_str())
                    })));
                }
                crate::sweep::sweep(&config)
            });
        let lag = run.first_event.map(|received| received.elapsed());
        let cause = cause_label(&run.cause);
        let summary = match result {
            Ok(summary) => summary,
            Err(failure) => {
                let message = one_line(&failure);
                output::error(&message);
                self.status
                    .finished(&run.key, failed(started, clock, cause, message));
                return Outcome::Failed;
            }
        };
        for line in summary.table() {
            output::info(line);
        }
        let mut records = repository_records(&summary, cause, lag);
        if one {
            // The run of one repository reports under the name it was
            // queued as.
            let record = match records.pop() {
                Some((_, record)) => record,
                None => RunRecord {
                    result: RunResult::Differs,
                    error: Some(
                        "left out: the forge does not list this repository, or the sweep's filters skip it".into(),
                    ),
                    ..failed(started, clock, cause, String::new())
                },
            };
            let outcome = match record.result {
                RunResult::Failed => Outcome::Failed,
                _ => Outcome::Done,
            };
            self.status.finished(&run.key, record);
            return outcome;
        }
        for (name, record) in records {
            self.status
                .finished(&format!("{}:{name}", entry.name), record);
        }
        let result = match summary.exit_code() {
            ExitCode::Success => RunResult::Ok,
            ExitCode::Differs => RunResult::Differs,
            _ => RunResult::Failed,
        };
        let failures = summary.totals.failed;
        self.status.finished(
            &run.key,
            RunRecord {
                started,
                duration: clock.elapsed(),
                in_sync: result == RunResult::Ok,
                result,
                cause,
                refs_changed: 0,
                bytes: 0,
                error: (failures > 0).then(|| format!("{failures} repositories failed")),
                lag,
            },
        );
        if failures > 0 {
            Outcome::Failed
        } else {
            Outcome::Done
        }
    }

    /// The queue keys a pushed repository stands for: each mirror of it,
    /// and its place in each sweep whose scope holds it.
    fn targets_of(&self, repository: &webhook::Repository) -> Vec<String> {
        let keys: Vec<String> = (repository.urls.iter())
            .filter_map(|url| identity::repo_key(url))
            .collect();
        let mut found = vec![];
        for (i, mirror_key) in self.mirror_keys.iter().enumerate() {
            if mirror_key.as_ref().is_some_and(|k| keys.contains(k)) {
                found.push(self.config.mirrors[i].name.clone());
            }
        }
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        for (i, scope) in self.scope_keys.iter().enumerate() {
            let Some(scope) = scope else { continue };
            let Some(key) = keys.iter().find(|k| identity::contains(scope, k)) else {
                continue;
            };
            let name = format!("{}:{}", self.config.sweeps[i].name, repository.name);
            targets.insert(name.clone(), Target::SweepRepository(i, key.clone()));
            found.push(name);
        }
        found
    }
}

impl http::Service for Relay {
    fn webhook(&self, segment: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> Reply {
        let Some(forge) = Forge::from_path(segment) else {
            return reply(404, "no such webhook endpoint: use /hooks/github, /hooks/gitlab, /hooks/azure-devops, /hooks/bitbucket or /hooks/gitea");
        };
        let Some((_, auth)) = self.hooks.iter().find(|(f, _)| *f == forge) else {
            self.status.webhook(forge.name(), "not_configured");
            return reply(404, &format!("webhooks from {0} are not configured here (add [webhooks.{0}] to the configuration)", forge.name()));
        };
        let delivery = match webhook::receive(forge, auth, headers, body) {
            Ok(delivery) => delivery,
            Err(refusal) => {
                self.status.webhook(forge.name(), refusal.label());
                output::warn(format_args!(
                    "webhook from {} refused: {refusal}",
                    forge.name()
                ));
                let status = if refusal.label() == "malformed" {
                    400
                } else {
                    401
                };
                return reply(status, &refusal.to_string());
            }
        };
        if let Some(id) = &delivery.id {
            let first =
                (self.replays.lock().unwrap_or_else(|e| e.into_inner())).first_time(forge, id);
            if !first {
                self.status.webhook(forge.name(), "replay");
                return reply(409, "this delivery was received before");
            }
        }
        let repository = match delivery.event {
            Event::Push(repository) => repository,
            Event::Ping => {
                self.status.webhook(forge.name(), "ignored");
                return reply(200, "pong");
            }
            Event::Other(kind) => {
                self.status.webhook(forge.name(), "ignored");
                return reply(200, &format!("ignored: {kind} events need no mirror"));
            }
        };
        if self.stopping.load(Ordering::SeqCst) {
            return reply(503, "stopping: send this delivery again later");
        }
        let targets = self.targets_of(&repository);
        if targets.is_empty() {
            self.status.webhook(forge.name(), "unknown_repository");
            return reply(
                200,
                &format!("no mirror is configured for {}", repository.name),
            );
        }
        let received = Instant::now();
        let mut queued = vec![];
        let mut coalesced = vec![];
        for target in targets {
            match self.submit(&target, Cause::Webhook, received) {
                Submitted::Queued => queued.push(target),
                Submitted::Coalesced => coalesced.push(target),
                Submitted::Stopping => {
                    return reply(503, "stopping: send this delivery again later")
                }
            }
        }
        let label = if queued.is_empty() {
            "coalesced"
        } else {
            "queued"
        };
        self.status.webhook(forge.name(), label);
        let mut message = String::new();
        if !queued.is_empty() {
            message.push_str(&format!("queued: {}", queued.join(", ")));
        }
        if !coalesced.is_empty() {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(&format!("already queued: {}", coalesced.join(", ")));
        }
        reply(202, &message)
    }

    fn oversized(&self, segment: &str) {
        let forge = Forge::from_path(segment).map_or("unknown", Forge::name);
        self.status.webhook(forge, "oversized");
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn status(&self) -> &Status {
        // The queue as it is now, not as the last submission left it.
        if let Some(scheduler) = self.scheduler.get() {
            self.status
                .set_queue(scheduler.queued(), scheduler.running());
        }
        &self.status
    }
}

impl webhook::Headers for axum::http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name)?.to_str().ok()
    }
}

fn reply(status: u16, message: &str) -> Reply {
    Reply {
        status,
        message: message.to_string(),
    }
}

fn cause_label(cause: &Cause) -> &'static str {
    match cause {
        Cause::Startup => "startup",
        Cause::Webhook => "webhook",
        Cause::Poll => "poll",
        Cause::Retry(_) => "retry",
    }
}

/// A run that failed before it could start mirroring.
fn failed(started: SystemTime, clock: Instant, cause: &'static str, message: String) -> RunRecord {
    RunRecord {
        started,
        duration: clock.elapsed(),
        result: RunResult::Failed,
        cause,
        in_sync: false,
        refs_changed: 0,
        bytes: 0,
        error: Some(message),
        lag: None,
    }
}

/// One status record per repository a sweep mirrored, by its name in the
/// sweep.
fn repository_records(
    summary: &Summary,
    cause: &'static str,
    lag: Option<Duration>,
) -> Vec<(String, RunRecord)> {
    use crate::sweep::fleet::State;
    let mut records = vec![];
    for repo in &summary.repositories {
        if matches!(repo.result, State::Skipped | State::WouldCreate) {
            continue;
        }
        let duration = Duration::from_millis(repo.duration_ms);
        let ended = repo.ended.unwrap_or_else(SystemTime::now);
        let report = repo.report.as_ref();
        let totals = report.map(|r| &r.totals);
        let record = RunRecord {
            started: ended.checked_sub(duration).unwrap_or(ended),
            duration,
            result: match repo.result {
                State::InSync | State::Updated => RunResult::Ok,
                State::Failed => RunResult::Failed,
                _ => RunResult::Differs,
            },
            cause,
            in_sync: matches!(repo.result, State::InSync | State::Updated),
            refs_changed: totals.map_or(0, |t| (t.created + t.updated + t.deleted) as u64),
            bytes: report.map_or(0, |r| r.pack_bytes),
            error: (repo.result == State::Failed).then(|| {
                let reason = repo.reason.clone().unwrap_or_else(|| "failed".into());
                match &repo.hint {
                    Some(hint) => format!("{reason} (hint: {hint})"),
                    None => reason,
                }
            }),
            lag,
        };
        records.push((repo.name.clone(), record));
    }
    records
}

/// A failure as one line for the status page: the side, the message and
/// what to do.
fn one_line(failure: &Failure) -> String {
    let mut line = match failure.side {
        Some(side) => format!("{side}: {}", failure.message),
        None => failure.message.clone(),
    };
    if let Some(hint) = &failure.hint {
        line.push_str(&format!(" (hint: {hint})"));
    }
    line
}

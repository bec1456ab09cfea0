//! The scheduler of `git-relay serve`: when each mirror runs. Webhooks,
//! polls, the startup check and retries all become submissions for a key
//! (a mirror or a sweep); the scheduler coalesces them, runs at most one
//! run per key and `concurrency` runs in all, retries failures with
//! back-off, and at shutdown lets running runs finish within a grace period.
//!
//! The rules live in [`state`], a pure state machine with an explicit clock.
//! This file only drives it: worker threads that take the next run and call
//! the runner (the mirror engine is blocking code, so plain threads), and a
//! timer thread that submits polls and retries when they are due. It knows
//! nothing of what a run does; the runner says only whether it worked.

mod state;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use state::State;

/// Why a key was submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The check of every mirror when serve starts.
    Startup,
    /// A push the forge told us of.
    Webhook,
    /// The key's polling interval passed without a run.
    Poll,
    /// A failed run, tried again; the attempt number counts from 1.
    Retry(u32),
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Runs at once, all keys together (at least one).
    pub(crate) concurrency: usize,
    /// Attempts after a failure.
    pub(crate) retries: u32,
    /// The delay before the first retry, doubled for each further attempt.
    pub(crate) retry_delay: Duration,
    /// The longest delay before a retry.
    pub(crate) retry_max: Duration,
    /// The least time between the starts of two runs of one key (zero:
    /// none). Coalescing alone bounds the runs of a burst of webhooks only
    /// while a run lasts longer than the burst; this bounds them whatever
    /// a run lasts, at the cost of delaying a push that comes soon after a run.
    pub(crate) spacing: Duration,
}

/// What the runner is told about the run it performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) key: String,
    /// The cause of the first submission this run serves.
    pub(crate) cause: Cause,
    /// The earliest webhook received among the submissions it serves (for the lag).
    pub(crate) first_event: Option<Instant>,
    /// The submissions coalesced into it.
    pub(crate) served: usize,
}

/// How a run ended: a failed one is retried with back-off while attempts remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Failed,
}

/// What became of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// A new run will serve it.
    Queued,
    /// It joined a run that waits already.
    Coalesced,
    /// The scheduler is stopping and takes nothing new.
    Stopping,
}

type Runner = Arc<dyn Fn(&Run) -> Outcome + Send + Sync>;

/// A handle on the scheduler; clones share it.
#[derive(Clone)]
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Notified on every change of `state`: the workers, the timer and
    /// `stop` each wait on it for their own condition.
    changed: Condvar,
    runner: Runner,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed by its own methods, which do not panic
        // half-way (runners run outside the lock), so a poisoned lock still
        // guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Scheduler {
    /// Starts `settings.concurrency` workers and a timer thread. `polls`
    /// lists each key polled on an interval (first poll one interval after
    /// start; the wiring submits `Startup` itself).
    pub(crate) fn start(
        settings: Settings,
        polls: Vec<(String, Duration)>,
        runner: Runner,
    ) -> std::io::Result<Scheduler> {
        let workers = settings.concurrency.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(settings, polls, Instant::now())),
            changed: Condvar::new(),
            runner,
        });
        for n in 0..workers {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("serve-worker-{n}"))
                .spawn(move || work(&shared))?;
        }
        let timer = Arc::clone(&shared);
        let started = thread::Builder::new()
            .name("serve-timer".to_owned())
            .spawn(move || time(&timer));
        if let Err(e) = started {
            // Let the workers already started end.
            shared.lock().stop();
            shared.changed.notify_all();
            return Err(e);
        }
        Ok(Scheduler { shared })
    }

    /// Submits a run of `key`; `received` is when its webhook arrived (it
    /// counts for the lag only when `cause` is `Webhook`).
    pub(crate) fn submit(&self, key: &str, cause: Cause, received: Instant) -> Submitted {
        let submitted = self.shared.lock().submit(key, cause, received);
        self.shared.changed.notify_all();
        submitted
    }

    /// Runs waiting to start, follow-ups of running keys included; neither
    /// running runs nor retries waiting for their delay.
    pub(crate) fn queued(&self) -> usize {
        self.shared.lock().queued()
    }

    pub(crate) fn running(&self) -> usize {
        self.shared.lock().running()
    }

    /// Stops accepting and polling, drops what waits, and waits up to
    /// `grace` for running runs to finish. Returns true when all finished
    /// in time; runs still going then are left to end with the process.
    pub(crate) fn stop(&self, grace: Duration) -> bool {
        let mut state = self.shared.lock();
        state.stop();
        self.shared.changed.notify_all();
        let deadline = Instant::now().checked_add(grace);
        while state.running() > 0 {
            let now = Instant::now();
            let left = match deadline {
                Some(deadline) if deadline <= now => return false,
                Some(deadline) => deadline - now,
                None => Duration::MAX,
            };
            state = match self.shared.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

/// A worker: takes the next run, performs it, records how it ended; until stopped.
fn work(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(run) = state.next(Instant::now()) {
            drop(state);
            // A bug in one run must not take its worker with it.
            let outcome =
                catch_unwind(AssertUnwindSafe(|| (shared.runner)(&run))).unwrap_or(Outcome::Failed);
            state = shared.lock();
            state.finish(&run.key, outcome, Instant::now());
            shared.changed.notify_all();
        } else if state.stopping() {
            return;
        } else if let Some(at) = state.held_until() {
            // At least a millisecond, so that a broken promise of `held_until`
            // could never make an idle worker spin.
            let wait = at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            state = match shared.changed.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        } else {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The timer: submits polls and retries when they are due; until stopped.
fn time(shared: &Shared) {
    let mut state = shared.lock();
    while !state.stopping() {
        let now = Instant::now();
        let before = state.queued();
        state.wake(now);
        if state.queued() != before {
            shared.changed.notify_all();
        }
        state = match state.wake_at() {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                match shared.changed.wait_timeout(state, wait) {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                }
            }
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    fn settings(concurrency: usize) -> Settings {
        Settings {
            concurrency,
            retries: 2,
            retry_delay: Duration::from_millis(20),
            retry_max: Duration::from_secs(1),
            spacing: Duration::ZERO,
        }
    }

    /// Waits up to five seconds for `done`, so a slow machine does not fail a test.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The runs a runner performed, with when each started and ended.
    #[derive(Default)]
    struct Log(Mutex<Vec<(Run, Instant, Instant)>>);

    impl Log {
        fn runs(&self) -> Vec<(Run, Instant, Instant)> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A runner that blocks each run until the test sends it an outcome.
    fn gated() -> (Runner, mpsc::Sender<Outcome>, Arc<Log>) {
        let (send, receive) = mpsc::channel();
        let receive = Mutex::new(receive);
        let log = Arc::new(Log::default());
        let record = Arc::clone(&log);
        let runner: Runner = Arc::new(move |run: &Run| {
            let start = Instant::now();
            let outcome = receive.lock().unwrap().recv().unwrap_or(Outcome::Failed);
            record
                .0
                .lock()
                .unwrap()
                .push((run.clone(), start, Instant::now()));
            outcome
        });
        (runner, send, log)
    }

    #[test]
    fn runs_stay_within_the_limit_and_one_per_key() {
        let log = Arc::new(Log::default());
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let record = Arc::clone(&log);
        let (n, m) = (Arc::clone(&now), Arc::clone(&most));
        let runner: Runner = Arc::new(move |run: &Run| {
            let start = Instant::now();
            m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(10));
            n.fetch_sub(1, Ordering::SeqCst);
            record
                .0
                .lock()
                .unwrap()
                .push((run.clone(), start, Instant::now()));
            Outcome::Done
        });
        let scheduler = Scheduler::start(settings(3), vec![], runner).unwrap();
        for i in 0..60 {
            scheduler.submit(&format!("k{}", i % 6), Cause::Webhook, Instant::now());
            thread::sleep(Duration::from_millis(1));
        }
        eventually("the queue to drain", || {
            scheduler.queued() + scheduler.running() == 0
        });
        assert!(scheduler.stop(Duration::from_secs(1)));
        assert_eq!(most.load(Ordering::SeqCst), 3);
        let runs = log.runs();
        assert_eq!(runs.iter().map(|(r, ..)| r.served).sum::<usize>(), 60);
        for (a, a_start, a_end) in &runs {
            for (b, b_start, _) in &runs {
                let overlap = a_start < b_start && b_start < a_end;
                assert!(
                    !(a.key == b.key && overlap),
                    "two runs of {} at once",
                    a.key
                );
            }
        }
    }

    #[test]
    fn a_burst_of_200_submissions_for_5_keys_makes_at_most_10_runs() {
        let (runner, release, log) = gated();
        let scheduler = Scheduler::start(settings(4), vec![], runner).unwrap();
        let mut answers = Vec::new();
        for i in 0..200 {
            answers.push(scheduler.submit(
                &format!("repo{}", i % 5),
                Cause::Webhook,
                Instant::now(),
            ));
        }
        let queued = answers.iter().filter(|a| **a == Submitted::Queued).count();
        assert!(queued <= 10, "{queued} queued");
        for _ in 0..10 {
            release.send(Outcome::Done).unwrap();
        }
        eventually("the queue to drain", || {
            scheduler.queued() + scheduler.running() == 0
        });
        let runs = log.runs();
        assert_eq!(runs.len(), queued);
        assert_eq!(runs.iter().map(|(r, ..)| r.served).sum::<usize>(), 200);
        assert!(scheduler.stop(Duration::from_secs(1)));
    }

    #[test]
    fn spacing_bounds_the_runs_of_a_burst_longer_than_a_run() {
        let log = Arc::new(Log::default());
        let record = Arc::clone(&log);
        let runner: Runner = Arc::new(move |run: &Run| {
            let start = Instant::now();
            thread::sleep(Duration::from_millis(5));
            record
                .0
                .lock()
                .unwrap()
                .push((run.clone(), start, Instant::now()));
            Outcome::Done
        });
        let spacing = Duration::from_millis(300);
        let scheduler = Scheduler::start(
            Settings {
                spacing,
                ..settings(2)
            },
            vec![],
            runner,
        )
        .unwrap();
        let burst = Instant::now();
        for i in 0..100 {
            scheduler.submit(&format!("repo{}", i % 2), Cause::Webhook, Instant::now());
            thread::sleep(Duration::from_millis(2));
        }
        // One run at the start, one per spacing the burst lasted (longer on a
        // loaded machine), one after it: two runs a key for a short burst.
        let bound = 2 * (2 + burst.elapsed().as_millis() / spacing.as_millis()) as usize;
        eventually("the queue to drain", || {
            scheduler.queued() + scheduler.running() == 0
        });
        assert!(scheduler.stop(Duration::from_secs(1)));
        let runs = log.runs();
        assert!(runs.len() <= bound, "{} runs, at most {bound}", runs.len());
        assert_eq!(runs.iter().map(|(r, ..)| r.served).sum::<usize>(), 100);
        for key in ["repo0", "repo1"] {
            let starts: Vec<Instant> = runs
                .iter()
                .filter(|(r, ..)| r.key == key)
                .map(|r| r.1)
                .collect();
            for pair in starts.windows(2) {
                assert!(
                    pair[1] - pair[0] >= spacing,
                    "{key} started twice within {spacing:?}"
                );
            }
        }
    }

    #[test]
    fn a_panicking_runner_fails_the_run_and_the_worker_lives_on() {
        let causes = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&causes);
        let runner: Runner = Arc::new(move |run: &Run| {
            let mut causes = record.lock().unwrap();
            causes.push(run.cause);
            if causes.len() == 1 {
                drop(causes);
                panic!("a bug in the run of {}", run.key);
            }
            Outcome::Done
        });
        // One worker: the retry can only run if the panic left it alive.
        let scheduler = Scheduler::start(settings(1), vec![], runner).unwrap();
        scheduler.submit("k", Cause::Startup, Instant::now());
        eventually("the retry", || causes.lock().unwrap().len() == 2);
        eventually("its end", || scheduler.running() == 0);
        assert_eq!(*causes.lock().unwrap(), [Cause::Startup, Cause::Retry(1)]);
        scheduler.submit("k", Cause::Webhook, Instant::now());
        eventually("a later run", || causes.lock().unwrap().len() == 3);
        assert!(scheduler.stop(Duration::from_secs(1)));
    }

    #[test]
    fn failed_runs_are_retried_with_growing_delays_until_attempts_run_out() {
        let (runner, release, log) = gated();
        let scheduler = Scheduler::start(settings(1), vec![], runner).unwrap();
        scheduler.submit("k", Cause::Webhook, Instant::now());
        for _ in 0..3 {
            release.send(Outcome::Failed).unwrap();
        }
        eventually("three runs", || log.runs().len() == 3);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(scheduler.running(), 0, "no third retry");
        let runs = log.runs();
        let causes: Vec<Cause> = runs.iter().map(|(r, ..)| r.cause).collect();
        assert_eq!(causes, [Cause::Webhook, Cause::Retry(1), Cause::Retry(2)]);
        assert!(runs[1].1 - runs[0].2 >= Duration::from_millis(20));
        assert!(runs[2].1 - runs[1].2 >= Duration::from_millis(40));
        assert!(scheduler.stop(Duration::from_secs(1)));
    }

    #[test]
    fn keys_are_polled_an_interval_after_their_last_run() {
        let (runner, release, log) = gated();
        let every = Duration::from_millis(30);
        let scheduler = Scheduler::start(settings(2), vec![("k".into(), every)], runner).unwrap();
        for _ in 0..3 {
            release.send(Outcome::Done).unwrap();
        }
        eventually("three polls", || log.runs().len() == 3);
        let runs = log.runs();
        assert!(runs.iter().all(|(r, ..)| r.cause == Cause::Poll));
        for pair in runs.windows(2) {
            assert!(pair[1].1 - pair[0].2 >= every);
        }
        assert!(scheduler.stop(Duration::from_secs(1)));
    }

    #[test]
    fn stop_drops_what_waits_and_waits_for_what_runs() {
        let (runner, release, log) = gated();
        let scheduler = Scheduler::start(settings(1), vec![], runner).unwrap();
        scheduler.submit("a", Cause::Startup, Instant::now());
        scheduler.submit("b", Cause::Startup, Instant::now());
        eventually("a to start", || scheduler.running() == 1);
        assert!(!scheduler.stop(Duration::from_millis(30)), "a still runs");
        assert_eq!(
            scheduler.submit("c", Cause::Webhook, Instant::now()),
            Submitted::Stopping
        );
        assert_eq!(scheduler.queued(), 0);
        let stopper = scheduler.clone();
        let stopped = thread::spawn(move || stopper.stop(Duration::from_secs(5)));
        thread::sleep(Duration::from_millis(20));
        release.send(Outcome::Done).unwrap();
        assert!(stopped.join().unwrap());
        thread::sleep(Duration::from_millis(50));
        let keys: Vec<String> = log.runs().into_iter().map(|(r, ..)| r.key).collect();
        assert_eq!(keys, ["a"], "b was dropped");
    }
}

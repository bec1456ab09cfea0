//! The scheduler's pure core: which run starts next, given what was
//! submitted, what runs and what time it is. It has no threads and reads no
//! clock (every decision that depends on time takes `now`), so each rule is
//! tested here with a fake clock; `queue` only drives it from threads.
//!
//! Per key it keeps at most one run waiting and one running. A submission
//! for a waiting key joins the waiting run; one for a running key becomes
//! the waiting run (a follow-up: the running one may have listed refs
//! before the push that caused the submission), and it is queued when the
//! running one ends. Keys wait in `ready` in the order they were submitted;
//! one whose previous run started less than `spacing` ago lets the keys
//! behind it pass.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::{Cause, Outcome, Run, Settings, Submitted};

/// A run that waits to start, and the submissions it serves.
#[derive(Debug)]
struct Pending {
    cause: Cause,
    first_event: Option<Instant>,
    served: usize,
}

#[derive(Debug, Default)]
struct Slot {
    waiting: Option<Pending>,
    running: bool,
    /// The retry of a failed run: when it is due, and its attempt number.
    retry: Option<(Instant, u32)>,
    /// Failed runs since the last one that was done.
    failures: u32,
    poll_every: Option<Duration>,
    /// `None` while the key waits, runs or waits for a retry: the end of
    /// that run sets it again.
    next_poll: Option<Instant>,
    last_start: Option<Instant>,
}

impl Slot {
    fn idle(&self) -> bool {
        self.waiting.is_none() && !self.running && self.retry.is_none()
    }

    /// When `spacing` lets the key's next run start, if it holds it back at all.
    fn not_before(&self, spacing: Duration) -> Option<Instant> {
        self.last_start?.checked_add(spacing)
    }
}

pub(super) struct State {
    settings: Settings,
    /// A `BTreeMap` so that timers due at the same instant fire in a stable order.
    slots: BTreeMap<String, Slot>,
    /// Keys whose waiting run may start, first submitted first; none of them runs.
    ready: VecDeque<String>,
    running: usize,
    stopping: bool,
}

impl State {
    /// `polls`: the keys checked every interval, the first time one interval after `now`.
    pub(super) fn new(settings: Settings, polls: Vec<(String, Duration)>, now: Instant) -> State {
        let mut slots = BTreeMap::new();
        for (key, every) in polls {
            let slot = Slot {
                poll_every: Some(every),
                next_poll: now.checked_add(every),
                ..Slot::default()
            };
            slots.insert(key, slot);
        }
        State {
            settings,
            slots,
            ready: VecDeque::new(),
            running: 0,
            stopping: false,
        }
    }

    pub(super) fn submit(&mut self, key: &str, cause: Cause, received: Instant) -> Submitted {
        if self.stopping {
            return Submitted::Stopping;
        }
        let slot = self.slots.entry(key.to_owned()).or_default();
        // Whatever made this submission wants the key checked now, which is
        // what the retry waited to do.
        slot.retry = None;
        let event = matches!(cause, Cause::Webhook).then_some(received);
        match &mut slot.waiting {
            Some(pending) => {
                pending.served += 1;
                pending.first_event = match (pending.first_event, event) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Submitted::Coalesced
            }
            None => {
                slot.waiting = Some(Pending {
                    cause,
                    first_event: event,
                    served: 1,
                });
                if !slot.running {
                    self.ready.push_back(key.to_owned());
                }
                Submitted::Queued
            }
        }
    }

    /// Submits the retries and polls due at `now`, earliest first.
    pub(super) fn wake(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        let mut due = Vec::new();
        for (key, slot) in &mut self.slots {
            if let Some((at, attempt)) = slot.retry.filter(|(at, _)| *at <= now) {
                slot.retry = None;
                due.push((at, key.clone(), Cause::Retry(attempt)));
            } else if let Some(at) = slot.next_poll.filter(|at| *at <= now) {
                slot.next_poll = None;
                // A key that waits or runs is being checked already.
                if slot.idle() {
                    due.push((at, key.clone(), Cause::Poll));
                }
            }
        }
        due.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (at, key, cause) in due {
            self.submit(&key, cause, at);
        }
    }

    /// When `wake` next has something to do.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        let retries = self
            .slots
            .values()
            .filter_map(|s| s.retry.map(|(at, _)| at));
        let polls = self.slots.values().filter_map(|s| s.next_poll);
        retries.chain(polls).min()
    }

    /// The run to start now, if one waits and the concurrency limit allows it.
    pub(super) fn next(&mut self, now: Instant) -> Option<Run> {
        self.wake(now);
        if self.stopping || self.running >= self.settings.concurrency.max(1) {
            return None;
        }
        let spacing = self.settings.spacing;
        let slots = &self.slots;
        let first = self.ready.iter().position(|key| {
            let not_before = slots.get(key).and_then(|s| s.not_before(spacing));
            not_before.is_none_or(|at| at <= now)
        })?;
        let key = self.ready.remove(first)?;
        let slot = self.slots.get_mut(&key)?;
        let pending = slot.waiting.take()?;
        slot.running = true;
        slot.last_start = Some(now);
        self.running += 1;
        Some(Run {
            key,
            cause: pending.cause,
            first_event: pending.first_event,
            served: pending.served,
        })
    }

    /// When the first run that waits only for `spacing` may start.
    pub(super) fn held_until(&self) -> Option<Instant> {
        let spacing = self.settings.spacing;
        let ready = self.ready.iter().filter_map(|key| self.slots.get(key));
        ready.filter_map(|slot| slot.not_before(spacing)).min()
    }

    /// Records the end of the key's run: queues its follow-up, or its retry.
    pub(super) fn finish(&mut self, key: &str, outcome: Outcome, now: Instant) {
        let Some(slot) = self.slots.get_mut(key).filter(|s| s.running) else {
            return;
        };
        slot.running = false;
        self.running -= 1;
        slot.failures = match outcome {
            Outcome::Done => 0,
            Outcome::Failed => slot.failures.saturating_add(1),
        };
        if self.stopping {
            return;
        }
        slot.next_poll = slot.poll_every.and_then(|every| now.checked_add(every));
        if slot.waiting.is_some() {
            // The follow-up runs now; if this run failed it serves as the retry.
            self.ready.push_back(key.to_owned());
        } else if outcome == Outcome::Failed && slot.failures <= self.settings.retries {
            let attempt = slot.failures;
            let delay = retry_delay(&self.settings, attempt);
            slot.retry = now.checked_add(delay).map(|at| (at, attempt));
        }
    }

    /// Refuses submissions from now on, and drops what waits.
    pub(super) fn stop(&mut self) {
        self.stopping = true;
        self.ready.clear();
        for slot in self.slots.values_mut() {
            slot.waiting = None;
            slot.retry = None;
            slot.next_poll = None;
        }
    }

    /// Runs waiting to start, follow-ups of running ones included.
    pub(super) fn queued(&self) -> usize {
        self.slots.values().filter(|s| s.waiting.is_some()).count()
    }

    pub(super) fn running(&self) -> usize {
        self.running
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping
    }
}

/// `retry_delay * 2^(attempt-1)`, at most `retry_max`.
fn retry_delay(settings: &Settings, attempt: u32) -> Duration {
    2u32.checked_pow(attempt.saturating_sub(1))
        .and_then(|factor| settings.retry_delay.checked_mul(factor))
        .map_or(settings.retry_max, |delay| delay.min(settings.retry_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(concurrency: usize) -> Settings {
        Settings {
            concurrency,
            retries: 3,
            retry_delay: Duration::from_secs(30),
            retry_max: Duration::from_secs(100),
            spacing: Duration::ZERO,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn keys(runs: &[Run]) -> Vec<&str> {
        runs.iter().map(|r| r.key.as_str()).collect()
    }

    /// Starts every run the state allows at `now`.
    fn start_all(state: &mut State, now: Instant) -> Vec<Run> {
        std::iter::from_fn(|| state.next(now)).collect()
    }

    #[test]
    fn runs_start_in_submission_order_up_to_the_concurrency_limit() {
        let t0 = Instant::now();
        let mut state = State::new(settings(2), vec![], t0);
        for key in ["c", "a", "b"] {
            assert_eq!(state.submit(key, Cause::Startup, t0), Submitted::Queued);
        }
        let runs = start_all(&mut state, t0);
        assert_eq!(keys(&runs), ["c", "a"]);
        assert_eq!((state.running(), state.queued()), (2, 1));
        state.finish("a", Outcome::Done, t0);
        assert_eq!(keys(&start_all(&mut state, t0)), ["b"]);
        assert_eq!((state.running(), state.queued()), (2, 0));
    }

    #[test]
    fn submissions_for_a_waiting_key_join_its_run_and_keep_the_earliest_webhook() {
        let t0 = Instant::now();
        let mut state = State::new(settings(1), vec![], t0);
        state.submit("busy", Cause::Startup, t0);
        let _busy = state.next(t0).unwrap();
        assert_eq!(state.submit("k", Cause::Poll, t0), Submitted::Queued);
        let answers = [
            state.submit("k", Cause::Webhook, t0 + secs(3)),
            state.submit("k", Cause::Webhook, t0 + secs(2)),
            state.submit("k", Cause::Webhook, t0 + secs(5)),
        ];
        assert_eq!(answers, [Submitted::Coalesced; 3]);
        assert_eq!(state.queued(), 1);
        state.finish("busy", Outcome::Done, t0);
        let run = state.next(t0).unwrap();
        assert_eq!(run.key, "k");
        assert_eq!(run.cause, Cause::Poll);
        assert_eq!(run.first_event, Some(t0 + secs(2)));
        assert_eq!(run.served, 4);
    }

    #[test]
    fn a_running_key_gets_one_follow_up_that_starts_after_it() {
        let t0 = Instant::now();
        let mut state = State::new(settings(4), vec![], t0);
        state.submit("k", Cause::Webhook, t0);
        let first = state.next(t0).unwrap();
        assert_eq!((first.served, first.first_event), (1, Some(t0)));
        assert_eq!(
            state.submit("k", Cause::Webhook, t0 + secs(1)),
            Submitted::Queued
        );
        assert_eq!(
            state.submit("k", Cause::Webhook, t0 + secs(2)),
            Submitted::Coalesced
        );
        // A free worker does not start a second run of the same key.
        assert!(state.next(t0 + secs(2)).is_none());
        assert_eq!(state.queued(), 1);
        state.finish("k", Outcome::Done, t0 + secs(3));
        let follow_up = state.next(t0 + secs(3)).unwrap();
        assert_eq!(
            (follow_up.served, follow_up.first_event),
            (2, Some(t0 + secs(1)))
        );
        assert!(state.next(t0 + secs(3)).is_none());
    }

    #[test]
    fn a_burst_shorter_than_a_run_makes_at_most_two_runs_per_key() {
        let t0 = Instant::now();
        let mut state = State::new(settings(4), vec![], t0);
        let mut runs = Vec::new();
        for i in 0..200u64 {
            let now = t0 + Duration::from_millis(5 * i);
            state.submit(&format!("repo{}", i % 5), Cause::Webhook, now);
            runs.extend(start_all(&mut state, now));
        }
        // Runs take two seconds: the burst is over before the first ends.
        let mut now = t0 + secs(1);
        let mut done = 0;
        while done < runs.len() {
            now += secs(2);
            let key = runs[done].key.clone();
            state.finish(&key, Outcome::Done, now);
            runs.extend(start_all(&mut state, now));
            done += 1;
        }
        assert_eq!(state.queued() + state.running(), 0);
        assert!(runs.len() <= 10, "{} runs", runs.len());
        assert_eq!(runs.iter().map(|r| r.served).sum::<usize>(), 200);
    }

    #[test]
    fn spacing_holds_a_key_back_and_lets_the_others_pass() {
        let t0 = Instant::now();
        let mut state = State::new(
            Settings {
                spacing: secs(1),
                ..settings(2)
            },
            vec![],
            t0,
        );
        state.submit("k", Cause::Webhook, t0);
        state.next(t0).unwrap();
        state.finish("k", Outcome::Done, t0 + ms(20));
        assert_eq!(
            state.submit("k", Cause::Webhook, t0 + ms(30)),
            Submitted::Queued
        );
        assert!(state.next(t0 + ms(30)).is_none());
        assert_eq!(state.held_until(), Some(t0 + secs(1)));
        state.submit("j", Cause::Webhook, t0 + ms(40));
        assert_eq!(state.next(t0 + ms(40)).unwrap().key, "j");
        assert_eq!(
            state.submit("k", Cause::Webhook, t0 + ms(50)),
            Submitted::Coalesced
        );
        assert!(state.next(t0 + ms(999)).is_none());
        let run = state.next(t0 + secs(1)).unwrap();
        assert_eq!((run.key.as_str(), run.served), ("k", 2));
        assert_eq!(state.held_until(), None);
    }

    #[test]
    fn with_spacing_a_burst_longer_than_a_run_makes_at_most_two_runs_per_key() {
        let t0 = Instant::now();
        let mut state = State::new(
            Settings {
                spacing: secs(1),
                ..settings(4)
            },
            vec![],
            t0,
        );
        let mut runs = 0;
        let mut served = 0;
        // Runs take 20 ms; the burst lasts a second.
        let mut running: VecDeque<(Instant, String)> = VecDeque::new();
        for step in 0..400u64 {
            let now = t0 + ms(5 * step);
            if step < 200 {
                state.submit(&format!("repo{}", step % 5), Cause::Webhook, now);
            }
            while running.front().is_some_and(|(end, _)| *end <= now) {
                let (_, key) = running.pop_front().unwrap();
                state.finish(&key, Outcome::Done, now);
            }
            for run in start_all(&mut state, now) {
                runs += 1;
                served += run.served;
                running.push_back((now + ms(20), run.key));
            }
        }
        assert_eq!(state.queued() + state.running(), 0);
        assert_eq!(served, 200);
        assert!(runs <= 10, "{runs} runs");
    }

    #[test]
    fn a_key_is_polled_one_interval_after_its_last_run_ended() {
        let t0 = Instant::now();
        let mut state = State::new(settings(2), vec![("k".into(), secs(60))], t0);
        assert_eq!(state.wake_at(), Some(t0 + secs(60)));
        assert!(state.next(t0 + secs(59)).is_none());
        let run = state.next(t0 + secs(60)).unwrap();
        assert_eq!((run.key.as_str(), run.cause), ("k", Cause::Poll));
        assert_eq!(state.wake_at(), None);
        state.finish("k", Outcome::Done, t0 + secs(65));
        assert_eq!(state.wake_at(), Some(t0 + secs(125)));
        // A webhook run pushes the next poll back.
        state.submit("k", Cause::Webhook, t0 + secs(100));
        state.next(t0 + secs(100)).unwrap();
        assert!(state.next(t0 + secs(125)).is_none());
        state.finish("k", Outcome::Done, t0 + secs(130));
        assert!(state.next(t0 + secs(189)).is_none());
        assert_eq!(state.next(t0 + secs(190)).unwrap().cause, Cause::Poll);
    }

    #[test]
    fn a_poll_due_while_the_key_runs_is_skipped() {
        let t0 = Instant::now();
        let mut state = State::new(settings(2), vec![("k".into(), secs(60))], t0);
        state.submit("k", Cause::Startup, t0);
        state.next(t0).unwrap();
        state.wake(t0 + secs(61));
        assert_eq!(state.queued(), 0);
        state.finish("k", Outcome::Done, t0 + secs(70));
        assert_eq!(state.wake_at(), Some(t0 + secs(130)));
    }

    #[test]
    fn a_failed_run_is_retried_with_doubling_delays_up_to_the_cap() {
        let t0 = Instant::now();
        let mut state = State::new(settings(1), vec![], t0);
        state.submit("k", Cause::Webhook, t0);
        let mut now = t0;
        let mut delays = Vec::new();
        let mut run = state.next(now).unwrap();
        loop {
            state.finish("k", Outcome::Failed, now);
            let Some(at) = state.wake_at() else { break };
            assert!(state.next(at - Duration::from_millis(1)).is_none());
            assert_eq!(state.queued(), 0, "a delayed retry is not queued");
            delays.push((at - now).as_secs());
            now = at;
            run = state.next(now).unwrap();
            assert_eq!(run.cause, Cause::Retry(delays.len() as u32));
        }
        assert_eq!(delays, [30, 60, 100]);
        assert_eq!(run.cause, Cause::Retry(3));
    }

    #[test]
    fn a_done_run_resets_the_attempts() {
        let t0 = Instant::now();
        let mut state = State::new(settings(1), vec![], t0);
        state.submit("k", Cause::Webhook, t0);
        state.next(t0).unwrap();
        state.finish("k", Outcome::Failed, t0);
        let retry = state.next(t0 + secs(30)).unwrap();
        assert_eq!(retry.cause, Cause::Retry(1));
        state.finish("k", Outcome::Done, t0 + secs(31));
        state.submit("k", Cause::Webhook, t0 + secs(40));
        state.next(t0 + secs(40)).unwrap();
        state.finish("k", Outcome::Failed, t0 + secs(41));
        assert_eq!(state.wake_at(), Some(t0 + secs(71)));
        assert_eq!(state.next(t0 + secs(71)).unwrap().cause, Cause::Retry(1));
    }

    #[test]
    fn a_submission_while_a_retry_waits_runs_at_once_instead() {
        let t0 = Instant::now();
        let mut state = State::new(settings(1), vec![], t0);
        state.submit("k", Cause::Startup, t0);
        state.next(t0).unwrap();
        state.finish("k", Outcome::Failed, t0);
        assert_eq!(
            state.submit("k", Cause::Webhook, t0 + secs(5)),
            Submitted::Queued
        );
        let run = state.next(t0 + secs(5)).unwrap();
        assert_eq!(run.cause, Cause::Webhook);
        state.finish("k", Outcome::Done, t0 + secs(6));
        assert_eq!(state.wake_at(), None, "the retry was cancelled");
    }

    #[test]
    fn a_follow_up_of_a_failed_run_is_its_retry() {
        let t0 = Instant::now();
        let mut state = State::new(settings(1), vec![], t0);
        state.submit("k", Cause::Startup, t0);
        state.next(t0).unwrap();
        state.submit("k", Cause::Webhook, t0 + secs(1));
        state.finish("k", Outcome::Failed, t0 + secs(2));
        assert_eq!(state.wake_at(), None);
        assert_eq!(state.next(t0 + secs(2)).unwrap().cause, Cause::Webhook);
        // It counts as the second attempt: its failure waits twice as long.
        state.finish("k", Outcome::Failed, t0 + secs(3));
        assert_eq!(state.wake_at(), Some(t0 + secs(63)));
    }

    #[test]
    fn stopping_refuses_submissions_drops_what_waits_and_starts_nothing() {
        let t0 = Instant::now();
        let mut state = State::new(settings(1), vec![("p".into(), secs(10))], t0);
        state.submit("a", Cause::Startup, t0);
        state.submit("b", Cause::Startup, t0);
        state.next(t0).unwrap();
        state.submit("a", Cause::Webhook, t0);
        state.stop();
        assert_eq!(state.submit("c", Cause::Webhook, t0), Submitted::Stopping);
        assert_eq!((state.queued(), state.running()), (0, 1));
        state.finish("a", Outcome::Failed, t0 + secs(1));
        assert_eq!(state.running(), 0);
        assert_eq!(state.wake_at(), None, "no poll, no retry");
        assert!(state.next(t0 + secs(100)).is_none());
    }

    #[test]
    fn the_retry_delay_does_not_overflow() {
        let s = settings(1);
        assert_eq!(retry_delay(&s, 1), secs(30));
        assert_eq!(retry_delay(&s, 2), secs(60));
        assert_eq!(retry_delay(&s, 40), secs(100));
        assert_eq!(retry_delay(&s, u32::MAX), secs(100));
    }
}

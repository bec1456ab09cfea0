//! What `git-relay serve` knows of its mirrors while it runs, and the
//! three ways it shows it: `/status.json`, the `/status` page and
//! `/metrics` (Prometheus text, prefix `git_relay_serve_`).
//!
//! Nothing here is state the service needs to be correct: it is rebuilt
//! from nothing at every start (the truth is on the two servers), so it
//! lives in memory behind one mutex, held only to copy a number or render
//! a page. Every string that reaches a rendering passes the redactor
//! first, before any escaping (an escaped secret no longer looks like
//! itself): a mirror's error may quote a server that quoted a token.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::auth::redact;

/// How a run ended, as its `result` label says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunResult {
    /// Both sides hold the same refs.
    Ok,
    /// The run completed but refs still differ (protected or rejected).
    Differs,
    /// The run stopped on an error.
    Failed,
}

impl RunResult {
    const ALL: [RunResult; 3] = [RunResult::Ok, RunResult::Differs, RunResult::Failed];

    pub(crate) fn label(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Differs => "differs",
            RunResult::Failed => "failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One finished run of a mirror.
#[derive(Clone, Debug)]
pub(crate) struct RunRecord {
    pub(crate) started: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) result: RunResult,
    /// What queued it: "startup", "webhook", "poll" or "retry".
    pub(crate) cause: &'static str,
    pub(crate) in_sync: bool,
    pub(crate) refs_changed: u64,
    pub(crate) bytes: u64,
    /// One line, already a message for a person.
    pub(crate) error: Option<String>,
    /// From the webhook's arrival to the end of the run that served it;
    /// only for runs that served a webhook.
    pub(crate) lag: Option<Duration>,
}

/// Upper bounds of the histogram buckets, in seconds: from a no-op run
/// (two ref listings) to a first copy of a large repository.
const BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// The forges a webhook count may be labelled with. The segment of
/// `/hooks/<segment>` is whatever a client sent; counted as itself, each
/// new word would be a new series for as long as the process lives.
const FORGES: [&str; 5] = ["github", "gitlab", "azure-devops", "bitbucket", "gitea"];

#[derive(Default)]
struct Histogram {
    /// Observations per bucket, not cumulative: the last slot is those
    /// above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let v = d.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += v;
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

struct Mirror {
    name: String,
    source: String,
    destination: String,
    /// Runs under way; more than one only if the scheduler broke its own
    /// rule, and then the page should still end up right.
    running: u32,
    last: Option<RunRecord>,
    runs: [u64; 3],
    refs_changed: u64,
    bytes: u64,
}

impl Mirror {
    fn new(name: String, source: String, destination: String) -> Mirror {
        Mirror {
            name,
            source,
            destination,
            running: 0,
            last: None,
            runs: [0; 3],
            refs_changed: 0,
            bytes: 0,
        }
    }
}

#[derive(Default)]
struct Inner {
    mirrors: Vec<Mirror>,
    by_name: HashMap<String, usize>,
    queued: usize,
    running: usize,
    /// (forge, result) -> deliveries.
    webhooks: BTreeMap<(String, String), u64>,
    durations: Histogram,
    lag: Histogram,
}

impl Inner {
    fn mirror(&mut self, name: &str) -> &mut Mirror {
        let at = match self.by_name.get(name) {
            Some(&at) => at,
            None => {
                // A repository a sweep found: known by its name alone.
                self.mirrors
                    .push(Mirror::new(name.to_owned(), String::new(), String::new()));
                self.by_name.insert(name.to_owned(), self.mirrors.len() - 1);
                self.mirrors.len() - 1
            }
        };
        &mut self.mirrors[at]
    }
}

/// The registry: shared by the scheduler (which reports runs and queue
/// sizes), the webhook handler (which counts deliveries) and the HTTP
/// server (which renders it).
pub(crate) struct Status {
    inner: Mutex<Inner>,
}

impl Status {
    /// `mirrors`: (name, source, destination) as printable (credential-free)
    /// strings, in config order.
    pub(crate) fn new(mirrors: Vec<(String, String, String)>) -> Status {
        let mut inner = Inner::default();
        for (name, source, destination) in mirrors {
            if inner.by_name.contains_key(&name) {
                continue;
            }
            inner.by_name.insert(name.clone(), inner.mirrors.len());
            inner.mirrors.push(Mirror::new(name, source, destination));
        }
        Status {
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves counters that
        // are still counters: keep serving them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A run of `name` started. A name not given to `new` (a repository a
    /// sweep found) is added.
    pub(crate) fn started(&self, name: &str) {
        self.lock().mirror(name).running += 1;
    }

    /// A run of `name` ended.
    pub(crate) fn finished(&self, name: &str, run: RunRecord) {
        let mut inner = self.lock();
        inner.durations.observe(run.duration);
        if let Some(lag) = run.lag {
            inner.lag.observe(lag);
        }
        let mirror = inner.mirror(name);
        mirror.running = mirror.running.saturating_sub(1);
        mirror.runs[run.result.index()] += 1;
        mirror.refs_changed += run.refs_changed;
        mirror.bytes += run.bytes;
        mirror.last = Some(run);
    }

    /// Counts a webhook delivery: `webhooks_total{forge,result}`. A forge
    /// that is not one of the five is counted as "other".
    pub(crate) fn webhook(&self, forge: &str, result: &str) {
        let forge = FORGES
            .iter()
            .find(|f| **f == forge)
            .copied()
            .unwrap_or("other");
        *self
            .lock()
            .webhooks
            .entry((forge.to_owned(), result.to_owned()))
            .or_default() += 1;
    }

    /// Runs waiting and runs under way, as the scheduler counts them.
    pub(crate) fn set_queue(&self, queued: usize, running: usize) {
        let mut inner = self.lock();
        inner.queued = queued;
        inner.running = running;
    }

    /// `/status.json`.
    pub(crate) fn json(&self) -> String {
        let inner = self.lock();
        let mirrors: Vec<serde_json::Value> = inner
            .mirrors
            .iter()
            .map(|m| {
                let last = m.last.as_ref().map(|r| {
                    serde_json::json!({
                        "started": crate::output::rfc3339(r.started),
                        "duration_seconds": millis(r.duration),
                        "result": r.result.label(),
                        "cause": r.cause,
                        "refs_changed": r.refs_changed,
                        "bytes": r.bytes,
                        "error": r.error,
                        "lag_seconds": r.lag.map(millis),
                    })
                });
                serde_json::json!({
                    "name": m.name,
                    "source": m.source,
                    "destination": m.destination,
                    "running": m.running > 0,
                    "last_run": last,
                    "in_sync": m.last.as_ref().map(|r| r.in_sync),
                    "runs": m.runs.iter().sum::<u64>(),
                    "failures": m.runs[RunResult::Failed.index()],
                })
            })
            .collect();
        let mut webhooks = serde_json::Map::new();
        for ((forge, result), n) in &inner.webhooks {
            let entry = webhooks
                .entry(forge.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(results) = entry {
                results.insert(result.clone(), (*n).into());
            }
        }
        let doc = serde_json::json!({
            "mirrors": mirrors,
            "queue": { "queued": inner.queued, "running": inner.running },
            "webhooks": webhooks,
        });
        crate::auth::redacted_json(&doc)
    }

    /// `/status`: one table row per mirror, read-only, no script; it
    /// reloads itself every 10 seconds.
    pub(crate) fn html(&self) -> String {
        let inner = self.lock();
        let mut out = String::from(concat!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta http-equiv=\"refresh\" content=\"10\">\n<title>git-relay serve</title>\n",
            "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}",
            "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}",
            ".failed{color:#a00}.differs{color:#a60}.ok{color:#070}</style>\n",
            "</head>\n<body>\n<h1>git-relay serve</h1>\n",
        ));
        let _ = writeln!(
            out,
            "<p>Queued: {}. Running: {}.</p>",
            inner.queued, inner.running
        );
        out.push_str(concat!(
            "<table>\n<thead><tr><th>Mirror</th><th>Source</th><th>Destination</th>",
            "<th>State</th><th>Last run (UTC)</th><th>Cause</th><th>Result</th>",
            "<th>Duration</th><th>In sync</th><th>Refs changed</th><th>Bytes</th>",
            "<th>Runs</th><th>Failures</th><th>Last error</th></tr></thead>\n<tbody>\n",
        ));
        for m in &inner.mirrors {
            let state = if m.running > 0 { "running" } else { "idle" };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{state}</td>",
                escape(&m.name),
                escape(&m.source),
                escape(&m.destination),
            );
            match &m.last {
                Some(r) => {
                    let _ = write!(
                        out,
                        "<td>{}</td><td>{}</td><td class=\"{result}\">{result}</td><td>{} s</td><td>{}</td><td>{}</td><td>{}</td>",
                        crate::output::rfc3339(r.started),
                        escape(r.cause),
                        millis(r.duration),
                        if r.in_sync { "yes" } else { "no" },
                        r.refs_changed,
                        r.bytes,
                        result = r.result.label(),
                    );
                }
                None => out.push_str(
                    "<td>never</td><td></td><td></td><td></td><td></td><td></td><td></td>",
                ),
            }
            let error = m
                .last
                .as_ref()
                .and_then(|r| r.error.as_deref())
                .unwrap_or("");
            let _ = writeln!(
                out,
                "<td>{}</td><td>{}</td><td>{}</td></tr>",
                m.runs.iter().sum::<u64>(),
                m.runs[RunResult::Failed.index()],
                escape(error),
            );
        }
        out.push_str("</tbody>\n</table>\n");
        if !inner.webhooks.is_empty() {
            out.push_str(
                "<h2>Webhooks</h2>\n<table>\n<thead><tr><th>Forge</th><th>Result</th><th>Deliveries</th></tr></thead>\n<tbody>\n",
            );
            for ((forge, result), n) in &inner.webhooks {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
                    escape(forge),
                    escape(result),
                );
            }
            out.push_str("</tbody>\n</table>\n");
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// `/metrics`, in the Prometheus text exposition format 0.0.4.
    pub(crate) fn prometheus(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();

        family(
            &mut out,
            "runs_total",
            "counter",
            "Finished mirror runs by result.",
        );
        for m in &inner.mirrors {
            for r in RunResult::ALL {
                sample(
                    &mut out,
                    "runs_total",
                    &[("mirror", &m.name), ("result", r.label())],
                    m.runs[r.index()],
                );
            }
        }

        histogram(
            &mut out,
            "run_duration_seconds",
            "Wall time of mirror runs.",
            &inner.durations,
        );

        family(
            &mut out,
            "refs_changed_total",
            "counter",
            "Refs created, updated or deleted by mirror runs.",
        );
        for m in &inner.mirrors {
            sample(
                &mut out,
                "refs_changed_total",
                &[("mirror", &m.name)],
                m.refs_changed,
            );
        }
        family(
            &mut out,
            "bytes_total",
            "counter",
            "Pack bytes relayed from source to destination by mirror runs.",
        );
        for m in &inner.mirrors {
            sample(&mut out, "bytes_total", &[("mirror", &m.name)], m.bytes);
        }

        histogram(
            &mut out,
            "lag_seconds",
            "Time from a webhook's arrival to the end of the run that mirrored it.",
            &inner.lag,
        );

        family(
            &mut out,
            "queue_depth",
            "gauge",
            "Mirror runs waiting to start.",
        );
        sample(&mut out, "queue_depth", &[], inner.queued);
        family(&mut out, "running", "gauge", "Mirror runs under way.");
        sample(&mut out, "running", &[], inner.running);

        family(
            &mut out,
            "webhooks_total",
            "counter",
            "Webhook deliveries by forge and what became of them.",
        );
        for ((forge, result), n) in &inner.webhooks {
            sample(
                &mut out,
                "webhooks_total",
                &[("forge", forge), ("result", result)],
                n,
            );
        }

        // Known only once a mirror ran: no sample before, rather than a
        // guess.
        family(
            &mut out,
            "in_sync",
            "gauge",
            "1 when the last run of the mirror left both sides equal, else 0.",
        );
        for m in &inner.mirrors {
            if let Some(r) = &m.last {
                sample(
                    &mut out,
                    "in_sync",
                    &[("mirror", &m.name)],
                    u8::from(r.in_sync),
                );
            }
        }
        family(
            &mut out,
            "last_run_timestamp_seconds",
            "gauge",
            "Unix time the last run of the mirror ended.",
        );
        for m in &inner.mirrors {
            if let Some(r) = &m.last {
                sample(
                    &mut out,
                    "last_run_timestamp_seconds",
                    &[("mirror", &m.name)],
                    crate::report::unix_seconds(r.started + r.duration),
                );
            }
        }
        out
    }
}

const PREFIX: &str = "git_relay_serve_";

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    crate::report::metrics::sample_line(out, &format!("{PREFIX}{name}"), labels, value);
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(h.counts) {
        cumulative += n;
        sample(out, &bucket, &[("le", &bound.to_string())], cumulative);
    }
    sample(out, &bucket, &[("le", "+Inf")], h.count());
    sample(out, &format!("{name}_sum"), &[], h.sum);
    sample(out, &format!("{name}_count"), &[], h.count());
}

/// Seconds, to the millisecond.
fn millis(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// Text for an HTML element or a quoted attribute; redacted first.
fn escape(s: &str) -> String {
    let s = redact(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample line of the text format.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// Reads `text` by the exposition format's rules, panicking at the
    /// first line that breaks one: every sample belongs to a family whose
    /// TYPE came before it (a histogram's through its `_bucket`, `_sum` and
    /// `_count` series), label values are quoted with `\\`, `\"` and `\n`
    /// as the only escapes, values are floats.
    fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
        let mut types = HashMap::new();
        let mut samples: Vec<Sample> = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                let keyword = words.next().unwrap();
                let name = words.next().expect("a metric name").to_owned();
                assert!(valid_name(&name), "{line}");
                let rest = words.next().unwrap_or("");
                if keyword == "TYPE" {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest),
                        "{line}"
                    );
                    assert!(
                        !samples.iter().any(|s| s.name.starts_with(&name)),
                        "TYPE after samples: {line}"
                    );
                    assert!(types.insert(name, rest.to_owned()).is_none(), "{line}");
                }
                continue;
            }
            let end = line.find(['{', ' ']).expect(line);
            let name = &line[..end];
            assert!(valid_name(name), "{line}");
            let mut rest = &line[end..];
            let mut labels = Vec::new();
            if let Some(mut inner) = rest.strip_prefix('{') {
                loop {
                    if let Some(after) = inner.strip_prefix('}') {
                        rest = after;
                        break;
                    }
                    let eq = inner.find('=').expect(line);
                    let key = &inner[..eq];
                    assert!(valid_name(key), "{line}");
                    let mut chars = inner[eq + 1..]
                        .strip_prefix('"')
                        .expect(line)
                        .char_indices();
                    let mut value = String::new();
                    let close = loop {
                        match chars.next().expect(line) {
                            (i, '"') => break i,
                            (_, '\\') => match chars.next().expect(line).1 {
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                'n' => value.push('\n'),
                                other => panic!("escape \\{other} in {line}"),
                            },
                            (_, '\n') => panic!("raw newline"),
                            (_, c) => value.push(c),
                        }
                    };
                    labels.push((key.to_owned(), value));
                    inner = &inner[eq + 2 + close + 1..];
                    inner = inner.strip_prefix(',').unwrap_or(inner);
                }
            }
            let value = rest.strip_prefix(' ').expect(line);
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
            };
            let typed = types.contains_key(name)
                || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    name.strip_suffix(suffix)
                        .is_some_and(|base| types.get(base).is_some_and(|t| t == "histogram"))
                });
            assert!(typed, "no TYPE before {line}");
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        // Histograms: buckets ascending in `le`, cumulative, +Inf last and
        // equal to _count.
        for (family, kind) in &types {
            if kind != "histogram" {
                continue;
            }
            let buckets: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
                .collect();
            assert!(!buckets.is_empty(), "{family} has no bucket");
            let mut last = (f64::NEG_INFINITY, 0.0);
            for b in &buckets {
                let le = &b.labels.iter().find(|(k, _)| k == "le").expect("le").1;
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                assert!(le > last.0, "{family}: le not ascending");
                assert!(b.value >= last.1, "{family}: buckets not cumulative");
                last = (le, b.value);
            }
            assert_eq!(last.0, f64::INFINITY, "{family}: no +Inf bucket");
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count"))
                .expect("_count");
            assert_eq!(last.1, count.value, "{family}: +Inf is not _count");
            assert!(samples.iter().any(|s| s.name == format!("{family}_sum")));
        }
        (types, samples)
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == format!("{PREFIX}{name}")
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    fn run(secs: f64, result: RunResult) -> RunRecord {
        RunRecord {
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_secs_f64(secs),
            result,
            cause: "poll",
            in_sync: result == RunResult::Ok,
            refs_changed: 2,
            bytes: 1000,
            error: None,
            lag: None,
        }
    }

    fn mirrors(names: &[&str]) -> Vec<(String, String, String)> {
        names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    format!("https://src.example/{n}"),
                    format!("https://dst.example/{n}"),
                )
            })
            .collect()
    }

    #[test]
    fn counters_and_histogram_buckets_render() {
        let status = Status::new(mirrors(&["alpha", "beta", "idle"]));
        status.started("alpha");
        status.finished(
            "alpha",
            RunRecord {
                cause: "webhook",
                lag: Some(Duration::from_millis(300)),
                ..run(0.05, RunResult::Ok)
            },
        );
        status.started("alpha");
        status.finished("alpha", run(3.0, RunResult::Differs));
        status.started("beta");
        status.finished(
            "beta",
            RunRecord {
                error: Some("the destination refused".into()),
                ..run(4000.0, RunResult::Failed)
            },
        );
        status.webhook("github", "queued");
        status.webhook("github", "queued");
        status.webhook("gitlab", "bad_signature");
        status.webhook("../../etc", "not_configured");
        status.set_queue(3, 1);

        let text = status.prometheus();
        let (types, samples) = parse(&text);
        assert_eq!(types["git_relay_serve_runs_total"], "counter");
        assert_eq!(types["git_relay_serve_run_duration_seconds"], "histogram");
        assert_eq!(types["git_relay_serve_queue_depth"], "gauge");

        let runs = |m, r| value(&samples, "runs_total", &[("mirror", m), ("result", r)]);
        assert_eq!(runs("alpha", "ok"), Some(1.0));
        assert_eq!(runs("alpha", "differs"), Some(1.0));
        assert_eq!(runs("alpha", "failed"), Some(0.0));
        assert_eq!(runs("beta", "failed"), Some(1.0));
        assert_eq!(runs("idle", "ok"), Some(0.0));

        let bucket = |le| value(&samples, "run_duration_seconds_bucket", &[("le", le)]);
        assert_eq!(bucket("0.1"), Some(1.0));
        assert_eq!(bucket("2.5"), Some(1.0));
        assert_eq!(bucket("5"), Some(2.0));
        assert_eq!(bucket("1800"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(3.0));
        assert_eq!(
            value(&samples, "run_duration_seconds_count", &[]),
            Some(3.0)
        );
        let sum = value(&samples, "run_duration_seconds_sum", &[]).unwrap();
        assert!((sum - 4003.05).abs() < 1e-6, "{sum}");

        let lag = |le| value(&samples, "lag_seconds_bucket", &[("le", le)]);
        assert_eq!(lag("0.25"), Some(0.0));
        assert_eq!(lag("0.5"), Some(1.0));
        assert_eq!(value(&samples, "lag_seconds_count", &[]), Some(1.0));

        assert_eq!(
            value(&samples, "refs_changed_total", &[("mirror", "alpha")]),
            Some(4.0)
        );
        assert_eq!(
            value(&samples, "bytes_total", &[("mirror", "beta")]),
            Some(1000.0)
        );
        assert_eq!(value(&samples, "queue_depth", &[]), Some(3.0));
        assert_eq!(value(&samples, "running", &[]), Some(1.0));
        let hooks = |f, r| value(&samples, "webhooks_total", &[("forge", f), ("result", r)]);
        assert_eq!(hooks("github", "queued"), Some(2.0));
        assert_eq!(hooks("gitlab", "bad_signature"), Some(1.0));
        // A path a client made up is not a label of its own.
        assert_eq!(hooks("other", "not_configured"), Some(1.0));
        assert!(!text.contains("etc"), "{text}");

        assert_eq!(
            value(&samples, "in_sync", &[("mirror", "alpha")]),
            Some(0.0)
        );
        assert_eq!(value(&samples, "in_sync", &[("mirror", "idle")]), None);
        assert_eq!(
            value(
                &samples,
                "last_run_timestamp_seconds",
                &[("mirror", "beta")]
            ),
            Some(1_700_004_000.0)
        );
    }

    #[test]
    fn hostile_names_still_make_valid_exposition_text() {
        let hostile = "a\"b\\c\nd} 1\n# TYPE x counter";
        let status = Status::new(mirrors(&[hostile]));
        status.finished(hostile, run(1.0, RunResult::Ok));
        let (_, samples) = parse(&status.prometheus());
        assert_eq!(
            value(
                &samples,
                "runs_total",
                &[("mirror", hostile), ("result", "ok")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn the_parser_refuses_what_breaks_the_rules() {
        // The checks above are only worth what this parser refuses.
        let untyped = "git_relay_serve_x 1\n";
        assert!(std::panic::catch_unwind(|| parse(untyped)).is_err());
        let not_cumulative = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n";
        assert!(std::panic::catch_unwind(|| parse(not_cumulative)).is_err());
        let inf_not_count = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n";
        assert!(std::panic::catch_unwind(|| parse(inf_not_count)).is_err());
        let bad_escape = "# TYPE g gauge\ng{a=\"\\x\"} 1\n";
        assert!(std::panic::catch_unwind(|| parse(bad_escape)).is_err());
        let fine = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
        assert_eq!(parse(fine).1.len(), 4);
    }

    #[test]
    fn json_lists_each_mirror_in_config_order() {
        let status = Status::new(mirrors(&["zeta", "alpha"]));
        status.started("zeta");
        status.started("acme/found-by-sweep");
        status.finished(
            "acme/found-by-sweep",
            RunRecord {
                error: Some("boom".into()),
                ..run(1.5, RunResult::Failed)
            },
        );
        status.webhook("gitea", "replay");
        status.set_queue(2, 1);
        let doc: serde_json::Value = serde_json::from_str(&status.json()).unwrap();
        let list = doc["mirrors"].as_array().unwrap();
        let names: Vec<&str> = list.iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["zeta", "alpha", "acme/found-by-sweep"]);
        assert_eq!(list[0]["running"], true);
        assert_eq!(list[0]["source"], "https://src.example/zeta");
        assert_eq!(list[0]["last_run"], serde_json::Value::Null);
        assert_eq!(list[0]["in_sync"], serde_json::Value::Null);
        let found = &list[2];
        assert_eq!(found["running"], false);
        assert_eq!(found["in_sync"], false);
        assert_eq!(found["runs"], 1);
        assert_eq!(found["failures"], 1);
        let last = &found["last_run"];
        assert_eq!(last["started"], "2023-11-14T22:13:20Z");
        assert_eq!(last["duration_seconds"], 1.5);
        assert_eq!(last["result"], "failed");
        assert_eq!(last["cause"], "poll");
        assert_eq!(last["refs_changed"], 2);
        assert_eq!(last["bytes"], 1000);
        assert_eq!(last["error"], "boom");
        assert_eq!(doc["queue"]["queued"], 2);
        assert_eq!(doc["queue"]["running"], 1);
        assert_eq!(doc["webhooks"]["gitea"]["replay"], 1);
    }

    #[test]
    fn the_page_escapes_a_hostile_mirror_name() {
        let hostile = "<script>alert('x')</script>\"&";
        let status = Status::new(mirrors(&[hostile]));
        status.finished(
            hostile,
            RunRecord {
                error: Some("<img src=x onerror=alert(1)>".into()),
                ..run(1.0, RunResult::Failed)
            },
        );
        let page = status.html();
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(page.contains("<td class=\"failed\">failed</td>"));
    }

    #[test]
    fn a_registered_secret_shows_in_no_rendering() {
        let secret = "serve-status-s3cr3t-\"quoted\\token";
        crate::auth::register_secret(secret);
        let status = Status::new(vec![(
            format!("named-{secret}"),
            format!("https://src.example/{secret}"),
            "https://dst.example/x".to_owned(),
        )]);
        status.finished(
            &format!("named-{secret}"),
            RunRecord {
                error: Some(format!("server said: token {secret} is expired")),
                ..run(1.0, RunResult::Failed)
            },
        );
        for (what, text) in [
            ("json", status.json()),
            ("html", status.html()),
            ("metrics", status.prometheus()),
        ] {
            assert!(!text.contains("s3cr3t"), "{what}: {text}");
        }
        // The error itself is still there, minus the secret.
        assert!(status.json().contains("is expired"));
    }
}

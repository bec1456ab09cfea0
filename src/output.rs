//! Everything git-relay shows a person or a program.
//!
//! Human-readable lines go to stderr and machine-readable reports to stdout,
//! so `git-relay mirror ... --json | jq` works while progress stays visible.
//! Every function here passes its text through `crate::auth::redact`: there
//! is no other way to print, which is what makes "a token never appears in
//! output" a property of the program rather than of each call site.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::auth::redact;

/// How chatty stderr is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Verbosity {
    /// Errors and warnings only.
    Quiet = 0,
    /// The plan, progress and the summary.
    Normal = 1,
    /// Also every request and protocol decision.
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the process-wide verbosity.
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

thread_local! {
    /// Set while a worker of a parallel run works: its plan and progress
    /// lines would interleave with the other workers', so the coordinator
    /// reports for it instead. Warnings and errors still show.
    static QUIET_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn enabled(v: Verbosity) -> bool {
    if v >= Verbosity::Normal && QUIET_THREAD.with(Cell::get) {
        return false;
    }
    VERBOSITY.load(Ordering::Relaxed) >= v as u8
}

/// Whether `--verbose` is in force.
pub fn verbose() -> bool {
    enabled(Verbosity::Verbose)
}

/// Whether normal and verbose lines are silenced on this thread: a thread
/// started for a quiet worker keeps its silence.
pub(crate) fn is_quiet() -> bool {
    QUIET_THREAD.with(Cell::get)
}

/// Runs `f` with normal and verbose lines silenced on this thread.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET_THREAD.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(QUIET_THREAD.with(|q| q.replace(true)));
    f()
}

/// How a line is labelled: its level in JSON logs, its prefix in text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Hint,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Hint => "hint",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Level::Debug if TASK_WORDS.get().is_some() => "##[debug]",
            Level::Debug => "debug: ",
            Level::Info => "",
            Level::Warn => "warning: ",
            Level::Error => "error: ",
            Level::Hint => "hint: ",
        }
    }
}

/// Writes one redacted line to stderr, ignoring a closed stderr: losing a
/// progress line must never fail a mirror.
fn line(level: Level, text: &str) {
    let reworded = TASK_WORDS.get().map(|reword| reword(text));
    let text = redact(reworded.as_deref().unwrap_or(text));
    let subject = SUBJECT.with(|s| s.borrow().clone());
    if JSON_LINES.load(Ordering::Relaxed) {
        let mut record = serde_json::Map::new();
        record.insert("time".into(), rfc3339(SystemTime::now()).into());
        record.insert("level".into(), level.name().into());
        if let Some(subject) = subject {
            record.insert("mirror".into(), redact(&subject).into_owned().into());
        }
        record.insert("message".into(), text.into_owned().into());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", serde_json::Value::Object(record));
        return;
    }
    let text = match subject {
        Some(subject) => format!("{}[{}] {text}", level.prefix(), redact(&subject)),
        None => format!("{}{text}", level.prefix()),
    };
    // Hold the status line while printing, so lines from parallel workers
    // never land in the middle of it.
    let status = STATUS.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    if status.is_some() {
        let _ = write!(err, "\r\x1b[K");
    }
    if DEFUSE.load(Ordering::Relaxed) {
        let _ = writeln!(err, "{}", defuse(&text));
    } else {
        let _ = writeln!(err, "{text}");
    }
    if let Some(status) = status.as_deref() {
        let _ = write!(err, "{status}");
    }
}

/// Set by `git-relay serve --log-format json`: every stderr line becomes
/// one JSON object (`time`, `level`, `mirror` when a run prints it,
/// `message`), for log collectors.
static JSON_LINES: AtomicBool = AtomicBool::new(false);

/// Prints every later line as a JSON object.
pub fn log_as_json_lines() {
    JSON_LINES.store(true, Ordering::Relaxed);
}

thread_local! {
    /// What the lines of this thread are about (a long-running service
    /// runs many mirrors at once; each line says which one it is from).
    static SUBJECT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with every line it prints labelled as about `subject`.
pub(crate) fn about<T>(subject: &str, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SUBJECT.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(SUBJECT.with(|s| s.borrow_mut().replace(subject.to_string())));
    f()
}

/// `yyyy-mm-ddThh:mm:ssZ`, UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    // The archive's stamp is the same instant with dashes in the time.
    let stamp = crate::store::archive::stamp(t);
    format!("{}T{}Z", &stamp[..10], stamp[11..19].replace('-', ":"))
}

/// The live status line at the bottom of a terminal, if one is shown.
static STATUS: Mutex<Option<String>> = Mutex::new(None);

/// Shows `text` as a live status line below the log, redrawn in place
/// (regular lines print above it); `None` removes it. Only on a terminal
/// and at normal verbosity: a CI log gets the plain lines alone.
pub(crate) fn status(text: Option<&str>) {
    if !enabled(Verbosity::Normal) || !std::io::stderr().is_terminal() {
        return;
    }
    let mut status = STATUS.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[K");
    *status = text.map(|t| redact(t).into_owned());
    if let Some(text) = status.as_deref() {
        let _ = write!(err, "{text}");
    }
    let _ = err.flush();
}

/// Set in Azure Pipelines task mode, where the agent obeys `##vso[` anywhere
/// on any line: text we print may quote a server, and a hostile server must
/// not be able to set variables or fail the task through us.
static DEFUSE: AtomicBool = AtomicBool::new(false);

/// Turns defusing of logging commands on for every later line.
pub(crate) fn defuse_logging_commands() {
    DEFUSE.store(true, Ordering::Relaxed);
}

/// Rewrites every `##vso` (any case) to `**vso`, as the agent itself does
/// with text it must not obey.
pub(crate) fn defuse(text: &str) -> Cow<'_, str> {
    const NEEDLE: &[u8] = b"##vso";
    let bytes = text.as_bytes();
    if !bytes
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest
        .as_bytes()
        .windows(NEEDLE.len())
        .position(|w| w.eq_ignore_ascii_case(NEEDLE))
    {
        out.push_str(&rest[..at]);
        out.push_str("**vso");
        rest = &rest[at + NEEDLE.len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Set in Azure Pipelines task mode: how a line is reworded for a
/// pipeline (flags named as task inputs); debug lines then use the
/// agent's `##[debug]` prefix, which it shows only with System.Debug.
static TASK_WORDS: std::sync::OnceLock<fn(&str) -> String> = std::sync::OnceLock::new();

/// Rewords every later line with `reword`, and prints debug lines as the
/// agent's `##[debug]` lines.
pub(crate) fn speak_as_task(reword: fn(&str) -> String) {
    let _ = TASK_WORDS.set(reword);
}

/// Writes a logging command we built ourselves: redacted, never defused.
pub(crate) fn logging_command(command: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", redact(command));
}

/// A normal line: the plan, a summary.
pub fn info(text: impl Display) {
    if enabled(Verbosity::Normal) {
        line(Level::Info, &text.to_string());
    }
}

/// A line only `--verbose` shows.
pub(crate) fn debug(text: impl Display) {
    if enabled(Verbosity::Verbose) {
        line(Level::Debug, &text.to_string());
    }
}

/// A warning, shown even with `--quiet`.
pub fn warn(text: impl Display) {
    line(Level::Warn, &text.to_string());
}

/// An error, shown even with `--quiet`.
pub fn error(text: impl Display) {
    line(Level::Error, &text.to_string());
}

/// What to do about an error, shown even with `--quiet`.
pub fn hint(text: impl Display) {
    line(Level::Hint, &text.to_string());
}

/// Writes a machine-readable document to stdout, redacted like everything else.
pub fn stdout(text: &str) {
    let text = redact(text);
    let text = if DEFUSE.load(Ordering::Relaxed) {
        defuse(&text).into_owned()
    } else {
        text.into_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// `{n} {what}` for each of `counts` that is not zero, in order.
pub(crate) fn counted(counts: &[(usize, &str)]) -> Vec<String> {
    let present = counts.iter().filter(|(n, _)| *n > 0);
    present.map(|(n, what)| format!("{n} {what}")).collect()
}

/// Formats a byte count for people: `12.3 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a duration for people: `850 ms`, `12.4 s`, `3 min 05 s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// Progress of a long transfer on stderr.
///
/// On a terminal it is the live [`status`] line, redrawn a few times a
/// second; in a CI log, where `\r` would pile up, a plain line is written
/// every ten seconds so a long first mirror still shows it is alive.
pub(crate) struct Progress {
    label: &'static str,
    started: Instant,
    last: Instant,
    tty: bool,
    drawn: bool,
}

impl Progress {
    /// Starts reporting progress for a transfer called `label`.
    pub(crate) fn new(label: &'static str) -> Progress {
        let now = Instant::now();
        Progress {
            label,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Reports that `bytes` have moved so far.
    pub(crate) fn update(&mut self, bytes: u64) {
        if !enabled(Verbosity::Normal) {
            return;
        }
        let interval = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        if self.last.elapsed() < interval {
            return;
        }
        self.last = Instant::now();
        let text = self.text(bytes);
        if self.tty {
            status(Some(&text));
            self.drawn = true;
        } else {
            line(Level::Info, &text);
        }
    }

    /// Ends the progress display, leaving a final line on a terminal.
    pub(crate) fn finish(&mut self, bytes: u64) {
        if self.drawn {
            status(None);
            line(Level::Info, &self.text(bytes));
            self.drawn = false;
        }
    }

    fn text(&self, bytes: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{}: {} ({}/s)",
            self.label,
            human_bytes(bytes),
            human_bytes((bytes as f64 / secs) as u64)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_commands_are_defused() {
        assert_eq!(
            defuse("remote: ##vso[task.complete result=Failed]x"),
            "remote: **vso[task.complete result=Failed]x"
        );
        assert_eq!(defuse("a ##VSO[ b ##vso"), "a **vso[ b **vso");
        assert!(matches!(defuse("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn bytes_are_readable() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100 * 1024 * 1024), "100.0 MiB");
    }

    #[test]
    fn durations_are_readable() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(12_400)), "12.4 s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3 min 05 s");
    }
}

//! Running the git-relay binary from a test and reading what it did.
//!
//! Every integration test file needs the same few things: run the binary
//! with some environment, check its exit code with its output in the
//! failure message, parse its `--json` report, hand it the test server's
//! credentials, and (for the bounded-memory tests) sample its peak memory.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{relay, GitServer};

/// One finished run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` report on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}): {}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts the exit code, showing both streams when it differs.
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stderr\n{}\n--- stdout\n{}",
            self.stderr, self.stdout
        );
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `git-relay ARGS` with `env` added to the clean environment of [`relay`].
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = relay();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `git-relay ARGS` to completion.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    command(args, env).output().expect("run git-relay").into()
}

/// The server's credentials for both sides, as the environment carries them.
pub fn credentials(server: &GitServer) -> Vec<(&'static str, &str)> {
    vec![
        ("GIT_RELAY_SOURCE_TOKEN", server.password()),
        ("GIT_RELAY_DEST_TOKEN", server.password()),
        ("GIT_RELAY_SOURCE_USERNAME", server.username()),
        ("GIT_RELAY_DEST_USERNAME", server.username()),
    ]
}

/// Deterministic bytes that do not compress, so a pack is as large as its
/// data.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `git-relay ARGS` and samples its peak resident memory (`VmHWM`)
/// until it exits; returns the run and the peak in bytes.
pub fn run_measuring_memory(args: &[&str], env: &[(&str, &str)]) -> (Run, u64) {
    let mut child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn git-relay");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let pipes: [Box<dyn Read + Send>; 2] = [Box::new(stdout), Box::new(stderr)];
    let readers = pipes.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|h| h.join().unwrap());
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    (run, peak_kib * 1024)
}

//! No secret reaches any output, whatever a server quotes back and wherever
//! it cuts it.
//!
//! A property test: random tokens holding every character that escaping,
//! URLs, Basic auth and whitespace handling treat specially are sent to a
//! hostile server ([`EchoServer`]) that quotes the `Authorization` header,
//! the decoded `user:token` and the token in 401, 403 and 500 bodies, in an
//! `ERR` pkt-line and in a forge API's JSON error, cut around every place a
//! secret starts. Every output path is scanned (stderr, `--json` on stdout,
//! and in task mode the agent log, the report and the summary files) for
//! the first 8 characters of any form of the secret: raw, percent-encoded,
//! base64 `user:token`, `user:token`, JSON-escaped.
//!
//! The tokens come from a seeded generator; set `GIT_RELAY_TEST_SEED` to
//! replay a failure (the seed is in the failure message).

mod support;

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use git_relay::auth::USERINFO;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use support::task::Agent;
use support::*;

const USER: &str = "alice";
/// How many random tokens each run tries.
const TOKENS: usize = 3;
/// Characters a token is drawn from: the ones escaping, URLs, Basic auth and
/// whitespace handling treat specially, beside plain ones.
const ALPHABET: &[&str] = &[
    "a", "b", "Z", "7", "-", "_", ".", " ", "  ", "\t", "\"", "\\", "/", "@", ":", "%", "#", "+",
    "é", "Ω", "€", "😀",
];
/// What a secret's start must never be seen as: this many characters.
const PREFIX: usize = 8;

/// xorshift64*: small, seeded, and the same everywhere.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A token of 8 to 200 characters.
    fn token(&mut self) -> String {
        let len = 8 + self.below(193);
        let mut token = String::new();
        while token.chars().count() < len {
            token.push_str(ALPHABET[self.below(ALPHABET.len())]);
        }
        token.chars().take(len).collect()
    }
}

fn seed() -> u64 {
    std::env::var("GIT_RELAY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05ee_d0f9_e1a7)
}

/// The first [`PREFIX`] characters of every form of `token` sent by `USER`.
fn forbidden(token: &str) -> Vec<String> {
    let pair = format!("{USER}:{token}");
    let json = serde_json::to_string(token).unwrap();
    let forms = [
        token.to_owned(),
        utf8_percent_encode(token, USERINFO).to_string(),
        utf8_percent_encode(token, NON_ALPHANUMERIC).to_string(),
        BASE64.encode(&pair),
        pair,
        json[1..json.len() - 1].to_owned(),
    ];
    let mut starts: Vec<String> = forms
        .iter()
        .map(|f| f.chars().take(PREFIX).collect())
        .collect();
    starts.sort();
    starts.dedup();
    starts
}

/// Offsets into the echo text around the start of each quoted form: the
/// cuts that leave a short start, exactly [`PREFIX`] bytes, more, and all.
fn cuts(token: &str) -> Vec<usize> {
    let authorization = format!("Basic {}", BASE64.encode(format!("{USER}:{token}")));
    let text = echo_text(&authorization, "");
    let mut cuts = Vec::new();
    for form in [authorization.as_str(), &format!("{USER}:{token}"), token] {
        let Some(start) = text.find(&format!(" {form}\n")).map(|at| at + 1) else {
            continue;
        };
        for extra in [
            0,
            4,
            7,
            8,
            9,
            12,
            form.len() / 2,
            form.len() - 1,
            form.len(),
        ] {
            cuts.push(start + extra.min(form.len()));
        }
    }
    cuts.sort();
    cuts.dedup();
    cuts
}

fn assert_clean(what: &str, text: &str, starts: &[String], token: &str) {
    for start in starts {
        assert!(
            !text.contains(start.as_str()),
            "{what}: {start:?} (the start of a form of {token:?}) leaked; seed {}:\n{text}",
            seed()
        );
    }
}

fn git_env(token: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("GIT_RELAY_SOURCE_TOKEN", token),
        ("GIT_RELAY_DEST_TOKEN", token),
        ("GIT_RELAY_SOURCE_USERNAME", USER),
        ("GIT_RELAY_DEST_USERNAME", USER),
    ]
}

/// The arguments of one run against `server`, for `echo` cut at `cut`.
fn args(server: &EchoServer, echo: Echo, cut: usize, backup: &Path) -> Vec<String> {
    let mut args: Vec<String> = match echo {
        Echo::ForgeJson => vec![
            "mirror-all".into(),
            "--source-kind".into(),
            "gitea".into(),
            server.url(echo, cut, "org"),
            format!("{}/{{repo}}.git", backup.display()),
        ],
        _ => vec![
            "mirror".into(),
            server.url(echo, cut, "src.git"),
            server.url(echo, cut, "dst.git"),
        ],
    };
    args.extend(["--json", "--retries", "0"].map(String::from));
    args
}

#[test]
fn no_start_of_a_secret_reaches_stderr_or_json_whatever_the_server_echoes() {
    let server = EchoServer::start();
    let backup = tempfile::tempdir().unwrap();
    let mut random = Random(seed());
    let mut runs = 0;
    for _ in 0..TOKENS {
        let token = random.token();
        let starts = forbidden(&token);
        let env = git_env(&token);
        let jobs: Vec<(Echo, usize)> = Echo::ALL
            .into_iter()
            .flat_map(|echo| cuts(&token).into_iter().map(move |cut| (echo, cut)))
            .collect();
        // Two at a time: the machine has two cores.
        std::thread::scope(|scope| {
            for half in jobs.chunks(jobs.len().div_ceil(2)) {
                let (server, backup, env, starts, token) =
                    (&server, backup.path(), &env, &starts, &token);
                scope.spawn(move || {
                    for &(echo, cut) in half {
                        let args = args(server, echo, cut, backup);
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let out = run(&args, env);
                        assert_ne!(out.code, 0, "{echo:?} at {cut}: {}", out.stderr);
                        let what = format!("{echo:?} cut at {cut}");
                        assert_clean(&what, &out.stderr, starts, token);
                        assert_clean(&what, &out.stdout, starts, token);
                    }
                });
            }
        });
        runs += jobs.len();
    }
    assert!(runs > 100, "{runs} runs");
}

#[test]
fn no_start_of_a_secret_reaches_the_task_log_or_its_files() {
    let server = EchoServer::start();
    let mut random = Random(seed() ^ 0x7a5c);
    let token = random.token();
    let starts = forbidden(&token);
    for echo in [Echo::Forbidden, Echo::ErrPacket] {
        for cut in cuts(&token) {
            let agent = Agent::new(
                &server.url(echo, cut, "src.git"),
                &[
                    ("sourceUsername", USER),
                    ("sourceGitRepositoryPersonalAccessToken", &token),
                    (
                        "destinationGitRepositoryUri",
                        &server.url(echo, cut, "dst.git"),
                    ),
                    ("destinationUsername", USER),
                    ("destinationGitRepositoryPersonalAccessToken", &token),
                ],
            );
            let mut cmd = relay();
            cmd.arg("task");
            let out = agent.run(cmd);
            let what = format!("task, {echo:?} cut at {cut}");
            // The agent is told the secrets first, by design; nothing else
            // may carry them.
            let log: String = out
                .lines()
                .into_iter()
                .filter(|l| !l.starts_with("##vso[task.setsecret]"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(log.contains("task.complete"), "{}", out.log());
            assert_clean(&what, &log, &starts, &token);
            for file in files_under(agent.work.path()) {
                let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
                assert_clean(
                    &format!("{what}, {}", file.display()),
                    &text,
                    &starts,
                    &token,
                );
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

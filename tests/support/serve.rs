//! `git-relay serve` under test: the long-running process, its HTTP
//! endpoints, and the webhook deliveries each forge sends.
//!
//! The serve tests drive the real binary over real HTTP on 127.0.0.1, the
//! way a forge and a Prometheus scraper would. This module keeps each of them
//! to a few lines:
//!
//! * [`Serve`]: writes a config file into a temporary directory, starts
//!   `git-relay serve --config FILE` with the scrubbed environment of
//!   [`relay`](super::relay), reads the port from its `listening on` line,
//!   waits for `/readyz`, keeps everything it writes to stderr, and kills
//!   it when dropped. [`check_config`] runs it on a config that should be
//!   refused, bounded in time.
//! * A small HTTP/1.1 client on `std::net` ([`Serve::get`],
//!   [`Serve::post_hook`]): one connection per request, so a test sees
//!   exactly the status the server chose, even for a body it refused
//!   before reading it all.
//! * Deliveries as each forge sends them: the headers (event name, a fresh
//!   delivery id, the signature or token) and push payloads in each
//!   vendor's published shape. Signatures are HMAC-SHA256 with `ring`.
//! * [`Metrics`]: a strict reader of the Prometheus text format that
//!   refuses any malformed line, so "`/metrics` parses" is a real check.
//! * [`wait_until`], for everything that happens in the background.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::http::{self, BodyReader, Framing};
use super::{relay, Run};

/// How long the binary may take to print its listening line, and then to
/// answer `/readyz` with 200. Generous: the test machines are shared.
const STARTUP: Duration = Duration::from_secs(30);
/// How long one request to the server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `git-relay serve`.
pub struct Serve {
    child: Child,
    port: u16,
    dir: TempDir,
    stderr: Arc<Mutex<String>>,
    /// Signalled when stderr ends; in a mutex so that `Serve` is `Sync`
    /// and threads of a test can share it.
    stderr_done: Mutex<mpsc::Receiver<()>>,
    status: Option<ExitStatus>,
}

/// How to start a [`Serve`]: extra environment and arguments.
pub struct ServeBuilder {
    config: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    wait_ready: bool,
}

impl Serve {
    /// Starts `git-relay serve --config FILE` with `config` as the file and
    /// waits until it listens and is ready.
    pub fn start(config: &str) -> Serve {
        Serve::builder(config).start()
    }

    pub fn builder(config: &str) -> ServeBuilder {
        ServeBuilder {
            config: config.to_owned(),
            env: Vec::new(),
            args: Vec::new(),
            wait_ready: true,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory the config file was written to; lives as long as the
    /// process.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let r = request(self.port, "GET", path, &[], b"");
        (r.status, r.body)
    }

    /// `POST path` with `headers` and `body`: status and body.
    pub fn post(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> (u16, String) {
        let r = request(self.port, "POST", path, headers, body);
        (r.status, r.body)
    }

    /// `POST /hooks/<forge>` with a JSON body and the delivery's `headers`.
    pub fn post_hook(
        &self,
        forge: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> (u16, String) {
        let mut all = vec![(
            "Content-Type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        )];
        all.extend(headers.iter().cloned());
        self.post(&format!("/hooks/{forge}"), &all, body)
    }

    /// `/metrics`, parsed strictly; panics with the text if it does not
    /// parse.
    pub fn metrics(&self) -> Metrics {
        let (code, text) = self.get("/metrics");
        assert_eq!(code, 200, "GET /metrics: {text}");
        Metrics::parse(&text).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
    }

    /// `/status.json`, parsed.
    pub fn status(&self) -> Value {
        let (code, text) = self.get("/status.json");
        assert_eq!(code, 200, "GET /status.json: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("/status.json is not JSON ({e}): {text}"))
    }

    /// The entry of `/status.json` for the mirror `name`, if listed.
    pub fn mirror_status(&self, name: &str) -> Option<Value> {
        let status = self.status();
        status["mirrors"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
    }

    /// Waits until every mirror of `/status.json` has finished at least one
    /// run and nothing is queued or running: the startup check is over.
    pub fn wait_idle(&self, timeout: Duration) {
        let idle = wait_until(timeout, || {
            let status = self.status();
            let mirrors = status["mirrors"].as_array().cloned().unwrap_or_default();
            !mirrors.is_empty()
                && mirrors
                    .iter()
                    .all(|m| m["runs"].as_u64().unwrap_or(0) >= 1 && m["running"] == false)
                && status["queue"]["queued"] == 0
                && status["queue"]["running"] == 0
        });
        assert!(
            idle,
            "serve did not become idle within {timeout:?}\n--- /status.json\n{:#}\n--- stderr\n{}",
            self.status(),
            self.stderr()
        );
    }

    /// Sends SIGTERM (through `kill(1)`: the crate and its tests have no
    /// `unsafe`).
    pub fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None`
    /// if it is still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status {
                return Some(status);
            }
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                self.status = Some(status);
                // Its stderr ends with it; take the last lines too.
                let _ = (self.stderr_done.lock().unwrap()).recv_timeout(Duration::from_secs(5));
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ServeBuilder {
    /// Sets a variable in the process's environment (a secret the config
    /// names by `{ env = "NAME" }`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds an argument after `--config FILE`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Returns once the process listens, without waiting for `/readyz`.
    pub fn no_wait_ready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub fn start(self) -> Serve {
        let dir = tempfile::Builder::new()
            .prefix("git-relay-serve-")
            .tempdir()
            .expect("create the serve directory");
        let config = write_config(dir.path(), &self.config);
        let mut cmd = relay();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(&self.args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start git-relay serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        {
            let pipe = child.stderr.take().expect("piped stderr");
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut pipe = BufReader::new(pipe);
                let mut line = String::new();
                loop {
                    line.clear();
                    match pipe.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if let Some(port) = listening_port(&line) {
                        let _ = port_tx.send(port);
                    }
                    stderr.lock().unwrap().push_str(&line);
                }
                let _ = done_tx.send(());
            });
        }
        let deadline = Instant::now() + STARTUP;
        let port = loop {
            if let Ok(port) = port_rx.recv_timeout(Duration::from_millis(50)) {
                break port;
            }
            if let Some(status) = child.try_wait().expect("wait for serve") {
                let _ = done_rx.recv_timeout(Duration::from_secs(5));
                panic!(
                    "git-relay serve exited ({status}) before listening\n--- config\n{}\n--- stderr\n{}",
                    self.config,
                    stderr.lock().unwrap()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "git-relay serve printed no `listening on` line within {STARTUP:?}\n--- stderr\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let serve = Serve {
            child,
            port,
            dir,
            stderr,
            stderr_done: Mutex::new(done_rx),
            status: None,
        };
        if self.wait_ready {
            let ready = wait_until(STARTUP, || serve.get("/readyz").0 == 200);
            assert!(
                ready,
                "/readyz did not answer 200 within {STARTUP:?}\n--- stderr\n{}",
                serve.stderr()
            );
        }
        serve
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("serve.toml");
    std::fs::write(&path, text).expect("write the config file");
    path
}

/// The port of a line containing `listening on http://127.0.0.1:PORT`, in
/// text or inside a JSON log line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs `git-relay serve --config FILE` on a config it should refuse, with
/// `env` added; kills it if it is still running after 15 seconds (a config
/// it wrongly accepted). The [`Run`]'s code is -1 then.
pub fn check_config(config: &str, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("git-relay-serve-")
        .tempdir()
        .expect("create the serve directory");
    let path = write_config(dir.path(), config);
    let mut cmd = relay();
    cmd.arg("serve")
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start git-relay serve");
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    let readers = pipes.map(|mut pipe| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for serve") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|h| h.join().unwrap());
    Run {
        code,
        stdout,
        stderr,
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; whether it
/// held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- HTTP client ---------------------------------------------------------

/// One response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One request on a connection of its own (`Connection: close`). The body
/// is written on a thread of its own while the response is read, so a
/// server that answers before reading the whole body (413) is heard even
/// if it never reads the rest.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Response {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to serve on port {port}: {e}"));
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut writer = stream.try_clone().unwrap();
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    let sender = thread::spawn(move || {
        // A server that refuses the body may close before it is all sent;
        // what it answered is what counts.
        let _ = writer.write_all(&bytes);
        let _ = writer.flush();
    });
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: bad response: {e}"));
    let _ = reader.get_ref().shutdown(Shutdown::Both);
    let _ = sender.join();
    response
}

fn read_response(reader: &mut impl BufRead) -> std::io::Result<Response> {
    let status_line = http::read_line(reader)?.ok_or_else(|| http::invalid("no response"))?;
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(http::invalid("malformed status line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(http::invalid("not HTTP/1.x"));
    }
    let status: u16 = code.parse().map_err(|_| http::invalid("bad status code"))?;
    let mut headers = Vec::new();
    loop {
        let line = http::read_line(reader)?.ok_or_else(|| http::invalid("cut in headers"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| http::invalid("bad header"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        BodyReader::new(reader, Framing::Chunked).read_to_end(&mut body)?;
    } else if let Some(len) = header("Content-Length") {
        let len: u64 = len
            .parse()
            .map_err(|_| http::invalid("bad Content-Length"))?;
        BodyReader::new(reader, Framing::Length(len)).read_to_end(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---- Deliveries ------------------------------------------------------------

/// Headers of one delivery, as `(name, value)`.
pub type Headers = Vec<(String, String)>;

fn headers(pairs: &[(&str, String)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect()
}

/// `headers` without `name` (any case): a delivery whose signature or
/// token was left out.
pub fn without(headers: &[(String, String)], name: &str) -> Headers {
    headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .cloned()
        .collect()
}

/// `headers` with the value of `name` replaced.
pub fn with(headers: &[(String, String)], name: &str, value: &str) -> Headers {
    let mut out = without(headers, name);
    out.push((name.to_owned(), value.to_owned()));
    out
}

/// A fresh id shaped like a UUID (8-4-4-4-12 hex digits), unique in this
/// process and unlikely to repeat across processes.
pub fn delivery_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let a = mix(nanos ^ u64::from(std::process::id()) << 32);
    let b = mix(a ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Lowercase hex of HMAC-SHA256(`secret`, `body`).
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What GitHub sends with a `push` event.
pub fn github_delivery(secret: &str, body: &[u8]) -> Headers {
    github_event("push", secret, body)
}

/// What GitHub sends with an event named `event` (`push`, `ping`...).
pub fn github_event(event: &str, secret: &str, body: &[u8]) -> Headers {
    headers(&[
        ("User-Agent", "GitHub-Hookshot/5f8c9a1".to_owned()),
        ("X-GitHub-Event", event.to_owned()),
        ("X-GitHub-Delivery", delivery_id()),
        ("X-GitHub-Hook-ID", "460817220".to_owned()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(secret, body)),
        ),
    ])
}

/// What GitLab sends with a push: the shared token in clear, as GitLab
/// does.
pub fn gitlab_delivery(token: &str) -> Headers {
    gitlab_event("Push Hook", token)
}

/// What GitLab sends with the event `event` (`Push Hook`, `Tag Push Hook`...).
pub fn gitlab_event(event: &str, token: &str) -> Headers {
    headers(&[
        ("User-Agent", "GitLab/17.5.0".to_owned()),
        ("X-Gitlab-Event", event.to_owned()),
        ("X-Gitlab-Token", token.to_owned()),
        ("X-Gitlab-Event-UUID", delivery_id()),
        (
            "X-Gitlab-Webhook-UUID",
            "0b0cbf37-4a6e-4a44-9a2f-6b8f4b2c1e11".to_owned(),
        ),
        ("X-Gitlab-Instance", "https://gitlab.example.com".to_owned()),
    ])
}

/// How an Azure DevOps service hook signs in.
pub enum AzureAuth<'a> {
    /// Basic authentication: user name and password.
    Basic(&'a str, &'a str),
    /// A custom header and its value.
    Header(&'a str, &'a str),
    /// Both.
    Both((&'a str, &'a str), (&'a str, &'a str)),
}

/// What an Azure DevOps service hook ("Web Hooks" consumer) sends: its
/// credentials only; the delivery id is the body's `id` (see
/// [`azure_push`]).
pub fn azure_delivery(auth: AzureAuth<'_>) -> Headers {
    let basic = |user: &str, password: &str| {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        ("Authorization", format!("Basic {encoded}"))
    };
    let pairs = match auth {
        AzureAuth::Basic(user, password) => vec![basic(user, password)],
        AzureAuth::Header(name, value) => vec![(name, value.to_owned())],
        AzureAuth::Both((user, password), (name, value)) => {
            vec![basic(user, password), (name, value.to_owned())]
        }
    };
    headers(&pairs)
}

/// What Bitbucket Cloud sends with a push (`repo:push`).
pub fn bitbucket_cloud_delivery(secret: &str, body: &[u8]) -> Headers {
    headers(&[
        ("User-Agent", "Bitbucket-Webhooks/2.0".to_owned()),
        ("X-Event-Key", "repo:push".to_owned()),
        ("X-Request-UUID", delivery_id()),
        (
            "X-Hook-UUID",
            "{3b0d5e2e-9c8a-4c3e-a7a8-2d1c0f4e5b6a}".to_owned(),
        ),
        ("X-Attempt-Number", "1".to_owned()),
        (
            "X-Hub-Signature",
            format!("sha256={}", hmac_hex(secret, body)),
        ),
    ])
}

/// What Bitbucket Server / Data Center sends with a push
/// (`repo:refs_changed`).
pub fn bitbucket_server_delivery(secret: &str, body: &[u8]) -> Headers {
    headers(&[
        (
            "User-Agent",
            "Atlassian HttpClient 3.0.4 / Bitbucket-8.19.1".to_owned(),
        ),
        ("X-Event-Key", "repo:refs_changed".to_owned()),
        ("X-Request-Id", delivery_id()),
        (
            "X-Hub-Signature",
            format!("sha256={}", hmac_hex(secret, body)),
        ),
    ])
}

/// What Gitea sends with a push: the signature as bare hex.
pub fn gitea_delivery(secret: &str, body: &[u8]) -> Headers {
    headers(&[
        ("User-Agent", "Go-http-client/1.1".to_owned()),
        ("X-Gitea-Event", "push".to_owned()),
        ("X-Gitea-Event-Type", "push".to_owned()),
        ("X-Gitea-Delivery", delivery_id()),
        ("X-Gitea-Signature", hmac_hex(secret, body)),
    ])
}

/// What Forgejo sends with a push: Gitea's headers under its own name.
pub fn forgejo_delivery(secret: &str, body: &[u8]) -> Headers {
    headers(&[
        ("User-Agent", "Go-http-client/1.1".to_owned()),
        ("X-Forgejo-Event", "push".to_owned()),
        ("X-Forgejo-Event-Type", "push".to_owned()),
        ("X-Forgejo-Delivery", delivery_id()),
        ("X-Forgejo-Signature", hmac_hex(secret, body)),
    ])
}

// ---- Payloads ----------------------------------------------------------------

const ZERO: &str = "0000000000000000000000000000000000000000";

/// The parts of a clone URL a payload repeats: the URL without `.git`, the
/// owner (the path before the name) and the name.
struct RepoUrl {
    web: String,
    owner: String,
    name: String,
}

fn repo_url(clone_url: &str) -> RepoUrl {
    let web = clone_url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .to_owned();
    let path = web.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
    let (owner, name) = match path.rsplit_once('/') {
        Some((owner, name)) => (owner.to_owned(), name.to_owned()),
        None => ("acme".to_owned(), path.clone()),
    };
    RepoUrl { web, owner, name }
}

/// A GitHub `push` payload for the repository cloned from `clone_url`:
/// `ref` moved to `after`.
pub fn github_push(clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    let full_name = format!("{}/{}", r.owner, r.name);
    json!({
        "ref": git_ref,
        "before": ZERO,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!("{}/compare/{}...{}", r.web, &ZERO[..12], &after[..12.min(after.len())]),
        "commits": [],
        "head_commit": null,
        "repository": {
            "id": 35129377,
            "node_id": "MDEwOlJlcG9zaXRvcnkzNTEyOTM3Nw==",
            "name": r.name,
            "full_name": full_name,
            "private": true,
            "owner": { "login": r.owner, "name": r.owner, "type": "Organization" },
            "html_url": r.web,
            "url": r.web,
            "clone_url": clone_url,
            "git_url": format!("git://{}.git", r.web.split_once("://").map_or("", |(_, rest)| rest)),
            "ssh_url": format!("git@example.com:{full_name}.git"),
            "default_branch": "main",
            "master_branch": "main",
        },
        "pusher": { "name": "octocat", "email": "octocat@example.com" },
        "sender": { "login": "octocat", "id": 583231, "type": "User" },
    })
    .to_string()
    .into_bytes()
}

/// GitHub's `ping`, sent when a webhook is created.
pub fn github_ping(clone_url: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    json!({
        "zen": "Keep it logically awesome.",
        "hook_id": 460817220,
        "hook": { "type": "Repository", "id": 460817220, "active": true, "events": ["push"] },
        "repository": { "name": r.name, "full_name": format!("{}/{}", r.owner, r.name), "html_url": r.web, "clone_url": clone_url },
    })
    .to_string()
    .into_bytes()
}

/// A GitLab push payload (`object_kind: push`).
pub fn gitlab_push(clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    let path = format!("{}/{}", r.owner, r.name);
    json!({
        "object_kind": "push",
        "event_name": "push",
        "before": ZERO,
        "after": after,
        "ref": git_ref,
        "ref_protected": true,
        "checkout_sha": after,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "project_id": 15,
        "project": {
            "id": 15,
            "name": r.name,
            "web_url": r.web,
            "git_ssh_url": format!("git@example.com:{path}.git"),
            "git_http_url": clone_url,
            "namespace": r.owner,
            "path_with_namespace": path,
            "default_branch": "main",
            "homepage": r.web,
            "url": format!("git@example.com:{path}.git"),
            "ssh_url": format!("git@example.com:{path}.git"),
            "http_url": clone_url,
        },
        "commits": [],
        "total_commits_count": 0,
        "repository": {
            "name": r.name,
            "url": format!("git@example.com:{path}.git"),
            "homepage": r.web,
            "git_http_url": clone_url,
            "git_ssh_url": format!("git@example.com:{path}.git"),
            "visibility_level": 0,
        },
    })
    .to_string()
    .into_bytes()
}

/// An Azure DevOps `git.push` service hook payload, with a fresh event
/// `id`. `remoteUrl` carries the organization as userinfo, as Azure DevOps
/// writes it (`https://org@dev.azure.com/...`).
pub fn azure_push(clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    let remote = match clone_url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}@{rest}", r.owner.replace('/', "-")),
        None => clone_url.to_owned(),
    };
    json!({
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "notificationId": 3,
        "id": delivery_id(),
        "eventType": "git.push",
        "publisherId": "tfs",
        "message": { "text": format!("Jamal Hartnett pushed updates to {}:{git_ref}", r.name) },
        "detailedMessage": { "text": "Jamal Hartnett pushed a commit" },
        "resource": {
            "commits": [],
            "refUpdates": [{ "name": git_ref, "oldObjectId": ZERO, "newObjectId": after }],
            "repository": {
                "id": "278d5cd2-584d-4b63-824a-2ba458937249",
                "name": r.name,
                "url": format!("{}/_apis/git/repositories/278d5cd2-584d-4b63-824a-2ba458937249", r.web),
                "project": {
                    "id": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c",
                    "name": r.owner,
                    "state": "wellFormed",
                    "visibility": "private",
                },
                "defaultBranch": "refs/heads/main",
                "remoteUrl": remote,
            },
            "pushedBy": { "displayName": "Jamal Hartnett", "uniqueName": "jamal@example.com" },
            "pushId": 14,
            "date": "2024-05-02T19:17:28.6049287Z",
        },
        "resourceVersion": "1.0",
        "resourceContainers": {
            "collection": { "id": "c12d0eb8-e382-443b-9f9c-c52cba5014c2" },
            "project": { "id": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c" },
        },
        "createdDate": "2024-05-02T19:17:30.1234567Z",
    })
    .to_string()
    .into_bytes()
}

/// A Bitbucket Cloud `repo:push` payload. Bitbucket Cloud names the
/// repository by its web page (`links.html.href`), not a clone URL.
pub fn bitbucket_cloud_push(clone_url: &str, branch: &str, after: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    json!({
        "actor": { "type": "user", "display_name": "Emma", "nickname": "emma" },
        "repository": {
            "type": "repository",
            "name": r.name,
            "full_name": format!("{}/{}", r.owner, r.name),
            "uuid": "{b6a2e5a4-95b2-4b1f-9d3e-3f9c7d3a0f11}",
            "is_private": true,
            "scm": "git",
            "links": { "html": { "href": r.web } },
            "workspace": { "type": "workspace", "slug": r.owner, "name": r.owner },
            "project": { "type": "project", "key": "PROJ", "name": "Project" },
        },
        "push": {
            "changes": [{
                "new": { "type": "branch", "name": branch, "target": { "type": "commit", "hash": after } },
                "old": null,
                "created": true,
                "forced": false,
                "closed": false,
                "commits": [],
                "truncated": false,
            }],
        },
    })
    .to_string()
    .into_bytes()
}

/// A Bitbucket Server / Data Center `repo:refs_changed` payload; the
/// repository's clone links name it.
pub fn bitbucket_server_push(clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    json!({
        "eventKey": "repo:refs_changed",
        "date": "2024-05-02T19:17:28+0000",
        "actor": { "name": "admin", "emailAddress": "admin@example.com", "id": 1, "slug": "admin", "type": "NORMAL" },
        "repository": {
            "slug": r.name,
            "id": 84,
            "name": r.name,
            "scmId": "git",
            "state": "AVAILABLE",
            "forkable": true,
            "project": { "key": "PROJ", "id": 84, "name": "Project", "public": false, "type": "NORMAL" },
            "public": false,
            "links": {
                "clone": [
                    { "href": clone_url, "name": "http" },
                    { "href": format!("ssh://git@example.com:7999/{}/{}.git", r.owner, r.name), "name": "ssh" },
                ],
            },
        },
        "changes": [{
            "ref": { "id": git_ref, "displayId": git_ref.trim_start_matches("refs/heads/"), "type": "BRANCH" },
            "refId": git_ref,
            "fromHash": ZERO,
            "toHash": after,
            "type": "UPDATE",
        }],
    })
    .to_string()
    .into_bytes()
}

/// A Gitea (and Forgejo) push payload, GitHub's shape.
pub fn gitea_push(clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let r = repo_url(clone_url);
    let full_name = format!("{}/{}", r.owner, r.name);
    json!({
        "ref": git_ref,
        "before": ZERO,
        "after": after,
        "compare_url": format!("{}/compare/{ZERO}...{after}", r.web),
        "commits": [],
        "total_commits": 0,
        "head_commit": null,
        "repository": {
            "id": 1,
            "owner": { "id": 1, "login": r.owner, "username": r.owner },
            "name": r.name,
            "full_name": full_name,
            "private": true,
            "html_url": r.web,
            "clone_url": clone_url,
            "ssh_url": format!("git@example.com:{full_name}.git"),
            "default_branch": "main",
        },
        "pusher": { "id": 1, "login": "gitea", "username": "gitea" },
        "sender": { "id": 1, "login": "gitea", "username": "gitea" },
    })
    .to_string()
    .into_bytes()
}

// ---- Metrics -------------------------------------------------------------------

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A `/metrics` page: its samples keyed by `name{label="value",...}` (labels
/// sorted by name), and each metric family's `# TYPE`.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
    pub types: BTreeMap<String, String>,
    list: Vec<Sample>,
}

impl Metrics {
    /// Parses the Prometheus text exposition format (version 0.0.4),
    /// refusing what a scraper would: a malformed line, a name or label
    /// that breaks the grammar, a value that is not a float, a `# TYPE`
    /// after its samples or given twice, a sample repeated, a histogram
    /// whose buckets are not cumulative or whose `+Inf` bucket is not its
    /// count.
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut metrics = Metrics::default();
        let mut seen_families: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
                match words.as_slice() {
                    ["TYPE", name, kind] => {
                        check_name(name).map_err(at)?;
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                            return Err(at(format!("unknown type {kind}")));
                        }
                        if metrics.types.contains_key(*name) {
                            return Err(at("a second TYPE".into()));
                        }
                        if seen_families.iter().any(|f| f == name) {
                            return Err(at("TYPE after its samples".into()));
                        }
                        metrics.types.insert((*name).to_owned(), (*kind).to_owned());
                    }
                    ["TYPE", ..] => return Err(at("malformed TYPE".into())),
                    ["HELP", name, ..] => check_name(name).map_err(at)?,
                    ["HELP"] => return Err(at("malformed HELP".into())),
                    _ => {}
                }
                continue;
            }
            let sample = parse_sample(line).map_err(at)?;
            seen_families.push(family_of(&sample.name, &metrics.types));
            let key = key_of(&sample.name, &sample.labels);
            if metrics.samples.insert(key, sample.value).is_some() {
                return Err(at("sample repeated".into()));
            }
            metrics.list.push(sample);
        }
        metrics.check_histograms()?;
        Ok(metrics)
    }

    /// The value of the sample with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples.get(&key_of(name, &labels)).copied()
    }

    /// The sum of the samples of `name` whose labels include `labels`
    /// (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples of `name` whose labels include `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.list.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }

    pub fn all(&self) -> &[Sample] {
        &self.list
    }

    fn check_histograms(&self) -> Result<(), String> {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            // Group the buckets by their labels other than `le`.
            let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self
                .list
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let le = s
                    .labels
                    .get("le")
                    .ok_or_else(|| format!("{family}_bucket without le"))?;
                let le = parse_value(le).map_err(|e| format!("{family}_bucket le: {e}"))?;
                let mut rest = s.labels.clone();
                rest.remove("le");
                series
                    .entry(key_of(family, &rest))
                    .or_default()
                    .push((le, s.value));
            }
            for (key, mut buckets) in series {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                    return Err(format!("{key}: buckets not cumulative: {buckets:?}"));
                }
                let Some(&(last_le, last)) = buckets.last() else {
                    continue;
                };
                if last_le != f64::INFINITY {
                    return Err(format!("{key}: no +Inf bucket"));
                }
                let labels = labels_of_key(&key);
                let count = self
                    .list
                    .iter()
                    .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                    .ok_or_else(|| format!("{key}: no _count"))?;
                if count.value != last {
                    return Err(format!(
                        "{key}: +Inf bucket {last} is not the count {}",
                        count.value
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The family a sample belongs to: a histogram's or summary's
/// `_bucket`/`_sum`/`_count` belong to the base name.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
            {
                return base.to_owned();
            }
        }
    }
    name.to_owned()
}

fn key_of(name: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn labels_of_key(key: &str) -> BTreeMap<String, String> {
    match key.find('{') {
        Some(i) => parse_labels(&key[i + 1..key.len() - 1]).unwrap_or_default(),
        None => BTreeMap::new(),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("bad label name {name:?}"))
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => {
            if !v
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            {
                return Err(format!("bad value {v:?}"));
            }
            v.parse().map_err(|_| format!("bad value {v:?}"))
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let (labels, rest) = if line[name_end..].starts_with('{') {
        let close = find_label_end(&line[name_end + 1..])? + name_end + 1;
        (
            parse_labels(&line[name_end + 1..close])?,
            &line[close + 1..],
        )
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The index of the `}` closing a label set, skipping quoted values.
fn find_label_end(s: &str) -> Result<usize, String> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Ok(i),
            _ => {}
        }
    }
    Err("unclosed label set".into())
}

/// `a="x",b="y"` (a trailing comma allowed) into a map.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        check_label_name(name)?;
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.is_empty() {
            return Err("labels not separated by ,".into());
        }
    }
    Ok(labels)
}

//! [`LfsServer`]: a real Git LFS server (giftless) behind a front written
//! here that checks credentials and logs every request.
//!
//! The LFS tests need a server whose batch API, transfers and errors are
//! someone else's reading of the LFS specification, as git http-backend is
//! for git: giftless, run from `tests/lfs/serve.py` with local storage in a
//! temporary directory (installed by `tests/lfs/install.sh`). giftless has no
//! Basic auth of its own, and what a test asserts on (which objects were
//! asked for, uploaded, downloaded) is best seen before giftless, so every
//! request goes through the front first. The front:
//!
//! * serves the paths git-lfs derives from a remote URL,
//!   `/<repo>.git/info/lfs/...`, with one storage per repository as real
//!   hosts have (giftless wants an organization before the repository, so
//!   the front adds `/lfs` to every path it forwards and takes it off the
//!   `href`s that come back);
//! * checks Basic auth against fixed credentials (or the password as a
//!   Bearer token, as [`GitServer`](super::GitServer) does), and answers
//!   401 the way an LFS server does;
//! * gives every action of a batch response an `Authorization` header with
//!   a token of its own ([`LfsServer::action_authorization`]), which is the
//!   only other credential its object endpoints accept: actions carry their
//!   own auth on real hosts too, and a token that must never be printed is
//!   what the redaction tests look for;
//! * points every `href` at the origin the client used, so hrefs work
//!   whether the client came to the front directly or through a
//!   [`GitServer`](super::GitServer) built with
//!   [`lfs`](super::ServerBuilder::lfs);
//! * checks each upload's SHA-256 against its oid as it streams past, as
//!   hosts do (giftless would store anything): an object that does not
//!   match, or whose body was cut short, is answered 422 or not at all, and
//!   is not kept;
//! * records each request it answered ([`LfsRequest`]).
//!
//! What giftless itself does, which a client meets through the front:
//! a batch request needs a JSON `Content-Type` (422 without); every upload
//! action comes with a `verify` action, which checks size only; a batch
//! whose every object is missing is answered 404 as a whole ("Cannot find
//! any of the requested objects"), and one whose every object is otherwise
//! in error 422, where GitHub answers 200 with an error per object; with
//! at least one object fine, missing ones get `error.code` 404 (422 for a
//! size that does not match).
//!
//! Objects are plain files, so tests can list, corrupt or delete them by oid
//! ([`LfsServer::objects`], [`LfsServer::corrupt_object`],
//! [`LfsServer::delete_object`]) to play a store that lost or damaged one.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use tempfile::TempDir;

use super::http::{self, BodyReader, Framing, RequestHead};
use super::GitServer;

/// How long a connection may sit silent before the front drops it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const BUFFER: usize = 64 * 1024;
/// Largest batch or verify request body the front reads into memory.
const MAX_JSON_REQUEST: u64 = 1 << 20;
/// Largest batch response the front reads into memory to rewrite.
const MAX_JSON_RESPONSE: u64 = 16 << 20;
/// The organization the front puts before every repository for giftless.
const ORG: &str = "lfs";
const LFS_JSON: &str = "application/vnd.git-lfs+json";

/// The directory `tests/lfs/install.sh` installs giftless into, unless
/// `GIT_RELAY_TEST_GIFTLESS` names another (both read the same variable).
pub fn giftless_dir() -> PathBuf {
    std::env::var_os("GIT_RELAY_TEST_GIFTLESS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lfs-python"),
        PathBuf::from,
    )
}

/// giftless on 127.0.0.1 behind the front; see the module documentation.
///
/// Dropping it stops the front, ends giftless and deletes the storage.
pub struct LfsServer {
    front: Arc<Front>,
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    giftless: Child,
    /// Held open: giftless exits when it closes, even if this process dies
    /// without dropping the server.
    giftless_stdin: Option<ChildStdin>,
    root: TempDir,
}

/// Configures an [`LfsServer`]; see [`LfsServer::start`] for the defaults.
#[derive(Clone, Debug)]
pub struct LfsBuilder {
    username: String,
    password: String,
    anonymous_read: bool,
}

/// What a request to the front was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LfsKind {
    /// `POST .../objects/batch`.
    Batch,
    /// `PUT .../objects/storage/<oid>`: an object sent.
    Upload,
    /// `GET .../objects/storage/<oid>`: an object fetched.
    Download,
    /// `POST .../objects/storage/verify`.
    Verify,
    /// Anything else (locks, unknown paths): giftless answers it, mostly 404.
    Other,
}

/// One request the front answered.
#[derive(Clone, Debug)]
pub struct LfsRequest {
    pub method: String,
    /// As the client sent it, still percent-encoded, without the query.
    pub path: String,
    pub kind: LfsKind,
    /// The repository, as in the URL (`src.git`, `group/src.git`).
    pub repo: Option<String>,
    /// Batch only: the `operation` asked for (`upload`, `download`).
    pub operation: Option<String>,
    /// Batch: the oids asked about, in order. Upload, download, verify:
    /// the object's oid.
    pub oids: Vec<String>,
    /// Batch only: how many objects the response gave actions to, i.e. the
    /// objects the server wants (upload) or offers (download).
    pub actions: usize,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// As answered; 422 for an upload that does not hash to its oid (the
    /// front checks, as hosts do, and nothing is stored); 0 for an upload
    /// whose body was cut short (no answer, nothing stored).
    pub status: u16,
    /// Request body size after removing any chunked framing.
    pub body_bytes: u64,
    /// Response body size as sent to the client.
    pub response_bytes: u64,
}

impl LfsServer {
    /// Starts giftless and the front with the defaults: Basic auth as
    /// `alice` / `s3cret` (the same as [`GitServer`](super::GitServer)'s)
    /// required for everything. Panics, saying how to install it, when
    /// giftless is missing.
    pub fn start() -> LfsServer {
        LfsServer::builder().start()
    }

    pub fn builder() -> LfsBuilder {
        LfsBuilder {
            username: "alice".to_owned(),
            password: "s3cret".to_owned(),
            anonymous_read: false,
        }
    }

    /// The LFS endpoint of `repo` on this front, as `--*-lfs-url` takes it:
    /// `http://127.0.0.1:PORT/<repo>.git/info/lfs` (`.git` added when
    /// missing, as git-lfs does).
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{}/info/lfs", self.port, with_git(repo))
    }

    /// [`url`](Self::url) with the credentials in it.
    pub fn url_with_credentials(&self, repo: &str) -> String {
        format!(
            "http://{}:{}@127.0.0.1:{}/{}/info/lfs",
            utf8_percent_encode(&self.front.username, NON_ALPHANUMERIC),
            utf8_percent_encode(&self.front.password, NON_ALPHANUMERIC),
            self.port,
            with_git(repo)
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn username(&self) -> &str {
        &self.front.username
    }

    pub fn password(&self) -> &str {
        &self.front.password
    }

    /// The `Authorization` value every action of a batch response carries
    /// (`Bearer lfs-action-...`, random per server): a secret a client must
    /// send with the action and never print.
    pub fn action_authorization(&self) -> &str {
        &self.front.action_authorization
    }

    /// Every request answered so far, in the order the responses completed.
    /// A request is logged before the last byte of its response is sent, so
    /// once a client has finished, everything it did is here.
    pub fn requests(&self) -> Vec<LfsRequest> {
        self.front.log().clone()
    }

    /// The answered requests of one kind.
    pub fn requests_of(&self, kind: LfsKind) -> Vec<LfsRequest> {
        self.front
            .log()
            .iter()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    /// The oids of the objects uploaded with success (2xx), in order.
    pub fn uploaded(&self) -> Vec<String> {
        self.succeeded(LfsKind::Upload)
    }

    /// The oids of the objects downloaded with success (2xx), in order.
    pub fn downloaded(&self) -> Vec<String> {
        self.succeeded(LfsKind::Download)
    }

    fn succeeded(&self, kind: LfsKind) -> Vec<String> {
        self.requests_of(kind)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(|r| r.oids)
            .collect()
    }

    pub fn clear_requests(&self) {
        self.front.log().clear();
    }

    /// Where giftless keeps objects (one directory per repository below).
    pub fn storage(&self) -> &Path {
        &self.front.storage
    }

    /// The file holding `oid` of `repo`, whether or not it exists.
    pub fn object_path(&self, repo: &str, oid: &str) -> PathBuf {
        self.repo_storage(repo).join(oid)
    }

    /// The objects stored for `repo` as `(oid, size)`, sorted by oid.
    pub fn objects(&self, repo: &str) -> Vec<(String, u64)> {
        let Ok(entries) = fs::read_dir(self.repo_storage(repo)) else {
            return Vec::new();
        };
        let mut objects: Vec<_> = entries
            .map(|e| e.expect("read LFS storage"))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let is_oid = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
                let meta = e.metadata().ok()?;
                (is_oid && meta.is_file()).then_some((name, meta.len()))
            })
            .collect();
        objects.sort();
        objects
    }

    pub fn has_object(&self, repo: &str, oid: &str) -> bool {
        self.object_path(repo, oid).is_file()
    }

    /// Stores `content` for `repo` directly, as if uploaded; returns its oid.
    pub fn put_object(&self, repo: &str, content: &[u8]) -> String {
        let oid = sha256_hex(content);
        let path = self.object_path(repo, &oid);
        fs::create_dir_all(path.parent().expect("object directory"))
            .expect("create LFS storage directory");
        fs::write(&path, content).expect("write LFS object");
        oid
    }

    /// Removes `oid` of `repo` from the storage: a pointer whose object the
    /// server lost. Panics if it was not there.
    pub fn delete_object(&self, repo: &str, oid: &str) {
        let path = self.object_path(repo, oid);
        fs::remove_file(&path)
            .unwrap_or_else(|e| panic!("delete LFS object {}: {e}", path.display()));
    }

    /// Flips every bit of the first byte of `oid` of `repo`: same size, so
    /// the batch API still offers it, but its content no longer hashes to
    /// its oid. Panics if it was not there or is empty.
    pub fn corrupt_object(&self, repo: &str, oid: &str) {
        let path = self.object_path(repo, oid);
        let mut content =
            fs::read(&path).unwrap_or_else(|e| panic!("read LFS object {}: {e}", path.display()));
        let first = content
            .first_mut()
            .expect("an empty object cannot be corrupted");
        *first = !*first;
        fs::write(&path, content).expect("write LFS object");
    }

    /// The directory holding the objects of `repo` (`src.git` or `src`),
    /// one file per oid.
    pub fn repo_storage(&self, repo: &str) -> PathBuf {
        self.front.repo_storage(repo)
    }

    /// The front, for a [`GitServer`](super::GitServer) that routes its
    /// `info/lfs` paths here.
    pub(super) fn front(&self) -> Arc<Front> {
        Arc::clone(&self.front)
    }
}

impl Drop for LfsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        drop(self.giftless_stdin.take());
        let _ = self.giftless.kill();
        let _ = self.giftless.wait();
        // `root` is removed after this, once giftless no longer writes there.
    }
}

impl LfsBuilder {
    /// The accepted Basic credentials, compared whole as `user:password`.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.username = user.to_owned();
        self.password = password.to_owned();
        self
    }

    /// Allow downloads (batch `download` and object GETs) without
    /// credentials; wrong credentials are still refused.
    pub fn anonymous_read(mut self, on: bool) -> Self {
        self.anonymous_read = on;
        self
    }

    pub fn start(self) -> LfsServer {
        let root = tempfile::Builder::new()
            .prefix("git-relay-lfs-")
            .tempdir()
            .expect("create LFS server root");
        let storage = root.path().join("storage");
        fs::create_dir(&storage).expect("create LFS storage");
        let (giftless, giftless_stdin, upstream) = spawn_giftless(root.path(), &storage);

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("listener address").port();
        let front = Arc::new(Front {
            username: self.username,
            password: self.password,
            anonymous_read: self.anonymous_read,
            action_authorization: format!("Bearer lfs-action-{}", random_hex()),
            upstream,
            storage,
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (front, stop) = (Arc::clone(&front), Arc::clone(&stop));
            thread::Builder::new()
                .name(format!("lfs-front-{port}"))
                .spawn(move || accept_loop(&listener, &front, port, &stop))
                .expect("spawn acceptor thread")
        };
        LfsServer {
            front,
            port,
            stop,
            acceptor: Some(acceptor),
            giftless,
            giftless_stdin: Some(giftless_stdin),
            root,
        }
    }
}

/// The message GitLab refuses such a push with, which the hook of
/// [`GitServer::refuse_pushes_missing_lfs`] prints too.
pub const LFS_OBJECTS_MISSING: &str = "LFS objects are missing";

// Kept here rather than in server.rs: it is about the LFS store.
impl GitServer {
    /// Makes `repo` (a bare repository on this server, built with
    /// [`lfs`](super::ServerBuilder::lfs)) refuse a push that brings an LFS
    /// pointer whose object is not in its LFS storage with the right size,
    /// as GitLab does, with [`LFS_OBJECTS_MISSING`] in the refusal: a
    /// pre-receive hook reads every new blob under 1,024 bytes of the
    /// pushed history.
    pub fn refuse_pushes_missing_lfs(&self, repo: &str) {
        let store = self.lfs().repo_storage(repo);
        let script = format!(
            r#"#!/bin/sh
# Refuses new LFS pointers whose objects the LFS store lacks.
store='{store}'
zero=0000000000000000000000000000000000000000
missing=$(
    while read -r old new ref; do
        [ "$new" = "$zero" ] && continue
        git rev-list --objects "$new" --not --all
    done | cut -d' ' -f1 |
    git cat-file --batch-check='%(objecttype) %(objectname) %(objectsize)' |
    while read -r type oid size; do
        [ "$type" = blob ] && [ "$size" -lt 1024 ] || continue
        git cat-file blob "$oid" | awk '
            NR == 1 && $0 != "version https://git-lfs.github.com/spec/v1" {{ bad = 1 }}
            /^oid sha256:/ {{ oid = substr($2, 8) }}
            /^size / {{ size = $2 }}
            END {{ if (!bad && oid != "" && size != "") print oid, size }}'
    done |
    while read -r oid size; do
        if [ ! -f "$store/$oid" ] || [ "$(stat -c %s "$store/$oid")" != "$size" ]; then
            echo "$oid"
        fi
    done
)
if [ -n "$missing" ]; then
    echo "{LFS_OBJECTS_MISSING}: $(echo "$missing" | tr '
' ' ')" >&2
    exit 1
fi
"#,
            store = store.display()
        );
        super::install_hook(&self.repo_path(repo), "pre-receive", &script);
    }
}

/// Starts `tests/lfs/serve.py`; returns it, its stdin and its port.
fn spawn_giftless(root: &Path, storage: &Path) -> (Child, ChildStdin, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lfs/serve.py");
    let site = giftless_dir();
    let mut command = Command::new("python3");
    // -s: no user site-packages, so only the pinned versions are seen.
    command.arg("-s").arg(&script).arg(storage);
    // giftless reads `.env` from its working directory and `GIFTLESS_*`
    // variables, and Python its own `PYTHON*`: none may come from the
    // developer's environment. The rest stays, so that `python3` is the
    // interpreter install.sh installed for (pyenv reads its variables).
    command.current_dir(root);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("GIFTLESS_") || name.starts_with("PYTHON") {
            command.env_remove(&*name);
        }
    }
    let mut child = command
        .env("PYTHONPATH", &site)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 for giftless: {e}"));
    let stdin = child.stdin.take().expect("piped stdin");
    let said = Arc::new(Mutex::new(String::new()));
    {
        let stderr = child.stderr.take().expect("piped stderr");
        let said = Arc::clone(&said);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[giftless] {line}");
                let mut said = said.lock().unwrap_or_else(PoisonError::into_inner);
                said.push_str(&line);
                said.push('\n');
            }
        });
    }
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let _ = stdout.read_line(&mut first);
    let port = first
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse::<u16>().ok());
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        // The stderr thread ends with the process; give it a moment to read.
        thread::sleep(Duration::from_millis(200));
        panic!(
            "giftless did not start (is it installed? run `bash tests/lfs/install.sh`; \
             it looks in {}):\n{}",
            site.display(),
            said.lock().unwrap_or_else(PoisonError::into_inner)
        );
    };
    // Nothing more is printed on stdout, but a full pipe must not block it.
    thread::spawn(move || io::copy(&mut stdout, &mut io::sink()));
    (child, stdin, port)
}

fn accept_loop(listener: &TcpListener, front: &Arc<Front>, port: u16, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let front = Arc::clone(front);
        let spawned = thread::Builder::new()
            .name("lfs-front-conn".to_owned())
            .spawn(move || {
                if let Err(e) = serve(stream, &front, port) {
                    eprintln!("[lfs-front] connection dropped: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("[lfs-front] cannot spawn connection thread: {e}");
        }
    }
}

fn serve(stream: TcpStream, front: &Front, port: u16) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(BUFFER, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(BUFFER, stream);
    let fallback = format!("127.0.0.1:{port}");
    while let Some(head) = http::read_head(&mut reader)? {
        let origin = format!("http://{}", head.header("Host").unwrap_or(&fallback));
        if !front.handle(&head, &mut reader, &mut writer, &origin)? {
            break;
        }
    }
    writer.flush()
}

/// Whether a request path is one the front answers: `/<repo>.git/info/lfs`
/// and below.
pub(super) fn is_lfs_path(path: &str) -> bool {
    Route::parse(path).is_some()
}

/// A request path taken apart.
struct Route<'a> {
    /// Without the leading `/`, e.g. `group/src.git`.
    repo: &'a str,
    endpoint: Endpoint<'a>,
}

/// What follows `info/lfs/` in a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Batch,
    Verify,
    /// `objects/storage/<oid>`, uploaded with PUT and downloaded with GET.
    Object(&'a str),
    Other,
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Option<Route<'a>> {
        let (repo, rest) = path.split_once("/info/lfs")?;
        let repo = repo.strip_prefix('/')?;
        if !repo.ends_with(".git") || repo.len() == ".git".len() || repo.ends_with("/.git") {
            return None;
        }
        let rest = match rest {
            "" => "",
            rest => rest.strip_prefix('/')?,
        };
        let endpoint = match rest {
            "objects/batch" => Endpoint::Batch,
            "objects/storage/verify" => Endpoint::Verify,
            _ => match rest.strip_prefix("objects/storage/") {
                Some(oid) if !oid.is_empty() && !oid.contains('/') => Endpoint::Object(oid),
                _ => Endpoint::Other,
            },
        };
        Some(Route { repo, endpoint })
    }
}

/// The authenticating front; shared by its own listener and by a
/// [`GitServer`](super::GitServer) that routes LFS paths to it.
pub(super) struct Front {
    username: String,
    password: String,
    anonymous_read: bool,
    action_authorization: String,
    /// giftless's port.
    upstream: u16,
    storage: PathBuf,
    log: Mutex<Vec<LfsRequest>>,
}

impl Front {
    fn log(&self) -> MutexGuard<'_, Vec<LfsRequest>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn allowed(&self, authorization: Option<&str>, kind: LfsKind, operation: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return self.anonymous_read
                && (kind == LfsKind::Download
                    || (kind == LfsKind::Batch && operation == Some("download")));
        };
        let object = matches!(kind, LfsKind::Upload | LfsKind::Download | LfsKind::Verify);
        if object && value == self.action_authorization {
            return true;
        }
        // The git side's auth kinds: Basic, or the password as a Bearer
        // token.
        let (scheme, param) = value.split_once(' ').unwrap_or((value, ""));
        let param = param.trim();
        let expected = format!("{}:{}", self.username, self.password);
        if scheme.eq_ignore_ascii_case("Bearer") {
            return param == self.password;
        }
        scheme.eq_ignore_ascii_case("Basic")
            && BASE64
                .decode(param)
                .is_ok_and(|decoded| decoded == expected.as_bytes())
    }

    /// Answers one request whose path [`is_lfs_path`]; `origin`
    /// (`scheme://host:port`) is where the client reached the server, for
    /// the `href`s. Returns whether the connection stays open.
    pub(super) fn handle<R: Read, W: Write>(
        &self,
        head: &RequestHead,
        reader: &mut BufReader<R>,
        writer: &mut BufWriter<W>,
        origin: &str,
    ) -> io::Result<bool> {
        let framing = head.framing()?;
        let close = head.wants_close();
        let route = Route::parse(head.path());
        let endpoint = route.as_ref().map_or(Endpoint::Other, |r| r.endpoint);
        let oid = match endpoint {
            Endpoint::Object(oid) => Some(oid),
            _ => None,
        };
        let kind = match (endpoint, head.method.as_str()) {
            (Endpoint::Batch, "POST") => LfsKind::Batch,
            (Endpoint::Verify, "POST") => LfsKind::Verify,
            (Endpoint::Object(_), "PUT") => LfsKind::Upload,
            (Endpoint::Object(_), "GET") => LfsKind::Download,
            _ => LfsKind::Other,
        };
        let mut record = LfsRequest {
            method: head.method.clone(),
            path: head.path().to_owned(),
            kind,
            repo: route.as_ref().map(|r| r.repo.to_owned()),
            operation: None,
            oids: oid.map(str::to_owned).into_iter().collect(),
            actions: 0,
            authorization: head.header("Authorization").map(str::to_owned),
            status: 0,
            body_bytes: 0,
            response_bytes: 0,
        };
        let Some(route) = route else {
            let body = lfs_message("Not an LFS path");
            return self.refuse(head, framing, record, reader, writer, close, 404, &body);
        };

        // Batch and verify bodies are small JSON, read whole: the batch's
        // operation decides whether anonymous access is enough.
        let json_body = if matches!(kind, LfsKind::Batch | LfsKind::Verify) {
            if framing != Framing::None && head.expects_continue() {
                writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                writer.flush()?;
            }
            let mut body = Vec::new();
            BodyReader::new(reader, framing)
                .take(MAX_JSON_REQUEST + 1)
                .read_to_end(&mut body)?;
            if body.len() as u64 > MAX_JSON_REQUEST {
                return Err(http::invalid("LFS request body too large"));
            }
            record.body_bytes = body.len() as u64;
            let parsed: Option<Value> = serde_json::from_slice(&body).ok();
            if kind == LfsKind::Batch {
                if let Some(parsed) = &parsed {
                    record.operation = parsed["operation"].as_str().map(str::to_owned);
                    record.oids = oids_of(parsed);
                }
            } else if let Some(oid) = parsed.as_ref().and_then(|p| p["oid"].as_str()) {
                record.oids = vec![oid.to_owned()];
            }
            Some(body)
        } else {
            None
        };

        if !self.allowed(
            head.header("Authorization"),
            kind,
            record.operation.as_deref(),
        ) {
            let body = lfs_message("Credentials needed");
            if json_body.is_some() {
                record.status = 401;
                record.response_bytes = body.len() as u64;
                self.log().push(record);
                write_response(writer, 401, "Unauthorized", &[CHALLENGE], &body, close)?;
                return Ok(!close);
            }
            return self.refuse(head, framing, record, reader, writer, close, 401, &body);
        }

        let mut upstream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.upstream))?;
        let target = match head.query() {
            "" => format!("/{ORG}{}", head.path()),
            q => format!("/{ORG}{}?{q}", head.path()),
        };
        let mut request = format!(
            "{} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            head.method, self.upstream
        );
        for name in ["Content-Type", "Accept"] {
            if let Some(value) = head.header(name) {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        match (&json_body, framing) {
            (Some(body), _) => request.push_str(&format!("Content-Length: {}\r\n", body.len())),
            (None, Framing::Length(n)) => request.push_str(&format!("Content-Length: {n}\r\n")),
            (None, Framing::Chunked) => request.push_str("Transfer-Encoding: chunked\r\n"),
            (None, Framing::None) => {}
        }
        request.push_str("\r\n");
        let mut up = BufWriter::with_capacity(BUFFER, upstream.try_clone()?);
        up.write_all(request.as_bytes())?;
        let mut sha256 = ring::digest::Context::new(&ring::digest::SHA256);
        let mut body_result = Ok(());
        match &json_body {
            Some(body) => up.write_all(body)?,
            None if framing != Framing::None => {
                if head.expects_continue() {
                    writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                    writer.flush()?;
                }
                let (bytes, result) = forward_body(reader, framing, &mut up, &mut sha256);
                record.body_bytes = bytes;
                body_result = result;
            }
            None => {}
        }
        // giftless may have answered and closed before reading everything.
        let _ = up.flush();
        drop(up);
        // The end of the request for giftless, also when the client's body
        // was cut short: giftless then fails the request instead of waiting.
        let _ = upstream.shutdown(Shutdown::Write);

        let mut up_reader = BufReader::with_capacity(BUFFER, &mut upstream);
        let (status, reason, headers) = read_response_head(&mut up_reader)?;
        record.status = status;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let up_framing = if header("Transfer-Encoding").is_some() {
            Some(Framing::Chunked)
        } else {
            header("Content-Length")
                .and_then(|v| v.trim().parse().ok())
                .map(Framing::Length)
        };
        let content_type = header("Content-Type").unwrap_or("application/octet-stream");
        let mut body: Box<dyn Read + '_> = match up_framing {
            Some(Framing::Length(0)) => Box::new(io::empty()),
            Some(f) => Box::new(BodyReader::new(&mut up_reader, f)),
            None => Box::new(&mut up_reader),
        };

        // giftless stores what it is sent; a host checks it first. An
        // upload that was cut short or does not hash to its oid is removed
        // once giftless is done with it.
        if let (LfsKind::Upload, Some(oid)) = (kind, oid) {
            if body_result.is_err() || hex(sha256.finish().as_ref()) != oid {
                let _ = io::copy(&mut body, &mut io::sink());
                drop(body);
                let _ = fs::remove_file(self.object_file(route.repo, oid));
                if let Err(e) = body_result {
                    // Nothing can be answered on a connection whose request
                    // did not end.
                    record.status = 0;
                    self.log().push(record);
                    return Err(e);
                }
                let message = lfs_message("The object does not hash to its oid");
                record.status = 422;
                record.response_bytes = message.len() as u64;
                self.log().push(record);
                write_response(writer, 422, "Unprocessable Entity", &[], &message, close)?;
                return Ok(!close);
            }
        }

        if kind == LfsKind::Batch && status == 200 {
            let mut json = Vec::new();
            body.by_ref()
                .take(MAX_JSON_RESPONSE + 1)
                .read_to_end(&mut json)?;
            let rewritten = self.rewrite_batch(&json, origin, &mut record)?;
            record.response_bytes = rewritten.len() as u64;
            self.log().push(record);
            let content_type = ("Content-Type", LFS_JSON);
            write_response(writer, status, &reason, &[content_type], &rewritten, close)?;
            return Ok(!close);
        }

        // A download is sent with its length, as object stores do.
        let length = match (kind, status, up_framing) {
            (LfsKind::Download, 200, _) => oid
                .and_then(|oid| fs::metadata(self.object_file(route.repo, oid)).ok())
                .map(|m| m.len()),
            (_, _, Some(Framing::Length(n))) => Some(n),
            _ => None,
        };
        write!(
            writer,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        )?;
        match length {
            Some(n) => write!(writer, "Content-Length: {n}\r\n")?,
            None => writer.write_all(b"Transfer-Encoding: chunked\r\n")?,
        }
        let connection = if close { "close" } else { "keep-alive" };
        write!(writer, "Connection: {connection}\r\n\r\n")?;
        let sent = send_body(&mut body, writer, length, move |total| {
            record.response_bytes = total;
            self.log().push(record);
        });
        drop(body);
        sent?;
        writer.flush()?;
        Ok(!close)
    }

    /// Answers without asking giftless (wrong path, refused credentials),
    /// reading and dropping the request body so the connection stays in
    /// step.
    #[allow(clippy::too_many_arguments)]
    fn refuse<R: Read, W: Write>(
        &self,
        head: &RequestHead,
        framing: Framing,
        mut record: LfsRequest,
        reader: &mut BufReader<R>,
        writer: &mut BufWriter<W>,
        mut close: bool,
        status: u16,
        body: &[u8],
    ) -> io::Result<bool> {
        if framing != Framing::None {
            if head.expects_continue() {
                close = true;
            } else {
                let mut request_body = BodyReader::new(reader, framing);
                record.body_bytes = io::copy(&mut request_body, &mut io::sink())?;
            }
        }
        record.status = status;
        record.response_bytes = body.len() as u64;
        self.log().push(record);
        let (reason, headers) = match status {
            401 => ("Unauthorized", &[CHALLENGE][..]),
            _ => ("Not Found", &[][..]),
        };
        write_response(writer, status, reason, headers, body, close)?;
        Ok(!close)
    }

    /// Points every action's `href` at `origin` and gives it the action
    /// header; counts the objects with actions.
    fn rewrite_batch(
        &self,
        json: &[u8],
        origin: &str,
        record: &mut LfsRequest,
    ) -> io::Result<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(json)
            .map_err(|e| io::Error::other(format!("giftless sent a bad batch response: {e}")))?;
        let objects = value["objects"]
            .as_array_mut()
            .map_or(&mut [][..], |v| &mut v[..]);
        for object in objects {
            let Some(actions) = object["actions"].as_object_mut() else {
                continue;
            };
            record.actions += 1;
            for action in actions.values_mut() {
                let href = action["href"].as_str().unwrap_or_default();
                let url = url::Url::parse(href).map_err(|e| {
                    io::Error::other(format!("giftless sent a bad href {href:?}: {e}"))
                })?;
                let path = url.path();
                let path = path.strip_prefix(&format!("/{ORG}")).unwrap_or(path);
                let href = match url.query() {
                    Some(q) => format!("{origin}{path}?{q}"),
                    None => format!("{origin}{path}"),
                };
                action["href"] = Value::String(href);
                action["header"] = serde_json::json!({
                    "Authorization": self.action_authorization,
                });
            }
        }
        serde_json::to_vec(&value).map_err(io::Error::other)
    }

    /// Where giftless keeps the objects of `repo`: under its organization,
    /// without `.git`.
    fn repo_storage(&self, repo: &str) -> PathBuf {
        let repo = with_git(repo);
        let name = repo.strip_suffix(".git").unwrap_or(&repo);
        self.storage.join(ORG).join(name)
    }

    fn object_file(&self, repo: &str, oid: &str) -> PathBuf {
        self.repo_storage(repo).join(oid)
    }
}

const CHALLENGE: (&str, &str) = ("WWW-Authenticate", "Basic realm=\"git-lfs\"");

/// The oids of a batch request's `objects`.
fn oids_of(batch: &Value) -> Vec<String> {
    batch["objects"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .filter_map(|o| o["oid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An LFS error body: `{"message": ...}`.
fn lfs_message(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "message": message })).expect("JSON of a string")
}

fn write_response(
    writer: &mut impl Write,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    write!(writer, "HTTP/1.1 {status} {reason}\r\n")?;
    for (name, value) in headers {
        write!(writer, "{name}: {value}\r\n")?;
    }
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        writer,
        "Content-Type: {LFS_JSON}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )?;
    writer.write_all(body)?;
    writer.flush()
}

/// Copies a request body to giftless, chunked again if it came chunked, and
/// hashes it. If giftless stops reading, the rest is still read and
/// dropped, so the client's connection stays in step. Returns the body's
/// size and whether it could be read to its end.
fn forward_body(
    reader: &mut impl BufRead,
    framing: Framing,
    up: &mut impl Write,
    sha256: &mut ring::digest::Context,
) -> (u64, io::Result<()>) {
    let mut body = BodyReader::new(reader, framing);
    let mut buf = vec![0; BUFFER];
    let mut total = 0;
    let mut open = true;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (total, Err(e)),
        };
        total += n as u64;
        sha256.update(&buf[..n]);
        if open {
            let sent = match framing {
                Framing::Chunked => http::write_chunk(up, &buf[..n]),
                _ => up.write_all(&buf[..n]),
            };
            open = sent.is_ok();
        }
    }
    if open && framing == Framing::Chunked {
        let _ = http::write_last_chunk(up);
    }
    (total, Ok(()))
}

/// A response's status, reason and headers.
type ResponseHead = (u16, String, Vec<(String, String)>);

/// Reads a response's status line and headers.
fn read_response_head(reader: &mut impl BufRead) -> io::Result<ResponseHead> {
    let line = http::read_line(reader)?.ok_or_else(|| http::invalid("giftless closed early"))?;
    let mut parts = line.splitn(3, ' ');
    let (Some(_version), Some(status)) = (parts.next(), parts.next()) else {
        return Err(http::invalid("bad status line from giftless"));
    };
    let status = status
        .parse()
        .map_err(|_| http::invalid("bad status from giftless"))?;
    let reason = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let line =
            http::read_line(reader)?.ok_or_else(|| http::invalid("giftless closed early"))?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok((status, reason, headers))
}

/// Sends a response body with the framing announced (`length`, or chunked
/// when `None`), calling `before_last` before its last byte or chunk goes,
/// so that the request is in the log by the time the client has it all.
/// A body shorter than announced is an error (the connection is then cut).
fn send_body(
    body: &mut dyn Read,
    writer: &mut impl Write,
    length: Option<u64>,
    before_last: impl FnOnce(u64),
) -> io::Result<()> {
    let mut buf = vec![0; BUFFER];
    let mut sent = 0u64;
    let mut before_last = Some(before_last);
    loop {
        let want = match length {
            // Hold back the last byte until the request is logged.
            Some(n) => usize::try_from(n.saturating_sub(sent).saturating_sub(1))
                .unwrap_or(usize::MAX)
                .min(BUFFER),
            None => BUFFER,
        };
        if want == 0 {
            break;
        }
        let n = match body.read(&mut buf[..want]) {
            Ok(0) if length.is_some() => {
                if let Some(f) = before_last.take() {
                    f(sent);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "giftless sent less than the object's size",
                ));
            }
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match length {
            Some(_) => writer.write_all(&buf[..n])?,
            None => http::write_chunk(writer, &buf[..n])?,
        }
        sent += n as u64;
    }
    match length {
        Some(0) => {
            if let Some(f) = before_last.take() {
                f(0);
            }
        }
        Some(n) => {
            let mut last = [0u8];
            body.read_exact(&mut last)?;
            if let Some(f) = before_last.take() {
                f(n);
            }
            writer.write_all(&last)?;
        }
        None => {
            if let Some(f) = before_last.take() {
                f(sent);
            }
            http::write_last_chunk(writer)?;
        }
    }
    Ok(())
}

/// `repo` without a leading `/`, ending in `.git`.
fn with_git(repo: &str) -> String {
    let repo = repo.trim_start_matches('/').trim_end_matches('/');
    if repo.ends_with(".git") {
        repo.to_owned()
    } else {
        format!("{repo}.git")
    }
}

/// 32 hex digits, different for every call and every process.
fn random_hex() -> String {
    let mut out = String::new();
    for i in 0..2u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(i);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

/// The SHA-256 of `data` in hex, an LFS object's oid.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! [`GitServer`]: `git http-backend` behind a small HTTP/1.1 server.
//!
//! The server exists so that tests exercise git-relay against git's own
//! implementation of the smart protocol rather than against our reading of it,
//! while still seeing every request: a real web server would hide exactly the
//! details (framing, auth round trips, how many packs were asked for) that
//! git-relay's tests want to assert on.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use rustls::{ServerConfig, ServerConnection};
use tempfile::TempDir;

use super::cgi::{self, CgiRequest};
use super::http::{self, BodyReader, Framing, RequestHead};
use super::lfs::{self, Front, LfsServer};
use super::repo;
use super::tls;

/// The WHATWG URL standard's userinfo percent-encode set, plus `%` itself:
/// the standard leaves `%` alone because it expects input that is already
/// encoded, but test credentials are raw and a literal `%` must survive.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// How long a connection may sit silent before the server drops it, so a
/// client that leaks a kept-alive connection does not leak a thread with it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Size of each read from the client and from the CGI; one chunk per read.
const BUFFER: usize = 64 * 1024;

const UNAUTHORIZED_BODY: &[u8] = b"Authentication required\n";

/// A git smart-HTTP server on 127.0.0.1, serving the bare repositories under
/// its own temporary [`root`](GitServer::root).
///
/// Dropping it stops accepting connections and deletes the root; connections
/// still open finish on detached threads.
pub struct GitServer {
    shared: Arc<Shared>,
    port: u16,
    tls: bool,
    ca_file: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    root: TempDir,
    /// With [`ServerBuilder::lfs`]: the LFS server behind `info/lfs` paths.
    lfs: Option<LfsServer>,
}

/// Configures a [`GitServer`]; see [`GitServer::start`] for the defaults.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    tls: bool,
    protocol_v2: bool,
    username: String,
    password: String,
    anonymous_read: bool,
    dumb: bool,
    moved: Vec<(String, String)>,
    config: Vec<(String, String)>,
    lfs: bool,
    lfs_hrefs_elsewhere: bool,
    bearer: Option<BearerTokens>,
}

/// Decides whether the server takes a credential that is not its own
/// user and password: the user (`None` for a bearer token) and the secret.
/// Short-lived tokens a fake identity service issued are checked so.
pub type TokenCheck = Arc<dyn Fn(Option<&str>, &str) -> bool + Send + Sync>;

/// Whether `check` takes the credential of an `Authorization` header: the
/// user and password of Basic, or a Bearer token (no user).
fn token_accepted(check: &TokenCheck, header: &str) -> bool {
    let (scheme, param) = header.split_once(' ').unwrap_or((header, ""));
    let param = param.trim();
    if scheme.eq_ignore_ascii_case("Bearer") {
        return check(None, param);
    }
    let decoded = (scheme.eq_ignore_ascii_case("Basic"))
        .then(|| BASE64.decode(param).ok())
        .flatten()
        .and_then(|d| String::from_utf8(d).ok());
    let pair = decoded.as_deref().and_then(|d| d.split_once(':'));
    pair.is_some_and(|(user, secret)| check(Some(user), secret))
}

/// One request the server answered, as the client sent it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Still percent-encoded, without the query.
    pub path: String,
    /// Without the `?`; as sent, even where [`ServerBuilder::dumb`] changed
    /// what the backend saw.
    pub query: String,
    /// The `Git-Protocol` header, e.g. `version=2`.
    pub git_protocol: Option<String>,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    pub content_length: Option<u64>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Request body size after removing the chunked framing.
    pub body_bytes: u64,
    pub status: u16,
    /// Response body size before chunked framing was added.
    pub response_bytes: u64,
}

impl Request {
    /// `git-upload-pack` or `git-receive-pack`, from the RPC path or the
    /// `service=` parameter of an `info/refs` request.
    pub fn service(&self) -> Option<&str> {
        let from_path = ["git-upload-pack", "git-receive-pack"]
            .into_iter()
            .find(|name| {
                self.path
                    .strip_suffix(name)
                    .is_some_and(|p| p.ends_with('/'))
            });
        from_path.or_else(|| {
            self.query
                .split('&')
                .find_map(|param| param.strip_prefix("service="))
        })
    }

    /// Whether this is a POST, i.e. a negotiation or pack transfer rather than
    /// a ref advertisement.
    pub fn is_rpc(&self) -> bool {
        self.method == "POST"
    }
}

/// The settings and request log that connection threads share with the handle.
struct Shared {
    root: PathBuf,
    username: String,
    password: String,
    protocol_v2: bool,
    anonymous_read: bool,
    /// Credentials accepted besides `username`/`password`.
    tokens: OnceLock<TokenCheck>,
    dumb: bool,
    moved: Vec<(String, String)>,
    lfs: Option<LfsRoute>,
    bearer: Option<BearerTokens>,
    log: Mutex<Vec<Request>>,
}

/// Bearer tokens an identity provider's fake issued, each valid until it
/// expires; a server built with them ([`ServerBuilder::bearer_tokens`])
/// accepts those and no other bearer token.
#[derive(Clone, Default)]
pub struct BearerTokens(Arc<Mutex<Vec<(String, Instant)>>>);

impl BearerTokens {
    /// Makes `token` valid for `life` from now.
    pub fn issue(&self, token: &str, life: Duration) {
        let mut tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.push((token.to_owned(), Instant::now() + life));
    }

    /// Whether `token` was issued and has not expired.
    pub fn valid(&self, token: &str) -> bool {
        let tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        tokens.iter().any(|(t, until)| t == token && *until > now)
    }
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|t| t.len()).unwrap_or(0);
        write!(f, "BearerTokens({n} issued)")
    }
}

/// Where `/<repo>.git/info/lfs/...` requests go, and the origin the `href`s
/// of batch responses point to: `elsewhere` if set, else back here (at
/// `host` when the client sent no `Host`).
struct LfsRoute {
    front: Arc<Front>,
    scheme: &'static str,
    host: String,
    elsewhere: Option<String>,
}

impl GitServer {
    /// Starts a server with the defaults: plain HTTP, protocol v2 honoured,
    /// Basic auth as `alice` / `s3cret` required for everything.
    pub fn start() -> GitServer {
        GitServer::builder().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            tls: false,
            protocol_v2: true,
            username: "alice".to_owned(),
            password: "s3cret".to_owned(),
            anonymous_read: false,
            dumb: false,
            moved: Vec::new(),
            config: Vec::new(),
            lfs: false,
            lfs_hrefs_elsewhere: false,
            bearer: None,
        }
    }

    /// From now on, also accept the credentials `check` accepts (a fake
    /// GitHub's installation tokens:
    /// [`FakeForge::token_check`](super::forge::FakeForge::token_check));
    /// once per server.
    pub fn accept_tokens(&self, check: TokenCheck) {
        assert!(
            self.shared.tokens.set(check).is_ok(),
            "tokens accepted already"
        );
    }

    /// The URL of a repository under the root, without credentials. `repo`
    /// is used verbatim, so it must already be URL-safe.
    pub fn url(&self, repo: &str) -> String {
        format!("{}://127.0.0.1:{}/{}", self.scheme(), self.port, trim(repo))
    }

    /// The URL of a repository with the credentials percent-encoded into it,
    /// for plain `git`, which cannot be given them any other way without a
    /// credential helper.
    pub fn url_with_credentials(&self, repo: &str) -> String {
        format!(
            "{}://{}:{}@127.0.0.1:{}/{}",
            self.scheme(),
            utf8_percent_encode(&self.shared.username, USERINFO),
            utf8_percent_encode(&self.shared.password, USERINFO),
            self.port,
            trim(repo)
        )
    }

    /// The LFS endpoint git-lfs derives from [`url`](Self::url):
    /// `<url>/info/lfs` when the repository ends in `.git`, else
    /// `<url>.git/info/lfs`.
    pub fn lfs_url(&self, repo: &str) -> String {
        let url = self.url(repo);
        if url.ends_with(".git") {
            format!("{url}/info/lfs")
        } else {
            format!("{url}.git/info/lfs")
        }
    }

    /// The LFS server behind this one's `info/lfs` paths (its log, its
    /// storage). Panics unless the server was built with
    /// [`ServerBuilder::lfs`].
    pub fn lfs(&self) -> &LfsServer {
        self.lfs
            .as_ref()
            .expect("this GitServer was started without .lfs(true)")
    }

    pub fn username(&self) -> &str {
        &self.shared.username
    }

    pub fn password(&self) -> &str {
        &self.shared.password
    }

    /// The directory served, `GIT_PROJECT_ROOT` for http-backend. It is also
    /// the backend's HOME, so a `.gitconfig` written here configures the
    /// server side (e.g. `uploadpack.allowFilter`) for every repository.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn repo_path(&self, repo: &str) -> PathBuf {
        self.root().join(trim(repo))
    }

    /// Creates an empty bare repository (initial branch `main`) under the root.
    pub fn create_bare(&self, repo: &str) -> PathBuf {
        let path = self.repo_path(repo);
        let args = [
            "init",
            "--bare",
            "-q",
            "--initial-branch=main",
            repo::path_arg(&path),
        ];
        repo::git(self.root(), &args);
        path
    }

    /// Every request answered so far, in the order the responses completed.
    ///
    /// A request is logged before the last byte of its response is sent, so
    /// once a client has finished, everything it did is here.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    /// The PEM file of the CA that signed the server's certificate, when TLS
    /// is on.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The acceptor is blocked in accept(); a connection wakes it up to
        // see the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn trim(repo: &str) -> &str {
    repo.trim_start_matches('/')
}

impl ServerBuilder {
    /// Serve HTTPS with a certificate for `localhost` and `127.0.0.1` signed
    /// by a CA minted for this server (see [`GitServer::ca_file`]).
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// When off, the `Git-Protocol` header is not passed to the backend, so
    /// the server speaks protocol v0 whatever the client asks for.
    pub fn protocol_v2(mut self, on: bool) -> Self {
        self.protocol_v2 = on;
        self
    }

    /// The accepted credentials; any characters, since Basic auth is checked
    /// by comparing the whole decoded `user:password`.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.username = user.to_owned();
        self.password = password.to_owned();
        self
    }

    /// Accept as bearer tokens those in `tokens` while they are valid,
    /// instead of the password.
    pub fn bearer_tokens(mut self, tokens: &BearerTokens) -> Self {
        self.bearer = Some(tokens.clone());
        self
    }

    /// Allow fetching without credentials; pushing still needs them, and wrong
    /// credentials are still refused.
    pub fn anonymous_read(mut self, on: bool) -> Self {
        self.anonymous_read = on;
        self
    }

    /// Behave like a dumb-HTTP server: the `service=` parameter is dropped
    /// before the backend sees it, so `info/refs` is a plain ref list.
    pub fn dumb(mut self, on: bool) -> Self {
        self.dumb = on;
        self
    }

    /// Answer requests under `/<from>/` with `301 Moved Permanently` to the
    /// same rest of the path (and query) under `to`, e.g. `/` (this
    /// server) or `http://localhost:PORT/` (another origin): a repository
    /// that moved.
    pub fn moved(mut self, from: &str, to: &str) -> Self {
        self.moved.push((
            format!("/{}/", trim(from).trim_end_matches('/')),
            to.to_owned(),
        ));
        self
    }

    /// Sets `key` to `value` in the server's global config (the backend's
    /// `$HOME/.gitconfig`), so it applies to every repository served, e.g.
    /// `receive.maxInputSize` or `uploadpack.allowFilter`. One repository
    /// alone is configured with `git config` in its directory instead.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Also serve Git LFS where git-lfs looks for it,
    /// `/<repo>.git/info/lfs/...`: an [`LfsServer`] (giftless) with this
    /// server's credentials and anonymous reads, one storage per repository,
    /// reached through this server's port (and TLS) so that its `href`s
    /// lead back here. Those requests are logged by the LFS server
    /// ([`GitServer::lfs`]), not in [`GitServer::requests`].
    pub fn lfs(mut self, on: bool) -> Self {
        self.lfs = on;
        self
    }

    /// With [`lfs`](Self::lfs): the `href`s of batch responses lead to the
    /// LFS server's own port (plain HTTP), another origin than the git
    /// server's, as GitHub's lead to another host. A client must reach
    /// them with the actions' headers alone; whether it also sent the git
    /// credentials there is in [`LfsRequest::authorization`](super::LfsRequest).
    pub fn lfs_hrefs_elsewhere(mut self, on: bool) -> Self {
        self.lfs_hrefs_elsewhere = on;
        self
    }

    /// A source like Azure Repos: protocol v0 only, no partial clone
    /// filters, and no wants but advertised tips.
    pub fn azure_like(self) -> Self {
        self.protocol_v2(false)
            .config("uploadpack.allowFilter", "false")
            .config("uploadpack.allowReachableSHA1InWant", "false")
            .config("uploadpack.allowAnySHA1InWant", "false")
    }

    /// A source like GitHub: protocol v2, partial clone filters, and wants
    /// of any reachable commit.
    pub fn github_like(self) -> Self {
        self.protocol_v2(true)
            .config("uploadpack.allowFilter", "true")
            .config("uploadpack.allowReachableSHA1InWant", "true")
            .config("uploadpack.allowAnySHA1InWant", "true")
    }

    pub fn start(self) -> GitServer {
        let root = tempfile::Builder::new()
            .prefix("git-relay-server-")
            .tempdir()
            .expect("create server root");
        let gitconfig = root.path().join(".gitconfig");
        for (key, value) in &self.config {
            let file = repo::path_arg(&gitconfig);
            repo::git(root.path(), &["config", "--file", file, key, value]);
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("listener address").port();

        let (tls_config, ca_file) = if self.tls {
            let (config, ca_pem) = tls::server_config();
            let ca_file = root.path().join("ca.pem");
            fs::write(&ca_file, ca_pem).expect("write ca.pem");
            (Some(config), Some(ca_file))
        } else {
            (None, None)
        };

        let lfs_server = self.lfs.then(|| {
            LfsServer::builder()
                .credentials(&self.username, &self.password)
                .anonymous_read(self.anonymous_read)
                .start()
        });
        let shared = Arc::new(Shared {
            lfs: lfs_server.as_ref().map(|server| LfsRoute {
                front: server.front(),
                scheme: if self.tls { "https" } else { "http" },
                host: format!("127.0.0.1:{port}"),
                elsewhere: self
                    .lfs_hrefs_elsewhere
                    .then(|| format!("http://127.0.0.1:{}", server.port())),
            }),
            root: root.path().to_owned(),
            username: self.username,
            password: self.password,
            protocol_v2: self.protocol_v2,
            anonymous_read: self.anonymous_read,
            tokens: OnceLock::new(),
            dumb: self.dumb,
            moved: self.moved,
            bearer: self.bearer,
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            thread::Builder::new()
                .name(format!("git-server-{port}"))
                .spawn(move || accept_loop(&listener, &shared, tls_config.as_ref(), &stop))
                .expect("spawn acceptor thread")
        };
        GitServer {
            shared,
            port,
            tls: self.tls,
            ca_file,
            stop,
            acceptor: Some(acceptor),
            root,
            lfs: lfs_server,
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    tls: Option<&Arc<ServerConfig>>,
    stop: &AtomicBool,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (shared, tls) = (Arc::clone(shared), tls.cloned());
        let spawned = thread::Builder::new()
            .name("git-server-conn".to_owned())
            .spawn(move || {
                if let Err(e) = serve(stream, &shared, tls) {
                    eprintln!("[git-server] connection dropped: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("[git-server] cannot spawn connection thread: {e}");
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared, tls: Option<Arc<ServerConfig>>) -> io::Result<()> {
    let peer = stream.peer_addr()?.ip();
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    // Responses are flushed chunk by chunk on purpose; don't let Nagle hold
    // back the small ones (progress, keep-alive packets).
    stream.set_nodelay(true)?;
    match tls {
        None => serve_http(stream.try_clone()?, stream, peer, shared),
        Some(config) => {
            let conn = ServerConnection::new(config).map_err(io::Error::other)?;
            let (reader, writer) = tls::split(conn, stream)?;
            serve_http(reader, writer, peer, shared)
        }
    }
}

/// Answers requests on one connection until the client closes it or a
/// response asks for it to be closed.
fn serve_http<R: Read + Send, W: Write>(
    reader: R,
    writer: W,
    peer: IpAddr,
    shared: &Shared,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(BUFFER, reader);
    let mut writer = BufWriter::with_capacity(BUFFER, writer);
    while let Some(head) = http::read_head(&mut reader)? {
        if !handle(&head, &mut reader, &mut writer, peer, shared)? {
            break;
        }
    }
    writer.flush()
}

/// Who a request runs as.
enum Access<'a> {
    User(&'a str),
    Anonymous,
    Denied,
}

impl Shared {
    fn access(&self, authorization: Option<&str>, service: Option<&str>) -> Access<'_> {
        let Some(value) = authorization else {
            return if self.anonymous_read && service != Some("git-receive-pack") {
                Access::Anonymous
            } else {
                Access::Denied
            };
        };
        if let Some(check) = self.tokens.get() {
            if token_accepted(check, value) {
                return Access::User("token");
            }
        }
        let (scheme, param) = value.split_once(' ').unwrap_or((value, ""));
        let param = param.trim();
        if scheme.eq_ignore_ascii_case("Basic") {
            // Compared whole so that a user name containing ':' still works.
            let expected = format!("{}:{}", self.username, self.password);
            if BASE64
                .decode(param)
                .is_ok_and(|decoded| decoded == expected.as_bytes())
            {
                return Access::User(&self.username);
            }
        } else if scheme.eq_ignore_ascii_case("Bearer") {
            let valid = match &self.bearer {
                Some(tokens) => tokens.valid(param),
                None => param == self.password,
            };
            if valid {
                return Access::User("bearer");
            }
        }
        Access::Denied
    }

    /// Where a request for a moved repository is sent.
    fn moved_to(&self, head: &RequestHead) -> Option<String> {
        let path = head.path();
        self.moved.iter().find_map(|(from, to)| {
            let rest = path.strip_prefix(from.as_str())?;
            let query = match head.query() {
                "" => String::new(),
                q => format!("?{q}"),
            };
            Some(format!("{}/{rest}{query}", to.trim_end_matches('/')))
        })
    }

    fn log(&self) -> MutexGuard<'_, Vec<Request>> {
        // A panicking connection thread must not take the log down with it.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Answers one request; returns whether the connection stays open.
fn handle<R: Read + Send, W: Write>(
    head: &RequestHead,
    reader: &mut BufReader<R>,
    writer: &mut BufWriter<W>,
    peer: IpAddr,
    shared: &Shared,
) -> io::Result<bool> {
    if let Some(route) = shared
        .lfs
        .as_ref()
        .filter(|_| lfs::is_lfs_path(head.path()))
    {
        let origin = match &route.elsewhere {
            Some(origin) => origin.clone(),
            None => {
                let host = head.header("Host").unwrap_or(&route.host);
                format!("{}://{host}", route.scheme)
            }
        };
        return route.front.handle(head, reader, writer, &origin);
    }
    let framing = head.framing()?;
    let mut record = Request {
        method: head.method.clone(),
        path: head.path().to_owned(),
        query: head.query().to_owned(),
        git_protocol: head.header("Git-Protocol").map(str::to_owned),
        authorization: head.header("Authorization").map(str::to_owned),
        content_length: head.content_length()?,
        chunked: framing == Framing::Chunked,
        body_bytes: 0,
        status: 0,
        response_bytes: 0,
    };
    let close = head.wants_close();
    if let Some(location) = shared.moved_to(head) {
        let headers = [("Location", location.as_str())];
        let answer = (301, "Moved Permanently", &headers[..], &b""[..]);
        return answer_alone(head, framing, record, reader, writer, shared, close, answer);
    }
    let remote_user = match shared.access(head.header("Authorization"), record.service()) {
        Access::User(user) => Some(user),
        Access::Anonymous => None,
        Access::Denied => {
            let challenge = [("WWW-Authenticate", "Basic realm=\"git\"")];
            let answer = (401, "Unauthorized", &challenge[..], UNAUTHORIZED_BODY);
            return answer_alone(head, framing, record, reader, writer, shared, close, answer);
        }
    };

    let query = if shared.dumb {
        head.query()
            .split('&')
            .filter(|param| !param.starts_with("service="))
            .collect::<Vec<_>>()
            .join("&")
    } else {
        head.query().to_owned()
    };
    let request = CgiRequest {
        project_root: &shared.root,
        method: &head.method,
        path_info: OsString::from_vec(percent_decode_str(head.path()).collect()),
        query: &query,
        content_type: head.header("Content-Type"),
        content_length: if record.chunked {
            None
        } else {
            record.content_length
        },
        content_encoding: head.header("Content-Encoding"),
        git_protocol: head.header("Git-Protocol").filter(|_| shared.protocol_v2),
        remote_user,
        remote_addr: peer,
        server_protocol: &head.version,
    };
    let mut child = cgi::spawn(&request).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run {}: {e}", cgi::backend_path().display()),
        )
    })?;
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = BufReader::with_capacity(BUFFER, child.stdout.take().expect("piped stdout"));
    cgi::forward_stderr(child.stderr.take().expect("piped stderr"));

    if framing != Framing::None && head.expects_continue() {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }

    // The body goes to the backend on its own thread while this one relays
    // the response: neither side is buffered whole, and the backend may start
    // answering before it has read everything.
    let (streamed, body) = thread::scope(|scope| {
        let body = scope.spawn(move || forward_body(reader, framing, stdin));
        let streamed = relay_response(&mut stdout, writer, &mut record, close);
        if !matches!(streamed, Ok(true)) {
            // Stops the backend writing into a pipe nobody reads, and makes
            // the body thread drain the rest of the body instead of feeding it.
            let _ = child.kill();
        }
        (streamed, body.join())
    });
    let _ = child.wait();
    let (body_bytes, body_result) =
        body.unwrap_or_else(|_| (0, Err(io::Error::other("body thread panicked"))));
    record.body_bytes = body_bytes;

    const BAD_GATEWAY_BODY: &[u8] = b"git http-backend sent no valid CGI header\n";
    if matches!(streamed, Ok(false)) {
        record.status = 502;
        record.response_bytes = BAD_GATEWAY_BODY.len() as u64;
    }
    shared.log().push(record);
    match streamed {
        Ok(true) => {
            http::write_last_chunk(writer)?;
            writer.flush()?;
        }
        Ok(false) => {
            let body = BAD_GATEWAY_BODY;
            http::write_simple_response(writer, 502, "Bad Gateway", &[], body, close)?;
        }
        Err(e) => return Err(e),
    }
    // A body that could not be read leaves the connection out of step.
    body_result?;
    Ok(!close)
}

/// Answers 401. The body the client sent anyway is read and dropped, so that
/// the next request on the connection starts where it should.
/// Status, reason, headers and body of an answer the backend is not asked for.
type Answer<'a> = (u16, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);

/// Answers without running the backend (a refusal, a redirect), reading and
/// dropping the request body so the connection stays in step.
#[allow(clippy::too_many_arguments)]
fn answer_alone<R: Read, W: Write>(
    head: &RequestHead,
    framing: Framing,
    mut record: Request,
    reader: &mut BufReader<R>,
    writer: &mut BufWriter<W>,
    shared: &Shared,
    mut close: bool,
    (status, reason, headers, body): Answer<'_>,
) -> io::Result<bool> {
    if framing != Framing::None {
        if head.expects_continue() {
            // The client holds the body back until told to continue, which
            // it will not be; closing is the only way to stay in step.
            close = true;
        } else {
            let mut body = BodyReader::new(reader, framing);
            record.body_bytes = io::copy(&mut body, &mut io::sink())?;
        }
    }
    record.status = status;
    record.response_bytes = body.len() as u64;
    shared.log().push(record);
    http::write_simple_response(writer, status, reason, headers, body, close)?;
    Ok(!close)
}

/// Copies the request body into the backend's stdin and closes it, which is
/// the end of input for a backend run without `CONTENT_LENGTH`. Returns the
/// body size and whether it could be read to its end.
fn forward_body(
    reader: &mut impl BufRead,
    framing: Framing,
    stdin: ChildStdin,
) -> (u64, io::Result<()>) {
    let mut body = BodyReader::new(reader, framing);
    let mut stdin = Some(stdin);
    let mut buf = vec![0; BUFFER];
    let mut total = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return (total, Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (total, Err(e)),
        };
        total += n as u64;
        if let Some(pipe) = stdin.as_mut() {
            if pipe.write_all(&buf[..n]).is_err() {
                // The backend stopped reading: it failed, or was killed. Keep
                // consuming the body so the connection stays usable.
                stdin = None;
            }
        }
    }
}

/// Relays the backend's response to the client as a chunked body, except for
/// the last chunk, which the caller sends once the request is logged.
/// Returns false, having sent nothing, if the backend's header was unusable.
fn relay_response(
    stdout: &mut impl BufRead,
    writer: &mut impl Write,
    record: &mut Request,
    close: bool,
) -> io::Result<bool> {
    let head = match cgi::read_head(stdout) {
        Ok(head) => head,
        Err(e) => {
            eprintln!("[git-server] bad CGI response: {e}");
            return Ok(false);
        }
    };
    record.status = head.status;
    write!(writer, "HTTP/1.1 {} {}\r\n", head.status, head.reason)?;
    for (name, value) in &head.headers {
        // Always re-framed as chunks, which must not be paired with a length.
        let framing_header = ["Content-Length", "Transfer-Encoding", "Connection"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        if !framing_header {
            write!(writer, "{name}: {value}\r\n")?;
        }
    }
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        writer,
        "Transfer-Encoding: chunked\r\nConnection: {connection}\r\n\r\n"
    )?;
    writer.flush()?;

    let mut buf = vec![0; BUFFER];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        http::write_chunk(writer, &buf[..n])?;
        // Per chunk, so progress and keep-alive packets reach the client
        // while the backend is still working.
        writer.flush()?;
        record.response_bytes += n as u64;
    }
}

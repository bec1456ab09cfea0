//! Proves the test harness in `tests/support` with plain git as the client:
//! if these pass, a failing git-relay test is git-relay's fault.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use support::{
    fsck_strict, git, git_ok, install_hook, refs_of, relay, GitServer, Request, WorkRepo,
};
use tempfile::TempDir;

/// Creates `repo` on the server and fills it, without going through HTTP so
/// the request log starts empty: two branches, a lightweight and an
/// annotated tag.
fn seed(server: &GitServer, repo: &str) -> WorkRepo {
    let bare = server.create_bare(repo);
    let work = WorkRepo::new();
    work.commit("first");
    work.branch("feature");
    work.commit("second");
    work.tag("v1");
    work.annotated_tag("v2", "release 2");
    work.push_mirror_to(&bare);
    work
}

/// `git clone --mirror` of `url` into a new temporary directory, with `-c`
/// options.
fn clone_mirror(url: &str, config: &[&str]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = Vec::new();
    for option in config {
        args.extend(["-c", option]);
    }
    args.extend(["clone", "-q", "--mirror", url, "copy.git"]);
    git(dir.path(), &args);
    let copy = dir.path().join("copy.git");
    (dir, copy)
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn upload_pack_posts(requests: &[Request]) -> usize {
    requests
        .iter()
        .filter(|r| r.is_rpc() && r.service() == Some("git-upload-pack") && r.status == 200)
        .count()
}

#[test]
fn push_and_clone_over_http_with_protocol_v2() {
    let server = GitServer::start();
    let bare = server.create_bare("project.git");
    let work = WorkRepo::new();
    work.commit("first");
    work.branch("feature");
    work.commit("second");
    work.annotated_tag("v1", "release 1");

    let url = server.url_with_credentials("project.git");
    git(work.path(), &["push", "-q", "--mirror", &url]);
    assert_eq!(refs_of(&bare), refs_of(work.path()));
    fsck_strict(&bare);
    let push = server.requests();
    let pack = push
        .iter()
        .find(|r| r.is_rpc() && r.service() == Some("git-receive-pack"))
        .expect("a receive-pack POST");
    assert_eq!(pack.status, 200);
    assert!(pack.body_bytes > 0 && pack.response_bytes > 0, "{pack:?}");
    assert!(pack.authorization.as_deref().unwrap().starts_with("Basic "));

    server.clear_requests();
    let (_dir, copy) = clone_mirror(&url, &[]);
    assert_eq!(refs_of(&copy), refs_of(&bare));

    let requests = server.requests();
    for r in requests.iter().filter(|r| r.status == 200) {
        assert_eq!(r.service(), Some("git-upload-pack"), "{r:?}");
        assert_eq!(r.git_protocol.as_deref(), Some("version=2"), "{r:?}");
    }
    // v2 asks for refs (ls-refs) and for the pack (fetch) in separate POSTs.
    assert_eq!(upload_pack_posts(&requests), 2, "{requests:#?}");
    // Anything else was the auth challenge git needs before sending credentials.
    assert!(requests.iter().all(|r| r.status == 200 || r.status == 401));
}

#[test]
fn server_without_v2_speaks_protocol_v0() {
    let server = GitServer::builder().protocol_v2(false).start();
    seed(&server, "project.git");
    let (_dir, copy) = clone_mirror(&server.url_with_credentials("project.git"), &[]);
    assert_eq!(refs_of(&copy), refs_of(&server.repo_path("project.git")));

    let requests = server.requests();
    // The client asks for v2, but the backend never hears of it: v0 has no
    // ls-refs round, so the refs come with info/refs and one POST fetches.
    let advertisement = requests.iter().find(|r| !r.is_rpc() && r.status == 200);
    let asked = advertisement.and_then(|r| r.git_protocol.as_deref());
    assert_eq!(asked, Some("version=2"), "{requests:#?}");
    assert_eq!(upload_pack_posts(&requests), 1, "{requests:#?}");
}

#[test]
fn tls_with_the_servers_ca() {
    let server = GitServer::builder().tls(true).start();
    let ca = server.ca_file().expect("TLS server has a CA file");
    assert_eq!(ca, server.root().join("ca.pem"));
    assert!(server.url("project.git").starts_with("https://127.0.0.1:"));
    let ca_option = format!("http.sslCAInfo={}", ca.display());

    server.create_bare("project.git");
    let work = WorkRepo::new();
    git(work.path(), &["config", "core.compression", "0"]);
    // Over http.postBuffer, so the pack is streamed chunked through TLS.
    work.commit_file("blob.bin", &incompressible(3 << 20), "over TLS");
    let url = server.url_with_credentials("project.git");
    git(work.path(), &["-c", &ca_option, "push", "-q", &url, "main"]);
    assert!(server
        .requests()
        .iter()
        .any(|r| r.chunked && r.status == 200));
    let (_dir, copy) = clone_mirror(&url, &[&ca_option]);
    assert_eq!(refs_of(&copy), refs_of(work.path()));

    // Without the CA the certificate must not be trusted.
    let out = git_ok(work.path(), &["ls-remote", &url]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn wrong_or_missing_credentials_get_401() {
    let server = GitServer::start();
    seed(&server, "project.git");
    let dir = tempfile::tempdir().unwrap();

    let wrong = server.url("project.git").replace("://", "://alice:wrong@");
    let out = git_ok(dir.path(), &["ls-remote", &wrong]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Authentication failed"),
        "{}",
        stderr_of(&out)
    );
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.status == 401), "{requests:#?}");
    assert!(requests.iter().any(|r| r.authorization.is_some()));

    server.clear_requests();
    let out = git_ok(dir.path(), &["ls-remote", &server.url("project.git")]);
    assert!(!out.status.success());
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.status == 401 && r.authorization.is_none()));
}

#[test]
fn bearer_token_is_accepted() {
    let server = GitServer::start();
    seed(&server, "project.git");
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("project.git");

    let header = format!(
        "http.extraHeader=Authorization: Bearer {}",
        server.password()
    );
    let refs = git(dir.path(), &["-c", &header, "ls-remote", &url]);
    assert!(refs.contains("refs/heads/main"), "{refs}");

    let out = git_ok(
        dir.path(),
        &[
            "-c",
            "http.extraHeader=Authorization: Bearer nope",
            "ls-remote",
            &url,
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn credentials_with_special_characters() {
    let user = "al ice/@:%#+é";
    let password = "p@ss:/w%rd #+ü?&=";
    let server = GitServer::builder().credentials(user, password).start();
    assert_eq!((server.username(), server.password()), (user, password));
    let url = server.url_with_credentials("project.git");
    assert!(!url.contains(' ') && !url.contains('é'), "{url}");

    server.create_bare("project.git");
    let work = WorkRepo::new();
    work.commit("first");
    git(work.path(), &["push", "-q", &url, "main"]);
    let (_dir, copy) = clone_mirror(&url, &[]);
    assert_eq!(refs_of(&copy), refs_of(work.path()));
}

#[test]
fn anonymous_read_still_needs_credentials_to_push() {
    let server = GitServer::builder().anonymous_read(true).start();
    let work = seed(&server, "project.git");
    let (_dir, _copy) = clone_mirror(&server.url("project.git"), &[]);
    let requests = server.requests();
    assert!(requests
        .iter()
        .all(|r| r.status == 200 && r.authorization.is_none()));

    work.commit("third");
    let out = git_ok(work.path(), &["push", &server.url("project.git"), "main"]);
    assert!(!out.status.success());
    assert!(server.requests().iter().any(|r| r.status == 401));
    let url = server.url_with_credentials("project.git");
    git(work.path(), &["push", "-q", &url, "main"]);
}

#[test]
fn dumb_server_is_cloned_without_rpc() {
    let server = GitServer::builder().dumb(true).start();
    seed(&server, "project.git");
    let (_dir, copy) = clone_mirror(&server.url_with_credentials("project.git"), &[]);
    assert_eq!(refs_of(&copy), refs_of(&server.repo_path("project.git")));
    let requests = server.requests();
    assert!(!requests.iter().any(Request::is_rpc), "{requests:#?}");
    // The log keeps what the client sent, not what the backend was shown.
    assert!(requests
        .iter()
        .any(|r| r.query == "service=git-upload-pack" && r.status == 200));
}

#[test]
fn unknown_repository_is_404() {
    let server = GitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url_with_credentials("missing.git");
    let out = git_ok(dir.path(), &["ls-remote", &url]);
    assert!(!out.status.success());
    assert_eq!(server.requests().last().map(|r| r.status), Some(404));
}

#[test]
fn hooks_run_on_push() {
    let server = GitServer::start();
    let bare = server.create_bare("project.git");
    install_hook(
        &bare,
        "pre-receive",
        "echo rejected by policy >&2\nexit 1\n",
    );
    let work = WorkRepo::new();
    work.commit("first");
    let url = server.url_with_credentials("project.git");
    let out = git_ok(work.path(), &["push", &url, "main"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("rejected by policy"),
        "{}",
        stderr_of(&out)
    );
    assert!(refs_of(&bare).is_empty());
}

/// Bytes that zlib cannot shrink, so the pack really is as big as the blob.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_30_mib_blob_streams_through_chunked_bodies() {
    const SIZE: usize = 30 << 20;
    let server = GitServer::start();
    let bare = server.create_bare("big.git");
    let work = WorkRepo::new();
    // Stored rather than deflated: the pack stays as big, and the test does
    // not spend seconds compressing what cannot be compressed.
    git(work.path(), &["config", "core.compression", "0"]);
    work.commit_file("big.bin", &incompressible(SIZE), "big");
    let url = server.url_with_credentials("big.git");
    git(work.path(), &["push", "-q", &url, "main"]);
    fsck_strict(&bare);

    let requests = server.requests();
    // Git first probes with a tiny POST (to settle auth before streaming),
    // then sends the pack.
    let push = requests
        .iter()
        .filter(|r| r.is_rpc() && r.service() == Some("git-receive-pack") && r.status == 200)
        .max_by_key(|r| r.body_bytes)
        .expect("receive-pack POST");
    // Larger than http.postBuffer, so git streams it without a length.
    assert!(push.chunked && push.content_length.is_none(), "{push:?}");
    assert!(push.body_bytes > SIZE as u64, "{push:?}");

    server.clear_requests();
    let (_dir, copy) = clone_mirror(&url, &[]);
    let blob = |repo: &Path| git(repo, &["rev-parse", "main:big.bin"]);
    assert_eq!(blob(&copy), blob(work.path()));
    let fetched: u64 = server
        .requests()
        .iter()
        .filter(|r| r.is_rpc())
        .map(|r| r.response_bytes)
        .sum();
    assert!(fetched > SIZE as u64, "{fetched}");
}

/// A minimal HTTP/1.1 client for checking the server's framing directly.
struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawClient {
    fn connect(server: &GitServer) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        RawClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, head: &str, body: &[u8]) {
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    fn response(&mut self) -> RawResponse {
        let status_line = self.line();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = response.header("Content-Length") {
            response.body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut response.body).unwrap();
        } else if response.header("Transfer-Encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                response.body.extend_from_slice(&chunk[..size]);
            }
        }
        response
    }
}

fn basic(server: &GitServer) -> String {
    let pair = format!("{}:{}", server.username(), server.password());
    format!("Basic {}", BASE64.encode(pair))
}

#[test]
fn keep_alive_chunked_requests_and_expect_continue_on_the_wire() {
    let server = GitServer::start();
    seed(&server, "project.git");
    // The root is the backend's HOME: this is its global config.
    let config = "[uploadpack]\n\tallowFilter = true\n";
    std::fs::write(server.root().join(".gitconfig"), config).unwrap();
    let auth = basic(&server);
    let mut client = RawClient::connect(&server);

    let info_refs = format!(
        "GET /project.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n\
         Authorization: {auth}\r\nGit-Protocol: version=2\r\n\r\n"
    );
    client.send(&info_refs, b"");
    let first = client.response();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Transfer-Encoding"), Some("chunked"));
    let advertisement = String::from_utf8_lossy(&first.body);
    assert!(advertisement.contains("version 2"), "{advertisement}");
    assert!(advertisement.contains("filter"), "{advertisement}");

    // A chunked body, split mid pkt-line, on the same connection, announced
    // with Expect: the server must say 100 Continue before reading it.
    let ls_refs = b"0014command=ls-refs\n0000";
    let post = format!(
        "POST /project.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Git-Protocol: version=2\r\nContent-Type: application/x-git-upload-pack-request\r\n\
         Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    client.send(&post, b"");
    assert_eq!(client.response().status, 100);
    let (a, b) = ls_refs.split_at(9);
    let body = [
        format!("{:x}\r\n", a.len()).as_bytes(),
        a,
        b"\r\n",
        format!("{:x}\r\n", b.len()).as_bytes(),
        b,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    client.send("", &body);
    let second = client.response();
    assert_eq!(second.status, 200);
    assert_eq!(second.header("Connection"), Some("close"));
    assert!(String::from_utf8_lossy(&second.body).contains("refs/heads/main"));
    let mut rest = Vec::new();
    client.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "server must close after Connection: close");

    let log = server.requests();
    assert_eq!(log.len(), 2);
    let rpc = &log[1];
    assert!(rpc.chunked && rpc.content_length.is_none());
    assert_eq!(rpc.body_bytes, ls_refs.len() as u64);
    assert_eq!(rpc.response_bytes, second.body.len() as u64);
}

#[test]
fn refused_request_body_is_drained_and_connection_kept() {
    let server = GitServer::start();
    seed(&server, "project.git");
    let mut client = RawClient::connect(&server);
    let body = b"0000";
    let post = format!(
        "POST /project.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send(&post, body);
    let refused = client.response();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some("Basic realm=\"git\"")
    );

    let get = format!(
        "GET /project.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n\
         Authorization: {}\r\n\r\n",
        basic(&server)
    );
    client.send(&get, b"");
    assert_eq!(client.response().status, 200);
    assert_eq!(server.requests()[0].body_bytes, body.len() as u64);
}

#[test]
fn dropping_the_server_removes_its_root() {
    let server = GitServer::start();
    let root = server.root().to_owned();
    server.create_bare("project.git");
    drop(server);
    assert!(!root.exists());
}

#[test]
fn relay_command_has_a_clean_environment() {
    let cmd = relay();
    assert!(Path::new(cmd.get_program()).ends_with("git-relay"));
    let removed: Vec<_> = cmd
        .get_envs()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    for name in ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "SSL_CERT_FILE"] {
        assert!(removed.iter().any(|r| r == name), "{name} not removed");
    }
}

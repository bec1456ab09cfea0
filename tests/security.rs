//! What a hostile server or a careless setup cannot make git-relay do.
//!
//! Credentials reach only the origin (scheme, host, port) they were given
//! for; plain-http credentials to another machine are warned about; an SSH
//! remote is never taken for a local path. Every test runs the real binary
//! against git's own server on 127.0.0.1 and checks, in the server's request
//! log, what actually went over the wire.

mod support;

use support::*;

/// A server on `localhost` (another origin than `127.0.0.1`) holding the
/// repositories, and one on 127.0.0.1 whose `src.git` and `dst.git` moved
/// there.
fn moved_elsewhere() -> (GitServer, GitServer) {
    let elsewhere = GitServer::start();
    populated_source(&elsewhere);
    elsewhere.create_bare("dst.git");
    let target = format!("http://localhost:{}/", elsewhere.port());
    let front = GitServer::builder()
        .moved("src.git", &format!("{target}src.git"))
        .moved("dst.git", &format!("{target}dst.git"))
        .start();
    (front, elsewhere)
}

fn requests_for(server: &GitServer, repo: &str) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("/{repo}/")))
        .collect()
}

#[test]
fn source_credentials_do_not_follow_a_redirect_to_another_origin() {
    let (front, elsewhere) = moved_elsewhere();
    let out = run(
        &["mirror", &front.url("src.git"), &elsewhere.url("dst.git")],
        &credentials(&elsewhere),
    );
    out.assert_code(1);
    let front_origin = format!("http://127.0.0.1:{}", front.port());
    let other_origin = format!("http://localhost:{}", elsewhere.port());
    for needle in [
        "source",
        &front_origin,
        &other_origin,
        "--allow-redirect-host",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert!(requests_for(&elsewhere, "src.git").is_empty());
    assert!(refs_of(&elsewhere.repo_path("dst.git")).is_empty());
}

#[test]
fn destination_credentials_do_not_follow_a_redirect_to_another_origin() {
    let (front, elsewhere) = moved_elsewhere();
    let out = run(
        &["mirror", &elsewhere.url("src.git"), &front.url("dst.git")],
        &credentials(&elsewhere),
    );
    out.assert_code(1);
    assert!(out.stderr.contains("destination"), "{}", out.stderr);
    assert!(requests_for(&elsewhere, "dst.git").is_empty());
    assert!(refs_of(&elsewhere.repo_path("dst.git")).is_empty());
}

#[test]
fn a_host_the_user_allows_gets_the_credentials_after_a_redirect() {
    let (front, elsewhere) = moved_elsewhere();
    let out = run(
        &[
            "mirror",
            &front.url("src.git"),
            &front.url("dst.git"),
            "--allow-redirect-host",
            "localhost",
        ],
        &credentials(&elsewhere),
    );
    out.assert_code(0);
    let branches = |repo| {
        let mut refs = refs_of(&elsewhere.repo_path(repo));
        refs.retain(|(name, _)| !name.starts_with("refs/pull/"));
        refs
    };
    assert_eq!(branches("dst.git"), branches("src.git"));
    let pushes = requests_for(&elsewhere, "dst.git");
    assert!(
        pushes
            .iter()
            .any(|r| r.is_rpc() && r.authorization.is_some()),
        "{pushes:#?}"
    );
}

#[test]
fn https_is_never_followed_to_http_whatever_the_flags() {
    let plain = GitServer::start();
    populated_source(&plain);
    plain.create_bare("dst.git");
    let secure = GitServer::builder()
        .tls(true)
        .moved("src.git", &plain.url("src.git"))
        .start();
    let ca = secure.ca_file().unwrap().to_string_lossy().into_owned();
    let mut env = credentials(&plain);
    env.push(("SSL_CERT_FILE", &ca));
    let out = run(
        &[
            "mirror",
            &secure.url("src.git"),
            &plain.url("dst.git"),
            "--allow-redirect-host",
            "127.0.0.1",
        ],
        &env,
    );
    out.assert_code(1);
    assert!(out.stderr.contains("https to http"), "{}", out.stderr);
    assert!(requests_for(&plain, "src.git").is_empty());
    assert!(refs_of(&plain.repo_path("dst.git")).is_empty());
}

#[test]
fn credentials_over_plain_http_to_another_machine_are_warned_about_once_per_side() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    // Names only the proxy "resolves": nothing leaves the machine.
    let proxy = ForwardProxy::start(server.port());
    let (src, dst) = (
        "http://git-source.test/src.git",
        "http://git-dest.test/dst.git",
    );
    let out = run(
        &["mirror", src, dst, "--proxy", &proxy.url()],
        &credentials(&server),
    );
    out.assert_code(0);
    for origin in ["http://git-source.test", "http://git-dest.test"] {
        let warnings = out
            .stderr
            .lines()
            .filter(|l| l.contains(origin) && l.contains("plain http://"))
            .count();
        assert_eq!(warnings, 1, "{origin}: {}", out.stderr);
    }
}

#[test]
fn an_ssh_remote_with_a_password_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("s.git");
    git(dir.path(), &["init", "-q", "--bare", "s.git"]);
    let src = source.to_str().unwrap();
    // SSH signs in with keys (tests/ssh.rs); a password is refused unsent.
    for destination in [
        "alice:scp-password-1@host:x.git",
        "ssh://alice:ssh-password-2@host:2222/x.git",
    ] {
        let out = command(&["mirror", src, destination], &[])
            .current_dir(dir.path())
            .output()
            .map(Run::from)
            .unwrap();
        out.assert_code(2);
        assert!(out.stderr.contains("SSH"), "{}", out.stderr);
        for password in ["scp-password-1", "ssh-password-2"] {
            assert!(!out.stderr.contains(password), "{}", out.stderr);
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["s.git"], "nothing else was created");
}

#[test]
fn a_token_holding_a_colon_is_sent_whole_when_the_username_is_named_empty() {
    let server = GitServer::builder().credentials("git", "tok:en/1").start();
    populated_source(&server);
    server.create_bare("dst.git");
    let args = ["mirror", &server.url("src.git"), &server.url("dst.git")];
    let token = [
        ("GIT_RELAY_SOURCE_TOKEN", "tok:en/1"),
        ("GIT_RELAY_DEST_TOKEN", "tok:en/1"),
    ];
    // Read as user `tok`, secret `en/1`: the documented rule.
    run(&args, &token).assert_code(1);
    let mut whole = token.to_vec();
    whole.push(("GIT_RELAY_SOURCE_USERNAME", ""));
    whole.push(("GIT_RELAY_DEST_USERNAME", ""));
    run(&args, &whole).assert_code(0);
    let mut flags = args.to_vec();
    flags.extend(["--source-username", "", "--dest-username", ""]);
    run(&flags, &token).assert_code(0);
}

//! SSH remotes against a real OpenSSH server.
//!
//! Every test starts Debian's `sshd` on 127.0.0.1 (see `support::sshd`)
//! with keys made at test time, serving bare repositories through a forced
//! command that logs each connection, and runs the real binary with the
//! system's `ssh`. HTTPS sides are `git http-backend` as everywhere else.

mod support;

use std::path::Path;

use support::*;

/// A source history: two branches, a light and an annotated tag.
fn fill(bare: &Path) -> WorkRepo {
    let work = WorkRepo::new();
    work.commit("first");
    work.commit("second");
    work.tag("v1");
    work.annotated_tag("v1-annotated", "release 1");
    work.branch("feature");
    work.checkout("feature");
    work.commit("feature work");
    work.checkout("main");
    work.commit("third");
    work.push_mirror_to(bare);
    work
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The flags that give both sides the server's key and host key.
fn ssh_flags(server: &SshServer) -> Vec<String> {
    vec![
        "--source-ssh-key".into(),
        path_text(&server.key()),
        "--dest-ssh-key".into(),
        path_text(&server.key()),
        "--ssh-known-hosts".into(),
        path_text(&server.known_hosts()),
    ]
}

fn relay_with(args: &[String], env: &[(&str, &str)]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, env)
}

fn mirror_args(src: &str, dst: &str, flags: &[String], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["mirror".into(), src.into(), dst.into(), "--json".into()];
    args.extend(flags.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn assert_same_refs(src: &Path, dst: &Path) {
    assert_eq!(refs_of(dst), refs_of(src), "destination refs differ");
    fsck_strict(dst);
}

fn sessions(server: &SshServer, service: &str) -> usize {
    server
        .connections()
        .iter()
        .filter(|c| c.starts_with(service))
        .count()
}

#[test]
fn ssh_to_ssh_mirrors_and_a_no_op_opens_one_connection_per_side() {
    let server = SshServer::start();
    let src = server.create_bare("src.git");
    fill(&src);
    let dst = server.create_bare("dst.git");
    let flags = ssh_flags(&server);
    let args = mirror_args(&server.url("src.git"), &server.url("dst.git"), &flags, &[]);
    relay_with(&args, &[]).assert_code(0);
    assert_same_refs(&src, &dst);
    let mut status = args.clone();
    status[0] = "status".into();
    relay_with(&status, &[]).assert_code(0);

    server.clear_connections();
    let out = relay_with(&args, &[]);
    out.assert_code(0);
    assert_eq!(out.json()["totals"]["updated"], 0, "{}", out.stdout);
    assert_eq!(
        (
            sessions(&server, "git-upload-pack"),
            sessions(&server, "git-receive-pack")
        ),
        (1, 1),
        "{:?}",
        server.connections()
    );
}

#[test]
fn https_source_to_ssh_destination_and_back() {
    let http = GitServer::start();
    populated_source(&http);
    let server = SshServer::start();
    let dst = server.create_bare("dst.git");
    let flags = ssh_flags(&server);
    let env = credentials(&http);
    let to_ssh = mirror_args(&http.url("src.git"), &server.url("dst.git"), &flags, &[]);
    relay_with(&to_ssh, &env).assert_code(0);
    let src_refs: Vec<_> = refs_of(&http.repo_path("src.git"))
        .into_iter()
        .filter(|(name, _)| !name.starts_with("refs/pull/"))
        .collect();
    assert_eq!(refs_of(&dst), src_refs);
    fsck_strict(&dst);

    // And from SSH to HTTPS: the SSH copy becomes a source.
    http.create_bare("back.git");
    let to_http = mirror_args(&server.url("dst.git"), &http.url("back.git"), &flags, &[]);
    relay_with(&to_http, &env).assert_code(0);
    assert_same_refs(&dst, &http.repo_path("back.git"));
}

#[test]
fn ssh_source_into_a_local_backup() {
    let server = SshServer::start();
    let src = server.create_bare("src.git");
    let work = fill(&src);
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("backup.git");
    let flags = ssh_flags(&server);
    let args = mirror_args(&server.url("src.git"), &path_text(&backup), &flags, &[]);
    relay_with(&args, &[]).assert_code(0);
    assert_same_refs(&src, &backup);

    work.commit("fourth");
    work.push_mirror_to(&src);
    relay_with(&args, &[]).assert_code(0);
    assert_same_refs(&src, &backup);
}

#[test]
fn protocol_v2_is_asked_for_and_v0_servers_still_work() {
    let server = SshServer::start();
    let src = server.create_bare("src.git");
    let work = fill(&src);
    let dst = server.create_bare("dst.git");
    let flags = ssh_flags(&server);
    let args = mirror_args(&server.url("src.git"), &server.url("dst.git"), &flags, &[]);
    let out = relay_with(&args, &[]);
    out.assert_code(0);
    assert!(out.stderr.contains("(protocol v2)"), "{}", out.stderr);

    server.ignore_protocol_request(true);
    let v0_dst = server.create_bare("v0.git");
    let args = mirror_args(&server.url("src.git"), &server.url("v0.git"), &flags, &[]);
    let out = relay_with(&args, &[]);
    out.assert_code(0);
    assert!(out.stderr.contains("(protocol v0)"), "{}", out.stderr);
    assert_same_refs(&src, &v0_dst);
    assert_same_refs(&src, &dst);

    // An update negotiates with haves: v0 over a stateful connection.
    for i in 0..40 {
        work.commit(&format!("more {i}"));
        work.tag(&format!("more-{i}"));
    }
    work.push_mirror_to(&src);
    relay_with(&args, &[]).assert_code(0);
    assert_same_refs(&src, &v0_dst);

    // A v0 no-op: the advertisement is the listing, one connection a side.
    server.clear_connections();
    relay_with(&args, &[]).assert_code(0);
    assert_eq!(server.connections().len(), 2, "{:?}", server.connections());
}

/// Runs a mirror between two repositories of `server` with `flags`, and
/// returns the run.
fn mirror_on(server: &SshServer, flags: &[String], env: &[(&str, &str)]) -> Run {
    let src = server.repo_path("src.git");
    if !src.exists() {
        server.create_bare("src.git");
        fill(&src);
        server.create_bare("dst.git");
    }
    let args = mirror_args(&server.url("src.git"), &server.url("dst.git"), flags, &[]);
    relay_with(&args, env)
}

fn flags_with(server: &SshServer, key: &Path, known_hosts: &Path, extra: &[&str]) -> Vec<String> {
    let mut flags = vec![
        "--source-ssh-key".into(),
        path_text(key),
        "--dest-ssh-key".into(),
        path_text(&server.key()),
        "--ssh-known-hosts".into(),
        path_text(known_hosts),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

#[test]
fn a_key_the_server_refuses_fails_naming_the_side() {
    let server = SshServer::start();
    let flags = flags_with(&server, &server.other_key(), &server.known_hosts(), &[]);
    let out = mirror_on(&server, &flags, &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("source"), "{}", out.stderr);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    assert!(out.stderr.contains("--source-ssh-key"), "{}", out.stderr);
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn a_key_with_a_passphrase_gets_a_clear_error() {
    let server = SshServer::start();
    let flags = flags_with(&server, &server.protected_key(), &server.known_hosts(), &[]);
    let out = mirror_on(&server, &flags, &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("passphrase"), "{}", out.stderr);
    assert!(out.stderr.contains("source"), "{}", out.stderr);
}

#[test]
fn an_unknown_host_key_is_refused_unless_new_keys_are_accepted() {
    let server = SshServer::start();
    let empty = server.root().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let flags = flags_with(&server, &server.key(), &empty, &[]);
    let out = mirror_on(&server, &flags, &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("is not known"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--ssh-accept-new-host-keys"),
        "{}",
        out.stderr
    );
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());

    let flags = flags_with(
        &server,
        &server.key(),
        &empty,
        &["--ssh-accept-new-host-keys"],
    );
    mirror_on(&server, &flags, &[]).assert_code(0);
    // Debian's ssh_config hashes the host names it records.
    let learnt = std::fs::read_to_string(&empty).unwrap();
    let key = server.known_hosts_line();
    let key = key.split_whitespace().nth(2).unwrap();
    assert!(learnt.contains(key), "{learnt}");
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new() {
    let server = SshServer::start();
    for extra in [&[][..], &["--ssh-accept-new-host-keys"][..]] {
        let flags = flags_with(&server, &server.key(), &server.wrong_known_hosts(), extra);
        let out = mirror_on(&server, &flags, &[]);
        out.assert_code(1);
        assert!(out.stderr.contains("CHANGED"), "{}", out.stderr);
    }
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn keys_and_known_hosts_as_environment_text_leave_no_file_behind() {
    let server = SshServer::start();
    let tmp = tempfile::tempdir().unwrap();
    // What a run killed with SIGKILL leaves: a key file of a dead process
    // of this machine.
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    let stale = tmp
        .path()
        .join(format!("git-relay-ssh-{host}-999999999-key-abc"));
    std::fs::write(&stale, "stale").unwrap();
    // Another container's file is not ours to judge.
    let foreign = tmp.path().join("git-relay-ssh-elsewhere-999999999-key-abc");
    std::fs::write(&foreign, "theirs").unwrap();
    let key = std::fs::read_to_string(server.key()).unwrap();
    let known = server.known_hosts_line();
    let tmp_text = path_text(tmp.path());
    let env = [
        ("GIT_RELAY_SOURCE_SSH_KEY", key.as_str()),
        ("GIT_RELAY_DEST_SSH_KEY", key.as_str()),
        ("GIT_RELAY_SSH_KNOWN_HOSTS", known.as_str()),
        ("TMPDIR", tmp_text.as_str()),
    ];
    let out = mirror_on(&server, &[], &env);
    out.assert_code(0);
    assert_same_refs(&server.repo_path("src.git"), &server.repo_path("dst.git"));
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [foreign.file_name().unwrap()], "left behind");
    std::fs::remove_file(&foreign).unwrap();

    // A failing run cleans up too, and prints no line of the key.
    let other = std::fs::read_to_string(server.other_key()).unwrap();
    let env = [
        ("GIT_RELAY_SOURCE_SSH_KEY", other.as_str()),
        ("GIT_RELAY_DEST_SSH_KEY", key.as_str()),
        ("GIT_RELAY_SSH_KNOWN_HOSTS", known.as_str()),
        ("TMPDIR", tmp_text.as_str()),
    ];
    let out = mirror_on(&server, &["-v".into()], &env);
    out.assert_code(1);
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
    for line in other
        .lines()
        .filter(|l| l.len() > 8 && !l.starts_with("-----"))
    {
        assert!(!out.stderr.contains(line), "{}", out.stderr);
        assert!(!out.stdout.contains(line), "{}", out.stdout);
    }
}

#[test]
fn destination_only_commits_are_protected_over_ssh() {
    let server = SshServer::start();
    let flags = ssh_flags(&server);
    mirror_on(&server, &flags, &[]).assert_code(0);
    let dst = server.repo_path("dst.git");
    let intruder = WorkRepo::new();
    git(intruder.path(), &["fetch", "-q", &path_text(&dst), "main"]);
    git(intruder.path(), &["reset", "-q", "--hard", "FETCH_HEAD"]);
    let local_only = intruder.commit("pushed to the mirror by mistake");
    git(
        intruder.path(),
        &["push", "-q", &path_text(&dst), "main:main"],
    );

    let out = mirror_on(&server, &flags, &[]);
    out.assert_code(3);
    let report = out.json();
    let protected: Vec<&str> = report["refs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "protected")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(protected, ["refs/heads/main"]);
    assert!(refs_of(&dst).contains(&("refs/heads/main".to_owned(), local_only)));

    let mut forced = flags.clone();
    forced.push("--force".into());
    mirror_on(&server, &forced, &[]).assert_code(0);
    assert_same_refs(&server.repo_path("src.git"), &dst);
}

#[test]
fn missing_repository_refused_port_and_missing_ssh_say_so() {
    let server = SshServer::start();
    let flags = ssh_flags(&server);
    server.create_bare("dst.git");
    let args = mirror_args(&server.url("nope.git"), &server.url("dst.git"), &flags, &[]);
    let out = relay_with(&args, &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("repository not found"),
        "{}",
        out.stderr
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = format!("ssh://{}@127.0.0.1:{port}/x.git", server.user());
    let args = mirror_args(
        &nowhere,
        &server.url("dst.git"),
        &flags,
        &["--retries", "0"],
    );
    let out = relay_with(&args, &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("could not connect"), "{}", out.stderr);

    let args = mirror_args(&server.url("dst.git"), &server.url("dst.git"), &flags, &[]);
    let out = relay_with(&args, &[("GIT_SSH", "/nonexistent/ssh")]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("cannot run `/nonexistent/ssh`"),
        "{}",
        out.stderr
    );
}

#[test]
fn git_ssh_command_is_honoured() {
    let server = SshServer::start();
    let log = server.root().join("wrapper.log");
    let command = format!("echo used >> '{}'; ssh", log.display());
    let flags = ssh_flags(&server);
    mirror_on(&server, &flags, &[("GIT_SSH_COMMAND", command.as_str())]).assert_code(0);
    assert_same_refs(&server.repo_path("src.git"), &server.repo_path("dst.git"));
    assert!(std::fs::read_to_string(log).unwrap().contains("used"));
}

/// First mirror and no-op times over SSH and over HTTPS for the same
/// repository: `cargo test --test ssh -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing_ssh_against_https() {
    let server = SshServer::start();
    let http = GitServer::builder().tls(true).start();
    let src = server.create_bare("src.git");
    let work = WorkRepo::new();
    noise_history(&work, 20 << 20, 200);
    for i in 0..50 {
        work.tag(&format!("t{i}"));
    }
    work.push_mirror_to(&src);
    work.push_mirror_to(&http.create_bare("src.git"));
    let flags = ssh_flags(&server);
    let ca = path_text(http.ca_file().unwrap());
    let mut env = credentials(&http);
    env.push(("SSL_CERT_FILE", &ca));
    let time = |args: &[String], env: &[(&str, &str)]| {
        let started = std::time::Instant::now();
        relay_with(args, env).assert_code(0);
        started.elapsed().as_secs_f64()
    };
    for round in 0..3 {
        let (s, h) = (format!("s{round}.git"), format!("h{round}.git"));
        server.create_bare(&s);
        http.create_bare(&h);
        let ssh = mirror_args(&server.url("src.git"), &server.url(&s), &flags, &[]);
        let https = mirror_args(&http.url("src.git"), &http.url(&h), &[], &[]);
        server.clear_connections();
        let (ssh_first, https_first) = (time(&ssh, &[]), time(&https, &env));
        let first_connections = server.connections().len();
        server.clear_connections();
        let (ssh_noop, https_noop) = (time(&ssh, &[]), time(&https, &env));
        let noop_connections = server.connections().len();
        println!(
            "round {round}: first mirror ssh {ssh_first:.2}s ({first_connections} connections) https {https_first:.2}s; no-op ssh {ssh_noop:.2}s ({noop_connections} connections) https {https_noop:.2}s"
        );
    }
}

#[test]
fn a_silent_server_is_given_up_after_the_timeout() {
    let server = SshServer::start();
    let flags = ssh_flags(&server);
    let mut args = mirror_args(&server.url("src.git"), &server.url("dst.git"), &flags, &[]);
    args.extend(["--timeout", "2", "--retries", "0"].map(String::from));
    server.create_bare("src.git");
    server.create_bare("dst.git");
    let started = std::time::Instant::now();
    // An "ssh" that connects and then never says a word.
    let out = relay_with(&args, &[("GIT_SSH_COMMAND", "exec sleep 30 #")]);
    out.assert_code(1);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_key_file_left_by_a_killed_run_is_removed_by_the_next() {
    let server = SshServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(server.key()).unwrap();
    let known = server.known_hosts_line();
    let tmp_text = path_text(tmp.path());
    let env = [
        ("GIT_RELAY_SOURCE_SSH_KEY", key.as_str()),
        ("GIT_RELAY_DEST_SSH_KEY", key.as_str()),
        ("GIT_RELAY_SSH_KNOWN_HOSTS", known.as_str()),
        ("TMPDIR", tmp_text.as_str()),
    ];
    server.create_bare("src.git");
    server.create_bare("dst.git");
    let args = mirror_args(&server.url("src.git"), &server.url("dst.git"), &[], &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A run that hangs in ssh, killed with SIGKILL once its key is written.
    let mut child = command(&args, &env)
        .env("GIT_SSH_COMMAND", "exec sleep 30 #")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = || std::fs::read_dir(tmp.path()).unwrap().count();
    let started = std::time::Instant::now();
    while count() == 0 && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(count() > 0, "the killed run left its files");

    fill(&server.repo_path("src.git"));
    mirror_on(&server, &[], &env).assert_code(0);
    assert_eq!(count(), 0, "the next run removed them");
}

/// A run stopped by SIGTERM (a cancelled pipeline) or SIGINT removes the
/// key files it wrote before it exits.
#[test]
fn a_run_stopped_by_a_signal_removes_its_key_files() {
    let server = SshServer::start();
    let key = std::fs::read_to_string(server.key()).unwrap();
    let known = server.known_hosts_line();
    server.create_bare("src.git");
    server.create_bare("dst.git");
    let args = mirror_args(&server.url("src.git"), &server.url("dst.git"), &[], &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for signal in ["TERM", "INT"] {
        let tmp = tempfile::tempdir().unwrap();
        let tmp_text = path_text(tmp.path());
        let env = [
            ("GIT_RELAY_SOURCE_SSH_KEY", key.as_str()),
            ("GIT_RELAY_DEST_SSH_KEY", key.as_str()),
            ("GIT_RELAY_SSH_KNOWN_HOSTS", known.as_str()),
            ("TMPDIR", tmp_text.as_str()),
        ];
        let mut child = command(&args, &env)
            .env("GIT_SSH_COMMAND", "exec sleep 30 #")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let count = || std::fs::read_dir(tmp.path()).unwrap().count();
        let started = std::time::Instant::now();
        while count() == 0 && started.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(count() > 0, "the run wrote its key");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let pid = child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        assert!(!status.success(), "SIG{signal}: {status:?}");
        assert_eq!(count(), 0, "SIG{signal}: no key file is left");
    }
}

#[test]
fn core_ssh_command_of_the_user_is_honoured_and_a_repositorys_is_not() {
    let server = SshServer::start();
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("wrapper.log");
    let wrapper = format!("echo used >> '{}'; ssh", log.display());
    git(
        home.path(),
        &[
            "config",
            "--file",
            ".gitconfig",
            "core.sshCommand",
            &wrapper,
        ],
    );
    // The directory the run starts in is a repository that names another ssh.
    let checkout = WorkRepo::new();
    git(checkout.path(), &["config", "core.sshCommand", "false"]);
    let flags = ssh_flags(&server);
    server.create_bare("src.git");
    fill(&server.repo_path("src.git"));
    server.create_bare("dst.git");
    let args = mirror_args(&server.url("src.git"), &server.url("dst.git"), &flags, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out: Run = command(&args, &[("HOME", &path_text(home.path()))])
        .current_dir(checkout.path())
        .output()
        .unwrap()
        .into();
    out.assert_code(0);
    assert_same_refs(&server.repo_path("src.git"), &server.repo_path("dst.git"));
    assert!(std::fs::read_to_string(log).unwrap().contains("used"));
}

/// A GitHub-like organization `acme` whose clone URLs lead to `http`, one
/// repository per name, each filled with a history.
fn forge_org(http: &GitServer, names: &[&str]) -> support::forge::FakeForge {
    use support::forge::{seg, FakeForge, FakeRepo, Kind};
    let mut builder = FakeForge::builder(Kind::GitHub, "acme", http.password());
    for name in names {
        fill(&http.create_bare(&format!("src/acme/{name}.git")));
        let url = http.url(&format!("src/acme/{}.git", seg(name)));
        builder = builder.repo(FakeRepo::new("acme", name, &url));
    }
    builder.start()
}

#[test]
fn mirror_all_into_ssh_destination_templates() {
    let http = GitServer::start();
    // A name with a space: one path segment of the URL, percent-encoded,
    // and one quoted path on the server.
    let names = ["tools", "Web App"];
    let fake = forge_org(&http, &names);
    let server = SshServer::start();
    for name in names {
        server.create_bare(&format!("url/{name}.git"));
        server.create_bare(&format!("scp/{name}.git"));
    }
    // Only the source has a token: an SSH side signs in with its key.
    let env = [
        ("GIT_RELAY_SOURCE_TOKEN", http.password()),
        ("GIT_RELAY_SOURCE_USERNAME", http.username()),
    ];
    let sweep = |template: &str, env: &[(&str, &str)]| {
        let mut args: Vec<String> = vec![
            "mirror-all".into(),
            "--source-kind".into(),
            "github".into(),
            fake.scope_url(),
            template.into(),
            "--json".into(),
        ];
        args.extend(ssh_flags(&server));
        let out = relay_with(&args, env);
        out.assert_code(0);
        out
    };

    // ssh://user@127.0.0.1:PORT/ABSOLUTE/url/{repo}.git
    sweep(&server.url("url/{repo}.git"), &env);
    // user@127.0.0.1:/ABSOLUTE/scp/{repo}.git, the port from the ssh
    // command, as a user's ~/.ssh/config would give it.
    let scp = format!(
        "{}@127.0.0.1:{}/{{repo}}.git",
        server.user(),
        server.repo_path("scp").display()
    );
    let ssh_command = format!("ssh -p {}", server.port());
    let mut scp_env = env.to_vec();
    scp_env.push(("GIT_SSH_COMMAND", &ssh_command));
    sweep(&scp, &scp_env);

    for name in names {
        let src = http.repo_path(&format!("src/acme/{name}.git"));
        assert_same_refs(&src, &server.repo_path(&format!("url/{name}.git")));
        assert_same_refs(&src, &server.repo_path(&format!("scp/{name}.git")));
    }
    // Nothing was made locally where a path-like template would have gone.
    assert!(!Path::new(&scp[..scp.find(':').unwrap()]).exists());
}

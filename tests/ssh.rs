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

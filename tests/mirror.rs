//! `git-relay mirror` and `git-relay status` against git's own server.
//!
//! Every test starts `git http-backend` behind a real HTTP server on
//! 127.0.0.1 (see `support`), builds repositories with the git CLI, runs the
//! real binary, and checks the destination with git itself.

mod support;

use support::*;

/// `git-relay <cmd> <server>/src.git <server>/dst.git --json [extra]` with the
/// server's credentials in the environment.
fn relay_between(server: &GitServer, cmd: &str, extra: &[&str]) -> Run {
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let mut args = vec![cmd, &src, &dst, "--json"];
    args.extend_from_slice(extra);
    let mut env = credentials(server);
    let ca;
    if let Some(path) = server.ca_file() {
        ca = path.to_string_lossy().into_owned();
        env.push(("SSL_CERT_FILE", &ca));
    }
    run(&args, &env)
}

fn without_host_refs(refs: Vec<(String, String)>) -> Vec<(String, String)> {
    refs.into_iter()
        .filter(|(name, _)| !name.starts_with("refs/pull/"))
        .collect()
}

fn assert_mirrored(server: &GitServer) {
    let src = without_host_refs(refs_of(&server.repo_path("src.git")));
    let dst = refs_of(&server.repo_path("dst.git"));
    assert_eq!(dst, src, "destination refs differ from the source's");
    fsck_strict(&server.repo_path("dst.git"));
}

fn upload_pack_posts(server: &GitServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.is_rpc() && r.service() == Some("git-upload-pack"))
        .count()
}

fn receive_pack_posts(server: &GitServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.is_rpc() && r.service() == Some("git-receive-pack"))
        .count()
}

#[test]
fn cold_mirror_copies_every_ref_except_host_namespaces() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");

    let run = relay_between(&server, "mirror", &[]);
    run.assert_code(0);

    assert_mirrored(&server);
    let report = run.json();
    assert_eq!(report["in_sync"], true);
    assert_eq!(report["source_protocol"], "v2");
    assert_eq!(
        report["totals"]["created"], 4,
        "main, feature, v1, v1-annotated: {report}"
    );
    assert!(report["pack_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn incremental_mirror_follows_every_kind_of_change() {
    let server = GitServer::start();
    let work = populated_source(&server);
    server.create_bare("dst.git");
    relay_between(&server, "mirror", &[]).assert_code(0);
    let first_pack = upload_pack_posts(&server);
    assert!(first_pack > 0);

    // New commits, a new branch, a deleted branch, moved tags of both kinds,
    // and a rewritten (force-pushed) branch.
    work.commit("fourth");
    work.branch("topic");
    git(work.path(), &["branch", "-D", "feature"]);
    git(work.path(), &["tag", "-f", "v1"]);
    git(
        work.path(),
        &["tag", "-f", "-a", "-m", "moved", "v1-annotated"],
    );
    git(
        work.path(),
        &["checkout", "-q", "-b", "rewritten", "HEAD~2"],
    );
    work.commit("rewritten history");
    work.checkout("main");
    work.push_mirror_to(&server.repo_path("src.git"));

    let run = relay_between(&server, "mirror", &[]);
    run.assert_code(0);
    assert_mirrored(&server);
    let t = &run.json()["totals"];
    assert_eq!(
        (t["created"].as_u64(), t["deleted"].as_u64()),
        (Some(2), Some(1)),
        "{t}"
    );
    assert_eq!(t["updated"], 3, "main and both tags: {t}");
    assert_eq!(t["rewritten"], 0, "main moved forward: {t}");
}

#[test]
fn a_force_pushed_source_branch_is_followed_and_reported_as_rewritten() {
    // With and without a server that can filter the probe to commits only.
    for filter in ["false", "true"] {
        let server = GitServer::start();
        let work = populated_source(&server);
        server.create_bare("dst.git");
        git(
            &server.repo_path("src.git"),
            &["config", "uploadpack.allowFilter", filter],
        );
        relay_between(&server, "mirror", &[]).assert_code(0);

        git(work.path(), &["reset", "-q", "--hard", "HEAD~2"]);
        work.commit("replacement");
        work.push_mirror_to(&server.repo_path("src.git"));

        // The old tip of main is still in the source's object store (until
        // its gc), so the divergence rule lets the update through; the
        // report must say that history left the destination's main.
        let run = relay_between(&server, "mirror", &[]);
        run.assert_code(0);
        assert_mirrored(&server);
        let report = run.json();
        let main = report["refs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "refs/heads/main")
            .unwrap()
            .clone();
        assert_eq!(main["action"], "rewrite", "filter {filter}: {report}");
        assert_eq!(report["totals"]["rewritten"], 1, "{report}");
        assert!(run.stderr.contains("rewritten"), "{}", run.stderr);

        // Moving main back to an ancestor drops history too; moving it
        // forward again does not.
        git(work.path(), &["reset", "-q", "--hard", "HEAD~1"]);
        work.push_mirror_to(&server.repo_path("src.git"));
        let rewind = relay_between(&server, "mirror", &[]);
        assert_eq!(rewind.json()["totals"]["rewritten"], 1, "{}", rewind.stdout);
        work.commit("forward again");
        work.push_mirror_to(&server.repo_path("src.git"));
        let forward = relay_between(&server, "mirror", &["--verbose"]);
        let t = &forward.json()["totals"];
        assert_eq!(
            (t["updated"].as_u64(), t["rewritten"].as_u64()),
            (Some(1), Some(0)),
            "{t}"
        );
        assert!(
            !forward.stderr.contains("cannot tell"),
            "{}",
            forward.stderr
        );
    }
}

#[test]
fn a_dry_run_says_which_updates_would_rewrite_history() {
    let server = GitServer::start();
    let work = populated_source(&server);
    server.create_bare("dst.git");
    relay_between(&server, "mirror", &[]).assert_code(0);
    git(work.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    work.commit("replacement");
    work.push_mirror_to(&server.repo_path("src.git"));

    let run = relay_between(&server, "status", &[]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("...") && run.stderr.contains("rewritten"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_noop_costs_two_ref_listings_and_requests_no_pack() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    relay_between(&server, "mirror", &[]).assert_code(0);

    server.clear_requests();
    let run = relay_between(&server, "mirror", &[]);
    run.assert_code(0);
    assert_eq!(run.json()["refs"].as_array().unwrap().len(), 0);
    // Protocol v2 lists refs with one `ls-refs` POST; a fetch would be a second.
    assert_eq!(upload_pack_posts(&server), 1, "{:#?}", server.requests());
    assert_eq!(receive_pack_posts(&server), 0);
    assert!(run.stderr.contains("in sync"), "{}", run.stderr);
}

#[test]
fn protocol_v0_servers_work_too() {
    let server = GitServer::builder().protocol_v2(false).start();
    let work = populated_source(&server);
    server.create_bare("dst.git");
    let run = relay_between(&server, "mirror", &[]);
    run.assert_code(0);
    assert_eq!(run.json()["source_protocol"], "v0");
    assert_mirrored(&server);

    work.commit("more");
    work.push_mirror_to(&server.repo_path("src.git"));
    relay_between(&server, "mirror", &[]).assert_code(0);
    assert_mirrored(&server);

    server.clear_requests();
    relay_between(&server, "mirror", &[]).assert_code(0);
    assert_eq!(
        upload_pack_posts(&server),
        0,
        "a v0 no-op needs no POST at all"
    );
}

#[test]
fn the_result_equals_git_clone_mirror_plus_push_mirror() {
    let server = GitServer::start();
    let work = populated_source(&server);
    work.commit("one more for luck");
    work.push_mirror_to(&server.repo_path("src.git"));
    git(
        &server.repo_path("src.git"),
        &["update-ref", "refs/pull/1/head", "refs/heads/feature"],
    );
    server.create_bare("dst.git");
    relay_between(&server, "mirror", &[]).assert_code(0);

    // What users do today, on the same input.
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("clone.git");
    let reference = server.create_bare("reference.git");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--mirror",
            &server.repo_path("src.git").to_string_lossy(),
            &clone.to_string_lossy(),
        ],
    );
    git(&clone, &["update-ref", "-d", "refs/pull/1/head"]);
    git(
        &clone,
        &["push", "-q", "--mirror", &reference.to_string_lossy()],
    );

    assert_eq!(refs_of(&server.repo_path("dst.git")), refs_of(&reference));
    fsck_strict(&server.repo_path("dst.git"));
}

#[test]
fn tls_with_a_ca_file_or_insecure() {
    let server = GitServer::builder().tls(true).start();
    populated_source(&server);
    server.create_bare("dst.git");
    let ca = server.ca_file().unwrap().to_string_lossy().into_owned();
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    assert!(src.starts_with("https://"));
    let env = credentials(&server);

    // Without trust in the test CA, the handshake fails and says what to do.
    let untrusted = run(&["mirror", &src, &dst], &env);
    untrusted.assert_code(1);
    assert!(
        untrusted.stderr.contains("source") && untrusted.stderr.contains("TLS"),
        "{}",
        untrusted.stderr
    );
    assert!(
        untrusted.stderr.contains("--ca-file"),
        "{}",
        untrusted.stderr
    );

    run(&["mirror", &src, &dst, "--ca-file", &ca], &env).assert_code(0);
    assert_mirrored(&server);

    let insecure = run(
        &["status", &src, &dst, "--source-insecure", "--dest-insecure"],
        &env,
    );
    insecure.assert_code(0);
    assert!(
        insecure.stderr.contains("verification is off"),
        "{}",
        insecure.stderr
    );
}

/// Secrets with every character that breaks URL splicing.
const AWKWARD: &str = "p/ss@w:rd%2F#+ ü?&=";

#[test]
fn tokens_with_awkward_characters_work_and_never_leak() {
    let server = GitServer::builder()
        .credentials("mirror-bot", AWKWARD)
        .start();
    populated_source(&server);
    server.create_bare("dst.git");

    // As a `user:token` token in the environment.
    let token = format!("mirror-bot:{AWKWARD}");
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let ok = run(
        &["mirror", &src, &dst, "--json", "--verbose"],
        &[
            ("GIT_RELAY_SOURCE_TOKEN", &token),
            ("GIT_RELAY_DEST_TOKEN", &token),
        ],
    );
    ok.assert_code(0);
    assert_mirrored(&server);

    // Embedded in the URL, percent-encoded as a URL requires.
    let embedded = server.url_with_credentials("src.git");
    let ok2 = run(
        &[
            "status",
            &embedded,
            &server.url_with_credentials("dst.git"),
            "--json",
            "--verbose",
        ],
        &[],
    );
    ok2.assert_code(0);

    // A wrong token on each side: the error names the side; nothing leaks.
    let bad = format!("mirror-bot:{AWKWARD}-wrong");
    let wrong = run(
        &["mirror", &src, &dst, "--json"],
        &[
            ("GIT_RELAY_SOURCE_TOKEN", &bad),
            ("GIT_RELAY_DEST_TOKEN", &token),
        ],
    );
    wrong.assert_code(1);
    assert!(
        wrong.stderr.contains("source") && wrong.stderr.contains("401"),
        "{}",
        wrong.stderr
    );

    for run in [&ok, &ok2, &wrong] {
        assert_no_secret(&run.stdout, AWKWARD);
        assert_no_secret(&run.stderr, AWKWARD);
    }
}

fn assert_no_secret(text: &str, secret: &str) {
    use base64::Engine as _;
    let forms = [
        secret.to_owned(),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("mirror-bot:{secret}")),
        "p/ss@w".to_owned(),
    ];
    for form in forms {
        assert!(
            !text.contains(&form),
            "output contains the secret form {form:?}:\n{text}"
        );
    }
}

#[test]
fn a_wrong_destination_token_is_blamed_on_the_destination() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let mut env = credentials(&server);
    env[1] = ("GIT_RELAY_DEST_TOKEN", "expired-token-123");
    let out = run(&["mirror", &src, &dst], &env);
    out.assert_code(1);
    assert!(
        out.stderr.contains("destination") && out.stderr.contains("401"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert!(!out.stderr.contains("expired-token-123"), "{}", out.stderr);
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn a_missing_repository_is_reported_as_such() {
    let server = GitServer::start();
    server.create_bare("dst.git");
    let out = relay_between(&server, "mirror", &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("source") && out.stderr.contains("not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_hook_rejecting_one_ref_leaves_the_others_mirrored() {
    let server = GitServer::start();
    populated_source(&server);
    let dst = server.create_bare("dst.git");
    install_hook(
        &dst,
        "update",
        "#!/bin/sh\ncase \"$1\" in refs/heads/feature) echo 'feature is frozen' >&2; exit 1;; esac\nexit 0\n",
    );
    let out = relay_between(&server, "mirror", &[]);
    out.assert_code(3);
    let report = out.json();
    let feature = report["refs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "refs/heads/feature")
        .unwrap()
        .clone();
    assert_eq!(feature["result"], "rejected");
    assert!(
        feature["reason"]
            .as_str()
            .unwrap()
            .contains("hook declined"),
        "{feature}"
    );
    assert_eq!(report["totals"]["created"], 3);
    assert!(refs_of(&dst).iter().any(|(n, _)| n == "refs/heads/main"));
    assert!(!refs_of(&dst).iter().any(|(n, _)| n == "refs/heads/feature"));
}

#[test]
fn destination_only_commits_are_protected_until_force() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    relay_between(&server, "mirror", &[]).assert_code(0);

    // Someone pushes straight to the mirror.
    let intruder = WorkRepo::new();
    git(
        intruder.path(),
        &[
            "fetch",
            "-q",
            &server.repo_path("dst.git").to_string_lossy(),
            "main",
        ],
    );
    git(intruder.path(), &["reset", "-q", "--hard", "FETCH_HEAD"]);
    let local_only = intruder.commit("pushed to the mirror by mistake");
    git(
        intruder.path(),
        &[
            "push",
            "-q",
            &server.repo_path("dst.git").to_string_lossy(),
            "main:main",
            "main:refs/heads/mirror-only",
        ],
    );

    let out = relay_between(&server, "mirror", &[]);
    out.assert_code(3);
    let report = out.json();
    let protected: Vec<&str> = report["refs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "protected")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(protected, ["refs/heads/main", "refs/heads/mirror-only"]);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    let dst_refs = refs_of(&server.repo_path("dst.git"));
    assert!(dst_refs.contains(&("refs/heads/main".to_owned(), local_only.clone())));

    relay_between(&server, "mirror", &["--force"]).assert_code(0);
    assert_mirrored(&server);
}

#[test]
fn an_empty_source_never_wipes_the_destination() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    relay_between(&server, "mirror", &[]).assert_code(0);
    let before = refs_of(&server.repo_path("dst.git"));

    // The source is replaced by an empty repository.
    std::fs::remove_dir_all(server.repo_path("src.git")).unwrap();
    server.create_bare("src.git");
    let out = relay_between(&server, "mirror", &[]);
    out.assert_code(3);
    assert_eq!(out.json()["totals"]["protected"], before.len());
    assert_eq!(refs_of(&server.repo_path("dst.git")), before);
}

#[test]
fn status_and_dry_run_change_nothing() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");

    for (cmd, extra) in [("status", &[][..]), ("mirror", &["--dry-run"][..])] {
        server.clear_requests();
        let out = relay_between(&server, cmd, extra);
        out.assert_code(3);
        let report = out.json();
        assert_eq!(report["totals"]["planned"], 4, "{report}");
        assert_eq!(report["in_sync"], false);
        assert!(refs_of(&server.repo_path("dst.git")).is_empty());
        assert_eq!(receive_pack_posts(&server), 0);
    }
    relay_between(&server, "mirror", &[]).assert_code(0);
    relay_between(&server, "status", &[]).assert_code(0);
}

#[test]
fn include_and_exclude_select_refs() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    relay_between(
        &server,
        "mirror",
        &[
            "--include",
            "refs/heads/*",
            "--exclude",
            "refs/heads/feature",
        ],
    )
    .assert_code(0);
    let names: Vec<String> = refs_of(&server.repo_path("dst.git"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["refs/heads/main"]);

    // Pull-request refs come back when included by name.
    relay_between(&server, "mirror", &["--include", "refs/pull/*"]).assert_code(0);
    assert!(refs_of(&server.repo_path("dst.git"))
        .iter()
        .any(|(n, _)| n == "refs/pull/1/head"));
}

#[test]
fn local_paths_on_both_sides() {
    let work = WorkRepo::new();
    work.commit("a");
    work.commit("b");
    work.tag("t");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.git");
    let src = work.path().to_string_lossy().into_owned();
    let dst = backup.to_string_lossy().into_owned();

    run(&["mirror", &src, &dst], &[]).assert_code(0);
    assert_eq!(refs_of(&backup), refs_of(&work.path().join(".git")));
    fsck_strict(&backup);

    work.commit("c");
    let again = run(&["mirror", &src, &format!("file://{dst}"), "--json"], &[]);
    again.assert_code(0);
    assert_eq!(again.json()["totals"]["updated"], 1);
    assert_eq!(refs_of(&backup), refs_of(&work.path().join(".git")));
}

#[test]
fn a_shallow_source_is_refused_with_advice() {
    let work = WorkRepo::new();
    work.commit("a");
    work.commit("b");
    let scratch = tempfile::tempdir().unwrap();
    let shallow = scratch.path().join("shallow");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &format!("file://{}", work.path().display()),
            &shallow.to_string_lossy(),
        ],
    );
    let out = run(
        &[
            "mirror",
            &shallow.to_string_lossy(),
            &scratch.path().join("b.git").to_string_lossy(),
        ],
        &[],
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains("shallow") && out.stderr.contains("fetchDepth: 0"),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_errors_exit_2_without_echoing_credentials() {
    let out = run(&["mirror", "https://u:tok%2Fsecret@[bad", "/tmp/x"], &[]);
    out.assert_code(2);
    assert!(
        !out.stderr.contains("tok%2Fsecret") && !out.stderr.contains("tok/secret"),
        "{}",
        out.stderr
    );
    run(&["mirror", "git:pw@github.com:o/r.git", "/tmp/x"], &[]).assert_code(2);
    run(&["mirror", "/a", "/b", "--include", "main"], &[]).assert_code(2);
    run(&["mirror", "/a"], &[]).assert_code(2);
}

#[test]
fn refused_connections_and_dumb_servers_are_explained() {
    // Port 1 on loopback: nothing listens there.
    let out = run(&["status", "http://127.0.0.1:1/r.git", "/tmp/none"], &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("source") && out.stderr.contains("could not connect"),
        "{}",
        out.stderr
    );

    let server = GitServer::builder().dumb(true).start();
    populated_source(&server);
    server.create_bare("dst.git");
    let out = relay_between(&server, "status", &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("smart HTTP"), "{}", out.stderr);
}

#[test]
fn a_large_pack_streams_through_with_bounded_memory() {
    const SIZE: usize = 48 << 20;
    let server = GitServer::start();
    let work = WorkRepo::new();
    git(work.path(), &["config", "core.compression", "0"]);
    work.commit_file("small.txt", b"hello\n", "small");
    work.commit_file("large.bin", &noise(SIZE, 0x9e3779b97f4a7c15), "large");
    server.create_bare("src.git");
    work.push_mirror_to(&server.repo_path("src.git"));
    server.create_bare("dst.git");

    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let (out, peak) =
        run_measuring_memory(&["mirror", &src, &dst, "--json"], &credentials(&server));
    out.assert_code(0);
    assert_mirrored(&server);
    let pack = out.json()["pack_bytes"].as_u64().unwrap();
    assert!(
        pack > SIZE as u64,
        "the pack ({pack} B) carries the large file"
    );
    assert!(peak > 0, "memory was sampled");
    assert!(
        peak < 64 << 20,
        "peak memory {} MiB relaying a {} MiB pack",
        peak >> 20,
        pack >> 20
    );
}

#[test]
fn bearer_tokens_are_sent_as_bearer() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let env = [
        ("GIT_RELAY_SOURCE_TOKEN", server.password()),
        ("GIT_RELAY_DEST_TOKEN", server.password()),
    ];
    run(
        &[
            "mirror",
            &src,
            &dst,
            "--source-auth",
            "bearer",
            "--dest-auth",
            "bearer",
        ],
        &env,
    )
    .assert_code(0);
    assert_mirrored(&server);
    let bearer = format!("Bearer {}", server.password());
    assert!(server
        .requests()
        .iter()
        .all(|r| r.authorization.as_deref() == Some(bearer.as_str())));
}

#[test]
fn sha256_repositories_are_refused_clearly() {
    let server = GitServer::start();
    let src = server.repo_path("src.git");
    git(
        server.root(),
        &[
            "init",
            "-q",
            "--bare",
            "--object-format=sha256",
            &src.to_string_lossy(),
        ],
    );
    server.create_bare("dst.git");
    let out = relay_between(&server, "mirror", &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("sha256") && out.stderr.contains("source"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_readme_quick_start_backs_up_a_checkout_offline() {
    let work = WorkRepo::new();
    work.commit("a");
    work.branch("topic");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("demo.git");
    let out = run(
        &[
            "mirror",
            &work.path().to_string_lossy(),
            &backup.to_string_lossy(),
        ],
        &[],
    );
    out.assert_code(0);
    assert!(
        out.stderr.contains("created bare repository"),
        "{}",
        out.stderr
    );
    // The backup adopts the source's default branch, so plain git works on it.
    assert_eq!(git(&backup, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        git(&backup, &["rev-parse", "HEAD"]),
        git(work.path(), &["rev-parse", "HEAD"])
    );
    let again = run(
        &[
            "mirror",
            &work.path().to_string_lossy(),
            &backup.to_string_lossy(),
        ],
        &[],
    );
    again.assert_code(0);
    assert!(again.stderr.contains("in sync"), "{}", again.stderr);
}

#[test]
fn a_proxy_carries_both_sides_and_its_failure_is_named() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    let proxy = ForwardProxy::start(server.port());
    // Names that only the proxy "resolves": nothing leaves the machine.
    let (src, dst) = (
        "http://git-source.test/src.git",
        "http://git-dest.test/dst.git",
    );

    run(
        &["mirror", src, dst, "--proxy", &proxy.url()],
        &credentials(&server),
    )
    .assert_code(0);
    assert_mirrored(&server);
    let seen = proxy.requests();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET http://git-source.test/src.git/info/refs")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("POST http://git-dest.test/dst.git/git-receive-pack")),
        "{seen:#?}"
    );

    // The environment works as well.
    let mut env = credentials(&server);
    let url = proxy.url();
    env.push(("HTTP_PROXY", &url));
    run(&["status", src, dst], &env).assert_code(0);

    let out = run(
        &["status", src, dst, "--proxy", "http://127.0.0.1:1"],
        &credentials(&server),
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains("source") && out.stderr.contains("proxy"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_repository_moved_within_its_server_is_followed_with_its_credentials() {
    let server = GitServer::builder().moved("old", "/").start();
    populated_source(&server);
    server.create_bare("dst.git");
    let out = run(
        &["mirror", &server.url("old/src.git"), &server.url("dst.git")],
        &credentials(&server),
    );
    out.assert_code(0);
    assert_mirrored(&server);
    let moved = server.requests();
    assert!(moved.iter().any(|r| r.status == 301), "{moved:#?}");
    assert!(
        !out.stderr.contains("plain http://"),
        "loopback: {}",
        out.stderr
    );
}

#[test]
fn a_destination_that_cannot_store_even_one_commit_says_which_and_changes_no_ref() {
    let server = GitServer::start();
    populated_source(&server);
    let dst = server.create_bare("dst.git");
    // The destination refuses any pack over 100 bytes while indexing it:
    // too large, and so are the increments, down to a single commit.
    git(&dst, &["config", "receive.maxInputSize", "100"]);
    git(&dst, &["config", "receive.unpackLimit", "1"]);
    let out = relay_between(&server, "mirror", &["--retries", "0"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("error: destination")
            && out.stderr.contains("pack exceeds maximum allowed size")
            && out.stderr.contains("alone"),
        "{}",
        out.stderr
    );
    // The server stated its limit: raising the budget would not help.
    assert!(
        !out.stderr.contains("raise --dest-max-push-bytes"),
        "{}",
        out.stderr
    );
    assert!(refs_of(&dst).is_empty());
}

//! Refs that a plain mirror would trip over forever: names receive-pack
//! refuses, symbolic refs on the destination, and a backup as the source of
//! another backup.
//!
//! Each test builds the awkward ref with git itself, runs the real binary
//! against git's own server (or a backup on disk), and checks that one run
//! ends in sync and the next one is a no-op.

mod support;

use std::path::Path;

use support::*;

fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `git-relay mirror <server>/src.git <server>/dst.git --json [extra]`.
fn mirror_http(server: &GitServer, extra: &[&str]) -> Run {
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let mut args = vec!["mirror", src.as_str(), dst.as_str(), "--json"];
    args.extend_from_slice(extra);
    run(&args, &credentials(server))
}

#[test]
fn refs_stash_is_left_out_by_default() {
    let server = GitServer::start();
    let work = populated_source(&server);
    let src = server.repo_path("src.git");
    // A stash, as `git stash` makes it, pushed into the source the way a
    // careless `git push --mirror` from a work tree does.
    std::fs::write(work.path().join("file-1.txt"), "changed\n").unwrap();
    git(work.path(), &["stash", "-q"]);
    let stash = git(work.path(), &["rev-parse", "refs/stash"]);
    git(
        work.path(),
        &["push", "-q", &s(&src), "refs/stash:refs/heads/tmp"],
    );
    git(&src, &["update-ref", "refs/stash", &stash]);
    git(&src, &["update-ref", "-d", "refs/heads/tmp"]);
    let dst = server.create_bare("dst.git");

    let out = mirror_http(&server, &[]);
    out.assert_code(0);
    let names: Vec<String> = refs_of(&dst).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"refs/heads/main".to_owned()), "{names:?}");
    assert!(!names.contains(&"refs/stash".to_owned()), "{names:?}");
    let again = mirror_http(&server, &[]);
    again.assert_code(0);
    assert_eq!(again.json()["in_sync"], true);
}

#[test]
fn a_symbolic_ref_on_the_destination_is_left_alone_and_its_target_updated() {
    let server = GitServer::start();
    let work = populated_source(&server);
    let dst = server.create_bare("dst.git");
    mirror_http(&server, &[]).assert_code(0);
    git(
        &dst,
        &["symbolic-ref", "refs/heads/alias", "refs/heads/main"],
    );

    let new_main = work.commit("fourth");
    work.push_mirror_to(&server.repo_path("src.git"));
    let out = mirror_http(&server, &[]);
    out.assert_code(0);
    assert_eq!(git(&dst, &["rev-parse", "refs/heads/main"]), new_main);
    assert_eq!(
        git(&dst, &["symbolic-ref", "refs/heads/alias"]),
        "refs/heads/main"
    );
    assert!(
        out.stderr.contains("refs/heads/alias") && out.stderr.contains("symbolic"),
        "{}",
        out.stderr
    );
    let again = mirror_http(&server, &[]);
    again.assert_code(0);
    assert_eq!(again.json()["in_sync"], true);
    assert_eq!(git(&dst, &["rev-parse", "refs/heads/main"]), new_main);
    assert_eq!(
        git(&dst, &["symbolic-ref", "refs/heads/alias"]),
        "refs/heads/main"
    );
}

//! Backups on disk: `git-relay mirror <SOURCE> /path/backup.git` and
//! `git-relay verify`, against git's own server and local repositories.
//!
//! A local destination is a backup written through git2 (see `src/store`):
//! these tests check it with plain git (`for-each-ref`, `fsck --strict`),
//! that history dropped at the source survives under `refs/archive/`, that
//! a killed run or two runs at once leave it sound, and that a backup
//! restores to an empty HTTP repository identical to the source.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn wait(child: Child) -> Run {
    child.wait_with_output().expect("wait for git-relay").into()
}

fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `git-relay mirror <server>/src.git <backup> --json [extra]`.
fn back_up(server: &GitServer, backup: &Path, extra: &[&str]) -> Run {
    let src = server.url("src.git");
    let dst = s(backup);
    let mut args = vec!["mirror", src.as_str(), dst.as_str(), "--json"];
    args.extend_from_slice(extra);
    run(&args, &credentials(server))
}

fn source_refs(server: &GitServer) -> Vec<(String, String)> {
    refs_of(&server.repo_path("src.git"))
        .into_iter()
        .filter(|(name, _)| !name.starts_with("refs/pull/"))
        .collect()
}

/// `(name, oid)` pairs, as [`refs_of`] lists them.
type Refs = Vec<(String, String)>;

/// The mirrored refs and the archive refs of a listing.
fn split_archive(refs: Refs) -> (Refs, Refs) {
    refs.into_iter()
        .partition(|(name, _)| !name.starts_with("refs/archive/"))
}

/// The archive refs as `(original ref, oid)`, checking the documented shape
/// `refs/archive/<yyyy-mm-ddThh-mm-ssZ>/<original>`.
fn archived(backup: &Path) -> Vec<(String, String)> {
    let (_, archive) = split_archive(refs_of(backup));
    let mut out: Vec<(String, String)> = archive
        .into_iter()
        .map(|(name, oid)| {
            let rest = name.strip_prefix("refs/archive/").unwrap();
            let (stamp, original) = rest.split_once('/').unwrap();
            let b = stamp.as_bytes();
            assert!(
                b.len() >= 20 && b[10] == b'T' && b[19] == b'Z' && b[13] == b'-',
                "archive ref {name}"
            );
            (original.to_owned(), oid)
        })
        .collect();
    out.sort();
    out
}

fn verify(path: &Path) -> Run {
    run(&["verify", &s(path)], &[])
}

#[test]
fn first_backup_then_incremental_from_an_http_source() {
    let server = GitServer::start();
    let work = populated_source(&server);
    let scratch = tempfile::tempdir().unwrap();
    // Missing parent directories are created too.
    let backup = scratch.path().join("proj").join("repo.git");

    // Before the first run, status and dry runs compare against nothing
    // and create nothing.
    let status = run(
        &["status", &server.url("src.git"), &s(&backup), "--json"],
        &credentials(&server),
    );
    status.assert_code(3);
    assert_eq!(status.json()["totals"]["planned"], 4);
    back_up(&server, &backup, &["--dry-run"]).assert_code(3);
    assert!(!backup.exists() && !backup.parent().unwrap().exists());

    let first = back_up(&server, &backup, &[]);
    first.assert_code(0);
    assert!(
        first.stderr.contains("created bare repository"),
        "{}",
        first.stderr
    );
    assert_eq!(first.json()["totals"]["created"], 4);
    assert_eq!(refs_of(&backup), source_refs(&server));
    assert_eq!(git(&backup, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(git(&backup, &["rev-parse", "--is-bare-repository"]), "true");
    fsck_strict(&backup);
    assert!(
        !backup.join("git-relay.lock").exists(),
        "the lock is released"
    );

    // Incremental: one new commit moves; the backup's tips are the haves.
    work.commit("fourth");
    work.push_mirror_to(&server.repo_path("src.git"));
    server.clear_requests();
    let again = back_up(&server, &backup, &[]);
    again.assert_code(0);
    let report = again.json();
    assert_eq!(report["totals"]["updated"], 1, "{report}");
    let pack = report["pack_bytes"].as_u64().unwrap();
    assert!(
        pack > 0 && pack < 2048,
        "only the new objects move: {pack} B"
    );
    assert_eq!(refs_of(&backup), source_refs(&server));
    fsck_strict(&backup);
    // A fast-forward loses nothing, so nothing is archived.
    assert!(archived(&backup).is_empty());

    // A no-op lists both sides and fetches nothing.
    server.clear_requests();
    let noop = back_up(&server, &backup, &[]);
    noop.assert_code(0);
    assert!(noop.stderr.contains("in sync"), "{}", noop.stderr);
    let fetches = server
        .requests()
        .iter()
        .filter(|r| r.is_rpc() && r.service() == Some("git-upload-pack"))
        .count();
    assert_eq!(fetches, 1, "ls-refs only: {:#?}", server.requests());

    let v = verify(&backup);
    v.assert_code(0);
    assert!(v.stderr.contains("sound"), "{}", v.stderr);
}

#[test]
fn force_pushes_and_deletions_keep_the_old_tips_under_refs_archive() {
    let server = GitServer::start();
    let work = populated_source(&server);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    back_up(&server, &backup, &[]).assert_code(0);
    let before: std::collections::BTreeMap<String, String> = refs_of(&backup).into_iter().collect();

    // main is rewritten, feature deleted, the annotated tag moved, and a new
    // commit fast-forwards nothing else.
    git(work.path(), &["reset", "-q", "--hard", "HEAD~2"]);
    work.commit("replacement");
    git(work.path(), &["branch", "-D", "feature"]);
    git(
        work.path(),
        &["tag", "-f", "-a", "-m", "moved", "v1-annotated"],
    );
    let src = server.repo_path("src.git");
    work.push_mirror_to(&src);
    // The source still has the old objects (unreachable), so the engine's
    // divergence rule sees a rewind it can account for; the backup keeps the
    // old tips anyway.

    let out = back_up(&server, &backup, &[]);
    out.assert_code(0);
    let (mirrored, _) = split_archive(refs_of(&backup));
    assert_eq!(mirrored, source_refs(&server));
    assert_eq!(
        archived(&backup),
        vec![
            (
                "refs/heads/feature".to_owned(),
                before["refs/heads/feature"].clone()
            ),
            (
                "refs/heads/main".to_owned(),
                before["refs/heads/main"].clone()
            ),
            (
                "refs/tags/v1-annotated".to_owned(),
                before["refs/tags/v1-annotated"].clone()
            ),
        ]
    );
    fsck_strict(&backup);
    // The old history is whole: git can walk it.
    let old_main = &before["refs/heads/main"];
    assert_eq!(git(&backup, &["rev-list", "--count", old_main]), "3");
    let report = out.json();
    let main = report["refs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "refs/heads/main")
        .unwrap();
    assert_eq!(main["result"], "ok");
    assert!(
        main["reason"].as_str().unwrap().contains("refs/archive/"),
        "{main}"
    );
    assert!(
        out.stderr
            .contains("archived the old tip of refs/heads/feature"),
        "{}",
        out.stderr
    );

    // Archives survive later runs, are never planned or pruned by the
    // mirror itself, and verify walks them too.
    back_up(&server, &backup, &[]).assert_code(0);
    assert_eq!(archived(&backup).len(), 3);
    verify(&backup).assert_code(0);

    // Only the deliberate flag expires them: not yet 30 days old...
    back_up(&server, &backup, &["--prune-archive-older-than", "30d"]).assert_code(0);
    assert_eq!(archived(&backup).len(), 3);
    // ...but older than zero seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let pruned = back_up(&server, &backup, &["--prune-archive-older-than", "0s"]);
    pruned.assert_code(0);
    assert!(
        pruned.stderr.contains("pruned 3 archive ref(s)"),
        "{}",
        pruned.stderr
    );
    assert!(archived(&backup).is_empty());
    fsck_strict(&backup);

    // The flag makes no sense for a remote destination.
    let src_url = server.url("src.git");
    let dst_url = server.url("dst.git");
    run(
        &[
            "mirror",
            &src_url,
            &dst_url,
            "--prune-archive-older-than",
            "1d",
        ],
        &credentials(&server),
    )
    .assert_code(2);
}

#[test]
fn commits_pushed_only_into_the_backup_are_protected_until_force_and_then_archived() {
    let server = GitServer::start();
    populated_source(&server);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    back_up(&server, &backup, &[]).assert_code(0);

    let intruder = WorkRepo::new();
    git(intruder.path(), &["fetch", "-q", &s(&backup), "main"]);
    git(intruder.path(), &["reset", "-q", "--hard", "FETCH_HEAD"]);
    let local_only = intruder.commit("written into the backup by hand");
    git(intruder.path(), &["push", "-q", &s(&backup), "main:main"]);

    let out = back_up(&server, &backup, &[]);
    out.assert_code(3);
    assert_eq!(out.json()["totals"]["protected"], 1);
    assert!(refs_of(&backup).contains(&("refs/heads/main".to_owned(), local_only.clone())));

    back_up(&server, &backup, &["--force"]).assert_code(0);
    assert_eq!(
        archived(&backup),
        vec![("refs/heads/main".to_owned(), local_only)]
    );
    fsck_strict(&backup);
}

#[test]
fn a_backup_restores_to_an_empty_http_repository_identical_to_the_source() {
    let server = GitServer::start();
    let work = populated_source(&server);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    back_up(&server, &backup, &[]).assert_code(0);
    // Give the backup an archive too, to show it can be left behind.
    git(work.path(), &["branch", "-D", "feature"]);
    work.push_mirror_to(&server.repo_path("src.git"));
    back_up(&server, &backup, &[]).assert_code(0);
    assert_eq!(archived(&backup).len(), 1);

    // The source host is gone; a new one starts empty.
    let new_host = GitServer::start();
    let dst = new_host.create_bare("restored.git");
    let out = run(
        &[
            "mirror",
            &s(&backup),
            &new_host.url("restored.git"),
            "--exclude",
            "refs/archive/*",
            "--json",
        ],
        &credentials(&new_host),
    );
    out.assert_code(0);
    assert_eq!(refs_of(&dst), source_refs(&server));
    fsck_strict(&dst);
    for rev in ["main", "v1-annotated^{commit}"] {
        assert_eq!(
            git(&dst, &["rev-parse", rev]),
            git(&server.repo_path("src.git"), &["rev-parse", rev])
        );
    }

    // Without the exclusion, the archive travels too: nothing is lost.
    let all = new_host.create_bare("everything.git");
    run(
        &["mirror", &s(&backup), &new_host.url("everything.git")],
        &credentials(&new_host),
    )
    .assert_code(0);
    assert_eq!(refs_of(&all), refs_of(&backup));
    fsck_strict(&all);
}

/// The server's credentials, and a PATH where no `git` can be found.
fn without_git<'a>(server: &'a GitServer, path: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut env = credentials(server);
    env.push(("PATH", path));
    env
}

#[test]
fn without_git_on_path_a_backup_is_read_through_git2_and_restored() {
    let server = GitServer::start();
    let work = populated_source(&server);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    // No `git` for git-relay itself: writing the backup and reading it
    // back both go through libgit2 (the servers run their own git).
    let empty_bin = scratch.path().join("bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let no_git = s(&empty_bin);
    let env_of = |server| without_git(server, &no_git);
    let src = server.url("src.git");
    run(&["mirror", &src, &s(&backup)], &env_of(&server)).assert_code(0);
    git(work.path(), &["branch", "-D", "feature"]);
    work.push_mirror_to(&server.repo_path("src.git"));
    run(&["mirror", &src, &s(&backup)], &env_of(&server)).assert_code(0);
    assert_eq!(archived(&backup).len(), 1);

    let new_host = GitServer::start();
    let dst = new_host.create_bare("restored.git");
    let restore = |extra: &[&str]| {
        let url = new_host.url("restored.git");
        let mut args = vec!["mirror", "", url.as_str(), "--json"];
        let path = s(&backup);
        args[1] = path.as_str();
        args.extend_from_slice(extra);
        run(&args, &env_of(&new_host))
    };
    let out = restore(&["--exclude", "refs/archive/*"]);
    out.assert_code(0);
    assert_eq!(out.json()["source_protocol"], "git2");
    assert_eq!(refs_of(&dst), source_refs(&server));
    assert_eq!(
        git(&dst, &["symbolic-ref", "HEAD"]),
        "refs/heads/main",
        "HEAD untouched on an existing repository"
    );
    fsck_strict(&dst);

    // Incremental: only the new commit's objects are packed.
    work.commit("after the restore");
    work.push_mirror_to(&server.repo_path("src.git"));
    run(&["mirror", &src, &s(&backup)], &env_of(&server)).assert_code(0);
    let again = restore(&["--exclude", "refs/archive/*"]);
    again.assert_code(0);
    let report = again.json();
    assert_eq!(report["totals"]["updated"], 1, "{report}");
    let pack = report["pack_bytes"].as_u64().unwrap();
    assert!(pack < 2048, "only the new objects: {pack} B");
    assert_eq!(refs_of(&dst), source_refs(&server));
    fsck_strict(&dst);

    // The divergence rule holds: commits only the destination has are
    // protected, because the backup does not have them.
    let intruder = WorkRepo::new();
    git(intruder.path(), &["fetch", "-q", &s(&dst), "main"]);
    git(intruder.path(), &["reset", "-q", "--hard", "FETCH_HEAD"]);
    intruder.commit("pushed to the restored repository");
    git(intruder.path(), &["push", "-q", &s(&dst), "main:main"]);
    let protected = restore(&["--exclude", "refs/archive/*"]);
    protected.assert_code(3);
    assert_eq!(protected.json()["totals"]["protected"], 1);

    // A shallow clone is refused by the git2 reader too.
    let shallow = scratch.path().join("shallow");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &format!("file://{}", work.path().display()),
            &s(&shallow),
        ],
    );
    let out = run(
        &["mirror", &s(&shallow), &s(&scratch.path().join("x.git"))],
        &[("PATH", no_git.as_str())],
    );
    out.assert_code(1);
    assert!(out.stderr.contains("fetchDepth: 0"), "{}", out.stderr);
}

#[test]
fn a_local_work_tree_backs_up_through_git2_too() {
    let work = WorkRepo::new();
    work.commit("a");
    work.tag("t");
    work.annotated_tag("at", "annotated");
    work.commit("b");
    work.branch("side");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.git");
    let (src, dst) = (s(work.path()), s(&backup));
    let args = ["mirror", &src, &dst, "--json", "--local-source", "git2"];
    let out = run(&args, &[]);
    out.assert_code(0);
    assert_eq!(out.json()["source_protocol"], "git2");
    assert_eq!(refs_of(&backup), refs_of(&work.path().join(".git")));
    assert_eq!(git(&backup, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    fsck_strict(&backup);

    git(work.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    work.commit("b rewritten");
    let out = run(&args, &[]);
    out.assert_code(0);
    let (mirrored, _) = split_archive(refs_of(&backup));
    assert_eq!(mirrored, refs_of(&work.path().join(".git")));
    assert_eq!(archived(&backup).len(), 1);
    fsck_strict(&backup);
}

#[test]
fn a_local_work_tree_backs_up_and_a_shallow_one_is_refused() {
    let work = WorkRepo::new();
    work.commit("a");
    work.commit("b");
    work.tag("t");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.git");
    run(&["mirror", &s(work.path()), &s(&backup)], &[]).assert_code(0);
    assert_eq!(refs_of(&backup), refs_of(&work.path().join(".git")));
    fsck_strict(&backup);

    let shallow = scratch.path().join("shallow");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &format!("file://{}", work.path().display()),
            &s(&shallow),
        ],
    );
    let refused_backup = scratch.path().join("from-shallow.git");
    let out = run(&["mirror", &s(&shallow), &s(&refused_backup)], &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("shallow") && out.stderr.contains("fetchDepth: 0"),
        "{}",
        out.stderr
    );
    assert!(
        !refused_backup.exists(),
        "no backup is created from a shallow source"
    );
}

/// A source on the server with one small commit, stored uncompressed so that
/// later large files make a pack as large as they are.
fn small_source(server: &GitServer) -> (WorkRepo, PathBuf) {
    let work = WorkRepo::new();
    git(work.path(), &["config", "core.compression", "0"]);
    work.commit_file("small.txt", b"hello\n", "small");
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    (work, src)
}

fn temp_packs(backup: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(backup.join("objects/pack"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("pack_git2_"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_run_killed_during_the_transfer_leaves_the_backup_as_it_was() {
    const SIZE: usize = 64 << 20;
    let server = GitServer::start();
    let (work, src) = small_source(&server);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    back_up(&server, &backup, &[]).assert_code(0);
    let before = refs_of(&backup);

    work.commit_file("large.bin", &noise(SIZE, 0x2545f4914f6cdd1d), "large");
    work.branch("more");
    work.push_mirror_to(&src);

    let mut child = command(
        &["mirror", &server.url("src.git"), &s(&backup)],
        &credentials(&server),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Kill it once the pack writer's temporary file holds part of the pack.
    let started = Instant::now();
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(60) {
        let partial = temp_packs(&backup)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .any(|m| m.len() > 1 << 20 && m.len() < SIZE as u64);
        if partial {
            child.kill().unwrap();
            killed_at = Some(started.elapsed());
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = child.wait().unwrap();
    assert!(
        killed_at.is_some(),
        "the run ended ({status}) before it could be killed mid-transfer"
    );

    // Nothing changed that git can see; the lock of the dead run remains.
    assert_eq!(refs_of(&backup), before);
    fsck_strict(&backup);
    assert!(backup.join("git-relay.lock").exists());
    verify(&backup).assert_code(0);

    // Had it died inside the ref transaction, git's lock file of a ref
    // would be left too.
    std::fs::write(backup.join("refs/heads/main.lock"), "").unwrap();

    // The next run clears the stale lock and the leftovers, and completes.
    let next = back_up(&server, &backup, &[]);
    next.assert_code(0);
    assert!(next.stderr.contains("stale lock"), "{}", next.stderr);
    assert_eq!(refs_of(&backup), refs_of(&src));
    assert!(
        temp_packs(&backup).is_empty(),
        "leftover temporary packs removed"
    );
    assert!(!backup.join("refs/heads/main.lock").exists());
    fsck_strict(&backup);
    verify(&backup).assert_code(0);
}

#[test]
fn two_runs_on_one_backup_take_turns() {
    let server = GitServer::start();
    let work = populated_source(&server);
    for i in 0..20 {
        work.commit_file(&format!("data/{i}.bin"), &noise(256 << 10, i + 1), "data");
    }
    work.push_mirror_to(&server.repo_path("src.git"));
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");

    let spawn = || {
        command(
            &["mirror", &server.url("src.git"), &s(&backup), "--json"],
            &credentials(&server),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (wait(a), wait(b));
    // Each either did the work or found it done after waiting its turn; a
    // run that lost the race to create the repository says so clearly.
    for r in [&a, &b] {
        assert!(
            r.code == 0
                || r.stderr.contains("another git-relay run")
                || r.stderr.contains("exists"),
            "code {}\n{}",
            r.code,
            r.stderr
        );
    }
    assert!(a.code == 0 || b.code == 0, "{}\n{}", a.stderr, b.stderr);
    assert_eq!(refs_of(&backup), source_refs(&server));
    fsck_strict(&backup);
    assert!(!backup.join("git-relay.lock").exists());

    // A live holder (this test process) keeps a run out until its wait ends.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        backup.join("git-relay.lock"),
        format!("{} - {}\n", std::process::id(), host.trim()),
    )
    .unwrap();
    work.commit("while locked");
    work.push_mirror_to(&server.repo_path("src.git"));
    let started = Instant::now();
    let refused = back_up(&server, &backup, &["--timeout", "1"]);
    refused.assert_code(1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        refused.stderr.contains(&format!(
            "another git-relay run (pid {} ",
            std::process::id()
        )),
        "{}",
        refused.stderr
    );
    assert_ne!(refs_of(&backup), source_refs(&server), "nothing written");
    std::fs::remove_file(backup.join("git-relay.lock")).unwrap();
    back_up(&server, &backup, &[]).assert_code(0);
    assert_eq!(refs_of(&backup), source_refs(&server));
}

#[test]
fn verify_finds_missing_and_corrupt_objects() {
    let work = WorkRepo::new();
    work.commit("a");
    work.commit("b");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    run(&["mirror", &s(work.path()), &s(&backup)], &[]).assert_code(0);
    let sound = run(&["verify", &s(&backup), "--json"], &[]);
    sound.assert_code(0);
    let report = sound.json();
    assert_eq!(report["commits"], 2);
    assert!(report["problems"].as_array().unwrap().is_empty());

    // A ref naming an object that is not there.
    std::fs::write(
        backup.join("refs/heads/broken"),
        "0123456789abcdef0123456789abcdef01234567\n",
    )
    .unwrap();
    let out = verify(&backup);
    out.assert_code(1);
    assert!(
        out.stderr.contains("0123456789abcdef") && out.stderr.contains("refs/heads/broken"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(backup.join("refs/heads/broken")).unwrap();

    // A pack with a flipped byte in the middle of its data.
    let pack = std::fs::read_dir(backup.join("objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let mut perms = std::fs::metadata(&pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).unwrap();
    std::fs::write(&pack, bytes).unwrap();
    verify(&backup).assert_code(1);

    run(&["verify", &s(&scratch.path().join("nothing"))], &[]).assert_code(1);
}

#[test]
fn tens_of_mib_back_up_with_bounded_memory() {
    const SIZE: usize = 48 << 20;
    let server = GitServer::start();
    let work = WorkRepo::new();
    git(work.path(), &["config", "core.compression", "0"]);
    work.commit_file("small.txt", b"hello\n", "small");
    for i in 0..4 {
        work.commit_file(&format!("part-{i}.bin"), &noise(SIZE / 4, 77 + i), "part");
    }
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");

    let (out, peak) = run_measuring_memory(
        &["mirror", &server.url("src.git"), &s(&backup), "--json"],
        &credentials(&server),
    );
    out.assert_code(0);
    let pack = out.json()["pack_bytes"].as_u64().unwrap();
    assert!(pack > SIZE as u64, "{pack}");
    assert_eq!(refs_of(&backup), refs_of(&src));
    fsck_strict(&backup);
    assert!(peak > 0, "memory was sampled");
    assert!(
        peak < 64 << 20,
        "peak memory {} MiB backing up a {} MiB pack",
        peak >> 20,
        pack >> 20
    );
}

/// A `git` first on PATH that appends its environment to `dump` and then
/// runs the real git: it sees exactly what git-relay gives its children.
fn env_dumping_git(dir: &Path, dump: &Path) -> String {
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .expect("git on PATH");
    install_script(
        &dir.join("git"),
        &format!(
            "#!/bin/sh\nenv >> '{}'\nexec '{}' \"$@\"\n",
            s(dump),
            s(&real)
        ),
    );
    let path = std::env::var("PATH").unwrap();
    format!("{}:{path}", s(dir))
}

fn install_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn git_children_of_a_local_source_get_no_secret_from_the_environment() {
    let work = WorkRepo::new();
    work.commit("a");
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let dump = scratch.path().join("env.txt");
    let path = env_dumping_git(&bin, &dump);
    let secrets = [
        ("GIT_RELAY_SOURCE_TOKEN", "src-token-4f1d9c"),
        ("GIT_RELAY_DEST_TOKEN", "dst-token-77ab02"),
        ("GIT_RELAY_SOURCE_USERNAME", "src-user-5e3c"),
        ("GIT_RELAY_DEST_USERNAME", "dst-user-9a0b"),
        ("SYSTEM_ACCESSTOKEN", "system-token-c0ffee"),
        (
            "INPUT_SOURCEGITREPOSITORYPERSONALACCESSTOKEN",
            "input-token-beef42",
        ),
        (
            "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN",
            "endpoint-token-d00d",
        ),
        ("AGENT_PROXYPASSWORD", "proxy-password-abcd"),
        // Never used: the run makes no HTTP request.
        (
            "HTTPS_PROXY",
            "http://user:proxy-url-secret-1234@127.0.0.1:9",
        ),
    ];
    let mut env = secrets.to_vec();
    env.push(("PATH", &path));
    let backup = scratch.path().join("backup.git");
    let out = run(&["mirror", &s(work.path()), &s(&backup), "--json"], &env);
    out.assert_code(0);
    assert_ne!(out.json()["source_protocol"], "git2");
    let seen = std::fs::read_to_string(&dump).expect("git-relay ran git");
    assert!(seen.contains("PATH="), "{seen}");
    for (name, value) in secrets {
        assert!(!seen.contains(value), "a git child saw {name}:\n{seen}");
    }
    assert_eq!(refs_of(&backup), refs_of(&work.path().join(".git")));
}

fn head_of(repo: &Path) -> String {
    git(repo, &["symbolic-ref", "HEAD"])
}

/// A clone of the backup with everything git said: no warning about a
/// HEAD that names a missing branch, and the branch checked out.
fn clone_checks_out(backup: &Path, branch: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let into = scratch.path().join("clone");
    let out = git_ok(scratch.path(), &["clone", &s(backup), &s(&into)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("warning"), "{said}");
    assert_eq!(
        git(&into, &["rev-parse", "--abbrev-ref", "HEAD"]),
        branch,
        "{said}"
    );
}

#[test]
fn backup_head_follows_the_source_default_branch_on_every_run() {
    let server = GitServer::start();
    populated_source(&server);
    let src = server.repo_path("src.git");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    back_up(&server, &backup, &[]).assert_code(0);
    assert_eq!(head_of(&backup), "refs/heads/main");

    // The source changes its default branch and nothing else: a no-op run.
    git(&src, &["symbolic-ref", "HEAD", "refs/heads/feature"]);
    let out = back_up(&server, &backup, &[]);
    out.assert_code(0);
    assert_eq!(out.json()["totals"]["updated"], 0);
    assert_eq!(head_of(&backup), "refs/heads/feature");
    clone_checks_out(&backup, "feature");
}

#[test]
fn a_backup_first_made_from_an_empty_source_gets_its_head_when_content_comes() {
    let server = GitServer::start();
    let src = server.create_bare("src.git");
    git(&src, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    back_up(&server, &backup, &[]).assert_code(0);
    assert!(refs_of(&backup).is_empty());

    let work = WorkRepo::new();
    work.commit("a");
    git(work.path(), &["branch", "-m", "trunk"]);
    work.branch("other");
    work.push_mirror_to(&src);
    back_up(&server, &backup, &[]).assert_code(0);
    assert_eq!(head_of(&backup), "refs/heads/trunk");
    clone_checks_out(&backup, "trunk");
    verify(&backup).assert_code(0);
}

#[test]
fn verify_reports_a_head_that_names_a_missing_branch() {
    let work = WorkRepo::new();
    work.commit("a");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    run(&["mirror", &s(work.path()), &s(&backup)], &[]).assert_code(0);
    verify(&backup).assert_code(0);

    git(&backup, &["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let out = verify(&backup);
    out.assert_code(1);
    assert!(
        out.stderr.contains("HEAD") && out.stderr.contains("refs/heads/gone"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_backup_copied_into_another_backup_brings_its_archive_along() {
    let work = WorkRepo::new();
    work.commit("a");
    work.commit("b");
    let scratch = tempfile::tempdir().unwrap();
    let first = scratch.path().join("first.git");
    let second = scratch.path().join("second.git");
    let mirror = |from: &Path, to: &Path| run(&["mirror", &s(from), &s(to), "--json"], &[]);
    mirror(work.path(), &first).assert_code(0);
    git(work.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    work.commit("b rewritten");
    mirror(work.path(), &first).assert_code(0);
    assert_eq!(archived(&first).len(), 1);

    let out = mirror(&first, &second);
    out.assert_code(0);
    assert_eq!(refs_of(&second), refs_of(&first));
    fsck_strict(&second);
    let again = mirror(&first, &second);
    again.assert_code(0);
    assert_eq!(again.json()["in_sync"], true);

    // The second backup's own archives stay when the first backup has none
    // of them, and a new archive of the first arrives too.
    git(work.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    work.commit("b rewritten again");
    std::thread::sleep(Duration::from_millis(1100));
    mirror(work.path(), &first).assert_code(0);
    mirror(&first, &second).assert_code(0);
    let (mirrored, archive) = split_archive(refs_of(&second));
    assert_eq!(mirrored, split_archive(refs_of(&first)).0);
    // Two of the first backup's, and the second's own of its old main.
    assert_eq!(archive.len(), 3, "{archive:?}");
    verify(&second).assert_code(0);

    // Expiring archives spares those the first backup still keeps: they
    // would only come back with the next run.
    std::thread::sleep(Duration::from_millis(1100));
    let out = run(
        &[
            "mirror",
            &s(&first),
            &s(&second),
            "--json",
            "--prune-archive-older-than",
            "0s",
        ],
        &[],
    );
    out.assert_code(0);
    assert_eq!(out.json()["totals"]["created"], 0, "{}", out.stdout);
    assert_eq!(refs_of(&second), refs_of(&first));
}

#[test]
fn a_rename_between_a_and_a_slash_b_takes_one_run() {
    let work = WorkRepo::new();
    work.commit("a");
    work.branch("topic");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("repo.git");
    let mirror = || run(&["mirror", &s(work.path()), &s(&backup), "--json"], &[]);
    mirror().assert_code(0);
    let mirrored = || split_archive(refs_of(&backup)).0;

    git(work.path(), &["branch", "-m", "topic", "topic/b"]);
    mirror().assert_code(0);
    assert_eq!(mirrored(), refs_of(&work.path().join(".git")));

    git(work.path(), &["branch", "-m", "topic/b", "topic"]);
    let out = mirror();
    out.assert_code(0);
    assert_eq!(out.json()["in_sync"], true);
    assert_eq!(mirrored(), refs_of(&work.path().join(".git")));
    // Both deletions kept their tip.
    let originals: Vec<String> = archived(&backup).into_iter().map(|(n, _)| n).collect();
    assert_eq!(originals, ["refs/heads/topic", "refs/heads/topic/b"]);
    fsck_strict(&backup);
}

/// Hands `dir` and everything in it to another user, as a repository
/// copied from another account or a mounted volume is.
fn give_away(dir: &Path) {
    let out = std::process::Command::new("chown")
        .args(["-R", "12345:12345", &s(dir)])
        .output()
        .unwrap();
    assert!(out.status.success(), "chown: {out:?}");
}

#[test]
fn a_repository_of_another_user_is_refused_with_git_s_reason_and_the_way_out() {
    // Only root may give files away; as another user there is nothing to test.
    if std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
        != 0
    {
        eprintln!("skipped: not root");
        return;
    }
    let work = WorkRepo::new();
    work.commit("a");
    let scratch = tempfile::tempdir().unwrap();
    let theirs = scratch.path().join("theirs");
    git(
        scratch.path(),
        &["clone", "-q", "--bare", &s(work.path()), &s(&theirs)],
    );
    give_away(&theirs);
    let check = |out: &Run| {
        out.assert_code(1);
        assert!(
            out.stderr.contains("dubious ownership")
                && out
                    .stderr
                    .contains(&format!("safe.directory {}", s(&theirs)))
                && !out.stderr.contains("not a git repository"),
            "{}",
            out.stderr
        );
    };
    let backup = scratch.path().join("backup.git");
    for reader in ["git", "git2"] {
        let args = ["mirror", &s(&theirs), &s(&backup), "--local-source", reader];
        check(&run(&args, &[]));
    }
    // A backup of another user is refused the same way.
    let out = run(&["mirror", &s(work.path()), &s(&theirs)], &[]);
    check(&out);
    check(&verify(&theirs));
}

#[test]
fn a_backup_path_that_is_a_symbolic_link_is_made_where_it_points() {
    let work = WorkRepo::new();
    work.commit("a");
    let scratch = tempfile::tempdir().unwrap();
    let mirror = |to: &Path| run(&["mirror", &s(work.path()), &s(to)], &[]);
    // A link to an empty directory, say a volume mounted for backups.
    let volume = scratch.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let link = scratch.path().join("link.git");
    std::os::unix::fs::symlink(&volume, &link).unwrap();
    mirror(&link).assert_code(0);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(refs_of(&volume), refs_of(&work.path().join(".git")));
    mirror(&link).assert_code(0);
    verify(&link).assert_code(0);

    // A relative link to a directory still to be made.
    let later = scratch.path().join("later.git");
    std::os::unix::fs::symlink("backups/later", &later).unwrap();
    mirror(&later).assert_code(0);
    let made = scratch.path().join("backups/later");
    assert_eq!(refs_of(&made), refs_of(&work.path().join(".git")));
}

//! Git LFS objects go with the history that needs them: git-relay finds the
//! pointers of what it sends and moves their objects between the two LFS
//! servers (giftless, behind git's own http-backend) before the refs, and
//! the real git-lfs client agrees that nothing is missing.

mod support;

use support::*;

/// A source with LFS files on a server that filters (as the hosts do), and
/// an empty destination repository on another.
fn lfs_pair(sizes: &[usize]) -> (GitServer, GitServer, WorkRepo, Vec<LfsFile>) {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder().lfs(true).start();
    let (work, files) = lfs_source(&source, "src.git", sizes);
    destination.create_bare("dst.git");
    (source, destination, work, files)
}

fn mirror(source: &GitServer, destination: &GitServer, extra: &[&str]) -> Run {
    let src = source.url("src.git");
    let dst = destination.url("dst.git");
    let mut args = vec!["mirror", &src, &dst, "--json"];
    args.extend_from_slice(extra);
    let mut env = credentials(source);
    env.truncate(1);
    env.push(("GIT_RELAY_SOURCE_USERNAME", source.username()));
    env.push(("GIT_RELAY_DEST_TOKEN", destination.password()));
    env.push(("GIT_RELAY_DEST_USERNAME", destination.username()));
    run(&args, &env)
}

#[test]
fn a_first_mirror_brings_every_lfs_object_and_git_lfs_finds_none_missing() {
    let (source, destination, _work, files) = lfs_pair(&[1_000, 70_000, 300_000]);
    let run = mirror(&source, &destination, &[]);
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["lfs"]["moved"], 3, "{}", run.stderr);
    let mut expected: Vec<(String, u64)> = files.iter().map(|f| (f.oid.clone(), f.size)).collect();
    expected.sort();
    assert_eq!(destination.lfs().objects("dst.git"), expected);
    let clone = lfs_clone_checked(&destination, "dst.git");
    for file in &files {
        let content = std::fs::read(clone.path().join(&file.path)).unwrap();
        assert_eq!(content, lfs_content(&file.path, file.size as usize));
    }
}

/// `git-relay CMD <source>/src.git <destination>/dst.git [extra]` with each
/// server's own credentials for its side (and their CAs, when TLS).
fn relay_pair(cmd: &str, source: &GitServer, destination: &GitServer, extra: &[&str]) -> Run {
    let src = source.url("src.git");
    let dst = destination.url("dst.git");
    let mut args = vec![cmd, &src, &dst];
    args.extend_from_slice(extra);
    run(&args, &pair_env(source, destination).vars())
}

/// The environment of a run between two servers: each side's credentials,
/// and a CA bundle trusting both when either has TLS.
struct PairEnv {
    vars: Vec<(&'static str, String)>,
    _bundle: Option<tempfile::NamedTempFile>,
}

impl PairEnv {
    fn vars(&self) -> Vec<(&str, &str)> {
        self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn pair_env(source: &GitServer, destination: &GitServer) -> PairEnv {
    let mut vars = vec![
        ("GIT_RELAY_SOURCE_TOKEN", source.password().to_owned()),
        ("GIT_RELAY_SOURCE_USERNAME", source.username().to_owned()),
        ("GIT_RELAY_DEST_TOKEN", destination.password().to_owned()),
        ("GIT_RELAY_DEST_USERNAME", destination.username().to_owned()),
    ];
    let cas: Vec<_> = [source.ca_file(), destination.ca_file()]
        .into_iter()
        .flatten()
        .collect();
    let bundle = (!cas.is_empty()).then(|| {
        let file = tempfile::NamedTempFile::new().unwrap();
        let pems: Vec<u8> = cas.iter().flat_map(|p| std::fs::read(p).unwrap()).collect();
        std::fs::write(file.path(), pems).unwrap();
        vars.push(("SSL_CERT_FILE", file.path().to_string_lossy().into_owned()));
        file
    });
    PairEnv {
        vars,
        _bundle: bundle,
    }
}

/// `(oid, size)` of `files`, sorted as [`LfsServer::objects`] lists them.
fn objects_of(files: &[LfsFile]) -> Vec<(String, u64)> {
    let mut objects: Vec<_> = files.iter().map(|f| (f.oid.clone(), f.size)).collect();
    objects.sort();
    objects
}

/// The oids of `files`, sorted.
fn oids_of(files: &[LfsFile]) -> Vec<String> {
    sorted(files.iter().map(|f| f.oid.clone()).collect())
}

fn sorted(mut oids: Vec<String>) -> Vec<String> {
    oids.sort();
    oids
}

fn oids(problems: &serde_json::Value) -> Vec<String> {
    problems
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["oid"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_incremental_run_with_three_new_lfs_files_moves_exactly_three_objects() {
    let (source, destination, work, first) = lfs_pair(&[2_000, 3_000]);
    mirror(&source, &destination, &[]).assert_code(0);
    let new = lfs_commit(&work, &[4_000, 5_000, 6_000], "three more");
    lfs_push(&work);
    source.lfs().clear_requests();
    destination.lfs().clear_requests();

    let run = mirror(&source, &destination, &[]);
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["lfs"]["moved"], 3, "{}", run.stdout);
    assert_eq!(report["lfs"]["bytes"], 15_000);
    assert_eq!(sorted(destination.lfs().uploaded()), oids_of(&new));
    // Neither side was even asked about the objects sent before.
    for lfs in [source.lfs(), destination.lfs()] {
        let asked = lfs
            .requests_of(LfsKind::Batch)
            .into_iter()
            .flat_map(|b| b.oids);
        assert_eq!(sorted(asked.collect()), oids_of(&new));
    }
    let all: Vec<_> = first.iter().chain(&new).cloned().collect();
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&all));
}

#[test]
fn a_no_op_run_and_status_make_no_lfs_request() {
    let (source, destination, _work, _files) = lfs_pair(&[2_000, 3_000]);
    mirror(&source, &destination, &[]).assert_code(0);
    source.lfs().clear_requests();
    destination.lfs().clear_requests();

    let run = mirror(&source, &destination, &[]);
    run.assert_code(0);
    relay_pair("status", &source, &destination, &[]).assert_code(0);
    assert!(
        source.lfs().requests().is_empty(),
        "{:#?}",
        source.lfs().requests()
    );
    assert!(
        destination.lfs().requests().is_empty(),
        "{:#?}",
        destination.lfs().requests()
    );
}

#[test]
fn an_object_missing_at_the_source_is_reported_with_its_commit_and_path_and_the_rest_goes() {
    let (source, destination, work, files) = lfs_pair(&[2_000, 3_000, 4_000]);
    let lost = &files[1];
    source.lfs().delete_object("src.git", &lost.oid);
    let commit = work.rev_parse("HEAD");

    let run = mirror(&source, &destination, &[]);
    run.assert_code(3);
    let report = run.json();
    let missing = &report["lfs"]["missing"];
    assert_eq!(oids(missing), vec![lost.oid.clone()], "{}", run.stdout);
    assert_eq!(missing[0]["path"], lost.path.as_str());
    assert_eq!(missing[0]["commit"], commit.as_str());
    assert_eq!(report["lfs"]["moved"], 2);
    let rest = [files[0].clone(), files[2].clone()];
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&rest));
    let dst = destination.repo_path("dst.git");
    assert_eq!(refs_of(&dst), refs_of(&source.repo_path("src.git")));

    // The text report says the same to a person, on a fresh destination.
    destination.create_bare("dst2.git");
    let text = run_text_to(&source, &destination, "dst2.git", &[]);
    text.assert_code(3);
    let said = format!("{}{}", text.stdout, text.stderr);
    let line = said
        .lines()
        .find(|l| l.contains(&lost.oid[..12]))
        .unwrap_or_else(|| panic!("no line for the lost object:\n{said}"));
    assert!(
        line.contains(&lost.path) && line.contains(&commit[..12]),
        "{line}"
    );
    assert!(line.contains("missing"), "{line}");
}

#[test]
fn with_lfs_always_a_missing_object_holds_the_refs_back() {
    let (source, destination, _work, files) = lfs_pair(&[2_000, 3_000]);
    source.lfs().delete_object("src.git", &files[0].oid);

    let run = mirror(&source, &destination, &["--lfs", "always"]);
    run.assert_code(3);
    let report = run.json();
    assert_eq!(report["lfs"]["held_back"], true, "{}", run.stdout);
    assert_eq!(oids(&report["lfs"]["missing"]), vec![files[0].oid.clone()]);
    assert!(refs_of(&destination.repo_path("dst.git")).is_empty());

    // Once the source has it again, the next run brings everything.
    let content = lfs_content(&files[0].path, files[0].size as usize);
    source.lfs().put_object("src.git", &content);
    mirror(&source, &destination, &["--lfs", "always"]).assert_code(0);
    assert_eq!(
        refs_of(&destination.repo_path("dst.git")),
        refs_of(&source.repo_path("src.git"))
    );
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));
}

/// `mirror <source>/src.git <destination>/REPO` in text.
fn run_text_to(source: &GitServer, destination: &GitServer, repo: &str, extra: &[&str]) -> Run {
    let src = source.url("src.git");
    let dst = destination.url(repo);
    let mut args = vec!["mirror", &src, &dst];
    args.extend_from_slice(extra);
    run(&args, &pair_env(source, destination).vars())
}

#[test]
fn a_destination_that_refuses_pushes_missing_lfs_objects_accepts_git_relays_push() {
    let (source, destination, _work, files) = lfs_pair(&[2_000, 3_000]);
    destination.refuse_pushes_missing_lfs("dst.git");
    mirror(&source, &destination, &[]).assert_code(0);
    assert_eq!(
        refs_of(&destination.repo_path("dst.git")),
        refs_of(&source.repo_path("src.git"))
    );
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));

    // The hook bites: git alone, pointers without objects, is refused.
    destination.create_bare("plain.git");
    destination.refuse_pushes_missing_lfs("plain.git");
    let url = destination.url_with_credentials("plain.git");
    let push = git_ok(&source.repo_path("src.git"), &["push", "--mirror", &url]);
    let said = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "{said}");
    assert!(said.contains(LFS_OBJECTS_MISSING), "{said}");
}

#[test]
fn wrong_lfs_credentials_name_the_side_and_lfs_and_leave_the_destination_alone() {
    let (source, destination, _work, _files) = lfs_pair(&[2_000]);
    let elsewhere = LfsServer::builder().credentials("bob", "other").start();
    let dst_lfs = elsewhere.url("dst.git");
    let run = relay_pair(
        "mirror",
        &source,
        &destination,
        &["--dest-lfs-url", &dst_lfs],
    );
    run.assert_code(1);
    let error = run.stderr.lines().find(|l| l.starts_with("error:"));
    assert!(
        error.is_some_and(|e| e.starts_with("error: destination (") && e.contains("LFS")),
        "{}",
        run.stderr
    );
    assert!(refs_of(&destination.repo_path("dst.git")).is_empty());
    assert!(elsewhere.uploaded().is_empty());

    let src_lfs = elsewhere.url("src.git");
    let run = relay_pair(
        "mirror",
        &source,
        &destination,
        &["--source-lfs-url", &src_lfs],
    );
    run.assert_code(1);
    let error = run.stderr.lines().find(|l| l.starts_with("error:"));
    assert!(
        error.is_some_and(|e| e.starts_with("error: source (") && e.contains("LFS")),
        "{}",
        run.stderr
    );
    assert!(refs_of(&destination.repo_path("dst.git")).is_empty());
    assert!(!run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"));
}

#[test]
fn a_corrupt_object_at_the_source_is_detected_and_not_stored() {
    let (source, destination, _work, files) = lfs_pair(&[2_000, 3_000, 70_000]);
    let bad = &files[2];
    source.lfs().corrupt_object("src.git", &bad.oid);

    let run = mirror(&source, &destination, &["--verbose"]);
    run.assert_code(3);
    // Even when an action fails and everything is told, the actions' own
    // tokens stay secret.
    for lfs in [source.lfs(), destination.lfs()] {
        let token = lfs.action_authorization();
        let token = token.trim_start_matches("Bearer ");
        assert!(!run.stderr.contains(token) && !run.stdout.contains(token));
    }
    let report = run.json();
    let failed = &report["lfs"]["failed"];
    assert_eq!(oids(failed), vec![bad.oid.clone()], "{}", run.stdout);
    assert_eq!(failed[0]["path"], bad.path.as_str());
    assert_eq!(failed[0]["side"], "source");
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(reason.contains("corrupt"), "{reason}");
    // git-relay itself caught it: the upload was cut before its last byte,
    // so the destination never saw a whole wrong object (the harness's
    // check would have answered 422).
    let cut: Vec<_> = destination
        .lfs()
        .requests_of(LfsKind::Upload)
        .into_iter()
        .filter(|r| r.oids == [bad.oid.clone()])
        .collect();
    assert!(
        cut.iter()
            .all(|r| r.status != 422 && r.body_bytes < bad.size),
        "{cut:#?}"
    );
    assert!(!destination.lfs().has_object("dst.git", &bad.oid));
    assert_eq!(
        destination.lfs().objects("dst.git"),
        objects_of(&files[..2])
    );
    assert_eq!(
        refs_of(&destination.repo_path("dst.git")),
        refs_of(&source.repo_path("src.git"))
    );
}

#[test]
fn status_and_dry_run_count_what_would_move_and_move_nothing() {
    let (source, destination, _work, files) = lfs_pair(&[2_000, 3_000, 70_000]);
    let total: u64 = files.iter().map(|f| f.size).sum();
    source.lfs().clear_requests();
    for (cmd, extra) in [
        ("status", &["--json"][..]),
        ("mirror", &["--json", "--dry-run"]),
    ] {
        let run = relay_pair(cmd, &source, &destination, extra);
        // 3: differences, as status says for refs alone.
        run.assert_code(3);
        let report = run.json();
        assert_eq!(report["lfs"]["moved"], 3, "{cmd}: {}", run.stdout);
        assert_eq!(report["lfs"]["bytes"], total, "{cmd}");
        assert!(destination.lfs().requests_of(LfsKind::Upload).is_empty());
        assert!(source.lfs().requests_of(LfsKind::Download).is_empty());
        assert!(destination.lfs().objects("dst.git").is_empty());
        assert!(refs_of(&destination.repo_path("dst.git")).is_empty());
    }
}

#[test]
fn lfs_never_moves_no_object_and_the_pointers_go_alone() {
    let (source, destination, _work, _files) = lfs_pair(&[2_000, 3_000]);
    source.lfs().clear_requests();
    let run = mirror(&source, &destination, &["--lfs", "never"]);
    run.assert_code(0);
    assert!(source.lfs().requests().is_empty());
    assert!(destination.lfs().requests().is_empty());
    assert!(destination.lfs().objects("dst.git").is_empty());
    assert_eq!(
        refs_of(&destination.repo_path("dst.git")),
        refs_of(&source.repo_path("src.git"))
    );
}

#[test]
fn auto_does_not_look_at_a_source_that_cannot_filter_and_always_does() {
    let source = GitServer::builder().lfs(true).start();
    let destination = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 3_000]);
    destination.create_bare("dst.git");
    source.lfs().clear_requests();

    mirror(&source, &destination, &["--lfs", "auto"]).assert_code(0);
    assert!(source.lfs().requests().is_empty());
    assert!(destination.lfs().requests().is_empty());

    assert!(destination.lfs().objects("dst.git").is_empty());

    // A new destination, with always: the source is read, the objects move.
    destination.create_bare("dst2.git");
    let run = run_text_to(
        &source,
        &destination,
        "dst2.git",
        &["--lfs", "always", "--json"],
    );
    run.assert_code(0);
    assert_eq!(run.json()["lfs"]["moved"], 2, "{}", run.stdout);
    assert_eq!(destination.lfs().objects("dst2.git"), objects_of(&files));
}

#[test]
fn a_backup_keeps_lfs_objects_where_git_lfs_looks_and_restores_them_to_a_host() {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 70_000, 300_000]);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.git");
    let backup_arg = backup.to_str().unwrap();
    let src = source.url("src.git");
    let env = credentials(&source);
    let backed_up = run(&["mirror", &src, backup_arg, "--json"], &env);
    backed_up.assert_code(0);
    assert_eq!(backed_up.json()["lfs"]["moved"], 3, "{}", backed_up.stdout);
    for file in &files {
        let stored = backup
            .join("lfs/objects")
            .join(&file.oid[..2])
            .join(&file.oid[2..4])
            .join(&file.oid);
        let content =
            std::fs::read(&stored).unwrap_or_else(|e| panic!("{}: {e}", stored.display()));
        assert_eq!(content, lfs_content(&file.path, file.size as usize));
    }

    // git-lfs reads them from a clone of the backup.
    let clone = scratch.path().join("clone");
    git(scratch.path(), &["clone", "-q", backup_arg, "clone"]);
    git(&clone, &["lfs", "install", "--local"]);
    git(&clone, &["lfs", "fetch", "--all"]);
    git(&clone, &["lfs", "fsck"]);
    git(&clone, &["lfs", "checkout"]);
    for file in &files {
        let content = std::fs::read(clone.join(&file.path)).unwrap();
        assert_eq!(content, lfs_content(&file.path, file.size as usize));
    }

    // The source host is gone: restoring to a new one uploads them.
    let host = GitServer::builder().lfs(true).start();
    host.create_bare("restored.git");
    let restored = host.url("restored.git");
    let restore = run(
        &["mirror", backup_arg, &restored, "--json"],
        &credentials(&host),
    );
    restore.assert_code(0);
    assert_eq!(restore.json()["lfs"]["moved"], 3, "{}", restore.stdout);
    assert_eq!(host.lfs().objects("restored.git"), objects_of(&files));
    lfs_clone_checked(&host, "restored.git");

    // verify reads every object against its oid.
    run(&["verify", backup_arg], &[]).assert_code(0);
    let damaged = &files[1].oid;
    let path = backup
        .join("lfs/objects")
        .join(&damaged[..2])
        .join(&damaged[2..4])
        .join(damaged);
    let mut content = std::fs::read(&path).unwrap();
    content[100] ^= 0xff;
    std::fs::write(&path, content).unwrap();
    let checked = run(&["verify", backup_arg], &[]);
    assert_ne!(checked.code, 0, "{}", checked.stderr);
    let said = format!("{}{}", checked.stdout, checked.stderr);
    assert!(said.contains(&damaged[..12]), "{said}");
}

/// Both servers put their hrefs on another origin (the LFS server's own
/// port, as GitHub's lead to another host), and both speak TLS.
#[test]
fn hrefs_on_another_origin_and_a_tls_pair_work() {
    let source = GitServer::builder()
        .lfs(true)
        .lfs_hrefs_elsewhere(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder()
        .lfs(true)
        .lfs_hrefs_elsewhere(true)
        .start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 70_000]);
    destination.create_bare("dst.git");
    let run = mirror(&source, &destination, &[]);
    run.assert_code(0);
    assert_eq!(run.json()["lfs"]["moved"], 2, "{}", run.stdout);
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));
    let action = destination.lfs().action_authorization().to_owned();
    assert!(!run.stdout.contains(&action) && !run.stderr.contains(&action));

    let source = GitServer::builder()
        .tls(true)
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder().tls(true).lfs(true).start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 70_000]);
    destination.create_bare("dst.git");
    let run = relay_pair("mirror", &source, &destination, &["--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["lfs"]["moved"], 2, "{}", run.stdout);
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));
    lfs_clone_checked(&destination, "dst.git");
}

/// A sweep of an organization (a fake Azure DevOps listing one repository
/// that uses LFS, `Media/assets`) into `dst/{project}/{repo}.git` on the
/// same server.
fn sweep_one_lfs_repository() -> (GitServer, Vec<LfsFile>, Run) {
    use support::forge::{FakeForge, FakeRepo, Kind};
    let server = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let (_work, files) = lfs_source(&server, "src/Media/assets.git", &[2_000, 70_000]);
    server.create_bare("dst/Media/assets.git");
    let repo = FakeRepo::new("Media", "assets", &server.url("src/Media/assets.git"));
    let fake = FakeForge::builder(Kind::AzureDevOps, "fabrikam", server.password())
        .repo(repo)
        .start();
    let template = format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    );
    let args = [
        "mirror-all",
        "--source-kind",
        "azure-devops",
        &fake.scope_url(),
        &template,
        "--json",
    ];
    let run = run(&args, &credentials(&server));
    (server, files, run)
}

/// mirror-all moves the LFS objects of the repositories it sweeps like a
/// single mirror, and its report and progress say so.
#[test]
fn mirror_all_moves_the_lfs_objects_of_the_repositories_it_sweeps() {
    let (server, files, run) = sweep_one_lfs_repository();
    run.assert_code(0);
    let report = run.json();
    let lfs = &report["repositories"][0]["report"]["lfs"];
    assert_eq!(lfs["moved"], 2, "{}", run.stdout);
    assert_eq!(
        server.lfs().objects("dst/Media/assets.git"),
        objects_of(&files)
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("Media/assets: done"));
    assert!(
        line.is_some_and(|l| l.contains("2 LFS objects")),
        "{}",
        run.stderr
    );
}

/// Issue 12: "LFS objects and bytes moved in ... mirror-all's table".
#[test]
fn mirror_all_table_counts_the_lfs_objects_moved() {
    let (_server, _files, run) = sweep_one_lfs_repository();
    run.assert_code(0);
    let table: Vec<&str> = run
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("repository"))
        .collect();
    assert!(table[0].contains("LFS"), "{}", run.stderr);
    let row = table
        .iter()
        .find(|l| l.starts_with("Media/assets"))
        .unwrap();
    assert!(row.contains("70.3 KiB"), "{row}");
}

/// Issue 12's memory bound: one 300 MiB object and 200 of 1 MiB relayed
/// with a peak resident memory of at most 64 MiB. The objects are put in
/// the source's store directly and their pointers committed by hand: the
/// test is about the relay, and git-lfs would take most of the time.
#[test]
fn one_300_mib_object_and_200_of_1_mib_are_relayed_in_64_mib() {
    const MIB: usize = 1 << 20;
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder().lfs(true).start();
    let src = source.create_bare("src.git");
    destination.create_bare("dst.git");
    let work = WorkRepo::new();
    let mut expected = Vec::new();
    let sizes = std::iter::once(300 * MIB).chain(std::iter::repeat_n(MIB, 200));
    for (i, size) in sizes.enumerate() {
        let path = format!("lfs/object-{i:03}.bin");
        let content = lfs_content(&path, size);
        let oid = source.lfs().put_object("src.git", &content);
        let pointer = lfs_pointer(&oid, size as u64);
        std::fs::create_dir_all(work.path().join("lfs")).unwrap();
        std::fs::write(work.path().join(&path), pointer).unwrap();
        expected.push((oid, size as u64));
    }
    expected.sort();
    git(work.path(), &["add", "lfs"]);
    work.commit_file("README", b"big LFS objects\n", "pointers");
    work.push_mirror_to(&src);

    let (src_url, dst_url) = (source.url("src.git"), destination.url("dst.git"));
    let env = pair_env(&source, &destination);
    let started = std::time::Instant::now();
    let (run, peak) = run_measuring_memory(&["mirror", &src_url, &dst_url, "--json"], &env.vars());
    let took = started.elapsed();
    run.assert_code(0);
    eprintln!(
        "relayed 500 MiB of LFS objects in {took:?}, peak RSS {} KiB",
        peak / 1024
    );
    assert_eq!(run.json()["lfs"]["moved"], 201, "{}", run.stdout);
    assert_eq!(destination.lfs().objects("dst.git"), expected);
    assert!(
        peak <= 64 * MIB as u64,
        "peak RSS {} MiB",
        peak / MIB as u64
    );
    // 201 objects: batches of at most 100, as hosts take them.
    for lfs in [source.lfs(), destination.lfs()] {
        let batches = lfs.requests_of(LfsKind::Batch);
        assert!(batches.len() >= 3 && batches.iter().all(|b| b.oids.len() <= 100));
    }
}

/// An object the destination already has is counted as present and not
/// sent again; the text report says how many moved and how much.
#[test]
fn objects_the_destination_has_are_not_sent_again() {
    let (source, destination, _work, files) = lfs_pair(&[2_000, 3_000, 4_000]);
    let content = lfs_content(&files[0].path, files[0].size as usize);
    destination.lfs().put_object("dst.git", &content);

    let run = relay_pair("mirror", &source, &destination, &[]);
    run.assert_code(0);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("2 LFS objects (6.8 KiB) moved"), "{said}");
    let uploaded = destination.lfs().uploaded();
    assert_eq!(uploaded.len(), 2, "{uploaded:?}");
    assert!(!uploaded.contains(&files[0].oid));
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));
}

/// The same, in the JSON report: `present` counts it.
#[test]
fn the_json_report_counts_present_objects() {
    let (source, destination, _work, files) = lfs_pair(&[2_000, 3_000, 4_000]);
    let content = lfs_content(&files[2].path, files[2].size as usize);
    destination.lfs().put_object("dst.git", &content);

    let run = mirror(&source, &destination, &[]);
    run.assert_code(0);
    let lfs = &run.json()["lfs"];
    assert_eq!(lfs["objects"], 3, "{lfs}");
    assert_eq!(lfs["present"], 1, "{lfs}");
    assert_eq!(lfs["moved"], 2, "{lfs}");
    assert_eq!(lfs["bytes"], 5_000, "{lfs}");
}

/// Sources that speak protocol v0 filter too (git http-backend without v2).
#[test]
fn a_protocol_v0_source_is_read_for_pointers_too() {
    let source = GitServer::builder()
        .lfs(true)
        .protocol_v2(false)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 3_000]);
    destination.create_bare("dst.git");
    mirror(&source, &destination, &[]).assert_code(0);
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));
}

/// A destination with no LFS server where git-lfs looks: a clear error
/// before any ref moves (pointers alone would be broken files there).
#[test]
fn a_destination_without_an_lfs_server_is_an_error_before_any_ref_moves() {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::start();
    lfs_source(&source, "src.git", &[2_000]);
    destination.create_bare("dst.git");
    let run = mirror(&source, &destination, &[]);
    run.assert_code(1);
    let error = run.stderr.lines().find(|l| l.starts_with("error:"));
    assert!(
        error.is_some_and(|e| e.starts_with("error: destination (") && e.contains("LFS")),
        "{}",
        run.stderr
    );
    assert!(refs_of(&destination.repo_path("dst.git")).is_empty());
}

/// A public source (anonymous reads, git and LFS): no source credentials
/// needed.
#[test]
fn a_public_source_is_read_without_credentials() {
    let source = GitServer::builder()
        .lfs(true)
        .anonymous_read(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 3_000]);
    destination.create_bare("dst.git");
    source.lfs().clear_requests();
    let (src, dst) = (source.url("src.git"), destination.url("dst.git"));
    let env = [
        ("GIT_RELAY_DEST_TOKEN", destination.password()),
        ("GIT_RELAY_DEST_USERNAME", destination.username()),
    ];
    run(&["mirror", &src, &dst], &env).assert_code(0);
    assert_eq!(destination.lfs().objects("dst.git"), objects_of(&files));
    // The destination's credentials never go to the source.
    let batches = source.lfs().requests_of(LfsKind::Batch);
    assert!(!batches.is_empty());
    assert!(
        batches.iter().all(|r| r.authorization.is_none()),
        "{batches:#?}"
    );
}

/// Backups are incremental for LFS too: a second run fetches only the new
/// objects, and a run with nothing new asks the LFS server nothing.
#[test]
fn a_backup_run_fetches_only_new_lfs_objects_and_a_no_op_none() {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let (work, _files) = lfs_source(&source, "src.git", &[2_000, 3_000]);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.git");
    let args = [
        "mirror",
        &source.url("src.git"),
        backup.to_str().unwrap(),
        "--json",
    ];
    run(&args, &credentials(&source)).assert_code(0);
    let new = lfs_commit(&work, &[4_000, 5_000, 6_000], "three more");
    lfs_push(&work);
    source.lfs().clear_requests();

    let again = run(&args, &credentials(&source));
    again.assert_code(0);
    assert_eq!(again.json()["lfs"]["moved"], 3, "{}", again.stdout);
    assert_eq!(sorted(source.lfs().downloaded()), oids_of(&new));

    source.lfs().clear_requests();
    run(&args, &credentials(&source)).assert_code(0);
    assert!(source.lfs().requests().is_empty());
}

/// A force-pushed branch whose new history has other LFS files: `--force`
/// brings their objects with it.
#[test]
fn a_rewritten_branch_brings_the_objects_of_its_new_history() {
    let (source, destination, work, _files) = lfs_pair(&[2_000, 3_000]);
    mirror(&source, &destination, &[]).assert_code(0);
    git(work.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    let new = lfs_commit(&work, &[4_000, 5_000], "rewritten");
    git(work.path(), &["push", "-q", "-f", "origin", "main"]);
    destination.lfs().clear_requests();

    let run = mirror(&source, &destination, &["--force"]);
    run.assert_code(0);
    assert_eq!(run.json()["lfs"]["moved"], 2, "{}", run.stdout);
    assert_eq!(sorted(destination.lfs().uploaded()), oids_of(&new));
    lfs_clone_checked(&destination, "dst.git");
}

/// `--dest-lfs-url` names an LFS server elsewhere (the destination's
/// credentials sign its requests); an object two paths share moves once.
#[test]
fn dest_lfs_url_names_the_server_and_a_shared_object_moves_once() {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::start();
    let (work, files) = lfs_source(&source, "src.git", &[2_000, 3_000]);
    let copy = std::fs::read(work.path().join(&files[0].path)).unwrap();
    work.commit_file("lfs/copy.bin", &copy, "the same content again");
    lfs_push(&work);
    destination.create_bare("dst.git");
    let elsewhere = LfsServer::start();

    let url = elsewhere.url("media");
    let run = mirror(&source, &destination, &["--dest-lfs-url", &url]);
    run.assert_code(0);
    let lfs = &run.json()["lfs"];
    assert_eq!(
        (&lfs["objects"], &lfs["moved"]),
        (&2.into(), &2.into()),
        "{lfs}"
    );
    assert_eq!(elsewhere.objects("media"), objects_of(&files));
    assert_eq!(elsewhere.uploaded().len(), 2);
}

/// An LFS URL of another scheme is refused for what it is.
#[test]
fn an_lfs_url_of_another_scheme_is_refused_as_such() {
    let run = run(
        &[
            "mirror",
            "http://127.0.0.1:1/src.git",
            "http://127.0.0.1:1/dst.git",
            "--dest-lfs-url",
            "ftp://files.example/dst.git/info/lfs",
        ],
        &[],
    );
    run.assert_code(2);
    let said = &run.stderr;
    assert!(!said.contains("SSH"), "{said}");
    assert!(
        said.contains("unsupported URL scheme `ftp`") || said.contains("http:// or https://"),
        "{said}"
    );
}

/// An object missing at the source that only an older commit needs (its
/// file deleted since) is reported with that commit; with `--lfs always`
/// the text report says why each ref was held back.
#[test]
fn a_missing_object_of_an_older_commit_is_named_with_that_commit() {
    let (source, destination, work, files) = lfs_pair(&[2_000, 3_000]);
    let old = work.rev_parse("HEAD");
    git(work.path(), &["rm", "-q", &files[0].path]);
    git(work.path(), &["commit", "-q", "-m", "drop it"]);
    work.branch("side");
    lfs_push(&work);
    source.lfs().delete_object("src.git", &files[0].oid);

    let run = relay_pair("mirror", &source, &destination, &["--lfs", "always"]);
    run.assert_code(3);
    let said = format!("{}{}", run.stdout, run.stderr);
    let place = format!("({} in {})", files[0].path, &old[..12]);
    assert!(
        said.lines()
            .any(|l| l.contains(&files[0].oid[..12]) && l.contains(&place)),
        "{said}"
    );
    for branch in ["refs/heads/main", "refs/heads/side"] {
        assert!(
            said.lines()
                .any(|l| l.contains(branch) && l.contains("held back")),
            "{said}"
        );
    }
    assert!(refs_of(&destination.repo_path("dst.git")).is_empty());
}

/// Local sources give their LFS objects too: a backup copied to another
/// backup, and a git-lfs user's work tree (`.git/lfs/objects`) mirrored to
/// a host.
#[test]
fn a_backup_of_a_backup_and_a_work_tree_bring_their_lfs_objects() {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let (work, files) = lfs_source(&source, "src.git", &[2_000, 3_000]);
    let scratch = tempfile::tempdir().unwrap();
    let (first, second) = (scratch.path().join("a.git"), scratch.path().join("b.git"));
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
    let src = source.url("src.git");
    run(&["mirror", &src, first], &credentials(&source)).assert_code(0);
    let copied = run(&["mirror", first, second, "--json"], &[]);
    copied.assert_code(0);
    assert_eq!(copied.json()["lfs"]["moved"], 2, "{}", copied.stdout);
    for file in &files {
        let oid = &file.oid;
        let stored = format!("{second}/lfs/objects/{}/{}/{oid}", &oid[..2], &oid[2..4]);
        let content = std::fs::read(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(content, lfs_content(&file.path, file.size as usize));
    }

    let host = GitServer::builder().lfs(true).start();
    host.create_bare("dst.git");
    let work_tree = work.path().to_str().unwrap();
    let pushed = run(
        &["mirror", work_tree, &host.url("dst.git"), "--json"],
        &credentials(&host),
    );
    pushed.assert_code(0);
    assert_eq!(pushed.json()["lfs"]["moved"], 2, "{}", pushed.stdout);
    assert_eq!(host.lfs().objects("dst.git"), objects_of(&files));
}

/// When no object a run's pointers name exists anywhere (giftless answers
/// such a batch 404 as a whole, "Cannot find any of the requested objects",
/// where GitHub answers 200 with an error per object), `--lfs always`
/// reports each as missing and holds the refs back, while `auto` takes the
/// pointer-shaped files for plain ones, as the test fixtures of a
/// repository that never used LFS are: the refs go, and nothing is said.
#[test]
fn pointers_whose_objects_exist_nowhere_are_missing_in_always_and_plain_files_in_auto() {
    let (source, destination, _work, files) = lfs_pair(&[2_000]);
    source.lfs().delete_object("src.git", &files[0].oid);

    let always = mirror(&source, &destination, &["--lfs", "always"]);
    always.assert_code(3);
    assert_eq!(
        oids(&always.json()["lfs"]["missing"]),
        vec![files[0].oid.clone()]
    );
    assert!(refs_of(&destination.repo_path("dst.git")).is_empty());

    let auto = mirror(&source, &destination, &[]);
    auto.assert_code(0);
    assert!(auto.json().get("lfs").is_none(), "{}", auto.stdout);
    assert_eq!(
        refs_of(&destination.repo_path("dst.git")),
        refs_of(&source.repo_path("src.git"))
    );
}

/// A repository that never used LFS but holds files shaped like pointers
/// (a parser's test fixtures, as this project's own fuzz corpus does) is
/// mirrored into a backup as it is: nothing to move, nothing reported, exit
/// 0. `--lfs always` looks and reports them.
#[test]
fn pointer_shaped_fixtures_of_a_repository_without_lfs_are_plain_files() {
    let work = WorkRepo::new();
    let fixture = lfs_pointer(&sha256_hex(b"not stored anywhere"), 19);
    work.commit_file(
        "tests/fixtures/pointer.txt",
        fixture.as_bytes(),
        "a fixture",
    );
    let backup = tempfile::tempdir().unwrap();
    let dst = backup.path().join("b.git");
    let (src, dst) = (work.path().to_str().unwrap(), dst.to_str().unwrap());

    let auto = run(&["mirror", src, dst, "--json"], &[]);
    auto.assert_code(0);
    assert!(auto.json().get("lfs").is_none(), "{}", auto.stdout);
    assert!(!auto.stderr.contains("LFS object"), "{}", auto.stderr);

    let other = backup.path().join("c.git");
    let other = other.to_str().unwrap();
    let always = run(&["mirror", src, other, "--json", "--lfs", "always"], &[]);
    always.assert_code(3);
    assert_eq!(
        always.json()["lfs"]["missing"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(refs_of(std::path::Path::new(other)).is_empty(), "held back");
}

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

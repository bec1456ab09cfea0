//! Repositories that several test files start from, and builders for the
//! shapes of history that stress a mirror: big incompressible histories,
//! merges, thousands of tags, branches merged nowhere, one huge commit.
//!
//! Builders stay fast (a few seconds at most on 2 cores): big data is made
//! with [`noise`](super::noise) in few commits, and many refs in one
//! `git fast-import` process rather than one process per ref.

use std::fmt::Write as _;
use std::path::Path;

use super::repo::git_with_input;
use super::{git, GitServer, WorkRepo};

/// `src.git` on `server` with two branches, a lightweight and an annotated
/// tag, and a pull-request ref (a host-internal namespace mirrors leave out
/// by default). Returns the work tree it was pushed from, for later changes.
pub fn populated_source(server: &GitServer) -> WorkRepo {
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
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    git(
        &src,
        &["update-ref", "refs/pull/1/head", "refs/heads/feature"],
    );
    work
}

/// Adds `commits` commits to the current branch whose new blobs, all
/// incompressible, total `total_bytes`; returns their oids, oldest first.
/// A pack of this history is about `total_bytes` long, whatever is done to
/// compress it.
pub fn noise_history(work: &WorkRepo, total_bytes: usize, commits: usize) -> Vec<String> {
    assert!(commits > 0, "a history has at least one commit");
    let each = total_bytes / commits;
    (0..commits)
        .map(|i| work.commit_noise(1, each, &format!("noise {}", i + 1)))
        .collect()
}

/// One commit whose new blobs alone total `bytes` (in files of at most
/// 1 MiB), on the current branch: a commit no push smaller than it can
/// carry. Returns its oid.
pub fn oversized_commit(work: &WorkRepo, bytes: usize) -> String {
    const FILE: usize = 1 << 20;
    let files = bytes.div_ceil(FILE);
    work.commit_noise(
        files,
        bytes.div_ceil(files),
        "one commit larger than any push",
    )
}

/// Lightweight tags `<prefix>-<n>` on every `every`-th of `commits` (the
/// `every`-th, the 2×`every`-th...), as release tags a mirror can use as
/// checkpoints; returns the tag names.
pub fn tag_every(work: &WorkRepo, commits: &[String], every: usize, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut input = String::new();
    for (i, oid) in commits.iter().enumerate().skip(every - 1).step_by(every) {
        let name = format!("{prefix}-{}", i + 1);
        writeln!(input, "create refs/tags/{name} {oid}").unwrap();
        names.push(name);
    }
    git_with_input(work.path(), &["update-ref", "--stdin"], input.as_bytes());
    names
}

/// `count` tags named `<prefix>-00001`... in `repo` (bare or not), spread
/// round-robin over `targets`; every `annotated_every`-th one is an
/// annotated tag object (0: none). One `git fast-import` process makes them
/// all, so 5,000+ take well under a second.
pub fn many_tags(
    repo: &Path,
    prefix: &str,
    count: usize,
    annotated_every: usize,
    targets: &[String],
) -> Vec<String> {
    assert!(!targets.is_empty(), "tags need commits to point at");
    let mut names = Vec::with_capacity(count);
    let mut input = String::new();
    for i in 1..=count {
        let name = format!("{prefix}-{i:05}");
        let target = &targets[i % targets.len()];
        if annotated_every > 0 && i % annotated_every == 0 {
            let message = format!("release {name}\n");
            write!(
                input,
                "tag {name}\nfrom {target}\ntagger C O Mitter <committer@example.com> 1700000000 +0000\ndata {}\n{message}\n",
                message.len()
            )
            .unwrap();
        } else {
            write!(input, "reset refs/tags/{name}\nfrom {target}\n\n").unwrap();
        }
        names.push(name);
    }
    git_with_input(repo, &["fast-import", "--quiet"], input.as_bytes());
    names
}

/// `branches` side branches `side-<n>` off the current branch, each with
/// `rounds` rounds of: a commit on the side branch, a commit on the current
/// branch, and a merge of the current branch into the side branch. The side
/// branches are merged nowhere; the work tree ends on the branch it
/// started on.
pub fn merge_heavy_branches(work: &WorkRepo, branches: usize, rounds: usize) -> Vec<String> {
    let base = git(work.path(), &["symbolic-ref", "--short", "HEAD"]);
    let mut names = Vec::new();
    for b in 1..=branches {
        let side = format!("side-{b}");
        work.branch(&side);
        for r in 1..=rounds {
            work.checkout(&side);
            work.commit(&format!("{side} work {r}"));
            work.checkout(&base);
            work.commit(&format!("{base} work for {side} {r}"));
            work.checkout(&side);
            work.merge(&base, &format!("merge {base} into {side} ({r})"));
        }
        work.checkout(&base);
        names.push(side);
    }
    names
}

/// A branch `name` from the current branch's root commit with `commits`
/// commits of its own, merged nowhere; the work tree stays where it was.
pub fn unmerged_branch(work: &WorkRepo, name: &str, commits: usize) -> String {
    let base = git(work.path(), &["symbolic-ref", "--short", "HEAD"]);
    let root = git(work.path(), &["rev-list", "--max-parents=0", "HEAD"]);
    let root = root.lines().next().expect("a root commit").to_owned();
    git(work.path(), &["checkout", "-q", "-b", name, &root]);
    let mut tip = root;
    for i in 1..=commits {
        tip = work.commit(&format!("{name} {i}"));
    }
    work.checkout(&base);
    tip
}

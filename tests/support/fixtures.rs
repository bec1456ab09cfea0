//! Repositories that several test files start from, and builders for the
//! shapes of history that stress a mirror: big incompressible histories,
//! merges, thousands of tags, branches merged nowhere, one huge commit.
//!
//! Builders stay fast (a few seconds at most on 2 cores): big data is made
//! with [`noise`](super::noise) in few commits, and many refs in one
//! `git fast-import` process rather than one process per ref.

use std::fmt::Write as _;
use std::path::Path;

use tempfile::TempDir;

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

/// One file stored with Git LFS by [`lfs_commit`]: its path in the work
/// tree, and the oid and size of its LFS object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LfsFile {
    pub path: String,
    pub oid: String,
    pub size: u64,
}

/// The content [`lfs_commit`] writes to `path`: `size` incompressible bytes
/// that depend only on the path, so every file has an object of its own and
/// the same fixture gives the same oids on every run.
pub fn lfs_content(path: &str, size: usize) -> Vec<u8> {
    // FNV-1a of the path; noise() wants a seed that is never zero.
    let seed = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    super::noise(size, seed | 1)
}

/// The text of the LFS pointer git-lfs commits for an object, for tests
/// that commit one by hand (a pointer whose object was never uploaded).
pub fn lfs_pointer(oid: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
}

/// A work repository set up as a user of Git LFS would: `git lfs install
/// --local` (its filters and hooks in the repository's own config, never a
/// global one), `lfs/*.bin` tracked with `git lfs track` and that
/// `.gitattributes` committed, and `origin` set to `repo` on `server` with
/// the credentials in the URL, which git-lfs also uses for the LFS endpoint
/// it derives from it. `server` must have been built with
/// [`lfs`](super::ServerBuilder::lfs); `repo` need not exist yet.
pub fn lfs_work_repo(server: &GitServer, repo: &str) -> WorkRepo {
    let work = WorkRepo::new();
    lfs_configure(work.path(), server);
    git(work.path(), &["lfs", "track", "lfs/*.bin"]);
    let attributes = std::fs::read(work.path().join(".gitattributes"))
        .expect("git lfs track wrote .gitattributes");
    work.commit_file(
        ".gitattributes",
        &attributes,
        "Track lfs/*.bin with Git LFS",
    );
    let url = server.url_with_credentials(repo);
    git(work.path(), &["remote", "add", "origin", &url]);
    work
}

/// Sets a repository up for git-lfs and `server`: filters and hooks in its
/// own config, the server's CA when it has TLS (git-lfs reads git's
/// `http.sslCAInfo`), and no lock verification (giftless has no locks API,
/// and asking would only add a request to every push).
fn lfs_configure(repo: &Path, server: &GitServer) {
    assert!(
        super::git_ok(repo, &["lfs", "version"]).status.success(),
        "git-lfs is not installed: run `bash tests/lfs/install.sh`"
    );
    git(repo, &["lfs", "install", "--local"]);
    git(repo, &["config", "lfs.locksverify", "false"]);
    if let Some(ca) = server.ca_file() {
        let ca = ca.to_str().expect("a UTF-8 temporary path");
        git(repo, &["config", "http.sslCAInfo", ca]);
    }
}

/// Commits one new LFS file per entry of `sizes` (bytes) in one commit,
/// named `lfs/file-<n>.bin` after the files already there, with
/// [`lfs_content`]; returns them in order.
pub fn lfs_commit(work: &WorkRepo, sizes: &[usize], message: &str) -> Vec<LfsFile> {
    assert!(!sizes.is_empty(), "at least one LFS file");
    let dir = work.path().join("lfs");
    std::fs::create_dir_all(&dir).expect("create lfs/");
    let first = std::fs::read_dir(&dir).expect("read lfs/").count() + 1;
    let mut files = Vec::with_capacity(sizes.len());
    let mut last_content = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let path = format!("lfs/file-{}.bin", first + i);
        let content = lfs_content(&path, size);
        let oid = super::sha256_hex(&content);
        if i + 1 == sizes.len() {
            last_content = content;
        } else {
            std::fs::write(work.path().join(&path), content).expect("write LFS file");
        }
        files.push(LfsFile {
            path,
            oid,
            size: size as u64,
        });
    }
    // One `git add` for all but the last (one git-lfs filter process, not
    // one per file); commit_file adds the last and commits them all.
    let (last, rest) = files.split_last().expect("at least one LFS file");
    if !rest.is_empty() {
        let mut add = vec!["add", "--"];
        add.extend(rest.iter().map(|f| f.path.as_str()));
        git(work.path(), &add);
    }
    work.commit_file(&last.path, &last_content, message);
    files
}

/// Pushes every branch and tag to `origin`; git-lfs's pre-push hook uploads
/// the LFS objects they need first, as it does for a user.
pub fn lfs_push(work: &WorkRepo) {
    git(work.path(), &["push", "-q", "origin", "--all"]);
    git(work.path(), &["push", "-q", "origin", "--tags"]);
}

/// `repo` on `server` (built with [`lfs`](super::ServerBuilder::lfs)) with
/// one commit of LFS files of `sizes` bytes, pushed with git and git-lfs.
/// Returns the work repository, for later commits, and the files.
pub fn lfs_source(server: &GitServer, repo: &str, sizes: &[usize]) -> (WorkRepo, Vec<LfsFile>) {
    server.create_bare(repo);
    let work = lfs_work_repo(server, repo);
    let files = lfs_commit(&work, sizes, "LFS files");
    lfs_push(&work);
    (work, files)
}

/// Clones `repo` from `server` as a user of git-lfs would check a mirror:
/// `git clone`, then `git lfs fetch --all` (every LFS object of every ref)
/// and `git lfs fsck` (each object present and hashing to its oid), then
/// `git lfs checkout` so the work tree holds the real contents. Panics with
/// git-lfs's messages if any step fails; returns the clone.
pub fn lfs_clone_checked(server: &GitServer, repo: &str) -> TempDir {
    let clone = tempfile::Builder::new()
        .prefix("git-relay-lfs-clone-")
        .tempdir()
        .expect("create clone directory");
    let url = server.url_with_credentials(repo);
    match server.ca_file() {
        Some(ca) => {
            let ca = format!("http.sslCAInfo={}", ca.display());
            git(clone.path(), &["-c", &ca, "clone", "-q", &url, "."]);
        }
        None => {
            git(clone.path(), &["clone", "-q", &url, "."]);
        }
    }
    lfs_configure(clone.path(), server);
    git(clone.path(), &["lfs", "fetch", "--all"]);
    git(clone.path(), &["lfs", "fsck"]);
    git(clone.path(), &["lfs", "checkout"]);
    clone
}

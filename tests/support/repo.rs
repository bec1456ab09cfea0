//! Repository helpers built on the git CLI.
//!
//! Every git process gets an environment built from scratch: fixed identities
//! and dates so object ids repeat from run to run, no system or user config,
//! and no inherited `GIT_*` variables (a test run from inside a git hook would
//! otherwise operate on the hook's repository).

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tempfile::TempDir;

/// Seconds since the epoch of the first commit a [`WorkRepo`] makes; each
/// later one is a minute younger, so date-ordered walks are deterministic.
const EPOCH: u64 = 1_700_000_000;

/// An empty HOME shared by the git processes of this test binary. It is never
/// removed (statics are not dropped), which is why it lives in cargo's target
/// temp directory rather than in /tmp.
fn home() -> &'static Path {
    static HOME: OnceLock<TempDir> = OnceLock::new();
    HOME.get_or_init(|| {
        let parent = env!("CARGO_TARGET_TMPDIR");
        fs::create_dir_all(parent).expect("create cargo's target temp directory");
        tempfile::Builder::new()
            .prefix("git-home-")
            .tempdir_in(parent)
            .expect("create HOME for git")
    })
    .path()
}

/// A `git` command running in `dir` with the deterministic environment.
fn git_command(dir: &Path, args: &[&str]) -> Command {
    let date = format!("{EPOCH} +0000");
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", home())
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_COUNT", "2")
        .env("GIT_CONFIG_KEY_0", "init.defaultBranch")
        .env("GIT_CONFIG_VALUE_0", "main")
        // A background gc could still be writing when a test's TempDir goes.
        .env("GIT_CONFIG_KEY_1", "gc.auto")
        .env("GIT_CONFIG_VALUE_1", "0")
        // Refused credentials must fail the command, not wait at a prompt.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_NAME", "C O Mitter")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_COMMITTER_DATE", &date);
    if let Some(tmp) = std::env::var_os("TMPDIR") {
        cmd.env("TMPDIR", tmp);
    }
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Panics with everything git said unless it succeeded; returns trimmed stdout.
fn check(output: &Output, dir: &Path, args: &[&str]) -> String {
    assert!(
        output.status.success(),
        "git {args:?} in {} failed ({})\n--- stderr\n{}--- stdout\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Runs git in `dir`; panics with its stderr on failure, returns its stdout
/// trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    check(&run(git_command(dir, args)), dir, args)
}

/// Runs git in `dir` and returns whatever happened, for tests that expect
/// failure.
pub fn git_ok(dir: &Path, args: &[&str]) -> Output {
    run(git_command(dir, args))
}

/// All refs of a repository as `(refname, oid)`, sorted by name. Symbolic refs
/// such as HEAD are not refs to `for-each-ref` and so are not listed.
pub fn refs_of(repo: &Path) -> Vec<(String, String)> {
    let out = git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    let mut refs: Vec<_> = out
        .lines()
        .map(|line| {
            let (name, oid) = line.split_once(' ').expect("for-each-ref line");
            (name.to_owned(), oid.to_owned())
        })
        .collect();
    refs.sort();
    refs
}

/// Runs git in `dir` with `input` on its stdin; panics with its stderr on
/// failure, returns its stdout trimmed. For `fast-import` and
/// `update-ref --stdin`, which make thousands of refs in one process.
pub fn git_with_input(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut cmd = git_command(dir, args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait for git");
    let _ = writer.join();
    check(&output, dir, args)
}

/// Checks a repository with `git fsck --strict`; panics on any problem.
pub fn fsck_strict(repo: &Path) {
    git(repo, &["fsck", "--strict", "--no-dangling"]);
}

/// Installs an executable hook. A `#!/bin/sh` line is added when the script
/// has none, so tests can pass just the commands.
pub fn install_hook(bare: &Path, name: &str, script: &str) {
    let hooks = bare.join("hooks");
    fs::create_dir_all(&hooks).expect("create hooks directory");
    let path = hooks.join(name);
    let script = if script.starts_with("#!") {
        script.to_owned()
    } else {
        format!("#!/bin/sh\n{script}")
    };
    fs::write(&path, script).expect("write hook");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("make hook executable");
}

/// A non-bare repository in its own temporary directory, for making history
/// to push.
pub struct WorkRepo {
    dir: TempDir,
    /// Commits made so far; sets file names and commit dates.
    commits: Cell<u64>,
}

impl WorkRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> WorkRepo {
        let dir = tempfile::Builder::new()
            .prefix("git-relay-work-")
            .tempdir()
            .expect("create work tree");
        git(dir.path(), &["init", "-q"]);
        WorkRepo {
            dir,
            commits: Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Commits a new file named after the commit's number; returns its oid.
    pub fn commit(&self, message: &str) -> String {
        let file = format!("file-{}.txt", self.commits.get() + 1);
        self.commit_file(&file, format!("{message}\n").as_bytes(), message)
    }

    /// Writes `contents` to `path` (relative to the work tree, parents created
    /// as needed) and commits it; returns the commit's oid. Panics if that
    /// changes nothing.
    pub fn commit_file(&self, path: &str, contents: &[u8], message: &str) -> String {
        let file = self.path().join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).expect("create parent directories");
        }
        fs::write(&file, contents).expect("write file");
        self.git(&["add", "--", path]);

        let n = self.commits.get() + 1;
        self.commits.set(n);
        let date = format!("{} +0000", EPOCH + 60 * n);
        let args = ["commit", "-q", "-m", message];
        let mut cmd = git_command(self.path(), &args);
        cmd.env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        check(&run(cmd), self.path(), &args);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Creates a branch at HEAD without switching to it.
    pub fn branch(&self, name: &str) {
        self.git(&["branch", name]);
    }

    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "-q", name]);
    }

    /// Creates a lightweight tag at HEAD.
    pub fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    /// Creates an annotated tag object for HEAD.
    pub fn annotated_tag(&self, name: &str, message: &str) {
        self.git(&["tag", "-a", name, "-m", message]);
    }

    /// Merges `branch` into the current branch with a merge commit (never a
    /// fast-forward); returns the merge's oid.
    pub fn merge(&self, branch: &str, message: &str) -> String {
        let n = self.commits.get() + 1;
        self.commits.set(n);
        let date = format!("{} +0000", EPOCH + 60 * n);
        let args = ["merge", "-q", "--no-ff", "-m", message, branch];
        let mut cmd = git_command(self.path(), &args);
        cmd.env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        check(&run(cmd), self.path(), &args);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Commits `files` new files of `bytes_each` incompressible bytes (see
    /// [`noise`](super::noise)) in one commit; returns its oid.
    pub fn commit_noise(&self, files: usize, bytes_each: usize, message: &str) -> String {
        let n = self.commits.get() + 1;
        for i in 0..files {
            let seed = (n << 20) + i as u64 + 1;
            let file = self.path().join(format!("noise-{n}-{i}.bin"));
            fs::write(&file, super::noise(bytes_each, seed)).expect("write noise");
        }
        self.git(&["add", "-A"]);
        self.commits.set(n);
        let date = format!("{} +0000", EPOCH + 60 * n);
        let args = ["commit", "-q", "-m", message];
        let mut cmd = git_command(self.path(), &args);
        cmd.env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        check(&run(cmd), self.path(), &args);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The oid `rev` names.
    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev])
    }

    /// Makes `bare` (a local path) an exact copy of this repository's refs.
    pub fn push_mirror_to(&self, bare: &Path) {
        self.git(&["push", "-q", "--mirror", path_arg(bare)]);
    }

    fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }
}

impl Default for WorkRepo {
    fn default() -> Self {
        WorkRepo::new()
    }
}

/// Turns a path into the `&str` argument the helpers take.
pub(crate) fn path_arg(path: &Path) -> &str {
    path.to_str().expect("path is UTF-8")
}

/// The ref updates of every push into a bare repository, in the order the
/// client sent them, as its `pre-receive` hook saw them: which branch a
/// mirror created first, and in how many pushes.
pub struct RefLog {
    file: PathBuf,
}

/// One ref update of a push: old oid, new oid, ref name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefLog {
    /// Installs a `pre-receive` hook in `bare` (replacing any) that appends
    /// each push's commands to a log in the repository directory.
    pub fn install(bare: &Path) -> RefLog {
        let file = bare.join("git-relay-test-reflog");
        fs::write(&file, "").expect("create the ref log");
        // A line "push" starts each push, then its commands as received.
        let script = format!(
            "{{ echo push; cat; }} >> '{}'\n",
            path_arg(&file).replace('\'', "'\\''")
        );
        install_hook(bare, "pre-receive", &script);
        RefLog { file }
    }

    /// Each push's updates, in order.
    pub fn pushes(&self) -> Vec<Vec<RefUpdate>> {
        let text = fs::read_to_string(&self.file).expect("read the ref log");
        let mut pushes = Vec::new();
        for line in text.lines() {
            if line == "push" {
                pushes.push(Vec::new());
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Some(push) = pushes.last_mut() {
                push.push(RefUpdate {
                    old: old.to_owned(),
                    new: new.to_owned(),
                    name: name.to_owned(),
                });
            }
        }
        pushes
    }

    /// Every ref name updated, push after push.
    pub fn names(&self) -> Vec<String> {
        self.pushes()
            .into_iter()
            .flatten()
            .map(|u| u.name)
            .collect()
    }

    /// The first branch (`refs/heads/*`) any push created.
    pub fn first_created_branch(&self) -> Option<String> {
        self.pushes()
            .into_iter()
            .flatten()
            .find(|u| u.old.bytes().all(|b| b == b'0') && u.name.starts_with("refs/heads/"))
            .map(|u| u.name)
    }
}

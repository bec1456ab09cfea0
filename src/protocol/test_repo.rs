//! A repository driven by the git CLI, for the unit tests of protocol
//! code that reads what git writes (packs, commit graphs).

use std::cell::Cell;
use std::io::Write;
use std::process::{Command, Stdio};

use super::ObjectId;

/// A repository driven by the git CLI with a fixed identity and clock.
pub(crate) struct Repo {
    pub(crate) dir: tempfile::TempDir,
    tick: Cell<u32>,
}

impl Repo {
    pub(crate) fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
            tick: Cell::new(0),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let date = format!("{} +0000", 1_700_000_000 + self.tick.get());
        self.tick.set(self.tick.get() + 60);
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", self.dir.path())
            .env("GIT_AUTHOR_NAME", "A U Thor")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "C O Mitter")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        command
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub(crate) fn id(&self, rev: &str) -> ObjectId {
        self.git(&["rev-parse", rev]).parse().unwrap()
    }

    /// Commits `content` to `file` and returns the commit.
    pub(crate) fn commit(&self, file: &str, content: &str, message: &str) -> ObjectId {
        std::fs::write(self.dir.path().join(file), content).unwrap();
        self.git(&["add", file]);
        self.git(&["commit", "-q", "-m", message]);
        self.id("HEAD")
    }

    /// `git pack-objects --revs` of `revs` (one a line, `^` for haves).
    pub(crate) fn pack(&self, options: &[&str], revs: &str) -> Vec<u8> {
        let mut args = vec!["pack-objects", "--revs", "-q"];
        args.extend_from_slice(options);
        self.with_input(&args, revs.as_bytes())
    }

    /// What `git args` writes with `input` on its standard input; it must
    /// succeed.
    pub(crate) fn with_input(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Each commit of `git rev-list --parents` over `revs`, with its
    /// parents.
    pub(crate) fn rev_list(&self, revs: &[&str]) -> Vec<(ObjectId, Vec<ObjectId>)> {
        let mut args = vec!["rev-list", "--parents"];
        args.extend_from_slice(revs);
        self.git(&args)
            .lines()
            .map(|line| {
                let mut ids = line.split(' ').map(|hex| hex.parse().unwrap());
                (ids.next().unwrap(), ids.collect())
            })
            .collect()
    }
}

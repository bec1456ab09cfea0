//! A backup: a bare repository written through git2, never losing history.
//!
//! [`Backup::open`] opens (or creates) the repository and takes its lock;
//! [`Backup::push`] stores a pack and applies ref commands the way
//! receive-pack would, plus the archive rule of [`super::archive`].
//!
//! Order is what keeps an interrupted run harmless:
//!
//! 1. the pack streams into the ODB pack writer, which writes it to a
//!    temporary file (`objects/pack/pack_git2_*`), indexes it and appends
//!    the bases of a thin pack; only at `commit` do the `.idx` and the
//!    `.pack` get their final names. Killed before that, the repository has
//!    gained nothing but a temporary file, which the next run removes;
//! 2. refs move only after the pack is committed, in git2 transactions
//!    that lock every ref first (git's own `<ref>.lock` files, so plain git
//!    is kept out too), so no ref ever names an object that is not there:
//!    one for deletions, then one for the rest (see `update_refs`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use git2::{ObjectType, Oid, Repository};

use super::archive;
use super::lock::BackupLock;
use super::{direct_refs, from_git, to_git, StoreError};
use crate::protocol::advertisement::Ref;
use crate::protocol::push::{Command, RefStatus, ReportStatus};

/// How a backup is opened.
#[derive(Clone, Debug)]
pub(crate) struct BackupSettings {
    /// Create the repository when the path does not exist.
    pub(crate) create: bool,
    /// Take the writer's lock (a run that will change the backup).
    pub(crate) lock: bool,
    /// How long to wait for another run's lock.
    pub(crate) lock_wait: Duration,
    /// The time archive refs of this run are named after.
    pub(crate) now: SystemTime,
}

/// An open backup repository.
pub(crate) struct Backup {
    repo: Repository,
    stamp: String,
    /// Archive refs written by this run: `(original ref, archive ref)`.
    archived: RefCell<Vec<(String, String)>>,
    // Dropped last: the lock outlives every write.
    _lock: Option<BackupLock>,
}

/// What one ref command turned into, before the transaction.
struct Planned<'a> {
    command: &'a Command,
    archive: Option<String>,
}

impl Backup {
    /// Opens the bare repository at `path`, creating it if allowed and
    /// missing, and (for a writing run) takes its lock and clears what an
    /// interrupted run may have left.
    pub(crate) fn open(path: &Path, settings: &BackupSettings) -> Result<Backup, StoreError> {
        let path = &follow_links(path);
        let empty_dir = path.is_dir()
            && fs::read_dir(path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !path.exists() || empty_dir {
            if !settings.create {
                return Err(StoreError::Missing(path.to_owned()));
            }
            create(path)?;
        }
        let repo = super::open_repository(path)?;
        if !repo.is_bare() {
            return Err(StoreError::NotBare(path.to_owned()));
        }
        let lock = if settings.lock {
            let lock = BackupLock::acquire(repo.path(), settings.lock_wait)?;
            clear_leftovers(repo.path(), lock.recovered());
            Some(lock)
        } else {
            None
        };
        Ok(Backup {
            repo,
            stamp: archive::stamp(settings.now),
            archived: RefCell::new(Vec::new()),
            _lock: lock,
        })
    }

    /// The mirrored refs: every direct ref except the archive namespace,
    /// which belongs to the backup and never takes part in a plan, save the
    /// archive refs named in `copied`: those a source that is itself a
    /// backup has too, and which this one copies like any other ref.
    pub(crate) fn list_refs(&self, copied: &HashSet<String>) -> Result<Vec<Ref>, StoreError> {
        Ok(direct_refs(&self.repo)?
            .into_iter()
            .filter(|(name, _)| !name.starts_with(archive::PREFIX) || copied.contains(name))
            .map(|(name, oid)| Ref {
                name,
                oid: from_git(oid),
                peeled: None,
                symref_target: None,
            })
            .collect())
    }

    /// The archive refs written by this run, `(original ref, archive ref)`.
    pub(crate) fn archived(&self) -> Vec<(String, String)> {
        self.archived.borrow().clone()
    }

    /// Stores `pack` (if any), then applies `commands` in one transaction,
    /// archiving every tip a command would drop. Like receive-pack, each
    /// command succeeds or is rejected on its own; a pack that cannot be
    /// stored rejects them all (`unpack` error) and changes nothing.
    ///
    /// An `Err` means the pack stream itself failed (the side that feeds it
    /// is to blame) or the repository could not be written.
    pub(crate) fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, StoreError> {
        if let Some(pack) = pack {
            if let Err(reason) = self.store_pack(pack)? {
                return Ok(ReportStatus {
                    unpack: Err(reason.clone()),
                    refs: commands
                        .iter()
                        .map(|c| RefStatus {
                            name: c.name.clone(),
                            result: Err(format!("unpacker error: {reason}")),
                        })
                        .collect(),
                });
            }
        }
        let refs = self.update_refs(commands)?;
        Ok(ReportStatus {
            unpack: Ok(()),
            refs,
        })
    }

    /// Streams the pack into the object database. `Ok(Err(reason))`: the
    /// pack was refused (bad data); `Err`: reading the stream failed.
    fn store_pack(&self, pack: &mut (dyn Read + Send)) -> Result<Result<(), String>, StoreError> {
        const HEADER: usize = 12;
        let mut buf = vec![0u8; 256 * 1024];
        // The header says how many objects follow; an empty pack (sent
        // after commands whose objects we already have) is just drained.
        let mut head = 0;
        while head < HEADER {
            match pack.read(&mut buf[head..HEADER]) {
                Ok(0) => break,
                Ok(n) => head += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StoreError::PackStream(e)),
            }
        }
        if head < HEADER || &buf[..4] != b"PACK" {
            return Ok(Err(
                "the pack stream does not start with a pack header".into()
            ));
        }
        if buf[8..12] == [0, 0, 0, 0] {
            io::copy(pack, &mut io::sink()).map_err(StoreError::PackStream)?;
            return Ok(Ok(()));
        }
        let odb = self
            .repo
            .odb()
            .map_err(StoreError::git("opening the ODB"))?;
        let mut writer = odb
            .packwriter()
            .map_err(StoreError::git("starting the pack writer"))?;
        if let Err(e) = writer.write_all(&buf[..HEADER]) {
            return Ok(Err(indexer_error(e)));
        }
        loop {
            let n = match pack.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The writer is dropped unfinished: libgit2 deletes its
                // temporary pack file.
                Err(e) => return Err(StoreError::PackStream(e)),
            };
            if let Err(e) = writer.write_all(&buf[..n]) {
                return Ok(Err(indexer_error(e)));
            }
        }
        if let Err(e) = writer.commit() {
            return Ok(Err(e.message().to_owned()));
        }
        drop(writer);
        odb.refresh()
            .map_err(StoreError::git("re-reading the object database"))?;
        Ok(Ok(()))
    }

    /// Deletions go first, in a transaction of their own: a ref renamed
    /// from `a` to `a/b` (or back) can only be created once the other name
    /// is gone, which receive-pack manages within one transaction by way of
    /// packed-refs and git2 cannot. A run stopped between the two loses
    /// nothing: every deleted tip is archived in the first, and the next run
    /// makes what is missing.
    fn update_refs(&self, commands: &[Command]) -> Result<Vec<RefStatus>, StoreError> {
        // Archive refs copied from a source backup are names this run's own
        // archives must not take.
        let mut taken: Vec<String> = commands
            .iter()
            .filter(|c| c.name.starts_with(archive::PREFIX))
            .map(|c| c.name.clone())
            .collect();
        let (deletions, others): (Vec<&Command>, Vec<&Command>) =
            commands.iter().partition(|c| c.new.is_zero());
        let mut results = self.update_together(&deletions, &mut taken)?;
        results.extend(self.update_together(&others, &mut taken)?);
        Ok(results)
    }

    /// Applies `commands` in one transaction, each accepted or rejected on
    /// its own.
    fn update_together(
        &self,
        commands: &[&Command],
        taken_archive_names: &mut Vec<String>,
    ) -> Result<Vec<RefStatus>, StoreError> {
        let mut results: Vec<RefStatus> = Vec::with_capacity(commands.len());
        let mut planned: Vec<Planned<'_>> = Vec::new();
        if commands.is_empty() {
            return Ok(results);
        }
        let mut tx = self
            .repo
            .transaction()
            .map_err(StoreError::git("starting a ref transaction"))?;
        for &command in commands {
            let verdict = self.check(&mut tx, command, taken_archive_names);
            match verdict {
                Ok(archive) => planned.push(Planned { command, archive }),
                Err(reason) => results.push(RefStatus {
                    name: command.name.clone(),
                    result: Err(reason),
                }),
            }
        }
        let signature = git2::Signature::now("git-relay", "git-relay@localhost")
            .map_err(StoreError::git("making the reflog signature"))?;
        let message = format!("git-relay: mirror ({})", crate::AGENT);
        for p in &planned {
            let c = p.command;
            if let Some(name) = &p.archive {
                tx.set_target(name, to_git(&c.old), Some(&signature), &message)
                    .map_err(StoreError::git(format!("archiving {}", c.name)))?;
            }
            if c.new.is_zero() {
                tx.remove(&c.name)
            } else {
                tx.set_target(&c.name, to_git(&c.new), Some(&signature), &message)
            }
            .map_err(StoreError::git(format!("updating {}", c.name)))?;
        }
        if !planned.is_empty() {
            tx.commit()
                .map_err(StoreError::git("committing the ref transaction"))?;
        }
        let mut archived = self.archived.borrow_mut();
        for p in planned {
            if let Some(name) = p.archive {
                archived.push((p.command.name.clone(), name));
            }
            results.push(RefStatus {
                name: p.command.name.clone(),
                result: Ok(()),
            });
        }
        Ok(results)
    }

    /// Locks the command's ref (and its archive ref), checks that it still
    /// has the value the command expects and that the new object is here,
    /// and decides whether the old tip must be archived. `Err` is the
    /// rejection reason for this ref alone.
    fn check(
        &self,
        tx: &mut git2::Transaction<'_>,
        c: &Command,
        taken: &mut Vec<String>,
    ) -> Result<Option<String>, String> {
        if !git2::Reference::is_valid_name(&c.name) || !c.name.starts_with("refs/") {
            return Err("invalid ref name".into());
        }
        // A source that is a backup too hands its archive over as new refs;
        // an archive ref itself is never moved or deleted by a mirror.
        let adds = c.old.is_zero() && !c.new.is_zero();
        if c.name.starts_with(archive::PREFIX) && !adds {
            return Err(format!(
                "{} is reserved for the backup's archive of dropped history; archive refs are only ever added",
                archive::PREFIX
            ));
        }
        tx.lock_ref(&c.name)
            .map_err(|e| format!("cannot lock the ref: {}", e.message()))?;
        // Read under the lock: nobody can move it between this and commit.
        let current = match self.repo.refname_to_id(&c.name) {
            Ok(oid) => Some(oid),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(format!("cannot read the ref: {}", e.message())),
        };
        let expected = (!c.old.is_zero()).then(|| to_git(&c.old));
        if current != expected {
            return Err(format!(
                "stale info: the ref is now {} (expected {})",
                current.map_or("absent".to_owned(), |o| o.to_string()),
                expected.map_or("absent".to_owned(), |o| o.to_string())
            ));
        }
        if !c.new.is_zero() && !self.has_object(to_git(&c.new)) {
            return Err(format!("missing object {} (not in the pack)", c.new));
        }
        let Some(old) = expected else {
            return Ok(None);
        };
        if !c.new.is_zero() && self.contains(to_git(&c.new), old) {
            return Ok(None);
        }
        let name = self.archive_name(&c.name, taken);
        tx.lock_ref(&name)
            .map_err(|e| format!("cannot lock the archive ref {name}: {}", e.message()))?;
        taken.push(name.clone());
        Ok(Some(name))
    }

    fn has_object(&self, oid: Oid) -> bool {
        self.repo.odb().is_ok_and(|odb| odb.exists(oid))
    }

    /// Whether `new` still holds `old` in its history: the same object, or
    /// two commits with `old` an ancestor of `new`. An annotated tag moved
    /// to another tag object does not hold the old tag object, so its old
    /// tip is archived even when the commits are related.
    fn contains(&self, new: Oid, old: Oid) -> bool {
        if new == old {
            return true;
        }
        let is_commit = |oid| {
            self.repo
                .odb()
                .ok()
                .and_then(|odb| odb.read_header(oid).ok())
                .is_some_and(|(_, kind)| kind == ObjectType::Commit)
        };
        is_commit(new) && is_commit(old) && self.repo.graph_descendant_of(new, old).unwrap_or(false)
    }

    /// An archive ref name for `original` that no ref uses yet, and that
    /// neither holds nor sits inside another ref: `a` and `a/b` archived in
    /// the same second cannot both be named after that second.
    fn archive_name(&self, original: &str, taken: &[String]) -> String {
        let clash = |a: &str, b: &str| {
            a == b
                || b.strip_prefix(a).is_some_and(|r| r.starts_with('/'))
                || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
        };
        // Only names of this run's time (and its `-2`... variants) can clash.
        let existing: Vec<String> = self
            .repo
            .references_glob(&format!("{}{}*", archive::PREFIX, self.stamp))
            .map(|mut refs| {
                refs.names()
                    .filter_map(|n| n.ok().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let free = |name: &String| {
            !taken
                .iter()
                .chain(&existing)
                .any(|other| clash(other, name))
        };
        let first = archive::ref_name(&self.stamp, original);
        if free(&first) {
            return first;
        }
        (2..)
            .map(|n| archive::ref_name(&format!("{}-{n}", self.stamp), original))
            .find(free)
            .expect("some suffix is free")
    }

    /// Points HEAD at `target`, the source's default branch, so that plain
    /// git clones the backup with that branch checked out. Left alone when
    /// the backup lacks the branch (an empty source, a branch not selected):
    /// a HEAD naming a missing branch is what `git clone` warns about.
    /// Returns whether HEAD moved.
    pub(crate) fn follow_head(&self, target: &str) -> Result<bool, StoreError> {
        let current = self.repo.find_reference("HEAD").ok();
        if current.as_ref().and_then(|h| h.symbolic_target()) == Some(target)
            || self.repo.refname_to_id(target).is_err()
        {
            return Ok(false);
        }
        self.repo
            .set_head(target)
            .map_err(StoreError::git(format!("pointing HEAD at {target}")))?;
        Ok(true)
    }

    /// Deletes the archive refs made before `cutoff`, in one transaction;
    /// returns their names. Archive refs not in the documented shape are
    /// left alone, and so are those in `copied`: a source backup still has
    /// them, and the run would copy them straight back.
    pub(crate) fn prune_archive(
        &self,
        cutoff: SystemTime,
        copied: &HashSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        let mut expired = Vec::new();
        let glob = format!("{}*", archive::PREFIX);
        let refs = self
            .repo
            .references_glob(&glob)
            .map_err(StoreError::git("listing archive refs"))?;
        for reference in refs {
            let reference = reference.map_err(StoreError::git("listing archive refs"))?;
            if let Some(name) = reference.name() {
                if archive::archived_at(name).is_some_and(|t| t < cutoff) && !copied.contains(name)
                {
                    expired.push(name.to_owned());
                }
            }
        }
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut tx = self
            .repo
            .transaction()
            .map_err(StoreError::git("starting a ref transaction"))?;
        for name in &expired {
            tx.lock_ref(name)
                .map_err(StoreError::git(format!("locking {name}")))?;
            tx.remove(name)
                .map_err(StoreError::git(format!("removing {name}")))?;
        }
        tx.commit()
            .map_err(StoreError::git("committing the archive pruning"))?;
        Ok(expired)
    }
}

/// Creates a bare repository at `path`, atomically: it is made whole under
/// a temporary name beside `path` and renamed into place, so a concurrent
/// run never opens a half-made repository (the lock lives inside it, so it
/// cannot guard its creation). When another run's repository got there
/// first, that one is used.
fn create(path: &Path) -> Result<(), StoreError> {
    let create_err = |reason: &dyn std::fmt::Display| StoreError::Create {
        path: path.to_owned(),
        reason: reason.to_string(),
    };
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_owned(),
        None => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| create_err(&e))?;
    let name = path
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    let staging = parent.join(format!(".{name}.git-relay-new-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    Repository::init_bare(&staging).map_err(|e| create_err(&e))?;
    match fs::rename(&staging, path) {
        Ok(()) => {
            crate::output::info(format_args!("created bare repository {}", path.display()));
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            // Another run's repository got there first, or the path cannot
            // be replaced (a mount point): say which.
            if Repository::open_bare(path).is_ok() {
                Ok(())
            } else {
                Err(create_err(&e))
            }
        }
    }
}

/// Where `path` ends up through symbolic links, followed one by one, so
/// that a link to a directory still to be made (or to an empty one) gets
/// its repository there rather than being replaced by one. Stops at a
/// loop's 40th hop; what is then left fails to open with its own reason.
fn follow_links(path: &Path) -> PathBuf {
    let mut path = path.to_owned();
    for _ in 0..40 {
        let Ok(target) = fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(parent) => parent.join(target),
            None => target,
        };
    }
    path
}

/// The message behind a pack writer's failed write: git2 only says "Write
/// error", libgit2's last error says why.
fn indexer_error(e: io::Error) -> String {
    let detail = git2::Error::last_error(-1);
    let detail = detail.message();
    if detail.is_empty() {
        e.to_string()
    } else {
        detail.to_owned()
    }
}

/// Removes what a killed run may have left: temporary packs of the pack
/// writer, and an index whose pack never got its final name. Called with
/// the lock held, so no run of ours is writing them; plain git never makes
/// files by these names. After taking over a dead run's lock (`recovered`),
/// also the ref lock files it may have left mid-transaction, which would
/// otherwise refuse those refs forever. Failures are ignored: what stays
/// costs disk space, or refuses one ref with a clear message.
fn clear_leftovers(repo_dir: &Path, recovered: bool) {
    if recovered {
        clear_ref_locks(repo_dir, &repo_dir.join("refs"));
        for file in ["packed-refs.lock", "HEAD.lock"] {
            let _ = fs::remove_file(repo_dir.join(file));
        }
    }
    let pack_dir = repo_dir.join("objects").join("pack");
    let Ok(entries) = fs::read_dir(&pack_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let orphan_index = name
            .strip_suffix(".idx")
            .is_some_and(|stem| !pack_dir.join(format!("{stem}.pack")).exists());
        if name.starts_with("pack_git2_") || orphan_index {
            crate::output::debug(format_args!("removing {name}, left by an interrupted run"));
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn clear_ref_locks(repo_dir: &Path, dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            clear_ref_locks(repo_dir, &path);
        } else if path.extension().is_some_and(|x| x == "lock") {
            crate::output::warn(format_args!(
                "removing {}, left by an interrupted run",
                path.strip_prefix(repo_dir).unwrap_or(&path).display()
            ));
            let _ = fs::remove_file(&path);
        }
    }
}

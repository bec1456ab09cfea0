//! Local repositories through git2: backups on disk, and their checks.
//!
//! A local DESTINATION of `mirror` (and of `mirror-all`) is a *backup*: a bare
//! repository that plain git can read and restore from, fed by the same relay
//! stream as a remote mirror. What makes it a backup rather than a copy:
//!
//! - the received pack goes through the object database's pack writer,
//!   which indexes it and completes thin packs in a temporary file that only
//!   becomes part of the repository once whole (`Backup::push`);
//! - refs are updated afterwards, in locked transactions (deletions
//!   first), each update a compare-and-swap against the value listed at
//!   the start;
//! - history is never lost: a ref that is deleted at the source, or moved so
//!   that it no longer contains its old tip, leaves that tip under
//!   `refs/archive/<UTC yyyy-mm-ddThh-mm-ssZ>/<original ref name>` in the
//!   same transaction (see `archive`); only `--prune-archive-older-than`
//!   removes archives, deliberately. A source that is a backup too hands
//!   its own archive refs over; they are copied like any other ref, but
//!   only ever added, never moved or deleted;
//! - a lock file keeps two runs from writing one backup (`lock`);
//! - [`verify`] checks that every ref's history is present and intact.
//!
//! A local SOURCE can be read here too (`Git2Reader`): refs, which of
//! the destination's tips it has, and a pack built with libgit2.
//!
//! This module knows nothing of HTTP or of the mirror engine: it speaks in
//! the protocol's plain data types (ref lists, push commands, reports) and
//! its own [`StoreError`]. The engine adapts it to a destination side.

pub(crate) mod archive;
mod backup;
pub(crate) mod lock;
mod reader;
pub(crate) mod verify;

use std::path::{Path, PathBuf};

pub(crate) use backup::{Backup, BackupSettings};
pub(crate) use reader::Git2Reader;
pub use verify::{verify, VerifyReport};

/// What can go wrong with a local repository.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The path exists but is not a git repository git2 can open.
    #[error("{path} is not a git repository ({source})")]
    NotARepository {
        /// Where.
        path: PathBuf,
        /// What git2 said.
        source: git2::Error,
    },
    /// The repository belongs to another user, and git (libgit2 too) will
    /// not use it until it is declared safe.
    #[error("{path} belongs to another user, and git refuses to use it (\"detected dubious ownership\"); if you trust it, declare it safe with `git config --global --add safe.directory {path}`", path = .0.display())]
    NotOwned(PathBuf),
    /// A shallow clone lacks history a mirror must carry.
    #[error("{0} is a shallow clone and lacks history a mirror needs; fetch the full history first (`git fetch --unshallow`, or `fetchDepth: 0` on an Azure Pipelines checkout) or mirror from the remote URL instead")]
    Shallow(PathBuf),
    /// The path does not exist and the run may not create it.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// A backup must be bare: refs are moved under a work tree's feet otherwise.
    #[error("{0} is not a bare repository; a backup destination must be bare (`git init --bare`) or not exist yet")]
    NotBare(PathBuf),
    /// Creating a new backup failed.
    #[error("cannot create a bare repository at {path}: {reason}")]
    Create {
        /// Where.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Another live run holds the lock.
    #[error("another git-relay run (pid {pid} on {host}) is writing this backup; waited {waited_s} s for it to finish (lock file {path})")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id.
        pid: u32,
        /// The holder's host name.
        host: String,
        /// How long we waited.
        waited_s: u64,
    },
    /// The lock file could not be created, read or removed.
    #[error("lock file {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading the incoming pack failed (the side feeding it is at fault).
    #[error("reading the pack: {0}")]
    PackStream(#[source] std::io::Error),
    /// A git2 operation failed.
    #[error("{context}: {source}")]
    Git {
        /// What we were doing.
        context: String,
        /// What git2 said.
        source: git2::Error,
    },
}

/// Opens the repository at `path`, telling a repository git refuses for its
/// owner from a path that is not a repository at all.
pub(crate) fn open_repository(path: &Path) -> Result<git2::Repository, StoreError> {
    git2::Repository::open(path).map_err(|source| {
        if source.code() == git2::ErrorCode::Owner {
            StoreError::NotOwned(path.to_owned())
        } else {
            StoreError::NotARepository {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// The direct refs under `refs/` of `repo` and what they point at, sorted
/// by name. Symbolic refs and names that are not UTF-8 are not mirrored.
pub(crate) fn direct_refs(repo: &git2::Repository) -> Result<Vec<(String, git2::Oid)>, StoreError> {
    let mut refs = Vec::new();
    for reference in repo.references().map_err(StoreError::git("listing refs"))? {
        let reference = reference.map_err(StoreError::git("listing refs"))?;
        if let (Some(name), Some(oid)) = (reference.name(), reference.target()) {
            if name.starts_with("refs/") {
                refs.push((name.to_owned(), oid));
            }
        }
    }
    refs.sort();
    Ok(refs)
}

impl StoreError {
    pub(crate) fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Git { context, source }
    }
}

/// git2's object id from the protocol's.
pub(crate) fn to_git(oid: &crate::protocol::ObjectId) -> git2::Oid {
    git2::Oid::from_bytes(oid.as_bytes()).expect("a SHA-1 object id is 20 bytes")
}

/// The protocol's object id from git2's.
pub(crate) fn from_git(oid: git2::Oid) -> crate::protocol::ObjectId {
    let mut raw = [0u8; 20];
    raw.copy_from_slice(oid.as_bytes());
    crate::protocol::ObjectId::from(raw)
}

//! The Git LFS objects of the history a run sends, moved before its refs.
//!
//! A repository that uses Git LFS keeps pointers in git and the files on
//! its LFS server; a mirror of the git side alone has pointers to nothing
//! (GitLab refuses such a push outright). So before the refs move, this
//! phase finds the pointers of the history being sent and has `crate::lfs`
//! move their objects from the source's LFS server (or a backup's
//! `lfs/objects`) to the destination's, only those it lacks.
//!
//! Finding the pointers: a pointer is a blob under 1,024 bytes, so the
//! source is asked for the history being sent (the tips to send, the
//! destination's tips as haves) filtered with `blob:limit=1023`: commits,
//! trees and small blobs, never a large file, read as it streams
//! (`protocol::blobs`) with bounded memory and no local copy. A no-op run
//! sends nothing and asks nothing; an incremental run reads only the new
//! history. In `auto` mode a source that cannot filter is not read for
//! pointers (its whole history would travel twice); `always` reads it
//! anyway.
//!
//! What a missing object breaks (a commit and a path) is learnt only when
//! one is missing: a second read of the same history, trees this time,
//! looks for the pointer blobs that name it (`protocol::blobs::find_paths`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{Cause, Side, SideError};
use super::sides::SourceSide;
use super::{Mode, Options};
use crate::lfs::{self, LfsClient, LfsReport, LfsStore, Need, Pointer};
use crate::output::{self, human_bytes};
use crate::protocol::ObjectId;
use crate::transport::Location;

/// Whether a run moves LFS objects (`--lfs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LfsMode {
    /// When the history being sent holds LFS pointers, and the source can
    /// send its small blobs alone.
    #[default]
    Auto,
    /// Always look, whatever it costs; a missing object holds the refs
    /// back.
    Always,
    /// Never: pointers travel as they are.
    Never,
}

impl LfsMode {
    /// The mode named `auto`, `always` or `never`.
    pub(crate) fn parse(name: &str) -> Result<LfsMode, String> {
        match name {
            "auto" => Ok(LfsMode::Auto),
            "always" => Ok(LfsMode::Always),
            "never" => Ok(LfsMode::Never),
            _ => Err(format!("{name:?}: use auto, always or never")),
        }
    }
}

/// How a run moves LFS objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LfsOptions {
    pub(crate) mode: LfsMode,
    /// LFS servers named by hand (`--source-lfs-url`, `--dest-lfs-url`),
    /// where they are not where git-lfs would look.
    pub(crate) source_url: Option<url::Url>,
    pub(crate) dest_url: Option<url::Url>,
    /// Objects moved at once.
    pub(crate) jobs: usize,
}

impl Default for LfsOptions {
    fn default() -> LfsOptions {
        LfsOptions {
            mode: LfsMode::Auto,
            source_url: None,
            dest_url: None,
            jobs: lfs::DEFAULT_JOBS,
        }
    }
}

/// What a run did with LFS objects (the report's `lfs`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LfsSummary {
    /// Distinct objects the pointers of the history sent name.
    pub(crate) objects: u64,
    /// Of those, objects the destination had already.
    pub(crate) present: u64,
    /// Objects moved (`status`, `--dry-run`: that would move).
    pub(crate) moved: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Objects the source does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) missing: Vec<LfsProblem>,
    /// Objects that failed otherwise (a corrupt one among them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) failed: Vec<LfsProblem>,
    /// Small blobs whose content could not be read (see
    /// `protocol::blobs`): pointers among them were not looked at.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) unread: u64,
    /// Whether the refs were held back for missing objects (`--lfs
    /// always`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) held_back: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One object that did not arrive, and what needs it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LfsProblem {
    /// The object's SHA-256.
    pub(crate) oid: String,
    pub(crate) size: u64,
    /// A commit whose tree holds a pointer to it, and the pointer's path,
    /// where they could be learnt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    /// Whose fault: the source's (missing, corrupt) or the destination's.
    pub(crate) side: Side,
    pub(crate) reason: String,
}

impl LfsSummary {
    /// Whether the destination has every object the history needs.
    pub(crate) fn complete(&self) -> bool {
        self.missing.is_empty() && self.failed.is_empty()
    }

    /// The lines the text report shows for objects that did not arrive.
    pub(crate) fn problem_lines(&self) -> Vec<String> {
        let line = |p: &LfsProblem, what: &str| {
            let place = match (&p.commit, &p.path) {
                (Some(commit), Some(path)) => format!(" ({path} in {})", &commit[..12]),
                _ => String::new(),
            };
            format!(
                "  x LFS object {} ({}){place} {what}: {}",
                &p.oid[..12],
                human_bytes(p.size),
                p.reason
            )
        };
        let missing = self
            .missing
            .iter()
            .map(|p| line(p, "missing at the source"));
        let failed = self.failed.iter().map(|p| line(p, "not moved"));
        missing.chain(failed).collect()
    }
}

/// Finds the LFS pointers in the history that `wants` bring and `haves`
/// lack, and makes the destination's LFS store hold their objects (in a
/// mirror run; `status` and `--dry-run` count what would move). `None`
/// when LFS is off or the history holds no pointer. An `Err` is a failure
/// of LFS as a whole (a server that refuses the credentials): nothing has
/// been pushed yet.
pub(super) fn relay_lfs(
    opts: &Options,
    source: &dyn SourceSide,
    wants: &[ObjectId],
    haves: &[ObjectId],
) -> Result<Option<LfsSummary>, SideError> {
    let mode = opts.lfs.mode;
    if mode == LfsMode::Never || wants.is_empty() {
        return Ok(None);
    }
    // Pointer -> the pointer blobs that name it (one per version of a
    // pointer file's bytes: extensions or spelling may differ).
    let mut pointers: BTreeMap<Pointer, Vec<ObjectId>> = BTreeMap::new();
    let scan = source.small_blobs(
        wants,
        haves,
        Pointer::MAX_BLOB_SIZE as u64,
        mode == LfsMode::Auto,
        &mut |id, data| {
            if let Some(pointer) = Pointer::parse(data) {
                pointers.entry(pointer).or_default().push(id);
            }
        },
    )?;
    let Some(scan) = scan else {
        output::debug(format_args!(
            "LFS: not looked for: the source cannot send its small blobs alone (uploadpack.allowFilter); --lfs always reads the whole history"
        ));
        return Ok(None);
    };
    if scan.unresolved > 0 {
        output::warn(format_args!(
            "LFS: {} small blobs could not be read (their delta bases came too far before them); LFS pointers among them are not relayed",
            scan.unresolved
        ));
    }
    if pointers.is_empty() && scan.unresolved == 0 {
        output::debug(format_args!(
            "LFS: no pointer among {} small blobs",
            scan.blobs
        ));
        return Ok(None);
    }
    let listed: Vec<Pointer> = pointers.keys().copied().collect();
    output::info(format_args!(
        "LFS: {} objects named by the history to send ({})",
        listed.len(),
        human_bytes(listed.iter().map(|p| p.size).sum())
    ));
    let source_lfs = LfsSide::open(Side::Source, opts)?;
    // A blob shaped like a pointer is an LFS file only where git-lfs
    // tracks it; a repository that never stored an LFS object has test
    // fixtures or documentation that look like pointers, nothing to move.
    if mode == LfsMode::Auto && matches!(&source_lfs, LfsSide::Store(s) if !s.exists()) {
        output::debug(format_args!(
            "LFS: {} pointer-shaped files, but the local source keeps no LFS objects: taken for plain files (--lfs always reports them)",
            listed.len()
        ));
        return Ok(None);
    }
    let dest_lfs = LfsSide::open(Side::Destination, opts)?;
    let mut summary = match opts.mode {
        Mode::Mirror => {
            let needs: Vec<(Pointer, Need)> = listed
                .iter()
                .map(|p| {
                    let need = Need {
                        commit: ObjectId::ZERO,
                        path: String::new(),
                    };
                    (*p, need)
                })
                .collect();
            let report = move_objects(&source_lfs, &dest_lfs, &needs, opts.lfs.jobs)?;
            // The same from a server: not one of them is anywhere.
            let none_anywhere = report.moved == 0
                && report.present == 0
                && report.failed.is_empty()
                && report.missing.len() as u64 == report.objects;
            if mode == LfsMode::Auto && none_anywhere {
                output::debug(format_args!(
                    "LFS: {} pointer-shaped files, none of whose objects the source or the destination has: taken for plain files (--lfs always reports them)",
                    report.objects
                ));
                return Ok(None);
            }
            from_report(&report)
        }
        Mode::DryRun | Mode::Status => {
            let lacking = dest_lfs.lacking(&listed)?;
            LfsSummary {
                objects: listed.len() as u64,
                present: (listed.len() - lacking.len()) as u64,
                moved: lacking.len() as u64,
                bytes: lacking.iter().map(|p| p.size).sum(),
                ..LfsSummary::default()
            }
        }
    };
    summary.unread = scan.unresolved;
    if !summary.complete() {
        name_what_needs(source, wants, haves, &pointers, &mut summary);
    }
    Ok(Some(summary))
}

/// One side's LFS objects: its LFS server, or a local repository's
/// `lfs/objects` (a backup, or a local source).
enum LfsSide {
    Server(Box<LfsClient>),
    Store(LfsStore),
}

impl LfsSide {
    fn open(side: Side, opts: &Options) -> Result<LfsSide, SideError> {
        let (endpoint, explicit) = match side {
            Side::Source => (&opts.source, opts.lfs.source_url.as_ref()),
            Side::Destination => (&opts.destination, opts.lfs.dest_url.as_ref()),
        };
        // A local repository keeps its objects beside it, unless a server
        // is named for it.
        let server = match (&endpoint.location, explicit) {
            (Location::Local(path), None) => {
                return Ok(LfsSide::Store(LfsStore::new(&git_dir(path))))
            }
            (Location::Local(_), Some(named)) => named.clone(),
            (Location::Http { url, .. }, named) => lfs::lfs_url(url, named),
            (Location::Ssh { .. }, Some(named)) => named.clone(),
            // git-lfs asks an SSH server for its LFS URL through
            // `git-lfs-authenticate`; that is not done here.
            (Location::Ssh { .. }, None) => {
                return Err(SideError {
                    side,
                    location: endpoint.location.to_string(),
                    cause: Cause::Refused(format!(
                        "Git LFS over SSH needs the LFS server's https:// URL: give it with --{}-lfs-url",
                        if side == Side::Source { "source" } else { "dest" }
                    )),
                })
            }
        };
        LfsClient::new(
            side,
            server,
            endpoint.credentials.as_ref(),
            &endpoint.network,
        )
        .map(|client| LfsSide::Server(Box::new(client)))
        .map_err(lfs_error)
    }

    fn lacking(&self, pointers: &[Pointer]) -> Result<Vec<Pointer>, SideError> {
        match self {
            LfsSide::Server(client) => lfs::lacking(&**client, pointers),
            LfsSide::Store(store) => lfs::lacking(store, pointers),
        }
        .map_err(lfs_error)
    }
}

/// The git directory of a local repository: `lfs/objects` lives there
/// (`.git/lfs/objects` in a work tree, `lfs/objects` in a bare one).
fn git_dir(path: &Path) -> PathBuf {
    let dot_git = path.join(".git");
    if dot_git.is_dir() {
        dot_git
    } else {
        path.to_path_buf()
    }
}

/// Moves the objects the destination lacks, with progress.
fn move_objects(
    source: &LfsSide,
    dest: &LfsSide,
    needs: &[(Pointer, Need)],
    jobs: usize,
) -> Result<LfsReport, SideError> {
    let progress = std::sync::Mutex::new(output::Progress::new("relaying LFS objects"));
    let show = |p: &lfs::LfsProgress| {
        if let Ok(mut progress) = progress.lock() {
            progress.update(p.bytes);
        }
    };
    let report = match (source, dest) {
        (LfsSide::Server(s), LfsSide::Server(d)) => lfs::relay(&**s, &**d, needs, jobs, &show),
        (LfsSide::Server(s), LfsSide::Store(d)) => lfs::relay(&**s, d, needs, jobs, &show),
        (LfsSide::Store(s), LfsSide::Server(d)) => lfs::relay(s, &**d, needs, jobs, &show),
        (LfsSide::Store(s), LfsSide::Store(d)) => lfs::relay(s, d, needs, jobs, &show),
    }
    .map_err(lfs_error)?;
    if let Ok(mut progress) = progress.lock() {
        progress.finish(report.bytes);
    }
    Ok(report)
}

fn from_report(report: &LfsReport) -> LfsSummary {
    let problem = |pointer: &Pointer, side: Side, reason: &str| LfsProblem {
        oid: pointer.oid.to_string(),
        size: pointer.size,
        commit: None,
        path: None,
        side,
        reason: reason.to_owned(),
    };
    LfsSummary {
        objects: report.objects,
        present: report.present,
        moved: report.moved,
        bytes: report.bytes,
        missing: (report.missing.iter())
            .map(|m| problem(&m.pointer, Side::Source, &m.reason))
            .collect(),
        failed: (report.failed.iter())
            .map(|f| problem(&f.pointer, f.side, &f.reason))
            .collect(),
        unread: 0,
        held_back: false,
    }
}

/// Fills in a commit and path for each object that did not arrive, from a
/// second read of the history (trees this time). Best effort: a failure
/// leaves them out.
fn name_what_needs(
    source: &dyn SourceSide,
    wants: &[ObjectId],
    haves: &[ObjectId],
    pointers: &BTreeMap<Pointer, Vec<ObjectId>>,
    summary: &mut LfsSummary,
) {
    let by_oid: HashMap<String, &Vec<ObjectId>> = pointers
        .iter()
        .map(|(p, blobs)| (p.oid.to_string(), blobs))
        .collect();
    let targets: HashSet<ObjectId> = (summary.missing.iter().chain(&summary.failed))
        .filter_map(|p| by_oid.get(&p.oid))
        .flat_map(|blobs| blobs.iter().copied())
        .collect();
    let found = match source.blob_paths(wants, haves, &targets) {
        Ok(found) => found,
        Err(e) => {
            output::debug(format_args!(
                "LFS: where the missing objects are needed: {e}"
            ));
            return;
        }
    };
    for problem in summary.missing.iter_mut().chain(summary.failed.iter_mut()) {
        let place = by_oid
            .get(&problem.oid)
            .and_then(|blobs| blobs.iter().find_map(|b| found.get(b)));
        if let Some(place) = place {
            problem.commit = Some(place.commit.to_string());
            problem.path = Some(place.path.clone());
        }
    }
}

/// An LFS failure as the failure of its side.
pub(super) fn lfs_error(e: lfs::LfsError) -> SideError {
    SideError {
        side: e.side,
        location: e.where_.clone(),
        cause: Cause::Lfs(Box::new(e)),
    }
}

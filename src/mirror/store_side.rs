//! Local repositories as sides of a relay, through git2.
//!
//! [`StoreSide`] adapts [`crate::store::Backup`] to [`DestinationSide`]: the
//! engine plans, negotiates and streams exactly as for a remote destination,
//! and the backup stores the pack through git2 instead of a receive-pack.
//! [`LocalSourceSide`] adapts [`crate::store::Git2Reader`] to
//! [`SourceSide`]: the repository's own object database answers what an
//! upload-pack would. Kept apart from `source` and `destination` so the store stays free of
//! engine types and the protocol conversations free of git2.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::error::{Blame, Cause, Side, SideError};
use super::sides::{DestinationSide, Negotiated, PackOptions, SourceSide};
use super::{LocalOptions, Mode};
use crate::output;
use crate::protocol::advertisement::Ref;
use crate::protocol::blobs::{Place, Scan};
use crate::protocol::push::{Command, ReportStatus};
use crate::protocol::ObjectId;
use crate::store::{archive, Backup, BackupSettings, Git2Reader};

/// A backup repository being mirrored into.
pub(crate) struct StoreSide {
    /// `None`: a status or dry run against a backup that does not exist
    /// yet, which compares as empty (the first run would create it).
    backup: Option<Backup>,
    /// The source's archive refs, when the source is a backup too: they
    /// take part in the plan like any ref (the backup's own do not).
    copied: HashSet<String>,
    blame: Blame,
}

impl StoreSide {
    /// Opens (creating, for a mirror run) the backup at `path`, takes its
    /// lock when the run will write, expires old archives if asked, and
    /// lists its refs as they compare with `source_refs`.
    pub(crate) fn open(
        path: &Path,
        display: &str,
        mode: Mode,
        options: &LocalOptions,
        timeout: Duration,
        source_refs: &[Ref],
    ) -> Result<(StoreSide, Vec<Ref>), SideError> {
        let blame = Blame::new(Side::Destination, display, timeout);
        let copied: HashSet<String> = source_refs
            .iter()
            .filter(|r| r.name.starts_with(archive::PREFIX))
            .map(|r| r.name.clone())
            .collect();
        let writing = mode == Mode::Mirror;
        let settings = BackupSettings {
            create: writing,
            lock: writing,
            lock_wait: timeout,
            now: SystemTime::now(),
        };
        // A status or dry run against a backup that does not exist yet
        // compares as empty: the first mirror run would create it.
        let backup = (writing || path.exists())
            .then(|| Backup::open(path, &settings))
            .transpose()
            .map_err(|e| blame.error(e))?;
        if let (Some(backup), Some(age), true) =
            (&backup, options.prune_archive_older_than, writing)
        {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let pruned = backup
                .prune_archive(cutoff, &copied)
                .map_err(|e| blame.error(e))?;
            for name in &pruned {
                output::debug(format_args!("pruned {name}"));
            }
            if !pruned.is_empty() {
                output::info(format_args!(
                    "pruned {} archive ref(s) older than {}",
                    pruned.len(),
                    output::human_duration(age)
                ));
            }
        }
        let side = StoreSide {
            backup,
            copied,
            blame,
        };
        let refs = side.list_refs()?;
        Ok((side, refs))
    }
}

impl DestinationSide for StoreSide {
    fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
        match &self.backup {
            Some(backup) => backup
                .list_refs(&self.copied)
                .map_err(|e| self.blame.error(e)),
            None => Ok(Vec::new()),
        }
    }

    // The pack writer indexes with the repository's object database at
    // hand, so it completes thin packs, and it reads offset deltas.
    fn accepts_thin_pack(&self) -> bool {
        true
    }

    fn accepts_ofs_delta(&self) -> bool {
        true
    }

    // A deletion archives the old tip first, so it never loses anything.
    fn allows_delete(&self) -> bool {
        true
    }

    fn has_push_limits(&self) -> bool {
        false
    }

    fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, SideError> {
        // The engine pushes only in mirror runs, which always open a backup.
        let Some(backup) = &self.backup else {
            return Err(self.error(Cause::Refused(
                "the backup does not exist (a status or dry run creates nothing)".into(),
            )));
        };
        let status = backup
            .push(commands, pack)
            .map_err(|e| self.blame.error(e))?;
        for (original, archive) in backup.archived() {
            output::info(format_args!(
                "archived the old tip of {original} as {archive}"
            ));
        }
        Ok(status)
    }

    fn adopt_head(&self, target: &str) -> Result<(), SideError> {
        if let Some(backup) = &self.backup {
            if backup
                .follow_head(target)
                .map_err(|e| self.blame.error(e))?
            {
                output::info(format_args!("HEAD of the backup now points at {target}"));
            }
        }
        Ok(())
    }

    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }

    fn notes(&self) -> Vec<(String, String)> {
        self.backup
            .iter()
            .flat_map(Backup::archived)
            .map(|(original, archive)| (original, format!("old tip kept as {archive}")))
            .collect()
    }
}

/// A local source repository read through git2.
pub(crate) struct LocalSourceSide {
    source: Git2Reader,
    blame: Blame,
}

impl LocalSourceSide {
    /// Opens the repository at `path` and lists its refs.
    pub(crate) fn open(
        path: &Path,
        display: &str,
        timeout: Duration,
    ) -> Result<(LocalSourceSide, Vec<Ref>), SideError> {
        let blame = Blame::new(Side::Source, display, timeout);
        let source = Git2Reader::open(path).map_err(|e| blame.error(e))?;
        let refs = source.list_refs().map_err(|e| blame.error(e))?;
        Ok((LocalSourceSide { source, blame }, refs))
    }
}

impl SourceSide for LocalSourceSide {
    fn protocol(&self) -> String {
        "git2".to_owned()
    }

    // No rounds are needed: the object database says at once which of the
    // destination's tips it has, and that is all the divergence rule asks.
    fn negotiate(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        _suspects: &[ObjectId],
        pack: Option<PackOptions>,
    ) -> Result<Negotiated, SideError> {
        let known = self.source.known(haves).map_err(|e| self.blame.error(e))?;
        let pack = match pack {
            Some(_) if !wants.is_empty() => Some(
                self.source
                    .pack(wants, haves)
                    .map_err(|e| self.blame.error(e))?,
            ),
            _ => None,
        };
        Ok(Negotiated { known, pack })
    }

    fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
        updates
            .iter()
            .map(|(old, new)| self.source.is_ancestor(old, new).ok())
            .collect()
    }

    fn small_blobs(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        max_size: u64,
        _filtered_only: bool,
        found: &mut dyn FnMut(ObjectId, &[u8]),
    ) -> Result<Option<Scan>, SideError> {
        let mut scan = Scan::default();
        self.source
            .walk_blobs(wants, haves, |_, _, blob, odb| {
                if let Some(data) = Git2Reader::small_blob(odb, &blob, max_size) {
                    scan.blobs += 1;
                    found(blob, &data);
                }
            })
            .map_err(|e| self.blame.error(e))?;
        Ok(Some(scan))
    }

    fn blob_paths(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        targets: &HashSet<ObjectId>,
    ) -> Result<HashMap<ObjectId, Place>, SideError> {
        let mut places = HashMap::new();
        self.source
            .walk_blobs(wants, haves, |commit, path, blob, _| {
                if targets.contains(&blob) {
                    places.insert(
                        blob,
                        Place {
                            commit,
                            path: path.to_owned(),
                        },
                    );
                }
            })
            .map_err(|e| self.blame.error(e))?;
        Ok(places)
    }

    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }
}

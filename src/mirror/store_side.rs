//! A backup on disk as the destination side of a relay.
//!
//! Adapts [`crate::store::Backup`] to [`DestinationSide`]: the engine plans,
//! negotiates and streams exactly as for a remote destination, and the
//! backup stores the pack through git2 instead of a receive-pack. Kept apart
//! from `session` so the store stays free of engine types and the
//! receive-pack conversation free of git2.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::session::{Blame, Cause, DestinationSide, Side, SideError};
use super::{BackupOptions, Mode};
use crate::output;
use crate::protocol::advertisement::Ref;
use crate::protocol::push::{Command, ReportStatus};
use crate::store::{Backup, BackupSettings};

/// A backup repository being mirrored into.
pub(crate) struct StoreSide {
    backup: Backup,
    blame: Blame,
}

impl StoreSide {
    /// Opens (creating, for a mirror run) the backup at `path`, takes its
    /// lock when the run will write, expires old archives if asked, and
    /// lists its refs.
    pub(crate) fn open(
        path: &Path,
        display: &str,
        mode: Mode,
        options: &BackupOptions,
        timeout: Duration,
    ) -> Result<(StoreSide, Vec<Ref>), SideError> {
        let blame = Blame::new(Side::Destination, display, timeout);
        let writing = mode == Mode::Mirror;
        let settings = BackupSettings {
            create: writing,
            lock: writing,
            lock_wait: options.lock_wait.unwrap_or(timeout),
            now: SystemTime::now(),
        };
        let backup = Backup::open(path, &settings).map_err(|e| blame.error(e))?;
        if let (Some(age), true) = (options.prune_archive_older_than, writing) {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let pruned = backup.prune_archive(cutoff).map_err(|e| blame.error(e))?;
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
        let refs = backup.list_refs().map_err(|e| blame.error(e))?;
        Ok((StoreSide { backup, blame }, refs))
    }
}

impl DestinationSide for StoreSide {
    fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
        self.backup.list_refs().map_err(|e| self.blame.error(e))
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

    fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, SideError> {
        let status = self
            .backup
            .push(commands, pack)
            .map_err(|e| self.blame.error(e))?;
        for (original, archive) in self.backup.archived() {
            output::info(format_args!(
                "archived the old tip of {original} as {archive}"
            ));
        }
        Ok(status)
    }

    fn adopt_head(&self, target: &str) -> Result<(), SideError> {
        if self.backup.created() {
            self.backup
                .set_head(target)
                .map_err(|e| self.blame.error(e))?;
        }
        Ok(())
    }

    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }

    fn notes(&self) -> Vec<(String, String)> {
        self.backup
            .archived()
            .into_iter()
            .map(|(original, archive)| (original, format!("old tip kept as {archive}")))
            .collect()
    }
}

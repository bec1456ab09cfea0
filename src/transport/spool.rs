//! A request body kept so that it can be sent again, or sent with its
//! length: the push for a server that refuses chunked bodies (HTTP 411)
//! must announce a `Content-Length`, which is known only once the whole
//! pack has arrived from the source.
//!
//! The first [`MEMORY_LIMIT`] bytes stay in memory, which covers every
//! ordinary push; the rest goes to a temporary file, so that memory stays
//! bounded whatever the size of the pack. The file is created without a
//! name where the system allows it (`O_TMPFILE` on Linux; elsewhere it is
//! unlinked at once, or deleted on close on Windows), with mode 0600, in
//! the system's temporary directory: nothing is left behind when the run
//! ends, fails, panics or is killed, and no other user can read it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The most a spool holds in memory before it spills to disk.
pub(crate) const MEMORY_LIMIT: usize = 64 << 20;

/// A body read to its end and kept: in memory, then in a temporary file.
pub(crate) struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl Spool {
    /// Reads `source` to its end into a new spool in the system's temporary
    /// directory.
    pub(crate) fn new(source: &mut dyn Read) -> io::Result<Spool> {
        Spool::with_limit(source, MEMORY_LIMIT, &std::env::temp_dir())
    }

    /// As [`Spool::new`], keeping at most `memory_limit` bytes in memory
    /// and spilling the rest into a file created in `dir`.
    pub(crate) fn with_limit(
        source: &mut dyn Read,
        memory_limit: usize,
        dir: &Path,
    ) -> io::Result<Spool> {
        let mut memory = Vec::new();
        source.take(memory_limit as u64).read_to_end(&mut memory)?;
        let mut spool = Spool {
            len: memory.len() as u64,
            memory,
            file: None,
        };
        if spool.memory.len() < memory_limit {
            return Ok(spool);
        }
        // Full: whatever follows goes to disk. A source that ends exactly
        // at the limit leaves an empty file, which costs nothing.
        let mut file = tempfile::tempfile_in(dir).map_err(|e| in_dir(e, dir))?;
        // Linux's unnamed files take the umask's mode (0644 as a rule), and
        // one can still be given a name through /proc: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let spilled = io::copy(source, &mut file)?;
        file.flush()?;
        spool.len += spilled;
        spool.file = Some(file);
        Ok(spool)
    }

    /// How many bytes the spool holds.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds nothing.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether part of it went to a temporary file.
    #[cfg(test)]
    pub(crate) fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    /// A reader of the whole body from its start; each call starts over, so
    /// a refused request can be sent again.
    pub(crate) fn reader(&mut self) -> io::Result<SpoolReader<'_>> {
        let file = match &mut self.file {
            Some(file) => {
                file.seek(SeekFrom::Start(0))?;
                Some(&*file)
            }
            None => None,
        };
        Ok(SpoolReader {
            memory: io::Cursor::new(&self.memory),
            file,
        })
    }
}

/// Reads a [`Spool`] from its start: the bytes in memory, then the file.
pub(crate) struct SpoolReader<'a> {
    memory: io::Cursor<&'a Vec<u8>>,
    file: Option<&'a File>,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.memory.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        match &mut self.file {
            Some(file) => file.read(buf),
            None => Ok(0),
        }
    }
}

fn in_dir(e: io::Error, dir: &Path) -> io::Error {
    let dir: PathBuf = dir.to_owned();
    io::Error::new(
        e.kind(),
        format!(
            "cannot create a temporary file in {} to hold the push: {e}",
            dir.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from one position to the next, so that a reader
    /// that skipped or repeated a stretch would be caught.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect()
    }

    fn read_all(spool: &mut Spool) -> Vec<u8> {
        let mut out = Vec::new();
        spool.reader().unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_small_body_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(10_000);
        let mut spool = Spool::with_limit(&mut &data[..], 64 << 10, dir.path()).unwrap();
        assert_eq!(spool.len(), 10_000);
        assert!(!spool.is_spilled() && !spool.is_empty());
        assert_eq!(read_all(&mut spool), data);
        assert_eq!(entries(dir.path()), 0);
    }

    #[test]
    fn a_large_body_spills_to_a_private_file_that_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(3 << 20);
        let mut spool = Spool::with_limit(&mut &data[..], 1 << 20, dir.path()).unwrap();
        assert!(spool.is_spilled());
        assert_eq!(spool.len(), data.len() as u64);
        assert_eq!(spool.memory.len(), 1 << 20);
        // Read twice: a resend starts over.
        assert_eq!(read_all(&mut spool), data);
        assert_eq!(read_all(&mut spool), data);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = spool.file.as_ref().unwrap();
            let meta = file.metadata().unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            assert_eq!(meta.len(), 2 << 20);
        }
        // The file has no name in the directory while it is in use, so no
        // crash can leave it there; dropping the spool closes it.
        assert_eq!(entries(dir.path()), 0);
        drop(spool);
        assert_eq!(entries(dir.path()), 0);
    }

    #[test]
    fn a_spilled_file_is_gone_once_the_spool_is_dropped() {
        // Seen from outside the process: the open descriptor's target is
        // marked deleted, and the descriptor goes with the spool.
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let data = pattern(2 << 20);
            let spool = Spool::with_limit(&mut &data[..], 1 << 20, &std::env::temp_dir()).unwrap();
            let fd = spool.file.as_ref().unwrap().as_raw_fd();
            let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
            let target = std::fs::read_link(&link).unwrap();
            assert!(
                target.to_string_lossy().ends_with("(deleted)"),
                "{}",
                target.display()
            );
            assert!(
                target.starts_with(std::env::temp_dir()),
                "{}",
                target.display()
            );
            drop(spool);
            // The number may be reused by another test's file at once, but
            // never for this one.
            if let Ok(now) = std::fs::read_link(&link) {
                assert_ne!(now, target);
            }
        }
    }

    #[test]
    fn a_body_exactly_at_the_limit_and_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(4096);
        let mut spool = Spool::with_limit(&mut &data[..], 4096, dir.path()).unwrap();
        assert_eq!(spool.len(), 4096);
        assert_eq!(read_all(&mut spool), data);
        let mut empty = Spool::with_limit(&mut io::empty(), 4096, dir.path()).unwrap();
        assert!(empty.is_empty() && !empty.is_spilled());
        assert_eq!(read_all(&mut empty), b"");
    }

    #[test]
    fn a_failing_source_fails_the_spool() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "source cut"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let err = Spool::with_limit(&mut Failing(100), 1 << 20, dir.path())
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        let err = Spool::with_limit(&mut Failing(3 << 20), 1 << 20, dir.path())
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(entries(dir.path()), 0);
    }
}

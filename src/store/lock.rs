//! One writer per backup: a lock file naming the run that holds it.
//!
//! `git-relay.lock` in the repository's directory is created exclusively
//! (`O_EXCL`) and holds `<pid> <process start time> <host>`. A second run
//! waits for it to go away, up to a limit, then refuses with the holder's
//! pid. A run that was killed cannot remove its lock, so a lock whose
//! process is gone (same host; no such pid, or a pid reused by a process
//! that started at another time) is *stale*: it is reported and cleared.
//! A lock from another host (a backup on a network share) is never judged
//! stale from here: we cannot see that host's processes.
//!
//! An advisory `flock` would vanish with its process by itself, but it is
//! unreliable on network shares (where backups live) and needs `unsafe` or
//! a newer toolchain than the crate's minimum; a pid file works everywhere
//! and tells the user who holds the lock.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::StoreError;

/// The lock file's name inside the repository directory.
pub(crate) const FILE_NAME: &str = "git-relay.lock";

/// How long a lock file may stay empty (its writer between create and
/// write) before it is taken for the leftover of a crash.
const EMPTY_GRACE: Duration = Duration::from_secs(10);
/// How often a waiting run looks at the lock again.
const POLL: Duration = Duration::from_millis(200);

/// The held lock; dropping it removes the file.
#[derive(Debug)]
pub(crate) struct BackupLock {
    path: PathBuf,
    content: String,
    recovered: bool,
}

/// Who holds a lock, as its file says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holder {
    pid: u32,
    start: Option<u64>,
    host: String,
}

impl Holder {
    fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            start: start_time(pid),
            host: host_name(),
        }
    }

    fn render(&self) -> String {
        format!(
            "{} {} {}\n",
            self.pid,
            self.start.map_or("-".to_owned(), |s| s.to_string()),
            self.host
        )
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let start = match words.next()? {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        let host = words.next()?.to_owned();
        Some(Holder { pid, start, host })
    }

    /// Whether the holder is certainly gone (only decidable on our host).
    fn is_gone(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        if !pid_alive(self.pid) {
            return true;
        }
        // The pid is taken; by the same process only if it started when
        // the holder did.
        matches!((self.start, start_time(self.pid)), (Some(a), Some(b)) if a != b)
    }
}

impl BackupLock {
    /// Takes the lock of the repository at `repo_dir`, waiting up to `wait`
    /// for a live holder to let go.
    pub(crate) fn acquire(repo_dir: &Path, wait: Duration) -> Result<BackupLock, StoreError> {
        let path = repo_dir.join(FILE_NAME);
        let me = Holder::me().render();
        let started = Instant::now();
        let mut recovered = false;
        let lock_err = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(me.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(lock_err)?;
                    return Ok(BackupLock {
                        path,
                        content: me,
                        recovered,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(lock_err(e)),
            }
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                // Released between our attempts: try again at once.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(lock_err(e)),
            };
            let holder = Holder::parse(&text);
            let stale = match &holder {
                Some(h) => h.is_gone(),
                None => age(&path).is_some_and(|a| a > EMPTY_GRACE),
            };
            if stale {
                crate::output::warn(format_args!(
                    "clearing a stale lock left by a run that no longer exists ({}): {}",
                    text.trim(),
                    path.display()
                ));
                // Only if it still holds what we judged: another waiter may
                // have cleared it and taken the lock in the meantime. (The
                // window between this read and the removal is a few
                // microseconds; two runs clearing one stale lock at once is
                // the only way into it.)
                if fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(lock_err(e)),
                    }
                }
                recovered = true;
                continue;
            }
            if started.elapsed() >= wait {
                let holder = holder.unwrap_or(Holder {
                    pid: 0,
                    start: None,
                    host: "?".to_owned(),
                });
                return Err(StoreError::Locked {
                    path,
                    pid: holder.pid,
                    host: holder.host,
                    waited_s: started.elapsed().as_secs(),
                });
            }
            if started.elapsed() < POLL {
                crate::output::info(format_args!(
                    "waiting for another git-relay run to finish with this backup ({})",
                    text.trim()
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl BackupLock {
    /// Whether the lock was taken over from a run that died: whatever that
    /// run had half-done (ref lock files) is ours to clear.
    pub(crate) fn recovered(&self) -> bool {
        self.recovered
    }
}

impl Drop for BackupLock {
    fn drop(&mut self) {
        // Never remove a lock that is no longer ours.
        if fs::read_to_string(&self.path).ok().as_deref() == Some(self.content.as_str()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn age(path: &Path) -> Option<Duration> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}

fn host_name() -> String {
    let from_file = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether a process with this pid exists on this machine.
fn pid_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    if cfg!(unix) {
        // `kill -0` asks the kernel without sending anything.
        return crate::child::command("kill")
            .args(["-0", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_or(true, |s| s.success());
    }
    // Cannot tell: never clear someone else's lock on a guess.
    true
}

/// When a process started (clock ticks since boot, Linux), to tell a reused
/// pid from the holder.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after its closing parenthesis are plain. Start time is field 22.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lock_blocks_and_a_dead_one_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let held = BackupLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let refused = BackupLock::acquire(dir.path(), Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(refused, StoreError::Locked { pid, .. } if pid == std::process::id()),
            "{refused}"
        );
        drop(held);
        assert!(!dir.path().join(FILE_NAME).exists());

        // A pid that cannot exist (above the kernel's pid_max) is gone.
        let dead = Holder {
            pid: u32::MAX - 1,
            start: None,
            host: host_name(),
        };
        fs::write(dir.path().join(FILE_NAME), dead.render()).unwrap();
        let taken = BackupLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.starts_with(&format!("{} ", std::process::id())),
            "{text}"
        );
        drop(taken);

        // Another host's lock is never judged from here.
        let remote = Holder {
            pid: u32::MAX - 1,
            start: None,
            host: "elsewhere.example".to_owned(),
        };
        fs::write(dir.path().join(FILE_NAME), remote.render()).unwrap();
        assert!(BackupLock::acquire(dir.path(), Duration::ZERO).is_err());
    }

    #[test]
    fn holders_round_trip() {
        let me = Holder::me();
        assert_eq!(Holder::parse(&me.render()), Some(me.clone()));
        assert!(!me.is_gone());
        assert_eq!(Holder::parse("garbage"), None);
    }
}

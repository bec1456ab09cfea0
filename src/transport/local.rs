//! Local source repositories, reached through the machine's own git.
//!
//! `git upload-pack --stateless-rpc` is exactly what `git http-backend` runs
//! behind a web server, so a local repository speaks the same bytes as a
//! smart-HTTP one and the mirror engine does not know the difference.
//! `--advertise-refs` gives the discovery answer (without the `# service=`
//! preamble that HTTP adds). It is the preferred reader of a local source
//! when `git` is installed: it reuses the deltas already stored and sends
//! thin packs; without `git`, `crate::store::Git2Reader` reads through
//! libgit2. Local *destinations* are backups, written through libgit2 by
//! `crate::store`, so this transport serves upload-pack only.
//!
//! Only paths cross the process boundary: no credential is ever put on a
//! child's command line, and `crate::child` keeps them out of its
//! environment.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use super::{Body, Response, Service, Transport, TransportError};

/// A repository on this machine.
pub(crate) struct LocalTransport {
    path: PathBuf,
    display: String,
}

impl LocalTransport {
    /// Opens the existing repository at `path`; a shallow clone is refused.
    pub(crate) fn open(path: &Path) -> Result<LocalTransport, TransportError> {
        if !path.exists() {
            return Err(TransportError::Local(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let probe = crate::child::command("git")
            .arg("-C")
            .arg(path)
            .args(["rev-parse", "--is-shallow-repository"])
            .stdin(Stdio::null())
            .output()
            .map_err(git_missing)?;
        if !probe.status.success() {
            let said = String::from_utf8_lossy(&probe.stderr);
            // git refuses a repository of another user before anything else;
            // that is not the same as no repository at all.
            if said.contains("dubious ownership") {
                return Err(TransportError::Local(
                    crate::store::StoreError::NotOwned(path.to_owned()).to_string(),
                ));
            }
            let reason = said.lines().next().unwrap_or("").trim();
            let reason = reason.strip_prefix("fatal: ").unwrap_or(reason);
            return Err(TransportError::Local(
                if reason.is_empty() || reason.starts_with("not a git repository") {
                    format!("{} is not a git repository", path.display())
                } else {
                    format!("git cannot read {}: {reason}", path.display())
                },
            ));
        }
        if String::from_utf8_lossy(&probe.stdout).trim() == "true" {
            return Err(TransportError::Local(format!(
                "{} is a shallow clone and lacks history a mirror needs; fetch the full history first (`git fetch --unshallow`, or `fetchDepth: 0` on an Azure Pipelines checkout) or mirror from the remote URL instead",
                path.display()
            )));
        }
        Ok(LocalTransport {
            display: path.display().to_string(),
            path: path.to_owned(),
        })
    }

    fn command(&self, service: Service, v2: bool) -> Result<Command, TransportError> {
        if service != Service::UploadPack {
            return Err(TransportError::Local(format!(
                "{} is a local source; local destinations are written as backups, not pushed to",
                self.display
            )));
        }
        let mut cmd = crate::child::command("git");
        // Filters let the engine read a history's commits alone (batched
        // pushes) or its small blobs alone (LFS pointers); a repository on
        // this machine has no server load to protect from them.
        cmd.args([
            "-c",
            "uploadpack.allowFilter=true",
            "upload-pack",
            "--stateless-rpc",
        ]);
        if v2 {
            cmd.env("GIT_PROTOCOL", "version=2");
        } else {
            cmd.env_remove("GIT_PROTOCOL");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }
}

fn git_missing(e: io::Error) -> TransportError {
    TransportError::Local(format!(
        "cannot run `git` ({e}); local repositories need git on PATH"
    ))
}

impl Transport for LocalTransport {
    fn discover(&self, service: Service, v2: bool) -> Result<Response, TransportError> {
        let mut cmd = self.command(service, v2)?;
        cmd.arg("--advertise-refs").arg(&self.path);
        let mut child = cmd.spawn().map_err(git_missing)?;
        drop(child.stdin.take());
        Ok(Box::new(ChildReader::new(child, service)))
    }

    fn rpc(&self, service: Service, v2: bool, body: Body<'_>) -> Result<Response, TransportError> {
        let mut cmd = self.command(service, v2)?;
        cmd.arg(&self.path);
        let mut child = cmd.spawn().map_err(git_missing)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // upload-pack may answer while still reading (v0 sends ACKs as haves
        // arrive), so it is fed from another thread; a fetch request is small.
        let mut request: Box<dyn Read + Send> = match body {
            Body::Bytes(bytes) => Box::new(io::Cursor::new(bytes)),
            Body::Stream(_) | Body::Sized(..) => {
                return Err(TransportError::Local(
                    "a local source takes fetch requests, not streamed pushes".into(),
                ))
            }
        };
        std::thread::spawn(move || {
            let _ = io::copy(&mut request, &mut stdin);
        });
        Ok(Box::new(ChildReader::new(child, service)))
    }

    fn is_local(&self) -> bool {
        true
    }

    fn display(&self) -> &str {
        &self.display
    }
}

/// The stdout of a git child process; at its end, the exit status is
/// checked and a failure becomes an error carrying git's stderr.
struct ChildReader {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    service: Service,
    done: bool,
}

impl ChildReader {
    fn new(mut child: Child, service: Service) -> ChildReader {
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        ChildReader {
            child,
            stdout,
            stderr,
            service,
            done: false,
        }
    }
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.done = true;
            let status = self.child.wait()?;
            let stderr = self
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            if !status.success() {
                return Err(io::Error::other(format!(
                    "local git {} failed ({status}): {}",
                    self.service.name(),
                    stderr.trim()
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        if !self.done {
            // The reader was abandoned (a dry run stops after negotiation):
            // do not leave git running or a zombie behind.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

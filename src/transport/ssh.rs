//! Repositories reached through the system's OpenSSH client.
//!
//! Over SSH the server speaks first (its ref advertisement, or its protocol
//! v2 capabilities) and the conversation is stateful, while the engine
//! speaks git's stateless model: *discover*, then independent *rpc*s. The
//! two are mapped as git itself does in stateless mode: `discover` connects
//! and returns the advertisement; `rpc` connects anew, reads the
//! advertisement to its flush-pkt and drops it, then sends the request and
//! hands back the answer. One saving: the v2 connection `discover` opened is
//! kept for the first `rpc` (the `ls-refs` that always follows), so a no-op
//! costs one SSH connection per side.
//!
//! One `ssh` process per exchange, run the way git runs it
//! (`GIT_SSH_COMMAND` or `core.sshCommand` through the shell, else
//! `GIT_SSH`, else `ssh`), with OpenSSH options that never prompt
//! (`BatchMode`), never forward the agent, and check host keys strictly
//! unless the user opts in to `accept-new`. A key given as text (a
//! CI secret) is written to a private temporary file that is removed when
//! the transport is dropped; files left by a killed run are removed by the
//! next. Only the path, quoted for the remote shell, crosses to the server;
//! `crate::child` keeps our secrets out of `ssh`'s environment.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Body, NetworkOptions, Response, Service, Transport, TransportError};

/// The most bytes of advertisement read before the engine's own limits
/// apply: a server that never ends its advertisement is cut off here.
const MAX_ADVERTISEMENT: usize = 512 << 20;

/// The most bytes of a push's answer kept (report-status and progress).
const MAX_PUSH_ANSWER: usize = 64 << 20;

/// The prefix of the temporary files holding keys and known hosts, followed
/// by the machine's name and the owning process id (see `remove_stale`).
const TEMP_PREFIX: &str = "git-relay-ssh-";

/// This machine's (or container's) name as it goes into file names: two
/// containers sharing a temporary directory have their own process ids.
fn machine_tag() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let tag: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    if tag.is_empty() {
        "host".to_owned()
    } else {
        tag
    }
}

/// SSH settings of one side.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SshOptions {
    /// A private key file (`--source-ssh-key` / `--dest-ssh-key`).
    pub(crate) key_file: Option<PathBuf>,
    /// A private key's text (`GIT_RELAY_SOURCE_SSH_KEY` /
    /// `GIT_RELAY_DEST_SSH_KEY`, a task's secret): written to a private
    /// temporary file for `ssh`. `key_file` wins when both are given.
    pub(crate) key_text: Option<String>,
    /// The known-hosts file to check host keys against (`--ssh-known-hosts`).
    pub(crate) known_hosts_file: Option<PathBuf>,
    /// Known-hosts lines (`GIT_RELAY_SSH_KNOWN_HOSTS`), used when no file
    /// is named.
    pub(crate) known_hosts_text: Option<String>,
    /// Accept and remember the key of a host never seen before
    /// (`--ssh-accept-new-host-keys`); a changed key is refused whatever
    /// this says.
    pub(crate) accept_new_host_keys: bool,
}

impl fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshOptions")
            .field("key_file", &self.key_file)
            .field("key_text", &self.key_text.as_ref().map(|_| "***"))
            .field("known_hosts_file", &self.known_hosts_file)
            .field("known_hosts_text", &self.known_hosts_text.is_some())
            .field("accept_new_host_keys", &self.accept_new_host_keys)
            .finish()
    }
}

/// Why an SSH exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SshError {
    /// The ssh program could not be started.
    #[error("cannot run `{program}` ({detail})")]
    Missing {
        /// What was run.
        program: String,
        /// What the system said.
        detail: String,
    },
    /// No key is known for the host and strict checking is on.
    #[error("the host key of {host} is not known")]
    HostKeyUnknown {
        /// The host.
        host: String,
    },
    /// The host's key differs from the one on record.
    #[error("the host key of {host} has CHANGED from the one on record (a man-in-the-middle, or a reinstalled server)")]
    HostKeyChanged {
        /// The host.
        host: String,
    },
    /// The server refused every key offered.
    #[error("permission denied: the server did not accept the key ({detail})")]
    PermissionDenied {
        /// What ssh said.
        detail: String,
    },
    /// The key has a passphrase, which a non-interactive run cannot type.
    #[error("the SSH key {key} is protected by a passphrase")]
    KeyPassphrase {
        /// Which key (a path, or where its text came from).
        key: String,
    },
    /// The key file cannot be used.
    #[error("the SSH key {key} cannot be used: {detail}")]
    KeyUnusable {
        /// Which key.
        key: String,
        /// Why.
        detail: String,
    },
    /// The server runs, but has no such repository.
    #[error("repository not found: {detail}")]
    NotFound {
        /// What the server said.
        detail: String,
    },
    /// The host name does not resolve.
    #[error("could not resolve host {host}")]
    UnknownHost {
        /// The host.
        host: String,
    },
    /// The connection was refused, or timed out.
    #[error("could not connect: {detail}")]
    Unreachable {
        /// What ssh said.
        detail: String,
        /// Whether it timed out rather than being refused.
        timed_out: bool,
    },
    /// Anything else.
    #[error("ssh failed ({status}){}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Failed {
        /// The exit status.
        status: String,
        /// The end of ssh's and the server's messages.
        detail: String,
    },
}

impl SshError {
    /// Whether trying again may help: a refused or timed-out connection.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, SshError::Unreachable { .. })
    }

    /// What the user can do about it.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        Some(match self {
            SshError::Missing { .. } => "install OpenSSH's client (`ssh`; Windows ships it as an optional feature), or point GIT_SSH_COMMAND / GIT_SSH at one",
            SshError::HostKeyUnknown { .. } => "give the host's key with --ssh-known-hosts FILE (or its lines in GIT_RELAY_SSH_KNOWN_HOSTS; `ssh-keyscan HOST` prints them, check them against the host's published fingerprints), or trust it on first use with --ssh-accept-new-host-keys",
            SshError::HostKeyChanged { .. } => "if the server really was reinstalled or its key rotated, replace its line in the known-hosts file; otherwise do not connect: someone may be in the middle",
            SshError::PermissionDenied { .. } => "give the side's private key with --source-ssh-key / --dest-ssh-key (or its text in GIT_RELAY_SOURCE_SSH_KEY / GIT_RELAY_DEST_SSH_KEY), and check that its public half is registered (a deploy key needs write access on the destination)",
            SshError::KeyPassphrase { .. } => "a run cannot type a passphrase: use a key without one (a deploy key made for the mirror), or remove it with `ssh-keygen -p -N '' -f KEY`",
            SshError::KeyUnusable { .. } => "check the key's path and that it is an OpenSSH or PEM private key; a key file must be readable by its owner only (chmod 600)",
            SshError::NotFound { .. } => "check the repository path in the URL: `host:path` is relative to the login's home, `ssh://host/path` is absolute",
            SshError::UnknownHost { .. } => "check the host name in the URL and the machine's DNS",
            SshError::Unreachable { timed_out: true, .. } => "check the host, port and network path (firewalls often drop SSH); raise --timeout if the server is slow to answer",
            SshError::Unreachable { timed_out: false, .. } => "check the host and port: nothing accepts SSH connections there",
            SshError::Failed { .. } => return None,
        })
    }
}

/// A key or known-hosts text written to a private temporary file, removed
/// when the last transport holding it is dropped, or at a signal
/// ([`remove_temporary_files`]).
struct TempFile(tempfile::TempPath);

/// The temporary files alive in this process, for a signal's cleanup.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes every SSH key and known-hosts file this process wrote and still
/// holds: what a run stopped by a signal does before it exits.
pub fn remove_temporary_files() {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for path in live.iter() {
        let _ = fs::remove_file(path);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|p| p.as_path() != self.0.as_ref() as &Path);
    }
}

impl TempFile {
    fn write(what: &str, text: &str) -> Result<TempFile, TransportError> {
        remove_stale();
        let mut file = tempfile::Builder::new()
            .prefix(&format!(
                "{TEMP_PREFIX}{}-{}-{what}-",
                machine_tag(),
                std::process::id()
            ))
            .tempfile()
            .map_err(|e| {
                TransportError::Local(format!(
                    "cannot write the SSH {what} to a temporary file: {e}"
                ))
            })?;
        // OpenSSH wants Unix line ends and a final newline; secrets pasted on
        // Windows, or trimmed by a CI system, have neither.
        let mut text = text.replace("\r\n", "\n");
        if !text.ends_with('\n') {
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| {
                TransportError::Local(format!(
                    "cannot write the SSH {what} to a temporary file: {e}"
                ))
            })?;
        let path = file.into_temp_path();
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_path_buf());
        Ok(TempFile(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

/// Removes the temporary files of runs on this machine that no longer
/// exist (a run killed by a signal cannot clean up after itself). Only
/// where `/proc` tells which processes live; files of other machines or
/// containers sharing the directory are left alone.
fn remove_stale() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let ours = format!("{}-", machine_tag());
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let rest = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX));
        let Some(rest) = rest.and_then(|r| r.strip_prefix(&ours)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().filter(|p| p.parse::<u32>().is_ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Files and settings shared by every exchange with one repository.
struct Prepared {
    /// The key file to offer, and how to name it in messages.
    key: Option<(PathBuf, String)>,
    known_hosts: Option<PathBuf>,
    /// Keeps the temporary files alive as long as the transport.
    _temp: Vec<TempFile>,
}

/// A repository reached through `ssh`.
pub(crate) struct SshTransport {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    display: String,
    accept_new: bool,
    timeout: Duration,
    prepared: Arc<Prepared>,
    /// The v2 connection `discover` opened, kept for the first `rpc`.
    pending: Mutex<Option<Connection>>,
    program: SshProgram,
}

impl SshTransport {
    /// Prepares to reach `path` on `host`: writes a key or known hosts
    /// given as text to private files, and checks that a key needs no
    /// passphrase. `side` names the side's settings in messages.
    pub(crate) fn new(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        path: &str,
        display: &str,
        side: &str,
        network: &NetworkOptions,
    ) -> Result<SshTransport, TransportError> {
        let options = &network.ssh;
        let mut temp = Vec::new();
        let key = match (&options.key_file, &options.key_text) {
            (Some(path), _) => Some((path.clone(), path.display().to_string())),
            (None, Some(text)) => {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    crate::auth::register_secret(line);
                }
                let file = TempFile::write("key", text)?;
                let path = file.path().to_owned();
                temp.push(file);
                Some((path, format!("given as text for the {side}")))
            }
            (None, None) => None,
        };
        if let Some((path, name)) = &key {
            check_key(path, name)?;
        }
        let known_hosts = match (&options.known_hosts_file, &options.known_hosts_text) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(text)) => {
                let file = TempFile::write("known_hosts", text)?;
                let path = file.path().to_owned();
                temp.push(file);
                Some(path)
            }
            (None, None) => None,
        };
        Ok(SshTransport {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            display: display.to_owned(),
            accept_new: options.accept_new_host_keys,
            timeout: network.timeout,
            prepared: Arc::new(Prepared {
                key,
                known_hosts,
                _temp: temp,
            }),
            pending: Mutex::new(None),
            program: SshProgram::choose(),
        })
    }

    /// The `ssh` command for one exchange with `service`.
    fn command(&self, service: Service, v2: bool) -> (Command, String) {
        let mut args: Vec<String> = Vec::new();
        let mut option = |o: String| {
            args.push("-o".to_owned());
            args.push(o);
        };
        option("BatchMode=yes".into());
        option("ForwardAgent=no".into());
        option("ForwardX11=no".into());
        option("ClearAllForwardings=yes".into());
        option("PermitLocalCommand=no".into());
        option(format!(
            "StrictHostKeyChecking={}",
            if self.accept_new { "accept-new" } else { "yes" }
        ));
        let secs = self.timeout.as_secs().max(1);
        option(format!("ConnectTimeout={secs}"));
        // A connection silent for about the timeout is given up.
        option(format!("ServerAliveInterval={}", (secs / 3).max(1)));
        option("ServerAliveCountMax=3".into());
        if let Some(known) = &self.prepared.known_hosts {
            option(format!("UserKnownHostsFile={}", ssh_config_quote(known)));
        }
        if let Some((key, _)) = &self.prepared.key {
            option("IdentitiesOnly=yes".into());
            option(format!("IdentityFile={}", ssh_config_quote(key)));
        }
        if v2 {
            option("SetEnv=GIT_PROTOCOL=version=2".into());
        }
        if let Some(port) = self.port {
            args.push("-p".to_owned());
            args.push(port.to_string());
        }
        args.push(match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        });
        args.push(format!("{} {}", service.name(), shell_quote(&self.path)));
        let (mut cmd, program) = ssh_program(&self.program);
        cmd.args(&args);
        cmd.env_remove("GIT_PROTOCOL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        (cmd, program)
    }

    /// Connects and reads the advertisement to its flush-pkt.
    fn connect(&self, service: Service, v2: bool) -> Result<Advertised, TransportError> {
        let (mut cmd, program) = self.command(service, v2);
        let mut child = cmd.spawn().map_err(|e| {
            TransportError::Ssh(Box::new(SshError::Missing {
                program: program.clone(),
                detail: e.to_string(),
            }))
        })?;
        let stdin = child.stdin.take();
        let mut stdout = Pump::start(child.stdout.take().expect("stdout is piped"), self.timeout);
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        let mut connection = Connection {
            child,
            stdin,
            stdout: None,
            stderr,
            done: false,
        };
        match read_advertisement(&mut stdout) {
            Ok(Some(advertisement)) => {
                connection.stdout = Some(stdout);
                Ok(Advertised {
                    connection,
                    advertisement,
                })
            }
            Ok(None) => {
                drop(stdout);
                let (status, said) = connection.finish();
                Err(TransportError::Ssh(Box::new(classify(
                    &self.host, status, &said,
                ))))
            }
            Err(e) => Err(TransportError::Io(e)),
        }
    }
}

/// Reads what ssh and the server said when a connection ended before it
/// gave anything.
fn classify(host: &str, status: Option<ExitStatus>, said: &str) -> SshError {
    let host = host.to_owned();
    let lower = said.to_ascii_lowercase();
    let last = said
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("@@@"))
        .unwrap_or("")
        .to_owned();
    let detail = crate::auth::redact(&last).into_owned();
    if lower.contains("remote host identification has changed")
        || lower.contains("host key for") && lower.contains("has changed")
    {
        SshError::HostKeyChanged { host }
    } else if lower.contains("host key is known for")
        || lower.contains("host key verification failed")
    {
        SshError::HostKeyUnknown { host }
    } else if lower.contains("permission denied") {
        SshError::PermissionDenied { detail }
    } else if lower.contains("could not resolve hostname") {
        SshError::UnknownHost { host }
    } else if lower.contains("connection refused")
        || lower.contains("no route to host")
        || lower.contains("network is unreachable")
        || lower.contains("connection closed by")
        || lower.contains("connection reset")
    {
        SshError::Unreachable {
            detail,
            timed_out: false,
        }
    } else if lower.contains("timed out") {
        SshError::Unreachable {
            detail,
            timed_out: true,
        }
    } else if lower.contains("not appear to be a git repository")
        || lower.contains("not a git repository")
        || lower.contains("no such file or directory")
    {
        SshError::NotFound { detail }
    } else {
        SshError::Failed {
            status: status.map_or("killed".to_owned(), |s| s.to_string()),
            detail,
        }
    }
}

/// The ssh program as git chooses it: `GIT_SSH_COMMAND` (a shell command
/// line, the arguments appended), else `GIT_SSH` (a program), else `ssh`.
/// Every one is taken to accept OpenSSH's options.
fn ssh_program(program: &SshProgram) -> (Command, String) {
    match program {
        SshProgram::Shell(line) => {
            let mut cmd = crate::child::command("sh");
            cmd.arg("-c").arg(format!("{line} \"$@\"")).arg(line);
            (cmd, line.clone())
        }
        SshProgram::Program(program) => (
            crate::child::command(program),
            program.to_string_lossy().into_owned(),
        ),
    }
}

/// Which ssh to run, chosen once per transport.
enum SshProgram {
    /// A shell command line (`GIT_SSH_COMMAND`, `core.sshCommand`).
    Shell(String),
    /// A program (`GIT_SSH`, or `ssh`).
    Program(std::ffi::OsString),
}

impl SshProgram {
    /// git's order: `GIT_SSH_COMMAND`, then `core.sshCommand` (of the
    /// user's and the system's git configuration), then `GIT_SSH`, then
    /// `ssh`.
    fn choose() -> SshProgram {
        let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(line) = nonempty("GIT_SSH_COMMAND") {
            return SshProgram::Shell(line.to_string_lossy().into_owned());
        }
        // Only the user's and the system's settings: the repository git-relay
        // happens to run in (a CI checkout) must not choose what runs.
        let configured = crate::child::command("git")
            .args(["config", "--get", "core.sshCommand"])
            .env("GIT_DIR", "/nonexistent/git-relay")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|line| !line.is_empty());
        if let Some(line) = configured {
            return SshProgram::Shell(line);
        }
        SshProgram::Program(nonempty("GIT_SSH").unwrap_or_else(|| "ssh".into()))
    }
}

/// Quotes `text` for the remote POSIX shell as git does: in single quotes,
/// a `'` as `'\''` and a `!` as `'\!'` (for csh).
fn shell_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("'\\''"),
            '!' => quoted.push_str("'\\!'"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// A path as an `ssh -o` value: double-quoted when it holds a space.
fn ssh_config_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// Checks that the key can be read without a passphrase, with
/// `ssh-keygen -y` (skipped where there is none).
fn check_key(path: &Path, name: &str) -> Result<(), TransportError> {
    if !path.is_file() {
        return Err(TransportError::Ssh(Box::new(SshError::KeyUnusable {
            key: name.to_owned(),
            detail: "no such file".to_owned(),
        })));
    }
    let Ok(out) = crate::child::command("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let lower = said.to_ascii_lowercase();
    Err(TransportError::Ssh(Box::new(
        if lower.contains("passphrase") && !lower.contains("unprotected") {
            SshError::KeyPassphrase {
                key: name.to_owned(),
            }
        } else {
            let detail = said
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("@@@"))
                .unwrap_or("ssh-keygen cannot read it");
            SshError::KeyUnusable {
                key: name.to_owned(),
                detail: crate::auth::redact(detail).into_owned(),
            }
        },
    )))
}

/// Reads pkt-lines up to and including the first flush-pkt; `None` when
/// the stream ends first (the connection failed: the caller reads why).
fn read_advertisement(stdout: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut advertisement = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match read_full(stdout, &mut len)? {
            0 => return Ok(None),
            4 => {}
            _ => return Ok(None),
        }
        advertisement.extend_from_slice(&len);
        let text = std::str::from_utf8(&len).ok();
        let Some(n) = text.and_then(|t| usize::from_str_radix(t, 16).ok()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server's advertisement is not pkt-line framed",
            ));
        };
        if n == 0 {
            return Ok(Some(advertisement));
        }
        if n < 4 {
            // A delimiter or response-end packet: not in an advertisement,
            // left for the protocol layer to judge.
            continue;
        }
        if advertisement.len() + n > MAX_ADVERTISEMENT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server's advertisement is too large",
            ));
        }
        let start = advertisement.len();
        advertisement.resize(start + n - 4, 0);
        if read_full(stdout, &mut advertisement[start..])? != n - 4 {
            return Ok(None);
        }
    }
}

/// Fills `buf` unless the stream ends first; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The output of `ssh`, read on a thread of its own so that a read gives up
/// after the timeout: a server that stops talking on a live connection
/// (which OpenSSH's keep-alives do not notice) ends the run rather than
/// hanging it. At most a few chunks wait in between.
struct Pump {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    timeout: Duration,
    ended: bool,
}

impl Pump {
    fn start(mut stdout: ChildStdout, timeout: Duration) -> Pump {
        let (send, chunks) = mpsc::sync_channel(4);
        std::thread::spawn(move || loop {
            let mut chunk = vec![0; 64 << 10];
            match stdout.read(&mut chunk) {
                Ok(n) => {
                    chunk.truncate(n);
                    if send.send(Ok(chunk)).is_err() || n == 0 {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = send.send(Err(e));
                    return;
                }
            }
        });
        Pump {
            chunks,
            chunk: Vec::new(),
            at: 0,
            timeout: timeout.max(Duration::from_secs(1)),
            ended: false,
        }
    }
}

impl Read for Pump {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            match self.chunks.recv_timeout(self.timeout) {
                Ok(Ok(chunk)) if chunk.is_empty() => self.ended = true,
                Ok(Ok(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data from the server for {}s", self.timeout.as_secs()),
                    ))
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// One running `ssh`.
struct Connection {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Pump>,
    stderr: Option<JoinHandle<String>>,
    done: bool,
}

/// A connection with the advertisement it began with.
struct Advertised {
    connection: Connection,
    advertisement: Vec<u8>,
}

impl Advertised {
    /// Whether the server answered in protocol v2.
    fn is_v2(&self) -> bool {
        self.advertisement
            .get(4..)
            .is_some_and(|l| l.starts_with(b"version 2"))
    }
}

impl Connection {
    /// Ends a connection whose advertisement was all we wanted, without
    /// waiting for it: a v0 server is told with a flush-pkt that nothing
    /// follows, a v2 server sees its input end.
    fn close_in_background(mut self, v2: bool) {
        std::thread::spawn(move || {
            if let Some(mut stdin) = self.stdin.take() {
                if !v2 {
                    let _ = stdin.write_all(b"0000");
                }
            }
            if let Some(mut stdout) = self.stdout.take() {
                let _ = io::copy(&mut stdout, &mut io::sink());
            }
            self.finish();
        });
    }

    /// Waits for the process; returns its status and what it said.
    fn finish(&mut self) -> (Option<ExitStatus>, String) {
        self.done = true;
        drop(self.stdin.take());
        let status = self.child.wait().ok();
        let said = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, said)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned (a v2 connection never used, a dry run that stops
            // early): no ssh left running, no zombie.
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Transport for SshTransport {
    fn discover(&self, service: Service, v2: bool) -> Result<Response, TransportError> {
        let mut advertised = self.connect(service, v2)?;
        let answered_v2 = advertised.is_v2();
        let advertisement = std::mem::take(&mut advertised.advertisement);
        if answered_v2 && service == Service::UploadPack {
            // `ls-refs` follows at once: it takes this connection.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            *pending = Some(advertised.connection);
        } else {
            advertised.connection.close_in_background(answered_v2);
        }
        Ok(Box::new(io::Cursor::new(advertisement)))
    }

    fn rpc(&self, service: Service, v2: bool, body: Body<'_>) -> Result<Response, TransportError> {
        let pending = match service == Service::UploadPack && v2 {
            true => (self.pending.lock().unwrap_or_else(|p| p.into_inner())).take(),
            false => None,
        };
        let mut connection = match pending {
            Some(connection) => connection,
            None => self.connect(service, v2)?.connection,
        };
        let mut stdin = connection.stdin.take().expect("stdin is piped");
        let stdout = connection.stdout.take().expect("stdout was kept");
        match body {
            Body::Bytes(bytes) => {
                // The server may answer while still reading (v0 sends ACKs
                // as haves arrive), so the request goes from another thread;
                // dropping stdin then tells the server nothing follows.
                std::thread::spawn(move || {
                    let _ = stdin.write_all(&bytes);
                });
                Ok(Box::new(SshReader {
                    connection,
                    stdout,
                    host: self.host.clone(),
                    got: 0,
                }))
            }
            Body::Stream(request) => self.push(connection, stdin, stdout, request, None),
            Body::Sized(request, len) => self.push(connection, stdin, stdout, request, Some(len)),
        }
    }

    fn display(&self) -> &str {
        &self.display
    }
}

impl SshTransport {
    /// Sends a push while its (small) answer is read on another thread, so
    /// that progress the server sends meanwhile cannot fill the pipe and
    /// stall both ends.
    fn push(
        &self,
        mut connection: Connection,
        mut stdin: ChildStdin,
        stdout: Pump,
        request: &mut (dyn Read + Send),
        len: Option<u64>,
    ) -> Result<Response, TransportError> {
        let reader = std::thread::spawn(move || {
            let mut answer = Vec::new();
            let read = stdout.take(MAX_PUSH_ANSWER as u64).read_to_end(&mut answer);
            (answer, read)
        });
        let written = match len {
            None => io::copy(request, &mut stdin),
            Some(len) => io::copy(&mut request.take(len), &mut stdin).and_then(|n| {
                if n == len {
                    Ok(n)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the push ended after {n} of its {len} bytes"),
                    ))
                }
            }),
        };
        drop(stdin);
        let (answer, read) = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (status, said) = connection.finish();
        if answer.is_empty() {
            if status.is_some_and(|s| !s.success()) || status.is_none() {
                return Err(TransportError::Ssh(Box::new(classify(
                    &self.host, status, &said,
                ))));
            }
            written?;
            read?;
        }
        Ok(Box::new(io::Cursor::new(answer)))
    }
}

/// The answer to a request, streamed from `ssh`; at its end, a failure
/// before any answer becomes an error saying what ssh or the server said.
/// A failure after an answer is left to the protocol layer, which knows
/// whether the answer was whole (a v0 server that was sent its last
/// request of a negotiation round fails when its input ends, as it should).
struct SshReader {
    connection: Connection,
    stdout: Pump,
    host: String,
    got: u64,
}

impl Read for SshReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.connection.done {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        self.got += n as u64;
        if n == 0 && !buf.is_empty() {
            let (status, said) = self.connection.finish();
            if self.got == 0 && status.is_none_or(|s| !s.success()) {
                return Err(io::Error::other(classify(&self.host, status, &said)));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_remote_shell_as_git_does() {
        assert_eq!(shell_quote("/srv/r.git"), "'/srv/r.git'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("a!b"), "'a'\\!'b'");
        assert_eq!(shell_quote("$(rm -rf ~) `x`"), "'$(rm -rf ~) `x`'");
    }

    #[test]
    fn debug_output_never_holds_the_key() {
        let options = SshOptions {
            key_text: Some("-----BEGIN-----\nsecret-key-line\n".into()),
            ..SshOptions::default()
        };
        assert!(!format!("{options:?}").contains("secret-key-line"));
    }

    #[test]
    fn the_advertisement_ends_at_its_flush() {
        let mut wire: &[u8] = b"000eversion 2\n000els-refs=x\n0000rest";
        let ad = read_advertisement(&mut wire).unwrap().unwrap();
        assert_eq!(ad, b"000eversion 2\n000els-refs=x\n0000");
        assert_eq!(wire, b"rest");
        let mut cut: &[u8] = b"000eversion";
        assert_eq!(read_advertisement(&mut cut).unwrap(), None);
        let mut garbage: &[u8] = b"zzzz";
        assert!(read_advertisement(&mut garbage).is_err());
    }

    #[test]
    fn failures_are_read_from_what_ssh_said() {
        let kind = |said: &str| classify("h", None, said);
        assert!(matches!(
            kind("@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n"),
            SshError::HostKeyChanged { .. }
        ));
        assert!(matches!(
            kind("No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n"),
            SshError::HostKeyUnknown { .. }
        ));
        assert!(matches!(
            kind("git@h: Permission denied (publickey).\n"),
            SshError::PermissionDenied { .. }
        ));
        assert!(matches!(
            kind("ssh: connect to host h port 1: Connection refused\n"),
            SshError::Unreachable {
                timed_out: false,
                ..
            }
        ));
        assert!(matches!(
            kind("ssh: connect to host h port 22: Connection timed out\n"),
            SshError::Unreachable {
                timed_out: true,
                ..
            }
        ));
        assert!(matches!(
            kind("fatal: '/x' does not appear to be a git repository\n"),
            SshError::NotFound { .. }
        ));
    }
}

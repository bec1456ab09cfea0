//! A real OpenSSH server on 127.0.0.1 serving bare repositories.
//!
//! `SshServer::start()` makes a host key and a user key with `ssh-keygen`,
//! writes an `sshd_config` that takes that key only (no passwords, no PAM;
//! root may sign in with a key, for CI, which runs tests as root) and runs
//! Debian's `/usr/sbin/sshd` in the foreground at a free port; Drop kills
//! it. Every session goes through a forced command (a small shell script)
//! that logs the command asked for, one line per connection, before running
//! it, so tests can count connections; the same script can drop
//! `GIT_PROTOCOL` to play a server that ignores it (protocol v0).
//!
//! Repositories live under `repos/` in a temporary directory; URLs carry
//! their absolute path (`ssh://user@127.0.0.1:PORT/ABS/PATH`).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::repo;

pub struct SshServer {
    dir: TempDir,
    port: u16,
    user: String,
    child: Child,
}

fn keygen(path: &Path, passphrase: &str) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "git-relay-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SshServer {
    /// Starts sshd, waiting until it accepts connections.
    pub fn start() -> SshServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("repos")).unwrap();
        keygen(&root.join("host_key"), "");
        keygen(&root.join("user_key"), "");
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned();
        // The forced command: log, then run what the client asked for as a
        // login shell would (`git-upload-pack '/path'`).
        let wrapper = root.join("serve.sh");
        let log = root.join("connections.log");
        let v0 = root.join("v0");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> '{}'\n\
                 if [ -e '{}' ]; then unset GIT_PROTOCOL; fi\n\
                 exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
                log.display(),
                v0.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let public = fs::read_to_string(root.join("user_key.pub")).unwrap();
        fs::write(
            root.join("authorized_keys"),
            format!(
                "command=\"{}\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {public}",
                wrapper.display()
            ),
        )
        .unwrap();
        // sshd insists on its privilege-separation directory.
        let _ = fs::create_dir_all("/run/sshd");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            fs::write(
                root.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\n\
                     PidFile none\nAuthorizedKeysFile {root}/authorized_keys\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nStrictModes no\n\
                     AcceptEnv GIT_PROTOCOL\nPrintMotd no\nLogLevel VERBOSE\n\
                     AllowUsers {user}\n",
                    root = root.display()
                ),
            )
            .unwrap();
            let stderr = fs::File::create(root.join("sshd.log")).unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(root.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("run /usr/sbin/sshd (Debian: apt-get install openssh-server)");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return SshServer {
                        dir,
                        port,
                        user,
                        child,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_err = fs::read_to_string(root.join("sshd.log")).unwrap_or_default();
        }
        panic!("sshd did not start: {last_err}");
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn repo_path(&self, repo: &str) -> PathBuf {
        self.root().join("repos").join(repo)
    }

    /// An empty bare repository (initial branch `main`).
    pub fn create_bare(&self, repo: &str) -> PathBuf {
        let path = self.repo_path(repo);
        repo::git(
            self.root(),
            &[
                "init",
                "--bare",
                "-q",
                "--initial-branch=main",
                repo::path_arg(&path),
            ],
        );
        path
    }

    /// `ssh://user@127.0.0.1:PORT/ABSOLUTE/PATH`.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.repo_path(repo).display()
        )
    }

    /// The private key the server accepts.
    pub fn key(&self) -> PathBuf {
        self.root().join("user_key")
    }

    /// A key the server does not accept (made on first use).
    pub fn other_key(&self) -> PathBuf {
        let path = self.root().join("other_key");
        if !path.exists() {
            keygen(&path, "");
        }
        path
    }

    /// A key protected by a passphrase (made on first use).
    pub fn protected_key(&self) -> PathBuf {
        let path = self.root().join("protected_key");
        if !path.exists() {
            keygen(&path, "correct horse");
        }
        path
    }

    /// The known-hosts line of this server's real host key.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.root().join("host_key.pub")).unwrap();
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// A known-hosts file naming this server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.root().join("known_hosts");
        fs::write(&path, self.known_hosts_line()).unwrap();
        path
    }

    /// A known-hosts file naming another key for this server: what a
    /// changed host key looks like to the client.
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.root().join("other_host_key");
        if !other.exists() {
            keygen(&other, "");
        }
        let public = fs::read_to_string(other.with_extension("pub")).unwrap();
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        let path = self.root().join("wrong_known_hosts");
        fs::write(&path, format!("[127.0.0.1]:{} {kind} {key}\n", self.port)).unwrap();
        path
    }

    /// Makes the server ignore `GIT_PROTOCOL`, as one without `AcceptEnv
    /// GIT_PROTOCOL` does: it then speaks protocol v0.
    pub fn ignore_protocol_request(&self, on: bool) {
        let marker = self.root().join("v0");
        if on {
            fs::write(marker, "").unwrap();
        } else {
            let _ = fs::remove_file(marker);
        }
    }

    /// The command of every session so far, one per connection.
    pub fn connections(&self) -> Vec<String> {
        fs::read_to_string(self.root().join("connections.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn clear_connections(&self) {
        let _ = fs::remove_file(self.root().join("connections.log"));
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.root().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A side's user name and password from git's credential helpers
//! (`--source-auth credential-helper`, `--dest-auth credential-helper`).
//!
//! People at a terminal keep their passwords where git keeps them: the
//! system keychain, Git Credential Manager, `credential.helper store`.
//! Rather than read any of those, git-relay asks `git credential fill`, so
//! every helper git is configured with answers, in git's order, with git's
//! rules for which configuration applies to a URL (`credential.<url>.*`,
//! and `credential.useHttpPath`, which decides whether the repository's
//! path is part of what a helper is asked: git drops the path we send
//! unless it is set). What git answers is reported back as git itself does:
//! `git credential approve` once the server took it (helpers that store
//! passwords store it then), `git credential reject` after a 401 (they
//! forget it, so the next run asks afresh). An answer serves every later
//! question git would ask the same way (both sides of a `mirror` on one
//! host, the repositories of a `mirror-all`), so a person at a terminal
//! types a password once a run, and the helpers hear of it once.
//!
//! The password is a secret from the moment it is read: registered with
//! the redactor before anything else is done with it, sent to git only on
//! stdin (never as an argument), never shown by `Debug`. git runs through
//! [`crate::child::command`], without the variables that hold our other
//! secrets. A run without a terminal on stdin (a CI job) sets
//! `GIT_TERMINAL_PROMPT=0`, so that git fails at once instead of waiting at
//! a prompt nobody will answer, and gives the helpers a time limit.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;
use url::Url;

use super::token::{AuthError, Token, TokenSource};
use super::Scheme;

/// How long a run without a terminal waits for `git credential`: a helper
/// may ask a server (an OAuth refresh), but must not hold a CI job.
const UNATTENDED_LIMIT: Duration = Duration::from_secs(120);

/// The most bytes of `git credential fill`'s answer read: a few lines.
const MAX_ANSWER: u64 = 64 * 1024;

/// What to do when no helper answers.
const HINT_FILL: &str = "configure a credential helper for this URL (`git config --global credential.helper ...`, e.g. Git Credential Manager or `store`) and check that `git credential fill` answers for it; at a terminal, git asks for the user name and password instead";

/// `key=value` pairs, as git's credential protocol writes them.
type Description = Vec<(String, String)>;

/// An answer of `git credential fill`, kept for the rest of the process.
struct Answer {
    description: Description,
    /// Whether the helpers were told it worked.
    approved: bool,
}

/// Every answer git gave in this process and no server refused. Both sides
/// of a `mirror` on one host, and the repositories of a `mirror-all`, ask
/// once: git would ask its helpers the same question, and a person at a
/// terminal would type the same password again. The lock is held while
/// git runs, so that two prompts never share a terminal.
static ANSWERS: Mutex<Vec<Answer>> = Mutex::new(Vec::new());

/// How long before its expiry a kept answer is asked for again: longer
/// than [`super::token`] keeps a token.
const STALE: Duration = Duration::from_secs(180);

/// One side's `git credential` conversation.
pub(crate) struct CredentialHelper {
    /// What git is told about the URL: protocol, host, path (and the user
    /// name, if one was given), one `key=value` a line.
    request: Description,
    /// The URL as shown, without user information.
    display: String,
    /// Whether git may prompt at a terminal.
    interactive: bool,
    /// How the password is sent: Basic with the user name, or as a bearer
    /// token (an API that takes nothing else).
    scheme: Scheme,
    /// The description git filled in last (user name, password, expiry...),
    /// sent back as it came with `approve` or `reject`.
    filled: Mutex<Option<Description>>,
    /// Variables for git: a test's configuration.
    env: Vec<(OsString, OsString)>,
}

impl CredentialHelper {
    /// Asks for the credentials of `url` (without user information) as
    /// `username`, when one is named (a flag, the URL's user).
    pub(crate) fn new(url: &Url, username: Option<&str>) -> CredentialHelper {
        let interactive = std::io::stdin().is_terminal();
        CredentialHelper::with_env(url, username, interactive, Vec::new())
    }

    /// Sends the password as a bearer token (GitLab's API takes no Basic).
    pub(crate) fn bearer(mut self) -> CredentialHelper {
        self.scheme = Scheme::Bearer;
        self
    }

    fn with_env(
        url: &Url,
        username: Option<&str>,
        interactive: bool,
        env: Vec<(OsString, OsString)>,
    ) -> CredentialHelper {
        // As git describes a URL to its helpers: the port is part of the
        // host, the path has no leading `/` and is percent-decoded.
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let path = url.path().trim_start_matches('/');
        let path = percent_decode_str(path).decode_utf8_lossy().into_owned();
        let mut request = vec![
            ("protocol".to_owned(), url.scheme().to_owned()),
            ("host".to_owned(), host),
        ];
        if !path.is_empty() {
            request.push(("path".to_owned(), path));
        }
        if let Some(user) = username.filter(|u| !u.is_empty()) {
            request.push(("username".to_owned(), user.to_owned()));
        }
        let mut display = url.clone();
        let _ = display.set_username("");
        let _ = display.set_password(None);
        CredentialHelper {
            request,
            display: display.to_string(),
            interactive,
            scheme: Scheme::Basic,
            filled: Mutex::new(None),
            env,
        }
    }

    /// The user name git's helpers gave, or the one we named.
    fn username(&self) -> String {
        let filled = self.filled.lock().unwrap_or_else(|e| e.into_inner());
        (filled.as_deref())
            .and_then(|d| value(d, "username"))
            .or_else(|| value(&self.request, "username"))
            .unwrap_or_default()
            .to_owned()
    }

    fn error(&self, message: String, hint: Option<&'static str>) -> AuthError {
        AuthError {
            identity: self.identity(),
            message,
            hint,
        }
    }

    /// Runs `git credential <action>` with `description` on its stdin;
    /// returns its stdout, or what went wrong (its stderr, when captured).
    fn git(&self, action: &str, description: &[(String, String)]) -> Result<String, String> {
        let mut input = String::new();
        for (key, value) in description {
            // git refuses a value holding a newline or NUL, and a key/value
            // of ours must not be able to add a line.
            if value.contains(['\n', '\0']) || key.contains(['\n', '\0', '=']) {
                return Err(format!(
                    "the {key} of {} cannot be told to git",
                    self.display
                ));
            }
            input.push_str(&format!("{key}={value}\n"));
        }
        input.push('\n');
        let mut cmd = crate::child::command("git");
        cmd.args(["credential", action])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if self.interactive {
            // Prompts go to the terminal (git opens it itself), and a
            // helper's own messages (a device code to enter) to the user.
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::piped())
                .env("GIT_TERMINAL_PROMPT", "0")
                // Git Credential Manager's own way of saying "no dialogs".
                .env("GCM_INTERACTIVE", "never");
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run `git credential {action}`: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading its input closes the pipe:
            // its exit status tells what happened.
            let _ = stdin.write_all(input.as_bytes());
        }
        let limit = (!self.interactive).then(|| Instant::now() + UNATTENDED_LIMIT);
        let (status, stdout, stderr) = wait(child, limit)
            .map_err(|e| format!("`git credential {action}` did not finish: {e}"))?;
        if status {
            return Ok(stdout);
        }
        let said = stderr.trim();
        Err(if said.is_empty() {
            format!("`git credential {action}` failed")
        } else {
            format!("`git credential {action}` failed: {said}")
        })
    }

    /// Whether `answer` is what git would say to our question: the same
    /// protocol and host, the same path unless git dropped it
    /// (`credential.useHttpPath` off), the user name we named if we did,
    /// and not about to expire.
    fn matches(&self, answer: &Description) -> bool {
        let same = |key| value(answer, key) == value(&self.request, key);
        let path = value(answer, "path").is_none_or(|p| Some(p) == value(&self.request, "path"));
        let user =
            value(&self.request, "username").is_none_or(|u| value(answer, "username") == Some(u));
        let fresh = expiry(answer).is_none_or(|at| at > SystemTime::now() + STALE);
        same("protocol") && same("host") && path && user && fresh
    }

    /// Tells git's helpers that the credentials they gave worked
    /// (`approve`, once a process) or were refused (`reject`, and the
    /// answer is no longer used).
    fn report(&self, approve: bool, password: &str) {
        let Some(description) = self
            .filled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        if value(&description, "password") != Some(password) {
            return;
        }
        let told = {
            let mut answers = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
            let at = answers.iter().position(|a| a.description == description);
            match (at, approve) {
                (Some(at), true) => !std::mem::replace(&mut answers[at].approved, true),
                (Some(at), false) => {
                    answers.remove(at);
                    true
                }
                // Another side reported it already.
                (None, _) => false,
            }
        };
        if !told {
            return;
        }
        if !approve {
            crate::output::warn(format!(
                "{}: the server refused the password; telling the helpers to forget it (git credential reject)",
                self.identity()
            ));
        }
        let action = if approve { "approve" } else { "reject" };
        if let Err(e) = self.git(action, &description) {
            crate::output::warn(format!(
                "telling the credential helpers about {}: {e}",
                self.display
            ));
        }
    }
}

/// When a helper said its password expires (git 2.41 and later pass it
/// on: OAuth tokens).
fn expiry(description: &Description) -> Option<SystemTime> {
    value(description, "password_expiry_utc")
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
}

/// Waits for `child` (until `limit`, when given), reading its output as it
/// comes; returns whether it succeeded, its stdout and its stderr.
fn wait(mut child: Child, limit: Option<Instant>) -> std::io::Result<(bool, String, String)> {
    let readers = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_ANSWER).read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if limit.is_some_and(|at| Instant::now() >= at) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer in {}s (a helper waiting for input nobody gives?)",
                    UNATTENDED_LIMIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
    Ok((status.success(), stdout, stderr))
}

/// Reads git's `key=value` lines; lines without `=` are skipped.
fn parse(answer: &str) -> Description {
    answer
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<'a>(description: &'a [(String, String)], key: &str) -> Option<&'a str> {
    description
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl TokenSource for CredentialHelper {
    fn fetch(&self) -> Result<Token, AuthError> {
        let mut answers = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
        answers.retain(|a| expiry(&a.description).is_none_or(|at| at > SystemTime::now()));
        let known = answers.iter().find(|a| self.matches(&a.description));
        let description = match known {
            Some(answer) => answer.description.clone(),
            None => {
                let answer = self
                    .git("fill", &self.request)
                    .map_err(|e| self.error(e, Some(HINT_FILL)))?;
                let description = parse(&answer);
                let password = value(&description, "password").unwrap_or_default();
                // Before anything else: the answer is ours to hide from here on.
                super::register_secret(password);
                let username = value(&description, "username").unwrap_or_default();
                super::register_pair(username, password);
                if password.is_empty() {
                    return Err(self.error(
                        format!(
                            "git's credential helpers gave no password for {}",
                            self.display
                        ),
                        Some(HINT_FILL),
                    ));
                }
                answers.push(Answer {
                    description: description.clone(),
                    approved: false,
                });
                description
            }
        };
        drop(answers);
        let token = Token {
            secret: value(&description, "password")
                .unwrap_or_default()
                .to_owned(),
            expires: expiry(&description),
        };
        *self.filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(description);
        Ok(token)
    }

    fn scheme(&self) -> (Scheme, String) {
        (self.scheme, self.username())
    }

    fn identity(&self) -> String {
        match self.username().as_str() {
            "" => format!("git's credential helpers for {}", self.display),
            user => format!("{user} (git's credential helpers) at {}", self.display),
        }
    }

    fn accepted(&self, token: &str) {
        self.report(true, token);
    }

    fn rejected(&self, token: &str) {
        self.report(false, token);
    }
}

impl std::fmt::Debug for CredentialHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialHelper")
            .field("url", &self.display)
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn epoch_secs(at: SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    /// A helper script that logs each call (`== action` and its input) to
    /// `log` and answers `get` with `answer`, configured through a git
    /// configuration of its own (`GIT_CONFIG_GLOBAL`), none of the
    /// machine's.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new(answer: &str, extra_config: &str) -> Fake {
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("helper.sh");
            let log = dir.path().join("log");
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\ncall=$(echo \"== $1\"; cat)\nprintf '%s\\n' \"$call\" >> '{log}'\nif [ \"$1\" = get ]; then printf '{answer}'; fi\n",
                    log = log.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(
                dir.path().join("config"),
                format!(
                    "[credential]\n\thelper = {}\n{extra_config}",
                    script.display()
                ),
            )
            .unwrap();
            Fake { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn helper(&self, url: &str, user: Option<&str>) -> CredentialHelper {
            let env = vec![
                ("GIT_CONFIG_GLOBAL".into(), self.path("config").into()),
                ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
                ("HOME".into(), self.dir.path().as_os_str().to_owned()),
            ];
            CredentialHelper::with_env(&Url::parse(url).unwrap(), user, false, env)
        }

        fn log(&self) -> String {
            read(&self.path("log"))
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn the_helper_is_asked_for_the_host_and_its_answer_sent_as_basic() {
        let fake = Fake::new("username=helper-user\\npassword=helper-pass-Ж1\\n", "");
        let helper = fake.helper("https://git.example.com:8443/org/my%20repo.git", None);
        let token = helper.fetch().unwrap();
        assert_eq!(token.secret, "helper-pass-Ж1");
        assert_eq!(token.expires, None);
        assert_eq!(helper.scheme(), (Scheme::Basic, "helper-user".to_owned()));
        // Without credential.useHttpPath git leaves the path out.
        assert_eq!(
            fake.log(),
            "== get\nprotocol=https\nhost=git.example.com:8443\n"
        );
        assert_eq!(
            super::super::redact("got helper-pass-Ж1 and helper-user:helper-pass-Ж1"),
            "got *** and ***"
        );
    }

    #[test]
    fn with_use_http_path_the_repository_path_is_part_of_the_question() {
        let fake = Fake::new(
            "username=u\\npassword=path-pass-1\\n",
            "[credential]\n\tuseHttpPath = true\n",
        );
        let helper = fake.helper("https://git.example.com/org/my%20repo.git", Some("me"));
        helper.fetch().unwrap();
        assert_eq!(
            fake.log(),
            "== get\nprotocol=https\nhost=git.example.com\npath=org/my repo.git\nusername=me\n"
        );
    }

    #[test]
    fn approve_is_sent_once_per_password_and_reject_after_a_refusal() {
        let fake = Fake::new(
            "username=u\\npassword=approve-pass-1\\npassword_expiry_utc=4000000000\\n",
            "",
        );
        let helper = fake.helper("https://approve.example/r.git", None);
        let token = helper.fetch().unwrap();
        assert_eq!(token.expires.map(epoch_secs), Some(4_000_000_000));
        helper.accepted(&token.secret);
        helper.accepted(&token.secret);
        let log = fake.log();
        assert_eq!(log.matches("== store").count(), 1, "{log}");
        assert!(
            log.contains("== store\nprotocol=https\nhost=approve.example\nusername=u\npassword=approve-pass-1\npassword_expiry_utc=4000000000\n"),
            "{log}"
        );
        helper.rejected(&token.secret);
        let log = fake.log();
        assert!(
            log.contains(
                "== erase\nprotocol=https\nhost=approve.example\nusername=u\npassword=approve-pass-1\n"
            ),
            "{log}"
        );
        // A token that is not the helper's is none of its business.
        helper.rejected("something-else");
        assert_eq!(fake.log().matches("== erase").count(), 1);
    }

    #[test]
    fn one_answer_serves_every_url_git_would_ask_the_same_question_about() {
        let fake = Fake::new("username=u\\npassword=shared-pass-7\\n", "");
        let a = fake.helper("https://shared.example/a.git", None);
        let b = fake.helper("https://shared.example/b.git", None);
        let other = fake.helper("https://other-shared.example/b.git", None);
        assert_eq!(a.fetch().unwrap().secret, "shared-pass-7");
        assert_eq!(b.fetch().unwrap().secret, "shared-pass-7");
        assert_eq!(fake.log().matches("== get").count(), 1);
        other.fetch().unwrap();
        assert_eq!(fake.log().matches("== get").count(), 2);
        // Approved once, whoever saw it work.
        a.accepted("shared-pass-7");
        b.accepted("shared-pass-7");
        assert_eq!(fake.log().matches("== store").count(), 1);
        // Refused: forgotten once, and asked for again.
        a.rejected("shared-pass-7");
        b.rejected("shared-pass-7");
        assert_eq!(fake.log().matches("== erase").count(), 1);
        b.fetch().unwrap();
        assert_eq!(fake.log().matches("== get").count(), 3);
    }

    #[test]
    fn with_use_http_path_each_repository_is_its_own_question() {
        let fake = Fake::new(
            "username=u\\npassword=per-path-pass\\n",
            "[credential]\n\tuseHttpPath = true\n",
        );
        fake.helper("https://paths.example/a.git", None)
            .fetch()
            .unwrap();
        fake.helper("https://paths.example/b.git", None)
            .fetch()
            .unwrap();
        fake.helper("https://paths.example/a.git", None)
            .fetch()
            .unwrap();
        assert_eq!(fake.log().matches("== get").count(), 2, "{}", fake.log());
    }

    #[test]
    fn an_answer_about_to_expire_is_asked_for_again() {
        let soon = epoch_secs(SystemTime::now()) + 60;
        let fake = Fake::new(
            &format!("username=u\\npassword=expiring-pass\\npassword_expiry_utc={soon}\\n"),
            "",
        );
        fake.helper("https://expiry.example/a.git", None)
            .fetch()
            .unwrap();
        fake.helper("https://expiry.example/a.git", None)
            .fetch()
            .unwrap();
        assert_eq!(fake.log().matches("== get").count(), 2);
    }

    #[test]
    fn no_answer_is_an_error_naming_the_url_and_what_to_do() {
        // A helper that knows nothing, and no terminal to ask at.
        let fake = Fake::new("", "");
        let helper = fake.helper("https://nothing.example/r.git", Some("someone"));
        let err = helper.fetch().unwrap_err();
        assert!(err.identity.contains("someone"), "{err:?}");
        assert!(
            err.identity.contains("https://nothing.example/r.git"),
            "{err:?}"
        );
        assert!(err.message.contains("git credential fill"), "{err:?}");
        assert!(err.message.contains("terminal prompts disabled"), "{err:?}");
        assert_eq!(err.hint, Some(HINT_FILL));
    }

    #[test]
    fn a_value_that_would_add_a_line_is_not_sent() {
        let fake = Fake::new("password=x-never\\n", "");
        let helper = fake.helper("https://newline.example/a%0Apassword=b", None);
        let err = helper.fetch().unwrap_err();
        assert!(err.message.contains("cannot be told to git"), "{err:?}");
        assert_eq!(fake.log(), "");
    }

    #[test]
    fn debug_shows_no_password() {
        let fake = Fake::new("username=u\\npassword=debug-pass-Ж9\\n", "");
        let helper = fake.helper("https://debug.example/r.git", None);
        helper.fetch().unwrap();
        assert!(!format!("{helper:?}").contains("debug-pass"));
    }

    #[test]
    fn answers_are_read_line_by_line_without_panicking() {
        let d = parse("username=a=b\nnonsense\npassword=\n\nafter=blank\n");
        assert_eq!(value(&d, "username"), Some("a=b"));
        assert_eq!(value(&d, "password"), Some(""));
        assert_eq!(value(&d, "after"), None);
        assert!(parse("").is_empty());
    }
}

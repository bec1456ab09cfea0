//! Where a repository is, as the user named it.
//!
//! Users paste URLs from many places: `$(Build.Repository.Uri)` carries a
//! bare user (`https://org@dev.azure.com/...`), old mirror-task setups carry
//! `user:token@`, and backups are plain paths. This module turns each into a
//! [`Location`] whose printable form never holds a credential; any userinfo
//! is percent-decoded, registered with the redactor at once, and handed to
//! [`crate::auth`] separately. SSH remotes (`ssh://` and git's scp-like
//! `[user@]host:path`) are checked here for what could reach `ssh`'s
//! command line as an option or break the remote shell's quoting.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use url::Url;

use crate::auth;

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A smart-HTTP(S) repository.
    Http {
        /// The URL with any userinfo removed.
        url: Url,
        /// The URL's username, percent-decoded.
        username: Option<String>,
        /// The URL's password, percent-decoded.
        password: Option<String>,
    },
    /// A repository on this machine (a path or a `file://` URL).
    Local(PathBuf),
    /// A repository reached through the system's `ssh`: `ssh://` URLs and
    /// the scp-like `[user@]host:path`.
    Ssh {
        /// The login name, if one was given.
        user: Option<String>,
        /// The host name or address, without brackets.
        host: String,
        /// The port, when not the default.
        port: Option<u16>,
        /// The repository's path as the remote `git-upload-pack` takes it:
        /// absolute, `~user/...`, or relative to the login's home.
        path: String,
    },
}

impl Location {
    /// Parses a source or destination argument.
    ///
    /// The error never repeats the argument: a URL that fails to parse may
    /// still hold a token the redactor has not learnt yet.
    pub fn parse(arg: &str) -> Result<Location, String> {
        let lower = arg.to_ascii_lowercase();
        // Learn any password before anything can fail, so no later message
        // (ours or a parser's) can carry it.
        register_userinfo_password(arg);
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return parse_http(arg);
        }
        if lower.starts_with("file://") {
            let url = Url::parse(arg).map_err(|e| format!("malformed file:// URL ({e})"))?;
            let path = url
                .to_file_path()
                .map_err(|()| "a file:// URL must name an absolute local path".to_owned())?;
            return Ok(Location::Local(path));
        }
        if lower.starts_with("ssh://")
            || lower.starts_with("git+ssh://")
            || lower.starts_with("ssh+git://")
        {
            return parse_ssh_url(arg);
        }
        if lower.starts_with("git://") {
            return Err("git:// URLs are not supported: the git protocol has no authentication or encryption; use the repository's https:// URL".to_owned());
        }
        if let Some((scheme, _)) = arg.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(format!("unsupported URL scheme `{scheme}`: use https://, http://, file:// or a local path"));
            }
        }
        // After the URL forms: `scheme://host/...` has a colon too.
        if scp_host(arg).is_some() {
            return parse_scp(arg);
        }
        if arg.is_empty() {
            return Err("the location is empty".to_owned());
        }
        Ok(Location::Local(PathBuf::from(arg)))
    }

    /// The local path, when this is a local repository.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::Http { .. } | Location::Ssh { .. } => None,
        }
    }
}

/// `ssh://[user@]host[:port]/path` (and git's `git+ssh://`, `ssh+git://`).
/// As in git, `/~user/...` names a home directory.
fn parse_ssh_url(arg: &str) -> Result<Location, String> {
    let (_, rest) = arg.split_once("://").unwrap_or(("", arg));
    let normalised = format!("ssh://{rest}");
    let url = Url::parse(&normalised).map_err(|e| format!("malformed ssh:// URL ({e})"))?;
    if url.password().is_some() {
        return Err(no_ssh_password());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the ssh:// URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let user = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(|u| {
            percent_decode_str(u)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "the ssh:// URL's user is not valid UTF-8".to_owned())
        })
        .transpose()?;
    let path = percent_decode_str(url.path())
        .decode_utf8()
        .map_err(|_| "the ssh:// URL's path is not valid UTF-8".to_owned())?;
    let path = match path.strip_prefix("/~") {
        Some(home) => format!("~{home}"),
        None => path.into_owned(),
    };
    ssh_location(user, host, url.port(), path)
}

/// `[user@]host:path`, git's scp-like syntax.
fn parse_scp(arg: &str) -> Result<Location, String> {
    let (user, rest) = match arg.split_once('@') {
        Some((user, rest)) if !user.contains('/') => (Some(user), rest),
        _ => (None, arg),
    };
    if user.is_some_and(|u| u.contains(':')) {
        return Err(no_ssh_password());
    }
    let (host, path) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once("]:")
            .ok_or("malformed scp-like SSH remote: `[` without `]:`")?;
        (host, after)
    } else {
        rest.split_once(':')
            .ok_or("malformed scp-like SSH remote")?
    };
    ssh_location(
        user.filter(|u| !u.is_empty()).map(str::to_owned),
        host.to_owned(),
        None,
        path.to_owned(),
    )
}

fn no_ssh_password() -> String {
    "an SSH remote signs in with a key, not a password: remove the password from the location and give a key with --source-ssh-key / --dest-ssh-key".to_owned()
}

/// Checks what would reach `ssh`'s command line or the remote shell: a
/// host or user starting with `-` would be read as an option, and a path
/// with a newline or NUL cannot be quoted for the remote shell.
fn ssh_location(
    user: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
) -> Result<Location, String> {
    if host.is_empty() {
        return Err("the SSH remote has no host".to_owned());
    }
    if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
        return Err("an SSH host or user may not start with `-`".to_owned());
    }
    let unsafe_char = |s: &str| s.chars().any(|c| c == '\n' || c == '\r' || c == '\0');
    if unsafe_char(&host) || user.as_deref().is_some_and(unsafe_char) || unsafe_char(&path) {
        return Err("an SSH remote may not hold a newline or NUL".to_owned());
    }
    if path.is_empty() || path == "/" {
        return Err("the SSH remote names no repository path".to_owned());
    }
    Ok(Location::Ssh {
        user,
        host,
        port,
        path,
    })
}

/// Registers the password of `scheme://user:password@host/...` or of the
/// scp-like `user:password@host:path` with the redactor, raw and
/// percent-decoded.
fn register_userinfo_password(arg: &str) {
    let userinfo = match arg.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
        }
        None => arg
            .split_once('@')
            .filter(|(userinfo, _)| !userinfo.contains('/'))
            .map(|(userinfo, _)| userinfo),
    };
    if let Some((_, password)) = userinfo.and_then(|u| u.split_once(':')) {
        auth::register_secret(password);
        if let Ok(decoded) = percent_decode_str(password).decode_utf8() {
            auth::register_secret(&decoded);
        }
    }
}

fn parse_http(arg: &str) -> Result<Location, String> {
    let mut url = Url::parse(arg).map_err(|e| format!("malformed URL ({e})"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    let decode = |s: &str| -> Result<String, String> {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "the URL's userinfo is not valid UTF-8 once percent-decoded".to_owned())
    };
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(decode)
        .transpose()?;
    let password = url.password().map(decode).transpose()?;
    if let Some(password) = &password {
        auth::register_secret(password);
    }
    // Neither call can fail on an http(s) URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    Ok(Location::Http {
        url,
        username,
        password,
    })
}

/// The host of `[user[:password]@]host:path`, the scp-like SSH syntax, by
/// git's own rule: a `:` with no `/` before it makes an SSH remote (so
/// `./a:b` and `/srv/a:b` stay local paths). A drive letter (`C:\\repo`)
/// is a local path on Windows.
fn scp_host(arg: &str) -> Option<&str> {
    let after_user = match arg.split_once('@') {
        Some((userinfo, rest)) if !userinfo.contains('/') => rest,
        _ => arg,
    };
    let (host, _) = after_user.split_once(':')?;
    if host.contains('/') || host.contains('\\') {
        return None;
    }
    let drive = host.len() == 1 && host.chars().all(|c| c.is_ascii_alphabetic());
    if drive && cfg!(windows) {
        return None;
    }
    // `[::1]:path` and the like: the host may be bracketed.
    Some(host.trim_start_matches('[').trim_end_matches(']'))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Http { url, .. } => f.write_str(url.as_str()),
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Ssh {
                user,
                host,
                port,
                path,
            } => {
                let user = user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
                let host = match host.contains(':') {
                    true => format!("[{host}]"),
                    false => host.clone(),
                };
                match (port, path.starts_with('/')) {
                    (None, _) => write!(f, "{user}{host}:{path}"),
                    (Some(port), true) => write!(f, "ssh://{user}{host}:{port}{path}"),
                    (Some(port), false) => write!(f, "ssh://{user}{host}:{port}/{path}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(arg: &str) -> (String, Option<String>, Option<String>) {
        match Location::parse(arg).unwrap() {
            Location::Http {
                url,
                username,
                password,
            } => (url.to_string(), username, password),
            other => panic!("not http: {other:?}"),
        }
    }

    #[test]
    fn bare_user_is_kept_apart_from_the_host() {
        let (url, user, pass) = http("https://org@dev.azure.com/org/proj/_git/repo");
        assert_eq!(url, "https://dev.azure.com/org/proj/_git/repo");
        assert_eq!(user.as_deref(), Some("org"));
        assert_eq!(pass, None);
    }

    #[test]
    fn userinfo_is_decoded_and_stripped() {
        let (url, user, pass) = http("https://me:p%2Fss%40word@example.com/r.git");
        assert_eq!(url, "https://example.com/r.git");
        assert_eq!(user.as_deref(), Some("me"));
        assert_eq!(pass.as_deref(), Some("p/ss@word"));
        assert_eq!(auth::redact("x p%2Fss%40word y p/ss@word"), "x *** y ***");
    }

    #[test]
    fn spaces_in_project_names_survive() {
        let (url, ..) = http("https://dev.azure.com/org/My%20Project/_git/My%20Repo");
        assert_eq!(url, "https://dev.azure.com/org/My%20Project/_git/My%20Repo");
    }

    #[test]
    fn local_forms() {
        for (arg, path) in [
            ("/srv/r.git", "/srv/r.git"),
            ("file:///srv/r.git", "/srv/r.git"),
            ("../r", "../r"),
        ] {
            assert_eq!(Location::parse(arg).unwrap(), Location::Local(path.into()));
        }
    }

    #[test]
    fn other_schemes_are_named_not_taken_for_ssh() {
        for (arg, scheme) in [
            ("ftp://files.example/x.git", "ftp"),
            ("svn+ssh://h/r", "svn+ssh"),
        ] {
            let err = Location::parse(arg).unwrap_err();
            assert!(
                err.contains(&format!("unsupported URL scheme `{scheme}`")),
                "{err}"
            );
        }
    }

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Location {
        Location::Ssh {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        }
    }

    #[test]
    fn ssh_remotes_in_both_forms() {
        for (arg, want, shown) in [
            (
                "github.com:org/repo.git",
                ssh(None, "github.com", None, "org/repo.git"),
                "github.com:org/repo.git",
            ),
            (
                "git@github.com:org/repo.git",
                ssh(Some("git"), "github.com", None, "org/repo.git"),
                "git@github.com:org/repo.git",
            ),
            (
                "ssh://git@host/srv/r.git",
                ssh(Some("git"), "host", None, "/srv/r.git"),
                "git@host:/srv/r.git",
            ),
            (
                "ssh://git@host:2222/srv/r",
                ssh(Some("git"), "host", Some(2222), "/srv/r"),
                "ssh://git@host:2222/srv/r",
            ),
            (
                "git+ssh://host/~alice/r",
                ssh(None, "host", None, "~alice/r"),
                "host:~alice/r",
            ),
            (
                "ssh://[::1]:22/r",
                ssh(None, "::1", Some(22), "/r"),
                "ssh://[::1]:22/r",
            ),
            (
                "me@[::1]:r.git",
                ssh(Some("me"), "::1", None, "r.git"),
                "me@[::1]:r.git",
            ),
        ] {
            let parsed = Location::parse(arg).unwrap();
            assert_eq!(parsed, want, "{arg}");
            assert_eq!(parsed.to_string(), shown, "{arg}");
        }
    }

    #[test]
    fn ssh_passwords_and_option_lookalikes_are_refused() {
        for arg in [
            "alice:pw-scp-test@host:x.git",
            "ssh://alice:pw-ssh-test@host:2222/r",
            "ssh://-oProxyCommand=x/r",
            "-oProxyCommand=x:r",
            "host:",
            "ssh://host/",
            "ssh://host/a%0Ab",
        ] {
            let err = Location::parse(arg).unwrap_err();
            assert!(!err.contains("pw-"), "{arg}: {err}");
        }
        assert_eq!(auth::redact("pw-scp-test pw-ssh-test"), "*** ***");
    }

    #[test]
    fn a_colon_after_a_slash_is_a_local_path() {
        for arg in ["./a:b", "/srv/a:b.git", "dir/x:y", "plain"] {
            assert_eq!(Location::parse(arg).unwrap(), Location::Local(arg.into()));
        }
    }

    #[test]
    fn unsupported_forms_say_why_without_echoing() {
        for arg in ["ftp://host/r", "https://", "https://:s3cr3t@/x"] {
            let err = Location::parse(arg).unwrap_err();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}

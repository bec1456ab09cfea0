//! Where a repository's LFS server is.
//!
//! git-lfs derives it from the git remote (`docs/api/server-discovery.md`):
//! one trailing `/` dropped, then `/info/lfs` appended to a URL whose path
//! ends in `.git`, `.git/info/lfs` to any other. Hosts implement exactly
//! that, so it is the default; `--source-lfs-url` / `--dest-lfs-url` name
//! another server (git-lfs's `lfs.url`).
//!
//! Credentials never travel in these URLs: the endpoint is built without
//! userinfo, query or fragment, and the side's credentials go in the
//! `Authorization` header like the git side's.

use url::Url;

use crate::transport::Location;

/// The LFS endpoint of the git repository at `remote`, or `explicit` when
/// given (already parsed by [`explicit`]); either way without userinfo.
pub(crate) fn lfs_url(remote: &Url, explicit: Option<&Url>) -> Url {
    let mut url = match explicit {
        Some(url) => url.clone(),
        None => derived(remote),
    };
    strip_secrets(&mut url);
    url
}

/// git-lfs's guess from a git remote.
fn derived(remote: &Url) -> Url {
    let mut url = remote.clone();
    strip_secrets(&mut url);
    let path = url.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = if path.ends_with(".git") {
        format!("{path}/info/lfs")
    } else {
        format!("{path}.git/info/lfs")
    };
    url.set_path(&path);
    url
}

fn strip_secrets(url: &mut Url) {
    // Neither fails on an http(s) URL, which always has a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
}

/// Parses an explicit LFS server URL as the user typed it. Userinfo is
/// taken out (and its password registered with the redactor, as for any
/// location) and handed back beside the URL, for the caller to resolve
/// like a repository URL's; the error never repeats the argument.
pub(crate) fn explicit(arg: &str) -> Result<Location, String> {
    match Location::parse(arg)? {
        location @ Location::Http { .. } => Ok(location),
        Location::Local(_) | Location::Ssh { .. } => {
            Err("an LFS server URL must be http:// or https://".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lfs(remote: &str) -> String {
        lfs_url(&Url::parse(remote).unwrap(), None).to_string()
    }

    #[test]
    fn derived_as_git_lfs_does() {
        // The examples of git-lfs's docs/api/server-discovery.md.
        assert_eq!(
            lfs("https://git-server.com/foo/bar"),
            "https://git-server.com/foo/bar.git/info/lfs"
        );
        assert_eq!(
            lfs("https://git-server.com/foo/bar.git"),
            "https://git-server.com/foo/bar.git/info/lfs"
        );
        assert_eq!(
            lfs("https://git-server.com/foo/bar.git/"),
            "https://git-server.com/foo/bar.git/info/lfs"
        );
        assert_eq!(
            lfs("http://127.0.0.1:8080/r/"),
            "http://127.0.0.1:8080/r.git/info/lfs"
        );
        // Azure Repos URLs have no .git; the server answers under .git.
        assert_eq!(
            lfs("https://dev.azure.com/org/proj/_git/repo"),
            "https://dev.azure.com/org/proj/_git/repo.git/info/lfs"
        );
    }

    #[test]
    fn no_credential_reaches_the_endpoint() {
        assert_eq!(
            lfs("https://user:s3cret@host/r.git?token=s3cret#x"),
            "https://host/r.git/info/lfs"
        );
        let explicit_url = Url::parse("https://u:s3cret@lfs.example/r?x=s3cret").unwrap();
        let url = lfs_url(&Url::parse("https://host/r").unwrap(), Some(&explicit_url));
        assert_eq!(url.as_str(), "https://lfs.example/r");
    }

    #[test]
    fn an_explicit_url_is_taken_as_is_and_must_be_http() {
        let Location::Http {
            url,
            username,
            password,
        } = explicit("https://bob:pw@lfs.example.com/a/b").unwrap()
        else {
            panic!("an http location")
        };
        assert_eq!(
            lfs_url(&Url::parse("https://h/r").unwrap(), Some(&url)).as_str(),
            "https://lfs.example.com/a/b"
        );
        assert_eq!(
            (username.as_deref(), password.as_deref()),
            (Some("bob"), Some("pw"))
        );
        assert!(explicit("/srv/lfs").is_err());
        assert!(explicit("git@host:r.git").is_err());
    }
}

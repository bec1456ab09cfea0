//! Which servers a credential may reach.
//!
//! A token is given for one server: the origin (scheme, host, port) of the
//! URL it came with. Servers redirect, and forge APIs hand out further URLs
//! (the next page of a listing, clone URLs), so every HTTP request that
//! carries credentials to a URL the user did not type passes [`check`]
//! first. The rules, in order:
//!
//! 1. `https` is never followed to `http`, whatever the flags: the token
//!    would cross the network in clear text.
//! 2. The same origin keeps the credentials.
//! 3. Another origin is refused, naming both, unless the user allowed its
//!    host (`--allow-redirect-host`), or no credentials are at stake.
//!
//! The HTTP client's own redirect handling is switched off (it compares
//! hosts only, so a move to another port or from https to http on the same
//! host kept the `Authorization` header); [`follow`] replaces it.

use url::Url;

use super::TransportError;

/// How many redirects one request may follow, as git's default.
const MAX_REDIRECTS: usize = 5;

/// The hosts the user trusts with a side's credentials besides its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RedirectPolicy {
    allowed_hosts: Vec<String>,
}

impl RedirectPolicy {
    /// A policy allowing credentials to follow redirects to `hosts` (host
    /// names, any port; compared without case).
    pub(crate) fn allowing(hosts: impl IntoIterator<Item = impl AsRef<str>>) -> RedirectPolicy {
        RedirectPolicy {
            allowed_hosts: hosts
                .into_iter()
                .map(|h| h.as_ref().trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    fn allows(&self, url: &Url) -> bool {
        url.host_str().is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            self.allowed_hosts
                .iter()
                .any(|allowed| allowed.trim_start_matches('[').trim_end_matches(']') == host)
        })
    }
}

/// `scheme://host:port` of `url`, for messages.
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether a request that started at `from` may go on to `to`, carrying
/// credentials when `with_credentials`.
pub(crate) fn check(
    from: &Url,
    to: &Url,
    with_credentials: bool,
    policy: &RedirectPolicy,
) -> Result<(), TransportError> {
    let downgrade = downgrades(from, to);
    if !downgrade && (from.origin() == to.origin() || !with_credentials || policy.allows(to)) {
        return Ok(());
    }
    Err(TransportError::Redirect {
        from: origin_of(from),
        to: origin_of(to),
        downgrade,
    })
}

/// Whether going from `from` to `to` leaves https for a clear-text scheme.
fn downgrades(from: &Url, to: &Url) -> bool {
    from.scheme() == "https" && to.scheme() != "https"
}

/// [`check`], but the whole host counts as the origin: for clone URLs a
/// forge hands out, which may use another port than its API (self-hosted
/// servers do) but never another host.
pub(crate) fn check_host(
    from: &Url,
    to: &Url,
    with_credentials: bool,
    policy: &RedirectPolicy,
) -> Result<(), TransportError> {
    if !downgrades(from, to) && from.host() == to.host() {
        return Ok(());
    }
    check(from, to, with_credentials, policy)
}

/// A response reached through zero or more allowed redirects.
pub(crate) struct Followed {
    pub(crate) response: ureq::Response,
    /// The URL that answered.
    pub(crate) url: Url,
}

/// Why [`follow`] produced no response.
pub(crate) enum FollowError {
    /// The request itself failed (status >= 400 or transport).
    Http(Box<ureq::Error>),
    /// A redirect was refused by [`check`], or there were too many.
    Refused(TransportError),
}

/// Sends a body-less request with `send` and follows its redirects under
/// the origin rules. `send` is given each URL in turn and must set the
/// credentials itself: they are the same for every hop, since a hop that
/// could not take them is refused.
pub(crate) fn follow(
    start: &Url,
    with_credentials: bool,
    policy: &RedirectPolicy,
    mut send: impl FnMut(&Url) -> Result<ureq::Response, Box<ureq::Error>>,
) -> Result<Followed, FollowError> {
    let mut url = start.clone();
    for _ in 0..=MAX_REDIRECTS {
        let response = send(&url).map_err(FollowError::Http)?;
        if !(300..400).contains(&response.status()) {
            return Ok(Followed { response, url });
        }
        let Some(next) = response.header("location").and_then(|l| url.join(l).ok()) else {
            return Ok(Followed { response, url });
        };
        check(&url, &next, with_credentials, policy).map_err(FollowError::Refused)?;
        crate::output::debug(format_args!(
            "redirected (HTTP {}) to {next}",
            response.status()
        ));
        url = next;
    }
    Err(FollowError::Refused(TransportError::Status {
        status: 310,
        detail: format!("more than {MAX_REDIRECTS} redirects from {start}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn allowed(from: &str, to: &str, creds: bool, policy: &RedirectPolicy) -> bool {
        check(&url(from), &url(to), creds, policy).is_ok()
    }

    #[test]
    fn the_same_origin_keeps_credentials() {
        let none = RedirectPolicy::default();
        assert!(allowed("https://h/a.git", "https://h/b.git", true, &none));
        assert!(allowed("https://h/a", "https://h:443/b", true, &none));
        assert!(allowed("http://h/a", "https://h/a", false, &none));
    }

    #[test]
    fn another_host_port_or_scheme_is_another_origin() {
        let none = RedirectPolicy::default();
        assert!(!allowed(
            "http://127.0.0.1:1/a",
            "http://localhost:1/a",
            true,
            &none
        ));
        assert!(!allowed("http://h:1/a", "http://h:2/a", true, &none));
        assert!(!allowed("http://h/a", "https://h/a", true, &none));
    }

    #[test]
    fn an_allowed_host_takes_credentials_on_any_port() {
        let policy = RedirectPolicy::allowing(["Mirror.Example.com"]);
        assert!(allowed(
            "https://h/a",
            "https://mirror.example.com:8443/a",
            true,
            &policy
        ));
        assert!(!allowed(
            "https://h/a",
            "https://other.example.com/a",
            true,
            &policy
        ));
    }

    #[test]
    fn without_credentials_any_origin_may_be_followed() {
        let none = RedirectPolicy::default();
        assert!(allowed("https://h/a", "https://elsewhere/a", false, &none));
    }

    #[test]
    fn a_clone_url_may_use_another_port_of_the_same_host() {
        let none = RedirectPolicy::default();
        let ok = |from, to| check_host(&url(from), &url(to), true, &none).is_ok();
        assert!(ok(
            "https://git.example.com/org",
            "https://git.example.com:8443/org/r.git"
        ));
        assert!(!ok(
            "https://git.example.com/org",
            "https://evil.example/org/r.git"
        ));
        assert!(!ok(
            "https://git.example.com/org",
            "http://git.example.com/org/r.git"
        ));
    }

    #[test]
    fn https_is_never_downgraded() {
        let everything = RedirectPolicy::allowing(["h", "elsewhere"]);
        for creds in [true, false] {
            assert!(!allowed("https://h/a", "http://h/a", creds, &everything));
            assert!(!allowed(
                "https://h/a",
                "http://elsewhere/a",
                creds,
                &everything
            ));
        }
        let err = check(&url("https://h/a"), &url("http://h/a"), true, &everything).unwrap_err();
        assert!(err.to_string().contains("https://h"), "{err}");
        assert!(err.to_string().contains("http://h"), "{err}");
    }
}

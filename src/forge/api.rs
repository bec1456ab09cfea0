//! One forge REST API over HTTP: JSON requests, paging, rate limits, errors.
//!
//! Every forge kind talks to its API through [`Api`], so the behaviours that
//! users judge a sweep on are written once: pages are followed to the end
//! (each kind says how to find the next one), a rate limit is waited out
//! (bounded, so a sweep never hangs for hours), and an HTTP failure becomes
//! a message that names the API, the URL and what to do. The agent comes
//! from the git transport's builder, so `--ca-file`, `--proxy` and
//! `--timeout` apply to API calls exactly as they do to git, and so do the
//! low-speed limit and the deadline (see [`crate::transport::Limits`]).
//! A body is read up to `MAX_BODY_BYTES` (64 MiB) and pages are followed up to
//! `MAX_PAGES` (10,000): an API that never stops answering is cut off, not
//! believed.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use url::Url;

use super::{ForgeError, Reason};
use crate::auth::Credentials;
use crate::output;
use crate::transport::{
    self, Exceeded, FollowError, Followed, Limits, Meter, NetworkOptions, RedirectPolicy,
};

/// The longest a single request may wait for rate limits in total. Hosted
/// forges reset hourly at worst; a nightly sweep that would need longer is
/// better told so than left hanging.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long to wait after a 429 that does not say how long.
const DEFAULT_RETRY: Duration = Duration::from_secs(10);
/// A guard against an API whose "next page" never ends: at the usual 100
/// items a page, a million repositories.
const MAX_PAGES: usize = 10_000;
/// The largest body one API answer may have. A page of a hundred
/// repositories is a few hundred kilobytes of JSON.
const MAX_BODY_BYTES: u64 = 64 << 20;

/// A client for one forge API.
pub(crate) struct Api {
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    /// Where the credentials may go besides the API's own origin.
    redirects: RedirectPolicy,
    /// Names the API in messages: "Azure DevOps API".
    name: &'static str,
    /// What the token needs, for the hint after a 401/403.
    token_hint: &'static str,
    timeout: Duration,
    limits: Limits,
}

/// One successful answer.
pub(crate) struct Reply {
    /// The URL that answered (after redirects).
    pub(crate) url: Url,
    /// The parsed body (`Null` when empty).
    pub(crate) json: Value,
    headers: Vec<(String, String)>,
}

impl Reply {
    /// A response header, by case-insensitive name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The `rel="next"` target of an RFC 8288 `Link` header (GitHub, Gitea,
    /// GitLab), resolved against the URL that answered.
    pub(crate) fn link_next(&self) -> Option<Url> {
        let link = self.header("link")?;
        link.split(',').find_map(|entry| {
            let (target, params) = entry.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_next.then(|| self.url.join(target).ok()).flatten()
        })
    }

    /// A JSON array at `key` (or the body itself when `key` is empty).
    pub(crate) fn items(&self, key: &str) -> Result<&Vec<Value>, ForgeError> {
        let value = if key.is_empty() {
            &self.json
        } else {
            &self.json[key]
        };
        value.as_array().ok_or_else(|| {
            let what = if key.is_empty() {
                "the JSON is not a list".to_owned()
            } else {
                format!("no `{key}` list in the JSON")
            };
            ForgeError::new(format!("unexpected answer from {}: {what}", self.url))
        })
    }
}

impl Api {
    /// A client for the API at `base` (used only to pick the proxy).
    pub(crate) fn new(
        name: &'static str,
        token_hint: &'static str,
        base: &Url,
        credentials: Option<&Credentials>,
        network: &NetworkOptions,
    ) -> Result<Api, ForgeError> {
        let agent = transport::agent_builder(base, network)
            .map_err(|e| ForgeError::transport(name, base, e))?
            .user_agent(crate::AGENT)
            .build();
        Ok(Api {
            agent,
            credentials: credentials.cloned(),
            redirects: network.redirects.clone(),
            name,
            token_hint,
            timeout: network.timeout,
            limits: network.limits,
        })
    }

    /// The name of the API, for messages.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// `GET url`.
    pub(crate) fn get(&self, url: &Url) -> Result<Reply, ForgeError> {
        self.send("GET", url, None)
    }

    /// `POST url` with a JSON body.
    pub(crate) fn post(&self, url: &Url, body: &Value) -> Result<Reply, ForgeError> {
        self.send("POST", url, Some(body))
    }

    /// `PUT url` with a JSON body.
    pub(crate) fn put(&self, url: &Url, body: &Value) -> Result<Reply, ForgeError> {
        self.send("PUT", url, Some(body))
    }

    /// `PATCH url` with a JSON body.
    pub(crate) fn patch(&self, url: &Url, body: &Value) -> Result<Reply, ForgeError> {
        self.send("PATCH", url, Some(body))
    }

    /// Follows pages from `first`: `each` consumes one page and returns the
    /// URL of the next, or `None` after the last.
    pub(crate) fn pages(
        &self,
        first: Url,
        mut each: impl FnMut(&Reply) -> Result<Option<Url>, ForgeError>,
    ) -> Result<(), ForgeError> {
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let reply = self.get(&url)?;
            match each(&reply)? {
                Some(next) if next == url => {
                    return Err(ForgeError::new(format!(
                        "{}: {url} names itself as the next page",
                        self.name
                    )))
                }
                // The next page's URL comes from the server: it gets the
                // credentials only on the origin they were given for.
                Some(next) => {
                    transport::check_origin(
                        &reply.url,
                        &next,
                        self.credentials.is_some(),
                        &self.redirects,
                    )
                    .map_err(|e| ForgeError::transport(self.name, &url, e))?;
                    url = next;
                }
                None => return Ok(()),
            }
        }
        Err(ForgeError::new(format!(
            "{}: more than {MAX_PAGES} pages; stopped at {url}",
            self.name
        )))
    }

    fn send(&self, method: &str, url: &Url, body: Option<&Value>) -> Result<Reply, ForgeError> {
        let mut waited = Duration::ZERO;
        loop {
            // One per attempt: a token that expired while we waited is
            // replaced.
            let auth = (self.credentials.as_ref())
                .map(|c| c.header())
                .transpose()
                .map_err(|e| {
                    ForgeError::transport(
                        self.name,
                        url,
                        transport::TransportError::SignIn(Box::new(e)),
                    )
                })?;
            output::debug(format_args!("{method} {url}"));
            let result = match body {
                // A request body is not sent twice: a redirected write is
                // reported by `reply`, like any other unexpected status.
                Some(body) => self
                    .request(method, url, auth.as_deref())
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string())
                    .map(|response| Followed {
                        response,
                        url: url.clone(),
                    })
                    .map_err(|e| FollowError::Http(Box::new(e))),
                None => {
                    transport::follow(url, self.credentials.is_some(), &self.redirects, |hop| {
                        self.request(method, hop, auth.as_deref())
                            .call()
                            .map_err(Box::new)
                    })
                }
            };
            let response = match result {
                Ok(followed) => return self.reply(method, followed),
                Err(FollowError::Refused(err)) => {
                    return Err(ForgeError::transport(self.name, url, err))
                }
                Err(FollowError::Http(e)) => match *e {
                    ureq::Error::Transport(t) => {
                        let err = transport::classify_transport(url.as_str(), t, self.timeout);
                        return Err(ForgeError::transport(self.name, url, err));
                    }
                    ureq::Error::Status(_, response) => response,
                },
            };
            let status = response.status();
            match rate_limit_wait(status, &response, SystemTime::now()) {
                Some(wait) if waited + wait <= MAX_RATE_LIMIT_WAIT => {
                    output::warn(format_args!(
                        "{}: rate limited (HTTP {status}); waiting {} s as the server asks",
                        self.name,
                        wait.as_secs()
                    ));
                    std::thread::sleep(wait);
                    waited += wait;
                }
                Some(wait) => {
                    return Err(ForgeError::new(format!(
                        "{}: rate limited (HTTP {status}) at {url}; the server asks to wait {} s more, past the {} min git-relay allows",
                        self.name,
                        wait.as_secs(),
                        MAX_RATE_LIMIT_WAIT.as_secs() / 60
                    ))
                    .with_hint("run again after the limit resets, or use a token with a higher limit (an app or service account)"));
                }
                None => return Err(self.failure(method, url, status, response)),
            }
        }
    }

    fn request(&self, method: &str, url: &Url, auth: Option<&str>) -> ureq::Request {
        let request = self
            .agent
            .request_url(method, url)
            .set("Accept", "application/json");
        match auth {
            Some(auth) => request.set("Authorization", auth),
            None => request,
        }
    }

    fn reply(&self, method: &str, followed: Followed) -> Result<Reply, ForgeError> {
        let Followed { response, url } = followed;
        if (300..400).contains(&response.status()) {
            return Err(self.failure(method, &url, response.status(), response));
        }
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_owned())))
            .collect();
        let text = read_body(
            Meter::new(&self.limits, self.timeout).checking(response.into_reader()),
            MAX_BODY_BYTES,
        )
        .map_err(|e| ForgeError::new(format!("{}: reading {url}: {e}", self.name)))?;
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                ForgeError::new(format!(
                    "{}: {url} did not answer JSON ({e}); is this the right API URL?",
                    self.name
                ))
                .with_hint("name the kind with --source-kind / --dest-kind, and for a path-prefixed self-hosted server give the API base with --source-api / --dest-api")
            })?
        };
        Ok(Reply { url, json, headers })
    }

    fn failure(
        &self,
        method: &str,
        url: &Url,
        status: u16,
        response: ureq::Response,
    ) -> ForgeError {
        let detail = transport::response_excerpt(response);
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        if let Some(c) = self.credentials.as_ref().filter(|_| status == 401) {
            c.refused();
        }
        let (what, hint) = match status {
            401 if self.credentials.is_none() => (
                "authentication required (HTTP 401)",
                format!("give a token ({}) with --source-token / --dest-token or GIT_RELAY_SOURCE_TOKEN / GIT_RELAY_DEST_TOKEN", self.token_hint),
            ),
            401 => (
                "the token was not accepted (HTTP 401)",
                format!("the token is wrong or expired; it needs {}", self.token_hint),
            ),
            403 => (
                "permission denied (HTTP 403)",
                format!("the token is valid but may not do this; it needs {}", self.token_hint),
            ),
            404 => (
                "not found (HTTP 404)",
                "check the organization/group name in the scope URL and the kind; a private scope also answers 404 when the token cannot see it".to_owned(),
            ),
            _ => ("request failed", String::new()),
        };
        let what = if what == "request failed" {
            format!("HTTP {status}")
        } else {
            what.to_owned()
        };
        let reason = match status {
            404 => Reason::NotFound,
            // Each forge says "already exists" its own way: Azure DevOps,
            // Gitea and Bitbucket Server 409, GitHub 422, GitLab and
            // Bitbucket Cloud a 400 that only its body tells apart from
            // other bad requests.
            409 | 422 => Reason::Conflict,
            400 if detail.contains("already been taken") || detail.contains("already exists") => {
                Reason::Conflict
            }
            _ => Reason::Other,
        };
        let mut err = ForgeError::new(format!("{}: {what} for {method} {url}{detail}", self.name))
            .with_reason(reason);
        if !hint.is_empty() {
            err = err.with_hint(hint);
        }
        err
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the answer is larger than {} MiB; stopped reading", .0 >> 20)]
    TooLarge(u64),
    #[error(transparent)]
    Limit(Exceeded),
    #[error("{0}")]
    Io(std::io::Error),
}

/// Reads a whole text body of at most `max` bytes.
fn read_body(body: impl Read, max: u64) -> Result<String, BodyError> {
    let mut text = String::new();
    body.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| match Exceeded::from_io(&e) {
            Some(exceeded) => BodyError::Limit(exceeded),
            None => BodyError::Io(e),
        })?;
    if text.len() as u64 > max {
        return Err(BodyError::TooLarge(max));
    }
    Ok(text)
}

/// How long a refused request asks us to wait, if it is a rate limit:
/// 429 always is; 403 is when it says so (`retry-after`, or
/// `x-ratelimit-remaining: 0`), as GitHub's secondary limits do.
fn rate_limit_wait(status: u16, response: &ureq::Response, now: SystemTime) -> Option<Duration> {
    if status != 429 && status != 403 {
        return None;
    }
    let header = |n: &str| response.header(n).map(str::trim).filter(|v| !v.is_empty());
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs.max(1)));
    }
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        if exhausted || status == 429 {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            // One second more: the reset instant itself may still be limited.
            return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
        }
    }
    (status == 429).then_some(DEFAULT_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> (u16, ureq::Response) {
        let response: ureq::Response = raw.parse().unwrap();
        (response.status(), response)
    }

    #[test]
    fn rate_limits_are_recognised_and_bounded() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let wait = |raw: &str| {
            let (status, response) = refused(raw);
            rate_limit_wait(status, &response, now)
        };
        assert_eq!(
            wait("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\r\n"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wait("HTTP/1.1 429 Too Many Requests\r\n\r\n"),
            Some(DEFAULT_RETRY)
        );
        // GitHub's primary limit: 403, nothing left, reset at an epoch second.
        assert_eq!(
            wait("HTTP/1.1 403 Forbidden\r\nx-ratelimit-remaining: 0\r\nx-ratelimit-reset: 1030\r\n\r\n"),
            Some(Duration::from_secs(31))
        );
        // A plain 403 is a permission problem, not a limit.
        assert_eq!(
            wait("HTTP/1.1 403 Forbidden\r\nx-ratelimit-remaining: 12\r\nx-ratelimit-reset: 1030\r\n\r\n"),
            None
        );
        assert_eq!(wait("HTTP/1.1 404 Not Found\r\n\r\n"), None);
    }

    fn reply(link: &str) -> Reply {
        Reply {
            url: Url::parse("https://api.example.com/orgs/a/repos?page=1").unwrap(),
            json: Value::Null,
            headers: vec![("Link".to_owned(), link.to_owned())],
        }
    }

    #[test]
    fn bodies_are_bounded() {
        assert_eq!(read_body(&b"[1, 2]"[..], 6).unwrap(), "[1, 2]");
        assert!(matches!(
            read_body(&b"[1, 2]"[..], 5),
            Err(BodyError::TooLarge(5))
        ));
    }

    #[test]
    fn link_next_is_found_among_others() {
        let r = reply(
            r#"<https://api.example.com/orgs/a/repos?page=3>; rel="last", <https://api.example.com/orgs/a/repos?page=2>; rel="next""#,
        );
        assert_eq!(
            r.link_next().unwrap().as_str(),
            "https://api.example.com/orgs/a/repos?page=2"
        );
        assert!(reply(r#"<https://x/?page=1>; rel="prev""#)
            .link_next()
            .is_none());
        assert_eq!(
            reply("</orgs/a/repos?page=2>; rel=next")
                .link_next()
                .unwrap()
                .as_str(),
            "https://api.example.com/orgs/a/repos?page=2"
        );
    }
}

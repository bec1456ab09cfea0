//! One LFS server over HTTP: batch requests, and the basic transfer
//! adapter's downloads, uploads and verify calls.
//!
//! It rides the crate's HTTP stack: the process's shared agent for the
//! side's TLS, proxy and timeout settings (so the LFS requests reuse the git
//! side's connections to the same host), its credentials only in the
//! `Authorization` header, `transport::origin`'s redirect rules, and
//! `transport::Limits` on every response read.
//!
//! Batch requests go to the endpoint with the side's credentials. Actions
//! are URLs the server hands out, often on another host (object storage)
//! with their own token in the URL or in their headers. Our credentials go
//! with an action only when it names no `Authorization` of its own, the
//! server did not mark it `authenticated`, and its URL is one the side's
//! credentials may reach under the origin rules; the action's headers go
//! only to the action's own origin. A download redirected elsewhere (GitLab
//! sends object storage URLs that way) is followed without either. Action
//! URLs and header values are secrets: they are never printed, not even in
//! debug output, and are masked out of anything a server or the HTTP client
//! says about them.

use std::collections::HashMap;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use url::Url;

use super::batch::{
    Action, BatchRequest, BatchResponse, ErrorBody, ObjectError, ObjectResponse, ObjectSpec,
    Operation, MEDIA_TYPE,
};
use super::{LfsCause, LfsError, Pointer, Request, Sha256};
use crate::auth::Credentials;
use crate::mirror::Side;
use crate::output;
use crate::transport::{
    check_origin, classify_transport, follow, origin_of, shared_agent, FollowError, Limits, Meter,
    NetworkOptions, RedirectPolicy, TransportError,
};

/// Objects per batch request: what git-lfs sends and hosts accept
/// (GitHub and GitLab refuse larger batches).
pub(crate) const BATCH_SIZE: usize = 100;

/// The largest batch answer read: a hundred objects with long signed URLs
/// take a few hundred KiB.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// How much of an error answer is read for its message.
const ERROR_BODY_BYTES: u64 = 4096;

/// How much of a successful upload's or verify's answer is read (to give
/// the connection back to the pool) before it is dropped.
const MAX_DRAIN_BYTES: u64 = 1 << 20;

/// The longest a batch request waits before its one retry, whatever the
/// server asks.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Redirects one action request may follow, as for git requests.
const MAX_REDIRECTS: usize = 5;

/// A side's LFS server.
pub(crate) struct LfsClient {
    side: Side,
    endpoint: Url,
    display: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    redirects: RedirectPolicy,
    timeout: Duration,
    limits: Limits,
}

/// The server's answer for one object of a batch request.
#[derive(Debug)]
pub(crate) struct ObjectAction {
    /// What to do with it.
    pub(crate) next: Next,
    /// When the answer came, for the actions' `expires_in`.
    pub(crate) received: Instant,
}

/// What a batch answer says to do with one object.
#[derive(Debug)]
pub(crate) enum Next {
    /// Fetch it with this action.
    Download(Action),
    /// Send it with `upload`, then call `verify` if given.
    Upload {
        /// The PUT.
        upload: Action,
        /// The POST after it.
        verify: Option<Action>,
    },
    /// An upload the server does not need: it has the object.
    Present,
    /// The server cannot do it; codes follow HTTP (404 and 410: the object
    /// is not there). The message is the server's, cleaned for printing.
    Error(ObjectError),
}

impl LfsClient {
    /// A client for the LFS server at `endpoint` (see
    /// [`lfs_url`](super::lfs_url)) with the side's credentials and network
    /// settings.
    pub(crate) fn new(
        side: Side,
        endpoint: Url,
        credentials: Option<&Credentials>,
        options: &NetworkOptions,
    ) -> Result<LfsClient, LfsError> {
        let display = endpoint.to_string();
        let agent = shared_agent(&endpoint, options).map_err(|e| LfsError {
            side,
            where_: display.clone(),
            request: Request::Setup,
            object: None,
            cause: LfsCause::Transport(e),
        })?;
        Ok(LfsClient {
            side,
            display,
            endpoint,
            agent,
            credentials: credentials.cloned(),
            redirects: options.redirects.clone(),
            timeout: options.timeout,
            limits: options.limits,
        })
    }

    pub(crate) fn error(&self, request: Request, cause: LfsCause) -> LfsError {
        LfsError {
            side: self.side,
            where_: self.display.clone(),
            request,
            object: None,
            cause,
        }
    }

    /// Asks what to do for `pointers`, in requests of [`BATCH_SIZE`]
    /// objects; one answer per pointer, in order. A failure of a whole
    /// request (credentials, no server, a broken answer) is the error;
    /// a failure for one object is its [`Next::Error`].
    pub(crate) fn batch(
        &self,
        operation: Operation,
        pointers: &[Pointer],
    ) -> Result<Vec<ObjectAction>, LfsError> {
        let mut out = Vec::with_capacity(pointers.len());
        for chunk in pointers.chunks(BATCH_SIZE) {
            let answers = match self.batch_chunk(operation, chunk) {
                // A busy server or a cut connection gets one more try, so
                // that a hiccup between two chunks does not end the run.
                Err(e) if e.is_transient() => {
                    let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                    output::debug(format_args!("{e}; trying again"));
                    std::thread::sleep(wait.min(MAX_RETRY_WAIT));
                    self.batch_chunk(operation, chunk)?
                }
                answers => answers?,
            };
            out.extend(answers);
        }
        Ok(out)
    }

    fn batch_url(&self) -> Url {
        let mut url = self.endpoint.clone();
        let path = format!("{}/objects/batch", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    fn batch_chunk(
        &self,
        operation: Operation,
        chunk: &[Pointer],
    ) -> Result<Vec<ObjectAction>, LfsError> {
        let request = Request::Batch(operation);
        let fail = |cause| self.error(request, cause);
        let body = serde_json::to_vec(&BatchRequest::new(operation, chunk))
            .map_err(|e| fail(LfsCause::Io(io::Error::other(e))))?;
        let url = self.batch_url();
        output::debug(format_args!(
            "POST {url} ({operation}, {} objects)",
            chunk.len()
        ));
        // A batch request changes nothing, so it may be sent again to where
        // a redirect points, under the same rules as a git request.
        let auth = self.authorization(request)?;
        let followed = follow(&url, self.credentials.is_some(), &self.redirects, |hop| {
            let mut req = self
                .agent
                .post(hop.as_str())
                .set("Accept", MEDIA_TYPE)
                .set("Content-Type", MEDIA_TYPE);
            if let Some(auth) = &auth {
                req = req.set("Authorization", auth);
            }
            req.send_bytes(&body).map_err(Box::new)
        })
        .map_err(|e| match e {
            FollowError::Http(e) => {
                self.classify(request, *e, url.as_str(), self.credentials.is_some(), &[])
            }
            FollowError::Refused(t) => fail(LfsCause::Transport(t)),
        })?;
        let response = followed.response;
        if (300..400).contains(&response.status()) {
            return Err(fail(LfsCause::Status {
                status: response.status(),
                detail: "a redirect without a usable Location".to_owned(),
            }));
        }
        let received = Instant::now();
        let meter = Meter::new(&self.limits, self.timeout);
        let mut text = Vec::new();
        meter
            .checking(response.into_reader())
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| fail(io_cause(e)))?;
        if text.len() as u64 > MAX_ANSWER_BYTES {
            return Err(fail(LfsCause::BadAnswer(format!(
                "the batch answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            ))));
        }
        let answer: BatchResponse =
            serde_json::from_slice(&text).map_err(|e| fail(LfsCause::BadAnswer(json_error(&e))))?;
        if let Some(transfer) = answer.transfer.as_deref().filter(|t| *t != "basic") {
            return Err(fail(LfsCause::BadAnswer(format!(
                "the server chose the transfer adapter `{}`, but only `basic` was offered",
                clean(transfer, &[])
            ))));
        }
        if let Some(algo) = answer.hash_algo.as_deref().filter(|a| *a != "sha256") {
            return Err(fail(LfsCause::BadAnswer(format!(
                "the server names objects by `{}`, not sha256",
                clean(algo, &[])
            ))));
        }
        let mut by_oid: HashMap<Sha256, ObjectResponse> = HashMap::new();
        for object in answer.objects {
            if let Some(oid) = Sha256::from_hex(object.oid.as_bytes()) {
                by_oid.entry(oid).or_insert(object);
            }
        }
        Ok(chunk
            .iter()
            .map(|pointer| ObjectAction {
                next: next_of(operation, pointer, by_oid.get(&pointer.oid)),
                received,
            })
            .collect())
    }

    /// Opens an object's download. The body is the raw object, read under
    /// the side's limits; check it with a
    /// [`CheckedReader`](super::CheckedReader).
    pub(crate) fn download(&self, action: &Action) -> Result<Box<dyn Read + Send>, LfsError> {
        let request = Request::Download;
        let (url, secrets) = self.action_url(action, request)?;
        let response = self.follow_action(request, action, &url, &secrets)?;
        let meter = Meter::new(&self.limits, self.timeout);
        Ok(Box::new(meter.checking(response.into_reader())))
    }

    /// GETs an action, following redirects: the action's headers and our
    /// credentials go only to the action's origin.
    fn follow_action(
        &self,
        request: Request,
        action: &Action,
        start: &Url,
        secrets: &[&str],
    ) -> Result<ureq::Response, LfsError> {
        output::debug(format_args!("GET {} (LFS {request})", origin_of(start)));
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let (req, credentials) = self.action_request("GET", action, start, &url)?;
            let response = req
                .call()
                .map_err(|e| self.classify(request, e, url.as_str(), credentials, secrets))?;
            if !(300..400).contains(&response.status()) {
                return Ok(response);
            }
            let next = response.header("location").and_then(|l| url.join(l).ok());
            let Some(next) = next else {
                return Err(self.error(
                    request,
                    LfsCause::Status {
                        status: response.status(),
                        detail: "a redirect without a usable Location".to_owned(),
                    },
                ));
            };
            // Nothing secret goes past the action's origin, so only the
            // downgrade to http is refused; the URL itself is a secret and
            // is not printed.
            check_origin(&url, &next, false, &self.redirects)
                .map_err(|t| self.error(request, LfsCause::Transport(t)))?;
            output::debug(format_args!(
                "LFS {request} redirected (HTTP {}) to {}",
                response.status(),
                origin_of(&next)
            ));
            url = next;
        }
        Err(self.error(
            request,
            LfsCause::Status {
                status: 310,
                detail: format!("more than {MAX_REDIRECTS} redirects"),
            },
        ))
    }

    /// Sends an object: a PUT of exactly `size` bytes read from `body`,
    /// with a `Content-Length`, streamed. A body that fails (its source
    /// failed, or it did not match its pointer) cuts the request before
    /// its end, so the server stores nothing; that failure is
    /// [`LfsCause::Body`].
    pub(crate) fn upload(
        &self,
        action: &Action,
        body: impl Read + Send,
        size: u64,
    ) -> Result<(), LfsError> {
        let request = Request::Upload;
        let (url, secrets) = self.action_url(action, request)?;
        output::debug(format_args!("PUT {} (LFS upload)", origin_of(&url)));
        let (mut req, credentials) = self.action_request("PUT", action, &url, &url)?;
        if !action
            .headers()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            req = req.set("Content-Type", "application/octet-stream");
        }
        // ureq sends a body with this header as is, without chunks.
        let req = req.set("Content-Length", &size.to_string());
        let mut body = Watched {
            inner: body,
            remaining: size,
            failure: None,
        };
        let sent = req.send(&mut body);
        if let Some(failure) = body.failure.take() {
            return Err(self.error(request, LfsCause::Body(failure)));
        }
        let response =
            sent.map_err(|e| self.classify(request, e, url.as_str(), credentials, &secrets))?;
        self.finish(request, response)
    }

    /// Confirms an upload: POSTs the object's oid and size.
    pub(crate) fn verify(&self, action: &Action, pointer: &Pointer) -> Result<(), LfsError> {
        let request = Request::Verify;
        let (url, secrets) = self.action_url(action, request)?;
        output::debug(format_args!("POST {} (LFS verify)", origin_of(&url)));
        let body = serde_json::to_vec(&ObjectSpec::from(pointer))
            .map_err(|e| self.error(request, LfsCause::Io(io::Error::other(e))))?;
        let (req, credentials) = self.action_request("POST", action, &url, &url)?;
        let response = req
            .set("Accept", MEDIA_TYPE)
            .set("Content-Type", MEDIA_TYPE)
            .send_bytes(&body)
            .map_err(|e| self.classify(request, e, url.as_str(), credentials, &secrets))?;
        self.finish(request, response)
    }

    /// Accepts a successful answer to an upload or verify, reading what is
    /// left of it so the connection can serve again.
    fn finish(&self, request: Request, response: ureq::Response) -> Result<(), LfsError> {
        let status = response.status();
        if !(200..300).contains(&status) {
            // A body cannot be sent twice: redirects are not followed here.
            return Err(self.error(
                request,
                LfsCause::Status {
                    status,
                    detail: "an LFS upload or verify is not sent again to where a redirect points"
                        .to_owned(),
                },
            ));
        }
        let _ = io::copy(
            &mut response.into_reader().take(MAX_DRAIN_BYTES),
            &mut io::sink(),
        );
        Ok(())
    }

    /// The action's URL, checked, with the strings to mask from messages.
    fn action_url<'a>(
        &self,
        action: &'a Action,
        request: Request,
    ) -> Result<(Url, Vec<&'a str>), LfsError> {
        let bad = |what: &str| self.error(request, LfsCause::BadAnswer(what.to_owned()));
        let url = Url::parse(&action.href).map_err(|_| bad("an action's href is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("an action's href is not an http(s) URL"));
        }
        for (name, value) in action.headers() {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let value_ok = value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
            if !name_ok || !value_ok {
                // Not quoted: the value is likely a token.
                return Err(bad("an action has a header that is not valid HTTP"));
            }
        }
        let mut secrets: Vec<&str> = vec![action.href.as_str()];
        if let Some((_, query)) = action.href.split_once('?') {
            secrets.push(query);
        }
        secrets.extend(action.headers().map(|(_, value)| value));
        // Long ones first, so that a value inside another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok((url, secrets))
    }

    /// A request for `action` to `hop` (its own URL, `start`, or where a
    /// redirect led), and whether our credentials are on it.
    fn action_request(
        &self,
        method: &str,
        action: &Action,
        start: &Url,
        hop: &Url,
    ) -> Result<(ureq::Request, bool), LfsError> {
        let mut req = self.agent.request(method, hop.as_str());
        let mut credentials = false;
        if hop.origin() == start.origin() {
            for (name, value) in action.headers() {
                req = req.set(name, value);
            }
            if self.ours_go_to(action, start) {
                if let Some(auth) = self.authorization(Request::Download)? {
                    req = req.set("Authorization", &auth);
                    credentials = true;
                }
            }
        }
        Ok((req, credentials || action.authorizes_itself()))
    }

    /// Whether our `Authorization` goes with `action` to `url`.
    fn ours_go_to(&self, action: &Action, url: &Url) -> bool {
        self.credentials.is_some()
            && !(action.authenticated || action.authorizes_itself())
            && check_origin(&self.endpoint, url, true, &self.redirects).is_ok()
    }

    /// The `Authorization` of the next request, if we sign them (fresh
    /// where tokens expire).
    fn authorization(&self, request: Request) -> Result<Option<String>, LfsError> {
        (self.credentials.as_ref())
            .map(|c| c.header())
            .transpose()
            .map_err(|e| {
                self.error(
                    request,
                    LfsCause::Transport(TransportError::SignIn(Box::new(e))),
                )
            })
    }

    fn classify(
        &self,
        request: Request,
        err: ureq::Error,
        url: &str,
        had_credentials: bool,
        secrets: &[&str],
    ) -> LfsError {
        let cause = match err {
            ureq::Error::Status(status, response) => {
                let retry_after = response
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let (detail, lfs_answer) = error_detail(response, secrets);
                match status {
                    401 => {
                        if let Some(c) = self.credentials.as_ref().filter(|_| had_credentials) {
                            c.refused();
                        }
                        LfsCause::Unauthorized { had_credentials }
                    }
                    403 => LfsCause::Forbidden { detail },
                    404 => LfsCause::NotFound { detail, lfs_answer },
                    413 => LfsCause::TooLarge { detail },
                    422 => LfsCause::Invalid { detail },
                    429 => LfsCause::RateLimited {
                        retry_after,
                        detail,
                    },
                    500..=599 => LfsCause::Server {
                        status,
                        retry_after,
                        detail,
                    },
                    _ => LfsCause::Status { status, detail },
                }
            }
            ureq::Error::Transport(t) => {
                LfsCause::Transport(scrub(classify_transport(url, t, self.timeout), secrets))
            }
        };
        self.error(request, cause)
    }
}

/// What to do for `pointer`, from its entry in the answer.
fn next_of(operation: Operation, pointer: &Pointer, object: Option<&ObjectResponse>) -> Next {
    let error = |code, message: &str| {
        Next::Error(ObjectError {
            code,
            message: message.to_owned(),
        })
    };
    let Some(object) = object else {
        return error(0, "the server's answer left this object out");
    };
    if let Some(e) = &object.error {
        return error(e.code, &clean(&e.message, &[]));
    }
    if object.size.is_some_and(|size| size != pointer.size) {
        return error(0, "the server answered for another size of this object");
    }
    let authenticated = object.authenticated == Some(true);
    let with_flag = |action: &Option<Action>| {
        action.clone().map(|mut a| {
            a.authenticated = authenticated;
            a
        })
    };
    let actions = object.actions.as_ref();
    let pick =
        |f: fn(&super::batch::Actions) -> &Option<Action>| actions.and_then(|a| with_flag(f(a)));
    match operation {
        Operation::Download => match pick(|a| &a.download) {
            Some(download) => Next::Download(download),
            None => error(0, "the server gave neither a download action nor an error"),
        },
        // No upload action: the server has the object (a verify alone
        // would confirm what it already says).
        Operation::Upload => match pick(|a| &a.upload) {
            Some(upload) => Next::Upload {
                upload,
                verify: pick(|a| &a.verify),
            },
            None => Next::Present,
        },
    }
}

/// A request body of exactly `remaining` bytes, keeping its reader's own
/// failure apart from the connection's.
struct Watched<R> {
    inner: R,
    remaining: u64,
    failure: Option<io::Error>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                // Sending less than announced would leave the server
                // waiting for the rest until one side times out.
                let message = format!(
                    "the object ended {} bytes short of its size",
                    self.remaining
                );
                self.failure = Some(io::Error::new(io::ErrorKind::InvalidData, message.clone()));
                Err(io::Error::new(io::ErrorKind::InvalidData, message))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.failure = Some(e);
                Err(io::Error::new(kind, "the object's source failed"))
            }
        }
    }
}

fn io_cause(e: io::Error) -> LfsCause {
    match crate::transport::Exceeded::from_io(&e) {
        Some(exceeded) => LfsCause::Transport(TransportError::Limit(exceeded)),
        None => LfsCause::Transport(TransportError::Io(e)),
    }
}

/// A JSON error without its text: serde_json quotes the value it did not
/// expect, which in an action may be a token.
fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "is not JSON",
        serde_json::error::Category::Data => "does not have the batch API's shape",
        serde_json::error::Category::Eof => "ends early",
    };
    format!(
        "the batch answer {what} (line {}, column {})",
        e.line(),
        e.column()
    )
}

/// The server's explanation in an error answer: the `message` of the LFS
/// error document (with its request id), or the start of a text body; and
/// whether it was such a document.
fn error_detail(response: ureq::Response, secrets: &[&str]) -> (String, bool) {
    let mut raw = Vec::new();
    let _ = response
        .into_reader()
        .take(ERROR_BODY_BYTES)
        .read_to_end(&mut raw);
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(&raw) {
        if let Some(message) = body.message.filter(|m| !m.trim().is_empty()) {
            let mut text = match body.request_id {
                Some(id) => format!("{message} (request id {id})"),
                None => message,
            };
            if let Some(docs) = body.documentation_url.filter(|d| d.starts_with("https://")) {
                text.push_str(&format!("; see {docs}"));
            }
            return (clean(&text, secrets), true);
        }
    }
    let text = String::from_utf8_lossy(&raw);
    if text.trim_start().starts_with('<') {
        // An HTML error page says nothing a terminal can show.
        return (String::new(), false);
    }
    (clean(&text, secrets), false)
}

/// Server text made printable: secrets masked (the redactor's and the
/// action's), white space collapsed, control characters escaped, cut.
fn clean(text: &str, secrets: &[&str]) -> String {
    // The action's own secrets first: the process-wide redactor may have
    // masked part of one (a short secret inside it) so that it no longer
    // matches whole.
    let text = crate::auth::redact(&mask(text, secrets)).into_owned();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// `text` with every secret of an action (long enough to be one) masked.
fn mask(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 6) {
        if text.contains(secret) {
            text = text.replace(secret, crate::auth::MASK);
        }
    }
    text
}

/// A transport error whose text holds one of the action's secrets, made
/// safe: its kind is kept where it can be, its text masked.
fn scrub(t: TransportError, secrets: &[&str]) -> TransportError {
    let text = t.to_string();
    if !secrets.iter().any(|s| s.len() >= 6 && text.contains(s)) {
        return t;
    }
    let kind = match &t {
        TransportError::Io(e) => e.kind(),
        TransportError::Timeout { .. } => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    TransportError::Io(io::Error::new(kind, mask(&text, secrets)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;

    use super::*;
    use crate::lfs::checked::CheckedReader;

    /// One request as the server saw it.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        /// Header names in lower case.
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
        /// Whether the body came whole (as its Content-Length said).
        complete: bool,
    }

    type Answer = (u16, Vec<(String, String)>, Vec<u8>);

    type IsCause = fn(&LfsCause) -> bool;

    /// A small HTTP/1.1 server on 127.0.0.1 that logs every request and
    /// answers with `route`: enough to see what the client sends, which a
    /// real LFS server (the giftless harness) does not show.
    struct Server {
        port: u16,
        log: Arc<Mutex<Vec<Seen>>>,
    }

    impl Server {
        fn start(route: impl Fn(&Seen, u16) -> Answer + Send + Sync + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let log = Arc::new(Mutex::new(Vec::new()));
            let (l, route) = (log.clone(), Arc::new(route));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let (l, route) = (l.clone(), route.clone());
                    thread::spawn(move || serve(stream, port, &l, &*route));
                }
            });
            Server { port, log }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        /// The log, once `n` requests are in it (a cut upload is logged
        /// when the server notices the cut).
        fn seen(&self, n: usize) -> Vec<Seen> {
            for _ in 0..200 {
                let log = self.log.lock().unwrap().clone();
                if log.len() >= n {
                    return log;
                }
                thread::sleep(Duration::from_millis(10));
            }
            panic!("fewer than {n} requests: {:?}", self.log.lock().unwrap());
        }
    }

    fn serve(
        stream: TcpStream,
        port: u16,
        log: &Mutex<Vec<Seen>>,
        route: &(dyn Fn(&Seen, u16) -> Answer + Send + Sync),
    ) {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_owned();
            let path = parts.next().unwrap_or("").to_owned();
            let mut headers = BTreeMap::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                }
            }
            let len: u64 = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let (body, complete) = if path.starts_with("/sink/") {
                // Hashed as it comes, not kept: the body is its SHA-256.
                let mut sink = HashingSink(ring::digest::Context::new(&ring::digest::SHA256));
                let got = io::copy(&mut (&mut reader).take(len), &mut sink).unwrap_or(0);
                let digest = sink.0.finish();
                let mut oid = [0u8; 32];
                oid.copy_from_slice(digest.as_ref());
                (Sha256(oid).to_string().into_bytes(), got == len)
            } else {
                let mut body = Vec::new();
                let _ = (&mut reader).take(len).read_to_end(&mut body);
                let complete = body.len() as u64 == len;
                (body, complete)
            };
            let seen = Seen {
                method,
                path,
                headers,
                body,
                complete,
            };
            log.lock().unwrap().push(seen.clone());
            if !complete {
                return;
            }
            let (status, headers, body) = route(&seen, port);
            // A route asks for a generated body of any size with this
            // pseudo-header instead of building it in memory.
            let generated = headers
                .iter()
                .find(|(name, _)| name == GENERATE)
                .and_then(|(_, v)| v.split_once(' '))
                .map(|(seed, len)| Generated::new(seed.parse().unwrap(), len.parse().unwrap()));
            let len = generated.as_ref().map_or(body.len() as u64, |g| g.len);
            let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {len}\r\n");
            for (name, value) in headers.iter().filter(|(name, _)| name != GENERATE) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                return;
            }
            if let Some(mut generated) = generated {
                if io::copy(&mut generated, &mut writer).is_err() {
                    return;
                }
            }
        }
    }

    const GENERATE: &str = "x-generate";

    struct HashingSink(ring::digest::Context);

    impl Write for HashingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// `len` bytes of a 64 KiB pseudo-random block repeated: objects of any
    /// size without holding them.
    struct Generated {
        block: Vec<u8>,
        at: u64,
        len: u64,
    }

    impl Generated {
        fn new(seed: u64, len: u64) -> Generated {
            let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let block = (0..8192)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect();
            Generated { block, at: 0, len }
        }

        fn pointer(seed: u64, len: u64) -> Pointer {
            let mut sink = HashingSink(ring::digest::Context::new(&ring::digest::SHA256));
            io::copy(&mut Generated::new(seed, len), &mut sink).unwrap();
            let mut oid = [0u8; 32];
            oid.copy_from_slice(sink.0.finish().as_ref());
            Pointer {
                oid: Sha256(oid),
                size: len,
            }
        }
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let offset = (self.at % self.block.len() as u64) as usize;
            let left = usize::try_from(self.len - self.at).unwrap_or(usize::MAX);
            let n = buf.len().min(self.block.len() - offset).min(left);
            buf[..n].copy_from_slice(&self.block[offset..offset + n]);
            self.at += n as u64;
            Ok(n)
        }
    }

    fn json(status: u16, body: String) -> Answer {
        (
            status,
            vec![("Content-Type".to_owned(), MEDIA_TYPE.to_owned())],
            body.into_bytes(),
        )
    }

    fn pointer_of(content: &[u8]) -> Pointer {
        let digest = ring::digest::digest(&ring::digest::SHA256, content);
        let mut oid = [0u8; 32];
        oid.copy_from_slice(digest.as_ref());
        Pointer {
            oid: Sha256(oid),
            size: content.len() as u64,
        }
    }

    /// Options of their own per test: no test shares an agent by chance.
    fn options(timeout_secs: u64) -> NetworkOptions {
        NetworkOptions {
            timeout: Duration::from_secs(timeout_secs),
            ..NetworkOptions::default()
        }
    }

    fn client(server: &Server, side: Side, timeout_secs: u64) -> LfsClient {
        let endpoint = Url::parse(&server.url("/r.git/info/lfs")).unwrap();
        let credentials = Credentials::basic("git", "Tok3n-of-the-side");
        LfsClient::new(side, endpoint, Some(&credentials), &options(timeout_secs)).unwrap()
    }

    const ACTION_TOKEN: &str = "act1on-t0ken-s3cret";

    #[test]
    fn a_batch_is_posted_as_the_spec_says_and_its_answer_read_per_object() {
        let content = b"hello lfs\n".to_vec();
        let there = pointer_of(&content);
        let server = Server::start(move |seen, port| {
            let request: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
            let objects = request["objects"].as_array().unwrap();
            let answers: Vec<String> = objects
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let (oid, size) = (o["oid"].as_str().unwrap(), o["size"].as_u64().unwrap());
                    match i % 3 {
                        0 => format!(r#"{{"oid":"{oid}","size":{size},"actions":{{"upload":{{"href":"http://127.0.0.1:{port}/up/{oid}?sig={ACTION_TOKEN}"}},"verify":{{"href":"http://127.0.0.1:{port}/verify"}}}}}}"#),
                        1 => format!(r#"{{"oid":"{oid}","size":{size}}}"#),
                        _ => format!(r#"{{"oid":"{oid}","size":{size},"error":{{"code":422,"message":"too big"}}}}"#),
                    }
                })
                .collect();
            json(
                200,
                format!(
                    r#"{{"transfer":"basic","objects":[{}]}}"#,
                    answers.join(",")
                ),
            )
        });
        let lfs = client(&server, Side::Destination, 51);
        let pointers: Vec<Pointer> = (0..150u64)
            .map(|i| Pointer {
                oid: there.oid,
                size: i + 1,
            })
            .map(|mut p| {
                p.oid.0[0] = p.size as u8;
                p
            })
            .collect();
        let answers = lfs.batch(Operation::Upload, &pointers).unwrap();
        assert_eq!(answers.len(), 150);
        for (i, answer) in answers.iter().enumerate() {
            match (i % 100 % 3, &answer.next) {
                (
                    0,
                    Next::Upload {
                        verify: Some(_), ..
                    },
                )
                | (1, Next::Present) => {}
                (2, Next::Error(e)) => assert_eq!((e.code, e.message.as_str()), (422, "too big")),
                (_, other) => panic!("{i}: {other:?}"),
            }
        }
        let seen = server.seen(2);
        assert_eq!(seen.len(), 2, "chunks of a hundred");
        for (request, n) in seen.iter().zip([100, 50]) {
            assert_eq!(
                (request.method.as_str(), request.path.as_str()),
                ("POST", "/r.git/info/lfs/objects/batch")
            );
            assert_eq!(request.headers["accept"], MEDIA_TYPE);
            assert_eq!(request.headers["content-type"], MEDIA_TYPE);
            assert!(request.headers["authorization"].starts_with("Basic "));
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            assert_eq!(body["operation"], "upload");
            assert_eq!(body["transfers"], serde_json::json!(["basic"]));
            assert_eq!(body["objects"].as_array().unwrap().len(), n);
        }
    }

    #[test]
    fn an_object_streams_from_a_download_through_the_check_into_an_upload() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let pointer = pointer_of(&content);
        let served = content.clone();
        let server =
            Server::start(
                move |seen, _| match (seen.method.as_str(), seen.path.as_str()) {
                    ("GET", "/objects/good") => (200, vec![], served.clone()),
                    ("GET", "/objects/bad") => {
                        let mut bad = served.clone();
                        bad[299_999] ^= 1;
                        (200, vec![], bad)
                    }
                    ("PUT", _) | ("POST", "/verify") => (200, vec![], Vec::new()),
                    _ => (500, vec![], Vec::new()),
                },
            );
        let source = client(&server, Side::Source, 52);
        let dest = client(&server, Side::Destination, 52);
        let action = |path: &str, header: Option<&str>| -> Action {
            let header = header
                .map(|h| format!(r#", "header": {{"Authorization": "{h}"}}"#))
                .unwrap_or_default();
            serde_json::from_str(&format!(r#"{{"href": "{}"{header}}}"#, server.url(path))).unwrap()
        };

        let download = source.download(&action("/objects/good", None)).unwrap();
        let upload = action("/up", Some(&format!("RemoteAuth {ACTION_TOKEN}")));
        dest.upload(&upload, CheckedReader::new(download, pointer), pointer.size)
            .unwrap();
        dest.verify(&action("/verify", None), &pointer).unwrap();
        let seen = server.seen(3);
        assert_eq!(seen[1].method, "PUT");
        assert_eq!(seen[1].body, content);
        assert_eq!(seen[1].headers["content-length"], "300000");
        assert!(!seen[1].headers.contains_key("transfer-encoding"));
        assert_eq!(seen[1].headers["content-type"], "application/octet-stream");
        // The action's own Authorization goes, ours does not.
        assert_eq!(
            seen[1].headers["authorization"],
            format!("RemoteAuth {ACTION_TOKEN}")
        );
        // Without one of its own, an action on the endpoint's origin gets
        // ours.
        assert!(seen[0].headers["authorization"].starts_with("Basic "));
        let verify: serde_json::Value = serde_json::from_slice(&seen[2].body).unwrap();
        assert_eq!(verify["oid"], pointer.oid.to_string());
        assert_eq!(verify["size"], 300_000);
        assert_eq!(seen[2].headers["accept"], MEDIA_TYPE);

        // A corrupt object: the upload is cut before its last byte, and the
        // failure is the body's, not the destination's.
        let download = source.download(&action("/objects/bad", None)).unwrap();
        let err = dest
            .upload(&upload, CheckedReader::new(download, pointer), pointer.size)
            .unwrap_err();
        assert!(matches!(err.cause, LfsCause::Body(_)), "{err:?}");
        assert!(err.mismatch().is_some(), "{err}");
        let seen = server.seen(5);
        let cut = &seen[4];
        assert_eq!(cut.method, "PUT");
        assert!(!cut.complete, "the server never had the whole body");
        assert_eq!(cut.body.len(), 299_999);
    }

    #[test]
    fn credentials_stay_on_their_origin_and_action_headers_on_the_actions() {
        // The object store is another origin (another port), and the LFS
        // server redirects downloads there.
        let store = Server::start(|_, _| (200, vec![], b"x".to_vec()));
        let store_url = store.url("/bucket/obj?X-Signature=signed");
        let server = Server::start(move |seen, _| match seen.path.as_str() {
            "/redirect" => (
                302,
                vec![("Location".to_owned(), store_url.clone())],
                Vec::new(),
            ),
            _ => (200, vec![], b"x".to_vec()),
        });
        let lfs = client(&server, Side::Source, 53);
        let action = |url: String, header: bool| -> Action {
            let header = if header {
                format!(r#", "header": {{"X-Token": "{ACTION_TOKEN}"}}"#)
            } else {
                String::new()
            };
            serde_json::from_str(&format!(r#"{{"href": "{url}"{header}}}"#)).unwrap()
        };
        let read = |action: &Action| {
            let mut out = Vec::new();
            lfs.download(action).unwrap().read_to_end(&mut out).unwrap();
            out
        };

        // Another origin from the start: neither our credentials nor (there
        // being none) anything else.
        assert_eq!(read(&action(store.url("/bucket/a"), false)), b"x");
        // Redirected to another origin: the action's header and our
        // credentials went to the LFS server only.
        assert_eq!(read(&action(server.url("/redirect"), true)), b"x");
        // Marked authenticated: ours are not added.
        let mut authenticated = action(server.url("/plain"), false);
        authenticated.authenticated = true;
        assert_eq!(read(&authenticated), b"x");

        let at_store = store.seen(2);
        for seen in &at_store {
            assert!(!seen.headers.contains_key("authorization"), "{seen:?}");
            assert!(!seen.headers.contains_key("x-token"), "{seen:?}");
        }
        assert_eq!(at_store[1].path, "/bucket/obj?X-Signature=signed");
        let at_server = server.seen(2);
        assert!(at_server[0].headers["authorization"].starts_with("Basic "));
        assert_eq!(at_server[0].headers["x-token"], ACTION_TOKEN);
        assert!(!at_server[1].headers.contains_key("authorization"));
    }

    #[test]
    fn refusals_are_told_apart_and_say_the_side_and_lfs_but_no_secret() {
        let server = Server::start(|seen, _| {
            let status: u16 = seen
                .path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap_or(500);
            let message = format!("refused {}", seen.path);
            let mut answer = json(
                status,
                format!(r#"{{"message": "{message}", "request_id": "r-1"}}"#),
            );
            // Transient refusals are tried once more after this long.
            answer.1.push(("Retry-After".to_owned(), "0".to_owned()));
            answer
        });
        let options = options(54);
        let batch_of = |status: u16| {
            let endpoint = Url::parse(&server.url(&format!("/{status}/r.git/info/lfs"))).unwrap();
            let credentials = Credentials::basic("git", "Tok3n-of-the-side");
            LfsClient::new(Side::Destination, endpoint, Some(&credentials), &options)
                .unwrap()
                .batch(Operation::Upload, &[pointer_of(b"x")])
                .unwrap_err()
        };
        let cases: [(u16, IsCause); 7] = [
            (401, |c| {
                matches!(
                    c,
                    LfsCause::Unauthorized {
                        had_credentials: true
                    }
                )
            }),
            (403, |c| matches!(c, LfsCause::Forbidden { .. })),
            (404, |c| matches!(c, LfsCause::NotFound { .. })),
            (413, |c| matches!(c, LfsCause::TooLarge { .. })),
            (422, |c| matches!(c, LfsCause::Invalid { .. })),
            (
                429,
                |c| matches!(c, LfsCause::RateLimited { retry_after: Some(d), .. } if d.is_zero()),
            ),
            (503, |c| matches!(c, LfsCause::Server { status: 503, .. })),
        ];
        for (status, expected) in cases {
            let err = batch_of(status);
            assert!(expected(&err.cause), "{status}: {err:?}");
            let text = err.to_string();
            assert!(
                text.starts_with("destination LFS http://127.0.0.1:"),
                "{text}"
            );
            assert!(text.contains(&format!("HTTP {status}")), "{text}");
            assert!(!text.contains("Tok3n"), "{text}");
            assert_eq!(err.is_transient(), matches!(status, 429 | 503), "{status}");
            if status != 401 {
                assert!(
                    text.contains("refused /") && text.contains("request id r-1"),
                    "{text}"
                );
            }
        }

        // A server quoting an action's secret URL back: masked.
        let lfs = client(&server, Side::Source, 54);
        let href = server.url(&format!("/403/objects/x?token={ACTION_TOKEN}"));
        let action: Action = serde_json::from_str(&format!(
            r#"{{"href": "{href}", "header": {{"Authorization": "Bearer {ACTION_TOKEN}"}}}}"#
        ))
        .unwrap();
        let err = lfs.download(&action).err().unwrap();
        let text = err.to_string();
        assert!(text.starts_with("source LFS"), "{text}");
        assert!(text.contains("HTTP 403"), "{text}");
        assert!(!text.contains(ACTION_TOKEN), "{text}");
        assert!(!format!("{err:?}").contains(ACTION_TOKEN));
    }

    #[test]
    fn a_broken_answer_is_an_error_that_quotes_nothing() {
        let server = Server::start(|seen, _| match seen.path.as_str() {
            p if p.starts_with("/shape") => json(
                200,
                format!(r#"{{"objects": [{{"oid": "x", "size": "{ACTION_TOKEN}"}}]}}"#),
            ),
            p if p.starts_with("/adapter") => {
                json(200, r#"{"transfer": "tus", "objects": []}"#.to_owned())
            }
            _ => json(200, "not json".to_owned()),
        });
        for (path, expected) in [
            ("/shape", "does not have the batch API's shape"),
            ("/adapter", "transfer adapter `tus`"),
            ("/junk", "is not JSON"),
        ] {
            let endpoint = Url::parse(&server.url(path)).unwrap();
            let lfs = LfsClient::new(Side::Source, endpoint, None, &options(55)).unwrap();
            let err = lfs
                .batch(Operation::Download, &[pointer_of(b"x")])
                .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains(ACTION_TOKEN), "{text}");
        }
    }

    /// Peak resident memory of this process so far, in KiB (Linux).
    fn peak_rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The issue's memory case: one 300 MiB object and 200 of 1 MiB,
    /// relayed server to server four at a time, with the peak memory of
    /// the whole process (test server included) printed and bounded.
    #[test]
    #[ignore = "a measurement (500 MiB through loopback): cargo test --lib lfs::client::tests::memory -- --ignored --nocapture"]
    fn memory_stays_bounded_relaying_a_large_object_and_many_small_ones() {
        use crate::lfs::relay::{relay, Need};
        let specs: Vec<(u64, u64)> = std::iter::once((1, 300 << 20))
            .chain((0..200).map(|i| (100 + i, 1 << 20)))
            .collect();
        let pointers: Vec<Pointer> = specs
            .iter()
            .map(|&(s, l)| Generated::pointer(s, l))
            .collect();
        let seeds: HashMap<String, (u64, u64)> = pointers
            .iter()
            .zip(&specs)
            .map(|(p, spec)| (p.oid.to_string(), *spec))
            .collect();
        let server = Server::start(move |seen, port| {
            let path = seen.path.as_str();
            if path.ends_with("/objects/batch") {
                let request: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
                let upload = request["operation"] == "upload";
                let objects: Vec<String> = request["objects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| {
                        let (oid, size) = (o["oid"].as_str().unwrap(), &o["size"]);
                        let base = format!("http://127.0.0.1:{port}");
                        let actions = if upload {
                            format!(r#""upload": {{"href": "{base}/sink/{oid}"}}, "verify": {{"href": "{base}/verify"}}"#)
                        } else {
                            format!(r#""download": {{"href": "{base}/gen/{oid}"}}"#)
                        };
                        format!(r#"{{"oid": "{oid}", "size": {size}, "actions": {{{actions}}}}}"#)
                    })
                    .collect();
                return json(200, format!(r#"{{"objects": [{}]}}"#, objects.join(",")));
            }
            if let Some(oid) = path.strip_prefix("/gen/") {
                let (seed, len) = seeds[oid];
                return (
                    200,
                    vec![(GENERATE.to_owned(), format!("{seed} {len}"))],
                    Vec::new(),
                );
            }
            if let Some(oid) = path.strip_prefix("/sink/") {
                // The body arrives as its hash: a mismatch is a failure.
                let status = if seen.body == oid.as_bytes() {
                    200
                } else {
                    400
                };
                return (status, vec![], Vec::new());
            }
            (200, vec![], Vec::new())
        });
        let endpoint = |path: &str| Url::parse(&server.url(path)).unwrap();
        let source = LfsClient::new(
            Side::Source,
            endpoint("/src.git/info/lfs"),
            None,
            &options(56),
        )
        .unwrap();
        let dest = LfsClient::new(
            Side::Destination,
            endpoint("/dst.git/info/lfs"),
            None,
            &options(56),
        )
        .unwrap();
        let wanted: Vec<(Pointer, Need)> = pointers
            .iter()
            .map(|p| {
                let need = Need {
                    commit: crate::protocol::ObjectId::ZERO,
                    path: "f".to_owned(),
                };
                (*p, need)
            })
            .collect();
        let before = peak_rss_kib();
        let started = Instant::now();
        let report = relay(&source, &dest, &wanted, 4, &|_| {}).unwrap();
        let elapsed = started.elapsed();
        let peak = peak_rss_kib();
        assert!(report.complete(), "{report:?}");
        assert_eq!(report.moved, 201);
        assert_eq!(report.bytes, 500 << 20);
        let puts = server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "PUT")
            .count();
        assert_eq!(puts, 201);
        println!(
            "relayed {} objects, {} MiB, in {:.1}s ({:.0} MiB/s); peak RSS of the process {} MiB (before the relay {} MiB)",
            report.moved,
            report.bytes >> 20,
            elapsed.as_secs_f64(),
            (report.bytes >> 20) as f64 / elapsed.as_secs_f64(),
            peak >> 10,
            before >> 10
        );
        assert!(peak < 64 << 10, "peak RSS {} MiB", peak >> 10);
    }

    #[test]
    fn an_action_about_to_expire_is_asked_for_again() {
        use crate::lfs::relay::{ObjectSink, ObjectSource};
        let content = b"fresh\n".to_vec();
        let pointer = pointer_of(&content);
        let served = content.clone();
        let server = Server::start(move |seen, port| match seen.path.as_str() {
            "/r.git/info/lfs/objects/batch" => {
                let request: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
                let o = &request["objects"][0];
                let (oid, size) = (o["oid"].as_str().unwrap(), &o["size"]);
                if request["operation"] == "download" {
                    json(
                        200,
                        format!(
                            r#"{{"objects": [{{"oid": "{oid}", "size": {size}, "actions": {{"download": {{"href": "http://127.0.0.1:{port}/fresh", "expires_in": 3600}}}}}}]}}"#
                        ),
                    )
                } else {
                    // Someone uploaded it meanwhile.
                    json(
                        200,
                        format!(r#"{{"objects": [{{"oid": "{oid}", "size": {size}}}]}}"#),
                    )
                }
            }
            "/fresh" => (200, vec![], served.clone()),
            _ => (404, vec![], Vec::new()),
        });
        let lfs = client(&server, Side::Source, 57);
        let stale: Action = serde_json::from_str(&format!(
            r#"{{"href": "{}", "expires_in": 30}}"#,
            server.url("/stale")
        ))
        .unwrap();
        let mut body = Vec::new();
        ObjectSource::open(&lfs, &pointer, &(stale.clone(), Instant::now()))
            .unwrap()
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, content);
        let paths: Vec<String> = server.seen(2).into_iter().map(|s| s.path).collect();
        assert_eq!(paths, ["/r.git/info/lfs/objects/batch", "/fresh"]);

        // An upload whose action expired, and the server now has the object:
        // nothing is sent, and the body is still read through its check.
        let mut checked = CheckedReader::new(&content[..], pointer);
        ObjectSink::put(&lfs, &pointer, &(stale, None, Instant::now()), &mut checked).unwrap();
        assert!(checked.is_verified());
        let methods: Vec<String> = server.seen(3).into_iter().map(|s| s.method).collect();
        assert_eq!(methods, ["POST", "GET", "POST"], "no PUT");
    }

    #[test]
    fn a_busy_batch_is_tried_once_more() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = AtomicUsize::new(0);
        let server = Server::start(move |_, _| match calls.fetch_add(1, Ordering::SeqCst) {
            0 | 2 | 3 => {
                let mut answer = json(503, r#"{"message": "busy"}"#.to_owned());
                answer.1.push(("Retry-After".to_owned(), "0".to_owned()));
                answer
            }
            _ => json(200, r#"{"objects": []}"#.to_owned()),
        });
        let lfs = client(&server, Side::Destination, 58);
        let pointer = pointer_of(b"x");
        let answers = lfs.batch(Operation::Upload, &[pointer]).unwrap();
        assert!(
            matches!(answers[0].next, Next::Error(_)),
            "left out of the answer"
        );
        assert_eq!(server.seen(2).len(), 2);
        // Busy twice in a row: the error.
        let err = lfs.batch(Operation::Upload, &[pointer]).unwrap_err();
        assert!(
            matches!(err.cause, LfsCause::Server { status: 503, .. }),
            "{err:?}"
        );
        assert_eq!(server.seen(4).len(), 4);
    }
}

//! Git's smart HTTP protocol (stateless RPC) over a blocking HTTP client.
//!
//! Requests are `GET <repo>/info/refs?service=<service>` for discovery and
//! `POST <repo>/<service>` for everything else (see `gitprotocol-http(5)`).
//! Credentials travel only in the `Authorization` header, sent with every
//! request, so the URL we use and print never contains them. Request bodies
//! are streamed with chunked transfer encoding, or sent with a
//! `Content-Length` when their size is known ([`Body::Sized`], for proxies
//! that refuse chunked bodies), and responses are read as they arrive: a
//! pack of any size passes through a few fixed buffers.
//!
//! Connections are kept alive: every transport of a process with the same
//! TLS, proxy and timeout settings shares one HTTP agent and so one pool of
//! idle connections ([`shared_agent`]), so the requests of a run, and of
//! every repository a `mirror-all` worker takes on the same host, reuse
//! connections and TLS sessions instead of opening one per transport. The
//! pool is keyed by scheme, host, port and proxy, so a connection never
//! serves another host; credentials are a header of each request, never a
//! property of a connection, and the agent keeps no cookies (ureq's
//! `cookies` feature is off), so sharing carries nothing across
//! repositories.
//! A connection goes back to the pool only once its response has been read
//! to the end, which the engine does for every response it finishes with.
//!
//! TLS is rustls with the system trust store (which honours `SSL_CERT_FILE`
//! and `SSL_CERT_DIR`), plus `--ca-file`. The read timeout of the socket is
//! the idle timeout: a transfer may take an hour as long as bytes keep
//! arriving.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use url::Url;

use super::{
    follow, Body, FollowError, NetworkOptions, RedirectPolicy, Response, Service, Transport,
    TransportError,
};
use crate::auth::Credentials;
use crate::output;

/// A repository reached over smart HTTP.
pub(crate) struct HttpTransport {
    agent: ureq::Agent,
    /// The repository URL; replaced by the final URL when discovery is
    /// redirected (within the rules of [`super::origin`]), so the RPCs go
    /// where the server sent us.
    base: Mutex<Url>,
    display: String,
    credentials: Option<Credentials>,
    redirects: RedirectPolicy,
    timeout: Duration,
    /// The proxy in use, if any, so that a failure to reach it is not
    /// blamed on the server behind it.
    proxy: Option<String>,
}

impl HttpTransport {
    /// Prepares a transport to `url` (without userinfo).
    pub(crate) fn new(
        url: Url,
        credentials: Option<&Credentials>,
        options: &NetworkOptions,
    ) -> Result<HttpTransport, TransportError> {
        if credentials.is_some() {
            warn_if_cleartext(&url);
        }
        Ok(HttpTransport {
            agent: shared_agent(&url, options)?,
            proxy: proxy_for(&url, options.proxy.as_deref()),
            display: url.to_string(),
            base: Mutex::new(url),
            credentials: credentials.cloned(),
            redirects: options.redirects.clone(),
            timeout: options.timeout,
        })
    }

    fn endpoint(&self, tail: &str) -> String {
        let base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}/{tail}", base.as_str().trim_end_matches('/'))
    }

    /// The `Authorization` of the next request, if we sign them: one per
    /// request and its redirects, fresh where tokens expire.
    fn authorization(&self) -> Result<Option<String>, TransportError> {
        (self.credentials.as_ref())
            .map(|c| c.header().map_err(|e| TransportError::SignIn(Box::new(e))))
            .transpose()
    }

    fn request(&self, method: &str, url: &str, v2: bool, auth: Option<&str>) -> ureq::Request {
        let mut req = self.agent.request(method, url);
        if let Some(auth) = auth {
            req = req.set("Authorization", auth);
        }
        if v2 {
            req = req.set("Git-Protocol", "version=2");
        }
        req
    }

    /// Sends one POST with `body`, announced as `len` bytes when given
    /// (`Content-Length`), else chunked.
    fn post(
        &self,
        url: &str,
        service: Service,
        v2: bool,
        body: &mut (dyn Read + Send),
        len: Option<u64>,
    ) -> Result<ureq::Response, TransportError> {
        let auth = self.authorization()?;
        let request = self
            .request("POST", url, v2, auth.as_deref())
            .set(
                "Content-Type",
                &format!("application/x-{}-request", service.name()),
            )
            .set(
                "Accept",
                &format!("application/x-{}-result", service.name()),
            );
        let request = match len {
            // ureq sends a body with this header as is, without chunks.
            Some(len) => request.set("Content-Length", &len.to_string()),
            None => request,
        };
        let mut upload = Upload::new(body, len);
        request.send(&mut upload).map_err(|e| match e {
            ureq::Error::Transport(t) if upload.cut_while_sending(&t) => {
                let kind = io_kind(&t).unwrap_or(io::ErrorKind::ConnectionReset);
                TransportError::RequestCut(io::Error::new(
                    kind,
                    format!(
                        "{} bytes of the body sent: {}",
                        upload.sent,
                        io::Error::from(kind)
                    ),
                ))
            }
            e => self.classify(url, e),
        })
    }

    fn classify(&self, url: &str, err: ureq::Error) -> TransportError {
        match err {
            ureq::Error::Status(status, response) => {
                let retry_after = response
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let detail = response_excerpt(response);
                match status {
                    401 => {
                        if let Some(credentials) = &self.credentials {
                            credentials.refused();
                        }
                        TransportError::Unauthorized {
                            had_credentials: self.credentials.is_some(),
                            identity: self.credentials.as_ref().and_then(Credentials::identity),
                        }
                    }
                    403 => TransportError::Forbidden { detail },
                    404 => TransportError::NotFound,
                    408 => TransportError::RequestTimeout { detail },
                    411 => TransportError::LengthRequired { detail },
                    413 => TransportError::TooLarge { status, detail },
                    429 | 500 | 502 | 503 | 504 => TransportError::Busy {
                        status,
                        retry_after,
                        detail,
                    },
                    _ => TransportError::Status { status, detail },
                }
            }
            ureq::Error::Transport(t) => {
                match (classify_transport(url, t, self.timeout), &self.proxy) {
                    (TransportError::Connect { detail, .. }, Some(proxy)) => {
                        TransportError::Proxy {
                            detail: format!("cannot connect to the proxy {proxy}: {detail}"),
                        }
                    }
                    (TransportError::UnknownHost { .. }, Some(proxy)) => TransportError::Proxy {
                        detail: format!("cannot resolve the proxy {proxy}"),
                    },
                    (other, _) => other,
                }
            }
        }
    }
}

impl Transport for HttpTransport {
    fn discover(&self, service: Service, v2: bool) -> Result<Response, TransportError> {
        let url = self.endpoint(&format!("info/refs?service={}", service.name()));
        output::debug(format_args!("GET {url}"));
        let start = Url::parse(&url).map_err(|e| TransportError::Local(e.to_string()))?;
        let auth = self.authorization()?;
        let followed = follow(&start, self.credentials.is_some(), &self.redirects, |hop| {
            self.request("GET", hop.as_str(), v2, auth.as_deref())
                .call()
                .map_err(Box::new)
        })
        .map_err(|e| match e {
            FollowError::Http(e) => self.classify(&url, *e),
            FollowError::Refused(e) => e,
        })?;
        let response = followed.response;
        if followed.url != start {
            // Follow the redirect for the RPCs too, as git does: the rules
            // that let discovery go there hold for them as well.
            let suffix = format!("/info/refs?service={}", service.name());
            if let Some(base) = followed.url.as_str().strip_suffix(&suffix) {
                if let Ok(base) = Url::parse(base) {
                    *self.base.lock().unwrap_or_else(|e| e.into_inner()) = base;
                }
            }
        }
        if (300..400).contains(&response.status()) {
            return Err(TransportError::Status {
                status: response.status(),
                detail: "a redirect without a usable Location".to_owned(),
            });
        }
        let expected = format!("application/x-{}-advertisement", service.name());
        if response.content_type() != expected {
            return Err(TransportError::NotSmartHttp(format!(
                "the server answered with `{}` instead of a git ref advertisement: it is a dumb-HTTP git server or not a git server (a login page?); git-relay needs smart HTTP",
                response.content_type()
            )));
        }
        if let Some(credentials) = &self.credentials {
            // The server took them: a credential helper stores them now.
            credentials.accepted();
        }
        Ok(Box::new(response.into_reader()))
    }

    fn rpc(&self, service: Service, v2: bool, body: Body<'_>) -> Result<Response, TransportError> {
        let url = self.endpoint(service.name());
        output::debug(format_args!("POST {url}"));
        let response = match body {
            Body::Bytes(bytes) => {
                let len = Some(bytes.len() as u64);
                let first = self.post(&url, service, v2, &mut &bytes[..], len);
                match first {
                    // A kept-alive connection the server had closed while
                    // it sat idle fails the first request sent on it, as a
                    // cut before any answer. An upload-pack request only
                    // reads, so it is sent once more, on a new connection
                    // (the dead one is not pooled again), as HTTP allows
                    // for requests that change nothing; a receive-pack
                    // request is not: its ref updates may have been made.
                    Err(e) if service == Service::UploadPack && is_stale_connection(&e) => {
                        output::debug(format_args!("POST {url} again: {e}"));
                        self.post(&url, service, v2, &mut &bytes[..], len)
                    }
                    other => other,
                }
            }
            Body::Stream(reader) => self.post(&url, service, v2, reader, None),
            Body::Sized(reader, len) => self.post(&url, service, v2, reader, Some(len)),
        }?;
        if (300..400).contains(&response.status()) {
            // A request body cannot be sent twice, and git follows only the
            // discovery request's redirects.
            return Err(TransportError::Status {
                status: response.status(),
                detail: format!(
                    "the server redirected the {} request; redirects are followed at discovery only",
                    service.name()
                ),
            });
        }
        let expected = format!("application/x-{}-result", service.name());
        if response.content_type() != expected {
            return Err(TransportError::NotSmartHttp(format!(
                "the server answered `{}` to a {} request instead of `{expected}`",
                response.content_type(),
                service.name()
            )));
        }
        Ok(Box::new(response.into_reader()))
    }

    fn display(&self) -> &str {
        &self.display
    }
}

/// Whether `e` is what a request meets on a kept-alive connection the
/// server closed: cut before any answer came.
fn is_stale_connection(e: &TransportError) -> bool {
    match e {
        TransportError::RequestCut(_) => true,
        TransportError::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// A request body on its way, watched so that a failure can be told apart:
/// the body's own reader failing (the source) from the connection failing
/// under it, and a cut before the end of the body from one after.
struct Upload<'a> {
    inner: &'a mut (dyn Read + Send),
    /// Bytes still to send, when the length was announced.
    remaining: Option<u64>,
    /// Bytes handed to the client so far.
    sent: u64,
    /// The reader failed or ended early: its own error, not the network's.
    reader_failed: bool,
    /// The whole body was handed over.
    finished: bool,
}

impl<'a> Upload<'a> {
    fn new(inner: &'a mut (dyn Read + Send), len: Option<u64>) -> Upload<'a> {
        Upload {
            inner,
            remaining: len,
            sent: 0,
            reader_failed: false,
            finished: false,
        }
    }

    /// Whether `t` is the connection being reset or closed before the whole
    /// body went out.
    fn cut_while_sending(&self, t: &ureq::Transport) -> bool {
        !self.reader_failed
            && !self.finished
            && matches!(
                io_kind(t),
                Some(
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionAborted
                )
            )
    }
}

impl Read for Upload<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = match self.remaining {
            Some(0) => {
                self.finished = true;
                return Ok(0);
            }
            Some(left) => buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                self.reader_failed = true;
                return Err(e);
            }
        };
        if n == 0 && want > 0 {
            if let Some(left) = self.remaining {
                // Sending less than announced would leave the server
                // waiting for the rest until one side times out.
                self.reader_failed = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the request body ended after {} bytes, {left} short of its announced length",
                        self.sent
                    ),
                ));
            }
            self.finished = true;
        }
        self.sent += n as u64;
        if let Some(left) = &mut self.remaining {
            *left -= n as u64;
        }
        Ok(n)
    }
}

/// What makes two agents different: TLS trust, proxy and timeouts. All
/// else an agent holds is the same for every transport.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct AgentKey {
    ca_file: Option<PathBuf>,
    insecure: bool,
    proxy: Option<String>,
    timeout: Duration,
}

/// Idle connections kept per host: enough for every worker of a
/// `mirror-all` (at most 8 by default) to find one to the same host.
const IDLE_PER_HOST: usize = 16;

/// The process's agent for requests to `url` with `options`, built once per
/// distinct settings and shared (see the module's documentation).
pub(crate) fn shared_agent(
    url: &Url,
    options: &NetworkOptions,
) -> Result<ureq::Agent, TransportError> {
    static AGENTS: OnceLock<Mutex<HashMap<AgentKey, ureq::Agent>>> = OnceLock::new();
    let key = AgentKey {
        ca_file: options.ca_file.clone(),
        insecure: options.insecure,
        proxy: proxy_for(url, options.proxy.as_deref()),
        timeout: options.timeout,
    };
    let agents = AGENTS.get_or_init(Mutex::default);
    let mut agents = agents.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(agent) = agents.get(&key) {
        return Ok(agent.clone());
    }
    let agent = agent_builder(url, options)?
        .max_idle_connections_per_host(IDLE_PER_HOST)
        .build();
    agents.insert(key, agent.clone());
    Ok(agent)
}

/// An HTTP agent for requests to `url`'s host with the TLS trust, proxy and
/// timeouts of `options`. The forge API clients build theirs here too, so
/// `--ca-file`, `--proxy` and `--timeout` mean the same for API calls.
pub(crate) fn agent_builder(
    url: &Url,
    options: &NetworkOptions,
) -> Result<ureq::AgentBuilder, TransportError> {
    let tls = tls_config(options)?;
    let mut builder = ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .timeout_connect(options.timeout)
        .timeout_read(options.timeout)
        .timeout_write(options.timeout)
        // Redirects are followed by `super::origin::follow`, which keeps
        // credentials to their origin.
        .redirects(0)
        .user_agent(&format!("git/2.0 ({})", crate::AGENT));
    if let Some(proxy) = proxy_for(url, options.proxy.as_deref()) {
        let proxy = ureq::Proxy::new(&proxy).map_err(|e| TransportError::Proxy {
            detail: format!("invalid proxy URL: {e}"),
        })?;
        builder = builder.proxy(proxy);
    }
    Ok(builder)
}

/// Warns, once per origin, that credentials are about to travel in clear
/// text: over `http://` to a host that is not this machine.
fn warn_if_cleartext(url: &Url) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    if url.scheme() != "http" || is_loopback(url) {
        return;
    }
    let origin = super::origin_of(url);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.contains(&origin) {
        output::warn(format_args!(
            "credentials for {origin} are sent over plain http://, readable by anyone on the network path; use https://"
        ));
        warned.push(origin);
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The first line or so of an error response, for the message.
pub(crate) fn response_excerpt(response: ureq::Response) -> String {
    let mut raw = Vec::new();
    let _ = response.into_reader().take(512).read_to_end(&mut raw);
    // Masked before the text is re-wrapped or cut, which would hide a
    // secret from the redactor (the cut at 512 bytes is covered by the
    // redactor's masking of a secret's start).
    let text = crate::auth::redact(&String::from_utf8_lossy(&raw)).into_owned();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.starts_with('<') {
        // An HTML error page says nothing a terminal can show.
        return String::new();
    }
    text.chars().take(200).collect()
}

pub(crate) fn classify_transport(
    url: &str,
    t: ureq::Transport,
    timeout: Duration,
) -> TransportError {
    let host = Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let detail = t
        .message()
        .map(str::to_owned)
        .or_else(|| std::error::Error::source(&t).map(|s| s.to_string()))
        .unwrap_or_else(|| t.kind().to_string());
    if let Some(kind) = io_kind(&t) {
        if matches!(kind, io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
            return TransportError::Timeout { timeout };
        }
    }
    if let Some(detail) = tls_detail(&t) {
        return TransportError::Tls { host, detail };
    }
    match t.kind() {
        ureq::ErrorKind::Dns => TransportError::UnknownHost { host },
        ureq::ErrorKind::ConnectionFailed => TransportError::Connect { host, detail },
        ureq::ErrorKind::ProxyConnect
        | ureq::ErrorKind::ProxyUnauthorized
        | ureq::ErrorKind::InvalidProxyUrl => TransportError::Proxy { detail },
        _ => TransportError::Io(io::Error::new(
            io_kind(&t).unwrap_or(io::ErrorKind::Other),
            format!("{}: {detail}", t.kind()),
        )),
    }
}

fn sources(t: &ureq::Transport) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(t), |e| e.source())
}

fn io_kind(t: &ureq::Transport) -> Option<io::ErrorKind> {
    sources(t).find_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
}

fn tls_detail(t: &ureq::Transport) -> Option<String> {
    sources(t).find_map(|e| {
        if let Some(err) = e.downcast_ref::<rustls::Error>() {
            return Some(err.to_string());
        }
        e.downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|err| err.to_string())
    })
}

fn tls_config(options: &NetworkOptions) -> Result<ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls {
            host: String::new(),
            detail: e.to_string(),
        })?;
    if options.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken certificate in the system store must not stop us; the
        // ones that parse still work.
        let _ = roots.add(cert);
    }
    if let Some(path) = &options.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                TransportError::Local(format!(
                    "cannot read the CA certificates in {}: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(TransportError::Local(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                TransportError::Local(format!("bad certificate in {}: {e}", path.display()))
            })?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `--*-insecure`: accepts any certificate but still checks that the
/// handshake signatures are valid for the certificate presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The proxy for `url`: `--proxy` if given, else the environment the way
/// curl reads it (`https_proxy`/`HTTPS_PROXY`, `http_proxy`, `ALL_PROXY`,
/// `NO_PROXY`). Loopback addresses never go through a proxy.
fn proxy_for(url: &Url, explicit: Option<&str>) -> Option<String> {
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    if is_loopback(url) {
        return None;
    }
    if let Some(proxy) = explicit {
        return Some(proxy.to_owned());
    }
    let env = |name: &str| {
        std::env::var(name.to_lowercase())
            .or_else(|_| std::env::var(name))
            .ok()
            .filter(|v| !v.is_empty())
    };
    if let Some(no_proxy) = env("NO_PROXY") {
        if no_proxy_matches(&no_proxy, host) {
            return None;
        }
    }
    let scheme_var = if url.scheme() == "https" {
        "HTTPS_PROXY"
    } else {
        "HTTP_PROXY"
    };
    let proxy = env(scheme_var).or_else(|| env("ALL_PROXY"))?;
    if let Ok(parsed) = Url::parse(&proxy) {
        if let Some(password) = parsed.password() {
            crate::auth::register_secret(password);
        }
    }
    Some(proxy)
}

fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches('.');
        entry == "*"
            || (!entry.is_empty()
                && (host.eq_ignore_ascii_case(entry)
                    || host
                        .to_ascii_lowercase()
                        .ends_with(&format!(".{}", entry.to_ascii_lowercase()))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matching() {
        assert!(no_proxy_matches("example.com", "example.com"));
        assert!(no_proxy_matches("x.org, .example.com", "git.example.com"));
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("example.com", "notexample.com"));
        assert!(!no_proxy_matches("", "example.com"));
    }

    /// A minimal HTTP/1.1 server on 127.0.0.1 that counts the connections
    /// it accepts and records every request, which git's own server in the
    /// integration harness does not: the proof that connections are reused
    /// is a count of TCP accepts. It answers by the repository in the path:
    /// `big` 413, `len` 411, `slow` 408, `busy` 504, `cut` closes the
    /// connection as soon as the request head is read, `large` answers with
    /// 256 KiB, `stale` closes a connection when a second request comes on
    /// it, unanswered (as a server does that ends an idle connection as the
    /// next request arrives); anything else is a smart-HTTP answer with a
    /// short body.
    mod mini {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        use std::thread;

        #[derive(Clone, Debug)]
        pub(super) struct Seen {
            pub(super) method: String,
            pub(super) path: String,
            pub(super) content_length: Option<u64>,
            pub(super) chunked: bool,
            pub(super) body: u64,
            /// Which accepted connection carried it, from 1.
            pub(super) connection: usize,
        }

        pub(super) struct Server {
            pub(super) port: u16,
            accepts: Arc<AtomicUsize>,
            log: Arc<Mutex<Vec<Seen>>>,
        }

        impl Server {
            pub(super) fn start() -> Server {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = listener.local_addr().unwrap().port();
                let accepts = Arc::new(AtomicUsize::new(0));
                let log = Arc::new(Mutex::new(Vec::new()));
                let (a, l) = (accepts.clone(), log.clone());
                thread::spawn(move || {
                    for stream in listener.incoming() {
                        let Ok(stream) = stream else { return };
                        let connection = a.fetch_add(1, Ordering::SeqCst) + 1;
                        let l = l.clone();
                        thread::spawn(move || serve(stream, connection, &l));
                    }
                });
                Server { port, accepts, log }
            }

            pub(super) fn url(&self, repo: &str) -> url::Url {
                url::Url::parse(&format!("http://127.0.0.1:{}/{repo}.git", self.port)).unwrap()
            }

            pub(super) fn accepts(&self) -> usize {
                self.accepts.load(Ordering::SeqCst)
            }

            pub(super) fn seen(&self) -> Vec<Seen> {
                self.log.lock().unwrap().clone()
            }
        }

        fn serve(stream: TcpStream, connection: usize, log: &Mutex<Vec<Seen>>) {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut served = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let target = parts.next().unwrap_or("").to_owned();
                let path = target.split('?').next().unwrap_or("").to_owned();
                let (mut content_length, mut chunked) = (None, false);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    let value = value.trim();
                    if name.eq_ignore_ascii_case("content-length") {
                        content_length = value.parse().ok();
                    }
                    if name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = value.eq_ignore_ascii_case("chunked");
                    }
                }
                if path.starts_with("/cut.git") {
                    // Gone without a word, with the body unread: the kernel
                    // answers what follows with a reset.
                    return;
                }
                let body = if chunked {
                    read_chunked(&mut reader)
                } else {
                    let n = content_length.unwrap_or(0);
                    let got = std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink());
                    match got {
                        // A body cut short is no request.
                        Ok(got) if got == n => got,
                        _ => return,
                    }
                };
                if path.starts_with("/stale.git") && served > 0 {
                    // Closed with the request read and unanswered.
                    return;
                }
                log.lock().unwrap().push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    content_length,
                    chunked,
                    body,
                    connection,
                });
                let repo = path.trim_start_matches('/').split('/').next().unwrap_or("");
                let large = "0".repeat(256 << 10);
                let (status, content_type, text) = match repo {
                    "big.git" => (413, "text/plain", "Request Entity Too Large"),
                    "len.git" => (411, "text/plain", "Length Required"),
                    "slow.git" => (408, "text/plain", "Request Timeout"),
                    "busy.git" => (504, "text/plain", "Gateway Timeout"),
                    "large.git" => (
                        200,
                        "application/x-git-upload-pack-advertisement",
                        large.as_str(),
                    ),
                    _ if method == "GET" => (
                        200,
                        "application/x-git-upload-pack-advertisement",
                        "001e# service=git-upload-pack\n0000",
                    ),
                    _ => (200, "application/x-git-upload-pack-result", "0008NAK\n"),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    text.len()
                );
                if writer.write_all(head.as_bytes()).is_err()
                    || writer.write_all(text.as_bytes()).is_err()
                {
                    return;
                }
                served += 1;
            }
        }

        fn read_chunked(reader: &mut impl BufRead) -> u64 {
            let mut total = 0;
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).unwrap_or(0) == 0 {
                    return total;
                }
                let n = u64::from_str_radix(size.trim(), 16).unwrap_or(0);
                std::io::copy(&mut reader.take(n), &mut std::io::sink()).unwrap();
                let mut crlf = String::new();
                reader.read_line(&mut crlf).unwrap();
                total += n;
                if n == 0 {
                    return total;
                }
            }
        }
    }

    /// Network settings of their own for each test, so that no test shares
    /// an agent with another by chance.
    fn options(timeout_secs: u64) -> NetworkOptions {
        NetworkOptions {
            timeout: Duration::from_secs(timeout_secs),
            ..NetworkOptions::default()
        }
    }

    fn read_to_end(response: Response) -> Vec<u8> {
        let mut out = Vec::new();
        let mut response = response;
        response.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn transports_with_the_same_settings_share_connections() {
        let server = mini::Server::start();
        let settings = options(41);
        // Two repositories on one host, as one mirror-all worker meets them.
        for repo in ["a", "b"] {
            let transport = HttpTransport::new(server.url(repo), None, &settings).unwrap();
            read_to_end(transport.discover(Service::UploadPack, false).unwrap());
            let body = Body::Bytes(b"0000".to_vec());
            read_to_end(transport.rpc(Service::UploadPack, false, body).unwrap());
            let mut stream = io::repeat(b'x').take(200_000);
            let body = Body::Stream(&mut stream);
            read_to_end(transport.rpc(Service::UploadPack, false, body).unwrap());
        }
        assert_eq!(server.seen().len(), 6);
        assert!(
            server.seen().iter().all(|s| s.connection == 1),
            "{:?}",
            server.seen()
        );
        assert_eq!(server.accepts(), 1);

        // The check can fail: other settings are another agent, so another
        // connection.
        let other = HttpTransport::new(server.url("c"), None, &options(42)).unwrap();
        read_to_end(other.discover(Service::UploadPack, false).unwrap());
        assert_eq!(server.accepts(), 2);
    }

    #[test]
    fn a_response_left_unread_costs_its_connection() {
        // Why the engine drains every response it is done with: a
        // connection returns to the pool only at the end of its response
        // (ureq returns one at once only when the whole body came with the
        // headers, so this one is larger than its buffer).
        let server = mini::Server::start();
        let settings = options(43);
        let transport = HttpTransport::new(server.url("large"), None, &settings).unwrap();
        let unread = transport.discover(Service::UploadPack, false).unwrap();
        drop(unread);
        read_to_end(transport.discover(Service::UploadPack, false).unwrap());
        assert_eq!(server.accepts(), 2);
    }

    #[test]
    fn a_sized_body_is_sent_with_its_length_and_a_stream_in_chunks() {
        let server = mini::Server::start();
        let transport = HttpTransport::new(server.url("a"), None, &options(44)).unwrap();
        let data = vec![7u8; 300_000];
        let body = Body::Sized(&mut &data[..], data.len() as u64);
        read_to_end(transport.rpc(Service::UploadPack, false, body).unwrap());
        let mut stream = &data[..];
        let body = Body::Stream(&mut stream);
        read_to_end(transport.rpc(Service::UploadPack, false, body).unwrap());
        let seen = server.seen();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/a.git/git-upload-pack");
        assert_eq!(
            (seen[0].content_length, seen[0].chunked),
            (Some(300_000), false)
        );
        assert_eq!(seen[0].body, 300_000);
        assert_eq!((seen[1].content_length, seen[1].chunked), (None, true));
        assert_eq!(seen[1].body, 300_000);
    }

    #[test]
    fn a_sized_body_is_cut_to_its_length_and_fails_when_short() {
        let server = mini::Server::start();
        let transport = HttpTransport::new(server.url("a"), None, &options(45)).unwrap();
        let data = vec![1u8; 1000];
        let body = Body::Sized(&mut &data[..], 600);
        read_to_end(transport.rpc(Service::UploadPack, false, body).unwrap());
        assert_eq!(server.seen()[0].body, 600);

        let body = Body::Sized(&mut &data[..], 5000);
        let err = transport
            .rpc(Service::UploadPack, false, body)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("short of its announced length"),
            "{err}"
        );
        assert!(!err.refused_as_too_large(), "{err:?}");
        assert_eq!(
            server.seen().len(),
            1,
            "the short request never reached the server whole"
        );
    }

    #[test]
    fn refusals_for_size_and_length_are_told_apart() {
        let server = mini::Server::start();
        let settings = options(46);
        let rpc = |repo: &str| {
            let transport = HttpTransport::new(server.url(repo), None, &settings).unwrap();
            transport
                .rpc(Service::ReceivePack, false, Body::Bytes(b"0000".to_vec()))
                .err()
                .unwrap()
        };
        let big = rpc("big");
        assert!(
            matches!(big, TransportError::TooLarge { status: 413, .. }),
            "{big:?}"
        );
        assert!(big.refused_as_too_large() && !big.is_transient());
        assert!(big.to_string().contains("too large (HTTP 413)"), "{big}");
        assert!(big.hint().unwrap().contains("--dest-max-push-bytes"));

        let len = rpc("len");
        assert!(
            matches!(len, TransportError::LengthRequired { .. }),
            "{len:?}"
        );
        assert!(!len.refused_as_too_large() && !len.is_transient());

        let slow = rpc("slow");
        assert!(
            matches!(slow, TransportError::RequestTimeout { .. }),
            "{slow:?}"
        );
        assert!(slow.refused_as_too_large() && slow.is_transient());

        // A 504 says "busy" whatever the size; only the caller, knowing how
        // much it sent, may read it as a refusal of a big push.
        let busy = rpc("busy");
        assert!(
            matches!(busy, TransportError::Busy { status: 504, .. }),
            "{busy:?}"
        );
        assert!(
            busy.to_string().contains("unavailable or overloaded"),
            "{busy}"
        );
        assert!(busy.refused_as_too_large() && busy.is_transient());

        let not_found = TransportError::NotFound;
        assert!(!not_found.refused_as_too_large());
        let other_busy = TransportError::Busy {
            status: 503,
            retry_after: None,
            detail: String::new(),
        };
        assert!(!other_busy.refused_as_too_large());
    }

    #[test]
    fn a_connection_cut_during_the_upload_is_told_from_a_source_failure() {
        let server = mini::Server::start();
        let transport = HttpTransport::new(server.url("cut"), None, &options(47)).unwrap();
        let mut stream = io::repeat(b'x').take(64 << 20);
        let body = Body::Stream(&mut stream);
        let err = transport
            .rpc(Service::ReceivePack, false, body)
            .err()
            .unwrap();
        assert!(matches!(err, TransportError::RequestCut(_)), "{err:?}");
        assert!(err.refused_as_too_large() && err.is_transient());
        assert!(err.to_string().contains("bytes of the body sent"), "{err}");

        // The body's own reader failing is the source's failure, not a cut.
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "source cut"))
            }
        }
        let transport = HttpTransport::new(server.url("a"), None, &options(47)).unwrap();
        let body = Body::Stream(&mut Failing);
        let err = transport
            .rpc(Service::ReceivePack, false, body)
            .err()
            .unwrap();
        assert!(!matches!(err, TransportError::RequestCut(_)), "{err:?}");
        assert!(!err.refused_as_too_large(), "{err:?}");
    }

    #[test]
    fn a_connection_the_server_closed_costs_a_read_only_request_nothing() {
        let server = mini::Server::start();
        let transport = HttpTransport::new(server.url("stale"), None, &options(48)).unwrap();
        read_to_end(transport.discover(Service::UploadPack, false).unwrap());
        // The pooled connection is dead: an upload-pack request goes again
        // on a new one.
        let body = Body::Bytes(b"0000".to_vec());
        read_to_end(transport.rpc(Service::UploadPack, false, body).unwrap());
        assert_eq!(server.seen().len(), 2);
        assert_eq!(server.accepts(), 2);
    }

    #[test]
    fn loopback_is_never_proxied() {
        let url = Url::parse("http://127.0.0.1:8080/r.git").unwrap();
        assert_eq!(proxy_for(&url, Some("http://proxy:3128")), None);
        let url = Url::parse("https://git.example.com/r.git").unwrap();
        assert_eq!(
            proxy_for(&url, Some("http://proxy:3128")).as_deref(),
            Some("http://proxy:3128")
        );
    }
}

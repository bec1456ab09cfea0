//! Git's smart HTTP protocol (stateless RPC) over a blocking HTTP client.
//!
//! Requests are `GET <repo>/info/refs?service=<service>` for discovery and
//! `POST <repo>/<service>` for everything else (see `gitprotocol-http(5)`).
//! Credentials travel only in the `Authorization` header, sent with every
//! request, so the URL we use and print never contains them. Request bodies
//! are streamed with chunked transfer encoding and responses are read as
//! they arrive: a pack of any size passes through a few fixed buffers.
//!
//! TLS is rustls with the system trust store (which honours `SSL_CERT_FILE`
//! and `SSL_CERT_DIR`), plus `--ca-file`. The read timeout of the socket is
//! the idle timeout: a transfer may take an hour as long as bytes keep
//! arriving.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
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
    authorization: Option<String>,
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
            agent: agent_builder(&url, options)?.build(),
            proxy: proxy_for(&url, options.proxy.as_deref()),
            display: url.to_string(),
            base: Mutex::new(url),
            authorization: credentials.map(Credentials::authorization),
            redirects: options.redirects.clone(),
            timeout: options.timeout,
        })
    }

    fn endpoint(&self, tail: &str) -> String {
        let base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}/{tail}", base.as_str().trim_end_matches('/'))
    }

    fn request(&self, method: &str, url: &str, v2: bool) -> ureq::Request {
        let mut req = self.agent.request(method, url);
        if let Some(auth) = &self.authorization {
            req = req.set("Authorization", auth);
        }
        if v2 {
            req = req.set("Git-Protocol", "version=2");
        }
        req
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
                    401 => TransportError::Unauthorized {
                        had_credentials: self.authorization.is_some(),
                    },
                    403 => TransportError::Forbidden { detail },
                    404 => TransportError::NotFound,
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
        let followed = follow(
            &start,
            self.authorization.is_some(),
            &self.redirects,
            |hop| {
                self.request("GET", hop.as_str(), v2)
                    .call()
                    .map_err(Box::new)
            },
        )
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
        Ok(Box::new(response.into_reader()))
    }

    fn rpc(&self, service: Service, v2: bool, body: Body<'_>) -> Result<Response, TransportError> {
        let url = self.endpoint(service.name());
        output::debug(format_args!("POST {url}"));
        let request = self
            .request("POST", &url, v2)
            .set(
                "Content-Type",
                &format!("application/x-{}-request", service.name()),
            )
            .set(
                "Accept",
                &format!("application/x-{}-result", service.name()),
            );
        let result = match body {
            Body::Bytes(bytes) => request.send_bytes(&bytes),
            Body::Stream(reader) => request.send(reader),
        };
        let response = result.map_err(|e| self.classify(&url, e))?;
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

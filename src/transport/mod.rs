//! Carrying protocol bytes to a git server and back.
//!
//! Every way of reaching a repository is reduced to the two operations of
//! git's stateless RPC (the model of smart HTTP): *discover* (`GET
//! info/refs?service=...`) and *rpc* (`POST /<service>` with a request body,
//! answered by a response body). Smart HTTP is the native case; a local
//! source is reached by running `git upload-pack --stateless-rpc`, which
//! speaks exactly the same bytes over pipes (a local destination is a
//! backup, written by [`crate::store`]); an SSH remote through the system's
//! `ssh`, mapped onto the same two operations as git's stateless mode
//! does. The mirror engine therefore has one code path for every kind of
//! source.
//!
//! Nothing here parses git protocol beyond what a transport must (the HTTP
//! content type of a discovery answer); the [`crate::protocol`] layer does.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

mod http;
mod limits;
mod local;
mod location;
mod origin;
pub(crate) mod spool;
mod ssh;

pub(crate) use http::HttpTransport;
pub(crate) use http::{agent_builder, classify_transport, response_excerpt, shared_agent};
pub(crate) use limits::Meter;
pub(crate) use limits::{Deadline, Exceeded, Limits};
pub(crate) use local::LocalTransport;
pub use location::Location;
pub(crate) use origin::RedirectPolicy;
pub(crate) use origin::{
    check as check_origin, check_host, follow, origin_of, FollowError, Followed,
};
pub use ssh::remove_temporary_files;
pub(crate) use ssh::{SshError, SshOptions, SshTransport};

/// The two git services a relay talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// The source side: `git-upload-pack` lists refs and sends packs.
    UploadPack,
    /// The destination side: `git-receive-pack` lists refs and takes packs.
    ReceivePack,
}

impl Service {
    /// The service name as it appears in URLs and content types.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
}

/// A request body: small requests are bytes; a push is a stream of commands
/// followed by a pack that is still arriving from the source.
pub(crate) enum Body<'a> {
    /// A complete request held in memory (ref listings, fetch negotiation).
    Bytes(Vec<u8>),
    /// A request streamed from a reader (the push), sent with chunked
    /// transfer encoding: its length is not known when it starts.
    Stream(&'a mut (dyn Read + Send)),
    /// A request of a known length, sent with `Content-Length`: for servers
    /// and proxies that refuse chunked bodies (HTTP 411). The reader must
    /// give exactly that many bytes (a [`spool::Spool`] of the push does);
    /// fewer fail the request rather than leave the server waiting, and
    /// any more are not sent.
    Sized(&'a mut (dyn Read + Send), u64),
}

/// A response body being received.
pub(crate) type Response = Box<dyn Read + Send>;

/// A way to reach one repository.
pub(crate) trait Transport: Send + Sync {
    /// Asks for the ref advertisement of `service`. With `v2`, asks for
    /// protocol version 2 (servers that do not know it answer with v0).
    fn discover(&self, service: Service, v2: bool) -> Result<Response, TransportError>;

    /// Sends one stateless request to `service` and returns the response.
    fn rpc(&self, service: Service, v2: bool, body: Body<'_>) -> Result<Response, TransportError>;

    /// Where the repository is, without credentials: safe to print.
    fn display(&self) -> &str;

    /// Whether the other end is a process on this machine rather than a
    /// server. The low-speed limit guards against servers; a local
    /// `git upload-pack` is ours and may think for as long as it needs
    /// (counting a huge repository), so it is left out of that check.
    fn is_local(&self) -> bool {
        false
    }
}

/// Why talking to a server failed, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// Getting a token to sign in with failed (an identity platform, a
    /// GitHub App, a credential helper): before any request went out.
    #[error(transparent)]
    SignIn(Box<crate::auth::AuthError>),
    /// HTTP 401.
    #[error("authentication failed (HTTP 401){}", match (.had_credentials, .identity) {
        (true, Some(who)) => format!(": the server did not accept the credentials of {who}"),
        (true, None) => ": the server did not accept the credentials".to_owned(),
        (false, _) => ": the server wants credentials and none were given".to_owned(),
    })]
    Unauthorized {
        /// Whether we sent any.
        had_credentials: bool,
        /// Who signed in, when the credentials came from a source
        /// (`--source-auth` / `--dest-auth` other than a token).
        identity: Option<String>,
    },
    /// HTTP 403.
    #[error("permission denied (HTTP 403){}", detail_suffix(.detail))]
    Forbidden {
        /// The server's explanation, if it gave one.
        detail: String,
    },
    /// HTTP 404.
    #[error("repository not found (HTTP 404)")]
    NotFound,
    /// Any other unsuccessful HTTP status.
    #[error("the server answered HTTP {status}{}", detail_suffix(.detail))]
    Status {
        /// The status code.
        status: u16,
        /// The start of the response body.
        detail: String,
    },
    /// A status that says "try again later": 429, 500, 502, 503, 504.
    #[error("the server is unavailable or overloaded (HTTP {status}){}", detail_suffix(.detail))]
    Busy {
        /// The status code.
        status: u16,
        /// The server's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
        /// The start of the response body.
        detail: String,
    },
    /// HTTP 413: the server, or a proxy in front of it, refused the request
    /// body as too large.
    #[error("the server refused the request as too large (HTTP {status}){}", detail_suffix(.detail))]
    TooLarge {
        /// The status code.
        status: u16,
        /// The start of the response body.
        detail: String,
    },
    /// HTTP 411: the server, or a proxy in front of it, wants a
    /// `Content-Length` and refuses a chunked request body.
    #[error("the server refused a request body without a length (HTTP 411){}", detail_suffix(.detail))]
    LengthRequired {
        /// The start of the response body.
        detail: String,
    },
    /// HTTP 408: the server stopped waiting for the request. A big push
    /// meets it when the upload outlasts the server's deadline for it.
    #[error("the server stopped waiting for the request (HTTP 408){}", detail_suffix(.detail))]
    RequestTimeout {
        /// The start of the response body.
        detail: String,
    },
    /// The connection was reset or closed while the request body was being
    /// sent: a server or proxy that refuses a body as too large often
    /// closes the connection instead of answering 413 after it.
    #[error("the connection was cut while the request was being sent ({0})")]
    RequestCut(io::Error),
    /// DNS could not resolve the host.
    #[error("could not resolve host {host}")]
    UnknownHost {
        /// The host name.
        host: String,
    },
    /// TCP connection failed.
    #[error("could not connect to {host}: {detail}")]
    Connect {
        /// The host name.
        host: String,
        /// What the operating system said.
        detail: String,
    },
    /// The TLS handshake failed, usually an untrusted certificate.
    #[error("TLS failure talking to {host}: {detail}")]
    Tls {
        /// The host name.
        host: String,
        /// What rustls said.
        detail: String,
    },
    /// The proxy refused or failed.
    #[error("proxy failure: {detail}")]
    Proxy {
        /// What went wrong.
        detail: String,
    },
    /// No data for longer than the timeout.
    #[error("timed out: no data from the server for {}s", .timeout.as_secs())]
    Timeout {
        /// The timeout in force.
        timeout: Duration,
    },
    /// A redirect that would take the credentials to another origin, or
    /// from https to http.
    #[error("{}", redirect_message(.from, .to, *.downgrade))]
    Redirect {
        /// The origin the request was made to.
        from: String,
        /// The origin the server sent us to.
        to: String,
        /// Whether it was from https to http, which is never followed.
        downgrade: bool,
    },
    /// The transfer was too slow, or the run's deadline passed.
    #[error(transparent)]
    Limit(#[from] Exceeded),
    /// The server does not speak smart HTTP.
    #[error("{0}")]
    NotSmartHttp(String),
    /// A local repository is missing or unusable.
    #[error("{0}")]
    Local(String),
    /// An exchange through `ssh` failed.
    #[error(transparent)]
    Ssh(Box<SshError>),
    /// Anything else from the network.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// I/O failures that mean the connection was lost rather than refused for
/// good.
pub(crate) fn is_transient_io(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    ) || is_truncated_chunked_body(e)
}

/// A chunked response body that ends without its last chunk: the
/// connection was closed mid-response. The HTTP client reports it only as a
/// chunk decoding error, which a real server never causes otherwise. ureq 2
/// gives no typed way to tell: its decoder's error type is private and the
/// kind, `InvalidInput`, is shared with other failures; so the message is
/// read, here and nowhere else.
pub(crate) fn is_truncated_chunked_body(e: &io::Error) -> bool {
    e.to_string().contains("decoding chunks")
}

fn redirect_message(from: &str, to: &str, downgrade: bool) -> String {
    if downgrade {
        format!("the server at {from} redirected to {to}: git-relay never follows a redirect from https to http")
    } else {
        format!("the server at {from} redirected to another origin, {to}: the credentials were given for {from} and are not sent elsewhere")
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl TransportError {
    /// Whether trying again later may succeed: the server was busy, or the
    /// connection was refused or cut. A stall (timeout) is not retried, so
    /// that a stuck server ends the run within the timeout.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            TransportError::Busy { .. }
            | TransportError::Connect { .. }
            | TransportError::RequestTimeout { .. }
            | TransportError::RequestCut(_) => true,
            TransportError::Io(e) => is_transient_io(e),
            TransportError::Ssh(e) => e.is_transient(),
            _ => false,
        }
    }

    /// Whether the server may have refused the request for its size: a 413;
    /// a 408 or 504, which a host also answers when a big upload outlasts
    /// its deadline; or a connection cut while the body was being sent. Only
    /// a 413 says so outright: the caller weighs the others against how much
    /// it had sent (a 504 after a few bytes is a busy server).
    pub(crate) fn refused_as_too_large(&self) -> bool {
        match self {
            TransportError::TooLarge { .. }
            | TransportError::RequestTimeout { .. }
            | TransportError::RequestCut(_) => true,
            TransportError::Busy { status, .. } => *status == 504,
            _ => false,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What the user can do about it, when there is something to say.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        Some(match self {
            TransportError::SignIn(e) => return e.hint,
            TransportError::Ssh(e) => return e.hint(),
            TransportError::Unauthorized {
                had_credentials: true,
                identity: Some(_),
            } => "check that the identity named may use this repository (a credential helper has been told to forget the password it gave: the next run asks it, or you, again)",
            TransportError::Unauthorized {
                had_credentials: true,
                identity: None,
            } => "the token is wrong, expired or lacks access; pass a valid one with --source-token / --dest-token (or GIT_RELAY_SOURCE_TOKEN / GIT_RELAY_DEST_TOKEN)",
            TransportError::Unauthorized {
                had_credentials: false,
                ..
            } => "give a token with --source-token / --dest-token (or GIT_RELAY_SOURCE_TOKEN / GIT_RELAY_DEST_TOKEN)",
            TransportError::Forbidden { .. } => "the credentials are valid but may not do this: the source needs read access, the destination needs push (contribute) access",
            TransportError::NotFound => "check the URL; a private repository also answers 404 when the token cannot see it",
            TransportError::UnknownHost { .. } => "check the host name in the URL and the machine's DNS",
            TransportError::Connect { .. } => "check the host, port and network path; use --proxy or HTTPS_PROXY if a proxy is required",
            TransportError::Busy { .. } => "the server is overloaded or down for maintenance; try again later or raise --retries",
            TransportError::TooLarge { .. } => "the destination, or a proxy in front of it, takes smaller pushes: lower --dest-max-push-bytes (task input destMaxPushBytes) below its limit, or raise the limit (nginx: client_max_body_size)",
            TransportError::LengthRequired { .. } => "a proxy in front of the server refuses chunked request bodies; pushes are resent with a Content-Length, so this means even that failed: check the proxy's settings",
            TransportError::RequestTimeout { .. } => "the server's deadline for receiving a request passed; a push this large may need a lower --dest-max-push-bytes (task input destMaxPushBytes)",
            TransportError::RequestCut(_) => "the server or a proxy closed the connection during the upload; if this happens on large pushes, lower --dest-max-push-bytes (task input destMaxPushBytes)",
            TransportError::Tls { .. } => "if the server uses a private certificate authority, pass its certificate with --ca-file (or SSL_CERT_FILE); --source-insecure / --dest-insecure skip verification",
            TransportError::Proxy { .. } => "check --proxy / HTTPS_PROXY / HTTP_PROXY and NO_PROXY",
            TransportError::Timeout { .. } => "the server stalled; raise --timeout if it is slow rather than stuck",
            TransportError::Redirect { downgrade: true, .. } => "use the repository's https:// URL on the server it really lives on",
            TransportError::Redirect { downgrade: false, .. } => "use the URL the server redirects to (the repository moved), or, if you trust that host with these credentials, allow it with --allow-redirect-host HOST (task input allowRedirectHosts)",
            TransportError::Limit(Exceeded::TooSlow { .. }) => "the server trickles data; if the network really is this slow, lower --low-speed-limit (0 turns the check off) or raise --timeout, the window it is measured over",
            TransportError::Limit(Exceeded::Deadline { .. }) => "raise --deadline if the run needs longer",
            _ => return None,
        })
    }
}

/// Network settings for one side.
#[derive(Clone, Debug, Default)]
pub(crate) struct NetworkOptions {
    /// Extra trusted certificates (PEM).
    pub(crate) ca_file: Option<PathBuf>,
    /// Skip certificate verification.
    pub(crate) insecure: bool,
    /// An explicit proxy URL, overriding the environment.
    pub(crate) proxy: Option<String>,
    /// Connect and idle-transfer timeout; also the window the low-speed
    /// limit is measured over.
    pub(crate) timeout: Duration,
    /// Hosts besides the side's own that its credentials may be redirected to.
    pub(crate) redirects: RedirectPolicy,
    /// Sizes and speeds the server must keep to.
    pub(crate) limits: Limits,
    /// Keys and host keys, for an SSH remote.
    pub(crate) ssh: SshOptions,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

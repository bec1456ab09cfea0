//! Git LFS objects, relayed from one LFS server to another.
//!
//! A repository that uses Git LFS holds small pointer blobs; the files they
//! stand for live on the repository's LFS server. Mirroring the git side
//! alone leaves the destination with pointers to nothing, so the engine
//! hands this module the pointers of the history it sends, and this module
//! makes the destination's LFS server hold their objects: it asks the
//! destination which it lacks (a batch `upload` request), asks the source
//! for those (a batch `download` request), and streams each one from the
//! source's download straight into the destination's upload, checked
//! against its pointer on the way. Nothing is kept in memory beyond a few
//! buffers per object in flight, and nothing touches the disk, except when
//! one side is a backup's `lfs/objects` directory.
//!
//! - `pointer`: the pointer format and the object id;
//! - `endpoint`: where a repository's LFS server is;
//! - `batch`: the batch API's JSON;
//! - `checked`: the size-and-hash check of an object in flight;
//! - `client`: one LFS server over HTTP, on the crate's HTTP stack
//!   (shared agent, credentials in headers, origin rules, limits);
//! - `store`: a bare repository's `lfs/objects` directory;
//! - `relay`: the run over both sides, several objects at once.
//!
//! It knows nothing of git's wire protocol or of the engine's plan: which
//! pointers to move is the engine's to say.

mod batch;
mod checked;
mod client;
mod endpoint;
mod pointer;
mod relay;
mod store;

#[doc(hidden)]
pub mod fuzz_targets;

#[cfg(test)]
mod fuzz_regressions;

use std::fmt;
use std::io;
use std::time::Duration;

pub(crate) use batch::{Action, Operation};
pub(crate) use checked::Mismatch;
pub(crate) use client::LfsClient;
pub(crate) use endpoint::{explicit as explicit_endpoint, lfs_url};
pub(crate) use pointer::{Pointer, Sha256};
pub(crate) use relay::{lacking, relay, LfsProgress, LfsReport, Need, DEFAULT_JOBS};
pub(crate) use store::LfsStore;

use crate::mirror::Side;
use crate::transport::TransportError;

/// What an LFS request was for, in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A batch request.
    Batch(Operation),
    /// The GET of an object.
    Download,
    /// The PUT of an object.
    Upload,
    /// The POST that confirms an upload.
    Verify,
    /// Reading or writing a local store.
    Store,
    /// Preparing the client (TLS trust, proxy).
    Setup,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Batch(op) => write!(f, "batch {op} request"),
            Request::Download => f.write_str("download"),
            Request::Upload => f.write_str("upload"),
            Request::Verify => f.write_str("verify request"),
            Request::Store => f.write_str("local store"),
            Request::Setup => f.write_str("setup"),
        }
    }
}

/// A failure talking to one side's LFS server (or store): which side,
/// which server, which request, which object if one, and what happened.
/// Nothing secret is in it: action URLs and headers never are, and what a
/// server says passes the redactor and has those removed.
#[derive(Debug, thiserror::Error)]
#[error("{side} LFS {where_}: {request}{}: {cause}", object_suffix(.object))]
pub(crate) struct LfsError {
    /// Which server.
    pub(crate) side: Side,
    /// The LFS endpoint or store path, printable.
    pub(crate) where_: String,
    /// What was being done.
    pub(crate) request: Request,
    /// The object concerned, for an object's request.
    pub(crate) object: Option<Sha256>,
    /// What happened.
    pub(crate) cause: LfsCause,
}

fn object_suffix(object: &Option<Sha256>) -> String {
    object
        .map(|oid| format!(" of object {oid}"))
        .unwrap_or_default()
}

/// What went wrong with an LFS request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LfsCause {
    /// HTTP 401.
    #[error("authentication failed (HTTP 401){}", if *.had_credentials { ": the server did not accept the credentials" } else { ": the server wants credentials and none were given" })]
    Unauthorized {
        /// Whether we sent any.
        had_credentials: bool,
    },
    /// HTTP 403: for an upload, usually read access without write access.
    #[error("permission denied (HTTP 403){}", suffix(.detail))]
    Forbidden {
        /// The server's explanation.
        detail: String,
    },
    /// HTTP 404: no LFS server there (for a batch request), or no object.
    #[error("not found (HTTP 404){}", suffix(.detail))]
    NotFound {
        /// The server's explanation.
        detail: String,
        /// Whether it came as an LFS error document (JSON with a
        /// message): an LFS server answered, rather than nothing being
        /// there.
        lfs_answer: bool,
    },
    /// HTTP 413: too many objects in one batch, or an object too large.
    #[error("refused as too large (HTTP 413){}", suffix(.detail))]
    TooLarge {
        /// The server's explanation.
        detail: String,
    },
    /// HTTP 422: the server refused the objects as invalid.
    #[error("refused as invalid (HTTP 422){}", suffix(.detail))]
    Invalid {
        /// The server's explanation.
        detail: String,
    },
    /// HTTP 429.
    #[error("rate limited (HTTP 429){}", suffix(.detail))]
    RateLimited {
        /// The server's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
        /// The server's explanation.
        detail: String,
    },
    /// HTTP 5xx.
    #[error("server error (HTTP {status}){}", suffix(.detail))]
    Server {
        /// The status.
        status: u16,
        /// The server's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
        /// The server's explanation.
        detail: String,
    },
    /// Any other unsuccessful status.
    #[error("HTTP {status}{}", suffix(.detail))]
    Status {
        /// The status.
        status: u16,
        /// The server's explanation.
        detail: String,
    },
    /// Reaching the server failed (DNS, connect, TLS, proxy, timeout,
    /// redirect rules, limits).
    #[error(transparent)]
    Transport(TransportError),
    /// The server answered something the API does not allow.
    #[error("invalid answer: {0}")]
    BadAnswer(String),
    /// An upload's body failed while it was being sent: the object being
    /// relayed failed its check, or its source failed. The relay blames
    /// the source for it.
    #[error("the object's stream failed: {0}")]
    Body(io::Error),
    /// A local store could not be read or written.
    #[error("{0}")]
    Io(io::Error),
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl LfsCause {
    /// Whether trying again later may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            LfsCause::RateLimited { .. } => true,
            LfsCause::Server { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            LfsCause::Transport(t) => t.is_transient(),
            LfsCause::Body(e) => {
                Mismatch::from_io(e).is_none() && crate::transport::is_transient_io(e)
            }
            _ => false,
        }
    }
}

impl LfsError {
    /// The error without its side and place, for a message that names
    /// them already: `batch (upload): authentication failed ...`.
    pub(crate) fn what(&self) -> String {
        format!(
            "{}{}: {}",
            self.request,
            object_suffix(&self.object),
            self.cause
        )
    }

    /// Whether trying again later may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        self.cause.is_transient()
    }

    /// How long the server asked us to wait, if it did.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match &self.cause {
            LfsCause::RateLimited { retry_after, .. } | LfsCause::Server { retry_after, .. } => {
                *retry_after
            }
            LfsCause::Transport(t) => t.retry_after(),
            _ => None,
        }
    }

    /// The object's content did not match its pointer.
    pub(crate) fn mismatch(&self) -> Option<Mismatch> {
        match &self.cause {
            LfsCause::Body(e) | LfsCause::Io(e) => Mismatch::from_io(e),
            _ => None,
        }
    }

    /// What the user can do about it, when there is something to say.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        Some(match (&self.cause, self.side) {
            (LfsCause::Unauthorized { .. }, Side::Source) => "the LFS server uses the source's credentials (--source-token); check they are valid for it, or name another server with --source-lfs-url",
            (LfsCause::Unauthorized { .. }, Side::Destination) => "the LFS server uses the destination's credentials (--dest-token); check they are valid for it, or name another server with --dest-lfs-url",
            (LfsCause::Forbidden { .. }, Side::Destination) => "uploading LFS objects needs write access to the destination repository",
            (LfsCause::Forbidden { .. }, Side::Source) => "downloading LFS objects needs read access to the source repository",
            (LfsCause::NotFound { .. }, _) if matches!(self.request, Request::Batch(_)) => "no LFS server answers at this URL: check that LFS is enabled for the repository, or name the server with --source-lfs-url / --dest-lfs-url",
            (LfsCause::TooLarge { .. }, _) => "the LFS server refuses objects this large (a host's per-file limit)",
            (LfsCause::RateLimited { .. }, _) => "the LFS server limits the request rate; lower --lfs-jobs or try again later",
            (LfsCause::Transport(t), _) => return t.hint(),
            _ => return None,
        })
    }
}

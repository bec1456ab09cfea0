//! What can fail in a run, and on which side.
//!
//! Every failure of a conversation or of a backup is tagged with its
//! [`Side`] and location ([`Blame`]), so the user learns which server
//! failed; [`SideError`] also tells the retry loop whether running again may
//! help, and the user what to do.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::protocol::ProtocolError;
use crate::transport::{Exceeded, TransportError};

/// Which server a message or failure concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The repository mirrored from.
    Source,
    /// The repository mirrored to.
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// A failure on one side, with the location and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{side} ({location}): {cause}")]
pub struct SideError {
    /// Which server.
    pub side: Side,
    /// Its printable location.
    pub(crate) location: String,
    /// What happened.
    pub(crate) cause: Cause,
}

/// What went wrong on a side.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Cause {
    /// Reaching the server failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server said something we could not accept.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server refused the request as a whole.
    #[error("{0}")]
    Refused(String),
    /// A local backup could not be opened, locked or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Moving Git LFS objects failed as a whole (a batch refused).
    #[error("LFS {}", .0.what())]
    Lfs(Box<crate::lfs::LfsError>),
}

impl SideError {
    /// Whether running again may succeed (see [`TransportError::is_transient`]).
    pub(crate) fn is_transient(&self) -> bool {
        match &self.cause {
            Cause::Transport(t) => t.is_transient(),
            Cause::Protocol(ProtocolError::UnexpectedEof) => true,
            Cause::Protocol(ProtocolError::Io(e)) => crate::transport::is_transient_io(e),
            Cause::Lfs(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The server answered that there is no such repository (HTTP 404):
    /// what a wiki that was never written looks like.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self.cause, Cause::Transport(TransportError::NotFound))
    }

    /// How long the server asked us to wait before trying again.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match &self.cause {
            Cause::Transport(t) => t.retry_after(),
            Cause::Lfs(e) => e.retry_after(),
            _ => None,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match &self.cause {
            Cause::Transport(t) => t.hint(),
            Cause::Protocol(ProtocolError::TooManyRefs { .. }) => {
                Some("if the repository really has this many refs, raise --max-advertised-refs")
            }
            Cause::Protocol(ProtocolError::MessageTooLarge { .. }) => {
                Some("if the repository really lists this much, raise --max-advertisement-bytes")
            }
            Cause::Protocol(ProtocolError::UnexpectedEof) => Some(
                "the connection was cut; run again (the destination is never left half-updated)",
            ),
            Cause::Lfs(e) => e.hint(),
            _ => None,
        }
    }
}

/// Tags errors with a side and turns read timeouts into a clear message.
#[derive(Clone)]
pub(crate) struct Blame {
    side: Side,
    location: String,
    timeout: Duration,
}

impl Blame {
    pub(crate) fn new(side: Side, location: &str, timeout: Duration) -> Blame {
        Blame {
            side,
            location: location.to_owned(),
            timeout,
        }
    }

    pub(crate) fn error(&self, cause: impl Into<Cause>) -> SideError {
        let cause = match cause.into() {
            Cause::Protocol(ProtocolError::Io(e)) => self.io_cause(e),
            Cause::Transport(TransportError::Io(e)) => self.io_cause(e),
            other => other,
        };
        SideError {
            side: self.side,
            location: self.location.clone(),
            cause,
        }
    }

    fn io_cause(&self, e: io::Error) -> Cause {
        if let Some(exceeded) = Exceeded::from_io(&e) {
            return Cause::Transport(TransportError::Limit(exceeded));
        }
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return Cause::Transport(TransportError::Timeout {
                timeout: self.timeout,
            });
        }
        match ProtocolError::from_io(e) {
            ProtocolError::Io(e)
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || crate::transport::is_truncated_chunked_body(&e) =>
            {
                Cause::Protocol(ProtocolError::UnexpectedEof)
            }
            other => Cause::Protocol(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Failure;

    /// The one JSON error document: `mirror` names the side, `mirror-all`
    /// and the task's sweeps have none to name.
    #[test]
    fn the_error_document_names_the_side_only_when_one_failed() {
        let err = Blame::new(Side::Source, "https://h/r", Duration::ZERO)
            .error(Cause::Refused("no".to_owned()));
        let doc: serde_json::Value = serde_json::from_str(&Failure::from(&err).to_json()).unwrap();
        let error = serde_json::json!({ "side": "source", "message": "source (https://h/r): no", "hint": null });
        assert_eq!(doc, serde_json::json!({ "error": error }));
        let doc: serde_json::Value =
            serde_json::from_str(&Failure::failed("API down", Some("later")).to_json()).unwrap();
        let error = serde_json::json!({ "message": "API down", "hint": "later" });
        assert_eq!(doc, serde_json::json!({ "error": error }));
    }
}

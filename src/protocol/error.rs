//! The one error type of the protocol layer.
//!
//! Every parser and encoder in [`crate::protocol`] reports failures as a
//! [`ProtocolError`], so callers can tell a server that broke the protocol
//! from a network failure from a server that refused the request, and can show
//! the user a sentence that says which. Server bytes quoted in a message are
//! escaped and truncated first: a hostile or broken server must not be able to
//! write terminal control sequences or megabytes of noise through our errors.

use std::borrow::Cow;
use std::io;

use crate::protocol::PacketLineRef;

/// How much of an offending server line is quoted in an error message.
const QUOTE_LIMIT: usize = 100;

/// Everything that can go wrong while reading or writing the git protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading from or writing to the underlying stream failed.
    #[error("reading or writing the git protocol stream failed: {0}")]
    Io(io::Error),
    /// A pkt-line did not start with four hexadecimal digits naming a legal
    /// length. Holds the four bytes, escaped.
    #[error(
        "the server sent an invalid pkt-line length \"{0}\"; expected four hexadecimal \
         digits, 0000 to 0002 or 0004 to fff0"
    )]
    InvalidLength(String),
    /// The stream ended inside a pkt-line or before a message was complete.
    #[error("the server closed the connection in the middle of a message")]
    UnexpectedEof,
    /// Text that should have been a 40-digit hexadecimal SHA-1 was not.
    /// Holds the text, escaped.
    #[error("\"{0}\" is not a valid object id; expected 40 hexadecimal digits")]
    InvalidObjectId(String),
    /// A well-formed pkt-line that makes no sense at this point of the
    /// conversation.
    #[error("the server sent an unexpected line while {context}: \"{line}\"")]
    Unexpected {
        /// What we were doing, phrased to follow "while".
        context: &'static str,
        /// The line, escaped and truncated.
        line: String,
    },
    /// The server refused or aborted: an `ERR` packet, or a message on
    /// side-band channel 3.
    #[error("the server reported an error: {0}")]
    Remote(String),
    /// The repository uses an object format other than SHA-1.
    #[error("this repository uses {0} object ids; git-relay supports sha1 repositories only")]
    UnsupportedObjectFormat(String),
    /// The server answered discovery like a dumb HTTP server or a web page.
    #[error(
        "the server does not speak git's smart HTTP protocol (it answered like a dumb \
         HTTP server or a web page); check the repository URL"
    )]
    NotSmartHttp,
    /// A message (not a pack) went on past the limit set with
    /// `PacketReader::set_limit`.
    #[error(
        "the server's answer went past the limit of {limit} bytes before it ended \
         (an endless or absurdly large message)"
    )]
    MessageTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A ref advertisement or `ls-refs` answer listed more refs than allowed.
    #[error("the server advertised more than {limit} refs, the limit")]
    TooManyRefs {
        /// The limit.
        limit: usize,
    },
    /// A side-band stream carried this much besides data (progress, empty
    /// packets) without a single data byte.
    #[error(
        "the server sent more than {limit} bytes of side-band progress without any data \
         (an endless progress stream)"
    )]
    ProgressWithoutData {
        /// The limit, in bytes.
        limit: usize,
    },
    /// We were asked to send more than one pkt-line can carry.
    #[error(
        "a pkt-line payload of {0} bytes exceeds the protocol maximum of {max} bytes",
        max = crate::protocol::pktline::MAX_DATA_LEN
    )]
    DataTooLong(usize),
}

impl ProtocolError {
    /// Recovers a `ProtocolError` that travelled through an [`io::Error`]
    /// (for instance out of [`SidebandReader`](crate::protocol::sideband::SidebandReader)'s
    /// `Read` implementation); any other I/O error becomes [`ProtocolError::Io`].
    ///
    /// ```
    /// use git_relay::protocol::ProtocolError;
    ///
    /// let io: std::io::Error = ProtocolError::Remote("no such ref".into()).into();
    /// assert!(matches!(ProtocolError::from_io(io), ProtocolError::Remote(m) if m == "no such ref"));
    /// ```
    pub fn from_io(err: io::Error) -> Self {
        let is_ours = err
            .get_ref()
            .is_some_and(|inner| inner.is::<ProtocolError>());
        if !is_ours {
            return ProtocolError::Io(err);
        }
        let kind = err.kind();
        match err
            .into_inner()
            .map(|inner| inner.downcast::<ProtocolError>())
        {
            Some(Ok(ours)) => *ours,
            Some(Err(other)) => ProtocolError::Io(io::Error::new(kind, other)),
            None => ProtocolError::Io(kind.into()),
        }
    }

    /// Builds [`ProtocolError::Unexpected`] from raw server bytes.
    pub(crate) fn unexpected(context: &'static str, line: &[u8]) -> Self {
        ProtocolError::Unexpected {
            context,
            line: escape(line),
        }
    }

    /// Builds [`ProtocolError::Unexpected`] from a pkt-line, naming special
    /// packets instead of showing their (empty) payload.
    pub(crate) fn unexpected_line(context: &'static str, line: PacketLineRef<'_>) -> Self {
        let shown: &[u8] = match line {
            PacketLineRef::Data(data) => data,
            PacketLineRef::Flush => b"0000 (flush packet)",
            PacketLineRef::Delimiter => b"0001 (delimiter packet)",
            PacketLineRef::ResponseEnd => b"0002 (response-end packet)",
        };
        Self::unexpected(context, shown)
    }
}

// Written by hand rather than with `#[from]` so that a ProtocolError which was
// wrapped into an io::Error further down a reader stack (a report-status read
// through a SidebandReader, say) comes back out as itself, not as `Io`.
impl From<io::Error> for ProtocolError {
    fn from(err: io::Error) -> Self {
        ProtocolError::from_io(err)
    }
}

impl From<ProtocolError> for io::Error {
    fn from(err: ProtocolError) -> Self {
        match err {
            ProtocolError::Io(inner) => inner,
            ProtocolError::UnexpectedEof => io::Error::new(io::ErrorKind::UnexpectedEof, err),
            ProtocolError::DataTooLong(_) => io::Error::new(io::ErrorKind::InvalidInput, err),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Renders server bytes for an error message: non-printable bytes escaped,
/// at most [`QUOTE_LIMIT`] characters. A server may quote our request back,
/// so the bytes are redacted first: escaped or cut, a secret would no
/// longer look like itself.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let redacted = crate::auth::redact(&text);
    let bytes = match &redacted {
        // Nothing was masked: show the bytes exactly as they came.
        Cow::Borrowed(_) => bytes,
        Cow::Owned(r) => r.as_bytes(),
    };
    let mut out = String::new();
    for (count, c) in bytes.escape_ascii().map(char::from).enumerate() {
        if count == QUOTE_LIMIT {
            out.push_str("...");
            break;
        }
        out.push(c);
    }
    out
}

/// Renders a server's own error text (ERR packet, side-band channel 3): it is
/// meant for people, so UTF-8 and line breaks are kept, but other control
/// characters are escaped and trailing whitespace is dropped.
pub(crate) fn remote_message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = crate::auth::redact(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end().chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_io_error() {
        let io: io::Error = ProtocolError::UnexpectedEof.into();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            ProtocolError::from_io(io),
            ProtocolError::UnexpectedEof
        ));

        let io: io::Error = ProtocolError::Remote("boom".into()).into();
        let back: ProtocolError = io.into();
        assert!(matches!(back, ProtocolError::Remote(m) if m == "boom"));
    }

    #[test]
    fn foreign_io_errors_stay_io() {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        match ProtocolError::from_io(io) {
            ProtocolError::Io(inner) => assert_eq!(inner.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("unexpected {other:?}"),
        }
        let io = io::Error::other("some other payload");
        assert!(matches!(ProtocolError::from_io(io), ProtocolError::Io(_)));
        let io: io::Error = io::ErrorKind::BrokenPipe.into();
        assert!(matches!(ProtocolError::from_io(io), ProtocolError::Io(_)));
    }

    #[test]
    fn io_variant_unwraps_instead_of_nesting() {
        let io: io::Error = ProtocolError::Io(io::ErrorKind::TimedOut.into()).into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn escape_quotes_control_bytes_and_truncates() {
        assert_eq!(escape(b"ok\x1b[31m\n"), "ok\\x1b[31m\\n");
        let long = escape(&[b'a'; 500]);
        assert_eq!(long.len(), QUOTE_LIMIT + 3);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn remote_message_keeps_text_but_not_escape_sequences() {
        assert_eq!(
            remote_message(b"fatal: no\x1b[2J\nsecond line\n\n"),
            "fatal: no\\u{1b}[2J\nsecond line"
        );
        assert_eq!(remote_message(b"caf\xc3\xa9 \xff"), "caf\u{e9} \u{fffd}");
    }

    #[test]
    fn messages_are_sentences() {
        let msg = ProtocolError::UnsupportedObjectFormat("sha256".into()).to_string();
        assert_eq!(
            msg,
            "this repository uses sha256 object ids; git-relay supports sha1 repositories only"
        );
        let msg = ProtocolError::DataTooLong(70000).to_string();
        assert!(msg.contains("65516"), "{msg}");
    }
}

//! pkt-line framing, the layer every other part of the protocol sits on.
//!
//! A pkt-line is four hexadecimal digits giving the total length (prefix
//! included) followed by that many bytes minus four. Lengths 0, 1 and 2 are
//! the flush, delimiter and response-end markers of `gitprotocol-v2(5)`; 3 is
//! never legal; 4 is a discouraged but legal empty line. See
//! `gitprotocol-common(5)`.
//!
//! [`PacketReader`] owns one buffer, grown to the largest packet seen, and
//! hands out lines that borrow it: parsing a whole ref advertisement or
//! streaming a gigabyte pack allocates nothing per packet. It never trusts a
//! length prefix beyond the protocol maximum, so a hostile server cannot make
//! it allocate more than `MAX_DATA_LEN` bytes or read past a packet.
//!
//! A message (a ref advertisement, acknowledgments, a push report) has an end
//! the server must reach; `PacketReader::set_limit` caps how many bytes
//! the reader consumes before it, which bounds every list a parser builds
//! from it, whatever the count of lines. A pack stream has no such bound and
//! is read without one.
//!
//! The writers are free functions over any [`Write`] because requests are
//! assembled into whatever the transport wants (a `Vec<u8>` body, a pipe).

use std::io::{self, Read, Write};

use crate::protocol::error::{escape, remote_message};
use crate::protocol::oid::{nibble, HEX_DIGITS};
use crate::protocol::ProtocolError;

/// Largest pkt-line a peer may send, length prefix included.
pub(crate) const MAX_PKT_LEN: usize = 65520;
/// Largest payload of one pkt-line.
pub(crate) const MAX_DATA_LEN: usize = MAX_PKT_LEN - LEN_PREFIX_LEN;
/// Ends a message (and, in v0, a list).
pub(crate) const FLUSH_PKT: &[u8; 4] = b"0000";
/// Separates the sections of a protocol v2 message.
pub(crate) const DELIM_PKT: &[u8; 4] = b"0001";
/// Ends a protocol v2 response on stateless connections.
pub(crate) const RESPONSE_END_PKT: &[u8; 4] = b"0002";

/// Size of the hexadecimal length prefix.
pub(crate) const LEN_PREFIX_LEN: usize = 4;
/// A data line starting with this is the peer aborting, anywhere in the
/// protocol (`gitprotocol-pack(5)`, "error-line").
const ERR_PREFIX: &[u8] = b"ERR ";

/// One pkt-line, borrowing its payload from the [`PacketReader`] that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketLineRef<'a> {
    /// A line with a payload, exactly as sent (a trailing `\n` included).
    Data(&'a [u8]),
    /// `0000`.
    Flush,
    /// `0001`.
    Delimiter,
    /// `0002`.
    ResponseEnd,
}

impl<'a> PacketLineRef<'a> {
    /// The payload of a data line; `None` for the special packets.
    pub(crate) fn as_slice(&self) -> Option<&'a [u8]> {
        match self {
            PacketLineRef::Data(data) => Some(data),
            _ => None,
        }
    }

    /// The payload of a data line without its trailing `\n`, if any: the
    /// protocol says receivers must treat text lines the same with or without
    /// it.
    pub fn as_text(&self) -> Option<&'a [u8]> {
        self.as_slice().map(strip_newline)
    }

    /// Encodes this line, as `write_data` or the special packets would.
    ///
    /// ```
    /// use git_relay::protocol::PacketLineRef;
    ///
    /// let mut out = Vec::new();
    /// PacketLineRef::Data(b"hello\n").write_to(&mut out)?;
    /// PacketLineRef::Flush.write_to(&mut out)?;
    /// assert_eq!(out, b"000ahello\n0000");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_to<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        match self {
            PacketLineRef::Data(data) => write_data(w, data),
            PacketLineRef::Flush => w.write_all(FLUSH_PKT),
            PacketLineRef::Delimiter => w.write_all(DELIM_PKT),
            PacketLineRef::ResponseEnd => w.write_all(RESPONSE_END_PKT),
        }
    }
}

fn strip_newline(data: &[u8]) -> &[u8] {
    data.strip_suffix(b"\n").unwrap_or(data)
}

/// What a length prefix announced, before the payload is borrowed: lets
/// [`SidebandReader`](crate::protocol::sideband::SidebandReader) keep a
/// position into the buffer across `read` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    Data(usize),
    Flush,
    Delimiter,
    ResponseEnd,
}

/// Reads pkt-lines from a byte stream.
///
/// Reads the length prefix and the payload with separate calls, so give it a
/// buffered reader when the source is a socket or a pipe.
///
/// ```
/// use git_relay::protocol::{PacketLineRef, PacketReader, ProtocolError};
///
/// let mut reader = PacketReader::new(&b"000eversion 2\n0000"[..]);
/// let line = reader.read_line()?.expect("a line");
/// assert_eq!(line.as_text(), Some(&b"version 2"[..]));
/// assert_eq!(reader.read_line()?, Some(PacketLineRef::Flush));
/// assert_eq!(reader.read_line()?, None);
///
/// let mut reader = PacketReader::new(&b"0016ERR access denied\n"[..]);
/// assert!(matches!(reader.read_line(), Err(ProtocolError::Remote(m)) if m == "access denied"));
/// # Ok::<(), ProtocolError>(())
/// ```
pub struct PacketReader<R> {
    inner: R,
    /// Grows to the largest payload seen so far, never past
    /// [`MAX_DATA_LEN`]: a ref listing stays small, a pack stream reaches the
    /// maximum once and stays there.
    buf: Vec<u8>,
    /// With a limit set: the limit, and how many bytes may still be read.
    budget: Option<Budget>,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: u64,
    left: u64,
}

impl<R> PacketReader<R> {
    /// Wraps `inner`, without a limit.
    pub fn new(inner: R) -> Self {
        PacketReader {
            inner,
            buf: Vec::new(),
            budget: None,
        }
    }

    /// From now on, consume at most `limit` bytes (length prefixes
    /// included) before [`ProtocolError::MessageTooLarge`]; `None` lifts the
    /// limit, as before streaming a pack. The check comes before a payload is
    /// read, so nothing past the limit is ever buffered.
    pub(crate) fn set_limit(&mut self, limit: Option<u64>) {
        self.budget = limit.map(|limit| Budget { limit, left: limit });
    }

    /// Takes `len` bytes from the budget, if there is one.
    fn charge(&mut self, len: usize) -> Result<(), ProtocolError> {
        if let Some(budget) = &mut self.budget {
            budget.left =
                budget
                    .left
                    .checked_sub(len as u64)
                    .ok_or(ProtocolError::MessageTooLarge {
                        limit: budget.limit,
                    })?;
        }
        Ok(())
    }

    /// The wrapped reader.
    #[cfg(test)]
    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Unwraps the reader; nothing is buffered beyond the last packet read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The payload of the last data frame of length `len`.
    pub(crate) fn payload(&self, len: usize) -> &[u8] {
        self.buf.get(..len).unwrap_or_default()
    }

    fn frame_to_line(&self, frame: Frame) -> PacketLineRef<'_> {
        match frame {
            Frame::Data(len) => PacketLineRef::Data(self.payload(len)),
            Frame::Flush => PacketLineRef::Flush,
            Frame::Delimiter => PacketLineRef::Delimiter,
            Frame::ResponseEnd => PacketLineRef::ResponseEnd,
        }
    }
}

impl<R: Read> PacketReader<R> {
    /// Reads the next pkt-line.
    ///
    /// Returns `Ok(None)` when the stream ends cleanly between packets,
    /// [`ProtocolError::UnexpectedEof`] when it ends inside one, and
    /// [`ProtocolError::Remote`] for an `ERR <message>` line.
    pub fn read_line(&mut self) -> Result<Option<PacketLineRef<'_>>, ProtocolError> {
        let frame = self.read_frame()?;
        Ok(frame.map(|frame| self.frame_to_line(frame)))
    }

    /// Like [`read_line`](Self::read_line) for places where the protocol says
    /// more must follow, so the end of the stream is an error.
    pub(crate) fn read_line_required(&mut self) -> Result<PacketLineRef<'_>, ProtocolError> {
        let frame = self.read_frame()?.ok_or(ProtocolError::UnexpectedEof)?;
        Ok(self.frame_to_line(frame))
    }

    /// Reads one packet into the buffer and says what it was.
    pub(crate) fn read_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let mut prefix = [0u8; LEN_PREFIX_LEN];
        match fill(&mut self.inner, &mut prefix)? {
            0 => return Ok(None),
            LEN_PREFIX_LEN => {}
            _ => return Err(ProtocolError::UnexpectedEof),
        }
        self.charge(LEN_PREFIX_LEN)?;
        let frame = match parse_len(prefix)? {
            0 => Frame::Flush,
            1 => Frame::Delimiter,
            2 => Frame::ResponseEnd,
            total @ LEN_PREFIX_LEN..=MAX_PKT_LEN => Frame::Data(total - LEN_PREFIX_LEN),
            _ => return Err(ProtocolError::InvalidLength(escape(&prefix))),
        };
        if let Frame::Data(len) = frame {
            self.charge(len)?;
            if self.buf.len() < len {
                self.buf.resize(len, 0);
            }
            let payload = self.buf.get_mut(..len).unwrap_or_default();
            if fill(&mut self.inner, payload)? != len {
                return Err(ProtocolError::UnexpectedEof);
            }
            if let Some(message) = strip_newline(payload).strip_prefix(ERR_PREFIX) {
                return Err(ProtocolError::Remote(remote_message(message)));
            }
        }
        Ok(Some(frame))
    }
}

impl<R> std::fmt::Debug for PacketReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketReader").finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
/// Unlike `read_exact`, tells "ended before anything" apart from "ended
/// half-way", which is the difference between a clean end and a cut packet.
fn fill<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> Result<usize, ProtocolError> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n.min(rest.len()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(ProtocolError::from_io(err)),
        }
    }
    Ok(filled)
}

fn parse_len(prefix: [u8; LEN_PREFIX_LEN]) -> Result<usize, ProtocolError> {
    prefix.iter().try_fold(0usize, |len, &digit| {
        nibble(digit)
            .map(|value| len * 16 + usize::from(value))
            .ok_or_else(|| ProtocolError::InvalidLength(escape(&prefix)))
    })
}

fn len_prefix(total: usize) -> [u8; LEN_PREFIX_LEN] {
    let mut prefix = [0u8; LEN_PREFIX_LEN];
    for (i, digit) in prefix.iter_mut().enumerate() {
        let shift = 4 * (LEN_PREFIX_LEN - 1 - i);
        *digit = HEX_DIGITS[(total >> shift) & 0xf];
    }
    prefix
}

/// Writes `data` as one pkt-line, unchanged. Fails with
/// [`ProtocolError::DataTooLong`] (inside the `io::Error`) rather than
/// splitting, because where a payload may be split is the caller's protocol
/// knowledge, not ours.
pub(crate) fn write_data<W: Write + ?Sized>(w: &mut W, data: &[u8]) -> io::Result<()> {
    write_parts(w, &[data])
}

/// Writes the concatenation of `parts` followed by `\n` as one pkt-line, so
/// that `want <hex>` and friends need no temporary string.
///
/// ```
/// let mut out = Vec::new();
/// git_relay::protocol::pktline::write_text_parts(&mut out, &[b"command=ls-refs"])?;
/// git_relay::protocol::pktline::write_delim(&mut out)?;
/// git_relay::protocol::pktline::write_flush(&mut out)?;
/// assert_eq!(out, b"0014command=ls-refs\n00010000");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_text_parts<W: Write + ?Sized>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    write_joined(w, parts, b"\n")
}

/// Writes the concatenation of `parts` as one pkt-line, without a newline.
pub(crate) fn write_parts<W: Write + ?Sized>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    write_joined(w, parts, b"")
}

fn write_joined<W: Write + ?Sized>(w: &mut W, parts: &[&[u8]], suffix: &[u8]) -> io::Result<()> {
    let len = parts.iter().map(|part| part.len()).sum::<usize>() + suffix.len();
    if len > MAX_DATA_LEN {
        return Err(ProtocolError::DataTooLong(len).into());
    }
    w.write_all(&len_prefix(len + LEN_PREFIX_LEN))?;
    for part in parts {
        w.write_all(part)?;
    }
    w.write_all(suffix)
}

/// Refuses request text that would break out of its pkt-line: callers pass
/// strings that may come from a user (ref prefixes) or a server (ref names),
/// and a newline or NUL in them would smuggle in extra protocol.
pub(crate) fn check_single_line(what: &str, text: &str) -> io::Result<()> {
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} \"{}\" contains a control character and cannot be sent",
                escape(text.as_bytes())
            ),
        ));
    }
    Ok(())
}

/// Writes a flush packet.
pub fn write_flush<W: Write + ?Sized>(w: &mut W) -> io::Result<()> {
    w.write_all(FLUSH_PKT)
}

/// Writes a delimiter packet.
pub fn write_delim<W: Write + ?Sized>(w: &mut W) -> io::Result<()> {
    w.write_all(DELIM_PKT)
}

/// Frames `text` as one pkt-line, for building test input readably.
#[cfg(test)]
pub(crate) fn pkt(text: &str) -> String {
    format!("{:04x}{text}", text.len() + LEN_PREFIX_LEN)
}

/// Unframes `bytes` into readable lines (`<delim>`, `<flush>`, `<end>` for
/// the special packets), for asserting on what a writer wrote.
#[cfg(test)]
pub(crate) fn render(bytes: &[u8]) -> Vec<String> {
    let mut reader = PacketReader::new(bytes);
    let mut out = Vec::new();
    while let Some(line) = reader.read_line().unwrap() {
        out.push(match line {
            PacketLineRef::Data(d) => String::from_utf8(d.to_vec()).unwrap(),
            PacketLineRef::Flush => "<flush>".into(),
            PacketLineRef::Delimiter => "<delim>".into(),
            PacketLineRef::ResponseEnd => "<end>".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GIT_PROTOCOL=version=2 git upload-pack --stateless-rpc --advertise-refs`
    /// (git 2.47.3).
    const V2_ADVERTISEMENT: &[u8] = b"000eversion 2\n0015agent=git/2.47.3\n0013ls-refs=unborn\n\
        0020fetch=shallow wait-for-done\n0012server-option\n0017object-format=sha1\n0000";

    fn lines(input: &[u8]) -> Result<Vec<Option<Vec<u8>>>, ProtocolError> {
        let mut reader = PacketReader::new(input);
        let mut out = Vec::new();
        while let Some(line) = reader.read_line()? {
            out.push(line.as_slice().map(<[u8]>::to_vec));
        }
        Ok(out)
    }

    #[test]
    fn reads_real_v2_advertisement() {
        let mut reader = PacketReader::new(V2_ADVERTISEMENT);
        let mut texts = Vec::new();
        loop {
            match reader.read_line().unwrap().unwrap() {
                PacketLineRef::Flush => break,
                line => texts.push(String::from_utf8(line.as_text().unwrap().to_vec()).unwrap()),
            }
        }
        assert_eq!(
            texts,
            [
                "version 2",
                "agent=git/2.47.3",
                "ls-refs=unborn",
                "fetch=shallow wait-for-done",
                "server-option",
                "object-format=sha1"
            ]
        );
        assert_eq!(reader.read_line().unwrap(), None);
    }

    #[test]
    fn special_packets() {
        let mut reader = PacketReader::new(&b"0000000100020004"[..]);
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Flush));
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Delimiter));
        assert_eq!(
            reader.read_line().unwrap(),
            Some(PacketLineRef::ResponseEnd)
        );
        // "0004" is an empty data line, not a flush: the spec insists.
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Data(b"")));
        assert_eq!(reader.read_line().unwrap(), None);
        assert_eq!(PacketLineRef::Flush.as_slice(), None);
        assert_eq!(PacketLineRef::Delimiter.as_text(), None);
    }

    #[test]
    fn text_strips_exactly_one_newline() {
        assert_eq!(PacketLineRef::Data(b"a\n\n").as_text(), Some(&b"a\n"[..]));
        assert_eq!(PacketLineRef::Data(b"a").as_text(), Some(&b"a"[..]));
        assert_eq!(PacketLineRef::Data(b"\n").as_text(), Some(&b""[..]));
    }

    #[test]
    fn round_trip_all_kinds() {
        let big = vec![0xa5; MAX_DATA_LEN];
        let mut out = Vec::new();
        write_text_parts(&mut out, &[b"want abc"]).unwrap();
        write_data(&mut out, b"\x01binary\x00").unwrap();
        write_data(&mut out, &big).unwrap();
        write_data(&mut out, b"").unwrap();
        write_delim(&mut out).unwrap();
        write_flush(&mut out).unwrap();
        PacketLineRef::ResponseEnd.write_to(&mut out).unwrap();
        assert_eq!(out.get(..13).unwrap(), b"000dwant abc\n");
        assert_eq!(out.get(25..29).unwrap(), b"fff0");

        let mut reader = PacketReader::new(out.as_slice());
        assert_eq!(
            reader.read_line().unwrap().unwrap().as_text(),
            Some(&b"want abc"[..])
        );
        assert_eq!(
            reader.read_line().unwrap().unwrap(),
            PacketLineRef::Data(b"\x01binary\x00")
        );
        assert_eq!(
            reader.read_line().unwrap().unwrap().as_slice(),
            Some(big.as_slice())
        );
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Data(b"")));
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Delimiter));
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Flush));
        assert_eq!(
            reader.read_line().unwrap(),
            Some(PacketLineRef::ResponseEnd)
        );
        assert_eq!(reader.read_line().unwrap(), None);
    }

    #[test]
    fn write_refuses_oversize() {
        let mut out = Vec::new();
        let err = write_data(&mut out, &vec![0; MAX_DATA_LEN + 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(matches!(
            ProtocolError::from_io(err),
            ProtocolError::DataTooLong(65517)
        ));
        let text = "x".repeat(MAX_DATA_LEN);
        assert!(write_text_parts(&mut out, &[text.as_bytes()]).is_err());
        assert!(out.is_empty(), "nothing may be written before the check");
        write_text_parts(&mut out, &[&text.as_bytes()[1..]]).unwrap();
        assert_eq!(out.len(), MAX_PKT_LEN);
    }

    #[test]
    fn accepts_upper_case_length() {
        assert_eq!(lines(b"000Ahello\n").unwrap(), [Some(b"hello\n".to_vec())]);
    }

    #[test]
    fn rejects_bad_lengths() {
        for (input, shown) in [
            (&b"0003"[..], "0003"),
            (b"fff1", "fff1"),
            (b"ffff", "ffff"),
            (b"00g0abcd", "00g0"),
            (b"+004", "+004"),
            (b" 004", " 004"),
            (b"\x1b[2J", "\\x1b[2J"),
            (b"<htm", "<htm"),
        ] {
            match lines(input) {
                Err(ProtocolError::InvalidLength(text)) => assert_eq!(text, shown),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let err = lines(b"00zz").unwrap_err().to_string();
        assert_eq!(
            err,
            "the server sent an invalid pkt-line length \"00zz\"; expected four \
             hexadecimal digits, 0000 to 0002 or 0004 to fff0"
        );
    }

    #[test]
    fn truncation_inside_a_packet_is_an_error() {
        for input in [&b"0"[..], b"000", b"000ahell", b"0005", b"0008NAK"] {
            assert!(
                matches!(lines(input), Err(ProtocolError::UnexpectedEof)),
                "{input:?}"
            );
        }
        // ...but the end of the stream between packets is not.
        assert_eq!(lines(b"0008NAK\n").unwrap().len(), 1);
        assert!(lines(b"").unwrap().is_empty());
    }

    #[test]
    fn err_packet_is_a_remote_error() {
        // Captured: upload-pack asked for an object it does not advertise.
        let input = b"0049ERR upload-pack: not our ref 2222222222222222222222222222222222222222";
        match lines(input) {
            Err(ProtocolError::Remote(message)) => assert_eq!(
                message,
                "upload-pack: not our ref 2222222222222222222222222222222222222222"
            ),
            other => panic!("{other:?}"),
        }
        match lines(b"000dERR \x1b[31m\n") {
            Err(ProtocolError::Remote(message)) => assert_eq!(message, "\\u{1b}[31m"),
            other => panic!("{other:?}"),
        }
        // Only "ERR " with the space is an error line.
        assert_eq!(lines(b"0007ERR").unwrap(), [Some(b"ERR".to_vec())]);
        assert_eq!(lines(b"000cERRATUM\n").unwrap().len(), 1);
    }

    /// Hands out one byte per call and interrupts every other call, like a
    /// slow socket with signals arriving.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            match (self.data.split_first(), buf.first_mut()) {
                (Some((byte, rest)), Some(slot)) => {
                    *slot = *byte;
                    self.data = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn short_reads_and_interrupts_are_transparent() {
        let mut reader = PacketReader::new(Trickle {
            data: V2_ADVERTISEMENT,
            interrupt: false,
        });
        assert_eq!(lines_from(&mut reader), 7);
    }

    #[test]
    fn io_errors_pass_through() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let mut reader = PacketReader::new(Broken);
        match reader.read_line() {
            Err(ProtocolError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limit_counts_prefixes_and_payloads() {
        let input = b"0008abcd0000000aefghij";
        let mut reader = PacketReader::new(&input[..]);
        reader.set_limit(Some(12));
        assert_eq!(
            reader.read_line().unwrap(),
            Some(PacketLineRef::Data(b"abcd"))
        );
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Flush));
        // 12 bytes used; the next prefix alone is over the limit.
        assert!(matches!(
            reader.read_line(),
            Err(ProtocolError::MessageTooLarge { limit: 12 })
        ));

        let mut reader = PacketReader::new(&input[..]);
        reader.set_limit(Some(14));
        reader.read_line().unwrap();
        reader.read_line().unwrap();
        // The prefix fits, its 6-byte payload does not: refused unread.
        assert!(matches!(
            reader.read_line(),
            Err(ProtocolError::MessageTooLarge { limit: 14 })
        ));
        assert_eq!(*reader.get_ref(), b"efghij");

        let mut reader = PacketReader::new(&input[..]);
        reader.set_limit(Some(4));
        reader.set_limit(None);
        assert_eq!(lines_from(&mut reader), 3);
    }

    fn lines_from<R: Read>(reader: &mut PacketReader<R>) -> usize {
        let mut count = 0;
        while reader.read_line().unwrap().is_some() {
            count += 1;
        }
        count
    }

    #[test]
    fn accessors() {
        let mut reader = PacketReader::new(&b"0000rest"[..]);
        assert_eq!(reader.read_line().unwrap(), Some(PacketLineRef::Flush));
        assert_eq!(*reader.get_ref(), b"rest");
        assert_eq!(reader.into_inner(), b"rest");
    }
}

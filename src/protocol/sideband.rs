//! Side-band demultiplexing: turning a stream of pkt-lines whose first byte
//! names a channel back into the byte stream on channel 1.
//!
//! upload-pack sends a pack this way (always in protocol v2, with
//! `side-band-64k` in v0) so that progress (channel 2) and a fatal error
//! (channel 3) can travel beside it; receive-pack sends its report-status the
//! same way. [`SidebandReader`] exposes channel 1 as [`std::io::Read`], so the
//! pack can be copied straight into the destination's request body, and the
//! report-status can be parsed by a [`PacketReader`] stacked on top of it.
//!
//! A server may send progress forever and no data: whatever is not data
//! (progress, empty packets) counts towards `MAX_PROGRESS_WITHOUT_DATA`,
//! reset by each data packet, so such a stream ends in an error instead of
//! holding the reader in its loop.
//!
//! Bytes are copied out of the [`PacketReader`]'s buffer directly into the
//! caller's buffer, across as many `read` calls as the caller likes: nothing
//! is allocated per packet, whatever the size of the pack.

use std::io::{self, Read};

use crate::protocol::error::remote_message;
use crate::protocol::pktline::{Frame, LEN_PREFIX_LEN};
use crate::protocol::{PacketLineRef, PacketReader, ProtocolError};

/// How many bytes of packets without data (progress on channel 2, empty
/// packets; prefixes included) may come in a row before the stream is
/// given up as endless. We ask for no progress, so a real server sends
/// little: keep-alives, and a receive-pack hook's messages, which this
/// leaves ample room for.
pub(crate) const MAX_PROGRESS_WITHOUT_DATA: usize = 1 << 20;

/// The side-band channels of `gitprotocol-pack(5)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Channel {
    /// Pack data, or whatever payload the stream carries.
    Data = 1,
    /// Progress text for a person.
    Progress = 2,
    /// A fatal error, just before the server aborts.
    Error = 3,
}

impl Channel {
    /// The channel a packet's first byte names, if any.
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Channel::Data),
            2 => Some(Channel::Progress),
            3 => Some(Channel::Error),
            _ => None,
        }
    }
}

/// Reads channel 1 of a side-band stream as plain bytes, up to the flush
/// packet that ends it.
///
/// Any error is final: later reads repeat it rather than resume in the middle
/// of a packet. The end of the stream before the flush is an error too
/// ([`io::ErrorKind::UnexpectedEof`]), so a pack cut off by a dropped
/// connection is never mistaken for a complete one.
///
/// Channel 2 payloads go to `on_progress` as they arrive (still raw: they
/// contain `\r` and may split a line across packets). A channel 3 message ends
/// the stream with an [`io::Error`] that carries
/// [`ProtocolError::Remote`]; recover it with [`ProtocolError::from_io`].
///
/// ```
/// use std::io::Read;
/// use git_relay::protocol::sideband::SidebandReader;
/// use git_relay::protocol::{PacketLineRef, PacketReader};
///
/// let stream = b"0009\x01PACK0011\x02Counting...\r0008\x01...0000rest";
/// let mut progress = Vec::new();
/// let mut pack = Vec::new();
/// let mut sideband = SidebandReader::new(PacketReader::new(&stream[..]), |text: &[u8]| {
///     progress.extend_from_slice(text)
/// });
/// sideband.read_to_end(&mut pack)?;
/// let rest = sideband.into_inner().into_inner();
/// assert_eq!(pack, b"PACK...");
/// assert_eq!(progress, b"Counting...\r");
/// assert_eq!(rest, b"rest");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SidebandReader<R, F>
where
    F: FnMut(&[u8]),
{
    reader: PacketReader<R>,
    on_progress: F,
    /// Unread channel-1 bytes are `reader`'s buffer `pos..end`.
    pos: usize,
    end: usize,
    /// Bytes of packets without data since the last data packet.
    without_data: usize,
    /// Set at the flush (or a fatal error): reads return 0 / the error again
    /// without touching the stream, which may already carry the next message.
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Streaming,
    Finished,
    /// The server's channel-3 or ERR message, repeated to later reads.
    Remote(String),
    /// A framing or I/O failure, repeated by kind and message: the stream is
    /// at an unknown place, so it must not be read again.
    Broken(io::ErrorKind, String),
}

impl<R, F> SidebandReader<R, F>
where
    F: FnMut(&[u8]),
{
    /// Demultiplexes the packets `reader` reads next.
    pub fn new(reader: PacketReader<R>, on_progress: F) -> Self {
        SidebandReader {
            reader,
            on_progress,
            pos: 0,
            end: 0,
            without_data: 0,
            state: State::Streaming,
        }
    }

    /// Whether the flush that ends the stream has been read.
    pub(crate) fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Gives back the pkt-line reader, positioned after the flush if the
    /// stream was read to its end. Unread channel-1 bytes of the current
    /// packet are dropped.
    pub fn into_inner(self) -> PacketReader<R> {
        self.reader
    }
}

impl<R, F> SidebandReader<R, F>
where
    R: Read,
    F: FnMut(&[u8]),
{
    /// Reads packets until there are channel-1 bytes to hand out or the
    /// stream is over.
    fn refill(&mut self) -> Result<(), ProtocolError> {
        while self.pos == self.end && self.state == State::Streaming {
            let len = match self.reader.read_frame()? {
                Some(Frame::Data(len)) => len,
                // A v2 server may end a stateless response with response-end
                // instead of (or after) flush; either way no data follows.
                Some(Frame::Flush | Frame::ResponseEnd) => {
                    self.state = State::Finished;
                    return Ok(());
                }
                Some(Frame::Delimiter) => {
                    return Err(ProtocolError::unexpected_line(
                        "reading side-band data",
                        PacketLineRef::Delimiter,
                    ))
                }
                None => return Err(ProtocolError::UnexpectedEof),
            };
            let payload = self.reader.payload(len);
            let band = payload.first().copied().and_then(Channel::from_byte);
            if band == Some(Channel::Data) && len > 1 {
                self.without_data = 0;
            } else {
                self.without_data += LEN_PREFIX_LEN + len;
                if self.without_data > MAX_PROGRESS_WITHOUT_DATA {
                    return Err(ProtocolError::ProgressWithoutData {
                        limit: MAX_PROGRESS_WITHOUT_DATA,
                    });
                }
            }
            let Some((_, data)) = payload.split_first() else {
                // "0004": nothing on no channel. Harmless; skip it.
                continue;
            };
            match band {
                Some(Channel::Data) => {
                    self.pos = 1;
                    self.end = len;
                }
                Some(Channel::Progress) => (self.on_progress)(data),
                Some(Channel::Error) => {
                    return Err(ProtocolError::Remote(remote_message(data)));
                }
                None => {
                    return Err(ProtocolError::unexpected(
                        "reading side-band data (unknown channel)",
                        payload,
                    ))
                }
            }
        }
        Ok(())
    }
}

impl<R, F> Read for SidebandReader<R, F>
where
    R: Read,
    F: FnMut(&[u8]),
{
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match &self.state {
            State::Remote(message) => return Err(ProtocolError::Remote(message.clone()).into()),
            State::Broken(kind, message) => return Err(io::Error::new(*kind, message.clone())),
            State::Streaming | State::Finished => {}
        }
        if let Err(err) = self.refill() {
            self.state = match &err {
                ProtocolError::Remote(message) => State::Remote(message.clone()),
                other => {
                    let kind = match other {
                        ProtocolError::Io(io) => io.kind(),
                        ProtocolError::UnexpectedEof => io::ErrorKind::UnexpectedEof,
                        _ => io::ErrorKind::InvalidData,
                    };
                    State::Broken(kind, other.to_string())
                }
            };
            return Err(err.into());
        }
        let available = self
            .reader
            .payload(self.end)
            .get(self.pos..)
            .unwrap_or_default();
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

impl<R, F> std::fmt::Debug for SidebandReader<R, F>
where
    F: FnMut(&[u8]),
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidebandReader")
            .field("buffered", &self.end.saturating_sub(self.pos))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pktline::{write_flush, write_parts};

    /// receive-pack's answer to a push with `report-status side-band-64k`
    /// where one of three ref updates failed (git 2.47.3).
    const RECEIVE_PACK_RESPONSE: &[u8] = b"005f\x02error: cannot lock ref 'refs/heads/stale': \
        unable to resolve reference 'refs/heads/stale'\n0075\x01000eunpack ok\n0017ok \
        refs/heads/main\n001aok refs/heads/feature\n002dng refs/heads/stale failed to update \
        ref\n00000000";

    fn demux(input: &[u8]) -> (io::Result<Vec<u8>>, Vec<u8>) {
        let mut progress = Vec::new();
        let mut out = Vec::new();
        let result = SidebandReader::new(PacketReader::new(input), |p: &[u8]| {
            progress.extend_from_slice(p)
        })
        .read_to_end(&mut out)
        .map(|_| out);
        (result, progress)
    }

    fn packet(channel: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_parts(&mut out, &[&[channel], data]).unwrap();
        out
    }

    #[test]
    fn real_upload_pack_stream() {
        let capture = include_bytes!("../../fuzz/corpus/fetch_response/v2-acks-ready-packfile.bin");
        // Skip the acknowledgments section up to and including "packfile\n".
        let start = capture
            .windows(13)
            .position(|w| w == b"000dpackfile\n")
            .unwrap()
            + 13;
        let (pack, progress) = demux(&capture[start..]);
        let pack = pack.unwrap();
        assert!(pack.starts_with(b"PACK\x00\x00\x00\x02"));
        // 12 header bytes + objects + 20 trailer bytes; the last packet held
        // a single byte, which must not be lost.
        assert_eq!(pack.len(), 0xd8 - 5 + 1);
        let progress = String::from_utf8(progress).unwrap();
        assert!(progress.starts_with("Enumerating objects: 5, done.\n"));
        // A progress line split across two packets arrives in two calls.
        assert!(progress.contains("pack-reused 0 (from 0)\n"));
    }

    #[test]
    fn real_report_status_stacks_under_a_packet_reader() {
        let mut progress = Vec::new();
        let mut sideband =
            SidebandReader::new(PacketReader::new(RECEIVE_PACK_RESPONSE), |p: &[u8]| {
                progress.extend_from_slice(p)
            });
        let mut inner = PacketReader::new(&mut sideband);
        let mut texts = Vec::new();
        while let Some(line) = inner.read_line().unwrap() {
            match line.as_text() {
                Some(text) => texts.push(String::from_utf8_lossy(text).into_owned()),
                None => texts.push("<flush>".into()),
            }
        }
        assert_eq!(
            texts,
            [
                "unpack ok",
                "ok refs/heads/main",
                "ok refs/heads/feature",
                "ng refs/heads/stale failed to update ref",
                "<flush>"
            ]
        );
        assert!(sideband.is_finished());
        assert_eq!(sideband.into_inner().read_line().unwrap(), None);
        assert!(progress.starts_with(b"error: cannot lock ref"));
    }

    #[test]
    fn small_reads_cross_packet_boundaries() {
        let mut input = packet(1, b"abcdefgh");
        input.extend(packet(2, b"progress"));
        input.extend(b"0004");
        input.extend(packet(1, b""));
        input.extend(packet(1, b"ijk"));
        write_flush(&mut input).unwrap();
        let mut sideband = SidebandReader::new(PacketReader::new(input.as_slice()), |_: &[u8]| {});
        let mut out = Vec::new();
        let mut chunk = [0u8; 3];
        loop {
            let n = sideband.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= 3);
            out.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(out, b"abcdefghijk");
        // Repeated reads after the end stay at the end.
        assert_eq!(sideband.read(&mut chunk).unwrap(), 0);
        assert_eq!(sideband.read(&mut []).unwrap(), 0);
    }

    #[test]
    fn full_size_packets() {
        let data = vec![7u8; crate::protocol::pktline::MAX_DATA_LEN - 1];
        let mut input = packet(1, &data);
        input.extend(packet(1, &data));
        input.extend(b"0000");
        let (out, _) = demux(&input);
        assert_eq!(out.unwrap().len(), 2 * data.len());
    }

    #[test]
    fn channel_three_is_a_remote_error() {
        let mut input = packet(1, b"PACK");
        input.extend(packet(3, b"fatal: the remote end hung up\n"));
        let mut progress_calls = 0;
        let mut sideband =
            SidebandReader::new(PacketReader::new(input.as_slice()), |_: &[u8]| {
                progress_calls += 1
            });
        let mut out = Vec::new();
        let err = sideband.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"PACK");
        match ProtocolError::from_io(err) {
            ProtocolError::Remote(message) => assert_eq!(message, "fatal: the remote end hung up"),
            other => panic!("{other:?}"),
        }
        // The error sticks: the stream must not be mistaken for finished.
        let err = sideband.read(&mut [0; 4]).unwrap_err();
        assert!(matches!(
            ProtocolError::from_io(err),
            ProtocolError::Remote(_)
        ));
        assert_eq!(progress_calls, 0);
    }

    #[test]
    fn malformed_streams() {
        // Unknown channel.
        let (result, _) = demux(&packet(4, b"x"));
        let err = ProtocolError::from_io(result.unwrap_err());
        assert!(
            matches!(&err, ProtocolError::Unexpected { line, .. } if line == "\\x04x"),
            "{err:?}"
        );
        // Truncated inside a packet, and cut off before the flush.
        for input in [&b"0009\x01PA"[..], b"0009\x01PACK"] {
            let (result, _) = demux(input);
            let err = result.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert!(matches!(
                ProtocolError::from_io(err),
                ProtocolError::UnexpectedEof
            ));
        }
        // A delimiter has no place in a side-band stream.
        let (result, _) = demux(b"0001");
        assert!(result.is_err());
        // An ERR packet in place of a side-band packet.
        let (result, _) = demux(b"000fERR denied\n");
        assert!(matches!(
            ProtocolError::from_io(result.unwrap_err()),
            ProtocolError::Remote(m) if m == "denied"
        ));
        // A bad length.
        let (result, _) = demux(b"zzzz");
        assert!(matches!(
            ProtocolError::from_io(result.unwrap_err()),
            ProtocolError::InvalidLength(_)
        ));
    }

    #[test]
    fn endless_progress_without_data_is_an_error() {
        let progress = packet(2, &[b'.'; 1000]);
        let keepalive = packet(1, b"");
        let mut input = packet(1, b"PACK");
        // Just under the limit, twice, with data in between: fine.
        let per_round = MAX_PROGRESS_WITHOUT_DATA / (progress.len() + keepalive.len());
        for _ in 0..2 {
            for _ in 0..per_round {
                input.extend(&progress);
                input.extend(&keepalive);
            }
            input.extend(packet(1, b"x"));
        }
        input.extend(b"0000");
        let (out, _) = demux(&input);
        assert_eq!(out.unwrap(), b"PACKxx");

        // Past it, keep-alives and empty packets included: the stream ends.
        let mut input = packet(1, b"PACK");
        for _ in 0..=MAX_PROGRESS_WITHOUT_DATA / 8 {
            input.extend(b"0004");
            input.extend(&keepalive);
        }
        let (out, _) = demux(&input);
        assert!(matches!(
            ProtocolError::from_io(out.unwrap_err()),
            ProtocolError::ProgressWithoutData { .. }
        ));
    }

    #[test]
    fn response_end_also_ends_the_stream() {
        let mut input = packet(1, b"x");
        input.extend(b"0002");
        let (out, _) = demux(&input);
        assert_eq!(out.unwrap(), b"x");
    }

    #[test]
    fn channel_from_byte() {
        assert_eq!(Channel::from_byte(1), Some(Channel::Data));
        assert_eq!(Channel::from_byte(2), Some(Channel::Progress));
        assert_eq!(Channel::from_byte(3), Some(Channel::Error));
        assert_eq!(Channel::from_byte(0), None);
        assert_eq!(Channel::Error as u8, 3);
    }
}

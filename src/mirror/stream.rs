//! The pack on its way from the source to the destination ([`Counted`]).

use std::io::{self, Read};

use crate::output;
use crate::transport::TransportError;

/// The pack on its way from source to destination: counts bytes, shows
/// progress, checks the pack's own SHA-1 trailer, and remembers a
/// source-side failure so that it is blamed on the source rather than on
/// the upload it interrupted. A pack whose bytes do not match its trailer
/// was damaged before it reached us; it ends in an error rather than
/// reaching its end, so the destination never takes it for whole.
pub(super) struct Counted {
    inner: Box<dyn Read + Send>,
    /// Bytes read so far.
    pub(super) bytes: u64,
    pub(super) progress: output::Progress,
    /// What failed on the source's side, once something did.
    pub(super) failure: Option<TransportError>,
    /// The most bytes this push may carry (the push budget), and whether the
    /// pack went past it: the stream then ends in an error, so the
    /// destination gets a cut body and changes nothing.
    limit: Option<u64>,
    pub(super) over_limit: bool,
    sha1: ring::digest::Context,
    /// The last 20 bytes seen: the trailer, once the stream has ended.
    tail: Vec<u8>,
    ended: bool,
}

const TRAILER: usize = 20;

impl Counted {
    pub(super) fn new(inner: Box<dyn Read + Send>, limit: Option<u64>) -> Counted {
        Counted {
            inner,
            bytes: 0,
            progress: output::Progress::new("relaying pack"),
            failure: None,
            limit,
            over_limit: false,
            sha1: ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            tail: Vec::with_capacity(2 * TRAILER),
            ended: false,
        }
    }

    /// Reads what is left of the pack, checking it; for when the
    /// destination refused the pack before reading all of it.
    pub(super) fn read_rest(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = self.pull(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e)),
        };
        self.bytes += n as u64;
        if self.limit.is_some_and(|limit| self.bytes > limit) {
            self.over_limit = true;
            return Err(io::Error::other("the pack outgrew the push budget"));
        }
        if n > 0 {
            self.hash(&buf[..n]);
        } else if !buf.is_empty() && !self.ended {
            self.ended = true;
            let sum = self.sha1.clone().finish();
            if self.bytes > 0 && self.tail != sum.as_ref() {
                return Err(self.fail(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the pack is damaged: its content does not match its SHA-1 checksum (it left the source so, or was altered on the way)",
                )));
            }
        }
        Ok(n)
    }

    /// Hashes everything but the last 20 bytes seen so far.
    fn hash(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > TRAILER {
            let done = self.tail.len() - TRAILER;
            self.sha1.update(&self.tail[..done]);
            self.tail.drain(..done);
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        self.failure = Some(TransportError::Io(e));
        copy
    }
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pull(buf)?;
        self.progress.update(self.bytes);
        Ok(n)
    }
}

//! An LFS object checked against its pointer while it streams.
//!
//! An object moves from the source's download straight into the
//! destination's upload, so there is no moment at which it sits whole
//! somewhere to be hashed. [`CheckedReader`] hashes and counts it on the way
//! instead, and holds back the object's last byte until the source has
//! ended and the hash matches: an object that is short, long or corrupt
//! fails the reader *before* the upload has all of it. An upload sent with
//! its `Content-Length` is then incomplete and the server discards it, and
//! a local store never renames its temporary file into place. The same
//! check guards a local store read back for a restore.

use std::io::{self, Read};

use ring::digest;

use super::pointer::{Pointer, Sha256};

/// How an object differed from its pointer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mismatch {
    /// The content ended early.
    #[error("object {oid} ended after {got} of its {expected} bytes")]
    Short {
        /// The object.
        oid: Sha256,
        /// The pointer's size.
        expected: u64,
        /// What came.
        got: u64,
    },
    /// The content went on past the pointer's size.
    #[error("object {oid} is longer than its {expected} bytes")]
    Long {
        /// The object.
        oid: Sha256,
        /// The pointer's size.
        expected: u64,
    },
    /// The content had the right size and another hash.
    #[error("object {oid} has the wrong content: its SHA-256 is {actual}")]
    Hash {
        /// The object.
        oid: Sha256,
        /// What the content hashed to.
        actual: Sha256,
    },
}

impl Mismatch {
    /// The mismatch an I/O error from a [`CheckedReader`] carries, however
    /// many readers it passed through, if it is one.
    pub(crate) fn from_io(err: &io::Error) -> Option<Mismatch> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Mismatch>())
            .cloned()
    }
}

impl From<Mismatch> for io::Error {
    fn from(err: Mismatch) -> Self {
        // Not a kind the transient-failure checks retry: the source served
        // this content whole, and would again.
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

/// Streams an object from `inner`, failing before its last byte unless it
/// is exactly the object `expected` names.
pub(crate) struct CheckedReader<R> {
    inner: R,
    expected: Pointer,
    context: digest::Context,
    /// Bytes handed out so far.
    passed: u64,
    /// The check is done and passed: only end of file is left.
    verified: bool,
}

impl<R: Read> CheckedReader<R> {
    /// Checks `inner` against `expected`.
    pub(crate) fn new(inner: R, expected: Pointer) -> CheckedReader<R> {
        CheckedReader {
            inner,
            expected,
            context: digest::Context::new(&digest::SHA256),
            passed: 0,
            verified: false,
        }
    }

    /// Bytes handed out so far.
    #[cfg(test)]
    pub(crate) fn passed(&self) -> u64 {
        self.passed
    }

    /// Whether the whole object was read and matched.
    pub(crate) fn is_verified(&self) -> bool {
        self.verified
    }

    fn short(&self, got: u64) -> io::Error {
        Mismatch::Short {
            oid: self.expected.oid,
            expected: self.expected.size,
            got,
        }
        .into()
    }

    /// Reads one byte, or `None` at the end of `inner`.
    fn read_byte(&mut self) -> io::Result<Option<u8>> {
        let mut byte = [0u8; 1];
        loop {
            match self.inner.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The last step: takes the final byte (if the object has any), makes
    /// sure the source ends there and that the hash matches.
    fn finish(&mut self) -> io::Result<Option<u8>> {
        let last = if self.expected.size > self.passed {
            match self.read_byte()? {
                Some(byte) => Some(byte),
                None => return Err(self.short(self.passed)),
            }
        } else {
            None
        };
        if self.read_byte()?.is_some() {
            return Err(Mismatch::Long {
                oid: self.expected.oid,
                expected: self.expected.size,
            }
            .into());
        }
        let mut context =
            std::mem::replace(&mut self.context, digest::Context::new(&digest::SHA256));
        if let Some(byte) = last {
            context.update(&[byte]);
        }
        let digest = context.finish();
        let mut actual = [0u8; 32];
        actual.copy_from_slice(digest.as_ref());
        if actual != self.expected.oid.0 {
            return Err(Mismatch::Hash {
                oid: self.expected.oid,
                actual: Sha256(actual),
            }
            .into());
        }
        self.verified = true;
        Ok(last)
    }
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.verified {
            return Ok(0);
        }
        let remaining = self.expected.size - self.passed;
        if remaining > 1 {
            // Everything but the last byte passes as it comes.
            let want = buf
                .len()
                .min(usize::try_from(remaining - 1).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(self.short(self.passed));
            }
            self.context.update(&buf[..n]);
            self.passed += n as u64;
            return Ok(n);
        }
        match self.finish()? {
            Some(byte) => {
                buf[0] = byte;
                self.passed += 1;
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer_of(content: &[u8]) -> Pointer {
        let digest = digest::digest(&digest::SHA256, content);
        let mut oid = [0u8; 32];
        oid.copy_from_slice(digest.as_ref());
        Pointer {
            oid: Sha256(oid),
            size: content.len() as u64,
        }
    }

    /// A source that gives at most `step` bytes a read, as a network does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Reads like an upload does, returning what got through and the error.
    fn drain(reader: &mut impl Read) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn a_matching_object_passes_whole() {
        for len in [0, 1, 2, 999, 1000, 1001, 70_000] {
            let data = content(len);
            for step in [1, 3, 4096] {
                let source = Trickle { data: &data, step };
                let mut reader = CheckedReader::new(source, pointer_of(&data));
                let (out, err) = drain(&mut reader);
                assert!(err.is_none(), "{len}/{step}: {err:?}");
                assert_eq!(out, data);
                assert!(reader.is_verified());
                assert_eq!(reader.passed(), len as u64);
            }
        }
    }

    #[test]
    fn a_corrupt_object_fails_before_its_last_byte() {
        let data = content(5000);
        let pointer = pointer_of(&data);
        let mut corrupt = data.clone();
        corrupt[1234] ^= 1;
        let mut reader = CheckedReader::new(&corrupt[..], pointer);
        let (out, err) = drain(&mut reader);
        let err = err.expect("a corrupt object fails");
        assert_eq!(out.len(), data.len() - 1, "all but the last byte passed");
        let mismatch = Mismatch::from_io(&err).unwrap();
        assert_eq!(
            mismatch,
            Mismatch::Hash {
                oid: pointer.oid,
                actual: pointer_of(&corrupt).oid
            }
        );
        assert!(!reader.is_verified());
        assert!(!crate::transport::is_transient_io(&err));
    }

    #[test]
    fn short_and_long_objects_fail_before_the_pointers_size() {
        let data = content(300);
        let pointer = pointer_of(&data);

        let (out, err) = drain(&mut CheckedReader::new(&data[..299], pointer));
        assert_eq!(out.len(), 299, "all that came passed, and then the error");
        assert!(matches!(
            Mismatch::from_io(&err.unwrap()),
            Some(Mismatch::Short {
                got: 299,
                expected: 300,
                ..
            })
        ));

        let mut long = data.clone();
        long.push(0);
        let (out, err) = drain(&mut CheckedReader::new(&long[..], pointer));
        assert_eq!(out.len(), 299);
        assert!(matches!(
            Mismatch::from_io(&err.unwrap()),
            Some(Mismatch::Long { expected: 300, .. })
        ));

        // The empty object: nothing to hold back, but a source with content
        // still fails.
        let empty = pointer_of(b"");
        assert!(drain(&mut CheckedReader::new(&b""[..], empty)).1.is_none());
        let (out, err) = drain(&mut CheckedReader::new(&b"x"[..], empty));
        assert!(out.is_empty() && err.is_some());
    }

    #[test]
    fn a_source_failure_passes_through_unchanged() {
        struct Cut;
        impl Read for Cut {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut"))
            }
        }
        let data = content(10);
        let (_, err) = drain(&mut CheckedReader::new(Cut, pointer_of(&data)));
        let err = err.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(Mismatch::from_io(&err).is_none());
    }
}

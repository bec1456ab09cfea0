//! The commit graph inside a small pack.
//!
//! The relay never looks inside the packs it streams. One question needs
//! to, though: is a destination tip that the source still has an ancestor
//! of the source's new tip (a fast-forward), or did the source rewrite that
//! history? The source answers it with a pack of the commits reachable from
//! the new tip but not from the old one (see `crate::mirror`), and this
//! module reads that pack: every commit in it, with its parents.
//!
//! Only commits (and deltas whose base is a commit) are kept, each once
//! inflated; trees and blobs, present when the server cannot filter them
//! out, are inflated into nothing to find where the next object starts. The
//! whole read is bounded by a byte budget the caller gives, so a server
//! that answers with more than a probe needs is cut off.
//!
//! Format: `gitformat-pack(5)`: `PACK`, version, object count, then per
//! object a type-and-size header, an offset or id for deltas, and zlib
//! data; deltas are `gitformat-pack(5)`'s copy/insert instructions.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::ZlibDecoder;

use super::{ObjectId, ProtocolError};

const SIGNATURE: &[u8; 4] = b"PACK";
const OBJ_COMMIT: u8 = 1;
const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;
/// The largest commit (or delta for one) kept in memory. Real commits are
/// a few hundred bytes; the biggest in the wild are a few megabytes.
const MAX_KEPT: u64 = 16 << 20;
/// Inflated bytes read in all, trees and blobs included: a few bytes of
/// zlib can claim gigabytes, and each would cost time to skip.
const MAX_INFLATED: u64 = 1 << 30;

/// Each commit of a pack and its parents.
pub(crate) type Parents = HashMap<ObjectId, Vec<ObjectId>>;

/// Reads the commits of the pack on `reader`, reading at most `budget`
/// bytes of it.
pub(crate) fn commit_parents(reader: impl Read, budget: u64) -> Result<Parents, ProtocolError> {
    let mut input = Counted {
        inner: BufReader::new(reader.take(budget)),
        position: 0,
    };
    let mut header = [0u8; 12];
    input.read_exact(&mut header)?;
    let version = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if &header[..4] != SIGNATURE || !(2..=3).contains(&version) {
        return Err(ProtocolError::Unexpected {
            context: "a pack header",
            line: super::error::escape(&header),
        });
    }
    let count = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    // Commits by where they start (offset deltas name their base so) and
    // by id (ref deltas do).
    let mut at_offset: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut offset_of: HashMap<ObjectId, u64> = HashMap::new();
    let mut parents = Parents::new();
    let mut inflated = 0u64;
    for _ in 0..count {
        let start = input.position;
        let (kind, size) = object_header(&mut input)?;
        let base = match kind {
            OBJ_OFS_DELTA => {
                let distance = ofs_distance(&mut input)?;
                Some(
                    start
                        .checked_sub(distance)
                        .ok_or_else(|| bad("a delta base before the pack"))?,
                )
            }
            OBJ_REF_DELTA => {
                let mut id = [0u8; 20];
                input.read_exact(&mut id)?;
                Some(
                    offset_of
                        .get(&ObjectId::from(id))
                        .copied()
                        .unwrap_or(u64::MAX),
                )
            }
            _ => None,
        };
        inflated = inflated.saturating_add(size);
        if inflated > MAX_INFLATED {
            return Err(bad("more inflated data than a probe needs"));
        }
        let keep = kind == OBJ_COMMIT || base.is_some_and(|b| at_offset.contains_key(&b));
        if keep && size > MAX_KEPT {
            return Err(bad("a commit larger than 16 MiB"));
        }
        let commit = match base {
            None if kind == OBJ_COMMIT => Some(inflate(&mut input, size)?),
            None => {
                skip(&mut input, size)?;
                None
            }
            Some(base) => match at_offset.get(&base) {
                Some(base) => Some(apply_delta(base, &inflate(&mut input, size)?)?),
                // A delta against a tree or a blob.
                None => {
                    skip(&mut input, size)?;
                    None
                }
            },
        };
        if let Some(data) = commit {
            let id = commit_id(&data);
            parents.insert(id, parent_lines(&data));
            offset_of.insert(id, start);
            at_offset.insert(start, data);
        }
    }
    Ok(parents)
}

/// A reader that knows how far into the pack it is.
struct Counted<R> {
    inner: R,
    position: u64,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.position += amount as u64;
        self.inner.consume(amount);
    }
}

fn bad(what: &'static str) -> ProtocolError {
    ProtocolError::Unexpected {
        context: "a pack",
        line: what.to_owned(),
    }
}

fn byte(input: &mut impl Read) -> Result<u8, ProtocolError> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    Ok(b[0])
}

/// The type (3 bits) and inflated size of the next object.
fn object_header(input: &mut impl Read) -> Result<(u8, u64), ProtocolError> {
    let mut c = byte(input)?;
    let kind = (c >> 4) & 0x7;
    let mut size = u64::from(c & 0x0f);
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = byte(input)?;
        if shift > 57 {
            return Err(bad("an object size that does not fit 64 bits"));
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    Ok((kind, size))
}

/// How far back an offset delta's base starts.
fn ofs_distance(input: &mut impl Read) -> Result<u64, ProtocolError> {
    let mut c = byte(input)?;
    let mut distance = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        c = byte(input)?;
        distance = distance
            .checked_add(1)
            .and_then(|d| d.checked_mul(128))
            .ok_or_else(|| bad("a delta offset that does not fit 64 bits"))?
            | u64::from(c & 0x7f);
    }
    Ok(distance)
}

fn inflate(input: &mut impl BufRead, size: u64) -> Result<Vec<u8>, ProtocolError> {
    let mut data = Vec::new();
    let mut decoder = ZlibDecoder::new(input);
    // One byte more than promised, to catch a stream that runs long.
    (&mut decoder).take(size + 1).read_to_end(&mut data)?;
    if data.len() as u64 != size {
        return Err(bad("an object whose size differs from its header"));
    }
    // The stream's end (and checksum) belong to this object.
    if decoder.read(&mut [0u8; 1])? != 0 {
        return Err(bad("an object longer than its header says"));
    }
    Ok(data)
}

fn skip(input: &mut impl BufRead, size: u64) -> Result<(), ProtocolError> {
    let mut decoder = ZlibDecoder::new(input);
    let copied = io::copy(&mut (&mut decoder).take(size + 1), &mut io::sink())?;
    if copied != size || decoder.read(&mut [0u8; 1])? != 0 {
        return Err(bad("an object whose size differs from its header"));
    }
    Ok(())
}

/// Applies delta instructions to `base`.
fn apply_delta(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut d = delta;
    let base_size = varint(&mut d)?;
    let size = varint(&mut d)?;
    if base_size != base.len() as u64 {
        return Err(bad("a delta for a base of another size"));
    }
    let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
    while let Some((&op, rest)) = d.split_first() {
        d = rest;
        if op & 0x80 != 0 {
            let mut field =
                |bits: u8, shift: u32, value: &mut usize| -> Result<(), ProtocolError> {
                    if op & bits != 0 {
                        let (&b, rest) = d.split_first().ok_or_else(|| bad("a truncated delta"))?;
                        d = rest;
                        *value |= usize::from(b) << shift;
                    }
                    Ok(())
                };
            let (mut offset, mut length) = (0usize, 0usize);
            for (i, bit) in [0x01, 0x02, 0x04, 0x08].into_iter().enumerate() {
                field(bit, 8 * i as u32, &mut offset)?;
            }
            for (i, bit) in [0x10, 0x20, 0x40].into_iter().enumerate() {
                field(bit, 8 * i as u32, &mut length)?;
            }
            if length == 0 {
                length = 0x10000;
            }
            let copy = offset
                .checked_add(length)
                .and_then(|end| base.get(offset..end))
                .ok_or_else(|| bad("a delta copying past its base"))?;
            out.extend_from_slice(copy);
        } else if op != 0 {
            let n = usize::from(op);
            let insert = d.get(..n).ok_or_else(|| bad("a truncated delta"))?;
            out.extend_from_slice(insert);
            d = &d[n..];
        } else {
            return Err(bad("a delta with the reserved instruction 0"));
        }
    }
    if out.len() as u64 != size {
        return Err(bad("a delta whose result differs from its size"));
    }
    Ok(out)
}

fn varint(d: &mut &[u8]) -> Result<u64, ProtocolError> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let (&b, rest) = d.split_first().ok_or_else(|| bad("a truncated delta"))?;
        *d = rest;
        if shift > 63 {
            return Err(bad("a delta size that does not fit 64 bits"));
        }
        value |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

fn commit_id(data: &[u8]) -> ObjectId {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(format!("commit {}\0", data.len()).as_bytes());
    context.update(data);
    let mut id = [0u8; 20];
    id.copy_from_slice(context.finish().as_ref());
    ObjectId::from(id)
}

/// The `parent` lines of a commit's header.
fn parent_lines(data: &[u8]) -> Vec<ObjectId> {
    data.split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .filter_map(|hex| ObjectId::from_hex(hex).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_pack_gives_every_commit_and_its_parents() {
        // `git pack-objects` of five commits with a merge, trees and blobs.
        let pack = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/corpus/commit_pack/five-commits-and-a-merge.pack"
        ))
        .unwrap();
        let parents = commit_parents(&pack[..], 1 << 20).unwrap();
        let id = |hex: &str| hex.parse::<ObjectId>().unwrap();
        assert_eq!(parents.len(), 5);
        assert_eq!(
            parents[&id("fbcd7662fd32e37e482ad89ed61e7bc6d5c48c72")],
            [
                id("c47f243abb5d82341ec6396e02bc9b22ad5f2a68"),
                id("5241e93b2805ea02f7a8327d5754276d014b23ae")
            ]
        );
        assert!(parents[&id("8c572fb97737aaff1f7ad103a81609e3b07c14c9")].is_empty());
        // A budget too small for it is an error, not a partial answer.
        assert!(commit_parents(&pack[..], 100).is_err());
    }

    #[test]
    fn delta_instructions_copy_and_insert() {
        let base = b"tree 1\nparent a\n\nhello";
        // base size 22, result size 10: copy 5 bytes at 17, insert "!!!!!".
        let delta = [
            22,
            10,
            0x80 | 0x01 | 0x10,
            17,
            5,
            5,
            b'!',
            b'!',
            b'!',
            b'!',
            b'!',
        ];
        assert_eq!(apply_delta(base, &delta).unwrap(), b"hello!!!!!");
    }

    #[test]
    fn hostile_deltas_are_errors_not_panics() {
        let base = b"abc";
        for delta in [
            &[3u8, 1, 0x80 | 0x01 | 0x10, 200, 1][..],
            &[3, 1, 0][..],
            &[3, 9, 5, b'x'][..],
            &[4, 1, 1, b'x'][..],
            &[3][..],
            &[0xff; 12][..],
        ] {
            assert!(apply_delta(base, delta).is_err(), "{delta:?}");
        }
    }

    #[test]
    fn garbage_is_refused_within_the_budget() {
        assert!(commit_parents(&b"PACK\0\0\0\x02\0\0\0\x05\xff"[..], 1 << 20).is_err());
        assert!(commit_parents(&b"NOPE\0\0\0\x02\0\0\0\0"[..], 1 << 20).is_err());
        // Nothing past the budget is read.
        let endless = io::repeat(0x9c);
        assert!(commit_parents(endless, 4096).is_err());
    }

    #[test]
    fn parents_come_from_the_header_only() {
        let commit = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
            parent 1111111111111111111111111111111111111111\n\
            parent 2222222222222222222222222222222222222222\n\
            author A <a@b> 0 +0000\n\nparent 3333333333333333333333333333333333333333\n";
        let parents = parent_lines(commit);
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[1].to_string(), "2".repeat(40));
    }
}

//! Reading the objects of a pack, and the commit graph inside a small one.
//!
//! The relay never looks inside the packs it streams. Two questions need
//! to, though. Is a destination tip that the source still has an ancestor
//! of the source's new tip (a fast-forward), or did the source rewrite that
//! history? The source answers it with a pack of the commits reachable from
//! the new tip but not from the old one (see `crate::mirror`), and
//! [`commit_parents`] reads that pack: every commit in it, with its parents.
//! And how can a history too large for one push be cut into pieces? That
//! is `super::graph`, which reads a much larger pack with bounded memory.
//!
//! Both sit on [`PackReader`], which walks a pack object by object: the
//! type-and-size header, the base of a delta, then the zlib data inflated
//! or skipped as the caller decides. Skipping still inflates (zlib streams
//! carry no length), into nothing, to find where the next object starts.
//! The whole read is bounded by a byte budget the caller gives, and the
//! inflated bytes by a second limit, so a server that answers with more
//! than the caller needs, or with a zlib bomb, is cut off.
//!
//! One more thing the relay does with whole packs: [`concatenate`] joins
//! small ones into one push (see `crate::mirror::batch`), which needs only
//! their headers and trailers.
//!
//! Format: `gitformat-pack(5)`: `PACK`, version, object count, then per
//! object a type-and-size header, an offset or id for deltas, and zlib
//! data; deltas are `gitformat-pack(5)`'s copy/insert instructions.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Take};

use flate2::{Decompress, FlushDecompress, Status};

use super::{ObjectId, ProtocolError};

pub(crate) const SIGNATURE: &[u8; 4] = b"PACK";
/// The largest commit or tag (or delta for one) kept in memory. Real
/// commits are a few hundred bytes; the biggest in the wild are a few
/// megabytes.
pub(crate) const MAX_KEPT: u64 = 16 << 20;
/// Inflated bytes a probe reads in all, trees and blobs included: a few
/// bytes of zlib can claim gigabytes, and each would cost time to skip.
const MAX_INFLATED: u64 = 1 << 30;

/// What an object in a pack is, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
    /// A delta against the object that starts at this pack offset.
    OfsDelta(u64),
    /// A delta against the object with this id.
    RefDelta(ObjectId),
}

/// The header of one object of a pack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// Where the object starts in the pack (what offset deltas name).
    pub(crate) start: u64,
    pub(crate) kind: Kind,
    /// The inflated size of its data (of the delta, for a delta).
    pub(crate) size: u64,
}

/// Walks the objects of a pack, reading no more than a byte budget.
///
/// [`next`](Self::next) gives each object's header; the caller then
/// [`inflate`](Self::inflate)s its data or leaves it, and the next call
/// skips what was left.
pub(crate) struct PackReader<R> {
    input: Counted<BufReader<Take<R>>>,
    budget: u64,
    remaining: u32,
    /// The size of the current object's data while it is unread.
    pending: Option<u64>,
    inflated: u64,
    max_inflated: u64,
    /// One zlib state for every object: a new one per object is a 40 KiB
    /// allocation each time, and, interleaved with what the caller keeps,
    /// those fragment the heap until it holds twice what is live.
    zlib: Decompress,
    buffer: Box<[u8; 8192]>,
}

impl<R: Read> PackReader<R> {
    /// Reads the pack header. `max_inflated` bounds the inflated bytes of
    /// every object read or skipped.
    pub(crate) fn new(reader: R, budget: u64, max_inflated: u64) -> Result<Self, ProtocolError> {
        let mut pack = PackReader {
            input: Counted {
                inner: BufReader::new(reader.take(budget)),
                position: 0,
            },
            budget,
            remaining: 0,
            pending: None,
            inflated: 0,
            max_inflated,
            zlib: Decompress::new(true),
            buffer: Box::new([0; 8192]),
        };
        let mut header = [0u8; HEADER];
        pack.read_exact(&mut header)?;
        pack.remaining = objects_in(&header)?;
        Ok(pack)
    }

    /// The next object's header, or `None` after the last one.
    pub(crate) fn next(&mut self) -> Result<Option<Entry>, ProtocolError> {
        if let Some(size) = self.pending.take() {
            self.skip(size)?;
        }
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let start = self.input.position;
        let (kind, size) = object_header(|| self.byte())?;
        let kind = match kind {
            1 => Kind::Commit,
            2 => Kind::Tree,
            3 => Kind::Blob,
            4 => Kind::Tag,
            6 => {
                let distance = ofs_distance(|| self.byte())?;
                let base = start
                    .checked_sub(distance)
                    .filter(|_| distance > 0)
                    .ok_or_else(|| bad("a delta base outside the pack"))?;
                Kind::OfsDelta(base)
            }
            7 => {
                let mut id = [0u8; 20];
                self.read_exact(&mut id)?;
                Kind::RefDelta(ObjectId::from(id))
            }
            _ => return Err(bad("an object of an unknown type")),
        };
        self.count_inflated(size)?;
        self.pending = Some(size);
        Ok(Some(Entry { start, kind, size }))
    }

    /// The inflated data of the object [`next`](Self::next) just gave,
    /// which the caller has checked is small enough to hold.
    pub(crate) fn inflate(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let size = self
            .pending
            .take()
            .ok_or_else(|| bad("an object inflated twice"))?;
        let mut data = Vec::with_capacity(size.min(1 << 16) as usize);
        let whole = self
            .inflate_into(size, |bytes| data.extend_from_slice(bytes))
            .map_err(|e| self.eof(e))?;
        if !whole {
            return Err(bad("an object whose size differs from its header"));
        }
        Ok(data)
    }

    fn skip(&mut self, size: u64) -> Result<(), ProtocolError> {
        if !self.inflate_into(size, |_| {}).map_err(|e| self.eof(e))? {
            return Err(bad("an object whose size differs from its header"));
        }
        Ok(())
    }

    /// Inflates one zlib stream, giving `out` its bytes; says whether it
    /// held exactly `size` bytes (see [`inflate_stream`]).
    fn inflate_into(&mut self, size: u64, mut out: impl FnMut(&[u8])) -> io::Result<bool> {
        let inflated = inflate_stream(
            &mut self.input,
            &mut self.zlib,
            &mut self.buffer[..],
            size,
            |_, made| {
                out(made);
                true
            },
        )?;
        Ok(inflated == Inflated::Whole)
    }

    fn count_inflated(&mut self, size: u64) -> Result<(), ProtocolError> {
        self.inflated = self.inflated.saturating_add(size);
        if self.inflated > self.max_inflated {
            return Err(bad("more inflated data than the reader allows"));
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ProtocolError> {
        self.input.read_exact(buf).map_err(|e| self.eof(e))
    }

    /// An end of input at the budget is the budget's doing, not the pack's.
    fn eof(&self, err: io::Error) -> ProtocolError {
        if err.kind() == io::ErrorKind::UnexpectedEof && self.input.position >= self.budget {
            ProtocolError::MessageTooLarge { limit: self.budget }
        } else {
            ProtocolError::from(err)
        }
    }

    fn byte(&mut self) -> Result<u8, ProtocolError> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }
}

/// How the zlib stream of one object ended (see [`inflate_stream`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inflated {
    /// It held the size its header promised.
    Whole,
    /// It held more, or less.
    WrongSize,
    /// The caller stopped it, half read.
    Stopped,
}

/// Inflates the zlib stream of one object of a pack from `input` with
/// `zlib`, through `buffer`, giving `each` the compressed bytes taken and
/// what they inflated to, a stretch at a time, until `each` says no more
/// ([`Inflated::Stopped`]). Stops as soon as the stream holds more than
/// `size` bytes, so one that runs long costs nothing past its promise.
/// The stream's end (and checksum) belong to the object, so they are read
/// too.
pub(crate) fn inflate_stream(
    input: &mut impl BufRead,
    zlib: &mut Decompress,
    buffer: &mut [u8],
    size: u64,
    mut each: impl FnMut(&[u8], &[u8]) -> bool,
) -> io::Result<Inflated> {
    zlib.reset(true);
    let mut produced = 0u64;
    loop {
        let taken = input.fill_buf()?;
        let at_end = taken.is_empty();
        let (before_in, before_out) = (zlib.total_in(), zlib.total_out());
        let flush = match at_end {
            true => FlushDecompress::Finish,
            false => FlushDecompress::None,
        };
        let status = zlib
            .decompress(taken, buffer, flush)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let used = (zlib.total_in() - before_in) as usize;
        let made = (zlib.total_out() - before_out) as usize;
        produced += made as u64;
        if produced > size {
            return Ok(Inflated::WrongSize);
        }
        if !each(&taken[..used], &buffer[..made]) {
            return Ok(Inflated::Stopped);
        }
        input.consume(used);
        if status == Status::StreamEnd {
            return Ok(match produced == size {
                true => Inflated::Whole,
                false => Inflated::WrongSize,
            });
        }
        if used == 0 && made == 0 {
            return Err(match at_end {
                true => io::ErrorKind::UnexpectedEof.into(),
                false => io::Error::new(io::ErrorKind::InvalidData, "a zlib stream that stalls"),
            });
        }
    }
}

/// Each commit of a pack and its parents.
pub(crate) type Parents = HashMap<ObjectId, Vec<ObjectId>>;

/// Reads the commits of the pack on `reader`, reading at most `budget`
/// bytes of it.
pub(crate) fn commit_parents(reader: impl Read, budget: u64) -> Result<Parents, ProtocolError> {
    let mut pack = PackReader::new(reader, budget, MAX_INFLATED)?;
    // Commits by where they start (offset deltas name their base so) and
    // by id (ref deltas do).
    let mut at_offset: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut offset_of: HashMap<ObjectId, u64> = HashMap::new();
    let mut parents = Parents::new();
    while let Some(entry) = pack.next()? {
        let base = match entry.kind {
            Kind::Commit => None,
            Kind::OfsDelta(base) => Some(base),
            Kind::RefDelta(id) => Some(offset_of.get(&id).copied().unwrap_or(u64::MAX)),
            // Trees, blobs and tags are skipped by the next call.
            Kind::Tree | Kind::Blob | Kind::Tag => continue,
        };
        let base = match base {
            Some(offset) => match at_offset.get(&offset) {
                Some(base) => Some(base),
                // A delta against a tree or a blob.
                None => continue,
            },
            None => None,
        };
        if entry.size > MAX_KEPT {
            return Err(bad("a commit larger than 16 MiB"));
        }
        let data = pack.inflate()?;
        let data = match base {
            Some(base) => apply_delta(base, &data)?,
            None => data,
        };
        let id = object_id("commit", &data);
        parents.insert(id, parent_lines(&data));
        offset_of.insert(id, entry.start);
        at_offset.insert(entry.start, data);
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

/// The type (3 bits) and inflated size of an object, from the header
/// whose bytes `byte` gives one at a time.
pub(crate) fn object_header(
    mut byte: impl FnMut() -> Result<u8, ProtocolError>,
) -> Result<(u8, u64), ProtocolError> {
    let mut c = byte()?;
    let kind = (c >> 4) & 0x7;
    let mut size = u64::from(c & 0x0f);
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = byte()?;
        if shift > 57 {
            return Err(bad("an object size that does not fit 64 bits"));
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    Ok((kind, size))
}

/// How far back an offset delta's base starts, from the bytes `byte`
/// gives one at a time.
pub(crate) fn ofs_distance(
    mut byte: impl FnMut() -> Result<u8, ProtocolError>,
) -> Result<u64, ProtocolError> {
    let mut c = byte()?;
    let mut distance = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        c = byte()?;
        distance = distance
            .checked_add(1)
            .and_then(|d| d.checked_mul(128))
            .ok_or_else(|| bad("a delta offset that does not fit 64 bits"))?
            | u64::from(c & 0x7f);
    }
    Ok(distance)
}

/// The objects a pack's header announces, once it is checked: the `PACK`
/// signature and version 2 or 3.
pub(crate) fn objects_in(header: &[u8; HEADER]) -> Result<u32, ProtocolError> {
    let version = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if &header[..4] != SIGNATURE || !(2..=3).contains(&version) {
        return Err(ProtocolError::Unexpected {
            context: "a pack header",
            line: super::error::escape(header),
        });
    }
    Ok(u32::from_be_bytes([
        header[8], header[9], header[10], header[11],
    ]))
}

pub(crate) fn bad(what: &'static str) -> ProtocolError {
    ProtocolError::Unexpected {
        context: "a pack",
        line: what.to_owned(),
    }
}

/// Applies delta instructions to `base`. The result is at most
/// [`MAX_KEPT`] bytes: a few bytes of copy instructions can otherwise ask
/// for terabytes.
pub(crate) fn apply_delta(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut d = delta;
    let base_size = varint(&mut d)?;
    let size = varint(&mut d)?;
    if base_size != base.len() as u64 {
        return Err(bad("a delta for a base of another size"));
    }
    if size > MAX_KEPT {
        return Err(bad("a delta result larger than 16 MiB"));
    }
    let size = size as usize;
    let mut out = Vec::with_capacity(size.min(1 << 20));
    while let Some((&op, rest)) = d.split_first() {
        d = rest;
        let piece = if op & 0x80 != 0 {
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
            offset
                .checked_add(length)
                .and_then(|end| base.get(offset..end))
                .ok_or_else(|| bad("a delta copying past its base"))?
        } else if op != 0 {
            let n = usize::from(op);
            let insert = d.get(..n).ok_or_else(|| bad("a truncated delta"))?;
            d = &d[n..];
            insert
        } else {
            return Err(bad("a delta with the reserved instruction 0"));
        };
        if out.len() + piece.len() > size {
            return Err(bad("a delta whose result differs from its size"));
        }
        out.extend_from_slice(piece);
    }
    if out.len() != size {
        return Err(bad("a delta whose result differs from its size"));
    }
    Ok(out)
}

/// The size of what `delta` makes, as its header says (without a base
/// to apply it to).
pub(crate) fn delta_result_size(delta: &[u8]) -> Result<u64, ProtocolError> {
    let mut d = delta;
    varint(&mut d)?;
    varint(&mut d)
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

/// The bytes of a pack's header (`PACK`, version, object count) and of its
/// SHA-1 trailer.
pub(crate) const HEADER: usize = 12;
pub(crate) const TRAILER: usize = 20;

/// One pack holding the objects of `first` and then of each of `rest`, in
/// their order: a header with the summed count, every pack's entries as
/// they are, and the trailer of the result. Entries need no rewriting: an
/// offset delta names its base by the distance back from itself, which
/// stays the same, and a ref delta by id, which any pack may resolve.
/// Packs that repeat an object would give a pack that repeats it too; the
/// caller's packs are disjoint (each was fetched with the ones before it
/// as haves).
///
/// `first`'s buffer is grown into the result, so joining packs held in
/// memory costs one copy of the others, whose buffers the caller keeps;
/// each pack's own trailer is taken as checked (by whoever read it from
/// the network).
pub(crate) fn concatenate(
    first: Vec<u8>,
    rest: &[impl AsRef<[u8]>],
) -> Result<Vec<u8>, ProtocolError> {
    fn objects(pack: &[u8]) -> Result<u32, ProtocolError> {
        if pack.len() < HEADER + TRAILER || &pack[..4] != SIGNATURE {
            return Err(bad("a pack too short or without its PACK signature"));
        }
        let version = u32::from_be_bytes(pack[4..8].try_into().expect("four bytes"));
        if version != 2 && version != 3 {
            return Err(bad("a pack of a version other than 2 or 3"));
        }
        Ok(u32::from_be_bytes(
            pack[8..12].try_into().expect("four bytes"),
        ))
    }
    let mut count = objects(&first)?;
    for pack in rest {
        count = count
            .checked_add(objects(pack.as_ref())?)
            .ok_or_else(|| bad("packs of more than 2^32 objects in all"))?;
    }
    let mut out = first;
    out.truncate(out.len() - TRAILER);
    for pack in rest {
        let pack = pack.as_ref();
        out.extend_from_slice(&pack[HEADER..pack.len() - TRAILER]);
    }
    out[8..12].copy_from_slice(&count.to_be_bytes());
    let sum = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &out);
    out.extend_from_slice(sum.as_ref());
    Ok(out)
}

/// The id of an object of type `kind` (`"commit"`, `"tag"`) holding `data`.
pub(crate) fn object_id(kind: &str, data: &[u8]) -> ObjectId {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(format!("{kind} {}\0", data.len()).as_bytes());
    context.update(data);
    let mut id = [0u8; 20];
    id.copy_from_slice(context.finish().as_ref());
    ObjectId::from(id)
}

/// The `parent` lines of a commit's header.
pub(crate) fn parent_lines(data: &[u8]) -> Vec<ObjectId> {
    header_lines(data)
        .filter_map(|line| line.strip_prefix(b"parent "))
        .filter_map(|hex| ObjectId::from_hex(hex).ok())
        .collect()
}

/// The lines of an object's header: up to the first empty line.
pub(crate) fn header_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_repo::Repo;

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
        assert!(matches!(
            commit_parents(&pack[..], 100),
            Err(ProtocolError::MessageTooLarge { limit: 100 })
        ));
        // A pack cut short is an error too.
        assert!(matches!(
            commit_parents(&pack[..pack.len() / 2], 1 << 20),
            Err(ProtocolError::UnexpectedEof | ProtocolError::Io(_))
        ));
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
            // Copies of more than the declared result, and more than any
            // commit: refused before they are made.
            &[3, 2, 0x90, 3, 0x90, 3][..],
            &[3, 0x80, 0x80, 0x80, 0x80, 0x01, 0x90, 3][..],
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

    #[test]
    fn packs_of_consecutive_histories_join_into_one_that_git_takes() {
        let repo = Repo::new();
        let one = repo.commit("a", "one\n", "one");
        let two = repo.commit("a", "one\ntwo\n", "two");
        repo.commit("b", "bee\n", "three");
        let four = repo.commit("a", "one\ntwo\nfour\n", "four");
        // What a batched push relays: the first increment, then the next
        // two as thin packs against what came before them.
        let first = repo.pack(&["--stdout"], &format!("{one}\n"));
        let second = repo.pack(&["--stdout", "--thin"], &format!("{two}\n^{one}\n"));
        let third = repo.pack(&["--stdout", "--thin"], &format!("{four}\n^{two}\n"));
        let counts: u32 = [&first, &second, &third]
            .iter()
            .map(|p| u32::from_be_bytes(p[8..12].try_into().unwrap()))
            .sum();

        let joined = concatenate(first, &[second, third]).unwrap();

        assert_eq!(
            u32::from_be_bytes(joined[8..12].try_into().unwrap()),
            counts
        );
        let target = Repo::new();
        target.with_input(&["index-pack", "--stdin", "--strict"], &joined);
        target.git(&["update-ref", "refs/heads/main", &four.to_string()]);
        target.git(&["fsck", "--strict", "--no-dangling"]);
        assert_eq!(
            target.git(&["rev-list", "--objects", "main"]),
            repo.git(&["rev-list", "--objects", "main"])
        );
    }

    #[test]
    fn one_pack_joined_is_itself() {
        let repo = Repo::new();
        let one = repo.commit("a", "one\n", "one");
        let pack = repo.pack(&["--stdout"], &format!("{one}\n"));
        let none: &[&[u8]] = &[];
        assert_eq!(concatenate(pack.clone(), none).unwrap(), pack);
        let empty = crate::protocol::push::EMPTY_PACK;
        assert_eq!(concatenate(pack.clone(), &[empty]).unwrap(), pack);
    }

    #[test]
    fn what_is_not_a_pack_is_not_joined() {
        let empty = crate::protocol::push::EMPTY_PACK.to_vec();
        let mut version_4 = empty.clone();
        version_4[7] = 4;
        let mut full = empty.clone();
        full[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        for (first, rest) in [
            (empty.clone(), vec![b"PACK".to_vec()]),
            (
                b"KCAP\0\0\0\x02\0\0\0\0aaaaaaaaaaaaaaaaaaaa".to_vec(),
                vec![],
            ),
            (version_4, vec![]),
            (full.clone(), vec![full]),
        ] {
            assert!(concatenate(first, &rest).is_err());
        }
    }
}

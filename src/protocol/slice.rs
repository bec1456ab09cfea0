//! Cutting a pack into smaller packs at object boundaries.
//!
//! A destination that caps the size of a push can still take a large pack
//! in pieces, if each piece is a pack of its own that git's `index-pack`
//! can resolve: whole objects, and deltas whose base is in the same piece
//! or already stored. A delta by object id (`REF_DELTA`) names its base
//! wherever it is; a delta by offset (`OFS_DELTA`) only within its own
//! pack. So the source is asked for a pack without offset deltas, and
//! [`Entries`] hands its objects over as the bytes they came in, one at a
//! time, for the caller to gather into pieces; [`frame_in_place`] frames those bytes
//! as a pack. git's `pack-objects` writes a base before its deltas, so the
//! base of a delta in one piece is in that piece or an earlier one, which
//! the destination stores first.
//!
//! A piece also needs a ref to update, since receive-pack takes a pack only
//! with a command: [`Marker`] is a commit of the empty tree, made here,
//! that goes into the piece with the tree and that a temporary ref can
//! name. It depends on nothing else, so the destination's connectivity
//! check is satisfied whatever the piece holds. (A destination that checks
//! every object's links on receipt, `receive.fsckObjects`, is not: the
//! first piece's commits name trees that come later.)
//!
//! Only the framing is read, as in [`super::pack::PackReader`]: each
//! object's header, and its zlib data inflated into nothing to find where
//! it ends (zlib streams carry no length). The pack's trailing checksum is
//! checked at the end ([`Entries::finish`]).

use std::io::{BufReader, Read, Write};

use flate2::{Compression, Decompress};

use super::pack::{
    bad, inflate_stream, object_header, objects_in, ofs_distance, Inflated, SIGNATURE,
};
use super::{ObjectId, ProtocolError};

pub(crate) use super::pack::{HEADER, TRAILER};

/// The kind of one object of the pack, as far as cutting it cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A whole object, or a delta against an object named by id: it may go
    /// into any piece.
    Free,
    /// A delta against the object this many bytes before it in the pack:
    /// the two must stay in one piece.
    Offset,
    /// An object of more bytes than the caller would hold: not copied, and
    /// the pack can be read no further.
    Oversized,
}

/// The objects of a pack, each as the bytes it came in.
pub(crate) struct Entries<R> {
    input: BufReader<R>,
    /// How many objects the header announced, and how many are left.
    objects: u32,
    remaining: u32,
    /// The pack read so far, for its checksum.
    sum: ring::digest::Context,
    /// One zlib state for every object (see `PackReader`).
    zlib: Decompress,
    scratch: Box<[u8; 8192]>,
    /// Whether an object was left half read ([`Framing::Oversized`]).
    stopped: bool,
}

impl<R: Read> Entries<R> {
    /// Reads the pack header.
    pub(crate) fn new(reader: R) -> Result<Self, ProtocolError> {
        let mut entries = Entries {
            input: BufReader::with_capacity(1 << 16, reader),
            objects: 0,
            remaining: 0,
            sum: ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            zlib: Decompress::new(true),
            scratch: Box::new([0; 8192]),
            stopped: false,
        };
        let mut header = [0u8; HEADER];
        entries.input.read_exact(&mut header)?;
        entries.sum.update(&header);
        entries.objects = objects_in(&header)?;
        entries.remaining = entries.objects;
        Ok(entries)
    }

    /// The objects the pack holds, as its header says.
    pub(crate) fn objects(&self) -> u32 {
        self.objects
    }

    /// Appends the next object's bytes to `out` and says how it is framed,
    /// or gives `None` after the last one. An object of more than `max`
    /// bytes is not held: [`Framing::Oversized`], and the reader is done.
    /// `out` is left as it was then and on an error.
    pub(crate) fn next_into(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<Option<Framing>, ProtocolError> {
        if self.stopped {
            return Err(bad("a pack read past an object too large to hold"));
        }
        if self.remaining == 0 {
            return Ok(None);
        }
        let start = out.len();
        let framing = self.copy_entry(out, start.saturating_add(max));
        match framing {
            Ok(Framing::Oversized) | Err(_) => {
                out.truncate(start);
                self.stopped = matches!(framing, Ok(Framing::Oversized));
            }
            Ok(_) => {
                self.sum.update(&out[start..]);
                self.remaining -= 1;
            }
        }
        framing.map(Some)
    }

    /// Copies one object to `out`; `Oversized` once `out` would pass
    /// `until` bytes.
    fn copy_entry(&mut self, out: &mut Vec<u8>, until: usize) -> Result<Framing, ProtocolError> {
        let (kind, size) = object_header(|| self.byte(out))?;
        let framing = match kind {
            1..=4 => Framing::Free,
            6 => {
                // The distance back to the base: kept as it came, not used.
                ofs_distance(|| self.byte(out))?;
                Framing::Offset
            }
            7 => {
                let mut id = [0u8; 20];
                self.input.read_exact(&mut id)?;
                out.extend_from_slice(&id);
                Framing::Free
            }
            _ => return Err(bad("an object of an unknown type")),
        };
        match self.copy_zlib(size, out, until)? {
            true => Ok(framing),
            false => Ok(Framing::Oversized),
        }
    }

    /// Copies one zlib stream to `out`, inflating it into nothing to find
    /// its end, and checks that it held exactly `size` bytes; `false` (and
    /// the stream left half read) once `out` would pass `until` bytes.
    fn copy_zlib(
        &mut self,
        size: u64,
        out: &mut Vec<u8>,
        until: usize,
    ) -> Result<bool, ProtocolError> {
        let copied = inflate_stream(
            &mut self.input,
            &mut self.zlib,
            &mut self.scratch[..],
            size,
            |taken, _| {
                let fits = out.len().saturating_add(taken.len()) <= until;
                if fits {
                    out.extend_from_slice(taken);
                }
                fits
            },
        )?;
        match copied {
            Inflated::Whole => Ok(true),
            Inflated::Stopped => Ok(false),
            Inflated::WrongSize => Err(bad("an object whose size differs from its header")),
        }
    }

    fn byte(&mut self, out: &mut Vec<u8>) -> Result<u8, ProtocolError> {
        let mut b = [0u8; 1];
        self.input.read_exact(&mut b)?;
        out.push(b[0]);
        Ok(b[0])
    }

    /// Reads the trailer after the last object and checks it against the
    /// pack read: a pack damaged on its way fails here, before the caller
    /// makes anything of its last piece.
    pub(crate) fn finish(mut self) -> Result<(), ProtocolError> {
        if self.remaining != 0 || self.stopped {
            return Err(bad("a pack that ends before its last object"));
        }
        let mut trailer = [0u8; TRAILER];
        self.input.read_exact(&mut trailer)?;
        if self.sum.finish().as_ref() != trailer {
            return Err(bad("a pack whose checksum does not match"));
        }
        // Nothing follows a pack: reading on to the end of the stream is
        // what surfaces an error the server sends after it (and lets the
        // connection serve the next request).
        let mut after = [0u8; 1];
        if self.input.read(&mut after)? != 0 {
            return Err(bad("data after the pack's checksum"));
        }
        Ok(())
    }
}

/// Frames a piece where its objects were read, without copying them:
/// `pack` is room for a header, then `objects` objects (see [`Entries`]).
/// Writes the header and gives what follows the objects: `marker`'s
/// objects and the trailer.
pub(crate) fn frame_in_place(pack: &mut [u8], objects: u32, marker: &Marker) -> Vec<u8> {
    pack[..4].copy_from_slice(SIGNATURE);
    pack[4..8].copy_from_slice(&2u32.to_be_bytes());
    pack[8..HEADER].copy_from_slice(&(objects + Marker::OBJECTS).to_be_bytes());
    let mut sum = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sum.update(pack);
    sum.update(&marker.entries);
    let mut rest = marker.entries.clone();
    rest.extend_from_slice(sum.finish().as_ref());
    rest
}

/// A commit of the empty tree, made to hold a piece of a pack on the
/// destination (see the module documentation): its id and its two pack
/// entries (the empty tree, then the commit).
pub(crate) struct Marker {
    pub(crate) commit: ObjectId,
    entries: Vec<u8>,
}

impl Marker {
    /// The objects a marker adds to a piece.
    pub(crate) const OBJECTS: u32 = 2;

    /// The most bytes a marker adds to a piece, with the pack's framing.
    pub(crate) const MAX_BYTES: u64 = 1024;

    /// A marker whose message says what it holds: `label`.
    pub(crate) fn new(label: &str) -> Marker {
        const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        // No date (the epoch), so that the same piece makes the same commit.
        let body = format!(
            "tree {EMPTY_TREE}\nauthor git-relay <git-relay@localhost> 0 +0000\n\
             committer git-relay <git-relay@localhost> 0 +0000\n\n{}\n",
            label.lines().next().unwrap_or_default()
        );
        let mut entries = Vec::new();
        whole_object(&mut entries, 2, b"");
        whole_object(&mut entries, 1, body.as_bytes());
        Marker {
            commit: super::pack::object_id("commit", body.as_bytes()),
            entries,
        }
    }
}

/// Appends the pack entry of a whole object of type `kind` (1 commit,
/// 2 tree) holding `data`.
fn whole_object(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    let mut size = data.len() as u64;
    let mut c = (kind << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(c | 0x80);
        c = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(c);
    let mut zlib = flate2::write::ZlibEncoder::new(out, Compression::default());
    zlib.write_all(data).expect("writing to memory");
    zlib.finish().expect("writing to memory");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_repo::Repo;

    /// Writes into `pack` (emptied first) a pack of `entries`, `objects` of
    /// them each as it was in the pack it came from (see [`Entries`]), then
    /// the objects of `marker`, framed with a header and trailer.
    fn piece_into(pack: &mut Vec<u8>, entries: &[u8], objects: u32, marker: &Marker) {
        pack.clear();
        pack.reserve(HEADER + entries.len() + marker.entries.len() + TRAILER);
        pack.resize(HEADER, 0);
        pack.extend_from_slice(entries);
        let rest = frame_in_place(pack, objects, marker);
        pack.extend_from_slice(&rest);
    }

    /// The objects of `pack` as [`Entries`] gives them.
    fn entries(pack: &[u8]) -> Result<Vec<(Framing, Vec<u8>)>, ProtocolError> {
        let mut reader = Entries::new(pack)?;
        let mut out = Vec::new();
        loop {
            let mut bytes = Vec::new();
            match reader.next_into(&mut bytes, usize::MAX)? {
                Some(framing) => out.push((framing, bytes)),
                None => break,
            }
        }
        reader.finish()?;
        Ok(out)
    }

    /// A repository of a few commits whose file changes a little each time
    /// (so that the pack holds deltas), and its pack without offset deltas.
    fn history() -> (Repo, Vec<u8>) {
        let repo = Repo::new();
        let mut text = String::new();
        for i in 0..20 {
            for line in 0..50 {
                text.push_str(&format!("line {line} of version {i}\n"));
            }
            repo.commit("file.txt", &text, &format!("version {i}"));
        }
        let pack = repo.pack(&["--stdout"], "HEAD\n");
        (repo, pack)
    }

    #[test]
    fn the_entries_of_a_pack_are_its_bytes_between_header_and_trailer() {
        let (_repo, pack) = history();
        let got = entries(&pack).unwrap();
        let objects = u32::from_be_bytes(pack[8..12].try_into().unwrap());
        assert_eq!(got.len(), objects as usize);
        let joined: Vec<u8> = got.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        assert_eq!(joined, pack[HEADER..pack.len() - TRAILER]);
        assert!(got.iter().all(|(f, _)| *f == Framing::Free));
    }

    #[test]
    fn pieces_of_a_pack_index_one_after_another_into_the_whole_history() {
        let (repo, pack) = history();
        let got = entries(&pack).unwrap();
        assert!(got.iter().any(|(_, b)| b[0] >> 4 & 7 == 7), "no delta");
        let target = Repo::new();
        // Three objects a piece: deltas land in other pieces than their
        // bases, which the destination resolves from what it stored.
        for (n, chunk) in got.chunks(3).enumerate() {
            let bytes: Vec<u8> = chunk.iter().flat_map(|(_, b)| b.iter().copied()).collect();
            let marker = Marker::new(&format!("piece {n}"));
            let mut piece = Vec::new();
            piece_into(&mut piece, &bytes, chunk.len() as u32, &marker);
            target.with_input(&["index-pack", "--stdin", "--fix-thin"], &piece);
            let marker = marker.commit.to_string();
            assert_eq!(target.git(&["cat-file", "-t", &marker]), "commit");
            target.git(&["fsck", "--strict", "--no-dangling", &marker]);
        }
        let head = repo.id("HEAD").to_string();
        target.git(&["rev-list", "--objects", "--quiet", &head]);
        target.git(&["fsck", "--strict", "--no-dangling"]);
    }

    #[test]
    fn a_damaged_pack_fails_and_never_panics() {
        let (_repo, pack) = history();
        // Truncated anywhere, or with one byte changed: an error, at the
        // latest from the checksum.
        for cut in [0, 5, HEADER, HEADER + 1, pack.len() / 2, pack.len() - 1] {
            assert!(entries(&pack[..cut]).is_err(), "cut at {cut}");
        }
        for at in (HEADER..pack.len()).step_by(97) {
            let mut bad = pack.clone();
            bad[at] ^= 0x20;
            assert!(entries(&bad).is_err(), "byte {at} changed");
        }
    }

    #[test]
    fn an_object_larger_than_the_caller_holds_is_not_copied() {
        let (_repo, pack) = history();
        let got = entries(&pack).unwrap();
        let largest = got.iter().map(|(_, b)| b.len()).max().unwrap();
        let mut reader = Entries::new(&pack[..]).unwrap();
        let mut held = Vec::new();
        loop {
            let before = held.len();
            match reader.next_into(&mut held, largest - 1).unwrap() {
                Some(Framing::Oversized) => {
                    assert_eq!(held.len(), before, "bytes of the object kept");
                    break;
                }
                Some(_) => assert!(held.len() - before < largest),
                None => panic!("the largest object went through"),
            }
        }
        assert!(reader.next_into(&mut held, usize::MAX).is_err());
        assert!(reader.finish().is_err());
    }

    #[test]
    fn anything_after_the_checksum_is_an_error() {
        let (_repo, mut pack) = history();
        assert!(entries(&pack).is_ok());
        pack.push(b'x');
        assert!(entries(&pack).is_err());
    }

    #[test]
    fn a_marker_is_the_same_commit_for_the_same_label() {
        assert_eq!(Marker::new("a").commit, Marker::new("a").commit);
        assert_ne!(Marker::new("a").commit, Marker::new("b").commit);
        let mut piece = Vec::new();
        piece_into(&mut piece, &[], 0, &Marker::new("a"));
        assert!(piece.len() as u64 <= Marker::MAX_BYTES);
    }
}

//! Entry points for fuzzing the parsers, one per target in `fuzz/`.
//!
//! They live in the library, not in the fuzz crate, so that the cargo-fuzz
//! targets and the plain `cargo test` regression run over `fuzz/corpus/`
//! (`fuzz_regressions`) exercise exactly the same code. Each one feeds
//! arbitrary bytes to the parsers as if a server had sent them, and checks a
//! few properties that must hold whatever the input: no panic (the fuzzer's
//! job), encoders and decoders agreeing, and the side-band reader agreeing
//! with a naive reference demultiplexer.
//!
//! Not part of the supported API.

use std::io::Read;

use crate::protocol::advertisement::{read_discovery, read_ls_refs, Discovery};
use crate::protocol::fetch::{read_v0_response, read_v2_response, V2FetchResponse};
use crate::protocol::push::read_report_status;
use crate::protocol::sideband::SidebandReader;
use crate::protocol::{PacketLineRef, PacketReader};

/// Reads pkt-lines to the end or the first error, checking that every line
/// re-encodes to the bytes it was read from.
pub fn pktline(data: &[u8]) {
    let mut reader = PacketReader::new(data);
    let mut consumed = 0;
    while let Ok(Some(line)) = reader.read_line() {
        let mut encoded = Vec::new();
        line.write_to(&mut encoded)
            .expect("a line that was read can be written");
        let original = data
            .get(consumed..consumed + encoded.len())
            .unwrap_or_default();
        // The length prefix may have been sent in upper case; we write lower.
        assert!(
            original.eq_ignore_ascii_case(&encoded) && original.get(4..) == encoded.get(4..),
            "re-encoding changed a line"
        );
        consumed += encoded.len();
        let _ = line.as_text();
    }
}

/// Demultiplexes with small, varying read sizes and compares with a
/// reference demultiplexer that collects whole packets.
pub fn sideband(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1) % 7) + 1;
    let mut progress = 0usize;
    let mut reader = SidebandReader::new(PacketReader::new(data), |p: &[u8]| progress += p.len());
    let mut out = Vec::new();
    let mut buf = [0u8; 8];
    let streamed = loop {
        match reader.read(buf.get_mut(..chunk).unwrap_or_default()) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(err) => break Err(err),
        }
    };
    let finished = reader.is_finished();
    let mut rest = reader.into_inner();
    if finished {
        while let Ok(Some(_)) = rest.read_line() {}
    }

    if let Some(expected) = reference_demux(data) {
        assert!(
            streamed.is_ok(),
            "reference accepted what the reader refused"
        );
        assert_eq!(out, expected, "reader and reference disagree");
    }
}

/// Channel 1 of a well-formed side-band stream, or `None`.
fn reference_demux(data: &[u8]) -> Option<Vec<u8>> {
    let mut reader = PacketReader::new(data);
    let mut out = Vec::new();
    loop {
        match reader.read_line().ok()?? {
            PacketLineRef::Flush | PacketLineRef::ResponseEnd => return Some(out),
            PacketLineRef::Data(payload) => match payload.split_first() {
                None => {}
                Some((1, rest)) => out.extend_from_slice(rest),
                Some((2, _)) => {}
                Some(_) => return None,
            },
            PacketLineRef::Delimiter => return None,
        }
    }
}

/// Runs every discovery parser over the input.
pub fn advertisement(data: &[u8]) {
    for service in ["git-upload-pack", "git-receive-pack"] {
        if let Ok(Discovery::V0 { refs, .. }) =
            read_discovery(&mut PacketReader::new(data), service, usize::MAX)
        {
            assert!(refs.iter().all(|r| !r.name.is_empty()));
        }
    }
    if let Ok(refs) = read_ls_refs(&mut PacketReader::new(data), usize::MAX) {
        assert!(refs.iter().all(|r| !r.name.contains(' ')));
    }
}

/// Runs both fetch response parsers, then drains the pack as the relay would.
pub fn fetch_response(data: &[u8]) {
    let mut reader = PacketReader::new(data);
    if let Ok(V2FetchResponse::Packfile(_)) = read_v2_response(&mut reader) {
        drain(reader);
    }
    for done in [false, true] {
        let mut reader = PacketReader::new(data);
        if read_v0_response(&mut reader, done).is_ok() && done {
            drain(reader);
        }
    }
}

/// Parses a report-status as sent plainly and as sent inside side-band.
pub fn report_status(data: &[u8]) {
    let _ = read_report_status(&mut PacketReader::new(data), usize::MAX);
    let mut sideband = SidebandReader::new(PacketReader::new(data), |_: &[u8]| {});
    let _ = read_report_status(&mut PacketReader::new(&mut sideband), usize::MAX);
}

/// Reads the commits of a pack, as the history probe does.
pub fn commit_pack(data: &[u8]) {
    let _ = crate::protocol::pack::commit_parents(data, 1 << 20);
}

/// Cuts a pack into its objects, as pushes in pieces do, checking that
/// the objects given are the pack's bytes between header and trailer, in
/// order, whenever the pack reads to its end.
pub fn pack_pieces(data: &[u8]) {
    use crate::protocol::slice::{Entries, Framing};

    let Ok(mut entries) = Entries::new(data) else {
        return;
    };
    let mut objects = Vec::new();
    let mut count = 0u32;
    loop {
        let before = objects.len();
        match entries.next_into(&mut objects, 1 << 20) {
            Ok(Some(Framing::Oversized)) => {
                assert_eq!(objects.len(), before, "bytes left of an object too large");
                assert!(entries.next_into(&mut objects, usize::MAX).is_err());
                return;
            }
            Ok(Some(_)) => count += 1,
            Ok(None) => break,
            Err(_) => {
                assert_eq!(objects.len(), before, "bytes left of an object that failed");
                return;
            }
        }
    }
    if entries.finish().is_ok() {
        assert_eq!(count, u32::from_be_bytes(data[8..12].try_into().unwrap()));
        assert_eq!(&data[12..12 + objects.len()], &objects[..]);
    }
}

/// Reads the commit graph of a pack, as batched pushes do: once to its end
/// (a tip it cannot hold) and once stopping at the first tree, checking
/// that every index and parent the graph gives is one it holds.
pub fn commit_graph(data: &[u8]) {
    use crate::protocol::graph::read_commit_graph;
    use crate::protocol::ObjectId;

    for tips in [&[ObjectId::ZERO][..], &[][..]] {
        let Ok(graph) = read_commit_graph(data, tips, 1 << 20) else {
            continue;
        };
        for commit in 0..graph.len() as u32 {
            let id = graph.id(commit);
            assert_eq!(graph.index(&id), Some(commit), "an id that is not found");
            assert!(graph
                .parents(commit)
                .iter()
                .all(|&p| (p as usize) < graph.len()));
            let _ = graph.peel(&id);
        }
    }
}

/// Reads the small blobs of a pack, as the LFS pointer scan does, checking
/// that each blob given is within the size asked for and has the id of its
/// content; then looks for the paths of those blobs in the same pack.
pub fn small_blobs(data: &[u8]) {
    use crate::protocol::blobs::{find_paths, read_small_blobs};
    use crate::protocol::pack::object_id;

    let mut found = std::collections::HashSet::new();
    let _ = read_small_blobs(data, 1 << 20, 1023, |id, blob| {
        assert!(blob.len() <= 1023, "a blob over the limit");
        assert_eq!(object_id("blob", blob), id, "a blob under another id");
        found.insert(id);
    });
    if let Ok(places) = find_paths(data, 1 << 20, &found) {
        assert!(
            places.keys().all(|id| found.contains(id)),
            "a path for a blob not asked for"
        );
    }
}

fn drain<R: Read>(reader: PacketReader<R>) {
    let mut sideband = SidebandReader::new(reader, |_: &[u8]| {});
    let mut sink = [0u8; 4096];
    while let Ok(1..) = sideband.read(&mut sink) {}
}

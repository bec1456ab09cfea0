//! The `webhook` fuzz corpus as a plain test, like the protocol's
//! (`protocol::fuzz_regressions`): every seed, then a deterministic
//! mutation loop over them, through the fuzz target's entry point.

use std::fs;
use std::path::Path;

use super::fuzz_targets;
use super::receive;

pub(super) fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/webhook");
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn the_corpus_is_received_as_named() {
    let seeds = seeds();
    assert!(seeds.len() >= 20);
    for (name, data) in seeds {
        fuzz_targets::webhook(&data);
        let (forge, headers, body) = fuzz_targets::split(&data).expect("a forge on line 1");
        assert!(name.starts_with(forge.name()), "{name} is for {forge}");
        let received = receive(forge, &fuzz_targets::auth(forge), &headers[..], body);
        if name.contains("refused") {
            assert!(received.is_err(), "{name}: {received:?}");
        } else {
            // Whoever edits a fixture learns the signature it needs.
            assert!(
                received.is_ok(),
                "{name}: {received:?}; the HMAC of its body is {}",
                fuzz_targets::hmac_hex(fuzz_targets::SECRET, body)
            );
        }
    }
}

#[test]
fn mutated_corpus_does_not_panic() {
    let seeds: Vec<Vec<u8>> = seeds().into_iter().map(|(_, d)| d).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const WORDS: [&[u8]; 12] = [
        b"\n",
        b"\n\n",
        b"\"",
        b"{",
        b"}",
        b"[",
        b"null",
        b":",
        b"sha256=",
        b"X-GitHub-Event: push\n",
        b"\"repository\":",
        b"\"href\":",
    ];
    for _ in 0..20_000 {
        let mut data = seeds[(next() as usize) % seeds.len()].clone();
        for _ in 0..=next() % 3 {
            let at = (next() as usize) % (data.len() + 1);
            match next() % 4 {
                0 if at < data.len() => data[at] ^= 1 << (next() % 8),
                1 => {
                    let end = (at + 1 + (next() as usize) % 8).min(data.len());
                    data.drain(at.min(end)..end);
                }
                2 => {
                    let word = WORDS[(next() as usize) % WORDS.len()];
                    data.splice(at..at, word.iter().copied());
                }
                _ => data.truncate(at),
            }
        }
        let outcome = std::panic::catch_unwind(|| fuzz_targets::webhook(&data));
        assert!(
            outcome.is_ok(),
            "panicked on {:?}",
            data.escape_ascii().to_string()
        );
    }
}

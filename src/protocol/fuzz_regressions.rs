//! The fuzz corpus as a plain test, so CI guards the parsers without a
//! nightly toolchain or cargo-fuzz.
//!
//! Every file under `fuzz/corpus/<target>/` (captured server output, plus
//! anything a fuzzing run found worth keeping) goes through the same entry
//! point as the cargo-fuzz target of that name. Then a small deterministic
//! mutation loop (xorshift, fixed seed, bounded in iterations and time)
//! derives new inputs from those files: far weaker than libFuzzer, but it
//! runs on every `cargo test` and catches a parser that panics on a slightly
//! broken version of real traffic.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::protocol::fuzz_targets;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 9] = [
    ("pktline", fuzz_targets::pktline),
    ("sideband", fuzz_targets::sideband),
    ("advertisement", fuzz_targets::advertisement),
    ("fetch_response", fuzz_targets::fetch_response),
    ("report_status", fuzz_targets::report_status),
    ("commit_pack", fuzz_targets::commit_pack),
    ("pack_pieces", fuzz_targets::pack_pieces),
    ("commit_graph", fuzz_targets::commit_graph),
    ("small_blobs", fuzz_targets::small_blobs),
];

const MUTATIONS: usize = 20_000;
const TIME_BUDGET: Duration = Duration::from_secs(20);

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            (path, data)
        })
        .collect()
}

#[test]
fn corpus_files_do_not_panic() {
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "no seeds for fuzz target {name}");
        for (path, data) in seeds {
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
        }
    }
}

/// Marsaglia's xorshift64: deterministic, so a failure reproduces (other
/// modules' mutation tests use it too).
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to the parsers, to make mutations hit the interesting
/// cases more often than random bytes would.
const DICTIONARY: &[&[u8]] = &[
    b"0000",
    b"0001",
    b"0002",
    b"0003",
    b"0004",
    b"fff0",
    b"fff1",
    b"ffff",
    b"\x01",
    b"\x02",
    b"\x03",
    b"\0",
    b"\n",
    b" ",
    b"ERR ",
    b"ACK ",
    b"NAK",
    b"ready",
    b"common",
    b"^{}",
    b"version 2",
    b"version 1",
    b"packfile",
    b"acknowledgments",
    b"shallow ",
    b"unpack ",
    b"ok ",
    b"ng ",
    b"option ",
    b"unborn",
    b"peeled:",
    b"symref-target:",
    b"capabilities^{}",
    b"# service=git-upload-pack",
    b"object-format=sha256",
    b"3d06390b8cfcc3636b12dd52f044eae8f1566458",
];

fn mutate(rng: &mut XorShift, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            2 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())];
                data.splice(at..at, word.iter().copied());
            }
            4 => data.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => {
                // Rewrite a length prefix somewhere plausible.
                let len = format!("{:04x}", rng.below(0x10000));
                let end = (at + 4).min(data.len());
                data.splice(at..end, len.bytes());
            }
        }
    }
    data
}

#[test]
fn mutated_corpus_does_not_panic() {
    let started = Instant::now();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let all: Vec<(Target, Vec<Vec<u8>>)> = TARGETS
        .iter()
        .map(|(name, target)| (*target, seeds(name).into_iter().map(|(_, d)| d).collect()))
        .collect();
    for i in 0..MUTATIONS {
        if started.elapsed() > TIME_BUDGET {
            eprintln!("mutation loop stopped by its time budget after {i} inputs");
            break;
        }
        let (target, seeds) = &all[i % all.len()];
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let data = mutate(&mut rng, input, other);
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(
            outcome.is_ok(),
            "iteration {i} panicked on input {:?}",
            data.escape_ascii().to_string()
        );
    }
}

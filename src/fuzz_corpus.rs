//! A fuzz target's corpus as plain `cargo test`s: the seeds under
//! `fuzz/corpus/<target>`, and a deterministic loop of small mutations over
//! them (bit flips, cuts, inserted protocol words, truncations), so every
//! test run covers some of what the fuzzer would, without a nightly
//! toolchain. `protocol::fuzz_regressions` has a richer loop of its own
//! (splices between seeds); the newer targets share this one.

use std::fs;
use std::panic::{catch_unwind, RefUnwindSafe};
use std::path::Path;

/// The files of `fuzz/corpus/<target>`, by name, in name order.
pub(crate) fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
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

/// Feeds `target` 20,000 mutations of the seeds of `corpus`, each one to
/// three edits, some inserting one of `words`; fails on the first panic,
/// quoting the input.
pub(crate) fn assert_mutations_do_not_panic(
    corpus: &str,
    words: &[&[u8]],
    target: impl Fn(&[u8]) + RefUnwindSafe,
) {
    let seeds: Vec<Vec<u8>> = seeds(corpus).into_iter().map(|(_, d)| d).collect();
    assert!(!seeds.is_empty(), "no seeds in fuzz/corpus/{corpus}");
    // xorshift64: the same inputs on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
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
                2 if !words.is_empty() => {
                    let word = words[(next() as usize) % words.len()];
                    data.splice(at..at, word.iter().copied());
                }
                _ => data.truncate(at),
            }
        }
        let outcome = catch_unwind(|| target(&data));
        assert!(
            outcome.is_ok(),
            "{corpus}: panicked on {:?}",
            data.escape_ascii().to_string()
        );
    }
}

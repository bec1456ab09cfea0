//! The `lfs_pointer` fuzz corpus as a plain test, like the protocol's
//! (`protocol::fuzz_regressions`): every seed, then a deterministic
//! mutation loop over them, through the fuzz target's entry point.

use std::fs;
use std::path::Path;

use super::fuzz_targets;
use super::pointer::Pointer;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/lfs_pointer");
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
fn the_corpus_parses_as_named() {
    let seeds = seeds();
    assert!(seeds.len() >= 5);
    for (name, data) in seeds {
        fuzz_targets::pointer(&data);
        let parsed = Pointer::parse(&data);
        assert_eq!(
            parsed.is_some(),
            !name.contains("not-a-pointer"),
            "{name}: {parsed:?}"
        );
    }
    // git-lfs's own output, for `hello lfs\n`.
    let real = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/lfs_pointer/git-lfs-3.3-pointer"),
    )
    .unwrap();
    let pointer = Pointer::parse(&real).unwrap();
    assert_eq!(
        pointer.oid.to_string(),
        "4859402c258b836d02e955d1090e29f586e58b2040504d68afec3d8d43757bba"
    );
    assert_eq!(pointer.size, 10);
    assert_eq!(pointer.encode().as_bytes(), &real[..]);
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
    const WORDS: [&[u8]; 8] = [
        b"\n",
        b" ",
        b"sha256:",
        b"ext-0-a ",
        b"size ",
        b"oid ",
        b"version https://git-lfs.github.com/spec/v1\n",
        b"0",
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
        let outcome = std::panic::catch_unwind(|| fuzz_targets::pointer(&data));
        assert!(
            outcome.is_ok(),
            "panicked on {:?}",
            data.escape_ascii().to_string()
        );
    }
}

//! The `lfs_pointer` fuzz corpus as a plain test, like the protocol's
//! (`protocol::fuzz_regressions`): every seed, then a deterministic
//! mutation loop over them, through the fuzz target's entry point.

use super::fuzz_targets;
use super::pointer::Pointer;

fn seeds() -> Vec<(String, Vec<u8>)> {
    crate::fuzz_corpus::seeds("lfs_pointer")
}

#[test]
fn the_corpus_parses_as_named() {
    let corpus = seeds();
    assert!(corpus.len() >= 5);
    for (name, data) in &corpus {
        fuzz_targets::pointer(data);
        let parsed = Pointer::parse(data);
        assert_eq!(
            parsed.is_some(),
            !name.contains("not-a-pointer"),
            "{name}: {parsed:?}"
        );
    }
    // git-lfs's own output, for `hello lfs\n`.
    let (_, real) = (corpus.into_iter())
        .find(|(name, _)| name == "git-lfs-3.3-pointer")
        .expect("the pointer git-lfs 3.3 wrote");
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
    crate::fuzz_corpus::assert_mutations_do_not_panic("lfs_pointer", &WORDS, |data| {
        fuzz_targets::pointer(data);
    });
}

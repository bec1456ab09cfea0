//! The entry point for fuzzing the LFS pointer parser (`fuzz/`'s
//! `lfs_pointer` target), also run over `fuzz/corpus/lfs_pointer/` by
//! `cargo test` (`fuzz_regressions`). Not part of the supported API.

use super::pointer::Pointer;

/// Parses arbitrary bytes as a pointer blob. Whatever parses must be
/// within the spec's size, and encode to a pointer that parses back to
/// itself; a blob in the canonical form must encode to itself.
pub fn pointer(data: &[u8]) {
    let Some(pointer) = Pointer::parse(data) else {
        return;
    };
    assert!(
        data.len() <= Pointer::MAX_BLOB_SIZE,
        "too long to be a pointer"
    );
    let encoded = pointer.encode();
    assert_eq!(
        Pointer::parse(encoded.as_bytes()),
        Some(pointer),
        "the encoding parses back"
    );
    let canonical = data.starts_with(b"version https://git-lfs.github.com/spec/v1\noid ");
    if canonical {
        assert_eq!(encoded.as_bytes(), data, "one encoding per pointer");
    }
}

//! Fuzzes the small-blob reader of the LFS pointer scan (a pack from the
//! source) and the path finder that follows it.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::small_blobs(data);
});

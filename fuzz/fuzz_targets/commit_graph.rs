//! Fuzzes the commit graph reader of batched pushes (a pack from the source).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::commit_graph(data);
});

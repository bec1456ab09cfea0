//! Fuzzes the Git LFS pointer parser: no panic, and what parses encodes back.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::lfs::fuzz_targets::pointer(data);
});

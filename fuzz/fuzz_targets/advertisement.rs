//! Fuzzes ref discovery (v0, v1, v2) and ls-refs answers.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::advertisement(data);
});

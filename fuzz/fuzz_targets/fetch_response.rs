//! Fuzzes v2 and v0 fetch responses, then the side-band pack after them.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::fetch_response(data);
});

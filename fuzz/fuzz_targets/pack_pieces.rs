//! Fuzzes the reader that cuts a source's pack into pieces for capped
//! destinations.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::pack_pieces(data);
});

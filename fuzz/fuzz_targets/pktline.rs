//! Fuzzes pkt-line framing: every line read must re-encode to the same bytes.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::pktline(data);
});

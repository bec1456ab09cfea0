//! Fuzzes side-band demultiplexing, checked against a reference demultiplexer.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::sideband(data);
});

//! Fuzzes receive-pack report-status, plain and inside side-band.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::protocol::fuzz_targets::report_status(data);
});

//! Fuzzes webhook verification and parsing (`git-relay serve`): no panic,
//! a valid proof always verifies, and the proof never changes the parse.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    git_relay::webhook_fuzz_targets::webhook(data);
});

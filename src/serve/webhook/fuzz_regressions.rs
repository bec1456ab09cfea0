//! The `webhook` fuzz corpus as a plain test, like the protocol's
//! (`protocol::fuzz_regressions`): every seed, then a deterministic
//! mutation loop over them, through the fuzz target's entry point.

use super::fuzz_targets;
use super::receive;

fn seeds() -> Vec<(String, Vec<u8>)> {
    crate::fuzz_corpus::seeds("webhook")
}

#[test]
fn the_corpus_is_received_as_named() {
    let seeds = seeds();
    assert!(seeds.len() >= 20);
    for (name, data) in seeds {
        fuzz_targets::webhook(&data);
        let (forge, headers, body) = fuzz_targets::split(&data).expect("a forge on line 1");
        assert!(name.starts_with(forge.name()), "{name} is for {forge}");
        let received = receive(forge, &fuzz_targets::auth(forge), &headers[..], body);
        if name.contains("refused") {
            assert!(received.is_err(), "{name}: {received:?}");
        } else {
            // Whoever edits a fixture learns the signature it needs.
            assert!(
                received.is_ok(),
                "{name}: {received:?}; the HMAC of its body is {}",
                fuzz_targets::hmac_hex(fuzz_targets::SECRET, body)
            );
        }
    }
}

#[test]
fn mutated_corpus_does_not_panic() {
    const WORDS: [&[u8]; 12] = [
        b"\n",
        b"\n\n",
        b"\"",
        b"{",
        b"}",
        b"[",
        b"null",
        b":",
        b"sha256=",
        b"X-GitHub-Event: push\n",
        b"\"repository\":",
        b"\"href\":",
    ];
    crate::fuzz_corpus::assert_mutations_do_not_panic("webhook", &WORDS, |data| {
        fuzz_targets::webhook(data);
    });
}

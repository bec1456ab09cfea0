//! The entry point for fuzzing webhook verification and parsing (`fuzz/`'s
//! `webhook` target), also run over `fuzz/corpus/webhook/` by `cargo test`
//! (`fuzz_regressions`), whose files are the unit tests' fixtures too.
//! Not part of the supported API.
//!
//! An input is a delivery as text: the forge's path segment on the first
//! line, then `Name: value` header lines, a blank line, and the body. The
//! secret is `SECRET` for every forge (Azure DevOps: basic auth as
//! `AZURE_USER` and the header `AZURE_HEADER`, both with it).

use super::{receive, Event, Forge, HookAuth, Refusal};

/// The secret, token or password of every fuzz input and fixture.
pub(crate) const SECRET: &str = "fuzz-secret";
/// The Azure DevOps basic auth username of the fixtures.
pub(crate) const AZURE_USER: &str = "relay";
/// The Azure DevOps custom header of the fixtures.
pub(crate) const AZURE_HEADER: &str = "X-Relay-Key";

/// Headers that carry a proof of the sender, for some forge.
const PROOF_HEADERS: [&str; 7] = [
    "X-Hub-Signature-256",
    "X-Hub-Signature",
    "X-Gitea-Signature",
    "X-Forgejo-Signature",
    "X-Gitlab-Token",
    "Authorization",
    AZURE_HEADER,
];

/// Receives arbitrary bytes as a delivery, twice: as sent, then with the
/// proof headers replaced by valid ones, so mutated bodies reach the
/// parsers too. Neither may panic; a verified delivery is never refused
/// as unsigned, and one that passed as sent parses the same re-signed.
pub fn webhook(data: &[u8]) {
    let Some((forge, headers, body)) = split(data) else {
        return;
    };
    let auth = auth(forge);
    let as_sent = receive(forge, &auth, &headers[..], body);
    let signed = sign(forge, &headers, body);
    let resigned = receive(forge, &auth, &signed[..], body);
    assert!(
        !matches!(resigned, Err(Refusal::Unsigned | Refusal::BadSignature)),
        "a valid proof refused: {resigned:?}"
    );
    if let Ok(delivery) = &as_sent {
        assert_eq!(
            resigned.as_ref(),
            Ok(delivery),
            "the proof changed the parse"
        );
    }
    if let Ok(delivery) = resigned {
        if let Event::Push(repository) = &delivery.event {
            assert!(!repository.urls.is_empty(), "a push without URLs");
            assert!(repository.urls.iter().all(|url| !url.is_empty()));
            assert!(!repository.name.chars().any(char::is_control));
        }
        if let Event::Other(name) = &delivery.event {
            assert!(!name.chars().any(char::is_control));
        }
    }
}

/// A delivery: the forge it came to, its headers and its body.
pub(crate) type Parts<'a> = (Forge, Vec<(String, String)>, &'a [u8]);

/// The forge, headers and body of a delivery written as text (see the
/// module doc); None if the first line names no forge.
pub(crate) fn split(data: &[u8]) -> Option<Parts<'_>> {
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &data[data.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let forge = Forge::from_path(lines.next()?.trim())?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some((forge, headers, body))
}

/// The proof every fuzz input and fixture is checked against.
pub(crate) fn auth(forge: Forge) -> HookAuth {
    match forge {
        Forge::GitHub | Forge::Bitbucket | Forge::Gitea => HookAuth::Hmac(SECRET.into()),
        Forge::GitLab => HookAuth::Token(SECRET.into()),
        Forge::AzureDevOps => HookAuth::Azure {
            basic: Some((AZURE_USER.into(), SECRET.into())),
            header: Some((AZURE_HEADER.into(), SECRET.into())),
        },
    }
}

/// `headers` without any proof, plus the valid proof of `body` under
/// [`auth`] for `forge`, the way the forge sends it.
pub(crate) fn sign(
    forge: Forge,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<(String, String)> {
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| {
            !PROOF_HEADERS
                .iter()
                .any(|proof| proof.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    let mac = hmac_hex(SECRET, body);
    let proof: Vec<(&str, String)> = match forge {
        Forge::GitHub => vec![("X-Hub-Signature-256", format!("sha256={mac}"))],
        Forge::Bitbucket => vec![("X-Hub-Signature", format!("sha256={mac}"))],
        Forge::Gitea => vec![("X-Gitea-Signature", mac)],
        Forge::GitLab => vec![("X-Gitlab-Token", SECRET.into())],
        Forge::AzureDevOps => {
            use base64::Engine as _;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{AZURE_USER}:{SECRET}"));
            vec![
                ("Authorization", format!("Basic {basic}")),
                (AZURE_HEADER, SECRET.into()),
            ]
        }
    };
    signed.extend(
        proof
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    signed
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret`.
pub(crate) fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

//! Webhook deliveries: who sent them, and what they say.
//!
//! `serve` queues a mirror when a forge reports that a repository's refs
//! changed. This module owns the two questions asked of every delivery
//! before that happens, in this order:
//!
//! 1. Did the configured sender send it? Each forge proves it its own way
//!    (an HMAC-SHA256 of the body, a shared token, basic auth or a custom
//!    header), and the proof is checked on the raw body, before a byte of
//!    it is parsed, with constant-time comparisons only.
//! 2. What does it say? A push (with every URL the payload gives for the
//!    repository, for matching against configured sources), a ping, or
//!    something else that needs no run; `parse` reads each forge's shape.
//!
//! [`Replays`] remembers recent delivery ids so a captured delivery cannot
//! be played again. Everything here is pure: headers come through the
//! [`Headers`] trait, so the HTTP server is the only part that knows HTTP,
//! and nothing panics whatever a request holds.

mod parse;

#[doc(hidden)]
pub mod fuzz_targets;

#[cfg(test)]
mod fuzz_regressions;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::hmac;

/// A forge whose webhooks serve accepts; the path segment of /hooks/<forge>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Forge {
    /// github.com and GitHub Enterprise Server.
    GitHub,
    /// gitlab.com and self-managed GitLab (project, group and system hooks).
    GitLab,
    /// Azure DevOps Services and Server service hooks ("Web Hooks" consumer).
    AzureDevOps,
    /// Bitbucket Cloud, and Bitbucket Server / Data Center.
    Bitbucket,
    /// Gitea and Forgejo.
    Gitea,
}

impl Forge {
    /// Every forge, in the order the docs list them.
    pub(crate) const ALL: [Forge; 5] = [
        Forge::GitHub,
        Forge::GitLab,
        Forge::AzureDevOps,
        Forge::Bitbucket,
        Forge::Gitea,
    ];

    /// The forge whose endpoint is /hooks/`segment`, exactly as [`Forge::name`] spells it.
    pub(crate) fn from_path(segment: &str) -> Option<Forge> {
        Forge::ALL.into_iter().find(|forge| forge.name() == segment)
    }

    /// The path segment, config section and metrics label of this forge.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::AzureDevOps => "azure-devops",
            Forge::Bitbucket => "bitbucket",
            Forge::Gitea => "gitea",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Request headers, looked up case-insensitively (the first of repeated ones).
pub(crate) trait Headers {
    /// The value of header `name`, if present and valid UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
}

impl Headers for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

impl Headers for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// How a forge's deliveries prove their sender (built by the config loader
/// from the secrets it read). Each forge takes one kind: GitHub, Bitbucket
/// and Gitea `Hmac`, GitLab `Token`, Azure DevOps `Azure`; any other pairing,
/// and an empty secret, refuse every delivery as unsigned.
#[derive(Clone)]
pub(crate) enum HookAuth {
    /// HMAC-SHA256 of the body with this secret (GitHub X-Hub-Signature-256
    /// "sha256=<hex>"; Bitbucket Cloud and Server X-Hub-Signature
    /// "sha256=<hex>"; Gitea X-Gitea-Signature / Forgejo X-Forgejo-Signature
    /// "<hex>", or X-Hub-Signature-256 from Gitea).
    Hmac(String),
    /// A shared token sent verbatim (GitLab X-Gitlab-Token).
    Token(String),
    /// Azure DevOps service hooks: basic auth (username, password) and/or a
    /// custom header (name, value); every part configured must match.
    Azure {
        /// The username and password of the subscription's basic auth.
        basic: Option<(String, String)>,
        /// A header the subscription sends ("HTTP headers" field), and its value.
        header: Option<(String, String)>,
    },
}

/// Names what is configured, never a secret.
impl fmt::Debug for HookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HIDDEN: &str = "<secret>";
        match self {
            HookAuth::Hmac(_) => f.debug_tuple("Hmac").field(&HIDDEN).finish(),
            HookAuth::Token(_) => f.debug_tuple("Token").field(&HIDDEN).finish(),
            HookAuth::Azure { basic, header } => f
                .debug_struct("Azure")
                .field("basic", &basic.as_ref().map(|(user, _)| (user, HIDDEN)))
                .field("header", &header.as_ref().map(|(name, _)| (name, HIDDEN)))
                .finish(),
        }
    }
}

/// Why a delivery was refused; `label()` is the metrics result label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// No proof of the sender at all (answer 401).
    #[error("the delivery carries no signature or token")]
    Unsigned,
    /// A proof that does not match: wrong secret, another body, not the
    /// expected algorithm, not hex (answer 401).
    #[error("the delivery's signature or token does not match")]
    BadSignature,
    /// Verified, but not a payload this forge sends (answer 400). The text
    /// is ours, never the request's bytes.
    #[error("malformed delivery: {0}")]
    Malformed(String),
}

impl Refusal {
    /// The `result` label of `webhooks_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature => "bad_signature",
            Refusal::Malformed(_) => "malformed",
        }
    }
}

/// What a verified delivery says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The forge's id of this delivery (for [`Replays`]), if it sends one.
    pub(crate) id: Option<String>,
    /// What happened.
    pub(crate) event: Event,
}

/// The kind of a delivery, as far as mirroring cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Refs of this repository changed (push, tag push, branch/tag created
    /// or deleted, Azure git.push, Bitbucket repo:push / repo:refs_changed,
    /// Gitea push/create/delete).
    Push(Repository),
    /// The forge checking the endpoint (GitHub ping, Bitbucket diagnostics:ping).
    Ping,
    /// Anything else (issue comments, ...): named, so the answer can say
    /// what was ignored. The name is printable and short.
    Other(String),
}

/// The repository a push event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Repository {
    /// Every URL the payload gives for the repository (https clone, web,
    /// ssh), for matching; never empty, no duplicates.
    pub(crate) urls: Vec<String>,
    /// A human name for logs ("acme/widgets"): printable and short.
    pub(crate) name: String,
}

/// Checks the sender, then parses. Verification happens on the raw body
/// BEFORE any JSON parsing: an unverified body is never looked at.
///
/// Generic so that a slice of pairs (tests) and `&dyn Headers` alike can
/// be passed: an unsized slice cannot be turned into a `&dyn` directly.
pub(crate) fn receive<H: Headers + ?Sized>(
    forge: Forge,
    auth: &HookAuth,
    headers: &H,
    body: &[u8],
) -> Result<Delivery, Refusal> {
    let headers: &dyn Headers = &Lookup(headers);
    verify(forge, auth, headers, body)?;
    parse::delivery(forge, headers, body)
}

/// Any [`Headers`], sized, so the rest of the module takes `&dyn Headers`.
struct Lookup<'a, H: ?Sized>(&'a H);

impl<H: Headers + ?Sized> Headers for Lookup<'_, H> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }
}

/// GitHub's header (and Gitea's third one): "sha256=<hex>".
const HUB_SIGNATURE_256: &str = "X-Hub-Signature-256";
/// Bitbucket's header (Cloud and Server): "sha256=<hex>". GitHub and Gitea
/// send a SHA-1 signature under this name; SHA-1 is not accepted.
const HUB_SIGNATURE: &str = "X-Hub-Signature";
/// Gitea's and Forgejo's headers: bare hex.
const GITEA_SIGNATURE: &str = "X-Gitea-Signature";
const FORGEJO_SIGNATURE: &str = "X-Forgejo-Signature";
const GITLAB_TOKEN: &str = "X-Gitlab-Token";
const AUTHORIZATION: &str = "Authorization";

fn verify(
    forge: Forge,
    auth: &HookAuth,
    headers: &dyn Headers,
    body: &[u8],
) -> Result<(), Refusal> {
    match (forge, auth) {
        // A secret everyone knows proves nothing: fail closed even if the
        // config loader let one through.
        (_, HookAuth::Hmac(secret) | HookAuth::Token(secret)) if secret.is_empty() => {
            Err(Refusal::Unsigned)
        }
        (Forge::GitHub, HookAuth::Hmac(secret)) => {
            let given = headers.header(HUB_SIGNATURE_256).ok_or(Refusal::Unsigned)?;
            check_hmac(secret, body, prefixed_hex(given)?)
        }
        (Forge::Bitbucket, HookAuth::Hmac(secret)) => {
            let given = headers.header(HUB_SIGNATURE).ok_or(Refusal::Unsigned)?;
            check_hmac(secret, body, prefixed_hex(given)?)
        }
        (Forge::Gitea, HookAuth::Hmac(secret)) => {
            let bare = headers
                .header(FORGEJO_SIGNATURE)
                .or_else(|| headers.header(GITEA_SIGNATURE));
            let tag = match bare {
                Some(given) => hex(given.trim()).ok_or(Refusal::BadSignature)?,
                None => {
                    let given = headers.header(HUB_SIGNATURE_256).ok_or(Refusal::Unsigned)?;
                    prefixed_hex(given)?
                }
            };
            check_hmac(secret, body, tag)
        }
        (Forge::GitLab, HookAuth::Token(token)) => {
            let given = headers.header(GITLAB_TOKEN).ok_or(Refusal::Unsigned)?;
            if same_secret(given.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(Refusal::BadSignature)
            }
        }
        (Forge::AzureDevOps, HookAuth::Azure { basic, header }) => {
            verify_azure(basic.as_ref(), header.as_ref(), headers)
        }
        // A forge paired with another forge's kind of proof: nothing it
        // sends can prove anything.
        _ => Err(Refusal::Unsigned),
    }
}

/// One configured part of an Azure DevOps proof.
#[derive(PartialEq)]
enum Part {
    Matches,
    Missing,
    Wrong,
}

fn verify_azure(
    basic: Option<&(String, String)>,
    header: Option<&(String, String)>,
    headers: &dyn Headers,
) -> Result<(), Refusal> {
    let mut parts = Vec::with_capacity(2);
    if let Some((username, password)) = basic {
        parts.push(if password.is_empty() {
            Part::Missing
        } else {
            match headers.header(AUTHORIZATION) {
                None => Part::Missing,
                Some(given) => {
                    let expected = format!("{username}:{password}");
                    match basic_credentials(given) {
                        Some(sent) if same_secret(&sent, expected.as_bytes()) => Part::Matches,
                        _ => Part::Wrong,
                    }
                }
            }
        });
    }
    if let Some((name, value)) = header {
        parts.push(if value.is_empty() || name.is_empty() {
            Part::Missing
        } else {
            match headers.header(name) {
                None => Part::Missing,
                Some(given) if same_secret(given.as_bytes(), value.as_bytes()) => Part::Matches,
                Some(_) => Part::Wrong,
            }
        });
    }
    if parts.contains(&Part::Wrong) {
        Err(Refusal::BadSignature)
    } else if parts.is_empty() || parts.contains(&Part::Missing) {
        Err(Refusal::Unsigned)
    } else {
        Ok(())
    }
}

/// The decoded `user:password` of a `Basic` Authorization header.
fn basic_credentials(header: &str) -> Option<Vec<u8>> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    lenient.decode(encoded.trim()).ok()
}

/// The tag of a "sha256=<hex>" header. Another algorithm (GitHub's and
/// Gitea's "sha1=") is a signature we do not accept, not a missing one.
fn prefixed_hex(given: &str) -> Result<Vec<u8>, Refusal> {
    let given = given.trim();
    let (algorithm, digest) = given.split_once('=').ok_or(Refusal::BadSignature)?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(Refusal::BadSignature);
    }
    hex(digest).ok_or(Refusal::BadSignature)
}

/// A SHA-256 digest in hex (either case), or nothing: LFS oids are the
/// same 64 digits.
fn hex(text: &str) -> Option<Vec<u8>> {
    let digest = crate::lfs::Sha256::from_hex(text.to_ascii_lowercase().as_bytes())?;
    Some(digest.0.to_vec())
}

fn check_hmac(secret: &str, body: &[u8], tag: Vec<u8>) -> Result<(), Refusal> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &tag).map_err(|_| Refusal::BadSignature)
}

/// Compares two secrets in constant time, whatever their lengths: both are
/// MACed under a key of this process and the tags compared with ring's
/// constant-time check, so neither the position of the first difference
/// nor a length mismatch shows in the time taken.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let random = ring::rand::SystemRandom::new();
        // Without randomness the comparison is still constant time; the
        // random key only keeps the tags themselves unpredictable.
        hmac::Key::generate(hmac::HMAC_SHA256, &random)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"git-relay serve"))
    });
    let tag = hmac::sign(key, expected);
    hmac::verify(key, given, tag.as_ref()).is_ok()
}

/// Delivery ids seen recently, to refuse replays: bounded, the oldest
/// forgotten first. Ids are kept as SHA-256 digests, so memory is the same
/// whatever a forge puts in its id.
pub(crate) struct Replays {
    capacity: usize,
    seen: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Replays {
    /// Remembers up to `capacity` ids (0: none, nothing is ever a replay).
    pub(crate) fn new(capacity: usize) -> Replays {
        Replays {
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// True the first time `id` is seen from `forge` (among the last
    /// `capacity` ids); false for a replay.
    pub(crate) fn first_time(&mut self, forge: Forge, id: &str) -> bool {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(forge.name().as_bytes());
        context.update(b"\n");
        context.update(id.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }

    /// How many ids are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

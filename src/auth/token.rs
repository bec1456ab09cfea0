//! Short-lived tokens that a side signs in with ([`TokenSource`]).
//!
//! Organizations move mirrors off long-lived personal tokens: Entra ID
//! hands out access tokens for an hour, a GitHub App installation token
//! lives an hour, a credential helper answers for a session. Such a side's
//! [`Credentials`](super::Credentials) hold a source instead of a secret,
//! and ask it for a token when none is held or the one held is about to
//! expire ([`Tokens`]), so a run longer than a token's life signs every
//! request with a valid one. Each token fetched passes the redactor before
//! it can reach any output.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::Scheme;

/// A token, and when it stops working.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) secret: String,
    /// `None`: until the run ends, as far as anyone said.
    pub(crate) expires: Option<SystemTime>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &super::MASK)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Signing in failed: what went wrong, who tried, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("signing in as {identity} failed: {message}")]
pub(crate) struct AuthError {
    /// Who signed in: "the Entra application <id> (tenant <id>)".
    pub(crate) identity: String,
    /// What went wrong (server text passes the redactor when printed).
    pub(crate) message: String,
    /// What the user can do about it.
    pub(crate) hint: Option<&'static str>,
}

/// Where a side's tokens come from: an identity platform, a GitHub App,
/// `git credential`.
pub(crate) trait TokenSource: Send + Sync {
    /// A new token.
    fn fetch(&self) -> Result<Token, AuthError>;
    /// How the token is sent: Basic with this username, or Bearer.
    fn scheme(&self) -> (Scheme, String);
    /// Who signs in, for messages.
    fn identity(&self) -> String;
    /// The server took a request signed with `token` (a credential helper
    /// is told, `git credential approve`).
    fn accepted(&self, _token: &str) {}
    /// The server refused `token` (HTTP 401; `git credential reject`).
    fn rejected(&self, _token: &str) {}
}

/// How long before its expiry a token is replaced: a request signed just
/// before must not arrive just after.
const EARLY: Duration = Duration::from_secs(120);

/// A source and the token it gave last, shared by every request of a side.
#[derive(Clone)]
pub(crate) struct Tokens {
    source: Arc<dyn TokenSource>,
    held: Arc<Mutex<Option<Token>>>,
}

impl Tokens {
    pub(crate) fn new(source: Arc<dyn TokenSource>) -> Tokens {
        Tokens {
            source,
            held: Arc::new(Mutex::new(None)),
        }
    }

    /// The token to sign the next request with: the one held, or a new
    /// one when it expires within [`EARLY`] (or was refused).
    pub(crate) fn current(&self) -> Result<String, AuthError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = held
            .as_ref()
            .is_some_and(|t| t.expires.is_none_or(|at| at > SystemTime::now() + EARLY));
        if !fresh {
            let token = self.source.fetch()?;
            super::register_secret(&token.secret);
            *held = Some(token);
        }
        Ok(held.as_ref().map(|t| t.secret.clone()).unwrap_or_default())
    }

    /// After a 401: the token held is dropped (the next request fetches
    /// another) and the source is told.
    pub(crate) fn refused(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = held.take() {
            self.source.rejected(&token.secret);
        }
    }

    /// After a request the server took.
    pub(crate) fn accepted(&self) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = held.as_ref() {
            self.source.accepted(&token.secret);
        }
    }

    pub(crate) fn scheme(&self) -> (Scheme, String) {
        self.source.scheme()
    }

    pub(crate) fn identity(&self) -> String {
        self.source.identity()
    }

    /// Whether both share one source (and so one token).
    pub(crate) fn same(&self, other: &Tokens) -> bool {
        Arc::ptr_eq(&self.held, &other.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Tokens `t1`, `t2`, ... living `life` each.
    struct Counter {
        n: AtomicU32,
        life: Duration,
        refused: Mutex<Vec<String>>,
    }

    impl TokenSource for Counter {
        fn fetch(&self) -> Result<Token, AuthError> {
            let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token {
                secret: format!("short-lived-token-{n}"),
                expires: Some(SystemTime::now() + self.life),
            })
        }
        fn scheme(&self) -> (Scheme, String) {
            (Scheme::Bearer, String::new())
        }
        fn identity(&self) -> String {
            "the counter".into()
        }
        fn rejected(&self, token: &str) {
            self.refused.lock().unwrap().push(token.to_owned());
        }
    }

    fn counter(life: Duration) -> Arc<Counter> {
        Arc::new(Counter {
            n: AtomicU32::new(0),
            life,
            refused: Mutex::new(Vec::new()),
        })
    }

    #[test]
    fn a_token_is_kept_until_it_nears_its_expiry() {
        let long = Tokens::new(counter(Duration::from_secs(3600)));
        assert_eq!(long.current().unwrap(), "short-lived-token-1");
        assert_eq!(long.current().unwrap(), "short-lived-token-1");
        // A token with less than two minutes left is replaced at once.
        let short = Tokens::new(counter(Duration::from_secs(60)));
        assert_eq!(short.current().unwrap(), "short-lived-token-1");
        assert_eq!(short.current().unwrap(), "short-lived-token-2");
    }

    #[test]
    fn a_refused_token_is_replaced_and_the_source_told() {
        let source = counter(Duration::from_secs(3600));
        let tokens = Tokens::new(source.clone());
        assert_eq!(tokens.current().unwrap(), "short-lived-token-1");
        tokens.refused();
        assert_eq!(tokens.current().unwrap(), "short-lived-token-2");
        assert_eq!(*source.refused.lock().unwrap(), ["short-lived-token-1"]);
    }

    #[test]
    fn every_token_fetched_is_redacted() {
        let tokens = Tokens::new(counter(Duration::from_secs(3600)));
        let token = tokens.current().unwrap();
        assert_eq!(super::super::redact(&format!("got {token}")), "got ***");
    }
}

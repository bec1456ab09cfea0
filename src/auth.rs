//! Credentials, and the redactor that keeps them out of every output.
//!
//! This module owns everything secret. It decides which username and token a
//! side uses (flags and environment first, then the URL's userinfo), how they
//! travel (an `Authorization` header, never a URL or a process argument), and
//! it keeps the process-wide list of secrets that [`redact`] removes from any
//! text before it reaches a terminal, a log, a JSON report or a panic message.
//!
//! Secrets are registered in every form in which they could leak: as given,
//! percent-encoded the way a URL would carry them, as `user:token`, and as the
//! base64 that a Basic `Authorization` header contains. A server that echoes
//! our request back in an error message therefore cannot make us print it.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// What replaces a secret in output.
pub const MASK: &str = "***";

/// The userinfo percent-encode set of the WHATWG URL standard: what a
/// credential must be encoded with to travel inside `https://user:pass@host`.
pub const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'|')
    .add(b'%');

/// How credentials are presented to a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Basic base64(user:token)`: personal access tokens on
    /// every forge.
    #[default]
    Basic,
    /// `Authorization: Bearer token`: OAuth, Entra ID and the pipeline's
    /// `System.AccessToken`.
    Bearer,
}

/// A username and secret for one side of a relay.
///
/// `Debug` never shows the secret, so a credential can sit inside any
/// structure that is logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    secret: String,
    scheme: Scheme,
}

/// Where one side's credentials may come from, before they are resolved.
#[derive(Clone, Debug, Default)]
pub struct CredentialSources<'a> {
    /// `--source-username` / `--dest-username` or their environment variable.
    pub username: Option<&'a str>,
    /// `--source-token` / `--dest-token` or their environment variable.
    pub token: Option<&'a str>,
    /// The username of the URL's userinfo, percent-decoded.
    pub url_username: Option<&'a str>,
    /// The password of the URL's userinfo, percent-decoded.
    pub url_password: Option<&'a str>,
    /// Basic or Bearer.
    pub scheme: Scheme,
    /// The username to send with a bare token when nothing names one.
    pub default_username: &'a str,
}

impl Credentials {
    /// Credentials sent as HTTP Basic.
    pub fn basic(username: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            secret: secret.into(),
            scheme: Scheme::Basic,
        }
    }

    /// A token sent as `Authorization: Bearer`.
    pub fn bearer(token: impl Into<String>) -> Credentials {
        Credentials {
            username: String::new(),
            secret: token.into(),
            scheme: Scheme::Bearer,
        }
    }

    /// Decides one side's credentials and registers every form of the
    /// secret with the redactor.
    ///
    /// A token given by flag or environment wins over a password in the URL.
    /// The username is, in order: the one named explicitly; the part of the
    /// token before its first `:` (the `git-user:1//xyz` form Google Cloud
    /// Source Repositories hands out, and the `user:password` form users of
    /// the old mirror task type into the token field); the URL's user (so
    /// `https://org@dev.azure.com/...` keeps working); the default.
    ///
    /// The token is split at `:` only for Basic and only when no username is
    /// named. Naming one, even the empty one (`--source-username ''`, which
    /// then stands for "the URL's user or the default"), sends the token
    /// whole.
    pub fn resolve(sources: &CredentialSources<'_>) -> Option<Credentials> {
        let token = sources.token.filter(|t| !t.is_empty());
        let creds = match (token, sources.url_password) {
            (Some(token), _) => {
                let fallback = sources.url_username.unwrap_or(sources.default_username);
                let (username, secret) = match sources.username {
                    Some("") => (fallback, token),
                    Some(user) => (user, token),
                    None => match token.split_once(':') {
                        Some((user, secret)) if sources.scheme == Scheme::Basic => (user, secret),
                        _ => (fallback, token),
                    },
                };
                if token.contains(':') {
                    // The whole token is secret too, not only its second half.
                    register_secret(token);
                }
                Credentials {
                    username: username.to_owned(),
                    secret: secret.to_owned(),
                    scheme: sources.scheme,
                }
            }
            (None, Some(password)) => Credentials {
                username: sources
                    .username
                    .filter(|u| !u.is_empty())
                    .or(sources.url_username)
                    .unwrap_or(sources.default_username)
                    .to_owned(),
                secret: password.to_owned(),
                scheme: sources.scheme,
            },
            (None, None) => return None,
        };
        creds.register();
        Some(creds)
    }

    /// The username sent with Basic authentication.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// How the credentials are presented.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The value of the `Authorization` header.
    pub fn authorization(&self) -> String {
        match self.scheme {
            Scheme::Basic => format!("Basic {}", basic_token(&self.username, &self.secret)),
            Scheme::Bearer => format!("Bearer {}", self.secret),
        }
    }

    /// Registers the secret and every derived form with the redactor.
    pub fn register(&self) {
        register_secret(&self.secret);
        if self.scheme == Scheme::Basic {
            let pair = format!("{}:{}", self.username, self.secret);
            register_literal(&basic_token(&self.username, &self.secret));
            register_literal(&pair);
        }
    }

    /// Every string that [`register`](Self::register) hides; Azure Pipelines
    /// task mode hands each one to `##vso[task.setsecret]`.
    pub fn secret_forms(&self) -> Vec<String> {
        let mut forms = derived_forms(&self.secret);
        if self.scheme == Scheme::Basic {
            forms.push(basic_token(&self.username, &self.secret));
            forms.push(format!("{}:{}", self.username, self.secret));
        }
        forms.sort();
        forms.dedup();
        forms
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &MASK)
            .field("scheme", &self.scheme)
            .finish()
    }
}

fn basic_token(username: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{secret}"))
}

/// The forms in which a secret could appear in text we did not write: as
/// given, percent-encoded (upper- and lower-case hex, userinfo set and the
/// stricter set), and form-encoded.
fn derived_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for set in [USERINFO, NON_ALPHANUMERIC] {
        let encoded = utf8_percent_encode(secret, set).to_string();
        forms.push(lowercase_hex_escapes(&encoded));
        forms.push(encoded.replace("%20", "+"));
        forms.push(encoded);
    }
    forms.sort();
    forms.dedup();
    forms
}

fn lowercase_hex_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut escape = 0;
    for c in encoded.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret and the forms derived from it. Empty strings are
/// ignored: there is nothing to hide.
pub fn register_secret(secret: &str) {
    for form in derived_forms(secret) {
        register_literal(&form);
    }
}

/// Registers exactly this string, no derived forms.
pub fn register_literal(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_owned());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }
}

/// Returns `text` with every registered secret replaced by [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(token: Option<&'a str>, username: Option<&'a str>) -> CredentialSources<'a> {
        CredentialSources {
            token,
            username,
            default_username: "git",
            ..Default::default()
        }
    }

    #[test]
    fn token_with_colon_names_the_user() {
        let c = Credentials::resolve(&sources(Some("git-user:1//xyz"), None)).unwrap();
        assert_eq!(c.username(), "git-user");
        assert_eq!(c.secret, "1//xyz");
    }

    #[test]
    fn explicit_username_keeps_the_whole_token() {
        let c = Credentials::resolve(&sources(Some("a:b"), Some("me"))).unwrap();
        assert_eq!((c.username(), c.secret.as_str()), ("me", "a:b"));
    }

    #[test]
    fn an_empty_username_sends_a_colon_token_whole_with_the_default_user() {
        let c = Credentials::resolve(&sources(Some("a:b/c"), Some(""))).unwrap();
        assert_eq!((c.username(), c.secret.as_str()), ("git", "a:b/c"));
        let mut s = sources(Some("a:b"), Some(""));
        s.url_username = Some("org");
        let c = Credentials::resolve(&s).unwrap();
        assert_eq!((c.username(), c.secret.as_str()), ("org", "a:b"));
    }

    #[test]
    fn a_bearer_token_is_never_split() {
        let mut s = sources(Some("a:b"), None);
        s.scheme = Scheme::Bearer;
        let c = Credentials::resolve(&s).unwrap();
        assert_eq!(c.authorization(), "Bearer a:b");
    }

    #[test]
    fn url_user_is_used_with_a_bare_token() {
        let mut s = sources(Some("tok"), None);
        s.url_username = Some("org");
        let c = Credentials::resolve(&s).unwrap();
        assert_eq!(c.username(), "org");
    }

    #[test]
    fn url_password_is_used_without_a_token() {
        let mut s = sources(None, None);
        s.url_username = Some("u");
        s.url_password = Some("p/ss");
        let c = Credentials::resolve(&s).unwrap();
        assert_eq!((c.username(), c.secret.as_str()), ("u", "p/ss"));
    }

    #[test]
    fn no_credentials_anywhere() {
        assert!(Credentials::resolve(&sources(None, None)).is_none());
    }

    #[test]
    fn every_form_is_redacted() {
        let secret = "t/k@n:%#+ ü-redact-test";
        let c = Credentials::basic("user-redact-test", secret);
        c.register();
        let forms = [
            secret.to_owned(),
            utf8_percent_encode(secret, USERINFO).to_string(),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            c.authorization(),
            format!("user-redact-test:{secret}"),
        ];
        for form in forms {
            let text = format!("before {form} after");
            let red = redact(&text);
            assert!(!red.contains(secret), "{red}");
            assert!(
                red.starts_with("before ") && red.ends_with(" after"),
                "{red}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = Credentials::bearer("bearer-debug-secret");
        assert!(!format!("{c:?}").contains("bearer-debug-secret"));
        assert_eq!(c.authorization(), "Bearer bearer-debug-secret");
    }
}

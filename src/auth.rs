//! Credentials, and the redactor that keeps them out of every output.
//!
//! This module owns everything secret. It decides which username and token a
//! side uses (flags and environment first, then the URL's userinfo), how they
//! travel (an `Authorization` header, never a URL or a process argument), and
//! it keeps the process-wide list of secrets that `redact` removes from any
//! text before it reaches a terminal, a log, a JSON report or a panic message.
//!
//! Secrets are registered in every form in which they could leak: as given,
//! percent-encoded the way a URL would carry them, as `user:token`, and as the
//! base64 that a Basic `Authorization` header contains. A server that echoes
//! our request back in an error message therefore cannot make us print it.

pub(crate) mod entra;
pub(crate) mod github_app;
pub(crate) mod helper;
mod token;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// What replaces a secret in output.
pub(crate) const MASK: &str = "***";

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
pub(crate) enum Scheme {
    /// `Authorization: Basic base64(user:token)`: personal access tokens on
    /// every forge.
    #[default]
    Basic,
    /// `Authorization: Bearer token`: OAuth, Entra ID and the pipeline's
    /// `System.AccessToken`.
    Bearer,
}

pub(crate) use token::{AuthError, Token, TokenSource};

/// A username and secret for one side of a relay, or a source of
/// short-lived tokens ([`TokenSource`]) asked as requests need them.
///
/// `Debug` never shows the secret, so a credential can sit inside any
/// structure that is logged.
#[derive(Clone)]
pub(crate) struct Credentials {
    username: String,
    secret: String,
    scheme: Scheme,
    tokens: Option<token::Tokens>,
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Credentials) -> bool {
        let same_source = match (&self.tokens, &other.tokens) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same(b),
            _ => false,
        };
        same_source
            && (self.username == other.username)
            && (self.secret == other.secret)
            && (self.scheme == other.scheme)
    }
}

impl Eq for Credentials {}

/// Where one side's credentials may come from, before they are resolved.
#[derive(Clone, Debug, Default)]
pub(crate) struct CredentialSources<'a> {
    /// `--source-username` / `--dest-username` or their environment variable.
    pub(crate) username: Option<&'a str>,
    /// `--source-token` / `--dest-token` or their environment variable.
    pub(crate) token: Option<&'a str>,
    /// The username of the URL's userinfo, percent-decoded.
    pub(crate) url_username: Option<&'a str>,
    /// The password of the URL's userinfo, percent-decoded.
    pub(crate) url_password: Option<&'a str>,
    /// Basic or Bearer.
    pub(crate) scheme: Scheme,
    /// The username to send with a bare token when nothing names one.
    pub(crate) default_username: &'a str,
}

impl Credentials {
    /// Credentials sent as HTTP Basic.
    pub(crate) fn basic(username: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            secret: secret.into(),
            scheme: Scheme::Basic,
            tokens: None,
        }
    }

    /// Credentials whose tokens come from `source`, fetched when a request
    /// needs one and none is held that lives long enough.
    pub(crate) fn from_source(source: Arc<dyn TokenSource>) -> Credentials {
        let tokens = token::Tokens::new(source);
        let (scheme, username) = tokens.scheme();
        Credentials {
            username,
            secret: String::new(),
            scheme,
            tokens: Some(tokens),
        }
    }

    /// A token sent as `Authorization: Bearer`.
    pub(crate) fn bearer(token: impl Into<String>) -> Credentials {
        Credentials {
            username: String::new(),
            secret: token.into(),
            scheme: Scheme::Bearer,
            tokens: None,
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
    pub(crate) fn resolve(sources: &CredentialSources<'_>) -> Option<Credentials> {
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
                    // The whole token is secret too, not only its second
                    // half; a user named in it is public, as anywhere.
                    match token
                        .strip_prefix(username)
                        .and_then(|t| t.strip_prefix(':'))
                    {
                        Some(rest) if rest == secret => register_pair(username, secret),
                        _ => register_secret(token),
                    }
                }
                Credentials {
                    username: username.to_owned(),
                    secret: secret.to_owned(),
                    scheme: sources.scheme,
                    tokens: None,
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
                tokens: None,
            },
            (None, None) => return None,
        };
        creds.register();
        Some(creds)
    }

    /// The username sent with Basic authentication.
    #[cfg(test)]
    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    /// The value of the `Authorization` header for the next request: a
    /// fresh token's where they come from a source.
    pub(crate) fn header(&self) -> Result<String, AuthError> {
        let fetched;
        let secret = match &self.tokens {
            Some(tokens) => {
                fetched = tokens.current()?;
                &fetched
            }
            None => &self.secret,
        };
        Ok(match self.scheme {
            Scheme::Basic => {
                // A source may learn its user name with its token (a
                // credential helper answers both).
                let username = match &self.tokens {
                    Some(tokens) => Cow::Owned(tokens.scheme().1),
                    None => Cow::Borrowed(self.username.as_str()),
                };
                let header = basic_token(&username, secret);
                if self.tokens.is_some() {
                    register_literal(&header);
                }
                format!("Basic {header}")
            }
            Scheme::Bearer => format!("Bearer {secret}"),
        })
    }

    /// The server refused the credentials (HTTP 401): a token from a
    /// source is dropped, so the next request (a retry) gets another.
    pub(crate) fn refused(&self) {
        if let Some(tokens) = &self.tokens {
            tokens.refused();
        }
    }

    /// The server took a request signed with them.
    pub(crate) fn accepted(&self) {
        if let Some(tokens) = &self.tokens {
            tokens.accepted();
        }
    }

    /// Who signs in, where tokens come from a source ("the Entra
    /// application ..."), for messages.
    pub(crate) fn identity(&self) -> Option<String> {
        self.tokens.as_ref().map(token::Tokens::identity)
    }

    /// Registers the secret and every derived form with the redactor.
    pub(crate) fn register(&self) {
        register_secret(&self.secret);
        if self.scheme == Scheme::Basic {
            register_literal(&basic_token(&self.username, &self.secret));
            register_pair(&self.username, &self.secret);
        }
    }

    /// Every string that [`register`](Self::register) hides; Azure Pipelines
    /// task mode hands each one to `##vso[task.setsecret]`.
    pub(crate) fn secret_forms(&self) -> Vec<String> {
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
/// stricter set), form-encoded, and inside a JSON string (a forge API that
/// quotes our request back escapes `"`, `\\` and control characters, and
/// some escape `/` too).
fn derived_forms(secret: &str) -> Vec<String> {
    let mut forms = encodings(secret);
    forms.sort();
    forms.dedup();
    forms
}

/// The forms of [`derived_forms`], one per encoding, always in the same
/// order: encodings work character by character, so the form of `a` is a
/// prefix of the form of `a + b`, at the same index.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if let Ok(quoted) = serde_json::to_string(secret) {
        let json = quoted[1..quoted.len() - 1].to_owned();
        forms.push(json.replace('/', "\\/"));
        forms.push(json);
    }
    for set in [USERINFO, NON_ALPHANUMERIC] {
        let encoded = utf8_percent_encode(secret, set).to_string();
        forms.push(lowercase_hex_escapes(&encoded));
        forms.push(encoded.replace("%20", "+"));
        forms.push(encoded);
    }
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

/// A registered form and how many of its first bytes are public (the
/// `user:` of `user:secret`): a start of it is masked only once it holds
/// some of the secret, so a user name alone is never masked.
struct Secret {
    text: String,
    public: usize,
}

static SECRETS: RwLock<Vec<Secret>> = RwLock::new(Vec::new());

/// Registers a secret and the forms derived from it. Empty strings are
/// ignored: there is nothing to hide.
pub(crate) fn register_secret(secret: &str) {
    for form in derived_forms(secret) {
        register_literal(&form);
    }
}

/// Registers `user:secret` in every form, its `user:` part public.
fn register_pair(user: &str, secret: &str) {
    let prefixes = encodings(&format!("{user}:"));
    for (form, prefix) in encodings(&format!("{user}:{secret}")).iter().zip(prefixes) {
        register(form, prefix.len());
    }
}

/// Registers exactly this string, no derived forms.
pub(crate) fn register_literal(secret: &str) {
    register(secret, 0);
}

/// Told of every form newly registered (see [`on_new_secret`]).
static ON_NEW_SECRET: OnceLock<fn(&str)> = OnceLock::new();

/// Installs `hook`, called with every secret form registered from now on
/// that was not known before. Task mode installs one that hands each to
/// the agent (`task.setsecret`): tokens fetched mid-run (an Entra access
/// token replacing an expired one) must be masked in the agent's log too,
/// and the agent masks only what it is told. The first hook installed
/// stays; it is called after the registry's lock is released, so it may
/// print.
pub(crate) fn on_new_secret(hook: fn(&str)) {
    let _ = ON_NEW_SECRET.set(hook);
}

fn register(secret: &str, public: usize) {
    if secret.len() <= public {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    match secrets.iter_mut().find(|s| s.text == secret) {
        Some(known) => known.public = known.public.min(public),
        None => {
            secrets.push(Secret {
                text: secret.to_owned(),
                public,
            });
            // Longest first, so a secret that contains another is masked whole.
            secrets.sort_by(|a, b| {
                b.text
                    .len()
                    .cmp(&a.text.len())
                    .then_with(|| a.text.cmp(&b.text))
            });
            drop(secrets);
            if let Some(hook) = ON_NEW_SECRET.get() {
                hook(secret);
            }
        }
    }
}

/// The shortest start of a secret that is masked on its own, in bytes.
///
/// Text is cut in many places (a server closes the connection mid-token, an
/// error body is read only so far, a message is shortened for a terminal),
/// and the start of a token is as good as none of it to nobody but an
/// attacker guessing the rest. So any run of text that matches the first
/// `MIN_PREFIX` or more bytes of a secret form is masked, wherever it ends.
pub(crate) const MIN_PREFIX: usize = 8;

/// Returns `text` with every registered secret replaced by [`MASK`], and
/// every start of one ([`MIN_PREFIX`] bytes or more) too.
///
/// Callers redact before they cut, re-wrap or escape text: an escaped
/// secret (`\"`, `%20`, `\t`) no longer looks like the one registered.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let bytes = text.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for Secret { text: form, public } in secrets.iter() {
        let secret = form.as_bytes();
        let probe = &secret[..secret.len().min(MIN_PREFIX.max(public + 1))];
        let mut from = 0;
        while let Some(at) = find(&bytes[from..], probe) {
            let start = from + at;
            let mut end = start + probe.len();
            while end < bytes.len()
                && end - start < secret.len()
                && bytes[end] == secret[end - start]
            {
                end += 1;
            }
            // A match may stop inside a character of `text` whose first
            // bytes the secret shares: mask that whole character.
            while !text.is_char_boundary(end) {
                end += 1;
            }
            spans.push((start, end));
            from = start + 1;
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in spans {
        if end <= copied {
            continue;
        }
        if start >= copied {
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
        }
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Serializes `doc` as pretty JSON with every string in it redacted
/// *before* JSON escaping, which would otherwise turn a secret holding `"`
/// or `\` into text the redactor does not know.
pub fn redacted_json(doc: &impl serde::Serialize) -> String {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut value) in entries {
                    walk(&mut value);
                    map.insert(redact(&key).into_owned(), value);
                }
            }
            _ => {}
        }
    }
    let mut value = serde_json::to_value(doc).unwrap_or(serde_json::Value::Null);
    walk(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// A URL, URL template or path as it may be shown: without the user
/// information it could carry (forges put a user name in clone URLs, and a
/// URL or template may hold a token). Everything else is shown as typed:
/// it is cut on the text rather than read by a URL parser, so a template's
/// `{placeholders}` are not percent-encoded, a `file://` URL stays one, and
/// a URL that does not parse still loses its userinfo. Text without `://`
/// (a path) is returned unchanged.
pub(crate) fn redacted_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    // Where the authority ends, as a URL parser would see it: `\` too,
    // which WHATWG parsers take for `/` in http(s) URLs.
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn shown_urls_lose_their_user_information_only() {
        // Templates keep their placeholders as typed.
        assert_eq!(
            redacted_url("https://me:tok@github.com/acme-mirror/{project}-{repo}.git"),
            "https://github.com/acme-mirror/{project}-{repo}.git"
        );
        assert_eq!(
            redacted_url("https://dev.azure.com/org"),
            "https://dev.azure.com/org"
        );
        assert_eq!(
            redacted_url("/backup/{project}/{repo}.git"),
            "/backup/{project}/{repo}.git"
        );
        // An `@` after the authority is not userinfo.
        assert_eq!(redacted_url("https://u@host?x=a@b"), "https://host?x=a@b");
        assert_eq!(redacted_url("https://u:p@host#a@b"), "https://host#a@b");
        assert_eq!(
            redacted_url("https://u:p@host\\path@x/"),
            "https://host\\path@x/"
        );
        // Clone URLs as forges list them: the user name goes, the encoded
        // names stay as the forge wrote them.
        assert_eq!(
            redacted_url("https://fabrikam@dev.azure.com/fabrikam/Fabrikam%20Fiber/_git/Web%20App"),
            "https://dev.azure.com/fabrikam/Fabrikam%20Fiber/_git/Web%20App"
        );
        assert_eq!(
            redacted_url("http://me:p%2Fss%40word@127.0.0.1:8080/dst/a.git"),
            "http://127.0.0.1:8080/dst/a.git"
        );
        // A password holding `@` unencoded: the last `@` ends the userinfo.
        assert_eq!(
            redacted_url("https://me:p@ss@example.com/r.git"),
            "https://example.com/r.git"
        );
        // `file://` URLs and paths are shown as given.
        assert_eq!(
            redacted_url("file:///srv/git/a.git"),
            "file:///srv/git/a.git"
        );
        assert_eq!(redacted_url("relative/a.git"), "relative/a.git");
        assert_eq!(redacted_url(""), "");
    }

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
        assert_eq!(c.header().unwrap(), "Bearer a:b");
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
        let basic = c.header().unwrap();
        let forms = [
            secret.to_owned(),
            utf8_percent_encode(secret, USERINFO).to_string(),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            basic.trim_start_matches("Basic ").to_owned(),
            format!("user-redact-test:{secret}"),
        ];
        for form in forms {
            let text = format!("before {form} after");
            assert_eq!(redact(&text), "before *** after", "{form}");
        }
    }

    #[test]
    fn the_start_of_a_secret_is_masked_wherever_the_text_is_cut() {
        // Characters no other test's secret holds: the registry is shared
        // by the whole test process, and a short secret elsewhere (`tok`)
        // would be masked inside this text too.
        let secret = "Жэ-prefix-Ω-secret value";
        register_secret(secret);
        for cut in 0..=secret.len() {
            if !secret.is_char_boundary(cut) {
                continue;
            }
            let text = format!("¤ {}", &secret[..cut]);
            let red = redact(&text);
            if cut >= MIN_PREFIX {
                assert_eq!(red, "¤ ***", "cut at {cut}");
            } else {
                assert_eq!(red, text, "short starts are not secrets");
            }
            // Text after a cut-off secret is kept.
            let text = format!("{}| and more", &secret[..cut]);
            let red = redact(&text);
            if cut >= MIN_PREFIX {
                assert_eq!(red, "***| and more", "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_user_name_alone_is_not_masked_but_its_pair_with_the_secret_is() {
        let c = Credentials::basic("pair-test-user-name", "Жpair-secret-value");
        c.register();
        let user = "pushed as pair-test-user-name:";
        assert_eq!(redact(user), user);
        assert_eq!(redact("pair-test-user-name:Жp|"), "***|");
    }

    #[test]
    fn json_is_redacted_before_it_is_escaped() {
        let secret = "json\\\"quote-test\ttab";
        register_secret(secret);
        let doc = serde_json::json!({ "message": format!("server said {secret}") });
        let text = redacted_json(&doc);
        assert!(text.contains("server said ***"), "{text}");
        assert!(!text.contains("quote-test"), "{text}");
    }

    #[test]
    fn the_hook_hears_of_each_new_form_once() {
        static TOLD: Mutex<Vec<String>> = Mutex::new(Vec::new());
        fn tell(secret: &str) {
            // Other tests register secrets too, and are told of them here.
            if secret.starts_with("hook-test") {
                // The hook may use the redactor, as task mode's prints
                // through it: with the registry still locked this would
                // deadlock.
                assert_eq!(redact(secret), MASK);
            }
            TOLD.lock().unwrap().push(secret.to_owned());
        }
        on_new_secret(tell);
        let secret = "hook-test/secret Ж";
        register_secret(secret);
        register_secret(secret);
        let told = TOLD.lock().unwrap().clone();
        let told_of = |form: &str| told.iter().filter(|t| *t == form).count();
        assert_eq!(told_of(secret), 1, "{told:?}");
        assert_eq!(told_of("hook-test%2Fsecret%20%D0%96"), 1, "{told:?}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = Credentials::bearer("bearer-debug-secret");
        assert!(!format!("{c:?}").contains("bearer-debug-secret"));
        assert_eq!(c.header().unwrap(), "Bearer bearer-debug-secret");
    }
}

//! Signing in as a GitHub App: installation tokens instead of a personal
//! token.
//!
//! Organizations on GitHub prefer apps to personal tokens: an app's
//! permissions are its own (not a person's), and the tokens it works with
//! live an hour. The app proves who it is with a JWT it signs with its
//! private key (RS256, issued by the app id, valid at most ten minutes:
//! [`jwt`]); GitHub finds the app's installation on the account that owns
//! the repository (`GET /repos/{owner}/{repo}/installation`, or
//! `/orgs/{org}/installation` and `/users/{user}/installation` for a whole
//! account) and hands out an installation token for it
//! (`POST /app/installations/{id}/access_tokens`, with its `expires_at`).
//! git takes that token as the password of `x-access-token`, the REST API
//! as a bearer token.
//!
//! A side's [`GitHubApp`] settings are shared by every repository a run
//! touches: the key is read once, each installation is looked up once and
//! its token is shared by git, LFS and API requests until it nears its
//! expiry, so a sweep of a hundred repositories mints one token, not a
//! hundred. The key, the JWTs and the tokens are secrets: the key's text
//! and every JWT are registered with the redactor before use, and tokens
//! are by [`Credentials`](super::Credentials).

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::Value;
use url::Url;

use super::token::{AuthError, Token, TokenSource};
use super::{Credentials, Scheme};
use crate::output;
use crate::transport::{shared_agent, NetworkOptions};

/// The API of github.com; GitHub Enterprise Server's is `https://HOST/api/v3`.
pub(crate) const GITHUB_API: &str = "https://api.github.com";

/// The user name GitHub documents for an installation token over HTTPS.
pub(crate) const GIT_USERNAME: &str = "x-access-token";

/// How far back `iat` is set: GitHub recommends a minute, against clocks
/// that run ahead of its own.
const ISSUED_BEFORE: Duration = Duration::from_secs(60);

/// How long a JWT is valid after its `iat`: GitHub's maximum is ten
/// minutes into the future, so nine from now, ten from `iat`.
const JWT_LIFE: Duration = Duration::from_secs(600);

/// A token shared between a side's requests is handed out again only while
/// it lives at least this long; `Credentials` replace theirs two minutes
/// before expiry, so a shorter-lived one would come straight back.
const REUSE: Duration = Duration::from_secs(300);

/// The most bytes of an API answer read: these answers are a few KiB.
const MAX_ANSWER: u64 = 256 * 1024;

/// The REST API version the calls are written against.
const API_VERSION: &str = "2022-11-28";

/// Where an app's private key comes from.
#[derive(Clone)]
pub(crate) enum AppKey {
    /// A PEM file, as GitHub hands it out (`--source-app-key`).
    File(PathBuf),
    /// The PEM text itself (a pipeline's secret variable or service
    /// connection).
    Pem(String),
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppKey::File(path) => f.debug_tuple("File").field(path).finish(),
            AppKey::Pem(_) => f.debug_tuple("Pem").field(&super::MASK).finish(),
        }
    }
}

/// How a side signs in as a GitHub App: the app, its key, and where its
/// API is. Clones share the key (read once) and the tokens.
#[derive(Clone)]
pub(crate) struct GitHubApp {
    /// The app id (or client id: GitHub takes either as the JWT issuer).
    app_id: String,
    key: AppKey,
    /// The API, where it is not derived from the repository's host.
    api: Option<Url>,
    shared: Arc<Shared>,
}

impl fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("api", &self.api.as_ref().map(Url::as_str))
            .finish()
    }
}

impl PartialEq for GitHubApp {
    fn eq(&self, other: &GitHubApp) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for GitHubApp {}

/// What every clone of a side's [`GitHubApp`] shares.
#[derive(Default)]
struct Shared {
    /// The key, parsed on first use (or why it could not be).
    key: OnceLock<Result<Arc<RsaKeyPair>, String>>,
    /// The API of the side's forge scope (a sweep's), which its git
    /// requests use too when no API was named.
    scope_api: OnceLock<Url>,
    /// Installation ids by API and lower-cased account.
    installations: Mutex<HashMap<(String, String), u64>>,
    /// The last token of each installation, by API and installation id.
    tokens: Mutex<HashMap<(String, u64), Token>>,
    /// Held while a token is looked for, so that a sweep's workers that
    /// start together wait for one token rather than each minting one.
    fetching: Mutex<()>,
}

/// Whose installation a source asks for.
#[derive(Clone, Debug)]
enum Target {
    /// A repository's (`mirror`): its owner's installation, if it covers
    /// the repository.
    Repo { owner: String, repo: String },
    /// An organization's or a user's (`mirror-all`'s scope).
    Account(String),
}

impl Target {
    fn owner(&self) -> &str {
        match self {
            Target::Repo { owner, .. } | Target::Account(owner) => owner,
        }
    }
}

impl GitHubApp {
    /// The app `app_id` with its private key from `key`; `api` overrides
    /// the API derived from the repository's host.
    pub(crate) fn new(app_id: impl Into<String>, key: AppKey, api: Option<Url>) -> GitHubApp {
        GitHubApp {
            app_id: app_id.into(),
            key,
            api,
            shared: Arc::default(),
        }
    }

    /// The same app, its API `api` where none was named (a sweep's
    /// `--source-api`).
    pub(crate) fn or_api(mut self, api: Option<Url>) -> GitHubApp {
        self.api = self.api.or(api);
        self
    }

    /// Credentials for git (and LFS) on the repository at `url`: Basic as
    /// `x-access-token`, the installation of the repository's owner.
    /// `side` names the side in messages ("source").
    pub(crate) fn git_credentials(
        &self,
        side: &str,
        url: &Url,
        network: &NetworkOptions,
    ) -> Result<Credentials, String> {
        let (owner, repo) = owner_and_repo(url).ok_or_else(|| {
            format!("{side}: a GitHub App signs in to https://HOST/OWNER/REPO URLs; {url} names no owner and repository")
        })?;
        let api = match (&self.api, self.shared.scope_api.get()) {
            (Some(api), _) | (None, Some(api)) => api.clone(),
            (None, None) => api_base(url),
        };
        Ok(Credentials::from_source(Arc::new(self.source(
            side,
            api,
            Target::Repo { owner, repo },
            (Scheme::Basic, GIT_USERNAME.to_owned()),
            network,
        ))))
    }

    /// Credentials for the REST API at `api` (a sweep's listing and
    /// creating) about the account `owner`: a bearer token of the
    /// account's installation. Unless an API was named, `api` becomes the
    /// one the side's git requests sign in at too: the scope's forge is
    /// the GitHub its repositories are on.
    pub(crate) fn api_credentials(
        &self,
        side: &str,
        api: &Url,
        owner: &str,
        network: &NetworkOptions,
    ) -> Credentials {
        let api = self.api.clone().unwrap_or_else(|| api.clone());
        let _ = self.shared.scope_api.set(api.clone());
        Credentials::from_source(Arc::new(self.source(
            side,
            api,
            Target::Account(owner.to_owned()),
            (Scheme::Bearer, String::new()),
            network,
        )))
    }

    fn source(
        &self,
        side: &str,
        api: Url,
        target: Target,
        scheme: (Scheme, String),
        network: &NetworkOptions,
    ) -> AppTokens {
        AppTokens {
            app: self.clone(),
            side: side.to_owned(),
            api,
            target,
            scheme,
            network: network.clone(),
        }
    }

    /// The key, read and parsed once.
    fn key(&self) -> Result<Arc<RsaKeyPair>, String> {
        self.shared
            .key
            .get_or_init(|| {
                let text = match &self.key {
                    AppKey::Pem(text) => text.clone(),
                    AppKey::File(path) => std::fs::read_to_string(path).map_err(|e| {
                        format!("cannot read the private key file {}: {e}", path.display())
                    })?,
                };
                let key = parse_key(&text).map_err(|e| match &self.key {
                    AppKey::File(path) => format!("{}: {e}", path.display()),
                    AppKey::Pem(_) => format!("the private key: {e}"),
                })?;
                Ok(Arc::new(key))
            })
            .clone()
    }
}

/// The API of the GitHub that serves `url`: `https://api.github.com` for
/// github.com, `https://HOST/api/v3` for GitHub Enterprise Server.
pub(crate) fn api_base(url: &Url) -> Url {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if host == "github.com" || host == "www.github.com" || host == "api.github.com" {
        return Url::parse(GITHUB_API).expect("a valid URL");
    }
    let mut api = url.clone();
    api.set_path("/api/v3");
    api.set_query(None);
    api.set_fragment(None);
    let _ = api.set_username("");
    let _ = api.set_password(None);
    api
}

/// The owner and repository of `https://HOST/OWNER/REPO[.git]`: the last
/// two segments of the path.
fn owner_and_repo(url: &Url) -> Option<(String, String)> {
    let segments: Vec<String> = url
        .path_segments()?
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let [.., owner, repo] = segments.as_slice() else {
        return None;
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (!repo.is_empty()).then(|| (owner.clone(), repo.to_owned()))
}

/// The RSA key of a PEM file: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub
/// hands out) or PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl pkey` writes).
/// Every line of its body is registered with the redactor first.
pub(crate) fn parse_key(text: &str) -> Result<RsaKeyPair, String> {
    let mut label = None;
    let mut body = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            if label.is_none() {
                label = Some(rest.trim_end_matches('-').trim().to_owned());
            }
            continue;
        }
        if line.starts_with("-----END ") {
            if label.is_some() {
                break;
            }
            continue;
        }
        if label.is_some() && !line.contains(':') {
            // Lines with a colon are PEM headers (an encrypted key's
            // Proc-Type), not base64.
            super::register_literal(line);
            body.push_str(line);
        }
    }
    let label = label.ok_or("not a PEM file (no -----BEGIN line)")?;
    if text.contains("ENCRYPTED") {
        return Err("the key is encrypted; GitHub hands out keys without a passphrase: use that file, or decrypt it with `openssl pkey`".into());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "the PEM body is not base64".to_owned())?;
    let parsed = match label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        other => return Err(format!("a {other} is not an RSA private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)")),
    };
    parsed.map_err(|e| format!("not a usable RSA private key ({e})"))
}

/// A JWT for the app `app_id` signed with `key`: RS256, `iat` a minute
/// before `now`, `exp` ten minutes after `iat`, `iss` the app id.
pub(crate) fn jwt(app_id: &str, key: &RsaKeyPair, now: SystemTime) -> Result<String, String> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?;
    let iat = now.saturating_sub(ISSUED_BEFORE).as_secs();
    let exp = iat + JWT_LIFE.as_secs();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
    // An app id goes as the number it is (older GitHub Enterprise Servers
    // take no other), a client id (`Iv23li...`) as a string.
    let iss = match app_id.parse::<u64>() {
        Ok(id) => serde_json::json!(id),
        Err(_) => serde_json::json!(app_id),
    };
    let claims = serde_json::json!({ "iat": iat, "exp": exp, "iss": iss });
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the JWT failed".to_owned())?;
    Ok(format!("{signed}.{}", b64(&signature)))
}

/// Seconds since 1970 of GitHub's `2016-07-11T22:14:10Z` (a fraction of a
/// second, or an offset, as RFC 3339 allows); `None` for anything else.
fn parse_time(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let digits = |s: Option<&str>| -> Option<i64> {
        let s = s?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let num = |from: usize, len: usize| digits(text.get(from..from + len));
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (digits(rest.get(1..3))? * 3600 + digits(rest.get(4..6))? * 60)
        }
    };
    // Days from 1970-01-01 of a proleptic Gregorian date (Hinnant's
    // days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Installation tokens of one app for one repository or account, in the
/// form one kind of request takes.
struct AppTokens {
    app: GitHubApp,
    /// "source" or "destination".
    side: String,
    api: Url,
    target: Target,
    scheme: (Scheme, String),
    network: NetworkOptions,
}

/// An API answer that was not a success.
struct Refusal {
    status: u16,
    /// `: ` and GitHub's `message`, or nothing.
    said: String,
}

impl AppTokens {
    fn fail(&self, message: String, hint: Option<&'static str>) -> AuthError {
        AuthError {
            identity: self.identity(),
            message,
            hint,
        }
    }

    /// The hint that names the source's flags, or the destination's.
    fn for_side(&self, source: &'static str, destination: &'static str) -> &'static str {
        if self.side == "source" {
            source
        } else {
            destination
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// One call to the API, signed with a fresh JWT: the JSON of a
    /// success, or the status and message of a refusal.
    fn call(&self, method: &str, url: &Url) -> Result<Result<Value, Refusal>, AuthError> {
        let key = self.app.key().map_err(|e| {
            self.fail(
                e,
                Some(self.for_side(
                    "give the app's private key, a .pem file from the app's settings (Private keys), with --source-app-key (or GIT_RELAY_SOURCE_APP_KEY)",
                    "give the app's private key, a .pem file from the app's settings (Private keys), with --dest-app-key (or GIT_RELAY_DEST_APP_KEY)",
                )),
            )
        })?;
        let token =
            jwt(&self.app.app_id, &key, SystemTime::now()).map_err(|e| self.fail(e, None))?;
        super::register_secret(&token);
        let agent = shared_agent(url, &self.network).map_err(|e| self.fail(e.to_string(), None))?;
        output::debug(format_args!(
            "{method} {url} (as the GitHub App {})",
            self.app.app_id
        ));
        let request = agent
            .request_url(method, url)
            .set("Accept", "application/vnd.github+json")
            .set("X-GitHub-Api-Version", API_VERSION)
            .set("User-Agent", crate::AGENT)
            .set("Authorization", &format!("Bearer {token}"));
        let result = if method == "POST" {
            request.send_string("")
        } else {
            request.call()
        };
        match result {
            Ok(response) if (200..300).contains(&response.status()) => {
                let body = read(response);
                serde_json::from_slice(&body)
                    .map(Ok)
                    .map_err(|_| self.fail(format!("{url} did not answer JSON; is this GitHub's API? (--source-app-api / --dest-app-api name it)"), None))
            }
            Ok(response) | Err(ureq::Error::Status(_, response)) => {
                let status = response.status();
                let body = read(response);
                let message = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let message: String = super::redact(&message)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(300)
                    .collect();
                Ok(Err(Refusal {
                    status,
                    said: match message.trim() {
                        "" => String::new(),
                        text => format!(": {text}"),
                    },
                }))
            }
            Err(ureq::Error::Transport(t)) => Err(self.fail(
                format!("cannot reach {url}: {t}"),
                Some("check the API URL (--source-app-api / --dest-app-api for a GitHub Enterprise Server elsewhere than https://HOST/api/v3), the network and the proxy"),
            )),
        }
    }

    /// What to say when the app itself was refused (HTTP 401).
    fn refused(&self, url: &Url, refusal: &Refusal) -> AuthError {
        self.fail(
            format!("GitHub refused the app's JWT (HTTP {} at {url}){}", refusal.status, refusal.said),
            Some(self.for_side(
                "check the app id (--source-app-id) and that --source-app-key is one of the app's current private keys (a key deleted in the app's settings is refused); the JWT's times come from this machine's clock, which must be right",
                "check the app id (--dest-app-id) and that --dest-app-key is one of the app's current private keys (a key deleted in the app's settings is refused); the JWT's times come from this machine's clock, which must be right",
            )),
        )
    }

    /// The installation id of the target's account, looked up once.
    fn installation(&self) -> Result<u64, AuthError> {
        let owner = self.target.owner().to_ascii_lowercase();
        let key = (self.api.as_str().to_owned(), owner);
        if let Some(id) = self.cache_installations().get(&key) {
            return Ok(*id);
        }
        let candidates = match &self.target {
            Target::Repo { owner, repo } => vec![self.url(&["repos", owner, repo, "installation"])],
            Target::Account(owner) => vec![
                self.url(&["orgs", owner, "installation"]),
                self.url(&["users", owner, "installation"]),
            ],
        };
        let mut not_found = String::new();
        for url in &candidates {
            match self.call("GET", url)? {
                Ok(json) => {
                    let id = json["id"].as_u64().ok_or_else(|| {
                        self.fail(format!("{url} answered without an installation id"), None)
                    })?;
                    self.cache_installations().insert(key, id);
                    return Ok(id);
                }
                Err(r) if r.status == 404 => {
                    not_found = r.said;
                    continue;
                }
                Err(r) if r.status == 401 => return Err(self.refused(url, &r)),
                Err(r) => {
                    return Err(self.fail(
                        format!(
                            "looking up the installation: HTTP {} at {url}{}",
                            r.status, r.said
                        ),
                        None,
                    ))
                }
            }
        }
        let what = match &self.target {
            Target::Repo { owner, repo } => format!("the repository {owner}/{repo}"),
            Target::Account(owner) => format!("the account {owner}"),
        };
        Err(self.fail(
            format!("the app is not installed on {what} (HTTP 404{not_found})"),
            Some("install the app on the account that owns the repositories (its settings: Install App), with access to these repositories; and check the owner and repository in the URL"),
        ))
    }

    fn cache_installations(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        (self.app.shared.installations.lock()).unwrap_or_else(|e| e.into_inner())
    }

    fn cache_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Token>> {
        (self.app.shared.tokens.lock()).unwrap_or_else(|e| e.into_inner())
    }

    /// A new installation token.
    fn mint(&self, installation: u64) -> Result<Token, AuthError> {
        let id = installation.to_string();
        let url = self.url(&["app", "installations", &id, "access_tokens"]);
        let json = match self.call("POST", &url)? {
            Ok(json) => json,
            Err(r) if r.status == 401 => return Err(self.refused(&url, &r)),
            Err(r) => {
                // The installation may be gone (uninstalled, suspended):
                // the next attempt looks it up again.
                self.cache_installations().retain(|_, v| *v != installation);
                let hint = match r.status {
                    403 => Some("the installation may be suspended: an owner of the account can unsuspend it in the app's installation settings"),
                    404 => Some("the app was uninstalled from the account; install it again"),
                    _ => None,
                };
                return Err(self.fail(
                    format!(
                        "GitHub refused an installation token (HTTP {} at {url}){}",
                        r.status, r.said
                    ),
                    hint,
                ));
            }
        };
        let secret = json["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.fail(format!("{url} answered without a token"), None))?
            .to_owned();
        super::register_secret(&secret);
        let expires = json["expires_at"].as_str().and_then(parse_time);
        Ok(Token { secret, expires })
    }
}

impl TokenSource for AppTokens {
    fn fetch(&self) -> Result<Token, AuthError> {
        let _one_at_a_time = (self.app.shared.fetching.lock()).unwrap_or_else(|e| e.into_inner());
        let installation = self.installation()?;
        let key = (self.api.as_str().to_owned(), installation);
        let lasting = |t: &Token| t.expires.is_none_or(|at| at > SystemTime::now() + REUSE);
        if let Some(token) = self.cache_tokens().get(&key).filter(|t| lasting(t)) {
            return Ok(token.clone());
        }
        let token = self.mint(installation)?;
        self.cache_tokens().insert(key, token.clone());
        Ok(token)
    }

    fn scheme(&self) -> (Scheme, String) {
        self.scheme.clone()
    }

    fn identity(&self) -> String {
        format!("the {}'s GitHub App {}", self.side, self.app.app_id)
    }

    fn rejected(&self, token: &str) {
        self.cache_tokens().retain(|_, t| t.secret != token);
    }
}

fn read(response: ureq::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = response
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_end(&mut body);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_api_github_com_or_the_servers_api_v3() {
        let api = |u: &str| api_base(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            api("https://github.com/acme/r.git"),
            "https://api.github.com/"
        );
        assert_eq!(
            api("https://ghe.example.com/acme/r.git"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            api("http://127.0.0.1:8080/acme/r.git"),
            "http://127.0.0.1:8080/api/v3"
        );
    }

    #[test]
    fn owner_and_repo_are_the_last_two_segments() {
        let parse = |u: &str| owner_and_repo(&Url::parse(u).unwrap());
        assert_eq!(
            parse("https://github.com/acme/widgets.git"),
            Some(("acme".into(), "widgets".into()))
        );
        assert_eq!(
            parse("https://github.com/acme/widgets/"),
            Some(("acme".into(), "widgets".into()))
        );
        assert_eq!(parse("https://github.com/acme"), None);
        assert_eq!(parse("https://github.com/acme/.git"), None);
    }

    #[test]
    fn github_times_are_read() {
        let at = |s: &str| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2016-07-11T22:14:10Z"), Some(1_468_275_250));
        assert_eq!(at("2016-07-11T22:14:10.123Z"), Some(1_468_275_250));
        assert_eq!(at("2016-07-12T00:14:10+02:00"), Some(1_468_275_250));
        assert_eq!(at("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        for bad in [
            "",
            "2016-07-11",
            "2016-13-11T22:14:10Z",
            "2016-07-11T25:14:10Z",
            "2016-07-11T22:14:10",
            "2016-07-11T22:14:10+0200",
            "20x6-07-11T22:14:10Z",
            "1969-12-31T23:59:59Z",
            "2016-07-11T22:14:10Zjunk",
            "é016-07-11T22:14:10Z",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_key_that_is_no_rsa_key_is_refused_with_a_reason() {
        assert!(parse_key("hello").unwrap_err().contains("not a PEM file"));
        let ec = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(parse_key(ec)
            .unwrap_err()
            .contains("not an RSA private key"));
        let junk = "-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n";
        assert!(parse_key(junk).unwrap_err().contains("not base64"));
        let short = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(parse_key(short).unwrap_err().contains("not a usable RSA"));
    }

    const KEY: &str = include_str!("../../tests/fixtures/github-app/app-key.pem");
    const KEY_PKCS8: &str = include_str!("../../tests/fixtures/github-app/app-key-pkcs8.pem");

    #[test]
    fn the_jwt_is_rs256_with_the_claims_github_asks_for() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for pem in [KEY, KEY_PKCS8] {
            let key = parse_key(pem).unwrap();
            let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let token = jwt("12345", &key, now).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(header["alg"], "RS256");
            let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
            assert_eq!(claims["iss"], 12345);
            assert_eq!(claims["iat"], 1_700_000_000 - 60);
            // At most ten minutes into the future.
            assert_eq!(claims["exp"], 1_700_000_000 + 540);
            let public = ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                key.public().as_ref(),
            );
            let signed = format!("{}.{}", parts[0], parts[1]);
            public
                .verify(signed.as_bytes(), &b64.decode(parts[2]).unwrap())
                .unwrap();
        }
        let key = parse_key(KEY).unwrap();
        let token = jwt("Iv23liClientId", &key, SystemTime::now()).unwrap();
        let claims = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&b64.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["iss"], "Iv23liClientId");
        // Both forms are the same key.
        assert_eq!(
            parse_key(KEY).unwrap().public().as_ref(),
            parse_key(KEY_PKCS8).unwrap().public().as_ref()
        );
    }

    #[test]
    fn every_line_of_the_key_is_redacted() {
        parse_key(KEY).unwrap();
        let line = KEY.lines().nth(3).unwrap();
        assert_eq!(super::super::redact(&format!("x {line} y")), "x *** y");
    }

    #[test]
    fn debug_shows_no_key() {
        let app = GitHubApp::new("42", AppKey::Pem("-----BEGIN SECRET".into()), None);
        let shown = format!("{app:?}");
        assert!(shown.contains("42") && !shown.contains("SECRET"), "{shown}");
    }
}

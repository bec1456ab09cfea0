//! A fake Microsoft Entra ID over real HTTP on 127.0.0.1: the token
//! endpoint of workload identity federation and the instance metadata
//! endpoint of managed identities, for the `--*-auth entra` tests.
//!
//! The token endpoint (`/{tenant}/oauth2/v2.0/token`) does what Entra
//! does with a client-credentials grant and a client assertion: the tenant
//! must exist, the application must be registered in it, and the
//! assertion must be a JWT that the federated credential's issuer signed
//! (HS256 with a key only this fake and [`FakeEntra::federated_token`]
//! know, really verified) for `api://AzureADTokenExchange`, with the
//! credential's issuer and subject, not expired. Refusals carry Entra's
//! error shape (`error`, `error_description` with its AADSTS codes) and
//! status (400, 401). The metadata endpoint
//! (`/metadata/identity/oauth2/token`) wants `Metadata: true`, the Azure
//! DevOps resource, and a known identity. Both issue short-lived access
//! tokens, recorded in a [`BearerTokens`] that a [`GitServer`] or a fake
//! forge built with it accepts, each until it expires.
//!
//! [`GitServer`]: super::GitServer

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde_json::{json, Value};

use super::http;
use super::server::BearerTokens;

/// The audience Entra wants in a federated token.
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The scope of an Azure DevOps token, and the resource IMDS takes.
pub const DEVOPS_SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";
pub const DEVOPS_RESOURCE: &str = "499b84ac-1321-427f-aa17-267ca6975798";

/// An application registered in a tenant, with one federated credential.
#[derive(Clone, Debug)]
pub struct App {
    pub tenant: String,
    pub client_id: String,
    pub issuer: String,
    pub subject: String,
}

/// One token request the fake answered.
#[derive(Clone, Debug)]
pub struct EntraRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The access token issued, if one was.
    pub issued: Option<String>,
}

struct State {
    apps: Vec<App>,
    /// Client ids of managed identities on "this machine"; `None` stands
    /// for the system-assigned one.
    managed: Vec<Option<String>>,
    key: hmac::Key,
    lifetime: Duration,
    tokens: BearerTokens,
    counter: AtomicUsize,
    /// Metadata requests still to be answered 429.
    throttle: AtomicUsize,
    log: Mutex<Vec<EntraRequest>>,
}

/// A fake Entra token endpoint and instance metadata endpoint.
pub struct FakeEntra {
    state: Arc<State>,
    port: u16,
    stop: Arc<AtomicBool>,
}

/// Configures a [`FakeEntra`].
pub struct Builder {
    apps: Vec<App>,
    managed: Vec<Option<String>>,
    lifetime: Duration,
    tokens: BearerTokens,
}

impl FakeEntra {
    pub fn builder(tokens: &BearerTokens) -> Builder {
        Builder {
            apps: Vec::new(),
            managed: Vec::new(),
            lifetime: Duration::from_secs(3600),
            tokens: tokens.clone(),
        }
    }

    /// What `AZURE_AUTHORITY_HOST` and `AZURE_POD_IDENTITY_AUTHORITY_HOST`
    /// name: this server.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// A federated token for `app` as its issuer would sign it, valid for
    /// `life` (negative: expired that long ago).
    pub fn federated_token(&self, app: &App, life: i64) -> String {
        self.token_with(
            &json!({
                "aud": EXCHANGE_AUDIENCE,
                "iss": app.issuer,
                "sub": app.subject,
            }),
            life,
        )
    }

    /// A JWT with `claims` (plus `iat`, `nbf`, `exp`) signed with the
    /// issuers' key.
    pub fn token_with(&self, claims: &Value, life: i64) -> String {
        let now = now_secs() as i64;
        let mut claims = claims.clone();
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now - 5);
        claims["exp"] = json!(now + life);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{body}");
        let tag = hmac::sign(&self.state.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Answers the next `n` metadata requests 429, as a throttled
    /// endpoint does.
    pub fn throttle_metadata(&self, n: usize) {
        self.state.throttle.store(n, Ordering::SeqCst);
    }

    /// Every request answered.
    pub fn requests(&self) -> Vec<EntraRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// The access tokens issued, in order.
    pub fn issued(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.issued)
            .collect()
    }
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

impl Builder {
    /// Registers an application with a federated credential.
    pub fn app(mut self, app: &App) -> Self {
        self.apps.push(app.clone());
        self
    }

    /// A managed identity on the machine: `None` the system-assigned one,
    /// else a user-assigned one's client id.
    pub fn managed_identity(mut self, client_id: Option<&str>) -> Self {
        self.managed.push(client_id.map(str::to_owned));
        self
    }

    /// How long the access tokens live (`expires_in`).
    pub fn lifetime(mut self, life: Duration) -> Self {
        self.lifetime = life;
        self
    }

    pub fn start(self) -> FakeEntra {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .expect("random key");
        let state = Arc::new(State {
            apps: self.apps,
            managed: self.managed,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            lifetime: self.lifetime,
            tokens: self.tokens,
            counter: AtomicUsize::new(0),
            throttle: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = state2.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        FakeEntra { state, port, stop }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Reply {
    status: u16,
    body: Value,
    issued: Option<String>,
}

fn error(status: u16, code: &str, description: &str) -> Reply {
    Reply {
        status,
        body: json!({
            "error": code,
            "error_description": description,
            "error_codes": [description.split(':').next().unwrap_or_default()
                .trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)],
            "timestamp": "2026-11-30 12:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        }),
        issued: None,
    }
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    while let Some(head) = http::read_head(&mut reader)? {
        let mut body = String::new();
        http::BodyReader::new(&mut reader, head.framing()?).read_to_string(&mut body)?;
        let path = head.path().to_owned();
        let reply = if head.method == "POST" && path.ends_with("/oauth2/v2.0/token") {
            let tenant = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default();
            token_endpoint(state, tenant, &body)
        } else if head.method == "GET" && path == "/metadata/identity/oauth2/token" {
            metadata(state, head.header("Metadata"), head.query())
        } else {
            error(404, "not_found", "no such endpoint")
        };
        state.log.lock().unwrap().push(EntraRequest {
            method: head.method.clone(),
            path,
            status: reply.status,
            issued: reply.issued.clone(),
        });
        let text = reply.body.to_string();
        write!(
            writer,
            "HTTP/1.1 {} X\r\nContent-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n{text}",
            reply.status,
            text.len()
        )?;
        writer.flush()?;
    }
    Ok(())
}

fn form(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn token_endpoint(state: &State, tenant: &str, body: &str) -> Reply {
    let fields = form(body);
    let get = |name| field(&fields, name).unwrap_or_default();
    if !state.apps.iter().any(|a| a.tenant == tenant) {
        return error(400, "invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    }
    if get("grant_type") != "client_credentials" {
        return error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let client_id = get("client_id");
    let Some(app) = state
        .apps
        .iter()
        .find(|a| a.tenant == tenant && a.client_id == client_id)
    else {
        return error(400, "unauthorized_client", &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant."));
    };
    if get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return error(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_assertion_type'.");
    }
    if let Err(why) = verify(state, app, get("client_assertion")) {
        return error(401, "invalid_client", &why);
    }
    if get("scope") != DEVOPS_SCOPE {
        return error(
            400,
            "invalid_scope",
            &format!(
                "AADSTS1002012: The provided value for scope {} is not valid.",
                get("scope")
            ),
        );
    }
    let token = issue(state);
    Reply {
        status: 200,
        body: json!({
            "token_type": "Bearer",
            "expires_in": state.lifetime.as_secs(),
            "ext_expires_in": state.lifetime.as_secs(),
            "access_token": token,
        }),
        issued: Some(token),
    }
}

/// Checks the client assertion as Entra checks it against the
/// application's federated credential.
fn verify(state: &State, app: &App, jwt: &str) -> Result<(), String> {
    let malformed = || "AADSTS50027: JWT token is invalid or malformed.".to_owned();
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| malformed())?;
    if header["alg"] != "HS256" {
        return Err(malformed());
    }
    let signed = &jwt[..jwt.rfind('.').unwrap_or(0)];
    hmac::verify(&state.key, signed.as_bytes(), &decode(signature)?).map_err(|_| {
        "AADSTS5002727: Invalid JWT token. The token signature is not valid.".to_owned()
    })?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| malformed())?;
    if claims["exp"].as_u64().is_none_or(|exp| exp <= now_secs()) {
        return Err("AADSTS700024: Client assertion is not within its valid time range.".into());
    }
    let mismatch = claims["aud"] != EXCHANGE_AUDIENCE
        || claims["iss"] != app.issuer.as_str()
        || claims["sub"] != app.subject.as_str();
    if mismatch {
        return Err(format!(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
            claims["iss"].as_str().unwrap_or_default(),
            claims["sub"].as_str().unwrap_or_default(),
            claims["aud"].as_str().unwrap_or_default(),
        ));
    }
    Ok(())
}

fn metadata(state: &State, header: Option<&str>, query: &str) -> Reply {
    if header != Some("true") {
        return error(
            400,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    let throttled = state
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if throttled {
        return error(429, "too_many_requests", "Too many requests");
    }
    let params = form(query);
    if field(&params, "api-version").is_none() {
        return error(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    if field(&params, "resource") != Some(DEVOPS_RESOURCE) {
        return error(
            400,
            "invalid_resource",
            "AADSTS500011: The resource principal was not found in the tenant.",
        );
    }
    let wanted = field(&params, "client_id").map(str::to_owned);
    if !state.managed.contains(&wanted) {
        return error(400, "invalid_request", "Identity not found");
    }
    let token = issue(state);
    let life = state.lifetime.as_secs();
    Reply {
        status: 200,
        body: json!({
            "access_token": token,
            "refresh_token": "",
            "expires_in": life.to_string(),
            "expires_on": (now_secs() + life).to_string(),
            "not_before": now_secs().to_string(),
            "resource": DEVOPS_RESOURCE,
            "token_type": "Bearer",
        }),
        issued: Some(token),
    }
}

/// A new access token, accepted by the servers that share `tokens` until
/// it expires.
fn issue(state: &State) -> String {
    let n = state.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let mut nonce = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).unwrap();
    let token = format!("eyFakeEntraAccess{n}.{}", URL_SAFE_NO_PAD.encode(nonce));
    state.tokens.issue(&token, state.lifetime);
    token
}

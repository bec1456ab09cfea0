//! A pipeline's OIDC endpoint and an Entra ID token endpoint on one fake
//! server over real HTTP on 127.0.0.1, for the task's sign-in through an
//! Azure Resource Manager service connection with workload identity
//! federation.
//!
//! The two halves play their published parts:
//!
//! * the pipeline's OIDC endpoint (`System.OidcRequestUri`, Azure DevOps
//!   REST api-version 7.1): `POST <uri>?api-version=7.1&serviceConnectionId=<id>`
//!   with `Authorization: Bearer <System.AccessToken>` answers
//!   `{"oidcToken": "<jwt>"}`; a wrong job token is 401, a connection this
//!   pipeline may not use 400 with a `message` (the status is this fake's
//!   choice);
//! * the tenant's token endpoint (`POST /<tenant>/oauth2/v2.0/token`, the
//!   client-credentials grant with a JWT client assertion) checks the grant,
//!   the application, the scope and the assertion, which must be an OIDC
//!   token this fake issued for the federated connection, unexpired and
//!   not used before, and answers `{"token_type": "Bearer", "expires_in":
//!   N, "access_token": ...}`, or Entra's `error` / `error_description`
//!   with HTTP 400 (AADSTS codes as Entra sends them).
//!
//! Every access token issued is added, for its life, to the
//! [`BearerTokens`] a [`GitServer`](super::GitServer) built with them
//! accepts, so the git side takes exactly what Entra handed out. Lifetimes are short on request (under
//! git-relay's two-minute margin, every request needs a new token), which
//! exercises refreshing.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::http;
use super::BearerTokens;

/// The scope of an Azure DevOps access token.
pub const AZURE_DEVOPS_SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";

/// The audience of the tokens a pipeline issues for Entra ID.
const AUDIENCE: &str = "api://AzureADTokenExchange";

/// Configures a [`FakeIdentity`].
pub struct IdentityBuilder {
    tenant: String,
    client_id: String,
    connection: String,
    job_token: String,
    life: u64,
    fixed_access_token: Option<String>,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: String,
    pub status: u16,
}

struct State {
    tenant: String,
    client_id: String,
    connection: String,
    job_token: String,
    life: u64,
    fixed_access_token: Option<String>,
    /// OIDC tokens issued: token, subject, expiry, used.
    oidc: Mutex<Vec<(String, String, SystemTime, bool)>>,
    /// Access tokens issued, in order.
    issued: Mutex<Vec<String>>,
    /// The same, each valid for its life, for the git server.
    access: BearerTokens,
    counter: AtomicUsize,
    log: Mutex<Vec<Seen>>,
}

/// The running fake; stops accepting when dropped.
pub struct FakeIdentity {
    state: Arc<State>,
    port: u16,
}

impl FakeIdentity {
    /// A tenant whose application `client_id` trusts the pipeline's tokens
    /// for service connection `connection`, in a pipeline whose job token
    /// is `job_token`.
    pub fn builder(
        tenant: &str,
        client_id: &str,
        connection: &str,
        job_token: &str,
    ) -> IdentityBuilder {
        IdentityBuilder {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            connection: connection.to_owned(),
            job_token: job_token.to_owned(),
            life: 3599,
            fixed_access_token: None,
        }
    }

    /// `System.OidcRequestUri` of the fake pipeline.
    pub fn oidc_request_uri(&self) -> String {
        format!(
            "http://127.0.0.1:{}/fabrikam/0f4a6c2e-proj/_apis/distributedtask/hubs/build/plans/7d1c-plan/jobs/12ab-job/oidctoken",
            self.port
        )
    }

    /// The authority host, as a connection's `environmentAuthorityUrl`.
    pub fn authority(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The access tokens issued so far, in order.
    pub fn access_tokens(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }

    /// For a [`GitServer`](super::GitServer) that takes these tokens, each
    /// while it lives.
    pub fn bearer_tokens(&self) -> &BearerTokens {
        &self.state.access
    }

    /// The OIDC tokens issued so far, in order.
    pub fn oidc_tokens(&self) -> Vec<String> {
        (self.state.oidc.lock().unwrap().iter())
            .map(|(t, ..)| t.clone())
            .collect()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }
}

impl IdentityBuilder {
    /// Seconds each access token lives (`expires_in`).
    pub fn life(mut self, seconds: u64) -> Self {
        self.life = seconds;
        self
    }

    /// Issue this access token every time (a fake forge checks one token).
    pub fn fixed_access_token(mut self, token: &str) -> Self {
        self.fixed_access_token = Some(token.to_owned());
        self
    }

    pub fn start(self) -> FakeIdentity {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            tenant: self.tenant,
            client_id: self.client_id,
            connection: self.connection,
            job_token: self.job_token,
            life: self.life,
            fixed_access_token: self.fixed_access_token,
            oidc: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            access: BearerTokens::default(),
            counter: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = shared.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        FakeIdentity { state, port }
    }
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    while let Some(head) = http::read_head(&mut reader)? {
        let mut body = String::new();
        http::BodyReader::new(&mut reader, head.framing()?).read_to_string(&mut body)?;
        let path = head.path().to_owned();
        let query = head.query().to_owned();
        let authorization = head.header("Authorization").map(str::to_owned);
        let (status, answer) = if head.method != "POST" {
            (405, json!({ "message": "method not allowed" }))
        } else if path.ends_with("/oauth2/v2.0/token") {
            token(state, &path, &body)
        } else if path.ends_with("/oidctoken") {
            oidc(state, &query, authorization.as_deref())
        } else {
            (404, json!({ "message": "not found" }))
        };
        state.log.lock().unwrap().push(Seen {
            method: head.method.clone(),
            path,
            query,
            authorization,
            body,
            status,
        });
        let body = answer.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        writer.flush()?;
    }
    Ok(())
}

/// `key=value&...`, decoded (`+` as space, as forms encode it).
fn form(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    (text.split('&').filter(|p| !p.is_empty()))
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    (fields.iter())
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The subject Azure DevOps puts in a service connection's OIDC tokens.
fn subject(connection: &str) -> String {
    format!("sc://fabrikam/proj/{connection}")
}

/// The pipeline's OIDC endpoint.
fn oidc(state: &State, query: &str, authorization: Option<&str>) -> (u16, Value) {
    if authorization != Some(format!("Bearer {}", state.job_token).as_str()) {
        return (
            401,
            json!({ "message": "TF400813: The user '' is not authorized to access this resource." }),
        );
    }
    let params = form(query);
    if field(&params, "api-version") != "7.1" {
        return (400, json!({ "message": "api-version 7.1 expected" }));
    }
    let connection = field(&params, "serviceConnectionId");
    if connection != state.connection {
        return (
            400,
            json!({ "message": format!("Service connection {connection} could not be found, or this pipeline may not use it.") }),
        );
    }
    let n = state.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let expires = SystemTime::now() + Duration::from_secs(600);
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let exp = expires.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let token = format!(
        "{}.{}.fake-signature-{n}",
        b64(json!({ "alg": "RS256", "typ": "JWT" })),
        b64(json!({
            "iss": "https://vstoken.dev.azure.com/0f4a6c2e-org",
            "sub": subject(connection),
            "aud": AUDIENCE,
            "exp": exp,
            "jti": format!("oidc-{n}"),
        })),
    );
    (state.oidc.lock().unwrap()).push((token.clone(), subject(connection), expires, false));
    (200, json!({ "oidcToken": token }))
}

/// An Entra error, as Entra writes it.
fn entra_error(code: &str, description: &str) -> (u16, Value) {
    (
        400,
        json!({ "error": code, "error_description": description, "error_codes": [], "timestamp": "2026-11-30 17:00:00Z" }),
    )
}

/// The tenant's token endpoint.
fn token(state: &State, path: &str, body: &str) -> (u16, Value) {
    let tenant = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if tenant != state.tenant {
        return entra_error(
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let fields = form(body);
    if field(&fields, "grant_type") != "client_credentials"
        || field(&fields, "client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        return entra_error(
            "invalid_request",
            "AADSTS900144: The request body must contain a client-credentials grant with a JWT client assertion.",
        );
    }
    let client_id = field(&fields, "client_id");
    if client_id != state.client_id {
        return entra_error(
            "unauthorized_client",
            &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    if field(&fields, "scope") != AZURE_DEVOPS_SCOPE {
        return entra_error(
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let assertion = field(&fields, "client_assertion");
    let mut issued = state.oidc.lock().unwrap();
    let Some(found) = issued.iter_mut().find(|(t, ..)| t == assertion) else {
        return entra_error(
            "invalid_client",
            "AADSTS700211: No matching federated identity record found for presented assertion issuer.",
        );
    };
    let (_, sub, expires, used) = found;
    if *sub != subject(&state.connection) {
        return entra_error(
            "invalid_client",
            "AADSTS700213: No matching federated identity record found for presented assertion subject.",
        );
    }
    if *expires < SystemTime::now() {
        return entra_error(
            "invalid_client",
            "AADSTS700024: Client assertion is not within its valid time range.",
        );
    }
    if *used {
        return entra_error(
            "invalid_client",
            "AADSTS700027: The client assertion was used before (this fake takes each once, as git-relay asks for a fresh one per token).",
        );
    }
    *used = true;
    drop(issued);
    let mut issued = state.issued.lock().unwrap();
    let n = issued.len() + 1;
    let access = (state.fixed_access_token.clone())
        .unwrap_or_else(|| format!("eyJ0eXAiOiJKV1Qi.entra-access-{n}.{}", state.tenant));
    issued.push(access.clone());
    state.access.issue(&access, Duration::from_secs(state.life));
    (
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": state.life,
            "ext_expires_in": state.life,
            "access_token": access,
        }),
    )
}

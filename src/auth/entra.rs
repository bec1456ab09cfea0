//! Microsoft Entra ID: access tokens for Azure DevOps without a personal
//! access token.
//!
//! Azure DevOps takes an Entra ID access token for its resource
//! ([`AZURE_DEVOPS_SCOPE`]) as a bearer token, for git and for its REST
//! API. An identity without a secret of its own gets one by proving who it
//! is with a token from another issuer it is federated with (a pipeline's
//! OIDC token, a Kubernetes service account token): the client-credentials
//! grant with a client assertion, [`exchange_assertion`], at the tenant's
//! token endpoint (`{authority}/{tenant}/oauth2/v2.0/token`).
//!
//! `--source-auth entra` / `--dest-auth entra` take the identity from the
//! environment Azure's own tools read ([`source`]): workload identity
//! ([`WorkloadIdentity`]: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and the
//! federated token in `AZURE_FEDERATED_TOKEN_FILE`, as Kubernetes workload
//! identity and GitHub Actions set-ups provide), or, without a token file,
//! the managed identity of the machine ([`ManagedIdentity`]: the instance
//! metadata endpoint of Azure VMs and self-hosted agents). Each is a
//! [`TokenSource`], so a run longer than an access token's life signs its
//! later requests with a fresh one.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use url::Url;

use super::token::{AuthError, Token, TokenSource};
use super::Scheme;
use crate::transport::{shared_agent, NetworkOptions};

/// The scope of an access token for Azure DevOps: its resource id, the
/// same in every tenant.
pub(crate) const AZURE_DEVOPS_SCOPE: &str = "499b84ac-1321-427f-aa17-267ca6975798/.default";

/// Where Entra ID is in the public cloud; sovereign clouds (and tests)
/// name another (`AZURE_AUTHORITY_HOST`).
pub(crate) const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com/";

/// The client assertion type of a JWT proving the client's identity.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The most bytes of a token endpoint's answer read.
const MAX_ANSWER: u64 = 256 * 1024;

/// What the token endpoint answers.
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    /// Seconds; some endpoints send it as a string.
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Exchanges `assertion` (a JWT from an issuer the application trusts) for
/// an access token of `scope`, as the application `client_id` of
/// `tenant`.
pub(crate) fn exchange_assertion(
    authority: &Url,
    tenant: &str,
    client_id: &str,
    assertion: &str,
    scope: &str,
    network: &NetworkOptions,
) -> Result<Token, AuthError> {
    let identity = format!("the Entra application {client_id} (tenant {tenant})");
    let fail = |message: String, hint: Option<&'static str>| AuthError {
        identity: identity.clone(),
        message,
        hint,
    };
    let url = token_endpoint(authority, tenant)
        .map_err(|e| fail(format!("no token endpoint under {authority}: {e}"), None))?;
    let agent = shared_agent(&url, network).map_err(|e| fail(e.to_string(), None))?;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", scope),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    let response = match agent.post(url.as_str()).send_form(&form) {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            let answer = read_answer(response);
            let code = answer
                .as_ref()
                .and_then(|a| a.error.clone())
                .unwrap_or_default();
            let detail = answer.and_then(|a| a.error_description).unwrap_or_default();
            let detail = super::redact(&detail).into_owned();
            return Err(fail(
                format!("the token endpoint answered HTTP {status} {code}: {detail}"),
                Some(hint_for(&code)),
            ));
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(fail(format!("cannot reach {url}: {t}"), None));
        }
    };
    let answer = read_answer(response)
        .ok_or_else(|| fail("the token endpoint's answer is not JSON".into(), None))?;
    let secret = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            fail(
                "the token endpoint's answer holds no access_token".into(),
                None,
            )
        })?;
    let life = lifetime(answer.expires_in.as_ref());
    Ok(Token {
        secret,
        expires: life.map(|secs| SystemTime::now() + Duration::from_secs(secs)),
    })
}

/// `{authority}/{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(authority: &Url, tenant: &str) -> Result<Url, url::ParseError> {
    let base = format!("{}/", authority.as_str().trim_end_matches('/'));
    Url::parse(&base)?.join(&format!("{tenant}/oauth2/v2.0/token"))
}

fn read_answer(response: ureq::Response) -> Option<Answer> {
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_end(&mut body)
        .ok()?;
    serde_json::from_slice(&body).ok()
}

/// What to check, from the `error` code of Entra's answer.
fn hint_for(code: &str) -> &'static str {
    match code {
        "invalid_client" | "unauthorized_client" => "check the application (client) id, and that its federated credential's issuer, subject and audience match the token presented",
        "invalid_request" => "check the tenant id and the application id",
        "invalid_scope" => "the application cannot ask for this resource's tokens",
        _ => "check the tenant, the application and its federated credential in Entra ID",
    }
}

/// The resource id of Azure DevOps, which the instance metadata endpoint
/// takes instead of a scope.
pub(crate) const AZURE_DEVOPS_RESOURCE: &str = "499b84ac-1321-427f-aa17-267ca6975798";

/// The instance metadata endpoint of Azure VMs; Azure's SDKs let
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST` name another host (pod identity,
/// and tests), under which the same path is asked.
const IMDS_AUTHORITY: &str = "http://169.254.169.254";

/// The path of the managed identity's tokens under the metadata host.
const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// Times the instance metadata endpoint is asked again (after 1 s, then
/// 2 s) when it is busy.
const IMDS_RETRIES: u32 = 2;

/// The most bytes of a federated token file read: a JWT is a few KiB.
const MAX_ASSERTION: u64 = 64 * 1024;

/// How a side signs in with Entra ID, as the command line says: the
/// per-side flags that override the environment's identity, so the two
/// sides can be different identities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EntraSettings {
    /// `--source-entra-client-id` / `--dest-entra-client-id`: the
    /// application (workload identity) or the user-assigned managed
    /// identity; else `AZURE_CLIENT_ID`.
    pub(crate) client_id: Option<String>,
    /// `--source-entra-tenant` / `--dest-entra-tenant`; else
    /// `AZURE_TENANT_ID`.
    pub(crate) tenant: Option<String>,
}

/// The token source the environment (read through `env`) and `settings`
/// describe: workload identity when `AZURE_FEDERATED_TOKEN_FILE` names a
/// file, else the machine's managed identity. `what` names the side.
pub(crate) fn source(
    what: &str,
    settings: &EntraSettings,
    env: &dyn Fn(&str) -> Option<String>,
    network: &NetworkOptions,
) -> Result<Arc<dyn TokenSource>, String> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let pick = |flag: &Option<String>, name: &str| {
        flag.clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| var(name))
            .map(|v| v.trim().to_owned())
    };
    let client_id = pick(&settings.client_id, "AZURE_CLIENT_ID");
    let Some(token_file) = var("AZURE_FEDERATED_TOKEN_FILE") else {
        let base = var("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        let base = base.as_deref().unwrap_or(IMDS_AUTHORITY);
        let endpoint = Url::parse(&format!("{}{IMDS_TOKEN_PATH}", base.trim_end_matches('/')))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                format!("{what}: AZURE_POD_IDENTITY_AUTHORITY_HOST is not an http:// URL: {base}")
            })?;
        return Ok(Arc::new(ManagedIdentity {
            endpoint,
            client_id,
            timeout: network.timeout,
        }));
    };
    let flag = if what.starts_with("source") {
        "source"
    } else {
        "dest"
    };
    let client_id = client_id.ok_or_else(|| {
        format!("{what}: workload identity (AZURE_FEDERATED_TOKEN_FILE) needs the application's client id: set AZURE_CLIENT_ID or pass --{flag}-entra-client-id")
    })?;
    let tenant = pick(&settings.tenant, "AZURE_TENANT_ID").ok_or_else(|| {
        format!("{what}: workload identity (AZURE_FEDERATED_TOKEN_FILE) needs the tenant id: set AZURE_TENANT_ID or pass --{flag}-entra-tenant")
    })?;
    let host = var("AZURE_AUTHORITY_HOST");
    let host = host.as_deref().unwrap_or(PUBLIC_AUTHORITY);
    let authority = Url::parse(host)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| format!("{what}: AZURE_AUTHORITY_HOST is not a URL: {host}"))?;
    Ok(Arc::new(WorkloadIdentity {
        authority,
        tenant,
        client_id,
        token_file: PathBuf::from(token_file),
        network: network.clone(),
    }))
}

/// Workload identity federation: the federated token in a file (re-read
/// at every fetch, since Kubernetes replaces it before it expires)
/// exchanged for an access token of Azure DevOps.
pub(crate) struct WorkloadIdentity {
    authority: Url,
    tenant: String,
    client_id: String,
    token_file: PathBuf,
    network: NetworkOptions,
}

impl WorkloadIdentity {
    fn assertion(&self) -> Result<String, AuthError> {
        let fail = |e: std::io::Error| {
            AuthError {
            identity: self.identity(),
            message: format!(
                "cannot read the federated token file {} (AZURE_FEDERATED_TOKEN_FILE): {e}",
                self.token_file.display()
            ),
            hint: Some("AZURE_FEDERATED_TOKEN_FILE must name the file the platform writes the identity's token to (Kubernetes workload identity: the projected service account token)"),
        }
        };
        let mut text = String::new();
        std::fs::File::open(&self.token_file)
            .and_then(|f| f.take(MAX_ASSERTION).read_to_string(&mut text))
            .map_err(fail)?;
        let assertion = text.trim().to_owned();
        if assertion.is_empty() {
            return Err(fail(std::io::Error::other("the file is empty")));
        }
        // The assertion proves who we are as well as a password would.
        super::register_secret(&assertion);
        Ok(assertion)
    }
}

impl TokenSource for WorkloadIdentity {
    fn fetch(&self) -> Result<Token, AuthError> {
        let assertion = self.assertion()?;
        exchange_assertion(
            &self.authority,
            &self.tenant,
            &self.client_id,
            &assertion,
            AZURE_DEVOPS_SCOPE,
            &self.network,
        )
    }

    fn scheme(&self) -> (Scheme, String) {
        (Scheme::Bearer, String::new())
    }

    fn identity(&self) -> String {
        format!(
            "the Entra application {} (tenant {})",
            self.client_id, self.tenant
        )
    }
}

/// A managed identity: the machine's own (system-assigned), or the
/// user-assigned one `client_id` names, from the instance metadata
/// endpoint, which answers only on the machine itself.
pub(crate) struct ManagedIdentity {
    endpoint: Url,
    client_id: Option<String>,
    timeout: Duration,
}

impl TokenSource for ManagedIdentity {
    fn fetch(&self) -> Result<Token, AuthError> {
        let fail = |message: String, hint: Option<&'static str>| AuthError {
            identity: self.identity(),
            message,
            hint,
        };
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", "2018-02-01")
            .append_pair("resource", AZURE_DEVOPS_RESOURCE);
        if let Some(id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        // The endpoint is on the machine (a link-local address): never
        // through a proxy, never redirected.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout.min(Duration::from_secs(10)))
            .timeout_read(self.timeout)
            .redirects(0)
            .build();
        let response = match ask_metadata(&agent, &url).map_err(|e| *e) {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let answer = read_answer(response);
                let code = answer.as_ref().and_then(|a| a.error.clone());
                let detail = answer.and_then(|a| a.error_description);
                let detail = super::redact(detail.as_deref().unwrap_or_default()).into_owned();
                return Err(fail(
                    format!(
                        "the instance metadata endpoint answered HTTP {status} {}: {detail}",
                        code.unwrap_or_default()
                    ),
                    Some("check that this identity is assigned to the machine (a user-assigned one is named by its client id, --source-entra-client-id / --dest-entra-client-id or AZURE_CLIENT_ID)"),
                ));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(fail(
                    format!("cannot reach the instance metadata endpoint: {t}"),
                    Some("managed identity works on an Azure VM or agent with an identity assigned; elsewhere set AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID for workload identity"),
                ));
            }
        };
        let answer = read_answer(response).ok_or_else(|| {
            fail(
                "the instance metadata endpoint's answer is not JSON".into(),
                None,
            )
        })?;
        let secret = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                fail(
                    "the instance metadata endpoint's answer holds no access_token".into(),
                    None,
                )
            })?;
        Ok(Token {
            expires: lifetime(answer.expires_in.as_ref())
                .map(|secs| SystemTime::now() + Duration::from_secs(secs)),
            secret,
        })
    }

    fn scheme(&self) -> (Scheme, String) {
        (Scheme::Bearer, String::new())
    }

    fn identity(&self) -> String {
        match &self.client_id {
            Some(id) => format!("the managed identity {id}"),
            None => "this machine's managed identity".to_owned(),
        }
    }
}

/// The instance metadata endpoint's answer, asked again a few times,
/// backing off, while it says it is updating (404, 410), throttles (429)
/// or fails (5xx), as its documentation asks of clients.
fn ask_metadata(agent: &ureq::Agent, url: &Url) -> Result<ureq::Response, Box<ureq::Error>> {
    let mut attempt = 0;
    loop {
        match agent.get(url.as_str()).set("Metadata", "true").call() {
            Err(ureq::Error::Status(404 | 410 | 429 | 500..=599, _)) if attempt < IMDS_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            answer => return answer.map_err(Box::new),
        }
    }
}

/// Seconds an access token lives: a number, or (IMDS) a string of one.
fn lifetime(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_endpoint_is_under_the_tenant() {
        let public = Url::parse(PUBLIC_AUTHORITY).unwrap();
        assert_eq!(
            token_endpoint(&public, "contoso.onmicrosoft.com")
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let local = Url::parse("http://127.0.0.1:8080/entra").unwrap();
        assert_eq!(
            token_endpoint(&local, "t1").unwrap().as_str(),
            "http://127.0.0.1:8080/entra/t1/oauth2/v2.0/token"
        );
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_token_file_means_workload_identity_and_flags_win_over_the_environment() {
        let vars = [
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_CLIENT_ID", "env-client"),
            ("AZURE_TENANT_ID", "env-tenant"),
        ];
        let network = NetworkOptions::default();
        let from_env = source("source", &EntraSettings::default(), &env(&vars), &network).unwrap();
        assert_eq!(
            from_env.identity(),
            "the Entra application env-client (tenant env-tenant)"
        );
        let flags = EntraSettings {
            client_id: Some("flag-client".into()),
            tenant: Some("flag-tenant".into()),
        };
        let from_flags = source("destination", &flags, &env(&vars), &network).unwrap();
        assert_eq!(
            from_flags.identity(),
            "the Entra application flag-client (tenant flag-tenant)"
        );
        assert_eq!(from_flags.scheme(), (Scheme::Bearer, String::new()));
    }

    #[test]
    fn workload_identity_without_a_client_or_tenant_names_what_to_set() {
        let vars = [("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")];
        let network = NetworkOptions::default();
        let err = source(
            "destination",
            &EntraSettings::default(),
            &env(&vars),
            &network,
        )
        .err()
        .unwrap();
        assert!(err.starts_with("destination:"), "{err}");
        assert!(err.contains("AZURE_CLIENT_ID") && err.contains("--dest-entra-client-id"));
        let vars = [
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_CLIENT_ID", "c"),
        ];
        let err = source("source", &EntraSettings::default(), &env(&vars), &network)
            .err()
            .unwrap();
        assert!(err.contains("--source-entra-tenant"), "{err}");
    }

    #[test]
    fn without_a_token_file_the_managed_identity_is_asked() {
        let network = NetworkOptions::default();
        let system = source("source", &EntraSettings::default(), &env(&[]), &network).unwrap();
        assert_eq!(system.identity(), "this machine's managed identity");
        let vars = [("AZURE_CLIENT_ID", "mi-client")];
        let user = source("source", &EntraSettings::default(), &env(&vars), &network).unwrap();
        assert_eq!(user.identity(), "the managed identity mi-client");
        let vars = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", "ftp://x")];
        assert!(source("source", &EntraSettings::default(), &env(&vars), &network).is_err());
    }

    #[test]
    fn a_missing_token_file_is_a_sign_in_error_naming_the_file() {
        let vars = [
            ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/git-relay/token"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_TENANT_ID", "t"),
        ];
        let network = NetworkOptions::default();
        let source = source("source", &EntraSettings::default(), &env(&vars), &network).unwrap();
        let err = source.fetch().unwrap_err();
        assert_eq!(err.identity, "the Entra application c (tenant t)");
        assert!(
            err.message.contains("/nonexistent/git-relay/token"),
            "{err}"
        );
    }

    #[test]
    fn lifetimes_come_as_numbers_or_strings() {
        assert_eq!(lifetime(Some(&serde_json::json!(3599))), Some(3599));
        assert_eq!(lifetime(Some(&serde_json::json!("86399"))), Some(86399));
        assert_eq!(lifetime(Some(&serde_json::json!("soon"))), None);
        assert_eq!(lifetime(None), None);
    }
}

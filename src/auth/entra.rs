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

// Used by the Entra sources and the pipeline task's service connection,
// which arrive in the commits that follow.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use url::Url;

use super::token::{AuthError, Token};
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
    let life = answer.expires_in.as_ref().and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
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
    use std::io::Read as _;
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
}

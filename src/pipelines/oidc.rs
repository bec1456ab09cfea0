//! Entra ID access tokens for a side, through an Azure Resource Manager
//! service connection that uses workload identity federation.
//!
//! Such a connection holds no secret: it names an Entra application (or
//! managed identity) that trusts tokens the pipeline issues for this
//! connection. So each token is two requests: the pipeline's OIDC endpoint
//! (`System.OidcRequestUri`, authorised with the job's own access token and
//! naming the connection) hands out a short-lived OIDC token, and the
//! tenant's Entra token endpoint takes it as a client assertion for an
//! Azure DevOps access token ([`crate::auth::entra::exchange_assertion`]).
//! [`PipelineOidc`] does both on every fetch: an OIDC token lives minutes,
//! so one kept from the start of a long run would be refused when the
//! access token needs replacing.
//!
//! Both tokens are secrets: the OIDC token is registered with the redactor
//! (and so, in task mode, with the agent) before anything can quote it,
//! and the access token by [`Credentials`](crate::auth::Credentials) as it
//! arrives.

use std::io::Read as _;

use serde::Deserialize;
use url::Url;

use crate::auth::entra::{exchange_assertion, AZURE_DEVOPS_SCOPE};
use crate::auth::{self, AuthError, Scheme, Token, TokenSource};
use crate::transport::{shared_agent, NetworkOptions};

/// The API version the pipeline's OIDC endpoint is asked for.
const API_VERSION: &str = "7.1";

/// The most bytes of the OIDC endpoint's answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// An Azure Resource Manager service connection with workload identity
/// federation, and what the pipeline needs to vouch for it.
pub(crate) struct PipelineOidc {
    /// `System.OidcRequestUri`.
    pub(crate) request_uri: Url,
    /// System.AccessToken, which authorises the OIDC request.
    pub(crate) job_token: String,
    /// The service connection's id.
    pub(crate) connection: String,
    /// Where Entra ID is (the connection's cloud).
    pub(crate) authority: Url,
    /// The connection's tenant.
    pub(crate) tenant: String,
    /// The application (client) id of its service principal.
    pub(crate) client_id: String,
    /// TLS, proxy and timeouts of the side.
    pub(crate) network: NetworkOptions,
}

/// What the OIDC endpoint answers.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "oidcToken")]
    oidc_token: Option<String>,
    message: Option<String>,
}

impl PipelineOidc {
    /// A new OIDC token for the connection, registered as a secret.
    fn oidc_token(&self) -> Result<String, AuthError> {
        let fail = |message: String, hint: Option<&'static str>| AuthError {
            identity: self.identity(),
            message,
            hint,
        };
        let mut url = self.request_uri.clone();
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION)
            .append_pair("serviceConnectionId", &self.connection);
        let agent = shared_agent(&url, &self.network).map_err(|e| fail(e.to_string(), None))?;
        let request = agent
            .post(url.as_str())
            .set("Authorization", &format!("Bearer {}", self.job_token))
            .set("Content-Type", "application/json")
            // Azure DevOps answers an unauthorised request with a redirect to
            // a sign-in page unless told not to.
            .set("X-TFS-FedAuthRedirect", "Suppress");
        let shown = auth::redacted_url(self.request_uri.as_str());
        let response = match request.send_bytes(&[]) {
            Ok(response) if response.status() == 200 => response,
            Ok(response) => {
                let status = response.status();
                return Err(fail(
                    format!("the pipeline's OIDC endpoint {shown} answered HTTP {status} instead of a token"),
                    Some(OIDC_HINT),
                ));
            }
            Err(ureq::Error::Status(status, response)) => {
                let detail = read_answer(response)
                    .and_then(|a| a.message)
                    .map(|m| format!(": {}", auth::redact(&m)))
                    .unwrap_or_default();
                let hint = match status {
                    401 | 403 => JOB_TOKEN_HINT,
                    _ => OIDC_HINT,
                };
                return Err(fail(
                    format!("the pipeline's OIDC endpoint {shown} answered HTTP {status}{detail}"),
                    Some(hint),
                ));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(fail(format!("cannot reach {shown}: {t}"), None));
            }
        };
        let token = read_answer(response)
            .and_then(|a| a.oidc_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                fail(
                    format!("the pipeline's OIDC endpoint {shown} answered without an oidcToken"),
                    Some(OIDC_HINT),
                )
            })?;
        // Before anything could print it: Entra's error text may quote it.
        auth::register_secret(&token);
        Ok(token)
    }
}

/// What to check when the OIDC endpoint refuses the connection.
const OIDC_HINT: &str = "check that the service connection exists, uses workload identity federation, and that this pipeline is allowed to use it (Project settings → Service connections → Security)";

/// What to check when it refuses the job's token.
const JOB_TOKEN_HINT: &str = "the job's access token (System.AccessToken) was refused: check that the pipeline may use its OAuth token and that its build identity is not disabled";

impl TokenSource for PipelineOidc {
    fn fetch(&self) -> Result<Token, AuthError> {
        let assertion = self.oidc_token()?;
        exchange_assertion(
            &self.authority,
            &self.tenant,
            &self.client_id,
            &assertion,
            AZURE_DEVOPS_SCOPE,
            &self.network,
        )
        .map_err(|e| AuthError {
            identity: self.identity(),
            ..e
        })
    }

    fn scheme(&self) -> (Scheme, String) {
        (Scheme::Bearer, String::new())
    }

    fn identity(&self) -> String {
        format!(
            "the Entra application {} (tenant {}) of service connection {}",
            self.client_id, self.tenant, self.connection
        )
    }
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

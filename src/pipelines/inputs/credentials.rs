//! A side's credentials: the authentication choice (a token, the
//! pipeline's System.AccessToken, a service connection) and the inputs it
//! reads, the same in both modes.

use super::{Collector, Environment, AUTHENTICATION_CHOICES};
use crate::auth::Scheme;
use crate::config::SideConfig;
use crate::transport::NetworkOptions;

/// The input names of one side.
pub(super) struct SideInputs {
    pub(super) side: &'static str,
    pub(super) uri: &'static str,
    pub(super) authentication: &'static str,
    pub(super) username: &'static str,
    pub(super) token: &'static str,
    pub(super) service_connection: &'static str,
    pub(super) github_connection: &'static str,
    pub(super) verify: &'static str,
}

pub(super) const SOURCE: SideInputs = SideInputs {
    side: "source",
    uri: "sourceGitRepositoryUri",
    authentication: "sourceAuthentication",
    username: "sourceUsername",
    token: "sourceGitRepositoryPersonalAccessToken",
    service_connection: "sourceServiceConnection",
    github_connection: "sourceGitHubConnection",
    verify: "sourceVerifySSLCertificate",
};

pub(super) const DESTINATION: SideInputs = SideInputs {
    side: "destination",
    uri: "destinationGitRepositoryUri",
    authentication: "destinationAuthentication",
    username: "destinationUsername",
    token: "destinationGitRepositoryPersonalAccessToken",
    service_connection: "destinationServiceConnection",
    github_connection: "destinationGitHubConnection",
    verify: "destinationVerifySSLCertificate",
};

/// What one side's authentication inputs amount to, before the URL is
/// taken into account.
#[derive(Default)]
pub(super) struct SideCredentials {
    pub(super) token: Option<String>,
    pub(super) username: Option<String>,
    auth: Scheme,
    /// How the side signs in, for the log.
    pub(super) described: String,
}

impl SideCredentials {
    /// The side's settings with these credentials.
    pub(super) fn config(&self, network: NetworkOptions) -> SideConfig {
        SideConfig {
            token: self.token.clone(),
            username: self.username.clone(),
            scheme: self.auth,
            sign_in: crate::config::SignIn::Token,
            network,
        }
    }
}

/// A side's credentials from its authentication choice; `None` when the
/// choice cannot be honoured.
pub(super) fn read_credentials(
    env: &Environment,
    names: &SideInputs,
    c: &mut Collector,
) -> Option<SideCredentials> {
    let choice = match env.input(names.authentication) {
        "" => "token",
        other => other,
    };
    let choice = AUTHENTICATION_CHOICES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(choice))
        .copied();
    match choice {
        Some("token") => {
            let token = env.input(names.token);
            c.secret(token);
            let username = Some(env.input(names.username)).filter(|u| !u.is_empty());
            let described = if token.is_empty() {
                "no token"
            } else {
                "personal access token"
            };
            Some(SideCredentials {
                token: Some(token.to_owned()).filter(|t| !t.is_empty()),
                username: username.map(str::to_owned),
                auth: Scheme::Basic,
                described: described.to_owned(),
            })
        }
        Some("systemAccessToken") => {
            let token = env
                .endpoint_parameter("SYSTEMVSSCONNECTION", "ACCESSTOKEN")
                .or_else(|| env.var("SYSTEM_ACCESSTOKEN").map(str::to_owned));
            let Some(token) = token else {
                c.error(
                    names.authentication,
                    "systemAccessToken was chosen but the agent passed no System.AccessToken (ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN is not set); run on an Azure Pipelines agent, or map it with `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`",
                );
                return None;
            };
            c.secret(&token);
            Some(SideCredentials {
                token: Some(token),
                username: None,
                auth: Scheme::Bearer,
                described: "System.AccessToken (bearer)".to_owned(),
            })
        }
        Some("serviceConnection") => read_connection(env, names.service_connection, false, c),
        Some("gitHubConnection") => read_connection(env, names.github_connection, true, c),
        _ => {
            c.error(
                names.authentication,
                format!(
                    "unknown value `{}`: use one of {}",
                    env.input(names.authentication),
                    AUTHENTICATION_CHOICES.join(", ")
                ),
            );
            None
        }
    }
}

/// Reads the credentials of a service connection named by `input`.
fn read_connection(
    env: &Environment,
    input: &'static str,
    github: bool,
    c: &mut Collector,
) -> Option<SideCredentials> {
    let id = env.input(input);
    if id.is_empty() {
        c.error(
            input,
            "required when this authentication is chosen: the service connection to use",
        );
        return None;
    }
    let Some(scheme) = env.endpoint_scheme(id) else {
        c.error(
            input,
            format!("the agent passed no credentials for service connection {id}: check that it exists and that this pipeline is allowed to use it"),
        );
        return None;
    };
    if github {
        // A GitHub PAT connection names its parameter `accessToken`; OAuth
        // and token connections `AccessToken`: the lookup ignores case.
        let Some(token) = env.endpoint_parameter(id, "ACCESSTOKEN") else {
            c.error(input, format!("GitHub service connection {id} (scheme {scheme}) carries no access token; use a personal access token or OAuth connection"));
            return None;
        };
        c.secret(&token);
        let described = format!("GitHub service connection ({scheme})");
        return Some(SideCredentials {
            token: Some(token),
            username: Some("x-access-token".to_owned()),
            auth: Scheme::Basic,
            described,
        });
    }
    let password = env
        .endpoint_parameter(id, "PASSWORD")
        .or_else(|| env.endpoint_parameter(id, "ACCESSTOKEN"))
        .or_else(|| env.endpoint_parameter(id, "APITOKEN"));
    let Some(password) = password else {
        c.error(
            input,
            format!("service connection {id} (scheme {scheme}) carries no password or token"),
        );
        return None;
    };
    c.secret(&password);
    let username = env.endpoint_parameter(id, "USERNAME");
    Some(SideCredentials {
        token: Some(password),
        username,
        auth: Scheme::Basic,
        described: format!("service connection ({scheme})"),
    })
}

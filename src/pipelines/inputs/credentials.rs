//! A side's credentials: the authentication choice (a token, the
//! pipeline's System.AccessToken, a service connection of one of the kinds
//! that fit, Entra ID through an Azure Resource Manager connection, a
//! GitHub App of the pipeline's own) and the inputs it reads, the same in
//! both modes.
//!
//! Each kind of service connection arrives with the parameters of its
//! authentication scheme: a GitHub connection's token is `accessToken`
//! (personal access token), `AccessToken` (OAuth, token) or `IdToken` (the
//! Azure Pipelines app's installation token); an Azure Repos/Team
//! Foundation Server connection's `apitoken` (token) or `username` and
//! `password`; a generic one's `username` and `password`; an Azure Resource
//! Manager connection with workload identity federation carries no secret,
//! only `serviceprincipalid` and `tenantid`.
//!
//! A GitHub App of the organization's own (choice `gitHubApp`) is no
//! service connection: Azure DevOps has no connection type that holds an
//! app's private key, so the key arrives as an input, from a secret
//! variable or a secure file. An SSH side's private key arrives the same
//! way, and is read by the same code. These are the long-lived secrets the
//! task reads that are several lines long; every line of one is a secret of
//! its own, since a log line can only ever quote one.

use std::sync::Arc;

use url::Url;

use super::{Collector, Environment, AUTHENTICATION_CHOICES};
use crate::auth::entra::PUBLIC_AUTHORITY;
use crate::auth::github_app::{self, AppKey, GitHubApp};
use crate::auth::{Credentials, Scheme};
use crate::config::{SideConfig, SignIn};
use crate::pipelines::oidc::PipelineOidc;
use crate::transport::{NetworkOptions, SshOptions};

/// The input names of one side.
pub(super) struct SideInputs {
    pub(super) side: &'static str,
    pub(super) uri: &'static str,
    pub(super) authentication: &'static str,
    pub(super) username: &'static str,
    pub(super) token: &'static str,
    pub(super) service_connection: &'static str,
    pub(super) github_connection: &'static str,
    pub(super) azure_repos_connection: &'static str,
    pub(super) azure_subscription: &'static str,
    pub(super) github_app_id: &'static str,
    pub(super) github_app_key: &'static str,
    pub(super) github_app_api: &'static str,
    pub(super) verify: &'static str,
    pub(super) ssh_key: &'static str,
    pub(super) ssh_known_hosts: &'static str,
    pub(super) ssh_accept_new: &'static str,
}

pub(super) const SOURCE: SideInputs = SideInputs {
    side: "source",
    uri: "sourceGitRepositoryUri",
    authentication: "sourceAuthentication",
    username: "sourceUsername",
    token: "sourceGitRepositoryPersonalAccessToken",
    service_connection: "sourceServiceConnection",
    github_connection: "sourceGitHubConnection",
    azure_repos_connection: "sourceAzureReposConnection",
    azure_subscription: "sourceAzureSubscription",
    github_app_id: "sourceGitHubAppId",
    github_app_key: "sourceGitHubAppPrivateKey",
    github_app_api: "sourceGitHubAppApiUrl",
    verify: "sourceVerifySSLCertificate",
    ssh_key: "sourceSshKey",
    ssh_known_hosts: "sourceSshKnownHosts",
    ssh_accept_new: "sourceSshAcceptNewHostKeys",
};

pub(super) const DESTINATION: SideInputs = SideInputs {
    side: "destination",
    uri: "destinationGitRepositoryUri",
    authentication: "destinationAuthentication",
    username: "destinationUsername",
    token: "destinationGitRepositoryPersonalAccessToken",
    service_connection: "destinationServiceConnection",
    github_connection: "destinationGitHubConnection",
    azure_repos_connection: "destinationAzureReposConnection",
    azure_subscription: "destinationAzureSubscription",
    github_app_id: "destinationGitHubAppId",
    github_app_key: "destinationGitHubAppPrivateKey",
    github_app_api: "destinationGitHubAppApiUrl",
    verify: "destinationVerifySSLCertificate",
    ssh_key: "destinationSshKey",
    ssh_known_hosts: "destinationSshKnownHosts",
    ssh_accept_new: "destinationSshAcceptNewHostKeys",
};

/// What one side's authentication inputs amount to, before the URL is
/// taken into account.
#[derive(Default)]
pub(super) struct SideCredentials {
    pub(super) token: Option<String>,
    pub(super) username: Option<String>,
    auth: Scheme,
    /// An Entra ID service connection, which signs in without a token.
    entra: Option<EntraConnection>,
    /// A GitHub App, which signs in with installation tokens.
    app: Option<GitHubApp>,
    /// The API the app input names (GitHub Enterprise Server), which an
    /// organization's scope is listed at too.
    pub(super) app_api: Option<Url>,
    /// How the side signs in, for the log.
    pub(super) described: String,
}

/// What an Azure Resource Manager connection with workload identity
/// federation, and the pipeline, say about signing in through it.
#[derive(Clone)]
struct EntraConnection {
    request_uri: Url,
    job_token: String,
    connection: String,
    authority: Url,
    tenant: String,
    client_id: String,
}

impl SideCredentials {
    /// The side's settings with these credentials. An Entra connection
    /// becomes a token source here, where the side's network settings
    /// (which its token requests use too) are known.
    pub(super) fn config(&self, network: NetworkOptions) -> SideConfig {
        let sign_in = match (&self.entra, &self.app) {
            (_, Some(app)) => SignIn::GitHubApp(app.clone()),
            (None, None) => SignIn::Token,
            (Some(e), None) => SignIn::Source(Credentials::from_source(Arc::new(PipelineOidc {
                request_uri: e.request_uri.clone(),
                job_token: e.job_token.clone(),
                connection: e.connection.clone(),
                authority: e.authority.clone(),
                tenant: e.tenant.clone(),
                client_id: e.client_id.clone(),
                // A side's certificate check may be off for its git server
                // (a private Azure DevOps Server); never for Entra ID or the
                // pipeline, which hand out its tokens.
                network: NetworkOptions {
                    insecure: false,
                    ..network.clone()
                },
            }))),
        };
        SideConfig {
            token: self.token.clone(),
            username: self.username.clone(),
            scheme: self.auth,
            sign_in,
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
                super::NO_TOKEN
            } else {
                "personal access token"
            };
            Some(SideCredentials {
                token: Some(token.to_owned()).filter(|t| !t.is_empty()),
                username: username.map(str::to_owned),
                auth: Scheme::Basic,
                entra: None,
                app: None,
                app_api: None,
                described: described.to_owned(),
            })
        }
        Some("systemAccessToken") => {
            let Some(token) = job_token(env) else {
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
                entra: None,
                app: None,
                app_api: None,
                described: "System.AccessToken (bearer)".to_owned(),
            })
        }
        Some("serviceConnection") => {
            read_connection(env, names.service_connection, Connection::Generic, c)
        }
        Some("gitHubConnection") => {
            read_connection(env, names.github_connection, Connection::GitHub, c)
        }
        Some("azureReposConnection") => {
            read_connection(env, names.azure_repos_connection, Connection::AzureRepos, c)
        }
        Some("entra") => read_entra(env, names, c),
        Some("gitHubApp") => read_github_app(env, names, c),
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

/// The job's own token: the `SYSTEMVSSCONNECTION` endpoint every task
/// gets, else the variable a script step maps.
fn job_token(env: &Environment) -> Option<String> {
    env.endpoint_parameter("SYSTEMVSSCONNECTION", "ACCESSTOKEN")
        .or_else(|| env.var("SYSTEM_ACCESSTOKEN").map(str::to_owned))
}

/// The kinds of service connection that carry a token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connection {
    /// Generic: a username and a password.
    Generic,
    /// GitHub: a personal access token, OAuth, a token, or the Azure
    /// Pipelines app's installation token.
    GitHub,
    /// Azure Repos/Team Foundation Server: a token, or a username and a
    /// password.
    AzureRepos,
}

/// The service connection id an input names, and its scheme; `None` (and
/// a problem) when either is missing.
fn connection_id<'e>(
    env: &'e Environment,
    input: &'static str,
    c: &mut Collector,
) -> Option<(&'e str, String)> {
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
    Some((id, scheme))
}

/// Reads the credentials of a service connection named by `input`.
fn read_connection(
    env: &Environment,
    input: &'static str,
    kind: Connection,
    c: &mut Collector,
) -> Option<SideCredentials> {
    let (id, scheme) = connection_id(env, input, c)?;
    if kind == Connection::GitHub {
        // The parameter holding the token depends on the scheme; the
        // lookup ignores case (`accessToken` for a personal access token,
        // `AccessToken` for OAuth and token connections).
        let (key, what) = match scheme.to_ascii_lowercase().as_str() {
            "installationtoken" => ("IDTOKEN", "Azure Pipelines app installation token"),
            "personalaccesstoken" => ("ACCESSTOKEN", "personal access token"),
            "oauth" | "oauth2" => ("ACCESSTOKEN", "OAuth"),
            _ => ("ACCESSTOKEN", "token"),
        };
        let Some(token) = env.endpoint_parameter(id, key) else {
            c.error(input, format!("GitHub service connection {id} (scheme {scheme}) carries no access token; use a personal access token, OAuth or GitHub App connection"));
            return None;
        };
        c.secret(&token);
        return Some(SideCredentials {
            token: Some(token),
            username: Some("x-access-token".to_owned()),
            auth: Scheme::Basic,
            entra: None,
            app: None,
            app_api: None,
            described: format!("GitHub service connection ({what})"),
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
    let described = match kind {
        Connection::AzureRepos => format!("Azure Repos service connection ({scheme})"),
        _ => format!("service connection ({scheme})"),
    };
    Some(SideCredentials {
        token: Some(password),
        username,
        auth: Scheme::Basic,
        entra: None,
        app: None,
        app_api: None,
        described,
    })
}

/// Reads an Azure Resource Manager connection that signs in with workload
/// identity federation, and what the pipeline needs to vouch for it.
fn read_entra(env: &Environment, names: &SideInputs, c: &mut Collector) -> Option<SideCredentials> {
    let input = names.azure_subscription;
    let (id, scheme) = connection_id(env, input, c)?;
    if !scheme.eq_ignore_ascii_case("WorkloadIdentityFederation") {
        c.error(
            input,
            format!("service connection {id} uses scheme {scheme}; git-relay signs in to Entra ID with workload identity federation only: convert the connection to workload identity federation, or create one that uses it"),
        );
        return None;
    }
    let client_id = env.endpoint_parameter(id, "SERVICEPRINCIPALID");
    let tenant = env.endpoint_parameter(id, "TENANTID");
    let (Some(client_id), Some(tenant)) = (client_id, tenant) else {
        c.error(
            input,
            format!("service connection {id} names no service principal id or tenant id"),
        );
        return None;
    };
    // As Microsoft's own tasks read it: the MSAL authority, else the older
    // name, else the public cloud.
    let authority = env
        .endpoint_data(id, "ACTIVEDIRECTORYAUTHORITY")
        .or_else(|| env.endpoint_data(id, "ENVIRONMENTAUTHORITYURL"))
        .unwrap_or_else(|| PUBLIC_AUTHORITY.to_owned());
    let authority = match Url::parse(&authority) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => url,
        _ => {
            c.error(
                input,
                format!(
                    "service connection {id} names an authority that is not a URL: {authority}"
                ),
            );
            return None;
        }
    };
    let Some(job_token) = job_token(env) else {
        c.error(
            input,
            "Entra ID sign-in asks the pipeline for an OIDC token with the job's access token, and the agent passed none (ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN is not set)",
        );
        return None;
    };
    c.secret(&job_token);
    let request_uri = env.var("SYSTEM_OIDCREQUESTURI").map(Url::parse);
    let Some(Ok(request_uri)) = request_uri else {
        c.error(
            input,
            "Entra ID sign-in needs the pipeline's OIDC endpoint, and the agent set no valid System.OidcRequestUri: run on Azure DevOps Services with a current agent",
        );
        return None;
    };
    Some(SideCredentials {
        token: None,
        username: None,
        auth: Scheme::Bearer,
        app: None,
        app_api: None,
        described: format!(
            "Entra ID: application {client_id}, tenant {tenant}, through service connection {id}"
        ),
        entra: Some(EntraConnection {
            request_uri,
            job_token,
            connection: id.to_owned(),
            authority,
            tenant,
            client_id,
        }),
    })
}

/// Reads a GitHub App: its id, its private key (PEM text, or the path of
/// a PEM file such as a secure file's) and, for GitHub Enterprise Server,
/// its API. The key is checked here, so that a key that cannot be used is
/// reported against its input before anything is sent.
fn read_github_app(
    env: &Environment,
    names: &SideInputs,
    c: &mut Collector,
) -> Option<SideCredentials> {
    let key = read_app_key(env, names.github_app_key, c);
    let app_id = env.input(names.github_app_id).trim();
    if app_id.is_empty() {
        c.error(
            names.github_app_id,
            "required when gitHubApp is chosen: the app's id (or client id), from its settings page (General, About)",
        );
    }
    let api = c.parse(env, names.github_app_api, |text| match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => Ok(url),
        _ => Err(format!(
            "expected the GitHub API's URL, such as https://github.example.com/api/v3, got `{text}`"
        )),
    });
    let key = key?;
    if app_id.is_empty() || (api.is_none() && !env.input(names.github_app_api).is_empty()) {
        return None;
    }
    let described = match &api {
        Some(api) => format!("GitHub App {app_id} (installation tokens from {api})"),
        None => format!("GitHub App {app_id} (installation tokens)"),
    };
    Some(SideCredentials {
        token: None,
        username: None,
        auth: Scheme::Basic,
        entra: None,
        app: Some(GitHubApp::new(app_id, AppKey::Pem(key), api.clone())),
        app_api: api,
        described,
    })
}

/// The app's private key as PEM text, checked: a key that is no usable
/// RSA key is an error naming the input.
fn read_app_key(env: &Environment, input: &'static str, c: &mut Collector) -> Option<String> {
    let text = read_key_text(
        env,
        input,
        "required when gitHubApp is chosen: the app's private key, as PEM text from a secret variable (e.g. $(GitHubAppKey)) or the path of the .pem file (e.g. $(appKey.secureFilePath) after a DownloadSecureFile step)",
        c,
    )?;
    match github_app::parse_key(&text) {
        Ok(_) => Some(text),
        Err(e) => {
            c.error(input, format!("the GitHub App's private key: {e}"));
            None
        }
    }
}

/// A side's SSH settings: its private key (text from a secret variable or
/// a secure file's path, read as the GitHub App's key is), the known-hosts
/// lines to check the host against, and the opt-in to trust a new host.
/// A key read from a file is handed on as text too: `ssh` refuses a key
/// file others can read, and a downloaded secure file may well be one; the
/// transport writes the text to a private file of its own.
pub(super) fn read_ssh(env: &Environment, names: &SideInputs, c: &mut Collector) -> SshOptions {
    let key_text = match env.input(names.ssh_key) {
        "" => None,
        _ => read_key_text(env, names.ssh_key, "", c),
    };
    let known_hosts = env.input(names.ssh_known_hosts);
    let accept_new_host_keys = super::read_bool(env, names.ssh_accept_new, false, c);
    SshOptions {
        key_file: None,
        key_text,
        known_hosts_file: None,
        known_hosts_text: (!known_hosts.is_empty()).then(|| known_hosts_lines(known_hosts)),
        accept_new_host_keys,
    }
}

/// Known-hosts text with its lines restored: a pipeline variable cannot
/// hold line breaks, and `ssh` reads what follows a line's key as a
/// comment, so every key but the first would be lost. Each line is
/// `[@marker] hosts keytype key [comment]`, and a key type is a word of its
/// own shape followed by a key (base64 of a blob that opens with the type's
/// length, hence `AAAA`), so a line starts at the hosts before each.
fn known_hosts_lines(text: &str) -> String {
    if text.contains('\n') {
        return text.to_owned() + "\n";
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let is_type = |i: usize| {
        ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
            .iter()
            .any(|p| words[i].starts_with(p))
            && words.get(i + 1).is_some_and(|k| k.starts_with("AAAA"))
    };
    let mut starts: Vec<usize> = (1..words.len())
        .filter(|&i| is_type(i))
        .map(|i| match i {
            2.. if words[i - 2].starts_with('@') => i - 2,
            _ => i - 1,
        })
        .collect();
    starts.dedup();
    if starts.len() < 2 {
        return text.to_owned() + "\n";
    }
    starts[0] = 0;
    let mut lines = String::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(words.len());
        lines.push_str(&words[start..end].join(" "));
        lines.push('\n');
    }
    lines
}

/// A private key's PEM text: the input itself when it holds PEM text, else
/// the file it names (a secure file's path). Every line of the key is a
/// secret, told to the agent before anything is printed. `required` is the
/// message when the input is empty.
fn read_key_text(
    env: &Environment,
    input: &'static str,
    required: &str,
    c: &mut Collector,
) -> Option<String> {
    let value = env.input(input);
    if value.trim().is_empty() {
        c.error(input, required);
        return None;
    }
    let text = if value.contains("-----BEGIN") {
        value.to_owned()
    } else {
        match std::fs::read_to_string(value) {
            Ok(text) => text,
            Err(e) => {
                // It may be a key pasted without its BEGIN line: a secret,
                // and not quoted.
                c.secret(value);
                c.error(
                    input,
                    format!("neither PEM text (no -----BEGIN line) nor the path of a readable file ({e}): give the key's text from a secret variable, or the secure file's path"),
                );
                return None;
            }
        }
    };
    let text = pem_lines(&text);
    for line in text.lines().filter(|l| !l.starts_with("-----")) {
        c.secret(line);
    }
    Some(text)
}

/// PEM text with its lines restored: a secret variable cannot hold line
/// breaks (a key pasted into one arrives with spaces instead), and some
/// stores keep them as the two characters `\n`. The body is base64, which
/// holds neither, so every run of whitespace in it was a line break.
fn pem_lines(text: &str) -> String {
    let text = text.replace("\\r\\n", "\n").replace("\\n", "\n");
    let (Some(begin), Some(end)) = (text.find("-----BEGIN "), text.rfind("-----END ")) else {
        return text;
    };
    let header_end = text[begin + 11..]
        .find("-----")
        .map(|i| begin + 11 + i + 5)
        .filter(|&i| i <= end);
    let Some(header_end) = header_end else {
        return text;
    };
    let footer = text[end + 9..]
        .find("-----")
        .map_or(&text[end..], |i| &text[end..end + 9 + i + 5]);
    let body = &text[header_end..end];
    // An encrypted key's headers (`Proc-Type: 4,ENCRYPTED`) hold spaces of
    // their own: left as they are, for parse_key to refuse by name.
    if body.contains(':') {
        return text;
    }
    let mut lines = vec![&text[begin..header_end]];
    lines.extend(body.split_whitespace());
    lines.push(footer.trim());
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::known_hosts_lines;

    #[test]
    fn known_hosts_lines_flattened_by_a_variable_are_restored() {
        let lines = "github.com ssh-ed25519 AAAAC3 comment here\n\
                     @cert-authority *.example.com ssh-rsa AAAAB3\n\
                     [h]:2222,10.0.0.1 ecdsa-sha2-nistp256 AAAAE2\n\
                     ssh-host.example ssh-rsa AAAAB3 ssh-keyscan said\n";
        let flat = lines.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(known_hosts_lines(&flat), lines);
        assert_eq!(known_hosts_lines(lines.trim_end()), lines);
        let one = "github.com ssh-ed25519 AAAAC3";
        assert_eq!(known_hosts_lines(one), format!("{one}\n"));
        // Not known-hosts text at all: left for ssh to judge.
        assert_eq!(known_hosts_lines("nonsense"), "nonsense\n");
    }
}

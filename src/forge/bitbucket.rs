//! Bitbucket Cloud workspaces and Bitbucket Server / Data Center projects.
//!
//! The two products share a name and little else: Cloud pages by a `next`
//! URL in the body, Server by `isLastPage`/`nextPageStart`; both give clone
//! URLs in `links.clone[]`, named `https` on Cloud and `http` on Server.
//!
//! Bitbucket Cloud signs in three ways, told apart here by the user name
//! given with the token ([`api_token_for_git`]):
//!
//! - an Atlassian API token (what replaced app passwords): the REST API
//!   takes it in Basic with the account's email address, git over HTTPS
//!   with the user name `x-bitbucket-api-token-auth` (or the Bitbucket
//!   user name, never the email). A user name holding `@` is that email:
//!   the API gets it, git gets [`API_TOKEN_GIT_USER`];
//! - an access token (repository, project or workspace): Bearer for the
//!   API, `x-token-auth` for git (no user name given);
//! - an app password (until Atlassian turns them off): the Bitbucket user
//!   name for both.

use serde_json::{json, Value};
use url::Url;

use super::{join, text, Api, Created, ForgeError, NewRepo, RemoteRepo, Scope};

/// The user name git over HTTPS takes with an Atlassian API token.
pub(crate) const API_TOKEN_GIT_USER: &str = "x-bitbucket-api-token-auth";

/// Whether a user name is an Atlassian account's email address: Bitbucket
/// user names hold no `@`.
fn is_account_email(username: &str) -> bool {
    username.contains('@')
}

/// The token git sends to Bitbucket Cloud as [`API_TOKEN_GIT_USER`], when
/// what the user gave is an API token: `username` is an email address, or
/// no user is named and `token` is `email:token`. `None` otherwise (an
/// access token, an app password): git signs in as usual.
pub(crate) fn api_token_for_git<'a>(
    username: Option<&str>,
    token: Option<&'a str>,
) -> Option<&'a str> {
    let token = token.filter(|t| !t.is_empty())?;
    match username {
        Some(user) => is_account_email(user).then_some(token),
        None => token
            .split_once(':')
            .filter(|(user, _)| is_account_email(user))
            .map(|(_, secret)| secret),
    }
}

/// The HTTP(S) clone link of a repository.
fn clone_href(repo: &Value) -> String {
    repo["links"]["clone"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| matches!(l["name"].as_str(), Some("https" | "http")))
        .map(|l| text(l, "href"))
        .unwrap_or_default()
}

/// Every repository of a Cloud workspace.
pub(super) fn list_cloud(api: &Api, scope: &Scope) -> Result<Vec<RemoteRepo>, ForgeError> {
    let mut first = join(&scope.api, &["repositories", &scope.owner]);
    first.query_pairs_mut().append_pair("pagelen", "100");
    let mut repos = Vec::new();
    api.pages(first, |reply| {
        for r in reply.items("values")? {
            repos.push(RemoteRepo {
                owner: scope.owner.clone(),
                project: scope.owner.clone(),
                name: text(r, "slug"),
                clone_url: clone_href(r),
                disabled: false,
                archived: false,
                fork: r["parent"].is_object(),
                default_branch: super::branch_name(&r["mainbranch"]["name"]),
                has_wiki: false,
                wiki: false,
            });
        }
        reply.json["next"]
            .as_str()
            .map(|next| reply.url.join(next))
            .transpose()
            .map_err(|e| ForgeError::new(format!("{}: bad `next` URL: {e}", api.name())))
    })?;
    Ok(repos)
}

fn server_repos(scope: &Scope) -> Url {
    match scope.owner.strip_prefix('~') {
        Some(user) => join(&scope.api, &["users", user, "repos"]),
        None => join(&scope.api, &["projects", &scope.owner, "repos"]),
    }
}

/// Every repository of a Server project (or personal space `~user`).
pub(super) fn list_server(api: &Api, scope: &Scope) -> Result<Vec<RemoteRepo>, ForgeError> {
    let base = server_repos(scope);
    let page = |start: u64| {
        let mut url = base.clone();
        url.query_pairs_mut()
            .append_pair("limit", "100")
            .append_pair("start", &start.to_string());
        url
    };
    let mut repos = Vec::new();
    api.pages(page(0), |reply| {
        for r in reply.items("values")? {
            repos.push(RemoteRepo {
                owner: scope.owner.clone(),
                project: r["project"]["key"]
                    .as_str()
                    .unwrap_or(&scope.owner)
                    .to_owned(),
                name: text(r, "slug"),
                clone_url: clone_href(r),
                disabled: false,
                archived: r["archived"].as_bool().unwrap_or(false),
                fork: r["origin"].is_object(),
                // The repository listing of Server carries no default branch.
                default_branch: None,
                has_wiki: false,
                wiki: false,
            });
        }
        let last = reply.json["isLastPage"].as_bool().unwrap_or(true);
        Ok(match reply.json["nextPageStart"].as_u64() {
            Some(start) if !last => Some(page(start)),
            _ => None,
        })
    })?;
    Ok(repos)
}

/// Creates a private repository in a Cloud workspace.
pub(super) fn create_cloud(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
) -> Result<Created, ForgeError> {
    let url = join(&scope.api, &["repositories", &scope.owner, &repo.name]);
    api.post(&url, &json!({ "scm": "git", "is_private": true }))?;
    Ok(Created::Created)
}

/// Creates a repository in a Server project.
pub(super) fn create_server(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
) -> Result<Created, ForgeError> {
    api.post(
        &server_repos(scope),
        &json!({ "name": repo.name, "scmId": "git" }),
    )?;
    Ok(Created::Created)
}

/// Makes `branch` the main branch of a Cloud repository.
pub(super) fn set_main_branch_cloud(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
    branch: &str,
) -> Result<(), ForgeError> {
    let url = join(&scope.api, &["repositories", &scope.owner, &repo.name]);
    api.put(&url, &json!({ "mainbranch": { "name": branch } }))?;
    Ok(())
}

/// Makes `branch` the default of a Server repository (the `default-branch`
/// resource; its `branches/default` predecessor is deprecated).
pub(super) fn set_default_branch_server(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
    branch: &str,
) -> Result<(), ForgeError> {
    let mut url = server_repos(scope);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend([repo.name.as_str(), "default-branch"]);
    }
    api.put(&url, &json!({ "id": format!("refs/heads/{branch}") }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_with_the_token_means_an_api_token() {
        let email = Some("dev@example.com");
        assert_eq!(
            api_token_for_git(email, Some("ATATT-tok")),
            Some("ATATT-tok")
        );
        assert_eq!(
            api_token_for_git(None, Some("dev@example.com:ATATT-tok")),
            Some("ATATT-tok")
        );
        // A Bitbucket user name (an app password), a bare access token, the
        // static user name itself: git signs in as told.
        assert_eq!(api_token_for_git(Some("dev"), Some("app-pass")), None);
        assert_eq!(api_token_for_git(None, Some("access-token")), None);
        assert_eq!(api_token_for_git(None, Some("dev:app-pass")), None);
        assert_eq!(api_token_for_git(Some(API_TOKEN_GIT_USER), Some("t")), None);
        assert_eq!(api_token_for_git(email, None), None);
        assert_eq!(api_token_for_git(email, Some("")), None);
    }
}

//! Bitbucket Cloud workspaces and Bitbucket Server / Data Center projects.
//!
//! The two products share a name and little else: Cloud pages by a `next`
//! URL in the body, Server by `isLastPage`/`nextPageStart`; both give clone
//! URLs in `links.clone[]`, named `https` on Cloud and `http` on Server.

use serde_json::{json, Value};
use url::Url;

use super::{join, text, Api, Created, ForgeError, NewRepo, RemoteRepo, Scope};

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

//! GitHub, GitHub Enterprise Server, and Gitea/Forgejo, whose API copies
//! GitHub's: `/orgs/{org}/repos` (or `/users/{user}/repos`), pages linked by
//! the `Link: <...>; rel="next"` header, the same repository fields, and
//! creation by `POST /orgs/{org}/repos`. They differ only in the paging
//! parameters, so one module serves both.

use serde_json::json;
use url::Url;

use super::{flag, join, text, Api, Created, ForgeError, Kind, NewRepo, Reason, RemoteRepo, Scope};

fn first_page(scope: &Scope, owners: &str) -> Url {
    let mut url = join(&scope.api, &[owners, &scope.owner, "repos"]);
    {
        let mut q = url.query_pairs_mut();
        match scope.kind {
            // Gitea caps pages at 50 by default.
            Kind::Gitea => q.append_pair("limit", "50"),
            _ => q.append_pair("per_page", "100").append_pair("type", "all"),
        };
    }
    url
}

/// Every repository of the organization, or of the user when no
/// organization has that name.
pub(super) fn list(api: &Api, scope: &Scope) -> Result<Vec<RemoteRepo>, ForgeError> {
    let mut repos = Vec::new();
    let mut collect = |reply: &super::api::Reply| {
        for r in reply.items("")? {
            let owner = r["owner"]["login"].as_str().unwrap_or(&scope.owner);
            repos.push(RemoteRepo {
                owner: scope.owner.clone(),
                project: owner.to_owned(),
                name: text(r, "name"),
                clone_url: text(r, "clone_url"),
                disabled: flag(r, "disabled"),
                archived: flag(r, "archived"),
                fork: flag(r, "fork"),
                default_branch: super::branch_name(&r["default_branch"]),
                has_wiki: flag(r, "has_wiki"),
                wiki: false,
            });
        }
        Ok(reply.link_next())
    };
    match api.pages(first_page(scope, "orgs"), &mut collect) {
        Err(e) if e.reason == Reason::NotFound => {
            api.pages(first_page(scope, "users"), &mut collect)?
        }
        other => other?,
    }
    Ok(repos)
}

/// Creates a private repository in the organization (or, when the scope is
/// a user, for the token's own user).
pub(super) fn create(api: &Api, scope: &Scope, repo: &NewRepo) -> Result<Created, ForgeError> {
    let body = json!({ "name": repo.name, "private": true });
    match api.post(&join(&scope.api, &["orgs", &scope.owner, "repos"]), &body) {
        Err(e) if e.reason == Reason::NotFound => {
            api.post(&join(&scope.api, &["user", "repos"]), &body)?;
        }
        other => {
            other?;
        }
    }
    Ok(Created::Created)
}

/// Makes `branch` the default of `repo` (`PATCH /repos/{owner}/{repo}`,
/// the same on Gitea).
pub(super) fn set_default_branch(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
    branch: &str,
) -> Result<(), ForgeError> {
    let url = join(&scope.api, &["repos", &scope.owner, &repo.name]);
    api.patch(&url, &json!({ "default_branch": branch }))?;
    Ok(())
}

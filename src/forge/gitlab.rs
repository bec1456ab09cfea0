//! GitLab (gitlab.com and self-managed): the projects of a group and all
//! its subgroups, and project creation in a group.
//!
//! Pages are linked by `Link: rel="next"`; GitLab also sends `x-next-page`
//! (empty on the last page), which is used when `Link` is missing: for very
//! large groups GitLab switches to keyset paging, which only `Link` carries.
//! A project's repository is named by its URL slug (`path`), and its
//! `project` is the namespace it sits in (`acme/platform`).

use serde_json::json;
use url::Url;

use super::{flag, join, text, Api, Created, ForgeError, NewRepo, RemoteRepo, Scope};

fn next_page(reply: &super::api::Reply) -> Option<Url> {
    reply.link_next().or_else(|| {
        let page = reply.header("x-next-page")?;
        let mut url = reply.url.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("page", page);
        Some(url)
    })
}

/// Every project of the group, subgroups included.
pub(super) fn list(api: &Api, scope: &Scope) -> Result<Vec<RemoteRepo>, ForgeError> {
    let mut first = join(&scope.api, &["groups", &scope.owner, "projects"]);
    first
        .query_pairs_mut()
        .append_pair("include_subgroups", "true")
        .append_pair("per_page", "100");
    let mut repos = Vec::new();
    api.pages(first, |reply| {
        for p in reply.items("")? {
            let full = text(p, "path_with_namespace");
            let name = text(p, "path");
            let namespace = full
                .strip_suffix(&name)
                .map(|n| n.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| scope.owner.clone());
            repos.push(RemoteRepo {
                owner: scope.owner.clone(),
                project: namespace,
                name,
                clone_url: text(p, "http_url_to_repo"),
                // Projects with the repository feature turned off have none to mirror.
                disabled: p["repository_access_level"].as_str() == Some("disabled"),
                archived: flag(p, "archived"),
                fork: p["forked_from_project"].is_object(),
                default_branch: super::branch_name(&p["default_branch"]),
                has_wiki: wiki_enabled(p),
                wiki: false,
            });
        }
        Ok(next_page(reply))
    })?;
    Ok(repos)
}

/// Whether a project has its wiki turned on: `wiki_access_level` where
/// the server sends it (`wiki_enabled` is deprecated since GitLab 14),
/// `wiki_enabled` on older servers.
fn wiki_enabled(p: &serde_json::Value) -> bool {
    match p["wiki_access_level"].as_str() {
        Some(level) => level != "disabled",
        None => flag(p, "wiki_enabled"),
    }
}

/// Creates a private project in the scope's group (or user namespace).
pub(super) fn create(api: &Api, scope: &Scope, repo: &NewRepo) -> Result<Created, ForgeError> {
    let namespace = api.get(&join(&scope.api, &["namespaces", &scope.owner]))?;
    let Some(id) = namespace.json["id"].as_u64() else {
        return Err(ForgeError::new(format!(
            "{}: namespace {} has no id in {}",
            api.name(),
            scope.owner,
            namespace.url
        )));
    };
    let body = json!({
        "name": repo.name,
        "path": repo.name,
        "namespace_id": id,
        "visibility": "private",
    });
    api.post(&join(&scope.api, &["projects"]), &body)?;
    Ok(Created::Created)
}

/// Makes `branch` the default of `repo`: `PUT /projects/:id`, the id being
/// the project's full path, encoded as one segment.
pub(super) fn set_default_branch(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
    branch: &str,
) -> Result<(), ForgeError> {
    let id = format!("{}/{}", scope.owner, repo.name);
    api.put(
        &join(&scope.api, &["projects", &id]),
        &json!({ "default_branch": branch }),
    )?;
    Ok(())
}

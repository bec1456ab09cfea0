//! Azure DevOps Services and Server: projects, their Git repositories,
//! and repository creation (REST api-version 7.1).
//!
//! Projects are listed page by page: the server returns a continuation
//! token in the `x-ms-continuationtoken` header for as long as there are
//! more. Repositories are listed per project (that listing is not paged).
//! A project that is still being created or deleted has no usable
//! repositories and is passed over.

use serde_json::json;
use url::Url;

use super::{flag, join, text, Api, Created, ForgeError, NewRepo, Reason, RemoteRepo, Scope};

const API_VERSION: &str = "7.1";
const PAGE: &str = "100";

fn with_version(mut url: Url) -> Url {
    url.query_pairs_mut()
        .append_pair("api-version", API_VERSION);
    url
}

/// `(id, name)` of every well-formed project.
fn projects(api: &Api, scope: &Scope) -> Result<Vec<(String, String)>, ForgeError> {
    let mut first = with_version(join(&scope.api, &["_apis", "projects"]));
    first.query_pairs_mut().append_pair("$top", PAGE);
    let mut found = Vec::new();
    api.pages(first.clone(), |reply| {
        for p in reply.items("value")? {
            let state = p["state"].as_str().unwrap_or("wellFormed");
            if state == "wellFormed" {
                found.push((text(p, "id"), text(p, "name")));
            }
        }
        Ok(reply.header("x-ms-continuationtoken").map(|token| {
            let mut next = first.clone();
            next.query_pairs_mut()
                .append_pair("continuationToken", token);
            next
        }))
    })?;
    Ok(found)
}

/// Every repository of the organization, or of the scope's one project.
pub(super) fn list(api: &Api, scope: &Scope) -> Result<Vec<RemoteRepo>, ForgeError> {
    let names: Vec<String> = match &scope.project {
        Some(project) => vec![project.clone()],
        None => projects(api, scope)?.into_iter().map(|(_, n)| n).collect(),
    };
    let mut repos = Vec::new();
    for project in names {
        let url = with_version(join(
            &scope.api,
            &[&project, "_apis", "git", "repositories"],
        ));
        let reply = api.get(&url)?;
        for r in reply.items("value")? {
            let project_name = r["project"]["name"].as_str().unwrap_or(&project);
            repos.push(RemoteRepo {
                owner: scope.owner.clone(),
                project: project_name.to_owned(),
                name: text(r, "name"),
                clone_url: text(r, "remoteUrl"),
                disabled: flag(r, "isDisabled"),
                archived: false,
                fork: flag(r, "isFork"),
                default_branch: super::branch_name(&r["defaultBranch"]),
                has_wiki: false,
                wiki: false,
            });
        }
    }
    Ok(repos)
}

/// The project wikis of the projects `repos` sit in (`GET
/// {project}/_apis/wiki/wikis`). A project wiki is a git repository of
/// its own, hidden from the repository listing and cloned as
/// `{project}/_git/{wiki name}` (the name is `<Project>.wiki`). Code wikis
/// (`type: codeWiki`) publish a folder of an ordinary repository, which
/// is mirrored with it, so they are left out. A project whose wikis
/// cannot be listed (no wiki permission, or a server without wikis:
/// 404) has none to mirror.
pub(super) fn wikis(
    api: &Api,
    scope: &Scope,
    repos: &[RemoteRepo],
) -> Result<Vec<RemoteRepo>, ForgeError> {
    let mut projects: Vec<&str> = Vec::new();
    for r in repos.iter().filter(|r| !r.wiki) {
        if !projects.contains(&r.project.as_str()) {
            projects.push(&r.project);
        }
    }
    let mut wikis = Vec::new();
    for project in projects {
        let url = with_version(join(&scope.api, &[project, "_apis", "wiki", "wikis"]));
        let reply = match api.get(&url) {
            Ok(reply) => reply,
            Err(e) if e.reason == Reason::NotFound => continue,
            Err(e) => return Err(wiki_scope_hint(e, "Wiki (Read)")),
        };
        for w in reply.items("value")? {
            let name = text(w, "name");
            if w["type"].as_str() != Some("projectWiki") || name.is_empty() {
                continue;
            }
            wikis.push(RemoteRepo {
                owner: scope.owner.clone(),
                project: project.to_owned(),
                clone_url: wiki_clone_url(scope, repos, project, &name).to_string(),
                name,
                disabled: false,
                archived: false,
                fork: false,
                default_branch: None,
                has_wiki: false,
                wiki: true,
            });
        }
    }
    Ok(wikis)
}

/// Where git finds the wiki `name` of `project`: beside the project's
/// repositories (`…/{project}/_git/{name}`, on the host and with the user
/// the forge gives their clone URLs, which is not always the API's), or
/// under the API base when the project lists none.
fn wiki_clone_url(scope: &Scope, repos: &[RemoteRepo], project: &str, name: &str) -> Url {
    let sibling = repos
        .iter()
        .filter(|r| r.project == project && !r.wiki)
        .filter_map(|r| Url::parse(&r.clone_url).ok())
        .find(|u| {
            let segments: Vec<&str> = u.path_segments().into_iter().flatten().collect();
            segments.len() >= 2 && segments[segments.len() - 2] == "_git"
        });
    match sibling {
        Some(mut url) => {
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop().push(name);
            }
            url
        }
        None => join(&scope.api, &[project, "_git", name]),
    }
}

/// Creates a project wiki in `project` (`POST {project}/_apis/wiki/wikis`
/// with `type: projectWiki`): Azure DevOps makes its git repository,
/// named after the wiki. `name` is the wiki's name (`<Project>.wiki`).
pub(super) fn create_wiki(
    api: &Api,
    scope: &Scope,
    project: &str,
    name: &str,
) -> Result<Created, ForgeError> {
    let id = project_id(api, scope, project)?;
    let url = with_version(join(&scope.api, &[project, "_apis", "wiki", "wikis"]));
    let body = json!({ "name": name, "projectId": id, "type": "projectWiki" });
    match api.post(&url, &body) {
        Ok(_) => Ok(Created::Created),
        Err(e) if e.reason == super::Reason::Conflict => Err(e),
        Err(e) => Err(wiki_scope_hint(e, "Wiki (Read & write)")),
    }
}

/// A refused wiki call, with the PAT scope wikis need put first: Code
/// and Project and Team scopes, which the rest of a sweep needs, do not
/// cover wikis.
fn wiki_scope_hint(err: ForgeError, scope: &str) -> ForgeError {
    let rest = err.hint().map(|h| format!("; {h}")).unwrap_or_default();
    let hint = format!("wikis (--include-wikis) need a PAT with the {scope} scope as well{rest}");
    err.with_hint(hint)
}

/// Creates `repo` in its project (the scope's project when it names none).
pub(super) fn create(api: &Api, scope: &Scope, repo: &NewRepo) -> Result<Created, ForgeError> {
    let project = repo
        .project
        .as_ref()
        .or(scope.project.as_ref())
        .ok_or_else(|| {
            ForgeError::new(format!(
                "cannot create {} in Azure DevOps: no project; put the project in the destination URL (…/PROJECT/_git/{{repo}}) or the --dest-scope URL",
                repo.name
            ))
        })?;
    let id = project_id(api, scope, project)?;
    let url = with_version(join(&scope.api, &[project, "_apis", "git", "repositories"]));
    api.post(&url, &json!({ "name": repo.name, "project": { "id": id } }))?;
    Ok(Created::Created)
}

/// Makes `branch` the default of `repo`. The update endpoint takes the
/// repository's id, so it is looked up by name first (the GET accepts
/// either).
pub(super) fn set_default_branch(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
    branch: &str,
) -> Result<(), ForgeError> {
    let project = repo
        .project
        .as_ref()
        .or(scope.project.as_ref())
        .ok_or_else(|| ForgeError::new(format!("{}: no project for {}", api.name(), repo.name)))?;
    let reply = api.get(&with_version(join(
        &scope.api,
        &[project, "_apis", "git", "repositories", &repo.name],
    )))?;
    let id = text(&reply.json, "id");
    if id.is_empty() {
        return Err(ForgeError::new(format!(
            "{}: repository {} has no id in {}",
            api.name(),
            repo.name,
            reply.url
        )));
    }
    let url = with_version(join(
        &scope.api,
        &[project, "_apis", "git", "repositories", &id],
    ));
    api.patch(
        &url,
        &json!({ "defaultBranch": format!("refs/heads/{branch}") }),
    )?;
    Ok(())
}

/// The id the create call needs, looked up by name (the endpoint accepts
/// either). Creating is rare, so there is no cache.
fn project_id(api: &Api, scope: &Scope, project: &str) -> Result<String, ForgeError> {
    let reply = api.get(&with_version(join(
        &scope.api,
        &["_apis", "projects", project],
    )))?;
    let id = text(&reply.json, "id");
    if id.is_empty() {
        return Err(ForgeError::new(format!(
            "{}: project {project} has no id in {}",
            api.name(),
            reply.url
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(project: &str, url: &str) -> RemoteRepo {
        RemoteRepo {
            owner: "fabrikam".into(),
            project: project.into(),
            name: "Web".into(),
            clone_url: url.into(),
            disabled: false,
            archived: false,
            fork: false,
            default_branch: None,
            has_wiki: false,
            wiki: false,
        }
    }

    #[test]
    fn a_project_wiki_is_cloned_beside_the_project_repositories() {
        let scope = Scope::parse(
            &Url::parse("https://dev.azure.com/fabrikam").unwrap(),
            Some(super::super::Kind::AzureDevOps),
            None,
        )
        .unwrap();
        let repos = [
            repo(
                "Other",
                "https://fabrikam@dev.azure.com/fabrikam/Other/_git/x",
            ),
            repo(
                "Fab Rikam",
                "https://fabrikam@dev.azure.com/fabrikam/Fab%20Rikam/_git/Web",
            ),
        ];
        // The host and user the forge gives git, the project as it encodes it.
        assert_eq!(
            wiki_clone_url(&scope, &repos, "Fab Rikam", "Fab Rikam.wiki").as_str(),
            "https://fabrikam@dev.azure.com/fabrikam/Fab%20Rikam/_git/Fab%20Rikam.wiki"
        );
        // A project listing no repository: under the API base.
        let url = wiki_clone_url(&scope, &repos, "Empty", "Empty.wiki");
        assert!(
            url.as_str().ends_with("/fabrikam/Empty/_git/Empty.wiki"),
            "{url}"
        );
    }
}

//! Forges: list every repository of an organization, create repositories.
//!
//! A *scope* is what a user names to mean "all of these": an Azure DevOps
//! organization or project, a GitHub or Gitea organization, a GitLab group
//! (subgroups included), a Bitbucket workspace or Bitbucket Server project.
//! This module turns a scope URL into API calls ([`Scope`]), lists the
//! repositories found there ([`discover`]) and creates missing ones
//! ([`create`]). Each kind lives in its own submodule and knows only its
//! API's shapes; [`api`] holds what they share (paging, rate limits, errors).
//!
//! Nothing here knows about mirroring: the result is a list of
//! [`RemoteRepo`] with clone URLs, for whoever wants them.

pub(crate) mod api;
mod azure;
mod bitbucket;
mod github;
mod gitlab;
mod scope;

pub(crate) use api::Api;
pub(crate) use bitbucket::{api_token_for_git, API_TOKEN_GIT_USER};
pub(crate) use scope::{Kind, Scope};

use crate::auth::Credentials;
use crate::error::Failure;
use crate::transport::{NetworkOptions, TransportError};

/// A repository as a forge lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteRepo {
    /// The organization, group or workspace of the scope.
    pub(crate) owner: String,
    /// The container inside it: the Azure DevOps project, the GitLab
    /// namespace; the owner where the forge has no such level.
    pub(crate) project: String,
    /// The repository's name (its URL slug where the forge has one).
    pub(crate) name: String,
    /// The HTTPS clone URL the forge gives.
    pub(crate) clone_url: String,
    /// Git access is turned off (Azure DevOps `isDisabled`, GitHub `disabled`).
    pub(crate) disabled: bool,
    /// Read-only archive.
    pub(crate) archived: bool,
    /// A fork of another repository.
    pub(crate) fork: bool,
    /// The default branch, as a branch name (`main`), when the listing
    /// gives one: an empty repository, and Bitbucket Server, give none.
    pub(crate) default_branch: Option<String>,
}

impl RemoteRepo {
    /// `project/repo`: what `--filter`, `--skip` and `--shard` look at.
    pub(crate) fn full_name(&self) -> String {
        format!("{}/{}", self.project, self.name)
    }
}

/// A repository to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NewRepo {
    /// The Azure DevOps project to create it in (others ignore it).
    pub(crate) project: Option<String>,
    /// Its name.
    pub(crate) name: String,
}

/// What [`create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// The repository now exists and is empty.
    Created,
    /// It existed already (someone made it meanwhile).
    Existed,
}

/// What a failed API call means to the code that made it: the cases
/// something branches on, named where the answer is read so that no caller
/// reads status codes or bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The API has no such thing (404): GitHub's user accounts.
    NotFound,
    /// What was to be created exists already: [`create`] succeeds.
    Conflict,
    /// Anything else; the message and the hint say what.
    Other,
}

/// A failed API call, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ForgeError {
    pub(crate) reason: Reason,
    message: String,
    hint: Option<String>,
}

impl ForgeError {
    pub(crate) fn new(message: impl Into<String>) -> ForgeError {
        ForgeError {
            reason: Reason::Other,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_reason(mut self, reason: Reason) -> ForgeError {
        self.reason = reason;
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> ForgeError {
        self.hint = Some(hint.into());
        self
    }

    fn transport(api: &str, url: &url::Url, err: TransportError) -> ForgeError {
        let hint = err.hint();
        let mut e = ForgeError::new(format!("{api}: {url}: {err}"));
        e.hint = hint.map(str::to_owned);
        e
    }

    /// What the user can do about it.
    pub(crate) fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl From<ForgeError> for Failure {
    fn from(err: ForgeError) -> Failure {
        Failure::failed(err.message, err.hint.as_deref())
    }
}

/// A client for the API of `scope`.
pub(crate) fn client(
    scope: &Scope,
    credentials: Option<&Credentials>,
    network: &NetworkOptions,
) -> Result<Api, ForgeError> {
    Api::new(
        scope.kind.api_name(),
        scope.kind.token_hint(),
        &scope.api,
        credentials,
        network,
    )
}

/// Every repository of `scope`, following the API's pages to the end, in
/// the order the API lists them.
pub(crate) fn discover(api: &Api, scope: &Scope) -> Result<Vec<RemoteRepo>, ForgeError> {
    match scope.kind {
        Kind::AzureDevOps => azure::list(api, scope),
        Kind::GitHub | Kind::Gitea => github::list(api, scope),
        Kind::GitLab => gitlab::list(api, scope),
        Kind::Bitbucket => bitbucket::list_cloud(api, scope),
        Kind::BitbucketServer => bitbucket::list_server(api, scope),
    }
}

/// Creates an empty repository in `scope` (private where the forge asks).
pub(crate) fn create(api: &Api, scope: &Scope, repo: &NewRepo) -> Result<Created, ForgeError> {
    let result = match scope.kind {
        Kind::AzureDevOps => azure::create(api, scope, repo),
        Kind::GitHub | Kind::Gitea => github::create(api, scope, repo),
        Kind::GitLab => gitlab::create(api, scope, repo),
        Kind::Bitbucket => bitbucket::create_cloud(api, scope, repo),
        Kind::BitbucketServer => bitbucket::create_server(api, scope, repo),
    };
    match result {
        // A repository that appeared between listing and creating is what
        // we wanted anyway.
        Err(e) if e.reason == Reason::Conflict => Ok(Created::Existed),
        other => other,
    }
}

/// Makes `branch` (a name such as `main`) the default branch of `repo`,
/// a repository of `scope`. A repository fresh from [`create`] has the
/// first branch pushed into it as default on GitHub, and whatever the
/// forge picked elsewhere; this makes it the source's.
pub(crate) fn set_default_branch(
    api: &Api,
    scope: &Scope,
    repo: &NewRepo,
    branch: &str,
) -> Result<(), ForgeError> {
    match scope.kind {
        Kind::AzureDevOps => azure::set_default_branch(api, scope, repo, branch),
        Kind::GitHub | Kind::Gitea => github::set_default_branch(api, scope, repo, branch),
        Kind::GitLab => gitlab::set_default_branch(api, scope, repo, branch),
        Kind::Bitbucket => bitbucket::set_main_branch_cloud(api, scope, repo, branch),
        Kind::BitbucketServer => bitbucket::set_default_branch_server(api, scope, repo, branch),
    }
}

/// A default branch as a listing gives it (`main`, or Azure DevOps'
/// `refs/heads/main`) reduced to the branch name; `None` when absent,
/// empty or not a string.
pub(crate) fn branch_name(v: &serde_json::Value) -> Option<String> {
    let name = v.as_str()?;
    let name = name.strip_prefix("refs/heads/").unwrap_or(name);
    (!name.is_empty()).then(|| name.to_owned())
}

/// A JSON string field, or "".
pub(crate) fn text(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// A JSON boolean field, false when absent.
pub(crate) fn flag(v: &serde_json::Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or(false)
}

/// `base` with `segments` appended, each percent-encoded as one path
/// segment (so `/`, spaces and non-ASCII in names survive).
pub(crate) fn join(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_branches_are_read_as_branch_names() {
        assert_eq!(branch_name(&json!("main")).as_deref(), Some("main"));
        // Azure DevOps lists a full ref name.
        assert_eq!(
            branch_name(&json!("refs/heads/release/2.x")).as_deref(),
            Some("release/2.x")
        );
        // An empty repository: absent, null or empty.
        assert_eq!(branch_name(&json!(null)), None);
        assert_eq!(branch_name(&json!("")), None);
        assert_eq!(branch_name(&json!("refs/heads/")), None);
        assert_eq!(branch_name(&json!({ "name": "main" })), None);
    }
}

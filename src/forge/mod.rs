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
    /// The listing says the repository has its wiki turned on (GitHub and
    /// Gitea `has_wiki`, GitLab `wiki_enabled`). Turned on is not the
    /// same as existing: an empty GitHub wiki has no git repository yet.
    pub(crate) has_wiki: bool,
    /// This is a wiki's git repository, found by [`wikis`], not a
    /// repository of its own.
    pub(crate) wiki: bool,
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

/// The wikis of `repos` (what [`discover`] found in `scope`), each as the
/// git repository behind it, named `<name>.wiki`:
///
/// - GitHub, Gitea and GitLab: `<repo>.wiki.git` beside each repository
///   whose listing has its wiki turned on. Turned on does not mean it
///   exists (an empty GitHub or Gitea wiki has no repository yet), so
///   whoever reads these must take a 404 as "no wiki".
/// - Azure DevOps: each project's *project wiki*, a git repository of its
///   own (`<Project>.wiki`) that the repository listing does not show.
///   A *code wiki* is a folder of a branch of an ordinary repository,
///   which is mirrored with that repository: it is not listed again.
/// - Bitbucket: none (Bitbucket Cloud's wikis are not in its 2.0 API, and
///   Bitbucket Server has none).
pub(crate) fn wikis(
    api: &Api,
    scope: &Scope,
    repos: &[RemoteRepo],
) -> Result<Vec<RemoteRepo>, ForgeError> {
    match scope.kind {
        Kind::AzureDevOps => azure::wikis(api, scope, repos),
        Kind::GitHub | Kind::Gitea | Kind::GitLab => Ok(repos
            .iter()
            .filter(|r| r.has_wiki && !r.wiki && !r.disabled)
            .filter_map(beside)
            .collect()),
        Kind::Bitbucket | Kind::BitbucketServer => Ok(Vec::new()),
    }
}

/// The wiki beside `repo`: `<clone URL without .git>.wiki.git`, the layout
/// of GitHub, Gitea and GitLab alike. `None` for a clone URL that is not
/// a URL.
fn beside(repo: &RemoteRepo) -> Option<RemoteRepo> {
    let mut url = url::Url::parse(&repo.clone_url).ok()?;
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.is_empty() {
        return None;
    }
    let path = format!("{path}.wiki.git");
    url.set_path(&path);
    Some(RemoteRepo {
        name: format!("{}.wiki", repo.name),
        clone_url: url.to_string(),
        fork: false,
        archived: repo.archived,
        default_branch: None,
        has_wiki: false,
        wiki: true,
        ..repo.clone()
    })
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

/// Creates the wiki `wiki` (its name ends in `.wiki`) in `scope`, where
/// the forge can: Azure DevOps creates a project wiki, with its git
/// repository, through its API. GitHub cannot (a wiki's repository exists
/// once its first page is saved in the web interface, and no API makes
/// one), and GitLab and Gitea make a wiki's repository only with its
/// first page too: for them this says so, as an error the caller shows.
pub(crate) fn create_wiki(api: &Api, scope: &Scope, wiki: &NewRepo) -> Result<Created, ForgeError> {
    let result = match (scope.kind, wiki.project.as_ref().or(scope.project.as_ref())) {
        (Kind::AzureDevOps, Some(project)) => azure::create_wiki(api, scope, project, &wiki.name),
        (Kind::AzureDevOps, None) => Err(ForgeError::new(format!(
            "cannot create the wiki {} in Azure DevOps: no project; put the project in the destination URL (…/PROJECT/_git/{{repo}})",
            wiki.name
        ))),
        (kind, _) => Err(ForgeError::new(format!(
            "{} wikis cannot be created through its API: {} does not exist on the destination",
            kind.api_name().trim_end_matches(" API"),
            wiki.name
        ))
        .with_hint(wiki_missing_hint(kind))),
    };
    match result {
        Err(e) if e.reason == Reason::Conflict => Ok(Created::Existed),
        other => other,
    }
}

/// Whether [`create_wiki`] can create a wiki on a forge of `kind`.
pub(crate) fn can_create_wikis(kind: Kind) -> bool {
    kind == Kind::AzureDevOps
}

/// What to do when a destination wiki does not exist on a forge of
/// `kind`.
pub(crate) fn wiki_missing_hint(kind: Kind) -> &'static str {
    match kind {
        Kind::AzureDevOps => "create the project wiki on the destination (Overview > Wiki > Create project wiki), or use --create-missing with --dest-scope",
        Kind::GitHub => "GitHub makes a wiki's repository only when its first page is saved: turn the wiki on in the destination repository's settings, save one page (it is overwritten by the mirror with --force), and run again",
        Kind::Gitea | Kind::GitLab => "the wiki's repository exists once its first page is saved: turn the wiki on for the destination, save one page (it is overwritten by the mirror with --force), and run again",
        Kind::Bitbucket | Kind::BitbucketServer => "this forge has no wikis reachable by git",
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

    fn repo(clone_url: &str) -> RemoteRepo {
        RemoteRepo {
            owner: "acme".into(),
            project: "acme".into(),
            name: "tools".into(),
            clone_url: clone_url.into(),
            disabled: false,
            archived: false,
            fork: true,
            default_branch: Some("main".into()),
            has_wiki: true,
            wiki: false,
        }
    }

    #[test]
    fn a_wiki_sits_beside_its_repository() {
        let wiki = beside(&repo("https://github.com/acme/tools.git")).unwrap();
        assert_eq!(wiki.clone_url, "https://github.com/acme/tools.wiki.git");
        assert_eq!(wiki.name, "tools.wiki");
        assert_eq!(wiki.full_name(), "acme/tools.wiki");
        assert!(wiki.wiki && !wiki.has_wiki && !wiki.fork);
        assert_eq!(wiki.default_branch, None);
        // GitLab's clone URLs have no trailing slash; some servers' have.
        let wiki = beside(&repo("https://gitlab.example.com/g/sub/tools/")).unwrap();
        assert_eq!(
            wiki.clone_url,
            "https://gitlab.example.com/g/sub/tools.wiki.git"
        );
        assert_eq!(beside(&repo("not a url")), None);
        assert_eq!(beside(&repo("https://example.com/")), None);
    }

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

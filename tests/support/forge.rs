//! Fake forge APIs over real HTTP on 127.0.0.1, for the `mirror-all` tests
//! and task mode's organization sweeps.
//!
//! Hosted forges cannot be reached from the test machines, so each fake
//! serves the response shapes the vendor publishes in its REST API
//! reference (Azure DevOps api-version 7.1, GitHub and Gitea, GitLab v4,
//! Bitbucket Cloud 2.0 and Bitbucket Server 1.0) with the paging, auth
//! checks and error codes the real ones use: small pages so that several
//! are needed, 401 for a wrong token, 404 for an unknown organization, 429
//! with `retry-after: 1` on request.
//! The GitHub fake can also act for a GitHub App ([`Builder::github_app`]):
//! it verifies the app's JWTs with the app's public key (signature, `iss`,
//! `exp`, `iat`), finds its installations and issues installation tokens
//! with short lives, which its API and, through
//! [`FakeForge::token_check`], a [`GitServer`](super::GitServer) accept
//! until they expire; with GitHub's answers to a wrong key or an unknown
//! app (401) and to an account the app is not installed on (404).
//! Wikis: GitHub and Gitea list `has_wiki`, GitLab `wiki_enabled` and
//! `wiki_access_level` ([`FakeRepo::has_wiki`]), Azure DevOps lists and
//! creates project and code wikis (WikiV2, [`Builder::wiki`]); whether a
//! wiki's git repository exists is up to the git server, as on GitHub.
//! Clone URLs point at a real `git http-backend` server
//! ([`GitServer`](super::GitServer)), so the repositories a fake lists can
//! really be mirrored, and repositories it creates are real bare
//! repositories there. Requests are read with the git server's own HTTP/1.1
//! code ([`super::http`]).

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::http;
use super::server::BearerTokens;

/// Which API a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AzureDevOps,
    GitHub,
    GitLab,
    Bitbucket,
    BitbucketServer,
    Gitea,
}

/// A repository the fake lists.
#[derive(Clone, Debug)]
pub struct FakeRepo {
    pub project: String,
    pub name: String,
    pub clone_url: String,
    pub disabled: bool,
    pub archived: bool,
    pub fork: bool,
    pub empty: bool,
    /// The default branch the fake lists (and, for a repository it created,
    /// what a default-branch call set it to).
    pub default_branch: Option<String>,
    /// The listing says its wiki is turned on (GitHub and Gitea
    /// `has_wiki`, GitLab `wiki_enabled` and `wiki_access_level`); whether
    /// the wiki's repository exists is up to the git server.
    pub has_wiki: bool,
}

/// An Azure DevOps wiki the fake lists (WikiV2).
#[derive(Clone, Debug)]
pub struct FakeWiki {
    pub project: String,
    /// `<Project>.wiki` for a project wiki, anything for a code wiki.
    pub name: String,
    /// A code wiki (a folder of this repository), or a project wiki.
    pub code_of: Option<String>,
}

impl FakeRepo {
    pub fn new(project: &str, name: &str, clone_url: &str) -> FakeRepo {
        FakeRepo {
            project: project.to_owned(),
            name: name.to_owned(),
            clone_url: clone_url.to_owned(),
            disabled: false,
            archived: false,
            fork: false,
            empty: false,
            default_branch: Some("main".to_owned()),
            has_wiki: false,
        }
    }
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: String,
    pub status: u16,
}

/// Makes the bare repository behind a newly created one; returns its clone URL.
pub type Creator = Box<dyn Fn(&str, &str) -> String + Send + Sync>;

struct State {
    kind: Kind,
    /// Organization, group path, workspace or project key.
    owner: String,
    token: String,
    page_size: usize,
    repos: Mutex<Vec<FakeRepo>>,
    /// Extra projects with no repository (Azure DevOps).
    empty_projects: Vec<String>,
    /// The wikis of its projects (Azure DevOps).
    wikis: Mutex<Vec<FakeWiki>>,
    /// Wiki calls are answered 401, as to a PAT without the Wiki scope.
    refuse_wikis: bool,
    creator: Option<Creator>,
    throttle: AtomicUsize,
    /// A GitHub App the fake acts for.
    app: Option<App>,
    /// `Link` headers name this server as `localhost`, another origin.
    links_on_localhost: bool,
    /// Default-branch calls are answered 403, as to a token that may
    /// create repositories but not administer them.
    refuse_default_branch: bool,
    /// Bearer tokens an identity provider issued, accepted too.
    bearer: Option<BearerTokens>,
    /// Bitbucket Cloud with an Atlassian API token: the token is taken in
    /// Basic with this user (the account's email) only, never as Bearer.
    api_token_user: Option<String>,
    log: Mutex<Vec<Seen>>,
}

/// A GitHub App as GitHub knows it.
struct App {
    /// The app id, the issuer its JWTs must name.
    id: String,
    /// Its public key (RSAPublicKey DER); `None` once revoked.
    public_key: Mutex<Option<Vec<u8>>>,
    /// The accounts it is installed on, and the installation ids.
    installations: Vec<(String, u64)>,
    /// How long the installation tokens it hands out live.
    token_life: Mutex<Duration>,
    /// Every installation token issued: token, installation, expiry.
    issued: Mutex<Vec<(String, u64, SystemTime)>>,
}

/// A fake forge API server.
pub struct FakeForge {
    state: Arc<State>,
    port: u16,
    stop: Arc<AtomicBool>,
}

/// Configures a [`FakeForge`].
pub struct Builder {
    kind: Kind,
    owner: String,
    token: String,
    page_size: usize,
    repos: Vec<FakeRepo>,
    empty_projects: Vec<String>,
    wikis: Vec<FakeWiki>,
    refuse_wikis: bool,
    creator: Option<Creator>,
    app: Option<App>,
    links_on_localhost: bool,
    refuse_default_branch: bool,
    bearer: Option<BearerTokens>,
    api_token_user: Option<String>,
}

impl FakeForge {
    pub fn builder(kind: Kind, owner: &str, token: &str) -> Builder {
        Builder {
            kind,
            owner: owner.to_owned(),
            token: token.to_owned(),
            page_size: 2,
            repos: Vec::new(),
            empty_projects: Vec::new(),
            wikis: Vec::new(),
            refuse_wikis: false,
            creator: None,
            app: None,
            links_on_localhost: false,
            refuse_default_branch: false,
            bearer: None,
            api_token_user: None,
        }
    }

    /// With [`Builder::github_app`]: every installation token issued so
    /// far, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        let app = self.state.app.as_ref().expect("a fake with an app");
        let issued = app.issued.lock().unwrap();
        issued.iter().map(|(t, _, _)| t.clone()).collect()
    }

    /// The app's key is deleted from its settings: JWTs signed with it are
    /// refused from now on.
    pub fn revoke_app_key(&self) {
        let app = self.state.app.as_ref().expect("a fake with an app");
        *app.public_key.lock().unwrap() = None;
    }

    /// What a git server accepts: a live installation token of the app,
    /// as the password of `x-access-token` (Basic) or as a bearer token
    /// (`None` user), for [`GitServer::accept_tokens`](super::GitServer::accept_tokens).
    pub fn token_check(&self) -> super::server::TokenCheck {
        let state = Arc::clone(&self.state);
        Arc::new(move |user: Option<&str>, token: &str| {
            user.is_none_or(|u| u == "x-access-token") && live_installation_token(&state, token)
        })
    }

    /// The scope URL a user would pass with `--source-kind`.
    pub fn scope_url(&self) -> String {
        let base = format!("http://127.0.0.1:{}", self.port);
        let owner = &self.state.owner;
        match self.state.kind {
            Kind::AzureDevOps | Kind::GitHub | Kind::Gitea => format!("{base}/{}", seg(owner)),
            Kind::GitLab => format!("{base}/{owner}"),
            Kind::Bitbucket => format!("https://bitbucket.org/{}", seg(owner)),
            Kind::BitbucketServer => format!("{base}/projects/{}", seg(owner)),
        }
    }

    /// The GitHub fake's API base, as GitHub Enterprise Server lays it
    /// out (`/api/v3`), for `--source-app-api`.
    pub fn github_api(&self) -> String {
        format!("http://127.0.0.1:{}/api/v3", self.port)
    }

    /// The API base, for `--source-api` (needed for Bitbucket Cloud only).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/2.0", self.port)
    }

    /// The next `n` API requests are answered 429 with `retry-after: 1`.
    pub fn throttle(&self, n: usize) {
        self.state.throttle.store(n, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn repos(&self) -> Vec<FakeRepo> {
        self.state.repos.lock().unwrap().clone()
    }

    pub fn wikis(&self) -> Vec<FakeWiki> {
        self.state.wikis.lock().unwrap().clone()
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

impl Builder {
    pub fn repo(mut self, repo: FakeRepo) -> Self {
        self.repos.push(repo);
        self
    }

    /// An Azure DevOps wiki, listed by `{project}/_apis/wiki/wikis`.
    pub fn wiki(mut self, wiki: FakeWiki) -> Self {
        self.wikis.push(wiki);
        self
    }

    /// Answers the wiki calls 401, as Azure DevOps answers a PAT whose
    /// scopes leave out Wiki.
    pub fn refuse_wikis(mut self) -> Self {
        self.refuse_wikis = true;
        self
    }

    pub fn empty_project(mut self, name: &str) -> Self {
        self.empty_projects.push(name.to_owned());
        self
    }

    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n;
        self
    }

    /// Lets the fake create repositories: `creator(project, name)` makes the
    /// bare repository and returns its clone URL.
    pub fn creator(mut self, creator: Creator) -> Self {
        self.creator = Some(creator);
        self
    }

    /// Acts for the GitHub App `id` whose private key is `key_pem` (PKCS#1
    /// or PKCS#8), installed on each `(account, installation id)`; its
    /// installation tokens live `token_life`.
    pub fn github_app(
        mut self,
        id: &str,
        key_pem: &str,
        installations: &[(&str, u64)],
        token_life: Duration,
    ) -> Self {
        self.app = Some(App {
            id: id.to_owned(),
            public_key: Mutex::new(Some(public_key_of(key_pem))),
            installations: installations
                .iter()
                .map(|(account, id)| (account.to_ascii_lowercase(), *id))
                .collect(),
            token_life: Mutex::new(token_life),
            issued: Mutex::new(Vec::new()),
        });
        self
    }

    /// `Link` headers name the next page on this server as `localhost`
    /// rather than `127.0.0.1`: another origin, as a hostile or
    /// misconfigured API would send the client elsewhere.
    pub fn links_on_localhost(mut self) -> Self {
        self.links_on_localhost = true;
        self
    }

    /// Answers every default-branch call with 403 and the vendor's error
    /// body.
    pub fn refuse_default_branch(mut self) -> Self {
        self.refuse_default_branch = true;
        self
    }

    /// Accept the bearer tokens an identity provider's fake issued too
    /// (while they are valid).
    pub fn bearer_tokens(mut self, tokens: &BearerTokens) -> Self {
        self.bearer = Some(tokens.clone());
        self
    }

    /// The token is an Atlassian API token of the account `email`, as
    /// Bitbucket Cloud's API takes one: in Basic with that email only
    /// (another user name, the Bitbucket user name or
    /// `x-bitbucket-api-token-auth`, is a 401), and never as Bearer.
    pub fn api_token_of(mut self, email: &str) -> Self {
        self.api_token_user = Some(email.to_owned());
        self
    }

    pub fn start(self) -> FakeForge {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            kind: self.kind,
            owner: self.owner,
            token: self.token,
            page_size: self.page_size,
            repos: Mutex::new(self.repos),
            empty_projects: self.empty_projects,
            wikis: Mutex::new(self.wikis),
            refuse_wikis: self.refuse_wikis,
            creator: self.creator,
            throttle: AtomicUsize::new(0),
            app: self.app,
            links_on_localhost: self.links_on_localhost,
            refuse_default_branch: self.refuse_default_branch,
            bearer: self.bearer,
            api_token_user: self.api_token_user,
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    thread::spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            });
        }
        FakeForge { state, port, stop }
    }
}

/// One path segment, percent-encoded.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    }
}

fn not_found() -> Reply {
    reply(404, json!({ "message": "Not Found" }))
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    while let Some(head) = http::read_head(&mut reader)? {
        let mut body = String::new();
        http::BodyReader::new(&mut reader, head.framing()?).read_to_string(&mut body)?;
        let path = percent_decode_str(head.path())
            .decode_utf8_lossy()
            .into_owned();
        let query = head.query().to_owned();
        let authorization = head.header("Authorization").map(str::to_owned);
        let issued = |h: Option<&str>| {
            let token = h.and_then(|h| h.strip_prefix("Bearer "));
            (state.bearer.as_ref()).is_some_and(|b| token.is_some_and(|t| b.valid(t)))
        };
        let refused = match issued(authorization.as_deref()) {
            true => None,
            false => refusal(state, authorization.as_deref()),
        };
        let answer = if let Some(refused) = refused {
            refused
        } else if state
            .throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let mut r = reply(429, json!({ "message": "API rate limit exceeded" }));
            r.headers.push(("Retry-After".into(), "1".into()));
            r
        } else {
            let params = parse_query(&query);
            route(
                state,
                &head.method,
                &path,
                &params,
                &body,
                &format!("http://127.0.0.1:{}", writer.get_ref().local_addr()?.port()),
            )
        };
        // A GitHub App's own endpoints (signed with its JWT), and requests
        // signed with its installation tokens, which the check above
        // refused: answered as GitHub would.
        let answer = match app_route(state, &head.method, &path, authorization.as_deref()) {
            Some(app) => app,
            None if answer.status == 401
                && secret_of(authorization.as_deref())
                    .is_some_and(|t| live_installation_token(state, &t)) =>
            {
                let base = format!("http://127.0.0.1:{}", writer.get_ref().local_addr()?.port());
                route(
                    state,
                    &head.method,
                    &path,
                    &parse_query(&query),
                    &body,
                    &base,
                )
            }
            None => answer,
        };
        state.log.lock().unwrap().push(Seen {
            method: head.method.clone(),
            path,
            query,
            authorization,
            body,
            status: answer.status,
        });
        write!(writer, "HTTP/1.1 {} X\r\n", answer.status)?;
        for (n, v) in &answer.headers {
            write!(writer, "{n}: {v}\r\n")?;
        }
        write!(
            writer,
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{}",
            answer.body.len(),
            answer.body
        )?;
        writer.flush()?;
    }
    Ok(())
}

/// The 401 for a request without the credentials the fake takes.
fn refusal(state: &State, header: Option<&str>) -> Option<Reply> {
    let Some(email) = &state.api_token_user else {
        return (!authorized(header, &state.token))
            .then(|| reply(401, json!({ "message": "Bad credentials" })));
    };
    let basic = header
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    if basic.as_deref() == Some(format!("{email}:{}", state.token).as_bytes()) {
        return None;
    }
    // What Bitbucket Cloud answers an API token sent as Bearer, or with a
    // user name other than the account's email.
    Some(bitbucket_error(
        401,
        "Token is invalid, expired, or not supported for this endpoint.",
    ))
}

/// Basic with any user and the token as password, or Bearer/token with the token.
fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(header) = header else { return false };
    if let Some(b64) = header.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        return decoded.split_once(':').is_some_and(|(_, p)| p == token);
    }
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("token "))
        == Some(token)
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn route(
    state: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &str,
    base: &str,
) -> Reply {
    match state.kind {
        Kind::AzureDevOps => azure(state, method, path, params, body),
        Kind::GitHub => github_like(state, method, path, params, body, base, "/api/v3"),
        Kind::Gitea => github_like(state, method, path, params, body, base, "/api/v1"),
        Kind::GitLab => gitlab(state, method, path, params, body, base),
        Kind::Bitbucket => bitbucket(state, method, path, params, body, base),
        Kind::BitbucketServer => bitbucket_server(state, method, path, params, body),
    }
}

fn create(state: &State, project: &str, name: &str) -> Option<FakeRepo> {
    let creator = state.creator.as_ref()?;
    let url = creator(project, name);
    let repo = FakeRepo {
        empty: true,
        ..FakeRepo::new(project, name, &url)
    };
    state.repos.lock().unwrap().push(repo.clone());
    Some(repo)
}

/// Records `branch` as the default of the repository `name` (in `project`
/// when given): `None` when there is no such repository.
fn set_default(state: &State, project: Option<&str>, name: &str, branch: &str) -> Option<FakeRepo> {
    let mut repos = state.repos.lock().unwrap();
    let repo = repos
        .iter_mut()
        .find(|r| r.name.eq_ignore_ascii_case(name) && project.is_none_or(|p| r.project == p))?;
    repo.default_branch = Some(branch.to_owned());
    Some(repo.clone())
}

fn exists(state: &State, project: Option<&str>, name: &str) -> bool {
    state
        .repos
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(name) && project.is_none_or(|p| r.project == p))
}

// ---- Azure DevOps -------------------------------------------------------

fn project_id(name: &str) -> String {
    format!("{:08x}-0000-4000-8000-000000000000", fnv(name) as u32)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn azure_project(owner: &str, name: &str) -> Value {
    json!({
        "id": project_id(name),
        "name": name,
        "url": format!("https://dev.azure.com/{owner}/_apis/projects/{}", project_id(name)),
        "state": "wellFormed",
    })
}

/// The id the Azure DevOps fake gives a repository.
pub fn azure_repo_id(r: &FakeRepo) -> String {
    format!("{:016x}", fnv(&format!("{}/{}", r.project, r.name)))
}

fn azure_repo(owner: &str, r: &FakeRepo) -> Value {
    let mut v = json!({
        "id": azure_repo_id(r),
        "name": r.name,
        "url": format!("https://dev.azure.com/{owner}/_apis/git/repositories/{}", r.name),
        "project": azure_project(owner, &r.project),
        "remoteUrl": r.clone_url,
        "size": if r.empty { 0 } else { 1024 },
        "isDisabled": r.disabled,
    });
    if let Some(branch) = r.default_branch.as_ref().filter(|_| !r.empty) {
        v["defaultBranch"] = json!(format!("refs/heads/{branch}"));
    }
    v
}

fn azure(
    state: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &str,
) -> Reply {
    if param(params, "api-version") != Some("7.1") {
        return reply(
            400,
            json!({ "message": "No api-version was supplied for the request." }),
        );
    }
    let owner = &state.owner;
    let Some(rest) = path.strip_prefix(&format!("/{owner}/")) else {
        return not_found();
    };
    let mut projects: Vec<String> = Vec::new();
    for r in state.repos.lock().unwrap().iter() {
        if !projects.contains(&r.project) {
            projects.push(r.project.clone());
        }
    }
    projects.extend(state.empty_projects.iter().cloned());
    let parts: Vec<&str> = rest.split('/').collect();
    if state.refuse_wikis && parts.get(1..3) == Some(&["_apis", "wiki"][..]) {
        return azure_error(
            401,
            "TF400813: The user is not authorized to access this resource.",
        );
    }
    match (method, parts.as_slice()) {
        ("GET", ["_apis", "projects"]) => {
            let top: usize = param(params, "$top")
                .and_then(|t| t.parse().ok())
                .unwrap_or(100);
            let size = top.min(state.page_size);
            let start: usize = param(params, "continuationToken")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = projects
                .iter()
                .skip(start)
                .take(size)
                .map(|p| azure_project(owner, p))
                .collect();
            let mut r = reply(200, json!({ "count": page.len(), "value": page }));
            if start + size < projects.len() {
                r.headers
                    .push(("x-ms-continuationtoken".into(), (start + size).to_string()));
            }
            r
        }
        ("GET", ["_apis", "projects", name]) => match projects.iter().find(|p| p == name) {
            Some(p) => reply(200, azure_project(owner, p)),
            None => not_found(),
        },
        ("GET", [project, "_apis", "git", "repositories"]) => {
            if !projects.iter().any(|p| p == project) {
                return not_found();
            }
            let value: Vec<Value> = state
                .repos
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.project == *project)
                .map(|r| azure_repo(owner, r))
                .collect();
            reply(200, json!({ "count": value.len(), "value": value }))
        }
        ("POST", [project, "_apis", "git", "repositories"]) => {
            let body: Value = serde_json::from_str(body).unwrap_or_default();
            let name = body["name"].as_str().unwrap_or_default();
            if body["project"]["id"].as_str() != Some(project_id(project).as_str()) {
                return reply(400, json!({ "message": "project id does not match" }));
            }
            if exists(state, Some(project), name) {
                return reply(
                    409,
                    json!({ "message": "TF400948: A Git repository with the name already exists." }),
                );
            }
            match create(state, project, name) {
                Some(repo) => reply(201, azure_repo(owner, &repo)),
                None => reply(403, json!({ "message": "no permission" })),
            }
        }
        // Wikis - List: project wikis and code wikis (WikiV2).
        ("GET", [project, "_apis", "wiki", "wikis"]) => {
            if !projects.iter().any(|p| p == project) {
                return not_found();
            }
            let value: Vec<Value> = state
                .wikis
                .lock()
                .unwrap()
                .iter()
                .filter(|w| w.project == *project)
                .map(|w| azure_wiki(state, w))
                .collect();
            reply(200, json!({ "count": value.len(), "value": value }))
        }
        // Wikis - Create: a project wiki and its git repository.
        ("POST", [project, "_apis", "wiki", "wikis"]) => {
            let body: Value = serde_json::from_str(body).unwrap_or_default();
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            if body["projectId"].as_str() != Some(project_id(project).as_str())
                || body["type"] != "projectWiki"
                || name.is_empty()
            {
                return azure_error(400, "TF400813: wikiCreateParams are not valid");
            }
            let mut wikis = state.wikis.lock().unwrap();
            if wikis
                .iter()
                .any(|w| w.project == *project && w.code_of.is_none())
            {
                return azure_error(409, "A project wiki already exists in this project.");
            }
            let Some(creator) = state.creator.as_ref() else {
                return azure_error(403, "You need the 'Create repository' permission.");
            };
            creator(project, &name);
            let wiki = FakeWiki {
                project: (*project).to_owned(),
                name,
                code_of: None,
            };
            let v = azure_wiki(state, &wiki);
            wikis.push(wiki);
            reply(201, v)
        }
        // Repositories - Get: by name or id.
        ("GET", [project, "_apis", "git", "repositories", repo]) => {
            let found = state
                .repos
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.project == *project && (r.name == *repo || azure_repo_id(r) == *repo))
                .cloned();
            match found {
                Some(r) => reply(200, azure_repo(owner, &r)),
                None => azure_error(404, "TF401019: The Git repository with name or identifier does not exist or you do not have permissions for the operation you are attempting."),
            }
        }
        // Repositories - Update: by id only (the reference types it uuid).
        ("PATCH", [project, "_apis", "git", "repositories", id]) => {
            if state.refuse_default_branch {
                return azure_error(403, "TF401027: You need the Git 'ManageRepository' permission to perform this action.");
            }
            let body: Value = serde_json::from_str(body).unwrap_or_default();
            let Some(branch) = body["defaultBranch"]
                .as_str()
                .and_then(|b| b.strip_prefix("refs/heads/"))
            else {
                return azure_error(400, "defaultBranch must be a full ref name");
            };
            let name = state
                .repos
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.project == *project && azure_repo_id(r) == *id)
                .map(|r| r.name.clone());
            match name.and_then(|n| set_default(state, Some(project), &n, branch)) {
                Some(r) => reply(200, azure_repo(owner, &r)),
                None => azure_error(404, "TF401019: The Git repository with name or identifier does not exist or you do not have permissions for the operation you are attempting."),
            }
        }
        _ => not_found(),
    }
}

/// A WikiV2 as Azure DevOps lists it: `remoteUrl` is the wiki's web
/// page, not its git repository.
fn azure_wiki(state: &State, w: &FakeWiki) -> Value {
    let owner = &state.owner;
    let id = format!("{:08x}-1111-4000-8000-000000000000", fnv(&w.name) as u32);
    let mut v = json!({
        "id": id,
        "name": w.name,
        "projectId": project_id(&w.project),
        "remoteUrl": format!("https://dev.azure.com/{owner}/{}/_wiki/wikis/{id}", project_id(&w.project)),
        "url": format!("https://dev.azure.com/{owner}/{}/_apis/wiki/wikis/{id}", project_id(&w.project)),
        "versions": [{ "version": "wikiMaster" }],
    });
    match &w.code_of {
        Some(repo) => {
            v["type"] = json!("codeWiki");
            v["mappedPath"] = json!("/docs");
            v["repositoryId"] = json!(format!("{:016x}", fnv(&format!("{}/{repo}", w.project))));
            v["versions"] = json!([{ "version": "main" }]);
        }
        None => {
            v["type"] = json!("projectWiki");
            v["mappedPath"] = json!("/");
            v["repositoryId"] = json!(format!(
                "{:016x}",
                fnv(&format!("{}/{}", w.project, w.name))
            ));
        }
    }
    v
}

/// Azure DevOps' error document.
fn azure_error(status: u16, message: &str) -> Reply {
    reply(
        status,
        json!({
            "$id": "1",
            "innerException": null,
            "message": message,
            "typeName": "Microsoft.TeamFoundation.Git.Server.GitRepositoryNotFoundException, Microsoft.TeamFoundation.Git.Server",
            "typeKey": "GitRepositoryNotFoundException",
            "errorCode": 0,
            "eventId": 3000,
        }),
    )
}

// ---- GitHub and Gitea ----------------------------------------------------

fn github_repo(r: &FakeRepo) -> Value {
    json!({
        "name": r.name,
        "full_name": format!("{}/{}", r.project, r.name),
        "owner": { "login": r.project },
        "clone_url": r.clone_url,
        "archived": r.archived,
        "fork": r.fork,
        "disabled": r.disabled,
        "empty": r.empty,
        "size": if r.empty { 0 } else { 1 },
        "default_branch": r.default_branch.as_deref().unwrap_or("main"),
        "has_wiki": r.has_wiki,
    })
}

/// Pages `items` by `page`/`per_page` (or `limit`), with a `Link` header.
fn paged(
    state: &State,
    items: Vec<Value>,
    params: &[(String, String)],
    base: &str,
    path: &str,
) -> Reply {
    let asked: usize = param(params, "per_page")
        .or(param(params, "limit"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let size = asked.min(state.page_size).max(1);
    let page: usize = param(params, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let pages = items.len().div_ceil(size).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    let mut r = reply(200, Value::Array(body));
    let link = |n: usize| {
        let mut q: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        q.push(("page".into(), n.to_string()));
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        let path: String = path.split('/').map(seg).collect::<Vec<_>>().join("/");
        let base = if state.links_on_localhost {
            base.replacen("127.0.0.1", "localhost", 1)
        } else {
            base.to_owned()
        };
        format!("<{base}{path}?{q}>")
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
        links.push(format!("{}; rel=\"last\"", link(pages)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link(1)));
    }
    if !links.is_empty() {
        r.headers.push(("Link".into(), links.join(", ")));
    }
    r.headers.push(("X-Total-Count".into(), pages.to_string()));
    r
}

fn github_like(
    state: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &str,
    base: &str,
    prefix: &str,
) -> Reply {
    let Some(rest) = path.strip_prefix(prefix) else {
        return not_found();
    };
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["orgs", org, "repos"]) if *org == state.owner => {
            let items = state
                .repos
                .lock()
                .unwrap()
                .iter()
                .map(github_repo)
                .collect();
            paged(state, items, params, base, path)
        }
        ("POST", ["orgs", org, "repos"]) if *org == state.owner => {
            let body: Value = serde_json::from_str(body).unwrap_or_default();
            let name = body["name"].as_str().unwrap_or_default();
            if exists(state, None, name) {
                return reply(
                    422,
                    json!({ "message": "Repository creation failed.", "errors": [{ "message": "name already exists on this account" }] }),
                );
            }
            match create(state, &state.owner, name) {
                Some(repo) => reply(201, github_repo(&repo)),
                None => reply(403, json!({ "message": "Must have admin rights" })),
            }
        }
        // Update a repository (Gitea's repoEdit is the same call).
        ("PATCH", ["repos", owner, name]) if *owner == state.owner => {
            if state.refuse_default_branch {
                return reply(
                    403,
                    json!({ "message": "Must have admin rights to Repository.", "documentation_url": "https://docs.github.com/rest/repos/repos#update-a-repository" }),
                );
            }
            let body: Value = serde_json::from_str(body).unwrap_or_default();
            let Some(branch) = body["default_branch"].as_str().filter(|b| !b.is_empty()) else {
                return reply(422, json!({ "message": "Validation Failed" }));
            };
            match set_default(state, None, name, branch) {
                Some(repo) => reply(200, github_repo(&repo)),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

// ---- GitHub Apps ---------------------------------------------------------

/// The RSAPublicKey DER of a PEM private key (PKCS#1 or PKCS#8).
fn public_key_of(pem: &str) -> Vec<u8> {
    use ring::signature::KeyPair as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("a PEM key");
    let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
        ring::signature::RsaKeyPair::from_der(&der)
    } else {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    }
    .expect("an RSA key");
    key.public_key().as_ref().to_vec()
}

/// The secret of a Basic (the password), Bearer or `token` header.
fn secret_of(header: Option<&str>) -> Option<String> {
    let header = header?;
    if let Some(b64) = header.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        return decoded.split_once(':').map(|(_, p)| p.to_owned());
    }
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("token "))
        .map(str::to_owned)
}

fn live_installation_token(state: &State, token: &str) -> bool {
    let Some(app) = &state.app else { return false };
    let now = SystemTime::now();
    app.issued
        .lock()
        .unwrap()
        .iter()
        .any(|(t, _, expires)| t == token && *expires > now)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// GitHub's `2016-07-11T22:14:10Z`.
fn rfc3339(t: SystemTime) -> String {
    let secs = unix(t);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn jwt_refused(message: &str) -> Reply {
    reply(
        401,
        json!({ "message": message, "documentation_url": "https://docs.github.com/rest" }),
    )
}

/// Checks the app's JWT as GitHub does: RS256 signed by the app's current
/// key, `iss` the app, `iat` not ahead, `exp` in the future but at most ten
/// minutes away. `Err` is GitHub's answer.
fn check_jwt(app: &App, header: Option<&str>) -> Result<(), Reply> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let undecodable = || jwt_refused("A JSON web token could not be decoded");
    let jwt = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(undecodable)?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, claims, signature] = parts.as_slice() else {
        return Err(undecodable());
    };
    let json =
        |part: &str| -> Option<Value> { serde_json::from_slice(&b64.decode(part).ok()?).ok() };
    let (head, claims) = (
        json(head).ok_or_else(undecodable)?,
        json(claims).ok_or_else(undecodable)?,
    );
    if head["alg"] != "RS256" {
        return Err(undecodable());
    }
    let iss = match &claims["iss"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(jwt_refused("'Issuer' claim ('iss') must be an Integer")),
    };
    if iss != app.id {
        return Err(jwt_refused("Integration not found"));
    }
    let Some(key) = app.public_key.lock().unwrap().clone() else {
        return Err(undecodable());
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    let signature = b64.decode(signature).map_err(|_| undecodable())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| undecodable())?;
    let now = unix(SystemTime::now());
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    match (iat, exp) {
        (Some(iat), _) if iat > now + 30 => Err(jwt_refused(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past",
        )),
        (_, Some(exp)) if exp > now + 600 + 30 => Err(jwt_refused(
            "'Expiration time' claim ('exp') is too far in the future",
        )),
        (_, Some(exp)) if exp <= now => Err(jwt_refused(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        )),
        (Some(_), Some(_)) => Ok(()),
        _ => Err(undecodable()),
    }
}

fn installation(app: &App, account: &str, id: u64) -> Value {
    json!({
        "id": id,
        "app_id": app.id.parse::<u64>().ok(),
        "account": { "login": account },
        "target_type": "Organization",
        "repository_selection": "all",
        "permissions": { "contents": "write", "metadata": "read", "administration": "write" },
    })
}

/// The app's own endpoints (JWT-authenticated); `None` for every other
/// path, or when the fake acts for no app.
fn app_route(
    state: &State,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> Option<Reply> {
    let app = state.app.as_ref()?;
    let rest = path.strip_prefix("/api/v3/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let account = match (method, parts.as_slice()) {
        ("GET", ["repos", owner, _, "installation"]) => Some(*owner),
        ("GET", ["orgs" | "users", account, "installation"]) => Some(*account),
        ("POST", ["app", "installations", _, "access_tokens"]) => None,
        _ => return None,
    };
    if let Err(refusal) = check_jwt(app, authorization) {
        return Some(refusal);
    }
    let found = |wanted: &dyn Fn(&(String, u64)) -> bool| {
        app.installations.iter().find(|i| wanted(i)).cloned()
    };
    Some(match account {
        Some(account) => {
            let account = account.to_ascii_lowercase();
            match found(&|(a, _)| *a == account) {
                Some((a, id)) => reply(200, installation(app, &a, id)),
                None => reply(
                    404,
                    json!({ "message": "Not Found", "documentation_url": "https://docs.github.com/rest/apps/apps" }),
                ),
            }
        }
        None => {
            let id: u64 = parts[2].parse().unwrap_or(0);
            match found(&|(_, i)| *i == id) {
                Some((_, id)) => {
                    let mut issued = app.issued.lock().unwrap();
                    let token = format!("ghs_fake{id}x{:04}installationtoken", issued.len() + 1);
                    let expires = SystemTime::now() + *app.token_life.lock().unwrap();
                    issued.push((token.clone(), id, expires));
                    reply(
                        201,
                        json!({
                            "token": token,
                            "expires_at": rfc3339(expires),
                            "permissions": { "contents": "write", "metadata": "read" },
                            "repository_selection": "all",
                        }),
                    )
                }
                None => reply(
                    404,
                    json!({ "message": "Not Found", "documentation_url": "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app" }),
                ),
            }
        }
    })
}

// ---- GitLab --------------------------------------------------------------

fn gitlab(
    state: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &str,
    base: &str,
) -> Reply {
    // The group id arrives percent-encoded inside one segment (acme%2Fplatform),
    // which the decoded path has turned back into slashes.
    let group_prefix = format!("/api/v4/groups/{}/projects", state.owner);
    if method == "GET" && path == group_prefix {
        if param(params, "include_subgroups") != Some("true") {
            return reply(
                400,
                json!({ "error": "test expects include_subgroups=true" }),
            );
        }
        let items: Vec<Value> = state
            .repos
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                let mut v = json!({
                    "id": fnv(&r.name) as u32,
                    "name": r.name,
                    "path": r.name,
                    "path_with_namespace": format!("{}/{}", r.project, r.name),
                    "http_url_to_repo": r.clone_url,
                    "archived": r.archived,
                    "empty_repo": r.empty,
                    "default_branch": r.default_branch.as_ref().filter(|_| !r.empty),
                    "wiki_enabled": r.has_wiki,
                    "wiki_access_level": if r.has_wiki { "enabled" } else { "disabled" },
                });
                if r.fork {
                    v["forked_from_project"] = json!({ "id": 1 });
                }
                v
            })
            .collect();
        // GitLab sends both Link and x-next-page; this fake sends only
        // x-next-page so the fallback is what gets tested.
        let mut r = paged(state, items, params, base, path);
        let page: usize = param(params, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let next = r
            .headers
            .iter()
            .any(|(k, v)| k == "Link" && v.contains("rel=\"next\""));
        r.headers.retain(|(k, _)| k != "Link");
        r.headers.push((
            "X-Next-Page".into(),
            if next {
                (page + 1).to_string()
            } else {
                String::new()
            },
        ));
        return r;
    }
    if method == "GET" && path == format!("/api/v4/namespaces/{}", state.owner) {
        return reply(200, json!({ "id": 42, "full_path": state.owner }));
    }
    if method == "POST" && path == "/api/v4/projects" {
        let body: Value = serde_json::from_str(body).unwrap_or_default();
        let name = body["path"].as_str().unwrap_or_default();
        if body["namespace_id"] != 42 {
            return reply(400, json!({ "message": "bad namespace" }));
        }
        if exists(state, None, name) {
            return reply(
                400,
                json!({ "message": { "path": ["has already been taken"] } }),
            );
        }
        return match create(state, &state.owner, name) {
            Some(_) => reply(201, json!({ "path": name })),
            None => reply(403, json!({ "message": "403 Forbidden" })),
        };
    }
    // Edit a project: the id is the URL-encoded full path.
    if let Some(name) = path
        .strip_prefix("/api/v4/projects/")
        .and_then(|rest| rest.strip_prefix(&format!("{}/", state.owner)))
        .filter(|_| method == "PUT")
    {
        if state.refuse_default_branch {
            return reply(403, json!({ "message": "403 Forbidden" }));
        }
        let body: Value = serde_json::from_str(body).unwrap_or_default();
        let Some(branch) = body["default_branch"].as_str() else {
            return reply(400, json!({ "error": "default_branch is missing" }));
        };
        return match set_default(state, None, name, branch) {
            Some(r) => reply(
                200,
                json!({ "path": r.name, "path_with_namespace": format!("{}/{}", state.owner, r.name), "default_branch": branch }),
            ),
            None => reply(404, json!({ "message": "404 Project Not Found" })),
        };
    }
    not_found()
}

// ---- Bitbucket -----------------------------------------------------------

fn clone_links(r: &FakeRepo, name: &str) -> Value {
    json!([
        { "name": name, "href": r.clone_url },
        { "name": "ssh", "href": format!("ssh://git@example.com/{}.git", r.name) },
    ])
}

fn bitbucket_repo(state: &State, r: &FakeRepo) -> Value {
    let mut v = json!({
        "type": "repository",
        "slug": r.name,
        "name": r.name,
        "full_name": format!("{}/{}", state.owner, r.name),
        "links": { "clone": clone_links(r, "https") },
        "is_private": true,
    });
    if let Some(branch) = &r.default_branch {
        v["mainbranch"] = json!({ "type": "branch", "name": branch });
    }
    if r.fork {
        v["parent"] = json!({ "full_name": "other/repo" });
    }
    v
}

/// Bitbucket Cloud's error document.
fn bitbucket_error(status: u16, message: &str) -> Reply {
    reply(
        status,
        json!({ "type": "error", "error": { "message": message } }),
    )
}

fn bitbucket(
    state: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &str,
    base: &str,
) -> Reply {
    let workspace = format!("/2.0/repositories/{}", state.owner);
    if let Some(slug) = path
        .strip_prefix(&workspace)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        let body: Value = serde_json::from_str(body).unwrap_or_default();
        return match method {
            "POST" if exists(state, None, slug) => {
                bitbucket_error(400, "Repository with this Slug and Owner already exists.")
            }
            "POST" => match create(state, &state.owner, slug) {
                Some(repo) => reply(200, bitbucket_repo(state, &repo)),
                None => bitbucket_error(403, "You do not have permission to create a repository."),
            },
            "PUT" if state.refuse_default_branch => bitbucket_error(
                403,
                "Your credentials lack one or more required privilege scopes.",
            ),
            "PUT" => match body["mainbranch"]["name"].as_str() {
                Some(branch) => match set_default(state, None, slug, branch) {
                    Some(repo) => reply(200, bitbucket_repo(state, &repo)),
                    None => bitbucket_error(404, "Repository not found"),
                },
                None => bitbucket_error(400, "mainbranch.name is required"),
            },
            _ => not_found(),
        };
    }
    if path != workspace {
        return not_found();
    }
    let size = param(params, "pagelen")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(10)
        .min(state.page_size);
    let page: usize = param(params, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let repos = state.repos.lock().unwrap().clone();
    let values: Vec<Value> = repos
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|r| bitbucket_repo(state, r))
        .collect();
    let mut body = json!({ "pagelen": size, "page": page, "size": repos.len(), "values": values });
    if page * size < repos.len() {
        body["next"] = json!(format!(
            "{base}/2.0/repositories/{}?pagelen={size}&page={}",
            seg(&state.owner),
            page + 1
        ));
    }
    reply(200, body)
}

fn bitbucket_server_repo(state: &State, r: &FakeRepo) -> Value {
    json!({
        "slug": r.name,
        "name": r.name,
        "scmId": "git",
        "project": { "key": state.owner },
        "archived": r.archived,
        "links": { "clone": clone_links(r, "http") },
    })
}

/// Bitbucket Server's error document.
fn bitbucket_server_error(status: u16, message: &str, exception: &str) -> Reply {
    reply(
        status,
        json!({ "errors": [{ "context": null, "message": message, "exceptionName": exception }] }),
    )
}

fn bitbucket_server(
    state: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &str,
) -> Reply {
    let repos_path = format!("/rest/api/1.0/projects/{}/repos", state.owner);
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    if method == "POST" && path == repos_path {
        let name = body["name"].as_str().unwrap_or_default();
        if exists(state, None, name) {
            return bitbucket_server_error(
                409,
                &format!("This repository URL is already taken by '{name}'"),
                "com.atlassian.bitbucket.repository.DuplicateRepositoryNameException",
            );
        }
        return match create(state, &state.owner, name) {
            Some(repo) => reply(201, bitbucket_server_repo(state, &repo)),
            None => bitbucket_server_error(
                401,
                "You are not permitted to access this resource",
                "com.atlassian.bitbucket.AuthorisationException",
            ),
        };
    }
    if let Some(slug) = path
        .strip_prefix(&format!("{repos_path}/"))
        .and_then(|rest| rest.strip_suffix("/default-branch"))
        .filter(|_| method == "PUT")
    {
        if state.refuse_default_branch {
            return bitbucket_server_error(
                403,
                "You are not permitted to access this resource",
                "com.atlassian.bitbucket.AuthorisationException",
            );
        }
        let Some(branch) = body["id"]
            .as_str()
            .and_then(|b| b.strip_prefix("refs/heads/"))
        else {
            return bitbucket_server_error(
                400,
                "id must name a branch",
                "com.atlassian.bitbucket.validation.ArgumentValidationException",
            );
        };
        return match set_default(state, None, slug, branch) {
            // 204 No Content.
            Some(_) => reply(204, Value::Null),
            None => bitbucket_server_error(
                404,
                &format!("Repository {}/{slug} does not exist.", state.owner),
                "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
            ),
        };
    }
    if method != "GET" || path != repos_path {
        return not_found();
    }
    let limit = param(params, "limit")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(25)
        .min(state.page_size);
    let start: usize = param(params, "start")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let repos = state.repos.lock().unwrap().clone();
    let values: Vec<Value> = repos
        .iter()
        .skip(start)
        .take(limit)
        .map(|r| bitbucket_server_repo(state, r))
        .collect();
    let last = start + limit >= repos.len();
    let mut body = json!({
        "size": values.len(), "limit": limit, "start": start,
        "isLastPage": last, "values": values,
    });
    if !last {
        body["nextPageStart"] = json!(start + limit);
    }
    reply(200, body)
}

/// Where tests keep bare repositories made on behalf of a fake.
pub fn bare_path(root: &std::path::Path, project: &str, name: &str) -> PathBuf {
    root.join(project).join(format!("{name}.git"))
}

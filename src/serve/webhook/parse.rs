//! Each forge's payload shapes, read into a [`Delivery`]; only ever called
//! on a body whose sender was verified.
//!
//! Only what mirroring needs is read: the kind of event (from the forge's
//! event header, or the body where the forge puts it there), the delivery
//! id, and for a push the repository's URLs and name. Unknown fields are
//! ignored, so new forge versions keep working; a push that names no
//! repository URL is malformed, since it could never be matched.

use serde_json::Value;

use super::{Delivery, Event, Forge, Headers, Refusal, Repository};

/// The most URLs kept from one payload (Bitbucket Server lists its clone
/// links in an array of any length).
const MAX_URLS: usize = 16;
/// The longest URL kept; longer strings cannot be a configured source.
const MAX_URL_LEN: usize = 2048;
/// The longest name or event kind kept for logs and answers.
const MAX_NAME_CHARS: usize = 100;

pub(super) fn delivery(
    forge: Forge,
    headers: &dyn Headers,
    body: &[u8],
) -> Result<Delivery, Refusal> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::Malformed(format!("the body is not JSON ({e})")))?;
    if !json.is_object() {
        return Err(Refusal::Malformed("the body is not a JSON object".into()));
    }
    let (id, event) = match forge {
        Forge::GitHub => (
            first_header(headers, &["X-GitHub-Delivery"]),
            github(headers, &json)?,
        ),
        // Idempotency-Key stays the same across GitLab's retries of one
        // delivery (GitLab 17.4 and later); the event UUID is older.
        Forge::GitLab => (
            first_header(headers, &["Idempotency-Key", "X-Gitlab-Event-UUID"]),
            gitlab(headers, &json)?,
        ),
        // Azure DevOps sends no delivery header; the body's `id` is the event's.
        Forge::AzureDevOps => (
            json.get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            azure(&json)?,
        ),
        // Cloud, then Server / Data Center.
        Forge::Bitbucket => (
            first_header(headers, &["X-Request-UUID", "X-Request-Id"]),
            bitbucket(headers, &json)?,
        ),
        Forge::Gitea => (
            first_header(
                headers,
                &[
                    "X-Forgejo-Delivery",
                    "X-Gitea-Delivery",
                    "X-GitHub-Delivery",
                ],
            ),
            gitea(headers, &json)?,
        ),
    };
    Ok(Delivery { id, event })
}

fn github(headers: &dyn Headers, json: &Value) -> Result<Event, Refusal> {
    let kind = headers
        .header("X-GitHub-Event")
        .ok_or_else(|| Refusal::Malformed("no X-GitHub-Event header".into()))?;
    match kind.trim() {
        "push" | "create" | "delete" => hub_repository(json).map(Event::Push),
        "ping" => Ok(Event::Ping),
        other => Ok(Event::Other(printable(other))),
    }
}

fn gitea(headers: &dyn Headers, json: &Value) -> Result<Event, Refusal> {
    let kind = first_header(headers, &["X-Forgejo-Event", "X-Gitea-Event"])
        .ok_or_else(|| Refusal::Malformed("no X-Gitea-Event or X-Forgejo-Event header".into()))?;
    match kind.trim() {
        "push" | "create" | "delete" => hub_repository(json).map(Event::Push),
        other => Ok(Event::Other(printable(other))),
    }
}

/// GitHub's and Gitea's `repository` object (the same shape on both).
fn hub_repository(json: &Value) -> Result<Repository, Refusal> {
    let repository = &json["repository"];
    let mut urls = Vec::new();
    for field in ["clone_url", "html_url", "ssh_url"] {
        add_url(&mut urls, repository[field].as_str());
    }
    let name = repository["full_name"]
        .as_str()
        .or_else(|| repository["name"].as_str());
    repository_of(urls, name)
}

fn gitlab(headers: &dyn Headers, json: &Value) -> Result<Event, Refusal> {
    // System hooks say what happened in the body; so does every hook's
    // `object_kind`, used when the header is missing.
    let kind = match headers.header("X-Gitlab-Event").map(str::trim) {
        Some("System Hook") | None => json["event_name"]
            .as_str()
            .or_else(|| json["object_kind"].as_str())
            .ok_or_else(|| Refusal::Malformed("no X-Gitlab-Event header or event name".into()))?,
        Some(header) => header,
    };
    match kind.trim() {
        // `repository_update` is the system hook sent for every push to a
        // project, whichever other system hook events are enabled.
        "Push Hook" | "Tag Push Hook" | "push" | "tag_push" | "repository_update" => {
            gitlab_repository(json).map(Event::Push)
        }
        other => Ok(Event::Other(printable(other))),
    }
}

fn gitlab_repository(json: &Value) -> Result<Repository, Refusal> {
    let project = &json["project"];
    let repository = &json["repository"];
    let mut urls = Vec::new();
    // `project` since GitLab 8.5; `repository`'s fields for older servers.
    for field in [
        "git_http_url",
        "web_url",
        "git_ssh_url",
        "http_url",
        "ssh_url",
    ] {
        add_url(&mut urls, project[field].as_str());
    }
    for field in ["git_http_url", "homepage", "git_ssh_url", "url"] {
        add_url(&mut urls, repository[field].as_str());
    }
    let name = project["path_with_namespace"]
        .as_str()
        .or_else(|| json["path_with_namespace"].as_str())
        .or_else(|| repository["name"].as_str());
    repository_of(urls, name)
}

fn azure(json: &Value) -> Result<Event, Refusal> {
    let kind = json["eventType"]
        .as_str()
        .ok_or_else(|| Refusal::Malformed("no eventType".into()))?;
    match kind.trim() {
        "git.push" => {
            let repository = &json["resource"]["repository"];
            let mut urls = Vec::new();
            for field in ["remoteUrl", "webUrl", "sshUrl"] {
                add_url(&mut urls, repository[field].as_str());
            }
            let name = match (
                repository["project"]["name"].as_str(),
                repository["name"].as_str(),
            ) {
                (Some(project), Some(name)) => Some(format!("{project}/{name}")),
                (None, Some(name)) => Some(name.to_owned()),
                _ => None,
            };
            repository_of(urls, name.as_deref()).map(Event::Push)
        }
        other => Ok(Event::Other(printable(other))),
    }
}

fn bitbucket(headers: &dyn Headers, json: &Value) -> Result<Event, Refusal> {
    // Server puts the key in the body too.
    let kind = headers
        .header("X-Event-Key")
        .or_else(|| json["eventKey"].as_str())
        .ok_or_else(|| Refusal::Malformed("no X-Event-Key header".into()))?;
    match kind.trim() {
        "repo:push" | "repo:refs_changed" => bitbucket_repository(json).map(Event::Push),
        "diagnostics:ping" => Ok(Event::Ping),
        other => Ok(Event::Other(printable(other))),
    }
}

fn bitbucket_repository(json: &Value) -> Result<Repository, Refusal> {
    let repository = &json["repository"];
    let links = &repository["links"];
    let mut urls = Vec::new();
    // Server / Data Center: arrays of links, clone ones first.
    for group in ["clone", "self"] {
        if let Some(list) = links[group].as_array() {
            for link in list {
                add_url(&mut urls, link["href"].as_str());
            }
        }
    }
    // Cloud: one web link; its clone URLs are not in the payload.
    add_url(&mut urls, links["html"]["href"].as_str());
    let server_name = match (
        repository["project"]["key"].as_str(),
        repository["slug"].as_str(),
    ) {
        (Some(project), Some(slug)) => Some(format!("{project}/{slug}")),
        _ => None,
    };
    let name = repository["full_name"]
        .as_str()
        .map(str::to_owned)
        .or(server_name);
    repository_of(urls, name.as_deref())
}

fn repository_of(urls: Vec<String>, name: Option<&str>) -> Result<Repository, Refusal> {
    let Some(first) = urls.first() else {
        return Err(Refusal::Malformed(
            "a push event without a repository URL".into(),
        ));
    };
    let name = match name.map(str::trim).filter(|name| !name.is_empty()) {
        Some(name) => printable(name),
        None => printable(first),
    };
    Ok(Repository { urls, name })
}

fn add_url(urls: &mut Vec<String>, url: Option<&str>) {
    let Some(url) = url.map(str::trim) else {
        return;
    };
    let usable = !url.is_empty()
        && url.len() <= MAX_URL_LEN
        && !url.chars().any(char::is_control)
        && urls.len() < MAX_URLS
        && !urls.iter().any(|known| known == url);
    if usable {
        urls.push(url.to_owned());
    }
}

/// The first of `names` present with a non-empty value.
fn first_header(headers: &dyn Headers, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| headers.header(name))
        .map(str::trim)
        .find(|value| !value.is_empty())
        .map(str::to_owned)
}

/// Payload text fit for a log line or an answer: control characters
/// replaced, at most [`MAX_NAME_CHARS`] characters.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(MAX_NAME_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

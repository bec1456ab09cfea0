//! Scope URLs: which forge, which API, which organization.
//!
//! Users paste the URL they see in a browser (`https://github.com/acme`,
//! `https://dev.azure.com/org/project`). For the public hosts the kind and
//! the API base follow from the host; a self-hosted server needs the kind
//! named, and its API base is derived from the web URL the way each product
//! lays it out (`/api/v3`, `/api/v4`, `/api/v1`, `/rest/api/1.0`), or given
//! outright for servers mounted under a path prefix.

use std::fmt;

use url::Url;

/// A kind of forge. Its names and descriptions are here, for `--help` and
/// the task's pick lists alike; clap is the command line's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    AzureDevOps,
    GitHub,
    GitLab,
    Bitbucket,
    BitbucketServer,
    Gitea,
}

impl Kind {
    /// Every kind, in the order help lists them.
    pub(crate) const ALL: [Kind; 6] = [
        Kind::AzureDevOps,
        Kind::GitHub,
        Kind::GitLab,
        Kind::Bitbucket,
        Kind::BitbucketServer,
        Kind::Gitea,
    ];

    /// The name users type (`--source-kind`, the task's `sourceKind`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::AzureDevOps => "azure-devops",
            Kind::GitHub => "github",
            Kind::GitLab => "gitlab",
            Kind::Bitbucket => "bitbucket",
            Kind::BitbucketServer => "bitbucket-server",
            Kind::Gitea => "gitea",
        }
    }

    /// The kind with this name, in any case.
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// What the product is and what its scope URL looks like.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Kind::AzureDevOps => "Azure DevOps Services or Server (scope: organization or collection URL, optionally /PROJECT)",
            Kind::GitHub => "GitHub or GitHub Enterprise Server (scope: https://HOST/ORG)",
            Kind::GitLab => "GitLab (scope: https://HOST/GROUP[/SUBGROUP...])",
            Kind::Bitbucket => "Bitbucket Cloud (scope: https://bitbucket.org/WORKSPACE)",
            Kind::BitbucketServer => "Bitbucket Server / Data Center (scope: https://HOST/projects/KEY)",
            Kind::Gitea => "Gitea or Forgejo (scope: https://HOST/ORG)",
        }
    }

    /// The API's name in messages.
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Kind::AzureDevOps => "Azure DevOps API",
            Kind::GitHub => "GitHub API",
            Kind::GitLab => "GitLab API",
            Kind::Bitbucket => "Bitbucket API",
            Kind::BitbucketServer => "Bitbucket Server API",
            Kind::Gitea => "Gitea API",
        }
    }

    /// What a token needs, said the way each forge's settings page says it.
    pub(crate) fn token_hint(self) -> &'static str {
        match self {
            Kind::AzureDevOps => "a PAT with Code (Read; Read & write for a destination) and Project and Team (Read) scopes",
            Kind::GitHub => "a token with the `repo` scope (fine-grained: Contents and Metadata read; Administration write to create repositories)",
            Kind::GitLab => "a token with the `read_api` and `read_repository` scopes (`api` and `write_repository` for a destination)",
            Kind::Bitbucket => "an API token with the scope read:repository:bitbucket (write:repository:bitbucket to push, admin:repository:bitbucket to create), given with your Atlassian account email as --source-username / --dest-username; or an access token with Repositories: Read (Admin to create) and no user name",
            Kind::BitbucketServer => "an HTTP access token with Repository read (Project admin to create)",
            Kind::Gitea => "a token with read:organization and read:repository (write:repository to create)",
        }
    }

    /// The user name git sends with a bare token, as each host documents it.
    pub(crate) fn git_username(self) -> &'static str {
        match self {
            Kind::GitHub => "x-access-token",
            Kind::GitLab => "oauth2",
            Kind::Bitbucket => "x-token-auth",
            Kind::AzureDevOps | Kind::BitbucketServer | Kind::Gitea => "git",
        }
    }

    /// Whether the API takes a token as `Authorization: Bearer` rather than
    /// in Basic auth. Azure DevOps PATs go in Basic; Gitea documents
    /// `Authorization: token` for its tokens, and Basic with the token as
    /// password works everywhere Gitea takes tokens, so Basic it is;
    /// Bitbucket takes Basic only for app passwords, which come with a user.
    pub(crate) fn api_prefers_bearer(self) -> bool {
        !matches!(self, Kind::AzureDevOps | Kind::Gitea)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a set of repositories lives, and how its API is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope {
    /// The kind of forge.
    pub(crate) kind: Kind,
    /// The API base: the collection URL for Azure DevOps, `.../api/v3` for
    /// GitHub, `.../api/v4` for GitLab, `.../2.0` for Bitbucket,
    /// `.../rest/api/1.0` for Bitbucket Server, `.../api/v1` for Gitea.
    pub(crate) api: Url,
    /// The organization, group path, workspace or project key.
    pub(crate) owner: String,
    /// Azure DevOps only: one project instead of the whole organization.
    pub(crate) project: Option<String>,
}

impl Scope {
    /// Reads a scope URL (without userinfo: see [`crate::transport::Location`]).
    /// `kind` is required for self-hosted servers; `api` overrides the
    /// derived API base.
    pub(crate) fn parse(url: &Url, kind: Option<Kind>, api: Option<&Url>) -> Result<Scope, String> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let kind = kind.or_else(|| infer(&host)).ok_or_else(|| {
            let names = Kind::ALL.map(Kind::name).join(", ");
            format!("cannot tell which forge {host} is; name it with --source-kind / --dest-kind ({names})")
        })?;
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| {
                s.filter(|s| !s.is_empty())
                    .map(|s| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let origin = {
            let mut o = url.clone();
            o.set_path("");
            o.set_query(None);
            o.set_fragment(None);
            o
        };
        let derived = |path: &str| {
            let mut u = origin.clone();
            u.set_path(path);
            u
        };
        let need_owner = |what: &str| -> Result<String, String> {
            segments.first().cloned().ok_or_else(|| {
                format!(
                    "the scope URL names no {what}: expected {url}/{}",
                    what.to_uppercase()
                )
            })
        };
        let mut project = None;
        let (api_base, owner) = match kind {
            Kind::AzureDevOps if host == "dev.azure.com" => {
                let org = need_owner("organization")?;
                project = segments.get(1).cloned();
                (super::join(&origin, &[&org]), org)
            }
            Kind::AzureDevOps if host.ends_with(".visualstudio.com") => {
                project = segments.first().cloned();
                let org = host.split('.').next().unwrap_or_default().to_owned();
                (derived("/"), org)
            }
            Kind::AzureDevOps => {
                // A Server collection URL is the API base itself; its last
                // segment names the collection.
                let mut base = url.clone();
                base.set_query(None);
                base.set_fragment(None);
                let owner = segments.last().cloned().unwrap_or_else(|| host.clone());
                (base, owner)
            }
            Kind::GitHub if host == "github.com" || host == "api.github.com" => (
                Url::parse("https://api.github.com").expect("a valid URL"),
                need_owner("organization")?,
            ),
            Kind::GitHub => (derived("/api/v3"), need_owner("organization")?),
            Kind::Gitea => (derived("/api/v1"), need_owner("organization")?),
            Kind::GitLab => {
                if segments.is_empty() {
                    need_owner("group")?;
                }
                let group = segments
                    .iter()
                    .take_while(|s| *s != "-")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/");
                (derived("/api/v4"), group)
            }
            Kind::Bitbucket => (
                Url::parse("https://api.bitbucket.org/2.0").expect("a valid URL"),
                need_owner("workspace")?,
            ),
            Kind::BitbucketServer => {
                let at = segments
                    .iter()
                    .position(|s| s == "projects" || s == "users")
                    .ok_or_else(|| {
                        format!("a Bitbucket Server scope looks like https://HOST/projects/KEY (or /users/NAME); got {url}")
                    })?;
                let key = segments.get(at + 1).cloned().ok_or_else(|| {
                    format!(
                        "the scope URL names no project key after /{}/",
                        segments[at]
                    )
                })?;
                let owner = if segments[at] == "users" {
                    format!("~{key}")
                } else {
                    key
                };
                let mut base: Vec<&str> = segments[..at].iter().map(String::as_str).collect();
                base.extend(["rest", "api", "1.0"]);
                (super::join(&origin, &base), owner)
            }
        };
        Ok(Scope {
            kind,
            api: api.cloned().unwrap_or(api_base),
            owner,
            project,
        })
    }
}

fn infer(host: &str) -> Option<Kind> {
    Some(match host {
        "dev.azure.com" => Kind::AzureDevOps,
        h if h.ends_with(".visualstudio.com") => Kind::AzureDevOps,
        "github.com" | "api.github.com" => Kind::GitHub,
        "gitlab.com" => Kind::GitLab,
        "bitbucket.org" | "api.bitbucket.org" => Kind::Bitbucket,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(url: &str, kind: Option<Kind>) -> Scope {
        Scope::parse(&Url::parse(url).unwrap(), kind, None).unwrap()
    }

    #[test]
    fn public_hosts_are_recognised() {
        let s = scope("https://dev.azure.com/fabrikam/My%20Project", None);
        assert_eq!(s.kind, Kind::AzureDevOps);
        assert_eq!(s.api.as_str(), "https://dev.azure.com/fabrikam");
        assert_eq!(s.project.as_deref(), Some("My Project"));
        let s = scope("https://fabrikam.visualstudio.com/", None);
        assert_eq!((s.owner.as_str(), s.project), ("fabrikam", None));
        let s = scope("https://github.com/acme/", None);
        assert_eq!(
            (s.api.as_str(), s.owner.as_str()),
            ("https://api.github.com/", "acme")
        );
        let s = scope("https://gitlab.com/acme/platform/tools", None);
        assert_eq!(
            (s.api.as_str(), s.owner.as_str()),
            ("https://gitlab.com/api/v4", "acme/platform/tools")
        );
        let s = scope("https://bitbucket.org/ws", None);
        assert_eq!(s.api.as_str(), "https://api.bitbucket.org/2.0");
    }

    #[test]
    fn self_hosted_need_a_kind() {
        let url = Url::parse("https://git.example.com/acme").unwrap();
        assert!(Scope::parse(&url, None, None)
            .unwrap_err()
            .contains("--source-kind"));
        let s = scope("https://git.example.com/acme", Some(Kind::Gitea));
        assert_eq!(s.api.as_str(), "https://git.example.com/api/v1");
        let s = scope("https://ghe.example.com/acme", Some(Kind::GitHub));
        assert_eq!(s.api.as_str(), "https://ghe.example.com/api/v3");
        let s = scope(
            "https://tfs.example.com/tfs/DefaultCollection",
            Some(Kind::AzureDevOps),
        );
        assert_eq!(
            (s.api.as_str(), s.owner.as_str()),
            (
                "https://tfs.example.com/tfs/DefaultCollection",
                "DefaultCollection"
            )
        );
        let s = scope(
            "https://example.com/bitbucket/projects/PRJ/repos",
            Some(Kind::BitbucketServer),
        );
        assert_eq!(
            (s.api.as_str(), s.owner.as_str()),
            ("https://example.com/bitbucket/rest/api/1.0", "PRJ")
        );
    }
}

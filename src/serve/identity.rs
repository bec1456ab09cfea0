//! Which configured mirror a webhook speaks of.
//!
//! A forge names a repository in its webhook payload by URLs of its own
//! choosing (an HTTPS clone URL, a web URL, an SSH URL), while the config
//! file names it by whatever URL the user pasted, perhaps with a user name
//! (`https://org@dev.azure.com/...`), `.git`, another letter case or the old
//! `ORG.visualstudio.com` host. Both sides are reduced here to one key,
//! `host/path` in lower case, so that "the same repository" is a string
//! comparison, and an organization's key is a prefix of its repositories'.
//!
//! Keys are for matching only: they are never used to reach a server.

use percent_encoding::percent_decode_str;

/// The key of a repository or organization URL: the host and the path,
/// lower case, without scheme, user, port, `.git` or trailing slash, with
/// each host's aliases reduced to one spelling. `None` for what is not a
/// remote URL (a local path).
pub(crate) fn repo_key(location: &str) -> Option<String> {
    let (host, path) = split(location.trim())?;
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    let path = percent_decode_str(path).decode_utf8_lossy().to_lowercase();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(last) = segments.last_mut() {
        *last = last.strip_suffix(".git").unwrap_or(last);
    }
    let (host, segments) = canonical(&host, segments);
    if host.is_empty() {
        return None;
    }
    let mut key = host;
    for segment in segments {
        key.push('/');
        key.push_str(segment);
    }
    Some(key)
}

/// Whether `repository` (a key) lies inside `scope` (an organization's,
/// group's or project's key).
pub(crate) fn contains(scope: &str, repository: &str) -> bool {
    repository.len() > scope.len()
        && repository.starts_with(scope)
        && repository.as_bytes()[scope.len()] == b'/'
}

/// The host and the path of `location`: `scheme://[user@]host[:port]/path`
/// or scp-like `[user@]host:path`.
fn split(location: &str) -> Option<(&str, &str)> {
    if let Some((scheme, rest)) = location.split_once("://") {
        if !matches!(
            scheme.to_ascii_lowercase().as_str(),
            "http" | "https" | "ssh" | "git" | "git+ssh" | "ssh+git"
        ) {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host.strip_prefix('[') {
            // An IPv6 literal keeps its colons.
            Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
            None => host.split_once(':').map_or(host, |(h, _)| h),
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        return Some((host, path));
    }
    // scp-like: a colon before any slash, and not a Windows drive letter.
    let colon = location.find(':')?;
    if location[..colon].contains('/') || colon <= 1 {
        return None;
    }
    let authority = &location[..colon];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some((host, &location[colon + 1..]))
}

/// One spelling per repository for the hosts that have several.
fn canonical<'a>(host: &str, segments: Vec<&'a str>) -> (String, Vec<&'a str>) {
    // Azure DevOps: ORG.visualstudio.com/[DefaultCollection/]PROJECT/_git/REPO
    // and its SSH form ssh.dev.azure.com:v3/ORG/PROJECT/REPO are
    // dev.azure.com/ORG/PROJECT/_git/REPO.
    if let Some(org) = host.strip_suffix(".visualstudio.com") {
        let mut rest = segments;
        if rest.first() == Some(&"defaultcollection") {
            rest.remove(0);
        }
        return (format!("dev.azure.com/{org}"), rest);
    }
    if host == "ssh.dev.azure.com" || host == "vs-ssh.visualstudio.com" {
        if let ["v3", org, project, repo] = segments.as_slice() {
            return (format!("dev.azure.com/{org}"), vec![project, "_git", repo]);
        }
    }
    // Bitbucket Server / Data Center: /scm/KEY/REPO (HTTP clone),
    // /projects/KEY/repos/REPO[/browse] (web) and KEY/REPO (SSH) are one.
    match segments.as_slice() {
        ["scm", rest @ ..] if !rest.is_empty() => return (host.to_string(), rest.to_vec()),
        ["projects", key, "repos", repo, ..] => return (host.to_string(), vec![key, repo]),
        ["projects", key] => return (host.to_string(), vec![key]),
        _ => {}
    }
    (host.to_string(), segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        repo_key(url).unwrap_or_else(|| panic!("no key for {url}"))
    }

    #[test]
    fn the_forms_of_one_github_repository_share_a_key() {
        for url in [
            "https://github.com/Acme/Widgets.git",
            "https://github.com/acme/widgets",
            "https://x-access-token@github.com/acme/widgets/",
            "git@github.com:acme/widgets.git",
            "ssh://git@github.com/acme/widgets.git",
            "https://www.github.com/acme/widgets",
        ] {
            assert_eq!(key(url), "github.com/acme/widgets", "{url}");
        }
    }

    #[test]
    fn the_forms_of_one_azure_repository_share_a_key() {
        for url in [
            "https://dev.azure.com/acme/App/_git/Widgets",
            "https://acme@dev.azure.com/acme/App/_git/Widgets",
            "https://acme.visualstudio.com/App/_git/Widgets",
            "https://acme.visualstudio.com/DefaultCollection/App/_git/Widgets",
            "git@ssh.dev.azure.com:v3/acme/App/Widgets",
        ] {
            assert_eq!(key(url), "dev.azure.com/acme/app/_git/widgets", "{url}");
        }
        assert_eq!(
            key("https://dev.azure.com/acme/My%20Project/_git/My%20Repo"),
            "dev.azure.com/acme/my project/_git/my repo"
        );
    }

    #[test]
    fn the_forms_of_one_bitbucket_server_repository_share_a_key() {
        for url in [
            "https://git.example.com/scm/PROJ/widgets.git",
            "https://git.example.com/projects/PROJ/repos/widgets/browse",
            "ssh://git@git.example.com:7999/proj/widgets.git",
        ] {
            assert_eq!(key(url), "git.example.com/proj/widgets", "{url}");
        }
        assert!(contains(
            &key("https://git.example.com/projects/PROJ"),
            &key("https://git.example.com/scm/proj/widgets.git")
        ));
    }

    #[test]
    fn ports_and_queries_do_not_matter() {
        assert_eq!(
            key("http://127.0.0.1:40123/src.git?x=1"),
            key("https://127.0.0.1/src")
        );
    }

    #[test]
    fn an_organization_contains_its_repositories_and_nothing_else() {
        let org = key("https://github.com/acme");
        assert!(contains(&org, &key("https://github.com/acme/widgets.git")));
        assert!(!contains(
            &org,
            &key("https://github.com/acme-labs/widgets")
        ));
        assert!(!contains(&org, &org));
        let group = key("https://gitlab.com/acme/platform");
        assert!(contains(
            &group,
            &key("git@gitlab.com:acme/platform/sub/api.git")
        ));
        let azure = key("https://dev.azure.com/acme");
        assert!(contains(
            &azure,
            &key("https://acme.visualstudio.com/App/_git/W")
        ));
    }

    #[test]
    fn local_paths_and_other_schemes_have_no_key() {
        for path in [
            "/srv/git/widgets.git",
            "./widgets",
            "C:\\git\\w",
            "c:/git/w",
            "file:///srv/w.git",
            "",
        ] {
            assert_eq!(repo_key(path), None, "{path}");
        }
    }
}

//! Destination templates: `https://github.com/acme-mirror/{project}-{repo}.git`.
//!
//! Each placeholder becomes one path segment, percent-encoded, so names with
//! spaces, `#`, `?`, `/` or non-ASCII letters land in exactly one segment of
//! the URL and can never reach into another part of it; `ssh://` URLs too,
//! whose paths are percent-decoded when parsed. A template that is a local
//! path (backups) or an scp-like SSH remote (`git@host:path`, whose path is
//! taken literally and quoted for the remote shell) keeps names readable
//! and only escapes what would change the directory structure.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::transport::Location;

/// What must be escaped inside one URL path segment (the WHATWG path
/// percent-encode set, plus `/` and `%` which would otherwise split or
/// re-encode the segment, and the characters servers tend to refuse).
pub(crate) const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

const PLACEHOLDERS: [&str; 3] = ["{owner}", "{project}", "{repo}"];

/// A checked destination template.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    text: String,
    /// An http(s):// or file:// URL: a forge's, where repositories can be
    /// created.
    url: bool,
    /// An SSH remote, `ssh://` (`encoded`) or scp-like: not on this machine.
    ssh: bool,
    /// Placeholders become percent-encoded URL path segments.
    encoded: bool,
}

impl Template {
    /// Checks that `text` uses only known placeholders and names `{repo}`,
    /// without which every repository would go to the same place.
    pub(crate) fn new(text: &str) -> Result<Template, String> {
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in the destination template `{text}`"))?;
            let name = &rest[start..start + end + 1];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {name} in the destination template: use {{owner}}, {{project}} and {{repo}}"
                ));
            }
            rest = &rest[start + end + 1..];
        }
        if !text.contains("{repo}") {
            return Err(format!(
                "the destination template `{text}` has no {{repo}}: every repository would go to the same place"
            ));
        }
        let lower = text.to_ascii_lowercase();
        let url = ["http://", "https://", "file://"]
            .iter()
            .any(|s| lower.starts_with(s));
        let ssh_url = ["ssh://", "git+ssh://", "ssh+git://"]
            .iter()
            .any(|s| lower.starts_with(s));
        // Parsed with a name in place of each placeholder: as a source or
        // destination argument is.
        let sample = PLACEHOLDERS
            .iter()
            .fold(text.to_owned(), |t, p| t.replace(p, "x"));
        let ssh = matches!(Location::parse(&sample), Ok(Location::Ssh { .. }));
        Ok(Template {
            text: text.to_owned(),
            url,
            ssh,
            encoded: url || ssh_url,
        })
    }

    /// Whether destinations are URLs (rather than local paths).
    pub(crate) fn is_url(&self) -> bool {
        self.url
    }

    /// For a local template, the directory every destination lies under:
    /// the part before the first placeholder, up to its last separator.
    pub(crate) fn local_root(&self) -> Option<std::path::PathBuf> {
        if self.url || self.ssh {
            return None;
        }
        let fixed = &self.text[..self.text.find('{').unwrap_or(self.text.len())];
        let root = match fixed.rfind(['/', '\\']) {
            Some(0) => "/",
            Some(at) => &fixed[..at],
            None => ".",
        };
        Some(std::path::PathBuf::from(root))
    }

    /// The destination of one repository.
    pub(crate) fn render(&self, owner: &str, project: &str, repo: &str) -> String {
        let encode = |v: &str| {
            if self.encoded {
                utf8_percent_encode(v, SEGMENT).to_string()
            } else {
                local_name(v)
            }
        };
        self.text
            .replace("{owner}", &encode(owner))
            .replace("{project}", &encode(project))
            .replace("{repo}", &encode(repo))
    }
}

/// A name as one directory-name component: separators and a leading dot
/// (`.`, `..`, hidden files) are escaped, everything else kept as is.
fn local_name(name: &str) -> String {
    let escaped = name
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('\\', "%5C");
    match escaped.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_placeholders_are_single_segments() {
        let t = Template::new("https://h/{owner}/{project}-{repo}.git").unwrap();
        assert_eq!(
            t.render("acme", "My Project", "a/b#ü?"),
            "https://h/acme/My%20Project-a%2Fb%23%C3%BC%3F.git"
        );
    }

    #[test]
    fn local_paths_stay_readable() {
        let t = Template::new("/backup/{project}/{repo}.git").unwrap();
        assert_eq!(
            t.render("o", "My Project", "../x/ü"),
            "/backup/My Project/%2E.%2Fx%2Fü.git"
        );
    }

    #[test]
    fn local_root_is_the_fixed_directory() {
        let root = |t: &str| Template::new(t).unwrap().local_root();
        assert_eq!(root("/backup/{project}/{repo}.git"), Some("/backup".into()));
        assert_eq!(root("/backup/x-{repo}.git"), Some("/backup".into()));
        assert_eq!(root("{repo}.git"), Some(".".into()));
        assert_eq!(root("https://h/{repo}"), None);
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::new("https://h/{project}.git").is_err());
        assert!(Template::new("https://h/{name}/{repo}").is_err());
        assert!(Template::new("https://h/{repo").is_err());
    }

    #[test]
    fn ssh_templates_are_remote_and_encoded_as_their_form_is_parsed() {
        let url = Template::new("ssh://git@h:2222/m/{project}/{repo}.git").unwrap();
        assert_eq!(
            url.render("o", "a b", "c#d%"),
            "ssh://git@h:2222/m/a%20b/c%23d%25.git"
        );
        assert_eq!(url.local_root(), None);
        assert!(!url.is_url(), "no forge to create repositories in");
        let scp = Template::new("git@h:m/{repo}.git").unwrap();
        assert_eq!(scp.render("o", "p", "Web App"), "git@h:m/Web App.git");
        assert_eq!(scp.render("o", "p", "../x"), "git@h:m/%2E.%2Fx.git");
        assert_eq!(scp.local_root(), None);
        assert!(!scp.is_url());
        let local = Template::new("/backup/{repo}.git").unwrap();
        assert_eq!(local.local_root(), Some("/backup".into()));
    }
}

//! Destination templates: `https://github.com/acme-mirror/{project}-{repo}.git`.
//!
//! Each placeholder becomes one path segment, percent-encoded, so names with
//! spaces, `#`, `?`, `/` or non-ASCII letters land in exactly one segment of
//! the URL and can never reach into another part of it. A template that is
//! a local path (backups) keeps names readable and only escapes what would
//! change the directory structure.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

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
    url: bool,
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
        Ok(Template {
            text: text.to_owned(),
            url: lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("file://"),
        })
    }

    /// Whether destinations are URLs (rather than local paths).
    pub(crate) fn is_url(&self) -> bool {
        self.url
    }

    /// For a local template, the directory every destination lies under:
    /// the part before the first placeholder, up to its last separator.
    pub(crate) fn local_root(&self) -> Option<std::path::PathBuf> {
        if self.url {
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
            if self.url {
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
}

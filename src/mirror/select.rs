//! Which refs a mirror touches.
//!
//! Patterns are globs on full ref names (`refs/heads/release/*`), where `*`
//! matches any run of characters including `/` and `?` one character, the
//! way `git push` refspec globs read to users. Host-internal namespaces
//! (pull requests, merge requests, pipelines...) are left out by default:
//! hosts hide or refuse them on push, and they are not part of a
//! repository's history. `refs/stash` is left out too: it is a work tree's
//! scratch space, and receive-pack refuses a one-level name under `refs/`
//! ("funny refname"), so every run would fail on it. Naming one in an
//! `--include` pattern brings it back.

/// Namespaces hosts keep for themselves, the stash, and git-relay's own
/// checkpoints of a batched push (`refs/git-relay/`, see `batch`), excluded
/// unless included by name.
pub(crate) const DEFAULT_EXCLUDES: &[&str] = &[
    "refs/stash",
    "refs/git-relay/*",
    "refs/pull/*",
    "refs/merge-requests/*",
    "refs/pipelines/*",
    "refs/environments/*",
    "refs/keep-around/*",
];

/// The include and exclude patterns of one run.
#[derive(Clone, Debug)]
pub(crate) struct RefSelection {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl RefSelection {
    /// Builds a selection; every pattern must name full refs (`refs/...`).
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<RefSelection, String> {
        for pattern in include.iter().chain(exclude) {
            if !pattern.starts_with("refs/") {
                return Err(format!(
                    "ref pattern `{pattern}` must match full ref names, for example `refs/heads/{pattern}` or `refs/tags/*`"
                ));
            }
        }
        let mut excludes: Vec<String> = exclude.to_vec();
        for default in DEFAULT_EXCLUDES {
            let namespace = default.trim_end_matches('*');
            if !include.iter().any(|p| p.starts_with(namespace)) {
                excludes.push((*default).to_owned());
            }
        }
        Ok(RefSelection {
            include: include.to_vec(),
            exclude: excludes,
        })
    }

    /// Whether the ref named `name` takes part in the mirror.
    pub(crate) fn selects(&self, name: &str) -> bool {
        name.starts_with("refs/")
            && !name.ends_with("^{}")
            && (self.include.is_empty() || self.include.iter().any(|p| glob_match(p, name)))
            && !self.exclude.iter().any(|p| glob_match(p, name))
    }
}

impl Default for RefSelection {
    fn default() -> Self {
        RefSelection::new(&[], &[]).expect("no patterns are valid")
    }
}

/// Matches `text` against a glob of `*` and `?`.
///
/// Iterative with one backtrack point, so hostile patterns cannot make it
/// exponential.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("refs/heads/*", "refs/heads/a/b"));
        assert!(glob_match("refs/*/main", "refs/heads/main"));
        assert!(glob_match("refs/tags/v?.*", "refs/tags/v1.2"));
        assert!(!glob_match("refs/heads/*", "refs/tags/a"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "a"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn host_namespaces_are_left_out_by_default() {
        let s = RefSelection::default();
        assert!(s.selects("refs/heads/main"));
        assert!(s.selects("refs/tags/v1"));
        assert!(!s.selects("refs/pull/1/head"));
        assert!(!s.selects("refs/merge-requests/1/head"));
        assert!(!s.selects("refs/stash"));
        assert!(s.selects("refs/stashes/x"));
        assert!(!s.selects("HEAD"));
        assert!(!s.selects("refs/tags/v1^{}"));
    }

    #[test]
    fn including_a_namespace_brings_it_back() {
        let s = RefSelection::new(&["refs/pull/*".into(), "refs/heads/*".into()], &[]).unwrap();
        assert!(s.selects("refs/pull/1/head"));
        assert!(s.selects("refs/heads/x"));
        assert!(!s.selects("refs/tags/v1"));
        assert!(!s.selects("refs/merge-requests/1/head"));
    }

    #[test]
    fn excludes_win() {
        let s = RefSelection::new(&[], &["refs/heads/tmp/*".into()]).unwrap();
        assert!(!s.selects("refs/heads/tmp/x"));
        assert!(s.selects("refs/heads/main"));
    }

    #[test]
    fn patterns_must_be_full_names() {
        assert!(RefSelection::new(&["main".into()], &[]).is_err());
    }
}

//! The Prometheus text file: what node-exporter's textfile collector
//! serves, in the text exposition format (version 0.0.4).
//!
//! Every series carries a `scope` label (the source scope of a sweep, the
//! source of a single mirror), and a `shard` label (`K/N`) when a sweep is
//! sharded: the collector refuses a series that two files both hold, and
//! several runs (a nightly sweep per organization, the shards of one) each
//! write a file of their own into the same directory.
//! Per repository: when its last run ended, how long it took, its result
//! (one series per possible result, 1 for the one it had, so an alert is
//! `git_relay_repository_result{result="failed"} == 1`), refs changed,
//! bytes relayed, LFS objects and their bytes. Per run: the same totals,
//! the count of repositories by result, and whether it succeeded. All are
//! gauges: each file holds one run, not a count since start.

use std::fmt::Write;

use super::{seconds, unix_seconds, Case, Run, RESULTS};

/// One metric family: name, help, and its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, String)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, labels: Vec<(&'static str, String)>, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }
}

/// The whole file.
pub(crate) fn render(run: &Run) -> String {
    let base = || {
        let mut labels = vec![("scope", run.scope.clone())];
        labels.extend(run.shard.clone().map(|s| ("shard", s)));
        labels
    };
    let repo = |c: &Case| {
        let mut labels = base();
        labels.push(("repository", c.name.clone()));
        labels
    };

    let mut last_run = Family::new(
        "git_relay_repository_last_run_timestamp_seconds",
        "Unix time the last mirror of the repository ended.",
    );
    let mut duration = Family::new(
        "git_relay_repository_duration_seconds",
        "Wall time of the last mirror of the repository.",
    );
    let mut result = Family::new(
        "git_relay_repository_result",
        "1 for the result the last mirror of the repository had, 0 for the others.",
    );
    let mut refs = Family::new(
        "git_relay_repository_refs_changed",
        "Refs the last mirror created, updated or deleted (in a dry run: would change).",
    );
    let mut bytes = Family::new(
        "git_relay_repository_bytes_moved",
        "Pack bytes the last mirror relayed from the source to the destination.",
    );
    let mut lfs = Family::new(
        "git_relay_repository_lfs_objects_moved",
        "Git LFS objects the last mirror moved.",
    );
    let mut lfs_bytes = Family::new(
        "git_relay_repository_lfs_bytes_moved",
        "Bytes of the Git LFS objects the last mirror moved.",
    );
    for c in &run.cases {
        last_run.sample(repo(c), unix_seconds(c.ended));
        duration.sample(repo(c), seconds(c.duration));
        for r in RESULTS {
            let mut labels = repo(c);
            labels.push(("result", (*r).to_owned()));
            result.sample(labels, u8::from(c.result == *r));
        }
        refs.sample(repo(c), c.refs_changed);
        bytes.sample(repo(c), c.bytes);
        lfs.sample(repo(c), c.lfs_objects);
        lfs_bytes.sample(repo(c), c.lfs_bytes);
    }

    let mut run_time = Family::new(
        "git_relay_run_last_timestamp_seconds",
        "Unix time the run ended.",
    );
    run_time.sample(base(), unix_seconds(run.started + run.duration));
    let mut run_duration = Family::new(
        "git_relay_run_duration_seconds",
        "Wall time of the run, discovery included.",
    );
    run_duration.sample(base(), seconds(run.duration));
    let mut success = Family::new(
        "git_relay_run_success",
        "1 when the run ended with exit code 0 (every repository matches or was skipped), else 0.",
    );
    success.sample(base(), u8::from(run.success));
    let mut repositories = Family::new(
        "git_relay_run_repositories",
        "Repositories of the run by result.",
    );
    for r in RESULTS {
        let n = run.cases.iter().filter(|c| c.result == *r).count();
        let mut labels = base();
        labels.push(("result", (*r).to_owned()));
        repositories.sample(labels, n);
    }
    let total = |f: fn(&Case) -> u64| run.cases.iter().map(f).sum::<u64>();
    let mut run_refs = Family::new(
        "git_relay_run_refs_changed",
        "Refs changed over every repository of the run.",
    );
    run_refs.sample(base(), total(|c| c.refs_changed));
    let mut run_bytes = Family::new(
        "git_relay_run_bytes_moved",
        "Pack bytes relayed over every repository of the run.",
    );
    run_bytes.sample(base(), total(|c| c.bytes));
    let mut run_lfs = Family::new(
        "git_relay_run_lfs_objects_moved",
        "Git LFS objects moved over every repository of the run.",
    );
    run_lfs.sample(base(), total(|c| c.lfs_objects));
    let mut run_lfs_bytes = Family::new(
        "git_relay_run_lfs_bytes_moved",
        "Bytes of the Git LFS objects moved over every repository of the run.",
    );
    run_lfs_bytes.sample(base(), total(|c| c.lfs_bytes));

    let mut out = String::new();
    for family in [
        last_run,
        duration,
        result,
        refs,
        bytes,
        lfs,
        lfs_bytes,
        run_time,
        run_duration,
        success,
        repositories,
        run_refs,
        run_bytes,
        run_lfs,
        run_lfs_bytes,
    ] {
        // A family with no sample (a sweep that listed nothing) is left
        // out whole: HELP and TYPE alone say nothing.
        if family.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for (labels, value) in &family.samples {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            sample_line(&mut out, family.name, &labels, value);
        }
    }
    out
}

/// One sample line of the text format: `name{k="v",...} value`, the
/// labels escaped (and redacted) by [`label_value`].
pub(crate) fn sample_line(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    let _ = write!(out, "{name}");
    if !labels.is_empty() {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
            .collect();
        let _ = write!(out, "{{{}}}", labels.join(","));
    }
    let _ = writeln!(out, " {value}");
}

/// Escapes a label value as the text format requires: backslash, double
/// quote and line feed; redacted first, as an escaped secret no longer
/// looks like itself.
fn label_value(v: &str) -> String {
    let v = crate::auth::redact(v);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn secrets_are_masked_before_they_are_escaped() {
        let secret = "metrics\\\"secret";
        crate::auth::register_secret(secret);
        let escaped = label_value(&format!("https://u:{secret}@host/x"));
        assert!(!escaped.contains("metrics"), "{escaped}");
    }
}

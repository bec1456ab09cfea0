//! The JUnit XML report: one `<testsuite>` per run, one `<testcase>` per
//! repository, so a CI's test view (Azure Pipelines' Tests tab through
//! `PublishTestResults` or the task's own `results.publish`, GitLab's test
//! report, Jenkins) lists each repository with its history across runs.
//!
//! A repository whose refs failed, were rejected or protected, or whose
//! LFS objects did not all arrive, is a `<failure>` whose `type` is the
//! worst of those and whose text lists each ref; one that could not be
//! mirrored at all is a `<failure type="failed">`; one skipped on purpose
//! (disabled, archived, a fork) is `<skipped>`. A sweep that stopped before
//! any repository (discovery failed) is one failed test case named after
//! that step, so the run still shows red rather than empty.
//!
//! Test names must be stable from run to run for the history to line up:
//! the name is the repository (`project/repo`) and the class name says
//! which command and, in a sweep, which owner or project it belongs to.

use std::fmt::Write;

use super::{seconds, Case, Run};

/// The test case of a sweep that stopped before its repositories.
pub(crate) const STOPPED_CASE: &str = "list repositories";

/// The whole document.
pub(crate) fn render(run: &Run) -> String {
    let stopped = run.stopped.as_ref().map(|reason| stopped_case(run, reason));
    let cases: Vec<&Case> = run.cases.iter().chain(stopped.as_ref()).collect();
    let failures = cases.iter().filter(|c| c.problem.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
    let mut suite = format!("git-relay {} {}", run.command, run.scope);
    if let Some(shard) = &run.shard {
        suite.push_str(&format!(" (shard {shard})"));
    }
    let counts = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\"",
        cases.len(),
        seconds(run.duration)
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"git-relay\" {counts}>\n  <testsuite name=\"{}\" {counts} timestamp=\"{}\">",
        attr(&suite),
        timestamp(run.started)
    );
    let _ = writeln!(xml, "    <properties>");
    let properties = [
        ("command", Some(run.command)),
        ("scope", Some(run.scope.as_str())),
        ("shard", run.shard.as_deref()),
        ("version", Some(env!("CARGO_PKG_VERSION"))),
    ];
    for (name, value) in properties.iter().filter_map(|(n, v)| Some((n, (*v)?))) {
        let _ = writeln!(
            xml,
            "      <property name=\"{name}\" value=\"{}\"/>",
            attr(value)
        );
    }
    let _ = writeln!(xml, "    </properties>");
    for case in cases {
        render_case(&mut xml, run, case);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn stopped_case(run: &Run, reason: &str) -> Case {
    Case {
        name: STOPPED_CASE.to_owned(),
        source: run.scope.clone(),
        destination: String::new(),
        result: "failed",
        problem: Some(super::Problem {
            kind: "failed",
            message: reason.to_owned(),
            details: Vec::new(),
        }),
        skipped: None,
        summary: reason.to_owned(),
        refs_changed: 0,
        bytes: 0,
        lfs_objects: 0,
        lfs_bytes: 0,
        duration: run.duration,
        ended: run.started + run.duration,
    }
}

fn render_case(xml: &mut String, run: &Run, case: &Case) {
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        attr(&class_name(run, case)),
        attr(&case.name),
        seconds(case.duration)
    );
    let out = format!(
        "{} -> {}\n{}: {}",
        case.source, case.destination, case.result, case.summary
    );
    xml.push_str(">\n");
    if let Some(problem) = &case.problem {
        let mut body = problem.message.clone();
        for line in &problem.details {
            body.push('\n');
            body.push_str(line);
        }
        let _ = writeln!(
            xml,
            "      <failure type=\"{}\" message=\"{}\">{}</failure>",
            problem.kind,
            attr(&problem.message),
            text(&body)
        );
    } else if let Some(reason) = &case.skipped {
        let _ = writeln!(xml, "      <skipped message=\"{}\"/>", attr(reason));
    }
    let _ = writeln!(xml, "      <system-out>{}</system-out>", text(&out));
    xml.push_str("    </testcase>\n");
}

/// `git-relay.mirror` for a single mirror; in a sweep,
/// `git-relay.mirror-all.OWNER_OR_PROJECT` (what precedes the last `/` of
/// the name), so that a test view groups repositories as the forge does.
fn class_name(run: &Run, case: &Case) -> String {
    let base = format!("git-relay.{}", run.command);
    if run.command != "mirror-all" {
        return base;
    }
    match case.name.rsplit_once('/') {
        Some((group, _)) if !group.is_empty() => format!("{base}.{group}"),
        _ => base,
    }
}

/// `yyyy-mm-ddThh:mm:ss` in UTC, the form of the JUnit schema's
/// `timestamp` (no zone).
fn timestamp(t: std::time::SystemTime) -> String {
    let mut stamp = crate::output::rfc3339(t);
    stamp.pop(); // the zone, `Z`, which the schema's type has no room for
    stamp
}

/// Escapes an attribute value; characters XML 1.0 cannot hold at all
/// become U+FFFD, so a server's control bytes cannot break the document.
/// Redacted first: an escaped secret no longer looks like itself.
fn attr(s: &str) -> String {
    let s = crate::auth::redact(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept as characters: a raw newline in an attribute reads
            // back as a space.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(xml_char(c)),
        }
    }
    out
}

/// Escapes element text, redacted first.
fn text(s: &str) -> String {
    let s = crate::auth::redact(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c => out.push(xml_char(c)),
        }
    }
    out
}

/// `c`, or U+FFFD when XML 1.0 does not allow it in a document.
fn xml_char(c: char) -> char {
    let allowed = matches!(c,
        '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}');
    if allowed {
        c
    } else {
        '\u{FFFD}'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_inside_its_element() {
        assert_eq!(
            attr("a\"<b>&'\n\u{1}"),
            "a&quot;&lt;b&gt;&amp;&apos;&#10;\u{FFFD}"
        );
        assert_eq!(
            text("]]></failure><x>\u{0}"),
            "]]&gt;&lt;/failure&gt;&lt;x&gt;\u{FFFD}"
        );
    }

    #[test]
    fn secrets_are_masked_before_they_are_escaped() {
        let secret = "junit&<\"secret\">";
        crate::auth::register_secret(secret);
        for escaped in [
            attr(&format!("x {secret} y")),
            text(&format!("x {secret} y")),
        ] {
            assert!(!escaped.contains("junit&amp;"), "{escaped}");
            assert!(!escaped.contains("secret"), "{escaped}");
        }
    }

    #[test]
    fn timestamps_have_the_schema_shape() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_524_400);
        assert_eq!(timestamp(t), "2025-11-30T17:40:00");
    }
}

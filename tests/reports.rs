//! `--junit` and `--metrics` on `mirror` and `mirror-all`, end to end.
//!
//! The sweeps run against the fake forge APIs (tests/support/forge.rs)
//! with `git http-backend` behind every clone URL, so every outcome in the
//! files (updated, in sync, rejected by a hook, protected, failed,
//! skipped) is a real one. The JUnit file is read back with an XML parser
//! and held to the essentials of the JUnit schema; the metrics file is
//! read line by line as the text exposition format defines it.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use support::forge::{seg, FakeForge, FakeRepo, Kind};
use support::*;

// ---------------------------------------------------------------------
// JUnit, read back

/// One `<testcase>`.
#[derive(Debug)]
struct TestCase {
    classname: String,
    name: String,
    time: f64,
    /// `(type, message, text)` of its `<failure>`.
    failure: Option<(String, String, String)>,
    /// The message of its `<skipped>`.
    skipped: Option<String>,
}

/// Parses a JUnit file and checks what the schema requires of it: a
/// `<testsuites>` root holding `<testsuite>`s of `<testcase>`s, each case
/// with a name, a class name and a time, at most one `<failure>`,
/// `<error>` or `<skipped>`, and counts on the suite and the root that
/// agree with the cases. Returns the cases.
fn junit(path: &Path) -> Vec<TestCase> {
    let text = std::fs::read_to_string(path).expect("read the JUnit file");
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites", "{text}");
    let count = |node: roxmltree::Node, attr: &str| -> usize {
        node.attribute(attr)
            .unwrap_or_else(|| panic!("{attr} missing on {}", node.tag_name().name()))
            .parse()
            .unwrap_or_else(|e| panic!("{attr}: {e}"))
    };
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert!(!suites.is_empty(), "{text}");
    let mut cases = Vec::new();
    let (mut all_failures, mut all_skipped) = (0, 0);
    for suite in suites {
        assert_eq!(suite.tag_name().name(), "testsuite");
        assert!(suite.attribute("name").is_some_and(|n| !n.is_empty()));
        let stamp = suite.attribute("timestamp").expect("timestamp");
        // xs:dateTime without a zone, as the schema's timestamp.
        assert!(
            stamp.len() == 19 && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[13] == b':',
            "{stamp}"
        );
        let (mut failures, mut skipped, mut tests) = (0, 0, 0);
        for child in suite.children().filter(|n| n.is_element()) {
            match child.tag_name().name() {
                "properties" => {
                    for p in child.children().filter(|n| n.is_element()) {
                        assert_eq!(p.tag_name().name(), "property");
                        assert!(p.attribute("name").is_some() && p.attribute("value").is_some());
                    }
                    continue;
                }
                "testcase" => {}
                other => panic!("unexpected <{other}> in a testsuite"),
            }
            tests += 1;
            let time: f64 = child.attribute("time").unwrap().parse().unwrap();
            assert!(time >= 0.0);
            let outcomes: Vec<_> = child
                .children()
                .filter(|n| {
                    n.is_element() && matches!(n.tag_name().name(), "failure" | "error" | "skipped")
                })
                .collect();
            assert!(outcomes.len() <= 1, "{text}");
            let failure = outcomes
                .iter()
                .find(|n| n.tag_name().name() == "failure")
                .map(|n| {
                    failures += 1;
                    (
                        n.attribute("type").unwrap_or_default().to_owned(),
                        n.attribute("message").unwrap_or_default().to_owned(),
                        n.text().unwrap_or_default().to_owned(),
                    )
                });
            let skip = outcomes
                .iter()
                .find(|n| n.tag_name().name() == "skipped")
                .map(|n| {
                    skipped += 1;
                    n.attribute("message").unwrap_or_default().to_owned()
                });
            cases.push(TestCase {
                classname: child.attribute("classname").expect("classname").to_owned(),
                name: child.attribute("name").expect("name").to_owned(),
                time,
                failure,
                skipped: skip,
            });
        }
        assert_eq!(count(suite, "tests"), tests, "{text}");
        assert_eq!(count(suite, "failures"), failures, "{text}");
        assert_eq!(count(suite, "skipped"), skipped, "{text}");
        assert_eq!(count(suite, "errors"), 0, "{text}");
        all_failures += failures;
        all_skipped += skipped;
    }
    assert_eq!(count(root, "tests"), cases.len());
    assert_eq!(count(root, "failures"), all_failures);
    assert_eq!(count(root, "skipped"), all_skipped);
    cases
}

fn case<'a>(cases: &'a [TestCase], name: &str) -> &'a TestCase {
    cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no test case {name}: {cases:#?}"))
}

// ---------------------------------------------------------------------
// Metrics, read back

/// Every sample: `(name, labels) -> value`.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{k="v",...}` with the format's escapes; returns the labels and
/// the rest of the line.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').expect("labels open");
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find('=').expect("label =");
        let key = &rest[..eq];
        assert!(
            valid_metric_name(key) && !key.contains(':') && !key.starts_with("__"),
            "label name {key}"
        );
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("label value quoted");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("label value closed");
            match c {
                '\\' => match chars.next().expect("escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                '"' => break i,
                '\n' => panic!("raw line feed in a label value"),
                c => value.push(c),
            }
        };
        assert!(
            labels.insert(key.to_owned(), value).is_none(),
            "label twice"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Reads a Prometheus text file line by line: HELP and TYPE once per
/// family, before its samples; valid names; labels escaped; each series
/// once; the file ending in a line feed.
fn metrics(path: &Path) -> Samples {
    let text = std::fs::read_to_string(path).expect("read the metrics file");
    assert!(text.ends_with('\n'), "{text}");
    let mut samples = Samples::new();
    let (mut helped, mut typed) = (HashSet::new(), HashSet::new());
    let mut done: HashSet<String> = HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_metric_name(name), "{line}");
            assert!(!help.is_empty());
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(typed.insert(name.to_owned()), "TYPE twice: {line}");
            if !current.is_empty() {
                done.insert(std::mem::take(&mut current));
            }
            current = name.to_owned();
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line}");
        let name_end = line.find(['{', ' ']).expect("sample");
        let name = &line[..name_end];
        assert!(valid_metric_name(name), "{line}");
        assert_eq!(name, current, "a sample outside its family: {line}");
        assert!(!done.contains(name), "family split: {line}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let value: f64 = rest
            .strip_prefix(' ')
            .expect("space before the value")
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            samples.insert((name.to_owned(), labels), value).is_none(),
            "series twice: {line}"
        );
        assert!(helped.contains(name) && typed.contains(name), "{line}");
    }
    samples
}

/// The value of `name` with exactly `labels`.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    *samples
        .get(&(name.to_owned(), key))
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {samples:#?}"))
}

/// The one `scope` label every series carries.
fn scope_of(samples: &Samples) -> String {
    let scopes: HashSet<&String> = samples.keys().map(|(_, l)| &l["scope"]).collect();
    assert_eq!(scopes.len(), 1, "{scopes:?}");
    scopes.into_iter().next().unwrap().clone()
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Only the files asked for are left: no temporary file beside them.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    assert_eq!(found, want);
}

// ---------------------------------------------------------------------
// Sweeps

fn source_repo(server: &GitServer, project: &str, name: &str, commits: usize) -> FakeRepo {
    let bare = server.create_bare(&format!("src/{project}/{name}.git"));
    if commits > 0 {
        let work = WorkRepo::new();
        for i in 0..commits {
            work.commit_file("f.txt", format!("{project} {name} {i}\n").as_bytes(), "c");
        }
        work.tag("v1");
        work.push_mirror_to(&bare);
    }
    let url = server.url(&format!("src/{}/{}.git", seg(project), seg(name)));
    FakeRepo {
        empty: commits == 0,
        ..FakeRepo::new(project, name, &url)
    }
}

fn dst_template(server: &GitServer) -> String {
    format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    )
}

#[test]
fn a_sweep_reports_each_repository_as_a_test_case_and_as_metrics() {
    let server = GitServer::start();
    let mut disabled = source_repo(&server, "Tools", "old", 1);
    disabled.disabled = true;
    let repos = vec![
        source_repo(&server, "Fabrikam Fiber", "Web App", 2),
        source_repo(&server, "Fabrikam Fiber", "API", 1),
        source_repo(&server, "Ünïcode Prøject", "Résumé Builder", 1),
        source_repo(&server, "Tools", "empty-one", 0),
        disabled,
        source_repo(&server, "Zeta", "zeta", 3),
    ];
    let mut builder = FakeForge::builder(Kind::AzureDevOps, "fabrikam", server.password());
    for r in &repos {
        builder = builder.repo(r.clone());
    }
    let fake = builder.start();
    // Every destination exists but API's; Zeta's refuses its tag, with
    // a message full of markup.
    for r in repos.iter().filter(|r| !r.disabled && r.name != "API") {
        server.create_bare(&format!("dst/{}/{}.git", r.project, r.name));
    }
    install_hook(
        &server.repo_path("dst/Zeta/zeta.git"),
        "update",
        "case \"$1\" in refs/tags/*) echo 'tags are <frozen> & \"locked\"' >&2; exit 1;; esac\nexit 0\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let (xml, prom) = (
        dir.path().join("junit.xml"),
        dir.path().join("git-relay.prom"),
    );
    // A file from an earlier run is replaced whole.
    std::fs::write(&prom, "stale\n").unwrap();
    let scope = fake.scope_url();
    let template = dst_template(&server);
    let before = now_secs();
    let run = run(
        &[
            "mirror-all",
            "--source-kind",
            "azure-devops",
            &scope,
            &template,
            "-j",
            "3",
            "--junit",
            xml.to_str().unwrap(),
            "--metrics",
            prom.to_str().unwrap(),
        ],
        &credentials(&server),
    );
    run.assert_code(1);
    assert_only(dir.path(), &["junit.xml", "git-relay.prom"]);

    let cases = junit(&xml);
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Fabrikam Fiber/API",
            "Fabrikam Fiber/Web App",
            "Tools/empty-one",
            "Tools/old",
            "Zeta/zeta",
            "Ünïcode Prøject/Résumé Builder"
        ]
    );
    let api = case(&cases, "Fabrikam Fiber/API");
    let (kind, message, _) = api.failure.as_ref().expect("API failed");
    assert_eq!(kind, "failed");
    assert!(message.contains("404"), "{message}");
    assert_eq!(api.classname, "git-relay.mirror-all.Fabrikam Fiber");
    let zeta = case(&cases, "Zeta/zeta");
    let (kind, message, text) = zeta.failure.as_ref().expect("Zeta's tag was rejected");
    assert_eq!(kind, "rejected");
    assert!(message.contains("1 ref(s) rejected"), "{message}");
    assert!(
        text.contains("refs/tags/v1 rejected") && text.contains("tags are <frozen> & "),
        "{text}"
    );
    assert_eq!(
        case(&cases, "Tools/old").skipped.as_deref(),
        Some("disabled")
    );
    for ok in [
        "Fabrikam Fiber/Web App",
        "Tools/empty-one",
        "Ünïcode Prøject/Résumé Builder",
    ] {
        let c = case(&cases, ok);
        assert!(c.failure.is_none() && c.skipped.is_none(), "{c:?}");
        assert!(c.time < 600.0);
    }

    let samples = metrics(&prom);
    let scope_label = scope_of(&samples);
    assert!(scope_label.contains("/fabrikam"), "{scope_label}");
    let scope_label = scope_label.as_str();
    fn labels<'a>(scope: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![("scope", scope), ("repository", name)]
    }
    let repo = |name: &'static str| labels(scope_label, name);
    let result = |name: &'static str, r: &'static str| {
        let mut labels = repo(name);
        labels.push(("result", r));
        value(&samples, "git_relay_repository_result", &labels)
    };
    assert_eq!(result("Fabrikam Fiber/API", "failed"), 1.0);
    assert_eq!(result("Fabrikam Fiber/API", "updated"), 0.0);
    assert_eq!(result("Fabrikam Fiber/Web App", "updated"), 1.0);
    assert_eq!(result("Tools/empty-one", "in-sync"), 1.0);
    assert_eq!(result("Tools/old", "skipped"), 1.0);
    assert_eq!(result("Zeta/zeta", "differs"), 1.0);
    // main and v1 into Web App; only main into Zeta.
    let refs =
        |name: &'static str| value(&samples, "git_relay_repository_refs_changed", &repo(name));
    assert_eq!(refs("Fabrikam Fiber/Web App"), 2.0);
    assert_eq!(refs("Zeta/zeta"), 1.0);
    assert_eq!(refs("Fabrikam Fiber/API"), 0.0);
    let bytes =
        |name: &'static str| value(&samples, "git_relay_repository_bytes_moved", &repo(name));
    assert!(bytes("Fabrikam Fiber/Web App") > 0.0);
    assert_eq!(bytes("Tools/empty-one"), 0.0);
    let ended = value(
        &samples,
        "git_relay_repository_last_run_timestamp_seconds",
        &repo("Zeta/zeta"),
    );
    assert!(
        ended >= before.floor() && ended <= now_secs() + 1.0,
        "{ended}"
    );
    assert!(
        value(
            &samples,
            "git_relay_repository_duration_seconds",
            &repo("Zeta/zeta")
        ) > 0.0
    );

    // Totals agree with the repositories.
    let run_labels = [("scope", scope_label)];
    let by_result = |r: &str| {
        value(
            &samples,
            "git_relay_run_repositories",
            &[("scope", scope_label), ("result", r)],
        )
    };
    assert_eq!(
        (
            by_result("updated"),
            by_result("in-sync"),
            by_result("differs"),
            by_result("failed"),
            by_result("skipped")
        ),
        (2.0, 1.0, 1.0, 1.0, 1.0)
    );
    let sum = |family: &str| -> f64 {
        samples
            .iter()
            .filter(|((n, _), _)| n == family)
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        value(&samples, "git_relay_run_refs_changed", &run_labels),
        sum("git_relay_repository_refs_changed")
    );
    assert_eq!(
        value(&samples, "git_relay_run_bytes_moved", &run_labels),
        sum("git_relay_repository_bytes_moved")
    );
    assert_eq!(value(&samples, "git_relay_run_success", &run_labels), 0.0);
    assert!(!std::fs::read_to_string(&prom)
        .unwrap()
        .contains(server.password()));
}

#[test]
fn a_sweep_that_cannot_list_its_repositories_still_writes_both_files() {
    let server = GitServer::start();
    // The forge takes another token than the one given.
    let fake = FakeForge::builder(Kind::AzureDevOps, "fabrikam", "not-the-token")
        .repo(source_repo(&server, "P", "r", 1))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let (xml, prom) = (dir.path().join("junit.xml"), dir.path().join("m.prom"));
    let run = run(
        &[
            "mirror-all",
            "--source-kind",
            "azure-devops",
            &fake.scope_url(),
            &dst_template(&server),
            "--junit",
            xml.to_str().unwrap(),
            "--metrics",
            prom.to_str().unwrap(),
        ],
        &credentials(&server),
    );
    run.assert_code(1);
    let cases = junit(&xml);
    assert_eq!(cases.len(), 1, "{cases:#?}");
    let (kind, message, _) = cases[0].failure.as_ref().expect("a failure");
    assert_eq!(
        (cases[0].name.as_str(), kind.as_str()),
        ("list repositories", "failed")
    );
    assert!(message.contains("401"), "{message}\n{}", run.stderr);
    let samples = metrics(&prom);
    let scope = scope_of(&samples);
    assert_eq!(
        value(&samples, "git_relay_run_success", &[("scope", &scope)]),
        0.0
    );
    assert!(samples
        .keys()
        .all(|(name, _)| !name.starts_with("git_relay_repository_")));
}

// ---------------------------------------------------------------------
// Single mirrors

fn mirror(server: &GitServer, reports: &Path, src: &str) -> Run {
    let (xml, prom) = (reports.join("junit.xml"), reports.join("m.prom"));
    run(
        &[
            "mirror",
            &server.url(src),
            &server.url("dst.git"),
            "--junit",
            xml.to_str().unwrap(),
            "--metrics",
            prom.to_str().unwrap(),
        ],
        &credentials(server),
    )
}

#[test]
fn a_single_mirror_is_one_test_case_and_protected_refs_fail_it() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    let dir = tempfile::tempdir().unwrap();
    mirror(&server, dir.path(), "src.git").assert_code(0);
    let cases = junit(&dir.path().join("junit.xml"));
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].name, server.url("src.git"));
    assert_eq!(cases[0].classname, "git-relay.mirror");
    assert!(cases[0].failure.is_none() && cases[0].skipped.is_none());
    let samples = metrics(&dir.path().join("m.prom"));
    let scope = scope_of(&samples);
    let repo = [("scope", scope.as_str()), ("repository", scope.as_str())];
    // main, feature, v1, v1-annotated.
    assert_eq!(
        value(&samples, "git_relay_repository_refs_changed", &repo),
        4.0
    );
    assert!(value(&samples, "git_relay_repository_bytes_moved", &repo) > 0.0);
    assert_eq!(
        value(&samples, "git_relay_run_success", &[("scope", &scope)]),
        1.0
    );

    // `status` takes the same flags and says it was a status.
    let xml = dir.path().join("status.xml");
    run(
        &[
            "status",
            &server.url("src.git"),
            &server.url("dst.git"),
            "--junit",
            xml.to_str().unwrap(),
        ],
        &credentials(&server),
    )
    .assert_code(0);
    let cases = junit(&xml);
    assert_eq!(cases[0].classname, "git-relay.status");
    assert!(cases[0].failure.is_none());
    std::fs::remove_file(&xml).unwrap();

    // Someone pushes straight to the mirror: its main is now protected.
    let intruder = WorkRepo::new();
    let dst = server.repo_path("dst.git");
    git(
        intruder.path(),
        &["fetch", "-q", &dst.to_string_lossy(), "main"],
    );
    git(intruder.path(), &["reset", "-q", "--hard", "FETCH_HEAD"]);
    intruder.commit("pushed to the mirror by mistake");
    git(
        intruder.path(),
        &["push", "-q", &dst.to_string_lossy(), "main:main"],
    );
    mirror(&server, dir.path(), "src.git").assert_code(3);
    assert_only(dir.path(), &["junit.xml", "m.prom"]);
    let cases = junit(&dir.path().join("junit.xml"));
    let (kind, message, text) = cases[0].failure.as_ref().expect("protected");
    assert_eq!(kind, "protected");
    assert!(message.contains("1 ref(s) protected"), "{message}");
    assert!(text.contains("refs/heads/main protected"), "{text}");
    let samples = metrics(&dir.path().join("m.prom"));
    let mut labels = repo.to_vec();
    labels.push(("result", "differs"));
    assert_eq!(value(&samples, "git_relay_repository_result", &labels), 1.0);
    assert_eq!(
        value(&samples, "git_relay_repository_refs_changed", &repo),
        0.0
    );
    assert_eq!(
        value(&samples, "git_relay_run_success", &[("scope", &scope)]),
        0.0
    );
}

#[test]
fn a_mirror_that_fails_still_writes_both_files() {
    let server = GitServer::start();
    server.create_bare("dst.git");
    let dir = tempfile::tempdir().unwrap();
    let out = mirror(&server, dir.path(), "missing.git");
    out.assert_code(1);
    let cases = junit(&dir.path().join("junit.xml"));
    assert_eq!(cases.len(), 1);
    let (kind, message, _) = cases[0].failure.as_ref().expect("failed");
    assert_eq!(kind, "failed");
    assert!(message.contains("not found"), "{message}");
    let samples = metrics(&dir.path().join("m.prom"));
    let scope = scope_of(&samples);
    let labels = [
        ("scope", scope.as_str()),
        ("repository", scope.as_str()),
        ("result", "failed"),
    ];
    assert_eq!(value(&samples, "git_relay_repository_result", &labels), 1.0);
    assert_eq!(
        value(&samples, "git_relay_run_success", &[("scope", &scope)]),
        0.0
    );
}

#[test]
fn an_unwritable_report_fails_a_run_that_succeeded() {
    let server = GitServer::start();
    populated_source(&server);
    server.create_bare("dst.git");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no such dir").join("m.prom");
    let out = run(
        &[
            "mirror",
            &server.url("src.git"),
            &server.url("dst.git"),
            "--metrics",
            missing.to_str().unwrap(),
        ],
        &credentials(&server),
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains("could not write the metrics"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------
// The Azure Pipelines task, organization mode

#[test]
fn the_task_publishes_the_junit_report_of_an_organization_sweep() {
    use support::task::{Agent, CONNECTION_ID};

    const TOKEN: &str = "p@ss;w0rd]%/x+y:z";
    let server = GitServer::builder().credentials("alice", TOKEN).start();
    let mut builder = FakeForge::builder(Kind::AzureDevOps, "fabrikam", TOKEN);
    for (project, name) in [("Fabrikam Fiber", "Web App"), ("Tools", "api")] {
        builder = builder.repo(source_repo(&server, project, name, 1));
    }
    let fake = builder.start();
    // Tools/api has no destination: it fails; Web App is mirrored.
    server.create_bare("dst/Fabrikam Fiber/Web App.git");
    let template = dst_template(&server);
    let mut agent = Agent::new(
        "https://dev.azure.com/fabrikam/proj/_git/pipelines",
        &[
            ("mode", "organization"),
            ("sourceScopeUri", &fake.scope_url()),
            ("sourceKind", "azure-devops"),
            ("sourceUsername", "alice"),
            ("sourceGitRepositoryPersonalAccessToken", TOKEN),
            ("destinationTemplate", &template),
            ("destinationAuthentication", "serviceConnection"),
            ("destinationServiceConnection", CONNECTION_ID),
        ],
    );
    agent
        .system_access_token("unused-system-token")
        .generic_connection(CONNECTION_ID, "https://example.invalid/", "alice", TOKEN);
    let mut cmd = relay();
    cmd.arg("task");
    let run = agent.run(cmd);
    assert_eq!(run.code, 0, "{}", run.log());
    let published = run.named("results.publish");
    assert_eq!(published.len(), 1, "{}", run.log());
    let p = &published[0].properties;
    assert_eq!(p["type"], "JUnit");
    assert_eq!(p["runTitle"], "git-relay");
    assert_eq!(p["mergeResults"], "false");
    let file = Path::new(&p["resultFiles"]);
    assert!(
        file.starts_with(&agent.env["AGENT_TEMPDIRECTORY"]),
        "{}",
        file.display()
    );
    // Published before the task completes, so the agent still reads it.
    let names: Vec<String> = run.commands().into_iter().map(|c| c.name).collect();
    let at = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(at("results.publish") < at("task.complete"), "{names:?}");

    let cases = junit(file);
    assert_eq!(cases.len(), 2, "{cases:#?}");
    assert!(case(&cases, "Fabrikam Fiber/Web App").failure.is_none());
    let (kind, _, _) = case(&cases, "Tools/api").failure.as_ref().expect("failed");
    assert_eq!(kind, "failed");
    let text = std::fs::read_to_string(file).unwrap();
    assert!(!text.contains(TOKEN), "{text}");
}

#[test]
fn the_shards_of_a_sweep_write_files_that_one_collector_can_read_together() {
    let server = GitServer::start();
    let mut builder = FakeForge::builder(Kind::AzureDevOps, "fabrikam", server.password());
    let mut names = Vec::new();
    for i in 0..6 {
        let name = format!("repo-{i}");
        builder = builder.repo(source_repo(&server, "P", &name, 1));
        server.create_bare(&format!("dst/P/{name}.git"));
        names.push(format!("P/{name}"));
    }
    let fake = builder.start();
    let dir = tempfile::tempdir().unwrap();
    let mut all = Samples::new();
    for shard in ["1/2", "2/2"] {
        let prom = dir.path().join(format!("shard-{}.prom", &shard[..1]));
        run(
            &[
                "mirror-all",
                "--source-kind",
                "azure-devops",
                &fake.scope_url(),
                &dst_template(&server),
                "--shard",
                shard,
                "--metrics",
                prom.to_str().unwrap(),
            ],
            &credentials(&server),
        )
        .assert_code(0);
        for (key, value) in metrics(&prom) {
            assert_eq!(
                key.1.get("shard").map(String::as_str),
                Some(shard),
                "{key:?}"
            );
            // As the textfile collector requires: no series in two files.
            assert!(all.insert(key.clone(), value).is_none(), "{key:?} twice");
        }
    }
    let mut mirrored: Vec<String> = all
        .iter()
        .filter(|((name, labels), v)| {
            name == "git_relay_repository_result" && labels["result"] == "updated" && **v == 1.0
        })
        .map(|((_, labels), _)| labels["repository"].clone())
        .collect();
    mirrored.sort();
    assert_eq!(mirrored, names);
}

// ---------------------------------------------------------------------
// Git LFS

#[test]
fn lfs_objects_moved_are_counted_and_a_missing_one_fails_the_test_case() {
    let source = GitServer::builder()
        .lfs(true)
        .config("uploadpack.allowFilter", "true")
        .start();
    let destination = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&source, "src.git", &[2_000, 3_000, 4_000]);
    // The second object is lost at the source: the other two move.
    source.lfs().delete_object("src.git", &files[1].oid);
    destination.create_bare("dst.git");
    let dir = tempfile::tempdir().unwrap();
    let (xml, prom) = (dir.path().join("junit.xml"), dir.path().join("m.prom"));
    let (src, dst) = (source.url("src.git"), destination.url("dst.git"));
    run(
        &[
            "mirror",
            &src,
            &dst,
            "--junit",
            xml.to_str().unwrap(),
            "--metrics",
            prom.to_str().unwrap(),
        ],
        &[
            ("GIT_RELAY_SOURCE_TOKEN", source.password()),
            ("GIT_RELAY_SOURCE_USERNAME", source.username()),
            ("GIT_RELAY_DEST_TOKEN", destination.password()),
            ("GIT_RELAY_DEST_USERNAME", destination.username()),
        ],
    )
    .assert_code(3);
    let samples = metrics(&prom);
    let scope = scope_of(&samples);
    let repo = [("scope", scope.as_str()), ("repository", scope.as_str())];
    assert_eq!(
        value(&samples, "git_relay_repository_lfs_objects_moved", &repo),
        2.0
    );
    assert_eq!(
        value(&samples, "git_relay_repository_lfs_bytes_moved", &repo),
        (files[0].size + files[2].size) as f64
    );
    assert_eq!(
        value(
            &samples,
            "git_relay_run_lfs_objects_moved",
            &[("scope", scope.as_str())]
        ),
        2.0
    );
    let cases = junit(&xml);
    let (kind, message, text) = cases[0].failure.as_ref().expect("an LFS failure");
    assert_eq!(kind, "lfs");
    assert!(
        message.contains("1 LFS object(s) not mirrored"),
        "{message}"
    );
    assert!(
        text.contains(&files[1].oid[..12]) && text.contains("missing"),
        "{text}"
    );
}

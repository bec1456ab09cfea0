//! The Azure Pipelines task: its manifests, and task mode run the way the
//! agent runs it, against git's own server.
//!
//! Task mode is tested twice. `git-relay task` is started directly with an
//! environment built like the agent's (always, so `cargo test` covers it);
//! and the packaged extension `dist/*.vsix` is unpacked and its Node wrapper
//! started with `node`, which is what an agent does. The packaged tests need
//! `cargo xtask dist` first, so they are ignored by default and `.ci/run`
//! runs them after building the extension:
//! `cargo test --test task -- --ignored packaged`.
//!
//! Organization mode lists repositories through the fake forge APIs of
//! tests/support/forge.rs (real HTTP, paging and token checks), whose clone
//! URLs lead to the same git server, so its mirrors are real too.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use git_relay::pipelines::inputs::{
    AUTHENTICATION_CHOICES, FAIL_ON_CHOICES, FORGE_KINDS, INPUTS, LFS_CHOICES, MODES,
};
use git_relay::pipelines::OUTPUT_VARIABLES;
use serde_json::Value;
use support::forge::{seg, FakeForge, FakeRepo, Kind as ForgeKind};
use support::task::*;
use support::*;

/// A password with every character that logging commands, URLs and Basic
/// auth treat specially, so escaping and redaction are both exercised.
const SECRET: &str = "p@ss;w0rd]%/x+y:z";

fn server() -> GitServer {
    GitServer::builder().credentials("alice", SECRET).start()
}

/// A source repository with two branches and a tag; returns its refs.
fn seed(server: &GitServer) -> Vec<(String, String)> {
    let work = WorkRepo::new();
    work.commit("first");
    work.tag("v1");
    work.branch("topic");
    work.commit("second");
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    server.create_bare("dst.git");
    refs_of(&src)
}

fn task_command() -> Command {
    let mut cmd = relay();
    cmd.arg("task");
    cmd
}

// ---------------------------------------------------------------- manifests

#[test]
fn task_json_follows_the_schema() {
    // Microsoft's published task schema (draft-04), kept beside the tests
    // so they need nothing outside the repository.
    let schema_path = root().join("tests/support/task/tasks.schema.json");
    let schema = json(&schema_path);
    let task = task_json();
    let errors = schema::validate(&schema, &task);
    assert!(
        errors.is_empty(),
        "task.json violates the schema:\n{}",
        errors.join("\n")
    );

    // The validator is not vacuous: a broken task.json fails it.
    let mut broken = task.clone();
    broken["name"] = Value::from("Git Relay");
    broken["inputs"][0]["type"] = Value::from("dropdown");
    broken["surprise"] = Value::from(1);
    assert_eq!(
        schema::validate(&schema, &broken).len(),
        3,
        "{:?}",
        schema::validate(&schema, &broken)
    );
}

#[test]
fn task_json_is_consistent() {
    let task = task_json();
    let friendly = task["friendlyName"].as_str().unwrap();
    assert!(
        friendly.chars().count() <= 40,
        "friendlyName is {} characters",
        friendly.chars().count()
    );
    assert_eq!(task["category"], "Utility");
    let groups: BTreeSet<&str> = task["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    let inputs = task["inputs"].as_array().unwrap();
    let names: BTreeSet<&str> = inputs.iter().map(|i| i["name"].as_str().unwrap()).collect();
    for input in inputs {
        let name = input["name"].as_str().unwrap();
        assert!(
            input["helpMarkDown"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "{name} has no help"
        );
        if let Some(group) = input["groupName"].as_str() {
            assert!(groups.contains(group), "{name} is in unknown group {group}");
        }
        if let Some(rule) = input["visibleRule"].as_str() {
            for clause in rule.split("||").flat_map(|c| c.split("&&")) {
                let (left, right) = clause
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{name}: rule {rule}"));
                let other = left.trim().trim_end_matches('!').trim();
                assert!(
                    names.contains(other),
                    "{name}'s visibleRule names unknown input {other}"
                );
                let value = right.trim();
                if let Some(options) = inputs
                    .iter()
                    .find(|i| i["name"] == other)
                    .and_then(|i| i["options"].as_object())
                {
                    assert!(
                        options.contains_key(value),
                        "{name}'s visibleRule uses unknown value {value}"
                    );
                }
            }
        }
        if input["type"] == "pickList" {
            let options = input["options"].as_object().unwrap();
            assert!(
                options.contains_key(input["defaultValue"].as_str().unwrap()),
                "{name}'s default is no option"
            );
            let keys: Vec<&str> = options.keys().map(String::as_str).collect();
            let mut expected = match name {
                "mode" => MODES.to_vec(),
                "sourceKind" | "destinationKind" => FORGE_KINDS.to_vec(),
                "lfs" => LFS_CHOICES.to_vec(),
                "failOn" => FAIL_ON_CHOICES.to_vec(),
                _ => AUTHENTICATION_CHOICES.to_vec(),
            };
            expected.sort();
            let mut keys_sorted = keys.clone();
            keys_sorted.sort();
            assert_eq!(
                keys_sorted, expected,
                "{name}'s options and the binary's choices differ"
            );
        }
    }
    for handler in ["Node20_1", "Node24"] {
        let target = task["execution"][handler]["target"]
            .as_str()
            .unwrap_or_else(|| panic!("no {handler} handler"));
        assert!(
            root().join("task").join(target).is_file(),
            "{handler} runs task/{target}, which is missing"
        );
    }
}

#[test]
fn inputs_and_outputs_match_the_binary() {
    let task = task_json();
    let declared: BTreeSet<&str> = task["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let read: BTreeSet<&str> = INPUTS.iter().copied().collect();
    assert_eq!(INPUTS.len(), read.len(), "INPUTS lists a name twice");
    let unread: Vec<_> = declared.difference(&read).collect();
    let undeclared: Vec<_> = read.difference(&declared).collect();
    assert!(
        unread.is_empty(),
        "task.json declares inputs the binary never reads: {unread:?}"
    );
    assert!(
        undeclared.is_empty(),
        "the binary reads inputs task.json does not declare: {undeclared:?}"
    );

    let outputs: BTreeSet<&str> = task["outputVariables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        outputs,
        OUTPUT_VARIABLES.iter().copied().collect::<BTreeSet<_>>()
    );

    let old_task = [
        "sourceGitRepositoryUri",
        "sourceGitRepositoryPersonalAccessToken",
        "sourceVerifySSLCertificate",
        "destinationGitRepositoryUri",
        "destinationGitRepositoryPersonalAccessToken",
        "destinationVerifySSLCertificate",
        "sourceGitRepositoryCloneDirectoryName",
    ];
    for name in old_task {
        assert!(
            declared.contains(name),
            "the old task's input {name} is gone: switching would break pipelines"
        );
    }
    let source = task["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "sourceGitRepositoryUri")
        .unwrap();
    assert_eq!(source["defaultValue"], "$(Build.Repository.Uri)");
}

#[test]
fn versions_follow_cargo_toml() {
    let version = env!("CARGO_PKG_VERSION");
    let task = task_json();
    let v = &task["version"];
    assert_eq!(
        format!("{}.{}.{}", v["Major"], v["Minor"], v["Patch"]),
        version,
        "run `cargo xtask sync-version`"
    );
    let extension = json(&root().join("vss-extension.json"));
    assert_eq!(
        extension["version"], version,
        "run `cargo xtask sync-version`"
    );
    let contribution = &extension["contributions"][0];
    assert_eq!(contribution["type"], "ms.vss-distributed-task.task");
    assert_eq!(contribution["targets"][0], "ms.vss-distributed-task.tasks");
    let folder = contribution["properties"]["name"].as_str().unwrap();
    assert!(extension["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == folder));
    assert!(root().join(folder).is_dir());
    // The folder holds no task.json of its own: `cargo xtask dist` copies the
    // root one in while staging, so there is one file to edit.
    assert!(
        !root().join(folder).join("task.json").exists(),
        "task/task.json would shadow the root task.json"
    );
}

// ---------------------------------------------------------------- task mode

/// Checks a successful mirror: refs equal, outputs set, summary uploaded.
fn assert_mirrored(run: &TaskRun, server: &GitServer, expected: &[(String, String)]) {
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Succeeded", "{message}\n{}", run.log());
    assert_eq!(&refs_of(&server.repo_path("dst.git")), expected);
    assert_eq!(
        run.output("refsChanged").as_deref(),
        Some(expected.len().to_string().as_str()),
        "{}",
        run.log()
    );
    assert_eq!(run.output("inSync").as_deref(), Some("true"));
    let report_path = PathBuf::from(run.output("reportPath").expect("reportPath output"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["in_sync"], true);
    assert_eq!(report["refs"].as_array().unwrap().len(), expected.len());
    let markdown = std::fs::read_to_string(run.summary_file()).expect("summary file");
    assert!(markdown.contains("| `refs/heads/main` |"), "{markdown}");
    for text in [&markdown, &std::fs::read_to_string(&report_path).unwrap()] {
        for form in secret_forms("alice", SECRET) {
            assert!(!text.contains(&form), "secret in a report file");
        }
    }
    assert_progress_and_groups(run);
}

/// Checks how a run shows itself in the agent's log: `task.setprogress`
/// never goes back and ends at 100, and at least two `##[group]`s are
/// opened, each one closed by an `##[endgroup]`.
fn assert_progress_and_groups(run: &TaskRun) {
    let progress: Vec<u32> = run
        .named("task.setprogress")
        .iter()
        .map(|c| c.properties["value"].parse().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]) && progress.last() == Some(&100),
        "{progress:?}\n{}",
        run.log()
    );
    let lines = run.lines();
    let open = lines.iter().filter(|l| l.starts_with("##[group]")).count();
    assert!(
        open >= 2 && open == lines.iter().filter(|l| **l == "##[endgroup]").count(),
        "{}",
        run.log()
    );
}

#[test]
fn task_mirrors_with_old_task_inputs_and_a_service_connection() {
    let server = server();
    let expected = seed(&server);
    // Old-task inputs for the source (the token field holds `user:password`,
    // as users of that task type it); a generic service connection for the
    // destination.
    let mut agent = Agent::new(
        &server.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("sourceGitRepositoryCloneDirectoryName", "mirror-dir"),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationAuthentication", "serviceConnection"),
            ("destinationServiceConnection", CONNECTION_ID),
        ],
    );
    agent
        .system_access_token("unused-system-token")
        .generic_connection(CONNECTION_ID, "https://example.invalid/", "alice", SECRET);
    let run = agent.run(task_command());
    assert_mirrored(&run, &server, &expected);
    run.assert_secret_kept("alice", SECRET);
    assert!(
        run.stderr
            .contains("sourceGitRepositoryCloneDirectoryName is ignored"),
        "{}",
        run.log()
    );

    // A second run has nothing to do.
    let again = agent.run(task_command());
    assert_eq!(again.result().0, "Succeeded");
    assert_eq!(again.output("refsChanged").as_deref(), Some("0"));
    assert_eq!(again.output("inSync").as_deref(), Some("true"));
}

#[test]
fn task_pushes_with_the_system_access_token() {
    let server = server();
    let expected = seed(&server);
    let mut agent = Agent::new(
        &server.url("src.git"),
        &[
            ("sourceUsername", "alice"),
            ("sourceGitRepositoryPersonalAccessToken", SECRET),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationAuthentication", "systemAccessToken"),
        ],
    );
    // The test server takes its password as a bearer token.
    agent.system_access_token(SECRET);
    let run = agent.run(task_command());
    assert_mirrored(&run, &server, &expected);
    run.assert_secret_kept("alice", SECRET);
    let pushes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_rpc() && r.service() == Some("git-receive-pack"))
        .collect();
    assert!(
        !pushes.is_empty()
            && pushes.iter().all(|r| r
                .authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer ")))
    );
}

#[test]
fn task_fails_with_a_logissue_naming_the_cause() {
    let server = server();
    seed(&server);
    let agent = Agent::new(
        &server.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationUsername", "alice"),
            (
                "destinationGitRepositoryPersonalAccessToken",
                "wrong;token]%",
            ),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(
        run.code,
        0,
        "the agent contract: exit 0, result by task.complete\n{}",
        run.log()
    );
    let (result, message) = run.result();
    assert_eq!(result, "Failed");
    assert!(
        message.contains("destination") && message.contains("401"),
        "{message}"
    );
    let issues = run.named("task.logissue");
    assert!(
        issues.iter().any(|i| i.properties["type"] == "error"
            && i.message.contains("destination")
            && i.message.contains("401")),
        "{}",
        run.log()
    );
    assert_eq!(run.output("inSync").as_deref(), Some("false"));
    run.assert_secret_kept("alice", SECRET);
    run.assert_secret_kept("alice", "wrong;token]%");
    assert_eq!(refs_of(&server.repo_path("dst.git")), vec![]);
}

#[test]
fn task_reports_invalid_inputs_by_name() {
    let agent = Agent::new(
        "https://dev.azure.com/org/proj/_git/src",
        &[
            ("destinationGitRepositoryUri", ""),
            ("prune", "yes"),
            ("includeRefs", "main"),
            ("sourceAuthentication", "systemAccessToken"),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    assert_eq!(run.result().0, "Failed");
    let issues: Vec<String> = run
        .named("task.logissue")
        .into_iter()
        .map(|i| i.message)
        .collect();
    for input in [
        "destinationGitRepositoryUri",
        "prune",
        "includeRefs",
        "sourceAuthentication",
    ] {
        assert!(
            issues.iter().any(|m| m.contains(input)),
            "no issue names {input}: {issues:?}"
        );
    }
}

#[test]
fn task_protects_destination_only_commits_and_ends_with_issues() {
    let server = server();
    let work = WorkRepo::new();
    work.commit("shared");
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    work.commit("only on the destination");
    let dst = server.create_bare("dst.git");
    work.push_mirror_to(&dst);
    let before = refs_of(&dst);
    let agent = Agent::new(
        &server.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            (
                "destinationGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "SucceededWithIssues", "{}", run.log());
    assert!(run
        .named("task.logissue")
        .iter()
        .any(|i| i.message.contains("refs/heads/main") && i.message.contains("protected")));
    assert_eq!(refs_of(&dst), before);
    assert_eq!(run.output("inSync").as_deref(), Some("false"));
}

#[test]
fn task_dry_run_changes_nothing() {
    let server = server();
    seed(&server);
    let agent = Agent::new(
        &server.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            (
                "destinationGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("dryRun", "true"),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "Succeeded", "{}", run.log());
    assert_eq!(run.output("refsChanged").as_deref(), Some("0"));
    assert_eq!(run.output("inSync").as_deref(), Some("false"));
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn task_takes_the_push_limit_inputs() {
    let server = server();
    let expected = seed(&server);
    let credentials = format!("alice:{SECRET}");
    let agent = Agent::new(
        &server.url("src.git"),
        &[
            ("sourceGitRepositoryPersonalAccessToken", &credentials),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationGitRepositoryPersonalAccessToken", &credentials),
            ("destMaxPushBytes", "1GiB"),
            ("maxRefUpdates", "2"),
        ],
    );
    let run = agent.run(task_command());
    assert_mirrored(&run, &server, &expected);
}

#[test]
fn task_reports_bad_push_limit_inputs_by_name() {
    let server = server();
    seed(&server);
    let agent = Agent::new(
        &server.url("src.git"),
        &[
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destMaxPushBytes", "2 TB"),
            ("maxRefUpdates", "0"),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    assert_eq!(run.result().0, "Failed", "{}", run.log());
    let issues: Vec<String> = run
        .named("task.logissue")
        .into_iter()
        .map(|i| i.message)
        .collect();
    for (input, why) in [
        ("destMaxPushBytes", "unknown unit `TB`"),
        ("maxRefUpdates", "at least 1"),
    ] {
        assert!(
            issues.iter().any(|m| m.contains(input) && m.contains(why)),
            "no issue names {input}: {issues:?}"
        );
    }
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

// ---------------------------------------------------------- organization

/// An Azure DevOps organization on a fake API (token [`SECRET`], two
/// projects listed one per page) with three repositories on `server`, one
/// with spaces and non-ASCII letters in its names. Returns the fake and the
/// `(project, repo)` of each.
fn organization(server: &GitServer) -> (FakeForge, Vec<(String, String)>) {
    let names = [
        ("Fabrikam Fiber", "Web App"),
        ("Fabrikam Fiber", "api"),
        ("Prøject Ω", "tools"),
    ];
    let mut builder = FakeForge::builder(ForgeKind::AzureDevOps, "fabrikam", SECRET).page_size(1);
    for (i, (project, name)) in names.iter().enumerate() {
        let bare = server.create_bare(&format!("src/{project}/{name}.git"));
        let work = WorkRepo::new();
        work.commit_file("f.txt", format!("{project}/{name}\n").as_bytes(), "first");
        work.tag(&format!("v{i}"));
        work.push_mirror_to(&bare);
        let url = server.url(&format!("src/{}/{}.git", seg(project), seg(name)));
        builder = builder.repo(FakeRepo::new(project, name, &url));
    }
    let names = names
        .iter()
        .map(|(p, n)| ((*p).to_owned(), (*n).to_owned()))
        .collect();
    (builder.start(), names)
}

/// The inputs of an organization sweep from `fake` into `dst/` on `server`,
/// the source signing in with a token, the destination with a service
/// connection.
fn organization_agent(server: &GitServer, fake: &FakeForge, token: &str) -> Agent {
    let template = format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    );
    let mut agent = Agent::new(
        "https://dev.azure.com/fabrikam/proj/_git/pipelines",
        &[
            ("mode", "organization"),
            ("sourceScopeUri", &fake.scope_url()),
            ("sourceKind", "azure-devops"),
            ("sourceUsername", "alice"),
            ("sourceGitRepositoryPersonalAccessToken", token),
            ("destinationTemplate", &template),
            ("destinationAuthentication", "serviceConnection"),
            ("destinationServiceConnection", CONNECTION_ID),
            ("jobs", "2"),
        ],
    );
    agent
        .system_access_token("unused-system-token")
        .generic_connection(CONNECTION_ID, "https://example.invalid/", "alice", SECRET);
    agent
}

/// The markdown file the run uploaded.
fn uploaded_summary(run: &TaskRun) -> String {
    std::fs::read_to_string(run.summary_file()).expect("summary file")
}

/// The repository rows of an organization summary: names are code spans.
fn repository_rows(markdown: &str) -> Vec<&str> {
    markdown.lines().filter(|l| l.starts_with("| `")).collect()
}

#[test]
fn organization_mode_mirrors_every_repository() {
    let server = server();
    let (fake, repos) = organization(&server);
    for (project, name) in &repos {
        server.create_bare(&format!("dst/{project}/{name}.git"));
    }
    let agent = organization_agent(&server, &fake, SECRET);
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Succeeded", "{message}\n{}", run.log());
    for (project, name) in &repos {
        let src = refs_of(&server.repo_path(&format!("src/{project}/{name}.git")));
        assert_eq!(src.len(), 2, "main and a tag");
        assert_eq!(
            refs_of(&server.repo_path(&format!("dst/{project}/{name}.git"))),
            src,
            "{project}/{name}\n{}",
            run.log()
        );
    }
    // Two refs created in each of three repositories.
    assert_eq!(run.output("refsChanged").as_deref(), Some("6"));
    assert_eq!(run.output("inSync").as_deref(), Some("true"));
    run.assert_secret_kept("alice", SECRET);
    assert!(run.named("task.logissue").is_empty(), "{}", run.log());

    let report_path = PathBuf::from(run.output("reportPath").expect("reportPath output"));
    assert!(
        report_path.starts_with(&agent.env["AGENT_TEMPDIRECTORY"]),
        "{} is not under AGENT_TEMPDIRECTORY {}",
        report_path.display(),
        agent.env["AGENT_TEMPDIRECTORY"]
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["repositories"].as_array().unwrap().len(), 3);
    assert_eq!(report["totals"]["updated"], 3, "{report}");

    let markdown = uploaded_summary(&run);
    let rows = repository_rows(&markdown);
    assert_eq!(rows.len(), 3, "{markdown}");
    for (project, name) in &repos {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{project}/{name}` |")))
            .unwrap_or_else(|| panic!("no row for {project}/{name}: {markdown}"));
        assert!(row.contains("| 2 |") && row.ends_with("updated |"), "{row}");
    }
    for form in secret_forms("alice", SECRET) {
        assert!(!markdown.contains(&form), "secret in the summary");
    }
    assert_progress_and_groups(&run);
    // The fake saw the listing, page by page, with the source's token.
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/_apis/projects") && r.query.contains("continuationToken")));

    // The next night: nothing to do.
    let again = agent.run(task_command());
    assert_eq!(again.result().0, "Succeeded", "{}", again.log());
    assert_eq!(again.output("refsChanged").as_deref(), Some("0"));
    assert_eq!(again.output("inSync").as_deref(), Some("true"));
    assert_eq!(repository_rows(&uploaded_summary(&again)).len(), 3);
}

#[test]
fn organization_mode_reports_each_failed_repository() {
    let server = server();
    let (fake, repos) = organization(&server);
    // One destination is missing: that repository fails, the others are
    // mirrored all the same.
    for (project, name) in repos.iter().filter(|(_, n)| n != "api") {
        server.create_bare(&format!("dst/{project}/{name}.git"));
    }
    let agent = organization_agent(&server, &fake, SECRET);
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("1 of 3 repositories could not be mirrored"),
        "{message}"
    );
    let errors: Vec<String> = run
        .named("task.logissue")
        .into_iter()
        .filter(|i| i.properties["type"] == "error")
        .map(|i| i.message)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("Fabrikam Fiber/api failed: ") && errors[0].contains("404"),
        "{errors:?}"
    );
    for (project, name) in repos.iter().filter(|(_, n)| n != "api") {
        assert_eq!(
            refs_of(&server.repo_path(&format!("dst/{project}/{name}.git"))),
            refs_of(&server.repo_path(&format!("src/{project}/{name}.git")))
        );
    }
    assert_eq!(run.output("refsChanged").as_deref(), Some("4"));
    assert_eq!(run.output("inSync").as_deref(), Some("false"));
    let markdown = uploaded_summary(&run);
    let rows = repository_rows(&markdown);
    assert_eq!(rows.len(), 3, "{markdown}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("| `Fabrikam Fiber/api` |") && r.contains("failed")),
        "{markdown}"
    );
    run.assert_secret_kept("alice", SECRET);
}

#[test]
fn organization_mode_fails_when_discovery_is_refused() {
    let server = server();
    let (fake, repos) = organization(&server);
    for (project, name) in &repos {
        server.create_bare(&format!("dst/{project}/{name}.git"));
    }
    let wrong = "wrong;token]%";
    let agent = organization_agent(&server, &fake, wrong);
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Failed");
    assert!(
        message.contains("Azure DevOps API") && message.contains("401"),
        "{message}"
    );
    assert!(
        run.named("task.logissue")
            .iter()
            .any(|i| i.properties["type"] == "error"
                && i.message.contains("Azure DevOps API")
                && i.message.contains("401")),
        "{}",
        run.log()
    );
    assert_eq!(run.output("inSync").as_deref(), Some("false"));
    assert_eq!(run.output("refsChanged").as_deref(), Some("0"));
    assert!(uploaded_summary(&run).contains("Failed"));
    run.assert_secret_kept("alice", wrong);
    run.assert_secret_kept("alice", SECRET);
    for (project, name) in &repos {
        assert!(refs_of(&server.repo_path(&format!("dst/{project}/{name}.git"))).is_empty());
    }
}

#[test]
fn organization_mode_names_its_invalid_inputs() {
    let agent = Agent::new(
        "https://dev.azure.com/org/proj/_git/src",
        &[
            ("mode", "organization"),
            ("sourceKind", "sourceforge"),
            ("filter", "ok\n(unclosed"),
            ("jobs", "0"),
            ("shard", "3/2"),
            ("createMissing", "true"),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "Failed", "{}", run.log());
    let issues: Vec<String> = run
        .named("task.logissue")
        .into_iter()
        .map(|i| i.message)
        .collect();
    for input in [
        "sourceScopeUri",
        "destinationTemplate",
        "destinationScopeUri",
        "sourceKind",
        "filter",
        "jobs",
        "shard",
    ] {
        assert!(
            issues
                .iter()
                .any(|m| m.starts_with(&format!("input {input}:"))),
            "no issue names {input}: {issues:?}"
        );
    }
    // The repository inputs mean nothing here and are not asked for.
    assert!(!issues
        .iter()
        .any(|m| m.contains("destinationGitRepositoryUri")));

    let unknown = Agent::new(
        "https://dev.azure.com/org/proj/_git/src",
        &[
            ("mode", "everything"),
            ("destinationGitRepositoryUri", "/tmp/x.git"),
        ],
    )
    .run(task_command());
    assert_eq!(unknown.result().0, "Failed");
    assert!(unknown
        .named("task.logissue")
        .iter()
        .any(|i| i.message.starts_with("input mode:")));
}

// ------------------------------------------- Entra ID and service connections

const TENANT: &str = "5b7c1f0e-2d3a-4b4c-9d5e-6f708192a3b4";
const CLIENT_ID: &str = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f";
const AZURE_CONNECTION: &str = "e1d2c3b4-a5f6-4789-8abc-def012345678";
/// System.AccessToken, which the OIDC endpoint checks.
const JOB_TOKEN: &str = "job-token;w]th%odd/chars";

/// A git server taking the access tokens `identity` issues (and alice's
/// password), with the repositories of [`seed`].
fn entra_server(identity: &oidc::FakeIdentity) -> (GitServer, Vec<(String, String)>) {
    let server = GitServer::builder()
        .credentials("alice", SECRET)
        .bearer_tokens(identity.bearer_tokens())
        .start();
    let expected = seed(&server);
    (server, expected)
}

/// The agent of a pipeline that may use the Azure Resource Manager
/// connection `identity` federates with, both sides signing in through it.
fn entra_agent(server: &GitServer, identity: &oidc::FakeIdentity, client_id: &str) -> Agent {
    let mut agent = Agent::new(
        &server.url("src.git"),
        &[
            ("sourceAuthentication", "entra"),
            ("sourceAzureSubscription", AZURE_CONNECTION),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationAuthentication", "entra"),
            ("destinationAzureSubscription", AZURE_CONNECTION),
        ],
    );
    agent.system_access_token(JOB_TOKEN).azure_rm_connection(
        AZURE_CONNECTION,
        TENANT,
        client_id,
        &identity.authority(),
        &identity.oidc_request_uri(),
    );
    agent
}

/// Checks that every token of the sign-in stayed secret.
fn assert_entra_tokens_kept(run: &TaskRun, identity: &oidc::FakeIdentity) {
    run.assert_token_kept(JOB_TOKEN);
    for token in identity.access_tokens() {
        run.assert_token_kept(&token);
    }
    for token in identity.oidc_tokens() {
        run.assert_token_kept(&token);
    }
}

#[test]
fn task_signs_in_with_entra_workload_identity_and_refreshes_its_tokens() {
    // Tokens that live a minute: under git-relay's two-minute margin, so
    // each request of the run needs a new one, as a run longer than a
    // token's life does when it runs out.
    let identity = oidc::FakeIdentity::builder(TENANT, CLIENT_ID, AZURE_CONNECTION, JOB_TOKEN)
        .life(60)
        .start();
    let (server, expected) = entra_server(&identity);
    let agent = entra_agent(&server, &identity, CLIENT_ID);
    let run = agent.run(task_command());
    assert_mirrored(&run, &server, &expected);
    assert!(
        run.stderr.contains(&format!(
            "Entra ID: application {CLIENT_ID}, tenant {TENANT}, through service connection {AZURE_CONNECTION}"
        )),
        "{}",
        run.log()
    );

    // Every git request carried an access token Entra issued, and several
    // were used: the run replaced them as they neared their expiry.
    let issued = identity.access_tokens();
    let requests = server.requests();
    let mut used = BTreeSet::new();
    for r in &requests {
        let token = (r.authorization.as_deref())
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_else(|| panic!("{} {} without a bearer token", r.method, r.path));
        assert!(issued.iter().any(|t| t == token), "{token} was not issued");
        used.insert(token.to_owned());
    }
    notice(&format!(
        "Entra refresh: {} git requests signed with {} distinct access tokens, {} issued",
        requests.len(),
        used.len(),
        issued.len()
    ));
    assert!(
        used.len() >= 4,
        "{} tokens for {} requests",
        used.len(),
        requests.len()
    );
    assert!(requests
        .iter()
        .any(|r| r.is_rpc() && r.service() == Some("git-receive-pack")));

    // One fresh OIDC token per access token, each asked for with the job's
    // token for this connection, each taken once.
    let seen = identity.requests();
    let oidc_requests: Vec<_> = seen
        .iter()
        .filter(|r| r.path.ends_with("/oidctoken"))
        .collect();
    let token_requests: Vec<_> = seen.iter().filter(|r| r.path.ends_with("/token")).collect();
    assert_eq!(oidc_requests.len(), issued.len(), "{seen:#?}");
    assert_eq!(token_requests.len(), issued.len(), "{seen:#?}");
    assert!(seen.iter().all(|r| r.status == 200), "{seen:#?}");
    for r in &oidc_requests {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {JOB_TOKEN}").as_str())
        );
        assert!(
            r.query.contains("api-version=7.1")
                && r.query
                    .contains(&format!("serviceConnectionId={AZURE_CONNECTION}")),
            "{}",
            r.query
        );
    }
    assert_entra_tokens_kept(&run, &identity);
}

#[test]
fn task_entra_failures_name_the_side_the_identity_and_what_to_do() {
    let identity =
        oidc::FakeIdentity::builder(TENANT, CLIENT_ID, AZURE_CONNECTION, JOB_TOKEN).start();
    let (server, _) = entra_server(&identity);

    // The connection names an application the tenant does not know.
    let wrong_client = "11111111-2222-4333-8444-555555555555";
    let run = entra_agent(&server, &identity, wrong_client).run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("source")
            && message.contains(wrong_client)
            && message.contains(TENANT)
            && message.contains("AADSTS700016"),
        "{message}"
    );
    assert!(
        run.stderr.contains("federated credential"),
        "no hint\n{}",
        run.log()
    );
    assert_entra_tokens_kept(&run, &identity);
    assert!(identity.access_tokens().is_empty());
    assert!(
        server.requests().is_empty(),
        "no git request without a token"
    );

    // The connection names another tenant.
    let mut agent = entra_agent(&server, &identity, CLIENT_ID);
    let other_tenant = "99999999-8888-4777-8666-555555555555";
    agent.azure_rm_connection(
        AZURE_CONNECTION,
        other_tenant,
        CLIENT_ID,
        &identity.authority(),
        &identity.oidc_request_uri(),
    );
    let run = agent.run(task_command());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains(other_tenant) && message.contains("AADSTS90002"),
        "{message}"
    );
    assert!(run.stderr.contains("check the tenant id"), "{}", run.log());

    // This pipeline may not use the connection (the OIDC endpoint does not
    // know it for this pipeline).
    let mut agent = entra_agent(&server, &identity, CLIENT_ID);
    let unknown = "0000aaaa-1111-4222-8333-444455556666";
    for side in ["sourceAzureSubscription", "destinationAzureSubscription"] {
        agent.env.insert(
            format!("INPUT_{}", side.to_ascii_uppercase()),
            unknown.into(),
        );
    }
    agent.azure_rm_connection(
        unknown,
        TENANT,
        CLIENT_ID,
        &identity.authority(),
        &identity.oidc_request_uri(),
    );
    let run = agent.run(task_command());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("OIDC") && message.contains("400") && message.contains(unknown),
        "{message}"
    );
    assert!(
        run.stderr.contains("Pipeline permissions") || run.stderr.contains("allowed to use it"),
        "{}",
        run.log()
    );

    // The job token is refused by the pipeline's OIDC endpoint.
    let mut agent = entra_agent(&server, &identity, CLIENT_ID);
    agent.system_access_token("job-token-of-another-pipeline");
    let run = agent.run(task_command());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("source") && message.contains("OIDC") && message.contains("401"),
        "{message}"
    );
    assert!(run.stderr.contains("System.AccessToken"), "{}", run.log());
    run.assert_token_kept("job-token-of-another-pipeline");

    // A connection with a secret rather than federation is named as such.
    let mut agent = entra_agent(&server, &identity, CLIENT_ID);
    agent.connection(
        AZURE_CONNECTION,
        "https://management.azure.com/",
        "ServicePrincipal",
        &[
            ("serviceprincipalid", CLIENT_ID),
            ("tenantid", TENANT),
            ("serviceprincipalkey", "spn-secret-key"),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "Failed");
    assert!(
        run.named("task.logissue")
            .iter()
            .any(|i| i.message.starts_with("input sourceAzureSubscription:")
                && i.message.contains("workload identity federation")),
        "{}",
        run.log()
    );
}

#[test]
fn organization_mode_lists_and_mirrors_with_an_entra_token() {
    // The fake forge checks one token: Entra hands out the same one each
    // time.
    let access = "eyJ0eXAiOiJKV1Qi.entra-org-access-token";
    let identity = oidc::FakeIdentity::builder(TENANT, CLIENT_ID, AZURE_CONNECTION, JOB_TOKEN)
        .fixed_access_token(access)
        .start();
    let server = GitServer::builder()
        .credentials("alice", SECRET)
        .bearer_tokens(identity.bearer_tokens())
        .start();
    let (fake, repos) = {
        let names = [("Fabrikam Fiber", "Web App"), ("Tools", "cli")];
        let mut builder = FakeForge::builder(ForgeKind::AzureDevOps, "fabrikam", access);
        for (project, name) in names {
            let bare = server.create_bare(&format!("src/{project}/{name}.git"));
            let work = WorkRepo::new();
            work.commit("first");
            work.push_mirror_to(&bare);
            server.create_bare(&format!("dst/{project}/{name}.git"));
            let url = server.url(&format!("src/{}/{}.git", seg(project), seg(name)));
            builder = builder.repo(FakeRepo::new(project, name, &url));
        }
        (builder.start(), names)
    };
    let mut agent = organization_agent(&server, &fake, "unused");
    agent
        .env
        .insert("INPUT_SOURCEAUTHENTICATION".into(), "entra".into());
    agent.env.insert(
        "INPUT_SOURCEAZURESUBSCRIPTION".into(),
        AZURE_CONNECTION.into(),
    );
    agent.system_access_token(JOB_TOKEN).azure_rm_connection(
        AZURE_CONNECTION,
        TENANT,
        CLIENT_ID,
        &identity.authority(),
        &identity.oidc_request_uri(),
    );
    let run = agent.run(task_command());
    let (result, message) = run.result();
    assert_eq!(result, "Succeeded", "{message}\n{}", run.log());
    for (project, name) in repos {
        assert_eq!(
            refs_of(&server.repo_path(&format!("dst/{project}/{name}.git"))),
            refs_of(&server.repo_path(&format!("src/{project}/{name}.git"))),
        );
    }
    // The API saw the Entra token as a bearer token, and so did git's
    // source requests.
    let api = fake.requests();
    assert!(!api.is_empty());
    assert!(api
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {access}"))));
    assert!(server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/src/"))
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {access}"))));
    // One token for the API and every repository: fetched once.
    assert_eq!(
        identity.access_tokens().len(),
        1,
        "{:#?}",
        identity.requests()
    );
    assert_entra_tokens_kept(&run, &identity);
    run.assert_secret_kept("alice", SECRET);
}

#[test]
fn task_signs_in_with_github_app_and_azure_repos_connections() {
    // The Azure Pipelines GitHub App's connection carries its installation
    // token as `IdToken`, sent as a GitHub token is.
    let server = GitServer::builder()
        .credentials("x-access-token", SECRET)
        .start();
    let expected = seed(&server);
    let mut agent = Agent::new(
        &server.url("src.git"),
        &[
            ("sourceAuthentication", "gitHubConnection"),
            ("sourceGitHubConnection", CONNECTION_ID),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationAuthentication", "azureReposConnection"),
            ("destinationAzureReposConnection", AZURE_CONNECTION),
        ],
    );
    agent
        .system_access_token("unused-system-token")
        .connection(
            CONNECTION_ID,
            "https://github.com",
            "InstallationToken",
            &[("IdToken", SECRET)],
        )
        // An Azure Repos/TFS connection with a username and password.
        .connection(
            AZURE_CONNECTION,
            "https://dev.azure.com/other-org",
            "UsernamePassword",
            &[("username", "x-access-token"), ("password", SECRET)],
        );
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Succeeded", "{message}\n{}", run.log());
    assert_eq!(&refs_of(&server.repo_path("dst.git")), &expected);
    run.assert_secret_kept("x-access-token", SECRET);
    assert!(
        run.stderr
            .contains("GitHub service connection (Azure Pipelines app installation token)"),
        "{}",
        run.log()
    );
    assert!(
        run.stderr
            .contains("Azure Repos service connection (UsernamePassword)"),
        "{}",
        run.log()
    );
}

// ------------------------------------------------------------- GitHub App

const APP_ID: &str = "12345";

/// A test-only key of tests/fixtures/github-app.
fn app_key(name: &str) -> String {
    std::fs::read_to_string(app_key_path(name)).unwrap()
}

fn app_key_path(name: &str) -> PathBuf {
    root().join("tests/fixtures/github-app").join(name)
}

/// Azure Repos to GitHub: an Azure-Repos-like source (`src.git`, which
/// takes System.AccessToken) and a GitHub-like destination
/// (`mirror-org/widgets.git`) whose git server takes only the installation
/// tokens of the GitHub fake, where the app is installed on `mirror-org`.
struct AppToGitHub {
    source: GitServer,
    destination: GitServer,
    github: FakeForge,
    expected: Vec<(String, String)>,
}

impl AppToGitHub {
    fn start() -> AppToGitHub {
        AppToGitHub::with_token_life(Duration::from_secs(3600))
    }

    /// The same, GitHub's installation tokens living `life`.
    fn with_token_life(life: Duration) -> AppToGitHub {
        let source = server();
        let expected = seed(&source);
        let destination = GitServer::start();
        destination.create_bare("mirror-org/widgets.git");
        let github = FakeForge::builder(ForgeKind::GitHub, "mirror-org", "no-personal-token")
            .github_app(APP_ID, &app_key("app-key.pem"), &[("mirror-org", 8)], life)
            .start();
        destination.accept_tokens(github.token_check());
        AppToGitHub {
            source,
            destination,
            github,
            expected,
        }
    }

    /// The pipeline: System.AccessToken on the source, the app (with this
    /// key input) on the destination.
    fn agent(&self, key: &str) -> Agent {
        let mut agent = Agent::new(
            &self.source.url("src.git"),
            &[
                ("sourceAuthentication", "systemAccessToken"),
                (
                    "destinationGitRepositoryUri",
                    &self.destination.url("mirror-org/widgets.git"),
                ),
                ("destinationAuthentication", "gitHubApp"),
                ("destinationGitHubAppId", APP_ID),
                ("destinationGitHubAppPrivateKey", key),
                ("destinationGitHubAppApiUrl", &self.github.github_api()),
            ],
        );
        // The source's server takes its password as a bearer token.
        agent.system_access_token(SECRET);
        agent
    }

    /// The JWTs the fake was shown.
    fn jwts(&self) -> Vec<String> {
        (self.github.requests().iter())
            .filter_map(|r| r.authorization.as_deref()?.strip_prefix("Bearer "))
            .map(str::to_owned)
            .collect()
    }

    /// Checks that the run mirrored with installation tokens only, and
    /// that no key line, JWT or token reached the log.
    fn assert_mirrored_as_the_app(&self, run: &TaskRun) {
        let (result, message) = run.result();
        assert_eq!(result, "Succeeded", "{message}\n{}", run.log());
        assert_eq!(
            refs_of(&self.destination.repo_path("mirror-org/widgets.git")),
            self.expected
        );
        assert!(
            run.stderr.contains(&format!(
                "GitHub App {APP_ID} (installation tokens from {})",
                self.github.github_api()
            )),
            "{}",
            run.log()
        );
        // One installation token, found through the repository's owner,
        // signed every destination request as GitHub documents it.
        let tokens = self.github.issued_tokens();
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        let paths: Vec<String> = (self.github.requests().iter())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            paths.contains(&"GET /api/v3/repos/mirror-org/widgets/installation".to_owned())
                && paths.contains(&"POST /api/v3/app/installations/8/access_tokens".to_owned()),
            "{paths:?}"
        );
        let basic = format!("Basic {}", base64(&format!("x-access-token:{}", tokens[0])));
        let requests = self.destination.requests();
        assert!(requests
            .iter()
            .any(|r| r.is_rpc() && r.service() == Some("git-receive-pack")));
        for r in &requests {
            assert_eq!(r.authorization.as_deref(), Some(basic.as_str()), "{r:?}");
            assert_ne!(r.status, 401, "{r:?}");
        }
        self.assert_secrets_kept(run, "app-key.pem");
        run.assert_token_kept(SECRET);
    }

    /// No line of the key `key`, JWT or installation token in the log;
    /// each told to the agent.
    fn assert_secrets_kept(&self, run: &TaskRun, key: &str) {
        run.assert_key_kept(&app_key(key));
        for token in self.jwts().iter().chain(&self.github.issued_tokens()) {
            run.assert_token_kept(token);
        }
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn task_mirrors_azure_repos_to_github_as_a_github_app() {
    let pipeline = AppToGitHub::start();
    let run = pipeline.agent(&app_key("app-key.pem")).run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    pipeline.assert_mirrored_as_the_app(&run);
}

#[test]
fn task_github_app_tokens_are_renewed_as_they_expire() {
    // Tokens that live a minute: under the five minutes a shared token
    // must still have, so each request needs a new one, as a run longer
    // than an hour does when its token runs out.
    let pipeline = AppToGitHub::with_token_life(Duration::from_secs(60));
    let run = pipeline.agent(&app_key("app-key.pem")).run(task_command());
    assert_eq!(run.result().0, "Succeeded", "{}", run.log());
    assert_eq!(
        refs_of(&pipeline.destination.repo_path("mirror-org/widgets.git")),
        pipeline.expected
    );
    let issued = pipeline.github.issued_tokens();
    let requests = pipeline.destination.requests();
    let mut used = BTreeSet::new();
    for r in &requests {
        let token = issued
            .iter()
            .find(|t| {
                r.authorization.as_deref()
                    == Some(&format!("Basic {}", base64(&format!("x-access-token:{t}"))))
            })
            .unwrap_or_else(|| panic!("{r:?} carried no token GitHub issued"));
        used.insert(token.clone());
    }
    notice(&format!(
        "GitHub App renewal: {} git requests signed with {} distinct installation tokens, {} issued",
        requests.len(),
        used.len(),
        issued.len()
    ));
    // Each request found its predecessor's token too close to expiry.
    assert!(requests.len() >= 2, "{requests:?}");
    assert_eq!(used.len(), requests.len(), "{requests:?}");
    // The installation was looked up once; each token was minted.
    let lookups = (pipeline.github.requests().iter())
        .filter(|r| r.path.ends_with("/installation"))
        .count();
    assert_eq!(lookups, 1);
    pipeline.assert_secrets_kept(&run, "app-key.pem");
}

#[test]
fn task_github_app_with_a_wrong_key_fails_naming_the_side_and_the_app() {
    let pipeline = AppToGitHub::start();
    // A key the app does not have; given as a secret variable without its
    // line breaks.
    let flattened = app_key("other-key.pem")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let run = pipeline.agent(&flattened).run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains(&format!("destination's GitHub App {APP_ID}"))
            && message.contains("HTTP 401"),
        "{message}"
    );
    // The hint names the task's inputs, not the command line's flags.
    assert!(
        run.stderr.contains("hint: check the app id (the input `destinationGitHubAppId`) and that the input `destinationGitHubAppPrivateKey` is one of the app's current private keys")
            && !run.stderr.contains("--dest-app"),
        "no hint in the task's words\n{}",
        run.log()
    );
    assert!(pipeline.github.issued_tokens().is_empty());
    assert!(!pipeline.jwts().is_empty(), "a JWT was tried");
    assert!(
        pipeline.destination.requests().is_empty(),
        "no git request without a token"
    );
    assert_eq!(
        refs_of(&pipeline.destination.repo_path("mirror-org/widgets.git")),
        Vec::new()
    );
    pipeline.assert_secrets_kept(&run, "other-key.pem");

    // A key that is no RSA key is an error of its input, before any
    // request.
    let before = pipeline.github.requests().len();
    let run = pipeline
        .agent("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAbcdefgh\n-----END EC PRIVATE KEY-----")
        .run(task_command());
    assert_eq!(run.result().0, "Failed", "{}", run.log());
    assert!(
        run.named("task.logissue").iter().any(|i| i
            .message
            .starts_with("input destinationGitHubAppPrivateKey:")),
        "{}",
        run.log()
    );
    run.assert_key_kept("MHcCAQEEIAbcdefgh");
    assert_eq!(pipeline.github.requests().len(), before);
}

#[test]
fn organization_mode_creates_github_repositories_as_a_github_app() {
    let server = server();
    let (source, repos) = organization(&server);
    let (root, port) = (server.root().to_owned(), server.port());
    let github = FakeForge::builder(ForgeKind::GitHub, "mirror", "no-personal-token")
        .github_app(
            APP_ID,
            &app_key("app-key.pem"),
            &[("mirror", 9)],
            Duration::from_secs(3600),
        )
        .creator(Box::new(move |_, name| {
            let path = root.join("dst/mirror").join(format!("{name}.git"));
            git(&root, &["init", "--bare", "-q", path.to_str().unwrap()]);
            format!("http://127.0.0.1:{port}/dst/mirror/{name}.git")
        }))
        .start();
    server.accept_tokens(github.token_check());
    let key = app_key_path("app-key.pem");
    let mut agent = organization_agent(&server, &source, SECRET);
    for (input, value) in [
        (
            "destinationTemplate",
            format!("http://127.0.0.1:{port}/dst/mirror/{{project}}-{{repo}}.git"),
        ),
        ("destinationAuthentication", "gitHubApp".into()),
        ("destinationGitHubAppId", APP_ID.into()),
        // The path of a secure file.
        (
            "destinationGitHubAppPrivateKey",
            key.to_string_lossy().into(),
        ),
        ("destinationGitHubAppApiUrl", github.github_api()),
        ("createMissing", "true".into()),
        ("destinationScopeUri", github.scope_url()),
        ("destinationKind", "github".into()),
    ] {
        agent
            .env
            .insert(format!("INPUT_{}", input.to_ascii_uppercase()), value);
    }
    let run = agent.run(task_command());
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Succeeded", "{message}\n{}", run.log());
    let tokens = github.issued_tokens();
    assert_eq!(
        tokens.len(),
        1,
        "one token for the API and every push: {tokens:?}"
    );
    let creates: Vec<_> = (github.requests().into_iter())
        .filter(|r| r.method == "POST" && r.path == "/api/v3/orgs/mirror/repos")
        .collect();
    assert_eq!(creates.len(), repos.len(), "{}", run.log());
    assert!(creates
        .iter()
        .all(|r| r.status == 201 && r.authorization == Some(format!("Bearer {}", tokens[0]))));
    let basic = format!("Basic {}", base64(&format!("x-access-token:{}", tokens[0])));
    let pushes: Vec<_> = (server.requests().into_iter())
        .filter(|r| r.path.starts_with("/dst/"))
        .collect();
    assert!(!pushes.is_empty());
    assert!(
        pushes
            .iter()
            .all(|r| r.authorization.as_deref() == Some(basic.as_str())),
        "{pushes:?}"
    );
    for (project, name) in &repos {
        let created = server.repo_path(&format!("dst/mirror/{}-{}.git", project, name));
        assert_eq!(
            refs_of(&created),
            refs_of(&server.repo_path(&format!("src/{project}/{name}.git")))
        );
    }
    run.assert_key_kept(&app_key("app-key.pem"));
    for token in &tokens {
        run.assert_token_kept(token);
    }
    run.assert_secret_kept("alice", SECRET);
}

/// The task as the agent lays it out, from the source tree: task.json,
/// the Node wrapper and this build's binary where the wrapper looks for
/// it. `None` (with a notice) where node or a binary folder for this
/// platform is missing.
fn source_tree_task() -> Option<tempfile::TempDir> {
    if Command::new("node").arg("--version").output().is_err() {
        notice("SKIPPED: node is not installed");
        return None;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => {
            notice(&format!("SKIPPED: the task ships no binary for {other}"));
            return None;
        }
    };
    if std::env::consts::OS != "linux" {
        notice("SKIPPED: the wrapper test lays out a Linux task");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("git-relay-task-")
        .tempdir()
        .unwrap();
    let task = dir.path().join("task");
    let bin = task.join("bin").join(format!("linux-{arch}"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(root().join("task/run.js"), task.join("run.js")).unwrap();
    std::fs::copy(root().join("task.json"), task.join("task.json")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_git-relay"), bin.join("git-relay")).unwrap();
    Some(dir)
}

#[test]
fn task_signs_in_with_entra_through_the_node_wrapper() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let identity = oidc::FakeIdentity::builder(TENANT, CLIENT_ID, AZURE_CONNECTION, JOB_TOKEN)
        .life(60)
        .start();
    let (server, expected) = entra_server(&identity);
    let agent = entra_agent(&server, &identity, CLIENT_ID);
    let run = agent.run(wrapper(task.path()));
    assert_mirrored(&run, &server, &expected);
    assert!(
        identity.access_tokens().len() >= 2,
        "{:#?}",
        identity.requests()
    );
    assert_entra_tokens_kept(&run, &identity);
}

#[test]
fn task_signs_in_as_a_github_app_through_the_node_wrapper() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let pipeline = AppToGitHub::start();
    let run = pipeline
        .agent(&app_key("app-key.pem"))
        .run(wrapper(task.path()));
    assert_eq!(run.code, 0, "{}", run.log());
    pipeline.assert_mirrored_as_the_app(&run);
}

// ---------------------------------------------------------------- the .vsix

/// Why the packaged tests are ignored by default.
const NEEDS_VSIX: &str =
    "needs dist/*.vsix and node: run `cargo xtask dist`, then `cargo test --test task -- --ignored packaged`";

/// The packaged extension, unpacked. Panics when `cargo xtask dist` has
/// not been run or node is missing: a packaged test that cannot run fails
/// rather than passes.
fn unpacked_extension() -> tempfile::TempDir {
    let dist = root().join("dist");
    let vsix = std::fs::read_dir(&dist).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "vsix"))
    });
    let Some(vsix) = vsix else {
        panic!("no dist/*.vsix: {NEEDS_VSIX}");
    };
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "node is not installed: {NEEDS_VSIX}"
    );
    let dir = tempfile::Builder::new()
        .prefix("git-relay-vsix-")
        .tempdir()
        .unwrap();
    unzip(&vsix, dir.path());
    dir
}

/// A line for the person running the tests, written past the test
/// harness's capture (which takes only `print!`/`eprint!`), so that a
/// skip or a measurement is never silent.
fn notice(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn unzip(archive: &Path, into: &Path) {
    let ok = Command::new("unzip")
        .arg("-q")
        .arg(archive)
        .arg("-d")
        .arg(into)
        .status()
        .is_ok_and(|s| s.success())
        || Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
            ])
            .arg(archive)
            .arg(into)
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "cannot unpack {}", archive.display());
}

fn wrapper(extension: &Path) -> Command {
    let task = json(&extension.join("task/task.json"));
    let mut cmd = Command::new("node");
    cmd.arg(
        extension
            .join("task")
            .join(task["execution"]["Node20_1"]["target"].as_str().unwrap()),
    );
    cmd
}

#[test]
#[ignore = "needs dist/*.vsix and node: run `cargo xtask dist`, then `cargo test --test task -- --ignored packaged`"]
fn packaged_task_mirrors_through_its_node_wrapper() {
    let extension = unpacked_extension();
    let packaged = json(&extension.path().join("task/task.json"));
    assert_eq!(
        packaged,
        task_json(),
        "the .vsix holds a stale task.json: run `cargo xtask dist` again"
    );
    let server = server();
    let expected = seed(&server);
    let mut agent = Agent::new(
        &server.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
            ("destinationAuthentication", "serviceConnection"),
            ("destinationServiceConnection", CONNECTION_ID),
        ],
    );
    agent.system_access_token("unused").generic_connection(
        CONNECTION_ID,
        "https://example.invalid/",
        "alice",
        SECRET,
    );
    let run = agent.run(wrapper(extension.path()));
    assert_mirrored(&run, &server, &expected);
    run.assert_secret_kept("alice", SECRET);

    // Failure through the wrapper: same contract.
    let bad = Agent::new(
        &server.url("src.git"),
        &[
            ("sourceGitRepositoryPersonalAccessToken", "alice:wrong"),
            ("destinationGitRepositoryUri", &server.url("dst.git")),
        ],
    );
    let run = bad.run(wrapper(extension.path()));
    assert_eq!(run.code, 0, "{}", run.log());
    let (result, message) = run.result();
    assert_eq!(result, "Failed");
    assert!(message.contains("source"), "{message}");
}

#[test]
#[ignore = "needs dist/*.vsix and node: run `cargo xtask dist`, then `cargo test --test task -- --ignored packaged`"]
fn packaged_wrapper_reaches_the_network_promptly() {
    let extension = unpacked_extension();
    // A listener that answers nothing: the time to its first connection is
    // the wrapper's and the binary's start-up cost, up to the first request.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/src.git",
        listener.local_addr().unwrap().port()
    );
    let agent = Agent::new(
        &url,
        &[
            ("destinationGitRepositoryUri", "/nonexistent/dst.git"),
            ("timeout", "2"),
        ],
    );
    let mut cmd = wrapper(extension.path());
    cmd.env_clear()
        .envs(&agent.env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let elapsed = started.elapsed();
    drop(conn);
    drop(listener);
    let out = child.wait_with_output().unwrap();
    notice(&format!(
        "wrapper start to first git request: {} ms",
        elapsed.as_millis()
    ));
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let run = TaskRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.result().0, "Failed", "{}", run.log());
    assert!(
        run.named("task.logissue")
            .iter()
            .any(|i| i.message.contains("source")),
        "{}",
        run.log()
    );
}

#[test]
fn wrapper_fails_clearly_without_a_binary_for_the_platform() {
    if Command::new("node").arg("--version").output().is_err() {
        notice("SKIPPED: node is not installed");
        return;
    }
    // The wrapper from the source tree, with no bin/ beside it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("task/run.js"), dir.path().join("run.js")).unwrap();
    let out = Command::new("node")
        .arg(dir.path().join("run.js"))
        .output()
        .unwrap();
    let run = TaskRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let (result, message) = run.result();
    assert_eq!(result, "Failed");
    assert!(message.contains("no binary for this agent"), "{message}");
    assert_eq!(run.named("task.logissue")[0].properties["type"], "error");
}

// ------------------------------------------- the task in the agent's words

#[test]
fn task_json_links_its_docs_and_hides_what_does_not_apply() {
    let task = task_json();
    let help_url = task["helpUrl"].as_str().expect("helpUrl");
    assert!(help_url.starts_with("https://"), "{help_url}");
    assert!(
        task["helpMarkDown"]
            .as_str()
            .unwrap()
            .contains(&format!("[Learn more]({help_url})")),
        "helpMarkDown has no Learn more link to helpUrl"
    );
    // Once the crate names its repository, the docs link must live there.
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    if let Some(line) = cargo.lines().find(|l| l.starts_with("repository")) {
        let repository = line.split('"').nth(1).unwrap();
        assert!(
            help_url.starts_with(repository.trim_end_matches('/')),
            "helpUrl {help_url} is not in the repository {repository}"
        );
    }
    let group = |name: &str| {
        task["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(group("organization")["visibleRule"], "mode = organization");
    let input = |name: &str| {
        task["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .cloned()
            .unwrap()
    };
    // Hidden: a rule that asks for two values of one pick list at once
    // is never true.
    let clone = input("sourceGitRepositoryCloneDirectoryName");
    let rule = clone["visibleRule"].as_str().unwrap();
    let values: BTreeSet<&str> = rule
        .split("&&")
        .map(|c| c.trim().strip_prefix("mode = ").expect(rule))
        .collect();
    assert_eq!(values.len(), 2, "{rule} could be true");
    assert!(clone["label"].as_str().unwrap().contains("ignored"));
    assert!(clone["helpMarkDown"]
        .as_str()
        .unwrap()
        .starts_with("Ignored"));
    // The task may set its outputs and nothing else.
    let allowed: Vec<&str> = task["restrictions"]["settableVariables"]["allowed"]
        .as_array()
        .expect("restrictions.settableVariables.allowed")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, OUTPUT_VARIABLES);
    let report = task["outputVariables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "reportPath")
        .unwrap()["description"]
        .as_str()
        .unwrap();
    assert!(
        report.contains("- publish: $(mirror.reportPath)") && report.contains("artifact:"),
        "{report}"
    );
    let fail_on = input("failOn");
    assert_eq!(fail_on["defaultValue"], "rejected");
}

/// A source with `main`, `topic` and a tag, and a destination whose
/// update hook refuses `topic`.
fn server_refusing_topic() -> GitServer {
    let server = server();
    seed(&server);
    install_hook(
        &server.repo_path("dst.git"),
        "update",
        "#!/bin/sh\ncase \"$1\" in refs/heads/topic) echo 'topic is frozen' >&2; exit 1;; esac\nexit 0\n",
    );
    server
}

fn agent_between(server: &GitServer, extra: &[(&str, &str)]) -> Agent {
    let token = format!("alice:{SECRET}");
    let dst = server.url("dst.git");
    let mut inputs = vec![
        ("sourceGitRepositoryPersonalAccessToken", token.as_str()),
        ("destinationGitRepositoryUri", dst.as_str()),
        (
            "destinationGitRepositoryPersonalAccessToken",
            token.as_str(),
        ),
    ];
    inputs.extend_from_slice(extra);
    Agent::new(&server.url("src.git"), &inputs)
}

#[test]
fn task_fails_on_refs_the_destination_rejects_unless_told_otherwise() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let server = server_refusing_topic();
    // The default: a refused ref fails the task, as a failed push failed
    // the old one, and the others are mirrored all the same.
    let run = agent_between(&server, &[]).run(wrapper(task.path()));
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.starts_with(
            "1 ref(s) rejected by the destination (failOn: rejected): 2 created, 1 rejected"
        ),
        "{message}"
    );
    let issues = run.named("task.logissue");
    assert!(
        issues.iter().any(|i| i.properties["type"] == "error"
            && i.message.contains("refs/heads/topic")
            && i.message.contains("topic is frozen")),
        "{}",
        run.log()
    );
    let dst = refs_of(&server.repo_path("dst.git"));
    assert!(dst.iter().any(|(n, _)| n == "refs/heads/main"), "{dst:?}");
    assert!(!dst.iter().any(|(n, _)| n == "refs/heads/topic"), "{dst:?}");
    run.assert_secret_kept("alice", SECRET);

    // failOn: never: the same refusal only ends the task with issues.
    let run = agent_between(&server, &[("failOn", "never")]).run(wrapper(task.path()));
    assert_eq!(run.result().0, "SucceededWithIssues", "{}", run.log());
    let issues = run.named("task.logissue");
    assert!(
        issues
            .iter()
            .any(|i| i.properties["type"] == "warning" && i.message.contains("refs/heads/topic")),
        "{}",
        run.log()
    );
    assert!(
        !issues.iter().any(|i| i.properties["type"] == "error"),
        "{}",
        run.log()
    );
}

/// A source and a destination that has one commit more on `main`.
fn server_with_protected_main() -> GitServer {
    let server = server();
    let work = WorkRepo::new();
    work.commit("shared");
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    work.commit("only on the destination");
    let dst = server.create_bare("dst.git");
    work.push_mirror_to(&dst);
    server
}

#[test]
fn task_protected_refs_fail_only_with_fail_on_differences() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let server = server_with_protected_main();
    let before = refs_of(&server.repo_path("dst.git"));
    for (fail_on, expected, severity) in [
        ("rejected", "SucceededWithIssues", "warning"),
        ("never", "SucceededWithIssues", "warning"),
        ("differences", "Failed", "error"),
    ] {
        // Kept until the summary in its temporary directory is read.
        let agent = agent_between(&server, &[("failOn", fail_on)]);
        let run = agent.run(wrapper(task.path()));
        let (result, message) = run.result();
        assert_eq!(result, expected, "failOn {fail_on}\n{}", run.log());
        // The way out is named as an input, not as a flag.
        assert!(message.contains("set the input `force`"), "{message}");
        assert!(
            run.named("task.logissue")
                .iter()
                .any(|i| i.properties["type"] == severity
                    && i.message.contains("refs/heads/main")
                    && i.message.contains("protected")),
            "failOn {fail_on}\n{}",
            run.log()
        );
        assert!(
            !run.lines().iter().any(|l| l.contains("--force")),
            "a flag in the log\n{}",
            run.log()
        );
        // The summary: attached under its stable name, its first line
        // saying its state once, the task's result.
        let markdown = std::fs::read_to_string(run.summary_file()).unwrap();
        let heading = match expected {
            "Failed" => "❌ **Failed**: 1 protected",
            _ => "⚠️ **Finished with differences**: 1 protected",
        };
        assert!(
            markdown.lines().any(|l| l.starts_with(heading)
                && !l.to_lowercase().contains("finished with differences: ")),
            "failOn {fail_on}: no line starts with {heading:?}\n{markdown}"
        );
    }
    assert_eq!(refs_of(&server.repo_path("dst.git")), before);
}

#[test]
fn task_names_an_unexpanded_variable() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let server = server();
    seed(&server);
    // A classic release pipeline has no Build.Repository.Uri: the agent
    // leaves the source's default as it is.
    let mut agent = agent_between(&server, &[]);
    agent.env.insert(
        "INPUT_SOURCEGITREPOSITORYURI".to_owned(),
        "$(Build.Repository.Uri)".to_owned(),
    );
    let run = agent.run(wrapper(task.path()));
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("sourceGitRepositoryUri")
            && message.contains("`$(Build.Repository.Uri)`")
            && message.contains("variable"),
        "{message}"
    );
    assert_eq!(run.named("task.logissue").len(), 1, "{}", run.log());
}

#[test]
fn task_logs_url_credentials_and_debug_lines_in_the_agents_words() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let server = server();
    let expected = seed(&server);
    let mut agent = Agent::new(
        &server.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            (
                "destinationGitRepositoryUri",
                &server.url_with_credentials("dst.git"),
            ),
        ],
    );
    agent
        .env
        .insert("SYSTEM_DEBUG".to_owned(), "true".to_owned());
    let run = agent.run(wrapper(task.path()));
    assert_mirrored(&run, &server, &expected);
    let destination = run
        .lines()
        .into_iter()
        .find(|l| l.starts_with("destination "))
        .unwrap_or_else(|| panic!("{}", run.log()))
        .to_owned();
    assert!(
        destination.ends_with("(credentials in the URL)"),
        "{destination}"
    );
    assert!(!run.log().contains("(no token)"), "{}", run.log());
    assert!(
        run.lines().iter().any(|l| l.starts_with("##[debug]")),
        "{}",
        run.log()
    );
    assert!(
        !run.lines().iter().any(|l| l.starts_with("debug: ")),
        "{}",
        run.log()
    );
    run.assert_secret_kept("alice", SECRET);
}

// ------------------------------------------------------- the Node wrapper

#[test]
fn wrapper_picks_binaries_copies_and_cancels_as_each_platform_needs() {
    if Command::new("node").arg("--version").output().is_err() {
        notice("SKIPPED: node is not installed");
        return;
    }
    // Other platforms, a failing chmod and a Windows cancel, driven through
    // the wrapper's functions (see the script for why).
    let out = Command::new("node")
        .arg(root().join("tests/support/task/run_js_test.js"))
        .arg(root().join("task/run.js"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a file immutable (chmod then fails even for root) for as long as
/// it lives; `None` where `chattr` cannot.
struct Immutable(PathBuf);

impl Immutable {
    fn new(path: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn wrapper_runs_a_copy_when_the_task_folder_cannot_be_made_executable() {
    let Some(task) = source_tree_task() else {
        return;
    };
    // The binary as an unzipped .vsix leaves it, in a folder where chmod
    // is refused.
    let bin = std::fs::read_dir(task.path().join("task/bin"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("git-relay");
    std::fs::remove_file(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_git-relay"), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Some(_immutable) = Immutable::new(&bin) else {
        notice("SKIPPED: chattr +i is not available to make chmod fail");
        return;
    };
    let server = server();
    let expected = seed(&server);
    let agent = agent_between(&server, &[]);
    let run = agent.run(wrapper(task.path()));
    assert_mirrored(&run, &server, &expected);
    let temp = &agent.env["AGENT_TEMPDIRECTORY"];
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("##[debug]cannot make")
                && l.contains(&format!("running a copy in {temp}"))),
        "{}",
        run.log()
    );
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o111,
        0,
        "the shipped binary was left alone"
    );
}

#[test]
fn organization_mode_fails_a_repository_whose_refs_are_rejected_as_fail_on_says() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let server = server();
    let (fake, repos) = organization(&server);
    for (project, name) in &repos {
        let dst = server.create_bare(&format!("dst/{project}/{name}.git"));
        if name == "tools" {
            install_hook(
                &dst,
                "update",
                "#!/bin/sh\ncase \"$1\" in refs/tags/*) echo 'no tags here' >&2; exit 1;; esac\nexit 0\n",
            );
        }
    }
    let run = organization_agent(&server, &fake, SECRET).run(wrapper(task.path()));
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("1 of 3 repositories could not be mirrored"),
        "{message}"
    );
    let errors: Vec<String> = run
        .named("task.logissue")
        .into_iter()
        .filter(|i| i.properties["type"] == "error")
        .map(|i| i.message)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("Prøject Ω/tools failed: "),
        "{errors:?}"
    );

    let mut agent = organization_agent(&server, &fake, SECRET);
    agent
        .env
        .insert("INPUT_FAILON".to_owned(), "never".to_owned());
    let run = agent.run(wrapper(task.path()));
    assert_eq!(run.result().0, "SucceededWithIssues", "{}", run.log());
    let issues = run.named("task.logissue");
    assert!(
        issues.iter().all(|i| i.properties["type"] == "warning")
            && issues
                .iter()
                .any(|i| i.message.starts_with("Prøject Ω/tools: ")),
        "{}",
        run.log()
    );
    run.assert_secret_kept("alice", SECRET);
}

#[test]
fn wrapper_passes_a_cancel_on_to_the_binary() {
    let Some(task) = source_tree_task() else {
        return;
    };
    // A source that takes connections and never answers: the run waits
    // until the agent cancels it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let connections: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(connections);
    });
    drop(held);
    let agent = Agent::new(
        &format!("http://127.0.0.1:{port}/src.git"),
        &[("destinationGitRepositoryUri", "http://127.0.0.1:9/dst.git")],
    );
    let mut cmd = wrapper(task.path());
    cmd.env_clear()
        .envs(&agent.env)
        .current_dir(agent.work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    // What the agent does to cancel a task on Linux.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run went on for {:?} after the cancel",
        started.elapsed()
    );
    let run = TaskRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert_eq!(message, "git-relay was stopped by SIGTERM", "{}", run.log());
    assert_eq!(run.code, 1, "{}", run.log());
}

// ---------------------------------------------------------------- SSH

/// An HTTP source (`src.git` of `http`, old-task token input) and an SSH
/// destination (`dst.git` of the sshd harness, its host key given as
/// known-hosts text): the agent, with the destination's key input `key`.
fn ssh_agent(http: &GitServer, sshd: &SshServer, key: &str) -> Agent {
    Agent::new(
        &http.url("src.git"),
        &[
            (
                "sourceGitRepositoryPersonalAccessToken",
                &format!("alice:{SECRET}"),
            ),
            ("destinationGitRepositoryUri", &sshd.url("dst.git")),
            ("destinationSshKey", key),
            ("destinationSshKnownHosts", &sshd.known_hosts_line()),
        ],
    )
}

/// The key text as a secret variable holds it: line breaks flattened to
/// spaces.
fn flattened(key: &str) -> String {
    key.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn task_mirrors_into_an_ssh_destination_with_a_key_as_text_or_file() {
    let http = server();
    let expected = seed(&http);
    let sshd = SshServer::start();
    let key = std::fs::read_to_string(sshd.key()).unwrap();

    // The key's text from a secret variable, its line breaks lost.
    let dst = sshd.create_bare("dst.git");
    let mut agent = ssh_agent(&http, &sshd, &flattened(&key));
    // Known hosts from a variable too: another host's line first, and the
    // line break lost, which would make the server's line a comment.
    let other_host = std::fs::read_to_string(sshd.wrong_known_hosts())
        .unwrap()
        .replace(&format!("[127.0.0.1]:{}", sshd.port()), "other.example");
    agent.env.insert(
        "INPUT_DESTINATIONSSHKNOWNHOSTS".into(),
        flattened(&(other_host + &sshd.known_hosts_line())),
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "Succeeded", "{}", run.log());
    assert_eq!(refs_of(&dst), expected);
    run.assert_key_kept(&key);

    // A secure file's path; readable by others, as a downloaded file may
    // be, which `ssh` would refuse to use as it is.
    let dst = sshd.create_bare("dst2.git");
    let secure = tempfile::tempdir().unwrap();
    let key_file = secure.path().join("deploy_key");
    std::fs::write(&key_file, &key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut agent = ssh_agent(&http, &sshd, &key_file.to_string_lossy());
    agent.env.insert(
        "INPUT_DESTINATIONGITREPOSITORYURI".into(),
        sshd.url("dst2.git"),
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "Succeeded", "{}", run.log());
    assert_eq!(refs_of(&dst), expected);
    run.assert_key_kept(&key);
    assert!(sshd.connections().len() >= 2, "{}", sshd.log());
}

#[test]
fn task_with_a_wrong_ssh_key_fails_naming_the_side() {
    let http = server();
    seed(&http);
    let sshd = SshServer::start();
    let dst = sshd.create_bare("dst.git");
    let other = std::fs::read_to_string(sshd.other_key()).unwrap();
    let run = ssh_agent(&http, &sshd, &other).run(task_command());
    let (result, message) = run.result();
    assert_eq!(result, "Failed", "{}", run.log());
    assert!(
        message.contains("destination") && message.contains("permission denied"),
        "{message}\n{}",
        run.log()
    );
    // The hint names the task's inputs, not the command line's flags.
    assert!(
        run.stderr
            .contains("the inputs `sourceSshKey` / `destinationSshKey`")
            && !run.stderr.contains("--dest-ssh-key"),
        "{}",
        run.log()
    );
    run.assert_key_kept(&other);
    assert_eq!(refs_of(&dst), Vec::new());

    // Neither key text nor a readable file: an error of the input, with
    // nothing of the value quoted.
    let run = ssh_agent(&http, &sshd, "b3BlbnNzaC1rZXktdjEAAAAA").run(task_command());
    assert_eq!(run.result().0, "Failed", "{}", run.log());
    assert!(
        run.named("task.logissue")
            .iter()
            .any(|i| i.message.starts_with("input destinationSshKey:")),
        "{}",
        run.log()
    );
    run.assert_token_kept("b3BlbnNzaC1rZXktdjEAAAAA");
}

#[test]
fn task_mirrors_into_an_ssh_destination_through_the_node_wrapper() {
    let Some(task) = source_tree_task() else {
        return;
    };
    let http = server();
    let expected = seed(&http);
    let sshd = SshServer::start();
    let dst = sshd.create_bare("dst.git");
    let key = std::fs::read_to_string(sshd.key()).unwrap();
    let run = ssh_agent(&http, &sshd, &flattened(&key)).run(wrapper(task.path()));
    assert_eq!(run.code, 0, "{}", run.log());
    assert_eq!(run.result().0, "Succeeded", "{}", run.log());
    assert_eq!(refs_of(&dst), expected);
    run.assert_key_kept(&key);
}

#[test]
fn organization_mode_mirrors_into_an_ssh_destination_template() {
    let http = server();
    let (fake, repos) = organization(&http);
    let sshd = SshServer::start();
    for (project, name) in &repos {
        sshd.create_bare(&format!("dst/{project}/{name}.git"));
    }
    let key = std::fs::read_to_string(sshd.key()).unwrap();
    let template = sshd.url("dst/{project}/{repo}.git");
    let agent = Agent::new(
        "https://dev.azure.com/fabrikam/proj/_git/pipelines",
        &[
            ("mode", "organization"),
            ("sourceScopeUri", &fake.scope_url()),
            ("sourceKind", "azure-devops"),
            ("sourceUsername", "alice"),
            ("sourceGitRepositoryPersonalAccessToken", SECRET),
            ("destinationTemplate", &template),
            ("destinationSshKey", &flattened(&key)),
            ("destinationSshKnownHosts", &sshd.known_hosts_line()),
            ("jobs", "2"),
        ],
    );
    let run = agent.run(task_command());
    assert_eq!(run.result().0, "Succeeded", "{}", run.log());
    for (project, name) in &repos {
        let src = refs_of(&http.repo_path(&format!("src/{project}/{name}.git")));
        assert_eq!(src.len(), 2, "main and a tag");
        assert_eq!(
            refs_of(&sshd.repo_path(&format!("dst/{project}/{name}.git"))),
            src,
            "{project}/{name}\n{}",
            run.log()
        );
    }
    assert_eq!(run.output("refsChanged").as_deref(), Some("6"));
    run.assert_key_kept(&key);
    run.assert_secret_kept("alice", SECRET);
}

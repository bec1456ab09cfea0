//! `git-relay mirror-all --include-wikis` against fake forge APIs and real
//! git servers.
//!
//! Each forge tells in its own way which wikis there are (GitHub and
//! Gitea `has_wiki`, GitLab `wiki_access_level`, Azure DevOps a listing of
//! its own); the fakes (tests/support/forge.rs) answer in those shapes,
//! and the wikis' git repositories are real bare repositories behind
//! `git http-backend`, so every wiki is really mirrored and checked with
//! git itself. A wiki turned on but never written has no repository: the
//! git server answers 404, as GitHub does.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::forge::{seg, FakeForge, FakeRepo, FakeWiki, Kind};
use support::*;

/// Runs `git-relay mirror-all ARGS --json` with the server's credentials.
fn mirror_all(server: &GitServer, args: &[&str]) -> Run {
    let mut all = vec!["mirror-all"];
    all.extend_from_slice(args);
    all.push("--json");
    run(&all, &credentials(server))
}

/// A bare repository at `src/PATH.git` with `commits` commits.
fn source_bare(server: &GitServer, path: &str, commits: usize) -> PathBuf {
    let bare = server.create_bare(&format!("src/{path}.git"));
    let work = WorkRepo::new();
    for i in 0..commits {
        work.commit_file("Home.md", format!("# {path} {i}\n").as_bytes(), "page");
    }
    work.push_mirror_to(&bare);
    bare
}

/// A repository at `src/PROJECT/NAME.git` and, when `wiki` is `Some`, its
/// wiki beside it (`NAME.wiki.git`) with that many pages saved; `has_wiki`
/// as the listing gives it.
fn repo_with_wiki(
    server: &GitServer,
    project: &str,
    name: &str,
    has_wiki: bool,
    wiki: Option<usize>,
) -> FakeRepo {
    source_bare(server, &format!("{project}/{name}"), 1);
    if let Some(pages) = wiki {
        source_bare(server, &format!("{project}/{name}.wiki"), pages);
    }
    let url = server.url(&format!("src/{}/{}.git", seg(project), seg(name)));
    FakeRepo {
        has_wiki,
        ..FakeRepo::new(project, name, &url)
    }
}

fn src(server: &GitServer, path: &str) -> PathBuf {
    server.repo_path(&format!("src/{path}.git"))
}

fn dst(server: &GitServer, path: &str) -> PathBuf {
    server.repo_path(&format!("dst/{path}.git"))
}

/// `name -> (result, reason)` of every row of the JSON report.
fn rows(run: &Run) -> Vec<(String, String, String)> {
    run.json()["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("name"), text("result"), text("reason"))
        })
        .collect()
}

fn row(name: &str, result: &str, reason: &str) -> (String, String, String) {
    (name.into(), result.into(), reason.into())
}

/// The table line of `name` on stderr.
fn table_line<'a>(run: &'a Run, name: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no table line for {name}:\n{}", run.stderr))
}

/// GitHub and Gitea list `has_wiki`; the wiki sits beside its repository.
/// `docs` has a written wiki, `tools` has its wiki turned on but never
/// written (no repository: 404), `plain` has it turned off.
fn github_like_org(kind: Kind, kind_name: &str) {
    let server = GitServer::start();
    let repos = [
        repo_with_wiki(&server, "acme", "docs", true, Some(3)),
        repo_with_wiki(&server, "acme", "tools", true, None),
        repo_with_wiki(&server, "acme", "plain", false, None),
    ];
    for path in ["acme/docs", "acme/docs.wiki", "acme/tools", "acme/plain"] {
        server.create_bare(&format!("dst/{path}.git"));
    }
    let mut b = FakeForge::builder(kind, "acme", server.password());
    for r in &repos {
        b = b.repo(r.clone());
    }
    let fake = b.start();
    let template = format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    );
    let scope = fake.scope_url();
    let args = ["--source-kind", kind_name, &scope, &template];

    // Without the flag, no wiki is looked at.
    let without = mirror_all(&server, &args);
    without.assert_code(0);
    assert_eq!(without.json()["totals"]["repositories"], 3);

    let mut with = args.to_vec();
    with.push("--include-wikis");
    let run = mirror_all(&server, &with);
    run.assert_code(0);
    assert_eq!(
        rows(&run),
        vec![
            row("acme/docs", "in-sync", ""),
            row("acme/docs.wiki", "updated", ""),
            row("acme/plain", "in-sync", ""),
            row("acme/tools", "in-sync", ""),
            row("acme/tools.wiki", "skipped", "no wiki"),
        ]
    );
    assert_eq!(
        refs_of(&src(&server, "acme/docs.wiki")),
        refs_of(&dst(&server, "acme/docs.wiki"))
    );
    let json = run.json();
    let docs = &json["repositories"][1];
    assert!(docs["source"]
        .as_str()
        .unwrap()
        .ends_with("/src/acme/docs.wiki.git"));
    assert!(docs["destination"]
        .as_str()
        .unwrap()
        .ends_with("/dst/acme/docs.wiki.git"));
    assert_eq!(json["totals"]["failed"], 0);
    assert_eq!(json["totals"]["skipped"], 1);
    // The table shows the wiki rows too.
    assert!(table_line(&run, "acme/docs.wiki").ends_with("updated"));
    assert!(table_line(&run, "acme/tools.wiki").ends_with("skipped: no wiki"));
    assert!(!run.stderr.contains("plain.wiki"), "{}", run.stderr);
}

#[test]
fn github_wikis_are_mirrored_and_a_never_written_one_is_no_failure() {
    github_like_org(Kind::GitHub, "github");
}

#[test]
fn gitea_wikis_are_mirrored_and_a_never_written_one_is_no_failure() {
    github_like_org(Kind::Gitea, "gitea");
}

#[test]
fn gitlab_wikis_of_a_group_and_its_subgroups_are_mirrored() {
    let server = GitServer::start();
    let repos = [
        repo_with_wiki(&server, "acme/platform", "api", true, Some(2)),
        repo_with_wiki(&server, "acme/platform/infra", "deploy", true, Some(1)),
        repo_with_wiki(&server, "acme/platform", "nowiki", false, None),
    ];
    let mut b = FakeForge::builder(Kind::GitLab, "acme/platform", server.password());
    for r in &repos {
        b = b.repo(r.clone());
    }
    let fake = b.start();
    let backup = server.root().join("backup");
    let template = format!("{}/{{project}}/{{repo}}.git", backup.display());
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "gitlab",
            &fake.scope_url(),
            &template,
            "--include-wikis",
        ],
    );
    run.assert_code(0);
    let names: Vec<String> = rows(&run).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "acme/platform/api",
            "acme/platform/api.wiki",
            "acme/platform/infra/deploy",
            "acme/platform/infra/deploy.wiki",
            "acme/platform/nowiki",
        ]
    );
    // Local destinations render the project as one path segment.
    let wiki = backup.join("acme%2Fplatform%2Finfra/deploy.wiki.git");
    assert_eq!(
        refs_of(&src(&server, "acme/platform/infra/deploy.wiki")),
        refs_of(&wiki)
    );
    assert_eq!(
        refs_of(&src(&server, "acme/platform/api.wiki")),
        refs_of(&backup.join("acme%2Fplatform/api.wiki.git"))
    );
}

/// An Azure Repos repository at `src/PROJECT/_git/NAME`, the layout of
/// Azure DevOps' clone URLs, where a project wiki sits beside it.
fn azure_repo(server: &GitServer, project: &str, name: &str) -> FakeRepo {
    let bare = server.repo_path(&format!("src/{project}/_git/{name}"));
    git(
        server.root(),
        &["init", "--bare", "-q", bare.to_str().unwrap()],
    );
    let work = WorkRepo::new();
    work.commit_file("README.md", format!("{project} {name}\n").as_bytes(), "c");
    work.push_mirror_to(&bare);
    let url = server.url(&format!("src/{}/_git/{}", seg(project), seg(name)));
    FakeRepo::new(project, name, &url)
}

/// An Azure DevOps organization: `Fabrikam` has a project wiki (its
/// hidden repository `Fabrikam.wiki`, written) and a code wiki (a folder
/// of its `Web` repository), `Tools` has no wiki at all.
fn azure_org(server: &GitServer) -> FakeForge {
    let web = azure_repo(server, "Fabrikam", "Web");
    let tools = azure_repo(server, "Tools", "cli");
    source_bare(server, "Fabrikam/_git/Fabrikam.wiki", 2);
    FakeForge::builder(Kind::AzureDevOps, "fabrikam", server.password())
        .repo(web)
        .repo(tools)
        .wiki(FakeWiki {
            project: "Fabrikam".into(),
            name: "Fabrikam.wiki".into(),
            code_of: None,
        })
        .wiki(FakeWiki {
            project: "Fabrikam".into(),
            name: "Web docs".into(),
            code_of: Some("Web".into()),
        })
        .start()
}

fn wiki_listings(fake: &FakeForge) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with("/_apis/wiki/wikis"))
        .map(|s| s.path)
        .collect()
}

#[test]
fn azure_devops_project_wikis_are_mirrored_and_code_wikis_left_to_their_repository() {
    let server = GitServer::start();
    let fake = azure_org(&server);
    let backup = server.root().join("backup");
    let template = format!("{}/{{project}}/{{repo}}.git", backup.display());
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "azure-devops",
            &fake.scope_url(),
            &template,
            "--include-wikis",
        ],
    );
    run.assert_code(0);
    // The code wiki is not a row: it is a folder of Web, mirrored with it.
    assert_eq!(
        rows(&run),
        vec![
            row("Fabrikam/Fabrikam.wiki", "updated", ""),
            row("Fabrikam/Web", "updated", ""),
            row("Tools/cli", "updated", ""),
        ]
    );
    let json = run.json();
    assert!(json["repositories"][0]["source"]
        .as_str()
        .unwrap()
        .ends_with("/src/Fabrikam/_git/Fabrikam.wiki"));
    assert_eq!(
        refs_of(&src(&server, "Fabrikam/_git/Fabrikam.wiki")),
        refs_of(&backup.join("Fabrikam/Fabrikam.wiki.git"))
    );
    assert!(table_line(&run, "Fabrikam/Fabrikam.wiki").ends_with("updated"));
    assert_eq!(
        wiki_listings(&fake),
        [
            "/fabrikam/Fabrikam/_apis/wiki/wikis",
            "/fabrikam/Tools/_apis/wiki/wikis"
        ]
    );
}

/// `--create-missing` into Azure DevOps creates the project wiki (its
/// API makes the wiki's git repository), then fills it; a second run
/// finds it and creates nothing.
#[test]
fn azure_devops_create_missing_creates_the_project_wiki() {
    let server = GitServer::start();
    let source = azure_org(&server);
    let root = server.root().to_owned();
    let port = server.port();
    let mut dest = FakeForge::builder(Kind::AzureDevOps, "mirror-org", server.password());
    for (project, name) in [("Fabrikam", "Web"), ("Tools", "cli")] {
        let path = format!("dst/{project}/_git/{name}");
        server.create_bare(&path);
        dest = dest.repo(FakeRepo::new(project, name, &server.url(&path)));
    }
    let dest = dest
        .creator(Box::new(move |project, name| {
            let path = root.join("dst").join(project).join("_git").join(name);
            git(&root, &["init", "--bare", "-q", path.to_str().unwrap()]);
            format!(
                "http://127.0.0.1:{port}/dst/{}/_git/{}",
                seg(project),
                seg(name)
            )
        }))
        .start();
    let template = format!("http://127.0.0.1:{port}/dst/{{project}}/_git/{{repo}}");
    let (source_scope, dest_scope) = (source.scope_url(), dest.scope_url());
    let args = [
        "--source-kind",
        "azure-devops",
        &source_scope,
        &template,
        "--include-wikis",
        "--create-missing",
        "--dest-kind",
        "azure-devops",
        "--dest-scope",
        &dest_scope,
    ];
    let run = mirror_all(&server, &args);
    run.assert_code(0);
    assert_eq!(rows(&run)[0], row("Fabrikam/Fabrikam.wiki", "updated", ""));
    assert_eq!(run.json()["repositories"][0]["created"], true);
    assert!(table_line(&run, "Fabrikam/Fabrikam.wiki").ends_with("created"));
    let posts: Vec<_> = dest
        .requests()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].path, "/mirror-org/Fabrikam/_apis/wiki/wikis");
    let body: Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(body["name"], "Fabrikam.wiki");
    assert_eq!(body["type"], "projectWiki");
    assert_eq!(
        refs_of(&src(&server, "Fabrikam/_git/Fabrikam.wiki")),
        refs_of(&server.repo_path("dst/Fabrikam/_git/Fabrikam.wiki"))
    );

    // The wiki is listed now: nothing is created again.
    mirror_all(&server, &args).assert_code(0);
    assert_eq!(
        dest.requests()
            .iter()
            .filter(|s| s.method == "POST")
            .count(),
        1
    );
}

/// GitHub makes a wiki's repository only when its first page is saved in
/// the web interface, and no API creates one: `--create-missing` says so
/// for the wiki, and mirrors the rest.
#[test]
fn github_create_missing_says_a_destination_wiki_must_exist() {
    let server = GitServer::start();
    let docs = repo_with_wiki(&server, "acme", "docs", true, Some(1));
    let source = FakeForge::builder(Kind::GitHub, "acme", server.password())
        .repo(docs)
        .start();
    server.create_bare("dst/mirror/docs.git");
    let dest = FakeForge::builder(Kind::GitHub, "mirror", server.password())
        .repo(FakeRepo::new(
            "mirror",
            "docs",
            &server.url("dst/mirror/docs.git"),
        ))
        .start();
    let template = format!("http://127.0.0.1:{}/dst/mirror/{{repo}}.git", server.port());
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &source.scope_url(),
            &template,
            "--include-wikis",
            "--create-missing",
            "--dest-kind",
            "github",
            "--dest-scope",
            &dest.scope_url(),
        ],
    );
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["repositories"][0]["result"], "updated");
    let wiki = &json["repositories"][1];
    assert_eq!(wiki["name"], "acme/docs.wiki");
    assert_eq!(wiki["result"], "failed");
    let reason = wiki["reason"].as_str().unwrap();
    assert!(
        reason.contains("GitHub wikis cannot be created through its API"),
        "{reason}"
    );
    assert!(
        wiki["hint"].as_str().unwrap().contains("first page"),
        "{wiki}"
    );
    assert!(!server.repo_path("dst/mirror/docs.wiki.git").exists());
    // Nothing was asked of the API for the wiki.
    assert!(dest.requests().iter().all(|s| s.method == "GET"));
    assert!(
        run.stderr.contains(
            "failed: acme/docs.wiki: creating the destination: GitHub wikis cannot be created"
        ),
        "{}",
        run.stderr
    );
}

/// Without `--create-missing`, a destination wiki that does not exist
/// fails that row with what to do, and only that row.
#[test]
fn a_missing_destination_wiki_fails_with_what_to_do() {
    let server = GitServer::start();
    let docs = repo_with_wiki(&server, "acme", "docs", true, Some(1));
    let source = FakeForge::builder(Kind::GitHub, "acme", server.password())
        .repo(docs)
        .start();
    server.create_bare("dst/acme/docs.git");
    let template = format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    );
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &source.scope_url(),
            &template,
            "--include-wikis",
        ],
    );
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["repositories"][0]["result"], "updated");
    let wiki = &json["repositories"][1];
    assert_eq!(wiki["result"], "failed");
    assert!(
        wiki["reason"].as_str().unwrap().starts_with("destination"),
        "{wiki}"
    );
    assert!(
        wiki["hint"]
            .as_str()
            .unwrap()
            .contains("first page is saved"),
        "{wiki}"
    );
}

/// A PAT without the Wiki scope cannot list wikis: the sweep stops before
/// mirroring, naming the scope to add.
#[test]
fn azure_devops_wiki_listing_refused_names_the_wiki_scope() {
    let server = GitServer::start();
    let web = azure_repo(&server, "Fabrikam", "Web");
    let fake = FakeForge::builder(Kind::AzureDevOps, "fabrikam", server.password())
        .repo(web)
        .refuse_wikis()
        .start();
    let template = format!(
        "{}/{{project}}/{{repo}}.git",
        server.root().join("backup").display()
    );
    let scope = fake.scope_url();
    let args = ["--source-kind", "azure-devops", &scope, &template];
    // Without the flag no wiki is asked for, and the sweep goes through.
    mirror_all(&server, &args).assert_code(0);
    assert!(wiki_listings(&fake).is_empty());
    let mut with = args.to_vec();
    with.push("--include-wikis");
    let run = mirror_all(&server, &with);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("/Fabrikam/_apis/wiki/wikis"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Wiki (Read) scope"), "{}", run.stderr);
}

/// A dry run says what it would create (an Azure DevOps project wiki)
/// and asks nothing of the API but listings.
#[test]
fn dry_run_would_create_a_project_wiki_and_creates_nothing() {
    let server = GitServer::start();
    let source = azure_org(&server);
    let port = server.port();
    let mut dest = FakeForge::builder(Kind::AzureDevOps, "mirror-org", server.password());
    for (project, name) in [("Fabrikam", "Web"), ("Tools", "cli")] {
        let path = format!("dst/{project}/_git/{name}");
        server.create_bare(&path);
        dest = dest.repo(FakeRepo::new(project, name, &server.url(&path)));
    }
    let dest = dest
        .creator(Box::new(|_, _| panic!("a dry run creates nothing")))
        .start();
    let template = format!("http://127.0.0.1:{port}/dst/{{project}}/_git/{{repo}}");
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "azure-devops",
            &source.scope_url(),
            &template,
            "--include-wikis",
            "--create-missing",
            "--dest-kind",
            "azure-devops",
            "--dest-scope",
            &dest.scope_url(),
            "--dry-run",
        ],
    );
    run.assert_code(3);
    assert_eq!(
        rows(&run)[0],
        row("Fabrikam/Fabrikam.wiki", "would-create", "")
    );
    assert!(table_line(&run, "Fabrikam/Fabrikam.wiki").ends_with("would create"));
    assert!(dest.requests().iter().all(|s| s.method == "GET"));
    assert!(!server.repo_path("dst/Fabrikam/_git/Fabrikam.wiki").exists());
}

//! `git-relay mirror-all` against fake forge APIs and real git servers.
//!
//! Each test lists repositories through a fake API (tests/support/forge.rs)
//! that pages, checks tokens and throttles like the real one, and whose
//! clone URLs lead to `git http-backend` (tests/support), so every mirror is
//! real and every destination is checked with git itself.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use support::forge::{self, seg, FakeForge, FakeRepo, Kind};
use support::*;

/// What a sweep's `--json` report says, repository by repository.
trait SweepReport {
    /// `name -> result` of every repository in the JSON report.
    fn results(&self) -> Vec<(String, String)>;
    /// The names of every repository in the report.
    fn names(&self) -> BTreeSet<String>;
}

impl SweepReport for Run {
    fn results(&self) -> Vec<(String, String)> {
        self.json()["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["result"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn names(&self) -> BTreeSet<String> {
        self.results().into_iter().map(|(n, _)| n).collect()
    }
}

/// Runs `git-relay mirror-all ARGS --json` with the server's credentials for
/// both sides (the fakes take the same token).
fn mirror_all(server: &GitServer, args: &[&str]) -> Run {
    let mut all = vec!["mirror-all"];
    all.extend_from_slice(args);
    all.push("--json");
    run(&all, &credentials(server))
}

/// A source repository at `src/PROJECT/NAME.git` with `commits` commits and
/// a tag; returns its clone URL.
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

fn src_path(server: &GitServer, r: &FakeRepo) -> std::path::PathBuf {
    server.repo_path(&format!("src/{}/{}.git", r.project, r.name))
}

fn dst_path(server: &GitServer, project: &str, name: &str) -> std::path::PathBuf {
    server.repo_path(&format!("dst/{project}/{name}.git"))
}

fn dst_template(server: &GitServer) -> String {
    format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    )
}

fn assert_same_refs(a: &Path, b: &Path) {
    assert_eq!(refs_of(a), refs_of(b), "{} vs {}", a.display(), b.display());
}

/// Names with spaces and non-ASCII letters, a disabled repository, an
/// empty one, a project with no repository, and five projects listed two
/// per page.
fn azure_org(server: &GitServer) -> (FakeForge, Vec<FakeRepo>) {
    let mut disabled = source_repo(server, "Tools", "old", 1);
    disabled.disabled = true;
    let repos = vec![
        source_repo(server, "Fabrikam Fiber", "Web App", 2),
        source_repo(server, "Fabrikam Fiber", "API", 1),
        source_repo(server, "Ünïcode Prøject", "Résumé Builder", 1),
        source_repo(server, "Tools", "empty-one", 0),
        disabled,
        source_repo(server, "Zeta", "zeta", 3),
    ];
    let mut builder = FakeForge::builder(Kind::AzureDevOps, "fabrikam", server.password())
        .empty_project("TFVC Only");
    for r in &repos {
        builder = builder.repo(r.clone());
    }
    (builder.start(), repos)
}

#[test]
fn azure_devops_organization_is_mirrored_end_to_end() {
    let server = GitServer::start();
    let (fake, repos) = azure_org(&server);
    for r in repos.iter().filter(|r| !r.disabled) {
        server.create_bare(&format!("dst/{}/{}.git", r.project, r.name));
    }
    fake.throttle(1);
    let template = dst_template(&server);
    let args = [
        "--source-kind",
        "azure-devops",
        &fake.scope_url(),
        &template,
        "--jobs",
        "3",
    ];

    let run = mirror_all(&server, &args);
    run.assert_code(0);
    for r in repos.iter().filter(|r| !r.disabled) {
        assert_same_refs(
            &src_path(&server, r),
            &dst_path(&server, &r.project, &r.name),
        );
    }
    let results = run.results();
    assert_eq!(
        results,
        vec![
            ("Fabrikam Fiber/API".into(), "updated".into()),
            ("Fabrikam Fiber/Web App".into(), "updated".into()),
            ("Tools/empty-one".into(), "in-sync".into()),
            ("Tools/old".into(), "skipped".into()),
            ("Zeta/zeta".into(), "updated".into()),
            ("Ünïcode Prøject/Résumé Builder".into(), "updated".into()),
        ]
    );
    let report = run.json();
    let api = report["repositories"][0]["report"]["refs"]
        .as_array()
        .unwrap();
    assert_eq!(api.len(), 2, "main and v1: {report}");
    assert_eq!(report["repositories"][3]["reason"], "disabled");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    assert!(
        run.stderr.contains("repository"),
        "a final table: {}",
        run.stderr
    );

    // Five projects, two per page: three pages, after one throttled request.
    let seen = fake.requests();
    let project_pages: Vec<_> = seen
        .iter()
        .filter(|s| s.path == "/fabrikam/_apis/projects" && s.status == 200)
        .collect();
    assert_eq!(project_pages.len(), 3, "{seen:#?}");
    assert!(project_pages[2].query.contains("continuationToken=4"));
    assert!(seen.iter().any(|s| s.status == 429));
    assert!(seen.iter().all(|s| s
        .authorization
        .as_deref()
        .unwrap_or("")
        .starts_with("Basic ")));
    assert!(!run.stderr.contains(server.password()) && !run.stdout.contains(server.password()));

    // Nothing changed since: a no-op sweep.
    let again = mirror_all(&server, &args);
    again.assert_code(0);
    assert_eq!(again.json()["totals"]["in_sync"], 5, "{}", again.stdout);
}

#[test]
fn one_failing_repository_does_not_stop_the_others() {
    let server = GitServer::start();
    let (fake, repos) = azure_org(&server);
    // Every destination exists except one.
    for r in repos.iter().filter(|r| !r.disabled && r.name != "API") {
        server.create_bare(&format!("dst/{}/{}.git", r.project, r.name));
    }
    let template = dst_template(&server);
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "azure-devops",
            &fake.scope_url(),
            &template,
            "-j",
            "2",
        ],
    );
    run.assert_code(1);
    let report = run.json();
    let failed: Vec<_> = run
        .results()
        .into_iter()
        .filter(|(_, r)| r == "failed")
        .collect();
    assert_eq!(failed, vec![("Fabrikam Fiber/API".into(), "failed".into())]);
    assert_eq!(report["totals"]["updated"], 3, "{report}");
    assert!(report["repositories"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("404"));
    for r in repos.iter().filter(|r| !r.disabled && r.name != "API") {
        assert_same_refs(
            &src_path(&server, r),
            &dst_path(&server, &r.project, &r.name),
        );
    }
    assert!(
        run.stderr.contains("Fabrikam Fiber/API: failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn azure_devops_create_missing_makes_the_repositories_first() {
    let server = GitServer::start();
    let (source, repos) = azure_org(&server);
    let root = server.root().to_owned();
    let port = server.port();
    // The destination organization already has one of the repositories.
    server.create_bare("dst/Backup/_git/Zeta-zeta");
    let dest = FakeForge::builder(Kind::AzureDevOps, "mirror-org", server.password())
        .repo(FakeRepo::new(
            "Backup",
            "Zeta-zeta",
            &server.url("dst/Backup/_git/Zeta-zeta"),
        ))
        .creator(Box::new(move |project, name| {
            let path = root.join("dst").join(project).join("_git").join(name);
            git(
                &root,
                &[
                    "init",
                    "--bare",
                    "-q",
                    "--initial-branch=main",
                    path.to_str().unwrap(),
                ],
            );
            format!(
                "http://127.0.0.1:{port}/dst/{}/_git/{}",
                seg(project),
                seg(name)
            )
        }))
        .start();
    // Azure Repos URLs: the project before /_git/ is where it is created.
    let template = format!("http://127.0.0.1:{port}/dst/Backup/_git/{{project}}-{{repo}}");
    let source_scope = source.scope_url();
    let dest_scope = dest.scope_url();
    let args = [
        "--source-kind",
        "azure-devops",
        &source_scope,
        &template,
        "--create-missing",
        "--dest-kind",
        "azure-devops",
        "--dest-scope",
        &dest_scope,
        "--filter",
        "^(Zeta|Fabrikam Fiber)/",
    ];
    let run = mirror_all(&server, &args);
    run.assert_code(0);
    let created: BTreeSet<String> = dest
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| {
            assert_eq!(s.path, "/mirror-org/Backup/_apis/git/repositories");
            let body: Value = serde_json::from_str(&s.body).unwrap();
            body["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        created,
        ["Fabrikam Fiber-API", "Fabrikam Fiber-Web App"]
            .map(String::from)
            .into()
    );
    for r in repos
        .iter()
        .filter(|r| r.project == "Zeta" || r.project == "Fabrikam Fiber")
    {
        let dst = server.repo_path(&format!("dst/Backup/_git/{}-{}", r.project, r.name));
        assert_same_refs(&src_path(&server, r), &dst);
    }
    assert_eq!(run.json()["totals"]["created"], 2, "{}", run.stdout);

    // Everything exists now: nothing is created again.
    mirror_all(&server, &args).assert_code(0);
    assert_eq!(
        dest.requests()
            .iter()
            .filter(|s| s.method == "POST")
            .count(),
        2
    );
}

/// A GitHub organization of `n` repositories named `repo-0`..., listed two
/// per page; each with one commit.
fn github_org(server: &GitServer, n: usize) -> (FakeForge, Vec<FakeRepo>) {
    let repos: Vec<FakeRepo> = (0..n)
        .map(|i| source_repo(server, "acme", &format!("repo-{i}"), 1))
        .collect();
    let mut builder = FakeForge::builder(Kind::GitHub, "acme", server.password());
    for r in &repos {
        builder = builder.repo(r.clone());
    }
    (builder.start(), repos)
}

#[test]
fn github_create_missing_forks_archives_and_bearer_tokens() {
    let server = GitServer::start();
    let (source, mut repos) = github_org(&server, 3);
    let mut fork = source_repo(&server, "acme", "a-fork", 1);
    fork.fork = true;
    let mut archived = source_repo(&server, "acme", "old-stuff", 1);
    archived.archived = true;
    repos.extend([fork, archived]);
    let source = {
        drop(source);
        let mut b = FakeForge::builder(Kind::GitHub, "acme", server.password());
        for r in &repos {
            b = b.repo(r.clone());
        }
        b.start()
    };
    let port = server.port();
    server.create_bare("dst/mirror/repo-0.git");
    let dest = creating_forge(&server, Kind::GitHub)
        .repo(FakeRepo::new(
            "mirror",
            "repo-0",
            &server.url("dst/mirror/repo-0.git"),
        ))
        .start();
    let template = format!("http://127.0.0.1:{port}/dst/mirror/{{repo}}.git");
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &source.scope_url(),
            &template,
            "--create-missing",
            "--dest-kind",
            "github",
            "--dest-scope",
            &dest.scope_url(),
            "--skip-forks",
        ],
    );
    run.assert_code(0);
    let posts: Vec<Value> = dest
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    let mut names: Vec<&str> = posts.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["old-stuff", "repo-1", "repo-2"]);
    assert!(posts.iter().all(|p| p["private"] == true));
    for r in repos.iter().filter(|r| !r.fork) {
        assert_same_refs(&src_path(&server, r), &dst_path(&server, "mirror", &r.name));
    }
    assert!(!dst_path(&server, "mirror", "a-fork").exists());
    assert!(run
        .results()
        .contains(&("acme/a-fork".to_owned(), "skipped".to_owned())));
    // GitHub's API gets the token as Bearer; git gets Basic.
    assert!(source
        .requests()
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {}", server.password()))));
    // Five repositories, two per page: three pages, linked by `Link`.
    assert_eq!(source.requests().len(), 3, "{:#?}", source.requests());

    // --skip-archived leaves the archive out.
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &source.scope_url(),
            &template,
            "--skip-forks",
            "--skip-archived",
        ],
    );
    run.assert_code(0);
    assert!(run
        .results()
        .contains(&("acme/old-stuff".to_owned(), "skipped".to_owned())));
}

#[test]
fn dry_run_changes_nothing_and_says_what_would() {
    let server = GitServer::start();
    let (fake, repos) = github_org(&server, 3);
    for r in &repos {
        server.create_bare(&format!("dst/acme/{}.git", r.name));
    }
    let template = dst_template(&server);
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &fake.scope_url(),
            &template,
            "--dry-run",
        ],
    );
    run.assert_code(3);
    for r in &repos {
        assert!(refs_of(&dst_path(&server, "acme", &r.name)).is_empty());
    }
    let report = run.json();
    assert_eq!(report["mode"], "dry-run");
    assert_eq!(report["totals"]["differs"], 3, "{report}");
    let refs = report["repositories"][0]["report"]["refs"]
        .as_array()
        .unwrap();
    assert!(refs.iter().all(|r| r["result"] == "planned"), "{report}");
}

#[test]
fn shards_are_disjoint_stable_and_cover_everything() {
    let server = GitServer::start();
    let (fake, repos) = github_org(&server, 9);
    let template = format!("{}/{{repo}}.git", server.root().join("nowhere").display());
    let list = |extra: &[&str]| {
        let scope = fake.scope_url();
        let mut args = vec!["--source-kind", "github", &scope, &template, "--dry-run"];
        args.extend_from_slice(extra);
        mirror_all(&server, &args).names()
    };
    let all = list(&[]);
    assert_eq!(all.len(), repos.len());
    let shards: Vec<BTreeSet<String>> = (1..=3)
        .map(|k| list(&["--shard", &format!("{k}/3")]))
        .collect();
    let mut union = BTreeSet::new();
    for shard in &shards {
        assert!(shard.is_disjoint(&union), "{shards:?}");
        union.extend(shard.iter().cloned());
    }
    assert_eq!(union, all);
    assert!(
        shards.iter().filter(|s| !s.is_empty()).count() >= 2,
        "{shards:?}"
    );
    assert_eq!(
        list(&["--shard", "2/3"]),
        shards[1],
        "the same share every time"
    );
}

#[test]
fn filter_and_skip_select_by_project_and_name() {
    let server = GitServer::start();
    let (fake, _) = github_org(&server, 4);
    let template = format!("{}/{{repo}}.git", server.root().join("backup").display());
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &fake.scope_url(),
            &template,
            "--filter",
            "^acme/repo-[0-2]$",
            "--skip",
            "1$",
        ],
    );
    run.assert_code(0);
    assert_eq!(
        run.names(),
        ["acme/repo-0", "acme/repo-2"].map(String::from).into()
    );
    // A local template makes bare backups.
    assert!(!refs_of(&server.root().join("backup/repo-0.git")).is_empty());
}

#[test]
fn api_errors_name_the_api_and_what_to_do() {
    let server = GitServer::start();
    let (fake, _) = azure_org(&server);
    let template = dst_template(&server);

    let mut cmd = relay();
    cmd.args([
        "mirror-all",
        "--source-kind",
        "azure-devops",
        &fake.scope_url(),
        &template,
    ])
    .env("GIT_RELAY_SOURCE_TOKEN", "wrong-token-123");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Azure DevOps API") && stderr.contains("401"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("PAT"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-token-123"), "{stderr}");

    let (github, _) = github_org(&server, 1);
    let scope = github.scope_url().replace("/acme", "/no-such-org");
    let run = mirror_all(&server, &["--source-kind", "github", &scope, &template]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("GitHub API") && run.stderr.contains("not found (HTTP 404)"),
        "{}",
        run.stderr
    );
    assert!(run.json()["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("organization"));

    let run = mirror_all(&server, &["https://git.example.com/acme", &template]);
    run.assert_code(2);
    assert!(run.stderr.contains("--source-kind"), "{}", run.stderr);

    // Two repositories that the template sends to one place.
    let twins = [
        source_repo(&server, "acme/a", "same", 1),
        source_repo(&server, "acme/b", "same", 1),
    ];
    let gitlab = fake_with(Kind::GitLab, "acme", &server, &twins);
    let flat = format!("http://127.0.0.1:{}/dst/{{repo}}.git", server.port());
    let run = mirror_all(
        &server,
        &["--source-kind", "gitlab", &gitlab.scope_url(), &flat],
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("acme/a/same and acme/b/same would both be mirrored"),
        "{}",
        run.stderr
    );
}

/// Discovery and paging of the other kinds, mirrored into local backups.
fn backup_sweep(server: &GitServer, fake: &FakeForge, kind: &str, extra: &[&str]) -> Run {
    let template = format!(
        "{}/{{project}}/{{repo}}.git",
        server.root().join("backup").display()
    );
    let mut args = vec!["--source-kind", kind];
    let scope = fake.scope_url();
    args.push(&scope);
    args.push(&template);
    args.extend_from_slice(extra);
    mirror_all(server, &args)
}

fn three_repos(server: &GitServer, project: &str) -> Vec<FakeRepo> {
    ["alpha", "beta", "gamma"]
        .iter()
        .map(|n| source_repo(server, project, n, 1))
        .collect()
}

fn fake_with(kind: Kind, owner: &str, server: &GitServer, repos: &[FakeRepo]) -> FakeForge {
    let mut b = FakeForge::builder(kind, owner, server.password());
    for r in repos {
        b = b.repo(r.clone());
    }
    b.start()
}

#[test]
fn gitlab_group_with_subgroups_pages_by_x_next_page() {
    let server = GitServer::start();
    let mut repos = three_repos(&server, "acme/platform");
    let mut archived = source_repo(&server, "acme/platform/legacy", "old", 1);
    archived.archived = true;
    repos.push(archived);
    let fake = fake_with(Kind::GitLab, "acme/platform", &server, &repos);
    let run = backup_sweep(&server, &fake, "gitlab", &["--skip-archived"]);
    run.assert_code(0);
    assert_eq!(
        run.results(),
        vec![
            ("acme/platform/alpha".into(), "updated".into()),
            ("acme/platform/beta".into(), "updated".into()),
            ("acme/platform/gamma".into(), "updated".into()),
            ("acme/platform/legacy/old".into(), "skipped".into()),
        ]
    );
    let pages: Vec<_> = fake.requests().iter().map(|s| s.query.clone()).collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("page=2") && pages[1].contains("include_subgroups=true"));
    let backup = server.root().join("backup/acme%2Fplatform/alpha.git");
    assert_same_refs(&src_path(&server, &repos[0]), &backup);
}

#[test]
fn bitbucket_cloud_workspace_pages_by_next() {
    let server = GitServer::start();
    let repos = three_repos(&server, "ws");
    let fake = fake_with(Kind::Bitbucket, "ws", &server, &repos);
    let api = fake.api_url();
    let run = backup_sweep(&server, &fake, "bitbucket", &["--source-api", &api]);
    run.assert_code(0);
    assert_eq!(
        run.names(),
        ["ws/alpha", "ws/beta", "ws/gamma"].map(String::from).into()
    );
    assert_eq!(fake.requests().len(), 2);
    // A user name was given, so the app-password form: Basic.
    assert!(fake.requests()[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Basic "));
}

#[test]
fn bitbucket_server_project_pages_by_next_page_start() {
    let server = GitServer::start();
    let repos = three_repos(&server, "PRJ");
    let fake = fake_with(Kind::BitbucketServer, "PRJ", &server, &repos);
    let run = backup_sweep(&server, &fake, "bitbucket-server", &[]);
    run.assert_code(0);
    assert_eq!(run.names().len(), 3);
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].query.contains("start=2"), "{seen:#?}");
}

#[test]
fn gitea_organization_pages_by_link() {
    let server = GitServer::start();
    let repos = three_repos(&server, "org");
    let fake = fake_with(Kind::Gitea, "org", &server, &repos);
    let run = backup_sweep(&server, &fake, "gitea", &[]);
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["updated"], 3);
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].path == "/api/v1/orgs/org/repos" && seen[0].query.contains("limit=50"));
    // Gitea documents `Authorization: token`; Basic with the token works too.
    assert!(seen[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Basic "));
}

#[test]
fn a_next_page_on_another_origin_gets_no_credentials() {
    let server = GitServer::start();
    let repos = three_repos(&server, "org");
    let mut builder = FakeForge::builder(Kind::Gitea, "org", server.password());
    for r in &repos {
        builder = builder.repo(r.clone());
    }
    let fake = builder.links_on_localhost().start();
    let run = backup_sweep(&server, &fake, "gitea", &[]);
    run.assert_code(1);
    assert!(run.stderr.contains("http://localhost:"), "{}", run.stderr);
    // The next page, on `localhost`, would have been answered by the same
    // fake, and with the token.
    assert_eq!(
        fake.requests().len(),
        1,
        "only the first page was asked for"
    );
}

#[test]
fn a_clone_url_on_another_host_gets_no_credentials() {
    let server = GitServer::start();
    let mut repos = three_repos(&server, "org");
    // What a hostile API could answer: the token would go to that host.
    repos[1].clone_url = repos[1].clone_url.replace("127.0.0.1", "localhost");
    let fake = fake_with(Kind::Gitea, "org", &server, &repos);
    let run = backup_sweep(&server, &fake, "gitea", &[]);
    run.assert_code(1);
    assert_eq!(
        run.results(),
        vec![
            ("org/alpha".into(), "updated".into()),
            ("org/beta".into(), "failed".into()),
            ("org/gamma".into(), "updated".into()),
        ]
    );
    assert!(run.stderr.contains("not sent there"), "{}", run.stderr);
    let beta = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/beta.git/"))
        .count();
    assert_eq!(beta, 0);
}

/// The wall time of a no-op sweep over 200 repositories, with 1 and with 8
/// parallel mirrors (`cargo test --release --test mirror_all -- --ignored
/// --nocapture`). Not a pass/fail test: it prints the numbers.
#[test]
#[ignore]
fn noop_sweep_of_200_repositories() {
    let server = GitServer::start();
    let work = WorkRepo::new();
    work.commit("one");
    work.tag("v1");
    let mut builder = FakeForge::builder(Kind::GitHub, "acme", server.password()).page_size(100);
    for i in 0..200 {
        let name = format!("repo-{i:03}");
        work.push_mirror_to(&server.create_bare(&format!("src/acme/{name}.git")));
        server.create_bare(&format!("dst/acme/{name}.git"));
        let url = server.url(&format!("src/acme/{name}.git"));
        builder = builder.repo(FakeRepo::new("acme", &name, &url));
    }
    let fake = builder.start();
    let template = dst_template(&server);
    let scope = fake.scope_url();
    let sweep = |jobs: &str| {
        let started = std::time::Instant::now();
        let run = mirror_all(
            &server,
            &[
                "--source-kind",
                "github",
                &scope,
                &template,
                "-j",
                jobs,
                "-q",
            ],
        );
        let took = started.elapsed();
        run.assert_code(0);
        (took, run)
    };
    let (first, _) = sweep("8");
    let (one, run) = sweep("1");
    assert_eq!(run.json()["totals"]["in_sync"], 200);
    let (eight, run) = sweep("8");
    assert_eq!(run.json()["totals"]["in_sync"], 200);
    eprintln!(
        "200 repositories: first mirror (-j 8) {first:.2?}; no-op -j 1 {one:.2?}; no-op -j 8 {eight:.2?}"
    );
}

#[test]
fn a_backup_whose_repository_disappeared_is_kept_and_reported() {
    let server = GitServer::start();
    let repos = three_repos(&server, "org");
    let fake = fake_with(Kind::Gitea, "org", &server, &repos);
    backup_sweep(&server, &fake, "gitea", &[]).assert_code(0);

    // A repository deleted at the source still has its backup from last night.
    let gone = server.root().join("backup/org/deleted-at-source.git");
    git(
        server.root(),
        &["init", "-q", "--bare", &gone.to_string_lossy()],
    );
    let run = backup_sweep(&server, &fake, "gitea", &[]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("kept") && run.stderr.contains("deleted-at-source.git"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("alpha.git: its repository"),
        "{}",
        run.stderr
    );
    assert!(gone.join("HEAD").is_file(), "the backup is still there");
}

/// A fake destination forge for the `mirror` owner whose repository
/// creation makes a bare repository under `dst/` on the real git server.
fn creating_forge(server: &GitServer, kind: Kind) -> forge::Builder {
    let root = server.root().to_owned();
    let port = server.port();
    FakeForge::builder(kind, "mirror", server.password()).creator(Box::new(move |project, name| {
        let path = forge::bare_path(&root.join("dst"), project, name);
        git(
            &root,
            &[
                "init",
                "--bare",
                "-q",
                "--initial-branch=main",
                path.to_str().unwrap(),
            ],
        );
        format!(
            "http://127.0.0.1:{port}/dst/{}/{}.git",
            seg(project),
            seg(name)
        )
    }))
}

/// `--create-missing` into a GitLab group or a Gitea organization: the
/// missing repositories are created private through the API, then filled.
fn create_missing_into(kind: Kind, kind_name: &str) -> Vec<Value> {
    let server = GitServer::start();
    let (source, repos) = github_org(&server, 2);
    let port = server.port();
    let dest = creating_forge(&server, kind).start();
    let template = format!("http://127.0.0.1:{port}/dst/mirror/{{repo}}.git");
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &source.scope_url(),
            &template,
            "--create-missing",
            "--dest-kind",
            kind_name,
            "--dest-scope",
            &dest.scope_url(),
        ],
    );
    run.assert_code(0);
    for r in &repos {
        assert_same_refs(&src_path(&server, r), &dst_path(&server, "mirror", &r.name));
    }
    let posts: Vec<Value> = dest
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    posts
}

#[test]
fn gitlab_create_missing_makes_private_projects_in_the_group() {
    let posts = create_missing_into(Kind::GitLab, "gitlab");
    assert!(posts
        .iter()
        .all(|p| p["visibility"] == "private" && p["namespace_id"] == 42));
}

#[test]
fn gitea_create_missing_makes_private_repositories_in_the_organization() {
    let posts = create_missing_into(Kind::Gitea, "gitea");
    assert!(posts.iter().all(|p| p["private"] == true));
}

/// A GitHub organization `acme` of three repositories whose default branch
/// is `trunk` (beside `main`, which a new repository defaults to).
fn trunk_org(server: &GitServer) -> (FakeForge, Vec<FakeRepo>) {
    let repos: Vec<FakeRepo> = (0..3)
        .map(|i| {
            let mut r = source_repo(server, "acme", &format!("repo-{i}"), 1);
            git(&src_path(server, &r), &["branch", "trunk", "main"]);
            r.default_branch = Some("trunk".to_owned());
            r
        })
        .collect();
    (fake_with(Kind::GitHub, "acme", server, &repos), repos)
}

/// A sweep from [`trunk_org`] into a `kind` destination that has `repo-2`
/// already and creates the others; returns the run and the destination.
fn created_into(
    server: &GitServer,
    kind: Kind,
    kind_name: &str,
    configure: impl FnOnce(forge::Builder) -> forge::Builder,
    extra: &[&str],
) -> (Run, FakeForge) {
    let (source, _) = trunk_org(server);
    let port = server.port();
    let root = server.root().to_owned();
    // Azure Repos URLs name the project before `/_git/`.
    let (template, existing) = if kind == Kind::AzureDevOps {
        (
            format!("http://127.0.0.1:{port}/dst/Backup/_git/{{repo}}"),
            "dst/Backup/_git/repo-2".to_owned(),
        )
    } else {
        (
            format!("http://127.0.0.1:{port}/dst/mirror/{{repo}}.git"),
            "dst/mirror/repo-2.git".to_owned(),
        )
    };
    server.create_bare(&existing);
    let project = if kind == Kind::AzureDevOps {
        "Backup"
    } else {
        "mirror"
    };
    let builder = FakeForge::builder(kind, "mirror", server.password())
        .repo(FakeRepo::new(project, "repo-2", &server.url(&existing)))
        .creator(Box::new(move |project, name| {
            let relative = if kind == Kind::AzureDevOps {
                format!("dst/{project}/_git/{name}")
            } else {
                format!("dst/{project}/{name}.git")
            };
            let path = root.join(&relative);
            git(
                &root,
                &[
                    "init",
                    "--bare",
                    "-q",
                    "--initial-branch=main",
                    path.to_str().unwrap(),
                ],
            );
            let url_path: Vec<String> = relative.split('/').map(seg).collect();
            format!("http://127.0.0.1:{port}/{}", url_path.join("/"))
        }));
    let dest = configure(builder).start();
    let (source_scope, dest_scope, api) = (source.scope_url(), dest.scope_url(), dest.api_url());
    let mut args = vec![
        "--source-kind",
        "github",
        &source_scope,
        &template,
        "--create-missing",
        "--dest-kind",
        kind_name,
        "--dest-scope",
        &dest_scope,
    ];
    if kind == Kind::Bitbucket {
        args.extend(["--dest-api", &api]);
    }
    args.extend_from_slice(extra);
    (mirror_all(server, &args), dest)
}

/// The default-branch calls the destination saw: `(method, path, body)`.
fn default_branch_calls(dest: &FakeForge) -> Vec<(String, String, Value)> {
    dest.requests()
        .into_iter()
        .filter(|s| s.method == "PATCH" || s.method == "PUT")
        .map(|s| (s.method, s.path, serde_json::from_str(&s.body).unwrap()))
        .collect()
}

/// After `--create-missing`, each created repository (and only those) got
/// the source's default branch through `method path-of(repo) body`.
fn default_branch_is_set(
    kind: Kind,
    kind_name: &str,
    method: &str,
    path_of: impl Fn(&FakeRepo) -> String,
    body: Value,
) {
    let server = GitServer::start();
    let (run, dest) = created_into(&server, kind, kind_name, |b| b, &[]);
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["created"], 2, "{}", run.stdout);
    let created: Vec<FakeRepo> = dest
        .repos()
        .into_iter()
        .filter(|r| r.name != "repo-2")
        .collect();
    let mut expected: Vec<(String, String, Value)> = created
        .iter()
        .map(|r| (method.to_owned(), path_of(r), body.clone()))
        .collect();
    let mut seen = default_branch_calls(&dest);
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    seen.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(seen, expected, "{:#?}", dest.requests());
    for r in &created {
        assert_eq!(r.default_branch.as_deref(), Some("trunk"), "{r:?}");
    }
    let untouched = dest.repos().into_iter().find(|r| r.name == "repo-2");
    assert_eq!(untouched.unwrap().default_branch.as_deref(), Some("main"));
}

#[test]
fn github_created_repositories_get_the_source_default_branch() {
    default_branch_is_set(
        Kind::GitHub,
        "github",
        "PATCH",
        |r| format!("/api/v3/repos/mirror/{}", r.name),
        serde_json::json!({ "default_branch": "trunk" }),
    );
}

#[test]
fn gitea_created_repositories_get_the_source_default_branch() {
    default_branch_is_set(
        Kind::Gitea,
        "gitea",
        "PATCH",
        |r| format!("/api/v1/repos/mirror/{}", r.name),
        serde_json::json!({ "default_branch": "trunk" }),
    );
}

#[test]
fn gitlab_created_projects_get_the_source_default_branch() {
    default_branch_is_set(
        Kind::GitLab,
        "gitlab",
        "PUT",
        // `mirror%2Frepo-0` on the wire: the fake decodes the path.
        |r| format!("/api/v4/projects/mirror/{}", r.name),
        serde_json::json!({ "default_branch": "trunk" }),
    );
}

#[test]
fn azure_devops_created_repositories_get_the_source_default_branch() {
    default_branch_is_set(
        Kind::AzureDevOps,
        "azure-devops",
        "PATCH",
        // By id, which the fake derives from project and name.
        |r| {
            format!(
                "/mirror/Backup/_apis/git/repositories/{}",
                forge::azure_repo_id(r)
            )
        },
        serde_json::json!({ "defaultBranch": "refs/heads/trunk" }),
    );
}

#[test]
fn bitbucket_cloud_created_repositories_get_the_source_main_branch() {
    default_branch_is_set(
        Kind::Bitbucket,
        "bitbucket",
        "PUT",
        |r| format!("/2.0/repositories/mirror/{}", r.name),
        serde_json::json!({ "mainbranch": { "name": "trunk" } }),
    );
}

#[test]
fn bitbucket_server_created_repositories_get_the_source_default_branch() {
    default_branch_is_set(
        Kind::BitbucketServer,
        "bitbucket-server",
        "PUT",
        |r| {
            format!(
                "/rest/api/1.0/projects/mirror/repos/{}/default-branch",
                r.name
            )
        },
        serde_json::json!({ "id": "refs/heads/trunk" }),
    );
}

#[test]
fn a_refused_default_branch_is_a_warning_not_a_failure() {
    let server = GitServer::start();
    let (run, dest) = created_into(
        &server,
        Kind::GitHub,
        "github",
        |b| b.refuse_default_branch(),
        &[],
    );
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["totals"]["created"], 2, "{}", run.stdout);
    assert_eq!(json["totals"]["failed"], 0, "{}", run.stdout);
    assert_eq!(json["totals"]["warned"], 2, "{}", run.stdout);
    for r in json["repositories"].as_array().unwrap() {
        let warnings = r["warnings"].as_array();
        if r["name"] == "acme/repo-2" {
            assert!(warnings.is_none(), "{r:#}");
            continue;
        }
        assert_eq!(r["result"], "updated", "{r:#}");
        let warnings = warnings.unwrap();
        assert_eq!(warnings.len(), 1, "{r:#}");
        let text = warnings[0].as_str().unwrap();
        assert!(
            text.contains("default branch could not be set to trunk") && text.contains("HTTP 403"),
            "{text}"
        );
    }
    assert_eq!(default_branch_calls(&dest).len(), 2);
    assert!(
        run.stderr
            .contains("warning: acme/repo-0: the default branch"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_default_branch_left_out_of_the_selection_is_not_asked_for() {
    let server = GitServer::start();
    let (run, dest) = created_into(
        &server,
        Kind::GitHub,
        "github",
        |b| b,
        &["--exclude", "refs/heads/trunk"],
    );
    run.assert_code(0);
    assert_eq!(
        default_branch_calls(&dest),
        vec![],
        "{:#?}",
        dest.requests()
    );
    let json = run.json();
    assert_eq!(json["totals"]["warned"], 2, "{}", run.stdout);
    let warning = json["repositories"][0]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("not set to trunk: that branch was not mirrored"),
        "{warning}"
    );
}

#[test]
fn a_refused_create_keeps_its_hint_apart_from_the_reason() {
    let server = GitServer::start();
    let (source, _) = github_org(&server, 1);
    // No creator: the fake refuses to create, 403 as to a token without
    // the right to.
    let dest = FakeForge::builder(Kind::GitHub, "mirror", server.password()).start();
    let template = format!("http://127.0.0.1:{}/dst/mirror/{{repo}}.git", server.port());
    let run = mirror_all(
        &server,
        &[
            "--source-kind",
            "github",
            &source.scope_url(),
            &template,
            "--create-missing",
            "--dest-kind",
            "github",
            "--dest-scope",
            &dest.scope_url(),
        ],
    );
    run.assert_code(1);
    let repo = &run.json()["repositories"][0];
    assert_eq!(repo["result"], "failed", "{repo:#}");
    let reason = repo["reason"].as_str().unwrap();
    let hint = repo["hint"].as_str().unwrap();
    assert!(
        reason.starts_with("creating the destination:") && reason.contains("HTTP 403"),
        "{reason}"
    );
    assert!(hint.contains("may not do this"), "{hint}");
    assert!(
        !reason.contains(hint),
        "the hint is not repeated in the reason: {reason}"
    );
}

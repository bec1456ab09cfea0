//! `mirror-all` over Bitbucket Cloud with an Atlassian API token: its REST
//! API takes the token in Basic with the account's email, git over HTTPS
//! with the user name `x-bitbucket-api-token-auth` (and refuses the email).
//! The fake API (tests/support/forge.rs) and the git server each take only
//! their own pair, as Bitbucket Cloud does.

mod support;

use base64::Engine as _;
use support::forge::{seg, FakeForge, FakeRepo, Kind};
use support::*;

const EMAIL: &str = "dev@example.com";
const TOKEN: &str = "ATATT-api-token-Zq81";
const GIT_USER: &str = "x-bitbucket-api-token-auth";

fn basic(user: &str, secret: &str) -> String {
    let pair = format!("{user}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A git server that takes the API token as Bitbucket's git does.
fn git_server() -> GitServer {
    GitServer::builder().credentials(GIT_USER, TOKEN).start()
}

/// A repository with a commit and a tag at `src/WORKSPACE/NAME.git`.
fn source_repo(server: &GitServer, workspace: &str, name: &str) -> FakeRepo {
    let bare = server.create_bare(&format!("src/{workspace}/{name}.git"));
    let work = WorkRepo::new();
    work.commit_file("f.txt", format!("{name}\n").as_bytes(), "c");
    work.tag("v1");
    work.push_mirror_to(&bare);
    let url = server.url(&format!("src/{}/{}.git", seg(workspace), seg(name)));
    FakeRepo::new(workspace, name, &url)
}

/// A workspace `ws` of three repositories whose API takes the token with
/// the email only.
fn workspace(server: &GitServer) -> FakeForge {
    let mut builder = FakeForge::builder(Kind::Bitbucket, "ws", TOKEN).api_token_of(EMAIL);
    for name in ["alpha", "beta", "gamma"] {
        builder = builder.repo(source_repo(server, "ws", name));
    }
    builder.start()
}

fn backup_sweep(server: &GitServer, fake: &FakeForge, env: &[(&str, &str)]) -> Run {
    let template = format!("{}/{{repo}}.git", server.root().join("backup").display());
    let (scope, api) = (fake.scope_url(), fake.api_url());
    let args = [
        "mirror-all",
        "--source-kind",
        "bitbucket",
        &scope,
        &template,
        "--source-api",
        &api,
        "--json",
    ];
    run(&args, env)
}

fn assert_no_token(run: &Run) {
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!text.contains(TOKEN), "{name} shows the token:\n{text}");
        assert!(
            !text.contains("ATATT-api"),
            "{name} shows part of the token"
        );
    }
}

/// Every signed request of the git server, and of the fake API, carried
/// the pair each takes.
fn assert_pairs(server: &GitServer, fake: &FakeForge) {
    let git: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.authorization)
        .collect();
    assert!(!git.is_empty());
    assert!(git.iter().all(|a| *a == basic(GIT_USER, TOKEN)), "{git:?}");
    let api: Vec<_> = fake
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert!(!api.is_empty());
    assert!(
        api.iter()
            .all(|a| a.as_deref() == Some(&basic(EMAIL, TOKEN))),
        "{api:?}"
    );
}

#[test]
fn a_workspace_is_mirrored_with_an_api_token_and_the_account_email() {
    let server = git_server();
    let fake = workspace(&server);
    let env = [
        ("GIT_RELAY_SOURCE_USERNAME", EMAIL),
        ("GIT_RELAY_SOURCE_TOKEN", TOKEN),
    ];
    let run = backup_sweep(&server, &fake, &env);
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["updated"], 3, "{}", run.stdout);
    for name in ["alpha", "beta", "gamma"] {
        assert_eq!(
            refs_of(&server.root().join(format!("backup/{name}.git"))),
            refs_of(&server.repo_path(&format!("src/ws/{name}.git")))
        );
    }
    assert_pairs(&server, &fake);
    assert_no_token(&run);
}

#[test]
fn the_email_colon_token_form_works_alike() {
    let server = git_server();
    let fake = workspace(&server);
    let token = format!("{EMAIL}:{TOKEN}");
    let run = backup_sweep(&server, &fake, &[("GIT_RELAY_SOURCE_TOKEN", &token)]);
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["updated"], 3, "{}", run.stdout);
    assert_pairs(&server, &fake);
    assert_no_token(&run);
}

#[test]
fn the_git_user_name_with_an_api_token_is_refused_by_the_api_with_what_to_give() {
    let server = git_server();
    let fake = workspace(&server);
    // What works for git alone: the API wants the email.
    let env = [
        ("GIT_RELAY_SOURCE_USERNAME", GIT_USER),
        ("GIT_RELAY_SOURCE_TOKEN", TOKEN),
    ];
    let run = backup_sweep(&server, &fake, &env);
    run.assert_code(1);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Atlassian account email"),
        "{}",
        run.stderr
    );
    assert_no_token(&run);
}

#[test]
fn missing_repositories_are_created_in_a_workspace_and_pushed_with_an_api_token() {
    let server = git_server();
    let source = workspace(&server);
    let root = server.root().to_owned();
    let port = server.port();
    let dest = FakeForge::builder(Kind::Bitbucket, "mirror", TOKEN)
        .api_token_of(EMAIL)
        .creator(Box::new(move |_, name| {
            let path = root.join(format!("dst/mirror/{name}.git"));
            git(&root, &["init", "--bare", "-q", path.to_str().unwrap()]);
            format!("http://127.0.0.1:{port}/dst/mirror/{}.git", seg(name))
        }))
        .start();
    let template = format!("http://127.0.0.1:{port}/dst/mirror/{{repo}}.git");
    let (scope, api) = (source.scope_url(), source.api_url());
    let (dest_scope, dest_api) = (dest.scope_url(), dest.api_url());
    let args = [
        "mirror-all",
        "--source-kind",
        "bitbucket",
        &scope,
        &template,
        "--source-api",
        &api,
        "--create-missing",
        "--dest-kind",
        "bitbucket",
        "--dest-scope",
        &dest_scope,
        "--dest-api",
        &dest_api,
        "--json",
    ];
    let env = [
        ("GIT_RELAY_SOURCE_USERNAME", EMAIL),
        ("GIT_RELAY_SOURCE_TOKEN", TOKEN),
        ("GIT_RELAY_DEST_USERNAME", EMAIL),
        ("GIT_RELAY_DEST_TOKEN", TOKEN),
    ];
    let run = run(&args, &env);
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["created"], 3, "{}", run.stdout);
    for name in ["alpha", "beta", "gamma"] {
        assert_eq!(
            refs_of(&server.repo_path(&format!("dst/mirror/{name}.git"))),
            refs_of(&server.repo_path(&format!("src/ws/{name}.git")))
        );
    }
    // Listing, creating and setting the main branch: all with the email.
    let methods: Vec<_> = dest.requests().iter().map(|r| r.method.clone()).collect();
    assert!(methods.contains(&"POST".to_owned()), "{methods:?}");
    assert!(methods.contains(&"PUT".to_owned()), "{methods:?}");
    assert_pairs(&server, &dest);
    assert_pairs(&server, &source);
    assert_no_token(&run);
}

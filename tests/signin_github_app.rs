//! Signing in as a GitHub App (`--source-auth github-app`,
//! `--dest-auth github-app`) against a fake GitHub API that verifies the
//! app's JWTs with its public key and issues short-lived installation
//! tokens, and real git servers that accept only those tokens.
//!
//! The keys are the test-only ones under tests/fixtures/github-app.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use support::forge::{FakeForge, FakeRepo, Kind};
use support::*;

const APP_ID: &str = "12345";
const HOUR: Duration = Duration::from_secs(3600);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-app")
        .join(name)
}

fn key_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn key_path(name: &str) -> String {
    fixture(name).to_str().unwrap().to_owned()
}

/// A source repository `src/acme/widgets.git` with two commits and a tag,
/// and an empty destination `dst/mirror-org/widgets.git`.
fn repositories(server: &GitServer) -> (PathBuf, PathBuf) {
    let source = server.create_bare("src/acme/widgets.git");
    let work = WorkRepo::new();
    work.commit_file("a.txt", b"one\n", "one");
    work.commit_file("a.txt", b"two\n", "two");
    work.tag("v1");
    work.push_mirror_to(&source);
    (source, server.create_bare("dst/mirror-org/widgets.git"))
}

/// A GitHub that knows the app, installed on `installations`, whose
/// tokens live `life`; `server` takes them from now on.
fn github(server: &GitServer, installations: &[(&str, u64)], life: Duration) -> FakeForge {
    let fake = FakeForge::builder(Kind::GitHub, "acme", "not-a-token-anyone-sends")
        .github_app(APP_ID, &key_text("app-key.pem"), installations, life)
        .start();
    server.accept_tokens(fake.token_check());
    fake
}

/// `--source-auth github-app` (or `--dest-auth`) with the app's flags.
fn app_flags(side: &str, api: &str, key: &str) -> Vec<String> {
    [
        format!("--{side}-auth"),
        "github-app".into(),
        format!("--{side}-app-id"),
        APP_ID.into(),
        format!("--{side}-app-key"),
        key_path(key),
        format!("--{side}-app-api"),
        api.into(),
    ]
    .into()
}

fn run_with(args: &[String], env: &[(&str, &str)]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, env)
}

/// The JWTs the fake was shown (the `Bearer` of its app endpoints).
fn jwts(fake: &FakeForge) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.path.contains("installation"))
        .filter_map(|r| {
            r.authorization
                .as_deref()?
                .strip_prefix("Bearer ")
                .map(str::to_owned)
        })
        .collect()
}

/// No JWT, key line or installation token in what the run printed.
fn assert_no_secret(run: &Run, fakes: &[&FakeForge]) {
    let output = format!("{}\n{}", run.stdout, run.stderr);
    let mut secrets: Vec<String> = Vec::new();
    for fake in fakes {
        secrets.extend(jwts(fake));
        secrets.extend(fake.issued_tokens());
    }
    for key in ["app-key.pem", "app-key-pkcs8.pem", "other-key.pem"] {
        secrets.extend(
            key_text(key)
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
    }
    for secret in secrets {
        assert!(
            !output.contains(&secret),
            "a secret was printed: {secret}\n{output}"
        );
    }
}

#[test]
fn mirror_with_the_app_on_each_side() {
    let server = GitServer::start();
    let (source, destination) = repositories(&server);
    let fake = github(&server, &[("acme", 7), ("mirror-org", 8)], HOUR);
    let api = fake.github_api();
    let mut args = vec![
        "mirror".to_owned(),
        server.url("src/acme/widgets.git"),
        server.url("dst/mirror-org/widgets.git"),
        "--verbose".into(),
        "--json".into(),
    ];
    args.extend(app_flags("source", &api, "app-key.pem"));
    // The destination's key is PKCS#8, named by the environment.
    args.extend(
        [
            "--dest-auth",
            "github-app",
            "--dest-app-id",
            APP_ID,
            "--dest-app-api",
            &api,
        ]
        .map(String::from),
    );
    let key = key_path("app-key-pkcs8.pem");
    let run = run_with(&args, &[("GIT_RELAY_DEST_APP_KEY", &key)]);
    run.assert_code(0);
    assert_eq!(refs_of(&source), refs_of(&destination));
    // One installation token per side, for every request of the run.
    let tokens = fake.issued_tokens();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    let git = server.requests();
    assert!(git.len() >= 4, "{git:?}");
    for request in &git {
        assert_ne!(request.status, 401, "{request:?}");
        let header = request.authorization.as_deref().unwrap();
        let expected: Vec<String> = tokens
            .iter()
            .map(|t| format!("Basic {}", base64_of(&format!("x-access-token:{t}"))))
            .collect();
        assert!(expected.iter().any(|e| e == header), "{header}");
    }
    // The installation of the repository's owner was looked up, with a JWT.
    let paths: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        paths.contains(&"GET /api/v3/repos/acme/widgets/installation".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"GET /api/v3/repos/mirror-org/widgets/installation".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"POST /api/v3/app/installations/7/access_tokens".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"POST /api/v3/app/installations/8/access_tokens".to_owned()),
        "{paths:?}"
    );
    assert_no_secret(&run, &[&fake]);
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Runs `mirror` of acme/widgets with the app on `side` (the other side
/// signs in as the server's user) and checks that it failed with exit
/// code 1 naming the side and the app, changed nothing and printed no
/// secret; returns the run.
fn failing_mirror(
    server: &GitServer,
    fake: &FakeForge,
    side: &str,
    app_id: &str,
    key: &str,
) -> Run {
    let before = refs_of(&server.repo_path("dst/mirror-org/widgets.git"));
    let mut args = vec![
        "mirror".to_owned(),
        server.url("src/acme/widgets.git"),
        server.url("dst/mirror-org/widgets.git"),
        "--verbose".into(),
    ];
    let flag = if side == "source" { "source" } else { "dest" };
    let mut flags = app_flags(flag, &fake.github_api(), key);
    flags[3] = app_id.to_owned();
    args.extend(flags);
    let other = if side == "source" { "DEST" } else { "SOURCE" };
    let (token, user) = (
        format!("GIT_RELAY_{other}_TOKEN"),
        format!("GIT_RELAY_{other}_USERNAME"),
    );
    let run = run_with(
        &args,
        &[(&token, server.password()), (&user, server.username())],
    );
    run.assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("{side}'s GitHub App {app_id}")),
        "{}",
        run.stderr
    );
    assert_eq!(
        refs_of(&server.repo_path("dst/mirror-org/widgets.git")),
        before
    );
    assert_no_secret(&run, &[fake]);
    run
}

#[test]
fn a_wrong_key_is_refused_naming_the_side_and_the_app() {
    let server = GitServer::start();
    repositories(&server);
    let fake = github(&server, &[("acme", 7), ("mirror-org", 8)], HOUR);
    let run = failing_mirror(&server, &fake, "source", APP_ID, "other-key.pem");
    assert!(
        run.stderr.contains("A JSON web token could not be decoded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("private keys"),
        "the hint: {}",
        run.stderr
    );
    assert!(fake.issued_tokens().is_empty());
    // No git request went out for the side that could not sign in.
    assert!(server.requests().iter().all(|r| !r.path.contains("src/")));
}

#[test]
fn a_revoked_app_key_is_refused() {
    let server = GitServer::start();
    repositories(&server);
    let fake = github(&server, &[("acme", 7), ("mirror-org", 8)], HOUR);
    fake.revoke_app_key();
    let run = failing_mirror(&server, &fake, "destination", APP_ID, "app-key.pem");
    assert!(
        run.stderr.contains("A JSON web token could not be decoded"),
        "{}",
        run.stderr
    );
    assert!(fake.issued_tokens().is_empty());
}

#[test]
fn an_unknown_app_is_refused() {
    let server = GitServer::start();
    repositories(&server);
    let fake = github(&server, &[("acme", 7), ("mirror-org", 8)], HOUR);
    let run = failing_mirror(&server, &fake, "source", "99999", "app-key.pem");
    assert!(
        run.stderr.contains("Integration not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_app_not_installed_on_the_owner_says_so() {
    let server = GitServer::start();
    repositories(&server);
    let fake = github(&server, &[("acme", 7)], HOUR);
    let run = failing_mirror(&server, &fake, "destination", APP_ID, "app-key.pem");
    assert!(
        run.stderr
            .contains("not installed on the repository mirror-org/widgets"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Install App"),
        "the hint: {}",
        run.stderr
    );
    assert!(fake.issued_tokens().is_empty());
}

#[test]
fn the_app_id_and_key_are_required() {
    let run = run(
        &[
            "mirror",
            "/a",
            "/b",
            "--source-auth",
            "github-app",
            "--source-app-id",
            "1",
        ],
        &[],
    );
    run.assert_code(2);
    assert!(run.stderr.contains("--source-app-key"), "{}", run.stderr);
}

#[test]
fn an_unreadable_key_file_is_named() {
    let server = GitServer::start();
    repositories(&server);
    let fake = github(&server, &[("acme", 7), ("mirror-org", 8)], HOUR);
    let run = failing_mirror(&server, &fake, "source", APP_ID, "no-such-key.pem");
    assert!(run.stderr.contains("no-such-key.pem"), "{}", run.stderr);
    assert!(fake.requests().is_empty());
}

/// `src/acme/repo-N.git` for N < `n`, one commit and a tag each, as the
/// GitHub fake lists them.
fn acme_repos(server: &GitServer, n: usize) -> Vec<FakeRepo> {
    (0..n)
        .map(|i| {
            let name = format!("repo-{i}");
            let bare = server.create_bare(&format!("src/acme/{name}.git"));
            let work = WorkRepo::new();
            work.commit_file("f.txt", format!("{name}\n").as_bytes(), "c");
            work.tag("v1");
            work.push_mirror_to(&bare);
            FakeRepo::new("acme", &name, &server.url(&format!("src/acme/{name}.git")))
        })
        .collect()
}

fn bearer_tokens(fake: &FakeForge, path_part: &str) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.path.contains(path_part))
        .map(|r| r.authorization.clone().unwrap_or_default())
        .collect()
}

#[test]
fn mirror_all_lists_and_mirrors_with_the_app_on_the_source() {
    let server = GitServer::start();
    let repos = acme_repos(&server, 3);
    let mut builder = FakeForge::builder(Kind::GitHub, "acme", "not-a-token-anyone-sends")
        .github_app(APP_ID, &key_text("app-key.pem"), &[("acme", 7)], HOUR);
    for r in &repos {
        builder = builder.repo(r.clone());
        server.create_bare(&format!("dst/acme/{}.git", r.name));
    }
    let fake = builder.start();
    server.accept_tokens(fake.token_check());
    let template = format!("http://127.0.0.1:{}/dst/acme/{{repo}}.git", server.port());
    let mut args = vec![
        "mirror-all".to_owned(),
        "--source-kind".into(),
        "github".into(),
        fake.scope_url(),
        template,
        "--json".into(),
        "--verbose".into(),
    ];
    args.extend(app_flags("source", &fake.github_api(), "app-key.pem"));
    let run = run_with(
        &args,
        &[
            ("GIT_RELAY_DEST_TOKEN", server.password()),
            ("GIT_RELAY_DEST_USERNAME", server.username()),
        ],
    );
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["updated"], 3, "{}", run.stdout);
    for r in &repos {
        assert_eq!(
            refs_of(&server.repo_path(&format!("src/acme/{}.git", r.name))),
            refs_of(&server.repo_path(&format!("dst/acme/{}.git", r.name)))
        );
    }
    // One token, found through the organization's installation, listed
    // the repositories (as a bearer token) and read every one of them.
    let tokens = fake.issued_tokens();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let listing = bearer_tokens(&fake, "/orgs/acme/repos");
    assert!(!listing.is_empty());
    assert!(
        listing
            .iter()
            .all(|h| *h == format!("Bearer {}", tokens[0])),
        "{listing:?}"
    );
    assert!(!bearer_tokens(&fake, "/orgs/acme/installation").is_empty());
    let reads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/src/"))
        .collect();
    assert!(reads.len() >= 6, "{reads:?}");
    let basic = format!(
        "Basic {}",
        base64_of(&format!("x-access-token:{}", tokens[0]))
    );
    assert!(
        reads
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&basic)),
        "{reads:?}"
    );
    assert_no_secret(&run, &[&fake]);
}

#[test]
fn mirror_all_creates_missing_repositories_with_the_app_on_the_destination() {
    let server = GitServer::start();
    let repos = acme_repos(&server, 2);
    let mut builder = FakeForge::builder(Kind::GitHub, "acme", "not-a-token-anyone-sends")
        .github_app(APP_ID, &key_text("app-key.pem"), &[("acme", 7)], HOUR);
    for r in &repos {
        builder = builder.repo(r.clone());
    }
    let source = builder.start();
    let (root, port) = (server.root().to_owned(), server.port());
    // Another GitHub, where the same app is installed on `mirror`.
    let dest = FakeForge::builder(Kind::GitHub, "mirror", "not-a-token-anyone-sends")
        .github_app(APP_ID, &key_text("app-key.pem"), &[("mirror", 9)], HOUR)
        .creator(Box::new(move |_, name| {
            let path = root.join("dst/mirror").join(format!("{name}.git"));
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
            format!("http://127.0.0.1:{port}/dst/mirror/{name}.git")
        }))
        .start();
    let (a, b) = (source.token_check(), dest.token_check());
    server.accept_tokens(Arc::new(move |user, token| {
        a(user, token) || b(user, token)
    }));
    let mut args = vec![
        "mirror-all".to_owned(),
        "--source-kind".into(),
        "github".into(),
        source.scope_url(),
        format!("http://127.0.0.1:{port}/dst/mirror/{{repo}}.git"),
        "--create-missing".into(),
        "--dest-kind".into(),
        "github".into(),
        "--dest-scope".into(),
        dest.scope_url(),
        "--json".into(),
    ];
    args.extend(app_flags("source", &source.github_api(), "app-key.pem"));
    // The destination's app API is the --dest-scope's.
    args.extend(["--dest-auth", "github-app", "--dest-app-id", APP_ID].map(String::from));
    args.extend(["--dest-app-key".to_owned(), key_path("app-key.pem")]);
    let run = run_with(&args, &[]);
    run.assert_code(0);
    for r in &repos {
        assert_eq!(
            refs_of(&server.repo_path(&format!("src/acme/{}.git", r.name))),
            refs_of(&server.repo_path(&format!("dst/mirror/{}.git", r.name)))
        );
    }
    let tokens = dest.issued_tokens();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let creates: Vec<_> = dest
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v3/orgs/mirror/repos")
        .collect();
    assert_eq!(creates.len(), 2);
    assert!(creates
        .iter()
        .all(|r| r.status == 201 && r.authorization == Some(format!("Bearer {}", tokens[0]))));
    let pushes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/git-receive-pack"))
        .collect();
    assert_eq!(pushes.len(), 2);
    let basic = format!(
        "Basic {}",
        base64_of(&format!("x-access-token:{}", tokens[0]))
    );
    assert!(pushes
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&basic)));
    assert_no_secret(&run, &[&source, &dest]);
}

#[test]
fn a_token_that_expires_mid_run_is_replaced() {
    let server = GitServer::start();
    let (source, destination) = repositories(&server);
    // The destination takes longer to store the push than its tokens live.
    install_hook(&destination, "pre-receive", "cat >/dev/null\nsleep 4\n");
    let life = Duration::from_secs(3);
    let fake = github(&server, &[("acme", 7), ("mirror-org", 8)], life);
    let api = fake.github_api();
    let mut args = vec![
        "mirror".to_owned(),
        server.url("src/acme/widgets.git"),
        server.url("dst/mirror-org/widgets.git"),
    ];
    args.extend(app_flags("source", &api, "app-key.pem"));
    args.extend(app_flags("dest", &api, "app-key.pem"));
    let run = run_with(&args, &[]);
    run.assert_code(0);
    assert_eq!(refs_of(&source), refs_of(&destination));
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.status != 401), "{requests:?}");
    // The listing that confirms the push came after the push's token had
    // expired (the server refuses expired tokens): it was signed with
    // another.
    let push = requests
        .iter()
        .position(|r| r.path.ends_with("/git-receive-pack"))
        .expect("a push");
    let after = requests[push + 1..]
        .iter()
        .find(|r| r.path.starts_with("/dst/"))
        .expect("a listing after the push");
    assert_ne!(after.authorization, requests[push].authorization);
    assert!(
        fake.issued_tokens().len() >= 3,
        "{:?}",
        fake.issued_tokens()
    );
    assert_no_secret(&run, &[&fake]);
}

#[test]
fn mirror_all_without_the_apps_installation_stops_before_mirroring() {
    let server = GitServer::start();
    let repos = acme_repos(&server, 1);
    let fake = FakeForge::builder(Kind::GitHub, "acme", "not-a-token-anyone-sends")
        .github_app(
            APP_ID,
            &key_text("app-key.pem"),
            &[("someone-else", 3)],
            HOUR,
        )
        .repo(repos[0].clone())
        .start();
    server.accept_tokens(fake.token_check());
    let template = format!("http://127.0.0.1:{}/dst/acme/{{repo}}.git", server.port());
    let mut args = vec![
        "mirror-all".to_owned(),
        "--source-kind".into(),
        "github".into(),
        fake.scope_url(),
        template,
        "--json".into(),
    ];
    args.extend(app_flags("source", &fake.github_api(), "app-key.pem"));
    let run = run_with(&args, &[]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("source's GitHub App 12345")
            && run.stderr.contains("not installed on the account acme"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.json()["error"]["hint"]
            .as_str()
            .map(|h| h.contains("Install App")),
        Some(true),
        "{}",
        run.stdout
    );
    // Neither the listing nor any git request went out.
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.path.ends_with("/installation")));
    assert!(server.requests().is_empty());
    assert_no_secret(&run, &[&fake]);
}

/// A JWT with these claims, signed with the key in `key_file` (RS256
/// unless `alg` says otherwise).
fn signed_jwt(key_file: &str, alg: &str, claims: serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pem = key_text(key_file);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let key = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    let head = serde_json::json!({ "alg": alg, "typ": "JWT" });
    let signed = format!(
        "{}.{}",
        b64.encode(head.to_string()),
        b64.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    let rng = ring::rand::SystemRandom::new();
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &rng,
        signed.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{signed}.{}", b64.encode(signature))
}

/// The fake refuses what GitHub refuses, so that the tests above could
/// fail: a JWT signed by another key, for another app, expired, valid too
/// long, or not RS256.
#[test]
fn the_fake_checks_jwts_as_github_does() {
    let server = GitServer::start();
    let fake = github(&server, &[("acme", 7)], HOUR);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        |iss: &str, iat: u64, exp: u64| serde_json::json!({ "iss": iss, "iat": iat, "exp": exp });
    let status = |jwt: &str| {
        let url = format!("{}/orgs/acme/installation", fake.github_api());
        match ureq::get(&url)
            .set("Authorization", &format!("Bearer {jwt}"))
            .call()
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    let good = claims(APP_ID, now - 60, now + 540);
    assert_eq!(
        status(&signed_jwt("app-key.pem", "RS256", good.clone())),
        200
    );
    assert_eq!(
        status(&signed_jwt("other-key.pem", "RS256", good.clone())),
        401
    );
    assert_eq!(status(&signed_jwt("app-key.pem", "RS512", good)), 401);
    let cases = [
        claims("999", now - 60, now + 540),
        claims(APP_ID, now - 700, now - 100),
        claims(APP_ID, now, now + 1200),
        claims(APP_ID, now + 300, now + 540),
    ];
    for c in cases {
        assert_eq!(
            status(&signed_jwt("app-key.pem", "RS256", c.clone())),
            401,
            "{c}"
        );
    }
    // Installation tokens are refused to git once they expire.
    let short = FakeForge::builder(Kind::GitHub, "acme", "x")
        .github_app(
            APP_ID,
            &key_text("app-key.pem"),
            &[("acme", 7)],
            Duration::from_secs(1),
        )
        .start();
    let check = short.token_check();
    let url = format!("{}/app/installations/7/access_tokens", short.github_api());
    let jwt = signed_jwt("app-key.pem", "RS256", claims(APP_ID, now - 60, now + 540));
    let answer = ureq::post(&url)
        .set("Authorization", &format!("Bearer {jwt}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let token = answer["token"].as_str().unwrap();
    assert!(answer["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(check(Some("x-access-token"), token));
    assert!(!check(Some("someone"), token));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!check(Some("x-access-token"), token));
}

#[test]
fn a_sweeps_workers_share_one_token() {
    let server = GitServer::start();
    let repos = acme_repos(&server, 4);
    let mut builder = FakeForge::builder(Kind::GitHub, "acme", server.password());
    for r in &repos {
        builder = builder.repo(r.clone());
        server.create_bare(&format!("dst/acme-mirror/{}.git", r.name));
    }
    let source = builder.start();
    // The destination signs in with the app only for git, from four
    // workers at once.
    let dest = FakeForge::builder(Kind::GitHub, "acme-mirror", "not-a-token-anyone-sends")
        .github_app(
            APP_ID,
            &key_text("app-key.pem"),
            &[("acme-mirror", 5)],
            HOUR,
        )
        .start();
    server.accept_tokens(dest.token_check());
    let mut args = vec![
        "mirror-all".to_owned(),
        "--source-kind".into(),
        "github".into(),
        source.scope_url(),
        format!(
            "http://127.0.0.1:{}/dst/acme-mirror/{{repo}}.git",
            server.port()
        ),
        "-j".into(),
        "4".into(),
        "--json".into(),
    ];
    args.extend(app_flags("dest", &dest.github_api(), "app-key.pem"));
    let run = run_with(
        &args,
        &[
            ("GIT_RELAY_SOURCE_TOKEN", server.password()),
            ("GIT_RELAY_SOURCE_USERNAME", server.username()),
        ],
    );
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["updated"], 4, "{}", run.stdout);
    assert_eq!(dest.issued_tokens().len(), 1, "{:?}", dest.issued_tokens());
    // One installation lookup: the account's installation serves its
    // other repositories.
    let lookups = dest
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/installation"))
        .count();
    assert_eq!(lookups, 1);
    assert_no_secret(&run, &[&dest]);
}

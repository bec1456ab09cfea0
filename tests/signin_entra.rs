//! `--source-auth entra` / `--dest-auth entra`: signing in to Azure DevOps
//! with Microsoft Entra ID, without a personal access token.
//!
//! A fake Entra ID (tests/support/entra.rs) verifies the federated token
//! (a JWT it can check the signature of) and the application and tenant,
//! or answers as a machine's instance metadata endpoint, and issues
//! short-lived access tokens; the git servers (`git http-backend`) and the
//! fake Azure DevOps API accept only those, and only until they expire.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::entra::{App, FakeEntra};
use support::forge::{seg, FakeForge, FakeRepo, Kind};
use support::*;

/// Azure's variables that would change what a run signs in as.
const AZURE_VARS: &[&str] = &[
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
];

fn app(tenant: &str, client_id: &str) -> App {
    App {
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        issuer: "https://oidc.prod-aks.azure.com/11111111-2222-3333-4444-555555555555/".to_owned(),
        subject: "system:serviceaccount:mirrors:git-relay".to_owned(),
    }
}

/// Runs git-relay with `env` and no ambient Azure identity.
fn relay_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(args, &[]);
    for name in AZURE_VARS {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run git-relay").into()
}

/// A federated token file, as Kubernetes projects one.
struct TokenFile {
    dir: tempfile::TempDir,
}

impl TokenFile {
    fn new(token: &str) -> TokenFile {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
        TokenFile { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("token").to_str().unwrap().to_owned()
    }
}

fn heads_and_tags(repo: &Path) -> Vec<(String, String)> {
    refs_of(repo)
        .into_iter()
        .filter(|(name, _)| name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
        .collect()
}

fn assert_mirrored(server: &GitServer, dst: &str) {
    let (src, dst) = (server.repo_path("src.git"), server.repo_path(dst));
    assert_eq!(heads_and_tags(&src), heads_and_tags(&dst));
    assert!(!heads_and_tags(&dst).is_empty());
}

/// The bearer tokens the git server was sent.
fn bearers_seen(server: &GitServer) -> BTreeSet<String> {
    server
        .requests()
        .iter()
        .map(|r| {
            let auth = r.authorization.clone().unwrap_or_default();
            auth.strip_prefix("Bearer ")
                .unwrap_or_else(|| panic!("a request not signed with a bearer token: {r:?}"))
                .to_owned()
        })
        .collect()
}

/// No secret of the run in anything it printed.
fn assert_no_secret(run: &Run, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
            "a secret was printed\n--- stderr\n{}\n--- stdout\n{}",
            run.stderr,
            run.stdout
        );
    }
}

#[test]
fn workload_identity_mirrors_end_to_end_with_a_different_identity_per_side() {
    let tokens = BearerTokens::default();
    let (source_app, dest_app) = (app("tenant-src", "app-src"), app("tenant-dst", "app-dst"));
    let entra = FakeEntra::builder(&tokens)
        .app(&source_app)
        .app(&dest_app)
        .start();
    let server = GitServer::builder().bearer_tokens(&tokens).start();
    populated_source(&server);
    server.create_bare("dst.git");
    let assertion = entra.federated_token(&source_app, 600);
    let file = TokenFile::new(&assertion);
    let authority = entra.url();
    let env = [
        ("AZURE_FEDERATED_TOKEN_FILE", file.path()),
        ("AZURE_CLIENT_ID", "app-src".to_owned()),
        ("AZURE_TENANT_ID", "tenant-src".to_owned()),
        ("AZURE_AUTHORITY_HOST", authority),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let run = relay_with(
        &[
            "mirror",
            &src,
            &dst,
            "--source-auth",
            "entra",
            "--dest-auth",
            "entra",
            "--dest-entra-client-id",
            "app-dst",
            "--dest-entra-tenant",
            "tenant-dst",
            "--verbose",
        ],
        &env,
    );
    run.assert_code(0);
    assert_mirrored(&server, "dst.git");
    // One token for each identity, each from its own tenant.
    let asked: Vec<String> = entra.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            &"/tenant-dst/oauth2/v2.0/token".to_owned(),
            &"/tenant-src/oauth2/v2.0/token".to_owned()
        ])
    );
    let issued = entra.issued();
    assert_eq!(issued.len(), 2, "{:?}", entra.requests());
    assert_eq!(bearers_seen(&server), issued.iter().cloned().collect());
    let mut secrets = issued;
    secrets.push(assertion);
    assert_no_secret(&run, &secrets);
}

#[test]
fn managed_identity_mirrors_end_to_end() {
    let tokens = BearerTokens::default();
    let entra = FakeEntra::builder(&tokens)
        .managed_identity(None)
        .managed_identity(Some("mi-dest"))
        .start();
    let server = GitServer::builder().bearer_tokens(&tokens).start();
    populated_source(&server);
    server.create_bare("dst.git");
    // A throttled endpoint is asked again.
    entra.throttle_metadata(1);
    let host = entra.url();
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let run = relay_with(
        &[
            "mirror",
            &src,
            &dst,
            "--source-auth",
            "entra",
            "--dest-auth",
            "entra",
            "--dest-entra-client-id",
            "mi-dest",
            "--json",
        ],
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &host)],
    );
    run.assert_code(0);
    assert_mirrored(&server, "dst.git");
    let requests = entra.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests.iter().filter(|r| r.status == 429).count(), 1);
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.path == "/metadata/identity/oauth2/token"));
    let issued = entra.issued();
    assert_eq!(bearers_seen(&server), issued.iter().cloned().collect());
    assert_no_secret(&run, &issued);

    // A user-assigned identity the machine does not have is named.
    server.create_bare("dst2.git");
    let dst2 = server.url("dst2.git");
    let run = relay_with(
        &[
            "mirror",
            &src,
            &dst2,
            "--source-auth",
            "entra",
            "--dest-auth",
            "entra",
            "--dest-entra-client-id",
            "mi-unknown",
        ],
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &host)],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains("destination")
            && run.stderr.contains("the managed identity mi-unknown"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Identity not found"), "{}", run.stderr);
    assert!(heads_and_tags(&server.repo_path("dst2.git")).is_empty());
}

#[test]
fn a_run_longer_than_a_token_signs_later_requests_with_a_fresh_one() {
    let tokens = BearerTokens::default();
    let source_app = app("tenant-src", "app-src");
    // Tokens are replaced two minutes before they expire: one living 122
    // seconds is used for 2 seconds, and the git server takes it until it
    // expires.
    let entra = FakeEntra::builder(&tokens)
        .app(&source_app)
        .lifetime(Duration::from_secs(122))
        .start();
    let server = GitServer::builder().bearer_tokens(&tokens).start();
    populated_source(&server);
    server.create_bare("dst.git");
    // Each exchange with the git server costs 0.8 s or more: the run lasts
    // several seconds.
    let far = DelayProxy::start(server.port(), Duration::from_millis(400));
    // The federated token lives 3 seconds and is replaced every second,
    // as Kubernetes rotates it: a later exchange works only if the file is
    // read again.
    let entra = Arc::new(entra);
    let assertion = entra.federated_token(&source_app, 3);
    let file = TokenFile::new(&assertion);
    let (path, authority) = (file.path(), entra.url());
    let written = Arc::new(Mutex::new(vec![assertion]));
    let stop = Arc::new(AtomicBool::new(false));
    let rotation = {
        let (entra, app, path) = (entra.clone(), source_app.clone(), path.clone());
        let (written, stop) = (written.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1000));
                let next = entra.federated_token(&app, 3);
                let staged = format!("{path}.new");
                std::fs::write(&staged, &next).unwrap();
                std::fs::rename(&staged, &path).unwrap();
                written.lock().unwrap().push(next);
            }
        })
    };
    let env = [
        ("AZURE_FEDERATED_TOKEN_FILE", path.as_str()),
        ("AZURE_CLIENT_ID", "app-src"),
        ("AZURE_TENANT_ID", "tenant-src"),
        ("AZURE_AUTHORITY_HOST", &authority),
    ];
    let (src, dst) = (far.url("src.git"), far.url("dst.git"));
    let started = std::time::Instant::now();
    let run = relay_with(
        &[
            "mirror",
            &src,
            &dst,
            "--source-auth",
            "entra",
            "--dest-auth",
            "entra",
            "--json",
        ],
        &env,
    );
    stop.store(true, Ordering::SeqCst);
    rotation.join().unwrap();
    run.assert_code(0);
    assert!(started.elapsed() > Duration::from_secs(4));
    assert_mirrored(&server, "dst.git");
    let issued = entra.issued();
    assert!(issued.len() > 2, "one token per side at most: {issued:?}");
    let seen = bearers_seen(&server);
    assert!(seen.len() > 2, "git saw {} tokens", seen.len());
    assert!(seen.iter().all(|t| issued.contains(t)));
    let mut secrets = issued;
    secrets.extend(written.lock().unwrap().iter().cloned());
    assert_no_secret(&run, &secrets);
}

#[test]
fn a_wrong_tenant_client_or_subject_is_a_clear_error_and_changes_nothing() {
    let tokens = BearerTokens::default();
    let source_app = app("tenant-src", "app-src");
    let entra = FakeEntra::builder(&tokens).app(&source_app).start();
    let server = GitServer::builder().bearer_tokens(&tokens).start();
    populated_source(&server);
    server.create_bare("dst.git");
    let assertion = entra.federated_token(&source_app, 600);
    let file = TokenFile::new(&assertion);
    let (path, authority) = (file.path(), entra.url());
    let env = [
        ("AZURE_FEDERATED_TOKEN_FILE", path.as_str()),
        ("AZURE_CLIENT_ID", "app-src"),
        ("AZURE_TENANT_ID", "tenant-src"),
        ("AZURE_AUTHORITY_HOST", &authority),
    ];
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let mirror = |extra: &[&str]| {
        let mut args = vec![
            "mirror",
            &src,
            &dst,
            "--source-auth",
            "entra",
            "--dest-auth",
            "entra",
        ];
        args.extend_from_slice(extra);
        relay_with(&args, &env)
    };

    let wrong_tenant = mirror(&["--source-entra-tenant", "tenant-nowhere"]);
    wrong_tenant.assert_code(1);
    let err = &wrong_tenant.stderr;
    assert!(err.starts_with("error: source ("), "{err}");
    assert!(
        err.contains("the Entra application app-src (tenant tenant-nowhere)"),
        "{err}"
    );
    assert!(err.contains("AADSTS90002"), "{err}");

    let wrong_client = mirror(&["--dest-entra-client-id", "app-other"]);
    wrong_client.assert_code(1);
    let err = &wrong_client.stderr;
    assert!(err.starts_with("error: destination ("), "{err}");
    assert!(
        err.contains("the Entra application app-other (tenant tenant-src)"),
        "{err}"
    );
    assert!(err.contains("AADSTS700016"), "{err}");
    assert!(err.contains("check the application (client) id"), "{err}");

    // A token from another subject than the federated credential names.
    let stranger = entra.token_with(
        &serde_json::json!({
            "aud": support::entra::EXCHANGE_AUDIENCE,
            "iss": source_app.issuer,
            "sub": "system:serviceaccount:other:intruder",
        }),
        600,
    );
    std::fs::write(&path, &stranger).unwrap();
    let wrong_subject = mirror(&["--json"]);
    wrong_subject.assert_code(1);
    let report = wrong_subject.json();
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("AADSTS70021"), "{message}");
    assert!(
        message.contains("the Entra application app-src (tenant tenant-src)"),
        "{message}"
    );
    assert!(report["error"]["hint"].as_str().is_some(), "{report}");

    // Nothing was pushed, and git never saw a request it would refuse.
    assert!(heads_and_tags(&server.repo_path("dst.git")).is_empty());
    assert!(server
        .requests()
        .iter()
        .all(|r| r.service() != Some("git-receive-pack") || r.method == "GET"));
    assert!(server.requests().iter().all(|r| r.status != 401));
    for run in [&wrong_tenant, &wrong_client, &wrong_subject] {
        assert_no_secret(run, &[assertion.clone(), stranger.clone()]);
        assert_no_secret(run, &entra.issued());
    }
}

#[test]
fn mirror_all_over_azure_devops_signs_in_with_entra() {
    let tokens = BearerTokens::default();
    let source_app = app("tenant-src", "app-src");
    let entra = FakeEntra::builder(&tokens).app(&source_app).start();
    let server = GitServer::builder().bearer_tokens(&tokens).start();
    let mut repos = Vec::new();
    for (project, name) in [("Fabrikam", "web"), ("Fabrikam", "api"), ("Tools", "cli")] {
        let bare = server.create_bare(&format!("src/{project}/{name}.git"));
        let work = WorkRepo::new();
        work.commit_file("f.txt", format!("{project} {name}\n").as_bytes(), "c");
        work.tag("v1");
        work.push_mirror_to(&bare);
        server.create_bare(&format!("dst/{project}/{name}.git"));
        let url = server.url(&format!("src/{}/{}.git", seg(project), seg(name)));
        repos.push(FakeRepo::new(project, name, &url));
    }
    // The API takes no password at all: only Entra's tokens.
    let mut builder =
        FakeForge::builder(Kind::AzureDevOps, "fabrikam", "no-pat-here").bearer_tokens(&tokens);
    for r in &repos {
        builder = builder.repo(r.clone());
    }
    let forge = builder.start();
    let assertion = entra.federated_token(&source_app, 600);
    let file = TokenFile::new(&assertion);
    let (path, authority) = (file.path(), entra.url());
    let env = [
        ("AZURE_FEDERATED_TOKEN_FILE", path.as_str()),
        ("AZURE_CLIENT_ID", "app-src"),
        ("AZURE_TENANT_ID", "tenant-src"),
        ("AZURE_AUTHORITY_HOST", &authority),
    ];
    let template = format!(
        "http://127.0.0.1:{}/dst/{{project}}/{{repo}}.git",
        server.port()
    );
    let run = relay_with(
        &[
            "mirror-all",
            "--source-kind",
            "azure-devops",
            &forge.scope_url(),
            &template,
            "--source-auth",
            "entra",
            "--dest-auth",
            "entra",
            "--jobs",
            "2",
            "--json",
            "--verbose",
        ],
        &env,
    );
    run.assert_code(0);
    for (project, name) in [("Fabrikam", "web"), ("Fabrikam", "api"), ("Tools", "cli")] {
        let src = server.repo_path(&format!("src/{project}/{name}.git"));
        let dst = server.repo_path(&format!("dst/{project}/{name}.git"));
        assert_eq!(heads_and_tags(&src), heads_and_tags(&dst));
        assert!(!heads_and_tags(&dst).is_empty());
    }
    // One token a side, shared by the API calls and every repository.
    let issued = entra.issued();
    assert_eq!(issued.len(), 2, "{:?}", entra.requests());
    let api: BTreeSet<String> = forge
        .requests()
        .iter()
        .map(|r| r.authorization.clone().unwrap_or_default())
        .collect();
    assert_eq!(api.len(), 1, "{api:?}");
    let api = api.into_iter().next().unwrap();
    assert!(issued.iter().any(|t| api == format!("Bearer {t}")));
    assert_eq!(bearers_seen(&server), issued.iter().cloned().collect());
    let mut secrets = issued;
    secrets.push(assertion);
    assert_no_secret(&run, &secrets);
}

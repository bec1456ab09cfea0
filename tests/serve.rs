//! `git-relay serve` end to end: the real binary, git's own http-backend
//! as source and destination, and webhook deliveries signed as each forge
//! signs them, all over HTTP on 127.0.0.1.
//!
//! Each test reads as one line of issue 16's "How to test it": what a
//! forge sends, what the server answers, and what the destination holds
//! afterwards. Secrets are distinctive strings, so the test of leaks can
//! look for them anywhere the process writes.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::forge::{FakeForge, FakeRepo, Kind};
use support::serve::{
    self, azure_delivery, azure_push, bitbucket_cloud_delivery, bitbucket_cloud_push,
    bitbucket_server_delivery, bitbucket_server_push, check_config, forgejo_delivery,
    gitea_delivery, gitea_push, github_delivery, github_event, github_ping, github_push,
    gitlab_delivery, gitlab_push, wait_until, without, AzureAuth, Headers, Metrics, Serve,
};
use support::{fsck_strict, git, install_hook, noise_history, refs_of, GitServer, WorkRepo};

// Distinctive secrets: none of them may ever be seen in what serve writes.
const GIT_PASSWORD: &str = "gitpw-Qm4Z81vR";
const GITHUB_SECRET: &str = "ghsec-J2x9Vw7T";
const GITLAB_TOKEN: &str = "gltok-P7r3Ks5N";
const AZURE_PASSWORD: &str = "azpw-H5c8Nt2L";
const AZURE_HEADER_VALUE: &str = "azhdr-W6d1Yq9F";
const BITBUCKET_SECRET: &str = "bbsec-R3k7Xe4M";
const GITEA_SECRET: &str = "gtsec-B8n2Uc6D";
const SECRETS: &[&str] = &[
    GIT_PASSWORD,
    GITHUB_SECRET,
    GITLAB_TOKEN,
    AZURE_PASSWORD,
    AZURE_HEADER_VALUE,
    BITBUCKET_SECRET,
    GITEA_SECRET,
];

/// How long a run that moves a commit may take on a loaded machine.
const RUN: Duration = Duration::from_secs(15);
/// The `max-body` of the test configs.
const MAX_BODY: usize = 64 * 1024;

const GITHUB: &str = r#"
[webhooks.github]
secret = { env = "TEST_GITHUB_SECRET" }
"#;
const GITLAB: &str = r#"
[webhooks.gitlab]
token = { env = "TEST_GITLAB_TOKEN" }
"#;
const AZURE_BASIC: &str = r#"
[webhooks.azure-devops]
username = "relay"
password = { env = "TEST_AZURE_PASSWORD" }
"#;
const AZURE_HEADER: &str = r#"
[webhooks.azure-devops]
header = "X-Relay-Key"
value = { env = "TEST_AZURE_HEADER_VALUE" }
"#;
const BITBUCKET: &str = r#"
[webhooks.bitbucket]
secret = { env = "TEST_BITBUCKET_SECRET" }
"#;
const GITEA: &str = r#"
[webhooks.gitea]
secret = { env = "TEST_GITEA_SECRET" }
"#;

/// A git server whose password is one of the secrets.
fn git_server() -> GitServer {
    GitServer::builder()
        .credentials("alice", GIT_PASSWORD)
        .start()
}

/// A source repository with one commit at `src/NAME.git` and an empty
/// destination at `dst/NAME.git`, on one server.
struct Pair {
    name: String,
    work: WorkRepo,
    src: PathBuf,
    dst: PathBuf,
    source_url: String,
    dest_url: String,
}

impl Pair {
    fn new(server: &GitServer, name: &str) -> Pair {
        let work = WorkRepo::new();
        work.commit(&format!("{name}: first"));
        let src = server.create_bare(&format!("src/{name}.git"));
        work.push_mirror_to(&src);
        let dst = server.create_bare(&format!("dst/{name}.git"));
        Pair {
            name: name.to_owned(),
            work,
            src,
            dst,
            source_url: server.url(&format!("src/{name}.git")),
            dest_url: server.url(&format!("dst/{name}.git")),
        }
    }

    /// Pushes a new commit to the source; returns its oid.
    fn push(&self, message: &str) -> String {
        let oid = self.work.commit(message);
        self.work.push_mirror_to(&self.src);
        oid
    }

    fn in_sync(&self) -> bool {
        refs_of(&self.src) == refs_of(&self.dst)
    }

    /// The `[[mirror]]` entry, credentials by reference.
    fn entry(&self) -> String {
        format!(
            r#"
[[mirror]]
name = "{}"
source = "{}"
destination = "{}"
source-username = "alice"
source-token = {{ env = "TEST_GIT_TOKEN" }}
dest-username = "alice"
dest-token = {{ env = "TEST_GIT_TOKEN" }}
"#,
            self.name, self.source_url, self.dest_url
        )
    }
}

/// A config listening on a free port of 127.0.0.1, polling off unless
/// `top` says otherwise, with `top` (top-level keys), the webhook
/// `sections` and one `[[mirror]]` per pair.
fn config(top: &str, sections: &[&str], pairs: &[&Pair]) -> String {
    let mut text = format!("listen = \"127.0.0.1:0\"\nmax-body = \"64KiB\"\n{top}\n");
    if !top.contains("poll") {
        text.push_str("poll = \"off\"\n");
    }
    for s in sections {
        text.push_str(s);
    }
    for p in pairs {
        text.push_str(&p.entry());
    }
    text
}

/// Every secret the configs name, in the environment they are read from.
fn with_secrets(builder: serve::ServeBuilder) -> serve::ServeBuilder {
    builder
        .env("TEST_GIT_TOKEN", GIT_PASSWORD)
        .env("TEST_GITHUB_SECRET", GITHUB_SECRET)
        .env("TEST_GITLAB_TOKEN", GITLAB_TOKEN)
        .env("TEST_AZURE_PASSWORD", AZURE_PASSWORD)
        .env("TEST_AZURE_HEADER_VALUE", AZURE_HEADER_VALUE)
        .env("TEST_BITBUCKET_SECRET", BITBUCKET_SECRET)
        .env("TEST_GITEA_SECRET", GITEA_SECRET)
}

fn start(config: &str) -> Serve {
    with_secrets(Serve::builder(config)).start()
}

/// Waits until the destination holds the source's refs.
fn assert_syncs(serve: &Serve, pair: &Pair, within: Duration, what: &str) {
    assert!(
        wait_until(within, || pair.in_sync()),
        "{what}: {} not mirrored within {within:?}\n--- source\n{:?}\n--- destination\n{:?}\n--- /status.json\n{:#}\n--- stderr\n{}",
        pair.name,
        refs_of(&pair.src),
        refs_of(&pair.dst),
        serve.status(),
        serve.stderr()
    );
}

/// `body` with a `padding` field that makes it `len` bytes or more: a
/// well-formed payload too large to be accepted.
fn padded(body: &[u8], len: usize) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
    value["padding"] = "x".repeat(len).into();
    value.to_string().into_bytes()
}

/// A body cut short: not JSON.
const MALFORMED: &[u8] = br#"{"ref": "refs/heads/main", "repository": {"clone_url": "#;

fn webhooks(m: &Metrics, forge: &str, result: &str) -> f64 {
    m.sum(
        "git_relay_serve_webhooks_total",
        &[("forge", forge), ("result", result)],
    )
}

fn runs(m: &Metrics) -> f64 {
    m.sum("git_relay_serve_runs_total", &[])
}

/// One forge's webhook as the per-forge test needs it.
struct Forge {
    /// `/hooks/<path>`.
    path: &'static str,
    /// The config section.
    section: &'static str,
    /// A delivery signed (or carrying the credentials) as configured.
    sign: fn(&[u8]) -> Headers,
    /// The same delivery with a wrong signature or credential.
    wrong: fn(&[u8]) -> Headers,
    /// The header that carries the signature or credential.
    credential: &'static str,
    /// The push payload for a clone URL and the new oid of `main`.
    push: fn(&str, &str) -> Vec<u8>,
}

/// The per-forge checklist: wrong signature 401, missing 401, a valid
/// delivery 202 and the destination updated, its replay 409, an oversized
/// body 413, malformed JSON validly signed 400, and `webhooks_total`
/// counting each.
fn deliveries(forge: Forge) {
    let server = git_server();
    let pair = Pair::new(&server, "widgets");
    let serve = start(&config("", &[forge.section], &[&pair]));
    serve.wait_idle(RUN);
    assert!(pair.in_sync(), "the startup check mirrors");
    assert_eq!(
        serve.mirror_status("widgets").unwrap()["last_run"]["cause"],
        "startup",
        "{:#}",
        serve.status()
    );

    let after = pair.push("second");
    let body = (forge.push)(&pair.source_url, &after);
    let hook = |headers: &Headers, body: &[u8]| serve.post_hook(forge.path, headers, body);

    let (code, text) = hook(&(forge.wrong)(&body), &body);
    assert_eq!(code, 401, "wrong signature: {text}");
    let (code, text) = hook(&without(&(forge.sign)(&body), forge.credential), &body);
    assert_eq!(code, 401, "no signature: {text}");
    assert!(!pair.in_sync(), "no delivery refused so far ran a mirror");

    let valid = (forge.sign)(&body);
    let (code, text) = hook(&valid, &body);
    assert_eq!(code, 202, "valid delivery: {text}");
    assert_syncs(&serve, &pair, RUN, "after a valid delivery");

    let (code, text) = hook(&valid, &body);
    assert_eq!(code, 409, "replay of the valid delivery: {text}");

    let big = padded(&(forge.push)(&pair.source_url, &after), MAX_BODY + 1024);
    let (code, text) = hook(&(forge.sign)(&big), &big);
    assert_eq!(code, 413, "body over max-body: {text}");

    let (code, text) = hook(&(forge.sign)(MALFORMED), MALFORMED);
    assert_eq!(code, 400, "malformed JSON, validly signed: {text}");

    let m = serve.metrics();
    let label = forge.path;
    for (result, n) in [
        ("bad_signature", 1.0),
        ("unsigned", 1.0),
        ("replay", 1.0),
        ("oversized", 1.0),
        ("malformed", 1.0),
    ] {
        assert_eq!(
            webhooks(&m, label, result),
            n,
            "webhooks_total{{forge={label},result={result}}}\n{:#?}",
            m.samples
        );
    }
    assert_eq!(
        webhooks(&m, label, "queued") + webhooks(&m, label, "coalesced"),
        1.0,
        "the valid delivery is queued (or coalesced) once\n{:#?}",
        m.samples
    );
}

#[test]
fn github_deliveries_are_verified_and_counted() {
    deliveries(Forge {
        path: "github",
        section: GITHUB,
        sign: |body| github_delivery(GITHUB_SECRET, body),
        wrong: |body| github_delivery("not-the-secret", body),
        credential: "X-Hub-Signature-256",
        push: |url, after| github_push(url, "refs/heads/main", after),
    });
}

#[test]
fn gitlab_deliveries_are_verified_and_counted() {
    deliveries(Forge {
        path: "gitlab",
        section: GITLAB,
        sign: |_| gitlab_delivery(GITLAB_TOKEN),
        wrong: |_| gitlab_delivery("not-the-token"),
        credential: "X-Gitlab-Token",
        push: |url, after| gitlab_push(url, "refs/heads/main", after),
    });
}

#[test]
fn azure_devops_deliveries_with_basic_auth_are_verified_and_counted() {
    deliveries(Forge {
        path: "azure-devops",
        section: AZURE_BASIC,
        sign: |_| azure_delivery(AzureAuth::Basic("relay", AZURE_PASSWORD)),
        wrong: |_| azure_delivery(AzureAuth::Basic("relay", "not-the-password")),
        credential: "Authorization",
        push: |url, after| azure_push(url, "refs/heads/main", after),
    });
}

#[test]
fn azure_devops_deliveries_with_a_header_are_verified_and_counted() {
    deliveries(Forge {
        path: "azure-devops",
        section: AZURE_HEADER,
        sign: |_| azure_delivery(AzureAuth::Header("X-Relay-Key", AZURE_HEADER_VALUE)),
        wrong: |_| azure_delivery(AzureAuth::Header("X-Relay-Key", "not-the-value")),
        credential: "X-Relay-Key",
        push: |url, after| azure_push(url, "refs/heads/main", after),
    });
}

#[test]
fn bitbucket_cloud_deliveries_are_verified_and_counted() {
    deliveries(Forge {
        path: "bitbucket",
        section: BITBUCKET,
        sign: |body| bitbucket_cloud_delivery(BITBUCKET_SECRET, body),
        wrong: |body| bitbucket_cloud_delivery("not-the-secret", body),
        credential: "X-Hub-Signature",
        push: |url, after| bitbucket_cloud_push(url, "main", after),
    });
}

#[test]
fn bitbucket_server_deliveries_are_verified_and_counted() {
    deliveries(Forge {
        path: "bitbucket",
        section: BITBUCKET,
        sign: |body| bitbucket_server_delivery(BITBUCKET_SECRET, body),
        wrong: |body| bitbucket_server_delivery("not-the-secret", body),
        credential: "X-Hub-Signature",
        push: |url, after| bitbucket_server_push(url, "refs/heads/main", after),
    });
}

#[test]
fn gitea_deliveries_are_verified_and_counted() {
    deliveries(Forge {
        path: "gitea",
        section: GITEA,
        sign: |body| gitea_delivery(GITEA_SECRET, body),
        wrong: |body| gitea_delivery("not-the-secret", body),
        credential: "X-Gitea-Signature",
        push: |url, after| gitea_push(url, "refs/heads/main", after),
    });
}

#[test]
fn forgejo_deliveries_are_verified_and_counted() {
    deliveries(Forge {
        path: "gitea",
        section: GITEA,
        sign: |body| forgejo_delivery(GITEA_SECRET, body),
        wrong: |body| forgejo_delivery("not-the-secret", body),
        credential: "X-Forgejo-Signature",
        push: |url, after| gitea_push(url, "refs/heads/main", after),
    });
}

/// A ping and a push for a repository no mirror follows need no run (200);
/// a forge without a section is not there (404); each is counted.
#[test]
fn events_that_need_no_run_are_answered_and_counted() {
    let server = git_server();
    let pair = Pair::new(&server, "widgets");
    let serve = start(&config("", &[GITHUB], &[&pair]));
    serve.wait_idle(RUN);
    let runs_before = runs(&serve.metrics());

    let ping = github_ping(&pair.source_url);
    let (code, text) =
        serve.post_hook("github", &github_event("ping", GITHUB_SECRET, &ping), &ping);
    assert_eq!(code, 200, "ping: {text}");

    let elsewhere = server.url("src/not-mirrored.git");
    let body = github_push(&elsewhere, "refs/heads/main", &pair.work.rev_parse("HEAD"));
    let (code, text) = serve.post_hook("github", &github_delivery(GITHUB_SECRET, &body), &body);
    assert_eq!(code, 200, "push for a repository no mirror follows: {text}");
    assert!(
        text.to_ascii_lowercase().contains("unknown") || text.contains("not-mirrored"),
        "the answer says which repository is unknown: {text}"
    );

    let body = gitlab_push(&pair.source_url, "refs/heads/main", "0".repeat(40).as_str());
    let (code, text) = serve.post_hook("gitlab", &gitlab_delivery(GITLAB_TOKEN), &body);
    assert_eq!(code, 404, "a forge without a section: {text}");

    let m = serve.metrics();
    assert_eq!(webhooks(&m, "github", "ignored"), 1.0, "{:#?}", m.samples);
    assert_eq!(
        webhooks(&m, "github", "unknown_repository"),
        1.0,
        "{:#?}",
        m.samples
    );
    assert_eq!(
        webhooks(&m, "gitlab", "not_configured"),
        1.0,
        "{:#?}",
        m.samples
    );
    assert_eq!(runs(&m), runs_before, "none of them ran a mirror");
}

/// A push to the source followed by its webhook is on the destination
/// within 2 seconds, with polling off.
#[test]
fn a_push_and_its_webhook_are_mirrored_within_two_seconds() {
    let server = git_server();
    let pair = Pair::new(&server, "widgets");
    // No spacing: what is measured is the run a webhook starts, not the
    // wait the default spacing may add right after the startup run.
    let serve = start(&config(
        "poll = \"off\"\nspacing = \"off\"",
        &[GITHUB],
        &[&pair],
    ));
    serve.wait_idle(RUN);

    let after = pair.push("second");
    let body = github_push(&pair.source_url, "refs/heads/main", &after);
    let sent = Instant::now();
    let (code, text) = serve.post_hook("github", &github_delivery(GITHUB_SECRET, &body), &body);
    assert_eq!(code, 202, "{text}");
    assert_syncs(
        &serve,
        &pair,
        Duration::from_secs(2),
        "2 s after the webhook",
    );
    eprintln!("push -> mirrored: {:?}", sent.elapsed());

    // The destination's refs move before the run reports its end.
    let observed = wait_until(RUN, || {
        serve
            .metrics()
            .sum("git_relay_serve_lag_seconds_count", &[])
            >= 1.0
    });
    assert!(
        observed,
        "the lag of the webhook's run is observed\n{:#?}",
        serve.metrics().samples
    );
}

/// 200 webhook events for 5 repositories within about a second coalesce
/// into at most 10 runs, and all 5 end in sync.
#[test]
fn a_burst_of_200_events_for_5_repositories_coalesces() {
    let server = git_server();
    let pairs: Vec<Pair> = (0..5)
        .map(|i| Pair::new(&server, &format!("repo-{i}")))
        .collect();
    let refs: Vec<&Pair> = pairs.iter().collect();
    let serve = start(&config("concurrency = 4", &[GITHUB], &refs));
    serve.wait_idle(RUN);
    let (rest, _) = serve.memory();
    let runs_before = runs(&serve.metrics());

    let bodies: Vec<Vec<u8>> = pairs
        .iter()
        .map(|p| github_push(&p.source_url, "refs/heads/main", &p.push("burst")))
        .collect();
    let started = Instant::now();
    let codes: Vec<u16> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..8)
            .map(|t| {
                let (serve, bodies) = (&serve, &bodies);
                s.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let body = &bodies[(t * 25 + i) % bodies.len()];
                            let headers = github_delivery(GITHUB_SECRET, body);
                            serve.post_hook("github", &headers, body).0
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = started.elapsed();
    let (_, peak) = serve.memory();
    eprintln!(
        "200 events sent in {took:?}; memory at rest {} KiB, peak {} KiB",
        rest / 1024,
        peak / 1024
    );
    assert_eq!(codes.len(), 200);
    // The bound of 10 holds for a burst shorter than the service's spacing
    // between two runs of one mirror (1 s): one run, then one that serves
    // every event that came during it.
    assert!(
        took < Duration::from_secs(1),
        "the machine could not send 200 events within one second ({took:?}): the premise of this test"
    );
    assert!(
        codes.iter().all(|&c| c == 202),
        "every event is queued or coalesced: {codes:?}"
    );

    for pair in &pairs {
        assert_syncs(&serve, pair, RUN, "after the burst");
    }
    serve.wait_idle(RUN);
    let m = serve.metrics();
    let burst_runs = runs(&m) - runs_before;
    eprintln!("the burst ran {burst_runs} mirrors");
    assert!(
        burst_runs <= 10.0,
        "200 events for 5 repositories ran {burst_runs} mirrors\n{:#?}",
        m.samples
    );
    assert_eq!(
        webhooks(&m, "github", "queued") + webhooks(&m, "github", "coalesced"),
        200.0,
        "{:#?}",
        m.samples
    );
}

/// With no webhook at all, polling picks a change up.
#[test]
fn polling_picks_up_a_change_without_a_webhook() {
    let server = git_server();
    let pair = Pair::new(&server, "widgets");
    let serve = start(&config("poll = \"1s\"", &[], &[&pair]));
    serve.wait_idle(RUN);
    pair.push("second");
    assert_syncs(&serve, &pair, Duration::from_secs(10), "with poll = 1s");
}

/// A source of about 50 MiB of incompressible blobs, and a destination
/// whose `pre-receive` hook sleeps `hook_sleep` seconds, so that a run is
/// surely in flight when the test acts.
fn large_pair(server: &GitServer, hook_sleep: u32) -> Pair {
    let pair = Pair::new(server, "large");
    noise_history(&pair.work, 50 << 20, 5);
    pair.work.push_mirror_to(&pair.src);
    install_hook(&pair.dst, "pre-receive", &format!("sleep {hook_sleep}\n"));
    pair
}

fn wait_running(serve: &Serve, name: &str) {
    let running = wait_until(RUN, || {
        serve
            .mirror_status(name)
            .is_some_and(|m| m["running"] == true)
    });
    assert!(
        running,
        "{name} never seen running\n{:#}\n{}",
        serve.status(),
        serve.stderr()
    );
}

fn assert_no_checkpoints(pair: &Pair) {
    let left: Vec<_> = refs_of(&pair.dst)
        .into_iter()
        .filter(|(name, _)| name.starts_with("refs/git-relay/"))
        .collect();
    assert!(left.is_empty(), "checkpoint refs left: {left:?}");
}

/// SIGTERM during a large transfer: webhooks and `/readyz` answer 503,
/// the running mirror finishes, the process exits 0 within the grace, the
/// destination is consistent, and the next start converges.
#[test]
fn sigterm_lets_a_large_transfer_finish_within_the_grace() {
    let server = git_server();
    let pair = large_pair(&server, 2);
    // A grace long enough for the whole transfer, even from a debug build
    // on a loaded machine (50 MiB took 12 to 35 s there).
    let text = config("grace = \"120s\"", &[GITHUB], &[&pair]);
    let mut serve = start(&text);
    wait_running(&serve, "large");

    let stopped = Instant::now();
    serve.terminate();
    let refused = wait_until(Duration::from_secs(5), || serve.get("/readyz").0 == 503);
    assert!(refused, "/readyz answers 503 while stopping");
    let body = github_push(
        &pair.source_url,
        "refs/heads/main",
        &pair.work.rev_parse("HEAD"),
    );
    let (code, answer) = serve.post_hook("github", &github_delivery(GITHUB_SECRET, &body), &body);
    assert_eq!(code, 503, "a webhook while stopping: {answer}");

    let status = serve.wait(Duration::from_secs(130));
    let status =
        status.unwrap_or_else(|| panic!("still running 130 s after SIGTERM\n{}", serve.stderr()));
    eprintln!("exited {:?} after SIGTERM", stopped.elapsed());
    assert_eq!(status.code(), Some(0), "exit status\n{}", serve.stderr());
    assert!(
        stopped.elapsed() < Duration::from_secs(120),
        "within the grace"
    );
    fsck_strict(&pair.dst);
    assert!(pair.in_sync(), "the running mirror was let finish");
    assert_no_checkpoints(&pair);

    // The next start converges (and has nothing to do).
    install_hook(&pair.dst, "pre-receive", "exit 0\n");
    let again = start(&text);
    again.wait_idle(RUN);
    assert!(pair.in_sync());
    let last = &again.mirror_status("large").unwrap()["last_run"];
    assert_eq!(last["result"], "ok", "{last:#}");
    assert_eq!(last["refs_changed"], 0, "{last:#}");
}

/// A mirror that cannot finish within the grace does not keep the process:
/// it stops soon after the grace, the destination is still consistent, and
/// the next start converges.
#[test]
fn sigterm_stops_after_the_grace_when_a_mirror_hangs() {
    let server = git_server();
    let pair = large_pair(&server, 10);
    let text = config("grace = \"2s\"", &[], &[&pair]);
    let mut serve = start(&text);
    wait_running(&serve, "large");

    let stopped = Instant::now();
    serve.terminate();
    let status = serve.wait(Duration::from_secs(10));
    let took = stopped.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 10 s after SIGTERM, grace 2 s\n{}",
            serve.stderr()
        )
    });
    eprintln!("exited {status} {took:?} after SIGTERM (grace 2 s)");
    fsck_strict(&pair.dst);

    install_hook(&pair.dst, "pre-receive", "exit 0\n");
    // The cut push may still hold the destination until its hook returns:
    // the next start retries until then.
    let again = start(&text.replace("poll = \"off\"", "poll = \"1s\""));
    assert_syncs(
        &again,
        &pair,
        Duration::from_secs(40),
        "the start after a cut run",
    );
    fsck_strict(&pair.dst);
    assert_no_checkpoints(&pair);
}

/// `/metrics` parses with every family of the design; `/status` and
/// `/status.json` list each mirror, a failing one with its error; and no
/// token, webhook secret or password appears in stderr, the status page,
/// its JSON or the metrics.
#[test]
fn status_and_metrics_list_every_mirror_and_leak_no_secret() {
    let server = git_server();
    let good = Pair::new(&server, "good");
    let mut bad = Pair::new(&server, "bad");
    bad.dest_url = server.url("dst/missing.git");
    let sections = [GITHUB, GITLAB, AZURE_BASIC, BITBUCKET, GITEA];
    let serve = start(&config(
        "retries = 1\nretry-delay = \"1s\"",
        &sections,
        &[&good, &bad],
    ));
    serve.wait_idle(RUN);

    // Deliveries, good and bad, through every endpoint.
    let after = good.push("second");
    let gh = github_push(&good.source_url, "refs/heads/main", &after);
    serve.post_hook("github", &github_delivery("wrong", &gh), &gh);
    serve.post_hook("github", &github_delivery(GITHUB_SECRET, &gh), &gh);
    let gl = gitlab_push(&good.source_url, "refs/heads/main", &after);
    serve.post_hook("gitlab", &gitlab_delivery("wrong"), &gl);
    serve.post_hook("gitlab", &gitlab_delivery(GITLAB_TOKEN), &gl);
    let az = azure_push(&good.source_url, "refs/heads/main", &after);
    serve.post_hook(
        "azure-devops",
        &azure_delivery(AzureAuth::Basic("relay", "wrong")),
        &az,
    );
    serve.post_hook(
        "azure-devops",
        &azure_delivery(AzureAuth::Basic("relay", AZURE_PASSWORD)),
        &az,
    );
    let bb = bitbucket_cloud_push(&good.source_url, "main", &after);
    serve.post_hook(
        "bitbucket",
        &bitbucket_cloud_delivery(BITBUCKET_SECRET, &bb),
        &bb,
    );
    let gt = gitea_push(&bad.source_url, "refs/heads/main", &after);
    serve.post_hook("gitea", &gitea_delivery(GITEA_SECRET, &gt), &gt);
    assert_syncs(&serve, &good, RUN, "after the deliveries");
    serve.wait_idle(RUN);

    let (code, page) = serve.get("/status");
    assert_eq!(code, 200, "{page}");
    let (code, json) = serve.get("/status.json");
    assert_eq!(code, 200, "{json}");
    let (code, metrics_text) = serve.get("/metrics");
    assert_eq!(code, 200, "{metrics_text}");
    for name in ["good", "bad"] {
        assert!(page.contains(name), "/status lists {name}\n{page}");
    }

    let status = serve.status();
    let good_status = serve.mirror_status("good").expect("good in /status.json");
    let bad_status = serve.mirror_status("bad").expect("bad in /status.json");
    assert_eq!(good_status["source"], good.source_url, "{status:#}");
    assert_eq!(good_status["destination"], good.dest_url, "{status:#}");
    assert_eq!(good_status["in_sync"], true, "{status:#}");
    assert_eq!(good_status["last_run"]["result"], "ok", "{status:#}");
    assert!(good_status["runs"].as_u64().unwrap() >= 2, "{status:#}");
    assert_eq!(bad_status["in_sync"], false, "{status:#}");
    assert_eq!(bad_status["last_run"]["result"], "failed", "{status:#}");
    assert!(bad_status["failures"].as_u64().unwrap() >= 1, "{status:#}");
    assert!(
        bad_status["last_run"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "the failing mirror's error is shown: {status:#}"
    );
    assert!(status["queue"]["queued"].is_u64(), "{status:#}");
    assert!(status["queue"]["running"].is_u64(), "{status:#}");

    let m = Metrics::parse(&metrics_text).unwrap_or_else(|e| panic!("{e}\n{metrics_text}"));
    for (family, kind) in [
        ("runs_total", "counter"),
        ("run_duration_seconds", "histogram"),
        ("refs_changed_total", "counter"),
        ("bytes_total", "counter"),
        ("lag_seconds", "histogram"),
        ("queue_depth", "gauge"),
        ("running", "gauge"),
        ("webhooks_total", "counter"),
        ("in_sync", "gauge"),
        ("last_run_timestamp_seconds", "gauge"),
    ] {
        let name = format!("git_relay_serve_{family}");
        let typed = m.types.get(&name).map(String::as_str);
        // The text format names a counter's family without `_total` too.
        let typed = typed.or_else(|| {
            m.types
                .get(name.trim_end_matches("_total"))
                .map(String::as_str)
        });
        assert_eq!(typed, Some(kind), "# TYPE of {name}\n{metrics_text}");
    }
    let get =
        |name: &str, mirror: &str| m.sum(&format!("git_relay_serve_{name}"), &[("mirror", mirror)]);
    assert!(
        m.sum(
            "git_relay_serve_runs_total",
            &[("mirror", "good"), ("result", "ok")]
        ) >= 2.0,
        "{metrics_text}"
    );
    assert!(
        m.sum(
            "git_relay_serve_runs_total",
            &[("mirror", "bad"), ("result", "failed")]
        ) >= 1.0,
        "{metrics_text}"
    );
    assert_eq!(get("in_sync", "good"), 1.0, "{metrics_text}");
    assert_eq!(get("in_sync", "bad"), 0.0, "{metrics_text}");
    assert!(get("refs_changed_total", "good") >= 2.0, "{metrics_text}");
    assert!(get("bytes_total", "good") > 0.0, "{metrics_text}");
    assert!(
        get("last_run_timestamp_seconds", "good") > 1.7e9,
        "{metrics_text}"
    );
    for result in ["queued", "bad_signature"] {
        assert!(webhooks(&m, "github", result) >= 1.0, "{metrics_text}");
    }

    let stderr = serve.stderr();
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    let mut secrets: Vec<String> = SECRETS.iter().map(|s| (*s).to_owned()).collect();
    secrets.push(basic("alice", GIT_PASSWORD));
    secrets.push(basic("relay", AZURE_PASSWORD));
    for (place, text) in [
        ("stderr", &stderr),
        ("/status", &page),
        ("/status.json", &json),
        ("/metrics", &metrics_text),
    ] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{secret} in {place}:\n{text}"
            );
        }
    }
}

/// Config errors exit 2 before listening, naming the entry and the key,
/// and never echo a secret.
#[test]
fn config_errors_exit_2_naming_the_entry() {
    let server = git_server();
    let pair = Pair::new(&server, "widgets");
    let entry = pair.entry();
    let base = "listen = \"127.0.0.1:0\"\npoll = \"off\"\n".to_owned();
    let cases = [
        (
            "a literal secret",
            format!(
                "{base}{}",
                entry.replace(
                    "source-token = { env = \"TEST_GIT_TOKEN\" }",
                    "source-token = \"tok-Literal-Zx81\""
                )
            ),
            vec!["source-token", "widgets"],
        ),
        (
            "an unknown top-level key",
            format!("{base}colour = \"blue\"\n{entry}"),
            vec!["colour"],
        ),
        (
            "an unknown flag in a mirror entry",
            format!("{base}{entry}forse = true\n"),
            vec!["forse", "widgets"],
        ),
        (
            "a missing environment variable",
            format!(
                "{base}{}",
                entry.replace("TEST_GIT_TOKEN", "SERVE_TEST_NEVER_SET_9Q")
            ),
            vec!["SERVE_TEST_NEVER_SET_9Q", "widgets"],
        ),
    ];
    for (what, text, named) in cases {
        assert!(
            text.contains(&named[0].to_string()),
            "{what}: case is wrong"
        );
        let run = check_config(&text, &[]);
        assert_eq!(
            run.code, 2,
            "{what}: exit code (-1: still running after 15 s)\n--- config\n{text}\n--- stderr\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("listening on"),
            "{what}: refused before listening\n{}",
            run.stderr
        );
        for word in named {
            assert!(
                run.stderr.contains(word),
                "{what}: the message names {word:?}\n--- stderr\n{}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains("tok-Literal-Zx81") && !run.stdout.contains("tok-Literal-Zx81"),
            "{what}: the literal secret is not echoed\n{}",
            run.stderr
        );
    }
}

/// A sweep over a (fake) GitHub organization: a webhook for one of its
/// repositories mirrors it, and so does one for a repository created after
/// the start.
#[test]
fn a_sweep_follows_webhooks_for_its_organization_new_repositories_included() {
    let server = git_server();
    let (root, port) = (server.root().to_owned(), server.port());
    // The organization's repositories live under /acme/ on the git server,
    // as they do under github.com/acme/.
    let old = WorkRepo::new();
    old.commit("old: first");
    let old_src = server.create_bare("acme/old.git");
    old.push_mirror_to(&old_src);
    let old_dst = server.create_bare("dst/old.git");
    let forge = FakeForge::builder(Kind::GitHub, "acme", GIT_PASSWORD)
        .repo(FakeRepo::new("acme", "old", &server.url("acme/old.git")))
        .creator(Box::new(move |_, name| {
            let path = root.join("acme").join(format!("{name}.git"));
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
            format!("http://127.0.0.1:{port}/acme/{name}.git")
        }))
        .start();
    let text = format!(
        r#"listen = "127.0.0.1:0"
poll = "off"
{GITHUB}
[[sweep]]
name = "acme"
source = "{}"
destination = "http://127.0.0.1:{port}/dst/{{repo}}.git"
source-kind = "github"
source-username = "alice"
source-token = {{ env = "TEST_GIT_TOKEN" }}
dest-username = "alice"
dest-token = {{ env = "TEST_GIT_TOKEN" }}
"#,
        forge.scope_url()
    );
    let serve = start(&text);
    let synced = |src: &PathBuf, dst: &PathBuf| refs_of(src) == refs_of(dst);
    assert!(
        wait_until(RUN, || synced(&old_src, &old_dst)),
        "the startup sweep mirrors acme/old\n{:#}\n{}",
        serve.status(),
        serve.stderr()
    );

    // A push to a repository the sweep knows.
    let after = old.commit("old: second");
    old.push_mirror_to(&old_src);
    let body = github_push(&server.url("acme/old.git"), "refs/heads/main", &after);
    let (code, answer) = serve.post_hook("github", &github_delivery(GITHUB_SECRET, &body), &body);
    assert_eq!(code, 202, "{answer}");
    assert!(
        wait_until(RUN, || synced(&old_src, &old_dst)),
        "acme/old after its webhook\n{}",
        serve.stderr()
    );

    // A repository created after the start, then pushed to.
    let fake_port: u16 = forge
        .scope_url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap();
    let created = serve::request(
        fake_port,
        "POST",
        "/api/v3/orgs/acme/repos",
        &[("Authorization".into(), format!("token {GIT_PASSWORD}"))],
        br#"{"name":"fresh"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let fresh = WorkRepo::new();
    let after = fresh.commit("fresh: first");
    let fresh_src = server.repo_path("acme/fresh.git");
    fresh.push_mirror_to(&fresh_src);
    let fresh_dst = server.create_bare("dst/fresh.git");
    let body = github_push(&server.url("acme/fresh.git"), "refs/heads/main", &after);
    let (code, answer) = serve.post_hook("github", &github_delivery(GITHUB_SECRET, &body), &body);
    assert_eq!(
        code, 202,
        "a push to a repository created after the start: {answer}"
    );
    assert!(
        wait_until(RUN, || synced(&fresh_src, &fresh_dst)),
        "acme/fresh after its webhook\n{:#}\n{}",
        serve.status(),
        serve.stderr()
    );
    fsck_strict(&fresh_dst);
}

/// With `--log-format json`, every line on stderr is a JSON object with
/// `time`, `level` and `message`: the listening line, the runs, the
/// refused deliveries and the shutdown.
#[test]
fn json_logs_are_one_object_per_line() {
    let server = git_server();
    let pair = Pair::new(&server, "widgets");
    let mut serve = with_secrets(Serve::builder(&config("", &[GITHUB], &[&pair])))
        .arg("--log-format")
        .arg("json")
        .start();
    serve.wait_idle(RUN);
    let after = pair.push("second");
    let body = github_push(&pair.source_url, "refs/heads/main", &after);
    serve.post_hook("github", &github_delivery("wrong", &body), &body);
    serve.post_hook("github", &github_delivery(GITHUB_SECRET, &body), &body);
    assert_syncs(&serve, &pair, RUN, "with JSON logs");
    serve.terminate();
    let status = serve
        .wait(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());

    let stderr = serve.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() >= 3,
        "startup, runs and shutdown are logged:\n{stderr}"
    );
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n--- stderr\n{stderr}"));
        for field in ["time", "level", "message"] {
            assert!(value[field].is_string(), "{field} in {line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("listening on http://127.0.0.1:")),
        "{stderr}"
    );
}

/// The metrics reader is strict: it takes well-formed text and refuses
/// each kind of malformed line, so "parses" above means something.
#[test]
fn the_metrics_reader_refuses_malformed_text() {
    let good = "# HELP git_relay_serve_runs_total Runs.\n\
        # TYPE git_relay_serve_runs_total counter\n\
        git_relay_serve_runs_total{mirror=\"a \\\"b\\\"\",result=\"ok\"} 3\n\
        # TYPE git_relay_serve_lag_seconds histogram\n\
        git_relay_serve_lag_seconds_bucket{le=\"0.1\"} 1\n\
        git_relay_serve_lag_seconds_bucket{le=\"+Inf\"} 2\n\
        git_relay_serve_lag_seconds_sum 0.35\n\
        git_relay_serve_lag_seconds_count 2\n\
        git_relay_serve_queue_depth 0\n";
    let m = Metrics::parse(good).unwrap();
    assert_eq!(
        m.get(
            "git_relay_serve_runs_total",
            &[("mirror", "a \"b\""), ("result", "ok")]
        ),
        Some(3.0)
    );
    assert_eq!(m.sum("git_relay_serve_lag_seconds_count", &[]), 2.0);
    for bad in [
        "git_relay_serve_runs_total{mirror=\"a\"}\n",
        "git_relay_serve_runs_total{mirror=a} 1\n",
        "git_relay_serve_runs_total{mirror=\"a\" 1\n",
        "git-relay_runs 1\n",
        "git_relay_serve_runs_total one\n",
        "# TYPE git_relay_serve_runs_total countr\n",
        "git_relay_serve_queue_depth 1\ngit_relay_serve_queue_depth 2\n",
        "git_relay_serve_queue_depth 1\n# TYPE git_relay_serve_queue_depth gauge\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
    ] {
        assert!(Metrics::parse(bad).is_err(), "accepted: {bad:?}");
    }
}

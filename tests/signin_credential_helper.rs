//! `--source-auth credential-helper` / `--dest-auth credential-helper`
//! against git's own server: the password comes from a credential helper
//! (a script configured through a git configuration of the test's own,
//! `GIT_CONFIG_GLOBAL`), which is told what became of it (`store` after
//! the server took it, `erase` after a 401), and never shows in output.

mod support;

use std::path::PathBuf;

use support::forge::{FakeForge, FakeRepo, Kind};
use support::*;

const USER: &str = "helper-user";
const PASSWORD: &str = "helper-s3cret-pass";

/// A credential helper that logs each call (`== action` and what git told
/// it) and answers `get` with `answer`, and the git configuration that
/// names it.
struct Helper {
    dir: tempfile::TempDir,
}

impl Helper {
    fn new(answer: &str, extra_config: &str) -> Helper {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = dir.path().join("helper.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# One write, so that helpers run at once do not mix their lines.\ncall=$(echo \"== $1\"; cat)\nprintf '%s\\n' \"$call\" >> '{}'\nif [ \"$1\" = get ]; then printf '{answer}'; fi\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = format!(
            "[credential]\n\thelper = {}\n{extra_config}",
            script.display()
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        Helper { dir }
    }

    /// Answers `get` with this user name and password.
    fn answering(user: &str, password: &str, extra_config: &str) -> Helper {
        Helper::new(
            &format!("username={user}\\npassword={password}\\n"),
            extra_config,
        )
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The calls of one action, each with what git told the helper.
    fn calls(&self, action: &str) -> Vec<String> {
        let log = self.log();
        log.split("== ")
            .filter_map(|call| call.strip_prefix(&format!("{action}\n")))
            .map(str::to_owned)
            .collect()
    }
}

fn server() -> GitServer {
    GitServer::builder().credentials(USER, PASSWORD).start()
}

/// `git-relay mirror SRC DST --json` with both sides signing in through
/// `helper`, and no other credential in the environment than `env`'s.
fn mirror(server: &GitServer, helper: &Helper, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let mut args = vec!["mirror", &src, &dst, "--json"];
    args.extend_from_slice(extra);
    let config = helper.config();
    let mut env = env.to_vec();
    env.extend([
        ("GIT_CONFIG_GLOBAL", config.to_str().unwrap()),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ]);
    run(&args, &env)
}

fn both_sides() -> [&'static str; 4] {
    [
        "--source-auth",
        "credential-helper",
        "--dest-auth",
        "credential-helper",
    ]
}

fn assert_no_secret(run: &Run, secret: &str) {
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(!text.contains(secret), "{name} shows the password:\n{text}");
    }
}

#[test]
fn the_helpers_password_mirrors_and_is_approved_once_per_side() {
    let server = server();
    populated_source(&server);
    server.create_bare("dst.git");
    // With useHttpPath each side is asked about its own repository.
    let helper = Helper::answering(USER, PASSWORD, "\tuseHttpPath = true\n");

    let run = mirror(&server, &helper, &both_sides(), &[]);
    run.assert_code(0);
    assert_eq!(
        refs_of(&server.repo_path("dst.git")),
        refs_of(&server.repo_path("src.git"))
            .into_iter()
            .filter(|(name, _)| !name.starts_with("refs/pull/"))
            .collect::<Vec<_>>()
    );
    let port = server.port();
    let mut gets = helper.calls("get");
    gets.sort();
    assert_eq!(
        gets,
        [
            format!("protocol=http\nhost=127.0.0.1:{port}\npath=dst.git\n"),
            format!("protocol=http\nhost=127.0.0.1:{port}\npath=src.git\n"),
        ]
    );
    // Many requests succeeded on each side; each side's helper answer was
    // approved once, with what the helper gave.
    let mut stores = helper.calls("store");
    stores.sort();
    let stored = |path| {
        format!("protocol=http\nhost=127.0.0.1:{port}\npath={path}\nusername={USER}\npassword={PASSWORD}\n")
    };
    assert_eq!(stores, [stored("dst.git"), stored("src.git")]);
    assert!(helper.calls("erase").is_empty(), "{}", helper.log());
    assert_no_secret(&run, PASSWORD);

    // A run with nothing to do asks and approves again, once a side.
    let again = mirror(&server, &helper, &both_sides(), &[]);
    again.assert_code(0);
    assert_eq!(helper.calls("store").len(), 4, "{}", helper.log());
}

#[test]
fn both_sides_on_one_host_ask_once_as_git_would() {
    let server = server();
    populated_source(&server);
    server.create_bare("dst.git");
    // Without useHttpPath git asks its helpers about the host alone: the
    // same question for both sides, asked and approved once.
    let helper = Helper::answering(USER, PASSWORD, "");

    let run = mirror(&server, &helper, &both_sides(), &[]);
    run.assert_code(0);
    let port = server.port();
    assert_eq!(
        helper.calls("get"),
        [format!("protocol=http\nhost=127.0.0.1:{port}\n")]
    );
    assert_eq!(
        helper.calls("store"),
        [format!(
            "protocol=http\nhost=127.0.0.1:{port}\nusername={USER}\npassword={PASSWORD}\n"
        )]
    );
    assert_no_secret(&run, PASSWORD);
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_helper_is_told_to_forget_it() {
    let server = server();
    populated_source(&server);
    server.create_bare("dst.git");
    let wrong = "wrong-helper-pass-42";
    let helper = Helper::answering(USER, wrong, "");

    let dest = [
        ("GIT_RELAY_DEST_USERNAME", USER),
        ("GIT_RELAY_DEST_TOKEN", PASSWORD),
    ];
    let run = mirror(
        &server,
        &helper,
        &["--source-auth", "credential-helper"],
        &dest,
    );
    run.assert_code(1);
    let erased = helper.calls("erase");
    let port = server.port();
    assert_eq!(
        erased,
        [format!(
            "protocol=http\nhost=127.0.0.1:{port}\nusername={USER}\npassword={wrong}\n"
        )],
        "{}",
        helper.log()
    );
    assert!(helper.calls("store").is_empty(), "{}", helper.log());
    let stderr = &run.stderr;
    assert!(stderr.contains("source"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(
        stderr.contains(&format!("{USER} (git's credential helpers)")),
        "{stderr}"
    );
    assert!(stderr.contains("git credential reject"), "{stderr}");
    assert_no_secret(&run, wrong);
    // Nothing was pushed.
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn without_a_helper_nor_a_terminal_the_run_fails_at_once_saying_what_to_do() {
    let server = server();
    populated_source(&server);
    server.create_bare("dst.git");
    // A helper that knows nothing: git would prompt, but there is no
    // terminal (stdin is not one), so it must not wait.
    let helper = Helper::new("", "");

    let started = std::time::Instant::now();
    let source = [
        ("GIT_RELAY_SOURCE_USERNAME", USER),
        ("GIT_RELAY_SOURCE_TOKEN", PASSWORD),
    ];
    let run = mirror(
        &server,
        &helper,
        &["--dest-auth", "credential-helper"],
        &source,
    );
    run.assert_code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let stderr = &run.stderr;
    assert!(stderr.contains("destination"), "{stderr}");
    assert!(stderr.contains("git credential fill"), "{stderr}");
    assert!(stderr.contains("terminal prompts disabled"), "{stderr}");
    assert!(stderr.contains("credential.helper"), "{stderr}");
    // The request never went out without credentials.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.service() != Some("git-receive-pack")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn mirror_all_lists_and_mirrors_an_organization_with_the_helpers_answers() {
    let server = server();
    let mut fake = FakeForge::builder(Kind::GitHub, "acme", PASSWORD);
    for name in ["one", "two", "three"] {
        let bare = server.create_bare(&format!("src/{name}.git"));
        let work = WorkRepo::new();
        work.commit("c");
        work.push_mirror_to(&bare);
        fake = fake.repo(FakeRepo::new(
            "acme",
            name,
            &server.url(&format!("src/{name}.git")),
        ));
    }
    let fake = fake.start();
    let helper = Helper::answering(USER, PASSWORD, "");
    let template = format!("{}/{{repo}}.git", server.root().join("backup").display());
    let scope = fake.scope_url();
    let config = helper.config();
    let args = [
        "mirror-all",
        "--source-kind",
        "github",
        &scope,
        &template,
        "--source-auth",
        "credential-helper",
        "--json",
    ];
    let env = [
        ("GIT_CONFIG_GLOBAL", config.to_str().unwrap()),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ];
    let run = run(&args, &env);
    run.assert_code(0);
    assert_eq!(run.json()["totals"]["updated"], 3, "{}", run.stdout);
    // The API signs in with the answer for its scope URL's host, git with
    // the one for the git server's: each asked once, for all three
    // repositories.
    let api = fake.requests();
    assert!(!api.is_empty());
    assert!(api.iter().all(|r| r.authorization.is_some()), "{api:?}");
    let hosts: Vec<String> = helper
        .calls("get")
        .into_iter()
        .map(|call| call.lines().nth(1).unwrap_or_default().to_owned())
        .collect();
    let mut expected = vec![
        format!(
            "host={}",
            scope
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap()
        ),
        format!("host=127.0.0.1:{}", server.port()),
    ];
    let mut hosts_sorted = hosts.clone();
    hosts_sorted.sort();
    expected.sort();
    assert_eq!(hosts_sorted, expected, "{}", helper.log());
    assert_no_secret(&run, PASSWORD);
}

//! The release's YAML files: the GitHub release workflow, the GitHub Action
//! (`action.yml`), the GitLab CI template and `azure-pipelines.yml`. Each is
//! parsed (a YAML error fails here rather than on the first tag), checked
//! for what its consumers rely on (every platform built and published, every
//! input the action uses declared), and the action's two shell steps are run
//! for real with bash against a release laid out on disk: `curl` is a
//! stand-in that copies from it, git-relay a stand-in that prints what it
//! was given.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &str) -> Yaml {
    let text = fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one YAML document");
    docs.remove(0)
}

fn keys(map: &Yaml) -> Vec<String> {
    map.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every `${{ <prefix>.NAME }}` expression's NAME in a text.
fn references(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        let end = rest[at..].find("}}").map_or(rest.len(), |e| at + e);
        let expression = &rest[at + 3..end];
        let mut tail = expression;
        while let Some(i) = tail.find(prefix) {
            let name: String = tail[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            found.insert(name);
            tail = &tail[i + prefix.len()..];
        }
        rest = &rest[end..];
    }
    found
}

/// Every platform a release publishes: what `cargo xtask dist` builds (its
/// PLATFORMS table) and what the workflow builds natively.
const RELEASE_PLATFORMS: &[&str] = &[
    "linux-x64",
    "linux-arm64",
    "win-x64",
    "win-arm64",
    "darwin-x64",
    "darwin-arm64",
];

fn xtask_platforms() -> BTreeSet<String> {
    let main = fs::read_to_string(root().join("xtask/src/main.rs")).unwrap();
    let table = &main[main.find("const PLATFORMS").expect("PLATFORMS in xtask")..];
    let table = &table[..table.find("];").unwrap()];
    table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name: \""))
        .map(|l| l.trim_end_matches("\",").to_owned())
        .collect()
}

#[test]
fn release_workflow_builds_and_publishes_every_platform() {
    let workflow = load(".github/workflows/release.yml");
    let tags = &workflow["on"]["push"]["tags"];
    assert!(
        tags.as_vec().is_some_and(|t| !t.is_empty()),
        "release.yml runs on version tags"
    );
    let jobs = &workflow["jobs"];
    for job in ["dist", "native", "publish", "image"] {
        assert!(!jobs[job].is_badvalue(), "job {job}");
        assert!(jobs[job]["runs-on"].as_str().is_some(), "job {job} runs-on");
        assert!(jobs[job]["steps"].as_vec().is_some(), "job {job} steps");
    }
    // `cargo xtask dist` is the one local command, and the workflow runs it.
    let dist_runs: Vec<&str> = jobs["dist"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(dist_runs.iter().any(|r| r.contains("cargo xtask dist")));

    let mut built = xtask_platforms();
    assert!(!built.is_empty());
    for entry in jobs["native"]["strategy"]["matrix"]["include"]
        .as_vec()
        .expect("native matrix")
    {
        let platform = entry["platform"].as_str().unwrap().to_owned();
        let runner = entry["runner"].as_str().unwrap();
        let target = entry["target"].as_str().unwrap();
        if platform.starts_with("darwin") {
            assert!(runner.starts_with("macos-"), "{platform} on {runner}");
            assert!(target.ends_with("-apple-darwin"), "{platform}: {target}");
        }
        if platform.starts_with("win") {
            assert!(runner.starts_with("windows-"), "{platform} on {runner}");
        }
        let arch = if platform.ends_with("arm64") {
            "aarch64"
        } else {
            "x86_64"
        };
        assert!(target.starts_with(arch), "{platform}: {target}");
        assert!(built.insert(platform.clone()), "{platform} built twice");
    }
    let expected: BTreeSet<String> = RELEASE_PLATFORMS.iter().map(|p| p.to_string()).collect();
    assert_eq!(built, expected, "platforms built by dist + native");

    // The publishing job waits for every build and checks each asset.
    let needs: Vec<&str> = jobs["publish"]["needs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(needs, ["dist"]);
    let dist_needs = jobs["dist"]["needs"].as_vec().unwrap();
    assert_eq!(dist_needs[0].as_str(), Some("native"));
    // Each natively built platform is handed to `cargo xtask dist`.
    let dist_script = serde_yaml_text(&jobs["dist"]);
    for entry in jobs["native"]["strategy"]["matrix"]["include"]
        .as_vec()
        .unwrap()
    {
        let platform = entry["platform"].as_str().unwrap();
        assert!(
            dist_script.contains(&format!("--with {platform}=")),
            "dist --with {platform}"
        );
    }
    let publish = serde_yaml_text(&jobs["publish"]);
    for platform in RELEASE_PLATFORMS {
        assert!(publish.contains(platform), "publish checks {platform}");
    }
    assert!(publish.contains("SHA256SUMS") && publish.contains("gh release create"));
    assert_eq!(
        jobs["publish"]["permissions"]["contents"].as_str(),
        Some("write")
    );
    assert_eq!(
        jobs["image"]["permissions"]["packages"].as_str(),
        Some("write")
    );
    // Least privilege everywhere else.
    assert_eq!(workflow["permissions"]["contents"].as_str(), Some("read"));
}

/// A job's text as the tests search it: its steps' `run` scripts.
fn serde_yaml_text(job: &Yaml) -> String {
    job["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn dockerfile_is_distroless_non_root_and_takes_the_release_binaries() {
    let dockerfile = fs::read_to_string(root().join("Dockerfile")).unwrap();
    let last_from = dockerfile
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert!(
        last_from.contains("distroless/static") || last_from.contains("scratch"),
        "{last_from}"
    );
    assert!(dockerfile.contains("USER nonroot"));
    assert!(dockerfile.contains("dist/image/${TARGETARCH}/git-relay"));
    // The workflow lays out what the Dockerfile copies, for both arches.
    let workflow = fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    for arch in ["amd64", "arm64"] {
        assert!(workflow.contains(&format!("dist/image/{arch}/git-relay")));
    }
    assert!(workflow.contains("BINARIES=prebuilt"));
}

#[test]
fn action_declares_every_input_it_uses_and_uses_every_one() {
    let action = load("action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let declared: BTreeSet<String> = keys(&action["inputs"]).into_iter().collect();
    let text = fs::read_to_string(root().join("action.yml")).unwrap();
    let used = references(&text, "inputs.");
    assert_eq!(used, declared, "inputs used by the steps vs declared");
    for input in &declared {
        assert!(
            action["inputs"][input.as_str()]["description"]
                .as_str()
                .is_some(),
            "input {input} has a description"
        );
    }
    let steps = action["runs"]["steps"].as_vec().unwrap();
    let ids: BTreeSet<String> = steps
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(references(&text, "steps."), ids, "step outputs referenced");
    for step in steps {
        assert_eq!(
            step["shell"].as_str(),
            Some("bash"),
            "composite run steps name a shell"
        );
        // Inputs reach scripts through the environment only: an expression
        // inside a script is script injection.
        let run = step["run"].as_str().unwrap();
        assert!(!run.contains("${{"), "expression inside a script: {run}");
    }
    for (name, output) in action["outputs"].as_hash().unwrap() {
        assert!(output["value"].as_str().is_some(), "output {name:?}");
    }
}

#[test]
fn gitlab_template_is_a_job_to_extend() {
    let template = load("ci/gitlab/git-relay.gitlab-ci.yml");
    let job = &template[".git-relay"];
    assert!(job["image"].as_str().is_some());
    assert!(job["script"].as_vec().is_some_and(|s| !s.is_empty()));
    let before = job["before_script"].as_vec().unwrap()[0].as_str().unwrap();
    assert!(before.contains("sha256sum -c"), "checksum checked");
    let variables = keys(&job["variables"]);
    for variable in ["GIT_RELAY_VERSION", "GIT_RELAY_COMMAND", "GIT_RELAY_ARGS"] {
        assert!(variables.iter().any(|v| v == variable), "{variable}");
    }
}

#[test]
fn azure_pipelines_release_builds_the_same_platforms() {
    let path = root().join("azure-pipelines.yml");
    if !path.exists() {
        return;
    }
    let pipeline = load("azure-pipelines.yml");
    let text = fs::read_to_string(path).unwrap();
    assert!(!pipeline["trigger"]["tags"].is_badvalue(), "runs on tags");
    assert!(text.contains("cargo xtask dist"));
    for platform in RELEASE_PLATFORMS {
        assert!(
            text.contains(platform),
            "azure-pipelines.yml builds {platform}"
        );
    }
}

// ------------------------------------------------- the action's scripts, run

/// The action's step `id` as a bash script.
fn action_script(id: &str) -> String {
    let action = load("action.yml");
    action["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .and_then(|s| s["run"].as_str())
        .unwrap()
        .to_owned()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// A release on disk, served to the install step by a `curl` stand-in.
struct FakeRelease {
    dir: tempfile_lite::Dir,
}

impl FakeRelease {
    fn new(version: &str) -> FakeRelease {
        let dir = tempfile_lite::Dir::new();
        let release = dir.path().join(format!("releases/download/v{version}"));
        fs::create_dir_all(&release).unwrap();
        let mut sums = String::new();
        for platform in RELEASE_PLATFORMS {
            let name = if platform.starts_with("win") {
                format!("git-relay-{version}-{platform}.exe")
            } else {
                format!("git-relay-{version}-{platform}")
            };
            let file = release.join(&name);
            fs::write(
                &file,
                format!("#!/bin/sh\necho \"git-relay {version} {platform}\"\n"),
            )
            .unwrap();
            sums.push_str(&format!("{}  {name}\n", sha256(&file)));
        }
        fs::write(release.join("SHA256SUMS"), sums).unwrap();
        // curl --fail ... --output FILE URL: copy the URL's path from here.
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(
            bin.join("curl"),
            format!(
                "#!/bin/bash\nout=; url=\nwhile [ $# -gt 0 ]; do case \"$1\" in --output) out=$2; shift 2 ;; --retry) shift 2 ;; -*) shift ;; *) url=$1; shift ;; esac; done\ncp \"{}/${{url#https://github.com/git-relay/git-relay/}}\" \"$out\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        make_executable(&bin.join("curl"));
        FakeRelease { dir }
    }

    fn asset(&self, version: &str, name: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("releases/download/v{version}/{name}"))
    }

    /// Runs the install step as on a runner of the given OS and arch.
    fn install(&self, os: &str, arch: &str, version: &str) -> (bool, String, String) {
        let temp = self.dir.path().join(format!("runner-{os}-{arch}"));
        fs::create_dir_all(&temp).unwrap();
        let output_file = temp.join("output");
        let _ = fs::remove_file(&output_file);
        let out = Command::new("bash")
            .arg("-c")
            .arg(action_script("install"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.dir.path().join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("RUNNER_OS", os)
            .env("RUNNER_ARCH", arch)
            .env("RUNNER_TEMP", &temp)
            .env("GITHUB_OUTPUT", &output_file)
            .env("GIT_RELAY_ACTION_VERSION", version)
            .env("GIT_RELAY_ACTION_REPOSITORY", "git-relay/git-relay")
            .env("GIT_RELAY_ACTION_REF", "main")
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.success(),
            log,
            fs::read_to_string(output_file).unwrap_or_default(),
        )
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn action_installs_the_runners_binary_after_checking_its_checksum() {
    let release = FakeRelease::new("0.2.0");
    for (os, arch, platform) in [
        ("Linux", "X64", "linux-x64"),
        ("Linux", "ARM64", "linux-arm64"),
        ("macOS", "ARM64", "darwin-arm64"),
        ("Windows", "ARM64", "win-arm64"),
    ] {
        let (ok, log, output) = release.install(os, arch, "v0.2.0");
        assert!(ok, "{os} {arch}: {log}");
        // The downloaded binary was run (a stand-in printing its platform).
        assert!(
            log.contains(&format!("git-relay 0.2.0 {platform}")),
            "{log}"
        );
        let exe = if os == "Windows" {
            "git-relay.exe"
        } else {
            "git-relay"
        };
        assert!(
            output.starts_with("path=") && output.trim_end().ends_with(exe),
            "{output}"
        );
    }

    // A binary that is not the one SHA256SUMS names is refused, not run.
    let tampered = release.asset("0.2.0", "git-relay-0.2.0-linux-x64");
    fs::write(&tampered, "#!/bin/sh\necho tampered\n").unwrap();
    let (ok, log, output) = release.install("Linux", "X64", "0.2.0");
    assert!(!ok, "{log}");
    assert!(
        log.contains("SHA-256") && !log.contains("tampered"),
        "{log}"
    );
    assert!(output.is_empty());

    let (ok, log, _) = release.install("Linux", "RISCV64", "0.2.0");
    assert!(!ok && log.contains("no release binary"), "{log}");
}

/// Runs the run step with a git-relay stand-in that prints its arguments
/// (one a line) and the credentials it finds in its environment.
fn run_step(inputs: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile_lite::Dir::new();
    let fake = dir.path().join("git-relay");
    fs::write(
        &fake,
        "#!/bin/bash\nfor a in \"$@\"; do echo \"arg:$a\"; done\nfor v in GIT_RELAY_SOURCE_TOKEN GIT_RELAY_DEST_TOKEN GIT_RELAY_SOURCE_USERNAME GIT_RELAY_DEST_USERNAME GIT_RELAY_ACTION_SOURCE_TOKEN GIT_RELAY_ACTION_DEST_TOKEN; do [ \"${!v+set}\" = set ] && echo \"env:$v=${!v}\"; done\nexit 3\n",
    )
    .unwrap();
    make_executable(&fake);
    let output = dir.path().join("output");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(action_script("run"))
        .env("GITHUB_OUTPUT", &output)
        .env("GIT_RELAY_ACTION_BINARY", &fake);
    // What the runner passes for inputs left at their default.
    let defaults = [
        ("COMMAND", "mirror"),
        ("SOURCE", ""),
        ("DESTINATION", ""),
        ("SOURCE_TOKEN", ""),
        ("SOURCE_USERNAME", ""),
        ("DEST_TOKEN", ""),
        ("DEST_USERNAME", ""),
        ("INCLUDE", ""),
        ("EXCLUDE", ""),
        ("PRUNE", "true"),
        ("FORCE", "false"),
        ("DRY_RUN", "false"),
        ("ARGS", ""),
    ];
    for (name, value) in defaults {
        cmd.env(format!("GIT_RELAY_ACTION_{name}"), value);
    }
    for (name, value) in inputs {
        cmd.env(format!("GIT_RELAY_ACTION_{name}"), value);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        fs::read_to_string(output).unwrap_or_default(),
    )
}

#[test]
fn action_maps_inputs_to_flags_and_tokens_to_the_environment() {
    let (ok, log, output) = run_step(&[
        ("SOURCE", "https://github.com/contoso/app.git"),
        ("DESTINATION", "https://dev.azure.com/contoso/p/_git/app"),
        ("SOURCE_TOKEN", "src-secret"),
        ("DEST_TOKEN", "dst secret:with/odd@chars"),
        ("INCLUDE", "refs/heads/*\nrefs/tags/v*\n"),
        ("EXCLUDE", "refs/heads/wip/*"),
        ("PRUNE", "false"),
        ("FORCE", "true"),
        ("ARGS", "--dest-max-push-bytes\n1500MiB"),
    ]);
    // git-relay's exit code is the step's, and an output.
    assert!(!ok);
    assert_eq!(output.trim(), "exit-code=3");
    let args: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("arg:")).collect();
    assert_eq!(
        args,
        [
            "mirror",
            "https://github.com/contoso/app.git",
            "https://dev.azure.com/contoso/p/_git/app",
            "--include",
            "refs/heads/*",
            "--include",
            "refs/tags/v*",
            "--exclude",
            "refs/heads/wip/*",
            "--no-prune",
            "--force",
            "--dest-max-push-bytes",
            "1500MiB",
        ]
    );
    let env: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("env:")).collect();
    assert_eq!(
        env,
        [
            "GIT_RELAY_SOURCE_TOKEN=src-secret",
            "GIT_RELAY_DEST_TOKEN=dst secret:with/odd@chars",
        ],
        "tokens in git-relay's variables only, usernames left unset when not given"
    );
    assert!(!args.iter().any(|a| a.contains("secret")));
}

#[test]
fn action_refuses_inputs_it_cannot_map() {
    let (ok, log, _) = run_step(&[("COMMAND", "push"), ("SOURCE", "a"), ("DESTINATION", "b")]);
    assert!(!ok && log.contains("input command must be"), "{log}");
    assert!(!log.contains("arg:"), "git-relay not run: {log}");
    let (ok, log, _) = run_step(&[("FORCE", "yes"), ("SOURCE", "a"), ("DESTINATION", "b")]);
    assert!(
        !ok && log.contains("input force must be true or false"),
        "{log}"
    );
    let (_, log, _) = run_step(&[
        ("SOURCE", "a"),
        ("DESTINATION", "b"),
        ("DEST_USERNAME", "x-token-auth"),
        ("DRY_RUN", "true"),
    ]);
    assert!(
        log.contains("env:GIT_RELAY_DEST_USERNAME=x-token-auth"),
        "{log}"
    );
    assert!(log.contains("arg:--dry-run"), "{log}");
}

/// A temporary directory removed on drop (std only: the test needs no
/// more, and xtask keeps its dependencies few).
mod tempfile_lite {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "xtask-release-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs the GitLab template's `before_script` and `script` as a runner
/// would (one shell), with `wget` and `uname` stand-ins and the install
/// folder moved out of /usr/local/bin.
fn gitlab_job(release: &FakeRelease, machine: &str, version: &str) -> (bool, String) {
    let template = load("ci/gitlab/git-relay.gitlab-ci.yml");
    let job = &template[".git-relay"];
    let bin = release.dir.path().join(format!("installed-{machine}"));
    fs::create_dir_all(&bin).unwrap();
    let lines: Vec<String> = job["before_script"]
        .as_vec()
        .unwrap()
        .iter()
        .chain(job["script"].as_vec().unwrap())
        .map(|l| {
            l.as_str()
                .unwrap()
                .replace("/usr/local/bin", &bin.to_string_lossy())
        })
        .collect();
    let stubs = release.dir.path().join(format!("stubs-{machine}"));
    fs::create_dir_all(&stubs).unwrap();
    fs::write(
        stubs.join("wget"),
        format!(
            "#!/bin/bash\nout=; url=\nwhile [ $# -gt 0 ]; do case \"$1\" in -O) out=$2; shift 2 ;; -*) shift ;; *) url=$1; shift ;; esac; done\ncp \"{}/${{url#https://github.com/git-relay/git-relay/}}\" \"$out\"\n",
            release.dir.path().display()
        ),
    )
    .unwrap();
    fs::write(stubs.join("uname"), format!("#!/bin/sh\necho {machine}\n")).unwrap();
    make_executable(&stubs.join("wget"));
    make_executable(&stubs.join("uname"));
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(lines.join("\n")).env(
        "PATH",
        format!(
            "{}:{}:{}",
            stubs.display(),
            bin.display(),
            std::env::var("PATH").unwrap()
        ),
    );
    for (name, value) in job["variables"].as_hash().unwrap() {
        cmd.env(name.as_str().unwrap(), value.as_str().unwrap());
    }
    cmd.env("GIT_RELAY_VERSION", version)
        .env("GIT_RELAY_SOURCE", "https://gitlab.example/a.git")
        .env("GIT_RELAY_DESTINATION", "https://github.example/b.git");
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn gitlab_template_installs_a_checked_binary_and_runs_it() {
    let release = FakeRelease::new("0.2.0");
    let (ok, log) = gitlab_job(&release, "aarch64", "0.2.0");
    assert!(ok, "{log}");
    // `--version`, then the run itself: the stand-in prints its platform.
    assert_eq!(
        log.matches("git-relay 0.2.0 linux-arm64").count(),
        2,
        "{log}"
    );

    let tampered = release.asset("0.2.0", "git-relay-0.2.0-linux-x64");
    fs::write(&tampered, "#!/bin/sh\necho tampered\n").unwrap();
    let (ok, log) = gitlab_job(&release, "x86_64", "v0.2.0");
    assert!(!ok && !log.contains("tampered"), "{log}");
    assert!(log.contains("FAILED"), "sha256sum's verdict: {log}");
}

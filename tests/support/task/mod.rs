//! Support for the Azure Pipelines task tests: an environment built the way
//! the agent builds it for a task, a parser for the logging commands the
//! task prints, and the schema check of task.json.
//!
//! The agent facts used here (see also `src/pipelines/inputs.rs`): inputs
//! as `INPUT_<NAME>` with task.json's defaults applied (and macros such as
//! `$(Build.Repository.Uri)` expanded, empty filePath inputs turned into the
//! sources directory), `ENDPOINT_*` for System.AccessToken and for each
//! service connection (`ENDPOINT_DATA_<id>_<KEY>` for an Azure Resource
//! Manager connection's cloud), `SYSTEM_OIDCREQUESTURI`, and the usual `TF_BUILD`, `AGENT_*`, `BUILD_*`,
//! `SYSTEM_*` variables.

pub mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses a JSON file of the repository.
pub fn json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The root task.json, the one source of truth.
pub fn task_json() -> Value {
    json(&root().join("task.json"))
}

/// A fixed id for the generic service connection of the tests.
pub const CONNECTION_ID: &str = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

/// The environment of one task run, and the directories it points at.
pub struct Agent {
    /// Variable name to value, as the agent would set them.
    pub env: BTreeMap<String, String>,
    /// AGENT_TEMPDIRECTORY, BUILD_SOURCESDIRECTORY and friends live here.
    pub work: TempDir,
}

impl Agent {
    /// An agent environment for a run whose build repository is
    /// `build_repository_uri`, with `inputs` given by the pipeline (names as
    /// in task.json) and every other input at its default.
    pub fn new(build_repository_uri: &str, inputs: &[(&str, &str)]) -> Agent {
        let work = tempfile::Builder::new()
            .prefix("git-relay-agent-")
            .tempdir()
            .expect("agent work dir");
        let temp = work.path().join("_temp");
        let sources = work.path().join("s");
        std::fs::create_dir_all(&temp).unwrap();
        std::fs::create_dir_all(&sources).unwrap();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(k.to_owned(), v.to_owned());
        };
        set("PATH", &std::env::var("PATH").unwrap_or_default());
        set("HOME", &path(work.path()));
        set("TF_BUILD", "True");
        set("AGENT_TEMPDIRECTORY", &path(&temp));
        set("AGENT_WORKFOLDER", &path(work.path()));
        set("AGENT_OS", "Linux");
        set("AGENT_OSARCHITECTURE", "X64");
        set("AGENT_VERSION", "4.266.2");
        set("AGENT_JOBNAME", "Job");
        set("AGENT_JOBSTATUS", "Succeeded");
        set("BUILD_REPOSITORY_URI", build_repository_uri);
        set("BUILD_REPOSITORY_NAME", "src");
        set("BUILD_SOURCESDIRECTORY", &path(&sources));
        set("BUILD_BUILDID", "42");
        set("BUILD_DEFINITIONNAME", "mirror");
        set("SYSTEM_DEFAULTWORKINGDIRECTORY", &path(&sources));
        set(
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
            "https://dev.azure.com/org/",
        );
        set("SYSTEM_COLLECTIONURI", "https://dev.azure.com/org/");
        set("SYSTEM_TEAMPROJECT", "proj");
        set("SYSTEM_HOSTTYPE", "build");
        set("SYSTEM_DEBUG", "false");
        set(
            "VSTS_PUBLIC_VARIABLES",
            "[\"Build.BuildId\",\"Build.Repository.Uri\"]",
        );
        set("VSTS_SECRET_VARIABLES", "[]");

        let definitions = task_json();
        for input in definitions["inputs"].as_array().expect("inputs") {
            let name = input["name"].as_str().unwrap();
            let value = match inputs.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => (*v).to_owned(),
                None => match &input["defaultValue"] {
                    Value::String(s) => s.replace("$(Build.Repository.Uri)", build_repository_uri),
                    Value::Bool(b) => b.to_string(),
                    _ => String::new(),
                },
            };
            // The agent roots a filePath input at the sources directory,
            // so an empty one arrives as that directory.
            let value = if input["type"] == "filePath" && !Path::new(&value).is_absolute() {
                path(&sources.join(&value)).trim_end_matches('/').to_owned()
            } else {
                value
            };
            set(&format!("INPUT_{}", name.to_ascii_uppercase()), &value);
        }
        for (name, _) in inputs {
            assert!(
                definitions["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["name"] == *name),
                "test passes input {name}, which task.json does not declare"
            );
        }
        Agent { env, work }
    }

    /// Adds the System.AccessToken endpoint, as every job has it.
    pub fn system_access_token(&mut self, token: &str) -> &mut Agent {
        let auth = serde_json::json!({ "parameters": { "AccessToken": token }, "scheme": "OAuth" });
        self.endpoint("SYSTEMVSSCONNECTION", "https://dev.azure.com/org/", &auth);
        self
    }

    /// Adds a generic (username/password) service connection.
    pub fn generic_connection(
        &mut self,
        id: &str,
        url: &str,
        username: &str,
        password: &str,
    ) -> &mut Agent {
        let auth = serde_json::json!({ "parameters": { "username": username, "password": password }, "scheme": "UsernamePassword" });
        self.endpoint(id, url, &auth);
        self.env
            .insert(format!("ENDPOINT_DATA_{id}"), "{}".to_owned());
        self
    }

    /// Adds an Azure Resource Manager service connection that uses workload
    /// identity federation, as the agent passes it: the service principal
    /// and tenant as authorization parameters (no secret), the cloud's
    /// authority as endpoint data; and the pipeline's
    /// `System.OidcRequestUri`.
    pub fn azure_rm_connection(
        &mut self,
        id: &str,
        tenant: &str,
        client_id: &str,
        authority: &str,
        oidc_request_uri: &str,
    ) -> &mut Agent {
        let auth = serde_json::json!({
            "parameters": {
                "serviceprincipalid": client_id,
                "tenantid": tenant,
                "authenticationType": "workloadIdentityFederation",
                "workloadIdentityFederationSubject": format!("sc://fabrikam/proj/{id}"),
                "workloadIdentityFederationIssuer": "https://vstoken.dev.azure.com/0f4a6c2e-org",
            },
            "scheme": "WorkloadIdentityFederation"
        });
        self.endpoint(id, "https://management.azure.com/", &auth);
        for (key, value) in [
            ("ENVIRONMENT", "AzureCloud"),
            ("SCOPELEVEL", "Subscription"),
            ("SUBSCRIPTIONID", "3f2a1b0c-0000-4000-8000-000000000001"),
            ("SUBSCRIPTIONNAME", "Mirrors"),
            ("ENVIRONMENTAUTHORITYURL", authority),
            ("ACTIVEDIRECTORYAUTHORITY", authority),
        ] {
            self.env
                .insert(format!("ENDPOINT_DATA_{id}_{key}"), value.to_owned());
        }
        self.env.insert(
            "SYSTEM_OIDCREQUESTURI".to_owned(),
            oidc_request_uri.to_owned(),
        );
        self
    }

    /// Adds a service connection of any kind with this scheme and these
    /// authorization parameters.
    pub fn connection(
        &mut self,
        id: &str,
        url: &str,
        scheme: &str,
        parameters: &[(&str, &str)],
    ) -> &mut Agent {
        let parameters: serde_json::Map<String, Value> = parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let auth = serde_json::json!({ "parameters": parameters, "scheme": scheme });
        self.endpoint(id, url, &auth);
        self
    }

    fn endpoint(&mut self, key: &str, url: &str, auth: &Value) {
        self.env
            .insert(format!("ENDPOINT_URL_{key}"), url.to_owned());
        self.env
            .insert(format!("ENDPOINT_AUTH_{key}"), auth.to_string());
        self.env.insert(
            format!("ENDPOINT_AUTH_SCHEME_{key}"),
            auth["scheme"].as_str().unwrap().to_owned(),
        );
        for (param, value) in auth["parameters"].as_object().unwrap() {
            self.env.insert(
                format!(
                    "ENDPOINT_AUTH_PARAMETER_{key}_{}",
                    param.to_ascii_uppercase()
                ),
                value.as_str().unwrap().to_owned(),
            );
        }
    }

    /// Runs `cmd` with exactly this environment.
    pub fn run(&self, mut cmd: Command) -> TaskRun {
        cmd.env_clear()
            .envs(&self.env)
            .current_dir(self.work.path());
        let out = cmd.output().expect("run the task");
        TaskRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// What a task run printed.
pub struct TaskRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One parsed `##vso[...]` line.
#[derive(Debug)]
pub struct Vso {
    pub name: String,
    pub properties: BTreeMap<String, String>,
    /// Unescaped.
    pub message: String,
}

impl TaskRun {
    /// The summary's markdown file: attached once, as the run page's
    /// summary section, under the stable name "git-relay".
    pub fn summary_file(&self) -> PathBuf {
        let attached = self.named("task.addattachment");
        assert_eq!(attached.len(), 1, "{}", self.log());
        let a = &attached[0];
        assert_eq!(a.properties["type"], "Distributedtask.Core.Summary");
        assert_eq!(a.properties["name"], "git-relay", "{}", self.log());
        PathBuf::from(&a.message)
    }

    /// Every line, stderr (where the task writes) first, then stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stderr.lines().chain(self.stdout.lines()).collect()
    }

    /// The whole log, for assertion messages.
    pub fn log(&self) -> String {
        format!(
            "exit code {}\n--- stderr\n{}--- stdout\n{}",
            self.code, self.stderr, self.stdout
        )
    }

    /// Every logging command, parsed; panics on a malformed one.
    pub fn commands(&self) -> Vec<Vso> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains("##vso["))
            .map(|l| {
                parse_vso(l).unwrap_or_else(|e| {
                    panic!("malformed logging command {l:?}: {e}\n{}", self.log())
                })
            })
            .collect()
    }

    /// The commands named `name`.
    pub fn named(&self, name: &str) -> Vec<Vso> {
        self.commands()
            .into_iter()
            .filter(|c| c.name == name)
            .collect()
    }

    /// The value of output variable `name`.
    pub fn output(&self, name: &str) -> Option<String> {
        self.named("task.setvariable")
            .into_iter()
            .find(|c| c.properties.get("variable").map(String::as_str) == Some(name))
            .map(|c| {
                assert_eq!(
                    c.properties.get("isoutput").map(String::as_str),
                    Some("true"),
                    "{c:?}"
                );
                c.message
            })
    }

    /// The `task.complete` result; it must be the last command.
    pub fn result(&self) -> (String, String) {
        let commands = self.commands();
        let last = commands
            .last()
            .unwrap_or_else(|| panic!("no logging command\n{}", self.log()));
        assert_eq!(
            last.name,
            "task.complete",
            "the last command is not task.complete\n{}",
            self.log()
        );
        assert_eq!(
            commands
                .iter()
                .filter(|c| c.name == "task.complete")
                .count(),
            1,
            "{}",
            self.log()
        );
        (last.properties["result"].clone(), last.message.clone())
    }

    /// Checks that no form of `secret` appears outside `task.setsecret`
    /// lines, and that those come before anything else. (Secrets learnt
    /// mid-run, such as Entra tokens, are told later: only the lines that
    /// tell a form of this secret are checked.)
    pub fn assert_secret_kept(&self, username: &str, secret: &str) {
        let forms = secret_forms(username, secret);
        let is_secret_line = |l: &str| l.starts_with("##vso[task.setsecret]");
        let stderr: Vec<&str> = self.stderr.lines().collect();
        let first_other = stderr
            .iter()
            .position(|l| !is_secret_line(l))
            .unwrap_or(stderr.len());
        let tells_this = |l: &str| {
            parse_vso(l).is_ok_and(|c| forms.contains(&c.message) || c.message.contains(secret))
        };
        assert!(
            !stderr[first_other..]
                .iter()
                .any(|l| is_secret_line(l) && tells_this(l)),
            "a task.setsecret came after other output\n{}",
            self.log()
        );
        for line in self.lines().into_iter().filter(|l| !is_secret_line(l)) {
            for form in &forms {
                assert!(
                    !line.contains(form.as_str()),
                    "secret form {form:?} leaked in {line:?}\n{}",
                    self.log()
                );
            }
        }
        let told: Vec<String> = self
            .named("task.setsecret")
            .into_iter()
            .map(|c| c.message)
            .collect();
        for form in [secret.to_owned(), base64_pair(username, secret)] {
            assert!(
                told.contains(&form),
                "the agent was not told to mask {form:?}: {told:?}"
            );
        }
    }
}

impl TaskRun {
    /// Checks that a bearer token learnt during the run (an Entra access
    /// token, an OIDC token) was told to the agent and never printed in
    /// any form.
    pub fn assert_token_kept(&self, token: &str) {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let is_secret_line = |l: &str| l.starts_with("##vso[task.setsecret]");
        let forms = [
            token.to_owned(),
            utf8_percent_encode(token, NON_ALPHANUMERIC).to_string(),
            // What the redactor masks of a token cut short.
            token.chars().take(12).collect(),
        ];
        for line in self.lines().into_iter().filter(|l| !is_secret_line(l)) {
            for form in &forms {
                assert!(
                    !line.contains(form.as_str()),
                    "token form {form:?} leaked in {line:?}\n{}",
                    self.log()
                );
            }
        }
        assert!(
            self.named("task.setsecret")
                .iter()
                .any(|c| c.message == token),
            "the agent was not told to mask {token:?}\n{}",
            self.log()
        );
    }
}

impl TaskRun {
    /// Checks that every line of a PEM key's body was told to the agent
    /// among the first lines, before anything else was printed, and that
    /// none appears anywhere else.
    pub fn assert_key_kept(&self, pem: &str) {
        let is_secret_line = |l: &str| l.starts_with("##vso[task.setsecret]");
        let stderr: Vec<&str> = self.stderr.lines().collect();
        let first_other = stderr
            .iter()
            .position(|l| !is_secret_line(l))
            .unwrap_or(stderr.len());
        let told: Vec<String> = stderr[..first_other]
            .iter()
            .filter_map(|l| parse_vso(l).ok())
            .map(|c| c.message)
            .collect();
        for line in pem.lines().map(str::trim) {
            if line.is_empty() || line.starts_with("-----") {
                continue;
            }
            assert!(
                told.iter().any(|t| t == line),
                "key line {line:?} was not told to the agent before other output\n{}",
                self.log()
            );
            for printed in self.lines().into_iter().filter(|l| !is_secret_line(l)) {
                assert!(
                    !printed.contains(line),
                    "key line {line:?} leaked in {printed:?}"
                );
            }
        }
    }
}

/// The forms a secret could leak in: raw, percent-encoded, Basic base64.
pub fn secret_forms(username: &str, secret: &str) -> Vec<String> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    vec![
        secret.to_owned(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        base64_pair(username, secret),
    ]
}

fn base64_pair(username: &str, secret: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{secret}"))
}

/// Parses one logging command strictly: `##vso[` at the start of the line,
/// a known command, `key=value;` properties whose values carry no raw `;`
/// or `]`, and only the agent's escapes (`%AZP25`, `%0D`, `%0A`, and in
/// properties `%5D`, `%3B`).
pub fn parse_vso(line: &str) -> Result<Vso, String> {
    let body = line
        .strip_prefix("##vso[")
        .ok_or("##vso[ is not at the start of the line")?;
    let close = body.find(']').ok_or("no ]")?;
    let (head, message) = (&body[..close], &body[close + 1..]);
    let (name, props) = head.split_once(' ').unwrap_or((head, ""));
    let known = [
        "results.publish",
        "task.setsecret",
        "task.logissue",
        "task.complete",
        "task.setprogress",
        "task.setvariable",
        "task.addattachment",
    ];
    if !known.contains(&name) {
        return Err(format!("unexpected command {name}"));
    }
    let mut properties = BTreeMap::new();
    for prop in props.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = prop
            .split_once('=')
            .ok_or_else(|| format!("property without =: {prop}"))?;
        properties.insert(k.to_owned(), unescape(v, true)?);
    }
    if !props.is_empty() && !props.ends_with(';') {
        return Err("properties must end with ;".to_owned());
    }
    Ok(Vso {
        name: name.to_owned(),
        properties,
        message: unescape(message, false)?,
    })
}

fn unescape(text: &str, property: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let escapes: &[(&str, char)] = if property {
            &[
                ("%AZP25", '%'),
                ("%0D", '\r'),
                ("%0A", '\n'),
                ("%5D", ']'),
                ("%3B", ';'),
            ]
        } else {
            &[("%AZP25", '%'), ("%0D", '\r'), ("%0A", '\n')]
        };
        let (escape, c) = escapes
            .iter()
            .find(|(e, _)| rest.starts_with(e))
            .ok_or_else(|| format!("unescaped % in {text:?}"))?;
        out.push(*c);
        rest = &rest[escape.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

//! The inputs read as the agent passes them, in both modes.

use super::environment::input_variable;
use super::*;
use crate::forge::Kind;
use crate::mirror::{Mode, Options};
use crate::transport::RedirectPolicy;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Environment {
    let mut all = vec![
        (
            "INPUT_SOURCEGITREPOSITORYURI",
            "https://org@dev.azure.com/org/p/_git/r",
        ),
        ("INPUT_SOURCEAUTHENTICATION", "token"),
        (
            "INPUT_DESTINATIONGITREPOSITORYURI",
            "https://github.com/acme/r.git",
        ),
        ("INPUT_DESTINATIONAUTHENTICATION", "token"),
        ("INPUT_PRUNE", "true"),
        ("INPUT_FORCE", "false"),
        ("INPUT_DRYRUN", "false"),
        ("INPUT_TIMEOUT", "60"),
    ];
    for (k, v) in pairs {
        all.retain(|(name, _)| name != k);
        all.push((k, v));
    }
    Environment::from_pairs(all.iter().map(|(k, v)| (*k, *v)))
}

fn errors(e: &Environment) -> Vec<InputError> {
    read(e).config.expect_err("invalid inputs")
}

fn options(e: &Environment) -> Options {
    read(e).config.expect("valid inputs").run
}

#[test]
fn variable_names_follow_the_agent() {
    assert_eq!(
        input_variable("sourceGitRepositoryUri"),
        "INPUT_SOURCEGITREPOSITORYURI"
    );
    assert_eq!(input_variable("a.b c"), "INPUT_A_B_C");
}

#[test]
fn old_task_inputs_work() {
    let e = env(&[
        ("INPUT_SOURCEGITREPOSITORYPERSONALACCESSTOKEN", "src/tok@en"),
        (
            "INPUT_DESTINATIONGITREPOSITORYPERSONALACCESSTOKEN",
            "user:dst-token",
        ),
        ("INPUT_SOURCEVERIFYSSLCERTIFICATE", "false"),
    ]);
    let reading = read(&e);
    let config = reading.config.unwrap();
    let source = config.run.source.credentials.unwrap();
    assert_eq!(source.username(), "org");
    assert!(config.run.source.network.insecure);
    let dest = config.run.destination.credentials.unwrap();
    assert_eq!(dest.username(), "user");
    assert!(reading.secrets.iter().any(|s| s == "src/tok@en"));
    assert!(reading.secrets.iter().any(|s| s == "src%2Ftok%40en"));
    assert!(reading.secrets.iter().any(|s| s == "user:dst-token"));
    assert_eq!(config.run.mode, Mode::Mirror);
    assert!(config.run.prune);
}

#[test]
fn system_access_token_is_a_bearer() {
    let e = env(&[
        ("INPUT_DESTINATIONAUTHENTICATION", "systemAccessToken"),
        (
            "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN",
            "sys-tok",
        ),
    ]);
    let dest = options(&e).destination.credentials.unwrap();
    assert_eq!(dest.header().unwrap(), "Bearer sys-tok");
    assert!(read(&e).secrets.contains(&"sys-tok".to_owned()));
}

#[test]
fn missing_system_access_token_names_the_input() {
    let errs = errors(&env(&[("INPUT_SOURCEAUTHENTICATION", "systemAccessToken")]));
    assert_eq!(errs[0].input, "sourceAuthentication");
}

#[test]
fn generic_connection_from_its_auth_json() {
    let id = "2f3c0a4e-1111-4222-8333-944445555666";
    let e = env(&[
        ("INPUT_DESTINATIONAUTHENTICATION", "serviceConnection"),
        ("INPUT_DESTINATIONSERVICECONNECTION", id),
        (
            &format!("ENDPOINT_AUTH_{id}"),
            r#"{"parameters":{"username":"bob","password":"pw;x"},"scheme":"UsernamePassword"}"#,
        ),
    ]);
    let dest = options(&e).destination.credentials.unwrap();
    assert_eq!(dest.username(), "bob");
    assert!(read(&e).secrets.contains(&"pw;x".to_owned()));
}

#[test]
fn github_connection_token_any_case() {
    let id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    let e = env(&[
        ("INPUT_DESTINATIONAUTHENTICATION", "gitHubConnection"),
        ("INPUT_DESTINATIONGITHUBCONNECTION", id),
        (
            &format!("ENDPOINT_AUTH_SCHEME_{}", id.to_uppercase()),
            "PersonalAccessToken",
        ),
        (
            &format!("ENDPOINT_AUTH_PARAMETER_{id}_ACCESSTOKEN"),
            "ghp_x",
        ),
    ]);
    let dest = options(&e).destination.credentials.unwrap();
    assert_eq!(dest.username(), "x-access-token");
}

#[test]
fn every_github_connection_scheme_gives_its_token() {
    let id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    // The parameter each scheme carries its token in, as Microsoft's own
    // GitHub tasks read them.
    for (scheme, key, token) in [
        ("PersonalAccessToken", "accessToken", "ghp_pat-token"),
        ("OAuth", "AccessToken", "gho_oauth-token"),
        ("OAuth2", "AccessToken", "gho_oauth2-token"),
        ("Token", "AccessToken", "ghp_token-token"),
        ("InstallationToken", "IdToken", "ghs_installation-token"),
    ] {
        let auth = serde_json::json!({ "parameters": { key: token }, "scheme": scheme });
        let e = env(&[
            ("INPUT_DESTINATIONAUTHENTICATION", "gitHubConnection"),
            ("INPUT_DESTINATIONGITHUBCONNECTION", id),
            (&format!("ENDPOINT_AUTH_{id}"), &auth.to_string()),
        ]);
        let reading = read(&e);
        assert!(reading.secrets.contains(&token.to_owned()), "{scheme}");
        let config = reading.config.expect("valid inputs");
        let dest = config.run.destination.credentials.unwrap();
        assert_eq!(dest.username(), "x-access-token", "{scheme}");
        assert!(dest.secret_forms().contains(&token.to_owned()), "{scheme}");
        assert!(config
            .authentication
            .1
            .starts_with("GitHub service connection"));
    }
    // An installation token connection without its token says so.
    let e = env(&[
        ("INPUT_DESTINATIONAUTHENTICATION", "gitHubConnection"),
        ("INPUT_DESTINATIONGITHUBCONNECTION", id),
        (
            &format!("ENDPOINT_AUTH_{id}"),
            r#"{"parameters":{"AccessToken":"not-this-one"},"scheme":"InstallationToken"}"#,
        ),
    ]);
    let errs = errors(&e);
    assert_eq!(errs[0].input, "destinationGitHubConnection");
    assert!(errs[0].message.contains("InstallationToken"), "{errs:?}");
}

#[test]
fn azure_repos_connections_by_token_or_password() {
    let id = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff";
    let token = env(&[
        ("INPUT_SOURCEAUTHENTICATION", "azureReposConnection"),
        ("INPUT_SOURCEAZUREREPOSCONNECTION", id),
        (
            &format!("ENDPOINT_AUTH_{id}"),
            r#"{"parameters":{"apitoken":"ado-pat/x"},"scheme":"Token"}"#,
        ),
    ]);
    let reading = read(&token);
    assert!(reading.secrets.contains(&"ado-pat/x".to_owned()));
    let source = reading.config.unwrap().run.source.credentials.unwrap();
    // The URL's user, as for any token on Azure Repos.
    assert_eq!(source.username(), "org");
    let password = env(&[
        ("INPUT_SOURCEAUTHENTICATION", "azureReposConnection"),
        ("INPUT_SOURCEAZUREREPOSCONNECTION", id),
        (
            &format!("ENDPOINT_AUTH_{id}"),
            r#"{"parameters":{"username":"svc","password":"pw:1"},"scheme":"UsernamePassword"}"#,
        ),
    ]);
    let source = options(&password).source.credentials.unwrap();
    assert_eq!(source.username(), "svc");
    let missing = errors(&env(&[(
        "INPUT_SOURCEAUTHENTICATION",
        "azureReposConnection",
    )]));
    assert_eq!(missing[0].input, "sourceAzureReposConnection");
}

/// An Azure Resource Manager connection with workload identity federation,
/// as the agent passes it, for the destination.
fn entra_env(scheme: &str, extra: &[(&str, &str)]) -> Environment {
    let id = "cccccccc-dddd-4eee-8fff-000000000000";
    let auth = format!(
        r#"{{"parameters":{{"serviceprincipalid":"app-1","tenantid":"tenant-1"}},"scheme":"{scheme}"}}"#
    );
    let mut pairs = vec![
        ("INPUT_DESTINATIONAUTHENTICATION", "entra"),
        ("INPUT_DESTINATIONAZURESUBSCRIPTION", id),
        (
            "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN",
            "job-token-entra",
        ),
        (
            "SYSTEM_OIDCREQUESTURI",
            "https://dev.azure.com/org/p/_apis/distributedtask/hubs/build/plans/x/jobs/y/oidctoken",
        ),
    ];
    let auth_var = format!("ENDPOINT_AUTH_{id}");
    pairs.push((&auth_var, &auth));
    pairs.extend_from_slice(extra);
    env(&pairs)
}

#[test]
fn an_entra_connection_signs_in_with_bearer_tokens_from_a_source() {
    let e = entra_env("WorkloadIdentityFederation", &[]);
    let reading = read(&e);
    // The job token asks for the OIDC tokens: a secret like any other.
    assert!(reading.secrets.contains(&"job-token-entra".to_owned()));
    let config = reading.config.expect("valid inputs");
    let dest = config.run.destination.credentials.unwrap();
    assert!(
        dest.identity()
            .is_some_and(|i| i.contains("app-1") && i.contains("tenant-1")),
        "{:?}",
        dest.identity()
    );
    assert!(config.authentication.1.contains("Entra ID"));
}

#[test]
fn an_entra_connection_that_cannot_sign_in_names_its_input() {
    let secret = entra_env("ServicePrincipal", &[]);
    let errs = errors(&secret);
    assert_eq!(errs[0].input, "destinationAzureSubscription");
    assert!(errs[0].message.contains("workload identity federation"));

    let no_uri = entra_env(
        "WorkloadIdentityFederation",
        &[("SYSTEM_OIDCREQUESTURI", "")],
    );
    let errs = errors(&no_uri);
    assert_eq!(errs[0].input, "destinationAzureSubscription");
    assert!(
        errs[0].message.contains("System.OidcRequestUri"),
        "{errs:?}"
    );

    let no_connection = errors(&env(&[("INPUT_DESTINATIONAUTHENTICATION", "entra")]));
    assert_eq!(no_connection[0].input, "destinationAzureSubscription");
}

#[test]
fn every_problem_is_reported_with_its_input() {
    let errs = errors(&env(&[
        ("INPUT_DESTINATIONGITREPOSITORYURI", ""),
        ("INPUT_PRUNE", "yes"),
        ("INPUT_TIMEOUT", "0"),
        ("INPUT_DEADLINE", "soon"),
        ("INPUT_INCLUDEREFS", "main\nrefs/tags/*"),
        ("INPUT_SOURCEAUTHENTICATION", "ssh"),
        ("INPUT_DESTINATIONAUTHENTICATION", "serviceConnection"),
    ]));
    let named: Vec<&str> = errs.iter().map(|e| e.input).collect();
    for input in [
        "timeout",
        "deadline",
        "sourceAuthentication",
        "destinationServiceConnection",
        "includeRefs",
        "prune",
    ] {
        assert!(named.contains(&input), "{input} missing from {errs:?}");
    }
}

#[test]
fn allowed_redirect_hosts_reach_both_sides() {
    let e = env(&[(
        "INPUT_ALLOWREDIRECTHOSTS",
        "mirror.example.com\n\nOther.Example.com\n",
    )]);
    let given = options(&e);
    let expected = RedirectPolicy::allowing(["mirror.example.com", "other.example.com"]);
    assert_eq!(given.source.network.redirects, expected);
    assert_eq!(given.destination.network.redirects, expected);
    let none = options(&env(&[])).source.network.redirects;
    assert_eq!(none, RedirectPolicy::default());
}

#[test]
fn deadline_reaches_both_sides() {
    let e = env(&[("INPUT_DEADLINE", "30m")]);
    let given = options(&e);
    for network in [&given.source.network, &given.destination.network] {
        let deadline = network.limits.deadline.expect("a deadline");
        assert_eq!(deadline.allowed, Duration::from_secs(30 * 60));
    }
    assert_eq!(options(&env(&[])).source.network.limits.deadline, None);
}

#[test]
fn empty_destination_is_required() {
    let errs = errors(&env(&[("INPUT_DESTINATIONGITREPOSITORYURI", "")]));
    assert_eq!(errs[0].input, "destinationGitRepositoryUri");
}

#[test]
fn directory_file_path_means_not_given() {
    let dir = std::env::temp_dir();
    let e = env(&[("INPUT_CACERTIFICATEFILE", dir.to_str().unwrap())]);
    assert!(options(&e).source.network.ca_file.is_none());
    let e = env(&[("INPUT_CACERTIFICATEFILE", "/nonexistent/ca.pem")]);
    assert_eq!(errors(&e)[0].input, "caCertificateFile");
}

#[test]
fn patterns_skip_blanks_and_comments() {
    let e = env(&[(
        "INPUT_INCLUDEREFS",
        "refs/heads/*\n\n  # tags too\nrefs/tags/v* \r\n",
    )]);
    assert_eq!(
        patterns(&e, "includeRefs"),
        ["refs/heads/*", "refs/tags/v*"]
    );
}

#[test]
fn organization_inputs_become_a_sweep() {
    let e = env(&[
        ("INPUT_MODE", "organization"),
        ("INPUT_SOURCESCOPEURI", "https://dev.azure.com/fabrikam"),
        ("INPUT_SOURCEKIND", "auto"),
        ("INPUT_SOURCEGITREPOSITORYPERSONALACCESSTOKEN", "org-pat"),
        (
            "INPUT_DESTINATIONTEMPLATE",
            "https://github.com/acme-mirror/{project}-{repo}.git",
        ),
        (
            "INPUT_DESTINATIONGITREPOSITORYPERSONALACCESSTOKEN",
            "ghp_dst",
        ),
        ("INPUT_CREATEMISSING", "true"),
        (
            "INPUT_DESTINATIONSCOPEURI",
            "https://github.com/acme-mirror",
        ),
        ("INPUT_DESTINATIONKIND", "github"),
        ("INPUT_FILTER", "^Fabrikam/\n# comment\n"),
        ("INPUT_SKIP", "-old$"),
        ("INPUT_SKIPFORKS", "true"),
        ("INPUT_JOBS", "4"),
        ("INPUT_SHARD", "2/3"),
        ("INPUT_PRUNE", "false"),
        ("INPUT_DRYRUN", "true"),
        ("INPUT_DESTMAXPUSHBYTES", "4GB"),
        ("INPUT_MAXREFUPDATES", "2500"),
    ]);
    assert_eq!(task_mode(&e), Ok(TaskMode::Organization));
    let reading = read_organization(&e);
    let sweep = reading.config.expect("valid inputs").run;
    assert_eq!(sweep.source_scope.scope, "https://dev.azure.com/fabrikam");
    assert_eq!(sweep.source_scope.kind, None);
    let create_in = sweep.create_in.expect("createMissing");
    assert_eq!(create_in.kind, Some(Kind::GitHub));
    assert!(sweep.skip_forks && !sweep.skip_archived);
    assert_eq!(sweep.filter, ["^Fabrikam/"]);
    assert_eq!(sweep.skip, ["-old$"]);
    assert_eq!(sweep.jobs, Some(4));
    assert_eq!(sweep.shard.map(|s| s.to_string()).as_deref(), Some("2/3"));
    assert!(!sweep.prune && sweep.dry_run && !sweep.force);
    assert_eq!(sweep.push.max_bytes, PushBudget::Bytes(4_000_000_000));
    assert_eq!(sweep.push.max_ref_updates, 2500);
    assert_eq!(sweep.destination.token.as_deref(), Some("ghp_dst"));
    // The Basic forms git may send to each forge are secrets too.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghp_dst");
    assert!(reading.secrets.contains(&b64), "{:?}", reading.secrets);
    assert!(reading.secrets.contains(&"org-pat".to_owned()));
}

#[test]
fn mode_defaults_to_repository() {
    assert_eq!(task_mode(&env(&[])), Ok(TaskMode::Repository));
    assert_eq!(
        task_mode(&env(&[("INPUT_MODE", "all")])).unwrap_err().input,
        "mode"
    );
}

#[test]
fn agent_proxy_credentials_are_secret() {
    let e = env(&[
        ("AGENT_PROXYURL", "http://proxy:3128"),
        ("AGENT_PROXYUSERNAME", "me"),
        ("AGENT_PROXYPASSWORD", "p@ss"),
    ]);
    assert!(read(&e).secrets.contains(&"p@ss".to_owned()));
    let proxy = options(&e).source.network.proxy;
    assert_eq!(proxy.as_deref(), Some("http://me:p%40ss@proxy:3128"));
}

#[test]
fn push_limits_default_to_the_host_and_5000_updates() {
    let push = options(&env(&[])).push;
    assert_eq!(push.max_bytes, PushBudget::HostDefault);
    assert_eq!(push.max_ref_updates, DEFAULT_MAX_REF_UPDATES);
}

#[test]
fn push_limit_inputs_reach_the_options() {
    let push = options(&env(&[
        ("INPUT_DESTMAXPUSHBYTES", "1500MiB"),
        ("INPUT_MAXREFUPDATES", "100"),
    ]))
    .push;
    assert_eq!(push.max_bytes, PushBudget::Bytes(1500 << 20));
    assert_eq!(push.max_ref_updates, 100);
    let push = options(&env(&[("INPUT_DESTMAXPUSHBYTES", "0")])).push;
    assert_eq!(push.max_bytes, PushBudget::Unlimited);
}

#[test]
fn bad_push_limits_name_their_inputs() {
    let e = env(&[
        ("INPUT_DESTMAXPUSHBYTES", "2 TB"),
        ("INPUT_MAXREFUPDATES", "0"),
    ]);
    let problems = errors(&e);
    let named = |input: &str| problems.iter().find(|p| p.input == input).cloned();
    let size = named("destMaxPushBytes").expect("destMaxPushBytes");
    assert!(size.message.contains("unknown unit"), "{size}");
    let updates = named("maxRefUpdates").expect("maxRefUpdates");
    assert!(updates.message.contains("at least 1"), "{updates}");
}

/// The test-only key of tests/fixtures/github-app.
const APP_KEY: &str = include_str!("../../../tests/fixtures/github-app/app-key.pem");

fn key_lines(pem: &str) -> Vec<&str> {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn github_app(key: &str) -> Environment {
    env(&[
        ("INPUT_DESTINATIONAUTHENTICATION", "gitHubApp"),
        ("INPUT_DESTINATIONGITHUBAPPID", "12345"),
        ("INPUT_DESTINATIONGITHUBAPPPRIVATEKEY", key),
    ])
}

#[test]
fn a_github_app_key_is_read_from_its_text_with_or_without_line_breaks() {
    let flattened = APP_KEY.split_whitespace().collect::<Vec<_>>().join(" ");
    let escaped = APP_KEY.replace('\n', "\\n");
    for key in [APP_KEY, &flattened, &escaped] {
        let reading = read(&github_app(key));
        let config = reading.config.expect("valid inputs");
        assert_eq!(
            config.authentication.1,
            "GitHub App 12345 (installation tokens)"
        );
        // A token source: nothing is asked of GitHub until a request needs it.
        assert!(config.run.destination.credentials.is_some());
        for line in key_lines(APP_KEY) {
            assert!(reading.secrets.iter().any(|s| s == line), "{line}");
        }
        assert!(!reading.secrets.iter().any(|s| s.contains("BEGIN")));
        // Nothing of the tokens to come: they are told as they arrive.
        assert!(!reading
            .secrets
            .iter()
            .any(|s| s.starts_with("x-access-token")));
    }
}

#[test]
fn a_github_app_key_is_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.pem");
    std::fs::write(&path, APP_KEY).unwrap();
    let reading = read(&github_app(path.to_str().unwrap()));
    assert!(reading.config.is_ok());
    for line in key_lines(APP_KEY) {
        assert!(reading.secrets.iter().any(|s| s == line), "{line}");
    }
}

#[test]
fn github_app_inputs_are_checked_by_name() {
    let e = env(&[
        ("INPUT_SOURCEAUTHENTICATION", "GITHUBAPP"),
        ("INPUT_SOURCEGITHUBAPPAPIURL", "not a url"),
    ]);
    let names: Vec<_> = errors(&e).iter().map(|e| e.input).collect();
    assert!(names.contains(&"sourceGitHubAppId"), "{names:?}");
    assert!(names.contains(&"sourceGitHubAppPrivateKey"), "{names:?}");
    assert!(names.contains(&"sourceGitHubAppApiUrl"), "{names:?}");

    // A key that is not RSA, and a value that is neither a key nor a file:
    // named, and not quoted.
    let not_rsa = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAbc\n-----END EC PRIVATE KEY-----\n";
    let reading = read(&github_app(not_rsa));
    let errors = reading.config.expect_err("invalid");
    assert_eq!(errors[0].input, "destinationGitHubAppPrivateKey");
    assert!(errors[0].message.contains("EC PRIVATE KEY"), "{errors:?}");
    assert!(reading.secrets.iter().any(|s| s == "MHcCAQEEIAbc"));
    let pasted_body = "MIIEpAIBAAKCAQEAsecretbody";
    let reading = read(&github_app(pasted_body));
    let errors = reading.config.expect_err("invalid");
    assert!(
        errors[0].message.contains("no -----BEGIN line"),
        "{errors:?}"
    );
    assert!(!errors[0].message.contains(pasted_body));
    assert!(reading.secrets.iter().any(|s| s == pasted_body));
}

#[test]
fn a_github_app_api_names_the_organization_api_too() {
    let e = Environment::from_pairs([
        ("INPUT_MODE", "organization"),
        ("INPUT_SOURCESCOPEURI", "https://ghe.example.com/acme"),
        ("INPUT_SOURCEKIND", "github"),
        ("INPUT_SOURCEAUTHENTICATION", "gitHubApp"),
        ("INPUT_SOURCEGITHUBAPPID", "7"),
        ("INPUT_SOURCEGITHUBAPPPRIVATEKEY", APP_KEY),
        (
            "INPUT_SOURCEGITHUBAPPAPIURL",
            "https://ghe.example.com/api/v3",
        ),
        (
            "INPUT_DESTINATIONTEMPLATE",
            "https://dev.azure.com/o/p/_git/{repo}",
        ),
    ]);
    let config = read_organization(&e).config.expect("valid inputs");
    assert_eq!(
        config.run.source_scope.api.as_deref(),
        Some("https://ghe.example.com/api/v3")
    );
    assert!(matches!(
        config.run.source.sign_in,
        crate::config::SignIn::GitHubApp(_)
    ));
}

#[test]
fn fail_on_defaults_to_rejected_and_names_itself_when_unknown() {
    let fail_on = |value: &str| {
        read(&env(&[("INPUT_FAILON", value)]))
            .config
            .map(|c| c.fail_on)
    };
    assert_eq!(fail_on(""), Ok(FailOn::Rejected));
    assert_eq!(fail_on("Differences"), Ok(FailOn::Differences));
    assert_eq!(fail_on("never"), Ok(FailOn::Never));
    let errors = fail_on("always").expect_err("unknown value");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].input, "failOn");
    assert!(errors[0].message.contains("rejected, differences, never"));
}

#[test]
fn unexpanded_variables_are_found() {
    assert_eq!(
        unexpanded_variable("$(Build.Repository.Uri)"),
        Some("Build.Repository.Uri")
    );
    assert_eq!(
        unexpanded_variable("https://x/$(System.TeamProject)/_git/$(repo_name)"),
        Some("System.TeamProject")
    );
    assert_eq!(
        unexpanded_variable("a $() b $(1x) c $(ok-name)"),
        Some("ok-name")
    );
    for value in ["https://x/r.git", "$(unclosed", "$ (x)", "$(a b)", ""] {
        assert_eq!(unexpanded_variable(value), None, "{value}");
    }
}

#[test]
fn an_unexpanded_variable_is_its_own_error() {
    // A classic release pipeline has no Build.* variables: the default
    // source stays a macro, which would otherwise fail as "not a URL".
    let e = env(&[
        ("INPUT_SOURCEGITREPOSITORYURI", "$(Build.Repository.Uri)"),
        (
            "INPUT_DESTINATIONGITREPOSITORYPERSONALACCESSTOKEN",
            "$(MirrorToken)",
        ),
    ]);
    let errors = errors(&e);
    let of =
        |input: &str| -> Vec<&InputError> { errors.iter().filter(|e| e.input == input).collect() };
    let source = of("sourceGitRepositoryUri");
    assert_eq!(source.len(), 1, "{errors:?}");
    assert!(
        source[0].message.contains("`$(Build.Repository.Uri)`")
            && source[0].message.contains("classic release pipeline"),
        "{errors:?}"
    );
    // A secret input's value is not quoted, not even its macro.
    let token = of("destinationGitRepositoryPersonalAccessToken");
    assert_eq!(token.len(), 1, "{errors:?}");
    assert!(
        token[0].message.contains("a variable reference")
            && !token[0].message.contains("MirrorToken"),
        "{errors:?}"
    );
}

#[test]
fn credentials_in_the_url_are_not_called_no_token() {
    let e = env(&[(
        "INPUT_DESTINATIONGITREPOSITORYURI",
        "https://bot:secret-in-url@github.com/acme/r.git",
    )]);
    let config = read(&e).config.expect("valid inputs");
    assert_eq!(config.authentication.1, "credentials in the URL");
    // A URL with no password and no token is still "no token", a user
    // name alone (the source's `org@`) included.
    let e = env(&[]);
    let config = read(&e).config.expect("valid inputs");
    assert_eq!(config.authentication.0, "no token");
    assert_eq!(config.authentication.1, "no token");
}

#[test]
fn an_unexpanded_mode_is_reported_by_the_reading() {
    // `run` then leaves out task_mode's own "unknown value" for it.
    let e = env(&[("INPUT_MODE", "$(MirrorMode)")]);
    assert!(task_mode(&e).is_err());
    let errors = errors(&e);
    assert!(
        errors
            .iter()
            .any(|e| e.input == "mode" && e.message.contains("`$(MirrorMode)`")),
        "{errors:?}"
    );
}

#[test]
fn unexpanded_variables_in_inputs_the_run_does_not_use_are_left_alone() {
    // What the classic editor keeps of hidden inputs: repository mode's
    // source default in organization mode, another authentication's app.
    let hidden = [
        ("INPUT_SOURCEGITREPOSITORYURI", "$(Build.Repository.Uri)"),
        ("INPUT_SOURCEGITHUBAPPID", "$(appId)"),
        (
            "INPUT_SOURCEGITREPOSITORYCLONEDIRECTORYNAME",
            "$(Build.Repository.Name)",
        ),
    ];
    let mut pairs = vec![
        ("INPUT_MODE", "organization"),
        ("INPUT_SOURCESCOPEURI", "https://dev.azure.com/fabrikam"),
        (
            "INPUT_DESTINATIONTEMPLATE",
            "https://github.com/acme-mirror/{project}-{repo}.git",
        ),
    ];
    pairs.extend(hidden);
    let e = env(&pairs);
    assert_eq!(task_mode(&e), Ok(TaskMode::Organization));
    if let Err(errors) = read_organization(&e).config {
        panic!("{errors:?}");
    }
    // Repository mode reads the source URL, and names the macro in it.
    let e = env(&hidden);
    let errors = errors(&e);
    assert_eq!(
        errors.iter().map(|e| e.input).collect::<Vec<_>>(),
        ["sourceGitRepositoryUri"],
        "{errors:?}"
    );
}

/// An OpenSSH key's shape; its body is never parsed here.
const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBjZm9vYmFyYmF6\n-----END OPENSSH PRIVATE KEY-----\n";

#[test]
fn ssh_inputs_reach_their_side_in_both_modes() {
    let flattened = SSH_KEY.split_whitespace().collect::<Vec<_>>().join(" ");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy_key");
    std::fs::write(&file, SSH_KEY).unwrap();
    let known = "[git.example.com]:2222 ssh-ed25519 AAAAC3Nz\ngit.example.com ssh-rsa AAAAB3Nz";
    for key in [flattened.as_str(), file.to_str().unwrap()] {
        let pairs = [
            (
                "INPUT_DESTINATIONGITREPOSITORYURI",
                "git@git.example.com:m/r.git",
            ),
            ("INPUT_DESTINATIONSSHKEY", key),
            ("INPUT_DESTINATIONSSHKNOWNHOSTS", known),
            ("INPUT_SOURCESSHACCEPTNEWHOSTKEYS", "true"),
        ];
        let reading = read(&env(&pairs));
        for line in key_lines(SSH_KEY) {
            assert!(reading.secrets.iter().any(|s| s == line), "{line}");
        }
        let run = reading.config.expect("valid inputs").run;
        let ssh = &run.destination.network.ssh;
        assert_eq!(ssh.key_text.as_deref(), Some(SSH_KEY));
        assert_eq!(
            ssh.known_hosts_text.as_deref(),
            Some(&*format!("{known}\n"))
        );
        assert!(!ssh.accept_new_host_keys);
        let source = &run.source.network.ssh;
        assert!(source.key_text.is_none() && source.accept_new_host_keys);

        let organization = env(&[
            ("INPUT_MODE", "organization"),
            ("INPUT_SOURCESCOPEURI", "https://github.com/acme"),
            (
                "INPUT_DESTINATIONTEMPLATE",
                "git@git.example.com:m/{repo}.git",
            ),
            ("INPUT_DESTINATIONSSHKEY", key),
        ]);
        let sweep = read_organization(&organization).config.expect("valid").run;
        assert_eq!(
            sweep.destination.network.ssh.key_text.as_deref(),
            Some(SSH_KEY)
        );
        assert!(sweep.source.network.ssh.key_text.is_none());
    }
    let e = env(&[("INPUT_SOURCESSHKEY", "/no/such/key")]);
    assert!(errors(&e).iter().any(|e| e.input == "sourceSshKey"));
}

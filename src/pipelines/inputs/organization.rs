//! Organization mode: every repository of a scope, as `mirror-all` sweeps
//! it; the credential, selection, network, dry-run and force inputs mean
//! what they mean in repository mode.

use regex::Regex;
use url::Url;

use super::credentials::{read_credentials, read_ssh, DESTINATION, SOURCE};
use super::{
    described_with_url, patterns, read_bool, read_lfs, read_network, read_push, read_selection,
    side_network, Collector, Environment, Reading, FORGE_KINDS,
};
use crate::auth::Credentials;
use crate::config::{ForgeConfig, SweepConfig};
use crate::forge::Kind;
use crate::mirror::RetryPolicy;
use crate::sweep::{Shard, MAX_JOBS};

/// Reads and validates the inputs of organization mode. The credential,
/// selection, network, dry-run and force inputs mean what they mean in
/// repository mode; the repository URLs are not read.
pub(crate) fn read_organization(env: &Environment) -> Reading<SweepConfig> {
    let mut c = Collector::default();
    let network = read_network(env, &mut c);
    let source_verify = read_bool(env, SOURCE.verify, true, &mut c);
    let dest_verify = read_bool(env, DESTINATION.verify, true, &mut c);
    let source = read_credentials(env, &SOURCE, &mut c);
    let destination = read_credentials(env, &DESTINATION, &mut c);
    let source_ssh = read_ssh(env, &SOURCE, &mut c);
    let dest_ssh = read_ssh(env, &DESTINATION, &mut c);
    // Validated as in repository mode; the sweep takes the patterns.
    let selection = read_selection(env, &mut c)
        .map(|_| (patterns(env, "includeRefs"), patterns(env, "excludeRefs")));
    let prune = read_bool(env, "prune", true, &mut c);
    let force = read_bool(env, "force", false, &mut c);
    let dry_run = read_bool(env, "dryRun", false, &mut c);
    let push = read_push(env, &mut c);
    let lfs = read_lfs(env, &mut c, false);

    let scope = required_url(
        env,
        "sourceScopeUri",
        "the organization, group or workspace to mirror, e.g. https://dev.azure.com/ORG",
        &mut c,
    );
    let source_kind = read_kind(env, "sourceKind", &mut c);
    let template = env.input("destinationTemplate");
    if template.is_empty() {
        c.error("destinationTemplate", "required: where each repository goes, e.g. https://github.com/acme-mirror/{project}-{repo}.git or a path on the agent such as $(Pipeline.Workspace)/backup/{project}/{repo}.git");
    } else {
        c.url_secret(template);
    }
    let create_missing = read_bool(env, "createMissing", false, &mut c);
    let dest_scope = create_missing
        .then(|| {
            let what =
            "with createMissing, the organization or group where missing repositories are created";
            required_url(env, "destinationScopeUri", what, &mut c)
        })
        .flatten();
    let dest_kind = read_kind(env, "destinationKind", &mut c);
    let filter = read_regexes(env, "filter", &mut c);
    let skip = read_regexes(env, "skip", &mut c);
    let skip_archived = read_bool(env, "skipArchived", false, &mut c);
    let skip_forks = read_bool(env, "skipForks", false, &mut c);
    let jobs = c.parse(env, "jobs", |text| {
        (text.parse().ok())
            .filter(|n| (1..=MAX_JOBS).contains(&usize::from(*n)))
            .ok_or_else(|| format!("expected a whole number from 1 to {MAX_JOBS}, got `{text}`"))
    });
    let shard = c.parse(env, "shard", |text| {
        text.parse::<Shard>()
            .map_err(|e| format!("{e}; in a matrix of N jobs use $(System.JobPositionInPhase)/$(System.TotalJobsInPhase)"))
    });

    // The same token serves the API and git, and git may send it with the
    // user name the forge documents: tell the agent every Basic form it
    // could take, since the agent masks only what it is told.
    for side in [&source, &destination].into_iter().flatten() {
        let Some(token) = &side.token else { continue };
        let mut users = Kind::ALL.map(Kind::git_username).to_vec();
        users.push("x-access-token");
        users.extend(side.username.as_deref());
        // As on the command line, `user:secret` names the user only when
        // no user name was given; otherwise the colon is the token's own.
        if let (None, Some((user, secret))) = (&side.username, token.split_once(':')) {
            users.push(user);
            c.secret(secret);
        }
        for user in users {
            c.secrets
                .extend(Credentials::basic(user, token.as_str()).secret_forms());
        }
    }

    let run = match (source, destination, selection, scope) {
        (Some(source), Some(destination), Some(selection), Some(scope)) => {
            let authentication = (
                described_with_url(source.described.clone(), env.input("sourceScopeUri")),
                described_with_url(destination.described.clone(), template),
            );
            Some((
                SweepConfig {
                    // A GitHub Enterprise Server's API, named for the app,
                    // is where its organization is listed and created in.
                    source_scope: ForgeConfig {
                        scope,
                        kind: source_kind,
                        api: source.app_api.as_ref().map(Url::to_string),
                    },
                    template: template.to_owned(),
                    create_in: dest_scope.map(|scope| ForgeConfig {
                        scope,
                        kind: dest_kind,
                        api: destination.app_api.as_ref().map(Url::to_string),
                    }),
                    source: source.config(side_network(&network, source_verify, source_ssh)),
                    destination: destination.config(side_network(&network, dest_verify, dest_ssh)),
                    filter,
                    skip,
                    skip_archived,
                    skip_forks,
                    // The task has no input for wikis yet.
                    include_wikis: false,
                    shard,
                    jobs,
                    include: selection.0,
                    exclude: selection.1,
                    prune,
                    force,
                    dry_run,
                    retry: RetryPolicy::default(),
                    push,
                    lfs,
                    only: None,
                },
                authentication,
            ))
        }
        _ => None,
    };
    c.finish(env, run)
}

/// A required URL input; credentials in it are secrets.
fn required_url(
    env: &Environment,
    name: &'static str,
    what: &str,
    c: &mut Collector,
) -> Option<String> {
    let value = env.input(name);
    if value.is_empty() {
        c.error(name, format!("required: {what}"));
        return None;
    }
    if !c.url_secret(value) {
        c.error(
            name,
            format!("expected an https:// URL ({what}), got `{value}`"),
        );
        return None;
    }
    Some(value.to_owned())
}

/// A forge kind pick list; `auto` (or nothing) leaves the kind to be
/// inferred from the URL.
fn read_kind(env: &Environment, name: &'static str, c: &mut Collector) -> Option<Kind> {
    c.parse(env, name, |value| match Kind::from_name(value) {
        _ if value == "auto" => Ok(None),
        Some(kind) => Ok(Some(kind)),
        None => Err(format!(
            "unknown value `{value}`: use one of {}",
            FORGE_KINDS.join(", ")
        )),
    })
    .flatten()
}

/// A multiLine input of regular expressions, each checked here so that a
/// bad one is reported against its input.
fn read_regexes(env: &Environment, name: &'static str, c: &mut Collector) -> Vec<String> {
    let lines = patterns(env, name);
    for line in &lines {
        if let Err(e) = Regex::new(line) {
            c.error(
                name,
                format!("`{line}` is not a valid regular expression: {e}"),
            );
        }
    }
    lines
}

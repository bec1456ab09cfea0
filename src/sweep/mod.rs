//! Sweeping an organization (`git-relay mirror-all`, the task's
//! organization mode): discover, select, shard, name, create, mirror, sum
//! up.
//!
//! This is where `forge` (what exists, through the forge's API) meets
//! the `fleet` (mirroring many repositories at once): it turns a
//! [`SweepConfig`] into a list of fleet jobs, and the destination's API
//! into the fleet's steps around each mirror: creating a missing
//! repository before, setting its default branch after. With
//! `--include-wikis` each wiki the forge lists is one more job, named
//! `NAME.wiki` through the same template.
//! The fleet, `shard`, `template` and `summary` serve only sweeps and
//! know nothing of forges. What a sweep prints at the end is the front
//! ends' business: they render the [`Summary`] each in their way.

pub(crate) mod fleet;
pub(crate) mod shard;
pub(crate) mod summary;
pub(crate) mod template;

pub(crate) use fleet::{default_jobs, MAX_JOBS};
pub(crate) use shard::Shard;
pub use summary::Summary;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use percent_encoding::percent_decode_str;
use regex::Regex;
use url::Url;

use crate::auth::{self, CredentialSources, Credentials, Scheme};
use crate::config::{ForgeConfig, SideConfig, SignIn, SweepConfig};
use crate::error::Failure;
use crate::forge::{self, Api, Created, Kind, NewRepo, RemoteRepo, Scope};
use crate::mirror::{Mode, Options, Outcome, RefSelection, Report};
use crate::output;
use crate::transport::Location;
use fleet::{Job, Prepared, WikiJob, Work};

/// What to do about a destination wiki that does not exist, when the
/// destination's forge is not named (no --dest-scope).
const WIKI_MISSING: &str = "the destination wiki does not exist: on GitHub, GitLab and Gitea a wiki's repository exists once its first page is saved (save one, it is overwritten with --force); an Azure DevOps project wiki is created with --create-missing --dest-scope";
use template::Template;

/// Checks `config` as [`sweep`] does before it asks any forge: the scope,
/// the template, the filters. For a caller that wants a bad sweep refused
/// at start (`git-relay serve`), not at its first run.
pub(crate) fn check(config: &SweepConfig) -> Result<(), String> {
    Sweep::new(config).map(drop)
}

/// Discovers, selects and mirrors every repository `config` names, and
/// returns the outcome of each. Shared by the command line and the Azure
/// Pipelines task, which report the same [`Summary`] each in their way.
/// A sweep that stops before mirroring is a usage error, or a forge's API
/// that failed (discovery, or listing the destination).
pub fn sweep(config: &SweepConfig) -> Result<Summary, Failure> {
    let started = Instant::now();
    let sweep = Sweep::new(config).map_err(Failure::usage)?;
    let mut found = forge::discover(&sweep.source_api, &sweep.source)?;
    if config.include_wikis {
        let wikis = forge::wikis(&sweep.source_api, &sweep.source, &found)?;
        found.extend(wikis);
    }
    let total = found.len();
    // Every destination the source still accounts for, selected or not.
    let listed: HashSet<PathBuf> = found
        .iter()
        .map(|r| PathBuf::from(sweep.template.render(&r.owner, &r.project, &r.name)))
        .collect();
    // What each repository's default branch is on the source, for the
    // destinations this run creates.
    let default_branches: HashMap<String, String> = found
        .iter()
        .filter_map(|r| Some((r.full_name(), r.default_branch.clone()?)))
        .collect();
    let wiki_count = found.iter().filter(|r| r.wiki).count();
    let jobs = sweep.jobs(found);
    if let Some(message) = shared_destination(&jobs) {
        return Err(Failure::usage(message));
    }
    let wikis = match wiki_count {
        0 => String::new(),
        n => format!(" (wikis included: {n})"),
    };
    output::info(format_args!(
        "{} {}: {total} repositories listed{wikis}, {} selected{}",
        sweep.source.kind,
        sweep.scope_display,
        jobs.len(),
        config
            .shard
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default()
    ));
    let existing = match &sweep.create {
        Some(create) => {
            let mut there = forge::discover(&create.api, &create.scope)?;
            if config.include_wikis {
                let wikis = forge::wikis(&create.api, &create.scope, &there)?;
                there.extend(wikis);
            }
            there.iter().map(|r| create.key_of(r)).collect()
        }
        None => HashSet::new(),
    };
    let prepare = |job: &Job| -> Result<Prepared, Failure> {
        let Some(create) = &sweep.create else {
            return Ok(Prepared::Ready);
        };
        let repo = create
            .new_repo(&job.destination)
            .map_err(|message| Failure::failed(message, None))?;
        if existing.contains(&create.key(&repo)) {
            return Ok(Prepared::Ready);
        }
        let kind = create.scope.kind;
        // Only what the forge can create would be created: a dry run says
        // the same as the run about a wiki no API makes.
        if config.dry_run && (job.wiki.is_none() || forge::can_create_wikis(kind)) {
            return Ok(Prepared::WouldCreate);
        }
        let made = match job.wiki {
            Some(_) => forge::create_wiki(&create.api, &create.scope, &repo),
            None => forge::create(&create.api, &create.scope, &repo),
        };
        match made {
            Ok(Created::Created) => Ok(Prepared::Created),
            Ok(Created::Existed) => Ok(Prepared::Ready),
            Err(err) => Err(Failure::failed(
                format!("creating the destination: {err}"),
                err.hint(),
            )),
        }
    };
    // A repository created empty gets the source's default branch once
    // the mirror has pushed it; a forge that refuses costs a warning.
    let created = |job: &Job, report: &Report| -> Result<(), String> {
        let (Some(create), Some(branch)) = (&sweep.create, default_branches.get(&job.name)) else {
            return Ok(());
        };
        let full = format!("refs/heads/{branch}");
        let pushed = (report.refs.iter()).any(|r| r.name == full && r.result == Outcome::Ok);
        if !pushed {
            // An empty source has no branch to point at; otherwise the
            // forge would refuse a branch the destination does not have.
            if report.refs.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "the default branch was not set to {branch}: that branch was not mirrored (see --include/--exclude)"
            ));
        }
        let repo = create.new_repo(&job.destination)?;
        forge::set_default_branch(&create.api, &create.scope, &repo, branch).map_err(|err| {
            let hint = err.hint().map(|h| format!(" ({h})")).unwrap_or_default();
            format!("the default branch could not be set to {branch}: {err}{hint}")
        })
    };
    let parallel = config.jobs.map_or_else(default_jobs, usize::from);
    let steps = fleet::Steps {
        prepare: &prepare,
        created: &created,
    };
    let outcomes = fleet::run(&jobs, parallel, config.retry, steps);
    let summary = Summary::new(
        if config.dry_run { "dry-run" } else { "mirror" },
        sweep.scope_display.clone(),
        config.shard.map(|s| s.to_string()),
        outcomes,
        started.elapsed(),
    );
    if let Some(root) = sweep.template.local_root() {
        report_orphans(&root, &listed);
    }
    Ok(summary)
}

/// Backups are never deleted: a repository that disappeared from the source
/// (deleted, renamed, moved) keeps its backup, and the sweep says so.
fn report_orphans(root: &Path, listed: &HashSet<PathBuf>) {
    let mut found = Vec::new();
    find_bare_repositories(root, 4, &mut found);
    found.retain(|path| !listed.contains(path));
    found.sort();
    for path in &found {
        output::warn(format_args!(
            "kept {}: its repository is no longer listed by the source (backups are never deleted; remove it yourself when it is no longer wanted)",
            path.display()
        ));
    }
}

/// Bare repositories under `dir`, `depth` levels deep at most; a repository
/// is not searched further.
fn find_bare_repositories(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if path.join("HEAD").is_file() && path.join("objects").is_dir() {
            out.push(path);
        } else if depth > 1 {
            find_bare_repositories(&path, depth - 1, out);
        }
    }
}

/// Two repositories rendered to one destination would overwrite each
/// other (a template without {project} over same-named repositories).
fn shared_destination(jobs: &[Job]) -> Option<String> {
    let mut seen = std::collections::HashMap::new();
    for job in jobs.iter().filter(|j| !matches!(j.work, Work::Skip(_))) {
        if let Some(other) = seen.insert(job.destination.to_lowercase(), &job.name) {
            return Some(format!(
                "{other} and {} would both be mirrored to {}: add {{project}} to the destination template, or --skip one of them",
                job.name, job.destination
            ));
        }
    }
    None
}

/// Everything decided from the configuration before any request.
struct Sweep<'a> {
    config: &'a SweepConfig,
    source: Scope,
    source_api: Api,
    /// The scope URL without credentials, for messages.
    scope_display: String,
    template: Template,
    filter: Vec<Regex>,
    skip: Vec<Regex>,
    create: Option<Creator>,
}

/// Where and how `--create-missing` creates repositories.
struct Creator {
    scope: Scope,
    api: Api,
}

impl Sweep<'_> {
    fn new(config: &SweepConfig) -> Result<Sweep<'_>, String> {
        let (source, source_api, scope_display) =
            scope_and_api("source scope", &config.source_scope, &config.source)?;
        let create = match &config.create_in {
            Some(forge) => {
                let (scope, api, _) = scope_and_api("--dest-scope", forge, &config.destination)?;
                Some(Creator { scope, api })
            }
            None => None,
        };
        let regexes = |patterns: &[String], flag: &str| -> Result<Vec<Regex>, String> {
            patterns
                .iter()
                .map(|p| Regex::new(p).map_err(|e| format!("{flag} `{p}`: {e}")))
                .collect()
        };
        let template = Template::new(&config.template)?;
        if create.is_some() && !template.is_url() {
            return Err("--create-missing creates repositories on a forge: the destination template must be an https:// URL (local destinations are created anyway)".to_owned());
        }
        Ok(Sweep {
            config,
            template,
            filter: regexes(&config.filter, "--filter")?,
            skip: regexes(&config.skip, "--skip")?,
            source,
            source_api,
            scope_display,
            create,
        })
    }

    /// The repositories to mirror, in name order: those the filters and the
    /// shard select, with disabled, archived and forked ones marked skipped.
    fn jobs(&self, found: Vec<RemoteRepo>) -> Vec<Job> {
        let mut jobs: Vec<Job> = found
            .into_iter()
            .filter(|r| {
                let name = r.full_name();
                self.config.shard.is_none_or(|s| s.contains(&name))
                    && (self.config.only.as_ref()).is_none_or(|only| (only.0)(&r.clone_url))
                    && (self.filter.is_empty() || self.filter.iter().any(|f| f.is_match(&name)))
                    && !self.skip.iter().any(|s| s.is_match(&name))
            })
            .map(|r| self.job(&r))
            .collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        jobs
    }

    fn job(&self, repo: &RemoteRepo) -> Job {
        let destination = self.template.render(&repo.owner, &repo.project, &repo.name);
        let skip = if repo.disabled {
            Some("disabled")
        } else if repo.archived && self.config.skip_archived {
            Some("archived")
        } else if repo.fork && self.config.skip_forks {
            Some("fork")
        } else {
            None
        };
        let work = match skip {
            Some(reason) => Work::Skip(reason.to_owned()),
            None => match self.options(repo, &destination) {
                Ok(options) => Work::Mirror(Box::new(options)),
                Err(message) => Work::Invalid(message),
            },
        };
        let dest_kind = self.create.as_ref().map(|c| c.scope.kind);
        Job {
            name: repo.full_name(),
            source: auth::redacted_url(&repo.clone_url),
            destination: auth::redacted_url(&destination),
            work,
            wiki: repo.wiki.then(|| WikiJob {
                missing: match dest_kind {
                    Some(kind) => forge::wiki_missing_hint(kind).to_owned(),
                    None => WIKI_MISSING.to_owned(),
                },
            }),
        }
    }

    fn options(&self, repo: &RemoteRepo, destination: &str) -> Result<Options, String> {
        let (config, username) = (self.config, self.source.kind.git_username());
        let source = git_side(Some(self.source.kind), &config.source).endpoint(
            "source",
            &repo.clone_url,
            Some(username),
        )?;
        self.check_clone_url(&source)?;
        let dest_kind = self.create.as_ref().map(|c| c.scope.kind);
        let destination = git_side(dest_kind, &config.destination).endpoint(
            "destination",
            destination,
            dest_kind.map(Kind::git_username),
        )?;
        Ok(Options {
            source,
            destination,
            selection: RefSelection::new(&config.include, &config.exclude)?,
            prune: config.prune,
            force: config.force,
            mode: if config.dry_run {
                Mode::DryRun
            } else {
                Mode::Mirror
            },
            push: config.push,
            lfs: config.lfs.clone(),
        })
    }

    /// A clone URL comes from the forge's answer, not from the user: the
    /// source's credentials go there only if it is on the host of the scope
    /// or of its API (or a host the user allowed), and never from https to
    /// http.
    fn check_clone_url(&self, source: &crate::mirror::Endpoint) -> Result<(), String> {
        let Location::Http { url, .. } = &source.location else {
            return Ok(());
        };
        let scope = Url::parse(&self.scope_display).ok();
        let trusted = scope.iter().chain([&self.source.api]).any(|from| {
            let policy = &source.network.redirects;
            crate::transport::check_host(from, url, source.credentials.is_some(), policy).is_ok()
        });
        if trusted {
            return Ok(());
        }
        Err(format!(
            "the forge lists the clone URL {url}, on another host than {} and its API (or from https to http): the source credentials are not sent there; allow that host with --allow-redirect-host if it is the forge's own",
            self.scope_display
        ))
    }
}

impl Creator {
    /// The repository a destination URL names, as the forge would create
    /// it: the last path segment without `.git`, and for Azure DevOps the
    /// project before `/_git/`.
    fn new_repo(&self, destination: &str) -> Result<NewRepo, String> {
        let url = Url::parse(destination).map_err(|_| {
            format!("--create-missing needs a URL destination template, not {destination}")
        })?;
        let segments: Vec<String> = url
            .path_segments()
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let last = segments.last().cloned().unwrap_or_default();
        let name = last.strip_suffix(".git").unwrap_or(&last).to_owned();
        if name.is_empty() {
            return Err(format!("no repository name at the end of {url}"));
        }
        let project = match segments.len() {
            n if n >= 3 && segments[n - 2] == "_git" => Some(segments[n - 3].clone()),
            _ => None,
        };
        Ok(NewRepo { project, name })
    }

    /// What identifies a repository within the destination scope: its name,
    /// and in Azure DevOps its project (names are case-insensitive on every
    /// forge listed).
    fn key(&self, repo: &NewRepo) -> (String, String) {
        let project = match self.scope.kind {
            Kind::AzureDevOps => repo
                .project
                .as_ref()
                .or(self.scope.project.as_ref())
                .map(|p| p.to_lowercase())
                .unwrap_or_default(),
            _ => String::new(),
        };
        (project, repo.name.to_lowercase())
    }

    fn key_of(&self, repo: &RemoteRepo) -> (String, String) {
        self.key(&NewRepo {
            project: Some(repo.project.clone()),
            name: repo.name.clone(),
        })
    }
}

/// A side's settings for git on a forge of `kind`: on Bitbucket Cloud, an
/// API token given with the Atlassian account's email (which the API takes,
/// see [`api_credentials`]) signs git in as `x-bitbucket-api-token-auth`
/// (which git takes; the email it refuses).
fn git_side(kind: Option<Kind>, side: &SideConfig) -> Cow<'_, SideConfig> {
    let token_side = side.scheme == Scheme::Basic && side.sign_in == SignIn::Token;
    if kind == Some(Kind::Bitbucket) && token_side {
        let api_token = forge::api_token_for_git(side.username.as_deref(), side.token.as_deref());
        if let Some(secret) = api_token {
            return Cow::Owned(SideConfig {
                username: Some(forge::API_TOKEN_GIT_USER.to_owned()),
                token: Some(secret.to_owned()),
                ..side.clone()
            });
        }
    }
    Cow::Borrowed(side)
}

/// Reads a scope URL (credentials in it are taken out and registered as
/// secrets) and makes a client for its API with `side`'s credentials.
fn scope_and_api(
    what: &str,
    forge: &ForgeConfig,
    side: &SideConfig,
) -> Result<(Scope, Api, String), String> {
    if let Some(token) = &side.token {
        crate::auth::register_secret(token);
    }
    let Location::Http {
        url,
        username: url_user,
        password: url_pass,
    } = Location::parse(&forge.scope).map_err(|e| format!("{what}: {e}"))?
    else {
        return Err(format!("{what} must be an https:// URL"));
    };
    let api = (forge.api.as_deref())
        .map(|a| Url::parse(a).map_err(|e| format!("{what} API URL: {e}")))
        .transpose()?;
    let scope = Scope::parse(&url, forge.kind, api.as_ref()).map_err(|e| format!("{what}: {e}"))?;
    let side_name = if what == "source scope" {
        "source"
    } else {
        "destination"
    };
    let credentials = match side.sign_in {
        // Asked about the scope URL: git's credentials for the forge's
        // host are the ones its API takes.
        SignIn::CredentialHelper => {
            let username = (side.username.as_deref())
                .filter(|u| !u.is_empty())
                .or(url_user.as_deref());
            let helper = auth::helper::CredentialHelper::new(&url, username);
            let helper = match scope.kind {
                Kind::GitLab => helper.bearer(),
                _ => helper,
            };
            Some(Credentials::from_source(std::sync::Arc::new(helper)))
        }
        _ => match side.signed_in(what)? {
            Some(signed_in) => Some(signed_in),
            None => (side.api_sign_in(side_name, &scope.api, &scope.owner)).or_else(|| {
                api_credentials(scope.kind, side, url_user.as_deref(), url_pass.as_deref())
            }),
        },
    };
    let client =
        forge::client(&scope, credentials.as_ref(), &side.network).map_err(|e| e.to_string())?;
    Ok((scope, client, url.to_string()))
}

/// The credentials the forge's API takes: the same token as git, but sent
/// as `Bearer` where the API wants that (GitLab, for one, refuses Basic),
/// and as Basic where a user name is part of it (Azure DevOps PATs,
/// Bitbucket API tokens with the account's email, app passwords).
fn api_credentials(
    kind: Kind,
    side: &SideConfig,
    url_user: Option<&str>,
    url_pass: Option<&str>,
) -> Option<Credentials> {
    let (username, auth) = (side.username.as_deref(), side.scheme);
    let token = side
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .or(url_pass)?;
    let named = username.is_some() || url_user.is_some() || token.contains(':');
    let basic_user = matches!(kind, Kind::Bitbucket | Kind::BitbucketServer) && named;
    if auth == Scheme::Bearer || (kind.api_prefers_bearer() && !basic_user) {
        // A `user:secret` token names its user for git; the API wants the
        // secret alone.
        let secret = match (username, token.split_once(':')) {
            (None, Some((_, secret))) if auth == Scheme::Basic => secret,
            _ => token,
        };
        return Credentials::resolve(&CredentialSources {
            token: Some(secret),
            scheme: Scheme::Bearer,
            ..CredentialSources::default()
        });
    }
    Credentials::resolve(&CredentialSources {
        username,
        token: Some(token),
        url_username: url_user,
        url_password: url_pass,
        scheme: Scheme::Basic,
        default_username: kind.git_username(),
    })
}

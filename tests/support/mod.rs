//! Test support for git-relay's integration tests.
//!
//! git-relay talks to two git servers over smart HTTP, so its tests need real
//! ones: a mock would only prove that the relay agrees with our own reading of
//! the protocol. This module owns everything a test needs to stand such a
//! server up in one call and stay short:
//!
//! * [`GitServer`]: git's own `git http-backend` CGI behind a small HTTP/1.1
//!   server written here on `std::net` (thread per connection), with Basic and
//!   Bearer auth, optional TLS with a certificate minted per server, protocol v2
//!   on or off, a dumb-HTTP mode, and a log of every request it answered so
//!   tests can assert on what went over the wire (e.g. "no pack was fetched").
//! * Repository helpers ([`WorkRepo`], [`git`], [`refs_of`], [`fsck_strict`],
//!   [`install_hook`]) that drive the git CLI with a deterministic environment,
//!   so object ids and behaviour do not depend on the developer's config.
//! * [`FaultProxy`]: a TCP proxy placed in front of a server that cuts,
//!   stalls or garbles connections on purpose, for the fault tests.
//! * [`EchoServer`]: a hostile server quoting the client's credentials back
//!   in error bodies, `ERR` pkt-lines and forge JSON, cut at any offset.
//! * [`HostileServer`]: a hand-written smart-HTTP server that says what no
//!   git would (an endless ref advertisement, a trickled body, endless
//!   side-band progress), and [`run_bounded`] to run the relay against it
//!   with a time limit and a memory ceiling, for the tests of its bounds.
//! * [`ForwardProxy`]: an HTTP proxy that sends every request, whatever
//!   host it names, to one local server.
//! * [`LfsServer`]: a Git LFS server (giftless, installed by
//!   `tests/lfs/install.sh`) behind a front that checks Basic auth, checks
//!   uploads against their oids and logs every request; a [`GitServer`]
//!   built with [`lfs`](ServerBuilder::lfs) serves it where git-lfs looks,
//!   and the `lfs_*` fixtures push and check LFS content with the real
//!   git-lfs client.
//! * [`relay`]: the git-relay binary under test, with the ambient environment
//!   that could change its behaviour (proxies, CA overrides, its own
//!   `GIT_RELAY_*` settings) removed.
//!
//! Three submodules serve fewer tests and keep their own namespace, since their
//! names (`Kind`, `root`, `json`) would crowd the glob import every test uses:
//!
//! * [`forge`]: fake forge APIs (Azure DevOps, GitHub, GitLab, Bitbucket
//!   Cloud and Server, Gitea) over real HTTP, whose clone URLs lead to a
//!   [`GitServer`], for `mirror-all` and task mode's organization sweeps.
//! * [`entra`]: a fake Microsoft Entra ID (token endpoint and instance
//!   metadata endpoint) issuing short-lived tokens that a [`GitServer`]
//!   built with [`BearerTokens`] accepts, for the `--*-auth entra` tests.
//! * [`oidc`]: a pipeline's OIDC endpoint and an Entra ID token endpoint,
//!   for the task's sign-in through a workload identity federation
//!   service connection.
//! * [`serve`]: `git-relay serve` as a process ([`serve::Serve`]), a
//!   small HTTP client for its endpoints, each forge's webhook deliveries
//!   (signed headers, push payloads) and a strict Prometheus text reader.
//! * [`task`]: the Azure Pipelines agent's environment for a task run, a
//!   parser for the logging commands the task prints, and the check of
//!   task.json against the published schema ([`task::schema`], with
//!   `tasks.schema.json` beside it).
//!
//! Everything binds 127.0.0.1 only and lives in temporary directories that are
//! removed when the owning value is dropped.
//!
//! Every integration test file declares `mod support;` and nothing else from
//! `tests/`, so each file here is compiled once per test crate, never twice.

// Each integration test file compiles its own copy of this module and uses only
// part of it.
#![allow(dead_code, unused_imports)]

pub mod entra;
pub mod forge;
pub mod oidc;
pub mod serve;
pub mod task;

mod cap;
mod cgi;
mod delay;
mod echo;
mod faults;
mod fixtures;
mod hostile;
mod http;
mod lfs;
mod proxy;
mod relay;
mod repo;
mod run;
mod server;
mod sshd;
mod tls;

pub use cap::{Answer, CapBuilder, CapProxy, Close, Push};
pub use delay::DelayProxy;
pub use echo::{echo_text, Echo, EchoServer};
pub use faults::{Fault, FaultProxy};
pub use fixtures::{
    lfs_clone_checked, lfs_commit, lfs_content, lfs_pointer, lfs_push, lfs_source, lfs_work_repo,
    many_tags, merge_heavy_branches, noise_history, oversized_commit, populated_source, tag_every,
    unmerged_branch, LfsFile,
};
pub use hostile::{run_bounded, Bounded, HostileServer, Script};
pub use lfs::{sha256_hex, LfsBuilder, LfsKind, LfsRequest, LfsServer, LFS_OBJECTS_MISSING};
pub use proxy::ForwardProxy;
pub use relay::relay;
pub use repo::{
    fsck_strict, git, git_ok, git_with_input, install_hook, refs_of, RefLog, RefUpdate, WorkRepo,
};
pub use run::{command, credentials, noise, run, run_measuring_memory, Run};
pub use server::{BearerTokens, GitServer, Request, ServerBuilder};
pub use sshd::SshServer;

//! git-relay keeps a destination git repository identical to a source
//! repository (`git push --mirror` semantics) by relaying the git protocol
//! between the two servers: only the objects the destination lacks move,
//! streamed from one connection into the other, never through local disk.
//!
//! The crate is layered so each part can be read and tested alone:
//!
//! - [`protocol`] parses and encodes the git wire protocol over `Read`/`Write`
//!   and knows nothing of HTTP.
//! - [`transport`] carries protocol bytes to a server: smart HTTP, or a local
//!   source's `git upload-pack` over pipes (local destinations are backups).
//! - [`store`] keeps backups on disk through git2: the relayed pack goes
//!   into the object database, dropped history is archived, `verify` checks.
//! - [`auth`] owns credentials and the redactor every output line passes;
//!   `child` starts every child process without them.
//! - [`mirror`] selects refs, plans, relays the pack, verifies and reports;
//!   it knows nothing of command lines or pipelines.
//! - `forge` lists and creates repositories through forge REST APIs;
//!   [`sweep`] mirrors every repository a forge lists, in parallel, and
//!   sums them up (`git-relay mirror-all`).
//! - [`config`] is what the front ends hand down: plain settings, no clap;
//!   [`error`] is what they hand back up: a failure and an exit code.
//! - [`cli`], [`output`] and [`pipelines`] are the edges a person, a script
//!   or an Azure Pipelines agent sees; each turns its input into a
//!   [`config`] and neither knows of the other.
//! - [`serve`] is the long-running edge (`git-relay serve`): webhooks and
//!   polling queue mirrors and sweeps, run on plain threads as the command
//!   line runs them; its configuration file takes `cli`'s flags.
//!
//! `docs/architecture.md` in the repository walks through one run from end
//! to end, the security model, and where to add a forge, an auth kind or a
//! transport.

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod auth;
mod child;
pub mod cli;
pub mod config;
pub mod error;
pub(crate) mod forge;
#[cfg(test)]
mod fuzz_corpus;
pub(crate) mod hosts;
pub mod lfs;
pub mod mirror;
pub mod output;
pub mod pipelines;
pub mod protocol;
pub mod report;
pub mod serve;
pub mod store;
pub mod sweep;
pub mod transport;

/// The webhook parser's entry point for `fuzz/`'s `webhook` target (the
/// `serve` module is private to the crate). Not part of the supported API.
#[doc(hidden)]
pub use serve::webhook::fuzz_targets as webhook_fuzz_targets;

/// The `agent=` capability and User-Agent suffix we announce to servers.
pub(crate) const AGENT: &str = concat!("git-relay/", env!("CARGO_PKG_VERSION"));

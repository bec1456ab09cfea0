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
//!   `git upload-pack`/`git receive-pack` over pipes.
//! - [`auth`] owns credentials and the redactor every output line passes.
//! - [`mirror`] selects refs, plans, relays the pack, verifies and reports;
//!   it knows nothing of command lines or pipelines.
//! - [`cli`], [`output`] and [`pipelines`] are the edges a person, a script
//!   or an Azure Pipelines agent sees.

#![deny(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod mirror;
pub mod output;
pub mod pipelines;
pub mod protocol;
pub mod transport;

/// The `agent=` capability and User-Agent suffix we announce to servers.
pub const AGENT: &str = concat!("git-relay/", env!("CARGO_PKG_VERSION"));

//! `git-relay serve`: mirrors that follow every push (being built).

pub(crate) mod config;
pub(crate) mod http;
#[allow(dead_code)]
pub(crate) mod identity;
pub(crate) mod queue;
pub(crate) mod status;
pub(crate) mod webhook;

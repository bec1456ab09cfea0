//! `git-relay serve`: a long-running mirror service driven by webhooks and polling.

pub(crate) mod http;
pub(crate) mod status;

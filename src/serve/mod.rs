//! `git-relay serve`: mirrors kept in step by webhooks and polling.

pub(crate) mod config;

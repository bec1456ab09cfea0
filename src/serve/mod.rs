//! `git-relay serve`: mirrors kept in step by webhooks, with polling as the safety net.

pub(crate) mod webhook;

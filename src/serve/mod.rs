//! `git-relay serve`: mirrors that follow their sources from webhooks, with polling as the safety net.

pub(crate) mod queue;

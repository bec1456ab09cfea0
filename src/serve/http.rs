//! The HTTP server of `git-relay serve` (written next).

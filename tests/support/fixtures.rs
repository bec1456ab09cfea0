//! Repositories that several test files start from.

use super::{git, GitServer, WorkRepo};

/// `src.git` on `server` with two branches, a lightweight and an annotated
/// tag, and a pull-request ref (a host-internal namespace mirrors leave out
/// by default). Returns the work tree it was pushed from, for later changes.
pub fn populated_source(server: &GitServer) -> WorkRepo {
    let work = WorkRepo::new();
    work.commit("first");
    work.commit("second");
    work.tag("v1");
    work.annotated_tag("v1-annotated", "release 1");
    work.branch("feature");
    work.checkout("feature");
    work.commit("feature work");
    work.checkout("main");
    work.commit("third");
    let src = server.create_bare("src.git");
    work.push_mirror_to(&src);
    git(
        &src,
        &["update-ref", "refs/pull/1/head", "refs/heads/feature"],
    );
    work
}

//! The LFS test harness is real: the git-lfs client pushes to and fetches
//! from giftless through it, its credentials are checked, and its request
//! log and storage show what happened. The LFS tests of git-relay stand on
//! these, so they must fail when the harness does.

mod support;

use std::io::{Read as _, Write as _};

use support::*;

/// A push by git-lfs lands in the repository's storage and the log shows
/// each upload; a clone then gets every object back, and git-lfs agrees
/// nothing is missing or damaged.
#[test]
fn git_lfs_pushes_then_fetches_everything_back() {
    let server = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&server, "src.git", &[1000, 70_000, 300_000]);
    let lfs = server.lfs();

    let mut expected: Vec<(String, u64)> = files.iter().map(|f| (f.oid.clone(), f.size)).collect();
    expected.sort();
    assert_eq!(lfs.objects("src.git"), expected);
    let mut uploaded = lfs.uploaded();
    uploaded.sort();
    let oids: Vec<String> = expected.iter().map(|(oid, _)| oid.clone()).collect();
    assert_eq!(
        uploaded,
        oids,
        "one upload per object: {:#?}",
        lfs.requests()
    );
    let batches = lfs.requests_of(LfsKind::Batch);
    assert!(
        batches
            .iter()
            .any(|b| b.operation.as_deref() == Some("upload") && b.status == 200 && b.actions == 3),
        "an upload batch that asked for the 3 objects: {batches:#?}"
    );
    // git-lfs sent each object with the header its action carried.
    for upload in lfs.requests_of(LfsKind::Upload) {
        assert_eq!(
            upload.authorization.as_deref(),
            Some(lfs.action_authorization())
        );
        assert_eq!(upload.repo.as_deref(), Some("src.git"));
    }
    // Nothing but batches and transfers (no locks API calls: the fixtures
    // turn lock verification off).
    assert!(
        lfs.requests_of(LfsKind::Other).is_empty(),
        "{:#?}",
        lfs.requests()
    );
    // The git side saw no LFS request, and the LFS side no git request.
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.path.contains("/info/lfs")));

    lfs.clear_requests();
    let clone = lfs_clone_checked(&server, "src.git");
    for file in &files {
        let content = std::fs::read(clone.path().join(&file.path)).expect("checked-out LFS file");
        assert_eq!(content, lfs_content(&file.path, file.size as usize));
    }
    let mut downloaded = lfs.downloaded();
    downloaded.sort();
    assert_eq!(downloaded, oids, "{:#?}", lfs.requests());
    assert!(lfs.requests_of(LfsKind::Upload).is_empty());
}

/// Over TLS the hrefs are https on the git server's port, and git-lfs
/// (trusting the server's CA through git's config) goes both ways.
#[test]
fn lfs_works_behind_a_tls_git_server() {
    let server = GitServer::builder().tls(true).lfs(true).start();
    let (_work, files) = lfs_source(&server, "src.git", &[3_000, 6_000]);
    assert_eq!(server.lfs().uploaded().len(), files.len());
    let uploads = server.lfs().requests_of(LfsKind::Upload);
    assert!(uploads
        .iter()
        .all(|r| r.path.starts_with("/src.git/info/lfs/objects/storage/")));
    let clone = lfs_clone_checked(&server, "src.git");
    for file in &files {
        let content = std::fs::read(clone.path().join(&file.path)).unwrap();
        assert_eq!(content, lfs_content(&file.path, file.size as usize));
    }
    assert_eq!(server.lfs().downloaded().len(), files.len());
}

/// With hrefs on another origin (the LFS server's own port), as GitHub's
/// lead to another host, git-lfs still goes both ways with the actions'
/// headers alone.
#[test]
fn hrefs_can_lead_to_another_origin() {
    let server = GitServer::builder()
        .lfs(true)
        .lfs_hrefs_elsewhere(true)
        .start();
    let (_work, files) = lfs_source(&server, "src.git", &[1_500, 2_500]);
    let lfs = server.lfs();
    let batch = format!("{}/objects/batch", server.lfs_url("src.git"));
    let body = format!(
        r#"{{"operation":"download","objects":[{{"oid":"{}","size":{}}}]}}"#,
        files[0].oid, files[0].size
    );
    // The git side's Bearer form of the credentials works here too.
    let (status, answer) = http_post(&batch, Some(Auth::Bearer("s3cret")), &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let href = answer["objects"][0]["actions"]["download"]["href"]
        .as_str()
        .unwrap();
    let elsewhere = format!(
        "http://127.0.0.1:{}/src.git/info/lfs/objects/storage/",
        lfs.port()
    );
    assert!(href.starts_with(&elsewhere), "{href}");
    assert_ne!(lfs.port(), server.port());

    lfs_clone_checked(&server, "src.git");
    assert_eq!(lfs.downloaded().len(), files.len());
    for download in lfs.requests_of(LfsKind::Download) {
        assert_eq!(
            download.authorization.as_deref(),
            Some(lfs.action_authorization())
        );
    }
}

/// A second push moves only the new objects, and the objects of different
/// repositories are kept apart.
#[test]
fn an_incremental_push_uploads_only_new_objects_per_repository() {
    let server = GitServer::builder().lfs(true).start();
    let (work, first) = lfs_source(&server, "src.git", &[10_000, 20_000]);
    server.lfs().clear_requests();

    let second = lfs_commit(&work, &[1, 2, 3], "three more");
    lfs_push(&work);
    let mut uploaded = server.lfs().uploaded();
    uploaded.sort();
    let mut new: Vec<String> = second.iter().map(|f| f.oid.clone()).collect();
    new.sort();
    assert_eq!(uploaded, new, "{:#?}", server.lfs().requests());
    assert_eq!(
        server.lfs().objects("src.git").len(),
        first.len() + second.len()
    );
    assert!(server.lfs().objects("other.git").is_empty());
}

/// Wrong credentials get the 401 an LFS server sends, from the batch
/// endpoint, and git-lfs fails; the object endpoints refuse the git
/// credentials' absence too.
#[test]
fn wrong_lfs_credentials_get_401_from_the_batch_endpoint() {
    let server = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&server, "src.git", &[5_000]);
    let lfs = server.lfs();
    lfs.clear_requests();

    let batch = format!("{}/objects/batch", server.lfs_url("src.git"));
    let body = format!(
        r#"{{"operation":"download","transfers":["basic"],"objects":[{{"oid":"{}","size":{}}}]}}"#,
        files[0].oid, files[0].size
    );
    let (status, answer) = http_post(&batch, Some(Auth::Basic("alice", "wrong")), &body);
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("message"), "{answer}");
    let (status, _) = http_post(&batch, None, &body);
    assert_eq!(status, 401);
    let log = lfs.requests();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log
        .iter()
        .all(|r| r.kind == LfsKind::Batch && r.status == 401));
    assert_eq!(log[0].operation.as_deref(), Some("download"));

    // The right credentials get a download action whose href leads back to
    // the git server and needs the action's header.
    let (status, answer) = http_post(&batch, Some(Auth::Basic("alice", "s3cret")), &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let action = &answer["objects"][0]["actions"]["download"];
    let href = action["href"].as_str().unwrap();
    assert!(
        href.starts_with(&server.url("src.git/info/lfs/objects/")),
        "{href}"
    );
    assert_eq!(
        action["header"]["Authorization"],
        lfs.action_authorization()
    );

    // git-lfs with a wrong password fails, after a 401.
    lfs.clear_requests();
    let wrong = server
        .url_with_credentials("src.git")
        .replace(":s3cret@", ":wrong@");
    let clone = tempfile::tempdir().unwrap();
    git(
        clone.path(),
        &["clone", "-q", &server.url_with_credentials("src.git"), "."],
    );
    git(clone.path(), &["lfs", "install", "--local"]);
    git(clone.path(), &["remote", "set-url", "origin", &wrong]);
    let fetch = git_ok(clone.path(), &["lfs", "fetch", "--all"]);
    assert!(
        !fetch.status.success(),
        "git lfs fetch with a wrong password succeeded"
    );
    assert!(lfs.downloaded().is_empty());
    assert!(
        lfs.requests().iter().any(|r| r.status == 401),
        "{:#?}",
        lfs.requests()
    );
}

/// An object deleted or corrupted in the storage is what git-lfs then
/// finds: missing on the server, or failing its hash check.
#[test]
fn deleted_and_corrupted_objects_are_seen_by_git_lfs() {
    let server = GitServer::builder().lfs(true).start();
    let (_work, files) = lfs_source(&server, "src.git", &[4_000, 8_000]);
    let lfs = server.lfs();
    lfs.delete_object("src.git", &files[0].oid);
    lfs.corrupt_object("src.git", &files[1].oid);
    assert_eq!(
        lfs.objects("src.git"),
        vec![(files[1].oid.clone(), files[1].size)]
    );

    let clone = tempfile::tempdir().unwrap();
    git(
        clone.path(),
        &["clone", "-q", &server.url_with_credentials("src.git"), "."],
    );
    git(clone.path(), &["lfs", "install", "--local"]);
    let fetch = git_ok(clone.path(), &["lfs", "fetch", "--all"]);
    assert!(!fetch.status.success());
    let said = String::from_utf8_lossy(&fetch.stderr);
    assert!(said.contains(&files[0].oid[..8]), "{said}");
    // The corrupted one was downloaded in full (maybe more than once), then
    // refused by git-lfs.
    let downloaded = lfs.downloaded();
    assert!(!downloaded.is_empty() && downloaded.iter().all(|oid| *oid == files[1].oid));
    let local = clone
        .path()
        .join(".git/lfs/objects")
        .join(&files[1].oid[..2])
        .join(&files[1].oid[2..4])
        .join(&files[1].oid);
    assert!(
        !local.exists(),
        "git-lfs kept an object whose hash is wrong"
    );

    // An object planted directly is served like an uploaded one.
    let oid = lfs.put_object("src.git", b"planted");
    assert_eq!(oid, sha256_hex(b"planted"));
    assert!(lfs.has_object("src.git", &oid));
}

/// The pre-receive hook that plays GitLab accepts a push whose LFS objects
/// were uploaded first (as git-lfs does), and refuses one that brings a
/// pointer to an object the store lacks, or has with another size.
#[test]
fn a_destination_can_refuse_pushes_missing_lfs_objects() {
    let server = GitServer::builder().lfs(true).start();
    server.create_bare("dst.git");
    server.refuse_pushes_missing_lfs("dst.git");
    let work = lfs_work_repo(&server, "dst.git");
    let files = lfs_commit(&work, &[2_000, 3_000], "LFS files");
    lfs_push(&work);
    let lfs = server.lfs();
    assert_eq!(lfs.objects("dst.git").len(), files.len());

    // A pointer committed by hand, outside the tracked paths, whose object
    // nobody uploaded (--no-verify: git-lfs's own pre-push hook would stop
    // the push first, having no such object to send).
    let pushed = work.rev_parse("HEAD");
    let push = |work: &WorkRepo| git_ok(work.path(), &["push", "--no-verify", "origin", "main"]);
    let absent = sha256_hex(b"never uploaded");
    work.commit_file(
        "raw/pointer",
        lfs_pointer(&absent, 14).as_bytes(),
        "bare pointer",
    );
    let refused = push(&work);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains(LFS_OBJECTS_MISSING) && said.contains(&absent),
        "{said}"
    );

    // Present, but not with the size the pointer says: refused as well.
    git(work.path(), &["reset", "-q", "--hard", &pushed]);
    let wrong_size = lfs.put_object("dst.git", b"never uploaded!");
    work.commit_file(
        "raw/pointer",
        lfs_pointer(&wrong_size, 14).as_bytes(),
        "wrong size",
    );
    let refused = push(&work);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(LFS_OBJECTS_MISSING) && said.contains(&wrong_size),
        "{said}"
    );

    // Once the object is in the store, the pointer goes through.
    git(work.path(), &["reset", "-q", "--hard", &pushed]);
    lfs.put_object("dst.git", b"never uploaded");
    work.commit_file("raw/pointer", lfs_pointer(&absent, 14).as_bytes(), "right");
    let accepted = push(&work);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}

/// The LFS server alone, on its own port, as `--*-lfs-url` would name it.
#[test]
fn a_standalone_lfs_server_answers_on_its_own_origin() {
    let lfs = LfsServer::builder().credentials("bob", "p@ss:word").start();
    let batch = format!("{}/objects/batch", lfs.url("group/repo"));
    assert!(batch.contains("/group/repo.git/info/lfs/"), "{batch}");
    let body = r#"{"operation":"upload","transfers":["basic"],"objects":[{"oid":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":5}]}"#;
    let bob = || Some(Auth::Basic("bob", "p@ss:word"));
    // giftless answers a download of nothing it has with a 404 for the
    // whole batch (see the support module's docs).
    let (status, answer) = http_post(&batch, bob(), &body.replace("upload", "download"));
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = http_post(&batch, bob(), body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let href = answer["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        href.starts_with(&format!(
            "http://127.0.0.1:{}/group/repo.git/info/lfs/",
            lfs.port()
        )),
        "{href}"
    );
    // The upload needs the action's header; the same PUT without it is
    // refused and stores nothing.
    let agent = ureq::agent();
    let refused = agent.put(&href).send_bytes(b"hello");
    assert!(matches!(refused, Err(ureq::Error::Status(401, _))));
    assert!(lfs.objects("group/repo").is_empty());
    agent
        .put(&href)
        .set("Authorization", lfs.action_authorization())
        .send_bytes(b"hello")
        .expect("upload with the action's header");
    assert_eq!(
        lfs.objects("group/repo.git"),
        vec![(sha256_hex(b"hello"), 5)]
    );
    assert_eq!(lfs.uploaded(), vec![sha256_hex(b"hello")]);

    // What does not hash to its oid is refused and not kept, as a host
    // would; so is an upload cut short.
    let other = href.replace(&sha256_hex(b"hello"), &sha256_hex(b"world"));
    let wrong = agent
        .put(&other)
        .set("Authorization", lfs.action_authorization())
        .send_bytes(b"hellO");
    assert!(
        matches!(wrong, Err(ureq::Error::Status(422, _))),
        "{wrong:?}"
    );
    let mut cut = std::net::TcpStream::connect(("127.0.0.1", lfs.port())).unwrap();
    let path = other.split_once(&lfs.port().to_string()).unwrap().1;
    write!(
        cut,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 5\r\n\r\nwor",
        lfs.action_authorization()
    )
    .unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = cut.read_to_string(&mut answer);
    assert_eq!(answer, "", "a request cut short gets no answer");
    assert_eq!(lfs.objects("group/repo"), vec![(sha256_hex(b"hello"), 5)]);
    // A chunked upload (no length known in advance) is taken like any other.
    agent
        .put(&other)
        .set("Authorization", lfs.action_authorization())
        .send(&b"world"[..])
        .expect("chunked upload");
    let uploads = lfs.requests_of(LfsKind::Upload);
    assert!(uploads
        .last()
        .is_some_and(|r| r.body_bytes == 5 && r.status == 200));
    assert!(lfs.has_object("group/repo", &sha256_hex(b"world")));
    let statuses: Vec<u16> = lfs
        .requests_of(LfsKind::Upload)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200, 422, 0, 200]);
}

enum Auth<'a> {
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

/// POSTs an LFS JSON body; returns the status and the body.
fn http_post(url: &str, auth: Option<Auth>, body: &str) -> (u16, String) {
    use base64::Engine as _;
    let mut request = ureq::post(url)
        .set("Content-Type", "application/vnd.git-lfs+json")
        .set("Accept", "application/vnd.git-lfs+json");
    match auth {
        Some(Auth::Basic(user, password)) => {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.set("Authorization", &format!("Basic {basic}"));
        }
        Some(Auth::Bearer(token)) => {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        None => {}
    }
    match request.send_string(body) {
        Ok(response) => (response.status(), response.into_string().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

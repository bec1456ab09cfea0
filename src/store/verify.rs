//! `git-relay verify`: is every ref's history present and intact?
//!
//! Walks from every ref (archive refs included) through tags, commits,
//! trees and blobs, reading each reachable object once from the object
//! database and hashing it again, so a truncated pack, a flipped bit or a
//! missing object is found without `git` on the machine (the static binary
//! carries libgit2). Objects nothing points at are not read: they are not
//! part of any history a restore would carry.
//!
//! A backup that holds Git LFS objects (`lfs/objects`) has each object a
//! reachable pointer names read whole and checked against the pointer's
//! size and SHA-256, so `git lfs` on a clone of it finds what it needs.
//!
//! Commit, tag and tree contents are parsed here rather than through git2's
//! typed objects: the raw bytes are already in hand for the hash check, and
//! reading them a second time would double the work on large trees.

use std::collections::HashSet;
use std::path::Path;

use git2::{ObjectType, Oid};

use super::StoreError;
use crate::lfs::{LfsStore, Pointer};

/// What a verification found.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// The repository checked.
    pub(crate) path: String,
    /// Refs walked from.
    pub(crate) refs: usize,
    /// Of those, archive refs.
    pub(crate) archive_refs: usize,
    /// Reachable commits read and checked.
    pub(crate) commits: usize,
    /// Reachable trees.
    pub(crate) trees: usize,
    /// Reachable blobs.
    pub(crate) blobs: usize,
    /// Reachable annotated tags.
    pub(crate) tags: usize,
    /// Git LFS objects the reachable pointers name, read from the
    /// backup's `lfs/objects` and checked against their pointers (when the
    /// backup holds LFS objects at all).
    pub(crate) lfs_objects: usize,
    /// Bytes of object content read.
    pub(crate) bytes: u64,
    /// Everything wrong, one line each.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether the repository is sound.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} ({} ref(s), {} of them archived; {} commits, {} trees, {} blobs, {} tags, {} LFS objects; {} read)",
            self.path,
            if self.is_sound() {
                "sound".to_owned()
            } else {
                format!("{} problem(s)", self.problems.len())
            },
            self.refs,
            self.archive_refs,
            self.commits,
            self.trees,
            self.blobs,
            self.tags,
            self.lfs_objects,
            crate::output::human_bytes(self.bytes)
        )
    }
}

/// Most problems listed; past that only the count grows.
const MAX_PROBLEMS: usize = 100;

/// Checks the repository at `path`. An `Err` means it could not be checked
/// at all (not a repository); damage is reported in [`VerifyReport`].
pub fn verify(path: &Path) -> Result<VerifyReport, StoreError> {
    // Every object is read once: libgit2's object cache (up to 256 MiB)
    // would only hold memory. The setting is process-wide; `verify` runs
    // alone in its process.
    git2::opts::enable_caching(false);
    let repo = super::open_repository(path)?;
    let odb = repo.odb().map_err(StoreError::git("opening the ODB"))?;
    let mut report = VerifyReport {
        path: path.display().to_string(),
        ..VerifyReport::default()
    };
    let problem = |report: &mut VerifyReport, text: String| {
        if report.problems.len() < MAX_PROBLEMS {
            report.problems.push(text);
        } else if report.problems.len() == MAX_PROBLEMS {
            report.problems.push("(further problems not listed)".into());
        }
    };

    // (object, what the pointer to it says it is, where it was reached from)
    let mut pending: Vec<(Oid, Option<ObjectType>, u32)> = Vec::new();
    let mut origins: Vec<String> = Vec::new();
    let references = repo.references().map_err(StoreError::git("listing refs"))?;
    for reference in references {
        let reference = match reference {
            Ok(r) => r,
            Err(e) => {
                problem(&mut report, format!("unreadable ref: {}", e.message()));
                continue;
            }
        };
        let name = String::from_utf8_lossy(reference.name_bytes()).into_owned();
        match reference.target() {
            Some(oid) => {
                report.refs += 1;
                if name.starts_with(super::archive::PREFIX) {
                    report.archive_refs += 1;
                }
                origins.push(name);
                pending.push((oid, None, (origins.len() - 1) as u32));
            }
            None => {
                // A symbolic ref (HEAD of a bare repository) may name a
                // branch that does not exist yet; that loses nothing.
            }
        }
    }

    // A HEAD naming a missing branch loses nothing, but `git clone` of the
    // backup warns and checks nothing out. An empty repository's HEAD
    // always names a branch to come, so only one with refs is held to it.
    if report.refs > report.archive_refs {
        if let Some(target) = repo
            .find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().map(str::to_owned))
        {
            if repo.refname_to_id(&target).is_err() {
                problem(
                    &mut report,
                    format!("HEAD points at {target}, which does not exist: `git clone` would warn and check nothing out (the next mirror run sets HEAD to the source's default branch; `git symbolic-ref HEAD <branch>` sets it by hand)"),
                );
            }
        }
    }

    // A backup made with LFS objects keeps them in `lfs/objects`; one made
    // without has pointers only, which is what was asked for.
    let lfs = path
        .join("lfs/objects")
        .is_dir()
        .then(|| LfsStore::new(path));
    let mut pointers_seen: HashSet<Pointer> = HashSet::new();
    let mut seen: HashSet<Oid> = HashSet::new();
    while let Some((oid, expected, origin)) = pending.pop() {
        if !seen.insert(oid) {
            continue;
        }
        let from = &origins[origin as usize];
        let object = match odb.read(oid) {
            Ok(object) => object,
            Err(e) => {
                problem(
                    &mut report,
                    format!(
                        "missing or unreadable object {oid} (reachable from {from}): {}",
                        e.message()
                    ),
                );
                continue;
            }
        };
        let kind = object.kind();
        let data = object.data();
        report.bytes += data.len() as u64;
        match Oid::hash_object(kind, data) {
            Ok(actual) if actual == oid => {}
            Ok(actual) => {
                problem(
                    &mut report,
                    format!("corrupt object {oid} (reachable from {from}): its content hashes to {actual}"),
                );
                continue;
            }
            Err(e) => {
                problem(
                    &mut report,
                    format!("cannot hash object {oid}: {}", e.message()),
                );
                continue;
            }
        }
        if let Some(expected) = expected.filter(|e| *e != kind) {
            problem(
                &mut report,
                format!("object {oid} (reachable from {from}) is a {kind}, but is referred to as a {expected}"),
            );
            continue;
        }
        let links = match kind {
            ObjectType::Commit => {
                report.commits += 1;
                commit_links(data)
            }
            ObjectType::Tag => {
                report.tags += 1;
                tag_links(data)
            }
            ObjectType::Tree => {
                report.trees += 1;
                tree_links(data)
            }
            _ => {
                report.blobs += 1;
                let pointer = lfs.as_ref().and_then(|_| Pointer::parse(data));
                if let (Some(store), Some(pointer)) = (&lfs, pointer) {
                    if pointers_seen.insert(pointer) {
                        report.lfs_objects += 1;
                        match check_lfs_object(store, &pointer) {
                            Ok(size) => report.bytes += size,
                            Err(why) => problem(
                                &mut report,
                                format!(
                                    "LFS object {} (pointer {oid}, reachable from {from}): {why}",
                                    pointer.oid
                                ),
                            ),
                        }
                    }
                }
                Ok(Vec::new())
            }
        };
        match links {
            Ok(links) => pending.extend(
                links
                    .into_iter()
                    .filter(|(o, _)| !seen.contains(o))
                    .map(|(o, k)| (o, Some(k), origin)),
            ),
            Err(why) => problem(
                &mut report,
                format!("malformed {kind} {oid} (reachable from {from}): {why}"),
            ),
        }
    }
    Ok(report)
}

/// Reads one LFS object of the backup whole, checking its size and
/// SHA-256 against its pointer; its size, or what is wrong.
fn check_lfs_object(store: &LfsStore, pointer: &Pointer) -> Result<u64, String> {
    let Some(mut object) = store.open(pointer).map_err(|e| e.to_string())? else {
        return Err("missing from lfs/objects".into());
    };
    std::io::copy(&mut object, &mut std::io::sink()).map_err(|e| e.to_string())
}

type Links = Result<Vec<(Oid, ObjectType)>, &'static str>;

fn hex_oid(text: &[u8]) -> Result<Oid, &'static str> {
    std::str::from_utf8(text)
        .ok()
        .filter(|s| s.len() == 40)
        .and_then(|s| Oid::from_str(s).ok())
        .ok_or("bad object id")
}

/// The header lines of a commit or tag (up to the blank line).
fn header_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == b'\n').take_while(|l| !l.is_empty())
}

/// A commit's tree and parents.
fn commit_links(data: &[u8]) -> Links {
    let mut links = Vec::new();
    for line in header_lines(data) {
        if let Some(tree) = line.strip_prefix(b"tree ") {
            links.push((hex_oid(tree)?, ObjectType::Tree));
        } else if let Some(parent) = line.strip_prefix(b"parent ") {
            links.push((hex_oid(parent)?, ObjectType::Commit));
        }
    }
    if !links.iter().any(|(_, k)| *k == ObjectType::Tree) {
        return Err("no tree");
    }
    Ok(links)
}

/// A tag's object, of the type the tag names.
fn tag_links(data: &[u8]) -> Links {
    let (mut object, mut kind) = (None, None);
    for line in header_lines(data) {
        if let Some(o) = line.strip_prefix(b"object ") {
            object = Some(hex_oid(o)?);
        } else if let Some(t) = line.strip_prefix(b"type ") {
            kind = std::str::from_utf8(t).ok().and_then(ObjectType::from_str);
        }
    }
    match (object, kind) {
        (Some(o), Some(k)) => Ok(vec![(o, k)]),
        _ => Err("no object or type line"),
    }
}

/// A tree's entries: subtrees and blobs (gitlinks name commits of other
/// repositories and are not followed).
fn tree_links(mut data: &[u8]) -> Links {
    let mut links = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ').ok_or("bad entry")?;
        let mode = &data[..space];
        let nul = data[space..]
            .iter()
            .position(|b| *b == 0)
            .ok_or("bad entry name")?
            + space;
        let raw = data.get(nul + 1..nul + 21).ok_or("truncated entry")?;
        let oid = Oid::from_bytes(raw).map_err(|_| "bad entry id")?;
        match mode {
            b"40000" | b"040000" => links.push((oid, ObjectType::Tree)),
            b"160000" => {}
            _ => links.push((oid, ObjectType::Blob)),
        }
        data = &data[nul + 21..];
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare repository whose one commit holds a pointer to `content`,
    /// with the object in `lfs/objects` when `stored`.
    fn lfs_backup(content: &[u8], stored: bool) -> (tempfile::TempDir, Pointer) {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let oid = ring::digest::digest(&ring::digest::SHA256, content);
        let hex: String = oid.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let pointer_text = format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{hex}\nsize {}\n",
            content.len()
        );
        let pointer = Pointer::parse(pointer_text.as_bytes()).unwrap();
        let blob = repo.blob(pointer_text.as_bytes()).unwrap();
        let mut tree = repo.treebuilder(None).unwrap();
        tree.insert("model.bin", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let who = git2::Signature::new("a", "a@example.com", &git2::Time::new(0, 0)).unwrap();
        repo.commit(Some("refs/heads/main"), &who, &who, "m", &tree, &[])
            .unwrap();
        repo.set_head("refs/heads/main").unwrap();
        std::fs::create_dir_all(dir.path().join("lfs/objects")).unwrap();
        if stored {
            LfsStore::new(dir.path()).store(&pointer, content).unwrap();
        }
        (dir, pointer)
    }

    #[test]
    fn a_backups_lfs_objects_are_read_and_checked_against_their_pointers() {
        let (dir, _) = lfs_backup(b"weights", true);
        let report = verify(dir.path()).unwrap();
        assert!(report.is_sound(), "{:?}", report.problems);
        assert_eq!(report.lfs_objects, 1);

        let (dir, pointer) = lfs_backup(b"weights", false);
        let report = verify(dir.path()).unwrap();
        assert!(
            report.problems[0].contains("missing from lfs/objects"),
            "{:?}",
            report.problems
        );

        let (dir, pointer2) = lfs_backup(b"weights", true);
        let path = LfsStore::new(dir.path()).path_of(&pointer2);
        std::fs::write(&path, b"WEIGHTS").unwrap();
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains(&pointer.oid.to_string()));
    }

    #[test]
    fn raw_objects_parse() {
        let commit = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent 0123456789012345678901234567890123456789\nauthor x\n\nmsg\ntree not-a-header\n";
        let links = commit_links(commit).unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].1, ObjectType::Tree);
        assert_eq!(links[1].1, ObjectType::Commit);
        assert!(commit_links(b"author x\n\n").is_err());

        let tag = b"object 0123456789012345678901234567890123456789\ntype commit\ntag v1\n\nm";
        assert_eq!(tag_links(tag).unwrap()[0].1, ObjectType::Commit);

        let mut tree = Vec::new();
        tree.extend_from_slice(b"100644 a.txt\0");
        tree.extend_from_slice(&[1u8; 20]);
        tree.extend_from_slice(b"40000 dir\0");
        tree.extend_from_slice(&[2u8; 20]);
        tree.extend_from_slice(b"160000 sub\0");
        tree.extend_from_slice(&[3u8; 20]);
        let links = tree_links(&tree).unwrap();
        assert_eq!(
            links.iter().map(|l| l.1).collect::<Vec<_>>(),
            [ObjectType::Blob, ObjectType::Tree]
        );
        assert!(tree_links(&tree[..30]).is_err());
    }
}

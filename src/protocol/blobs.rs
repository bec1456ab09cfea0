//! The small blobs of a pack, read with bounded memory ([`read_small_blobs`]).
//!
//! Git LFS replaces each large file with a pointer: a blob of at most a
//! kilobyte naming the object's hash and size. To relay the objects a
//! history needs, the engine reads the pointers of that history out of a
//! pack the source sends (filtered with `blob:limit` where it can filter,
//! so that large blobs never travel), and this module is that read: every
//! blob up to a size, with its id, deltas resolved.
//!
//! Small blobs are often stored as deltas, a changed pointer against the
//! previous version of the same file above all. git writes a delta's base
//! before the delta, so bases are held in a [`BaseCache`] bounded in
//! bytes; a base that has left it by the time its delta arrives is not
//! guessed at: the blob counts as unresolved, and the caller says so. Only
//! blobs that can be a small blob's base are held: git deltifies a target
//! only against a base at most 32 times its size (`try_delta` in
//! `pack-objects`), so bases larger than that are skipped like trees.
//!
//! A thin pack names bases outside the pack, which cannot be resolved here:
//! callers ask for a pack that is not thin.
//!
//! When an LFS object turns out to be missing, the user needs to know what
//! it breaks: [`find_paths`] reads the trees of the same history for a
//! commit and path that hold each pointer blob in question.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::cache::BaseCache;
use super::pack::{self, Kind, PackReader};
use super::{ObjectId, ProtocolError};

/// Bytes of blob bodies kept as delta bases.
const CACHE_BYTES: usize = 16 << 20;
/// How many times larger than its target git lets a delta's base be.
const BASE_FACTOR: u64 = 32;
/// Inflated bytes allowed per byte of the pack, as for the commit graph:
/// trees and blobs are skipped by inflating them into nothing, and a few
/// bytes of zlib can claim gigabytes.
const INFLATION_PER_BUDGET_BYTE: u64 = 16;

/// What a read of small blobs found besides the blobs themselves.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Blobs given to the caller.
    pub(crate) blobs: u64,
    /// Deltas that may be small blobs but whose base had left the cache
    /// (or, in a thin pack, was never in it): their content is unknown.
    pub(crate) unresolved: u64,
}

/// Reads the pack on `reader`, at most `budget` bytes, and gives `found`
/// every blob of at most `max_size` bytes, with its id, deltas resolved.
pub(crate) fn read_small_blobs(
    reader: impl Read,
    budget: u64,
    max_size: u64,
    found: impl FnMut(ObjectId, &[u8]),
) -> Result<Scan, ProtocolError> {
    read_blobs(reader, budget, max_size, CACHE_BYTES, found)
}

fn read_blobs(
    reader: impl Read,
    budget: u64,
    max_size: u64,
    cache_bytes: usize,
    mut found: impl FnMut(ObjectId, &[u8]),
) -> Result<Scan, ProtocolError> {
    let max_inflated = budget
        .saturating_mul(INFLATION_PER_BUDGET_BYTE)
        .max(1 << 30);
    let max_base = max_size.saturating_mul(BASE_FACTOR);
    let mut pack = PackReader::new(reader, budget, max_inflated)?;
    let mut cache: BaseCache<()> = BaseCache::new(cache_bytes);
    // Where every blob that could be a base starts, in pack order (so
    // sorted): one of them missing from the cache has left it.
    let mut bases_at: Vec<u64> = Vec::new();
    let mut scan = Scan::default();
    while let Some(entry) = pack.next()? {
        // A delta larger than twice the largest base cannot make a blob
        // this read keeps (its result is about as large as its inserts).
        let small_delta = entry.size <= max_base.saturating_mul(2);
        let base = match entry.kind {
            Kind::Commit | Kind::Tree | Kind::Tag => continue,
            Kind::Blob if entry.size > max_base => continue,
            Kind::Blob => None,
            Kind::OfsDelta(_) | Kind::RefDelta(_) if !small_delta => continue,
            Kind::OfsDelta(offset) => match cache.get(offset) {
                Some((_, data)) => Some(data),
                None if bases_at.binary_search(&offset).is_ok() => {
                    unresolved(&mut pack, &mut scan, &mut bases_at, entry.start, max_size)?;
                    continue;
                }
                // A tree's delta, or a large blob's.
                None => continue,
            },
            Kind::RefDelta(id) => match cache.get_id(&id) {
                Some((_, data)) => Some(data),
                // A base outside the pack (thin), or one that left the
                // cache: trees have such deltas too, but a pack that is not
                // thin has ref-deltas only where the server does not use
                // offsets, and then those are counted once they look small.
                None => {
                    unresolved(&mut pack, &mut scan, &mut bases_at, entry.start, max_size)?;
                    continue;
                }
            },
        };
        let data = pack.inflate()?;
        let data = match base {
            Some(base) => pack::apply_delta(base, &data)?,
            None => data,
        };
        let size = data.len() as u64;
        if size > max_base {
            continue;
        }
        let id = pack::object_id("blob", &data);
        if size <= max_size {
            scan.blobs += 1;
            found(id, &data);
        }
        bases_at.push(entry.start);
        cache.insert(entry.start, id, (), data);
    }
    Ok(scan)
}

/// A delta whose base is unknown: counted when its result is small
/// enough to matter, and remembered as a base, so that deltas on it count
/// too.
fn unresolved<R: Read>(
    pack: &mut PackReader<R>,
    scan: &mut Scan,
    bases_at: &mut Vec<u64>,
    start: u64,
    max_size: u64,
) -> Result<(), ProtocolError> {
    let delta = pack.inflate()?;
    let size = pack::delta_result_size(&delta)?;
    if size <= max_size {
        scan.unresolved += 1;
    }
    if size <= max_size.saturating_mul(BASE_FACTOR) {
        bases_at.push(start);
    }
    Ok(())
}

/// Where a blob is needed: a commit whose tree holds it, and its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) commit: ObjectId,
    pub(crate) path: String,
}

/// The most trees whose parent [`find_paths`] remembers: beyond them, a
/// blob's path may not be found (some 100 bytes each).
const MAX_TREE_LINKS: usize = 1 << 19;
/// The deepest path followed up to a root tree.
const MAX_DEPTH: usize = 4096;

/// Reads the commits and trees of the pack on `reader` (at most `budget`
/// bytes) and finds, for each blob of `targets`, a commit whose tree holds
/// it and its path there: the newest such commit, as git writes commits
/// newest first. Blobs in the pack are skipped.
///
/// git writes a tree before the trees it contains, so every link from a
/// tree to its parent is kept until the end (up to [`MAX_TREE_LINKS`]),
/// and paths are put together then.
pub(crate) fn find_paths(
    reader: impl Read,
    budget: u64,
    targets: &HashSet<ObjectId>,
) -> Result<HashMap<ObjectId, Place>, ProtocolError> {
    let max_inflated = budget
        .saturating_mul(INFLATION_PER_BUDGET_BYTE)
        .max(1 << 30);
    let mut pack = PackReader::new(reader, budget, max_inflated)?;
    let mut cache: BaseCache<bool> = BaseCache::new(CACHE_BYTES);
    // Root tree -> the first (newest) commit naming it.
    let mut roots: HashMap<ObjectId, ObjectId> = HashMap::new();
    // Tree -> (the first tree seen holding it, its name there).
    let mut parents: HashMap<ObjectId, (ObjectId, Box<[u8]>)> = HashMap::new();
    // Target blob -> (the first tree seen holding it, its name there).
    let mut hits: HashMap<ObjectId, (ObjectId, Box<[u8]>)> = HashMap::new();
    while let Some(entry) = pack.next()? {
        // `true`: a tree, `false`: a commit.
        let (is_tree, base) = match entry.kind {
            Kind::Commit => (false, None),
            Kind::Tree => (true, None),
            Kind::Blob | Kind::Tag => continue,
            Kind::OfsDelta(offset) => match cache.get(offset) {
                Some((is_tree, data)) => (is_tree, Some(data)),
                None => continue,
            },
            Kind::RefDelta(id) => match cache.get_id(&id) {
                Some((is_tree, data)) => (is_tree, Some(data)),
                None => continue,
            },
        };
        if entry.size > pack::MAX_KEPT {
            continue;
        }
        let data = pack.inflate()?;
        let data = match base {
            Some(base) => pack::apply_delta(base, &data)?,
            None => data,
        };
        let id = if is_tree {
            let id = pack::object_id("tree", &data);
            for (mode, name, oid) in tree_entries(&data) {
                if mode == b"40000" {
                    if parents.len() < MAX_TREE_LINKS {
                        parents.entry(oid).or_insert_with(|| (id, name.into()));
                    }
                } else if targets.contains(&oid) {
                    hits.entry(oid).or_insert_with(|| (id, name.into()));
                }
            }
            id
        } else {
            let id = pack::object_id("commit", &data);
            let tree = pack::header_lines(&data)
                .find_map(|line| line.strip_prefix(b"tree "))
                .and_then(|hex| ObjectId::from_hex(hex).ok());
            if let Some(tree) = tree {
                roots.entry(tree).or_insert(id);
            }
            id
        };
        cache.insert(entry.start, id, is_tree, data);
    }
    let mut places = HashMap::new();
    for (blob, (tree, name)) in hits {
        let mut path: Vec<&[u8]> = vec![&name];
        let mut at = tree;
        for _ in 0..MAX_DEPTH {
            if let Some(&commit) = roots.get(&at) {
                path.reverse();
                let path = path
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<Vec<_>>()
                    .join("/");
                places.insert(blob, Place { commit, path });
                break;
            }
            let Some((parent, name)) = parents.get(&at) else {
                break;
            };
            path.push(name);
            at = *parent;
        }
    }
    Ok(places)
}

/// The entries of a tree: mode, name, id. A malformed tail ends the list.
fn tree_entries(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], ObjectId)> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let space = rest.iter().position(|&b| b == b' ')?;
        let nul = space + rest[space..].iter().position(|&b| b == 0)?;
        let raw: [u8; 20] = rest.get(nul + 1..nul + 21)?.try_into().ok()?;
        let entry = (&rest[..space], &rest[space + 1..nul], ObjectId::from(raw));
        rest = &rest[nul + 21..];
        Some(entry)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@example.com")
            .env("GIT_COMMITTER_NAME", "a")
            .env("GIT_COMMITTER_EMAIL", "a@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// A repository with `versions` commits, each changing a pointer-like
    /// file, a small text file and a 40 KiB file, repacked so that the
    /// small blobs are deltas of each other.
    fn history(versions: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q"]);
        for v in 0..versions {
            let pointer = format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{:064x}\nsize {}\n",
                v * 7919,
                1000 + v
            );
            std::fs::write(d.join("model.bin"), pointer).unwrap();
            std::fs::write(d.join("notes.txt"), format!("note {v}\n").repeat(40)).unwrap();
            let big: String = (0..4000).map(|i| format!("{:09}\n", i * (v + 1))).collect();
            std::fs::write(d.join("big.txt"), big).unwrap();
            git(d, &["add", "-A"]);
            git(d, &["commit", "-q", "-m", &format!("v{v}")]);
        }
        git(d, &["repack", "-adfq", "--window=50", "--depth=50"]);
        dir
    }

    /// The pack git sends for the whole history of HEAD.
    fn pack_of(dir: &Path) -> Vec<u8> {
        let mut child = Command::new("git")
            .current_dir(dir)
            .args([
                "pack-objects",
                "--revs",
                "--stdout",
                "--delta-base-offset",
                "-q",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"HEAD\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// Every blob of at most `max` bytes in the repository, by id.
    fn small_blobs(dir: &Path, max: u64) -> BTreeMap<ObjectId, Vec<u8>> {
        let list = git(
            dir,
            &[
                "cat-file",
                "--batch-all-objects",
                "--batch-check=%(objectname) %(objecttype) %(objectsize)",
            ],
        );
        list.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let (id, kind, size) = (parts.next()?, parts.next()?, parts.next()?);
                (kind == "blob" && size.parse::<u64>().ok()? <= max).then(|| id.to_owned())
            })
            .map(|id| {
                let data = Command::new("git")
                    .current_dir(dir)
                    .args(["cat-file", "blob", &id])
                    .output()
                    .unwrap()
                    .stdout;
                (id.parse().unwrap(), data)
            })
            .collect()
    }

    #[test]
    fn every_small_blob_is_found_with_its_id_deltas_resolved() {
        let repo = history(30);
        let pack = pack_of(repo.path());
        let mut seen = BTreeMap::new();
        let scan = read_small_blobs(&pack[..], 1 << 30, 1023, |id, data| {
            seen.insert(id, data.to_vec());
        })
        .unwrap();
        let expected = small_blobs(repo.path(), 1023);
        assert_eq!(expected.len(), 60, "30 pointers and 30 notes");
        assert_eq!(seen, expected);
        assert_eq!(
            scan,
            Scan {
                blobs: 60,
                unresolved: 0
            }
        );
    }

    #[test]
    fn the_pack_stores_small_blobs_as_deltas() {
        // What the test above relies on to be a test of delta resolution.
        let repo = history(30);
        let verify = git(
            repo.path(),
            &["verify-pack", "-v", &pack_index(repo.path())],
        );
        let deltas = verify
            .lines()
            .filter(|l| l.contains(" blob ") && l.split_whitespace().count() > 5)
            .count();
        assert!(deltas >= 20, "{deltas} blob deltas");
    }

    fn pack_index(dir: &Path) -> String {
        let packs = dir.join(".git/objects/pack");
        let idx = std::fs::read_dir(&packs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        idx.to_string_lossy().into_owned()
    }

    #[test]
    fn a_base_that_left_the_cache_makes_its_deltas_unresolved_not_wrong() {
        let repo = history(30);
        let pack = pack_of(repo.path());
        let expected = small_blobs(repo.path(), 1023);
        let mut seen = BTreeMap::new();
        // A cache of one small blob: chains of deltas lose their bases.
        let scan = read_blobs(&pack[..], 1 << 30, 1023, 600, |id, data| {
            seen.insert(id, data.to_vec());
        })
        .unwrap();
        assert!(scan.unresolved > 0, "{scan:?}");
        assert_eq!(scan.blobs + scan.unresolved, 60, "{scan:?}");
        for (id, data) in &seen {
            assert_eq!(expected.get(id), Some(data), "a blob read wrong");
        }
    }

    #[test]
    fn a_size_limit_leaves_larger_blobs_out() {
        let repo = history(3);
        let pack = pack_of(repo.path());
        let mut seen = Vec::new();
        read_small_blobs(&pack[..], 1 << 30, 200, |_, data| seen.push(data.len())).unwrap();
        assert_eq!(seen.len(), 3, "only the pointers: {seen:?}");
        assert!(seen.iter().all(|&n| n <= 200));
    }

    #[test]
    fn a_blobs_path_and_newest_commit_are_found_in_the_trees() {
        let repo = history(4);
        let d = repo.path();
        std::fs::create_dir_all(d.join("assets/models")).unwrap();
        std::fs::write(d.join("assets/models/deep.bin"), "deep pointer\n").unwrap();
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", "deep"]);
        git(d, &["commit", "-q", "--allow-empty", "-m", "later"]);
        let deep: ObjectId = git(d, &["rev-parse", "HEAD:assets/models/deep.bin"])
            .trim()
            .parse()
            .unwrap();
        let top: ObjectId = git(d, &["rev-parse", "HEAD~1:model.bin"])
            .trim()
            .parse()
            .unwrap();
        let head: ObjectId = git(d, &["rev-parse", "HEAD"]).trim().parse().unwrap();
        let gone: ObjectId = "0123456789012345678901234567890123456789".parse().unwrap();
        let pack = pack_of(d);
        let targets = HashSet::from([deep, top, gone]);
        let places = find_paths(&pack[..], 1 << 30, &targets).unwrap();
        assert_eq!(
            places.get(&deep),
            Some(&Place {
                commit: head,
                path: "assets/models/deep.bin".into()
            })
        );
        assert_eq!(places[&top].path, "model.bin");
        assert_eq!(places[&top].commit, head, "the newest commit holding it");
        assert!(!places.contains_key(&gone));
    }

    #[test]
    fn a_cut_or_garbled_pack_is_an_error_not_a_panic() {
        let repo = history(5);
        let pack = pack_of(repo.path());
        for cut in [0, 5, 12, 40, pack.len() / 2, pack.len() - 21] {
            assert!(read_small_blobs(&pack[..cut], 1 << 30, 1023, |_, _| {}).is_err());
            assert!(find_paths(&pack[..cut], 1 << 30, &HashSet::new()).is_err());
        }
        let mut garbled = pack.clone();
        for i in (12..garbled.len()).step_by(97) {
            garbled[i] ^= 0x5a;
        }
        let _ = read_small_blobs(&garbled[..], 1 << 30, 1023, |_, _| {});
        let _ = find_paths(&garbled[..], 1 << 30, &HashSet::new());
    }
}

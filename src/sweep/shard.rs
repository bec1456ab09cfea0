//! `--shard K/N`: a stable share of the repositories for one of N machines.
//!
//! A repository belongs to shard `hash(name) mod N`, with FNV-1a over the
//! UTF-8 bytes of its `project/repo` name. The hash is fixed by its
//! definition, unlike std's randomly seeded hasher, so every job of an Azure
//! Pipelines matrix computes the same partition on its own, without talking
//! to the others: the shards are disjoint, together they cover everything,
//! and a repository stays on its shard from night to night as others come
//! and go.

use std::fmt;
use std::str::FromStr;

/// One share out of `count`, numbered from 1 like Azure Pipelines'
/// `System.JobPositionInPhase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    /// Which share, 1..=count.
    pub(crate) index: u64,
    /// How many shares.
    pub(crate) count: u64,
}

impl Shard {
    /// Whether the repository named `full_name` is in this share.
    pub(crate) fn contains(&self, full_name: &str) -> bool {
        fnv1a(full_name.as_bytes()) % self.count == self.index - 1
    }
}

/// The 64-bit FNV-1a hash.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard takes K/N with 1 <= K <= N (e.g. 2/4), not `{s}`");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        let names: Vec<String> = (0..500).map(|i| format!("project {i}/repo-{i}")).collect();
        for count in [1, 2, 3, 7] {
            let shards: Vec<Shard> = (1..=count).map(|index| Shard { index, count }).collect();
            for name in &names {
                assert_eq!(shards.iter().filter(|s| s.contains(name)).count(), 1);
            }
        }
    }

    #[test]
    fn parsing() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x", "1/", "/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}

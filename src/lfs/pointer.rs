//! The Git LFS pointer: the small blob a repository holds in place of a
//! large file, naming the object by its SHA-256 and size.
//!
//! The format is git-lfs's `docs/spec.md`. Blobs come from the relayed
//! history, so the parser takes any bytes and answers "not a pointer"
//! rather than failing: most small blobs are ordinary files.
//!
//! What is accepted is what the spec writes and git-lfs reads back, in its
//! one canonical encoding, since a pointer has exactly one: a `version` line
//! with one of the version URLs git-lfs knows, then any pointer-extension
//! lines (`ext-<priority>-<name> sha256:<hex>`, the only other keys git-lfs
//! accepts, in ascending order as the spec sorts keys), then `oid
//! sha256:<64 lowercase hex>`, then `size <decimal>`, each line ending in
//! `\n`, nothing after. git-lfs's own reader is more lenient about white
//! space (it trims the blob); a pointer that only parses that way was not
//! written by git-lfs and is not chased here.

use std::fmt;
use std::str::FromStr;

/// An LFS object id: the SHA-256 of the object's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sha256(pub(crate) [u8; 32]);

impl Sha256 {
    /// The number of hexadecimal digits in an oid.
    pub(crate) const HEX_LEN: usize = 64;

    /// Parses exactly 64 lowercase hexadecimal digits, as the spec writes
    /// oids; anything else (upper case included) is not an oid.
    pub(crate) fn from_hex(hex: &[u8]) -> Option<Sha256> {
        if hex.len() != Self::HEX_LEN {
            return None;
        }
        let mut raw = [0u8; 32];
        for (byte, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
            let [hi, lo] = pair else { return None };
            *byte = (lower_nibble(*hi)? << 4) | lower_nibble(*lo)?;
        }
        Some(Sha256(raw))
    }

    /// The 64 lowercase hexadecimal digits, without allocating.
    pub(crate) fn to_hex(self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            if let [hi, lo] = pair {
                *hi = DIGITS[usize::from(byte >> 4)];
                *lo = DIGITS[usize::from(byte & 0x0f)];
            }
        }
        out
    }

    /// The path of the object under a store's `lfs/objects`:
    /// `aa/bb/<oid>`, as git-lfs shards it.
    pub(crate) fn shard_path(self) -> std::path::PathBuf {
        let hex = self.to_string();
        let mut path = std::path::PathBuf::from(&hex[0..2]);
        path.push(&hex[2..4]);
        path.push(&hex);
        path
    }
}

fn lower_nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // Every byte of `hex` is an ASCII digit, so this never fails.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

// Oids are read in logs and test failures, so Debug is the hex too.
impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Sha256 {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256::from_hex(s.as_bytes()).ok_or(())
    }
}

/// One LFS object as a pointer names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Pointer {
    /// The SHA-256 of the object's content.
    pub(crate) oid: Sha256,
    /// The object's size in bytes.
    pub(crate) size: u64,
}

/// The version URLs git-lfs reads as version 1 of the spec: the public one
/// it writes, and two older spellings it still accepts.
const VERSIONS: [&[u8]; 3] = [
    b"https://git-lfs.github.com/spec/v1",
    b"https://hawser.github.com/spec/v1",
    b"http://git-media.io/v/2",
];

impl Pointer {
    /// The largest blob that can be a pointer: the spec says "less than
    /// 1024 bytes", extension lines included. A fetch filter that must keep
    /// every pointer is therefore `blob:limit=1024` (git omits blobs of
    /// that size and more).
    pub(crate) const MAX_BLOB_SIZE: usize = 1023;

    /// The pointer `blob` encodes, or `None` if it is not one (or is the
    /// empty blob, which the spec makes the pointer of an empty file: there
    /// is no object to move for it).
    pub(crate) fn parse(blob: &[u8]) -> Option<Pointer> {
        if blob.is_empty() || blob.len() > Self::MAX_BLOB_SIZE {
            return None;
        }
        let body = blob.strip_suffix(b"\n")?;
        let mut lines = body.split(|&b| b == b'\n');

        let version = lines.next()?.strip_prefix(b"version ")?;
        if !VERSIONS.contains(&version) {
            return None;
        }
        let mut line = lines.next()?;
        let mut last_extension: Option<&[u8]> = None;
        while let Some(key) = extension_key(line) {
            // Keys in ascending order, so each priority at most once.
            if last_extension.is_some_and(|last| last >= key) {
                return None;
            }
            last_extension = Some(key);
            line = lines.next()?;
        }
        let oid = Sha256::from_hex(line.strip_prefix(b"oid sha256:")?)?;
        let size = parse_size(lines.next()?.strip_prefix(b"size ")?)?;
        if lines.next().is_some() {
            return None;
        }
        Some(Pointer { oid, size })
    }

    /// The canonical pointer blob for this object, as git-lfs writes it
    /// (without extensions).
    pub(crate) fn encode(&self) -> String {
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
            self.oid, self.size
        )
    }
}

/// The key of a pointer-extension line (`ext-<digit>-<name> sha256:<hex>`),
/// or `None` if `line` is not one.
fn extension_key(line: &[u8]) -> Option<&[u8]> {
    let space = line.iter().position(|&b| b == b' ')?;
    let (key, value) = (&line[..space], &line[space + 1..]);
    let rest = key.strip_prefix(b"ext-")?;
    let [priority, b'-', name @ ..] = rest else {
        return None;
    };
    let name_ok = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !priority.is_ascii_digit() || !name_ok {
        return None;
    }
    Sha256::from_hex(value.strip_prefix(b"sha256:")?)?;
    Some(key)
}

/// A size as the spec writes it: decimal digits, no sign, no leading zero,
/// within git-lfs's signed 64-bit range.
fn parse_size(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut size: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        size = size.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (size <= i64::MAX as u64).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    fn spec_example() -> String {
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n")
    }

    #[test]
    fn the_spec_example_parses_and_encodes_back() {
        let pointer = Pointer::parse(spec_example().as_bytes()).unwrap();
        assert_eq!(pointer.oid.to_string(), OID);
        assert_eq!(pointer.size, 12345);
        assert_eq!(pointer.encode(), spec_example());
        assert_eq!(
            pointer.oid.shard_path(),
            std::path::Path::new("4d/7a").join(OID)
        );
    }

    #[test]
    fn older_version_urls_and_extensions_are_pointers() {
        let hawser = spec_example().replace("git-lfs.github.com", "hawser.github.com");
        assert!(Pointer::parse(hawser.as_bytes()).is_some());
        let with_ext = format!(
            "version https://git-lfs.github.com/spec/v1\next-0-foo sha256:{OID}\next-1-bar sha256:{OID}\noid sha256:{OID}\nsize 7\n"
        );
        assert_eq!(Pointer::parse(with_ext.as_bytes()).unwrap().size, 7);
    }

    #[test]
    fn anything_else_is_not_a_pointer() {
        let good = spec_example();
        let bad = [
            String::new(),
            good.trim_end().to_owned(),                      // no final newline
            good.replace('\n', "\r\n"),                      // CRLF
            good.replace("spec/v1", "spec/v2"),              // unknown version
            good.replace("sha256:", "sha512:"),              // other hash
            good.replace(OID, &OID.to_uppercase()),          // upper-case hex
            good.replace(OID, &OID[1..]),                    // short oid
            good.replace("12345", "012345"),                 // leading zero
            good.replace("12345", "+12345"),                 // sign
            good.replace("12345", "-1"),                     // negative
            good.replace("12345", "9223372036854775808"),    // beyond i64
            good.replace("size 12345\n", ""),                // no size
            good.replace("size", "size "),                   // two spaces
            format!("{good}extra value\n"),                  // key after size
            format!("{good}\n"),                             // blank line
            good.replacen("version", "oid", 1),              // version not first
            good.replace("oid sha256", "ext-0-x sha256:0 oid sha256"), // bad ext
            format!("version https://git-lfs.github.com/spec/v1\nsize 1\noid sha256:{OID}\n"),
            format!(
                "version https://git-lfs.github.com/spec/v1\next-1-b sha256:{OID}\next-0-a sha256:{OID}\noid sha256:{OID}\nsize 1\n"
            ),
            format!(
                "version https://git-lfs.github.com/spec/v1\nzzz value\noid sha256:{OID}\nsize 1\n"
            ),
            format!("{good}{}", " ".repeat(1024)),
        ];
        for blob in bad {
            assert_eq!(Pointer::parse(blob.as_bytes()), None, "{blob:?}");
        }
    }

    #[test]
    fn the_size_limit_is_the_specs() {
        // Pad with extension lines to exactly the limit, then one byte more.
        let mut blob = String::from("version https://git-lfs.github.com/spec/v1\n");
        for priority in 0..9 {
            blob.push_str(&format!("ext-{priority}-a sha256:{OID}\n"));
        }
        let tail = format!("oid sha256:{OID}\nsize 1\n");
        let room = Pointer::MAX_BLOB_SIZE - blob.len() - tail.len();
        blob.push_str(&format!("ext-9-{} sha256:{OID}\n", "a".repeat(room - 79)));
        blob.push_str(&tail);
        assert_eq!(blob.len(), Pointer::MAX_BLOB_SIZE);
        assert!(Pointer::parse(blob.as_bytes()).is_some());
        let over = blob.replace("ext-9-a", "ext-9-aa");
        assert_eq!(over.len(), Pointer::MAX_BLOB_SIZE + 1);
        assert_eq!(Pointer::parse(over.as_bytes()), None);
    }

    /// Marsaglia's xorshift64: deterministic, so a failure reproduces.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_pointers_never_panic_and_what_parses_is_well_formed() {
        let seed = spec_example().into_bytes();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut data = seed.clone();
            for _ in 0..=xorshift(&mut state) % 3 {
                let at = (xorshift(&mut state) as usize) % (data.len() + 1);
                match xorshift(&mut state) % 4 {
                    0 if at < data.len() => data[at] = xorshift(&mut state) as u8,
                    1 if at < data.len() => {
                        data.remove(at);
                    }
                    2 => data.insert(at, b"0a \n:-"[(xorshift(&mut state) % 6) as usize]),
                    _ => data.truncate(at),
                }
            }
            crate::lfs::fuzz_targets::pointer(&data);
            if Pointer::parse(&data).is_some() {
                accepted += 1;
            }
        }
        // The loop can fail: some mutations (of a size digit) stay pointers.
        assert!(accepted > 0);
    }
}

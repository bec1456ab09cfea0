//! What a server says it can do, in either protocol generation.
//!
//! v0/v1 servers pack their capabilities into one space-separated list after
//! a NUL on the first ref line (`gitprotocol-capabilities(5)`); v2 servers
//! send one `key[=value]` per pkt-line, and a command's value lists the
//! optional features of that command (`fetch=shallow wait-for-done`,
//! `gitprotocol-v2(5)`). Both end up as the same ordered list of
//! `(name, value)` pairs here, so the request writers can ask one question —
//! "did the server advertise X?" — whichever protocol is spoken. The request
//! writers must ask it: a client may only request what was advertised.

use std::io::{self, Write};

use crate::protocol::pktline::{check_single_line, write_delim, write_text_parts};
use crate::protocol::ProtocolError;

/// The object format every server supports and the only one git-relay speaks.
pub(crate) const SHA1: &str = "sha1";

/// An ordered list of advertised capabilities. Names may repeat
/// (`symref=`, `object-format=`): lookups return the first, as git does.
///
/// ```
/// use git_relay::protocol::Capabilities;
///
/// let v0 = Capabilities::parse_v0(b"multi_ack side-band-64k symref=HEAD:refs/heads/main agent=git/2.47.3\n");
/// assert!(v0.contains("side-band-64k"));
/// assert_eq!(v0.value("symref"), Some("HEAD:refs/heads/main"));
/// assert_eq!(v0.object_format(), "sha1");
///
/// let mut v2 = Capabilities::default();
/// v2.push_v2_line(b"fetch=shallow wait-for-done\n");
/// assert!(v2.v2_command_has_feature("fetch", "wait-for-done"));
/// assert!(!v2.v2_command_has_feature("fetch", "filter"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    entries: Vec<(String, Option<String>)>,
}

impl Capabilities {
    /// Parses the list after the NUL of a v0 first ref line (a trailing `\n`
    /// is tolerated). Bytes that are not UTF-8 are replaced, not rejected: a
    /// capability we do not understand is ignored anyway.
    pub fn parse_v0(list: &[u8]) -> Self {
        let mut caps = Capabilities::default();
        for word in list
            .split(|&b| b == b' ' || b == b'\n')
            .filter(|word| !word.is_empty())
        {
            caps.push(word);
        }
        caps
    }

    /// Adds one line of a v2 capability advertisement. Only the first `=`
    /// separates name from value: the value keeps any further `=` and spaces.
    pub fn push_v2_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if !line.is_empty() {
            self.push(line);
        }
    }

    fn push(&mut self, entry: &[u8]) {
        let (name, value) = match entry.iter().position(|&b| b == b'=') {
            Some(eq) => (
                entry.get(..eq).unwrap_or_default(),
                Some(entry.get(eq + 1..).unwrap_or_default()),
            ),
            None => (entry, None),
        };
        self.entries.push((
            String::from_utf8_lossy(name).into_owned(),
            value.map(|v| String::from_utf8_lossy(v).into_owned()),
        ));
    }

    /// Whether `name` was advertised, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// The value of the first `name=value` entry.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for `name`, in order (`symref` repeats once per
    /// symbolic ref).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
    }

    /// All entries in advertisement order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Whether nothing was advertised.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The repository's object format. A server that does not say is SHA-1
    /// by definition; one that lists several uses the first for its refs.
    pub fn object_format(&self) -> &str {
        self.value("object-format").unwrap_or(SHA1)
    }

    /// Refuses anything but SHA-1, before a single 64-digit id is mistaken
    /// for a malformed 40-digit one.
    pub(crate) fn check_object_format(&self) -> Result<(), ProtocolError> {
        match self.object_format() {
            SHA1 => Ok(()),
            other => Err(ProtocolError::UnsupportedObjectFormat(other.to_owned())),
        }
    }

    /// Writes the start of a v2 `command` request up to its delimiter:
    /// `command=`, then `agent=` and `object-format=` only where the server
    /// advertised them, as `gitprotocol-v2(5)` requires. An agent containing
    /// a control character is refused with [`io::ErrorKind::InvalidInput`].
    pub(crate) fn write_v2_command<W: Write + ?Sized>(
        &self,
        w: &mut W,
        command: &str,
        agent: &str,
    ) -> io::Result<()> {
        check_single_line("agent", agent)?;
        write_text_parts(w, &[b"command=", command.as_bytes()])?;
        if self.contains("agent") {
            write_text_parts(w, &[b"agent=", agent.as_bytes()])?;
        }
        if self.contains("object-format") {
            write_text_parts(w, &[b"object-format=", self.object_format().as_bytes()])?;
        }
        write_delim(w)
    }

    /// Whether the v2 `command` was advertised with `feature` in its
    /// space-separated value.
    pub fn v2_command_has_feature(&self, command: &str, feature: &str) -> bool {
        self.value(command)
            .is_some_and(|features| features.split(' ').any(|f| f == feature))
    }
}

/// The v2 capabilities of `git upload-pack` (git 2.47.3), line by line as
/// sent, for tests.
#[cfg(test)]
pub(crate) fn real_v2() -> Capabilities {
    let mut caps = Capabilities::default();
    for line in [
        &b"agent=git/2.47.3\n"[..],
        b"ls-refs=unborn\n",
        b"fetch=shallow wait-for-done\n",
        b"server-option\n",
        b"object-format=sha1\n",
    ] {
        caps.push_v2_line(line);
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capability list of `git upload-pack --advertise-refs` (git 2.47.3).
    const UPLOAD_PACK_V0: &[u8] = b"multi_ack thin-pack side-band side-band-64k ofs-delta \
        shallow deepen-since deepen-not deepen-relative no-progress include-tag \
        multi_ack_detailed no-done symref=HEAD:refs/heads/main object-format=sha1 \
        agent=git/2.47.3\n";

    #[test]
    fn real_v0_list() {
        let caps = Capabilities::parse_v0(UPLOAD_PACK_V0);
        assert_eq!(caps.iter().count(), 16);
        assert!(caps.contains("multi_ack_detailed"));
        assert!(caps.contains("side-band-64k"));
        assert!(!caps.contains("side-band-64"));
        assert_eq!(caps.value("agent"), Some("git/2.47.3"));
        assert_eq!(caps.value("thin-pack"), None);
        assert_eq!(caps.value("symref"), Some("HEAD:refs/heads/main"));
        assert_eq!(caps.object_format(), "sha1");
        caps.check_object_format().unwrap();
    }

    #[test]
    fn real_v2_lines() {
        let caps = real_v2();
        assert_eq!(caps.value("fetch"), Some("shallow wait-for-done"));
        assert!(caps.v2_command_has_feature("fetch", "shallow"));
        assert!(caps.v2_command_has_feature("ls-refs", "unborn"));
        assert!(!caps.v2_command_has_feature("ls-refs", "shallow"));
        assert!(!caps.v2_command_has_feature("server-option", ""));
        assert!(!caps.v2_command_has_feature("push", "atomic"));
        assert!(caps.contains("server-option"));
    }

    #[test]
    fn values_keep_equals_signs_and_spaces() {
        let mut caps = Capabilities::default();
        caps.push_v2_line(b"custom=a=b c=d");
        caps.push_v2_line(b"");
        caps.push_v2_line(b"empty=");
        assert_eq!(caps.value("custom"), Some("a=b c=d"));
        assert_eq!(caps.value("empty"), Some(""));
        assert!(caps.contains("empty"));
        assert_eq!(caps.iter().count(), 2);
    }

    #[test]
    fn repeated_names() {
        let caps = Capabilities::parse_v0(
            b"symref=HEAD:refs/heads/main symref=refs/remotes/o/HEAD:refs/remotes/o/main \
              object-format=sha1 object-format=sha256",
        );
        assert_eq!(
            caps.values("symref").collect::<Vec<_>>(),
            [
                "HEAD:refs/heads/main",
                "refs/remotes/o/HEAD:refs/remotes/o/main"
            ]
        );
        assert_eq!(caps.object_format(), "sha1");
    }

    #[test]
    fn refuses_sha256() {
        let caps = Capabilities::parse_v0(b"ofs-delta object-format=sha256 agent=git/2.47.3");
        let err = caps.check_object_format().unwrap_err();
        assert!(matches!(&err, ProtocolError::UnsupportedObjectFormat(f) if f == "sha256"));
        assert!(err.to_string().contains("sha1 repositories only"));
    }

    #[test]
    fn tolerates_odd_spacing_and_bytes() {
        let caps = Capabilities::parse_v0(b"  a  b\xff =x\n\n");
        let entries: Vec<_> = caps.iter().collect();
        assert_eq!(entries, [("a", None), ("b\u{fffd}", None), ("", Some("x"))]);
        assert!(Capabilities::parse_v0(b"").is_empty());
        assert_eq!(Capabilities::default().object_format(), "sha1");
    }
}

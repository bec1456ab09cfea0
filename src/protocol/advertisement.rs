//! Ref discovery: the first thing a server says, and v2's `ls-refs`.
//!
//! A smart-HTTP `info/refs` answer comes in three shapes, all handled by
//! [`read_discovery`]:
//!
//! - v0: `# service=...`, flush, then the refs, the first carrying the
//!   capabilities after a NUL (`gitprotocol-pack(5)`, "Reference Discovery");
//! - v1: the same with a `version 1` line before the refs;
//! - v2: `version 2` and one capability per line; the refs are asked for
//!   separately with `write_ls_refs_request` / `read_ls_refs`.
//!
//! The `# service=` line is optional: git's own `http-backend` leaves it out
//! of v2 answers, and a local `upload-pack --advertise-refs` never sends it.
//!
//! A server decides how many refs it lists, so the caller says how many it
//! accepts (`max_refs`): past that, [`ProtocolError::TooManyRefs`]. The size
//! of the message as a whole is bounded by the reader's limit
//! (`PacketReader::set_limit`), which also covers lines that are not refs
//! (`.have`, peeled values, v2 capabilities).
//!
//! Every ref name is checked to be UTF-8 without spaces or control
//! characters before it becomes a `String`: names flow on into messages a
//! person reads and into requests to the other server.

use std::io::{self, Read, Write};

use crate::protocol::pktline::{check_single_line, write_flush, write_text_parts};
use crate::protocol::{Capabilities, ObjectId, PacketLineRef, PacketReader, ProtocolError};

/// Name of the placeholder "ref" an empty repository advertises so it has a
/// line to hang its capabilities on.
const NO_REFS_PLACEHOLDER: &[u8] = b"capabilities^{}";
/// Suffix of a v0 line that gives the peeled value of the tag before it.
const PEELED_SUFFIX: &[u8] = b"^{}";
/// receive-pack advertises the tips of alternate object stores under this
/// pseudo-name: objects the server has, not refs it holds.
const ALTERNATE_HAVE: &[u8] = b".have";

/// One advertised ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Full name, e.g. `refs/heads/main` or `HEAD`.
    pub name: String,
    /// The object the ref points to.
    pub oid: ObjectId,
    /// For an annotated tag, the object it finally points to.
    pub peeled: Option<ObjectId>,
    /// For a symbolic ref (usually `HEAD`), the ref it points to.
    pub symref_target: Option<String>,
}

/// What the server answered to discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// A protocol v2 server: capabilities only; list refs with `ls-refs`.
    V2(Capabilities),
    /// A v0 or v1 server: the refs and the capabilities of the first line.
    V0 {
        /// Refs in advertisement order, peeled values and `HEAD`'s symref
        /// target attached. Empty for an empty repository.
        refs: Vec<Ref>,
        /// The capabilities after the NUL of the first line.
        capabilities: Capabilities,
    },
}

/// Reads a discovery answer for `service` (`git-upload-pack` or
/// `git-receive-pack`) up to and including its final flush, and refuses
/// repositories that are not SHA-1 and advertisements of more than
/// `max_refs` refs.
///
/// An answer whose very first bytes are not a pkt-line length (a web page, a
/// proxy's error page) is [`ProtocolError::NotSmartHttp`]. A dumb server's
/// `info/refs` usually starts with four hex digits by chance, so the
/// transport should also check the `Content-Type` as `gitprotocol-http(5)`
/// asks.
///
/// ```
/// use git_relay::protocol::advertisement::{read_discovery, Discovery};
/// use git_relay::protocol::PacketReader;
///
/// let answer = b"001e# service=git-upload-pack\n0000\
///     00403d06390b8cfcc3636b12dd52f044eae8f1566458 HEAD\0side-band-64k\n0000";
/// let discovery = read_discovery(&mut PacketReader::new(&answer[..]), "git-upload-pack", 100)?;
/// let Discovery::V0 { refs, capabilities } = discovery else { panic!("v0 expected") };
/// assert_eq!(refs[0].name, "HEAD");
/// assert!(capabilities.contains("side-band-64k"));
/// # Ok::<(), git_relay::protocol::ProtocolError>(())
/// ```
pub fn read_discovery<R: Read>(
    reader: &mut PacketReader<R>,
    service: &str,
    max_refs: usize,
) -> Result<Discovery, ProtocolError> {
    let mut line = match reader.read_line_required() {
        Err(ProtocolError::InvalidLength(_)) => return Err(ProtocolError::NotSmartHttp),
        first => first?,
    };
    if let Some(announced) = line.as_text().and_then(|t| t.strip_prefix(b"# service=")) {
        if announced != service.as_bytes() {
            return Err(ProtocolError::unexpected(
                "reading the service announcement (the server answered for another service)",
                line.as_text().unwrap_or_default(),
            ));
        }
        match reader.read_line_required()? {
            PacketLineRef::Flush => {}
            other => {
                return Err(ProtocolError::unexpected_line(
                    "reading the service announcement",
                    other,
                ))
            }
        }
        line = reader.read_line_required()?;
    }

    match line.as_text() {
        Some(b"version 2") => return read_v2_capabilities(reader).map(Discovery::V2),
        Some(b"version 1") => line = reader.read_line_required()?,
        Some(text) if text.starts_with(b"version ") => {
            return Err(ProtocolError::unexpected(
                "reading the protocol version (git-relay speaks versions 0, 1 and 2)",
                text,
            ))
        }
        _ => {}
    }

    // The first line decides the capabilities, and with them whether the ids
    // that follow are SHA-1 at all, so it is taken apart before anything else.
    let text = match line {
        // Some servers answer for an empty repository with no line at all.
        PacketLineRef::Flush => {
            return Ok(Discovery::V0 {
                refs: Vec::new(),
                capabilities: Capabilities::default(),
            })
        }
        PacketLineRef::Data(_) => line.as_text().unwrap_or_default(),
        other => {
            return Err(ProtocolError::unexpected_line(
                "reading the ref advertisement",
                other,
            ))
        }
    };
    let (first_ref, capability_list) = match text.iter().position(|&b| b == 0) {
        Some(nul) => (
            text.get(..nul).unwrap_or_default(),
            text.get(nul + 1..).unwrap_or_default(),
        ),
        None => (text, &b""[..]),
    };
    let capabilities = Capabilities::parse_v0(capability_list);
    capabilities.check_object_format()?;

    let mut refs = Vec::new();
    let (oid, name) = split_v0_ref_line(first_ref)?;
    if name != NO_REFS_PLACEHOLDER {
        push_v0_ref(&mut refs, oid, name, max_refs)?;
    }
    loop {
        match reader.read_line_required()? {
            PacketLineRef::Flush => break,
            line @ PacketLineRef::Data(_) => {
                let text = line.as_text().unwrap_or_default();
                if text.starts_with(b"shallow ") {
                    return Err(ProtocolError::unexpected(
                        "reading the ref advertisement of a shallow repository, \
                         whose history is incomplete and cannot be mirrored",
                        text,
                    ));
                }
                let (oid, name) = split_v0_ref_line(text)?;
                push_v0_ref(&mut refs, oid, name, max_refs)?;
            }
            other => {
                return Err(ProtocolError::unexpected_line(
                    "reading the ref advertisement",
                    other,
                ))
            }
        }
    }

    for symref in capabilities.values("symref") {
        if let Some((from, to)) = symref.split_once(':') {
            if let Some(r) = refs.iter_mut().find(|r| r.name == from) {
                r.symref_target = Some(to.to_owned());
            }
        }
    }
    Ok(Discovery::V0 { refs, capabilities })
}

fn read_v2_capabilities<R: Read>(
    reader: &mut PacketReader<R>,
) -> Result<Capabilities, ProtocolError> {
    let mut capabilities = Capabilities::default();
    loop {
        match reader.read_line_required()? {
            PacketLineRef::Flush => break,
            PacketLineRef::Data(line) => capabilities.push_v2_line(line),
            other => {
                return Err(ProtocolError::unexpected_line(
                    "reading the protocol v2 capabilities",
                    other,
                ))
            }
        }
    }
    capabilities.check_object_format()?;
    Ok(capabilities)
}

fn split_v0_ref_line(text: &[u8]) -> Result<(ObjectId, &[u8]), ProtocolError> {
    let Some((hex, name)) = split_once(text, b' ') else {
        return Err(ProtocolError::unexpected(
            "reading the ref advertisement",
            text,
        ));
    };
    Ok((ObjectId::from_hex(hex)?, name))
}

fn push_v0_ref(
    refs: &mut Vec<Ref>,
    oid: ObjectId,
    name: &[u8],
    max_refs: usize,
) -> Result<(), ProtocolError> {
    if name == ALTERNATE_HAVE {
        return Ok(());
    }
    if let Some(tag) = name.strip_suffix(PEELED_SUFFIX) {
        // The peeled line must directly follow its tag, once.
        return match refs.last_mut() {
            Some(last) if last.name.as_bytes() == tag && last.peeled.is_none() => {
                last.peeled = Some(oid);
                Ok(())
            }
            _ => Err(ProtocolError::unexpected(
                "reading the ref advertisement (a peeled value that does not follow its tag)",
                name,
            )),
        };
    }
    check_count(refs, max_refs)?;
    refs.push(Ref {
        name: ref_name(name)?,
        oid,
        peeled: None,
        symref_target: None,
    });
    Ok(())
}

/// Refuses one ref more than `max_refs`.
fn check_count(refs: &[Ref], max_refs: usize) -> Result<(), ProtocolError> {
    if refs.len() >= max_refs {
        return Err(ProtocolError::TooManyRefs { limit: max_refs });
    }
    Ok(())
}

/// Checks the parts of `git check-ref-format` that matter to us: the name is
/// text, and it cannot break out of a line or a message.
pub(crate) fn ref_name(name: &[u8]) -> Result<String, ProtocolError> {
    let printable = !name.is_empty() && name.iter().all(|&b| b > b' ' && b != 0x7f);
    match std::str::from_utf8(name) {
        Ok(text) if printable => Ok(text.to_owned()),
        _ => Err(ProtocolError::unexpected(
            "reading a ref name (ref names must be UTF-8 without spaces or control characters)",
            name,
        )),
    }
}

fn split_once(text: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = text.iter().position(|&b| b == separator)?;
    Some((text.get(..at)?, text.get(at + 1..)?))
}

/// Writes a v2 `ls-refs` request asking for peeled tags and symref targets of
/// the refs under `prefixes` (all refs if empty).
///
/// `agent` and `object-format` are sent only if the server advertised them,
/// as `gitprotocol-v2(5)` requires. A prefix containing a control character
/// is refused with [`io::ErrorKind::InvalidInput`].
///
/// ```
/// use git_relay::protocol::advertisement::write_ls_refs_request;
/// use git_relay::protocol::Capabilities;
///
/// let mut caps = Capabilities::default();
/// caps.push_v2_line(b"agent=git/2.47.3");
/// let mut request = Vec::new();
/// write_ls_refs_request(&mut request, &caps, "git-relay/0.1.0", &["refs/heads/"])?;
/// assert_eq!(
///     request,
///     b"0014command=ls-refs\n001aagent=git-relay/0.1.0\n0001\
///       0009peel\n000csymrefs\n001bref-prefix refs/heads/\n0000"
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_ls_refs_request<W: Write + ?Sized>(
    w: &mut W,
    capabilities: &Capabilities,
    agent: &str,
    prefixes: &[&str],
) -> io::Result<()> {
    for prefix in prefixes {
        check_single_line("ref prefix", prefix)?;
    }
    capabilities.write_v2_command(w, "ls-refs", agent)?;
    write_text_parts(w, &[b"peel"])?;
    write_text_parts(w, &[b"symrefs"])?;
    for prefix in prefixes {
        write_text_parts(w, &[b"ref-prefix ", prefix.as_bytes()])?;
    }
    write_flush(w)
}

/// Reads an `ls-refs` answer up to its flush. `unborn` entries (a `HEAD` that
/// points to a branch with no commit yet) are skipped: there is nothing to
/// mirror for them. Unknown attributes are ignored, as the spec asks. More
/// than `max_refs` refs is [`ProtocolError::TooManyRefs`].
pub(crate) fn read_ls_refs<R: Read>(
    reader: &mut PacketReader<R>,
    max_refs: usize,
) -> Result<Vec<Ref>, ProtocolError> {
    let mut refs = Vec::new();
    loop {
        let text = match reader.read_line_required()? {
            PacketLineRef::Flush => return Ok(refs),
            line @ PacketLineRef::Data(_) => line.as_text().unwrap_or_default(),
            other => {
                return Err(ProtocolError::unexpected_line(
                    "reading the ls-refs answer",
                    other,
                ))
            }
        };
        let mut fields = text.split(|&b| b == b' ');
        let (Some(id), Some(name)) = (fields.next(), fields.next()) else {
            return Err(ProtocolError::unexpected(
                "reading the ls-refs answer",
                text,
            ));
        };
        if id == b"unborn" {
            continue;
        }
        check_count(&refs, max_refs)?;
        let mut entry = Ref {
            oid: ObjectId::from_hex(id)?,
            name: ref_name(name)?,
            peeled: None,
            symref_target: None,
        };
        for attribute in fields {
            if let Some(target) = attribute.strip_prefix(b"symref-target:") {
                entry.symref_target = Some(ref_name(target)?);
            } else if let Some(peeled) = attribute.strip_prefix(b"peeled:") {
                entry.peeled = Some(ObjectId::from_hex(peeled)?);
            }
        }
        refs.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::oid::{id, FEATURE, MAIN};
    use crate::protocol::pktline::{pkt, render};

    const TAG: &str = "8de0a9f4141b5eca3c2db784c661a07f2868e367";

    fn r(name: &str, oid: &str) -> Ref {
        Ref {
            name: name.into(),
            oid: id(oid),
            peeled: None,
            symref_target: None,
        }
    }

    fn discover(input: &[u8], service: &str) -> Result<Discovery, ProtocolError> {
        let mut reader = PacketReader::new(input);
        let discovery = read_discovery(&mut reader, service, usize::MAX)?;
        // Discovery consumes exactly its message.
        assert_eq!(reader.read_line().unwrap(), None);
        Ok(discovery)
    }

    fn v0_refs(input: &[u8], service: &str) -> (Vec<Ref>, Capabilities) {
        match discover(input, service).unwrap() {
            Discovery::V0 { refs, capabilities } => (refs, capabilities),
            other => panic!("{other:?}"),
        }
    }

    fn expected_source_refs() -> Vec<Ref> {
        let mut head = r("HEAD", MAIN);
        head.symref_target = Some("refs/heads/main".into());
        let mut tag = r("refs/tags/v1", TAG);
        tag.peeled = Some(id(FEATURE));
        vec![
            head,
            r("refs/heads/feature", FEATURE),
            r("refs/heads/main", MAIN),
            r("refs/tags/light", MAIN),
            tag,
        ]
    }

    #[test]
    fn real_http_backend_v0() {
        let body =
            include_bytes!("../../fuzz/corpus/advertisement/http-backend-v0-upload-pack.bin");
        let (refs, caps) = v0_refs(body, "git-upload-pack");
        assert_eq!(refs, expected_source_refs());
        assert!(caps.contains("multi_ack_detailed"));
        assert_eq!(caps.value("agent"), Some("git/2.47.3"));
    }

    #[test]
    fn ref_count_is_bounded() {
        let body =
            include_bytes!("../../fuzz/corpus/advertisement/http-backend-v0-upload-pack.bin");
        // Five refs; the peeled line of the tag does not count.
        let mut reader = PacketReader::new(&body[..]);
        assert!(read_discovery(&mut reader, "git-upload-pack", 5).is_ok());
        let mut reader = PacketReader::new(&body[..]);
        assert!(matches!(
            read_discovery(&mut reader, "git-upload-pack", 4),
            Err(ProtocolError::TooManyRefs { limit: 4 })
        ));

        let line = format!("{MAIN} refs/heads/main\n");
        let body = format!("{}{}0000", pkt(&line), pkt(&line));
        let mut reader = PacketReader::new(body.as_bytes());
        assert_eq!(read_ls_refs(&mut reader, 2).unwrap().len(), 2);
        let mut reader = PacketReader::new(body.as_bytes());
        assert!(matches!(
            read_ls_refs(&mut reader, 1),
            Err(ProtocolError::TooManyRefs { limit: 1 })
        ));
    }

    #[test]
    fn real_http_backend_v1_and_local_advertisement_without_service_line() {
        for body in [
            &include_bytes!("../../fuzz/corpus/advertisement/http-backend-v1-upload-pack.bin")[..],
            include_bytes!("../../fuzz/corpus/advertisement/local-v0-upload-pack.bin"),
        ] {
            let (refs, _) = v0_refs(body, "git-upload-pack");
            assert_eq!(refs, expected_source_refs());
        }
    }

    #[test]
    fn real_v2_capabilities_with_and_without_service_line() {
        // git http-backend leaves out "# service=" in v2; GitHub sends it.
        let bare =
            include_bytes!("../../fuzz/corpus/advertisement/http-backend-v2-upload-pack.bin");
        let mut announced = b"001e# service=git-upload-pack\n0000".to_vec();
        announced.extend_from_slice(bare);
        for body in [&bare[..], &announced] {
            let Discovery::V2(caps) = discover(body, "git-upload-pack").unwrap() else {
                panic!("v2 expected");
            };
            assert!(caps.v2_command_has_feature("fetch", "wait-for-done"));
            assert!(caps.v2_command_has_feature("ls-refs", "unborn"));
            assert_eq!(caps.object_format(), "sha1");
        }
    }

    #[test]
    fn real_empty_repository() {
        let body = include_bytes!("../../fuzz/corpus/advertisement/local-v0-upload-pack-empty.bin");
        let (refs, caps) = v0_refs(body, "git-upload-pack");
        assert!(refs.is_empty());
        assert!(caps.contains("side-band-64k"));
        // Old servers send nothing at all.
        let (refs, caps) = v0_refs(
            b"001f# service=git-receive-pack\n00000000",
            "git-receive-pack",
        );
        assert!(refs.is_empty() && caps.is_empty());
    }

    #[test]
    fn real_receive_pack() {
        let body = include_bytes!("../../fuzz/corpus/advertisement/local-receive-pack.bin");
        let (refs, caps) = v0_refs(body, "git-receive-pack");
        // receive-pack shows neither HEAD nor peeled values.
        assert_eq!(
            refs,
            [
                r("refs/heads/feature", FEATURE),
                r("refs/heads/main", MAIN),
                r("refs/tags/light", MAIN),
                r("refs/tags/v1", TAG),
            ]
        );
        assert!(caps.contains("report-status-v2"));
        assert!(caps.contains("delete-refs"));
    }

    #[test]
    fn real_receive_pack_when_v2_was_asked_for() {
        // git http-backend drops "# service=" whenever the client sent
        // `Git-Protocol: version=2`, even though receive-pack answers v0.
        let body = include_bytes!(
            "../../fuzz/corpus/advertisement/http-backend-receive-pack-asked-v2.bin"
        );
        assert!(body.starts_with(b"00b4d26c"));
        let (refs, caps) = v0_refs(body, "git-receive-pack");
        assert_eq!(refs.len(), 4);
        assert!(caps.contains("report-status"));
        let body = include_bytes!(
            "../../fuzz/corpus/advertisement/http-backend-v0-receive-pack-empty.bin"
        );
        let (refs, caps) = v0_refs(body, "git-receive-pack");
        assert!(refs.is_empty());
        assert!(caps.contains("delete-refs"));
    }

    #[test]
    fn symrefs_attach_to_any_advertised_ref() {
        let body = [
            pkt(&format!(
                "{MAIN} HEAD\0symref=HEAD:refs/heads/main symref=refs/heads/alias:refs/heads/main \
                 symref=refs/heads/gone:refs/heads/main symref=malformed\n"
            )),
            pkt(&format!("{MAIN} refs/heads/alias\n")),
            pkt(&format!("{MAIN} refs/heads/main\n")),
            "0000".into(),
        ]
        .concat();
        let (refs, _) = v0_refs(body.as_bytes(), "git-upload-pack");
        let targets: Vec<_> = refs.iter().map(|r| r.symref_target.as_deref()).collect();
        assert_eq!(
            targets,
            [Some("refs/heads/main"), Some("refs/heads/main"), None]
        );
    }

    #[test]
    fn alternates_are_not_refs() {
        let body = format!(
            "{}{}0000",
            pkt(&format!("{MAIN} refs/heads/main\0report-status\n")),
            pkt(&format!("{FEATURE} .have\n"))
        );
        let (refs, _) = v0_refs(body.as_bytes(), "git-receive-pack");
        assert_eq!(refs, [r("refs/heads/main", MAIN)]);
    }

    #[test]
    fn wrong_service_is_refused() {
        let body =
            include_bytes!("../../fuzz/corpus/advertisement/http-backend-v0-upload-pack.bin");
        let err = discover(body, "git-receive-pack").unwrap_err();
        assert!(
            matches!(&err, ProtocolError::Unexpected { line, .. } if line == "# service=git-upload-pack"),
            "{err:?}"
        );
    }

    #[test]
    fn web_pages_are_not_smart_http() {
        for body in [
            &b"<!DOCTYPE html><html>"[..],
            b"{\"message\":\"Not Found\"}",
            b"Not Found",
        ] {
            let err = discover(body, "git-upload-pack").unwrap_err();
            assert!(matches!(err, ProtocolError::NotSmartHttp), "{err:?}");
        }
        // Later garbage is a protocol error, not a wrong kind of server.
        let body = format!("{}{}zzzz", pkt("# service=git-upload-pack\n"), "0000");
        let err = discover(body.as_bytes(), "git-upload-pack").unwrap_err();
        assert!(matches!(err, ProtocolError::InvalidLength(_)), "{err:?}");
    }

    #[test]
    fn sha256_is_refused_with_a_clear_message() {
        let sha256 = "a".repeat(64);
        let v0 = format!(
            "{}0000",
            pkt(&format!(
                "{sha256} HEAD\0ofs-delta object-format=sha256 agent=git/2.47.3\n"
            ))
        );
        let v2 = format!(
            "{}{}0000",
            pkt("version 2\n"),
            pkt("object-format=sha256\n")
        );
        for body in [v0, v2] {
            let err = discover(body.as_bytes(), "git-upload-pack").unwrap_err();
            assert!(
                matches!(&err, ProtocolError::UnsupportedObjectFormat(f) if f == "sha256"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn shallow_source_is_refused() {
        let body = format!(
            "{}{}0000",
            pkt(&format!("{MAIN} HEAD\0shallow\n")),
            pkt(&format!("shallow {MAIN}\n"))
        );
        let err = discover(body.as_bytes(), "git-upload-pack").unwrap_err();
        assert!(err.to_string().contains("shallow repository"), "{err}");
    }

    #[test]
    fn malformed_advertisements() {
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "closed"),
            (pkt("# service=git-upload-pack\n"), "closed"),
            (
                format!("{}{}", pkt("# service=git-upload-pack\n"), pkt("x")),
                "service announcement",
            ),
            (pkt("version 3\n"), "version"),
            (
                format!("{}0000", pkt("no-space-here\n")),
                "ref advertisement",
            ),
            (
                format!("{}0000", pkt("nothex nothex HEAD\n")),
                "not a valid object id",
            ),
            (pkt(&format!("{MAIN} HEAD\0\n")), "closed"),
            (
                format!("{}0001", pkt(&format!("{MAIN} HEAD\0\n"))),
                "delimiter",
            ),
            (
                format!("{}0000", pkt(&format!("{MAIN} refs/tags/v1^{{}}\0\n"))),
                "does not follow its tag",
            ),
            (
                format!(
                    "{}{}{}0000",
                    pkt(&format!("{MAIN} refs/tags/a\0\n")),
                    pkt(&format!("{MAIN} refs/tags/a^{{}}\n")),
                    pkt(&format!("{MAIN} refs/tags/a^{{}}\n"))
                ),
                "does not follow its tag",
            ),
            (
                format!("{}0000", pkt(&format!("{MAIN} refs/heads/\u{1b}[2J\0\n"))),
                "ref name",
            ),
            (format!("{}0000", pkt(&format!("{MAIN} \0\n"))), "ref name"),
            (
                format!(
                    "{}{}0000",
                    pkt(&format!("{MAIN} HEAD\0\n")),
                    pkt(&format!("{MAIN} refs/a\0b\n"))
                ),
                "ref name",
            ),
            (
                format!("{}{}", pkt("version 2\n"), pkt("agent=x\n")),
                "closed",
            ),
            (format!("{}0002", pkt("version 2\n")), "response-end"),
            ("000bERR no\n".into(), "reported an error: no"),
        ];
        for (body, expected) in cases {
            let err = discover(body.as_bytes(), "git-upload-pack").unwrap_err();
            assert!(err.to_string().contains(expected), "{body:?}: {err}");
        }
        let mut line = format!("{MAIN} refs/heads/").into_bytes();
        line.extend_from_slice(b"\xff\0\n");
        let mut body = format!("{:04x}", line.len() + 4).into_bytes();
        body.extend(line);
        body.extend(b"0000");
        let err = discover(&body, "git-upload-pack").unwrap_err();
        assert!(err.to_string().contains("\\xff"), "{err}");
    }

    #[test]
    fn ls_refs_request_follows_the_advertisement() {
        let mut caps = Capabilities::default();
        let mut out = Vec::new();
        write_ls_refs_request(&mut out, &caps, "git-relay/1", &[]).unwrap();
        // Nothing advertised: neither agent nor object-format may be sent.
        assert_eq!(out, b"0014command=ls-refs\n00010009peel\n000csymrefs\n0000");

        caps.push_v2_line(b"agent=git/2.47.3\n");
        caps.push_v2_line(b"object-format=sha1\n");
        out.clear();
        write_ls_refs_request(&mut out, &caps, "git-relay/1", &["HEAD", "refs/"]).unwrap();
        assert_eq!(
            render(&out),
            [
                "command=ls-refs\n",
                "agent=git-relay/1\n",
                "object-format=sha1\n",
                "<delim>",
                "peel\n",
                "symrefs\n",
                "ref-prefix HEAD\n",
                "ref-prefix refs/\n",
                "<flush>"
            ]
        );
    }

    #[test]
    fn ls_refs_request_refuses_line_breaks() {
        let mut out = Vec::new();
        let err = write_ls_refs_request(
            &mut out,
            &Capabilities::default(),
            "a",
            &["refs/\n0000command=evil"],
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
    }

    #[test]
    fn real_ls_refs_answer() {
        let body = include_bytes!("../../fuzz/corpus/advertisement/ls-refs.bin");
        let mut reader = PacketReader::new(&body[..]);
        let refs = read_ls_refs(&mut reader, usize::MAX).unwrap();
        assert_eq!(refs, expected_source_refs());
        assert_eq!(reader.read_line().unwrap(), None);
    }

    #[test]
    fn real_ls_refs_of_empty_repository_skips_unborn() {
        let body = b"0030unborn HEAD symref-target:refs/heads/master\n0000";
        assert!(read_ls_refs(&mut PacketReader::new(&body[..]), usize::MAX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn ls_refs_ignores_unknown_attributes() {
        let body = format!(
            "{}0000",
            pkt(&format!(
                "{MAIN} refs/heads/x future:thing peeled:{FEATURE}\n"
            ))
        );
        let refs = read_ls_refs(&mut PacketReader::new(body.as_bytes()), usize::MAX).unwrap();
        let mut expected = r("refs/heads/x", MAIN);
        expected.peeled = Some(id(FEATURE));
        assert_eq!(refs, [expected]);
    }

    #[test]
    fn malformed_ls_refs() {
        for (body, expected) in [
            (String::new(), "closed"),
            (pkt(&format!("{MAIN} refs/heads/x\n")), "closed"),
            (format!("{}0000", pkt(MAIN)), "ls-refs"),
            (
                format!("{}0000", pkt(&format!("{MAIN}x refs/heads/x"))),
                "object id",
            ),
            (
                format!("{}0000", pkt(&format!("{MAIN} refs/x peeled:zz"))),
                "object id",
            ),
            (
                format!("{}0000", pkt(&format!("{MAIN} refs/x symref-target:"))),
                "ref name",
            ),
            (
                format!("{}0000", pkt(&format!("{MAIN}  refs/x"))),
                "ref name",
            ),
            ("0001".into(), "delimiter"),
        ] {
            let err =
                read_ls_refs(&mut PacketReader::new(body.as_bytes()), usize::MAX).unwrap_err();
            assert!(err.to_string().contains(expected), "{body:?}: {err}");
        }
    }
}

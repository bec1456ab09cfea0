//! upload-pack fetch requests and the answers before the pack.
//!
//! Over stateless HTTP every request is complete in itself: it repeats the
//! wants and every have, and either says `done` (send the pack) or not (only
//! tell me which haves you know). The mirror relies on the second form: the
//! acknowledgments tell it which destination tips the source knows, which is
//! what decides whether a destination ref may be overwritten.
//!
//! That is why `Acknowledgments::common` holds only ids the server said it
//! *has*. In v0 `multi_ack_detailed`, `ACK <id> ready` does not mean that:
//! git's upload-pack sends it for a have it does *not* know once it has
//! found enough common history (captured from git 2.47: `have` of an unknown
//! id answered with `ACK <that id> ready`). Such lines only set
//! `Acknowledgments::ready`. For the same reason plain `multi_ack`, whose
//! `ACK <id> continue` has the same ambiguity, is never requested.
//!
//! Request writers only ask for what the server advertised
//! (`gitprotocol-capabilities(5)`: a client MUST NOT ask for more).

use std::io::{self, Read, Write};

use crate::protocol::pktline::{check_single_line, write_flush, write_text_parts};
use crate::protocol::{Capabilities, ObjectId, PacketLineRef, PacketReader, ProtocolError};

const ACKS_CONTEXT: &str = "reading the acknowledgments of a fetch";
const SECTION_CONTEXT: &str = "reading the fetch response sections";
const SHALLOW_CONTEXT: &str = "reading the fetch response of a shallow repository, \
    whose history is incomplete and cannot be mirrored";
const URIS_CONTEXT: &str = "reading the fetch response (packfile-uris were not requested)";

/// What to ask upload-pack for. Flags the server did not advertise are left
/// out of the request rather than sent.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest<'a> {
    /// Tips to fetch.
    pub wants: &'a [ObjectId],
    /// Objects the receiving side already has.
    pub haves: &'a [ObjectId],
    /// End negotiation: the server answers with the pack.
    pub done: bool,
    /// Allow deltas against objects not in the pack (bases among the haves).
    pub thin_pack: bool,
    /// Allow offset deltas.
    pub ofs_delta: bool,
    /// Ask the server not to send progress on side-band channel 2.
    pub no_progress: bool,
    /// v2 only: never send `ready` and a pack before `done`, so that a
    /// negotiation round answers with acknowledgments only.
    pub wait_for_done: bool,
    /// A filter spec (`tree:0`: commits and tags only), sent only where the
    /// server advertises `filter`.
    pub filter: Option<&'a str>,
}

/// Which of the haves the server knows, from one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Acknowledgments {
    /// Haves the server reported having, in the order it said so.
    pub(crate) common: Vec<ObjectId>,
    /// The server has found enough common history to make a pack.
    pub(crate) ready: bool,
}

impl Acknowledgments {
    /// Notes an acknowledged id; repeats are removed by [`Self::finish`].
    fn add_common(&mut self, oid: ObjectId) {
        self.common.push(oid);
    }

    /// Drops repeated ids, keeping the first of each. Once, at the end, in
    /// linear time: a server decides how many ACK lines it sends (as many
    /// as the message limit lets through), and checking each against all
    /// before it would be quadratic in that.
    fn finish(mut self) -> Self {
        let mut seen = std::collections::HashSet::with_capacity(self.common.len());
        self.common.retain(|oid| seen.insert(*oid));
        self
    }
}

/// The beginning of a v2 fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum V2FetchResponse {
    /// Negotiation only; the response is over.
    AcknowledgmentsOnly(Acknowledgments),
    /// A pack follows: the reader is positioned at its first side-band
    /// packet (wrap it in a
    /// [`SidebandReader`](crate::protocol::sideband::SidebandReader)).
    /// Acknowledgments are empty when the request said `done`.
    Packfile(Acknowledgments),
}

/// Writes a protocol v2 `fetch` request.
///
/// ```
/// use git_relay::protocol::fetch::{write_v2_request, FetchRequest};
/// use git_relay::protocol::{Capabilities, ObjectId};
///
/// let want: ObjectId = "3d06390b8cfcc3636b12dd52f044eae8f1566458".parse()?;
/// let mut caps = Capabilities::default();
/// caps.push_v2_line(b"fetch=shallow wait-for-done");
/// let request = FetchRequest { wants: &[want], done: true, ofs_delta: true, ..Default::default() };
/// let mut out = Vec::new();
/// write_v2_request(&mut out, &caps, "git-relay/0.1.0", &request)?;
/// assert_eq!(
///     out,
///     b"0012command=fetch\n0001000eofs-delta\n\
///       0032want 3d06390b8cfcc3636b12dd52f044eae8f1566458\n0009done\n0000"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_v2_request<W: Write + ?Sized>(
    w: &mut W,
    capabilities: &Capabilities,
    agent: &str,
    request: &FetchRequest<'_>,
) -> io::Result<()> {
    capabilities.write_v2_command(w, "fetch", agent)?;
    // thin-pack, ofs-delta and no-progress are arguments every v2 fetch
    // accepts; wait-for-done exists only where advertised.
    let arguments = [
        (request.thin_pack, "thin-pack"),
        (request.ofs_delta, "ofs-delta"),
        (request.no_progress, "no-progress"),
        (
            request.wait_for_done && capabilities.v2_command_has_feature("fetch", "wait-for-done"),
            "wait-for-done",
        ),
    ];
    for (wanted, argument) in arguments {
        if wanted {
            write_text_parts(w, &[argument.as_bytes()])?;
        }
    }
    write_ids(w, b"want ", request.wants)?;
    if let Some(filter) = request.filter.filter(|_| supports_filter(capabilities)) {
        check_single_line("filter", filter)?;
        write_text_parts(w, &[b"filter ", filter.as_bytes()])?;
    }
    write_ids(w, b"have ", request.haves)?;
    if request.done {
        write_text_parts(w, &[b"done"])?;
    }
    write_flush(w)
}

/// Whether the server takes `filter` (partial clone) in fetch requests.
pub(crate) fn supports_filter(capabilities: &Capabilities) -> bool {
    capabilities.contains("filter") || capabilities.v2_command_has_feature("fetch", "filter")
}

/// Writes a stateless v0 upload-pack request: the wants (the first carrying
/// the capabilities we want in effect), flush, the haves, then `done` or a
/// flush.
///
/// Requests `multi_ack_detailed`, `side-band-64k` (or `side-band` from a
/// server that only has that), and the flags of `request`, each only if
/// advertised. Whether the pack will be side-band multiplexed is therefore
/// [`v0_uses_sideband`]. `wait_for_done` has no v0 meaning (without `no-done`,
/// which is not requested, a v0 server never sends a pack before `done`).
/// Fails with [`io::ErrorKind::InvalidInput`] without wants: the first want
/// line is the only place v0 has for capabilities.
pub(crate) fn write_v0_request<W: Write + ?Sized>(
    w: &mut W,
    capabilities: &Capabilities,
    agent: &str,
    request: &FetchRequest<'_>,
) -> io::Result<()> {
    check_single_line("agent", agent)?;
    let Some((first, other_wants)) = request.wants.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a v0 fetch request needs at least one want",
        ));
    };
    let sideband = if capabilities.contains("side-band-64k") {
        Some("side-band-64k")
    } else if capabilities.contains("side-band") {
        Some("side-band")
    } else {
        None
    };
    // In the order git's fetch-pack uses, so servers see a familiar line.
    let requested = [
        (true, "multi_ack_detailed"),
        (sideband.is_some(), sideband.unwrap_or_default()),
        (request.thin_pack, "thin-pack"),
        (request.no_progress, "no-progress"),
        (request.ofs_delta, "ofs-delta"),
        // upload-pack takes a `filter` line only when the capability was
        // asked for here ("filtering capability not negotiated").
        (request.filter.is_some(), "filter"),
    ];
    let first_hex = first.to_hex();
    let mut line: Vec<&[u8]> = vec![b"want ", &first_hex];
    for (_, name) in requested
        .iter()
        .filter(|(wanted, name)| *wanted && capabilities.contains(name))
    {
        line.push(b" ");
        line.push(name.as_bytes());
    }
    if capabilities.contains("agent") {
        line.push(b" agent=");
        line.push(agent.as_bytes());
    }
    write_text_parts(w, &line)?;
    write_ids(w, b"want ", other_wants)?;
    if let Some(filter) = request.filter.filter(|_| supports_filter(capabilities)) {
        check_single_line("filter", filter)?;
        write_text_parts(w, &[b"filter ", filter.as_bytes()])?;
    }
    write_flush(w)?;
    write_ids(w, b"have ", request.haves)?;
    if request.done {
        write_text_parts(w, &[b"done"])
    } else {
        write_flush(w)
    }
}

/// Whether a v0 pack from a server with these capabilities arrives side-band
/// multiplexed when requested with [`write_v0_request`].
pub(crate) fn v0_uses_sideband(capabilities: &Capabilities) -> bool {
    capabilities.contains("side-band-64k") || capabilities.contains("side-band")
}

fn write_ids<W: Write + ?Sized>(w: &mut W, keyword: &[u8], ids: &[ObjectId]) -> io::Result<()> {
    for id in ids {
        write_text_parts(w, &[keyword, &id.to_hex()])?;
    }
    Ok(())
}

/// Reads a v2 fetch response up to the acknowledgments' end or the start of
/// the pack.
///
/// `shallow-info` with content is refused (the source is shallow: its
/// history is incomplete), as is a non-empty `packfile-uris` section (we never
/// ask for one, and the objects behind the URIs would be missing from the
/// pack). `wanted-refs` is skipped.
pub(crate) fn read_v2_response<R: Read>(
    reader: &mut PacketReader<R>,
) -> Result<V2FetchResponse, ProtocolError> {
    let mut acks = Acknowledgments::default();
    let mut header = Section::read(reader)?;
    if header == Section::Acknowledgments {
        loop {
            let text = match reader.read_line_required()? {
                PacketLineRef::Flush => {
                    return Ok(V2FetchResponse::AcknowledgmentsOnly(acks.finish()))
                }
                PacketLineRef::Delimiter => break,
                line @ PacketLineRef::Data(_) => line.as_text().unwrap_or_default(),
                other @ PacketLineRef::ResponseEnd => {
                    return Err(ProtocolError::unexpected_line(ACKS_CONTEXT, other))
                }
            };
            match text {
                b"NAK" => {}
                b"ready" => acks.ready = true,
                _ => match text.strip_prefix(b"ACK ") {
                    Some(hex) => acks.add_common(ObjectId::from_hex(hex)?),
                    None => return Err(ProtocolError::unexpected(ACKS_CONTEXT, text)),
                },
            }
        }
        header = Section::read(reader)?;
    }
    loop {
        match header {
            Section::Packfile => return Ok(V2FetchResponse::Packfile(acks.finish())),
            Section::ShallowInfo => skip_section(reader, Some(SHALLOW_CONTEXT))?,
            Section::PackfileUris => skip_section(reader, Some(URIS_CONTEXT))?,
            Section::WantedRefs => skip_section(reader, None)?,
            Section::Acknowledgments => {
                return Err(ProtocolError::unexpected(
                    SECTION_CONTEXT,
                    b"acknowledgments (a second time)",
                ))
            }
        }
        header = Section::read(reader)?;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Acknowledgments,
    ShallowInfo,
    WantedRefs,
    PackfileUris,
    Packfile,
}

impl Section {
    fn read<R: Read>(reader: &mut PacketReader<R>) -> Result<Self, ProtocolError> {
        let line = reader.read_line_required()?;
        match line.as_text() {
            Some(b"acknowledgments") => Ok(Section::Acknowledgments),
            Some(b"shallow-info") => Ok(Section::ShallowInfo),
            Some(b"wanted-refs") => Ok(Section::WantedRefs),
            Some(b"packfile-uris") => Ok(Section::PackfileUris),
            Some(b"packfile") => Ok(Section::Packfile),
            Some(other) => Err(ProtocolError::unexpected(SECTION_CONTEXT, other)),
            None => Err(ProtocolError::unexpected_line(SECTION_CONTEXT, line)),
        }
    }
}

/// Skips a section's lines up to its delimiter; with `refuse`, any line is an
/// error in that context instead.
fn skip_section<R: Read>(
    reader: &mut PacketReader<R>,
    refuse: Option<&'static str>,
) -> Result<(), ProtocolError> {
    loop {
        let line = reader.read_line_required()?;
        match (line, refuse) {
            (PacketLineRef::Delimiter, _) => return Ok(()),
            (PacketLineRef::Data(data), Some(context)) => {
                return Err(ProtocolError::unexpected(context, data))
            }
            (PacketLineRef::Data(_), None) => {}
            (special, _) => return Err(ProtocolError::unexpected_line(SECTION_CONTEXT, special)),
        }
    }
}

/// Reads a stateless v0 upload-pack response up to where the pack would
/// start, for a request that did (`done == true`) or did not say `done`.
///
/// `ACK <id> common` adds to `Acknowledgments::common`; `ACK <id> ready`
/// only sets `ready` (see the module docs for why). The response part ends
/// at `NAK` or at a final bare `ACK <id>` (itself common). After `done` the
/// pack follows, side-band multiplexed if [`v0_uses_sideband`]; without
/// `done` the response is over.
pub(crate) fn read_v0_response<R: Read>(
    reader: &mut PacketReader<R>,
    done: bool,
) -> Result<Acknowledgments, ProtocolError> {
    // `done` does not change what is parsed, only what follows; it is part of
    // the signature so callers state which situation they are in.
    let _ = done;
    let mut acks = Acknowledgments::default();
    loop {
        let text = match reader.read_line_required()? {
            line @ PacketLineRef::Data(_) => line.as_text().unwrap_or_default(),
            special => return Err(ProtocolError::unexpected_line(ACKS_CONTEXT, special)),
        };
        if text == b"NAK" {
            return Ok(acks.finish());
        }
        let Some(rest) = text.strip_prefix(b"ACK ") else {
            let context = if text.starts_with(b"shallow ") || text.starts_with(b"unshallow ") {
                SHALLOW_CONTEXT
            } else {
                ACKS_CONTEXT
            };
            return Err(ProtocolError::unexpected(context, text));
        };
        let (hex, status) = match rest.iter().position(|&b| b == b' ') {
            Some(space) => (rest.get(..space).unwrap_or_default(), rest.get(space + 1..)),
            None => (rest, None),
        };
        let oid = ObjectId::from_hex(hex)?;
        match status {
            None => {
                acks.add_common(oid);
                return Ok(acks.finish());
            }
            Some(b"common") => acks.add_common(oid),
            Some(b"ready") => acks.ready = true,
            // "continue" belongs to plain multi_ack, which we never request,
            // and cannot be told apart from "ready".
            Some(_) => return Err(ProtocolError::unexpected(ACKS_CONTEXT, text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::capabilities::real_v2 as v2_caps;
    use crate::protocol::oid::{id, FEATURE, MAIN};
    use crate::protocol::pktline::{pkt, render};
    use crate::protocol::sideband::SidebandReader;

    const UNKNOWN: &str = "1111111111111111111111111111111111111111";

    fn v0_caps() -> Capabilities {
        Capabilities::parse_v0(
            b"multi_ack thin-pack side-band side-band-64k ofs-delta shallow deepen-since \
              deepen-not deepen-relative no-progress include-tag multi_ack_detailed no-done \
              symref=HEAD:refs/heads/main object-format=sha1 agent=git/2.47.3",
        )
    }

    #[test]
    fn a_filter_is_sent_only_to_a_server_that_takes_one() {
        let wants = [id(MAIN)];
        let request = FetchRequest {
            wants: &wants,
            done: true,
            filter: Some("tree:0"),
            ..Default::default()
        };
        let write = |caps: &Capabilities, v2: bool| {
            let mut out = Vec::new();
            if v2 {
                write_v2_request(&mut out, caps, "a", &request).unwrap();
            } else {
                write_v0_request(&mut out, caps, "a", &request).unwrap();
            }
            String::from_utf8(out).unwrap()
        };
        let v0 = |line: &[u8]| Capabilities::parse_v0(line);
        let v0_filtered = write(&v0(b"filter ofs-delta"), false);
        assert!(v0_filtered.contains("filter tree:0\n"));
        let first_want = v0_filtered.lines().next().unwrap_or_default();
        assert!(first_want.contains(" filter"), "{first_want}");
        assert!(!write(&v0(b"ofs-delta"), false).contains("filter"));
        assert!(!write(&v2_caps(), true).contains("filter"));
    }

    #[test]
    fn v2_request_with_everything() {
        let wants = [id(MAIN)];
        let haves = [id(FEATURE), id(UNKNOWN)];
        let request = FetchRequest {
            wants: &wants,
            haves: &haves,
            done: false,
            thin_pack: true,
            ofs_delta: true,
            no_progress: true,
            wait_for_done: true,
            filter: None,
        };
        let mut out = Vec::new();
        write_v2_request(&mut out, &v2_caps(), "git-relay/0.1.0", &request).unwrap();
        assert_eq!(
            render(&out),
            [
                "command=fetch\n",
                "agent=git-relay/0.1.0\n",
                "object-format=sha1\n",
                "<delim>",
                "thin-pack\n",
                "ofs-delta\n",
                "no-progress\n",
                "wait-for-done\n",
                &format!("want {MAIN}\n"),
                &format!("have {FEATURE}\n"),
                &format!("have {UNKNOWN}\n"),
                "<flush>",
            ]
        );
    }

    #[test]
    fn v2_request_omits_unadvertised_wait_for_done() {
        let wants = [id(MAIN)];
        let request = FetchRequest {
            wants: &wants,
            wait_for_done: true,
            done: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        write_v2_request(&mut out, &Capabilities::default(), "x", &request).unwrap();
        assert_eq!(
            render(&out),
            [
                "command=fetch\n",
                "<delim>",
                &format!("want {MAIN}\n"),
                "done\n",
                "<flush>"
            ]
        );
    }

    #[test]
    fn v0_request_first_want_carries_capabilities() {
        let wants = [id(MAIN), id(FEATURE)];
        let haves = [id(UNKNOWN)];
        let mut request = FetchRequest {
            wants: &wants,
            haves: &haves,
            thin_pack: true,
            ofs_delta: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        write_v0_request(&mut out, &v0_caps(), "git-relay/0.1.0", &request).unwrap();
        assert_eq!(
            render(&out),
            [
                &format!(
                    "want {MAIN} multi_ack_detailed side-band-64k thin-pack ofs-delta \
                     agent=git-relay/0.1.0\n"
                ),
                &format!("want {FEATURE}\n"),
                "<flush>",
                &format!("have {UNKNOWN}\n"),
                "<flush>",
            ][..]
        );

        request.done = true;
        request.no_progress = true;
        out.clear();
        write_v0_request(&mut out, &v0_caps(), "git-relay/0.1.0", &request).unwrap();
        let lines = render(&out);
        assert!(lines[0].contains(" no-progress "), "{}", lines[0]);
        assert_eq!(lines.last().unwrap(), "done\n");
    }

    #[test]
    fn v0_request_asks_only_for_advertised_capabilities() {
        let wants = [id(MAIN)];
        let request = FetchRequest {
            wants: &wants,
            thin_pack: true,
            ofs_delta: true,
            no_progress: true,
            done: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        write_v0_request(
            &mut out,
            &Capabilities::parse_v0(b"side-band ofs-delta"),
            "a",
            &request,
        )
        .unwrap();
        assert_eq!(
            render(&out),
            [
                &format!("want {MAIN} side-band ofs-delta\n")[..],
                "<flush>",
                "done\n"
            ]
        );
        assert!(v0_uses_sideband(&Capabilities::parse_v0(b"side-band")));
        assert!(!v0_uses_sideband(&Capabilities::parse_v0(b"ofs-delta")));
    }

    #[test]
    fn v0_request_needs_a_want() {
        let mut out = Vec::new();
        let err =
            write_v0_request(&mut out, &v0_caps(), "a", &FetchRequest::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
    }

    #[test]
    fn requests_refuse_an_agent_that_breaks_the_line() {
        let wants = [id(MAIN)];
        let request = FetchRequest {
            wants: &wants,
            ..Default::default()
        };
        let mut out = Vec::new();
        assert!(write_v0_request(&mut out, &v0_caps(), "a\nb", &request).is_err());
        assert!(write_v2_request(&mut out, &v2_caps(), "a\0b", &request).is_err());
        assert!(out.is_empty());
    }

    /// A real request must be accepted by a real server: replayed captures
    /// prove the parsing side; this proves the encoding side produces the
    /// bytes the captures were made with.
    #[test]
    fn v2_request_matches_capture_input() {
        let wants = [id(MAIN)];
        let haves = [id(FEATURE)];
        let request = FetchRequest {
            wants: &wants,
            haves: &haves,
            thin_pack: true,
            ofs_delta: true,
            done: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        write_v2_request(&mut out, &v2_caps(), "git-relay/0.1", &request).unwrap();
        let expected = format!(
            "0012command=fetch\n0018agent=git-relay/0.1\n0017object-format=sha1\n0001\
             000ethin-pack\n000eofs-delta\n0032want {MAIN}\n0032have {FEATURE}\n0009done\n0000"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    fn read_v2(bytes: &[u8]) -> (Result<V2FetchResponse, ProtocolError>, Vec<u8>) {
        let mut reader = PacketReader::new(bytes);
        let response = read_v2_response(&mut reader);
        let mut rest = Vec::new();
        reader.into_inner().read_to_end(&mut rest).unwrap();
        (response, rest)
    }

    fn drain_pack(rest: &[u8]) -> Vec<u8> {
        let mut pack = Vec::new();
        SidebandReader::new(PacketReader::new(rest), |_: &[u8]| {})
            .read_to_end(&mut pack)
            .unwrap();
        pack
    }

    #[test]
    fn real_v2_responses() {
        let common = |ready| Acknowledgments {
            common: vec![id(FEATURE)],
            ready,
        };
        // (capture, response, a pack follows)
        let cases: [(&[u8], V2FetchResponse, bool); 5] = [
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v2-acks-ready-packfile.bin"),
                V2FetchResponse::Packfile(common(true)),
                true,
            ),
            // With wait-for-done the server withholds "ready" and the pack.
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v2-acks-only-wait-for-done.bin"),
                V2FetchResponse::AcknowledgmentsOnly(common(false)),
                false,
            ),
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v2-nak.bin"),
                V2FetchResponse::AcknowledgmentsOnly(Acknowledgments::default()),
                false,
            ),
            // With done the server goes straight to the pack.
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v2-done-packfile.bin"),
                V2FetchResponse::Packfile(Acknowledgments::default()),
                true,
            ),
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v2-clone-no-progress.bin"),
                V2FetchResponse::Packfile(Acknowledgments::default()),
                true,
            ),
        ];
        for (capture, expected, pack) in cases {
            let (response, rest) = read_v2(capture);
            assert_eq!(response.unwrap(), expected);
            if pack {
                assert!(drain_pack(&rest).starts_with(b"PACK\0\0\0\x02"));
            } else {
                assert!(rest.is_empty());
            }
        }
    }

    #[test]
    fn real_v2_err() {
        let capture = include_bytes!("../../fuzz/corpus/fetch_response/v2-err-not-our-ref.bin");
        let (response, _) = read_v2(capture);
        assert!(matches!(
            response,
            Err(ProtocolError::Remote(m)) if m.starts_with("upload-pack: not our ref 2222")
        ));
    }

    #[test]
    fn v2_optional_sections() {
        let body = [
            &pkt("shallow-info\n"),
            "0001",
            &pkt("wanted-refs\n"),
            &pkt(&format!("{MAIN} refs/heads/main\n")),
            "0001",
            &pkt("packfile-uris\n"),
            "0001",
            &pkt("packfile\n"),
            &pkt("\x01x"),
            "0000",
        ]
        .concat();
        let (response, rest) = read_v2(body.as_bytes());
        assert_eq!(
            response.unwrap(),
            V2FetchResponse::Packfile(Acknowledgments::default())
        );
        assert_eq!(drain_pack(&rest), b"x");
    }

    #[test]
    fn v2_malformed() {
        let cases = [
            (String::new(), "closed"),
            ("0014acknowledgments\n".into(), "closed"),
            (
                format!("0014acknowledgments\n0030ACK {}\n0000", &MAIN[..38]),
                "object id",
            ),
            (
                "0014acknowledgments\n000aMAYBE\n0000".into(),
                "acknowledgments",
            ),
            ("0014acknowledgments\n0002".into(), "response-end"),
            ("0014acknowledgments\n0001".into(), "closed"),
            ("0014acknowledgments\n00010000".into(), "flush"),
            (
                "0014acknowledgments\n00010014acknowledgments\n".into(),
                "second time",
            ),
            ("000bunknown\n".into(), "unknown"),
            (
                format!(
                    "{}{}0001",
                    pkt("shallow-info\n"),
                    pkt(&format!("shallow {MAIN}\n"))
                ),
                "shallow repository",
            ),
            (
                format!("{}{}0001", pkt("packfile-uris\n"), pkt("abc https://x\n")),
                "packfile-uris were not requested",
            ),
            ("0010wanted-refs\n0000".into(), "flush"),
            ("0001".into(), "delimiter"),
        ];
        for (body, expected) in cases {
            let (response, _) = read_v2(body.as_bytes());
            let err = response.unwrap_err();
            assert!(err.to_string().contains(expected), "{body:?}: {err}");
        }
    }

    fn read_v0(bytes: &[u8], done: bool) -> (Result<Acknowledgments, ProtocolError>, Vec<u8>) {
        let mut reader = PacketReader::new(bytes);
        let response = read_v0_response(&mut reader, done);
        let mut rest = Vec::new();
        reader.into_inner().read_to_end(&mut rest).unwrap();
        (response, rest)
    }

    #[test]
    fn many_acks_are_deduplicated_in_linear_time() {
        // 200,000 distinct ids, each acknowledged twice: checking each
        // against all before it would take minutes.
        let mut input = String::new();
        let hex = |n: u32| format!("{n:040x}");
        for _ in 0..2 {
            for n in 0..200_000u32 {
                input.push_str(&pkt(&format!("ACK {} common\n", hex(n))));
            }
        }
        input.push_str(&pkt(&format!("ACK {}\n", hex(7))));
        let (acks, _) = read_v0(input.as_bytes(), false);
        let common = acks.unwrap().common;
        assert_eq!(common.len(), 200_000);
        assert_eq!(common.get(..2), Some(&[id(&hex(0)), id(&hex(1))][..]));
    }

    #[test]
    fn real_v0_responses() {
        let common = |ready| Acknowledgments {
            common: vec![id(FEATURE)],
            ready,
        };
        // (capture, sent done, acknowledgments, a pack follows)
        let cases: [(&[u8], bool, Acknowledgments, bool); 5] = [
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v0-common-nak.bin"),
                false,
                common(false),
                false,
            ),
            // The server answered "ACK 1111... ready" for haves it does not
            // have: they must not be reported as common.
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v0-common-ready-nak.bin"),
                false,
                common(true),
                false,
            ),
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v0-done-ack-packfile.bin"),
                true,
                common(false),
                true,
            ),
            (
                include_bytes!(
                    "../../fuzz/corpus/fetch_response/v0-done-common-ready-ack-packfile.bin"
                ),
                true,
                common(true),
                true,
            ),
            (
                include_bytes!("../../fuzz/corpus/fetch_response/v0-clone-nak-packfile.bin"),
                true,
                Acknowledgments::default(),
                true,
            ),
        ];
        for (capture, done, expected, pack) in cases {
            let (acks, rest) = read_v0(capture, done);
            assert_eq!(acks.unwrap(), expected);
            if pack {
                assert!(drain_pack(&rest).starts_with(b"PACK"));
            } else {
                assert!(rest.is_empty());
            }
        }
    }

    #[test]
    fn real_v0_err() {
        let capture = include_bytes!("../../fuzz/corpus/fetch_response/v0-err-not-our-ref.bin");
        let (acks, _) = read_v0(capture, true);
        assert!(matches!(acks, Err(ProtocolError::Remote(_))));
    }

    #[test]
    fn v0_malformed() {
        let cases = [
            (String::new(), "closed"),
            ("0000".into(), "flush"),
            ("0008ACK\n".into(), "ACK"),
            ("000bACK 12\n".into(), "object id"),
            (format!("003aACK {MAIN} continue\n"), "continue"),
            (pkt(&format!("ACK {MAIN} ")), "ACK 3d06"),
            (pkt(&format!("ACK {MAIN} common")), "closed"),
            (format!("0035shallow {MAIN}\n"), "shallow repository"),
            ("000aHELLO\n".into(), "HELLO"),
        ];
        for (body, expected) in cases {
            let (acks, _) = read_v0(body.as_bytes(), false);
            let err = acks.unwrap_err();
            assert!(err.to_string().contains(expected), "{body:?}: {err}");
        }
    }
}

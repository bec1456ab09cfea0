//! The two conversations of a relay: with the source's upload-pack and with
//! the destination's receive-pack.
//!
//! This is where protocol messages meet a transport. [`Source`] lists refs
//! (protocol v2 `ls-refs` when the server offers v2, the v0 advertisement
//! otherwise) and negotiates a pack; [`Destination`] lists refs and pushes.
//! Each failure is tagged with its [`Side`] so the user learns which server
//! failed.
//!
//! Every response is read under the side's [`Limits`]: through a `Meter`
//! (low speed, deadline), and with a size limit on everything that is a
//! message rather than a pack, lifted where the pack starts. Side-band
//! streams count only their data as progress.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use crate::output;
use crate::protocol::advertisement::{self, Discovery, Ref};
use crate::protocol::fetch::{self, Acknowledgments, FetchRequest, V2FetchResponse};
use crate::protocol::push::{self, Command, ReportStatus};
use crate::protocol::sideband::SidebandReader;
use crate::protocol::{pack, Capabilities, ObjectId, PacketReader, ProtocolError};
use crate::transport::{
    Body, Exceeded, Limits, Meter, NetworkOptions, Response, Service, Transport, TransportError,
};

/// Which server a message or failure concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The repository mirrored from.
    Source,
    /// The repository mirrored to.
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// A failure on one side, with the location and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{side} ({location}): {cause}")]
pub struct SideError {
    /// Which server.
    pub side: Side,
    /// Its printable location.
    pub(crate) location: String,
    /// What happened.
    pub(crate) cause: Cause,
}

/// What went wrong on a side.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Cause {
    /// Reaching the server failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server said something we could not accept.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server refused the request as a whole.
    #[error("{0}")]
    Refused(String),
    /// A local backup could not be opened, locked or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl SideError {
    /// Whether running again may succeed (see [`TransportError::is_transient`]).
    pub(crate) fn is_transient(&self) -> bool {
        match &self.cause {
            Cause::Transport(t) => t.is_transient(),
            Cause::Protocol(ProtocolError::UnexpectedEof) => true,
            Cause::Protocol(ProtocolError::Io(e)) => crate::transport::is_transient_io(e),
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match &self.cause {
            Cause::Transport(t) => t.retry_after(),
            _ => None,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match &self.cause {
            Cause::Transport(t) => t.hint(),
            Cause::Protocol(ProtocolError::TooManyRefs { .. }) => {
                Some("if the repository really has this many refs, raise --max-advertised-refs")
            }
            Cause::Protocol(ProtocolError::MessageTooLarge { .. }) => {
                Some("if the repository really lists this much, raise --max-advertisement-bytes")
            }
            Cause::Protocol(ProtocolError::UnexpectedEof) => Some(
                "the connection was cut; run again (the destination is never left half-updated)",
            ),
            _ => None,
        }
    }
}

/// Tags errors with a side and turns read timeouts into a clear message.
#[derive(Clone)]
pub(crate) struct Blame {
    side: Side,
    location: String,
    timeout: Duration,
}

impl Blame {
    pub(crate) fn new(side: Side, location: &str, timeout: Duration) -> Blame {
        Blame {
            side,
            location: location.to_owned(),
            timeout,
        }
    }

    pub(crate) fn error(&self, cause: impl Into<Cause>) -> SideError {
        let cause = match cause.into() {
            Cause::Protocol(ProtocolError::Io(e)) => self.io_cause(e),
            Cause::Transport(TransportError::Io(e)) => self.io_cause(e),
            other => other,
        };
        SideError {
            side: self.side,
            location: self.location.clone(),
            cause,
        }
    }

    fn io_cause(&self, e: io::Error) -> Cause {
        if let Some(exceeded) = Exceeded::from_io(&e) {
            return Cause::Transport(TransportError::Limit(exceeded));
        }
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return Cause::Transport(TransportError::Timeout {
                timeout: self.timeout,
            });
        }
        match ProtocolError::from_io(e) {
            ProtocolError::Io(e)
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || crate::transport::is_truncated_chunked_body(&e) =>
            {
                Cause::Protocol(ProtocolError::UnexpectedEof)
            }
            other => Cause::Protocol(other),
        }
    }
}

/// Which protocol the source speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// Protocol v0 (stateless: every request repeats the wants and haves).
    V0,
    /// Protocol v2 (`command=ls-refs`, `command=fetch`).
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V0 => "v0",
            Version::V2 => "v2",
        })
    }
}

/// What a negotiation round learnt, and the pack if one was asked for.
pub(crate) struct Negotiated {
    /// Every object the source acknowledged having.
    pub(crate) known: HashSet<ObjectId>,
    /// The pack, demultiplexed, when one was requested.
    pub(crate) pack: Option<Box<dyn Read + Send>>,
}

/// How the pack should be built, from what the destination accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackOptions {
    /// Deltas may refer to objects the destination already has.
    pub(crate) thin: bool,
    /// Offset deltas are allowed.
    pub(crate) ofs_delta: bool,
}

/// The source: an upload-pack conversation.
pub(crate) struct Source {
    transport: Box<dyn Transport>,
    version: Version,
    capabilities: Capabilities,
    blame: Blame,
    bounds: Bounds,
}

impl Source {
    /// Discovers the source and lists its refs.
    pub(crate) fn connect(
        transport: Box<dyn Transport>,
        network: &NetworkOptions,
    ) -> Result<(Source, Vec<Ref>), SideError> {
        let blame = Blame::new(Side::Source, transport.display(), network.timeout);
        let bounds = Bounds::new(network, transport.as_ref());
        let response = transport
            .discover(Service::UploadPack, true)
            .map_err(|e| blame.error(e))?;
        let (mut reader, _) = bounds.message(response);
        let discovery = advertisement::read_discovery(
            &mut reader,
            Service::UploadPack.name(),
            bounds.limits.max_refs,
        )
        .map_err(|e| blame.error(e))?;
        drain(reader.into_inner());
        match discovery {
            Discovery::V0 { refs, capabilities } => Ok((
                Source {
                    transport,
                    version: Version::V0,
                    capabilities,
                    blame,
                    bounds,
                },
                refs,
            )),
            Discovery::V2(capabilities) => {
                if !capabilities.contains("ls-refs") || !capabilities.contains("fetch") {
                    return Err(blame.error(Cause::Refused(
                        "the server speaks protocol v2 but offers no ls-refs/fetch".into(),
                    )));
                }
                let source = Source {
                    transport,
                    version: Version::V2,
                    capabilities,
                    blame,
                    bounds,
                };
                let mut body = Vec::new();
                advertisement::write_ls_refs_request(
                    &mut body,
                    &source.capabilities,
                    crate::AGENT,
                    &["HEAD", "refs/"],
                )
                .map_err(|e| source.blame.error(ProtocolError::Io(e)))?;
                let (mut reader, _) = source.bounds.message(source.rpc(body)?);
                let refs = advertisement::read_ls_refs(&mut reader, source.bounds.limits.max_refs)
                    .map_err(|e| source.blame.error(e))?;
                drain(reader.into_inner());
                Ok((source, refs))
            }
        }
    }

    fn rpc(&self, body: Vec<u8>) -> Result<Response, SideError> {
        self.transport
            .rpc(
                Service::UploadPack,
                self.version == Version::V2,
                Body::Bytes(body),
            )
            .map_err(|e| self.blame.error(e))
    }

    /// Whether the source can negotiate without volunteering a pack.
    fn can_wait_for_done(&self) -> bool {
        self.version == Version::V2
            && self
                .capabilities
                .v2_command_has_feature("fetch", "wait-for-done")
    }

    /// Negotiates with the source.
    ///
    /// `haves` are the destination's tips; `suspects` are those among them
    /// whose refs would be overwritten or deleted, which the divergence rule
    /// needs the source to vouch for. A fetch without `done` answers with an
    /// `ACK` for each have the source knows, except (git's upload-pack, v2)
    /// a have that is a direct parent of one it just acknowledged in the same
    /// request; so suspects left unacknowledged are asked about again, alone,
    /// until a round learns nothing new.
    ///
    /// With `pack`, the pack for `wants` is then requested (thin against the
    /// acknowledged haves when the destination accepts thin packs) and
    /// returned ready to stream.
    pub(crate) fn negotiate(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        suspects: &[ObjectId],
        pack: Option<PackOptions>,
    ) -> Result<Negotiated, SideError> {
        const MAX_PROBE_ROUNDS: usize = 8;
        let mut known: HashSet<ObjectId> = HashSet::new();
        let mut common: Vec<ObjectId> = Vec::new();
        let probing = !suspects.is_empty() && !haves.is_empty() && !wants.is_empty();
        if probing {
            let mut asking: Vec<ObjectId> = haves.to_vec();
            for round in 0..MAX_PROBE_ROUNDS {
                let request = FetchRequest {
                    wants,
                    haves: &asking,
                    done: false,
                    thin_pack: pack.is_some_and(|p| p.thin),
                    ofs_delta: pack.is_some_and(|p| p.ofs_delta),
                    no_progress: true,
                    wait_for_done: self.can_wait_for_done(),
                    filter: None,
                };
                let (acks, volunteered) = self.fetch(&request)?;
                let before = known.len();
                for oid in acks.common {
                    if known.insert(oid) {
                        common.push(oid);
                    }
                }
                asking = suspects
                    .iter()
                    .filter(|s| !known.contains(s))
                    .copied()
                    .collect();
                if let (Some(stream), Some(_), true) = (volunteered, pack, asking.is_empty()) {
                    // A server without `wait-for-done` sent the pack as soon
                    // as it was ready; it is the one we want.
                    return Ok(Negotiated {
                        known,
                        pack: Some(stream),
                    });
                }
                if asking.is_empty() || (round > 0 && known.len() == before) {
                    break;
                }
            }
        } else {
            common = haves.to_vec();
        }
        let Some(options) = pack.filter(|_| !wants.is_empty()) else {
            return Ok(Negotiated { known, pack: None });
        };
        let request = FetchRequest {
            wants,
            haves: &common,
            done: true,
            thin_pack: options.thin,
            ofs_delta: options.ofs_delta,
            no_progress: true,
            wait_for_done: false,
            filter: None,
        };
        let (_, stream) = self.fetch(&request)?;
        match stream {
            Some(stream) => Ok(Negotiated {
                known,
                pack: Some(stream),
            }),
            None => Err(self.blame.error(Cause::Refused(
                "the server ended the fetch without sending a pack".into(),
            ))),
        }
    }

    /// Which `(old, new)` updates are fast-forwards, as far as probes can
    /// tell (see [`fast_forward`]): one probe for all of them, then one per
    /// update it left undecided, at most [`MAX_SINGLE_PROBES`] of those.
    pub(crate) fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
        let mut answers = vec![None; updates.len()];
        let unique = |ids: Vec<ObjectId>| {
            let mut ids = ids;
            ids.sort();
            ids.dedup();
            ids
        };
        let olds = unique(updates.iter().map(|u| u.0).collect());
        let news = unique(updates.iter().map(|u| u.1).collect());
        if let Some(parents) = self.probe(&news, &olds) {
            for (answer, &(old, new)) in answers.iter_mut().zip(updates) {
                *answer = fast_forward(&parents, old, new, olds.len() == 1);
            }
        }
        let undecided = answers.iter_mut().zip(updates).filter(|(a, _)| a.is_none());
        for (answer, &(old, new)) in undecided.take(MAX_SINGLE_PROBES) {
            *answer = self
                .probe(&[new], &[old])
                .and_then(|parents| fast_forward(&parents, old, new, true));
        }
        answers
    }

    /// The commits reachable from `wants` and not from `haves`, with their
    /// parents: a pack of commits only where the server can filter. `None`
    /// when the probe failed or outgrew its budget; the caller then cannot
    /// tell, which costs a word in the report, not the run.
    fn probe(&self, wants: &[ObjectId], haves: &[ObjectId]) -> Option<pack::Parents> {
        let request = FetchRequest {
            wants,
            haves,
            done: true,
            thin_pack: false,
            ofs_delta: true,
            no_progress: true,
            wait_for_done: false,
            filter: Some("tree:0"),
        };
        let parents = self
            .fetch(&request)
            .map_err(|e| e.to_string())
            .and_then(|(_, stream)| stream.ok_or_else(|| "no pack".to_owned()))
            .and_then(|stream| {
                pack::commit_parents(stream, PROBE_BUDGET).map_err(|e| e.to_string())
            });
        match parents {
            Ok(parents) => Some(parents),
            Err(e) => {
                output::debug(format_args!("source: history probe failed: {e}"));
                None
            }
        }
    }

    /// One fetch request: its acknowledgments, and the pack if it follows.
    fn fetch(
        &self,
        request: &FetchRequest<'_>,
    ) -> Result<(Acknowledgments, Option<Box<dyn Read + Send>>), SideError> {
        let mut body = Vec::new();
        let written = match self.version {
            Version::V2 => {
                fetch::write_v2_request(&mut body, &self.capabilities, crate::AGENT, request)
            }
            Version::V0 => {
                fetch::write_v0_request(&mut body, &self.capabilities, crate::AGENT, request)
            }
        };
        written.map_err(|e| self.blame.error(ProtocolError::Io(e)))?;
        let (mut reader, meter) = self.bounds.message(self.rpc(body)?);
        match self.version {
            Version::V2 => {
                match fetch::read_v2_response(&mut reader).map_err(|e| self.blame.error(e))? {
                    V2FetchResponse::AcknowledgmentsOnly(acks) => {
                        drain(reader.into_inner());
                        Ok((acks, None))
                    }
                    V2FetchResponse::Packfile(acks) => {
                        Ok((acks, Some(demultiplex(reader, &meter))))
                    }
                }
            }
            Version::V0 => {
                let acks = fetch::read_v0_response(&mut reader, request.done)
                    .map_err(|e| self.blame.error(e))?;
                if !request.done {
                    drain(reader.into_inner());
                    return Ok((acks, None));
                }
                if fetch::v0_uses_sideband(&self.capabilities) {
                    Ok((acks, Some(demultiplex(reader, &meter))))
                } else {
                    // The raw pack follows: no message limit, and every byte
                    // is progress.
                    Ok((acks, Some(reader.into_inner())))
                }
            }
        }
    }
}

/// The most single-update probes one run makes after the first, shared
/// one; updates past them are reported without saying whether they
/// rewrote history.
const MAX_SINGLE_PROBES: usize = 16;
/// The most pack bytes one probe reads: commits only, where the server can
/// filter, are a few hundred bytes each.
const PROBE_BUDGET: u64 = 64 << 20;

/// Whether `old` is an ancestor of `new`, from `parents`: the commits
/// reachable from the probe's wants and not from its haves (`old` among
/// them). `old` is an ancestor exactly when a commit in the pack reached
/// from `new` has it as a parent. A walk that also met commits outside the
/// pack (reachable from some have) proves nothing more when there were
/// other haves than `old`, one of which may descend from it: then `None`.
pub(crate) fn fast_forward(
    parents: &pack::Parents,
    old: ObjectId,
    new: ObjectId,
    old_was_the_only_have: bool,
) -> Option<bool> {
    let mut seen: HashSet<ObjectId> = HashSet::from([new]);
    let mut walk = vec![new];
    let mut left_the_pack = false;
    while let Some(commit) = walk.pop() {
        let Some(ps) = parents.get(&commit) else {
            left_the_pack = true;
            continue;
        };
        for &parent in ps {
            if parent == old {
                return Some(true);
            }
            if seen.insert(parent) {
                walk.push(parent);
            }
        }
    }
    (old_was_the_only_have || !left_the_pack).then_some(false)
}

/// What the engine needs from a source: an upload-pack conversation
/// ([`Source`]) or a local repository read through git2 (see
/// `crate::store::LocalSource`).
pub(crate) trait SourceSide {
    /// How the source is read, for the report: `v2`, `v0` or `git2`.
    fn protocol(&self) -> String;
    /// Learns which of `haves` the source has (all of `suspects` are asked
    /// about), and with `pack` returns the pack for `wants` as a stream;
    /// see [`Source::negotiate`].
    fn negotiate(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        suspects: &[ObjectId],
        pack: Option<PackOptions>,
    ) -> Result<Negotiated, SideError>;
    /// For each `(old, new)` update, whether `old` is an ancestor of `new`
    /// (a fast-forward) or the source rewrote that history; `None` where
    /// it cannot tell.
    fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>>;
    /// Tags `cause` with this side and its location.
    fn error(&self, cause: Cause) -> SideError;
}

impl SourceSide for Source {
    fn protocol(&self) -> String {
        self.version.to_string()
    }
    fn negotiate(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        suspects: &[ObjectId],
        pack: Option<PackOptions>,
    ) -> Result<Negotiated, SideError> {
        Source::negotiate(self, wants, haves, suspects, pack)
    }
    fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
        Source::fast_forwards(self, updates)
    }
    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }
}

/// Reads what is left of a finished response, so that the connection can be
/// reused and the server's work on the request is over before we go on.
/// Bounded: a server that keeps talking is simply cut off.
fn drain(response: impl Read) {
    const LIMIT: u64 = 1 << 20;
    let _ = io::copy(&mut response.take(LIMIT), &mut io::sink());
}

/// What bounds one side's conversation: its [`Limits`], and the timeout
/// that is also the low-speed window.
#[derive(Clone, Debug)]
struct Bounds {
    limits: Limits,
    timeout: Duration,
}

impl Bounds {
    fn new(network: &NetworkOptions, transport: &dyn Transport) -> Bounds {
        let mut limits = network.limits;
        if transport.is_local() {
            limits.low_speed_limit = 0;
        }
        Bounds {
            limits,
            timeout: network.timeout,
        }
    }

    /// Reads `response` under a new meter, as a message: at most
    /// [`Limits::max_message_bytes`] until the limit is lifted.
    fn message(&self, response: Response) -> (PacketReader<Response>, Meter) {
        let meter = Meter::new(&self.limits, self.timeout);
        let mut reader = PacketReader::new(Box::new(meter.checking(response)) as Response);
        reader.set_limit(Some(self.limits.max_message_bytes));
        (reader, meter)
    }
}

/// The channel-1 stream of a side-band response: no message limit (a pack
/// is as large as it is), and only channel-1 bytes count as progress, so a
/// server sending progress and no data is as slow as a silent one.
fn demultiplex(mut reader: PacketReader<Response>, meter: &Meter) -> Box<dyn Read + Send> {
    // We ask for no progress; anything the server still says on channel 2
    // is dropped rather than interleaved with our own progress line.
    fn ignore(_: &[u8]) {}
    reader.set_limit(None);
    meter.count_data_only();
    Box::new(meter.counting(SidebandReader::new(reader, ignore as fn(&[u8]))))
}

/// What the engine needs from a destination, whatever it is: a
/// receive-pack conversation ([`Destination`]) or a backup on disk
/// written through git2 (see `crate::store`). The engine plans against
/// `list_refs`, shapes the pack by what the side accepts, and hands it the
/// commands and the pack stream; the side answers like receive-pack would.
pub(crate) trait DestinationSide {
    /// Lists the destination's refs (again, to verify after a push).
    fn list_refs(&self) -> Result<Vec<Ref>, SideError>;
    /// Whether deltas may refer to objects the destination already has.
    fn accepts_thin_pack(&self) -> bool;
    /// Whether offset deltas are understood.
    fn accepts_ofs_delta(&self) -> bool;
    /// Whether refs may be deleted.
    fn allows_delete(&self) -> bool;
    /// Applies `commands`, with `pack` when any command needs objects, and
    /// reports per ref. An `Err` means the push as a whole failed.
    fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, SideError>;
    /// Points the destination's HEAD at `target`, the source's default
    /// branch, if the destination has that branch. Servers manage their own
    /// HEAD (a push cannot set it), so by default this does nothing.
    fn adopt_head(&self, _target: &str) -> Result<(), SideError> {
        Ok(())
    }
    /// Tags `cause` with this side and its location.
    fn error(&self, cause: Cause) -> SideError;
    /// Notes on refs this side wants in the report, `(ref, note)`: a backup
    /// says where it archived a dropped tip.
    fn notes(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl DestinationSide for Destination {
    fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
        Destination::list_refs(self)
    }
    fn accepts_thin_pack(&self) -> bool {
        Destination::accepts_thin_pack(self)
    }
    fn accepts_ofs_delta(&self) -> bool {
        Destination::accepts_ofs_delta(self)
    }
    fn allows_delete(&self) -> bool {
        Destination::allows_delete(self)
    }
    fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, SideError> {
        Destination::push(self, commands, pack)
    }
    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }
}

/// The destination: a receive-pack conversation.
pub(crate) struct Destination {
    transport: Box<dyn Transport>,
    capabilities: Capabilities,
    blame: Blame,
    bounds: Bounds,
}

impl Destination {
    /// Discovers the destination and lists its refs (receive-pack is v0).
    pub(crate) fn connect(
        transport: Box<dyn Transport>,
        network: &NetworkOptions,
    ) -> Result<(Destination, Vec<Ref>), SideError> {
        let blame = Blame::new(Side::Destination, transport.display(), network.timeout);
        let bounds = Bounds::new(network, transport.as_ref());
        let (refs, capabilities) = list_receive_refs(transport.as_ref(), &blame, &bounds)?;
        Ok((
            Destination {
                transport,
                capabilities,
                blame,
                bounds,
            },
            refs,
        ))
    }

    /// Lists the destination's refs again (verification after a push).
    pub(crate) fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
        list_receive_refs(self.transport.as_ref(), &self.blame, &self.bounds).map(|(refs, _)| refs)
    }

    /// Whether the destination accepts thin packs.
    pub(crate) fn accepts_thin_pack(&self) -> bool {
        !self.capabilities.contains("no-thin")
    }

    /// Whether the destination understands offset deltas.
    pub(crate) fn accepts_ofs_delta(&self) -> bool {
        self.capabilities.contains("ofs-delta")
    }

    /// Whether the destination allows deleting refs.
    pub(crate) fn allows_delete(&self) -> bool {
        self.capabilities.contains("delete-refs")
    }

    /// Sends `commands`, followed by `pack` when any command needs objects,
    /// and returns the destination's report.
    pub(crate) fn push(
        &self,
        commands: &[Command],
        pack: Option<&mut (dyn Read + Send)>,
    ) -> Result<ReportStatus, SideError> {
        let mut caps = Vec::new();
        if self.capabilities.contains("report-status-v2") {
            caps.push("report-status-v2".to_owned());
        } else if self.capabilities.contains("report-status") {
            caps.push("report-status".to_owned());
        } else {
            return Err(self.blame.error(Cause::Refused(
                "the server does not offer report-status, so the result of a push could not be known".into(),
            )));
        }
        let sideband = self.capabilities.contains("side-band-64k");
        for cap in ["side-band-64k", "quiet"] {
            if self.capabilities.contains(cap) {
                caps.push(cap.to_owned());
            }
        }
        if let Some(format) = self.capabilities.value("object-format") {
            caps.push(format!("object-format={format}"));
        }
        // A client may only send the capabilities a server advertised.
        if self.capabilities.contains("agent") {
            caps.push(format!("agent={}", crate::AGENT));
        }
        let mut head = Vec::new();
        push::write_commands(&mut head, commands, &caps)
            .map_err(|e| self.blame.error(ProtocolError::Io(e)))?;
        let mut head = io::Cursor::new(head);
        let response = match pack {
            Some(pack) => {
                let mut body = (&mut head).chain(pack);
                self.transport
                    .rpc(Service::ReceivePack, false, Body::Stream(&mut body))
            }
            None => self
                .transport
                .rpc(Service::ReceivePack, false, Body::Bytes(head.into_inner())),
        }
        .map_err(|e| self.blame.error(e))?;
        let (mut reader, meter) = self.bounds.message(response);
        let report = if sideband {
            fn progress(_: &[u8]) {}
            // The report is the message; the side-band stream around it is
            // bounded by its own limit on progress without data.
            reader.set_limit(None);
            meter.count_data_only();
            let demuxed = SidebandReader::new(reader, progress as fn(&[u8]));
            let mut demuxed = PacketReader::new(meter.counting(demuxed));
            demuxed.set_limit(Some(self.bounds.limits.max_message_bytes));
            let report = push::read_report_status(&mut demuxed, commands.len());
            if report.is_ok() {
                drain(demuxed.into_inner().into_inner().into_inner().into_inner());
            }
            report
        } else {
            let report = push::read_report_status(&mut reader, commands.len());
            if report.is_ok() {
                drain(reader.into_inner());
            }
            report
        };
        report.map_err(|e| self.blame.error(e))
    }
}

fn list_receive_refs(
    transport: &dyn Transport,
    blame: &Blame,
    bounds: &Bounds,
) -> Result<(Vec<Ref>, Capabilities), SideError> {
    let response = transport
        .discover(Service::ReceivePack, false)
        .map_err(|e| blame.error(e))?;
    let (mut reader, _) = bounds.message(response);
    let discovery = advertisement::read_discovery(
        &mut reader,
        Service::ReceivePack.name(),
        bounds.limits.max_refs,
    )
    .map_err(|e| blame.error(e))?;
    drain(reader.into_inner());
    match discovery {
        Discovery::V0 { refs, capabilities } => Ok((refs, capabilities)),
        Discovery::V2(_) => Err(blame.error(Cause::Refused(
            "receive-pack answered with protocol v2, which does not exist for pushes".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from([n; 20])
    }

    /// A pack holding commits 3 -> 2 -> (1, outside), and 5 -> (4, outside).
    fn parents() -> pack::Parents {
        pack::Parents::from([
            (id(3), vec![id(2)]),
            (id(2), vec![id(1)]),
            (id(5), vec![id(4)]),
        ])
    }

    #[test]
    fn a_parent_named_old_makes_a_fast_forward() {
        assert_eq!(fast_forward(&parents(), id(1), id(3), false), Some(true));
    }

    #[test]
    fn leaving_the_pack_elsewhere_decides_only_for_a_single_have() {
        assert_eq!(fast_forward(&parents(), id(9), id(5), true), Some(false));
        assert_eq!(fast_forward(&parents(), id(9), id(5), false), None);
    }

    #[test]
    fn a_new_tip_outside_the_pack_is_a_rewind() {
        // `new` reachable from the only have: the ref moved back.
        assert_eq!(fast_forward(&parents(), id(1), id(7), true), Some(false));
    }
}

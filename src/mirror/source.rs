//! The source's upload-pack conversation.
//!
//! [`Source`] lists refs (protocol v2 `ls-refs` when the server offers v2,
//! the v0 advertisement otherwise), negotiates and streams the pack, and
//! probes history: whether an update is a fast-forward.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;

use super::bounds::{demultiplex, drain, Bounds};
use super::error::{Blame, Cause, Side, SideError};
use super::sides::{Negotiated, PackOptions, SourceSide};
use crate::output;
use crate::protocol::advertisement::{self, Discovery, Ref};
use crate::protocol::blobs::{self, Place, Scan};
use crate::protocol::fetch::{self, Acknowledgments, FetchRequest, V2FetchResponse};
use crate::protocol::graph::{self, CommitGraph};
use crate::protocol::{pack, Capabilities, ObjectId, ProtocolError};
use crate::transport::{Body, NetworkOptions, Response, Service, Transport};

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
        let (version, capabilities, refs) =
            match bounds.discover(&*transport, Service::UploadPack, &blame)? {
                Discovery::V0 { refs, capabilities } => (Version::V0, capabilities, Some(refs)),
                Discovery::V2(capabilities) => {
                    if !capabilities.contains("ls-refs") || !capabilities.contains("fetch") {
                        return Err(blame.error(Cause::Refused(
                            "the server speaks protocol v2 but offers no ls-refs/fetch".into(),
                        )));
                    }
                    (Version::V2, capabilities, None)
                }
            };
        let source = Source {
            transport,
            version,
            capabilities,
            blame,
            bounds,
        };
        let refs = match refs {
            Some(refs) => refs,
            None => source.ls_refs()?,
        };
        Ok((source, refs))
    }

    /// Lists the refs of a v2 server, with peeled tags and symref targets.
    fn ls_refs(&self) -> Result<Vec<Ref>, SideError> {
        let mut body = Vec::new();
        let prefixes = ["HEAD", "refs/"];
        advertisement::write_ls_refs_request(
            &mut body,
            &self.capabilities,
            crate::AGENT,
            &prefixes,
        )
        .map_err(|e| self.blame.error(ProtocolError::Io(e)))?;
        let max_refs = self.bounds.limits.max_refs;
        self.bounds.read(self.rpc(body)?, &self.blame, |reader| {
            advertisement::read_ls_refs(reader, max_refs)
        })
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

    /// The commits reachable from `wants` and not from `haves`, with their
    /// parents: a pack of commits only where the server can filter. `None`
    /// when the probe failed or outgrew its budget; the caller then cannot
    /// tell, which costs a word in the report, not the run.
    fn probe(&self, wants: &[ObjectId], haves: &[ObjectId]) -> Option<pack::Parents> {
        let request = commits_only(wants, haves);
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

/// A request for the commits reachable from `wants` and not from `haves`:
/// filtered to commits (and tags) where the server can filter, the whole
/// pack otherwise, not thin (every commit is in it).
fn commits_only<'a>(wants: &'a [ObjectId], haves: &'a [ObjectId]) -> FetchRequest<'a> {
    FetchRequest {
        wants,
        haves,
        done: true,
        thin_pack: false,
        ofs_delta: true,
        no_progress: true,
        wait_for_done: false,
        filter: Some("tree:0"),
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

impl SourceSide for Source {
    fn protocol(&self) -> String {
        self.version.to_string()
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
    fn negotiate(
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
    fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
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

    /// Asks for the commits only (`filter tree:0`) where the server can
    /// filter; otherwise reads the commits at the start of the whole pack
    /// and hangs up once they are all there (git writes commits first).
    fn commit_graph(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
    ) -> Result<CommitGraph, SideError> {
        let request = commits_only(wants, haves);
        let (_, stream) = self.fetch(&request)?;
        let stream = stream.ok_or_else(|| {
            self.blame.error(Cause::Refused(
                "the server ended the fetch without sending a pack".into(),
            ))
        })?;
        graph::read_commit_graph(stream, wants, GRAPH_BUDGET).map_err(|e| self.blame.error(e))
    }

    /// Asks for the history filtered to blobs of at most `max_size` bytes
    /// (`blob:limit`, commits and trees besides), not thin, so that every
    /// delta's base is in the pack.
    fn small_blobs(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        max_size: u64,
        filtered_only: bool,
        found: &mut dyn FnMut(ObjectId, &[u8]),
    ) -> Result<Option<Scan>, SideError> {
        let can_filter = fetch::supports_filter(&self.capabilities);
        if !can_filter && filtered_only {
            return Ok(None);
        }
        // git leaves out blobs of `limit` bytes and more.
        let filter = format!("blob:limit={}", max_size + 1);
        let request = FetchRequest {
            wants,
            haves,
            done: true,
            thin_pack: false,
            ofs_delta: true,
            no_progress: true,
            wait_for_done: false,
            filter: Some(&filter),
        };
        let (_, stream) = self.fetch(&request)?;
        let stream = stream.ok_or_else(|| {
            self.blame.error(Cause::Refused(
                "the server ended the fetch without sending a pack".into(),
            ))
        })?;
        blobs::read_small_blobs(stream, GRAPH_BUDGET, max_size, found)
            .map(Some)
            .map_err(|e| self.blame.error(e))
    }

    /// Asks for the commits and trees of the history (`blob:none` where
    /// the server can filter; otherwise blobs come too, and are skipped).
    fn blob_paths(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        targets: &HashSet<ObjectId>,
    ) -> Result<HashMap<ObjectId, Place>, SideError> {
        let request = FetchRequest {
            wants,
            haves,
            done: true,
            thin_pack: false,
            ofs_delta: true,
            no_progress: true,
            wait_for_done: false,
            filter: Some("blob:none"),
        };
        let (_, stream) = self.fetch(&request)?;
        let stream = stream.ok_or_else(|| {
            self.blame.error(Cause::Refused(
                "the server ended the fetch without sending a pack".into(),
            ))
        })?;
        blobs::find_paths(stream, GRAPH_BUDGET, targets).map_err(|e| self.blame.error(e))
    }

    fn concurrent(&self) -> Option<&(dyn SourceSide + Sync)> {
        Some(self)
    }
    fn serves_any_commit(&self) -> bool {
        self.version == Version::V2
            || ["allow-reachable-sha1-in-want", "allow-any-sha1-in-want"]
                .iter()
                .any(|c| self.capabilities.contains(c))
    }

    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }
}

/// The most pack bytes read to learn the history of a batched push: all of
/// a repository's commits where the server cannot filter and does not put
/// them first; the run's low-speed limit and deadline bound it in time.
const GRAPH_BUDGET: u64 = 1 << 40;

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

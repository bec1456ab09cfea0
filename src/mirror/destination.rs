//! The destination's receive-pack conversation: list refs, push commands
//! and the pack, read the report-status.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use super::bounds::{drain, Bounds};
use super::error::{Blame, Cause, Side, SideError};
use super::sides::DestinationSide;
use crate::output;
use crate::protocol::advertisement::{Discovery, Ref};
use crate::protocol::push::{self, Command, ReportStatus};
use crate::protocol::sideband::SidebandReader;
use crate::protocol::{Capabilities, PacketReader, ProtocolError};
use crate::transport::spool::Spool;
use crate::transport::{Body, NetworkOptions, Service, Transport, TransportError};

/// The destination: a receive-pack conversation.
pub(crate) struct Destination {
    transport: Box<dyn Transport>,
    capabilities: Capabilities,
    blame: Blame,
    bounds: Bounds,
    /// Whether pushes go with a `Content-Length` (spooled first), once the
    /// server or a proxy refused a chunked body with HTTP 411.
    sized: AtomicBool,
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
                sized: AtomicBool::new(false),
            },
            refs,
        ))
    }
}

impl DestinationSide for Destination {
    /// Lists the destination's refs again (verification after a push).
    fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
        list_receive_refs(self.transport.as_ref(), &self.blame, &self.bounds).map(|(refs, _)| refs)
    }

    /// Whether the destination accepts thin packs.
    fn accepts_thin_pack(&self) -> bool {
        !self.capabilities.contains("no-thin")
    }

    /// Whether the destination understands offset deltas.
    fn accepts_ofs_delta(&self) -> bool {
        self.capabilities.contains("ofs-delta")
    }

    /// Whether the destination allows deleting refs.
    fn allows_delete(&self) -> bool {
        self.capabilities.contains("delete-refs")
    }

    /// Sends `commands`, followed by `pack` when any command needs objects,
    /// and returns the destination's report.
    fn push(
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
        let sized = self.sized.load(Ordering::Relaxed);
        let response = match pack {
            Some(pack) if sized => {
                let mut body = (&mut head).chain(pack);
                let mut spool = Spool::new(&mut body).map_err(|e| self.blame.error(ProtocolError::Io(e)))?;
                let len = spool.len();
                let mut reader = spool.reader().map_err(|e| self.blame.error(ProtocolError::Io(e)))?;
                self.transport
                    .rpc(Service::ReceivePack, false, Body::Sized(&mut reader, len))
            }
            Some(pack) => {
                let mut body = (&mut head).chain(pack);
                self.transport
                    .rpc(Service::ReceivePack, false, Body::Stream(&mut body))
            }
            None => self
                .transport
                .rpc(Service::ReceivePack, false, Body::Bytes(head.into_inner())),
        }
        .map_err(|e| {
            if matches!(e, TransportError::LengthRequired { .. }) && !sized {
                output::info(format_args!(
                    "destination: the server refuses chunked request bodies (HTTP 411); pushes now go with their length, spooled first"
                ));
                self.sized.store(true, Ordering::Relaxed);
            }
            self.blame.error(e)
        })?;
        let (mut reader, meter) = self.bounds.message(response);
        // What the server says on the side (index-pack's complaints among
        // it), kept short, to explain a pack it could not store.
        let mut said: Vec<u8> = Vec::new();
        let report = if sideband {
            let progress = |text: &[u8]| {
                let room = SAID_MAX.saturating_sub(said.len());
                said.extend_from_slice(&text[..text.len().min(room)]);
            };
            // The report is the message; the side-band stream around it is
            // bounded by its own limit on progress without data.
            reader.set_limit(None);
            meter.count_data_only();
            let demuxed = SidebandReader::new(reader, progress);
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
        let mut report = report.map_err(|e| self.blame.error(e))?;
        // A refusal's reason is a word ("hook declined"); the why is in what
        // the server said beside it (a hook's message, index-pack's).
        let said = String::from_utf8_lossy(&said);
        let said: Vec<&str> = said
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if !said.is_empty() {
            let said = format!(
                " (the server said: {})",
                crate::protocol::escape(said.join("; ").as_bytes())
            );
            let refused = report
                .refs
                .iter_mut()
                .filter_map(|r| r.result.as_mut().err());
            for reason in std::iter::once(&mut report.unpack)
                .filter_map(|u| u.as_mut().err())
                .chain(refused)
            {
                reason.push_str(&said);
            }
        }
        Ok(report)
    }

    fn error(&self, cause: Cause) -> SideError {
        self.blame.error(cause)
    }
}

/// The most of the server's side-band messages kept for an error.
const SAID_MAX: usize = 2048;

fn list_receive_refs(
    transport: &dyn Transport,
    blame: &Blame,
    bounds: &Bounds,
) -> Result<(Vec<Ref>, Capabilities), SideError> {
    let discovery = bounds.discover(transport, Service::ReceivePack, blame)?;
    match discovery {
        Discovery::V0 { refs, capabilities } => Ok((refs, capabilities)),
        Discovery::V2(_) => Err(blame.error(Cause::Refused(
            "receive-pack answered with protocol v2, which does not exist for pushes".into(),
        ))),
    }
}

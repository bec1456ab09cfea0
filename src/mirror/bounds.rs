//! What bounds one conversation with a server, shared by both sides.
//!
//! Every response is read under the side's [`Limits`]: through a `Meter`
//! (low speed, deadline), and with a size limit on everything that is a
//! message rather than a pack, lifted where the pack starts. Side-band
//! streams count only their data as progress.

use std::io::{self, Read};
use std::time::Duration;

use super::error::{Blame, SideError};
use crate::protocol::advertisement::{self, Discovery};
use crate::protocol::sideband::SidebandReader;
use crate::protocol::{PacketReader, ProtocolError};
use crate::transport::{Limits, Meter, NetworkOptions, Response, Service, Transport};

/// Reads what is left of a finished response, so that the connection can be
/// reused and the server's work on the request is over before we go on.
/// Bounded: a server that keeps talking is simply cut off.
pub(super) fn drain(response: impl Read) {
    const LIMIT: u64 = 1 << 20;
    let _ = io::copy(&mut response.take(LIMIT), &mut io::sink());
}

/// What bounds one side's conversation: its [`Limits`], and the timeout
/// that is also the low-speed window.
#[derive(Clone, Debug)]
pub(super) struct Bounds {
    pub(super) limits: Limits,
    timeout: Duration,
}

impl Bounds {
    pub(super) fn new(network: &NetworkOptions, transport: &dyn Transport) -> Bounds {
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
    pub(super) fn message(&self, response: Response) -> (PacketReader<Response>, Meter) {
        let meter = Meter::new(&self.limits, self.timeout);
        let mut reader = PacketReader::new(Box::new(meter.checking(response)) as Response);
        reader.set_limit(Some(self.limits.max_message_bytes));
        (reader, meter)
    }

    /// Parses one message from `response`, then drains what follows it.
    pub(super) fn read<T>(
        &self,
        response: Response,
        blame: &Blame,
        parse: impl FnOnce(&mut PacketReader<Response>) -> Result<T, ProtocolError>,
    ) -> Result<T, SideError> {
        let (mut reader, _) = self.message(response);
        let parsed = parse(&mut reader).map_err(|e| blame.error(e))?;
        drain(reader.into_inner());
        Ok(parsed)
    }

    /// Asks for the advertisement of `service` (protocol v2 where it exists:
    /// upload-pack) and reads it.
    pub(super) fn discover(
        &self,
        transport: &dyn Transport,
        service: Service,
        blame: &Blame,
    ) -> Result<Discovery, SideError> {
        let v2 = service == Service::UploadPack;
        let response = transport
            .discover(service, v2)
            .map_err(|e| blame.error(e))?;
        let max_refs = self.limits.max_refs;
        self.read(response, blame, |reader| {
            advertisement::read_discovery(reader, service.name(), max_refs)
        })
    }
}

/// The channel-1 stream of a side-band response: no message limit (a pack
/// is as large as it is), and only channel-1 bytes count as progress, so a
/// server sending progress and no data is as slow as a silent one.
pub(super) fn demultiplex(
    mut reader: PacketReader<Response>,
    meter: &Meter,
) -> Box<dyn Read + Send> {
    // We ask for no progress; anything the server still says on channel 2
    // is dropped rather than interleaved with our own progress line.
    fn ignore(_: &[u8]) {}
    reader.set_limit(None);
    meter.count_data_only();
    Box::new(meter.counting(SidebandReader::new(reader, ignore as fn(&[u8]))))
}

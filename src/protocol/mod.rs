//! The git wire protocol, as pure parsing and encoding over `Read`/`Write`.
//!
//! This layer knows pkt-lines, side-band, capabilities, ref advertisements
//! (v0/v1 and v2 `ls-refs`), upload-pack fetch requests and responses, and
//! receive-pack commands and report-status, and the commit graph of a
//! small pack (the one thing the relay reads inside a pack). It knows nothing of sockets,
//! HTTP or what a mirror is: the transport hands it byte streams and the
//! mirror engine decides what to ask for. That keeps every parser testable
//! against captured server output and fuzzable in isolation.
//!
//! Everything read from a server is untrusted: parsers return
//! [`ProtocolError`] instead of panicking on any input, never allocate more
//! than one pkt-line (`pktline::MAX_PKT_LEN`) at a time for framing, and
//! escape server bytes before quoting them in an error.
//!
//! The manuals are `gitprotocol-common(5)`, `gitprotocol-pack(5)`,
//! `gitprotocol-v2(5)`, `gitprotocol-http(5)` and
//! `gitprotocol-capabilities(5)`.

pub mod advertisement;
pub(crate) mod blobs;
pub(crate) mod cache;
pub(crate) mod capabilities;
pub mod fetch;
pub(crate) mod graph;
pub(crate) mod oid;
pub(crate) mod pack;
pub mod pktline;
pub mod push;
pub mod sideband;
pub(crate) mod slice;

mod error;

#[cfg(test)]
pub(crate) mod fuzz_regressions;
#[doc(hidden)]
pub mod fuzz_targets;
#[cfg(test)]
pub(crate) mod test_repo;

pub use capabilities::Capabilities;
pub(crate) use error::escape;
pub use error::ProtocolError;
pub use oid::ObjectId;
pub use pktline::{PacketLineRef, PacketReader};

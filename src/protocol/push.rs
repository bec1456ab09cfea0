//! receive-pack: the ref-update commands we send and the report-status we
//! get back.
//!
//! A push request is the command list, a flush, then the pack (no pack when
//! every command is a delete) — `gitprotocol-pack(5)`, "Reference Update
//! Request". This module writes the commands; the caller streams the pack
//! after them. Each command carries the old id the ref is expected to have,
//! which makes every update a compare-and-swap on the server.
//!
//! The commands are written byte for byte as git's own `send-pack` writes
//! them (each capability after the NUL preceded by a space, no trailing
//! newline), since that is the form every hosted server has been tested
//! against.
//!
//! With `side-band-64k` the report-status arrives inside channel 1: parse it
//! with a [`PacketReader`] over a
//! [`SidebandReader`](crate::protocol::sideband::SidebandReader).

use std::io::{self, Read, Write};

use crate::protocol::advertisement::ref_name;
use crate::protocol::error::remote_message;
use crate::protocol::pktline::{check_single_line, write_flush, write_parts};
use crate::protocol::{ObjectId, PacketLineRef, PacketReader, ProtocolError};

const REPORT_CONTEXT: &str = "reading the push report";

/// An empty pack (version 2, no objects, and its SHA-1 trailer): what
/// receive-pack needs after commands whose objects it already has.
pub(crate) const EMPTY_PACK: &[u8] = b"PACK\0\0\0\x02\0\0\0\0\x02\x9d\x08\x82\x3b\xd8\xa8\xea\xb5\x10\xad\x6a\xc7\x5c\x82\x3c\xfd\x3e\xd3\x1e";

/// One ref update: set `name` from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The id the server must still have for the ref; zero to create it.
    pub old: ObjectId,
    /// The id to set; zero to delete the ref.
    pub new: ObjectId,
    /// Full ref name.
    pub name: String,
}

/// Writes the command list and its flush.
///
/// `capabilities` (e.g. `report-status`, `side-band-64k`, `agent=...`) go on
/// the first command; send only what the server advertised. Fails with
/// [`io::ErrorKind::InvalidInput`], before writing anything, for an empty list
/// (the protocol requires a command) or a name or capability that could break
/// the line.
///
/// ```
/// use git_relay::protocol::push::{write_commands, Command};
/// use git_relay::protocol::ObjectId;
///
/// let create = Command {
///     old: ObjectId::ZERO,
///     new: "3d06390b8cfcc3636b12dd52f044eae8f1566458".parse()?,
///     name: "refs/heads/main".into(),
/// };
/// let mut out = Vec::new();
/// write_commands(&mut out, &[create], &["report-status".into(), "side-band-64k".into()])?;
/// let expected: &[u8] = b"00820000000000000000000000000000000000000000 \
///     3d06390b8cfcc3636b12dd52f044eae8f1566458 refs/heads/main\0 report-status side-band-64k\
///     0000";
/// assert_eq!(out, expected);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_commands<W: Write + ?Sized>(
    w: &mut W,
    commands: &[Command],
    capabilities: &[String],
) -> io::Result<()> {
    if commands.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a push request needs at least one command",
        ));
    }
    for command in commands {
        check_word("ref name", &command.name)?;
    }
    for capability in capabilities {
        check_word("capability", capability)?;
    }
    for (i, command) in commands.iter().enumerate() {
        let (old, new) = (command.old.to_hex(), command.new.to_hex());
        let mut line: Vec<&[u8]> = vec![&old, b" ", &new, b" ", command.name.as_bytes()];
        if i == 0 {
            line.push(b"\0");
            for capability in capabilities {
                line.push(b" ");
                line.push(capability.as_bytes());
            }
        }
        write_parts(w, &line)?;
    }
    write_flush(w)
}

fn check_word(what: &str, word: &str) -> io::Result<()> {
    check_single_line(what, word)?;
    if word.is_empty() || word.contains(' ') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} \"{word}\" is empty or contains a space and cannot be sent"),
        ));
    }
    Ok(())
}

/// The server's verdict on one ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefStatus {
    /// The ref, as named in the command.
    pub(crate) name: String,
    /// `Err` holds the server's reason (`non-fast-forward`, `failed to
    /// update ref`, a hook's message...).
    pub(crate) result: Result<(), String>,
}

/// The whole report-status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportStatus {
    /// Whether the pack was received and unpacked; `Err` holds the reason.
    pub(crate) unpack: Result<(), String>,
    /// One entry per command, in the server's order.
    pub(crate) refs: Vec<RefStatus>,
}

impl ReportStatus {
    /// Whether the pack and every ref update succeeded.
    #[cfg(test)]
    pub(crate) fn is_ok(&self) -> bool {
        self.unpack.is_ok() && self.refs.iter().all(|r| r.result.is_ok())
    }
}

/// Reads a report-status or report-status-v2 up to its flush (or the end of
/// the stream: some servers close instead). The `option` lines of
/// report-status-v2, which describe how a server-side hook rewrote an update,
/// are accepted and ignored.
///
/// A server reports once per command, so more than `max_refs` ref lines
/// (pass the number of commands sent) is an error rather than a list to
/// keep growing.
pub(crate) fn read_report_status<R: Read>(
    reader: &mut PacketReader<R>,
    max_refs: usize,
) -> Result<ReportStatus, ProtocolError> {
    let unpack = {
        let line = reader.read_line_required()?;
        let text = line.as_text().unwrap_or_default();
        match text.strip_prefix(b"unpack ") {
            Some(b"ok") => Ok(()),
            Some(reason) => Err(remote_message(reason)),
            None => return Err(ProtocolError::unexpected_line(REPORT_CONTEXT, line)),
        }
    };
    let mut refs = Vec::new();
    loop {
        let text = match reader.read_line()? {
            None | Some(PacketLineRef::Flush) => break,
            Some(line @ PacketLineRef::Data(_)) => line.as_text().unwrap_or_default(),
            Some(other) => return Err(ProtocolError::unexpected_line(REPORT_CONTEXT, other)),
        };
        if refs.len() >= max_refs && !text.starts_with(b"option ") {
            return Err(ProtocolError::unexpected(
                "reading the push report (more ref reports than commands sent)",
                text,
            ));
        }
        if let Some(name) = text.strip_prefix(b"ok ") {
            refs.push(RefStatus {
                name: ref_name(name)?,
                result: Ok(()),
            });
        } else if let Some(rest) = text.strip_prefix(b"ng ") {
            let (name, reason) = match rest.iter().position(|&b| b == b' ') {
                Some(space) => (
                    rest.get(..space).unwrap_or_default(),
                    remote_message(rest.get(space + 1..).unwrap_or_default()),
                ),
                None => (rest, String::new()),
            };
            let reason = if reason.is_empty() {
                "rejected without a reason".to_owned()
            } else {
                reason
            };
            refs.push(RefStatus {
                name: ref_name(name)?,
                result: Err(reason),
            });
        } else if !text.starts_with(b"option ") {
            return Err(ProtocolError::unexpected(REPORT_CONTEXT, text));
        }
    }
    Ok(ReportStatus { unpack, refs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::oid::{id, FEATURE, MAIN};
    use crate::protocol::pktline::pkt;
    use crate::protocol::sideband::SidebandReader;

    fn ok(name: &str) -> RefStatus {
        RefStatus {
            name: name.into(),
            result: Ok(()),
        }
    }

    fn ng(name: &str, reason: &str) -> RefStatus {
        RefStatus {
            name: name.into(),
            result: Err(reason.into()),
        }
    }

    #[test]
    fn commands_match_git_send_pack() {
        let commands = [
            Command {
                old: ObjectId::ZERO,
                new: id(MAIN),
                name: "refs/heads/main".into(),
            },
            Command {
                old: id(FEATURE),
                new: ObjectId::ZERO,
                name: "refs/heads/feature".into(),
            },
        ];
        let caps = [
            "report-status-v2",
            "side-band-64k",
            "quiet",
            "object-format=sha1",
            "agent=git/2.47.3",
        ]
        .map(String::from);
        let mut out = Vec::new();
        write_commands(&mut out, &commands, &caps).unwrap();
        // As traced from `git push` (GIT_TRACE_PACKET, git 2.47.3).
        let first = format!(
            "0000000000000000000000000000000000000000 {MAIN} refs/heads/main\0 report-status-v2 \
             side-band-64k quiet object-format=sha1 agent=git/2.47.3"
        );
        let second =
            format!("{FEATURE} 0000000000000000000000000000000000000000 refs/heads/feature");
        let expected = format!(
            "{:04x}{first}{:04x}{second}0000",
            first.len() + 4,
            second.len() + 4
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn commands_are_checked_before_writing() {
        let good = Command {
            old: ObjectId::ZERO,
            new: id(MAIN),
            name: "refs/heads/main".into(),
        };
        let mut bad_name = good.clone();
        bad_name.name = "refs/heads/x\n0000".into();
        let mut spaced = good.clone();
        spaced.name = "refs/heads/a b".into();
        let mut out = Vec::new();
        for (commands, caps) in [
            (vec![], vec![]),
            (vec![good.clone(), bad_name], vec![]),
            (vec![spaced], vec![]),
            (vec![good.clone()], vec!["report-status\0evil".to_owned()]),
            (vec![good], vec![String::new()]),
        ] {
            let err = write_commands(&mut out, &commands, &caps).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn real_report_inside_sideband() {
        let capture = include_bytes!("../../fuzz/corpus/report_status/sideband-rp-sb.bin");
        let mut progress = Vec::new();
        let mut sideband = SidebandReader::new(PacketReader::new(&capture[..]), |p: &[u8]| {
            progress.extend_from_slice(p)
        });
        let report = read_report_status(&mut PacketReader::new(&mut sideband), usize::MAX).unwrap();
        assert_eq!(
            report,
            ReportStatus {
                unpack: Ok(()),
                refs: vec![
                    ok("refs/heads/main"),
                    ok("refs/heads/feature"),
                    ng("refs/heads/stale", "failed to update ref"),
                ]
            }
        );
        assert!(!report.is_ok());
        drop(sideband);
        assert!(String::from_utf8(progress)
            .unwrap()
            .contains("cannot lock ref"));
    }

    #[test]
    fn real_unpack_failure() {
        let capture = include_bytes!("../../fuzz/corpus/report_status/sideband-rp-badpack.bin");
        let mut sideband = SidebandReader::new(PacketReader::new(&capture[..]), |_: &[u8]| {});
        let report = read_report_status(&mut PacketReader::new(&mut sideband), usize::MAX).unwrap();
        assert_eq!(
            report.unpack,
            Err("eof before pack header was fully read".into())
        );
        assert_eq!(report.refs, [ng("refs/heads/bad", "unpacker error")]);
    }

    #[test]
    fn real_plain_report_status_v2() {
        let capture = include_bytes!("../../fuzz/corpus/report_status/plain-report-status-v2.bin");
        let report = read_report_status(&mut PacketReader::new(&capture[..]), usize::MAX).unwrap();
        assert!(report.is_ok());
        assert_eq!(report.refs, [ok("refs/heads/main"), ok("refs/heads/other")]);
        // Two commands, two reports; one command cannot get two.
        assert!(read_report_status(&mut PacketReader::new(&capture[..]), 2).is_ok());
        let err = read_report_status(&mut PacketReader::new(&capture[..]), 1).unwrap_err();
        assert!(
            err.to_string().contains("more ref reports than commands"),
            "{err}"
        );
    }

    #[test]
    fn option_lines_and_eof_instead_of_flush() {
        let body = [
            pkt("unpack ok\n"),
            pkt("ok refs/for/master\n"),
            pkt("option refname refs/heads/x\n"),
            pkt(&format!("option old-oid {MAIN}\n")),
            pkt(&format!("option new-oid {FEATURE}\n")),
            pkt("option forced-update\n"),
            pkt("ng refs/a\n"),
        ]
        .concat();
        let report =
            read_report_status(&mut PacketReader::new(body.as_bytes()), usize::MAX).unwrap();
        assert_eq!(
            report.refs,
            [
                ok("refs/for/master"),
                ng("refs/a", "rejected without a reason")
            ]
        );
    }

    #[test]
    fn malformed_reports() {
        for (body, expected) in [
            ("", "closed"),
            ("0000", "flush"),
            ("000bunpack\n", "unpack"),
            ("000eunpack ok\n000cmaybe x\n", "maybe x"),
            ("000eunpack ok\n0001", "delimiter"),
            ("000eunpack ok\n0007ok ", "ref name"),
            ("000eunpack ok\n0009ok \x1b\n", "ref name"),
            ("000eunpack ok\n000aok ab", "closed"),
            ("0015ERR unpack failed", "reported an error: unpack failed"),
        ] {
            let err = read_report_status(&mut PacketReader::new(body.as_bytes()), usize::MAX)
                .unwrap_err();
            assert!(err.to_string().contains(expected), "{body:?}: {err}");
        }
    }

    #[test]
    fn channel_three_surfaces_through_the_stack() {
        let body = [pkt("\x01000eunpack ok\n"), pkt("\x03fatal: disk full\n")].concat();
        let body = body.as_bytes();
        let mut sideband = SidebandReader::new(PacketReader::new(body), |_: &[u8]| {});
        let err =
            read_report_status(&mut PacketReader::new(&mut sideband), usize::MAX).unwrap_err();
        assert!(matches!(err, ProtocolError::Remote(m) if m == "fatal: disk full"));
    }
}

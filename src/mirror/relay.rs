//! The relay: everything a run decides and moves once both sides are
//! listed, as named phases over [`SourceSide`] and [`DestinationSide`].
//!
//! [`relay`] opens nothing (that is `open` in the parent module), so every
//! decision here (protected, rejected, rewritten, confirmed) is unit-tested
//! below against in-memory sides rather than only against real servers.

use std::collections::HashSet;
use std::io::{self, Read};
use std::time::Instant;

use super::error::{Cause, SideError};
use super::sides::{DestinationSide, Negotiated, PackOptions, SourceSide};
use super::stream::Counted;
use super::{Action, Mode, Options, Outcome, Plan, RefReport, Report, Totals};
use crate::output;
use crate::protocol::advertisement::Ref;
use crate::protocol::push::{self, Command, ReportStatus};
use crate::protocol::ObjectId;

/// Makes the destination's selected refs equal to the source's, from both
/// listings: plan, negotiate and decide, transfer, confirm, follow HEAD.
///
/// Per-ref trouble (protected, rejected) is part of the report; an `Err`
/// means the run could not finish, and says which side failed.
pub(super) fn relay(
    opts: &Options,
    source: &dyn SourceSide,
    destination: &dyn DestinationSide,
    source_refs: &[Ref],
    dest_refs: &[Ref],
    started: Instant,
) -> Result<Report, SideError> {
    let plan = Plan::new(source_refs, dest_refs, &opts.selection, opts.prune);
    let mut report = Report {
        mode: opts.mode.name(),
        source: opts.source.location.to_string(),
        destination: opts.destination.location.to_string(),
        source_protocol: source.protocol(),
        refs: Vec::new(),
        totals: Totals {
            unchanged: plan.unchanged,
            kept: plan.kept,
            ..Totals::default()
        },
        pack_bytes: 0,
        bytes_sent: 0,
        duration_ms: 0,
        in_sync: true,
    };
    // A no-op costs the two listings and nothing more.
    if !plan.changes.is_empty() {
        let negotiated = negotiate(opts, source, destination, &plan, source_refs, dest_refs)?;
        let commands = decide(
            opts,
            source,
            destination,
            &plan,
            &negotiated.known,
            &mut report,
        );
        if opts.mode == Mode::Mirror && !commands.is_empty() {
            let status = transfer(
                source,
                destination,
                &plan,
                &commands,
                negotiated,
                &mut report,
            )?;
            confirm(destination, &status, &mut report)?;
        }
        // Otherwise a pack the source volunteered was dropped, unread.
    }
    // Every mirror run, a no-op too, brings the source's default branch
    // along: a backup made from an empty source, or by a run that was cut
    // short, or whose source later changed its default, would otherwise
    // keep a HEAD that `git clone` cannot check out.
    if opts.mode == Mode::Mirror {
        let head = source_refs
            .iter()
            .find(|r| r.name == "HEAD")
            .and_then(|r| r.symref_target.as_deref());
        if let Some(target) = head.filter(|t| opts.selection.selects(t)) {
            destination.adopt_head(target)?;
        }
    }
    report.tally();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Asks the source which destination tips it knows, and (in a mirror run)
/// for the pack of what the destination lacks. `known` comes back holding
/// the source's advertised objects too: those are known without asking.
fn negotiate(
    opts: &Options,
    source: &dyn SourceSide,
    destination: &dyn DestinationSide,
    plan: &Plan,
    source_refs: &[Ref],
    dest_refs: &[Ref],
) -> Result<Negotiated, SideError> {
    let advertised: HashSet<ObjectId> = source_refs
        .iter()
        .flat_map(|r| std::iter::once(r.oid).chain(r.peeled))
        .collect();
    let dest_tips: HashSet<ObjectId> = dest_refs.iter().map(|r| r.oid).collect();
    // The old tips the divergence rule needs the source to vouch for.
    let must_check: Vec<ObjectId> = if opts.force {
        Vec::new()
    } else {
        plan.changes
            .iter()
            .filter(|c| c.action != Action::Create)
            .filter_map(|c| c.old)
            .filter(|old| !advertised.contains(old))
            .collect()
    };
    let mut wants: Vec<ObjectId> = plan
        .changes
        .iter()
        .filter_map(|c| c.new)
        .filter(|new| !dest_tips.contains(new))
        .collect();
    wants.sort();
    wants.dedup();
    let mut haves: Vec<ObjectId> = dest_tips.iter().copied().collect();
    haves.sort();
    let pack = PackOptions {
        thin: destination.accepts_thin_pack(),
        ofs_delta: destination.accepts_ofs_delta(),
    };
    // Learning what the source knows needs a want; when nothing is wanted
    // (only deletions), any advertised tip serves and no pack is fetched.
    let mut negotiated = match source_refs.first() {
        Some(first) if wants.is_empty() && !must_check.is_empty() => {
            source.negotiate(&[first.oid], &haves, &must_check, None)?
        }
        _ => {
            let relay = opts.mode == Mode::Mirror;
            source.negotiate(&wants, &haves, &must_check, relay.then_some(pack))?
        }
    };
    negotiated.known.extend(advertised);
    Ok(negotiated)
}

/// Decides each change: protected (it would drop destination-only history),
/// rejected (the destination cannot delete), or a command to push; and
/// whether an update rewrites history. Fills `report.refs`, one per change,
/// and returns the commands (none outside a mirror run).
fn decide(
    opts: &Options,
    source: &dyn SourceSide,
    destination: &dyn DestinationSide,
    plan: &Plan,
    known: &HashSet<ObjectId>,
    report: &mut Report,
) -> Vec<Command> {
    let relay = opts.mode == Mode::Mirror;
    let rewrites = rewrites(source, plan, known, opts.force);
    let mut commands = Vec::new();
    for change in &plan.changes {
        let protected = !opts.force
            && change.action != Action::Create
            && change.old.is_some_and(|old| !known.contains(&old));
        let (result, reason) = if protected {
            let tip = change.old.map(|o| o.to_string()).unwrap_or_default();
            let what = if change.action == Action::Delete {
                "deleting"
            } else {
                "overwriting"
            };
            (
                Outcome::Protected,
                Some(format!(
                    "the destination has commits the source does not (up to {}); {what} it would lose them; use --force to allow",
                    &tip[..tip.len().min(12)]
                )),
            )
        } else if change.action == Action::Delete && relay && !destination.allows_delete() {
            (
                Outcome::Rejected,
                Some(
                    "the destination does not allow deleting refs (no delete-refs capability)"
                        .to_owned(),
                ),
            )
        } else if relay {
            commands.push(Command {
                old: change.old.unwrap_or(ObjectId::ZERO),
                new: change.new.unwrap_or(ObjectId::ZERO),
                name: change.name.clone(),
            });
            // Failed until the destination's report says otherwise.
            (Outcome::Failed, None)
        } else {
            (Outcome::Planned, None)
        };
        report.refs.push(RefReport {
            name: change.name.clone(),
            old: change.old.map(|o| o.to_string()),
            new: change.new.map(|o| o.to_string()),
            action: if rewrites.contains(&change.name) {
                Action::Rewrite
            } else {
                change.action
            },
            result,
            reason,
        });
    }
    commands
}

/// The updates that drop history from the destination's ref: those whose
/// old tip the source does not have (only `--force` lets them through) and
/// those the source says are not fast-forwards. An update that looks
/// harmless by the divergence rule (the source's object store has the old
/// tip) may still be one: after a force-push on the source, until its gc.
fn rewrites(
    source: &dyn SourceSide,
    plan: &Plan,
    known: &HashSet<ObjectId>,
    force: bool,
) -> HashSet<String> {
    let updates: Vec<(&str, ObjectId, ObjectId)> = plan
        .changes
        .iter()
        // A tag is not a line of history: a moved tag stays an update.
        .filter(|c| c.action == Action::Update && !c.name.starts_with("refs/tags/"))
        .filter_map(|c| Some((c.name.as_str(), c.old?, c.new?)))
        .collect();
    let (unknown, probed): (Vec<_>, Vec<_>) = updates
        .into_iter()
        .partition(|(_, old, _)| !known.contains(old));
    let mut rewrites: HashSet<String> = HashSet::new();
    if force {
        // The source lacks the old tip, so the new history cannot hold it.
        rewrites.extend(unknown.iter().map(|(name, ..)| (*name).to_owned()));
    }
    let pairs: Vec<(ObjectId, ObjectId)> = probed.iter().map(|&(_, old, new)| (old, new)).collect();
    for ((name, ..), answer) in probed.iter().zip(source.fast_forwards(&pairs)) {
        match answer {
            Some(false) => {
                rewrites.insert((*name).to_owned());
            }
            Some(true) => {}
            None => output::debug(format_args!(
                "{name}: cannot tell whether the update rewrites history"
            )),
        }
    }
    rewrites
}

/// Streams the source's pack into the destination's push after the
/// commands, and returns the destination's report-status. A failure of the
/// source's stream is blamed on the source, not on the upload it cut; a
/// pack the destination could not unpack fails the run.
fn transfer(
    source: &dyn SourceSide,
    destination: &dyn DestinationSide,
    plan: &Plan,
    commands: &[Command],
    negotiated: Negotiated,
    report: &mut Report,
) -> Result<ReportStatus, SideError> {
    let sent: HashSet<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    let count = |a: Action| {
        let sent = |name: &String| sent.contains(name.as_str());
        plan.changes
            .iter()
            .filter(|c| c.action == a && sent(&c.name))
            .count()
    };
    output::info(format_args!(
        "relaying: {} to create, {} to update, {} to delete",
        count(Action::Create),
        count(Action::Update),
        count(Action::Delete)
    ));
    let needs_pack = commands.iter().any(|c| !c.new.is_zero());
    let mut counted = negotiated.pack.map(Counted::new);
    let mut empty = io::Cursor::new(push::EMPTY_PACK);
    let pack: Option<&mut (dyn Read + Send)> = match (needs_pack, counted.as_mut()) {
        (false, _) => None,
        (true, Some(stream)) => Some(stream),
        (true, None) => Some(&mut empty),
    };
    let pushed = destination.push(commands, pack);
    let source_failure = |counted: &mut Option<Counted>| {
        let failure = counted.as_mut().and_then(|c| c.failure.take());
        failure.map(|e| source.error(e.into()))
    };
    report.pack_bytes = counted.as_ref().map_or(0, |c| c.bytes);
    if let Some(c) = counted.as_mut() {
        c.progress.finish(c.bytes);
    }
    let status = match pushed {
        Ok(status) => status,
        Err(err) => return Err(source_failure(&mut counted).unwrap_or(err)),
    };
    report.bytes_sent = report.pack_bytes;
    let Err(reason) = &status.unpack else {
        return Ok(status);
    };
    // The destination may have refused bytes the source damaged: the rest
    // of the pack and its checksum tell.
    if let Some(c) = counted.as_mut() {
        c.read_rest();
    }
    if let Some(err) = source_failure(&mut counted) {
        return Err(err);
    }
    for r in report
        .refs
        .iter_mut()
        .filter(|r| r.result == Outcome::Failed)
    {
        r.reason = Some(format!(
            "the destination could not unpack the pack: {reason}"
        ));
    }
    Err(destination.error(Cause::Refused(format!(
        "the server could not store the pack (unpack {reason}); no ref was changed"
    ))))
}

/// Reads the destination's verdict on each pushed ref, then lists it again:
/// a ref it reported as updated must now hold the new value (trust, but
/// verify).
fn confirm(
    destination: &dyn DestinationSide,
    status: &ReportStatus,
    report: &mut Report,
) -> Result<(), SideError> {
    for r in report
        .refs
        .iter_mut()
        .filter(|r| r.result == Outcome::Failed)
    {
        match status.refs.iter().find(|s| s.name == r.name) {
            Some(s) => match &s.result {
                Ok(()) => r.result = Outcome::Ok,
                Err(reason) => {
                    r.result = Outcome::Rejected;
                    r.reason = Some(reason.clone());
                }
            },
            None => {
                r.reason = Some("the destination's report does not mention this ref".to_owned())
            }
        }
    }
    for (name, note) in destination.notes() {
        if let Some(r) = report.refs.iter_mut().find(|r| r.name == name) {
            r.reason.get_or_insert(note);
        }
    }
    let after = destination.list_refs()?;
    for r in report.refs.iter_mut().filter(|r| r.result == Outcome::Ok) {
        let now = after
            .iter()
            .find(|a| a.name == r.name)
            .map(|a| a.oid.to_string());
        if now != r.new {
            r.result = Outcome::Failed;
            r.reason = Some(format!(
                "the destination reported success but the ref is now {}",
                now.as_deref().unwrap_or("absent")
            ));
        }
    }
    Ok(())
}

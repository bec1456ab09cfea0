//! The relay: everything a run decides and moves once both sides are
//! listed, as named phases over [`SourceSide`] and [`DestinationSide`].
//!
//! [`relay`] opens nothing (that is `open` in the parent module), so every
//! decision here (protected, rejected, rewritten, confirmed) is unit-tested
//! below against in-memory sides rather than only against real servers.

use std::collections::HashSet;
use std::time::Instant;

use super::batch::{self, PushError, Pusher};
use super::error::{Cause, SideError};
use super::lfs::{self, LfsMode};
use super::sides::{DestinationSide, Negotiated, PackOptions, SourceSide};
use super::{Action, Mode, Options, Outcome, Plan, PushBudget, RefReport, Report, Totals};
use crate::output;
use crate::protocol::advertisement::Ref;
use crate::protocol::push::{Command, ReportStatus};
use crate::protocol::ObjectId;
use crate::transport::Location;

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
        pushes: 0,
        batched: false,
        duration_ms: 0,
        in_sync: true,
        lfs: None,
    };
    let relay = Relay {
        opts,
        source,
        destination,
        plan,
    };
    // A no-op costs the two listings and nothing more.
    if !relay.plan.changes.is_empty() {
        // LFS objects first, so that a host that checks them at push time
        // takes the push, and while no pack waits on an open response.
        let (wants, haves) = relay.wants_and_haves(dest_refs);
        report.lfs = lfs::relay_lfs(opts, source, &wants, &haves)?;
        let held_back =
            opts.lfs.mode == LfsMode::Always && report.lfs.as_ref().is_some_and(|l| !l.complete());
        let negotiated = relay.negotiate(source_refs, dest_refs)?;
        let commands = relay.decide(&negotiated.known, &mut report);
        if held_back {
            for r in report
                .refs
                .iter_mut()
                .filter(|r| r.result == Outcome::Failed)
            {
                r.reason = Some(
                    "held back: LFS objects it needs are not on the source's LFS server (--lfs always)"
                        .into(),
                );
            }
            if let Some(l) = report.lfs.as_mut() {
                l.held_back = true;
            }
        } else if opts.mode == Mode::Mirror && !commands.is_empty() {
            let status =
                relay.transfer(commands, negotiated, (source_refs, dest_refs), &mut report)?;
            relay.confirm(&status, &mut report)?;
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

/// One run's two sides and its plan, for the phases between listing and
/// following HEAD.
struct Relay<'a> {
    opts: &'a Options,
    source: &'a dyn SourceSide,
    destination: &'a dyn DestinationSide,
    plan: Plan,
}

impl Relay<'_> {
    /// The tips to send and the destination's tips: what a pack (or an
    /// LFS scan) is asked for.
    fn wants_and_haves(&self, dest_refs: &[Ref]) -> (Vec<ObjectId>, Vec<ObjectId>) {
        let dest_tips: HashSet<ObjectId> = dest_refs.iter().map(|r| r.oid).collect();
        let mut wants: Vec<ObjectId> = (self.plan.changes.iter())
            .filter_map(|c| c.new)
            .filter(|new| !dest_tips.contains(new))
            .collect();
        wants.sort();
        wants.dedup();
        let mut haves: Vec<ObjectId> = dest_tips.into_iter().collect();
        haves.sort();
        (wants, haves)
    }

    /// Asks the source which destination tips it knows, and (in a mirror run)
    /// for the pack of what the destination lacks. `known` comes back holding
    /// the source's advertised objects too: those are known without asking.
    fn negotiate(&self, source_refs: &[Ref], dest_refs: &[Ref]) -> Result<Negotiated, SideError> {
        let Relay {
            opts,
            source,
            destination,
            ref plan,
        } = *self;
        let advertised: HashSet<ObjectId> = source_refs
            .iter()
            .flat_map(|r| std::iter::once(r.oid).chain(r.peeled))
            .collect();
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
        // Into a destination that holds none of the refs, the history goes in
        // parts (pieces of one pack, or increments), which ask the source
        // for their own packs: there is nothing to learn here, and a pack
        // would go unread.
        let creates_only = plan.changes.iter().all(|c| c.action == Action::Create);
        if opts.mode == Mode::Mirror && creates_only && self.history_first(dest_refs) {
            return Ok(Negotiated {
                known: advertised,
                pack: None,
            });
        }
        let (wants, haves) = self.wants_and_haves(dest_refs);
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
    fn decide(&self, known: &HashSet<ObjectId>, report: &mut Report) -> Vec<Command> {
        let Relay {
            opts,
            destination,
            ref plan,
            ..
        } = *self;
        let relay = opts.mode == Mode::Mirror;
        let rewrites = self.rewrites(known);
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
    fn rewrites(&self, known: &HashSet<ObjectId>) -> HashSet<String> {
        let updates: Vec<(&str, ObjectId, ObjectId)> = self
            .plan
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
        if self.opts.force {
            // The source lacks the old tip, so the new history cannot hold it.
            rewrites.extend(unknown.iter().map(|(name, ..)| (*name).to_owned()));
        }
        let pairs: Vec<(ObjectId, ObjectId)> =
            probed.iter().map(|&(_, old, new)| (old, new)).collect();
        for ((name, ..), answer) in probed.iter().zip(self.source.fast_forwards(&pairs)) {
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

    /// Moves the pack and the ref updates to the destination and returns its
    /// report on each ref: one push when it fits the destination's limits,
    /// otherwise increments and chunks (`batch`). A failure of the source's
    /// stream is blamed on the source, not on the upload it cut; a pack the
    /// destination could not unpack fails the run.
    fn transfer(
        &self,
        commands: Vec<Command>,
        negotiated: Negotiated,
        (source_refs, dest_refs): (&[Ref], &[Ref]),
        report: &mut Report,
    ) -> Result<ReportStatus, SideError> {
        let Relay {
            opts,
            source,
            destination,
            ref plan,
        } = *self;
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
        let commands = head_first(commands, source_refs);
        let limited = destination.has_push_limits();
        let (budget, max_refs) = match limited {
            true => (self.budget(), opts.push.max_ref_updates),
            false => (None, usize::MAX),
        };
        let key = opts.destination.location.to_string();
        let mut pusher = Pusher::new(source, destination, &key, budget, max_refs);
        let history_first = self.history_first(dest_refs);
        let result = if pusher.too_many(&commands) || history_first {
            drop(negotiated.pack);
            pusher.in_parts(&commands, dest_refs, source_refs, history_first)
        } else {
            match pusher.push(&commands, negotiated.pack) {
                // A chunked body refused (411): again, with the pack
                // fetched anew and sent with its length.
                Err(PushError::Resend) => pusher.in_parts(&commands, dest_refs, source_refs, false),
                // Too large (or cut twice at one offset): in increments.
                Err(failure) if limited => match pusher.too_large(failure) {
                    Ok(_) => pusher.in_parts(&commands, dest_refs, source_refs, true),
                    Err(e) => Err(e),
                },
                other => other,
            }
        };
        report.pack_bytes = pusher.bytes;
        report.pushes = pusher.pushes;
        report.batched = pusher.batched;
        let status = match result {
            Ok(status) => status,
            Err(PushError::Side(e) | PushError::Cut { error: e, .. }) => return Err(e),
            Err(PushError::Resend) => {
                return Err(destination.error(Cause::Refused(
                    "the server refused the push's chunked body twice (HTTP 411)".into(),
                )))
            }
            Err(PushError::Unpack { reason, error }) => {
                for r in report
                    .refs
                    .iter_mut()
                    .filter(|r| r.result == Outcome::Failed)
                {
                    r.reason = Some(format!(
                        "the destination could not unpack the pack: {reason}"
                    ));
                }
                return Err(error);
            }
            Err(PushError::TooLarge { sent, detail, .. }) => {
                return Err(destination.error(Cause::Refused(format!(
                    "the server refused a push of {} as too large{}; set --dest-max-push-bytes below that to push in batches",
                    crate::output::human_bytes(sent),
                    if detail.is_empty() { String::new() } else { format!(" ({detail})") }
                ))))
            }
        };
        report.bytes_sent = report.pack_bytes;
        Ok(status)
    }

    /// Whether the history goes in parts from the start: into a
    /// destination that holds nothing yet (or only checkpoints of a run cut
    /// short) under a budget. A first mirror is the run that outgrows a
    /// push, and a trial push would cost a budget's worth of upload.
    fn history_first(&self, dest_refs: &[Ref]) -> bool {
        let empty = dest_refs
            .iter()
            .all(|r| r.name == "HEAD" || r.name.starts_with(batch::CHECKPOINT_PREFIX));
        let key = self.opts.destination.location.to_string();
        empty
            && self.destination.has_push_limits()
            && batch::budget_for(&key, self.budget()).is_some()
    }

    /// The most pack bytes one push may carry: as set, or the known host's
    /// default.
    fn budget(&self) -> Option<u64> {
        match self.opts.push.max_bytes {
            PushBudget::Unlimited => None,
            PushBudget::Bytes(n) => Some(n),
            PushBudget::HostDefault => crate::hosts::max_push_bytes(self.destination_host()),
        }
    }

    /// The destination's host name, for what `crate::hosts` knows of it
    /// (empty for a local path).
    fn destination_host(&self) -> &str {
        match &self.opts.destination.location {
            Location::Http { url, .. } => url.host_str().unwrap_or_default(),
            Location::Ssh { host, .. } => host,
            Location::Local(_) => "",
        }
    }

    /// Reads the destination's verdict on each pushed ref, then lists it again:
    /// a ref it reported as updated must now hold the new value (trust, but
    /// verify).
    fn confirm(&self, status: &ReportStatus, report: &mut Report) -> Result<(), SideError> {
        let destination = self.destination;
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
                        let host = self.destination_host();
                        r.reason = Some(match crate::hosts::rejection_hint(host, reason) {
                            Some(hint) => format!("{reason} (hint: {hint})"),
                            None => reason.clone(),
                        });
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
}

/// `commands` with the source HEAD's branch first: the first branch pushed
/// into an empty repository becomes its default branch on GitHub and
/// others, and a batched or chunked push creates it before the rest.
fn head_first(mut commands: Vec<Command>, source_refs: &[Ref]) -> Vec<Command> {
    let head = source_refs
        .iter()
        .find(|r| r.name == "HEAD")
        .and_then(|r| r.symref_target.as_deref());
    if let Some(at) = head.and_then(|h| commands.iter().position(|c| c.name == h)) {
        let first = commands.remove(at);
        commands.insert(0, first);
    }
    commands
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::io::{self, Read};
    use std::time::Duration;

    use super::*;
    use crate::mirror::error::{Blame, Side};
    use crate::mirror::{Endpoint, RefSelection};
    use crate::protocol::push::{self, RefStatus};
    use crate::transport::NetworkOptions;

    fn id(n: u8) -> ObjectId {
        ObjectId::from([n; 20])
    }

    fn r(name: &str, oid: ObjectId) -> Ref {
        let (name, peeled, symref_target) = (name.to_owned(), None, None);
        Ref {
            name,
            oid,
            peeled,
            symref_target,
        }
    }

    fn refs(list: &[(&str, u8)]) -> Vec<Ref> {
        list.iter().map(|&(name, n)| r(name, id(n))).collect()
    }

    /// A source that knows `known` besides what it advertises, answers
    /// history probes from `ancestry`, and sends a pack when one is wanted
    /// (the empty pack, or bytes that do not match their checksum).
    #[derive(Default)]
    struct FakeSource {
        known: HashSet<ObjectId>,
        ancestry: HashMap<(ObjectId, ObjectId), bool>,
        damaged: bool,
        negotiations: Cell<usize>,
        probed: Cell<usize>,
    }

    fn source(known: &[u8]) -> FakeSource {
        let known = known.iter().map(|&n| id(n)).collect();
        FakeSource {
            known,
            ..FakeSource::default()
        }
    }

    impl SourceSide for FakeSource {
        fn protocol(&self) -> String {
            "fake".to_owned()
        }
        fn negotiate(
            &self,
            wants: &[ObjectId],
            haves: &[ObjectId],
            _: &[ObjectId],
            pack: Option<PackOptions>,
        ) -> Result<Negotiated, SideError> {
            self.negotiations.set(self.negotiations.get() + 1);
            let bytes = match self.damaged {
                true => b"PACK and not the checksum of what came before".to_vec(),
                false => push::EMPTY_PACK.to_vec(),
            };
            let stream = Box::new(io::Cursor::new(bytes)) as Box<dyn Read + Send>;
            Ok(Negotiated {
                known: haves
                    .iter()
                    .filter(|h| self.known.contains(h))
                    .copied()
                    .collect(),
                pack: pack.filter(|_| !wants.is_empty()).map(|_| stream),
            })
        }
        fn fast_forwards(&self, updates: &[(ObjectId, ObjectId)]) -> Vec<Option<bool>> {
            self.probed.set(self.probed.get() + updates.len());
            updates
                .iter()
                .map(|u| self.ancestry.get(u).copied())
                .collect()
        }
        fn error(&self, cause: Cause) -> SideError {
            Blame::new(Side::Source, "src", Duration::ZERO).error(cause)
        }
    }

    /// A destination holding `refs` that answers a push with `verdicts`
    /// (ok where none) and `unpack`; `concurrent` lands between its report
    /// and the listing that confirms it, as another client's push would.
    #[derive(Default)]
    struct FakeDestination {
        refs: RefCell<Vec<Ref>>,
        no_delete_refs: bool,
        verdicts: HashMap<&'static str, &'static str>,
        unpack: Option<&'static str>,
        concurrent: Option<Ref>,
        pushed: RefCell<Vec<Command>>,
        pack: RefCell<Option<Vec<u8>>>,
        head: RefCell<Option<String>>,
    }

    fn destination(list: &[(&str, u8)]) -> FakeDestination {
        let refs = RefCell::new(refs(list));
        FakeDestination {
            refs,
            ..FakeDestination::default()
        }
    }

    impl DestinationSide for FakeDestination {
        fn list_refs(&self) -> Result<Vec<Ref>, SideError> {
            Ok(self.refs.borrow().clone())
        }
        fn accepts_thin_pack(&self) -> bool {
            true
        }
        fn accepts_ofs_delta(&self) -> bool {
            true
        }
        fn allows_delete(&self) -> bool {
            !self.no_delete_refs
        }
        fn push(
            &self,
            commands: &[Command],
            pack: Option<&mut (dyn Read + Send)>,
        ) -> Result<ReportStatus, SideError> {
            if let Some(pack) = pack {
                let mut bytes = Vec::new();
                let read = pack.read_to_end(&mut bytes);
                read.map_err(|e| self.error(Cause::Refused(e.to_string())))?;
                *self.pack.borrow_mut() = Some(bytes);
            }
            self.pushed.borrow_mut().extend_from_slice(commands);
            let unpack = self.unpack.map_or(Ok(()), |e| Err(e.to_owned()));
            let mut refs = self.refs.borrow_mut();
            let mut status = ReportStatus {
                unpack,
                refs: Vec::new(),
            };
            for c in commands {
                let verdict = self.verdicts.get(c.name.as_str());
                let result = verdict.map_or(Ok(()), |v| Err((*v).to_owned()));
                if result.is_ok() && status.unpack.is_ok() {
                    refs.retain(|r| r.name != c.name);
                    refs.extend((!c.new.is_zero()).then(|| r(&c.name, c.new)));
                }
                status.refs.push(RefStatus {
                    name: c.name.clone(),
                    result,
                });
            }
            if let Some(moved) = &self.concurrent {
                refs.retain(|r| r.name != moved.name);
                refs.push(moved.clone());
            }
            Ok(status)
        }
        fn adopt_head(&self, target: &str) -> Result<(), SideError> {
            *self.head.borrow_mut() = Some(target.to_owned());
            Ok(())
        }
        fn error(&self, cause: Cause) -> SideError {
            Blame::new(Side::Destination, "dst", Duration::ZERO).error(cause)
        }
    }

    fn options(mode: Mode, force: bool, prune: bool) -> Options {
        let endpoint = |url: &str| Endpoint {
            location: Location::parse(url).unwrap(),
            credentials: None,
            network: NetworkOptions::default(),
        };
        let selection = RefSelection::new(&[], &[]).unwrap();
        let (source, destination) = (
            endpoint("https://a.example/r"),
            endpoint("https://b.example/r"),
        );
        Options {
            source,
            destination,
            selection,
            prune,
            force,
            mode,
            push: Default::default(),
            lfs: Default::default(),
        }
    }

    fn run(
        opts: &Options,
        source: &FakeSource,
        src: &[(&str, u8)],
        destination: &FakeDestination,
    ) -> Result<Report, SideError> {
        let dst = destination.refs.borrow().clone();
        relay(opts, source, destination, &refs(src), &dst, Instant::now())
    }

    fn mirror(src: &[(&str, u8)], source: &FakeSource, dst: &FakeDestination) -> Report {
        run(&options(Mode::Mirror, false, true), source, src, dst).unwrap()
    }

    /// `(name, result, action)` of each ref in the report.
    fn outcomes(report: &Report) -> Vec<(&str, Outcome, Action)> {
        let refs = report.refs.iter();
        refs.map(|r| (r.name.as_str(), r.result, r.action))
            .collect()
    }

    #[test]
    fn a_no_op_negotiates_nothing_and_follows_head() {
        let (src, dst) = (source(&[]), destination(&[("refs/heads/main", 1)]));
        let mut listed = refs(&[("HEAD", 1), ("refs/heads/main", 1)]);
        listed[0].symref_target = Some("refs/heads/main".to_owned());
        let dst_refs = dst.refs.borrow().clone();
        let opts = options(Mode::Mirror, false, true);
        let report = relay(&opts, &src, &dst, &listed, &dst_refs, Instant::now()).unwrap();
        assert!(report.in_sync && report.refs.is_empty());
        assert_eq!(src.negotiations.get(), 0);
        assert_eq!(dst.head.borrow().as_deref(), Some("refs/heads/main"));
    }

    #[test]
    fn an_unknown_destination_tip_is_protected_unless_forced() {
        let main = [("refs/heads/main", 3)];
        let dst = destination(&[("refs/heads/main", 2)]);
        let report = mirror(&main, &source(&[]), &dst);
        let expected = ("refs/heads/main", Outcome::Protected, Action::Update);
        assert_eq!(outcomes(&report), [expected]);
        let reason = report.refs[0].reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with(
            "the destination has commits the source does not (up to 020202020202); overwriting"
        ));
        assert!(dst.pushed.borrow().is_empty());
        // Forced, the update goes through, and drops the old tip's history.
        let forced = options(Mode::Mirror, true, true);
        let report = run(&forced, &source(&[]), &main, &dst).unwrap();
        let expected = ("refs/heads/main", Outcome::Ok, Action::Rewrite);
        assert_eq!(outcomes(&report), [expected]);
    }

    #[test]
    fn a_delete_is_pushed_without_a_pack_or_rejected_without_delete_refs() {
        let (src, main) = (source(&[]), [("refs/heads/main", 1)]);
        let mut dst = destination(&[("refs/heads/main", 1), ("refs/heads/old", 1)]);
        dst.no_delete_refs = true;
        assert_eq!(mirror(&main, &src, &dst).refs[0].result, Outcome::Rejected);
        assert!(dst.pushed.borrow().is_empty());
        // Without --prune the ref is kept and nothing is asked.
        let report = run(&options(Mode::Mirror, false, false), &src, &main, &dst).unwrap();
        assert_eq!((report.refs.len(), report.totals.kept), (0, 1));
        dst.no_delete_refs = false;
        let expected = ("refs/heads/old", Outcome::Ok, Action::Delete);
        assert_eq!(outcomes(&mirror(&main, &src, &dst)), [expected]);
        assert_eq!(dst.pushed.borrow()[0].new, ObjectId::ZERO);
        assert!(dst.pack.borrow().is_none());
    }

    #[test]
    fn a_rename_moves_no_objects() {
        let dst = destination(&[("refs/heads/old", 1)]);
        let report = mirror(&[("refs/heads/new", 1)], &source(&[]), &dst);
        let created = ("refs/heads/new", Outcome::Ok, Action::Create);
        let deleted = ("refs/heads/old", Outcome::Ok, Action::Delete);
        assert_eq!(outcomes(&report), [created, deleted]);
        // The destination has the object: it gets the empty pack, not ours.
        assert_eq!(dst.pack.borrow().as_deref(), Some(push::EMPTY_PACK));
        assert_eq!(report.pack_bytes, 0);
    }

    #[test]
    fn the_destinations_verdicts_and_a_concurrent_push_are_reported() {
        let src = [
            ("refs/heads/a", 2),
            ("refs/heads/b", 2),
            ("refs/heads/c", 2),
        ];
        let mut dst = destination(&[("refs/heads/a", 1), ("refs/heads/b", 1)]);
        dst.verdicts.insert("refs/heads/a", "non-fast-forward");
        // c is reported created, but another push moves it at once.
        dst.concurrent = Some(r("refs/heads/c", id(9)));
        let report = mirror(&src, &source(&[1]), &dst);
        let results: Vec<_> = report.refs.iter().map(|r| r.result).collect();
        assert_eq!(results, [Outcome::Rejected, Outcome::Ok, Outcome::Failed]);
        assert_eq!(report.refs[0].reason.as_deref(), Some("non-fast-forward"));
        let moved = format!(
            "the destination reported success but the ref is now {}",
            id(9)
        );
        assert_eq!(report.refs[2].reason, Some(moved));
        assert_eq!(
            report.pack_bytes,
            push::EMPTY_PACK.len() as u64,
            "the source's pack"
        );
        assert!(!report.in_sync);
    }

    #[test]
    fn an_unpack_error_fails_the_run_on_the_destination() {
        let mut dst = destination(&[]);
        dst.unpack = Some("index-pack failed");
        let opts = options(Mode::Mirror, false, true);
        let err = run(&opts, &source(&[]), &[("refs/heads/main", 1)], &dst).unwrap_err();
        assert_eq!(err.side, Side::Destination);
        assert!(err.to_string().ends_with(
            "the server could not store the pack (unpack index-pack failed); no ref was changed"
        ));
    }

    #[test]
    fn a_damaged_pack_is_blamed_on_the_source() {
        let src = FakeSource {
            damaged: true,
            ..FakeSource::default()
        };
        let opts = options(Mode::Mirror, false, true);
        let err = run(&opts, &src, &[("refs/heads/main", 1)], &destination(&[])).unwrap_err();
        assert_eq!(err.side, Side::Source);
        assert!(err.to_string().contains("the pack is damaged"));
    }

    #[test]
    fn include_exclude_and_dry_run_shape_the_plan() {
        let mut opts = options(Mode::DryRun, false, true);
        let (include, exclude) = (["refs/heads/*".to_owned()], ["refs/heads/wip*".to_owned()]);
        opts.selection = RefSelection::new(&include, &exclude).unwrap();
        let src = [
            ("refs/heads/main", 1),
            ("refs/heads/wip", 1),
            ("refs/tags/v1", 1),
        ];
        let dst = destination(&[]);
        let report = run(&opts, &source(&[]), &src, &dst).unwrap();
        let expected = ("refs/heads/main", Outcome::Planned, Action::Create);
        assert_eq!(outcomes(&report), [expected]);
        assert!(dst.pushed.borrow().is_empty() && dst.head.borrow().is_none());
    }

    #[test]
    fn only_updates_of_branches_the_source_does_not_extend_are_rewrites() {
        let mut src = source(&[1, 2, 3, 4]);
        src.ancestry.insert((id(1), id(5)), false);
        src.ancestry.insert((id(2), id(6)), true);
        let old = [
            ("refs/heads/a", 1),
            ("refs/heads/b", 2),
            ("refs/heads/c", 3),
            ("refs/tags/t", 4),
        ];
        let new = [
            ("refs/heads/a", 5),
            ("refs/heads/b", 6),
            ("refs/heads/c", 7),
            ("refs/tags/t", 8),
        ];
        let status = options(Mode::Status, false, true);
        let report = run(&status, &src, &new, &destination(&old));
        let actions: Vec<_> = report.unwrap().refs.iter().map(|r| r.action).collect();
        // c: the source cannot tell; t: a moved tag is not a line of history.
        let expected = [
            Action::Rewrite,
            Action::Update,
            Action::Update,
            Action::Update,
        ];
        assert_eq!(actions, expected);
        assert_eq!(src.probed.get(), 3);
    }

    #[test]
    fn the_source_heads_branch_goes_first() {
        let command = |name: &str| Command {
            old: ObjectId::ZERO,
            new: id(1),
            name: name.to_owned(),
        };
        let commands = vec![
            command("refs/heads/a"),
            command("refs/heads/main"),
            command("refs/tags/v1"),
        ];
        let mut head = r("HEAD", id(1));
        head.symref_target = Some("refs/heads/main".to_owned());
        let names = |cs: Vec<Command>| cs.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(
            names(head_first(commands.clone(), &[head])),
            ["refs/heads/main", "refs/heads/a", "refs/tags/v1"]
        );
        // Without a HEAD, the order stays.
        assert_eq!(
            names(head_first(commands, &[])),
            ["refs/heads/a", "refs/heads/main", "refs/tags/v1"]
        );
    }
}

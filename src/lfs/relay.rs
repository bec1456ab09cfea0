//! Moving the objects a destination lacks, from the source, several at
//! once.
//!
//! For each chunk of up to [`BATCH_SIZE`] distinct objects: the
//! destination's `upload` batch says which it lacks; the source's
//! `download` batch gives actions for those; then `jobs` threads each take
//! one object at a time and stream it from the source's download, through
//! a [`CheckedReader`], into the destination's upload, and call `verify`
//! when offered. The object passes from one connection to the other
//! through the HTTP client's buffers only: memory per object in flight is
//! a few buffers, whatever its size.
//!
//! What fails for one object is reported for that object and the others go
//! on: an object the source does not have is [`Missing`] (with the commits
//! and paths that need it, as the engine passed them), anything else is
//! [`Failed`], blamed on the side that failed. An object that does not match
//! its pointer fails its check before its last byte reaches the
//! destination, so the destination never stores it. A failure of a whole
//! batch request (credentials, no LFS server) is the run's error.
//!
//! The logic sits on two small traits, [`ObjectSource`] and
//! [`ObjectSink`], implemented by an LFS server ([`LfsClient`]) and by a
//! local store ([`LfsStore`]), so backups and restores take the same path,
//! and the decisions are unit-tested against in-memory sides.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::batch::Operation;
use super::checked::{CheckedReader, Mismatch};
use super::client::{Next, BATCH_SIZE};
use super::{Action, LfsCause, LfsClient, LfsError, LfsStore, Pointer, Request};
use crate::mirror::Side;
use crate::protocol::ObjectId;

/// Objects moved at once unless the engine says otherwise.
pub(crate) const DEFAULT_JOBS: usize = 4;

/// An action that expires within this is asked for again before use.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Tries per object when a failure is transient.
const ATTEMPTS: usize = 2;

/// Progress is reported after each object and after each of this many
/// bytes of one.
const PROGRESS_BYTES: u64 = 1 << 20;

/// The longest wait before another try, whatever a server asks.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Where in the history a pointer was found: the engine's to fill, so that
/// a missing object can be reported with what it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    /// A commit whose tree holds the pointer.
    pub(crate) commit: ObjectId,
    /// The pointer's path in that tree.
    pub(crate) path: String,
}

/// An object the source does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Missing {
    /// The object.
    pub(crate) pointer: Pointer,
    /// Everywhere it was needed.
    pub(crate) needs: Vec<Need>,
    /// What the source said.
    pub(crate) reason: String,
}

/// An object that could not be moved for another reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failed {
    /// The object.
    pub(crate) pointer: Pointer,
    /// Everywhere it was needed.
    pub(crate) needs: Vec<Need>,
    /// Which side failed (a corrupt object is the source's).
    pub(crate) side: Side,
    /// What happened, printable.
    pub(crate) reason: String,
    /// Whether the content did not match the pointer.
    pub(crate) corrupt: bool,
}

/// What a relay of LFS objects did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LfsReport {
    /// Distinct objects the pointers named (empty files aside).
    pub(crate) objects: u64,
    /// Objects the destination already had.
    pub(crate) present: u64,
    /// Objects moved.
    pub(crate) moved: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Objects the source lacks.
    pub(crate) missing: Vec<Missing>,
    /// Objects that failed otherwise.
    pub(crate) failed: Vec<Failed>,
}

impl LfsReport {
    /// Whether the destination has every object now.
    #[cfg(test)]
    pub(crate) fn complete(&self) -> bool {
        self.missing.is_empty() && self.failed.is_empty()
    }
}

/// Progress of a relay, after each object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LfsProgress {
    /// Distinct objects dealt with so far (present, moved, missing or
    /// failed).
    pub(crate) done: u64,
    /// Distinct objects in all.
    pub(crate) total: u64,
    /// Bytes of the objects moved so far.
    pub(crate) bytes: u64,
    /// Bytes streamed so far, objects still in flight included (and any
    /// that failed): what a transfer rate is measured on.
    pub(crate) streamed: u64,
}

/// The objects of `pointers` that `dest` lacks, without moving anything:
/// for `status` and `--dry-run`.
pub(crate) fn lacking<D: ObjectSink>(
    dest: &D,
    pointers: &[Pointer],
) -> Result<Vec<Pointer>, LfsError> {
    let mut unique: Vec<Pointer> = pointers.iter().copied().filter(|p| p.size > 0).collect();
    unique.sort();
    unique.dedup();
    let mut out = Vec::new();
    for chunk in unique.chunks(BATCH_SIZE) {
        for (pointer, wanted) in chunk.iter().zip(dest.wanted(chunk)?) {
            if !matches!(wanted, Wanted::Have) {
                out.push(*pointer);
            }
        }
    }
    Ok(out)
}

/// Where objects come from.
pub(crate) trait ObjectSource: Sync {
    /// What [`ObjectSource::open`] needs for one object.
    type Handle: Send + Sync;

    /// Where each of `pointers` (at most [`BATCH_SIZE`]) can be read, one
    /// answer per pointer, in order.
    fn locate(&self, pointers: &[Pointer]) -> Result<Vec<Located<Self::Handle>>, LfsError>;

    /// Opens one located object. An object found gone is an error for
    /// which [`is_missing`] holds.
    fn open(
        &self,
        pointer: &Pointer,
        handle: &Self::Handle,
    ) -> Result<Box<dyn Read + Send + '_>, LfsError>;
}

/// What a source said about one object.
pub(crate) enum Located<H> {
    /// It can be read with this.
    Found(H),
    /// It does not have it.
    Missing(String),
    /// It will not give it, for another reason.
    Failed(String),
}

/// Where objects go.
pub(crate) trait ObjectSink: Sync {
    /// What [`ObjectSink::put`] needs for one object.
    type Handle: Send + Sync;

    /// Which of `pointers` (at most [`BATCH_SIZE`]) it lacks, one answer
    /// per pointer, in order.
    fn wanted(&self, pointers: &[Pointer]) -> Result<Vec<Wanted<Self::Handle>>, LfsError>;

    /// Stores one object read from `body`, which is exactly its content
    /// or fails before its end, then confirms it where that is a step.
    fn put(
        &self,
        pointer: &Pointer,
        handle: &Self::Handle,
        body: &mut (dyn Read + Send),
    ) -> Result<(), LfsError>;
}

/// What a destination said about one object.
pub(crate) enum Wanted<H> {
    /// It has it.
    Have,
    /// It lacks it; store it with this.
    Need(H),
    /// It will not take it.
    Refused(String),
}

/// Whether `err` says the object is not there (rather than that getting
/// it failed).
pub(crate) fn is_missing(err: &LfsError) -> bool {
    match &err.cause {
        LfsCause::NotFound { .. } => true,
        LfsCause::Status { status: 410, .. } => true,
        LfsCause::Io(e) => e.kind() == io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Relays the objects of `pointers` from `source` (an LFS server, or a
/// repository's `lfs/objects`) to `dest` (either too): only those `dest`
/// lacks, `jobs` at once (at least one).
pub(crate) fn relay<S: ObjectSource, D: ObjectSink>(
    source: &S,
    dest: &D,
    pointers: &[(Pointer, Need)],
    jobs: usize,
    progress: &(dyn Fn(&LfsProgress) + Sync),
) -> Result<LfsReport, LfsError> {
    // Distinct objects in the order first met, each with all its needs.
    // The empty file's pointer is the empty blob, so a pointer of size 0
    // is an oddity with nothing to move.
    let mut order = Vec::new();
    let mut needs: HashMap<Pointer, Vec<Need>> = HashMap::new();
    for (pointer, need) in pointers.iter().filter(|(p, _)| p.size > 0) {
        needs
            .entry(*pointer)
            .or_insert_with(|| {
                order.push(*pointer);
                Vec::new()
            })
            .push(need.clone());
    }
    let state = State {
        report: Mutex::new(LfsReport {
            objects: order.len() as u64,
            ..LfsReport::default()
        }),
        needs,
        progress,
        streamed: AtomicU64::new(0),
    };
    for chunk in order.chunks(BATCH_SIZE) {
        let mut lacking = Vec::new();
        let mut handles = Vec::new();
        for (pointer, wanted) in chunk.iter().zip(dest.wanted(chunk)?) {
            match wanted {
                Wanted::Have => state.present(),
                Wanted::Need(handle) => {
                    lacking.push(*pointer);
                    handles.push(handle);
                }
                Wanted::Refused(reason) => state.failed(pointer, Side::Destination, reason, false),
            }
        }
        if lacking.is_empty() {
            continue;
        }
        let mut tasks = Vec::new();
        for ((pointer, located), sink) in lacking.iter().zip(source.locate(&lacking)?).zip(handles)
        {
            match located {
                Located::Found(handle) => tasks.push((*pointer, handle, sink)),
                Located::Missing(reason) => state.missing(pointer, reason),
                Located::Failed(reason) => state.failed(pointer, Side::Source, reason, false),
            }
        }
        let next = AtomicUsize::new(0);
        let workers = jobs.max(1).min(tasks.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((pointer, from, to)) = tasks.get(i) else {
                        break;
                    };
                    match move_with_retry(&state, source, dest, pointer, from, to) {
                        Ok(()) => state.moved(pointer),
                        Err(Outcome::Missing(reason)) => state.missing(pointer, reason),
                        Err(Outcome::Failed {
                            side,
                            reason,
                            corrupt,
                        }) => state.failed(pointer, side, reason, corrupt),
                    }
                });
            }
        });
    }
    Ok(state.report.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// The report being filled by the workers.
struct State<'a> {
    report: Mutex<LfsReport>,
    needs: HashMap<Pointer, Vec<Need>>,
    progress: &'a (dyn Fn(&LfsProgress) + Sync),
    streamed: AtomicU64,
}

impl State<'_> {
    fn update(&self, f: impl FnOnce(&mut LfsReport)) {
        let snapshot = {
            let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut report);
            LfsProgress {
                done: report.present
                    + report.moved
                    + report.missing.len() as u64
                    + report.failed.len() as u64,
                total: report.objects,
                bytes: report.bytes,
                streamed: self.streamed.load(Ordering::Relaxed),
            }
        };
        (self.progress)(&snapshot);
    }

    fn needs_of(&self, pointer: &Pointer) -> Vec<Need> {
        self.needs.get(pointer).cloned().unwrap_or_default()
    }

    fn streamed(&self, n: u64) {
        self.streamed.fetch_add(n, Ordering::Relaxed);
    }

    fn present(&self) {
        self.update(|r| r.present += 1);
    }

    fn moved(&self, pointer: &Pointer) {
        self.update(|r| {
            r.moved += 1;
            r.bytes += pointer.size;
        });
    }

    fn missing(&self, pointer: &Pointer, reason: String) {
        let needs = self.needs_of(pointer);
        self.update(|r| {
            r.missing.push(Missing {
                pointer: *pointer,
                needs,
                reason,
            })
        });
    }

    fn failed(&self, pointer: &Pointer, side: Side, reason: String, corrupt: bool) {
        let needs = self.needs_of(pointer);
        self.update(|r| {
            r.failed.push(Failed {
                pointer: *pointer,
                needs,
                side,
                reason,
                corrupt,
            })
        });
    }
}

/// How moving one object ended, when it did not succeed.
enum Outcome {
    Missing(String),
    Failed {
        side: Side,
        reason: String,
        corrupt: bool,
    },
}

/// A failure of one try, with whether another may succeed.
struct Attempt {
    outcome: Outcome,
    retry: Option<Duration>,
}

fn move_with_retry<S: ObjectSource, D: ObjectSink>(
    state: &State<'_>,
    source: &S,
    dest: &D,
    pointer: &Pointer,
    from: &S::Handle,
    to: &D::Handle,
) -> Result<(), Outcome> {
    let mut tries = 0;
    loop {
        tries += 1;
        match move_one(state, source, dest, pointer, from, to) {
            Ok(()) => return Ok(()),
            Err(Attempt {
                retry: Some(wait), ..
            }) if tries < ATTEMPTS => std::thread::sleep(wait.min(MAX_RETRY_WAIT)),
            Err(attempt) => return Err(attempt.outcome),
        }
    }
}

/// One try at streaming one object from `source` into `dest`.
fn move_one<S: ObjectSource, D: ObjectSink>(
    state: &State<'_>,
    source: &S,
    dest: &D,
    pointer: &Pointer,
    from: &S::Handle,
    to: &D::Handle,
) -> Result<(), Attempt> {
    let reader = source
        .open(pointer, from)
        .map_err(|e| source_failure(pointer, e))?;
    let mut body = Tracked {
        inner: CheckedReader::new(reader, *pointer),
        failure: None,
        state,
        unreported: 0,
    };
    let stored = dest.put(pointer, to, &mut body);
    if let Some(failure) = body.failure.take() {
        // The stream failed under the destination's request: the source's
        // doing, or the object's.
        return Err(match Mismatch::from_io(&failure) {
            Some(mismatch) => Attempt {
                outcome: Outcome::Failed {
                    side: Side::Source,
                    reason: format!("the source served a corrupt object: {mismatch}"),
                    corrupt: true,
                },
                retry: None,
            },
            None => Attempt {
                retry: crate::transport::is_transient_io(&failure)
                    .then_some(Duration::from_secs(1)),
                outcome: Outcome::Failed {
                    side: Side::Source,
                    reason: format!("reading the object from the source failed: {failure}"),
                    corrupt: false,
                },
            },
        });
    }
    if let Err(e) = stored {
        return Err(Attempt {
            retry: retry_of(&e),
            outcome: Outcome::Failed {
                side: e.side,
                reason: with_object(e, pointer).to_string(),
                corrupt: false,
            },
        });
    }
    if !body.inner.is_verified() {
        return Err(Attempt {
            outcome: Outcome::Failed {
                side: Side::Destination,
                reason: "the destination took the object without reading it to its end".to_owned(),
                corrupt: false,
            },
            retry: None,
        });
    }
    Ok(())
}

fn source_failure(pointer: &Pointer, e: LfsError) -> Attempt {
    if is_missing(&e) {
        return Attempt {
            outcome: Outcome::Missing(with_object(e, pointer).to_string()),
            retry: None,
        };
    }
    Attempt {
        retry: retry_of(&e),
        outcome: Outcome::Failed {
            side: e.side,
            corrupt: e.mismatch().is_some(),
            reason: with_object(e, pointer).to_string(),
        },
    }
}

fn retry_of(e: &LfsError) -> Option<Duration> {
    e.is_transient()
        .then(|| e.retry_after().unwrap_or(Duration::from_secs(1)))
}

fn with_object(mut e: LfsError, pointer: &Pointer) -> LfsError {
    e.object.get_or_insert(pointer.oid);
    e
}

/// The body handed to the destination: keeps the first failure of the
/// checked source, so that it is not mistaken for the destination's, and
/// counts what passes for the progress display.
struct Tracked<'a, R> {
    inner: R,
    failure: Option<io::Error>,
    state: &'a State<'a>,
    /// Bytes passed since progress was last reported.
    unreported: u64,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.state.streamed(n as u64);
                self.unreported += n as u64;
                if self.unreported >= PROGRESS_BYTES {
                    self.unreported = 0;
                    self.state.update(|_| {});
                }
                Ok(n)
            }
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let copy = match Mismatch::from_io(&e) {
                    Some(mismatch) => io::Error::from(mismatch),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                self.failure.get_or_insert(e);
                Err(copy)
            }
            other => other,
        }
    }
}

// An LFS server as a source: a download batch, then GETs.
impl ObjectSource for LfsClient {
    type Handle = (Action, Instant);

    fn locate(&self, pointers: &[Pointer]) -> Result<Vec<Located<Self::Handle>>, LfsError> {
        let answers = match self.batch(Operation::Download, pointers) {
            // Some servers (giftless) answer a download of nothing they have
            // with a 404 for the whole batch, in an LFS error document: each
            // object is missing. A 404 without one is no LFS server at all.
            Err(LfsError {
                cause:
                    LfsCause::NotFound {
                        detail,
                        lfs_answer: true,
                    },
                ..
            }) => {
                let reason = format!("the source's LFS server does not have it (404: {detail})");
                return Ok(pointers
                    .iter()
                    .map(|_| Located::Missing(reason.clone()))
                    .collect());
            }
            other => other?,
        };
        Ok(answers
            .into_iter()
            .map(|answer| match answer.next {
                Next::Download(action) => Located::Found((action, answer.received)),
                Next::Error(e) if matches!(e.code, 404 | 410) => Located::Missing(format!(
                    "the source's LFS server does not have it ({}{})",
                    e.code,
                    if e.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.message)
                    }
                )),
                Next::Error(e) => Located::Failed(format!(
                    "the source's LFS server refused it (code {}): {}",
                    e.code, e.message
                )),
                Next::Present | Next::Upload { .. } => {
                    Located::Failed("the source's LFS server answered for an upload".to_owned())
                }
            })
            .collect())
    }

    fn open(
        &self,
        pointer: &Pointer,
        (action, received): &Self::Handle,
    ) -> Result<Box<dyn Read + Send + '_>, LfsError> {
        if !action.expires_within(*received, EXPIRY_MARGIN) {
            return self.download(action);
        }
        let fresh = self.batch(Operation::Download, std::slice::from_ref(pointer))?;
        match fresh.into_iter().next().map(|a| a.next) {
            Some(Next::Download(action)) => self.download(&action),
            _ => Err(self.error(
                Request::Batch(Operation::Download),
                LfsCause::NotFound {
                    detail: "the object's download action expired and no new one was given"
                        .to_owned(),
                    lfs_answer: false,
                },
            )),
        }
    }
}

// An LFS server as a destination: an upload batch, then PUTs and verify
// calls.
impl ObjectSink for LfsClient {
    type Handle = (Action, Option<Action>, Instant);

    fn wanted(&self, pointers: &[Pointer]) -> Result<Vec<Wanted<Self::Handle>>, LfsError> {
        Ok(self
            .batch(Operation::Upload, pointers)?
            .into_iter()
            .map(|answer| match answer.next {
                Next::Upload { upload, verify } => Wanted::Need((upload, verify, answer.received)),
                Next::Present => Wanted::Have,
                Next::Error(e) => Wanted::Refused(format!(
                    "the destination's LFS server refused it (code {}): {}",
                    e.code, e.message
                )),
                Next::Download(_) => Wanted::Refused(
                    "the destination's LFS server answered for a download".to_owned(),
                ),
            })
            .collect())
    }

    fn put(
        &self,
        pointer: &Pointer,
        (upload, verify, received): &Self::Handle,
        body: &mut (dyn Read + Send),
    ) -> Result<(), LfsError> {
        let fresh;
        let (upload, verify) = if upload.expires_within(*received, EXPIRY_MARGIN) {
            fresh = self.batch(Operation::Upload, std::slice::from_ref(pointer))?;
            match fresh.first().map(|a| &a.next) {
                Some(Next::Upload { upload, verify }) => (upload, verify),
                Some(Next::Present) => {
                    drain(body);
                    return Ok(());
                }
                _ => {
                    return Err(self.error(
                        Request::Batch(Operation::Upload),
                        LfsCause::BadAnswer(
                            "the object's upload action expired and no new one was given"
                                .to_owned(),
                        ),
                    ))
                }
            }
        } else {
            (upload, verify)
        };
        self.upload(upload, body, pointer.size)?;
        if let Some(verify) = verify {
            self.verify(verify, pointer)?;
        }
        Ok(())
    }
}

/// Reads a body that is no longer needed, so that its check still runs
/// and its connection goes back to the pool.
fn drain(body: &mut (dyn Read + Send)) {
    let _ = io::copy(body, &mut io::sink());
}

// A local store as a source: a restore.
impl ObjectSource for LfsStore {
    type Handle = ();

    fn locate(&self, pointers: &[Pointer]) -> Result<Vec<Located<()>>, LfsError> {
        pointers
            .iter()
            .map(|pointer| match self.has(pointer) {
                Ok(true) => Ok(Located::Found(())),
                Ok(false) => Ok(Located::Missing(format!(
                    "the backup has no object {} of {} bytes",
                    pointer.oid, pointer.size
                ))),
                Err(e) => Err(self.error(Side::Source, LfsCause::Io(e))),
            })
            .collect()
    }

    fn open(&self, pointer: &Pointer, _: &()) -> Result<Box<dyn Read + Send + '_>, LfsError> {
        // The relay checks the content on its way; opened plain here.
        std::fs::File::open(self.path_of(pointer))
            .map(|file| Box::new(file) as Box<dyn Read + Send>)
            .map_err(|e| self.error(Side::Source, LfsCause::Io(e)))
    }
}

// A local store as a destination: a backup.
impl ObjectSink for LfsStore {
    type Handle = ();

    fn wanted(&self, pointers: &[Pointer]) -> Result<Vec<Wanted<()>>, LfsError> {
        pointers
            .iter()
            .map(|pointer| match self.has(pointer) {
                Ok(true) => Ok(Wanted::Have),
                Ok(false) => Ok(Wanted::Need(())),
                Err(e) => Err(self.error(Side::Destination, LfsCause::Io(e))),
            })
            .collect()
    }

    fn put(&self, pointer: &Pointer, _: &(), body: &mut (dyn Read + Send)) -> Result<(), LfsError> {
        self.store(pointer, body)
            .map(drop)
            .map_err(|e| self.error(Side::Destination, LfsCause::Io(e)))
    }
}

impl LfsStore {
    fn error(&self, side: Side, cause: LfsCause) -> LfsError {
        LfsError {
            side,
            where_: self.display(),
            request: Request::Store,
            object: None,
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Cursor;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::lfs::Sha256;

    fn pointer_of(content: &[u8]) -> Pointer {
        let digest = ring::digest::digest(&ring::digest::SHA256, content);
        let mut oid = [0u8; 32];
        oid.copy_from_slice(digest.as_ref());
        Pointer {
            oid: Sha256(oid),
            size: content.len() as u64,
        }
    }

    fn content(i: usize) -> Vec<u8> {
        format!("object {i}\n").repeat(100 + i).into_bytes()
    }

    fn need(i: usize) -> Need {
        Need {
            commit: ObjectId::from([i as u8; 20]),
            path: format!("assets/file{i}.bin"),
        }
    }

    fn error(side: Side, cause: LfsCause) -> LfsError {
        LfsError {
            side,
            where_: "https://lfs.example/r.git/info/lfs".to_owned(),
            request: Request::Download,
            object: None,
            cause,
        }
    }

    /// An LFS server to download from, in memory.
    #[derive(Default)]
    struct FakeSource {
        /// What it serves for each oid (possibly not the object's content).
        objects: HashMap<Sha256, Vec<u8>>,
        /// Sizes of the batch requests it was sent.
        batches: Mutex<Vec<usize>>,
        /// Objects it was asked to open.
        opened: Mutex<Vec<Sha256>>,
        /// Refuse every batch request, as with wrong credentials.
        unauthorized: bool,
        /// Transient failures left before each oid opens.
        flaky: Mutex<HashMap<Sha256, usize>>,
    }

    impl FakeSource {
        fn with(contents: &[Vec<u8>]) -> FakeSource {
            FakeSource {
                objects: contents
                    .iter()
                    .map(|c| (pointer_of(c).oid, c.clone()))
                    .collect(),
                ..FakeSource::default()
            }
        }
    }

    impl ObjectSource for FakeSource {
        type Handle = ();

        fn locate(&self, pointers: &[Pointer]) -> Result<Vec<Located<()>>, LfsError> {
            self.batches.lock().unwrap().push(pointers.len());
            if self.unauthorized {
                return Err(error(
                    Side::Source,
                    LfsCause::Unauthorized {
                        had_credentials: true,
                    },
                ));
            }
            Ok(pointers
                .iter()
                .map(|p| match self.objects.contains_key(&p.oid) {
                    true => Located::Found(()),
                    false => Located::Missing("404: Object does not exist".to_owned()),
                })
                .collect())
        }

        fn open(&self, pointer: &Pointer, _: &()) -> Result<Box<dyn Read + Send + '_>, LfsError> {
            self.opened.lock().unwrap().push(pointer.oid);
            if let Some(left) = self.flaky.lock().unwrap().get_mut(&pointer.oid) {
                if *left > 0 {
                    *left -= 1;
                    return Err(error(
                        Side::Source,
                        LfsCause::Server {
                            status: 503,
                            retry_after: Some(Duration::ZERO),
                            detail: String::new(),
                        },
                    ));
                }
            }
            Ok(Box::new(Cursor::new(self.objects[&pointer.oid].clone())))
        }
    }

    /// An LFS server to upload to, in memory: stores what it reads whole.
    #[derive(Default)]
    struct FakeSink {
        stored: Mutex<HashMap<Sha256, Vec<u8>>>,
        refuse: HashSet<Sha256>,
        batches: Mutex<Vec<usize>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl FakeSink {
        fn holding(contents: &[Vec<u8>]) -> FakeSink {
            let sink = FakeSink::default();
            for c in contents {
                sink.stored
                    .lock()
                    .unwrap()
                    .insert(pointer_of(c).oid, c.clone());
            }
            sink
        }

        fn has(&self, content: &[u8]) -> bool {
            self.stored
                .lock()
                .unwrap()
                .get(&pointer_of(content).oid)
                .map(Vec::as_slice)
                == Some(content)
        }
    }

    impl ObjectSink for FakeSink {
        type Handle = ();

        fn wanted(&self, pointers: &[Pointer]) -> Result<Vec<Wanted<()>>, LfsError> {
            self.batches.lock().unwrap().push(pointers.len());
            let stored = self.stored.lock().unwrap();
            Ok(pointers
                .iter()
                .map(|p| {
                    if stored.contains_key(&p.oid) {
                        Wanted::Have
                    } else if self.refuse.contains(&p.oid) {
                        Wanted::Refused("422: too large for this host".to_owned())
                    } else {
                        Wanted::Need(())
                    }
                })
                .collect())
        }

        fn put(
            &self,
            pointer: &Pointer,
            _: &(),
            body: &mut (dyn Read + Send),
        ) -> Result<(), LfsError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            let mut received = Vec::new();
            let read = body.read_to_end(&mut received);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            // Like a server given a Content-Length: a body cut short is no
            // object.
            read.map_err(|e| error(Side::Destination, LfsCause::Body(e)))?;
            self.stored.lock().unwrap().insert(pointer.oid, received);
            Ok(())
        }
    }

    fn run<S: ObjectSource, D: ObjectSink>(
        source: &S,
        dest: &D,
        pointers: &[(Pointer, Need)],
        jobs: usize,
    ) -> Result<LfsReport, LfsError> {
        let last = Mutex::new(LfsProgress::default());
        let report = relay(source, dest, pointers, jobs, &|p| {
            *last.lock().unwrap() = *p
        })?;
        let last = *last.lock().unwrap();
        assert_eq!(last.done, last.total, "progress reached the end");
        assert_eq!(last.bytes, report.bytes);
        assert!(last.streamed >= last.bytes);
        Ok(report)
    }

    fn pointers(contents: &[Vec<u8>]) -> Vec<(Pointer, Need)> {
        contents
            .iter()
            .enumerate()
            .map(|(i, c)| (pointer_of(c), need(i)))
            .collect()
    }

    #[test]
    fn only_what_the_destination_lacks_moves() {
        let contents: Vec<_> = (0..3).map(content).collect();
        let source = FakeSource::with(&contents);
        let dest = FakeSink::holding(&contents[..1]);
        let report = run(&source, &dest, &pointers(&contents), 4).unwrap();
        assert_eq!((report.objects, report.present, report.moved), (3, 1, 2));
        assert_eq!(report.bytes, (contents[1].len() + contents[2].len()) as u64);
        assert!(report.complete());
        assert!(contents.iter().all(|c| dest.has(c)));
        let mut opened = source.opened.lock().unwrap().clone();
        opened.sort();
        let mut expected = vec![pointer_of(&contents[1]).oid, pointer_of(&contents[2]).oid];
        expected.sort();
        assert_eq!(
            opened, expected,
            "the source was asked for the lacking ones only"
        );

        // A second run finds everything there and opens nothing.
        let again = run(&source, &dest, &pointers(&contents), 4).unwrap();
        assert_eq!((again.present, again.moved), (3, 0));
        assert_eq!(source.opened.lock().unwrap().len(), 2);
        assert_eq!(
            *source.batches.lock().unwrap(),
            vec![2],
            "no download batch when nothing lacks"
        );
    }

    #[test]
    fn an_object_the_source_lacks_is_reported_with_what_needs_it_and_the_rest_moves() {
        let contents: Vec<_> = (0..3).map(content).collect();
        let source = FakeSource::with(&[contents[0].clone(), contents[2].clone()]);
        let dest = FakeSink::default();
        let mut wanted = pointers(&contents);
        // The missing object is needed at a second place too.
        wanted.push((pointer_of(&contents[1]), need(7)));
        let report = run(&source, &dest, &wanted, 2).unwrap();
        assert_eq!(report.moved, 2);
        assert_eq!(report.objects, 3);
        assert_eq!(report.missing.len(), 1);
        let missing = &report.missing[0];
        assert_eq!(missing.pointer, pointer_of(&contents[1]));
        assert_eq!(missing.needs, vec![need(1), need(7)]);
        assert!(missing.reason.contains("404"), "{}", missing.reason);
        assert!(report.failed.is_empty() && !report.complete());
        assert!(dest.has(&contents[0]) && dest.has(&contents[2]) && !dest.has(&contents[1]));
    }

    #[test]
    fn a_corrupt_object_is_cut_before_the_destination_stores_it() {
        let contents: Vec<_> = (0..2).map(content).collect();
        let mut source = FakeSource::with(&contents);
        let oid = pointer_of(&contents[1]).oid;
        // Same size, one byte off, as a damaged store would serve it.
        source.objects.get_mut(&oid).unwrap()[10] ^= 1;
        let dest = FakeSink::default();
        let report = run(&source, &dest, &pointers(&contents), 2).unwrap();
        assert_eq!(report.moved, 1);
        assert_eq!(report.failed.len(), 1);
        let failed = &report.failed[0];
        assert_eq!(
            (failed.pointer.oid, failed.side, failed.corrupt),
            (oid, Side::Source, true)
        );
        assert_eq!(failed.needs, vec![need(1)]);
        assert!(failed.reason.contains("wrong content"), "{}", failed.reason);
        assert!(
            !dest.stored.lock().unwrap().contains_key(&oid),
            "never stored"
        );
        // Not retried: the source would serve the same bytes again.
        assert_eq!(
            source
                .opened
                .lock()
                .unwrap()
                .iter()
                .filter(|o| **o == oid)
                .count(),
            1
        );
    }

    #[test]
    fn a_refusal_by_the_destination_is_its_own() {
        let contents: Vec<_> = (0..2).map(content).collect();
        let source = FakeSource::with(&contents);
        let mut dest = FakeSink::default();
        dest.refuse.insert(pointer_of(&contents[0]).oid);
        let report = run(&source, &dest, &pointers(&contents), 1).unwrap();
        assert_eq!(report.moved, 1);
        assert_eq!(report.failed[0].side, Side::Destination);
        assert!(report.failed[0].reason.contains("422"));
    }

    #[test]
    fn batches_hold_at_most_a_hundred_objects_and_jobs_move_at_once() {
        let contents: Vec<_> = (0..250).map(content).collect();
        let source = FakeSource::with(&contents);
        let dest = FakeSink::default();
        let report = run(&source, &dest, &pointers(&contents), 4).unwrap();
        assert_eq!(report.moved, 250);
        assert_eq!(*dest.batches.lock().unwrap(), vec![100, 100, 50]);
        assert_eq!(*source.batches.lock().unwrap(), vec![100, 100, 50]);
        let most = dest.most_in_flight.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} uploads at once");

        let dest = FakeSink::default();
        run(&source, &dest, &pointers(&contents[..20]), 1).unwrap();
        assert_eq!(dest.most_in_flight.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn duplicates_move_once_and_empty_files_not_at_all() {
        let contents: Vec<_> = (0..2).map(content).collect();
        let source = FakeSource::with(&contents);
        let dest = FakeSink::default();
        let mut wanted = pointers(&contents);
        wanted.push((pointer_of(&contents[0]), need(5)));
        wanted.push((pointer_of(b""), need(6)));
        let report = run(&source, &dest, &wanted, 4).unwrap();
        assert_eq!((report.objects, report.moved), (2, 2));
        assert_eq!(source.opened.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_batch_failure_is_the_runs_error() {
        let contents: Vec<_> = (0..2).map(content).collect();
        let source = FakeSource {
            unauthorized: true,
            ..FakeSource::with(&contents)
        };
        let err = run(&source, &FakeSink::default(), &pointers(&contents), 4).unwrap_err();
        assert_eq!(err.side, Side::Source);
        let text = err.to_string();
        assert!(
            text.contains("source LFS") && text.contains("401"),
            "{text}"
        );
        assert!(err.hint().unwrap().contains("--source-token"));
    }

    #[test]
    fn a_transient_failure_is_tried_once_more() {
        let contents: Vec<_> = (0..2).map(content).collect();
        let source = FakeSource::with(&contents);
        let (once, twice) = (pointer_of(&contents[0]).oid, pointer_of(&contents[1]).oid);
        source.flaky.lock().unwrap().extend([(once, 1), (twice, 2)]);
        let dest = FakeSink::default();
        let report = run(&source, &dest, &pointers(&contents), 2).unwrap();
        assert_eq!(report.moved, 1);
        assert!(dest.has(&contents[0]));
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].pointer.oid, twice);
        assert!(
            report.failed[0].reason.contains("503"),
            "{}",
            report.failed[0].reason
        );
    }

    #[test]
    fn a_backup_store_takes_objects_and_gives_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = LfsStore::new(dir.path());
        let contents: Vec<_> = (0..5).map(content).collect();
        let source = FakeSource::with(&contents);

        let report = run(&source, &store, &pointers(&contents), 3).unwrap();
        assert_eq!(report.moved, 5);
        for c in &contents {
            assert_eq!(std::fs::read(store.path_of(&pointer_of(c))).unwrap(), *c);
        }
        assert_eq!(
            lacking(
                &store,
                &pointers(&contents)
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
            )
            .unwrap(),
            vec![]
        );
        let again = run(&source, &store, &pointers(&contents), 3).unwrap();
        assert_eq!((again.present, again.moved), (5, 0));

        // Restore to a host that has one already; one in the backup is
        // damaged and one is gone.
        std::fs::write(
            store.path_of(&pointer_of(&contents[3])),
            vec![0u8; contents[3].len()],
        )
        .unwrap();
        std::fs::remove_file(store.path_of(&pointer_of(&contents[4]))).unwrap();
        let host = FakeSink::holding(&contents[..1]);
        let report = run(&store, &host, &pointers(&contents), 2).unwrap();
        assert_eq!((report.present, report.moved), (1, 2));
        assert!(host.has(&contents[1]) && host.has(&contents[2]));
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed[0].corrupt && report.failed[0].side == Side::Source);
        assert!(!host
            .stored
            .lock()
            .unwrap()
            .contains_key(&pointer_of(&contents[3]).oid));
        assert_eq!(report.missing.len(), 1);
        assert_eq!(report.missing[0].pointer, pointer_of(&contents[4]));
    }

    #[test]
    fn lacking_counts_without_moving() {
        let contents: Vec<_> = (0..3).map(content).collect();
        let dest = FakeSink::holding(&contents[1..2]);
        let mut asked: Vec<Pointer> = contents.iter().map(|c| pointer_of(c)).collect();
        asked.push(asked[0]);
        let mut expected = vec![asked[0], asked[2]];
        expected.sort();
        assert_eq!(lacking(&dest, &asked).unwrap(), expected);
        assert!(dest.stored.lock().unwrap().len() == 1);
    }

    #[test]
    fn progress_shows_a_large_object_while_it_streams() {
        let big = vec![7u8; 3 << 20];
        let source = FakeSource::with(std::slice::from_ref(&big));
        let dest = FakeSink::default();
        let seen = Mutex::new(Vec::new());
        let report = relay(
            &source,
            &dest,
            &pointers(std::slice::from_ref(&big)),
            4,
            &|p| seen.lock().unwrap().push(*p),
        )
        .unwrap();
        assert_eq!(report.moved, 1);
        let seen = seen.into_inner().unwrap();
        let during: Vec<u64> = seen
            .iter()
            .filter(|p| p.done == 0)
            .map(|p| p.streamed)
            .collect();
        // Every MiB or so, before the object is done.
        assert!(during.len() >= 2, "{seen:?}");
        assert!(during.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert!(during[0] >= 1 << 20, "{seen:?}");
        assert_eq!(
            seen.last(),
            Some(&LfsProgress {
                done: 1,
                total: 1,
                bytes: 3 << 20,
                streamed: 3 << 20
            })
        );
    }
}

//! [`CapProxy`]: an HTTP/1.1 proxy that refuses pushes the way hosts do.
//!
//! Real hosts cap what one push may carry: a body size (GitHub's 2 GiB,
//! nginx's `client_max_body_size` answering 413), a time to send it (408),
//! a number of ref updates (GitHub answers 500 to about 10,000), chunked
//! bodies (411 from servers that want a length), and some middleboxes just
//! reset the connection past a size. git's own server enforces none of these,
//! so this proxy sits in front of a [`GitServer`](super::GitServer) and
//! enforces them on `git-receive-pack` POSTs only; everything else passes
//! through untouched.
//!
//! It records every receive-pack POST (body size, ref commands, framing, what
//! was answered), so a test can assert on what the client tried, e.g. "every
//! push was at most 1 MiB", not only on how the run ended.
//!
//! Each request gets its own upstream connection and the client connection
//! is closed after each answer (`Connection: close`), which keeps the proxy
//! free of keep-alive bookkeeping; clients reconnect as HTTP allows.

use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{self, BodyReader, Framing, RequestHead};

/// How a body over [`CapBuilder::max_body`] is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Answer 413 as soon as the body passes the limit, while the client is
    /// still sending, and close within a second: the client may see the
    /// answer or only a broken connection, as behind a load balancer.
    Early,
    /// Read the whole body, then answer 413 (and close).
    AfterRead,
}

/// What the proxy did with one receive-pack POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Passed to the server, which answered this status.
    Upstream(u16),
    /// Refused by the proxy with this status; the server saw no complete
    /// request.
    Refused(u16),
    /// Connection reset without any answer.
    Reset,
}

/// One receive-pack POST, as the client sent it.
#[derive(Clone, Debug)]
pub struct Push {
    /// Body bytes read from the client, after removing chunked framing. For
    /// a body refused early or reset, what had arrived by then.
    pub body_bytes: u64,
    /// Ref update commands before the flush packet.
    pub commands: usize,
    /// The ref names of those commands, in order.
    pub refs: Vec<String>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The `Content-Length` header, if any.
    pub content_length: Option<u64>,
    pub answer: Answer,
}

impl Push {
    /// Whether the server received the push and answered 200 (its report
    /// may still reject single refs).
    pub fn accepted(&self) -> bool {
        self.answer == Answer::Upstream(200)
    }
}

/// The caps, set with [`CapProxy::builder`].
#[derive(Clone, Debug, Default)]
pub struct CapBuilder {
    max_body: Option<(u64, Close)>,
    deadline: Option<Duration>,
    max_commands: Option<usize>,
    refuse_chunked: bool,
    reset_at: Option<u64>,
    throttle: Option<u64>,
}

/// A running proxy; stops accepting when dropped.
pub struct CapProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: u16,
    caps: CapBuilder,
    pushes: Mutex<Vec<Push>>,
    pushed: Condvar,
}

impl Shared {
    fn pushes(&self) -> MutexGuard<'_, Vec<Push>> {
        self.pushes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, push: Push) {
        self.pushes().push(push);
        self.pushed.notify_all();
    }
}

impl CapProxy {
    /// No caps yet: add them, then [`CapBuilder::start`].
    pub fn builder() -> CapBuilder {
        CapBuilder::default()
    }

    /// `http://127.0.0.1:<port>/<repo>`, without credentials.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    /// The same with `user:password@` (used as given: test credentials are
    /// URL-safe), for plain git.
    pub fn url_with_credentials(&self, repo: &str, user: &str, password: &str) -> String {
        format!(
            "http://{user}:{password}@127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every receive-pack POST so far, in the order they were answered.
    pub fn pushes(&self) -> Vec<Push> {
        self.shared.pushes().clone()
    }

    /// Waits until at least `n` receive-pack POSTs have been answered (or
    /// refused, or reset); false if `timeout` passed first.
    pub fn wait_for_pushes(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.shared.pushes();
        let (guard, _) = self
            .shared
            .pushed
            .wait_timeout_while(guard, timeout, |pushes| pushes.len() < n)
            .unwrap_or_else(PoisonError::into_inner);
        guard.len() >= n
    }
}

impl Drop for CapProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl CapBuilder {
    /// Refuse receive-pack bodies longer than `bytes` with 413.
    pub fn max_body(mut self, bytes: u64, close: Close) -> Self {
        self.max_body = Some((bytes, close));
        self
    }

    /// Answer 408 (and close) when a receive-pack body is still arriving
    /// after `limit`.
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// Answer 500 to a receive-pack request with more than `k` ref commands,
    /// as GitHub does to very large ref updates.
    pub fn max_commands(mut self, k: usize) -> Self {
        self.max_commands = Some(k);
        self
    }

    /// Answer 411 Length Required to chunked receive-pack bodies.
    pub fn refuse_chunked(mut self) -> Self {
        self.refuse_chunked = true;
        self
    }

    /// Reset the connection, answering nothing, when a receive-pack body
    /// reaches `offset` bytes.
    pub fn reset_at(mut self, offset: u64) -> Self {
        self.reset_at = Some(offset);
        self
    }

    /// Read receive-pack bodies at no more than `bytes_per_second`, a slow
    /// uplink, so that a test can act while a push is under way.
    pub fn throttle(mut self, bytes_per_second: u64) -> Self {
        self.throttle = Some(bytes_per_second.max(1));
        self
    }

    /// Starts proxying 127.0.0.1:`upstream` (a [`GitServer`]'s port).
    ///
    /// [`GitServer`]: super::GitServer
    pub fn start(self, upstream: u16) -> CapProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the cap proxy");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream,
            caps: self,
            pushes: Mutex::new(Vec::new()),
            pushed: Condvar::new(),
        });
        let (stop2, shared2) = (stop.clone(), shared.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = shared2.clone();
                thread::spawn(move || {
                    if let Err(e) = serve(client, &shared) {
                        eprintln!("[cap-proxy] connection dropped: {e}");
                    }
                });
            }
        });
        CapProxy { port, stop, shared }
    }
}

/// Size of each read of a body; small enough that caps fire close to their
/// byte offset.
const BUFFER: usize = 16 * 1024;
/// Most bytes of ref commands read before the pack; far more than any test
/// sends, it only bounds a confused client.
const MAX_COMMAND_BYTES: usize = 64 * 1024 * 1024;

/// A request head as received, for forwarding, and parsed, for decisions.
pub(crate) struct RawHead {
    pub(crate) lines: Vec<String>,
    pub(crate) head: RequestHead,
}

/// Reads one request head; `Ok(None)` if the client closed first.
pub(crate) fn read_raw_head(reader: &mut impl BufRead) -> io::Result<Option<RawHead>> {
    let mut lines = Vec::new();
    loop {
        match http::read_line(reader)? {
            None if lines.is_empty() => return Ok(None),
            None => return Err(http::invalid("connection closed in headers")),
            Some(line) if line.is_empty() && lines.is_empty() => {}
            Some(line) if line.is_empty() => break,
            Some(line) => lines.push(line),
        }
        if lines.len() > 200 {
            return Err(http::invalid("too many header lines"));
        }
    }
    let text = format!("{}\r\n\r\n", lines.join("\r\n"));
    let head = http::read_head(&mut Cursor::new(text.as_bytes()))?
        .ok_or_else(|| http::invalid("empty head"))?;
    Ok(Some(RawHead { lines, head }))
}

impl RawHead {
    /// The head to send upstream: hop-by-hop headers replaced by
    /// `Connection: close`, `Expect` removed (the proxy answers it itself),
    /// the framing as received.
    pub(crate) fn forwarded(&self) -> String {
        let mut out = format!("{}\r\n", self.lines[0]);
        for line in &self.lines[1..] {
            let name = line.split(':').next().unwrap_or("").trim();
            let hop = ["connection", "keep-alive", "expect", "proxy-connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h));
            if !hop {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out
    }
}

/// Forwards one body chunk in the framing of the request.
pub(crate) fn write_body(to: &mut impl Write, framing: Framing, data: &[u8]) -> io::Result<()> {
    match framing {
        Framing::Chunked => http::write_chunk(to, data),
        _ => to.write_all(data),
    }
}

fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(raw) = read_raw_head(&mut reader)? else {
        return Ok(());
    };
    let is_push = raw.head.method == "POST" && raw.head.path().ends_with("/git-receive-pack");
    if is_push {
        push(&raw, &mut reader, client, shared)
    } else {
        pass(&raw, &mut reader, client, shared.upstream)
    }
}

/// Passes one request through and its answer back, then closes.
fn pass(
    raw: &RawHead,
    reader: &mut BufReader<TcpStream>,
    mut client: TcpStream,
    upstream: u16,
) -> io::Result<()> {
    let framing = raw.head.framing()?;
    if framing != Framing::None && raw.head.expects_continue() {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.set_nodelay(true)?;
    server.write_all(raw.forwarded().as_bytes())?;
    let mut body = BodyReader::new(reader, framing);
    let mut buf = vec![0; BUFFER];
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        write_body(&mut server, framing, &buf[..n])?;
    }
    if framing == Framing::Chunked {
        http::write_last_chunk(&mut server)?;
    }
    io::copy(&mut server, &mut client)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// The ref commands at the start of a receive-pack body: the raw pkt-lines
/// up to and including the flush, and the ref names. Never panics on bad
/// input: what cannot be parsed ends the command list.
fn read_commands(body: &mut impl Read) -> io::Result<(Vec<u8>, Vec<String>)> {
    let mut raw = Vec::new();
    let mut refs = Vec::new();
    while raw.len() < MAX_COMMAND_BYTES {
        let mut len = [0u8; 4];
        if read_full(body, &mut len)? < 4 {
            raw.extend_from_slice(&len);
            break;
        }
        raw.extend_from_slice(&len);
        let Some(size) = std::str::from_utf8(&len)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        else {
            break;
        };
        if size < 4 {
            // Flush (or a delimiter git would not send here): the end.
            break;
        }
        let mut payload = vec![0; size - 4];
        let got = read_full(body, &mut payload)?;
        raw.extend_from_slice(&payload[..got]);
        if got < payload.len() {
            break;
        }
        let line = payload.split(|&b| b == 0).next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\n');
        if line.starts_with("shallow ") || line.starts_with("push-cert") {
            continue;
        }
        if let Some(name) = line.splitn(3, ' ').nth(2) {
            refs.push(name.to_owned());
        }
    }
    Ok((raw, refs))
}

fn read_full(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match from.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// How long a refusing proxy keeps reading (and dropping) what the client
/// still sends after the answer, so that the client sees the answer rather
/// than a reset caused by unread bytes: most time between two reads, and in
/// all.
#[derive(Clone, Copy)]
struct Linger {
    gap: Duration,
    total: Duration,
}

/// As nginx's lingering close does by default (5 s and 30 s, shortened
/// here so a test does not wait on it): a client that sends on long after
/// the answer still gets to read it.
const PATIENT: Linger = Linger {
    gap: Duration::from_secs(2),
    total: Duration::from_secs(10),
};

/// A close as soon as the answer is out, give or take a moment: a client
/// still sending may see only a broken connection.
const HASTY: Linger = Linger {
    gap: Duration::from_millis(100),
    total: Duration::from_secs(1),
};

/// Answers with a short body, then closes after `linger`.
fn refuse(mut client: TcpStream, status: u16, reason: &str, linger: Linger) {
    let body = format!("{status} {reason}\n");
    let _ = http::write_simple_response(&mut client, status, reason, &[], body.as_bytes(), true);
    let _ = client.shutdown(Shutdown::Write);
    let start = Instant::now();
    let _ = client.set_read_timeout(Some(linger.gap));
    let mut sink = [0u8; BUFFER];
    while start.elapsed() < linger.total {
        match client.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

fn reset(client: &TcpStream, server: Option<&TcpStream>) {
    let _ = client.shutdown(Shutdown::Both);
    if let Some(server) = server {
        let _ = server.shutdown(Shutdown::Both);
    }
}

/// Applies the caps to one receive-pack POST.
fn push(
    raw: &RawHead,
    reader: &mut BufReader<TcpStream>,
    mut client: TcpStream,
    shared: &Shared,
) -> io::Result<()> {
    let caps = &shared.caps;
    let framing = raw.head.framing()?;
    let mut record = Push {
        body_bytes: 0,
        commands: 0,
        refs: Vec::new(),
        chunked: framing == Framing::Chunked,
        content_length: raw.head.content_length()?,
        answer: Answer::Reset,
    };
    if caps.refuse_chunked && record.chunked {
        record.answer = Answer::Refused(411);
        shared.record(record);
        refuse(client, 411, "Length Required", PATIENT);
        return Ok(());
    }
    if framing != Framing::None && raw.head.expects_continue() {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let start = Instant::now();
    if let Some(limit) = caps.deadline {
        // A client that stalls in its commands is as late as one stalling
        // in its pack; this only keeps the proxy from waiting forever.
        client.set_read_timeout(Some(limit))?;
    }
    let mut body = BodyReader::new(reader, framing);
    let (commands, refs) = read_commands(&mut body)?;
    record.commands = refs.len();
    record.refs = refs;

    if caps.max_commands.is_some_and(|k| record.commands > k) {
        record.body_bytes = commands.len() as u64 + io::copy(&mut body, &mut io::sink())?;
        record.answer = Answer::Refused(500);
        shared.record(record);
        refuse(client, 500, "Internal Server Error", PATIENT);
        return Ok(());
    }

    let mut server = TcpStream::connect(("127.0.0.1", shared.upstream))?;
    server.set_nodelay(true)?;
    server.write_all(raw.forwarded().as_bytes())?;

    let mut buf = vec![0; BUFFER];
    let mut pending = commands;
    loop {
        if pending.is_empty() {
            if let Some(limit) = caps.deadline {
                let left = limit.saturating_sub(start.elapsed());
                client.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            }
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if caps.deadline.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                Err(e) => {
                    reset(&client, Some(&server));
                    shared.record(record);
                    return Err(e);
                }
            }
        }
        let before = record.body_bytes;
        let after = before + pending.len() as u64;

        if let Some(at) = caps.reset_at.filter(|at| after >= *at) {
            // The server gets the bytes up to the offset, as a connection
            // cut there would deliver them.
            let keep = usize::try_from(at - before).unwrap_or(usize::MAX);
            record.body_bytes = at;
            let _ = write_body(&mut server, framing, &pending[..keep.min(pending.len())]);
            reset(&client, Some(&server));
            record.answer = Answer::Reset;
            shared.record(record);
            return Ok(());
        }
        if caps.deadline.is_some_and(|limit| start.elapsed() >= limit) {
            record.body_bytes = after;
            reset(&server, None);
            record.answer = Answer::Refused(408);
            shared.record(record);
            refuse(client, 408, "Request Timeout", PATIENT);
            return Ok(());
        }
        record.body_bytes = after;
        if let Some((_, close)) = caps.max_body.filter(|(limit, _)| after > *limit) {
            reset(&server, None);
            if close == Close::AfterRead {
                record.body_bytes += io::copy(&mut body, &mut io::sink())?;
            }
            record.answer = Answer::Refused(413);
            shared.record(record);
            let linger = match close {
                Close::Early => HASTY,
                Close::AfterRead => PATIENT,
            };
            refuse(client, 413, "Request Entity Too Large", linger);
            return Ok(());
        }
        if !pending.is_empty() {
            write_body(&mut server, framing, &pending)?;
        }
        if let Some(rate) = caps.throttle {
            let due = Duration::from_secs_f64(record.body_bytes as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
        pending.clear();
    }
    if framing == Framing::Chunked {
        http::write_last_chunk(&mut server)?;
    }
    server.flush()?;

    // The server's answer is small (a report); it is read whole and the push
    // recorded before it is passed on, so that once the client has finished,
    // its push is in the log and complete on the server.
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let status = answer
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
        .unwrap_or(0);
    record.answer = Answer::Upstream(status);
    shared.record(record);
    client.write_all(&answer)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

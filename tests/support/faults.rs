//! A TCP proxy that misbehaves on purpose, for fault tests.
//!
//! Placed between git-relay and a real [`GitServer`](super::GitServer), it
//! passes bytes through until a [`Fault`] triggers: it cuts a connection
//! after so many bytes in either direction, stalls, or answers garbage. The
//! server stays real, so a test sees what a real server does when a client
//! vanishes mid-pack (git's receive-pack discards a partial pack), and
//! git-relay sees the same socket errors a flaky network produces.
//!
//! A fault fires a limited number of times; after that, connections pass
//! through untouched, so a test can check that a retry, or the next run,
//! converges.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// What goes wrong.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Close the connection once the server has sent this many bytes.
    CutResponseAfter(u64),
    /// Close the connection once the client has sent this many bytes.
    CutRequestAfter(u64),
    /// Once the client has sent this many bytes, close the connection
    /// before passing on any more of the server's answer (the push report).
    CutResponseAfterRequest(u64),
    /// Stop passing the server's bytes on after this many, but keep the
    /// connection open.
    StallResponseAfter(u64),
    /// Answer the first request with a smart-HTTP header and a garbage body.
    Garbage,
    /// Flip one bit of the first occurrence of these bytes in the server's
    /// answer, keeping its length and framing: data damaged in transit, as
    /// a broken middlebox or bad memory does. The marker should stand in a
    /// file stored uncompressed, so that it appears in packs as it is.
    CorruptResponse(&'static [u8]),
    /// Answer `503 Service Unavailable` with `Retry-After: 1`, as a host
    /// under maintenance or rate limiting does.
    Unavailable,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    fired: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Proxies 127.0.0.1:`upstream`, applying `fault` to at most `times`
    /// connections.
    pub fn start(upstream: u16, fault: Fault, times: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let remaining = Arc::new(AtomicUsize::new(times));
        let fired = Arc::new(AtomicUsize::new(0));
        let (stop2, fired2) = (stop.clone(), fired.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let conn = Connection {
                    fault,
                    remaining: remaining.clone(),
                    fired: fired2.clone(),
                    stop: stop2.clone(),
                    request_bytes: Arc::new(AtomicU64::new(0)),
                    armed: Arc::new(AtomicBool::new(false)),
                };
                thread::spawn(move || conn.serve(client, server));
            }
        });
        FaultProxy { port, stop, fired }
    }

    /// `http://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }

    /// How many times the fault has fired.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Connection {
    fault: Fault,
    remaining: Arc<AtomicUsize>,
    fired: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    request_bytes: Arc<AtomicU64>,
    /// This connection has used up one of the fault's shots.
    armed: Arc<AtomicBool>,
}

impl Connection {
    /// Takes one of the fault's shots for this connection, if any are left.
    fn fire(&self) -> bool {
        if self.armed.load(Ordering::SeqCst) {
            return true;
        }
        let took = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if took {
            self.armed.store(true, Ordering::SeqCst);
            self.fired.fetch_add(1, Ordering::SeqCst);
        }
        took
    }

    fn serve(self, client: TcpStream, server: TcpStream) {
        match self.fault {
            Fault::Garbage if self.fire() => return garbage(client),
            Fault::Unavailable if self.fire() => return unavailable(client),
            _ => {}
        }
        let (client_r, server_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let conn = Arc::new(self);
        let upstream = {
            let conn = conn.clone();
            let (client, server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || conn.pump_request(client_r, server_w, &client, &server))
        };
        conn.pump_response(server, client);
        let _ = upstream.join();
    }

    fn pump_request(
        &self,
        mut from: TcpStream,
        mut to: TcpStream,
        client: &TcpStream,
        server: &TcpStream,
    ) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let before = self.request_bytes.fetch_add(n as u64, Ordering::SeqCst);
            if let Fault::CutRequestAfter(limit) = self.fault {
                if before + n as u64 >= limit && self.fire() {
                    let keep = limit.saturating_sub(before) as usize;
                    let _ = to.write_all(&buf[..keep.min(n)]);
                    cut(client, server);
                    return;
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    fn pump_response(&self, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        let mut sent: u64 = 0;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match self.fault {
                Fault::CutResponseAfter(limit) if sent + n as u64 >= limit && self.fire() => {
                    let keep = limit.saturating_sub(sent) as usize;
                    let _ = to.write_all(&buf[..keep.min(n)]);
                    cut(&to, &from);
                    return;
                }
                Fault::CutResponseAfterRequest(limit)
                    if self.request_bytes.load(Ordering::SeqCst) >= limit && self.fire() =>
                {
                    cut(&to, &from);
                    return;
                }
                Fault::StallResponseAfter(limit) if sent + n as u64 >= limit && self.fire() => {
                    let keep = limit.saturating_sub(sent) as usize;
                    let _ = to.write_all(&buf[..keep.min(n)]);
                    // Hold the connection open and silent until the client
                    // gives up (or the test ends).
                    while !self.stop.load(Ordering::SeqCst) {
                        let mut probe = [0u8; 1];
                        to.set_read_timeout(Some(Duration::from_millis(200))).ok();
                        match to.peek(&mut probe) {
                            Ok(0) => break,
                            Ok(_) => thread::sleep(Duration::from_millis(200)),
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    cut(&to, &from);
                    return;
                }
                Fault::CorruptResponse(marker) => {
                    let at = buf[..n].windows(marker.len()).position(|w| w == marker);
                    if let Some(at) = at.filter(|_| self.fire()) {
                        buf[at + marker.len() / 2] ^= 0x01;
                    }
                }
                _ => {}
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
        }
        let _ = to.shutdown(Shutdown::Write);
    }
}

fn cut(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Reads a request head; false if the client went away first.
fn read_head(client: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// Answers 503 with a Retry-After of one second.
fn unavailable(mut client: TcpStream) {
    if read_head(&mut client) {
        let _ = client.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// Reads the request head, then answers as if it were a ref advertisement
/// whose body is nonsense.
fn garbage(mut client: TcpStream) {
    if !read_head(&mut client) {
        return;
    }
    let body = b"zq!?\x00\xffthis is not a pkt-line stream\n";
    let _ = write!(
        client,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(body);
    let _ = client.shutdown(Shutdown::Both);
}

//! [`DelayProxy`]: a TCP proxy that makes 127.0.0.1 as far away as a host
//! across an ocean, and counts the requests that crossed it.
//!
//! On loopback a round trip costs nothing, so a client that talks to a
//! server ten times where twice would do passes every timing test. Behind
//! this proxy each round trip costs real wall time, so a test can bound the
//! round trips of an operation by its duration ("a no-op took at most 3
//! round trips"), the way users feel them.
//!
//! The model is one-way latency, paid each time the direction of traffic on
//! a connection changes (a request after an answer, an answer after a
//! request) and once when a connection opens (TCP's handshake); bytes that
//! follow in the same direction stream on without further delay, as they
//! would through a long pipe. So one HTTP exchange on an open connection
//! costs two delays, one on a new connection three.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::cap::{read_raw_head, write_body};
use super::http::{self, BodyReader, Framing};

/// A running proxy; stops accepting when dropped.
pub struct DelayProxy {
    port: u16,
    delay: Duration,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// Which way the last bytes on a connection went.
const NONE: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl DelayProxy {
    /// Proxies 127.0.0.1:`upstream`, adding `delay` each way.
    pub fn start(upstream: u16, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the delay proxy");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (stop2, counts2) = (stop.clone(), counts.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                counts2.connections.fetch_add(1, Ordering::SeqCst);
                let counts = counts2.clone();
                thread::spawn(move || {
                    thread::sleep(delay);
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    serve(client, server, delay, &counts);
                });
            }
        });
        DelayProxy {
            port,
            delay,
            stop,
            counts,
        }
    }

    /// `http://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    /// The latency added each way.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// What one request and its answer cost on an open connection.
    pub fn round_trip(&self) -> Duration {
        2 * self.delay
    }

    /// HTTP requests that went through so far.
    pub fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// TCP connections opened so far.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Sleeps `delay` if the last bytes on the connection went the other way.
fn turn(last: &AtomicU8, direction: u8, delay: Duration) {
    if last.swap(direction, Ordering::SeqCst) != direction {
        thread::sleep(delay);
    }
}

fn serve(client: TcpStream, server: TcpStream, delay: Duration, counts: &Counts) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let last = Arc::new(AtomicU8::new(NONE));
    let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    thread::scope(|scope| {
        let last_up = last.clone();
        scope.spawn(move || {
            let _ = pump_requests(client_r, server_w, delay, &last_up, counts);
        });
        let (mut from, mut to) = (server, client);
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            turn(&last, DOWN, delay);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Passes requests on one by one, counting them; bodies are re-framed as
/// they came (the bytes of a chunked body may be split differently).
fn pump_requests(
    client: TcpStream,
    mut server: TcpStream,
    delay: Duration,
    last: &AtomicU8,
    counts: &Counts,
) -> io::Result<()> {
    let mut reader = BufReader::new(client);
    while let Some(raw) = read_raw_head(&mut reader)? {
        counts.requests.fetch_add(1, Ordering::SeqCst);
        turn(last, UP, delay);
        let mut head = raw.lines.join("\r\n");
        head.push_str("\r\n\r\n");
        server.write_all(head.as_bytes())?;
        let framing = raw.head.framing()?;
        let mut body = BodyReader::new(&mut reader, framing);
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            turn(last, UP, delay);
            write_body(&mut server, framing, &buf[..n])?;
        }
        if framing == Framing::Chunked {
            http::write_last_chunk(&mut server)?;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    Ok(())
}

//! A smart-HTTP server that is hostile on purpose, for the tests of
//! git-relay's bounds on what a server may make it hold or wait for.
//!
//! A [`FaultProxy`](super::FaultProxy) can only distort what a real git
//! server says; the attacks here need a server that says things no git
//! would: a ref advertisement without end, a body trickled one byte at a
//! time, side-band progress and never a pack. Each [`Script`] is a few
//! lines of HTTP written by hand on `std::net`.
//!
//! Everything is bounded so that a git-relay without the bounds under test
//! cannot take the test machine down with it: the server binds 127.0.0.1,
//! answers at most [`MAX_CONNECTIONS`] connections, stops each after
//! [`MAX_LIFETIME`] and everything when dropped; [`run_bounded`] kills the
//! relay after a time limit or past a memory ceiling.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{command, Run};

/// Connections answered before the server stops accepting.
pub const MAX_CONNECTIONS: usize = 16;
/// How long the server talks on one connection, and accepts at all.
pub const MAX_LIFETIME: Duration = Duration::from_secs(40);

/// The one object id the hostile server advertises.
const OID: &str = "3d06390b8cfcc3636b12dd52f044eae8f1566458";

/// What the server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// `info/refs` lists refs without end, as fast as the client reads.
    EndlessAdvertisement,
    /// `info/refs` sends its headers, then one byte of a (valid, endless)
    /// advertisement every half second.
    Trickle,
    /// `info/refs` is a proper one-branch advertisement offering
    /// `side-band-64k`; a fetch is answered with `NAK` and then side-band
    /// progress, 30 bytes every 10 ms (about 3 KB/s, above any sensible
    /// low-speed limit), and never a byte of pack.
    EndlessProgress,
    /// A destination: `info/refs` is an empty receive-pack advertisement
    /// offering `report-status` and `side-band-64k`; a push is answered
    /// with `unpack ok` and then report-status-v2 `option` lines without
    /// end, on channel 1.
    EndlessReport,
    /// Any request is answered as a forge API would, with a JSON list of
    /// repositories that never ends.
    EndlessJson,
}

/// A running hostile server; stops when dropped.
pub struct HostileServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl HostileServer {
    /// Starts serving `script` on 127.0.0.1.
    pub fn start(script: Script) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hostile server");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            let started = Instant::now();
            let mut answered = 0;
            while answered < MAX_CONNECTIONS
                && started.elapsed() < MAX_LIFETIME
                && !stop2.load(Ordering::SeqCst)
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        answered += 1;
                        let stop = stop2.clone();
                        thread::spawn(move || {
                            let _ = serve(stream, script, &stop);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        });
        HostileServer { port, stop }
    }

    /// The URL of a repository on it (any name serves the script).
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Answers one request on `stream` (the answers close the connection).
fn serve(stream: TcpStream, script: Script, stop: &AtomicBool) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    io::copy(&mut reader.take(content_length), &mut io::sink())?;

    let service = if request_line.contains("git-receive-pack") {
        "git-receive-pack"
    } else {
        "git-upload-pack"
    };
    let discovery = request_line.starts_with("GET");
    let content_type = if script == Script::EndlessJson {
        "application/json".to_owned()
    } else if discovery {
        format!("application/x-{service}-advertisement")
    } else {
        format!("application/x-{service}-result")
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    )?;
    let deadline = Instant::now() + MAX_LIFETIME;
    let going = || Instant::now() < deadline && !stop.load(Ordering::SeqCst);
    let first = pkt(&format!("# service={service}\n"));
    match (script, discovery) {
        (Script::EndlessAdvertisement, _) => {
            out.write_all(format!("{first}0000").as_bytes())?;
            out.write_all(pkt(&format!("{OID} HEAD\0side-band-64k agent=hostile\n")).as_bytes())?;
            let mut n: u64 = 0;
            while going() {
                let mut chunk = String::with_capacity(64 << 10);
                while chunk.len() < 60 << 10 {
                    chunk.push_str(&pkt(&format!("{OID} refs/heads/endless/{n}\n")));
                    n += 1;
                }
                out.write_all(chunk.as_bytes())?;
            }
        }
        (Script::Trickle, _) => {
            let mut body = format!("{first}0000");
            body.push_str(&pkt(&format!("{OID} HEAD\0side-band-64k agent=hostile\n")));
            let mut n = 0;
            while going() {
                if body.is_empty() {
                    body = pkt(&format!("{OID} refs/heads/slow/{n}\n"));
                    n += 1;
                }
                out.write_all(&body.as_bytes()[..1])?;
                out.flush()?;
                body.remove(0);
                thread::sleep(Duration::from_millis(500));
            }
        }
        (Script::EndlessProgress, true) => {
            let caps = "multi_ack_detailed side-band-64k ofs-delta thin-pack no-progress \
                        symref=HEAD:refs/heads/main agent=hostile";
            let body = format!(
                "{first}0000{}{}0000",
                pkt(&format!("{OID} HEAD\0{caps}\n")),
                pkt(&format!("{OID} refs/heads/main\n"))
            );
            out.write_all(body.as_bytes())?;
        }
        (Script::EndlessJson, _) => {
            out.write_all(b"[")?;
            let mut n: u64 = 0;
            while going() {
                let mut chunk = String::with_capacity(64 << 10);
                while chunk.len() < 60 << 10 {
                    chunk.push_str(&format!(
                        "{{\"name\":\"repo-{n}\",\"clone_url\":\"http://127.0.0.1/{n}.git\"}},"
                    ));
                    n += 1;
                }
                out.write_all(chunk.as_bytes())?;
            }
        }
        (Script::EndlessReport, true) => {
            let caps = "report-status side-band-64k delete-refs ofs-delta agent=hostile";
            let zero = "0".repeat(40);
            let body = format!(
                "{first}0000{}0000",
                pkt(&format!("{zero} capabilities^{{}}\0{caps}\n"))
            );
            out.write_all(body.as_bytes())?;
        }
        (Script::EndlessReport, false) => {
            // The request (commands and a small pack) fits in the socket's
            // buffers, so it can be left unread.
            out.write_all(pkt(&format!("\u{1}{}", pkt("unpack ok\n"))).as_bytes())?;
            let mut n: u64 = 0;
            while going() {
                let mut chunk = String::with_capacity(64 << 10);
                while chunk.len() < 60 << 10 {
                    let line = pkt(&format!("option refname refs/heads/endless/{n}\n"));
                    chunk.push_str(&pkt(&format!("\u{1}{line}")));
                    n += 1;
                }
                out.write_all(chunk.as_bytes())?;
            }
        }
        (Script::EndlessProgress, false) => {
            out.write_all(pkt("NAK\n").as_bytes())?;
            while going() {
                out.write_all(pkt("\u{2}Counting objects: still going\r").as_bytes())?;
                out.flush()?;
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

/// `text` as one pkt-line.
fn pkt(text: &str) -> String {
    format!("{:04x}{text}", text.len() + 4)
}

/// What [`run_bounded`] saw.
pub struct Bounded {
    /// The run; killed runs have code -1.
    pub run: Run,
    /// How long it ran.
    pub elapsed: Duration,
    /// Its peak resident memory, in bytes.
    pub peak: u64,
    /// Whether the test had to kill it.
    pub killed: bool,
}

/// A ceiling on the relay's memory above which [`run_bounded`] kills it, so
/// that a relay without bounds fails its test without exhausting the
/// machine.
const MEMORY_CEILING: u64 = 512 << 20;

/// Runs `git-relay ARGS`, killing it after `limit` or past a memory
/// ceiling, and samples its peak resident memory (`VmHWM`).
pub fn run_bounded(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Bounded {
    let mut child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn git-relay");
    let started = Instant::now();
    let status_path = format!("/proc/{}/status", child.id());
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let pipes: [Box<dyn Read + Send>; 2] = [Box::new(stdout), Box::new(stderr)];
    let readers = pipes.map(|mut pipe| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let mut peak = 0;
    let mut killed = false;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib * 1024);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if !killed && (started.elapsed() > limit || peak > MEMORY_CEILING) {
            killed = true;
            let _ = child.kill();
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let [stdout, stderr] = readers.map(|h| h.join().unwrap());
    Bounded {
        run: Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        },
        elapsed,
        peak,
        killed,
    }
}

//! A minimal forward HTTP proxy, to prove that git-relay reaches servers
//! through one.
//!
//! A client configured with a proxy sends requests in absolute form
//! (`GET http://git.example/repo.git/info/refs HTTP/1.1`) to the proxy and
//! never resolves the server's name itself. This proxy sends every request,
//! whatever host it names, to one upstream on 127.0.0.1, so tests can use
//! made-up host names without any traffic leaving the machine. Each request
//! gets its own upstream connection (`Connection: close`), which keeps the
//! proxy free of HTTP framing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running proxy; the listener thread ends with the test process.
pub struct ForwardProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ForwardProxy {
    /// Proxies every request to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                thread::spawn(move || {
                    let _ = forward(client, upstream, &log);
                });
            }
        });
        ForwardProxy { port, seen }
    }

    /// `http://127.0.0.1:<port>`, for `--proxy` or `HTTP_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines received, as the client sent them.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn forward(client: TcpStream, upstream: u16, log: &Mutex<Vec<String>>) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    log.lock().unwrap().push(line.trim_end().to_owned());
    // `GET http://host:port/path?q HTTP/1.1` -> `GET /path?q HTTP/1.1`
    let mut parts = line.trim_end().splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let origin_form = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_owned(),
        None => target.to_owned(),
    };
    let mut head = format!("{method} {origin_form} {version}\r\n");
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(());
        }
        if header == "\r\n" {
            break;
        }
        let name = header.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "proxy-connection" {
            head.push_str(&header);
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.write_all(head.as_bytes())?;
    let mut server_reader = server.try_clone()?;
    let mut client_writer = client.try_clone()?;
    let answer = thread::spawn(move || {
        let _ = io::copy(&mut server_reader, &mut client_writer);
        let _ = client_writer.shutdown(Shutdown::Both);
    });
    // The rest of this request (its body), then nothing: the server closes.
    let mut rest = reader.take(u64::MAX);
    let _ = io::copy(&mut rest, &mut server);
    let _ = answer.join();
    Ok(())
}

//! [`EchoServer`]: a hostile server that quotes the client's credentials
//! back in every place a server's words reach the user.
//!
//! Each request is answered from its path, `/<echo>/<cut>/...`: the echo
//! text (the `Authorization` header, the decoded `user:token` and the token
//! alone, then the request line) is cut after `<cut>` bytes, as a server
//! closing the connection mid-token would leave it, and sent as the body of
//! a 401, 403 or 500, as an `ERR` pkt-line in a ref advertisement, or as a
//! forge API's JSON error. One request per connection; nothing is kept.

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::thread;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::http;

/// Where the echo lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// The body of `401 Unauthorized`.
    Unauthorized,
    /// The body of `403 Forbidden`.
    Forbidden,
    /// The body of `500 Internal Server Error`.
    ServerError,
    /// An `ERR` pkt-line after the smart-HTTP service line.
    ErrPacket,
    /// `{"message": ...}` with a 403, as forge APIs answer.
    ForgeJson,
}

impl Echo {
    pub const ALL: [Echo; 5] = [
        Echo::Unauthorized,
        Echo::Forbidden,
        Echo::ServerError,
        Echo::ErrPacket,
        Echo::ForgeJson,
    ];

    fn name(self) -> &'static str {
        match self {
            Echo::Unauthorized => "401",
            Echo::Forbidden => "403",
            Echo::ServerError => "500",
            Echo::ErrPacket => "err",
            Echo::ForgeJson => "json",
        }
    }

    fn parse(name: &str) -> Option<Echo> {
        Echo::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The text echoed for a request carrying `authorization`, before the cut.
pub fn echo_text(authorization: &str, request_line: &str) -> String {
    let pair = authorization
        .strip_prefix("Basic ")
        .and_then(|b| BASE64.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let token = pair.split_once(':').map_or("", |(_, t)| t);
    format!("denied: Authorization: {authorization}\nuser:token {pair}\ntoken {token}\nfor {request_line}\n")
}

/// A running echo server on 127.0.0.1; its thread ends with the process.
pub struct EchoServer {
    port: u16,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    if let Ok(Some(head)) = http::read_head(&mut reader) {
                        let _ = answer(&head, stream);
                    }
                });
            }
        });
        EchoServer { port }
    }

    /// A URL whose requests are answered with `echo`, cut after `cut` bytes.
    pub fn url(&self, echo: Echo, cut: usize, rest: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}/{cut}/{rest}",
            self.port,
            echo.name()
        )
    }
}

fn answer(head: &http::RequestHead, mut stream: std::net::TcpStream) -> std::io::Result<()> {
    let mut parts = head.path().trim_start_matches('/').splitn(3, '/');
    let (Some(echo), Some(cut)) = (
        parts.next().and_then(Echo::parse),
        parts.next().and_then(|c| c.parse::<usize>().ok()),
    ) else {
        return http::write_simple_response(&mut stream, 404, "Not Found", &[], b"", true);
    };
    let request_line = format!("{} {}", head.method, head.target);
    let text = echo_text(head.header("Authorization").unwrap_or(""), &request_line);
    let mut cut = cut.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let text = &text[..cut];
    let (status, reason, content_type, body) = match echo {
        Echo::Unauthorized => (401, "Unauthorized", "text/plain", text.as_bytes().to_vec()),
        Echo::Forbidden => (403, "Forbidden", "text/plain", text.as_bytes().to_vec()),
        Echo::ServerError => (
            500,
            "Internal Server Error",
            "text/plain",
            text.as_bytes().to_vec(),
        ),
        Echo::ErrPacket => {
            let service = if head.query().contains("receive-pack") {
                "git-receive-pack"
            } else {
                "git-upload-pack"
            };
            let mut body = pkt(format!("# service={service}\n").as_bytes());
            body.extend_from_slice(b"0000");
            body.extend(pkt(format!("ERR {text}").as_bytes()));
            (200, "OK", service, body)
        }
        Echo::ForgeJson => {
            let body = serde_json::json!({ "message": text }).to_string();
            (403, "Forbidden", "application/json", body.into_bytes())
        }
    };
    let content_type = match content_type {
        "git-upload-pack" => "application/x-git-upload-pack-advertisement",
        "git-receive-pack" => "application/x-git-receive-pack-advertisement",
        other => other,
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nWWW-Authenticate: Basic realm=\"echo\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.flush()
}

fn pkt(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data);
    out
}

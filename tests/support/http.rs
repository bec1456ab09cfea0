//! The HTTP/1.1 wire format, as much of it as git clients use: request heads,
//! `Content-Length` and chunked request bodies, chunked responses.

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted. Git's lines are short; the
/// limit only keeps a confused client from growing a buffer without bound.
const MAX_LINE: u64 = 64 * 1024;
/// Most header lines accepted in one request head, for the same reason.
const MAX_HEADERS: usize = 100;

/// The request line and headers of one request.
#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: String,
    headers: Vec<(String, String)>,
}

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

impl RequestHead {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path part of the request target, still percent-encoded.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query part of the request target, without the `?`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn content_length(&self) -> io::Result<Option<u64>> {
        self.header("Content-Length")
            .map(|v| v.trim().parse().map_err(|_| invalid("bad Content-Length")))
            .transpose()
    }

    pub fn is_chunked(&self) -> bool {
        // Chunked must be the last coding; git never sends any other.
        self.header("Transfer-Encoding").is_some_and(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
    }

    pub fn framing(&self) -> io::Result<Framing> {
        // RFC 9112 6.3: Transfer-Encoding overrides Content-Length.
        if self.is_chunked() {
            return Ok(Framing::Chunked);
        }
        Ok(match self.content_length()? {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        })
    }

    /// Whether the connection must be closed after this exchange.
    pub fn wants_close(&self) -> bool {
        let has_token = |token: &str| {
            self.header("Connection")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if self.version == "HTTP/1.0" {
            !has_token("keep-alive")
        } else {
            has_token("close")
        }
    }

    pub fn expects_continue(&self) -> bool {
        self.header("Expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    }
}

/// Reads one request head. `Ok(None)` means the client closed the connection
/// cleanly between requests.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<RequestHead>> {
    // RFC 9112 2.2: empty lines before a request line are to be ignored.
    let request_line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if !line.is_empty() => break line,
            Some(_) => {}
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid("only HTTP/1.x is supported"));
    }

    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("connection closed in headers"))?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(invalid("too many headers"));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("bad header"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers,
    }))
}

/// Reads one CRLF- (or bare LF-) terminated line without its terminator.
/// `Ok(None)` at end of stream before any byte.
pub fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(invalid("line too long or truncated"));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// A request body, limited to what its framing says belongs to it, so that the
/// bytes of the next request on a kept-alive connection stay unread.
pub struct BodyReader<'a, R> {
    inner: &'a mut R,
    framing: Framing,
    /// Bytes left in the body (length framing) or in the current chunk.
    remaining: u64,
    /// Chunked only: the last chunk and trailers have been read.
    done: bool,
}

impl<'a, R: BufRead> BodyReader<'a, R> {
    pub fn new(inner: &'a mut R, framing: Framing) -> Self {
        let remaining = match framing {
            Framing::Length(n) => n,
            Framing::None | Framing::Chunked => 0,
        };
        BodyReader {
            inner,
            framing,
            remaining,
            done: framing == Framing::None,
        }
    }

    /// Starts the next chunk; returns false after the last one.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let line = read_line(self.inner)?.ok_or_else(truncated)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size > 0 {
            self.remaining = size;
            return Ok(true);
        }
        // Trailers are allowed after the last chunk; git sends none, and
        // http-backend would not want them.
        while !read_line(self.inner)?.ok_or_else(truncated)?.is_empty() {}
        Ok(false)
    }
}

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Only chunked framing gets here: a length body is done at zero.
            if !self.next_chunk()? {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(truncated());
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            match self.framing {
                Framing::Chunked => {
                    if !read_line(self.inner)?.ok_or_else(truncated)?.is_empty() {
                        return Err(invalid("chunk not followed by CRLF"));
                    }
                }
                _ => self.done = true,
            }
        }
        Ok(n)
    }
}

pub fn write_chunk(writer: &mut impl Write, data: &[u8]) -> io::Result<()> {
    // A zero-length chunk would end the body.
    if !data.is_empty() {
        write!(writer, "{:x}\r\n", data.len())?;
        writer.write_all(data)?;
        writer.write_all(b"\r\n")?;
    }
    Ok(())
}

pub fn write_last_chunk(writer: &mut impl Write) -> io::Result<()> {
    writer.write_all(b"0\r\n\r\n")
}

/// Writes a complete response with a fixed body.
pub fn write_simple_response(
    writer: &mut impl Write,
    status: u16,
    reason: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    write!(writer, "HTTP/1.1 {status} {reason}\r\n")?;
    for (name, value) in extra_headers {
        write!(writer, "{name}: {value}\r\n")?;
    }
    write!(
        writer,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if close { "close" } else { "keep-alive" }
    )?;
    writer.write_all(body)?;
    writer.flush()
}

pub fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "request body truncated")
}

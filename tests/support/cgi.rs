//! Running git's `http-backend` as a CGI program.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;

use super::http;

/// Where `git http-backend` lives. It is run directly, as a web server would,
/// rather than as `git http-backend`, so nothing but us sets its environment.
pub fn backend_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("run `git --exec-path`; is git installed?");
        assert!(out.status.success(), "`git --exec-path` failed");
        let exec_path = String::from_utf8(out.stdout).expect("exec path is UTF-8");
        Path::new(exec_path.trim()).join("git-http-backend")
    })
}

/// The CGI meta-variables of one request.
pub struct CgiRequest<'a> {
    pub project_root: &'a Path,
    pub method: &'a str,
    /// Percent-decoded, as CGI requires.
    pub path_info: OsString,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    /// Unset for chunked bodies: http-backend then reads its stdin to EOF.
    pub content_length: Option<u64>,
    pub content_encoding: Option<&'a str>,
    /// The `Git-Protocol` header, when the server is to honour it.
    pub git_protocol: Option<&'a str>,
    pub remote_user: Option<&'a str>,
    pub remote_addr: IpAddr,
    pub server_protocol: &'a str,
}

/// Starts http-backend for one request with all three standard streams piped.
pub fn spawn(req: &CgiRequest<'_>) -> io::Result<Child> {
    let mut cmd = Command::new(backend_path());
    // Start from nothing: a developer's GIT_DIR, GIT_CONFIG_* or
    // GIT_TRACE would otherwise leak into the server and change what it does.
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        // No user config either: HOME is the server root, which has none.
        .env("HOME", req.project_root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env("GIT_PROJECT_ROOT", req.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", req.server_protocol)
        .env("REQUEST_METHOD", req.method)
        .env("PATH_INFO", &req.path_info)
        .env("QUERY_STRING", req.query)
        .env("REMOTE_ADDR", req.remote_addr.to_string());
    if let Some(value) = req.content_type {
        cmd.env("CONTENT_TYPE", value);
    }
    if let Some(value) = req.content_length {
        cmd.env("CONTENT_LENGTH", value.to_string());
    }
    if let Some(value) = req.content_encoding {
        cmd.env("HTTP_CONTENT_ENCODING", value);
    }
    if let Some(value) = req.git_protocol {
        // http-backend hands the CGI form on to upload-pack as GIT_PROTOCOL;
        // setting GIT_PROTOCOL as well makes the version reach upload-pack
        // whichever of the two this git reads.
        cmd.env("HTTP_GIT_PROTOCOL", value)
            .env("GIT_PROTOCOL", value);
    }
    if let Some(user) = req.remote_user {
        // http-backend enables receive-pack only for authenticated users.
        cmd.env("REMOTE_USER", user);
    }
    cmd.current_dir(req.project_root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Copies a CGI's stderr to ours line by line, so that a test failure shows
/// what git complained about next to the test's own output.
pub fn forward_stderr(stderr: impl Read + Send + 'static) {
    thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            eprintln!("[git-http-backend] {}", String::from_utf8_lossy(&line));
        }
    });
}

/// The header block of a CGI response.
pub struct CgiHead {
    pub status: u16,
    pub reason: String,
    /// Everything but `Status`, in order.
    pub headers: Vec<(String, String)>,
}

pub fn read_head(reader: &mut impl BufRead) -> io::Result<CgiHead> {
    let mut head = CgiHead {
        status: 200,
        reason: "OK".to_owned(),
        headers: Vec::new(),
    };
    loop {
        let line = http::read_line(reader)?
            .ok_or_else(|| http::invalid("CGI ended before its headers did"))?;
        if line.is_empty() {
            return Ok(head);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| http::invalid("malformed CGI header"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Status") {
            let (code, reason) = value.split_once(' ').unwrap_or((value, ""));
            head.status = code.parse().map_err(|_| http::invalid("bad CGI Status"))?;
            head.reason = reason.trim().to_owned();
        } else {
            head.headers.push((name.to_owned(), value.to_owned()));
        }
    }
}

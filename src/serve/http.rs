//! The HTTP server of `git-relay serve`: webhook deliveries in, health,
//! status and metrics out.
//!
//! It owns only what is HTTP: routes, the body size limit, how long a
//! client may take to send a request, and shutting down without cutting
//! a request in flight. What a delivery means (which forge, a valid
//! signature, which mirror to queue) is the [`Service`]'s, which the
//! server calls synchronously: it verifies and queues, never runs a
//! mirror, so it can run on the server's own threads.
//!
//! axum over tokio, on a runtime of its own (two worker threads) that
//! [`serve`] builds and blocks on, so the rest of serve stays synchronous
//! and mirrors run on plain threads as everywhere else in the crate.
//!
//! Slow clients: `axum::serve` gives no way to set hyper's header read
//! timeout (it builds hyper's connection itself, without a timer, so that
//! timeout is inert). Each connection is instead wrapped in [`Deadline`]:
//! from its accept, and again after each response is written, the client
//! has [`READ_TIMEOUT`] to send a whole request, headers and body; a read
//! or write still waiting after that fails, and hyper drops the
//! connection. That bounds header and body reading alike, closes idle
//! keep-alive connections, and lets a graceful stop finish in bounded time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use super::status::Status;

/// How long a client has to send one request, headers and body, counted
/// from the connection's accept or the end of the previous response.
/// GitHub gives up on a delivery after 10 seconds; 4 MiB in 30 seconds
/// needs about 140 kB/s.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server asks of the rest of serve.
pub(crate) trait Service: Send + Sync + 'static {
    /// A delivery to /hooks/<segment>, its body within max_body. Cheap:
    /// verifies and queues, never runs a mirror. `segment` is what the
    /// client sent (percent-decoded), not necessarily a forge.
    fn webhook(&self, segment: &str, headers: &HeaderMap, body: &[u8]) -> Reply;
    /// A delivery refused for its size before it was read whole (counted
    /// as "oversized").
    fn oversized(&self, segment: &str);
    /// Whether /readyz answers 200 (else 503).
    fn ready(&self) -> bool;
    /// What /status, /status.json and /metrics render.
    fn status(&self) -> &Status;
}

/// The answer to a webhook delivery, sent as text/plain with a final
/// newline (redacted, as everything the process writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// Serves until `stop` resolves (or its sender is dropped), then finishes
/// the requests in flight and returns. Builds its own tokio runtime (two
/// worker threads), so callers stay synchronous.
pub(crate) fn serve(
    listener: std::net::TcpListener,
    service: Arc<dyn Service>,
    max_body: usize,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> io::Result<()> {
    serve_with(listener, service, max_body, stop, READ_TIMEOUT)
}

fn serve_with(
    listener: std::net::TcpListener,
    service: Arc<dyn Service>,
    max_body: usize,
    stop: tokio::sync::oneshot::Receiver<()>,
    read_timeout: Duration,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("serve-http")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = Listener {
            inner: TcpListener::from_std(listener)?,
            read_timeout,
        };
        let app = router(App { service, max_body });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await
    })
}

struct App {
    service: Arc<dyn Service>,
    max_body: usize,
}

fn router(app: App) -> Router {
    Router::new()
        .route("/hooks/{segment}", post(hook))
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok") }))
        .route("/readyz", get(readyz))
        .route("/status", get(status_page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(Arc::new(app))
}

async fn hook(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // A declared length over the limit is refused before a byte of the
    // body is read; hyper then closes the connection rather than drain it.
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        app.service.oversized(&segment);
        return too_large(app.max_body);
    }
    let body = match read_body(body, app.max_body).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            app.service.oversized(&segment);
            return too_large(app.max_body);
        }
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        }
    };
    let reply = app.service.webhook(&segment, &parts.headers, &body);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, &reply.message)
}

/// The whole body, or `None` as soon as it is known to exceed `limit`
/// (a chunked body declares no length): at most `limit` bytes plus one
/// frame are ever held.
async fn read_body(mut body: Body, limit: usize) -> Result<Option<Vec<u8>>, axum::Error> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > limit {
                return Ok(None);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Some(out))
}

fn too_large(limit: usize) -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than {limit} bytes"),
    )
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.service.ready() {
        text(StatusCode::OK, "ready")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn status_page(State(app): State<Arc<App>>) -> Response {
    typed("text/html; charset=utf-8", app.service.status().html())
}

async fn status_json(State(app): State<Arc<App>>) -> Response {
    typed("application/json", app.service.status().json())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    typed(
        "text/plain; version=0.0.4; charset=utf-8",
        app.service.status().prometheus(),
    )
}

fn typed(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, message: &str) -> Response {
    let body = format!("{}\n", crate::auth::redact(message));
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The listening socket, handing out connections under a [`Deadline`].
struct Listener {
    inner: TcpListener,
    read_timeout: Duration,
}

impl axum::serve::Listener for Listener {
    type Io = Deadline;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Deadline, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (Deadline::new(stream, self.read_timeout), addr);
                }
                // The client gave up between its connect and our accept:
                // nothing to do with the listener.
                Err(e) if is_connection_error(&e) => {}
                // Out of descriptors or memory: accepting again at once
                // would spin; the connections being served will free some.
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection whose reads and writes fail once the client has had
/// `timeout` since the connection opened or the last bytes were written
/// to it. Reads do not push the deadline: a client trickling a byte at a
/// time still has to finish its request in time.
struct Deadline {
    inner: TcpStream,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Deadline {
    fn new(inner: TcpStream, timeout: Duration) -> Deadline {
        Deadline {
            inner,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// What an operation that is still waiting returns: an error once the
    /// deadline passed, else still waiting (the timer wakes the task).
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            let timeout = self.timeout;
            self.timer.as_mut().reset(Instant::now() + timeout);
        }
    }
}

impl AsyncRead for Deadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }
}

impl AsyncWrite for Deadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.waiting(cx),
            ready => {
                this.wrote(&ready);
                ready
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.waiting(cx),
            ready => {
                this.wrote(&ready);
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::thread::JoinHandle;
    use std::time::Instant;

    use super::*;

    /// A service that records what the server asked of it.
    struct Fake {
        calls: Mutex<Vec<String>>,
        ready: AtomicBool,
        status: Status,
    }

    impl Fake {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Service for Fake {
        fn webhook(&self, segment: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
            let event = headers
                .get("x-event")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            self.calls.lock().unwrap().push(format!(
                "webhook {segment} {event} {}",
                String::from_utf8_lossy(body)
            ));
            if segment == "github" {
                Reply {
                    status: 202,
                    message: "queued".into(),
                }
            } else {
                Reply {
                    status: 404,
                    message: format!("no webhook is configured for {segment}"),
                }
            }
        }

        fn oversized(&self, segment: &str) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("oversized {segment}"));
        }

        fn ready(&self) -> bool {
            self.ready.load(Ordering::SeqCst)
        }

        fn status(&self) -> &Status {
            &self.status
        }
    }

    struct Server {
        addr: SocketAddr,
        fake: Arc<Fake>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<JoinHandle<io::Result<()>>>,
    }

    const MAX_BODY: usize = 1000;

    fn start(read_timeout: Duration) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake {
            calls: Mutex::new(Vec::new()),
            ready: AtomicBool::new(true),
            status: Status::new(vec![(
                "widgets".into(),
                "https://src.example/widgets".into(),
                "https://dst.example/widgets".into(),
            )]),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let service: Arc<dyn Service> = fake.clone();
        let thread = std::thread::spawn(move || {
            serve_with(listener, service, MAX_BODY, stopped, read_timeout)
        });
        Server {
            addr,
            fake,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        /// Waits (at most 10 s) for `serve` to return, and gives its result.
        fn join(&mut self) -> io::Result<()> {
            let thread = self.thread.take().unwrap();
            let begun = Instant::now();
            while !thread.is_finished() {
                assert!(
                    begun.elapsed() < Duration::from_secs(10),
                    "serve did not return"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            thread.join().unwrap()
        }

        fn stop(&mut self) -> io::Result<()> {
            let _ = self.stop.take().unwrap().send(());
            self.join()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    struct Answer {
        status: u16,
        content_type: String,
        body: String,
    }

    fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        Answer {
            status: response.status(),
            content_type: response.header("content-type").unwrap_or("").to_owned(),
            body: response.into_string().unwrap(),
        }
    }

    fn get(server: &Server, path: &str) -> Answer {
        answer(
            ureq::get(&server.url(path))
                .timeout(Duration::from_secs(10))
                .call(),
        )
    }

    fn post(server: &Server, path: &str, body: &[u8]) -> Answer {
        answer(
            ureq::post(&server.url(path))
                .timeout(Duration::from_secs(10))
                .set("X-Event", "push")
                .send_bytes(body),
        )
    }

    /// Sends `request` as is and reads until the server closes the
    /// connection (or 10 s pass).
    fn raw(server: &Server, request: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        read_all(&mut stream)
    }

    fn read_all(stream: &mut std::net::TcpStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0; 4096];
        // A reset after the answer (unread request bytes) ends it too.
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn each_route_answers() {
        let mut server = start(READ_TIMEOUT);
        let health = get(&server, "/healthz");
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        assert!(health.content_type.starts_with("text/plain"));

        assert_eq!(get(&server, "/readyz").status, 200);
        server.fake.ready.store(false, Ordering::SeqCst);
        let ready = get(&server, "/readyz");
        assert_eq!((ready.status, ready.body.as_str()), (503, "not ready\n"));

        let page = get(&server, "/status");
        assert_eq!(page.status, 200);
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(page.body.contains("<td>widgets</td>"), "{}", page.body);

        let json = get(&server, "/status.json");
        assert_eq!(json.content_type, "application/json");
        let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
        assert_eq!(doc["mirrors"][0]["name"], "widgets");

        server.fake.status.set_queue(7, 2);
        let metrics = get(&server, "/metrics");
        assert_eq!(
            metrics.content_type,
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(metrics.body.contains("\ngit_relay_serve_queue_depth 7\n"));

        let hook = post(&server, "/hooks/github", b"{\"ref\":\"refs/heads/main\"}");
        assert_eq!((hook.status, hook.body.as_str()), (202, "queued\n"));
        let other = post(&server, "/hooks/nowhere", b"{}");
        assert_eq!(other.status, 404);
        assert_eq!(other.body, "no webhook is configured for nowhere\n");
        assert_eq!(
            server.fake.calls(),
            [
                "webhook github push {\"ref\":\"refs/heads/main\"}",
                "webhook nowhere push {}",
            ]
        );
        server.stop().unwrap();
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let server = start(READ_TIMEOUT);
        for path in [
            "/",
            "/nope",
            "/hooks",
            "/hooks/",
            "/hooks/github/x",
            "/status.html",
        ] {
            assert_eq!(get(&server, path).status, 404, "{path}");
        }
        assert_eq!(get(&server, "/hooks/github").status, 405);
        let post_health = post(&server, "/healthz", b"");
        assert_eq!(post_health.status, 405);
        assert_eq!(post_health.body, "method not allowed\n");
        assert_eq!(post(&server, "/metrics", b"").status, 405);
        assert!(server.fake.calls().is_empty());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_unread() {
        let server = start(READ_TIMEOUT);
        // Headers only: the body is never sent, so an answer proves it
        // was not waited for.
        let request = format!(
            "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let begun = Instant::now();
        let response = raw(&server, request.as_bytes());
        assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
        assert!(response.ends_with("larger than 1000 bytes\n"), "{response}");
        assert!(begun.elapsed() < Duration::from_secs(5));
        assert_eq!(server.fake.calls(), ["oversized github"]);
    }

    #[test]
    fn a_chunked_body_over_the_limit_is_refused() {
        let server = start(READ_TIMEOUT);
        let chunked = |sizes: &[usize]| {
            let mut request = b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for size in sizes {
                request.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                request.extend(std::iter::repeat_n(b'a', *size));
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
            request
        };
        // Exactly the limit, in pieces: accepted whole.
        let response = raw(&server, &chunked(&[600, 400]));
        assert!(response.starts_with("HTTP/1.1 202 "), "{response}");
        // One byte more: refused.
        let response = raw(&server, &chunked(&[600, 400, 1]));
        assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
        let calls = server.fake.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(
            calls[0],
            format!("webhook github - {}", "a".repeat(MAX_BODY))
        );
        assert_eq!(calls[1], "oversized github");
    }

    #[test]
    fn a_slow_client_is_cut_off() {
        let server = start(Duration::from_millis(300));
        // Headers that never end, then a body that never ends.
        for request in [
            "POST /hooks/github HTTP/1.1\r\nHost: x\r\n".to_owned(),
            "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":"
                .to_owned(),
        ] {
            let begun = Instant::now();
            let response = raw(&server, request.as_bytes());
            let took = begun.elapsed();
            assert!(!response.contains(" 202 "), "{response}");
            assert!(
                took >= Duration::from_millis(250) && took < Duration::from_secs(5),
                "{took:?}"
            );
        }
        assert!(server.fake.calls().is_empty());
        // The server still serves.
        assert_eq!(get(&server, "/healthz").status, 200);
    }

    #[test]
    fn stop_lets_a_request_in_flight_finish_and_returns() {
        let mut server = start(Duration::from_secs(60));
        // An idle keep-alive connection must not hold the stop up.
        let mut idle = std::net::TcpStream::connect(server.addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0; 512];
        let n = idle.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));

        // A delivery whose body is half sent when the stop comes.
        let mut busy = std::net::TcpStream::connect(server.addr).unwrap();
        busy.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        busy.write_all(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let _ = server.stop.take().unwrap().send(());
        std::thread::sleep(Duration::from_millis(200));
        busy.write_all(b"cd").unwrap();
        let response = read_all(&mut busy);
        assert!(response.starts_with("HTTP/1.1 202 "), "{response}");
        server.join().unwrap();
        assert_eq!(server.fake.calls(), ["webhook github - abcd"]);
        // And nothing listens any more.
        assert!(std::net::TcpStream::connect(server.addr).is_err());
    }

    #[test]
    fn a_reply_is_redacted() {
        let server = start(READ_TIMEOUT);
        crate::auth::register_secret("http-reply-s3cr3t-value");
        let reply = post(&server, "/hooks/http-reply-s3cr3t-value", b"{}");
        assert_eq!(reply.status, 404);
        assert!(reply.body.starts_with("no webhook is configured for "));
        assert!(!reply.body.contains("s3cr3t"), "{}", reply.body);
    }

    #[test]
    fn dropping_the_stop_sender_stops_too() {
        let mut server = start(READ_TIMEOUT);
        drop(server.stop.take());
        server.join().unwrap();
    }
}

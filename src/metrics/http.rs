//! The metrics HTTP endpoint (`chatmon serve --metrics ADDR`, `GET
//! /metrics`): a small hand-written HTTP/1.1 server, so that monitoring needs
//! no web framework.
//!
//! The endpoint is one accept thread (`chatmon-metrics`) plus one short-lived
//! thread per scrape, at most [`MAX_INFLIGHT`] at a time: a peer that connects
//! and says nothing holds one of those for at most [`REQUEST_TIMEOUT`], never
//! the endpoint. While all are busy, new connections wait in the listen
//! backlog (refusing them with a `503` would mean closing sockets with the
//! request unread, which resets the connection before the answer is read).
//! Requests are bounded ([`MAX_REQUEST`]); every response closes the
//! connection, which is what a scraper polling every few seconds wants.

use std::io;
use std::net::{Shutdown as SocketShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;

use crate::accept::{self, Accept};
use crate::server::Monitor;
use crate::shutdown::Shutdown;
use crate::tls::server::ReloadableServerConfig;
use crate::tls::stream::{ServerStream, TlsStream};

use super::{Format, registry, render};

/// Longest request head (request line and headers) read; a scraper's is a
/// few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A request must be complete this long after the connection is accepted.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A response write that makes no progress for this long is abandoned.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait to be accepted, so that a flood of idle
/// connections cannot pile up threads.
pub const MAX_INFLIGHT: usize = 8;
/// Stack of a per-request thread: it formats a few kilobytes of text into a
/// heap `String`, so this is plenty.
const REQUEST_STACK: usize = 128 * 1024;
/// How long a stop waits for scrapes in progress: they end by themselves
/// within their timeouts, and a second is enough for any real scrape to
/// finish its write.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// How long one wait for a free request slot lasts before the accept loop
/// looks at the shutdown signal again.
const SLOT_WAIT: Duration = Duration::from_millis(100);
/// After the response, how long the lingering close reads what the client
/// still sends, per read.
const LINGER_READ_TIMEOUT: Duration = Duration::from_millis(200);
/// Most reads of the lingering close.
const LINGER_READS: usize = 16;
/// Size of one read of the request head.
const HEAD_CHUNK: usize = 2048;

/// The HTTP endpoint. Stops on [`MetricsServer::shutdown`] or drop.
pub struct MetricsServer {
    local_addr: SocketAddr,
    /// Stop signal of the accept thread; request threads hold a guard of it.
    shutdown: Shutdown,
    accept: Option<thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves the server's metrics at `GET /metrics`.
    pub fn start(addr: SocketAddr, monitor: Monitor) -> io::Result<MetricsServer> {
        Self::with_registry(addr, registry(monitor))
    }

    /// Binds `addr` and serves the server's metrics at `GET /metrics` over
    /// HTTPS with `tls` (`--metrics-tls`: the chat port's certificate, so a
    /// SIGHUP reload renews both).
    pub fn start_tls(
        addr: SocketAddr,
        monitor: Monitor,
        tls: Arc<ReloadableServerConfig>,
    ) -> io::Result<MetricsServer> {
        Self::serve(addr, registry(monitor), Some(tls))
    }

    /// Binds `addr` and serves `registry` at `GET /metrics`.
    pub fn with_registry(addr: SocketAddr, registry: Registry) -> io::Result<MetricsServer> {
        Self::serve(addr, registry, None)
    }

    fn serve(
        addr: SocketAddr,
        registry: Registry,
        tls: Option<Arc<ReloadableServerConfig>>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for metrics on {addr}: {e}"),
            )
        })?;
        let local_addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let mut endpoint = Endpoint {
            shutdown: shutdown.clone(),
            registry: Arc::new(registry),
            tls,
        };
        let accept = thread::Builder::new()
            .name("chatmon-metrics".into())
            .spawn(move || {
                let s = endpoint.shutdown.clone();
                accept::run(&listener, &s, &mut endpoint);
            })
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the metrics thread: {e}"))
            })?;
        Ok(MetricsServer {
            local_addr,
            shutdown,
            accept: Some(accept),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and waits (briefly) for scrapes in progress.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        self.shutdown.wait_idle(STOP_WAIT);
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The metrics listener's handler for [`accept::run`].
struct Endpoint {
    shutdown: Shutdown,
    registry: Arc<Registry>,
    /// HTTPS when set: each scrape takes the config of the moment.
    tls: Option<Arc<ReloadableServerConfig>>,
}

impl Accept for Endpoint {
    fn ready(&mut self, shutdown: &Shutdown) {
        // Full: leave new peers in the backlog until a request ends.
        while !shutdown.wait_below(MAX_INFLIGHT, SLOT_WAIT) && !shutdown.is_triggered() {}
    }

    fn accepted(&mut self, stream: TcpStream, _peer: SocketAddr) {
        // Only this thread adds, so the room `ready` saw is still there.
        let slot = self.shutdown.track();
        let r = self.registry.clone();
        let tls = self.tls.as_ref().map(|t| t.current());
        let spawned = thread::Builder::new()
            .name("chatmon-metrics-req".into())
            .stack_size(REQUEST_STACK)
            .spawn(move || {
                let _slot = slot;
                serve_one(stream, &r, tls);
            });
        // A failed spawn drops the closure, and with it the stream and the
        // slot: the scraper sees a closed connection and retries next time.
        drop(spawned);
    }
}

/// Builds a whole response, so that it goes out in one write.
fn response(
    status: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    head_only: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The peer closed before sending anything: nothing to answer.
    Empty,
    TooLarge,
    TimedOut,
    /// Closed mid-request, or a socket error.
    Broken,
}

/// Reads up to the blank line that ends the request head, at most
/// [`MAX_REQUEST`] bytes, by `deadline`.
fn read_head(stream: &ServerStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; HEAD_CHUNK];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::TimedOut);
        }
        stream
            .socket()
            .set_read_timeout(Some(left))
            .map_err(|_| HeadError::Broken)?;
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Empty),
            Ok(0) => return Err(HeadError::Broken),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::TimedOut);
            }
            Err(_) => return Err(HeadError::Broken),
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or a bare `\n\n` from hand-typed
/// requests), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What to answer to one request head.
fn answer(head: &[u8], registry: &Registry) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let plain = "text/plain; charset=utf-8";
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return response("400 Bad Request", plain, b"bad request\n", &[], false);
    }
    let head_only = method == "HEAD";
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if path != "/metrics" {
        return response(
            "404 Not Found",
            plain,
            b"not found: metrics are at /metrics\n",
            &[],
            head_only,
        );
    }
    if method != "GET" && !head_only {
        return response(
            "405 Method Not Allowed",
            plain,
            b"method not allowed: use GET\n",
            &[("Allow", "GET, HEAD")],
            false,
        );
    }
    let accept = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("accept").then(|| v.trim())
    });
    let format = Format::negotiate(accept);
    let body = render(registry, format);
    response(
        "200 OK",
        format.content_type(),
        body.as_bytes(),
        &[],
        head_only,
    )
}

fn serve_one(stream: TcpStream, registry: &Registry, tls: Option<Arc<rustls::ServerConfig>>) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let stream = match tls {
        None => ServerStream::Plain(stream),
        // The handshake comes out of the request's time: a scraper that
        // stalls in it holds a slot no longer than one that stalls after.
        Some(config) => match TlsStream::accept(stream, config, REQUEST_TIMEOUT) {
            Ok(s) => ServerStream::Tls(Box::new(s)),
            Err(_) => return,
        },
    };
    let reply = match read_head(&stream, deadline) {
        Ok(head) => answer(&head, registry),
        Err(HeadError::TooLarge) => response(
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            b"request head too large\n",
            &[],
            false,
        ),
        Err(HeadError::TimedOut) => response(
            "408 Request Timeout",
            "text/plain; charset=utf-8",
            b"request not complete in time\n",
            &[],
            false,
        ),
        Err(HeadError::Empty | HeadError::Broken) => return,
    };
    if stream.write_all(&reply).is_err() {
        return;
    }
    if let Some(tls) = stream.tls() {
        tls.try_close_notify();
    }
    // Lingering close: closing with unread request bytes (a POST body, a
    // pipelined request) would reset the connection and could destroy the
    // response before the client reads it. Half-close, then drain briefly.
    let _ = stream.shutdown(SocketShutdown::Write);
    let _ = stream.socket().set_read_timeout(Some(LINGER_READ_TIMEOUT));
    let mut sink = [0u8; 4096];
    for _ in 0..LINGER_READS {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_found_and_answered() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nxx"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        let r = Registry::default();
        let status = |req: &[u8]| {
            let a = answer(req, &r);
            String::from_utf8_lossy(&a)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK");
        assert_eq!(
            status(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(status(b"hello\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        let head = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n", &r);
        assert!(String::from_utf8_lossy(&head).ends_with("\r\n\r\n"));
    }
}

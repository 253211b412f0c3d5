//! Opening a row's connections before its clock starts: a bounded number of
//! connects at a time, then a plain probe or a chat hello on each, so that
//! every client is being served when the row starts. What happens after is
//! the driver's.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::tls::client::{ClientStream, TlsClient};

use super::reply::{plain_payload, plain_reply_matches};
use super::samples::ClientResult;
use super::{BenchConfig, BenchError, MAX_ANSWER, Mode, descriptor_hint, quote};
use crate::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};

/// Connects in flight at once: a burst of 10,000 SYNs overflows the listen
/// backlog and turns into one-second retransmits that would look like latency.
const CONNECT_CONCURRENCY: usize = 128;
/// Read size of the plain probe: the answer to one short payload.
const PROBE_READ: usize = 512;
/// Room for a typical welcome line before the buffer grows.
const WELCOME_CAPACITY: usize = 256;

/// Opens every connection of a row (and says hello in chat mode), a bounded
/// number at a time. Connections that fail are recorded as errors in
/// `results`; running out of descriptors ends the row with a clear error.
pub(crate) async fn connect_all(
    config: &BenchConfig,
    targets: &[String],
    clients: usize,
    limit: u64,
    local: bool,
    results: &mut Vec<ClientResult>,
) -> Result<Vec<(usize, ClientStream)>, BenchError> {
    let target = targets.join(", ");
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..clients {
        let permits = permits.clone();
        // Round-robin over the servers; the index goes with the stream.
        let node = i % targets.len().max(1);
        let target = targets.get(node).cloned().unwrap_or_default();
        let mode = config.mode;
        let timeout = config.timeout;
        let size = config.size;
        let tls = config.tls.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            connect_one(&target, i, mode, size, timeout, tls.as_ref())
                .await
                .map(|s| (node, s))
        });
    }
    let mut conns = Vec::with_capacity(clients);
    let mut fd_exhausted = false;
    let mut first_error: Option<String> = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => conns.push(s),
            Ok(Err(ConnectError::Io(e))) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    fd_exhausted = true;
                }
                let msg = format!("cannot connect to {target}: {e}");
                first_error.get_or_insert_with(|| msg.clone());
                results.push(ClientResult::failed(msg));
            }
            Ok(Err(ConnectError::Refused(why))) => {
                first_error.get_or_insert_with(|| why.clone());
                results.push(ClientResult::failed(why));
            }
            Err(e) => results.push(ClientResult::failed(format!("a connect task failed: {e}"))),
        }
    }
    if fd_exhausted {
        return Err(BenchError::DescriptorLimit {
            connected: conns.len(),
            wanted: clients,
            limit,
            hint: descriptor_hint(local),
        });
    }
    if conns.is_empty() {
        return Err(BenchError::NoConnection {
            server: target.to_string(),
            first_error: first_error.unwrap_or_else(|| "unknown error".into()),
        });
    }
    Ok(conns)
}

enum ConnectError {
    Io(io::Error),
    /// Connected, but the server would not have us (full, or not chatmon).
    Refused(String),
}

async fn connect_one(
    target: &str,
    i: usize,
    mode: Mode,
    size: usize,
    timeout: Duration,
    tls: Option<&TlsClient>,
) -> Result<ClientStream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Err(_) => {
            return Err(ConnectError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {timeout:?}"),
            )));
        }
    };
    // Latency is what we measure: no Nagle delay on small messages.
    let _ = stream.set_nodelay(true);
    let stream = match tls {
        None => ClientStream::Plain(stream),
        Some(tls) => tls
            .open(stream, timeout)
            .await
            .map_err(|e| ConnectError::Refused(format!("TLS with {target}: {e}")))?,
    };
    if mode == Mode::Plain {
        return match tokio::time::timeout(timeout, plain_probe(stream, size)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Refused(format!(
                "no answer from {target} within {timeout:?}"
            ))),
        };
    }
    match tokio::time::timeout(timeout, chat_hello(stream, i)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Refused(format!(
            "no welcome from {target} within {timeout:?}"
        ))),
    }
}

/// One unmeasured round trip before the row starts. A connect completes in
/// the kernel before the server accepts it, so without this the first clients
/// could finish before the last ones are served, and "10,000 clients at once"
/// would not be true at the server. It also finds a server that does not
/// answer `Server received: T` before any figure is taken.
async fn plain_probe(mut stream: ClientStream, size: usize) -> Result<ClientStream, ConnectError> {
    let mut line = plain_payload(size);
    line.push(b'\n');
    stream.write_all(&line).await.map_err(ConnectError::Io)?;
    stream.flush().await.map_err(ConnectError::Io)?;
    // Nothing else is in flight, so every byte up to the newline is the reply.
    let mut got = Vec::with_capacity(line.len() + protocol::REPLY_PREFIX.len());
    let mut buf = [0u8; PROBE_READ];
    while !got.contains(&b'\n') {
        let n = stream.read(&mut buf).await.map_err(ConnectError::Io)?;
        if n == 0 {
            return Err(ConnectError::Refused(
                "the server closed the connection before answering".into(),
            ));
        }
        if got.len() > MAX_ANSWER {
            return Err(ConnectError::Refused(
                "the server's answer is too long".into(),
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    let end = got.iter().position(|&b| b == b'\n').unwrap_or(got.len());
    let reply = got[..end].strip_suffix(b"\r").unwrap_or(&got[..end]);
    let mut seen = false;
    if end + 1 != got.len() || !plain_reply_matches(reply, &line[..line.len() - 1], &mut seen) {
        return Err(ConnectError::Refused(format!(
            "the server does not answer `Server received: T` (it said: {})",
            quote(&got)
        )));
    }
    Ok(stream)
}

async fn chat_hello(mut stream: ClientStream, i: usize) -> Result<ClientStream, ConnectError> {
    let hello = protocol::encode(&ClientMsg::Hello {
        v: PROTOCOL_VERSION,
        name: format!("bench{i}"),
        token: None,
        subscribe: false,
    });
    stream
        .write_all(hello.as_bytes())
        .await
        .map_err(ConnectError::Io)?;
    stream.flush().await.map_err(ConnectError::Io)?;
    // Read byte by byte up to the welcome's newline, so that no byte of a
    // later line is taken from the socket before the client's own framer runs.
    let mut line = Vec::with_capacity(WELCOME_CAPACITY);
    let mut b = [0u8; 1];
    loop {
        let n = stream.read(&mut b).await.map_err(ConnectError::Io)?;
        if n == 0 {
            return Err(ConnectError::Refused(
                "the server closed the connection before its welcome".into(),
            ));
        }
        if b[0] != b'\n' {
            if line.len() > MAX_ANSWER {
                return Err(ConnectError::Refused(
                    "the server's welcome is too long".into(),
                ));
            }
            line.push(b[0]);
            continue;
        }
        match protocol::decode::<ServerMsg>(&line) {
            Ok(ServerMsg::Welcome { .. }) => return Ok(stream),
            Ok(ServerMsg::Error { message }) => {
                return Err(ConnectError::Refused(format!(
                    "the server refused the hello: {message}"
                )));
            }
            Ok(_) => line.clear(),
            Err(_) => {
                return Err(ConnectError::Refused(format!(
                    "the server does not speak the chat protocol (it said: {})",
                    quote(&line)
                )));
            }
        }
    }
}

//! The minimal reference server that `chatmon serve` is measured against:
//! thread-per-client, answers each line `T` with `Server received: T\n`, and
//! nothing else: no log, no relay, no limits beyond the line length.
//!
//! It uses the same line framer and the same per-client layout as chatmon's
//! server (one OS thread, one descriptor, TCP_NODELAY), so the difference
//! between the two is what chatmon adds: logging, accounting, the room.
//!
//! ```text
//! cargo run --release --example reference_server -- --bind 127.0.0.1:7879
//! chatmon bench --server 127.0.0.1:7879 --clients 1,10,100
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use chatmon::protocol::{self, Frame, LineFramer, REPLY_PREFIX};

/// Wait after a failed `accept` (out of descriptors, say) before the next.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);
/// Stack of a client thread: it holds two buffers and a framer, nothing deep.
const CLIENT_STACK: usize = 128 * 1024;
/// Bytes read from a client at once.
const READ_BUF: usize = 16 * 1024;
/// Room for the replies to one read before the buffer grows.
const OUT_CAPACITY: usize = 1024;

fn main() {
    let mut bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7879));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" => match args.next().map(|v| v.parse()) {
                Some(Ok(addr)) => bind = addr,
                _ => fail("--bind needs an address such as 127.0.0.1:7879"),
            },
            "-h" | "--help" => {
                println!("usage: reference_server [--bind ADDR]   (default 127.0.0.1:7879)");
                return;
            }
            other => fail(&format!("unknown argument {other:?} (try --help)")),
        }
    }
    // Thread-per-client holds one descriptor per client: take all we may.
    let limit = chatmon::sys::raise_nofile_limit().unwrap_or(0);
    let listener = match TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => fail(&format!("cannot listen on {bind}: {e}")),
    };
    let addr = listener.local_addr().unwrap_or(bind);
    eprintln!("reference_server: listening on {addr} (descriptor limit {limit})");
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: transient, keep accepting.
                eprintln!("reference_server: accept: {e}");
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let spawned = thread::Builder::new()
            .name("ref-client".into())
            .stack_size(CLIENT_STACK)
            .spawn(move || serve(&stream));
        if let Err(e) = spawned {
            eprintln!("reference_server: cannot start a thread: {e}");
        }
    }
}

/// Answers every line until the peer goes away.
fn serve(stream: &Arc<TcpStream>) {
    let mut framer = LineFramer::new(protocol::DEFAULT_MAX_LINE);
    let mut frames = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Vec::with_capacity(OUT_CAPACITY);
    loop {
        let n = match (&**stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        framer.push(&buf[..n], &mut frames);
        for f in frames.drain(..) {
            if let Frame::Line(line) = f {
                out.extend_from_slice(REPLY_PREFIX.as_bytes());
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }
        // One write per read, as chatmon's server writes each reply at once.
        if !out.is_empty() {
            if (&**stream).write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("reference_server: {msg}");
    std::process::exit(2);
}

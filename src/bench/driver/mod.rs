//! One row of a sweep: connect its clients, start them on one schedule, run
//! each as a task until its messages are sent and answered, and merge what
//! they measured. This file owns the row's shared state and a client's event
//! loop; [`send`] owns the schedule (closed and open loop), [`receive`] the
//! matching of what comes back.

mod receive;
mod send;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::tls::client::ClientStream;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::samples::{self, ClientResult};
use super::{BenchConfig, BenchError, MAX_ANSWER, Mode, Row, Stop, connect, progress, reply};
use crate::protocol::LineFramer;

pub use send::intended_offset;

/// Read buffer per connection; small because there may be 10,000 of them.
const READ_BUF: usize = 4096;
/// How long a chat client keeps reading after the last client finished, for
/// relays still on their way; reset by every read.
const RELAY_DRAIN: Duration = Duration::from_millis(50);
/// [`RELAY_DRAIN`] over several servers: a cross-node relay takes more
/// hops (bridge, NATS, the other bridge), each one a thread wake-up.
const RELAY_DRAIN_NODES: Duration = Duration::from_millis(1000);
/// Time between spawning the clients and the row's time zero, so that every
/// task is spawned before the schedule starts.
const START_DELAY: Duration = Duration::from_millis(20);
/// Room in a client's line limit beyond [`MAX_ANSWER`] for the JSON around a
/// chat line.
const FRAME_SLACK: usize = 1024;

/// What every client task of a row shares.
pub(crate) struct RowShared {
    mode: Mode,
    /// Servers the clients are spread over; above 1, relays are timed
    /// apart for same-node and cross-node pairs.
    nodes: usize,
    /// Open loop at this total rate; `None`: closed loop.
    rate: Option<f64>,
    /// Clients that connected: the open-loop schedule spreads over them.
    clients: usize,
    stop: Stop,
    size: usize,
    timeout: Duration,
    /// Clock base of the chat payload stamps (one process, one clock).
    epoch: Instant,
    /// The row's time zero: every schedule starts here.
    pub(crate) start: Instant,
    /// End of the warm-up: messages intended before it are not measured.
    measure_from: Instant,
    /// Plain payload, the same for every message.
    payload: Vec<u8>,
    /// Measured replies so far, for the progress bar.
    pub(crate) completed: AtomicU64,
    /// Clients still sending; the last one to finish flips `done`.
    sending: AtomicUsize,
    pub(crate) done: watch::Sender<bool>,
}

impl RowShared {
    fn sender_finished(&self) {
        if self.sending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.done.send(true);
        }
    }

    fn relay_drain(&self) -> Duration {
        if self.nodes > 1 {
            RELAY_DRAIN_NODES
        } else {
            RELAY_DRAIN
        }
    }

    fn ns_since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Runs the row of `clients` clients against `target`.
pub(crate) async fn run_row(
    config: &BenchConfig,
    targets: &[String],
    clients: usize,
    limit: u64,
    local: bool,
) -> Result<Row, BenchError> {
    let mut results: Vec<ClientResult> = Vec::new();
    let connecting = Instant::now();
    let conns = connect::connect_all(config, targets, clients, limit, local, &mut results).await?;
    let connected = conns.len();
    let connect_secs = connecting.elapsed().as_secs_f64();
    let (done_tx, _) = watch::channel(false);
    let start = Instant::now() + START_DELAY;
    let shared = Arc::new(RowShared {
        mode: config.mode,
        nodes: targets.len().max(1),
        rate: config.rate,
        clients: connected,
        stop: config.stop,
        size: config.size,
        timeout: config.timeout,
        epoch: start,
        start,
        measure_from: start + config.warmup,
        payload: reply::plain_payload(config.size),
        completed: AtomicU64::new(0),
        sending: AtomicUsize::new(connected),
        done: done_tx,
    });
    if connected == 0 {
        let _ = shared.done.send(true);
    }
    let progress = config
        .progress
        .then(|| progress::Progress::start(config, clients, shared.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (node, stream)) in conns.into_iter().enumerate() {
        tasks.spawn(drive(stream, i, node, shared.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(res) => results.push(res),
            Err(e) => results.push(ClientResult::failed(format!("a client task failed: {e}"))),
        }
    }
    if let Some(p) = progress {
        p.finish().await;
    }
    let mut row = samples::assemble_row(
        clients,
        connected,
        shared.mode,
        shared.nodes > 1,
        shared.measure_from,
        results,
    );
    // Full handshakes (the bench resumes no session), each with its TCP
    // connect and the first round trip, as many at a time as connects go.
    if config.tls.is_some() && connect_secs > 0.0 {
        row.handshakes_per_sec = Some(connected as f64 / connect_secs);
    }
    Ok(row)
}

/// Runs one client from the start of the row to its end.
async fn drive(
    stream: ClientStream,
    client: usize,
    node: usize,
    sh: Arc<RowShared>,
) -> ClientResult {
    let mut res = ClientResult::default();
    let (mut rd, mut wr) = stream.into_split();
    let mut tx = send::Sender::new(client, node, sh.size);
    let mut rx = receive::Receiver::new(LineFramer::new(MAX_ANSWER + FRAME_SLACK));
    let mut done = sh.done.subscribe();
    let mut buf = vec![0u8; READ_BUF];
    let mut reported = false;
    // Set once everyone is done: relays may still be on their way.
    let mut drain_until: Option<Instant> = None;
    tokio::time::sleep_until(sh.start.into()).await;
    loop {
        if let Err(e) = tx.send_due(&sh, &mut wr, Instant::now()).await {
            res.error(tx.in_flight().max(1) as u64, || {
                format!("write failed: {e}")
            });
            break;
        }
        if tx.finished() && tx.in_flight() == 0 && !reported {
            reported = true;
            sh.sender_finished();
            // Plain clients have nothing more to hear; chat clients stay to
            // receive the others' relays until everyone is done.
            if sh.mode == Mode::Plain {
                break;
            }
        }
        let wake = drain_until.or_else(|| tx.next_wake(&sh));
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => {
                    if tx.in_flight() > 0 || !tx.finished() {
                        res.error(tx.in_flight().max(1) as u64, || {
                            "the server closed the connection".to_string()
                        });
                    }
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    rx.on_bytes(&buf[..n], &sh, &mut tx, &mut res, now);
                    if drain_until.is_some() {
                        drain_until = Some(now + sh.relay_drain());
                    }
                }
                Err(e) => {
                    res.error(tx.in_flight().max(1) as u64, || format!("read failed: {e}"));
                    break;
                }
            },
            _ = sleep_until_opt(wake) => {
                let now = Instant::now();
                if drain_until.is_some_and(|d| now >= d) {
                    break;
                }
                if tx.oldest_due().is_some_and(|t| now >= t + sh.timeout) {
                    let n = tx.in_flight() as u64;
                    let t = sh.timeout;
                    res.error(n, || format!("no reply within {t:?}"));
                    break;
                }
            }
            _ = done.wait_for(|d| *d), if reported && drain_until.is_none() => {
                drain_until = Some(Instant::now() + sh.relay_drain());
            }
        }
    }
    if !reported {
        sh.sender_finished();
    }
    // The write half's drop shuts down our side; the server sees EOF.
    drop(wr);
    res
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

//! Joining one room across several `chatmon serve` nodes through NATS.
//!
//! The hub sees only this module's narrow interface: [`Bridge::start`],
//! [`Bridge::publish`] (never blocks: a bounded queue with counted drops),
//! [`ClusterEvents`] (what other nodes did, drained by the hub), the link
//! state and counters. NATS itself lives in [`link`]; the rules for who is in
//! the room and which name wins live in [`presence`]; the bridged message
//! format in [`wire`]. A second engine could sit behind the same interface.
//!
//! Core NATS is at most once, so losses are counted at both ends: what the
//! bridge could not hand to NATS is `dropped` at the sender, and what NATS
//! lost in flight is `missed` at each receiver, from gaps in the per-node
//! sequence numbers. For one sender and one receiver,
//! `received + dropped + missed == offered`, exactly.

pub mod link;
pub mod presence;
pub mod wire;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::server::{HistogramSnapshot, ReplyTimes};
use presence::{Presence, Update};
use wire::{Body, Claim};

/// Stack of the bridge thread: its tokio runtime runs every NATS task.
const BRIDGE_STACK: usize = 2 * 1024 * 1024;

/// How a node joins the cluster. Its `Debug` output hides the token.
#[derive(Clone)]
pub struct ClusterConfig {
    /// NATS seed URLs (`--cluster`, repeatable).
    pub urls: Vec<String>,
    /// The room joined across nodes (`--room`); one subject space per room.
    pub room: String,
    /// This node's name (`--node`); made unique at the first connection if
    /// another live node already has it.
    pub node: String,
    /// NATS token (`--cluster-token`, `CHATMON_CLUSTER_TOKEN`).
    pub token: Option<String>,
    /// Room events waiting to cross the link; past it, new ones are dropped
    /// and counted rather than blocking a session thread.
    pub queue_len: usize,
    /// Events from other nodes waiting for the hub; when full the bridge
    /// stops reading NATS, and what NATS then drops shows up as gaps.
    pub inbound_len: usize,
    /// How often this node says it is alive.
    pub heartbeat: Duration,
    /// Silence after which another node counts as lost.
    pub lost_after: Duration,
    /// How long [`Bridge::start`] waits for a first connection before going
    /// on as a single node (and retrying in the background).
    pub connect_wait: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("urls", &self.urls)
            .field("room", &self.room)
            .field("node", &self.node)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("queue_len", &self.queue_len)
            .field("inbound_len", &self.inbound_len)
            .field("heartbeat", &self.heartbeat)
            .field("lost_after", &self.lost_after)
            .field("connect_wait", &self.connect_wait)
            .finish()
    }
}

impl ClusterConfig {
    /// The defaults for everything but the URLs, room and node.
    pub fn new(urls: Vec<String>, room: &str, node: &str) -> ClusterConfig {
        ClusterConfig {
            urls,
            room: room.to_string(),
            node: node.to_string(),
            token: None,
            queue_len: 8192,
            inbound_len: 8192,
            heartbeat: Duration::from_secs(1),
            // With a heartbeat a second and a check every 250 ms, a dead
            // node is noticed at most 9.25 s after it died: within 10 s.
            lost_after: Duration::from_secs(9),
            connect_wait: Duration::from_secs(2),
        }
    }
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid cluster URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("invalid room name {0:?}: use letters, digits, '-' and '_'")]
    BadRoom(String),
    #[error("cannot start the cluster bridge: {0}")]
    Start(String),
}

/// Something the hub publishes to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A chat message; `order` is the client's message id.
    Chat {
        from: String,
        text: String,
        order: u64,
    },
    /// A plain-session line; `from` is the session as the log names it.
    Plain { from: String, text: String },
    /// A local user joined the room under `name`.
    Join { name: String },
    /// A local user left.
    Leave { name: String, reason: String },
    /// A local user changed name.
    Nick { old: String, new: String },
}

/// Something that happened elsewhere in the cluster, for the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A chat message from a user on `node`.
    Chat {
        node: String,
        from: String,
        text: String,
        order: u64,
        /// The sender node's clock when it published, µs since the epoch.
        sent_us: u64,
    },
    /// A plain-session line from `node`.
    Plain {
        node: String,
        from: String,
        text: String,
    },
    Joined {
        node: String,
        name: String,
    },
    Left {
        node: String,
        name: String,
        reason: String,
    },
    Renamed {
        node: String,
        old: String,
        new: String,
    },
    /// A local user lost a name clash: rename it (through `nick`).
    RenameLocal {
        name: String,
    },
    /// The link to NATS went up or down.
    Link {
        up: bool,
    },
    NodeJoined {
        node: String,
    },
    NodeLost {
        node: String,
    },
    NodeLeft {
        node: String,
    },
    /// Messages from `node` lost on the way, seen from a sequence gap.
    Missed {
        node: String,
        count: u64,
    },
    /// Room events this node could not hand to NATS since the last report.
    Dropped {
        count: u64,
    },
    /// Something to log that is not the room's business (a malformed
    /// message, a failed roster request).
    Problem {
        message: String,
    },
    /// The bridge stopped: the last event. [`ClusterEvents`] turns it into
    /// the end of the stream.
    Stopped,
}

/// The link's state, for the TUI status bar and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Never connected yet (NATS unreachable at start): a single node.
    Connecting,
    Up,
    Down,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        match v {
            1 => LinkState::Up,
            2 => LinkState::Down,
            _ => LinkState::Connecting,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

/// The bridge's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterStats {
    /// Room events the hub handed to the bridge.
    pub offered: u64,
    /// Room events handed to NATS (each with its sequence number).
    pub published: u64,
    /// Room events that never reached NATS: queue full or link down.
    pub dropped: u64,
    /// Sequenced messages received from other nodes.
    pub received: u64,
    /// Messages other nodes published that never arrived (sequence gaps).
    pub missed: u64,
}

/// State shared by the hub's threads and the bridge's tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ClusterConfig,
    /// Random per start: tells this run's stream from an earlier one.
    pub(crate) inc: u64,
    pub(crate) presence: Mutex<Presence>,
    /// [`LinkState`] as a u8, read by the hub without a lock.
    pub(crate) link: AtomicU8,
    pub(crate) offered: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Last sequence number handed to NATS; stored only once the publish
    /// was queued in the client, so a heartbeat never announces a number
    /// whose message could still come after it.
    pub(crate) last_seq: AtomicU64,
    /// Cross-node relay delay of chat messages (receiver's clock minus the
    /// sender's timestamp).
    pub(crate) delay: ReplyTimes,
    /// Events for the hub; also used by `publish` for name-clash renames.
    pub(crate) inbound: mpsc::Sender<ClusterEvent>,
}

impl Shared {
    pub(crate) fn presence(&self) -> MutexGuard<'_, Presence> {
        // Presence is plain data: a panic elsewhere leaves it usable.
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_link(&self, s: LinkState) {
        let v = match s {
            LinkState::Connecting => 0,
            LinkState::Up => 1,
            LinkState::Down => 2,
        };
        self.link.store(v, Ordering::SeqCst);
    }
}

/// Room events from other nodes, in the order they arrived.
#[derive(Debug)]
pub struct ClusterEvents(mpsc::Receiver<ClusterEvent>);

impl ClusterEvents {
    /// The next event; `None` once the bridge stopped. Blocks: call it from
    /// a plain thread, never from inside an async runtime.
    pub fn recv(&mut self) -> Option<ClusterEvent> {
        match self.0.blocking_recv() {
            Some(ClusterEvent::Stopped) | None => {
                self.0.close();
                None
            }
            ev => ev,
        }
    }

    /// The next event if one comes within `wait`.
    pub fn recv_timeout(&mut self, wait: Duration) -> Option<ClusterEvent> {
        let until = Instant::now() + wait;
        loop {
            match self.0.try_recv() {
                Ok(ClusterEvent::Stopped) => {
                    self.0.close();
                    return None;
                }
                Ok(ev) => return Some(ev),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A running bridge: one thread with a small tokio runtime.
pub struct Bridge {
    shared: Arc<Shared>,
    /// The hub's side of the outbound queue.
    out: mpsc::Sender<Body>,
    /// Taken once by the hub.
    events: Mutex<Option<ClusterEvents>>,
    /// Tells the bridge thread to say goodbye and stop.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("node", &self.node())
            .field("link", &self.link_state())
            .finish()
    }
}

/// How the first connection attempt went, for the caller's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The node's name in the cluster (`--node`, or with a suffix if taken).
    pub node: String,
    /// Connected within `connect_wait`; if not, the node runs single and
    /// keeps retrying.
    pub connected: bool,
}

impl Bridge {
    /// Starts the bridge and waits up to `config.connect_wait` for NATS.
    pub fn start(config: ClusterConfig) -> Result<(Bridge, Started), ClusterError> {
        if config.room.is_empty() || wire::subject_token(&config.room) != config.room {
            return Err(ClusterError::BadRoom(config.room));
        }
        for url in &config.urls {
            if let Err(e) = url.parse::<async_nats::ServerAddr>() {
                return Err(ClusterError::BadUrl {
                    url: url.clone(),
                    why: e.to_string(),
                });
            }
        }
        let (in_tx, in_rx) = mpsc::channel(config.inbound_len.max(1));
        let (out_tx, out_rx) = mpsc::channel(config.queue_len.max(1));
        let shared = Arc::new(Shared {
            presence: Mutex::new(Presence::new(&config.node, config.lost_after)),
            config,
            inc: incarnation(),
            link: AtomicU8::new(0),
            offered: AtomicU64::new(0),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            delay: ReplyTimes::default(),
            inbound: in_tx,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let sh = shared.clone();
        let thread = thread::Builder::new()
            .name("cluster-bridge".into())
            .stack_size(BRIDGE_STACK)
            .spawn(move || link::run(sh, out_rx, stop_rx, ready_tx))
            .map_err(|e| ClusterError::Start(format!("cannot start its thread: {e}")))?;
        let started = ready_rx
            .recv()
            .map_err(|_| ClusterError::Start("its thread ended at start".into()))??;
        Ok((
            Bridge {
                shared,
                out: out_tx,
                events: Mutex::new(Some(ClusterEvents(in_rx))),
                stop: Mutex::new(Some(stop_tx)),
                thread: Mutex::new(Some(thread)),
            },
            started,
        ))
    }

    /// The events from other nodes; `Some` only the first time.
    pub fn take_events(&self) -> Option<ClusterEvents> {
        self.events.lock().ok().and_then(|mut e| e.take())
    }

    /// Hands a local room event to the bridge. Never blocks: when the queue
    /// is full the event is dropped and counted (reported as
    /// [`ClusterEvent::Dropped`]).
    pub fn publish(&self, ev: RoomEvent) {
        let sh = &self.shared;
        sh.offered.fetch_add(1, Ordering::Relaxed);
        let body = self.to_body(ev);
        if self.out.try_send(body).is_err() {
            sh.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records presence changes locally (so heartbeats and roster answers
    /// say the truth even if the event itself is dropped) and builds the
    /// bridged body.
    fn to_body(&self, ev: RoomEvent) -> Body {
        let mut out = Vec::new();
        let body = match ev {
            RoomEvent::Chat { from, text, order } => Body::Chat { from, text, order },
            RoomEvent::Plain { from, text } => Body::Plain { from, text },
            RoomEvent::Join { name } => {
                let since_us = now_us();
                self.shared.presence().local_join(&name, since_us, &mut out);
                Body::Join {
                    claim: Claim { name, since_us },
                }
            }
            RoomEvent::Leave { name, reason } => {
                self.shared.presence().local_leave(&name);
                Body::Leave { name, reason }
            }
            RoomEvent::Nick { old, new } => {
                let since_us = now_us();
                self.shared
                    .presence()
                    .local_nick(&old, &new, since_us, &mut out);
                Body::Nick {
                    old,
                    claim: Claim {
                        name: new,
                        since_us,
                    },
                }
            }
        };
        for u in out {
            if let Update::RenameLocal { name } = u {
                let _ = self
                    .shared
                    .inbound
                    .try_send(ClusterEvent::RenameLocal { name });
            }
        }
        body
    }

    /// Is `name` (by the same likeness rule as local names) held on another
    /// node? The hub checks this before giving a name.
    pub fn taken_remotely(&self, name: &str) -> bool {
        self.shared.presence().taken_remotely(name)
    }

    /// Everyone on other nodes as `(name, node)`, sorted.
    pub fn remote_users(&self) -> Vec<(String, String)> {
        self.shared.presence().remote_users()
    }

    /// The other nodes currently heard from.
    pub fn nodes(&self) -> Vec<String> {
        self.shared.presence().nodes()
    }

    /// This node's name in the cluster.
    pub fn node(&self) -> String {
        self.shared.presence().me().to_string()
    }

    pub fn room(&self) -> &str {
        &self.shared.config.room
    }

    pub fn link_state(&self) -> LinkState {
        LinkState::from_u8(self.shared.link.load(Ordering::SeqCst))
    }

    pub fn stats(&self) -> ClusterStats {
        let sh = &self.shared;
        let r = sh.presence().counts();
        ClusterStats {
            offered: sh.offered.load(Ordering::Relaxed),
            published: sh.published.load(Ordering::Relaxed),
            dropped: sh.dropped.load(Ordering::Relaxed),
            received: r.received,
            missed: r.missed,
        }
    }

    /// The cross-node relay delay histogram.
    pub fn relay_delay(&self) -> HistogramSnapshot {
        self.shared.delay.snapshot()
    }

    /// Says goodbye to the other nodes (so this node's users leave there at
    /// once) and stops the bridge thread.
    pub fn shutdown(self) {
        self.stop();
    }

    /// [`Bridge::shutdown`] for an owner that shares the bridge; later
    /// publishes are dropped and counted. Returns once the thread ended.
    pub fn stop(&self) {
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wall clock µs since the Unix epoch: claim times and message timestamps
/// compared across machines.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A random run id: std's hasher is seeded randomly per process; the time
/// and pid make two runs in one second differ even if it were not.
fn incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked_before_anything_starts() {
        let mut c = ClusterConfig::new(vec!["nats://127.0.0.1:1".into()], "a.b", "n");
        assert!(matches!(
            Bridge::start(c.clone()),
            Err(ClusterError::BadRoom(_))
        ));
        c.room = "lobby".into();
        c.urls = vec!["nats://[::1".into()];
        assert!(matches!(Bridge::start(c), Err(ClusterError::BadUrl { .. })));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let mut c = ClusterConfig::new(vec!["nats://127.0.0.1:1".into()], "lobby", "n");
        c.token = Some("s3cret".into());
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret") && d.contains("<hidden>"), "{d}");
    }

    #[test]
    fn incarnations_differ() {
        assert_ne!(incarnation(), incarnation());
    }

    #[test]
    fn unreachable_nats_leaves_a_single_node_that_counts_its_drops() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let mut c = ClusterConfig::new(vec!["nats://127.0.0.1:1".into()], "lobby", "solo");
        c.connect_wait = Duration::from_millis(200);
        let (bridge, started) = Bridge::start(c).unwrap();
        assert_eq!(
            started,
            Started {
                node: "solo".into(),
                connected: false
            }
        );
        assert_eq!(bridge.link_state(), LinkState::Connecting);
        bridge.publish(RoomEvent::Join {
            name: "alice".into(),
        });
        bridge.publish(RoomEvent::Chat {
            from: "alice".into(),
            text: "anyone?".into(),
            order: 1,
        });
        let mut events = bridge.take_events().unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        let mut dropped = 0;
        while dropped < 2 && Instant::now() < until {
            if let Some(ClusterEvent::Dropped { count }) =
                events.recv_timeout(Duration::from_millis(100))
            {
                dropped += count;
            }
        }
        assert_eq!(dropped, 2);
        let s = bridge.stats();
        assert_eq!((s.offered, s.published, s.dropped), (2, 0, 2));
        bridge.shutdown();
    }
}

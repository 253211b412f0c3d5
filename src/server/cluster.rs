//! The server's side of a cluster (`serve --cluster`): local room events go
//! to the bridge, and what other nodes did is delivered to the local members
//! by the `chatmon-cluster` thread. The only server file that knows the
//! cluster exists; it sees the [`Bridge`]'s interface, never NATS. Without
//! `--cluster` none of it runs.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use crate::cluster::{
    Bridge, ClusterConfig, ClusterEvent, ClusterEvents, ClusterStats, LinkState, RoomEvent,
};
use crate::eventlog::{self, EventKind, LogMessage};
use crate::protocol::{self, ServerMsg};

use super::{HistogramSnapshot, Monitor, Shared};

/// Stack of the thread that delivers other nodes' events: it only encodes
/// lines and queues them.
const CLUSTER_STACK: usize = 256 * 1024;

/// The default node name: this host's name and the port it serves on.
fn default_node(addr: SocketAddr) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let host = if host.is_empty() {
        "chatmon".into()
    } else {
        host
    };
    format!("{host}-{}", addr.port())
}

/// Starts the bridge for a server listening on `addr`. NATS being
/// unreachable is no error: the server runs as a single node, says so on
/// stderr and in the log, and the bridge keeps trying.
/// Returns the bridge and the `Cluster` line to log once the server's start
/// is logged.
pub(super) fn start_bridge(
    mut cfg: ClusterConfig,
    addr: SocketAddr,
) -> io::Result<(Bridge, String)> {
    if cfg.node.is_empty() {
        cfg.node = default_node(addr);
    }
    let wanted = cfg.node.clone();
    let urls = cfg.urls.join(", ");
    let room = cfg.room.clone();
    let (bridge, started) =
        Bridge::start(cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if started.node != wanted {
        crate::sys::warn(format_args!(
            "cluster: node name {wanted} is taken by a live node; this one is {}",
            started.node
        ));
    }
    let what = if started.connected {
        format!("node {} in room {room}: link up ({urls})", started.node)
    } else {
        crate::sys::warn(format_args!(
            "cluster: NATS unreachable at {urls}; running as a single node and retrying"
        ));
        format!(
            "node {} in room {room}: NATS unreachable at {urls}; running as a single node and retrying",
            started.node
        )
    };
    Ok((bridge, what))
}

/// Starts the thread that delivers other nodes' events to local members.
pub(super) fn spawn_delivery(
    sh: Arc<Shared>,
    mut events: ClusterEvents,
) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("chatmon-cluster".into())
        .stack_size(CLUSTER_STACK)
        .spawn(move || {
            // It writes other nodes' messages and presence to local clients:
            // as latency-bound as a session, and must not fall behind them.
            sh.slice.apply();
            while let Some(ev) = events.recv() {
                sh.deliver(ev);
            }
        })
}

impl Shared {
    /// Hands a local room event to the other nodes, if in a cluster. Never
    /// blocks.
    pub(super) fn to_cluster(&self, ev: RoomEvent) {
        if let Some(b) = &self.cluster {
            b.publish(ev);
        }
    }

    /// Is `name` held by someone on another node?
    pub(super) fn taken_remotely(&self, name: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|b| b.taken_remotely(name))
    }

    /// Users on other nodes.
    pub(super) fn remote_len(&self) -> usize {
        self.cluster.as_ref().map_or(0, |b| b.remote_users().len())
    }

    /// The whole room's size: local members and everyone elsewhere.
    pub(super) fn room_size(&self) -> usize {
        self.hub.members_len() + self.remote_len()
    }

    /// `users` (the local names) with every remote name added, sorted.
    pub(super) fn with_remote_names(&self, mut users: Vec<String>) -> Vec<String> {
        if let Some(b) = &self.cluster {
            users.extend(b.remote_users().into_iter().map(|(name, _)| name));
            users.sort();
        }
        users
    }

    /// The room's names as the Server panel shows them: `name@node` for
    /// everyone in the cluster; `None` when not in one.
    pub(super) fn names_with_nodes(&self, local: &[String]) -> Option<Vec<String>> {
        let b = self.cluster.as_ref()?;
        let me = b.node();
        let mut v: Vec<String> = local.iter().map(|n| format!("{n}@{me}")).collect();
        v.extend(
            b.remote_users()
                .into_iter()
                .map(|(name, node)| format!("{name}@{node}")),
        );
        v.sort();
        Some(v)
    }

    /// The link state message a new member gets after its welcome, when the
    /// link is not up (an up link is the normal case and says nothing).
    pub(super) fn cluster_notice(&self) -> Option<ServerMsg> {
        let b = self.cluster.as_ref()?;
        (b.link_state() != LinkState::Up).then(|| ServerMsg::Cluster {
            up: false,
            node: b.node(),
        })
    }

    fn cluster_log(&self, what: &str) {
        self.log
            .record(EventKind::Cluster, &LogMessage::Cluster { what });
    }

    fn cluster_error(&self, what: &str) {
        self.log.record(
            EventKind::Error,
            &LogMessage::ServerError {
                who: "cluster",
                what,
            },
        );
    }

    /// One event from the cluster, delivered to the local members.
    fn deliver(&self, ev: ClusterEvent) {
        match ev {
            ClusterEvent::Chat {
                node, from, text, ..
            } => {
                let now = eventlog::now();
                self.log.record_at(
                    EventKind::MessageReceived,
                    now,
                    &LogMessage::ClusterReceived {
                        from: &from,
                        node: &node,
                        text: &text,
                    },
                );
                if self.hub.members_len() > 0 {
                    let line =
                        protocol::encode(&ServerMsg::chat(from, text, eventlog::format_time(now)));
                    self.relay(line.into(), None);
                }
            }
            ClusterEvent::Plain { node, from, text } => {
                let now = eventlog::now();
                self.log.record_at(
                    EventKind::MessageReceived,
                    now,
                    &LogMessage::ClusterReceived {
                        from: &from,
                        node: &node,
                        text: &text,
                    },
                );
                if self.hub.members_len() > 0 {
                    let line =
                        protocol::encode(&ServerMsg::chat(from, text, eventlog::format_time(now)));
                    self.relay(line.into(), None);
                }
            }
            ClusterEvent::Joined { name, .. } => {
                let users = self.room_size();
                self.relay(
                    protocol::encode(&ServerMsg::Join { name, users }).into(),
                    None,
                );
            }
            ClusterEvent::Left { name, reason, .. } => {
                let users = self.room_size();
                self.relay(
                    protocol::encode(&ServerMsg::Leave {
                        name,
                        users,
                        reason,
                    })
                    .into(),
                    None,
                );
            }
            ClusterEvent::Renamed { old, new, .. } => {
                // A local member may hold `old` too (the clash the rename
                // settles): that nick is not about it, and a client takes a
                // nick of its own name as its own rename.
                let namesake = self
                    .hub
                    .members()
                    .iter()
                    .find(|(_, m)| protocol::name_key(&m.name) == protocol::name_key(&old))
                    .map(|(id, _)| *id);
                self.relay(
                    protocol::encode(&ServerMsg::Nick { old, new }).into(),
                    namesake,
                );
            }
            ClusterEvent::RenameLocal { name } => self.rename_local(&name),
            ClusterEvent::Link { up } => {
                let node = self.cluster.as_ref().map(|b| b.node()).unwrap_or_default();
                self.cluster_log(if up { "link up" } else { "link down" });
                self.relay(
                    protocol::encode(&ServerMsg::Cluster { up, node }).into(),
                    None,
                );
            }
            ClusterEvent::NodeJoined { node } => self.cluster_log(&format!("node {node} joined")),
            ClusterEvent::NodeLost { node } => self.cluster_log(&format!("node {node} lost")),
            ClusterEvent::NodeLeft { node } => self.cluster_log(&format!("node {node} left")),
            ClusterEvent::Missed { node, count } => self.cluster_error(&format!(
                "{count} messages from node {node} were lost on the way"
            )),
            ClusterEvent::Dropped { count } => self.cluster_error(&format!(
                "{count} room events could not cross the link (dropped at this node)"
            )),
            ClusterEvent::Problem { message } => self.cluster_error(&message),
            ClusterEvent::Stopped => {}
        }
    }

    /// A local user lost a name clash to an earlier claim elsewhere: it gets
    /// a free variant of its name through the usual `nick` message.
    fn rename_local(&self, name: &str) {
        let found = self
            .hub
            .members()
            .iter()
            .find(|(_, m)| m.name == name)
            .map(|(id, m)| (*id, m.conn.peer));
        let Some((id, peer)) = found else {
            // Renamed or gone already.
            return;
        };
        let new = self.hub.rename(id, name, &|n| self.taken_remotely(n));
        if new == name {
            return;
        }
        let peer = peer.to_string();
        self.log.record(
            EventKind::Join,
            &LogMessage::ServerRenamed {
                old: name,
                peer: &peer,
                new: &new,
            },
        );
        self.to_cluster(RoomEvent::Nick {
            old: name.to_string(),
            new: new.clone(),
        });
        self.relay(
            protocol::encode(&ServerMsg::Nick {
                old: name.to_string(),
                new,
            })
            .into(),
            None,
        );
    }
}

/// The cluster's figures, for the metrics endpoint.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub node: String,
    pub room: String,
    pub link: LinkState,
    pub stats: ClusterStats,
    /// Users on other nodes.
    pub remote_users: usize,
    /// Other nodes heard from.
    pub nodes: usize,
    /// Cross-node relay delay of chat messages received here.
    pub relay_delay: HistogramSnapshot,
}

impl Monitor {
    /// The cluster's figures; `None` when the server is not in a cluster.
    pub fn cluster(&self) -> Option<ClusterView> {
        let b = self.0.cluster.as_ref()?;
        Some(ClusterView {
            node: b.node(),
            room: b.room().to_string(),
            link: b.link_state(),
            stats: b.stats(),
            remote_users: b.remote_users().len(),
            nodes: b.nodes().len(),
            relay_delay: b.relay_delay(),
        })
    }
}

//! Who is in the room on every other node, kept from the bridged stream:
//! pure logic with the time passed in, so every rule is unit-tested without
//! NATS. Owns the per-node sequence check (loss counting), node liveness,
//! when to ask a node for its roster, and the name-clash rule. Knows nothing
//! of NATS, sockets or the hub.
//!
//! The design follows Phoenix Tracker: each node owns its own users and says
//! so in its stream and, every heartbeat, in a digest of its roster; another
//! node asks for the whole roster when the node is new to it, the digest
//! differs, or a sequence gap says it missed something.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::wire::{Body, Claim, Envelope, roster_digest};
use crate::protocol::name_key;

/// How long after a roster request without answer it is asked again.
const ROSTER_RETRY: Duration = Duration::from_secs(2);

/// What the presence logic tells its owner to do or to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A user on another node joined the room.
    Joined { node: String, name: String },
    /// A user on another node left it.
    Left {
        node: String,
        name: String,
        reason: String,
    },
    /// A user on another node changed name.
    Renamed {
        node: String,
        old: String,
        new: String,
    },
    /// A node was heard from for the first time (or in a new run).
    NodeJoined { node: String },
    /// A node went silent for too long.
    NodeLost { node: String },
    /// A node said goodbye.
    NodeLeft { node: String },
    /// A local user lost a name clash to a user elsewhere: rename it.
    RenameLocal { name: String },
    /// Ask this node for its roster.
    RequestRoster { node: String },
    /// Messages from this node were lost on the way (a sequence gap).
    Missed { node: String, count: u64 },
}

/// One user as presence keeps it: display name and claim time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    name: String,
    since_us: u64,
}

/// What is known of another node.
#[derive(Debug)]
struct Remote {
    /// The run of the node these facts belong to.
    inc: u64,
    /// Highest sequence number seen (or counted as missed); 0 before the
    /// first sequenced message, when no gap can be judged yet.
    last_seq: u64,
    /// When it was last heard from, for the liveness rule.
    last_heard: Instant,
    /// Its users by [`name_key`].
    users: HashMap<String, Held>,
    /// A roster request is due (new node, digest mismatch, gap).
    need_roster: bool,
    /// When the last roster request went out, so one is not sent per message.
    asked_at: Option<Instant>,
}

impl Remote {
    fn new(inc: u64, now: Instant) -> Remote {
        Remote {
            inc,
            last_seq: 0,
            last_heard: now,
            users: HashMap::new(),
            need_roster: true,
            asked_at: None,
        }
    }

    fn digest(&self) -> u64 {
        roster_digest(self.users.values().map(|h| (h.name.as_str(), h.since_us)))
    }
}

/// Counters of the receiving side, for the loss accounting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Sequenced messages accepted from other nodes.
    pub received: u64,
    /// Sequenced messages other nodes sent that never arrived here.
    pub missed: u64,
}

/// The room as this node sees it.
#[derive(Debug)]
pub struct Presence {
    /// This node's name; messages from it are ignored.
    me: String,
    /// Local users by [`name_key`], mirrored from what the hub published.
    local: HashMap<String, Held>,
    /// Every other node heard from and not lost.
    remote: HashMap<String, Remote>,
    /// Silence after which a node counts as lost.
    lost_after: Duration,
    counts: Received,
}

impl Presence {
    pub fn new(me: &str, lost_after: Duration) -> Presence {
        Presence {
            me: me.to_string(),
            local: HashMap::new(),
            remote: HashMap::new(),
            lost_after,
            counts: Received::default(),
        }
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Renames this node (before it joined anything: the name was taken).
    pub fn set_me(&mut self, me: &str) {
        self.me = me.to_string();
    }

    pub fn counts(&self) -> Received {
        self.counts
    }

    /// Digest of the local roster, for heartbeats.
    pub fn local_digest(&self) -> u64 {
        roster_digest(self.local.values().map(|h| (h.name.as_str(), h.since_us)))
    }

    /// The local roster, for answering a roster request.
    pub fn local_claims(&self) -> Vec<Claim> {
        let mut v: Vec<Claim> = self
            .local
            .values()
            .map(|h| Claim {
                name: h.name.clone(),
                since_us: h.since_us,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn local_len(&self) -> usize {
        self.local.len()
    }

    /// Is `name` held by a user on another node?
    pub fn taken_remotely(&self, name: &str) -> bool {
        let key = name_key(name);
        self.remote.values().any(|r| r.users.contains_key(&key))
    }

    /// Every remote user as `(name, node)`, sorted.
    pub fn remote_users(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .remote
            .iter()
            .flat_map(|(node, r)| {
                r.users
                    .values()
                    .map(move |h| (h.name.clone(), node.clone()))
            })
            .collect();
        v.sort();
        v
    }

    /// The other nodes heard from, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.remote.keys().cloned().collect();
        v.sort();
        v
    }

    /// A local user got a name; `out` gets a rename if someone elsewhere
    /// already holds it with an earlier claim.
    pub fn local_join(&mut self, name: &str, since_us: u64, out: &mut Vec<Update>) {
        self.local.insert(
            name_key(name),
            Held {
                name: name.to_string(),
                since_us,
            },
        );
        if let Some(loser) = self.clash_loser_local(name) {
            out.push(Update::RenameLocal { name: loser });
        }
    }

    pub fn local_leave(&mut self, name: &str) {
        self.local.remove(&name_key(name));
    }

    pub fn local_nick(&mut self, old: &str, new: &str, since_us: u64, out: &mut Vec<Update>) {
        self.local_leave(old);
        self.local_join(new, since_us, out);
    }

    /// The local user holding `name`'s key, if a remote user's claim on the
    /// same key beats it. The rule every node computes alike: the earlier
    /// claim keeps the name; on equal times, the smaller node name.
    fn clash_loser_local(&self, name: &str) -> Option<String> {
        let key = name_key(name);
        let mine = self.local.get(&key)?;
        let beaten = self.remote.iter().any(|(node, r)| {
            r.users
                .get(&key)
                .is_some_and(|h| (h.since_us, node.as_str()) < (mine.since_us, self.me.as_str()))
        });
        beaten.then(|| mine.name.clone())
    }

    /// The node's entry, created (or replaced for a new run) as needed.
    fn entry(&mut self, node: &str, inc: u64, now: Instant, out: &mut Vec<Update>) -> &mut Remote {
        let restarted = self.remote.get(node).is_some_and(|r| r.inc != inc);
        if restarted && let Some(old) = self.remote.remove(node) {
            let reason = format!("node {node} restarted");
            leave_all(node, old, &reason, out);
        }
        if !self.remote.contains_key(node) {
            out.push(Update::NodeJoined {
                node: node.to_string(),
            });
        }
        self.remote
            .entry(node.to_string())
            .or_insert_with(|| Remote::new(inc, now))
    }

    /// One message from the bus. Returns true when it is a chat or plain
    /// message for the local clients; presence changes go to `out`.
    pub fn receive(&mut self, env: &Envelope, now: Instant, out: &mut Vec<Update>) -> bool {
        if env.node == self.me {
            return false;
        }
        match &env.body {
            Body::Heartbeat {
                last_seq, digest, ..
            } => {
                let r = self.entry(&env.node, env.inc, now, out);
                r.last_heard = now;
                let gap = if r.last_seq > 0 && *last_seq > r.last_seq {
                    *last_seq - r.last_seq
                } else {
                    0
                };
                if *last_seq > r.last_seq {
                    r.last_seq = *last_seq;
                }
                if r.digest() != *digest {
                    r.need_roster = true;
                }
                if gap > 0 {
                    r.need_roster = true;
                    self.missed(&env.node, gap, out);
                }
                self.due_requests(now, out);
                false
            }
            Body::Goodbye { last_seq } => {
                if let Some(r) = self.remote.remove(&env.node) {
                    if r.inc == env.inc && r.last_seq > 0 && *last_seq > r.last_seq {
                        self.missed(&env.node, *last_seq - r.last_seq, out);
                    }
                    let reason = format!("node {} left", env.node);
                    leave_all(&env.node, r, &reason, out);
                    out.push(Update::NodeLeft {
                        node: env.node.clone(),
                    });
                }
                false
            }
            Body::Roster { .. } | Body::RosterRequest => false,
            _ if env.seq == 0 => false,
            body => {
                let r = self.entry(&env.node, env.inc, now, out);
                r.last_heard = now;
                if r.last_seq > 0 && env.seq <= r.last_seq {
                    // Already counted (as received or as missed): NATS keeps
                    // one publisher's order, so this is a replay; ignore it.
                    return false;
                }
                let gap = if r.last_seq > 0 {
                    env.seq - r.last_seq - 1
                } else {
                    0
                };
                r.last_seq = env.seq;
                if gap > 0 {
                    r.need_roster = true;
                }
                self.counts.received += 1;
                if gap > 0 {
                    self.missed(&env.node, gap, out);
                }
                let deliver = self.apply(&env.node, body, out);
                self.due_requests(now, out);
                deliver
            }
        }
    }

    fn missed(&mut self, node: &str, count: u64, out: &mut Vec<Update>) {
        self.counts.missed += count;
        out.push(Update::Missed {
            node: node.to_string(),
            count,
        });
    }

    /// Applies one sequenced event of `node`'s stream.
    fn apply(&mut self, node: &str, body: &Body, out: &mut Vec<Update>) -> bool {
        let Some(r) = self.remote.get_mut(node) else {
            return false;
        };
        match body {
            Body::Chat { .. } | Body::Plain { .. } => return true,
            Body::Join { claim } => {
                let fresh = r
                    .users
                    .insert(
                        name_key(&claim.name),
                        Held {
                            name: claim.name.clone(),
                            since_us: claim.since_us,
                        },
                    )
                    .is_none();
                if fresh {
                    out.push(Update::Joined {
                        node: node.to_string(),
                        name: claim.name.clone(),
                    });
                }
                self.check_clash(&claim.name, out);
            }
            Body::Leave { name, reason } => {
                let known = r.users.remove(&name_key(name));
                // A leave of someone never seen (a missed join) says nothing.
                if known.is_some() {
                    out.push(Update::Left {
                        node: node.to_string(),
                        name: name.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            Body::Nick { old, claim } => {
                let had = r.users.remove(&name_key(old)).is_some();
                r.users.insert(
                    name_key(&claim.name),
                    Held {
                        name: claim.name.clone(),
                        since_us: claim.since_us,
                    },
                );
                out.push(if had {
                    Update::Renamed {
                        node: node.to_string(),
                        old: old.clone(),
                        new: claim.name.clone(),
                    }
                } else {
                    Update::Joined {
                        node: node.to_string(),
                        name: claim.name.clone(),
                    }
                });
                self.check_clash(&claim.name, out);
            }
            _ => {}
        }
        false
    }

    fn check_clash(&self, name: &str, out: &mut Vec<Update>) {
        if let Some(loser) = self.clash_loser_local(name) {
            out.push(Update::RenameLocal { name: loser });
        }
    }

    /// A node's roster, as its answer to a roster request. An answer older
    /// than what the stream already applied is ignored: the next heartbeat's
    /// digest asks again if it is still needed.
    pub fn apply_roster(
        &mut self,
        node: &str,
        inc: u64,
        last_seq: u64,
        users: &[Claim],
        now: Instant,
        out: &mut Vec<Update>,
    ) {
        if node == self.me {
            return;
        }
        let r = self.entry(node, inc, now, out);
        r.last_heard = now;
        r.need_roster = false;
        r.asked_at = None;
        if r.last_seq > last_seq {
            return;
        }
        if r.last_seq == 0 {
            // The baseline: later gaps are judged from here. A roster ahead
            // of the stream leaves `last_seq` alone, so that events still in
            // flight are applied (idempotently) rather than called missed.
            r.last_seq = last_seq;
        }
        let fresh: HashMap<String, Held> = users
            .iter()
            .map(|c| {
                (
                    name_key(&c.name),
                    Held {
                        name: c.name.clone(),
                        since_us: c.since_us,
                    },
                )
            })
            .collect();
        let mut gone: Vec<String> = r
            .users
            .iter()
            .filter(|(k, _)| !fresh.contains_key(*k))
            .map(|(_, h)| h.name.clone())
            .collect();
        gone.sort();
        let mut came: Vec<String> = fresh
            .iter()
            .filter(|(k, _)| !r.users.contains_key(*k))
            .map(|(_, h)| h.name.clone())
            .collect();
        came.sort();
        r.users = fresh;
        for name in gone {
            out.push(Update::Left {
                node: node.to_string(),
                name,
                reason: "left".to_string(),
            });
        }
        for name in &came {
            out.push(Update::Joined {
                node: node.to_string(),
                name: name.clone(),
            });
        }
        for c in users {
            self.check_clash(&c.name, out);
        }
    }

    /// A roster request went unanswered (timeout, no responder): ask again
    /// after `ROSTER_RETRY`.
    pub fn roster_failed(&mut self, node: &str) {
        if let Some(r) = self.remote.get_mut(node) {
            r.need_roster = true;
        }
    }

    /// The link came back: every node may have changed while we were away.
    pub fn resync(&mut self) {
        for r in self.remote.values_mut() {
            r.need_roster = true;
            r.asked_at = None;
        }
    }

    /// Periodic work: nodes silent for too long are lost, due roster
    /// requests go out.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Update>) {
        let lost: Vec<String> = self
            .remote
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.last_heard) >= self.lost_after)
            .map(|(n, _)| n.clone())
            .collect();
        for node in lost {
            if let Some(r) = self.remote.remove(&node) {
                let reason = format!("node {node} lost");
                leave_all(&node, r, &reason, out);
                out.push(Update::NodeLost { node });
            }
        }
        self.due_requests(now, out);
    }

    fn due_requests(&mut self, now: Instant, out: &mut Vec<Update>) {
        for (node, r) in self.remote.iter_mut() {
            let waiting = r
                .asked_at
                .is_some_and(|t| now.saturating_duration_since(t) < ROSTER_RETRY);
            if r.need_roster && !waiting {
                r.asked_at = Some(now);
                out.push(Update::RequestRoster { node: node.clone() });
            }
        }
    }
}

/// Every user of a node that is gone leaves, in name order.
fn leave_all(node: &str, r: Remote, reason: &str, out: &mut Vec<Update>) {
    let mut names: Vec<String> = r.users.into_values().map(|h| h.name).collect();
    names.sort();
    for name in names {
        out.push(Update::Left {
            node: node.to_string(),
            name,
            reason: reason.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::WIRE_VERSION;

    fn env(node: &str, inc: u64, seq: u64, body: Body) -> Envelope {
        Envelope {
            v: WIRE_VERSION,
            node: node.into(),
            inc,
            seq,
            ts_us: 0,
            body,
        }
    }

    fn join(name: &str, since_us: u64) -> Body {
        Body::Join {
            claim: Claim {
                name: name.into(),
                since_us,
            },
        }
    }

    fn chat(text: &str) -> Body {
        Body::Chat {
            from: "x".into(),
            text: text.into(),
            order: 0,
        }
    }

    fn hb(last_seq: u64, digest: u64) -> Body {
        Body::Heartbeat {
            last_seq,
            digest,
            users: 0,
        }
    }

    const LOST: Duration = Duration::from_secs(9);

    #[test]
    fn own_messages_are_ignored() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        assert!(!p.receive(&env("a", 1, 1, chat("hi")), Instant::now(), &mut out));
        assert!(out.is_empty());
        assert_eq!(p.counts(), Received::default());
    }

    #[test]
    fn new_node_is_announced_and_asked_for_its_roster() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        assert!(!p.receive(
            &env("b", 1, 0, hb(0, roster_digest(std::iter::empty()))),
            t,
            &mut out
        ));
        assert_eq!(
            out,
            vec![
                Update::NodeJoined { node: "b".into() },
                Update::RequestRoster { node: "b".into() }
            ]
        );
        // Not asked again while the request is out.
        out.clear();
        p.receive(
            &env("b", 1, 0, hb(0, 0)),
            t + Duration::from_millis(500),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // Asked again once the retry time passed without an answer.
        p.receive(&env("b", 1, 0, hb(0, 0)), t + ROSTER_RETRY, &mut out);
        assert_eq!(out, vec![Update::RequestRoster { node: "b".into() }]);
    }

    #[test]
    fn stream_applies_joins_leaves_and_nicks() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 1, join("bob", 10)), t, &mut out);
        assert!(out.contains(&Update::Joined {
            node: "b".into(),
            name: "bob".into()
        }));
        assert!(p.taken_remotely("Bob"));
        assert!(p.receive(&env("b", 1, 2, chat("hello")), t, &mut out));
        out.clear();
        p.receive(
            &env(
                "b",
                1,
                3,
                Body::Nick {
                    old: "bob".into(),
                    claim: Claim {
                        name: "robert".into(),
                        since_us: 20,
                    },
                },
            ),
            t,
            &mut out,
        );
        assert_eq!(
            out,
            vec![Update::Renamed {
                node: "b".into(),
                old: "bob".into(),
                new: "robert".into()
            }]
        );
        assert_eq!(p.remote_users(), vec![("robert".into(), "b".into())]);
        out.clear();
        p.receive(
            &env(
                "b",
                1,
                4,
                Body::Leave {
                    name: "robert".into(),
                    reason: "quit".into(),
                },
            ),
            t,
            &mut out,
        );
        assert_eq!(
            out,
            vec![Update::Left {
                node: "b".into(),
                name: "robert".into(),
                reason: "quit".into()
            }]
        );
        assert!(!p.taken_remotely("bob") && !p.taken_remotely("robert"));
        assert_eq!(
            p.counts(),
            Received {
                received: 4,
                missed: 0
            }
        );
    }

    #[test]
    fn gaps_are_counted_and_trigger_a_roster_request() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 5, chat("first seen")), t, &mut out);
        p.apply_roster("b", 1, 5, &[], t, &mut out);
        out.clear();
        // 6 and 7 lost.
        assert!(p.receive(&env("b", 1, 8, chat("x")), t, &mut out));
        assert_eq!(
            out,
            vec![
                Update::Missed {
                    node: "b".into(),
                    count: 2
                },
                Update::RequestRoster { node: "b".into() }
            ]
        );
        // A replay is not counted twice.
        assert!(!p.receive(&env("b", 1, 8, chat("x")), t, &mut out));
        // Trailing losses are seen in the next heartbeat.
        out.clear();
        p.receive(
            &env("b", 1, 0, hb(11, roster_digest(std::iter::empty()))),
            t,
            &mut out,
        );
        assert!(out.contains(&Update::Missed {
            node: "b".into(),
            count: 3
        }));
        assert_eq!(
            p.counts(),
            Received {
                received: 2,
                missed: 5
            }
        );
    }

    #[test]
    fn first_message_sets_the_baseline_without_a_gap() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        p.receive(
            &env("b", 1, 100, chat("late joiner")),
            Instant::now(),
            &mut out,
        );
        assert_eq!(
            p.counts(),
            Received {
                received: 1,
                missed: 0
            }
        );
    }

    #[test]
    fn digest_mismatch_asks_for_the_roster_and_the_roster_repairs() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 1, join("bob", 1)), t, &mut out);
        p.apply_roster(
            "b",
            1,
            1,
            &[Claim {
                name: "bob".into(),
                since_us: 1,
            }],
            t,
            &mut out,
        );
        out.clear();
        let good = roster_digest([("bob", 1u64)].into_iter());
        p.receive(&env("b", 1, 0, hb(1, good)), t, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let other = roster_digest([("carol", 2u64)].into_iter());
        p.receive(&env("b", 1, 0, hb(1, other)), t, &mut out);
        assert_eq!(out, vec![Update::RequestRoster { node: "b".into() }]);
        out.clear();
        p.apply_roster(
            "b",
            1,
            1,
            &[Claim {
                name: "carol".into(),
                since_us: 2,
            }],
            t,
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Update::Left {
                    node: "b".into(),
                    name: "bob".into(),
                    reason: "left".into()
                },
                Update::Joined {
                    node: "b".into(),
                    name: "carol".into()
                }
            ]
        );
    }

    #[test]
    fn stale_roster_is_ignored() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 1, join("bob", 1)), t, &mut out);
        p.receive(&env("b", 1, 2, join("carol", 1)), t, &mut out);
        out.clear();
        p.apply_roster(
            "b",
            1,
            1,
            &[Claim {
                name: "bob".into(),
                since_us: 1,
            }],
            t,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(p.remote_users().len(), 2);
    }

    #[test]
    fn silent_node_is_lost_with_its_users() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 1, join("bob", 1)), t, &mut out);
        out.clear();
        p.tick(t + LOST - Duration::from_millis(1), &mut out);
        assert!(
            out.iter()
                .all(|u| matches!(u, Update::RequestRoster { .. })),
            "{out:?}"
        );
        out.clear();
        p.tick(t + LOST, &mut out);
        assert_eq!(
            out,
            vec![
                Update::Left {
                    node: "b".into(),
                    name: "bob".into(),
                    reason: "node b lost".into()
                },
                Update::NodeLost { node: "b".into() }
            ]
        );
        assert!(p.nodes().is_empty());
    }

    #[test]
    fn goodbye_removes_users_at_once() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 1, join("bob", 1)), t, &mut out);
        out.clear();
        p.receive(&env("b", 1, 0, Body::Goodbye { last_seq: 1 }), t, &mut out);
        assert_eq!(
            out,
            vec![
                Update::Left {
                    node: "b".into(),
                    name: "bob".into(),
                    reason: "node b left".into()
                },
                Update::NodeLeft { node: "b".into() }
            ]
        );
    }

    #[test]
    fn restarted_node_replaces_its_old_run() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 7, join("bob", 1)), t, &mut out);
        out.clear();
        p.receive(&env("b", 2, 1, join("bob", 5)), t, &mut out);
        assert_eq!(
            out[..3],
            [
                Update::Left {
                    node: "b".into(),
                    name: "bob".into(),
                    reason: "node b restarted".into()
                },
                Update::NodeJoined { node: "b".into() },
                Update::Joined {
                    node: "b".into(),
                    name: "bob".into()
                }
            ]
        );
        assert_eq!(p.counts().missed, 0, "a new run is not a gap");
    }

    #[test]
    fn name_clash_renames_the_later_claim_only() {
        // alice claimed at 100 on a, at 90 on b: a's loses.
        let mut a = Presence::new("a", LOST);
        let mut b = Presence::new("b", LOST);
        let mut out_a = Vec::new();
        let mut out_b = Vec::new();
        let t = Instant::now();
        a.local_join("alice", 100, &mut out_a);
        b.local_join("alice", 90, &mut out_b);
        assert!(out_a.is_empty() && out_b.is_empty());
        a.receive(&env("b", 1, 1, join("alice", 90)), t, &mut out_a);
        b.receive(&env("a", 1, 1, join("alice", 100)), t, &mut out_b);
        assert!(out_a.contains(&Update::RenameLocal {
            name: "alice".into()
        }));
        assert!(
            !out_b
                .iter()
                .any(|u| matches!(u, Update::RenameLocal { .. }))
        );
    }

    #[test]
    fn equal_claim_times_fall_to_the_node_name() {
        let mut a = Presence::new("a", LOST);
        let mut b = Presence::new("b", LOST);
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        let t = Instant::now();
        a.local_join("Alice", 50, &mut oa);
        b.local_join("alice", 50, &mut ob);
        a.receive(&env("b", 1, 1, join("alice", 50)), t, &mut oa);
        b.receive(&env("a", 1, 1, join("Alice", 50)), t, &mut ob);
        assert!(!oa.iter().any(|u| matches!(u, Update::RenameLocal { .. })));
        assert!(ob.contains(&Update::RenameLocal {
            name: "alice".into()
        }));
    }

    #[test]
    fn a_partition_heals_through_the_roster_with_the_same_rule() {
        let mut a = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        a.local_join("alice", 300, &mut out);
        a.local_join("bob", 10, &mut out);
        a.apply_roster(
            "b",
            1,
            4,
            &[
                Claim {
                    name: "alice".into(),
                    since_us: 200,
                },
                Claim {
                    name: "bob".into(),
                    since_us: 20,
                },
            ],
            t,
            &mut out,
        );
        let renames: Vec<&Update> = out
            .iter()
            .filter(|u| matches!(u, Update::RenameLocal { .. }))
            .collect();
        assert_eq!(
            renames,
            vec![&Update::RenameLocal {
                name: "alice".into()
            }]
        );
    }

    #[test]
    fn resync_asks_every_node_again() {
        let mut p = Presence::new("a", LOST);
        let mut out = Vec::new();
        let t = Instant::now();
        p.receive(&env("b", 1, 1, join("bob", 1)), t, &mut out);
        p.receive(&env("c", 1, 1, join("carol", 1)), t, &mut out);
        p.apply_roster(
            "b",
            1,
            1,
            &[Claim {
                name: "bob".into(),
                since_us: 1,
            }],
            t,
            &mut out,
        );
        p.apply_roster(
            "c",
            1,
            1,
            &[Claim {
                name: "carol".into(),
                since_us: 1,
            }],
            t,
            &mut out,
        );
        out.clear();
        p.resync();
        p.tick(t, &mut out);
        let mut asked: Vec<&Update> = out.iter().collect();
        asked.sort_by_key(|u| format!("{u:?}"));
        assert_eq!(
            asked,
            vec![
                &Update::RequestRoster { node: "b".into() },
                &Update::RequestRoster { node: "c".into() }
            ]
        );
    }

    #[test]
    fn local_roster_digest_matches_what_a_peer_computes() {
        let mut a = Presence::new("a", LOST);
        let mut out = Vec::new();
        a.local_join("alice", 1, &mut out);
        a.local_join("bob", 2, &mut out);
        a.local_nick("bob", "robert", 3, &mut out);
        let mut b = Presence::new("b", LOST);
        let t = Instant::now();
        b.apply_roster("a", 1, 0, &a.local_claims(), t, &mut out);
        out.clear();
        b.receive(&env("a", 1, 0, hb(0, a.local_digest())), t, &mut out);
        assert!(
            !out.iter()
                .any(|u| matches!(u, Update::RequestRoster { .. })),
            "{out:?}"
        );
        assert_eq!(a.local_len(), 2);
    }
}

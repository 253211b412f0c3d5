//! The bridged message format: what one node publishes to NATS and every
//! other node decodes. JSON via serde, one message per NATS payload. Owns the
//! subject names too; knows nothing of sockets, the hub or presence rules.

use serde::{Deserialize, Serialize};

/// Version of this format; a node drops messages of another version (and
/// counts them as malformed) rather than guessing at their fields.
pub const WIRE_VERSION: u32 = 1;

/// One bridged message: who sent it, which run of that node, where it sits in
/// that node's stream, and when it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`WIRE_VERSION`] of the sender.
    pub v: u32,
    /// The sending node's name (`--node`): lets a node skip its own messages
    /// even if the engine echoed them, and names the node users are on.
    pub node: String,
    /// Random at each start of a node: a restarted node with the same name
    /// starts a new sequence, which must not read as a huge gap or a replay.
    pub inc: u64,
    /// Position in the sender's stream of room events, from 1 without holes;
    /// 0 for messages outside the stream (heartbeats, goodbye), which carry
    /// the last position instead. Gaps are how a receiver counts losses.
    pub seq: u64,
    /// The sender's wall clock, µs since the Unix epoch, when it published:
    /// the receiver's clock minus this is the cross-node relay delay.
    pub ts_us: u64,
    pub body: Body,
}

/// A user's hold on a name: the rule that settles a name clash compares
/// these, so every node must see the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub name: String,
    /// Wall clock µs at which the node gave the user this name.
    pub since_us: u64,
}

/// What a bridged message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Body {
    /// A chat message from a user on the sending node.
    Chat {
        from: String,
        text: String,
        /// The sender's own count of its messages (the client's `msg` id),
        /// so a receiver can check the per-sender order.
        order: u64,
    },
    /// A line from a plain (echo) session on the sending node; `from` is
    /// the session as its node's log names it.
    Plain { from: String, text: String },
    /// A user joined on the sending node.
    Join { claim: Claim },
    /// A user left the sending node.
    Leave { name: String, reason: String },
    /// A user on the sending node changed name; `claim` is the new one.
    Nick { old: String, claim: Claim },
    /// Sent every heartbeat interval: the node is alive, how far its stream
    /// went, and a digest of its roster so a receiver can tell it is in sync.
    Heartbeat {
        last_seq: u64,
        digest: u64,
        users: usize,
    },
    /// The node is stopping cleanly: its users leave at once.
    Goodbye { last_seq: u64 },
    /// Answer to a roster request: the node's whole roster as of `last_seq`.
    Roster { last_seq: u64, users: Vec<Claim> },
    /// A roster request (sent on the roster subject of the node asked).
    RosterRequest,
}

impl Envelope {
    /// The JSON payload.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a payload, refusing another format version.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        if env.v != WIRE_VERSION {
            return Err(WireError::Version(env.v));
        }
        Ok(env)
    }
}

/// Why a payload was not a bridged message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed cluster message: {0}")]
    Malformed(String),
    #[error("cluster message of format version {0} (this node speaks {WIRE_VERSION})")]
    Version(u32),
}

/// The subject every node of a room publishes its stream and heartbeats on.
/// One subject, so NATS's per-publisher order covers events and heartbeats
/// alike: a heartbeat's `last_seq` never overtakes the events it counts.
pub fn bus_subject(room: &str) -> String {
    format!("chatmon.{room}.bus")
}

/// The subject a node answers roster requests on.
pub fn roster_subject(room: &str, node: &str) -> String {
    format!("chatmon.{room}.roster.{node}")
}

/// A name made safe as one subject token: NATS splits subjects on `.` and
/// gives `*` and `>` meaning, and whitespace ends a subject.
pub fn subject_token(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "_".to_string() } else { t }
}

/// FNV-1a, 64 bits: a digest every node computes alike, whatever its build
/// (std's hasher is randomly seeded per process).
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The FNV-1a offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Digest of a roster: the same set of claims gives the same value in any
/// order.
pub fn roster_digest<'a>(claims: impl Iterator<Item = (&'a str, u64)>) -> u64 {
    let mut v: Vec<(&str, u64)> = claims.collect();
    v.sort_unstable();
    let mut h = FNV_START;
    for (name, since) in v {
        h = fnv1a(name.as_bytes(), h);
        h = fnv1a(&[0], h);
        h = fnv1a(&since.to_le_bytes(), h);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let e = Envelope {
            v: WIRE_VERSION,
            node: "a".into(),
            inc: 7,
            seq: 3,
            ts_us: 1_700_000_000_000_000,
            body: Body::Chat {
                from: "alice".into(),
                text: "hi \"there\"\n".into(),
                order: 9,
            },
        };
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        let raw = String::from_utf8(e.encode()).unwrap();
        assert!(raw.contains("\"t\":\"chat\""), "{raw}");
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let mut e = Envelope {
            v: WIRE_VERSION + 1,
            node: "a".into(),
            inc: 1,
            seq: 0,
            ts_us: 0,
            body: Body::Goodbye { last_seq: 0 },
        };
        assert_eq!(Envelope::decode(&e.encode()), Err(WireError::Version(2)));
        e.v = WIRE_VERSION;
        assert!(Envelope::decode(&e.encode()).is_ok());
        assert!(matches!(
            Envelope::decode(b"{"),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn digest_ignores_order_but_not_content() {
        let a = roster_digest([("alice", 1), ("bob", 2)].into_iter());
        let b = roster_digest([("bob", 2), ("alice", 1)].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, roster_digest([("alice", 1), ("bob", 3)].into_iter()));
        assert_ne!(a, roster_digest([("alice", 1)].into_iter()));
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(
            roster_digest([("ab", 1)].into_iter()),
            roster_digest([("a", 1)].into_iter())
        );
    }

    #[test]
    fn subject_tokens_are_safe() {
        assert_eq!(subject_token("host.example:7000"), "host_example_7000");
        assert_eq!(subject_token("a b*>"), "a_b__");
        assert_eq!(subject_token(""), "_");
        assert_eq!(bus_subject("lobby"), "chatmon.lobby.bus");
        assert_eq!(roster_subject("lobby", "n1"), "chatmon.lobby.roster.n1");
    }
}

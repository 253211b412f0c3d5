//! The room and the event stream: who is connected, who is a member, who
//! subscribed, and where a chat line is relayed ([`Shared::relay`]): queued to
//! every other member's outbox, never written from the sender's thread.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::protocol::{self, ServerMsg};

use super::Shared;
use super::conn::{Conn, DisconnectReason};
use super::outbox::{Outbox, Push};
use super::stats::Counters;

/// Room left for a `-N` suffix when a wanted name is taken.
const SUFFIX_ROOM: usize = 6;

/// A member of the room (a chat session).
pub(super) struct Member {
    pub(super) name: String,
    pub(super) conn: Arc<Conn>,
    pub(super) outbox: Arc<Outbox>,
    /// Its join was announced; only then does the room hear it leave.
    pub(super) announced: bool,
}

/// Everyone connected, and the chat room.
#[derive(Default)]
pub(super) struct Hub {
    /// Every live connection, for shutdown notices.
    pub(super) conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Chat sessions by connection id.
    members: RwLock<HashMap<u64, Member>>,
    /// Outboxes of clients that subscribed to the event stream.
    subscribers: RwLock<HashMap<u64, Arc<Outbox>>>,
    /// Fast path: skip the subscriber lock when nobody subscribed.
    subscriber_count: AtomicUsize,
    /// Fast path: skip building relay lines when nobody would get them.
    member_count: AtomicUsize,
}

impl Hub {
    pub(super) fn members(&self) -> RwLockReadGuard<'_, HashMap<u64, Member>> {
        self.members.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn members_mut(&self) -> RwLockWriteGuard<'_, HashMap<u64, Member>> {
        self.members.write().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribers_mut(&self) -> RwLockWriteGuard<'_, HashMap<u64, Arc<Outbox>>> {
        self.subscribers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Chat sessions in the room (a relaxed read: a figure, not a lock).
    pub(super) fn members_len(&self) -> usize {
        self.member_count.load(Ordering::Relaxed)
    }

    /// Clients subscribed to the event stream.
    pub(super) fn subscribers(&self) -> usize {
        self.subscriber_count.load(Ordering::Relaxed)
    }

    /// Members' names, unsorted.
    pub(super) fn member_names(&self) -> Vec<String> {
        self.members().values().map(|m| m.name.clone()).collect()
    }

    /// Every member's outbox, by connection id.
    pub(super) fn member_outboxes(&self) -> HashMap<u64, Arc<Outbox>> {
        self.members()
            .iter()
            .map(|(id, m)| (*id, m.outbox.clone()))
            .collect()
    }

    /// Adds a member under a name unique in the room. Returns the name
    /// given, everyone's names (sorted, the new one included) and who was in
    /// the room before.
    pub(super) fn join(
        &self,
        conn: &Arc<Conn>,
        wanted: &str,
        outbox: &Arc<Outbox>,
        elsewhere: &dyn Fn(&str) -> bool,
    ) -> (String, Vec<String>, HashSet<u64>) {
        let mut members = self.members_mut();
        let before: HashSet<u64> = members.keys().copied().collect();
        let name = unique_name(&members, wanted, None, elsewhere);
        members.insert(
            conn.id,
            Member {
                name: name.clone(),
                conn: conn.clone(),
                outbox: outbox.clone(),
                announced: false,
            },
        );
        let mut users: Vec<String> = members.values().map(|m| m.name.clone()).collect();
        users.sort();
        self.member_count.fetch_add(1, Ordering::Relaxed);
        (name, users, before)
    }

    /// Renames member `id` to `wanted` or, if taken (here or, by
    /// `elsewhere`, on another node of the cluster), a unique variant of it.
    pub(super) fn rename(&self, id: u64, wanted: &str, elsewhere: &dyn Fn(&str) -> bool) -> String {
        let mut members = self.members_mut();
        let new = unique_name(&members, wanted, Some(id), elsewhere);
        if let Some(m) = members.get_mut(&id) {
            m.name = new.clone();
        }
        new
    }

    /// Marks member `id`'s join as announced.
    pub(super) fn announced(&self, id: u64) {
        if let Some(m) = self.members_mut().get_mut(&id) {
            m.announced = true;
        }
    }

    /// Removes connection `id` from the room, the subscribers and the
    /// connections; returns its membership, if it had one.
    pub(super) fn leave(&self, id: u64) -> Option<Member> {
        let member = self.members_mut().remove(&id);
        if member.is_some() {
            self.member_count.fetch_sub(1, Ordering::Relaxed);
        }
        if self.subscribers_mut().remove(&id).is_some() {
            self.subscriber_count.fetch_sub(1, Ordering::Relaxed);
        }
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        member
    }

    /// Subscribes (or unsubscribes) connection `id`; a new subscriber gets
    /// `figures` first.
    pub(super) fn set_subscribed(
        &self,
        id: u64,
        on: bool,
        outbox: &Arc<Outbox>,
        figures: Option<Arc<str>>,
    ) {
        let mut subs = self.subscribers_mut();
        let changed = if on {
            subs.insert(id, outbox.clone()).is_none()
        } else {
            subs.remove(&id).is_some()
        };
        if changed {
            if on {
                self.subscriber_count.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = figures {
                    outbox.push_event(f);
                }
            } else {
                self.subscriber_count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues an event line to every subscriber, dropping their oldest when
    /// full (and counting it); never blocks on any of them.
    pub(super) fn push_event_to_subscribers(&self, line: Arc<str>, counters: &Counters) {
        let subs = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        for ob in subs.values() {
            if ob.push_event(line.clone()) {
                counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends one log line to every subscriber; never blocks on any of them.
    pub(super) fn broadcast_event(&self, line: &str, counters: &Counters) {
        if self.subscribers() == 0 {
            return;
        }
        let msg: Arc<str> = protocol::encode(&ServerMsg::Event {
            line: line.trim_end_matches('\n').to_string(),
        })
        .into();
        self.push_event_to_subscribers(msg, counters);
    }
}

impl Shared {
    /// Queues `line` to every member but `except`, evicting those too slow to
    /// take it. Never blocks on a socket.
    pub(super) fn relay(&self, line: Arc<str>, except: Option<u64>) {
        self.relay_where(line, |id| Some(id) != except);
    }

    /// Queues `line` to the members `to` picks, as [`Shared::relay`] does.
    pub(super) fn relay_where(&self, line: Arc<str>, to: impl Fn(u64) -> bool) {
        let mut slow: Vec<Arc<Conn>> = Vec::new();
        let mut n = 0u64;
        {
            let members = self.hub.members();
            for (id, m) in members.iter() {
                if !to(*id) {
                    continue;
                }
                match m.outbox.push(line.clone()) {
                    Push::Queued => n += 1,
                    // Closing the outbox makes later relays skip this
                    // client, so it is evicted (and counted) once.
                    Push::Full if m.outbox.close_with(None) => slow.push(m.conn.clone()),
                    Push::Full | Push::Closed => {}
                }
            }
        }
        self.counters.relayed.fetch_add(n, Ordering::Relaxed);
        for c in slow {
            self.counters
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            c.close(DisconnectReason::TooSlow(self.config.outbox_len));
        }
    }
}

/// `wanted`, or `wanted-2`, `wanted-3`... whichever is free (compared by
/// [`protocol::name_key`], so that `Alice` or a Cyrillic `аlice` cannot pass
/// for `alice`). `elsewhere` says whether a name is held on another node of
/// the cluster (always false without one).
fn unique_name(
    members: &HashMap<u64, Member>,
    wanted: &str,
    me: Option<u64>,
    elsewhere: &dyn Fn(&str) -> bool,
) -> String {
    // One pass to collect the keys, then cheap probes: this runs under the
    // room's write lock, so it must not be quadratic in the room's size.
    let taken: HashSet<String> = members
        .iter()
        .filter(|(id, _)| Some(**id) != me)
        .map(|(_, m)| protocol::name_key(&m.name))
        .collect();
    let free = |n: &str| !taken.contains(&protocol::name_key(n)) && !elsewhere(n);
    if free(wanted) {
        return wanted.to_string();
    }
    let base: String = wanted
        .chars()
        .take(protocol::MAX_NAME_LEN - SUFFIX_ROOM)
        .collect();
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| free(n))
        .unwrap_or_else(|| base.clone())
}

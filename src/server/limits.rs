//! What keeps a few peers from holding every slot (issue 11), on the accept
//! thread's side: connections per address (`max_per_ip`; IPv6 counted per
//! /64, since one host usually holds a whole /64; loopback exempt unless
//! asked), and the connections that still owe their first line, which a full
//! server evicts for a newcomer, longest waiting first. The line and hello
//! deadlines themselves are the session's (`session/deadline.rs`).
//!
//! Nothing here runs per message: a lock per accept and per session end, and
//! one when a session's first line arrives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Shared;
use super::conn::Conn;

/// What one address's connections are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddrKey {
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Net(u64),
}

/// Bits of an IPv6 address that name its network.
const V6_NET_SHIFT: u32 = 64;

impl AddrKey {
    /// The key of `ip`; an IPv4 address mapped into IPv6 counts as itself.
    pub(crate) fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(v4),
                None => AddrKey::V6Net((u128::from(v6) >> V6_NET_SHIFT) as u64),
            },
        }
    }
}

/// `192.0.2.1`, or `2001:db8:1:2::/64`: what the refusal names.
impl fmt::Display for AddrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrKey::V4(v4) => write!(f, "{v4}"),
            AddrKey::V6Net(net) => {
                let ip = std::net::Ipv6Addr::from(u128::from(*net) << V6_NET_SHIFT);
                write!(f, "{ip}/64")
            }
        }
    }
}

/// Whether `ip` is a loopback address (IPv4-mapped ones included).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// One address's open connections.
#[derive(Debug, Default)]
struct Entry {
    open: usize,
    /// A refusal was logged since the address was last under its limit: the
    /// rest of the burst is counted, not logged.
    told: bool,
}

/// Connections per address.
#[derive(Default)]
pub(super) struct PerAddress {
    counts: Mutex<HashMap<AddrKey, Entry>>,
}

/// The answer of [`PerAddress::admit`].
pub(super) enum AddrCheck {
    /// Counted: the slot is given back when this drops.
    Counted(AddrSlot),
    /// Not counted (no limit, or an exempt loopback peer).
    Exempt,
    /// Over the limit. `log` is true for the first refusal of a burst.
    Refused { key: AddrKey, log: bool },
}

impl PerAddress {
    fn lock(&self) -> MutexGuard<'_, HashMap<AddrKey, Entry>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection from `ip` if its address is under the limit.
    pub(super) fn admit(sh: &Arc<Shared>, ip: IpAddr) -> AddrCheck {
        let Some(limit) = sh.config.max_per_ip.filter(|n| *n > 0) else {
            return AddrCheck::Exempt;
        };
        if !sh.config.max_per_ip_loopback && is_loopback(ip) {
            return AddrCheck::Exempt;
        }
        let key = AddrKey::of(ip);
        let mut counts = sh.per_addr.lock();
        let e = counts.entry(key).or_default();
        if e.open >= limit {
            let log = !e.told;
            e.told = true;
            return AddrCheck::Refused { key, log };
        }
        e.open += 1;
        AddrCheck::Counted(AddrSlot {
            sh: sh.clone(),
            key,
            limit,
        })
    }

    fn release(&self, key: AddrKey, limit: usize) {
        let mut counts = self.lock();
        if let Some(e) = counts.get_mut(&key) {
            e.open = e.open.saturating_sub(1);
            if e.open < limit {
                // The burst is over: the next refusal is news again.
                e.told = false;
            }
            if e.open == 0 {
                counts.remove(&key);
            }
        }
    }

    /// Addresses with a connection open (for tests: nothing leaks).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

/// One counted connection of an address; dropping it gives the slot back
/// (also when its session thread never started).
pub(super) struct AddrSlot {
    sh: Arc<Shared>,
    key: AddrKey,
    /// The limit it was counted under, to know when a burst is over.
    limit: usize,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        self.sh.per_addr.release(self.key, self.limit);
    }
}

/// Connections that have not yet sent a complete line: the ones a full
/// server may close to make room, since they hold a slot without being
/// anyone yet. Authenticated chat users and plain sessions past their first
/// line are never here.
#[derive(Default)]
pub(super) struct Waiting {
    inner: Mutex<WaitingInner>,
}

#[derive(Default)]
struct WaitingInner {
    /// By connection id, which grows with the accept order: the first is the
    /// one waiting longest.
    owing: BTreeMap<u64, (Instant, Arc<Conn>)>,
    /// Evicted, their threads not yet gone: their slots are promised to the
    /// newcomers that evicted them.
    evicting: HashSet<u64>,
}

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, WaitingInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection accepted at `since` that owes its first line.
    pub(super) fn add(&self, conn: &Arc<Conn>, since: Instant) {
        self.lock().owing.insert(conn.id, (since, conn.clone()));
    }

    /// Its first line came: from now on it is never evicted. `false`: it was
    /// evicted already (the session must stop without handling the line).
    pub(super) fn first_line(&self, id: u64) -> bool {
        let mut w = self.lock();
        w.owing.remove(&id).is_some() || !w.evicting.contains(&id)
    }

    /// Its session ended.
    pub(super) fn gone(&self, id: u64) {
        let mut w = self.lock();
        w.owing.remove(&id);
        w.evicting.remove(&id);
    }

    /// Slots held by evicted sessions still on their way out.
    pub(super) fn evicting(&self) -> usize {
        self.lock().evicting.len()
    }

    /// Takes the connection waiting longest for its first line, and how long
    /// it waited; the caller closes it.
    pub(super) fn evict_oldest(&self) -> Option<(Arc<Conn>, Duration)> {
        let mut w = self.lock();
        let (id, (since, conn)) = w.owing.pop_first()?;
        w.evicting.insert(id);
        Some((conn, since.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::eventlog::EventLog;
    use crate::server::ServerConfig;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_itself() {
        let a = AddrKey::of(ip("2001:db8:1:2::1"));
        let b = AddrKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let c = AddrKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            AddrKey::of(ip("::ffff:192.0.2.7")),
            AddrKey::of(ip("192.0.2.7"))
        );
        assert_eq!(AddrKey::of(ip("192.0.2.7")).to_string(), "192.0.2.7");
        assert!(is_loopback(ip("127.0.0.2")));
        assert!(is_loopback(ip("::1")));
        assert!(is_loopback(ip("::ffff:127.0.0.1")));
        assert!(!is_loopback(ip("192.0.2.7")));
    }

    /// A server that only holds the shared state (it is never started).
    fn shared(tweak: impl FnOnce(&mut ServerConfig)) -> Arc<Shared> {
        let mut config = ServerConfig::default();
        tweak(&mut config);
        Arc::new(Shared {
            log: EventLog::null(),
            config,
            hub: Default::default(),
            counters: Default::default(),
            last_rate_bits: Default::default(),
            shutdown: crate::shutdown::Shutdown::new(),
            active: Default::default(),
            next_id: Default::default(),
            per_addr: PerAddress::default(),
            waiting: Waiting::default(),
            cluster: None,
            started: Instant::now(),
            local_addr: "127.0.0.1:1".parse().expect("addr"),
            slice: super::super::slice::Slice::new(None, false),
        })
    }

    #[test]
    fn per_address_limit_logs_once_per_burst_and_frees_its_slots() {
        let sh = shared(|c| c.max_per_ip = Some(2));
        let peer = ip("192.0.2.7");
        let counted = |c: AddrCheck| match c {
            AddrCheck::Counted(s) => s,
            _ => panic!("not counted"),
        };
        let a = counted(PerAddress::admit(&sh, peer));
        let b = counted(PerAddress::admit(&sh, peer));
        let logs: Vec<bool> = (0..3)
            .map(|_| match PerAddress::admit(&sh, peer) {
                AddrCheck::Refused { key, log } => {
                    assert_eq!(key.to_string(), "192.0.2.7");
                    log
                }
                _ => panic!("not refused"),
            })
            .collect();
        assert_eq!(logs, [true, false, false]);
        // Another address is not affected; loopback is exempt.
        let _other = counted(PerAddress::admit(&sh, ip("192.0.2.8")));
        assert!(matches!(
            PerAddress::admit(&sh, ip("127.0.0.1")),
            AddrCheck::Exempt
        ));
        // One leaves: the burst is over, the next refusal is logged again.
        drop(a);
        let c = counted(PerAddress::admit(&sh, peer));
        assert!(matches!(
            PerAddress::admit(&sh, peer),
            AddrCheck::Refused { log: true, .. }
        ));
        drop((b, c, _other));
        assert_eq!(sh.per_addr.tracked(), 0);
    }

    #[test]
    fn loopback_is_limited_only_when_asked_and_zero_is_off() {
        let sh = shared(|c| {
            c.max_per_ip = Some(1);
            c.max_per_ip_loopback = true;
        });
        let _a = PerAddress::admit(&sh, ip("::1"));
        assert!(matches!(
            PerAddress::admit(&sh, ip("::1")),
            AddrCheck::Refused { .. }
        ));
        let off = shared(|c| c.max_per_ip = Some(0));
        assert!(matches!(
            PerAddress::admit(&off, ip("192.0.2.1")),
            AddrCheck::Exempt
        ));
    }

    #[test]
    fn the_longest_waiting_is_evicted_first_and_a_first_line_protects() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let conn = |id: u64| {
            let s = std::net::TcpStream::connect(addr).expect("connect");
            Arc::new(Conn::new(
                id,
                addr,
                crate::tls::stream::ServerStream::Plain(s),
            ))
        };
        let w = Waiting::default();
        let t0 = Instant::now();
        let (a, b, c) = (conn(1), conn(2), conn(3));
        w.add(&b, t0);
        w.add(&a, t0);
        w.add(&c, t0);
        // b said its line: only a and c can go, a first (it came first).
        assert!(w.first_line(2));
        let (first, _) = w.evict_oldest().expect("one to evict");
        assert_eq!(first.id, 1);
        assert_eq!(w.evicting(), 1);
        // Its line, arriving after the eviction, is not handled.
        assert!(!w.first_line(1));
        w.gone(1);
        assert_eq!(w.evicting(), 0);
        assert_eq!(w.evict_oldest().map(|(c, _)| c.id), Some(3));
        assert!(w.evict_oldest().is_none(), "b is never evicted");
        w.gone(3);
        w.gone(2);
        assert_eq!(w.evicting(), 0);
        // A session never registered (no deadline) always goes on.
        assert!(w.first_line(9));
    }
}

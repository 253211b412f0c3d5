//! The accept thread's side of the server: admitting a connection (or
//! refusing it when its address has too many or the server is full, after
//! evicting someone who owes a first line if it can), starting its session
//! thread, and the guard that cleans up however that thread ends.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::accept::{self, Accept};
use crate::cluster::RoomEvent;
use crate::eventlog::{EventKind, LogMessage};
use crate::protocol::{self, ServerMsg};
use crate::shutdown::Tracked;
use crate::sys;
use crate::tls::stream::{ServerStream, TlsStream};

use super::Shared;
use super::conn::{Conn, DisconnectReason};
use super::limits::{AddrCheck, AddrSlot, PerAddress};
use super::session::Session;
use super::stats::ErrorKind;

/// Stack for a client's reader thread: it parses JSON and formats lines, with
/// buffers on the heap, so 128 KiB is plenty and lets thousands of clients fit.
const READER_STACK: usize = 128 * 1024;
/// Longest keepalive idle time: peers that vanished are noticed within it
/// even with a long idle timeout.
const MAX_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// The chat listener's handler for [`accept::run`].
struct ChatListener(Arc<Shared>);

impl Accept for ChatListener {
    fn accepted(&mut self, stream: TcpStream, peer: SocketAddr) {
        admit(&self.0, stream, peer);
    }

    fn failed(&mut self, e: &io::Error, first: bool) {
        // EMFILE, ENFILE, ECONNABORTED...: transient. Log once per burst.
        if first {
            self.0.error_as(
                ErrorKind::Accept,
                "accept",
                &format!("cannot accept connections: {e}; retrying"),
            );
        }
    }
}

/// The `chatmon-accept` thread.
pub(super) fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    let shutdown = sh.shutdown.clone();
    // A new connection waits on this thread too.
    sh.slice.apply();
    accept::run(&listener, &shutdown, &mut ChatListener(sh));
}

fn admit(sh: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let addr_slot = match PerAddress::admit(sh, peer.ip()) {
        AddrCheck::Counted(slot) => Some(slot),
        AddrCheck::Exempt => None,
        AddrCheck::Refused { key, log } => {
            let limit = sh.config.max_per_ip.unwrap_or_default();
            // Counted before the peer hears it: whoever sees the refusal
            // sees it counted.
            let what = format!("refused: too many connections from {key} ({limit})");
            if log {
                sh.error_as(ErrorKind::PerAddress, &peer.to_string(), &what);
            } else {
                sh.count_error(ErrorKind::PerAddress);
            }
            turn_away(
                sh,
                &stream,
                &format!("Error: too many connections from {key} ({limit}), try again later\n"),
            );
            return;
        }
    };
    if !make_room(sh) {
        sh.counters.refused.fetch_add(1, Ordering::Relaxed);
        sh.error_as(
            ErrorKind::Refused,
            &peer.to_string(),
            &format!(
                "refused: server is full ({} clients)",
                sh.config.max_clients
            ),
        );
        turn_away(
            sh,
            &stream,
            &format!(
                "Error: server is full ({} clients), try again later\n",
                sh.config.max_clients
            ),
        );
        return;
    }
    let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_write_timeout(Some(sh.config.write_timeout));
    if let Some(idle) = sh.config.idle_timeout {
        let _ = sys::set_keepalive(&stream, idle.min(MAX_KEEPALIVE_IDLE));
    }
    let stream = match &sh.config.tls {
        None => ServerStream::Plain(stream),
        // The config of the moment: a reload later does not touch this one.
        Some(tls) => match TlsStream::new(stream, tls.current()) {
            Ok(s) => ServerStream::Tls(Box::new(s)),
            Err(e) => {
                sh.error_as(
                    ErrorKind::Tls,
                    &peer.to_string(),
                    &format!("cannot start a TLS session: {e}"),
                );
                return;
            }
        },
    };
    let conn = Arc::new(Conn::new(id, peer, stream));
    if sh.line_deadline().is_some() {
        sh.waiting.add(&conn, Instant::now());
    }
    sh.active.fetch_add(1, Ordering::SeqCst);
    sh.counters.accepted.fetch_add(1, Ordering::Relaxed);
    sh.lock_conns().insert(id, conn.clone());
    sh.log.record(
        EventKind::Connection,
        &LogMessage::ServerConnected {
            peer: &peer.to_string(),
        },
    );
    let s = sh.clone();
    let c = conn.clone();
    // Counted from now, so that a stop cannot miss a session being started.
    let tracked = sh.shutdown.track();
    let spawned = thread::Builder::new()
        .name(format!("client-{id}"))
        .stack_size(READER_STACK)
        .spawn(move || {
            let _guard = SessionGuard {
                sh: s.clone(),
                conn: c.clone(),
                _addr_slot: addr_slot,
                _tracked: tracked,
            };
            s.slice.apply();
            Session::new(s, c).run();
        });
    if let Err(e) = spawned {
        let _ = conn.write_line(b"Error: server cannot take more clients right now\n");
        conn.close(DisconnectReason::NoThread);
        sh.lock_conns().remove(&id);
        sh.waiting.gone(id);
        sh.active.fetch_sub(1, Ordering::SeqCst);
        sh.error_as(
            ErrorKind::Thread,
            &peer.to_string(),
            &format!("cannot start a thread: {e}"),
        );
    }
}

/// One line to a connection the server will not serve, then the close.
/// Non-blocking: the accept loop must never wait on a refused peer. A TLS
/// client could not read clear text (and turned-away connections get no
/// handshake, which would cost the accept thread): it is only closed.
/// Connections still in their TLS handshake count as clients, so half-open
/// handshakes take slots, never more than the limit.
fn turn_away(sh: &Shared, stream: &TcpStream, line: &str) {
    let _ = stream.set_nonblocking(true);
    if sh.config.tls.is_none() {
        let _ = (&*stream).write(line.as_bytes());
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Whether a newcomer fits: under `max_clients`, or once the connection that
/// has waited longest without a complete first line has been closed for it
/// (never someone who has said hello). Evictions need the hello deadline:
/// with `line_timeout` off, a full server refuses as it always did.
fn make_room(sh: &Shared) -> bool {
    let held = sh
        .active
        .load(Ordering::SeqCst)
        .saturating_sub(sh.waiting.evicting());
    if held < sh.config.max_clients {
        return true;
    }
    if sh.line_deadline().is_none() {
        return false;
    }
    let Some((victim, waited)) = sh.waiting.evict_oldest() else {
        return false;
    };
    if victim.reason().is_some() {
        // Already closed (its deadline passed), its thread on its way out:
        // its slot is the newcomer's, and nobody is evicted.
        return true;
    }
    let reason = DisconnectReason::Evicted(waited);
    // A courtesy line, only if it can go at once: the accept thread must not
    // wait on a peer that may not read (nor on its session's own write).
    // A TLS peer (still in its handshake) gets no clear text.
    if let ServerStream::Plain(sock) = &victim.stream
        && let Ok(_g) = victim.write_lock.try_lock()
    {
        let _ = sys::send_nowait(sock, format!("Error: {reason}, closing\n").as_bytes());
    }
    sh.error_as(
        ErrorKind::Evicted,
        &victim.peer.to_string(),
        &reason.to_string(),
    );
    victim.close(reason);
    true
}

/// Ends a session whatever way its thread ends (even by panic): leaves the
/// room, closes the socket, logs the disconnection, frees the slot.
struct SessionGuard {
    sh: Arc<Shared>,
    conn: Arc<Conn>,
    /// Its address's count, given back after the body of `drop`.
    _addr_slot: Option<AddrSlot>,
    /// Dropped last, after the body of `drop`: the server's stop waits for it.
    _tracked: Tracked,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let sh = &self.sh;
        let id = self.conn.id;
        let member = sh.hub.leave(id);
        let reason = self.conn.reason().unwrap_or(DisconnectReason::ClosedByPeer);
        let who = match &member {
            Some(m) => format!("{}@{}", m.name, self.conn.peer),
            None => self.conn.peer.to_string(),
        };
        if let Some(m) = &member {
            let _ = m.outbox.close_with(None);
        }
        if let Some(tls) = self.conn.stream.tls() {
            // Lets the client tell our close from a cut; skipped when a
            // writer is stuck or the handshake never finished.
            tls.try_close_notify();
        }
        let _ = self.conn.stream.shutdown(Shutdown::Both);
        sh.log.record(
            EventKind::Disconnection,
            &LogMessage::ServerDisconnected {
                who: &who,
                reason: &reason.to_string(),
            },
        );
        // The cluster heard of the join before the welcome, so it hears of
        // the leave even if the join was never announced here. At shutdown
        // the node's goodbye says it for everyone at once.
        if let Some(m) = &member
            && !sh.shutdown.is_triggered()
        {
            sh.to_cluster(RoomEvent::Leave {
                name: m.name.clone(),
                reason: reason.to_string(),
            });
        }
        if let Some(m) = member
            && m.announced
            && !sh.shutdown.is_triggered()
        {
            let users = sh.room_size();
            let line = protocol::encode(&ServerMsg::Leave {
                name: m.name,
                users,
                reason: reason.to_string(),
            });
            sh.relay(line.into(), Some(id));
        }
        // Before the slot is freed: an evicted session's slot stays promised
        // to its newcomer until here.
        sh.waiting.gone(id);
        sh.active.fetch_sub(1, Ordering::SeqCst);
    }
}

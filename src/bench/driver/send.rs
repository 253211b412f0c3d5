//! A client's sending side: when each message is due (closed loop: after
//! the last reply; open loop: on one evenly spaced schedule over all
//! clients), what it says, and the messages still waiting for a reply.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crate::tls::client::ClientWriter;
use tokio::io::AsyncWriteExt;

use super::RowShared;
use crate::bench::{Mode, Stop};
use crate::protocol::{self, ClientMsg};

/// Replies in flight on one connection in open loop before the client holds
/// back: without a cap a stalled server would make the client write until the
/// socket buffers fill and then neither side could make progress. Held-back
/// messages keep their intended send time, so the cap hides nothing.
const MAX_PIPELINE: usize = 1024;
/// Bytes of a chat message beyond its payload: the JSON around the text.
const CHAT_OVERHEAD: usize = 64;

/// Intended send time of a client's `k`-th message in open loop, from the
/// start of the row: message `k * clients + client` of one evenly spaced
/// stream at `rate` messages per second in total.
pub fn intended_offset(client: usize, clients: usize, rate: f64, k: u64) -> Duration {
    let j = k as f64 * clients as f64 + client as f64;
    Duration::from_secs_f64(j / rate)
}

/// A message on its way.
pub(super) struct InFlight {
    /// Message number on this connection (the chat id).
    pub(super) k: u64,
    /// When it was meant to go out: latency counts from here, not from when
    /// the client got round to writing it.
    pub(super) intended: Instant,
    /// Intended after the warm-up.
    pub(super) measured: bool,
}

/// One client's sending state.
pub(super) struct Sender {
    /// This client's place in the open-loop schedule.
    client: usize,
    /// The server (of several) this client is on: chat texts carry it, so
    /// a receiver can tell a same-node relay from a cross-node one.
    node: usize,
    /// Number of the next message.
    k: u64,
    measured_sent: u64,
    /// Nothing more to send (the stop condition was met).
    finished: bool,
    /// Sent and not yet answered, oldest first.
    pending: VecDeque<InFlight>,
    /// Messages due now, written with one `write_all`.
    out: Vec<u8>,
}

impl Sender {
    pub(super) fn new(client: usize, node: usize, size: usize) -> Sender {
        Sender {
            client,
            node,
            k: 0,
            measured_sent: 0,
            finished: false,
            pending: VecDeque::new(),
            out: Vec::with_capacity(size + CHAT_OVERHEAD),
        }
    }

    pub(super) fn node(&self) -> usize {
        self.node
    }

    /// Whether the client has sent all it will send.
    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    /// Messages sent and not answered.
    pub(super) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Intended send time of the oldest unanswered message.
    pub(super) fn oldest_due(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.intended)
    }

    /// The oldest unanswered message, taken as answered (or lost).
    pub(super) fn pop_oldest(&mut self) -> Option<InFlight> {
        self.pending.pop_front()
    }

    /// Message `id`, answered, with how many older messages were skipped
    /// (their replies never came: replies come in order). `None`: no such
    /// message is waiting. A search, not the oldest, so that one lost reply
    /// does not shift every later match.
    pub(super) fn take_answered(&mut self, id: u64) -> Option<(u64, InFlight)> {
        let i = self.pending.iter().position(|p| p.k == id)?;
        self.pending.drain(..i);
        let p = self.pending.pop_front()?;
        Some((i as u64, p))
    }

    /// Writes every message that is due now: one after the last reply in
    /// closed loop; every scheduled one up to now in open loop.
    pub(super) async fn send_due(
        &mut self,
        sh: &RowShared,
        wr: &mut ClientWriter,
        now: Instant,
    ) -> io::Result<()> {
        while !self.finished {
            let intended = match sh.rate {
                None => {
                    if !self.pending.is_empty() {
                        break;
                    }
                    now.max(sh.start)
                }
                Some(rate) => {
                    let t = sh.start + intended_offset(self.client, sh.clients, rate, self.k);
                    if t > now || self.pending.len() >= MAX_PIPELINE {
                        break;
                    }
                    t
                }
            };
            let measured = intended >= sh.measure_from;
            match sh.stop {
                Stop::Duration(d) if intended >= sh.measure_from + d => {
                    self.finished = true;
                    break;
                }
                Stop::Messages(m) if self.measured_sent >= m => {
                    self.finished = true;
                    break;
                }
                _ => {}
            }
            if measured {
                self.measured_sent += 1;
            }
            match sh.mode {
                Mode::Plain => {
                    self.out.extend_from_slice(&sh.payload);
                    self.out.push(b'\n');
                }
                Mode::Chat => {
                    // The intended send time leads the text, so the client
                    // that receives the relay can time it on the same clock.
                    let stamp = sh.ns_since_epoch(intended);
                    let mut text = format!("{stamp} {} ", self.node);
                    while text.len() < sh.size {
                        text.push('x');
                    }
                    let line = protocol::encode(&ClientMsg::msg(self.k, text));
                    self.out.extend_from_slice(line.as_bytes());
                }
            }
            self.pending.push_back(InFlight {
                k: self.k,
                intended,
                measured,
            });
            self.k += 1;
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let mut r = wr.write_all(&self.out).await;
        if r.is_ok() {
            // A TLS record that did not fit in the socket waits in rustls
            // until flushed (free on a plain socket).
            r = wr.flush().await;
        }
        self.out.clear();
        r
    }

    /// When the task must wake up next without input: the next scheduled send
    /// (open loop) or the oldest reply's deadline.
    pub(super) fn next_wake(&self, sh: &RowShared) -> Option<Instant> {
        let send = match sh.rate {
            Some(rate) if !self.finished && self.pending.len() < MAX_PIPELINE => {
                Some(sh.start + intended_offset(self.client, sh.clients, rate, self.k))
            }
            _ => None,
        };
        let deadline = self.oldest_due().map(|t| t + sh.timeout);
        match (send, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_schedule_is_evenly_spaced_over_all_clients() {
        // 4 clients at 400 msg/s: one message every 2.5 ms overall, every
        // 10 ms per client, client i offset by i * 2.5 ms.
        assert_eq!(intended_offset(0, 4, 400.0, 0), Duration::ZERO);
        assert_eq!(intended_offset(1, 4, 400.0, 0), Duration::from_micros(2500));
        assert_eq!(intended_offset(0, 4, 400.0, 1), Duration::from_millis(10));
        assert_eq!(
            intended_offset(3, 4, 400.0, 2),
            Duration::from_micros(27_500)
        );
    }

    #[test]
    fn an_answer_skips_older_lost_messages() {
        let t = Instant::now();
        let mut s = Sender::new(0, 0, 8);
        for k in 0..4 {
            s.pending.push_back(InFlight {
                k,
                intended: t,
                measured: true,
            });
        }
        assert!(s.take_answered(9).is_none());
        assert_eq!(s.in_flight(), 4);
        let (skipped, p) = s.take_answered(2).expect("waiting");
        assert_eq!((skipped, p.k), (2, 2));
        assert_eq!(s.pop_oldest().map(|p| p.k), Some(3));
        assert_eq!(s.in_flight(), 0);
    }
}

//! A client's receiving side: framing what the server sends, matching
//! replies to the messages waiting for them, and timing relays (chat mode).

use std::time::{Duration, Instant};

use super::RowShared;
use super::send::{InFlight, Sender};
use crate::bench::samples::ClientResult;
use crate::bench::{Mode, quote, reply};
use crate::protocol::{self, Frame, LineFramer, ServerMsg};

/// One client's receiving state.
pub(super) struct Receiver {
    framer: LineFramer,
    /// Reused between reads, so framing allocates nothing per read.
    frames: Vec<Frame>,
    /// Whether this server prefixes its replies (see
    /// [`reply::plain_reply_matches`]).
    seen_prefix: bool,
}

impl Receiver {
    pub(super) fn new(framer: LineFramer) -> Receiver {
        Receiver {
            framer,
            frames: Vec::new(),
            seen_prefix: false,
        }
    }

    pub(super) fn on_bytes(
        &mut self,
        bytes: &[u8],
        sh: &RowShared,
        tx: &mut Sender,
        res: &mut ClientResult,
        now: Instant,
    ) {
        self.framer.push(bytes, &mut self.frames);
        let mut frames = std::mem::take(&mut self.frames);
        for f in frames.drain(..) {
            match f {
                Frame::TooLong { len } => {
                    res.error(1, || format!("the server sent a {len}-byte line"));
                    tx.pop_oldest();
                }
                Frame::Line(line) => match sh.mode {
                    Mode::Plain => self.plain_line(&line, sh, tx, res, now),
                    Mode::Chat => chat_line(&line, sh, tx, res, now),
                },
            }
        }
        self.frames = frames;
    }

    fn plain_line(
        &mut self,
        line: &[u8],
        sh: &RowShared,
        tx: &mut Sender,
        res: &mut ClientResult,
        now: Instant,
    ) {
        let Some(p) = tx.pop_oldest() else {
            res.error(1, || {
                format!("unexpected line from the server: {}", quote(line))
            });
            return;
        };
        if reply::plain_reply_matches(line, &sh.payload, &mut self.seen_prefix) {
            record_reply(&p, sh, res, now);
        } else {
            res.error(1, || format!("unexpected reply: {}", quote(line)));
        }
    }
}

fn record_reply(p: &InFlight, sh: &RowShared, res: &mut ClientResult, now: Instant) {
    if !p.measured {
        return;
    }
    res.rtt.record(now.saturating_duration_since(p.intended));
    res.messages += 1;
    res.last_reply = Some(now);
    sh.completed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn chat_line(line: &[u8], sh: &RowShared, tx: &mut Sender, res: &mut ClientResult, now: Instant) {
    match protocol::decode::<ServerMsg>(line) {
        Ok(ServerMsg::Reply {
            id,
            read_us,
            write_us,
            ..
        }) => match tx.take_answered(id) {
            Some((stale, p)) => {
                if stale > 0 {
                    res.error(stale, || format!("replies before #{id} never came"));
                }
                if p.measured
                    && let (Some(r), Some(w)) = (read_us, write_us)
                {
                    let rtt = now.saturating_duration_since(p.intended);
                    let server =
                        Duration::from_micros(w.saturating_sub(r).max(0).unsigned_abs()).min(rtt);
                    res.server.record(server);
                    res.network.record(rtt - server);
                }
                record_reply(&p, sh, res, now);
            }
            None => res.error(1, || format!("a reply to #{id}, which was not sent")),
        },
        Ok(ServerMsg::Chat { text, .. }) => {
            // The sender's intended send time leads the text, then its
            // server's index (see `send`).
            let mut words = text.split(' ');
            let stamp = words.next().and_then(|s| s.parse::<u64>().ok());
            let from_node = words.next().and_then(|s| s.parse::<usize>().ok());
            if let Some(sent) = stamp
                && sent >= sh.ns_since_epoch(sh.measure_from)
            {
                let now_ns = sh.ns_since_epoch(now);
                let d = Duration::from_nanos(now_ns.saturating_sub(sent));
                res.relay.record(d);
                if sh.nodes > 1 {
                    if from_node == Some(tx.node()) {
                        res.relay_same.record(d);
                    } else {
                        res.relay_cross.record(d);
                    }
                }
            }
        }
        Ok(ServerMsg::Error { message }) => {
            tx.pop_oldest();
            res.error(1, || format!("the server says: {message}"));
        }
        Ok(ServerMsg::Shutdown { message }) => {
            res.error(1, || format!("the server is stopping: {message}"));
        }
        Ok(_) => {}
        Err(e) => res.error(1, || format!("a line that is not chat protocol: {e}")),
    }
}

//! The NATS side of the bridge: connects (retrying for ever, so a node whose
//! NATS is unreachable at start runs single until it comes), publishes the
//! node's stream and heartbeats on the room's bus subject, answers and sends
//! roster requests, and turns what arrives into [`ClusterEvent`]s. Runs on
//! the bridge thread's own tokio runtime; the hub never waits on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, Request, RequestErrorKind, Subscriber};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::presence::Update;
use super::wire::{self, Body, Envelope, WIRE_VERSION};
use super::{ClusterError, ClusterEvent, LinkState, Shared, Started, now_us};

/// How often liveness and due roster requests are checked.
const TICK: Duration = Duration::from_millis(250);
/// How long a roster request waits for its answer.
const ROSTER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the goodbye may take to leave at shutdown.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// Suffixes tried when the node name is taken.
const MAX_NODE_SUFFIX: usize = 99;

/// What every task needs: the shared state, the NATS client and this node's
/// final name.
#[derive(Clone)]
struct Ctx {
    sh: Arc<Shared>,
    client: Client,
    node: Arc<str>,
    bus: Arc<str>,
    /// Nodes whose roster is due, for the roster task.
    roster_tx: mpsc::UnboundedSender<String>,
}

impl Ctx {
    fn envelope(&self, seq: u64, body: Body) -> Envelope {
        Envelope {
            v: WIRE_VERSION,
            node: self.node.to_string(),
            inc: self.sh.inc,
            seq,
            ts_us: now_us(),
            body,
        }
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    async fn emit(&self, ev: ClusterEvent) {
        // Waits when the hub is behind: the bridge then stops reading NATS
        // and what NATS drops for it shows up as sequence gaps, counted.
        let _ = self.sh.inbound.send(ev).await;
    }

    /// Sends presence updates on: roster requests to the roster task, the
    /// rest to the hub.
    async fn forward(&self, out: Vec<Update>) {
        for u in out {
            let ev = match u {
                Update::RequestRoster { node } => {
                    let _ = self.roster_tx.send(node);
                    continue;
                }
                Update::Joined { node, name } => ClusterEvent::Joined { node, name },
                Update::Left { node, name, reason } => ClusterEvent::Left { node, name, reason },
                Update::Renamed { node, old, new } => ClusterEvent::Renamed { node, old, new },
                Update::NodeJoined { node } => ClusterEvent::NodeJoined { node },
                Update::NodeLost { node } => ClusterEvent::NodeLost { node },
                Update::NodeLeft { node } => ClusterEvent::NodeLeft { node },
                Update::RenameLocal { name } => ClusterEvent::RenameLocal { name },
                Update::Missed { node, count } => ClusterEvent::Missed { node, count },
            };
            self.emit(ev).await;
        }
    }

    async fn heartbeat(&self) {
        if !self.connected() {
            return;
        }
        // Read after the publisher stored it, so this heartbeat is queued
        // after the message it counts.
        let last_seq = self.sh.last_seq.load(Ordering::SeqCst);
        let (digest, users) = {
            let p = self.sh.presence();
            (p.local_digest(), p.local_len())
        };
        let env = self.envelope(
            0,
            Body::Heartbeat {
                last_seq,
                digest,
                users,
            },
        );
        let _ = self
            .client
            .publish(self.bus.to_string(), env.encode().into())
            .await;
    }
}

/// The bridge thread: a one-thread runtime for every NATS task.
pub(crate) fn run(
    sh: Arc<Shared>,
    out_rx: mpsc::Receiver<Body>,
    stop_rx: oneshot::Receiver<()>,
    ready: SyncSender<Result<Started, ClusterError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(ClusterError::Start(format!("no runtime: {e}"))));
            return;
        }
    };
    rt.block_on(bridge(sh, out_rx, stop_rx, ready));
}

async fn bridge(
    sh: Arc<Shared>,
    out_rx: mpsc::Receiver<Body>,
    mut stop_rx: oneshot::Receiver<()>,
    ready: SyncSender<Result<Started, ClusterError>>,
) {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let cfg = &sh.config;
    let mut opts = ConnectOptions::new()
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        // Notice a dead link in seconds, not the default minute.
        .ping_interval(Duration::from_secs(2))
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 250).min(2_000)))
        .name(format!("chatmon {}", cfg.node))
        .event_callback(move |e| {
            let tx = ev_tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
    if let Some(t) = cfg.token.clone().filter(|t| !t.is_empty()) {
        opts = opts.token(t);
    }
    let client = match opts.connect(cfg.urls.clone()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(ClusterError::Start(format!("NATS client: {e}"))));
            return;
        }
    };
    let connected = first_connection(&mut ev_rx, cfg.connect_wait).await;
    let node = if connected {
        sh.set_link(LinkState::Up);
        free_node_name(&client, &cfg.room, &cfg.node).await
    } else {
        cfg.node.clone()
    };
    sh.presence().set_me(&node);
    let (roster_tx, roster_rx) = mpsc::unbounded_channel();
    let ctx = Ctx {
        sh: sh.clone(),
        client: client.clone(),
        node: node.as_str().into(),
        bus: wire::bus_subject(&cfg.room).into(),
        roster_tx,
    };
    let subs = match subscribe(&ctx).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(ClusterError::Start(e)));
            return;
        }
    };
    let _ = ready.send(Ok(Started {
        node: node.clone(),
        connected,
    }));
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let publisher = tokio::spawn(publisher(ctx.clone(), out_rx, stopping_rx));
    let tasks = [
        tokio::spawn(receiver(ctx.clone(), subs.0)),
        tokio::spawn(responder(ctx.clone(), subs.1)),
        tokio::spawn(roster_requests(ctx.clone(), roster_rx)),
    ];
    if connected {
        ctx.heartbeat().await;
    }
    control(&ctx, &mut ev_rx, &mut stop_rx).await;
    // Stop: whatever still waits to cross is counted, then goodbye.
    let _ = stopping_tx.send(true);
    let _ = tokio::time::timeout(GOODBYE_WAIT, publisher).await;
    if ctx.connected() {
        let last_seq = sh.last_seq.load(Ordering::SeqCst);
        let env = ctx.envelope(0, Body::Goodbye { last_seq });
        let bye = async {
            let _ = client
                .publish(ctx.bus.to_string(), env.encode().into())
                .await;
            let _ = client.flush().await;
        };
        let _ = tokio::time::timeout(GOODBYE_WAIT, bye).await;
    }
    for t in tasks {
        t.abort();
    }
    let _ = tokio::time::timeout(GOODBYE_WAIT, sh.inbound.send(ClusterEvent::Stopped)).await;
}

/// Waits for the first `Connected` event, up to `wait`.
async fn first_connection(ev_rx: &mut mpsc::UnboundedReceiver<Event>, wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, ev_rx.recv()).await {
            Ok(Some(Event::Connected)) => return true,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return false,
        }
    }
}

/// `wanted`, or `wanted-2`, `wanted-3`... the first that no live node
/// answers roster requests for.
async fn free_node_name(client: &Client, room: &str, wanted: &str) -> String {
    let probe = Envelope {
        v: WIRE_VERSION,
        node: wanted.to_string(),
        inc: 0,
        seq: 0,
        ts_us: now_us(),
        body: Body::RosterRequest,
    }
    .encode();
    for i in 1..=MAX_NODE_SUFFIX {
        let name = if i == 1 {
            wanted.to_string()
        } else {
            format!("{wanted}-{i}")
        };
        let subject = wire::roster_subject(room, &wire::subject_token(&name));
        let req = Request::new()
            .payload(probe.clone().into())
            .timeout(Some(Duration::from_secs(1)));
        match client.send_request(subject, req).await {
            // Someone answers for that name: a live node has it.
            Ok(_) => continue,
            Err(e) if e.kind() == RequestErrorKind::NoResponders => return name,
            // No answer at all is no holder either.
            Err(_) => return name,
        }
    }
    wanted.to_string()
}

async fn subscribe(ctx: &Ctx) -> Result<(Subscriber, Subscriber), String> {
    let room = &ctx.sh.config.room;
    let bus = ctx
        .client
        .subscribe(ctx.bus.to_string())
        .await
        .map_err(|e| format!("cannot subscribe to the room: {e}"))?;
    let roster = ctx
        .client
        .subscribe(wire::roster_subject(room, &wire::subject_token(&ctx.node)))
        .await
        .map_err(|e| format!("cannot subscribe to roster requests: {e}"))?;
    Ok((bus, roster))
}

/// The node's stream: each room event gets the next sequence number only
/// when NATS took it, so a drop here is never also a gap elsewhere.
async fn publisher(
    ctx: Ctx,
    mut out_rx: mpsc::Receiver<Body>,
    mut stopping: watch::Receiver<bool>,
) {
    let sh = &ctx.sh;
    loop {
        let body = tokio::select! {
            b = out_rx.recv() => b,
            _ = stopping.changed() => None,
        };
        let Some(body) = body else { break };
        if !ctx.connected() {
            sh.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let seq = sh.last_seq.load(Ordering::SeqCst) + 1;
        let env = ctx.envelope(seq, body);
        match ctx
            .client
            .publish(ctx.bus.to_string(), env.encode().into())
            .await
        {
            Ok(()) => {
                sh.last_seq.store(seq, Ordering::SeqCst);
                sh.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                sh.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // Stopping: what never crossed is counted, not lost silently.
    out_rx.close();
    while out_rx.try_recv().is_ok() {
        sh.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything on the room's bus from other nodes.
async fn receiver(ctx: Ctx, mut sub: Subscriber) {
    while let Some(msg) = sub.next().await {
        let env = match Envelope::decode(&msg.payload) {
            Ok(e) => e,
            Err(e) => {
                ctx.emit(ClusterEvent::Problem {
                    message: e.to_string(),
                })
                .await;
                continue;
            }
        };
        let mut out = Vec::new();
        let deliver = ctx.sh.presence().receive(&env, Instant::now(), &mut out);
        ctx.forward(out).await;
        if !deliver {
            continue;
        }
        match env.body {
            Body::Chat { from, text, order } => {
                let delay = now_us().saturating_sub(env.ts_us);
                ctx.sh.delay.observe(Duration::from_micros(delay));
                ctx.emit(ClusterEvent::Chat {
                    node: env.node,
                    from,
                    text,
                    order,
                    sent_us: env.ts_us,
                })
                .await;
            }
            Body::Plain { from, text } => {
                ctx.emit(ClusterEvent::Plain {
                    node: env.node,
                    from,
                    text,
                })
                .await;
            }
            _ => {}
        }
    }
}

/// Answers roster requests for this node.
async fn responder(ctx: Ctx, mut sub: Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(reply) = msg.reply else { continue };
        let users = ctx.sh.presence().local_claims();
        let last_seq = ctx.sh.last_seq.load(Ordering::SeqCst);
        let env = ctx.envelope(0, Body::Roster { last_seq, users });
        let _ = ctx.client.publish(reply, env.encode().into()).await;
    }
}

/// Sends the roster requests presence asks for, each in its own task so a
/// slow node does not hold up the others.
async fn roster_requests(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(node) = rx.recv().await {
        tokio::spawn(request_roster(ctx.clone(), node));
    }
}

async fn request_roster(ctx: Ctx, node: String) {
    if !ctx.connected() {
        ctx.sh.presence().roster_failed(&node);
        return;
    }
    let subject = wire::roster_subject(&ctx.sh.config.room, &wire::subject_token(&node));
    let req = Request::new()
        .payload(ctx.envelope(0, Body::RosterRequest).encode().into())
        .timeout(Some(ROSTER_TIMEOUT));
    let answer = match ctx.client.send_request(subject, req).await {
        Ok(msg) => Envelope::decode(&msg.payload).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(Envelope {
            node: from,
            inc,
            body: Body::Roster { last_seq, users },
            ..
        }) if from == node => {
            let mut out = Vec::new();
            ctx.sh
                .presence()
                .apply_roster(&from, inc, last_seq, &users, Instant::now(), &mut out);
            ctx.forward(out).await;
        }
        Ok(_) => {
            ctx.sh.presence().roster_failed(&node);
        }
        Err(why) => {
            ctx.sh.presence().roster_failed(&node);
            ctx.emit(ClusterEvent::Problem {
                message: format!("roster request to node {node} failed: {why}"),
            })
            .await;
        }
    }
}

/// Link events, liveness ticks and heartbeats, until told to stop.
async fn control(
    ctx: &Ctx,
    ev_rx: &mut mpsc::UnboundedReceiver<Event>,
    stop_rx: &mut oneshot::Receiver<()>,
) {
    let sh = &ctx.sh;
    let mut tick = tokio::time::interval(TICK);
    let mut beat = tokio::time::interval(sh.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_drops = 0u64;
    loop {
        tokio::select! {
            _ = &mut *stop_rx => return,
            ev = ev_rx.recv() => match ev {
                Some(Event::Connected) => {
                    sh.set_link(LinkState::Up);
                    sh.presence().resync();
                    ctx.heartbeat().await;
                    ctx.emit(ClusterEvent::Link { up: true }).await;
                }
                Some(Event::Disconnected) => {
                    sh.set_link(LinkState::Down);
                    ctx.emit(ClusterEvent::Link { up: false }).await;
                }
                Some(Event::SlowConsumer(_)) => {
                    ctx.emit(ClusterEvent::Problem {
                        message: "NATS dropped messages for this node: it reads too slowly".into(),
                    })
                    .await;
                }
                Some(Event::ServerError(e)) => {
                    ctx.emit(ClusterEvent::Problem { message: format!("NATS server error: {e}") }).await;
                }
                // While the link is not up these are the retries failing,
                // one every second or two: the link state says it already.
                Some(Event::ClientError(e)) if LinkState::from_u8(sh.link.load(Ordering::SeqCst)) == LinkState::Up => {
                    ctx.emit(ClusterEvent::Problem { message: format!("NATS client error: {e}") }).await;
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {
                let mut out = Vec::new();
                sh.presence().tick(Instant::now(), &mut out);
                ctx.forward(out).await;
                let dropped = sh.dropped.load(Ordering::Relaxed);
                if dropped > reported_drops {
                    ctx.emit(ClusterEvent::Dropped { count: dropped - reported_drops }).await;
                    reported_drops = dropped;
                }
            }
            _ = beat.tick() => ctx.heartbeat().await,
        }
    }
}

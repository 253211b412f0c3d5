//! Hot paths: what the server does per message (decode, encode, frame, log a
//! line, log a plain message's two lines) and what `chatmon report` does per line (parse, analyse).
//!
//! `cargo bench --bench hot_paths`

// Test and bench code: a failed unwrap is a failed run, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use chrono::NaiveDateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use chatmon::eventlog::{self, EventKind, EventLog, LogMessage, clock};
use chatmon::protocol::{self, ClientMsg, LineFramer, ServerMsg};
use chatmon::report;

fn time() -> NaiveDateTime {
    NaiveDateTime::parse_from_str("2026-01-02 03:04:05.678901", "%Y-%m-%d %H:%M:%S%.f")
        .expect("valid time")
}

fn protocol_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocol");
    // As the TUI sends it: with its send time and clock offset.
    let msg = ClientMsg::Msg {
        id: 12345,
        text: "hello, this is a 32-byte payload".into(),
        sent_us: Some(1_764_000_000_123_456),
        offset_us: Some(-2_000_012),
        bound_us: Some(45),
    };
    g.bench_function("encode_msg", |b| {
        b.iter(|| protocol::encode(black_box(&msg)))
    });
    let reply = protocol::encode(&ServerMsg::Reply {
        id: 12345,
        text: "Server received: hello, this is a 32-byte payload".into(),
        read_us: Some(1_764_000_002_123_500),
        write_us: Some(1_764_000_002_123_531),
    });
    let reply = reply.trim_end().as_bytes().to_vec();
    g.bench_function("decode_reply", |b| {
        b.iter(|| protocol::decode::<ServerMsg>(black_box(&reply)))
    });
    // 64 KiB of 33-byte lines, fed in 4 KiB reads as a socket would.
    let mut stream = Vec::new();
    while stream.len() < 64 * 1024 {
        stream.extend_from_slice(b"hello, this is a 32-byte payload\n");
    }
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("line_framer_64k", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            let mut f = LineFramer::new(protocol::DEFAULT_MAX_LINE);
            for chunk in stream.chunks(4096) {
                f.push(black_box(chunk), &mut out);
                out.clear();
            }
        })
    });
    g.finish();
}

fn eventlog_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("eventlog");
    let t = time();
    let text = "server <- 127.0.0.1:53422: hello, this is a 32-byte payload";
    g.bench_function("format_line", |b| {
        b.iter(|| eventlog::format_line(&EventKind::MessageReceived, black_box(t), black_box(text)))
    });
    // What a plain session logs per message: the clock reading it took for
    // the read turned into both lines' times, both lines formatted and
    // appended in one take of the batch (the writer behind swallows them).
    let log = EventLog::null();
    let (who, payload) = ("127.0.0.1:53422", "hello, this is a 32-byte payload");
    let reply = format!("{}{payload}", protocol::REPLY_PREFIX);
    g.bench_function("log_plain_message", |b| {
        b.iter(|| {
            let at = clock::unix_nanos_at(Instant::now());
            let received = LogMessage::ServerReceived {
                who,
                id: None,
                text: black_box(payload),
            };
            let replied = LogMessage::ServerReplied {
                who,
                id: None,
                text: &reply,
            };
            log.record_pair_at(
                (
                    EventKind::MessageReceived,
                    clock::local_unix_nanos(at),
                    &received,
                ),
                (
                    EventKind::MessageSent,
                    clock::local_unix_nanos(at + 5_000),
                    &replied,
                ),
            );
        })
    });
    let chatmon_line = eventlog::format_line(
        &EventKind::MessageReceived,
        t,
        "alice <- server 127.0.0.1:7878 #42 rtt=0.213ms: Server received: hello, this is a 32-byte payload",
    );
    g.throughput(Throughput::Bytes(chatmon_line.len() as u64));
    g.bench_function("parse_line_chatmon", |b| {
        b.iter(|| eventlog::parse_line(black_box(&chatmon_line)))
    });
    let seed_line = "Message Received: 2024-10-13 14:35:46 - Server received: Hello, Server!";
    g.throughput(Throughput::Bytes(seed_line.len() as u64));
    g.bench_function("parse_line_seed", |b| {
        b.iter(|| eventlog::parse_line(black_box(seed_line)))
    });
    g.finish();
}

fn report_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("report");
    // A mix like a real chatmon log: server receive/send, client send/receive.
    let mut log = String::new();
    let t = time();
    for i in 0..10_000u64 {
        let who = format!("client{}", i % 50);
        log.push_str(&eventlog::format_line(
            &EventKind::MessageReceived,
            t,
            &format!("server <- {who}@127.0.0.1:5{:04}: payload {i}", i % 50),
        ));
        log.push_str(&eventlog::format_line(
            &EventKind::MessageReceived,
            t,
            &format!(
                "{who} <- server 127.0.0.1:7878 #{i} rtt=0.{:03}ms: Server received: payload {i}",
                i % 1000
            ),
        ));
    }
    g.throughput(Throughput::Bytes(log.len() as u64));
    g.bench_function("analyse_20k_lines", |b| {
        b.iter(|| report::analyse(black_box(log.as_bytes()), &report::ReportOptions::default()))
    });
    g.finish();
}

criterion_group!(benches, protocol_paths, eventlog_paths, report_paths);
criterion_main!(benches);

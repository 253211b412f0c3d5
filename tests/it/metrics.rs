//! The Prometheus endpoint (`serve --metrics`): figures move with traffic,
//! the HTTP side is strict and bounded, and a real Prometheus tool accepts the
//! output.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use chatmon::metrics::{MAX_INFLIGHT, MetricsServer, PROMETHEUS_CONTENT_TYPE, REQUEST_TIMEOUT};
use chatmon::protocol::ServerMsg;

use crate::util::process::{self, ServeCmd};
use crate::util::{Chat, Plain, TestServer, WAIT, poll};

fn start_metrics(ts: &TestServer) -> MetricsServer {
    MetricsServer::start("127.0.0.1:0".parse().expect("addr"), ts.server().monitor())
        .expect("metrics endpoint starts")
}

/// One HTTP response, as read off the wire.
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is and reads the response up to EOF (the endpoint
/// always closes), with bounded waits.
fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    s.write_all(request).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("response is UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: chatmon-test\r\n\r\n")
            .as_bytes(),
    )
}

/// Samples of one scrape, by `name{labels}` as written.
type Samples = HashMap<String, f64>;

fn parse_samples(body: &str) -> Samples {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {l:?}"));
            let v: f64 = match v {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|e| panic!("bad value in {l:?}: {e}")),
            };
            (k.to_string(), v)
        })
        .collect()
}

fn scrape(addr: SocketAddr) -> Samples {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, "HTTP/1.1 200 OK", "{}", r.body);
    parse_samples(&r.body)
}

fn val(m: &Samples, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have {:#?}", m.keys()))
}

/// Scrapes until `pred` holds (counters move just after the reply is
/// written, so a client can read its reply a moment before the count).
fn wait_samples(addr: SocketAddr, what: &str, pred: impl Fn(&Samples) -> bool) -> Samples {
    let mut last = Samples::new();
    let found = poll(WAIT, || {
        last = scrape(addr);
        pred(&last).then(|| last.clone())
    });
    found.unwrap_or_else(|| panic!("metrics never showed {what}: {last:#?}"))
}

const KINDS: [&str; 11] = [
    "refused",
    "accept",
    "thread",
    "line_too_long",
    "invalid_utf8",
    "malformed",
    "protocol_version",
    "invalid_name",
    "auth",
    "tls",
    "other",
];

fn errors(m: &Samples, kind: &str) -> f64 {
    val(m, &format!("chatmon_errors_total{{kind=\"{kind}\"}}"))
}

#[test]
fn figures_move_with_traffic_errors_and_refusals() {
    let ts = TestServer::with(|c| {
        c.max_clients = 3;
        c.max_line = 64;
    });
    let ms = start_metrics(&ts);
    let addr = ms.local_addr();

    let m = scrape(addr);
    for key in [
        "chatmon_clients_connected",
        "chatmon_connections_accepted_total",
        "chatmon_connections_refused_total",
        "chatmon_messages_received_total",
        "chatmon_messages_replied_total",
        "chatmon_messages_relayed_total",
        "chatmon_received_bytes_total",
        "chatmon_sent_bytes_total",
        "chatmon_events_dropped_total",
        "chatmon_slow_consumer_disconnects_total",
        "chatmon_reply_duration_seconds_count",
    ] {
        assert_eq!(val(&m, key), 0.0, "{key} at start");
    }
    for kind in KINDS {
        assert_eq!(errors(&m, kind), 0.0, "errors {kind} at start");
    }
    assert!(val(&m, "chatmon_start_time_seconds") > 1.6e9);

    // The room is set before any message, so that who gets each relay does
    // not depend on timing: bob's join goes to alice (1).
    let mut alice = Chat::join(ts.addr, "alice");
    // Alice's session relays her own join just after her welcome; a line
    // that is answered without a relay (bad UTF-8: an error) shows that it
    // is done, before bob arrives and could get it.
    alice.plain.send(b"\xff\n");
    alice.recv_until(|m| matches!(m, ServerMsg::Error { .. }));
    let mut bob = Chat::join(ts.addr, "bob");
    alice.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
    // Four plain round trips, each relayed to alice and bob (8).
    let mut p = Plain::new(ts.addr);
    let mut sent_bytes = 2;
    for t in ["one", "two", "three", "four"] {
        p.send(format!("{t}\n").as_bytes());
        sent_bytes += t.len() + 1;
        assert_eq!(p.line(), format!("Server received: {t}"));
        bob.recv_until(|m| matches!(m, ServerMsg::Chat { .. }));
        alice.recv_until(|m| matches!(m, ServerMsg::Chat { .. }));
    }
    // A chat round trip, relayed to bob (1).
    alice.say(1, "hi");
    alice.recv_until(|m| matches!(m, ServerMsg::Reply { id: 1, .. }));
    bob.recv_until(|m| matches!(m, ServerMsg::Chat { .. }));

    // Errors of two kinds.
    let long = format!("{}\n", "x".repeat(100));
    p.send(long.as_bytes());
    sent_bytes += long.len();
    assert!(p.line().starts_with("Error: line of 100 bytes"));
    p.send(b"\xff\xfe\n");
    sent_bytes += 3;
    assert!(p.line().contains("not valid UTF-8"));

    // A fourth connection is refused.
    let mut refused = Plain::new(ts.addr);
    assert!(refused.line().contains("server is full"), "refusal line");

    // Counters move just after the effect a client sees (a reply, a relay),
    // so wait for the whole expected picture, then check the rest.
    let expected: [(&str, f64); 13] = [
        ("chatmon_clients_connected", 3.0),
        ("chatmon_chat_clients", 2.0),
        ("chatmon_connections_accepted_total", 3.0),
        ("chatmon_connections_refused_total", 1.0),
        ("chatmon_messages_received_total", 5.0),
        ("chatmon_messages_replied_total", 5.0),
        ("chatmon_messages_relayed_total", 10.0),
        ("chatmon_reply_duration_seconds_count", 5.0),
        ("chatmon_errors_total{kind=\"line_too_long\"}", 1.0),
        ("chatmon_errors_total{kind=\"invalid_utf8\"}", 2.0),
        ("chatmon_errors_total{kind=\"refused\"}", 1.0),
        ("chatmon_events_dropped_total", 0.0),
        ("chatmon_slow_consumer_disconnects_total", 0.0),
    ];
    let m = wait_samples(addr, "the expected figures", |m| {
        expected.iter().all(|(k, v)| m.get(*k) == Some(v))
    });
    assert!(val(&m, "chatmon_received_bytes_total") >= sent_bytes as f64);
    assert!(val(&m, "chatmon_sent_bytes_total") > 0.0);
    assert_eq!(errors(&m, "line_too_long"), 1.0);
    assert_eq!(errors(&m, "invalid_utf8"), 2.0);
    assert_eq!(errors(&m, "refused"), 1.0);
    for kind in KINDS
        .iter()
        .filter(|k| !["line_too_long", "invalid_utf8", "refused"].contains(k))
    {
        assert_eq!(errors(&m, kind), 0.0, "errors {kind}");
    }

    // The histogram is cumulative and ends at the count.
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k
                .strip_prefix("chatmon_reply_duration_seconds_bucket{le=\"")?
                .strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("bucket bound")
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 5.0)));
    let sum = val(&m, "chatmon_reply_duration_seconds_sum");
    assert!(sum > 0.0 && sum < 5.0, "sum {sum}");

    // Clients leaving show at once in the gauge.
    drop(bob);
    drop(p);
    wait_samples(addr, "one client left", |m| {
        m.get("chatmon_clients_connected") == Some(&1.0)
    });
    ms.shutdown();
}

#[test]
fn http_side_is_strict_and_bounded() {
    let ts = TestServer::start();
    let ms = start_metrics(&ts);
    let addr = ms.local_addr();

    let r = get(addr, "/metrics");
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Content-Type"), Some(PROMETHEUS_CONTENT_TYPE));
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(
        r.header("Content-Length").map(str::to_string),
        Some(r.body.len().to_string())
    );
    assert!(
        r.body
            .contains("# TYPE chatmon_messages_received_total counter")
    );
    assert!(
        r.body
            .contains("# TYPE chatmon_reply_duration_seconds histogram")
    );

    // What Prometheus itself asks for gets OpenMetrics.
    let r = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
    );
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.headers
    );
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    assert!(r.body.contains("# TYPE chatmon_messages_received counter"));

    let r = get(addr, "/metrics?x=1");
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    let r = http(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert!(r.body.is_empty());
    assert!(r.header("Content-Length").is_some_and(|n| n != "0"));

    assert_eq!(get(addr, "/").status, "HTTP/1.1 404 Not Found");
    assert_eq!(get(addr, "/metricsx").status, "HTTP/1.1 404 Not Found");
    let r = http(
        addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_eq!(
        http(addr, b"hello there\r\n\r\n").status,
        "HTTP/1.1 400 Bad Request"
    );
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Junk: {}\r\n\r\n",
        "j".repeat(20_000)
    );
    assert_eq!(
        http(addr, huge.as_bytes()).status,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );

    // Peers that connect and say nothing hold a slot each, never the
    // endpoint: past the limit, scrapes wait to be accepted, and go through
    // as soon as slots free up.
    let idle: Vec<TcpStream> = (0..MAX_INFLIGHT)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(get(addr, "/metrics").status);
    });
    // Nothing outside the endpoint shows a scrape waiting to be accepted,
    // so this gives it a while to (wrongly) get through; a slow machine can
    // only make the check weaker here, never fail it falsely.
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a scrape got through while every slot was held"
    );
    let t0 = Instant::now();
    drop(idle);
    let status = rx.recv_timeout(WAIT).expect("scrape after slots freed");
    assert_eq!(status, "HTTP/1.1 200 OK");
    // Freed by the peers leaving, not by their request timeout: that would
    // free the slots only about `REQUEST_TIMEOUT` after they connected.
    assert!(t0.elapsed() < REQUEST_TIMEOUT / 2, "{:?}", t0.elapsed());
    waiter.join().expect("scraper thread");

    ms.shutdown();
    // The port is closed once shut down.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn promtool_accepts_the_output() {
    let ts = TestServer::with(|c| c.max_line = 64);
    let ms = start_metrics(&ts);
    // Traffic, so that the histogram and the error family are not all zero.
    let mut p = Plain::new(ts.addr);
    p.send(b"hello\n");
    assert_eq!(p.line(), "Server received: hello");
    p.send(format!("{}\n", "y".repeat(100)).as_bytes());
    assert!(p.line().starts_with("Error:"));
    let mut a = Chat::join(ts.addr, "alice");
    a.say(1, "hi");
    a.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
    let body = wait_samples_body(ms.local_addr());
    ms.shutdown();
    if !process::installed("promtool") {
        eprintln!(
            "SKIPPED promtool_accepts_the_output: `promtool` is not installed \
             (Debian package `prometheus`; CI installs it)"
        );
        return;
    }
    let mut promtool = Command::new("promtool");
    promtool.args(["check", "metrics"]);
    let out = process::run_with(promtool, body.as_bytes(), WAIT * 2);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}): {said}\n--- output checked:\n{body}",
        out.status
    );
    // Lint findings come with exit code 3; anything printed is a finding.
    assert!(said.trim().is_empty(), "promtool says: {said}");
}

/// The page once the chat round trip above has been counted.
fn wait_samples_body(addr: SocketAddr) -> String {
    let mut last = String::new();
    let found = poll(WAIT, || {
        last = get(addr, "/metrics").body;
        let m = parse_samples(&last);
        (m.get("chatmon_reply_duration_seconds_count") == Some(&2.0)).then(|| last.clone())
    });
    found.unwrap_or_else(|| panic!("replies never counted: {last}"))
}

/// Measures whether scraping slows the chat path: plain round trips with and
/// without a scraper hitting `/metrics` every 100 ms, in pairs of runs whose
/// order alternates (so drift in machine load hits both sides alike). Run by
/// hand: `cargo test --release --test it metrics::scraping -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; run in release by hand"]
fn scraping_does_not_slow_round_trips() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const ROUND_TRIPS: usize = 5_000;
    const PAIRS: usize = 9;
    let ts = TestServer::start();
    let ms = start_metrics(&ts);
    let maddr = ms.local_addr();
    let registry = chatmon::metrics::registry(ts.server().monitor());
    let run = |scrape: bool| -> (Duration, Duration, u64) {
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let scraper = scrape.then(|| {
            let (stop, scrapes) = (stop.clone(), scrapes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = get(maddr, "/metrics");
                    assert_eq!(r.status, "HTTP/1.1 200 OK");
                    scrapes.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        let mut p = Plain::new(ts.addr);
        let mut rtts = Vec::with_capacity(ROUND_TRIPS);
        for i in 0..ROUND_TRIPS {
            let t = Instant::now();
            p.send(format!("m{i}\n").as_bytes());
            let _ = p.line();
            rtts.push(t.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = scraper {
            s.join().expect("scraper");
        }
        rtts.sort_unstable();
        // Nearest rank: sorted[ceil(p*n) - 1].
        let p50 = rtts[rtts.len().div_ceil(2) - 1];
        let p99 = rtts[(rtts.len() * 99).div_ceil(100) - 1];
        (p50, p99, scrapes.load(Ordering::Relaxed))
    };
    // Warm-up, not counted.
    let _ = run(false);
    let _ = run(true);
    let (mut without, mut with, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..PAIRS {
        let (a, b) = if i % 2 == 0 {
            let a = run(false);
            (a, run(true))
        } else {
            let b = run(true);
            (run(false), b)
        };
        ratios.push(b.0.as_secs_f64() / a.0.as_secs_f64());
        without.push(a);
        with.push(b);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    ratios.sort_by(f64::total_cmp);
    let scrapes: u64 = with.iter().map(|r| r.2).sum();
    // The cost of one scrape's encoding, on its own.
    let t = Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(chatmon::metrics::render(
            &registry,
            chatmon::metrics::Format::Prometheus,
        ));
    }
    let encode = t.elapsed() / 1000;
    println!(
        "plain round trips, {PAIRS} pairs of runs x {ROUND_TRIPS}: median p50 {:?} without, {:?} with scraping \
         (median ratio with/without {:.3}, range {:.3}..{:.3}); median p99 {:?} without, {:?} with; \
         {scrapes} scrapes; one encoding of the page takes {encode:?}",
        median(without.iter().map(|r| r.0).collect()),
        median(with.iter().map(|r| r.0).collect()),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        median(without.iter().map(|r| r.1).collect()),
        median(with.iter().map(|r| r.1).collect()),
    );
    ms.shutdown();
}

#[test]
fn sample_scrape_config_is_valid() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/prometheus.yml");
    let text = std::fs::read_to_string(config).expect("assets/prometheus.yml exists");
    assert!(text.contains("metrics_path: /metrics"), "{text}");
    if !process::installed("promtool") {
        eprintln!(
            "SKIPPED sample_scrape_config_is_valid: `promtool` is not installed \
             (Debian package `prometheus`; CI installs it)"
        );
        return;
    }
    let mut promtool = Command::new("promtool");
    promtool.args(["check", "config", config]);
    let out = process::run(promtool, WAIT * 2);
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real binary: `serve --metrics` says where the endpoint is, serves it,
/// and stops cleanly on SIGTERM.
#[test]
fn serve_with_metrics_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut srv = ServeCmd::new(&dir.path().join("log.txt"))
        .args(["--metrics", "127.0.0.1:0"])
        .start();
    let line = srv.wait_stderr("for the metrics address", |l| {
        l.starts_with("chatmon: metrics at http://")
    });
    let addr: SocketAddr = line
        .strip_prefix("chatmon: metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("address ends in /metrics: {line:?}"))
        .parse()
        .expect("a socket address");
    let m = scrape(addr);
    assert_eq!(val(&m, "chatmon_clients_connected"), 0.0);
    assert!(m.contains_key("chatmon_reply_duration_seconds_count"));

    let status = srv.sigterm();
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

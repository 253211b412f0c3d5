//! The `chatmon` command line. All the work is in the library; this file only
//! parses arguments and reports errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use chatmon::cluster::ClusterConfig;
use chatmon::eventlog::EventLog;
use chatmon::metrics::MetricsServer;
use chatmon::protocol::{self, DEFAULT_ADDR};
use chatmon::server::{self, Server, ServerConfig};
use chatmon::sys::warn;
use chatmon::tls::client::{TlsClient, TlsClientOptions};
use chatmon::tls::server::ReloadableServerConfig;
use chatmon::{sys, tui};

/// How long `serve` lets sessions end by themselves after Ctrl-C or SIGTERM
/// before closing them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Client-server communication monitor: a thread-per-client chat/echo server,
/// a terminal chat client with live round-trip latency, and analysis tools.
#[derive(Parser, Debug)]
#[command(name = "chatmon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Options for `chat` when no subcommand is given.
    #[command(flatten)]
    chat: ChatArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the headless server until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Open the chat TUI (the default).
    Chat(ChatArgs),
    /// Load a server from 1..N clients and measure latency and throughput.
    Bench(BenchArgs),
    /// Latency, throughput, connections and errors out of an event log.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: std::net::SocketAddr,
    /// Event log file (appended to).
    #[arg(long, default_value = "log.txt")]
    log: PathBuf,
    /// Connections beyond this many are refused.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Longest accepted message line, in bytes.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_LINE)]
    max_line: usize,
    /// Close clients silent for this long (e.g. 10m, 90s; 0 = never).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// A line must end within this long of its first byte, and a
    /// connection's first line within this long of connecting (0 = off).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    line_timeout: Duration,
    /// Simultaneous connections from one IP address (IPv6: one /64) beyond
    /// this many are refused (0 = no limit). Loopback is exempt unless
    /// --max-per-ip-loopback.
    #[arg(long, default_value_t = server::DEFAULT_MAX_PER_IP, value_name = "N")]
    max_per_ip: usize,
    /// Apply --max-per-ip to loopback addresses too.
    #[arg(long)]
    max_per_ip_loopback: bool,
    /// Shared secret every client must present first.
    #[arg(long, env = "CHATMON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Period of `Stats` events in the log (0 = off).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    stats_interval: Duration,
    /// Scheduler slice of the threads that answer clients (Linux 6.12+):
    /// short (e.g. 500us), so a woken session preempts a busy neighbour
    /// instead of waiting out its slice; less CPU per message under light
    /// load, more under heavy load. 100us to 100ms, or 0 (the default) for
    /// the kernel's own.
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_sched_slice)]
    sched_slice: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9478).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM, the server's certificate first): the chat
    /// port then speaks only TLS 1.2/1.3. SIGHUP reads it and the key again.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve --metrics over HTTPS with the same certificate.
    #[arg(long, requires_all = ["tls_cert", "metrics"])]
    metrics_tls: bool,
    /// Join the room of every server started with the same NATS and --room
    /// (repeatable: several seed URLs of one NATS cluster).
    #[arg(long, value_name = "nats://HOST:PORT")]
    cluster: Vec<String>,
    /// The room joined across the cluster.
    #[arg(long, default_value = "lobby", requires = "cluster")]
    room: String,
    /// This server's name in the cluster (default: host name and port).
    #[arg(long, requires = "cluster")]
    node: Option<String>,
    /// Token for NATS, when it requires one.
    #[arg(long, env = "CHATMON_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: Option<String>,
}

#[derive(Args, Debug)]
struct ChatArgs {
    /// Server address (host:port).
    #[arg(long, default_value = DEFAULT_ADDR)]
    server: String,
    /// Your name in the room (default: your login name).
    #[arg(long)]
    name: Option<String>,
    /// Event log file this client appends to.
    #[arg(long, default_value = "log.txt")]
    log: PathBuf,
    /// Log file shown in the live panel (default: the --log file).
    #[arg(long)]
    tail: Option<PathBuf>,
    /// Shared secret, if the server requires one.
    #[arg(long, env = "CHATMON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Never start a server in this process, even if none is running.
    #[arg(long)]
    no_local_server: bool,
    /// Speak the seed's plain protocol (each message answered `Server
    /// received: T`, round trips only), as with any server that answers the
    /// chat hello that way.
    #[arg(long)]
    plain: bool,
    /// Latency probe period on the chat connection (0 = off).
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = humantime::parse_duration)]
    probe: Duration,
    /// Colours: dark, light or mono (default: mono when NO_COLOR is set, else dark).
    #[arg(long, value_name = "THEME")]
    theme: Option<tui::ThemeChoice>,
    /// Leave the mouse to the terminal, so that text can be selected and
    /// copied (the wheel no longer scrolls; /mouse toggles).
    #[arg(long)]
    no_mouse: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// How a client (`chat`, `bench`) speaks TLS to the server.
#[derive(Args, Debug, Clone, Default)]
struct TlsArgs {
    /// Speak TLS, verifying the server against the system's root
    /// certificates (or --tls-ca). The name checked is the host of --server.
    #[arg(long)]
    tls: bool,
    /// Trust the CA certificates in this PEM file instead of the system's
    /// (a private CA, or the server's self-signed certificate). Implies --tls.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Do not verify the server's certificate at all (encrypted, but anyone
    /// on the path can pose as the server). Implies --tls.
    #[arg(long, conflicts_with = "tls_ca")]
    tls_insecure: bool,
    /// The name the certificate must carry, when it is not the host of
    /// --server (e.g. connecting by IP address). Implies --tls.
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
}

impl TlsArgs {
    /// The client's TLS settings for `server`, if TLS is on.
    fn client(&self, server: &str) -> Result<Option<TlsClient>> {
        if !(self.tls || self.tls_ca.is_some() || self.tls_insecure || self.tls_name.is_some()) {
            return Ok(None);
        }
        let opts = TlsClientOptions {
            ca_file: self.tls_ca.clone(),
            insecure: self.tls_insecure,
            name: self.tls_name.clone(),
        };
        Ok(Some(TlsClient::new(server, &opts)?))
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::Serve(a)) => serve(a),
        Some(Cmd::Chat(a)) => chat(a),
        Some(Cmd::Bench(a)) => bench(a),
        Some(Cmd::Report(a)) => report(a),
        None => chat(cli.chat),
    };
    if let Err(e) = result {
        eprintln!("chatmon: {e:#}");
        std::process::exit(1);
    }
}

fn chat(a: ChatArgs) -> Result<()> {
    let name = match a.name {
        Some(n) => {
            protocol::validate_name(&n).map_err(|e| anyhow::anyhow!("--name {n:?}: {e}"))?;
            n
        }
        None => protocol::sanitize_name(&sys::login_name()),
    };
    let tls = a.tls.client(&a.server)?;
    tui::run(tui::ChatOptions {
        tls,
        server: a.server,
        name,
        log: a.log,
        tail: a.tail,
        token: a.token,
        auto_server: !a.no_local_server,
        plain: a.plain,
        probe_every: a.probe,
        theme: a.theme,
        mouse: !a.no_mouse,
    })
}

/// `--sched-slice`: zero, or within the range the kernel takes (it would
/// clamp anything else without a word).
fn parse_sched_slice(v: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(v).map_err(|e| e.to_string())?;
    if d.is_zero() || (sys::SCHED_SLICE_MIN..=sys::SCHED_SLICE_MAX).contains(&d) {
        Ok(d)
    } else {
        Err(format!(
            "{v} is outside the kernel's range: give 0 (the default slice) or 100us to 100ms"
        ))
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    let nofile = sys::raise_nofile_limit().unwrap_or(0);
    if let Some(w) = server::exposure_warning(a.bind, a.token.as_deref()) {
        warn(format_args!("chatmon: {w}"));
    }
    let tls = serve_tls(&a)?;
    let log = EventLog::open(&a.log)?;
    let nz = |d: Duration| (!d.is_zero()).then_some(d);
    let config = ServerConfig {
        bind: a.bind,
        max_clients: a.max_clients,
        max_line: a.max_line,
        idle_timeout: nz(a.idle_timeout),
        line_timeout: nz(a.line_timeout),
        max_per_ip: (a.max_per_ip > 0).then_some(a.max_per_ip),
        max_per_ip_loopback: a.max_per_ip_loopback,
        token: a.token,
        stats_interval: nz(a.stats_interval),
        sched_slice: nz(a.sched_slice),
        tls: tls.clone(),
        cluster: (!a.cluster.is_empty()).then(|| {
            let mut c =
                ClusterConfig::new(a.cluster.clone(), &a.room, a.node.as_deref().unwrap_or(""));
            c.token = a.cluster_token.clone();
            c
        }),
        ..ServerConfig::default()
    };
    // Handlers go in before the server starts, so that a SIGTERM arriving
    // early still means a clean stop rather than an abrupt kill.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .context("cannot install signal handlers")?;
    let server = Server::start(config, log.clone())?;
    warn(format_args!(
        "chatmon: listening on {}, logging to {} (descriptor limit {nofile}); Ctrl-C to stop",
        server.local_addr(),
        a.log.display()
    ));
    let metrics = match a.metrics {
        Some(addr) => {
            let m = match (&tls, a.metrics_tls) {
                (Some(t), true) => MetricsServer::start_tls(addr, server.monitor(), t.clone()),
                _ => MetricsServer::start(addr, server.monitor()),
            }
            .context("cannot start the metrics endpoint")?;
            if !addr.ip().is_loopback() {
                // The token guards the chat port only; say so.
                warn(format_args!(
                    "chatmon: warning: metrics on {addr} need no token: anyone who can reach it can read them"
                ));
            }
            let scheme = if a.metrics_tls { "https" } else { "http" };
            warn(format_args!(
                "chatmon: metrics at {scheme}://{}/metrics",
                m.local_addr()
            ));
            Some(m)
        }
        None => None,
    };
    for sig in signals.forever() {
        if sig == signal_hook::consts::SIGHUP {
            reload_tls(&server);
            continue;
        }
        let name = if sig == signal_hook::consts::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        warn(format_args!("chatmon: {name}: stopping"));
        break;
    }
    if let Some(m) = metrics {
        m.shutdown();
    }
    server.shutdown(STOP_GRACE);
    log.flush();
    let lost = log.unwritten();
    if lost > 0 {
        warn(format_args!(
            "chatmon: {lost} lines could not be written to {} before exit",
            a.log.display()
        ));
    }
    Ok(())
}

/// The TLS config of `serve`, loaded once here so that a bad certificate or
/// key stops the server before it listens; and the clear-text warning.
fn serve_tls(a: &ServeArgs) -> Result<Option<Arc<ReloadableServerConfig>>> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(ReloadableServerConfig::load(cert, key)?)),
        _ => None,
    };
    if let Some(w) = chatmon::tls::cleartext_warning(a.bind, tls.is_some()) {
        warn(format_args!("chatmon: {w}"));
    }
    Ok(tls)
}

/// SIGHUP: the certificate and key again, for renewals. Connected clients
/// keep their sessions either way; a bad pair keeps the old one (and the
/// server logs why).
fn reload_tls(server: &Server) {
    match server.reload_tls() {
        None => warn(format_args!("chatmon: SIGHUP: no TLS to reload")),
        Some(Ok(())) => warn(format_args!(
            "chatmon: SIGHUP: TLS certificate and key reloaded"
        )),
        Some(Err(e)) => warn(format_args!(
            "chatmon: SIGHUP: TLS reload failed, still serving the old certificate and key: {e}"
        )),
    }
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Server to load (host:port). Without it, a chatmon server is started in
    /// this process on a free loopback port, with full logging to a temporary
    /// file that is deleted at the end (see --server-log). Repeat it for the
    /// nodes of a cluster: clients are spread over them round-robin, and chat
    /// relays are timed apart for same-node and cross-node pairs.
    #[arg(long, value_name = "ADDR")]
    server: Vec<String>,
    /// Client counts to sweep, one table row each.
    #[arg(long, default_value = "1,10,100,1000", value_name = "N,N,...")]
    clients: String,
    /// Open loop: this many messages per second in total, latency measured
    /// from each message's scheduled send time. Without it: closed loop (each
    /// client sends when its previous reply arrived).
    #[arg(long, value_name = "MSGS_PER_SEC")]
    rate: Option<f64>,
    /// Measured messages per client (instead of --duration).
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// How long each row sends after its warm-up (e.g. 10s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured time at the start of each row (0 = none).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 32, value_name = "BYTES")]
    size: usize,
    /// `plain`: `T` answered by `Server received: T` (any seed-style server);
    /// `chat`: the JSON chat protocol, also measuring relay latency.
    #[arg(long, value_enum, default_value_t = BenchMode::Plain)]
    mode: BenchMode,
    /// A reply missing this long counts as an error and ends that client.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Keep the in-process server's event log in this file (appended to), e.g.
    /// for `chatmon report`.
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    server_log: Option<PathBuf>,
    /// Also write the rows as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the rows as CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also draw latency percentiles and throughput against clients (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// TLS to --server, as for `chat`; each row also reports TLS handshakes
    /// per second (full handshakes: no session is resumed).
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BenchMode {
    Plain,
    Chat,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Event log to analyse (chatmon's or the seed's format).
    #[arg(default_value = "log.txt")]
    log: PathBuf,
    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw latency and throughput over time (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

fn bench(a: BenchArgs) -> Result<()> {
    use chatmon::bench;
    let tls = a
        .tls
        .client(a.server.first().map(String::as_str).unwrap_or(DEFAULT_ADDR))?
        .map(TlsClient::without_resumption);
    let config = bench::BenchConfig {
        tls,
        server: a.server.first().cloned(),
        also: a.server.iter().skip(1).cloned().collect(),
        clients: bench::parse_clients(&a.clients).map_err(|e| anyhow::anyhow!("--clients: {e}"))?,
        rate: a.rate,
        stop: match a.messages {
            Some(m) => bench::Stop::Messages(m),
            None => bench::Stop::Duration(a.duration),
        },
        warmup: a.warmup,
        size: a.size,
        mode: match a.mode {
            BenchMode::Plain => bench::Mode::Plain,
            BenchMode::Chat => bench::Mode::Chat,
        },
        timeout: a.timeout,
        server_log: a.server_log,
        progress: true,
    };
    let report = bench::run(&config)?;
    print!("{}", bench::render_table(&report));
    if let Some(p) = &a.json {
        bench::write_json(&report, p)?;
    }
    if let Some(p) = &a.csv {
        bench::write_csv(&report, p)?;
    }
    if let Some(p) = &a.plot {
        bench::write_plot(&report, p)?;
    }
    Ok(())
}

fn report(a: ReportArgs) -> Result<()> {
    use chatmon::report;
    let r = report::analyse_file(&a.log, &report::ReportOptions::default())?;
    print!("{}", report::render_text(&r));
    if let Some(p) = &a.json {
        report::write_json(&r, p)?;
    }
    if let Some(p) = &a.plot {
        report::write_plot(&r, p)?;
    }
    Ok(())
}

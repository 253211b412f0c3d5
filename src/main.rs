//! The `chatmon` command line. All the work is in the library; this file only
//! parses arguments and reports errors.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use chatmon::eventlog::EventLog;
use chatmon::metrics::MetricsServer;
use chatmon::protocol::{self, DEFAULT_ADDR};
use chatmon::server::{self, Server, ServerConfig};
use chatmon::sys::warn;
use chatmon::{sys, tui};

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
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// Longest accepted message line, in bytes.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_LINE)]
    max_line: usize,
    /// Close clients silent for this long (e.g. 10m, 90s; 0 = never).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Shared secret every client must present first.
    #[arg(long, env = "CHATMON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Period of `Stats` events in the log (0 = off).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    stats_interval: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9478).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::Serve(a)) => serve(a),
        Some(Cmd::Chat(a)) => chat(a),
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
    tui::run(tui::ChatOptions {
        server: a.server,
        name,
        log: a.log,
        tail: a.tail,
        token: a.token,
        auto_server: !a.no_local_server,
    })
}

fn serve(a: ServeArgs) -> Result<()> {
    let nofile = sys::raise_nofile_limit().unwrap_or(0);
    if let Some(w) = server::exposure_warning(a.bind, a.token.as_deref()) {
        warn(format_args!("chatmon: {w}"));
    }
    let log = EventLog::open(&a.log)?;
    let nz = |d: Duration| (!d.is_zero()).then_some(d);
    let config = ServerConfig {
        bind: a.bind,
        max_clients: a.max_clients,
        max_line: a.max_line,
        idle_timeout: nz(a.idle_timeout),
        token: a.token,
        stats_interval: nz(a.stats_interval),
        ..ServerConfig::default()
    };
    // Handlers go in before the server starts, so that a SIGTERM arriving
    // early still means a clean stop rather than an abrupt kill.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
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
            let m = MetricsServer::start(addr, server.monitor())
                .context("cannot start the metrics endpoint")?;
            if !addr.ip().is_loopback() {
                // The token guards the chat port only; say so.
                warn(format_args!(
                    "chatmon: warning: metrics on {addr} need no token: anyone who can reach it can read them"
                ));
            }
            warn(format_args!(
                "chatmon: metrics at http://{}/metrics",
                m.local_addr()
            ));
            Some(m)
        }
        None => None,
    };
    if let Some(sig) = signals.forever().next() {
        let name = if sig == signal_hook::consts::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        warn(format_args!("chatmon: {name}: stopping"));
    }
    if let Some(m) = metrics {
        m.shutdown();
    }
    server.shutdown(Duration::from_secs(2));
    log.flush();
    Ok(())
}

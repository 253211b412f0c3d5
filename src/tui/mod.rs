//! The terminal chat client: terminal setup and the event loop. State lives in
//! [`app`], drawing in [`render`], the local-server policy in `local`, the
//! live panel's export file and reset marker in `live_io`; the socket and
//! the log tail run as background tasks that send events over channels.

pub mod app;
mod live_io;
mod local;
pub mod render;

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    EventStream,
};
use crossterm::execute;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::client::{self, ClientConfig, ClientEvent, Command, DisconnectKind};
use crate::eventlog::EventLog;
use crate::tail;
use crate::tls::client::TlsClient;
use app::{Action, App, Level, LogSource, TlsBadge};
use local::{LocalServer, NOTE as LOCAL_NOTE, Started};
use render::Theme;
pub use render::ThemeChoice;

/// Settings of `chatmon chat`.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    pub server: String,
    pub name: String,
    pub log: PathBuf,
    pub tail: Option<PathBuf>,
    pub token: Option<String>,
    /// Start a server in this process when nothing listens at a loopback
    /// address.
    pub auto_server: bool,
    /// Speak TLS to the server (`--tls`); never with a local server, which
    /// would have no certificate.
    pub tls: Option<TlsClient>,
    /// Speak the seed's plain protocol (`Server received: T`) from the start
    /// instead of only when the server answers the hello that way.
    pub plain: bool,
    /// Latency probe period; zero turns probes off.
    pub probe_every: Duration,
    /// The colours asked for; `None` follows `NO_COLOR` (mono when it is
    /// set, else dark).
    pub theme: Option<ThemeChoice>,
    /// Capture the mouse (wheel scrolling); `false` leaves it to the
    /// terminal so that text can be selected.
    pub mouse: bool,
}

/// Ticks for live figures (pending timers, msg/s, reconnect countdown).
const TICK: Duration = Duration::from_millis(250);
/// Shortest time between two frames that answer the user (30 fps): a key,
/// a resize, the reply to their own message, the connection coming or going.
const FRAME: Duration = Duration::from_millis(33);
/// Shortest time between two frames that only show what others do (12.5
/// fps): relays, probes, the tailed log, the server's figures. A busy room
/// kept the TUI drawing at 30 fps, which was most of its CPU (7 % of a core
/// while three others chatted at 50 msg/s in total); text from others
/// showing up to 80 ms later is not something a reader sees.
const BACKGROUND_FRAME: Duration = Duration::from_millis(80);
/// Lines of the log shown at start.
const TAIL_START_LINES: usize = 200;
/// How long quitting waits for the server to see our goodbye.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// Runs the chat TUI until the user quits.
pub fn run(opts: ChatOptions) -> Result<()> {
    let log = EventLog::open(&opts.log)
        .with_context(|| format!("cannot start: log file {}", opts.log.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut local = LocalServer::new(&opts.server, &log, opts.auto_server && opts.tls.is_none());
    let started = local.start_if_nothing_listens();
    let result = rt.block_on(run_async(&opts, log.clone(), &mut local, started));
    local.stop();
    log.flush();
    result
}

/// Restores the terminal when dropped: on quit, on error and on unwind.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), DisableMouseCapture, DisableBracketedPaste);
        ratatui::restore();
    }
}

async fn run_async(
    opts: &ChatOptions,
    log: EventLog,
    local: &mut LocalServer,
    started: Option<Started>,
) -> Result<()> {
    let mut config = ClientConfig::new(opts.server.clone(), opts.name.clone());
    config.token = opts.token.clone();
    config.tls = opts.tls.clone();
    config.plain = opts.plain;
    // The stream makes the log panel work for remote servers; lines that
    // also reach the tailed file are shown once.
    config.subscribe = true;
    config.probe_every = opts.probe_every;
    let tail_path = opts.tail.clone().unwrap_or_else(|| opts.log.clone());
    let mut app = App::new(&opts.server, &opts.name, &tail_path.display().to_string());
    if let Some(tls) = &opts.tls {
        app.set_tls(if tls.is_insecure() {
            TlsBadge::Insecure
        } else {
            TlsBadge::Verified
        });
    }
    app.configure(opts.probe_every, opts.mouse);
    match started {
        Some(Started::Yes) => {
            app.set_local_server(LOCAL_NOTE);
            app.notice(
                Level::Info,
                format!(
                    "nothing was listening at {}, so this chatmon runs the server itself; more TUIs can join with `chatmon chat`",
                    opts.server
                ),
            );
        }
        Some(Started::Failed(e)) => app.notice(
            Level::Error,
            format!(
                "nothing was listening at {}, and this chatmon could not start a server there: {e}",
                opts.server
            ),
        ),
        None => {}
    }
    let theme = Theme::resolve(opts.theme, std::env::var_os("NO_COLOR").as_deref());
    let (handle, mut client_rx) = client::spawn(config, log.clone());
    let (tail_tx, mut tail_rx) = mpsc::unbounded_channel();
    tail::spawn(tail_path.clone(), TAIL_START_LINES, tail_tx)
        .context("cannot start the log follower")?;

    // Mouse capture is not undone by ratatui's panic hook: add it first, so
    // that ratatui's hook (installed by init) runs before it.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(io::stdout(), DisableMouseCapture, DisableBracketedPaste);
        prev(info);
    }));
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let _guard = TerminalGuard;
    execute!(io::stdout(), EnableBracketedPaste).context("cannot set up the terminal")?;
    if opts.mouse {
        execute!(io::stdout(), EnableMouseCapture).context("cannot set up the terminal")?;
    }
    let export_dir = opts
        .log
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();

    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch SIGHUP")?;
    let mut dirty = true;
    // What is to be drawn answers the user: drawn at FRAME, not at
    // BACKGROUND_FRAME.
    let mut urgent = true;
    // Test only (tests/it/tui_faults.rs): `CHATMON_TEST_PANIC=1` panics right
    // after the first frame, to prove the terminal is restored on a panic.
    let test_panic = std::env::var_os("CHATMON_TEST_PANIC").is_some_and(|v| v == "1");
    let mut last_draw: Option<Instant> = None;
    // Set once the follower's channel is closed: a closed channel is always
    // ready, so its branch must be turned off or the loop spins.
    let mut tail_closed = false;
    loop {
        // At most one frame per FRAME: a burst of network or log events
        // (a busy room, the server's event stream) costs a frame, not one
        // per event, so it does not steal the CPU the rest of the machine
        // (the server, other TUIs, our own socket task) needs.
        let pace = if urgent { FRAME } else { BACKGROUND_FRAME };
        let wait = last_draw.map_or(Duration::ZERO, |t| pace.saturating_sub(t.elapsed()));
        if dirty && wait.is_zero() {
            terminal.draw(|f| render::draw(f, &mut app, &theme))?;
            dirty = false;
            urgent = false;
            last_draw = Some(Instant::now());
            if test_panic {
                panic!("CHATMON_TEST_PANIC=1: panicking on purpose after the first frame");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait), if dirty => {},
            ev = events.next() => match ev {
                Some(Ok(ev)) => {
                    if let Some(action) = app.on_event(&ev) {
                        perform(&mut app, &handle, &log, &export_dir, action);
                    }
                    dirty = true;
                    urgent = true;
                }
                Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                None => break,
            },
            ev = client_rx.recv() => {
                let Some(ev) = ev else { break };
                urgent |= answers_the_user(&ev);
                on_client_event(&mut app, ev, local);
                // Take everything else that is ready before drawing once.
                while let Ok(ev) = client_rx.try_recv() {
                    urgent |= answers_the_user(&ev);
                    on_client_event(&mut app, ev, local);
                }
                dirty = true;
            },
            up = tail_rx.recv(), if !tail_closed => {
                match up {
                    Some(up) => {
                        on_tail(&mut app, up);
                        while let Ok(up) = tail_rx.try_recv() {
                            on_tail(&mut app, up);
                        }
                    }
                    None => {
                        tail_closed = true;
                        on_tail_closed(&mut app, &tail_path);
                    }
                }
                dirty = true;
            },
            _ = tick.tick() => {
                dirty |= app.on_tick(Instant::now());
            },
            _ = sigterm.recv() => app.request_quit(),
            _ = sighup.recv() => app.request_quit(),
        }
        if app.quitting() {
            break;
        }
    }
    // Say goodbye properly (the server logs a clean disconnection), but never
    // hang on a dead connection.
    handle.command(Command::Quit);
    let _ = tokio::time::timeout(GOODBYE_WAIT, async {
        while let Some(ev) = client_rx.recv().await {
            if ev == ClientEvent::Closed {
                break;
            }
        }
    })
    .await;
    Ok(())
}

fn perform(
    app: &mut App,
    handle: &client::ClientHandle,
    log: &EventLog,
    export_dir: &std::path::Path,
    action: Action,
) {
    match action {
        Action::Send(text) => {
            let id = handle.send(text.clone());
            app.sent_local(id, text);
        }
        Action::Nick(n) => handle.command(Command::Nick(n)),
        Action::Subscribe(on) => handle.command(Command::Subscribe(on)),
        Action::Quit => app.request_quit(),
        Action::Export { text, count } => {
            let r = live_io::export(export_dir, &text).map(|p| (p, count));
            app.exported(r);
        }
        Action::ResetFigures => live_io::log_reset(log, app),
        Action::Mouse(on) => {
            let r = if on {
                execute!(io::stdout(), EnableMouseCapture)
            } else {
                execute!(io::stdout(), DisableMouseCapture)
            };
            if let Err(e) = r {
                app.notice(Level::Error, format!("cannot change mouse capture: {e}"));
            }
        }
    }
}

/// Whether a client event is about the user's own messages or connection,
/// and so worth a frame at once ([`FRAME`]); others' activity waits for
/// [`BACKGROUND_FRAME`].
fn answers_the_user(ev: &ClientEvent) -> bool {
    use ClientEvent as E;
    match ev {
        E::Connecting { .. }
        | E::Connected { .. }
        | E::Disconnected { .. }
        | E::Queued { .. }
        | E::Sent { .. }
        | E::Reply { .. }
        | E::TimedOut { .. }
        | E::Undelivered { .. }
        | E::Nick { .. }
        | E::ServerError(_)
        | E::ClusterLink { .. }
        | E::Closed => true,
        E::Clock(_)
        | E::Probe { .. }
        | E::ProbeLost { .. }
        | E::Chat { .. }
        | E::Join { .. }
        | E::Leave { .. }
        | E::ServerEvent(_)
        | E::EventsDropped(_)
        | E::ServerStats { .. } => false,
    }
}

fn on_client_event(app: &mut App, ev: ClientEvent, local: &mut LocalServer) {
    if let ClientEvent::Disconnected { kind, .. } = &ev {
        let refused = *kind == DisconnectKind::ConnectRefused;
        match local.take_over(refused, app.status().server_embedded()) {
            Some(Started::Yes) => {
                app.set_local_server(LOCAL_NOTE);
                app.notice(
                    Level::Info,
                    "the server went away; this chatmon now runs one itself",
                );
            }
            Some(Started::Failed(e)) => app.notice(
                Level::Error,
                format!("the server went away, and this chatmon could not start one: {e}"),
            ),
            None => {}
        }
    }
    app.on_client(ev, Instant::now());
}

fn on_tail(app: &mut App, up: Result<tail::TailUpdate, tail::TailError>) {
    match up {
        Ok(u) => {
            if let Some(r) = u.reset {
                app.set_log_note(r);
            }
            for l in u.lines {
                app.push_log(LogSource::File, l);
            }
        }
        Err(e) => app.set_log_note(e.to_string()),
    }
}

/// The follower thread is gone (it only ends on a panic): the panel stops
/// growing from the file, and says so rather than look idle.
fn on_tail_closed(app: &mut App, path: &std::path::Path) {
    app.set_log_note(format!(
        "stopped following {}: the log follower ended",
        path.display()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_follower_is_noted_in_the_log_panel() {
        let mut app = App::new("s", "me", "log.txt");
        on_tail_closed(&mut app, std::path::Path::new("log.txt"));
        let s = render::to_text(&mut app, 120, 40);
        assert!(s.contains("stopped following log.txt"), "{s}");
    }
}

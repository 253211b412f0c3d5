//! The status bar: connection state, server, our name, the room's size, the
//! cluster link when it is down, the local-server note, the lag (`lag.rs`) and
//! the help hint, on one row.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Theme;
use super::text::sanitize;
use crate::tui::app::{App, ConnState, TlsBadge};

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, now: Instant, theme: &Theme) {
    let status = app.status();
    let (dot, state, style) = match status.conn() {
        ConnState::Connected => ("●", "connected".to_string(), theme.conn_up),
        ConnState::Connecting { attempt } if *attempt <= 1 => {
            ("◌", "connecting…".to_string(), theme.conn_trying)
        }
        ConnState::Connecting { attempt } => (
            "◌",
            format!("reconnecting (attempt {attempt})…"),
            theme.conn_trying,
        ),
        ConnState::Disconnected { reason, retry_at } => {
            let secs = retry_at.saturating_duration_since(now).as_secs_f64();
            (
                "○",
                format!("disconnected: {} · retry in {secs:.1}s", sanitize(reason)),
                theme.conn_down,
            )
        }
        ConnState::Closed => ("○", "closed".to_string(), theme.conn_closed),
    };
    let mut spans = vec![
        Span::styled(format!(" {dot} {state} "), style),
        Span::raw("│ "),
        Span::styled(sanitize(status.server()).into_owned(), theme.server_addr),
    ];
    match status.tls() {
        Some(TlsBadge::Verified) => spans.push(Span::styled(" TLS", theme.conn_up)),
        // Red, as a disconnection: the user must not mistake it for safe.
        Some(TlsBadge::Insecure) => spans.push(Span::styled(
            " TLS NOT VERIFIED (--tls-insecure)",
            theme.conn_down,
        )),
        None => {}
    }
    spans.extend([
        Span::raw(" │ you: "),
        Span::styled(status.name().to_string(), theme.me),
    ]);
    if status.plain() {
        spans.push(Span::raw(" │ "));
        spans.push(Span::styled(
            crate::client::PLAIN_SERVER.to_string(),
            theme.local_server,
        ));
        spans.push(Span::raw(" "));
    } else {
        spans.push(Span::raw(format!(" │ {} in room ", status.user_count())));
    }
    if let Some(node) = status.cluster_down() {
        spans.push(Span::raw("│ "));
        spans.push(Span::styled(
            format!("cluster link down ({} only)", sanitize(node)),
            theme.conn_down,
        ));
        spans.push(Span::raw(" "));
    }
    if let Some(note) = status.local_server() {
        spans.push(Span::raw("│ "));
        spans.push(Span::styled(note.to_string(), theme.local_server));
        spans.push(Span::raw(" "));
    }
    spans.extend(super::lag::spans(app, theme));
    spans.push(Span::styled("│ F1 help", theme.dim));
    f.render_widget(
        Paragraph::new(Line::from(spans)).style(theme.status_bar),
        area,
    );
}

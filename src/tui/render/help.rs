//! The help popup: keys and commands, centred over the screen.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use super::Theme;

/// Widest the popup gets (its longest line and borders fit).
const WIDTH: u16 = 64;

pub(super) fn draw(f: &mut Frame, area: Rect, theme: &Theme) {
    let text = vec![
        Line::from(Span::styled(
            "Enter        send the message (or run a /command)",
            theme.help_title,
        )),
        Line::from("↑ / ↓        recall earlier input"),
        Line::from("PgUp / PgDn  scroll the chat (mouse wheel too)"),
        Line::from("Ctrl-End     jump back to the newest message"),
        Line::from("Tab          move focus: input → chat → log"),
        Line::from("F2           log view: file / server stream / both"),
        Line::from("F1 or ?      this help (any key closes it)"),
        Line::from("Ctrl-R       reset the latency figures (/reset too)"),
        Line::from("Live keys, after Tab (chat or log focused):"),
        Line::from("  Space freeze  w window  h histogram  +/- zoom  e export"),
        Line::from("Esc, Ctrl-C  quit"),
        Line::from(""),
        Line::from("/nick NAME   change your name"),
        Line::from("/log file|server|both   choose the log view"),
        Line::from("/clear       clear the chat pane"),
        Line::from("/mouse       let the terminal select text, or scroll again"),
        Line::from("/quit        quit          //text sends /text"),
        Line::from(""),
        Line::from(Span::styled(
            "Each message shows the server's reply and its round-trip",
            theme.help_note,
        )),
        Line::from(Span::styled(
            "time, measured from the socket write to the reply's read.",
            theme.help_note,
        )),
    ];
    let w = WIDTH.min(area.width);
    let h = (text.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(text).block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .title(" chatmon help ")
                .border_style(theme.help_border),
        ),
        popup,
    );
}

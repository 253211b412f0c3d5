//! Text helpers every panel uses: making foreign text safe to draw, wrapping
//! styled text to a width, and writing a duration.

use std::borrow::Cow;
use std::time::Duration;

use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Makes text from the network or a file safe to draw: control characters
/// (escape sequences, `\r`, bells) and bidi overrides become visible escapes.
pub(crate) fn sanitize(text: &str) -> Cow<'_, str> {
    let bad =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            s.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            s.push(c);
        }
    }
    Cow::Owned(s)
}

/// `0.213ms`, `12.3ms`, `1.23s`: three significant figures at any scale.
pub(crate) fn fmt_dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.3}ms")
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// Wraps styled spans to `width` columns at spaces where it can (inside a
/// word only when the word is wider than the line), counting wide characters
/// as two columns. Continuation lines are indented by `indent`.
pub(crate) fn wrap(spans: Vec<Span<'static>>, width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(indent + 2);
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut col = 0;
    let mut fresh = true;
    let break_line =
        |lines: &mut Vec<Line<'static>>, cur: &mut Vec<Span<'static>>, col: &mut usize| {
            lines.push(Line::from(std::mem::take(cur)));
            cur.push(Span::raw(" ".repeat(indent)));
            *col = indent;
        };
    for span in spans {
        let style = span.style;
        for word in span.content.split_inclusive(' ') {
            let w: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
            let visible = w - usize::from(word.ends_with(' '));
            if col + visible > width && !fresh {
                break_line(&mut lines, &mut cur, &mut col);
            }
            if col + visible <= width {
                cur.push(Span::styled(word.to_string(), style));
                col += w;
                fresh = false;
                continue;
            }
            // A word wider than the line: split it by characters.
            let mut buf = String::new();
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if col + cw > width {
                    if !buf.is_empty() {
                        cur.push(Span::styled(std::mem::take(&mut buf), style));
                    }
                    break_line(&mut lines, &mut cur, &mut col);
                }
                buf.push(c);
                col += cw;
            }
            if !buf.is_empty() {
                cur.push(Span::styled(buf, style));
            }
            fresh = false;
        }
    }
    lines.push(Line::from(cur));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_neutralises_escapes() {
        assert_eq!(sanitize("plain"), "plain");
        assert_eq!(sanitize("a\u{1b}[2Jb\r"), "a\\u{1b}[2Jb\\u{d}");
    }

    #[test]
    fn wrap_counts_wide_chars() {
        let lines = wrap(vec![Span::raw("世界世界世界")], 5, 0);
        let widths: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert_eq!(widths, vec![4, 4, 4]);
    }

    #[test]
    fn wrap_breaks_at_spaces() {
        let text = |l: &Line| {
            l.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
        };
        let lines = wrap(vec![Span::raw("the quick brown fox")], 10, 2);
        let got: Vec<String> = lines.iter().map(text).collect();
        assert_eq!(got, vec!["the quick ", "  brown ", "  fox"]);
        assert!(lines.iter().all(|l| l.width() <= 10));
        let lines = wrap(vec![Span::raw("ab "), Span::raw("0123456789abc")], 6, 0);
        assert!(lines.iter().all(|l| l.width() <= 6), "{lines:?}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_dur(Duration::from_micros(213)), "0.213ms");
        assert_eq!(fmt_dur(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(fmt_dur(Duration::from_millis(1234)), "1.23s");
    }
}

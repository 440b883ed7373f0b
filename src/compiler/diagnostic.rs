//! One error type for every problem the compiler finds, rendered the same way everywhere:
//!
//! ```text
//! error: unknown key `need` in task `snapshot`
//!   --> backup.yaml:12:5
//!    |
//! 12 |     need: [dump-db]
//!    |     ^^^^
//!    = help: did you mean `needs`?
//! ```

use std::fmt::Write;

use super::escape;
use super::yaml::{Pos, Span};

pub use super::code::{Code, Severity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What kind of problem: its stable name for scripts, and its severity.
    pub code: Code,
    /// What is wrong, lowercase, identifiers in backticks.
    pub message: String,
    /// Where; `None` for problems of the file as a whole (e.g. its name).
    pub span: Option<Span>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(
        code: Code,
        span: impl Into<Option<Span>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            span: span.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    /// Where this problem starts and ends, for scripts and editors: a problem of the file
    /// as a whole (its name, its path) is placed at its start, line 1, column 1, where
    /// editors show such problems.
    pub fn range(&self) -> (Pos, Pos) {
        match self.span {
            Some(span) => (span.start, span.end.max(span.start)),
            None => {
                let start = Pos { line: 1, col: 1 };
                (start, start)
            }
        }
    }

    /// `file:line:col` of this problem (just `file` when it has no position).
    pub fn location(&self, path: &str) -> String {
        let path = escape::printable(path);
        match self.span {
            Some(span) => format!("{path}:{}:{}", span.start.line, span.start.col),
            None => path.into_owned(),
        }
    }

    /// Render for a person: message, location, the quoted line with a caret, and the help.
    pub fn render(&self, path: &str, source: &str) -> String {
        self.render_as("error", path, &Lines::new(source))
    }

    /// The same, for something that does not stop the command.
    pub fn render_warning(&self, path: &str, source: &str) -> String {
        self.render_as("warning", path, &Lines::new(source))
    }

    /// Every value a message or help echoes (a name, a path, a piece of the file) is shown
    /// with its control characters written visibly: a file cannot drive the terminal.
    fn render_as(&self, level: &str, path: &str, lines: &Lines) -> String {
        let mut out = format!("{level}: {}\n", escape::printable(&self.message));
        let help = self.help.as_deref().map(escape::printable);
        let Some(span) = self.span else {
            let _ = writeln!(out, "  --> {}", self.location(path));
            if let Some(help) = &help {
                let _ = writeln!(out, "   = help: {help}");
            }
            return out;
        };
        let line_no = span.start.line.max(1);
        let text = lines.line(line_no).unwrap_or("");
        let gutter = line_no.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}--> {}", self.location(path));
        let _ = writeln!(out, "{pad} |");
        // Control characters (tabs included) would move or garble the caret line. A line
        // is quoted up to a bounded width: a 4 MiB line would otherwise be printed whole
        // under every diagnostic on it.
        let line_chars = text.chars().count();
        let start = span.start.col.max(1) - 1;
        let (skip, shown_chars) = window(start, line_chars);
        let mut shown: String = text
            .chars()
            .skip(skip)
            .take(shown_chars)
            .map(|c| if escape::needs_visible(c) { ' ' } else { c })
            .collect();
        if skip > 0 {
            shown.insert(0, '…');
        }
        if skip + shown_chars < line_chars {
            shown.push('…');
        }
        let _ = writeln!(out, "{line_no} | {shown}");
        let end = if span.end.line == span.start.line && span.end.col > span.start.col {
            span.end.col - 1
        } else {
            line_chars.max(start + 1)
        };
        let width = end
            .saturating_sub(start)
            .clamp(1, line_chars.saturating_sub(start).max(1))
            .min(shown_chars.max(1));
        let caret_at = start - skip + usize::from(skip > 0);
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(caret_at), "^".repeat(width));
        if let Some(help) = &help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// Widest part of a line a diagnostic quotes, in characters.
const QUOTE_MAX: usize = 200;

/// Which characters of a line of `len` to quote so that column `start` is shown: the first
/// skipped and how many shown.
fn window(start: usize, len: usize) -> (usize, usize) {
    if len <= QUOTE_MAX {
        return (0, len);
    }
    let skip = start
        .saturating_sub(QUOTE_MAX / 4)
        .min(len.saturating_sub(QUOTE_MAX));
    (skip, QUOTE_MAX.min(len - skip))
}

/// Line `n` (1-based) of `source`, counting line breaks as YAML does (and as the positions
/// in diagnostics do): `\r\n`, `\r` and `\n`.
pub fn nth_line(source: &str, n: usize) -> Option<&str> {
    let mut rest = source;
    for _ in 1..n {
        let end = rest.find(['\n', '\r'])?;
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    Some(&rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())])
}

/// The lines of a source, found once: quoting the line of each of many diagnostics stays
/// linear in the size of the file (finding each from the start was quadratic).
pub struct Lines<'a> {
    source: &'a str,
    /// Byte offset of the start and end of each line.
    bounds: Vec<(usize, usize)>,
}

impl<'a> Lines<'a> {
    pub fn new(source: &'a str) -> Lines<'a> {
        let bytes = source.as_bytes();
        let mut bounds = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    bounds.push((start, i));
                    i += 2;
                    start = i;
                }
                b'\r' | b'\n' => {
                    bounds.push((start, i));
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        bounds.push((start, bytes.len()));
        Lines { source, bounds }
    }

    /// How many lines there are (an empty source has one, empty).
    pub fn count(&self) -> usize {
        self.bounds.len()
    }

    /// Line `n` (1-based), as [`nth_line`] gives it.
    pub fn line(&self, n: usize) -> Option<&'a str> {
        let &(start, end) = self.bounds.get(n.checked_sub(1)?)?;
        self.source.get(start..end)
    }
}

/// Render every diagnostic of one file, in source order, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], path: &str, source: &str) -> String {
    let lines = Lines::new(source);
    in_file_order(diagnostics)
        .iter()
        .map(|d| d.render_as("error", path, &lines))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The diagnostics of one file as they are reported: problems of the file as a whole
/// first, then in source order.
pub fn in_file_order(diagnostics: &[Diagnostic]) -> Vec<&Diagnostic> {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| d.span.map(|s| s.start));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_at_cr_lf_and_crlf() {
        let src = "a\rb\r\nc\nd";
        let lines: Vec<_> = (1..=5).map(|n| nth_line(src, n)).collect();
        assert_eq!(lines, [Some("a"), Some("b"), Some("c"), Some("d"), None]);
        assert_eq!(nth_line("x\n", 2), Some(""));
        for src in [src, "x\n", "", "\n\n", "a\r\n\rb"] {
            let index = Lines::new(src);
            for n in 0..8 {
                assert_eq!(
                    index.line(n),
                    nth_line(src, n).filter(|_| n > 0),
                    "{src:?} {n}"
                );
            }
        }
    }

    #[test]
    fn a_problem_of_the_whole_file_is_placed_at_its_start() {
        let d = Diagnostic::new(Code::InvalidName, None, "bad name");
        let start = Pos { line: 1, col: 1 };
        assert_eq!(d.range(), (start, start));
        let span = Span {
            start: Pos { line: 3, col: 5 },
            end: Pos { line: 3, col: 9 },
        };
        let d = Diagnostic::new(Code::UnknownKey, span, "x");
        assert_eq!(d.range(), (span.start, span.end));
    }

    #[test]
    fn renders_line_caret_and_help() {
        let src = "tasks:\n  a:\n    need: [b]\n";
        let span = Span {
            start: Pos { line: 3, col: 5 },
            end: Pos { line: 3, col: 9 },
        };
        let d = Diagnostic::new(Code::UnknownKey, span, "unknown key `need` in task `a`")
            .help("did you mean `needs`?");
        assert_eq!(
            d.render("w.yaml", src),
            "error: unknown key `need` in task `a`\n --> w.yaml:3:5\n  |\n3 |     need: [b]\n  |     ^^^^\n  = help: did you mean `needs`?\n"
        );
    }
}

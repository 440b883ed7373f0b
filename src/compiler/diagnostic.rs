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

use super::yaml::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, lowercase, identifiers in backticks.
    pub message: String,
    /// Where; `None` for problems of the file as a whole (e.g. its name).
    pub span: Option<Span>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: impl Into<Option<Span>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
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

    /// `file:line:col` of this problem (just `file` when it has no position).
    pub fn location(&self, path: &str) -> String {
        match self.span {
            Some(span) => format!("{path}:{}:{}", span.start.line, span.start.col),
            None => path.to_string(),
        }
    }

    /// Render for a person: message, location, the quoted line with a caret, and the help.
    pub fn render(&self, path: &str, source: &str) -> String {
        self.render_as("error", path, source)
    }

    /// The same, for something that does not stop the command.
    pub fn render_warning(&self, path: &str, source: &str) -> String {
        self.render_as("warning", path, source)
    }

    fn render_as(&self, level: &str, path: &str, source: &str) -> String {
        let mut out = format!("{level}: {}\n", self.message);
        let Some(span) = self.span else {
            let _ = writeln!(out, "  --> {path}");
            if let Some(help) = &self.help {
                let _ = writeln!(out, "   = help: {help}");
            }
            return out;
        };
        let line_no = span.start.line.max(1);
        let text = nth_line(source, line_no).unwrap_or("");
        let gutter = line_no.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}--> {}", self.location(path));
        let _ = writeln!(out, "{pad} |");
        // Control characters (tabs included) would move or garble the caret line.
        let shown: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(out, "{line_no} | {shown}");
        let line_chars = text.chars().count();
        let start = span.start.col.max(1) - 1;
        let end = if span.end.line == span.start.line && span.end.col > span.start.col {
            span.end.col - 1
        } else {
            line_chars.max(start + 1)
        };
        let width = end
            .saturating_sub(start)
            .clamp(1, line_chars.saturating_sub(start).max(1));
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(start), "^".repeat(width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
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

/// Render every diagnostic of one file, in source order, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], path: &str, source: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| d.span.map(|s| s.start));
    sorted
        .iter()
        .map(|d| d.render(path, source))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler::yaml::Pos;

    #[test]
    fn lines_break_at_cr_lf_and_crlf() {
        let src = "a\rb\r\nc\nd";
        let lines: Vec<_> = (1..=5).map(|n| nth_line(src, n)).collect();
        assert_eq!(lines, [Some("a"), Some("b"), Some("c"), Some("d"), None]);
        assert_eq!(nth_line("x\n", 2), Some(""));
    }

    #[test]
    fn renders_line_caret_and_help() {
        let src = "tasks:\n  a:\n    need: [b]\n";
        let span = Span {
            start: Pos { line: 3, col: 5 },
            end: Pos { line: 3, col: 9 },
        };
        let d =
            Diagnostic::new(span, "unknown key `need` in task `a`").help("did you mean `needs`?");
        assert_eq!(
            d.render("w.yaml", src),
            "error: unknown key `need` in task `a`\n --> w.yaml:3:5\n  |\n3 |     need: [b]\n  |     ^^^^\n  = help: did you mean `needs`?\n"
        );
    }
}

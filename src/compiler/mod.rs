//! The pure compiler: parse → validate → emit units. No I/O happens here: callers pass the
//! YAML text and get unit files as text, or every problem found as located diagnostics.
//!
//! - `yaml`: text → a tree that keeps positions and duplicate keys.
//! - `parse`: tree → `model::Workflow`, checking keys, types and values.
//! - `validate`: resolves `needs` and checks the task graph.
//! - `emit`: workflow → unit files (`unit_file` lays them out, `escape` quotes values).
//! - `diagnostic`: every problem, located, rendered for people; `code` names its kind.

pub mod code;
pub mod diagnostic;
pub mod duration;
pub mod emit;
pub mod escape;
pub mod model;
pub mod names;
pub mod parse;
pub mod schedule;
pub mod service_keys;
pub mod suggest;
pub mod unit_file;
pub mod validate;
pub mod yaml;

use std::path::Path;

pub use diagnostic::{Code, Diagnostic};
pub use emit::{EmitOptions, GeneratedFile};
pub use model::Workflow;

/// Most diagnostics reported for one file. Past a few dozen, more help nobody (fixing the
/// first often fixes the rest), and a hostile file could make hundreds of thousands: the
/// rest are counted in one last diagnostic.
pub const MAX_DIAGNOSTICS: usize = 100;

/// Parse and validate one workflow file. `path` names the file in errors and gives the
/// workflow its default name (the file's stem).
pub fn check(path: &str, text: &str) -> Result<Workflow, Vec<Diagnostic>> {
    check_unclamped(path, text).map_err(|mut diags| {
        let lines = diagnostic::Lines::new(text);
        // The last line and its length, found once for every diagnostic that needs them.
        let mut last: Option<(usize, usize)> = None;
        for d in &mut diags {
            if let Some(span) = &mut d.span {
                let start = clamp(&lines, &mut last, span.start);
                if start != span.start {
                    *span = yaml::Span {
                        start,
                        end: yaml::Pos {
                            line: start.line,
                            col: start.col + 1,
                        },
                    };
                }
            }
        }
        limit(diags)
    })
}

/// At most [`MAX_DIAGNOSTICS`], the first in the file, then one that counts the others.
fn limit(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if diags.len() <= MAX_DIAGNOSTICS {
        return diags;
    }
    // Stable: problems of the file as a whole (no position) first, then in file order.
    diags.sort_by_key(|d| d.span.map(|s| s.start));
    let more = diags.len() - MAX_DIAGNOSTICS;
    let at = diags[MAX_DIAGNOSTICS].span;
    diags.truncate(MAX_DIAGNOSTICS);
    diags.push(
        Diagnostic::new(
            Code::TooManyProblems,
            at,
            format!("{more} more problems from here on are not shown"),
        )
        .help(format!(
            "fix the first {MAX_DIAGNOSTICS} and check the file again"
        )),
    );
    diags
}

/// The text of a workflow file read as bytes: a file that is not UTF-8 gets one
/// diagnostic at the first byte that is not, with a rendering source in which that byte
/// shows as U+FFFD.
pub fn decode(bytes: &[u8]) -> Result<&str, (Diagnostic, String)> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // Everything before the bad byte is UTF-8: count lines and columns there as
            // the YAML positions do (`\r\n`, `\r`, `\n`).
            let before = std::str::from_utf8(valid).unwrap_or_default();
            let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
            let line = 1 + before
                .replace("\r\n", "\n")
                .bytes()
                .filter(|&b| b == b'\n' || b == b'\r')
                .count();
            let col = before[line_start..].chars().count() + 1;
            let bad = bytes
                .get(e.valid_up_to())
                .map_or(String::new(), |b| format!(" (byte 0x{b:02x})"));
            let start = yaml::Pos { line, col };
            let span = yaml::Span {
                start,
                end: yaml::Pos { line, col: col + 1 },
            };
            let diagnostic = Diagnostic::new(
                Code::NotUtf8,
                span,
                format!("the file is not UTF-8 text{bad}"),
            )
            .help("save the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)");
            Err((diagnostic, String::from_utf8_lossy(bytes).into_owned()))
        }
    }
}

fn check_unclamped(path: &str, text: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    // The path is written in the header of every unit; it is escaped there, but a path
    // that needs escaping is no workflow's (and flow reads the header back as the path).
    if let Some(c) = path.chars().find(|&c| escape::needs_visible(c)) {
        let mut shown = String::new();
        escape::push_visible(&mut shown, c);
        return Err(vec![
            Diagnostic::new(
                Code::UnprintablePath,
                None,
                format!(
                    "the path of this file contains `{shown}`, a control or invisible character"
                ),
            )
            .help("rename the file (or its directory) with printable characters only"),
        ]);
    }
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let start = yaml::Pos { line: 1, col: 1 };
            let span = yaml::Span { start, end: start };
            return Err(vec![
                Diagnostic::new(Code::EmptyFile, span, "the file is empty").help(
                    "a workflow needs at least `tasks:`, e.g. `tasks: {hello: {run: echo hello}}`",
                ),
            ]);
        }
        Err(e) => {
            let span = yaml::Span {
                start: e.pos,
                end: yaml::Pos {
                    line: e.pos.line,
                    col: e.pos.col + 1,
                },
            };
            if let Some(d) = unquoted_star(text, &e, span) {
                return Err(vec![d]);
            }
            return Err(vec![
                Diagnostic::new(
                    Code::YamlSyntax,
                    span,
                    format!("invalid YAML: {}", e.message),
                )
                .help("check indentation, quotes and brackets around this point"),
            ]);
        }
    };
    let stem = Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    let parsed = parse::decode(&root, stem, &mut diags);
    match parsed {
        Some(mut parsed) if diags.is_empty() => {
            validate::resolve(&mut parsed, &mut diags);
            if diags.is_empty() {
                Ok(parsed.workflow)
            } else {
                Err(diags)
            }
        }
        Some(mut parsed) => {
            // Still report graph problems alongside the others.
            validate::resolve(&mut parsed, &mut diags);
            Err(diags)
        }
        None => Err(diags),
    }
}

/// A value that starts with `*` unquoted, such as a cron expression (`schedule: */5 * * * *`):
/// YAML reads it as an alias, and the parser's "unknown anchor" says nothing useful.
fn unquoted_star(text: &str, e: &yaml::SyntaxError, span: yaml::Span) -> Option<Diagnostic> {
    if !e.message.contains("anchor") {
        return None;
    }
    let line = diagnostic::nth_line(text, e.pos.line)?;
    let before: String = line.chars().take(e.pos.col.saturating_sub(1)).collect();
    let value: String = line.chars().skip(e.pos.col.saturating_sub(1)).collect();
    let mut value = value.split(" #").next().unwrap_or("").trim_end();
    if before.contains(['{', '[']) {
        // In a flow collection the value ends at the next `,`, `}` or `]`.
        value = value.split([',', '}', ']']).next().unwrap_or("").trim_end();
    }
    if !value.starts_with('*') {
        return None;
    }
    let key = before
        .trim_end()
        .strip_suffix(':')
        .and_then(|k| k.rsplit([' ', '{', '[', ',']).next())
        .unwrap_or("");
    let span = yaml::Span {
        start: span.start,
        end: yaml::Pos {
            line: span.start.line,
            col: span.start.col + value.chars().count(),
        },
    };
    let quoted = value.replace('"', "\\\"");
    Some(if matches!(key, "schedule" | "cron") {
        Diagnostic::new(
            Code::CronUnquoted,
            span,
            "this cron expression must be quoted: unquoted, YAML reads `*` as an alias",
        )
        .help(format!("write `{key}: \"{quoted}\"`"))
    } else {
        Diagnostic::new(
            Code::StarUnquoted,
            span,
            "a value that starts with `*` must be quoted: unquoted, YAML reads `*` as an alias",
        )
        .help(format!(
            "write \"{quoted}\" (an alias `*NAME` needs an anchor `&NAME` before it)"
        ))
    })
}

/// The parser may place an error or an empty node at the end of input, one line past the
/// last one; point at the end of the last line instead, so that a line can be quoted.
/// `last` caches the last line's number and length.
fn clamp(
    lines: &diagnostic::Lines,
    last: &mut Option<(usize, usize)>,
    pos: yaml::Pos,
) -> yaml::Pos {
    if pos.line <= 1 || lines.line(pos.line).is_some() {
        return pos;
    }
    let (line, len) = *last.get_or_insert_with(|| {
        let line = lines.count().max(1);
        (line, lines.line(line).map_or(0, |l| l.chars().count()))
    });
    yaml::Pos { line, col: len + 1 }
}

/// Check and emit one workflow file, for installation in `unit_dir`, with the flow binary
/// at its packaged place.
pub fn compile(
    path: &str,
    text: &str,
    unit_dir: &str,
) -> Result<(Workflow, Vec<GeneratedFile>), Vec<Diagnostic>> {
    compile_with(
        text,
        &EmitOptions {
            source_path: path.to_string(),
            unit_dir: unit_dir.to_string(),
            flow_bin: emit::DEFAULT_FLOW_BIN.to_string(),
        },
    )
}

/// Check and emit one workflow file with explicit options (`opts.source_path` is the file).
pub fn compile_with(
    text: &str,
    opts: &EmitOptions,
) -> Result<(Workflow, Vec<GeneratedFile>), Vec<Diagnostic>> {
    let workflow = check(&opts.source_path, text)?;
    let files = emit::emit(&workflow, opts);
    Ok((workflow, files))
}

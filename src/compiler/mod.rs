//! The pure compiler: parse → validate → emit units. No I/O happens here: callers pass the
//! YAML text and get unit files as text, or every problem found as located diagnostics.
//!
//! - `yaml`: text → a tree that keeps positions and duplicate keys.
//! - `parse`: tree → `model::Workflow`, checking keys, types and values.
//! - `validate`: resolves `needs` and checks the task graph.
//! - `emit`: workflow → unit files (`unit_file` lays them out, `escape` quotes values).

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

pub use diagnostic::Diagnostic;
pub use emit::{EmitOptions, GeneratedFile};
pub use model::Workflow;

/// Parse and validate one workflow file. `path` names the file in errors and gives the
/// workflow its default name (the file's stem).
pub fn check(path: &str, text: &str) -> Result<Workflow, Vec<Diagnostic>> {
    check_unclamped(path, text).map_err(|mut diags| {
        for d in &mut diags {
            if let Some(span) = &mut d.span {
                let start = clamp(text, span.start);
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
        diags
    })
}

fn check_unclamped(path: &str, text: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let start = yaml::Pos { line: 1, col: 1 };
            let span = yaml::Span { start, end: start };
            return Err(vec![Diagnostic::new(span, "the file is empty").help(
                "a workflow needs at least `tasks:`, e.g. `tasks: {hello: {run: echo hello}}`",
            )]);
        }
        Err(e) => {
            let span = yaml::Span {
                start: e.pos,
                end: yaml::Pos {
                    line: e.pos.line,
                    col: e.pos.col + 1,
                },
            };
            return Err(vec![
                Diagnostic::new(span, format!("invalid YAML: {}", e.message))
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

/// The parser may place an error or an empty node at the end of input, one line past the
/// last one; point at the end of the last line instead, so that a line can be quoted.
fn clamp(text: &str, pos: yaml::Pos) -> yaml::Pos {
    if pos.line <= 1 || diagnostic::nth_line(text, pos.line).is_some() {
        return pos;
    }
    let mut line = pos.line;
    while line > 1 && diagnostic::nth_line(text, line).is_none() {
        line -= 1;
    }
    let len = diagnostic::nth_line(text, line).map_or(0, |l| l.chars().count());
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

//! `flow graph`: a workflow's tasks and edges as Graphviz dot or Mermaid.

use super::exit::{CliError, Exit};
use super::{GraphFormat, Scope, workflows};
use crate::compiler::model::{When, Workflow};

pub fn run(workflow: &str, format: GraphFormat, scope: &Scope) -> Result<Exit, CliError> {
    let path = workflows::find(workflow, scope.user)?;
    let compiled = workflows::compile_all(&[path], &workflows::units_dir(scope.user))?;
    for c in &compiled {
        print!("{}", render(&c.workflow, format));
    }
    Ok(Exit::Success)
}

/// Edges point from a task to the tasks that need it (the order things run in).
pub fn render(wf: &Workflow, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Dot => {
            out.push_str(&format!("digraph \"{}\" {{\n  rankdir=LR;\n", wf.name));
            for t in &wf.tasks {
                out.push_str(&format!("  \"{}\";\n", t.name));
            }
            for t in &wf.tasks {
                for &up in &t.needs {
                    let style = match t.when {
                        When::AllSuccess => String::new(),
                        other => format!(" [label=\"{}\", style=dashed]", other.as_str()),
                    };
                    out.push_str(&format!(
                        "  \"{}\" -> \"{}\"{style};\n",
                        wf.tasks[up].name, t.name
                    ));
                }
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            // Mermaid ids cannot contain `-`; use indices and show names as labels.
            for (i, t) in wf.tasks.iter().enumerate() {
                out.push_str(&format!("  t{i}[\"{}\"]\n", t.name));
            }
            for (i, t) in wf.tasks.iter().enumerate() {
                for &up in &t.needs {
                    let arrow = match t.when {
                        When::AllSuccess => "-->".to_string(),
                        other => format!("-. {} .->", other.as_str()),
                    };
                    out.push_str(&format!("  t{up} {arrow} t{i}\n"));
                }
            }
        }
    }
    out
}

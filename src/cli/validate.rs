//! `flow validate`: report every problem in every file; exit 1 if any. With `--json`, the
//! same report as one object on stdout (docs/json.md); stderr says what it says without.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::exit::{CliError, Exit};
use super::workflows::{self, Checked};
use super::{Scope, output};
use crate::compiler::diagnostic::{self, Code, Diagnostic};

pub fn run(paths: &[PathBuf], scope: &Scope, json: bool) -> Result<Exit, CliError> {
    let paths = workflows::paths_or_default(paths, scope.user, "validate")?;
    let files = workflows::expand(&paths)?;
    if files.is_empty() {
        return Err(CliError::Invalid(format!(
            "no workflow files (*.yaml, *.yml) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Reading a file others can change is no harm; `flow plan` and `flow apply` refuse it.
    let trusted = crate::install::trust::Trusted::caller();
    let warnings: Vec<Option<Diagnostic>> = files
        .iter()
        .map(|f| {
            let u = crate::install::trust::check_here(f, &trusted).err()?;
            eprintln!("warning: {u}; `flow apply` refuses it\n");
            Some(
                Diagnostic::new(
                    Code::UntrustedFile,
                    None,
                    format!("{}; `flow apply` refuses it", u.message()),
                )
                .help(u.fix),
            )
        })
        .collect();
    let checked = workflows::check_all(&files, &workflows::units_dir(scope.user))?;
    if json {
        output::json_line(&report(&checked, &warnings));
    } else {
        for c in checked.iter().filter_map(|c| c.outcome.as_ref().ok()) {
            let n = c.workflow.tasks.len();
            println!(
                "{}: workflow `{}` is valid ({n} task{})",
                c.path.display(),
                c.workflow.name,
                if n == 1 { "" } else { "s" }
            );
        }
    }
    match checked.iter().filter(|c| c.outcome.is_err()).count() {
        0 => Ok(Exit::Success),
        invalid => Err(workflows::invalid_files(invalid)),
    }
}

/// `validate --json`: each file, valid or not, and every diagnostic of every file (a file's
/// warning first, then its errors in file order). `warnings` is per file, as `checked`.
fn report(checked: &[Checked], warnings: &[Option<Diagnostic>]) -> Value {
    let mut files = Vec::with_capacity(checked.len());
    let mut diagnostics = Vec::new();
    for (c, warning) in checked.iter().zip(warnings) {
        let file = c.path.display().to_string();
        diagnostics.extend(warning.iter().map(|d| output::diagnostic(d, &file)));
        match &c.outcome {
            Ok(compiled) => files.push(json!({
                "file": file,
                "valid": true,
                "workflow": compiled.workflow.name,
                "tasks": compiled.workflow.tasks.len(),
            })),
            Err(diags) => {
                diagnostics.extend(
                    diagnostic::in_file_order(diags)
                        .into_iter()
                        .map(|d| output::diagnostic(d, &file)),
                );
                files.push(json!({"file": file, "valid": false, "workflow": null, "tasks": null}));
            }
        }
    }
    json!({
        "valid": checked.iter().all(|c| c.outcome.is_ok()),
        "files": files,
        "diagnostics": diagnostics,
    })
}

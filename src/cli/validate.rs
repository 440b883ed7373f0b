//! `flow validate`: report every problem in every file; exit 1 if any.

use std::path::PathBuf;

use super::exit::{CliError, Exit};
use super::{Scope, workflows};

pub fn run(paths: &[PathBuf], scope: &Scope) -> Result<Exit, CliError> {
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
    for f in &files {
        if let Err(u) = crate::install::trust::check_here(f, &trusted) {
            eprintln!("warning: {u}; `flow apply` refuses it\n");
        }
    }
    let compiled = workflows::compile_all(&files, &workflows::units_dir(scope.user))?;
    for c in &compiled {
        let n = c.workflow.tasks.len();
        println!(
            "{}: workflow `{}` is valid ({n} task{})",
            c.path.display(),
            c.workflow.name,
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(Exit::Success)
}

//! `flow compile FILE... --out DIR`: the pure compiler's output written to a directory.

use std::path::{Path, PathBuf};

use super::exit::{CliError, Exit};
use super::workflows;

pub fn run(paths: &[PathBuf], out: &Path) -> Result<Exit, CliError> {
    let files = workflows::expand(paths)?;
    // Units will be read from `out` if installed from there; large scripts point at it.
    let compiled = workflows::compile_all(&files, out)?;
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::io(format!("cannot create {}", out.display()), e))?;
    for c in &compiled {
        for f in &c.files {
            let path = out.join(&f.name);
            std::fs::write(&path, &f.contents)
                .map_err(|e| CliError::io(format!("cannot write {}", path.display()), e))?;
        }
    }
    Ok(Exit::Success)
}

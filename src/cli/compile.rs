//! `flow compile FILE... --out DIR`: the pure compiler's output written to a directory.
//! With `--json`, the units as one object on stdout (docs/json.md), written only with `--out`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::exit::{CliError, Exit};
use super::output;
use super::workflows::{self, Compiled};
use crate::install::files::{Dir, Entry};

pub fn run(paths: &[PathBuf], out: Option<&Path>, json: bool) -> Result<Exit, CliError> {
    let files = workflows::expand(paths)?;
    // Units will be read from `out` if installed from there; large scripts point at it.
    // Without it (only with `--json`), they are made for the system's unit directory, as
    // `flow apply` installs them.
    let unit_dir = out.map_or_else(|| PathBuf::from(workflows::SYSTEM_UNITS), Path::to_path_buf);
    let compiled = workflows::compile_all(&files, &unit_dir)?;
    if let Some(out) = out {
        write(&compiled, out)?;
    }
    if json {
        output::json_line(&units_json(&compiled, &unit_dir, out.is_some()));
    }
    Ok(Exit::Success)
}

/// Writes every workflow's files into `out`, or none of them.
fn write(compiled: &[Compiled], out: &Path) -> Result<(), CliError> {
    let cannot_write = |e| CliError::io(format!("cannot write units in {}", out.display()), e);
    // The directory and every file written without following a link (a link there is
    // refused, not written through), each file atomically with mode 0644.
    let dir = Dir::open(out, true).map_err(cannot_write)?;
    let all = || compiled.iter().flat_map(|c| &c.files);
    for f in all() {
        match dir.entry(&f.name).map_err(cannot_write)? {
            None | Some(Entry::Flows | Entry::Other) => {}
            Some(other) => {
                return Err(CliError::System(format!(
                    "{} is {}: flow does not write through links nor over what is not a file; remove it, nothing was written",
                    out.join(&f.name).display(),
                    other.describe()
                )));
            }
        }
    }
    for f in all() {
        dir.write(&f.name, f.contents.as_bytes()).map_err(|e| {
            CliError::io(format!("cannot write {}", out.join(&f.name).display()), e)
        })?;
    }
    dir.sync().map_err(cannot_write)
}

/// `compile --json`: per workflow, its file and the files it compiles to, whole.
fn units_json(compiled: &[Compiled], unit_dir: &Path, written: bool) -> Value {
    let workflows: Vec<Value> = compiled
        .iter()
        .map(|c| {
            let files: Vec<Value> = c
                .files
                .iter()
                .map(|f| json!({"name": f.name, "content": f.contents}))
                .collect();
            json!({
                "workflow": c.workflow.name,
                "file": c.path.display().to_string(),
                "files": files,
            })
        })
        .collect();
    json!({
        "unit_dir": workflows::absolute(unit_dir).display().to_string(),
        "written": written,
        "workflows": workflows,
    })
}

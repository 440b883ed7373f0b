//! `flow compile FILE... --out DIR`: the pure compiler's output written to a directory.

use std::path::{Path, PathBuf};

use super::exit::{CliError, Exit};
use super::workflows;
use crate::install::files::{Dir, Entry};

pub fn run(paths: &[PathBuf], out: &Path) -> Result<Exit, CliError> {
    let files = workflows::expand(paths)?;
    // Units will be read from `out` if installed from there; large scripts point at it.
    let compiled = workflows::compile_all(&files, out)?;
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
    dir.sync().map_err(cannot_write)?;
    Ok(Exit::Success)
}

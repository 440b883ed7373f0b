//! The one place command output is shaped for scripts: every `--json` prints one object on
//! one line (JSON lines for streams), and what is unknown is `null`. docs/json.md describes
//! each command's object and docs/schema/ holds its JSON Schema; tests hold real outputs to
//! them.

use serde_json::Value;

/// Prints `v` as one line of JSON on stdout.
pub fn json_line(v: &Value) {
    println!("{v}");
}

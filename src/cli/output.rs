//! The one place command output is shaped for scripts: every `--json` prints one object on
//! one line (JSON lines for streams), and what is unknown is `null`. docs/json.md describes
//! each command's object and docs/schema/ holds its JSON Schema; tests hold real outputs to
//! them.

use serde_json::{Value, json};

use crate::compiler::Diagnostic;

/// Prints `v` as one line of JSON on stdout.
pub fn json_line(v: &Value) {
    println!("{v}");
}

/// One problem found in workflow file `file`, for `--json`: its stable code, where it is
/// (from line:column up to the column after its end; a problem of the whole file at 1:1),
/// and what to do. The texts are as for a person, unescaped: JSON quotes what it must.
pub fn diagnostic(d: &Diagnostic, file: &str) -> Value {
    let (start, end) = d.range();
    json!({
        "code": d.code.as_str(),
        "severity": d.code.severity().as_str(),
        "file": file,
        "line": start.line,
        "column": start.col,
        "end_line": end.line,
        "end_column": end.col,
        "message": d.message,
        "help": d.help,
    })
}

/// A point in time given in microseconds since the epoch (systemd's and the history's
/// unit), in the machine's local time; `None` outside chrono's range.
pub fn local_time(us: i64) -> Option<chrono::DateTime<chrono::Local>> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.with_timezone(&chrono::Local))
}

/// [`local_time`] as RFC 3339 with the offset, for `--json`.
pub fn timestamp(us: i64) -> Option<String> {
    local_time(us).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_with_an_offset() {
        let t = timestamp(1_700_000_000_123_456).unwrap_or_default();
        let parsed = chrono::DateTime::parse_from_rfc3339(&t).map(|d| d.timestamp_micros());
        assert_eq!(parsed, Ok(1_700_000_000_123_000), "{t}");
        assert!(
            t.ends_with('Z') || t.contains('+') || t.rfind('-') > Some(10),
            "{t}"
        );
    }
}

//! The one output layer of the commands: the cells of their tables for people, and the
//! objects of their `--json` for scripts. Every `--json` prints one object on one line (JSON
//! lines for streams); what is unknown is `null`; times are RFC 3339 with the offset and
//! durations milliseconds. docs/json.md describes each command's object and docs/schema/
//! holds its JSON Schema; tests hold real outputs to them.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::compiler::Diagnostic;
use crate::runs::TaskState;
use crate::store::{Attempt, Run};
use crate::vocabulary::{AttemptResult, RunResult, TriggerKind};

/// Prints `v` as one line of JSON on stdout.
pub fn json_line(v: &impl Serialize) {
    println!("{}", json_text(v));
}

/// `v` as one line of JSON.
pub fn json_text(v: &impl Serialize) -> String {
    // Serializing these types cannot fail (string keys, finite numbers); were it to, the
    // line would be `null` rather than half an object.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
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

/// The milliseconds from one µs time to another, when both are known and in order.
pub fn duration_ms(from_us: Option<i64>, to_us: Option<i64>) -> Option<i64> {
    match (from_us, to_us) {
        (Some(a), Some(b)) if b >= a => Some((b - a) / 1000),
        _ => None,
    }
}

// ---- Cells of the tables ----

/// A table's date and time: `2026-03-01 14:30:00`, local (UTC in unit tests, so that
/// snapshots do not depend on the machine's zone).
pub fn datetime(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| {
            if cfg!(test) {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            }
        })
        .unwrap_or_default()
}

/// A date and time with its zone, as `flow list` shows the next run.
pub fn datetime_zone(us: i64) -> String {
    local_time(us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
        .unwrap_or_default()
}

/// µs since the epoch as local `HH:MM:SS.mmm`, as `flow logs` shows a line's time.
pub fn clock(us: i64) -> String {
    local_time(us)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// The time from one µs time to another: `420ms`, `3.2s`, `2m05s`; `-` when unknown.
pub fn span(from: Option<i64>, to: Option<i64>) -> String {
    match duration_ms(from, to) {
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        None => "-".into(),
    }
}

/// A task's time as a run's progress shows it: `0.42s`, `2m05s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The mark before a task in a run's progress and in `flow status`.
pub fn mark(state: &TaskState) -> &'static str {
    match state {
        TaskState::Pending => "·",
        TaskState::Running | TaskState::Stopping => "▶",
        TaskState::RetryPending(_) => "↻",
        TaskState::Succeeded => "✓",
        TaskState::Skipped | TaskState::UpstreamFailed | TaskState::Unknown => "-",
        TaskState::Canceled => "⊘",
        _ => "✗",
    }
}

// ---- Objects of `--json` (docs/json.md; each has its schema in docs/schema/) ----

/// A run as `flow status` shows it, with or without RUN (status.json), and the part of
/// `flow run --wait` that says how its run went (run-wait.json).
#[derive(Debug, Serialize)]
pub struct RunJson {
    pub workflow: String,
    pub run: Option<i64>,
    pub trigger: Option<TriggerKind>,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_ms: Option<i64>,
    /// `None` while it goes, or when unknown.
    pub result: Option<RunResult>,
    pub running: Option<bool>,
    /// `None` when the workflow is not installed.
    pub source_state: Option<&'static str>,
    pub tasks: Vec<TaskJson>,
}

/// One task of a shown run: its state, how its last attempt ended, and every attempt the
/// history has of it.
#[derive(Debug, Serialize)]
pub struct TaskJson {
    pub task: String,
    pub state: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub start_error: Option<String>,
    pub duration_ms: Option<i64>,
    pub invocation_id: Option<String>,
    pub attempts: Vec<AttemptJson>,
}

impl TaskJson {
    /// A task in `state` (as systemd or the supervisor told it), with its attempts.
    pub fn of_state(
        task: &str,
        state: &TaskState,
        duration: Option<Duration>,
        invocation_id: Option<String>,
        attempts: Vec<AttemptJson>,
    ) -> TaskJson {
        let outcome = state.outcome();
        TaskJson {
            task: task.to_string(),
            state: state.key(),
            exit_code: outcome.as_ref().and_then(|o| o.exit_code),
            signal: outcome.as_ref().and_then(|o| o.signal),
            start_error: outcome.and_then(|o| o.start_error),
            duration_ms: duration.map(|d| d.as_millis() as i64),
            invocation_id,
            attempts,
        }
    }
}

/// One attempt, as the history has it.
#[derive(Debug, Serialize)]
pub struct AttemptJson {
    pub attempt: u32,
    pub result: AttemptResult,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub start_error: Option<String>,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_ms: Option<i64>,
    pub invocation_id: Option<String>,
    /// CPU time, in milliseconds (to the µs).
    pub cpu_ms: Option<f64>,
    pub memory_peak_bytes: Option<i64>,
}

impl From<&Attempt> for AttemptJson {
    fn from(a: &Attempt) -> AttemptJson {
        AttemptJson {
            attempt: a.attempt,
            result: a.outcome.result,
            exit_code: a.outcome.exit_code,
            signal: a.outcome.signal,
            start_error: a.outcome.start_error.clone(),
            started: a.started_us.and_then(timestamp),
            ended: a.ended_us.and_then(timestamp),
            duration_ms: duration_ms(a.started_us, a.ended_us),
            invocation_id: a.invocation_id.clone(),
            cpu_ms: a.cpu_ns.map(|ns| (ns / 1000) as f64 / 1000.0),
            memory_peak_bytes: a.memory_peak,
        }
    }
}

/// A recorded run, as `flow history` lists it (history.json) and `flow stats` its last
/// failures.
#[derive(Debug, Serialize)]
pub struct HistoryRunJson {
    pub run: i64,
    pub workflow: String,
    pub trigger: TriggerKind,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_ms: Option<i64>,
    pub result: Option<RunResult>,
}

impl From<&Run> for HistoryRunJson {
    fn from(r: &Run) -> HistoryRunJson {
        HistoryRunJson {
            run: r.id,
            workflow: r.workflow.clone(),
            trigger: r.trigger,
            started: timestamp(r.started_us),
            ended: r.ended_us.and_then(timestamp),
            duration_ms: duration_ms(Some(r.started_us), r.ended_us),
            result: r.result,
        }
    }
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

    #[test]
    fn spans_and_durations() {
        assert_eq!(span(Some(0), Some(420_000)), "420ms");
        assert_eq!(span(Some(0), Some(3_240_000)), "3.2s");
        assert_eq!(span(Some(0), Some(125_000_000)), "2m05s");
        assert_eq!(span(Some(5), None), "-");
        assert_eq!(duration_ms(Some(10), Some(5)), None);
        assert_eq!(duration_ms(Some(0), Some(1_999)), Some(1));
    }

    #[test]
    fn an_attempt_in_json_has_times_and_milliseconds() {
        let a = Attempt {
            run_id: 1,
            task: "t".into(),
            attempt: 2,
            invocation_id: None,
            started_us: Some(1_700_000_000_000_000),
            ended_us: Some(1_700_000_000_420_000),
            outcome: crate::vocabulary::Outcome::killed(9),
            cpu_ns: Some(1_234_567),
            memory_peak: Some(4096),
        };
        let v = serde_json::to_value(AttemptJson::from(&a)).unwrap_or_default();
        assert_eq!(v["result"], "killed");
        assert_eq!(v["signal"], 9);
        assert_eq!(v["duration_ms"], 420);
        assert_eq!(v["cpu_ms"], 1.234);
        assert!(v["started"].as_str().is_some_and(|s| s.contains('T')));
    }
}

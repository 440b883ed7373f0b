//! `flow history`: the recorded runs, newest first.

use std::fmt::Write as _;

use super::db::{self, DbArgs};
use super::exit::{CliError, Exit};
use super::output::{HistoryRunJson, datetime, json_line, span};
use crate::store::{self, Filter, Run};
use crate::vocabulary::RunResult;

pub fn history(
    name: Option<&str>,
    failed: bool,
    since: Option<&str>,
    json: bool,
    limit: u32,
    db: &DbArgs,
) -> Result<Exit, CliError> {
    let since_us = since.map(parse_since).transpose()?;
    let s = db.open()?;
    if let Some(name) = name {
        db::known_workflow(&s, name, db.user)?;
    }
    let runs = s
        .history(&Filter {
            workflow: name.map(str::to_string),
            failed_only: failed,
            since_us,
            limit: Some(limit),
        })
        .map_err(|e| CliError::System(e.to_string()))?;
    if json {
        let runs: Vec<HistoryRunJson> = runs.iter().map(HistoryRunJson::from).collect();
        json_line(&serde_json::json!({ "runs": runs }));
    } else {
        print!("{}", format_history(&runs));
    }
    Ok(Exit::Success)
}

/// `--since`: a duration back from now (`2h`, `7d`) or a date (`2026-03-01`).
fn parse_since(text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    if let Some(days) = t.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()) {
        return Ok(store::now_us() - days * 86_400_000_000);
    }
    if let Ok(d) = crate::compiler::duration::parse(t) {
        return Ok(store::now_us() - d.as_micros() as i64);
    }
    // A date and time as `flow history` prints them (`2026-03-01 14:30`), seconds or a
    // `T` allowed; a date alone is its midnight. Local time, as printed.
    let at = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
    });
    if let Some(local) = at.and_then(|dt| dt.and_local_timezone(chrono::Local).earliest()) {
        return Ok(local.timestamp_micros());
    }
    Err(CliError::Invalid(format!(
        "--since `{text}` is neither a duration (e.g. `2h`, `7d`) nor a date (e.g. `2026-03-01` or `2026-03-01 14:30`)"
    )))
}

/// The `history` table.
pub fn format_history(runs: &[Run]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("No runs recorded.\n");
        return out;
    }
    let wfw = runs
        .iter()
        .map(|r| r.workflow.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:>6}  {:wfw$}  {:9}  {:19}  {:>9}  RESULT",
        "RUN", "WORKFLOW", "TRIGGER", "START", "DURATION"
    );
    for r in runs {
        let _ = writeln!(
            out,
            "{:>6}  {:wfw$}  {:9}  {:19}  {:>9}  {}",
            r.id,
            r.workflow,
            r.trigger,
            datetime(r.started_us),
            span(Some(r.started_us), r.ended_us),
            r.result.map_or("running", RunResult::as_str)
        );
    }
    out
}

/// Runs and attempts for the tests of the history's tables (here, `status`, `stats`).
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::Attempt;
    use crate::vocabulary::{Outcome, TriggerKind};

    const T0: i64 = 1_772_000_000_000_000; // 2026-02-25 06:13:20 UTC

    pub(crate) fn run(
        id: i64,
        wf: &str,
        trigger: &str,
        secs: Option<i64>,
        result: Option<&str>,
    ) -> Run {
        Run {
            id,
            workflow: wf.into(),
            trigger: TriggerKind::parse(trigger),
            started_us: T0 + id * 3_600_000_000,
            ended_us: secs.map(|s| T0 + id * 3_600_000_000 + s * 1_000_000),
            result: result.and_then(RunResult::parse),
        }
    }

    pub(crate) fn attempt(
        task: &str,
        n: u32,
        at: i64,
        ms: i64,
        result: &str,
        inv: bool,
    ) -> Attempt {
        Attempt {
            run_id: 7,
            task: task.into(),
            attempt: n,
            invocation_id: inv.then(|| format!("{task}{n}").repeat(8)[..32].to_string()),
            started_us: inv.then_some(T0 + at * 1000),
            ended_us: Some(T0 + (at + ms) * 1000),
            outcome: Outcome::parse_legacy(result),
            cpu_ns: None,
            memory_peak: None,
        }
    }

    #[test]
    fn since_takes_durations_dates_and_times() {
        let local = |y, mo, d, h, mi| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|d| d.and_hms_opt(h, mi, 0))
                .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
                .map(|t| t.timestamp_micros())
        };
        assert_eq!(parse_since("2026-03-01").ok(), local(2026, 3, 1, 0, 0));
        assert_eq!(
            parse_since("2026-03-01 14:30").ok(),
            local(2026, 3, 1, 14, 30)
        );
        assert_eq!(
            parse_since("2026-03-01T14:30:00").ok(),
            local(2026, 3, 1, 14, 30)
        );
        let ago = store::now_us() - parse_since("2h").expect("a duration");
        assert!((7_199_000_000..7_300_000_000).contains(&ago), "{ago}");
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-13-01").is_err());
    }

    #[test]
    fn history_table() {
        let runs = vec![
            run(9, "backup", "timer", None, None),
            run(8, "backup", "retry", Some(75), Some("succeeded")),
            run(7, "backup", "timer", Some(3), Some("failed")),
            run(6, "nightly-report", "manual", Some(0), Some("skipped")),
        ];
        insta::assert_snapshot!(format_history(&runs));
        insta::assert_snapshot!("history_empty", format_history(&[]));
    }
}

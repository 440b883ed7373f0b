//! `flow stats`: per task, how many attempts succeeded and how long they took (p50, p95),
//! and the last failures.

use std::fmt::Write as _;

use serde::Serialize;

use super::db::{self, DbArgs};
use super::exit::{CliError, Exit};
use super::output::{AttemptJson, HistoryRunJson, datetime, json_line, span};
use crate::store::{self, Attempt, Filter, Run, TaskStats};
use crate::vocabulary::{AttemptResult, RunResult};

/// The `stats` table, and the last failures below it.
pub fn format_stats(stats: &[TaskStats], failures: &[(Run, Vec<Attempt>)]) -> String {
    let mut out = String::new();
    if stats.is_empty() {
        out.push_str("No attempts recorded.\n");
        return out;
    }
    let ww = stats
        .iter()
        .map(|s| s.workflow.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let tw = stats.iter().map(|s| s.task.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "{:ww$}  {:tw$}  {:>8}  {:>8}  {:>8}  {:>8}",
        "WORKFLOW", "TASK", "ATTEMPTS", "SUCCESS", "P50", "P95"
    );
    let ms = |v: Option<i64>| span(v.map(|_| 0), v.map(|m| m * 1000));
    for s in stats {
        let rate = if s.attempts == 0 {
            0.0
        } else {
            100.0 * s.succeeded as f64 / s.attempts as f64
        };
        let _ = writeln!(
            out,
            "{:ww$}  {:tw$}  {:>8}  {:>7.1}%  {:>8}  {:>8}",
            s.workflow,
            s.task,
            s.attempts,
            rate,
            ms(s.p50_ms),
            ms(s.p95_ms)
        );
    }
    if !failures.is_empty() {
        out.push_str("\nLast failures:\n");
        for (r, attempts) in failures {
            let failed: Vec<String> = attempts
                .iter()
                .filter(|a| is_failure(a))
                .map(|a| format!("{} #{} {}", a.task, a.attempt, a.outcome.brief()))
                .collect();
            let _ = writeln!(
                out,
                "  {} run {} {} {}: {}",
                r.workflow,
                r.id,
                datetime(r.started_us),
                r.result.map_or("-", RunResult::as_str),
                failed.join(", ")
            );
        }
    }
    out
}

pub fn stats(name: Option<&str>, json: bool, db: &DbArgs) -> Result<Exit, CliError> {
    let s = db.open()?;
    if let Some(name) = name {
        db::known_workflow(&s, name, db.user)?;
    }
    let err = |e: store::StoreError| CliError::System(e.to_string());
    let stats = s.task_stats(name).map_err(err)?;
    let failed = s
        .history(&Filter {
            workflow: name.map(str::to_string),
            failed_only: true,
            since_us: None,
            limit: Some(5),
        })
        .map_err(err)?;
    let mut failures = Vec::new();
    for r in failed {
        let a = s.attempts(r.id).map_err(err)?;
        failures.push((r, a));
    }
    if json {
        json_line(&stats_json(&stats, &failures));
    } else {
        print!("{}", format_stats(&stats, &failures));
    }
    Ok(Exit::Success)
}

/// Whether an attempt counts among a failed run's failures.
fn is_failure(a: &Attempt) -> bool {
    !matches!(
        a.outcome.result,
        AttemptResult::Succeeded | AttemptResult::Skipped
    )
}

/// `stats --json` (stats.json).
#[derive(Debug, Serialize)]
struct StatsJson {
    tasks: Vec<TaskStatsJson>,
    last_failures: Vec<FailureJson>,
}

#[derive(Debug, Serialize)]
struct TaskStatsJson {
    workflow: String,
    task: String,
    attempts: u64,
    succeeded: u64,
    /// `succeeded / attempts`, from 0 to 1.
    success_rate: Option<f64>,
    p50_ms: Option<i64>,
    p95_ms: Option<i64>,
}

/// A failed run and its attempts that did not succeed.
#[derive(Debug, Serialize)]
struct FailureJson {
    #[serde(flatten)]
    run: HistoryRunJson,
    failed: Vec<FailedAttemptJson>,
}

#[derive(Debug, Serialize)]
struct FailedAttemptJson {
    task: String,
    #[serde(flatten)]
    attempt: AttemptJson,
}

fn stats_json(stats: &[TaskStats], failures: &[(Run, Vec<Attempt>)]) -> StatsJson {
    StatsJson {
        tasks: stats
            .iter()
            .map(|s| TaskStatsJson {
                workflow: s.workflow.clone(),
                task: s.task.clone(),
                attempts: s.attempts,
                succeeded: s.succeeded,
                success_rate: (s.attempts > 0).then(|| s.succeeded as f64 / s.attempts as f64),
                p50_ms: s.p50_ms,
                p95_ms: s.p95_ms,
            })
            .collect(),
        last_failures: failures
            .iter()
            .map(|(r, attempts)| FailureJson {
                run: HistoryRunJson::from(r),
                failed: attempts
                    .iter()
                    .filter(|a| is_failure(a))
                    .map(|a| FailedAttemptJson {
                        task: a.task.clone(),
                        attempt: AttemptJson::from(a),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::tests::{attempt, run};
    use super::*;

    #[test]
    fn stats_table() {
        let stats = vec![
            TaskStats {
                workflow: "backup".into(),
                task: "dump-db".into(),
                attempts: 40,
                succeeded: 40,
                p50_ms: Some(420),
                p95_ms: Some(1310),
            },
            TaskStats {
                workflow: "backup".into(),
                task: "snapshot".into(),
                attempts: 52,
                succeeded: 37,
                p50_ms: Some(95_000),
                p95_ms: Some(182_000),
            },
        ];
        let r = run(7, "backup", "timer", Some(3), Some("failed"));
        let a = vec![
            attempt("snapshot", 3, 3700, 95, "exit-code 1", true),
            attempt("prune", 1, 3800, 0, "upstream_failed", false),
        ];
        insta::assert_snapshot!(format_stats(&stats, &[(r, a)]));
        insta::assert_snapshot!("stats_empty", format_stats(&[], &[]));
    }
}

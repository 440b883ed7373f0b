//! `flow status NAME [RUN]`: the current or last run's tasks and their states, read from
//! systemd (with what the history adds); with RUN, that run's attempts from the history.
//! Both forms print the same JSON object and exit alike.

use std::fmt::Write as _;

use super::db::{self, DbArgs};
use super::exit::{CliError, Exit};
use super::installed::{Where, note_source, sys};
use super::output::{datetime, fmt_duration, json_line, mark, span};
use super::shown;
use crate::runs::{self, Progress, TaskState};
use crate::store::{Attempt, Run, Store};
use crate::vocabulary::RunResult;

pub fn status(name: &str, run: Option<i64>, w: &Where, db: &DbArgs) -> Result<Exit, CliError> {
    match run {
        Some(id) => recorded(name, id, w, db),
        None => current(name, w, db),
    }
}

/// `flow status NAME`: the DAG of the current or last run with each task's state.
fn current(name: &str, w: &Where, db: &DbArgs) -> Result<Exit, CliError> {
    let (wf, source) = w.workflow_and_source(name)?;
    let sd = w.connect()?;
    let seen = runs::seen_run(&sd, &wf, w.user).map_err(sys)?;
    // Read without a word when there is none: systemd answers alone.
    let history = Store::open_ro(&db.path()).ok();
    let recorded = history
        .as_ref()
        .and_then(|h| shown::recorded_run(h, &sd, &wf));
    let progress = shown::progress(recorded.as_ref(), &seen.tasks);
    if w.json {
        let attempts = shown::recorded_attempts(history.as_ref(), recorded.as_ref());
        let live = shown::Live {
            wf: &wf,
            source,
            tasks: &seen.tasks,
            begun_us: seen.begun_us,
            ended_us: seen.ended_us,
            recorded: recorded.as_ref(),
            attempts: &attempts,
            progress,
        };
        json_line(&live.json());
        return Ok(shown::exit(progress));
    }
    println!("{} ({})", wf.name, wf.source);
    note_source(&wf, source);
    if seen.tasks.iter().all(|r| r.state == TaskState::Unknown) {
        let u = super::user_flag(w.user);
        println!("  No run of {name} has started yet: `flow run {name}{u}` starts one.");
    }
    let width = wf.tasks.iter().map(|t| t.name.len()).max().unwrap_or(4);
    for (t, r) in wf.tasks.iter().zip(&seen.tasks) {
        let needs = if t.needs.is_empty() {
            String::new()
        } else {
            let when = if t.when == "all_success" {
                String::new()
            } else {
                format!(" ({})", t.when)
            };
            format!("  ← {}{when}", t.needs.join(", "))
        };
        let dur = r
            .duration
            .map(|d| format!(" {}", fmt_duration(d)))
            .unwrap_or_default();
        println!(
            "  {} {:width$}  {}{dur}{needs}",
            mark(&r.state),
            t.name,
            r.state.label()
        );
    }
    Ok(shown::exit(progress))
}

/// `flow status NAME RUN`: the run and its attempts, from the history.
fn recorded(name: &str, id: i64, w: &Where, db: &DbArgs) -> Result<Exit, CliError> {
    let s = db.open()?;
    let r = db::find_run(&s, name, Some(id), db.user)?;
    let attempts = s
        .attempts(r.id)
        .map_err(|e| CliError::System(e.to_string()))?;
    if w.json {
        let installed = w.maybe_workflow(name);
        let installed = installed.as_ref().map(|(wf, state)| (wf, *state));
        json_line(&shown::recorded_json(&r, &attempts, installed));
    } else {
        print!("{}", format_run(&r, &attempts));
    }
    Ok(shown::exit(
        r.result.map_or(Progress::Going, Progress::Ended),
    ))
}

/// `status NAME RUN`: the run and its attempts.
pub fn format_run(run: &Run, attempts: &[Attempt]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} run {} ({}), started {}, {}: {}",
        run.workflow,
        run.id,
        run.trigger,
        datetime(run.started_us),
        span(Some(run.started_us), run.ended_us),
        run.result.map_or("running", RunResult::as_str)
    );
    let tw = attempts
        .iter()
        .map(|a| a.task.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:tw$}  {:>7}  {:8}  {:>9}  {:24}  INVOCATION",
        "TASK", "ATTEMPT", "START", "DURATION", "RESULT"
    );
    for a in attempts {
        let start = a
            .started_us
            .map(|s| datetime(s)[11..].to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:tw$}  {:>7}  {:8}  {:>9}  {:24}  {}",
            a.task,
            a.attempt,
            start,
            span(a.started_us, a.ended_us),
            a.outcome.brief(),
            a.invocation_id.as_deref().unwrap_or("-")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::history::tests::{attempt, run};
    use super::*;

    #[test]
    fn status_with_attempts() {
        let r = run(7, "backup", "timer", Some(3), Some("failed"));
        let a = vec![
            attempt("dump-db", 1, 0, 420, "success", true),
            attempt("snapshot", 1, 500, 80, "exit-code 1", true),
            attempt("snapshot", 2, 1600, 90, "exit-code 1", true),
            attempt("snapshot", 3, 3700, 95, "signal 15", true),
            attempt("prune", 1, 3800, 0, "upstream_failed", false),
            attempt("alert", 1, 3800, 30, "success", true),
        ];
        insta::assert_snapshot!(format_run(&r, &a));
    }
}

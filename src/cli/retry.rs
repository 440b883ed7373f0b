//! `flow retry NAME [RUN]`: the tasks of a failed run that did not succeed, run again.

use std::time::Duration;

use serde::Serialize;

use super::db::{self, DbArgs};
use super::exit::{CliError, Exit};
use super::output::json_line;
use super::workflows;
use crate::compiler::names;
use crate::systemd::Bus;
use crate::vocabulary::{AttemptResult, RunResult};

/// `retry --json` (retry.json).
#[derive(Debug, Serialize)]
struct RetryJson<'a> {
    workflow: &'a str,
    /// The run retried.
    run: i64,
    /// The tasks started again (those that did not succeed and whose upstreams did);
    /// what needs them follows once they end.
    retried: Vec<&'a str>,
    /// The new run's number, when the supervisor told it.
    retry_run: Option<i64>,
}

/// Runs the tasks of a failed run that did not succeed again, in a new run (trigger
/// `retry`); what succeeded stays done. Only the workflow's last run can be retried: what
/// later runs did to the units would not be undone.
pub fn retry(name: &str, run: Option<i64>, json: bool, db: &DbArgs) -> Result<Exit, CliError> {
    let u = super::user_flag(db.user);
    let s = db.open()?;
    // The last run that ran: runs skipped by the overlap rule since changed nothing.
    let last = s
        .last_run_that_ran(name)
        .map_err(|e| CliError::System(e.to_string()))?;
    let r = match (run, &last) {
        (None, Some(last)) => last.clone(),
        _ => db::find_run(&s, name, run, db.user)?,
    };
    let run = r.id;
    if last.as_ref().map(|l| l.id) != Some(r.id) {
        return Err(CliError::Invalid(format!(
            "run {run} of `{name}` is not its last run; only the last run can be retried \
             (start a new one with `flow run {name}{u}`)"
        )));
    }
    match r.result {
        None => {
            return Err(CliError::Invalid(format!(
                "run {run} of `{name}` is still going; wait for it, or `flow cancel {name}{u}`"
            )));
        }
        Some(RunResult::Succeeded | RunResult::Skipped) => {
            return Err(CliError::Invalid(format!(
                "run {run} of `{name}` did not fail: nothing to retry"
            )));
        }
        _ => {}
    }
    let dir = workflows::units_dir(db.user);
    let runtime = crate::runs::trigger::runtime_dir(db.user);
    let files = crate::install::installed(&dir)
        .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))?;
    let wf = crate::runs::installed_workflow(&files, name)
        .ok_or_else(|| super::installed::not_installed(&files, name, &dir, db.user))?;
    // Which tasks succeeded comes from the history; their success markers are written
    // again (a run without retries clears its markers when it ends), so PID 1 skips them
    // when a task that needs them is started.
    let attempts = s
        .attempts(r.id)
        .map_err(|e| CliError::System(e.to_string()))?;
    let succeeded: std::collections::HashSet<&str> = attempts
        .iter()
        .filter(|a| a.outcome.result == AttemptResult::Succeeded)
        .map(|a| a.task.as_str())
        .collect();
    let ok = |t: &str| succeeded.contains(t);
    let state = runtime.join(names::runtime_subdir(name));
    std::fs::create_dir_all(&state)
        .map_err(|e| CliError::io(format!("cannot create {}", state.display()), e))?;
    for t in &wf.tasks {
        let marker = |ext: &str| state.join(format!("{}.{ext}", t.name));
        if ok(&t.name) {
            std::fs::write(marker("ok"), "")
                .map_err(|e| CliError::io(format!("cannot write {}", marker("ok").display()), e))?;
        } else {
            for ext in ["ok", "done"] {
                let _ = std::fs::remove_file(marker(ext));
            }
        }
    }
    // Start only the failed tasks whose upstreams all succeeded: the supervisor starts the
    // rest once they are final (starting a downstream unit now would pull its upstream in).
    let roots: Vec<&crate::runs::TaskInfo> = wf
        .tasks
        .iter()
        .filter(|t| !ok(&t.name) && t.needs.iter().all(|n| ok(n)))
        .collect();
    let retried: Vec<&str> = roots.iter().map(|t| t.name.as_str()).collect();
    if roots.is_empty() {
        if json {
            json_line(&RetryJson {
                workflow: name,
                run,
                retried,
                retry_run: None,
            });
        } else {
            println!("Nothing to retry: every task of run {run} succeeded.");
        }
        return Ok(Exit::Success);
    }
    let sd = crate::systemd::Systemd::connect(Bus::manager(db.user))
        .map_err(|e| CliError::System(e.to_string()))?;
    // The supervisor tells a follower the new run's number once it opens it.
    let follower = json
        .then(|| crate::runs::follow::Client::connect(&runtime, name, false))
        .flatten();
    // Tells the supervisor that the task starts that follow are a retry of this run.
    let request = crate::runs::trigger::retry_request_file(&runtime, name);
    std::fs::write(&request, run.to_string())
        .map_err(|e| CliError::io(format!("cannot write {}", request.display()), e))?;
    for t in &roots {
        sd.start_unit_no_wait(&t.unit)
            .map_err(|e| CliError::System(e.to_string()))?;
    }
    if json {
        let retry_run = follower.and_then(|c| c.run_number(Duration::from_secs(10)));
        json_line(&RetryJson {
            workflow: name,
            run,
            retried,
            retry_run,
        });
    } else {
        println!(
            "Retrying {} of run {run}; follow with `flow history {name}{u}`.",
            retried.join(", ")
        );
    }
    Ok(Exit::Success)
}

//! The run a command shows (`flow status`, `flow run --wait`, `flow list`): what systemd
//! and the history say of it, put together in one place, with its result decided once
//! ([`progress`]), so that the commands agree on it and on their exit code.

use std::collections::HashMap;

use super::exit::Exit;
use super::output::{AttemptJson, RunJson, TaskJson, duration_ms, timestamp};
use super::workflows::SourceState;
use crate::runs::{self, InstalledWorkflow, Progress, TaskRun};
use crate::store::{Attempt, Run, Store};
use crate::systemd::Systemd;
use crate::vocabulary::{AttemptResult, RunResult};

/// The history's record of the run systemd ran last, when it has that run (by its begin
/// unit's activation): a run stopped at its deadline is `timed_out` there, where systemd
/// only saw its tasks stopped. `None` when the history lags (a supervisor down, a run
/// started by `flow retry`): systemd's own account then.
pub fn recorded_run(history: &Store, sd: &Systemd, wf: &InstalledWorkflow) -> Option<Run> {
    let begun = sd.unit_state(&wf.begin_unit()).ok()?.invocation_id?;
    let id = history.run_by_begin(&begun).ok()??;
    history.run(&wf.name, id).ok()?
}

/// Where the shown run stands: the history's result when it has the run, else what its
/// tasks' states say.
/// The attempts the history has of a run it recorded; none when it has not.
pub fn recorded_attempts(history: Option<&Store>, recorded: Option<&Run>) -> Vec<Attempt> {
    history
        .zip(recorded)
        .and_then(|(h, r)| h.attempts(r.id).ok())
        .unwrap_or_default()
}

pub fn progress(recorded: Option<&Run>, tasks: &[TaskRun]) -> Progress {
    match recorded {
        Some(r) => r.result.map_or(Progress::Going, Progress::Ended),
        None => runs::progress(tasks),
    }
}

/// The exit of `flow status` (either form): 1 when the run shown ended and did not
/// succeed; 0 when it succeeded, is still going, none has run, or it is not known.
pub fn exit(p: Progress) -> Exit {
    match p {
        Progress::Ended(r) if r != RunResult::Succeeded => Exit::Failure,
        _ => Exit::Success,
    }
}

/// A run's `result` and `running` in JSON.
fn result_and_running(p: Progress) -> (Option<RunResult>, Option<bool>) {
    match p {
        Progress::NotRun => (None, Some(false)),
        Progress::Going => (None, Some(true)),
        Progress::Ended(r) => (Some(r), Some(false)),
        Progress::Unknown => (None, None),
    }
}

/// Each task's attempts in the history, by task name.
fn by_task(attempts: &[Attempt]) -> HashMap<&str, Vec<&Attempt>> {
    let mut out: HashMap<&str, Vec<&Attempt>> = HashMap::new();
    for a in attempts {
        out.entry(a.task.as_str()).or_default().push(a);
    }
    out
}

/// A run whose tasks' states came from systemd or the supervisor (`flow status NAME`,
/// `flow run --wait`), with what the history has of it: its number, trigger, times and
/// attempts. Without a record, its start and end are systemd's (`begun_us`, `ended_us`).
pub struct Live<'a> {
    pub wf: &'a InstalledWorkflow,
    pub source: SourceState,
    pub tasks: &'a [TaskRun],
    pub begun_us: Option<u64>,
    pub ended_us: Option<u64>,
    pub recorded: Option<&'a Run>,
    pub attempts: &'a [Attempt],
    pub progress: Progress,
}

impl Live<'_> {
    pub fn json(&self) -> RunJson {
        let (result, running) = result_and_running(self.progress);
        let us = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        let (started, ended) = match self.recorded {
            Some(r) => (Some(r.started_us), r.ended_us),
            None => (us(self.begun_us), us(self.ended_us)),
        };
        let attempts = by_task(self.attempts);
        RunJson {
            workflow: self.wf.name.clone(),
            run: self.recorded.map(|r| r.id),
            trigger: self.recorded.map(|r| r.trigger),
            started: started.and_then(timestamp),
            ended: ended.and_then(timestamp),
            duration_ms: duration_ms(started, ended),
            result,
            running,
            source_state: Some(self.source.key()),
            tasks: self
                .tasks
                .iter()
                .map(|t| {
                    let tried = attempts.get(t.name.as_str()).map(Vec::as_slice);
                    TaskJson::of_state(
                        &t.name,
                        &t.state,
                        t.duration,
                        t.invocation_id.clone(),
                        tried
                            .unwrap_or_default()
                            .iter()
                            .map(|a| AttemptJson::from(*a))
                            .collect(),
                    )
                })
                .collect(),
        }
    }
}

/// A recorded run from the history alone (`flow status NAME RUN`). Its tasks are in the
/// installed workflow's order when it is installed, else in the order they first ran; a
/// task's state is its last attempt's result, `retry_pending` while the run goes and it
/// has tries left, and `unknown` while the run goes and no attempt of it has ended.
pub fn recorded_json(
    run: &Run,
    attempts: &[Attempt],
    installed: Option<(&InstalledWorkflow, SourceState)>,
) -> RunJson {
    let going = run.result.is_none();
    let wf = installed.map(|(wf, _)| wf);
    let mut order: Vec<&str> = Vec::new();
    if let Some(wf) = wf {
        // Tasks of the workflow as installed that have no attempt in an ended run are not
        // its tasks (added since): only a run going waits for them.
        order.extend(
            wf.tasks
                .iter()
                .map(|t| t.name.as_str())
                .filter(|t| going || attempts.iter().any(|a| a.task == *t)),
        );
    }
    for a in attempts {
        if !order.contains(&a.task.as_str()) {
            order.push(&a.task);
        }
    }
    let tried = by_task(attempts);
    let retries = |task: &str| {
        wf.and_then(|wf| wf.tasks.iter().find(|t| t.name == task))
            .map(|t| t.retries)
    };
    let tasks = order
        .into_iter()
        .map(|task| {
            let list = tried.get(task).map(Vec::as_slice).unwrap_or_default();
            let last = list.last();
            let state = match last {
                None => "unknown",
                Some(a) if going && can_retry(a, list.len(), retries(task)) => "retry_pending",
                Some(a) => a.outcome.result.as_str(),
            };
            TaskJson {
                task: task.to_string(),
                state,
                exit_code: last.and_then(|a| a.outcome.exit_code),
                signal: last.and_then(|a| a.outcome.signal),
                start_error: last.and_then(|a| a.outcome.start_error.clone()),
                duration_ms: last.and_then(|a| duration_ms(a.started_us, a.ended_us)),
                invocation_id: last.and_then(|a| a.invocation_id.clone()),
                attempts: list.iter().map(|a| AttemptJson::from(*a)).collect(),
            }
        })
        .collect();
    RunJson {
        workflow: run.workflow.clone(),
        run: Some(run.id),
        trigger: Some(run.trigger),
        started: timestamp(run.started_us),
        ended: run.ended_us.and_then(timestamp),
        duration_ms: duration_ms(Some(run.started_us), run.ended_us),
        result: run.result,
        running: Some(going),
        source_state: installed.map(|(_, s)| s.key()),
        tasks,
    }
}

/// Whether a task whose last attempt is `last`, after `tried` attempts, gets another
/// (as the supervisor decides: a failure, with tries left).
fn can_retry(last: &Attempt, tried: usize, retries: Option<u32>) -> bool {
    let failed = matches!(
        last.outcome.result,
        AttemptResult::Failed
            | AttemptResult::TimedOut
            | AttemptResult::OutOfMemory
            | AttemptResult::Killed
    );
    failed && retries.is_some_and(|r| tried <= r as usize)
}

#[cfg(test)]
mod tests {
    use super::super::history::tests::{attempt, run};
    use super::*;

    fn wf(tasks: &[(&str, u32)]) -> InstalledWorkflow {
        InstalledWorkflow {
            name: "backup".into(),
            source: String::new(),
            tasks: tasks
                .iter()
                .map(|(name, retries)| runs::TaskInfo {
                    name: name.to_string(),
                    unit: String::new(),
                    needs: Vec::new(),
                    when: "all_success".into(),
                    memory_max: false,
                    retries: *retries,
                })
                .collect(),
            timer: None,
            overlap: "skip".into(),
            catch_up: false,
            timeout: None,
        }
    }

    fn states(v: &RunJson) -> Vec<(&str, &str)> {
        v.tasks.iter().map(|t| (t.task.as_str(), t.state)).collect()
    }

    #[test]
    fn a_recorded_runs_tasks_come_from_its_attempts() {
        let a = vec![
            attempt("snapshot", 1, 500, 80, "exit-code 1", true),
            attempt("dump-db", 1, 0, 420, "success", true),
            attempt("snapshot", 2, 1600, 90, "exit-code 1", true),
            attempt("prune", 1, 3800, 0, "upstream_failed", false),
        ];
        // Not installed: in the order they first ran.
        let ended = run(7, "backup", "timer", Some(3), Some("failed"));
        let v = recorded_json(&ended, &a, None);
        assert_eq!(
            states(&v),
            [
                ("snapshot", "failed"),
                ("dump-db", "succeeded"),
                ("prune", "upstream_failed")
            ]
        );
        assert_eq!(v.tasks[0].attempts.len(), 2);
        assert_eq!(v.tasks[0].exit_code, Some(1));
        assert_eq!(v.running, Some(false));
        assert_eq!(v.source_state, None);
        // Installed: in its order; going, a task with tries left waits for one, and a task
        // with no attempt yet is unknown.
        let installed = wf(&[("dump-db", 0), ("snapshot", 2), ("prune", 0), ("new", 0)]);
        let going = run(7, "backup", "timer", None, None);
        let v = recorded_json(&going, &a[..3], Some((&installed, SourceState::Applied)));
        assert_eq!(
            states(&v),
            [
                ("dump-db", "succeeded"),
                ("snapshot", "retry_pending"),
                ("prune", "unknown"),
                ("new", "unknown")
            ]
        );
        assert_eq!(v.result, None);
        assert_eq!(v.running, Some(true));
        // Ended, a task added since is not the run's.
        let v = recorded_json(&ended, &a, Some((&installed, SourceState::Changed)));
        assert_eq!(v.tasks.len(), 3);
        assert_eq!(v.source_state, Some("changed"));
    }

    #[test]
    fn the_history_decides_where_it_has_the_run() {
        let tasks = vec![TaskRun {
            name: "a".into(),
            state: runs::TaskState::Canceled,
            started: None,
            duration: None,
            invocation_id: None,
        }];
        let timed_out = run(3, "backup", "timer", Some(5), Some("timed_out"));
        assert_eq!(
            progress(Some(&timed_out), &tasks),
            Progress::Ended(RunResult::TimedOut)
        );
        assert_eq!(progress(None, &tasks), Progress::Ended(RunResult::Canceled));
        assert_eq!(exit(Progress::Ended(RunResult::Canceled)), Exit::Failure);
        assert_eq!(exit(Progress::Going), Exit::Success);
        assert_eq!(exit(Progress::Unknown), Exit::Success);
    }
}

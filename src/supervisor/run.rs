//! The run state machine: a run's tasks, their attempts and retries, its deadline, how it
//! ends; and the markers in the run directory that tell PID 1 which tasks are final.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Final {
    Succeeded,
    Failed,
    UpstreamFailed,
    Skipped,
    Canceled,
}

impl Final {
    pub(super) fn ok(self) -> bool {
        matches!(self, Final::Succeeded | Final::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum St {
    Pending,
    /// Waiting for its next attempt.
    Retry(Instant),
    Final(Final),
}

#[derive(Debug, Clone)]
pub(super) struct TaskRun {
    pub(super) attempts: u32,
    /// InvocationID of the last activation seen, to tell a new one.
    pub(super) last_inv: Option<String>,
    pub(super) st: St,
}

#[derive(Debug)]
pub(super) struct ActiveRun {
    pub(super) id: i64,
    pub(super) def: Arc<WorkflowDef>,
    pub(super) begin_us: u64,
    pub(super) tasks: Vec<TaskRun>,
    pub(super) deadline: Option<Instant>,
    /// Stopped from outside (`flow cancel`, `systemctl stop` of the run unit) or by its
    /// deadline: nothing more of it starts, and it ends once its tasks' jobs are over.
    pub(super) canceled: bool,
    /// Stopped by its deadline.
    pub(super) timed_out: bool,
    /// When its last attempt ended (µs since the epoch): when the run ended, as systemd
    /// has it, also for a run read back from the journal after a restart.
    pub(super) last_end_us: Option<i64>,
}

impl ActiveRun {
    /// A run that began at `begin_us` (µs since the epoch), every task pending; its
    /// deadline counts from that beginning, not from now.
    pub(super) fn new(id: i64, def: Arc<WorkflowDef>, begin_us: u64) -> ActiveRun {
        let deadline = def.timeout.map(|t| {
            let elapsed = (store::now_us() as u64).saturating_sub(begin_us);
            Instant::now() + t.saturating_sub(Duration::from_micros(elapsed))
        });
        let tasks = def
            .tasks
            .iter()
            .map(|_| TaskRun {
                attempts: 0,
                last_inv: None,
                st: St::Pending,
            })
            .collect();
        ActiveRun {
            id,
            def,
            begin_us,
            tasks,
            deadline,
            canceled: false,
            timed_out: false,
            last_end_us: None,
        }
    }

    /// When the run ended: when its last attempt ended, or now when it was stopped (its
    /// stop is its end) or had no attempt.
    pub(super) fn end_us(&self) -> i64 {
        match self.last_end_us {
            Some(t) if !self.canceled => t,
            _ => store::now_us(),
        }
    }

    pub(super) fn attempt_ended(&mut self, ended_us: i64) {
        self.last_end_us = self.last_end_us.max(Some(ended_us));
    }

    /// Whether this supervisor holds the run open after systemd's part of it (see
    /// [`Supervisor::hold`]): only runs with retries are held.
    pub(super) fn held(&self) -> bool {
        self.def.tasks.iter().any(|t| t.retries > 0)
    }

    /// Settles task `i` without an activation of its own (its upstream failed, it was
    /// canceled): its final state, and the history record that says so.
    pub(super) fn settle(&mut self, i: usize, f: Final) -> Write {
        let t = &mut self.tasks[i];
        t.st = St::Final(f);
        let task = &self.def.tasks[i].name;
        let result = match f {
            Final::UpstreamFailed => AttemptResult::UpstreamFailed,
            Final::Skipped => AttemptResult::Skipped,
            // A task is settled without an activation only by the two above or a cancel.
            _ => AttemptResult::Canceled,
        };
        Write::Attempt(no_activation(self.id, task, t.attempts + 1, result))
    }
}

impl Supervisor {
    pub(super) fn open_run(&mut self, def: &Arc<WorkflowDef>) -> Result<(), SupervisorError> {
        let begin = self.sd.unit_state(&def.begin_unit())?;
        // Job signals do not say a job's type: the end of the stop job systemd queues once
        // the run unit no longer needs the begin unit (the end of a run) looks like a
        // start. Only a start makes a new activation.
        let Some(inv) = begin.invocation_id.clone() else {
            return Ok(());
        };
        if self.begun.get(&def.name) == Some(&inv) || self.store.run_by_begin(&inv)?.is_some() {
            return Ok(());
        }
        self.begun.insert(def.name.clone(), inv);
        let begin_us = begin
            .exec_main_start_timestamp
            .or(begin.inactive_exit_timestamp)
            .unwrap_or(store::now_us() as u64);
        if self.runs.contains_key(&def.name) {
            // A new run began while this supervisor still had the last one open (its
            // retries pending, or a `replace` trigger): the old run's markers are gone.
            self.cancel_run(&def.name, RunResult::Canceled)?;
        }
        let trigger =
            trigger::take_note(&self.cfg.runtime_dir, &def.name).unwrap_or(TriggerKind::Systemctl);
        let id = self.next_id;
        self.next_id += 1;
        self.write(Write::Run {
            id,
            workflow: def.name.clone(),
            trigger,
            started_us: begin_us as i64,
            begin: begin.invocation_id.clone(),
        });
        let run = ActiveRun::new(id, def.clone(), begin_us);
        self.runs.insert(def.name.clone(), run);
        self.hold(&def.name, true);
        self.follow_opened(def, id);
        Ok(())
    }

    /// A run that re-runs what did not succeed in the last one: tasks with a success
    /// marker of that run stay done.
    pub(super) fn open_retry_run(&mut self, def: &Arc<WorkflowDef>) {
        let id = self.next_id;
        self.next_id += 1;
        let now = store::now_us();
        let trigger = TriggerKind::Retry;
        self.write(Write::Run {
            id,
            workflow: def.name.clone(),
            trigger,
            started_us: now,
            begin: None,
        });
        let mut run = ActiveRun::new(id, def.clone(), now as u64);
        for (task, state) in def.tasks.iter().zip(&mut run.tasks) {
            if marker(&self.cfg.runtime_dir, &def.name, &task.name, "ok").exists() {
                state.st = St::Final(Final::Succeeded);
            }
        }
        self.runs.insert(def.name.clone(), run);
        self.hold(&def.name, true);
        self.follow_opened(def, id);
    }

    /// Records how a task's start job ended.
    pub(super) fn task_ended(
        &mut self,
        wf: &str,
        i: usize,
        job: &str,
        unit: &UnitState,
    ) -> Result<(), SupervisorError> {
        let runtime = self.cfg.runtime_dir.clone();
        let user = self.cfg.user();
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        let def = run.def.clone();
        let task = &def.tasks[i];
        if let St::Final(_) = run.tasks[i].st {
            return Ok(());
        }
        let started = unit.inactive_exit_timestamp.filter(|&t| {
            t >= run.begin_us
                && unit.invocation_id.is_some()
                && unit.invocation_id != run.tasks[i].last_inv
        });
        // A start that failed before the command ran (systemd's result `resources`: an
        // `env_file` that does not exist, ...) leaves the unit failed with a new
        // InvocationID but without leaving the failed state. It is an attempt all the
        // same: left pending, the task would be started again at once, fail again, and so
        // on without end. (An activation seen a second time, after a restart, has no new
        // InvocationID.)
        let failed_to_start = started.is_none()
            && job == "failed"
            && unit.invocation_id.is_some()
            && unit.invocation_id != run.tasks[i].last_inv
            && unit.result.as_deref().is_some_and(start_failed);
        let mut writes = Vec::new();
        if started.is_some() || failed_to_start {
            // A new activation, or a failed start: an attempt.
            let t = &mut run.tasks[i];
            t.last_inv = unit.invocation_id.clone();
            t.attempts += 1;
            let outcome = Outcome::of_unit(&JobResult::parse(job), unit);
            let now_us = store::now_us();
            let ended_us = started
                .and_then(|s| unit.inactive_enter_timestamp.filter(|&e| e >= s))
                .map(|e| e as i64)
                .unwrap_or(now_us);
            run.attempt_ended(ended_us);
            let t = &mut run.tasks[i];
            writes.push(Write::Attempt(Attempt {
                run_id: run.id,
                task: task.name.clone(),
                attempt: t.attempts,
                invocation_id: unit.invocation_id.clone(),
                started_us: started.map(|s| s as i64),
                ended_us: Some(ended_us),
                outcome: outcome.clone(),
                cpu_ns: unit.cpu_usage_nsec.map(|v| v as i64),
                memory_peak: unit.memory_peak.map(|v| v as i64),
            }));
            t.st = match outcome.result {
                AttemptResult::Succeeded => St::Final(Final::Succeeded),
                AttemptResult::Skipped => St::Final(Final::Skipped),
                AttemptResult::Canceled => St::Final(Final::Canceled),
                _ if t.attempts <= task.retries && !run.canceled => {
                    // Counted from the attempt's end: an attempt read back after a
                    // restart of the supervisor may be due already.
                    let delay = def::retry_delay(task, t.attempts + 1, jitter());
                    let past = Duration::from_micros(now_us.saturating_sub(ended_us) as u64);
                    St::Retry(Instant::now() + delay.saturating_sub(past))
                }
                _ => {
                    mark(&runtime, wf, &task.name, "done");
                    St::Final(Final::Failed)
                }
            };
        } else if job == "canceled" {
            writes.push(run.settle(i, Final::Canceled));
        } else if marker(&runtime, wf, &task.name, "ok").exists() {
            // Skipped by its `.ok` condition: it succeeded in this run already, in an
            // activation this supervisor did not see (it was down, and the unit was
            // unloaded since). The journal has it.
            let t = &mut run.tasks[i];
            t.st = St::Final(Final::Succeeded);
            let seen = journal::job_ends(std::slice::from_ref(&task.unit), run.begin_us, user)
                .unwrap_or_default()
                .into_iter()
                .rfind(|e| e.state.invocation_id.is_some() && e.result == "done");
            if let Some(e) = seen
                && e.state.invocation_id != t.last_inv
            {
                run.attempt_ended(e.at_us as i64);
                let t = &mut run.tasks[i];
                t.attempts += 1;
                t.last_inv = e.state.invocation_id.clone();
                writes.push(Write::Attempt(Attempt {
                    run_id: run.id,
                    task: task.name.clone(),
                    attempt: t.attempts,
                    invocation_id: e.state.invocation_id.clone(),
                    started_us: e.state.inactive_exit_timestamp.map(|v| v as i64),
                    ended_us: Some(e.at_us as i64),
                    outcome: Outcome::succeeded(),
                    cpu_ns: e.state.cpu_usage_nsec.map(|v| v as i64),
                    memory_peak: None,
                }));
            }
        }
        // Otherwise (job `dependency`, or skipped by a `.done` condition) the task stays
        // pending: `advance` decides once its upstreams are final.
        for w in writes {
            self.write(w);
        }
        Ok(())
    }

    /// Moves a run forward: settles tasks whose upstreams are final, starts the ones that
    /// must run again, ends the run when every task is final.
    pub(super) fn advance(&mut self, wf: &str) -> Result<(), SupervisorError> {
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        let def = run.def.clone();
        let mut writes = Vec::new();
        let mut to_start: Vec<usize> = Vec::new();
        if run.canceled {
            // Nothing more starts: what waits for the supervisor is canceled, and what
            // systemd still has queued ends as systemd ends it.
            for (i, task) in def.tasks.iter().enumerate() {
                if matches!(run.tasks[i].st, St::Pending | St::Retry(_))
                    && !self.queued.contains_key(&task.unit)
                {
                    writes.push(run.settle(i, Final::Canceled));
                }
            }
        }
        // Fixed point: a pending task not queued in systemd is settled or started once
        // every upstream is final. Only then: starting a downstream unit while its upstream
        // is not final would pull in a start job of that upstream, an attempt too early.
        while !run.canceled {
            let mut changed = false;
            for (i, task) in def.tasks.iter().enumerate() {
                if run.tasks[i].st != St::Pending
                    || self.queued.contains_key(&task.unit)
                    || to_start.contains(&i)
                {
                    continue;
                }
                let mut all_final = true;
                let mut any_bad = false;
                for &u in &task.needs {
                    match run.tasks[u].st {
                        St::Final(f) => any_bad |= !f.ok(),
                        _ => all_final = false,
                    }
                }
                if !all_final {
                    continue;
                }
                if any_bad && task.when == When::AllSuccess {
                    writes.push(run.settle(i, Final::UpstreamFailed));
                } else {
                    to_start.push(i);
                }
                changed = true;
            }
            if !changed {
                break;
            }
        }
        let done = run.tasks.iter().all(|t| matches!(t.st, St::Final(_)));
        let result = run_result(run);
        let id = run.id;
        if !to_start.is_empty() {
            mark_final(&self.cfg.runtime_dir, run);
        }
        for w in writes {
            self.write(w);
        }
        let mut unstartable = Vec::new();
        for i in to_start {
            let unit = &def.tasks[i].unit;
            // Marked queued now: the JobNew signal follows, and `advance` must not start it
            // twice meanwhile.
            self.queued.insert(unit.clone(), 0);
            if let Err(e) = self.sd.queue_start(unit) {
                // Its unit is gone (the workflow was applied again without this task while
                // the run went on) or masked: the task cannot run in this run.
                self.queued.remove(unit);
                tracing::warn!(
                    "cannot start {unit} in run {id} of {wf}: {e}; the task is recorded as canceled"
                );
                unstartable.push(i);
            }
        }
        if !unstartable.is_empty() {
            if let Some(run) = self.runs.get_mut(wf) {
                let writes: Vec<Write> = unstartable
                    .into_iter()
                    .map(|i| run.settle(i, Final::Canceled))
                    .collect();
                for w in writes {
                    self.write(w);
                }
            }
            // What follows those tasks settles now; each pass settles at least one task.
            return self.advance(wf);
        }
        if done {
            self.end_run(wf, id, result)?;
        }
        Ok(())
    }

    /// Whether `flow cancel` asked to stop the run of `wf` this supervisor holds. `flow
    /// cancel` asks only for a held run, so no other run costs a look at every job's end.
    pub(super) fn cancel_requested(&self, wf: &str) -> bool {
        self.runs.get(wf).is_some_and(|r| {
            r.held() && trigger::take_cancel_request(&self.cfg.runtime_dir, wf, r.id)
        })
    }

    /// A run stopped from outside: see [`ActiveRun::canceled`].
    pub(super) fn stop_run(&mut self, wf: &str) -> Result<(), SupervisorError> {
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        if run.canceled {
            return Ok(());
        }
        run.canceled = true;
        self.advance(wf)
    }

    pub(super) fn end_run(
        &mut self,
        wf: &str,
        id: i64,
        result: RunResult,
    ) -> Result<(), SupervisorError> {
        let run = self.runs.remove(wf);
        if let Some(r) = &run {
            self.log_run_ended(r, result);
        }
        let ended_us = run.map_or_else(store::now_us, |r| r.end_us());
        self.write(Write::Finish {
            id,
            ended_us,
            result,
        });
        self.write(Write::Prune);
        self.checkpoint_at = Some(Instant::now() + CHECKPOINT_AFTER);
        self.hold(wf, false);
        Ok(())
    }

    /// Stops a run: unfinished tasks are recorded as canceled and their units stopped.
    pub(super) fn cancel_run(
        &mut self,
        wf: &str,
        result: RunResult,
    ) -> Result<(), SupervisorError> {
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        let def = run.def.clone();
        let mut writes = Vec::new();
        let mut stop = Vec::new();
        for (i, task) in def.tasks.iter().enumerate() {
            if matches!(run.tasks[i].st, St::Final(_)) {
                continue;
            }
            writes.push(run.settle(i, Final::Canceled));
            stop.push(task.unit.clone());
        }
        let id = run.id;
        for w in writes {
            self.write(w);
        }
        for u in stop {
            let _ = self.sd.stop_unit_no_wait(&u);
        }
        self.end_run(wf, id, result)
    }

    /// A run of a workflow removed (`flow remove`, or `flow apply` without its file) with
    /// nothing left in systemd, a retry waiting say: nothing of it can run any more, so it
    /// ends now, canceled, rather than when the retry would have been due.
    pub(super) fn end_runs_of_removed_workflows(&mut self) -> Result<(), SupervisorError> {
        let gone: Vec<String> = self
            .runs
            .iter()
            .filter(|(wf, run)| {
                !self.defs.contains_key(*wf)
                    && !run
                        .def
                        .tasks
                        .iter()
                        .any(|t| self.queued.contains_key(&t.unit))
            })
            .map(|(wf, _)| wf.clone())
            .collect();
        for wf in gone {
            if let Some(run) = self.runs.get_mut(&wf) {
                run.canceled = true;
            }
            self.cancel_run(&wf, RunResult::Canceled)?;
        }
        Ok(())
    }

    pub(super) fn fire_timers(&mut self, now: Instant) -> Result<(), SupervisorError> {
        let names: Vec<String> = self.runs.keys().cloned().collect();
        for wf in names {
            let Some(run) = self.runs.get_mut(&wf) else {
                continue;
            };
            if run.deadline.is_some_and(|d| now >= d) {
                // Stopped as `flow cancel` stops a run: what was running ends as systemd
                // ends it (recorded with its activation, or as it ended if it ended first),
                // what waited is canceled.
                run.deadline = None;
                run.timed_out = true;
                let def = run.def.clone();
                events::deadline_reached(&wf, run.id, def.timeout);
                let _ = self.sd.stop_unit_no_wait(&def.run_unit());
                let needs: Vec<&[usize]> = def.tasks.iter().map(|t| t.needs.as_slice()).collect();
                // Each task before what it needs (see `runs::trigger::cancel`).
                for i in crate::compiler::model::upstream_first(&needs)
                    .into_iter()
                    .rev()
                {
                    if !matches!(run.tasks[i].st, St::Final(_)) {
                        let _ = self.sd.stop_unit_no_wait(&def.tasks[i].unit);
                    }
                }
                // The begin unit last: a run unit stopped while its start job waited never
                // became active, so systemd never finds the begin unit unneeded, and a
                // `systemctl start` of the workflow would find it active and run nothing.
                let _ = self.sd.stop_unit_no_wait(&def.begin_unit());
                self.stop_run(&wf)?;
                continue;
            }
            let id = run.id;
            if trigger::take_cancel_request(&self.cfg.runtime_dir, &wf, id) {
                self.stop_run(&wf)?;
                continue;
            }
            let Some(run) = self.runs.get_mut(&wf) else {
                continue;
            };
            let mut due = false;
            for t in &mut run.tasks {
                if matches!(t.st, St::Retry(at) if now >= at) {
                    t.st = St::Pending;
                    due = true;
                }
            }
            if due {
                self.advance(&wf)?;
            }
        }
        Ok(())
    }
}

/// Each task's unit object path, with the task's name: what followers are told of.
pub(super) fn task_paths(def: &WorkflowDef) -> Vec<(String, String)> {
    def.tasks
        .iter()
        .map(|t| (unit_path(&t.unit), t.name.clone()))
        .collect()
}

pub(super) fn run_result(run: &ActiveRun) -> RunResult {
    let any = |f: Final| run.tasks.iter().any(|t| t.st == St::Final(f));
    // Stopped with nothing left to stop (every task had ended), it ends as it went.
    if run.timed_out && any(Final::Canceled) {
        RunResult::TimedOut
    } else if run.canceled && any(Final::Canceled) {
        RunResult::Canceled
    } else if any(Final::Failed) || any(Final::UpstreamFailed) {
        RunResult::Failed
    } else if any(Final::Canceled) {
        RunResult::Canceled
    } else {
        RunResult::Succeeded
    }
}

pub(super) fn no_activation(
    run_id: i64,
    task: &str,
    attempt: u32,
    result: AttemptResult,
) -> Attempt {
    Attempt {
        run_id,
        task: task.to_string(),
        attempt,
        invocation_id: None,
        started_us: None,
        ended_us: Some(store::now_us()),
        outcome: Outcome::of(result),
        cpu_ns: None,
        memory_peak: None,
    }
}

pub(super) fn marker(runtime: &Path, wf: &str, task: &str, ext: &str) -> PathBuf {
    runtime.join("flow").join(wf).join(format!("{task}.{ext}"))
}

/// Writes a task's marker in the run directory: `ok` (it succeeded), `done` (its outcome
/// is final, e.g. its retries are exhausted).
pub(super) fn mark(runtime: &Path, wf: &str, task: &str, ext: &str) {
    let path = marker(runtime, wf, task, ext);
    if let Err(e) = std::fs::write(&path, b"") {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

/// Before the supervisor starts a task: every task of the run whose outcome is final gets
/// the marker its unit's conditions read (`.ok` for a success, `.done` otherwise), so that
/// when the started unit pulls it in (`Requires=`, `Wants=`), PID 1 skips it instead of
/// running it again. Units write `.ok` themselves only where a workflow reads it, and
/// `.done` only for tasks with retries.
pub(super) fn mark_final(runtime: &Path, run: &ActiveRun) {
    for (task, state) in run.def.tasks.iter().zip(&run.tasks) {
        let ext = match state.st {
            St::Final(Final::Succeeded) => "ok",
            St::Final(_) => "done",
            _ => continue,
        };
        mark(runtime, &run.def.name, &task.name, ext);
    }
}

/// A number in 0..1 that differs from call to call (retry jitter); std's hasher is
/// randomly keyed per process, which is all the randomness jitter needs.
pub(super) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() % 10_000) as f64 / 10_000.0
}

//! The supervisor driven through runs without systemd, for fast tests of its run semantics
//! (retries, deadlines, overlap, cancel) that need no root: a workflow compiled from YAML as
//! `flow apply` would install it, a real SQLite history, the stand-in for PID 1 that keeps
//! every call the supervisor makes, and methods that feed the signals systemd 252 sends
//! when a run begins, a task runs, a job ends without running its unit, a unit is
//! stopped, a trigger is skipped. Time is the test's: retries and deadlines fire when the
//! test says what time it is ([`Double::fire_timers`]).
//!
//! What it feeds is what the supervisor reads from systemd, not what systemd would decide:
//! the test says which jobs end how, as systemd would end them for the units flow writes
//! (a task whose upstream failed gets a `dependency` job result, a task skipped by its
//! condition a `done` job without an activation, ...).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use zbus::Message;

use super::{Call, Counting, End, UnitSignal, changed, feed, job_new, job_removed, supervisor};
use crate::runs::trigger;
use crate::store::{self, Store};
use crate::supervisor::def::{self, WorkflowDef};
use crate::supervisor::{Signal, Supervisor, SupervisorError, follow};

/// What went wrong in a test's setup or a feed.
#[derive(Debug, thiserror::Error)]
pub enum DoubleError {
    #[error("the workflow does not compile: {0}")]
    Compile(String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("the units written hold no workflow")]
    NoWorkflow,
    #[error("the workflow has no task `{0}`")]
    NoTask(String),
    #[error("cannot build a signal: {0}")]
    Signal(#[from] zbus::Error),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

/// The supervisor of one workflow, and what stands around it.
pub struct Double {
    s: Supervisor,
    pid1: Rc<Counting>,
    def: WorkflowDef,
    /// The next job's number.
    job: u32,
    /// Invocations handed out so far.
    invocations: u32,
    /// The last timestamp handed out, µs since the epoch: never behind the wall clock, and
    /// always ahead of the one before.
    clock_us: u64,
    /// Each unit's last state, by name: what its change signals say while a job that does
    /// not run it comes and goes.
    units: HashMap<String, UnitSignal>,
    /// The job each unit has, by name.
    jobs: HashMap<String, u32>,
}

impl Double {
    /// A supervisor of the workflow `yaml`, named `name` (the file would be
    /// `/etc/flow/workflows/NAME.yaml`), with its units and history in `dir`.
    pub fn new(dir: &Path, name: &str, yaml: &str) -> Result<Double, DoubleError> {
        let units = dir.join("units");
        let source = format!("/etc/flow/workflows/{name}.yaml");
        let (_, files) = crate::compiler::compile(&source, yaml, &units.to_string_lossy())
            .map_err(|d| {
                DoubleError::Compile(crate::compiler::diagnostic::render_all(&d, &source, yaml))
            })?;
        std::fs::create_dir_all(&units).map_err(|e| DoubleError::Io(units.clone(), e))?;
        for f in files {
            let path = units.join(&f.name);
            std::fs::write(&path, f.contents).map_err(|e| DoubleError::Io(path, e))?;
        }
        // Read back as the supervisor reads what `flow apply` installed.
        let def = def::load_all(&units)
            .map_err(|e| DoubleError::Io(units.clone(), e))?
            .into_values()
            .next()
            .ok_or(DoubleError::NoWorkflow)?;
        let def = WorkflowDef::clone(&def);
        let (s, pid1) = supervisor(&dir.join("history.db"), def.clone())?;
        Ok(Double {
            s,
            pid1,
            def,
            job: 100,
            invocations: 0,
            clock_us: 0,
            units: HashMap::new(),
            jobs: HashMap::new(),
        })
    }

    /// The workflow as the supervisor read it from its units.
    pub fn def(&self) -> &WorkflowDef {
        &self.def
    }

    /// The unit of `task`.
    pub fn unit(&self, task: &str) -> Result<String, DoubleError> {
        self.def
            .tasks
            .iter()
            .find(|t| t.name == task)
            .map(|t| t.unit.clone())
            .ok_or_else(|| DoubleError::NoTask(task.to_string()))
    }

    /// The history the supervisor writes.
    pub fn store(&self) -> &Store {
        &self.s.store
    }

    /// The manager's runtime directory (`%t`), where triggers, `flow cancel` and the
    /// supervisor leave each other files (see `runs::trigger`).
    pub fn runtime_dir(&self) -> &Path {
        &self.s.cfg.runtime_dir
    }

    /// The calls the supervisor made since the last time they were taken, in order.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.pid1.calls.borrow_mut())
    }

    /// When the supervisor wakes next by itself (a retry is due, a run's deadline), if ever.
    pub fn wakes_at(&self) -> Option<Instant> {
        self.s.next_deadline()
    }

    /// What the supervisor does when it wakes at `now`: retries that are due, deadlines
    /// that passed, cancel requests of held runs.
    pub fn fire_timers(&mut self, now: Instant) -> Result<(), DoubleError> {
        Ok(self.s.fire_timers(now)?)
    }

    /// A run begins as systemd begins one: the run unit gets its start job and the begin
    /// unit's job ends `done`. `trigger` is the note a trigger unit or `flow run` leaves
    /// first (`manual`, `timer`, ...); without one, the run was started by `systemctl start`.
    pub fn begin_run(&mut self, trigger: Option<&str>) -> Result<(), DoubleError> {
        if let Some(kind) = trigger {
            trigger::leave_note(
                self.runtime_dir(),
                &self.def.name,
                crate::vocabulary::TriggerKind::parse(kind),
            );
        }
        self.invocations += 1;
        self.pid1.begin_inv.set(u64::from(self.invocations));
        let began = self.tick();
        self.pid1.begin_us.set(began);
        let (run, begin) = (self.def.run_unit(), self.def.begin_unit());
        let run_job = self.next_job(&run);
        let begin_job = self.next_job(&begin);
        self.feed(vec![
            job_new(run_job, &run)?,
            job_new(begin_job, &begin)?,
            job_removed(begin_job, &begin, "done")?,
        ])
    }

    /// The run unit's start job ends: `done` once every task's job has, `canceled` when the
    /// run is stopped (`flow cancel`, `systemctl stop`, a trigger that replaces the run).
    pub fn run_job_ends(&mut self, result: &str) -> Result<(), DoubleError> {
        let run = self.def.run_unit();
        let job = self.jobs.remove(&run).unwrap_or_default();
        self.feed(vec![job_removed(job, &run, result)?])
    }

    /// `task`'s start job runs its unit to the end: a new activation, and how it ended.
    pub fn task_runs(&mut self, task: &str, end: End) -> Result<(), DoubleError> {
        self.task_starts(task)?;
        self.task_ends(task, end)
    }

    /// `task`'s start job (the one it waits with, [`Double::task_queued`], or a new one)
    /// starts its unit, which is running when this returns.
    pub fn task_starts(&mut self, task: &str) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        let (job, new) = match self.jobs.get(&unit) {
            Some(&job) => (job, false),
            None => (self.next_job(&unit), true),
        };
        self.invocations += 1;
        let mut invocation = [0u8; 16];
        invocation[12..].copy_from_slice(&self.invocations.to_be_bytes());
        let before = self.state(&unit);
        let running = UnitSignal {
            active: "activating",
            sub: "start",
            invocation,
            inactive_exit: self.tick(),
            result: "success",
            job,
            ..before.clone()
        };
        let mut m = Vec::new();
        if new {
            m.extend(changed(&unit, &UnitSignal { job, ..before })?);
            m.push(job_new(job, &unit)?);
        }
        m.extend(changed(&unit, &running)?);
        m.extend(changed(&unit, &running)?);
        self.units.insert(unit, running);
        self.feed(m)
    }

    /// `task`'s running unit ends by itself, and with it its start job.
    pub fn task_ends(&mut self, task: &str, end: End) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        let job = self.jobs.remove(&unit).unwrap_or_default();
        let (result, code, status, job_result) = match end {
            End::Success => ("success", 1, 0, "done"),
            End::Exit(n) => ("exit-code", 1, n, "failed"),
            End::Timeout => ("timeout", 2, 15, "failed"),
        };
        let ok = end == End::Success;
        let last = UnitSignal {
            active: if ok { "inactive" } else { "failed" },
            sub: if ok { "dead" } else { "failed" },
            inactive_enter: self.tick(),
            result,
            code,
            status,
            ..self.state(&unit)
        };
        let mut m = Vec::new();
        m.extend(changed(&unit, &last)?);
        m.extend(changed(&unit, &last)?);
        m.push(job_removed(job, &unit, job_result)?);
        let last = UnitSignal { job: 0, ..last };
        m.extend(changed(&unit, &last)?);
        self.units.insert(unit, last);
        self.feed(m)
    }

    /// `task`'s running unit is stopped (`systemctl stop`, `flow cancel`, the supervisor at
    /// a deadline): the stop job replaces its start job, which ends `canceled`, and the
    /// main process dies of SIGTERM.
    pub fn task_stopped(&mut self, task: &str) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        let start_job = self.jobs.remove(&unit).unwrap_or_default();
        let stop_job = self.next_job(&unit);
        let stopping = UnitSignal {
            active: "deactivating",
            sub: "stop-sigterm",
            job: stop_job,
            ..self.state(&unit)
        };
        let stopped = UnitSignal {
            active: "failed",
            sub: "failed",
            inactive_enter: self.tick(),
            result: "signal",
            code: 2,
            status: 15,
            ..stopping.clone()
        };
        let mut m = Vec::new();
        m.push(job_removed(start_job, &unit, "canceled")?);
        m.push(job_new(stop_job, &unit)?);
        m.extend(changed(&unit, &stopping)?);
        m.extend(changed(&unit, &stopped)?);
        m.push(job_removed(stop_job, &unit, "done")?);
        self.jobs.remove(&unit);
        let stopped = UnitSignal { job: 0, ..stopped };
        m.extend(changed(&unit, &stopped)?);
        self.units.insert(unit, stopped);
        self.feed(m)
    }

    /// `task` gets a start job that ends with `result` without running its unit:
    /// `dependency` (a task it requires failed), `done` (its condition skipped it: it
    /// succeeded in this run already, or waits for an outcome not final yet), `canceled`
    /// (stopped before it ran).
    pub fn task_not_run(&mut self, task: &str, result: &str) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        let job = self.next_job(&unit);
        self.task_job_ends(task, job, true, result)
    }

    /// `task` gets a start job that waits (for the tasks it is ordered after).
    pub fn task_queued(&mut self, task: &str) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        let job = self.next_job(&unit);
        let before = UnitSignal {
            job,
            ..self.state(&unit)
        };
        let mut m = Vec::new();
        m.extend(changed(&unit, &before)?);
        m.push(job_new(job, &unit)?);
        self.feed(m)
    }

    /// The waiting start job of `task` ([`Double::task_queued`]) ends with `result`,
    /// without running its unit.
    pub fn queued_task_ends(&mut self, task: &str, result: &str) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        let job = self.jobs.get(&unit).copied().unwrap_or_default();
        self.task_job_ends(task, job, false, result)
    }

    /// The signals of a start job of `task` that ends without running its unit; `new`: its
    /// `JobNew` too.
    fn task_job_ends(
        &mut self,
        task: &str,
        job: u32,
        new: bool,
        result: &str,
    ) -> Result<(), DoubleError> {
        let unit = self.unit(task)?;
        self.jobs.remove(&unit);
        let state = self.state(&unit);
        let mut m = Vec::new();
        m.extend(changed(
            &unit,
            &UnitSignal {
                job,
                ..state.clone()
            },
        )?);
        if new {
            m.push(job_new(job, &unit)?);
        }
        m.push(job_removed(job, &unit, result)?);
        m.extend(changed(&unit, &UnitSignal { job: 0, ..state })?);
        self.feed(m)
    }

    /// A stop job for `unit` while nothing of it runs, as `flow cancel` and a trigger that
    /// replaces a run queue for each unit of the workflow: it ends `done` at once.
    pub fn idle_unit_stopped(&mut self, unit: &str) -> Result<(), DoubleError> {
        self.job += 1;
        let job = self.job;
        self.feed(vec![job_new(job, unit)?, job_removed(job, unit, "done")?])
    }

    /// A trigger the overlap rule skipped (`overlap: skip`) while a run went: the note the
    /// trigger unit leaves (`kind` as it tells it), then the end of its job.
    pub fn trigger_skipped(&mut self, kind: &str) -> Result<(), DoubleError> {
        trigger::note_skip(
            self.runtime_dir(),
            &self.def.name,
            crate::vocabulary::TriggerKind::parse(kind),
        );
        let unit = self.def.trigger_unit();
        let job = self.next_job(&unit);
        self.jobs.remove(&unit);
        self.feed(vec![job_new(job, &unit)?, job_removed(job, &unit, "done")?])
    }

    /// The same skipped by `flow run`, which tells the supervisor over its socket.
    pub fn run_skipped(&mut self, kind: &str) -> Result<(), DoubleError> {
        trigger::note_skip(
            self.runtime_dir(),
            &self.def.name,
            crate::vocabulary::TriggerKind::parse(kind),
        );
        let wf = self.def.name.clone();
        Ok(self
            .s
            .handle(Signal::Client(follow::Request::Skipped(wf)))?)
    }

    /// The trigger unit's job begins: a trigger that waits for the run going to end
    /// (`overlap: queue`).
    pub fn trigger_waits(&mut self) -> Result<(), DoubleError> {
        let unit = self.def.trigger_unit();
        let job = self.next_job(&unit);
        self.feed(vec![job_new(job, &unit)?])
    }

    /// The trigger unit's job ends (the queued run it started has begun).
    pub fn trigger_ends(&mut self) -> Result<(), DoubleError> {
        let unit = self.def.trigger_unit();
        let job = self.jobs.remove(&unit).unwrap_or_default();
        self.feed(vec![job_removed(job, &unit, "done")?])
    }

    /// What `flow cancel` leaves for a run the supervisor holds after systemd's part of it
    /// ended (see `runs::trigger::cancel`); false when no run is held.
    pub fn request_cancel(&self) -> bool {
        let wf = &self.def.name;
        match trigger::holder(self.runtime_dir(), wf) {
            Some(trigger::Hold { run: Some(run), .. }) => {
                let path = trigger::cancel_request_file(self.runtime_dir(), wf);
                trigger::create_parent(&path);
                std::fs::write(&path, run.to_string()).is_ok()
            }
            _ => false,
        }
    }

    /// Whether the supervisor holds a run of the workflow open (for the retries it still
    /// owes it): what keeps a queued trigger waiting.
    pub fn holds_a_run(&self) -> bool {
        trigger::holder(self.runtime_dir(), &self.def.name).is_some()
    }

    /// Whether the marker `TASK.EXT` (`ok`, `done`) is in the run directory, where the
    /// units' conditions look.
    pub fn marker(&self, task: &str, ext: &str) -> bool {
        super::super::marker(self.runtime_dir(), &self.def.name, task, ext).exists()
    }

    fn feed(&mut self, messages: Vec<Message>) -> Result<(), DoubleError> {
        feed(&mut self.s, messages)?;
        Ok(())
    }

    fn next_job(&mut self, unit: &str) -> u32 {
        self.job += 1;
        self.jobs.insert(unit.to_string(), self.job);
        self.job
    }

    /// A unit's state as its change signals last told it; one that never ran is inactive.
    fn state(&self, unit: &str) -> UnitSignal {
        self.units.get(unit).cloned().unwrap_or(UnitSignal {
            active: "inactive",
            sub: "dead",
            result: "success",
            ..UnitSignal::default()
        })
    }

    fn tick(&mut self) -> u64 {
        self.clock_us = (self.clock_us + 1).max(store::now_us() as u64);
        self.clock_us
    }
}

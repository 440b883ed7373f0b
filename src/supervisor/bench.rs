//! The supervisor's test double: the supervisor without systemd, fed the signals systemd
//! 252 sends, for its benchmark (below) and for fast tests of its run semantics
//! ([`Double`], `tests/supervisor_double.rs`).
//!
//! The supervisor's ingest capacity, measured without systemd: a stream of the signals
//! systemd 252 sends for a run (each task's `JobNew`, `JobRemoved` and the
//! `PropertiesChanged` pairs between them, as real D-Bus messages) goes through the same
//! reading (`signal_of`, on a thread of its own as in `flow supervise`) and handling
//! (`Supervisor::handle`) into a real SQLite store. PID 1 is not involved: a stand-in
//! `Manager` answers, and counts, every call the supervisor makes.
//!
//! Not part of flow's interface; public for `tests/e2e/supervisor_bench.rs` and
//! `tests/supervisor_double.rs`.
#![doc(hidden)]

mod double;

pub use double::{Double, DoubleError};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use zbus::Message;
use zbus::zvariant::{ObjectPath, Value};

use super::def::{Backoff, TaskDef, When, WorkflowDef};
use super::{Config, Manager, Supervisor, SupervisorError, seen::Seen, signal_of};
use crate::compiler::names;
use crate::store::{self, Attempt};
use crate::systemd::watch::unit_path;
use crate::systemd::{AccountingDefaults, Bus, JobSummary, SystemdError, UnitState};

/// What one measurement saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `JobNew` + `JobRemoved` of the tasks.
    pub transitions: u64,
    /// Every message read, `PropertiesChanged` included.
    pub messages: u64,
    /// From the first message read to the last one handled (its writes done).
    pub elapsed: Duration,
    /// Calls the supervisor made to read a task's state or resource use (PID 1 calls).
    pub task_state_calls: u64,
    /// Other calls (the begin unit's state when a run opens, starts, stops).
    pub other_calls: u64,
    /// Attempts found in the store afterwards.
    pub attempts: usize,
}

/// A call the supervisor made to the stand-in for PID 1, with the unit it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `RefUnit`: keeps the unit loaded.
    Ref(String),
    /// `UnrefUnit`.
    Unref(String),
    /// A start job queued, not waited for.
    Start(String),
    /// A stop job queued, not waited for.
    Stop(String),
    /// The unit's state read (the begin unit's when a run opens; a task's when its signals
    /// did not tell).
    State(String),
    /// A task's resource use read.
    Accounting(String),
    /// The manager's jobs listed.
    ListJobs,
}

/// The stand-in for PID 1: answers every call, counts them, and keeps them in order.
#[derive(Default)]
pub(super) struct Counting {
    pub(super) task_state: Cell<u64>,
    pub(super) other: Cell<u64>,
    /// The begin unit's InvocationID for the run being opened.
    pub(super) begin_inv: Cell<u64>,
    /// When the begin unit's main process started, µs since the epoch; 0: now.
    pub(super) begin_us: Cell<u64>,
    pub(super) calls: RefCell<Vec<Call>>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Counting {
    fn call(&self, counter: &Cell<u64>, call: Call) {
        bump(counter);
        self.calls.borrow_mut().push(call);
    }
}

impl Manager for Rc<Counting> {
    fn ref_unit(&self, name: &str) -> Result<(), SystemdError> {
        self.call(&self.other, Call::Ref(name.into()));
        Ok(())
    }
    fn unref_unit(&self, name: &str) -> Result<(), SystemdError> {
        self.call(&self.other, Call::Unref(name.into()));
        Ok(())
    }
    fn queue_start(&self, name: &str) -> Result<(), SystemdError> {
        self.call(&self.other, Call::Start(name.into()));
        Ok(())
    }
    fn stop_unit_no_wait(&self, name: &str) -> Result<(), SystemdError> {
        self.call(&self.other, Call::Stop(name.into()));
        Ok(())
    }
    fn unit_state(&self, name: &str) -> Result<UnitState, SystemdError> {
        self.call(&self.other, Call::State(name.into()));
        let began = match self.begin_us.get() {
            0 => store::now_us() as u64,
            us => us,
        };
        Ok(UnitState {
            name: name.to_string(),
            load_state: "loaded".into(),
            active_state: "inactive".into(),
            invocation_id: Some(format!("{:032x}", self.begin_inv.get())),
            exec_main_start_timestamp: Some(began),
            ..UnitState::default()
        })
    }
    fn unit_state_in_one_call(&self, name: &str) -> Result<UnitState, SystemdError> {
        self.call(&self.task_state, Call::State(name.into()));
        Err(SystemdError::NoSuchUnit {
            name: name.to_string(),
        })
    }
    fn accounting(
        &self,
        name: &str,
        _: bool,
        _: bool,
    ) -> Result<(Option<u64>, Option<u64>), SystemdError> {
        self.call(&self.task_state, Call::Accounting(name.into()));
        Ok((None, None))
    }
    fn list_jobs(&self) -> Result<Vec<JobSummary>, SystemdError> {
        self.call(&self.other, Call::ListJobs);
        Ok(Vec::new())
    }
}

/// How a synthetic task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Success,
    /// Exits with this status.
    Exit(i32),
    /// Killed by systemd at its `TimeoutStartSec=`.
    Timeout,
}

/// A supervisor with the stand-in manager, a real store at `db`, and one workflow.
pub(super) fn supervisor(
    db: &Path,
    def: WorkflowDef,
) -> Result<(Supervisor, Rc<Counting>), SupervisorError> {
    let (store, _) = crate::store::Store::open_rw(db)?;
    let next_id = store.max_run_id()? + 1;
    let dir = db.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Where `.done` markers go, as systemd's runtime directory would have it.
    let _ = std::fs::create_dir_all(dir.join("run").join("flow").join(&def.name));
    let mut defs = BTreeMap::new();
    defs.insert(def.name.clone(), Arc::new(def));
    let pid1 = Rc::new(Counting::default());
    let s = Supervisor {
        cfg: Config {
            db: db.to_path_buf(),
            unit_dir: dir.join("units"),
            runtime_dir: dir.join("run"),
            bus: Bus::Address("unix:path=/nonexistent".into()),
            keep_runs: 1000,
            keep_days: 365,
            bus_signals: false,
        },
        sd: Box::new(pid1.clone()),
        store,
        seen: Seen::default(),
        // systemd 252's defaults: no CPU accounting, no MemoryPeak.
        accounting: AccountingDefaults {
            cpu: false,
            memory: true,
            memory_peak: false,
        },
        defs,
        runs: HashMap::new(),
        queued: HashMap::new(),
        begun: HashMap::new(),
        next_id,
        pinned: HashSet::new(),
        writes: VecDeque::new(),
        dropped: 0,
        write_retry: None,
        publish: None,
        checkpoint_at: None,
        watchdog: None,
        followers: super::follow::Followers::default(),
        log: super::events::Log::default(),
    };
    Ok((s, pid1))
}

/// A workflow of `n` independent tasks `t0`.. named `name`, each with `retries`.
pub fn workflow(name: &str, n: usize, retries: u32) -> WorkflowDef {
    WorkflowDef {
        name: name.to_string(),
        tasks: (0..n)
            .map(|i| TaskDef {
                name: format!("t{i}"),
                unit: names::task_unit(name, &format!("t{i}")),
                needs: Vec::new(),
                when: When::AllSuccess,
                retries,
                retry_delay: Duration::ZERO,
                backoff: Backoff::Fixed,
                cpu_accounting: None,
                memory_accounting: None,
            })
            .collect(),
        timeout: None,
        timer: None,
    }
}

const MANAGER: &str = "org.freedesktop.systemd1.Manager";

fn job_new(id: u32, unit: &str) -> zbus::Result<Message> {
    let job = ObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}"))?;
    Message::signal("/org/freedesktop/systemd1", MANAGER, "JobNew")?.build(&(id, job, unit))
}

fn job_removed(id: u32, unit: &str, result: &str) -> zbus::Result<Message> {
    let job = ObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}"))?;
    Message::signal("/org/freedesktop/systemd1", MANAGER, "JobRemoved")?
        .build(&(id, job, unit, result))
}

/// What one state of a unit looks like in its pair of `PropertiesChanged` signals.
#[derive(Debug, Clone, Default)]
pub struct UnitSignal {
    pub active: &'static str,
    pub sub: &'static str,
    pub invocation: [u8; 16],
    pub inactive_exit: u64,
    pub inactive_enter: u64,
    pub result: &'static str,
    pub code: i32,
    pub status: i32,
    pub job: u32,
}

/// The pair systemd 252 sends for one state change: the Service interface, then the Unit
/// interface, each with every property that interface emits (as captured from systemd).
pub fn changed(unit: &str, s: &UnitSignal) -> zbus::Result<[Message; 2]> {
    let path = unit_path(unit);
    let v = |x: Value<'static>| x;
    let mut service: HashMap<&str, Value> = HashMap::new();
    service.insert("CleanResult", v("success".into()));
    service.insert("ControlPID", v(0u32.into()));
    service.insert("ExecMainCode", v(s.code.into()));
    service.insert("ExecMainExitTimestamp", v(s.inactive_enter.into()));
    service.insert("ExecMainExitTimestampMonotonic", v(s.inactive_enter.into()));
    service.insert("ExecMainPID", v(22u32.into()));
    service.insert("ExecMainStartTimestamp", v(s.inactive_exit.into()));
    service.insert("ExecMainStartTimestampMonotonic", v(s.inactive_exit.into()));
    service.insert("ExecMainStatus", v(s.status.into()));
    service.insert("GID", v(u32::MAX.into()));
    service.insert("MainPID", v(0u32.into()));
    service.insert("NRestarts", v(0u32.into()));
    service.insert("ReloadResult", v("success".into()));
    service.insert("Result", v(s.result.into()));
    service.insert("StatusErrno", v(0i32.into()));
    service.insert("StatusText", v("".into()));
    service.insert("UID", v(u32::MAX.into()));
    let invalidated_service: Vec<&str> = vec![
        "ExecCondition",
        "ExecConditionEx",
        "ExecStartPre",
        "ExecStartPreEx",
        "ExecStart",
        "ExecStartEx",
        "ExecStartPost",
        "ExecStartPostEx",
        "ExecReload",
        "ExecReloadEx",
        "ExecStop",
        "ExecStopEx",
        "ExecStopPost",
        "ExecStopPostEx",
    ];
    let job = ObjectPath::try_from(if s.job == 0 {
        "/".to_string()
    } else {
        format!("/org/freedesktop/systemd1/job/{}", s.job)
    })?;
    let mut u: HashMap<&str, Value> = HashMap::new();
    u.insert(
        "ActivationDetails",
        v(Value::from(Vec::<(String, String)>::new())),
    );
    for k in [
        "ActiveEnterTimestamp",
        "ActiveEnterTimestampMonotonic",
        "ActiveExitTimestamp",
        "ActiveExitTimestampMonotonic",
    ] {
        u.insert(k, v(0u64.into()));
    }
    u.insert("ActiveState", v(s.active.into()));
    u.insert("AssertResult", v(true.into()));
    u.insert("AssertTimestamp", v(s.inactive_exit.into()));
    u.insert("AssertTimestampMonotonic", v(s.inactive_exit.into()));
    u.insert("ConditionResult", v(true.into()));
    u.insert("ConditionTimestamp", v(s.inactive_exit.into()));
    u.insert("ConditionTimestampMonotonic", v(s.inactive_exit.into()));
    u.insert("FreezerState", v("running".into()));
    u.insert("InactiveEnterTimestamp", v(s.inactive_enter.into()));
    u.insert(
        "InactiveEnterTimestampMonotonic",
        v(s.inactive_enter.into()),
    );
    u.insert("InactiveExitTimestamp", v(s.inactive_exit.into()));
    u.insert("InactiveExitTimestampMonotonic", v(s.inactive_exit.into()));
    u.insert("InvocationID", v(s.invocation.to_vec().into()));
    u.insert("Job", v(Value::from((s.job, job))));
    u.insert("StateChangeTimestamp", v(s.inactive_enter.into()));
    u.insert("StateChangeTimestampMonotonic", v(s.inactive_enter.into()));
    u.insert("SubState", v(s.sub.into()));
    let invalidated_unit: Vec<&str> = vec!["Conditions", "Asserts"];
    let props = "org.freedesktop.DBus.Properties";
    Ok([
        Message::signal(path.as_str(), props, "PropertiesChanged")?.build(&(
            "org.freedesktop.systemd1.Service",
            service,
            invalidated_service,
        ))?,
        Message::signal(path.as_str(), props, "PropertiesChanged")?.build(&(
            "org.freedesktop.systemd1.Unit",
            u,
            invalidated_unit,
        ))?,
    ])
}

/// The messages of one activation of `unit` by job `job`, from the `JobNew` on, in
/// systemd 252's order: job assigned (old state), starting, running, exited, inactive,
/// `JobRemoved`, job cleared. `start_us` is when it left `inactive`.
pub fn activation(
    unit: &str,
    job: u32,
    invocation: [u8; 16],
    start_us: u64,
    end: End,
) -> zbus::Result<Vec<Message>> {
    let end_us = start_us + 1000;
    let (result, code, status, job_result) = match end {
        End::Success => ("success", 1, 0, "done"),
        End::Exit(n) => ("exit-code", 1, n, "failed"),
        End::Timeout => ("timeout", 2, 15, "failed"),
    };
    let before = UnitSignal {
        active: "inactive",
        sub: "dead",
        result: "success",
        job,
        ..UnitSignal::default()
    };
    let running = UnitSignal {
        active: "activating",
        sub: "start",
        invocation,
        inactive_exit: start_us,
        result: "success",
        job,
        ..UnitSignal::default()
    };
    let last = UnitSignal {
        active: if end == End::Success {
            "inactive"
        } else {
            "failed"
        },
        sub: if end == End::Success {
            "dead"
        } else {
            "failed"
        },
        inactive_enter: end_us,
        result,
        code,
        status,
        ..running.clone()
    };
    let mut out = Vec::with_capacity(14);
    out.extend(changed(unit, &before)?);
    out.push(job_new(job, unit)?);
    out.extend(changed(unit, &running)?);
    out.extend(changed(unit, &running)?);
    out.extend(changed(unit, &last)?);
    out.extend(changed(unit, &last)?);
    out.push(job_removed(job, unit, job_result)?);
    out.extend(changed(
        unit,
        &UnitSignal {
            job: 0,
            ..last.clone()
        },
    )?);
    Ok(out)
}

/// Reads `messages` on a thread of its own, as `flow supervise` does, and handles what it
/// forwards; returns how long that took.
pub(super) fn feed(
    s: &mut Supervisor,
    messages: Vec<Message>,
) -> Result<Duration, SupervisorError> {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    let reader = std::thread::spawn(move || {
        for m in &messages {
            if let Some(sig) = signal_of(m)
                && tx.send(sig).is_err()
            {
                break;
            }
        }
        messages
    });
    for sig in rx {
        s.handle(sig)?;
    }
    let took = t0.elapsed();
    // Dropped off the clock.
    drop(reader.join());
    Ok(took)
}

fn invocation(run: u64, task: usize, attempt: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(run + 1).to_be_bytes());
    id[8..12].copy_from_slice(&(task as u32).to_be_bytes());
    id[12..].copy_from_slice(&attempt.to_be_bytes());
    id
}

/// The messages of run `run` (0-based) of independent `units`; every tenth task fails
/// with exit status 1.
fn run_messages(
    begin: &str,
    units: &[String],
    run: u64,
    job: &mut u32,
) -> zbus::Result<Vec<Message>> {
    let base = store::now_us() as u64 + 1_000_000;
    let mut msgs = vec![job_new(*job, begin)?, job_removed(*job, begin, "done")?];
    *job += 1;
    let mut per_task = Vec::with_capacity(units.len());
    for (i, unit) in units.iter().enumerate() {
        let end = if i % 10 == 9 {
            End::Exit(1)
        } else {
            End::Success
        };
        per_task.push(activation(
            unit,
            *job,
            invocation(run, i, 1),
            base + i as u64,
            end,
        )?);
        *job += 1;
    }
    // systemd queues every task's job at once, then ends them one by one.
    for a in &mut per_task {
        msgs.extend(a.drain(..3));
    }
    for a in per_task {
        msgs.extend(a);
    }
    Ok(msgs)
}

/// One measurement: `runs` runs of a workflow of `tasks` independent tasks (every tenth
/// fails with exit status 1) into a new store at `db`. Building each run's messages is off
/// the clock; reading and handling them is on it.
pub fn ingest(db: &Path, tasks: usize, runs: u64) -> Result<Report, SupervisorError> {
    let def = workflow("big", tasks, 0);
    let units: Vec<String> = def.tasks.iter().map(|t| t.unit.clone()).collect();
    let begin = def.begin_unit();
    let (mut s, pid1) = supervisor(db, def)?;
    let mut report = Report::default();
    let mut job = 1000u32;
    for run in 0..runs {
        let msgs = run_messages(&begin, &units, run, &mut job).map_err(|e| {
            SupervisorError::Systemd(SystemdError::Bus {
                action: "building the benchmark's messages".into(),
                error: Box::new(e),
            })
        })?;
        report.messages += msgs.len() as u64;
        pid1.begin_inv.set(run + 1);
        report.elapsed += feed(&mut s, msgs)?;
        report.transitions += 2 * tasks as u64;
    }
    report.task_state_calls = pid1.task_state.get();
    report.other_calls = pid1.other.get();
    let mut attempts: Vec<Attempt> = Vec::new();
    for id in 1..=runs as i64 {
        attempts.extend(s.store.attempts(id)?);
    }
    report.attempts = attempts.len();
    // Everything written, none left queued.
    if !s.writes.is_empty() {
        report.attempts = 0;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    //! Attempts recorded from the signals alone: what would break if the property cache did.
    use super::*;
    use crate::vocabulary::{AttemptResult, Outcome, RunResult};

    fn hex(id: [u8; 16]) -> String {
        id.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn msgs(r: zbus::Result<Vec<Message>>) -> Vec<Message> {
        r.expect("build messages")
    }

    /// Opens run 1 of `def` and feeds `then`.
    fn run(def: WorkflowDef, then: Vec<Message>) -> (Supervisor, Rc<Counting>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let begin = def.begin_unit();
        let (mut s, pid1) = supervisor(&dir.path().join("h.db"), def).expect("supervisor");
        pid1.begin_inv.set(1);
        let mut m = vec![
            job_new(1, &begin).expect("msg"),
            job_removed(1, &begin, "done").expect("msg"),
        ];
        m.extend(then);
        feed(&mut s, m).expect("feed");
        (s, pid1, dir)
    }

    #[test]
    fn success_failure_and_timeout_come_from_the_signals() {
        let def = workflow("w", 3, 0);
        let units: Vec<String> = def.tasks.iter().map(|t| t.unit.clone()).collect();
        let t0 = store::now_us() as u64 + 1_000_000;
        let ends = [End::Success, End::Exit(7), End::Timeout];
        let mut m = Vec::new();
        for (i, end) in ends.into_iter().enumerate() {
            m.extend(msgs(activation(
                &units[i],
                10 + i as u32,
                invocation(0, i, 1),
                t0 + i as u64 * 10_000,
                end,
            )));
        }
        let (s, pid1, _dir) = run(def, m);
        let a = s.store.attempts(1).expect("attempts");
        assert_eq!(a.len(), 3, "{a:#?}");
        for (i, want) in [
            Outcome::succeeded(),
            Outcome::exited(7),
            Outcome::of(AttemptResult::TimedOut),
        ]
        .into_iter()
        .enumerate()
        {
            let a = a
                .iter()
                .find(|x| x.task == format!("t{i}"))
                .expect("attempt");
            assert_eq!(a.outcome, want);
            assert_eq!(a.attempt, 1);
            assert_eq!(a.invocation_id, Some(hex(invocation(0, i, 1))));
            let start = (t0 + i as u64 * 10_000) as i64;
            assert_eq!(a.started_us, Some(start));
            assert_eq!(a.ended_us, Some(start + 1000));
        }
        let r = s.store.run("w", 1).expect("run").expect("run 1");
        assert_eq!(r.result, Some(RunResult::Failed));
        assert_eq!(pid1.task_state.get(), 0, "a task's end asked PID 1");
    }

    #[test]
    fn a_retried_task_records_each_activation() {
        let def = workflow("w", 1, 2);
        let unit = def.tasks[0].unit.clone();
        let t0 = store::now_us() as u64 + 1_000_000;
        let first = msgs(activation(&unit, 10, invocation(0, 0, 1), t0, End::Exit(3)));
        let (mut s, pid1, _dir) = run(def, first);
        // The retry is due at once (no delay): the supervisor starts the unit again.
        s.fire_timers(Instant::now()).expect("timers");
        let starts = pid1.other.get();
        let second = msgs(activation(
            &unit,
            11,
            invocation(0, 0, 2),
            t0 + 50_000,
            End::Success,
        ));
        feed(&mut s, second).expect("feed");
        let a = s.store.attempts(1).expect("attempts");
        assert_eq!(a.len(), 2, "{a:#?}");
        assert_eq!((a[0].attempt, &a[0].outcome), (1, &Outcome::exited(3)));
        assert_eq!(a[0].invocation_id, Some(hex(invocation(0, 0, 1))));
        assert_eq!(a[0].started_us, Some(t0 as i64));
        assert_eq!((a[1].attempt, &a[1].outcome), (2, &Outcome::succeeded()));
        assert_eq!(a[1].invocation_id, Some(hex(invocation(0, 0, 2))));
        assert_eq!(a[1].started_us, Some(t0 as i64 + 50_000));
        assert_eq!(a[1].ended_us, Some(t0 as i64 + 51_000));
        assert!(starts >= 1, "the retry was not started");
        assert_eq!(pid1.task_state.get(), 0, "a task's end asked PID 1");
        let r = s.store.run("w", 1).expect("run").expect("run 1");
        assert_eq!(r.result, Some(RunResult::Succeeded));
    }

    #[test]
    fn a_unit_whose_signals_were_not_seen_is_read_from_pid1() {
        let def = workflow("w", 1, 0);
        let unit = def.tasks[0].unit.clone();
        let t0 = store::now_us() as u64 + 1_000_000;
        // Only the JobNew and the JobRemoved: no property change reached the supervisor.
        let all = msgs(activation(&unit, 10, invocation(0, 0, 1), t0, End::Success));
        let only_jobs: Vec<Message> = all
            .into_iter()
            .filter(|m| {
                m.header().member().map(|m| m.as_str().to_string())
                    != Some("PropertiesChanged".into())
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let begin = def.begin_unit();
        let (mut s, pid1) = supervisor(&dir.path().join("h.db"), def).expect("supervisor");
        let mut m = vec![
            job_new(1, &begin).expect("msg"),
            job_removed(1, &begin, "done").expect("msg"),
        ];
        m.extend(only_jobs);
        // The stand-in fails the read, and the failure is the supervisor's error: proof
        // that it asked.
        assert!(feed(&mut s, m).is_err());
        assert_eq!(pid1.task_state.get(), 1);
    }

    #[test]
    fn ingest_records_every_attempt_without_pid1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ingest(&dir.path().join("h.db"), 50, 2).expect("ingest");
        assert_eq!(r.attempts, 100);
        assert_eq!(r.transitions, 200);
        assert_eq!(r.task_state_calls, 0);
    }
}

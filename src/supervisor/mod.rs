//! `flow supervise`: records runs and task attempts, and drives what systemd cannot do
//! alone: retries with backoff, run deadlines, and (with `recover`) reconciliation after a
//! crash.
//!
//! Event-driven, no polling. The manager's `JobNew`/`JobRemoved`/`Reloading` signals and the
//! `PropertiesChanged` signals of unit objects are read before anything is read or started,
//! on one stream (so their order is kept): from PID 1's private socket, where PID 1 sends
//! them unasked and dbus-daemon does not route them (`systemd::private`), or, where that
//! socket cannot be opened, subscribed to on the bus. A reader thread keeps those of flow's
//! units and forwards them over a channel, and the main thread sleeps in `recv_timeout`
//! until the next event or the next deadline of its own (a retry delay, a run deadline, a
//! watchdog ping, a failed write to retry). When nothing runs and no watchdog is configured
//! it does not wake at all (other units' property changes wake only the reader thread).
//!
//! How a run is followed (the mechanism is in `compiler::emit`): a run begins when the
//! workflow's `begin` unit finishes (its InvocationID identifies the run). When a task's
//! start job ends, the task's unit properties tell whether it was a new activation (its
//! `InactiveExitTimestamp` moved) and how it ended. Those properties come from the unit's
//! own change signals (see `seen.rs`), not from a call to PID 1, which is busiest exactly
//! when many tasks end. A failed attempt with retries left is
//! started again after its delay, together with every unfinished task downstream of it
//! (their jobs failed with `dependency`, or their `.done` condition skipped them); tasks
//! that already succeeded are skipped by PID 1 through their `.ok` condition. When the
//! retries are exhausted the supervisor writes the task's `.done` marker, so `always` and
//! `on_failure` tasks run on the final outcome.
//!
//! Every fact goes to SQLite at once; a write that fails (disk full, locked) stays queued in
//! memory and is retried, so the in-memory state is never lost while the process lives, up
//! to [`MAX_QUEUED_WRITES`] records: past that, new records are dropped (with an error in
//! the journal) and the runs go on as before. The supervisor tells systemd it is ready once
//! it has recorded what happened while it was down, or [`READY_AFTER`] after it began to
//! read systemd's signals, whichever comes first: a full or locked disk delays the history,
//! not the supervisor (the runs meanwhile are read back from the journal once the history
//! opens).

// A test double of the supervisor's surroundings, for tests and benchmarks only: built
// with the `test-support` feature, which the test targets turn on (Cargo.toml), never into
// the binary the package ships.
#[cfg(feature = "test-support")]
pub mod bench;
pub mod def;
pub mod events;
pub mod follow;
mod instance;
mod journal;
mod seen;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zbus::MatchRule;
use zbus::blocking::MessageIterator;
use zbus::zvariant::OwnedObjectPath;

use crate::compiler::names;
use crate::runs::trigger;
use crate::store::{self, Attempt, Store, StoreError};
use crate::systemd::private;
use crate::systemd::watch::unit_path;
use crate::systemd::{
    AccountingDefaults, Bus, JobResult, JobSummary, Systemd, SystemdError, UnitState,
};
use crate::vocabulary::{AttemptResult, Outcome, RunResult, TriggerKind, start_failed};
use def::{TaskDef, When, WorkflowDef};
use seen::Seen;

/// What the supervisor asks of systemd. A trait so that its signal handling can be driven
/// without a bus (the ingest benchmark, [`bench`]); [`Systemd`] is the real one.
pub(crate) trait Manager {
    fn ref_unit(&self, name: &str) -> Result<(), SystemdError>;
    fn unref_unit(&self, name: &str) -> Result<(), SystemdError>;
    fn queue_start(&self, name: &str) -> Result<(), SystemdError>;
    fn stop_unit_no_wait(&self, name: &str) -> Result<(), SystemdError>;
    fn unit_state(&self, name: &str) -> Result<UnitState, SystemdError>;
    fn unit_state_in_one_call(&self, name: &str) -> Result<UnitState, SystemdError>;
    fn accounting(
        &self,
        name: &str,
        cpu: bool,
        memory_peak: bool,
    ) -> Result<(Option<u64>, Option<u64>), SystemdError>;
    fn list_jobs(&self) -> Result<Vec<JobSummary>, SystemdError>;
}

impl Manager for Systemd {
    fn ref_unit(&self, name: &str) -> Result<(), SystemdError> {
        Systemd::ref_unit(self, name)
    }
    fn unref_unit(&self, name: &str) -> Result<(), SystemdError> {
        Systemd::unref_unit(self, name)
    }
    fn queue_start(&self, name: &str) -> Result<(), SystemdError> {
        Systemd::queue_start(self, name)
    }
    fn stop_unit_no_wait(&self, name: &str) -> Result<(), SystemdError> {
        Systemd::stop_unit_no_wait(self, name)
    }
    fn unit_state(&self, name: &str) -> Result<UnitState, SystemdError> {
        Systemd::unit_state(self, name)
    }
    fn unit_state_in_one_call(&self, name: &str) -> Result<UnitState, SystemdError> {
        Systemd::unit_state_in_one_call(self, name)
    }
    fn accounting(
        &self,
        name: &str,
        cpu: bool,
        memory_peak: bool,
    ) -> Result<(Option<u64>, Option<u64>), SystemdError> {
        Systemd::accounting(self, name, cpu, memory_peak)
    }
    fn list_jobs(&self) -> Result<Vec<JobSummary>, SystemdError> {
        Systemd::list_jobs(self)
    }
}

/// How to start the supervisor of the system's manager, or of the user's own (the
/// package installs a unit for both).
pub fn start_hint(user: bool) -> &'static str {
    if user {
        "systemctl --user start flow-supervisor"
    } else {
        "systemctl start flow-supervisor"
    }
}

/// Where and how the supervisor works.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub unit_dir: PathBuf,
    /// The manager's runtime directory (`%t`): `/run` for the system manager.
    pub runtime_dir: PathBuf,
    pub bus: Bus,
    pub keep_runs: u32,
    pub keep_days: u32,
    /// Read systemd's signals from the bus even where the manager's private socket could
    /// be opened (the fallback, kept testable).
    pub bus_signals: bool,
}

impl Config {
    /// Whether this supervises a user's own manager (its journal messages differ).
    fn user(&self) -> bool {
        matches!(self.bus, Bus::User)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error(transparent)]
    Claim(#[from] instance::ClaimError),
    #[error("cannot read the installed units in {dir}: {error}")]
    Units { dir: PathBuf, error: std::io::Error },
    #[error("the connection to systemd closed; exiting so that systemd restarts the supervisor")]
    Disconnected,
    /// How a task's job ended is unknown: guessing could run it twice or lose it, and a
    /// restarted supervisor reads it from the journal.
    #[error(
        "cannot read the state of {unit}: {error}; exiting so that the restart recovers it from the journal"
    )]
    TaskStateUnknown { unit: String, error: SystemdError },
}

/// A signal from the manager.
#[derive(Debug)]
enum Signal {
    JobNew {
        id: u32,
        unit: String,
    },
    JobRemoved {
        id: u32,
        unit: String,
        result: String,
    },
    /// A daemon-reload finished: unit files may have changed.
    Reloaded,
    /// Properties of one interface of a flow unit changed; `None`: the signal could not be
    /// read (the unit's state is then read from PID 1 when needed).
    Changed {
        path: String,
        iface: seen::Iface,
        props: Option<seen::Props>,
    },
    /// What a client of the supervisor's socket asks (`flow run`, `flow run --wait`).
    Client(follow::Request),
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Succeeded,
    Failed,
    UpstreamFailed,
    Skipped,
    Canceled,
}

impl Final {
    fn ok(self) -> bool {
        matches!(self, Final::Succeeded | Final::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum St {
    Pending,
    /// Waiting for its next attempt.
    Retry(Instant),
    Final(Final),
}

#[derive(Debug, Clone)]
struct TaskRun {
    attempts: u32,
    /// InvocationID of the last activation seen, to tell a new one.
    last_inv: Option<String>,
    st: St,
}

#[derive(Debug)]
struct ActiveRun {
    id: i64,
    def: Arc<WorkflowDef>,
    begin_us: u64,
    tasks: Vec<TaskRun>,
    deadline: Option<Instant>,
    /// Stopped from outside (`flow cancel`, `systemctl stop` of the run unit) or by its
    /// deadline: nothing more of it starts, and it ends once its tasks' jobs are over.
    canceled: bool,
    /// Stopped by its deadline.
    timed_out: bool,
    /// When its last attempt ended (µs since the epoch): when the run ended, as systemd
    /// has it, also for a run read back from the journal after a restart.
    last_end_us: Option<i64>,
}

impl ActiveRun {
    /// A run that began at `begin_us` (µs since the epoch), every task pending; its
    /// deadline counts from that beginning, not from now.
    fn new(id: i64, def: Arc<WorkflowDef>, begin_us: u64) -> ActiveRun {
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
    fn end_us(&self) -> i64 {
        match self.last_end_us {
            Some(t) if !self.canceled => t,
            _ => store::now_us(),
        }
    }

    fn attempt_ended(&mut self, ended_us: i64) {
        self.last_end_us = self.last_end_us.max(Some(ended_us));
    }

    /// Whether this supervisor holds the run open after systemd's part of it (see
    /// [`Supervisor::hold`]): only runs with retries are held.
    fn held(&self) -> bool {
        self.def.tasks.iter().any(|t| t.retries > 0)
    }

    /// Settles task `i` without an activation of its own (its upstream failed, it was
    /// canceled): its final state, and the history record that says so.
    fn settle(&mut self, i: usize, f: Final) -> Write {
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

/// A write to the store, kept until it succeeded.
#[derive(Debug, Clone)]
enum Write {
    Run {
        id: i64,
        workflow: String,
        trigger: TriggerKind,
        started_us: i64,
        begin: Option<String>,
    },
    Skipped {
        id: i64,
        workflow: String,
        trigger: TriggerKind,
        at_us: i64,
    },
    Attempt(Attempt),
    Finish {
        id: i64,
        ended_us: i64,
        result: RunResult,
    },
    Prune,
}

pub struct Supervisor {
    cfg: Config,
    sd: Box<dyn Manager>,
    store: Store,
    /// What flow's units' change signals said.
    seen: Seen,
    /// What the manager accounts for units that do not say (their resource use is not in
    /// the signals, and is read only where it is accounted).
    accounting: AccountingDefaults,
    defs: BTreeMap<String, Arc<WorkflowDef>>,
    runs: HashMap<String, ActiveRun>,
    /// Units with a start job queued, by unit name: job id.
    queued: HashMap<String, u32>,
    next_id: i64,
    /// The begin unit's InvocationID of each workflow's latest run.
    begun: HashMap<String, String>,
    /// Workflows whose run unit this supervisor pins (see [`Supervisor::pin`]).
    pinned: HashSet<String>,
    writes: VecDeque<Write>,
    /// Records dropped since the queue above was last full (see [`MAX_QUEUED_WRITES`]).
    dropped: u64,
    write_retry: Option<Instant>,
    /// Told when records were written, to refresh the history's copy for unprivileged
    /// readers (the system's supervisor only; see [`store::publisher`]).
    publish: Option<mpsc::Sender<()>>,
    /// When to copy the write-ahead log into the database file (see [`CHECKPOINT_AFTER`]).
    checkpoint_at: Option<Instant>,
    watchdog: Option<Duration>,
    /// Clients following runs (`flow run --wait`).
    followers: follow::Followers,
    /// What the log remembers (see [`events`]).
    log: events::Log,
}

const WRITE_RETRY: Duration = Duration::from_secs(5);

/// How many unwritten records are kept in memory while the history cannot be written (a
/// full disk): some 5 MB, the records of about 60 runs of 150 tasks. Past it the newest
/// are dropped, each spell said once in the journal; the runs themselves are not affected.
const MAX_QUEUED_WRITES: usize = 20_000;

/// How long a start may take before the supervisor says it is ready all the same (the
/// history cannot be opened yet: a full or locked disk).
const READY_AFTER: Duration = Duration::from_secs(2);

/// How long after a run's end the write-ahead log is copied into the database file, so
/// that `history.db` alone (a backup of that one file) has the history: once runs are
/// quiet, not on any run's path (a checkpoint of a large run takes a while).
const CHECKPOINT_AFTER: Duration = Duration::from_secs(2);

impl Supervisor {
    /// Connects, subscribes, opens the store, and returns the supervisor with its signal
    /// stream. Nothing is acted on before the stream exists.
    fn start(
        cfg: Config,
        followers: Option<std::os::unix::net::UnixListener>,
    ) -> Result<(Supervisor, mpsc::Receiver<Signal>), SupervisorError> {
        // The manager's signals from its private socket when this process may open it
        // (root, or a user's own manager), else from the bus (see `systemd::private`).
        let private = (!cfg.bus_signals)
            .then(|| private::socket_path(&cfg.bus))
            .flatten()
            .and_then(|p| {
                private::Reader::connect(&p)
                    .map_err(|e| {
                        tracing::info!("{e}; reading systemd's signals from the bus");
                    })
                    .ok()
            });
        let sd = Systemd::connect(cfg.bus.clone())?;
        let (tx, rx) = match private {
            Some(reader) => listen_private(reader)?,
            None => listen(&sd)?,
        };
        if let Some(l) = followers {
            let accepted = follow::accept(l, move |req| tx.send(Signal::Client(req)).is_ok());
            if let Err(e) = accepted {
                tracing::warn!("cannot accept followers: {e}");
            }
        }
        let accounting = sd.accounting_defaults().unwrap_or_else(|e| {
            tracing::warn!("{e}; reading every task's resource use");
            AccountingDefaults {
                cpu: true,
                memory: true,
                memory_peak: true,
            }
        });
        // Ready once the history is open and what happened meanwhile is recorded (see
        // `supervise`), or READY_AFTER from here at the latest: the signals queue until the
        // history is open, and the runs while it is not are read back from the journal.
        // Waiting for a full or locked disk would leave the unit starting until systemd's
        // start timeout kills it, again and again.
        let _ = std::thread::Builder::new().name("ready".into()).spawn(|| {
            std::thread::sleep(READY_AFTER);
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        });
        let store = open_store(&cfg.db)?;
        let next_id = patiently(&cfg.db, || store.max_run_id())? + 1;
        let publish = (!cfg.user()).then(|| store::publisher(&cfg.db));
        // Pinged at half the interval systemd gave (WATCHDOG_USEC).
        let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
        let mut s = Supervisor {
            defs: BTreeMap::new(),
            cfg,
            sd: Box::new(sd),
            store,
            seen: Seen::default(),
            accounting,
            runs: HashMap::new(),
            queued: HashMap::new(),
            next_id,
            begun: HashMap::new(),
            pinned: HashSet::new(),
            writes: VecDeque::new(),
            dropped: 0,
            write_retry: None,
            publish,
            checkpoint_at: None,
            watchdog,
            followers: follow::Followers::default(),
            log: events::Log::default(),
        };
        s.reload_defs()?;
        Ok((s, rx))
    }

    fn reload_defs(&mut self) -> Result<(), SupervisorError> {
        self.defs = def::load_all(&self.cfg.unit_dir).map_err(|error| SupervisorError::Units {
            dir: self.cfg.unit_dir.clone(),
            error,
        })?;
        let defs: Vec<Arc<WorkflowDef>> = self.defs.values().cloned().collect();
        for d in defs {
            self.pin(&d);
        }
        // A workflow that is gone: its pin would keep its run unit loaded (`not-found`)
        // for as long as the supervisor runs.
        let gone: Vec<String> = self
            .pinned
            .iter()
            .filter(|wf| !self.defs.contains_key(*wf))
            .cloned()
            .collect();
        for wf in gone {
            self.pinned.remove(&wf);
            if let Err(e) = self.sd.unref_unit(&names::run_unit(&wf)) {
                tracing::warn!("cannot unpin {}: {e}", names::run_unit(&wf));
            }
        }
        Ok(())
    }

    /// Keeps a workflow's units loaded for as long as the supervisor runs.
    ///
    /// systemd unloads an inactive unit nobody references, and its last result with it (it
    /// collects it before the `JobRemoved` signal is even sent). A task unit is referenced
    /// by the run unit that `Wants=` it, so one pin (`RefUnit`) on the run unit keeps the
    /// begin unit and every task loaded, whether the run unit is active or not: one pin per
    /// workflow, never one per task (systemd tracks each pinned unit with its own match on
    /// the bus, and a client that pinned ~1000 task units was dropped, after a start-up of
    /// more than 90 s). Pinned at start-up (and after a reload, for new workflows) rather
    /// than when a job appears: a task started by `flow retry` can finish, and be unloaded,
    /// before the supervisor has read its `JobNew`.
    fn pin(&mut self, def: &WorkflowDef) {
        if self.pinned.contains(&def.name) {
            return;
        }
        match self.sd.ref_unit(&def.run_unit()) {
            Ok(()) => {
                self.pinned.insert(def.name.clone());
            }
            Err(e) => tracing::warn!("cannot pin {}: {e}", def.run_unit()),
        }
    }

    fn run_loop(&mut self, rx: &mpsc::Receiver<Signal>) -> Result<(), SupervisorError> {
        let mut next_ping = self.watchdog.map(|w| Instant::now() + w);
        loop {
            let wake = [
                next_ping,
                self.next_deadline(),
                self.write_retry,
                self.checkpoint_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let got = match wake {
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(Signal::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(SupervisorError::Disconnected);
                }
                Ok(sig) => match self.handle(sig) {
                    // A call about one unit that failed (the unit vanished, say) must not
                    // end the supervisor: restarted, it would replay the run and meet the
                    // same again. Other errors end it, and the restart recovers from the
                    // journal what this one could not record.
                    Err(SupervisorError::Systemd(e)) => tracing::warn!("{e}"),
                    Err(e) => return Err(e),
                    Ok(()) => {}
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if let (Some(w), Some(at)) = (self.watchdog, next_ping)
                && now >= at
            {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                next_ping = Some(now + w);
            }
            match self.fire_timers(now) {
                Err(SupervisorError::Systemd(e)) => tracing::warn!("{e}"),
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            if self.write_retry.is_some_and(|at| now >= at) {
                self.flush();
            }
            if self.checkpoint_at.is_some_and(|at| now >= at) {
                self.checkpoint_at = None;
                // One that cannot finish now (or with writes waiting for a full disk)
                // loses nothing: the log keeps it, and the next run's end asks again.
                if self.writes.is_empty() {
                    let _ = self.store.checkpoint();
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.runs
            .values()
            .flat_map(|r| {
                r.tasks
                    .iter()
                    .filter_map(|t| match t.st {
                        St::Retry(at) => Some(at),
                        _ => None,
                    })
                    .chain(r.deadline)
            })
            .min()
    }

    fn handle(&mut self, sig: Signal) -> Result<(), SupervisorError> {
        match sig {
            Signal::JobNew { id, unit } => {
                if unit.starts_with("flow-") {
                    self.queued.insert(unit.clone(), id);
                    if let Some(wf) = names::workflow_of_run_unit(&unit) {
                        let open = self.runs.contains_key(wf);
                        self.followers.run_job_new(wf, id, open);
                    }
                    self.on_job_new(&unit)?;
                }
            }
            Signal::JobRemoved { id, unit, result } => {
                if !unit.starts_with("flow-") {
                    return Ok(());
                }
                if self.queued.get(&unit) == Some(&id) {
                    self.queued.remove(&unit);
                }
                self.on_job_removed(&unit, &result)?;
                if let Some(wf) = names::workflow_of_run_unit(&unit) {
                    let open = self.runs.contains_key(wf);
                    self.followers.run_job_removed(wf, id, open);
                }
            }
            Signal::Reloaded => {
                self.reload_defs()?;
                self.end_runs_of_removed_workflows()?;
                // Forget the units of workflows that are gone.
                let live: HashSet<String> = self
                    .defs
                    .values()
                    .flat_map(|d| d.tasks.iter().map(|t| unit_path(&t.unit)))
                    .collect();
                self.seen.retain(|path| live.contains(path));
            }
            Signal::Changed { path, iface, props } => match props {
                Some(p) => {
                    if p.activating() {
                        self.followers.activating(&path);
                        if events::on() {
                            self.log_attempt_started(&path);
                        }
                    }
                    self.seen.apply(&path, iface, p)
                }
                None => self.seen.forget(&path),
            },
            Signal::Client(follow::Request::Follow {
                workflow,
                follower,
                queued,
            }) => self.followers.add(workflow, follower, queued),
            Signal::Client(follow::Request::Rejoin {
                workflow,
                run,
                follower,
            }) => self.rejoin(&workflow, run, follower),
            Signal::Client(follow::Request::Skipped(workflow)) => self.record_skips(&workflow),
            Signal::Closed => {}
        }
        Ok(())
    }

    fn workflow_of(&self, unit: &str) -> Option<Arc<WorkflowDef>> {
        let name = crate::compiler::names::workflow_of_file(unit)?;
        self.runs
            .get(&*name)
            .map(|r| r.def.clone())
            .or_else(|| self.defs.get(&*name).cloned())
    }

    /// A start job for a task outside any run (`flow retry`): a run of the tasks that did
    /// not succeed. (The overlap rule is applied before a run starts, by the workflow's
    /// trigger unit: see `runs::trigger`.)
    fn on_job_new(&mut self, unit: &str) -> Result<(), SupervisorError> {
        let Some(def) = self.workflow_of(unit) else {
            return Ok(());
        };
        self.pin(&def);
        if def.task_index(unit).is_some() && !self.runs.contains_key(&def.name) {
            // `flow retry` leaves this request before starting units; a task started by
            // hand (or by a run whose begin job is not seen yet) is not a retry.
            let request = trigger::retry_request_file(&self.cfg.runtime_dir, &def.name);
            if std::fs::remove_file(&request).is_ok() {
                self.open_retry_run(&def);
            }
        }
        Ok(())
    }

    fn take_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Records the triggers the overlap rule skipped, as the trigger unit left them.
    fn record_skips(&mut self, wf: &str) {
        for (trigger, at_us) in trigger::take_skips(&self.cfg.runtime_dir, wf) {
            let id = self.take_id();
            self.write(Write::Skipped {
                id,
                workflow: wf.to_string(),
                trigger,
                at_us,
            });
        }
    }

    /// Tells trigger units that a run of `wf` is open here (see `runs::trigger`): after
    /// systemd's part of it ended, retries may still be due. Only for workflows with
    /// retries: for the others a run is over when systemd's part is.
    fn hold(&self, wf: &str, open: bool) {
        let open = open && self.runs.get(wf).is_some_and(ActiveRun::held);
        let path = trigger::hold_file(&self.cfg.runtime_dir, wf);
        if open {
            let hold = trigger::Hold::mine(self.runs.get(wf).map(|r| r.id));
            trigger::create_parent(&path);
            if let Err(e) = std::fs::write(&path, hold.to_line()) {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    fn on_job_removed(&mut self, unit: &str, result: &str) -> Result<(), SupervisorError> {
        let Some(def) = self.workflow_of(unit) else {
            return Ok(());
        };
        // The run unit's start job is canceled only by a stop: `flow cancel`, or
        // `systemctl stop` of the workflow.
        if (unit == def.run_unit() && result == "canceled") || self.cancel_requested(&def.name) {
            self.stop_run(&def.name)?;
        }
        if unit == def.begin_unit() {
            if result == "done" {
                self.open_run(&def)?;
            }
            return Ok(());
        }
        if unit == def.trigger_unit() {
            self.record_skips(&def.name);
            self.followers.trigger_job_removed(&def.name, result);
            return Ok(());
        }
        let Some(i) = def.task_index(unit) else {
            return Ok(());
        };
        if !self.runs.contains_key(&def.name) {
            return Ok(());
        }
        let state = match self.task_state(&def.tasks[i], result) {
            Err(SupervisorError::Systemd(error)) => {
                return Err(SupervisorError::TaskStateUnknown {
                    unit: unit.to_string(),
                    error,
                });
            }
            other => other?,
        };
        self.task_ended(&def.name, i, result, &state)?;
        self.advance(&def.name)?;
        Ok(())
    }

    /// A task unit's state at the end of its start job: what its change signals said (and,
    /// where the unit accounts its resource use, which the signals never carry, one call
    /// for that); one read from PID 1 when the signals did not tell everything.
    fn task_state(&mut self, task: &TaskDef, job: &str) -> Result<UnitState, SupervisorError> {
        let Some(mut state) = self.seen.state(&task.unit, &unit_path(&task.unit)) else {
            return Ok(self.sd.unit_state_in_one_call(&task.unit)?);
        };
        let ran = matches!(job, "done" | "failed" | "timeout");
        let cpu = task.cpu_accounting.unwrap_or(self.accounting.cpu);
        let memory =
            self.accounting.memory_peak && task.memory_accounting.unwrap_or(self.accounting.memory);
        if ran && (cpu || memory) {
            match self.sd.accounting(&task.unit, cpu, memory) {
                Ok((cpu_ns, peak)) => {
                    state.cpu_usage_nsec = cpu_ns;
                    state.memory_peak = peak;
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(state)
    }

    fn open_run(&mut self, def: &Arc<WorkflowDef>) -> Result<(), SupervisorError> {
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
    fn open_retry_run(&mut self, def: &Arc<WorkflowDef>) {
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
    fn task_ended(
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
    fn advance(&mut self, wf: &str) -> Result<(), SupervisorError> {
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
    fn cancel_requested(&self, wf: &str) -> bool {
        self.runs.get(wf).is_some_and(|r| {
            r.held() && trigger::take_cancel_request(&self.cfg.runtime_dir, wf, r.id)
        })
    }

    /// A run stopped from outside: see [`ActiveRun::canceled`].
    fn stop_run(&mut self, wf: &str) -> Result<(), SupervisorError> {
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        if run.canceled {
            return Ok(());
        }
        run.canceled = true;
        self.advance(wf)
    }

    fn end_run(&mut self, wf: &str, id: i64, result: RunResult) -> Result<(), SupervisorError> {
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
    fn cancel_run(&mut self, wf: &str, result: RunResult) -> Result<(), SupervisorError> {
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
    fn end_runs_of_removed_workflows(&mut self) -> Result<(), SupervisorError> {
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

    fn fire_timers(&mut self, now: Instant) -> Result<(), SupervisorError> {
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

    fn write(&mut self, w: Write) {
        if events::on() {
            self.log_write(&w);
        }
        if !self.followers.is_empty() {
            self.tell_followers(&w);
        }
        if self.writes.len() >= MAX_QUEUED_WRITES {
            self.dropped += 1;
            if self.dropped == 1 {
                events::database_error(
                    &self.cfg.db,
                    "too many records wait for the disk",
                    Some(self.writes.len()),
                    &format!(
                        "{MAX_QUEUED_WRITES} history records wait for the disk already; dropping new ones until they are written (the runs go on)"
                    ),
                );
            }
            return;
        }
        self.writes.push_back(w);
        // While a failed write waits for its retry, new ones queue behind it: trying now
        // would block every event for the store's lock timeout.
        if self.write_retry.is_none() {
            self.flush();
        }
    }

    /// Tells the followers of a run what is being recorded of it.
    fn tell_followers(&mut self, w: &Write) {
        match w {
            Write::Attempt(a) => {
                let retry_in = self.runs.values().find(|r| r.id == a.run_id).and_then(|r| {
                    let i = r.def.tasks.iter().position(|t| t.name == a.task)?;
                    match r.tasks[i].st {
                        St::Retry(at) => Some(at.saturating_duration_since(Instant::now())),
                        _ => None,
                    }
                });
                self.followers.attempt(a.run_id, a, retry_in);
            }
            Write::Finish { id, result, .. } => self.followers.finished(*id, *result),
            _ => {}
        }
    }

    /// Waiting followers of `def` follow the run `id` that just opened.
    fn follow_opened(&mut self, def: &WorkflowDef, id: i64) {
        if self.followers.is_empty() {
            return;
        }
        let run_job = self.queued.contains_key(&def.run_unit());
        self.followers
            .opened(&def.name, id, task_paths(def), run_job);
    }

    /// A follower rejoins run `id` of `wf` (see [`follow::Followers::rejoin`]): the run's
    /// attempts as recorded, and its end if it is over; a run neither open here nor
    /// recorded as ended gets an end without a result (the client reads systemd then).
    fn rejoin(&mut self, wf: &str, id: i64, follower: follow::Follower) {
        self.flush();
        let attempts = self.store.attempts(id).unwrap_or_default();
        let now = match self.runs.get(wf).filter(|r| r.id == id) {
            Some(run) => follow::Rejoined::Open {
                tasks: task_paths(&run.def),
                run_job: self.queued.contains_key(&run.def.run_unit()),
            },
            None => follow::Rejoined::Over {
                result: self.store.run(wf, id).ok().flatten().and_then(|r| r.result),
            },
        };
        self.followers.rejoin(wf, id, follower, &attempts, now);
    }

    /// Writes queued facts in order; on a transient failure keeps them for later.
    fn flush(&mut self) {
        let kept = self.write_retry.map(|_| self.writes.len());
        while let Some(w) = self.writes.front() {
            match apply(&self.store, w, &self.cfg) {
                Ok(()) => {
                    self.writes.pop_front();
                    if let Some(p) = &self.publish {
                        let _ = p.send(());
                    }
                }
                Err(e) if e.is_transient() => {
                    events::database_error(
                        &self.cfg.db,
                        &e.to_string(),
                        Some(self.writes.len()),
                        &format!(
                            "cannot write the run history ({e}); {} record(s) kept in memory, retrying in {}s",
                            self.writes.len(),
                            WRITE_RETRY.as_secs()
                        ),
                    );
                    self.write_retry = Some(Instant::now() + WRITE_RETRY);
                    return;
                }
                Err(e) => {
                    events::database_error(
                        &self.cfg.db,
                        &e.to_string(),
                        None,
                        &format!("dropping a history record that cannot be written: {e}"),
                    );
                    self.writes.pop_front();
                }
            }
        }
        if let Some(n) = kept {
            events::database_written(&self.cfg.db, n);
        }
        self.write_retry = None;
        if self.dropped > 0 {
            events::database_error(
                &self.cfg.db,
                "records dropped",
                None,
                &format!(
                    "{} history record(s) were dropped while the history could not be written",
                    self.dropped
                ),
            );
            self.dropped = 0;
        }
    }
}

fn apply(store: &Store, w: &Write, cfg: &Config) -> Result<(), StoreError> {
    match w {
        Write::Run {
            id,
            workflow,
            trigger,
            started_us,
            begin,
        } => store.insert_run_with_id(*id, workflow, *trigger, *started_us, begin.as_deref()),
        Write::Skipped {
            id,
            workflow,
            trigger,
            at_us,
        } => store.insert_finished_run(*id, workflow, *trigger, *at_us, RunResult::Skipped),
        Write::Attempt(a) => store.insert_attempt(a).map(|_| ()),
        Write::Finish {
            id,
            ended_us,
            result,
        } => store.finish_run(*id, *ended_us, *result),
        Write::Prune => {
            let cutoff = store::now_us() - i64::from(cfg.keep_days) * 86_400_000_000;
            store.prune(cfg.keep_runs, cutoff).map(|_| ())
        }
    }
}

/// Each task's unit object path, with the task's name: what followers are told of.
fn task_paths(def: &WorkflowDef) -> Vec<(String, String)> {
    def.tasks
        .iter()
        .map(|t| (unit_path(&t.unit), t.name.clone()))
        .collect()
}

fn run_result(run: &ActiveRun) -> RunResult {
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

fn no_activation(run_id: i64, task: &str, attempt: u32, result: AttemptResult) -> Attempt {
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

fn marker(runtime: &Path, wf: &str, task: &str, ext: &str) -> PathBuf {
    runtime.join("flow").join(wf).join(format!("{task}.{ext}"))
}

/// Writes a task's marker in the run directory: `ok` (it succeeded), `done` (its outcome
/// is final, e.g. its retries are exhausted).
fn mark(runtime: &Path, wf: &str, task: &str, ext: &str) {
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
fn mark_final(runtime: &Path, run: &ActiveRun) {
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
fn jitter() -> f64 {
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

fn open_store(path: &Path) -> Result<Store, SupervisorError> {
    let (s, warning) = patiently(path, || Store::open_rw(path))?;
    if let Some(w) = warning {
        events::database_error(path, &w.to_string(), None, &w.to_string());
    }
    s.limit_cache(256)?;
    Ok(s)
}

/// Runs `read` on the history until it does not fail with a transient error (locked, disk
/// full), pinging the watchdog meanwhile: at start-up there is nothing better to do, and
/// exiting would only restart into the same lock.
fn patiently<T>(
    path: &Path,
    mut read: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut warned = false;
    loop {
        match read() {
            Err(e) if e.is_transient() => {
                if !warned {
                    events::database_error(
                        path,
                        &e.to_string(),
                        None,
                        &format!("{e}; waiting for it"),
                    );
                    warned = true;
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                std::thread::sleep(Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

/// Where systemd's unit objects are; flow's are `flow_2d...` below it (`-` escaped).
const UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit";
const FLOW_UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit/flow_2d";

/// Subscribes to the manager's job signals and to the property changes of units, and
/// forwards the ones about flow's units from a reader thread.
///
/// Both go through one stream, so that a unit's changes stay ahead of its job's
/// `JobRemoved`, as systemd sends them. A bus match rule cannot select a prefix of one path
/// element (`path_namespace` matches whole elements), so the rule takes the property changes
/// of every unit and the reader thread drops, by the object path in the header, those that
/// are not flow's before reading their body.
fn listen(sd: &Systemd) -> Result<(mpsc::Sender<Signal>, mpsc::Receiver<Signal>), SupervisorError> {
    let err = |e: zbus::Error| {
        SupervisorError::Systemd(SystemdError::Disconnected {
            action: format!("watching jobs: {e}"),
        })
    };
    let conn = sd.connection();
    conn.clone().set_max_queued(64 * 1024);
    // The unfiltered stream of the connection (registered before the rules, so nothing the
    // rules bring in is missed); it also carries replies to the main thread's calls, which
    // are skipped here.
    let mut signals = MessageIterator::from(conn.clone());
    let jobs = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.systemd1")
        .map_err(err)?
        .interface("org.freedesktop.systemd1.Manager")
        .map_err(err)?
        .build();
    let props = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.systemd1")
        .map_err(err)?
        .interface("org.freedesktop.DBus.Properties")
        .map_err(err)?
        .member("PropertiesChanged")
        .map_err(err)?
        .path_namespace(UNIT_PATHS)
        .map_err(err)?
        .build();
    let owners = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS)
        .map_err(err)?
        .interface(BUS)
        .map_err(err)?
        .member("NameOwnerChanged")
        .map_err(err)?
        .arg(0, SYSTEMD)
        .map_err(err)?
        .build();
    let bus = zbus::blocking::fdo::DBusProxy::new(conn).map_err(err)?;
    for rule in [jobs, props, owners] {
        bus.add_match_rule(rule).map_err(|e| err(e.into()))?;
    }
    sd.subscribe()?;
    // The bus lets any client send a signal to any other, so the sender is checked against
    // systemd's unique name (read after the rules exist, so a change is not missed).
    let name = zbus::names::BusName::try_from(SYSTEMD).map_err(|e| err(e.into()))?;
    let mut owner = bus
        .get_name_owner(name)
        .map_err(|e| err(e.into()))?
        .to_string();
    spawn_reader(move || {
        let msg = signals.next()?.ok()?;
        Some(if from_systemd(&msg, &mut owner) {
            signal_of(&msg)
        } else {
            None
        })
    })
}

/// The manager's signals from its private socket; only PID 1 can write there, so no
/// sender needs checking.
fn listen_private(
    mut reader: private::Reader,
) -> Result<(mpsc::Sender<Signal>, mpsc::Receiver<Signal>), SupervisorError> {
    spawn_reader(move || Some(signal_of_private(&reader.next_message().ok()?)))
}

/// Runs `next` on the signal reader thread: each signal it reads goes to the main loop
/// (`Some(None)`: a message that is not one); `None` when the connection closed. Returns a
/// sender to the main loop too, for other threads that feed it.
fn spawn_reader(
    mut next: impl FnMut() -> Option<Option<Signal>> + Send + 'static,
) -> Result<(mpsc::Sender<Signal>, mpsc::Receiver<Signal>), SupervisorError> {
    let (tx, rx) = mpsc::channel();
    let to_main = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Some(read) = next() {
                if let Some(sig) = read
                    && tx.send(sig).is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Signal::Closed);
        })
        .map_err(|e| SupervisorError::Units {
            dir: PathBuf::from("(thread)"),
            error: e,
        })?;
    Ok((to_main, rx))
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const BUS: &str = "org.freedesktop.DBus";

/// Whether a message comes from systemd, whose unique name is `owner`; follows the owner
/// when the bus says it changed (systemd re-executed), and then says no.
fn from_systemd(msg: &zbus::Message, owner: &mut String) -> bool {
    let header = msg.header();
    let sender = header.sender().map(|s| s.as_str());
    if sender == Some(BUS)
        && header.member().map(|m| m.as_str()) == Some("NameOwnerChanged")
        && let Ok((name, _, new)) = msg.body().deserialize::<(&str, &str, &str)>()
    {
        if name == SYSTEMD {
            *owner = new.to_string();
        }
        return false;
    }
    !owner.is_empty() && sender == Some(owner.as_str())
}

/// A message's body, from the bus or from the manager's private socket.
trait Body {
    fn get<T: serde::de::DeserializeOwned + zbus::zvariant::Type>(&self) -> Option<T>;
}

impl Body for zbus::Message {
    fn get<T: serde::de::DeserializeOwned + zbus::zvariant::Type>(&self) -> Option<T> {
        self.body().deserialize::<T>().ok()
    }
}

impl Body for private::Message {
    fn get<T: serde::de::DeserializeOwned + zbus::zvariant::Type>(&self) -> Option<T> {
        self.body::<T>()
    }
}

/// The supervisor's reading of one message from the bus: a manager signal, or a property
/// change of a flow unit; `None` for anything else.
fn signal_of(msg: &zbus::Message) -> Option<Signal> {
    let header = msg.header();
    if header.message_type() != zbus::message::Type::Signal {
        return None;
    }
    signal_from(
        header.interface()?.as_str(),
        header.member()?.as_str(),
        header.path().map(|p| p.as_str()),
        msg,
    )
}

/// The same from the manager's private socket.
fn signal_of_private(msg: &private::Message) -> Option<Signal> {
    let h = &msg.header;
    if h.msg_type != private::Message::SIGNAL {
        return None;
    }
    signal_from(
        h.interface.as_deref()?,
        h.member.as_deref()?,
        h.path.as_deref(),
        msg,
    )
}

fn signal_from(iface: &str, member: &str, path: Option<&str>, body: &impl Body) -> Option<Signal> {
    match (iface, member) {
        ("org.freedesktop.systemd1.Manager", "JobNew") => body
            .get::<(u32, OwnedObjectPath, String)>()
            .map(|(id, _, unit)| Signal::JobNew { id, unit }),
        ("org.freedesktop.systemd1.Manager", "JobRemoved") => body
            .get::<(u32, OwnedObjectPath, String, String)>()
            .map(|(id, _, unit, result)| Signal::JobRemoved { id, unit, result }),
        ("org.freedesktop.systemd1.Manager", "Reloading") => match body.get::<bool>() {
            Some(false) => Some(Signal::Reloaded),
            _ => None,
        },
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let path = path?;
            if !path.starts_with(FLOW_UNIT_PATHS) {
                return None;
            }
            let (name, props) = match body.get::<(String, seen::Props, Vec<String>)>() {
                Some((name, props, _)) => (name, Some(props)),
                // Unreadable values: the interface alone, if that can be read.
                None => (body.get::<(String,)>()?.0, None),
            };
            let iface = seen::Iface::of(&name)?;
            Some(Signal::Changed {
                path: path.to_string(),
                iface,
                props,
            })
        }
        _ => None,
    }
}

impl Supervisor {
    /// Reconciles what happened while the supervisor was down: every run still open in
    /// the store, and every run begun since the last recorded one, is replayed from the
    /// journal through the same code as live events (writes are idempotent), then followed
    /// on (or ended, when a newer run replaced it).
    fn recover(&mut self, started_us: i64) -> Result<(), SupervisorError> {
        self.log.recovering = true;
        let recovered = self.replay(started_us);
        self.log.recovering = false;
        recovered
    }

    fn replay(&mut self, started_us: i64) -> Result<(), SupervisorError> {
        for j in self.sd.list_jobs()? {
            if j.unit.starts_with("flow-") && j.job_type == "start" {
                self.queued.insert(j.unit, j.id);
            }
        }
        let open = patiently(&self.cfg.db, || self.store.open_runs())?;
        // A new history records from this process's start: runs while it waited for the
        // disk are the history's.
        let recording_since = patiently(&self.cfg.db, || self.store.recording_since(started_us))?;
        let defs: Vec<Arc<WorkflowDef>> = self.defs.values().cloned().collect();
        for def in defs {
            let mine: Vec<_> = open.iter().filter(|r| r.workflow == def.name).collect();
            let busy = !mine.is_empty()
                || self.queued.keys().any(|u| {
                    crate::compiler::names::workflow_of_file(u).as_deref()
                        == Some(def.name.as_str())
                });
            if busy {
                self.pin(&def);
            }
            let since = match (
                mine.iter().map(|r| r.started_us).min(),
                patiently(&self.cfg.db, || self.store.last_run(&def.name))?,
            ) {
                (Some(s), _) => s,
                (None, Some(last)) => last.started_us + 1,
                // No run yet: any since the history began, while no supervisor ran.
                (None, None) => recording_since,
            };
            let mut units: Vec<String> = def.tasks.iter().map(|t| t.unit.clone()).collect();
            units.push(def.begin_unit());
            let ends = match journal::job_ends(&units, since.max(0) as u64, self.cfg.user()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("cannot read the journal to recover {}: {e}", def.name);
                    Vec::new()
                }
            };
            let open_ids: HashSet<i64> = mine.iter().map(|r| r.id).collect();
            // Open runs not found in the journal start from the store.
            for r in &mine {
                events::run_recovered(&def.name, r.id, true);
                self.runs.insert(
                    def.name.clone(),
                    ActiveRun::new(r.id, def.clone(), r.started_us.max(0) as u64),
                );
            }
            // Set while the journal tells of a run the store has as ended already: its
            // ends are recorded, and nothing more of it may start.
            let mut in_ended_run = false;
            for end in ends {
                if end.unit == def.begin_unit() {
                    let Some(inv) = end.state.invocation_id.clone() else {
                        continue;
                    };
                    if end.result != "done" {
                        continue;
                    }
                    let known = patiently(&self.cfg.db, || self.store.run_by_begin(&inv))?;
                    if let Some(run) = self.runs.get(&def.name)
                        && Some(run.id) == known
                    {
                        continue;
                    }
                    // A newer run began: the one before it is over.
                    if let Some(run) = self.runs.get(&def.name) {
                        let id = run.id;
                        self.settle_replayed(&def.name, id)?;
                    }
                    in_ended_run = known.is_some_and(|id| !open_ids.contains(&id));
                    if in_ended_run {
                        continue;
                    }
                    let id = match known {
                        Some(id) => id,
                        None => {
                            let id = self.next_id;
                            self.next_id += 1;
                            self.write(Write::Run {
                                id,
                                workflow: def.name.clone(),
                                trigger: trigger::take_note(&self.cfg.runtime_dir, &def.name)
                                    .unwrap_or(TriggerKind::Systemctl),
                                started_us: end.state.inactive_exit_timestamp.unwrap_or(end.at_us)
                                    as i64,
                                begin: Some(inv),
                            });
                            events::run_recovered(&def.name, id, false);
                            id
                        }
                    };
                    let begin_us = end.state.inactive_exit_timestamp.unwrap_or(end.at_us);
                    self.runs
                        .insert(def.name.clone(), ActiveRun::new(id, def.clone(), begin_us));
                    continue;
                }
                if in_ended_run {
                    continue;
                }
                if let Some(i) = def.task_index(&end.unit) {
                    self.task_ended(&def.name, i, &end.result, &end.state)?;
                }
            }
            if self.runs.contains_key(&def.name) {
                self.advance(&def.name)?;
            }
        }
        for name in self.defs.keys().cloned().collect::<Vec<_>>() {
            self.record_skips(&name);
            self.hold(&name, self.runs.contains_key(&name));
        }
        Ok(())
    }

    /// Ends a replayed run that a newer run replaced: what did not finish was canceled.
    fn settle_replayed(&mut self, wf: &str, id: i64) -> Result<(), SupervisorError> {
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        let mut writes = Vec::new();
        for i in 0..run.tasks.len() {
            if !matches!(run.tasks[i].st, St::Final(_)) {
                writes.push(run.settle(i, Final::Canceled));
            }
        }
        let result = run_result(run);
        let ended_us = run.end_us();
        for w in writes {
            self.write(w);
        }
        if let Some(run) = self.runs.remove(wf) {
            self.log_run_ended(&run, result);
        }
        self.write(Write::Finish {
            id,
            ended_us,
            result,
        });
        Ok(())
    }
}

/// `flow supervise`: runs until the connection to systemd closes.
pub fn supervise(cfg: Config) -> Result<(), SupervisorError> {
    // One malloc arena for the process: the signal reader thread would otherwise get an
    // arena of its own, whose pages stay resident (idle memory is a target on a Pi).
    // SAFETY: mallopt only tunes glibc's allocator; called before the threads start.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
    events::init();
    let db = cfg.db.clone();
    let supervised = supervise_with(cfg);
    if let Err(SupervisorError::Store(e)) = &supervised {
        events::database_error(&db, &e.to_string(), None, &e.to_string());
    }
    supervised
}

fn supervise_with(cfg: Config) -> Result<(), SupervisorError> {
    // Before anything else: the socket and the retries are the first supervisor's.
    let _claim = instance::claim(&cfg.runtime_dir, cfg.user())?;
    // Bound before any thread starts (see `follow::bind`).
    let followers = follow::bind(&cfg.runtime_dir);
    let started_us = store::now_us();
    let (mut s, rx) = Supervisor::start(cfg, followers)?;
    s.recover(started_us)?;
    s.write(Write::Prune);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    s.run_loop(&rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(sender: &str, iface: &str, member: &str) -> zbus::Message {
        zbus::Message::signal("/org/freedesktop/systemd1", iface, member)
            .and_then(|b| b.sender(sender))
            .and_then(|b| b.build(&(7u32,)))
            .expect("message")
    }

    /// While the history cannot be written, records wait in memory up to a bound; past
    /// it new ones are dropped, and the bound holds.
    #[test]
    fn unwritten_records_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _) = bench::supervisor(&dir.path().join("h.db"), bench::workflow("wf", 1, 0))
            .expect("supervisor");
        // A write failed a moment ago: the ones that follow queue behind it.
        s.write_retry = Some(Instant::now() + Duration::from_secs(3600));
        for _ in 0..MAX_QUEUED_WRITES + 10 {
            s.write(Write::Prune);
        }
        assert_eq!(s.writes.len(), MAX_QUEUED_WRITES);
        assert_eq!(s.dropped, 10);
        s.flush();
        assert!(s.writes.is_empty());
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn only_systemds_own_signals_are_read() {
        let mut owner = ":1.1".to_string();
        let job = |sender| signal(sender, "org.freedesktop.systemd1.Manager", "JobRemoved");
        assert!(from_systemd(&job(":1.1"), &mut owner));
        // Anyone may send a signal to the supervisor: not systemd's, not read.
        assert!(!from_systemd(&job(":1.9"), &mut owner));
        // systemd re-executed and came back under another name.
        let moved = zbus::Message::signal("/org/freedesktop/DBus", BUS, "NameOwnerChanged")
            .and_then(|b| b.sender(BUS))
            .and_then(|b| b.build(&(SYSTEMD, ":1.1", ":1.5")))
            .expect("message");
        assert!(!from_systemd(&moved, &mut owner));
        assert_eq!(owner, ":1.5");
        assert!(!from_systemd(&job(":1.1"), &mut owner));
        assert!(from_systemd(&job(":1.5"), &mut owner));
        // Another name's owner changing changes nothing.
        let other = zbus::Message::signal("/org/freedesktop/DBus", BUS, "NameOwnerChanged")
            .and_then(|b| b.sender(BUS))
            .and_then(|b| b.build(&("org.example.X", "", ":1.7")))
            .expect("message");
        assert!(!from_systemd(&other, &mut owner));
        assert_eq!(owner, ":1.5");
    }
}

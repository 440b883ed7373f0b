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
//!
//! The parts: `signals` reads systemd, `run` is the run state machine (attempts, retries,
//! deadlines, ends), `record` writes the history and tells followers and the journal
//! (`events`), `recover` replays what happened while the supervisor was down, `follow`
//! serves `flow run --wait`; this module holds them together in one event loop.

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
mod record;
mod recover;
mod run;
mod seen;
mod signals;

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
use record::*;
use run::*;
use seen::Seen;
use signals::*;

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

/// How long a start may take before the supervisor says it is ready all the same (the
/// history cannot be opened yet: a full or locked disk).
const READY_AFTER: Duration = Duration::from_secs(2);

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

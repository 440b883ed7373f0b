//! A trigger: the overlap rule applied when something asks for a run. The trigger unit a
//! timer starts (`flow trigger`) and `flow run` both come through here; a plain
//! `systemctl start` of the run unit does not (it joins a run that is going, as systemd
//! does for any unit).
//!
//! A run is going while its run unit has a job or is active, or while the supervisor keeps
//! it open to retry tasks after systemd's part ended: it says so with a hold file holding
//! its PID.
//!
//! Small files under `<runtime dir>/flow/`, beside the runs' state directories (which
//! each run empties) rather than in them:
//! - `<wf>.hold`: the PID of the supervisor that has a run of `<wf>` open, the run's
//!   number, and the process's start time (so that another process given the same PID
//!   later is not taken for it);
//! - `<wf>.cancel`: the number of a held run that `flow cancel` stops, so that the
//!   supervisor retries nothing more of it;
//! - `<wf>.trigger`: what started the next run (`timer`, `catch_up`, `manual`), for the
//!   supervisor's history; a run without one was started by `systemctl start`;
//! - `<wf>.skipped`: one line (`<kind> <µs since the epoch>`) per trigger skipped by the
//!   overlap rule, which the supervisor records as skipped runs and then removes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::InstalledWorkflow;
use crate::systemd::{Systemd, SystemdError, UnitSummary};
use crate::vocabulary::TriggerKind;

/// The manager's runtime directory (`%t`): `/run` for the system manager, the user's
/// `$XDG_RUNTIME_DIR` for a user manager.
pub fn runtime_dir(user: bool) -> PathBuf {
    if user {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::getuid())))
    } else {
        PathBuf::from("/run")
    }
}

/// `<runtime dir>/flow/<wf>.<ext>`: the small files triggers, `flow retry` and the
/// supervisor leave each other.
fn shared_file(runtime: &Path, wf: &str, ext: &str) -> PathBuf {
    runtime.join("flow").join(format!("{wf}.{ext}"))
}

/// Deletes what a removed workflow left under the runtime directory: its task markers
/// (`<runtime>/flow/<wf>/`) and the files above. Best effort: they are small, and gone at
/// the next boot anyway.
pub fn forget(runtime: &Path, wf: &str) {
    let _ = std::fs::remove_dir_all(runtime.join(crate::compiler::names::runtime_subdir(wf)));
    for ext in [
        "hold", "trigger", "cancel", "retry", "skipped", "manual", "slots",
    ] {
        let _ = std::fs::remove_file(shared_file(runtime, wf, ext));
    }
}

pub fn hold_file(runtime: &Path, wf: &str) -> PathBuf {
    shared_file(runtime, wf, "hold")
}

pub fn note_file(runtime: &Path, wf: &str) -> PathBuf {
    shared_file(runtime, wf, "trigger")
}

/// Left by `flow cancel` for a run the supervisor holds (see [`cancel`]).
pub fn cancel_request_file(runtime: &Path, wf: &str) -> PathBuf {
    shared_file(runtime, wf, "cancel")
}

/// Left by `flow retry` before it starts the failed tasks of a run: the task starts that
/// follow are a retry of that run, for the supervisor.
pub fn retry_request_file(runtime: &Path, wf: &str) -> PathBuf {
    shared_file(runtime, wf, "retry")
}

fn manual_request_file(runtime: &Path, wf: &str) -> PathBuf {
    shared_file(runtime, wf, "manual")
}

/// Left by `flow run` before it hands a trigger to the trigger unit (`overlap: queue` or
/// `replace`): that trigger is `manual`, whenever the timer last elapsed. Best effort: at
/// worst the trigger unit tells the kind by the timer, as for its own starts.
pub fn ask_manual(runtime: &Path, wf: &str) {
    let path = manual_request_file(runtime, wf);
    create_parent(&path);
    let _ = std::fs::write(path, "");
}

/// Takes the request [`ask_manual`] left, if any.
pub fn take_manual_request(runtime: &Path, wf: &str) -> bool {
    std::fs::remove_file(manual_request_file(runtime, wf)).is_ok()
}

/// Creates the directory of one of those files (best effort: the write that follows
/// reports what went wrong).
pub fn create_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
}

/// Leaves word of what starts the next run, for the supervisor. Best effort: without it
/// the run is recorded as started by `systemctl`.
pub fn leave_note(runtime: &Path, wf: &str, kind: TriggerKind) {
    let path = note_file(runtime, wf);
    create_parent(&path);
    let _ = std::fs::write(path, kind.as_str());
}

fn skipped_file(runtime: &Path, wf: &str) -> PathBuf {
    shared_file(runtime, wf, "skipped")
}

/// Leaves word of a skipped trigger. Best effort, like [`leave_note`].
pub fn note_skip(runtime: &Path, wf: &str, kind: TriggerKind) {
    use std::io::Write;
    let path = skipped_file(runtime, wf);
    create_parent(&path);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{kind} {}", crate::store::now_us());
    }
}

/// Takes the skipped triggers left since the last call: (kind, µs since the epoch). The
/// file is renamed before it is read, so a trigger that skips meanwhile starts a new one.
pub fn take_skips(runtime: &Path, wf: &str) -> Vec<(TriggerKind, i64)> {
    let path = skipped_file(runtime, wf);
    let taken = path.with_extension("skipped.taken");
    if std::fs::rename(&path, &taken).is_err() {
        return Vec::new();
    }
    let text = std::fs::read_to_string(&taken).unwrap_or_default();
    let _ = std::fs::remove_file(&taken);
    text.lines()
        .filter_map(|l| {
            let (kind, at) = l.split_once(' ')?;
            Some((TriggerKind::parse(kind), at.trim().parse().ok()?))
        })
        .collect()
}

/// Takes the note of what started the run that begins now (see [`leave_note`]).
pub fn take_note(runtime: &Path, wf: &str) -> Option<TriggerKind> {
    let path = note_file(runtime, wf);
    let kind = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(kind.trim())
        .filter(|k| !k.is_empty())
        .map(TriggerKind::parse)
}

/// Why a run of `wf` is going, or `None` when none is.
pub fn going(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    runtime: &Path,
) -> Result<Option<String>, SystemdError> {
    let run = wf.run_unit();
    // One call for the run unit's job and state (a unit that is not loaded has neither).
    if let Some(unit) = loaded(sd, &run)? {
        // The run unit has a start job from the moment a run is asked for until every
        // task is done. (The begin unit may stay active a moment longer, until systemd
        // sees that it is no longer needed: that is not a run going; `start` stops it
        // first.)
        if let Some((_, job_type)) = &unit.job {
            return Ok(Some(format!("{run} has a {job_type} job")));
        }
        if matches!(
            unit.active_state.as_str(),
            "active" | "activating" | "deactivating" | "reloading"
        ) {
            return Ok(Some(format!("{run} is {}", unit.active_state)));
        }
    }
    if let Some(hold) = holder(runtime, &wf.name) {
        return Ok(Some(format!(
            "the supervisor (PID {}) is retrying tasks of it",
            hold.pid
        )));
    }
    Ok(None)
}

/// A supervisor's hold on a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub pid: u32,
    /// The run's number in the history.
    pub run: Option<i64>,
    /// When the holding process started (`starttime` of `/proc/<pid>/stat`, clock ticks
    /// since boot): a PID alone is reused once its process is gone, and a hold left by a
    /// supervisor killed with SIGKILL would then be taken for a live one by every trigger.
    pub start: Option<u64>,
}

impl Hold {
    /// The hold of this process on run `run`.
    pub fn mine(run: Option<i64>) -> Hold {
        let pid = std::process::id();
        Hold {
            pid,
            run,
            start: start_time(pid),
        }
    }

    /// The hold file's contents: `PID RUN START` (`-` for an unknown run or start).
    pub fn to_line(&self) -> String {
        let word = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        format!(
            "{} {} {}",
            self.pid,
            word(self.run.map(|r| r.to_string())),
            word(self.start.map(|s| s.to_string()))
        )
    }

    fn parse(text: &str) -> Option<Hold> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let run = words.next().and_then(|r| r.parse().ok());
        let start = words.next().and_then(|r| r.parse().ok());
        Some(Hold { pid, run, start })
    }

    /// Whether the process that wrote this hold still runs: its PID is alive and started
    /// when the hold says. A hold without a start time (written by an older flow) counts
    /// only while its PID runs `flow supervise`.
    fn alive(&self) -> bool {
        match self.start {
            Some(start) => start_time(self.pid) == Some(start),
            None => std::fs::read(format!("/proc/{}/cmdline", self.pid))
                .is_ok_and(|cmd| cmd.split(|&b| b == 0).any(|a| a == b"supervise")),
        }
    }
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
/// `None` when it is gone. Readable for any process by any user.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or `)`: the fields
    // after the last `)` start with field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The hold on a run of `wf`, if the process that holds it is alive. A hold left by a
/// supervisor that died is no hold: its successor reconciles the run and writes its own.
pub fn holder(runtime: &Path, wf: &str) -> Option<Hold> {
    let text = std::fs::read_to_string(hold_file(runtime, wf)).ok()?;
    let hold = Hold::parse(&text)?;
    hold.alive().then_some(hold)
}

/// Takes a cancel request left for run `run` of `wf` (see [`cancel`]); a request for
/// another run is stale and is removed all the same.
pub fn take_cancel_request(runtime: &Path, wf: &str, run: i64) -> bool {
    let path = cancel_request_file(runtime, wf);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return false;
    };
    let _ = std::fs::remove_file(&path);
    text.trim().parse::<i64>().ok() == Some(run)
}

/// What a trigger that arrives now is: `timer` when the workflow's timer has just
/// elapsed, `catch_up` when that was a `Persistent=` timer making up for a missed run the
/// moment it was activated, `manual` otherwise.
pub fn kind(sd: &Systemd, wf: &InstalledWorkflow) -> TriggerKind {
    let Some((timer, _)) = &wf.timer else {
        return TriggerKind::Manual;
    };
    let Ok(state) = sd.unit_state(timer) else {
        return TriggerKind::Manual;
    };
    let now = crate::store::now_us() as u64;
    match state.last_trigger {
        Some(last) if now.saturating_sub(last) < 5_000_000 => {
            let at_activation = state
                .active_enter_timestamp
                .is_some_and(|active| last.saturating_sub(active) < 2_000_000);
            if wf.catch_up && at_activation {
                TriggerKind::CatchUp
            } else {
                TriggerKind::Timer
            }
        }
        _ => TriggerKind::Manual,
    }
}

/// What a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No run was going: one started.
    Started,
    /// A run was going (the reason) and `overlap: skip`: nothing started.
    Skipped(String),
    /// A run was going (the reason) and `overlap: queue`: this one started once it ended.
    Queued(String),
    /// A run was going (the reason) and `overlap: replace`: it was canceled, this one started.
    Replaced(String),
}

/// Applies the overlap rule and starts a run unless it says not to. `waiting` is called
/// once when a queued trigger begins to wait.
pub fn trigger(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    runtime: &Path,
    kind: TriggerKind,
    mut waiting: impl FnMut(&str),
) -> Result<Outcome, SystemdError> {
    let Some(why) = going(sd, wf, runtime)? else {
        start(sd, wf, runtime, kind)?;
        return Ok(Outcome::Started);
    };
    match wf.overlap.as_str() {
        "queue" => {
            waiting(&why);
            // Only a trigger unit waits here, and at most one per workflow (a trigger
            // that arrives meanwhile joins its job), so a short sleep costs little; the
            // hold file has no signal to wait for.
            let mut pause = Duration::from_millis(20);
            let started = Instant::now();
            while going(sd, wf, runtime)?.is_some() {
                std::thread::sleep(pause);
                if started.elapsed() > Duration::from_secs(2) {
                    pause = Duration::from_millis(500);
                }
            }
            start(sd, wf, runtime, kind)?;
            Ok(Outcome::Queued(why))
        }
        "replace" => {
            cancel(sd, wf, runtime)?;
            start(sd, wf, runtime, kind)?;
            Ok(Outcome::Replaced(why))
        }
        _ => {
            note_skip(runtime, &wf.name, kind);
            Ok(Outcome::Skipped(why))
        }
    }
}

fn start(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    runtime: &Path,
    kind: TriggerKind,
) -> Result<(), SystemdError> {
    leave_note(runtime, &wf.name, kind);
    begin_afresh(sd, wf)?;
    sd.queue_start(&wf.run_unit())
}

/// Makes sure the next start of the run unit runs the begin unit: right after a run,
/// systemd may not have stopped it yet, and a start would then find it active and keep
/// the last run's markers.
pub fn begin_afresh(sd: &Systemd, wf: &InstalledWorkflow) -> Result<(), SystemdError> {
    let begin = wf.begin_unit();
    if loaded(sd, &begin)?.is_some_and(|u| u.active_state != "inactive") {
        sd.stop_unit(&begin)?;
    }
    Ok(())
}

/// A unit's state and job if it is loaded, in one call (`ListUnitsByPatterns` with its
/// exact name: unit names have no glob characters). Starting a run is on the path a
/// benchmark measures, and each call to PID 1 costs a round trip.
fn loaded(sd: &Systemd, unit: &str) -> Result<Option<UnitSummary>, SystemdError> {
    Ok(sd
        .list_units_by_patterns(&[unit])?
        .into_iter()
        .find(|u| u.name == unit))
}

/// Stops the workflow's trigger unit if it is going: a trigger that waits for the run
/// going to end (`overlap: queue`), or one starting a run. `flow cancel` stops it before the
/// run, which it would otherwise start as soon as the run is stopped. Returns whether it
/// was going.
pub fn cancel_queued(sd: &Systemd, wf: &InstalledWorkflow) -> Result<bool, SystemdError> {
    let trigger = wf.trigger_unit();
    let going = loaded(sd, &trigger)?.is_some_and(|u| {
        u.job.is_some() || matches!(u.active_state.as_str(), "activating" | "active")
    });
    if going {
        sd.stop_unit(&trigger)?;
    }
    Ok(going)
}

/// Stops a run: the run unit first, so that its pending start job cannot pull tasks in
/// again, then every task, each before the tasks it needs (an `always` task waiting for a
/// running one would otherwise start when that one is stopped), then the begin unit, so
/// that the next run begins afresh (it would stop by itself once unneeded, but perhaps not
/// before a new start arrives). Returns whether anything was going.
///
/// The supervisor sees the run unit's start job canceled and starts nothing more of the
/// run. After systemd's part of a run, while the supervisor holds it to retry tasks, the
/// run unit has no job to cancel: a request file names the run instead.
pub fn cancel(sd: &Systemd, wf: &InstalledWorkflow, runtime: &Path) -> Result<bool, SystemdError> {
    cancel_and_tell(sd, wf, runtime, || {})
}

/// [`cancel`], calling `stopping` once it knows a run is going, before the stops (which
/// wait for each task to end: a task may take its time to clean up).
pub fn cancel_and_tell(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    runtime: &Path,
    stopping: impl FnOnce(),
) -> Result<bool, SystemdError> {
    let mut units = vec![wf.run_unit()];
    let index = wf.task_indices();
    let needs: Vec<Vec<usize>> = wf
        .tasks
        .iter()
        .map(|t| {
            t.needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    units.extend(
        crate::compiler::model::upstream_first(&needs)
            .into_iter()
            .rev()
            .map(|i| wf.tasks[i].unit.clone()),
    );
    units.push(wf.begin_unit());
    let jobs = sd.list_jobs()?;
    let mut going = false;
    if let Some(Hold { run: Some(run), .. }) = holder(runtime, &wf.name) {
        let path = cancel_request_file(runtime, &wf.name);
        create_parent(&path);
        going = std::fs::write(&path, run.to_string()).is_ok();
    }
    for u in &units {
        if jobs.iter().any(|j| &j.unit == u) {
            going = true;
        } else if let Ok(s) = sd.unit_state(u) {
            going |= matches!(
                s.active_state.as_str(),
                "activating" | "active" | "deactivating"
            );
        }
    }
    if !going {
        return Ok(false);
    }
    stopping();
    for u in &units {
        sd.stop_unit(u)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_reads_back_as_written() {
        let hold = Hold::mine(Some(7));
        assert_eq!(Hold::parse(&hold.to_line()), Some(hold.clone()));
        assert!(hold.start.is_some(), "{hold:?}");
        let none = Hold {
            pid: 3,
            run: None,
            start: None,
        };
        assert_eq!(Hold::parse(&none.to_line()), Some(none));
    }

    /// A hold left by a supervisor that died, whose PID now belongs to another process
    /// (here: this test's own), holds nothing.
    #[test]
    fn a_hold_whose_pid_was_reused_is_no_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = hold_file(dir.path(), "wf");
        create_parent(&path);
        let mine = Hold::mine(Some(3));
        std::fs::write(&path, mine.to_line()).expect("write");
        assert_eq!(holder(dir.path(), "wf"), Some(mine.clone()));
        let reused = Hold {
            start: mine.start.map(|s| s.saturating_sub(1)),
            ..mine.clone()
        };
        std::fs::write(&path, reused.to_line()).expect("write");
        assert_eq!(
            holder(dir.path(), "wf"),
            None,
            "a live PID with another start"
        );
        // An older flow's hold, `PID RUN`: this PID is alive but is no supervisor.
        std::fs::write(&path, format!("{} 3", std::process::id())).expect("write");
        assert_eq!(
            holder(dir.path(), "wf"),
            None,
            "a live PID that does not supervise"
        );
    }
}

//! Runs as systemd sees them: the installed workflow read back from its unit files, a run
//! started and followed live over D-Bus, and the state of the last run read from unit
//! properties. Works without the supervisor.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

pub mod follow;
pub mod journal;
pub mod logs;
pub mod trigger;

use crate::compiler::names::{self, x_flow};
use crate::install::{InstalledFile, unit_text};
use crate::systemd::watch::{Event, unit_path};
use crate::systemd::{JobResult, Systemd, SystemdError, UnitState};
use crate::vocabulary::{AttemptResult, Outcome, RunResult};

/// A workflow as installed: read from its generated unit files, not from the YAML (which
/// may have changed since it was applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledWorkflow {
    pub name: String,
    pub source: String,
    pub tasks: Vec<TaskInfo>,
    /// The timer, when the workflow has a schedule, and the schedule as written.
    pub timer: Option<(String, String)>,
    /// What a trigger does while a run is going: `skip`, `queue` or `replace`.
    pub overlap: String,
    /// Whether the timer is `Persistent=` (`catch_up`): a run it starts at once when it is
    /// activated makes up for one missed while the machine was off.
    pub catch_up: bool,
    /// The run's deadline (`timeout`) as the unit has it, which the supervisor enforces.
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub name: String,
    pub unit: String,
    /// Names of the tasks it needs.
    pub needs: Vec<String>,
    pub when: String,
    /// Whether the unit or its workflow's slice has a `MemoryMax=`: a SIGKILL then most likely
    /// came from the kernel's OOM killer (see [`out_of_memory`]).
    pub memory_max: bool,
    /// How many times the supervisor tries it again after a failure.
    pub retries: u32,
}

impl InstalledWorkflow {
    /// Each task's index in `tasks`, by name.
    pub fn task_indices(&self) -> HashMap<&str, usize> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect()
    }

    pub fn run_unit(&self) -> String {
        names::run_unit(&self.name)
    }

    pub fn begin_unit(&self) -> String {
        names::begin_unit(&self.name)
    }

    pub fn trigger_unit(&self) -> String {
        names::trigger_unit(&self.name)
    }
}

/// Every installed workflow, by name.
pub fn installed_workflows(files: &BTreeMap<String, InstalledFile>) -> Vec<InstalledWorkflow> {
    // A set, not the sorted file names deduplicated: `flow-a-b.service` sorts between
    // `flow-a--t.service` and `flow-a.service`, so one workflow's files are not adjacent.
    let names: std::collections::BTreeSet<Cow<str>> = files
        .keys()
        .filter_map(|f| names::workflow_of_file(f))
        .collect();
    names
        .into_iter()
        .filter_map(|n| installed_workflow(files, &n))
        .collect()
}

/// One installed workflow, if its run unit is there.
pub fn installed_workflow(
    files: &BTreeMap<String, InstalledFile>,
    name: &str,
) -> Option<InstalledWorkflow> {
    let run = files.get(&names::run_unit(name))?;
    let prefix = format!("flow-{name}--");
    // Task order: as the begin unit (which pulls them in) lists them, the YAML's order.
    let begin = files.get(&names::begin_unit(name))?;
    let units: Vec<String> = unit_text::values(&begin.contents, "Unit", "Wants")
        .filter(|u| u.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    // A limit on the workflow as a whole (its slice) binds each task too.
    let slice_memory_max = files
        .get(&names::slice_unit(name))
        .is_some_and(|s| unit_text::value(&s.contents, "Slice", "MemoryMax").is_some());
    let tasks = units
        .iter()
        .filter_map(|unit| {
            let file = files.get(unit)?;
            let task = unit
                .strip_prefix(&prefix)?
                .strip_suffix(".service")?
                .to_string();
            let text = file.contents.as_str();
            let needs = unit_text::values(text, "Unit", "Requires")
                .chain(unit_text::values(text, "Unit", "Wants"))
                .filter_map(|u| {
                    u.strip_prefix(&prefix)?
                        .strip_suffix(".service")
                        .map(str::to_string)
                })
                .collect();
            let when = unit_text::value(text, x_flow::SECTION, x_flow::WHEN)
                .unwrap_or("all_success")
                .to_string();
            let memory_max =
                slice_memory_max || unit_text::value(text, "Service", "MemoryMax").is_some();
            let retries = unit_text::value(text, x_flow::SECTION, x_flow::RETRIES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Some(TaskInfo {
                name: task,
                unit: unit.clone(),
                needs,
                when,
                memory_max,
                retries,
            })
        })
        .collect();
    let timer = files.get(&names::timer_unit(name)).map(|t| {
        let x = |key| unit_text::value(&t.contents, x_flow::SECTION, key);
        let schedule = x(x_flow::CRON)
            .or(x(x_flow::CALENDAR))
            .map(str::to_string)
            .or_else(|| x(x_flow::EVERY).map(|e| format!("every {e}")))
            .unwrap_or_default();
        (names::timer_unit(name), schedule)
    });
    let catch_up = files
        .get(&names::timer_unit(name))
        .is_some_and(|t| unit_text::boolean(&t.contents, "Timer", "Persistent") == Some(true));
    Some(InstalledWorkflow {
        name: name.to_string(),
        source: run.source.clone(),
        tasks,
        timer,
        overlap: unit_text::value(&run.contents, x_flow::SECTION, x_flow::OVERLAP)
            .unwrap_or("skip")
            .to_string(),
        catch_up,
        timeout: unit_text::value(&run.contents, x_flow::SECTION, x_flow::TIMEOUT)
            .map(str::to_string),
    })
}

/// What became of a task in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Running,
    /// Being stopped (`flow cancel`, a deadline): its processes were told to end.
    Stopping,
    /// Failed so (the attempt's state), and the supervisor tries it again after a delay.
    RetryPending(Box<TaskState>),
    Succeeded,
    /// Exited with this status.
    Failed(i32),
    /// systemd could not start its command (its result: `resources` for an `env_file`
    /// that does not exist, `start-limit-hit`).
    StartFailed(String),
    Killed(i32),
    TimedOut,
    OutOfMemory,
    /// Not run: a task it needs did not succeed.
    UpstreamFailed,
    /// Not run because its condition was not met (an `on_failure` task when all succeeded).
    Skipped,
    Canceled,
    /// No record of it in the last run.
    Unknown,
}

impl TaskState {
    pub fn label(&self) -> String {
        match self {
            TaskState::Pending => "pending".into(),
            TaskState::Running => "running".into(),
            TaskState::Stopping => "stopping".into(),
            TaskState::RetryPending(failed) => format!("{}, to be tried again", failed.label()),
            TaskState::Succeeded => "succeeded".into(),
            TaskState::Failed(code) => match systemd_exit_step(*code) {
                Some(step) => format!("failed (exit {code}/{step})"),
                None => format!("failed (exit {code})"),
            },
            TaskState::StartFailed(why) => format!("failed to start ({why})"),
            TaskState::Killed(sig) => format!("failed (signal {sig})"),
            TaskState::TimedOut => "timed out".into(),
            TaskState::OutOfMemory => "failed (out of memory)".into(),
            TaskState::UpstreamFailed => "skipped (upstream failed)".into(),
            TaskState::Skipped => "skipped (not needed)".into(),
            TaskState::Canceled => "canceled".into(),
            TaskState::Unknown => "-".into(),
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            TaskState::Pending
                | TaskState::Running
                | TaskState::Stopping
                | TaskState::RetryPending(_)
        )
    }

    /// Whether the run can still count as succeeded with this task in this state.
    pub fn is_ok(&self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Skipped)
    }

    /// The short machine name, for `--json`: an attempt result's word once the task is
    /// final (see [`AttemptResult`]), or what it is waiting for.
    pub fn key(&self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Stopping => "stopping",
            TaskState::RetryPending(_) => "retry_pending",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed(_) | TaskState::StartFailed(_) => "failed",
            TaskState::Killed(_) => "killed",
            TaskState::TimedOut => "timed_out",
            TaskState::OutOfMemory => "out_of_memory",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
            TaskState::Canceled => "canceled",
            TaskState::Unknown => "unknown",
        }
    }
}

/// The step systemd failed at before the command ran, for the exit statuses it uses
/// itself (as `systemctl status` shows them: `203/EXEC`); the journal has the details.
fn systemd_exit_step(code: i32) -> Option<&'static str> {
    Some(match code {
        200 => "CHDIR",
        203 => "EXEC",
        204 => "MEMORY",
        205 => "LIMITS",
        208 => "STDIN",
        209 => "STDOUT",
        210 => "CHROOT",
        216 => "GROUP",
        217 => "USER",
        218 => "CAPABILITIES",
        219 => "CGROUP",
        222 => "STDERR",
        225 => "NETWORK",
        226 => "NAMESPACE",
        227 => "NO_NEW_PRIVILEGES",
        228 => "SECCOMP",
        233 => "RUNTIME_DIRECTORY",
        235 => "CHOWN",
        238 => "STATE_DIRECTORY",
        243 => "CREDENTIALS",
        _ => return None,
    })
}

/// A task killed by SIGKILL under a `MemoryMax=` (its own or its workflow's) was, in all
/// likelihood, killed by the kernel's OOM killer: systemd 252 does not always notice (it
/// reports `signal`, or `exit-code` 137 when a shell ran the command that was killed), so
/// flow says so itself.
pub fn out_of_memory(task: &TaskInfo, state: TaskState) -> TaskState {
    match state {
        TaskState::Killed(9) | TaskState::Failed(137) if task.memory_max => TaskState::OutOfMemory,
        other => other,
    }
}

impl TaskState {
    /// The state an attempt's outcome in the supervisor's history stands for.
    pub fn from_outcome(o: &Outcome) -> TaskState {
        match o.result {
            AttemptResult::Succeeded => TaskState::Succeeded,
            AttemptResult::Skipped => TaskState::Skipped,
            AttemptResult::TimedOut => TaskState::TimedOut,
            AttemptResult::OutOfMemory => TaskState::OutOfMemory,
            AttemptResult::Canceled => TaskState::Canceled,
            AttemptResult::UpstreamFailed => TaskState::UpstreamFailed,
            AttemptResult::Killed => TaskState::Killed(o.signal.unwrap_or(0)),
            AttemptResult::Failed => match &o.start_error {
                Some(why) => TaskState::StartFailed(why.clone()),
                None => TaskState::Failed(o.exit_code.unwrap_or(1)),
            },
        }
    }

    /// How the task's last attempt ended, as the history words it: `None` while there is
    /// none that ended (pending, running, unknown). A task waiting for a retry: the
    /// attempt that failed.
    pub fn outcome(&self) -> Option<Outcome> {
        Some(match self {
            TaskState::Pending | TaskState::Running | TaskState::Stopping | TaskState::Unknown => {
                return None;
            }
            TaskState::RetryPending(failed) => return failed.outcome(),
            TaskState::Succeeded => Outcome::succeeded(),
            TaskState::Failed(code) => Outcome::exited(*code),
            TaskState::StartFailed(why) => Outcome::start_failed(why),
            TaskState::Killed(sig) => Outcome::killed(*sig),
            TaskState::TimedOut => Outcome::of(AttemptResult::TimedOut),
            TaskState::OutOfMemory => Outcome::of(AttemptResult::OutOfMemory),
            TaskState::UpstreamFailed => Outcome::of(AttemptResult::UpstreamFailed),
            TaskState::Skipped => Outcome::of(AttemptResult::Skipped),
            TaskState::Canceled => Outcome::of(AttemptResult::Canceled),
        })
    }
}

/// Where a run shown by `flow list`, `flow status` or `flow run --wait` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// No run has started.
    NotRun,
    Going,
    Ended(RunResult),
    /// What is known does not decide it (systemd could not be asked, or a task's outcome
    /// is not known while all the others succeeded).
    Unknown,
}

/// A run's progress from its tasks' states, where the history does not have its result:
/// the one place that decides it. A task with no record (`Unknown`) beside tasks that
/// succeeded leaves the result unknown rather than claim a success; beside a task that
/// did not succeed, the run did not either.
pub fn progress(tasks: &[TaskRun]) -> Progress {
    let known: Vec<&TaskState> = tasks
        .iter()
        .map(|t| &t.state)
        .filter(|s| **s != TaskState::Unknown)
        .collect();
    if known.is_empty() {
        Progress::NotRun
    } else if known.iter().any(|s| !s.is_final()) {
        Progress::Going
    } else if known.iter().any(|s| **s == TaskState::Canceled) {
        Progress::Ended(RunResult::Canceled)
    } else if known.iter().any(|s| !s.is_ok()) {
        Progress::Ended(RunResult::Failed)
    } else if known.len() < tasks.len() {
        Progress::Unknown
    } else {
        Progress::Ended(RunResult::Succeeded)
    }
}

/// A task's state from its unit's properties after its start job ended (read as the
/// supervisor reads them: [`Outcome::of_unit`]); `Unknown` when the unit has no result.
pub fn finished_state(job: &JobResult, unit: &UnitState) -> TaskState {
    let settled_by_job = matches!(
        job,
        JobResult::Dependency | JobResult::Canceled | JobResult::Skipped | JobResult::Timeout
    );
    if unit.result.is_none() && !settled_by_job {
        return TaskState::Unknown;
    }
    TaskState::from_outcome(&Outcome::of_unit(job, unit))
}

/// One task's record in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    pub name: String,
    pub state: TaskState,
    pub started: Option<Instant>,
    pub duration: Option<Duration>,
    pub invocation_id: Option<String>,
}

/// Start a run and follow it until every task reached a final state; `progress` is called
/// at each change with the task's index. A run already going is joined, not restarted.
///
/// Everything comes from the manager's signals: a call to systemd for each task while the
/// run goes would keep PID 1 busy between one task and the next.
/// How a followed run is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Start the run unit now.
    RunUnit,
    /// Start the trigger unit, which starts the run unit once the run that is going ends
    /// (`overlap: queue`) or is canceled (`replace`). What happens before the begin unit
    /// starts again belongs to the run before and is not followed.
    Trigger,
}

pub fn start_and_follow(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    start: Start,
    mut progress: impl FnMut(usize, &TaskRun, Option<Duration>),
) -> Result<Followed, SystemdError> {
    let mut runs = pending(wf);
    // What the signals said of each task's unit in this run.
    let mut seen: Vec<UnitState> = vec![UnitState::default(); wf.tasks.len()];
    let paths: HashMap<String, usize> = wf
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (unit_path(&t.unit), i))
        .collect();
    let units: HashMap<&str, usize> = wf
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.unit.as_str(), i))
        .collect();
    let mut watch = sd.watch()?;
    let run_unit = wf.run_unit();
    let begin_path = unit_path(&wf.begin_unit());
    let trigger_unit = wf.trigger_unit();
    let mut begun = start == Start::RunUnit;
    start_run(sd, wf, start)?;
    while let Some(event) = watch.next_event() {
        if !begun {
            if let Event::JobRemoved { unit, result } = &event
                && *unit == trigger_unit
                && *result != JobResult::Done
            {
                // The queued trigger was stopped (`flow cancel`) or failed: no run of it.
                return Ok(Followed {
                    tasks: runs,
                    run: None,
                    not_begun: Some(result.to_string()),
                    result: None,
                    lost: false,
                });
            }
            begun = matches!(&event, Event::Changed { unit_path, changes }
                if *unit_path == begin_path
                    && matches!(changes.active_state.as_deref(), Some("activating" | "active")));
            continue;
        }
        match event {
            Event::Changed { unit_path, changes } => {
                let Some(&i) = paths.get(&unit_path) else {
                    continue;
                };
                let s = &mut seen[i];
                if let Some(v) = changes.invocation_id {
                    s.invocation_id = Some(v);
                }
                if let Some(v) = changes.result {
                    s.result = Some(v);
                }
                if let Some(v) = changes.exec_main_code {
                    s.exec_main_code = v;
                }
                if let Some(v) = changes.exec_main_status {
                    s.exec_main_status = v;
                }
                if changes.active_state.as_deref() == Some("activating")
                    && runs[i].state == TaskState::Pending
                {
                    runs[i].state = TaskState::Running;
                    runs[i].started = Some(Instant::now());
                    progress(i, &runs[i], None);
                }
            }
            Event::JobRemoved { unit, result } => {
                if unit == run_unit {
                    break;
                }
                let Some(&i) = units.get(unit.as_str()) else {
                    continue;
                };
                if seen[i].result.is_none() && matches!(result, JobResult::Done | JobResult::Failed)
                {
                    // No signal said how it ended (not expected from systemd 252): ask.
                    let state = sd.unit_state(&unit)?;
                    seen[i].result = state.result;
                    seen[i].exec_main_code = state.exec_main_code;
                    seen[i].exec_main_status = state.exec_main_status;
                    seen[i].invocation_id = seen[i].invocation_id.take().or(state.invocation_id);
                }
                runs[i].state = out_of_memory(&wf.tasks[i], finished_state(&result, &seen[i]));
                runs[i].duration = runs[i].started.map(|s| s.elapsed());
                if runs[i].state != TaskState::UpstreamFailed
                    && runs[i].state != TaskState::Canceled
                {
                    runs[i].invocation_id = seen[i].invocation_id.clone();
                }
                progress(i, &runs[i], None);
            }
        }
    }
    Ok(Followed {
        tasks: runs,
        run: None,
        not_begun: None,
        result: None,
        lost: false,
    })
}

/// What a followed run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub tasks: Vec<TaskRun>,
    /// The run's number in the supervisor's history, when the supervisor followed it.
    pub run: Option<i64>,
    /// Set when a queued run never began: the result of its trigger unit's job
    /// (`canceled` when `flow cancel` stopped the trigger while it waited).
    pub not_begun: Option<String>,
    /// The run's result in the history (`succeeded`, `failed`, `canceled`, `timed_out`),
    /// when the supervisor told it.
    pub result: Option<String>,
    /// The supervisor stopped telling before the run's end: what systemd knew then.
    pub lost: bool,
}

/// Starts a run and follows it through the supervisor (see [`follow`]), which tells of
/// retries too: the run is over when its last retry is. `progress` is called at each
/// change with the task's index and, for a failed attempt that will be tried again, the
/// delay. When the supervisor stops telling before the end, the rest is read from
/// systemd, as [`last_run`] does.
pub fn start_and_follow_supervised(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    start: Start,
    user: bool,
    runtime: &Path,
    mut client: follow::Client,
    mut progress: impl FnMut(usize, &TaskRun, Option<Duration>),
) -> Result<Followed, LastRunError> {
    let mut runs = pending(wf);
    let index = wf.task_indices();
    // Each task's attempts told so far: a rejoined supervisor tells them all again.
    let mut told = vec![0u32; runs.len()];
    start_run(sd, wf, start)?;
    let mut run = None;
    // Set once rejoined: an end without a result then means the new supervisor does not
    // know the run's end, and systemd is asked.
    let mut rejoined = false;
    loop {
        let ev = match client.next_event() {
            Some(ev) => Some(ev),
            // The supervisor went away after the run began (restarted, upgraded): its
            // successor carries the run on, and is followed once it answers.
            None => run
                .and_then(|id| {
                    let unit = client.supervisor_unit().map(str::to_string);
                    let since = Instant::now();
                    follow::Client::rejoin(runtime, &wf.name, id, REJOIN_WAIT, || {
                        supervisor_coming_back(sd, unit.as_deref(), since.elapsed())
                    })
                })
                .and_then(|c| {
                    client = c;
                    rejoined = true;
                    client.next_event()
                }),
        };
        let ev = match ev {
            Some(follow::Event::End {
                run: Some(_),
                result: None,
            }) if rejoined => None,
            ev => ev,
        };
        let Some(ev) = ev else {
            // The supervisor went away: what systemd knows.
            wait_for_run_unit(sd, wf)?;
            let last = last_run(sd, wf, user)?;
            for (t, l) in runs.iter_mut().zip(last) {
                if !t.state.is_final() || l.state.is_final() {
                    *t = l;
                }
            }
            return Ok(Followed {
                tasks: runs,
                run,
                not_begun: None,
                result: None,
                lost: true,
            });
        };
        match ev {
            follow::Event::Following => {}
            follow::Event::Run { id } => run = Some(id),
            follow::Event::Running { task } => {
                let Some(&i) = index.get(task.as_str()) else {
                    continue;
                };
                runs[i].state = TaskState::Running;
                runs[i].started = Some(Instant::now());
                runs[i].duration = None;
                progress(i, &runs[i], None);
            }
            follow::Event::Attempt {
                task,
                attempt,
                outcome,
                invocation_id,
                started_us,
                ended_us,
                retry_in_ms,
            } => {
                let Some(&i) = index.get(task.as_str()) else {
                    continue;
                };
                if attempt <= told[i] && attempt > 0 {
                    continue;
                }
                told[i] = told[i].max(attempt);
                let t = &mut runs[i];
                t.state = out_of_memory(&wf.tasks[i], TaskState::from_outcome(&outcome));
                // An attempt without an activation (a retry canceled before it began, a
                // task whose upstream failed) took no time: none is shown, as in history.
                t.duration = match (started_us, ended_us) {
                    (Some(a), Some(b)) if b >= a => Some(Duration::from_micros((b - a) as u64)),
                    (None, _) => None,
                    _ => t.started.map(|s| s.elapsed()),
                };
                t.invocation_id = invocation_id;
                progress(i, &runs[i], retry_in_ms.map(Duration::from_millis));
            }
            follow::Event::End { run: None, result } => {
                if result.is_some() {
                    // The queued trigger ended before it started the run.
                    return Ok(Followed {
                        tasks: runs,
                        run: None,
                        not_begun: result,
                        result: None,
                        lost: false,
                    });
                }
                // systemd's part ended and no run began: what systemd knows.
                let last = last_run(sd, wf, user)?;
                return Ok(Followed {
                    tasks: last,
                    run: None,
                    not_begun: None,
                    result: None,
                    lost: false,
                });
            }
            follow::Event::End { run: id, result } => {
                return Ok(Followed {
                    tasks: runs,
                    run: id,
                    not_begun: None,
                    result,
                    lost: false,
                });
            }
        }
    }
}

/// How long `flow run --wait` waits for a supervisor that went away mid-run to answer
/// again: a restart (of the unit, or by a package upgrade) takes about a second.
const REJOIN_WAIT: Duration = Duration::from_secs(30);

/// Whether a supervisor that went away is coming back: its unit restarts (a job, or
/// `activating` for `Restart=`) or is up again. One that is not in a unit (started from a
/// shell) gets a few seconds.
fn supervisor_coming_back(sd: &Systemd, unit: Option<&str>, waited: Duration) -> bool {
    let Some(unit) = unit else {
        return waited < Duration::from_secs(3);
    };
    sd.list_units_by_patterns(&[unit]).is_ok_and(|units| {
        units.iter().any(|u| {
            u.job.is_some()
                || matches!(
                    u.active_state.as_str(),
                    "activating" | "active" | "reloading"
                )
        })
    })
}

/// Waits until the workflow's run unit has no job and is not activating.
fn wait_for_run_unit(sd: &Systemd, wf: &InstalledWorkflow) -> Result<(), SystemdError> {
    let run_unit = wf.run_unit();
    let mut watch = sd.watch()?;
    let going = |sd: &Systemd| -> Result<bool, SystemdError> {
        Ok(sd
            .list_units_by_patterns(&[&run_unit])?
            .iter()
            .any(|u| u.job.is_some() || u.active_state == "activating"))
    };
    if !going(sd)? {
        return Ok(());
    }
    while let Some(event) = watch.next_event() {
        if matches!(&event, Event::JobRemoved { unit, .. } if *unit == run_unit) && !going(sd)? {
            break;
        }
    }
    Ok(())
}

/// Every task pending.
fn pending(wf: &InstalledWorkflow) -> Vec<TaskRun> {
    wf.tasks
        .iter()
        .map(|t| TaskRun {
            name: t.name.clone(),
            state: TaskState::Pending,
            started: None,
            duration: None,
            invocation_id: None,
        })
        .collect()
}

/// Queues the start of a run (see [`Start`]), pinning the run unit so that it stays loaded.
fn start_run(sd: &Systemd, wf: &InstalledWorkflow, start: Start) -> Result<(), SystemdError> {
    match start {
        Start::RunUnit => sd.start_unit_no_wait(&wf.run_unit()),
        Start::Trigger => {
            sd.ref_unit(&wf.run_unit())?;
            sd.queue_start(&wf.trigger_unit())
        }
    }
}

/// Why the last run could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LastRunError {
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error("cannot read the journal (journalctl): {0}\n  {hint}", hint = journal_hint(.0))]
    Journal(std::io::Error),
}

/// How to get past a journal that could not be read.
pub fn journal_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "the system's messages are for root and the systemd-journal group: run as \
             root, or join the group (usermod -aG systemd-journal USER, then log in again); \
             for your own workflows (--user), a persistent journal (`mkdir -p \
             /var/log/journal`, then restart systemd-journald) gives you your own messages"
        }
        _ => "is systemd installed?",
    }
}

/// The state of each task in the current or last run, from systemd alone (see
/// [`seen_run`]).
pub fn last_run(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    user: bool,
) -> Result<Vec<TaskRun>, LastRunError> {
    seen_run(sd, wf, user).map(|r| r.tasks)
}

/// The current or last run as systemd tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRun {
    /// Realtime µs of its begin unit's start; `None`: none found.
    pub begun_us: Option<u64>,
    /// Realtime µs of its last task's end, once every task is final.
    pub ended_us: Option<u64>,
    pub tasks: Vec<TaskRun>,
}

/// The current or last run, from systemd alone (works without the supervisor): what is
/// running now from the manager, what finished from the journal (see [`journal`]: a
/// finished unit may already be unloaded). `user`: the user's manager.
pub fn seen_run(sd: &Systemd, wf: &InstalledWorkflow, user: bool) -> Result<SeenRun, LastRunError> {
    // One call for the live state of every loaded unit of the workflow.
    let loaded = sd.list_units_by_patterns(&[&format!("flow-{}*", wf.name)])?;
    let live = |unit: &str| loaded.iter().find(|u| u.name == unit);
    let run_unit = wf.run_unit();
    let running =
        live(&run_unit).is_some_and(|u| u.job.is_some() || u.active_state == "activating");
    let units: Vec<String> = wf.tasks.iter().map(|t| t.unit.clone()).collect();
    let journal =
        journal::last_run(user, &wf.begin_unit(), &units).map_err(LastRunError::Journal)?;
    let mut out = Vec::with_capacity(wf.tasks.len());
    for t in &wf.tasks {
        let rec = journal.tasks.get(&t.unit);
        let active = live(&t.unit).map(|u| u.active_state.as_str());
        let queued = live(&t.unit).is_some_and(|u| u.job.is_some());
        let state = match (active, rec.and_then(|r| r.state.clone())) {
            (Some("activating"), _) => TaskState::Running,
            (Some("deactivating"), _) => TaskState::Stopping,
            // A start job queued again after an end in this run (a retry): waiting.
            (_, Some(_)) if queued && running => TaskState::Pending,
            (_, Some(state)) => out_of_memory(t, state),
            (_, None) if running => TaskState::Pending,
            // The run ended and this task never got a start job's end: it was not reached
            // (the run was stopped), or the journal lost the line.
            (_, None) if journal.begun.is_some() => TaskState::Canceled,
            (_, None) => TaskState::Unknown,
        };
        let duration = rec.and_then(|r| match (r.started, r.ended) {
            (Some(a), Some(b)) if b >= a => Some(Duration::from_micros(b - a)),
            _ => None,
        });
        out.push(TaskRun {
            name: t.name.clone(),
            state,
            started: None,
            duration,
            invocation_id: rec.and_then(|r| r.invocation_id.clone()),
        });
    }
    if let Some(hold) = trigger::holder(&trigger::runtime_dir(user), &wf.name) {
        let tried = hold.run.and_then(|run| attempts_made(user, run));
        while_held(&mut out, wf, tried.as_ref());
    }
    let over = !running && out.iter().all(|t| t.state.is_final());
    let ended_us = journal
        .tasks
        .values()
        .filter_map(|r| r.ended)
        .max()
        .filter(|_| over && journal.begun.is_some());
    Ok(SeenRun {
        begun_us: journal.begun,
        ended_us,
        tasks: out,
    })
}

/// How many times each task of run `run` ran, from the history of the system's (or the
/// user's) supervisor; `None` when it cannot be read.
fn attempts_made(user: bool, run: i64) -> Option<HashMap<String, u32>> {
    let store = crate::store::Store::open_ro(&crate::store::default_path(user)).ok()?;
    let mut tried = HashMap::new();
    for a in store.attempts(run).ok()? {
        if a.invocation_id.is_some() {
            *tried.entry(a.task).or_insert(0) += 1;
        }
    }
    Some(tried)
}

/// A run the supervisor holds open to retry tasks is going, though systemd's part of it
/// ended: a failed task with tries left (per `tried`, the history; without it, any with
/// retries) waits to be tried again, and what needs it, which systemd skipped, waits too.
fn while_held(out: &mut [TaskRun], wf: &InstalledWorkflow, tried: Option<&HashMap<String, u32>>) {
    for (r, t) in out.iter_mut().zip(&wf.tasks) {
        let failed = matches!(
            r.state,
            TaskState::Failed(_)
                | TaskState::StartFailed(_)
                | TaskState::Killed(_)
                | TaskState::TimedOut
                | TaskState::OutOfMemory
        );
        let left = tried.is_none_or(|m| m.get(&t.name).copied().unwrap_or(0) <= t.retries);
        if failed && t.retries > 0 && left {
            r.state = TaskState::RetryPending(Box::new(r.state.clone()));
        }
    }
    // Downstream of a task still to come, through any number of edges: one walk along
    // the edges from each task still to come.
    let index = wf.task_indices();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); wf.tasks.len()];
    for (i, t) in wf.tasks.iter().enumerate() {
        for j in t.needs.iter().filter_map(|n| index.get(n.as_str())) {
            dependents[*j].push(i);
        }
    }
    let mut to_visit: Vec<usize> = (0..out.len())
        .filter(|&i| {
            matches!(
                out[i].state,
                TaskState::RetryPending(_) | TaskState::Pending
            )
        })
        .collect();
    while let Some(j) = to_visit.pop() {
        for &i in &dependents[j] {
            if matches!(
                out[i].state,
                TaskState::UpstreamFailed | TaskState::Skipped | TaskState::Canceled
            ) {
                out[i].state = TaskState::Pending;
                out[i].duration = None;
                out[i].invocation_id = None;
                to_visit.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, needs: &[&str], retries: u32) -> TaskInfo {
        TaskInfo {
            name: name.into(),
            unit: names::task_unit("wf", name),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            when: "all_success".into(),
            memory_max: false,
            retries,
        }
    }

    fn run(state: TaskState) -> TaskRun {
        TaskRun {
            name: String::new(),
            state,
            started: None,
            duration: Some(Duration::from_millis(5)),
            invocation_id: Some("i".into()),
        }
    }

    /// Listed out of order on purpose (`c` before what it needs), as YAML may list them.
    fn held_run() -> (InstalledWorkflow, Vec<TaskRun>) {
        let wf = InstalledWorkflow {
            name: "wf".into(),
            source: String::new(),
            tasks: vec![
                task("c", &["b"], 0),
                task("a", &[], 2),
                task("b", &["a"], 0),
                task("other", &[], 0),
            ],
            timer: None,
            overlap: "skip".into(),
            catch_up: false,
            timeout: None,
        };
        let out = vec![
            run(TaskState::UpstreamFailed),
            run(TaskState::Failed(1)),
            run(TaskState::UpstreamFailed),
            run(TaskState::Succeeded),
        ];
        (wf, out)
    }

    #[test]
    fn a_held_run_waits_for_a_retry_and_what_follows_it() {
        let (wf, mut out) = held_run();
        let tried = HashMap::from([("a".to_string(), 1)]);
        while_held(&mut out, &wf, Some(&tried));
        let states: Vec<&str> = out.iter().map(|r| r.state.key()).collect();
        assert_eq!(states, ["pending", "retry_pending", "pending", "succeeded"]);
        assert_eq!(out[1].state.label(), "failed (exit 1), to be tried again");
        assert_eq!(out[0].invocation_id, None);
        // A start that failed before the command ran waits for its retry the same way.
        let (wf, mut out) = held_run();
        out[1].state = TaskState::StartFailed("resources".into());
        while_held(&mut out, &wf, Some(&tried));
        assert_eq!(
            out[1].state.label(),
            "failed to start (resources), to be tried again"
        );
        assert_eq!(out[2].state.key(), "pending");
    }

    #[test]
    fn a_task_out_of_tries_stays_failed_in_a_held_run() {
        let (wf, mut out) = held_run();
        let tried = HashMap::from([("a".to_string(), 3)]);
        while_held(&mut out, &wf, Some(&tried));
        let states: Vec<&str> = out.iter().map(|r| r.state.key()).collect();
        assert_eq!(
            states,
            ["upstream_failed", "failed", "upstream_failed", "succeeded"]
        );
    }

    /// `flow list`, `flow status` and `flow run --wait` decide a run's result here: a task
    /// with no record beside tasks that succeeded leaves it unknown.
    #[test]
    fn a_runs_progress_is_decided_once() {
        let p = |states: Vec<TaskState>| progress(&states.into_iter().map(run).collect::<Vec<_>>());
        use TaskState::*;
        assert_eq!(p(vec![]), Progress::NotRun);
        assert_eq!(p(vec![Unknown, Unknown]), Progress::NotRun);
        assert_eq!(p(vec![Succeeded, Running]), Progress::Going);
        assert_eq!(
            p(vec![Succeeded, Skipped]),
            Progress::Ended(RunResult::Succeeded)
        );
        assert_eq!(p(vec![Succeeded, Unknown]), Progress::Unknown);
        assert_eq!(
            p(vec![Failed(1), Unknown]),
            Progress::Ended(RunResult::Failed)
        );
        assert_eq!(
            p(vec![Failed(1), Canceled]),
            Progress::Ended(RunResult::Canceled)
        );
        assert_eq!(
            p(vec![Killed(9), UpstreamFailed]),
            Progress::Ended(RunResult::Failed)
        );
    }

    #[test]
    fn labels_name_the_step_systemd_failed_at_and_nothing_else() {
        assert_eq!(TaskState::Failed(217).label(), "failed (exit 217/USER)");
        assert_eq!(TaskState::Failed(203).label(), "failed (exit 203/EXEC)");
        assert_eq!(TaskState::Failed(3).label(), "failed (exit 3)");
        assert_eq!(TaskState::Failed(255).label(), "failed (exit 255)");
        assert_eq!(
            TaskState::StartFailed("resources".into()).label(),
            "failed to start (resources)"
        );
        assert_eq!(
            TaskState::from_outcome(&Outcome::start_failed("resources")).key(),
            "failed"
        );
    }
}

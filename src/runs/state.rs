//! What became of a task in a run, as systemd tells it, and a shown run's result.

use super::*;

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
            // A final state's word is its outcome's.
            final_state => final_state
                .outcome()
                .map_or("unknown", |o| o.result.as_str()),
        }
    }
}

/// The step systemd failed at before the command ran, for the exit statuses it uses
/// itself (as `systemctl status` shows them: `203/EXEC`); the journal has the details.
pub(crate) fn systemd_exit_step(code: i32) -> Option<&'static str> {
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

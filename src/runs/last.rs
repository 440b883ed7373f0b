//! The last run as systemd remembers it: unit properties and the manager's journal
//! messages, completed by the history where it has the run.

use super::*;

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
pub(crate) fn attempts_made(user: bool, run: i64) -> Option<HashMap<String, u32>> {
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
pub(crate) fn while_held(
    out: &mut [TaskRun],
    wf: &InstalledWorkflow,
    tried: Option<&HashMap<String, u32>>,
) {
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

//! Starting a run and following it live: over D-Bus alone, or through the supervisor.

use super::*;

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
pub(crate) const REJOIN_WAIT: Duration = Duration::from_secs(30);

/// Whether a supervisor that went away is coming back: its unit restarts (a job, or
/// `activating` for `Restart=`) or is up again. One that is not in a unit (started from a
/// shell) gets a few seconds.
pub(crate) fn supervisor_coming_back(sd: &Systemd, unit: Option<&str>, waited: Duration) -> bool {
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
pub(crate) fn wait_for_run_unit(sd: &Systemd, wf: &InstalledWorkflow) -> Result<(), SystemdError> {
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
pub(crate) fn pending(wf: &InstalledWorkflow) -> Vec<TaskRun> {
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
pub(crate) fn start_run(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    start: Start,
) -> Result<(), SystemdError> {
    match start {
        Start::RunUnit => sd.start_unit_no_wait(&wf.run_unit()),
        Start::Trigger => {
            sd.ref_unit(&wf.run_unit())?;
            sd.queue_start(&wf.trigger_unit())
        }
    }
}

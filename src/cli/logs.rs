//! `flow logs NAME [RUN]`: the journal lines of the last run's tasks (read through
//! systemd's journal, `-f` to follow), or with RUN exactly that run's, by the activations
//! the history recorded. With `--json`, one object per line, the same for both.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use super::db::{self, DbArgs};
use super::exit::{CliError, Exit};
use super::installed::{Where, sys};
use super::output::{clock, json_text, timestamp};
use crate::runs::{self, InstalledWorkflow};
use crate::store::{Attempt, Store};

/// Which lines `flow logs` prints.
pub struct LogsWanted<'a> {
    pub task: Option<&'a str>,
    /// Only this attempt of the task (with RUN).
    pub attempt: Option<u32>,
    /// Only the last this many.
    pub lines: Option<usize>,
    /// Then every new line as it comes (without RUN).
    pub follow: bool,
}

pub fn logs(
    name: &str,
    run: Option<i64>,
    wanted: LogsWanted,
    w: &Where,
    db: &DbArgs,
) -> Result<Exit, CliError> {
    match run {
        Some(run) => recorded(name, run, &wanted, w, db),
        None => last(name, &wanted, w, db),
    }
}

/// `flow logs NAME [--task T] [-f]`: the journal lines of the last run's tasks.
fn last(name: &str, wanted: &LogsWanted, w: &Where, db: &DbArgs) -> Result<Exit, CliError> {
    let LogsWanted {
        task,
        follow,
        lines,
        ..
    } = *wanted;
    let wf = w.workflow(name)?;
    if let Some(t) = task
        && !wf.tasks.iter().any(|x| x.name == t)
    {
        return Err(CliError::Invalid(format!(
            "workflow `{name}` has no task `{t}`"
        )));
    }
    let tasks = runs::logs::Tasks::new(
        name,
        wf.tasks
            .iter()
            .map(|t| t.name.as_str())
            .filter(|t| task.is_none_or(|want| *t == want)),
        w.user,
    );
    // The last run's lines: every line of its tasks since it began (retries included).
    // Reading its start synced the journal. With `-f`, then what comes, so that a run
    // followed after it began shows from its beginning.
    let units: Vec<String> = wf.tasks.iter().map(|t| t.unit.clone()).collect();
    let last = runs::journal::last_run(w.user, &wf.begin_unit(), &units)
        .map_err(|e| sys(runs::LastRunError::Journal(e)))?;
    // A run that is starting or going right now, as systemd has it: journald may not have
    // its start yet (`flow run NAME; flow logs NAME -f` would follow the run before).
    let begun = match starting_now(&wf, w) {
        Some(Starting::Began(us)) => Some(us),
        Some(Starting::Queued) if follow => Some(crate::store::now_us() as u64),
        _ => last.begun,
    };
    let select = match (follow, begun) {
        (true, begun) => runs::logs::Select::Follow(begun),
        (false, Some(begun)) => runs::logs::Select::Since(begun),
        (false, None) => {
            if !w.json {
                println!("No logs: no run of {name} has started yet.");
            }
            return Ok(Exit::Success);
        }
    };
    let mut place = Place::Looked {
        history: w.json.then(|| Store::open_ro(&db.path()).ok()).flatten(),
        workflow: name,
        known: HashMap::new(),
    };
    print_lines(&tasks, &select, lines, w.json, &mut place)
}

enum Starting {
    /// The run going began at this realtime µs (its begin unit's start).
    Began(u64),
    /// A run was asked for and has not begun yet.
    Queued,
}

/// A run of `wf` starting or going now, from its begin and run units' state; `None`
/// when none is (or systemd cannot be asked).
fn starting_now(wf: &InstalledWorkflow, w: &Where) -> Option<Starting> {
    let sd = w.connect().ok()?;
    let begin = sd.unit_state(&wf.begin_unit()).ok()?;
    if matches!(begin.active_state.as_str(), "active" | "activating") {
        return begin.inactive_exit_timestamp.map(Starting::Began);
    }
    let run = sd.list_units_by_patterns(&[&wf.run_unit()]).ok()?;
    run.iter()
        .any(|u| u.name == wf.run_unit() && u.job.is_some())
        .then_some(Starting::Queued)
}

/// `logs NAME RUN [--task T] [--attempt N]`: the exact lines of each attempt, by
/// InvocationID.
fn recorded(
    name: &str,
    run: i64,
    wanted: &LogsWanted,
    w: &Where,
    db: &DbArgs,
) -> Result<Exit, CliError> {
    let LogsWanted {
        task,
        attempt,
        lines,
        ..
    } = *wanted;
    let s = db.open()?;
    let r = db::find_run(&s, name, Some(run), db.user)?;
    let all = s
        .attempts(r.id)
        .map_err(|e| CliError::System(e.to_string()))?;
    if let Some(t) = task
        && r.result.is_some()
        && !all.iter().any(|a| a.task == t)
    {
        // Every task of an ended run has a record, run or not: this name is not one.
        let mut known: Vec<&str> = all.iter().map(|a| a.task.as_str()).collect();
        known.sort_unstable();
        known.dedup();
        return Err(CliError::Invalid(format!(
            "run {run} of `{name}` has no task `{t}`; its tasks: {}",
            known.join(", ")
        )));
    }
    let attempts: Vec<Attempt> = all
        .into_iter()
        .filter(|a| task.is_none_or(|t| a.task == t))
        .filter(|a| attempt.is_none_or(|n| a.attempt == n))
        .filter(|a| a.invocation_id.is_some())
        .collect();
    if attempts.is_empty() {
        if !w.json {
            println!("No logs: no matching attempt ran in run {run} of {name}.");
        }
        return Ok(Exit::Success);
    }
    let mut names: Vec<&str> = attempts.iter().map(|a| a.task.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let tasks = runs::logs::Tasks::new(name, names, w.user);
    // From a little before the run began (the manager's "Starting" message of its first
    // task comes first) to a while after it ended (lines still in flight).
    let us = |v: i64| u64::try_from(v).unwrap_or(0);
    let ids: HashMap<String, u32> = attempts
        .iter()
        .filter_map(|a| Some((a.invocation_id.clone()?, a.attempt)))
        .collect();
    let select = runs::logs::Select::Activations {
        since: us(r.started_us).saturating_sub(2_000_000),
        until: r.ended_us.map(|e| us(e) + 60_000_000),
        ids: ids.keys().cloned().collect(),
    };
    runs::journal::sync();
    let mut place = Place::Recorded {
        workflow: name,
        run,
        attempts: ids,
    };
    print_lines(&tasks, &select, lines, w.json, &mut place)
}

/// One line of `flow logs --json` (logs.json).
#[derive(Debug, Serialize)]
struct LineJson<'a> {
    time: Option<String>,
    workflow: &'a str,
    run: Option<i64>,
    task: &'a str,
    attempt: Option<u32>,
    invocation_id: Option<&'a str>,
    priority: Option<u8>,
    message: &'a str,
}

/// The run and attempt a line belongs to, for `--json`.
enum Place<'a> {
    /// A recorded run's lines: its attempts by activation.
    Recorded {
        workflow: &'a str,
        run: i64,
        attempts: HashMap<String, u32>,
    },
    /// The last run's (and with `-f` the next runs') lines: looked up in the history, when
    /// there is one, by activation.
    Looked {
        history: Option<Store>,
        workflow: &'a str,
        known: HashMap<String, (Option<i64>, Option<u32>)>,
    },
}

impl Place<'_> {
    fn workflow(&self) -> &str {
        match self {
            Place::Recorded { workflow, .. } | Place::Looked { workflow, .. } => workflow,
        }
    }

    /// The run and attempt of a line of `task` from activation `id`.
    fn of(&mut self, task: &str, id: Option<&str>) -> (Option<i64>, Option<u32>) {
        match self {
            Place::Recorded { run, attempts, .. } => {
                (Some(*run), id.and_then(|id| attempts.get(id).copied()))
            }
            Place::Looked {
                history: Some(history),
                workflow,
                known,
            } => {
                let Some(id) = id else {
                    return (None, None);
                };
                if let Some(place) = known.get(id) {
                    return *place;
                }
                let place = locate(history, workflow, task, id);
                known.insert(id.to_string(), place);
                place
            }
            Place::Looked { history: None, .. } => (None, None),
        }
    }
}

/// An activation's run and attempt in the history: recorded once it ended; while it runs,
/// the workflow's run going and the attempt after those of the task recorded so far.
fn locate(history: &Store, workflow: &str, task: &str, id: &str) -> (Option<i64>, Option<u32>) {
    if let Ok(Some((run, attempt))) = history.attempt_of_invocation(id) {
        return (Some(run), Some(attempt));
    }
    let Ok(Some(run)) = history.going_run(workflow) else {
        return (None, None);
    };
    let tried = history
        .attempts(run.id)
        .map(|a| a.iter().filter(|a| a.task == task).count() as u32 + 1)
        .ok();
    (Some(run.id), tried)
}

/// Print the selected lines as `time task | message`, or with `json` one object per line.
/// With `lines`, only the last that many of those there are; when following, then every
/// new one.
fn print_lines(
    tasks: &runs::logs::Tasks,
    select: &runs::logs::Select,
    lines: Option<usize>,
    json: bool,
    place: &mut Place,
) -> Result<Exit, CliError> {
    use runs::logs::{Select, Tail};
    let journalctl = |e| CliError::io("cannot run journalctl (is systemd installed?)", e);
    let mut out = std::io::stdout().lock();
    let mut print = |line: runs::logs::Line| {
        if json {
            let (run, attempt) = place.of(&line.task, line.invocation_id.as_deref());
            let v = LineJson {
                time: timestamp(line.time_us),
                workflow: place.workflow(),
                run,
                task: &line.task,
                attempt,
                invocation_id: line.invocation_id.as_deref(),
                priority: line.priority,
                message: &line.message,
            };
            writeln!(out, "{}", json_text(&v)).is_ok()
        } else {
            writeln!(
                out,
                "{} {} | {}",
                clock(line.time_us),
                line.task,
                line.shown()
            )
            .is_ok()
        }
    };
    let Some(keep) = lines else {
        runs::logs::read(tasks, select, print).map_err(journalctl)?;
        return Ok(Exit::Success);
    };
    // The lines there are, read to their end (following from the start would never end),
    // keeping the last ones; then, following, what comes after the last entry read.
    let (backlog, follow) = match select {
        Select::Follow(Some(since)) => (Select::Since(*since), true),
        Select::Follow(None) | Select::FollowAfter(_) => {
            runs::logs::read(tasks, select, print).map_err(journalctl)?;
            return Ok(Exit::Success);
        }
        other => (other.clone(), false),
    };
    let mut tail = Tail::new(keep);
    let cursor = runs::logs::read(tasks, &backlog, |l| {
        tail.push(l);
        true
    })
    .map_err(journalctl)?;
    if tail.earlier > 0 && !json {
        let _ = print_earlier(tail.earlier);
    }
    for line in tail.lines {
        if !print(line) {
            return Ok(Exit::Success);
        }
    }
    if follow {
        let after = match cursor {
            Some(c) => Select::FollowAfter(c),
            // Nothing in the journal since the run began: all of it is new.
            None => select.clone(),
        };
        runs::logs::read(tasks, &after, print).map_err(journalctl)?;
    }
    Ok(Exit::Success)
}

/// The note above the last lines: how many were left out.
fn print_earlier(n: usize) -> std::io::Result<()> {
    let plural = if n == 1 { "line" } else { "lines" };
    writeln!(
        std::io::stdout(),
        "… {n} earlier {plural} not shown (without --lines, `flow logs` prints them all)"
    )
}

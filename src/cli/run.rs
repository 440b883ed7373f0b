//! Commands on installed workflows, read from and acted on through systemd alone:
//! `run`, `status`, `logs`, `list`, `cancel`, `pause`, `resume`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::exit::{CliError, Exit};
use super::workflows::{self, SourceState};
use crate::install;
use crate::runs::trigger::{self, Outcome};
use crate::runs::{self, Followed, InstalledWorkflow, Start, TaskRun, TaskState};
use crate::systemd::{Bus, Systemd};
use crate::vocabulary::{RunResult, TriggerKind};

#[derive(Debug, Clone, Args)]
pub struct Where {
    /// Use the calling user's own manager and unit directory.
    #[arg(long)]
    pub user: bool,
    /// Read installed units from this directory.
    #[arg(long, value_name = "DIR", hide = true)]
    pub unit_dir: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Where {
    fn dir(&self) -> PathBuf {
        self.unit_dir
            .clone()
            .unwrap_or_else(|| workflows::units_dir(self.user))
    }

    fn connect(&self) -> Result<Systemd, CliError> {
        Systemd::connect(Bus::manager(self.user)).map_err(|e| CliError::System(e.to_string()))
    }

    fn installed(&self) -> Result<BTreeMap<String, install::InstalledFile>, CliError> {
        let dir = self.dir();
        install::installed(&dir)
            .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))
    }

    fn workflow(&self, name: &str) -> Result<InstalledWorkflow, CliError> {
        self.find(&self.installed()?, name)
    }

    /// The workflow, and how its YAML file stands against its units.
    fn workflow_and_source(
        &self,
        name: &str,
    ) -> Result<(InstalledWorkflow, SourceState), CliError> {
        let files = self.installed()?;
        let wf = self.find(&files, name)?;
        let state = workflows::source_state(&wf.name, &wf.source, &files);
        Ok((wf, state))
    }

    fn find(
        &self,
        files: &BTreeMap<String, install::InstalledFile>,
        name: &str,
    ) -> Result<InstalledWorkflow, CliError> {
        runs::installed_workflow(files, name)
            .ok_or_else(|| not_installed(files, name, &self.dir(), self.user))
    }
}

/// "Not installed", with the installed workflow whose name is nearest as a suggestion: a
/// typo in a name should not read as a workflow gone.
pub(super) fn not_installed(
    files: &BTreeMap<String, install::InstalledFile>,
    name: &str,
    dir: &Path,
    user: bool,
) -> CliError {
    let u = super::user_flag(user);
    let installed = runs::installed_workflows(files);
    let hint =
        match crate::compiler::suggest::nearest(name, installed.iter().map(|w| w.name.as_str())) {
            Some(near) => {
                format!("did you mean `{near}`? (`flow list{u}` shows what is installed)")
            }
            None => format!(
                "`flow list{u}` shows the installed workflows, `flow apply{u}` installs yours"
            ),
        };
    CliError::NotFound(format!(
        "workflow `{name}` is not installed in {}; {hint}",
        dir.display()
    ))
}

/// On stderr: that a workflow's YAML file changed since `flow apply`, if it did.
fn note_source(wf: &InstalledWorkflow, state: SourceState) {
    if let Some(note) = state.note(&wf.source) {
        eprintln!("note: {note}");
    }
}

/// Retries and the run's deadline are the supervisor's: without one, say that this run
/// gets neither, rather than let a failed task stay failed unexplained.
fn note_unsupervised(wf: &InstalledWorkflow, runtime: &Path, user: bool) {
    let retried: Vec<String> = wf
        .tasks
        .iter()
        .filter(|t| t.retries > 0)
        .map(|t| format!("{} ({})", t.name, t.retries))
        .collect();
    let mut missing = Vec::new();
    if !retried.is_empty() {
        missing.push(format!("no retries of {}", retried.join(", ")));
    }
    if let Some(t) = &wf.timeout {
        missing.push(format!("no deadline ({t})"));
    }
    if missing.is_empty() || runs::follow::supervisor_listens(runtime) {
        return;
    }
    eprintln!(
        "note: no supervisor is running, so this run gets {}; start it with `{}`",
        missing.join(" and "),
        crate::supervisor::start_hint(user)
    );
}

fn sys(e: impl std::fmt::Display) -> CliError {
    CliError::System(e.to_string())
}

/// `flow run NAME [--wait]`: a manual trigger. When a run is going, the workflow's
/// overlap rule decides: a skip is left for the supervisor to record; a queued or
/// replacing run is handed to the trigger unit, which waits or cancels.
pub fn run(name: &str, wait: bool, w: &Where) -> Result<Exit, CliError> {
    let (wf, source) = w.workflow_and_source(name)?;
    note_source(&wf, source);
    let sd = w.connect()?;
    let runtime = trigger::runtime_dir(w.user);
    note_unsupervised(&wf, &runtime, w.user);
    let start = match trigger::going(&sd, &wf, &runtime).map_err(sys)? {
        None => {
            trigger::leave_note(&runtime, name, TriggerKind::Manual);
            trigger::begin_afresh(&sd, &wf).map_err(sys)?;
            Start::RunUnit
        }
        Some(why) => {
            let rule = wf.overlap.as_str();
            let what = match rule {
                "queue" => "this run starts when it ends",
                "replace" => "it is canceled and this run starts",
                _ => "no run was started",
            };
            let note = format!("A run of {name} is going ({why}); overlap: {rule}, so {what}.");
            if rule != "queue" && rule != "replace" {
                // Decided here, once: the supervisor records the skip. (Handing it to the
                // trigger unit would decide again, and start a run if this one ended
                // meanwhile.)
                trigger::note_skip(&runtime, name, TriggerKind::Manual);
                runs::follow::tell_skipped(&runtime, name);
                if w.json {
                    println!(
                        "{}",
                        serde_json::json!({"workflow": name, "started": false, "skipped": true, "going": why.to_string()})
                    );
                } else {
                    println!("{note}");
                }
                return Ok(Exit::Failure);
            }
            // Said on stderr under `--json`: stdout is the one JSON object.
            if w.json {
                eprintln!("{note}");
            } else {
                println!("{note}");
            }
            // The trigger unit records how its run was triggered; by the timer's last
            // elapse alone, a `flow run` just after the timer fired would read `timer`.
            trigger::ask_manual(&runtime, name);
            Start::Trigger
        }
    };
    if !wait {
        match start {
            Start::RunUnit => sd.start_unit_no_wait(&wf.run_unit()).map_err(sys)?,
            Start::Trigger => sd.queue_start(&wf.trigger_unit()).map_err(sys)?,
        }
        let queued = start == Start::Trigger && wf.overlap.as_str() == "queue";
        let u = super::user_flag(w.user);
        if w.json {
            println!(
                "{}",
                serde_json::json!({"workflow": name, "started": !queued, "queued": queued, "unit": wf.run_unit()})
            );
        } else if queued {
            println!(
                "Queued a run of {name}. Once it starts, follow it with `flow status {name}{u}` or `flow logs {name}{u} -f`."
            );
        } else {
            println!(
                "Started a run of {name} ({}). Follow it with `flow status {name}{u}` or `flow logs {name}{u} -f`.",
                wf.run_unit(),
            );
        }
        return Ok(Exit::Success);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        tell_on_interrupt(name, w.user);
    }
    let followed = follow(&sd, &wf, start, w.json, w.user, &runtime)?;
    if let Some(result) = &followed.not_begun {
        return Ok(queued_run_not_begun(&wf, result, w.json));
    }
    let runs = &followed.tasks;
    let result = followed
        .result
        .clone()
        .unwrap_or_else(|| tasks_result(runs).into());
    if w.json {
        let mut v = json_runs(&wf, runs);
        v["run"] = followed.run.into();
        v["result"] = result.clone().into();
        v["followed_to_end"] = (!followed.lost).into();
        println!("{v}");
    } else {
        println!();
        print_table(runs, followed.run, &result);
        if followed.lost {
            let u = super::user_flag(w.user);
            println!(
                "The supervisor stopped before the run ended; once it is back it carries on with the run (its retries, its deadline): `flow status {name}{u}` shows where it is."
            );
        }
    }
    Ok(if result == "succeeded" {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// A run's result from its tasks' states, where the supervisor did not tell it.
fn tasks_result(runs: &[TaskRun]) -> &'static str {
    if runs.iter().all(|t| t.state.is_ok()) {
        "succeeded"
    } else {
        "failed"
    }
}

/// `flow run --wait` of a queued run whose trigger unit ended before the run began.
fn queued_run_not_begun(wf: &InstalledWorkflow, result: &str, json: bool) -> Exit {
    if json {
        println!(
            "{}",
            serde_json::json!({"workflow": wf.name, "run": null, "began": false, "trigger_result": result})
        );
    } else if result == "canceled" {
        println!(
            "\nThe queued run of {} was canceled before it began (`flow cancel`).",
            wf.name
        );
    } else {
        println!(
            "\nThe queued run of {} did not begin: its trigger unit's job ended `{result}` (`journalctl -u {}` says why).",
            wf.name,
            wf.trigger_unit()
        );
    }
    Exit::Failure
}

/// What Ctrl-C during `flow run --wait` prints: the run is systemd's, and goes on.
static INTERRUPT_NOTE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// At a terminal, Ctrl-C stops following a run, not the run: say so, and how to stop it.
/// (Not under `flow try`, which ends the whole sandbox and runs this without a terminal.)
fn tell_on_interrupt(name: &str, user: bool) {
    let user = super::user_flag(user);
    let note = format!(
        "\nStopped following; the run goes on (`flow status {name}{user}` shows it, `flow cancel {name}{user}` stops it).\n"
    );
    if INTERRUPT_NOTE.set(note).is_err() {
        return;
    }
    extern "C" fn note_and_exit(_: libc::c_int) {
        if let Some(note) = INTERRUPT_NOTE.get() {
            // SAFETY: write(2) on a live buffer; both calls are async-signal-safe.
            unsafe {
                libc::write(2, note.as_ptr().cast(), note.len());
            }
        }
        // SAFETY: _exit(2) is async-signal-safe and skips what is not (destructors).
        unsafe { libc::_exit(130) }
    }
    // SAFETY: the handler only reads a string set before it was installed, writes it and
    // exits, all async-signal-safe.
    unsafe { super::signals::handle(note_and_exit, false, &[nix::sys::signal::Signal::SIGINT]) }
}

/// `flow trigger NAME` (hidden): what a workflow's trigger unit runs when its timer
/// elapses (or `flow run` hands it a trigger that meets a run going).
pub fn trigger_unit(name: &str, runtime: &Path, unit_dir: &Path) -> Result<Exit, CliError> {
    let w = Where {
        // `%t` is /run for the system manager, the user's runtime directory otherwise.
        user: runtime != Path::new("/run"),
        unit_dir: Some(unit_dir.to_path_buf()),
        json: false,
    };
    let wf = w.workflow(name)?;
    let sd = w.connect()?;
    let trigger_kind = if trigger::take_manual_request(runtime, name) {
        TriggerKind::Manual
    } else {
        trigger::kind(&sd, &wf)
    };
    let kind = trigger_kind.label();
    let outcome = trigger::trigger(&sd, &wf, runtime, trigger_kind, |why| {
        println!("A run of {name} is going ({why}); overlap: queue, so this {kind} run starts when it ends.");
        let _ = std::io::stdout().flush();
        stopped_while_waiting_is_clean();
    })
    .map_err(sys)?;
    match outcome {
        Outcome::Started => println!("Started a {kind} run of {name}."),
        Outcome::Queued(_) => println!("Started the queued {kind} run of {name}."),
        Outcome::Skipped(why) => println!(
            "A run of {name} is going ({why}); overlap: skip, so this {kind} trigger is skipped."
        ),
        Outcome::Replaced(why) => println!(
            "Canceled the run of {name} that was going ({why}); overlap: replace. Started a {kind} run."
        ),
    }
    Ok(Exit::Success)
}

/// A queued trigger stopped while it waits (`flow cancel`) ends cleanly: SIGTERM would
/// otherwise leave the trigger unit `failed`, as if something had gone wrong.
fn stopped_while_waiting_is_clean() {
    extern "C" fn note_and_exit(_: libc::c_int) {
        const NOTE: &str = "Stopped while it waited: this queued run does not start.\n";
        // SAFETY: write(2) of a static buffer and _exit(2), both async-signal-safe.
        unsafe {
            libc::write(1, NOTE.as_ptr().cast(), NOTE.len());
            libc::_exit(0)
        }
    }
    // SAFETY: the handler only writes a static string and exits.
    unsafe { super::signals::handle(note_and_exit, false, &[nix::sys::signal::Signal::SIGTERM]) }
}

/// Start a run, print each change as it happens, return the final states. Followed
/// through the supervisor when it runs (retries included), else through systemd alone.
pub fn follow(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    start: Start,
    quiet: bool,
    user: bool,
    runtime: &Path,
) -> Result<Followed, CliError> {
    let width = wf.tasks.iter().map(|t| t.name.len()).max().unwrap_or(4);
    if !quiet {
        println!(
            "Running {} ({} task{})",
            wf.name,
            wf.tasks.len(),
            if wf.tasks.len() == 1 { "" } else { "s" }
        );
    }
    let show = |_: usize, t: &TaskRun, retry: Option<Duration>| {
        if quiet {
            return;
        }
        let mark = mark(&t.state);
        let dur = t
            .duration
            .map(|d| format!("  {}", fmt_duration(d)))
            .unwrap_or_default();
        let retry = retry
            .map(|d| format!("  (tried again in {})", fmt_duration(d)))
            .unwrap_or_default();
        println!(
            "  {mark} {:width$}  {}{dur}{retry}",
            t.name,
            t.state.label()
        );
        let _ = std::io::stdout().flush();
    };
    match runs::follow::Client::connect(runtime, &wf.name, start == Start::Trigger) {
        Some(client) => {
            runs::start_and_follow_supervised(sd, wf, start, user, runtime, client, show)
                .map_err(sys)
        }
        None => runs::start_and_follow(sd, wf, start, show).map_err(sys),
    }
}

fn mark(state: &TaskState) -> &'static str {
    match state {
        TaskState::Pending => "·",
        TaskState::Running | TaskState::Stopping => "▶",
        TaskState::RetryPending(_) => "↻",
        TaskState::Succeeded => "✓",
        TaskState::Skipped | TaskState::UpstreamFailed | TaskState::Unknown => "-",
        TaskState::Canceled => "⊘",
        _ => "✗",
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The final table and verdict; `run`: the run's number in the history, when known;
/// `result`: the run's result in the history's words.
pub fn print_table(runs: &[TaskRun], run: Option<i64>, result: &str) {
    let width = runs.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let labels: Vec<String> = runs.iter().map(|t| t.state.label()).collect();
    let lw = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    println!("{:width$}  {:lw$}  {:>9}", "TASK", "RESULT", "DURATION");
    for (t, label) in runs.iter().zip(&labels) {
        let dur = t.duration.map(fmt_duration).unwrap_or_else(|| "-".into());
        println!("{:width$}  {label:lw$}  {dur:>9}", t.name);
    }
    let number = run.map(|id| format!(" {id}")).unwrap_or_default();
    let verdict = match result {
        "canceled" => "was canceled",
        "timed_out" => "timed out: it ran past its deadline",
        "succeeded" => "succeeded",
        _ => "failed",
    };
    println!("\nRun{number} {verdict}.");
}

fn json_runs(wf: &InstalledWorkflow, runs: &[TaskRun]) -> serde_json::Value {
    serde_json::json!({
        "workflow": wf.name,
        "succeeded": runs.iter().all(|t| t.state.is_ok()),
        "tasks": runs.iter().map(|t| serde_json::json!({
            "task": t.name,
            "state": t.state.key(),
            "exit": match &t.state {
                TaskState::Failed(c) => Some(*c),
                TaskState::RetryPending(failed) => match **failed {
                    TaskState::Failed(c) => Some(c),
                    _ => None,
                },
                _ => None,
            },
            "duration_ms": t.duration.map(|d| d.as_millis() as u64),
            "invocation_id": t.invocation_id,
        })).collect::<Vec<_>>(),
    })
}

/// `flow status NAME`: the DAG of the current or last run with each task's state.
pub fn status(name: &str, w: &Where) -> Result<Exit, CliError> {
    let (wf, source) = w.workflow_and_source(name)?;
    let sd = w.connect()?;
    let runs = runs::last_run(&sd, &wf, w.user).map_err(sys)?;
    if w.json {
        let mut v = json_runs(&wf, &runs);
        v["source_state"] = source.key().into();
        println!("{v}");
        return Ok(shown_run_exit(&runs));
    }
    println!("{} ({})", wf.name, wf.source);
    note_source(&wf, source);
    if runs.iter().all(|r| r.state == TaskState::Unknown) {
        let u = super::user_flag(w.user);
        println!("  No run of {name} has started yet: `flow run {name}{u}` starts one.");
    }
    let width = wf.tasks.iter().map(|t| t.name.len()).max().unwrap_or(4);
    for (t, r) in wf.tasks.iter().zip(&runs) {
        let needs = if t.needs.is_empty() {
            String::new()
        } else {
            let when = if t.when == "all_success" {
                String::new()
            } else {
                format!(" ({})", t.when)
            };
            format!("  ← {}{when}", t.needs.join(", "))
        };
        let dur = r
            .duration
            .map(|d| format!(" {}", fmt_duration(d)))
            .unwrap_or_default();
        println!(
            "  {} {:width$}  {}{dur}{needs}",
            mark(&r.state),
            t.name,
            r.state.label()
        );
    }
    Ok(shown_run_exit(&runs))
}

/// `flow status NAME` exits as `flow status NAME RUN` does: 1 when the run shown ended and
/// did not succeed; 0 when it succeeded, is still going, or none has run.
fn shown_run_exit(runs: &[runs::TaskRun]) -> Exit {
    let ended = runs.iter().all(|t| t.state.is_final());
    let never = runs.iter().all(|t| t.state == TaskState::Unknown);
    if ended
        && !never
        && !runs
            .iter()
            .all(|t| t.state.is_ok() || t.state == TaskState::Unknown)
    {
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// `flow logs NAME [--task T] [-f]`: the journal lines of the last run's tasks.
pub fn logs(
    name: &str,
    task: Option<&str>,
    follow: bool,
    lines: Option<usize>,
    w: &Where,
) -> Result<Exit, CliError> {
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
    print_lines(&tasks, &select, lines, w.json)
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

/// Print the selected lines as `time task | message`, or with `json` one object per line
/// (`time_us`, µs since the epoch; `task`; `message`). With `lines`, only the last that
/// many of those there are; when following, then every new one.
pub fn print_lines(
    tasks: &runs::logs::Tasks,
    select: &runs::logs::Select,
    lines: Option<usize>,
    json: bool,
) -> Result<Exit, CliError> {
    use runs::logs::{Select, Tail};
    let journalctl = |e| CliError::io("cannot run journalctl (is systemd installed?)", e);
    let mut out = std::io::stdout().lock();
    let mut print = |line: runs::logs::Line| {
        if json {
            let v = serde_json::json!({
                "time_us": line.time_us,
                "task": line.task,
                "message": line.message,
            });
            writeln!(out, "{v}").is_ok()
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

/// µs since the epoch as local `HH:MM:SS.mmm`.
fn clock(us: i64) -> String {
    super::output::local_time(us)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// `flow list`: every installed workflow, its schedule, next run and last result.
/// One workflow as `flow list` knows it. `None` where systemd (or the history) could not
/// tell: text shows `?`, JSON `null`.
struct ListRow {
    name: String,
    schedule: Option<String>,
    /// The timer's next elapse (realtime µs); `None` also when paused or unscheduled.
    next: Option<u64>,
    /// Whether the timer is stopped (`flow pause`); `Some(false)` without a schedule.
    paused: Option<bool>,
    last: Last,
    source: SourceState,
}

/// The last run, as the history (or else systemd) has it.
enum Last {
    Never,
    Running,
    Ended(RunResult),
    Unknown,
}

pub fn list(w: &Where) -> Result<Exit, CliError> {
    let dir = w.dir();
    let files = w.installed()?;
    let wfs = runs::installed_workflows(&files);
    // Why something reads `?`, said once below the table.
    let mut unknown_why = None;
    let sd = w
        .connect()
        .map_err(|e| unknown_why = Some(e.to_string()))
        .ok();
    // The history, where there is one to read: it knows what systemd cannot tell.
    let history = crate::store::Store::open_ro(&crate::store::default_path(w.user)).ok();
    let mut rows = Vec::new();
    for wf in &wfs {
        // `None`: systemd could not say whether the timer is active, so neither "paused"
        // nor a time can be claimed.
        let (next, paused) = match (&sd, &wf.timer) {
            (Some(sd), Some((timer, _))) => match sd.unit_state(timer) {
                Ok(s) => {
                    let active = s.active_state == "active";
                    (s.next_elapse().filter(|_| active), Some(!active))
                }
                Err(e) => {
                    unknown_why.get_or_insert(e.to_string());
                    (None, None)
                }
            },
            (Some(_), None) => (None, Some(false)),
            (None, _) => (None, None),
        };
        let recorded = sd
            .as_ref()
            .zip(history.as_ref())
            .and_then(|(sd, h)| recorded_result(h, sd, wf));
        let last = match (&sd, recorded) {
            (_, Some(recorded)) => recorded,
            (Some(sd), None) => match runs::last_run(sd, wf, w.user) {
                Ok(states) if states.iter().all(|t| t.state == TaskState::Unknown) => Last::Never,
                Ok(states) if states.iter().any(|t| !t.state.is_final()) => Last::Running,
                Ok(states) if states.iter().all(|t| t.state.is_ok()) => {
                    Last::Ended(RunResult::Succeeded)
                }
                Ok(states) if states.iter().any(|t| t.state == TaskState::Canceled) => {
                    Last::Ended(RunResult::Canceled)
                }
                Ok(_) => Last::Ended(RunResult::Failed),
                Err(e) => {
                    unknown_why.get_or_insert(e.to_string());
                    Last::Unknown
                }
            },
            (None, None) => Last::Unknown,
        };
        rows.push(ListRow {
            name: wf.name.clone(),
            schedule: wf.timer.as_ref().map(|(_, s)| s.clone()),
            next,
            paused,
            last,
            source: workflows::source_state(&wf.name, &wf.source, &files),
        });
    }
    if w.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                let (last_result, running) = match &r.last {
                    Last::Never => (None, Some(false)),
                    Last::Running => (None, Some(true)),
                    Last::Ended(word) => (Some(word.as_str()), Some(false)),
                    Last::Unknown => (None, None),
                };
                serde_json::json!({
                    "workflow": r.name,
                    "schedule": r.schedule,
                    "next": r.next.and_then(|us| super::output::timestamp(us as i64)),
                    "paused": r.paused,
                    "running": running,
                    "last_result": last_result,
                    "source_state": r.source.key(),
                })
            })
            .collect();
        super::output::json_line(&serde_json::json!({ "workflows": v }));
        return unreachable_exit(sd.is_some(), &rows, unknown_why.as_deref());
    }
    if rows.is_empty() {
        println!("No workflows installed in {}.", dir.display());
        return Ok(Exit::Success);
    }
    let texts: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            // A workflow whose YAML file is not what its units were made of is marked, and
            // why is said below the table.
            let name = match r.source {
                SourceState::Applied => r.name.clone(),
                _ => format!("{}*", r.name),
            };
            let next = match (&r.schedule, r.paused, r.next) {
                (_, None, _) => "?".to_string(),
                (Some(_), Some(true), _) => "paused".to_string(),
                (_, _, Some(us)) => datetime(us as i64),
                _ => "-".to_string(),
            };
            let last = match &r.last {
                Last::Never => "never run".to_string(),
                Last::Running => "running".to_string(),
                Last::Ended(word) => word.as_str().to_string(),
                Last::Unknown => "?".to_string(),
            };
            [
                name,
                r.schedule.clone().unwrap_or_else(|| "-".into()),
                next,
                last,
            ]
        })
        .collect();
    let wn = texts.iter().map(|t| t[0].len()).max().unwrap_or(8).max(8);
    let ws = texts.iter().map(|t| t[1].len()).max().unwrap_or(8).max(8);
    println!(
        "{:wn$}  {:ws$}  {:25}  LAST",
        "WORKFLOW", "SCHEDULE", "NEXT"
    );
    for [n, s, x, l] in &texts {
        println!("{n:wn$}  {s:ws$}  {x:25}  {l}");
    }
    let notes: Vec<String> = rows
        .iter()
        .zip(&wfs)
        .filter_map(|(r, wf)| Some(format!("* {}: {}", r.name, r.source.note(&wf.source)?)))
        .collect();
    if !notes.is_empty() {
        eprintln!();
        for note in notes {
            eprintln!("{note}");
        }
    }
    if let Some(why) = &unknown_why
        && sd.is_some()
    {
        eprintln!("\nNEXT or LAST is `?` where flow {why}");
    }
    unreachable_exit(sd.is_some(), &rows, unknown_why.as_deref())
}

/// `flow list` without systemd knows the installed workflows but not their timers or runs:
/// it prints what it knows and says so with exit 3, so that a script never reads an
/// unreachable manager as "every workflow paused".
fn unreachable_exit<T>(reached: bool, rows: &[T], why: Option<&str>) -> Result<Exit, CliError> {
    if reached || rows.is_empty() {
        return Ok(Exit::Success);
    }
    Err(CliError::System(format!(
        "NEXT and LAST are unknown (`?`): flow {}",
        why.unwrap_or("could not reach systemd")
    )))
}

/// The history's result of the run systemd ran last, when the history has that run (by
/// its begin unit's activation): a run stopped at its deadline is `timed_out` there, where
/// systemd only saw its tasks stopped. `None` when the history lags (a supervisor down, a
/// run started by `flow retry`): systemd's own account then.
fn recorded_result(
    history: &crate::store::Store,
    sd: &Systemd,
    wf: &InstalledWorkflow,
) -> Option<Last> {
    let begun = sd.unit_state(&wf.begin_unit()).ok()?.invocation_id?;
    let id = history.run_by_begin(&begun).ok()??;
    let run = history.run(&wf.name, id).ok()??;
    Some(match run.result {
        Some(result) => Last::Ended(result),
        None => Last::Running,
    })
}

fn datetime(us: i64) -> String {
    super::output::local_time(us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
        .unwrap_or_default()
}

/// `flow cancel NAME`: stop the run and every task still running or waiting.
pub fn cancel(name: &str, w: &Where) -> Result<Exit, CliError> {
    let wf = w.workflow(name)?;
    let sd = w.connect()?;
    // The queued run first: it would start as soon as the run going is stopped.
    let queued = trigger::cancel_queued(&sd, &wf).map_err(sys)?;
    let runtime = trigger::runtime_dir(w.user);
    let canceled = trigger::cancel_and_tell(&sd, &wf, &runtime, || {
        if !w.json {
            println!("Stopping the run of {name}: each task still running is told to end...");
            let _ = std::io::stdout().flush();
        }
    })
    .map_err(sys)?;
    if w.json {
        println!(
            "{}",
            serde_json::json!({"workflow": name, "canceled": canceled, "queued_canceled": queued})
        );
    } else {
        println!(
            "{}",
            match (canceled, queued) {
                (true, true) => format!("Canceled the run of {name}, and the run queued after it."),
                (true, false) => format!("Canceled the run of {name}."),
                (false, true) => format!("Canceled the queued run of {name}."),
                (false, false) => format!("No run of {name} is going: nothing to cancel."),
            }
        );
    }
    Ok(Exit::Success)
}

/// `flow pause NAME` / `flow resume NAME`: stop or start the timer (and keep it so across reboots).
pub fn pause(name: &str, resume: bool, w: &Where) -> Result<Exit, CliError> {
    let wf = w.workflow(name)?;
    let Some((timer, _)) = &wf.timer else {
        return Err(CliError::Invalid(format!(
            "workflow `{name}` has no schedule to pause or resume"
        )));
    };
    let sd = w.connect()?;
    let units = vec![timer.clone()];
    if resume {
        sd.enable_unit_files(&units).map_err(sys)?;
        sd.reload().map_err(sys)?;
        sd.start_unit(timer).map_err(sys)?;
    } else {
        sd.stop_unit(timer).map_err(sys)?;
        sd.disable_unit_files(&units).map_err(sys)?;
        sd.reload().map_err(sys)?;
    }
    if w.json {
        println!(
            "{}",
            serde_json::json!({"workflow": name, "paused": !resume})
        );
    } else if resume {
        println!("Resumed {name}: its timer runs again.");
    } else {
        println!(
            "Paused {name}: its timer is stopped until `flow resume {name}{}`. A run already going continues.",
            super::user_flag(w.user)
        );
    }
    Ok(Exit::Success)
}

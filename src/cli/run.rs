//! `flow run NAME [--wait]`: a manual trigger of an installed workflow, followed live to
//! its end with `--wait`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::exit::{CliError, Exit};
use super::installed::{Where, note_source, sys};
use super::output::{RunJson, fmt_duration, json_line, mark, timestamp};
use super::shown;
use super::workflows::SourceState;
use crate::runs::trigger;
use crate::runs::{self, Followed, InstalledWorkflow, Progress, Start, TaskRun};
use crate::store::{self, Store};
use crate::systemd::Systemd;
use crate::vocabulary::{RunResult, TriggerKind};

/// `run --json` without `--wait` (run.json).
#[derive(Debug, Serialize)]
struct StartedJson<'a> {
    workflow: &'a str,
    /// The run's number, when the supervisor told it as the run began.
    run: Option<i64>,
    /// When the run began, when flow saw it begin.
    started: Option<String>,
    /// A run was going and `overlap: queue` holds this one until it ends.
    queued: bool,
    /// A run was going and `overlap: skip` dropped this one: nothing started.
    skipped: bool,
    /// A run was going and `overlap: replace` cancels it for this one.
    replaced: bool,
}

/// `run --wait --json` (run-wait.json): the run as `flow status` shows it, and how it was
/// followed.
#[derive(Debug, Serialize)]
struct WaitedJson {
    #[serde(flatten)]
    run: RunJson,
    queued: bool,
    skipped: bool,
    /// `false` when the supervisor stopped before the run ended: what systemd knew then.
    followed_to_end: bool,
}

/// What a trigger met: no run going, or the overlap rule that applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Met {
    Nothing,
    Queue,
    Replace,
}

/// A manual trigger. When a run is going, the workflow's overlap rule decides: a skip is
/// left for the supervisor to record; a queued or replacing run is handed to the trigger
/// unit, which waits or cancels.
pub fn run(name: &str, wait: bool, w: &Where) -> Result<Exit, CliError> {
    let (wf, source) = w.workflow_and_source(name)?;
    note_source(&wf, source);
    let sd = w.connect()?;
    let runtime = trigger::runtime_dir(w.user);
    note_unsupervised(&wf, &runtime, w.user);
    let (start, met) = match trigger::going(&sd, &wf, &runtime).map_err(sys)? {
        None => {
            trigger::leave_note(&runtime, name, TriggerKind::Manual);
            trigger::begin_afresh(&sd, &wf).map_err(sys)?;
            (Start::RunUnit, Met::Nothing)
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
                    // Said on stderr under `--json`: stdout is the one JSON object.
                    eprintln!("{note}");
                    print_not_run(&wf, source, wait, Met::Nothing, RunResult::Skipped);
                } else {
                    println!("{note}");
                }
                return Ok(Exit::Failure);
            }
            if w.json {
                eprintln!("{note}");
            } else {
                println!("{note}");
            }
            // The trigger unit records how its run was triggered; by the timer's last
            // elapse alone, a `flow run` just after the timer fired would read `timer`.
            trigger::ask_manual(&runtime, name);
            let met = if rule == "queue" {
                Met::Queue
            } else {
                Met::Replace
            };
            (Start::Trigger, met)
        }
    };
    if !wait {
        return started(&sd, &wf, start, met, &runtime, w);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        tell_on_interrupt(name, w.user);
    }
    let followed = follow(&sd, &wf, start, w.json, w.user, &runtime)?;
    if let Some(result) = &followed.not_begun {
        return Ok(queued_run_not_begun(&wf, source, result, w.json));
    }
    let told = followed.result.as_deref().and_then(RunResult::parse);
    let progress = match told {
        Some(r) => Progress::Ended(r),
        None => runs::progress(&followed.tasks),
    };
    let result = match progress {
        Progress::Ended(r) => Some(r),
        _ => None,
    };
    if w.json {
        print_waited(&wf, source, &followed, progress, met, w.user);
    } else {
        println!();
        print_table(&followed.tasks, followed.run, result);
        if followed.lost {
            let u = super::user_flag(w.user);
            println!(
                "The supervisor stopped before the run ended; once it is back it carries on with the run (its retries, its deadline): `flow status {name}{u}` shows where it is."
            );
        }
    }
    Ok(if result == Some(RunResult::Succeeded) {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// `flow run` without `--wait`: the run is started (or handed to the trigger unit) and
/// left to go. With `--json` and a supervisor, its number once it begins.
fn started(
    sd: &Systemd,
    wf: &InstalledWorkflow,
    start: Start,
    met: Met,
    runtime: &Path,
    w: &Where,
) -> Result<Exit, CliError> {
    let name = wf.name.as_str();
    // Asked before the start: the supervisor tells the number of the next run to begin.
    let follower = (w.json && start == Start::RunUnit)
        .then(|| runs::follow::Client::connect(runtime, name, false))
        .flatten();
    match start {
        Start::RunUnit => sd.start_unit_no_wait(&wf.run_unit()).map_err(sys)?,
        Start::Trigger => sd.queue_start(&wf.trigger_unit()).map_err(sys)?,
    }
    let u = super::user_flag(w.user);
    if w.json {
        let run = follower.and_then(|c| c.run_number(Duration::from_secs(10)));
        // When it began, as the supervisor records it: its begin unit's start.
        let began = run
            .and_then(|_| sd.unit_state(&wf.begin_unit()).ok())
            .and_then(|b| b.exec_main_start_timestamp.or(b.inactive_exit_timestamp))
            .and_then(|us| i64::try_from(us).ok());
        json_line(&StartedJson {
            workflow: name,
            run,
            started: began.and_then(timestamp),
            queued: met == Met::Queue,
            skipped: false,
            replaced: met == Met::Replace,
        });
    } else if met == Met::Queue {
        println!(
            "Queued a run of {name}. Once it starts, follow it with `flow status {name}{u}` or `flow logs {name}{u} -f`."
        );
    } else {
        println!(
            "Started a run of {name} ({}). Follow it with `flow status {name}{u}` or `flow logs {name}{u} -f`.",
            wf.run_unit(),
        );
    }
    Ok(Exit::Success)
}

/// `--json` of a run that did not begin: skipped by the overlap rule, or queued and its
/// trigger stopped before it started the run.
fn print_not_run(
    wf: &InstalledWorkflow,
    source: SourceState,
    wait: bool,
    met: Met,
    result: RunResult,
) {
    let skipped = result == RunResult::Skipped;
    if !wait {
        json_line(&StartedJson {
            workflow: &wf.name,
            run: None,
            started: None,
            queued: met == Met::Queue,
            skipped,
            replaced: false,
        });
        return;
    }
    json_line(&WaitedJson {
        run: RunJson {
            workflow: wf.name.clone(),
            run: None,
            trigger: Some(TriggerKind::Manual),
            started: None,
            ended: None,
            duration_ms: None,
            result: Some(result),
            running: Some(false),
            source_state: Some(source.key()),
            tasks: Vec::new(),
        },
        queued: met == Met::Queue,
        skipped,
        followed_to_end: true,
    });
}

/// `run --wait --json` of a run followed: the run as `flow status NAME RUN` has it, with
/// the states followed.
fn print_waited(
    wf: &InstalledWorkflow,
    source: SourceState,
    followed: &Followed,
    progress: Progress,
    met: Met,
    user: bool,
) {
    // The supervisor records the run's end before it tells it: the history has it all.
    let history = followed
        .run
        .and_then(|_| Store::open_ro(&store::default_path(user)).ok());
    let recorded = history
        .as_ref()
        .zip(followed.run)
        .and_then(|(h, id)| h.run(&wf.name, id).ok().flatten());
    let attempts = shown::recorded_attempts(history.as_ref(), recorded.as_ref());
    let live = shown::Live {
        wf,
        source,
        tasks: &followed.tasks,
        begun_us: None,
        ended_us: None,
        recorded: recorded.as_ref(),
        attempts: &attempts,
        progress,
    };
    let mut run = live.json();
    run.run = followed.run;
    run.trigger = Some(recorded.map_or(TriggerKind::Manual, |r| r.trigger));
    json_line(&WaitedJson {
        run,
        queued: met == Met::Queue,
        skipped: false,
        followed_to_end: !followed.lost,
    });
}

/// `flow run --wait` of a queued run whose trigger unit ended before the run began.
fn queued_run_not_begun(
    wf: &InstalledWorkflow,
    source: SourceState,
    result: &str,
    json: bool,
) -> Exit {
    if json {
        let result = if result == "canceled" {
            RunResult::Canceled
        } else {
            RunResult::Failed
        };
        print_not_run(wf, source, true, Met::Queue, result);
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

/// The final table and verdict; `run`: the run's number in the history, when known;
/// `result`: the run's result, `None` when it is not known to have ended (said as failed).
pub fn print_table(runs: &[TaskRun], run: Option<i64>, result: Option<RunResult>) {
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
        Some(RunResult::Canceled) => "was canceled",
        Some(RunResult::TimedOut) => "timed out: it ran past its deadline",
        Some(RunResult::Succeeded) => "succeeded",
        _ => "failed",
    };
    println!("\nRun{number} {verdict}.");
}

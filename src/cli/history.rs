//! Commands on the run history the supervisor keeps: `supervise`, `history`, `status NAME
//! RUN`, `logs NAME RUN`, `stats`. The readers open the database read-only, so they work
//! unprivileged wherever the file is readable, and say when the supervisor is not running.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::exit::{CliError, Exit};
use super::workflows;
use crate::compiler::names;
use crate::store::{self, Attempt, Filter, Run, Store, TaskStats};
use crate::supervisor;
use crate::systemd::Bus;
use crate::vocabulary::{AttemptResult, Outcome, RunResult};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The history database.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The history of the calling user's own supervisor (set from `--user`).
    #[arg(skip)]
    pub user: bool,
}

/// The history of the system's supervisor, or with `--user` of the user's own.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The history kept by the calling user's own supervisor (`flow supervise --user`).
    #[arg(long)]
    pub user: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

impl HistoryArgs {
    pub fn db(&self) -> DbArgs {
        self.db.for_user(self.user)
    }
}

impl DbArgs {
    pub fn for_user(&self, user: bool) -> DbArgs {
        DbArgs {
            db: self.db.clone(),
            user,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| store::default_path(self.user))
    }

    fn open(&self) -> Result<Store, CliError> {
        let path = self.path();
        let s = Store::open_ro(&path).map_err(|e| match e {
            store::StoreError::Missing { path } if self.user => CliError::System(format!(
                "no run history at {}: your supervisor has not recorded anything yet\n  \
                 is it running? (`systemctl --user status flow-supervisor`)",
                path.display()
            )),
            e => CliError::System(e.to_string()),
        })?;
        if !supervisor_running(&path, self.user) {
            eprintln!(
                "note: the supervisor is not running: history may be behind; start it with `{}`",
                supervisor::start_hint(self.user)
            );
        }
        Ok(s)
    }
}

/// Whether a supervisor has this database open for writing: it holds the WAL's shared
/// memory file open, which no reader keeps after exit. Checked through /proc, no D-Bus.
/// `user`: the calling user's own history, which only their own processes hold.
fn supervisor_running(db: &Path, user: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let my_uid = nix::unistd::getuid().as_raw();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let me = std::process::id().to_string();
    for p in procs.flatten() {
        let name = p.file_name();
        let name = name.to_string_lossy();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if user && p.metadata().is_ok_and(|m| m.uid() != my_uid) {
            continue;
        }
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let is_supervisor = cmd.split(|&b| b == 0).any(|a| a == b"supervise");
        if !is_supervisor {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            // Not ours to inspect (another user): a supervisor exists; assume it is this.
            return true;
        };
        if fds
            .flatten()
            .filter_map(|f| std::fs::read_link(f.path()).ok())
            .any(|l| l == db)
        {
            return true;
        }
    }
    false
}

#[derive(Debug, Clone, Args)]
pub struct SuperviseArgs {
    /// Supervise the calling user's own manager: its workflows (`flow apply --user`), with
    /// the history in ~/.local/state/flow.
    #[arg(long)]
    pub user: bool,
    #[command(flatten)]
    pub db: DbArgs,
    /// Where the installed units are.
    #[arg(long, value_name = "DIR", hide = true)]
    pub unit_dir: Option<PathBuf>,
    /// Keep at most this many runs per workflow.
    #[arg(long, default_value_t = store::DEFAULT_KEEP_RUNS)]
    pub keep_runs: u32,
    /// Keep runs for at most this many days.
    #[arg(long, default_value_t = store::DEFAULT_KEEP_DAYS)]
    pub keep_days: u32,
    /// Read systemd's signals from the bus, not from its private socket (tests).
    #[arg(long, hide = true)]
    pub bus_signals: bool,
}

pub fn supervise(a: &SuperviseArgs) -> Result<Exit, CliError> {
    let cfg = supervisor::Config {
        db: a.db.for_user(a.user).path(),
        unit_dir: a
            .unit_dir
            .clone()
            .unwrap_or_else(|| workflows::units_dir(a.user)),
        runtime_dir: crate::runs::trigger::runtime_dir(a.user),
        bus: Bus::manager(a.user),
        keep_runs: a.keep_runs,
        keep_days: a.keep_days,
        bus_signals: a.bus_signals,
    };
    supervisor::supervise(cfg).map_err(|e| CliError::System(e.to_string()))?;
    Ok(Exit::Success)
}

pub fn history(
    name: Option<&str>,
    failed: bool,
    since: Option<&str>,
    json: bool,
    limit: u32,
    db: &DbArgs,
) -> Result<Exit, CliError> {
    let since_us = since.map(parse_since).transpose()?;
    let s = db.open()?;
    if let Some(name) = name {
        known_workflow(&s, name, db.user)?;
    }
    let runs = s
        .history(&Filter {
            workflow: name.map(str::to_string),
            failed_only: failed,
            since_us,
            limit: Some(limit),
        })
        .map_err(|e| CliError::System(e.to_string()))?;
    if json {
        // One line, as every `--json` output (docs/json.md).
        super::output::json_line(&serde_json::to_value(&runs).unwrap_or_default());
    } else {
        print!("{}", format_history(&runs));
    }
    Ok(Exit::Success)
}

/// `--since`: a duration back from now (`2h`, `7d`) or a date (`2026-03-01`).
fn parse_since(text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    if let Some(days) = t.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()) {
        return Ok(store::now_us() - days * 86_400_000_000);
    }
    if let Ok(d) = crate::compiler::duration::parse(t) {
        return Ok(store::now_us() - d.as_micros() as i64);
    }
    // A date and time as `flow history` prints them (`2026-03-01 14:30`), seconds or a
    // `T` allowed; a date alone is its midnight. Local time, as printed.
    let at = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
    });
    if let Some(local) = at.and_then(|dt| dt.and_local_timezone(chrono::Local).earliest()) {
        return Ok(local.timestamp_micros());
    }
    Err(CliError::Invalid(format!(
        "--since `{text}` is neither a duration (e.g. `2h`, `7d`) nor a date (e.g. `2026-03-01` or `2026-03-01 14:30`)"
    )))
}

fn datetime(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| {
            if cfg!(test) {
                // Snapshots must not depend on the machine's time zone.
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            }
        })
        .unwrap_or_default()
}

fn duration(from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => {
            let ms = (b - a) / 1000;
            if ms < 1000 {
                format!("{ms}ms")
            } else if ms < 60_000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
            }
        }
        _ => "-".into(),
    }
}

/// The `history` table.
pub fn format_history(runs: &[Run]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("No runs recorded.\n");
        return out;
    }
    let wfw = runs
        .iter()
        .map(|r| r.workflow.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:>6}  {:wfw$}  {:9}  {:19}  {:>9}  RESULT",
        "RUN", "WORKFLOW", "TRIGGER", "START", "DURATION"
    );
    for r in runs {
        let _ = writeln!(
            out,
            "{:>6}  {:wfw$}  {:9}  {:19}  {:>9}  {}",
            r.id,
            r.workflow,
            r.trigger,
            datetime(r.started_us),
            duration(Some(r.started_us), r.ended_us),
            r.result.map_or("running", RunResult::as_str)
        );
    }
    out
}

/// An attempt's result in a table: the word, with its exit code, signal or start failure
/// (`failed (exit 3)`, `killed (signal 9)`, `failed (resources)`).
fn result_column(o: &Outcome) -> String {
    let word = o.result.as_str();
    if let Some(why) = &o.start_error {
        format!("{word} ({why})")
    } else if let Some(sig) = o.signal {
        format!("{word} (signal {sig})")
    } else if o.result == AttemptResult::Failed
        && let Some(code) = o.exit_code
    {
        format!("{word} (exit {code})")
    } else {
        word.to_string()
    }
}

/// `status NAME RUN`: the run and its attempts.
pub fn format_run(run: &Run, attempts: &[Attempt]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} run {} ({}), started {}, {}: {}",
        run.workflow,
        run.id,
        run.trigger,
        datetime(run.started_us),
        duration(Some(run.started_us), run.ended_us),
        run.result.map_or("running", RunResult::as_str)
    );
    let tw = attempts
        .iter()
        .map(|a| a.task.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:tw$}  {:>7}  {:8}  {:>9}  {:24}  INVOCATION",
        "TASK", "ATTEMPT", "START", "DURATION", "RESULT"
    );
    for a in attempts {
        let start = a
            .started_us
            .map(|s| datetime(s)[11..].to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:tw$}  {:>7}  {:8}  {:>9}  {:24}  {}",
            a.task,
            a.attempt,
            start,
            duration(a.started_us, a.ended_us),
            result_column(&a.outcome),
            a.invocation_id.as_deref().unwrap_or("-")
        );
    }
    out
}

/// A name that no run is recorded for and no installed workflow has is most likely a typo:
/// say so, with the nearest known name, rather than print an empty table and exit 0.
fn known_workflow(s: &Store, name: &str, user: bool) -> Result<(), CliError> {
    let recorded = s.workflows().map_err(|e| CliError::System(e.to_string()))?;
    if recorded.iter().any(|w| w == name) {
        return Ok(());
    }
    let dir = workflows::units_dir(user);
    // An unreadable unit directory only loses the suggestion: the history answers alone.
    let files = crate::install::installed(&dir).unwrap_or_default();
    if crate::runs::installed_workflow(&files, name).is_some() {
        return Ok(());
    }
    let installed = crate::runs::installed_workflows(&files);
    let known = recorded
        .iter()
        .map(String::as_str)
        .chain(installed.iter().map(|w| w.name.as_str()));
    let u = super::user_flag(user);
    Err(CliError::NotFound(
        match crate::compiler::suggest::nearest(name, known) {
            Some(near) => format!(
                "no workflow `{name}` is installed or has a run recorded; did you mean `{near}`?"
            ),
            None => format!(
                "no workflow `{name}` is installed or has a run recorded; `flow list{u}` shows the installed ones, `flow history{u}` every run recorded"
            ),
        },
    ))
}

fn find_run(s: &Store, name: &str, run: Option<i64>, user: bool) -> Result<Run, CliError> {
    let u = super::user_flag(user);
    let found = match run {
        Some(id) => s.run(name, id),
        None => s.last_run(name),
    }
    .map_err(|e| CliError::System(e.to_string()))?;
    if found.is_none() {
        known_workflow(s, name, user)?;
    }
    found.ok_or_else(|| {
        CliError::NotFound(match run {
            Some(id) => {
                format!(
                    "workflow `{name}` has no run {id}; `flow history {name}{u}` lists its runs"
                )
            }
            None => format!("no run of `{name}` is recorded yet"),
        })
    })
}

pub fn status(name: &str, run: Option<i64>, json: bool, db: &DbArgs) -> Result<Exit, CliError> {
    let s = db.open()?;
    let r = find_run(&s, name, run, db.user)?;
    let attempts = s
        .attempts(r.id)
        .map_err(|e| CliError::System(e.to_string()))?;
    if json {
        println!("{}", serde_json::json!({"run": r, "attempts": attempts}));
    } else {
        print!("{}", format_run(&r, &attempts));
    }
    Ok(if r.result.is_none_or(|x| x == RunResult::Succeeded) {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// `logs NAME RUN [--task T] [--attempt N]`: the exact lines of each attempt, by
/// InvocationID.
/// Which of a recorded run's lines `flow logs NAME RUN` prints.
pub struct LogsWanted<'a> {
    pub task: Option<&'a str>,
    pub attempt: Option<u32>,
    /// Only the last this many.
    pub lines: Option<usize>,
}

pub fn logs(
    name: &str,
    run: i64,
    wanted: LogsWanted,
    user: bool,
    json: bool,
    db: &DbArgs,
) -> Result<Exit, CliError> {
    let LogsWanted {
        task,
        attempt,
        lines,
    } = wanted;
    let s = db.open()?;
    let r = find_run(&s, name, Some(run), db.user)?;
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
        if !json {
            println!("No logs: no matching attempt ran in run {run} of {name}.");
        }
        return Ok(Exit::Success);
    }
    let mut names: Vec<&str> = attempts.iter().map(|a| a.task.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let tasks = crate::runs::logs::Tasks::new(name, names, user);
    // From a little before the run began (the manager's "Starting" message of its first
    // task comes first) to a while after it ended (lines still in flight).
    let us = |v: i64| u64::try_from(v).unwrap_or(0);
    let select = crate::runs::logs::Select::Activations {
        since: us(r.started_us).saturating_sub(2_000_000),
        until: r.ended_us.map(|e| us(e) + 60_000_000),
        ids: attempts
            .into_iter()
            .filter_map(|a| a.invocation_id)
            .collect(),
    };
    crate::runs::journal::sync();
    super::run::print_lines(&tasks, &select, lines, json)
}

pub fn format_stats(stats: &[TaskStats], failures: &[(Run, Vec<Attempt>)]) -> String {
    let mut out = String::new();
    if stats.is_empty() {
        out.push_str("No attempts recorded.\n");
        return out;
    }
    let ww = stats
        .iter()
        .map(|s| s.workflow.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let tw = stats.iter().map(|s| s.task.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "{:ww$}  {:tw$}  {:>8}  {:>8}  {:>8}  {:>8}",
        "WORKFLOW", "TASK", "ATTEMPTS", "SUCCESS", "P50", "P95"
    );
    let ms = |v: Option<i64>| {
        v.map(|m| duration(Some(0), Some(m * 1000)))
            .unwrap_or("-".into())
    };
    for s in stats {
        let rate = if s.attempts == 0 {
            0.0
        } else {
            100.0 * s.succeeded as f64 / s.attempts as f64
        };
        let _ = writeln!(
            out,
            "{:ww$}  {:tw$}  {:>8}  {:>7.1}%  {:>8}  {:>8}",
            s.workflow,
            s.task,
            s.attempts,
            rate,
            ms(s.p50_ms),
            ms(s.p95_ms)
        );
    }
    if !failures.is_empty() {
        out.push_str("\nLast failures:\n");
        for (r, attempts) in failures {
            let failed: Vec<String> = attempts
                .iter()
                .filter(|a| {
                    !matches!(
                        a.outcome.result,
                        AttemptResult::Succeeded | AttemptResult::Skipped
                    )
                })
                .map(|a| format!("{} #{} {}", a.task, a.attempt, result_column(&a.outcome)))
                .collect();
            let _ = writeln!(
                out,
                "  {} run {} {} {}: {}",
                r.workflow,
                r.id,
                datetime(r.started_us),
                r.result.map_or("-", RunResult::as_str),
                failed.join(", ")
            );
        }
    }
    out
}

pub fn stats(name: Option<&str>, json: bool, db: &DbArgs) -> Result<Exit, CliError> {
    let s = db.open()?;
    if let Some(name) = name {
        known_workflow(&s, name, db.user)?;
    }
    let err = |e: store::StoreError| CliError::System(e.to_string());
    let stats = s.task_stats(name).map_err(err)?;
    let failed = s
        .history(&Filter {
            workflow: name.map(str::to_string),
            failed_only: true,
            since_us: None,
            limit: Some(5),
        })
        .map_err(err)?;
    let mut failures = Vec::new();
    for r in failed {
        let a = s.attempts(r.id).map_err(err)?;
        failures.push((r, a));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"tasks": stats, "last_failures": failures.iter().map(|(r, _)| r).collect::<Vec<_>>()})
        );
    } else {
        print!("{}", format_stats(&stats, &failures));
    }
    Ok(Exit::Success)
}

/// `flow retry NAME [RUN]`: runs the tasks of a failed run that did not succeed again, in a
/// new run (trigger `retry`); what succeeded stays done. Only the workflow's last run can
/// be retried: what later runs did to the units would not be undone.
pub fn retry(name: &str, run: Option<i64>, db: &DbArgs) -> Result<Exit, CliError> {
    let u = super::user_flag(db.user);
    let s = db.open()?;
    // The last run that ran: runs skipped by the overlap rule since changed nothing.
    let last = s
        .last_run_that_ran(name)
        .map_err(|e| CliError::System(e.to_string()))?;
    let r = match (run, &last) {
        (None, Some(last)) => last.clone(),
        _ => find_run(&s, name, run, db.user)?,
    };
    let run = r.id;
    if last.as_ref().map(|l| l.id) != Some(r.id) {
        return Err(CliError::Invalid(format!(
            "run {run} of `{name}` is not its last run; only the last run can be retried \
             (start a new one with `flow run {name}{u}`)"
        )));
    }
    match r.result {
        None => {
            return Err(CliError::Invalid(format!(
                "run {run} of `{name}` is still going; wait for it, or `flow cancel {name}{u}`"
            )));
        }
        Some(RunResult::Succeeded | RunResult::Skipped) => {
            return Err(CliError::Invalid(format!(
                "run {run} of `{name}` did not fail: nothing to retry"
            )));
        }
        _ => {}
    }
    let dir = workflows::units_dir(db.user);
    let runtime = crate::runs::trigger::runtime_dir(db.user);
    let files = crate::install::installed(&dir)
        .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))?;
    let wf = crate::runs::installed_workflow(&files, name)
        .ok_or_else(|| super::run::not_installed(&files, name, &dir, db.user))?;
    // Which tasks succeeded comes from the history; their success markers are written
    // again (a run without retries clears its markers when it ends), so PID 1 skips them
    // when a task that needs them is started.
    let attempts = s
        .attempts(r.id)
        .map_err(|e| CliError::System(e.to_string()))?;
    let succeeded: std::collections::HashSet<&str> = attempts
        .iter()
        .filter(|a| a.outcome.result == AttemptResult::Succeeded)
        .map(|a| a.task.as_str())
        .collect();
    let ok = |t: &str| succeeded.contains(t);
    let state = runtime.join(names::runtime_subdir(name));
    std::fs::create_dir_all(&state)
        .map_err(|e| CliError::io(format!("cannot create {}", state.display()), e))?;
    for t in &wf.tasks {
        let marker = |ext: &str| state.join(format!("{}.{ext}", t.name));
        if ok(&t.name) {
            std::fs::write(marker("ok"), "")
                .map_err(|e| CliError::io(format!("cannot write {}", marker("ok").display()), e))?;
        } else {
            for ext in ["ok", "done"] {
                let _ = std::fs::remove_file(marker(ext));
            }
        }
    }
    // Start only the failed tasks whose upstreams all succeeded: the supervisor starts the
    // rest once they are final (starting a downstream unit now would pull its upstream in).
    let roots: Vec<&crate::runs::TaskInfo> = wf
        .tasks
        .iter()
        .filter(|t| !ok(&t.name) && t.needs.iter().all(|n| ok(n)))
        .collect();
    if roots.is_empty() {
        println!("Nothing to retry: every task of run {run} succeeded.");
        return Ok(Exit::Success);
    }
    let sd = crate::systemd::Systemd::connect(Bus::manager(db.user))
        .map_err(|e| CliError::System(e.to_string()))?;
    // Tells the supervisor that the task starts that follow are a retry of this run.
    let request = crate::runs::trigger::retry_request_file(&runtime, name);
    std::fs::write(&request, run.to_string())
        .map_err(|e| CliError::io(format!("cannot write {}", request.display()), e))?;
    for t in &roots {
        sd.start_unit_no_wait(&t.unit)
            .map_err(|e| CliError::System(e.to_string()))?;
    }
    println!(
        "Retrying {} of run {run}; follow with `flow history {name}{u}`.",
        roots
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::TriggerKind;

    const T0: i64 = 1_772_000_000_000_000; // 2026-02-25 06:13:20 UTC

    fn run(id: i64, wf: &str, trigger: &str, secs: Option<i64>, result: Option<&str>) -> Run {
        Run {
            id,
            workflow: wf.into(),
            trigger: TriggerKind::parse(trigger),
            started_us: T0 + id * 3_600_000_000,
            ended_us: secs.map(|s| T0 + id * 3_600_000_000 + s * 1_000_000),
            result: result.and_then(RunResult::parse),
        }
    }

    fn attempt(task: &str, n: u32, at: i64, ms: i64, result: &str, inv: bool) -> Attempt {
        Attempt {
            run_id: 7,
            task: task.into(),
            attempt: n,
            invocation_id: inv.then(|| format!("{task}{n}").repeat(8)[..32].to_string()),
            started_us: inv.then_some(T0 + at * 1000),
            ended_us: Some(T0 + (at + ms) * 1000),
            outcome: Outcome::parse_legacy(result),
            cpu_ns: None,
            memory_peak: None,
        }
    }

    #[test]
    fn since_takes_durations_dates_and_times() {
        let local = |y, mo, d, h, mi| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|d| d.and_hms_opt(h, mi, 0))
                .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
                .map(|t| t.timestamp_micros())
        };
        assert_eq!(parse_since("2026-03-01").ok(), local(2026, 3, 1, 0, 0));
        assert_eq!(
            parse_since("2026-03-01 14:30").ok(),
            local(2026, 3, 1, 14, 30)
        );
        assert_eq!(
            parse_since("2026-03-01T14:30:00").ok(),
            local(2026, 3, 1, 14, 30)
        );
        let ago = store::now_us() - parse_since("2h").expect("a duration");
        assert!((7_199_000_000..7_300_000_000).contains(&ago), "{ago}");
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-13-01").is_err());
    }

    #[test]
    fn history_table() {
        let runs = vec![
            run(9, "backup", "timer", None, None),
            run(8, "backup", "retry", Some(75), Some("succeeded")),
            run(7, "backup", "timer", Some(3), Some("failed")),
            run(6, "nightly-report", "manual", Some(0), Some("skipped")),
        ];
        insta::assert_snapshot!(format_history(&runs));
        insta::assert_snapshot!("history_empty", format_history(&[]));
    }

    #[test]
    fn status_with_attempts() {
        let r = run(7, "backup", "timer", Some(3), Some("failed"));
        let a = vec![
            attempt("dump-db", 1, 0, 420, "success", true),
            attempt("snapshot", 1, 500, 80, "exit-code 1", true),
            attempt("snapshot", 2, 1600, 90, "exit-code 1", true),
            attempt("snapshot", 3, 3700, 95, "signal 15", true),
            attempt("prune", 1, 3800, 0, "upstream_failed", false),
            attempt("alert", 1, 3800, 30, "success", true),
        ];
        insta::assert_snapshot!(format_run(&r, &a));
    }

    #[test]
    fn stats_table() {
        let stats = vec![
            TaskStats {
                workflow: "backup".into(),
                task: "dump-db".into(),
                attempts: 40,
                succeeded: 40,
                p50_ms: Some(420),
                p95_ms: Some(1310),
            },
            TaskStats {
                workflow: "backup".into(),
                task: "snapshot".into(),
                attempts: 52,
                succeeded: 37,
                p50_ms: Some(95_000),
                p95_ms: Some(182_000),
            },
        ];
        let r = run(7, "backup", "timer", Some(3), Some("failed"));
        let a = vec![
            attempt("snapshot", 3, 3700, 95, "exit-code 1", true),
            attempt("prune", 1, 3800, 0, "upstream_failed", false),
        ];
        insta::assert_snapshot!(format_stats(&stats, &[(r, a)]));
        insta::assert_snapshot!("stats_empty", format_stats(&[], &[]));
    }
}

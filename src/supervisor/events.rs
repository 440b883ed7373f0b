//! The supervisor's log: the story of the runs, as structured journal events.
//!
//! Each event of the catalog (`docs/events.md`) has its own `MESSAGE_ID` and carries the
//! `FLOW_*` fields that name what it is about (`FLOW_WORKFLOW`, `FLOW_RUN`, `FLOW_TASK`,
//! `FLOW_ATTEMPT`, `FLOW_RESULT`, ...), at a priority that fits what happened. So
//! `journalctl -u flow-supervisor` reads as the story of the runs, and
//! `journalctl MESSAGE_ID=<run ended> -o json -f` is an event feed other tools can rely on.
//!
//! Under systemd (stderr is the journal stream systemd set up, `JOURNAL_STREAM`) events go
//! to journald with its native protocol, fields and all, and nowhere else: a copy on stderr
//! would reach the journal a second time, as a plain line. Elsewhere (a terminal, a file,
//! no journal) they are readable lines on stderr.
//!
//! The events speak flow's one vocabulary (`crate::vocabulary`), as the history does.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use super::{ActiveRun, Final, St, Write};
use crate::compiler::names;
use crate::store::Attempt;
use crate::vocabulary::{AttemptResult, RunResult, TriggerKind};

/// The catalog's `MESSAGE_ID`s (128-bit, as systemd's own: `docs/events.md` lists them).
pub const RUN_STARTED: &str = "f74fd671d36c41b29bb1cd06b765d697";
pub const RUN_ENDED: &str = "990024d9557a4195b4651cfebcad286b";
pub const ATTEMPT_STARTED: &str = "267f3e6519cf47a081143d19df173662";
pub const ATTEMPT_ENDED: &str = "276710ab8f05442cb8c377648f4e82d4";
pub const RETRY_SCHEDULED: &str = "e4c3f49d2c5240d0aa64f9f93b68b27c";
pub const DEADLINE_REACHED: &str = "2f5fb72d93f5407784be92b5e9216343";
pub const TRIGGER_SKIPPED: &str = "773b39aad7234dd58a0ed66527e60bac";
pub const RUN_RECOVERED: &str = "e6faedf9e378465bb365b6704009cbde";
pub const DATABASE_ERROR: &str = "0b1fb77d54d14e5c992d3934f8d94058";
pub const DATABASE_WRITTEN: &str = "c2f9131a4d064b3fa5172bcea1f5d18f";

/// Every `MESSAGE_ID` of the catalog.
pub const CATALOG: [&str; 10] = [
    RUN_STARTED,
    RUN_ENDED,
    ATTEMPT_STARTED,
    ATTEMPT_ENDED,
    RETRY_SCHEDULED,
    DEADLINE_REACHED,
    TRIGGER_SKIPPED,
    RUN_RECOVERED,
    DATABASE_ERROR,
    DATABASE_WRITTEN,
];

/// A journal priority (syslog's): the supervisor uses four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// 3: the history could not be written.
    Err,
    /// 4: a run or an attempt that did not succeed, a deadline.
    Warning,
    /// 5: unusual but not wrong: a cancel, a skipped trigger, a recovery.
    Notice,
    /// 6: the ordinary course of a run.
    Info,
}

impl Priority {
    /// The tracing level that `tracing-journald`'s default mapping turns into this
    /// priority (ERROR 3, WARN 4, INFO 5, DEBUG 6).
    const fn level(self) -> Level {
        match self {
            Priority::Err => Level::ERROR,
            Priority::Warning => Level::WARN,
            Priority::Notice => Level::INFO,
            Priority::Info => Level::DEBUG,
        }
    }

    fn of(level: Level) -> Priority {
        match level {
            Level::ERROR => Priority::Err,
            Level::WARN => Priority::Warning,
            Level::INFO => Priority::Notice,
            _ => Priority::Info,
        }
    }

    /// syslog's name of it, as `journalctl -p` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Err => "err",
            Priority::Warning => "warning",
            Priority::Notice => "notice",
            Priority::Info => "info",
        }
    }
}

/// The priority of a run's end.
fn run_priority(r: RunResult) -> Priority {
    match r {
        RunResult::Succeeded | RunResult::Skipped => Priority::Info,
        RunResult::Canceled => Priority::Notice,
        RunResult::Failed | RunResult::TimedOut => Priority::Warning,
    }
}

/// The priority of an attempt's end.
fn attempt_priority(r: AttemptResult) -> Priority {
    match r {
        AttemptResult::Succeeded | AttemptResult::Skipped => Priority::Info,
        AttemptResult::UpstreamFailed | AttemptResult::Canceled => Priority::Notice,
        AttemptResult::Failed
        | AttemptResult::TimedOut
        | AttemptResult::OutOfMemory
        | AttemptResult::Killed => Priority::Warning,
    }
}

/// What the supervisor remembers for its log.
#[derive(Debug, Default)]
pub struct Log {
    /// Replaying the journal after a restart: facts the history has already were logged
    /// by the supervisor before (writes are idempotent, the log is not).
    pub recovering: bool,
    /// Attempts whose start was logged, as (run, task index, attempt): a unit sends more
    /// than one change signal while it is activating.
    started: std::collections::HashSet<(i64, usize, u32)>,
}

impl Log {
    /// Whether the start of this attempt is new to the log (and remembers it).
    pub fn first_start(&mut self, run: i64, task: usize, attempt: u32) -> bool {
        self.started.insert((run, task, attempt))
    }

    /// Forgets the starts of a run that ended.
    pub fn run_over(&mut self, run: i64) {
        self.started.retain(|s| s.0 != run);
    }
}

/// Set once a log is installed: until then (the benchmarks, unit tests) events that cost
/// a look-up to build are not built.
static ON: AtomicBool = AtomicBool::new(false);

/// Whether events are logged at all.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Installs the supervisor's log: journald under systemd, readable lines on stderr
/// elsewhere. flow's own events at every level, other crates' (the bus) from warnings up.
pub fn init() {
    let journal = wants_journal(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_id(),
    )
    .then(|| {
        tracing_journald::layer().ok().map(|l| {
            l.with_field_prefix(None)
                .with_syslog_identifier("flow-supervisor".into())
        })
    })
    .flatten();
    let stderr = journal.is_none().then_some(Stderr);
    let filter = tracing_subscriber::filter::filter_fn(|m| {
        m.target().starts_with("flow") || *m.level() <= Level::WARN
    });
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        ON.store(true, Ordering::Relaxed);
    }
}

/// `(st_dev, st_ino)` of stderr.
fn stderr_id() -> Option<(u64, u64)> {
    let st = nix::sys::stat::fstat(std::io::stderr()).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// Whether to log to journald: stderr is not a terminal, and it is the stream systemd
/// connected to the journal (it says so in `JOURNAL_STREAM=<device>:<inode>`, which a
/// child whose stderr was redirected inherits unchanged: hence the comparison).
fn wants_journal(tty: bool, journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(stream), Some((dev, ino))) = (journal_stream, stderr) else {
        return false;
    };
    !tty && stream == format!("{dev}:{ino}")
}

/// Readable lines on stderr: `<time> <priority>: <message>`.
struct Stderr;

impl<S: tracing::Subscriber> Layer<S> for Stderr {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        let line = line(
            &now.to_string(),
            Priority::of(*event.metadata().level()),
            &message.0,
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

fn line(time: &str, p: Priority, message: &str) -> String {
    format!("{time} {}: {message}\n", p.as_str())
}

/// An event's `message` field.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Logs an event at a priority chosen at run time (tracing's levels are constants at
/// each call site, hence one call site per priority).
macro_rules! emit {
    ($p:expr, $($rest:tt)+) => {
        match $p {
            Priority::Err => tracing::event!(Priority::Err.level(), $($rest)+),
            Priority::Warning => tracing::event!(Priority::Warning.level(), $($rest)+),
            Priority::Notice => tracing::event!(Priority::Notice.level(), $($rest)+),
            Priority::Info => tracing::event!(Priority::Info.level(), $($rest)+),
        }
    };
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// `1.2s`, `250ms`: a duration for people.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub fn run_started(wf: &str, run: i64, trigger: TriggerKind) {
    let trigger = trigger.as_str();
    emit!(
        Priority::Info,
        MESSAGE_ID = RUN_STARTED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_TRIGGER = trigger,
        "run {run} of {wf} started ({trigger})"
    );
}

/// A run ended; `failed_tasks`: the tasks whose outcome failed it.
pub fn run_ended(
    wf: &str,
    run: i64,
    r: RunResult,
    duration: Option<Duration>,
    failed_tasks: &[&str],
) {
    let result = r.as_str();
    let failed = (!failed_tasks.is_empty()).then(|| failed_tasks.join(" "));
    let after = duration
        .map(|d| format!(" after {}", human(d)))
        .unwrap_or_default();
    let which = failed
        .as_ref()
        .map(|f| format!(" (failed: {})", f.replace(' ', ", ")))
        .unwrap_or_default();
    emit!(
        run_priority(r),
        MESSAGE_ID = RUN_ENDED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_RESULT = result,
        FLOW_DURATION_MS = duration.map(ms),
        FLOW_FAILED_TASKS = failed.as_deref(),
        "run {run} of {wf} {}{after}{which}",
        result.replace('_', " ")
    );
}

pub fn attempt_started(wf: &str, run: i64, task: &str, attempt: u32) {
    emit!(
        Priority::Info,
        MESSAGE_ID = ATTEMPT_STARTED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_TASK = task,
        FLOW_ATTEMPT = attempt,
        "{wf}/{task}: attempt {attempt} of run {run} started"
    );
}

pub fn attempt_ended(wf: &str, a: &Attempt) {
    let o = &a.outcome;
    let result = o.result.as_str();
    let duration = a
        .started_us
        .zip(a.ended_us)
        .map(|(s, e)| Duration::from_micros(e.saturating_sub(s).max(0) as u64));
    let mut how = o.describe();
    if let Some(d) = duration {
        let _ = write!(how, " after {}", human(d));
    }
    let (task, attempt, run) = (&a.task, a.attempt, a.run_id);
    emit!(
        attempt_priority(o.result),
        MESSAGE_ID = ATTEMPT_ENDED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_TASK = task.as_str(),
        FLOW_ATTEMPT = attempt,
        FLOW_RESULT = result,
        FLOW_EXIT_CODE = o.exit_code,
        FLOW_SIGNAL = o.signal,
        FLOW_DURATION_MS = duration.map(ms),
        FLOW_INVOCATION_ID = a.invocation_id.as_deref(),
        "{wf}/{task}: attempt {attempt} of run {run} {how}"
    );
}

/// Task `task` of run `run` is tried again (its attempt `attempt`) in `wait`.
pub fn retry_scheduled(wf: &str, run: i64, task: &str, attempt: u32, wait: Duration) {
    let at_us = crate::store::now_us().saturating_add(ms(wait) as i64 * 1000);
    emit!(
        Priority::Info,
        MESSAGE_ID = RETRY_SCHEDULED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_TASK = task,
        FLOW_ATTEMPT = attempt,
        FLOW_RETRY_IN_MS = ms(wait),
        FLOW_RETRY_AT_US = at_us,
        "{wf}/{task}: retry in {} (attempt {attempt} of run {run})",
        human(wait)
    );
}

pub fn deadline_reached(wf: &str, run: i64, timeout: Option<Duration>) {
    let of = timeout
        .map(|t| format!(" ({} after it began)", human(t)))
        .unwrap_or_default();
    emit!(
        Priority::Warning,
        MESSAGE_ID = DEADLINE_REACHED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_TIMEOUT_MS = timeout.map(ms),
        "run {run} of {wf} reached its deadline{of}: stopping it"
    );
}

/// A trigger the overlap rule skipped, recorded as run `run` (result `skipped`);
/// `going`: the run it would have overlapped, when this supervisor has it open.
pub fn trigger_skipped(wf: &str, run: i64, trigger: TriggerKind, going: Option<i64>) {
    let trigger = trigger.as_str();
    let why = going
        .map(|g| format!("run {g} is still going"))
        .unwrap_or_else(|| "a run was still going".into());
    emit!(
        Priority::Notice,
        MESSAGE_ID = TRIGGER_SKIPPED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        FLOW_TRIGGER = trigger,
        FLOW_RESULT = RunResult::Skipped.as_str(),
        "{trigger} trigger of {wf} skipped by the overlap rule ({why}): recorded as run {run}"
    );
}

/// A run picked up after a restart of the supervisor: open in the history when it
/// stopped (`open`), or begun while none ran.
pub fn run_recovered(wf: &str, run: i64, open: bool) {
    let how = if open {
        "was going when the supervisor stopped"
    } else {
        "began while no supervisor ran"
    };
    emit!(
        Priority::Notice,
        MESSAGE_ID = RUN_RECOVERED,
        FLOW_WORKFLOW = wf,
        FLOW_RUN = run,
        "run {run} of {wf} {how}: what it did meanwhile is read back from the journal"
    );
}

/// The history cannot be written (or read); `kept`: records held in memory meanwhile.
pub fn database_error(db: &std::path::Path, error: &str, kept: Option<usize>, message: &str) {
    let db = db.display().to_string();
    emit!(
        Priority::Err,
        MESSAGE_ID = DATABASE_ERROR,
        FLOW_DATABASE = db.as_str(),
        FLOW_ERROR = error,
        FLOW_RECORDS_KEPT = kept,
        "{message}"
    );
}

/// The records kept in memory through database trouble are written.
pub fn database_written(db: &std::path::Path, written: usize) {
    let db = db.display().to_string();
    emit!(
        Priority::Notice,
        MESSAGE_ID = DATABASE_WRITTEN,
        FLOW_DATABASE = db.as_str(),
        FLOW_RECORDS_WRITTEN = written,
        "the run history is written again: {written} record(s) kept in memory are in it"
    );
}

/// The supervisor's side of the log: which event a fact it learned is.
impl super::Supervisor {
    /// Logs what a write to the history records: a run's start, a skipped trigger, an
    /// attempt's end (and the retry it leads to).
    pub(super) fn log_write(&self, w: &Write) {
        match w {
            Write::Run {
                id,
                workflow,
                trigger,
                ..
            } => run_started(workflow, *id, *trigger),
            Write::Skipped {
                id,
                workflow,
                trigger,
                ..
            } => trigger_skipped(
                workflow,
                *id,
                *trigger,
                self.runs.get(workflow).map(|r| r.id),
            ),
            Write::Attempt(a) => {
                let Some(run) = self.runs.values().find(|r| r.id == a.run_id) else {
                    return;
                };
                if self.log.recovering && self.recorded(a) {
                    return;
                }
                attempt_ended(&run.def.name, a);
                if a.outcome.result == AttemptResult::Succeeded {
                    return;
                }
                let Some(i) = run.def.tasks.iter().position(|t| t.name == a.task) else {
                    return;
                };
                if let St::Retry(at) = run.tasks[i].st {
                    let wait = at.saturating_duration_since(Instant::now());
                    retry_scheduled(&run.def.name, run.id, &a.task, a.attempt + 1, wait);
                }
            }
            Write::Finish { .. } | Write::Prune => {}
        }
    }

    /// Whether the history has this attempt already (a replayed one).
    fn recorded(&self, a: &Attempt) -> bool {
        self.store
            .attempts(a.run_id)
            .is_ok_and(|v| v.iter().any(|x| x.task == a.task && x.attempt == a.attempt))
    }

    /// A unit of flow's became `activating`: when it is a task of an open run, an attempt
    /// of it started.
    pub(super) fn log_attempt_started(&mut self, path: &str) {
        let Some(unit) = unit_of_path(path) else {
            return;
        };
        let Some(wf) = names::workflow_of_file(&unit) else {
            return;
        };
        let Some(run) = self.runs.get(&*wf) else {
            return;
        };
        let Some(i) = run.def.task_index(&unit) else {
            return;
        };
        if matches!(run.tasks[i].st, St::Final(_)) {
            return;
        }
        let attempt = run.tasks[i].attempts + 1;
        if self.log.first_start(run.id, i, attempt) {
            attempt_started(&run.def.name, run.id, &run.def.tasks[i].name, attempt);
        }
    }

    /// Logs the end of `run` (just taken out of the open runs) with `result`.
    pub(super) fn log_run_ended(&mut self, run: &ActiveRun, result: RunResult) {
        self.log.run_over(run.id);
        let failed: Vec<&str> = run
            .def
            .tasks
            .iter()
            .zip(&run.tasks)
            .filter(|(_, t)| t.st == St::Final(Final::Failed))
            .map(|(d, _)| d.name.as_str())
            .collect();
        let began = run.begin_us as i64;
        let duration = Duration::from_micros(run.end_us().saturating_sub(began).max(0) as u64);
        run_ended(&run.def.name, run.id, result, Some(duration), &failed);
    }
}

/// The unit name an object path of systemd's stands for (the inverse of
/// [`crate::systemd::watch::unit_path`]).
pub fn unit_of_path(path: &str) -> Option<String> {
    let label = path.strip_prefix("/org/freedesktop/systemd1/unit/")?;
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_go_through_tracing_levels_and_back() {
        for p in [
            Priority::Err,
            Priority::Warning,
            Priority::Notice,
            Priority::Info,
        ] {
            assert_eq!(Priority::of(p.level()), p);
        }
        assert_eq!(run_priority(RunResult::Failed), Priority::Warning);
        assert_eq!(run_priority(RunResult::Succeeded), Priority::Info);
        assert_eq!(attempt_priority(AttemptResult::Killed), Priority::Warning);
    }

    #[test]
    fn the_catalog_is_the_documented_one() {
        let doc = include_str!("../../docs/events.md");
        let mut seen = std::collections::HashSet::new();
        for id in CATALOG {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(seen.insert(id), "{id} twice");
            assert!(
                doc.contains(&format!("`{id}`")),
                "{id} is not in docs/events.md"
            );
        }
    }

    #[test]
    fn the_journal_only_for_the_stream_systemd_connected() {
        assert!(wants_journal(false, Some("8:42"), Some((8, 42))));
        // A terminal, or stderr redirected by hand under a unit: lines on stderr.
        assert!(!wants_journal(true, Some("8:42"), Some((8, 42))));
        assert!(!wants_journal(false, Some("8:42"), Some((8, 43))));
        assert!(!wants_journal(false, None, Some((8, 42))));
    }

    #[test]
    fn stderr_lines_are_readable() {
        assert_eq!(
            line(
                "2026-01-02 03:04:05",
                Priority::Warning,
                "run 3 of a failed"
            ),
            "2026-01-02 03:04:05 warning: run 3 of a failed\n"
        );
    }

    #[test]
    fn unit_paths_are_read_back() {
        let unit = "flow-a-b--c_d.service";
        let path = crate::systemd::watch::unit_path(unit);
        assert_eq!(unit_of_path(&path).as_deref(), Some(unit));
        assert_eq!(unit_of_path("/elsewhere"), None);
    }
}

//! YAML tree → workflow model. Checks every key, type and value, and collects every
//! problem instead of stopping at the first. References between tasks (`needs`) are kept
//! as names here and resolved by `validate`.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Display};
use std::sync::Arc;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::duration;
use super::model::{
    Backoff, Command, Hardening, HostKind, HostRef, Overlap, Schedule, Task, When, Workflow,
};
use super::names;
use super::schedule::{self, ScheduleError};
use super::service_keys::SERVICE_KEYS;
use super::suggest;
use super::yaml::{Node, Pos, Scalar, Span};

/// Keys a task may set and `defaults` may set for every task.
pub const SETTINGS_KEYS: &[&str] = &[
    "timeout",
    "retries",
    "retry_delay",
    "backoff",
    "env",
    "env_file",
    "working_dir",
    "user",
    "group",
    "memory_max",
    "cpu_quota",
    "nice",
    "io_weight",
    "hardening",
    "service",
];
pub const TASK_ONLY_KEYS: &[&str] = &["run", "exec", "needs", "when", "description"];
/// Every key of a task: `TASK_ONLY_KEYS` then `SETTINGS_KEYS`.
pub const TASK_KEYS: &[&str] = &[
    "run",
    "exec",
    "needs",
    "when",
    "description",
    "timeout",
    "retries",
    "retry_delay",
    "backoff",
    "env",
    "env_file",
    "working_dir",
    "user",
    "group",
    "memory_max",
    "cpu_quota",
    "nice",
    "io_weight",
    "hardening",
    "service",
];
pub const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "timezone",
    "catch_up",
    "jitter",
    "overlap",
    "timeout",
    "max_parallel",
    "memory_max",
    "cpu_quota",
    "env",
    "env_file",
    "defaults",
    "tasks",
];
pub const SCHEDULE_KEYS: &[&str] = &["cron", "calendar", "every"];

/// `[Service]` keys that flow writes itself, and the flow key to use instead.
pub const OWNED_SERVICE_KEYS: &[(&str, &str)] = &[
    ("Type", "flow runs every task as `Type=oneshot`"),
    ("ExecStart", "use `run` or `exec`"),
    (
        "RemainAfterExit",
        "flow needs tasks to return to inactive so runs can repeat",
    ),
    (
        "Restart",
        "use `retries`: `Restart=` on a oneshot does not hold the tasks that need it",
    ),
    ("RestartSec", "use `retry_delay`"),
    ("TimeoutStartSec", "use `timeout`"),
    ("TimeoutSec", "use `timeout`"),
    ("User", "use `user`"),
    ("Group", "use `group`"),
    ("WorkingDirectory", "use `working_dir`"),
    ("Environment", "use `env`"),
    ("EnvironmentFile", "use `env_file`"),
    ("MemoryMax", "use `memory_max`"),
    ("CPUQuota", "use `cpu_quota`"),
    ("Nice", "use `nice`"),
    ("IOWeight", "use `io_weight`"),
];

/// Largest value flow accepts for one environment variable or `exec` argument: the kernel
/// refuses a single argument or environment string over 128 KiB at exec time.
pub const MAX_ARG_BYTES: usize = 64 * 1024;

/// Largest total of all `exec` arguments: their quoted form must stay on one unit-file line,
/// which systemd reads up to 1 MiB, and quoting can make a byte four.
pub const MAX_ARGV_BYTES: usize = 128 * 1024;

/// Longest description flow accepts (it becomes one line of every unit).
pub const MAX_DESCRIPTION: usize = 4096;

/// Longest path systemd accepts (PATH_MAX less the final NUL), and longest path component.
const PATH_MAX: usize = 4095;
const NAME_MAX: usize = 255;

/// A workflow as decoded, before task references are resolved. Names borrow from the YAML
/// tree.
pub struct Parsed<'a> {
    pub workflow: Workflow,
    /// Per task (same order as `workflow.tasks`): the names it needs, with their positions.
    pub needs: Vec<Vec<(&'a str, Span)>>,
    /// Per task: the position of its name.
    pub task_spans: Vec<Span>,
    /// The names of the tasks that had errors and are not in `workflow.tasks` (so that
    /// needing one of them is not also reported as an unknown task).
    pub declared: Vec<&'a str>,
}

/// Decode a parsed YAML document. `default_name` is the file's stem.
pub fn decode<'a>(
    root: &'a Node,
    default_name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Parsed<'a>> {
    let mut d = Decoder {
        diags,
        host: Vec::new(),
    };
    let mut parsed = d.workflow(root, default_name)?;
    parsed.workflow.host = d.host;
    Some(parsed)
}

/// Task-level settings as written in `defaults` or a task, before merging.
#[derive(Default, Clone)]
struct Settings {
    timeout: Option<Duration>,
    retries: Option<u32>,
    retry_delay: Option<Duration>,
    backoff: Option<Backoff>,
    env: Arc<[(String, String)]>,
    env_files: Arc<[String]>,
    working_dir: Option<String>,
    user: Option<String>,
    group: Option<String>,
    memory_max: Option<String>,
    cpu_quota: Option<String>,
    nice: Option<i32>,
    io_weight: Option<u32>,
    hardening: Option<Hardening>,
    service: Arc<[(String, String)]>,
}

/// The entries of one mapping, after key checks: `(key, key span, value)`.
struct Fields<'a> {
    entries: Vec<(&'a str, Span, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, ..)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

/// "task `NAME`", for error messages: formatted only when one is reported.
#[derive(Clone, Copy)]
struct TaskWhat<'a>(&'a str);

impl Display for TaskWhat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task `{}`", self.0)
    }
}

struct Decoder<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// Files, directories and accounts named, for `Workflow::host`.
    host: Vec<HostRef>,
}

impl Decoder<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(span, message));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn on_host(&mut self, kind: HostKind, value: &str, span: Span) {
        self.host.push(HostRef {
            kind,
            value: value.to_string(),
            span,
        });
    }

    fn type_error(&mut self, node: &Node, what: impl Display, expected: &str) {
        let found = node.kind_name();
        self.error(
            node.span(),
            format!("{what} must be {expected}, found {found}"),
        );
    }

    /// Check a mapping's keys against `allowed`; report unknown and duplicate keys.
    /// `other_level` names keys that belong elsewhere, with a hint where.
    fn fields<'a>(
        &mut self,
        node: &'a Node,
        what: impl Display,
        allowed: &[&str],
        other_level: &[(&[&str], &str)],
    ) -> Option<Fields<'a>> {
        let Node::Map(entries, _) = node else {
            if !node.is_null() || what.to_string() == "the workflow" {
                self.type_error(node, what, "a mapping of keys");
            }
            return None;
        };
        let mut fields = Fields {
            entries: Vec::with_capacity(entries.len()),
        };
        for (key, value) in entries {
            let Node::Scalar(Scalar { value: k, span, .. }) = key else {
                self.error(key.span(), format!("keys in {what} must be plain words"));
                continue;
            };
            if !allowed.contains(&k.as_str()) {
                let mut help = suggest::nearest(k, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"));
                for (keys, hint) in other_level {
                    if keys.contains(&k.as_str()) {
                        help = Some(hint.replace("{}", k));
                    }
                }
                let help = help.unwrap_or_else(|| format!("valid keys are {}", list(allowed)));
                self.error(*span, format!("unknown key `{k}` in {what}"))
                    .help = Some(help);
                continue;
            }
            if let Some((_, first, _)) = fields.entries.iter().find(|(seen, ..)| seen == k) {
                let line = first.start.line;
                self.error(*span, format!("key `{k}` appears twice in {what}"))
                    .help = Some(format!("remove one of them (the first is on line {line})"));
                continue;
            }
            fields.entries.push((k.as_str(), *span, value));
        }
        Some(fields)
    }

    fn workflow<'a>(&mut self, root: &'a Node, default_name: &str) -> Option<Parsed<'a>> {
        let task_hint: &[&str] = TASK_ONLY_KEYS;
        let fields = self.fields(
            root,
            "the workflow",
            WORKFLOW_KEYS,
            &[(
                task_hint,
                "`{}` belongs to a task: put it under `tasks: NAME:`",
            )],
        )?;
        let name = match fields.get("name") {
            Some(node) => {
                self.string(node, "`name`")
                    .and_then(|n| match names::check_workflow(&n) {
                        Ok(()) => Some(n),
                        Err((msg, help)) => {
                            self.error(node.span(), msg).help = Some(help);
                            None
                        }
                    })
            }
            None => match names::check_workflow(default_name) {
                Ok(()) => Some(default_name.to_string()),
                Err((msg, help)) => {
                    self.diags.push(
                        Diagnostic::new(
                            None,
                            format!("the file name gives the workflow its name, but {msg}"),
                        )
                        .help(format!("rename the file or set `name:` in it; {help}")),
                    );
                    None
                }
            },
        };
        let description = fields.get("description").and_then(|n| self.description(n));
        let timezone = fields.get("timezone").and_then(|n| {
            let tz = self.string(n, "`timezone`")?;
            self.schedule_result(n, schedule::timezone::validate(&tz))?;
            Some(tz)
        });
        let schedule = fields.get("schedule").and_then(|n| self.schedule(n));
        let catch_up = fields
            .get("catch_up")
            .and_then(|n| self.bool(n, "`catch_up`"))
            .unwrap_or(false);
        let jitter = fields
            .get("jitter")
            .and_then(|n| self.duration(n, "`jitter`"));
        let overlap = fields
            .get("overlap")
            .and_then(|n| {
                self.choice(n, "`overlap`", &Overlap::NAMES, |s| match s {
                    "skip" => Some(Overlap::Skip),
                    "queue" => Some(Overlap::Queue),
                    "replace" => Some(Overlap::Replace),
                    _ => None,
                })
            })
            .unwrap_or_default();
        let timeout = fields
            .get("timeout")
            .and_then(|n| self.positive_duration(n, "`timeout`"));
        let max_parallel = fields
            .get("max_parallel")
            .and_then(|n| self.integer(n, "`max_parallel`", 1, 10_000))
            .map(|v| v as u32);
        let memory_max = fields.get("memory_max").and_then(|n| self.memory_max(n));
        let cpu_quota = fields.get("cpu_quota").and_then(|n| self.cpu_quota(n));
        self.schedule_consistency(&fields, schedule.as_ref(), timezone.as_deref(), catch_up);

        let mut base = Settings::default();
        if let Some(n) = fields.get("env") {
            base.env = self.env(n).into();
        }
        if let Some(n) = fields.get("env_file") {
            base.env_files = self.env_files(n).into();
        }
        if let Some(n) = fields.get("defaults") {
            let wf_hint: &[&str] = WORKFLOW_KEYS;
            if let Some(df) = self.fields(
                n,
                "`defaults`",
                SETTINGS_KEYS,
                &[
                    (
                        TASK_ONLY_KEYS,
                        "`{}` cannot have a default: set it on each task",
                    ),
                    (wf_hint, "`{}` is a workflow key: put it at the top level"),
                ],
            ) {
                let defaults = self.settings(&df);
                base = merge(&base, &defaults);
            }
        }

        let mut tasks = Vec::new();
        let mut needs = Vec::new();
        let mut task_spans = Vec::new();
        let mut declared = Vec::new();
        match fields.get("tasks") {
            None => {
                let end = root.span().start;
                self.error(
                    Span {
                        start: end,
                        end: Pos {
                            line: end.line,
                            col: end.col + 1,
                        },
                    },
                    "the workflow has no `tasks`",
                )
                .help = Some(
                    "add `tasks:` with at least one task, e.g. `tasks: {hello: {run: echo hello}}`"
                        .into(),
                );
            }
            Some(node) => match node {
                Node::Map(entries, _) if !entries.is_empty() => {
                    tasks.reserve(entries.len());
                    needs.reserve(entries.len());
                    task_spans.reserve(entries.len());
                    // Task name → the line of its first definition: one lookup per task
                    // keeps large workflows linear.
                    let mut seen: HashMap<&str, usize, foldhash::fast::RandomState> =
                        HashMap::with_capacity_and_hasher(entries.len(), Default::default());
                    for (key, value) in entries {
                        let Node::Scalar(Scalar {
                            value: tname, span, ..
                        }) = key
                        else {
                            self.error(key.span(), "task names must be plain words");
                            continue;
                        };
                        if let Some(&line) = seen.get(tname.as_str()) {
                            self.error(*span, format!("task `{tname}` is defined twice"))
                                .help = Some(format!(
                                "rename or remove one of them (the first is on line {line})"
                            ));
                            continue;
                        }
                        seen.insert(tname.as_str(), span.start.line);
                        if let Err((msg, help)) = names::check_task(tname) {
                            self.error(*span, msg).help = Some(help);
                        }
                        if let Some((task, task_needs)) = self.task(tname, value, &base, *span) {
                            tasks.push(task);
                            needs.push(task_needs);
                            task_spans.push(*span);
                        } else {
                            declared.push(tname.as_str());
                        }
                    }
                }
                Node::Map(..) => {
                    self.error(node.span(), "the workflow has no tasks").help = Some(
                        "add at least one task under `tasks:`, e.g. `hello: {run: echo hello}`"
                            .into(),
                    );
                }
                other if other.is_null() => {
                    self.error(other.span(), "the workflow has no tasks").help = Some(
                        "add at least one task under `tasks:`, e.g. `hello: {run: echo hello}`"
                            .into(),
                    );
                }
                Node::Seq(..) => {
                    self.error(
                        node.span(),
                        "`tasks` must be a mapping from task name to task, found a list",
                    )
                    .help = Some("write `tasks:` then one `name:` per task, not `- name`".into());
                }
                other => self.type_error(other, "`tasks`", "a mapping from task name to task"),
            },
        }

        Some(Parsed {
            workflow: Workflow {
                name: name?,
                description,
                schedule,
                timezone,
                catch_up,
                jitter,
                overlap,
                timeout,
                max_parallel,
                memory_max,
                cpu_quota,
                tasks,
                host: Vec::new(),
            },
            needs,
            task_spans,
            declared,
        })
    }

    fn schedule_consistency(
        &mut self,
        fields: &Fields<'_>,
        schedule: Option<&Schedule>,
        tz: Option<&str>,
        catch_up: bool,
    ) {
        let span_of = |key: &str| {
            fields
                .entries
                .iter()
                .find(|(k, ..)| *k == key)
                .map(|(_, s, _)| *s)
        };
        for key in ["catch_up", "jitter", "timezone"] {
            if schedule.is_none()
                && fields.get(key).is_some()
                && let Some(span) = span_of(key)
            {
                self.error(span, format!("`{key}` needs a `schedule`")).help =
                    Some("add a `schedule:` or remove this key".into());
            }
        }
        match schedule {
            Some(Schedule::Every(_)) | Some(Schedule::Reboot) => {
                if let Some(span) = span_of("timezone") {
                    self.error(
                        span,
                        "`timezone` applies to calendar and cron schedules only",
                    )
                    .help = Some("remove `timezone`".into());
                }
                if catch_up && let Some(span) = span_of("catch_up") {
                    self.error(
                        span,
                        "`catch_up` applies to calendar and cron schedules only",
                    )
                    .help = Some(
                        "remove `catch_up`: interval and @reboot schedules have no missed times"
                            .into(),
                    );
                }
            }
            Some(Schedule::Calendar(expr)) if tz.is_some() => {
                if schedule::calendar::validate(expr).is_ok_and(|info| info.has_timezone)
                    && let Some(span) = span_of("timezone")
                {
                    self.error(span, "the calendar expression already names a time zone")
                        .help =
                        Some("remove `timezone`, or the zone at the end of the expression".into());
                }
            }
            _ => {}
        }
    }

    fn schedule(&mut self, node: &Node) -> Option<Schedule> {
        let (kind, value) = match node {
            Node::Scalar(_) => ("cron", node),
            Node::Map(..) => {
                let fields = self.fields(node, "`schedule`", SCHEDULE_KEYS, &[])?;
                if fields.entries.len() != 1 {
                    self.error(
                        node.span(),
                        "`schedule` must have exactly one of `cron`, `calendar` or `every`",
                    );
                    return None;
                }
                let (k, _, v) = fields.entries[0];
                (k, v)
            }
            other => {
                self.type_error(
                    other,
                    "`schedule`",
                    "a cron expression or one of `{calendar: ...}`, `{every: ...}`",
                );
                return None;
            }
        };
        let text = self.string(value, "`schedule`")?;
        match kind {
            "every" => {
                let d = self.positive_duration(value, "`every`")?;
                Some(Schedule::Every(d))
            }
            "calendar" => {
                self.schedule_result(value, schedule::calendar::validate(&text))?;
                Some(Schedule::Calendar(text))
            }
            _ => match self.schedule_result(value, schedule::cron::translate(&text))? {
                schedule::cron::CronSchedule::Reboot => Some(Schedule::Reboot),
                schedule::cron::CronSchedule::Calendars(calendars) => Some(Schedule::Cron {
                    expr: text,
                    calendars,
                }),
            },
        }
    }

    /// Report a schedule error at its exact place in the scalar when the scalar is written
    /// on one line as-is (plain), else at the whole scalar.
    fn schedule_result<T>(&mut self, node: &Node, result: Result<T, ScheduleError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let mut span = node.span();
                if let Node::Scalar(s) = node {
                    let quote = usize::from(!s.plain);
                    if s.span.start.line == s.span.end.line {
                        let col = s.span.start.col
                            + quote
                            + s.value.get(..e.offset).map_or(0, |p| p.chars().count());
                        let len = s
                            .value
                            .get(e.offset..e.offset + e.len)
                            .map_or(1, |p| p.chars().count().max(1));
                        span = Span {
                            start: Pos {
                                line: span.start.line,
                                col,
                            },
                            end: Pos {
                                line: span.start.line,
                                col: col + len,
                            },
                        };
                    }
                }
                self.error(span, e.message).help = e.help;
                None
            }
        }
    }

    fn task<'a>(
        &mut self,
        name: &str,
        node: &'a Node,
        base: &Settings,
        name_span: Span,
    ) -> Option<(Task, Vec<(&'a str, Span)>)> {
        // Formatted only if there is an error to report.
        let what = TaskWhat(name);
        let wf_hint: &[&str] = WORKFLOW_KEYS;
        // A bare string is a shorthand for `run:`, with the same checks.
        if let Node::Scalar(_) = node
            && !node.is_null()
        {
            let script = self.script(node)?;
            return Some((
                base_task(name, Command::Shell(script), base.clone()),
                Vec::new(),
            ));
        }
        let Some(fields) = self.fields(
            node,
            what,
            TASK_KEYS,
            &[(wf_hint, "`{}` is a workflow key: put it at the top level")],
        ) else {
            if node.is_null() {
                self.error(name_span, format!("{what} has nothing to run"))
                    .help =
                    Some("give it `run: <shell command>` or `exec: [program, args...]`".into());
            }
            return None;
        };
        let command = match (fields.get("run"), fields.get("exec")) {
            (Some(_), Some(exec)) => {
                self.error(exec.span(), format!("{what} has both `run` and `exec`"))
                    .help = Some(
                    "keep one: `run` for a shell command, `exec` for a program and its arguments"
                        .into(),
                );
                None
            }
            (Some(run), None) => self.script(run).map(Command::Shell),
            (None, Some(exec)) => self.exec(exec).map(Command::Exec),
            (None, None) => {
                self.error(name_span, format!("{what} has nothing to run"))
                    .help =
                    Some("give it `run: <shell command>` or `exec: [program, args...]`".into());
                None
            }
        };
        let needs = match fields.get("needs") {
            None => Vec::new(),
            Some(n) => self.names_list(n, "`needs`"),
        };
        let when = fields
            .get("when")
            .and_then(|n| {
                self.choice(n, "`when`", &When::NAMES, |s| match s {
                    "all_success" => Some(When::AllSuccess),
                    "always" => Some(When::Always),
                    "on_failure" => Some(When::OnFailure),
                    _ => None,
                })
            })
            .unwrap_or_default();
        let needs_nothing = fields
            .get("needs")
            .is_none_or(|n| n.is_null() || matches!(n, Node::Seq(items, _) if items.is_empty()));
        if when != When::AllSuccess
            && needs_nothing
            && let Some(node) = fields.get("when")
        {
            // It would have nothing to follow, and would run at the start of every run.
            let w = when.as_str();
            self.error(
                node.span(),
                format!("{what} has `when: {w}` but no `needs`"),
            )
            .help = Some(format!(
                "`when: {w}` runs a task after the tasks it needs: add `needs: [TASK, ...]`, or remove `when` to run it at the start of every run"
            ));
        }
        let description = fields.get("description").and_then(|n| self.description(n));
        let own = self.settings(&fields);
        // A task whose command is wrong still takes part in the graph checks; the error is
        // already recorded, so nothing is emitted from this placeholder.
        let command = command.unwrap_or(Command::Shell(String::new()));
        let mut task = base_task(name, command, merge(base, &own));
        task.when = when;
        task.description = description;
        Some((task, needs))
    }

    fn settings(&mut self, f: &Fields<'_>) -> Settings {
        let mut s = Settings {
            timeout: f
                .get("timeout")
                .and_then(|n| self.positive_duration(n, "`timeout`")),
            retries: f
                .get("retries")
                .and_then(|n| self.integer(n, "`retries`", 0, 100))
                .map(|v| v as u32),
            retry_delay: f
                .get("retry_delay")
                .and_then(|n| self.duration(n, "`retry_delay`")),
            backoff: f.get("backoff").and_then(|n| {
                self.choice(n, "`backoff`", &Backoff::NAMES, |s| match s {
                    "fixed" => Some(Backoff::Fixed),
                    "exponential" => Some(Backoff::Exponential),
                    _ => None,
                })
            }),
            hardening: f.get("hardening").and_then(|n| {
                self.choice(n, "`hardening`", &Hardening::NAMES, |s| match s {
                    "none" => Some(Hardening::None),
                    "basic" => Some(Hardening::Basic),
                    "strict" => Some(Hardening::Strict),
                    _ => None,
                })
            }),
            nice: f
                .get("nice")
                .and_then(|n| self.integer(n, "`nice`", -20, 19))
                .map(|v| v as i32),
            io_weight: f
                .get("io_weight")
                .and_then(|n| self.integer(n, "`io_weight`", 1, 10_000))
                .map(|v| v as u32),
            ..Settings::default()
        };
        if let Some(n) = f.get("env") {
            s.env = self.env(n).into();
        }
        if let Some(n) = f.get("env_file") {
            s.env_files = self.env_files(n).into();
        }
        if let Some(n) = f.get("service") {
            s.service = self.service(n).into();
        }
        s.working_dir = f.get("working_dir").and_then(|n| {
            let dir = self.string(n, "`working_dir`")?;
            if dir == "~" {
                Some(dir)
            } else if dir.starts_with('/') {
                self.path(n, "`working_dir`", &dir)?;
                self.on_host(HostKind::WorkingDir, &dir, n.span());
                Some(dir)
            } else {
                self.error(
                    n.span(),
                    format!("`working_dir` must be an absolute path, found `{dir}`"),
                )
                .help = Some(
                    "start it with `/`, e.g. `/home/pi`, or write `~` for the user's home".into(),
                );
                None
            }
        });
        for (key, slot) in [("user", &mut s.user), ("group", &mut s.group)] {
            *slot = f.get(key).and_then(|n| {
                let v = self.string(n, &format!("`{key}`"))?;
                match names::check_account(&v) {
                    // systemd warns on every load that this is not safe: `nobody` owns files
                    // that nobody should.
                    Ok(()) if key == "user" && v == "nobody" => {
                        self.error(n.span(), "`user: nobody` is refused: systemd warns at every load that running a service as `nobody` is unsafe")
                            .help = Some("create a user for this task (`adduser --system NAME`), or set `service: {DynamicUser: yes}` for a throwaway one".into());
                        None
                    }
                    Ok(()) => {
                        let kind = if key == "user" {
                            HostKind::User
                        } else {
                            HostKind::Group
                        };
                        self.on_host(kind, &v, n.span());
                        Some(v)
                    }
                    Err(why) => {
                        self.error(n.span(), format!("`{v}` is not a valid {key} name: {why}"))
                            .help = Some(format!(
                            "use a {key} name like `pi` or `www-data` (a letter or `_`, then letters, digits, `_` or `-`, at most 31), or a numeric id"
                        ));
                        None
                    }
                }
            });
        }
        s.memory_max = f.get("memory_max").and_then(|n| self.memory_max(n));
        s.cpu_quota = f.get("cpu_quota").and_then(|n| self.cpu_quota(n));
        s
    }

    /// `memory_max` of a task, or of a whole workflow (its slice).
    fn memory_max(&mut self, n: &Node) -> Option<String> {
        let v = self.string(n, "`memory_max`")?;
        if is_memory_size(v.trim()) && v.trim() == v {
            Some(v)
        } else {
            self.error(n.span(), format!("`{v}` is not a memory size"))
                .help = Some("write bytes with a K, M, G or T suffix (powers of 1024) like `512M`, or a share of RAM like `50%`".into());
            None
        }
    }

    /// `cpu_quota` of a task, or of a whole workflow (its slice).
    fn cpu_quota(&mut self, n: &Node) -> Option<String> {
        let v = self.string(n, "`cpu_quota`")?;
        match v.strip_suffix('%').map(str::parse::<u32>) {
            // systemd keeps the quota as a 32-bit count of 1/100 %.
            Some(Ok(p)) if p > 0 && p <= MAX_CPU_QUOTA => Some(v),
            _ => {
                self.error(n.span(), format!("`{v}` is not a CPU quota"))
                    .help = Some(format!(
                    "write a whole percentage of one CPU from `1%` to `{MAX_CPU_QUOTA}%`, e.g. `50%`; `200%` is two full CPUs"
                ));
                None
            }
        }
    }

    /// A `run:` script (or the shorthand `task: script`).
    fn script(&mut self, node: &Node) -> Option<String> {
        let script = self.string(node, "`run`")?;
        if script.trim().is_empty() {
            self.error(node.span(), "`run` is empty").help =
                Some("write the shell command to run".into());
            return None;
        }
        Some(script)
    }

    fn exec(&mut self, node: &Node) -> Option<Vec<String>> {
        let Node::Seq(items, _) = node else {
            self.type_error(node, "`exec`", "a list: the program, then its arguments");
            return None;
        };
        if items.is_empty() {
            self.error(node.span(), "`exec` is empty").help = Some(
                "write the program and its arguments, e.g. `[/usr/bin/rsync, -a, /src, /dst]`"
                    .into(),
            );
            return None;
        }
        let mut argv = Vec::with_capacity(items.len());
        for item in items {
            let arg = self.string(item, "each `exec` item")?;
            if arg.contains('\0') {
                self.error(item.span(), "an `exec` argument contains a NUL character");
                return None;
            }
            if arg.len() > MAX_ARG_BYTES {
                self.error(
                    item.span(),
                    format!(
                        "this argument is {} bytes; the limit is {MAX_ARG_BYTES}",
                        arg.len()
                    ),
                )
                .help = Some("put large data in a file and pass its path".into());
                return None;
            }
            argv.push(arg);
        }
        if let Err((message, help)) = check_program(&argv[0]) {
            self.error(items[0].span(), message).help = Some(help);
            return None;
        }
        let total: usize = argv.iter().map(String::len).sum();
        if total > MAX_ARGV_BYTES {
            self.error(
                node.span(),
                format!("`exec` arguments add up to {total} bytes; the limit is {MAX_ARGV_BYTES}"),
            )
            .help = Some("put large data in a file and pass its path".into());
            return None;
        }
        Some(argv)
    }

    fn env(&mut self, node: &Node) -> Vec<(String, String)> {
        let Node::Map(entries, _) = node else {
            self.type_error(node, "`env`", "a mapping of variable names to values");
            return Vec::new();
        };
        let mut env: Vec<(String, String)> = Vec::with_capacity(entries.len());
        // Names seen: one lookup per key keeps 100,000 keys linear.
        let mut seen: HashSet<&str, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(entries.len(), Default::default());
        for (k, v) in entries {
            let Some(name) = self.str(k, "an `env` name") else {
                continue;
            };
            if !names::is_env_name(name) {
                self.error(
                    k.span(),
                    format!("`{name}` is not a valid environment variable name"),
                )
                .help = Some("use letters, digits and `_`, not starting with a digit".into());
                continue;
            }
            let value = if v.is_null() {
                Some(String::new())
            } else {
                self.string(v, &format!("`env.{name}`"))
            };
            let Some(value) = value else { continue };
            if value.contains('\0') || value.len() > MAX_ARG_BYTES {
                self.error(
                    v.span(),
                    format!("`{name}` is too large or contains a NUL character"),
                )
                .help = Some(format!(
                    "keep values under {MAX_ARG_BYTES} bytes; put large data in a file"
                ));
                continue;
            }
            if !seen.insert(name) {
                self.error(k.span(), format!("`{name}` is set twice in `env`"));
                continue;
            }
            env.push((name.to_string(), value));
        }
        env
    }

    fn env_files(&mut self, node: &Node) -> Vec<String> {
        let items: Vec<&Node> = match node {
            Node::Seq(items, _) => items.iter().collect(),
            other => vec![other],
        };
        items
            .into_iter()
            .filter_map(|n| {
                let path = self.string(n, "`env_file`")?;
                let bare = path.strip_prefix('-').unwrap_or(&path);
                if bare.starts_with('/') {
                    self.path(n, "`env_file`", bare)?;
                    // `-`: the file may be missing.
                    if bare.len() == path.len() {
                        self.on_host(HostKind::EnvFile, bare, n.span());
                    }
                    Some(path)
                } else {
                    self.error(n.span(), format!("`env_file` must be an absolute path, found `{path}`"))
                        .help = Some("e.g. `/etc/flow/backup.env`; start it with `-` to allow the file to be missing".into());
                    None
                }
            })
            .collect()
    }

    fn service(&mut self, node: &Node) -> Vec<(String, String)> {
        let Node::Map(entries, _) = node else {
            self.type_error(
                node,
                "`service`",
                "a mapping of systemd `[Service]` keys to values",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(key) = self.string(k, "a `service` key") else {
                continue;
            };
            if let Some((_, instead)) = OWNED_SERVICE_KEYS.iter().find(|(owned, _)| *owned == key) {
                self.error(k.span(), format!("flow sets `{key}` itself"))
                    .help = Some((*instead).to_string());
                continue;
            }
            if !SERVICE_KEYS.contains(&key.as_str()) {
                let help = suggest::nearest(&key, SERVICE_KEYS.iter().copied()).map_or_else(
                    || {
                        "see systemd.exec(5), systemd.service(5) and systemd.resource-control(5)"
                            .to_string()
                    },
                    |s| format!("did you mean `{s}`?"),
                );
                self.error(k.span(), format!("`{key}` is not a systemd [Service] key"))
                    .help = Some(help);
                continue;
            }
            let values: Vec<&Node> = match v {
                Node::Seq(items, _) => items.iter().collect(),
                other => vec![other],
            };
            for value in values {
                let Some(text) = self.string(value, &format!("`service.{key}`")) else {
                    continue;
                };
                if let Err(why) = check_raw_value(&text) {
                    self.error(value.span(), format!("`service.{key}` {why}"))
                        .help = Some("values are written as they are into the unit file: one line, systemd's syntax".into());
                    continue;
                }
                out.push((key.clone(), text));
            }
        }
        out
    }

    fn names_list<'a>(&mut self, node: &'a Node, what: &str) -> Vec<(&'a str, Span)> {
        let items: &[Node] = match node {
            Node::Seq(items, _) => items,
            Node::Scalar(_) if !node.is_null() => std::slice::from_ref(node),
            _ => {
                self.type_error(node, what, "a list of task names");
                return Vec::new();
            }
        };
        let mut names = Vec::with_capacity(items.len());
        for n in items {
            if let Some(s) = self.str(n, "a task name in `needs`") {
                names.push((s, n.span()));
            }
        }
        names
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        self.str(node, what).map(str::to_string)
    }

    /// `string`, borrowed from the tree.
    fn str<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a str> {
        match node {
            Node::Scalar(s) if !node.is_null() => {
                self.clean_text(node, &s.value, what)?;
                Some(s.value.as_str())
            }
            _ => {
                self.type_error(node, what, "a string");
                None
            }
        }
    }

    /// Refuse characters no unit file may hold: NUL ends a C string, and systemd rejects
    /// a line holding a Unicode noncharacter (U+FFFE, U+FFFF, U+FDD0…U+FDEF, …) as not
    /// "UTF-8 clean".
    fn clean_text(&mut self, node: &Node, text: &str, what: &str) -> Option<()> {
        // Every noncharacter is encoded in UTF-8 starting with byte 0xEF or above: text
        // without those bytes and without NUL needs no closer look.
        if !text.bytes().any(|b| b == 0 || b >= 0xEF) {
            return Some(());
        }
        let Some(bad) = text.chars().find(|&c| c == '\0' || is_noncharacter(c)) else {
            return Some(());
        };
        let message = if bad == '\0' {
            format!("{what} contains a NUL character")
        } else {
            format!(
                "{what} contains U+{:04X}, a Unicode noncharacter, which systemd refuses",
                bad as u32
            )
        };
        self.error(node.span(), message).help = Some(
            "remove it (an escape such as `\\0` or `\\uFFFF` in a quoted string writes one)".into(),
        );
        None
    }

    fn description(&mut self, node: &Node) -> Option<String> {
        let text = self.string(node, "`description`")?;
        if text.chars().count() > MAX_DESCRIPTION {
            self.error(
                node.span(),
                format!("`description` is longer than {MAX_DESCRIPTION} characters"),
            )
            .help = Some("keep it to a sentence; put details in a comment".into());
            return None;
        }
        Some(text)
    }

    /// An absolute path that systemd takes as written: see `check_path`.
    fn path(&mut self, node: &Node, what: &str, text: &str) -> Option<()> {
        match check_path(text) {
            Ok(()) => Some(()),
            Err((message, help)) => {
                self.error(node.span(), format!("{what}: {message}")).help = Some(help);
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node {
            Node::Scalar(s) if s.plain => {
                let v = super::yaml::parse_bool(&s.value);
                if v.is_none() {
                    self.type_error(node, what, "`true` or `false`");
                }
                v
            }
            _ => {
                self.type_error(node, what, "`true` or `false`");
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let value = match node {
            Node::Scalar(s) if s.plain => s.value.parse::<i64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.error(
                    node.span(),
                    format!("{what} must be between {min} and {max}, found {v}"),
                );
                None
            }
            None => {
                self.type_error(node, what, "a whole number");
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match node {
            Node::Scalar(s) if !node.is_null() => s.value.as_str(),
            _ => {
                self.type_error(node, what, "a duration like `30s` or `5m`");
                return None;
            }
        };
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.error(node.span(), format!("{what}: {msg}")).help =
                    Some(duration::HELP.into());
                None
            }
        }
    }

    fn positive_duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let d = self.duration(node, what)?;
        if d.is_zero() {
            let help = if what == "`every`" {
                "write an interval such as `15m` or `1h`"
            } else {
                "leave the key out for no limit"
            };
            self.error(node.span(), format!("{what} must be longer than zero"))
                .help = Some(help.into());
            return None;
        }
        Some(d)
    }

    fn choice<T>(
        &mut self,
        node: &Node,
        what: &str,
        names: &[&str],
        pick: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(node, what)?;
        let v = pick(&text);
        if v.is_none() {
            let help = suggest::nearest(&text, names.iter().copied()).map_or_else(
                || format!("use one of {}", list(names)),
                |s| format!("did you mean `{s}`?"),
            );
            self.error(
                node.span(),
                format!("{what} must be one of {}, found `{text}`", list(names)),
            )
            .help = Some(help);
        }
        v
    }
}

fn base_task(name: &str, command: Command, s: Settings) -> Task {
    Task {
        name: name.to_string(),
        description: None,
        command,
        needs: Vec::new(),
        when: When::AllSuccess,
        timeout: s.timeout,
        retries: s.retries.unwrap_or(0),
        retry_delay: s.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
        backoff: s.backoff.unwrap_or_default(),
        env: s.env,
        env_files: s.env_files,
        working_dir: s.working_dir,
        user: s.user,
        group: s.group,
        memory_max: s.memory_max,
        cpu_quota: s.cpu_quota,
        nice: s.nice,
        io_weight: s.io_weight,
        hardening: s.hardening.unwrap_or_default(),
        service: s.service,
    }
}

/// The delay before a retry when `retry_delay` is not set.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(10);

/// `over` wins; `env` and `service` merge by name; `env_file`s accumulate. What `over`
/// does not add to is shared with `base`, not copied: every task of a workflow starts from
/// the same base.
fn merge(base: &Settings, over: &Settings) -> Settings {
    let env: Arc<[(String, String)]> = if over.env.is_empty() {
        base.env.clone()
    } else if base.env.is_empty() {
        over.env.clone()
    } else {
        let mut env: Vec<(String, String)> = base.env.to_vec();
        let mut at: HashMap<&str, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(base.env.len(), Default::default());
        for (i, (k, _)) in base.env.iter().enumerate() {
            at.insert(k.as_str(), i);
        }
        for (k, v) in over.env.iter() {
            match at.get(k.as_str()) {
                Some(&i) => env[i].1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        env.into()
    };
    let service: Arc<[(String, String)]> = if over.service.is_empty() {
        base.service.clone()
    } else if base.service.is_empty() {
        over.service.clone()
    } else {
        let overridden: HashSet<&str, foldhash::fast::RandomState> =
            over.service.iter().map(|(k, _)| k.as_str()).collect();
        base.service
            .iter()
            .filter(|(k, _)| !overridden.contains(k.as_str()))
            .chain(over.service.iter())
            .cloned()
            .collect()
    };
    let env_files: Arc<[String]> = if over.env_files.is_empty() {
        base.env_files.clone()
    } else if base.env_files.is_empty() {
        over.env_files.clone()
    } else {
        base.env_files
            .iter()
            .chain(over.env_files.iter())
            .cloned()
            .collect()
    };
    Settings {
        timeout: over.timeout.or(base.timeout),
        retries: over.retries.or(base.retries),
        retry_delay: over.retry_delay.or(base.retry_delay),
        backoff: over.backoff.or(base.backoff),
        env,
        env_files,
        working_dir: over
            .working_dir
            .clone()
            .or_else(|| base.working_dir.clone()),
        user: over.user.clone().or_else(|| base.user.clone()),
        group: over.group.clone().or_else(|| base.group.clone()),
        memory_max: over.memory_max.clone().or_else(|| base.memory_max.clone()),
        cpu_quota: over.cpu_quota.clone().or_else(|| base.cpu_quota.clone()),
        nice: over.nice.or(base.nice),
        io_weight: over.io_weight.or(base.io_weight),
        hardening: over.hardening.or(base.hardening),
        service,
    }
}

/// Largest `cpu_quota` in percent: systemd stores it in 1/100 % as a 32-bit number.
const MAX_CPU_QUOTA: u32 = 21_474_836;

/// systemd's memory limits: bytes with an optional K/M/G/T/P/E suffix (base 1024, decimals
/// allowed after a digit), from 1 byte to below 2^64; a percentage above 0 up to 100 with at
/// most two decimals; or `infinity`. Checked exactly as systemd 252 parses them, in integers.
fn is_memory_size(v: &str) -> bool {
    if v == "infinity" {
        return true;
    }
    let decimal = |n: &str, max_fraction: usize| -> Option<(u128, u128, u32)> {
        let (whole, fraction) = n.split_once('.').unwrap_or((n, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > 20
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > max_fraction
            || (n.contains('.') && fraction.is_empty())
        {
            return None;
        }
        let f = if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        };
        Some((whole.parse().ok()?, f, fraction.len() as u32))
    };
    if let Some(p) = v.strip_suffix('%') {
        return decimal(p, 2).is_some_and(|(w, f, len)| {
            let hundredths = w * 100 + f * 10u128.pow(2 - len);
            hundredths > 0 && hundredths <= 10_000
        });
    }
    let (number, shift) = match v.as_bytes().last() {
        Some(b'K') => (&v[..v.len() - 1], 10),
        Some(b'M') => (&v[..v.len() - 1], 20),
        Some(b'G') => (&v[..v.len() - 1], 30),
        Some(b'T') => (&v[..v.len() - 1], 40),
        Some(b'P') => (&v[..v.len() - 1], 50),
        Some(b'E') => (&v[..v.len() - 1], 60),
        _ => (v, 0),
    };
    let Some((whole, fraction, len)) = decimal(number, if shift == 0 { 0 } else { 18 }) else {
        return false;
    };
    let unit = 1u128 << shift;
    let bytes = whole * unit + fraction * unit / 10u128.pow(len);
    bytes > 0 && bytes < u128::from(u64::MAX)
}

/// systemd's rules for a program in `ExecStart=`: an absolute path or a plain file name
/// (searched in its fixed PATH), without quotes, backslashes or control characters; and the
/// first character must not be one of the prefixes `-@:+!`, which systemd reads as flags
/// even inside quotes.
fn check_program(program: &str) -> Result<(), (String, String)> {
    let help = "write the program as an absolute path like `/usr/bin/rsync` or a plain name like `rsync`; for a shell command line, use `run`";
    let problem = if program.is_empty() {
        Some("is empty".to_string())
    } else if program == ";" {
        Some("is not a program: systemd reads a lone `;` as the separator between two commands, even quoted".to_string())
    } else if let Some(c) = program.chars().next().filter(|c| "-@:+!".contains(*c)) {
        Some(format!(
            "starts with `{c}`, which systemd reads as a prefix flag, not as part of the name"
        ))
    } else if let Some(c) = program
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        Some(format!("contains {}", describe(c)))
    } else if program.starts_with('/') {
        // systemd resolves `..` here itself, so only the sizes and a file name matter.
        if program.len() > PATH_MAX || program.split('/').any(|c| c.len() > NAME_MAX) {
            Some(format!(
                "is longer than systemd accepts ({PATH_MAX} bytes, {NAME_MAX} per name)"
            ))
        } else if program.ends_with('/') {
            Some("ends with `/`: it names a directory, not a program".to_string())
        } else {
            None
        }
    } else if program.contains('/') {
        Some("is a relative path; systemd takes only absolute paths or plain names".to_string())
    } else if program == "." || program == ".." || program.len() > NAME_MAX {
        Some("is not a valid file name".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err((format!("the program `{program}` {p}"), help.to_string())),
    }
}

/// A path systemd accepts as written (`path_is_normalized`): absolute, no `.` or `..`
/// components, no `//`, no component over 255 bytes nor path over 4095; and, because unit
/// files are parsed line by line, no control characters, no whitespace at either end (it
/// would be trimmed) and no trailing backslash (it would continue the line).
fn check_path(path: &str) -> Result<(), (String, String)> {
    let help = "write a plain absolute path such as `/var/lib/backup`".to_string();
    let problem = if !path.starts_with('/') {
        Some("is not an absolute path".to_string())
    } else if path.len() > PATH_MAX {
        Some(format!("is longer than {PATH_MAX} bytes"))
    } else if let Some(c) = path.chars().find(|c| c.is_control()) {
        Some(format!("contains {}", describe(c)))
    } else if path.trim() != path {
        Some("starts or ends with whitespace".to_string())
    } else if path.ends_with('\\') {
        Some("ends with a backslash".to_string())
    } else if path.contains("//") {
        Some("contains `//`".to_string())
    } else if path.split('/').any(|c| c == "." || c == "..") {
        Some("contains a `.` or `..` component; systemd wants a normalized path".to_string())
    } else if path.split('/').any(|c| c.len() > NAME_MAX) {
        Some(format!("has a component longer than {NAME_MAX} bytes"))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err((format!("the path `{}` {p}", path.escape_debug()), help)),
    }
}

/// A character for an error message: control characters by code.
fn describe(c: char) -> String {
    if c.is_control() {
        format!("the control character U+{:04X}", c as u32)
    } else if c.is_whitespace() {
        "whitespace".to_string()
    } else {
        format!("`{c}`")
    }
}

/// Unicode noncharacters: U+FDD0…U+FDEF and the last two code points of every plane.
pub fn is_noncharacter(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// systemd's specifiers (systemd.unit(5), "Specifiers"), for values flow passes through.
const SPECIFIERS: &str = "aAbBCdEfgGhHiIjJlLmMnNopPqsStTuUvVwWyY%";

/// Check a raw `[Service]` value from the escape hatch for what would break the unit file
/// itself; the value's meaning is systemd's to check.
fn check_raw_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_ARG_BYTES {
        return Err(format!("is longer than {MAX_ARG_BYTES} bytes"));
    }
    if value.contains(['\n', '\r']) {
        return Err("must be one line".into());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("contains {}", describe(c)));
    }
    if value.ends_with('\\') {
        return Err("ends with a backslash, which would continue the line in the unit file".into());
    }
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(s) if SPECIFIERS.contains(s) => {}
                Some(s) => {
                    return Err(format!(
                        "has `%{s}`, which is not a systemd specifier (write `%%` for `%`)"
                    ));
                }
                None => return Err("ends with `%` (write `%%` for a literal `%`)".into()),
            }
        }
    }
    Ok(())
}

/// `a`, `b` or `c` as "`a`, `b`, `c`".
fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_keys_are_task_only_and_settings_keys() {
        let joined: Vec<&str> = TASK_ONLY_KEYS
            .iter()
            .chain(SETTINGS_KEYS)
            .copied()
            .collect();
        assert_eq!(TASK_KEYS, joined.as_slice());
    }

    #[test]
    fn memory_sizes_as_systemd_reads_them() {
        for ok in [
            "1", "512M", "1.5G", "15E", "50%", "50.55%", "100%", "infinity", "1.33333K",
        ] {
            assert!(is_memory_size(ok), "{ok}");
        }
        for bad in [
            "0",
            "0%",
            ".5M",
            "1.",
            "16E",
            "100.5%",
            "50.555%",
            "18446744073709551615",
            "1e3",
            "M",
            "",
        ] {
            assert!(!is_memory_size(bad), "{bad}");
        }
    }

    #[test]
    fn programs_and_paths_as_systemd_reads_them() {
        for ok in ["/bin/true", "echo", "/bin/../bin/true", "/opt/x%y"] {
            assert!(check_program(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-/bin/true",
            "@x",
            ":x",
            "+x",
            "!x",
            "./prog",
            "bin/true",
            "x y",
            "",
            "a\\b",
            "a\"b",
            "..",
            ";",
        ] {
            assert!(check_program(bad).is_err(), "{bad}");
        }
        for ok in ["/", "/tmp", "/tmp/", "/with space/x", "/x\\y"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "rel",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/x\\",
            "/tmp ",
            "/x\ny",
            &format!("/{}", "d".repeat(256)),
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_values_keep_the_unit_file_intact() {
        for ok in ["yes", "x%n", "100%%", "a\\b", ""] {
            assert_eq!(check_raw_value(ok), Ok(()), "{ok}");
        }
        for bad in ["yes\\", "a\nb", "a\rb", "%Z", "100%", "\u{1}"] {
            assert!(check_raw_value(bad).is_err(), "{bad}");
        }
    }
}

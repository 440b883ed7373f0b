//! The workflow level: its name, schedule and limits, `defaults`, and the `tasks` mapping
//! (each task decoded by `task`).

use std::collections::HashMap;

use super::keys::{Fields, SCHEDULE_KEYS, SETTINGS_KEYS, TASK_ONLY_KEYS, WORKFLOW_KEYS};
use super::settings::{Settings, merge};
use super::{Decoder, Parsed};
use crate::compiler::diagnostic::{Code, Diagnostic};
use crate::compiler::model::{Overlap, Schedule, Timer, Trigger, Workflow};
use crate::compiler::names;
use crate::compiler::schedule::{self, ScheduleError};
use crate::compiler::yaml::{Node, Pos, Scalar, Span};

impl Decoder<'_> {
    pub(super) fn workflow<'a>(
        &mut self,
        root: &'a Node,
        default_name: &str,
    ) -> Option<Parsed<'a>> {
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
                        Err(mut d) => {
                            d.span = Some(node.span());
                            self.diags.push(d);
                            None
                        }
                    })
            }
            None => match names::check_workflow(default_name) {
                Ok(()) => Some(default_name.to_string()),
                Err(d) => {
                    let help = d.help.unwrap_or_default();
                    self.diags.push(
                        Diagnostic::new(
                            d.code,
                            None,
                            format!(
                                "the file name gives the workflow its name, but {}",
                                d.message
                            ),
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
            self.schedule_result(Code::InvalidTimezone, n, schedule::timezone::validate(&tz))?;
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
                    Code::NoTasks,
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
                            self.error(
                                Code::InvalidKey,
                                key.span(),
                                "task names must be plain words",
                            );
                            continue;
                        };
                        if let Some(&line) = seen.get(tname.as_str()) {
                            self.error(
                                Code::DuplicateTask,
                                *span,
                                format!("task `{tname}` is defined twice"),
                            )
                            .help = Some(format!(
                                "rename or remove one of them (the first is on line {line})"
                            ));
                            continue;
                        }
                        seen.insert(tname.as_str(), span.start.line);
                        if let Err(mut d) = names::check_task(tname) {
                            d.span = Some(*span);
                            self.diags.push(d);
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
                    self.error(Code::NoTasks, node.span(), "the workflow has no tasks")
                        .help = Some(
                        "add at least one task under `tasks:`, e.g. `hello: {run: echo hello}`"
                            .into(),
                    );
                }
                other if other.is_null() => {
                    self.error(Code::NoTasks, other.span(), "the workflow has no tasks")
                        .help = Some(
                        "add at least one task under `tasks:`, e.g. `hello: {run: echo hello}`"
                            .into(),
                    );
                }
                Node::Seq(..) => {
                    self.error(
                        Code::WrongType,
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
                triggers: schedule
                    .map(|schedule| {
                        Trigger::Timer(Timer {
                            schedule,
                            timezone,
                            catch_up,
                            jitter,
                        })
                    })
                    .into_iter()
                    .collect(),
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
                self.error(
                    Code::NeedsSchedule,
                    span,
                    format!("`{key}` needs a `schedule`"),
                )
                .help = Some("add a `schedule:` or remove this key".into());
            }
        }
        match schedule {
            Some(Schedule::Every(_)) | Some(Schedule::Reboot) => {
                if let Some(span) = span_of("timezone") {
                    self.error(
                        Code::ScheduleConflict,
                        span,
                        "`timezone` applies to calendar and cron schedules only",
                    )
                    .help = Some("remove `timezone`".into());
                }
                if catch_up && let Some(span) = span_of("catch_up") {
                    self.error(
                        Code::ScheduleConflict,
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
                    self.error(
                        Code::ScheduleConflict,
                        span,
                        "the calendar expression already names a time zone",
                    )
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
                        Code::InvalidSchedule,
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
                self.schedule_result(
                    Code::InvalidCalendar,
                    value,
                    schedule::calendar::validate(&text),
                )?;
                Some(Schedule::Calendar(text))
            }
            _ => match self.schedule_result(
                Code::InvalidCron,
                value,
                schedule::cron::translate(&text),
            )? {
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
    fn schedule_result<T>(
        &mut self,
        code: Code,
        node: &Node,
        result: Result<T, ScheduleError>,
    ) -> Option<T> {
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
                self.error(code, span, e.message).help = e.help;
                None
            }
        }
    }
}

//! The lines a workflow's tasks wrote, read back from the journal.
//!
//! journald tags a line with `_SYSTEMD_INVOCATION_ID` only when it resolved the writer's
//! unit in time: for a process that exits within microseconds of writing (`echo x`), the
//! stream's line may carry `_SYSTEMD_UNIT` (from the stream's header) and no invocation ID.
//! Matching by invocation ID alone therefore loses lines. Instead, a line belongs to the
//! activation its unit was in when the line arrived: the manager's "Starting" message of
//! each activation opens it, and units run one activation at a time.
//!
//! The manager's own errors about a task are lines of that task too: when systemd cannot
//! start the command (an `env_file` that does not exist, say), they are all there is.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::systemd::journal;

use super::journal::STARTING;
use crate::compiler::names;

/// One line a task wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Realtime µs when journald received it.
    pub time_us: i64,
    pub task: String,
    pub message: String,
    /// The activation (InvocationID) of the task's unit it belongs to, when known.
    pub invocation_id: Option<String>,
    /// Its syslog priority (0 emergency .. 7 debug), as journald has it.
    pub priority: Option<u8>,
}

impl Line {
    /// The message for a terminal: control characters a task wrote (escape sequences that
    /// clear the screen or retitle the window, a carriage return that hides what came
    /// before it) are shown as `\xNN` escapes, as text, instead of being obeyed. journalctl
    /// shows such lines as `[N blob data]` unless told `--all`; flow shows them, escaped.
    /// `--json` gives the message as it was written.
    pub fn shown(&self) -> std::borrow::Cow<'_, str> {
        crate::compiler::escape::printable(&self.message)
    }
}

/// Which lines to read.
#[derive(Debug, Clone)]
pub enum Select {
    /// Every line of the tasks from this realtime µs on (the start of a run).
    Since(u64),
    /// The lines of these activations (InvocationIDs), which started after `since`.
    Activations {
        since: u64,
        until: Option<u64>,
        ids: HashSet<String>,
    },
    /// Every line from this realtime µs on (the start of the last run), or only new ones
    /// without it, then new lines as they come, until interrupted.
    Follow(Option<u64>),
    /// The lines after this journal cursor (where an earlier read ended), then new lines as
    /// they come, until interrupted.
    FollowAfter(String),
}

/// The tasks of a workflow whose lines are wanted, in the calling user's manager or the
/// system's.
pub struct Tasks {
    workflow: String,
    /// Task names by unit name.
    units: HashMap<String, String>,
    user: bool,
}

impl Tasks {
    pub fn new<'a>(workflow: &str, tasks: impl IntoIterator<Item = &'a str>, user: bool) -> Self {
        let units = tasks
            .into_iter()
            .map(|t| (names::task_unit(workflow, t), t.to_string()))
            .collect();
        Tasks {
            workflow: workflow.to_string(),
            units,
            user,
        }
    }

    /// journalctl's arguments: the tasks' lines and the manager's messages about the task
    /// units.
    fn matches(&self) -> Vec<String> {
        let mut args = Vec::new();
        // Sorted: the same command line for the same tasks.
        let mut pairs: Vec<(&String, &String)> = self.units.iter().collect();
        pairs.sort();
        if self.user {
            // journald reads a user unit's `LogExtraFields=` for system units only, and its
            // cgroup only while the process lives; the syslog identifier is always there.
            // Only the user's own processes (and their manager).
            let uid = format!("_UID={}", nix::unistd::getuid());
            args.push(uid.clone());
            for (_, t) in &pairs {
                args.push(format!("SYSLOG_IDENTIFIER={}/{t}", self.workflow));
            }
            args.extend(["+".into(), uid]);
            args.extend(pairs.iter().map(|(u, _)| format!("USER_UNIT={u}")));
        } else {
            args.extend(pairs.iter().map(|(u, _)| format!("_SYSTEMD_UNIT={u}")));
            // Only the manager's own messages: a task cannot forge them.
            args.extend(["+".into(), "_PID=1".into()]);
            args.extend(pairs.iter().map(|(u, _)| format!("UNIT={u}")));
        }
        args
    }

    /// The unit and task a message of the manager is about, with the activation it
    /// names, if that unit is one of ours.
    fn manager_message_of(&self, entry: &serde_json::Value) -> Option<(&str, &str, String)> {
        let s = |k: &str| entry.get(k).and_then(|v| v.as_str());
        let (unit, id) = if self.user {
            (s("USER_UNIT")?, s("USER_INVOCATION_ID"))
        } else {
            if s("_PID") != Some("1") {
                return None;
            }
            (s("UNIT")?, s("INVOCATION_ID"))
        };
        let (unit, task) = self.units.get_key_value(unit)?;
        Some((unit, task, id.unwrap_or_default().to_string()))
    }

    /// The unit and task a line of the journal came from, if it is one of ours.
    fn task_of(&self, entry: &serde_json::Value) -> Option<(&str, &str)> {
        let s = |k: &str| entry.get(k).and_then(|v| v.as_str());
        let by_unit = |unit: &str| {
            self.units
                .get_key_value(unit)
                .map(|(u, t)| (u.as_str(), t.as_str()))
        };
        if self.user {
            s("SYSLOG_IDENTIFIER")
                .and_then(|id| id.strip_prefix(self.workflow.as_str()))
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|t| by_unit(&names::task_unit(&self.workflow, t)))
                .or_else(|| s("_SYSTEMD_USER_UNIT").and_then(by_unit))
        } else {
            s("_SYSTEMD_UNIT").and_then(by_unit)
        }
    }
}

/// Calls `each` with every selected line, oldest first, until it returns false. (Call
/// [`super::journal::sync`] first where the newest lines matter.) Returns the cursor of the
/// last journal entry read, to follow on from it ([`Select::FollowAfter`]).
pub fn read(
    tasks: &Tasks,
    select: &Select,
    mut each: impl FnMut(Line) -> bool,
) -> std::io::Result<Option<String>> {
    let mut cmd = journal::json();
    match select {
        Select::Since(since) => {
            cmd.arg(journal::time_arg("--since", *since));
        }
        Select::Activations { since, until, .. } => {
            cmd.arg(journal::time_arg("--since", *since));
            if let Some(until) = until {
                cmd.arg(journal::time_arg("--until", *until));
            }
        }
        Select::Follow(since) => {
            cmd.arg("-f");
            match since {
                Some(since) => cmd.arg(journal::time_arg("--since", *since)),
                None => cmd.args(["-n", "0"]),
            };
        }
        Select::FollowAfter(cursor) => {
            cmd.args(["-f", &format!("--after-cursor={cursor}")]);
        }
    }
    cmd.args(tasks.matches());
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let Some(stdout) = child.stdout.take() else {
        return Err(std::io::Error::other("journalctl gave no output"));
    };
    let mut picker = Picker::new(tasks, select);
    let mut cursor = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(mut entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let serde_json::Value::String(c) = entry["__CURSOR"].take() {
            cursor = Some(c);
        }
        if let Some(line) = picker.pick(&entry)
            && !each(line)
        {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(cursor)
}

/// The last `keep` of the lines offered, and how many came before them: what `flow logs
/// --lines N` prints.
#[derive(Debug)]
pub struct Tail {
    keep: usize,
    pub lines: std::collections::VecDeque<Line>,
    pub earlier: usize,
}

impl Tail {
    pub fn new(keep: usize) -> Self {
        Tail {
            keep,
            lines: std::collections::VecDeque::new(),
            earlier: 0,
        }
    }

    pub fn push(&mut self, line: Line) {
        if self.lines.len() == self.keep {
            self.earlier += 1;
            // Keeping none: every line is an earlier one.
            if self.lines.pop_front().is_none() {
                return;
            }
        }
        self.lines.push_back(line);
    }
}

/// Decides, entry by entry in the journal's order, which are wanted lines.
struct Picker<'a> {
    tasks: &'a Tasks,
    /// The wanted activations; `None`: every line.
    ids: Option<&'a HashSet<String>>,
    /// Each unit's activation at the time, from the manager's "Starting" messages.
    current: HashMap<String, String>,
}

impl<'a> Picker<'a> {
    fn new(tasks: &'a Tasks, select: &'a Select) -> Self {
        let ids = match select {
            Select::Activations { ids, .. } => Some(ids),
            _ => None,
        };
        Picker {
            tasks,
            ids,
            current: HashMap::new(),
        }
    }

    fn pick(&mut self, entry: &serde_json::Value) -> Option<Line> {
        if let Some((unit, task, id)) = self.tasks.manager_message_of(entry) {
            if entry.get("MESSAGE_ID").and_then(|v| v.as_str()) == Some(STARTING) {
                if !id.is_empty() {
                    self.current.insert(unit.to_string(), id);
                }
                return None;
            }
            // Errors only (the rest says what `flow status` says), and not the catalogued
            // ones ("Failed to start …"): those repeat the result.
            let error = entry
                .get("PRIORITY")
                .and_then(|v| v.as_str())
                .and_then(|p| p.parse::<u8>().ok())
                .is_some_and(|p| p <= 3);
            if !error || entry.get("MESSAGE_ID").is_some() {
                return None;
            }
            if let Some(ids) = self.ids
                && !ids.contains(&id)
            {
                return None;
            }
            let id = (!id.is_empty()).then_some(id);
            return self.line(entry, task, id);
        }
        let (unit, task) = self.tasks.task_of(entry)?;
        let own = entry
            .get("_SYSTEMD_INVOCATION_ID")
            .and_then(|v| v.as_str())
            .filter(|i| !i.is_empty());
        let id = own.or_else(|| self.current.get(unit).map(String::as_str));
        if let Some(ids) = self.ids
            && !id.is_some_and(|id| ids.contains(id))
        {
            return None;
        }
        self.line(entry, task, id.map(str::to_string))
    }

    fn line(&self, entry: &serde_json::Value, task: &str, id: Option<String>) -> Option<Line> {
        let field = |k: &str| entry.get(k).and_then(|v| v.as_str());
        Some(Line {
            time_us: field("__REALTIME_TIMESTAMP")
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
            task: task.to_string(),
            message: message(entry)?,
            invocation_id: id,
            priority: field("PRIORITY").and_then(|p| p.parse().ok()),
        })
    }
}

/// `--since=@S.UUUUUU` for realtime µs.
/// The text of a line: journald stores non-UTF-8 lines as byte arrays.
fn message(entry: &serde_json::Value) -> Option<String> {
    match &entry["MESSAGE"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(bytes) => Some(
            String::from_utf8_lossy(
                &bytes
                    .iter()
                    .filter_map(|b| b.as_u64().map(|b| b as u8))
                    .collect::<Vec<_>>(),
            )
            .into_owned(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(user: bool) -> Tasks {
        Tasks::new("talk", ["hello", "bye"], user)
    }

    #[test]
    fn system_matches_lines_and_the_managers_messages() {
        assert_eq!(
            tasks(false).matches(),
            [
                "_SYSTEMD_UNIT=flow-talk--bye.service",
                "_SYSTEMD_UNIT=flow-talk--hello.service",
                "+",
                "_PID=1",
                "UNIT=flow-talk--bye.service",
                "UNIT=flow-talk--hello.service"
            ]
        );
    }

    #[test]
    fn lines_are_told_by_unit_or_syslog_identifier() {
        let line = serde_json::json!({"_SYSTEMD_UNIT": "flow-talk--bye.service"});
        assert_eq!(
            tasks(false).task_of(&line),
            Some(("flow-talk--bye.service", "bye"))
        );
        let other = serde_json::json!({"_SYSTEMD_UNIT": "flow-talk--other.service"});
        assert_eq!(tasks(false).task_of(&other), None);
        let user = serde_json::json!({"SYSLOG_IDENTIFIER": "talk/hello"});
        assert_eq!(
            tasks(true).task_of(&user),
            Some(("flow-talk--hello.service", "hello"))
        );
        let near = serde_json::json!({"SYSLOG_IDENTIFIER": "talkative/hello"});
        assert_eq!(tasks(true).task_of(&near), None);
    }

    #[test]
    fn only_the_managers_messages_about_our_units_count_as_its() {
        let start = serde_json::json!({"MESSAGE_ID": STARTING, "_PID": "1",
            "UNIT": "flow-talk--bye.service", "INVOCATION_ID": "abc"});
        assert_eq!(
            tasks(false).manager_message_of(&start),
            Some(("flow-talk--bye.service", "bye", "abc".into()))
        );
        let forged = serde_json::json!({"MESSAGE_ID": STARTING, "_PID": "42",
            "UNIT": "flow-talk--bye.service", "INVOCATION_ID": "abc"});
        assert_eq!(tasks(false).manager_message_of(&forged), None);
        let other = serde_json::json!({"_PID": "1", "UNIT": "cron.service"});
        assert_eq!(tasks(false).manager_message_of(&other), None);
        let user = serde_json::json!({"MESSAGE_ID": STARTING,
            "USER_UNIT": "flow-talk--hello.service", "USER_INVOCATION_ID": "def"});
        assert_eq!(
            tasks(true).manager_message_of(&user),
            Some(("flow-talk--hello.service", "hello", "def".into()))
        );
    }

    #[test]
    fn the_managers_errors_about_a_task_are_its_lines() {
        let t = tasks(false);
        let ids: HashSet<String> = ["i1".to_string()].into();
        let select = Select::Activations {
            since: 0,
            until: None,
            ids,
        };
        let mut picker = Picker::new(&t, &select);
        let manager = |prio: &str, id: &str, msg: &str| {
            serde_json::json!({"_PID": "1", "UNIT": "flow-talk--bye.service",
                "INVOCATION_ID": id, "PRIORITY": prio, "MESSAGE": msg,
                "__REALTIME_TIMESTAMP": "5"})
        };
        let error = manager("3", "i1", "Failed to load environment files");
        assert_eq!(
            picker.pick(&error).map(|l| (l.task, l.message)),
            Some(("bye".into(), "Failed to load environment files".into()))
        );
        // Not an error, another activation's, or a catalogued message: not a line.
        assert_eq!(picker.pick(&manager("6", "i1", "Finished")), None);
        assert_eq!(picker.pick(&manager("3", "i0", "Failed to load")), None);
        let mut catalogued = manager("3", "i1", "Failed to start bye.");
        catalogued["MESSAGE_ID"] = "be02cf6855d2428ba40df7e9d022f03d".into();
        assert_eq!(picker.pick(&catalogued), None);
    }

    #[test]
    fn lines_without_an_invocation_id_belong_to_their_units_activation_at_the_time() {
        let t = tasks(false);
        let select = Select::Activations {
            since: 0,
            until: None,
            ids: HashSet::from(["second".to_string()]),
        };
        let mut p = Picker::new(&t, &select);
        let start = |id: &str| {
            serde_json::json!({"MESSAGE_ID": STARTING, "_PID": "1",
                "UNIT": "flow-talk--bye.service", "INVOCATION_ID": id})
        };
        let line = |msg: &str, own: Option<&str>| {
            let mut v = serde_json::json!({"_SYSTEMD_UNIT": "flow-talk--bye.service",
                "MESSAGE": msg, "__REALTIME_TIMESTAMP": "5"});
            if let Some(id) = own {
                v["_SYSTEMD_INVOCATION_ID"] = id.into();
            }
            v
        };
        let picked = [
            line("before any start", None),
            start("first"),
            line("first, untagged", None),
            start("second"),
            line("second, untagged", None),
            line("second, tagged", Some("second")),
            line("first, late but tagged", Some("first")),
            start("third"),
            line("third, untagged", None),
        ]
        .iter()
        .filter_map(|e| p.pick(e))
        .map(|l| l.message)
        .collect::<Vec<_>>();
        assert_eq!(picked, ["second, untagged", "second, tagged"]);
        let all = Select::Since(0);
        let mut p = Picker::new(&t, &all);
        assert!(
            p.pick(&start("x")).is_none(),
            "a manager message is no line"
        );
        assert_eq!(
            p.pick(&line("any", None)).map(|l| (l.task, l.time_us)),
            Some(("bye".to_string(), 5))
        );
    }

    #[test]
    fn a_tail_keeps_the_last_lines_and_counts_the_rest() {
        let line = |n: i64| Line {
            time_us: n,
            task: "t".into(),
            message: n.to_string(),
            invocation_id: None,
            priority: None,
        };
        let mut tail = Tail::new(3);
        (1..=2).for_each(|n| tail.push(line(n)));
        assert_eq!(tail.earlier, 0);
        assert_eq!(tail.lines.len(), 2);
        (3..=7).for_each(|n| tail.push(line(n)));
        assert_eq!(tail.earlier, 4);
        let kept: Vec<i64> = tail.lines.iter().map(|l| l.time_us).collect();
        assert_eq!(kept, [5, 6, 7]);
        let mut none = Tail::new(0);
        (1..=3).for_each(|n| none.push(line(n)));
        assert_eq!((none.earlier, none.lines.len()), (3, 0));
    }

    #[test]
    fn control_characters_of_a_line_are_shown_not_obeyed() {
        let line = |message: &str| Line {
            time_us: 0,
            task: "t".into(),
            message: message.into(),
            invocation_id: None,
            priority: None,
        };
        assert_eq!(line("plain\tline ✓").shown(), "plain\tline ✓");
        assert_eq!(
            line("\u{1b}[2J\u{1b}]0;title\u{7}done\rhidden").shown(),
            "\\x1b[2J\\x1b]0;title\\x07done\\x0dhidden"
        );
    }

    #[test]
    fn byte_array_messages_are_decoded() {
        let e = serde_json::json!({"MESSAGE": [104, 105, 255]});
        assert_eq!(message(&e).as_deref(), Some("hi\u{fffd}"));
    }
}

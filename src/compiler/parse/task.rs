//! One task: its command (`run` or `exec`), what it needs and when it runs, over the
//! settings it shares with `defaults`.

use std::time::Duration;

use super::keys::{TASK_KEYS, WORKFLOW_KEYS};
use super::settings::{Settings, merge};
use super::values::{MAX_ARG_BYTES, MAX_ARGV_BYTES, check_program};
use super::{Decoder, TaskWhat};
use crate::compiler::diagnostic::Code;
use crate::compiler::model::{Command, Task, When};
use crate::compiler::yaml::{Node, Span};

impl Decoder<'_> {
    pub(super) fn task<'a>(
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
                self.error(
                    Code::NothingToRun,
                    name_span,
                    format!("{what} has nothing to run"),
                )
                .help = Some("give it `run: <shell command>` or `exec: [program, args...]`".into());
            }
            return None;
        };
        let command = match (fields.get("run"), fields.get("exec")) {
            (Some(_), Some(exec)) => {
                self.error(
                    Code::RunAndExec,
                    exec.span(),
                    format!("{what} has both `run` and `exec`"),
                )
                .help = Some(
                    "keep one: `run` for a shell command, `exec` for a program and its arguments"
                        .into(),
                );
                None
            }
            (Some(run), None) => self.script(run).map(Command::Shell),
            (None, Some(exec)) => self.exec(exec).map(Command::Exec),
            (None, None) => {
                self.error(
                    Code::NothingToRun,
                    name_span,
                    format!("{what} has nothing to run"),
                )
                .help = Some("give it `run: <shell command>` or `exec: [program, args...]`".into());
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
                Code::WhenWithoutNeeds,
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

    /// A `run:` script (or the shorthand `task: script`).
    pub(super) fn script(&mut self, node: &Node) -> Option<String> {
        let script = self.string(node, "`run`")?;
        if script.trim().is_empty() {
            self.error(Code::EmptyCommand, node.span(), "`run` is empty")
                .help = Some("write the shell command to run".into());
            return None;
        }
        Some(script)
    }

    pub(super) fn exec(&mut self, node: &Node) -> Option<Vec<String>> {
        let Node::Seq(items, _) = node else {
            self.type_error(node, "`exec`", "a list: the program, then its arguments");
            return None;
        };
        if items.is_empty() {
            self.error(Code::EmptyCommand, node.span(), "`exec` is empty")
                .help = Some(
                "write the program and its arguments, e.g. `[/usr/bin/rsync, -a, /src, /dst]`"
                    .into(),
            );
            return None;
        }
        let mut argv = Vec::with_capacity(items.len());
        for item in items {
            let arg = self.string(item, "each `exec` item")?;
            if arg.contains('\0') {
                self.error(
                    Code::ForbiddenCharacter,
                    item.span(),
                    "an `exec` argument contains a NUL character",
                );
                return None;
            }
            if arg.len() > MAX_ARG_BYTES {
                self.error(
                    Code::TooLarge,
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
            self.error(Code::InvalidProgram, items[0].span(), message)
                .help = Some(help);
            return None;
        }
        let total: usize = argv.iter().map(String::len).sum();
        if total > MAX_ARGV_BYTES {
            self.error(
                Code::TooLarge,
                node.span(),
                format!("`exec` arguments add up to {total} bytes; the limit is {MAX_ARGV_BYTES}"),
            )
            .help = Some("put large data in a file and pass its path".into());
            return None;
        }
        Some(argv)
    }

    pub(super) fn names_list<'a>(&mut self, node: &'a Node, what: &str) -> Vec<(&'a str, Span)> {
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

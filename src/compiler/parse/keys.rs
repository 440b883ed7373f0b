//! The keys of each level of a workflow file, named once: the compiler checks against
//! these tables, and the tests hold the JSON Schema and flow.yaml(5) to them.

use std::fmt::Display;

use super::Decoder;
use crate::compiler::diagnostic::Code;
use crate::compiler::suggest;
use crate::compiler::yaml::{Node, Scalar, Span};

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

/// The entries of one mapping, after key checks: `(key, key span, value)`.
pub(super) struct Fields<'a> {
    pub(super) entries: Vec<(&'a str, Span, &'a Node)>,
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, ..)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

impl Decoder<'_> {
    /// Check a mapping's keys against `allowed`; report unknown and duplicate keys.
    /// `other_level` names keys that belong elsewhere, with a hint where.
    pub(super) fn fields<'a>(
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
                self.error(
                    Code::InvalidKey,
                    key.span(),
                    format!("keys in {what} must be plain words"),
                );
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
                self.error(
                    Code::UnknownKey,
                    *span,
                    format!("unknown key `{k}` in {what}"),
                )
                .help = Some(help);
                continue;
            }
            if let Some((_, first, _)) = fields.entries.iter().find(|(seen, ..)| seen == k) {
                let line = first.start.line;
                self.error(
                    Code::DuplicateKey,
                    *span,
                    format!("key `{k}` appears twice in {what}"),
                )
                .help = Some(format!("remove one of them (the first is on line {line})"));
                continue;
            }
            fields.entries.push((k.as_str(), *span, value));
        }
        Some(fields)
    }
}

/// `a`, `b` or `c` as "`a`, `b`, `c`".
pub(super) fn list(items: &[&str]) -> String {
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
}

//! YAML tree → workflow model. Checks every key, type and value, and collects every
//! problem instead of stopping at the first. References between tasks (`needs`) are kept
//! as names here and resolved by `validate`.
//!
//! - `keys`: which keys each level takes, and the check of a mapping's keys;
//! - `workflow`: the top level, its schedule, and the `tasks` mapping;
//! - `task`: one task, its command and `needs`;
//! - `settings`: what a task and `defaults` may both set, and how the two merge;
//! - `values`: strings, numbers, durations, paths and programs as systemd takes them.

mod keys;
mod settings;
mod task;
mod values;
mod workflow;

use std::fmt::{self, Display};

use super::diagnostic::{Code, Diagnostic};
use super::model::{HostKind, HostRef, Workflow};
use super::yaml::{Node, Span};

pub use keys::{
    OWNED_SERVICE_KEYS, SCHEDULE_KEYS, SETTINGS_KEYS, TASK_KEYS, TASK_ONLY_KEYS, WORKFLOW_KEYS,
};
pub use task::DEFAULT_RETRY_DELAY;
pub use values::{MAX_ARG_BYTES, MAX_ARGV_BYTES, MAX_DESCRIPTION, is_noncharacter};

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

/// "task `NAME`", for error messages: formatted only when one is reported.
#[derive(Clone, Copy)]
struct TaskWhat<'a>(&'a str);

impl Display for TaskWhat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task `{}`", self.0)
    }
}

/// Decodes one file's tree, collecting its problems. Its methods are spread over the
/// submodules, each its level's.
struct Decoder<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// Files, directories and accounts named, for `Workflow::host`.
    host: Vec<HostRef>,
}

impl Decoder<'_> {
    /// Report a problem; the help is set on what this returns.
    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(code, span, message));
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
            Code::WrongType,
            node.span(),
            format!("{what} must be {expected}, found {found}"),
        );
    }
}

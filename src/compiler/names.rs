//! Names: which workflow and task names are valid, and the unit names they map to.
//!
//! A task's unit is `flow-<workflow>--<task>.service`. Names may not contain `--` nor start
//! or end with `-`, so the first `--` always separates workflow from task and no two
//! different (workflow, task) pairs can produce the same unit name. flow's own per-workflow
//! units use `.` (`flow-<workflow>.begin.service`), which names cannot contain, so they
//! cannot collide with a task either.
//!
//! A workflow's slice is the exception: in a slice's name each `-` opens a level
//! (`flow-a-b.slice` is inside `flow-a.slice`), so the workflow's own dashes are written
//! `\x2d`, as `systemd-escape` does, and workflow `a-b` gets `flow-a\x2db.slice` beside
//! `flow-a.slice`, not inside it (whose limits would then cover both).

use std::borrow::Cow;

use super::diagnostic::{Code, Diagnostic};

/// Longest workflow or task name: keeps unit names far below systemd's 255-byte limit.
pub const MAX_NAME_LEN: usize = 64;

/// Workflow names flow keeps for its own units, with what a workflow of that name would
/// shadow: its run unit `flow-<name>.service` (and its other units) would take the place
/// of flow's own. Every other unit flow names itself has a `.` or `--` after `flow-`
/// (`flow.slice`, `flow-<wf>.begin.service`), which no workflow name can give.
pub const RESERVED_WORKFLOWS: &[(&str, &str)] = &[
    (
        "supervisor",
        "`flow-supervisor.service`, the supervisor's own unit",
    ),
    (
        "api",
        "`flow-api.socket` and `flow-api.service`, flow's API",
    ),
];

/// Why a name is refused, without a place: the caller knows where the name is written.
fn check(kind: &str, name: &str) -> Result<(), Diagnostic> {
    let rule =
        "use letters, digits, `_` and `-`, starting with a letter or digit (e.g. `nightly-backup`)";
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("is longer than {MAX_NAME_LEN} characters"))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(format!("contains `{c}`"))
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("starts or ends with `-`".to_string())
    } else if name.contains("--") {
        Some(
            "contains `--`, which flow uses to separate workflow and task in unit names"
                .to_string(),
        )
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => {
            Err(
                Diagnostic::new(Code::InvalidName, None, format!("{kind} name `{name}` {p}"))
                    .help(rule),
            )
        }
    }
}

pub fn check_workflow(name: &str) -> Result<(), Diagnostic> {
    check("workflow", name)?;
    if let Some((_, shadowed)) = RESERVED_WORKFLOWS.iter().find(|(r, _)| *r == name) {
        return Err(Diagnostic::new(
            Code::ReservedName,
            None,
            format!(
                "workflow name `{name}` is reserved: its units would take the place of {shadowed}"
            ),
        )
        .help(format!("choose another name, e.g. `my-{name}`")));
    }
    Ok(())
}

pub fn check_task(name: &str) -> Result<(), Diagnostic> {
    check("task", name)
}

/// User and group names that systemd 252 takes in `User=`/`Group=` without a word: its
/// strict rule (a letter or `_`, then letters, digits, `_` or `-`, at most 31 characters;
/// names outside it are accepted with a notice on every load), or a numeric id written
/// plainly that is not one of the two reserved ids 65535 and 4294967295.
pub fn check_account(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return match name.parse::<u32>() {
            _ if name.len() > 1 && name.starts_with('0') => {
                Err("a numeric id cannot start with 0".into())
            }
            Ok(65535) | Ok(4294967295) => Err("this id is reserved and means no user".into()),
            Ok(_) => Ok(()),
            Err(_) => Err("a numeric id must be below 4294967295".into()),
        };
    }
    let mut chars = name.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        return Err("it must start with a letter or `_`".into());
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))) {
        return Err(match c {
            ' ' => "it contains a space".to_string(),
            c => format!("it contains `{}`", c.escape_debug()),
        });
    }
    if name.len() > 31 {
        return Err("it is longer than 31 characters".into());
    }
    Ok(())
}

pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The unit that runs a whole workflow: starting it is a run.
pub fn run_unit(workflow: &str) -> String {
    format!("flow-{workflow}.service")
}

/// The unit that opens each run (clears the run's state directory).
pub fn begin_unit(workflow: &str) -> String {
    format!("flow-{workflow}.begin.service")
}

/// The unit a schedule (or `flow run`) starts: it applies the workflow's overlap rule
/// and starts the run unit.
pub fn trigger_unit(workflow: &str) -> String {
    format!("flow-{workflow}.trigger.service")
}

pub fn timer_unit(workflow: &str) -> String {
    format!("flow-{workflow}.timer")
}

pub fn task_unit(workflow: &str, task: &str) -> String {
    format!("flow-{workflow}--{task}.service")
}

/// The slice every task of the workflow runs in (its use and limits as a whole), inside
/// `flow.slice`.
pub fn slice_unit(workflow: &str) -> String {
    format!("flow-{}.slice", workflow.replace('-', "\\x2d"))
}

/// Whether a generated file is a unit (to stop when it goes), not a script.
pub fn is_unit(file: &str) -> bool {
    [".service", ".timer", ".slice"]
        .iter()
        .any(|kind| file.ends_with(kind))
}

/// A script too large to inline in its unit, kept beside the units.
pub fn task_script(workflow: &str, task: &str) -> String {
    format!("flow-{workflow}--{task}.sh")
}

/// Per-run state, under the manager's runtime directory (`%t`: /run, or $XDG_RUNTIME_DIR).
pub fn state_dir(workflow: &str) -> String {
    format!("%t/{}", runtime_subdir(workflow))
}

/// [`state_dir`] relative to the runtime directory, as `RuntimeDirectory=` takes it.
pub fn runtime_subdir(workflow: &str) -> String {
    format!("flow/{workflow}")
}

/// The workflow a generated file belongs to, from its file name.
pub fn workflow_of_file(file: &str) -> Option<Cow<'_, str>> {
    let rest = file.strip_prefix("flow-")?;
    if let Some(escaped) = rest.strip_suffix(".slice") {
        // A plain `-` would be a level of slices that flow does not make.
        if escaped.contains('-') {
            return None;
        }
        let wf = escaped.replace("\\x2d", "-");
        return check_workflow(&wf).is_ok().then_some(Cow::Owned(wf));
    }
    let end = rest.find("--").or_else(|| rest.find('.'))?;
    Some(Cow::Borrowed(&rest[..end]))
}

/// The workflow whose run unit this is, if it is one.
pub fn workflow_of_run_unit(unit: &str) -> Option<&str> {
    let rest = unit.strip_prefix("flow-")?.strip_suffix(".service")?;
    (!rest.contains("--") && !rest.contains('.')).then_some(rest)
}

/// The `[X-Flow]` section of generated units: what flow reads back from its own units (the
/// supervisor, `flow status`, `flow list`). Named once, for the emitter and the reader.
pub mod x_flow {
    pub const SECTION: &str = "X-Flow";
    /// Every unit: the workflow it belongs to.
    pub const WORKFLOW: &str = "Workflow";
    /// A task's unit: its name and `when:`.
    pub const TASK: &str = "Task";
    pub const WHEN: &str = "When";
    /// A task's unit: its retry policy.
    pub const RETRIES: &str = "Retries";
    pub const RETRY_DELAY: &str = "RetryDelay";
    pub const BACKOFF: &str = "Backoff";
    /// The run unit: the overlap rule, the deadline, the cap on parallel tasks.
    pub const OVERLAP: &str = "Overlap";
    pub const TIMEOUT: &str = "Timeout";
    pub const MAX_PARALLEL: &str = "MaxParallel";
    /// The timer unit: the schedule as written (one of these).
    pub const CRON: &str = "Cron";
    pub const CALENDAR: &str = "Calendar";
    pub const EVERY: &str = "Every";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_units_are_told_apart() {
        assert_eq!(workflow_of_run_unit("flow-a-b.service"), Some("a-b"));
        assert_eq!(workflow_of_run_unit("flow-a--t.service"), None);
        assert_eq!(workflow_of_run_unit("flow-a.begin.service"), None);
        assert_eq!(workflow_of_run_unit("flow-a.timer"), None);
    }

    #[test]
    fn valid_and_invalid_names() {
        for ok in ["backup", "nightly-backup", "a", "dump_db", "Task1", "2fa"] {
            assert!(check_task(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "a.b",
            "a b",
            "ä",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(check_task(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flows_own_names_are_reserved() {
        for (name, _) in RESERVED_WORKFLOWS {
            let d = check_workflow(name).expect_err("reserved");
            assert_eq!(d.code, Code::ReservedName);
            assert!(d.message.contains("reserved"), "{}", d.message);
            // A task may have the name: its unit is `flow-<wf>--supervisor.service`.
            assert!(check_task(name).is_ok());
        }
        assert_eq!(run_unit("supervisor"), "flow-supervisor.service");
        for ok in ["supervisors", "my-supervisor", "api-check", "Supervisor"] {
            assert!(check_workflow(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn unit_names_do_not_collide() {
        // The pairs that would collide with a single `-` separator.
        assert_ne!(task_unit("a-b", "c"), task_unit("a", "b-c"));
        assert_eq!(
            workflow_of_file(&task_unit("a-b", "c")).as_deref(),
            Some("a-b")
        );
        assert_eq!(
            workflow_of_file(&task_unit("a", "b-c")).as_deref(),
            Some("a")
        );
        assert_eq!(
            workflow_of_file(&run_unit("my-wf")).as_deref(),
            Some("my-wf")
        );
        assert_eq!(
            workflow_of_file(&begin_unit("my-wf")).as_deref(),
            Some("my-wf")
        );
        assert_eq!(
            workflow_of_file(&timer_unit("my-wf")).as_deref(),
            Some("my-wf")
        );
    }

    #[test]
    fn a_workflows_slice_is_its_own_not_nested_in_another_workflows() {
        assert_eq!(slice_unit("backup"), "flow-backup.slice");
        assert_eq!(slice_unit("health-check"), r"flow-health\x2dcheck.slice");
        assert_eq!(
            workflow_of_file(&slice_unit("health-check")).as_deref(),
            Some("health-check")
        );
        assert_eq!(workflow_of_file("flow-health-check.slice"), None);
        assert_eq!(workflow_of_file("flow.slice"), None);
    }

    #[test]
    fn accounts_and_env_names() {
        for ok in [
            "pi",
            "www-data",
            "_x",
            "A1",
            "0",
            "1000",
            "65534",
            "4294967294",
        ] {
            assert_eq!(check_account(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "-x",
            "1a",
            "a.b",
            "a@b",
            "x$",
            "65535",
            "4294967295",
            "4294967296",
            "0123",
            "-1",
            "ünï",
            &"a".repeat(32),
        ] {
            assert!(check_account(bad).is_err(), "{bad}");
        }
        assert!(is_env_name("RESTIC_REPOSITORY") && is_env_name("_x"));
        assert!(!is_env_name("1A") && !is_env_name("A-B") && !is_env_name(""));
    }
}

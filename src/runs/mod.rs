//! Runs as systemd sees them: the installed workflow read back from its unit files
//! (`installed`), a task's state (`state`), a run started and followed live over D-Bus or
//! through the supervisor (`follow_run`, `follow`), and the state of the last run read from
//! unit properties and the journal (`last`, `journal`, `logs`). Works without the supervisor.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

pub mod follow;
mod follow_run;
mod installed;
pub mod journal;
mod last;
pub mod logs;
mod state;
pub mod trigger;

pub use follow_run::*;
pub use installed::*;
pub use last::*;
pub use state::*;

use crate::compiler::names::{self, x_flow};
use crate::install::{InstalledFile, unit_text};
use crate::systemd::watch::{Event, unit_path};
use crate::systemd::{JobResult, Systemd, SystemdError, UnitState};
use crate::vocabulary::{AttemptResult, Outcome, RunResult};

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, needs: &[&str], retries: u32) -> TaskInfo {
        TaskInfo {
            name: name.into(),
            unit: names::task_unit("wf", name),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            when: "all_success".into(),
            memory_max: false,
            retries,
        }
    }

    fn run(state: TaskState) -> TaskRun {
        TaskRun {
            name: String::new(),
            state,
            started: None,
            duration: Some(Duration::from_millis(5)),
            invocation_id: Some("i".into()),
        }
    }

    /// Listed out of order on purpose (`c` before what it needs), as YAML may list them.
    fn held_run() -> (InstalledWorkflow, Vec<TaskRun>) {
        let wf = InstalledWorkflow {
            name: "wf".into(),
            source: String::new(),
            tasks: vec![
                task("c", &["b"], 0),
                task("a", &[], 2),
                task("b", &["a"], 0),
                task("other", &[], 0),
            ],
            timer: None,
            overlap: "skip".into(),
            catch_up: false,
            timeout: None,
        };
        let out = vec![
            run(TaskState::UpstreamFailed),
            run(TaskState::Failed(1)),
            run(TaskState::UpstreamFailed),
            run(TaskState::Succeeded),
        ];
        (wf, out)
    }

    #[test]
    fn a_held_run_waits_for_a_retry_and_what_follows_it() {
        let (wf, mut out) = held_run();
        let tried = HashMap::from([("a".to_string(), 1)]);
        while_held(&mut out, &wf, Some(&tried));
        let states: Vec<&str> = out.iter().map(|r| r.state.key()).collect();
        assert_eq!(states, ["pending", "retry_pending", "pending", "succeeded"]);
        assert_eq!(out[1].state.label(), "failed (exit 1), to be tried again");
        assert_eq!(out[0].invocation_id, None);
        // A start that failed before the command ran waits for its retry the same way.
        let (wf, mut out) = held_run();
        out[1].state = TaskState::StartFailed("resources".into());
        while_held(&mut out, &wf, Some(&tried));
        assert_eq!(
            out[1].state.label(),
            "failed to start (resources), to be tried again"
        );
        assert_eq!(out[2].state.key(), "pending");
    }

    #[test]
    fn a_task_out_of_tries_stays_failed_in_a_held_run() {
        let (wf, mut out) = held_run();
        let tried = HashMap::from([("a".to_string(), 3)]);
        while_held(&mut out, &wf, Some(&tried));
        let states: Vec<&str> = out.iter().map(|r| r.state.key()).collect();
        assert_eq!(
            states,
            ["upstream_failed", "failed", "upstream_failed", "succeeded"]
        );
    }

    /// `flow list`, `flow status` and `flow run --wait` decide a run's result here: a task
    /// with no record beside tasks that succeeded leaves it unknown.
    #[test]
    fn a_runs_progress_is_decided_once() {
        let p = |states: Vec<TaskState>| progress(&states.into_iter().map(run).collect::<Vec<_>>());
        use TaskState::*;
        assert_eq!(p(vec![]), Progress::NotRun);
        assert_eq!(p(vec![Unknown, Unknown]), Progress::NotRun);
        assert_eq!(p(vec![Succeeded, Running]), Progress::Going);
        assert_eq!(
            p(vec![Succeeded, Skipped]),
            Progress::Ended(RunResult::Succeeded)
        );
        assert_eq!(p(vec![Succeeded, Unknown]), Progress::Unknown);
        assert_eq!(
            p(vec![Failed(1), Unknown]),
            Progress::Ended(RunResult::Failed)
        );
        assert_eq!(
            p(vec![Failed(1), Canceled]),
            Progress::Ended(RunResult::Canceled)
        );
        assert_eq!(
            p(vec![Killed(9), UpstreamFailed]),
            Progress::Ended(RunResult::Failed)
        );
    }

    #[test]
    fn labels_name_the_step_systemd_failed_at_and_nothing_else() {
        assert_eq!(TaskState::Failed(217).label(), "failed (exit 217/USER)");
        assert_eq!(TaskState::Failed(203).label(), "failed (exit 203/EXEC)");
        assert_eq!(TaskState::Failed(3).label(), "failed (exit 3)");
        assert_eq!(TaskState::Failed(255).label(), "failed (exit 255)");
        assert_eq!(
            TaskState::StartFailed("resources".into()).label(),
            "failed to start (resources)"
        );
        assert_eq!(
            TaskState::from_outcome(&Outcome::start_failed("resources")).key(),
            "failed"
        );
    }
}

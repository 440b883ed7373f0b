//! The supervisor's view of an installed workflow: the DAG and the `[X-Flow]` policy
//! (retries, backoff, deadline) read back from the generated unit files.
//!
//! A run keeps the definition it started with (an `Arc` snapshot): a workflow edited and
//! applied during a run finishes that run with the old retry policy and deadline.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::compiler::duration;
use crate::compiler::names::{self, x_flow};
use crate::install::{InstalledFile, unit_text};
use crate::runs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    AllSuccess,
    Always,
    OnFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Fixed,
    Exponential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub name: String,
    pub unit: String,
    /// Indices into `WorkflowDef::tasks`.
    pub needs: Vec<usize>,
    pub when: When,
    pub retries: u32,
    pub retry_delay: Duration,
    pub backoff: Backoff,
    /// `CPUAccounting=` of the task's unit, when its file sets it.
    pub cpu_accounting: Option<bool>,
    /// `MemoryAccounting=` of the task's unit, when its file sets it.
    pub memory_accounting: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowDef {
    pub name: String,
    pub tasks: Vec<TaskDef>,
    pub timeout: Option<Duration>,
    pub timer: Option<String>,
}

impl WorkflowDef {
    pub fn run_unit(&self) -> String {
        names::run_unit(&self.name)
    }

    pub fn begin_unit(&self) -> String {
        names::begin_unit(&self.name)
    }

    pub fn trigger_unit(&self) -> String {
        names::trigger_unit(&self.name)
    }

    pub fn task_index(&self, unit: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.unit == unit)
    }
}

/// Longest delay exponential backoff grows to (a `retry_delay` longer than this is used as
/// is: backoff never waits less than a fixed delay would).
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// The delay before attempt `next` (2 for the first retry). Exponential backoff doubles the
/// delay per attempt up to [`BACKOFF_CAP`] (or `retry_delay`, if longer) and adds up to 10 %
/// jitter (`jitter` in 0..1), so that many tasks failing together do not retry in lockstep.
pub fn retry_delay(task: &TaskDef, next: u32, jitter: f64) -> Duration {
    match task.backoff {
        Backoff::Fixed => task.retry_delay,
        Backoff::Exponential => {
            let factor = 2u32.saturating_pow(next.saturating_sub(2).min(20));
            let cap = BACKOFF_CAP.max(task.retry_delay);
            let base = task.retry_delay.saturating_mul(factor).min(cap);
            base + base.mul_f64(jitter.clamp(0.0, 1.0) * 0.1)
        }
    }
}

/// Every installed workflow in `dir`, by name.
pub fn load_all(dir: &Path) -> std::io::Result<BTreeMap<String, Arc<WorkflowDef>>> {
    let files = crate::install::installed(dir)?;
    Ok(from_files(&files)
        .into_iter()
        .map(|d| (d.name.clone(), Arc::new(d)))
        .collect())
}

pub fn from_files(files: &BTreeMap<String, InstalledFile>) -> Vec<WorkflowDef> {
    runs::installed_workflows(files)
        .into_iter()
        .map(|wf| {
            let run = files.get(&wf.run_unit()).map(|f| f.contents.as_str());
            let tasks: Vec<TaskDef> = wf
                .tasks
                .iter()
                .map(|t| {
                    let text = files
                        .get(&t.unit)
                        .map(|f| f.contents.as_str())
                        .unwrap_or("");
                    TaskDef {
                        name: t.name.clone(),
                        unit: t.unit.clone(),
                        needs: t
                            .needs
                            .iter()
                            .filter_map(|n| wf.tasks.iter().position(|o| o.name == *n))
                            .collect(),
                        when: match t.when.as_str() {
                            "always" => When::Always,
                            "on_failure" => When::OnFailure,
                            _ => When::AllSuccess,
                        },
                        retries: t.retries,
                        retry_delay: unit_text::value(text, x_flow::SECTION, x_flow::RETRY_DELAY)
                            .and_then(|v| duration::parse(v).ok())
                            .unwrap_or(Duration::ZERO),
                        backoff: match unit_text::value(text, x_flow::SECTION, x_flow::BACKOFF) {
                            Some("exponential") => Backoff::Exponential,
                            _ => Backoff::Fixed,
                        },
                        cpu_accounting: unit_text::boolean(text, "Service", "CPUAccounting"),
                        memory_accounting: unit_text::boolean(text, "Service", "MemoryAccounting"),
                    }
                })
                .collect();
            WorkflowDef {
                timeout: run
                    .and_then(|r| unit_text::value(r, x_flow::SECTION, x_flow::TIMEOUT))
                    .and_then(|v| duration::parse(v).ok()),
                timer: wf.timer.as_ref().map(|(unit, _)| unit.clone()),
                name: wf.name,
                tasks,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(backoff: Backoff) -> TaskDef {
        TaskDef {
            name: "t".into(),
            unit: "flow-w--t.service".into(),
            needs: vec![],
            when: When::AllSuccess,
            retries: 5,
            retry_delay: Duration::from_secs(2),
            backoff,
            cpu_accounting: None,
            memory_accounting: None,
        }
    }

    #[test]
    fn backoff_doubles_with_cap_and_jitter() {
        let f = task(Backoff::Fixed);
        assert_eq!(retry_delay(&f, 2, 0.9), Duration::from_secs(2));
        assert_eq!(retry_delay(&f, 5, 0.9), Duration::from_secs(2));
        let e = task(Backoff::Exponential);
        assert_eq!(retry_delay(&e, 2, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(&e, 3, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(&e, 4, 0.0), Duration::from_secs(8));
        assert_eq!(retry_delay(&e, 4, 1.0), Duration::from_millis(8800));
        assert_eq!(retry_delay(&e, 60, 0.0), BACKOFF_CAP);
        // A first delay over the cap is kept, never shortened.
        let long = TaskDef {
            retry_delay: Duration::from_secs(7200),
            ..e.clone()
        };
        assert_eq!(retry_delay(&long, 2, 0.0), Duration::from_secs(7200));
        assert_eq!(retry_delay(&long, 5, 0.0), Duration::from_secs(7200));
    }

    #[test]
    fn reads_policy_from_units() {
        let yaml = "timeout: 1h\noverlap: queue\ntasks:\n  a:\n    run: 'true'\n    retries: 2\n    retry_delay: 3s\n    backoff: exponential\n  b:\n    needs: [a]\n    when: always\n    run: 'true'\n";
        let files = crate::compiler::compile_with(
            yaml,
            &crate::compiler::emit::EmitOptions {
                source_path: "/etc/flow/workflows/w.yaml".into(),
                unit_dir: "/etc/systemd/system".into(),
                flow_bin: "/usr/bin/flow".into(),
            },
        );
        let files = match files {
            Ok((_, f)) => f,
            Err(e) => panic!("{e:?}"),
        };
        let installed: BTreeMap<String, InstalledFile> = files
            .into_iter()
            .map(|f| {
                (
                    f.name.clone(),
                    InstalledFile {
                        source: "/etc/flow/workflows/w.yaml".into(),
                        contents: f.contents,
                    },
                )
            })
            .collect();
        let defs = from_files(&installed);
        assert_eq!(defs.len(), 1);
        let d = &defs[0];
        assert_eq!(d.timeout, Some(Duration::from_secs(3600)));
        assert_eq!(d.tasks[0].retries, 2);
        assert_eq!(d.tasks[0].retry_delay, Duration::from_secs(3));
        assert_eq!(d.tasks[0].backoff, Backoff::Exponential);
        assert_eq!(d.tasks[1].needs, vec![0]);
        assert_eq!(d.tasks[1].when, When::Always);
    }
}

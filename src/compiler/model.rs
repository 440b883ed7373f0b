//! The validated workflow: what the YAML means, with every default applied and every
//! reference resolved. Everything after validation works on these types only.

use std::sync::Arc;
use std::time::Duration;

use super::yaml::Span;

/// A workflow that passed validation: tasks in file order, `needs` resolved to indices,
/// guaranteed acyclic.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// What starts its runs besides `flow run` and `systemctl start`.
    pub triggers: Vec<Trigger>,
    pub overlap: Overlap,
    /// Deadline for a whole run (enforced by the supervisor).
    pub timeout: Option<Duration>,
    pub max_parallel: Option<u32>,
    /// Limits of all its tasks together (its slice's `MemoryMax=`, `CPUQuota=`).
    pub memory_max: Option<String>,
    pub cpu_quota: Option<String>,
    pub tasks: Vec<Task>,
    /// What the workflow expects to find on the machine it runs on, where the YAML names it.
    pub host: Vec<HostRef>,
}

/// A file, directory or account a workflow names. The compiler does no I/O: `flow apply`
/// looks for each on the machine and warns, at this place in the YAML, about what is
/// missing (systemd would fail the task's start for it, run after run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRef {
    pub kind: HostKind,
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    EnvFile,
    WorkingDir,
    User,
    Group,
}

impl Workflow {
    /// Its timer, when it has a schedule.
    pub fn timer(&self) -> Option<&Timer> {
        self.triggers
            .iter()
            .map(|t| match t {
                Trigger::Timer(timer) => timer,
            })
            .next()
    }
}

/// A source of runs: each kind compiles to units of its own (`emit::trigger_sources`) that
/// start the workflow's trigger unit, so the overlap rule applies to every source alike.
/// A new kind (a watched path, another workflow's end) is a variant here, its keys in the
/// parser, and its units in the emitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `schedule:`, with `timezone`, `catch_up` and `jitter`: a `.timer` unit.
    Timer(Timer),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub schedule: Schedule,
    pub timezone: Option<String>,
    /// Run once after boot when a scheduled time was missed (`Persistent=`).
    pub catch_up: bool,
    pub jitter: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A cron expression and the OnCalendar= expressions it became (two when day-of-month
    /// and day-of-week are both restricted).
    Cron {
        expr: String,
        calendars: Vec<String>,
    },
    /// `@reboot`: once per boot.
    Reboot,
    /// A systemd calendar expression, validated and passed through.
    Calendar(String),
    /// A fixed interval between run starts.
    Every(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    #[default]
    Skip,
    Queue,
    Replace,
}

impl Overlap {
    pub const NAMES: [&'static str; 3] = ["skip", "queue", "replace"];
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Replace => "replace",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub name: String,
    pub description: Option<String>,
    pub command: Command,
    /// Indices into `Workflow::tasks`.
    pub needs: Vec<usize>,
    pub when: When,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub retry_delay: Duration,
    pub backoff: Backoff,
    /// Workflow `env`, then defaults, then the task's own: later entries win. Shared with
    /// the workflow's other tasks when the task adds nothing of its own: a workflow `env`
    /// of thousands of keys is held once, not once per task.
    pub env: Arc<[(String, String)]>,
    pub env_files: Arc<[String]>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub memory_max: Option<String>,
    pub cpu_quota: Option<String>,
    pub nice: Option<i32>,
    pub io_weight: Option<u32>,
    pub hardening: Hardening,
    /// Raw `[Service]` keys from the escape hatch, in file order (shared like `env`).
    pub service: Arc<[(String, String)]>,
}

/// Tasks in an order where each comes after every task it needs (indices into `needs`,
/// which gives each task's upstreams). Reversed, it is the order to stop a run in: a task
/// before what it needs. A cycle (possible only in hand-edited units) puts its tasks last.
pub fn upstream_first<T: AsRef<[usize]>>(needs: &[T]) -> Vec<usize> {
    let n = needs.len();
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (i, ups) in needs.iter().enumerate() {
        for &up in ups.as_ref().iter().filter(|&&up| up < n) {
            downstream[up].push(i);
            waiting[i] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in &downstream[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(d);
            }
        }
    }
    order.extend((0..n).filter(|&i| waiting[i] > 0));
    order
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `run:` a shell line or script, given to `/bin/sh -c`.
    Shell(String),
    /// `exec:` an argument vector, run without a shell.
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    #[default]
    AllSuccess,
    Always,
    OnFailure,
}

impl When {
    pub const NAMES: [&'static str; 3] = ["all_success", "always", "on_failure"];
    pub fn as_str(self) -> &'static str {
        match self {
            When::AllSuccess => "all_success",
            When::Always => "always",
            When::OnFailure => "on_failure",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    #[default]
    Fixed,
    Exponential,
}

impl Backoff {
    pub const NAMES: [&'static str; 2] = ["fixed", "exponential"];
    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Fixed => "fixed",
            Backoff::Exponential => "exponential",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hardening {
    #[default]
    None,
    Basic,
    Strict,
}

impl Hardening {
    pub const NAMES: [&'static str; 3] = ["none", "basic", "strict"];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_come_after_what_they_need() {
        // 0 → 1 → {2, 3}; 4 alone; 2 is listed before what it needs.
        let needs = vec![vec![], vec![0], vec![1], vec![1], vec![]];
        let order = upstream_first(&needs);
        let at = |i: usize| order.iter().position(|&x| x == i).expect("listed");
        assert_eq!(order.len(), 5);
        for (i, ups) in needs.iter().enumerate() {
            for &up in ups {
                assert!(at(up) < at(i), "{i} before {up}: {order:?}");
            }
        }
        let cyclic = upstream_first(&[vec![1], vec![0], vec![]]);
        assert_eq!(cyclic.len(), 3);
    }
}

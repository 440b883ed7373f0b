//! A sandbox with this build of `flow` installed, for end-to-end tests of workflows: write a
//! workflow, apply it, run it, and read what happened from systemd, the journal and the files
//! the tasks wrote.
//!
//! The tests of one binary run one at a time ([`FlowBox::new`] holds a lock): several
//! sandboxes at once on a small machine would make the timing checks meaningless.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flow::sandbox::Sandbox;
use flow::systemd::{Systemd, UnitState};

use super::{Run, run};

static SERIAL: Mutex<()> = Mutex::new(());

/// Where the workflows go inside.
pub const WORKFLOWS: &str = "/etc/flow/workflows";
pub const FLOW: &str = "/usr/local/bin/flow";

pub struct FlowBox {
    // Field order is drop order: the client first, then the sandbox, then the lock.
    pub sd: Systemd,
    pub sb: Sandbox,
    _serial: MutexGuard<'static, ()>,
}

/// One task in the JSON that `flow run --wait --json` prints.
#[derive(Debug, Clone)]
pub struct TaskResult {
    pub task: String,
    pub state: String,
    pub invocation_id: Option<String>,
}

/// A finished `flow run --wait --json`.
#[derive(Debug)]
pub struct RunResult {
    pub exit: Option<i32>,
    pub succeeded: bool,
    pub tasks: Vec<TaskResult>,
    pub wall: Duration,
    pub stderr: String,
}

impl RunResult {
    pub fn state(&self, task: &str) -> &str {
        &self
            .tasks
            .iter()
            .find(|t| t.task == task)
            .unwrap_or_else(|| panic!("no task {task} in {:?}", self.tasks))
            .state
    }

    pub fn invocation(&self, task: &str) -> String {
        self.tasks
            .iter()
            .find(|t| t.task == task)
            .and_then(|t| t.invocation_id.clone())
            .unwrap_or_else(|| panic!("task {task} has no invocation id: {:?}", self.tasks))
    }
}

impl FlowBox {
    /// Boots a sandbox with flow installed; `None` (after a loud skip) when not root.
    pub fn new() -> Option<FlowBox> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let sb = super::sandbox()?;
        super::install_flow(&sb);
        let sd = super::systemd(&sb);
        Some(FlowBox {
            sd,
            sb,
            _serial: serial,
        })
    }

    /// Runs `flow ARGS` inside.
    pub fn flow(&self, args: &[&str]) -> Run {
        run(&self.sb, FLOW, args)
    }

    /// Runs a shell script inside and returns its stdout, panicking if it fails.
    pub fn sh(&self, script: &str) -> String {
        super::sh(&self.sb, script).ok().stdout
    }

    /// The bytes of a file inside.
    pub fn read(&self, path: &str) -> Vec<u8> {
        let out = self
            .sb
            .command("cat")
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run cat in the sandbox: {e}"));
        assert!(
            out.status.success(),
            "cannot read {path} in the sandbox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn read_string(&self, path: &str) -> String {
        String::from_utf8(self.read(path)).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"))
    }

    pub fn exists(&self, path: &str) -> bool {
        super::run(&self.sb, "test", &["-e", path]).success()
    }

    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        self.sb
            .write_file(Path::new(path), contents)
            .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }

    /// Writes `/etc/flow/workflows/NAME.yaml` and runs `flow apply`; returns its output.
    pub fn apply(&self, name: &str, yaml: &str) -> Run {
        self.write(&format!("{WORKFLOWS}/{name}.yaml"), yaml);
        self.flow(&["apply"]).ok()
    }

    /// Keeps the units of these tasks loaded (with their last run's state) as long as this
    /// box lives, so their timestamps can be read after the run.
    pub fn pin(&self, workflow: &str, tasks: &[&str]) {
        for t in tasks {
            let unit = task_unit(workflow, t);
            self.sd
                .ref_unit(&unit)
                .unwrap_or_else(|e| panic!("cannot pin {unit}: {e}"));
        }
    }

    /// `flow run NAME --wait --json`, parsed.
    pub fn run_wait(&self, name: &str) -> RunResult {
        let t = Instant::now();
        let out = self.flow(&["run", name, "--wait", "--json"]);
        let wall = t.elapsed();
        let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "flow run printed no JSON ({e}):\nstdout:\n{}\nstderr:\n{}",
                out.stdout, out.stderr
            )
        });
        let tasks = json["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("no tasks in {json}"))
            .iter()
            .map(|t| TaskResult {
                task: t["task"].as_str().unwrap_or_default().to_string(),
                state: t["state"].as_str().unwrap_or_default().to_string(),
                invocation_id: t["invocation_id"].as_str().map(str::to_string),
            })
            .collect();
        RunResult {
            exit: out.status.code(),
            succeeded: json["succeeded"].as_bool().unwrap_or(false),
            tasks,
            wall,
            stderr: out.stderr,
        }
    }

    /// The state of a task's unit (pin it first if the run is over).
    pub fn task_state(&self, workflow: &str, task: &str) -> UnitState {
        let unit = task_unit(workflow, task);
        self.sd
            .unit_state(&unit)
            .unwrap_or_else(|e| panic!("cannot read {unit}: {e}"))
    }

    /// (start, exit) of a task's main process in its last run, µs, from systemd.
    pub fn span(&self, workflow: &str, task: &str) -> (u64, u64) {
        let s = self.task_state(workflow, task);
        match (s.exec_main_start_timestamp, s.exec_main_exit_timestamp) {
            (Some(a), Some(b)) => (a, b),
            _ => panic!("{workflow}/{task} has no start and exit timestamps: {s:?}"),
        }
    }

    /// `systemctl show -p KEY... UNIT` as key/value pairs.
    pub fn show(&self, unit: &str, keys: &[&str]) -> Vec<(String, String)> {
        let mut args = vec!["show", unit];
        for k in keys {
            args.push("-p");
            args.push(k);
        }
        run(&self.sb, "systemctl", &args)
            .ok()
            .stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

pub fn task_unit(workflow: &str, task: &str) -> String {
    format!("flow-{workflow}--{task}.service")
}

/// `(start, end)` pairs in seconds, from lines `TASK start|end SECONDS` a task wrote with
/// `date +%s.%N`; in the order of `tasks`.
pub fn parse_spans(log: &str, tasks: &[&str]) -> Vec<(f64, f64)> {
    tasks
        .iter()
        .map(|t| {
            let get = |what: &str| {
                log.lines()
                    .find_map(|l| {
                        let mut w = l.split_whitespace();
                        (w.next() == Some(*t) && w.next() == Some(what))
                            .then(|| w.next()?.parse::<f64>().ok())
                            .flatten()
                    })
                    .unwrap_or_else(|| panic!("no `{t} {what}` line in:\n{log}"))
            };
            (get("start"), get("end"))
        })
        .collect()
}

//! A sandbox with this build of `flow` installed, for end-to-end tests of workflows: write
//! workflows, apply them, start the supervisor, run, and read what happened from systemd,
//! the history, the journal and the files the tasks wrote.
//!
//! One builder boots them all: `Boot::new().workflow("name", yaml).supervisor().boot()`.

use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use flow::sandbox::{Sandbox, SandboxOptions};
use flow::systemd::{Systemd, UnitState};

use super::{Hold, Run, run, wait_until};
use crate::common;

/// Where the workflows go inside.
pub const WORKFLOWS: &str = "/etc/flow/workflows";
pub const FLOW: &str = "/usr/local/bin/flow";
/// The supervisor's history inside.
pub const DB: &str = "/var/lib/flow/history.db";
/// The unit [`Boot::supervisor`] runs `flow supervise` as.
pub const SUPERVISOR: &str = "supervisor-test.service";

/// How to boot a test's sandbox: what goes in before the test begins.
#[must_use]
pub struct Boot {
    opts: SandboxOptions,
    flow: bool,
    alone: bool,
    workflows: Vec<(String, String)>,
    supervisor: Option<String>,
}

impl Boot {
    /// A sandbox with flow installed at [`FLOW`], and nothing else.
    pub fn new() -> Boot {
        Boot {
            opts: SandboxOptions::default(),
            flow: true,
            alone: false,
            workflows: Vec::new(),
            supervisor: None,
        }
    }

    /// Without flow (the package's test installs its own).
    pub fn bare(mut self) -> Boot {
        self.flow = false;
        self
    }

    /// With these sandbox options.
    pub fn options(mut self, opts: SandboxOptions) -> Boot {
        self.opts = opts;
        self
    }

    /// The only sandbox on the machine while the test runs: for tests that time what they
    /// run (see the harness's doc).
    pub fn alone(mut self) -> Boot {
        self.alone = true;
        self
    }

    /// With the workflow file `NAME.yaml` in [`WORKFLOWS`], applied (`flow apply`).
    pub fn workflow(mut self, name: &str, yaml: &str) -> Boot {
        self.workflows.push((name.to_string(), yaml.to_string()));
        self
    }

    /// With `flow supervise` running as [`SUPERVISOR`], started after the workflows were
    /// applied.
    pub fn supervisor(self) -> Boot {
        self.supervisor_args("")
    }

    /// The same, with these arguments to `flow supervise`.
    pub fn supervisor_args(mut self, args: &str) -> Boot {
        self.supervisor = Some(args.to_string());
        self
    }

    /// Boots it; `None` (after a loud skip) when not root. A boot failure as root is a
    /// test failure.
    pub fn boot(self) -> Option<FlowBox> {
        if !crate::common::require_root() {
            return None;
        }
        let hold = Hold::take(self.alone);
        let sb = Sandbox::boot_with(self.opts)
            .unwrap_or_else(|e| panic!("could not boot a sandbox: {e}"));
        if self.flow {
            super::install_flow(&sb);
        }
        let fb = FlowBox {
            sd: super::systemd(&sb),
            sb,
            _hold: hold,
        };
        for (name, yaml) in &self.workflows {
            fb.write_workflow(name, yaml);
        }
        if !self.workflows.is_empty() {
            fb.flow(&["apply"]).ok();
        }
        if let Some(args) = &self.supervisor {
            fb.start_supervisor_with(args);
        }
        Some(fb)
    }
}

pub struct FlowBox {
    // Field order is drop order: the client first, then the sandbox, then the hold.
    pub sd: Systemd,
    pub sb: Sandbox,
    _hold: Hold,
}

/// The sandbox's own methods, and the harness's functions that take one (`sh(&fb, ...)`).
impl Deref for FlowBox {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sb
    }
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
    /// Kills the sandbox and waits until it is gone, as dropping it does: for a test that
    /// looks at the host afterwards.
    pub fn shutdown(self) {
        let FlowBox { sd, sb, _hold } = self;
        drop(sd);
        sb.shutdown();
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
        run(&self.sb, "test", &["-e", path]).success()
    }

    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        self.sb
            .write_file(Path::new(path), contents)
            .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }

    /// Writes (or rewrites) `/etc/flow/workflows/NAME.yaml`.
    pub fn write_workflow(&self, name: &str, yaml: &str) {
        self.write(&format!("{WORKFLOWS}/{name}.yaml"), yaml);
    }

    /// Writes `/etc/flow/workflows/NAME.yaml` and runs `flow apply`; returns its output.
    pub fn apply(&self, name: &str, yaml: &str) -> Run {
        self.write_workflow(name, yaml);
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

    /// `flow run NAME --wait --json`, checked against its schema and parsed.
    pub fn run_wait(&self, name: &str) -> RunResult {
        let t = Instant::now();
        let out = self.flow(&["run", name, "--wait", "--json"]);
        let wall = t.elapsed();
        assert!(
            !out.stdout.trim().is_empty(),
            "flow run printed no JSON:\nstderr:\n{}",
            out.stderr
        );
        let json = common::schema_checked("run-wait", &out.stdout);
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
            succeeded: json["result"] == "succeeded",
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

    /// Starts `flow supervise ARGS` as [`SUPERVISOR`] (`Type=notify`: returns once it is
    /// ready), after a failed one before it.
    pub fn start_supervisor_with(&self, args: &str) {
        super::sh(
            &self.sb,
            &format!(
                "systemctl reset-failed {SUPERVISOR} 2>/dev/null; \
                 systemd-run --unit={SUPERVISOR} -p Type=notify {FLOW} supervise {args}"
            ),
        )
        .ok();
    }

    pub fn start_supervisor(&self) {
        self.start_supervisor_with("");
    }

    /// Starts the supervisor as [`FlowBox::start_supervisor`] does, giving it `secs`
    /// seconds to say it is ready; returns whether it did, and how long it took.
    pub fn start_supervisor_within(&self, secs: u32) -> (bool, Duration) {
        let t = Instant::now();
        let out = super::sh(
            &self.sb,
            &format!(
                "systemctl reset-failed {SUPERVISOR} 2>/dev/null; \
                 timeout {secs} systemd-run --unit={SUPERVISOR} -p Type=notify {FLOW} supervise; echo rc=$?"
            ),
        );
        (out.stdout.contains("rc=0"), t.elapsed())
    }

    /// Waits for the run of `wf` numbered `run` to end in the history; returns its
    /// `flow status WF RUN --json`.
    pub fn wait_run(&self, wf: &str, run: i64, timeout: Duration) -> serde_json::Value {
        let out = wait_until(&format!("run {run} of {wf} to end"), timeout, || {
            let out = super::sh(
                &self.sb,
                &format!("flow status {wf} {run} --json --db {DB} 2>/dev/null"),
            );
            let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            v["result"].as_str().is_some().then_some(out.stdout)
        });
        common::schema_checked("status", &out)
    }

    /// Every run of `wf` as `flow history --json` lists them (newest first); the command
    /// must succeed and print JSON.
    pub fn history_json(&self, wf: &str) -> serde_json::Value {
        let out = super::sh(&self.sb, &format!("flow history {wf} --json --db {DB}")).ok();
        common::schema_checked("history", &out.stdout)["runs"].take()
    }

    /// Runs of `wf` as `flow history --json` lists them (newest first); none when the
    /// command fails.
    pub fn history(&self, wf: &str) -> Vec<serde_json::Value> {
        let out = super::sh(
            &self.sb,
            &format!("flow history {wf} --json --db {DB} 2>/dev/null"),
        );
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|mut v| serde_json::from_value(v["runs"].take()).ok())
            .unwrap_or_default()
    }

    /// How many times systemd started `unit` (its "Starting" lines in the journal).
    pub fn starts(&self, unit: &str) -> usize {
        super::sh(
            &self.sb,
            &format!("journalctl --sync; journalctl -q -o cat -u {unit}"),
        )
        .stdout
        .lines()
        .filter(|l| l.starts_with("Starting "))
        .count()
    }

    /// Waits for `unit` to be activating: a task (or trigger) running.
    pub fn wait_activating(&self, unit: &str) {
        wait_until(&format!("{unit} to run"), Duration::from_secs(20), || {
            let out = super::sh(&self.sb, &format!("systemctl is-active {unit}")).stdout;
            (out.trim() == "activating").then_some(())
        });
    }

    /// Another process (the unit `locker`) holds the history's write lock for `secs`
    /// seconds from a second after this returns.
    pub fn lock_history(&self, secs: u32) {
        let locker = super::sh(
            &self.sb,
            &format!(
                "systemd-run --unit=locker sh -c \
                 '(echo \"BEGIN EXCLUSIVE;\"; echo \"SELECT 1;\"; sleep {secs}; echo \"ROLLBACK;\") | sqlite3 {DB}' && sleep 1"
            ),
        );
        assert!(locker.success(), "{locker:?}");
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

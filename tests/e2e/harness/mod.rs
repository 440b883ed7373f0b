//! The harness of the end-to-end tests: boot a sandbox with flow in it ([`Boot`]), run
//! commands in it, wait for units, runs and journal lines.
//!
//! End-to-end tests need root (they boot a real systemd in new namespaces). Without root
//! they skip LOUDLY, except in CI (`CI=true`), where a skip would hide a broken pipeline
//! and is a failure instead (see `common::require_root`).
//!
//! Every test of this crate holds the machine while it runs ([`root`], or the [`Boot`]
//! that boots its sandbox): shared by default, so that two tests run side by side as
//! libtest's threads allow; alone for a test whose checks time what it runs
//! ([`Boot::alone`]), which waits for the others and keeps the next ones waiting: several
//! sandboxes at once on a small machine would make its timing checks meaningless.

mod flowbox;

pub use flowbox::*;

use std::path::Path;
use std::process::Output;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use flow::sandbox::Sandbox;
use flow::systemd::{Systemd, UnitState};

use crate::common;

static MACHINE: RwLock<()> = RwLock::new(());

/// A test's hold on the machine (see the module's doc); released when dropped.
pub enum Hold {
    Shared {
        _guard: RwLockReadGuard<'static, ()>,
    },
    Alone {
        _guard: RwLockWriteGuard<'static, ()>,
    },
}

impl Hold {
    fn take(alone: bool) -> Hold {
        // A test that panicked while it held the lock leaves it poisoned: that test failed
        // already, and the next ones still need the machine.
        if alone {
            Hold::Alone {
                _guard: MACHINE.write().unwrap_or_else(|e| e.into_inner()),
            }
        } else {
            Hold::Shared {
                _guard: MACHINE.read().unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// For a test that boots its sandboxes otherwise than through [`Boot`] (`flow try`, the
/// sandbox's own tests): `None` after a loud skip when not root, else its shared hold on
/// the machine, to keep while it runs.
pub fn root() -> Option<Hold> {
    common::require_root().then(|| Hold::take(false))
}

/// What a shell command inside starts with to reach root's own manager (`user@0.service`,
/// which the test starts) with `systemctl --user` and `flow --user`, from root's home.
pub const AS_ROOTS_OWN_MANAGER: &str = "export XDG_RUNTIME_DIR=/run/user/0 \
     DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus; cd /root;";

/// A D-Bus client for the sandbox's manager.
pub fn systemd(sb: &Sandbox) -> Systemd {
    sb.systemd()
        .unwrap_or_else(|e| panic!("cannot connect to the sandbox's systemd: {e}"))
}

/// What a command inside printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with everything the command printed unless it succeeded.
    pub fn ok(self) -> Run {
        assert!(
            self.status.success(),
            "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics with everything the command printed unless it exited with `code`.
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs a program inside the sandbox and captures its output.
pub fn run(sb: &Sandbox, program: &str, args: &[&str]) -> Run {
    sb.command(program)
        .args(args)
        .output()
        .map(Run::from)
        .unwrap_or_else(|e| panic!("cannot run {program} in the sandbox: {e}"))
}

/// Runs a shell script inside the sandbox (`sh -c`).
pub fn sh(sb: &Sandbox, script: &str) -> Run {
    run(sb, "sh", &["-c", script])
}

/// Writes a unit file into the sandbox's `/etc/systemd/system` (no reload).
pub fn write_unit(sb: &Sandbox, name: &str, content: &str) {
    let path = Path::new("/etc/systemd/system").join(name);
    sb.write_file(&path, content)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Installs the `flow` binary built for these tests at `/usr/local/bin/flow` inside.
pub fn install_flow(sb: &Sandbox) {
    sb.copy_in(Path::new(env!("CARGO_BIN_EXE_flow")), Path::new(FLOW))
        .unwrap_or_else(|e| panic!("cannot install flow in the sandbox: {e}"));
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a unit has finished: no job queued for it, and inactive or failed.
/// Returns its state then. Use after `start_unit_no_wait`, or for timer-started units.
pub fn wait_for_unit(sd: &Systemd, unit: &str, timeout: Duration) -> UnitState {
    wait_until(&format!("{unit} to finish"), timeout, || {
        let queued = sd
            .list_units_by_patterns(&[unit])
            .ok()?
            .iter()
            .any(|u| u.job.is_some());
        let state = sd.unit_state(unit).ok()?;
        let done = matches!(state.active_state.as_str(), "inactive" | "failed");
        (!queued && done).then_some(state)
    })
}

/// Journal entries inside the sandbox, as JSON objects (`journalctl -o json ARGS`).
pub fn journal(sb: &Sandbox, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--no-pager", "-o", "json"];
    all.extend_from_slice(args);
    let out = run(sb, "journalctl", &all).ok();
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("journalctl printed bad JSON ({e}): {l}"))
        })
        .collect()
}

/// The MESSAGE of every journal entry for a unit, oldest first. journald receives lines
/// asynchronously, so pass the number of lines expected to wait for them.
pub fn journal_messages(sb: &Sandbox, unit: &str, at_least: usize) -> Vec<String> {
    wait_until(
        &format!("{at_least} journal lines of {unit}"),
        Duration::from_secs(10),
        || {
            let lines: Vec<String> = journal(sb, &["-u", unit])
                .iter()
                .filter_map(|e| {
                    e.get("MESSAGE")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .collect();
            (lines.len() >= at_least).then_some(lines)
        },
    )
}

/// Directories with this name in the host's cgroup hierarchies (a sandbox's, left behind or
/// not).
pub fn host_cgroups_named(name: &str) -> Vec<String> {
    let out = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "8",
            "-type",
            "d",
            "-name",
            name,
        ])
        .output()
        .expect("run find");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether a process of the host is alive.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Microseconds since the epoch, as the history counts time.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The attempts of `task` in a run's `flow status NAME RUN --json`, oldest first.
pub fn attempts<'a>(v: &'a serde_json::Value, task: &str) -> Vec<&'a serde_json::Value> {
    v["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["task"] == task))
        .and_then(|t| t["attempts"].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// How each attempt of `task` ended in a run's `flow status NAME RUN --json`: the result,
/// with its exit code, signal or start failure (`failed (exit 1)`, `killed (signal 9)`,
/// `failed (resources)`).
pub fn results(v: &serde_json::Value, task: &str) -> Vec<String> {
    attempts(v, task)
        .iter()
        .map(|a| {
            serde_json::from_value::<flow::vocabulary::Outcome>((*a).clone())
                .unwrap_or_else(|e| panic!("an attempt without its outcome ({e}): {a}"))
                .brief()
        })
        .collect()
}

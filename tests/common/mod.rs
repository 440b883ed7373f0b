//! The harness every end-to-end test uses: boot a sandbox, run commands in it, wait for
//! units, read the journal.
//!
//! End-to-end tests need root (they boot a real systemd in new namespaces). Without root
//! they skip LOUDLY, except in CI (`CI=true`), where a skip would hide a broken pipeline
//! and is a failure instead.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use flow::sandbox::{Sandbox, SandboxOptions};
use flow::systemd::{Systemd, UnitState};

/// True when this process may run end-to-end tests. Otherwise prints a loud skip notice
/// and returns false, or panics when `CI=true`: e2e tests must never skip silently in CI.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let test = thread::current().name().unwrap_or("this test").to_string();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test} is an end-to-end test and needs root, and CI=true forbids skipping it: \
             run the test suite as root in CI (sudo -E cargo test)"
        );
    }
    // Written to the stderr handle, not with eprintln!: libtest captures the print macros
    // of passing tests, and a skip that nobody sees is a silent skip.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: end-to-end tests need root (they boot a systemd sandbox).\n\
         !!! Run them with: sudo -E cargo test\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

/// Boots a sandbox for a test, or `None` (after a loud skip) when not root. A boot failure
/// as root is a test failure.
pub fn sandbox() -> Option<Sandbox> {
    sandbox_with(SandboxOptions::default())
}

pub fn sandbox_with(opts: SandboxOptions) -> Option<Sandbox> {
    if !require_root() {
        return None;
    }
    match Sandbox::boot_with(opts) {
        Ok(sb) => Some(sb),
        Err(e) => panic!("could not boot a sandbox: {e}"),
    }
}

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
    sb.copy_in(
        Path::new(env!("CARGO_BIN_EXE_flow")),
        Path::new("/usr/local/bin/flow"),
    )
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

pub mod flowbox;

/// `json` (one line a `--json` command printed) parsed and checked against its schema,
/// `docs/schema/<schema>.json`: end-to-end outputs are held to the JSON contract too.
pub fn schema_checked(schema: &str, json: &str) -> serde_json::Value {
    let validator = schema_validator(schema);
    assert_eq!(
        json.trim().lines().count(),
        1,
        "{schema}: not one line:\n{json}"
    );
    let v: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("{schema}: not JSON ({e}):\n{json}"));
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{v:#}");
    v
}

/// A time a `--json` output gave (RFC 3339, to the millisecond) as µs since the epoch;
/// `None` for `null` or anything else.
pub fn us(time: &serde_json::Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros())
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

/// `docs/schema/<name>.json`, parsed, as a draft-07 validator.
pub fn schema_validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::draft7::new(&schema).expect("a valid draft-07 schema")
}

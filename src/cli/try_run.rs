//! `flow try FILE`: run a workflow end to end in a throwaway systemd, never touching the
//! host: boot a sandbox, install this flow binary and the file in it, apply, run with live
//! progress, print the summary and each task's log lines, and throw the sandbox away.
//!
//! Nothing inside gets this program's terminal: every command run inside writes into
//! pipes that this program copies out (a task could otherwise find the terminal among
//! another process's descriptors in `/proc` and type into the host's shell), and runs in
//! a session of its own. So Ctrl-C reaches only this program, which stops the command it
//! is waiting on and then the sandbox; a SIGINT or SIGTERM sent to its PID alone does the
//! same.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::exit::{CliError, Exit};
use super::workflows;
use crate::compiler::{self, diagnostic, model::Schedule};
use crate::install;
use crate::sandbox::{Sandbox, SandboxOptions};

/// Where the sandbox's copy of flow lives.
const INSIDE_FLOW: &str = "/usr/local/bin/flow";

/// The workflow `flow try` runs when given no file: the backup example, which needs
/// nothing but a Debian base system.
const DEFAULT_NAME: &str = "backup.yaml";
const DEFAULT_WORKFLOW: &str = include_str!("../../examples/backup.yaml");

pub fn run(file: Option<&Path>, keep: bool, host_network: bool) -> Result<Exit, CliError> {
    let (shown, text) = match file {
        Some(path) => (
            path.display().to_string(),
            // As `flow validate` reads it: a FIFO or device is refused, not waited on.
            workflows::read_text(path).map_err(|e| match e {
                workflows::ReadError::Invalid(u) => {
                    eprintln!("{}", u.render(path));
                    CliError::Invalid("the workflow is invalid: nothing was run".into())
                }
                workflows::ReadError::Io(e) => e,
            })?,
        ),
        None => {
            eprintln!("No file given: trying the built-in example `{DEFAULT_NAME}`.");
            (DEFAULT_NAME.to_string(), DEFAULT_WORKFLOW.to_string())
        }
    };
    // Check the file before booting anything: errors print as from `flow validate`.
    let wf = compiler::check(&shown, &text).map_err(|diags| {
        eprintln!("{}", diagnostic::render_all(&diags, &shown, &text));
        CliError::Invalid("the workflow is invalid: nothing was run".into())
    })?;
    // The sandbox sees this machine's files and accounts: what is missing here is missing
    // there.
    for d in install::host::this_machine(&wf.host) {
        eprintln!("{}", d.render_warning(&shown, &text));
    }
    let exe =
        std::env::current_exe().map_err(|e| CliError::io("cannot find the flow binary", e))?;
    let file_name = file
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_NAME.to_string());

    note_interrupts();
    let started = std::time::Instant::now();
    let sb = Sandbox::boot_with(SandboxOptions {
        keep,
        host_network,
        ..SandboxOptions::default()
    })
    .map_err(|e| CliError::System(format!("cannot start a throwaway systemd: {e}")))?;
    eprintln!(
        "Booted a throwaway systemd in {:.2}s (host untouched{}).",
        started.elapsed().as_secs_f64(),
        if host_network {
            "; the host's network is shared"
        } else {
            ""
        }
    );
    let box_err = |e: crate::sandbox::SandboxError| CliError::System(e.to_string());
    sb.copy_in(&exe, Path::new(INSIDE_FLOW)).map_err(box_err)?;
    let inside_yaml = format!("{}/{file_name}", workflows::SYSTEM_WORKFLOWS);
    sb.write_file(Path::new(&inside_yaml), text.as_bytes())
        .map_err(box_err)?;

    // After each step: Ctrl-C stops here, and dropping the sandbox stops the run in it.
    let check = || -> Result<(), CliError> {
        if !INTERRUPTED.load(Ordering::Relaxed) {
            return Ok(());
        }
        let what = if keep {
            format!(
                "interrupted; the sandbox is still up (--keep). Enter it with:\n  {}\nand stop it with:\n  {}",
                sb.enter_hint(),
                sb.kill_hint()
            )
        } else {
            "interrupted: the sandbox and everything running in it are stopped and removed"
                .to_string()
        };
        Err(CliError::Interrupted(what))
    };
    check()?;
    let flow = |args: &[&str]| -> Result<i32, CliError> {
        let status = pass_through(sb.command(INSIDE_FLOW).args(args))?;
        check()?;
        Ok(status.and_then(|s| s.code()).unwrap_or(1))
    };
    let applied = flow(&["apply", "--no-host-check"])?;
    if applied != 0 {
        return Err(CliError::System(
            "`flow apply` failed in the sandbox".into(),
        ));
    }
    // The supervisor, as the package runs it, so retries and deadlines work here too.
    let supervisor = sb
        .command("systemd-run")
        .args([
            "--unit=flow-supervisor",
            "-p",
            "Type=notify",
            INSIDE_FLOW,
            "supervise",
        ])
        .output();
    check()?;
    let supervised = supervisor.as_ref().is_ok_and(|o| o.status.success());
    if !supervised {
        let why = match &supervisor {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "warning: the supervisor did not start in the sandbox: no retries, no history ({why})"
        );
    }
    println!();
    let mut code = flow(&["run", &wf.name, "--wait"])?;
    let recorded = if supervised {
        wait_for_history(&sb, &wf.name)
    } else {
        None
    };
    check()?;
    if let Some(run) = recorded {
        println!("\nHistory:");
        code = flow(&["status", &wf.name, &run.to_string()])?;
    }
    // journald reads a task's stdout stream on its own schedule and `journalctl --sync`
    // does not wait for stream data (systemd 252): give the last lines a moment to land.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The last lines: a task may write thousands, and its end says most.
    println!("\nLogs:");
    flow(&["logs", &wf.name, "--lines", TRY_LOG_LINES])?;
    if let Some(timer) = wf.timer() {
        println!();
        print_next_fires(&sb, &timer.schedule, timer.timezone.as_deref());
    }
    if keep {
        println!(
            "\nThe sandbox is still up (--keep). Enter it with:\n  {}\nand stop it with:\n  {}",
            sb.enter_hint(),
            sb.kill_hint()
        );
    }
    Ok(if code == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Runs a command inside with its stdout and stderr copied to this program's: what runs
/// inside never holds this program's terminal. `None` when an interrupt stopped it.
fn pass_through(cmd: &mut Command) -> Result<Option<ExitStatus>, CliError> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::io("cannot run flow in the sandbox", e))?;
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(thread::spawn(move || pump(out, io::stdout())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(thread::spawn(move || pump(err, io::stderr())));
    }
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| CliError::io("cannot wait for flow in the sandbox", e))?
        {
            // The pipes end with the command; something it left running inside could hold
            // them open, so wait for its last words only briefly.
            let deadline = Instant::now() + Duration::from_secs(2);
            while pumps.iter().any(|p| !p.is_finished()) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            for pump in pumps.into_iter().filter(|p| p.is_finished()) {
                let _ = pump.join();
            }
            return Ok(Some(status));
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            // What it started inside ends with the sandbox, and the pumps with it.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Copies everything from `from` to `to` as it comes. When `to` fails (a closed terminal),
/// the rest is read and dropped, so the command inside never blocks on a full pipe.
fn pump(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 8192];
    let mut writable = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if writable {
                    writable = to.write_all(&buf[..n]).and_then(|()| to.flush()).is_ok();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// How many log lines `flow try` prints at most.
const TRY_LOG_LINES: &str = "200";

/// The run's number once the supervisor recorded its end (`run --wait` follows it to its
/// end, but a store write may still be waiting for a lock).
fn wait_for_history(sb: &Sandbox, name: &str) -> Option<i64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    while std::time::Instant::now() < deadline && !INTERRUPTED.load(Ordering::Relaxed) {
        let out = sb
            .command(INSIDE_FLOW)
            .args(["history", name, "--json", "-n", "1"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(run) = history["runs"].get(0)
            && !run["result"].is_null()
        {
            return run["run"].as_i64();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    None
}

fn print_next_fires(sb: &Sandbox, schedule: &Schedule, tz: Option<&str>) {
    let calendars: Vec<String> = match schedule {
        Schedule::Cron { calendars, .. } => calendars.clone(),
        Schedule::Calendar(c) => vec![c.clone()],
        Schedule::Every(d) => {
            println!(
                "Schedule: every {}, counted from each run's start.",
                compiler::duration::to_systemd(*d)
            );
            return;
        }
        Schedule::Reboot => {
            println!("Schedule: once at every boot.");
            return;
        }
    };
    let exprs: Vec<String> = calendars
        .iter()
        .map(|c| match tz {
            Some(tz) => format!("{c} {tz}"),
            None => c.clone(),
        })
        .collect();
    // The next three across all expressions (cron's either-day rule may give two).
    let out = sb
        .command("systemd-analyze")
        .arg("calendar")
        .arg("--iterations=3")
        .args(&exprs)
        .output();
    let mut times: Vec<String> = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once("Next elapse:")
                    .or_else(|| l.split_once("Iter. #2:"))
                    .or_else(|| l.split_once("Iter. #3:"))
                    .map(|(_, t)| t.trim().to_string())
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    // "Thu 2026-11-26 02:30:00 UTC": order by what follows the weekday.
    times.sort_by(|a, b| {
        let key = |t: &String| t.split_once(' ').map(|(_, rest)| rest.to_string());
        key(a).cmp(&key(b))
    });
    times.dedup();
    println!("Next runs:");
    for t in times.iter().take(3) {
        println!("  {t}");
    }
}

/// Set by Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// This process must live on after a signal to shut the sandbox down, so it only notes
/// the signal; the wait in [`pass_through`] (and between steps, `check`) sees it, stops
/// the command inside and returns. Commands inside are in sessions of their own: Ctrl-C
/// on the terminal reaches this process alone, as a signal sent to its PID does.
fn note_interrupts() {
    extern "C" fn note(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::Relaxed);
    }
    use nix::sys::signal::Signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        super::signals::handle(
            note,
            true,
            &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP],
        )
    }
}

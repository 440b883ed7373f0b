//! `flow try FILE`: run a workflow end to end in a throwaway systemd, never touching the
//! host: boot a sandbox, install this flow binary and the file in it, apply, run with live
//! progress, print the summary and each task's log lines, and throw the sandbox away.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

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

pub fn run(file: Option<&Path>, keep: bool) -> Result<Exit, CliError> {
    let (shown, text) = match file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .map_err(|e| CliError::io(format!("cannot read {}", path.display()), e))?,
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
        ..SandboxOptions::default()
    })
    .map_err(|e| CliError::System(format!("cannot start a throwaway systemd: {e}")))?;
    eprintln!(
        "Booted a throwaway systemd in {:.2}s (host untouched).",
        started.elapsed().as_secs_f64()
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
        let status = sb
            .command(INSIDE_FLOW)
            .args(args)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| CliError::io("cannot run flow in the sandbox", e))?;
        check()?;
        Ok(status.code().unwrap_or(1))
    };
    let applied = flow(&["apply", "--no-host-check"])?;
    if applied != 0 {
        return Err(CliError::System(
            "`flow apply` failed in the sandbox".into(),
        ));
    }
    // The supervisor, as the package runs it, so retries and deadlines work here too.
    let supervised = sb
        .command("systemd-run")
        .args([
            "--unit=flow-supervisor",
            "-p",
            "Type=notify",
            INSIDE_FLOW,
            "supervise",
        ])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    check()?;
    if !supervised {
        eprintln!("warning: the supervisor did not start in the sandbox: no retries, no history");
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
    if let Some(schedule) = &wf.schedule {
        println!();
        print_next_fires(&sb, schedule, wf.timezone.as_deref());
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
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(run) = runs.get(0)
            && !run["result"].is_null()
        {
            return run["id"].as_i64();
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

/// Set by Ctrl-C (SIGINT) or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C goes to the whole foreground process group: the flow running inside the sandbox
/// stops, and this process must live on to shut the sandbox down, so it only notes the
/// signal and stops after the step it is in. A handler (unlike ignoring the signal) is
/// reset in children at exec, so they still stop.
fn note_interrupts() {
    extern "C" fn note(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::Relaxed);
    }
    use nix::sys::signal::Signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { super::signals::handle(note, true, &[Signal::SIGINT, Signal::SIGTERM]) }
}

//! End-to-end: `flow try` as a user runs it, on the ways a try ends other than success
//! (every example's success is in `e2e_examples`): a failed run, Ctrl-C, `--keep`. Each
//! leaves nothing behind: `flow try` runs with its own temporary directory, where the
//! sandbox keeps its state until it is gone.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `flow try FILE ARGS` with a temporary directory of its own.
fn flow_try(tmp: &Path, file: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow"));
    cmd.arg("try").arg(file).args(args).env("TMPDIR", tmp);
    cmd
}

/// A workflow file, and a temporary directory for `flow try` alone; `None` (after a loud
/// skip) when not root. Both directories go when dropped.
struct Try {
    _dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
    file: PathBuf,
}

fn setup(name: &str, yaml: &str) -> Option<Try> {
    if !common::require_root() {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).expect("write workflow");
    Some(Try {
        _dir: dir,
        tmp: tempfile::tempdir().expect("tempdir"),
        file,
    })
}

fn left_in(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .expect("read tmp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_failed_run_exits_1_shows_why_and_leaves_nothing() {
    let Some(t) = setup(
        "fails.yaml",
        "tasks:\n  ok: {run: seq 250}\n  bad: {needs: [ok], run: 'echo oops >&2; exit 3'}\n  after: {needs: [bad], run: echo never}\n",
    ) else {
        return;
    };
    let (tmp, file) = (&t.tmp, &t.file);
    let out = flow_try(tmp.path(), file, &[])
        .output()
        .expect("run flow try");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row = |task: &str, result: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{task} ")) && l.contains(result))
    };
    assert!(row("ok", "succeeded"), "{stdout}");
    assert!(row("bad", "failed (exit 3)"), "{stdout}");
    assert!(row("after", "skipped (upstream failed)"), "{stdout}");
    assert!(stdout.contains("\nRun 1 failed.\n"), "{stdout}");
    assert!(stdout.contains(" bad | oops\n"), "{stdout}");
    assert!(!stdout.contains("never"), "{stdout}");
    // The last 200 lines: `ok` wrote 250 and `bad` one.
    assert!(
        stdout.contains("\n… 51 earlier lines not shown"),
        "{stdout}"
    );
    assert!(!stdout.contains(" ok | 51\n"), "{stdout}");
    assert!(stdout.contains(" ok | 52\n"), "{stdout}");
    assert_eq!(left_in(tmp.path()), Vec::<String>::new());
}

#[test]
fn ctrl_c_stops_the_run_and_removes_the_sandbox() {
    let Some(t) = setup(
        "slow.yaml",
        "tasks:\n  first: {run: echo started}\n  slow: {needs: [first], run: 'sleep 60; touch /srv/slept'}\n",
    ) else {
        return;
    };
    let (tmp, file) = (&t.tmp, &t.file);
    // In a process group of its own, as a shell runs a foreground job: Ctrl-C signals the
    // whole group.
    let mut child = flow_try(tmp.path(), file, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start flow try");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("▶ slow")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "the slow task never showed as running:\n{}",
                seen.join("\n")
            ),
        }
    }
    // Inside the sandbox's state directory while it runs.
    assert_eq!(left_in(tmp.path()).len(), 1, "{:?}", left_in(tmp.path()));
    let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
    nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
    let interrupted = Instant::now();
    let status = common::wait_until("flow try to end", Duration::from_secs(15), || {
        child.try_wait().expect("wait")
    });
    let took = interrupted.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
    }
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    // No summary, no history of a run that was cut short.
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(!rest.iter().any(|l| l.starts_with("History")), "{rest:?}");
    assert_eq!(left_in(tmp.path()), Vec::<String>::new());
}

#[test]
fn keep_leaves_the_sandbox_up_and_says_how_to_enter_and_stop_it() {
    let Some(t) = setup(
        "kept.yaml",
        "tasks:\n  mark: {run: 'echo kept > /srv/kept'}\n",
    ) else {
        return;
    };
    let (tmp, file) = (&t.tmp, &t.file);
    let out = flow_try(tmp.path(), file, &["--keep"])
        .output()
        .expect("run flow try");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
    };
    let enter = after("nsenter ");
    let stop = after("kill -9 ");
    let pid: u32 = stop
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no PID in `kill -9 {stop}`"));
    assert!(pid_alive(pid));
    // Entered as the hint says, the run's work is there.
    let inside = Command::new("sh")
        .arg("-c")
        .arg(format!("nsenter {enter} -c 'cat /srv/kept'"))
        .output()
        .expect("nsenter");
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout),
        "kept\n",
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    let stopped = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -9 {stop}"))
        .status()
        .expect("stop");
    assert!(stopped.success());
    common::wait_until("the kept sandbox to go", Duration::from_secs(10), || {
        (!pid_alive(pid)).then_some(())
    });
    assert_eq!(left_in(tmp.path()), Vec::<String>::new());
}

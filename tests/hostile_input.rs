//! Hostile input: `flow validate`, `plan` and `apply` stay within seconds and a few hundred
//! MiB on any input up to a few MiB. Each case generates its input, then runs the real
//! binary under a limit on its address space (`RLIMIT_AS`: an allocation past it fails and
//! the process aborts) and a time bound (it is killed past it), and checks that it ended
//! by itself, with exit 0 or 1 (valid or invalid), never killed, aborted or hung.
//!
//! Each input once broke these bounds (figures of the flow before the fix): 20,000 tasks
//! each needing an unknown name (every error listed every task), one 3 MiB string aliased
//! 400 times (the node cap counted nodes, not bytes), 2,000 `env` keys times 2,000 tasks,
//! 100,000 `env` keys and 100,000 diagnostics (quadratic scans), a FIFO (read forever
//! waiting for a writer) and `/dev/zero` (read until out of memory).
//!
//! `FLOW_HOSTILE_BIN` runs another flow binary (e.g. an older build, to see the failures);
//! `FLOW_HOSTILE_REPORT=1` prints each run's time.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The address space the binary may use: a debug build maps about 60 MiB at start.
const MEMORY_LIMIT: u64 = 512 * 1024 * 1024;

/// How long one command may take. A debug build is slower than the release one by an
/// order of magnitude; every case takes well under a second in release.
const TIME_LIMIT: Duration = Duration::from_secs(20);

fn flow_bin() -> PathBuf {
    std::env::var_os("FLOW_HOSTILE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flow")))
}

/// How one run ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    elapsed: Duration,
    stderr: String,
}

/// Run `flow ARGS` under the memory limit, killed after the time limit.
fn run_limited(args: &[&str], cwd: &Path) -> Ended {
    let mut cmd = Command::new(flow_bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start flow");
    // Read stderr on a thread so that a long report cannot block the child.
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    if std::env::var_os("FLOW_HOSTILE_REPORT").is_some() {
        eprintln!("flow {args:?}: {status:?} in {:.2}s", elapsed.as_secs_f64());
    }
    Ended {
        code: status.and_then(|s| s.code()),
        elapsed,
        stderr,
    }
}

/// The first and last lines of a long text, for a failure message.
fn brief(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 20 {
        return text.to_string();
    }
    format!(
        "{}\n… ({} lines) …\n{}",
        lines[..10].join("\n"),
        lines.len(),
        lines[lines.len() - 10..].join("\n")
    )
}

/// `validate`, `plan` and `apply` of `file` each end by themselves within the limits,
/// with `expected` (0: valid, 1: invalid). Returns what `validate` said.
fn check_all_verbs(dir: &Path, file: &str, expected: i32) -> String {
    check_verbs(dir, file, expected, true)
}

/// The same, `apply` only when `apply` is true.
fn check_verbs(dir: &Path, file: &str, expected: i32, apply: bool) -> String {
    let units = dir.join("units");
    std::fs::create_dir_all(&units).expect("unit dir");
    let units = units.display().to_string();
    let mut said = String::new();
    for args in [
        vec!["validate", file],
        vec!["plan", "--unit-dir", &units, file],
        vec![
            "apply",
            "--no-reload",
            "--no-host-check",
            "--unit-dir",
            &units,
            file,
        ],
    ] {
        if args[0] == "apply" && !apply {
            continue;
        }
        let ended = run_limited(&args, dir);
        assert!(
            ended.code.is_some(),
            "flow {args:?} did not end by itself (killed, or aborted) after {:.1}s (time limit {TIME_LIMIT:?}, address space {} MiB): {}",
            ended.elapsed.as_secs_f64(),
            MEMORY_LIMIT >> 20,
            brief(&ended.stderr)
        );
        assert_eq!(
            ended.code,
            Some(expected),
            "flow {args:?}: {}",
            brief(&ended.stderr)
        );
        if args[0] == "validate" {
            said = ended.stderr;
        }
    }
    said
}

fn write(dir: &Path, name: &str, text: &str) {
    let mut f = std::fs::File::create(dir.join(name)).expect("create input");
    f.write_all(text.as_bytes()).expect("write input");
}

#[test]
fn thousands_of_unknown_names_in_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from("tasks:\n");
    for i in 0..20_000 {
        yaml.push_str(&format!("  task-{i}: {{needs: [nope-{i}], run: 'true'}}\n"));
    }
    write(dir.path(), "unknown.yaml", &yaml);
    let said = check_all_verbs(dir.path(), "unknown.yaml", 1);
    assert!(
        said.contains("more problems from here on are not shown"),
        "{}",
        brief(&said)
    );
    assert!(said.len() < 100_000, "{} bytes of errors", said.len());
}

#[test]
fn a_large_string_aliased_many_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = format!(
        "description: &big \"{}\"\ntasks:\n  t:\n    run: 'true'\n    env:\n",
        "x".repeat(3 << 20)
    );
    for i in 0..400 {
        yaml.push_str(&format!("      V{i}: *big\n"));
    }
    write(dir.path(), "aliases.yaml", &yaml);
    let said = check_all_verbs(dir.path(), "aliases.yaml", 1);
    assert!(said.contains("MiB of text"), "{}", brief(&said));
}

#[test]
fn thousands_of_env_keys_times_thousands_of_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from("env:\n");
    for i in 0..2_000 {
        yaml.push_str(&format!("  KEY_{i}: value-{i}\n"));
    }
    yaml.push_str("tasks:\n");
    for i in 0..2_000 {
        yaml.push_str(&format!("  task-{i}: 'true'\n"));
    }
    write(dir.path(), "env.yaml", &yaml);
    let said = check_all_verbs(dir.path(), "env.yaml", 1);
    assert!(said.contains("larger than 64 MiB"), "{}", brief(&said));
}

#[test]
fn a_hundred_thousand_env_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from("tasks:\n  t:\n    run: 'true'\n    env:\n");
    for i in 0..100_000 {
        yaml.push_str(&format!("      KEY_{i}: v\n"));
    }
    write(dir.path(), "keys.yaml", &yaml);
    check_all_verbs(dir.path(), "keys.yaml", 0);
}

#[test]
fn a_hundred_thousand_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from("tasks:\n");
    for i in 0..100_000 {
        yaml.push_str(&format!("  t{i}: {{bad: 1, run: x}}\n"));
    }
    write(dir.path(), "problems.yaml", &yaml);
    let said = check_all_verbs(dir.path(), "problems.yaml", 1);
    assert!(said.contains("99900 more problems"), "{}", brief(&said));
}

#[test]
fn long_cycles_and_wide_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A cycle through 20,000 tasks.
    let n = 20_000;
    let mut cycle = String::from("tasks:\n");
    for i in 0..n {
        cycle.push_str(&format!(
            "  t{i}: {{needs: [t{}], run: 'true'}}\n",
            (i + 1) % n
        ));
    }
    write(dir.path(), "cycle.yaml", &cycle);
    let said = check_all_verbs(dir.path(), "cycle.yaml", 1);
    assert!(said.contains("cycle"), "{}", brief(&said));
    // One task that needs 20,000 others.
    let mut wide = String::from("tasks:\n");
    for i in 0..n {
        wide.push_str(&format!("  t{i}: 'true'\n"));
    }
    let all: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    wide.push_str(&format!(
        "  last: {{needs: [{}], run: 'true'}}\n",
        all.join(", ")
    ));
    write(dir.path(), "wide.yaml", &wide);
    // Not `apply`: it writes 20,003 files with two fsyncs each, which takes minutes on a
    // slow disk whatever the compiler does.
    check_verbs(dir.path(), "wide.yaml", 0, false);
}

#[test]
fn fifos_devices_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.yaml");
    let path = std::ffi::CString::new(fifo.display().to_string()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let said = check_all_verbs(dir.path(), "pipe.yaml", 1);
    assert!(said.contains("is a FIFO"), "{said}");
    let said = check_all_verbs(dir.path(), "/dev/zero", 1);
    assert!(said.contains("is a device"), "{said}");
    // One byte over the limit: refused without being parsed.
    let mut big = String::from("tasks:\n  t:\n    run: |\n");
    while big.len() <= 4 << 20 {
        big.push_str("      echo a line of a very long script\n");
    }
    write(dir.path(), "big.yaml", &big);
    let said = check_all_verbs(dir.path(), "big.yaml", 1);
    assert!(said.contains("larger than 4 MiB"), "{said}");
    // A file that is not UTF-8 is an invalid workflow, at its place (exit 1, not a system
    // error), and the files named with these are still checked: only the bad ones count.
    std::fs::write(
        dir.path().join("latin.yaml"),
        b"description: Caf\xe9\ntasks:\n  t: 'true'\n",
    )
    .expect("write");
    write(dir.path(), "good.yaml", "tasks:\n  t: 'true'\n");
    write(
        dir.path(),
        "bad.yaml",
        "tasks:\n  t: {needs: [nope], run: 'true'}\n",
    );
    let ended = run_limited(
        &[
            "validate",
            "pipe.yaml",
            "latin.yaml",
            "good.yaml",
            "bad.yaml",
        ],
        dir.path(),
    );
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
    for expected in [
        "--> latin.yaml:1:17",
        "--> bad.yaml:2:",
        "3 workflow files are invalid",
    ] {
        assert!(ended.stderr.contains(expected), "{}", ended.stderr);
    }
}

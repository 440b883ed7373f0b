//! Supervisor benchmarks (figures in docs/benchmarks.md, `## Supervisor`). Ignored by
//! default; run with
//! `cargo test --release --test e2e -- --ignored --nocapture --test-threads=1 supervisor_bench::`.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use std::time::{Duration, Instant};

use crate::harness::{Boot, sh};
use flow::store::{Attempt, Store};

/// Sum of voluntary + involuntary context switches over all threads of a process inside
/// the sandbox, and its VmRSS in KiB.
fn probe(sb: &flow::sandbox::Sandbox, pid: &str) -> (u64, u64) {
    let out = sh(
        sb,
        &format!(
            "cat /proc/{pid}/task/*/status | awk '/ctxt_switches/ {{s += $2}} END {{print s}}'; \
             awk '/VmRSS/ {{print $2}}' /proc/{pid}/status"
        ),
    )
    .ok();
    let mut l = out.stdout.lines();
    let sw = l
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let rss = l
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    (sw, rss)
}

#[test]
#[ignore = "benchmark"]
fn idle_memory_and_wakeups() {
    let Some(sb) = Boot::new()
        .alone()
        .workflow(
            "idle",
            "schedule: '@daily'\ntasks:\n  a:\n    run: 'true'\n",
        )
        .supervisor()
        .boot()
    else {
        return;
    };
    // One run first, so the idle figure is after real work, not a fresh process.
    sh(&sb, "systemctl start flow-idle.service").ok();
    std::thread::sleep(Duration::from_secs(2));
    let pid = sh(&sb, "systemctl show -p MainPID --value supervisor-test")
        .ok()
        .stdout
        .trim()
        .to_string();
    let (sw0, rss0) = probe(&sb, &pid);
    let secs = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    std::thread::sleep(Duration::from_secs(secs));
    let (sw1, rss1) = probe(&sb, &pid);
    eprintln!(
        "supervisor idle: VmRSS {rss0} KiB -> {rss1} KiB, context switches over {secs} s (all threads): {}",
        sw1 - sw0
    );
    assert!(rss1 <= 8 * 1024, "idle RSS {rss1} KiB over 8 MiB");
    assert_eq!(sw1 - sw0, 0, "the supervisor woke up while idle");
}

#[test]
#[ignore = "benchmark"]
fn ingest_a_thousand_task_workflow() {
    let n = 1000;
    let mut yaml = String::from("tasks:\n");
    for i in 0..n {
        yaml.push_str(&format!("  t{i}:\n    run: 'true'\n"));
    }
    let Some(sb) = Boot::new()
        .alone()
        .workflow("big", &yaml)
        .supervisor()
        .boot()
    else {
        return;
    };
    let start = Instant::now();
    sh(&sb, "systemctl start flow-big.service").ok();
    let systemd_done = start.elapsed();
    let v = sb.wait_run("big", 1, Duration::from_secs(300));
    let recorded = start.elapsed();
    let all: Vec<&serde_json::Value> = v["tasks"]
        .as_array()
        .iter()
        .flat_map(|tasks| tasks.iter())
        .filter_map(|t| t["attempts"].as_array())
        .flatten()
        .collect();
    let attempts = all.len();
    let ok = all.iter().filter(|x| x["result"] == "succeeded").count();
    // The lag: when systemd finished the last task (the latest InactiveEnterTimestamp,
    // recorded as an attempt's end) to when the supervisor, having recorded that attempt,
    // ended the run (its end is the supervisor's clock at that moment).
    let last_end = all
        .iter()
        .filter_map(|x| common::us(&x["ended"]))
        .max()
        .unwrap_or(0);
    let run_end = common::us(&v["ended"]).unwrap_or(0);
    let first_start = all
        .iter()
        .filter_map(|x| common::us(&x["started"]))
        .min()
        .unwrap_or(0);
    // Each task: a start job (JobNew) and its end (JobRemoved): two transitions.
    let transitions = 2 * n;
    eprintln!(
        "1000-task run: systemd finished in {:.2}s, all recorded after {:.2}s; {attempts} attempts ({ok} success); \
         {:.0} transitions/s end to end; systemd ran the tasks from first start to last end in {:.2}s; \
         the supervisor recorded the last {:.3}s after systemd ended it",
        systemd_done.as_secs_f64(),
        recorded.as_secs_f64(),
        transitions as f64 / recorded.as_secs_f64(),
        (last_end - first_start) as f64 / 1e6,
        (run_end - last_end) as f64 / 1e6,
    );
    assert_eq!(v["result"], "succeeded");
    assert_eq!(attempts, n);
    assert_eq!(ok, n);
}

/// The supervisor's own ingest capacity: the signals of five runs of a 1000-task workflow
/// (10,000 task transitions, with the `PropertiesChanged` pairs systemd sends between them)
/// read and handled in process into a real store, no PID 1. Median of 7 rounds.
#[test]
#[ignore = "benchmark"]
fn ingest_capacity_without_pid1() {
    let mut rounds: Vec<flow::supervisor::bench::Report> = (0..7)
        .map(|_| {
            let dir = tempfile::tempdir().expect("tempdir");
            flow::supervisor::bench::ingest(&dir.path().join("h.db"), 1000, 5).expect("ingest")
        })
        .collect();
    for r in &rounds {
        assert_eq!(r.attempts, 5000, "not every attempt was recorded");
        assert_eq!(r.task_state_calls, 0, "a task's end asked PID 1");
    }
    rounds.sort_by_key(|r| r.elapsed);
    let rate = |r: &flow::supervisor::bench::Report| r.transitions as f64 / r.elapsed.as_secs_f64();
    let m = &rounds[3];
    eprintln!(
        "ingest: {} transitions ({} messages) in {:.3}s median = {:.0} transitions/s \
         (min {:.0}/s, max {:.0}/s over 7 rounds); {} attempts recorded per round, \
         {} PID 1 calls for task ends, {} other calls",
        m.transitions,
        m.messages,
        m.elapsed.as_secs_f64(),
        rate(m),
        rate(&rounds[6]),
        rate(&rounds[0]),
        m.attempts,
        m.task_state_calls,
        m.other_calls
    );
    assert!(rate(m) >= 2000.0, "{:.0} transitions/s", rate(m));
}

#[test]
#[ignore = "benchmark"]
fn history_over_100k_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.db");
    let (mut s, _) = Store::open_rw(&path).expect("open");
    let t0 = 1_700_000_000_000_000i64;
    s.batch(|s| {
        for i in 0..100_000i64 {
            let wf = format!("wf{}", i % 20);
            let id = s.insert_run(
                &wf,
                flow::vocabulary::TriggerKind::Timer,
                t0 + i * 60_000_000,
                None,
            )?;
            for task in ["a", "b", "c"] {
                s.insert_attempt(&Attempt {
                    run_id: id,
                    task: task.into(),
                    attempt: 1,
                    invocation_id: None,
                    started_us: Some(t0 + i * 60_000_000),
                    ended_us: Some(t0 + i * 60_000_000 + 1_000_000),
                    outcome: flow::vocabulary::Outcome::succeeded(),
                    cpu_ns: None,
                    memory_peak: None,
                })?;
            }
            s.finish_run(
                id,
                t0 + i * 60_000_000 + 3_000_000,
                if i % 13 == 0 {
                    flow::vocabulary::RunResult::Failed
                } else {
                    flow::vocabulary::RunResult::Succeeded
                },
            )?;
        }
        Ok(())
    })
    .expect("fill");
    drop(s);
    let bin = env!("CARGO_BIN_EXE_flow");
    let db = path.to_string_lossy().to_string();
    let cases: [&[&str]; 4] = [
        &["history"],
        &["history", "wf7"],
        &["history", "--failed"],
        &["history", "wf3", "--since", "2023-12-01"],
    ];
    for args in cases {
        let mut times: Vec<Duration> = (0..11)
            .map(|_| {
                let t = Instant::now();
                let out = std::process::Command::new(bin)
                    .args(args)
                    .args(["--db", &db])
                    .output()
                    .expect("run flow");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                t.elapsed()
            })
            .collect();
        times.sort();
        eprintln!(
            "flow {} over 100,000 runs: median {:.1} ms, max {:.1} ms (whole process)",
            args.join(" "),
            times[5].as_secs_f64() * 1000.0,
            times[10].as_secs_f64() * 1000.0
        );
        assert!(times[5] < Duration::from_millis(50));
    }
}

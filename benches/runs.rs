//! Run benchmarks on a real systemd (needs root): flow's units against hand-written ones,
//! side by side in the same sandbox, alternating rounds so machine noise hits both.
//!
//! - sandbox boot time (median of several boots);
//! - a 100-task chain of `/bin/true`: `flow run --wait` vs `systemctl start` of a target
//!   wanting hand-written oneshots chained with Requires=+After=; and the per-edge latency
//!   (one task's exit to the next one's start, from systemd's own timestamps);
//! - a 1000-task random DAG (0–3 upstreams per task), the same comparison.
//!
//! `cargo bench --bench runs` — figures go to docs/benchmarks.md. The supervisor runs in
//! the sandbox, as on a real host (`SUPERVISOR=0` leaves it out).
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use flow::sandbox::Sandbox;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the run benchmarks boot a systemd sandbox and need root");
        std::process::exit(if std::env::var("CI").as_deref() == Ok("true") {
            1
        } else {
            0
        });
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    boot_times(10);
    let sb = Sandbox::boot().expect("boot a sandbox");
    sb.copy_in(
        Path::new(env!("CARGO_BIN_EXE_flow")),
        Path::new("/usr/local/bin/flow"),
    )
    .expect("install flow");
    // As on a real host: the supervisor follows every run (`SUPERVISOR=0`: without it).
    let supervised = std::env::var("SUPERVISOR").as_deref() != Ok("0");
    if supervised {
        inside(
            &sb,
            "systemd-run",
            &[
                "--unit=flow-supervisor",
                "-p",
                "Type=notify",
                "/usr/local/bin/flow",
                "supervise",
            ],
        );
        println!("supervisor: running (flow-supervisor)");
    }
    // `ONLY=chain100` or `ONLY=dag1000`: one of the two.
    let only = std::env::var("ONLY").unwrap_or_default();
    if only.is_empty() || only == "chain100" {
        compare(&sb, "chain100", &chain(100), rounds, true, supervised);
    }
    if only.is_empty() || only == "dag1000" {
        compare(
            &sb,
            "dag1000",
            &random_dag(1000, 42),
            rounds.min(5),
            false,
            supervised,
        );
    }
}

fn boot_times(n: usize) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let sb = Sandbox::boot().expect("boot");
            let d = t.elapsed();
            sb.shutdown();
            d
        })
        .collect();
    times.sort();
    println!(
        "sandbox boot: median {:.0} ms, min {:.0} ms, max {:.0} ms ({n} boots)",
        ms(times[n / 2]),
        ms(times[0]),
        ms(times[n - 1])
    );
}

/// Tasks as (name, upstream indices).
type Dag = Vec<(String, Vec<usize>)>;

fn chain(n: usize) -> Dag {
    (0..n)
        .map(|i| {
            (
                format!("t{i:04}"),
                if i == 0 { vec![] } else { vec![i - 1] },
            )
        })
        .collect()
}

fn random_dag(n: usize, seed: u64) -> Dag {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let k = if i == 0 { 0 } else { (next() % 4) as usize };
            let mut ups: Vec<usize> = (0..k).map(|_| (next() % i as u64) as usize).collect();
            ups.sort();
            ups.dedup();
            (format!("t{i:04}"), ups)
        })
        .collect()
}

fn compare(sb: &Sandbox, name: &str, dag: &Dag, rounds: usize, edges: bool, supervised: bool) {
    // flow's workflow.
    let mut yaml = String::from("tasks:\n");
    for (task, ups) in dag {
        let needs: Vec<&str> = ups.iter().map(|&u| dag[u].0.as_str()).collect();
        yaml.push_str(&format!("  {task}:\n    exec: [/bin/true]\n"));
        if !needs.is_empty() {
            yaml.push_str(&format!("    needs: [{}]\n", needs.join(", ")));
        }
    }
    sb.write_file(Path::new(&format!("/etc/flow/workflows/{name}.yaml")), yaml)
        .expect("write yaml");
    // The hand-written baseline: the same DAG as plain oneshots and a target.
    let mut wants = String::new();
    for (task, ups) in dag {
        // Like flow's units: no start rate limit (six runs within 10 s would hit it).
        let mut unit = String::from("[Unit]\nStartLimitIntervalSec=0\n");
        for &u in ups {
            unit.push_str(&format!(
                "Requires=hand-{name}-{0}.service\nAfter=hand-{name}-{0}.service\n",
                dag[u].0
            ));
        }
        unit.push_str("[Service]\nType=oneshot\nExecStart=/bin/true\n");
        // `HAND_EXTRA='TasksAccounting=no'` (`;` between lines): to see what a setting
        // costs systemd per unit.
        for line in std::env::var("HAND_EXTRA").unwrap_or_default().split(';') {
            if !line.trim().is_empty() {
                unit.push_str(line.trim());
                unit.push('\n');
            }
        }
        sb.write_file(
            Path::new(&format!("/etc/systemd/system/hand-{name}-{task}.service")),
            unit,
        )
        .expect("write unit");
        wants.push_str(&format!(
            "Wants=hand-{name}-{task}.service\nAfter=hand-{name}-{task}.service\n"
        ));
    }
    sb.write_file(
        Path::new(&format!("/etc/systemd/system/hand-{name}.target")),
        format!("[Unit]\nStartLimitIntervalSec=0\n{wants}"),
    )
    .expect("write target");
    inside(sb, "/usr/local/bin/flow", &["apply"]);
    inside(sb, "systemctl", &["daemon-reload"]);
    // Keep every unit loaded, so that each run's timestamps can be read after it (systemd
    // unloads inactive units nobody references). The supervisor pins each run unit, which
    // references its tasks, and the hand-written target holds its units until it is
    // stopped (their timestamps are read before that). Without the supervisor, this
    // connection pins them. (A connection subscribes to the manager's signals, and any
    // subscriber makes PID 1 send a change signal for every unit: one more would slow
    // both sides down, which is why it is not opened when the supervisor runs.)
    let flow_units: Vec<String> = dag
        .iter()
        .map(|(t, _)| format!("flow-{name}--{t}.service"))
        .collect();
    let hand_units: Vec<String> = dag
        .iter()
        .map(|(t, _)| format!("hand-{name}-{t}.service"))
        .collect();
    let _pins = (edges && !supervised).then(|| {
        let sd = sb.systemd().expect("connect to the sandbox");
        for u in flow_units.iter().chain(&hand_units) {
            sd.ref_unit(u).expect("pin a unit");
        }
        sd
    });

    let mut flow_times = Vec::new();
    let mut hand_times = Vec::new();
    let mut flow_gaps: Vec<f64> = Vec::new();
    let mut hand_gaps: Vec<f64> = Vec::new();
    let target = format!("hand-{name}.target");
    // Round 0 warms up (unit loading, page cache) and is not counted.
    for round in 0..=rounds {
        let t = Instant::now();
        inside(sb, "systemctl", &["start", &target]);
        let hand = t.elapsed();
        if edges && round > 0 {
            hand_gaps.extend(edge_gaps(sb, &hand_units, dag));
        }
        inside(sb, "systemctl", &["stop", &target]);
        let t = Instant::now();
        let out = inside(
            sb,
            "/usr/local/bin/flow",
            &["run", name, "--wait", "--json"],
        );
        let flow = t.elapsed();
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("flow run --json");
        let ok = v["tasks"].as_array().map_or(0, |a| {
            a.iter().filter(|t| t["state"] == "succeeded").count()
        });
        assert!(
            v["result"] == "succeeded" && ok == dag.len(),
            "flow's run did not succeed: {ok} of {} tasks\n{}",
            dag.len(),
            out.chars().take(2000).collect::<String>()
        );
        if edges && round > 0 {
            flow_gaps.extend(edge_gaps(sb, &flow_units, dag));
        }
        if round > 0 {
            hand_times.push(hand);
            flow_times.push(flow);
        }
    }
    flow_times.sort();
    hand_times.sort();
    let (f, h) = (flow_times[rounds / 2], hand_times[rounds / 2]);
    println!(
        "{name}: flow run --wait median {:.0} ms, hand-written systemctl start median {:.0} ms, ratio {:.2} ({rounds} rounds each, alternating; every flow run checked: {} tasks succeeded)",
        ms(f),
        ms(h),
        ms(f) / ms(h),
        dag.len()
    );
    for (who, gaps) in [("flow", &mut flow_gaps), ("hand-written", &mut hand_gaps)] {
        if !edges || gaps.is_empty() {
            continue;
        }
        gaps.sort_by(f64::total_cmp);
        let p = |q: f64| gaps[((gaps.len() - 1) as f64 * q) as usize];
        println!(
            "{name}: {who} per-edge latency (upstream exit → downstream start) median {:.2} ms, p99 {:.2} ms, max {:.2} ms, over {} edges",
            p(0.5),
            p(0.99),
            p(1.0),
            gaps.len()
        );
    }
}

/// For each edge of the last run of these units (one per task, in DAG order): downstream
/// ExecMainStartTimestampMonotonic minus upstream ExecMainExitTimestampMonotonic, in ms.
fn edge_gaps(sb: &Sandbox, units: &[String], dag: &Dag) -> Vec<f64> {
    let mut args = vec![
        "show",
        "-p",
        "ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic",
    ];
    args.extend(units.iter().map(String::as_str));
    let out = inside(sb, "systemctl", &args);
    // `systemctl show` prints one block per unit, separated by blank lines, in order.
    let blocks: Vec<(f64, f64)> = out
        .trim_end()
        .split("\n\n")
        .map(|b| {
            let get = |k: &str| {
                b.lines()
                    .find_map(|l| {
                        l.strip_prefix(k)?
                            .strip_prefix('=')?
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
                    .unwrap_or(0.0)
            };
            (
                get("ExecMainStartTimestampMonotonic"),
                get("ExecMainExitTimestampMonotonic"),
            )
        })
        .collect();
    assert_eq!(
        blocks.len(),
        units.len(),
        "systemctl show printed {} blocks for {} units",
        blocks.len(),
        units.len()
    );
    let mut gaps = Vec::new();
    for (i, (_, ups)) in dag.iter().enumerate() {
        for &u in ups {
            let (down, up) = (blocks[i], blocks[u]);
            assert!(
                down.0 > 0.0 && up.1 > 0.0,
                "no timestamps for {} or {}",
                units[i],
                units[u]
            );
            gaps.push((down.0 - up.1) / 1000.0);
        }
    }
    gaps
}

fn inside(sb: &Sandbox, program: &str, args: &[&str]) -> String {
    let out = sb
        .command(program)
        .args(args)
        .output()
        .expect("run inside the sandbox");
    assert!(
        out.status.success() || program.ends_with("flow"),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

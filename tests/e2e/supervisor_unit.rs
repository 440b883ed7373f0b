//! The supervisor as the package runs it: `units/flow-supervisor.service`, hardened, in a
//! sandboxed systemd. Its sandboxing must take nothing it needs: it records runs, retries a
//! task that runs as another user (writing markers into that user's run directory) and
//! reads the journal at start-up, and `systemd-analyze security` rates it well.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use std::time::Duration;

use crate::harness::{Boot, attempts, sh, wait_until, write_unit};

/// The highest exposure `systemd-analyze security` may give the supervisor's unit (0 is
/// the best, 10 the worst; the unit scored 9.0 "UNSAFE" before it was hardened).
const MAX_EXPOSURE: f64 = 2.0;

#[test]
fn the_hardened_supervisor_unit_records_and_retries_a_users_task() {
    let Some(sb) = Boot::new().boot() else { return };
    let unit = include_str!("../../units/flow-supervisor.service")
        .replace("/usr/bin/flow", "/usr/local/bin/flow");
    write_unit(&sb, "flow-supervisor.service", &unit);
    sh(&sb, "useradd --system --no-create-home flowtester").ok();
    sb.write_workflow(
        "hard",
        "tasks:
  flaky:
    user: flowtester
    retries: 2
    retry_delay: 1s
    run: |
      test -e /var/tmp/flaky-ran && exit 0
      touch /var/tmp/flaky-ran
      exit 1
  after:
    needs: [flaky]
    run: echo after
  cleanup:
    needs: [flaky]
    when: always
    run: touch /var/tmp/cleanup-ran
",
    );
    sh(&sb, "chmod 1777 /var/tmp; flow apply").ok();
    sh(
        &sb,
        "systemctl daemon-reload && systemctl start flow-supervisor.service",
    )
    .ok();
    let run = sh(&sb, "timeout 60 flow run hard --wait");
    assert!(run.success(), "{run:?}");
    let history = sh(&sb, "flow history hard --json").ok();
    let runs = common::schema_checked("history", &history.stdout);
    assert_eq!(runs["runs"][0]["result"], "succeeded", "{runs:#}");
    let status = sh(&sb, "flow status hard 1 --json").ok();
    let v = common::schema_checked("status", &status.stdout);
    let flaky = attempts(&v, "flaky");
    assert_eq!(flaky.len(), 2, "a failed attempt, then the retry: {v:#}");
    // `cleanup` waited for flaky's final outcome: the marker the supervisor writes into the
    // run directory, which belongs to flaky's user.
    assert!(sh(&sb, "test -e /var/tmp/cleanup-ran").success(), "{v:#}");
    let owner = sh(&sb, "stat -c %U /run/flow/hard").ok();
    println!("run directory owner: {}", owner.stdout.trim());

    // Restarted, it reads back a run it did not see (start-up reconciliation reads the
    // journal and unit properties from inside its sandbox).
    sh(&sb, "systemctl stop flow-supervisor.service").ok();
    sh(&sb, "systemctl start flow-hard.service").ok();
    sh(&sb, "systemctl start flow-supervisor.service").ok();
    wait_until(
        "the run while it was down, recorded",
        Duration::from_secs(30),
        || {
            let out = sh(&sb, "flow history hard --json").stdout;
            let history: serde_json::Value = serde_json::from_str(&out).ok()?;
            let runs = history["runs"].as_array()?;
            (runs.len() == 2 && runs[0]["result"] == "succeeded").then_some(())
        },
    );
    let active = sh(&sb, "systemctl is-active flow-supervisor.service");
    assert_eq!(active.stdout.trim(), "active", "{active:?}");

    let security = sh(&sb, "systemd-analyze security flow-supervisor.service").ok();
    let exposure: f64 = security
        .stdout
        .lines()
        .find_map(|l| {
            l.split("flow-supervisor.service:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{}", security.stdout));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{}",
        security.stdout
    );
}

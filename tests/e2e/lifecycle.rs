//! End-to-end: schedules fire on a real systemd and `pause`/`resume` stop and restart them;
//! `apply` is idempotent, changes only what changed, and `remove` leaves nothing behind.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::thread::sleep;
use std::time::Duration;

use crate::common;
use crate::harness::{self, Boot, FlowBox};

fn fires(fb: &FlowBox) -> usize {
    if !fb.exists("/srv/ticks") {
        return 0;
    }
    fb.read_string("/srv/ticks").lines().count()
}

#[test]
fn a_schedule_fires_and_pause_resume_stop_and_restart_it() {
    let Some(fb) = Boot::new().alone().boot() else {
        return;
    };
    fb.apply(
        "tick",
        "schedule: {every: 2s}
tasks:
  tick: {run: 'date +%s.%N >> /srv/ticks'}
",
    );
    // `every:` elapses on the monotonic clock: `flow list` still shows when, as a date.
    let list = fb.flow(&["list", "--json"]).ok().stdout;
    let rows = common::schema_checked("list", &list);
    let next = rows["workflows"][0]["next"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(next.starts_with("20"), "no next fire time in {list}");

    sleep(Duration::from_secs(7));
    let n = fires(&fb);
    assert!(n >= 3, "a 2 s schedule fired {n} times in 7 s");

    let paused = fb.flow(&["pause", "tick", "--json"]).ok().stdout;
    common::schema_checked("pause", &paused);
    assert_eq!(paused.trim(), r#"{"paused":true,"workflow":"tick"}"#);
    // A run that was already going may still finish.
    sleep(Duration::from_millis(300));
    let paused = fires(&fb);
    // A new schedule applied meanwhile leaves it paused, and says so.
    let applied = fb.apply(
        "tick",
        "schedule: {every: 1s}
tasks:
  tick: {run: 'date +%s.%N >> /srv/ticks'}
",
    );
    assert!(
        applied
            .stdout
            .contains("tick is paused: its new schedule starts with `flow resume tick`."),
        "{}",
        applied.stdout
    );
    sleep(Duration::from_secs(4));
    assert_eq!(fires(&fb), paused, "the schedule fired while paused");
    let list = fb.flow(&["list"]).ok().stdout;
    assert!(list.contains("paused"), "{list}");

    let nothing = fb.flow(&["cancel", "tick"]).ok().stdout;
    assert!(nothing.contains("nothing to cancel"), "{nothing}");

    fb.flow(&["resume", "tick"]).ok();
    sleep(Duration::from_secs(5));
    let resumed = fires(&fb);
    assert!(
        resumed >= paused + 3,
        "after resume the 1 s schedule fired {} times in 5 s",
        resumed - paused
    );
}

#[test]
fn catch_up_and_jitter_become_timer_settings() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "nightly",
        "schedule: '30 2 * * *'
catch_up: true
jitter: 5m
tasks:
  job: {run: 'true'}
",
    );
    fb.apply(
        "plain",
        "schedule: '30 2 * * *'
tasks:
  job: {run: 'true'}
",
    );
    let keys = [
        "Persistent",
        "RandomizedDelayUSec",
        "ActiveState",
        "TimersCalendar",
    ];
    let get = |unit: &str, k: &str| {
        fb.show(unit, &keys)
            .into_iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    assert_eq!(get("flow-nightly.timer", "Persistent"), "yes");
    assert_eq!(get("flow-nightly.timer", "RandomizedDelayUSec"), "5min");
    assert_eq!(get("flow-nightly.timer", "ActiveState"), "active");
    assert!(
        get("flow-nightly.timer", "TimersCalendar").contains("*-*-* 02:30:00"),
        "{}",
        get("flow-nightly.timer", "TimersCalendar")
    );
    assert_eq!(get("flow-plain.timer", "Persistent"), "no");
    assert_eq!(get("flow-plain.timer", "RandomizedDelayUSec"), "0");
}

/// `path mtime inode` of each flow unit file, sorted.
fn unit_files(fb: &FlowBox, wf: &str) -> Vec<String> {
    let out = fb.sh(&format!(
        "cd /etc/systemd/system && for f in flow-{wf}.* flow-{wf}--*; do [ -e \"$f\" ] && stat -c '%n %Y.%y %i' \"$f\"; done; true"
    ));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn apply_reapply_edit_and_remove() {
    let Some(fb) = Boot::new().boot() else { return };
    let v1 = "tasks:
  a: {run: 'echo one > /srv/a'}
  b: {needs: [a], run: 'echo b > /srv/b'}
";
    fb.apply("life", v1);
    let before = unit_files(&fb, "life");
    assert_eq!(before.len(), 6, "{before:?}");
    let status = fb.flow(&["status", "life"]).ok().stdout;
    assert!(
        status.contains("No run of life has started yet: `flow run life` starts one."),
        "{status}"
    );
    assert!(fb.run_wait("life").succeeded);
    let status = fb.flow(&["status", "life"]).ok().stdout;
    assert!(!status.contains("No run"), "{status}");
    assert_eq!(fb.read_string("/srv/a"), "one\n");

    // Re-applying the same file changes nothing: same files, same inodes and times.
    sleep(Duration::from_millis(20));
    let again = fb.flow(&["apply"]).ok();
    assert_eq!(unit_files(&fb, "life"), before, "{}", again.stdout);

    // Editing one task rewrites only that task's unit, and the next run uses it.
    fb.apply("life", &v1.replace("echo one", "echo two"));
    let after = unit_files(&fb, "life");
    let changed: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(changed.len(), 1, "changed: {changed:?}");
    assert!(
        changed[0].starts_with("flow-life--a.service "),
        "{changed:?}"
    );
    assert!(fb.run_wait("life").succeeded);
    assert_eq!(fb.read_string("/srv/a"), "two\n");

    // Edited and not applied: runs keep the applied units, and flow says so.
    let yaml = "/etc/flow/workflows/life.yaml";
    fb.write(yaml, v1.replace("echo one", "echo three"));
    let run = fb.run_wait("life");
    assert!(run.succeeded);
    assert_eq!(fb.read_string("/srv/a"), "two\n");
    let note = format!("note: {yaml} changed since `flow apply`");
    assert!(run.stderr.contains(&note), "{}", run.stderr);
    let status = fb.flow(&["status", "life"]).ok();
    assert!(status.stderr.contains(&note), "{}", status.stderr);
    let json = fb.flow(&["status", "life", "--json"]).ok().stdout;
    let v = common::schema_checked("status", &json);
    assert_eq!(v["source_state"], "changed", "{json}");
    fb.write(yaml, v1.replace("echo one", "echo two"));
    assert!(!fb.flow(&["status", "life"]).ok().stderr.contains("note:"));

    // Removing leaves no file and no unit.
    fb.flow(&["remove", "life"]).ok();
    assert_eq!(unit_files(&fb, "life"), Vec::<String>::new());
    let units = fb.sh("systemctl list-units --all --no-legend 'flow-life*'; systemctl list-unit-files --no-legend 'flow-life*'; true");
    assert!(units.trim().is_empty(), "left behind:\n{units}");
    let state = fb.sd.unit_state("flow-life--a.service").expect("state");
    assert_eq!(state.load_state, "not-found");
}

/// `--user`: a user's own manager (root's, in the sandbox) runs the workflow; status, logs,
/// list, the trigger unit and pause/resume work on it, read from that manager and from the
/// journal (where a user manager logs less than the system's: no "Deactivated" message).
#[test]
fn a_users_own_manager_runs_workflows() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.sh("systemctl start user@0.service");
    let env = harness::AS_ROOTS_OWN_MANAGER;
    fb.write(
        "/root/.config/flow/workflows/mine.yaml",
        "schedule: {every: 1h}\ntasks:\n  hello: {run: 'echo hello from $(id -un)'}\n  bye: {needs: [hello], run: 'echo bye'}\n",
    );
    let user = |cmd: &str| fb.sh(&format!("{env} {cmd}"));
    let applied = user("flow apply --user 2>&1");
    assert!(applied.contains("flow-mine.trigger.service"), "{applied}");
    // A scheduled workflow in a manager that stops at logout: said, until lingering.
    assert!(
        applied.contains("note: your own manager, and with it your workflows' timers, runs only while you are logged in"),
        "{applied}"
    );
    // No supervisor unit for the user's manager here (the package installs it): said,
    // with how to run one.
    assert!(
        applied.contains("note: no supervisor runs for your manager")
            && applied.contains("supervise --user`"),
        "{applied}"
    );
    let again = user(
        "mkdir -p /var/lib/systemd/linger; touch /var/lib/systemd/linger/root; flow apply --user 2>&1",
    );
    assert!(!again.contains("logged in"), "{again}");
    assert!(
        fb.exists("/root/.config/systemd/user/flow-mine.service"),
        "{applied}"
    );
    let ran = user("flow run mine --user --wait --json");
    let v = common::schema_checked("run-wait", &ran);
    assert_eq!(v["result"], "succeeded", "{v:#}");
    let status = user("flow status mine --user --json");
    let s = common::schema_checked("status", &status);
    let states: Vec<&str> = s["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert_eq!(states, ["succeeded", "succeeded"], "{s:#}");
    // journald reads a task's output stream on its own schedule: wait for the last line.
    let logs = harness::wait_until("both tasks' lines", Duration::from_secs(10), || {
        let logs = user("flow logs mine --user");
        logs.contains(" bye | bye").then_some(logs)
    });
    assert!(logs.contains(" hello | hello from root"), "{logs}");
    let list = user("flow list --user");
    assert!(list.contains("succeeded"), "{list}");
    // The trigger unit (what the timer starts) finds the user's manager through `%t`.
    let hello = |s: &serde_json::Value| s["tasks"][0]["invocation_id"].as_str().map(str::to_string);
    let first = hello(&s);
    assert!(first.is_some(), "{s:#}");
    user("systemctl --user start flow-mine.trigger.service");
    harness::wait_until("a second run", Duration::from_secs(20), || {
        let out = user("flow status mine --user --json");
        let s: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
        (s["tasks"][1]["state"] == "succeeded" && hello(&s) != first).then_some(())
    });
    let paused = user("flow pause mine --user; systemctl --user is-active flow-mine.timer || true");
    assert!(paused.trim_end().ends_with("inactive"), "{paused}");
    // What it suggests next is for the same manager.
    assert!(
        paused.contains("until `flow resume mine --user`"),
        "{paused}"
    );
}

/// A unit flow did not generate at a name a workflow would take, elsewhere in the
/// manager's path (as the package's `flow-supervisor.service` is for a workflow named
/// `supervisor`) or in the unit directory itself: `flow plan` shows it as a conflict,
/// `flow apply` refuses naming it, and `--force` is needed to install all the same; a
/// hand-written unit is never replaced without it.
#[test]
fn units_flow_did_not_generate_are_neither_shadowed_nor_replaced() {
    let Some(fb) = Boot::new().boot() else { return };
    let theirs = "[Service]\nExecStart=/bin/true\n";
    let packaged = "/usr/lib/systemd/system/flow-pkg.service";
    fb.write(packaged, theirs);
    fb.write(
        &format!("{}/pkg.yaml", harness::WORKFLOWS),
        "tasks:\n  a: 'true'\n",
    );
    let plan = fb.flow(&["plan"]).ok().stdout;
    assert!(
        plan.contains(&format!(
            "  ! flow-pkg.service  conflicts with {packaged}, a file flow did not generate"
        )),
        "{plan}"
    );
    let refused = fb.flow(&["apply"]);
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains(&format!(
            "{packaged} is a file flow did not generate, with the name of a unit flow would install"
        )),
        "{}",
        refused.stderr
    );
    assert!(!fb.exists("/etc/systemd/system/flow-pkg.service"));
    fb.flow(&["apply", "--force"]).ok();
    assert!(
        fb.read_string("/etc/systemd/system/flow-pkg.service")
            .starts_with("# Generated by flow from ")
    );
    assert_eq!(fb.read_string(packaged), theirs);

    // In the unit directory: kept.
    let mine = "/etc/systemd/system/flow-mine--a.service";
    fb.write(mine, theirs);
    fb.write(
        &format!("{}/mine.yaml", harness::WORKFLOWS),
        "tasks:\n  a: 'true'\n",
    );
    let refused = fb.flow(&["apply"]);
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains(&format!(
            "{mine} is a file flow did not generate, where flow would write its unit"
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(fb.read_string(mine), theirs);
    assert!(!fb.exists("/etc/systemd/system/flow-mine.service"));
}

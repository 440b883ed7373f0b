//! End-to-end tests of the D-Bus client against a real systemd 252 in a sandbox: job
//! results, unit state, enable/disable, stop.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::harness::{Boot, run, systemd, wait_for_unit, write_unit};
use flow::systemd::{Bus, JobResult, Systemd, SystemdError};

const OK: &str = "[Service]\nType=oneshot\nExecStart=/bin/true\n";
const FAIL: &str = "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 3'\n";

#[test]
fn job_results_done_failed_dependency() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    write_unit(&sb, "t-ok.service", OK);
    write_unit(&sb, "t-fail.service", FAIL);
    write_unit(
        &sb,
        "t-down.service",
        "[Unit]\nRequires=t-fail.service\nAfter=t-fail.service\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    let sd = systemd(&sb);
    sd.reload().expect("reload");

    let ok = sd.start_unit("t-ok.service").expect("start t-ok");
    assert_eq!(ok.result, JobResult::Done);
    assert_eq!(ok.unit, "t-ok.service");

    assert_eq!(
        sd.start_unit("t-fail.service").expect("start").result,
        JobResult::Failed
    );
    assert_eq!(
        sd.start_unit("t-down.service").expect("start").result,
        JobResult::Dependency
    );
    // The dependent never ran: it stays inactive, not failed.
    let down = sd.unit_state("t-down.service").expect("state");
    assert_eq!(down.active_state, "inactive");
    assert_eq!(down.invocation_id, None);
}

#[test]
fn unit_state_shows_result_exit_status_and_invocation() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    write_unit(&sb, "t-ok.service", OK);
    write_unit(&sb, "t-fail.service", FAIL);
    let sd = systemd(&sb);
    sd.reload().expect("reload");

    let never = sd.unit_state("t-ok.service").expect("state");
    assert_eq!(never.load_state, "loaded");
    assert_eq!(never.active_state, "inactive");
    assert_eq!(never.invocation_id, None);
    assert_eq!(never.exec_main_start_timestamp, None);

    sd.start_unit("t-ok.service").expect("start");
    let first = sd.unit_state("t-ok.service").expect("state");
    assert_eq!(first.result.as_deref(), Some("success"));
    assert_eq!(first.exec_main_code, 1, "CLD_EXITED");
    assert_eq!(first.exec_main_status, 0);
    let id = first.invocation_id.clone().expect("an invocation id");
    assert_eq!(id.len(), 32);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let (start, exit) = (
        first.exec_main_start_timestamp.expect("start time"),
        first.exec_main_exit_timestamp.expect("exit time"),
    );
    assert!(start <= exit);
    assert!(first.inactive_enter_timestamp.is_some());
    // The journal tags the run with the same ID systemd reports.
    let show = run(
        &sb,
        "systemctl",
        &["show", "-P", "InvocationID", "t-ok.service"],
    )
    .ok();
    assert_eq!(show.stdout.trim(), id);

    // Every activation gets a new ID.
    sd.start_unit("t-ok.service").expect("start again");
    let second = sd.unit_state("t-ok.service").expect("state");
    assert_ne!(second.invocation_id.as_deref(), Some(id.as_str()));

    sd.start_unit("t-fail.service").expect("start");
    let failed = sd.unit_state("t-fail.service").expect("state");
    assert_eq!(failed.active_state, "failed");
    assert_eq!(failed.result.as_deref(), Some("exit-code"));
    assert_eq!((failed.exec_main_code, failed.exec_main_status), (1, 3));

    sd.reset_failed_unit("t-fail.service")
        .expect("reset-failed");
    let reset = sd.unit_state("t-fail.service").expect("state");
    assert_eq!(reset.active_state, "inactive");
    assert_eq!(reset.result.as_deref(), Some("success"));

    let missing = sd.unit_state("t-missing.service").expect("state");
    assert_eq!(missing.load_state, "not-found");
}

#[test]
fn enable_disable_and_timers() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    write_unit(&sb, "t-tick.service", OK);
    write_unit(
        &sb,
        "t-tick.timer",
        "[Timer]\nOnCalendar=*-*-* 03:00:00\n[Install]\nWantedBy=timers.target\n",
    );
    let sd = systemd(&sb);
    sd.reload().expect("reload");

    let changes = sd
        .enable_unit_files(&["t-tick.timer".to_string()])
        .expect("enable");
    assert!(
        changes
            .iter()
            .any(|c| c.kind == "symlink" && c.file.ends_with("timers.target.wants/t-tick.timer")),
        "{changes:?}"
    );
    sd.reload().expect("reload");
    let enabled = run(&sb, "systemctl", &["is-enabled", "t-tick.timer"]);
    assert_eq!(enabled.stdout.trim(), "enabled");

    assert_eq!(
        sd.start_unit("t-tick.timer").expect("start").result,
        JobResult::Done
    );
    let timer = sd.unit_state("t-tick.timer").expect("state");
    assert_eq!(timer.active_state, "active");
    assert!(timer.next_elapse_realtime.is_some(), "{timer:?}");
    let listed = sd.list_units_by_patterns(&["t-tick.*"]).expect("list");
    assert!(
        listed
            .iter()
            .any(|u| u.name == "t-tick.timer" && u.sub_state == "waiting")
    );

    assert_eq!(
        sd.stop_unit("t-tick.timer").expect("stop").result,
        JobResult::Done
    );
    assert_eq!(
        sd.unit_state("t-tick.timer").expect("state").active_state,
        "inactive"
    );

    let changes = sd
        .disable_unit_files(&["t-tick.timer".to_string()])
        .expect("disable");
    assert!(changes.iter().any(|c| c.kind == "unlink"), "{changes:?}");
    sd.reload().expect("reload");
    let disabled = run(&sb, "systemctl", &["is-enabled", "t-tick.timer"]);
    assert_eq!(disabled.stdout.trim(), "disabled");
}

#[test]
fn stop_and_no_wait_start() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    write_unit(
        &sb,
        "t-sleep.service",
        "[Service]\nExecStart=/bin/sleep 300\n",
    );
    write_unit(
        &sb,
        "t-slow.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sleep 0.3\n",
    );
    let sd = systemd(&sb);
    sd.reload().expect("reload");

    assert_eq!(
        sd.start_unit("t-sleep.service").expect("start").result,
        JobResult::Done
    );
    assert_eq!(
        sd.unit_state("t-sleep.service").expect("state").sub_state,
        "running"
    );
    let stopped = sd.stop_unit("t-sleep.service").expect("stop");
    assert_eq!(stopped.result, JobResult::Done);
    assert_eq!(
        sd.unit_state("t-sleep.service")
            .expect("state")
            .active_state,
        "inactive"
    );

    sd.start_unit_no_wait("t-slow.service").expect("queue");
    let done = wait_for_unit(&sd, "t-slow.service", Duration::from_secs(10));
    assert_eq!(done.result.as_deref(), Some("success"));
    assert!(done.invocation_id.is_some());
}

#[test]
fn errors_are_for_people() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    let sd = systemd(&sb);
    match sd.start_unit("t-does-not-exist.service") {
        Err(e @ SystemdError::NoSuchUnit { .. }) | Err(e @ SystemdError::Refused { .. }) => {
            assert!(e.to_string().contains("t-does-not-exist.service"), "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let nowhere = Systemd::connect(Bus::Address("unix:path=/nonexistent/flow-test-bus".into()));
    match nowhere {
        Err(e @ SystemdError::Connect { .. }) => {
            assert!(
                e.to_string().contains("is systemd running as PID 1?"),
                "{e}"
            );
        }
        Err(other) => panic!("expected a connect error, got {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

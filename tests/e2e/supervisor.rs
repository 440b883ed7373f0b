//! End-to-end tests of the supervisor in a sandboxed systemd: retries, final outcomes seen
//! by downstream tasks, deadlines, and recovery after SIGKILL.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::common;
use crate::harness::{
    AS_ROOTS_OWN_MANAGER, Boot, DB, FlowBox, attempts, now_us, results, sh, wait_until,
};
use flow::sandbox::Sandbox;

/// How many match rules dbus-daemon holds for the bus connection of the process whose PID
/// the shell command `pid` prints (its debug statistics, which Debian's dbus-daemon has).
fn bus_match_rules(sb: &Sandbox, pid: &str) -> u32 {
    let out = sh(
        sb,
        &format!(
            r#"pid=$({pid})
            name=$(busctl list --no-legend | awk -v p="$pid" '$2==p && $1 ~ /^:/ {{print $1}}')
            busctl call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus.Debug.Stats GetAllMatchRules | grep -o "\"$name\" [0-9]*""#
        ),
    )
    .ok();
    out.stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no match rules read: {out:?}"))
}

const SUPERVISOR_PID: &str = "systemctl show -p MainPID --value supervisor-test.service";

const RETRY3: &str = "
tasks:
  flaky:
    run: |
      n=$(cat /var/tmp/flaky 2>/dev/null || echo 0); n=$((n+1)); echo $n > /var/tmp/flaky
      echo attempt $n
      [ $n -ge 3 ]
    retries: 3
    retry_delay: 1s
  down:
    needs: [flaky]
    run: echo downstream >> /var/tmp/down
  after:
    needs: [flaky]
    when: always
    run: echo always >> /var/tmp/always
";

const EXHAUST: &str = "
tasks:
  first:
    run: echo first >> /var/tmp/first
  broken:
    needs: [first]
    run: exit 7
    retries: 2
    retry_delay: 1s
    backoff: exponential
  down:
    needs: [broken]
    run: echo should not run
  alert:
    needs: [broken]
    when: on_failure
    run: echo alert >> /var/tmp/alert
";

/// Runs RETRY3 once: it succeeds on the third attempt of `flaky`, then `down` runs.
/// Returns the run's `flow status` JSON.
fn run_retry3(sb: &FlowBox) -> serde_json::Value {
    sh(sb, "systemctl start flow-retry3.service").ok();
    let v = sb.wait_run("retry3", 1, Duration::from_secs(30));
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(
        results(&v, "flaky"),
        ["failed (exit 1)", "failed (exit 1)", "succeeded"],
        "{v:#}"
    );
    assert_eq!(results(&v, "down"), ["succeeded"], "{v:#}");
    v
}

#[test]
fn retries_succeed_on_the_third_attempt_and_downstream_runs_once() {
    let Some(sb) = Boot::new().workflow("retry3", RETRY3).supervisor().boot() else {
        return;
    };
    let v = run_retry3(&sb);
    assert_eq!(results(&v, "after"), ["succeeded"], "{v:#}");
    assert_eq!(sh(&sb, "cat /var/tmp/down").ok().stdout, "downstream\n");
    assert_eq!(sh(&sb, "cat /var/tmp/always").ok().stdout, "always\n");
    // Each attempt is its own activation.
    let ids: std::collections::BTreeSet<&str> = attempts(&v, "flaky")
        .iter()
        .filter_map(|a| a["invocation_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{v:#}");
    // Delays of ~1 s between attempts.
    let starts: Vec<i64> = attempts(&v, "flaky")
        .iter()
        .filter_map(|a| common::us(&a["started"]))
        .collect();
    for w in starts.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (900_000..3_000_000).contains(&gap),
            "retry gap {gap} µs not about 1 s: {v:#}"
        );
    }
    // The exact lines of the second attempt (journald writes a task's output on its own
    // schedule: wait for it).
    let logs = wait_until(
        "the second attempt's lines",
        Duration::from_secs(10),
        || {
            let logs = sh(
                &sb,
                &format!("flow logs retry3 1 --task flaky --attempt 2 --db {DB}"),
            )
            .ok();
            logs.stdout.contains("attempt 2").then_some(logs)
        },
    );
    assert!(!logs.stdout.contains("attempt 1"), "{}", logs.stdout);
    // A task name the run does not have is an error that names the ones it has.
    let wrong = sh(&sb, &format!("flow logs retry3 1 --task flakey --db {DB}"));
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("run 1 of `retry3` has no task `flakey`; its tasks: after, down, flaky"),
        "{wrong:?}"
    );
    let hist = sh(&sb, &format!("flow history --db {DB}")).ok();
    assert!(hist.stdout.contains("retry3"), "{}", hist.stdout);
    assert!(hist.stdout.contains("succeeded"), "{}", hist.stdout);
}

/// With the supervisor running, `flow run --wait` follows the run through it: through the
/// retries, to the run's recorded end, and with the run's number in the history.
#[test]
fn run_wait_follows_the_retries_to_the_recorded_end() {
    let Some(sb) = Boot::new().workflow("retry3", RETRY3).supervisor().boot() else {
        return;
    };
    let t0 = std::time::Instant::now();
    let out = sh(&sb, "flow run retry3 --wait");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Two failed attempts, each told with its retry, then the success; ~1 s apart.
    assert_eq!(
        out.stdout.matches("failed (exit 1)").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("tried again in").count(),
        2,
        "{}",
        out.stdout
    );
    // Each attempt told running once.
    let running = out
        .stdout
        .lines()
        .filter(|l| l.contains(" flaky ") && l.ends_with("running"))
        .count();
    assert_eq!(running, 3, "{}", out.stdout);
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(
        out.stdout.contains("Run 1 succeeded."),
        "the run's number: {}",
        out.stdout
    );
    let table = out.stdout.rsplit("TASK").next().unwrap_or_default();
    for task in ["flaky", "down", "after"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(task) && l.contains("succeeded")),
            "{task}: {}",
            out.stdout
        );
    }
    // The history has the run's end already: --wait returned after it was recorded.
    let v = sh(&sb, &format!("flow status retry3 1 --json --db {DB}")).ok();
    let v = common::schema_checked("status", &v.stdout);
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(results(&v, "flaky").len(), 3, "{v:#}");
    // `--json` says which run it was; the next one succeeds at once.
    let out = sh(&sb, "flow run retry3 --wait --json").ok();
    let j = common::schema_checked("run-wait", &out.stdout);
    assert_eq!(j["run"], 2, "{j:#}");
    assert_eq!(j["result"], "succeeded", "{j:#}");
}

/// Nobody asks dbus-daemon for systemd's signals while the supervisor runs: it reads them
/// from PID 1's private socket, and a run followed through it adds no subscriber (each has
/// every unit's change signals routed to it, which slows systemd down). Without the
/// supervisor, `flow run --wait` has to subscribe itself.
#[test]
fn nobody_asks_the_bus_for_signals_while_the_supervisor_runs() {
    let Some(sb) = Boot::new()
        .workflow("slp", "tasks:\n  s: {run: sleep 2}\n")
        .supervisor()
        .boot()
    else {
        return;
    };
    // The match rules dbus-daemon holds for the `flow run --wait` client, while it waits.
    let rules = || {
        sh(
            &sb,
            "rm -f /var/tmp/out; \
             (flow run slp --wait > /var/tmp/out 2>&1; echo done >> /var/tmp/out) > /dev/null 2>&1 &",
        )
        .ok();
        wait_until("the task to run", Duration::from_secs(10), || {
            sh(&sb, "grep -q running /var/tmp/out")
                .success()
                .then_some(())
        });
        let n = bus_match_rules(&sb, "pgrep -f '^flow run slp --wait'");
        wait_until("the run to end", Duration::from_secs(20), || {
            sh(&sb, "grep -qx done /var/tmp/out")
                .success()
                .then_some(())
        });
        n
    };
    // The supervisor itself reads PID 1's private socket: nothing routed to it either.
    assert_eq!(bus_match_rules(&sb, SUPERVISOR_PID), 0);
    assert_eq!(rules(), 0, "a subscription beside the supervisor's");
    sh(&sb, "systemctl stop supervisor-test.service").ok();
    assert!(
        rules() > 0,
        "without the supervisor the client must subscribe"
    );
}

/// Starts `flow run WF --wait` in the background (its output in /var/tmp/out, its exit
/// status in /var/tmp/rc) and returns once it shows `task` running.
fn run_wait_until_running(sb: &Sandbox, wf: &str, task: &str) {
    sh(
        sb,
        &format!(
            "(flow run {wf} --wait > /var/tmp/out 2>&1; echo $? > /var/tmp/rc) > /dev/null 2>&1 &"
        ),
    )
    .ok();
    wait_until(&format!("{task} to run"), Duration::from_secs(20), || {
        sh(sb, &format!("grep -q '{task}.*running' /var/tmp/out"))
            .success()
            .then_some(())
    });
}

/// The exit status and output of the `flow run --wait` [`run_wait_until_running`] started,
/// once it ended.
fn run_wait_end(sb: &Sandbox, timeout: Duration) -> (String, String) {
    let rc = wait_until("flow run --wait to end", timeout, || {
        let rc = sh(sb, "cat /var/tmp/rc").stdout;
        (!rc.is_empty()).then_some(rc)
    });
    (rc, sh(sb, "cat /var/tmp/out").ok().stdout)
}

/// A supervisor that goes away while `flow run --wait` follows a run through it: the rest
/// is read from systemd, and the run's outcome is still right.
#[test]
fn run_wait_outlives_the_supervisor() {
    let yaml = "
tasks:
  slow:
    run: sleep 2; echo done
  after:
    needs: [slow]
    run: exit 3
";
    let Some(sb) = Boot::new().workflow("gone", yaml).supervisor().boot() else {
        return;
    };
    run_wait_until_running(&sb, "gone", "slow");
    sh(&sb, "systemctl kill -s KILL supervisor-test.service").ok();
    let (rc, out) = run_wait_end(&sb, Duration::from_secs(30));
    assert_eq!(rc.trim(), "1", "{out}");
    let table = out.rsplit("TASK").next().unwrap_or_default();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("slow") && l.contains("succeeded")),
        "{out}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("after") && l.contains("failed (exit 3)")),
        "{out}"
    );
}

/// A supervisor restarted while `flow run --wait` follows a run through it (a package
/// upgrade restarts it): the client follows the run on through the new one, to the end
/// and result the history has, each attempt told once.
#[test]
fn run_wait_follows_the_run_through_a_supervisor_restart() {
    let yaml = "
tasks:
  work:
    run: 'n=$(cat /var/tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /var/tmp/n; sleep 2; [ $n -ge 1 ]'
    retries: 1
    retry_delay: 2s
  after:
    needs: [work]
    run: echo after
";
    let Some(sb) = Boot::new().workflow("restarted", yaml).supervisor().boot() else {
        return;
    };
    run_wait_until_running(&sb, "restarted", "work");
    sh(&sb, "systemctl restart supervisor-test.service").ok();
    let (rc, out) = run_wait_end(&sb, Duration::from_secs(40));
    assert_eq!(rc.trim(), "0", "{out}");
    assert!(out.contains("Run 1 succeeded."), "{out}");
    assert!(!out.contains("supervisor stopped"), "{out}");
    let told_again = out
        .lines()
        .filter(|l| l.contains("work") && l.contains("tried again"))
        .count();
    assert_eq!(told_again, 1, "the failed attempt told once:\n{out}");
    let v = sb.wait_run("restarted", 1, Duration::from_secs(10));
    assert_eq!(
        results(&v, "work"),
        ["failed (exit 1)", "succeeded"],
        "{v:#}"
    );
}

/// Where the manager's private socket cannot be opened, the supervisor reads the signals
/// from the bus: the same run, retries and all, recorded the same way.
#[test]
fn retries_are_driven_with_the_signals_from_the_bus_too() {
    let Some(sb) = Boot::new()
        .workflow("retry3", RETRY3)
        .supervisor_args("--bus-signals")
        .boot()
    else {
        return;
    };
    run_retry3(&sb);
    // And it asked the bus for them.
    let n = bus_match_rules(&sb, SUPERVISOR_PID);
    assert!(n >= 3, "{n} match rules");
}

#[test]
fn exhausted_retries_fail_downstream_and_run_on_failure_once() {
    let Some(sb) = Boot::new().workflow("exhaust", EXHAUST).supervisor().boot() else {
        return;
    };
    sh(&sb, "systemctl start flow-exhaust.service").ok();
    let v = sb.wait_run("exhaust", 1, Duration::from_secs(30));
    assert_eq!(v["result"], "failed", "{v:#}");
    assert_eq!(
        results(&v, "broken"),
        ["failed (exit 7)", "failed (exit 7)", "failed (exit 7)"],
        "{v:#}"
    );
    assert_eq!(results(&v, "first"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "down"), ["upstream_failed"], "{v:#}");
    assert_eq!(results(&v, "alert"), ["succeeded"], "{v:#}");
    assert_eq!(sh(&sb, "cat /var/tmp/first").ok().stdout, "first\n");
    assert_eq!(sh(&sb, "cat /var/tmp/alert").ok().stdout, "alert\n");
    // Starting `alert`, which `Wants=` broken, did not run broken a fourth time.
    assert_eq!(sb.starts("flow-exhaust--broken.service"), 3);
    // Exponential backoff: 1 s, then 2 s (+ up to 10 % jitter).
    let starts: Vec<i64> = attempts(&v, "broken")
        .iter()
        .filter_map(|a| common::us(&a["started"]))
        .collect();
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!((900_000..1_800_000).contains(&gaps[0]), "{gaps:?}");
    assert!((1_900_000..3_200_000).contains(&gaps[1]), "{gaps:?}");
}

/// `always` and `on_failure` tasks a step further down from a task with retries wait for
/// its final outcome: its first failure makes systemd skip the task between them, which is
/// not final either. They used to run on that first failure: an alert in a run that then
/// succeeded, and a cleanup before the task it follows.
#[test]
fn always_and_on_failure_two_steps_after_a_retried_task_wait_for_its_outcome() {
    let yaml = |succeeds_at: u32| {
        format!(
            "
tasks:
  a:
    run: 'n=$(cat /var/tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /var/tmp/n; [ $n -ge {succeeds_at} ]'
    retries: 1
    retry_delay: 1s
  b: {{needs: [a], run: 'echo b >> /var/tmp/order'}}
  cleanup: {{needs: [b], when: always, run: 'echo cleanup >> /var/tmp/order'}}
  alert: {{needs: [b], when: on_failure, run: 'echo alert >> /var/tmp/order'}}
"
        )
    };
    // The retry succeeds: no alert, and the cleanup after `b`.
    let Some(sb) = Boot::new()
        .workflow("late", &yaml(1))
        .workflow("never", &yaml(9))
        .supervisor()
        .boot()
    else {
        return;
    };
    sh(&sb, "systemctl start flow-late.service").ok();
    let v = sb.wait_run("late", 1, Duration::from_secs(30));
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(results(&v, "a"), ["failed (exit 1)", "succeeded"], "{v:#}");
    assert_eq!(results(&v, "b"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "cleanup"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "alert"), ["skipped"], "{v:#}");
    assert_eq!(sh(&sb, "cat /var/tmp/order").ok().stdout, "b\ncleanup\n");
    // The retries are exhausted: the alert and the cleanup run once, after the last try.
    sh(
        &sb,
        "rm /var/tmp/n /var/tmp/order; systemctl start flow-never.service",
    )
    .ok();
    let v = sb.wait_run("never", 2, Duration::from_secs(30));
    assert_eq!(v["result"], "failed", "{v:#}");
    assert_eq!(
        results(&v, "a"),
        ["failed (exit 1)", "failed (exit 1)"],
        "{v:#}"
    );
    assert_eq!(results(&v, "b"), ["upstream_failed"], "{v:#}");
    assert_eq!(results(&v, "cleanup"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "alert"), ["succeeded"], "{v:#}");
    let order = sh(&sb, "cat /var/tmp/order").ok().stdout;
    let mut lines: Vec<&str> = order.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["alert", "cleanup"], "{order}");
    let last_try = attempts(&v, "a")
        .iter()
        .filter_map(|a| common::us(&a["ended"]))
        .max();
    for task in ["cleanup", "alert"] {
        // To the millisecond: not before.
        let started = common::us(&attempts(&v, task)[0]["started"]);
        assert!(started >= last_try, "{task} before a's last try: {v:#}");
    }
}

/// Neither `flow cancel` nor a run's deadline lets an `always` or `on_failure` task run:
/// stopping the running task used to start the tasks waiting for it before their own stop
/// came (most of the time). A task stopped while it ran keeps its activation in the
/// history.
#[test]
fn a_stopped_run_runs_no_always_or_on_failure_task() {
    let yaml = |timeout: &str| {
        format!(
            "{timeout}
tasks:
  slow: {{run: 'echo started > /var/tmp/started; sleep 60'}}
  final: {{needs: [slow], when: always, run: 'echo final >> /var/tmp/ran'}}
  alert: {{needs: [slow], when: on_failure, run: 'echo alert >> /var/tmp/ran'}}
"
        )
    };
    let Some(sb) = Boot::new()
        .workflow("cx", &yaml(""))
        .workflow("dl", &yaml("timeout: 2s"))
        .supervisor()
        .boot()
    else {
        return;
    };
    let check = |v: &serde_json::Value| {
        assert_eq!(results(v, "slow"), ["canceled"], "{v:#}");
        let slow = attempts(v, "slow")[0];
        assert!(slow["invocation_id"].is_string(), "{v:#}");
        assert!(common::us(&slow["started"]).is_some(), "{v:#}");
        assert_eq!(results(v, "final"), ["canceled"], "{v:#}");
        assert_eq!(results(v, "alert"), ["canceled"], "{v:#}");
    };
    for run in 1..=3 {
        let started = sh(&sb, "rm -f /var/tmp/started; flow run cx --json")
            .ok()
            .stdout;
        let started = common::schema_checked("run", &started);
        assert_eq!(started["skipped"], false, "{started}");
        assert_eq!(started["run"], run, "{started}");
        wait_until("slow to run", Duration::from_secs(20), || {
            sh(&sb, "test -e /var/tmp/started")
                .status
                .success()
                .then_some(())
        });
        sh(&sb, "flow cancel cx").ok();
        let v = sb.wait_run("cx", run, Duration::from_secs(20));
        assert_eq!(v["result"], "canceled", "{v:#}");
        check(&v);
    }
    // `flow run --wait` says how it ended, in the history's words.
    let waited = sh(&sb, "flow run dl --wait");
    assert_eq!(waited.status.code(), Some(1), "{}", waited.stdout);
    assert!(
        waited
            .stdout
            .ends_with("\nRun 4 timed out: it ran past its deadline.\n"),
        "{}",
        waited.stdout
    );
    let v = sb.wait_run("dl", 4, Duration::from_secs(20));
    assert_eq!(v["result"], "timed_out", "{v:#}");
    check(&v);
    let json = sh(
        &sb,
        "flow run cx --wait --json & sleep 1; flow cancel cx >/dev/null; wait",
    )
    .stdout;
    let json = common::schema_checked("run-wait", &json);
    assert_eq!(json["result"], "canceled", "{json}");
    assert_eq!(json["run"], 5, "{json}");
    std::thread::sleep(Duration::from_secs(1));
    let ran = sh(&sb, "cat /var/tmp/ran 2>/dev/null").stdout;
    assert_eq!(ran, "", "ran after the run was stopped");
}

/// A retry that fell due while the supervisor was down runs as soon as it is back, not a
/// whole `retry_delay` after its return (every restart, an upgrade say, pushed it back).
#[test]
fn a_retry_due_while_the_supervisor_was_down_runs_once_it_is_back() {
    let yaml = "
tasks:
  flaky:
    run: 'n=$(cat /var/tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /var/tmp/n; [ $n -ge 1 ]'
    retries: 1
    retry_delay: 4s
";
    let Some(sb) = Boot::new().workflow("due", yaml).supervisor().boot() else {
        return;
    };
    // Returns when systemd's part is over: the first attempt failed.
    sh(&sb, "systemctl start flow-due.service").ok();
    sh(&sb, "systemctl kill -s KILL supervisor-test.service").ok();
    std::thread::sleep(Duration::from_secs(5));
    let back = std::time::Instant::now();
    sb.start_supervisor();
    let v = sb.wait_run("due", 1, Duration::from_secs(20));
    let waited = back.elapsed();
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(
        results(&v, "flaky"),
        ["failed (exit 1)", "succeeded"],
        "{v:#}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "retried {waited:?} after the restart"
    );
}

/// A run that began and ended while the supervisor was down is recorded once it is back,
/// also the first run of a workflow, and it ends in the history when its last task ended
/// (as the journal has it), not when the supervisor came back and read it.
#[test]
fn a_run_while_the_supervisor_was_down_is_recorded_with_its_own_end() {
    let yaml = "
tasks:
  a:
    run: 'true'
  b:
    needs: [a]
    run: 'sleep 0.3'
";
    let Some(sb) = Boot::new().workflow("down", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "systemctl kill -s KILL supervisor-test.service").ok();
    // Returns when the run is over.
    sh(&sb, "systemctl start flow-down.service").ok();
    let over_us = now_us();
    std::thread::sleep(Duration::from_secs(3));
    sb.start_supervisor();
    let v = sb.wait_run("down", 1, Duration::from_secs(20));
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(results(&v, "a"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "b"), ["succeeded"], "{v:#}");
    let ended = common::us(&v["ended"]).expect("ended");
    let b_ended = common::us(&attempts(&v, "b")[0]["ended"]).expect("b's end");
    assert_eq!(ended, b_ended, "the run ends with its last task: {v:#}");
    assert!(
        ended <= over_us,
        "the run's end ({ended}) is when it ended, before {over_us}, not when the supervisor read it"
    );
}

/// A second supervisor for the same manager refuses to start: it would retry each failed
/// task a second time, and used to take the first one's socket away from `flow run --wait`.
#[test]
fn a_second_supervisor_refuses_to_run_beside_the_first() {
    let Some(sb) = Boot::new().workflow("retry3", RETRY3).supervisor().boot() else {
        return;
    };
    let second = sh(&sb, "timeout 10 flow supervise --db /var/tmp/other.db");
    assert_eq!(second.status.code(), Some(3), "{second:?}");
    let pid = sh(&sb, SUPERVISOR_PID).ok().stdout;
    assert!(
        second.stderr.contains(&format!(
            "another supervisor runs for this manager already (PID {})",
            pid.trim()
        )),
        "{}",
        second.stderr
    );
    // The first still has its socket, and drives the retries alone.
    let waited = sh(&sb, "flow run retry3 --wait");
    assert!(
        !waited.stderr.contains("no supervisor"),
        "{}",
        waited.stderr
    );
    assert_eq!(waited.status.code(), Some(0), "{}", waited.stdout);
    let v = sb.wait_run("retry3", 1, Duration::from_secs(30));
    assert_eq!(
        results(&v, "flaky"),
        ["failed (exit 1)", "failed (exit 1)", "succeeded"],
        "{v:#}"
    );
}

/// `flow run --wait` of a run queued behind one that goes past its deadline follows the
/// queued run: the stop of the run before used to end its wait, and it printed that run.
#[test]
fn run_wait_of_a_queued_run_follows_it_past_the_deadline_of_the_one_before() {
    let yaml = "
overlap: queue
timeout: 2s
tasks:
  s: {run: 'sleep 10'}
";
    let Some(sb) = Boot::new().workflow("dq", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run dq").ok();
    sb.wait_activating("flow-dq--s.service");
    let waited = sh(&sb, "timeout 30 flow run dq --wait --json 2>/dev/null");
    let v = common::schema_checked("run-wait", &waited.stdout);
    assert_eq!(v["run"], 2, "{v}");
    assert_eq!(v["result"], "timed_out", "{v}");
    let first = sb.wait_run("dq", 1, Duration::from_secs(10));
    assert_eq!(first["result"], "timed_out", "{first:#}");
}

#[test]
fn deadline_cancels_a_long_run() {
    let yaml = "
timeout: 2s
tasks:
  slow:
    run: sleep 60
  later:
    needs: [slow]
    run: echo never
";
    let Some(sb) = Boot::new().workflow("slow", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "systemctl start --no-block flow-slow.service").ok();
    let v = sb.wait_run("slow", 1, Duration::from_secs(20));
    assert_eq!(v["result"], "timed_out", "{v:#}");
    assert_eq!(results(&v, "slow"), ["canceled"], "{v:#}");
    assert_eq!(results(&v, "later"), ["canceled"], "{v:#}");
    let active = sh(&sb, "systemctl is-active flow-slow--slow.service");
    assert_ne!(active.stdout.trim(), "active");
    // Nothing of the run is left active: a plain `systemctl start` is a new run. (The
    // begin unit used to stay active, and such a start ran nothing.)
    wait_until("the begin unit to stop", Duration::from_secs(10), || {
        let s = sh(&sb, "systemctl is-active flow-slow.begin.service").stdout;
        (s.trim() == "inactive").then_some(())
    });
    // `flow list` has the history's word for it, not only systemd's stopped tasks.
    let list = sh(&sb, "flow list --json").ok().stdout;
    common::schema_checked("list", &list);
    assert!(list.contains(r#""last_result":"timed_out""#), "{list}");
    sh(&sb, "systemctl start --no-block flow-slow.service").ok();
    sb.wait_activating("flow-slow--slow.service");
}

/// A task systemd cannot start (its `env_file` does not exist): each start is one failed
/// attempt, retried as often as the task says and no more. It used to stay pending, and
/// the supervisor started it again at once, hundreds of times a second, without end.
#[test]
fn a_task_that_cannot_start_is_tried_as_often_as_it_may_then_fails() {
    let yaml = "
env_file: /etc/flow/missing.env
tasks:
  a:
    run: echo never
    retries: 1
    retry_delay: 1s
  b:
    needs: [a]
    run: echo never
";
    let Some(sb) = Boot::new().workflow("noenv", yaml).supervisor().boot() else {
        return;
    };
    let out = sh(&sb, "timeout 30 flow run noenv --wait");
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("a  failed to start (resources)"),
        "{}",
        out.stdout
    );
    let v = sb.wait_run("noenv", 1, Duration::from_secs(10));
    assert_eq!(v["result"], "failed", "{v:#}");
    assert_eq!(
        results(&v, "a"),
        ["failed (resources)", "failed (resources)"],
        "{v:#}"
    );
    assert_eq!(results(&v, "b"), ["upstream_failed"], "{v:#}");
    // Two starts, and still two a while later: nothing starts it again.
    std::thread::sleep(Duration::from_secs(2));
    let failed_starts = || {
        sh(
            &sb,
            "journalctl --sync; journalctl -q -o cat -u flow-noenv--a.service",
        )
        .stdout
        .lines()
        .filter(|l| l.starts_with("Failed to start "))
        .count()
    };
    assert_eq!(failed_starts(), 2);
    // Why, where the user looks: the task's logs carry systemd's own error.
    let logs = sh(&sb, "flow logs noenv").ok().stdout;
    assert!(
        logs.matches("Failed to load environment files").count() == 2,
        "{logs}"
    );
    let status = sh(&sb, "flow status noenv --json").stdout;
    let st = common::schema_checked("status", &status);
    assert_eq!(st["tasks"][0]["state"], "failed", "{st:#}");
    // A failed start while the supervisor was down is found in the journal at its start
    // (an attempt, not a task still to run): one retry follows, as the task allows.
    sh(&sb, "systemctl stop supervisor-test.service").ok();
    sh(&sb, "flow run noenv").ok();
    wait_until("the run's failed start", Duration::from_secs(10), || {
        (failed_starts() == 3).then_some(())
    });
    sb.start_supervisor();
    let v = sb.wait_run("noenv", 2, Duration::from_secs(10));
    assert_eq!(
        results(&v, "a"),
        ["failed (resources)", "failed (resources)"],
        "{v:#}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(failed_starts(), 4);
}

/// A task renamed in the YAML and applied while a run waits for a retry: when the run
/// gets to it, its old unit is gone. The task is recorded as canceled, and the supervisor
/// lives on (it used to exit on the failed start, and, restarted, meet it again).
#[test]
fn a_task_removed_mid_run_is_canceled_and_the_supervisor_lives_on() {
    let yaml = "
tasks:
  a:
    run: '[ -e /var/tmp/ok ] || { touch /var/tmp/ok; false; }'
    retries: 1
    retry_delay: 3s
  b:
    needs: [a]
    run: echo b
";
    let Some(sb) = Boot::new().workflow("ren", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run ren").ok();
    wait_until("the first attempt", Duration::from_secs(20), || {
        sh(&sb, "test -e /var/tmp/ok").success().then_some(())
    });
    sb.write_workflow("ren", &yaml.replace("  b:", "  c:"));
    // `flow apply` says what becomes of the run going.
    let applied = sh(&sb, "flow apply");
    assert!(
        applied
            .stderr
            .contains("note: a run of ren is going (the supervisor (PID")
            && applied
                .stderr
                .contains("a task the workflow no longer has is canceled"),
        "{}",
        applied.stderr
    );
    let v = sb.wait_run("ren", 1, Duration::from_secs(30));
    assert_eq!(v["result"], "canceled", "{v:#}");
    assert_eq!(results(&v, "a"), ["failed (exit 1)", "succeeded"], "{v:#}");
    assert_eq!(results(&v, "b"), ["canceled"], "{v:#}");
    let active = sh(&sb, "systemctl is-active supervisor-test.service");
    assert_eq!(active.stdout.trim(), "active", "{active:?}");
    // The next run is the new definition's, recorded as usual.
    let next = sh(&sb, "flow run ren --wait");
    assert!(next.success(), "{next:?}");
    let v = sb.wait_run("ren", 2, Duration::from_secs(30));
    assert_eq!(results(&v, "c"), ["succeeded"], "{v:#}");
}

/// `flow cancel` mid-run: what runs is stopped, nothing of the run starts again (an
/// `always` task would pull its upstreams in once more), and the run is recorded canceled.
#[test]
fn flow_cancel_stops_the_run_and_starts_nothing_of_it() {
    let yaml = "
tasks:
  long:
    # Takes its time to stop, as a task that cleans up would: until the test lets it.
    run: trap 'until [ -e /var/tmp/release ]; do sleep 0.05; done; exit 143' TERM; sleep 60 & wait
  next:
    needs: [long]
    run: echo next >> /var/tmp/next
    retries: 1
  report:
    needs: [next]
    when: always
    run: echo report >> /var/tmp/report
";
    let Some(sb) = Boot::new().workflow("cx", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run cx").ok();
    sb.wait_activating("flow-cx--long.service");
    // `flow cancel` returns once the tasks stopped; meanwhile `flow status` says so.
    sh(&sb, "flow cancel cx > /tmp/cancel.out 2>&1 < /dev/null &").ok();
    let task_line = |state: &str| {
        let status = sh(&sb, "flow status cx").stdout;
        let line = status.lines().find(|l| l.contains(" long "))?.to_string();
        line.contains(state).then_some(line)
    };
    wait_until("long to show as stopping", Duration::from_secs(20), || {
        task_line("stopping")
    });
    // Meanwhile `flow cancel` has said what it waits for.
    let said = sh(&sb, "cat /tmp/cancel.out").stdout;
    assert_eq!(
        said,
        "Stopping the run of cx: each task still running is told to end...\n"
    );
    sh(&sb, "touch /var/tmp/release").ok();
    wait_until("flow cancel to end", Duration::from_secs(10), || {
        sh(&sb, "cat /tmp/cancel.out")
            .stdout
            .contains("Canceled the run of cx")
            .then_some(())
    });
    // Read back from the journal, as systemd says it ended: stopped, i.e. canceled.
    assert!(task_line("canceled").is_some(), "{:?}", task_line(""));
    let list = sh(&sb, "flow list --json").ok().stdout;
    assert!(list.contains(r#""last_result":"canceled""#), "{list}");
    let v = sb.wait_run("cx", 1, Duration::from_secs(20));
    assert_eq!(v["result"], "canceled", "{v:#}");
    assert_eq!(results(&v, "long"), ["canceled"], "{v:#}");
    assert!(
        attempts(&v, "long")[0]["invocation_id"].is_string(),
        "{v:#}"
    );
    assert_eq!(results(&v, "next"), ["canceled"], "{v:#}");
    assert_eq!(results(&v, "report"), ["canceled"], "{v:#}");
    // Time for anything the supervisor would start.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sb.starts("flow-cx--long.service"), 1);
    assert_eq!(sb.starts("flow-cx--report.service"), 0);
    assert!(sh(&sb, "test -e /var/tmp/report").status.code() == Some(1));
    // A supervisor started afresh reads the canceled run back from the journal: it is
    // over in the history, and nothing of it starts again.
    sh(&sb, "systemctl stop supervisor-test.service").ok();
    sb.start_supervisor();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sb.starts("flow-cx--long.service"), 1);
    assert_eq!(sb.starts("flow-cx--next.service"), 0);
    assert_eq!(sb.starts("flow-cx--report.service"), 0);
    let again = sb.wait_run("cx", 1, Duration::from_secs(5));
    assert_eq!(again["run"], v["run"], "the ended run was rewritten");
    // And the next run is a run, not refused as overlapping.
    let again = sh(&sb, "flow run cx").ok();
    assert!(again.stdout.contains("Started a run"), "{again:?}");
}

/// `flow cancel` while the supervisor waits to retry a task (systemd's part of the run is
/// over): no retry follows, and the run ends canceled.
#[test]
fn flow_cancel_between_retries_stops_them() {
    let yaml = "
tasks:
  flaky:
    run: echo x >> /var/tmp/tries; exit 1
    retries: 3
    retry_delay: 5s
";
    let Some(sb) = Boot::new().workflow("between", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run between").ok();
    wait_until("the first attempt to fail", Duration::from_secs(20), || {
        let failed = sh(&sb, "cat /var/tmp/tries 2>/dev/null")
            .stdout
            .lines()
            .count()
            == 1
            && sh(&sb, "systemctl is-active flow-between--flaky.service")
                .stdout
                .trim()
                == "failed";
        // The supervisor holds the run until its retry.
        let held = sh(&sb, "test -e /run/flow/between.hold").success();
        (failed && held).then_some(())
    });
    let canceled = sh(&sb, "flow cancel between --json").ok();
    let canceled = common::schema_checked("cancel", &canceled.stdout);
    assert_eq!(
        canceled,
        serde_json::json!({"workflow": "between", "run": 1, "canceled": true, "queued_canceled": false})
    );
    let v = sb.wait_run("between", 1, Duration::from_secs(10));
    assert_eq!(v["result"], "canceled", "{v:#}");
    assert_eq!(
        results(&v, "flaky"),
        ["failed (exit 1)", "canceled"],
        "{v:#}"
    );
    // Past the retry's time: no second attempt.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(sh(&sb, "cat /var/tmp/tries").stdout, "x\n");
    let again = sh(&sb, "flow run between").ok();
    assert!(again.stdout.contains("Started a run"), "{again:?}");
}

/// `flow remove` of a workflow whose run waits for a retry ends that run at once, canceled:
/// nothing of it can run any more, and it must not show as running until the retry's time.
#[test]
fn removing_a_workflow_during_a_retry_wait_ends_its_run() {
    let yaml = "
tasks:
  flaky:
    run: exit 1
    retries: 2
    retry_delay: 60s
";
    let Some(sb) = Boot::new().workflow("waits", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run waits").ok();
    wait_until(
        "the run to wait for its retry",
        Duration::from_secs(20),
        || {
            sh(&sb, "test -e /run/flow/waits.hold")
                .success()
                .then_some(())
        },
    );
    let removed = sh(&sb, "flow remove waits");
    assert!(removed.success(), "{removed:?}");
    let v = sb.wait_run("waits", 1, Duration::from_secs(10));
    assert_eq!(v["result"], "canceled", "{v:#}");
    assert_eq!(
        results(&v, "flaky"),
        ["failed (exit 1)", "canceled"],
        "{v:#}"
    );
    assert!(
        !sh(&sb, "test -e /run/flow/waits.hold").success(),
        "the run is no longer held"
    );
}

/// Runs with retries while the supervisor is killed with SIGKILL at 20 moments and
/// restarted: every run and attempt is recorded exactly once, none stays running.
#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let yaml = "
tasks:
  prep:
    run: sleep 0.2
  flaky:
    needs: [prep]
    run: |
      f=$FLOW_RUN_DIR/count
      n=$(cat $f 2>/dev/null || echo 0); n=$((n+1)); echo $n > $f
      [ $n -ge 3 ]
    retries: 3
    retry_delay: 300ms
  side:
    needs: [prep]
    run: sleep 0.3
  last:
    needs: [flaky, side]
    run: echo done
";
    let Some(sb) = Boot::new().workflow("crashy", yaml).supervisor().boot() else {
        return;
    };
    let runs = 7;
    let mut kills = 0;
    // A simple deterministic spread of kill moments (ms after the run started).
    let moments = [
        50u64, 400, 700, 150, 900, 250, 1100, 600, 30, 800, 350, 1300, 500, 1000, 200, 750, 450,
        1200, 100, 650, 950,
    ];
    for run in 1..=runs {
        sh(&sb, "systemctl start --no-block flow-crashy.service").ok();
        for _ in 0..3 {
            if kills >= 20 {
                break;
            }
            let ms = moments[kills % moments.len()];
            std::thread::sleep(Duration::from_millis(ms));
            sh(&sb, "systemctl kill -s KILL supervisor-test.service").ok();
            kills += 1;
            std::thread::sleep(Duration::from_millis(50));
            sb.start_supervisor();
        }
        sb.wait_run("crashy", run, Duration::from_secs(60));
    }
    assert_eq!(kills, 20);
    let hist = sb.history_json("crashy");
    let all = hist.as_array().expect("runs");
    assert_eq!(all.len(), runs as usize, "{hist:#}");
    for r in all {
        assert_eq!(r["result"], "succeeded", "{hist:#}");
        let id = r["run"].as_i64().expect("run");
        let v = sb.wait_run("crashy", id, Duration::from_secs(5));
        assert_eq!(results(&v, "prep"), ["succeeded"], "run {id}: {v:#}");
        assert_eq!(
            results(&v, "flaky"),
            ["failed (exit 1)", "failed (exit 1)", "succeeded"],
            "run {id}: {v:#}"
        );
        assert_eq!(results(&v, "side"), ["succeeded"], "run {id}: {v:#}");
        assert_eq!(results(&v, "last"), ["succeeded"], "run {id}: {v:#}");
    }
    sh(&sb, "systemctl stop supervisor-test.service").ok();
    // A copy of the database and its WAL, read on the host.
    let dir = tempfile::tempdir().expect("tempdir");
    for ext in ["", "-wal"] {
        let bytes = sb
            .command("cat")
            .arg(format!("{DB}{ext}"))
            .output()
            .expect("cat")
            .stdout;
        std::fs::write(dir.path().join(format!("h.db{ext}")), bytes).expect("write copy");
    }
    let (db, warning) =
        flow::store::Store::open_rw(&dir.path().join("h.db")).expect("open the copy");
    assert!(warning.is_none(), "{warning:?}");
    let check = db.integrity_check().expect("integrity_check");
    assert_eq!(check, "ok");
}

/// A trigger skipped by the overlap rule while a run went is recorded, but it is not a
/// run: `flow retry` retries the failed run before it.
#[test]
fn a_skipped_trigger_does_not_stand_in_the_way_of_flow_retry() {
    let yaml = "
tasks:
  bad:
    run: test -e /var/tmp/ok || { sleep 2; exit 1; }
";
    let Some(sb) = Boot::new().workflow("skipme", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run skipme").ok();
    let skipped = sh(&sb, "flow run skipme");
    assert!(!skipped.success(), "{skipped:?}");
    // Newest first: the skip recorded, and the run ended, failed.
    let failed = wait_until(
        "the failed run and the skip",
        Duration::from_secs(20),
        || {
            let h = sb.history("skipme");
            let result = |r: &serde_json::Value| r["result"].as_str().map(str::to_string);
            let results: Vec<_> = h.iter().filter_map(result).collect();
            let failed = h.iter().find(|r| r["result"] == "failed")?;
            (results.len() == 2 && results.contains(&"skipped".to_string()))
                .then(|| failed["run"].as_i64())
                .flatten()
        },
    );
    sh(&sb, "touch /var/tmp/ok").ok();
    let retried = sh(&sb, &format!("flow retry skipme --db {DB}"));
    assert!(
        retried.success() && retried.stdout.contains(&format!("of run {failed}")),
        "{retried:?}"
    );
    let v = sb.wait_run("skipme", 3, Duration::from_secs(20));
    assert_eq!(v["trigger"], "retry", "{v:#}");
    assert_eq!(v["result"], "succeeded", "{v:#}");
}

#[test]
fn retry_reruns_only_what_failed_and_retention_prunes() {
    let yaml = "
tasks:
  first:
    run: echo first >> /var/tmp/first
  fixme:
    needs: [first]
    run: echo fixme >> /var/tmp/fixme; test -e /var/tmp/fixed
  after:
    needs: [fixme]
    run: echo after >> /var/tmp/after
";
    // Keep at most 2 runs.
    let Some(sb) = Boot::new()
        .workflow("fix", yaml)
        .supervisor_args("--keep-runs 2")
        .boot()
    else {
        return;
    };
    sh(&sb, "systemctl start flow-fix.service").ok();
    let v = sb.wait_run("fix", 1, Duration::from_secs(20));
    assert_eq!(v["result"], "failed", "{v:#}");
    assert_eq!(results(&v, "after"), ["upstream_failed"], "{v:#}");
    // Not the last run / not failed: refused with a reason.
    let bad = sh(&sb, &format!("flow retry fix 9 --db {DB}"));
    assert!(
        !bad.success() && bad.stderr.contains("no run 9"),
        "{}",
        bad.stderr
    );
    sh(&sb, "touch /var/tmp/fixed").ok();
    // Without a run number: the last run.
    let retried = sh(&sb, &format!("flow retry fix --db {DB}")).ok();
    assert!(retried.stdout.contains("of run 1"), "{retried:?}");
    let v = sb.wait_run("fix", 2, Duration::from_secs(20));
    assert_eq!(v["trigger"], "retry", "{v:#}");
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(results(&v, "fixme"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "after"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "first"), Vec::<String>::new(), "{v:#}");
    assert_eq!(sh(&sb, "cat /var/tmp/first").ok().stdout, "first\n");
    // Once in the failed run, once in the retry: starting `after`, which requires it, did
    // not run it again.
    assert_eq!(sh(&sb, "cat /var/tmp/fixme").ok().stdout, "fixme\nfixme\n");
    let again = sh(&sb, &format!("flow retry fix 1 --db {DB}"));
    assert!(
        !again.success() && again.stderr.contains("not its last run"),
        "{}",
        again.stderr
    );
    // Two more runs: retention keeps the newest 2.
    for n in 3..=4 {
        sh(&sb, "systemctl start flow-fix.service").ok();
        sb.wait_run("fix", n, Duration::from_secs(20));
    }
    let hist = sb.history_json("fix");
    let ids: Vec<i64> = hist
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run"].as_i64())
        .collect();
    assert_eq!(ids, [4, 3], "{hist:#}");
}

/// Overlap `skip`: a trigger while a run is going (`flow run`, or the trigger unit as a
/// timer starts it) is recorded as a skipped run; a plain `systemctl start` of the run
/// unit joins the run without beginning it again (its markers stay); the running run
/// finishes untouched with its task run once, and the next run gets its own number.
#[test]
fn overlap_skip_records_skipped_runs() {
    let yaml = "
overlap: skip
tasks:
  long:
    run: echo long >> /var/tmp/long; sleep 3
  first:
    run: echo first >> /var/tmp/first
";
    let Some(sb) = Boot::new().workflow("ov", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run ov").ok();
    wait_until("the task to run", Duration::from_secs(20), || {
        sh(&sb, "test -s /var/tmp/long && test -s /var/tmp/first")
            .success()
            .then_some(())
    });
    // Three triggers while the run is going.
    let again = sh(&sb, "flow run ov");
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(again.stdout.contains("overlap: skip"), "{again:?}");
    // Decided by `flow run` once: no trigger unit decides again later (it would start a
    // run if this one had ended meanwhile).
    assert_eq!(sb.starts("flow-ov.trigger.service"), 0);
    // (Recorded before the next trigger: a trigger unit started while the last one is
    // still going joins its job.)
    sb.wait_run("ov", 2, Duration::from_secs(20));
    sh(&sb, "systemctl start flow-ov.trigger.service").ok();
    sh(&sb, "systemctl start --no-block flow-ov.service").ok();
    let first = sb.wait_run("ov", 1, Duration::from_secs(30));
    assert_eq!(first["result"], "succeeded", "{first:#}");
    assert_eq!(first["trigger"], "manual", "{first:#}");
    assert_eq!(results(&first, "long"), ["succeeded"], "{first:#}");
    assert_eq!(results(&first, "first"), ["succeeded"], "{first:#}");
    for id in [2, 3] {
        let skipped = sb.wait_run("ov", id, Duration::from_secs(20));
        assert_eq!(skipped["result"], "skipped", "{skipped:#}");
        assert_eq!(skipped["trigger"], "manual", "{skipped:#}");
        assert_eq!(skipped["tasks"], serde_json::json!([]), "{skipped:#}");
    }
    // The joined start did not begin the run again: `first` (whose success marker the
    // begin unit would have wiped) did not run twice.
    assert_eq!(sh(&sb, "cat /var/tmp/long").ok().stdout, "long\n");
    assert_eq!(sh(&sb, "cat /var/tmp/first").ok().stdout, "first\n");
    // Once it ended, a trigger starts a run again: number 4, not merged into a skip.
    sh(&sb, "systemctl start flow-ov.service").ok();
    let fourth = sb.wait_run("ov", 4, Duration::from_secs(20));
    assert_eq!(fourth["result"], "succeeded", "{fourth:#}");
    assert_eq!(fourth["trigger"], "systemctl", "{fourth:#}");
    assert_eq!(results(&fourth, "long"), ["succeeded"], "{fourth:#}");
    assert_eq!(sh(&sb, "cat /var/tmp/long").ok().stdout, "long\nlong\n");
    let runs = sb.history_json("ov");
    assert_eq!(runs.as_array().map(Vec::len), Some(4), "{runs:#}");
}

/// Overlap `queue`: a trigger while a run is going waits and starts a run when it ends;
/// a further trigger while one waits joins the waiting one.
#[test]
fn overlap_queue_starts_one_run_after_the_running_one() {
    let yaml = "
overlap: queue
tasks:
  long:
    run: date +%s.%N >> /var/tmp/starts; sleep 3
";
    let Some(sb) = Boot::new().workflow("ov", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run ov").ok();
    wait_until("the task to run", Duration::from_secs(20), || {
        sh(&sb, "test -s /var/tmp/starts").success().then_some(())
    });
    let queued = sh(&sb, "flow run ov").ok();
    assert!(queued.stdout.contains("overlap: queue"), "{queued:?}");
    assert!(
        queued.stdout.contains("Queued a run of ov.") && !queued.stdout.contains("Started"),
        "{queued:?}"
    );
    sh(&sb, "systemctl start --no-block flow-ov.trigger.service").ok();
    let first = sb.wait_run("ov", 1, Duration::from_secs(30));
    assert_eq!(first["result"], "succeeded", "{first:#}");
    let second = sb.wait_run("ov", 2, Duration::from_secs(30));
    assert_eq!(second["result"], "succeeded", "{second:#}");
    assert_eq!(second["trigger"], "manual", "{second:#}");
    assert_eq!(results(&second, "long"), ["succeeded"], "{second:#}");
    let ended = common::us(&first["ended"]).expect("first run's end");
    let began = common::us(&second["started"]).expect("second run's start");
    assert!(
        began >= ended,
        "the queued run began before the first ended: {began} < {ended}"
    );
    // No third run: the trigger that arrived while one waited joined it.
    std::thread::sleep(Duration::from_secs(4));
    let starts = sh(&sb, "cat /var/tmp/starts").ok().stdout;
    assert_eq!(starts.lines().count(), 2, "{starts}");
    let runs = sb.history_json("ov");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs:#}");
}

/// `flow cancel` while a queued run waits (`overlap: queue`) cancels both: the queued run
/// does not start once the going one is stopped, and `flow run --wait` of it says so,
/// followed through the supervisor and through systemd alike. The waiting trigger unit
/// ends cleanly, not failed.
#[test]
fn flow_cancel_drops_the_queued_run_too() {
    let yaml = "
overlap: queue
tasks:
  long:
    run: echo start >> /var/tmp/starts; sleep 60
";
    let Some(sb) = Boot::new().workflow("qc", yaml).supervisor().boot() else {
        return;
    };
    for (round, supervised) in [(1, true), (2, false)] {
        if !supervised {
            sh(&sb, "systemctl stop supervisor-test.service").ok();
        }
        sh(&sb, "flow run qc").ok();
        wait_until("the task to run", Duration::from_secs(20), || {
            let n = sh(&sb, "cat /var/tmp/starts 2>/dev/null")
                .stdout
                .lines()
                .count();
            (n == round).then_some(())
        });
        sh(
            &sb,
            "(flow run qc --wait > /tmp/queued.out 2>&1; echo $? > /tmp/queued.rc) < /dev/null > /dev/null 2>&1 &",
        )
        .ok();
        sb.wait_activating("flow-qc.trigger.service");
        let canceled = sh(&sb, "flow cancel qc").ok();
        assert!(
            canceled
                .stdout
                .contains("Canceled the run of qc, and the run queued after it."),
            "{canceled:?}"
        );
        let rc = wait_until("flow run --wait to end", Duration::from_secs(20), || {
            let rc = sh(&sb, "cat /tmp/queued.rc 2>/dev/null").stdout;
            (!rc.trim().is_empty()).then(|| rc.trim().to_string())
        });
        let out = sh(&sb, "cat /tmp/queued.out; rm /tmp/queued.rc").stdout;
        assert_eq!(rc, "1", "supervised: {supervised}\n{out}");
        assert!(
            out.contains("The queued run of qc was canceled before it began"),
            "supervised: {supervised}\n{out}"
        );
        let trigger = sh(&sb, "systemctl is-failed flow-qc.trigger.service").stdout;
        assert_eq!(trigger.trim(), "inactive", "supervised: {supervised}");
        // Time for the queued run to start, were it still queued.
        std::thread::sleep(Duration::from_secs(2));
        let lines = sh(&sb, "cat /var/tmp/starts").stdout;
        assert_eq!(lines.lines().count(), round, "supervised: {supervised}");
        assert_eq!(sb.starts("flow-qc--long.service"), round);
    }
    let runs = sb.history_json("qc");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
}

/// A workflow removed while a run of it is going, by `flow remove` and by `flow apply`
/// after its YAML file was deleted: the run stops and is recorded canceled, and no unit
/// of it stays loaded (not as `failed`, nor pinned by the supervisor).
#[test]
fn removing_a_workflow_mid_run_stops_it_and_leaves_no_unit() {
    let yaml = "
tasks:
  long:
    run: sleep 60
  next:
    needs: [long]
    run: 'true'
";
    let Some(sb) = Boot::new().workflow("gone", yaml).supervisor().boot() else {
        return;
    };
    let file = "/etc/flow/workflows/gone.yaml";
    for (run, how) in [
        (1, "flow remove gone"),
        (2, &format!("rm {file}; flow apply")),
    ] {
        if run > 1 {
            sb.write_file(std::path::Path::new(file), yaml.as_bytes())
                .expect("write workflow");
            sh(&sb, "flow apply").ok();
        }
        sh(&sb, "flow run gone").ok();
        sb.wait_activating("flow-gone--long.service");
        sh(&sb, how).ok();
        let v = sb.wait_run("gone", run, Duration::from_secs(20));
        assert_eq!(v["result"], "canceled", "{how}: {v:#}");
        // The supervisor's pin goes once it has seen the reload.
        let left = wait_until("no unit left", Duration::from_secs(10), || {
            let out = sh(&sb, "systemctl list-units --all --no-legend 'flow-gone*'").stdout;
            out.trim().is_empty().then_some(out)
        });
        assert_eq!(left.trim(), "", "{how}");
        let failed = sh(&sb, "systemctl --failed --no-legend").stdout;
        assert!(!failed.contains("flow-gone"), "{how}: {failed}");
        // Nor anything of it under /run/flow.
        let left = sh(&sb, "ls -d /run/flow/gone /run/flow/gone.* 2>/dev/null").stdout;
        assert_eq!(left.trim(), "", "{how}");
    }
}

/// Overlap `replace`: a trigger while a run is going cancels it and starts a fresh run,
/// which `flow run --wait` follows to its end.
#[test]
fn overlap_replace_cancels_the_running_run() {
    let yaml = "
overlap: replace
tasks:
  slow:
    run: |
      if [ -e /var/tmp/second ]; then echo second; else touch /var/tmp/second; sleep 60; fi
  after:
    needs: [slow]
    run: echo after >> /var/tmp/after
";
    let Some(sb) = Boot::new().workflow("ov", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run ov").ok();
    wait_until("the task to run", Duration::from_secs(20), || {
        sh(&sb, "test -e /var/tmp/second").success().then_some(())
    });
    let t0 = std::time::Instant::now();
    let replaced = sh(&sb, "flow run ov --wait");
    assert_eq!(replaced.status.code(), Some(0), "{replaced:?}");
    assert!(replaced.stdout.contains("overlap: replace"), "{replaced:?}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let first = sb.wait_run("ov", 1, Duration::from_secs(20));
    assert_eq!(first["result"], "canceled", "{first:#}");
    assert_eq!(results(&first, "after"), ["canceled"], "{first:#}");
    let second = sb.wait_run("ov", 2, Duration::from_secs(20));
    assert_eq!(second["result"], "succeeded", "{second:#}");
    assert_eq!(second["trigger"], "manual", "{second:#}");
    assert_eq!(results(&second, "slow"), ["succeeded"], "{second:#}");
    assert_eq!(sh(&sb, "cat /var/tmp/after").ok().stdout, "after\n");
}

/// What started a run is recorded: a timer, a persistent timer making up for a run missed
/// while the machine was off (`catch_up`), `flow run` (`manual`), or a plain
/// `systemctl start` of the run unit (`systemctl`).
#[test]
fn triggers_are_told_apart() {
    let Some(sb) = Boot::new().boot() else { return };
    // A daily timer last fired three days ago: activating it makes up for the missed run.
    sh(
        &sb,
        "mkdir -p /var/lib/systemd/timers && \
         touch -d '3 days ago' /var/lib/systemd/timers/stamp-flow-daily.timer",
    )
    .ok();
    for (name, yaml) in [
        (
            "tick",
            "schedule: {every: 2s}\ntasks:\n  a: {run: 'true'}\n",
        ),
        (
            "daily",
            "schedule: '@daily'\ncatch_up: true\ntasks:\n  a: {run: 'true'}\n",
        ),
    ] {
        sb.write_file(
            std::path::Path::new(&format!("/etc/flow/workflows/{name}.yaml")),
            yaml.as_bytes(),
        )
        .expect("write workflow");
    }
    sb.start_supervisor();
    sh(&sb, "flow apply").ok();
    // Finished runs of a workflow, oldest first, once there are `n`.
    let finished = |wf: &str, n: usize| -> Vec<serde_json::Value> {
        wait_until(
            &format!("{n} runs of {wf}"),
            Duration::from_secs(30),
            || {
                let out = sh(
                    &sb,
                    &format!("flow history {wf} --json --db {DB} 2>/dev/null"),
                );
                let history: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
                let runs = history["runs"].as_array()?.clone();
                let mut done: Vec<_> = runs
                    .into_iter()
                    .filter(|r| !r["result"].is_null())
                    .collect();
                done.reverse();
                (done.len() >= n).then_some(done)
            },
        )
    };
    let triggers = |runs: &[serde_json::Value]| -> Vec<String> {
        runs.iter()
            .map(|r| r["trigger"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let daily = finished("daily", 1);
    assert_eq!(triggers(&daily), ["catch_up"], "{daily:#?}");
    let tick = finished("tick", 2);
    assert!(triggers(&tick).iter().all(|t| t == "timer"), "{tick:#?}");
    sh(&sb, "flow run daily --wait").ok();
    finished("daily", 2);
    sh(&sb, "systemctl start flow-daily.service").ok();
    let daily = finished("daily", 3);
    assert_eq!(
        triggers(&daily),
        ["catch_up", "manual", "systemctl"],
        "{daily:#?}"
    );
    // `flow run` while a run of the timer goes, just after it fired: queued through the
    // trigger unit, and manual all the same (it read `timer` by the timer's last elapse).
    sb.write_file(
        std::path::Path::new("/etc/flow/workflows/busy.yaml"),
        b"schedule: {every: 3s}\noverlap: queue\ntasks:\n  a: {run: 'sleep 2'}\n",
    )
    .expect("write workflow");
    sh(&sb, "flow apply").ok();
    sb.wait_activating("flow-busy--a.service");
    let ran = sh(&sb, "flow run busy --wait --json").ok();
    let v = common::schema_checked("run-wait", &ran.stdout);
    let id = v["run"].as_i64().expect("a run number");
    let run = sb.wait_run("busy", id, Duration::from_secs(20));
    assert_eq!(run["trigger"], "manual", "{run:#}");
}

/// A database locked by another process: the supervisor keeps what it learned in memory,
/// says so, keeps running, and writes it all once the lock is gone.
#[test]
fn a_locked_database_delays_records_but_loses_none() {
    let yaml = "tasks:\n  a: {run: 'true'}\n  b: {needs: [a], run: 'true'}\n";
    let Some(sb) = Boot::new().workflow("lk", yaml).supervisor().boot() else {
        return;
    };
    // Make sure the database exists (the supervisor created it) before locking it.
    sh(&sb, "flow run lk --wait").ok();
    sb.wait_run("lk", 1, Duration::from_secs(20));
    // Another process takes the write lock for 8 s (the supervisor waits 2 s for a lock,
    // then keeps the records in memory and retries).
    sb.lock_history(8);
    sh(&sb, "flow run lk --wait").ok();
    std::thread::sleep(Duration::from_secs(3));
    let warned = sh(&sb, "journalctl -u supervisor-test --no-pager -o cat").stdout;
    assert!(
        warned.contains("kept in memory, retrying"),
        "no warning about the locked database:\n{warned}"
    );
    assert_eq!(
        sh(&sb, "systemctl is-active supervisor-test").stdout.trim(),
        "active"
    );
    assert_eq!(sb.history("lk").len(), 1, "written through the lock?");
    let second = sb.wait_run("lk", 2, Duration::from_secs(20));
    assert_eq!(second["result"], "succeeded", "{second:#}");
    assert_eq!(results(&second, "a"), ["succeeded"], "{second:#}");
    assert_eq!(results(&second, "b"), ["succeeded"], "{second:#}");
    assert_eq!(sb.history("lk").len(), 2);
}

/// A full disk: the same, until space is freed.
#[test]
fn a_full_disk_delays_records_but_loses_none() {
    let Some(sb) = Boot::new().boot() else { return };
    // Runs of many tasks: after each run the supervisor checkpoints its write-ahead log,
    // whose file is then reused, so small runs would fit in it on a full disk.
    let mut yaml = String::from("tasks:\n  a: {run: 'true'}\n  b: {needs: [a], run: 'true'}\n");
    for i in 0..150 {
        yaml.push_str(&format!("  t{i}: {{run: 'true'}}\n"));
    }
    sb.apply("full", &yaml);
    // The history on a small file system of its own, full from the supervisor's start on.
    sh(
        &sb,
        "mkdir -p /var/lib/flow && mount -t tmpfs -o size=16m tmpfs /var/lib/flow",
    )
    .ok();
    sb.start_supervisor();
    sh(
        &sb,
        "dd if=/dev/zero of=/var/lib/flow/filler bs=64k 2>/dev/null; sync; true",
    );
    for _ in 0..4 {
        sh(&sb, "flow run full --wait").ok();
    }
    std::thread::sleep(Duration::from_secs(2));
    let warned = sh(&sb, "journalctl -u supervisor-test --no-pager -o cat").stdout;
    assert!(
        warned.contains("kept in memory, retrying"),
        "no warning about the full disk:\n{warned}"
    );
    assert_eq!(
        sh(&sb, "systemctl is-active supervisor-test").stdout.trim(),
        "active"
    );
    sh(&sb, "rm /var/lib/flow/filler").ok();
    for id in 1..=4 {
        let v = sb.wait_run("full", id, Duration::from_secs(20));
        assert_eq!(v["result"], "succeeded", "{v:#}");
        assert_eq!(results(&v, "b"), ["succeeded"], "{v:#}");
    }
    assert_eq!(sb.history("full").len(), 4);
    let check = sh(
        &sb,
        &format!("flow history full --db {DB} >/dev/null; echo $?"),
    );
    assert_eq!(check.stdout.trim(), "0");
}

const NOBODY: &str = "setpriv --reuid=nobody --regid=nogroup --clear-groups";

/// The history is root's alone: an unprivileged user cannot open the database or its log
/// files, so cannot hold the lock that stopped every write when they were readable by
/// everyone. Unprivileged history commands read the public copy, and a transaction held
/// open on that copy stops neither the writes nor the next copy.
#[test]
fn an_unprivileged_user_cannot_lock_the_history() {
    let Some(sb) = Boot::new()
        .workflow("lockme", "tasks:\n  a: {run: 'true'}\n")
        .supervisor()
        .boot()
    else {
        return;
    };
    sh(&sb, "flow run lockme --wait").ok();
    sb.wait_run("lockme", 1, Duration::from_secs(20));
    let held = sh(
        &sb,
        &format!(
            "{NOBODY} sh -c '(echo \"BEGIN;\"; echo \"SELECT count(*) FROM runs;\"; sleep 1; echo \"ROLLBACK;\") | sqlite3 {DB}' 2>&1; \
             for f in {DB} {DB}-wal {DB}-shm; do {NOBODY} cat $f >/dev/null 2>&1 && echo opened $f; done; true"
        ),
    );
    assert!(
        held.stdout.contains("unable to open") && !held.stdout.contains("opened"),
        "nobody opened the history: {held:?}"
    );
    let modes = sh(&sb, &format!("stat -c '%n %a' {DB}*"));
    assert!(
        modes.stdout.contains(&format!("{DB} 600")),
        "{:?}",
        modes.stdout
    );
    // Nobody holds a transaction open on the copy for 15 s.
    let copy = "/var/lib/flow/history-public.db";
    wait_until("the public copy", Duration::from_secs(10), || {
        sh(&sb, &format!("test -s {copy}")).success().then_some(())
    });
    let locker = sh(
        &sb,
        &format!(
            "systemd-run --unit=copylocker -p User=nobody sh -c \
             '(echo \"BEGIN;\"; echo \"SELECT count(*) FROM runs;\"; sleep 15; echo \"ROLLBACK;\") | sqlite3 {copy}' && sleep 1"
        ),
    );
    assert!(locker.success(), "{locker:?}");
    sh(&sb, "flow run lockme --wait").ok();
    let second = sb.wait_run("lockme", 2, Duration::from_secs(10));
    assert_eq!(second["result"], "succeeded", "{second:#}");
    // The copy is made anew meanwhile: nobody's own history commands see the second run.
    wait_until("nobody to see run 2", Duration::from_secs(10), || {
        let out = sh(
            &sb,
            &format!("{NOBODY} flow history lockme --json --db {DB}"),
        );
        let history: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        (history["runs"].as_array()?.len() == 2).then_some(())
    });
    assert_eq!(
        sh(&sb, "systemctl is-active copylocker").stdout.trim(),
        "active",
        "the copy's reader is gone: the test proved nothing"
    );
}

/// A supervisor started while another process holds a lock on the history (SQLite then
/// fails with "locked", or "locking protocol" when a reader's locks are in the way of the
/// log's index) is ready at once, waits for the lock, and records the runs meanwhile
/// once it is gone.
#[test]
fn a_start_while_the_history_is_locked_is_ready_and_waits_for_the_lock() {
    let Some(sb) = Boot::new()
        .workflow("lk", "tasks:\n  a: {run: 'true'}\n")
        .supervisor()
        .boot()
    else {
        return;
    };
    sh(&sb, "flow run lk --wait").ok();
    sb.wait_run("lk", 1, Duration::from_secs(20));
    sh(&sb, "systemctl stop supervisor-test").ok();
    // Another process's write lock on the lock bytes of the `-shm` file (the write-ahead
    // log's index): no connection can read or write then. struct flock on x86_64 and
    // aarch64: short type, short whence, off_t start, off_t len, pid_t pid; F_WRLCK is 1.
    sb.write_file(
        std::path::Path::new("/root/shmlock.pl"),
        b"use Fcntl; open(my $f, '+<', $ARGV[0]) or die $!;\n\
          my $l = pack('s s x4 q q i x4', 1, 0, 120, 9, 0); fcntl($f, F_SETLK, $l) or die $!; sleep 10;\n",
    )
    .expect("write the locker");
    let locker = sh(
        &sb,
        &format!(
            "test -e {DB}-shm && systemd-run --unit=shmlocker perl /root/shmlock.pl {DB}-shm && sleep 1 && systemctl is-active shmlocker || (journalctl -u shmlocker -o cat; exit 1)"
        ),
    );
    assert!(locker.success(), "{locker:?}");
    let (ready, took) = sb.start_supervisor_within(8);
    assert!(
        ready && took < Duration::from_secs(5),
        "not ready within 5 s of its start ({took:?}, ready: {ready})"
    );
    sh(&sb, "systemctl start flow-lk.service").ok();
    let second = sb.wait_run("lk", 2, Duration::from_secs(30));
    assert_eq!(second["result"], "succeeded", "{second:#}");
    assert_eq!(
        sh(&sb, "systemctl is-active supervisor-test").stdout.trim(),
        "active"
    );
}

/// A start on a full disk, before the history could even be created: the supervisor is
/// ready at once (a supervisor still starting misses what timers start), and the runs
/// while the disk was full are recorded once there is room.
#[test]
fn a_start_on_a_full_disk_is_ready_at_once_and_records_the_runs_later() {
    let yaml = "tasks:\n  a: {run: 'true'}\n  b: {needs: [a], run: 'true'}\n";
    let Some(sb) = Boot::new().workflow("full", yaml).boot() else {
        return;
    };
    sh(
        &sb,
        "mkdir -p /var/lib/flow && mount -t tmpfs -o size=4m tmpfs /var/lib/flow && \
         (dd if=/dev/zero of=/var/lib/flow/filler bs=64k 2>/dev/null; sync; true)",
    );
    let (ready, took) = sb.start_supervisor_within(8);
    assert!(
        ready && took < Duration::from_secs(5),
        "not ready within 5 s of its start ({took:?}, ready: {ready})"
    );
    sh(&sb, "systemctl start flow-full.service").ok();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sh(&sb, "systemctl is-active supervisor-test").stdout.trim(),
        "active"
    );
    sh(&sb, "rm /var/lib/flow/filler").ok();
    let v = sb.wait_run("full", 1, Duration::from_secs(20));
    assert_eq!(v["result"], "succeeded", "{v:#}");
    assert_eq!(results(&v, "b"), ["succeeded"], "{v:#}");
}

/// A workflow edited and applied during a run: the run finishes with the definition it
/// started with (here: its retries), the next run uses the new one.
#[test]
fn a_run_finishes_with_the_definition_it_started_with() {
    let v1 = "
tasks:
  flaky:
    run: echo try >> /var/tmp/tries; false
    retries: 2
    retry_delay: 2s
";
    let Some(sb) = Boot::new().workflow("ed", v1).supervisor().boot() else {
        return;
    };
    sh(&sb, "systemctl start --no-block flow-ed.service").ok();
    wait_until("the first attempt", Duration::from_secs(20), || {
        sh(&sb, "test -s /var/tmp/tries").success().then_some(())
    });
    // During the first retry delay: no retries any more.
    sb.apply("ed", &v1.replace("retries: 2", "retries: 0"));
    let first = sb.wait_run("ed", 1, Duration::from_secs(30));
    assert_eq!(
        results(&first, "flaky"),
        ["failed (exit 1)", "failed (exit 1)", "failed (exit 1)"],
        "{first:#}"
    );
    sh(&sb, "flow run ed --wait");
    let second = sb.wait_run("ed", 2, Duration::from_secs(30));
    assert_eq!(results(&second, "flaky"), ["failed (exit 1)"], "{second:#}");
}

/// Attempts are recorded from the units' change signals: each task's last attempt must
/// carry exactly what systemd itself says of the unit's last activation (InvocationID,
/// start and end timestamps, result), for a success, an exit code, a timeout and a task
/// that succeeded on its retry.
#[test]
fn attempts_carry_systemds_own_invocation_ids_and_timestamps() {
    let yaml = "
tasks:
  ok:
    run: 'true'
  bad:
    run: exit 3
  slow:
    run: sleep 30
    timeout: 1s
  flaky:
    run: |
      n=$(cat /var/tmp/flaky2 2>/dev/null || echo 0); n=$((n+1)); echo $n > /var/tmp/flaky2
      [ $n -ge 2 ]
    retries: 1
    retry_delay: 1s
";
    let Some(sb) = Boot::new().workflow("props", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "systemctl start --no-block flow-props.service").ok();
    let v = sb.wait_run("props", 1, Duration::from_secs(60));
    assert_eq!(v["result"], "failed", "{v:#}");
    assert_eq!(results(&v, "ok"), ["succeeded"], "{v:#}");
    assert_eq!(results(&v, "bad"), ["failed (exit 3)"], "{v:#}");
    assert_eq!(results(&v, "slow"), ["timed_out"], "{v:#}");
    assert_eq!(
        results(&v, "flaky"),
        ["failed (exit 1)", "succeeded"],
        "{v:#}"
    );
    let sd = &sb.sd;
    for task in ["ok", "bad", "slow", "flaky"] {
        let unit = format!("flow-props--{task}.service");
        let st = sd.unit_state(&unit).expect("unit state");
        let a = attempts(&v, task);
        let last = a.last().expect("an attempt");
        assert_eq!(
            last["invocation_id"].as_str(),
            st.invocation_id.as_deref(),
            "{task}: {v:#}"
        );
        // To the millisecond, as `--json` tells times.
        let ms = |us: Option<u64>| us.map(|us| (us / 1000 * 1000) as i64);
        assert_eq!(
            common::us(&last["started"]),
            ms(st.inactive_exit_timestamp),
            "{task}: {v:#}"
        );
        assert_eq!(
            common::us(&last["ended"]),
            ms(st.inactive_enter_timestamp),
            "{task}: {v:#}"
        );
    }
    let flaky = attempts(&v, "flaky");
    assert_ne!(
        flaky[0]["invocation_id"], flaky[1]["invocation_id"],
        "{v:#}"
    );
    assert!(
        common::us(&flaky[0]["ended"]) <= common::us(&flaky[1]["started"]),
        "{v:#}"
    );
}

/// The history can be read by any user the database is readable by (here `nobody`), and
/// the readers say when the supervisor is not running.
#[test]
fn history_is_readable_unprivileged_and_says_when_the_supervisor_is_down() {
    let Some(sb) = Boot::new()
        .workflow("pub", "tasks:\n  a: {run: 'true'}\n")
        .supervisor()
        .boot()
    else {
        return;
    };
    sh(&sb, "flow run pub --wait").ok();
    sb.wait_run("pub", 1, Duration::from_secs(20));
    // Soon after a run, history.db alone has it (a backup of that one file): the
    // supervisor copies its write-ahead log into it once runs are quiet.
    wait_until(
        "the run in history.db alone",
        Duration::from_secs(10),
        || {
            let out = sh(
                &sb,
                &format!(
                    "rm -rf /var/tmp/alone && mkdir /var/tmp/alone && cp {DB} /var/tmp/alone/ && \
                 flow history pub --json --db /var/tmp/alone/history.db 2>/dev/null"
                ),
            );
            let history: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            (history["runs"].as_array()?.len() == 1).then_some(())
        },
    );
    let nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups";
    let out = sh(&sb, &format!("{nobody} flow history pub --json --db {DB}"));
    assert!(out.success(), "{out:?}");
    let runs = common::schema_checked("history", &out.stdout);
    assert_eq!(runs["runs"][0]["result"], "succeeded", "{runs:#}");
    assert!(!out.stderr.contains("not running"), "{out:?}");
    let status = sh(&sb, &format!("{nobody} flow status pub 1 --db {DB}"));
    assert!(status.success(), "{status:?}");
    // The last run as systemd tells it needs the journal, which is not nobody's to read
    // here (a volatile journal): that is said, not shown as a workflow that never ran.
    let live = sh(&sb, &format!("{nobody} flow status pub"));
    assert!(!live.success(), "{live:?}");
    assert!(live.stderr.contains("systemd-journal group"), "{live:?}");
    // `flow list` has the last result from the history, which everyone may read.
    let list = sh(&sb, &format!("{nobody} flow list"));
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("pub ") && l.trim_end().ends_with("succeeded")),
        "{list:?}"
    );
    sh(&sb, "systemctl stop supervisor-test").ok();
    let down = sh(&sb, &format!("{nobody} flow history pub --db {DB}"));
    assert!(down.success(), "{down:?}");
    assert!(
        down.stderr.contains("the supervisor is not running"),
        "{down:?}"
    );
}

/// A user's own workflows get a supervisor of their own: `flow apply --user` starts the
/// user unit the package installs, which retries failed tasks and keeps the history in
/// the user's home; stopped during a run, it rebuilds that run from the user manager's
/// journal messages (named otherwise than the system manager's) and retries on.
#[test]
fn a_users_own_supervisor_retries_and_keeps_history() {
    let Some(sb) = Boot::new().boot() else {
        return;
    };
    let unit = include_str!("../../units/user/flow-supervisor.service")
        .replace("/usr/bin/flow", "/usr/local/bin/flow");
    sb.write_file(
        std::path::Path::new("/etc/systemd/user/flow-supervisor.service"),
        unit.as_bytes(),
    )
    .expect("write the user unit");
    let yaml = "
tasks:
  flaky:
    run: |
      n=$(cat /var/tmp/flaky 2>/dev/null || echo 0); n=$((n+1)); echo $n > /var/tmp/flaky
      [ $n -ge 3 ]
    retries: 2
    retry_delay: 1s
";
    sb.write_file(
        std::path::Path::new("/root/.config/flow/workflows/mine.yaml"),
        yaml.as_bytes(),
    )
    .expect("write workflow");
    sh(&sb, "systemctl start user@0.service").ok();
    let nothing = sh(&sb, "cd /root; flow history --user");
    assert_eq!(nothing.status.code(), Some(3), "{nothing:?}");
    assert!(
        nothing
            .stderr
            .contains("is it running? (`systemctl --user status flow-supervisor`)"),
        "{nothing:?}"
    );
    let user = |cmd: &str| sh(&sb, &format!("{AS_ROOTS_OWN_MANAGER} {cmd}"));
    let applied = user("flow apply --user").ok();
    assert!(
        applied.stdout.contains("Started your supervisor"),
        "{applied:?}"
    );
    let ran = user("flow run mine --user --wait").ok();
    assert!(ran.stdout.contains("Run 1 succeeded."), "{ran:?}");
    assert!(!ran.stderr.contains("note:"), "{ran:?}");
    let status = |run: i64| -> serde_json::Value {
        let out = user(&format!("flow status mine {run} --user --json"));
        common::schema_checked("status", &out.stdout)
    };
    let first = status(1);
    assert_eq!(
        results(&first, "flaky"),
        ["failed (exit 1)", "failed (exit 1)", "succeeded"],
        "{first:#}"
    );
    assert!(
        sh(&sb, "test -s /root/.local/state/flow/history.db").success(),
        "no history in the user's home"
    );
    assert!(
        !sh(&sb, "test -e /var/lib/flow/history.db").success(),
        "the system's history was written"
    );
    let mode = sh(&sb, "stat -c %a /root/.local/state/flow/history.db")
        .ok()
        .stdout;
    assert_eq!(
        mode.trim(),
        "600",
        "the user's history is readable by others"
    );

    // Down during a run: the run goes on without retries, and the supervisor, started
    // again, reads it back and retries.
    user("systemctl --user stop flow-supervisor.service; rm /var/tmp/flaky").ok();
    let alone = user("flow run mine --user --wait");
    assert_eq!(alone.status.code(), Some(1), "{alone:?}");
    assert!(
        alone
            .stderr
            .contains("start it with `systemctl --user start flow-supervisor`"),
        "{alone:?}"
    );
    user("systemctl --user start flow-supervisor.service").ok();
    let second = wait_until("run 2 to end", Duration::from_secs(30), || {
        let v = status(2);
        v["result"].as_str().is_some().then_some(v)
    });
    assert_eq!(second["result"], "succeeded", "{second:#}");
    assert_eq!(
        results(&second, "flaky"),
        ["failed (exit 1)", "failed (exit 1)", "succeeded"],
        "{second:#}"
    );
    let history = user("flow history --user --json").ok().stdout;
    let runs = common::schema_checked("history", &history);
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs:#}");
}

/// Between a failed attempt and its retry, systemd's part of the run is over, but the run
/// is not: `flow status` shows the task waiting to be tried again and what needs it
/// pending (not skipped), and `flow list` shows the run going.
#[test]
fn status_shows_a_task_waiting_to_be_tried_again() {
    let yaml = "
tasks:
  flaky:
    run: test -e /var/tmp/ok || { touch /var/tmp/ok; exit 3; }
    retries: 1
    retry_delay: 5s
  down:
    needs: [flaky]
    run: 'true'
";
    let Some(sb) = Boot::new().workflow("later", yaml).supervisor().boot() else {
        return;
    };
    sh(&sb, "flow run later").ok();
    let status = || -> serde_json::Value {
        let out = sh(&sb, "flow status later --json").ok().stdout;
        common::schema_checked("status", &out)
    };
    let v = wait_until(
        "flaky to wait for its retry",
        Duration::from_secs(20),
        || {
            let v = status();
            (v["tasks"][0]["state"] == "retry_pending").then_some(v)
        },
    );
    assert_eq!(v["tasks"][0]["exit_code"], 3, "{v:#}");
    assert_eq!(v["tasks"][1]["state"], "pending", "{v:#}");
    // The run held for the retry is going, and the history says which it is.
    assert_eq!(v["run"], 1, "{v:#}");
    assert_eq!(v["running"], true, "{v:#}");
    assert!(v["result"].is_null(), "{v:#}");
    let text = sh(&sb, "flow status later").ok().stdout;
    assert!(
        text.contains("failed (exit 3), to be tried again"),
        "{text}"
    );
    let list = sh(&sb, "flow list --json").ok().stdout;
    common::schema_checked("list", &list);
    assert!(list.contains(r#""running":true"#), "{list}");
    let run = sb.wait_run("later", 1, Duration::from_secs(30));
    assert_eq!(run["result"], "succeeded", "{run:#}");
    let v = wait_until(
        "the run's end in flow status",
        Duration::from_secs(10),
        || {
            let v = status();
            (v["tasks"][1]["state"] == "succeeded").then_some(v)
        },
    );
    assert_eq!(v["tasks"][0]["state"], "succeeded", "{v:#}");
}

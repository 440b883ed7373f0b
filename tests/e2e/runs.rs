//! End-to-end: how runs behave on a real systemd (in a sandbox): dependency order,
//! parallelism, failures and the `when:` conditions, timeouts, re-runs, memory limits and
//! `max_parallel`. Each test proves its point from systemd's timestamps or from what the
//! tasks themselves wrote, never from the unit files.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::harness::{self, Boot, FlowBox, parse_spans, task_unit};
use std::time::Duration;

/// A task is not started before each task it needs has ended.
fn assert_after(fb: &FlowBox, wf: &str, task: &str, needs: &[&str]) {
    let (start, _) = fb.span(wf, task);
    for up in needs {
        let (_, up_end) = fb.span(wf, up);
        assert!(
            start >= up_end,
            "{task} started {}µs before {up} ended",
            up_end - start
        );
    }
}

#[test]
fn diamond_and_chain_run_in_dependency_order() {
    let Some(fb) = Boot::new().alone().boot() else {
        return;
    };
    fb.apply(
        "diamond",
        "tasks:
  a: {run: sleep 0.2}
  b: {needs: [a], run: sleep 0.3}
  c: {needs: [a], run: sleep 0.1}
  d: {needs: [b, c], run: 'true'}
",
    );
    let mut chain = String::from("tasks:\n");
    let names: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    for (i, n) in names.iter().enumerate() {
        chain.push_str(&format!("  {n}:\n    run: 'true'\n"));
        if i > 0 {
            chain.push_str(&format!("    needs: [{}]\n", names[i - 1]));
        }
    }
    fb.apply("chain", &chain);
    fb.pin("diamond", &["a", "b", "c", "d"]);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    fb.pin("chain", &refs);

    let r = fb.run_wait("diamond");
    assert!(r.succeeded && r.exit == Some(0), "{r:?}");
    assert_after(&fb, "diamond", "b", &["a"]);
    assert_after(&fb, "diamond", "c", &["a"]);
    assert_after(&fb, "diamond", "d", &["b", "c"]);
    // b and c ran side by side: c started before b ended.
    assert!(fb.span("diamond", "c").0 < fb.span("diamond", "b").1);

    let r = fb.run_wait("chain");
    assert!(r.succeeded, "{r:?}");
    assert_eq!(
        r.tasks.iter().filter(|t| t.state == "succeeded").count(),
        20
    );
    for w in refs.windows(2) {
        assert_after(&fb, "chain", w[1], &[w[0]]);
    }
}

#[test]
fn independent_tasks_run_in_parallel() {
    let Some(fb) = Boot::new().alone().boot() else {
        return;
    };
    fb.apply(
        "par",
        "tasks:
  one: {run: sleep 1}
  two: {run: sleep 1}
",
    );
    fb.pin("par", &["one", "two"]);
    let r = fb.run_wait("par");
    assert!(r.succeeded, "{r:?}");
    let (s1, e1) = fb.span("par", "one");
    let (s2, e2) = fb.span("par", "two");
    let first = s1.min(s2);
    let last = e1.max(e2);
    assert!(
        last - first < 1_800_000,
        "two 1 s tasks took {} ms from the first start to the last end",
        (last - first) / 1000
    );
    assert!(
        r.wall.as_millis() < 2500,
        "flow run --wait took {:?} for two parallel 1 s tasks",
        r.wall
    );
}

#[test]
fn failure_skips_downstream_and_runs_always_and_on_failure() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.sh("mkdir -p /srv/marks && chmod 777 /srv/marks");
    fb.apply(
        "fails",
        "tasks:
  first: {run: touch /srv/marks/first}
  bad: {needs: [first], run: 'echo failing; exit 3'}
  after-bad: {needs: [bad], run: touch /srv/marks/after-bad}
  after-after: {needs: [after-bad], run: touch /srv/marks/after-after}
  cleanup: {needs: [bad], when: always, run: touch /srv/marks/cleanup}
  alert: {needs: [bad, first], when: on_failure, run: touch /srv/marks/alert}
",
    );
    fb.apply(
        "fine",
        "tasks:
  ok: {run: 'true'}
  alert: {needs: [ok], when: on_failure, run: touch /srv/marks/fine-alert}
  cleanup: {needs: [ok], when: always, run: touch /srv/marks/fine-cleanup}
",
    );
    fb.pin("fails", &["bad", "cleanup", "alert"]);
    let r = fb.run_wait("fails");
    assert_eq!(r.exit, Some(1), "a failed run exits 1: {r:?}");
    assert!(!r.succeeded);
    assert_eq!(r.state("first"), "succeeded");
    assert_eq!(r.state("bad"), "failed");
    assert_eq!(r.state("after-bad"), "upstream_failed");
    assert_eq!(r.state("after-after"), "upstream_failed");
    assert_eq!(r.state("cleanup"), "succeeded");
    assert_eq!(r.state("alert"), "succeeded");
    assert!(fb.exists("/srv/marks/first"));
    assert!(
        !fb.exists("/srv/marks/after-bad"),
        "downstream of a failure ran"
    );
    assert!(
        !fb.exists("/srv/marks/after-after"),
        "downstream of a failure ran"
    );
    assert!(fb.exists("/srv/marks/cleanup"));
    assert!(fb.exists("/srv/marks/alert"));
    assert_after(&fb, "fails", "cleanup", &["bad"]);
    assert_after(&fb, "fails", "alert", &["bad"]);
    assert_eq!(fb.task_state("fails", "bad").exec_main_status, 3);

    let r = fb.run_wait("fine");
    assert!(r.succeeded && r.exit == Some(0), "{r:?}");
    assert_eq!(r.state("alert"), "skipped");
    assert_eq!(r.state("cleanup"), "succeeded");
    assert!(
        !fb.exists("/srv/marks/fine-alert"),
        "on_failure ran although all succeeded"
    );
    assert!(fb.exists("/srv/marks/fine-cleanup"));

    // `flow status` reads the same outcome back from systemd after the run, and exits 1
    // as `flow status NAME RUN` does for a failed run.
    let status = fb.flow(&["status", "fails", "--json"]).code(1).stdout;
    let v = common::schema_checked("status", &status);
    let state = |t: &str| {
        v["tasks"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["task"] == t))
            .map(|x| x["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(state("first"), "succeeded", "{status}");
    assert_eq!(state("bad"), "failed", "{status}");
    assert_eq!(state("after-bad"), "upstream_failed", "{status}");
    assert_eq!(state("alert"), "succeeded", "{status}");
}

#[test]
fn a_task_over_its_timeout_is_killed_and_recorded() {
    let Some(fb) = Boot::new().alone().boot() else {
        return;
    };
    fb.apply(
        "slow",
        "tasks:
  slow: {run: 'sleep 30; touch /srv/slow-finished', timeout: 1s}
  next: {needs: [slow], run: touch /srv/next-ran}
",
    );
    fb.pin("slow", &["slow", "next"]);
    let r = fb.run_wait("slow");
    assert_eq!(r.state("slow"), "timed_out", "{r:?}");
    assert_eq!(r.state("next"), "upstream_failed", "{r:?}");
    assert_eq!(r.exit, Some(1));
    let (start, end) = fb.span("slow", "slow");
    let ran = (end - start) / 1000;
    assert!(
        (900..5000).contains(&ran),
        "a 1 s timeout stopped the task after {ran} ms"
    );
    assert_eq!(
        fb.task_state("slow", "slow").result.as_deref(),
        Some("timeout")
    );
    assert!(!fb.exists("/srv/slow-finished"));
    assert!(!fb.exists("/srv/next-ran"));
}

#[test]
fn a_second_run_reruns_every_task_by_flow_run_and_by_systemctl() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "again",
        "tasks:
  a: {run: 'echo a >> /srv/again.log'}
  b: {needs: [a], run: 'echo b >> /srv/again.log'}
  c: {needs: [b], run: 'echo c >> /srv/again.log', when: always}
",
    );
    let first = fb.run_wait("again");
    assert!(first.succeeded, "{first:?}");
    // Nothing of the first run is left active (but the workflow's slice, which like every
    // slice stays once started).
    let active =
        fb.sh("systemctl list-units --no-legend --state=active,activating 'flow-again*' || true");
    let active: Vec<&str> = active
        .lines()
        .filter(|l| !l.trim_start().starts_with("flow-again.slice "))
        .collect();
    assert!(active.is_empty(), "left active after a run:\n{active:?}");
    // A plain `systemctl start` of the run unit is a full run too, and blocks until done.
    fb.sh("systemctl start flow-again.service");
    let second = fb.run_wait("again");
    assert!(second.succeeded, "{second:?}");
    assert_eq!(fb.read_string("/srv/again.log"), "a\nb\nc\n".repeat(3));
    for t in ["a", "b", "c"] {
        assert_ne!(
            first.invocation(t),
            second.invocation(t),
            "task {t} did not run again"
        );
    }
}

/// `systemctl start` of the run unit while a run is going changes nothing, as for any
/// active unit: no task that finished (succeeded or failed) runs again, the run's state
/// directory is not emptied, and the run ends once.
/// Ctrl-C at a terminal stops following a run, not the run (systemd runs it): `flow run
/// --wait` says so, and how to stop it.
#[test]
fn ctrl_c_stops_following_not_the_run() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "bg",
        "tasks:\n  slow: {run: 'touch /srv/began; sleep 6; touch /srv/ended'}\n",
    );
    // At a terminal (`script` gives it one), as a person runs it.
    fb.sh("script -qfec 'flow run bg --wait' /dev/null > /tmp/wait.out 2>&1 < /dev/null &");
    harness::wait_until("the task to begin", Duration::from_secs(20), || {
        fb.exists("/srv/began").then_some(())
    });
    fb.sh("pkill -INT -f '^flow run bg --wait'");
    let out = harness::wait_until("flow run to stop", Duration::from_secs(10), || {
        let out = fb.read_string("/tmp/wait.out");
        out.contains("Stopped following").then_some(out)
    });
    assert!(
        out.contains("the run goes on (`flow status bg` shows it, `flow cancel bg` stops it)"),
        "{out}"
    );
    assert!(!fb.exists("/srv/ended"), "{out}");
    harness::wait_until(
        "the run to go on to its end",
        Duration::from_secs(20),
        || fb.exists("/srv/ended").then_some(()),
    );
}

#[test]
fn a_start_during_a_run_changes_nothing() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "busy",
        "tasks:
  quick: {run: 'echo quick >> /srv/busy.log; echo kept > $FLOW_RUN_DIR/note'}
  bad: {run: 'echo bad >> /srv/busy.log; exit 3'}
  slow: {run: 'touch /srv/slow-began; sleep 2; cat $FLOW_RUN_DIR/note >> /srv/busy.log'}
",
    );
    fb.sh("systemctl start --no-block flow-busy.service");
    harness::wait_until("the slow task to begin", Duration::from_secs(20), || {
        fb.exists("/srv/slow-began").then_some(())
    });
    // quick and bad have ended by now; start the run unit again, twice.
    std::thread::sleep(Duration::from_millis(300));
    fb.sh("systemctl start --no-block flow-busy.service");
    fb.sh("systemctl start flow-busy.service");
    let mut lines: Vec<String> = fb
        .read_string("/srv/busy.log")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, ["bad", "kept", "quick"]);
}

/// `FLOW_RUN_DIR` starts each run empty (files and directories a run left are gone, also
/// ones a task made read-only) and keeps what the last run left once it ended.
#[test]
fn each_run_starts_with_an_empty_run_directory() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "pass",
        "tasks:
  write:
    run: |
      ls -A \"$FLOW_RUN_DIR\" >> /srv/seen.log
      echo --- >> /srv/seen.log
      mkdir -p \"$FLOW_RUN_DIR/sub/deeper\"
      echo data > \"$FLOW_RUN_DIR/sub/deeper/file\"
      echo note > \"$FLOW_RUN_DIR/note\"
      chmod 0500 \"$FLOW_RUN_DIR/sub\"
  read: {needs: [write], run: 'cat \"$FLOW_RUN_DIR/note\" >> /srv/seen.log'}
",
    );
    for i in 0..3 {
        let r = fb.run_wait("pass");
        assert!(r.succeeded, "run {i}: {r:?}");
    }
    assert_eq!(
        fb.read_string("/srv/seen.log"),
        "---\nnote\n".repeat(3),
        "a run saw what an earlier one left"
    );
    assert!(
        fb.exists("/run/flow/pass/sub/deeper/file"),
        "the last run's files are gone"
    );
}

/// Runs asked for in quick succession all run: systemd's default start rate limit (five
/// starts in 10 s) does not apply to flow's units.
#[test]
fn eight_runs_in_a_row_all_run() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "often",
        "tasks:\n  a: {run: 'echo a >> /srv/often.log'}\n  b: {needs: [a], run: 'true'}\n",
    );
    // Kept loaded, as the supervisor keeps them: an unloaded unit forgets its start count.
    fb.pin("often", &["a", "b"]);
    for i in 0..8 {
        let r = fb.run_wait("often");
        assert!(r.succeeded, "run {i}: {r:?}");
    }
    assert_eq!(fb.read_string("/srv/often.log"), "a\n".repeat(8));
}

#[test]
fn memory_max_kills_a_task_that_allocates_past_it() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "mem",
        "tasks:
  hog:
    run: dd if=/dev/zero of=/dev/null bs=256M count=1
    memory_max: 32M
  small:
    run: dd if=/dev/zero of=/dev/null bs=1M count=1
    memory_max: 32M
",
    );
    let r = fb.run_wait("mem");
    assert_eq!(r.state("small"), "succeeded", "{r:?}");
    assert_eq!(r.state("hog"), "out_of_memory", "{r:?}");
    assert_eq!(r.exit, Some(1));
    let status = fb.flow(&["status", "mem"]).code(1).stdout;
    assert!(status.contains("out of memory"), "{status}");
}

/// A workflow's own `memory_max` limits its tasks together, in the workflow's slice (a
/// name with `-`, which a slice's name must escape to stay one level deep).
#[test]
fn a_workflows_memory_max_limits_all_its_tasks_together() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "mem-all",
        "memory_max: 48M
tasks:
  where: {run: 'cat /proc/self/cgroup'}
  small: {run: dd if=/dev/zero of=/dev/null bs=1M count=1}
  hog: {run: dd if=/dev/zero of=/dev/null bs=256M count=1}
",
    );
    let r = fb.run_wait("mem-all");
    assert_eq!(r.state("where"), "succeeded", "{r:?}");
    assert_eq!(r.state("small"), "succeeded", "{r:?}");
    assert_eq!(r.state("hog"), "out_of_memory", "{r:?}");
    let logs = fb.flow(&["logs", "mem-all", "--task", "where"]).ok().stdout;
    assert!(
        logs.contains(r"/flow.slice/flow-mem\x2dall.slice/flow-mem-all--where.service"),
        "not in the workflow's slice: {logs}"
    );
    let slice = fb.sh(r"systemctl show -p MemoryMax,LoadState 'flow-mem\x2dall.slice'");
    assert!(slice.contains("MemoryMax=50331648"), "{slice}");
    assert!(slice.contains("LoadState=loaded"), "{slice}");
    // Removed with its workflow: stopped, no file. (systemd loads any slice asked about,
    // file or not: it has its defaults then.)
    fb.flow(&["remove", "mem-all"]).ok();
    let gone = fb.sh(
        r"systemctl show -p FragmentPath,ActiveState,MemoryMax 'flow-mem\x2dall.slice'; ls /etc/systemd/system",
    );
    assert!(gone.contains("FragmentPath=\n"), "{gone}");
    assert!(gone.contains("ActiveState=inactive"), "{gone}");
    assert!(gone.contains("MemoryMax=infinity"), "{gone}");
    assert!(!gone.contains("mem"), "{gone}");
}

#[test]
fn max_parallel_caps_the_tasks_running_at_once() {
    let Some(fb) = Boot::new().alone().boot() else {
        return;
    };
    let names: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    let mut yaml = String::from("max_parallel: 2\ntasks:\n");
    for n in &names {
        yaml.push_str(&format!(
            "  {n}: {{run: 'echo {n} start $(date +%s.%N) >> /srv/par.log; sleep 0.5; echo {n} end $(date +%s.%N) >> /srv/par.log'}}\n"
        ));
    }
    fb.apply("capped", &yaml);
    let r = fb.run_wait("capped");
    assert!(r.succeeded, "{r:?}");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let spans = parse_spans(&fb.read_string("/srv/par.log"), &refs);
    // At each task's start, count the tasks running.
    let mut most = 0;
    for (s, _) in &spans {
        let running = spans.iter().filter(|(a, b)| a <= s && s < b).count();
        most = most.max(running);
    }
    assert!(
        most <= 2,
        "{most} tasks ran at once with max_parallel: 2: {spans:?}"
    );
    assert_eq!(
        most, 2,
        "never two at once: the slots are not shared? {spans:?}"
    );
    let first = spans.iter().map(|s| s.0).fold(f64::MAX, f64::min);
    let last = spans.iter().map(|s| s.1).fold(0.0, f64::max);
    let took = last - first;
    assert!(
        (1.95..3.0).contains(&took),
        "8 tasks of 0.5 s, 2 at a time, took {took:.2} s (expected about 2 s)"
    );
    let _ = task_unit;
}

/// `max_parallel`'s slots are the workflow's tasks' alone: a local user who runs none of
/// them cannot make the slot file first, open it, or take a slot with the command line the
/// units use (with the System V semaphores of before, two such commands froze the workflow,
/// and anyone could lift or zero the limit); tasks running as another user (`user:`) still
/// take and give back their slots, and the limit holds.
#[test]
fn max_parallel_slots_cannot_be_touched_by_other_users() {
    let Some(fb) = Boot::new().alone().boot() else {
        return;
    };
    let names: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
    let mut yaml = String::from(
        "max_parallel: 2
tasks:
",
    );
    for (i, n) in names.iter().enumerate() {
        // Half of them as another user: the slot file is opened for them.
        let user = if i % 2 == 0 { ", user: daemon" } else { "" };
        yaml.push_str(&format!(
            "  {n}: {{run: 'echo {n} start $(date +%s.%N) >> /srv/par.log; sleep 0.5; echo {n} end $(date +%s.%N) >> /srv/par.log'{user}}}\n"
        ));
    }
    fb.apply("guarded", &yaml);
    fb.sh("touch /srv/par.log && chmod 666 /srv/par.log");
    let nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups";
    // Before the first run: the slot file does not exist yet, and nobody may make it.
    let precreate = fb.sh(&format!(
        "mkdir -p /run/flow; {nobody} sh -c ': > /run/flow/guarded.slots' 2>&1; echo rc=$?"
    ));
    assert!(!precreate.contains("rc=0"), "{precreate}");
    // Nobody runs the gate the way the units do, twice, in the background, to hold both
    // slots: it refuses, for its standard input is not the workflow's slot file.
    fb.sh(&format!(
        "for i in 1 2; do {nobody} sh -c 'flow slot --max 2 --key /run/flow/guarded -- sleep 60 </dev/null >>/tmp/holder.log 2>&1 &'; done; sleep 1"
    ));
    let held = fb.sh("cat /tmp/holder.log");
    assert!(
        held.contains("slot file"),
        "the gate ran for nobody: {held}"
    );
    let r = fb.sh("timeout 30 flow run guarded --wait >/dev/null 2>&1; echo rc=$?");
    assert!(r.contains("rc=0"), "the run did not succeed in 30 s: {r}");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let spans = parse_spans(&fb.read_string("/srv/par.log"), &refs);
    let mut most = 0;
    for (s, _) in &spans {
        most = most.max(spans.iter().filter(|(a, b)| a <= s && s < b).count());
    }
    assert_eq!(most, 2, "tasks at once with max_parallel: 2: {spans:?}");
    // After a run: the file exists, root's alone.
    let after = fb.sh(&format!(
        "stat -c '%U %a' /run/flow/guarded.slots; {nobody} cat /run/flow/guarded.slots 2>&1; echo rc=$?"
    ));
    assert!(after.starts_with("root 600\n"), "{after}");
    assert!(after.contains("Permission denied"), "{after}");
}

/// A task waits for a slot for a bounded time, then fails saying why (here the bound is
/// shortened with FLOW_SLOT_WAIT; by default it is a day). The two tasks are alike, so
/// whichever gets the slot first, the other one gives up.
#[test]
fn a_task_waiting_for_a_slot_gives_up_after_its_bound() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "stuck",
        "max_parallel: 1
tasks:
  one: {run: 'sleep 20', env: {FLOW_SLOT_WAIT: 2s}}
  two: {run: 'sleep 20', env: {FLOW_SLOT_WAIT: 2s}}
",
    );
    fb.pin("stuck", &["one", "two"]);
    fb.flow(&["run", "stuck"]).ok();
    let (unit, ended) = harness::wait_until("a task to give up", Duration::from_secs(15), || {
        ["one", "two"].into_iter().find_map(|t| {
            let unit = task_unit("stuck", t);
            let out = fb.sh(&format!("systemctl show -p Result,ActiveState {unit}"));
            out.contains("ActiveState=failed").then_some((unit, out))
        })
    });
    assert!(ended.contains("Result=exit-code"), "{ended}");
    let logs = fb.sh(&format!("journalctl -u {unit} --no-pager -o cat"));
    assert!(
        logs.contains("no slot of 1 came free in 2s"),
        "no reason in the task's log:\n{logs}"
    );
    fb.flow(&["cancel", "stuck"]);
}

/// Retries and a run's deadline are the supervisor's: `flow run` says so when none runs,
/// and the run then gets no retry. With the supervisor up, no note, and the retries happen.
#[test]
fn flow_run_says_when_no_supervisor_will_retry() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "flaky",
        "timeout: 10m
tasks:
  flaky: {run: 'echo try >> /srv/tries; exit 1', retries: 2, retry_delay: 1s}
",
    );
    let r = fb.run_wait("flaky");
    assert_eq!(r.state("flaky"), "failed", "{r:?}");
    assert!(
        r.stderr.contains(
            "note: no supervisor is running, so this run gets no retries of flaky (2) and no deadline (10min)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("systemctl start flow-supervisor"),
        "{}",
        r.stderr
    );
    assert_eq!(fb.read_string("/srv/tries").lines().count(), 1);

    fb.sh("systemd-run --unit=flow-supervisor -p Type=notify /usr/local/bin/flow supervise");
    let r = fb.run_wait("flaky");
    assert!(!r.stderr.contains("note:"), "{}", r.stderr);
    assert_eq!(fb.read_string("/srv/tries").lines().count(), 4);
}

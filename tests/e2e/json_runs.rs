//! The JSON contract of the run and history commands, on real runs in a sandboxed systemd
//! with a supervisor: `run` (with and without `--wait`), `status` (with and without RUN, the
//! same object), `logs` (with and without RUN, the same lines), `history`, `stats`,
//! `retry`, `cancel`, `pause`, `resume` and `list` each print what their schema in
//! docs/schema/ says, and say the same things of the same run.

use std::time::Duration;

use crate::common::{schema_checked, us};
use crate::harness::{Boot, FlowBox, WORKFLOWS, wait_until};
use serde_json::Value;

const RETRIED: &str = "
schedule: {every: 1h}
tasks:
  hello: {run: 'echo hello-line'}
  flaky:
    needs: [hello]
    run: 'test -e /var/tmp/ok || { touch /var/tmp/ok; echo failing-line; exit 3; }'
    retries: 1
    retry_delay: 1s
  last: {needs: [flaky], run: 'echo last-line'}
";

const FAILS: &str = "
tasks:
  a: {run: 'test -e /var/tmp/fixed || exit 2'}
  b: {needs: [a], run: 'true'}
";

const LONG: &str = "
tasks:
  s: {run: 'sleep 60'}
";

/// `flow ARGS` inside; its stdout checked against `schema`, and its exit code.
fn json(fb: &FlowBox, schema: &str, args: &[&str]) -> (Value, Option<i32>) {
    let out = fb.flow(args);
    (schema_checked(schema, &out.stdout), out.status.code())
}

/// Each task's name and state, in order.
fn states(v: &Value) -> Vec<(String, String)> {
    v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["task"].as_str().unwrap_or_default().to_string(),
                t["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Each JSON line `flow logs` printed, checked against logs.json.
fn log_lines(fb: &FlowBox, args: &[&str]) -> Vec<Value> {
    fb.flow(args)
        .ok()
        .stdout
        .lines()
        .map(|l| schema_checked("logs", l))
        .collect()
}

/// The run `wf` numbered `run`, once it ended, from `flow status NAME RUN --json`.
fn ended(fb: &FlowBox, wf: &str, run: i64) -> Value {
    let out = wait_until(
        &format!("run {run} of {wf} to end"),
        Duration::from_secs(30),
        || {
            let out = fb.flow(&["status", wf, &run.to_string(), "--json"]);
            let v: Value = serde_json::from_str(&out.stdout).ok()?;
            v["result"].is_string().then_some(out.stdout)
        },
    );
    schema_checked("status", &out)
}

#[test]
fn every_run_and_history_command_prints_its_schemas_object() {
    let Some(fb) = Boot::new().boot() else { return };
    for (name, yaml) in [("retried", RETRIED), ("fails", FAILS), ("long", LONG)] {
        fb.write(&format!("{WORKFLOWS}/{name}.yaml"), yaml);
    }
    fb.flow(&["apply"]).ok();
    fb.sh("systemd-run --unit=supervisor-test -p Type=notify /usr/local/bin/flow supervise");

    // A run followed to its end: a failed attempt, its retry, and what followed.
    let (waited, code) = json(&fb, "run-wait", &["run", "retried", "--wait", "--json"]);
    assert_eq!(code, Some(0), "{waited:#}");
    assert_eq!(waited["result"], "succeeded", "{waited:#}");
    assert_eq!(waited["trigger"], "manual", "{waited:#}");
    assert_eq!(waited["followed_to_end"], true, "{waited:#}");
    let run = waited["run"].as_i64().expect("the run's number");
    let (start, end) = (us(&waited["started"]), us(&waited["ended"]));
    assert!(start.is_some() && start <= end, "{waited:#}");

    // `status NAME` and `status NAME RUN` say the same of it, in the same object.
    let (live, code) = json(&fb, "status", &["status", "retried", "--json"]);
    assert_eq!(code, Some(0), "{live:#}");
    let recorded = ended(&fb, "retried", run);
    for v in [&waited, &live, &recorded] {
        assert_eq!(v["run"], run, "{v:#}");
        assert_eq!(v["result"], "succeeded", "{v:#}");
        assert_eq!(v["running"], false, "{v:#}");
        assert_eq!(v["source_state"], "applied", "{v:#}");
        assert_eq!(
            states(v),
            [
                ("hello", "succeeded"),
                ("flaky", "succeeded"),
                ("last", "succeeded")
            ]
            .map(|(t, s)| (t.to_string(), s.to_string())),
            "{v:#}"
        );
        let flaky = &v["tasks"][1]["attempts"];
        assert_eq!(flaky[0]["result"], "failed", "{v:#}");
        assert_eq!(flaky[0]["exit_code"], 3, "{v:#}");
        assert_eq!(flaky[1]["result"], "succeeded", "{v:#}");
    }
    // The same tasks, attempts and times; a task's own duration is systemd's account in
    // one and its last attempt's in the other.
    for (a, b) in live["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .zip(recorded["tasks"].as_array().expect("tasks"))
    {
        for field in [
            "task",
            "state",
            "exit_code",
            "signal",
            "invocation_id",
            "attempts",
        ] {
            assert_eq!(a[field], b[field], "{field}: {a:#} vs {b:#}");
        }
    }
    assert_eq!(live["started"], recorded["started"]);
    assert_eq!(live["ended"], recorded["ended"]);
    assert_eq!(
        waited["tasks"][1]["attempts"],
        recorded["tasks"][1]["attempts"]
    );

    // `logs NAME` and `logs NAME RUN`: the same lines, each with its run and attempt.
    let last = wait_until("the last line", Duration::from_secs(10), || {
        let lines = log_lines(&fb, &["logs", "retried", "--json"]);
        lines
            .iter()
            .any(|l| l["message"] == "last-line")
            .then_some(lines)
    });
    let of_run = log_lines(&fb, &["logs", "retried", &run.to_string(), "--json"]);
    assert_eq!(last, of_run);
    let failing = last
        .iter()
        .find(|l| l["message"] == "failing-line")
        .expect("the failed attempt's line");
    assert_eq!(failing["task"], "flaky");
    assert_eq!(failing["attempt"], 1);
    assert_eq!(failing["run"], run);
    assert_eq!(
        failing["invocation_id"], recorded["tasks"][1]["attempts"][0]["invocation_id"],
        "{failing}"
    );
    assert!(
        last.iter()
            .all(|l| l["workflow"] == "retried" && l["run"] == run)
    );

    // A failed run, retried.
    let (failed, code) = json(&fb, "run-wait", &["run", "fails", "--wait", "--json"]);
    assert_eq!(code, Some(1), "{failed:#}");
    assert_eq!(failed["result"], "failed", "{failed:#}");
    assert_eq!(
        states(&failed),
        [("a", "failed"), ("b", "upstream_failed")].map(|(t, s)| (t.to_string(), s.to_string()))
    );
    let (status, code) = json(&fb, "status", &["status", "fails", "--json"]);
    assert_eq!(code, Some(1), "{status:#}");
    assert_eq!(status["result"], "failed", "{status:#}");
    let failed_run = failed["run"].as_i64().expect("its number");
    ended(&fb, "fails", failed_run);
    fb.sh("touch /var/tmp/fixed");
    let (retried, code) = json(&fb, "retry", &["retry", "fails", "--json"]);
    assert_eq!(code, Some(0), "{retried:#}");
    assert_eq!(retried["run"], failed_run, "{retried:#}");
    assert_eq!(retried["retried"], serde_json::json!(["a"]), "{retried:#}");
    let retry_run = retried["retry_run"].as_i64().expect("the new run's number");
    let again = ended(&fb, "fails", retry_run);
    assert_eq!(again["trigger"], "retry", "{again:#}");
    assert_eq!(again["result"], "succeeded", "{again:#}");

    // The history and the statistics of those runs.
    let (history, _) = json(&fb, "history", &["history", "--json"]);
    let runs: Vec<i64> = history["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run"].as_i64())
        .collect();
    assert_eq!(runs, [retry_run, failed_run, run], "{history:#}");
    let (stats, _) = json(&fb, "stats", &["stats", "--json"]);
    assert_eq!(stats["last_failures"][0]["run"], failed_run, "{stats:#}");
    assert_eq!(
        stats["last_failures"][0]["failed"][0]["task"], "a",
        "{stats:#}"
    );

    // Started and left to go: its number at once; a second trigger is skipped (overlap:
    // skip), with and without --wait; then canceled.
    let (started, code) = json(&fb, "run", &["run", "long", "--json"]);
    assert_eq!(code, Some(0), "{started:#}");
    let long = started["run"].as_i64().expect("the run's number");
    assert!(us(&started["started"]).is_some(), "{started:#}");
    assert_eq!(started["skipped"], false);
    let (skipped, code) = json(&fb, "run", &["run", "long", "--json"]);
    assert_eq!(code, Some(1), "{skipped:#}");
    assert_eq!(skipped["skipped"], true, "{skipped:#}");
    assert!(skipped["run"].is_null(), "{skipped:#}");
    let (skipped, code) = json(&fb, "run-wait", &["run", "long", "--wait", "--json"]);
    assert_eq!(code, Some(1), "{skipped:#}");
    assert_eq!(skipped["result"], "skipped", "{skipped:#}");
    let (going, code) = json(&fb, "status", &["status", "long", "--json"]);
    assert_eq!(code, Some(0), "{going:#}");
    assert_eq!(going["run"], long, "{going:#}");
    assert_eq!(going["running"], true, "{going:#}");
    assert!(
        going["result"].is_null() && going["ended"].is_null(),
        "{going:#}"
    );
    let (canceled, _) = json(&fb, "cancel", &["cancel", "long", "--json"]);
    assert_eq!(canceled["run"], long, "{canceled:#}");
    assert_eq!(canceled["canceled"], true, "{canceled:#}");
    assert_eq!(ended(&fb, "long", long)["result"], "canceled");

    // The timer, and the list.
    let (paused, _) = json(&fb, "pause", &["pause", "retried", "--json"]);
    assert_eq!(paused["paused"], true);
    let (resumed, _) = json(&fb, "pause", &["resume", "retried", "--json"]);
    assert_eq!(resumed["paused"], false);
    let (list, _) = json(&fb, "list", &["list", "--json"]);
    assert_eq!(
        list["workflows"].as_array().map(Vec::len),
        Some(3),
        "{list:#}"
    );

    // Without a supervisor: what only the history knows is null.
    fb.sh("systemctl stop supervisor-test.service");
    let (started, _) = json(&fb, "run", &["run", "retried", "--json"]);
    assert!(started["run"].is_null(), "{started:#}");
    let (status, _) = wait_until("the run to end", Duration::from_secs(20), || {
        let (v, code) = json(&fb, "status", &["status", "retried", "--json"]);
        (v["running"] == false).then_some((v, code))
    });
    assert!(status["run"].is_null(), "{status:#}");
    assert_eq!(status["result"], "succeeded", "{status:#}");
    assert!(us(&status["started"]).is_some(), "{status:#}");
    assert!(us(&status["ended"]).is_some(), "{status:#}");
    assert!(
        status["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .all(|t| t["attempts"] == serde_json::json!([])),
        "{status:#}"
    );
}

//! The JSON contract (docs/json.md): each command's `--json` output is one object on one
//! line that satisfies its schema in docs/schema/. Real outputs, from the real binary.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn flow() -> Command {
    Command::cargo_bin("flow").expect("the flow binary")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The one line a `--json` command printed, checked against `schema`; returned parsed.
fn checked(schema: &str, out: &std::process::Output) -> Value {
    common::schema_checked(schema, &String::from_utf8_lossy(&out.stdout))
}

fn install_args(cmd: &str, paths: &[&Path], units: &Path) -> Vec<String> {
    let mut args = vec![cmd.to_string()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    args.extend([
        "--unit-dir".into(),
        units.display().to_string(),
        "--json".into(),
    ]);
    if cmd == "apply" {
        args.push("--no-reload".into());
    }
    args
}

#[test]
fn plan_and_apply_print_their_schemas_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    let examples = root().join("examples");

    // Everything new: the plan lists every example's files.
    let out = flow()
        .args(install_args("plan", &[&examples], &units))
        .output()
        .expect("flow plan");
    assert!(out.status.success(), "{out:?}");
    let plan = checked("plan", &out);
    let adds = plan["workflows"].as_array().expect("workflows");
    assert!(
        adds.iter()
            .any(|w| w["workflow"] == "backup" && w["change"] == "add")
    );
    assert!(
        plan["files"]
            .as_array()
            .expect("files")
            .iter()
            .any(|f| f["name"] == "flow-backup.service" && f["change"] == "add")
    );

    // Applied, then nothing to do.
    let backup = examples.join("backup.yaml");
    let out = flow()
        .args(install_args("apply", &[&backup], &units))
        .output()
        .expect("flow apply");
    assert!(out.status.success(), "{out:?}");
    let applied = checked("apply", &out);
    assert_eq!(applied["written"], true);
    assert_eq!(applied["reloaded"], false);
    let out = flow()
        .args(install_args("apply", &[&backup], &units))
        .output()
        .expect("flow apply");
    let again = checked("apply", &out);
    assert_eq!(again["written"], false);
    assert_eq!(again["files"], Value::Array(vec![]));

    // A hand-written file holding a unit's name is a conflict in the plan.
    std::fs::write(
        units.join("flow-cleanup.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .expect("write");
    let cleanup = examples.join("cleanup.yaml");
    let out = flow()
        .args(install_args("plan", &[&backup, &cleanup], &units))
        .output()
        .expect("flow plan");
    let plan = checked("plan", &out);
    let held = plan["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["name"] == "flow-cleanup.service")
        .cloned()
        .expect("the cleanup unit in the plan");
    assert_eq!(held["conflicts"][0]["in_unit_dir"], true, "{plan:#}");
}

/// `flow list --json`, here without systemd: every workflow, with what flow could not learn
/// as `null` (never a placeholder string), and exit 3.
#[test]
fn list_prints_its_schemas_object_with_nulls_for_the_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    let out = flow()
        .args(install_args("apply", &[&root().join("examples")], &units))
        .output()
        .expect("flow apply");
    assert!(out.status.success(), "{out:?}");
    let out = flow()
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("none").display()),
        )
        .args(["list", "--json", "--unit-dir"])
        .arg(&units)
        .output()
        .expect("flow list");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v = checked("list", &out);
    let rows = v["workflows"].as_array().expect("workflows");
    assert_eq!(rows.len(), 6, "{v:#}");
    for row in rows {
        assert!(row["schedule"].is_string(), "{row}");
        for unknown in ["next", "paused", "running", "last_result"] {
            assert!(row[unknown].is_null(), "{unknown}: {row}");
        }
    }
}

/// A history database with three runs of `backup`: one that succeeded after a retry, one
/// that failed (its downstream task not run), and one going.
fn history_db(dir: &Path) -> PathBuf {
    use flow::store::{Attempt, Store};
    use flow::vocabulary::{Outcome, RunResult, TriggerKind};
    let db = dir.join("history.db");
    let (s, _) = Store::open_rw(&db).expect("open");
    let t0 = 1_700_000_000_000_000;
    let attempt = |run: i64, task: &str, n: u32, at: i64, outcome: Outcome| Attempt {
        run_id: run,
        task: task.into(),
        attempt: n,
        invocation_id: outcome
            .result
            .ran()
            .then(|| format!("{run:08}{n:08}{:016x}", task.len())),
        started_us: outcome.result.ran().then_some(at),
        ended_us: Some(at + 250_000),
        outcome,
        cpu_ns: Some(1_234_567),
        memory_peak: Some(8 << 20),
    };
    let one = s
        .insert_run("backup", TriggerKind::Timer, t0, None)
        .expect("run");
    s.insert_attempt(&attempt(one, "dump", 1, t0, Outcome::succeeded()))
        .expect("attempt");
    s.insert_attempt(&attempt(
        one,
        "snapshot",
        1,
        t0 + 300_000,
        Outcome::exited(1),
    ))
    .expect("attempt");
    s.insert_attempt(&attempt(
        one,
        "snapshot",
        2,
        t0 + 900_000,
        Outcome::succeeded(),
    ))
    .expect("attempt");
    s.insert_attempt(&attempt(
        one,
        "prune",
        1,
        t0 + 1_150_000,
        Outcome::succeeded(),
    ))
    .expect("attempt");
    s.finish_run(one, t0 + 1_200_000, RunResult::Succeeded)
        .expect("finish");
    let t1 = t0 + 3_600_000_000;
    let two = s
        .insert_run("backup", TriggerKind::Manual, t1, None)
        .expect("run");
    // Started first, though listed after `dump` in the workflow.
    s.insert_attempt(&attempt(two, "snapshot", 1, t1, Outcome::killed(9)))
        .expect("attempt");
    s.insert_attempt(&attempt(two, "dump", 1, t1 + 100_000, Outcome::succeeded()))
        .expect("attempt");
    let upstream = Outcome::of(flow::vocabulary::AttemptResult::UpstreamFailed);
    s.insert_attempt(&attempt(two, "prune", 1, t1 + 600_000, upstream))
        .expect("attempt");
    s.finish_run(two, t1 + 700_000, RunResult::Failed)
        .expect("finish");
    let t2 = t1 + 3_600_000_000;
    let three = s
        .insert_run("backup", TriggerKind::Retry, t2, None)
        .expect("run");
    s.insert_attempt(&attempt(three, "dump", 1, t2, Outcome::succeeded()))
        .expect("attempt");
    db
}

/// What every timestamp of an object says is RFC 3339 with an offset.
fn assert_times(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if ["started", "ended", "time", "next"].contains(&k.as_str())
                    && let Some(t) = x.as_str()
                {
                    assert!(
                        chrono::DateTime::parse_from_rfc3339(t).is_ok(),
                        "{k}: {t} is not RFC 3339"
                    );
                }
                assert_times(x);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_times),
        _ => {}
    }
}

fn history_cmd(args: &[&str], db: &Path) -> std::process::Output {
    flow()
        .args(args)
        .arg("--json")
        .arg("--db")
        .arg(db)
        .output()
        .expect("run flow")
}

/// `flow history`, `flow stats` and `flow status NAME RUN` from a real history: each one
/// line that satisfies its schema, in the contract's terms (`run`, the vocabulary's words,
/// times and milliseconds).
#[test]
fn the_history_commands_print_their_schemas_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = history_db(dir.path());

    let out = history_cmd(&["history", "backup"], &db);
    assert!(out.status.success(), "{out:?}");
    let v = checked("history", &out);
    assert_times(&v);
    let runs = v["runs"].as_array().expect("runs");
    let numbers: Vec<i64> = runs.iter().filter_map(|r| r["run"].as_i64()).collect();
    assert_eq!(numbers, [3, 2, 1], "{v:#}");
    assert_eq!(runs[1]["result"], "failed");
    assert_eq!(runs[2]["duration_ms"], 1200);
    assert_eq!(runs[0]["trigger"], "retry");
    assert!(runs[0]["result"].is_null() && runs[0]["ended"].is_null());

    let out = history_cmd(&["stats", "backup"], &db);
    assert!(out.status.success(), "{out:?}");
    let v = checked("stats", &out);
    assert_times(&v);
    let snapshot = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["task"] == "snapshot")
        .cloned()
        .expect("snapshot's stats");
    assert_eq!(snapshot["attempts"], 3, "{v:#}");
    assert_eq!(snapshot["success_rate"].as_f64(), Some(1.0 / 3.0), "{v:#}");
    assert_eq!(snapshot["succeeded"], 1, "{v:#}");
    let failure = &v["last_failures"][0];
    assert_eq!(failure["run"], 2, "{v:#}");
    let failed: Vec<&str> = failure["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .filter_map(|a| a["result"].as_str())
        .collect();
    assert_eq!(failed, ["killed", "upstream_failed"], "{v:#}");

    // Not installed: the tasks in the order they first ran; the failed run exits 1.
    let out = history_cmd(&["status", "backup", "2"], &db);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = checked("status", &out);
    assert_times(&v);
    assert_eq!(v["run"], 2);
    assert_eq!(v["result"], "failed");
    assert_eq!(v["running"], false);
    assert!(v["source_state"].is_null(), "{v:#}");
    let states: Vec<(&str, &str)> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["task"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("snapshot", "killed"),
            ("dump", "succeeded"),
            ("prune", "upstream_failed")
        ]
    );
    assert_eq!(v["tasks"][0]["signal"], 9);
    assert_eq!(v["tasks"][0]["attempts"][0]["cpu_ms"], 1.234);
    assert_eq!(v["tasks"][0]["attempts"][0]["memory_peak_bytes"], 8 << 20);

    // Installed: in the workflow's order, with its source's state; a run going exits 0,
    // and waits for the tasks it has no attempt of yet.
    let units = dir.path().join("units");
    let yaml = dir.path().join("backup.yaml");
    std::fs::write(
        &yaml,
        "tasks:\n  dump: 'true'\n  snapshot: {needs: [dump], run: 'true', retries: 1}\n  prune: {needs: [snapshot], run: 'true'}\n",
    )
    .expect("write");
    let out = flow()
        .args(install_args("apply", &[&yaml], &units))
        .output()
        .expect("flow apply");
    assert!(out.status.success(), "{out:?}");
    for (run, code) in [("2", 1), ("3", 0), ("1", 0)] {
        let out = flow()
            .args(["status", "backup", run, "--json", "--db"])
            .arg(&db)
            .arg("--unit-dir")
            .arg(&units)
            .output()
            .expect("flow status");
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        let v = checked("status", &out);
        assert_eq!(v["source_state"], "applied", "{v:#}");
        let tasks: Vec<&str> = v["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .filter_map(|t| t["task"].as_str())
            .collect();
        assert_eq!(tasks, ["dump", "snapshot", "prune"], "run {run}: {v:#}");
        if run == "3" {
            assert_eq!(v["running"], true, "{v:#}");
            assert!(v["result"].is_null(), "{v:#}");
            assert_eq!(v["tasks"][1]["state"], "unknown", "{v:#}");
        }
        if run == "1" {
            assert_eq!(v["tasks"][1]["attempts"].as_array().map(Vec::len), Some(2));
            assert_eq!(v["tasks"][1]["exit_code"], 0, "{v:#}");
        }
    }
}

/// `flow run --wait --json` says what `flow status --json` says of a run, and more: every
/// field of status.json is in run-wait.json, defined the same.
#[test]
fn run_wait_is_status_and_more() {
    let read = |name: &str| -> Value {
        let path = root().join(format!("docs/schema/{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
    };
    let (status, wait) = (read("status"), read("run-wait"));
    let fields = status["properties"].as_object().expect("properties");
    for (name, definition) in fields {
        assert_eq!(
            &wait["properties"][name], definition,
            "run-wait.json's `{name}` differs from status.json's"
        );
    }
    let required = |v: &Value| -> Vec<String> {
        v["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    for field in required(&status) {
        assert!(required(&wait).contains(&field), "{field}");
    }
}

/// Every schema in docs/schema is a valid draft-07 schema and is listed in docs/json.md.
#[test]
fn every_schema_is_valid_and_documented() {
    let page = std::fs::read_to_string(root().join("docs/json.md")).expect("docs/json.md");
    for entry in std::fs::read_dir(root().join("docs/schema")).expect("docs/schema") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = name.trim_end_matches(".json");
        common::schema_validator(stem);
        assert!(
            page.contains(&format!("schema/{name}")),
            "docs/json.md lacks {name}"
        );
    }
}

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

/// The files of the broken-file corpus, sorted.
fn broken_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/errors"))
        .expect("tests/data/errors")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the error corpus went missing");
    files
}

/// A code each broken file must be reported with (one of its problems, at least).
const EXPECTED_CODES: &[(&str, &str)] = &[
    ("bad name!.yaml", "invalid_name"),
    ("control_characters.yaml", "invalid_env_name"),
    ("cron_unquoted.yaml", "cron_unquoted"),
    ("empty.yaml", "empty_file"),
    ("empty_tasks.yaml", "no_tasks"),
    ("exec_semicolon.yaml", "invalid_program"),
    ("graph.yaml", "cycle"),
    ("not_utf8.yaml", "not_utf8"),
    ("reserved_name.yaml", "reserved_name"),
    ("run_and_exec.yaml", "run_and_exec"),
    ("service_hatch.yaml", "owned_service_key"),
    ("supervisor.yaml", "reserved_name"),
    ("syntax.yaml", "yaml_syntax"),
    ("types.yaml", "wrong_type"),
    ("unknown_keys.yaml", "unknown_key"),
    ("values.yaml", "invalid_choice"),
    ("when_without_needs.yaml", "when_without_needs"),
];

/// `flow validate --json` of every broken file: exit 1, its schema's object, one diagnostic
/// per problem the compiler finds, each with a known code and a line and column.
#[test]
fn validate_reports_each_problem_of_the_broken_corpus_with_a_code_and_a_place() {
    let codes: Vec<&str> = flow::compiler::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    for path in broken_files() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        let out = flow()
            .args(["validate", "--json"])
            .arg(&path)
            .output()
            .expect("flow validate");
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        let v = checked("validate", &out);
        assert_eq!(v["valid"], false, "{name}");
        assert_eq!(v["files"][0]["valid"], false, "{name}");
        assert!(v["files"][0]["workflow"].is_null(), "{name}");
        let diags = v["diagnostics"].as_array().expect("diagnostics");
        // As many as the compiler finds (a file that is not UTF-8 has one, from `decode`).
        let bytes = std::fs::read(&path).expect("read");
        let found = match flow::compiler::decode(&bytes) {
            Ok(text) => flow::compiler::check(&name, text)
                .expect_err("invalid")
                .len(),
            Err(_) => 1,
        };
        assert_eq!(diags.len(), found, "{name}: {v:#}");
        for d in diags {
            let code = d["code"].as_str().unwrap_or_default();
            assert!(codes.contains(&code), "{name}: unknown code {d}");
            assert_eq!(d["severity"], "error", "{name}: {d}");
            assert_eq!(d["file"], path.display().to_string(), "{name}: {d}");
            for place in ["line", "column", "end_line", "end_column"] {
                assert!(d[place].as_u64().is_some_and(|n| n >= 1), "{name}: {d}");
            }
            assert!(!d["message"].as_str().unwrap_or_default().is_empty());
        }
        let expected = EXPECTED_CODES
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, code)| *code)
            .unwrap_or_else(|| panic!("{name}: add the code it must get to EXPECTED_CODES"));
        assert!(
            diags.iter().any(|d| d["code"] == expected),
            "{name}: no `{expected}` in {v:#}"
        );
    }
}

/// Valid files, a workflow defined twice, and a file that is no file: each file says whether
/// it is valid, and what is not is a diagnostic.
#[test]
fn validate_json_says_which_files_are_valid() {
    let out = flow()
        .args(["validate", "--json"])
        .arg(root().join("examples"))
        .output()
        .expect("flow validate");
    assert!(out.status.success(), "{out:?}");
    let v = checked("validate", &out);
    assert_eq!(v["valid"], true);
    let files = v["files"].as_array().expect("files");
    assert!(files.len() >= 2, "{v:#}");
    for f in files {
        assert_eq!(f["valid"], true, "{f}");
        assert!(
            f["workflow"].is_string() && f["tasks"].as_u64() >= Some(1),
            "{f}"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let good = "tasks:\n  a: echo a\n";
    std::fs::write(dir.path().join("a.yaml"), good).expect("write");
    // Others may change it: valid, with a warning (`flow apply` refuses it).
    std::fs::set_permissions(
        dir.path().join("a.yaml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    std::fs::write(dir.path().join("b.yaml"), format!("name: a\n{good}")).expect("write");
    let fifo = dir.path().join("pipe.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let out = flow()
        .args(["validate", "--json"])
        .arg(dir.path().join("a.yaml"))
        .arg(dir.path().join("b.yaml"))
        .arg(&fifo)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .expect("flow validate");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = checked("validate", &out);
    let valid: Vec<&Value> = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| &f["valid"])
        .collect();
    assert_eq!(
        valid,
        [&Value::Bool(true), &Value::Bool(false), &Value::Bool(false)]
    );
    assert_eq!(v["files"][0]["workflow"], "a");
    let codes: Vec<(&str, &str, u64, u64)> = v["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default(),
                d["severity"].as_str().unwrap_or_default(),
                d["line"].as_u64().unwrap_or_default(),
                d["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("untrusted_file", "warning", 1, 1),
            ("duplicate_workflow", "error", 1, 1),
            ("not_a_file", "error", 1, 1)
        ]
    );
}

/// `flow compile --json`: the units whole, written nowhere without `--out`; with it, the
/// same files as written.
#[test]
fn compile_json_prints_the_units() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = root().join("examples/backup.yaml");
    let out = flow()
        .current_dir(dir.path())
        .args(["compile", "--json"])
        .arg(&backup)
        .output()
        .expect("flow compile");
    assert!(out.status.success(), "{out:?}");
    let v = checked("compile", &out);
    assert_eq!(v["written"], false);
    assert_eq!(v["unit_dir"], "/etc/systemd/system");
    assert_eq!(v["workflows"][0]["workflow"], "backup");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "wrote without --out"
    );

    let units = dir.path().join("units");
    let out = flow()
        .args(["compile", "--json", "--out"])
        .arg(&units)
        .arg(&backup)
        .output()
        .expect("flow compile");
    assert!(out.status.success(), "{out:?}");
    let v = checked("compile", &out);
    assert_eq!(v["written"], true);
    let files = v["workflows"][0]["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["name"] == "flow-backup.service"));
    for f in files {
        let name = f["name"].as_str().expect("name");
        let written = std::fs::read_to_string(units.join(name)).expect("written");
        assert_eq!(f["content"], written, "{name}");
    }

    // An invalid workflow: nothing on stdout, exit 1.
    let out = flow()
        .args(["compile", "--json"])
        .arg(root().join("tests/data/errors/graph.yaml"))
        .output()
        .expect("flow compile");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// Each diagnostic code is listed in docs/json.md with its severity, and in the schema of
/// `validate --json`; neither lists a code the compiler does not have.
#[test]
fn every_diagnostic_code_is_documented() {
    use flow::compiler::Code;
    let page = std::fs::read_to_string(root().join("docs/json.md")).expect("docs/json.md");
    let documented: Vec<(String, String)> = page
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let severity = cells.get(2)?;
            matches!(*severity, "error" | "warning")
                .then(|| (code.to_string(), severity.to_string()))
        })
        .collect();
    let ours: Vec<(String, String)> = Code::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), c.severity().as_str().to_string()))
        .collect();
    assert_eq!(documented, ours, "docs/json.md's table of codes");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/schema/validate.json")).expect("schema"),
    )
    .expect("JSON");
    let in_schema: Vec<&str> =
        schema["properties"]["diagnostics"]["items"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the codes in the schema")
            .iter()
            .filter_map(Value::as_str)
            .collect();
    let names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(in_schema, names, "docs/schema/validate.json's codes");
}

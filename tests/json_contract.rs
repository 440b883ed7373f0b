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

//! Snapshot tests of the units generated for tricky inputs (`tests/data/units/*.yaml`),
//! and `systemd-analyze verify` of every one of them, which must print nothing.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify;

use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/units")
}

fn compile(file: &str) -> Vec<flow::compiler::GeneratedFile> {
    let path = data().join(file);
    let text = std::fs::read_to_string(&path).expect("read test input");
    match flow::compiler::compile(
        &format!("/etc/flow/workflows/{file}"),
        &text,
        "/etc/systemd/system",
    ) {
        Ok((_, files)) => files,
        Err(diags) => panic!("{file} should compile: {diags:?}"),
    }
}

fn joined(files: &[flow::compiler::GeneratedFile]) -> String {
    files
        .iter()
        .map(|f| format!("==> {} <==\n{}", f.name, f.contents))
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! snapshot_test {
    ($name:ident, $file:expr) => {
        #[test]
        fn $name() {
            let files = compile($file);
            insta::assert_snapshot!(joined(&files));
            verify::verify_clean(&files);
        }
    };
}

snapshot_test!(tricky_quoting, "tricky.yaml");
snapshot_test!(every_key, "features.yaml");
snapshot_test!(every_schedule, "every.yaml");
snapshot_test!(reboot_schedule, "reboot.yaml");
snapshot_test!(calendar_schedule, "calendar.yaml");

#[test]
fn large_script_runs_from_a_file_beside_the_units() {
    let big = "echo line\n".repeat(10_000); // 100 KB: over the inline limit
    let yaml = format!(
        "tasks:\n  big:\n    run: |\n{}",
        big.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    );
    let (_, files) =
        flow::compiler::compile("/w/big.yaml", &yaml, "/etc/systemd/system").expect("compiles");
    let script = files
        .iter()
        .find(|f| f.name == "flow-big--big.sh")
        .expect("script file");
    assert!(
        script.contents.ends_with(&big),
        "the script is written unchanged"
    );
    let unit = files
        .iter()
        .find(|f| f.name == "flow-big--big.service")
        .expect("unit");
    assert!(
        unit.contents
            .contains("ExecStart=/bin/sh \"/etc/systemd/system/flow-big--big.sh\"\n")
    );
    assert!(
        unit.contents.lines().all(|l| l.len() < 4096),
        "no huge lines in the unit"
    );
    verify::verify_clean(&files);
}

#[test]
fn script_at_the_limit_is_inlined() {
    let body = "x".repeat(flow::compiler::emit::INLINE_SCRIPT_MAX - 5);
    let yaml = format!("tasks:\n  t:\n    run: echo {body}\n");
    let (_, files) = flow::compiler::compile("/w/w.yaml", &yaml, "/u").expect("compiles");
    assert_eq!(files.iter().filter(|f| f.name.ends_with(".sh")).count(), 0);
}

/// Every example is valid and its units verify without a word from systemd.
#[test]
fn every_example_is_valid_and_verifies_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        let shown = path.display().to_string();
        match flow::compiler::compile(&shown, &text, "/etc/systemd/system") {
            Ok((_, files)) => verify::verify_clean(&files),
            Err(diags) => panic!(
                "{}",
                flow::compiler::diagnostic::render_all(&diags, &shown, &text)
            ),
        }
        count += 1;
    }
    assert!(
        count >= 5,
        "examples/ should hold at least five workflows, found {count}"
    );
}

/// The supervisor's own units, the system's and the user's, as the package installs them
/// (with this build's binary), verify with no output at all. `--man=no`: the man page they
/// name is installed by the package, whose test reads it.
#[test]
fn the_supervisors_own_units_verify_clean() {
    if !verify::analyze_available() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let dir = tempfile::tempdir().expect("temporary directory");
    // A user manager's verify wants a runtime directory of its own.
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).expect("runtime directory");
    for (scope, source) in [
        ("--system", root.join("flow-supervisor.service")),
        ("--user", root.join("user/flow-supervisor.service")),
    ] {
        let text = std::fs::read_to_string(&source).expect("read the unit");
        assert!(text.contains("ExecStart=/usr/bin/flow supervise"), "{text}");
        let unit_dir = dir.path().join(scope.trim_start_matches('-'));
        std::fs::create_dir(&unit_dir).expect("unit directory");
        let unit = unit_dir.join("flow-supervisor.service");
        std::fs::write(
            &unit,
            text.replace("/usr/bin/flow", env!("CARGO_BIN_EXE_flow")),
        )
        .expect("write the unit");
        let out = std::process::Command::new("systemd-analyze")
            .args([scope, "verify", "--man=no"])
            .arg(&unit)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .expect("run systemd-analyze");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.is_empty(),
            "{scope} {}: {said}",
            source.display()
        );
    }
}

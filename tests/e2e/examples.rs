//! End-to-end: every workflow in `examples/` runs to success under `flow try`, the way a
//! reader of the README would run it. An example that needs something a test machine lacks
//! says so on a line `# flow-try: skip <why>`; it is then listed, with the reason, not run.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::harness;

#[test]
fn every_example_runs_to_success_under_flow_try() {
    let Some(_machine) = harness::root() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read example");
        if let Some(why) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("# flow-try: skip"))
        {
            assert!(
                !why.trim().is_empty(),
                "{} is marked to skip without a reason",
                file.display()
            );
            let _ = writeln!(
                std::io::stderr(),
                "not run: {}: {}",
                file.display(),
                why.trim()
            );
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_flow"))
            .arg("try")
            .arg(file)
            .output()
            .expect("run flow try");
        ran += 1;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // "Run 1 succeeded." (the supervisor's number for it).
        let succeeded = stdout
            .lines()
            .any(|l| l.starts_with("Run ") && l.ends_with(" succeeded."));
        if !out.status.success() || !succeeded {
            failures.push(format!(
                "{} ({}):\n{stdout}\n{}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(ran > 0, "every example is marked to skip");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

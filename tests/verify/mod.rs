//! `systemd-analyze verify` on generated units: it exits 0 even when it warns, so any
//! output at all is a failure.
#![allow(dead_code)] // each test file uses one of the two

use std::process::Command;

/// Whether `systemd-analyze` is here to run; without it, a loud skip, and a failure in CI.
pub fn analyze_available() -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "systemd-analyze is missing (apt install systemd)"
    );
    eprintln!("SKIPPED: systemd-analyze is not installed; unit verification did not run");
    false
}

pub fn verify_clean(files: &[flow::compiler::GeneratedFile]) {
    if !analyze_available() {
        return;
    }
    let files: Vec<&flow::compiler::GeneratedFile> = files.iter().collect();
    if let Err(text) = verify_output(&files) {
        panic!("systemd-analyze verify complained:\n{text}");
    }
}

/// Writes the units into a temporary directory as `flow apply` would (calling the flow
/// binary where it actually is) and runs `systemd-analyze verify` on them; `Err` with what
/// it said, if it said anything.
pub fn verify_output(files: &[&flow::compiler::GeneratedFile]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut units = Vec::new();
    for f in files {
        let path = dir.path().join(&f.name);
        let contents = f.contents.replace(
            "\"/usr/bin/flow\"",
            &format!("\"{}\"", env!("CARGO_BIN_EXE_flow")),
        );
        std::fs::write(&path, contents).map_err(|e| e.to_string())?;
        if f.name.ends_with(".service") || f.name.ends_with(".timer") {
            units.push(path);
        }
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .current_dir(dir.path())
        .output()
        .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.trim().is_empty() {
        Ok(())
    } else {
        Err(text)
    }
}

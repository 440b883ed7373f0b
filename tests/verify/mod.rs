//! `systemd-analyze verify` on generated units: it exits 0 even when it warns, so any
//! output at all is a failure.

use std::process::Command;

pub fn verify_clean(files: &[flow::compiler::GeneratedFile]) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (apt install systemd)"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed; unit verification did not run");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for f in files {
        let path = dir.path().join(&f.name);
        // As `flow apply` writes them: calling the flow binary where it actually is.
        let contents = f.contents.replace(
            "\"/usr/bin/flow\"",
            &format!("\"{}\"", env!("CARGO_BIN_EXE_flow")),
        );
        std::fs::write(&path, contents).expect("write unit");
        if f.name.ends_with(".service") || f.name.ends_with(".timer") {
            units.push(path);
        }
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify complained:\n{text}"
    );
}

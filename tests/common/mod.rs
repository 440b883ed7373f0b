//! What test crates share: the root check every test that needs root goes through (end to
//! end ones through `tests/e2e/harness`), and the JSON contract's schemas.
//!
//! A test that needs root skips LOUDLY without it, except in CI (`CI=true`), where a skip
//! would hide a broken pipeline and is a failure instead.
#![allow(dead_code)] // each test crate uses a different part

use std::io::Write;
use std::path::Path;
use std::thread;

/// True when this process may run tests that need root. Otherwise prints a loud skip notice
/// and returns false, or panics when `CI=true`: such tests must never skip silently in CI.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let test = thread::current().name().unwrap_or("this test").to_string();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test} needs root, and CI=true forbids skipping it: \
             run the test suite as root in CI (sudo -E cargo test)"
        );
    }
    // Written to the stderr handle, not with eprintln!: libtest captures the print macros
    // of passing tests, and a skip that nobody sees is a silent skip.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: it needs root (to boot a systemd sandbox, or to change owners).\n\
         !!! Run it with: sudo -E cargo test\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

/// `json` (one line a `--json` command printed) parsed and checked against its schema,
/// `docs/schema/<schema>.json`: end-to-end outputs are held to the JSON contract too.
pub fn schema_checked(schema: &str, json: &str) -> serde_json::Value {
    let validator = schema_validator(schema);
    assert_eq!(
        json.trim().lines().count(),
        1,
        "{schema}: not one line:\n{json}"
    );
    let v: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("{schema}: not JSON ({e}):\n{json}"));
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{v:#}");
    v
}

/// A time a `--json` output gave (RFC 3339, to the millisecond) as µs since the epoch;
/// `None` for `null` or anything else.
pub fn us(time: &serde_json::Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// `docs/schema/<name>.json`, parsed, as a draft-07 validator.
pub fn schema_validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::draft7::new(&schema).expect("a valid draft-07 schema")
}

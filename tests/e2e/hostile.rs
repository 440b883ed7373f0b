//! End-to-end, on a real systemd (in a sandbox): what tasks write cannot drive the terminal
//! of whoever reads `flow logs`, and an `on_failure` task waiting for thousands of
//! long-named upstreams still runs when one of them fails.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::harness::{self, Boot};

#[test]
fn control_characters_of_task_output_are_shown_escaped() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "noisy",
        r#"tasks:
  noisy:
    exec: [/usr/bin/printf, 'before\033[2J\033]0;owned\007after\rhidden\n']
"#,
    );
    let r = fb.run_wait("noisy");
    assert!(r.succeeded, "{r:?}");
    let logs = harness::wait_until("the line", std::time::Duration::from_secs(10), || {
        let out = fb.flow(&["logs", "noisy"]).ok().stdout;
        out.contains("before").then_some(out)
    });
    assert!(
        !logs.contains(['\u{1b}', '\u{7}', '\r']),
        "control characters reached the terminal: {logs:?}"
    );
    assert!(
        logs.contains(r"before\x1b[2J\x1b]0;owned\x07after\x0dhidden"),
        "{logs:?}"
    );
    // `--json` keeps the message as it was written (JSON escapes it itself).
    let json = fb.flow(&["logs", "noisy", "--json"]).ok().stdout;
    let v = common::schema_checked("logs", &json);
    assert_eq!(
        v["message"].as_str(),
        Some("before\u{1b}[2J\u{1b}]0;owned\u{7}after\rhidden")
    );
}

#[test]
fn on_failure_waits_for_thousands_of_long_named_upstreams() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.sh("mkdir -p /srv/marks && chmod 777 /srv/marks");
    // 2,100 names of 64 characters: written into the condition's script as one argument,
    // as before, they passed the kernel's 128 KiB limit on one argument.
    let name = |i: usize| format!("up-{i:04}-{}", "x".repeat(56));
    let count = 2_100;
    let mut yaml = String::from("tasks:\n");
    for i in 0..count {
        let run = if i == count - 1 { "'exit 1'" } else { "'true'" };
        yaml.push_str(&format!("  {}: {run}\n", name(i)));
    }
    let all: Vec<String> = (0..count).map(name).collect();
    yaml.push_str(&format!(
        "  alert:\n    needs: [{}]\n    when: on_failure\n    run: touch /srv/marks/alert\n",
        all.join(", ")
    ));
    assert_eq!(name(0).len(), 64);
    fb.apply("wide", &yaml);
    let r = fb.run_wait("wide");
    assert!(!r.succeeded, "one upstream failed");
    assert_eq!(r.state(&name(count - 1)), "failed");
    assert_eq!(r.state("alert"), "succeeded", "{}", r.stderr);
    assert!(fb.exists("/srv/marks/alert"));
}

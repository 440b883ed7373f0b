//! End-to-end test of the supervisor's journal events: workflows made to produce every
//! event of the catalog in `docs/events.md` run in a sandboxed systemd, and every
//! `MESSAGE_ID` the catalog lists is read back from the journal with its fields and
//! priority. The catalog is read from the document itself, so the document and the code
//! cannot drift apart: an event the code logs that the catalog lacks fails too.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::{self, Boot, DB, sh};
use flow::sandbox::Sandbox;
use serde_json::Value;

/// One row of the catalog.
#[derive(Debug)]
struct Event {
    id: String,
    name: String,
    /// The journal priorities it may have (3 err .. 6 info).
    priorities: BTreeSet<u8>,
    /// Fields every entry has.
    required: Vec<String>,
    /// Fields in brackets: there when they apply.
    optional: Vec<String>,
}

/// The catalog table of `docs/events.md`.
fn catalog() -> Vec<Event> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md"))
        .expect("docs/events.md");
    let mut events = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let [id, name, priority, fields, _meaning] = cells[..] else {
            continue;
        };
        let id = id.trim_matches('`');
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let priorities = priority
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter_map(|w| match w {
                "err" => Some(3),
                "warning" => Some(4),
                "notice" => Some(5),
                "info" => Some(6),
                _ => None,
            })
            .collect::<BTreeSet<u8>>();
        assert!(!priorities.is_empty(), "no priority in the row of {name}");
        let (mut required, mut optional) = (Vec::new(), Vec::new());
        for f in fields.split(',').map(str::trim) {
            let bare = f.trim_matches(|c| c == '[' || c == ']').trim_matches('`');
            assert!(
                bare.starts_with("FLOW_"),
                "odd field {f:?} in the row of {name}"
            );
            if f.starts_with('[') {
                optional.push(bare.to_string());
            } else {
                required.push(bare.to_string());
            }
        }
        events.push(Event {
            id: id.to_string(),
            name: name.to_string(),
            priorities,
            required,
            optional,
        });
    }
    assert!(events.len() >= 10, "the catalog has {} rows", events.len());
    events
}

/// Every entry the supervisor logged, as JSON objects.
fn logged(sb: &Sandbox) -> Vec<Value> {
    let _ = sh(sb, "journalctl --sync");
    harness::journal(sb, &["SYSLOG_IDENTIFIER=flow-supervisor"])
}

fn field<'a>(e: &'a Value, name: &str) -> Option<&'a str> {
    e.get(name).and_then(Value::as_str)
}

/// Waits until the supervisor logged an event `id` for which `pick` holds; returns it.
fn wait_event(sb: &Sandbox, what: &str, id: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let all = logged(sb);
        if let Some(e) = all
            .iter()
            .find(|e| field(e, "MESSAGE_ID") == Some(id) && pick(e))
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what} event ({id}) in the journal; the supervisor logged:\n{}",
            story(&all)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The entries' messages, one a line.
fn story(entries: &[Value]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                field(e, "PRIORITY").unwrap_or("?"),
                field(e, "MESSAGE").unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is(e: &Value, pairs: &[(&str, &str)]) -> bool {
    pairs.iter().all(|(k, v)| field(e, k) == Some(v))
}

const OK: &str = "tasks:\n  a: {run: 'echo hello from a; sleep 0.3'}\n";

const FLAKY: &str = "
tasks:
  broken:
    run: 'sleep 0.3; exit 3'
    retries: 1
    retry_delay: 1s
  after:
    needs: [broken]
    run: 'true'
";

const SLOW: &str = "
timeout: 8s
tasks:
  quick: {run: 'true'}
  s:
    needs: [quick]
    run: 'sleep 60'
";

#[test]
fn every_documented_event_is_read_back_from_the_journal() {
    let catalog = catalog();
    let ids = |name: &str| {
        catalog
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.id.clone())
            .unwrap_or_else(|| panic!("no event {name:?} in docs/events.md"))
    };
    let Some(sb) = Boot::new()
        .workflow("ok", OK)
        .workflow("flaky", FLAKY)
        .workflow("slow", SLOW)
        .supervisor()
        .boot()
    else {
        return;
    };

    // Run 1 succeeds.
    let out = sh(&sb, "flow run ok --wait");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Run 2 fails after a retry; its downstream task does not run.
    let out = sh(&sb, "flow run flaky --wait");
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Run 3 goes past its deadline; a trigger meanwhile is skipped (run 4), and the
    // supervisor is killed and restarted during it.
    sh(&sb, "flow run slow").ok();
    harness::wait_until("the long task to run", Duration::from_secs(20), || {
        let s = sh(&sb, "systemctl is-active flow-slow--s.service").stdout;
        (s.trim() == "active" || s.trim() == "activating").then_some(())
    });
    let again = sh(&sb, "flow run slow");
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    wait_event(&sb, "trigger skipped", &ids("trigger skipped"), |_| true);
    sh(&sb, "systemctl kill -s KILL supervisor-test.service").ok();
    harness::wait_until("the supervisor to die", Duration::from_secs(10), || {
        let s = sh(&sb, "systemctl is-active supervisor-test.service").stdout;
        (s.trim() != "active").then_some(())
    });
    sb.start_supervisor();
    wait_event(&sb, "run ended (timed out)", &ids("run ended"), |e| {
        is(e, &[("FLOW_WORKFLOW", "slow"), ("FLOW_RUN", "3")])
    });

    // The history locked by another process while run 5 goes: kept in memory, then
    // written (the supervisor waits 2 s for a lock, and tries again every 5 s).
    sb.lock_history(6);
    sh(&sb, "flow run ok --wait").ok();
    wait_event(&sb, "database written", &ids("database written"), |_| true);

    let all = logged(&sb);
    let text = story(&all);

    // Every event of the catalog, each entry with its fields and a priority it may have.
    for ev in &catalog {
        let entries: Vec<&Value> = all
            .iter()
            .filter(|e| field(e, "MESSAGE_ID") == Some(ev.id.as_str()))
            .collect();
        assert!(
            !entries.is_empty(),
            "no {} event ({}) in the journal:\n{text}",
            ev.name,
            ev.id
        );
        for e in &entries {
            for f in &ev.required {
                assert!(field(e, f).is_some(), "{} without {f}: {e:#}", ev.name);
            }
            let p: u8 = field(e, "PRIORITY")
                .and_then(|p| p.parse().ok())
                .unwrap_or(99);
            assert!(
                ev.priorities.contains(&p),
                "{} at priority {p}, not one of {:?}: {e:#}",
                ev.name,
                ev.priorities
            );
            // No field outside the row of the catalog.
            let flow_fields: Vec<&String> = e
                .as_object()
                .map(|o| o.keys().filter(|k| k.starts_with("FLOW_")).collect())
                .unwrap_or_default();
            for f in flow_fields {
                assert!(
                    ev.required.contains(f) || ev.optional.contains(f),
                    "{} has {f}, which docs/events.md does not list for it: {e:#}",
                    ev.name
                );
            }
        }
    }
    // And nothing the catalog does not list.
    let known: BTreeSet<&str> = catalog.iter().map(|e| e.id.as_str()).collect();
    for e in &all {
        if let Some(id) = field(e, "MESSAGE_ID") {
            assert!(known.contains(id), "{id} is not in docs/events.md: {e:#}");
        }
    }

    // The words of the documentation.
    let run_words = ["succeeded", "failed", "timed_out", "canceled", "skipped"];
    let attempt_words = [
        "succeeded",
        "failed",
        "timed_out",
        "out_of_memory",
        "killed",
        "upstream_failed",
        "skipped",
        "canceled",
    ];
    let (run_ended, attempt_ended) = (ids("run ended"), ids("attempt ended"));
    for e in &all {
        let result = field(e, "FLOW_RESULT");
        if let Some(r) = result
            && field(e, "MESSAGE_ID") == Some(run_ended.as_str())
        {
            assert!(run_words.contains(&r), "run result {r:?}: {e:#}");
        }
        if let Some(r) = result
            && field(e, "MESSAGE_ID") == Some(attempt_ended.as_str())
        {
            assert!(attempt_words.contains(&r), "attempt result {r:?}: {e:#}");
        }
        if let Some(t) = field(e, "FLOW_TRIGGER") {
            assert!(
                ["timer", "catch_up", "manual", "retry", "systemctl"].contains(&t),
                "trigger {t:?}: {e:#}"
            );
        }
    }

    // The story, event by event.
    let one = |name: &str, pairs: &[(&str, &str)]| -> Vec<&Value> {
        let id = ids(name);
        all.iter()
            .filter(|e| field(e, "MESSAGE_ID") == Some(id.as_str()) && is(e, pairs))
            .collect()
    };
    let started = one("run started", &[("FLOW_WORKFLOW", "ok"), ("FLOW_RUN", "1")]);
    assert_eq!(started.len(), 1, "{text}");
    assert_eq!(field(started[0], "FLOW_TRIGGER"), Some("manual"));
    assert_eq!(field(started[0], "PRIORITY"), Some("6"));
    let ended = one("run ended", &[("FLOW_RUN", "1")]);
    assert_eq!(ended.len(), 1, "{text}");
    assert_eq!(field(ended[0], "FLOW_RESULT"), Some("succeeded"));
    assert_eq!(field(ended[0], "PRIORITY"), Some("6"));
    let a = one(
        "attempt ended",
        &[("FLOW_RUN", "1"), ("FLOW_TASK", "a"), ("FLOW_ATTEMPT", "1")],
    );
    assert_eq!(a.len(), 1, "{text}");
    assert_eq!(field(a[0], "FLOW_RESULT"), Some("succeeded"));
    assert_eq!(field(a[0], "FLOW_EXIT_CODE"), Some("0"));
    let ms: u64 = field(a[0], "FLOW_DURATION_MS")
        .and_then(|d| d.parse().ok())
        .expect("a duration");
    assert!((250..5000).contains(&ms), "{ms} ms: {:#}", a[0]);
    let inv = field(a[0], "FLOW_INVOCATION_ID").expect("an invocation id");
    // (journald receives the task's output on its own schedule.)
    let output = harness::wait_until("the task's output", Duration::from_secs(10), || {
        let _ = sh(&sb, "journalctl --sync");
        let output = harness::journal(&sb, &[&format!("_SYSTEMD_INVOCATION_ID={inv}")]);
        output
            .iter()
            .any(|e| field(e, "MESSAGE") == Some("hello from a"))
            .then_some(output)
    });
    assert!(
        output
            .iter()
            .all(|e| field(e, "_SYSTEMD_UNIT") == Some("flow-ok--a.service")),
        "FLOW_INVOCATION_ID leads elsewhere too"
    );
    assert_eq!(
        one("attempt started", &[("FLOW_RUN", "1"), ("FLOW_TASK", "a")]).len(),
        1,
        "{text}"
    );

    // Run 2: two failed attempts with their exit code, a retry between, the downstream
    // task upstream_failed, the run failed because of `broken`.
    for n in ["1", "2"] {
        let a = one(
            "attempt ended",
            &[
                ("FLOW_RUN", "2"),
                ("FLOW_TASK", "broken"),
                ("FLOW_ATTEMPT", n),
            ],
        );
        assert_eq!(a.len(), 1, "attempt {n}:\n{text}");
        assert!(is(
            a[0],
            &[
                ("FLOW_RESULT", "failed"),
                ("FLOW_EXIT_CODE", "3"),
                ("PRIORITY", "4")
            ]
        ));
        assert_eq!(
            one(
                "attempt started",
                &[
                    ("FLOW_RUN", "2"),
                    ("FLOW_TASK", "broken"),
                    ("FLOW_ATTEMPT", n)
                ]
            )
            .len(),
            1,
            "{text}"
        );
    }
    let retry = one(
        "retry scheduled",
        &[("FLOW_RUN", "2"), ("FLOW_TASK", "broken")],
    );
    assert_eq!(retry.len(), 1, "{text}");
    assert_eq!(field(retry[0], "FLOW_ATTEMPT"), Some("2"));
    let wait: u64 = field(retry[0], "FLOW_RETRY_IN_MS")
        .and_then(|d| d.parse().ok())
        .expect("a delay");
    assert!((500..=1200).contains(&wait), "retry in {wait} ms");
    let after = one(
        "attempt ended",
        &[("FLOW_RUN", "2"), ("FLOW_TASK", "after")],
    );
    assert_eq!(after.len(), 1, "{text}");
    assert!(is(
        after[0],
        &[("FLOW_RESULT", "upstream_failed"), ("PRIORITY", "5")]
    ));
    let failed = one("run ended", &[("FLOW_RUN", "2")]);
    assert_eq!(failed.len(), 1, "{text}");
    assert!(is(
        failed[0],
        &[
            ("FLOW_RESULT", "failed"),
            ("PRIORITY", "4"),
            ("FLOW_FAILED_TASKS", "broken")
        ]
    ));

    // Run 3: skipped trigger, recovery, deadline. The attempt of `quick` that ended before
    // the restart, replayed from the journal, is not logged a second time.
    let skipped = one("trigger skipped", &[("FLOW_WORKFLOW", "slow")]);
    assert_eq!(skipped.len(), 1, "{text}");
    assert!(is(
        skipped[0],
        &[
            ("FLOW_RUN", "4"),
            ("FLOW_TRIGGER", "manual"),
            ("FLOW_RESULT", "skipped")
        ]
    ));
    assert_eq!(
        one(
            "run recovered",
            &[("FLOW_WORKFLOW", "slow"), ("FLOW_RUN", "3")]
        )
        .len(),
        1,
        "{text}"
    );
    assert_eq!(
        one(
            "attempt ended",
            &[("FLOW_RUN", "3"), ("FLOW_TASK", "quick")]
        )
        .len(),
        1,
        "{text}"
    );
    let deadline = one("deadline reached", &[("FLOW_RUN", "3")]);
    assert_eq!(deadline.len(), 1, "{text}");
    assert_eq!(field(deadline[0], "FLOW_TIMEOUT_MS"), Some("8000"));
    let s = one("attempt ended", &[("FLOW_RUN", "3"), ("FLOW_TASK", "s")]);
    assert_eq!(s.len(), 1, "{text}");
    assert_eq!(field(s[0], "FLOW_RESULT"), Some("canceled"));
    let timed_out = one("run ended", &[("FLOW_RUN", "3")]);
    assert!(is(
        timed_out[0],
        &[("FLOW_RESULT", "timed_out"), ("PRIORITY", "4")]
    ));

    // Run 5: the database trouble and its end.
    let trouble = one("database error", &[("FLOW_DATABASE", DB)]);
    assert!(!trouble.is_empty(), "{text}");
    assert!(is(trouble[0], &[("PRIORITY", "3")]));
    assert!(
        field(trouble[0], "FLOW_RECORDS_KEPT").is_some(),
        "{:#}",
        trouble[0]
    );
    assert!(
        field(trouble[0], "MESSAGE").is_some_and(|m| m.contains("kept in memory")),
        "{:#}",
        trouble[0]
    );
    assert_eq!(
        one(
            "run ended",
            &[("FLOW_RUN", "5"), ("FLOW_RESULT", "succeeded")]
        )
        .len(),
        1
    );

    // The journald layer alone: nothing of the supervisor came through its stdout/stderr
    // stream besides (each line would be there twice).
    let plain = harness::journal(
        &sb,
        &["_SYSTEMD_UNIT=supervisor-test.service", "_TRANSPORT=stdout"],
    );
    assert!(
        plain.is_empty(),
        "lines on stdout/stderr too:\n{}",
        story(&plain)
    );

    // Outside systemd (stderr a file here), readable lines on stderr: a run that began
    // and ended while no supervisor ran, picked up by one started by hand.
    sh(&sb, "systemctl stop supervisor-test.service").ok();
    sh(&sb, "systemctl start flow-ok.service").ok();
    let by_hand = sh(
        &sb,
        "timeout -s INT 4 flow supervise 2>/var/tmp/stderr; cat /var/tmp/stderr",
    );
    let lines = by_hand.stdout;
    for want in [
        "info: run 6 of ok started (systemctl)",
        "notice: run 6 of ok began while no supervisor ran",
        "info: ok/a: attempt 1 of run 6 succeeded",
        "info: run 6 of ok succeeded",
    ] {
        assert!(lines.contains(want), "no {want:?} on stderr:\n{lines}");
    }
    let first = lines.lines().next().unwrap_or_default();
    assert!(
        first.len() > 20 && first.as_bytes()[4] == b'-' && first.as_bytes()[13] == b':',
        "no time first: {first:?}"
    );
}

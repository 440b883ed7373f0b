//! The calendar validator against systemd's own parser: every expression that
//! `systemd-analyze calendar` accepts, flow accepts, and every one it rejects, flow rejects.
//!
//! Checked on the hand-written cases of `tests/data/schedule/calendar_cases.txt` and on
//! generated expressions, some well-formed, some token soup. Needs `systemd-analyze`
//! (systemd 252 is the reference): without it the test fails when `CI=true` and is skipped
//! loudly otherwise.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::process::Command;

use flow::compiler::schedule::calendar;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[test]
fn validator_agrees_with_systemd() {
    let Some(accepted_by_systemd) = systemd_acceptance() else {
        return;
    };
    let mut corpus: BTreeSet<String> = cases().into_iter().collect();
    let hand_written = corpus.len();
    corpus.extend(generated(2000));
    let corpus: Vec<String> = corpus.into_iter().collect();
    let systemd = accepted_by_systemd(&corpus);

    let mut disagreements = Vec::new();
    for (expr, systemd_ok) in corpus.iter().zip(systemd) {
        let flow = calendar::validate(expr);
        if flow.is_ok() != systemd_ok {
            disagreements.push(format!(
                "{expr:?}: systemd {}, flow {flow:?}",
                if systemd_ok { "accepts" } else { "rejects" }
            ));
        }
    }
    let accepted = corpus
        .iter()
        .filter(|e| calendar::validate(e).is_ok())
        .count();
    eprintln!(
        "calendar validator: {} expressions ({hand_written} hand-written), {accepted} accepted, {} disagreements",
        corpus.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "flow and systemd disagree:\n{}",
        disagreements.join("\n")
    );
    // The generator must reach both sides, or this test proves little.
    assert!(
        accepted > corpus.len() / 10 && accepted < corpus.len() * 9 / 10,
        "{accepted} of {}",
        corpus.len()
    );
}

/// The expressions of the hand-written case file.
fn cases() -> Vec<String> {
    let text = include_str!("data/schedule/calendar_cases.txt");
    text.lines()
        .filter(|line| line.starts_with(['+', '-']))
        .filter_map(|line| {
            let (_, rest) = line.split_once('"')?;
            Some(rest[..rest.rfind('"')?].to_string())
        })
        .collect()
}

/// `count` expressions from a fixed seed, so that a failure reproduces.
fn generated(count: usize) -> Vec<String> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = prop_oneof![3 => well_formed(), 1 => token_soup()];
    (0..count)
        .filter_map(|_| {
            strategy
                .new_tree(&mut runner)
                .ok()
                .map(|tree| tree.current())
        })
        .collect()
}

fn pick(items: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(items).prop_map(str::to_string).boxed()
}

/// Weekdays, date, time and zone, each maybe absent, with values near every boundary.
fn well_formed() -> impl Strategy<Value = String> {
    let weekday = pick(&[
        "Mon",
        "mon",
        "Monday",
        "Fri",
        "Sun",
        "SAT",
        "Tue",
        "Wednesday",
        "Thu",
    ]);
    let weekdays = prop::collection::vec((weekday.clone(), pick(&["", "..", "-"]), weekday), 1..3)
        .prop_map(|items| {
            let items: Vec<String> = items
                .into_iter()
                .map(|(a, sep, b)| {
                    if sep.is_empty() {
                        a
                    } else {
                        format!("{a}{sep}{b}")
                    }
                })
                .collect();
            items.join(",") + " "
        });
    // Mostly values in range for the part, plus the values just outside.
    // Mostly values in range for the part, and a few just outside.
    let year = chain(
        &[
            "2024", "2199", "23", "0", "70", "99", "2030", "1970", "1969",
        ],
        &["2", "5", "229", "230"],
    );
    let month = chain(
        &["1", "01", "2", "6", "12", "12", "7", "11", "13"],
        &["1", "3", "3", "11", "12"],
    );
    let day = chain(
        &["1", "01", "7", "15", "28", "29", "31", "3", "32"],
        &["1", "2", "7", "7", "27", "30", "31"],
    );
    let hour = chain(
        &["0", "00", "2", "9", "12", "23", "23", "3", "24"],
        &["1", "2", "6", "6", "23", "24", "0"],
    );
    let minute = chain(
        &["0", "00", "5", "30", "55", "59", "59", "15", "60"],
        &["1", "5", "15", "15", "59", "60"],
    );
    let seconds = prop_oneof![
        minute.clone(),
        pick(&[
            "0.5",
            "59.999999",
            "59.9999995",
            "00/0.5",
            "1.5..2",
            "01..03/0.5",
            "1..1",
            "00."
        ])
    ];
    let date = (
        prop::option::of(year),
        month,
        pick(&["-", "-", "-", "~"]),
        day,
    )
        .prop_map(|(year, month, sep, day)| match year {
            Some(year) => format!("{year}-{month}{sep}{day} "),
            None => format!("{month}{sep}{day} "),
        });
    let time = (hour, minute, prop::option::of(seconds)).prop_map(|(h, m, s)| match s {
        Some(s) => format!("{h}:{m}:{s}"),
        None => format!("{h}:{m}"),
    });
    let zone = pick(&[
        "",
        "",
        "",
        " UTC",
        " utc",
        " Europe/Berlin",
        " America/New_York",
        " Europe/Berln",
        " CET",
    ]);
    (
        prop::option::of(weekdays),
        prop::option::of(date),
        prop::option::of(time),
        zone,
    )
        .prop_map(|(w, d, t, z)| {
            let text = format!(
                "{}{}{}",
                w.unwrap_or_default(),
                d.unwrap_or_default(),
                t.unwrap_or_default()
            );
            // The parts above end in a space; usually drop it, sometimes keep it.
            let text = if z.is_empty() && text.len() % 3 != 0 {
                text.trim_end().to_string()
            } else {
                text
            };
            format!("{text}{z}")
        })
}

/// `*`, or a list of `start[..stop][/repeat]` drawn from `values` and `repeats`.
fn chain(
    values: &'static [&'static str],
    repeats: &'static [&'static str],
) -> BoxedStrategy<String> {
    let value = || pick(values);
    let component = prop_oneof![
        4 => value(),
        1 => (value(), value()).prop_map(|(start, stop)| format!("{start}..{stop}")),
        1 => (value(), pick(repeats)).prop_map(|(start, repeat)| format!("{start}/{repeat}")),
        1 => (value(), value(), pick(repeats)).prop_map(|(start, stop, repeat)| format!("{start}..{stop}/{repeat}")),
    ];
    prop_oneof![1 => Just("*".to_string()), 2 => prop::collection::vec(component, 1..3).prop_map(|c| c.join(","))].boxed()
}

/// Random runs of the grammar's tokens: mostly nonsense, meant to hit odd corners.
fn token_soup() -> impl Strategy<Value = String> {
    let token = pick(&[
        "Mon",
        "fri",
        "Sunday",
        "..",
        ".",
        ",",
        "-",
        "~",
        "*",
        "/",
        ":",
        " ",
        "  ",
        "0",
        "1",
        "5",
        "12",
        "29",
        "31",
        "59",
        "60",
        "2024",
        ".5",
        "@",
        "@1700000000",
        "daily",
        "weekly",
        "UTC",
        " UTC",
        "Europe/Berlin",
        "x",
    ]);
    prop::collection::vec(token, 1..9).prop_map(|tokens| tokens.concat())
}

/// A function telling, for each expression, whether systemd accepts it; `None` when
/// `systemd-analyze` is missing and this is not CI.
#[allow(clippy::type_complexity)]
fn systemd_acceptance() -> Option<Box<dyn Fn(&[String]) -> Vec<bool>>> {
    let present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is required when CI=true"
        );
        eprintln!(
            "\n*** SKIPPED schedule_calendar: systemd-analyze not found; install systemd to run it ***\n"
        );
        return None;
    }
    Some(Box::new(|exprs: &[String]| {
        // One call for all: systemd reports each rejected expression on stderr, by its text.
        let output = Command::new("systemd-analyze")
            .args(["calendar", "--"])
            .args(exprs)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .output()
            .expect("run systemd-analyze");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let rejected: BTreeSet<&str> = stderr
            .lines()
            .filter_map(|line| line.strip_prefix("Failed to parse calendar specification '"))
            .filter_map(|rest| rest.rsplit_once("': ").map(|(expr, _)| expr))
            .collect();
        let parsed = stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("Normalized form:"))
            .count();
        assert_eq!(
            parsed + rejected.len(),
            exprs.len(),
            "could not match systemd's output to its input:\n{stderr}"
        );
        exprs
            .iter()
            .map(|e| !rejected.contains(e.as_str()))
            .collect()
    }))
}

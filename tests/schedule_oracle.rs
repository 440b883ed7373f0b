//! The cron translation against two independent implementations: for each cron expression,
//! the next 10 times that systemd 252 computes for its translation (`systemd-analyze calendar
//! --iterations=10 --base-time=@… 'EXPR ZONE'`, all OnCalendar= values of one expression merged)
//! must be the times croner computes for the cron expression itself.
//!
//! Compared as instants (systemd prints them in UTC here), from several base times: month ends,
//! leap and non-leap Februaries, a year end, and the evening and the hour before each
//! daylight-saving change of 2024 in Europe/Berlin and America/New_York.
//!
//! The day rule is Vixie cron's on both sides: croner ORs day-of-month and day-of-week unless a
//! field is exactly `*`, while Vixie treats any field starting with `*` (`*/2`) as unrestricted
//! and then ANDs; croner's `dom_and_dow` option gives Vixie's result in that case.
//!
//! Around daylight-saving changes systemd and cron legitimately differ (see the docs of
//! `flow::compiler::schedule::cron`). A croner time that systemd lacks is allowed only when it is
//! one of these, and both kinds are counted, checked to occur, and pinned down exactly in
//! `daylight_saving_differences`:
//! - skipped: a fixed-time job whose local time does not exist that day; croner runs it right
//!   after the jump (its wall clock does not match the pattern), systemd not at all;
//! - repeated: a local time that happens twice; croner runs repeating jobs in both passes,
//!   systemd in one.
//!
//! Every other time must be equal, and systemd must never fire when croner does not.
//! Needs `systemd-analyze`: without it the test fails when `CI=true` and is skipped loudly
//! otherwise.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use flow::compiler::schedule::calendar;
use flow::compiler::schedule::cron::{CronSchedule, translate};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const ITERATIONS: usize = 10;

/// Hand-picked: month ends, February, leap years, the day rule, steps, names, seconds, macros,
/// and times that fall into daylight-saving changes.
const HAND_PICKED: &[&str] = &[
    // Plain times and steps.
    "* * * * *",
    "0 * * * *",
    "30 2 * * *",
    "0 0 * * *",
    "59 23 * * *",
    "0 12 * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "*/13 * * * *",
    "*/15 * * * *",
    "*/30 * * * *",
    "*/59 * * * *",
    "1-59/2 * * * *",
    "0-30/10 * * * *",
    "10-50/20 * * * *",
    "5/15 * * * *",
    "7/20 * * * *",
    "58/1 * * * *",
    "0,30 * * * *",
    "0,15,30,45 * * * *",
    "0 */2 * * *",
    "0 */3 * * *",
    "0 */5 * * *",
    "0 */23 * * *",
    "0 0-6/2 * * *",
    "0 1-10/3 * * *",
    "23 0-20/2 * * *",
    "0 9-17 * * *",
    "0 8,12,18 * * *",
    "0 22/1 * * *",
    // Month ends and February.
    "0 0 1 * *",
    "0 0 28 * *",
    "0 0 29 * *",
    "0 0 30 * *",
    "0 0 31 * *",
    "0 0 29-31 * *",
    "0 0 30,31 * *",
    "0 0 28,29 2 *",
    "0 0 29 2 *",
    "0 12 29 FEB *",
    "0 0 31 1,3,5,7,8,10,12 *",
    "0 0 31 2-4 *",
    "0 0 30 1-3 *",
    "59 23 31 12 *",
    "0 0 1 1 *",
    "0 0 */10 * *",
    "0 0 1-31/15 * *",
    "0 0 1-30/7 * *",
    "0 0 2-31/7 * *",
    "0 0 1-20/7 * *",
    "0 0 31/1 * *",
    "0 0 15 */2 *",
    "0 0 1 */3 *",
    "0 0 1 2-12/2 *",
    "0 0 1 JAN-DEC/3 *",
    // Weekdays.
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * 0,7",
    "0 0 * * 5-7",
    "0 0 * * 0-7",
    "0 0 * * 0-6",
    "0 0 * * */2",
    "0 0 * * 1-7/2",
    "0 0 * * 0/3",
    "0 0 * * Sun",
    "0 0 * * sat,SUN",
    "0 0 * * MON-fri",
    "0 0 * * sun-sat",
    "0 22 * * 1-5",
    "0 9-17 * * MON-FRI",
    "30 8 * * 1,3,5",
    "0 0 * * 6,0",
    "5 4 * * sun",
    "0 0 * FEB MON",
    "0 12 * 2 2",
    // Day-of-month OR day-of-week: both restricted.
    "0 0 1 * MON",
    "0 0 13 * FRI",
    "0 0 1,15 * 1",
    "0 0 29 2 MON",
    "0 0 29 2 0",
    "0 0 31 * SUN",
    "0 0 1-7 * 1",
    "0 0 8-14 * 2",
    "0 0 15 * 0-2",
    "0 0 30 2 MON",
    "0 0 31 * 0,6",
    "0 12 1-31/2 * MON",
    "0 0 25 12 5",
    "0 0 1 may sun",
    "0 0 1 1 MON",
    "0 0 4,8 * 3-4",
    "0 0 1-31 * MON",
    "0 0 1 * 0-7",
    // Vixie: a field starting with `*` is unrestricted for that rule, so both must match.
    "0 0 */2 * MON",
    "0 0 */2 * 1-5",
    "0 0 1 * */2",
    "0 0 */3 * */2",
    "0 0 */7 2 SUN",
    "0 0 */14 * 1",
    "0 0 */2 2 *",
    "0 6 * * */3",
    // Names.
    "0 0 1 JAN *",
    "0 0 1 jan-mar *",
    "0 0 1 Jun,DEC *",
    // Seconds first.
    "0 * * * * *",
    "* * * * * *",
    "*/10 * * * * *",
    "*/7 * * * * *",
    "15,45 * * * * *",
    "5/20 */2 * * * *",
    "30 15 10 * * *",
    "0 0 0 * * *",
    "59 59 23 31 12 *",
    "0 30 2 * * *",
    "30 30 2 * * *",
    "0 0 12 1 * MON",
    "1-10/3 0 0 * * *",
    "0 0 0 29 2 *",
    "0 0 0 */2 * 1",
    // Macros.
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    // Local times that do not exist or happen twice on daylight-saving days.
    "0 2 * * *",
    "59 2 * * *",
    "30 1 * * *",
    "0 3 * * *",
    "0 1 * * *",
    "30 2-3 * * *",
    "*/10 2 * * *",
    "0 1,2,3 * * *",
    "15 * * * *",
    "0 2 * * SUN",
    "30 2 31 3 *",
    "30 2 27 10 *",
    "30 1 3 11 *",
    "30 2 10 3 *",
    "30 2 * 3 0",
    "0 0-4 * * *",
    "*/15 0-4 * * *",
    "*/20 1-3 * * *",
    "0 30 1 * * *",
    "*/20 * 1-3 * * *",
    "45 1 * * *",
    "0 0 2 * * *",
];

/// A base time and the zone the calendar expressions run in.
struct Scenario {
    name: &'static str,
    zone: Tz,
    base: DateTime<Utc>,
}

fn scenarios() -> Vec<Scenario> {
    let utc = |name, y, m, d, h, min, s| Scenario {
        name,
        zone: Tz::UTC,
        base: at(Tz::UTC, y, m, d, h, min, s),
    };
    let local = |name, zone, y, m, d, h, min| Scenario {
        name,
        zone,
        base: at(zone, y, m, d, h, min, 0),
    };
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;
    vec![
        utc(
            "UTC, just before a 31-day month ends",
            2023,
            1,
            31,
            23,
            59,
            30,
        ),
        utc("UTC, February of a leap year", 2024, 2, 28, 12, 0, 0),
        utc("UTC, February of a common year", 2023, 2, 27, 0, 0, 0),
        utc("UTC, year end", 2023, 12, 31, 23, 58, 0),
        utc(
            "UTC, February 2100 (not a leap year)",
            2100,
            2,
            27,
            22,
            0,
            0,
        ),
        local(
            "Europe/Berlin, evening before spring forward",
            Berlin,
            2024,
            3,
            30,
            22,
            0,
        ),
        local(
            "Europe/Berlin, hour before spring forward",
            Berlin,
            2024,
            3,
            31,
            1,
            35,
        ),
        local(
            "Europe/Berlin, evening before fall back",
            Berlin,
            2024,
            10,
            26,
            22,
            0,
        ),
        local(
            "Europe/Berlin, hour before fall back",
            Berlin,
            2024,
            10,
            27,
            1,
            35,
        ),
        local(
            "America/New_York, evening before spring forward",
            New_York,
            2024,
            3,
            9,
            22,
            0,
        ),
        local(
            "America/New_York, hour before fall back",
            New_York,
            2024,
            11,
            3,
            0,
            35,
        ),
    ]
}

/// A local time that exists once in `zone`, as an instant.
fn at(zone: Tz, y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    let local = NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, min, s))
        .expect("valid date");
    zone.from_local_datetime(&local)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

#[test]
fn translations_fire_when_cron_does() {
    if !systemd_analyze_present() {
        return;
    }
    let mut expressions: Vec<String> = HAND_PICKED.iter().map(|e| e.to_string()).collect();
    let hand_picked = expressions.len();
    let mut seen: BTreeSet<String> = expressions.iter().cloned().collect();
    expressions.extend(
        generated(200)
            .into_iter()
            .filter(|e| seen.insert(e.clone())),
    );
    let translations: Vec<(String, Vec<String>)> = expressions
        .iter()
        .map(|expr| match translate(expr) {
            Ok(CronSchedule::Calendars(calendars)) => (expr.clone(), calendars),
            other => panic!("{expr}: {other:?}"),
        })
        .collect();
    for (expr, calendars) in &translations {
        for calendar in calendars {
            let zoned = format!("{calendar} Europe/Berlin");
            let info =
                calendar::validate(&zoned).unwrap_or_else(|e| panic!("{expr} → {zoned}: {e:?}"));
            assert!(info.has_timezone, "{zoned}");
        }
    }
    assert!(
        translations.len() >= 300,
        "only {} expressions",
        translations.len()
    );

    let scenarios = scenarios();
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|s| scope.spawn(|| compare(s, &translations)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("comparison thread"))
            .collect()
    });

    let mut failures = Vec::new();
    let (mut skipped, mut repeated, mut instants) = (0, 0, 0);
    for (scenario, report) in scenarios.iter().zip(&reports) {
        failures.extend(
            report
                .failures
                .iter()
                .map(|f| format!("[{}] {f}", scenario.name)),
        );
        skipped += report.skipped;
        repeated += report.repeated;
        instants += report.instants;
    }
    eprintln!(
        "cron oracle: {} expressions ({hand_picked} hand-picked) x {} base times in {} zones: {instants} \
         instants equal; documented differences: {skipped} skipped, {repeated} repeated",
        translations.len(),
        scenarios.len(),
        scenarios
            .iter()
            .map(|s| s.zone.name())
            .collect::<BTreeSet<_>>()
            .len(),
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The base times are chosen to cross daylight-saving changes: both kinds must show up.
    assert!(
        skipped > 0 && repeated > 0,
        "daylight-saving changes were not exercised"
    );
}

/// The two documented differences, exactly.
#[test]
fn daylight_saving_differences() {
    if !systemd_analyze_present() {
        return;
    }
    use chrono_tz::Europe::Berlin;
    let utc = |s: &str| s.parse::<DateTime<Utc>>().expect("instant");
    // 02:30 does not exist on 2024-03-31 in Berlin (02:00 → 03:00 CEST, 01:00 UTC).
    let base = at(Berlin, 2024, 3, 30, 22, 0, 0);
    assert_eq!(
        croner_times("30 2 * * *", Berlin, base, 2),
        [utc("2024-03-31T01:00:00Z"), utc("2024-04-01T00:30:00Z")],
        "cron runs the skipped 02:30 at 03:00"
    );
    assert_eq!(
        systemd_times(&["*-*-* 02:30:00 Europe/Berlin"], base, 2),
        [vec![
            utc("2024-04-01T00:30:00Z"),
            utc("2024-04-02T00:30:00Z")
        ]],
        "systemd skips it"
    );
    // 02:00-02:59 happens twice on 2024-10-27 in Berlin: 00:00-00:59 UTC (CEST), then
    // 01:00-01:59 UTC (CET).
    let base = at(Berlin, 2024, 10, 27, 1, 35, 0);
    let both_passes =
        ["00:00", "00:30", "01:00", "01:30", "02:00"].map(|t| utc(&format!("2024-10-27T{t}:00Z")));
    assert_eq!(
        croner_times("*/30 * * * *", Berlin, base, 5),
        both_passes,
        "cron runs in both passes"
    );
    let first_pass =
        ["00:00", "00:30", "02:00", "02:30", "03:00"].map(|t| utc(&format!("2024-10-27T{t}:00Z")));
    assert_eq!(
        systemd_times(&["*-*-* *:00/30:00 Europe/Berlin"], base, 5),
        [first_pass.to_vec()],
        "systemd in one"
    );
    // A fixed time in the repeated hour runs once on both sides, at its first occurrence.
    assert_eq!(
        croner_times("30 2 * * *", Berlin, base, 1),
        [utc("2024-10-27T00:30:00Z")]
    );
    assert_eq!(
        systemd_times(&["*-*-* 02:30:00 Europe/Berlin"], base, 1),
        [vec![utc("2024-10-27T00:30:00Z")]]
    );
}

#[derive(Default)]
struct Report {
    failures: Vec<String>,
    instants: usize,
    skipped: usize,
    repeated: usize,
}

/// All expressions in one scenario: one `systemd-analyze` run, then croner for each.
fn compare(scenario: &Scenario, translations: &[(String, Vec<String>)]) -> Report {
    let zone = match scenario.zone {
        Tz::UTC => "UTC",
        zone => zone.name(),
    };
    let zoned = |calendar: &String| format!("{calendar} {zone}");
    // Each distinct calendar once: with a zone, systemd forks for every time it computes.
    let unique: Vec<String> = translations
        .iter()
        .flat_map(|(_, calendars)| calendars.iter().map(zoned))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let blocks = systemd_blocks(&unique, scenario.base, ITERATIONS);
    let results: HashMap<&String, Block> = unique.iter().zip(blocks).collect();
    let mut report = Report::default();
    for (expr, calendars) in translations {
        let mut systemd = BTreeSet::new();
        for calendar in calendars {
            let block = &results[&zoned(calendar)];
            if let Some(original) = &block.original {
                // systemd prints an original form only when it differs from its own.
                report.failures.push(format!(
                    "{expr}: `{original}` is not canonical, systemd writes `{}`",
                    block.normalized
                ));
            }
            systemd.extend(block.times.iter().copied());
        }
        let systemd: Vec<DateTime<Utc>> = systemd.into_iter().take(ITERATIONS).collect();
        compare_one(expr, scenario, &systemd, &mut report);
    }
    report
}

fn compare_one(expr: &str, scenario: &Scenario, systemd: &[DateTime<Utc>], report: &mut Report) {
    let Some(&horizon) = systemd.get(ITERATIONS - 1) else {
        report.failures.push(format!(
            "{expr}: systemd gives only {} times",
            systemd.len()
        ));
        return;
    };
    let cron = oracle(expr);
    let base = scenario.base.with_timezone(&scenario.zone);
    let croner: Vec<DateTime<Tz>> = cron
        .iter_after(base)
        .take_while(|t| t.with_timezone(&Utc) <= horizon)
        .take(ITERATIONS * 20)
        .collect();
    let in_croner: BTreeSet<DateTime<Utc>> = croner.iter().map(|t| t.with_timezone(&Utc)).collect();
    for t in systemd.iter().filter(|t| !in_croner.contains(t)) {
        report
            .failures
            .push(format!("{expr}: systemd fires at {t}, cron does not"));
    }
    let zone = scenario.zone;
    let local = |t: &DateTime<Utc>| t.with_timezone(&zone).naive_local();
    for t in &croner {
        let instant = t.with_timezone(&Utc);
        if systemd.contains(&instant) {
            report.instants += 1;
        } else if !cron.is_time_matching(t).unwrap_or(true) {
            // Skipped: croner moved a run out of a gap, so it sits exactly where the clock jumped.
            let before = instant - chrono::Duration::seconds(1);
            if local(&before) + chrono::Duration::seconds(1) == t.naive_local() {
                report.failures.push(format!(
                    "{expr}: cron fires at {t}, off its pattern but not at a jump"
                ));
            }
            report.skipped += 1;
        } else if zone
            .from_local_datetime(&t.naive_local())
            .single()
            .is_none()
        {
            // Repeated: systemd must still fire once at this wall-clock time.
            if !systemd.iter().any(|s| local(s) == t.naive_local()) {
                report.failures.push(format!(
                    "{expr}: cron fires at {t} (twice-occurring), systemd never then"
                ));
            }
            report.repeated += 1;
        } else {
            report
                .failures
                .push(format!("{expr}: cron fires at {t}, systemd does not"));
        }
    }
}

/// croner, told to apply Vixie's day rule; it lacks `@midnight`.
fn oracle(expr: &str) -> Cron {
    let expr = if expr.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        expr
    };
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (day, weekday) = match fields[..] {
        [_, _, day, _, weekday] | [_, _, _, day, _, weekday] => (day, weekday),
        _ => ("*", "*"),
    };
    CronParser::builder()
        .seconds(Seconds::Optional)
        .sloppy_ranges(true) // `5/15`
        .dom_and_dow(day.starts_with('*') || weekday.starts_with('*'))
        .build()
        .parse(expr)
        .unwrap_or_else(|e| panic!("croner cannot parse {expr}: {e:?}"))
}

fn croner_times(expr: &str, zone: Tz, base: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    oracle(expr)
        .iter_after(base.with_timezone(&zone))
        .take(n)
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

fn systemd_times(calendars: &[&str], base: DateTime<Utc>, n: usize) -> Vec<Vec<DateTime<Utc>>> {
    let calendars: Vec<String> = calendars.iter().map(|c| c.to_string()).collect();
    systemd_blocks(&calendars, base, n)
        .into_iter()
        .map(|b| b.times)
        .collect()
}

/// What `systemd-analyze calendar` printed for one expression.
struct Block {
    original: Option<String>,
    normalized: String,
    times: Vec<DateTime<Utc>>,
}

fn systemd_blocks(calendars: &[String], base: DateTime<Utc>, iterations: usize) -> Vec<Block> {
    let output = Command::new("systemd-analyze")
        .arg("calendar")
        .arg(format!("--iterations={iterations}"))
        .arg(format!("--base-time=@{}", base.timestamp()))
        .arg("--")
        .args(calendars)
        .env("TZ", "UTC") // print every time in UTC
        .env("LC_ALL", "C")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "systemd-analyze failed:\n{stderr}"
    );
    let mut blocks: Vec<Block> = Vec::new();
    let mut original = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        match key.trim() {
            "Original form" => original = Some(value.to_string()),
            "Normalized form" => blocks.push(Block {
                original: original.take(),
                normalized: value.to_string(),
                times: Vec::new(),
            }),
            key if key == "Next elapse" || key.starts_with("Iter. #") => {
                if value == "never" {
                    continue;
                }
                let time = NaiveDateTime::parse_from_str(value, "%a %Y-%m-%d %H:%M:%S UTC")
                    .unwrap_or_else(|e| panic!("cannot read systemd's time {value:?}: {e}"));
                if let Some(block) = blocks.last_mut() {
                    block.times.push(time.and_utc());
                }
            }
            _ => {}
        }
    }
    assert_eq!(blocks.len(), calendars.len(), "one result per expression");
    blocks
}

/// `count` valid cron expressions from a fixed seed, so that a failure reproduces.
fn generated(count: usize) -> Vec<String> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = cron_expression();
    let mut found = Vec::new();
    let mut seen = HashMap::new();
    for _ in 0..count * 20 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let expr = tree.current();
        // Keep only what flow accepts (it rejects, e.g., days that never come).
        if matches!(translate(&expr), Ok(CronSchedule::Calendars(_)))
            && seen.insert(expr.clone(), ()).is_none()
        {
            found.push(expr);
            if found.len() == count {
                break;
            }
        }
    }
    found
}

fn cron_expression() -> impl Strategy<Value = String> {
    const MONTHS: &[&str] = &[
        "JAN", "feb", "Mar", "APR", "may", "JUN", "jul", "AUG", "sep", "OCT", "nov", "DEC",
    ];
    const DAYS: &[&str] = &["SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"];
    let second = field(0, 59, &[]);
    let time = (field(0, 59, &[]), field(0, 23, &[]));
    let date = (field(1, 31, &[]), field(1, 12, MONTHS), field(0, 7, DAYS));
    (prop::option::weighted(0.2, second), time, date).prop_map(
        |(second, (minute, hour), (day, month, weekday))| {
            let five = format!("{minute} {hour} {day} {month} {weekday}");
            match second {
                Some(second) => format!("{second} {five}"),
                None => five,
            }
        },
    )
}

/// One field: mostly `*`, single values and small lists; also ranges and every kind of step.
fn field(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    let value = move |v: u32| {
        let i = (v - min) as usize;
        // Names where the field has them, for about a third of the values.
        if !names.is_empty() && v.is_multiple_of(3) && i < names.len() {
            names[i].to_string()
        } else {
            v.to_string()
        }
    };
    let step = 1..=((max - min) / 2).max(1);
    let pair = (min..=max, min..=max).prop_map(move |(a, b)| (a.min(b), a.max(b)));
    let item = prop_oneof![
        3 => (min..=max).prop_map(value),
        1 => pair.clone().prop_map(move |(a, b)| format!("{}-{}", value(a), value(b))),
        1 => (pair, step.clone()).prop_map(move |((a, b), s)| format!("{}-{}/{s}", value(a), value(b))),
        1 => step.clone().prop_map(|s| format!("*/{s}")),
        1 => ((min..=max), step).prop_map(move |(a, s)| format!("{}/{s}", value(a))),
    ];
    prop_oneof![
        3 => Just("*".to_string()),
        4 => prop::collection::vec(item, 1..3).prop_map(|items| items.join(",")),
    ]
    .boxed()
}

fn systemd_analyze_present() -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "systemd-analyze is required when CI=true"
    );
    eprintln!(
        "\n*** SKIPPED schedule_oracle: systemd-analyze not found; install systemd to run it ***\n"
    );
    false
}

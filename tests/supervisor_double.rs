//! The supervisor's run semantics without systemd and without root, in milliseconds:
//! retries and their backoff, run deadlines, the overlap rules and cancel, driven through
//! its test double (`flow::supervisor::bench::Double`), which feeds it the signals systemd
//! 252 sends and keeps every call it makes to PID 1. Each test checks what the supervisor
//! records in its history and which units it starts and stops; the same behaviours end to
//! end, on a real systemd, are in `tests/e2e/supervisor.rs`.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use flow::store::Run;
use flow::supervisor::bench::{Call, Double, End};

/// A supervisor of the workflow `yaml` named `name`, and the directory it works in.
fn double(name: &str, yaml: &str) -> (Double, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Double::new(dir.path(), name, yaml).expect("the double");
    (d, dir)
}

fn run(d: &Double, id: i64) -> Run {
    let wf = &d.def().name;
    d.store()
        .run(wf, id)
        .expect("read the history")
        .unwrap_or_else(|| panic!("no run {id} of {wf} in the history"))
}

/// The results of the attempts of `task` in run `id`, oldest first.
fn results(d: &Double, id: i64, task: &str) -> Vec<String> {
    d.store()
        .attempts(id)
        .expect("read the attempts")
        .into_iter()
        .filter(|a| a.task == task)
        .map(|a| a.outcome.brief())
        .collect()
}

/// Every run of the workflow, oldest first: (id, trigger, result).
fn runs(d: &Double) -> Vec<(i64, String, Option<String>)> {
    (1..=d.store().max_run_id().expect("max run id"))
        .filter_map(|id| d.store().run(&d.def().name, id).expect("read a run"))
        .map(|r| {
            (
                r.id,
                r.trigger.as_str().to_string(),
                r.result.map(|x| x.as_str().to_string()),
            )
        })
        .collect()
}

/// The units the supervisor started, in order, among `calls`.
fn starts(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Start(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

/// The units the supervisor stopped, in order, among `calls`.
fn stops(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Stop(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn unit(d: &Double, task: &str) -> String {
    d.unit(task).expect("a task of the workflow")
}

/// When the supervisor wakes next, checked to lie `after` the moment between `t0` and
/// `t1` when it was scheduled, give or take `spread` (a delay's jitter). (A millisecond
/// early is fine: the supervisor counts a delay from the attempt's end as systemd stamps
/// it, in µs of the wall clock.)
fn wakes_after(d: &Double, t0: Instant, t1: Instant, after: Duration, spread: Duration) -> Instant {
    let at = d.wakes_at().expect("the supervisor to wake by itself");
    assert!(
        at + Duration::from_millis(1) >= t0 + after && at <= t1 + after + spread,
        "wakes {:?} after it was scheduled, not {after:?} (+ up to {spread:?})",
        at.saturating_duration_since(t0)
    );
    at
}

const RETRY3: &str = "
tasks:
  flaky:
    run: 'false'
    retries: 3
    retry_delay: 1s
  down:
    needs: [flaky]
    run: 'true'
  after:
    needs: [flaky]
    when: always
    run: 'true'
";

/// A task that fails twice is started again by the supervisor after its delay each time,
/// alone (what needs it waits for its final outcome), and succeeds the third time; then
/// what needs it runs once, `always` included. (End to end:
/// `retries_succeed_on_the_third_attempt_and_downstream_runs_once`.)
#[test]
fn a_task_failing_then_succeeding_is_started_again_after_its_delay() {
    let (mut d, _dir) = double("retry3", RETRY3);
    d.begin_run(Some("manual")).unwrap();
    // The run unit pulls every task in; those that need `flaky` wait for it.
    d.task_queued("down").unwrap();
    d.task_queued("after").unwrap();
    for attempt in 1..=2 {
        let t0 = Instant::now();
        d.task_runs("flaky", End::Exit(1)).unwrap();
        let t1 = Instant::now();
        if attempt == 1 {
            // systemd fails what requires it, and skips what waits for its final outcome.
            d.queued_task_ends("down", "dependency").unwrap();
            d.queued_task_ends("after", "done").unwrap();
            d.run_job_ends("done").unwrap();
        }
        assert!(d.holds_a_run(), "a run waiting for a retry is held");
        let due = wakes_after(&d, t0, t1, Duration::from_secs(1), Duration::ZERO);
        assert_eq!(starts(&d.take_calls()), Vec::<String>::new());
        d.fire_timers(due - Duration::from_millis(1)).unwrap();
        assert_eq!(starts(&d.take_calls()), Vec::<String>::new(), "too early");
        d.fire_timers(due).unwrap();
        assert_eq!(
            starts(&d.take_calls()),
            [unit(&d, "flaky")],
            "attempt {attempt}: only the failed task is started again"
        );
        assert_eq!(run(&d, 1).result, None, "the run goes on");
    }
    d.task_runs("flaky", End::Success).unwrap();
    assert_eq!(
        starts(&d.take_calls()),
        [unit(&d, "down"), unit(&d, "after")],
        "what needs it, once it succeeded"
    );
    assert!(
        d.marker("flaky", "ok"),
        "its success for the units' conditions"
    );
    // `down` requires `flaky`, whose start job is skipped by its `.ok` condition.
    d.task_not_run("flaky", "done").unwrap();
    d.task_runs("down", End::Success).unwrap();
    d.task_runs("after", End::Success).unwrap();

    let r = run(&d, 1);
    assert_eq!(r.result.map(|r| r.as_str()), Some("succeeded"));
    assert_eq!(r.trigger.as_str(), "manual");
    assert_eq!(
        results(&d, 1, "flaky"),
        ["failed (exit 1)", "failed (exit 1)", "succeeded"]
    );
    assert_eq!(results(&d, 1, "down"), ["succeeded"]);
    assert_eq!(results(&d, 1, "after"), ["succeeded"]);
    let flaky: Vec<_> = d
        .store()
        .attempts(1)
        .unwrap()
        .into_iter()
        .filter(|a| a.task == "flaky")
        .collect();
    let ids: std::collections::BTreeSet<_> = flaky
        .iter()
        .filter_map(|a| a.invocation_id.clone())
        .collect();
    assert_eq!(ids.len(), 3, "each attempt its own activation: {flaky:#?}");
    assert!(
        flaky.windows(2).all(|w| w[0].ended_us <= w[1].started_us),
        "{flaky:#?}"
    );
    assert!(
        !d.holds_a_run(),
        "the run is over: nothing holds a trigger back"
    );
    let last_end = d
        .store()
        .attempts(1)
        .unwrap()
        .iter()
        .filter_map(|a| a.ended_us)
        .max();
    assert_eq!(r.ended_us, last_end, "the run ends when its last task did");
}

const EXHAUST: &str = "
tasks:
  first:
    run: 'true'
  broken:
    needs: [first]
    run: exit 7
    retries: 2
    retry_delay: 1s
    backoff: exponential
  down:
    needs: [broken]
    run: echo never
  alert:
    needs: [broken]
    when: on_failure
    run: 'true'
";

/// Retries exhausted: the delays double (exponential backoff: 1 s, then 2 s, each with up
/// to 10 % jitter, counted from the attempt's end), the task's failure is final (its
/// `.done` marker written), what requires it is recorded `upstream_failed` without being
/// started, the `on_failure` task is started once, and the run fails. (End to end:
/// `exhausted_retries_fail_downstream_and_run_on_failure_once`.)
#[test]
fn retries_exhausted_back_off_fail_the_run_and_start_on_failure_once() {
    let (mut d, _dir) = double("exhaust", EXHAUST);
    d.begin_run(None).unwrap();
    for t in ["broken", "down", "alert"] {
        d.task_queued(t).unwrap();
    }
    d.task_runs("first", End::Success).unwrap();
    let mut t0 = Instant::now();
    d.task_runs("broken", End::Exit(7)).unwrap();
    let mut t1 = Instant::now();
    d.queued_task_ends("down", "dependency").unwrap();
    d.queued_task_ends("alert", "done").unwrap();
    d.run_job_ends("done").unwrap();
    for delay in [1, 2].map(Duration::from_secs) {
        let due = wakes_after(&d, t0, t1, delay, delay / 10);
        d.fire_timers(t0 + delay - Duration::from_millis(1))
            .unwrap();
        assert_eq!(starts(&d.take_calls()), Vec::<String>::new(), "{delay:?}");
        d.fire_timers(due).unwrap();
        assert_eq!(starts(&d.take_calls()), [unit(&d, "broken")], "{delay:?}");
        assert!(!d.marker("broken", "done"), "final before its last try");
        t0 = Instant::now();
        d.task_runs("broken", End::Exit(7)).unwrap();
        t1 = Instant::now();
    }
    // Final: the marker the `always`/`on_failure` conditions read, and only `alert` starts.
    assert!(d.marker("broken", "done"));
    assert_eq!(starts(&d.take_calls()), [unit(&d, "alert")]);
    assert_eq!(d.wakes_at(), None, "no retry left");
    // `alert` wants `broken`, whose start job its `.done` condition skips.
    d.task_not_run("broken", "done").unwrap();
    d.task_runs("alert", End::Success).unwrap();
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("failed"));
    assert_eq!(results(&d, 1, "first"), ["succeeded"]);
    assert_eq!(
        results(&d, 1, "broken"),
        ["failed (exit 7)", "failed (exit 7)", "failed (exit 7)"]
    );
    assert_eq!(results(&d, 1, "down"), ["upstream_failed"]);
    assert_eq!(results(&d, 1, "alert"), ["succeeded"]);
    assert_eq!(starts(&d.take_calls()), Vec::<String>::new());
}

const DEADLINE: &str = "
timeout: 2s
tasks:
  slow:
    run: sleep 60
  later:
    needs: [slow]
    run: echo never
  final:
    needs: [slow]
    when: always
    run: 'true'
  alert:
    needs: [slow]
    when: on_failure
    run: 'true'
";

/// A run past its deadline: the supervisor stops the run unit, then each task not done
/// before the tasks it needs (an `always` task waiting for a running one would otherwise
/// start when that one stops), then the begin unit. What ran is recorded canceled with its
/// activation, what waited canceled, nothing is started, and the run timed out. (End to
/// end: `deadline_cancels_a_long_run`, `a_stopped_run_runs_no_always_or_on_failure_task`.)
#[test]
fn a_run_past_its_deadline_is_stopped_and_times_out() {
    let (mut d, _dir) = double("dl", DEADLINE);
    let t0 = Instant::now();
    d.begin_run(Some("timer")).unwrap();
    let t1 = Instant::now();
    for t in ["later", "final", "alert"] {
        d.task_queued(t).unwrap();
    }
    d.task_starts("slow").unwrap();
    let due = wakes_after(&d, t0, t1, Duration::from_secs(2), Duration::ZERO);
    d.fire_timers(t0 + Duration::from_millis(1900)).unwrap();
    assert_eq!(stops(&d.take_calls()), Vec::<String>::new(), "too early");
    d.fire_timers(due).unwrap();
    let stopped = stops(&d.take_calls());
    let def = d.def().clone();
    assert_eq!(stopped.first(), Some(&def.run_unit()), "{stopped:?}");
    assert_eq!(stopped.last(), Some(&def.begin_unit()), "{stopped:?}");
    let at = |t: &str| {
        stopped
            .iter()
            .position(|u| *u == unit(&d, t))
            .unwrap_or_else(|| panic!("{t} not stopped: {stopped:?}"))
    };
    for t in ["later", "final", "alert"] {
        assert!(at(t) < at("slow"), "{t} after what it needs: {stopped:?}");
    }
    assert_eq!(stopped.len(), 6, "{stopped:?}");
    assert_eq!(run(&d, 1).result, None, "over once systemd has stopped it");
    // What systemd does with those stops.
    d.run_job_ends("canceled").unwrap();
    for t in ["alert", "final", "later"] {
        d.queued_task_ends(t, "canceled").unwrap();
    }
    d.task_stopped("slow").unwrap();

    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("timed_out"));
    for t in ["slow", "later", "final", "alert"] {
        assert_eq!(results(&d, 1, t), ["canceled"], "{t}");
    }
    let attempts = d.store().attempts(1).unwrap();
    let slow = attempts.iter().find(|a| a.task == "slow").unwrap();
    assert!(
        slow.invocation_id.is_some() && slow.started_us.is_some(),
        "{slow:?}"
    );
    assert_eq!(
        starts(&d.take_calls()),
        Vec::<String>::new(),
        "started after the stop"
    );
    assert_eq!(d.wakes_at(), None);
}

/// A deadline that passes while the run waits for a retry (systemd's part of it is over):
/// the retry never comes, the task is recorded canceled after its failed attempt, and the
/// run times out at once.
#[test]
fn a_deadline_during_a_retry_wait_ends_the_run_without_the_retry() {
    let yaml = "
timeout: 3s
tasks:
  flaky:
    run: 'false'
    retries: 2
    retry_delay: 10s
";
    let (mut d, _dir) = double("dlr", yaml);
    let t0 = Instant::now();
    d.begin_run(None).unwrap();
    let t1 = Instant::now();
    d.task_runs("flaky", End::Exit(1)).unwrap();
    d.run_job_ends("done").unwrap();
    assert!(d.holds_a_run());
    // The deadline comes before the retry.
    let due = wakes_after(&d, t0, t1, Duration::from_secs(3), Duration::ZERO);
    d.take_calls();
    d.fire_timers(due).unwrap();
    let calls = d.take_calls();
    let def = d.def().clone();
    assert_eq!(
        stops(&calls),
        [def.run_unit(), unit(&d, "flaky"), def.begin_unit()]
    );
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("timed_out"));
    assert_eq!(results(&d, 1, "flaky"), ["failed (exit 1)", "canceled"]);
    assert!(!d.holds_a_run());
    d.fire_timers(t1 + Duration::from_secs(11)).unwrap();
    assert_eq!(
        starts(&d.take_calls()),
        Vec::<String>::new(),
        "the retry came all the same"
    );
}

const CANCEL: &str = "
tasks:
  long:
    run: sleep 60
  next:
    needs: [long]
    run: 'true'
    retries: 1
  report:
    needs: [next]
    when: always
    run: 'true'
";

/// `flow cancel` mid-run stops the run unit first (its start job ends `canceled`), then
/// the tasks: the run is canceled, the running task recorded canceled with its
/// activation, the waiting ones canceled, and the supervisor starts nothing of it, not
/// even the `always` task. (End to end:
/// `flow_cancel_stops_the_run_and_starts_nothing_of_it`.)
#[test]
fn flow_cancel_mid_run_cancels_it_and_starts_nothing() {
    let (mut d, _dir) = double("cx", CANCEL);
    d.begin_run(Some("manual")).unwrap();
    d.task_queued("next").unwrap();
    d.task_queued("report").unwrap();
    d.task_starts("long").unwrap();
    d.take_calls();
    // What `flow cancel` has systemd do: the run unit's start job is canceled; then here
    // `long` is stopped before what waits for it, whose job systemd fails (`dependency`)
    // when the start job of a unit it requires is canceled: with the run canceled, that
    // settles `next` without starting the `always` task after it.
    d.run_job_ends("canceled").unwrap();
    d.task_stopped("long").unwrap();
    d.queued_task_ends("next", "dependency").unwrap();
    d.queued_task_ends("report", "canceled").unwrap();
    d.idle_unit_stopped(&d.def().begin_unit()).unwrap();

    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("canceled"));
    for t in ["long", "next", "report"] {
        assert_eq!(results(&d, 1, t), ["canceled"], "{t}");
    }
    let long = d.store().attempts(1).unwrap();
    let long = long.iter().find(|a| a.task == "long").unwrap();
    assert!(long.invocation_id.is_some(), "{long:?}");
    let calls = d.take_calls();
    assert_eq!(starts(&calls), Vec::<String>::new());
    assert_eq!(
        stops(&calls),
        Vec::<String>::new(),
        "flow cancel stops, not the supervisor"
    );
    assert!(!d.holds_a_run());
    assert_eq!(d.wakes_at(), None);
}

/// `flow cancel` while the supervisor waits to retry a task: the run has no job left to
/// cancel, so `flow cancel` leaves a request naming the held run, then stops the units;
/// the supervisor ends the run canceled at the first stop it sees, and the retry never
/// comes. (End to end: `flow_cancel_between_retries_stops_them`.)
#[test]
fn flow_cancel_between_retries_ends_the_run_and_the_retries() {
    let yaml = "
tasks:
  flaky:
    run: 'false'
    retries: 3
    retry_delay: 5s
";
    let (mut d, _dir) = double("between", yaml);
    d.begin_run(Some("manual")).unwrap();
    let t0 = Instant::now();
    d.task_runs("flaky", End::Exit(1)).unwrap();
    d.run_job_ends("done").unwrap();
    assert!(d.holds_a_run());
    assert!(d.request_cancel(), "no held run to cancel");
    let def = d.def().clone();
    d.idle_unit_stopped(&def.run_unit()).unwrap();
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("canceled"));
    d.idle_unit_stopped(&unit(&d, "flaky")).unwrap();
    d.idle_unit_stopped(&def.begin_unit()).unwrap();
    assert_eq!(results(&d, 1, "flaky"), ["failed (exit 1)", "canceled"]);
    assert!(!d.holds_a_run());
    assert_eq!(d.wakes_at(), None);
    d.fire_timers(t0 + Duration::from_secs(6)).unwrap();
    assert_eq!(
        starts(&d.take_calls()),
        Vec::<String>::new(),
        "a retry after the cancel"
    );
    // The next run is a run of its own.
    d.begin_run(Some("manual")).unwrap();
    d.task_runs("flaky", End::Success).unwrap();
    d.run_job_ends("done").unwrap();
    assert_eq!(run(&d, 2).result.map(|r| r.as_str()), Some("succeeded"));
}

/// `overlap: skip`: triggers while a run goes, from a timer's trigger unit and from `flow
/// run`, are recorded as skipped runs of their own (their trigger, no attempts), the
/// running run goes on untouched, and the next run gets the next number. (End to end:
/// `overlap_skip_records_skipped_runs`.)
#[test]
fn overlap_skip_records_each_skipped_trigger_as_a_run() {
    let yaml = "
overlap: skip
tasks:
  long:
    run: sleep 3
";
    let (mut d, _dir) = double("ov", yaml);
    d.begin_run(Some("manual")).unwrap();
    d.task_starts("long").unwrap();
    d.take_calls();
    d.trigger_skipped("timer").unwrap();
    d.run_skipped("manual").unwrap();
    let calls = d.take_calls();
    assert_eq!(starts(&calls), Vec::<String>::new());
    assert_eq!(stops(&calls), Vec::<String>::new());
    assert_eq!(
        runs(&d),
        [
            (1, "manual".into(), None),
            (2, "timer".into(), Some("skipped".into())),
            (3, "manual".into(), Some("skipped".into())),
        ]
    );
    for id in [2, 3] {
        assert_eq!(d.store().attempts(id).unwrap(), []);
        let r = run(&d, id);
        assert_eq!(
            r.ended_us,
            Some(r.started_us),
            "a skip is over when it happens"
        );
    }
    d.task_ends("long", End::Success).unwrap();
    d.run_job_ends("done").unwrap();
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("succeeded"));
    assert_eq!(results(&d, 1, "long"), ["succeeded"]);
    d.begin_run(None).unwrap();
    d.task_runs("long", End::Success).unwrap();
    d.run_job_ends("done").unwrap();
    assert_eq!(
        runs(&d)[3],
        (4, "systemctl".into(), Some("succeeded".into()))
    );
}

/// `overlap: queue`: the trigger unit waits while a run goes, also while the supervisor
/// holds the run for a retry after systemd's part of it ended (its hold file is what the
/// trigger reads), and starts the queued run once the hold is gone; that run is a run of
/// its own, begun after the first ended, and nothing is recorded skipped. (End to end:
/// `overlap_queue_starts_one_run_after_the_running_one`.)
#[test]
fn overlap_queue_runs_after_the_held_run_ends() {
    let yaml = "
overlap: queue
tasks:
  flaky:
    run: 'false'
    retries: 1
    retry_delay: 2s
";
    let (mut d, _dir) = double("q", yaml);
    d.begin_run(Some("manual")).unwrap();
    d.task_runs("flaky", End::Exit(1)).unwrap();
    d.run_job_ends("done").unwrap();
    d.trigger_waits().unwrap();
    assert!(d.holds_a_run(), "nothing keeps the queued trigger waiting");
    let due = d.wakes_at().unwrap();
    d.fire_timers(due).unwrap();
    assert_eq!(starts(&d.take_calls()), [unit(&d, "flaky")]);
    assert!(d.holds_a_run());
    d.task_runs("flaky", End::Success).unwrap();
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("succeeded"));
    assert!(!d.holds_a_run(), "the queued trigger would wait on");
    // The trigger unit starts its run, then ends.
    d.begin_run(Some("manual")).unwrap();
    d.trigger_ends().unwrap();
    d.task_runs("flaky", End::Success).unwrap();
    d.run_job_ends("done").unwrap();
    let (first, second) = (run(&d, 1), run(&d, 2));
    assert_eq!(second.result.map(|r| r.as_str()), Some("succeeded"));
    assert_eq!(second.trigger.as_str(), "manual");
    assert!(
        Some(second.started_us) >= first.ended_us,
        "the queued run began before the first ended: {first:?} {second:?}"
    );
    assert_eq!(runs(&d).len(), 2, "{:?}", runs(&d));
}

const REPLACE: &str = "
overlap: replace
tasks:
  slow:
    run: sleep 60
    retries: 1
    retry_delay: 30s
  after:
    needs: [slow]
    run: 'true'
";

/// `overlap: replace` while a task runs: the trigger stops the run (as `flow cancel`
/// does) and begins a new one. The first is recorded canceled, the second runs to its
/// end with its own number, and the supervisor itself stopped nothing. (End to end:
/// `overlap_replace_cancels_the_running_run`.)
#[test]
fn overlap_replace_cancels_the_running_run_and_begins_anew() {
    let (mut d, _dir) = double("rp", REPLACE);
    d.begin_run(Some("timer")).unwrap();
    d.task_queued("after").unwrap();
    d.task_starts("slow").unwrap();
    d.take_calls();
    d.run_job_ends("canceled").unwrap();
    d.queued_task_ends("after", "canceled").unwrap();
    d.task_stopped("slow").unwrap();
    d.begin_run(Some("manual")).unwrap();
    d.task_queued("after").unwrap();
    d.task_runs("slow", End::Success).unwrap();
    d.task_runs("after", End::Success).unwrap();
    d.run_job_ends("done").unwrap();

    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("canceled"));
    assert_eq!(
        results(&d, 1, "slow"),
        ["canceled"],
        "no retry of a stopped task"
    );
    assert_eq!(results(&d, 1, "after"), ["canceled"]);
    let second = run(&d, 2);
    assert_eq!(
        (second.trigger.as_str(), second.result.map(|r| r.as_str())),
        ("manual", Some("succeeded"))
    );
    assert_eq!(results(&d, 2, "slow"), ["succeeded"]);
    assert_eq!(results(&d, 2, "after"), ["succeeded"]);
    let calls = d.take_calls();
    assert_eq!(stops(&calls), Vec::<String>::new());
    assert_eq!(starts(&calls), Vec::<String>::new());
}

/// `overlap: replace` while the supervisor holds the run for a retry: the trigger's
/// cancel request ends it canceled as the new run begins, and its retry never comes.
#[test]
fn overlap_replace_during_a_retry_wait_ends_the_held_run() {
    let (mut d, _dir) = double("rp", REPLACE);
    d.begin_run(Some("timer")).unwrap();
    d.task_runs("slow", End::Exit(1)).unwrap();
    d.queued_task_ends("after", "dependency").ok();
    d.run_job_ends("done").unwrap();
    assert!(d.request_cancel());
    d.begin_run(Some("manual")).unwrap();
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("canceled"));
    assert_eq!(results(&d, 1, "slow"), ["failed (exit 1)", "canceled"]);
    assert_eq!(results(&d, 1, "after"), ["canceled"]);
    assert_eq!(run(&d, 2).result, None, "the new run goes");
    d.take_calls();
    d.fire_timers(Instant::now() + Duration::from_secs(31))
        .unwrap();
    assert_eq!(
        starts(&d.take_calls()),
        Vec::<String>::new(),
        "the old run's retry"
    );
}

/// A run begun by a plain `systemctl start` while the supervisor holds the last one for a
/// retry (no trigger asked it to stop): the supervisor ends the held run itself, stopping
/// what of it had not ended, and follows the new one.
#[test]
fn a_run_begun_while_one_is_held_ends_the_held_one() {
    let (mut d, _dir) = double("rp", REPLACE);
    d.begin_run(None).unwrap();
    d.task_runs("slow", End::Exit(1)).unwrap();
    d.run_job_ends("done").unwrap();
    d.take_calls();
    d.begin_run(None).unwrap();
    let calls = d.take_calls();
    assert_eq!(stops(&calls), [unit(&d, "slow"), unit(&d, "after")]);
    assert_eq!(run(&d, 1).result.map(|r| r.as_str()), Some("canceled"));
    assert_eq!(results(&d, 1, "slow"), ["failed (exit 1)", "canceled"]);
    assert_eq!(results(&d, 1, "after"), ["canceled"]);
    d.task_runs("slow", End::Success).unwrap();
    d.task_runs("after", End::Success).unwrap();
    d.run_job_ends("done").unwrap();
    assert_eq!(run(&d, 2).result.map(|r| r.as_str()), Some("succeeded"));
}

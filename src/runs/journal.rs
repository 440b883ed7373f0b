//! The last run of a workflow as the journal tells it.
//!
//! systemd unloads a unit once it is inactive and nothing references it, and with it goes
//! its `Result`, exit status, timestamps and `InvocationID`: a task that succeeded a minute
//! ago reads like one that never ran. The manager logs every step of every unit with
//! structured fields (`UNIT`, `INVOCATION_ID`, `MESSAGE_ID`, `UNIT_RESULT`, `JOB_RESULT`,
//! `EXIT_CODE`, `EXIT_STATUS`), and journald keeps them whether the unit is loaded or not,
//! so the journal is where a finished run is read back from.
//!
//! The journal is read newest first and only back to the latest start of the workflow's
//! begin unit (the start of the last run), so the cost does not grow with history.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use super::TaskState;
use crate::systemd::{JobResult, journal};
use crate::vocabulary::Outcome;

/// `MESSAGE_ID`s of the manager's messages (systemd's `sd-messages.h`).
pub(crate) const STARTING: &str = "7d4958e842da4a758f6c1cdc7b36dcc5";
const SUCCESS: &str = "7ad2d189f7e94e70a38c781354912448";
const FAILURE_RESULT: &str = "d9b373ed55a64feb8242e02dbe79a49c";
const PROCESS_EXIT: &str = "98e322203f7a4ed290d09fe03c09fe15";
const SKIPPED: &str = "0e4284a0caca4bfc81c0bb6786972673";
/// "Finished ...": a start job done.
const JOB_DONE: &str = "39f53479d3a045ac8e11786248231fbf";

/// What the journal says about one task in the last run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `None`: started but no end logged yet.
    pub state: Option<TaskState>,
    pub invocation_id: Option<String>,
    /// Realtime µs of "Starting..." and of the final message.
    pub started: Option<u64>,
    pub ended: Option<u64>,
    /// The manager's result (`exit-code`, `signal`, `timeout`, `oom-kill`...), waiting for
    /// the process-exit message that carries the status.
    unit_result: Option<String>,
    /// `state` is a user manager's job end, which an older message of the same activation
    /// may correct (an `ExecCondition=` skip is logged before its job ends "done").
    tentative: bool,
}

/// The last run: whether its start was found, and each task's record by unit name.
#[derive(Debug, Default)]
pub struct LastRun {
    /// Realtime µs of the begin unit's start: the run's start. `None`: never ran.
    pub begun: Option<u64>,
    pub tasks: HashMap<String, Record>,
}

/// Reads the last run of the units from the journal (`journalctl`): `begin` opens each
/// run, `tasks` are the task units. `user`: the calling user's manager.
pub fn last_run(user: bool, begin: &str, tasks: &[String]) -> std::io::Result<LastRun> {
    let (field, _) = journal::unit_fields(user);
    let mut cmd = journal::json();
    cmd.arg("-r");
    // The user's manager runs as the user, and logs no `_COMM=systemd` on every line (its
    // unit's output would not match either): the user's entries, with the unit fields.
    if user {
        cmd.arg(format!("_UID={}", nix::unistd::getuid()));
    } else {
        journal::manager_messages(&mut cmd, false);
    }
    cmd.arg(format!("{field}={begin}"));
    for t in tasks {
        cmd.arg(format!("{field}={t}"));
    }
    sync();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut out = LastRun::default();
    let mut reached = false;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if apply(&mut out, &entry, field, begin) {
                reached = true;
                break;
            }
        }
    }
    if reached {
        // Stop journalctl if it still has older history to print.
        let _ = child.kill();
        let _ = child.wait();
        return Ok(out);
    }
    let mut complaint = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut complaint);
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(journal::unreadable(complaint.trim()));
    }
    Ok(out)
}

/// Makes journald write what it has received before the journal is read.
pub use crate::systemd::journal::sync;

/// Folds one entry (newest first) into `run`; true once the run's start was reached.
fn apply(run: &mut LastRun, entry: &serde_json::Value, field: &str, begin: &str) -> bool {
    let s = |k: &str| entry.get(k).and_then(|v| v.as_str());
    let (Some(unit), Some(time)) = (
        s(field),
        s("__REALTIME_TIMESTAMP").and_then(|t| t.parse::<u64>().ok()),
    ) else {
        return false;
    };
    let id = s("MESSAGE_ID").unwrap_or_default();
    if unit == begin {
        if id == STARTING {
            run.begun = Some(time);
            return true;
        }
        return false;
    }
    let rec = run.tasks.entry(unit.to_string()).or_default();
    // A user manager tags its messages with `USER_INVOCATION_ID` (and `USER_UNIT`).
    let invocation = s("INVOCATION_ID")
        .or_else(|| s("USER_INVOCATION_ID"))
        .filter(|i| !i.is_empty());
    // Messages of an earlier activation in the same run (a retry) are older than the final
    // one already recorded: only fill in what belongs to the same invocation.
    let same = rec.invocation_id.is_none() || invocation == rec.invocation_id.as_deref();
    match id {
        SUCCESS if rec.state.is_none() => {
            rec.state = Some(TaskState::Succeeded);
            rec.ended = Some(time);
            rec.invocation_id = invocation.map(str::to_string);
        }
        FAILURE_RESULT if rec.state.is_none() => {
            let result = s("UNIT_RESULT").unwrap_or("exit-code").to_string();
            // The exit status comes with its own message (below); 1 until then.
            let outcome = Outcome::of_result(&JobResult::Failed, Some(&result), 1);
            rec.state = Some(TaskState::from_outcome(&outcome));
            rec.unit_result = Some(result);
            rec.ended = Some(time);
            rec.invocation_id = invocation.map(str::to_string);
        }
        SKIPPED if rec.state.is_none() || (rec.tentative && same) => {
            rec.tentative = false;
            rec.state = Some(TaskState::Skipped);
            rec.ended = Some(time);
            rec.invocation_id = invocation.map(str::to_string);
        }
        PROCESS_EXIT if same => {
            let status = s("EXIT_STATUS").and_then(|v| v.parse::<i32>().ok());
            let killed = matches!(s("EXIT_CODE"), Some("killed" | "dumped"));
            if let (Some(result), Some(status)) = (rec.unit_result.as_deref(), status) {
                rec.state = Some(match result {
                    "timeout" => TaskState::TimedOut,
                    "oom-kill" => TaskState::OutOfMemory,
                    _ if killed => TaskState::Killed(status),
                    _ => TaskState::Failed(status),
                });
                // Only the newest exit of that invocation counts.
                rec.unit_result = Some(String::new());
            }
        }
        STARTING if same => {
            if rec.started.is_none() {
                rec.started = Some(time);
            }
            if rec.invocation_id.is_none() {
                rec.invocation_id = invocation.map(str::to_string);
            }
        }
        // A user manager logs "Deactivated successfully" at debug level only, so there
        // the end of the start job is the success, unless an older message of the same
        // activation says it was skipped (`ExecCondition=`).
        JOB_DONE
            if field == "USER_UNIT" && rec.state.is_none() && s("JOB_RESULT") == Some("done") =>
        {
            rec.tentative = true;
            rec.state = Some(TaskState::Succeeded);
            rec.ended = Some(time);
            rec.invocation_id = invocation.map(str::to_string);
        }
        // "Stopped ...": a stop job ended an activation that was going (the manager logs
        // none for a unit already inactive): `flow cancel`, a deadline, `systemctl stop`.
        _ if rec.state.is_none()
            && s("JOB_TYPE") == Some("stop")
            && s("JOB_RESULT") == Some("done") =>
        {
            rec.state = Some(TaskState::Canceled);
            rec.ended = Some(time);
        }
        _ => {
            // A start job that ended without running the unit.
            if rec.state.is_none() && s("JOB_TYPE") == Some("start") {
                match s("JOB_RESULT") {
                    Some("dependency") => {
                        rec.state = Some(TaskState::UpstreamFailed);
                        rec.ended = Some(time);
                    }
                    Some("canceled") => {
                        rec.state = Some(TaskState::Canceled);
                        rec.ended = Some(time);
                    }
                    _ => {}
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(unit: &str, t: u64, fields: &[(&str, &str)]) -> serde_json::Value {
        entry_in("UNIT", unit, t, fields)
    }

    /// A manager's message about `unit`, named in `field` (`UNIT`, or a user manager's
    /// `USER_UNIT`).
    fn entry_in(field: &str, unit: &str, t: u64, fields: &[(&str, &str)]) -> serde_json::Value {
        let mut v = serde_json::json!({field: unit, "__REALTIME_TIMESTAMP": t.to_string()});
        for (k, val) in fields {
            v[*k] = serde_json::Value::String(val.to_string());
        }
        v
    }

    /// Feeds entries oldest first (as they happened), the way `-r` would deliver them reversed.
    fn fold(entries: Vec<serde_json::Value>) -> LastRun {
        let mut run = LastRun::default();
        for e in entries.iter().rev() {
            if apply(&mut run, e, "UNIT", "b.service") {
                break;
            }
        }
        run
    }

    /// A user manager's messages (systemd 252), as logged for an `on_failure` task whose
    /// `ExecCondition=` skipped it, then for a task that ran: "Skipped due to
    /// 'exec-condition'", then the job's end, `done`, which alone would read as a success.
    #[test]
    fn a_user_managers_skip_is_not_taken_for_a_success() {
        let user =
            |unit: &str, t: u64, fields: &[(&str, &str)]| entry_in("USER_UNIT", unit, t, fields);
        let entries = [
            user("b.service", 10, &[("MESSAGE_ID", STARTING)]),
            user(
                "alert.service",
                11,
                &[("MESSAGE_ID", STARTING), ("USER_INVOCATION_ID", "i1")],
            ),
            user(
                "alert.service",
                12,
                &[
                    ("MESSAGE_ID", SKIPPED),
                    ("USER_INVOCATION_ID", "i1"),
                    ("UNIT_RESULT", "exec-condition"),
                ],
            ),
            user(
                "alert.service",
                13,
                &[
                    ("MESSAGE_ID", JOB_DONE),
                    ("USER_INVOCATION_ID", "i1"),
                    ("JOB_RESULT", "done"),
                    ("JOB_TYPE", "start"),
                ],
            ),
            user(
                "ran.service",
                14,
                &[("MESSAGE_ID", STARTING), ("USER_INVOCATION_ID", "i2")],
            ),
            user(
                "ran.service",
                15,
                &[
                    ("MESSAGE_ID", JOB_DONE),
                    ("USER_INVOCATION_ID", "i2"),
                    ("JOB_RESULT", "done"),
                    ("JOB_TYPE", "start"),
                ],
            ),
        ];
        let mut run = LastRun::default();
        for e in entries.iter().rev() {
            if apply(&mut run, e, "USER_UNIT", "b.service") {
                break;
            }
        }
        assert_eq!(run.tasks["alert.service"].state, Some(TaskState::Skipped));
        assert_eq!(run.tasks["ran.service"].state, Some(TaskState::Succeeded));
        assert_eq!(run.tasks["ran.service"].started, Some(14));
    }

    #[test]
    fn reads_outcomes_of_the_last_run_only() {
        let run = fold(vec![
            // An older run: must be ignored.
            entry("b.service", 1, &[("MESSAGE_ID", STARTING)]),
            entry(
                "x.service",
                2,
                &[("MESSAGE_ID", SUCCESS), ("INVOCATION_ID", "old")],
            ),
            // The last run.
            entry("b.service", 10, &[("MESSAGE_ID", STARTING)]),
            entry(
                "x.service",
                11,
                &[("MESSAGE_ID", STARTING), ("INVOCATION_ID", "i1")],
            ),
            entry(
                "x.service",
                12,
                &[
                    ("MESSAGE_ID", PROCESS_EXIT),
                    ("INVOCATION_ID", "i1"),
                    ("EXIT_CODE", "exited"),
                    ("EXIT_STATUS", "3"),
                ],
            ),
            entry(
                "x.service",
                13,
                &[
                    ("MESSAGE_ID", FAILURE_RESULT),
                    ("INVOCATION_ID", "i1"),
                    ("UNIT_RESULT", "exit-code"),
                ],
            ),
            entry(
                "y.service",
                14,
                &[
                    ("MESSAGE_ID", "be02cf6855d2428ba40df7e9d022f03d"),
                    ("JOB_TYPE", "start"),
                    ("JOB_RESULT", "dependency"),
                ],
            ),
            entry(
                "z.service",
                15,
                &[("MESSAGE_ID", STARTING), ("INVOCATION_ID", "i3")],
            ),
            entry(
                "z.service",
                16,
                &[("MESSAGE_ID", SKIPPED), ("INVOCATION_ID", "i3")],
            ),
            entry(
                "w.service",
                17,
                &[("MESSAGE_ID", STARTING), ("INVOCATION_ID", "i4")],
            ),
        ]);
        assert_eq!(run.begun, Some(10));
        let x = &run.tasks["x.service"];
        assert_eq!(x.state, Some(TaskState::Failed(3)));
        assert_eq!(x.invocation_id.as_deref(), Some("i1"));
        assert_eq!((x.started, x.ended), (Some(11), Some(13)));
        assert_eq!(
            run.tasks["y.service"].state,
            Some(TaskState::UpstreamFailed)
        );
        assert_eq!(run.tasks["z.service"].state, Some(TaskState::Skipped));
        assert_eq!(run.tasks["w.service"].state, None);
        assert_eq!(run.tasks["w.service"].invocation_id.as_deref(), Some("i4"));
    }

    #[test]
    fn signals_and_timeouts() {
        let run = fold(vec![
            entry("b.service", 1, &[("MESSAGE_ID", STARTING)]),
            entry(
                "k.service",
                2,
                &[
                    ("MESSAGE_ID", PROCESS_EXIT),
                    ("INVOCATION_ID", "k"),
                    ("EXIT_CODE", "killed"),
                    ("EXIT_STATUS", "9"),
                ],
            ),
            entry(
                "k.service",
                3,
                &[
                    ("MESSAGE_ID", FAILURE_RESULT),
                    ("INVOCATION_ID", "k"),
                    ("UNIT_RESULT", "signal"),
                ],
            ),
            entry(
                "t.service",
                4,
                &[
                    ("MESSAGE_ID", PROCESS_EXIT),
                    ("INVOCATION_ID", "t"),
                    ("EXIT_CODE", "killed"),
                    ("EXIT_STATUS", "15"),
                ],
            ),
            entry(
                "t.service",
                5,
                &[
                    ("MESSAGE_ID", FAILURE_RESULT),
                    ("INVOCATION_ID", "t"),
                    ("UNIT_RESULT", "timeout"),
                ],
            ),
            // Stopped while it ran (`flow cancel`): its exit, then the stop job's end.
            entry(
                "s.service",
                6,
                &[
                    ("MESSAGE_ID", PROCESS_EXIT),
                    ("INVOCATION_ID", "s"),
                    ("EXIT_CODE", "exited"),
                    ("EXIT_STATUS", "143"),
                ],
            ),
            entry(
                "s.service",
                7,
                &[
                    ("MESSAGE_ID", FAILURE_RESULT),
                    ("INVOCATION_ID", "s"),
                    ("UNIT_RESULT", "exit-code"),
                ],
            ),
            entry(
                "s.service",
                8,
                &[
                    ("MESSAGE_ID", "9d1aaa27d60140bd96365438aad20286"),
                    ("INVOCATION_ID", "s"),
                    ("JOB_TYPE", "stop"),
                    ("JOB_RESULT", "done"),
                ],
            ),
        ]);
        assert_eq!(run.tasks["k.service"].state, Some(TaskState::Killed(9)));
        assert_eq!(run.tasks["s.service"].state, Some(TaskState::Canceled));
        assert_eq!(run.tasks["s.service"].ended, Some(8));
        assert_eq!(run.tasks["t.service"].state, Some(TaskState::TimedOut));
        // Never ran at all.
        assert_eq!(fold(vec![]).begun, None);
    }
}

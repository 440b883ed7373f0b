//! What the manager logged about flow's units, read back with `journalctl -o json` (its
//! stable interface; linking libsystemd would tie the binary to one ABI for this alone).
//!
//! systemd 252 tags its own messages about a unit with `UNIT=` and the activation's
//! `INVOCATION_ID=`: "Starting" (7d4958e8…) marks an activation's start, the job-end message
//! (39f53479… done, be02cf68… otherwise) carries `JOB_RESULT=`, the process-exit message
//! (98e32220…) `EXIT_CODE=`/`EXIT_STATUS=`, the failure message (d9b373ed…) `UNIT_RESULT=`,
//! the resource message (ae8f7b86…) `CPU_USAGE_NSEC=`. That is enough to rebuild every job
//! end the supervisor missed while it was down.

use crate::systemd::journal;
use std::collections::HashMap;

use crate::systemd::UnitState;
use crate::vocabulary::start_failed;

const STARTING: &str = "7d4958e842da4a758f6c1cdc7b36dcc5";
const JOB_DONE: &str = "39f53479d3a045ac8e11786248231fbf";
const JOB_OTHER: &str = "be02cf6855d2428ba40df7e9d022f03d";
const PROCESS_EXIT: &str = "98e322203f7a4ed290d09fe03c09fe15";
const UNIT_FAILURE: &str = "d9b373ed55a64feb8242e02dbe79a49c";
const UNIT_SUCCESS: &str = "7ad2d189f7e94e70a38c781354912448";
const RESOURCES: &str = "ae8f7b866b0347b9af31fe1c80b127c0";

/// A job end as the supervisor would have seen it live, rebuilt from the journal.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub at_us: u64,
    pub unit: String,
    pub result: String,
    /// The unit's properties as they were right after the job ended.
    pub state: UnitState,
}

/// Job ends of `units` since `since_us`, oldest first, as the system's manager or (`user`)
/// the calling user's logged them.
pub fn job_ends(units: &[String], since_us: u64, user: bool) -> std::io::Result<Vec<JobEnd>> {
    let (unit_field, inv_field) = journal::unit_fields(user);
    // Have journald write what it has received, so a job that ended a moment ago is there.
    journal::sync();
    let mut cmd = journal::json();
    cmd.arg(format!("--output-fields=MESSAGE_ID,{unit_field},{inv_field},JOB_RESULT,EXIT_CODE,EXIT_STATUS,UNIT_RESULT,CPU_USAGE_NSEC"))
        .arg(journal::time_arg("--since", since_us));
    // Manager messages about these units only (not their output): matches of one field
    // are ORed, of different fields ANDed.
    journal::manager_messages(&mut cmd, user);
    for u in units {
        cmd.arg(format!("{unit_field}={u}"));
    }
    let out = cmd.output()?;
    Ok(parse(&String::from_utf8_lossy(&out.stdout), user))
}

#[derive(Default)]
struct Activation {
    start: Option<u64>,
    exit_code: Option<String>,
    exit_status: Option<i32>,
    unit_result: Option<String>,
    cpu: Option<u64>,
}

pub fn parse(text: &str, user: bool) -> Vec<JobEnd> {
    let (unit_field, inv_field) = journal::unit_fields(user);
    let mut acts: HashMap<String, Activation> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let f = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let (id, unit, inv) = (f("MESSAGE_ID"), f(unit_field), f(inv_field));
        let Ok(at) = f("__REALTIME_TIMESTAMP").parse::<u64>() else {
            continue;
        };
        if unit.is_empty() {
            continue;
        }
        let act = acts.entry(inv.clone()).or_default();
        match id.as_str() {
            STARTING if !inv.is_empty() => act.start = Some(at),
            PROCESS_EXIT => {
                act.exit_code = Some(f("EXIT_CODE"));
                act.exit_status = f("EXIT_STATUS").parse().ok();
            }
            UNIT_FAILURE => act.unit_result = Some(f("UNIT_RESULT")),
            UNIT_SUCCESS => act.unit_result = Some("success".into()),
            RESOURCES => act.cpu = f("CPU_USAGE_NSEC").parse().ok(),
            JOB_DONE | JOB_OTHER => {
                let result = f("JOB_RESULT");
                let mut state = UnitState {
                    name: unit.clone(),
                    ..UnitState::default()
                };
                if let Some(start) = act.start.filter(|_| !inv.is_empty()) {
                    state.invocation_id = Some(inv.clone());
                    state.inactive_exit_timestamp = Some(start);
                    state.inactive_enter_timestamp = Some(at);
                    state.exec_main_start_timestamp = Some(start);
                    state.cpu_usage_nsec = act.cpu;
                    state.exec_main_status = act.exit_status.unwrap_or(0);
                    state.exec_main_code = match act.exit_code.as_deref() {
                        Some("killed") => 2,
                        Some("dumped") => 3,
                        _ => 1,
                    };
                    state.result = act
                        .unit_result
                        .clone()
                        .or_else(|| (result == "done").then(|| "success".to_string()));
                    if state.result.as_deref() == Some("signal")
                        || act.exit_code.as_deref() == Some("killed")
                    {
                        state.result = Some("signal".into());
                    }
                } else if !inv.is_empty() && act.unit_result.as_deref().is_some_and(start_failed) {
                    // A start that failed before the command ran (an `env_file` that does
                    // not exist): no "Starting", but an InvocationID and systemd's result.
                    state.invocation_id = Some(inv.clone());
                    state.result = act.unit_result.clone();
                }
                out.push(JobEnd {
                    at_us: at,
                    unit,
                    result,
                    state,
                });
            }
            _ => {}
        }
    }
    out.sort_by_key(|j| j.at_us);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rebuilds_attempts_from_manager_messages() {
        let text = r#"{"MESSAGE_ID":"7d4958e842da4a758f6c1cdc7b36dcc5","__REALTIME_TIMESTAMP":"100","UNIT":"a.service","JOB_TYPE":"start","INVOCATION_ID":"i1"}
{"UNIT":"a.service","EXIT_CODE":"exited","__REALTIME_TIMESTAMP":"150","INVOCATION_ID":"i1","MESSAGE_ID":"98e322203f7a4ed290d09fe03c09fe15","EXIT_STATUS":"1"}
{"__REALTIME_TIMESTAMP":"151","UNIT":"a.service","MESSAGE_ID":"d9b373ed55a64feb8242e02dbe79a49c","UNIT_RESULT":"exit-code","INVOCATION_ID":"i1"}
{"UNIT":"a.service","__REALTIME_TIMESTAMP":"152","JOB_RESULT":"failed","MESSAGE_ID":"be02cf6855d2428ba40df7e9d022f03d","INVOCATION_ID":"i1"}
{"UNIT":"b.service","__REALTIME_TIMESTAMP":"153","JOB_RESULT":"dependency","MESSAGE_ID":"be02cf6855d2428ba40df7e9d022f03d","INVOCATION_ID":""}
{"MESSAGE_ID":"7d4958e842da4a758f6c1cdc7b36dcc5","__REALTIME_TIMESTAMP":"200","UNIT":"a.service","INVOCATION_ID":"i2"}
{"MESSAGE_ID":"7ad2d189f7e94e70a38c781354912448","INVOCATION_ID":"i2","__REALTIME_TIMESTAMP":"250","UNIT":"a.service"}
{"JOB_RESULT":"done","INVOCATION_ID":"i2","UNIT":"a.service","__REALTIME_TIMESTAMP":"251","MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf"}
{"JOB_RESULT":"done","INVOCATION_ID":"","UNIT":"a.service","__REALTIME_TIMESTAMP":"300","MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf"}"#;
        let ends = super::parse(text, false);
        assert_eq!(ends.len(), 4);
        // A user's manager names the unit and the activation otherwise; read the same.
        let user = text
            .replace("\"UNIT\"", "\"USER_UNIT\"")
            .replace("\"INVOCATION_ID\"", "\"USER_INVOCATION_ID\"");
        let user_ends = super::parse(&user, true);
        assert_eq!(format!("{user_ends:?}"), format!("{ends:?}"));
        assert!(super::parse(&user, false).is_empty());
        assert_eq!(ends[0].result, "failed");
        assert_eq!(ends[0].state.result.as_deref(), Some("exit-code"));
        assert_eq!(ends[0].state.exec_main_status, 1);
        assert_eq!(ends[0].state.inactive_exit_timestamp, Some(100));
        assert_eq!(ends[1].result, "dependency");
        assert_eq!(ends[1].state.invocation_id, None);
        assert_eq!(ends[2].state.result.as_deref(), Some("success"));
        assert_eq!(ends[2].state.invocation_id.as_deref(), Some("i2"));
        // A condition skip: no activation.
        assert_eq!(ends[3].state.inactive_exit_timestamp, None);
    }

    #[test]
    fn a_start_that_failed_before_the_command_is_an_attempt_too() {
        let text = r#"{"__REALTIME_TIMESTAMP":"100","UNIT":"a.service","MESSAGE_ID":"d9b373ed55a64feb8242e02dbe79a49c","UNIT_RESULT":"resources","INVOCATION_ID":"i1"}
{"UNIT":"a.service","__REALTIME_TIMESTAMP":"101","JOB_RESULT":"failed","MESSAGE_ID":"be02cf6855d2428ba40df7e9d022f03d","INVOCATION_ID":"i1"}"#;
        let ends = super::parse(text, false);
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].result, "failed");
        assert_eq!(ends[0].state.result.as_deref(), Some("resources"));
        assert_eq!(ends[0].state.invocation_id.as_deref(), Some("i1"));
        assert_eq!(ends[0].state.inactive_exit_timestamp, None);
    }
}

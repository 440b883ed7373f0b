//! `flow list`: every installed workflow, its schedule, next run and last result.

use super::exit::{CliError, Exit};
use super::installed::Where;
use super::output::{datetime_zone, json_line, timestamp};
use super::shown;
use super::workflows::{self, SourceState};
use crate::runs::{self, Progress};

/// One workflow as `flow list` knows it. `None` where systemd (or the history) could not
/// tell: text shows `?`, JSON `null`.
struct ListRow {
    name: String,
    schedule: Option<String>,
    /// The timer's next elapse (realtime µs); `None` also when paused or unscheduled.
    next: Option<u64>,
    /// Whether the timer is stopped (`flow pause`); `Some(false)` without a schedule.
    paused: Option<bool>,
    /// The last run, as the history (or else systemd) has it.
    last: Progress,
    source: SourceState,
}

/// `flow list`: every installed workflow, its schedule, next run and last result.
pub fn list(w: &Where) -> Result<Exit, CliError> {
    let dir = w.dir();
    let files = w.installed()?;
    let wfs = runs::installed_workflows(&files);
    // Why something reads `?`, said once below the table.
    let mut unknown_why = None;
    let sd = w
        .connect()
        .map_err(|e| unknown_why = Some(e.to_string()))
        .ok();
    // The history, where there is one to read: it knows what systemd cannot tell.
    let history = crate::store::Store::open_ro(&crate::store::default_path(w.user)).ok();
    let mut rows = Vec::new();
    for wf in &wfs {
        // `None`: systemd could not say whether the timer is active, so neither "paused"
        // nor a time can be claimed.
        let (next, paused) = match (&sd, &wf.timer) {
            (Some(sd), Some((timer, _))) => match sd.unit_state(timer) {
                Ok(s) => {
                    let active = s.active_state == "active";
                    (s.next_elapse().filter(|_| active), Some(!active))
                }
                Err(e) => {
                    unknown_why.get_or_insert(e.to_string());
                    (None, None)
                }
            },
            (Some(_), None) => (None, Some(false)),
            (None, _) => (None, None),
        };
        // The history's result where it has the run, else systemd's account, decided as
        // `flow status` decides it.
        let recorded = sd
            .as_ref()
            .zip(history.as_ref())
            .and_then(|(sd, h)| shown::recorded_run(h, sd, wf));
        let last = match (&sd, &recorded) {
            (_, Some(r)) => shown::progress(Some(r), &[]),
            (Some(sd), None) => match runs::last_run(sd, wf, w.user) {
                Ok(tasks) => match shown::progress(None, &tasks) {
                    Progress::Unknown => {
                        unknown_why.get_or_insert(
                            "could not tell how every task of the last run ended".into(),
                        );
                        Progress::Unknown
                    }
                    known => known,
                },
                Err(e) => {
                    unknown_why.get_or_insert(e.to_string());
                    Progress::Unknown
                }
            },
            (None, None) => Progress::Unknown,
        };
        rows.push(ListRow {
            name: wf.name.clone(),
            schedule: wf.timer.as_ref().map(|(_, s)| s.clone()),
            next,
            paused,
            last,
            source: workflows::source_state(&wf.name, &wf.source, &files),
        });
    }
    if w.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                let (last_result, running) = match r.last {
                    Progress::NotRun => (None, Some(false)),
                    Progress::Going => (None, Some(true)),
                    Progress::Ended(word) => (Some(word.as_str()), Some(false)),
                    Progress::Unknown => (None, None),
                };
                serde_json::json!({
                    "workflow": r.name,
                    "schedule": r.schedule,
                    "next": r.next.and_then(|us| timestamp(us as i64)),
                    "paused": r.paused,
                    "running": running,
                    "last_result": last_result,
                    "source_state": r.source.key(),
                })
            })
            .collect();
        json_line(&serde_json::json!({ "workflows": v }));
        return unreachable_exit(sd.is_some(), &rows, unknown_why.as_deref());
    }
    if rows.is_empty() {
        println!("No workflows installed in {}.", dir.display());
        return Ok(Exit::Success);
    }
    let texts: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            // A workflow whose YAML file is not what its units were made of is marked, and
            // why is said below the table.
            let name = match r.source {
                SourceState::Applied => r.name.clone(),
                _ => format!("{}*", r.name),
            };
            let next = match (&r.schedule, r.paused, r.next) {
                (_, None, _) => "?".to_string(),
                (Some(_), Some(true), _) => "paused".to_string(),
                (_, _, Some(us)) => datetime_zone(us as i64),
                _ => "-".to_string(),
            };
            let last = match r.last {
                Progress::NotRun => "never run".to_string(),
                Progress::Going => "running".to_string(),
                Progress::Ended(word) => word.as_str().to_string(),
                Progress::Unknown => "?".to_string(),
            };
            [
                name,
                r.schedule.clone().unwrap_or_else(|| "-".into()),
                next,
                last,
            ]
        })
        .collect();
    let wn = texts.iter().map(|t| t[0].len()).max().unwrap_or(8).max(8);
    let ws = texts.iter().map(|t| t[1].len()).max().unwrap_or(8).max(8);
    println!(
        "{:wn$}  {:ws$}  {:25}  LAST",
        "WORKFLOW", "SCHEDULE", "NEXT"
    );
    for [n, s, x, l] in &texts {
        println!("{n:wn$}  {s:ws$}  {x:25}  {l}");
    }
    let notes: Vec<String> = rows
        .iter()
        .zip(&wfs)
        .filter_map(|(r, wf)| Some(format!("* {}: {}", r.name, r.source.note(&wf.source)?)))
        .collect();
    if !notes.is_empty() {
        eprintln!();
        for note in notes {
            eprintln!("{note}");
        }
    }
    if let Some(why) = &unknown_why
        && sd.is_some()
    {
        eprintln!("\nNEXT or LAST is `?` where flow {why}");
    }
    unreachable_exit(sd.is_some(), &rows, unknown_why.as_deref())
}

/// `flow list` without systemd knows the installed workflows but not their timers or runs:
/// it prints what it knows and says so with exit 3, so that a script never reads an
/// unreachable manager as "every workflow paused".
fn unreachable_exit<T>(reached: bool, rows: &[T], why: Option<&str>) -> Result<Exit, CliError> {
    if reached || rows.is_empty() {
        return Ok(Exit::Success);
    }
    Err(CliError::System(format!(
        "NEXT and LAST are unknown (`?`): flow {}",
        why.unwrap_or("could not reach systemd")
    )))
}

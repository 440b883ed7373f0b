//! `flow cancel NAME`: stop the run and every task still running or waiting, and a run
//! queued after it.

use std::io::Write;

use serde::Serialize;

use super::exit::{CliError, Exit};
use super::installed::{Where, sys};
use super::output::json_line;
use super::shown;
use crate::runs::trigger;
use crate::store::{self, Store};

/// `cancel --json` (cancel.json).
#[derive(Debug, Serialize)]
struct CancelJson<'a> {
    workflow: &'a str,
    /// The run stopped, when one was and the history has it.
    run: Option<i64>,
    /// Whether a run was going and was stopped.
    canceled: bool,
    /// Whether a run queued after it (`overlap: queue`) was dropped.
    queued_canceled: bool,
}

pub fn cancel(name: &str, w: &Where) -> Result<Exit, CliError> {
    let wf = w.workflow(name)?;
    let sd = w.connect()?;
    // Its number, read before it ends (the run systemd ran last, as the history has it).
    let going = Store::open_ro(&store::default_path(w.user))
        .ok()
        .and_then(|h| shown::recorded_run(&h, &sd, &wf))
        .filter(|r| r.result.is_none());
    // The queued run first: it would start as soon as the run going is stopped.
    let queued = trigger::cancel_queued(&sd, &wf).map_err(sys)?;
    let runtime = trigger::runtime_dir(w.user);
    let canceled = trigger::cancel_and_tell(&sd, &wf, &runtime, || {
        if !w.json {
            println!("Stopping the run of {name}: each task still running is told to end...");
            let _ = std::io::stdout().flush();
        }
    })
    .map_err(sys)?;
    if w.json {
        json_line(&CancelJson {
            workflow: name,
            run: going.filter(|_| canceled).map(|r| r.id),
            canceled,
            queued_canceled: queued,
        });
    } else {
        println!(
            "{}",
            match (canceled, queued) {
                (true, true) => format!("Canceled the run of {name}, and the run queued after it."),
                (true, false) => format!("Canceled the run of {name}."),
                (false, true) => format!("Canceled the queued run of {name}."),
                (false, false) => format!("No run of {name} is going: nothing to cancel."),
            }
        );
    }
    Ok(Exit::Success)
}

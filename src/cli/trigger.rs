//! `flow trigger NAME` (hidden): what a workflow's trigger unit runs when its timer
//! elapses, or when `flow run` hands it a trigger that meets a run going.

use std::io::Write;
use std::path::Path;

use super::exit::{CliError, Exit};
use super::installed::{Where, sys};
use crate::runs::trigger::{self, Outcome};
use crate::vocabulary::TriggerKind;

/// The overlap rule, then a run.
pub fn trigger_unit(name: &str, runtime: &Path, unit_dir: &Path) -> Result<Exit, CliError> {
    let w = Where {
        // `%t` is /run for the system manager, the user's runtime directory otherwise.
        user: runtime != Path::new("/run"),
        unit_dir: Some(unit_dir.to_path_buf()),
        json: false,
    };
    let wf = w.workflow(name)?;
    let sd = w.connect()?;
    let trigger_kind = if trigger::take_manual_request(runtime, name) {
        TriggerKind::Manual
    } else {
        trigger::kind(&sd, &wf)
    };
    let kind = trigger_kind.label();
    let outcome = trigger::trigger(&sd, &wf, runtime, trigger_kind, |why| {
        println!("A run of {name} is going ({why}); overlap: queue, so this {kind} run starts when it ends.");
        let _ = std::io::stdout().flush();
        stopped_while_waiting_is_clean();
    })
    .map_err(sys)?;
    match outcome {
        Outcome::Started => println!("Started a {kind} run of {name}."),
        Outcome::Queued(_) => println!("Started the queued {kind} run of {name}."),
        Outcome::Skipped(why) => println!(
            "A run of {name} is going ({why}); overlap: skip, so this {kind} trigger is skipped."
        ),
        Outcome::Replaced(why) => println!(
            "Canceled the run of {name} that was going ({why}); overlap: replace. Started a {kind} run."
        ),
    }
    Ok(Exit::Success)
}

/// A queued trigger stopped while it waits (`flow cancel`) ends cleanly: SIGTERM would
/// otherwise leave the trigger unit `failed`, as if something had gone wrong.
fn stopped_while_waiting_is_clean() {
    extern "C" fn note_and_exit(_: libc::c_int) {
        const NOTE: &str = "Stopped while it waited: this queued run does not start.\n";
        // SAFETY: write(2) of a static buffer and _exit(2), both async-signal-safe.
        unsafe {
            libc::write(1, NOTE.as_ptr().cast(), NOTE.len());
            libc::_exit(0)
        }
    }
    // SAFETY: the handler only writes a static string and exits.
    unsafe { super::signals::handle(note_and_exit, false, &[nix::sys::signal::Signal::SIGTERM]) }
}

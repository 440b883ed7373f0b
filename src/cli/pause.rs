//! `flow pause NAME` / `flow resume NAME`: stop or start a workflow's timer (and keep it so
//! across reboots).

use super::exit::{CliError, Exit};
use super::installed::{Where, sys};
use super::output::json_line;

pub fn pause(name: &str, resume: bool, w: &Where) -> Result<Exit, CliError> {
    let wf = w.workflow(name)?;
    let Some((timer, _)) = &wf.timer else {
        return Err(CliError::Invalid(format!(
            "workflow `{name}` has no schedule to pause or resume"
        )));
    };
    let sd = w.connect()?;
    let units = vec![timer.clone()];
    if resume {
        sd.enable_unit_files(&units).map_err(sys)?;
        sd.reload().map_err(sys)?;
        sd.start_unit(timer).map_err(sys)?;
    } else {
        sd.stop_unit(timer).map_err(sys)?;
        sd.disable_unit_files(&units).map_err(sys)?;
        sd.reload().map_err(sys)?;
    }
    if w.json {
        // pause.json
        json_line(&serde_json::json!({"workflow": name, "paused": !resume}));
    } else if resume {
        println!("Resumed {name}: its timer runs again.");
    } else {
        println!(
            "Paused {name}: its timer is stopped until `flow resume {name}{}`. A run already going continues.",
            super::user_flag(w.user)
        );
    }
    Ok(Exit::Success)
}

//! `flow supervise`: the supervisor (flow-supervisor.service), which records the run
//! history and drives retries and deadlines.

use std::path::PathBuf;

use clap::Args;

use super::db::DbArgs;
use super::exit::{CliError, Exit};
use super::workflows;
use crate::store;
use crate::supervisor;
use crate::systemd::Bus;

#[derive(Debug, Clone, Args)]
pub struct SuperviseArgs {
    /// Supervise the calling user's own manager: its workflows (`flow apply --user`), with
    /// the history in ~/.local/state/flow.
    #[arg(long)]
    pub user: bool,
    #[command(flatten)]
    pub db: DbArgs,
    /// Where the installed units are.
    #[arg(long, value_name = "DIR", hide = true)]
    pub unit_dir: Option<PathBuf>,
    /// Keep at most this many runs per workflow.
    #[arg(long, default_value_t = store::DEFAULT_KEEP_RUNS)]
    pub keep_runs: u32,
    /// Keep runs for at most this many days.
    #[arg(long, default_value_t = store::DEFAULT_KEEP_DAYS)]
    pub keep_days: u32,
    /// Read systemd's signals from the bus, not from its private socket (tests).
    #[arg(long, hide = true)]
    pub bus_signals: bool,
}

pub fn supervise(a: &SuperviseArgs) -> Result<Exit, CliError> {
    let cfg = supervisor::Config {
        db: a.db.for_user(a.user).path(),
        unit_dir: a
            .unit_dir
            .clone()
            .unwrap_or_else(|| workflows::units_dir(a.user)),
        runtime_dir: crate::runs::trigger::runtime_dir(a.user),
        bus: Bus::manager(a.user),
        keep_runs: a.keep_runs,
        keep_days: a.keep_days,
        bus_signals: a.bus_signals,
    };
    supervisor::supervise(cfg).map_err(|e| CliError::System(e.to_string()))?;
    Ok(Exit::Success)
}

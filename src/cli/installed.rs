//! Where the commands on installed workflows look (`run`, `status`, `logs`, `list`,
//! `cancel`, `pause`, `resume`): which manager, which unit directory, and the workflow read
//! back from its units.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::exit::CliError;
use super::workflows::{self, SourceState};
use crate::install;
use crate::runs::{self, InstalledWorkflow};
use crate::systemd::{Bus, Systemd};

#[derive(Debug, Clone, Args)]
pub struct Where {
    /// Use the calling user's own manager and unit directory.
    #[arg(long)]
    pub user: bool,
    /// Read installed units from this directory.
    #[arg(long, value_name = "DIR", hide = true)]
    pub unit_dir: Option<PathBuf>,
    /// Print JSON for scripts instead of text: one object on one line (`flow logs`: one
    /// object per line), as /usr/share/doc/flow/json.md describes, with its JSON Schema in
    /// /usr/share/doc/flow/schema/.
    #[arg(long)]
    pub json: bool,
}

impl Where {
    pub fn dir(&self) -> PathBuf {
        self.unit_dir
            .clone()
            .unwrap_or_else(|| workflows::units_dir(self.user))
    }

    pub fn connect(&self) -> Result<Systemd, CliError> {
        Systemd::connect(Bus::manager(self.user)).map_err(|e| CliError::System(e.to_string()))
    }

    pub fn installed(&self) -> Result<BTreeMap<String, install::InstalledFile>, CliError> {
        let dir = self.dir();
        install::installed(&dir)
            .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))
    }

    pub fn workflow(&self, name: &str) -> Result<InstalledWorkflow, CliError> {
        self.find(&self.installed()?, name)
    }

    /// The workflow, and how its YAML file stands against its units.
    pub fn workflow_and_source(
        &self,
        name: &str,
    ) -> Result<(InstalledWorkflow, SourceState), CliError> {
        let files = self.installed()?;
        let wf = self.find(&files, name)?;
        let state = workflows::source_state(&wf.name, &wf.source, &files);
        Ok((wf, state))
    }

    /// The workflow and its source's state when it is installed; `None` when it is not or
    /// the unit directory cannot be read (for what reads the history, which answers alone).
    pub fn maybe_workflow(&self, name: &str) -> Option<(InstalledWorkflow, SourceState)> {
        let files = install::installed(&self.dir()).ok()?;
        let wf = runs::installed_workflow(&files, name)?;
        let state = workflows::source_state(&wf.name, &wf.source, &files);
        Some((wf, state))
    }

    fn find(
        &self,
        files: &BTreeMap<String, install::InstalledFile>,
        name: &str,
    ) -> Result<InstalledWorkflow, CliError> {
        runs::installed_workflow(files, name)
            .ok_or_else(|| not_installed(files, name, &self.dir(), self.user))
    }
}

/// "Not installed", with the installed workflow whose name is nearest as a suggestion: a
/// typo in a name should not read as a workflow gone.
pub(super) fn not_installed(
    files: &BTreeMap<String, install::InstalledFile>,
    name: &str,
    dir: &Path,
    user: bool,
) -> CliError {
    let u = super::user_flag(user);
    let installed = runs::installed_workflows(files);
    let hint =
        match crate::compiler::suggest::nearest(name, installed.iter().map(|w| w.name.as_str())) {
            Some(near) => {
                format!("did you mean `{near}`? (`flow list{u}` shows what is installed)")
            }
            None => format!(
                "`flow list{u}` shows the installed workflows, `flow apply{u}` installs yours"
            ),
        };
    CliError::NotFound(format!(
        "workflow `{name}` is not installed in {}; {hint}",
        dir.display()
    ))
}

/// On stderr: that a workflow's YAML file changed since `flow apply`, if it did.
pub(super) fn note_source(wf: &InstalledWorkflow, state: SourceState) {
    if let Some(note) = state.note(&wf.source) {
        eprintln!("note: {note}");
    }
}

pub(super) fn sys(e: impl std::fmt::Display) -> CliError {
    CliError::System(e.to_string())
}

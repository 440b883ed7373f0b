//! The run history as the commands read it (`history`, `status NAME RUN`, `logs NAME
//! RUN`, `stats`, `retry`): which database, opened read-only (so the readers work
//! unprivileged wherever the file is readable), a note when the supervisor is not running,
//! and the run a command names.

use std::path::{Path, PathBuf};

use clap::Args;

use super::exit::CliError;
use super::workflows;
use crate::store::{self, Run, Store};
use crate::supervisor;

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The history database.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The history of the calling user's own supervisor (set from `--user`).
    #[arg(skip)]
    pub user: bool,
}

/// The history of the system's supervisor, or with `--user` of the user's own.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The history kept by the calling user's own supervisor (`flow supervise --user`).
    #[arg(long)]
    pub user: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

impl HistoryArgs {
    pub fn db(&self) -> DbArgs {
        self.db.for_user(self.user)
    }
}

impl DbArgs {
    pub fn for_user(&self, user: bool) -> DbArgs {
        DbArgs {
            db: self.db.clone(),
            user,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| store::default_path(self.user))
    }

    pub fn open(&self) -> Result<Store, CliError> {
        let path = self.path();
        let s = Store::open_ro(&path).map_err(|e| match e {
            store::StoreError::Missing { path } if self.user => CliError::System(format!(
                "no run history at {}: your supervisor has not recorded anything yet\n  \
                 is it running? (`systemctl --user status flow-supervisor`)",
                path.display()
            )),
            e => CliError::System(e.to_string()),
        })?;
        if !supervisor_running(&path, self.user) {
            eprintln!(
                "note: the supervisor is not running: history may be behind; start it with `{}`",
                supervisor::start_hint(self.user)
            );
        }
        Ok(s)
    }
}

/// Whether a supervisor has this database open for writing: it holds the WAL's shared
/// memory file open, which no reader keeps after exit. Checked through /proc, no D-Bus.
/// `user`: the calling user's own history, which only their own processes hold.
fn supervisor_running(db: &Path, user: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let my_uid = nix::unistd::getuid().as_raw();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let me = std::process::id().to_string();
    for p in procs.flatten() {
        let name = p.file_name();
        let name = name.to_string_lossy();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if user && p.metadata().is_ok_and(|m| m.uid() != my_uid) {
            continue;
        }
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let is_supervisor = cmd.split(|&b| b == 0).any(|a| a == b"supervise");
        if !is_supervisor {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            // Not ours to inspect (another user): a supervisor exists; assume it is this.
            return true;
        };
        if fds
            .flatten()
            .filter_map(|f| std::fs::read_link(f.path()).ok())
            .any(|l| l == db)
        {
            return true;
        }
    }
    false
}

/// A name that no run is recorded for and no installed workflow has is most likely a typo:
/// say so, with the nearest known name, rather than print an empty table and exit 0.
pub fn known_workflow(s: &Store, name: &str, user: bool) -> Result<(), CliError> {
    let recorded = s.workflows().map_err(|e| CliError::System(e.to_string()))?;
    if recorded.iter().any(|w| w == name) {
        return Ok(());
    }
    let dir = workflows::units_dir(user);
    // An unreadable unit directory only loses the suggestion: the history answers alone.
    let files = crate::install::installed(&dir).unwrap_or_default();
    if crate::runs::installed_workflow(&files, name).is_some() {
        return Ok(());
    }
    let installed = crate::runs::installed_workflows(&files);
    let known = recorded
        .iter()
        .map(String::as_str)
        .chain(installed.iter().map(|w| w.name.as_str()));
    let u = super::user_flag(user);
    Err(CliError::NotFound(
        match crate::compiler::suggest::nearest(name, known) {
            Some(near) => format!(
                "no workflow `{name}` is installed or has a run recorded; did you mean `{near}`?"
            ),
            None => format!(
                "no workflow `{name}` is installed or has a run recorded; `flow list{u}` shows the installed ones, `flow history{u}` every run recorded"
            ),
        },
    ))
}

pub fn find_run(s: &Store, name: &str, run: Option<i64>, user: bool) -> Result<Run, CliError> {
    let u = super::user_flag(user);
    let found = match run {
        Some(id) => s.run(name, id),
        None => s.last_run(name),
    }
    .map_err(|e| CliError::System(e.to_string()))?;
    if found.is_none() {
        known_workflow(s, name, user)?;
    }
    found.ok_or_else(|| {
        CliError::NotFound(match run {
            Some(id) => {
                format!(
                    "workflow `{name}` has no run {id}; `flow history {name}{u}` lists its runs"
                )
            }
            None => format!("no run of `{name}` is recorded yet"),
        })
    })
}

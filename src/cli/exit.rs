//! Exit codes (documented in `flow --help` and flow(1)) and the error that carries them.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// Invalid workflow, or a run that did not succeed.
    Failure = 1,
    /// The system refused: I/O, D-Bus, permissions.
    System = 3,
    /// No such workflow or run: not installed, nothing recorded.
    NotFound = 4,
    /// Stopped by Ctrl-C (SIGINT) or SIGTERM, as shells report a program killed by SIGINT.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that ends a command, printed as `error: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Problems already printed (e.g. diagnostics); just exit 1.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    System(String),
    /// A workflow or run name that is neither installed nor recorded (a typo, most likely):
    /// its own exit code, so that a script can tell it from a run that failed.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    pub fn exit_code(&self) -> Exit {
        match self {
            CliError::Invalid(_) => Exit::Failure,
            CliError::System(_) => Exit::System,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Interrupted(_) => Exit::Interrupted,
        }
    }

    pub fn io(what: impl std::fmt::Display, e: std::io::Error) -> CliError {
        CliError::System(format!("{what}: {e}"))
    }
}

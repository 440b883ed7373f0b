//! One supervisor per manager. A second one would drive the same retries twice (each
//! starts the failed task again) and take the first one's socket from `flow run --wait`.
//! A lock on a file in the manager's runtime directory decides: the kernel releases it
//! when its holder exits, however it exits, so a crash leaves nothing stale behind.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock file under a manager's runtime directory (`%t`).
pub fn lock_path(runtime: &Path) -> PathBuf {
    runtime.join("flow").join("supervisor.lock")
}

/// Held while this supervisor runs.
pub struct Claim {
    _lock: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "another supervisor runs for this manager already{}, holding {path}: one is enough (stop it first to run this one: `systemctl{} stop flow-supervisor`)",
        .pid.map(|p| format!(" (PID {p})")).unwrap_or_default(),
        if *.user { " --user" } else { "" }
    )]
    Taken {
        path: PathBuf,
        pid: Option<u32>,
        user: bool,
    },
    #[error("cannot lock {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Claims the manager for this process, writing its PID into the lock file for the next
/// one to name.
pub fn claim(runtime: &Path, user: bool) -> Result<Claim, ClaimError> {
    let path = lock_path(runtime);
    let io = |error| ClaimError::Io {
        path: path.clone(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "{}", std::process::id());
            Ok(Claim { _lock: lock })
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(ClaimError::Taken {
                path,
                pid: pid.trim().parse().ok(),
                user,
            })
        }
        Err((_, errno)) => Err(io(std::io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_and_names_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = claim(dir.path(), false).expect("first claim");
        match claim(dir.path(), true) {
            Err(ClaimError::Taken { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("claimed twice"),
        }
        let message = claim(dir.path(), true).err().map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.contains("systemctl --user stop flow-supervisor")),);
        drop(first);
        assert!(claim(dir.path(), false).is_ok(), "released when dropped");
    }
}

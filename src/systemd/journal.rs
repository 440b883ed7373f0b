//! Running `journalctl`: the one place flow starts it. The supervisor reads the manager's
//! job messages back after a restart, `flow status` and `flow list` read the last run
//! without the supervisor, and `flow logs` reads what tasks printed; all of them as JSON,
//! from the system's journal or, for a user's manager, from the entries of that user.

use std::process::{Command, Stdio};

/// `journalctl -o json --no-pager`, to which callers add their selection.
pub fn json() -> Command {
    let mut cmd = Command::new("journalctl");
    cmd.args(["-o", "json", "--no-pager"]);
    cmd
}

/// Selects the messages of the service manager itself (not of the units it runs), which
/// a task cannot forge: PID 1's, or (`user`) the calling user's `systemd`. (Not
/// `journalctl --user`: that reads the per-user journal files alone, which exist only with
/// a persistent journal.)
pub fn manager_messages(cmd: &mut Command, user: bool) {
    if user {
        cmd.arg(format!("_UID={}", nix::unistd::getuid()));
        cmd.arg("_COMM=systemd");
    } else {
        cmd.arg("_PID=1");
    }
}

/// The fields a manager names a unit and its activation with: a user's manager writes
/// `USER_UNIT=` and `USER_INVOCATION_ID=` where the system's writes `UNIT=` and
/// `INVOCATION_ID=`.
pub fn unit_fields(user: bool) -> (&'static str, &'static str) {
    if user {
        ("USER_UNIT", "USER_INVOCATION_ID")
    } else {
        ("UNIT", "INVOCATION_ID")
    }
}

/// `--since=@<seconds>.<µs>` (or another flag that takes a time) for a realtime in µs.
pub fn time_arg(flag: &str, us: u64) -> String {
    format!("{flag}=@{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// Makes journald write what it has received before the journal is read (needs root;
/// harmless without: then a line sent in the last moment may be missing).
pub fn sync() {
    let _ = Command::new("journalctl")
        .arg("--sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// journalctl's complaint as an error; `PermissionDenied` when the journal is not the
/// caller's to read, which otherwise would look like a workflow that never ran.
pub fn unreadable(complaint: &str) -> std::io::Error {
    let kind = if complaint.contains("permission") {
        std::io::ErrorKind::PermissionDenied
    } else {
        std::io::ErrorKind::Other
    };
    let text = if complaint.is_empty() {
        "journalctl failed".to_string()
    } else {
        complaint.to_string()
    };
    std::io::Error::new(kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_journal_is_told_from_other_failures() {
        let denied = unreadable("No journal files were opened due to insufficient permissions.");
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(unreadable("").to_string(), "journalctl failed");
        assert_eq!(unreadable("boom").kind(), std::io::ErrorKind::Other);
    }

    #[test]
    fn times_keep_their_microseconds() {
        assert_eq!(
            time_arg("--since", 1_500_000_000_000_042),
            "--since=@1500000000.000042"
        );
    }
}

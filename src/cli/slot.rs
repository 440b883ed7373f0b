//! `flow slot --max N --key KEY -- COMMAND...`: wait for one of N slots, then become COMMAND.
//!
//! This is how `max_parallel` works: every task of such a workflow starts through this gate.
//!
//! The slots are byte locks on one file per workflow, `<runtime dir>/flow/<wf>.slots`,
//! which only the manager's user (root for the system's workflows) may open. The task unit
//! hands it to the task as its standard input (`StandardInput=file:`): the service manager
//! opens it before it drops privileges to the task's `user:`, so a task of any user gets
//! it, and no other process can: nobody outside the workflow's tasks can take, hold or free
//! a slot (with System V semaphores, whose keys anyone can compute and whose modes must let
//! every task's user in, any local user could). The file is made by the run's begin unit.
//!
//! Taking a slot: under a `flock` of the file (a mutex among the workflow's tasks, held for
//! a few system calls), find a byte in `0..N` on which no other open file description holds
//! a lock (`F_OFD_GETLK`) and take a read lock on it (`F_OFD_SETLK`; the descriptor is
//! read-only). The descriptor then moves out of the way of the command's standard input
//! (which becomes `/dev/null`, as for any task) and this process becomes the command
//! (`exec`): the lock lives as long as the task's processes keep the descriptor, and the
//! kernel drops it when they end, however they end (exit, timeout, SIGKILL, out of memory).
//! Nothing to clean up, nothing to go stale.
//!
//! A task waits for a slot at most [`DEFAULT_WAIT`] (or `FLOW_SLOT_WAIT` from its
//! environment), then fails saying why: a slot held that long means a task of the workflow
//! is stuck, and waiting on would pile up its runs.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::exit::CliError;

/// How long a task waits for a slot unless `FLOW_SLOT_WAIT` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The environment variable (set with a task's `env:`) that overrides [`DEFAULT_WAIT`].
pub const WAIT_VAR: &str = "FLOW_SLOT_WAIT";

/// Where the descriptor of the slot file goes before the command runs: above the
/// descriptors scripts use (`exec 9>lock`), so that no redirection closes it by chance.
const SLOT_FD_MIN: RawFd = 100;

/// Parse `--max N --key KEY -- COMMAND...` (hand-parsed: this runs before every task, so
/// it stays off the general argument parser's start-up path).
pub fn run(args: &[String]) -> Result<std::convert::Infallible, CliError> {
    let usage =
        || CliError::Invalid("usage: flow slot --max N --key KEY -- COMMAND [ARGS...]".into());
    let mut max = None;
    let mut key = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--max" => {
                max = args
                    .get(i + 1)
                    .and_then(|v| v.parse::<u16>().ok())
                    .filter(|m| *m > 0)
            }
            "--key" => key = args.get(i + 1).cloned(),
            "--" => break,
            _ => return Err(usage()),
        }
        i += 2;
    }
    let (Some(max), Some(key)) = (max, key) else {
        return Err(usage());
    };
    let command = args
        .get(i + 1..)
        .filter(|c| !c.is_empty())
        .ok_or_else(usage)?;
    let wait = match std::env::var(WAIT_VAR) {
        Ok(v) => crate::compiler::duration::parse(&v).map_err(|e| {
            CliError::Invalid(format!(
                "{WAIT_VAR}={v}: {e} (a duration such as 30m or 2h, set in the task's env:)"
            ))
        })?,
        Err(_) => DEFAULT_WAIT,
    };
    let fd = slot_file(&key)?;
    acquire(fd, max, wait, &key)?;
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| usage()))
        .collect::<Result<_, _>>()?;
    let err = nix::unistd::execvp(&argv[0], &argv).unwrap_err();
    Err(CliError::System(format!(
        "cannot run {}: {err}",
        command[0]
    )))
}

/// The workflow's slot file, as the service manager opened it on standard input: checked
/// to be that file (a regular file only its owner may open, owned by this manager's user),
/// then moved to a descriptor of its own, with `/dev/null` as standard input instead.
fn slot_file(key: &str) -> Result<RawFd, CliError> {
    let path = format!("{key}.slots");
    let not_given = |why: String| {
        CliError::System(format!(
            "max_parallel: {why}: the task's standard input must be its workflow's slot file {path} \
             (the unit sets StandardInput=file:{path}; do not set StandardInput= in `service:`, \
             and start tasks through systemd, not by hand)"
        ))
    };
    // SAFETY: fstat fills a plain struct for a descriptor number.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(0, &mut st) } < 0 {
        return Err(not_given(format!(
            "standard input: {}",
            std::io::Error::last_os_error()
        )));
    }
    let named = std::fs::metadata(&path).map_err(|e| not_given(format!("{path}: {e}")))?;
    {
        use std::os::unix::fs::MetadataExt;
        if (named.dev(), named.ino()) != (st.st_dev, st.st_ino) {
            return Err(not_given("standard input is another file".into()));
        }
        // The manager's user: root for the system's workflows; a user's own manager runs
        // their tasks as themselves.
        let manager = [0, nix::unistd::getuid().as_raw()];
        if !manager.contains(&named.uid()) || named.mode() & 0o077 != 0 {
            return Err(not_given(format!(
                "{path} may be opened by others (owner {}, mode {:o}): remove it, the next run makes it anew",
                named.uid(),
                named.mode() & 0o7777
            )));
        }
    }
    // SAFETY: plain descriptor calls; F_DUPFD leaves close-on-exec unset, so the command
    // (and what it starts) keeps the descriptor, and with it the lock.
    let mut fd = unsafe { libc::fcntl(0, libc::F_DUPFD, SLOT_FD_MIN) };
    if fd < 0 {
        fd = unsafe { libc::fcntl(0, libc::F_DUPFD, 3) };
    }
    if fd < 0 {
        return Err(CliError::System(format!(
            "max_parallel: cannot keep {path} open: {}",
            std::io::Error::last_os_error()
        )));
    }
    let null = std::fs::File::open("/dev/null")
        .map_err(|e| CliError::System(format!("cannot open /dev/null: {e}")))?;
    // SAFETY: dup2 onto standard input; `null` is closed when dropped.
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) } < 0 {
        return Err(CliError::System(format!(
            "cannot make /dev/null the standard input: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(fd)
}

/// Takes one of `max` slots of the slot file open on `fd`, waiting at most `wait`.
fn acquire(fd: RawFd, max: u16, wait: Duration, key: &str) -> Result<u16, CliError> {
    let sys = |what: &str| {
        CliError::System(format!(
            "max_parallel slot: {what}: {}",
            std::io::Error::last_os_error()
        ))
    };
    let deadline = Instant::now() + wait;
    // Polled: no lock can wait for "any one of N" to be free. Soon at first (a slot given
    // back a moment ago), then every 50 ms.
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(slot) = try_take(fd, max).map_err(sys)? {
            return Ok(slot);
        }
        if Instant::now() >= deadline {
            return Err(CliError::System(format!(
                "max_parallel: no slot of {max} came free in {} (the workflow's other tasks \
                 held them all: is one of them stuck? see `systemctl list-units '{}*'`); \
                 giving up. Set {WAIT_VAR} in the task's env: to wait longer",
                crate::compiler::duration::to_systemd(wait),
                key.rsplit('/')
                    .next()
                    .map_or(String::from("flow-"), |wf| format!("flow-{wf}")),
            )));
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// One look for a free slot, under the file's mutex.
fn try_take(fd: RawFd, max: u16) -> Result<Option<u16>, &'static str> {
    // SAFETY: flock and fcntl on a descriptor this process owns, with a stack struct.
    // Not waited for: another task looking right now is the same as no slot free now, and
    // the caller's bound on the wait holds even against a task that keeps the mutex.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EWOULDBLOCK | libc::EINTR) => Ok(None),
            _ => Err("cannot lock the slot file"),
        };
    }
    let mut taken = Ok(None);
    for slot in 0..max {
        let mut l = byte_lock(slot, libc::F_WRLCK);
        if unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut l) } < 0 {
            taken = Err("cannot read the slots");
            break;
        }
        if l.l_type == libc::F_UNLCK as i16 {
            let l = byte_lock(slot, libc::F_RDLCK);
            taken = if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &l) } == 0 {
                Ok(Some(slot))
            } else {
                Err("cannot take a slot")
            };
            break;
        }
    }
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    taken
}

/// A lock of type `kind` on byte `slot` of the file (`l_pid` must be 0 for OFD locks).
fn byte_lock(slot: u16, kind: libc::c_int) -> libc::flock {
    // SAFETY: a plain C struct, all fields set or zero.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = kind as i16;
    l.l_whence = libc::SEEK_SET as i16;
    l.l_start = libc::off_t::from(slot);
    l.l_len = 1;
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Two open file descriptions of one file, like two tasks' standard inputs: each
    /// takes its own slot, a third waits, and a slot comes free when its holder closes.
    #[test]
    fn slots_are_taken_once_and_freed_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wf.slots");
        std::fs::write(&path, b"").expect("write");
        let open = || std::fs::File::open(&path).expect("open");
        let (a, b, c) = (open(), open(), open());
        assert_eq!(try_take(a.as_raw_fd(), 2), Ok(Some(0)));
        assert_eq!(try_take(b.as_raw_fd(), 2), Ok(Some(1)));
        assert_eq!(try_take(c.as_raw_fd(), 2), Ok(None));
        let waited = acquire(c.as_raw_fd(), 2, Duration::from_millis(30), "/run/flow/wf");
        let message = waited.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("no slot of 2 came free"), "{message}");
        assert!(message.contains(WAIT_VAR), "{message}");
        drop(a);
        assert_eq!(try_take(c.as_raw_fd(), 2), Ok(Some(0)));
        // A larger max_parallel after an edit: the slots above are free.
        assert_eq!(try_take(open().as_raw_fd(), 3), Ok(Some(2)));
        // A task that keeps the mutex delays the others' look, within their bound.
        let d = open();
        let _mutex = nix::fcntl::Flock::lock(open(), nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock");
        assert_eq!(try_take(d.as_raw_fd(), 4), Ok(None));
        assert!(acquire(d.as_raw_fd(), 4, Duration::from_millis(30), "/run/flow/wf").is_err());
    }
}

//! `flow slot --max N --key KEY -- COMMAND...`: wait for one of N slots, then become COMMAND.
//!
//! This is how `max_parallel` works: every task of such a workflow starts through this gate.
//! A System V semaphore holds the free slots. The slot is taken with `SEM_UNDO` and the
//! command then replaces this process (`exec`), so the kernel gives the slot back when the
//! task's process ends, however it ends (exit, timeout, SIGKILL, out of memory): nothing to
//! clean up and no lock files to go stale. Why not a crate: none wraps SysV semaphores with
//! `SEM_UNDO`, and POSIX semaphores have no undo at all.

use std::ffi::CString;
use std::time::{Duration, Instant};

use super::exit::CliError;

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
    acquire(&key, max)?;
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

/// A semaphore key per (key, max): changing `max_parallel` gives a fresh semaphore.
fn ipc_key(key: &str, max: u16) -> libc::key_t {
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes().chain(max.to_le_bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff).max(1) as libc::key_t
}

fn acquire(key: &str, max: u16) -> Result<(), CliError> {
    let k = ipc_key(key, max);
    let sys = |what: &str| {
        CliError::System(format!(
            "max_parallel slot: {what}: {}",
            std::io::Error::last_os_error()
        ))
    };
    // Tasks may run as any user, so every user must be able to take a slot.
    // SAFETY: plain syscalls on integers and a stack-allocated sembuf.
    let id = unsafe { libc::semget(k, 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o666) };
    let id = if id >= 0 {
        // We created it: fill it with `max` slots. This first semop also marks it ready.
        let mut fill = libc::sembuf {
            sem_num: 0,
            sem_op: max as i16,
            sem_flg: 0,
        };
        if unsafe { libc::semop(id, &mut fill, 1) } < 0 {
            return Err(sys("cannot initialise"));
        }
        id
    } else {
        let id = unsafe { libc::semget(k, 1, 0) };
        if id < 0 {
            return Err(sys("cannot open"));
        }
        wait_ready(id).ok_or_else(|| sys("never initialised"))?;
        id
    };
    let mut take = libc::sembuf {
        sem_num: 0,
        sem_op: -1,
        sem_flg: libc::SEM_UNDO as i16,
    };
    loop {
        if unsafe { libc::semop(id, &mut take, 1) } == 0 {
            return Ok(());
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(sys("cannot take a slot"));
        }
    }
}

/// Another task created the semaphore a moment ago; wait until it has been filled
/// (its last-operation time is set by the filling `semop`).
fn wait_ready(id: i32) -> Option<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: semid_ds is plain data, filled by the kernel.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        if unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) } < 0 {
            return None;
        }
        if ds.sem_otime != 0 {
            return Some(());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_key_and_max() {
        assert_ne!(ipc_key("/run/flow/a", 2), ipc_key("/run/flow/b", 2));
        assert_ne!(ipc_key("/run/flow/a", 2), ipc_key("/run/flow/a", 3));
        assert_eq!(ipc_key("/run/flow/a", 2), ipc_key("/run/flow/a", 2));
    }
}

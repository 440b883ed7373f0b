//! A throwaway systemd manager in new PID and mount namespaces on an overlay of `/`.
//!
//! Where PID 1 is not systemd (a container, a CI runner), [`Sandbox::boot`] starts a real
//! systemd system manager as PID 1 of new PID, mount, UTS, IPC, network and cgroup
//! namespaces, on an overlay of the host's root file system whose writes vanish with it,
//! with a `/dev` of its own and without the capabilities that act on the host's kernel as
//! a whole. `flow try` and the end-to-end tests run workflows there.
//!
//! Safety of the host is the point of the design (see `plan.rs` for each choice): booting
//! systemd on the host's real root would empty the host's `/tmp` and start the host's
//! services. Needs root. Killing PID 1 (which [`Drop`] does) ends the whole namespace.
//!
//! A sandbox's state directory holds a lock its program keeps for the sandbox's life, so
//! the next boot knows a program killed outright (`SIGKILL`) from a live one at once, and
//! removes what it left: the state directory and the cgroups.
//!
//! Each sandbox has a helper ("reaper") thread: it creates the sandbox's cgroups in a
//! private mount namespace, clones PID 1, waits for it to exit and then removes the
//! cgroups. PID 1 gets `SIGKILL` if that thread's process dies, so a crashed test leaves
//! no systemd behind (unless [`SandboxOptions::keep`] is set).

mod cgroup;
mod plan;
mod spawn;

pub use plan::{DEFAULT_MASKED, DROPPED_CAPABILITIES, HOST_NETWORK_DROPPED};

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::systemd::{Bus, Systemd, SystemdError};

/// `PATH` for commands run inside the sandbox (they must not inherit the host program's).
const INSIDE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often boot readiness is checked. Cheap: one D-Bus property read.
const READY_POLL: Duration = Duration::from_millis(10);

/// Why a sandbox could not be booted or used. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("booting a systemd sandbox needs root: run as root (sudo ...)")]
    NotRoot,
    #[error(
        "{path} not found: the sandbox boots the host's systemd; install systemd (apt install systemd)"
    )]
    NoSystemd { path: PathBuf },
    #[error(
        "nsenter not found in PATH: it enters the sandbox; install util-linux (apt install util-linux)"
    )]
    NoNsenter,
    #[error(
        "the kernel refused to mount an overlay of / ({errno}): the sandbox needs overlayfs \
         (try `modprobe overlay`; in a container, run it privileged)"
    )]
    OverlayUnsupported { errno: Errno },
    #[error("sandbox setup failed: could not {step}: {errno}")]
    Setup { step: String, errno: Errno },
    #[error(
        "could not give the sandbox its own cgroup: {step}: {error}\n  \
         the sandbox needs to mount cgroup hierarchies (root, not in an unprivileged container)"
    )]
    Cgroup { step: String, error: io::Error },
    #[error("invalid sandbox option: {what}")]
    InvalidOption { what: String },
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
    #[error(
        "systemd in the sandbox exited during boot ({status}); run with keep and read its journal, or check the host's kernel log"
    )]
    Exited { status: String },
    #[error(
        "systemd in the sandbox did not finish booting within {timeout:?} (state: {state}{jobs})\n  \
         a slow or overloaded machine? raise SandboxOptions::boot_timeout"
    )]
    BootTimeout {
        timeout: Duration,
        state: String,
        jobs: String,
    },
    #[error("{what} failed inside the sandbox ({status}): {stderr}")]
    Inside {
        what: String,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Systemd(#[from] SystemdError),
}

/// How to boot a sandbox. Start from `SandboxOptions::default()`.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Leave the sandbox running when the [`Sandbox`] is dropped or the program exits
    /// (`flow try --keep`); [`Sandbox::enter_hint`] tells a person how to get in.
    pub keep: bool,
    /// Units to mask on top of [`DEFAULT_MASKED`] (unit file names, templates allowed).
    pub mask: Vec<String>,
    /// How long boot may take before it is an error.
    pub boot_timeout: Duration,
    /// The systemd binary to boot.
    pub systemd: PathBuf,
    /// Show the host's `/etc/systemd/system` (its own units and what it enabled) in the
    /// sandbox. Off by default: the host's services must not start there.
    pub host_units: bool,
    /// Where the state directory goes; the system's temporary directory by default.
    pub state_parent: Option<PathBuf>,
    /// Share the host's network namespace (`flow try --network host`): tasks reach what
    /// the host reaches, its loopback services included. Off by default: the sandbox gets
    /// a network of its own with loopback only. `CAP_NET_ADMIN` is dropped when on.
    pub host_network: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            keep: false,
            mask: Vec::new(),
            boot_timeout: Duration::from_secs(30),
            systemd: PathBuf::from("/lib/systemd/systemd"),
            host_units: false,
            state_parent: None,
            host_network: false,
        }
    }
}

/// Whether PID 1 has exited, shared by the reaper thread and the [`Sandbox`]. Signals are
/// only sent while this says "running", under its lock, and the reaper only reaps under
/// the same lock: a PID that was reaped (and could be reused) is never signalled.
#[derive(Default)]
struct ChildWatch {
    exited: Mutex<Option<String>>,
}

impl ChildWatch {
    fn status(&self) -> Option<String> {
        self.exited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn kill(&self, pid: Pid) {
        let exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        if exited.is_none() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    /// Waits for PID 1 to exit, then reaps it. Runs on the reaper thread.
    fn wait_and_reap(&self, pid: Pid) {
        // WNOWAIT: learn that it exited without reaping, so the PID stays ours until the
        // lock below is held.
        while let Err(Errno::EINTR) =
            waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
        {}
        let mut exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        let status = match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => format!("exit status {code}"),
            Ok(WaitStatus::Signaled(_, signal, _)) => format!("killed by {signal}"),
            Ok(other) => format!("{other:?}"),
            // ECHILD: someone else reaped it (SIGCHLD ignored by the program).
            Err(e) => format!("gone ({e})"),
        };
        *exited = Some(status);
    }
}

/// A running sandbox: systemd as PID 1 of its own namespaces. Dropping it kills it (unless
/// booted with [`SandboxOptions::keep`]).
pub struct Sandbox {
    pid: Pid,
    state: PathBuf,
    keep: bool,
    watch: Arc<ChildWatch>,
    reaper: Option<JoinHandle<()>>,
    /// The capabilities dropped in the sandbox, dropped from commands run in it too.
    dropped_caps: Arc<[libc::c_int]>,
    /// Held while this program owns the sandbox (see [`sweep_stale_state_dirs`]).
    _lock: Flock<File>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.pid)
            .field("state", &self.state)
            .field("keep", &self.keep)
            .finish()
    }
}

impl Sandbox {
    /// Boots a sandbox with default options and waits until systemd is up.
    pub fn boot() -> Result<Sandbox, SandboxError> {
        Sandbox::boot_with(SandboxOptions::default())
    }

    /// Boots a sandbox and waits until its manager reports `running` or `degraded`.
    pub fn boot_with(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(SandboxError::NotRoot);
        }
        if !is_executable(&opts.systemd) {
            return Err(SandboxError::NoSystemd {
                path: opts.systemd.clone(),
            });
        }
        if find_in_path("nsenter").is_none() {
            return Err(SandboxError::NoNsenter);
        }
        let (state, lock, stale) = make_state_dir(opts.state_parent.as_deref())?;
        if opts.keep {
            // A kept sandbox outlives its program's lock: see sweep_stale_state_dirs.
            let _ = std::fs::write(state.join("keep"), "");
        }
        let layout = plan::Layout {
            state: state.clone(),
            systemd: opts.systemd.clone(),
            masked: DEFAULT_MASKED
                .iter()
                .map(|s| s.to_string())
                .chain(opts.mask.iter().cloned())
                .collect(),
            generators: plan::host_generators(),
            host_units: opts.host_units,
            die_with_parent: !opts.keep,
            host_network: opts.host_network,
        };
        match Sandbox::start(layout, opts.keep, lock, stale) {
            Ok(sandbox) => match sandbox.wait_ready(opts.boot_timeout) {
                Ok(()) => Ok(sandbox),
                Err(e) => {
                    sandbox.shutdown();
                    Err(e)
                }
            },
            Err(e) => {
                let _ = std::fs::remove_dir_all(&state);
                Err(e)
            }
        }
    }

    /// Starts the reaper thread, which clones PID 1; returns once systemd was exec'd.
    fn start(
        layout: plan::Layout,
        keep: bool,
        lock: Flock<File>,
        stale: Vec<String>,
    ) -> Result<Sandbox, SandboxError> {
        let state = layout.state.clone();
        let dropped_caps: Arc<[libc::c_int]> =
            plan::dropped_capabilities(layout.host_network).into();
        let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SandboxError::Io {
                what: "create a pipe".into(),
                error: e.into(),
            })?;
        let watch = Arc::new(ChildWatch::default());
        let (started_tx, started_rx) = mpsc::channel();
        let reaper_watch = Arc::clone(&watch);
        let name = state
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "flow-sandbox".into());
        let reaper = thread::Builder::new()
            .name("flow-sandbox".into())
            .spawn(move || {
                reaper_main(
                    layout,
                    &name,
                    &stale,
                    report_write,
                    &reaper_watch,
                    started_tx,
                )
            })
            .map_err(|e| SandboxError::Io {
                what: "start the sandbox's helper thread".into(),
                error: e,
            })?;
        let started = started_rx.recv().unwrap_or_else(|_| {
            Err(SandboxError::Io {
                what: "start the sandbox".into(),
                error: io::Error::other("the helper thread ended without a word"),
            })
        });
        let (pid, descriptions, overlay_op) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = reaper.join();
                return Err(e);
            }
        };
        // Lets a later boot tell a dead sandbox's leftover state directory from a live one.
        let _ = std::fs::write(state.join("pid"), format!("{pid}\n"));
        let sandbox = Sandbox {
            pid,
            state,
            keep,
            watch,
            reaper: Some(reaper),
            dropped_caps,
            _lock: lock,
        };
        // End of file: exec succeeded (the pipe is close-on-exec). Eight bytes: a step failed.
        let mut buf = [0u8; spawn::ChildFailure::WIRE_SIZE];
        let mut report = File::from(report_read);
        let mut got = 0;
        while got < buf.len() {
            match report.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if got == buf.len() {
            let failure = spawn::ChildFailure::decode(&buf);
            sandbox.shutdown();
            return Err(
                if failure.op == overlay_op
                    && matches!(
                        failure.errno,
                        Errno::ENODEV | Errno::EINVAL | Errno::ENOTSUP
                    )
                {
                    SandboxError::OverlayUnsupported {
                        errno: failure.errno,
                    }
                } else {
                    SandboxError::Setup {
                        step: descriptions
                            .get(failure.op)
                            .cloned()
                            .unwrap_or_else(|| "exec systemd".into()),
                        errno: failure.errno,
                    }
                },
            );
        }
        Ok(sandbox)
    }

    /// Waits until the manager is up: its bus answers and it reports `running` (or
    /// `degraded`: booted, with a failed unit).
    fn wait_ready(&self, timeout: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + timeout;
        let socket = self.root().join("run/dbus/system_bus_socket");
        let mut state = String::from("no system bus yet");
        let mut systemd: Option<Systemd> = None;
        while Instant::now() < deadline {
            if let Some(status) = self.watch.status() {
                return Err(SandboxError::Exited { status });
            }
            match &systemd {
                None if socket.exists() => {
                    state = "system bus not answering yet".into();
                    systemd = connect_within(self.bus_address(), deadline);
                }
                None => {}
                Some(sd) => match sd.system_state() {
                    Ok(s) if s == "running" || s == "degraded" => return Ok(()),
                    Ok(s) => state = s,
                    // systemd is not on the bus yet (dbus started first): keep asking.
                    Err(e) => state = e.to_string(),
                },
            }
            thread::sleep(READY_POLL);
        }
        let jobs = systemd
            .and_then(|sd| sd.list_jobs().ok())
            .filter(|jobs| !jobs.is_empty())
            .map(|jobs| {
                let list: Vec<String> = jobs
                    .iter()
                    .map(|j| format!("{} {} ({})", j.job_type, j.unit, j.state))
                    .collect();
                format!("; waiting on: {}", list.join(", "))
            })
            .unwrap_or_default();
        Err(SandboxError::BootTimeout {
            timeout,
            state,
            jobs,
        })
    }

    /// Host PID of the sandbox's PID 1 (systemd).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// The sandbox's state directory on the host; its name also names the sandbox's
    /// cgroups (`.../flow-sandbox.XXXXXX`). Removed by shutdown.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The sandbox's file system as seen from the host (`/proc/<pid>/root`). Fine for
    /// reading; absolute symlinks inside resolve against the host's root from here, so
    /// write with [`Sandbox::copy_in`] or [`Sandbox::write_file`] instead.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
    }

    /// D-Bus address of the sandbox's system bus, reachable from the host (as root).
    /// systemd's private socket (`/run/systemd/private`) is peer-to-peer and would need
    /// zbus's `p2p` feature; the bus works with the same code as a real host.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid
        )
    }

    /// Connects a D-Bus client to the sandbox's manager.
    pub fn systemd(&self) -> Result<Systemd, SandboxError> {
        Ok(Systemd::connect(Bus::Address(self.bus_address()))?)
    }

    /// A command that runs `program` inside the sandbox (every namespace, its root, its
    /// PID 1 as ancestor), via `nsenter`. The environment is clean: `PATH`, `HOME`, `LANG`
    /// and a pager setting that cannot block; add more with `.env()`.
    ///
    /// What runs inside is in a session of its own (no controlling terminal: `/dev/tty`
    /// inside cannot reach the caller's), with the sandbox's bounding set (so a task that
    /// attaches to it gains nothing), without any descriptor but its stdio, and with stdin
    /// from `/dev/null` unless the caller sets one. Pass its stdout and stderr through pipes to keep the caller's terminal out of
    /// the sandbox: a process inside can open another's descriptors in `/proc`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid))
            .args([
                "--mount", "--pid", "--uts", "--ipc", "--net", "--cgroup", "--",
            ])
            .arg(program)
            .stdin(Stdio::null())
            .env_clear()
            .env("PATH", INSIDE_PATH)
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            // systemctl and journalctl start a pager on a terminal; a test must not wait on it.
            .env("SYSTEMD_PAGER", "cat");
        let caps = Arc::clone(&self.dropped_caps);
        // SAFETY: runs between fork and exec, and only makes async-signal-safe system calls
        // (setsid, prctl, capget/capset) on data allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // EPERM: the caller made the child a process group leader; it keeps the
                // caller's session then, and its stdio decides what it can reach.
                let _ = libc::setsid();
                // Descriptors this program inherited without close-on-exec (a terminal
                // its parent left open) must not reach inside.
                spawn::cloexec_from_3().map_err(io::Error::from)?;
                spawn::drop_capabilities(&caps).map_err(io::Error::from)
            });
        }
        cmd
    }

    /// Copies a host file into the sandbox at the absolute path `inside`, creating parent
    /// directories and keeping the file's permission bits.
    pub fn copy_in(&self, host: &Path, inside: &Path) -> Result<(), SandboxError> {
        let file = File::open(host).map_err(|e| SandboxError::Io {
            what: format!("open {}", host.display()),
            error: e,
        })?;
        let mode = file
            .metadata()
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(|e| SandboxError::Io {
                what: format!("read the permissions of {}", host.display()),
                error: e,
            })?;
        self.install(inside, mode, Stdio::from(file), None)
    }

    /// Writes `contents` to the absolute path `inside` (mode 0644), creating parent
    /// directories. For unit files, scripts and fixtures in tests.
    pub fn write_file(
        &self,
        inside: &Path,
        contents: impl AsRef<[u8]>,
    ) -> Result<(), SandboxError> {
        self.install(inside, 0o644, Stdio::piped(), Some(contents.as_ref()))
    }

    /// Runs `install -D` inside, so that the path resolves in the sandbox's own root
    /// (symlinks included), never the host's.
    fn install(
        &self,
        inside: &Path,
        mode: u32,
        stdin: Stdio,
        contents: Option<&[u8]>,
    ) -> Result<(), SandboxError> {
        if !inside.is_absolute() {
            return Err(SandboxError::InvalidOption {
                what: format!("{} is not an absolute path", inside.display()),
            });
        }
        let what = format!("writing {}", inside.display());
        let mut child = self
            .command("install")
            .args(["-D", "-m", &format!("{mode:o}"), "/dev/stdin"])
            .arg(inside)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::Io {
                what: what.clone(),
                error: e,
            })?;
        if let (Some(data), Some(mut pipe)) = (contents, child.stdin.take()) {
            pipe.write_all(data).map_err(|e| SandboxError::Io {
                what: what.clone(),
                error: e,
            })?;
        }
        let out = child.wait_with_output().map_err(|e| SandboxError::Io {
            what: what.clone(),
            error: e,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SandboxError::Inside {
                what,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// A shell command a person can paste to get a shell inside (for `flow try --keep`).
    pub fn enter_hint(&self) -> String {
        format!(
            "nsenter --target={} --mount --pid --uts --ipc --net --cgroup /bin/bash -l",
            self.pid
        )
    }

    /// A shell command a person can paste to end a kept sandbox.
    pub fn kill_hint(&self) -> String {
        format!("kill -9 {} && rm -rf {}", self.pid, self.state.display())
    }

    /// Kills the sandbox (`SIGKILL` to PID 1 ends the namespace), waits for it to be gone,
    /// and removes its state directory and cgroups. Also for a sandbox booted with `keep`.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.watch.kill(self.pid);
        if let Some(reaper) = self.reaper.take() {
            // The reaper returns once PID 1 is reaped and the cgroups are removed.
            let _ = reaper.join();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.keep {
            self.stop();
        }
    }
}

type Started = Result<(Pid, Vec<String>, usize), SandboxError>;

/// The reaper thread: cgroups, clone, report, wait, clean up.
fn reaper_main(
    layout: plan::Layout,
    name: &str,
    stale: &[String],
    report_write: OwnedFd,
    watch: &ChildWatch,
    started: mpsc::Sender<Started>,
) {
    let spawned = (|| {
        cgroup::private_mount_namespace()?;
        let cgroups = cgroup::Cgroups::create(&layout.cgroup_dir(), name, stale)?;
        let plan = plan::build(&layout, &cgroups.procs_fds())?;
        let pid =
            spawn::spawn(&plan, report_write.as_raw_fd()).map_err(|errno| SandboxError::Setup {
                step: "clone into new namespaces".into(),
                errno,
            })?;
        let descriptions = plan.ops.iter().map(spawn::Op::describe).collect();
        Ok::<_, SandboxError>((pid, cgroups, descriptions, plan.overlay_op))
    })();
    // Only PID 1 may hold the write end now, so its exec (or exit) ends the reader's wait.
    drop(report_write);
    match spawned {
        Err(e) => {
            let _ = started.send(Err(e));
        }
        Ok((pid, mut cgroups, descriptions, overlay_op)) => {
            cgroups.close_procs();
            let _ = started.send(Ok((pid, descriptions, overlay_op)));
            watch.wait_and_reap(pid);
            cgroups.remove();
        }
    }
}

/// Connects to the sandbox's bus, giving up at `deadline`. The attempt runs on its own
/// thread because a connection to a socket-activated bus blocks until the bus daemon
/// runs; if it never does, the thread is left to fail when the sandbox is killed.
fn connect_within(address: String, deadline: Instant) -> Option<Systemd> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("flow-sandbox-connect".into())
        .spawn(move || {
            let _ = tx.send(Systemd::connect(Bus::Address(address)));
        })
        .ok()?;
    let left = deadline.saturating_duration_since(Instant::now());
    rx.recv_timeout(left).ok()?.ok()
}

/// Creates `<parent>/flow-sandbox.XXXXXX` (parent: the temporary directory by default) and
/// takes its lock. Also removes what sandboxes of killed programs left in `parent`, and
/// returns their names: their cgroups go next.
fn make_state_dir(
    parent: Option<&Path>,
) -> Result<(PathBuf, Flock<File>, Vec<String>), SandboxError> {
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let stale = sweep_stale_state_dirs(&parent);
    let state = nix::unistd::mkdtemp(&parent.join("flow-sandbox.XXXXXX")).map_err(|e| {
        SandboxError::Io {
            what: format!("create a state directory in {}", parent.display()),
            error: e.into(),
        }
    })?;
    let made = (|| {
        // Locked before it is named `lock`: another program's sweep that found an unlocked
        // `lock` would take this directory for a dead sandbox's and remove it.
        let unnamed = state.join("lock.new");
        let lock = File::create(&unnamed).map_err(|e| SandboxError::Io {
            what: format!("create {}", unnamed.display()),
            error: e,
        })?;
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            SandboxError::Io {
                what: format!("lock {}", unnamed.display()),
                error: e.into(),
            }
        })?;
        std::fs::rename(&unnamed, state.join("lock")).map_err(|e| SandboxError::Io {
            what: format!("rename {}", unnamed.display()),
            error: e,
        })?;
        for dir in ["ov", "root", "cg"] {
            std::fs::create_dir(state.join(dir)).map_err(|e| SandboxError::Io {
                what: format!("create {}", state.join(dir).display()),
                error: e,
            })?;
        }
        Ok(lock)
    })();
    match made {
        Ok(lock) => Ok((state, lock, stale)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state);
            Err(e)
        }
    }
}

/// Removes state directories of sandboxes whose program was killed before it could clean
/// up, and returns their names. A program holds its sandbox's `lock` as long as it runs,
/// so a lock that can be taken means the program is gone, and its sandbox (whose PID 1
/// dies with it) too; except a kept one (`keep`), which lives on while its PID 1 does. A
/// directory without a lock (it is made a moment after the directory) counts as dead
/// once it is a minute old and its PID 1 is gone.
fn sweep_stale_state_dirs(parent: &Path) -> Vec<String> {
    let mut stale = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return stale;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("flow-sandbox.") || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let alive =
            |pid: Option<u32>| pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        let dead = match File::open(path.join("lock")) {
            Ok(lock) => match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
                // Its program is running.
                Err(_) => false,
                Ok(_free) => !(path.join("keep").exists() && alive(pid)),
            },
            Err(_) => {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(60)));
                old && !alive(pid)
            }
        };
        if !dead {
            continue;
        }
        // PID 1 got SIGKILL when its program died; give it a moment to be gone, so its
        // cgroups are empty when they are removed.
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            stale.push(name);
        }
    }
    stale
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

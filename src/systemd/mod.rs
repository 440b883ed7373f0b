//! A small client for the systemd manager over D-Bus.
//!
//! It covers what flow needs and nothing more: reload, start/stop a unit and wait for the
//! job's result, enable/disable unit files, and read the state of a unit. It works the same
//! against the host's system bus, a user's session bus, or a sandbox's bus given by address
//! (see [`crate::sandbox::Sandbox::bus_address`]).
//!
//! Waiting for a job is event-driven: the `JobRemoved` stream is opened before the job is
//! queued, so a job that finishes at once is never missed.
//!
//! systemd unloads a unit as soon as it is inactive and nothing references it, and with
//! it goes everything about its last run (`Result`, exit status, `InvocationID`,
//! timestamps): a finished oneshot looks as if it never ran. Starting a unit through this
//! client therefore pins it first (`RefUnit`); the pin lasts as long as the connection, or
//! until [`Systemd::unref_unit`].

pub mod journal;
pub mod private;
mod proxy;
pub mod watch;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use zbus::blocking::Connection;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use proxy::ManagerProxy;

const SERVICE: &str = "org.freedesktop.systemd1";
/// How long one method call may take. Calls return quickly (a start returns a job path, not
/// the job's end); only a wedged manager exceeds this, and then an error beats hanging.
const METHOD_TIMEOUT: Duration = Duration::from_secs(90);

/// Which manager to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system manager, over the system bus.
    System,
    /// The calling user's manager, over the session bus.
    User,
    /// A bus at a D-Bus address, such as `unix:path=/run/dbus/system_bus_socket`.
    Address(String),
}

impl Bus {
    /// The system's manager, or (`user`) the calling user's own.
    pub fn manager(user: bool) -> Bus {
        if user { Bus::User } else { Bus::System }
    }
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bus::System => f.write_str("system bus"),
            Bus::User => match unix_path(self) {
                Some(path) => write!(f, "user bus at {}", path.display()),
                None => f.write_str("user (session) bus"),
            },
            Bus::Address(a) => write!(f, "bus at {a}"),
        }
    }
}

impl Bus {
    /// What to check when this bus cannot be reached.
    fn advice(&self) -> &'static str {
        match self {
            Bus::User => {
                "is your user manager running? It runs while you are logged in, and always \
                 after `loginctl enable-linger`; its bus is $DBUS_SESSION_BUS_ADDRESS, else \
                 $XDG_RUNTIME_DIR/bus, else /run/user/UID/bus"
            }
            _ => "is systemd running as PID 1? (`flow try` runs workflows in a throwaway systemd)",
        }
    }
}

/// What went wrong talking to systemd. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot reach systemd's {bus}: {error}\n  {}", .bus.advice())]
    Connect { bus: Bus, error: Box<zbus::Error> },
    #[error("systemd has no unit named {name}: check the name, or write the unit file and reload")]
    NoSuchUnit { name: String },
    #[error(
        "systemd denied {action}: {message}\n  run as root (sudo ...), or use --user for your own units"
    )]
    AccessDenied { action: String, message: String },
    #[error("systemd refused {action}: {message}")]
    Refused { action: String, message: String },
    #[error("talking to systemd failed during {action}: {error}")]
    Bus {
        action: String,
        error: Box<zbus::Error>,
    },
    #[error(
        "the connection to systemd closed while waiting for {action}\n  \
         did the manager exit or restart?"
    )]
    Disconnected { action: String },
}

impl SystemdError {
    fn from_call(action: impl Into<String>, error: zbus::Error) -> SystemdError {
        let action = action.into();
        if let zbus::Error::MethodError(name, message, _) = &error {
            let message = message.clone().unwrap_or_default();
            return match name.as_str() {
                "org.freedesktop.systemd1.NoSuchUnit" => SystemdError::NoSuchUnit {
                    name: unit_in(&action),
                },
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                    SystemdError::AccessDenied { action, message }
                }
                _ => SystemdError::Refused { action, message },
            };
        }
        SystemdError::Bus {
            action,
            error: Box::new(error),
        }
    }
}

/// The unit named inside an action string such as `start foo.service`.
fn unit_in(action: &str) -> String {
    action.rsplit(' ').next().unwrap_or(action).to_string()
}

/// How a job ended, as systemd reports it in `JobRemoved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    Timeout,
    Failed,
    /// A unit this one `Requires=` failed; this unit did not run.
    Dependency,
    /// A condition was not met (or the job did not apply); the unit did not run.
    Skipped,
    Invalid,
    Assert,
    Unsupported,
    Collected,
    Once,
    /// A result this version of flow does not know (newer systemd).
    Other(String),
}

impl JobResult {
    /// Parses systemd's result string; unknown strings are kept in [`JobResult::Other`].
    pub fn parse(s: &str) -> JobResult {
        match s {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            "invalid" => JobResult::Invalid,
            "assert" => JobResult::Assert,
            "unsupported" => JobResult::Unsupported,
            "collected" => JobResult::Collected,
            "once" => JobResult::Once,
            other => JobResult::Other(other.to_string()),
        }
    }

    /// systemd's own spelling.
    pub fn as_str(&self) -> &str {
        match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Timeout => "timeout",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
            JobResult::Skipped => "skipped",
            JobResult::Invalid => "invalid",
            JobResult::Assert => "assert",
            JobResult::Unsupported => "unsupported",
            JobResult::Collected => "collected",
            JobResult::Once => "once",
            JobResult::Other(s) => s,
        }
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub id: u32,
    /// The job's object path.
    pub job: String,
    pub unit: String,
    pub result: JobResult,
}

/// A snapshot of a unit's state. Timestamps are µs since the Unix epoch; `None` where
/// systemd reports 0 (never happened) or the property does not apply to the unit type.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub name: String,
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// `success`, `exit-code`, `signal`, `timeout`, ... (services, timers, sockets, mounts...).
    pub result: Option<String>,
    /// The current or last activation's ID, 32 lowercase hex digits.
    pub invocation_id: Option<String>,
    pub exec_main_start_timestamp: Option<u64>,
    pub exec_main_exit_timestamp: Option<u64>,
    /// `CLD_EXITED` (1), `CLD_KILLED` (2) or `CLD_DUMPED` (3); 0 if the service never ran.
    pub exec_main_code: i32,
    /// The exit status, or the signal number when killed.
    pub exec_main_status: i32,
    pub inactive_exit_timestamp: Option<u64>,
    pub active_enter_timestamp: Option<u64>,
    pub inactive_enter_timestamp: Option<u64>,
    /// Timers: when the timer elapses next on the realtime clock.
    pub next_elapse_realtime: Option<u64>,
    /// Timers with `OnActiveSec=`/`OnUnitActiveSec=` (`every:`): when the timer elapses next
    /// on the monotonic clock (µs since boot, `CLOCK_MONOTONIC`).
    pub next_elapse_monotonic: Option<u64>,
    /// Timers: when the timer last elapsed (realtime µs).
    pub last_trigger: Option<u64>,
    /// Services: CPU time used by the last activation (needs CPU accounting).
    pub cpu_usage_nsec: Option<u64>,
    /// Services: peak memory of the last activation (systemd 255 and later report it).
    pub memory_peak: Option<u64>,
}

/// What the manager accounts for a unit whose file does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountingDefaults {
    /// `DefaultCPUAccounting=`: `CPUUsageNSec` is known after a run.
    pub cpu: bool,
    /// `DefaultMemoryAccounting=`.
    pub memory: bool,
    /// The manager reports `MemoryPeak` (systemd 255 and later).
    pub memory_peak: bool,
}

/// The major number of a manager version string such as `252.38-1~deb12u1` or `255`.
fn major_version(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One unit as `ListUnitsByPatterns` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSummary {
    pub name: String,
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// A job queued for the unit: its id and type (`start`, `stop`, ...).
    pub job: Option<(u32, String)>,
}

/// A queued job as `ListJobs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub id: u32,
    pub unit: String,
    pub job_type: String,
    /// `waiting` or `running`.
    pub state: String,
}

/// One file change made by enable or disable: `symlink` or `unlink`, the file, its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFileChange {
    pub kind: String,
    pub file: String,
    pub destination: String,
}

/// A connection to one systemd manager.
pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
    /// Whether this client has subscribed to the manager's signals (see
    /// [`Systemd::subscribe`]).
    subscribed: std::sync::atomic::AtomicBool,
}

/// The socket path of a bus given as one plain `unix:path=...` address, if it is that.
fn unix_path(bus: &Bus) -> Option<std::path::PathBuf> {
    let address = match bus {
        Bus::System => std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into()),
        Bus::User => std::env::var("DBUS_SESSION_BUS_ADDRESS").ok()?,
        Bus::Address(a) => a.clone(),
    };
    let keys = address.strip_prefix("unix:")?;
    if keys.contains([';', '%']) {
        return None;
    }
    let mut path = None;
    for kv in keys.split(',') {
        match kv.split_once('=') {
            Some(("path", p)) if !p.is_empty() => path = Some(std::path::PathBuf::from(p)),
            Some(("guid", _)) => {}
            _ => return None,
        }
    }
    path
}

impl Systemd {
    /// Connects. Subscribes to the manager's signals only when something waits for them
    /// (a job's end, a [`Systemd::watch`]): while any client on the bus is subscribed, PID 1
    /// sends a change signal on it for every unit that changes, which costs systemd time.
    pub fn connect(bus: Bus) -> Result<Systemd, SystemdError> {
        // A unix socket is connected here rather than by zbus: zbus connects it on the
        // `blocking` crate's thread pool, whose idle thread then stays for the life of the
        // process and wakes every 500 ms (a `wait_timeout` loop), which an idle supervisor
        // must not do. Other addresses (several, escaped, tcp) are left to zbus.
        let builder = match unix_path(&bus) {
            Some(path) => std::os::unix::net::UnixStream::connect(&path)
                .map_err(|e| zbus::Error::InputOutput(std::sync::Arc::new(e)))
                .map(zbus::blocking::connection::Builder::async_io_unix_stream),
            None => match &bus {
                Bus::System => zbus::blocking::connection::Builder::system(),
                Bus::User => zbus::blocking::connection::Builder::session(),
                Bus::Address(a) => zbus::blocking::connection::Builder::address(a.as_str()),
            },
        };
        let conn = builder
            .and_then(|b| b.method_timeout(METHOD_TIMEOUT).build())
            .map_err(|error| SystemdError::Connect {
                bus: bus.clone(),
                error: Box::new(error),
            })?;
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .map_err(|e| SystemdError::from_call("creating the manager proxy", e))?;
        // One call to tell whether systemd is there at all.
        manager.version().map_err(|error| match error {
            // The bus is up but systemd is not on it: the same advice as a failed connect.
            zbus::Error::MethodError(ref name, _, _)
                if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                    || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
            {
                SystemdError::Connect {
                    bus: bus.clone(),
                    error: Box::new(error),
                }
            }
            e => SystemdError::from_call("reach systemd", e),
        })?;
        Ok(Systemd {
            conn,
            manager,
            subscribed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Subscribes to the manager's signals, once: a bus client gets no `JobRemoved`
    /// signals unless it subscribed. The subscription ends with the connection.
    pub fn subscribe(&self) -> Result<(), SystemdError> {
        use std::sync::atomic::Ordering;
        if self.subscribed.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.manager
            .subscribe()
            .map_err(|e| SystemdError::from_call("subscribe", e))?;
        self.subscribed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Re-reads all unit files (`systemctl daemon-reload`); returns once the reload is done.
    pub fn reload(&self) -> Result<(), SystemdError> {
        self.manager
            .reload()
            .map_err(|e| SystemdError::from_call("daemon reload", e))
    }

    /// Starts a unit (mode `replace`) and waits until its job is removed. The unit is
    /// pinned (see the module docs) so that its state can be read after it finished.
    pub fn start_unit(&self, name: &str) -> Result<JobOutcome, SystemdError> {
        self.ref_unit(name)?;
        self.run_job(&format!("start {name}"), |m| m.start_unit(name, "replace"))
    }

    /// Queues a start job and returns without waiting for it. Pins the unit, like
    /// [`Systemd::start_unit`].
    pub fn start_unit_no_wait(&self, name: &str) -> Result<(), SystemdError> {
        self.ref_unit(name)?;
        self.manager
            .start_unit(name, "replace")
            .map(|_| ())
            .map_err(|e| SystemdError::from_call(format!("start {name}"), e))
    }

    /// Queues a start job and returns without waiting for it, without pinning the unit:
    /// for a caller that keeps the unit loaded otherwise (the supervisor pins the run unit,
    /// which references every task of its workflow).
    pub fn queue_start(&self, name: &str) -> Result<(), SystemdError> {
        self.manager
            .start_unit(name, "replace")
            .map(|_| ())
            .map_err(|e| SystemdError::from_call(format!("start {name}"), e))
    }

    /// Queues a stop job and returns without waiting for it.
    pub fn stop_unit_no_wait(&self, name: &str) -> Result<(), SystemdError> {
        self.manager
            .stop_unit(name, "replace")
            .map(|_| ())
            .map_err(|e| SystemdError::from_call(format!("stop {name}"), e))
    }

    /// The D-Bus connection, for signal streams of one's own (the supervisor's).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Stops a unit (mode `replace`) and waits until its job is removed.
    pub fn stop_unit(&self, name: &str) -> Result<JobOutcome, SystemdError> {
        self.run_job(&format!("stop {name}"), |m| m.stop_unit(name, "replace"))
    }

    /// Queues a job with `queue` and waits for its `JobRemoved` signal.
    fn run_job(
        &self,
        action: &str,
        queue: impl FnOnce(&ManagerProxy<'static>) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<JobOutcome, SystemdError> {
        // The stream (and its bus match rule) must exist before the job does: a job that
        // fails at once is removed before StartUnit's reply is even read.
        self.subscribe()?;
        let signals = self
            .manager
            .receive_job_removed()
            .map_err(|e| SystemdError::from_call(format!("{action} (watching jobs)"), e))?;
        let job = queue(&self.manager).map_err(|e| SystemdError::from_call(action, e))?;
        for signal in signals {
            let args = signal.args().map_err(|e| {
                SystemdError::from_call(format!("{action} (reading JobRemoved)"), e)
            })?;
            if args.job().as_str() == job.as_str() {
                return Ok(JobOutcome {
                    id: *args.id(),
                    job: job.to_string(),
                    unit: args.unit().to_string(),
                    result: JobResult::parse(args.result()),
                });
            }
        }
        Err(SystemdError::Disconnected {
            action: action.to_string(),
        })
    }

    /// Enables unit files (`EnableUnitFiles`, not runtime, force). Call [`Systemd::reload`]
    /// afterwards, as `systemctl enable` does, so the manager sees the new links.
    pub fn enable_unit_files(&self, names: &[String]) -> Result<Vec<UnitFileChange>, SystemdError> {
        let files: Vec<&str> = names.iter().map(String::as_str).collect();
        self.manager
            .enable_unit_files(&files, false, true)
            .map(|(_, changes)| changes.into_iter().map(change).collect())
            .map_err(|e| SystemdError::from_call(format!("enable {}", names.join(" ")), e))
    }

    /// Disables unit files (`DisableUnitFiles`, not runtime). Reload afterwards.
    pub fn disable_unit_files(
        &self,
        names: &[String],
    ) -> Result<Vec<UnitFileChange>, SystemdError> {
        let files: Vec<&str> = names.iter().map(String::as_str).collect();
        self.manager
            .disable_unit_files(&files, false)
            .map(|changes| changes.into_iter().map(change).collect())
            .map_err(|e| SystemdError::from_call(format!("disable {}", names.join(" ")), e))
    }

    /// Reads a unit's state. Loads the unit if needed, so a unit that never ran (or does
    /// not exist: `load_state` says `not-found`) still answers.
    pub fn unit_state(&self, name: &str) -> Result<UnitState, SystemdError> {
        let action = format!("read the state of {name}");
        let path = self
            .manager
            .load_unit(name)
            .map_err(|e| SystemdError::from_call(&action, e))?;
        let unit = self.properties(&path, "org.freedesktop.systemd1.Unit", &action)?;
        let mut state = UnitState {
            name: name.to_string(),
            ..UnitState::default()
        };
        state.fill_unit(&unit);
        if state.load_state != "loaded" {
            // A unit that is not loaded has no type-specific interface to read.
            return Ok(state);
        }
        let Some(iface) = type_interface(name) else {
            return Ok(state);
        };
        let typed = self.properties(&path, iface, &action)?;
        state.fill_typed(&typed);
        Ok(state)
    }

    /// Reads a unit's state in one call: `GetAll` with an empty interface name, which
    /// systemd answers with the properties of every interface of the object (and loads the
    /// unit if needed, as `LoadUnit` would). For a caller that must not keep PID 1 busy.
    pub fn unit_state_in_one_call(&self, name: &str) -> Result<UnitState, SystemdError> {
        let action = format!("read the state of {name}");
        let path = OwnedObjectPath::try_from(watch::unit_path(name))
            .map_err(|e| SystemdError::from_call(&action, e.into()))?;
        let all = self.properties(&path, "", &action)?;
        let mut state = UnitState {
            name: name.to_string(),
            ..UnitState::default()
        };
        state.fill_unit(&all);
        if state.load_state == "loaded" {
            state.fill_typed(&all);
        }
        Ok(state)
    }

    /// What a service's last activation used, `(CPUUsageNSec, MemoryPeak)`, each read only
    /// when asked for. systemd never sends these in `PropertiesChanged`, so a follower of
    /// the signals that records them must ask. One `Get` per value, not a `GetAll`: PID 1
    /// answers this as a task ends, while it could be starting the next one, and a
    /// service's `GetAll` serializes a few hundred properties.
    pub fn accounting(
        &self,
        name: &str,
        cpu: bool,
        memory_peak: bool,
    ) -> Result<(Option<u64>, Option<u64>), SystemdError> {
        let action = format!("read the resource use of {name}");
        let Some(iface) = type_interface(name) else {
            return Ok((None, None));
        };
        let path = OwnedObjectPath::try_from(watch::unit_path(name))
            .map_err(|e| SystemdError::from_call(&action, e.into()))?;
        let props = self.properties_proxy(&path, &action)?;
        let get = |key: &str| -> Result<Option<u64>, SystemdError> {
            let v: OwnedValue = props
                .call("Get", &(iface, key))
                .map_err(|e| SystemdError::from_call(&action, e))?;
            Ok(set_u64(&v))
        };
        let cpu_ns = if cpu { get("CPUUsageNSec")? } else { None };
        let peak = if memory_peak {
            get("MemoryPeak")?
        } else {
            None
        };
        Ok((cpu_ns, peak))
    }

    /// The manager's accounting defaults and whether it reports `MemoryPeak` (systemd 255
    /// and later): what a unit accounts unless its own file says otherwise.
    pub fn accounting_defaults(&self) -> Result<AccountingDefaults, SystemdError> {
        let action = "read the manager's accounting defaults";
        let cpu = self
            .manager
            .default_cpu_accounting()
            .map_err(|e| SystemdError::from_call(action, e))?;
        let memory = self
            .manager
            .default_memory_accounting()
            .map_err(|e| SystemdError::from_call(action, e))?;
        let version = self
            .manager
            .version()
            .map_err(|e| SystemdError::from_call(action, e))?;
        Ok(AccountingDefaults {
            cpu,
            memory,
            memory_peak: major_version(&version).is_some_and(|v| v >= 255),
        })
    }

    /// Lists loaded units whose names match any of the shell-style patterns.
    pub fn list_units_by_patterns(
        &self,
        patterns: &[&str],
    ) -> Result<Vec<UnitSummary>, SystemdError> {
        let rows = self
            .manager
            .list_units_by_patterns(&[], patterns)
            .map_err(|e| SystemdError::from_call("list units", e))?;
        Ok(rows
            .into_iter()
            .map(|r| UnitSummary {
                name: r.0,
                description: r.1,
                load_state: r.2,
                active_state: r.3,
                sub_state: r.4,
                job: (r.7 != 0).then_some((r.7, r.8)),
            })
            .collect())
    }

    /// Lists the jobs queued or running right now.
    pub fn list_jobs(&self) -> Result<Vec<JobSummary>, SystemdError> {
        let rows: Vec<(
            u32,
            String,
            String,
            String,
            OwnedObjectPath,
            OwnedObjectPath,
        )> = self
            .manager
            .inner()
            .call("ListJobs", &())
            .map_err(|e| SystemdError::from_call("list jobs", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, unit, job_type, state, _, _)| JobSummary {
                id,
                unit,
                job_type,
                state,
            })
            .collect())
    }

    /// Opens a stream of job ends and unit state changes. Open it before starting anything
    /// whose progress should be seen.
    pub fn watch(&self) -> Result<watch::Watch, SystemdError> {
        let w = watch::Watch::open(&self.conn)?;
        self.subscribe()?;
        Ok(w)
    }

    /// Keeps a unit loaded, with the state of its last run, while this connection lives.
    /// Each call adds one reference.
    pub fn ref_unit(&self, name: &str) -> Result<(), SystemdError> {
        self.manager
            .ref_unit(name)
            .map_err(|e| SystemdError::from_call(format!("pin {name}"), e))
    }

    /// Drops one reference taken by [`Systemd::ref_unit`] (or a start through this client).
    pub fn unref_unit(&self, name: &str) -> Result<(), SystemdError> {
        self.manager
            .unref_unit(name)
            .map_err(|e| SystemdError::from_call(format!("unpin {name}"), e))
    }

    /// Clears a unit's failed state (`systemctl reset-failed NAME`).
    pub fn reset_failed_unit(&self, name: &str) -> Result<(), SystemdError> {
        self.manager
            .reset_failed_unit(name)
            .map_err(|e| SystemdError::from_call(format!("reset-failed {name}"), e))
    }

    /// The manager's overall state: `starting`, `running`, `degraded`, ...
    pub fn system_state(&self) -> Result<String, SystemdError> {
        self.manager
            .system_state()
            .map_err(|e| SystemdError::from_call("read the system state", e))
    }

    /// All properties of one interface of a unit object, in one call.
    fn properties(
        &self,
        path: &OwnedObjectPath,
        interface: &str,
        action: &str,
    ) -> Result<HashMap<String, OwnedValue>, SystemdError> {
        self.properties_proxy(path, action)?
            .call("GetAll", &(interface,))
            .map_err(|e| SystemdError::from_call(action, e))
    }

    /// The `org.freedesktop.DBus.Properties` interface of a unit object.
    fn properties_proxy<'a>(
        &'a self,
        path: &'a OwnedObjectPath,
        action: &str,
    ) -> Result<zbus::blocking::Proxy<'a>, SystemdError> {
        zbus::blocking::Proxy::new(
            &self.conn,
            SERVICE,
            path.as_ref(),
            "org.freedesktop.DBus.Properties",
        )
        .map_err(|e| SystemdError::from_call(action, e))
    }
}

/// The interface that carries `Result` and friends for a unit, by the unit's suffix.
fn type_interface(name: &str) -> Option<&'static str> {
    let suffix = name.rsplit_once('.')?.1;
    Some(match suffix {
        "service" => "org.freedesktop.systemd1.Service",
        "timer" => "org.freedesktop.systemd1.Timer",
        "socket" => "org.freedesktop.systemd1.Socket",
        "mount" => "org.freedesktop.systemd1.Mount",
        "path" => "org.freedesktop.systemd1.Path",
        "swap" => "org.freedesktop.systemd1.Swap",
        "scope" => "org.freedesktop.systemd1.Scope",
        "automount" => "org.freedesktop.systemd1.Automount",
        _ => return None,
    })
}

fn change((kind, file, destination): (String, String, String)) -> UnitFileChange {
    UnitFileChange {
        kind,
        file,
        destination,
    }
}

fn string(props: &HashMap<String, OwnedValue>, key: &str) -> Option<String> {
    props
        .get(key)
        .and_then(|v| v.downcast_ref::<&str>().ok())
        .map(str::to_string)
}

fn int(props: &HashMap<String, OwnedValue>, key: &str) -> Option<i32> {
    props.get(key).and_then(|v| v.downcast_ref::<i32>().ok())
}

impl UnitState {
    /// Takes the properties of the `org.freedesktop.systemd1.Unit` interface found in
    /// `props` (from `GetAll` or `PropertiesChanged`); absent ones are left as they are.
    pub fn fill_unit(&mut self, props: &HashMap<String, OwnedValue>) {
        if let Some(v) = string(props, "LoadState") {
            self.load_state = v;
        }
        if let Some(v) = string(props, "ActiveState") {
            self.active_state = v;
        }
        if let Some(v) = string(props, "SubState") {
            self.sub_state = v;
        }
        if let Some(id) = bytes(props, "InvocationID") {
            self.invocation_id = (!id.is_empty()).then(|| hex(&id));
        }
        set_usec(
            props,
            "InactiveExitTimestamp",
            &mut self.inactive_exit_timestamp,
        );
        set_usec(
            props,
            "ActiveEnterTimestamp",
            &mut self.active_enter_timestamp,
        );
        set_usec(
            props,
            "InactiveEnterTimestamp",
            &mut self.inactive_enter_timestamp,
        );
    }

    /// Takes the properties of a unit's type interface (`...Service`, `...Timer`, ...)
    /// found in `props`; absent ones are left as they are.
    pub fn fill_typed(&mut self, props: &HashMap<String, OwnedValue>) {
        if let Some(v) = string(props, "Result") {
            self.result = Some(v);
        }
        set_usec(
            props,
            "ExecMainStartTimestamp",
            &mut self.exec_main_start_timestamp,
        );
        set_usec(
            props,
            "ExecMainExitTimestamp",
            &mut self.exec_main_exit_timestamp,
        );
        if let Some(v) = int(props, "ExecMainCode") {
            self.exec_main_code = v;
        }
        if let Some(v) = int(props, "ExecMainStatus") {
            self.exec_main_status = v;
        }
        set_usec(
            props,
            "NextElapseUSecRealtime",
            &mut self.next_elapse_realtime,
        );
        set_usec(
            props,
            "NextElapseUSecMonotonic",
            &mut self.next_elapse_monotonic,
        );
        set_usec(props, "LastTriggerUSec", &mut self.last_trigger);
        set_usec(props, "CPUUsageNSec", &mut self.cpu_usage_nsec);
        set_usec(props, "MemoryPeak", &mut self.memory_peak);
    }

    /// When a timer elapses next, as realtime µs: monotonic elapse times (from `every:`)
    /// are moved onto the realtime clock by the distance from now.
    pub fn next_elapse(&self) -> Option<u64> {
        let from_monotonic = self.next_elapse_monotonic.and_then(|m| {
            let mono_now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
            let mono_now = mono_now.tv_sec() as u64 * 1_000_000 + mono_now.tv_nsec() as u64 / 1000;
            let real_now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_micros() as u64;
            Some(real_now + m.saturating_sub(mono_now))
        });
        match (self.next_elapse_realtime, from_monotonic) {
            (Some(r), Some(m)) => Some(r.min(m)),
            (r, m) => r.or(m),
        }
    }
}

/// Sets `field` from a µs property that is present (0 and `USEC_INFINITY`: `None`).
fn set_usec(props: &HashMap<String, OwnedValue>, key: &str, field: &mut Option<u64>) {
    if props.contains_key(key) {
        *field = usec(props, key);
    }
}

/// A µs timestamp; 0 and `USEC_INFINITY` both mean "none".
fn usec(props: &HashMap<String, OwnedValue>, key: &str) -> Option<u64> {
    props.get(key).and_then(set_u64)
}

/// A `t` property's value, unless systemd says it is not set (0 or the maximum).
fn set_u64(v: &OwnedValue) -> Option<u64> {
    v.downcast_ref::<u64>()
        .ok()
        .filter(|&t| t != 0 && t != u64::MAX)
}

fn bytes(props: &HashMap<String, OwnedValue>, key: &str) -> Option<Vec<u8>> {
    props
        .get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| Vec::<u8>::try_from(v).ok())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_bus_gets_the_advice_for_its_manager() {
        let error = |bus: Bus| {
            SystemdError::Connect {
                bus,
                error: Box::new(zbus::Error::Failure("gone".into())),
            }
            .to_string()
        };
        let user = error(Bus::User);
        assert!(user.contains("is your user manager running?"), "{user}");
        assert!(!user.contains("PID 1"), "{user}");
        let system = error(Bus::System);
        assert!(system.contains("is systemd running as PID 1?"), "{system}");
    }

    #[test]
    fn job_results_round_trip() {
        for s in [
            "done",
            "canceled",
            "timeout",
            "failed",
            "dependency",
            "skipped",
            "invalid",
            "assert",
            "unsupported",
            "collected",
            "once",
            "brand-new",
        ] {
            assert_eq!(JobResult::parse(s).as_str(), s);
        }
        assert_eq!(
            JobResult::parse("brand-new"),
            JobResult::Other("brand-new".into())
        );
    }

    #[test]
    fn unit_types_map_to_interfaces() {
        assert_eq!(
            type_interface("a.service"),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(
            type_interface("a.b.timer"),
            Some("org.freedesktop.systemd1.Timer")
        );
        assert_eq!(type_interface("a.target"), None);
        assert_eq!(type_interface("noext"), None);
    }

    #[test]
    fn invocation_ids_are_lower_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn manager_versions_have_a_major_number() {
        assert_eq!(major_version("252.38-1~deb12u1"), Some(252));
        assert_eq!(major_version("255"), Some(255));
        assert_eq!(major_version("v255"), None);
    }

    #[test]
    fn errors_name_the_unit() {
        assert_eq!(unit_in("start foo.service"), "foo.service");
    }
}

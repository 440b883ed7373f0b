//! Following a run through the supervisor: what `flow run --wait` uses when the supervisor
//! runs, instead of a D-Bus subscription of its own.
//!
//! Why: while a client is subscribed, dbus-daemon routes every change signal of every unit
//! to it, and the client reads them all; a second subscriber beside the supervisor made a
//! 100-task chain about 5% slower (docs/benchmarks.md). The supervisor reads those signals
//! anyway, so it tells its followers what they need: a few lines per task.
//!
//! The protocol: a Unix stream socket at `<runtime dir>/flow/supervisor.sock`, readable and
//! writable by the supervisor's user alone. The client writes one line,
//! `follow <workflow>`; the supervisor answers with JSON lines ([`Event`]): `following` at
//! once, then the events of the next run of that workflow to begin, and `end` when that
//! run has ended (its retries included) and systemd's part of it is over; then it closes
//! the connection. A client that is told nothing more (the supervisor stopped) reads the
//! rest from systemd. `queued <workflow>` is the same for the run a waiting trigger unit
//! (`overlap: queue`) will start, with one more way to end: the trigger is stopped (or
//! fails) before it starts the run, and `end` says so.
//!
//! A client that loses the supervisor after its run began (a restart, a package upgrade)
//! asks the next one `rejoin <workflow> <run>`: it is told `following`, the run, each
//! attempt of it recorded so far, and then the run's events as a follower of it, or at once
//! its `end` when it is over (with no result when the history does not have it as ended).
//!
//! The other request, `skipped <workflow>`, gets no answer: `flow run` left word of a run
//! it skipped by the overlap rule (see `runs::trigger`), and the supervisor records it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The supervisor's socket under a manager's runtime directory (`%t`).
pub fn socket_path(runtime: &Path) -> PathBuf {
    runtime.join("flow").join("supervisor.sock")
}

/// What the supervisor tells a follower, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The request was understood: the next run of the workflow is followed.
    Following,
    /// The run began; its number in the history.
    Run { id: i64 },
    /// A task's unit is activating: an attempt started.
    Running { task: String },
    /// An attempt ended, or a task reached a final state without one (`upstream_failed`,
    /// `canceled`): its outcome as the history has it.
    Attempt {
        task: String,
        attempt: u32,
        #[serde(flatten)]
        outcome: crate::vocabulary::Outcome,
        invocation_id: Option<String>,
        started_us: Option<i64>,
        ended_us: Option<i64>,
        /// Set when the task is tried again after this delay.
        retry_in_ms: Option<u64>,
    },
    /// The run ended with this result. `run` is `None` when no run began: `result` is
    /// `None` when systemd's part ended without one (its begin unit failed, say), and the
    /// result of the trigger unit's job when a queued trigger ended before its run began
    /// (`canceled` by `flow cancel`).
    End {
        run: Option<i64>,
        result: Option<String>,
    },
}

/// A connection to the supervisor, following the next run of one workflow.
pub struct Client {
    reader: BufReader<UnixStream>,
    /// The systemd unit the supervisor runs in, when it runs in one.
    unit: Option<String>,
}

impl From<UnixStream> for Client {
    /// A client on a connection already following (for tests of the supervisor's side).
    fn from(stream: UnixStream) -> Client {
        Client {
            reader: BufReader::new(stream),
            unit: None,
        }
    }
}

/// Tells the supervisor under `runtime`, if one runs, to record the skipped runs of `wf`
/// left in its skip file.
pub fn tell_skipped(runtime: &Path, wf: &str) -> bool {
    UnixStream::connect(socket_path(runtime))
        .and_then(|mut s| writeln!(s, "skipped {wf}"))
        .is_ok()
}

/// Whether a supervisor listens under `runtime` (the connection, closed at once without a
/// request, asks nothing of it).
pub fn supervisor_listens(runtime: &Path) -> bool {
    UnixStream::connect(socket_path(runtime)).is_ok()
}

impl Client {
    /// Asks the supervisor under `runtime` to follow the next run of `wf`, or with
    /// `queued`, the run its waiting trigger unit will start. `None` when no supervisor
    /// answers (none runs, or its socket is not this user's): follow the run through
    /// systemd then.
    pub fn connect(runtime: &Path, wf: &str, queued: bool) -> Option<Client> {
        let verb = if queued { "queued" } else { "follow" };
        Self::ask(runtime, &format!("{verb} {wf}"))
    }

    /// The systemd unit the supervisor runs in (`flow-supervisor.service`), when it runs
    /// in one: whether it is coming back is that unit's state.
    pub fn supervisor_unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// Follows run `run` of `wf` on through the supervisor under `runtime`, once one
    /// answers there again (a restarted supervisor: the same unit, or the package's after
    /// an upgrade), for at most `wait` and while `coming_back` says one may. `None` when
    /// none did.
    pub fn rejoin(
        runtime: &Path,
        wf: &str,
        run: i64,
        wait: Duration,
        mut coming_back: impl FnMut() -> bool,
    ) -> Option<Client> {
        let until = std::time::Instant::now() + wait;
        loop {
            if let Some(c) = Self::ask(runtime, &format!("rejoin {wf} {run}")) {
                return Some(c);
            }
            if std::time::Instant::now() >= until || !coming_back() {
                return None;
            }
            // A restart takes a second or two: a few tries a second, for that long only.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Sends one request and reads its `following`.
    fn ask(runtime: &Path, request: &str) -> Option<Client> {
        let mut stream = UnixStream::connect(socket_path(runtime)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        writeln!(stream, "{request}").ok()?;
        let unit = unit_of_peer(&stream);
        let mut c = Client {
            reader: BufReader::new(stream),
            unit,
        };
        if c.next_event()? != Event::Following {
            return None;
        }
        // From here on a run may take any time.
        c.reader.get_ref().set_read_timeout(None).ok()?;
        Some(c)
    }

    /// The number of the run followed, once it begins, waiting at most `wait` for each
    /// thing the supervisor says; `None` when no run began (or the supervisor went quiet).
    /// What `flow run --json` says without `--wait`.
    pub fn run_number(mut self, wait: Duration) -> Option<i64> {
        self.reader.get_ref().set_read_timeout(Some(wait)).ok()?;
        loop {
            match self.next_event()? {
                Event::Run { id } => return Some(id),
                Event::End { .. } => return None,
                _ => {}
            }
        }
    }

    /// The next event; `None` when the supervisor closed the connection (or said something
    /// this client does not understand).
    pub fn next_event(&mut self) -> Option<Event> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => serde_json::from_str(&line).ok(),
        }
    }
}

/// The systemd service the process at the other end of `stream` runs in: the last element
/// of its cgroup path (`0::/system.slice/flow-supervisor.service`), when it is a service.
fn unit_of_peer(stream: &UnixStream) -> Option<String> {
    let cred =
        nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", cred.pid())).ok()?;
    service_of_cgroup(&cgroup).map(str::to_string)
}

/// The service a `/proc/PID/cgroup` names: on the unified hierarchy's line (`0::`), or
/// systemd's own on a legacy hierarchy (`1:name=systemd:`).
fn service_of_cgroup(text: &str) -> Option<&str> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("0::")
                .or_else(|| l.split_once(":name=systemd:").map(|(_, p)| p))
        })
        .find_map(|path| path.rsplit('/').next().filter(|u| u.ends_with(".service")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supervisors_unit_is_read_from_its_cgroup() {
        for (text, want) in [
            (
                "0::/system.slice/flow-supervisor.service\n",
                Some("flow-supervisor.service"),
            ),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/flow-supervisor.service\n",
                Some("flow-supervisor.service"),
            ),
            // Hybrid: the unified line is there but empty; systemd's own line says.
            (
                "12:cpu:/\n1:name=systemd:/system.slice/flow-supervisor.service\n0::/\n",
                Some("flow-supervisor.service"),
            ),
            // A supervisor started from a shell is in a session scope, not a service.
            ("0::/user.slice/user-0.slice/session-3.scope\n", None),
            ("", None),
        ] {
            assert_eq!(service_of_cgroup(text), want, "{text:?}");
        }
    }

    #[test]
    fn events_are_one_json_object_per_line() {
        let ev = Event::Attempt {
            task: "a".into(),
            attempt: 2,
            outcome: crate::vocabulary::Outcome::exited(1),
            invocation_id: None,
            started_us: Some(1),
            ended_us: Some(2),
            retry_in_ms: Some(500),
        };
        let line = serde_json::to_string(&ev).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ev);
        assert_eq!(
            serde_json::to_string(&Event::Following).unwrap(),
            "\"following\""
        );
    }
}

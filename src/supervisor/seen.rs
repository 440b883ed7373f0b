//! What the supervisor knows of flow's units from their `PropertiesChanged` signals, so that
//! a task's end costs no call to PID 1.
//!
//! systemd 252 sends, for each state change of a unit, one `PropertiesChanged` for the
//! unit's type interface (`org.freedesktop.systemd1.Service`: `Result`, `ExecMainCode`,
//! `ExecMainStatus`, `ExecMain*Timestamp`, ...) and then one for
//! `org.freedesktop.systemd1.Unit` (`ActiveState`, `InvocationID`, `Inactive*Timestamp`,
//! ...), each with every property of that interface that emits changes, with values. Only
//! the command lines (`ExecStart`, ...) and `Conditions`/`Asserts` are merely invalidated;
//! the cgroup properties (`CPUUsageNSec`, `MemoryPeak`) and `LoadState` are never sent.
//! Before it sends a job's `JobRemoved` it flushes the pending change signals of the job's
//! unit (`bus_job_send_removed_signal`), so on the one ordered stream the supervisor reads,
//! a unit's final state is known when its job's end arrives.
//!
//! A unit counts as known once both interfaces were seen; until then (a unit that did not
//! change since the supervisor started, or a signal that could not be read) its state is
//! read from PID 1 instead.

use std::collections::HashMap;

use serde::Deserialize;
use zbus::zvariant::{Type, as_value};

use crate::systemd::UnitState;

/// The properties the supervisor follows, as a `PropertiesChanged` carries them (either
/// interface: their names do not overlap). Others in the signal are skipped unread.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Type)]
#[zvariant(signature = "a{sv}", crate = "zbus::zvariant")]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct Props {
    #[serde(with = "as_value::optional")]
    active_state: Option<String>,
    #[serde(with = "as_value::optional")]
    sub_state: Option<String>,
    #[serde(with = "as_value::optional", rename = "InvocationID")]
    invocation_id: Option<Vec<u8>>,
    #[serde(with = "as_value::optional")]
    inactive_exit_timestamp: Option<u64>,
    #[serde(with = "as_value::optional")]
    active_enter_timestamp: Option<u64>,
    #[serde(with = "as_value::optional")]
    inactive_enter_timestamp: Option<u64>,
    #[serde(with = "as_value::optional")]
    result: Option<String>,
    #[serde(with = "as_value::optional")]
    exec_main_code: Option<i32>,
    #[serde(with = "as_value::optional")]
    exec_main_status: Option<i32>,
    #[serde(with = "as_value::optional")]
    exec_main_start_timestamp: Option<u64>,
    #[serde(with = "as_value::optional")]
    exec_main_exit_timestamp: Option<u64>,
}

impl Props {
    /// Whether the unit is now `activating`: an activation began.
    pub(super) fn activating(&self) -> bool {
        self.active_state.as_deref() == Some("activating")
    }
}

/// Which interface a `PropertiesChanged` was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Iface {
    Unit,
    /// The unit's type interface (`...Service`, `...Timer`, ...).
    Typed,
}

impl Iface {
    pub(super) fn of(name: &str) -> Option<Iface> {
        match name {
            "org.freedesktop.systemd1.Unit" => Some(Iface::Unit),
            n if n.starts_with("org.freedesktop.systemd1.") => Some(Iface::Typed),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    state: UnitState,
    unit: bool,
    typed: bool,
}

/// The last values of flow's units, by object path.
#[derive(Debug, Default)]
pub(super) struct Seen {
    units: HashMap<String, Entry>,
}

/// A µs timestamp as systemd sends it: 0 and `USEC_INFINITY` mean "none".
fn usec(v: u64) -> Option<u64> {
    (v != 0 && v != u64::MAX).then_some(v)
}

impl Seen {
    /// Takes the values of one `PropertiesChanged`.
    pub(super) fn apply(&mut self, path: &str, iface: Iface, p: Props) {
        let e = match self.units.get_mut(path) {
            Some(e) => e,
            None => self.units.entry(path.to_string()).or_default(),
        };
        let s = &mut e.state;
        match iface {
            Iface::Unit => {
                e.unit = true;
                if let Some(v) = p.active_state {
                    s.active_state = v;
                }
                if let Some(v) = p.sub_state {
                    s.sub_state = v;
                }
                if let Some(id) = p.invocation_id {
                    s.invocation_id = (!id.is_empty()).then(|| hex(&id));
                }
                if let Some(v) = p.inactive_exit_timestamp {
                    s.inactive_exit_timestamp = usec(v);
                }
                if let Some(v) = p.active_enter_timestamp {
                    s.active_enter_timestamp = usec(v);
                }
                if let Some(v) = p.inactive_enter_timestamp {
                    s.inactive_enter_timestamp = usec(v);
                }
            }
            Iface::Typed => {
                e.typed = true;
                if let Some(v) = p.result {
                    s.result = Some(v);
                }
                if let Some(v) = p.exec_main_code {
                    s.exec_main_code = v;
                }
                if let Some(v) = p.exec_main_status {
                    s.exec_main_status = v;
                }
                if let Some(v) = p.exec_main_start_timestamp {
                    s.exec_main_start_timestamp = usec(v);
                }
                if let Some(v) = p.exec_main_exit_timestamp {
                    s.exec_main_exit_timestamp = usec(v);
                }
            }
        }
    }

    /// Forgets a unit, so that its state is read from PID 1 next time (a signal about it
    /// could not be read).
    pub(super) fn forget(&mut self, path: &str) {
        self.units.remove(path);
    }

    /// Keeps only the units whose object path `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.units.retain(|path, _| keep(path));
    }

    /// A unit's state as its signals told it, once both interfaces were seen.
    pub(super) fn state(&self, name: &str, path: &str) -> Option<UnitState> {
        let e = self.units.get(path)?;
        if !(e.unit && e.typed) {
            return None;
        }
        let mut s = e.state.clone();
        // A unit that sends change signals is loaded.
        s.name = name.to_string();
        s.load_state = "loaded".into();
        Some(s)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str, inv: &[u8], exit: u64, enter: u64) -> Props {
        Props {
            active_state: Some(active.into()),
            sub_state: Some("dead".into()),
            invocation_id: Some(inv.to_vec()),
            inactive_exit_timestamp: Some(exit),
            active_enter_timestamp: Some(0),
            inactive_enter_timestamp: Some(enter),
            ..Props::default()
        }
    }

    fn service(result: &str, code: i32, status: i32) -> Props {
        Props {
            result: Some(result.into()),
            exec_main_code: Some(code),
            exec_main_status: Some(status),
            exec_main_start_timestamp: Some(5),
            exec_main_exit_timestamp: Some(u64::MAX),
            ..Props::default()
        }
    }

    #[test]
    fn a_unit_is_known_once_both_interfaces_were_seen() {
        let mut seen = Seen::default();
        seen.apply("/p", Iface::Unit, unit("inactive", &[0xab, 1], 10, 20));
        assert_eq!(seen.state("u.service", "/p"), None);
        seen.apply("/p", Iface::Typed, service("exit-code", 1, 7));
        let s = seen.state("u.service", "/p").expect("known");
        assert_eq!(s.name, "u.service");
        assert_eq!(s.load_state, "loaded");
        assert_eq!(s.active_state, "inactive");
        assert_eq!(s.invocation_id.as_deref(), Some("ab01"));
        assert_eq!(s.inactive_exit_timestamp, Some(10));
        assert_eq!(s.inactive_enter_timestamp, Some(20));
        assert_eq!(s.active_enter_timestamp, None);
        assert_eq!(s.result.as_deref(), Some("exit-code"));
        assert_eq!((s.exec_main_code, s.exec_main_status), (1, 7));
        assert_eq!(s.exec_main_start_timestamp, Some(5));
        assert_eq!(s.exec_main_exit_timestamp, None);
    }

    #[test]
    fn later_signals_replace_earlier_values_and_absent_ones_keep_them() {
        let mut seen = Seen::default();
        seen.apply("/p", Iface::Typed, service("success", 1, 0));
        seen.apply("/p", Iface::Unit, unit("inactive", &[1], 10, 20));
        seen.apply("/p", Iface::Unit, unit("activating", &[2], 30, 20));
        seen.apply(
            "/p",
            Iface::Unit,
            Props {
                active_state: Some("inactive".into()),
                inactive_enter_timestamp: Some(40),
                ..Props::default()
            },
        );
        let s = seen.state("u.service", "/p").expect("known");
        assert_eq!(s.invocation_id.as_deref(), Some("02"));
        assert_eq!(s.inactive_exit_timestamp, Some(30));
        assert_eq!(s.inactive_enter_timestamp, Some(40));
        assert_eq!(s.active_state, "inactive");
        // An empty InvocationID (never ran) is none.
        seen.apply("/p", Iface::Unit, unit("inactive", &[], 0, 0));
        let s = seen.state("u.service", "/p").expect("known");
        assert_eq!(s.invocation_id, None);
        assert_eq!(s.inactive_exit_timestamp, None);
        seen.retain(|p| p != "/other");
        assert!(seen.state("u.service", "/p").is_some());
        seen.retain(|p| p != "/p");
        assert_eq!(seen.state("u.service", "/p"), None);
        seen.apply("/p", Iface::Unit, unit("inactive", &[1], 10, 20));
        seen.apply("/p", Iface::Typed, service("success", 1, 0));
        seen.forget("/p");
        assert_eq!(seen.state("u.service", "/p"), None);
    }

    #[test]
    fn interfaces_are_told_apart() {
        assert_eq!(
            Iface::of("org.freedesktop.systemd1.Unit"),
            Some(Iface::Unit)
        );
        assert_eq!(
            Iface::of("org.freedesktop.systemd1.Service"),
            Some(Iface::Typed)
        );
        assert_eq!(Iface::of("org.example.Other"), None);
    }
}

//! A stream of what happens to units: job ends (`JobRemoved`) and changes of a unit's
//! `ActiveState` (`PropertiesChanged`). Opened before anything is started, so nothing is
//! missed; blocking iteration over one signal stream, no polling.

use std::collections::HashMap;

use zbus::MatchRule;
use zbus::blocking::{Connection, MessageIterator};
use zbus::zvariant::{ObjectPath, OwnedValue};

use super::{JobResult, SystemdError};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job ended: the unit and how.
    JobRemoved { unit: String, result: JobResult },
    /// Properties of a unit changed. `unit_path` is its object path (see [`unit_path`]).
    /// systemd sends a unit's changes before the `JobRemoved` of its job, so a follower
    /// knows how a task ended without asking (no call that would keep PID 1 busy).
    Changed { unit_path: String, changes: Changes },
}

/// The changed properties flow follows; `None`: not in this signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `activating`, `active`, `deactivating`, `inactive`, `failed`.
    pub active_state: Option<String>,
    pub invocation_id: Option<String>,
    /// A service's `Result` (`success`, `exit-code`, `signal`, `timeout`, ...).
    pub result: Option<String>,
    pub exec_main_code: Option<i32>,
    pub exec_main_status: Option<i32>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// Signals from the manager, as [`Event`]s.
pub struct Watch {
    signals: MessageIterator,
}

impl Watch {
    pub(super) fn open(conn: &Connection) -> Result<Watch, SystemdError> {
        let err = |e: zbus::Error| SystemdError::from_call("watch units", e);
        // One rule for both kinds of signal: two blocking streams could not be read in turn.
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(super::SERVICE)
            .map_err(err)?
            .build();
        let signals = MessageIterator::for_match_rule(rule, conn, Some(16 * 1024)).map_err(err)?;
        Ok(Watch { signals })
    }

    /// The next event; blocks until one arrives. `None` when the connection closed.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let msg = self.signals.next()?.ok()?;
            let header = msg.header();
            let member = header
                .member()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default();
            match member.as_str() {
                "JobRemoved" => {
                    let Ok((_id, _job, unit, result)) =
                        msg.body()
                            .deserialize::<(u32, ObjectPath<'_>, String, String)>()
                    else {
                        continue;
                    };
                    return Some(Event::JobRemoved {
                        unit,
                        result: JobResult::parse(&result),
                    });
                }
                "PropertiesChanged" => {
                    let path = header
                        .path()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default();
                    let Ok((iface, changed, _)) =
                        msg.body()
                            .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
                    else {
                        continue;
                    };
                    let text = |k: &str| {
                        changed
                            .get(k)
                            .and_then(|v| v.downcast_ref::<&str>().ok())
                            .map(str::to_string)
                    };
                    let int = |k: &str| changed.get(k).and_then(|v| v.downcast_ref::<i32>().ok());
                    let changes = match iface.as_str() {
                        "org.freedesktop.systemd1.Unit" => Changes {
                            active_state: text("ActiveState"),
                            invocation_id: changed
                                .get("InvocationID")
                                .and_then(|v| v.try_clone().ok())
                                .and_then(|v| Vec::<u8>::try_from(v).ok())
                                .filter(|id| !id.is_empty())
                                .map(|id| super::hex(&id)),
                            ..Changes::default()
                        },
                        "org.freedesktop.systemd1.Service" => Changes {
                            result: text("Result"),
                            exec_main_code: int("ExecMainCode"),
                            exec_main_status: int("ExecMainStatus"),
                            ..Changes::default()
                        },
                        _ => continue,
                    };
                    if !changes.is_empty() {
                        return Some(Event::Changed {
                            unit_path: path,
                            changes,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// systemd's object path for a unit name (its `bus_label_escape`).
pub fn unit_path(name: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_paths_are_escaped_like_systemd() {
        assert_eq!(
            super::unit_path("flow-a--b.service"),
            "/org/freedesktop/systemd1/unit/flow_2da_2d_2db_2eservice"
        );
    }
}

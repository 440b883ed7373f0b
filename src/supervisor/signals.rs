//! Reading systemd's signals: the manager's job signals and flow's units' property
//! changes, from PID 1's private socket or the bus, on a reader thread of their own,
//! forwarded in order over a channel.

use super::*;

/// A signal from the manager.
#[derive(Debug)]
pub(super) enum Signal {
    JobNew {
        id: u32,
        unit: String,
    },
    JobRemoved {
        id: u32,
        unit: String,
        result: String,
    },
    /// A daemon-reload finished: unit files may have changed.
    Reloaded,
    /// Properties of one interface of a flow unit changed; `None`: the signal could not be
    /// read (the unit's state is then read from PID 1 when needed).
    Changed {
        path: String,
        iface: seen::Iface,
        props: Option<seen::Props>,
    },
    /// What a client of the supervisor's socket asks (`flow run`, `flow run --wait`).
    Client(follow::Request),
    Closed,
}

/// Where systemd's unit objects are; flow's are `flow_2d...` below it (`-` escaped).
pub(super) const UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit";
pub(super) const FLOW_UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit/flow_2d";

/// Subscribes to the manager's job signals and to the property changes of units, and
/// forwards the ones about flow's units from a reader thread.
///
/// Both go through one stream, so that a unit's changes stay ahead of its job's
/// `JobRemoved`, as systemd sends them. A bus match rule cannot select a prefix of one path
/// element (`path_namespace` matches whole elements), so the rule takes the property changes
/// of every unit and the reader thread drops, by the object path in the header, those that
/// are not flow's before reading their body.
pub(super) fn listen(
    sd: &Systemd,
) -> Result<(mpsc::Sender<Signal>, mpsc::Receiver<Signal>), SupervisorError> {
    let err = |e: zbus::Error| {
        SupervisorError::Systemd(SystemdError::Disconnected {
            action: format!("watching jobs: {e}"),
        })
    };
    let conn = sd.connection();
    conn.clone().set_max_queued(64 * 1024);
    // The unfiltered stream of the connection (registered before the rules, so nothing the
    // rules bring in is missed); it also carries replies to the main thread's calls, which
    // are skipped here.
    let mut signals = MessageIterator::from(conn.clone());
    let jobs = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.systemd1")
        .map_err(err)?
        .interface("org.freedesktop.systemd1.Manager")
        .map_err(err)?
        .build();
    let props = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.systemd1")
        .map_err(err)?
        .interface("org.freedesktop.DBus.Properties")
        .map_err(err)?
        .member("PropertiesChanged")
        .map_err(err)?
        .path_namespace(UNIT_PATHS)
        .map_err(err)?
        .build();
    let owners = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS)
        .map_err(err)?
        .interface(BUS)
        .map_err(err)?
        .member("NameOwnerChanged")
        .map_err(err)?
        .arg(0, SYSTEMD)
        .map_err(err)?
        .build();
    let bus = zbus::blocking::fdo::DBusProxy::new(conn).map_err(err)?;
    for rule in [jobs, props, owners] {
        bus.add_match_rule(rule).map_err(|e| err(e.into()))?;
    }
    sd.subscribe()?;
    // The bus lets any client send a signal to any other, so the sender is checked against
    // systemd's unique name (read after the rules exist, so a change is not missed).
    let name = zbus::names::BusName::try_from(SYSTEMD).map_err(|e| err(e.into()))?;
    let mut owner = bus
        .get_name_owner(name)
        .map_err(|e| err(e.into()))?
        .to_string();
    spawn_reader(move || {
        let msg = signals.next()?.ok()?;
        Some(if from_systemd(&msg, &mut owner) {
            signal_of(&msg)
        } else {
            None
        })
    })
}

/// The manager's signals from its private socket; only PID 1 can write there, so no
/// sender needs checking.
pub(super) fn listen_private(
    mut reader: private::Reader,
) -> Result<(mpsc::Sender<Signal>, mpsc::Receiver<Signal>), SupervisorError> {
    spawn_reader(move || Some(signal_of_private(&reader.next_message().ok()?)))
}

/// Runs `next` on the signal reader thread: each signal it reads goes to the main loop
/// (`Some(None)`: a message that is not one); `None` when the connection closed. Returns a
/// sender to the main loop too, for other threads that feed it.
pub(super) fn spawn_reader(
    mut next: impl FnMut() -> Option<Option<Signal>> + Send + 'static,
) -> Result<(mpsc::Sender<Signal>, mpsc::Receiver<Signal>), SupervisorError> {
    let (tx, rx) = mpsc::channel();
    let to_main = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Some(read) = next() {
                if let Some(sig) = read
                    && tx.send(sig).is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Signal::Closed);
        })
        .map_err(|e| SupervisorError::Units {
            dir: PathBuf::from("(thread)"),
            error: e,
        })?;
    Ok((to_main, rx))
}

pub(super) const SYSTEMD: &str = "org.freedesktop.systemd1";
pub(super) const BUS: &str = "org.freedesktop.DBus";

/// Whether a message comes from systemd, whose unique name is `owner`; follows the owner
/// when the bus says it changed (systemd re-executed), and then says no.
pub(super) fn from_systemd(msg: &zbus::Message, owner: &mut String) -> bool {
    let header = msg.header();
    let sender = header.sender().map(|s| s.as_str());
    if sender == Some(BUS)
        && header.member().map(|m| m.as_str()) == Some("NameOwnerChanged")
        && let Ok((name, _, new)) = msg.body().deserialize::<(&str, &str, &str)>()
    {
        if name == SYSTEMD {
            *owner = new.to_string();
        }
        return false;
    }
    !owner.is_empty() && sender == Some(owner.as_str())
}

/// A message's body, from the bus or from the manager's private socket.
pub(super) trait Body {
    fn get<T: serde::de::DeserializeOwned + zbus::zvariant::Type>(&self) -> Option<T>;
}

impl Body for zbus::Message {
    fn get<T: serde::de::DeserializeOwned + zbus::zvariant::Type>(&self) -> Option<T> {
        self.body().deserialize::<T>().ok()
    }
}

impl Body for private::Message {
    fn get<T: serde::de::DeserializeOwned + zbus::zvariant::Type>(&self) -> Option<T> {
        self.body::<T>()
    }
}

/// The supervisor's reading of one message from the bus: a manager signal, or a property
/// change of a flow unit; `None` for anything else.
pub(super) fn signal_of(msg: &zbus::Message) -> Option<Signal> {
    let header = msg.header();
    if header.message_type() != zbus::message::Type::Signal {
        return None;
    }
    signal_from(
        header.interface()?.as_str(),
        header.member()?.as_str(),
        header.path().map(|p| p.as_str()),
        msg,
    )
}

/// The same from the manager's private socket.
pub(super) fn signal_of_private(msg: &private::Message) -> Option<Signal> {
    let h = &msg.header;
    if h.msg_type != private::Message::SIGNAL {
        return None;
    }
    signal_from(
        h.interface.as_deref()?,
        h.member.as_deref()?,
        h.path.as_deref(),
        msg,
    )
}

pub(super) fn signal_from(
    iface: &str,
    member: &str,
    path: Option<&str>,
    body: &impl Body,
) -> Option<Signal> {
    match (iface, member) {
        ("org.freedesktop.systemd1.Manager", "JobNew") => body
            .get::<(u32, OwnedObjectPath, String)>()
            .map(|(id, _, unit)| Signal::JobNew { id, unit }),
        ("org.freedesktop.systemd1.Manager", "JobRemoved") => body
            .get::<(u32, OwnedObjectPath, String, String)>()
            .map(|(id, _, unit, result)| Signal::JobRemoved { id, unit, result }),
        ("org.freedesktop.systemd1.Manager", "Reloading") => match body.get::<bool>() {
            Some(false) => Some(Signal::Reloaded),
            _ => None,
        },
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let path = path?;
            if !path.starts_with(FLOW_UNIT_PATHS) {
                return None;
            }
            let (name, props) = match body.get::<(String, seen::Props, Vec<String>)>() {
                Some((name, props, _)) => (name, Some(props)),
                // Unreadable values: the interface alone, if that can be read.
                None => (body.get::<(String,)>()?.0, None),
            };
            let iface = seen::Iface::of(&name)?;
            Some(Signal::Changed {
                path: path.to_string(),
                iface,
                props,
            })
        }
        _ => None,
    }
}

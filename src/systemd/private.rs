//! The manager's signals read from its private socket (`/run/systemd/private`, what
//! `systemctl` uses as root), without dbus-daemon in between.
//!
//! Why: a client subscribed on the bus has dbus-daemon route it every unit's change
//! signals, and on a small machine that routing competes with PID 1 itself. On its private
//! socket PID 1 sends every signal to every connection, unasked, and nothing else sits
//! between the two (measured: about half of what a subscriber costs systemd per task start,
//! see docs/benchmarks.md).
//!
//! Why not zbus: on that socket PID 1 sets the sender of its messages to
//! `org.freedesktop.systemd1`, a well-known name, and zbus 5 panics reading it as a unique
//! name (its `message/fields.rs`, "Invalid field reconstruction"). So this module does
//! the little a reader needs: the EXTERNAL handshake, the message framing and the header
//! fields; bodies are decoded by zvariant, zbus's own encoding crate.
//!
//! Read-only: calls to the manager still go over the bus.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{Endian, OwnedValue, Signature, Type};

use super::Bus;

/// Where a manager's private socket is: the system manager's, or the calling user's.
pub fn socket_path(bus: &Bus) -> Option<PathBuf> {
    match bus {
        Bus::System => Some(PathBuf::from("/run/systemd/private")),
        Bus::User => {
            std::env::var_os("XDG_RUNTIME_DIR").map(|d| Path::new(&d).join("systemd/private"))
        }
        Bus::Address(_) => None,
    }
}

/// A message's header, as far as a reader of signals needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 method call, 2 method return, 3 error, 4 signal.
    pub msg_type: u8,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub signature: String,
}

/// One message: its header and its body, decoded on demand.
pub struct Message {
    pub header: Header,
    endian: Endian,
    body: Vec<u8>,
}

impl Message {
    pub const RETURN: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const SIGNAL: u8 = 4;

    /// The body as `T`, when its signature is the one the message says.
    pub fn body<T: DeserializeOwned + Type>(&self) -> Option<T> {
        let signature = Signature::try_from(self.header.signature.as_str()).ok()?;
        Data::new(&self.body[..], Context::new_dbus(self.endian, 0))
            .deserialize_for_dynamic_signature::<_, T>(&signature)
            .ok()
            .map(|(v, _)| v)
    }
}

/// The largest message D-Bus allows (2^27 bytes).
const MAX_MESSAGE: usize = 1 << 27;

/// A connection to a manager's private socket, reading what it sends.
pub struct Reader {
    stream: BufReader<UnixStream>,
    /// Signals read while waiting for the answer to the handshake's ping.
    early: VecDeque<Message>,
}

impl Reader {
    /// Connects and authenticates as the calling user (the socket is root's for the
    /// system manager, the user's for theirs).
    pub fn connect(path: &Path) -> std::io::Result<Reader> {
        let mut stream = UnixStream::connect(path)?;
        let uid = nix::unistd::getuid().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        stream.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if !line.starts_with("OK ") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} refused us: {}", path.display(), line.trim_end()),
            ));
        }
        reader.get_mut().write_all(b"BEGIN\r\n")?;
        // PID 1 sends signals to a connection only once it is past the handshake: the
        // answer to a ping says it is, and nothing sent after that is missed. A ping that
        // reaches systemd 252 in the same read as `BEGIN` is left unanswered until more
        // bytes arrive (measured: every time when sent together, never 10 ms apart), so
        // it is sent again until an answer comes.
        let ping = zbus::Message::method_call("/org/freedesktop/systemd1", "Ping")
            .and_then(|b| b.interface("org.freedesktop.DBus.Peer"))
            .and_then(|b| b.build(&()))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut r = Reader {
            stream: reader,
            early: VecDeque::new(),
        };
        for _ in 0..50 {
            r.stream.get_mut().write_all(ping.data())?;
            while r.readable_within(Duration::from_millis(100))? {
                let m = r.read_message()?;
                match m.header.msg_type {
                    Message::RETURN | Message::ERROR => return Ok(r),
                    _ => r.early.push_back(m),
                }
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{} did not answer", path.display()),
        ))
    }

    /// Whether bytes can be read within `wait` (none are consumed).
    fn readable_within(&mut self, wait: Duration) -> std::io::Result<bool> {
        self.stream.get_ref().set_read_timeout(Some(wait))?;
        let got = match self.stream.fill_buf() {
            Ok([]) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        };
        self.stream.get_ref().set_read_timeout(None)?;
        got
    }

    /// The next message; an error when the connection closed or sent something that is
    /// not D-Bus.
    pub fn next_message(&mut self) -> std::io::Result<Message> {
        match self.early.pop_front() {
            Some(m) => Ok(m),
            None => self.read_message(),
        }
    }

    fn read_message(&mut self) -> std::io::Result<Message> {
        let mut fixed = [0u8; 16];
        self.stream.read_exact(&mut fixed)?;
        let (endian, body_len, fields_len) = frame(&fixed)?;
        let header_len = (16 + fields_len).next_multiple_of(8);
        let mut buf = vec![0u8; header_len + body_len];
        buf[..16].copy_from_slice(&fixed);
        self.stream.read_exact(&mut buf[16..])?;
        let header = parse_header(&buf[..16 + fields_len], endian)?;
        buf.drain(..header_len);
        Ok(Message {
            header,
            endian,
            body: buf,
        })
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// The fixed part of a message: its endianness, body length and header fields' length.
fn frame(fixed: &[u8; 16]) -> std::io::Result<(Endian, usize, usize)> {
    let endian = match fixed[0] {
        b'l' => Endian::Little,
        b'B' => Endian::Big,
        _ => return Err(invalid("not a D-Bus message")),
    };
    let u32_at = |i: usize| {
        let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
        match endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    };
    let (body_len, fields_len) = (u32_at(4) as usize, u32_at(12) as usize);
    if body_len + fields_len > MAX_MESSAGE {
        return Err(invalid("a D-Bus message over the size limit"));
    }
    Ok((endian, body_len, fields_len))
}

/// The header of a message from its first bytes (up to the end of the header fields).
fn parse_header(bytes: &[u8], endian: Endian) -> std::io::Result<Header> {
    type Raw = (u8, u8, u8, u8, u32, u32, Vec<(u8, OwnedValue)>);
    let (raw, _): (Raw, usize) = Data::new(bytes, Context::new_dbus(endian, 0))
        .deserialize()
        .map_err(|_| invalid("unreadable D-Bus header"))?;
    let mut header = Header {
        msg_type: raw.1,
        path: None,
        interface: None,
        member: None,
        signature: String::new(),
    };
    for (code, value) in raw.6 {
        let text = || -> Option<String> {
            match &*value {
                zbus::zvariant::Value::Str(s) => Some(s.to_string()),
                zbus::zvariant::Value::ObjectPath(p) => Some(p.to_string()),
                zbus::zvariant::Value::Signature(s) => Some(s.to_string_no_parens()),
                _ => None,
            }
        };
        match code {
            1 => header.path = text(),
            2 => header.interface = text(),
            3 => header.member = text(),
            8 => header.signature = text().unwrap_or_default(),
            _ => {}
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as zbus writes it, sent down a socket pair, read back.
    #[test]
    fn messages_are_framed_and_their_headers_and_bodies_read() {
        let msg = zbus::Message::signal(
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "JobRemoved",
        )
        .and_then(|b| {
            b.build(&(
                7u32,
                zbus::zvariant::ObjectPath::try_from("/org/freedesktop/systemd1/job/7").unwrap(),
                "flow-a--b.service",
                "done",
            ))
        })
        .unwrap();
        let bytes = msg.data().to_vec();
        let (mut a, b) = UnixStream::pair().unwrap();
        // Twice, to check the framing carries on at the next message.
        a.write_all(&bytes).unwrap();
        a.write_all(&bytes).unwrap();
        drop(a);
        let mut r = Reader {
            stream: BufReader::new(b),
            early: VecDeque::new(),
        };
        for _ in 0..2 {
            let m = r.next_message().unwrap();
            assert_eq!(
                m.header,
                Header {
                    msg_type: Message::SIGNAL,
                    path: Some("/org/freedesktop/systemd1".into()),
                    interface: Some("org.freedesktop.systemd1.Manager".into()),
                    member: Some("JobRemoved".into()),
                    signature: "uoss".into(),
                }
            );
            let (id, _, unit, result) = m
                .body::<(u32, zbus::zvariant::OwnedObjectPath, String, String)>()
                .unwrap();
            assert_eq!(
                (id, unit.as_str(), result.as_str()),
                (7, "flow-a--b.service", "done")
            );
            // A body read as the wrong type is refused, not misread.
            assert!(m.body::<(String, String)>().is_none());
        }
        assert!(r.next_message().is_err(), "the connection closed");
    }

    #[test]
    fn garbage_and_oversized_frames_are_refused() {
        assert!(frame(b"xxxxxxxxxxxxxxxx").is_err());
        let mut big = *b"l\x04\x01\x01\0\0\0\x10\x01\0\0\0\x08\0\0\0";
        assert!(frame(&big).is_err());
        big[7] = 0;
        assert!(frame(&big).is_ok());
    }
}

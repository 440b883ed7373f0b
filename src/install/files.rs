//! Writing files into a unit directory (or `flow compile --out`'s) without following links.
//!
//! flow writes as root into directories others may have planted things in. So the
//! directory is opened once, refusing a link, and every write, read and removal happens
//! relative to that open directory: a temporary file made with `O_EXCL|O_NOFOLLOW` (a name
//! planted in advance fails the write rather than redirecting it), fsynced, then renamed
//! over its name (a rename replaces a link, it never writes through one). Modes are set
//! explicitly, whatever the umask: 0644 for files, 0755 for the directories flow creates.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::compiler::emit::HEADER_PREFIX;

/// The mode of every file flow writes: systemd reads units as root; scripts run with `sh`.
pub const FILE_MODE: u32 = 0o644;
/// The mode of every directory flow creates.
pub const DIR_MODE: u32 = 0o755;

/// What is at a name in the directory, as found without following a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file whose first line is flow's header.
    Flows,
    /// A regular file flow did not generate (no header: hand-written, or a package's).
    Other,
    /// A symbolic link, and where it points.
    Link(PathBuf),
    /// A directory, a FIFO, a device, a socket.
    NotAFile,
}

impl Entry {
    /// For messages: what the file at that name is.
    pub fn describe(&self) -> String {
        match self {
            Entry::Flows => "a file flow generated".into(),
            Entry::Other => "a file flow did not generate".into(),
            Entry::Link(to) => format!("a symbolic link to {}", to.display()),
            Entry::NotAFile => "not a regular file".into(),
        }
    }
}

/// A directory opened for writing, by its real path: never through a link.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn err(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Creates `path` and the directories above it that are missing, each with mode 0755.
fn create_dirs(path: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = path;
    while std::fs::symlink_metadata(at).is_err() {
        missing.push(at);
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        match std::fs::create_dir(dir) {
            Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error for a directory that is a link.
fn dir_is_a_link(path: &Path) -> std::io::Error {
    let to = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    std::io::Error::other(format!(
        "{} is a symbolic link{to}: flow does not write through links; name the directory itself",
        path.display()
    ))
}

impl Dir {
    /// Opens `path`, first creating what is missing of it when `create`. A link there is
    /// refused: writing through it would write wherever it points.
    pub fn open(path: &Path, create: bool) -> std::io::Result<Dir> {
        if create {
            create_dirs(path)?;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            // O_NOFOLLOW on a link: ELOOP; O_DIRECTORY on a link to a file: ENOTDIR.
            Err(Errno::ELOOP | Errno::ENOTDIR) if path.is_symlink() => {
                return Err(dir_is_a_link(path));
            }
            Err(e) => return Err(err(e)),
        };
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is at `name`, or `None` if nothing is.
    pub fn entry(&self, name: &str) -> std::io::Result<Option<Entry>> {
        let st = match nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            let to = nix::fcntl::readlinkat(&self.fd, name).map_err(err)?;
            return Ok(Some(Entry::Link(PathBuf::from(to))));
        }
        if kind != SFlag::S_IFREG {
            return Ok(Some(Entry::NotAFile));
        }
        // O_NONBLOCK: a FIFO swapped in since would not hang the read.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match nix::fcntl::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            // Replaced by a link since the look above.
            Err(Errno::ELOOP) => {
                let to = nix::fcntl::readlinkat(&self.fd, name).unwrap_or_default();
                return Ok(Some(Entry::Link(PathBuf::from(to))));
            }
            Err(e) => return Err(err(e)),
        };
        // Replaced by something else since: read only a regular file.
        let st = nix::sys::stat::fstat(&fd).map_err(err)?;
        if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
            return Ok(Some(Entry::NotAFile));
        }
        let mut first = Vec::new();
        std::fs::File::from(fd).take(4096).read_to_end(&mut first)?;
        let text = String::from_utf8_lossy(&first);
        let flows = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .is_some_and(|l| l.starts_with(HEADER_PREFIX));
        Ok(Some(if flows { Entry::Flows } else { Entry::Other }))
    }

    /// Writes `name` atomically with mode 0644: a fresh temporary file, fsynced, renamed
    /// over `name`. Whatever was at `name` is replaced, a link included (not its target).
    pub fn write(&self, name: &str, contents: &[u8]) -> std::io::Result<()> {
        let (tmp, fd) = self.create_temp(name)?;
        let written = (|| {
            // The mode asked of open() is cut by the umask: set it outright.
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(FILE_MODE)).map_err(err)?;
            let mut f = std::fs::File::from(fd);
            f.write_all(contents)?;
            f.sync_all()?;
            nix::fcntl::renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(err)
        })();
        if written.is_err() {
            let _ = nix::unistd::unlinkat(
                &self.fd,
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        written
    }

    /// A new temporary file beside `name`, made by this call and no one else: `O_EXCL`
    /// fails on anything already there, a link included.
    fn create_temp(&self, name: &str) -> std::io::Result<(String, OwnedFd)> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let pid = std::process::id();
        let mut last = Errno::EEXIST;
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let tmp = format!(".{name}.{pid}.{nanos:x}{attempt}.flow-tmp");
            match nix::fcntl::openat(
                &self.fd,
                tmp.as_str(),
                flags,
                Mode::from_bits_truncate(FILE_MODE),
            ) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(e @ Errno::EEXIST) => last = e,
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(last))
    }

    /// Removes `name` (a link itself, never its target); nothing there is fine.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Makes the renames and removals durable.
    pub fn sync(&self) -> std::io::Result<()> {
        nix::unistd::fsync(self.fd.as_fd()).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn links_planted_in_the_directory_never_lead_a_write_outside() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("units");
        std::fs::create_dir(&dir).expect("mkdir");
        let outside = root.path().join("shadow");
        std::fs::write(&outside, "root:x:0:0\n").expect("write");
        // A link at the name, and at every name the old code used for its temporary file.
        std::os::unix::fs::symlink(&outside, dir.join("flow-a.service")).expect("link");
        std::os::unix::fs::symlink(&outside, dir.join(".flow-a.service.flow-tmp")).expect("link");
        let d = Dir::open(&dir, false).expect("open");
        assert_eq!(
            d.entry("flow-a.service").expect("entry"),
            Some(Entry::Link(outside.clone()))
        );
        d.write("flow-a.service", b"# unit\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&outside).expect("read"),
            "root:x:0:0\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("flow-a.service")).expect("read"),
            "# unit\n"
        );
        assert!(!dir.join("flow-a.service").is_symlink());
        // Removing a link removes the link.
        std::os::unix::fs::symlink(&outside, dir.join("flow-b.service")).expect("link");
        d.remove("flow-b.service").expect("remove");
        assert!(outside.exists());
    }

    #[test]
    fn a_directory_that_is_a_link_is_refused_and_saying_so() {
        let root = tempfile::tempdir().expect("tempdir");
        let real = root.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = root.path().join("units");
        std::os::unix::fs::symlink(&real, &link).expect("link");
        let e = Dir::open(&link, true).expect_err("a link");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert!(e.to_string().contains(&real.display().to_string()), "{e}");
    }

    #[test]
    fn modes_are_set_whatever_the_umask() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        // The umask is the process's: no other test checks the modes of files it makes.
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        let d = Dir::open(&dir, true);
        let written = d.as_ref().map(|d| d.write("flow-x.service", b"x\n"));
        nix::sys::stat::umask(old);
        written.expect("open").expect("write");
        assert_eq!(mode(&root.path().join("a")), 0o755);
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(mode(&dir.join("flow-x.service")), 0o644);
    }

    #[test]
    fn tells_flows_files_from_others() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = Dir::open(root.path(), false).expect("open");
        std::fs::write(
            root.path().join("flow-a.service"),
            format!("# {HEADER_PREFIX}/w/a.yaml\n"),
        )
        .expect("write");
        std::fs::write(root.path().join("flow-b.service"), "[Service]\n").expect("write");
        std::fs::create_dir(root.path().join("flow-c.service")).expect("mkdir");
        assert_eq!(d.entry("flow-a.service").expect("a"), Some(Entry::Flows));
        assert_eq!(d.entry("flow-b.service").expect("b"), Some(Entry::Other));
        assert_eq!(d.entry("flow-c.service").expect("c"), Some(Entry::NotAFile));
        assert_eq!(d.entry("flow-d.service").expect("d"), None);
    }
}

//! A cgroup subtree of its own for each sandbox, made the root of its cgroup namespace.
//!
//! Without this, a sandboxed systemd mounts the cgroup hierarchies afresh and sees their
//! real roots: it creates `/system.slice/...` in the host's tree, leaves those directories
//! behind when killed, and two sandboxes running at once share (and kill each other's
//! processes in) the same `system.slice/dbus.service`. So before exec, PID 1 moves itself
//! into `<our cgroup>/flow-sandbox.XXXX` in every hierarchy and unshares its cgroup namespace.
//!
//! The hierarchies are mounted by the sandbox's reaper thread, which first unshares its own
//! mount namespace: nothing is mounted on the host, and the host need not mount every
//! hierarchy (v1 hierarchies such as `hugetlb` often are not).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::SandboxError;

/// One hierarchy from `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// `None` for the unified (v2) hierarchy, else the v1 mount options (`memory`,
    /// `cpu,cpuacct`, `name=systemd`), which select the existing hierarchy when mounted.
    pub v1_options: Option<String>,
    /// Our cgroup in it, e.g. `/user.slice/session-1.scope`.
    pub path: String,
}

/// Parses `/proc/self/cgroup`: `ID:CONTROLLERS:PATH` per line.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<Hierarchy> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let path = path.strip_suffix(" (deleted)").unwrap_or(path).to_string();
            if !path.starts_with('/') {
                return None;
            }
            match (id, controllers) {
                ("0", "") => Some(Hierarchy {
                    v1_options: None,
                    path,
                }),
                (_, "") => None,
                (_, c) => Some(Hierarchy {
                    v1_options: Some(c.to_string()),
                    path,
                }),
            }
        })
        .collect()
}

/// The sandbox's cgroups, one directory per hierarchy, mounted in the reaper thread's
/// private mount namespace. Only usable on that thread.
pub(crate) struct Cgroups {
    /// The sandbox's directory in each hierarchy, through the private mounts.
    dirs: Vec<PathBuf>,
    /// Each directory's `cgroup.procs`, open for PID 1 to write `0` (itself) into.
    procs: Vec<File>,
    mounts: Vec<PathBuf>,
}

impl Cgroups {
    /// Creates `<our cgroup>/<name>` in every hierarchy, after removing the empty cgroups
    /// of `stale` sandboxes (whose programs were killed). The calling thread must have
    /// unshared its mount namespace (see [`private_mount_namespace`]).
    pub(crate) fn create(
        mount_base: &Path,
        name: &str,
        stale: &[String],
    ) -> Result<Cgroups, SandboxError> {
        let text = fs::read_to_string("/proc/self/cgroup").map_err(|e| SandboxError::Cgroup {
            step: "read /proc/self/cgroup".into(),
            error: e,
        })?;
        let mut cgroups = Cgroups {
            dirs: Vec::new(),
            procs: Vec::new(),
            mounts: Vec::new(),
        };
        for (i, h) in parse_proc_cgroup(&text).into_iter().enumerate() {
            let mnt = mount_base.join(i.to_string());
            let what = h.v1_options.as_deref().unwrap_or("unified (v2)");
            fs::create_dir_all(&mnt).map_err(|e| SandboxError::Cgroup {
                step: format!("create {}", mnt.display()),
                error: e,
            })?;
            let mounted = match &h.v1_options {
                None => mount(
                    Some("cgroup2"),
                    &mnt,
                    Some("cgroup2"),
                    MsFlags::empty(),
                    None::<&str>,
                ),
                Some(opts) => mount(
                    Some("cgroup"),
                    &mnt,
                    Some("cgroup"),
                    MsFlags::empty(),
                    Some(opts.as_str()),
                ),
            };
            mounted.map_err(|e| SandboxError::Cgroup {
                step: format!("mount the {what} cgroup hierarchy"),
                error: e.into(),
            })?;
            cgroups.mounts.push(mnt.clone());
            let ours = mnt.join(h.path.trim_start_matches('/'));
            for dead in stale {
                remove_dead(&ours.join(dead));
            }
            sweep_stale(&ours);
            let dir = ours.join(name);
            fs::create_dir(&dir).map_err(|e| SandboxError::Cgroup {
                step: format!("create cgroup {}{} in the {what} hierarchy", h.path, name),
                error: e,
            })?;
            cgroups.dirs.push(dir.clone());
            if h.v1_options.is_some() {
                inherit_cpuset(&dir).map_err(|e| SandboxError::Cgroup {
                    step: format!("copy cpuset.cpus/mems in the {what} hierarchy"),
                    error: e,
                })?;
            }
            // PID 1 joins the sandbox's cgroup, except in the v1 devices hierarchy: there the
            // sandbox's cgroup holds the device list, and PID 1 joins a child of it, so the
            // list sits above the root of its cgroup namespace, out of its reach.
            let join = if is_devices(&h) {
                restrict_devices(&dir).map_err(|e| SandboxError::Cgroup {
                    step: "limit the devices the sandbox may open".into(),
                    error: e,
                })?;
                let inner = dir.join("sandbox");
                fs::create_dir(&inner).map_err(|e| SandboxError::Cgroup {
                    step: format!(
                        "create cgroup {}{}/sandbox in the {what} hierarchy",
                        h.path, name
                    ),
                    error: e,
                })?;
                inner
            } else {
                dir.clone()
            };
            let procs = OpenOptions::new()
                .write(true)
                .open(join.join("cgroup.procs"))
                .map_err(|e| SandboxError::Cgroup {
                    step: format!("open cgroup.procs in the {what} hierarchy"),
                    error: e,
                })?;
            cgroups.procs.push(procs);
        }
        Ok(cgroups)
    }

    /// Descriptors PID 1 writes `0` into to join the sandbox's cgroups.
    pub(crate) fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Closes the `cgroup.procs` descriptors once PID 1 has its copies.
    pub(crate) fn close_procs(&mut self) {
        self.procs.clear();
    }

    /// Removes the sandbox's cgroup trees once every process in them is gone, then
    /// unmounts the hierarchies. Best effort: a leftover empty cgroup is harmless.
    pub(crate) fn remove(&mut self) {
        self.procs.clear();
        for dir in self.dirs.drain(..) {
            // Cgroups of exited processes can stay busy for a moment while the kernel
            // finishes tearing them down.
            let deadline = Instant::now() + Duration::from_secs(3);
            while remove_tree(&dir).is_err() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        for mnt in self.mounts.drain(..) {
            let _ = umount2(&mnt, MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Cgroups {
    /// A boot that failed between creating the cgroups and starting PID 1 removes them
    /// here; after a normal run, [`Cgroups::remove`] already did and this does nothing.
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes `flow-sandbox.*` cgroups left by programs that were killed before they could
/// clean up (their PID 1 died with them). Only trees without a single process, and older
/// than a minute (so never one a booting sandbox is about to join), are removed: a live
/// sandbox always has its PID 1 somewhere in its tree.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let is_ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with("flow-sandbox.");
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(60)));
        if is_ours && old && !has_processes(&entry.path()) {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// Removes the cgroup tree of a sandbox known to be dead (see `sweep_stale_state_dirs`),
/// once the kernel has let go of its last processes.
fn remove_dead(dir: &Path) {
    if !dir.exists() || has_processes(dir) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while remove_tree(dir).is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Does any cgroup in this tree hold a process? Unreadable counts as yes.
fn has_processes(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(procs) if procs.trim().is_empty() => {}
        _ => return true,
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return true;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .any(|e| has_processes(&e.path()))
}

/// Devices the sandbox may open, in the v1 devices controller's syntax: those of its
/// private `/dev` (null, zero, full, random, urandom, tty, ptmx) and its own terminals.
const ALLOWED_DEVICES: &[&str] = &[
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

fn is_devices(h: &Hierarchy) -> bool {
    h.v1_options
        .as_deref()
        .is_some_and(|o| o.split(',').any(|c| c == "devices"))
}

/// Where the host has the v1 devices controller, what systemd starts in the sandbox (every
/// task) may open only the devices of its own `/dev`, whatever node it finds or mounts (a
/// devtmpfs shows every device of the host). An allowed device the host's own cgroup
/// denies stays denied: the kernel grants no more than the parent has, and the sandbox
/// needs none of them to boot.
fn restrict_devices(dir: &Path) -> io::Result<()> {
    fs::write(dir.join("devices.deny"), "a")?;
    for rule in ALLOWED_DEVICES {
        match fs::write(dir.join("devices.allow"), rule) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            other => other?,
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and joining it fails
/// with ENOSPC; give it its parent's. Other hierarchies have no such files.
fn inherit_cpuset(dir: &Path) -> io::Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if !dir.join(file).exists() {
            continue;
        }
        let value = fs::read_to_string(parent.join(file))?;
        fs::write(dir.join(file), value.trim())?;
    }
    Ok(())
}

/// Removes a cgroup directory and its children, deepest first. Only directories can (and
/// need to) be removed in a cgroup file system.
fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&entry.path())?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Gives the calling thread a mount namespace of its own in which nothing propagates back
/// to the host. Only this thread is affected (unsharing a mount namespace also unshares
/// the thread's file system context), so it is safe in a multi-threaded program.
pub(crate) fn private_mount_namespace() -> Result<(), SandboxError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| SandboxError::Cgroup {
        step: "unshare a mount namespace for the sandbox's helper thread".into(),
        error: e.into(),
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| SandboxError::Cgroup {
        step: "make the helper thread's mounts private".into(),
        error: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_and_unified_lines() {
        let text = "12:hugetlb:/\n9:name=systemd:/init.scope\n4:memory:/a/b\n\
                    2:cpu,cpuacct:/\n0::/user.slice/s.scope\n1:name=foo:/x (deleted)\n";
        let h = parse_proc_cgroup(text);
        assert_eq!(h.len(), 6);
        assert_eq!(h[0].v1_options.as_deref(), Some("hugetlb"));
        assert_eq!(h[1].v1_options.as_deref(), Some("name=systemd"));
        assert_eq!(h[1].path, "/init.scope");
        assert_eq!(h[3].v1_options.as_deref(), Some("cpu,cpuacct"));
        assert_eq!(h[4].v1_options, None);
        assert_eq!(h[4].path, "/user.slice/s.scope");
        assert_eq!(h[5].path, "/x");
    }

    #[test]
    fn skips_malformed_lines() {
        assert!(parse_proc_cgroup("garbage\n3:memory\n5::relative\n").is_empty());
    }
}

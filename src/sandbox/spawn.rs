//! Starting the sandbox's PID 1: clone into new namespaces, set up the root, exec systemd.
//!
//! Why in-process and not a helper program: a library cannot count on a helper binary being
//! installed next to whatever program links it (a test binary, `flow` itself). So the
//! setup is a list of [`Op`]s, built beforehand in ordinary Rust, and the cloned child
//! only walks that list making raw system calls. The child of a multi-threaded parent may
//! only do async-signal-safe work (another thread may have held the allocator's lock at
//! the moment of the clone), so the child never allocates, locks, or unwinds: it reads
//! prebuilt C strings, calls libc, and on failure writes `(op index, errno)` to a pipe and
//! `_exit`s. The pipe is close-on-exec, so end-of-file on it means systemd was exec'd.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::ptr;

use nix::errno::Errno;
use nix::unistd::Pid;

/// One setup step, run in the child in order. Paths are absolute unless noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: die with the thread that started us.
    DieWithParent,
    /// `write(fd, "0")`: join the cgroup whose `cgroup.procs` this is.
    JoinCgroup(RawFd),
    /// Run the inner step; a missing path (ENOENT) is not an error.
    IfExists(Box<Op>),
    /// `unshare(flags)`.
    Unshare(libc::c_int),
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// `mkdir`; an existing directory is fine.
    Mkdir(CString, libc::mode_t),
    /// Create `path` as a symlink to `target`.
    Symlink {
        target: CString,
        path: CString,
    },
    /// Create (or truncate) a file with this content.
    WriteFile {
        path: CString,
        data: Vec<u8>,
        mode: libc::mode_t,
    },
    SetXattr {
        path: CString,
        name: CString,
        value: Vec<u8>,
    },
    Chdir(CString),
    /// `pivot_root(new_root, put_old)`.
    PivotRoot {
        new_root: CString,
        put_old: CString,
    },
    /// `umount2(target, MNT_DETACH)`.
    DetachMount(CString),
    /// Point stdin, stdout and stderr at this file (opened read-write).
    Stdio(CString),
    /// Mark every descriptor from 3 up close-on-exec, so nothing the host program had open
    /// leaks into the sandbox. Kernels without `close_range` (< 5.11) skip it; systemd
    /// closes stray descriptors itself too.
    CloexecFrom3,
    /// Drop these capabilities from the bounding set and clear the inheritable and ambient
    /// sets (see [`drop_capabilities`]).
    DropCapabilities(Vec<libc::c_int>),
}

impl Op {
    /// A human-readable description for error messages.
    pub(crate) fn describe(&self) -> String {
        fn s(c: &CStr) -> String {
            c.to_string_lossy().into_owned()
        }
        match self {
            Op::DieWithParent => "set the parent-death signal".into(),
            Op::JoinCgroup(_) => "join the sandbox's cgroup".into(),
            Op::IfExists(op) => op.describe(),
            Op::Unshare(_) => "unshare the cgroup namespace".into(),
            Op::Mount {
                target,
                fstype,
                data,
                ..
            } => match (fstype, data) {
                (Some(t), Some(d)) => format!("mount {} on {} ({})", s(t), s(target), s(d)),
                (Some(t), None) => format!("mount {} on {}", s(t), s(target)),
                _ => format!("mount (bind/remount/propagation) on {}", s(target)),
            },
            Op::Mkdir(p, _) => format!("create directory {}", s(p)),
            Op::Symlink { target, path } => format!("link {} to {}", s(path), s(target)),
            Op::WriteFile { path, .. } => format!("write {}", s(path)),
            Op::SetXattr { path, name, .. } => format!("set {} on {}", s(name), s(path)),
            Op::Chdir(p) => format!("change directory to {}", s(p)),
            Op::PivotRoot { new_root, .. } => format!("pivot_root into {}", s(new_root)),
            Op::DetachMount(p) => format!("detach {}", s(p)),
            Op::Stdio(p) => format!("point stdio at {}", s(p)),
            Op::CloexecFrom3 => "mark inherited descriptors close-on-exec".into(),
            Op::DropCapabilities(_) => "drop capabilities from the bounding set".into(),
        }
    }

    /// Runs the step. Async-signal-safe: system calls on prebuilt data only.
    fn apply(&self) -> Result<(), Errno> {
        fn opt(c: &Option<CString>) -> *const libc::c_char {
            c.as_ref().map_or(ptr::null(), |c| c.as_ptr())
        }
        // SAFETY: every pointer comes from a live CString/Vec owned by the plan, which the
        // child's copy of the address space keeps alive until exec or _exit.
        unsafe {
            let rc = match self {
                Op::DieWithParent => libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0),
                Op::JoinCgroup(fd) => {
                    let n = libc::write(*fd, b"0".as_ptr().cast(), 1);
                    if n == 1 { 0 } else { -1 }
                }
                Op::IfExists(op) => match op.apply() {
                    Err(Errno::ENOENT) => 0,
                    Err(e) => return Err(e),
                    Ok(()) => 0,
                },
                Op::Unshare(flags) => libc::unshare(*flags),
                Op::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => libc::mount(
                    opt(source),
                    target.as_ptr(),
                    opt(fstype),
                    *flags,
                    opt(data).cast(),
                ),
                Op::Mkdir(p, mode) => {
                    let rc = libc::mkdir(p.as_ptr(), *mode);
                    if rc != 0 && Errno::last() == Errno::EEXIST {
                        0
                    } else {
                        rc
                    }
                }
                Op::Symlink { target, path } => libc::symlink(target.as_ptr(), path.as_ptr()),
                Op::WriteFile { path, data, mode } => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                        *mode as libc::c_uint,
                    );
                    if fd < 0 {
                        return Err(Errno::last());
                    }
                    let mut done = 0;
                    while done < data.len() {
                        let n = libc::write(fd, data[done..].as_ptr().cast(), data.len() - done);
                        if n <= 0 {
                            let e = Errno::last();
                            libc::close(fd);
                            return Err(e);
                        }
                        done += n as usize;
                    }
                    libc::close(fd)
                }
                Op::SetXattr { path, name, value } => libc::setxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                ),
                Op::Chdir(p) => libc::chdir(p.as_ptr()),
                Op::PivotRoot { new_root, put_old } => {
                    libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) as i32
                }
                Op::DetachMount(p) => libc::umount2(p.as_ptr(), libc::MNT_DETACH),
                Op::Stdio(p) => {
                    let fd = libc::open(p.as_ptr(), libc::O_RDWR);
                    if fd < 0 {
                        return Err(Errno::last());
                    }
                    for target in 0..3 {
                        if libc::dup2(fd, target) < 0 {
                            return Err(Errno::last());
                        }
                    }
                    if fd > 2 { libc::close(fd) } else { 0 }
                }
                Op::DropCapabilities(caps) => match drop_capabilities(caps) {
                    Ok(()) => 0,
                    Err(e) => return Err(e),
                },
                Op::CloexecFrom3 => match cloexec_from_3() {
                    Ok(()) => 0,
                    Err(e) => return Err(e),
                },
            };
            if rc < 0 { Err(Errno::last()) } else { Ok(()) }
        }
    }
}

/// Marks every descriptor from 3 up close-on-exec. Kernels without `close_range` (< 5.11)
/// skip it. Async-signal-safe.
pub(crate) fn cloexec_from_3() -> Result<(), Errno> {
    // SAFETY: a plain system call on integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 && Errno::last() != Errno::ENOSYS {
        return Err(Errno::last());
    }
    Ok(())
}

/// Removes `caps` from the calling thread's bounding set, so no program it execs (nor
/// their children) can ever hold them, even as root; and empties the inheritable and
/// ambient sets, which root's exec would otherwise pass on past the bounding set.
/// Capabilities this kernel does not know (EINVAL) are skipped. Async-signal-safe: used
/// in the cloned PID 1 and in the forked child of [`super::Sandbox::command`].
pub(crate) fn drop_capabilities(caps: &[libc::c_int]) -> Result<(), Errno> {
    /// `struct __user_cap_header_struct`.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    /// `struct __user_cap_data_struct`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    // SAFETY: prctl and capget/capset on stack values only.
    unsafe {
        for &cap in caps {
            let rc = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            if rc != 0 && Errno::last() != Errno::EINVAL {
                return Err(Errno::last());
            }
        }
        // EINVAL: a kernel before ambient capabilities (4.3), where there are none to clear.
        let rc = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        if rc != 0 && Errno::last() != Errno::EINVAL {
            return Err(Errno::last());
        }
        let mut header = Header {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        ) != 0
        {
            return Err(Errno::last());
        }
        if data.iter().all(|d| d.inheritable == 0) {
            return Ok(());
        }
        for d in &mut data {
            d.inheritable = 0;
        }
        if libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Everything the child needs, prepared before the clone.
#[derive(Debug)]
pub(crate) struct Plan {
    pub ops: Vec<Op>,
    /// Give the sandbox a network namespace of its own (loopback only).
    pub new_network: bool,
    /// Index of the overlay mount in `ops`, to turn its failure into a clear message.
    pub overlay_op: usize,
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// Marks a step that failed in the child: which op (`ops.len()` for the exec) and errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChildFailure {
    pub op: usize,
    pub errno: Errno,
}

impl ChildFailure {
    pub(crate) const WIRE_SIZE: usize = 8;

    pub(crate) fn decode(buf: &[u8; Self::WIRE_SIZE]) -> ChildFailure {
        let op = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let errno = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        ChildFailure {
            op,
            errno: Errno::from_raw(errno),
        }
    }

    fn encode(op: usize, errno: Errno) -> [u8; Self::WIRE_SIZE] {
        let mut buf = [0u8; Self::WIRE_SIZE];
        buf[..4].copy_from_slice(&(op as u32).to_le_bytes());
        buf[4..].copy_from_slice(&(errno as i32).to_le_bytes());
        buf
    }
}

/// Clones a child in new PID, mount, UTS, IPC and (unless the plan shares the host's)
/// network namespaces (it is PID 1 there), which runs
/// `plan` and execs systemd. Failures are written to `report` (a close-on-exec pipe).
///
/// Returns the child's PID in the caller's namespace.
pub(crate) fn spawn(plan: &Plan, report: RawFd) -> Result<Pid, Errno> {
    // Pointer arrays are built here, not in the child: the child must not allocate.
    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect();
    let mut flags = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::SIGCHLD;
    if plan.new_network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: a raw clone without CLONE_VM behaves like fork(): the child gets a copy of
    // the address space and continues here on a copy of this stack. It then only runs
    // `child`, which is async-signal-safe and never returns. The stack and TLS arguments
    // are 0 (keep the current ones), so their order, which differs by architecture, does
    // not matter.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match rc {
        -1 => Err(Errno::last()),
        0 => child(plan, &argv, &envp, report),
        pid => Ok(Pid::from_raw(pid as libc::pid_t)),
    }
}

/// The child: run the plan, exec systemd. Never returns.
fn child(
    plan: &Plan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: RawFd,
) -> ! {
    fn fail(report: RawFd, op: usize, errno: Errno) -> ! {
        let buf = ChildFailure::encode(op, errno);
        // SAFETY: plain write/_exit of a stack buffer; nothing else can be done on failure.
        unsafe {
            libc::write(report, buf.as_ptr().cast(), buf.len());
            libc::_exit(127)
        }
    }
    for (i, op) in plan.ops.iter().enumerate() {
        if let Err(errno) = op.apply() {
            fail(report, i, errno);
        }
    }
    // SAFETY: argv and envp are null-terminated arrays of pointers into live CStrings.
    unsafe {
        libc::execve(plan.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    fail(report, plan.ops.len(), Errno::last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_survive_the_pipe() {
        let buf = ChildFailure::encode(17, Errno::ENODEV);
        assert_eq!(
            ChildFailure::decode(&buf),
            ChildFailure {
                op: 17,
                errno: Errno::ENODEV
            }
        );
    }

    #[test]
    fn ops_describe_themselves() {
        let op = Op::Mount {
            source: Some(c"overlay".into()),
            target: c"/r".into(),
            fstype: Some(c"overlay".into()),
            flags: 0,
            data: Some(c"lowerdir=/".into()),
        };
        assert_eq!(op.describe(), "mount overlay on /r (lowerdir=/)");
    }
}

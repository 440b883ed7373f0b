//! The sandbox's setup, as data: which mounts, masks and files PID 1 makes before exec.
//!
//! Building the plan is ordinary Rust (it allocates, validates, formats); running it is
//! [`super::spawn`]'s job. Keeping the two apart lets the plan be unit-tested without root.
//!
//! The file system the sandbox sees:
//! - `/` is an overlay: the host's root file system read-only underneath, a tmpfs on top
//!   that takes every write and vanishes with the sandbox.
//! - `/tmp`, `/run`, `/var/tmp` are fresh tmpfs: booting systemd cleans these, and the
//!   host's must never be touched.
//! - `/dev` is the sandbox's own tmpfs, nothing of the host's disks or terminals: the
//!   host's `null`, `zero`, `full`, `random`, `urandom` and `tty` nodes bind-mounted in,
//!   `/dev/console` as `/dev/null`, a devpts instance of its own (`/dev/pts`, `/dev/ptmx`)
//!   and a fresh tmpfs on `/dev/shm`. A task that finds a terminal here finds one made in
//!   the sandbox, never the one `flow try` runs in.
//! - `/proc` is the sandbox's own, with `/proc/sys` (most sysctls are host-wide),
//!   `/proc/sysrq-trigger`, `/proc/irq`, `/proc/bus` and `/proc/fs` read-only; `/sys` is
//!   read-only.
//! - `/etc/systemd/system` starts empty (unless `host_units`): what the host enabled
//!   (databases, sshd, networking, timers) must not start in the sandbox, and a unit
//!   list that does not depend on the host keeps tests reproducible.
//! - Every generator is masked: they turn host configuration (`/etc/fstab`, SysV scripts,
//!   crypttab) into units that would mount or fsck host disks or start host services.
//!
//! Beyond files: the sandbox has a network namespace of its own with loopback only (unless
//! [`Layout::host_network`]), and [`DROPPED_CAPABILITIES`] leave the bounding set of PID 1
//! (and so of every process in the sandbox) before systemd starts.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use super::SandboxError;
use super::spawn::{Op, Plan};

/// Units masked in every sandbox. Each either reaches outside the sandbox (kernel modules,
/// sysctls, binfmt, udev and device nodes in the shared `/dev`, the kernel audit stream, the
/// host's disks or clock) or is boot-time work a throwaway system does not need.
pub const DEFAULT_MASKED: &[&str] = &[
    // From the verified recipe.
    "postgresql.service",
    "postgresql@.service",
    "getty@.service",
    "console-getty.service",
    "serial-getty@.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "man-db.timer",
    "cron.service",
    // Loads kernel modules into the host's kernel.
    "modprobe@.service",
    // Create device nodes in /dev, which is the host's.
    "kmod-static-nodes.service",
    "systemd-tmpfiles-setup-dev.service",
    // udev would replay every device event of the host's kernel.
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-hwdb-update.service",
    // Reads the host's kernel audit stream.
    "systemd-journald-audit.socket",
    // Scans the host's LVM volumes.
    "e2scrub_reap.service",
    // Seats and VTs are the host's; nothing flow runs needs logins.
    "systemd-logind.service",
    // Kernel file systems nothing in a sandbox uses: time off every boot.
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    // The journal is volatile (see JOURNALD_CONF): nothing to flush.
    "systemd-journal-flush.service",
    // Login records: nobody logs in to a sandbox, and they sit on the boot's critical path.
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    // Periodic host maintenance.
    "dpkg-db-backup.timer",
    "logrotate.timer",
    "ldconfig.service",
];

/// Capabilities no process in a sandbox may hold, by number and name: each acts on the
/// host's kernel as a whole (none is namespaced), so root in the sandbox would otherwise
/// reach past it. systemd and everything flow runs work without them.
pub const DROPPED_CAPABILITIES: &[(libc::c_int, &str)] = &[
    // Loads code into the host's kernel.
    (16, "CAP_SYS_MODULE"),
    // I/O ports, /dev/mem, /proc/kcore, raw block and SCSI commands.
    (17, "CAP_SYS_RAWIO"),
    // Process accounting is host-wide.
    (20, "CAP_SYS_PACCT"),
    // reboot(2) only ends the sandbox's PID namespace, but kexec_load replaces the host's
    // kernel.
    (22, "CAP_SYS_BOOT"),
    // The clock is the host's.
    (25, "CAP_SYS_TIME"),
    // vhangup and keyboard maps of the host's terminals.
    (26, "CAP_SYS_TTY_CONFIG"),
    // A device node for any device (a host disk), outside the private /dev.
    (27, "CAP_MKNOD"),
    // The host's audit rules.
    (30, "CAP_AUDIT_CONTROL"),
    // The host's security modules' policy.
    (32, "CAP_MAC_OVERRIDE"),
    (33, "CAP_MAC_ADMIN"),
    // The host kernel's log.
    (34, "CAP_SYSLOG"),
    // The host's power management.
    (35, "CAP_WAKE_ALARM"),
    (36, "CAP_BLOCK_SUSPEND"),
    // The host's audit stream.
    (37, "CAP_AUDIT_READ"),
    // Tracing the host's kernel.
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
];

/// Dropped too when the sandbox shares the host's network: configuring interfaces, routes
/// and firewall rules would change the host's.
pub const HOST_NETWORK_DROPPED: &[(libc::c_int, &str)] = &[(12, "CAP_NET_ADMIN")];

/// The capability numbers a sandbox drops from its bounding set.
pub(crate) fn dropped_capabilities(host_network: bool) -> Vec<libc::c_int> {
    let extra: &[(libc::c_int, &str)] = if host_network {
        HOST_NETWORK_DROPPED
    } else {
        &[]
    };
    DROPPED_CAPABILITIES
        .iter()
        .chain(extra)
        .map(|&(n, _)| n)
        .collect()
}

/// Device nodes of the host that the sandbox's private `/dev` holds: harmless, and what
/// programs expect. `/dev/tty` opens the caller's controlling terminal; nothing in the
/// sandbox has one of the host's (see `Sandbox::command`).
const HOST_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// journald in the sandbox keeps its journal in memory (it dies with the sandbox anyway)
/// and does not import the host kernel's log buffer, which is large, slow to read and
/// nothing the sandbox did.
pub(crate) const JOURNALD_CONF: &str = "\
# Written by flow's sandbox.
[Journal]
Storage=volatile
ReadKMsg=no
";

/// Where a sandbox lives on the host and what it hides.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The sandbox's private state directory on the host.
    pub state: PathBuf,
    pub systemd: PathBuf,
    /// Units to link to /dev/null: the defaults plus the caller's.
    pub masked: Vec<String>,
    /// Generator names to mask.
    pub generators: Vec<String>,
    /// Show the host's /etc/systemd/system in the sandbox.
    pub host_units: bool,
    /// Kill PID 1 when the thread that started it exits.
    pub die_with_parent: bool,
    /// Share the host's network namespace instead of one with loopback only.
    pub host_network: bool,
}

impl Layout {
    pub(crate) fn overlay_dir(&self) -> PathBuf {
        self.state.join("ov")
    }
    pub(crate) fn root_dir(&self) -> PathBuf {
        self.state.join("root")
    }
    pub(crate) fn cgroup_dir(&self) -> PathBuf {
        self.state.join("cg")
    }
}

/// Is this a name a unit or generator file may have (no path, nothing odd)?
pub(crate) fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.contains(['/', '\0'])
}

fn c(path: impl AsRef<Path>) -> Result<CString, SandboxError> {
    let path = path.as_ref();
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| SandboxError::InvalidOption {
        what: format!("path {} contains a NUL byte", path.display()),
    })
}

fn mount(
    source: Option<&str>,
    target: impl AsRef<Path>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<Op, SandboxError> {
    Ok(Op::Mount {
        source: source.map(c).transpose()?,
        target: c(target)?,
        fstype: fstype.map(c).transpose()?,
        flags,
        data: data.map(c).transpose()?,
    })
}

/// Builds the setup for PID 1. `cgroup_procs` are the sandbox's `cgroup.procs` descriptors.
pub(crate) fn build(layout: &Layout, cgroup_procs: &[RawFd]) -> Result<Plan, SandboxError> {
    for name in layout.masked.iter().chain(&layout.generators) {
        if !valid_file_name(name) {
            return Err(SandboxError::InvalidOption {
                what: format!("cannot mask {name:?}: not a unit file name"),
            });
        }
    }
    let ov = layout.overlay_dir();
    let upper = ov.join("upper");
    let work = ov.join("work");
    let root = layout.root_dir();
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    let mut ops = Vec::new();

    if layout.die_with_parent {
        ops.push(Op::DieWithParent);
    }
    // Join the sandbox's own cgroups, then make them the root of what systemd will see.
    for &fd in cgroup_procs {
        ops.push(Op::JoinCgroup(fd));
    }
    if !cgroup_procs.is_empty() {
        ops.push(Op::Unshare(libc::CLONE_NEWCGROUP));
    }
    // Nothing mounted from here on may propagate back to the host.
    ops.push(mount(
        None,
        "/",
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?);
    // The overlay's upper layer must be on a different file system than `/`, or the kernel
    // sees overlapping layers; a tmpfs also makes every write vanish with the sandbox.
    ops.push(mount(
        Some("tmpfs"),
        &ov,
        Some("tmpfs"),
        0,
        Some("mode=0755"),
    )?);
    ops.push(Op::Mkdir(c(&upper)?, 0o755));
    ops.push(Op::Mkdir(c(&work)?, 0o755));

    // Seed the upper layer before mounting the overlay: plain files in a tmpfs.
    let etc_systemd = upper.join("etc/systemd");
    for dir in [
        "etc",
        "etc/systemd",
        "etc/systemd/system",
        "etc/systemd/system-generators",
    ] {
        ops.push(Op::Mkdir(c(upper.join(dir))?, 0o755));
    }
    let opaque = |dir: PathBuf| -> Result<Op, SandboxError> {
        Ok(Op::SetXattr {
            path: c(dir)?,
            name: c("trusted.overlay.opaque")?,
            value: b"y".to_vec(),
        })
    };
    if !layout.host_units {
        ops.push(opaque(etc_systemd.join("system"))?);
    }
    // Generators configured by the host's admin are hidden too.
    ops.push(opaque(etc_systemd.join("system-generators"))?);
    let mut masked: Vec<&String> = layout.masked.iter().collect();
    masked.sort();
    masked.dedup();
    for unit in masked {
        ops.push(Op::Symlink {
            target: c("/dev/null")?,
            path: c(etc_systemd.join("system").join(unit))?,
        });
    }
    let mut generators: Vec<&String> = layout.generators.iter().collect();
    generators.sort();
    generators.dedup();
    for generator in generators {
        ops.push(Op::Symlink {
            target: c("/dev/null")?,
            path: c(etc_systemd.join("system-generators").join(generator))?,
        });
    }
    ops.push(Op::Mkdir(c(etc_systemd.join("journald.conf.d"))?, 0o755));
    ops.push(Op::WriteFile {
        path: c(etc_systemd.join("journald.conf.d/flow-sandbox.conf"))?,
        data: JOURNALD_CONF.as_bytes().to_vec(),
        mode: 0o644,
    });

    if layout.state.to_string_lossy().contains(',') {
        return Err(SandboxError::InvalidOption {
            what: format!(
                "the state directory {} contains a comma, which overlay options cannot hold",
                layout.state.display()
            ),
        });
    }
    let overlay_op = ops.len();
    let overlay_opts = format!(
        "lowerdir=/,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    ops.push(mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        0,
        Some(&overlay_opts),
    )?);

    for (dir, mode) in [
        ("tmp", "mode=1777"),
        ("run", "mode=0755"),
        ("var/tmp", "mode=1777"),
    ] {
        ops.push(Op::Mkdir(c(root.join(dir))?, 0o755));
        ops.push(mount(
            Some("tmpfs"),
            root.join(dir),
            Some("tmpfs"),
            nosuid_nodev,
            Some(mode),
        )?);
    }
    private_dev(&mut ops, &root.join("dev"))?;

    // pivot_root(".", ".") stacks the old root on top of the new one; detaching the top
    // then leaves only the sandbox's root, with no `/oldroot` directory left behind.
    ops.push(Op::Chdir(c(&root)?));
    ops.push(Op::PivotRoot {
        new_root: c(".")?,
        put_old: c(".")?,
    });
    ops.push(Op::DetachMount(c(".")?));
    ops.push(Op::Chdir(c("/")?));

    let noexec = nosuid_nodev | libc::MS_NOEXEC;
    ops.push(mount(Some("proc"), "/proc", Some("proc"), noexec, None)?);
    // sysctls outside the namespaced few are host-wide, and so are these: read-only.
    // `/proc/sysrq-trigger` would reboot or crash the host at one written byte.
    for (path, required) in [
        ("/proc/sys", true),
        ("/proc/sysrq-trigger", false),
        ("/proc/irq", false),
        ("/proc/bus", false),
        ("/proc/fs", false),
    ] {
        let bind = mount(Some(path), path, None, libc::MS_BIND, None)?;
        let read_only = mount(
            None,
            path,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | noexec,
            None,
        )?;
        if required {
            ops.extend([bind, read_only]);
        } else {
            // Not every kernel has them (they depend on its configuration).
            ops.extend([
                Op::IfExists(Box::new(bind)),
                Op::IfExists(Box::new(read_only)),
            ]);
        }
    }
    ops.push(mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        noexec | libc::MS_RDONLY,
        None,
    )?);

    ops.push(Op::Stdio(c("/dev/null")?));
    ops.push(Op::CloexecFrom3);
    // Last: dropping them does not take them from PID 1 now (it still mounts above), only
    // from what it execs, systemd included.
    ops.push(Op::DropCapabilities(dropped_capabilities(
        layout.host_network,
    )));

    let program = c(&layout.systemd)?;
    let argv = vec![
        program.clone(),
        c("--system")?,
        c("--unit=multi-user.target")?,
        // Boot status would go to /dev/console, which is the host's.
        c("--show-status=no")?,
    ];
    // A clean environment: nothing of the calling program's leaks into the services, and
    // `container=` tells systemd it is in a container (it then skips hardware setup and
    // behaves the same whether or not the host itself is a container).
    let envp = vec![c("container=flow")?];
    Ok(Plan {
        ops,
        new_network: !layout.host_network,
        overlay_op,
        program,
        argv,
        envp,
    })
}

/// Builds the sandbox's own `/dev` at `dev` (before `pivot_root`, so the host's nodes are
/// still at `/dev`). Bind mounts, not `mknod`: they work wherever `/dev` itself works.
fn private_dev(ops: &mut Vec<Op>, dev: &Path) -> Result<(), SandboxError> {
    // Not nodev: the nodes bound in must work. Nothing else can become a device here once
    // CAP_MKNOD is gone.
    ops.push(mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755"),
    )?);
    for node in HOST_DEVICES {
        ops.push(Op::WriteFile {
            path: c(dev.join(node))?,
            data: Vec::new(),
            mode: 0o666,
        });
        ops.push(mount(
            Some(format!("/dev/{node}").as_str()),
            dev.join(node),
            None,
            libc::MS_BIND,
            None,
        )?);
    }
    // systemd (PID 1) writes what it cannot send to the journal yet to /dev/console; the
    // host's console is not the sandbox's to write on.
    ops.push(Op::WriteFile {
        path: c(dev.join("console"))?,
        data: Vec::new(),
        mode: 0o600,
    });
    ops.push(mount(
        Some("/dev/null"),
        dev.join("console"),
        None,
        libc::MS_BIND,
        None,
    )?);
    // A devpts instance of its own: terminals made in the sandbox, none of the host's.
    // gid 5 is the tty group systemd is built with.
    ops.push(Op::Mkdir(c(dev.join("pts"))?, 0o755));
    ops.push(mount(
        Some("devpts"),
        dev.join("pts"),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?);
    ops.push(Op::Symlink {
        target: c("pts/ptmx")?,
        path: c(dev.join("ptmx"))?,
    });
    // POSIX shared memory of its own: a write there vanishes with the sandbox.
    ops.push(Op::Mkdir(c(dev.join("shm"))?, 0o1777));
    ops.push(mount(
        Some("tmpfs"),
        dev.join("shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?);
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink {
            target: c(target)?,
            path: c(dev.join(link))?,
        });
    }
    Ok(())
}

/// Names of the generators installed on the host, which the sandbox masks.
pub(crate) fn host_generators() -> Vec<String> {
    let mut names = Vec::new();
    for dir in [
        "/etc/systemd/system-generators",
        "/usr/local/lib/systemd/system-generators",
        "/lib/systemd/system-generators",
        "/usr/lib/systemd/system-generators",
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(name) = entry.file_name().into_string()
                && valid_file_name(&name)
            {
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            state: PathBuf::from("/tmp/flow-sandbox.x"),
            systemd: PathBuf::from("/lib/systemd/systemd"),
            masked: vec!["b.service".into(), "a.service".into(), "a.service".into()],
            generators: vec!["systemd-fstab-generator".into()],
            host_units: false,
            die_with_parent: true,
            host_network: false,
        }
    }

    #[test]
    fn overlay_sits_on_a_tmpfs_upper() {
        let plan = build(&layout(), &[]).unwrap();
        assert_eq!(
            plan.ops[plan.overlay_op].describe(),
            "mount overlay on /tmp/flow-sandbox.x/root \
             (lowerdir=/,upperdir=/tmp/flow-sandbox.x/ov/upper,workdir=/tmp/flow-sandbox.x/ov/work)"
        );
        assert!(
            plan.ops
                .iter()
                .any(|op| op.describe() == "mount tmpfs on /tmp/flow-sandbox.x/ov (mode=0755)")
        );
    }

    #[test]
    fn masks_are_deduplicated_and_point_at_dev_null() {
        let plan = build(&layout(), &[]).unwrap();
        let links: Vec<String> = plan
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Symlink { .. }))
            .map(Op::describe)
            .filter(|d| d.contains("/etc/systemd/"))
            .collect();
        assert_eq!(
            links,
            [
                "link /tmp/flow-sandbox.x/ov/upper/etc/systemd/system/a.service to /dev/null",
                "link /tmp/flow-sandbox.x/ov/upper/etc/systemd/system/b.service to /dev/null",
                "link /tmp/flow-sandbox.x/ov/upper/etc/systemd/system-generators/systemd-fstab-generator to /dev/null",
            ]
        );
    }

    #[test]
    fn host_units_are_hidden_unless_asked_for() {
        let hidden = build(&layout(), &[]).unwrap();
        let shown = build(
            &Layout {
                host_units: true,
                ..layout()
            },
            &[],
        )
        .unwrap();
        let opaque = |p: &Plan| {
            p.ops
                .iter()
                .filter(|op| matches!(op, Op::SetXattr { .. }))
                .count()
        };
        assert_eq!(opaque(&hidden), 2);
        assert_eq!(opaque(&shown), 1);
    }

    #[test]
    fn cgroups_are_joined_before_the_namespace_is_made() {
        let plan = build(&layout(), &[7, 8]).unwrap();
        assert_eq!(plan.ops[0], Op::DieWithParent);
        assert_eq!(plan.ops[1], Op::JoinCgroup(7));
        assert_eq!(plan.ops[2], Op::JoinCgroup(8));
        assert_eq!(plan.ops[3], Op::Unshare(libc::CLONE_NEWCGROUP));
    }

    #[test]
    fn rejects_unit_names_with_paths() {
        let bad = Layout {
            masked: vec!["../../etc/passwd".into()],
            ..layout()
        };
        assert!(matches!(
            build(&bad, &[]),
            Err(SandboxError::InvalidOption { .. })
        ));
    }

    #[test]
    fn dev_is_private_and_holds_only_harmless_host_nodes() {
        let plan = build(&layout(), &[]).unwrap();
        let described: Vec<String> = plan.ops.iter().map(Op::describe).collect();
        // The host's /dev is never bound in whole, only a few nodes.
        let binds: Vec<String> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Mount {
                    source: Some(src),
                    flags,
                    ..
                } if flags & libc::MS_BIND != 0 => Some(src.to_string_lossy().into_owned()),
                _ => None,
            })
            .filter(|src| src.starts_with("/dev"))
            .collect();
        assert_eq!(
            binds,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/null"
            ]
        );
        for fs in [
            "mount tmpfs on /tmp/flow-sandbox.x/root/dev (mode=0755)",
            "mount devpts on /tmp/flow-sandbox.x/root/dev/pts \
             (newinstance,ptmxmode=0666,mode=0620,gid=5)",
            "mount tmpfs on /tmp/flow-sandbox.x/root/dev/shm (mode=1777)",
        ] {
            assert!(
                described.iter().any(|d| d == fs),
                "no `{fs}` in {described:#?}"
            );
        }
    }

    #[test]
    fn capabilities_are_dropped_last_and_more_with_the_host_network() {
        let own = build(&layout(), &[]).unwrap();
        let Some(Op::DropCapabilities(caps)) = own.ops.last() else {
            panic!(
                "the last step is not the capability drop: {:?}",
                own.ops.last()
            );
        };
        for cap in [16, 17, 22, 25, 27] {
            assert!(caps.contains(&cap), "{cap} not dropped");
        }
        assert!(
            !caps.contains(&12),
            "CAP_NET_ADMIN dropped in a network of its own"
        );
        assert!(own.new_network);
        let shared = build(
            &Layout {
                host_network: true,
                ..layout()
            },
            &[],
        )
        .unwrap();
        let Some(Op::DropCapabilities(caps)) = shared.ops.last() else {
            panic!("no capability drop");
        };
        assert!(caps.contains(&12));
        assert!(!shared.new_network);
    }

    #[test]
    fn systemd_gets_a_clean_environment() {
        let plan = build(&layout(), &[]).unwrap();
        assert_eq!(plan.envp, [c("container=flow").unwrap()]);
        assert_eq!(plan.argv[0], c("/lib/systemd/systemd").unwrap());
    }
}

//! End-to-end tests of the sandbox: it boots, it keeps the host untouched (files, `/dev`,
//! network, capabilities), it dies when dropped (or when its program is killed), and
//! sandboxes run side by side.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    self, Boot, journal_messages, pid_alive, run, sh, systemd, wait_until, write_unit,
};
use flow::sandbox::{
    DROPPED_CAPABILITIES, HOST_NETWORK_DROPPED, Sandbox, SandboxError, SandboxOptions,
};
use flow::systemd::JobResult;

#[test]
fn boots_to_running() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    let state = run(&sb, "systemctl", &["is-system-running"]);
    let failed = run(&sb, "systemctl", &["--failed", "--no-legend"]);
    assert_eq!(
        state.stdout.trim(),
        "running",
        "failed units in the sandbox:\n{}",
        failed.stdout
    );
    // PID 1 inside is systemd, and it sees its own cgroup as the root.
    assert_eq!(sh(&sb, "cat /proc/1/comm").ok().stdout.trim(), "systemd");
    let cgroup = sh(&sb, "cat /proc/1/cgroup").ok().stdout;
    assert!(cgroup.lines().any(|l| l == "0::/init.scope"), "{cgroup}");
}

#[test]
fn host_tmp_is_untouched() {
    let Some(_machine) = harness::root() else {
        return;
    };
    let marker = tempfile::Builder::new()
        .prefix("flow-host-marker.")
        .tempfile_in("/tmp")
        .expect("create a marker in the host's /tmp");
    let sb = Sandbox::boot().expect("boot");
    // The sandbox has its own /tmp: the marker is not there, and what it writes stays in.
    let inside = sh(&sb, &format!("test -e {}", marker.path().display()));
    assert!(
        !inside.success(),
        "the host's /tmp is visible in the sandbox"
    );
    sh(&sb, "echo hi > /tmp/flow-written-inside").ok();
    assert!(!Path::new("/tmp/flow-written-inside").exists());
    sb.shutdown();
    assert!(
        marker.path().exists(),
        "booting the sandbox removed a file from the host's /tmp"
    );
}

/// The bounding set in `/proc/<who>/status` inside, as a bit mask.
fn bounding_set(sb: &Sandbox, who: &str) -> u64 {
    let status = sh(sb, &format!("cat /proc/{who}/status")).ok().stdout;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap_or_else(|| panic!("no CapBnd in:\n{status}"));
    u64::from_str_radix(hex.trim(), 16).expect("CapBnd is hex")
}

/// The capabilities of `caps` in `set`, by name.
fn held(set: u64, caps: &[(i32, &str)]) -> Vec<String> {
    caps.iter()
        .filter(|(bit, _)| set >> bit & 1 == 1)
        .map(|(_, name)| name.to_string())
        .collect()
}

fn net_namespace(sb: &Sandbox) -> String {
    sh(sb, "readlink /proc/1/ns/net")
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn dev_network_and_capabilities_are_the_sandboxs_own() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    // /dev: the harmless nodes, a devpts of its own, no block device, nothing of the host's.
    // (stat, not find's -type: the nodes are bind mounts on files of the tmpfs.)
    let nodes = sh(
        &sb,
        "find /dev ! -type l | while read -r f; do \
           if [ -b \"$f\" ] || [ -c \"$f\" ]; then echo \"$f\"; fi; done | sort",
    )
    .ok()
    .stdout;
    assert_eq!(
        nodes,
        "/dev/console\n/dev/full\n/dev/null\n/dev/pts/ptmx\n/dev/random\n/dev/tty\n/dev/urandom\n/dev/zero\n"
    );
    assert!(Path::new("/dev/null").exists());
    // Its /dev/shm is not the host's.
    sh(&sb, "echo inside > /dev/shm/flow-sandbox-test-shm").ok();
    assert!(!Path::new("/dev/shm/flow-sandbox-test-shm").exists());
    // A network of its own, loopback only, and up.
    let host_net = std::fs::read_link("/proc/self/ns/net").expect("host net namespace");
    assert_ne!(net_namespace(&sb), host_net.to_string_lossy());
    assert_eq!(sh(&sb, "ls /sys/class/net").ok().stdout, "lo\n");
    let lo = sh(&sb, "cat /sys/class/net/lo/flags").ok().stdout;
    let flags = u32::from_str_radix(lo.trim().trim_start_matches("0x"), 16).expect("flags");
    assert_eq!(flags & 1, 1, "loopback is down (flags {lo})");
    // Neither systemd nor a command run inside holds the dropped capabilities.
    for who in ["1", "self"] {
        let set = bounding_set(&sb, who);
        assert_eq!(
            held(set, DROPPED_CAPABILITIES),
            Vec::<String>::new(),
            "{who}"
        );
        // In a network of its own, managing it is fine.
        assert_eq!(held(set, HOST_NETWORK_DROPPED).len(), 1, "{who}");
    }
}

#[test]
fn devices_outside_its_dev_cannot_be_opened_with_the_v1_devices_controller() {
    if !crate::common::require_root() {
        return;
    }
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let v1_devices = cgroups.lines().any(|l| {
        l.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "devices"))
    });
    // The check needs the v1 controller and a device the host itself may open.
    if !v1_devices || std::fs::File::open("/dev/loop0").is_err() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n!!! NOT CHECKED: this host has no v1 devices controller or no /dev/loop0 it may open\n",
        );
        return;
    }
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    // Root inside can mount a devtmpfs, which shows every device of the host; a service
    // (as every task is) still cannot open those outside the sandbox's own /dev.
    let script = "mkdir -p /mnt/devtmpfs && mount -t devtmpfs devtmpfs /mnt/devtmpfs && \
                  ls /mnt/devtmpfs/loop0 && \
                  if (exec 3< /mnt/devtmpfs/loop0); then echo OPENED; fi; \
                  head -c 3 /mnt/devtmpfs/urandom | wc -c";
    let out = run(
        &sb,
        "systemd-run",
        &["--wait", "--pipe", "--quiet", "/bin/sh", "-c", script],
    );
    assert!(!out.stdout.contains("OPENED"), "{out:?}");
    assert!(out.stdout.ends_with("3\n"), "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
}

#[test]
fn host_network_shares_the_hosts_without_net_admin() {
    let opts = SandboxOptions {
        host_network: true,
        ..SandboxOptions::default()
    };
    let Some(sb) = Boot::new().bare().options(opts).boot() else {
        return;
    };
    let host_net = std::fs::read_link("/proc/self/ns/net").expect("host net namespace");
    assert_eq!(net_namespace(&sb), host_net.to_string_lossy());
    for who in ["1", "self"] {
        let set = bounding_set(&sb, who);
        assert_eq!(
            held(set, DROPPED_CAPABILITIES),
            Vec::<String>::new(),
            "{who}"
        );
        assert_eq!(
            held(set, HOST_NETWORK_DROPPED),
            Vec::<String>::new(),
            "{who}"
        );
    }
    assert_eq!(
        run(&sb, "systemctl", &["is-system-running"]).stdout.trim(),
        "running"
    );
}

#[test]
fn units_started_inside_stay_inside() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    let unit = "flow-test-inside.service";
    write_unit(
        &sb,
        unit,
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'mkdir -p /var/lib/flow-test-inside && touch /var/lib/flow-test-inside/ran'\n",
    );
    let sd = systemd(&sb);
    sd.reload().expect("reload");
    assert_eq!(sd.start_unit(unit).expect("start").result, JobResult::Done);
    sh(&sb, "test -e /var/lib/flow-test-inside/ran").ok();
    assert!(!Path::new("/etc/systemd/system").join(unit).exists());
    assert!(!Path::new("/var/lib/flow-test-inside").exists());
    // The host's view through /proc/<pid>/root shows the sandbox's files.
    assert!(sb.root().join("var/lib/flow-test-inside/ran").exists());
}

#[test]
fn host_services_do_not_start_inside() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    // Whatever the host enabled in /etc/systemd/system is hidden; only masks are there.
    let listed = sh(
        &sb,
        "find /etc/systemd/system -mindepth 1 ! -lname /dev/null",
    )
    .ok();
    assert_eq!(
        listed.stdout, "",
        "unexpected files in the sandbox's /etc/systemd/system"
    );
    let generators = sh(
        &sb,
        "find /etc/systemd/system-generators -mindepth 1 ! -lname /dev/null",
    )
    .ok();
    assert_eq!(generators.stdout, "");
}

#[test]
fn drop_kills_the_sandbox_and_cleans_up() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    let pid = sb.pid();
    let state = sb.state_dir().to_path_buf();
    let name = state
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    assert!(pid_alive(pid));
    assert!(
        !harness::host_cgroups_named(&name).is_empty(),
        "the sandbox should have cgroups of its own"
    );
    drop(sb);
    assert!(!pid_alive(pid), "PID 1 {pid} of the sandbox survived drop");
    assert!(
        !state.exists(),
        "state directory {} left behind",
        state.display()
    );
    assert_eq!(harness::host_cgroups_named(&name), Vec::<String>::new());
}

#[test]
fn two_sandboxes_run_at_once() {
    let Some(_machine) = harness::root() else {
        return;
    };
    let boots: Vec<_> = (0..2).map(|_| thread::spawn(Sandbox::boot)).collect();
    let sbs: Vec<Sandbox> = boots
        .into_iter()
        .map(|h| h.join().expect("boot thread").expect("boot"))
        .collect();
    let (a, b) = (&sbs[0], &sbs[1]);
    assert_ne!(a.pid(), b.pid());
    // Same unit name in both, each with its own cgroup and its own process.
    let unit = "flow-test-twin.service";
    for sb in [a, b] {
        write_unit(sb, unit, "[Service]\nExecStart=/bin/sleep 300\n");
        let sd = systemd(sb);
        sd.reload().expect("reload");
    }
    systemd(a).start_unit(unit).expect("start in a");
    assert_eq!(
        systemd(a).unit_state(unit).expect("state").active_state,
        "active"
    );
    assert_eq!(
        systemd(b).unit_state(unit).expect("state").active_state,
        "inactive"
    );
    systemd(b).start_unit(unit).expect("start in b");
    // Stopping it in one sandbox must not touch the other's process.
    assert_eq!(
        systemd(a).stop_unit(unit).expect("stop").result,
        JobResult::Done
    );
    assert_eq!(
        systemd(b).unit_state(unit).expect("state").active_state,
        "active"
    );
    for sb in [a, b] {
        assert_eq!(
            run(sb, "systemctl", &["is-system-running"]).stdout.trim(),
            "running"
        );
    }
}

#[test]
fn oneshot_output_is_in_the_journal() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    let unit = "flow-test-echo.service";
    write_unit(
        &sb,
        unit,
        "[Service]\nType=oneshot\nExecStart=/bin/echo hello from flow\nExecStart=/bin/sh -c 'echo to stderr >&2'\n",
    );
    let sd = systemd(&sb);
    sd.reload().expect("reload");
    assert_eq!(sd.start_unit(unit).expect("start").result, JobResult::Done);
    let lines = journal_messages(&sb, unit, 2);
    assert!(lines.iter().any(|l| l == "hello from flow"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "to stderr"), "{lines:?}");
    // The plain command works too, as a person would type it.
    let text = run(&sb, "journalctl", &["-u", unit, "-o", "cat", "--no-pager"]).ok();
    assert!(text.stdout.contains("hello from flow"), "{}", text.stdout);
}

#[test]
fn copy_in_installs_files_with_their_mode() {
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("hello");
    std::fs::write(&script, "#!/bin/sh\necho copied-in\n").expect("write");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    sb.copy_in(&script, Path::new("/usr/local/lib/flow-test/bin/hello"))
        .expect("copy_in");
    let out = run(&sb, "/usr/local/lib/flow-test/bin/hello", &[]).ok();
    assert_eq!(out.stdout, "copied-in\n");
    assert!(!Path::new("/usr/local/lib/flow-test").exists());
    let err = sb.copy_in(&script, Path::new("relative/path"));
    assert!(
        matches!(err, Err(SandboxError::InvalidOption { .. })),
        "{err:?}"
    );
}

#[test]
fn extra_masks_apply() {
    let opts = SandboxOptions {
        mask: vec!["dbus-org.example.flow-test.service".into()],
        ..SandboxOptions::default()
    };
    let Some(sb) = Boot::new().bare().options(opts).boot() else {
        return;
    };
    let state = systemd(&sb)
        .unit_state("dbus-org.example.flow-test.service")
        .expect("state");
    assert_eq!(state.load_state, "masked");
}

/// Helper for `sandbox_dies_with_its_program`: boots, prints the PID, waits to be killed.
#[test]
#[ignore = "helper process for sandbox_dies_with_its_program"]
fn helper_boot_and_wait() {
    if std::env::var_os("FLOW_SANDBOX_TEST_HELPER").is_none() {
        return;
    }
    let sb = Sandbox::boot().expect("boot");
    println!("SANDBOX_PID={}", sb.pid());
    thread::sleep(Duration::from_secs(120));
}

#[test]
fn sandbox_dies_with_its_program() {
    let Some(_machine) = harness::root() else {
        return;
    };
    // A test process killed outright (timeout, Ctrl-C twice, OOM) runs no destructors;
    // its sandboxes must still go.
    let mut helper = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--ignored",
            "--exact",
            "sandbox::helper_boot_and_wait",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLOW_SANDBOX_TEST_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start helper");
    let stdout = helper.stdout.take().expect("helper stdout");
    let mut pid = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read helper");
        // libtest prints the test's name on the same line first.
        if let Some((_, p)) = line.split_once("SANDBOX_PID=") {
            pid = p.trim().parse::<u32>().ok();
            break;
        }
    }
    let pid = pid.expect("helper printed no sandbox PID");
    assert!(pid_alive(pid));
    helper.kill().expect("kill helper");
    helper.wait().expect("reap helper");
    let started = Instant::now();
    wait_until(
        "the orphaned sandbox to die",
        Duration::from_secs(10),
        || (!pid_alive(pid)).then_some(()),
    );
    eprintln!("orphaned sandbox gone after {:?}", started.elapsed());
}

/// Boot time: median of 15 boots to `running`. Run with
/// `cargo test --release --test e2e -- --ignored --nocapture sandbox::boot_time`.
#[test]
#[ignore = "benchmark"]
fn boot_time() {
    let Some(_machine) = harness::root() else {
        return;
    };
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            let sb = Sandbox::boot().expect("boot");
            let took = start.elapsed();
            sb.shutdown();
            took
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "sandbox boot to running, 15 boots: min {:.0} ms, median {:.0} ms, max {:.0} ms \
         (load average {})",
        ms(times[0]),
        ms(times[7]),
        ms(times[14]),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(
        times[7] < Duration::from_secs(1),
        "median boot {:?} over 1 s",
        times[7]
    );
}

#[test]
fn boot_failures_are_clear_and_leave_nothing_behind() {
    let Some(_machine) = harness::root() else {
        return;
    };
    let parent = tempfile::tempdir().expect("tempdir");
    let opts = || SandboxOptions {
        state_parent: Some(parent.path().to_path_buf()),
        ..SandboxOptions::default()
    };
    let missing = Sandbox::boot_with(SandboxOptions {
        systemd: "/nonexistent/systemd".into(),
        ..opts()
    });
    let err = missing.expect_err("booted without systemd");
    assert!(err.to_string().contains("apt install systemd"), "{err}");

    // PID 1 that exits at once (not systemd): reported, and reaped.
    let exits = Sandbox::boot_with(SandboxOptions {
        systemd: "/bin/false".into(),
        ..opts()
    });
    assert!(
        matches!(exits, Err(SandboxError::Exited { .. })),
        "{exits:?}"
    );

    let slow = Sandbox::boot_with(SandboxOptions {
        boot_timeout: Duration::from_millis(1),
        ..opts()
    });
    let err = slow.expect_err("booted in 1 ms");
    assert!(matches!(err, SandboxError::BootTimeout { .. }), "{err}");
    assert!(err.to_string().contains("boot_timeout"), "{err}");

    let left: Vec<_> = std::fs::read_dir(parent.path())
        .expect("read")
        .flatten()
        .collect();
    assert!(left.is_empty(), "failed boots left {left:?}");
}

//! End-to-end: `flow try` as a user runs it, on the ways a try ends other than success
//! (every example's success is in `examples`): a failed run, Ctrl-C, a signal to its
//! PID, `SIGKILL`, `--keep`. Each leaves nothing behind: `flow try` runs with its own
//! temporary directory, where the sandbox keeps its state until it is gone. And what the
//! sandbox isolates, probed by a workflow's tasks from inside a run: `/dev`, the network,
//! `/dev/shm`, capabilities, the terminal `flow try` runs in.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{self, Hold, pid_alive};

/// `flow try FILE ARGS` with a temporary directory of its own.
fn flow_try(tmp: &Path, file: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow"));
    cmd.arg("try").arg(file).args(args).env("TMPDIR", tmp);
    cmd
}

/// A workflow file, and a temporary directory for `flow try` alone; `None` (after a loud
/// skip) when not root. Both directories go when dropped, and the test's hold on the
/// machine with them.
struct Try {
    dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
    file: PathBuf,
    _machine: Hold,
}

fn setup(name: &str, yaml: &str) -> Option<Try> {
    let machine = harness::root()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).expect("write workflow");
    Some(Try {
        dir,
        tmp: tempfile::tempdir().expect("tempdir"),
        file,
        _machine: machine,
    })
}

fn left_in(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .expect("read tmp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_failed_run_exits_1_shows_why_and_leaves_nothing() {
    let Some(t) = setup(
        "fails.yaml",
        "tasks:\n  ok: {run: seq 250}\n  bad: {needs: [ok], run: 'echo oops >&2; exit 3'}\n  after: {needs: [bad], run: echo never}\n",
    ) else {
        return;
    };
    let (tmp, file) = (&t.tmp, &t.file);
    let out = flow_try(tmp.path(), file, &[])
        .output()
        .expect("run flow try");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row = |task: &str, result: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{task} ")) && l.contains(result))
    };
    assert!(row("ok", "succeeded"), "{stdout}");
    assert!(row("bad", "failed (exit 3)"), "{stdout}");
    assert!(row("after", "skipped (upstream failed)"), "{stdout}");
    assert!(stdout.contains("\nRun 1 failed.\n"), "{stdout}");
    assert!(stdout.contains(" bad | oops\n"), "{stdout}");
    assert!(!stdout.contains("never"), "{stdout}");
    // The last 200 lines: `ok` wrote 250 and `bad` one.
    assert!(
        stdout.contains("\n… 51 earlier lines not shown"),
        "{stdout}"
    );
    assert!(!stdout.contains(" ok | 51\n"), "{stdout}");
    assert!(stdout.contains(" ok | 52\n"), "{stdout}");
    assert_eq!(left_in(tmp.path()), Vec::<String>::new());
}

/// A workflow whose second task runs for a minute, for tests that stop `flow try` midway.
const SLOW: &str = "tasks:\n  first: {run: echo started}\n  slow: {needs: [first], run: 'sleep 60; touch /srv/slept'}\n";

/// Starts `flow try` (in a process group of its own when `own_group`, as a shell runs a
/// foreground job) and returns once the slow task of [`SLOW`] runs, with the lines seen.
fn start_slow(t: &Try, own_group: bool) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = flow_try(t.tmp.path(), &t.file, &[]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if own_group {
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().expect("start flow try");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("▶ slow")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "the slow task never showed as running:\n{}",
                seen.join("\n")
            ),
        }
    }
    (child, rx)
}

/// Sends `signal` to `flow try` (to its process group when `group`, else to its PID
/// alone) while its slow task runs: it must stop within seconds, exit 130 and leave nothing.
fn stops_at(signal: nix::sys::signal::Signal, group: bool) {
    let Some(t) = setup("slow.yaml", SLOW) else {
        return;
    };
    let (mut child, rx) = start_slow(&t, group);
    // Inside the sandbox's state directory while it runs.
    assert_eq!(
        left_in(t.tmp.path()).len(),
        1,
        "{:?}",
        left_in(t.tmp.path())
    );
    let pid = child.id() as i32;
    let target = nix::unistd::Pid::from_raw(if group { -pid } else { pid });
    nix::sys::signal::kill(target, signal).expect("send the signal");
    let interrupted = Instant::now();
    let status = harness::wait_until("flow try to end", Duration::from_secs(15), || {
        child.try_wait().expect("wait")
    });
    let took = interrupted.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("stderr");
    }
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    // No summary, no history of a run that was cut short.
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(!rest.iter().any(|l| l.starts_with("History")), "{rest:?}");
    assert_eq!(left_in(t.tmp.path()), Vec::<String>::new());
}

#[test]
fn ctrl_c_stops_the_run_and_removes_the_sandbox() {
    // Ctrl-C signals the terminal's whole foreground process group.
    stops_at(nix::sys::signal::Signal::SIGINT, true);
}

#[test]
fn sigint_to_its_pid_alone_stops_it() {
    stops_at(nix::sys::signal::Signal::SIGINT, false);
}

#[test]
fn sigterm_to_its_pid_alone_stops_it() {
    // As `kill PID`, a service manager or a CI runner's timeout stops a program.
    stops_at(nix::sys::signal::Signal::SIGTERM, false);
}

#[test]
fn after_sigkill_the_next_try_removes_what_it_left() {
    let Some(t) = setup("slow.yaml", SLOW) else {
        return;
    };
    let (mut child, _rx) = start_slow(&t, false);
    let left = left_in(t.tmp.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let name = left[0].clone();
    assert!(
        !harness::host_cgroups_named(&name).is_empty(),
        "no cgroups named {name}"
    );
    // SIGKILL runs no cleanup: the sandbox dies with its program, its state stays.
    child.kill().expect("SIGKILL flow try");
    child.wait().expect("reap flow try");
    assert_eq!(left_in(t.tmp.path()), vec![name.clone()]);

    // The next `flow try` (at once, not a minute later) removes it all.
    let next = t.dir.path().join("quick.yaml");
    std::fs::write(&next, "tasks:\n  hello: {run: echo hello}\n").expect("write");
    let out = flow_try(t.tmp.path(), &next, &[])
        .output()
        .expect("run flow try");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(left_in(t.tmp.path()), Vec::<String>::new());
    assert_eq!(harness::host_cgroups_named(&name), Vec::<String>::new());
}

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    )
}

/// Tasks that probe the sandbox from inside a run; each prints `PROBE <what>` when the
/// host is out of its reach and fails with `BREACH ...` when not.
fn probe_workflow(port: u16, abstract_name: &str, host_shm: &str, inside_shm: &str) -> String {
    format!(
        r#"tasks:
  dev:
    run: |
      echo "/dev holds:" $(ls -A /dev)
      bad=
      for n in $(ls -A /dev); do
        case $n in
          console|fd|full|initctl|log|null|ptmx|pts|random|shm|stderr|stdin|stdout|tty|urandom|zero) ;;
          *) echo "BREACH /dev/$n is the host's"; bad=1 ;;
        esac
      done
      for f in $(find /dev ! -type l); do
        if [ -b "$f" ]; then echo "BREACH block device $f"; bad=1; fi
        if [ -c "$f" ]; then
          case $(stat -c %t:%T "$f") in
            1:3|1:5|1:7|1:8|1:9|5:0|5:2) ;;
            *) echo "BREACH device $f ($(stat -c %t:%T "$f"))"; bad=1 ;;
          esac
        fi
      done
      pts=$(ls /dev/pts | grep -vx ptmx || true)
      if [ -n "$pts" ]; then echo "BREACH terminals in /dev/pts:" $pts; bad=1; fi
      [ -z "$bad" ] || exit 1
      echo "PROBE dev private"
  loopback:
    run: |
      bad=
      if perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => "127.0.0.1:{port}", Timeout => 5) or exit 1'; then
        echo "BREACH reached the host's listener on 127.0.0.1:{port}"; bad=1
      fi
      if perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => "\0{abstract_name}") or exit 1'; then
        echo "BREACH reached the host's abstract socket @{abstract_name}"; bad=1
      fi
      nets=$(ls /sys/class/net)
      if [ "$nets" != lo ]; then echo "BREACH network interfaces:" $nets; bad=1; fi
      [ -z "$bad" ] || exit 1
      perl -MIO::Socket::INET -e '$l = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0") or die "listen: $!"; IO::Socket::INET->new(PeerAddr => "127.0.0.1:" . $l->sockport) or die "loopback down: $!"'
      echo "PROBE loopback private"
  shm:
    run: |
      if [ -e /dev/shm/{host_shm} ]; then echo "BREACH the host's /dev/shm is here"; exit 1; fi
      echo written inside > /dev/shm/{inside_shm}
      echo "PROBE shm private"
  caps:
    run: |
      bad=
      for who in self 1; do
        bnd=$(awk '/^CapBnd/ {{print $2}}' /proc/$who/status)
        for bit in 16 17 22 25 27; do
          if [ $(( (0x$bnd >> bit) & 1 )) -eq 1 ]; then
            echo "BREACH capability $bit in the bounding set of $who ($bnd)"; bad=1
          fi
        done
      done
      [ -z "$bad" ] || exit 1
      echo "PROBE caps dropped"
  proc:
    run: |
      # Opened for writing, and closed without a byte written: nothing is triggered.
      # (Kernels without magic SysRq have no sysrq-trigger; every kernel has the IRQ mask.)
      for f in /proc/sysrq-trigger /proc/irq/default_smp_affinity /proc/sys/kernel/hostname; do
        if perl -MFcntl -e 'sysopen(my $f, $ARGV[0], O_WRONLY) or exit 1' $f 2>/dev/null; then
          echo "BREACH $f is writable"; exit 1
        fi
      done
      echo "PROBE proc read-only"
  hardened:
    # systemd still builds a hardened task's own /dev without CAP_MKNOD (it binds nodes).
    hardening: strict
    run: echo "PROBE hardened task ran"
"#
    )
}

#[test]
fn isolation_holds_from_inside_a_run() {
    if !crate::common::require_root() {
        return;
    }
    // A service listening on the host's loopback, as databases and admin APIs do.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on the host's loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    // And on an abstract Unix socket, as D-Bus and X servers do: the network namespace
    // scopes those too.
    let abstract_name = unique("flow-try-abstract");
    let abstract_listener = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name.as_bytes(),
        )
        .expect("abstract address"),
    )
    .expect("listen on an abstract socket");
    abstract_listener
        .set_nonblocking(true)
        .expect("nonblocking");
    let host_shm = unique("flow-try-host");
    let inside_shm = unique("flow-try-inside");
    std::fs::write(Path::new("/dev/shm").join(&host_shm), "host").expect("write /dev/shm");
    let Some(t) = setup(
        "probe.yaml",
        &probe_workflow(port, &abstract_name, &host_shm, &inside_shm),
    ) else {
        return;
    };
    let out = flow_try(t.tmp.path(), &t.file, &[])
        .output()
        .expect("run flow try");
    let _ = std::fs::remove_file(Path::new("/dev/shm").join(&host_shm));
    let written_inside = Path::new("/dev/shm").join(&inside_shm);
    let leaked = written_inside.exists();
    let _ = std::fs::remove_file(&written_inside);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("BREACH"), "{all}");
    for probe in [
        "PROBE dev private",
        "PROBE loopback private",
        "PROBE shm private",
        "PROBE caps dropped",
        "PROBE proc read-only",
        "PROBE hardened task ran",
    ] {
        assert!(stdout.contains(probe), "no `{probe}` in:\n{all}");
    }
    assert!(out.status.success(), "{all}");
    assert!(!leaked, "a write to /dev/shm inside landed in the host's");
    assert!(
        listener.accept().is_err(),
        "the host's loopback listener got a connection from the sandbox"
    );
    assert!(
        abstract_listener.accept().is_err(),
        "the host's abstract socket got a connection from the sandbox"
    );
    assert_eq!(left_in(t.tmp.path()), Vec::<String>::new());
}

#[test]
fn network_host_shares_the_host_network_without_net_admin() {
    if !crate::common::require_root() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on the host's loopback");
    let port = listener.local_addr().expect("address").port();
    let yaml = format!(
        r#"tasks:
  reach:
    run: |
      perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => "127.0.0.1:{port}", Timeout => 5) or die "cannot reach the host: $!"'
      bnd=$(awk '/^CapBnd/ {{print $2}}' /proc/self/status)
      if [ $(( (0x$bnd >> 12) & 1 )) -eq 1 ]; then echo "BREACH CAP_NET_ADMIN on the host's network"; exit 1; fi
      echo "PROBE host network"
"#
    );
    let Some(t) = setup("hostnet.yaml", &yaml) else {
        return;
    };
    let out = flow_try(t.tmp.path(), &t.file, &["--network", "host"])
        .output()
        .expect("run flow try");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("PROBE host network"), "{all}");
    assert!(all.contains("the host's network is shared"), "{all}");
    listener.accept().expect("the task's connection");
}

#[test]
fn a_task_cannot_type_into_the_terminal_flow_try_runs_in() {
    if !crate::common::require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("typed-by-a-task");
    // TIOCSTI pushes bytes into a terminal's input as if typed: into the terminal of the
    // shell that ran `flow try`, they would run as its next command, as root on the host.
    let yaml = format!(
        r#"tasks:
  type:
    run: |
      perl -MFcntl -e '
        my $found = 0;
        for my $p ("/dev/tty", "/dev/console", glob("/dev/pts/*"), glob("/proc/[0-9]*/fd/*")) {{
          next if $p =~ m{{ptmx$}};
          sysopen(my $t, $p, O_RDWR | O_NONBLOCK | O_NOCTTY) or next;
          next unless -t $t;
          $found++;
          my $typed = 0;
          for my $c (split //, "touch {marker}\n") {{ $typed++ if ioctl($t, 0x5412, $c) }}
          print "typed $typed bytes into $p\n";
        }}
        print "PROBE terminals found: $found\n";
      '
"#,
        marker = marker.display()
    );
    let Some(t) = setup("type.yaml", &yaml) else {
        return;
    };
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills in two new descriptors, owned below.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors that nothing else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // A terminal's master side stays with the terminal; its other side, left open (not
    // close-on-exec, as openpty makes it), is inherited by the shell and `flow try` beyond
    // their stdio, as a descriptor a shell opened on its terminal would be.
    // SAFETY: fcntl on a descriptor owned here.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    // A shell on the terminal, as a person's: it runs `flow try`, then reads what was
    // typed next and runs it.
    let script = r#""$0" try "$1"; echo "exit $?"; if read -r -t 5 line; then eval "$line"; fi"#;
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_flow"))
        .arg(&t.file)
        .env("TMPDIR", t.tmp.path())
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut shell = cmd.spawn().expect("start bash on the terminal");
    drop(cmd);
    drop(slave);
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut seen = Vec::new();
        // EIO once the last descriptor of the terminal's other side is closed.
        let _ = file.read_to_end(&mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = harness::wait_until("the shell to end", Duration::from_secs(120), || {
        shell.try_wait().expect("wait")
    });
    let seen = reader.join().expect("reader");
    assert!(
        !marker.exists(),
        "a task typed a command into the host's terminal and the shell ran it:\n{seen}"
    );
    assert!(status.success(), "{seen}");
    assert!(seen.contains("exit 0"), "{seen}");
    assert!(seen.contains("PROBE terminals found: 0"), "{seen}");
    assert!(!seen.contains("typed "), "{seen}");
    assert_eq!(left_in(t.tmp.path()), Vec::<String>::new());
}

#[test]
fn keep_leaves_the_sandbox_up_and_says_how_to_enter_and_stop_it() {
    let Some(t) = setup(
        "kept.yaml",
        "tasks:\n  mark: {run: 'echo kept > /srv/kept'}\n",
    ) else {
        return;
    };
    let (tmp, file) = (&t.tmp, &t.file);
    let out = flow_try(tmp.path(), file, &["--keep"])
        .output()
        .expect("run flow try");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
    };
    let enter = after("nsenter ");
    let stop = after("kill -9 ");
    let pid: u32 = stop
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no PID in `kill -9 {stop}`"));
    assert!(pid_alive(pid));
    // Entered as the hint says, the run's work is there.
    let inside = Command::new("sh")
        .arg("-c")
        .arg(format!("nsenter {enter} -c 'cat /srv/kept'"))
        .output()
        .expect("nsenter");
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout),
        "kept\n",
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    let stopped = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -9 {stop}"))
        .status()
        .expect("stop");
    assert!(stopped.success());
    harness::wait_until("the kept sandbox to go", Duration::from_secs(10), || {
        (!pid_alive(pid)).then_some(())
    });
    assert_eq!(left_in(tmp.path()), Vec::<String>::new());
}

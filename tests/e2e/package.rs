//! The Debian package, end to end: installed with apt into a sandbox (a throwaway systemd on
//! an overlay of the root file system), used, upgraded, removed and purged there, while the
//! host stays untouched.
//!
//! The .deb is built before the tests (packaging/build-deb, from .ci/run) and found through
//! `FLOW_DEB`: building a release package inside `cargo test` would make every test run
//! minutes slower. Without `FLOW_DEB` the test skips loudly, except in CI (`CI=true`), where
//! a missing package is a failure.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common;
use crate::harness::{AS_ROOTS_OWN_MANAGER, Boot, Run, run, sh, wait_until};
use flow::sandbox::Sandbox;

/// The example the test applies: it appends a line to a CSV file, needs nothing but a shell,
/// and succeeds in a sandbox.
const EXAMPLE: &str = "sensors";
const CSV: &str = "/var/lib/sensors/readings.csv";

fn deb_path() -> Option<PathBuf> {
    match std::env::var_os("FLOW_DEB") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "FLOW_DEB={} is not a file: build the package with packaging/build-deb",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "FLOW_DEB is not set and CI=true forbids skipping the package test: \
             .ci/run builds the package with packaging/build-deb and sets FLOW_DEB"
        ),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED the package test: FLOW_DEB is not set.\n\
                 !!! Run: FLOW_DEB=$(packaging/build-deb | tail -n1) cargo test --test e2e package::\n"
            );
            None
        }
    }
}

/// What the host shows of flow's package; compared before and after the test.
fn host_state() -> Vec<(String, String)> {
    let status = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "flow"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut state = vec![("dpkg status".to_string(), status)];
    for path in [
        "/usr/bin/flow",
        "/etc/flow",
        "/var/lib/flow",
        "/usr/lib/systemd/system/flow-supervisor.service",
        "/usr/share/man/man1/flow.1.gz",
        "/etc/systemd/system/multi-user.target.wants/flow-supervisor.service",
        "/etc/systemd/system/flow-sensors.service",
    ] {
        let seen = match std::fs::symlink_metadata(path) {
            Ok(m) => format!(
                "present, {} bytes, modified {:?}",
                m.len(),
                m.modified().ok()
            ),
            Err(_) => "absent".to_string(),
        };
        state.push((path.to_string(), seen));
    }
    state
}

fn apt(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = sb.command("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-y", "-q", "-o", "Dpkg::Use-Pty=0"])
        .args(args);
    let out = Run::from(cmd.output().expect("run apt-get in the sandbox")).ok();
    // A shell error in a maintainer script names the script ("…/flow.postinst: 32: block:
    // not found") and need not fail the step: any such line is a broken script.
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !said.contains("/var/lib/dpkg/info/flow."),
        "a maintainer script of flow complained during `apt-get {}`:\n{said}",
        args.join(" ")
    );
    out
}

fn exists(sb: &Sandbox, path: &str) -> bool {
    sh(sb, &format!("test -e '{path}' || test -L '{path}'")).success()
}

fn systemctl(sb: &Sandbox, args: &[&str]) -> String {
    run(sb, "systemctl", args).stdout.trim().to_string()
}

/// Paths inside the sandbox whose name mentions flow. /run and /tmp are the sandbox's own
/// tmpfs and not searched.
fn flow_paths(sb: &Sandbox) -> BTreeSet<String> {
    sh(
        sb,
        "find /etc /usr /var /opt /srv -xdev -iname '*flow*' 2>/dev/null",
    )
    .stdout
    .lines()
    .map(str::to_string)
    .collect()
}

/// What appeared since `baseline` was taken.
fn new_flow_paths(sb: &Sandbox, baseline: &BTreeSet<String>) -> Vec<String> {
    flow_paths(sb).difference(baseline).cloned().collect()
}

fn supervisor_invocation(sb: &Sandbox) -> String {
    systemctl(
        sb,
        &[
            "show",
            "-p",
            "InvocationID",
            "--value",
            "flow-supervisor.service",
        ],
    )
}

fn wait_supervisor_active(sb: &Sandbox) {
    wait_until(
        "flow-supervisor.service to be active",
        Duration::from_secs(30),
        || (systemctl(sb, &["is-active", "flow-supervisor.service"]) == "active").then_some(()),
    );
}

fn man(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb
        .command("man")
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .args(args)
        .output()
        .expect("run man in the sandbox");
    Run::from(out).ok().stdout
}

#[test]
fn apt_install_use_upgrade_remove_purge() {
    let Some(deb) = deb_path() else { return };
    if !common::require_root() {
        return;
    }
    let host_before = host_state();
    let Some(sb) = Boot::new().bare().boot() else {
        return;
    };
    assert!(
        !exists(&sb, "/usr/bin/flow"),
        "flow is already installed in the sandbox's root: the test needs a host without it"
    );
    // Everything named *flow* before the package: purge must bring the sandbox back to it.
    let baseline = flow_paths(&sb);
    // Container images ship a policy-rc.d that forbids packages to start services (exit
    // 101); a real machine has none, and the sandbox runs a real systemd. Removed in the
    // sandbox's overlay only.
    sh(&sb, "rm -f /usr/sbin/policy-rc.d").ok();
    // Slim images also tell dpkg to skip /usr/share/man and /usr/share/doc, which hold the
    // man pages and examples under test.
    sh(
        &sb,
        "for f in /etc/dpkg/dpkg.cfg.d/*; do [ -f \"$f\" ] && sed -i '/^path-\\(exclude\\|include\\)/d' \"$f\"; done; true",
    )
    .ok();
    sb.copy_in(&deb, Path::new("/tmp/flow.deb"))
        .expect("copy the package in");

    // Install.
    apt(&sb, &["install", "/tmp/flow.deb"]);
    let status = run(&sb, "dpkg-query", &["-W", "-f", "${Status}", "flow"]).ok();
    assert_eq!(status.stdout, "install ok installed");
    wait_supervisor_active(&sb);
    assert_eq!(
        systemctl(&sb, &["is-enabled", "flow-supervisor.service"]),
        "enabled"
    );
    for path in [
        "/usr/bin/flow",
        "/etc/flow/workflows/README",
        "/usr/share/man/man1/flow.1.gz",
        "/usr/share/man/man5/flow.yaml.5.gz",
        "/usr/share/man/man8/flow-supervisor.8.gz",
        "/usr/share/bash-completion/completions/flow",
        "/usr/share/zsh/vendor-completions/_flow",
        "/usr/share/fish/vendor_completions.d/flow.fish",
        "/usr/share/doc/flow/copyright",
        "/usr/share/doc/flow/changelog.Debian.gz",
        "/usr/lib/systemd/user/flow-supervisor.service",
    ] {
        assert!(exists(&sb, path), "the package did not install {path}");
    }
    let listed = sh(&sb, "ls /etc/flow/workflows").ok().stdout;
    assert_eq!(
        listed.trim(),
        "README",
        "/etc/flow/workflows must start empty"
    );
    let state_dir = sh(&sb, "stat -c '%U:%G %a' /var/lib/flow").ok().stdout;
    assert_eq!(
        state_dir.trim(),
        "root:root 755",
        "owner and mode of /var/lib/flow"
    );
    let bash = sh(
        &sb,
        "bash -c '. /usr/share/bash-completion/completions/flow && complete -p flow'",
    )
    .ok();
    assert!(bash.stdout.contains("flow"), "{}", bash.stdout);

    // The man pages answer.
    let page = man(&sb, &["flow"]);
    for needle in ["flow apply", "flow run", "flow completions", "EXIT STATUS"] {
        assert!(page.contains(needle), "`man flow` lacks {needle}:\n{page}");
    }
    let page = man(&sb, &["5", "flow.yaml"]);
    assert!(page.contains("WORKFLOW KEYS") && page.contains("max_parallel"));
    let page = man(&sb, &["8", "flow-supervisor"]);
    assert!(page.contains("flow-supervisor"));

    // Apply an example from the installed docs, run it, find it in the history.
    sh(
        &sb,
        &format!("cp /usr/share/doc/flow/examples/{EXAMPLE}.yaml /etc/flow/workflows/"),
    )
    .ok();
    run(&sb, "flow", &["apply"]).ok();
    let unit = format!("/etc/systemd/system/flow-{EXAMPLE}.service");
    let header = sh(&sb, &format!("head -n1 {unit}")).ok().stdout;
    assert!(header.starts_with("# Generated by flow from "), "{header}");
    let ran = run(&sb, "flow", &["run", EXAMPLE, "--wait"]).ok();
    // Followed through the installed supervisor (its socket), which numbers the run.
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("Run ") && l.ends_with(" succeeded.") && l != "Run succeeded."),
        "not followed through the supervisor:\n{}",
        ran.stdout
    );
    let lines = sh(&sb, &format!("wc -l < {CSV}")).ok().stdout;
    assert!(
        lines.trim().parse::<u32>().unwrap_or(0) >= 2,
        "the run wrote no reading to {CSV}"
    );
    let history = wait_until(
        "the run, succeeded, in `flow history`",
        Duration::from_secs(20),
        || {
            let out = run(&sb, "flow", &["history", EXAMPLE]);
            let finished = out
                .stdout
                .lines()
                .any(|l| l.contains(EXAMPLE) && l.trim_end().ends_with("succeeded"));
            (out.success() && finished).then_some(out.stdout)
        },
    );
    assert!(history.contains(EXAMPLE));
    assert!(
        sh(&sb, "test -s /var/lib/flow/history.db").success(),
        "the supervisor keeps no history in /var/lib/flow"
    );

    // A user's own workflow: `flow apply --user` starts the user supervisor the package
    // installed, which follows and numbers the run and keeps its history in the home.
    sh(&sb, "systemctl start user@0.service").ok();
    sb.write_file(
        Path::new("/root/.config/flow/workflows/mine.yaml"),
        "tasks:\n  hello: {run: 'echo hello'}\n",
    )
    .expect("write a user workflow");
    let user = AS_ROOTS_OWN_MANAGER;
    let applied = sh(&sb, &format!("{user} flow apply --user")).ok();
    assert!(
        applied.stdout.contains("Started your supervisor"),
        "{applied:?}"
    );
    let ran = sh(&sb, &format!("{user} flow run mine --user --wait")).ok();
    assert!(ran.stdout.contains("Run 1 succeeded."), "{ran:?}");
    assert!(
        sh(&sb, "test -s /root/.local/state/flow/history.db").success(),
        "the user's supervisor keeps no history in ~/.local/state/flow"
    );

    // Upgrade (the same package with a higher version): the supervisor restarts, the
    // history stays.
    let before_upgrade = supervisor_invocation(&sb);
    sh(
        &sb,
        "set -e; rm -rf /tmp/up; dpkg-deb -R /tmp/flow.deb /tmp/up; \
         sed -i 's/^Version: .*/&+up1/' /tmp/up/DEBIAN/control; \
         dpkg-deb -b /tmp/up /tmp/flow-up.deb >/dev/null",
    )
    .ok();
    let cursor = sh(
        &sb,
        "journalctl -n0 --show-cursor | sed -n 's/^-- cursor: //p'",
    )
    .ok()
    .stdout;
    apt(&sb, &["install", "/tmp/flow-up.deb"]);
    wait_supervisor_active(&sb);
    assert_ne!(
        supervisor_invocation(&sb),
        before_upgrade,
        "the upgrade did not restart flow-supervisor.service"
    );
    // Once: a restart is a gap in the history's recording. (Filtered here: journalctl 252
    // with both --after-cursor and a match skips the first entry that matches.)
    let since = sh(
        &sb,
        &format!("journalctl --after-cursor='{}' -o json", cursor.trim()),
    )
    .ok()
    .stdout;
    let stops: Vec<String> = since
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["UNIT"] == "flow-supervisor.service"
                // systemd's "Stopped" message, of a stop and of a restart job alike.
                && e["MESSAGE_ID"] == "9d1aaa27d60140bd96365438aad20286"
        })
        .map(|e| e["MESSAGE"].to_string())
        .collect();
    assert_eq!(
        stops.len(),
        1,
        "the upgrade stopped flow-supervisor.service other than once: {stops:?}"
    );
    let history = run(&sb, "flow", &["history"]).ok().stdout;
    assert!(history.contains(EXAMPLE), "the upgrade lost the history");

    // Remove: the program and the supervisor go; workflows, units and history stay, and
    // the workflow still runs under plain systemd.
    apt(&sb, &["remove", "flow"]);
    let status = run(&sb, "dpkg-query", &["-W", "-f", "${Status}", "flow"]).ok();
    assert_eq!(status.stdout, "deinstall ok config-files");
    assert!(!exists(&sb, "/usr/bin/flow"));
    assert_ne!(
        systemctl(&sb, &["is-active", "flow-supervisor.service"]),
        "active"
    );
    for path in [
        format!("/etc/flow/workflows/{EXAMPLE}.yaml"),
        unit.clone(),
        format!("/etc/systemd/system/flow-{EXAMPLE}.timer"),
        "/var/lib/flow".to_string(),
    ] {
        assert!(exists(&sb, &path), "`apt remove` deleted {path}");
    }
    assert!(
        sh(&sb, "test -s /var/lib/flow/history.db").success(),
        "`apt remove` deleted the history database"
    );
    let before = sh(&sb, &format!("wc -l < {CSV}")).ok().stdout;
    run(
        &sb,
        "systemctl",
        &["start", &format!("flow-{EXAMPLE}.service")],
    )
    .ok();
    let after = sh(&sb, &format!("wc -l < {CSV}")).ok().stdout;
    assert_ne!(
        before, after,
        "the workflow no longer runs after `apt remove`"
    );
    // What its timer starts, the trigger unit, runs it too (flow's overlap rule is gone
    // with the binary), and succeeds.
    run(
        &sb,
        "systemctl",
        &["start", &format!("flow-{EXAMPLE}.trigger.service")],
    )
    .ok();
    wait_until(
        "a run started by the trigger unit",
        Duration::from_secs(20),
        || (sh(&sb, &format!("wc -l < {CSV}")).ok().stdout != after).then_some(()),
    );
    let result = systemctl(
        &sb,
        &[
            "show",
            "-P",
            "Result",
            &format!("flow-{EXAMPLE}.trigger.service"),
        ],
    );
    assert_eq!(result, "success", "the trigger unit failed without flow");

    // Reinstall: the history is still there.
    apt(&sb, &["install", "/tmp/flow.deb"]);
    wait_supervisor_active(&sb);
    let history = run(&sb, "flow", &["history"]).ok().stdout;
    assert!(history.contains(EXAMPLE), "reinstalling lost the history");
    assert!(
        !new_flow_paths(&sb, &baseline).is_empty(),
        "the leftover check sees nothing even with flow installed: it cannot work"
    );

    // Purge: nothing of flow is left, and the generated units are stopped and unloaded.
    // A hand-written unit that merely has a flow- name must survive.
    sb.write_file(
        Path::new("/etc/systemd/system/flow-handmade.service"),
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )
    .expect("write a hand-written unit");
    let kept = format!("/etc/flow/workflows/{EXAMPLE}.yaml");
    let kept_text = sh(&sb, &format!("cat {kept}")).ok().stdout;
    let purged = apt(&sb, &["purge", "flow"]);
    let status = run(&sb, "dpkg-query", &["-W", "-f", "${Status}", "flow"]);
    assert!(
        !status.stdout.contains("installed") && !status.stdout.contains("config-files"),
        "dpkg still knows flow after purge: {}",
        status.stdout
    );
    assert!(
        exists(&sb, "/etc/systemd/system/flow-handmade.service"),
        "purge deleted a unit flow did not generate"
    );
    sh(&sb, "rm /etc/systemd/system/flow-handmade.service").ok();
    // The administrator's workflow file is their data: kept as it was, and purge says so.
    assert_eq!(sh(&sb, &format!("cat {kept}")).ok().stdout, kept_text);
    assert!(
        purged
            .stdout
            .contains("kept your own files under /etc/flow")
            && purged.stdout.contains(&kept),
        "purge did not say what it kept:\n{}",
        purged.stdout
    );
    assert!(
        !exists(&sb, "/etc/flow/workflows/README"),
        "purge left the package's README"
    );
    sh(&sb, "rm -r /etc/flow").ok();
    let left = new_flow_paths(&sb, &baseline);
    assert!(
        left.is_empty(),
        "left after `apt purge flow`:\n{}",
        left.join("\n")
    );
    let loaded = systemctl(
        &sb,
        &["list-units", "--all", "--no-legend", "--plain", "flow-*"],
    );
    assert_eq!(loaded, "", "units still loaded after purge");
    assert!(exists(&sb, CSV), "purge deleted the workflow's own data");

    sb.shutdown();
    assert_eq!(
        host_state(),
        host_before,
        "installing into the sandbox changed the host"
    );
}

/// The keys one section of flow.yaml(5) documents: the `.B key` line after each `.TP`.
fn documented_keys(page: &str, section: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut inside = false;
    let mut after_tp = false;
    for line in page.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            inside = title.trim_matches('"') == section;
            continue;
        }
        if inside
            && after_tp
            && let Some(key) = line.strip_prefix(".B ")
        {
            keys.insert(key.trim().to_string());
        }
        after_tp = line == ".TP";
    }
    keys
}

/// The keys the compiler accepts in one place, read from its "unknown key" help.
fn accepted_keys(diags: &[flow::compiler::diagnostic::Diagnostic], place: &str) -> Vec<String> {
    let message = format!("unknown key `bogus` in {place}");
    let d = diags
        .iter()
        .find(|d| d.message == message)
        .unwrap_or_else(|| panic!("the compiler did not report: {message}"));
    let help = d.help.as_deref().unwrap_or_default();
    let list = help
        .strip_prefix("valid keys are ")
        .unwrap_or_else(|| panic!("unexpected help for {place}: {help}"));
    list.split(", ")
        .map(|k| k.trim_matches('`').to_string())
        .collect()
}

/// flow.yaml(5) is written by hand: this keeps its key lists equal to the compiler's.
#[test]
fn flow_yaml_5_documents_exactly_the_keys_the_compiler_accepts() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/flow.yaml.5"))
        .expect("read man/flow.yaml.5");
    let text = "bogus: 1\nschedule: {bogus: 1}\ndefaults: {bogus: 1}\ntasks:\n  a:\n    run: \"true\"\n    bogus: 1\n";
    let diags = flow::compiler::check("bogus.yaml", text).expect_err("an invalid workflow");
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    let workflow = set(accepted_keys(&diags, "the workflow"));
    let schedule = set(accepted_keys(&diags, "`schedule`"));
    let settings = set(accepted_keys(&diags, "`defaults`"));
    let task = set(accepted_keys(&diags, "task `a`"));
    assert!(workflow.contains("tasks") && task.contains("run"));
    assert_eq!(documented_keys(&page, "WORKFLOW KEYS"), workflow);
    assert_eq!(documented_keys(&page, "SCHEDULES"), schedule);
    assert_eq!(documented_keys(&page, "TASK SETTINGS"), settings);
    let task_doc: BTreeSet<String> = documented_keys(&page, "TASKS")
        .union(&settings)
        .cloned()
        .collect();
    assert_eq!(task_doc, task);
}

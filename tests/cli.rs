//! The `flow` binary as a user runs it: exit codes, messages, files written.
//! (Commands that need a running systemd are tested end to end in the sandbox.)
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn flow() -> Command {
    Command::cargo_bin("flow").expect("the flow binary")
}

/// `flow apply PATH --unit-dir UNITS --no-reload`: files only, no systemd needed.
fn apply_into(path: &Path, units: &Path) -> Command {
    let mut cmd = flow();
    cmd.arg("apply")
        .arg(path)
        .arg("--unit-dir")
        .arg(units)
        .arg("--no-reload");
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

const GOOD: &str = "tasks:\n  a: echo a\n  b:\n    needs: [a]\n    run: echo b\n";

#[test]
fn validate_reports_every_problem_of_every_file_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "one.yaml",
        "tasks:\n  a:\n    need: [b]\n    run: echo\n",
    );
    write(
        dir.path(),
        "two.yml",
        "tasks:\n  a:\n    timeout: 5x\n    run: echo\n",
    );
    write(dir.path(), "good.yaml", GOOD);
    flow()
        .arg("validate")
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("one.yaml:3:5")
                .and(predicate::str::contains("did you mean `needs`?")),
        )
        .stderr(predicate::str::contains("two.yml:3:14"))
        .stderr(predicate::str::contains("2 workflow files are invalid"));
}

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "good.yaml", GOOD);
    flow()
        .arg("validate")
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "workflow `good` is valid (2 tasks)",
        ));
}

#[test]
fn missing_file_is_a_system_error() {
    flow()
        .args(["validate", "/nonexistent/flow.yaml"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "cannot read /nonexistent/flow.yaml",
        ));
}

#[test]
fn bad_usage_exits_2() {
    flow().arg("frobnicate").assert().code(2);
}

#[test]
fn compile_writes_units_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "good.yaml", GOOD);
    let out = dir.path().join("out");
    flow()
        .arg("compile")
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "flow-good--a.service",
            "flow-good--b.service",
            "flow-good.begin.service",
            "flow-good.service",
            "flow-good.slice",
            "flow-good.trigger.service"
        ]
    );
}

#[test]
fn compile_of_invalid_file_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "bad.yaml", "tasks: {}\n");
    let out = dir.path().join("out");
    flow()
        .arg("compile")
        .arg(&f)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    assert!(!out.exists());
}

#[test]
fn apply_plan_remove_lifecycle_in_a_unit_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = dir.path().join("workflows");
    let units = dir.path().join("units");
    std::fs::create_dir_all(&wf).expect("mkdir");
    std::fs::create_dir_all(&units).expect("mkdir");
    // A unit flow did not make must survive everything.
    write(
        &units,
        "flow-handmade.service",
        "[Service]\nExecStart=/bin/true\n",
    );
    let f = write(&wf, "site.yaml", GOOD);
    let apply = |expect: &str| {
        apply_into(&wf, &units)
            .assert()
            .success()
            .stdout(predicate::str::contains(expect.to_string()));
    };
    apply("add workflow site");
    assert!(units.join("flow-site--a.service").is_file());
    apply("Nothing to change");

    // Plan shows a diff of exactly the changed unit.
    write(&wf, "site.yaml", &GOOD.replace("echo b", "echo bee"));
    flow()
        .arg("plan")
        .arg(&wf)
        .arg("--unit-dir")
        .arg(&units)
        .assert()
        .success()
        .stdout(predicate::str::contains("change workflow site"))
        .stdout(
            predicate::str::contains("+ExecStart=/bin/sh -c \"echo bee\"")
                .and(predicate::str::contains("flow-site--a.service").not()),
        );
    let a_before = std::fs::metadata(units.join("flow-site--a.service"))
        .expect("a")
        .modified()
        .expect("mtime");
    apply("~ flow-site--b.service");
    let a_after = std::fs::metadata(units.join("flow-site--a.service"))
        .expect("a")
        .modified()
        .expect("mtime");
    assert_eq!(a_before, a_after, "an unchanged unit is not rewritten");

    // Removing the YAML file removes the workflow on the next apply.
    std::fs::remove_file(&f).expect("rm");
    write(&wf, "other.yaml", GOOD);
    apply("remove workflow site");
    assert!(!units.join("flow-site--a.service").exists());
    assert!(units.join("flow-handmade.service").exists());

    // A typo in the name: told, with the name meant, and nothing removed.
    flow()
        .args(["remove", "othre", "--no-reload", "--unit-dir"])
        .arg(&units)
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "workflow `othre` is not installed",
        ))
        .stderr(predicate::str::contains("did you mean `other`?"));
    assert!(units.join("flow-other.service").exists());
    flow()
        .args(["remove", "other", "--no-reload", "--unit-dir"])
        .arg(&units)
        .assert()
        .success();
    let left: Vec<_> = std::fs::read_dir(&units)
        .expect("units")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(left, ["flow-handmade.service"]);
}

/// `flow list --json`'s `source_state` of each workflow, and the text `flow list` prints.
fn listed(units: &Path) -> (Vec<(String, String)>, String, String) {
    let out = flow()
        .args(["list", "--json", "--unit-dir"])
        .arg(units)
        .output()
        .expect("flow list");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list json");
    let states = rows["workflows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let key = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (key("workflow"), key("source_state"))
        })
        .collect();
    let text = flow()
        .args(["list", "--unit-dir"])
        .arg(units)
        .output()
        .expect("flow list");
    let out = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (states, out(&text.stdout), out(&text.stderr))
}

/// A YAML file edited after `flow apply` does nothing until applied; `flow list` says so,
/// whatever flow binary asks (the units name the one that applied them).
#[test]
fn list_tells_which_workflows_changed_since_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = dir.path().join("my workflows");
    let units = dir.path().join("my units");
    std::fs::create_dir_all(&wf).expect("mkdir");
    let site = write(&wf, "site.yaml", GOOD);
    write(&wf, "other.yaml", &format!("max_parallel: 1\n{GOOD}"));
    apply_into(&wf, &units).assert().success();
    let pair = |w: &str, s: &str| (w.to_string(), s.to_string());
    let (states, text, notes) = listed(&units);
    assert_eq!(states, [pair("other", "applied"), pair("site", "applied")]);
    // (Below the table only why LAST is `?`, where systemd is not reachable.)
    assert!(
        !text.contains('*') && !notes.contains("changed since"),
        "{text}{notes}"
    );

    // Units applied by a flow binary elsewhere: still what the file compiles to.
    for file in std::fs::read_dir(&units).expect("units") {
        let path = file.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let bin = flow().get_program().to_string_lossy().into_owned();
        std::fs::write(&path, text.replace(&bin, "/opt/other flow/flow")).expect("write");
    }
    let (states, _, _) = listed(&units);
    assert_eq!(states, [pair("other", "applied"), pair("site", "applied")]);

    write(&wf, "site.yaml", &GOOD.replace("echo b", "echo bee"));
    let (states, text, notes) = listed(&units);
    assert_eq!(states, [pair("other", "applied"), pair("site", "changed")]);
    assert!(text.contains("\nsite* "), "{text}");
    assert!(
        notes.contains(&format!(
            "* site: {} changed since `flow apply`",
            site.display()
        )),
        "{notes}"
    );

    write(&wf, "site.yaml", "tasks:\n  a: {}\n");
    assert_eq!(listed(&units).0[1], pair("site", "invalid"));
    std::fs::remove_file(&site).expect("rm");
    let (states, _, notes) = listed(&units);
    assert_eq!(states[1], pair("site", "missing"));
    assert!(notes.contains("is gone"), "{notes}");
}

#[test]
fn apply_writes_nothing_when_any_file_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    write(dir.path(), "good.yaml", GOOD);
    write(dir.path(), "bad.yaml", "tasks:\n  a: {}\n");
    apply_into(dir.path(), &units)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nothing was changed"));
    assert!(!units.exists() || std::fs::read_dir(&units).expect("dir").next().is_none());
}

/// What the YAML names that this machine lacks is a warning at its place, on `plan` and
/// `apply` alike; the workflow is applied all the same (the file may come later).
#[test]
fn plan_and_apply_warn_about_files_and_accounts_the_machine_lacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    let here = dir.path().display();
    let yaml = format!(
        "env_file: {here}/missing.env\ntasks:\n  a:\n    run: echo a\n    user: flow-no-such-user\n    working_dir: {here}\n    env_file: [{here}/there.env, -{here}/optional.env]\n"
    );
    let env = write(dir.path(), "there.env", "A=1\n");
    // Private, as env files should be: no warning for it.
    std::fs::set_permissions(&env, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let path = write(dir.path(), "w.yaml", &yaml);
    let env = format!("env_file `{here}/missing.env` does not exist on this machine");
    let user = "user `flow-no-such-user` does not exist on this machine";
    let shown = format!("--> {}:5:11", path.display());
    for cmd in [apply_into(&path, &units), {
        let mut c = flow();
        c.arg("plan").arg(&path).arg("--unit-dir").arg(&units);
        c
    }] {
        let mut cmd = cmd;
        let out = cmd.assert().success().get_output().clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("warning: ").count(), 2, "{err}");
        assert!(err.contains(&format!("warning: {env}")), "{err}");
        assert!(err.contains(&format!("warning: {user}")), "{err}");
        assert!(err.contains(&shown), "{err}");
        assert!(err.contains("adduser --system flow-no-such-user"), "{err}");
    }
    assert!(units.join("flow-w--a.service").exists());
}

/// No files named and no workflows directory: say where workflows go, not "cannot read".
#[test]
fn a_missing_workflows_directory_says_where_workflows_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("cfg");
    let want = format!(
        "{}/flow/workflows does not exist: put your workflow files there (`mkdir -p {}/flow/workflows`)",
        cfg.display(),
        cfg.display()
    );
    for (args, verb) in [
        (&["validate", "--user"][..], "flow validate --user FILE..."),
        (&["plan", "--user"][..], "flow plan --user FILE..."),
        (
            &["apply", "--user", "--no-reload"][..],
            "flow apply --user FILE...",
        ),
    ] {
        flow()
            .args(args)
            .env("XDG_CONFIG_HOME", &cfg)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(want.as_str()).and(predicate::str::contains(verb)));
    }
}

#[test]
fn graph_as_dot_and_mermaid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "g.yaml",
        "tasks:\n  a: echo a\n  b:\n    needs: [a]\n    when: always\n    run: echo b\n",
    );
    flow()
        .arg("graph")
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"a\" -> \"b\" [label=\"always\", style=dashed];",
        ));
    flow()
        .arg("graph")
        .arg(&f)
        .args(["--format", "mermaid"])
        .assert()
        .success()
        .stdout(predicate::str::contains("t0 -. always .-> t1"));
}

#[test]
fn compile_of_a_relative_path_names_the_source_absolutely() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    write(dir.path(), "rel.yaml", GOOD);
    flow()
        .current_dir(dir.path().join("sub"))
        .args(["compile", "../rel.yaml", "--out", "../out"])
        .assert()
        .success();
    let unit = std::fs::read_to_string(dir.path().join("out/flow-rel--a.service")).expect("unit");
    let source = std::fs::canonicalize(dir.path().join("rel.yaml")).expect("canonical");
    let expected = format!("SourcePath={}\n", source.display());
    assert!(unit.contains(&expected), "{unit}");
    assert!(
        unit.starts_with(&format!("# Generated by flow from {}\n", source.display())),
        "{unit}"
    );
}

/// Output cut short by the reader (`flow graph big | head`) ends the command quietly, as
/// for any command-line tool: no panic message about a broken pipe.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from("tasks:\n");
    for i in 0..3000 {
        yaml.push_str(&format!("  task_number_{i}:\n    run: 'true'\n"));
        if i > 0 {
            yaml.push_str(&format!("    needs: [task_number_{}]\n", i - 1));
        }
    }
    let f = write(dir.path(), "big.yaml", &yaml);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flow"))
        .arg("graph")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flow");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    // The pipe's read end is closed here, while flow still has output to write.
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !out.status.success(),
        "the output should not have fit in the pipe"
    );
}

/// A user's own directories come from the password database when `$HOME` is unset or
/// relative: never from the current directory, where the user's manager does not look.
#[test]
fn a_users_directories_do_not_depend_on_home_being_set() {
    let home = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .expect("an account for this uid");
    let expected = home.join(".local/state/flow/history.db");
    for home_var in [None, Some("relative/home")] {
        let mut cmd = flow();
        cmd.args(["history", "--user"]).env_remove("XDG_STATE_HOME");
        match home_var {
            None => cmd.env_remove("HOME"),
            Some(h) => cmd.env("HOME", h),
        };
        let out = cmd.output().expect("run flow");
        let said = String::from_utf8_lossy(&out.stderr);
        if expected.exists() {
            // This account has a history: it was found there.
            assert!(out.status.success(), "{said}");
        } else {
            assert!(
                said.contains(&format!("no run history at {}", expected.display())),
                "{said}"
            );
        }
    }
}

/// A workflow name no run is recorded for and nothing installed has is an error naming the
/// nearest known one, not an empty table and exit 0; a known name is answered.
#[test]
fn history_and_stats_of_an_unknown_workflow_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    {
        let (s, _) = flow::store::Store::open_rw(&db).expect("open");
        let id = s
            .insert_run(
                "backup",
                flow::vocabulary::TriggerKind::Manual,
                1_700_000_000_000_000,
                None,
            )
            .expect("insert");
        s.finish_run(
            id,
            1_700_000_001_000_000,
            flow::vocabulary::RunResult::Succeeded,
        )
        .expect("finish");
    }
    for cmd in ["history", "stats"] {
        flow()
            .args([cmd, "bakup", "--db"])
            .arg(&db)
            .assert()
            .code(4)
            .stderr(predicate::str::contains(
                "no workflow `bakup` is installed or has a run recorded; did you mean `backup`?",
            ));
        flow()
            .args([cmd, "backup", "--db"])
            .arg(&db)
            .assert()
            .success();
    }
    flow()
        .args(["status", "zzz", "1", "--db"])
        .arg(&db)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("no workflow `zzz` is installed"));
    flow()
        .args(["status", "backup", "9", "--db"])
        .arg(&db)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("workflow `backup` has no run 9"));
    flow()
        .args(["history", "--db"])
        .arg(&db)
        .assert()
        .success()
        .stdout(predicate::str::contains("backup"));
}

/// Completions offer what `flow --help` shows: every command and its options, and none of
/// the hidden ones the units and the package use (`trigger`, `manpage`, `--runtime-dir`).
#[test]
fn completions_offer_the_visible_commands_only() {
    for shell in ["bash", "zsh", "fish"] {
        let out = flow().args(["completions", shell]).assert().success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        let wait = if shell == "fish" { "-l wait" } else { "--wait" };
        for want in ["retry", "supervise", wait] {
            assert!(text.contains(want), "{shell}: no {want}");
        }
        for hidden in [
            "manpage",
            "runtime-dir",
            "flow__subcmd__trigger",
            "\"trigger\"",
        ] {
            assert!(!text.contains(hidden), "{shell} offers the hidden {hidden}");
        }
    }
}

/// `flow list` that cannot reach systemd knows the workflows but not their timers: it says
/// `?` (not `paused`) and exits 3, in text and JSON alike.
#[test]
fn list_without_systemd_says_so_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = dir.path().join("units");
    let yaml = write(
        dir.path(),
        "nightly.yaml",
        "schedule: \"30 2 * * *\"\ntasks:\n  a: echo a\n",
    );
    apply_into(&yaml, &units).assert().success();
    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    for json in [false, true] {
        let mut cmd = flow();
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &nowhere)
            .args(["list", "--unit-dir"])
            .arg(&units);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("flow list");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(3),
            "json={json}: {stdout}\n{stderr}"
        );
        // Unknown is `?` (`null` in JSON), never "paused".
        assert!(
            !stdout.contains("paused") || stdout.contains(r#""paused":null"#),
            "json={json}: {stdout}"
        );
        assert!(stdout.contains("nightly"), "json={json}: {stdout}");
        assert!(
            stderr.contains("cannot reach systemd"),
            "json={json}: {stderr}"
        );
    }
}

/// `--user` is understood before the command as after it.
#[test]
fn user_flag_goes_before_or_after_the_command() {
    let home = tempfile::tempdir().expect("tempdir");
    for args in [["--user", "list"], ["list", "--user"]] {
        flow()
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .args(args)
            .assert()
            .success()
            .stdout(predicate::str::contains(".config/systemd/user"));
    }
    // A command that has no --user says so, wherever the flag stands.
    flow()
        .args(["--user", "completions", "bash"])
        .assert()
        .code(2);
}

/// `flow try` reads its file as `flow validate` does: a FIFO is refused at once, not waited
/// on (nothing is booted).
#[test]
fn try_refuses_a_fifo_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    flow()
        .arg("try")
        .arg(&fifo)
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is a FIFO (named pipe), not a workflow file",
        ));
}

/// `history --json` and `stats --json` print one line each (docs/json.md); stats counts
/// attempts and calls them so.
#[test]
fn history_and_stats_json_are_one_line_and_stats_counts_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    {
        let (s, _) = flow::store::Store::open_rw(&db).expect("open");
        let id = s
            .insert_run(
                "backup",
                flow::vocabulary::TriggerKind::Manual,
                1_700_000_000_000_000,
                None,
            )
            .expect("insert");
        for attempt in 1..=2 {
            s.insert_attempt(&flow::store::Attempt {
                run_id: id,
                task: "dump".into(),
                attempt,
                invocation_id: None,
                started_us: Some(1_700_000_000_000_000),
                ended_us: Some(1_700_000_000_500_000),
                outcome: if attempt == 1 {
                    flow::vocabulary::Outcome::exited(1)
                } else {
                    flow::vocabulary::Outcome::succeeded()
                },
                cpu_ns: None,
                memory_peak: None,
            })
            .expect("attempt");
        }
        s.finish_run(
            id,
            1_700_000_001_000_000,
            flow::vocabulary::RunResult::Succeeded,
        )
        .expect("finish");
    }
    for cmd in ["history", "stats"] {
        let out = flow()
            .args([cmd, "backup", "--json", "--db"])
            .arg(&db)
            .output()
            .expect("run flow");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "{cmd}: {text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
        if cmd == "stats" {
            assert_eq!(v["tasks"][0]["attempts"], 2, "{v:#}");
            assert!(v["tasks"][0].get("runs").is_none(), "{v:#}");
        }
    }
}

//! End-to-end: what a task runs is exactly what the YAML says (quotes, `$`, `%`,
//! backslashes, unicode, heredocs, spaces in values and paths), as whom and where, and its
//! output is in the journal, findable by workflow, task and invocation.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use std::time::Duration;

use crate::harness::{self, Boot};

#[test]
fn commands_env_and_paths_arrive_byte_for_byte() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.sh("mkdir -p '/srv/out' '/srv/dir with space'");
    fb.write(
        "/srv/env file.env",
        "FROM_FILE=file value with $dollar and 100%\n",
    );
    // Each task writes into /srv/out; the expected bytes follow from the YAML by the shell's
    // own rules, written out by hand here.
    let yaml = r#"tasks:
  quotes:
    run: printf '%s\n' 'single $HOME %n \ back' "double \"q\" \\ 100%" > /srv/out/quotes
  unicode:
    run: echo 'ünïcødé ✓ 日本語 — ok' > /srv/out/unicode
  heredoc:
    run: |
      cat > /srv/out/heredoc <<'EOF'
      line one with $HOME and `backticks`
        indented %n %% \n \\ "quoted" 'single'
      last line ✓
      EOF
      x=42
      cat >> /srv/out/heredoc <<EOF
      expanded $x and \$x
      EOF
  argv:
    exec: [/usr/bin/printf, "%s|", "a b", "c\"d", "$HOME", "100%", 'back\slash', "%n"]
  argv-out:
    needs: [argv]
    run: 'true'
  env:
    env:
      SPACED: "has  two  spaces"
      PCT: "100%"
      DOLLAR: "$HOME and ${X}"
      QUOTES: "it's \"quoted\""
      BACK: 'a\b\\c'
    env_file: "/srv/env file.env"
    working_dir: "/srv/dir with space"
    run: printf '%s\n' "$SPACED" "$PCT" "$DOLLAR" "$QUOTES" "$BACK" "$FROM_FILE" "$(pwd)" > /srv/out/env
"#;
    fb.apply("exact", yaml);
    let r = fb.run_wait("exact");
    assert!(r.succeeded, "{r:?}");
    let read = |f: &str| fb.read_string(&format!("/srv/out/{f}"));
    assert_eq!(
        read("quotes"),
        "single $HOME %n \\ back\ndouble \"q\" \\ 100%\n"
    );
    assert_eq!(read("unicode"), "ünïcødé ✓ 日本語 — ok\n");
    assert_eq!(
        read("heredoc"),
        "line one with $HOME and `backticks`\n  indented %n %% \\n \\\\ \"quoted\" 'single'\nlast line ✓\nexpanded 42 and $x\n"
    );
    assert_eq!(
        read("env"),
        "has  two  spaces\n100%\n$HOME and ${X}\nit's \"quoted\"\na\\b\\\\c\nfile value with $dollar and 100%\n/srv/dir with space\n"
    );
    // An exec argv goes to the program untouched; its output is in the journal.
    let lines = harness::journal_messages(&fb.sb, "flow-exact--argv.service", 1);
    assert!(
        lines
            .iter()
            .any(|l| l == "a b|c\"d|$HOME|100%|back\\slash|%n|"),
        "{lines:?}"
    );
}

#[test]
fn user_working_dir_env_and_env_file_take_effect_and_secrets_stay_out_of_units() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.sh("mkdir -p /srv/work /srv/id && chmod 777 /srv/id");
    fb.write(
        "/etc/flow/secret.env",
        "API_TOKEN=s3cr3t-token-4711\nPLAIN=from-file\n",
    );
    fb.sh("chmod 600 /etc/flow/secret.env");
    fb.apply(
        "ident",
        "env: {GREETING: hello}
tasks:
  as-www:
    user: www-data
    run: 'id -un > /srv/id/user; id -u >> /srv/id/user'
  where:
    working_dir: /srv/work
    env: {LOCAL: task-level}
    env_file: /etc/flow/secret.env
    run: 'pwd > out; echo \"$GREETING $LOCAL $PLAIN ${#API_TOKEN}\" >> out; printf %s \"$API_TOKEN\" | rev >> out'
",
    );
    let r = fb.run_wait("ident");
    assert!(r.succeeded, "{r:?}");
    assert_eq!(fb.read_string("/srv/id/user"), "www-data\n33\n");
    assert_eq!(
        fb.read_string("/srv/work/out"),
        "/srv/work\nhello task-level from-file 17\n1174-nekot-t3rc3s"
    );
    // The secret is read at run time: no unit file, nor what systemd shows of a unit, has it.
    let grep = harness::sh(
        &fb.sb,
        "grep -rl s3cr3t-token-4711 /etc/systemd /run/systemd",
    );
    assert!(
        !grep.success(),
        "the secret is in a unit file: {}",
        grep.stdout
    );
    let shown =
        fb.sh("systemctl show flow-ident--where.service; systemctl cat flow-ident--where.service");
    assert!(!shown.contains("s3cr3t"), "systemctl shows the secret");
    assert!(shown.contains("/etc/flow/secret.env"));
}

#[test]
fn task_output_is_in_the_journal_by_workflow_task_and_invocation() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "talk",
        "tasks:
  hello: {run: 'echo hello-line-1; echo hello-line-2; sleep 0.3'}
  bye: {needs: [hello], run: 'echo bye-line >&2'}
",
    );
    let first = fb.run_wait("talk");
    let r = fb.run_wait("talk");
    assert!(first.succeeded && r.succeeded, "{r:?}");
    let messages = |args: &[&str]| -> Vec<String> {
        harness::wait_until("journal lines", std::time::Duration::from_secs(10), || {
            let m: Vec<String> = harness::journal(&fb.sb, args)
                .iter()
                .filter_map(|e| e["MESSAGE"].as_str().map(str::to_string))
                .collect();
            (!m.is_empty()).then_some(m)
        })
    };
    let by_wf = messages(&["FLOW_WORKFLOW=talk"]);
    assert_eq!(
        by_wf
            .iter()
            .filter(|m| m.starts_with("hello-line") || *m == "bye-line")
            .count(),
        6,
        "two runs of three lines: {by_wf:?}"
    );
    let by_task = messages(&["FLOW_WORKFLOW=talk", "FLOW_TASK=bye"]);
    assert_eq!(by_task, vec!["bye-line", "bye-line"]);
    // journald tags a line with the invocation ID only if it looked the writer up while it
    // ran, hence the sleep: `bye`, which exits at once, may lack it (docs/units.md), and
    // `flow logs` below must find its lines all the same.
    let inv = r.invocation("hello");
    let by_id = messages(&[&format!("_SYSTEMD_INVOCATION_ID={inv}")]);
    assert_eq!(by_id, vec!["hello-line-1", "hello-line-2"]);
    // `flow logs` prints the last run's lines, each with its task.
    let logs = fb.flow(&["logs", "talk"]).ok().stdout;
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(lines[0].ends_with(" hello | hello-line-1"), "{logs}");
    assert!(lines[1].ends_with(" hello | hello-line-2"), "{logs}");
    assert!(lines[2].ends_with(" bye | bye-line"), "{logs}");
    // With `--json`, one object per line, for scripts.
    let json = fb.flow(&["logs", "talk", "--json"]).ok().stdout;
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|l| common::schema_checked("logs", l))
        .collect();
    let pairs: Vec<(&str, &str)> = objects
        .iter()
        .map(|v| {
            (
                v["task"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("hello", "hello-line-1"),
            ("hello", "hello-line-2"),
            ("bye", "bye-line")
        ]
    );
    assert!(
        objects
            .iter()
            .all(|v| common::us(&v["time"]).is_some() && v["invocation_id"].is_string()),
        "{json}"
    );
    let only = fb.flow(&["logs", "talk", "--task", "bye"]).ok().stdout;
    assert_eq!(only.lines().count(), 1, "{only}");
    assert!(only.trim_end().ends_with(" bye | bye-line"), "{only}");
    // `--lines N`: the last N, after a note of how many came before.
    let tail = fb.flow(&["logs", "talk", "--lines", "2"]).ok().stdout;
    let tail: Vec<&str> = tail.lines().collect();
    assert_eq!(tail.len(), 3, "{tail:?}");
    assert!(
        tail[0].starts_with("… 1 earlier line not shown"),
        "{tail:?}"
    );
    assert_eq!(tail[1..], lines[1..], "{tail:?}");
    let tail = fb.flow(&["logs", "talk", "-n", "1", "--json"]).ok().stdout;
    common::schema_checked("logs", &tail);
    assert!(tail.contains(r#""message":"bye-line""#), "{tail}");

    // `flow logs -f` prints the last run's lines at once (a run followed after it began
    // shows from its beginning), then those of the runs that follow, as they come.
    // With `--lines 1`, the last line, then what comes.
    fb.sh("timeout 30 /usr/local/bin/flow logs talk -f > /tmp/follow.out 2>&1 & echo $! > /tmp/follow.pid");
    fb.sh("timeout 30 /usr/local/bin/flow logs talk -f -n 1 > /tmp/tail.out 2>&1 & echo $! >> /tmp/follow.pid");
    let followed = |file: &str, n: usize| {
        harness::wait_until("followed lines", Duration::from_secs(10), || {
            let out = fb.read_string(file);
            (out.lines().count() >= n).then_some(out)
        })
    };
    let last = followed("/tmp/follow.out", 3);
    assert_eq!(last.lines().collect::<Vec<_>>(), lines, "{last}");
    let tail = followed("/tmp/tail.out", 2);
    assert_eq!(tail.lines().nth(1), Some(lines[2]), "{tail}");
    let third = fb.run_wait("talk");
    assert!(third.succeeded, "{third:?}");
    let all = followed("/tmp/follow.out", 6);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 6, "{all}");
    assert!(lines[3].ends_with(" hello | hello-line-1"), "{all}");
    assert!(lines[5].ends_with(" bye | bye-line"), "{all}");
    let tail = followed("/tmp/tail.out", 5);
    assert_eq!(
        tail.lines().skip(1).collect::<Vec<_>>(),
        lines[2..],
        "the last line, then every new one: {tail}"
    );
    fb.sh("kill $(cat /tmp/follow.pid)");
}

/// `flow run NAME; flow logs NAME -f`, as `flow run` suggests: the new run's lines, not
/// the run before's (journald may not have the new run's start yet when `logs` asks).
#[test]
fn logs_followed_right_after_flow_run_are_the_new_runs() {
    let Some(fb) = Boot::new().boot() else { return };
    fb.apply(
        "cnt",
        "tasks:\n  t: {run: 'n=$(cat /srv/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /srv/n; sleep 0.5; echo line-$n'}\n",
    );
    assert!(fb.run_wait("cnt").succeeded);
    for n in 2..=4 {
        fb.sh("/usr/local/bin/flow run cnt >/dev/null; timeout 3 /usr/local/bin/flow logs cnt -f > /tmp/f.out 2>&1; true");
        let out = fb.read_string("/tmp/f.out");
        assert!(out.contains(&format!("line-{n}")), "{out}");
        assert!(!out.contains(&format!("line-{}", n - 1)), "{out}");
    }
}

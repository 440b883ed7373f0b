//! Golden tests of error messages: each file in `tests/data/errors/` and everything flow
//! says about it, exactly as a person sees it.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn every_bad_file_gets_located_helpful_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/errors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the error corpus went missing");
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        let bytes = std::fs::read(&path).expect("read");
        // A file that is not UTF-8 gets its one diagnostic from `decode`, as the CLI does.
        let (text, diags) = match flow::compiler::decode(&bytes) {
            Ok(text) => (text.to_string(), None),
            Err((d, lossy)) => (lossy, Some(vec![d])),
        };
        let diags = match diags.map_or_else(|| flow::compiler::check(&name, &text).map(|_| ()), Err)
        {
            Ok(_) => panic!("{name} should be invalid"),
            Err(diags) => diags,
        };
        for d in &diags {
            if let Some(span) = d.span {
                assert!(
                    span.start.line >= 1 && span.start.line <= text.lines().count() + 1,
                    "{name}: {d:?}"
                );
            }
        }
        let rendered = flow::compiler::diagnostic::render_all(&diags, &name, &text);
        insta::assert_snapshot!(name.replace(['.', ' ', '!'], "_"), rendered);
    }
}

/// The diagnostics of a generated file, rendered.
fn rendered(name: &str, text: &str) -> String {
    match flow::compiler::check(name, text) {
        Ok(_) => panic!("{name} should be invalid"),
        Err(diags) => flow::compiler::diagnostic::render_all(&diags, name, text),
    }
}

/// An `on_failure` task's upstreams are arguments of its check: past the limit, an error at
/// the task (before, about 2,000 long names made one argument over the kernel's limit, and
/// the task was silently skipped).
#[test]
fn an_on_failure_task_with_too_many_upstream_names_is_refused() {
    let name = |i: usize| format!("upstream-{i:04}-{}", "x".repeat(48));
    let mut yaml = String::from("tasks:\n");
    let count = flow::compiler::validate::MAX_CONDITION_BYTES / (name(0).len() + 3) + 1;
    for i in 0..count {
        yaml.push_str(&format!("  {}: 'true'\n", name(i)));
    }
    let all: Vec<String> = (0..count).map(name).collect();
    yaml.push_str(&format!(
        "  alert:\n    needs: [{}]\n    when: on_failure\n    run: echo failed\n",
        all.join(", ")
    ));
    let out = rendered("many.yaml", &yaml);
    // The quoted line is the task's name: the snapshot stays short.
    insta::assert_snapshot!(out);
    // Below the limit, the same shape is valid.
    let fewer = yaml.replace(&format!(", {}]", name(count - 1)), "]");
    assert!(flow::compiler::check("many.yaml", &fewer).is_ok());
}

/// Thousands of problems: the first hundred, then one line that counts the others.
#[test]
fn past_a_hundred_problems_the_rest_are_counted() {
    let mut yaml = String::from("tasks:\n");
    for i in 0..250 {
        yaml.push_str(&format!("  t{i}: {{needs: [missing{i}], run: 'true'}}\n"));
    }
    let diags = flow::compiler::check("many.yaml", &yaml).expect_err("invalid");
    assert_eq!(diags.len(), flow::compiler::MAX_DIAGNOSTICS + 1);
    let out = flow::compiler::diagnostic::render_all(&diags, "many.yaml", &yaml);
    let last = out.rsplit("\n\n").next().unwrap_or_default();
    insta::assert_snapshot!(last);
}

/// A workflow `env` is written into every task's unit: a large one times many tasks is
/// refused before the units are written.
#[test]
fn units_too_large_to_write_are_refused() {
    let mut yaml = String::from("env:\n");
    for i in 0..2000 {
        yaml.push_str(&format!("  VARIABLE_{i:05}: {}\n", "v".repeat(40)));
    }
    yaml.push_str("tasks:\n");
    for i in 0..1000 {
        yaml.push_str(&format!("  task-{i}: 'true'\n"));
    }
    let out = rendered("big.yaml", &yaml);
    insta::assert_snapshot!(out);
}

/// A carriage return in a file name once injected unit lines through the header comment:
/// such a path is refused, and shown escaped.
#[test]
fn a_path_with_control_characters_is_refused() {
    let path = "/etc/flow/workflows/x\rExecStartPre=+\u{1b}[2J/evil.yaml";
    let out = rendered(path, "tasks:\n  a: echo harmless\n");
    assert!(!out.contains(['\r', '\u{1b}']), "{out:?}");
    insta::assert_snapshot!(out);
}

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
        let text = std::fs::read_to_string(&path).expect("read");
        let diags = match flow::compiler::check(&name, &text) {
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

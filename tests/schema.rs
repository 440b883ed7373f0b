//! docs/schema/workflow.json, the workflow file's JSON Schema for editors: it accepts every
//! example and every valid test workflow, rejects the broken-file corpus where a schema can
//! tell, and names exactly the keys the compiler knows (so the two cannot drift apart).
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flow::compiler::names::RESERVED_WORKFLOWS;
use flow::compiler::parse::{
    OWNED_SERVICE_KEYS, SCHEDULE_KEYS, SETTINGS_KEYS, TASK_KEYS, WORKFLOW_KEYS,
};
use flow::compiler::yaml::{self, Node};
use serde_json::{Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("docs/schema/workflow.json"))
        .expect("docs/schema/workflow.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    common::schema_validator("workflow")
}

/// A YAML document as the JSON value an editor's YAML language server checks (YAML 1.2 core
/// schema: plain `true`, numbers and `null` are typed, everything quoted is a string).
fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(_) if node.is_null() => Value::Null,
        Node::Scalar(s) if !s.plain => Value::String(s.value.clone()),
        Node::Scalar(s) => {
            if let Some(b) = yaml::parse_bool(&s.value) {
                Value::Bool(b)
            } else if let Ok(i) = s.value.parse::<i64>() {
                Value::from(i)
            } else if let Some(f) = s.value.parse::<f64>().ok().filter(|f| f.is_finite())
                && s.value.chars().any(|c| c.is_ascii_digit())
            {
                Value::from(f)
            } else {
                Value::String(s.value.clone())
            }
        }
        Node::Seq(items, _) => Value::Array(items.iter().map(to_json).collect()),
        Node::Map(pairs, _) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let key = match k {
                    Node::Scalar(s) => s.value.clone(),
                    other => to_json(other).to_string(),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
    }
}

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read");
    let node = yaml::parse(&text)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
        .unwrap_or_else(|| panic!("{}: empty", path.display()));
    to_json(&node)
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {dir}");
    files
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_example_and_valid_test_workflow_satisfies_the_schema() {
    let v = validator();
    let files: Vec<PathBuf> = yaml_files("examples")
        .into_iter()
        .chain(yaml_files("tests/data/units"))
        .collect();
    for path in files {
        // The compiler accepts it (else it is not a valid workflow to hold the schema to).
        let text = std::fs::read_to_string(&path).expect("read");
        let name = path.display().to_string();
        assert!(
            flow::compiler::check(&name, &text).is_ok(),
            "{name} is invalid"
        );
        let errs = errors(&v, &yaml_file(&path));
        assert!(errs.is_empty(), "{name}: {errs:#?}");
    }
}

#[test]
fn the_broken_file_corpus_is_rejected_where_a_schema_can_tell() {
    let v = validator();
    // Problems a schema cannot see: the file's name, and the graph (unknown needs, cycles).
    let beyond_a_schema = ["bad name!.yaml", "graph.yaml", "supervisor.yaml"];
    for path in yaml_files("tests/data/errors") {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        // Not UTF-8: the editor's problem before the schema's.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        // Not YAML, or empty: nothing for a schema to check (the editor reports the syntax).
        let Ok(Some(node)) = yaml::parse(&text) else {
            continue;
        };
        let errs = errors(&v, &to_json(&node));
        if beyond_a_schema.contains(&file) {
            continue;
        }
        assert!(!errs.is_empty(), "{file} satisfies the schema");
    }
}

/// A few precise cases, so that a schema accepting everything cannot pass.
#[test]
fn the_schema_rejects_what_the_format_forbids() {
    let v = validator();
    let rejected = [
        "tasks: {}",
        "tasks: {a: {run: x, exec: [x]}}",
        "tasks: {a: {when: always}}",
        "tasks: {a: {run: x, retires: 3}}",
        "descripton: x\ntasks: {a: echo}",
        "overlap: sometimes\ntasks: {a: echo}",
        "max_parallel: 0\ntasks: {a: echo}",
        "tasks: {a: {run: x, nice: 40}}",
        "tasks: {a: {run: x, service: {ExecStart: /bin/false}}}",
        "schedule: {cron: '@daily', every: 5m}\ntasks: {a: echo}",
        "tasks: {a--b: echo}",
        "defaults: {needs: [a]}\ntasks: {a: echo}",
        "tasks: {a: echo, b: {when: always, run: x}}",
        "tasks: {a: echo, b: {when: on_failure, needs: [], run: x}}",
        "tasks: {a: {exec: [';', /bin/true]}}",
        "name: supervisor\ntasks: {a: echo}",
    ];
    for doc in rejected {
        let node = yaml::parse(doc).expect("yaml").expect("doc");
        assert!(!errors(&v, &to_json(&node)).is_empty(), "accepted: {doc}");
    }
    let accepted = [
        "tasks: {a: echo}",
        "schedule: '*/5 * * * *'\ntasks: {a: {exec: [/bin/true]}}",
        "tasks: {a: {exec: [find, /tmp, -exec, rm, '{}', ';']}}",
        "schedule: {every: 15m}\ndefaults: {retries: 2, timeout: 30s}\ntasks: {a: echo, b: {needs: [a], when: on_failure, run: x}}",
    ];
    for doc in accepted {
        let node = yaml::parse(doc).expect("yaml").expect("doc");
        let errs = errors(&v, &to_json(&node));
        assert!(errs.is_empty(), "rejected: {doc}: {errs:#?}");
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("properties").keys().cloned().collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// The schema names exactly the keys the compiler takes: a key added to one and not the
/// other fails here.
#[test]
fn the_schema_names_exactly_the_compilers_keys() {
    let s = schema();
    let defs = &s["definitions"];
    assert_eq!(keys(&s["properties"]), set(WORKFLOW_KEYS), "workflow keys");
    assert_eq!(
        keys(&defs["task"]["properties"]),
        set(TASK_KEYS),
        "task keys"
    );
    assert_eq!(
        keys(&defs["settings"]["properties"]),
        set(SETTINGS_KEYS),
        "defaults keys"
    );
    assert_eq!(
        keys(&defs["settings_properties"]),
        set(SETTINGS_KEYS),
        "task settings"
    );
    assert_eq!(
        keys(&s["properties"]["schedule"]["oneOf"][1]["properties"]),
        set(SCHEDULE_KEYS),
        "schedule keys"
    );
    let owned: BTreeSet<String> =
        defs["settings_properties"]["service"]["propertyNames"]["not"]["enum"]
            .as_array()
            .expect("owned keys")
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
    let compiler: BTreeSet<String> = OWNED_SERVICE_KEYS
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(owned, compiler, "[Service] keys flow writes itself");
    let reserved: BTreeSet<String> = s["properties"]["name"]["allOf"][1]["not"]["enum"]
        .as_array()
        .expect("reserved names")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let compiler: BTreeSet<String> = RESERVED_WORKFLOWS
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(reserved, compiler, "reserved workflow names");
}

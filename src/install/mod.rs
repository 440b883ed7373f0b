//! Installing compiled units: what is installed, what would change, atomic writes, removal.
//!
//! Only files that start with flow's header are ever touched, so hand-written units in the
//! same directory are safe. A generated file is stale, and removed, when the YAML file its
//! header names no longer exists, or when that file was applied again and no longer
//! produces it (a task renamed, a schedule dropped, the workflow renamed).

pub mod host;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::compiler::emit::HEADER_PREFIX;
use crate::compiler::{GeneratedFile, escape, names};

/// A file flow generated earlier, found in the unit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    pub contents: String,
    /// The YAML file named in its header.
    pub source: String,
}

/// Every flow-generated file in `dir`, by file name.
pub fn installed(dir: &Path) -> std::io::Result<BTreeMap<String, InstalledFile>> {
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with("flow-") || !entry.file_type()?.is_file() {
            continue;
        }
        let Ok(contents) = fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(source) = source_of(&contents) {
            out.insert(
                name,
                InstalledFile {
                    source: source.to_string(),
                    contents,
                },
            );
        }
    }
    Ok(out)
}

/// The YAML path in a generated file's header, or `None` if flow did not generate it.
pub fn source_of(contents: &str) -> Option<&str> {
    contents
        .lines()
        .next()?
        .strip_prefix("# ")?
        .strip_prefix(HEADER_PREFIX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add {
        name: String,
        new: String,
    },
    Update {
        name: String,
        old: String,
        new: String,
    },
    Remove {
        name: String,
        old: String,
    },
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Add { name, .. }
            | Change::Update { name, .. }
            | Change::Remove { name, .. } => name,
        }
    }
}

/// What `apply` would do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Workflows by state: new, changed, removed (by file names of their units).
    pub added: BTreeSet<String>,
    pub changed: BTreeSet<String>,
    pub removed: BTreeSet<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compare what is installed with what the applied files compile to.
/// `applied` are the YAML files being applied; `exists` says whether a source still exists.
pub fn plan(
    installed: &BTreeMap<String, InstalledFile>,
    desired: &[GeneratedFile],
    applied: &[String],
    exists: impl Fn(&str) -> bool,
) -> Plan {
    let mut p = Plan::default();
    let wanted: BTreeSet<&str> = desired.iter().map(|f| f.name.as_str()).collect();
    let installed_workflows: BTreeSet<Cow<str>> = installed
        .keys()
        .filter_map(|n| names::workflow_of_file(n))
        .collect();
    let desired_workflows: BTreeSet<Cow<str>> = desired
        .iter()
        .filter_map(|f| names::workflow_of_file(&f.name))
        .collect();
    for f in desired {
        let wf = names::workflow_of_file(&f.name)
            .unwrap_or_default()
            .to_string();
        match installed.get(&f.name) {
            None => {
                if installed_workflows.contains(wf.as_str()) {
                    p.changed.insert(wf);
                } else {
                    p.added.insert(wf);
                }
                p.changes.push(Change::Add {
                    name: f.name.clone(),
                    new: f.contents.clone(),
                });
            }
            Some(old) if old.contents != f.contents => {
                p.changed.insert(wf);
                p.changes.push(Change::Update {
                    name: f.name.clone(),
                    old: old.contents.clone(),
                    new: f.contents.clone(),
                });
            }
            Some(_) => {}
        }
    }
    for (name, file) in installed {
        let stale = !wanted.contains(name.as_str())
            && (applied.contains(&file.source) || !exists(&file.source));
        if stale {
            let wf = names::workflow_of_file(name).unwrap_or_default();
            if desired_workflows.contains(&wf) {
                p.changed.insert(wf.to_string());
            } else {
                p.removed.insert(wf.to_string());
            }
            p.changes.push(Change::Remove {
                name: name.clone(),
                old: file.contents.clone(),
            });
        }
    }
    p
}

/// The flow binary and unit directory an installed workflow's units were compiled with,
/// read back from its trigger unit (the one unit that names both). With them, compiling
/// its YAML file again gives the installed files byte for byte if nothing changed, whichever
/// flow binary asks.
pub fn applied_with(
    installed: &BTreeMap<String, InstalledFile>,
    workflow: &str,
) -> Option<(String, String)> {
    let trigger = installed.get(&names::trigger_unit(workflow))?;
    let exec = trigger
        .contents
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))?;
    let run_unit = format!(" {} ", escape::exec_word(&names::run_unit(workflow)));
    let (_, after) = exec.split_once(&run_unit)?;
    let (flow_bin, rest) = escape::read_exec_word(after)?;
    let rest = rest.strip_prefix(" trigger --runtime-dir %t --unit-dir ")?;
    let (unit_dir, _) = escape::read_exec_word(rest)?;
    Some((flow_bin, unit_dir))
}

/// Whether `files`, a workflow compiled now, are exactly its installed files: the same
/// names, the same contents.
pub fn up_to_date(
    installed: &BTreeMap<String, InstalledFile>,
    workflow: &str,
    files: &[GeneratedFile],
) -> bool {
    let mine: BTreeMap<&str, &str> = installed
        .iter()
        .filter(|(name, _)| names::workflow_of_file(name).as_deref() == Some(workflow))
        .map(|(name, f)| (name.as_str(), f.contents.as_str()))
        .collect();
    let new: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.name.as_str(), f.contents.as_str()))
        .collect();
    mine == new
}

/// The files of one installed workflow (for `flow remove`).
pub fn plan_removal(installed: &BTreeMap<String, InstalledFile>, workflow: &str) -> Plan {
    let mut p = Plan::default();
    for (name, file) in installed {
        if names::workflow_of_file(name).as_deref() == Some(workflow) {
            p.changes.push(Change::Remove {
                name: name.clone(),
                old: file.contents.clone(),
            });
        }
    }
    if !p.changes.is_empty() {
        p.removed.insert(workflow.to_string());
    }
    p
}

/// Write the plan's files into `dir`: new contents atomically, stale files removed.
pub fn execute(dir: &Path, plan: &Plan) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for change in &plan.changes {
        match change {
            Change::Add { name, new } | Change::Update { name, new, .. } => {
                write_atomic(&dir.join(name), new.as_bytes())?
            }
            Change::Remove { name, .. } => match fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
    }
    sync_dir(dir)
}

/// Write through a temporary file in the same directory, fsync, then rename over the target,
/// so systemd never reads a half-written unit, even after a crash.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{file_name}.flow-tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// A unified diff of one change, for `flow plan`.
pub fn diff(change: &Change) -> String {
    let (old, new) = match change {
        Change::Add { new, .. } => ("", new.as_str()),
        Change::Update { old, new, .. } => (old.as_str(), new.as_str()),
        Change::Remove { old, .. } => (old.as_str(), ""),
    };
    let name = change.name();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(name: &str, source: &str, body: &str) -> GeneratedFile {
        GeneratedFile {
            name: name.into(),
            contents: format!("# {HEADER_PREFIX}{source}\n{body}"),
        }
    }

    #[test]
    fn plans_add_update_remove_and_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a1 = generated("flow-a.service", "/w/a.yaml", "x\n");
        let a2 = generated("flow-a--t.service", "/w/a.yaml", "t\n");
        let p = plan(
            &installed(dir.path()).expect("read"),
            &[a1.clone(), a2.clone()],
            &["/w/a.yaml".into()],
            |_| true,
        );
        assert_eq!(p.changes.len(), 2);
        assert_eq!(p.added.iter().collect::<Vec<_>>(), ["a"]);
        execute(dir.path(), &p).expect("write");

        // Same input again: nothing to do.
        let now = installed(dir.path()).expect("read");
        assert!(
            plan(
                &now,
                &[a1.clone(), a2.clone()],
                &["/w/a.yaml".into()],
                |_| true
            )
            .is_empty()
        );

        // Task renamed: the old task unit goes, the new one comes, the workflow is "changed".
        let a3 = generated("flow-a--u.service", "/w/a.yaml", "u\n");
        let p = plan(&now, &[a1.clone(), a3], &["/w/a.yaml".into()], |_| true);
        assert_eq!(p.changed.iter().collect::<Vec<_>>(), ["a"]);
        assert!(
            p.changes
                .iter()
                .any(|c| matches!(c, Change::Remove { name, .. } if name == "flow-a--t.service"))
        );

        // The YAML file is gone: applying other files removes the workflow.
        let p = plan(&now, &[], &["/w/b.yaml".into()], |_| false);
        assert_eq!(p.removed.iter().collect::<Vec<_>>(), ["a"]);
        execute(dir.path(), &p).expect("remove");
        assert!(installed(dir.path()).expect("read").is_empty());
    }

    #[test]
    fn never_touches_files_flow_did_not_generate() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("flow-mine.service"),
            "[Service]\nExecStart=/bin/true\n",
        )
        .expect("write");
        let found = installed(dir.path()).expect("read");
        assert!(found.is_empty());
        assert!(plan(&found, &[], &[], |_| false).is_empty());
    }

    /// `files` as `installed` would read them back from a unit directory.
    fn as_installed(files: &[GeneratedFile]) -> BTreeMap<String, InstalledFile> {
        files
            .iter()
            .map(|f| {
                let source = source_of(&f.contents).unwrap_or_default().to_string();
                let file = InstalledFile {
                    source,
                    contents: f.contents.clone(),
                };
                (f.name.clone(), file)
            })
            .collect()
    }

    #[test]
    fn workflows_whose_names_share_a_start_are_told_apart() {
        let opts = crate::compiler::EmitOptions {
            source_path: "/w/x.yaml".into(),
            unit_dir: "/etc/systemd/system".into(),
            flow_bin: "/usr/bin/flow".into(),
        };
        let mut files = Vec::new();
        for name in ["a", "a-b"] {
            let yaml = format!("name: {name}\ntasks:\n  t: {{run: 'true'}}\n");
            let (_, compiled) = crate::compiler::compile_with(&yaml, &opts).expect("compiles");
            files.extend(compiled);
        }
        let installed = as_installed(&files);
        let listed: Vec<String> = crate::runs::installed_workflows(&installed)
            .into_iter()
            .map(|w| w.name)
            .collect();
        assert_eq!(listed, ["a", "a-b"]);
        let removed: Vec<String> = plan_removal(&installed, "a-b")
            .changes
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        assert!(
            removed.contains(&r"flow-a\x2db.slice".to_string()),
            "{removed:?}"
        );
        assert!(
            removed
                .iter()
                .all(|n| n.starts_with("flow-a-b") || n.contains("x2d"))
        );
        assert_eq!(removed.len(), files.len() / 2, "{removed:?}");
    }

    #[test]
    fn reads_back_what_a_workflow_was_compiled_with_and_whether_it_changed() {
        let opts = crate::compiler::EmitOptions {
            source_path: "/w/a.yaml".into(),
            unit_dir: "/etc/systemd/my units".into(),
            flow_bin: "/opt/flow \"dev\" 100%/flow".into(),
        };
        let yaml =
            "max_parallel: 1\ntasks:\n  t: {run: 'echo one'}\n  u: {needs: [t], run: 'true'}\n";
        let compile = |yaml: &str, opts: &crate::compiler::EmitOptions| {
            crate::compiler::compile_with(yaml, opts)
                .expect("compiles")
                .1
        };
        let files = compile(yaml, &opts);
        let installed = as_installed(&files);
        assert_eq!(
            applied_with(&installed, "a"),
            Some((opts.flow_bin.clone(), opts.unit_dir.clone()))
        );
        assert!(up_to_date(&installed, "a", &files));

        // Another flow binary compiles different units from the same file.
        let other_bin = crate::compiler::EmitOptions {
            flow_bin: "/usr/bin/flow".into(),
            ..opts.clone()
        };
        assert!(!up_to_date(&installed, "a", &compile(yaml, &other_bin)));
        // An edited task, a task more, a task less.
        for edited in [
            yaml.replace("echo one", "echo two"),
            format!("{yaml}  v: {{run: 'true'}}\n"),
            yaml.replace("  u: {needs: [t], run: 'true'}\n", ""),
        ] {
            assert!(
                !up_to_date(&installed, "a", &compile(&edited, &opts)),
                "{edited}"
            );
        }
        // Nothing installed for that workflow.
        assert!(!up_to_date(&BTreeMap::new(), "a", &files));
        assert_eq!(applied_with(&BTreeMap::new(), "a"), None);
    }
}

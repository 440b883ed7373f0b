//! Installing compiled units: what is installed, what would change, atomic writes, removal.
//!
//! Only files that start with flow's header are ever touched, so hand-written units in the
//! same directory are safe. A generated file is stale, and removed, when the YAML file its
//! header names no longer exists, or when that file was applied again and no longer
//! produces it (a task renamed, a schedule dropped, the workflow renamed).
//!
//! A name flow is about to write that something else holds is a conflict, shown by
//! `flow plan` and refused by `flow apply` unless `--force`: a hand-written unit or a link in
//! the unit directory, or a unit of that name elsewhere in the manager's search path (the
//! supervisor's own, a package's) that the new file would shadow or be shadowed by. A
//! workflow whose units another YAML file made is refused outright.

pub mod files;
pub mod host;
pub mod trust;
pub mod unit_text;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
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

/// A name flow is about to write that a file flow did not generate holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The generated file's name.
    pub name: String,
    /// The file that holds it: in the unit directory, or elsewhere in the manager's path.
    pub path: PathBuf,
    pub entry: files::Entry,
    /// In the unit directory (replaced by `--force`), or elsewhere in the manager's path
    /// (the two would shadow one another).
    pub in_unit_dir: bool,
}

/// A workflow whose installed units another YAML file, still in place, made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub workflow: String,
    /// The YAML file the installed units name.
    pub owner: String,
    /// The YAML file being applied that has the same name.
    pub by: String,
}

/// What `apply` would do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Workflows by state: new, changed, removed (by file names of their units).
    pub added: BTreeSet<String>,
    pub changed: BTreeSet<String>,
    pub removed: BTreeSet<String>,
    /// Names to write that files flow did not generate hold (`apply` refuses without --force).
    pub conflicts: Vec<Conflict>,
    /// Workflows another YAML file owns (`apply` refuses).
    pub taken: Vec<Taken>,
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
                // Another file, still there and not applied with this one, made these units.
                let by = source_of(&f.contents).unwrap_or_default();
                if old.source != by
                    && !applied.contains(&old.source)
                    && exists(&old.source)
                    && !p.taken.iter().any(|t| t.workflow == wf)
                {
                    p.taken.push(Taken {
                        workflow: wf.clone(),
                        owner: old.source.clone(),
                        by: by.to_string(),
                    });
                }
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

/// The files in `dir` flow did not generate at the names of `desired`.
pub fn conflicts_in(dir: &Path, desired: &[GeneratedFile]) -> std::io::Result<Vec<Conflict>> {
    let d = match files::Dir::open(dir, false) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for f in desired {
        match d.entry(&f.name)? {
            None | Some(files::Entry::Flows) => {}
            Some(entry) => out.push(Conflict {
                name: f.name.clone(),
                path: dir.join(&f.name),
                entry,
                in_unit_dir: true,
            }),
        }
    }
    Ok(out)
}

/// The directories the system's manager loads units from (`--user`: the user's manager),
/// first to last; the first file of a name wins, so a unit in any of them and the one flow
/// writes shadow one another.
pub fn manager_dirs(user: bool) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if user {
        let config = crate::home::xdg_dir("XDG_CONFIG_HOME", ".config");
        let data = crate::home::xdg_dir("XDG_DATA_HOME", ".local/share");
        dirs.push(config.join("systemd/user"));
        dirs.push("/etc/systemd/user".into());
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
            dirs.push(PathBuf::from(runtime).join("systemd/user"));
        }
        dirs.push("/run/systemd/user".into());
        dirs.push(data.join("systemd/user"));
        for d in [
            "/usr/local/lib/systemd/user",
            "/usr/lib/systemd/user",
            "/lib/systemd/user",
        ] {
            dirs.push(d.into());
        }
    } else {
        for d in [
            "/etc/systemd/system",
            "/run/systemd/system",
            "/usr/local/lib/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ] {
            dirs.push(d.into());
        }
    }
    dirs
}

/// Units of the names of `desired` in `dirs` that flow did not generate: the unit directory
/// flow writes into is left out (`conflicts_in` looks there), and so is a directory that is
/// the same as another through a link (`/lib` is `/usr/lib` on merged systems).
pub fn conflicts_around(
    dirs: &[PathBuf],
    unit_dir: &Path,
    desired: &[GeneratedFile],
) -> Vec<Conflict> {
    let real = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut seen = vec![real(unit_dir)];
    let mut out = Vec::new();
    for dir in dirs {
        let canonical = real(dir);
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        // A directory that is missing or unreadable holds nothing the manager loads either.
        let Ok(d) = files::Dir::open(&real(dir), false) else {
            continue;
        };
        for f in desired.iter().filter(|f| names::is_unit(&f.name)) {
            match d.entry(&f.name) {
                Ok(None | Some(files::Entry::Flows)) | Err(_) => {}
                Ok(Some(entry)) => out.push(Conflict {
                    name: f.name.clone(),
                    path: dir.join(&f.name),
                    entry,
                    in_unit_dir: false,
                }),
            }
        }
    }
    out
}

/// Write the plan's files into `dir`: new contents atomically, stale files removed. A name
/// a file flow did not generate holds is refused unless `force` (the plan's conflicts say
/// which beforehand; this holds should one appear since).
pub fn execute(dir: &Path, plan: &Plan, force: bool) -> std::io::Result<()> {
    let writes = plan
        .changes
        .iter()
        .any(|c| !matches!(c, Change::Remove { .. }));
    let d = files::Dir::open(dir, writes)?;
    for change in &plan.changes {
        match change {
            Change::Add { name, new } | Change::Update { name, new, .. } => {
                if !force && let Some(entry) = d.entry(name)?.filter(|e| *e != files::Entry::Flows)
                {
                    return Err(std::io::Error::other(format!(
                        "{} is {}: not replaced (--force replaces it)",
                        dir.join(name).display(),
                        entry.describe()
                    )));
                }
                d.write(name, new.as_bytes())?
            }
            Change::Remove { name, .. } => d.remove(name)?,
        }
    }
    d.sync()
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
        execute(dir.path(), &p, false).expect("write");

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
        execute(dir.path(), &p, false).expect("remove");
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

    #[test]
    fn a_workflow_another_file_still_owns_is_taken_and_told() {
        let a = generated("flow-x.service", "/w/a.yaml", "x\n");
        let installed = as_installed(std::slice::from_ref(&a));
        let b = generated("flow-x.service", "/w/b.yaml", "x\n");
        // /w/a.yaml still there and not applied: b.yaml may not take its units.
        let p = plan(
            &installed,
            std::slice::from_ref(&b),
            &["/w/b.yaml".into()],
            |_| true,
        );
        assert_eq!(
            p.taken,
            [Taken {
                workflow: "x".into(),
                owner: "/w/a.yaml".into(),
                by: "/w/b.yaml".into()
            }]
        );
        // Gone (the file was moved), or applied too (it names another workflow now): fine.
        let p = plan(
            &installed,
            std::slice::from_ref(&b),
            &["/w/b.yaml".into()],
            |_| false,
        );
        assert!(p.taken.is_empty());
        let both = ["/w/a.yaml".to_string(), "/w/b.yaml".to_string()];
        assert!(plan(&installed, &[b], &both, |_| true).taken.is_empty());
        // The same file again.
        let a2 = generated("flow-x.service", "/w/a.yaml", "y\n");
        assert!(
            plan(&installed, &[a2], &["/w/a.yaml".into()], |_| true)
                .taken
                .is_empty()
        );
    }

    #[test]
    fn units_of_the_same_name_elsewhere_in_the_managers_path_are_conflicts() {
        let root = tempfile::tempdir().expect("tempdir");
        let [target, etc, lib, usr_lib] =
            ["target", "etc", "lib", "usr-lib"].map(|d| root.path().join(d));
        for d in [&target, &etc, &usr_lib] {
            fs::create_dir(d).expect("mkdir");
        }
        // `/lib` -> `/usr/lib`: looked at once.
        std::os::unix::fs::symlink(&usr_lib, &lib).expect("link");
        fs::write(usr_lib.join("flow-x.service"), "[Service]\n").expect("write");
        // flow's own, elsewhere: no conflict. The target directory: conflicts_in's business.
        fs::write(
            etc.join("flow-x.timer"),
            format!("# {HEADER_PREFIX}/w/x.yaml\n"),
        )
        .expect("write");
        fs::write(target.join("flow-x.slice"), "[Slice]\n").expect("write");
        // A script is no unit: the manager does not load it.
        fs::write(usr_lib.join("flow-x--t.sh"), "true\n").expect("write");
        let desired: Vec<GeneratedFile> = [
            "flow-x.service",
            "flow-x.timer",
            "flow-x.slice",
            "flow-x--t.sh",
        ]
        .iter()
        .map(|n| generated(n, "/w/x.yaml", ""))
        .collect();
        let dirs = [target.clone(), etc, usr_lib.clone(), lib];
        let found = conflicts_around(&dirs, &target, &desired);
        assert_eq!(
            found,
            [Conflict {
                name: "flow-x.service".into(),
                path: usr_lib.join("flow-x.service"),
                entry: files::Entry::Other,
                in_unit_dir: false,
            }]
        );
        let here = conflicts_in(&target, &desired).expect("read");
        assert_eq!(
            here,
            [Conflict {
                name: "flow-x.slice".into(),
                path: target.join("flow-x.slice"),
                entry: files::Entry::Other,
                in_unit_dir: true,
            }]
        );
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

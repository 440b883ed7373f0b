//! `flow plan`, `flow apply`, `flow remove`: compile, compare with what is installed, write
//! atomically, reload systemd once, and keep timers in step with schedules.

use std::path::{Path, PathBuf};

use clap::Args;

use super::exit::{CliError, Exit};
use super::workflows;
use crate::compiler::model::Schedule;
use crate::compiler::names;
use crate::install::{self, Change, Plan};
use crate::systemd::{Bus, Systemd};

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Install into this directory instead of the system (or user) unit directory.
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Write files only: do not reload systemd nor touch timers (for packaging and tests).
    #[arg(long)]
    pub no_reload: bool,
    /// Use the calling user's own manager, ~/.config/flow/workflows and ~/.config/systemd/user.
    #[arg(long)]
    pub user: bool,
    /// Do not look on the machine for the files and accounts workflows name (`flow try`
    /// has looked already, and names the file as the user wrote it).
    #[arg(long, hide = true)]
    pub no_host_check: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Workflow files or directories (default: the workflows directory).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Replace files flow did not generate that hold a unit's name (a hand-written unit, a
    /// link), and install beside units of that name elsewhere in systemd's search path.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object for scripts (docs/json.md): the changes, conflicts and
    /// warnings; with apply, also what was done.
    #[arg(long)]
    pub json: bool,
}

/// The systemd operations apply needs; the real one talks D-Bus.
pub trait Manager {
    fn reload(&self) -> Result<(), String>;
    fn stop_and_disable(&self, units: &[String]) -> Result<(), String>;
    fn enable(&self, units: &[String]) -> Result<(), String>;
    fn start(&self, units: &[String]) -> Result<(), String>;
    /// Restarts those of `units` that are running; returns those that were not (paused).
    fn restart_running(&self, units: &[String]) -> Result<Vec<String>, String>;
    /// Why a run of the workflow is going, if one is.
    fn going(&self, wf: &crate::runs::InstalledWorkflow, runtime: &Path) -> Option<String>;
}

struct Prepared {
    dir: PathBuf,
    /// What is installed in `dir` now, before the plan.
    installed: std::collections::BTreeMap<String, install::InstalledFile>,
    plan: Plan,
    /// Timers that should be enabled and running, and whether to start them now
    /// (`@reboot` timers are only enabled: starting one now would run the workflow now).
    timers: Vec<(String, bool)>,
    /// What the workflows name that this machine lacks, rendered.
    warnings: Vec<String>,
}

fn prepare(args: &InstallArgs, verb: &str) -> Result<Prepared, CliError> {
    let user = args.target.user;
    let dir = args
        .target
        .unit_dir
        .clone()
        .unwrap_or_else(|| workflows::units_dir(user));
    let paths = workflows::paths_or_default(&args.paths, user, verb)?;
    let named = workflows::expand(&paths)?;
    refuse_untrusted(&named)?;
    let files: Vec<PathBuf> = named
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect();
    let compiled = workflows::compile_all(&files, &dir).map_err(|e| match e {
        CliError::Invalid(msg) => CliError::Invalid(format!("{msg}; nothing was changed")),
        other => other,
    })?;
    let installed = install::installed(&dir)
        .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))?;
    let desired: Vec<_> = compiled
        .iter()
        .flat_map(|c| c.files.iter().cloned())
        .collect();
    let applied: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut plan = install::plan(&installed, &desired, &applied, |source| {
        Path::new(source).exists()
    });
    // Only names about to be written: a unit flow installed earlier is flow's.
    let written: Vec<_> = desired
        .iter()
        .filter(|f| plan.changes.iter().any(|c| c.name() == f.name))
        .cloned()
        .collect();
    plan.conflicts = install::conflicts_in(&dir, &written)
        .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))?;
    plan.conflicts.extend(install::conflicts_around(
        &install::manager_dirs(user),
        &dir,
        &written,
    ));
    let timers = compiled
        .iter()
        .filter_map(|c| {
            c.workflow.timer().map(|t| {
                (
                    names::timer_unit(&c.workflow.name),
                    t.schedule != Schedule::Reboot,
                )
            })
        })
        .collect();
    // `--no-host-check`: not even looked for.
    let warnings = if args.target.no_host_check {
        Vec::new()
    } else {
        compiled
            .iter()
            .flat_map(|c| {
                let shown = c.path.display().to_string();
                let mut found = install::host::this_machine(&c.workflow.host);
                if user {
                    found.extend(install::host::in_a_user_manager(
                        &c.workflow.host,
                        &install::host::is_mine,
                    ));
                }
                let (readable, plain) = install::trust::readable_env_files_here(
                    &c.workflow.host,
                    &optional_env_files(c),
                );
                found.extend(readable);
                found
                    .into_iter()
                    .map(move |d| d.render_warning(&shown, &c.text))
                    .chain(
                        plain
                            .into_iter()
                            .map(|w| format!("warning: {w}\n  --> {}\n", c.path.display())),
                    )
            })
            .collect()
    };
    Ok(Prepared {
        dir,
        installed,
        plan,
        timers,
        warnings,
    })
}

/// The `-`-prefixed `env_file`s of a workflow's tasks (the others are in its host refs).
fn optional_env_files(c: &workflows::Compiled) -> Vec<String> {
    c.workflow
        .tasks
        .iter()
        .flat_map(|t| t.env_files.iter())
        .filter_map(|f| f.strip_prefix('-'))
        .map(str::to_string)
        .collect()
}

/// Workflow files that others than root (or, not as root, the caller) could change: each
/// said, and nothing applied. A workflow's tasks run as the manager's user.
fn refuse_untrusted(files: &[PathBuf]) -> Result<(), CliError> {
    let trusted = install::trust::Trusted::caller();
    let untrusted: Vec<_> = files
        .iter()
        .filter_map(|f| install::trust::check_here(f, &trusted).err())
        .collect();
    if untrusted.is_empty() {
        return Ok(());
    }
    for u in &untrusted {
        eprintln!("error: {u}\n");
    }
    let n = untrusted.len();
    Err(CliError::Invalid(format!(
        "{n} workflow file{} cannot be trusted; nothing was changed",
        if n == 1 { "" } else { "s" }
    )))
}

/// Workflows another file made, and names files flow did not generate hold: said, each
/// with what to do. The names held are no error with `force` (`flow plan` passes it: its
/// summary shows them).
fn refuse_conflicts(plan: &Plan, force: bool) -> Result<(), CliError> {
    for t in &plan.taken {
        eprintln!(
            "error: workflow `{}` is installed from another file\n  --> {} (installed)\n  --> {}\n   = help: workflow names come from the file name or `name:`; rename one, or `flow remove {}` first\n",
            t.workflow, t.owner, t.by, t.workflow
        );
    }
    if !plan.taken.is_empty() {
        let n = plan.taken.len();
        return Err(CliError::Invalid(format!(
            "{n} workflow{} installed from another file; nothing was changed",
            if n == 1 { " is" } else { "s are" }
        )));
    }
    if force || plan.conflicts.is_empty() {
        return Ok(());
    }
    for c in &plan.conflicts {
        eprintln!("error: {}\n", conflict_message(c));
    }
    let n = plan.conflicts.len();
    Err(CliError::Invalid(format!(
        "{n} file{} flow did not generate hold{} the names of its units; nothing was changed (--force replaces them)",
        if n == 1 { "" } else { "s" },
        if n == 1 { "s" } else { "" }
    )))
}

/// What a conflict is, and what to do.
fn conflict_message(c: &install::Conflict) -> String {
    let what = c.entry.describe();
    if c.in_unit_dir {
        format!(
            "{} is {what}, where flow would write its unit {}: flow does not replace it\n   = help: move it away, or rename the workflow; `--force` replaces it (a link itself, not where it points)",
            c.path.display(),
            c.name
        )
    } else {
        format!(
            "{} is {what}, with the name of a unit flow would install: systemd loads only one of them\n   = help: rename the workflow; `--force` installs it all the same",
            c.path.display()
        )
    }
}

/// Warnings go first: they are about the files about to be applied.
fn print_warnings(p: &Prepared) {
    for w in &p.warnings {
        eprintln!("{w}");
    }
}

/// `plan --json` and `apply --json`: what changes, file by file, and what holds a name.
fn plan_json(p: &Prepared) -> serde_json::Value {
    let workflows: Vec<serde_json::Value> = [
        ("add", &p.plan.added),
        ("change", &p.plan.changed),
        ("remove", &p.plan.removed),
    ]
    .into_iter()
    .flat_map(|(change, set)| {
        set.iter()
            .map(move |wf| serde_json::json!({"workflow": wf, "change": change}))
    })
    .collect();
    let files: Vec<serde_json::Value> = p
        .plan
        .changes
        .iter()
        .map(|c| {
            let change = match c {
                Change::Add { .. } => "add",
                Change::Update { .. } => "update",
                Change::Remove { .. } => "remove",
            };
            let conflicts: Vec<serde_json::Value> = p
                .plan
                .conflicts
                .iter()
                .filter(|k| k.name == c.name())
                .map(|k| {
                    serde_json::json!({
                        "path": k.path.display().to_string(),
                        "what": k.entry.describe(),
                        "in_unit_dir": k.in_unit_dir,
                    })
                })
                .collect();
            serde_json::json!({
                "name": c.name(),
                "workflow": names::workflow_of_file(c.name()),
                "change": change,
                "conflicts": conflicts,
            })
        })
        .collect();
    serde_json::json!({
        "unit_dir": p.dir.display().to_string(),
        "workflows": workflows,
        "files": files,
        "warnings": p.warnings.iter().map(|w| w.trim_end()).collect::<Vec<_>>(),
    })
}

/// What `apply --json` adds to the plan: whether it wrote, reloaded, and which workflows
/// stay paused.
fn applied_json(
    p: &Prepared,
    written: bool,
    reloaded: bool,
    paused: &[String],
) -> serde_json::Value {
    let mut v = plan_json(p);
    v["written"] = written.into();
    v["reloaded"] = reloaded.into();
    v["paused"] = paused
        .iter()
        .filter_map(|t| names::workflow_of_file(t).map(|w| w.to_string()))
        .collect::<Vec<_>>()
        .into();
    v
}

pub fn plan(args: &InstallArgs) -> Result<Exit, CliError> {
    let p = prepare(args, "plan")?;
    print_warnings(&p);
    // Workflows another file made: apply would refuse them, so the plan is an error too.
    refuse_conflicts(&p.plan, true)?;
    if args.json {
        super::output::json_line(&plan_json(&p));
        return Ok(Exit::Success);
    }
    if p.plan.is_empty() {
        println!(
            "Nothing to change: the units in {} match the workflows.",
            p.dir.display()
        );
        return Ok(Exit::Success);
    }
    print_summary(&p.plan);
    if !p.plan.conflicts.is_empty() && !args.force {
        println!(
            "`flow apply` refuses the conflicts (!) above: move those files away, rename the workflow, or apply with --force"
        );
    }
    println!();
    for change in &p.plan.changes {
        print!("{}", install::diff(change));
    }
    Ok(Exit::Success)
}

fn print_summary(plan: &Plan) {
    for (label, set) in [
        ("add", &plan.added),
        ("change", &plan.changed),
        ("remove", &plan.removed),
    ] {
        for wf in set {
            println!("{label:>6} workflow {wf}");
        }
    }
    for c in &plan.changes {
        let verb = match c {
            Change::Add { .. } => "+",
            Change::Update { .. } => "~",
            Change::Remove { .. } => "-",
        };
        let conflicts: Vec<_> = plan
            .conflicts
            .iter()
            .filter(|k| k.name == c.name())
            .collect();
        if conflicts.is_empty() {
            println!("  {verb} {}", c.name());
        }
        for k in conflicts {
            let why = if k.in_unit_dir {
                "flow did not generate it"
            } else {
                "systemd loads only one of the two"
            };
            println!(
                "  ! {}  conflicts with {}, {} ({why})",
                c.name(),
                k.path.display(),
                k.entry.describe()
            );
        }
    }
}

pub fn apply(args: &InstallArgs) -> Result<Exit, CliError> {
    let p = prepare(args, "apply")?;
    print_warnings(&p);
    refuse_conflicts(&p.plan, args.force)?;
    if args.target.user && !p.timers.is_empty() && !lingering() {
        eprintln!(
            "note: your own manager, and with it your workflows' timers, runs only while you \
             are logged in; `loginctl enable-linger` keeps it running"
        );
    }
    let manager = if args.target.no_reload {
        None
    } else {
        Some(connect(args.target.user)?)
    };
    if p.plan.is_empty() {
        if args.json {
            super::output::json_line(&applied_json(&p, false, false, &[]));
        } else {
            println!(
                "Nothing to change: the units in {} match the workflows.",
                p.dir.display()
            );
        }
        if let Some(m) = &manager
            && args.target.user
        {
            start_user_supervisor(m.as_ref(), args.json);
        }
        return Ok(Exit::Success);
    }
    if !args.json {
        print_summary(&p.plan);
    }
    if let Some(m) = &manager {
        note_runs_going(m.as_ref(), &p, args.target.user);
    }
    let timers_with = |pred: fn(&Change) -> bool| -> Vec<String> {
        p.plan
            .changes
            .iter()
            .filter(|c| pred(c) && c.name().ends_with(".timer"))
            .map(|c| c.name().to_string())
            .collect()
    };
    // Timers that are going away stop before their files do, and so does all of a
    // workflow that is going away: a run of it stops. (A task removed from a workflow that
    // stays is left to finish a run going, which started with it.)
    let removed: Vec<String> = p
        .plan
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Remove { .. }))
        .map(|c| c.name())
        .filter(|n| {
            n.ends_with(".timer")
                || (names::is_unit(n)
                    && names::workflow_of_file(n).is_some_and(|wf| p.plan.removed.contains(&*wf)))
        })
        .map(str::to_string)
        .collect();
    if let Some(m) = &manager
        && !removed.is_empty()
    {
        m.stop_and_disable(&removed).map_err(CliError::System)?;
        let runtime = crate::runs::trigger::runtime_dir(args.target.user);
        for wf in &p.plan.removed {
            crate::runs::trigger::forget(&runtime, wf);
        }
    }
    install::execute(&p.dir, &p.plan, args.force)
        .map_err(|e| CliError::io(format!("cannot write units in {}", p.dir.display()), e))?;
    let Some(m) = manager else {
        if args.json {
            super::output::json_line(&applied_json(&p, true, false, &[]));
        } else {
            println!("Files written; systemd was not reloaded (--no-reload).");
        }
        return Ok(Exit::Success);
    };
    // New timers are enabled and started (`@reboot` ones only enabled: starting one now
    // would run the workflow now). Changed timers restart to pick up the new schedule;
    // unchanged ones are left alone, so a paused workflow stays paused. Enabling works on
    // the files, so one reload afterwards shows the manager both the units and the links.
    let added = timers_with(|c| matches!(c, Change::Add { .. }));
    let changed = timers_with(|c| matches!(c, Change::Update { .. }));
    let starts_now = |t: &String| p.timers.iter().any(|(name, now)| name == t && *now);
    if !added.is_empty() {
        m.enable(&added).map_err(CliError::System)?;
    }
    m.reload().map_err(CliError::System)?;
    let start: Vec<String> = added.iter().filter(|t| starts_now(t)).cloned().collect();
    m.start(&start).map_err(CliError::System)?;
    // A paused workflow (its timer stopped by `flow pause`) stays paused.
    let restart: Vec<String> = changed.iter().filter(|t| starts_now(t)).cloned().collect();
    let paused = m.restart_running(&restart).map_err(CliError::System)?;
    if args.json {
        super::output::json_line(&applied_json(&p, true, true, &paused));
        if args.target.user {
            start_user_supervisor(m.as_ref(), args.json);
        }
        return Ok(Exit::Success);
    }
    println!("Applied; systemd reloaded.");
    for timer in paused {
        let name = names::workflow_of_file(&timer).unwrap_or_default();
        println!(
            "{name} is paused: its new schedule starts with `flow resume {name}{}`.",
            super::user_flag(args.target.user)
        );
    }
    if args.target.user {
        start_user_supervisor(m.as_ref(), args.json);
    }
    Ok(Exit::Success)
}

/// A run going of a workflow that changes or goes: said, with what becomes of it.
fn note_runs_going(m: &dyn Manager, p: &Prepared, user: bool) {
    let runtime = crate::runs::trigger::runtime_dir(user);
    for name in p.plan.changed.iter().chain(&p.plan.removed) {
        let Some(wf) = crate::runs::installed_workflow(&p.installed, name) else {
            continue;
        };
        let Some(why) = m.going(&wf, &runtime) else {
            continue;
        };
        let what = if p.plan.removed.contains(name) {
            "it is stopped now"
        } else {
            "the tasks it has yet to start run as now applied, and a task the workflow no longer has is canceled"
        };
        eprintln!("note: a run of {name} is going ({why}): {what}");
    }
}

/// Whether logind keeps the calling user's manager running when the user is not logged
/// in (`loginctl enable-linger`): it marks such users with a file named after them.
fn lingering() -> bool {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .is_some_and(|u| Path::new("/var/lib/systemd/linger").join(u.name).exists())
}

/// The user's own supervisor (retries, deadlines, history), enabled and started with the
/// first `flow apply --user` where the package installed its unit. Without that unit (flow
/// not installed from the package) a note says how to run one.
/// With `json`, what it says goes to stderr: stdout holds the one JSON object.
fn start_user_supervisor(m: &dyn Manager, json: bool) {
    const UNIT: &str = "flow-supervisor.service";
    if crate::runs::follow::supervisor_listens(&crate::runs::trigger::runtime_dir(true)) {
        return;
    }
    let unit = [UNIT.to_string()];
    if let Err(e) = m.enable(&unit) {
        let flow = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "flow".into());
        eprintln!(
            "note: no supervisor runs for your manager, and its unit cannot be enabled ({e}; the package installs it): runs get no retries, deadlines or history until one runs, e.g. `systemd-run --user --unit=flow-supervisor -p Type=notify {flow} supervise --user`"
        );
        return;
    }
    match m.start(&unit) {
        Ok(()) => {
            let said = format!(
                "Started your supervisor ({UNIT} in your manager) for retries, deadlines and history."
            );
            if json {
                eprintln!("{said}");
            } else {
                println!("{said}");
            }
        }
        Err(e) => eprintln!("warning: cannot start {UNIT} in your manager: {e}"),
    }
}

pub fn remove(name: &str, target: &TargetArgs) -> Result<Exit, CliError> {
    let dir = target
        .unit_dir
        .clone()
        .unwrap_or_else(|| workflows::units_dir(target.user));
    let installed = install::installed(&dir)
        .map_err(|e| CliError::io(format!("cannot read {}", dir.display()), e))?;
    let plan = install::plan_removal(&installed, name);
    // The YAML file the units came from, named in their header.
    let source = installed
        .get(&names::run_unit(name))
        .map(|f| f.source.clone())
        .filter(|s| !s.is_empty() && Path::new(s).exists());
    if plan.is_empty() {
        return Err(super::installed::not_installed(
            &installed,
            name,
            &dir,
            target.user,
        ));
    }
    let manager = if target.no_reload {
        None
    } else {
        Some(connect(target.user)?)
    };
    if let Some(m) = &manager {
        let units: Vec<String> = plan
            .changes
            .iter()
            .map(|c| c.name().to_string())
            .filter(|n| names::is_unit(n))
            .collect();
        m.stop_and_disable(&units).map_err(CliError::System)?;
        crate::runs::trigger::forget(&crate::runs::trigger::runtime_dir(target.user), name);
    }
    install::execute(&dir, &plan, false)
        .map_err(|e| CliError::io(format!("cannot remove units in {}", dir.display()), e))?;
    if let Some(m) = &manager {
        m.reload().map_err(CliError::System)?;
    }
    print_summary(&plan);
    let u = super::user_flag(target.user);
    match source {
        Some(source) => println!(
            "Removed workflow {name}. Its YAML file {source} is still in place: delete it too, or the next `flow apply{u}` brings it back."
        ),
        None => println!("Removed workflow {name}."),
    }
    Ok(Exit::Success)
}

pub fn connect(user: bool) -> Result<Box<dyn Manager>, CliError> {
    Systemd::connect(Bus::manager(user))
        .map(|sd| Box::new(sd) as Box<dyn Manager>)
        .map_err(|e| CliError::System(e.to_string()))
}

impl Manager for Systemd {
    fn reload(&self) -> Result<(), String> {
        Systemd::reload(self).map_err(|e| e.to_string())
    }

    fn stop_and_disable(&self, units: &[String]) -> Result<(), String> {
        for unit in units {
            self.stop_unit(unit).map_err(|e| e.to_string())?;
            // A task stopped mid-run (or failed before) would stay loaded as `failed`,
            // listed by `systemctl --failed` long after its file is gone. Not loaded or
            // not failed: nothing to clear.
            let _ = self.reset_failed_unit(unit);
        }
        let timers: Vec<String> = units
            .iter()
            .filter(|u| u.ends_with(".timer"))
            .cloned()
            .collect();
        if !timers.is_empty() {
            self.disable_unit_files(&timers)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn enable(&self, units: &[String]) -> Result<(), String> {
        self.enable_unit_files(units)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn start(&self, units: &[String]) -> Result<(), String> {
        for unit in units {
            self.start_unit(unit).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn going(&self, wf: &crate::runs::InstalledWorkflow, runtime: &Path) -> Option<String> {
        crate::runs::trigger::going(self, wf, runtime)
            .ok()
            .flatten()
    }

    fn restart_running(&self, units: &[String]) -> Result<Vec<String>, String> {
        let mut stopped = Vec::new();
        for unit in units {
            let state = self.unit_state(unit).map_err(|e| e.to_string())?;
            if state.active_state != "active" {
                stopped.push(unit.clone());
                continue;
            }
            self.stop_unit(unit).map_err(|e| e.to_string())?;
            self.start_unit(unit).map_err(|e| e.to_string())?;
        }
        Ok(stopped)
    }
}

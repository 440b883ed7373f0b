//! The `flow` command line: argument definitions here, one module per command.

mod cancel;
mod compile;
mod db;
mod docs;
mod exit;
mod graph;
mod history;
mod install;
mod installed;
mod list;
mod logs;
mod output;
mod pause;
mod retry;
mod run;
mod shown;
mod signals;
mod slot;
mod stats;
mod status;
mod supervise;
mod trigger;
mod try_run;
mod validate;
pub mod workflows;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use exit::Exit;

/// Compile YAML workflows into systemd units and run them with systemd.
#[derive(Debug, Parser)]
#[command(name = "flow", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  a workflow is invalid, or a run did not succeed (or, by `overlap: skip`, did not start)
  2  the command line is wrong
  3  the system refused: a file could not be read or written, systemd could not be reached
  4  no such workflow or run: not installed, nothing recorded
  130  interrupted (Ctrl-C, SIGTERM) during `flow try`";

/// Where workflows and units live: the system manager's places, or a user's own.
#[derive(Debug, Clone, Args)]
pub struct Scope {
    /// Use the calling user's own systemd manager and ~/.config/flow/workflows.
    #[arg(long, global = true)]
    pub user: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files and report every problem; exit 1 if any is invalid.
    Validate {
        /// Files or directories (default: the workflows directory).
        paths: Vec<PathBuf>,
        /// Print one JSON object for scripts and editors: each file, and each problem with
        /// its code, file, line and column (see docs/json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Write the unit files workflows compile to into a directory, or print them with --json;
    /// nothing else.
    Compile {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Directory to write the units into.
        #[arg(long, short, required_unless_present = "json")]
        out: Option<PathBuf>,
        /// Print the units as one JSON object (see docs/json.md); without --out, write
        /// nothing, and make the units for /etc/systemd/system.
        #[arg(long)]
        json: bool,
    },
    /// Show what `apply` would change: workflows added, changed, removed, and a diff per unit.
    Plan(install::InstallArgs),
    /// Install the units of every workflow, remove those of deleted workflows, reload systemd.
    Apply(install::InstallArgs),
    /// Stop and remove one workflow's units.
    Remove {
        /// The workflow's name.
        name: String,
        #[command(flatten)]
        target: install::TargetArgs,
    },
    /// Run a workflow end to end in a throwaway systemd (needs root; the host is not touched).
    Try {
        /// The workflow file [default: a built-in example, a nightly backup of /etc].
        file: Option<PathBuf>,
        /// Leave the sandbox running afterwards and print how to enter it.
        #[arg(long)]
        keep: bool,
        /// `private`: the sandbox has a network of its own with loopback only (no internet,
        /// none of the host's listening services). `host`: share the host's network; tasks
        /// then reach everything the host can, its loopback services included.
        #[arg(long, value_enum, default_value_t = TryNetwork::Private)]
        network: TryNetwork,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// What a workflow's trigger unit runs: the overlap rule, then a run.
    #[command(hide = true)]
    Trigger {
        name: String,
        /// The manager's runtime directory (`%t`).
        #[arg(long, value_name = "DIR")]
        runtime_dir: PathBuf,
        /// Where the workflow's units are installed.
        #[arg(long, value_name = "DIR")]
        unit_dir: PathBuf,
    },
    /// Write the flow(1) man page, generated from these definitions, into a directory.
    #[command(hide = true)]
    Manpage {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Start a run of an installed workflow. When one is going, the workflow's `overlap`
    /// rule decides: skip (exit 1, nothing started), queue, or replace.
    Run {
        name: String,
        /// Follow the run live and exit with its result (0 succeeded, 1 failed). With the
        /// supervisor running, retries included, and the run's number in the history.
        /// Ctrl-C stops following, not the run (`flow cancel` stops it).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        at: installed::Where,
    },
    /// Show the current or last run's tasks and their states, read from systemd; with RUN,
    /// that run's attempts from the history (`--json` prints the same object for both).
    /// Exits 1 when the run shown did not succeed (0 while it is going or when none has
    /// run), 4 for an unknown workflow or run.
    Status {
        name: String,
        /// A run number from `flow history`.
        run: Option<i64>,
        #[command(flatten)]
        at: installed::Where,
        #[command(flatten)]
        db: db::DbArgs,
    },
    /// Show the journal lines of the last run's tasks; with RUN, exactly that run's
    /// (`--json`: one object per line, with its run and attempt).
    Logs {
        name: String,
        /// A run number from `flow history`.
        run: Option<i64>,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
        /// Only this attempt of the task (with RUN).
        #[arg(long, requires = "run")]
        attempt: Option<u32>,
        #[command(flatten)]
        db: db::DbArgs,
        /// Keep printing new lines as they come.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines (with --follow: then every new line).
        #[arg(long, short = 'n', value_name = "N")]
        lines: Option<usize>,
        #[command(flatten)]
        at: installed::Where,
    },
    /// List installed workflows with their schedule, next run and last result.
    ///
    /// When systemd cannot be reached, NEXT and LAST read `?` and flow exits 3.
    ///
    /// A workflow whose YAML file was edited (or removed) since `flow apply` is marked `*`:
    /// its runs still use the units applied before. `flow run` and `flow status` say so too.
    List {
        #[command(flatten)]
        at: installed::Where,
    },
    /// Stop a run and every task still running or waiting, and a run queued after it
    /// (`overlap: queue`).
    Cancel {
        name: String,
        #[command(flatten)]
        at: installed::Where,
    },
    /// Stop a workflow's timer until `resume`.
    Pause {
        name: String,
        #[command(flatten)]
        at: installed::Where,
    },
    /// Start a paused workflow's timer again.
    Resume {
        name: String,
        #[command(flatten)]
        at: installed::Where,
    },
    /// Record run history and drive retries and deadlines (flow-supervisor.service).
    Supervise(supervise::SuperviseArgs),
    /// List recorded runs, newest first.
    History {
        /// Only this workflow.
        name: Option<String>,
        /// Only runs that failed, timed out or were canceled.
        #[arg(long)]
        failed: bool,
        /// Only runs that started since: a duration back (`2h`, `7d`) or a local date and time
        /// (`2026-03-01`, `2026-03-01 14:30`).
        #[arg(long)]
        since: Option<String>,
        /// At most this many runs.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: u32,
        /// Print JSON for scripts: one object on one line (/usr/share/doc/flow/json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: db::HistoryArgs,
    },
    /// Run the tasks of a failed run that did not succeed again (a new run, trigger `retry`).
    Retry {
        name: String,
        /// The run (default: the last one; only the last run can be retried).
        run: Option<i64>,
        /// Print JSON for scripts: what was retried, and the new run's number.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: db::HistoryArgs,
    },
    /// Success rate and p50/p95 duration per task, and the last failures.
    Stats {
        /// Only this workflow.
        name: Option<String>,
        /// Print JSON for scripts: one object on one line (/usr/share/doc/flow/json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: db::HistoryArgs,
    },
    /// Print a workflow's task graph.
    Graph {
        /// A workflow name (from the workflows directory) or a file.
        workflow: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        #[command(flatten)]
        scope: Scope,
    },
}

/// The network of `flow try`'s sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TryNetwork {
    Private,
    Host,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

pub fn main() -> ExitCode {
    // The slot gate runs before every task of a `max_parallel` workflow: skip clap for it.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "slot") {
        return match slot::run(&args[2..]) {
            Ok(never) => match never {},
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code().into()
            }
        };
    }
    // Rust ignores SIGPIPE, so printing into a closed pipe (`flow history | head`) would
    // panic; like other command-line tools, end quietly instead. (Not for `slot` above: the
    // task it becomes keeps what systemd set, which ignores SIGPIPE.)
    // SAFETY: before any thread exists; the default action needs no handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse_from(user_after_command(args));
    let result = match cli.command {
        Command::Validate { paths, json, scope } => validate::run(&paths, &scope, json),
        Command::Compile { paths, out, json } => compile::run(&paths, out.as_deref(), json),
        Command::Plan(args) => install::plan(&args),
        Command::Apply(args) => install::apply(&args),
        Command::Remove { name, target } => install::remove(&name, &target),
        Command::Try {
            file,
            keep,
            network,
        } => try_run::run(file.as_deref(), keep, network == TryNetwork::Host),
        Command::Completions { shell } => docs::completions(shell),
        Command::Manpage { out } => docs::manpage(&out),
        Command::Run { name, wait, at } => run::run(&name, wait, &at),
        Command::Status { name, run, at, db } => {
            status::status(&name, run, &at, &db.for_user(at.user))
        }
        Command::Logs {
            name,
            run,
            task,
            attempt,
            follow,
            lines,
            at,
            db,
        } => logs::logs(
            &name,
            run,
            logs::LogsWanted {
                task: task.as_deref(),
                attempt,
                lines,
                follow,
            },
            &at,
            &db.for_user(at.user),
        ),
        Command::Supervise(args) => supervise::supervise(&args),
        Command::History {
            name,
            failed,
            since,
            limit,
            json,
            db,
        } => history::history(
            name.as_deref(),
            failed,
            since.as_deref(),
            json,
            limit,
            &db.db(),
        ),
        Command::Retry {
            name,
            run,
            json,
            db,
        } => retry::retry(&name, run, json, &db.db()),
        Command::Stats { name, json, db } => stats::stats(name.as_deref(), json, &db.db()),
        Command::List { at } => list::list(&at),
        Command::Cancel { name, at } => cancel::cancel(&name, &at),
        Command::Trigger {
            name,
            runtime_dir,
            unit_dir,
        } => trigger::trigger_unit(&name, &runtime_dir, &unit_dir),
        Command::Pause { name, at } => pause::pause(&name, false, &at),
        Command::Resume { name, at } => pause::pause(&name, true, &at),
        Command::Graph {
            workflow,
            format,
            scope,
        } => graph::run(&workflow, format, &scope),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code().into()
        }
    }
}

/// `flow --user list` means `flow list --user`: every command that knows `--user` takes it
/// after its name (clap's global flags cannot be shared by a flattened group), so the flag is
/// moved there when it stands before the command. A command without `--user` then rejects
/// it as usual.
fn user_after_command(args: Vec<String>) -> Vec<String> {
    let Some(command) = args.iter().skip(1).position(|a| !a.starts_with('-')) else {
        return args;
    };
    let command = command + 1;
    let (before, after) = args.split_at(command);
    if !before.iter().any(|a| a == "--user") {
        return args;
    }
    let mut moved: Vec<String> = before.iter().filter(|a| *a != "--user").cloned().collect();
    let mut after = after.iter().cloned();
    moved.extend(after.next());
    moved.push("--user".to_string());
    moved.extend(after);
    moved
}

/// What to add to a command a message suggests, for a user's own manager: ` --user`.
pub(crate) fn user_flag(user: bool) -> &'static str {
    if user { " --user" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::user_after_command;

    fn moved(args: &[&str]) -> Vec<String> {
        user_after_command(args.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn user_moves_after_the_command() {
        assert_eq!(
            moved(&["flow", "--user", "list"]),
            ["flow", "list", "--user"]
        );
        assert_eq!(
            moved(&["flow", "--user", "run", "x", "--wait"]),
            ["flow", "run", "--user", "x", "--wait"]
        );
        assert_eq!(
            moved(&["flow", "list", "--user"]),
            ["flow", "list", "--user"]
        );
        assert_eq!(moved(&["flow", "--user"]), ["flow", "--user"]);
        assert_eq!(moved(&["flow"]), ["flow"]);
    }
}

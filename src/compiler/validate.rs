//! Resolve `needs` to tasks and check the graph: unknown names (with a suggestion), a task
//! needing itself, duplicates, and cycles (printed as a path `a → b → c → a`).

use std::collections::{HashMap, HashSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::diagnostic::{Code, Diagnostic};
use super::model::{Command, Hardening, Task, When};
use super::parse::Parsed;
use super::suggest;
use super::yaml::Span;

/// How many unknown names in `needs` get a "did you mean" suggestion: each costs a look at
/// every task, so a file of thousands of unknown names would take quadratic time.
const MAX_SUGGESTIONS: usize = 50;

/// How many task names a help lists when there is no close one.
const MAX_LISTED: usize = 10;

/// Fill `needs` of every task with indices; report every problem.
pub fn resolve(parsed: &mut Parsed, diags: &mut Vec<Diagnostic>) {
    let tasks = &parsed.workflow.tasks;
    let mut index: HashMap<&str, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(tasks.len(), Default::default());
    index.extend(tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)));
    let declared: HashSet<&str, foldhash::fast::RandomState> =
        parsed.declared.iter().copied().collect();
    // `needed_by[j] == i + 1`: task `i` needs `j` already (a repeat is reported).
    let mut needed_by = vec![0usize; tasks.len()];
    let mut suggestions = 0;
    let mut resolved: Vec<Vec<usize>> = Vec::with_capacity(parsed.needs.len());
    for (i, needs) in parsed.needs.iter().enumerate() {
        let me = parsed.workflow.tasks[i].name.as_str();
        let mut ups = Vec::with_capacity(needs.len());
        for (name, span) in needs {
            match index.get(name) {
                Some(&j) if j == i => diags.push(
                    Diagnostic::new(
                        Code::NeedsItself,
                        *span,
                        format!("task `{me}` needs itself"),
                    )
                    .help("remove it from its own `needs`"),
                ),
                Some(&j) if needed_by[j] == i + 1 => diags.push(
                    Diagnostic::new(
                        Code::DuplicateNeed,
                        *span,
                        format!("task `{me}` needs `{name}` twice"),
                    )
                    .help("list each task once"),
                ),
                Some(&j) => {
                    needed_by[j] = i + 1;
                    ups.push(j)
                }
                None if declared.contains(name) => {}
                None => {
                    let others = || {
                        parsed
                            .workflow
                            .tasks
                            .iter()
                            .map(|t| t.name.as_str())
                            .filter(|n| *n != me)
                    };
                    suggestions += 1;
                    let near = if suggestions <= MAX_SUGGESTIONS {
                        suggest::nearest(name, others())
                    } else {
                        None
                    };
                    let help = match near {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => {
                            let all = &parsed.workflow.tasks;
                            let listed = all
                                .iter()
                                .take(MAX_LISTED)
                                .map(|t| format!("`{}`", t.name))
                                .collect::<Vec<_>>()
                                .join(", ");
                            match all.len() {
                                n if n <= MAX_LISTED => format!("the tasks are {listed}"),
                                n => format!("the tasks are {listed} and {} more", n - MAX_LISTED),
                            }
                        }
                    };
                    diags.push(
                        Diagnostic::new(
                            Code::UnknownTask,
                            *span,
                            format!(
                                "task `{me}` needs `{name}`, which is not a task of this workflow"
                            ),
                        )
                        .help(help),
                    );
                }
            }
        }
        resolved.push(ups);
    }
    for (task, ups) in parsed.workflow.tasks.iter_mut().zip(resolved) {
        task.needs = ups;
    }
    if has_cycle(&parsed.workflow.tasks) {
        report_cycles(parsed, diags);
    }
    // Sizes matter once everything else is right (a file of errors is not emitted).
    if diags.is_empty() {
        check_sizes(parsed, diags);
    }
}

/// Largest total of the upstream names an `on_failure` task's check gets as arguments:
/// far below what the kernel takes for a command line (a quarter of the stack limit, 2 MiB
/// by default), and below systemd's 1 MiB limit on the unit file's line.
pub const MAX_CONDITION_BYTES: usize = 256 * 1024;

/// Largest size of a workflow's units, estimated before they are written. Everything of a
/// workflow's `env`, `env_file` and `defaults` is copied into the unit of each task, so a
/// file of a few MiB could otherwise make gigabytes of units.
pub const MAX_UNITS_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of a task's unit that do not depend on its values (keys, header), and of the
/// hardening presets: the largest of each, rounded up.
const TASK_UNIT_FIXED: usize = 1024;
const HARDENING_BYTES: usize = 512;

/// Refuse what would make units too large to write or a check too long to run.
fn check_sizes(parsed: &Parsed, diags: &mut Vec<Diagnostic>) {
    let wf = &parsed.workflow;
    let unit_name = |t: &Task| wf.name.len() + t.name.len() + 16;
    let mut total = 0usize;
    let mut reported_total = false;
    for (i, task) in wf.tasks.iter().enumerate() {
        let span = parsed.task_spans.get(i).copied();
        if task.when == When::OnFailure {
            let args: usize = task
                .needs
                .iter()
                .map(|&up| wf.tasks[up].name.len() + 3)
                .sum();
            if args > MAX_CONDITION_BYTES {
                diags.push(
                    Diagnostic::new(
                        Code::TooLarge,
                        span,
                        format!(
                            "task `{}` needs {} tasks whose names add up to {} KiB: an `on_failure` task can wait for at most {} KiB of names",
                            task.name,
                            task.needs.len(),
                            args / 1024,
                            MAX_CONDITION_BYTES / 1024
                        ),
                    )
                    .help("give the tasks shorter names, or let this task need fewer of them (e.g. one task that needs them all)"),
                );
            }
        }
        let command = match &task.command {
            Command::Shell(script) => script.len(),
            Command::Exec(argv) => argv.iter().map(|a| a.len() + 3).sum(),
        };
        let size = TASK_UNIT_FIXED
            + if task.hardening == Hardening::None {
                0
            } else {
                HARDENING_BYTES
            }
            + 2 * task.description.as_ref().map_or(0, String::len)
            // Named by the run unit and the begin unit.
            + 2 * (unit_name(task) + 8)
            + command
            + task.env.iter().map(|(k, v)| k.len() + v.len() + 16).sum::<usize>()
            + task.env_files.iter().map(|f| f.len() + 18).sum::<usize>()
            + task.service.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>()
            + task
                .needs
                .iter()
                .map(|&up| 3 * unit_name(&wf.tasks[up]) + 64)
                .sum::<usize>();
        total = total.saturating_add(size);
        if total > MAX_UNITS_BYTES && !reported_total {
            reported_total = true;
            diags.push(
                Diagnostic::new(
                    Code::TooLarge,
                    span,
                    format!(
                        "the units of this workflow would be larger than {} MiB from this task on",
                        MAX_UNITS_BYTES >> 20
                    ),
                )
                .help("the workflow's `env`, `env_file` and `defaults` are written into every task's unit: keep large values in a file (`env_file`), or split the workflow"),
            );
        }
    }
}

/// Whether the `needs` of `tasks` form a cycle: Kahn's algorithm, which takes tasks that
/// no remaining task needs until none is left (no cycle) or none can be taken (a cycle).
/// Linear, and without the per-task allocations of the full strongly-connected-components
/// search, which runs only when this finds a cycle.
fn has_cycle(tasks: &[Task]) -> bool {
    let mut needed_by = vec![0usize; tasks.len()];
    for task in tasks {
        for &up in &task.needs {
            needed_by[up] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..tasks.len()).filter(|&i| needed_by[i] == 0).collect();
    let mut taken = 0;
    while let Some(i) = ready.pop() {
        taken += 1;
        for &up in &tasks[i].needs {
            needed_by[up] -= 1;
            if needed_by[up] == 0 {
                ready.push(up);
            }
        }
    }
    taken < tasks.len()
}

fn report_cycles(parsed: &Parsed, diags: &mut Vec<Diagnostic>) {
    let tasks = &parsed.workflow.tasks;
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    // For each edge (task, upstream): the span of the name in `needs` that made it (the
    // first one: a repeated name was reported and left out), to point at cycles.
    let mut edge_span: HashMap<(usize, usize), Span> = HashMap::new();
    for (i, needs) in parsed.needs.iter().enumerate() {
        for (name, span) in needs {
            if let Some(&j) = index.get(name)
                && j != i
            {
                edge_span.entry((i, j)).or_insert(*span);
            }
        }
    }
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(tasks.len(), edge_span.len());
    let nodes: Vec<NodeIndex> = (0..tasks.len()).map(|i| graph.add_node(i)).collect();
    for (i, task) in tasks.iter().enumerate() {
        for &up in &task.needs {
            graph.add_edge(nodes[i], nodes[up], ());
        }
    }
    let mut member = vec![false; tasks.len()];
    let mut seen = vec![false; tasks.len()];
    for scc in tarjan_scc(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
        let Some(cycle) = find_cycle(tasks, &members, &mut member, &mut seen) else {
            continue;
        };
        // Print in the direction people read `needs`: a needs b needs c needs a.
        let path = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| tasks[i].name.as_str())
            .collect::<Vec<_>>()
            .join(" → ");
        let span = cycle
            .first()
            .zip(cycle.get(1))
            .and_then(|(a, b)| edge_span.get(&(*a, *b)).copied())
            .or_else(|| parsed.task_spans.get(cycle[0]).copied());
        diags.push(
            Diagnostic::new(
                Code::Cycle,
                span,
                format!("the tasks need each other in a cycle: {path}"),
            )
            .help("remove one of these `needs` so that the tasks can run in some order"),
        );
    }
}

/// A cycle through the strongly connected `members`, starting from the one first in the file.
/// `member` and `seen` are per-task scratch space, all `false` on entry and on return: a
/// walk costs the edges of the tasks it visits, not their number times the cycle's length.
fn find_cycle(
    tasks: &[Task],
    members: &[usize],
    member: &mut [bool],
    seen: &mut [bool],
) -> Option<Vec<usize>> {
    let start = *members.iter().min()?;
    for &m in members {
        member[m] = true;
    }
    let mut path = vec![start];
    seen[start] = true;
    let cycle = loop {
        let Some(&last) = path.last() else {
            break None;
        };
        let next = tasks[last]
            .needs
            .iter()
            .copied()
            .filter(|&n| member[n])
            .min_by_key(|&n| {
                // Prefer closing the cycle, then unseen nodes.
                (n != start, seen[n])
            });
        let Some(next) = next else {
            break None;
        };
        if next == start {
            break Some(path.clone());
        }
        if seen[next] {
            // Walked into a loop not through `start`: cut the path to that loop.
            break path
                .iter()
                .position(|&p| p == next)
                .map(|pos| path[pos..].to_vec());
        }
        seen[next] = true;
        path.push(next);
    };
    for &m in members {
        member[m] = false;
    }
    for &p in &path {
        seen[p] = false;
    }
    cycle
}

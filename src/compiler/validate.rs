//! Resolve `needs` to tasks and check the graph: unknown names (with a suggestion), a task
//! needing itself, duplicates, and cycles (printed as a path `a → b → c → a`).

use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::diagnostic::Diagnostic;
use super::model::Task;
use super::parse::Parsed;
use super::suggest;
use super::yaml::Span;

/// Fill `needs` of every task with indices; report every problem.
pub fn resolve(parsed: &mut Parsed, diags: &mut Vec<Diagnostic>) {
    let tasks = &parsed.workflow.tasks;
    let mut index: HashMap<&str, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(tasks.len(), Default::default());
    index.extend(tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)));
    let mut resolved: Vec<Vec<usize>> = Vec::with_capacity(parsed.needs.len());
    for (i, needs) in parsed.needs.iter().enumerate() {
        let me = parsed.workflow.tasks[i].name.as_str();
        let mut ups = Vec::with_capacity(needs.len());
        for (name, span) in needs {
            match index.get(name) {
                Some(&j) if j == i => diags.push(
                    Diagnostic::new(*span, format!("task `{me}` needs itself"))
                        .help("remove it from its own `needs`"),
                ),
                Some(&j) if ups.contains(&j) => diags.push(
                    Diagnostic::new(*span, format!("task `{me}` needs `{name}` twice"))
                        .help("list each task once"),
                ),
                Some(&j) => ups.push(j),
                None if parsed.declared.contains(name) => {}
                None => {
                    let others = parsed
                        .workflow
                        .tasks
                        .iter()
                        .map(|t| t.name.as_str())
                        .filter(|n| *n != me);
                    let help = match suggest::nearest(name, others) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "the tasks are {}",
                            parsed
                                .workflow
                                .tasks
                                .iter()
                                .map(|t| format!("`{}`", t.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    diags.push(
                        Diagnostic::new(
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
    for scc in tarjan_scc(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
        let Some(cycle) = find_cycle(tasks, &members) else {
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
                span,
                format!("the tasks need each other in a cycle: {path}"),
            )
            .help("remove one of these `needs` so that the tasks can run in some order"),
        );
    }
}

/// A cycle through the strongly connected `members`, starting from the one first in the file.
fn find_cycle(tasks: &[Task], members: &[usize]) -> Option<Vec<usize>> {
    let start = *members.iter().min()?;
    let mut path = vec![start];
    let mut seen = vec![start];
    loop {
        let last = *path.last()?;
        let next = tasks[last]
            .needs
            .iter()
            .copied()
            .filter(|n| members.contains(n))
            .min_by_key(|n| {
                // Prefer closing the cycle, then unseen nodes.
                (*n != start, seen.contains(n))
            })?;
        if next == start {
            return Some(path);
        }
        if seen.contains(&next) {
            // Walked into a loop not through `start`: cut the path to that loop.
            let pos = path.iter().position(|&p| p == next)?;
            return Some(path[pos..].to_vec());
        }
        seen.push(next);
        path.push(next);
    }
}

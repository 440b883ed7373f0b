//! The installed workflow, read back from its generated unit files (not from the YAML,
//! which may have changed since it was applied).

use super::*;

/// A workflow as installed: read from its generated unit files, not from the YAML (which
/// may have changed since it was applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledWorkflow {
    pub name: String,
    pub source: String,
    pub tasks: Vec<TaskInfo>,
    /// The timer, when the workflow has a schedule, and the schedule as written.
    pub timer: Option<(String, String)>,
    /// What a trigger does while a run is going: `skip`, `queue` or `replace`.
    pub overlap: String,
    /// Whether the timer is `Persistent=` (`catch_up`): a run it starts at once when it is
    /// activated makes up for one missed while the machine was off.
    pub catch_up: bool,
    /// The run's deadline (`timeout`) as the unit has it, which the supervisor enforces.
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub name: String,
    pub unit: String,
    /// Names of the tasks it needs.
    pub needs: Vec<String>,
    pub when: String,
    /// Whether the unit or its workflow's slice has a `MemoryMax=`: a SIGKILL then most likely
    /// came from the kernel's OOM killer (see [`out_of_memory`]).
    pub memory_max: bool,
    /// How many times the supervisor tries it again after a failure.
    pub retries: u32,
}

impl InstalledWorkflow {
    /// Each task's index in `tasks`, by name.
    pub fn task_indices(&self) -> HashMap<&str, usize> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect()
    }

    pub fn run_unit(&self) -> String {
        names::run_unit(&self.name)
    }

    pub fn begin_unit(&self) -> String {
        names::begin_unit(&self.name)
    }

    pub fn trigger_unit(&self) -> String {
        names::trigger_unit(&self.name)
    }
}

/// Every installed workflow, by name.
pub fn installed_workflows(files: &BTreeMap<String, InstalledFile>) -> Vec<InstalledWorkflow> {
    // A set, not the sorted file names deduplicated: `flow-a-b.service` sorts between
    // `flow-a--t.service` and `flow-a.service`, so one workflow's files are not adjacent.
    let names: std::collections::BTreeSet<Cow<str>> = files
        .keys()
        .filter_map(|f| names::workflow_of_file(f))
        .collect();
    names
        .into_iter()
        .filter_map(|n| installed_workflow(files, &n))
        .collect()
}

/// One installed workflow, if its run unit is there.
pub fn installed_workflow(
    files: &BTreeMap<String, InstalledFile>,
    name: &str,
) -> Option<InstalledWorkflow> {
    let run = files.get(&names::run_unit(name))?;
    let prefix = format!("flow-{name}--");
    // Task order: as the begin unit (which pulls them in) lists them, the YAML's order.
    let begin = files.get(&names::begin_unit(name))?;
    let units: Vec<String> = unit_text::values(&begin.contents, "Unit", "Wants")
        .filter(|u| u.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    // A limit on the workflow as a whole (its slice) binds each task too.
    let slice_memory_max = files
        .get(&names::slice_unit(name))
        .is_some_and(|s| unit_text::value(&s.contents, "Slice", "MemoryMax").is_some());
    let tasks = units
        .iter()
        .filter_map(|unit| {
            let file = files.get(unit)?;
            let task = unit
                .strip_prefix(&prefix)?
                .strip_suffix(".service")?
                .to_string();
            let text = file.contents.as_str();
            let needs = unit_text::values(text, "Unit", "Requires")
                .chain(unit_text::values(text, "Unit", "Wants"))
                .filter_map(|u| {
                    u.strip_prefix(&prefix)?
                        .strip_suffix(".service")
                        .map(str::to_string)
                })
                .collect();
            let when = unit_text::value(text, x_flow::SECTION, x_flow::WHEN)
                .unwrap_or("all_success")
                .to_string();
            let memory_max =
                slice_memory_max || unit_text::value(text, "Service", "MemoryMax").is_some();
            let retries = unit_text::value(text, x_flow::SECTION, x_flow::RETRIES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Some(TaskInfo {
                name: task,
                unit: unit.clone(),
                needs,
                when,
                memory_max,
                retries,
            })
        })
        .collect();
    let timer = files.get(&names::timer_unit(name)).map(|t| {
        let x = |key| unit_text::value(&t.contents, x_flow::SECTION, key);
        let schedule = x(x_flow::CRON)
            .or(x(x_flow::CALENDAR))
            .map(str::to_string)
            .or_else(|| x(x_flow::EVERY).map(|e| format!("every {e}")))
            .unwrap_or_default();
        (names::timer_unit(name), schedule)
    });
    let catch_up = files
        .get(&names::timer_unit(name))
        .is_some_and(|t| unit_text::boolean(&t.contents, "Timer", "Persistent") == Some(true));
    Some(InstalledWorkflow {
        name: name.to_string(),
        source: run.source.clone(),
        tasks,
        timer,
        overlap: unit_text::value(&run.contents, x_flow::SECTION, x_flow::OVERLAP)
            .unwrap_or("skip")
            .to_string(),
        catch_up,
        timeout: unit_text::value(&run.contents, x_flow::SECTION, x_flow::TIMEOUT)
            .map(str::to_string),
    })
}

//! The kinds of problem flow reports about a workflow file, each with a stable name for
//! scripts and editors (`flow validate --json`'s `code`). Defined here once: a diagnostic
//! cannot be made without one, the names never come from a message's wording, and
//! docs/json.md lists every one (a test holds the two together).

/// How bad a kind of problem is: an error makes the file invalid; a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Each variant with its name and severity, and the enum's table of them all.
macro_rules! codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $name:literal, $severity:ident; )+) => {
        /// A kind of problem. Its name (`as_str`) is part of flow's JSON contract: once
        /// released it is not renamed, and a new kind gets a new name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Code {
            /// Every code, in the order docs/json.md lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The stable name, snake_case.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Code::$variant => $name, )+
                }
            }

            pub const fn severity(self) -> Severity {
                match self {
                    $( Code::$variant => Severity::$severity, )+
                }
            }
        }
    };
}

codes! {
    // The file itself.
    /// The file is not UTF-8 text.
    NotUtf8 = "not_utf8", Error;
    /// The path names a directory, FIFO, device or socket, not a regular file.
    NotAFile = "not_a_file", Error;
    /// The file is larger than flow reads (4 MiB).
    FileTooLarge = "file_too_large", Error;
    /// The file's path holds a control or invisible character.
    UnprintablePath = "unprintable_path", Error;
    /// A file others can change (`flow apply` refuses it).
    UntrustedFile = "untrusted_file", Warning;
    /// The file is empty.
    EmptyFile = "empty_file", Error;
    /// The file is not valid YAML.
    YamlSyntax = "yaml_syntax", Error;
    /// A cron schedule starting with `*` is not quoted (YAML reads `*` as an alias).
    CronUnquoted = "cron_unquoted", Error;
    /// Another value starting with `*` is not quoted.
    StarUnquoted = "star_unquoted", Error;
    /// Two files define a workflow of the same name.
    DuplicateWorkflow = "duplicate_workflow", Error;
    /// More problems than are reported; the rest are counted in this one.
    TooManyProblems = "too_many_problems", Error;

    // Keys and types.
    /// A key flow does not know at this place.
    UnknownKey = "unknown_key", Error;
    /// A key (or `env` variable) set twice in the same mapping.
    DuplicateKey = "duplicate_key", Error;
    /// A key (or task name) that is a list or mapping instead of a plain word.
    InvalidKey = "invalid_key", Error;
    /// A value of the wrong type (a list where a string goes, ...).
    WrongType = "wrong_type", Error;
    /// The workflow has no tasks.
    NoTasks = "no_tasks", Error;

    // Names.
    /// A workflow or task name flow cannot use in unit names.
    InvalidName = "invalid_name", Error;
    /// A workflow name flow keeps for its own units.
    ReservedName = "reserved_name", Error;
    /// Two tasks of the same name.
    DuplicateTask = "duplicate_task", Error;
    /// A `user` or `group` systemd does not take.
    InvalidAccount = "invalid_account", Error;
    /// `user: nobody`, which systemd calls unsafe.
    UserNobody = "user_nobody", Error;
    /// An `env` name that is not a valid variable name.
    InvalidEnvName = "invalid_env_name", Error;

    // Values.
    /// A value that is not one of the words the key takes.
    InvalidChoice = "invalid_choice", Error;
    /// A number or duration out of the key's range.
    OutOfRange = "out_of_range", Error;
    /// A duration that cannot be read.
    InvalidDuration = "invalid_duration", Error;
    /// A `memory_max` that is not a memory size.
    InvalidMemorySize = "invalid_memory_size", Error;
    /// A `cpu_quota` that is not a CPU quota.
    InvalidCpuQuota = "invalid_cpu_quota", Error;
    /// A path systemd would not take as written.
    InvalidPath = "invalid_path", Error;
    /// An `exec` program systemd would not run as written.
    InvalidProgram = "invalid_program", Error;
    /// An empty `run` or `exec`.
    EmptyCommand = "empty_command", Error;
    /// A NUL or a Unicode noncharacter, which no unit file can hold.
    ForbiddenCharacter = "forbidden_character", Error;
    /// A value, or the units made of the workflow, over a size limit.
    TooLarge = "too_large", Error;

    // Schedules.
    /// A cron expression that cannot be read.
    InvalidCron = "invalid_cron", Error;
    /// A calendar expression systemd would not take.
    InvalidCalendar = "invalid_calendar", Error;
    /// An unknown time zone.
    InvalidTimezone = "invalid_timezone", Error;
    /// A `schedule` mapping without exactly one of `cron`, `calendar`, `every`.
    InvalidSchedule = "invalid_schedule", Error;
    /// `catch_up`, `jitter` or `timezone` without a `schedule`.
    NeedsSchedule = "needs_schedule", Error;
    /// A key that does not apply to this kind of schedule.
    ScheduleConflict = "schedule_conflict", Error;

    // Tasks.
    /// A task without `run` or `exec`.
    NothingToRun = "nothing_to_run", Error;
    /// A task with both `run` and `exec`.
    RunAndExec = "run_and_exec", Error;
    /// `when: on_failure` or `always` without `needs`.
    WhenWithoutNeeds = "when_without_needs", Error;
    /// A `service` key flow writes itself.
    OwnedServiceKey = "owned_service_key", Error;
    /// A `service` key that is not a systemd `[Service]` key.
    UnknownServiceKey = "unknown_service_key", Error;
    /// A `service` value that would break the unit file.
    InvalidServiceValue = "invalid_service_value", Error;

    // The task graph.
    /// `needs` names a task the workflow does not have.
    UnknownTask = "unknown_task", Error;
    /// A task that needs itself.
    NeedsItself = "needs_itself", Error;
    /// A task that needs the same task twice.
    DuplicateNeed = "duplicate_need", Error;
    /// Tasks that need each other in a cycle.
    Cycle = "cycle", Error;

    // This machine (`flow plan`, `flow apply`, `flow try`).
    /// An `env_file`, `working_dir`, `user` or `group` this machine lacks.
    MissingOnHost = "missing_on_host", Warning;
    /// A `user` or `group` that a user's own manager (`--user`) cannot switch to.
    NotInUserManager = "not_in_user_manager", Warning;
    /// An `env_file` every user may read.
    EnvFileReadable = "env_file_readable", Warning;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !name.starts_with('_')
                    && !name.ends_with('_'),
                "{name}"
            );
        }
    }
}

//! flow's vocabulary of runs: how a run ended, how an attempt ended, what started a run.
//!
//! Each word is defined here once, as an enum, and spelled the same in every table, every
//! `--json` output, the history database, the journal events and the documentation. systemd's
//! own words for how a job and a unit ended (`done`, `exit-code`, `oom-kill`, ...) are
//! interpreted in one place, [`Outcome::of_unit`].
//!
//! Reading is lenient where it must be: the words of flow versions before this vocabulary
//! (`success`, `timeout`, `oom`, `exit-code 1`, `signal 9`, `catch-up`) are still understood
//! wherever they can arrive (a history not yet migrated, a trigger note left by an older
//! flow, a follower talking to an older supervisor).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::systemd::{JobResult, UnitState};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    #[serde(alias = "success")]
    Succeeded,
    Failed,
    #[serde(alias = "timeout")]
    TimedOut,
    Canceled,
    /// Its trigger was skipped by the overlap rule: nothing ran.
    Skipped,
}

impl RunResult {
    pub const ALL: [RunResult; 5] = [
        RunResult::Succeeded,
        RunResult::Failed,
        RunResult::TimedOut,
        RunResult::Canceled,
        RunResult::Skipped,
    ];

    /// From its word (or an older flow's: `success`, `timeout`).
    pub fn parse(s: &str) -> Option<RunResult> {
        Some(match s {
            "succeeded" | "success" => RunResult::Succeeded,
            "failed" => RunResult::Failed,
            "timed_out" | "timeout" => RunResult::TimedOut,
            "canceled" => RunResult::Canceled,
            "skipped" => RunResult::Skipped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
            RunResult::TimedOut => "timed_out",
            RunResult::Canceled => "canceled",
            RunResult::Skipped => "skipped",
        }
    }

    /// For people: `timed out` rather than `timed_out`.
    pub fn label(self) -> &'static str {
        match self {
            RunResult::TimedOut => "timed out",
            other => other.as_str(),
        }
    }

    /// What the word means, for the manual.
    pub fn meaning(self) -> &'static str {
        match self {
            RunResult::Succeeded => "every task succeeded or was not needed",
            RunResult::Failed => "a task failed (after its retries), so the run did",
            RunResult::TimedOut => "the run reached its timeout and was stopped",
            RunResult::Canceled => "stopped by flow cancel, systemctl stop or overlap: replace",
            RunResult::Skipped => "its trigger came while a run was going, and overlap: skip",
        }
    }

    /// Whether the run did not do what it was for (what `history --failed` lists).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunResult::Failed | RunResult::TimedOut | RunResult::Canceled
        )
    }
}

/// How an attempt of a task (or a task that got no attempt) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    #[serde(alias = "success")]
    Succeeded,
    /// Exited with a code other than 0, or systemd could not start it.
    Failed,
    #[serde(alias = "timeout")]
    TimedOut,
    #[serde(alias = "oom")]
    OutOfMemory,
    /// Ended by a signal it was not sent by a stop.
    Killed,
    /// A task it needs failed: it did not run.
    UpstreamFailed,
    /// Not needed (its `when:` did not hold, or its condition was false): it did not run.
    Skipped,
    /// Stopped by a cancel, a run deadline or `overlap: replace`, or never started for one.
    Canceled,
}

impl AttemptResult {
    pub const ALL: [AttemptResult; 8] = [
        AttemptResult::Succeeded,
        AttemptResult::Failed,
        AttemptResult::TimedOut,
        AttemptResult::OutOfMemory,
        AttemptResult::Killed,
        AttemptResult::UpstreamFailed,
        AttemptResult::Skipped,
        AttemptResult::Canceled,
    ];

    pub fn parse(s: &str) -> Option<AttemptResult> {
        AttemptResult::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .or(match s {
                "success" => Some(AttemptResult::Succeeded),
                "timeout" => Some(AttemptResult::TimedOut),
                "oom" => Some(AttemptResult::OutOfMemory),
                _ => None,
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Succeeded => "succeeded",
            AttemptResult::Failed => "failed",
            AttemptResult::TimedOut => "timed_out",
            AttemptResult::OutOfMemory => "out_of_memory",
            AttemptResult::Killed => "killed",
            AttemptResult::UpstreamFailed => "upstream_failed",
            AttemptResult::Skipped => "skipped",
            AttemptResult::Canceled => "canceled",
        }
    }

    /// What the word means, for the manual.
    pub fn meaning(self) -> &'static str {
        match self {
            AttemptResult::Succeeded => "the command exited 0",
            AttemptResult::Failed => {
                "the command exited non-zero (exit_code), or systemd could not start it (start_error)"
            }
            AttemptResult::TimedOut => "the task reached its timeout and was stopped",
            AttemptResult::OutOfMemory => "killed for going over its memory_max",
            AttemptResult::Killed => "ended by a signal (signal) nobody sent to stop it",
            AttemptResult::UpstreamFailed => "not run: a task it needs failed",
            AttemptResult::Skipped => "not run: not needed (its when: did not hold)",
            AttemptResult::Canceled => "stopped, or never started, because the run was stopped",
        }
    }

    /// Whether the task ran (an activation of its unit exists).
    pub fn ran(self) -> bool {
        !matches!(
            self,
            AttemptResult::UpstreamFailed | AttemptResult::Skipped | AttemptResult::Canceled
        )
    }
}

/// An attempt's end: its result, with the exit code, the signal or systemd's reason for not
/// starting it as fields of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: AttemptResult,
    /// The command's exit code: 0 when it succeeded, the code when it `failed` by exiting.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when it was `killed`.
    pub signal: Option<i32>,
    /// systemd's reason when the command was never started (`resources`,
    /// `start-limit-hit`): the attempt `failed`.
    pub start_error: Option<String>,
}

impl Outcome {
    /// An outcome with no code, signal or reason.
    pub fn of(result: AttemptResult) -> Outcome {
        Outcome {
            result,
            exit_code: None,
            signal: None,
            start_error: None,
        }
    }

    pub fn succeeded() -> Outcome {
        Outcome {
            exit_code: Some(0),
            ..Outcome::of(AttemptResult::Succeeded)
        }
    }

    pub fn exited(code: i32) -> Outcome {
        if code == 0 {
            return Outcome::succeeded();
        }
        Outcome {
            exit_code: Some(code),
            ..Outcome::of(AttemptResult::Failed)
        }
    }

    pub fn killed(signal: i32) -> Outcome {
        Outcome {
            signal: Some(signal),
            ..Outcome::of(AttemptResult::Killed)
        }
    }

    pub fn start_failed(why: &str) -> Outcome {
        Outcome {
            start_error: Some(why.to_string()),
            ..Outcome::of(AttemptResult::Failed)
        }
    }

    /// How an activation ended, from its start job's result and its unit's properties
    /// after it (`Result`, `ExecMainStatus`): the one place flow reads systemd's words.
    ///
    /// A stop while it ran (cancel, deadline, `overlap: replace`) ends the job `canceled`
    /// and the unit with `signal` (SIGTERM, or SIGKILL after the stop timeout): that is a
    /// cancel, not a kill. A result of `resources` or `start-limit-hit` means nothing was
    /// started, so `ExecMainStatus` is an earlier activation's and is not reported.
    pub fn of_unit(job: &JobResult, unit: &UnitState) -> Outcome {
        Outcome::of_result(job, unit.result.as_deref(), unit.exec_main_status)
    }

    /// [`Outcome::of_unit`] from the unit's `Result` and `ExecMainStatus` alone (as the
    /// journal tells them: `UNIT_RESULT`, `EXIT_STATUS`).
    pub fn of_result(job: &JobResult, result: Option<&str>, exec_main_status: i32) -> Outcome {
        let canceled = matches!(job, JobResult::Canceled);
        match (job, result) {
            (JobResult::Dependency, _) => Outcome::of(AttemptResult::UpstreamFailed),
            (JobResult::Skipped, _) => Outcome::of(AttemptResult::Skipped),
            (_, Some("success")) if !canceled => Outcome::succeeded(),
            (_, Some("exec-condition" | "condition")) => Outcome::of(AttemptResult::Skipped),
            (JobResult::Timeout, _) | (_, Some("timeout")) => Outcome::of(AttemptResult::TimedOut),
            (_, Some("oom-kill")) => Outcome::of(AttemptResult::OutOfMemory),
            (_, Some(r)) if start_failed(r) => Outcome::start_failed(r),
            (_, Some("signal" | "core-dump")) if !canceled => Outcome::killed(exec_main_status),
            _ if canceled => Outcome::of(AttemptResult::Canceled),
            _ => Outcome::exited(exec_main_status),
        }
    }

    /// From an older flow's single word for it (`success`, `exit-code 1`, `signal 9`,
    /// `timeout`, `oom`, a start failure such as `resources`), or a word of this
    /// vocabulary.
    pub fn parse_legacy(s: &str) -> Outcome {
        let number = |prefix: &str| s.strip_prefix(prefix).and_then(|n| n.trim().parse().ok());
        if let Some(r) = AttemptResult::parse(s) {
            return match r {
                AttemptResult::Succeeded => Outcome::succeeded(),
                r => Outcome::of(r),
            };
        }
        if let Some(code) = number("exit-code") {
            Outcome::exited(code)
        } else if let Some(sig) = number("signal") {
            Outcome::killed(sig)
        } else {
            Outcome::start_failed(s)
        }
    }

    /// For a table: the word, with its start failure, signal or exit code (`failed (exit
    /// 3)`, `killed (signal 9)`, `failed (resources)`).
    pub fn brief(&self) -> String {
        let word = self.result.as_str();
        if let Some(why) = &self.start_error {
            format!("{word} ({why})")
        } else if let Some(sig) = self.signal {
            format!("{word} (signal {sig})")
        } else if self.result == AttemptResult::Failed
            && let Some(code) = self.exit_code
        {
            format!("{word} (exit {code})")
        } else {
            word.to_string()
        }
    }

    /// For people: `failed (exit code 3)`, `killed (signal 9)`, `failed to start
    /// (resources)`, `timed out`.
    pub fn describe(&self) -> String {
        let mut how = self.result.as_str().replace('_', " ");
        if self.result == AttemptResult::Failed
            && let Some(code) = self.exit_code
        {
            how.push_str(&format!(" (exit code {code})"));
        }
        if let Some(sig) = self.signal {
            how.push_str(&format!(" (signal {sig})"));
        }
        if let Some(why) = &self.start_error {
            how.push_str(&format!(" to start ({why})"));
        }
        how
    }
}

/// Whether a service's `Result` says systemd could not start its command at all
/// (`resources`: an `EnvironmentFile=` that does not exist, say; `start-limit-hit`). Such
/// a start logs no "Starting" and leaves the unit failed, with a new InvocationID.
pub fn start_failed(result: &str) -> bool {
    matches!(result, "resources" | "start-limit-hit")
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// Its timer elapsed.
    Timer,
    /// Its `Persistent=` timer made up for a run missed while the machine was off.
    #[serde(alias = "catch-up")]
    CatchUp,
    /// `flow run`.
    Manual,
    /// `flow retry`, or the supervisor re-running what failed.
    Retry,
    /// Anything else that started its unit: `systemctl start`, a dependency.
    Systemctl,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 5] = [
        TriggerKind::Timer,
        TriggerKind::CatchUp,
        TriggerKind::Manual,
        TriggerKind::Retry,
        TriggerKind::Systemctl,
    ];

    /// From its word (or an older flow's `catch-up`); a word this flow does not know is a
    /// plain `systemctl start`, what a run without a trigger note is.
    pub fn parse(s: &str) -> TriggerKind {
        match s {
            "catch-up" => TriggerKind::CatchUp,
            s => TriggerKind::ALL
                .into_iter()
                .find(|k| k.as_str() == s)
                .unwrap_or(TriggerKind::Systemctl),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Timer => "timer",
            TriggerKind::CatchUp => "catch_up",
            TriggerKind::Manual => "manual",
            TriggerKind::Retry => "retry",
            TriggerKind::Systemctl => "systemctl",
        }
    }

    /// What the word means, for the manual.
    pub fn meaning(self) -> &'static str {
        match self {
            TriggerKind::Timer => "the workflow's schedule",
            TriggerKind::CatchUp => "a scheduled run missed while the machine was off (catch_up)",
            TriggerKind::Manual => "flow run",
            TriggerKind::Retry => "flow retry",
            TriggerKind::Systemctl => {
                "anything else that started it: systemctl start, a dependency"
            }
        }
    }

    /// For people: `catch-up` rather than `catch_up`.
    pub fn label(self) -> &'static str {
        match self {
            TriggerKind::CatchUp => "catch-up",
            other => other.as_str(),
        }
    }
}

macro_rules! words {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    )*};
}
words!(RunResult, AttemptResult, TriggerKind);

impl rusqlite::types::FromSql for RunResult {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        RunResult::parse(s)
            .ok_or_else(|| rusqlite::types::FromSqlError::Other(format!("run result {s:?}").into()))
    }
}

impl rusqlite::types::FromSql for AttemptResult {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        AttemptResult::parse(s).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("attempt result {s:?}").into())
        })
    }
}

impl rusqlite::types::FromSql for TriggerKind {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Ok(TriggerKind::parse(v.as_str()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(result: &str, status: i32) -> UnitState {
        UnitState {
            result: Some(result.into()),
            exec_main_status: status,
            ..UnitState::default()
        }
    }

    #[test]
    fn words_round_trip_and_match_serde() {
        for r in RunResult::ALL {
            assert_eq!(RunResult::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        for r in AttemptResult::ALL {
            assert_eq!(AttemptResult::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        for k in TriggerKind::ALL {
            assert_eq!(TriggerKind::parse(k.as_str()), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }

    #[test]
    fn an_older_flows_words_are_understood() {
        assert_eq!(Outcome::parse_legacy("exit-code 7"), Outcome::exited(7));
        assert_eq!(Outcome::parse_legacy("signal 9"), Outcome::killed(9));
        assert_eq!(Outcome::parse_legacy("success"), Outcome::succeeded());
        assert_eq!(
            Outcome::parse_legacy("timeout").result,
            AttemptResult::TimedOut
        );
        assert_eq!(
            Outcome::parse_legacy("oom").result,
            AttemptResult::OutOfMemory
        );
        assert_eq!(
            Outcome::parse_legacy("resources"),
            Outcome::start_failed("resources")
        );
        assert_eq!(TriggerKind::parse("catch-up"), TriggerKind::CatchUp);
        assert_eq!(RunResult::parse("success"), Some(RunResult::Succeeded));
        assert_eq!(RunResult::parse("nonsense"), None);
        let old: AttemptResult = serde_json::from_str("\"oom\"").unwrap();
        assert_eq!(old, AttemptResult::OutOfMemory);
    }

    #[test]
    fn systemds_words_are_read_in_one_place() {
        let of = Outcome::of_unit;
        assert_eq!(
            of(&JobResult::Done, &unit("success", 0)),
            Outcome::succeeded()
        );
        assert_eq!(
            of(&JobResult::Failed, &unit("exit-code", 3)),
            Outcome::exited(3)
        );
        assert_eq!(
            of(&JobResult::Failed, &unit("signal", 9)),
            Outcome::killed(9)
        );
        // A stop while it ran is a cancel, not a kill, and not a success.
        for r in ["signal", "success", "exit-code"] {
            assert_eq!(
                of(&JobResult::Canceled, &unit(r, 15)).result,
                AttemptResult::Canceled
            );
        }
        assert_eq!(
            of(&JobResult::Timeout, &unit("exit-code", 1)).result,
            AttemptResult::TimedOut
        );
        assert_eq!(
            of(&JobResult::Failed, &unit("timeout", 0)).result,
            AttemptResult::TimedOut
        );
        assert_eq!(
            of(&JobResult::Failed, &unit("oom-kill", 9)).result,
            AttemptResult::OutOfMemory
        );
        assert_eq!(
            of(&JobResult::Failed, &unit("resources", 203)),
            Outcome::start_failed("resources")
        );
        assert_eq!(
            of(&JobResult::Done, &unit("exec-condition", 1)).result,
            AttemptResult::Skipped
        );
        assert_eq!(
            of(&JobResult::Dependency, &unit("success", 0)).result,
            AttemptResult::UpstreamFailed
        );
    }

    /// Every word is in the documentation's table, as it is spelled.
    #[test]
    fn every_word_is_documented() {
        let doc = include_str!("../docs/format.md");
        let words = RunResult::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(AttemptResult::ALL.iter().map(|r| r.as_str()))
            .chain(TriggerKind::ALL.iter().map(|k| k.as_str()));
        for w in words {
            assert!(
                doc.contains(&format!("| `{w}` |")),
                "{w} is not in docs/format.md"
            );
        }
    }

    #[test]
    fn outcomes_read_well() {
        assert_eq!(Outcome::exited(3).describe(), "failed (exit code 3)");
        assert_eq!(Outcome::killed(9).describe(), "killed (signal 9)");
        assert_eq!(
            Outcome::start_failed("resources").describe(),
            "failed to start (resources)"
        );
        assert_eq!(Outcome::of(AttemptResult::TimedOut).describe(), "timed out");
    }
}

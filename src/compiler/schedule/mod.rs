//! Schedules: what a workflow's `schedule:` says, turned into systemd `OnCalendar=` values.
//!
//! Three pure parts, no I/O:
//! - [`cron`] translates a cron expression into one or more calendar expressions,
//! - [`calendar`] checks a systemd calendar expression the way systemd 252 parses it,
//! - [`timezone`] checks an IANA time zone name.
//!
//! Every problem comes back as a [`ScheduleError`] located within the expression's own
//! text; the caller knows where the expression sits in the YAML file and adds that.

pub mod calendar;
pub mod cron;
mod suggest;
pub mod timezone;

use std::fmt;

/// A problem in a schedule expression, located within the expression's own text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// What is wrong: lowercase, identifiers in backticks.
    pub message: String,
    /// How to fix it, or "did you mean `MON`?".
    pub help: Option<String>,
    /// Byte offset in the expression where the problem starts.
    pub offset: usize,
    /// Byte length of the offending part (at least 1 where the expression has text there).
    pub len: usize,
}

impl ScheduleError {
    pub(crate) fn new(message: impl Into<String>, offset: usize, len: usize) -> Self {
        ScheduleError {
            message: message.into(),
            help: None,
            offset,
            len,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Moves the location by `by` bytes: for an error found in a part of a larger text.
    pub(crate) fn shifted(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScheduleError {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// An error must point inside the expression, on character boundaries, so that a caller
    /// can underline it without slicing through a character.
    fn located_inside(expr: &str, error: &super::ScheduleError) -> bool {
        let end = error.offset + error.len;
        end <= expr.len() && expr.is_char_boundary(error.offset) && expr.is_char_boundary(end)
    }

    proptest! {
        // Few cases: a failed time zone is compared with every known name, slow in debug builds.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_text_gives_a_result_or_a_located_error(expr in "[ -~é\t]{0,30}|[0-9*,/ @~:.A-Za-z-]{0,30}") {
            if let Err(error) = super::cron::translate(&expr) {
                prop_assert!(located_inside(&expr, &error), "cron {expr:?}: {error:?}");
            }
            if let Err(error) = super::calendar::validate(&expr) {
                prop_assert!(located_inside(&expr, &error), "calendar {expr:?}: {error:?}");
            }
            if let Err(error) = super::timezone::validate(&expr) {
                prop_assert!(located_inside(&expr, &error), "timezone {expr:?}: {error:?}");
            }
        }
    }
}

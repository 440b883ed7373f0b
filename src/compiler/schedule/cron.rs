//! Translate cron expressions into systemd calendar expressions (`OnCalendar=` values).
//!
//! Accepted: 5 fields (minute hour day-of-month month day-of-week), 6 fields (seconds first),
//! or one macro (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly`, `@reboot`). Each field is a `,` list of `*`, `N` or `N-M`, each optionally with
//! `/step`; `N/step` means `N-max/step`. Months and weekdays also take three-letter names in any
//! case; weekday 0 and 7 are both Sunday.
//!
//! The meaning is Vixie/ISC cron's (the cron of Debian), including its day rule: when BOTH
//! day-of-month and day-of-week are restricted, a day matches when EITHER matches. Like Vixie
//! cron, a field counts as unrestricted when its text starts with `*`, so `*/2` is unrestricted
//! for this rule: `0 0 */2 * MON` runs on odd days that are Mondays, `0 0 1-31/2 * MON` on odd
//! days and on Mondays. (croner, the test oracle, treats only an exact `*` as unrestricted; the
//! oracle test sets its `dom_and_dow` option for the `*/2` case so that both follow Vixie.)
//! One calendar expression can only AND its parts, so an OR becomes two expressions (the timer
//! elapses when either does); a side that can never match (`31 2 * MON`: February 31st) is left
//! out.
//!
//! Deliberately stricter than cron, because these are mistakes that make a job silently never
//! run or run at other times than meant: a step larger than its field (`*/90` in minutes only
//! ever matches minute 0) and a day that never occurs in the chosen months (`30 2`).
//!
//! Where systemd and cron differ (seen with `systemd-analyze calendar` of systemd 252 against
//! croner, which follows cron): around daylight-saving changes in the timer's zone.
//! - A local time that does not exist that day (02:30 when clocks jump from 02:00 to 03:00):
//!   cron runs a job with a fixed time right after the jump; systemd skips that day's run.
//!   Both skip the missing times of a repeating job (`*/15 * * * *`).
//! - A local time that happens twice (when clocks go back): both run a fixed-time job once, at
//!   the first occurrence; cron runs a repeating job in both passes of the repeated hour,
//!   systemd in the first only.
//!
//! One systemd 252 quirk shapes the output: an open repetition such as `00/7` in minutes can
//! miss 00:00 after midnight, so such repetitions are written with their last value
//! (`00..56/7`); `00/5`, which lands back on 00, keeps the short form.

use super::ScheduleError;
use super::suggest::nearest;

/// What a cron expression becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronSchedule {
    /// `OnCalendar=` values without a time zone; the job runs whenever any of them elapses.
    Calendars(Vec<String>),
    /// `@reboot`: once when the system starts.
    Reboot,
}

/// Translate a cron expression (5 fields, or 6 with seconds first, or a macro) into one or more
/// systemd OnCalendar= expressions WITHOUT a time zone (the caller appends `" <tz>"` when a
/// timezone is set).
pub fn translate(expr: &str) -> Result<CronSchedule, ScheduleError> {
    let words = words(expr);
    let Some(first) = words.first() else {
        return Err(ScheduleError::new("empty cron expression", 0, expr.len()).help(FIELDS_HELP));
    };
    if first.text.starts_with('@') {
        return translate_macro(&words);
    }
    let fields: &[&Field] = match words.len() {
        5 => &[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
        6 => &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
        n => return Err(field_count_error(&words, n)),
    };
    let mut sets = Vec::with_capacity(6);
    for (word, field) in words.iter().zip(fields) {
        sets.push(parse_field(word, field)?);
    }
    let (second, rest) = if words.len() == 6 {
        (sets[0], &sets[1..])
    } else {
        (span(0, 0), &sets[..])
    };
    let &[minute, hour, day, month, weekday] = rest else {
        return Err(field_count_error(&words, words.len()));
    };
    let (day_word, weekday_word) = (&words[words.len() - 3], &words[words.len() - 1]);
    let weekday = fold_sunday(weekday);

    let full_day = span(1, 31);
    let full_weekday = span(0, 6);
    // Vixie cron: when either field starts with `*`, a day must match both (the `*` side
    // usually matches every day); only when both are restricted does either one suffice.
    let days = if day_word.text.starts_with('*') || weekday_word.text.starts_with('*') {
        vec![(day, weekday)]
    } else if day == full_day || weekday == full_weekday {
        vec![(full_day, full_weekday)]
    } else {
        vec![(day, full_weekday), (full_day, weekday)]
    };
    let days: Vec<_> = days
        .into_iter()
        .filter(|&(d, _)| occurs(d, month))
        .collect();
    if days.is_empty() {
        let month_word = &words[words.len() - 2];
        return Err(ScheduleError::new(
            format!(
                "day-of-month `{}` never occurs in month `{}`, so this schedule never runs",
                day_word.text, month_word.text
            ),
            day_word.at,
            day_word.text.len(),
        )
        .help("February has 29 days at most, April, June, September and November have 30"));
    }
    let calendars = days
        .into_iter()
        .map(|(day, weekday)| {
            let weekdays = if weekday == full_weekday {
                String::new()
            } else {
                weekday_list(weekday) + " "
            };
            format!(
                "{weekdays}*-{}-{} {}:{}:{}",
                render(month, 1, 12),
                render(day, 1, 31),
                render(hour, 0, 23),
                render(minute, 0, 59),
                render(second, 0, 59)
            )
        })
        .collect();
    Ok(CronSchedule::Calendars(calendars))
}

const FIELDS_HELP: &str = "write 5 fields (minute hour day-of-month month day-of-week), e.g. `30 2 * * *` for 02:30 every day, or a macro such as `@daily`";

/// The macros and the cron expressions they stand for; `None` is `@reboot`.
const MACROS: [(&str, Option<&str>); 8] = [
    ("@yearly", Some("0 0 1 1 *")),
    ("@annually", Some("0 0 1 1 *")),
    ("@monthly", Some("0 0 1 * *")),
    ("@weekly", Some("0 0 * * 0")),
    ("@daily", Some("0 0 * * *")),
    ("@midnight", Some("0 0 * * *")),
    ("@hourly", Some("0 * * * *")),
    ("@reboot", None),
];

fn translate_macro(words: &[Word]) -> Result<CronSchedule, ScheduleError> {
    let word = &words[0];
    if let Some(extra) = words.get(1) {
        let end = words[words.len() - 1].end();
        return Err(ScheduleError::new(
            format!("`{}` stands alone, but is followed by more", word.text),
            extra.at,
            end - extra.at,
        ));
    }
    match MACROS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word.text))
    {
        Some((_, Some(cron))) => translate(cron),
        Some((_, None)) => Ok(CronSchedule::Reboot),
        None => {
            let error = ScheduleError::new(
                format!("unknown macro `{}`", word.text),
                word.at,
                word.text.len(),
            );
            Err(match nearest(word.text, MACROS.map(|m| m.0)) {
                Some(name) => error.help(format!("did you mean `{name}`?")),
                None => error.help("the macros are `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@reboot`"),
            })
        }
    }
}

fn field_count_error(words: &[Word], n: usize) -> ScheduleError {
    let start = words.first().map_or(0, |w| w.at);
    let end = words.last().map_or(0, Word::end);
    if n < 5 {
        return ScheduleError::new(format!("expected 5 fields, found {n}"), start, end - start)
            .help(FIELDS_HELP);
    }
    let extra = words.get(6).map_or(start, |w| w.at);
    ScheduleError::new(
        format!("expected 5 or 6 fields, found {n}"),
        extra,
        end - extra,
    )
    .help("6 fields mean seconds first; a year field is not supported")
}

/// A whitespace-separated word and its byte offset in the expression.
struct Word<'a> {
    text: &'a str,
    at: usize,
}

impl Word<'_> {
    fn end(&self) -> usize {
        self.at + self.text.len()
    }
}

fn words(expr: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices().chain([(expr.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push(Word {
                    text: &expr[s..i],
                    at: s,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    words
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names, the first standing for `min`.
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// A set of field values, bit `v` for value `v`.
type Set = u64;

fn span(from: u32, to: u32) -> Set {
    (from..=to).fold(0, |set, v| set | 1 << v)
}

/// Weekday 7 is Sunday, as 0 is.
fn fold_sunday(set: Set) -> Set {
    (set & span(0, 6)) | (set >> 7 & 1)
}

/// Whether some chosen month has some chosen day (February counted with 29 days).
fn occurs(days: Set, months: Set) -> bool {
    const LENGTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12u32).any(|m| months >> m & 1 == 1 && days & span(1, LENGTH[m as usize - 1]) != 0)
}

fn parse_field(word: &Word, field: &Field) -> Result<Set, ScheduleError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/');
    if let Some((i, c)) = word.text.char_indices().find(|&(_, c)| !allowed(c)) {
        let error = ScheduleError::new(
            format!("`{c}` is not allowed in cron fields"),
            word.at + i,
            c.len_utf8(),
        );
        return Err(error.help(match c {
            '?' => "`?` is not supported; use `*`",
            '#' => "`#` (the nth weekday of a month) is not supported; a calendar schedule can say it, e.g. `Mon *-*-01..07` for the first Monday",
            _ => "cron fields are made of numbers, names, `*`, `,`, `-` and `/`",
        }));
    }
    let mut set = 0;
    let mut at = word.at;
    for item in word.text.split(',') {
        if item.is_empty() {
            // Point at the stray comma: the one after this empty entry or, at the end, before it.
            let comma = if at < word.end() { at } else { at - 1 };
            return Err(ScheduleError::new(
                format!("empty entry in the {} list", field.name),
                comma,
                1,
            )
            .help("remove the extra `,`"));
        }
        set |= parse_item(item, at, field)?;
        at += item.len() + 1;
    }
    Ok(set)
}

/// `*`, `N`, `N-M`, each optionally followed by `/step`.
fn parse_item(item: &str, at: usize, field: &Field) -> Result<Set, ScheduleError> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    let (low, high) = if range == "*" {
        (field.min, field.max)
    } else if range.is_empty() {
        return Err(
            ScheduleError::new(format!("missing {} before `/`", field.name), at, 1)
                .help("write `*/step` for every step-th value"),
        );
    } else if let Some((a, b)) = range.split_once('-') {
        if a.is_empty() || b.is_empty() {
            let dash = at + a.len();
            return Err(ScheduleError::new(
                format!("missing {} in range `{range}`", field.name),
                dash,
                1,
            ));
        }
        if let Some(i) = b.find('-') {
            let dash = at + a.len() + 1 + i;
            return Err(ScheduleError::new("a range has only one `-`", dash, 1)
                .help("separate ranges with `,`"));
        }
        let low = parse_value(a, at, field)?;
        let high = parse_value(b, at + a.len() + 1, field)?;
        if low > high {
            let (max, min) = if field.names.len() == 7 {
                (6, 0)
            } else {
                (field.max, field.min)
            };
            return Err(ScheduleError::new(
                format!("range `{range}` goes backwards"),
                at,
                range.len(),
            )
            .help(format!(
                "cron ranges do not wrap around: write `{a}-{max},{min}-{b}`"
            )));
        }
        (low, high)
    } else {
        let value = parse_value(range, at, field)?;
        // `N/step` runs from N to the end of the field.
        (value, if step.is_some() { field.max } else { value })
    };
    let step = match step {
        None => 1,
        Some(step) => parse_step(step, at + range.len() + 1, range, field)?,
    };
    Ok((low..=high)
        .step_by(step as usize)
        .fold(0, |set, v| set | 1 << v))
}

fn parse_step(step: &str, at: usize, range: &str, field: &Field) -> Result<u32, ScheduleError> {
    if step.is_empty() {
        return Err(ScheduleError::new("missing step after `/`", at - 1, 1));
    }
    if let Some(i) = step.find('/') {
        return Err(ScheduleError::new(
            "an entry has at most one `/`",
            at + i,
            1,
        ));
    }
    if !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::new(
            format!("step `{step}` is not a number"),
            at,
            step.len(),
        ));
    }
    let span = field.max - field.min;
    match step.parse::<u32>() {
        Ok(0) => Err(
            ScheduleError::new("step `0` never advances", at, step.len())
                .help("a step is at least 1"),
        ),
        Ok(n) if n <= span => Ok(n),
        _ => {
            let start = if range == "*" {
                field.min.to_string()
            } else {
                range.split('-').next().unwrap_or(range).to_string()
            };
            Err(ScheduleError::new(
                format!("step `{step}` is larger than the {} field (at most {span})", field.name),
                at,
                step.len(),
            )
            .help(format!(
                "`{range}/{step}` only matches `{start}`; write that if it is what you mean (cron cannot repeat across a larger unit)"
            )))
        }
    }
}

fn parse_value(text: &str, at: usize, field: &Field) -> Result<u32, ScheduleError> {
    let error = |message: String| ScheduleError::new(message, at, text.len());
    let bounds = format!("{} ({}-{})", field.name, field.min, field.max);
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (field.min..=field.max).contains(&v) => Ok(v),
            _ => Err(error(format!("`{text}` is out of range for {bounds}"))),
        };
    }
    if text.contains('*') {
        return Err(error(format!("`*` stands alone in `{text}`")).help("write `*` or `*/step`"));
    }
    if let Some(i) = field
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(field.min + i as u32);
    }
    let last_day =
        field.name == "day-of-month" && text.chars().any(|c| matches!(c, 'L' | 'l' | 'W' | 'w'));
    if last_day || (field.names.len() == 7 && text.chars().any(|c| matches!(c, 'L' | 'l'))) {
        return Err(error(format!("`{text}` is not supported in {}", field.name))
            .help("`L` and `W` (last day, nearest weekday) are not cron; a calendar schedule can say `*-*~01` for the last day of the month"));
    }
    if field.names.is_empty() {
        return Err(error(format!(
            "expected a number for {bounds}, found `{text}`"
        )));
    }
    let error = error(format!("unknown {} name `{text}`", field.name));
    // `MONDAY`, `January`: cron only knows the first three letters.
    let prefix = text.get(..3).filter(|_| text.len() > 3);
    let guess = prefix
        .and_then(|p| {
            field
                .names
                .iter()
                .copied()
                .find(|name| name.eq_ignore_ascii_case(p))
        })
        .or_else(|| nearest(text, field.names.iter().copied()));
    Err(match guess {
        Some(name) => error.help(format!("did you mean `{name}`?")),
        None => error.help(format!(
            "{} names are {}",
            field.name,
            field.names.join(", ")
        )),
    })
}

/// A field's values in systemd syntax, the way systemd itself prints them: `*`, a repetition
/// (`00/5`, or `00..56/7` with its last value), else a list with `..` for runs of three or more.
fn render(set: Set, min: u32, max: u32) -> String {
    let values: Vec<u32> = (min..=max).filter(|v| set >> v & 1 == 1).collect();
    if set == span(min, max) {
        return "*".to_string();
    }
    if let [first, second, .., last] = values[..] {
        let step = second - first;
        let regular = values.windows(2).all(|w| w[1] - w[0] == step);
        // Four or more: shorter lists read better spelt out (`00,30`).
        if values.len() >= 4 && step >= 2 && regular {
            // An open repetition `a/b` steps past the field's end into the next unit, and when
            // that carries across more than one unit (23:56 + 7 minutes is 00:03 of the next
            // day) systemd 252 resumes from the overshoot and skips the values below it: with
            // `00/7` it never fires at 00:00. So the open form is only used when the overshoot
            // lands at or before the first value (`00/5`: 55 + 5 wraps to 00); otherwise the
            // range ends at the last value, where systemd stops correctly.
            let overshoot = (last + step).checked_sub(max - min + 1);
            return if last + step > max && overshoot.is_some_and(|o| o <= first) {
                format!("{first:02}/{step}")
            } else {
                format!("{first:02}..{last:02}/{step}")
            };
        }
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{:02}..{:02}", values[i], values[j]));
        } else {
            parts.extend(values[i..=j].iter().map(|v| format!("{v:02}")));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// Weekdays in systemd's order and style: Monday first, `..` for three or more in a row.
fn weekday_list(set: Set) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    // Cron numbers Sunday 0; systemd starts the week on Monday.
    let has = |i: usize| set >> ((i + 1) % 7) & 1 == 1;
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !has(i) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < 7 && has(j + 1) {
            j += 1;
        }
        match j - i {
            0 => parts.push(NAMES[i].to_string()),
            1 => parts.push(format!("{},{}", NAMES[i], NAMES[j])),
            _ => parts.push(format!("{}..{}", NAMES[i], NAMES[j])),
        }
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendars(expr: &str) -> Vec<String> {
        match translate(expr) {
            Ok(CronSchedule::Calendars(c)) => c,
            other => panic!("{expr}: {other:?}"),
        }
    }

    #[test]
    fn translations() {
        let table: &[(&str, &[&str])] = &[
            ("30 2 * * *", &["*-*-* 02:30:00"]),
            ("0 9 * * 1-5", &["Mon..Fri *-*-* 09:00:00"]),
            ("0 9 * * MON-FRI", &["Mon..Fri *-*-* 09:00:00"]),
            ("0 0 1,15 * *", &["*-*-01,15 00:00:00"]),
            ("*/5 * * * *", &["*-*-* *:00/5:00"]),
            ("* * * * *", &["*-*-* *:*:00"]),
            ("0,30 * * * *", &["*-*-* *:00,30:00"]),
            ("5/15 * * * *", &["*-*-* *:05/15:00"]),
            // Open repetitions that would overshoot past 00 are closed (systemd 252 skips 00:00).
            ("*/7 * * * *", &["*-*-* *:00..56/7:00"]),
            ("0 */5 * * *", &["*-*-* 00..20/5:00:00"]),
            ("*/7 * * * * *", &["*-*-* *:*:00..56/7"]),
            ("0 */2 * * *", &["*-*-* 00/2:00:00"]),
            ("0 0-23/6 * * *", &["*-*-* 00/6:00:00"]),
            ("0 1-10/3 * * *", &["*-*-* 01..10/3:00:00"]),
            ("0 8-17 * * *", &["*-*-* 08..17:00:00"]),
            ("0 8,9 * * *", &["*-*-* 08,09:00:00"]),
            ("0 8-10,12,14-15 * * *", &["*-*-* 08..10,12,14,15:00:00"]),
            ("0 0 1-30/7 * *", &["*-*-01..29/7 00:00:00"]),
            ("0 0 1-20/7 * *", &["*-*-01,08,15 00:00:00"]),
            ("0 0 */10 * *", &["*-*-01..31/10 00:00:00"]),
            ("0 12 * jan,Jul *", &["*-01,07-* 12:00:00"]),
            ("0 0 1 */3 *", &["*-01/3-01 00:00:00"]),
            ("0 0 1 */4 *", &["*-01,05,09-01 00:00:00"]),
            ("15 10 * * sat,SUN", &["Sat,Sun *-*-* 10:15:00"]),
            ("0 0 * * 0,7", &["Sun *-*-* 00:00:00"]),
            ("0 0 * * 7", &["Sun *-*-* 00:00:00"]),
            ("0 0 * * 5-7", &["Fri..Sun *-*-* 00:00:00"]),
            ("0 0 * * 0-6", &["*-*-* 00:00:00"]),
            ("0 0 * * */2", &["Tue,Thu,Sat,Sun *-*-* 00:00:00"]),
            ("0 0 * * 1,2,4", &["Mon,Tue,Thu *-*-* 00:00:00"]),
            // Both restricted: either matches.
            ("0 0 1 * MON", &["*-*-01 00:00:00", "Mon *-*-* 00:00:00"]),
            (
                "0 0 1-31/2 * MON",
                &["*-*-01..31/2 00:00:00", "Mon *-*-* 00:00:00"],
            ),
            ("0 0 13 * 5", &["*-*-13 00:00:00", "Fri *-*-* 00:00:00"]),
            // A field starting with `*` is unrestricted for that rule (Vixie): both must match.
            ("0 0 */2 * MON", &["Mon *-*-01..31/2 00:00:00"]),
            ("0 0 1 * */2", &["Tue,Thu,Sat,Sun *-*-01 00:00:00"]),
            // Either matches, and one side matches every day.
            ("0 0 1 * 0-7", &["*-*-* 00:00:00"]),
            ("0 0 1-31 * MON", &["*-*-* 00:00:00"]),
            // February 31st never comes, so only the weekday side remains.
            ("0 0 31 2,4 MON", &["Mon *-02,04-* 00:00:00"]),
            ("0 0 29 2 *", &["*-02-29 00:00:00"]),
            ("0 0 31 * *", &["*-*-31 00:00:00"]),
            ("30 15 10 * * *", &["*-*-* 10:15:30"]),
            ("*/10 * * * * *", &["*-*-* *:*:00/10"]),
            ("* * * * * *", &["*-*-* *:*:*"]),
            ("  30   2 * * *  ", &["*-*-* 02:30:00"]),
            ("30\t2 * * *", &["*-*-* 02:30:00"]),
            ("@daily", &["*-*-* 00:00:00"]),
            ("@midnight", &["*-*-* 00:00:00"]),
            ("@DAILY", &["*-*-* 00:00:00"]),
            ("@hourly", &["*-*-* *:00:00"]),
            ("@weekly", &["Sun *-*-* 00:00:00"]),
            ("@monthly", &["*-*-01 00:00:00"]),
            ("@yearly", &["*-01-01 00:00:00"]),
            ("@annually", &["*-01-01 00:00:00"]),
        ];
        for &(expr, want) in table {
            assert_eq!(calendars(expr), want, "{expr}");
        }
        assert_eq!(translate("@reboot"), Ok(CronSchedule::Reboot));
    }

    #[test]
    fn errors_are_located() {
        // (expression, offset, len, message)
        let table: &[(&str, usize, usize, &str)] = &[
            ("", 0, 0, "empty cron expression"),
            ("   ", 0, 3, "empty cron expression"),
            ("* * * *", 0, 7, "expected 5 fields, found 4"),
            ("* * * * * * *", 12, 1, "expected 5 or 6 fields, found 7"),
            ("60 * * * *", 0, 2, "`60` is out of range for minute (0-59)"),
            ("0 24 * * *", 2, 2, "`24` is out of range for hour (0-23)"),
            (
                "0 0 32 * *",
                4,
                2,
                "`32` is out of range for day-of-month (1-31)",
            ),
            (
                "0 0 0 * *",
                4,
                1,
                "`0` is out of range for day-of-month (1-31)",
            ),
            ("0 0 * 13 *", 6, 2, "`13` is out of range for month (1-12)"),
            (
                "0 0 * * 8",
                8,
                1,
                "`8` is out of range for day-of-week (0-7)",
            ),
            (
                "60 0 0 * * *",
                0,
                2,
                "`60` is out of range for second (0-59)",
            ),
            (
                "99999999999 * * * *",
                0,
                11,
                "`99999999999` is out of range for minute (0-59)",
            ),
            ("0 5-1 * * *", 2, 3, "range `5-1` goes backwards"),
            ("0 0 * * FRI-MON", 8, 7, "range `FRI-MON` goes backwards"),
            ("*/0 * * * *", 2, 1, "step `0` never advances"),
            (
                "*/60 * * * *",
                2,
                2,
                "step `60` is larger than the minute field (at most 59)",
            ),
            ("*/ * * * *", 1, 1, "missing step after `/`"),
            ("*/x * * * *", 2, 1, "step `x` is not a number"),
            ("1/2/3 * * * *", 3, 1, "an entry has at most one `/`"),
            ("/5 * * * *", 0, 1, "missing minute before `/`"),
            ("-5 * * * *", 0, 1, "missing minute in range `-5`"),
            ("1-2-3 * * * *", 3, 1, "a range has only one `-`"),
            ("1,,2 * * * *", 2, 1, "empty entry in the minute list"),
            (",1 * * * *", 0, 1, "empty entry in the minute list"),
            ("1, * * * *", 1, 1, "empty entry in the minute list"),
            ("*5 * * * *", 0, 2, "`*` stands alone in `*5`"),
            (
                "a * * * *",
                0,
                1,
                "expected a number for minute (0-59), found `a`",
            ),
            ("0 0 * * MONDAY", 8, 6, "unknown day-of-week name `MONDAY`"),
            ("0 0 * January *", 6, 7, "unknown month name `January`"),
            ("0 0 * * MN", 8, 2, "unknown day-of-week name `MN`"),
            (
                "0 0 MON * *",
                4,
                3,
                "expected a number for day-of-month (1-31), found `MON`",
            ),
            ("0 0 L * *", 4, 1, "`L` is not supported in day-of-month"),
            ("0 0 ? * *", 4, 1, "`?` is not allowed in cron fields"),
            ("0 0 * * 1#2", 9, 1, "`#` is not allowed in cron fields"),
            (
                "0 0 30 2 *",
                4,
                2,
                "day-of-month `30` never occurs in month `2`, so this schedule never runs",
            ),
            (
                "0 0 31 APR,jun *",
                4,
                2,
                "day-of-month `31` never occurs in month `APR,jun`, so this schedule never runs",
            ),
            ("@dialy", 0, 6, "unknown macro `@dialy`"),
            (
                "@daily *",
                7,
                1,
                "`@daily` stands alone, but is followed by more",
            ),
            ("0 é * * *", 2, 2, "`é` is not allowed in cron fields"),
        ];
        for &(expr, offset, len, message) in table {
            let error = translate(expr).expect_err(expr);
            assert_eq!(error.message, message, "{expr}");
            assert_eq!(
                (error.offset, error.len),
                (offset, len),
                "{expr}: {error:?}"
            );
        }
    }

    #[test]
    fn help_suggests_a_fix() {
        let table: &[(&str, &str)] = &[
            ("0 0 * * MONDAY", "did you mean `MON`?"),
            ("0 0 * January *", "did you mean `JAN`?"),
            ("0 0 * * MN", "did you mean `MON`?"),
            ("@dialy", "did you mean `@daily`?"),
            (
                "0 5-1 * * *",
                "cron ranges do not wrap around: write `5-23,0-1`",
            ),
            (
                "0 0 * * FRI-MON",
                "cron ranges do not wrap around: write `FRI-6,0-MON`",
            ),
            (
                "*/60 * * * *",
                "`*/60` only matches `0`; write that if it is what you mean (cron cannot repeat across a larger unit)",
            ),
            ("0 0 ? * *", "`?` is not supported; use `*`"),
        ];
        for &(expr, help) in table {
            let error = translate(expr).expect_err(expr);
            assert_eq!(error.help.as_deref(), Some(help), "{expr}");
        }
    }

    #[test]
    fn every_output_passes_the_calendar_validator() {
        for expr in [
            "*/7 */5 */3 */2 */4",
            "1-59/2 1-23/2 2-31/2 2-12/2 1-6/2",
            "0 0 1 * MON",
            "*/10 * * * * *",
        ] {
            for calendar in calendars(expr) {
                assert!(
                    super::super::calendar::validate(&calendar).is_ok(),
                    "{expr} → {calendar}"
                );
            }
        }
    }
}

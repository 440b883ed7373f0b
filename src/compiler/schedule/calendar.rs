//! Validate systemd calendar expressions (systemd.time(7), "Calendar Events") without
//! running systemd, accepting what systemd 252 accepts, with errors that point into the text.
//!
//! The grammar mirrors systemd 252's parser: an optional weekday list, an optional date
//! (`year-month-day` or `month-day`, `~` counting days back from the month's end), an optional
//! time (`hour:minute[:second]`, seconds with up to six decimals), or `@<unix time>`, or one of
//! the shorthands; then an optional `UTC` or IANA zone after the last space. Each date and time
//! part is `*` or a list of `value[..stop][/repeat]`. After parsing, systemd normalizes every
//! value (two-digit years, range ends rounded down to the repetition) and then checks ranges;
//! this module does the same, in the same order, so that borderline forms agree.
//!
//! Known differences, all about forms a workflow has no reason to use: the local zone's
//! abbreviation (`CEST` on a machine in Berlin) is accepted by systemd only on such a machine
//! and is rejected here, as are the zone files outside the tz database proper (see
//! [`super::timezone`]).

use super::suggest::nearest;
use super::{ScheduleError, timezone};

/// What validation learnt about an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarInfo {
    /// The expression ends with `UTC` or a time zone name.
    pub has_timezone: bool,
}

/// Validate a systemd calendar expression (systemd.time(7) "Calendar Events") in pure Rust,
/// as systemd 252 would accept it: weekday lists/ranges, date and time with `*`, lists `,`,
/// ranges `..`, repetitions `/`, `~` last-day syntax, the shorthands (minutely, hourly, daily,
/// monthly, weekly, yearly, quarterly, semiannually), optional trailing time zone / UTC.
pub fn validate(expr: &str) -> Result<CalendarInfo, ScheduleError> {
    let (body, has_timezone) = split_zone(expr);
    if body.is_empty() {
        let error = if has_timezone {
            ScheduleError::new("missing calendar expression before the time zone", 0, 0)
        } else {
            ScheduleError::new("empty calendar expression", 0, 0)
        };
        return Err(error.help("write e.g. `daily`, `Mon..Fri 09:00` or `*-*-01 02:30`"));
    }
    match check(body) {
        Ok(()) => Ok(CalendarInfo { has_timezone }),
        Err(error) => Err(misspelt_zone(expr).unwrap_or(error)),
    }
}

/// Splits off a trailing ` UTC` (any case) or ` <zone name>`, as systemd does before parsing.
fn split_zone(expr: &str) -> (&str, bool) {
    let cut = expr.len().saturating_sub(4);
    if expr
        .get(cut..)
        .is_some_and(|tail| tail.eq_ignore_ascii_case(" UTC"))
    {
        return (&expr[..cut], true);
    }
    match expr.rsplit_once(' ') {
        Some((body, zone)) if timezone::is_valid(zone) => (body, true),
        _ => (expr, false),
    }
}

/// When everything before the last space is a valid expression, the last word was meant as a
/// time zone: report it as one, with a suggestion, rather than as calendar syntax.
fn misspelt_zone(expr: &str) -> Option<ScheduleError> {
    let (body, zone) = expr.rsplit_once(' ')?;
    let is_weekday = WEEKDAYS
        .iter()
        .any(|(name, _)| zone.eq_ignore_ascii_case(name));
    let looks_like_zone = zone.starts_with(|c: char| c.is_ascii_alphabetic()) && !is_weekday;
    if !looks_like_zone || body.is_empty() || check(body).is_err() {
        return None;
    }
    let error = timezone::validate(zone).err()?;
    Some(error.shifted(body.len() + 1))
}

const SHORTHANDS: [&str; 13] = [
    "minutely",
    "hourly",
    "daily",
    "monthly",
    "weekly",
    "yearly",
    "annually",
    "anually",
    "quarterly",
    "semiannually",
    "semi-annually",
    "biannually",
    "bi-annually",
];

/// Longer names first: systemd tries them in this order, and `Monday` must win over `Mon`.
const WEEKDAYS: [(&str, u8); 14] = [
    ("Monday", 0),
    ("Mon", 0),
    ("Tuesday", 1),
    ("Tue", 1),
    ("Wednesday", 2),
    ("Wed", 2),
    ("Thursday", 3),
    ("Thu", 3),
    ("Friday", 4),
    ("Fri", 4),
    ("Saturday", 5),
    ("Sat", 5),
    ("Sunday", 6),
    ("Sun", 6),
];

/// systemd refuses lists longer than this.
const MAX_LIST: usize = 241;
const USEC: u64 = 1_000_000;

/// Checks everything but the trailing zone.
fn check(body: &str) -> Result<(), ScheduleError> {
    if SHORTHANDS.iter().any(|s| s.eq_ignore_ascii_case(body)) {
        return Ok(());
    }
    // `daily ` or `daily,`: a shorthand followed by more than a time zone.
    let shorthand = SHORTHANDS.iter().find(|s| {
        body.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
            && !body[s.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '-')
    });
    if let Some(shorthand) = shorthand {
        let parser = Parser {
            text: body,
            pos: shorthand.len(),
        };
        return Err(parser
            .unexpected(&format!("the end of the expression after `{shorthand}`"))
            .help(format!(
                "`{shorthand}` stands alone; only a time zone may follow, after one space"
            )));
    }
    let mut parser = Parser { text: body, pos: 0 };
    let spec = parser.expression()?;
    spec.check(body)
}

/// One list entry of a date or time part: `start[..stop][/repeat]`, in the part's unit
/// (microseconds for seconds), with where each piece is in the text.
#[derive(Debug, Clone)]
struct Component {
    start: Value,
    stop: Option<Value>,
    repeat: u64,
    repeat_at: Option<(usize, usize)>,
    at: (usize, usize),
}

#[derive(Debug, Clone, Copy)]
struct Value {
    value: u64,
    at: (usize, usize),
}

/// A date or time part; `None` is `*`.
type Chain = Option<Vec<Component>>;

#[derive(Debug, Default)]
struct Spec {
    year: Chain,
    month: Chain,
    day: Chain,
    hour: Chain,
    minute: Chain,
    second: Chain,
    end_of_month: bool,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// An error about whatever is at the current position.
    fn unexpected(&self, expected: &str) -> ScheduleError {
        match self.text[self.pos..].chars().next() {
            None => ScheduleError::new(format!("expected {expected}, found the end"), self.pos, 0),
            Some(' ') => {
                ScheduleError::new(format!("expected {expected}, found a space"), self.pos, 1)
            }
            Some(c) => ScheduleError::new(
                format!("expected {expected}, found `{c}`"),
                self.pos,
                c.len_utf8(),
            ),
        }
    }

    /// The word starting at `at`: letters and digits, and `-` inside a word (`semi-annually`).
    fn word_at(&self, at: usize) -> &str {
        let rest = &self.text[at..];
        let mut end = 0;
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let joins = c == '-' && chars.peek().is_some_and(|&(_, n)| n.is_alphabetic());
            if !(c.is_alphanumeric() || joins) {
                break;
            }
            end = i + c.len_utf8();
        }
        &rest[..end]
    }

    fn expression(&mut self) -> Result<Spec, ScheduleError> {
        let mut spec = Spec::default();
        self.weekdays()?;
        if !self.date(&mut spec)? {
            self.time(&mut spec)?;
        }
        if !self.at_end() {
            return Err(self.unexpected("the end of the expression"));
        }
        Ok(spec)
    }

    /// `Mon,Wed..Fri `: names (any case), `..` or `-` ranges, `,` lists, then spaces.
    fn weekdays(&mut self) -> Result<(), ScheduleError> {
        let mut range_from: Option<(u8, usize)> = None;
        let mut first = true;
        loop {
            let name_at = self.pos;
            let rest = &self.text.as_bytes()[self.pos..];
            let found = WEEKDAYS.iter().find(|(name, _)| {
                rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            });
            let Some(&(name, day)) = found else {
                if first {
                    return Ok(()); // no weekdays: a date or time follows
                }
                return Err(self.unexpected("a weekday name"));
            };
            if !matches!(
                self.peek_at(name_at + name.len()),
                None | Some(b'-' | b'.' | b',' | b' ')
            ) {
                let rest = &self.text[name_at..];
                let word = &rest[..rest
                    .find(|c: char| !c.is_alphabetic())
                    .unwrap_or(rest.len())];
                return Err(ScheduleError::new(
                    format!("unknown weekday `{word}`"),
                    name_at,
                    word.len(),
                )
                .help(format!(
                    "did you mean `{}`?",
                    nearest(word, WEEKDAYS.map(|w| w.0)).unwrap_or(name)
                )));
            }
            if let Some((from, from_at)) = range_from
                && from > day
            {
                let text = &self.text[from_at..name_at + name.len()];
                return Err(ScheduleError::new(
                    format!("weekday range `{text}` goes backwards"),
                    from_at,
                    text.len(),
                )
                .help("weekday ranges run from Monday to Sunday; list the days instead, e.g. `Fri..Sun,Mon`"));
            }
            self.pos += name.len();
            match self.peek() {
                None => return Ok(()),
                Some(b' ') => {
                    self.skip_spaces();
                    return Ok(());
                }
                Some(b'.' | b'-') if range_from.is_some() => {
                    return Err(ScheduleError::new(
                        "a weekday range cannot continue here",
                        self.pos,
                        1,
                    )
                    .help("separate ranges with `,`, e.g. `Mon..Wed,Fri..Sun`"));
                }
                Some(b'.') if self.peek_at(self.pos + 1) != Some(b'.') => {
                    return Err(ScheduleError::new(
                        "a weekday range is written with `..`",
                        self.pos,
                        1,
                    ));
                }
                Some(b'.') => {
                    range_from = Some((day, name_at));
                    self.pos += 2;
                }
                Some(b'-') => {
                    range_from = Some((day, name_at));
                    self.pos += 1;
                }
                _ => {
                    // A `,`: the only other character allowed after a name.
                    range_from = None;
                    self.pos += 1;
                }
            }
            if matches!(self.peek(), None | Some(b' ')) {
                if range_from.is_some() {
                    return Err(self.unexpected("the weekday that ends the range"));
                }
                self.skip_spaces();
                return Ok(());
            }
            first = false;
        }
    }

    /// The date, if there is one. Returns true when nothing may follow (`@<unix time>`).
    fn date(&mut self, spec: &mut Spec) -> Result<bool, ScheduleError> {
        if self.at_end() {
            return Ok(false);
        }
        if self.peek() == Some(b'@') {
            self.timestamp()?;
            return Ok(true);
        }
        let begin = self.pos;
        let first = self.chain(false)?;
        if matches!(self.peek(), None | Some(b':')) {
            // That was the hour: no date.
            self.pos = begin;
            return Ok(false);
        }
        self.date_separator(spec)?;
        let second = self.chain(false)?;
        if matches!(self.peek(), None | Some(b' ')) {
            self.skip_spaces();
            (spec.month, spec.day) = (first, second);
            return Ok(false);
        }
        if spec.end_of_month {
            return Err(self.unexpected("a space after the day"));
        }
        self.date_separator(spec)?;
        let third = self.chain(false)?;
        if !matches!(self.peek(), None | Some(b' ')) {
            return Err(self.unexpected("a space after the date"));
        }
        self.skip_spaces();
        (spec.year, spec.month, spec.day) = (first, second, third);
        Ok(false)
    }

    fn date_separator(&mut self, spec: &mut Spec) -> Result<(), ScheduleError> {
        match self.peek() {
            Some(b'-') => {}
            Some(b'~') => spec.end_of_month = true,
            _ => {
                return Err(
                    self.unexpected("`-` or `~` between the parts of the date, or `:` in a time")
                );
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `@1700000000`: one moment, in UTC.
    fn timestamp(&mut self) -> Result<(), ScheduleError> {
        self.pos += 1;
        // systemd reads the number with strtoul(3), which skips white space and takes a sign.
        while self
            .peek()
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        {
            self.pos += 1;
        }
        let begin = self.pos;
        let negative = self.peek() == Some(b'-');
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.unexpected("seconds since 1970 after `@`"));
        }
        let magnitude = self.digits();
        // strtoul negates in unsigned arithmetic, and systemd then reads the bits as a time_t.
        let seconds = if negative {
            magnitude.wrapping_neg()
        } else {
            magnitude
        } as i64;
        let text = &self.text[begin..self.pos];
        let year = chrono::DateTime::from_timestamp(seconds, 0).map(|t| chrono::Datelike::year(&t));
        if !year.is_some_and(|y| (1970..=2199).contains(&y)) {
            return Err(ScheduleError::new(
                format!("time stamp `@{text}` is not between 1970 and the end of 2199"),
                begin,
                text.len(),
            ));
        }
        Ok(())
    }

    fn time(&mut self, spec: &mut Spec) -> Result<(), ScheduleError> {
        if self.at_end() {
            return Ok(()); // midnight
        }
        spec.hour = self.chain(false)?;
        if self.peek() != Some(b':') {
            return Err(self.unexpected("`:` after the hour"));
        }
        self.pos += 1;
        spec.minute = self.chain(false)?;
        if self.at_end() {
            return Ok(());
        }
        if self.peek() != Some(b':') {
            return Err(self.unexpected("`:` after the minute, or the end of the expression"));
        }
        self.pos += 1;
        spec.second = self.chain(true)?;
        if !self.at_end() {
            return Err(self.unexpected("the end of the expression after the seconds"));
        }
        Ok(())
    }

    /// `*`, or a `,` list of components.
    fn chain(&mut self, usec: bool) -> Result<Chain, ScheduleError> {
        if self.peek() == Some(b'*') {
            self.pos += 1;
            return Ok(None);
        }
        let mut list = Vec::new();
        loop {
            if list.len() == MAX_LIST {
                return Err(ScheduleError::new(
                    format!("a list may have at most {MAX_LIST} entries"),
                    self.pos,
                    self.word_at(self.pos).len().max(1),
                ));
            }
            list.push(self.component(usec)?);
            if self.peek() != Some(b',') {
                return Ok(Some(list));
            }
            self.pos += 1;
        }
    }

    fn component(&mut self, usec: bool) -> Result<Component, ScheduleError> {
        let begin = self.pos;
        let unit = if usec { USEC } else { 1 };
        let start = self.number(usec)?;
        let mut stop = None;
        let mut repeat = 0;
        if self.text[self.pos..].starts_with("..") {
            self.pos += 2;
            stop = Some(self.number(usec)?);
            repeat = unit;
        }
        let mut repeat_at = None;
        if self.peek() == Some(b'/') {
            self.pos += 1;
            let value = self.number(usec)?;
            repeat_at = Some(value.at);
            repeat = value.value;
            if repeat == 0 {
                return Err(ScheduleError::new(
                    "a repetition must be greater than zero",
                    begin,
                    self.pos - begin,
                ));
            }
        } else if let Some(stop) = stop.filter(|_| usec) {
            // Without `/`, a seconds range steps by whole seconds, so it must span one.
            if start.value.saturating_add(repeat) > stop.value {
                let text = &self.text[begin..self.pos];
                return Err(ScheduleError::new(
                    format!("range `{text}` is shorter than its step of one second"),
                    begin,
                    text.len(),
                )
                .help("give the step explicitly, e.g. `00..01/0.5`"));
            }
        }
        if !matches!(self.peek(), None | Some(b' ' | b',' | b'-' | b'~' | b':')) {
            return Err(self.unexpected("`,`, `..`, `/` or the next part"));
        }
        Ok(Component {
            start,
            stop,
            repeat,
            repeat_at,
            at: (begin, self.pos - begin),
        })
    }

    /// A decimal number; with `usec`, seconds with up to six decimals, in microseconds.
    fn number(&mut self, usec: bool) -> Result<Value, ScheduleError> {
        let begin = self.pos;
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.not_a_number());
        }
        let mut value = self.digits();
        if usec {
            value = value.saturating_mul(USEC);
            // One `.` is a decimal point, two are a range.
            if self.peek() == Some(b'.') && self.peek_at(self.pos + 1) != Some(b'.') {
                self.pos += 1;
                value = value.saturating_add(self.fraction()?);
            }
        }
        Ok(Value {
            value,
            at: (begin, self.pos - begin),
        })
    }

    fn not_a_number(&self) -> ScheduleError {
        let word = self.word_at(self.pos);
        if !word.starts_with(|c: char| c.is_alphabetic()) {
            return self.unexpected("a number or `*`");
        }
        if WEEKDAYS
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(word))
        {
            return ScheduleError::new(
                format!("weekday `{word}` out of place"),
                self.pos,
                word.len(),
            )
            .help("weekdays come first, joined by `,` or `..`, e.g. `Mon,Tue 12:00`");
        }
        if SHORTHANDS
            .iter()
            .any(|name| name.eq_ignore_ascii_case(word))
        {
            return ScheduleError::new(
                format!("`{word}` cannot be combined with other parts"),
                self.pos,
                word.len(),
            )
            .help(format!(
                "write `{word}` alone, or spell out the time, e.g. `Mon *-*-* 00:00`"
            ));
        }
        let error = ScheduleError::new(
            format!("expected a number or `*`, found `{word}`"),
            self.pos,
            word.len(),
        );
        let candidates = SHORTHANDS.iter().copied().chain(WEEKDAYS.map(|w| w.0));
        match nearest(word, candidates) {
            Some(s) => error.help(format!("did you mean `{s}`?")),
            None if self.pos == 0 => error.help(
                "start with a weekday such as `Mon`, a date, a time, or a word such as `daily`",
            ),
            None => error.help("months and days are numbers in calendar expressions"),
        }
    }

    /// Decimal digits, saturating: anything that large is out of range anyway.
    fn digits(&mut self) -> u64 {
        let mut value: u64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            value = value.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            self.pos += 1;
        }
        value
    }

    /// Up to six decimals in microseconds; a seventh digit rounds, later ones are ignored.
    fn fraction(&mut self) -> Result<u64, ScheduleError> {
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.unexpected("digits after the decimal point"));
        }
        let mut value = 0;
        for _ in 0..6 {
            value *= 10;
            if let Some(c) = self.peek().filter(u8::is_ascii_digit) {
                value += u64::from(c - b'0');
                self.pos += 1;
            }
        }
        if self.peek().is_some_and(|c| (b'5'..=b'9').contains(&c)) {
            value += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        Ok(value)
    }
}

/// The allowed values of one part, for messages and checks.
struct Bounds {
    name: &'static str,
    from: u64,
    to: u64,
    usec: bool,
}

impl Spec {
    /// systemd's normalization and range checks, in its order.
    fn check(mut self, text: &str) -> Result<(), ScheduleError> {
        if self.day.is_none() {
            self.end_of_month = false;
        }
        for component in self.year.iter_mut().flatten() {
            // Two-digit years: 12 → 2012, 89 → 1989.
            for v in std::iter::once(&mut component.start).chain(component.stop.as_mut()) {
                v.value += match v.value {
                    0..70 => 2000,
                    70..100 => 1900,
                    _ => 0,
                };
            }
        }
        let parts = [
            (
                &self.year,
                Bounds {
                    name: "year",
                    from: 1970,
                    to: 2199,
                    usec: false,
                },
                false,
            ),
            (
                &self.month,
                Bounds {
                    name: "month",
                    from: 1,
                    to: 12,
                    usec: false,
                },
                false,
            ),
            (
                &self.day,
                Bounds {
                    name: "day",
                    from: 1,
                    to: 31,
                    usec: false,
                },
                self.end_of_month,
            ),
            (
                &self.hour,
                Bounds {
                    name: "hour",
                    from: 0,
                    to: 23,
                    usec: false,
                },
                false,
            ),
            (
                &self.minute,
                Bounds {
                    name: "minute",
                    from: 0,
                    to: 59,
                    usec: false,
                },
                false,
            ),
            (
                &self.second,
                Bounds {
                    name: "second",
                    from: 0,
                    to: 60 * USEC - 1,
                    usec: true,
                },
                false,
            ),
        ];
        for (chain, bounds, end_of_month) in parts {
            let Some(chain) = chain else { continue };
            // systemd checks the normalized list sorted and without duplicates; the order
            // matters for `~` below.
            let key = |c: &Component| (c.start.value, c.stop.map(|s| s.value), c.repeat);
            let mut list: Vec<Component> = chain.iter().map(normalized).collect();
            list.sort_by_key(key);
            list.dedup_by_key(|c| key(c));
            let mut to = bounds.to;
            for (i, component) in list.into_iter().enumerate() {
                // Counted from the month's end, a day may go back at most 28 days; systemd 252
                // takes those 3 days off again for every further entry of the list.
                if end_of_month {
                    to = to.saturating_sub(3);
                }
                let from_end = FromEnd {
                    on: end_of_month,
                    later: end_of_month && i > 0,
                };
                check_component(component, &bounds, to, from_end, text)?;
            }
        }
        Ok(())
    }
}

/// Range ends rounded down onto the repetition; ranges that cannot repeat become one value.
fn normalized(c: &Component) -> Component {
    let mut c = c.clone();
    if let Some(stop) = c.stop.as_mut() {
        if stop.value > c.start.value && c.repeat > 0 {
            stop.value -= (stop.value - c.start.value) % c.repeat;
            if c.start.value + c.repeat > stop.value {
                (c.repeat, c.stop) = (0, None);
            }
        } else if stop.value == c.start.value {
            (c.repeat, c.stop) = (0, None);
        }
    }
    c
}

/// Whether days count from the month's end (`~`), and whether this is a later list entry.
#[derive(Clone, Copy)]
struct FromEnd {
    on: bool,
    later: bool,
}

/// One normalized list entry against its part's bounds, `to` already lowered for `~`.
fn check_component(
    c: Component,
    b: &Bounds,
    to: u64,
    from_end: FromEnd,
    text: &str,
) -> Result<(), ScheduleError> {
    let quote = |(at, len): (usize, usize)| &text[at..at + len];
    let end_of_month = from_end.on;
    let (shown_from, shown_to) = if b.usec {
        (b.from / USEC, to / USEC)
    } else {
        (b.from, to)
    };
    let counted = if end_of_month {
        " counted from the end of the month"
    } else {
        ""
    };
    for v in std::iter::once(c.start).chain(c.stop) {
        if v.value < b.from || v.value > to {
            let error = ScheduleError::new(
                format!(
                    "`{}` is out of range for the {}{counted} ({shown_from}-{shown_to})",
                    quote(v.at),
                    b.name
                ),
                v.at.0,
                v.at.1,
            );
            return Err(if from_end.later {
                error.help("systemd 252 allows 3 days less for each further entry of a `~` list; a range such as `~01..07` avoids that")
            } else {
                error
            });
        }
    }
    let repeat_at = c.repeat_at.unwrap_or(c.at);
    let span = to.saturating_sub(b.from);
    if c.repeat > span {
        let most = if b.usec {
            format!("{}.{:06}", span / USEC, span % USEC)
        } else {
            span.to_string()
        };
        return Err(ScheduleError::new(
            format!(
                "repetition `/{}` is too large for the {} (at most {most})",
                quote(repeat_at),
                b.name
            ),
            repeat_at.0,
            repeat_at.1,
        ));
    }
    let whole = quote(c.at);
    match c.stop {
        Some(stop) if c.start.value + c.repeat > stop.value => {
            Err(
                ScheduleError::new(format!("range `{whole}` goes backwards"), c.at.0, c.at.1)
                    .help("write the smaller value first"),
            )
        }
        None if end_of_month && c.start.value < b.from + c.repeat => Err(ScheduleError::new(
            format!(
                "`{whole}` never repeats: counting back from the end, it passes the first day of the month"
            ),
            c.at.0,
            c.at.1,
        )),
        None if !end_of_month && c.start.value + c.repeat > to => Err(ScheduleError::new(
            format!("`{whole}` never repeats: the {} ends at {shown_to}", b.name),
            c.at.0,
            c.at.1,
        )
        .help("drop the repetition, or start earlier")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accept/reject cases, each checked against systemd 252 by tests/schedule_calendar.rs.
    const CASES: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/schedule/calendar_cases.txt"
    ));

    /// `(expression, None)` for accepted, `(expression, Some((offset, len)))` for rejected.
    fn cases() -> Vec<(&'static str, Option<(usize, usize)>)> {
        let mut cases = Vec::new();
        for line in CASES.lines().filter(|l| l.starts_with(['+', '-'])) {
            let (head, rest) = line.split_once('"').expect(line);
            let expr = &rest[..rest.rfind('"').expect(line)];
            let numbers: Vec<usize> = head[1..]
                .split_whitespace()
                .map(|n| n.parse().expect(line))
                .collect();
            cases.push(match numbers[..] {
                [] if head.starts_with('+') => (expr, None),
                [offset, len] if head.starts_with('-') => (expr, Some((offset, len))),
                _ => panic!("bad case line: {line}"),
            });
        }
        cases
    }

    #[test]
    fn agrees_with_systemd_on_the_cases() {
        let cases = cases();
        assert!(cases.len() > 150);
        for (expr, location) in cases {
            match (validate(expr), location) {
                (Ok(_), None) => {}
                (Err(error), Some(location)) => {
                    assert_eq!((error.offset, error.len), location, "{expr:?}: {error:?}");
                    assert!(error.offset + error.len <= expr.len(), "{expr:?}");
                    assert!(
                        error.message.starts_with(|c: char| !c.is_uppercase()),
                        "{expr:?}: {error:?}"
                    );
                }
                (result, _) => panic!("{expr:?}: {result:?}, expected {location:?}"),
            }
        }
    }

    #[test]
    fn reports_the_time_zone() {
        for (expr, has_timezone) in [
            ("daily", false),
            ("daily UTC", true),
            ("daily utc", true),
            ("*-*-* 02:30 America/New_York", true),
            ("Mon 12:00", false),
        ] {
            assert_eq!(validate(expr), Ok(CalendarInfo { has_timezone }), "{expr}");
        }
    }

    #[test]
    fn messages_say_what_and_how() {
        // (expression, message, help)
        let table: &[(&str, &str, Option<&str>)] = &[
            (
                "dialy",
                "expected a number or `*`, found `dialy`",
                Some("did you mean `daily`?"),
            ),
            (
                "Mond 12:00",
                "unknown weekday `Mond`",
                Some("did you mean `Mon`?"),
            ),
            ("*-*-32", "`32` is out of range for the day (1-31)", None),
            (
                "*-*~29",
                "`29` is out of range for the day counted from the end of the month (1-28)",
                None,
            ),
            (
                "*:55/5",
                "`55/5` never repeats: the minute ends at 59",
                Some("drop the repetition, or start earlier"),
            ),
            (
                "*:*:00/60",
                "repetition `/60` is too large for the second (at most 59.999999)",
                None,
            ),
            (
                "Mon Tue",
                "weekday `Tue` out of place",
                Some("weekdays come first, joined by `,` or `..`, e.g. `Mon,Tue 12:00`"),
            ),
            (
                "daily ",
                "expected the end of the expression after `daily`, found a space",
                Some("`daily` stands alone; only a time zone may follow, after one space"),
            ),
            (
                "*-*-* 5..1:00",
                "range `5..1` goes backwards",
                Some("write the smaller value first"),
            ),
            (
                "*-*-* 02:30 Europe/Berln",
                "unknown time zone `Europe/Berln`",
                Some("did you mean `Europe/Berlin`?"),
            ),
            ("12", "expected `:` after the hour, found the end", None),
        ];
        for &(expr, message, help) in table {
            let error = validate(expr).expect_err(expr);
            assert_eq!(error.message, message, "{expr}");
            assert_eq!(error.help.as_deref(), help, "{expr}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for expr in [
            "é",
            "Mon é",
            "*-*-é",
            "12:é",
            "@",
            "@x",
            "*:*:1.é",
            "Mon..é",
            "99999999999999999999999:00",
            "\u{0}",
        ] {
            let _ = validate(expr);
        }
    }
}

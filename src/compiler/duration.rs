//! Durations as people write them (`30s`, `5m`, `1h30m`, `1h 30min`, `2d`, `500ms`) and as
//! systemd reads them (`1h 30min`). A bare number means seconds, as in systemd.

use std::time::Duration;

/// The longest duration flow accepts: ten years. systemd counts time spans in microseconds
/// in a `u64` (about 584,000 years), and nothing a workflow schedules needs more than this.
pub const MAX: Duration = Duration::from_secs(3650 * 86_400);

/// Parse a duration; the error says what was wrong and shows valid forms.
///
/// Exact integer arithmetic (no floating point): `1.5h` is 1 h + 5 × 1 h / 10, and every
/// step is checked, so no input can overflow.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("a duration cannot be empty".into());
    }
    if s.eq_ignore_ascii_case("infinity") {
        return Err("`infinity` is not a duration here; leave the key out for no limit".into());
    }
    let too_large = || format!("duration too large: `{s}` is longer than 10 years (3650d)");
    // Nanoseconds; u128 holds any sum of values that passed the per-part check below.
    let mut total: u128 = 0;
    let mut rest = s;
    let bare_number = s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number in `{s}`"));
        }
        let number = &rest[..digits];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty()
            || fraction.contains('.')
            || (number.contains('.') && fraction.is_empty())
        {
            return Err(format!("`{number}` is not a number"));
        }
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per_unit: u128 = match unit {
            "ms" | "msec" => 1_000_000,
            "s" | "sec" | "second" | "seconds" => 1_000_000_000,
            "m" | "min" | "minute" | "minutes" => 60_000_000_000,
            "h" | "hr" | "hour" | "hours" => 3_600_000_000_000,
            "d" | "day" | "days" => 86_400_000_000_000,
            "w" | "week" | "weeks" => 7 * 86_400_000_000_000,
            // A bare number means seconds, as in systemd.
            "" if bare_number => 1_000_000_000,
            "" => return Err(format!("`{s}` needs a unit after each number")),
            other => return Err(format!("unknown unit `{other}` in `{s}`")),
        };
        // More than 20 digits cannot be below the maximum in any unit.
        if whole.len() > 20 || fraction.len() > 20 {
            return Err(too_large());
        }
        let whole: u128 = whole.parse().map_err(|_| too_large())?;
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| too_large())?
        };
        let part = whole
            .checked_mul(nanos_per_unit)
            .and_then(|w| w.checked_add(fraction.checked_mul(nanos_per_unit)? / scale))
            .ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        if total > MAX.as_nanos() {
            return Err(too_large());
        }
        rest = &rest[unit_len..];
    }
    if !total.is_multiple_of(1_000_000) {
        return Err(format!(
            "`{s}` is not a whole number of milliseconds, the finest step flow uses"
        ));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// The valid forms, for error help.
pub const HELP: &str = "write a duration such as `30s`, `5m`, `1h30m`, `2d` or `500ms`";

/// Render as systemd time span syntax, e.g. `1h 30min`, `500ms`, `0`.
pub fn to_systemd(d: Duration) -> String {
    let mut out = String::new();
    push_systemd(&mut out, d);
    out
}

/// `to_systemd`, appended to `out`.
pub fn push_systemd(out: &mut String, d: Duration) {
    use std::fmt::Write;
    // Writing to a `String` cannot fail.
    let mut ms = d.as_millis();
    if ms == 0 {
        if d.is_zero() {
            out.push('0');
        } else {
            let _ = write!(out, "{}us", d.as_micros());
        }
        return;
    }
    let mut first = true;
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            if !first {
                out.push(' ');
            }
            first = false;
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1h 30min", 5_400_000),
            ("2d", 172_800_000),
            ("500ms", 500),
            ("1.5h", 5_400_000),
            ("90", 90_000),
            ("1w", 604_800_000),
            ("3650d", 315_360_000_000),
            ("0.001s", 1),
            ("0", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text).map(|d| d.as_millis()), Ok(ms), "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms() {
        for text in [
            "",
            "5x",
            "m",
            "1h 30",
            "-5s",
            "infinity",
            "1M",
            "99999999999999999999d",
            "1s 999999999999999999999999999999999999999999d",
            "99999999999999999999999999999999999999999",
            "3651d",
            "0.0001ms",
            "1.0005s",
            "1..5s",
            ".5s",
            "5.",
            "1e3s",
        ] {
            assert!(parse(text).is_err(), "{text} should fail");
        }
    }

    #[test]
    fn huge_values_say_too_large() {
        for text in [
            "3651d",
            "18446744073709551616",
            "1s 99999999999999999999999999d",
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.starts_with("duration too large"), "{text}: {err}");
        }
    }

    #[test]
    fn renders_systemd_syntax() {
        assert_eq!(to_systemd(Duration::from_secs(5400)), "1h 30min");
        assert_eq!(to_systemd(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(to_systemd(Duration::from_secs(0)), "0");
        assert_eq!(to_systemd(Duration::from_secs(86_400 * 2 + 1)), "2d 1s");
    }
}

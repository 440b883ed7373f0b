//! Durations as people write them (`30s`, `5m`, `1h30m`, `1h 30min`, `2d`, `500ms`) and as
//! systemd reads them (`1h 30min`). A bare number means seconds, as in systemd.

use std::time::Duration;

/// Parse a duration; the error says what was wrong and shows valid forms.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("a duration cannot be empty".into());
    }
    if s.eq_ignore_ascii_case("infinity") {
        return Err("`infinity` is not a duration here; leave the key out for no limit".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u128 = 0; // nanoseconds
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number in `{s}`"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{}` is not a number", &rest[..digits]))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per_unit: f64 = match unit {
            "ms" | "msec" => 1e6,
            "s" | "sec" | "second" | "seconds" => 1e9,
            "m" | "min" | "minute" | "minutes" => 60e9,
            "h" | "hr" | "hour" | "hours" => 3600e9,
            "d" | "day" | "days" => 86400e9,
            "w" | "week" | "weeks" => 7.0 * 86400e9,
            "" => return Err(format!("`{s}` needs a unit after each number")),
            other => return Err(format!("unknown unit `{other}` in `{s}`")),
        };
        total += (number * nanos_per_unit) as u128;
        if total > u128::from(u64::MAX) * 1_000_000_000 / 2 {
            return Err(format!("`{s}` is too long"));
        }
        rest = &rest[unit_len..];
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| format!("`{s}` is too long"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// The valid forms, for error help.
pub const HELP: &str = "write a duration such as `30s`, `5m`, `1h30m`, `2d` or `500ms`";

/// Render as systemd time span syntax, e.g. `1h 30min`, `500ms`, `0`.
pub fn to_systemd(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    let mut parts = Vec::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            parts.push(format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    parts.join(" ")
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
        ] {
            assert!(parse(text).is_err(), "{text} should fail");
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

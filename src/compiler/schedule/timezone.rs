//! IANA time zone names (`Europe/Berlin`, `UTC`), for `timezone:` and for the zone that may
//! end a calendar expression.
//!
//! systemd looks a zone up as a file in the machine's tz database. The names accepted here are
//! those of the tz database bundled with `chrono-tz`, which on Debian 12 is a subset of what
//! systemd finds; systemd also knows `Factory`, `posixrules` and the `posix/…` and `right/…`
//! copies, which a workflow has no reason to use.

use super::ScheduleError;
use super::suggest::nearest;

/// Validate an IANA time zone name (e.g. `Europe/Berlin`, `UTC`); on failure help suggests
/// the nearest valid name.
pub fn validate(tz: &str) -> Result<(), ScheduleError> {
    if is_valid(tz) {
        return Ok(());
    }
    if tz.is_empty() {
        return Err(ScheduleError::new("empty time zone name", 0, 0).help(EXAMPLES));
    }
    // The characters systemd allows in a zone name (it is a relative file name).
    let bad = tz
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/')));
    if let Some((at, c)) = bad {
        let what = if c == ' ' {
            "a space".to_string()
        } else {
            format!("`{c}`")
        };
        let error = ScheduleError::new(
            format!("{what} cannot appear in a time zone name"),
            at,
            c.len_utf8(),
        );
        return Err(error.help(help(tz.trim())));
    }
    Err(ScheduleError::new(format!("unknown time zone `{tz}`"), 0, tz.len()).help(help(tz)))
}

fn help(tz: &str) -> String {
    // `CEST`, `PDT`: abbreviations name no place, and most are ambiguous or not files at all.
    let abbreviation = (3..=5).contains(&tz.len()) && tz.bytes().all(|b| b.is_ascii_uppercase());
    match suggestion(tz) {
        Some(name) if !abbreviation => format!("did you mean `{name}`?"),
        _ if abbreviation => format!(
            "`{tz}` looks like an abbreviation; use the name of a place, such as `Europe/Berlin` or `America/New_York`"
        ),
        _ => EXAMPLES.to_string(),
    }
}

/// The check alone, without working out a helpful error.
pub(crate) fn is_valid(tz: &str) -> bool {
    tz == "UTC" || tz.parse::<chrono_tz::Tz>().is_ok()
}

const EXAMPLES: &str = "use a name from the IANA time zone database, such as `Europe/Berlin`, `America/New_York` or `UTC`";

/// The valid name closest to `tz`: a different spelling of the same name, a typo, or a city
/// given without its region (`Berlin` → `Europe/Berlin`).
fn suggestion(tz: &str) -> Option<&'static str> {
    let names = || chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name());
    if let Some(name) = names().find(|name| name.eq_ignore_ascii_case(tz)) {
        return Some(name);
    }
    if let Some(name) = nearest(tz, names()) {
        return Some(name);
    }
    if tz.contains('/') {
        return None;
    }
    let city = nearest(
        tz,
        names().filter_map(|name| name.rsplit_once('/').map(|(_, city)| city)),
    )?;
    names().find(|name| name.rsplit_once('/').is_some_and(|(_, c)| c == city))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zone_names() {
        for tz in [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Etc/GMT+5",
            "CET",
            "America/Argentina/Buenos_Aires",
        ] {
            assert_eq!(validate(tz), Ok(()), "{tz}");
        }
    }

    #[test]
    fn rejects_with_location_and_suggestion() {
        // (name, offset, len, help)
        let table: &[(&str, usize, usize, &str)] = &[
            ("Europe/Berln", 0, 12, "did you mean `Europe/Berlin`?"),
            ("europe/berlin", 0, 13, "did you mean `Europe/Berlin`?"),
            ("Berlin", 0, 6, "did you mean `Europe/Berlin`?"),
            (
                "America/New York",
                11,
                1,
                "did you mean `America/New_York`?",
            ),
            ("Europe/Berlin ", 13, 1, "did you mean `Europe/Berlin`?"),
            ("Mars/Olympus", 0, 12, EXAMPLES),
            (
                "CEST",
                0,
                4,
                "`CEST` looks like an abbreviation; use the name of a place, such as `Europe/Berlin` or `America/New_York`",
            ),
            ("", 0, 0, EXAMPLES),
        ];
        for &(tz, offset, len, help) in table {
            let error = validate(tz).expect_err(tz);
            assert_eq!((error.offset, error.len), (offset, len), "{tz}: {error:?}");
            assert_eq!(error.help.as_deref(), Some(help), "{tz}");
        }
    }

    #[test]
    fn names_are_case_sensitive_like_file_names() {
        assert!(validate("utc").is_err());
        assert!(validate("EUROPE/BERLIN").is_err());
    }
}

//! Values as systemd will take them: strings a unit file can hold, numbers in range,
//! durations, paths, programs, memory sizes and raw `[Service]` values. The checks that need
//! no tree are plain functions, tested alone.

use std::time::Duration;

use super::Decoder;
use super::keys::list;
use crate::compiler::diagnostic::Code;
use crate::compiler::duration;
use crate::compiler::suggest;
use crate::compiler::yaml::{self, Node};

/// Largest value flow accepts for one environment variable or `exec` argument: the kernel
/// refuses a single argument or environment string over 128 KiB at exec time.
pub const MAX_ARG_BYTES: usize = 64 * 1024;

/// Largest total of all `exec` arguments: their quoted form must stay on one unit-file line,
/// which systemd reads up to 1 MiB, and quoting can make a byte four.
pub const MAX_ARGV_BYTES: usize = 128 * 1024;

/// Longest description flow accepts (it becomes one line of every unit).
pub const MAX_DESCRIPTION: usize = 4096;

/// Longest path systemd accepts (PATH_MAX less the final NUL), and longest path component.
const PATH_MAX: usize = 4095;
const NAME_MAX: usize = 255;

/// Largest `cpu_quota` in percent: systemd stores it in 1/100 % as a 32-bit number.
pub(super) const MAX_CPU_QUOTA: u32 = 21_474_836;

impl Decoder<'_> {
    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        self.str(node, what).map(str::to_string)
    }

    /// `string`, borrowed from the tree.
    pub(super) fn str<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a str> {
        match node {
            Node::Scalar(s) if !node.is_null() => {
                self.clean_text(node, &s.value, what)?;
                Some(s.value.as_str())
            }
            _ => {
                self.type_error(node, what, "a string");
                None
            }
        }
    }

    /// Refuse characters no unit file may hold: NUL ends a C string, and systemd rejects
    /// a line holding a Unicode noncharacter (U+FFFE, U+FFFF, U+FDD0…U+FDEF, …) as not
    /// "UTF-8 clean".
    pub(super) fn clean_text(&mut self, node: &Node, text: &str, what: &str) -> Option<()> {
        // Every noncharacter is encoded in UTF-8 starting with byte 0xEF or above: text
        // without those bytes and without NUL needs no closer look.
        if !text.bytes().any(|b| b == 0 || b >= 0xEF) {
            return Some(());
        }
        let Some(bad) = text.chars().find(|&c| c == '\0' || is_noncharacter(c)) else {
            return Some(());
        };
        let message = if bad == '\0' {
            format!("{what} contains a NUL character")
        } else {
            format!(
                "{what} contains U+{:04X}, a Unicode noncharacter, which systemd refuses",
                bad as u32
            )
        };
        self.error(Code::ForbiddenCharacter, node.span(), message)
            .help = Some(
            "remove it (an escape such as `\\0` or `\\uFFFF` in a quoted string writes one)".into(),
        );
        None
    }

    pub(super) fn description(&mut self, node: &Node) -> Option<String> {
        let text = self.string(node, "`description`")?;
        if text.chars().count() > MAX_DESCRIPTION {
            self.error(
                Code::TooLarge,
                node.span(),
                format!("`description` is longer than {MAX_DESCRIPTION} characters"),
            )
            .help = Some("keep it to a sentence; put details in a comment".into());
            return None;
        }
        Some(text)
    }

    /// An absolute path that systemd takes as written: see `check_path`.
    pub(super) fn path(&mut self, node: &Node, what: &str, text: &str) -> Option<()> {
        match check_path(text) {
            Ok(()) => Some(()),
            Err((message, help)) => {
                self.error(Code::InvalidPath, node.span(), format!("{what}: {message}"))
                    .help = Some(help);
                None
            }
        }
    }

    pub(super) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node {
            Node::Scalar(s) if s.plain => {
                let v = yaml::parse_bool(&s.value);
                if v.is_none() {
                    self.type_error(node, what, "`true` or `false`");
                }
                v
            }
            _ => {
                self.type_error(node, what, "`true` or `false`");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let value = match node {
            Node::Scalar(s) if s.plain => s.value.parse::<i64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.error(
                    Code::OutOfRange,
                    node.span(),
                    format!("{what} must be between {min} and {max}, found {v}"),
                );
                None
            }
            None => {
                self.type_error(node, what, "a whole number");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match node {
            Node::Scalar(s) if !node.is_null() => s.value.as_str(),
            _ => {
                self.type_error(node, what, "a duration like `30s` or `5m`");
                return None;
            }
        };
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.error(Code::InvalidDuration, node.span(), format!("{what}: {msg}"))
                    .help = Some(duration::HELP.into());
                None
            }
        }
    }

    pub(super) fn positive_duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let d = self.duration(node, what)?;
        if d.is_zero() {
            let help = if what == "`every`" {
                "write an interval such as `15m` or `1h`"
            } else {
                "leave the key out for no limit"
            };
            self.error(
                Code::OutOfRange,
                node.span(),
                format!("{what} must be longer than zero"),
            )
            .help = Some(help.into());
            return None;
        }
        Some(d)
    }

    pub(super) fn choice<T>(
        &mut self,
        node: &Node,
        what: &str,
        names: &[&str],
        pick: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(node, what)?;
        let v = pick(&text);
        if v.is_none() {
            let help = suggest::nearest(&text, names.iter().copied()).map_or_else(
                || format!("use one of {}", list(names)),
                |s| format!("did you mean `{s}`?"),
            );
            self.error(
                Code::InvalidChoice,
                node.span(),
                format!("{what} must be one of {}, found `{text}`", list(names)),
            )
            .help = Some(help);
        }
        v
    }
}

/// systemd's memory limits: bytes with an optional K/M/G/T/P/E suffix (base 1024, decimals
/// allowed after a digit), from 1 byte to below 2^64; a percentage above 0 up to 100 with at
/// most two decimals; or `infinity`. Checked exactly as systemd 252 parses them, in integers.
pub(super) fn is_memory_size(v: &str) -> bool {
    if v == "infinity" {
        return true;
    }
    let decimal = |n: &str, max_fraction: usize| -> Option<(u128, u128, u32)> {
        let (whole, fraction) = n.split_once('.').unwrap_or((n, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > 20
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > max_fraction
            || (n.contains('.') && fraction.is_empty())
        {
            return None;
        }
        let f = if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        };
        Some((whole.parse().ok()?, f, fraction.len() as u32))
    };
    if let Some(p) = v.strip_suffix('%') {
        return decimal(p, 2).is_some_and(|(w, f, len)| {
            let hundredths = w * 100 + f * 10u128.pow(2 - len);
            hundredths > 0 && hundredths <= 10_000
        });
    }
    let (number, shift) = match v.as_bytes().last() {
        Some(b'K') => (&v[..v.len() - 1], 10),
        Some(b'M') => (&v[..v.len() - 1], 20),
        Some(b'G') => (&v[..v.len() - 1], 30),
        Some(b'T') => (&v[..v.len() - 1], 40),
        Some(b'P') => (&v[..v.len() - 1], 50),
        Some(b'E') => (&v[..v.len() - 1], 60),
        _ => (v, 0),
    };
    let Some((whole, fraction, len)) = decimal(number, if shift == 0 { 0 } else { 18 }) else {
        return false;
    };
    let unit = 1u128 << shift;
    let bytes = whole * unit + fraction * unit / 10u128.pow(len);
    bytes > 0 && bytes < u128::from(u64::MAX)
}

/// systemd's rules for a program in `ExecStart=`: an absolute path or a plain file name
/// (searched in its fixed PATH), without quotes, backslashes or control characters; and the
/// first character must not be one of the prefixes `-@:+!`, which systemd reads as flags
/// even inside quotes.
pub(super) fn check_program(program: &str) -> Result<(), (String, String)> {
    let help = "write the program as an absolute path like `/usr/bin/rsync` or a plain name like `rsync`; for a shell command line, use `run`";
    let problem = if program.is_empty() {
        Some("is empty".to_string())
    } else if program == ";" {
        Some("is not a program: systemd reads a lone `;` as the separator between two commands, even quoted".to_string())
    } else if let Some(c) = program.chars().next().filter(|c| "-@:+!".contains(*c)) {
        Some(format!(
            "starts with `{c}`, which systemd reads as a prefix flag, not as part of the name"
        ))
    } else if let Some(c) = program
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        Some(format!("contains {}", describe(c)))
    } else if program.starts_with('/') {
        // systemd resolves `..` here itself, so only the sizes and a file name matter.
        if program.len() > PATH_MAX || program.split('/').any(|c| c.len() > NAME_MAX) {
            Some(format!(
                "is longer than systemd accepts ({PATH_MAX} bytes, {NAME_MAX} per name)"
            ))
        } else if program.ends_with('/') {
            Some("ends with `/`: it names a directory, not a program".to_string())
        } else {
            None
        }
    } else if program.contains('/') {
        Some("is a relative path; systemd takes only absolute paths or plain names".to_string())
    } else if program == "." || program == ".." || program.len() > NAME_MAX {
        Some("is not a valid file name".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err((format!("the program `{program}` {p}"), help.to_string())),
    }
}

/// A path systemd accepts as written (`path_is_normalized`): absolute, no `.` or `..`
/// components, no `//`, no component over 255 bytes nor path over 4095; and, because unit
/// files are parsed line by line, no control characters, no whitespace at either end (it
/// would be trimmed) and no trailing backslash (it would continue the line).
fn check_path(path: &str) -> Result<(), (String, String)> {
    let help = "write a plain absolute path such as `/var/lib/backup`".to_string();
    let problem = if !path.starts_with('/') {
        Some("is not an absolute path".to_string())
    } else if path.len() > PATH_MAX {
        Some(format!("is longer than {PATH_MAX} bytes"))
    } else if let Some(c) = path.chars().find(|c| c.is_control()) {
        Some(format!("contains {}", describe(c)))
    } else if path.trim() != path {
        Some("starts or ends with whitespace".to_string())
    } else if path.ends_with('\\') {
        Some("ends with a backslash".to_string())
    } else if path.contains("//") {
        Some("contains `//`".to_string())
    } else if path.split('/').any(|c| c == "." || c == "..") {
        Some("contains a `.` or `..` component; systemd wants a normalized path".to_string())
    } else if path.split('/').any(|c| c.len() > NAME_MAX) {
        Some(format!("has a component longer than {NAME_MAX} bytes"))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err((format!("the path `{}` {p}", path.escape_debug()), help)),
    }
}

/// A character for an error message: control characters by code.
fn describe(c: char) -> String {
    if c.is_control() {
        format!("the control character U+{:04X}", c as u32)
    } else if c.is_whitespace() {
        "whitespace".to_string()
    } else {
        format!("`{c}`")
    }
}

/// Unicode noncharacters: U+FDD0…U+FDEF and the last two code points of every plane.
pub fn is_noncharacter(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// systemd's specifiers (systemd.unit(5), "Specifiers"), for values flow passes through.
const SPECIFIERS: &str = "aAbBCdEfgGhHiIjJlLmMnNopPqsStTuUvVwWyY%";

/// Check a raw `[Service]` value from the escape hatch for what would break the unit file
/// itself; the value's meaning is systemd's to check.
pub(super) fn check_raw_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_ARG_BYTES {
        return Err(format!("is longer than {MAX_ARG_BYTES} bytes"));
    }
    if value.contains(['\n', '\r']) {
        return Err("must be one line".into());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("contains {}", describe(c)));
    }
    if value.ends_with('\\') {
        return Err("ends with a backslash, which would continue the line in the unit file".into());
    }
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(s) if SPECIFIERS.contains(s) => {}
                Some(s) => {
                    return Err(format!(
                        "has `%{s}`, which is not a systemd specifier (write `%%` for `%`)"
                    ));
                }
                None => return Err("ends with `%` (write `%%` for a literal `%`)".into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_as_systemd_reads_them() {
        for ok in [
            "1", "512M", "1.5G", "15E", "50%", "50.55%", "100%", "infinity", "1.33333K",
        ] {
            assert!(is_memory_size(ok), "{ok}");
        }
        for bad in [
            "0",
            "0%",
            ".5M",
            "1.",
            "16E",
            "100.5%",
            "50.555%",
            "18446744073709551615",
            "1e3",
            "M",
            "",
        ] {
            assert!(!is_memory_size(bad), "{bad}");
        }
    }

    #[test]
    fn programs_and_paths_as_systemd_reads_them() {
        for ok in ["/bin/true", "echo", "/bin/../bin/true", "/opt/x%y"] {
            assert!(check_program(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-/bin/true",
            "@x",
            ":x",
            "+x",
            "!x",
            "./prog",
            "bin/true",
            "x y",
            "",
            "a\\b",
            "a\"b",
            "..",
            ";",
        ] {
            assert!(check_program(bad).is_err(), "{bad}");
        }
        for ok in ["/", "/tmp", "/tmp/", "/with space/x", "/x\\y"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "rel",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/x\\",
            "/tmp ",
            "/x\ny",
            &format!("/{}", "d".repeat(256)),
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_values_keep_the_unit_file_intact() {
        for ok in ["yes", "x%n", "100%%", "a\\b", ""] {
            assert_eq!(check_raw_value(ok), Ok(()), "{ok}");
        }
        for bad in ["yes\\", "a\nb", "a\rb", "%Z", "100%", "\u{1}"] {
            assert!(check_raw_value(bad).is_err(), "{bad}");
        }
    }
}

//! Reading keys back from a unit file flow generated: the one reader of installed units'
//! text (the workflow's DAG, its `[X-Flow]` policy, the `[Service]` keys the supervisor
//! needs), so that every key is read the way systemd reads it, in its own section.
//!
//! Only flow's own files are read, and flow wrote them one `Key=value` a line, without
//! continuation lines or quoting around the whole line; this is not a general parser of
//! systemd's format.

/// The values of `key=` lines in `[section]`, in file order.
pub fn values<'a>(
    contents: &'a str,
    section: &'a str,
    key: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let mut current = "";
    contents.lines().filter_map(move |line| {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
            return None;
        }
        if current != section {
            return None;
        }
        line.strip_prefix(key)?.strip_prefix('=')
    })
}

/// The value of `key=` in `[section]`: the last one set, as in systemd.
pub fn value<'a>(contents: &'a str, section: &'a str, key: &'a str) -> Option<&'a str> {
    values(contents, section, key).last()
}

/// A boolean key, read as systemd reads booleans; `None` when unset or unreadable.
pub fn boolean(contents: &str, section: &str, key: &str) -> Option<bool> {
    values(contents, section, key).fold(None, |value, v| match v.trim() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "# generated\n[Unit]\nWants=a.service\nWants=b.service\n\
                        [Service]\nTimeoutSec=5\nMemoryAccounting=false\nMemoryAccounting=yes\n\
                        [X-Flow]\nTimeout=10min\nMemoryAccounting=no\n";

    #[test]
    fn keys_are_read_in_their_own_section() {
        assert_eq!(
            values(UNIT, "Unit", "Wants").collect::<Vec<_>>(),
            ["a.service", "b.service"]
        );
        assert_eq!(value(UNIT, "X-Flow", "Timeout"), Some("10min"));
        assert_eq!(value(UNIT, "Service", "Timeout"), None);
        assert_eq!(value(UNIT, "Unit", "Timeout"), None);
        // The last one set wins, and only in its section.
        assert_eq!(boolean(UNIT, "Service", "MemoryAccounting"), Some(true));
        assert_eq!(boolean(UNIT, "X-Flow", "MemoryAccounting"), Some(false));
        assert_eq!(boolean(UNIT, "Service", "CPUAccounting"), None);
    }
}

//! Fuzz/property test of the compiler, run by plain `cargo test` (so in CI).
//!
//! At least 100,000 inputs go through `compiler::check` and `compiler::compile_with`:
//! structured workflows built from the real key set with edge-case values, byte-wise
//! mutations of real workflow files, and a fixed list of pathological documents (deep
//! nesting, alias bombs, huge lines). For every input:
//! - nothing panics (a stack overflow would abort the whole test binary, which fails too);
//! - a rejected input gets at least one diagnostic, and every diagnostic renders with
//!   `file:line:col` pointing into the file, with its line quoted;
//! - an accepted input gives units whose lines stay under systemd's line limit, without
//!   NUL or CR bytes.
//!
//! A sample of the accepted workflows (200 by default) goes through `systemd-analyze verify`,
//! which must print nothing at all.
//!
//! `FLOW_FUZZ_CASES` and `FLOW_FUZZ_SEED` change the number of inputs and the seed, e.g. to
//! run a million inputs once: `FLOW_FUZZ_CASES=1000000 cargo test --release --test fuzz_compile`;
//! `FLOW_FUZZ_SLOW=1` prints every input that took the compiler more than 8 ms.
//!
//! The generator is a small seeded RNG (SplitMix64) written here rather than proptest: the
//! inputs are YAML text built and mutated byte by byte, which needs no strategy combinators
//! and no shrinking, and a plain loop keeps 100,000 cases well inside CI's time.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command as Process;
use std::time::Instant;

use flow::compiler::model::Command;
use flow::compiler::{self, EmitOptions, GeneratedFile, diagnostic};

/// SplitMix64: tiny, fast and good enough to pick test inputs; the same seed gives the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------
// Value pools: plausible values and the edge cases that broke earlier versions.

/// Values that are valid where they are used, and values that are not.
type Pool = (&'static [&'static str], &'static [&'static str]);

const EDGE_STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "\u{FFFE}",
    "\u{FFFF}",
    "x\u{FDD0}y",
    "\u{10FFFF}",
    "\u{1FFFE}",
    "\r",
    "a\rb",
    "a\r\nb",
    "%",
    "%n",
    "%%",
    "%Z",
    "100%",
    "\\",
    "a\\",
    "a\\\\",
    "\\n",
    "\"",
    "'",
    "\"quoted\" and 'single'",
    "$HOME",
    "$$",
    "${X}",
    "\n",
    "a\nb",
    "line1\nline2\\",
    "\t",
    "\u{1}\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{202E}",
    "ünïcødé ✓",
    "😀",
    "..",
    "/a/../b",
    "-",
    "@",
    "~",
    "; rm -rf /",
    "`date`",
    "#not a comment",
    "key: value",
    "- item",
    "[1, 2]",
    "{a: b}",
    "&anchor",
    "*alias",
    "!tag",
    "null",
    "true",
    "0",
    "-1",
    "1e9",
    "0x10",
];

const DURATIONS: Pool = (
    &[
        "0", "0s", "1ms", "500ms", "30s", "5m", "1h30m", "1h 30min", "2d", "1w", "1.5h", ".5s",
        "5.", "90", "3650d",
    ],
    &[
        "0.5ms",
        "0.0001ms",
        "1.0005s",
        "1..5s",
        "-5s",
        "5x",
        "1us",
        "1e3s",
        "infinity",
        "3651d",
        "99999999999999999999d",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999999999999999999",
        "1s 999999999999999999999999999999999999999999d",
        "213503982334d",
        "584542w",
        "1h 1h 1h 1h",
        "",
    ],
);

const USERS: Pool = (
    &[
        "pi",
        "root",
        "www-data",
        "_x",
        "nobody",
        "0",
        "1000",
        "65534",
        "4294967294",
    ],
    &[
        "65535",
        "4294967295",
        "4294967296",
        "0123",
        "-1",
        "1a",
        "a.b",
        ".x",
        "a b",
        "a@b",
        "a:b",
        "a/b",
        "ünï",
        "x$",
        "%n",
        "abcdefghijabcdefghijabcdefghija",
        "abcdefghijabcdefghijabcdefghijab",
        "-x",
    ],
);

const MEMORY: Pool = (
    &[
        "512M",
        "1G",
        "1.5G",
        "1",
        "1K",
        "1P",
        "15E",
        "1E",
        "50%",
        "50.5%",
        "50.55%",
        "100%",
        "infinity",
        "18446744073709551614",
    ],
    &[
        "16E",
        "0",
        "0M",
        "0%",
        "50.555%",
        "100.5%",
        ".5M",
        "1.",
        "1.M",
        "18446744073709551615",
        "99999999999999999999T",
        "1e3",
        "1 M",
        "M",
        "%",
    ],
);

const CPU: Pool = (
    &["50%", "200%", "1%", "1.5%", "21474836%", "100000%"],
    &["0%", "%", "50", "21474837%", "4294967295%", "-5%"],
);

const TIMEZONES: Pool = (
    &[
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Etc/GMT+5",
        "Asia/Kathmandu",
        "Europe/Kyiv",
        "EST5EDT",
    ],
    &[
        "Europe/Berlin%",
        "../etc/passwd",
        "Europe/../UTC",
        " UTC",
        "CEST",
        "Factory",
        "posix/UTC",
        "Europe/Berlni",
        "",
    ],
);

const CRONS: Pool = (
    &[
        "30 2 * * *",
        "*/5 * * * *",
        "0 0 1 * mon",
        "0 0 13 * FRI",
        "0 0 29 2 *",
        "0 0 31 * *",
        "* * * * * *",
        "*/15 0 1,15 * 1-5",
        "0 12 * JAN-MAR SUN",
        "@daily",
        "@hourly",
        "@yearly",
        "@weekly",
        "@reboot",
    ],
    &[
        "@every",
        "0 0 L * *",
        "60 * * * *",
        "* * * *",
        "0 0 0 * *",
        "5-1 * * * *",
        "*/0 * * * *",
        "%",
        "",
    ],
);

const CALENDARS: Pool = (
    &[
        "Mon..Fri 02:30",
        "daily",
        "*-*-* 00:00:00",
        "*-*-* 00:00:00 Europe/Berlin",
        "Sat,Sun 10:00",
        "*-02-29 12:00",
    ],
    &["%", "Mon..Fro 02:30", "*-*-* 25:00", ""],
);

const PROGRAMS: Pool = (
    &[
        "/bin/true",
        "/bin/echo",
        "echo",
        "true",
        "/usr/bin/env",
        "/bin/../bin/true",
    ],
    &[
        "-/bin/true",
        "@/bin/true",
        ":/bin/true",
        "+/bin/true",
        "!/bin/true",
        "!!/bin/true",
        "./prog",
        "bin/true",
        "/bin/true ",
        "x y",
        "",
        "\0",
        "%n",
        "/bin/tr\\ue",
    ],
);

const PATHS: Pool = (
    &[
        "/",
        "/tmp",
        "/var/lib/flow",
        "/with space/x",
        "/x%y",
        "/tmp/",
        "/x\\y",
        "~",
        "/ünï",
    ],
    &[
        "/a/../b", "/a/./b", "/a//b", "/..", "/x\\", "rel", "~/x", "-/tmp", "/tmp ", "/x\ny",
    ],
);

const ENV_FILES: Pool = (
    &[
        "/etc/flow/x.env",
        "-/etc/flow/x.env",
        "/with space/x.env",
        "/x%.env",
    ],
    &["rel.env", "/a/../b.env", "/x\\", "-", "/", "--/x"],
);

const ENV_NAMES: &[&str] = &["A", "_x", "PATH", "FLOW_TASK", "1A", "A-B", "", "ü", "A=B"];

/// Escape-hatch keys with values systemd accepts, so that accepted workflows verify clean;
/// plus keys flow refuses (it writes them itself) and misspelt ones.
const SERVICE: &[(&str, &[&str])] = &[
    ("LimitNOFILE", &["1024", "infinity"]),
    (
        "ReadWritePaths",
        &[
            "/var/lib/x",
            "-/var/lib/y",
            "/var/lib/features",
            "/var/backups",
        ],
    ),
    ("ProtectHome", &["yes", "read-only", "tmpfs"]),
    ("PrivateTmp", &["yes", "no", "true", "0"]),
    ("NoNewPrivileges", &["yes", "false"]),
    ("TasksMax", &["100", "infinity"]),
    ("UMask", &["0077"]),
    ("Slice", &["flow.slice"]),
    ("SupplementaryGroups", &["adm"]),
    ("StandardOutput", &["journal"]),
    ("SyslogIdentifier", &["x%n"]),
    ("Type", &["simple"]),
    ("ExecStart", &["/bin/true"]),
    ("Restart", &["always"]),
    ("User", &["root"]),
    ("MemoryMax", &["1G"]),
    ("Nicee", &["1"]),
    ("X-Custom", &["1"]),
];

/// Values for escape-hatch keys that flow must reject or that must reach systemd intact.
const SERVICE_EDGE: &[&str] = &[
    "yes\\", "\\", "a\nb", "a\rb", "\0", "%Z", "%", "100%", "%%", "%n", "",
];

const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "timezone",
    "catch_up",
    "jitter",
    "overlap",
    "timeout",
    "max_parallel",
    "env",
    "env_file",
    "defaults",
];

const SETTINGS_KEYS: &[&str] = &[
    "timeout",
    "retries",
    "retry_delay",
    "backoff",
    "env",
    "env_file",
    "working_dir",
    "user",
    "group",
    "memory_max",
    "cpu_quota",
    "nice",
    "io_weight",
    "hardening",
    "service",
];

const TYPOS: &[&str] = &["need", "tiemout", "Run", "exe", "envs", "task", "scheudle"];

// ---------------------------------------------------------------------------------------
// YAML writing.

/// `s` as a YAML scalar in a random style that still means exactly `s`.
fn scalar(rng: &mut Rng, s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || "_./+-@~%$".contains(c))
        && !s.starts_with(['-', '@', '%', '~', '.'])
        && !matches!(
            s,
            "null" | "true" | "false" | "Null" | "NULL" | "True" | "False"
        );
    match rng.below(10) {
        0..=3 if plain_ok => s.to_string(),
        0..=2
            if !s
                .chars()
                .any(|c| c.is_control() || is_nonchar(c) || c == '\u{2028}' || c == '\u{85}') =>
        {
            format!("'{}'", s.replace('\'', "''"))
        }
        _ => double_quoted(s),
    }
}

fn is_nonchar(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_nonchar(c) || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\U{:08x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string value: mostly a valid one, sometimes an invalid one, an edge case or a very
/// long string.
fn value(rng: &mut Rng, (valid, invalid): Pool) -> String {
    match rng.below(10_000) {
        // Just over the 64 KiB limits (argument, environment value, inline script); much
        // longer ones are among the fixed inputs, as they are slow to scan in debug builds.
        0 => "x".repeat(64 * 1024 - 8 + rng.below(16)),
        1..=299 => rng.pick(EDGE_STRINGS).to_string(),
        300..=899 if !invalid.is_empty() => rng.pick(invalid).to_string(),
        _ if valid.is_empty() => rng.pick(invalid).to_string(),
        _ => rng.pick(valid).to_string(),
    }
}

struct Gen<'r> {
    rng: &'r mut Rng,
    out: String,
    anchors: Vec<String>,
}

impl Gen<'_> {
    fn line(&mut self, indent: usize, text: &str) {
        self.out.push_str(&" ".repeat(indent));
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn key_value(&mut self, indent: usize, key: &str, v: &str) {
        let v = scalar(self.rng, v);
        self.line(indent, &format!("{key}: {v}"));
    }

    fn duration(&mut self) -> String {
        value(self.rng, DURATIONS)
    }

    fn env(&mut self, indent: usize) {
        if !self.anchors.is_empty() && self.rng.chance(20) {
            let a = self.anchors[self.rng.below(self.anchors.len())].clone();
            self.line(indent, &format!("env: *{a}"));
            return;
        }
        let anchor = if self.rng.chance(20) {
            let a = format!("e{}", self.anchors.len());
            self.anchors.push(a.clone());
            format!(" &{a}")
        } else {
            String::new()
        };
        self.line(indent, &format!("env:{anchor}"));
        for _ in 0..=self.rng.below(3) {
            let name = if self.rng.chance(85) {
                ["A", "B", "HOME_DIR", "_x", "TZ"][self.rng.below(5)].to_string()
            } else {
                self.rng.pick(ENV_NAMES).to_string()
            };
            let v = value(
                self.rng,
                (
                    &["plain", "has space", "100%", "$HOME", "a\"b", "c:\\"],
                    &[],
                ),
            );
            let (k, v) = (scalar(self.rng, &name), scalar(self.rng, &v));
            self.line(indent + 2, &format!("{k}: {v}"));
        }
    }

    fn setting(&mut self, indent: usize, key: &str) {
        match key {
            "timeout" | "retry_delay" => {
                let d = self.duration();
                self.key_value(indent, key, &d)
            }
            "retries" => {
                let v = ["0", "1", "3", "100", "101", "-1", "4294967296", "x"][self.rng.below(8)];
                self.line(indent, &format!("retries: {v}"))
            }
            "backoff" => {
                let v = value(self.rng, (&["fixed", "exponential"], &["expo"]));
                self.key_value(indent, key, &v)
            }
            "hardening" => {
                let v = value(self.rng, (&["none", "basic", "strict"], &["strcit"]));
                self.key_value(indent, key, &v)
            }
            "env" => self.env(indent),
            "env_file" => {
                if self.rng.chance(30) {
                    self.line(indent, "env_file:");
                    for _ in 0..=self.rng.below(2) {
                        let f = value(self.rng, ENV_FILES);
                        let v = scalar(self.rng, &f);
                        self.line(indent + 2, &format!("- {v}"));
                    }
                } else {
                    let v = value(self.rng, ENV_FILES);
                    self.key_value(indent, key, &v)
                }
            }
            "working_dir" => {
                let v = value(self.rng, PATHS);
                self.key_value(indent, key, &v)
            }
            "user" | "group" => {
                let v = value(self.rng, USERS);
                self.key_value(indent, key, &v)
            }
            "memory_max" => {
                let v = value(self.rng, MEMORY);
                self.key_value(indent, key, &v)
            }
            "cpu_quota" => {
                let v = value(self.rng, CPU);
                self.key_value(indent, key, &v)
            }
            "nice" => {
                let v = ["-20", "19", "0", "20", "-21", "x", "1e3"][self.rng.below(7)];
                self.line(indent, &format!("nice: {v}"))
            }
            "io_weight" => {
                let v = ["1", "100", "10000", "0", "10001"][self.rng.below(5)];
                self.line(indent, &format!("io_weight: {v}"))
            }
            "service" => {
                self.line(indent, "service:");
                for _ in 0..=self.rng.below(2) {
                    let (k, values) = SERVICE[self.rng.below(SERVICE.len())];
                    let v = if self.rng.chance(15) {
                        self.rng.pick(SERVICE_EDGE).to_string()
                    } else {
                        values[self.rng.below(values.len())].to_string()
                    };
                    let v = scalar(self.rng, &v);
                    self.line(indent + 2, &format!("{k}: {v}"));
                }
            }
            _ => {}
        }
    }

    fn task(&mut self, name: &str, others: &[String]) {
        let key = scalar(self.rng, name);
        match self.rng.below(20) {
            // The shorthand: a bare command.
            0 => {
                let cmd = value(self.rng, (&["echo hi", "exit 1", "true"], &["", "  "]));
                let cmd = scalar(self.rng, &cmd);
                self.line(2, &format!("{key}: {cmd}"));
                return;
            }
            1 if self.rng.chance(20) => {
                self.line(2, &format!("{key}:"));
                return;
            }
            _ => {}
        }
        self.line(2, &format!("{key}:"));
        let ind = 4;
        match self.rng.below(10) {
            0..=5 => {
                let cmd = value(
                    self.rng,
                    (
                        &[
                            "echo hello",
                            "echo \"$HOME\" 100% 'q' \\\\ done",
                            "set -e\ncat <<'EOF'\n$HOME %n \\\nEOF\n",
                            "exit 3",
                            "printf '%s\\n' \"a b\"",
                        ],
                        &[],
                    ),
                );
                if cmd.contains('\n') && !cmd.contains(['\r', '\0']) && self.rng.chance(50) {
                    self.line(ind, "run: |");
                    for l in cmd.lines() {
                        self.line(ind + 2, l);
                    }
                } else {
                    self.key_value(ind, "run", &cmd);
                }
            }
            6..=8 => {
                self.line(ind, "exec:");
                let prog = value(self.rng, PROGRAMS);
                let prog = scalar(self.rng, &prog);
                self.line(ind + 2, &format!("- {prog}"));
                for _ in 0..self.rng.below(4) {
                    let a = value(
                        self.rng,
                        (&["-a", "has space", "100%", "$X", "--", "a\\"], &[]),
                    );
                    let a = scalar(self.rng, &a);
                    self.line(ind + 2, &format!("- {a}"));
                }
            }
            _ => {
                if self.rng.chance(50) {
                    self.key_value(ind, "run", "echo both");
                    self.line(ind, "exec: [/bin/true]");
                }
            }
        }
        if !others.is_empty() && self.rng.chance(60) {
            let n = self.rng.below(4);
            let mut needs = Vec::new();
            for _ in 0..n {
                let t = if self.rng.chance(90) {
                    others[self.rng.below(others.len())].clone()
                } else {
                    value(self.rng, (&[], &["nope", "t9"]))
                };
                needs.push(scalar(self.rng, &t));
            }
            self.line(ind, &format!("needs: [{}]", needs.join(", ")));
        }
        if self.rng.chance(30) {
            let w = value(
                self.rng,
                (&["all_success", "always", "on_failure"], &["on_fail"]),
            );
            self.key_value(ind, "when", &w);
        }
        if self.rng.chance(20) {
            let d = value(self.rng, (&["A task", "100% done", "trailing\\"], &[]));
            self.key_value(ind, "description", &d);
        }
        for _ in 0..self.rng.below(5) {
            let key = if self.rng.chance(95) {
                self.rng.pick(SETTINGS_KEYS)
            } else {
                self.rng.pick(TYPOS)
            };
            self.setting(ind, key);
        }
    }

    fn workflow(&mut self, id: usize) {
        if self.rng.chance(70) {
            let name = if self.rng.chance(90) {
                format!("w{id}")
            } else {
                value(self.rng, (&["ok-name"], &["-a", "a--b", "a.b"]))
            };
            self.key_value(0, "name", &name);
        }
        for _ in 0..self.rng.below(6) {
            let key = if self.rng.chance(97) {
                self.rng.pick(WORKFLOW_KEYS)
            } else {
                self.rng.pick(TYPOS)
            };
            match key {
                "name" => {}
                "description" => {
                    let d = value(self.rng, (&["Nightly backup", "50% of it", "a\\"], &[]));
                    self.key_value(0, key, &d)
                }
                "schedule" => match self.rng.below(4) {
                    0 | 1 => {
                        let c = value(self.rng, CRONS);
                        self.key_value(0, key, &c)
                    }
                    2 => {
                        let c = value(self.rng, CALENDARS);
                        let c = scalar(self.rng, &c);
                        self.line(0, &format!("schedule: {{calendar: {c}}}"))
                    }
                    _ => {
                        let d = value(self.rng, (&["15m", "1s", "1h"], &["0.5ms", "1ms", "0"]));
                        self.line(0, "schedule:");
                        self.key_value(2, "every", &d)
                    }
                },
                "timezone" => {
                    let tz = value(self.rng, TIMEZONES);
                    self.key_value(0, key, &tz)
                }
                "catch_up" => {
                    let v = ["true", "false", "yes", "1"][self.rng.below(4)];
                    self.line(0, &format!("catch_up: {v}"))
                }
                "jitter" | "timeout" => {
                    let d = self.duration();
                    self.key_value(0, key, &d)
                }
                "overlap" => {
                    let v = value(self.rng, (&["skip", "queue", "replace"], &["skipp"]));
                    self.key_value(0, key, &v)
                }
                "max_parallel" => {
                    let v = ["1", "2", "10000", "0", "10001", "-1"][self.rng.below(6)];
                    self.line(0, &format!("max_parallel: {v}"))
                }
                "env" => self.env(0),
                "env_file" => {
                    let v = value(self.rng, ENV_FILES);
                    self.key_value(0, key, &v)
                }
                "defaults" => {
                    self.line(0, "defaults:");
                    for _ in 0..=self.rng.below(3) {
                        let k = self.rng.pick(SETTINGS_KEYS);
                        self.setting(2, k);
                    }
                }
                other => self.line(0, &format!("{other}: 1")),
            }
        }
        let n = if self.rng.chance(3) {
            0
        } else {
            1 + self.rng.below(6)
        };
        let mut names: Vec<String> = Vec::new();
        for i in 0..n {
            let name = if self.rng.chance(93) {
                ["fetch", "build", "t2", "a-b", "x_y", "Z9"][i % 6].to_string()
            } else {
                value(
                    self.rng,
                    (&["fetch"], &["bad name", "-x", "a--b", "t.1", "ü"]),
                )
            };
            names.push(name);
        }
        if n == 0 && self.rng.chance(50) {
            return;
        }
        self.line(0, "tasks:");
        for i in 0..n {
            // Needs point at earlier tasks mostly (a DAG), sometimes anywhere (cycles).
            let others: Vec<String> = if self.rng.chance(90) {
                names[..i].to_vec()
            } else {
                names.clone()
            };
            let name = names[i].clone();
            self.task(&name, &others);
        }
    }
}

fn generate(rng: &mut Rng, id: usize) -> String {
    let mut g = Gen {
        rng,
        out: String::new(),
        anchors: Vec::new(),
    };
    g.workflow(id);
    g.out
}

/// Byte-wise mutations of a real workflow: flips, inserts of YAML-significant tokens,
/// deletions, duplications. The result is made valid UTF-8 (files are read as UTF-8).
fn mutate(rng: &mut Rng, seed: &str) -> String {
    const TOKENS: &[&str] = &[
        "- ", "[", "]", "{", "}", ":", ": ", "\n", "\r", "\r\n", "\t", "#", "&a ", "*a", "!!str ",
        "'", "\"", "\\", "%", "$", "\0", "\u{FFFF}", "\u{FEFF}", "---\n", "...\n", "? ", "|", ">",
        "  ", "~", "..", "@", "-", "\u{7f}", "ü",
    ];
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(6) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(6) {
            0 if len > 0 => {
                let i = at.min(len - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..at, t);
            }
            2 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                bytes.drain(at.min(end)..end);
            }
            3 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk = bytes[at.min(end)..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, chunk);
            }
            4 => {
                let b = [b' ', b'\n', b'0', b'9', b'a', 0xff, 0x80][rng.below(7)];
                bytes.insert(at, b);
            }
            _ => {
                let t = rng.pick(EDGE_STRINGS).as_bytes().to_vec();
                bytes.splice(at..at, t);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Documents that once broke parsers: deep nesting, alias bombs, huge lines, odd line ends.
fn pathological() -> Vec<String> {
    let mut v = vec![
        "- ".repeat(100_000),
        "[".repeat(100_000),
        "{a: ".repeat(50_000),
        format!("tasks:\n  t:\n    run: {}x", "[".repeat(100_000)),
        format!("tasks:\n  t: {}\n", "{a: ".repeat(20_000)),
        {
            let mut s = String::from("tasks:\n");
            for i in 0..100 {
                s.push_str(&" ".repeat(2 + i));
                s.push_str("a:\n");
            }
            s
        },
        format!(
            "description: {}\ntasks:\n  t: echo\n",
            "d".repeat((1 << 20) + 16)
        ),
        format!(
            "tasks:\n  t:\n    run: echo {}\n",
            "x".repeat((1 << 20) + 16)
        ),
        format!(
            "tasks:\n  t:\n    exec: [/bin/echo, {}]\n",
            vec!["y".repeat(60_000); 40].join(", ")
        ),
        format!(
            "tasks:\n  t:\n    run: echo\n    working_dir: /{}\n",
            "d".repeat(5000)
        ),
        format!(
            "tasks:\n  t:\n    run: echo\n    service: {{ReadWritePaths: /{}}}\n",
            "p".repeat((1 << 20) + 16)
        ),
        "tasks:\r  t: echo\r  u: [\r".to_string(),
        "tasks:\r\n  t:\r\n    ruun: echo\r\n".to_string(),
        "tasks:\r  t:\r    ruun: echo\r".to_string(),
        "\u{FEFF}tasks: {t: echo}\n".to_string(),
        "tasks: {t: echo}\n\0".to_string(),
        "tasks: {t: \"\u{FFFF}\"}\n".to_string(),
        "\t\ttasks:".to_string(),
        "tasks: {t: echo}\n---\n".to_string(),
        "&a [*a]".to_string(),
        "tasks: *x".to_string(),
        "? [a, b]\n: c\n".to_string(),
        "tasks:\n  ? [a]\n  : echo\n".to_string(),
        String::new(),
        "\n\n\n".to_string(),
        "tasks: {t: echo}\n# é\u{FFFF}\n".to_string(),
    ];
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{p}"); 10].join(", ")
        ));
    }
    bomb.push_str("tasks: {t: echo}\n");
    v.push(bomb);
    v
}

// ---------------------------------------------------------------------------------------
// Properties.

/// Systemd reads at most this much of one unit-file line (LONG_LINE_MAX).
const UNIT_LINE_MAX: usize = 1024 * 1024;

struct Outcome {
    accepted: Option<(String, Vec<GeneratedFile>, bool)>,
}

/// Run one input through the compiler and check the properties that hold for every input.
fn run_one(id: usize, text: &str) -> Result<Outcome, String> {
    let path = format!("/etc/flow/workflows/fz{id}.yaml");
    let opts = EmitOptions {
        source_path: path.clone(),
        unit_dir: "/etc/systemd/system".into(),
        flow_bin: "/usr/bin/flow".into(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let compiled = compiler::compile_with(text, &opts);
        // `check` is what `compile_with` starts with; compare the two on some inputs only,
        // which keeps the run fast.
        let checked = if id.is_multiple_of(16) {
            compiler::check(&path, text).map(|_| ())
        } else {
            compiled.as_ref().map(|_| ()).map_err(Clone::clone)
        };
        let rendered = compiled
            .as_ref()
            .err()
            .map(|d| diagnostic::render_all(d, &path, text));
        (checked, compiled, rendered)
    }));
    let (checked, compiled, rendered) = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("PANIC: {msg}"));
        }
    };
    if checked.is_ok() != compiled.is_ok() {
        return Err("check and compile_with disagree".into());
    }
    match compiled {
        Err(diags) => {
            if diags.is_empty() {
                return Err("rejected without any diagnostic".into());
            }
            let rendered = rendered.unwrap_or_default();
            // YAML counts `\r\n`, `\r` and `\n` as line breaks.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            for d in &diags {
                let Some(span) = d.span else {
                    return Err(format!("diagnostic without a position: {}", d.message));
                };
                let loc = format!("{path}:{}:{}", span.start.line, span.start.col);
                if span.start.line < 1 || span.start.line > lines || span.start.col < 1 {
                    return Err(format!("{loc} is outside the file ({lines} lines)"));
                }
                if !rendered.contains(&format!("--> {loc}\n")) {
                    return Err(format!("rendering lacks `--> {loc}`:\n{rendered}"));
                }
            }
            if !rendered.starts_with("error: ") || !rendered.contains(" | ") {
                return Err(format!("rendering quotes no line:\n{rendered}"));
            }
            Ok(Outcome { accepted: None })
        }
        Ok((wf, files)) => {
            // Scripts too large to inline are files for `/bin/sh`, which has no line limit.
            for f in files.iter().filter(|f| !f.name.ends_with(".sh")) {
                if let Some(line) = f.contents.lines().find(|l| l.len() >= UNIT_LINE_MAX) {
                    return Err(format!(
                        "{}: a line of {} bytes is over systemd's limit",
                        f.name,
                        line.len()
                    ));
                }
                if f.contents.contains(['\0', '\r']) {
                    return Err(format!("{}: contains NUL or CR", f.name));
                }
            }
            // The escape hatch passes values as written; flow checks their form (one line,
            // no trailing backslash, known specifiers) but not each key's own syntax, so
            // only workflows whose escape-hatch values are known to be valid for their key
            // take part in the systemd check.
            let verifiable = wf.tasks.iter().all(|t| {
                t.service.iter().all(|(k, v)| {
                    SERVICE
                        .iter()
                        .any(|(key, values)| key == k && values.contains(&v.as_str()))
                })
            });
            // systemd-analyze checks that each program exists on this machine; one that
            // does not is not a fault of the units.
            let installed = wf.tasks.iter().all(|t| match &t.command {
                Command::Exec(argv) => program_exists(&argv[0]),
                Command::Shell(_) => true,
            });
            Ok(Outcome {
                accepted: Some((wf.name, files, verifiable && installed)),
            })
        }
    }
}

/// Whether systemd would find `program` here: an absolute path, or a name in its fixed PATH.
fn program_exists(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(program).exists())
}

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for dir in ["tests/data/units", "tests/data/errors", "examples"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && let Ok(text) = std::fs::read_to_string(&p)
            {
                seeds.push(text);
            }
        }
    }
    assert!(seeds.len() >= 10, "the seed corpus went missing");
    seeds
}

fn shorten(text: &str) -> String {
    if text.len() <= 600 {
        return format!("{text:?}");
    }
    let mut end = 600;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

#[test]
fn generated_and_mutated_inputs_never_break_the_compiler() {
    let cases: usize = std::env::var("FLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("FLOW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_F10E);
    let sample_size = 200;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let corpus = seeds();

    // Panics are caught and reported below; keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let mut failures: Vec<String> = Vec::new();
    let (mut inputs, mut accepted, mut accepted_mutated) = (0usize, 0usize, 0usize);
    // Reservoir samples of accepted workflows: generated ones and mutated real files.
    let mut sample: Vec<(String, String, Vec<GeneratedFile>)> = Vec::new();
    let mut sample_mutated: Vec<(String, String, Vec<GeneratedFile>)> = Vec::new();
    let mut not_verifiable = 0usize;

    let fixed = pathological();
    for id in 0..cases.max(fixed.len()) {
        let (text, mutated) = if id < fixed.len() {
            (fixed[id].clone(), false)
        } else if rng.chance(55) {
            (generate(&mut rng, id), false)
        } else {
            let base = if rng.chance(70) {
                corpus[rng.below(corpus.len())].clone()
            } else {
                generate(&mut rng, id)
            };
            (mutate(&mut rng, &base), true)
        };
        inputs += 1;
        let t0 = Instant::now();
        let outcome = run_one(id, &text);
        if std::env::var("FLOW_FUZZ_SLOW").is_ok() && t0.elapsed().as_millis() > 8 {
            eprintln!(
                "slow #{id}: {:?} {}",
                t0.elapsed(),
                shorten(&text).chars().take(150).collect::<String>()
            );
        }
        match outcome {
            Err(problem) => {
                if failures.len() < 30 {
                    failures.push(format!(
                        "input #{id}: {problem}\n  input: {}",
                        shorten(&text)
                    ));
                }
            }
            Ok(Outcome { accepted: None }) => {}
            Ok(Outcome {
                accepted: Some((name, files, verifiable)),
            }) => {
                accepted += 1;
                if !verifiable {
                    not_verifiable += 1;
                    continue;
                }
                let (reservoir, seen, size) = if mutated {
                    accepted_mutated += 1;
                    (&mut sample_mutated, accepted_mutated, sample_size / 4)
                } else {
                    (&mut sample, accepted - accepted_mutated, sample_size)
                };
                if reservoir.len() < size {
                    reservoir.push((name, text, files));
                } else {
                    let j = rng.below(seen);
                    if j < size {
                        reservoir[j] = (name, text, files);
                    }
                }
            }
        }
    }
    std::panic::set_hook(hook);
    let compile_time = started.elapsed();

    // The systemd check on the sample: batches of workflows with distinct names per call.
    let mut all: Vec<_> = sample_mutated;
    all.extend(sample);
    all.truncate(sample_size);
    let mut verified = 0usize;
    let systemd_present = Process::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok();
    if systemd_present {
        let mut pending: Vec<&(String, String, Vec<GeneratedFile>)> = all.iter().collect();
        while !pending.is_empty() {
            let mut names = HashSet::new();
            let mut batch = Vec::new();
            let mut rest = Vec::new();
            for item in pending {
                if batch.len() < 25 && names.insert(item.0.clone()) {
                    batch.push(item);
                } else {
                    rest.push(item);
                }
            }
            pending = rest;
            let files: Vec<&GeneratedFile> = batch.iter().flat_map(|(_, _, f)| f).collect();
            match verify::verify_output(&files) {
                Ok(()) => verified += batch.len(),
                Err(said) => {
                    // Find the culprits one by one, to report their inputs.
                    for (name, text, files) in batch {
                        match verify::verify_output(&files.iter().collect::<Vec<_>>()) {
                            Ok(()) => verified += 1,
                            Err(said) => failures.push(format!(
                                "workflow `{name}` was accepted but systemd-analyze verify said:\n{said}\n  input: {}",
                                shorten(text)
                            )),
                        }
                    }
                    if failures.is_empty() {
                        failures.push(format!("a batch failed verification as a whole:\n{said}"));
                    }
                }
            }
        }
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (apt install systemd)"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed; the verify sample did not run");
    }

    eprintln!(
        "fuzz_compile: seed {seed:#x}: {inputs} inputs, {accepted} accepted \
         ({accepted_mutated} of them mutated files; {not_verifiable} left out of the sample: \
         escape-hatch values flow does not check, or programs not installed here), {verified} verified clean by systemd-analyze; \
         compile {:.1}s, total {:.1}s",
        compile_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} problem(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(inputs >= 100_000 || cases < 100_000, "ran {inputs} inputs");
    if systemd_present {
        assert!(
            verified >= sample_size.min(accepted - not_verifiable),
            "verified only {verified} workflows"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Escaping: no value and no file name can add, remove or change a line of a unit.

/// A hostile string: control characters (CR, ESC…), specifiers, quotes, backslashes,
/// `$`, unit-file syntax (`\nExecStartPre=+…`, `[Service]`), trailing backslashes and
/// unicode, in random pieces; for a path, NUL and noncharacters too (values holding them
/// are refused by the checks).
fn hostile(rng: &mut Rng, path: bool) -> String {
    const PATH_ONLY: &[&str] = &["\0", "\u{FFFE}", "x\u{FDD0}"];
    const PIECES: &[&str] = &[
        "\r",
        "\n",
        "\r\n",
        "\t",
        "\u{b}",
        "\u{c}",
        "\u{1b}[2J",
        "\u{7f}",
        "\u{85}",
        "\u{2028}",
        "\u{202e}",
        "\\",
        "\\\n",
        "\"",
        "'",
        "%",
        "%n",
        "%%",
        "$",
        "$HOME",
        "${X}",
        ";",
        " ; ",
        "#",
        "ExecStartPre=+/bin/touch /owned",
        "[Service]",
        "=",
        " ",
        "ünï✓",
        "a",
        "/x",
    ];
    let n = 1 + rng.below(8);
    (0..n)
        .map(|_| {
            if path && rng.chance(15) {
                rng.pick(PATH_ONLY)
            } else {
                rng.pick(PIECES)
            }
        })
        .collect()
}

/// A unit's lines as systemd 252 reads them (`\n`, `\r` and NUL each end a line), each as
/// its kind: a comment, a section, or the key it sets (blank lines are skipped, as systemd
/// skips them).
fn shape(contents: &str) -> Vec<String> {
    contents
        .split(['\n', '\r', '\0'])
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // systemd 252 joins the next line to one whose last character is a backslash.
            let joins = if line.ends_with('\\') {
                " (continued)"
            } else {
                ""
            };
            let l = line.trim();
            if l.starts_with(['#', ';']) {
                "#".to_string()
            } else if l.starts_with('[') {
                l.to_string()
            } else {
                let key = l.split('=').next().unwrap_or("");
                format!("{key}={joins}")
            }
        })
        .collect()
}

/// A workflow whose every free-text value is `v(i)`: descriptions, environment values,
/// a shell script, `exec` arguments.
fn free_text_workflow(v: &dyn Fn(usize) -> String) -> String {
    format!(
        "description: {}
tasks:
  first:
    description: {}
    run: {}
    env:
      A: {}
      B: {}
  second:
    needs: [first]
    description: {}
    exec: [/bin/printf, {}, {}]
  alert:
    needs: [first, second]
    when: on_failure
    run: {}
",
        double_quoted(&v(0)),
        double_quoted(&v(1)),
        double_quoted(&format!("echo {}", v(2))),
        double_quoted(&v(3)),
        double_quoted(&v(4)),
        double_quoted(&v(5)),
        double_quoted(&v(6)),
        double_quoted(&v(7)),
        double_quoted(&format!("echo {}", v(8))),
    )
}

#[test]
fn no_value_or_file_name_changes_the_lines_of_a_unit() {
    let cases: usize = std::env::var("FLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(3_000, |n| n / 30);
    let mut rng = Rng(0x00E5_CA9E);
    let plain = |_: usize| "v".to_string();
    let twin_yaml = free_text_workflow(&plain);
    let opts = |source: String| EmitOptions {
        source_path: source,
        unit_dir: "/etc/systemd/system".into(),
        flow_bin: "/usr/bin/flow".into(),
    };
    let (twin_wf, _) = compiler::compile_with(&twin_yaml, &opts("/w/twin.yaml".into()))
        .expect("the plain workflow compiles");
    let twin: Vec<(String, Vec<String>)> =
        compiler::emit::emit(&twin_wf, &opts("/w/twin.yaml".into()))
            .into_iter()
            .map(|f| (f.name, shape(&f.contents)))
            .collect();
    let mut sample: Vec<Vec<GeneratedFile>> = Vec::new();
    let mut checked = 0;
    for case in 0..cases {
        let values: Vec<String> = (0..9).map(|_| hostile(&mut rng, false)).collect();
        let yaml = free_text_workflow(&|i| values[i].clone());
        // The workflow is checked with a plain path (a path with control characters is
        // refused by `check`), then emitted with a hostile one: the emitter must hold on
        // its own.
        let wf = match compiler::check("/w/twin.yaml", &yaml) {
            Ok(wf) => wf,
            // NUL, noncharacters and blank scripts are refused, which is fine.
            Err(_) => continue,
        };
        let path = format!("/etc/flow/{}/twin.yaml", hostile(&mut rng, true));
        let files = compiler::emit::emit(&wf, &opts(path.clone()));
        for (file, (name, expected)) in files.iter().zip(&twin) {
            assert_eq!(&file.name, name);
            let got = shape(&file.contents);
            assert_eq!(
                &got, expected,
                "{name}: the lines changed\n  path: {path:?}\n  values: {values:?}\n{}",
                file.contents
            );
            assert!(
                !file.contents.contains(['\r', '\0']),
                "{name} holds a CR or NUL\n{}",
                file.contents
            );
        }
        checked += 1;
        if case % (cases / 20).max(1) == 0 {
            sample.push(files);
        }
    }
    assert!(
        checked > cases / 2,
        "only {checked} of {cases} inputs compiled"
    );
    if verify::analyze_available() {
        for files in &sample {
            verify::verify_clean(files);
        }
    }
}

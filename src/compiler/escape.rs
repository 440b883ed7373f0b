//! Quoting for unit files, and for terminals ([`printable`]), in one place. What systemd 252 does to a value (verified, see the
//! project's systemd facts): specifiers expand `%x` (so `%` is written `%%`); in `ExecStart=`
//! `$VAR` is substituted (so `$` is written `$$`); inside a double-quoted word C escapes apply
//! (`\\`, `\"`, `\n`, `\xNN`). Writing every command and environment word double-quoted with
//! these escapes delivers it to the process byte for byte.
//!
//! Each function comes in two forms: `push_*` appends to a buffer (what `emit` uses, so that
//! a unit is written into one string), and the plain one returns a new string. Every
//! character that needs an escape is ASCII, so the text is scanned byte by byte and copied
//! in runs between those bytes: a value with nothing to escape is one copy.

/// One double-quoted word for `Exec*=` lines: specifiers, variables and C escapes neutralised.
pub fn exec_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_exec_word(&mut out, s);
    out
}

/// `exec_word`, appended to `out`.
pub fn push_exec_word(out: &mut String, s: &str) {
    out.push('"');
    push_quoted_body(out, s, true);
    out.push('"');
}

/// The inverse of [`push_exec_word`]: the value of the double-quoted word `s` starts with,
/// and the text after it. `None` when `s` does not start with such a word. (flow reads back
/// words it wrote itself, e.g. the flow binary an installed unit calls.)
pub fn read_exec_word(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut bytes = Vec::with_capacity(body.len());
    let mut it = body.bytes().enumerate();
    while let Some((i, b)) = it.next() {
        match b {
            b'"' => {
                let value = String::from_utf8(bytes).ok()?;
                return Some((value, &body[i + 1..]));
            }
            b'%' | b'$' => {
                // Written doubled.
                let (_, next) = it.next()?;
                if next != b {
                    return None;
                }
                bytes.push(b);
            }
            b'\\' => match it.next()?.1 {
                b'\\' => bytes.push(b'\\'),
                b'"' => bytes.push(b'"'),
                b'n' => bytes.push(b'\n'),
                b't' => bytes.push(b'\t'),
                b'r' => bytes.push(b'\r'),
                b'x' => {
                    let hex = [it.next()?.1, it.next()?.1];
                    let hex = std::str::from_utf8(&hex).ok()?;
                    bytes.push(u8::from_str_radix(hex, 16).ok()?);
                }
                _ => return None,
            },
            _ => bytes.push(b),
        }
    }
    None
}

/// One double-quoted `NAME=value` word for `Environment=`: no `$` substitution happens there.
pub fn env_assignment(name: &str, value: &str) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + 3);
    push_env_assignment(&mut out, name, value);
    out
}

/// `env_assignment`, appended to `out`.
pub fn push_env_assignment(out: &mut String, name: &str, value: &str) {
    out.push('"');
    push_quoted_body(out, name, false);
    out.push('=');
    push_quoted_body(out, value, false);
    out.push('"');
}

/// A value systemd takes verbatim after specifier expansion (paths, descriptions):
/// `%` doubled; line breaks and tabs would end or garble the line, so they become spaces;
/// other control characters and Unicode noncharacters are written visibly (see
/// [`push_visible`]): systemd reads NUL as the end of a line too, and a terminal obeys
/// the others when `systemctl status` shows the description.
pub fn raw(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_raw(&mut out, s);
    out
}

/// `raw`, appended to `out`.
pub fn push_raw(out: &mut String, s: &str) {
    push_raw_joined(out, &[s]);
}

/// `raw` of the concatenation of `parts`, appended to `out` without building it first.
pub fn push_raw_joined(out: &mut String, parts: &[&str]) {
    let start = out.len();
    for part in parts {
        let bytes = part.as_bytes();
        let mut from = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let replacement = match b {
                b'%' => "%%",
                b'\n' | b'\r' | b'\t' => " ",
                // Other control characters, and the first byte of every character that may
                // be a C1 control (U+0080…U+009F: 0xC2), a bidirectional control (0xE2) or
                // a noncharacter (0xEF and up).
                0..0x20 | 0x7f | 0xc2 | 0xe2 | 0xef.. => {
                    // `i` is at the first byte of a character: continuation bytes are
                    // 0x80…0xBF, which no arm matches.
                    let Some(c) = part[i..].chars().next() else {
                        continue;
                    };
                    if !needs_visible(c) {
                        continue;
                    }
                    out.push_str(&part[from..i]);
                    push_visible(out, c);
                    from = i + c.len_utf8();
                    continue;
                }
                _ => continue,
            };
            // `i` is at an ASCII byte, so both slices end on character boundaries.
            out.push_str(&part[from..i]);
            out.push_str(replacement);
            from = i + 1;
        }
        out.push_str(&part[from..]);
    }
    // A trailing backslash would continue the line into the next key, and systemd drops
    // trailing whitespace anyway: neither is left at the end (nor a backslash that
    // whitespace hid, as a line break turned into a space would).
    while out.len() > start && out.ends_with(['\\', ' ']) {
        out.pop();
    }
}

/// The text of a comment line (after `# `): every character that [`needs_visible`] written
/// visibly, everything else as it is (a comment takes no specifiers and, verified on
/// systemd 252, a trailing backslash does not continue it). A path without such characters
/// is written unchanged, so that flow can read it back from the header.
pub fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if needs_visible(c) {
            push_visible(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Text for a terminal: control characters (C0 but tab, DEL, C1), Unicode noncharacters
/// and the bidirectional overrides that reorder what a terminal shows, written visibly as
/// `\xNN` or `\u{NNNN}`; everything else, tabs included, as it is. Used for every line of a
/// task's output that `flow logs` prints, and for every value a diagnostic echoes: what a
/// task or a file holds cannot move the cursor, clear the screen or retitle the terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c != '\t' && needs_visible(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c != '\t' && needs_visible(c) {
            push_visible(&mut out, c);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Characters no line flow writes may hold as they are: control characters (C0, DEL,
/// C1), Unicode noncharacters (systemd refuses a line holding one as not UTF-8 clean), and
/// the bidirectional embedding, override and isolate controls.
pub fn needs_visible(c: char) -> bool {
    let n = c as u32;
    c.is_control()
        || (0xFDD0..=0xFDEF).contains(&n)
        || n & 0xFFFE == 0xFFFE
        || (0x202A..=0x202E).contains(&n)
        || (0x2066..=0x2069).contains(&n)
}

/// `c` written visibly: `\xNN` for ASCII, `\u{NNNN}` for the others.
pub fn push_visible(out: &mut String, c: char) {
    use std::fmt::Write;
    // Writing to a `String` cannot fail.
    let _ = if c.is_ascii() {
        write!(out, "\\x{:02x}", c as u32)
    } else {
        write!(out, "\\u{{{:04x}}}", c as u32)
    };
}

/// The inside of a double-quoted word (without the quotes).
fn push_quoted_body(out: &mut String, s: &str, exec: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &str = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            b'\t' => "\\t",
            b'\r' => "\\r",
            b'%' => "%%",
            b'$' if exec => "$$",
            // Other ASCII control characters. Bytes of multi-byte characters are all
            // 0x80 or above, so none of them matches any arm.
            0..0x20 | 0x7f => {
                out.push_str(&s[start..i]);
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(replacement);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words() {
        assert_eq!(
            exec_word(r#"echo "hi" $HOME 100% \n"#),
            r#""echo \"hi\" $$HOME 100%% \\n""#
        );
        assert_eq!(exec_word("a\nb\tc\u{1}"), r#""a\nb\tc\x01""#);
        assert_eq!(exec_word("ünï ✓"), "\"ünï ✓\"");
        assert_eq!(exec_word(""), "\"\"");
    }

    #[test]
    fn exec_words_read_back() {
        for value in [
            "/usr/bin/flow",
            "/opt/my flow/bin/flow",
            r#"a "quoted" \ back\slash $HOME 100% ünï ✓"#,
            "ctl\u{1}\n\t\r\u{7f}",
            "",
        ] {
            let word = exec_word(value);
            assert_eq!(
                read_exec_word(&format!("{word} rest")),
                Some((value.to_string(), " rest")),
                "{word}"
            );
        }
        for bad in [
            "",
            "unquoted",
            "\"open",
            "\"100% \"",
            "\"$x\"",
            "\"\\q\"",
            "\"\\xZZ\"",
        ] {
            assert_eq!(read_exec_word(bad), None, "{bad}");
        }
    }

    #[test]
    fn env_and_raw() {
        assert_eq!(
            env_assignment("X", "has space $HOME 100%"),
            r#""X=has space $HOME 100%%""#
        );
        assert_eq!(raw("50% done\nnext\\"), "50%% done next");
        assert_eq!(
            raw("a\tb\rc\0d\u{1b}[2J\u{85}e\u{FFFE}ü✓"),
            "a b c\\x00d\\x1b[2J\\u{0085}e\\u{fffe}ü✓"
        );
    }

    #[test]
    fn comments_and_terminal_text_show_control_characters() {
        assert_eq!(comment("/etc/flow/a b.yaml"), "/etc/flow/a b.yaml");
        assert_eq!(
            comment("/x\rExecStartPre=+/bin/sh\n\u{0}.yaml\\"),
            "/x\\x0dExecStartPre=+/bin/sh\\x0a\\x00.yaml\\"
        );
        assert_eq!(printable("plain\ttext ✓"), "plain\ttext ✓");
        assert_eq!(
            printable("\u{1b}]0;pwned\u{7}\rok\u{202e}"),
            "\\x1b]0;pwned\\x07\\x0dok\\u{202e}"
        );
    }
}

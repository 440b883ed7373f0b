//! Quoting for unit files, in one place. What systemd 252 does to a value (verified, see the
//! project's systemd facts): specifiers expand `%x` (so `%` is written `%%`); in `ExecStart=`
//! `$VAR` is substituted (so `$` is written `$$`); inside a double-quoted word C escapes apply
//! (`\\`, `\"`, `\n`, `\xNN`). Writing every command and environment word double-quoted with
//! these escapes delivers it to the process byte for byte.

/// One double-quoted word for `Exec*=` lines: specifiers, variables and C escapes neutralised.
pub fn exec_word(s: &str) -> String {
    quoted(s, true)
}

/// One double-quoted `NAME=value` word for `Environment=`: no `$` substitution happens there.
pub fn env_assignment(name: &str, value: &str) -> String {
    quoted(&format!("{name}={value}"), false)
}

/// A value systemd takes verbatim after specifier expansion (paths, descriptions):
/// `%` doubled; line breaks would end the line, so they become spaces.
pub fn raw(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    // A trailing backslash would continue the line into the next key.
    while out.ends_with('\\') {
        out.pop();
    }
    out
}

fn quoted(s: &str, exec: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '%' => out.push_str("%%"),
            '$' if exec => out.push_str("$$"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    fn env_and_raw() {
        assert_eq!(
            env_assignment("X", "has space $HOME 100%"),
            r#""X=has space $HOME 100%%""#
        );
        assert_eq!(raw("50% done\nnext\\"), "50%% done next");
    }
}

//! Unit files laid out in one place: `UnitWriter` writes sections of `Key=value` lines
//! straight into one string (what `emit` uses: no per-line allocation), and `UnitFile` holds
//! them as data and renders through the same writer. Values arrive already escaped (see
//! `escape`), or are escaped into the output by the caller of `UnitWriter::set_with`.

/// Writes a unit file line by line into one `String`. A section's `[Name]` line is written
/// with its first key, so a section that gets no keys does not appear; sections are written
/// in the order they get their first key, and each section must be finished before the next
/// one starts (a name given twice gives two sections).
#[derive(Debug, Default)]
pub struct UnitWriter {
    out: String,
    /// The section whose `[Name]` line is due before the next key.
    pending: Option<&'static str>,
}

impl UnitWriter {
    /// A writer whose buffer holds `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> UnitWriter {
        UnitWriter {
            out: String::with_capacity(capacity),
            pending: None,
        }
    }

    /// A comment line (`# ` and `line`); comments go before the first section.
    pub fn comment(&mut self, line: &str) -> &mut UnitWriter {
        self.out.push_str("# ");
        self.out.push_str(line);
        self.out.push('\n');
        self
    }

    /// Start the section `name`; its `[name]` line is written with its first key.
    pub fn section(&mut self, name: &'static str) -> &mut UnitWriter {
        self.pending = Some(name);
        self
    }

    /// One `key=value` line, `value` as given.
    pub fn set(&mut self, key: &str, value: &str) -> &mut UnitWriter {
        self.set_with(key, |out| out.push_str(value))
    }

    /// One `key=value` line whose value `write` appends to the buffer it is given.
    pub fn set_with(&mut self, key: &str, write: impl FnOnce(&mut String)) -> &mut UnitWriter {
        if let Some(name) = self.pending.take() {
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.out.push('[');
            self.out.push_str(name);
            self.out.push_str("]\n");
        }
        self.out.push_str(key);
        self.out.push('=');
        write(&mut self.out);
        self.out.push('\n');
        self
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitFile {
    /// Comment lines at the top (without the leading `# `).
    pub header: Vec<String>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: &'static str,
    pub entries: Vec<(&'static str, String)>,
}

impl UnitFile {
    /// The section called `name`, created at the end if missing.
    pub fn section(&mut self, name: &'static str) -> &mut Section {
        let i = match self.sections.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sections.push(Section {
                    name,
                    entries: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }

    pub fn render(&self) -> String {
        // One allocation: the exact size of what is written below.
        let size = self.header.iter().map(|l| l.len() + 3).sum::<usize>()
            + self
                .sections
                .iter()
                .map(|s| {
                    s.name.len()
                        + 4
                        + s.entries
                            .iter()
                            .map(|(k, v)| k.len() + v.len() + 2)
                            .sum::<usize>()
                })
                .sum::<usize>();
        let mut w = UnitWriter::with_capacity(size);
        for line in &self.header {
            w.comment(line);
        }
        for section in &self.sections {
            w.section(section.name);
            for (key, value) in &section.entries {
                w.set(key, value);
            }
        }
        w.finish()
    }
}

impl Section {
    pub fn set(&mut self, key: &'static str, value: impl Into<String>) -> &mut Section {
        self.entries.push((key, value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sections_and_skips_empty_ones() {
        let mut unit = UnitFile {
            header: vec!["made by a test".into()],
            ..UnitFile::default()
        };
        unit.section("Unit").set("Description", "x");
        unit.section("Install");
        unit.section("Service")
            .set("Type", "oneshot")
            .set("ExecStart", "/bin/true");
        assert_eq!(
            unit.render(),
            "# made by a test\n\n[Unit]\nDescription=x\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
        );
    }
}

//! A unit file as data: sections of `Key=value` lines, rendered in one place.
//! Values are stored already escaped (see `escape`); this module only lays them out.

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
        let mut out = String::with_capacity(size);
        for line in &self.header {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        for section in self.sections.iter().filter(|s| !s.entries.is_empty()) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push('[');
            out.push_str(section.name);
            out.push_str("]\n");
            for (key, value) in &section.entries {
                out.push_str(key);
                out.push('=');
                out.push_str(value);
                out.push('\n');
            }
        }
        out
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

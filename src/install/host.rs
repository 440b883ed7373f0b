//! What a workflow expects of the machine it is applied on: its `env_file`s, working
//! directories, users and groups. systemd fails a task's start when one is missing, run
//! after run, and says so only in the journal; `flow plan` and `flow apply` say it at once,
//! at the place in the YAML that names it.

use std::path::Path;

use crate::compiler::diagnostic::{Code, Diagnostic};
use crate::compiler::model::{HostKind, HostRef};

/// The machine as far as these checks look at it.
pub struct Machine<'a> {
    pub path_exists: &'a dyn Fn(&Path) -> bool,
    pub user_exists: &'a dyn Fn(&str) -> bool,
    pub group_exists: &'a dyn Fn(&str) -> bool,
}

/// This machine.
pub fn this_machine(refs: &[HostRef]) -> Vec<Diagnostic> {
    missing(
        refs,
        &Machine {
            path_exists: &|p| p.exists(),
            user_exists: &|u| matches!(nix::unistd::User::from_name(u), Ok(Some(_))),
            group_exists: &|g| matches!(nix::unistd::Group::from_name(g), Ok(Some(_))),
        },
    )
}

/// For `--user`: a user's own manager runs everything as that user and cannot switch
/// to another (systemd fails the task with exit 216/GROUP, run after run). `mine` says
/// whether a `user`/`group` value is the calling user's own (name or number).
pub fn in_a_user_manager(
    refs: &[HostRef],
    mine: &dyn Fn(HostKind, &str) -> bool,
) -> Vec<Diagnostic> {
    refs.iter()
        .filter(|r| matches!(r.kind, HostKind::User | HostKind::Group) && !mine(r.kind, &r.value))
        .map(|r| {
            let key = if r.kind == HostKind::User {
                "user"
            } else {
                "group"
            };
            Diagnostic::new(
                Code::NotInUserManager,
                r.span,
                format!(
                    "`{key}: {}` cannot take effect in your own manager (--user): it runs tasks as you alone",
                    r.value
                ),
            )
            .help(format!(
                "remove `{key}`, or apply the workflow to the system's manager (`flow apply` as root, without --user): until then the task fails (exit 216)"
            ))
        })
        .collect()
}

/// Whether a `user`/`group` value names the calling user or their primary group.
pub fn is_mine(kind: HostKind, value: &str) -> bool {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    match kind {
        HostKind::User => {
            value == uid.to_string()
                || matches!(nix::unistd::User::from_uid(uid), Ok(Some(u)) if u.name == value)
        }
        HostKind::Group => {
            value == gid.to_string()
                || matches!(nix::unistd::Group::from_gid(gid), Ok(Some(g)) if g.name == value)
        }
        _ => false,
    }
}

/// A warning for each reference the machine lacks.
pub fn missing(refs: &[HostRef], machine: &Machine) -> Vec<Diagnostic> {
    refs.iter()
        .filter(|r| {
            let v = r.value.as_str();
            !match r.kind {
                HostKind::EnvFile | HostKind::WorkingDir => (machine.path_exists)(Path::new(v)),
                // A number needs no account: systemd runs the task with that id.
                _ if v.bytes().all(|b| b.is_ascii_digit()) => true,
                HostKind::User => (machine.user_exists)(v),
                HostKind::Group => (machine.group_exists)(v),
            }
        })
        .map(|r| {
            let v = &r.value;
            let (what, help) = match r.kind {
                HostKind::EnvFile => (
                    "env_file",
                    format!(
                        "create it (lines of `NAME=value`), or write `-{v}` if it may be missing: until then the task fails to start"
                    ),
                ),
                HostKind::WorkingDir => (
                    "working_dir",
                    format!(
                        "create it (`mkdir -p {v}`), unless a task that runs before creates it: without it the task fails (exit 200)"
                    ),
                ),
                HostKind::User => (
                    "user",
                    format!(
                        "create it (`adduser --system {v}`), or change `user`: until then the task fails (exit 217)"
                    ),
                ),
                HostKind::Group => (
                    "group",
                    format!(
                        "create it (`addgroup --system {v}`), or change `group`: until then the task fails (exit 216)"
                    ),
                ),
            };
            Diagnostic::new(
                Code::MissingOnHost,
                r.span,
                format!("{what} `{v}` does not exist on this machine"),
            )
                .help(help)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler;

    /// Each warning as `file:line:col: message`.
    fn located(diags: &[Diagnostic]) -> Vec<String> {
        diags
            .iter()
            .map(|d| format!("{}: {}", d.location("w.yaml"), d.message))
            .collect()
    }

    fn refs(yaml: &str) -> Vec<HostRef> {
        compiler::check("w.yaml", yaml).expect("valid").host
    }

    const YAML: &str = "env_file: /etc/flow/w.env
defaults: {user: backup}
tasks:
  a:
    run: 'true'
    env_file: [-/etc/optional.env, /etc/flow/a.env]
    working_dir: /srv/data
    group: '1000'
  b:
    run: 'true'
    user: pi
    group: adm
    working_dir: '~'
";

    #[test]
    fn the_yaml_names_what_it_expects_with_its_place() {
        let refs = refs(YAML);
        let mut found: Vec<(HostKind, &str, usize)> = refs
            .iter()
            .map(|r| (r.kind, r.value.as_str(), r.span.start.line))
            .collect();
        found.sort_by_key(|f| f.2);
        let want = [
            (HostKind::EnvFile, "/etc/flow/w.env", 1),
            (HostKind::User, "backup", 2),
            (HostKind::EnvFile, "/etc/flow/a.env", 6),
            (HostKind::WorkingDir, "/srv/data", 7),
            (HostKind::Group, "1000", 8),
            (HostKind::User, "pi", 11),
            (HostKind::Group, "adm", 12),
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn only_what_is_missing_is_reported() {
        let machine = Machine {
            path_exists: &|p| p == Path::new("/etc/flow/w.env"),
            user_exists: &|u| u == "pi",
            // Group 1000 is a number: no account is looked for.
            group_exists: &|g| g == "adm",
        };
        let warnings = located(&missing(&refs(YAML), &machine));
        assert_eq!(
            warnings,
            [
                "w.yaml:2:18: user `backup` does not exist on this machine",
                "w.yaml:6:36: env_file `/etc/flow/a.env` does not exist on this machine",
                "w.yaml:7:18: working_dir `/srv/data` does not exist on this machine",
            ]
        );
    }

    #[test]
    fn a_user_manager_cannot_switch_users_or_groups() {
        // `pi` is the caller: that is no switch.
        let mine = |kind: HostKind, v: &str| kind == HostKind::User && v == "pi";
        let warnings = located(&in_a_user_manager(&refs(YAML), &mine));
        assert_eq!(
            warnings,
            [
                "w.yaml:2:18: `user: backup` cannot take effect in your own manager (--user): it runs tasks as you alone",
                "w.yaml:8:12: `group: 1000` cannot take effect in your own manager (--user): it runs tasks as you alone",
                "w.yaml:12:12: `group: adm` cannot take effect in your own manager (--user): it runs tasks as you alone",
            ]
        );
    }
}

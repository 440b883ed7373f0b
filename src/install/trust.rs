//! Who may write the workflows flow applies, as cron has it for crontabs.
//!
//! A workflow's tasks run as root under the system's manager (as the user under `--user`),
//! so whoever can change a workflow file can run commands as that account. `flow plan` and
//! `flow apply` refuse a file that anyone else could change: the file, the directory it is
//! in and every directory above must belong to root or the caller, and neither the file nor
//! its directory may be writable by group or others. Directories further up may be, with
//! the sticky bit (`/tmp`): there only the owner of an entry may rename or remove it, and
//! the entry below was just found to be trusted. A link is followed and both paths are
//! checked: the link's own, and the one it resolves to.
//!
//! An `env_file` readable by others is only warned about: it is not run, but it often
//! holds secrets.
//!
//! The checks take the file system as lookups, so they are tested without real files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::compiler::diagnostic::{Code, Diagnostic};
use crate::compiler::model::{HostKind, HostRef};

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_ISVTX: u32 = 0o1000;

/// What the checks need to know of a path, as `lstat` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub uid: u32,
    /// The file type and permission bits (`st_mode`).
    pub mode: u32,
}

impl Stat {
    fn is_link(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
}

/// The file system as far as these checks look at it.
pub struct Fs<'a> {
    /// The path itself, a link not followed.
    pub lstat: &'a dyn Fn(&Path) -> std::io::Result<Stat>,
    /// Every link resolved.
    pub canonicalize: &'a dyn Fn(&Path) -> std::io::Result<PathBuf>,
    /// The name of a user id, for messages.
    pub user_name: &'a dyn Fn(u32) -> Option<String>,
}

/// The accounts whose files flow applies: root, and the user who runs flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub uids: Vec<u32>,
    /// Who the tasks run as, for messages: `root` or the user's name.
    pub who: String,
    /// The owner a fix gives a file (`chown OWNER FILE`).
    pub owner: String,
}

impl Trusted {
    /// Root, and the calling user when not root.
    pub fn caller() -> Trusted {
        let uid = nix::unistd::getuid().as_raw();
        if uid == 0 {
            return Trusted::root();
        }
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Trusted {
            uids: vec![0, uid],
            who: name.clone(),
            owner: name,
        }
    }

    pub fn root() -> Trusted {
        Trusted {
            uids: vec![0],
            who: "root".into(),
            owner: "root:root".into(),
        }
    }
}

/// A workflow file that others could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The workflow file, as named.
    pub file: PathBuf,
    /// The file or directory at fault.
    pub at: PathBuf,
    /// What is wrong with it.
    pub why: String,
    /// The commands that fix it.
    pub fix: String,
    pub who: String,
}

impl Untrusted {
    /// What is wrong, without the fix.
    pub fn message(&self) -> String {
        let at = if self.at == self.file {
            "it".to_string()
        } else {
            self.at.display().to_string()
        };
        format!(
            "workflow file {} cannot be trusted: {at} {}, and whoever can change it could run commands as {} through flow",
            self.file.display(),
            self.why,
            self.who,
        )
    }
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n  = help: {}", self.message(), self.fix)
    }
}

/// Checks `file` on this machine.
pub fn check_here(file: &Path, trusted: &Trusted) -> Result<(), Untrusted> {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    check(
        file,
        &abs,
        trusted,
        &Fs {
            lstat: &|p| {
                std::fs::symlink_metadata(p).map(|m| Stat {
                    uid: m.uid(),
                    mode: m.mode(),
                })
            },
            canonicalize: &|p| std::fs::canonicalize(p),
            user_name: &|uid| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            },
        },
    )
}

/// Checks the workflow file `shown` (as the user named it), at the absolute path `abs`.
pub fn check(shown: &Path, abs: &Path, trusted: &Trusted, fs: &Fs) -> Result<(), Untrusted> {
    check_chain(shown, abs, trusted, fs)?;
    match (fs.canonicalize)(abs) {
        Ok(real) if real != abs => check_chain(shown, &real, trusted, fs),
        _ => Ok(()),
    }
}

/// The file at `path`, its directory and every directory above.
fn check_chain(shown: &Path, path: &Path, trusted: &Trusted, fs: &Fs) -> Result<(), Untrusted> {
    let fault = |at: &Path, why: String, link: bool| Untrusted {
        file: shown.to_path_buf(),
        at: at.to_path_buf(),
        why,
        fix: format!(
            "`chown{} {} {at}; chmod go-w {at}`",
            if link { " -h" } else { "" },
            trusted.owner,
            at = at.display()
        ),
        who: trusted.who.clone(),
    };
    // 0: the file, 1: its directory, then the directories above.
    for (depth, at) in path.ancestors().enumerate() {
        if at.as_os_str().is_empty() {
            break;
        }
        // Not there: reading the file says so, better than this could.
        let Ok(st) = (fs.lstat)(at) else {
            return Ok(());
        };
        if !trusted.uids.contains(&st.uid) {
            let whose = (fs.user_name)(st.uid)
                .map(|name| format!("{name} (uid {})", st.uid))
                .unwrap_or_else(|| format!("uid {}", st.uid));
            let want = if trusted.uids == [0] {
                "root".to_string()
            } else {
                format!("root or {}", trusted.who)
            };
            return Err(fault(
                at,
                format!("is owned by {whose}, not {want}"),
                st.is_link(),
            ));
        }
        // A link's own mode means nothing: only who may replace it, its directory, does.
        if st.is_link() {
            continue;
        }
        let writable = match (st.mode & 0o020 != 0, st.mode & 0o002 != 0) {
            (false, false) => continue,
            (true, false) => "group",
            (false, true) => "others",
            (true, true) => "group and others",
        };
        // Above the file's own directory, the sticky bit keeps others from renaming or
        // removing the entry below, whose owner was found trusted just before.
        if depth >= 2 && st.mode & S_ISVTX != 0 {
            continue;
        }
        return Err(fault(
            at,
            format!("is writable by {writable} (mode {:04o})", st.mode & 0o7777),
            false,
        ));
    }
    Ok(())
}

/// A warning for each `env_file` that exists and every user may read. `optional` are the
/// `-`-prefixed ones, which the YAML places no warning at.
pub fn readable_env_files(
    refs: &[HostRef],
    optional: &[String],
    mode_of: &dyn Fn(&Path) -> Option<u32>,
) -> (Vec<Diagnostic>, Vec<String>) {
    let readable = |path: &str| mode_of(Path::new(path)).filter(|m| m & 0o004 != 0);
    let help = |path: &str| {
        format!(
            "`chmod o-r {path}` (the manager reads it for the task, whoever may not): env files often hold secrets"
        )
    };
    let located = refs
        .iter()
        .filter(|r| r.kind == HostKind::EnvFile)
        .filter_map(|r| {
            let mode = readable(&r.value)?;
            Some(
                Diagnostic::new(
                    Code::EnvFileReadable,
                    r.span,
                    format!(
                        "env_file `{}` is readable by every user (mode {:04o})",
                        r.value,
                        mode & 0o7777
                    ),
                )
                .help(help(&r.value)),
            )
        })
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    let plain = optional
        .iter()
        .filter_map(|p| {
            if seen.contains(&p.as_str()) || refs.iter().any(|r| r.value == *p) {
                return None;
            }
            seen.push(p);
            let mode = readable(p)?;
            Some(format!(
                "env_file `{p}` is readable by every user (mode {:04o})\n  = help: {}",
                mode & 0o7777,
                help(p)
            ))
        })
        .collect();
    (located, plain)
}

/// [`readable_env_files`] on this machine.
pub fn readable_env_files_here(
    refs: &[HostRef],
    optional: &[String],
) -> (Vec<Diagnostic>, Vec<String>) {
    readable_env_files(refs, optional, &|p| {
        std::fs::metadata(p).ok().map(|m| m.mode())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DIR: u32 = 0o040000;
    const FILE: u32 = 0o100000;

    /// A file system of `(path, uid, mode)`, with `links` resolved as `canonicalize` would.
    fn check_in(
        entries: &[(&str, u32, u32)],
        links: &[(&str, &str)],
        file: &str,
        trusted: &Trusted,
    ) -> Result<(), String> {
        let stats: BTreeMap<PathBuf, Stat> = entries
            .iter()
            .map(|(p, uid, mode)| {
                (
                    PathBuf::from(p),
                    Stat {
                        uid: *uid,
                        mode: *mode,
                    },
                )
            })
            .collect();
        let links: BTreeMap<PathBuf, PathBuf> = links
            .iter()
            .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
            .collect();
        let fs = Fs {
            lstat: &|p| {
                stats
                    .get(p)
                    .copied()
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
            },
            canonicalize: &|p| Ok(links.get(p).cloned().unwrap_or_else(|| p.to_path_buf())),
            user_name: &|uid| (uid == 1000).then(|| "pi".to_string()),
        };
        check(Path::new(file), Path::new(file), trusted, &fs).map_err(|u| u.to_string())
    }

    fn root_dirs() -> Vec<(&'static str, u32, u32)> {
        vec![
            ("/", 0, DIR | 0o755),
            ("/etc", 0, DIR | 0o755),
            ("/etc/flow", 0, DIR | 0o755),
            ("/tmp", 0, DIR | 0o1777),
        ]
    }

    #[test]
    fn root_owned_files_in_root_owned_directories_are_trusted() {
        let mut fs = root_dirs();
        fs.push(("/etc/flow/w.yaml", 0, FILE | 0o644));
        fs.push(("/tmp/d", 0, DIR | 0o700));
        fs.push(("/tmp/d/w.yaml", 0, FILE | 0o600));
        let root = Trusted::root();
        assert_eq!(check_in(&fs, &[], "/etc/flow/w.yaml", &root), Ok(()));
        // /tmp is writable by all, but sticky: no one else can replace /tmp/d.
        assert_eq!(check_in(&fs, &[], "/tmp/d/w.yaml", &root), Ok(()));
    }

    #[test]
    fn a_file_or_directory_others_could_change_is_refused_with_the_fix() {
        let root = Trusted::root();
        let cases: [(&str, u32, u32, &str, &str); 5] = [
            (
                "/etc/flow/w.yaml",
                1000,
                FILE | 0o644,
                "/etc/flow/w.yaml",
                "it is owned by pi (uid 1000), not root",
            ),
            (
                "/etc/flow/w.yaml",
                0,
                FILE | 0o664,
                "/etc/flow/w.yaml",
                "it is writable by group (mode 0664)",
            ),
            (
                "/etc/flow/w.yaml",
                0,
                FILE | 0o646,
                "/etc/flow/w.yaml",
                "it is writable by others (mode 0646)",
            ),
            (
                "/etc/flow",
                0,
                DIR | 0o777,
                "/etc/flow",
                "/etc/flow is writable by group and others (mode 0777)",
            ),
            // The sticky bit does not excuse the file's own directory: anyone may add files.
            (
                "/etc/flow",
                0,
                DIR | 0o1777,
                "/etc/flow",
                "/etc/flow is writable by group and others (mode 1777)",
            ),
        ];
        for (path, uid, mode, at, why) in cases {
            let mut fs = root_dirs();
            fs.retain(|e| e.0 != path);
            fs.push((path, uid, mode));
            if path != "/etc/flow/w.yaml" {
                fs.push(("/etc/flow/w.yaml", 0, FILE | 0o644));
            }
            let err = check_in(&fs, &[], "/etc/flow/w.yaml", &root).expect_err(path);
            assert!(
                err.starts_with(&format!(
                    "workflow file /etc/flow/w.yaml cannot be trusted: {why}, and whoever can change it could run commands as root through flow"
                )),
                "{err}"
            );
            assert!(
                err.ends_with(&format!("help: `chown root:root {at}; chmod go-w {at}`")),
                "{err}"
            );
        }
        // A directory further up, owned by someone else.
        let mut fs = root_dirs();
        fs.retain(|e| e.0 != "/etc");
        fs.push(("/etc", 1000, DIR | 0o755));
        fs.push(("/etc/flow/w.yaml", 0, FILE | 0o644));
        let err = check_in(&fs, &[], "/etc/flow/w.yaml", &root).expect_err("/etc");
        assert!(
            err.contains(": /etc is owned by pi (uid 1000), not root"),
            "{err}"
        );
    }

    #[test]
    fn a_link_is_checked_and_so_is_where_it_points() {
        let root = Trusted::root();
        let mut fs = root_dirs();
        fs.push(("/etc/flow/w.yaml", 0, S_IFLNK | 0o777));
        fs.push(("/home", 0, DIR | 0o755));
        fs.push(("/home/u", 1000, DIR | 0o755));
        fs.push(("/home/u/w.yaml", 0, FILE | 0o644));
        let links = [("/etc/flow/w.yaml", "/home/u/w.yaml")];
        let err = check_in(&fs, &links, "/etc/flow/w.yaml", &root).expect_err("target");
        assert!(
            err.contains(": /home/u is owned by pi (uid 1000), not root"),
            "{err}"
        );
        // The same target in a trusted place: trusted (a link's 0777 means nothing).
        fs.retain(|e| e.0 != "/home/u");
        fs.push(("/home/u", 0, DIR | 0o755));
        assert_eq!(check_in(&fs, &links, "/etc/flow/w.yaml", &root), Ok(()));
        // A link someone else owns.
        fs.retain(|e| e.0 != "/etc/flow/w.yaml");
        fs.push(("/etc/flow/w.yaml", 1000, S_IFLNK | 0o777));
        let err = check_in(&fs, &links, "/etc/flow/w.yaml", &root).expect_err("link");
        assert!(
            err.contains("help: `chown -h root:root /etc/flow/w.yaml"),
            "{err}"
        );
    }

    #[test]
    fn a_user_trusts_their_own_files_and_roots() {
        let user = Trusted {
            uids: vec![0, 1000],
            who: "pi".into(),
            owner: "pi".into(),
        };
        let mut fs = root_dirs();
        fs.push(("/home", 0, DIR | 0o755));
        fs.push(("/home/pi", 1000, DIR | 0o750));
        fs.push(("/home/pi/w.yaml", 1000, FILE | 0o644));
        fs.push(("/home/pi/x.yaml", 1001, FILE | 0o644));
        assert_eq!(check_in(&fs, &[], "/home/pi/w.yaml", &user), Ok(()));
        let err = check_in(&fs, &[], "/home/pi/x.yaml", &user).expect_err("1001");
        assert!(
            err.contains("it is owned by uid 1001, not root or pi, and whoever can change it could run commands as pi"),
            "{err}"
        );
        assert!(
            err.ends_with("`chown pi /home/pi/x.yaml; chmod go-w /home/pi/x.yaml`"),
            "{err}"
        );
        // Root trusts no user's file.
        let err = check_in(&fs, &[], "/home/pi/w.yaml", &Trusted::root()).expect_err("root");
        assert!(
            err.contains(": it is owned by pi (uid 1000), not root"),
            "{err}"
        );
    }

    #[test]
    fn env_files_every_user_may_read_are_warned_about() {
        let refs = crate::compiler::check(
            "w.yaml",
            "env_file: /etc/flow/open.env\ntasks:\n  a:\n    run: 'true'\n    env_file: [/etc/flow/closed.env, -/etc/flow/opt.env, -/etc/flow/gone.env]\n",
        )
        .expect("valid")
        .host;
        let modes = |p: &Path| match p.to_str() {
            Some("/etc/flow/open.env") | Some("/etc/flow/opt.env") => Some(FILE | 0o644),
            Some("/etc/flow/closed.env") => Some(FILE | 0o640),
            _ => None,
        };
        let optional = vec![
            "/etc/flow/opt.env".to_string(),
            "/etc/flow/gone.env".to_string(),
        ];
        let (located, plain) = readable_env_files(&refs, &optional, &modes);
        let located: Vec<String> = located
            .iter()
            .map(|d| format!("{}: {}", d.location("w.yaml"), d.message))
            .collect();
        assert_eq!(
            located,
            ["w.yaml:1:11: env_file `/etc/flow/open.env` is readable by every user (mode 0644)"]
        );
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(
            plain[0]
                .starts_with("env_file `/etc/flow/opt.env` is readable by every user (mode 0644)")
        );
        assert!(plain[0].contains("`chmod o-r /etc/flow/opt.env`"));
    }
}

//! The calling user's home directory, where a user's own workflows, units and history live.
//!
//! `$HOME` when it is an absolute path; otherwise (unset, as under some `sudo` and cron
//! setups, or relative) the account's home from the password database. A relative or empty
//! `$HOME` would put files under the current directory, where the user's manager never
//! looks.

use std::path::{Path, PathBuf};

pub fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|h| Path::new(h).is_absolute()) {
        return PathBuf::from(home);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .filter(|d| d.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// An XDG base directory (`$XDG_CONFIG_HOME`, `$XDG_STATE_HOME`), or its default under the
/// home directory. The XDG spec says to ignore a relative one.
pub fn xdg_dir(var: &str, default_in_home: &str) -> PathBuf {
    match std::env::var_os(var).filter(|d| Path::new(d).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => home_dir().join(default_in_home),
    }
}

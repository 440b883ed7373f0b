//! What a task and `defaults` may both set (limits, retries, environment, accounts, the
//! `[Service]` escape hatch), and how a task's settings merge over the defaults.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::Decoder;
use super::keys::{Fields, OWNED_SERVICE_KEYS};
use super::values::{MAX_ARG_BYTES, MAX_CPU_QUOTA, check_raw_value, is_memory_size};
use crate::compiler::diagnostic::Code;
use crate::compiler::model::{Backoff, Hardening, HostKind};
use crate::compiler::names;
use crate::compiler::service_keys::SERVICE_KEYS;
use crate::compiler::suggest;
use crate::compiler::yaml::Node;

/// Task-level settings as written in `defaults` or a task, before merging.
#[derive(Default, Clone)]
pub(super) struct Settings {
    pub(super) timeout: Option<Duration>,
    pub(super) retries: Option<u32>,
    pub(super) retry_delay: Option<Duration>,
    pub(super) backoff: Option<Backoff>,
    pub(super) env: Arc<[(String, String)]>,
    pub(super) env_files: Arc<[String]>,
    pub(super) working_dir: Option<String>,
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
    pub(super) memory_max: Option<String>,
    pub(super) cpu_quota: Option<String>,
    pub(super) nice: Option<i32>,
    pub(super) io_weight: Option<u32>,
    pub(super) hardening: Option<Hardening>,
    pub(super) service: Arc<[(String, String)]>,
}

impl Decoder<'_> {
    pub(super) fn settings(&mut self, f: &Fields<'_>) -> Settings {
        let mut s = Settings {
            timeout: f
                .get("timeout")
                .and_then(|n| self.positive_duration(n, "`timeout`")),
            retries: f
                .get("retries")
                .and_then(|n| self.integer(n, "`retries`", 0, 100))
                .map(|v| v as u32),
            retry_delay: f
                .get("retry_delay")
                .and_then(|n| self.duration(n, "`retry_delay`")),
            backoff: f.get("backoff").and_then(|n| {
                self.choice(n, "`backoff`", &Backoff::NAMES, |s| match s {
                    "fixed" => Some(Backoff::Fixed),
                    "exponential" => Some(Backoff::Exponential),
                    _ => None,
                })
            }),
            hardening: f.get("hardening").and_then(|n| {
                self.choice(n, "`hardening`", &Hardening::NAMES, |s| match s {
                    "none" => Some(Hardening::None),
                    "basic" => Some(Hardening::Basic),
                    "strict" => Some(Hardening::Strict),
                    _ => None,
                })
            }),
            nice: f
                .get("nice")
                .and_then(|n| self.integer(n, "`nice`", -20, 19))
                .map(|v| v as i32),
            io_weight: f
                .get("io_weight")
                .and_then(|n| self.integer(n, "`io_weight`", 1, 10_000))
                .map(|v| v as u32),
            ..Settings::default()
        };
        if let Some(n) = f.get("env") {
            s.env = self.env(n).into();
        }
        if let Some(n) = f.get("env_file") {
            s.env_files = self.env_files(n).into();
        }
        if let Some(n) = f.get("service") {
            s.service = self.service(n).into();
        }
        s.working_dir = f.get("working_dir").and_then(|n| {
            let dir = self.string(n, "`working_dir`")?;
            if dir == "~" {
                Some(dir)
            } else if dir.starts_with('/') {
                self.path(n, "`working_dir`", &dir)?;
                self.on_host(HostKind::WorkingDir, &dir, n.span());
                Some(dir)
            } else {
                self.error(
                    Code::InvalidPath,
                    n.span(),
                    format!("`working_dir` must be an absolute path, found `{dir}`"),
                )
                .help = Some(
                    "start it with `/`, e.g. `/home/pi`, or write `~` for the user's home".into(),
                );
                None
            }
        });
        for (key, slot) in [("user", &mut s.user), ("group", &mut s.group)] {
            *slot = f.get(key).and_then(|n| {
                let v = self.string(n, &format!("`{key}`"))?;
                match names::check_account(&v) {
                    // systemd warns on every load that this is not safe: `nobody` owns files
                    // that nobody should.
                    Ok(()) if key == "user" && v == "nobody" => {
                        self.error(Code::UserNobody, n.span(), "`user: nobody` is refused: systemd warns at every load that running a service as `nobody` is unsafe")
                            .help = Some("create a user for this task (`adduser --system NAME`), or set `service: {DynamicUser: yes}` for a throwaway one".into());
                        None
                    }
                    Ok(()) => {
                        let kind = if key == "user" {
                            HostKind::User
                        } else {
                            HostKind::Group
                        };
                        self.on_host(kind, &v, n.span());
                        Some(v)
                    }
                    Err(why) => {
                        self.error(Code::InvalidAccount, n.span(), format!("`{v}` is not a valid {key} name: {why}"))
                            .help = Some(format!(
                            "use a {key} name like `pi` or `www-data` (a letter or `_`, then letters, digits, `_` or `-`, at most 31), or a numeric id"
                        ));
                        None
                    }
                }
            });
        }
        s.memory_max = f.get("memory_max").and_then(|n| self.memory_max(n));
        s.cpu_quota = f.get("cpu_quota").and_then(|n| self.cpu_quota(n));
        s
    }

    /// `memory_max` of a task, or of a whole workflow (its slice).
    pub(super) fn memory_max(&mut self, n: &Node) -> Option<String> {
        let v = self.string(n, "`memory_max`")?;
        if is_memory_size(v.trim()) && v.trim() == v {
            Some(v)
        } else {
            self.error(Code::InvalidMemorySize, n.span(), format!("`{v}` is not a memory size"))
                .help = Some("write bytes with a K, M, G or T suffix (powers of 1024) like `512M`, or a share of RAM like `50%`".into());
            None
        }
    }

    /// `cpu_quota` of a task, or of a whole workflow (its slice).
    pub(super) fn cpu_quota(&mut self, n: &Node) -> Option<String> {
        let v = self.string(n, "`cpu_quota`")?;
        match v.strip_suffix('%').map(str::parse::<u32>) {
            // systemd keeps the quota as a 32-bit count of 1/100 %.
            Some(Ok(p)) if p > 0 && p <= MAX_CPU_QUOTA => Some(v),
            _ => {
                self.error(
                    Code::InvalidCpuQuota,
                    n.span(),
                    format!("`{v}` is not a CPU quota"),
                )
                .help = Some(format!(
                    "write a whole percentage of one CPU from `1%` to `{MAX_CPU_QUOTA}%`, e.g. `50%`; `200%` is two full CPUs"
                ));
                None
            }
        }
    }

    pub(super) fn env(&mut self, node: &Node) -> Vec<(String, String)> {
        let Node::Map(entries, _) = node else {
            self.type_error(node, "`env`", "a mapping of variable names to values");
            return Vec::new();
        };
        let mut env: Vec<(String, String)> = Vec::with_capacity(entries.len());
        // Names seen: one lookup per key keeps 100,000 keys linear.
        let mut seen: HashSet<&str, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(entries.len(), Default::default());
        for (k, v) in entries {
            let Some(name) = self.str(k, "an `env` name") else {
                continue;
            };
            if !names::is_env_name(name) {
                self.error(
                    Code::InvalidEnvName,
                    k.span(),
                    format!("`{name}` is not a valid environment variable name"),
                )
                .help = Some("use letters, digits and `_`, not starting with a digit".into());
                continue;
            }
            let value = if v.is_null() {
                Some(String::new())
            } else {
                self.string(v, &format!("`env.{name}`"))
            };
            let Some(value) = value else { continue };
            if value.contains('\0') || value.len() > MAX_ARG_BYTES {
                self.error(
                    Code::TooLarge,
                    v.span(),
                    format!("`{name}` is too large or contains a NUL character"),
                )
                .help = Some(format!(
                    "keep values under {MAX_ARG_BYTES} bytes; put large data in a file"
                ));
                continue;
            }
            if !seen.insert(name) {
                self.error(
                    Code::DuplicateKey,
                    k.span(),
                    format!("`{name}` is set twice in `env`"),
                );
                continue;
            }
            env.push((name.to_string(), value));
        }
        env
    }

    pub(super) fn env_files(&mut self, node: &Node) -> Vec<String> {
        let items: Vec<&Node> = match node {
            Node::Seq(items, _) => items.iter().collect(),
            other => vec![other],
        };
        items
            .into_iter()
            .filter_map(|n| {
                let path = self.string(n, "`env_file`")?;
                let bare = path.strip_prefix('-').unwrap_or(&path);
                if bare.starts_with('/') {
                    self.path(n, "`env_file`", bare)?;
                    // `-`: the file may be missing.
                    if bare.len() == path.len() {
                        self.on_host(HostKind::EnvFile, bare, n.span());
                    }
                    Some(path)
                } else {
                    self.error(Code::InvalidPath, n.span(), format!("`env_file` must be an absolute path, found `{path}`"))
                        .help = Some("e.g. `/etc/flow/backup.env`; start it with `-` to allow the file to be missing".into());
                    None
                }
            })
            .collect()
    }

    pub(super) fn service(&mut self, node: &Node) -> Vec<(String, String)> {
        let Node::Map(entries, _) = node else {
            self.type_error(
                node,
                "`service`",
                "a mapping of systemd `[Service]` keys to values",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(key) = self.string(k, "a `service` key") else {
                continue;
            };
            if let Some((_, instead)) = OWNED_SERVICE_KEYS.iter().find(|(owned, _)| *owned == key) {
                self.error(
                    Code::OwnedServiceKey,
                    k.span(),
                    format!("flow sets `{key}` itself"),
                )
                .help = Some((*instead).to_string());
                continue;
            }
            if !SERVICE_KEYS.contains(&key.as_str()) {
                let help = suggest::nearest(&key, SERVICE_KEYS.iter().copied()).map_or_else(
                    || {
                        "see systemd.exec(5), systemd.service(5) and systemd.resource-control(5)"
                            .to_string()
                    },
                    |s| format!("did you mean `{s}`?"),
                );
                self.error(
                    Code::UnknownServiceKey,
                    k.span(),
                    format!("`{key}` is not a systemd [Service] key"),
                )
                .help = Some(help);
                continue;
            }
            let values: Vec<&Node> = match v {
                Node::Seq(items, _) => items.iter().collect(),
                other => vec![other],
            };
            for value in values {
                let Some(text) = self.string(value, &format!("`service.{key}`")) else {
                    continue;
                };
                if let Err(why) = check_raw_value(&text) {
                    self.error(Code::InvalidServiceValue, value.span(), format!("`service.{key}` {why}"))
                        .help = Some("values are written as they are into the unit file: one line, systemd's syntax".into());
                    continue;
                }
                out.push((key.clone(), text));
            }
        }
        out
    }
}

/// `over` wins; `env` and `service` merge by name; `env_file`s accumulate. What `over`
/// does not add to is shared with `base`, not copied: every task of a workflow starts from
/// the same base.
pub(super) fn merge(base: &Settings, over: &Settings) -> Settings {
    let env: Arc<[(String, String)]> = if over.env.is_empty() {
        base.env.clone()
    } else if base.env.is_empty() {
        over.env.clone()
    } else {
        let mut env: Vec<(String, String)> = base.env.to_vec();
        let mut at: HashMap<&str, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(base.env.len(), Default::default());
        for (i, (k, _)) in base.env.iter().enumerate() {
            at.insert(k.as_str(), i);
        }
        for (k, v) in over.env.iter() {
            match at.get(k.as_str()) {
                Some(&i) => env[i].1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        env.into()
    };
    let service: Arc<[(String, String)]> = if over.service.is_empty() {
        base.service.clone()
    } else if base.service.is_empty() {
        over.service.clone()
    } else {
        let overridden: HashSet<&str, foldhash::fast::RandomState> =
            over.service.iter().map(|(k, _)| k.as_str()).collect();
        base.service
            .iter()
            .filter(|(k, _)| !overridden.contains(k.as_str()))
            .chain(over.service.iter())
            .cloned()
            .collect()
    };
    let env_files: Arc<[String]> = if over.env_files.is_empty() {
        base.env_files.clone()
    } else if base.env_files.is_empty() {
        over.env_files.clone()
    } else {
        base.env_files
            .iter()
            .chain(over.env_files.iter())
            .cloned()
            .collect()
    };
    Settings {
        timeout: over.timeout.or(base.timeout),
        retries: over.retries.or(base.retries),
        retry_delay: over.retry_delay.or(base.retry_delay),
        backoff: over.backoff.or(base.backoff),
        env,
        env_files,
        working_dir: over
            .working_dir
            .clone()
            .or_else(|| base.working_dir.clone()),
        user: over.user.clone().or_else(|| base.user.clone()),
        group: over.group.clone().or_else(|| base.group.clone()),
        memory_max: over.memory_max.clone().or_else(|| base.memory_max.clone()),
        cpu_quota: over.cpu_quota.clone().or_else(|| base.cpu_quota.clone()),
        nice: over.nice.or(base.nice),
        io_weight: over.io_weight.or(base.io_weight),
        hardening: over.hardening.or(base.hardening),
        service,
    }
}

//! Run history in SQLite: one row per run, one row per task attempt.
//!
//! Why SQLite (rusqlite with the bundled library): one file, crash-safe with WAL, readable by
//! `flow history` without the supervisor, and no dependency on the distribution's libsqlite
//! version.
//!
//! Who may read it: the database and its `-wal` and `-shm` files are the writer's alone
//! (mode 0600, whatever the umask). Anyone who can open them can hold a lock on them, and
//! a lock held on purpose stops every write of the history. The system's supervisor keeps
//! a copy for everyone else instead ([`public_copy`], mode 0644): a whole new file after
//! each burst of writes, renamed into place, that readers open as immutable (no locks at
//! all); a lock on an old copy stands in nobody's way. [`Store::open_ro`] reads the copy
//! when the database itself is not the caller's to open. The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] are applied in
//! order, each in one transaction, so an old database is upgraded in place.
//!
//! Idempotence is in the schema, not in the code: a run is identified by the InvocationID of
//! its `begin` unit and an attempt by its own InvocationID (both `UNIQUE`), and an attempt
//! without an activation (upstream_failed, skipped, canceled) by (run, task, attempt). Writing
//! the same fact twice — after a crash, from the journal and from unit properties — is a
//! no-op, so recovery can never double-count.
//!
//! Faults: a database that is not SQLite or fails `quick_check` is renamed aside
//! (`history.db.corrupt-<unix time>`) and a fresh one is created; the original is never
//! deleted. A database locked by another writer is reported, not waited on forever.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::vocabulary::{AttemptResult, Outcome, RunResult, TriggerKind};

/// Where the system supervisor keeps its database.
pub const DEFAULT_DIR: &str = "/var/lib/flow";
pub const DB_FILE: &str = "history.db";

/// Where a user's own supervisor (`flow supervise --user`) keeps its database:
/// `$XDG_STATE_HOME/flow`, by default `~/.local/state/flow`.
pub fn user_dir() -> PathBuf {
    crate::home::xdg_dir("XDG_STATE_HOME", ".local/state").join("flow")
}

/// The default database of the system's supervisor, or of the calling user's.
pub fn default_path(user: bool) -> PathBuf {
    if user {
        user_dir().join(DB_FILE)
    } else {
        Path::new(DEFAULT_DIR).join(DB_FILE)
    }
}

/// Retention defaults: keep the last 1000 runs and at most 90 days of each workflow.
pub const DEFAULT_KEEP_RUNS: u32 = 1000;
pub const DEFAULT_KEEP_DAYS: u32 = 90;

const MIGRATIONS: &[&str] = &[
    // 1: runs and attempts.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        workflow TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        ended_us INTEGER,
        result TEXT,
        begin_invocation TEXT UNIQUE
     );
     CREATE INDEX runs_by_workflow ON runs (workflow, started_us);
     CREATE INDEX runs_by_start ON runs (started_us);
     CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        invocation_id TEXT UNIQUE,
        started_us INTEGER,
        ended_us INTEGER,
        result TEXT NOT NULL,
        cpu_ns INTEGER,
        memory_peak INTEGER,
        UNIQUE (run_id, task, attempt)
     );
     CREATE INDEX attempts_by_run ON attempts (run_id);
     CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: one vocabulary (`crate::vocabulary`). An attempt's result is a word of its own,
    // its exit code, signal and start failure are columns; `success`, `timeout`, `oom`,
    // `catch-up` become `succeeded`, `timed_out`, `out_of_memory`, `catch_up`. Every row
    // is kept: a word this flow never wrote is left as it is.
    "ALTER TABLE attempts ADD COLUMN exit_code INTEGER;
     ALTER TABLE attempts ADD COLUMN signal INTEGER;
     ALTER TABLE attempts ADD COLUMN start_error TEXT;
     UPDATE attempts SET exit_code = CAST(substr(result, 11) AS INTEGER), result = 'failed'
       WHERE result LIKE 'exit-code %';
     UPDATE attempts SET signal = CAST(substr(result, 8) AS INTEGER), result = 'killed'
       WHERE result LIKE 'signal %';
     UPDATE attempts SET result = 'succeeded', exit_code = 0 WHERE result = 'success';
     UPDATE attempts SET result = 'timed_out' WHERE result = 'timeout';
     UPDATE attempts SET result = 'out_of_memory' WHERE result = 'oom';
     UPDATE attempts SET start_error = result, result = 'failed'
       WHERE result IN ('resources', 'start-limit-hit');
     UPDATE runs SET result = 'succeeded' WHERE result = 'success';
     UPDATE runs SET result = 'timed_out' WHERE result = 'timeout';
     UPDATE runs SET trigger = 'catch_up' WHERE trigger = 'catch-up';",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no run history at {path}: the supervisor has not recorded anything yet\n  \
         is flow-supervisor.service running? (`systemctl status flow-supervisor`)"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot read the run history at {path}: permission denied\n  \
         run as root; other users read the copy the supervisor keeps beside it \
         (history-public.db) once it has recorded a run"
    )]
    Denied { path: PathBuf },
    #[error(
        "the run history at {path} is locked by another process; \
         is a second supervisor running? (`systemctl status flow-supervisor`)"
    )]
    Locked { path: PathBuf },
    #[error(
        "the run history at {path} was corrupt ({reason}); it was moved to {aside} \
         and a new, empty history was started"
    )]
    MovedAside {
        path: PathBuf,
        aside: PathBuf,
        reason: String,
    },
    #[error(
        "the run history at {path} has schema version {found}, newer than this flow knows \
         ({known}): upgrade flow"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("run history at {path}: {error}")]
    Sql {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("run history at {path}: {what}: {error}")]
    Io {
        path: PathBuf,
        what: String,
        error: std::io::Error,
    },
}

impl StoreError {
    /// Whether a retry later may succeed (disk full, locked): the supervisor keeps the
    /// record in memory and writes it again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Locked { .. } => true,
            StoreError::Io { error, .. } => {
                matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            }
            StoreError::Sql { error, .. } => matches!(
                error.sqlite_error_code(),
                Some(
                    // "locking protocol": another process's locks on the `-shm` file
                    // in the way of a connection that opens the log.
                    rusqlite::ErrorCode::FileLockingProtocolFailed
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::CannotOpen
                )
            ),
            _ => false,
        }
    }
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Run {
    pub id: i64,
    pub workflow: String,
    pub trigger: TriggerKind,
    pub started_us: i64,
    pub ended_us: Option<i64>,
    /// `None` while running.
    pub result: Option<RunResult>,
}

/// One task attempt as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    pub run_id: i64,
    pub task: String,
    pub attempt: u32,
    pub invocation_id: Option<String>,
    pub started_us: Option<i64>,
    pub ended_us: Option<i64>,
    /// Its result, with its exit code, signal or start failure.
    #[serde(flatten)]
    pub outcome: Outcome,
    pub cpu_ns: Option<i64>,
    pub memory_peak: Option<i64>,
}

/// What `history` selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub workflow: Option<String>,
    pub failed_only: bool,
    pub since_us: Option<i64>,
    pub limit: Option<u32>,
}

/// Per-task statistics for `flow stats`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskStats {
    pub workflow: String,
    pub task: String,
    /// Attempts counted (a task runs once or more per run).
    pub attempts: u64,
    pub succeeded: u64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Caps SQLite's page cache of this connection (default about 2 MiB): a process that
    /// stays up, like the supervisor, writes small records and needs little of it.
    pub fn limit_cache(&self, kib: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .map_err(|e| self.sql(e))
    }

    /// Opens (creating if needed) the database for writing, as the supervisor does. A
    /// corrupt file is moved aside; the caller gets [`StoreError::MovedAside`] as a warning
    /// together with the fresh store.
    pub fn open_rw(path: &Path) -> Result<(Store, Option<StoreError>), StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|error| StoreError::Io {
                path: path.to_path_buf(),
                what: format!("cannot create {}", dir.display()),
                error,
            })?;
        }
        restrict(path)?;
        match Store::open_checked(path) {
            Ok(s) => Ok((s, None)),
            Err(StoreError::Sql { error, .. }) if is_corruption(&error) => {
                let reason = error.to_string();
                let aside = move_aside(path)?;
                let s = Store::open_checked(path)?;
                Ok((
                    s,
                    Some(StoreError::MovedAside {
                        path: path.to_path_buf(),
                        aside,
                        reason,
                    }),
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn open_checked(path: &Path) -> Result<Store, StoreError> {
        let sql = |error| sql_err(path, error);
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(2)).map_err(sql)?;
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql)?;
        if ok != "ok" {
            return Err(StoreError::Sql {
                path: path.to_path_buf(),
                error: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(ok),
                ),
            });
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(sql)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database read-only, for the history commands: the database when
    /// the caller may open it, else the copy the supervisor keeps for everyone beside it
    /// ([`public_copy`]).
    pub fn open_ro(path: &Path) -> Result<Store, StoreError> {
        let copy = public_copy(path);
        if nix::unistd::access(path, nix::unistd::AccessFlags::R_OK)
            == Err(nix::errno::Errno::EACCES)
            && copy.exists()
        {
            return Store::open_ro_at(&copy, true);
        }
        Store::open_ro_at(path, false)
    }

    /// [`Store::open_ro`] of one file; `immutable`: a copy nobody writes, read without
    /// locks (SQLite's `immutable` URI parameter).
    fn open_ro_at(path: &Path, immutable: bool) -> Result<Store, StoreError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(StoreError::Denied {
                    path: path.to_path_buf(),
                });
            }
            _ => {}
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::CannotOpen) | Some(rusqlite::ErrorCode::PermissionDenied) => {
                StoreError::Denied {
                    path: path.to_path_buf(),
                }
            }
            _ => sql_err(path, e),
        })?;
        conn.busy_timeout(Duration::from_secs(2))
            .map_err(|e| sql_err(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        let v = store.version()?;
        if v > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: v,
                known: MIGRATIONS.len() as i64,
            });
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, error: rusqlite::Error) -> StoreError {
        let e = sql_err(&self.path, error);
        if let StoreError::Sql { error, .. } = &e
            && matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        {
            return StoreError::Locked {
                path: self.path.clone(),
            };
        }
        e
    }

    fn version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let v = self.version()?;
        let known = MIGRATIONS.len() as i64;
        if v > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: v,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
            let tx = self
                .conn
                .transaction()
                .map_err(|e| sql_err(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| sql_err(&self.path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| sql_err(&self.path, e))?;
            tx.commit().map_err(|e| sql_err(&self.path, e))?;
        }
        Ok(())
    }

    /// Records a run; a run with the same begin InvocationID is not recorded twice. Returns
    /// the run's id either way.
    pub fn insert_run(
        &self,
        workflow: &str,
        trigger: TriggerKind,
        started_us: i64,
        begin_invocation: Option<&str>,
    ) -> Result<i64, StoreError> {
        if let Some(inv) = begin_invocation
            && let Some(id) = self
                .conn
                .query_row(
                    "SELECT id FROM runs WHERE begin_invocation = ?1",
                    [inv],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.sql(e))?
        {
            return Ok(id);
        }
        self.conn
            .execute(
                "INSERT INTO runs (workflow, trigger, started_us, begin_invocation)
                 VALUES (?1, ?2, ?3, ?4)",
                params![workflow, trigger, started_us, begin_invocation],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a run under an id the caller chose (the supervisor numbers runs itself, so
    /// that a write kept in memory during a disk-full spell needs no answer from the
    /// database). A run whose begin InvocationID is already recorded is left alone.
    pub fn insert_run_with_id(
        &self,
        id: i64,
        workflow: &str,
        trigger: TriggerKind,
        started_us: i64,
        begin_invocation: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO runs (id, workflow, trigger, started_us, begin_invocation)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, workflow, trigger, started_us, begin_invocation],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The run recorded for a begin InvocationID.
    pub fn run_by_begin(&self, begin_invocation: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM runs WHERE begin_invocation = ?1",
                [begin_invocation],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// The highest run id, 0 when there is none.
    pub fn max_run_id(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM runs", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// Records a run that ended at once (skipped by the overlap rule), under an id the
    /// caller chose like [`Store::insert_run_with_id`]: an id the database picked could be
    /// one the supervisor hands out to its next run.
    pub fn insert_finished_run(
        &self,
        id: i64,
        workflow: &str,
        trigger: TriggerKind,
        at_us: i64,
        result: RunResult,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO runs (id, workflow, trigger, started_us, ended_us, result)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![id, workflow, trigger, at_us, result],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Ends a run; a run that already ended keeps its first end.
    pub fn finish_run(&self, id: i64, ended_us: i64, result: RunResult) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET ended_us = ?2, result = ?3 WHERE id = ?1 AND result IS NULL",
                params![id, ended_us, result],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Records an attempt; the same activation (InvocationID) or the same (run, task,
    /// attempt) is recorded once. Returns whether a row was added.
    pub fn insert_attempt(&self, a: &Attempt) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO attempts
                 (run_id, task, attempt, invocation_id, started_us, ended_us, result, cpu_ns,
                  memory_peak, exit_code, signal, start_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    a.run_id,
                    a.task,
                    a.attempt,
                    a.invocation_id,
                    a.started_us,
                    a.ended_us,
                    a.outcome.result,
                    a.cpu_ns,
                    a.memory_peak,
                    a.outcome.exit_code,
                    a.outcome.signal,
                    a.outcome.start_error
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Whether an activation is already recorded.
    pub fn has_invocation(&self, invocation_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM attempts WHERE invocation_id = ?1",
                [invocation_id],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.sql(e))
    }

    /// The run and attempt number of an activation, when it is recorded (an attempt is
    /// recorded when it ends).
    pub fn attempt_of_invocation(
        &self,
        invocation_id: &str,
    ) -> Result<Option<(i64, u32)>, StoreError> {
        self.conn
            .query_row(
                "SELECT run_id, attempt FROM attempts WHERE invocation_id = ?1",
                [invocation_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// The workflow's run going (not ended), if one is recorded.
    pub fn going_run(&self, workflow: &str) -> Result<Option<Run>, StoreError> {
        Ok(self
            .runs_where(
                "workflow = ?1 AND result IS NULL",
                &[&workflow as &dyn rusqlite::ToSql],
                Some(1),
            )?
            .into_iter()
            .next())
    }

    /// Every workflow with a run recorded, by name.
    pub fn workflows(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT DISTINCT workflow FROM runs ORDER BY workflow")
            .map_err(|e| self.sql(e))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Runs still marked running (after a crash: to reconcile).
    pub fn open_runs(&self) -> Result<Vec<Run>, StoreError> {
        self.runs_where("result IS NULL", &[], None)
    }

    pub fn run(&self, workflow: &str, id: i64) -> Result<Option<Run>, StoreError> {
        Ok(self
            .runs_where(
                "workflow = ?1 AND id = ?2",
                &[&workflow as &dyn rusqlite::ToSql, &id],
                None,
            )?
            .into_iter()
            .next())
    }

    pub fn last_run(&self, workflow: &str) -> Result<Option<Run>, StoreError> {
        Ok(self
            .runs_where(
                "workflow = ?1",
                &[&workflow as &dyn rusqlite::ToSql],
                Some(1),
            )?
            .into_iter()
            .next())
    }

    /// The last run that ran: a trigger skipped by the overlap rule is recorded as a run
    /// (`skipped`) but started nothing.
    pub fn last_run_that_ran(&self, workflow: &str) -> Result<Option<Run>, StoreError> {
        Ok(self
            .runs_where(
                "workflow = ?1 AND (result IS NULL OR result != 'skipped')",
                &[&workflow as &dyn rusqlite::ToSql],
                Some(1),
            )?
            .into_iter()
            .next())
    }

    /// Runs, newest first.
    pub fn history(&self, f: &Filter) -> Result<Vec<Run>, StoreError> {
        let mut cond = vec!["1 = 1".to_string()];
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(w) = &f.workflow {
            args.push(Box::new(w.clone()));
            cond.push(format!("workflow = ?{}", args.len()));
        }
        if f.failed_only {
            cond.push("result IN ('failed', 'timed_out', 'canceled')".into());
        }
        if let Some(s) = f.since_us {
            args.push(Box::new(s));
            cond.push(format!("started_us >= ?{}", args.len()));
        }
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
        self.runs_where(&cond.join(" AND "), &refs, f.limit)
    }

    fn runs_where(
        &self,
        cond: &str,
        args: &[&dyn rusqlite::ToSql],
        limit: Option<u32>,
    ) -> Result<Vec<Run>, StoreError> {
        let limit = limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
        let sql = format!(
            "SELECT id, workflow, trigger, started_us, ended_us, result FROM runs
             WHERE {cond} ORDER BY started_us DESC, id DESC{limit}"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(Run {
                    id: r.get(0)?,
                    workflow: r.get(1)?,
                    trigger: r.get(2)?,
                    started_us: r.get(3)?,
                    ended_us: r.get(4)?,
                    result: r.get(5)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// A run's attempts, in the order they started.
    pub fn attempts(&self, run_id: i64) -> Result<Vec<Attempt>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT run_id, task, attempt, invocation_id, started_us, ended_us, result,
                        cpu_ns, memory_peak, exit_code, signal, start_error
                 FROM attempts WHERE run_id = ?1
                 ORDER BY COALESCE(started_us, ended_us), id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(Attempt {
                    run_id: r.get(0)?,
                    task: r.get(1)?,
                    attempt: r.get(2)?,
                    invocation_id: r.get(3)?,
                    started_us: r.get(4)?,
                    ended_us: r.get(5)?,
                    outcome: Outcome {
                        result: r.get(6)?,
                        exit_code: r.get(9)?,
                        signal: r.get(10)?,
                        start_error: r.get(11)?,
                    },
                    cpu_ns: r.get(7)?,
                    memory_peak: r.get(8)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Per-task success rate and duration percentiles over the stored attempts.
    pub fn task_stats(&self, workflow: Option<&str>) -> Result<Vec<TaskStats>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.workflow, a.task, a.result, a.ended_us - a.started_us
                 FROM attempts a JOIN runs r ON r.id = a.run_id
                 WHERE (?1 IS NULL OR r.workflow = ?1)
                 ORDER BY r.workflow, a.task",
            )
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([workflow]).map_err(|e| self.sql(e))?;
        let mut out: Vec<(TaskStats, Vec<i64>)> = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let wf: String = r.get(0).map_err(|e| self.sql(e))?;
            let task: String = r.get(1).map_err(|e| self.sql(e))?;
            let result: AttemptResult = r.get(2).map_err(|e| self.sql(e))?;
            let dur: Option<i64> = r.get(3).map_err(|e| self.sql(e))?;
            if !result.ran() {
                continue;
            }
            if out
                .last()
                .is_none_or(|(s, _)| s.workflow != wf || s.task != task)
            {
                out.push((
                    TaskStats {
                        workflow: wf,
                        task,
                        attempts: 0,
                        succeeded: 0,
                        p50_ms: None,
                        p95_ms: None,
                    },
                    Vec::new(),
                ));
            }
            if let Some((s, durs)) = out.last_mut() {
                s.attempts += 1;
                if result == AttemptResult::Succeeded {
                    s.succeeded += 1;
                    if let Some(d) = dur {
                        durs.push(d / 1000);
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|(mut s, mut d)| {
                d.sort_unstable();
                s.p50_ms = percentile(&d, 50);
                s.p95_ms = percentile(&d, 95);
                s
            })
            .collect())
    }

    /// Deletes, per workflow, runs beyond the newest `keep_runs` and runs that started
    /// before `older_than_us`. Runs still going are kept. Returns how many were deleted.
    pub fn prune(&self, keep_runs: u32, older_than_us: i64) -> Result<usize, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM runs WHERE result IS NOT NULL AND id IN (
                   SELECT id FROM (
                     SELECT id, started_us, ROW_NUMBER() OVER (
                       PARTITION BY workflow ORDER BY started_us DESC, id DESC) AS n
                     FROM runs)
                   WHERE n > ?1 OR started_us < ?2)",
                params![keep_runs, older_than_us],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n)
    }

    /// Copies what the write-ahead log holds into the database file (without waiting for
    /// readers), so that `history.db` alone, copied or backed up, has the history up to
    /// now. SQLite would do it only once the log reaches 1000 pages (about 4 MB).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.sql(e))
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Since when this history records runs (µs since the epoch): set the first time it
    /// is asked. A run is recorded whenever it happened after that, even while no
    /// supervisor ran; runs before it are not the history's.
    /// `since_us` is the beginning for a new history; when it cannot be stored now (a full
    /// disk) it is returned all the same, and stored at the next start.
    pub fn recording_since(&self, since_us: i64) -> Result<i64, StoreError> {
        const KEY: &str = "recording_since_us";
        if let Some(t) = self.meta(KEY)?.and_then(|v| v.parse().ok()) {
            return Ok(t);
        }
        match self.set_meta(KEY, &since_us.to_string()) {
            Err(e) if !e.is_transient() => Err(e),
            _ => Ok(since_us),
        }
    }

    /// Writes a consistent copy of the whole database to `to`, readable by everyone: into a
    /// new file beside it, renamed into place (see [`public_copy`]).
    pub fn publish(&self, to: &Path) -> Result<(), StoreError> {
        let io = |what: String, error| StoreError::Io {
            path: to.to_path_buf(),
            what,
            error,
        };
        let tmp = to.with_extension("db.new");
        let _ = std::fs::remove_file(&tmp);
        // Made here, empty and for this process alone, so that nobody can open it before it
        // is complete (VACUUM INTO fills an empty file).
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io(format!("cannot create {}", tmp.display()), e))?;
        let written = self
            .conn
            .execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
            .map_err(|e| self.sql(e))
            .and_then(|_| {
                // A plain file: readers open it as immutable, without a log.
                let copy = Connection::open(&tmp).map_err(|e| sql_err(&tmp, e))?;
                copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
                    .map_err(|e| sql_err(&tmp, e))
            })
            .and_then(|()| {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| io(format!("cannot make {} readable", tmp.display()), e))
            })
            .and_then(|()| {
                std::fs::rename(&tmp, to)
                    .map_err(|e| io(format!("cannot rename {} into place", tmp.display()), e))
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Runs `f` in one transaction (many writes, one fsync).
    pub fn batch<T>(
        &mut self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.sql(e))?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.sql(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// The copy of the database at `db` that the system's supervisor keeps for everyone:
/// `history-public.db` beside `history.db`.
pub fn public_copy(db: &Path) -> PathBuf {
    let stem = db.file_stem().map(|s| s.to_string_lossy().into_owned());
    db.with_file_name(format!(
        "{}-public.db",
        stem.as_deref().unwrap_or("history")
    ))
}

/// How long after a write the public copy is refreshed: writes come in bursts (a run's
/// tasks), and one copy per burst is enough.
const PUBLISH_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A thread that refreshes the public copy of the database at `db` (see [`public_copy`])
/// on a connection of its own, a moment after it is told of writes: never on the
/// supervisor's path, and a read on the log never blocks its writer. A copy that fails
/// (a full disk) is said in the journal and made again after the next write.
pub fn publisher(db: &Path) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let db = db.to_path_buf();
    let to = public_copy(&db);
    let spawned = std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let mut first = true;
            // A large history takes a while to copy: at most a tenth of the time copying.
            let mut pause = PUBLISH_AFTER;
            while rx.recv().is_ok() {
                std::thread::sleep(pause);
                while rx.try_recv().is_ok() {}
                let began = std::time::Instant::now();
                let done = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .map_err(|e| sql_err(&db, e))
                    .and_then(|conn| {
                        conn.busy_timeout(std::time::Duration::from_secs(2))
                            .map_err(|e| sql_err(&db, e))?;
                        let store = Store {
                            conn,
                            path: db.clone(),
                        };
                        store.limit_cache(256)?;
                        store.publish(&to)
                    });
                // Give back to the system what the copy took: the supervisor stays up,
                // small while idle.
                #[cfg(target_env = "gnu")]
                // SAFETY: malloc_trim only returns free heap memory to the system.
                unsafe {
                    libc::malloc_trim(0);
                }
                pause = PUBLISH_AFTER.max(began.elapsed() * 10);
                match done {
                    Ok(()) => first = true,
                    Err(e) if first => {
                        tracing::warn!("cannot refresh the history's public copy: {e}");
                        first = false;
                    }
                    Err(_) => {}
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the thread that copies the history for everyone: {e}");
    }
    tx
}

/// Makes the database and its `-wal` and `-shm` files (SQLite gives those the mode of the
/// database) the writer's alone, whatever the umask: see the module's documentation.
fn restrict(path: &Path) -> Result<(), StoreError> {
    let io = |what: String, error| StoreError::Io {
        path: path.to_path_buf(),
        what,
        error,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("cannot create it".into(), e))?;
    for side in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{side}", path.display()));
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io(format!("cannot restrict {}", file.display()), e))?
            }
            _ => {}
        }
    }
    Ok(())
}

/// A URI that opens `path` as an immutable database (no locks, no log).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' | 0x80.. => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank.
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn sql_err(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError::Sql {
        path: path.to_path_buf(),
        error,
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Renames a corrupt database (and its WAL files) aside; never deletes.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{}.corrupt-{stamp}-{n}", path.display()));
        n += 1;
    }
    std::fs::rename(path, &aside).map_err(|error| StoreError::Io {
        path: path.to_path_buf(),
        what: format!("cannot move the corrupt file aside to {}", aside.display()),
        error,
    })?;
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", path.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, format!("{}{ext}", aside.display()));
        }
    }
    Ok(aside)
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(run_id: i64, task: &str, n: u32, inv: Option<&str>, result: &str) -> Attempt {
        Attempt {
            run_id,
            task: task.into(),
            attempt: n,
            invocation_id: inv.map(str::to_string),
            started_us: Some(1_000_000),
            ended_us: Some(1_500_000),
            outcome: Outcome::parse_legacy(result),
            cpu_ns: None,
            memory_peak: None,
        }
    }

    #[test]
    fn writes_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (s, warn) = Store::open_rw(&dir.path().join("h.db")).unwrap();
        assert!(warn.is_none());
        let a = s
            .insert_run("wf", TriggerKind::Manual, 1, Some("inv-begin"))
            .unwrap();
        let b = s
            .insert_run("wf", TriggerKind::Manual, 1, Some("inv-begin"))
            .unwrap();
        assert_eq!(a, b);
        assert!(
            s.insert_attempt(&attempt(a, "t", 1, Some("i1"), "exit-code 1"))
                .unwrap()
        );
        assert!(
            !s.insert_attempt(&attempt(a, "t", 1, Some("i1"), "exit-code 1"))
                .unwrap()
        );
        // Same activation under another attempt number: still once.
        assert!(
            !s.insert_attempt(&attempt(a, "t", 2, Some("i1"), "exit-code 1"))
                .unwrap()
        );
        assert!(
            s.insert_attempt(&attempt(a, "u", 1, None, "upstream_failed"))
                .unwrap()
        );
        assert!(
            !s.insert_attempt(&attempt(a, "u", 1, None, "upstream_failed"))
                .unwrap()
        );
        assert_eq!(s.attempts(a).unwrap().len(), 2);
        s.finish_run(a, 5, RunResult::Failed).unwrap();
        s.finish_run(a, 9, RunResult::Succeeded).unwrap();
        let r = s.run("wf", a).unwrap().unwrap();
        assert_eq!((r.ended_us, r.result), (Some(5), Some(RunResult::Failed)));
    }

    #[test]
    fn corrupt_database_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        std::fs::write(
            &path,
            b"this is not a database, but someone's precious file....",
        )
        .unwrap();
        let (s, warn) = Store::open_rw(&path).unwrap();
        let Some(StoreError::MovedAside { aside, .. }) = warn else {
            panic!("expected MovedAside, got {warn:?}");
        };
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            b"this is not a database, but someone's precious file...."
        );
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn read_only_open_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open_ro(&dir.path().join("none.db")).err().unwrap();
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("flow-supervisor"), "{err}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        drop(Store::open_rw(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let err = Store::open_rw(&path).err().unwrap();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn after_a_checkpoint_the_database_file_alone_has_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let (s, _) = Store::open_rw(&path).unwrap();
        let id = s.insert_run("a", TriggerKind::Timer, 1000, None).unwrap();
        s.finish_run(id, 2000, RunResult::Succeeded).unwrap();
        let copy = |to: &str| {
            let d = dir.path().join(to);
            std::fs::create_dir(&d).unwrap();
            std::fs::copy(&path, d.join("h.db")).unwrap();
            Store::open_ro(&d.join("h.db"))
                .ok()
                .and_then(|c| c.history(&Filter::default()).ok())
                .map_or(0, |runs| runs.len())
        };
        assert_eq!(copy("before"), 0, "the run is in the log only");
        s.checkpoint().unwrap();
        assert_eq!(copy("after"), 1);
    }

    #[test]
    fn prune_keeps_the_newest_and_running() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open_rw(&dir.path().join("h.db")).unwrap();
        for i in 0..10 {
            let id = s
                .insert_run("a", TriggerKind::Timer, i * 1000, None)
                .unwrap();
            if i != 0 {
                s.finish_run(id, i * 1000 + 1, RunResult::Succeeded)
                    .unwrap();
            }
            s.insert_attempt(&attempt(id, "t", 1, None, "success"))
                .unwrap();
        }
        let b = s.insert_run("b", TriggerKind::Timer, 5, None).unwrap();
        s.finish_run(b, 6, RunResult::Succeeded).unwrap();
        // Keep 3 per workflow; nothing is old enough to go by age.
        assert_eq!(s.prune(3, 0).unwrap(), 6);
        let left = s.history(&Filter::default()).unwrap();
        let ids: Vec<i64> = left.iter().map(|r| r.started_us).collect();
        // a: the 3 newest plus the one still running (started at 0); b: its one run.
        assert_eq!(ids, vec![9000, 8000, 7000, 5, 0]);
        // Attempts went with their runs.
        let n: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM attempts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4);
        // By age: everything finished before 8500 goes.
        assert_eq!(s.prune(1000, 8500).unwrap(), 3);
    }

    /// The database and its log files are the writer's alone, whatever the umask; the copy
    /// for everyone has the history, reads without locks, and replaces itself whole.
    #[test]
    fn the_database_is_private_and_its_public_copy_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // An older flow left them readable by everyone.
        drop(Store::open_rw(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (s, _) = Store::open_rw(&path).unwrap();
        let id = s.insert_run("a", TriggerKind::Timer, 1000, None).unwrap();
        s.finish_run(id, 2000, RunResult::Succeeded).unwrap();
        for side in ["", "-wal", "-shm"] {
            let f = PathBuf::from(format!("{}{side}", path.display()));
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        let copy = public_copy(&path);
        assert_eq!(copy, dir.path().join("history-public.db"));
        s.publish(&copy).unwrap();
        assert_eq!(mode(&copy), 0o644);
        // A reader of the copy holding it open does not stop the next copy.
        let reader = Store::open_ro_at(&copy, true).unwrap();
        assert_eq!(reader.history(&Filter::default()).unwrap().len(), 1);
        let id = s.insert_run("a", TriggerKind::Timer, 3000, None).unwrap();
        s.finish_run(id, 4000, RunResult::Succeeded).unwrap();
        s.publish(&copy).unwrap();
        assert_eq!(reader.history(&Filter::default()).unwrap().len(), 1);
        let fresh = Store::open_ro_at(&copy, true).unwrap();
        assert_eq!(fresh.history(&Filter::default()).unwrap().len(), 2);
        assert!(!copy.with_extension("db.new").exists());
        assert!(!PathBuf::from(format!("{}-wal", copy.display())).exists());
    }

    #[test]
    fn a_history_in_the_old_words_is_migrated_with_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        // A version 1 database, as flow wrote it before one vocabulary.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute_batch(
            "INSERT INTO runs (id, workflow, trigger, started_us, ended_us, result) VALUES
               (1, 'wf', 'catch-up', 1, 2, 'failed'), (2, 'wf', 'timer', 3, 4, 'succeeded'),
               (3, 'wf', 'manual', 5, 6, 'timed_out'), (4, 'wf', 'retry', 7, NULL, NULL);
             INSERT INTO attempts (run_id, task, attempt, started_us, ended_us, result) VALUES
               (1, 'a', 1, 1, 2, 'exit-code 3'), (1, 'b', 1, 1, 2, 'signal 9'),
               (1, 'c', 1, 1, 2, 'resources'), (1, 'd', 1, NULL, 2, 'upstream_failed'),
               (2, 'a', 1, 3, 4, 'success'), (3, 'a', 1, 5, 6, 'timeout'),
               (3, 'b', 1, 5, 6, 'oom'), (3, 'c', 1, NULL, 6, 'canceled'),
               (3, 'd', 1, NULL, 6, 'skipped');",
        )
        .unwrap();
        drop(c);
        let (s, warn) = Store::open_rw(&path).unwrap();
        assert!(warn.is_none(), "{warn:?}");
        let runs = s.history(&Filter::default()).unwrap();
        assert_eq!(runs.len(), 4);
        let run = |id| runs.iter().find(|r| r.id == id).unwrap();
        assert_eq!(run(1).trigger, TriggerKind::CatchUp);
        assert_eq!(run(4).trigger, TriggerKind::Retry);
        assert_eq!(run(3).result, Some(RunResult::TimedOut));
        assert_eq!(run(4).result, None);
        let outcomes = |id| -> Vec<(String, Outcome)> {
            s.attempts(id)
                .unwrap()
                .into_iter()
                .map(|a| (a.task, a.outcome))
                .collect()
        };
        use crate::vocabulary::AttemptResult as A;
        assert_eq!(
            outcomes(1),
            [
                ("a".into(), Outcome::exited(3)),
                ("b".into(), Outcome::killed(9)),
                ("c".into(), Outcome::start_failed("resources")),
                ("d".into(), Outcome::of(A::UpstreamFailed)),
            ]
        );
        assert_eq!(outcomes(2), [("a".into(), Outcome::succeeded())]);
        assert_eq!(
            outcomes(3),
            [
                ("a".into(), Outcome::of(A::TimedOut)),
                ("b".into(), Outcome::of(A::OutOfMemory)),
                ("c".into(), Outcome::of(A::Canceled)),
                ("d".into(), Outcome::of(A::Skipped)),
            ]
        );
    }

    #[test]
    fn stats_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
    }
}

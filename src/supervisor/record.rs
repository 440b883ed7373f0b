//! Recording: every fact goes to the history at once; a write that fails (disk full,
//! locked) stays queued in memory, bounded, and is retried. Followers and the journal
//! hear of each fact as it is written.

use super::*;

/// A write to the store, kept until it succeeded.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Run {
        id: i64,
        workflow: String,
        trigger: TriggerKind,
        started_us: i64,
        begin: Option<String>,
    },
    Skipped {
        id: i64,
        workflow: String,
        trigger: TriggerKind,
        at_us: i64,
    },
    Attempt(Attempt),
    Finish {
        id: i64,
        ended_us: i64,
        result: RunResult,
    },
    Prune,
}

pub(super) const WRITE_RETRY: Duration = Duration::from_secs(5);

/// How many unwritten records are kept in memory while the history cannot be written (a
/// full disk): some 5 MB, the records of about 60 runs of 150 tasks. Past it the newest
/// are dropped, each spell said once in the journal; the runs themselves are not affected.
pub(super) const MAX_QUEUED_WRITES: usize = 20_000;

/// How long after a run's end the write-ahead log is copied into the database file, so
/// that `history.db` alone (a backup of that one file) has the history: once runs are
/// quiet, not on any run's path (a checkpoint of a large run takes a while).
pub(super) const CHECKPOINT_AFTER: Duration = Duration::from_secs(2);

impl Supervisor {
    pub(super) fn write(&mut self, w: Write) {
        if events::on() {
            self.log_write(&w);
        }
        if !self.followers.is_empty() {
            self.tell_followers(&w);
        }
        if self.writes.len() >= MAX_QUEUED_WRITES {
            self.dropped += 1;
            if self.dropped == 1 {
                events::database_error(
                    &self.cfg.db,
                    "too many records wait for the disk",
                    Some(self.writes.len()),
                    &format!(
                        "{MAX_QUEUED_WRITES} history records wait for the disk already; dropping new ones until they are written (the runs go on)"
                    ),
                );
            }
            return;
        }
        self.writes.push_back(w);
        // While a failed write waits for its retry, new ones queue behind it: trying now
        // would block every event for the store's lock timeout.
        if self.write_retry.is_none() {
            self.flush();
        }
    }

    /// Tells the followers of a run what is being recorded of it.
    pub(super) fn tell_followers(&mut self, w: &Write) {
        match w {
            Write::Attempt(a) => {
                let retry_in = self.runs.values().find(|r| r.id == a.run_id).and_then(|r| {
                    let i = r.def.tasks.iter().position(|t| t.name == a.task)?;
                    match r.tasks[i].st {
                        St::Retry(at) => Some(at.saturating_duration_since(Instant::now())),
                        _ => None,
                    }
                });
                self.followers.attempt(a.run_id, a, retry_in);
            }
            Write::Finish { id, result, .. } => self.followers.finished(*id, *result),
            _ => {}
        }
    }

    /// Waiting followers of `def` follow the run `id` that just opened.
    pub(super) fn follow_opened(&mut self, def: &WorkflowDef, id: i64) {
        if self.followers.is_empty() {
            return;
        }
        let run_job = self.queued.contains_key(&def.run_unit());
        self.followers
            .opened(&def.name, id, task_paths(def), run_job);
    }

    /// A follower rejoins run `id` of `wf` (see [`follow::Followers::rejoin`]): the run's
    /// attempts as recorded, and its end if it is over; a run neither open here nor
    /// recorded as ended gets an end without a result (the client reads systemd then).
    pub(super) fn rejoin(&mut self, wf: &str, id: i64, follower: follow::Follower) {
        self.flush();
        let attempts = self.store.attempts(id).unwrap_or_default();
        let now = match self.runs.get(wf).filter(|r| r.id == id) {
            Some(run) => follow::Rejoined::Open {
                tasks: task_paths(&run.def),
                run_job: self.queued.contains_key(&run.def.run_unit()),
            },
            None => follow::Rejoined::Over {
                result: self.store.run(wf, id).ok().flatten().and_then(|r| r.result),
            },
        };
        self.followers.rejoin(wf, id, follower, &attempts, now);
    }

    /// Writes queued facts in order; on a transient failure keeps them for later.
    pub(super) fn flush(&mut self) {
        let kept = self.write_retry.map(|_| self.writes.len());
        while let Some(w) = self.writes.front() {
            match apply(&self.store, w, &self.cfg) {
                Ok(()) => {
                    self.writes.pop_front();
                    if let Some(p) = &self.publish {
                        let _ = p.send(());
                    }
                }
                Err(e) if e.is_transient() => {
                    events::database_error(
                        &self.cfg.db,
                        &e.to_string(),
                        Some(self.writes.len()),
                        &format!(
                            "cannot write the run history ({e}); {} record(s) kept in memory, retrying in {}s",
                            self.writes.len(),
                            WRITE_RETRY.as_secs()
                        ),
                    );
                    self.write_retry = Some(Instant::now() + WRITE_RETRY);
                    return;
                }
                Err(e) => {
                    events::database_error(
                        &self.cfg.db,
                        &e.to_string(),
                        None,
                        &format!("dropping a history record that cannot be written: {e}"),
                    );
                    self.writes.pop_front();
                }
            }
        }
        if let Some(n) = kept {
            events::database_written(&self.cfg.db, n);
        }
        self.write_retry = None;
        if self.dropped > 0 {
            events::database_error(
                &self.cfg.db,
                "records dropped",
                None,
                &format!(
                    "{} history record(s) were dropped while the history could not be written",
                    self.dropped
                ),
            );
            self.dropped = 0;
        }
    }
}

pub(super) fn apply(store: &Store, w: &Write, cfg: &Config) -> Result<(), StoreError> {
    match w {
        Write::Run {
            id,
            workflow,
            trigger,
            started_us,
            begin,
        } => store.insert_run_with_id(*id, workflow, *trigger, *started_us, begin.as_deref()),
        Write::Skipped {
            id,
            workflow,
            trigger,
            at_us,
        } => store.insert_finished_run(*id, workflow, *trigger, *at_us, RunResult::Skipped),
        Write::Attempt(a) => store.insert_attempt(a).map(|_| ()),
        Write::Finish {
            id,
            ended_us,
            result,
        } => store.finish_run(*id, *ended_us, *result),
        Write::Prune => {
            let cutoff = store::now_us() - i64::from(cfg.keep_days) * 86_400_000_000;
            store.prune(cfg.keep_runs, cutoff).map(|_| ())
        }
    }
}

pub(super) fn open_store(path: &Path) -> Result<Store, SupervisorError> {
    let (s, warning) = patiently(path, || Store::open_rw(path))?;
    if let Some(w) = warning {
        events::database_error(path, &w.to_string(), None, &w.to_string());
    }
    s.limit_cache(256)?;
    Ok(s)
}

/// Runs `read` on the history until it does not fail with a transient error (locked, disk
/// full), pinging the watchdog meanwhile: at start-up there is nothing better to do, and
/// exiting would only restart into the same lock.
pub(super) fn patiently<T>(
    path: &Path,
    mut read: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut warned = false;
    loop {
        match read() {
            Err(e) if e.is_transient() => {
                if !warned {
                    events::database_error(
                        path,
                        &e.to_string(),
                        None,
                        &format!("{e}; waiting for it"),
                    );
                    warned = true;
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                std::thread::sleep(Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

//! Recovery after a restart: what happened while the supervisor was down is replayed from
//! the journal through the same code as live events.

use super::*;

impl Supervisor {
    /// Reconciles what happened while the supervisor was down: every run still open in
    /// the store, and every run begun since the last recorded one, is replayed from the
    /// journal through the same code as live events (writes are idempotent), then followed
    /// on (or ended, when a newer run replaced it).
    pub(super) fn recover(&mut self, started_us: i64) -> Result<(), SupervisorError> {
        self.log.recovering = true;
        let recovered = self.replay(started_us);
        self.log.recovering = false;
        recovered
    }

    pub(super) fn replay(&mut self, started_us: i64) -> Result<(), SupervisorError> {
        for j in self.sd.list_jobs()? {
            if j.unit.starts_with("flow-") && j.job_type == "start" {
                self.queued.insert(j.unit, j.id);
            }
        }
        let open = patiently(&self.cfg.db, || self.store.open_runs())?;
        // A new history records from this process's start: runs while it waited for the
        // disk are the history's.
        let recording_since = patiently(&self.cfg.db, || self.store.recording_since(started_us))?;
        let defs: Vec<Arc<WorkflowDef>> = self.defs.values().cloned().collect();
        for def in defs {
            let mine: Vec<_> = open.iter().filter(|r| r.workflow == def.name).collect();
            let busy = !mine.is_empty()
                || self.queued.keys().any(|u| {
                    crate::compiler::names::workflow_of_file(u).as_deref()
                        == Some(def.name.as_str())
                });
            if busy {
                self.pin(&def);
            }
            let since = match (
                mine.iter().map(|r| r.started_us).min(),
                patiently(&self.cfg.db, || self.store.last_run(&def.name))?,
            ) {
                (Some(s), _) => s,
                (None, Some(last)) => last.started_us + 1,
                // No run yet: any since the history began, while no supervisor ran.
                (None, None) => recording_since,
            };
            let mut units: Vec<String> = def.tasks.iter().map(|t| t.unit.clone()).collect();
            units.push(def.begin_unit());
            let ends = match journal::job_ends(&units, since.max(0) as u64, self.cfg.user()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("cannot read the journal to recover {}: {e}", def.name);
                    Vec::new()
                }
            };
            let open_ids: HashSet<i64> = mine.iter().map(|r| r.id).collect();
            // Open runs not found in the journal start from the store.
            for r in &mine {
                events::run_recovered(&def.name, r.id, true);
                self.runs.insert(
                    def.name.clone(),
                    ActiveRun::new(r.id, def.clone(), r.started_us.max(0) as u64),
                );
            }
            // Set while the journal tells of a run the store has as ended already: its
            // ends are recorded, and nothing more of it may start.
            let mut in_ended_run = false;
            for end in ends {
                if end.unit == def.begin_unit() {
                    let Some(inv) = end.state.invocation_id.clone() else {
                        continue;
                    };
                    if end.result != "done" {
                        continue;
                    }
                    let known = patiently(&self.cfg.db, || self.store.run_by_begin(&inv))?;
                    if let Some(run) = self.runs.get(&def.name)
                        && Some(run.id) == known
                    {
                        continue;
                    }
                    // A newer run began: the one before it is over.
                    if let Some(run) = self.runs.get(&def.name) {
                        let id = run.id;
                        self.settle_replayed(&def.name, id)?;
                    }
                    in_ended_run = known.is_some_and(|id| !open_ids.contains(&id));
                    if in_ended_run {
                        continue;
                    }
                    let id = match known {
                        Some(id) => id,
                        None => {
                            let id = self.next_id;
                            self.next_id += 1;
                            self.write(Write::Run {
                                id,
                                workflow: def.name.clone(),
                                trigger: trigger::take_note(&self.cfg.runtime_dir, &def.name)
                                    .unwrap_or(TriggerKind::Systemctl),
                                started_us: end.state.inactive_exit_timestamp.unwrap_or(end.at_us)
                                    as i64,
                                begin: Some(inv),
                            });
                            events::run_recovered(&def.name, id, false);
                            id
                        }
                    };
                    let begin_us = end.state.inactive_exit_timestamp.unwrap_or(end.at_us);
                    self.runs
                        .insert(def.name.clone(), ActiveRun::new(id, def.clone(), begin_us));
                    continue;
                }
                if in_ended_run {
                    continue;
                }
                if let Some(i) = def.task_index(&end.unit) {
                    self.task_ended(&def.name, i, &end.result, &end.state)?;
                }
            }
            if self.runs.contains_key(&def.name) {
                self.advance(&def.name)?;
            }
        }
        for name in self.defs.keys().cloned().collect::<Vec<_>>() {
            self.record_skips(&name);
            self.hold(&name, self.runs.contains_key(&name));
        }
        Ok(())
    }

    /// Ends a replayed run that a newer run replaced: what did not finish was canceled.
    pub(super) fn settle_replayed(&mut self, wf: &str, id: i64) -> Result<(), SupervisorError> {
        let Some(run) = self.runs.get_mut(wf) else {
            return Ok(());
        };
        let mut writes = Vec::new();
        for i in 0..run.tasks.len() {
            if !matches!(run.tasks[i].st, St::Final(_)) {
                writes.push(run.settle(i, Final::Canceled));
            }
        }
        let result = run_result(run);
        let ended_us = run.end_us();
        for w in writes {
            self.write(w);
        }
        if let Some(run) = self.runs.remove(wf) {
            self.log_run_ended(&run, result);
        }
        self.write(Write::Finish {
            id,
            ended_us,
            result,
        });
        Ok(())
    }
}

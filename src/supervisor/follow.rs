//! The supervisor's side of following a run (`flow run --wait`; the protocol and the
//! client are in [`crate::runs::follow`]): a socket, a thread that accepts followers, and
//! the followers of each workflow's next or current run.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::runs::follow::{Event, socket_path};

/// One connected follower. Its events are written by a thread of its own, so that a client
/// that does not read can never block the supervisor.
#[derive(Debug)]
pub(super) struct Follower {
    tx: mpsc::Sender<Event>,
}

impl Follower {
    fn new(stream: UnixStream) -> Option<Follower> {
        let (tx, rx) = mpsc::channel::<Event>();
        std::thread::Builder::new()
            .name("follower".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(stream);
                for ev in rx {
                    let Ok(line) = serde_json::to_string(&ev) else {
                        continue;
                    };
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Follower { tx })
    }

    /// False when the client is gone.
    fn send(&self, ev: Event) -> bool {
        self.tx.send(ev).is_ok()
    }
}

/// Binds the socket, replacing a stale one, readable by the supervisor's user alone. Call
/// before any thread starts: the umask is the process's.
pub(super) fn bind(runtime: &Path) -> Option<UnixListener> {
    let path = socket_path(runtime);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(&path);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&path);
    nix::sys::stat::umask(old);
    match bound {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(
                "cannot listen on {}: {e}; `flow run --wait` follows runs through systemd",
                path.display()
            );
            None
        }
    }
}

/// What a client asks (see `runs::follow` for the protocol).
#[derive(Debug)]
pub(super) enum Request {
    /// `follow <workflow>`: a follower of the workflow's next run; `queued <workflow>`: of
    /// the run that the workflow's waiting trigger unit (`overlap: queue`) will start.
    Follow {
        workflow: String,
        follower: Follower,
        queued: bool,
    },
    /// `rejoin <workflow> <run>`: a follower of run `run` that lost the supervisor before
    /// its end (a restart, an upgrade) and follows it on: told what is recorded of it, then
    /// as a follower of the run.
    Rejoin {
        workflow: String,
        run: i64,
        follower: Follower,
    },
    /// `skipped <workflow>`: `flow run` skipped a run by the overlap rule and left word of
    /// it: record it now.
    Skipped(String),
}

/// Accepts clients on a thread of its own; `register` hands each request to the
/// supervisor's main loop and says whether it still listens.
pub(super) fn accept(
    listener: UnixListener,
    register: impl Fn(Request) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("followers".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some((verb, workflow, run)) = request(&stream) else {
                    continue;
                };
                let req = if verb == "skipped" {
                    Request::Skipped(workflow)
                } else {
                    let Some(follower) = Follower::new(stream) else {
                        continue;
                    };
                    // `request` gives a run number with `rejoin` alone.
                    match run {
                        Some(run) => Request::Rejoin {
                            workflow,
                            run,
                            follower,
                        },
                        None => Request::Follow {
                            workflow,
                            follower,
                            queued: verb == "queued",
                        },
                    }
                };
                if !register(req) {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// Reads `<verb> <workflow>`, or `rejoin <workflow> <run>` (one short line, promptly) from
/// a new connection.
fn request(stream: &UnixStream) -> Option<(&'static str, String, Option<i64>)> {
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(stream, 256))
        .read_line(&mut line)
        .ok()?;
    let (verb, rest) = line.trim_end().split_once(' ')?;
    let verb = ["follow", "queued", "skipped", "rejoin"]
        .into_iter()
        .find(|v| *v == verb)?;
    let (wf, run) = match verb {
        "rejoin" => {
            let (wf, run) = rest.split_once(' ')?;
            (wf, Some(run.parse().ok()?))
        }
        _ => (rest, None),
    };
    let valid = !wf.is_empty()
        && wf
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| (verb, wf.to_string(), run))
}

/// Where a rejoined run stands.
pub(super) enum Rejoined {
    /// Over, with this result; `None`: the history does not have it as ended (nor does
    /// this supervisor have it open).
    Over {
        result: Option<crate::vocabulary::RunResult>,
    },
    /// Going: `tasks` and `run_job` as for [`Followers::opened`].
    Open {
        tasks: Vec<(String, String)>,
        run_job: bool,
    },
}

/// The supervisor's followers: those waiting for the next run of a workflow, and those
/// attached to a run.
#[derive(Default)]
pub(super) struct Followers {
    /// By workflow: the followers waiting for its next run.
    waiting: HashMap<String, Vec<Waiting>>,
    attached: HashMap<String, Attached>,
}

struct Waiting {
    follower: Follower,
    /// The first start job of the run unit seen since it asked: the job whose end, without
    /// a run begun, ends its wait.
    job: Option<u32>,
    /// Waits for the run a queued trigger will start: the trigger's end, before any start
    /// of the run unit, ends its wait.
    queued: bool,
}

struct Attached {
    run: i64,
    followers: Vec<Follower>,
    /// Task units' object paths: task names.
    paths: HashMap<String, String>,
    /// Tasks told running and not ended since (systemd says `activating` again at each
    /// sub-state of a start).
    running: HashSet<String>,
    /// The run's result, once it ended.
    ended: Option<String>,
    /// Whether the run unit's start job is over (a follower that is told the end can start
    /// the next run at once).
    systemd_done: bool,
}

impl Attached {
    /// Followers of run `run`; `tasks` and `run_job` as for [`Followers::opened`].
    fn new(
        run: i64,
        followers: Vec<Follower>,
        tasks: Vec<(String, String)>,
        run_job: bool,
    ) -> Attached {
        Attached {
            run,
            followers,
            paths: tasks.into_iter().collect(),
            running: HashSet::new(),
            ended: None,
            systemd_done: !run_job,
        }
    }
}

impl Followers {
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.attached.is_empty()
    }

    pub(super) fn add(&mut self, wf: String, follower: Follower, queued: bool) {
        if follower.send(Event::Following) {
            self.waiting.entry(wf).or_default().push(Waiting {
                follower,
                job: None,
                queued,
            });
        }
    }

    /// A job of the workflow's run unit appeared; `run_open`: a run of it is open. (The
    /// signal does not say the job's type.) A queued run's start comes only once the run
    /// before it is over: a job while that one is open is its own (the stop of a run
    /// past its deadline), not the queued run's.
    pub(super) fn run_job_new(&mut self, wf: &str, job: u32, run_open: bool) {
        for w in self.waiting.get_mut(wf).into_iter().flatten() {
            if w.queued && run_open {
                continue;
            }
            w.job.get_or_insert(job);
        }
    }

    /// The job of the workflow's trigger unit ended with `result`. A trigger that queues a
    /// start of the run unit does so before it ends; one stopped while it waited (`flow
    /// cancel`) or that failed started nothing, and its followers wait no more.
    pub(super) fn trigger_job_removed(&mut self, wf: &str, result: &str) {
        if result == "done" {
            return;
        }
        self.end_waiting(wf, Some(result), |w| w.queued && w.job.is_none());
    }

    /// Tells the waiting followers of `wf` that `which` picks that no run of theirs began,
    /// and lets them go.
    fn end_waiting(&mut self, wf: &str, result: Option<&str>, which: impl Fn(&Waiting) -> bool) {
        let Some(list) = self.waiting.get_mut(wf) else {
            return;
        };
        list.retain(|w| {
            if which(w) {
                w.follower.send(Event::End {
                    run: None,
                    result: result.map(str::to_string),
                });
                false
            } else {
                true
            }
        });
        if list.is_empty() {
            self.waiting.remove(wf);
        }
    }

    /// A job of the workflow's run unit ended; `run_open`: a run of it is open.
    pub(super) fn run_job_removed(&mut self, wf: &str, job: u32, run_open: bool) {
        if let Some(a) = self.attached.get_mut(wf) {
            a.systemd_done = true;
            self.settle(wf);
        }
        if !run_open {
            self.end_waiting(wf, None, |w| w.job == Some(job));
        }
    }

    /// A follower that lost the supervisor rejoins run `run` of `wf`: it is told the run's
    /// attempts recorded so far (it skips those it was told before), then its end if it
    /// is over, or else follows it from here like the run's other followers.
    pub(super) fn rejoin(
        &mut self,
        wf: &str,
        run: i64,
        follower: Follower,
        attempts: &[crate::store::Attempt],
        now: Rejoined,
    ) {
        if !follower.send(Event::Following) || !follower.send(Event::Run { id: run }) {
            return;
        }
        for a in attempts {
            follower.send(attempt_event(a, None));
        }
        let (tasks, run_job) = match now {
            Rejoined::Over { result } => {
                follower.send(Event::End {
                    run: Some(run),
                    result: result.map(|r| r.as_str().to_string()),
                });
                return;
            }
            Rejoined::Open { tasks, run_job } => (tasks, run_job),
        };
        match self.attached.get_mut(wf) {
            Some(a) if a.run == run => a.followers.push(follower),
            _ => {
                let a = Attached::new(run, vec![follower], tasks, run_job);
                self.attached.insert(wf.to_string(), a);
            }
        }
    }

    /// A run began: the workflow's waiting followers follow it. `tasks`: (unit object path,
    /// task name); `run_job`: whether the run unit has a start job still going.
    pub(super) fn opened(
        &mut self,
        wf: &str,
        run: i64,
        tasks: Vec<(String, String)>,
        run_job: bool,
    ) {
        let Some(list) = self.waiting.remove(wf) else {
            return;
        };
        let followers: Vec<Follower> = list
            .into_iter()
            .map(|w| w.follower)
            .filter(|f| f.send(Event::Run { id: run }))
            .collect();
        if followers.is_empty() {
            return;
        }
        // Followers of a run this one replaced before all its ends arrived: told now.
        if let Some(old) = self.attached.remove(wf) {
            let result = old.ended.or_else(|| Some("canceled".into()));
            for f in &old.followers {
                f.send(Event::End {
                    run: Some(old.run),
                    result: result.clone(),
                });
            }
        }
        self.attached.insert(
            wf.to_string(),
            Attached::new(run, followers, tasks, run_job),
        );
    }

    /// A unit's `ActiveState` became `activating`.
    pub(super) fn activating(&mut self, path: &str) {
        for a in self.attached.values_mut() {
            if let Some(task) = a.paths.get(path)
                && a.running.insert(task.clone())
            {
                let task = task.clone();
                a.followers
                    .retain(|f| f.send(Event::Running { task: task.clone() }));
            }
        }
    }

    /// An attempt of run `run` was recorded.
    pub(super) fn attempt(
        &mut self,
        run: i64,
        a: &crate::store::Attempt,
        retry_in: Option<Duration>,
    ) {
        for at in self.attached.values_mut().filter(|at| at.run == run) {
            at.running.remove(&a.task);
            at.followers.retain(|f| f.send(attempt_event(a, retry_in)));
        }
    }

    /// Run `run` ended with `result`.
    pub(super) fn finished(&mut self, run: i64, result: crate::vocabulary::RunResult) {
        let Some(wf) = self
            .attached
            .iter()
            .find(|(_, a)| a.run == run)
            .map(|(wf, _)| wf.clone())
        else {
            return;
        };
        if let Some(a) = self.attached.get_mut(&wf) {
            a.ended = Some(result.as_str().to_string());
        }
        self.settle(&wf);
    }

    /// Tells a run's followers it is over once both the run and the run unit's job ended,
    /// and lets them go (their connections close when their writers have written it all).
    fn settle(&mut self, wf: &str) {
        let Some(a) = self.attached.get(wf) else {
            return;
        };
        if !a.systemd_done || a.ended.is_none() {
            return;
        }
        if let Some(a) = self.attached.remove(wf) {
            for f in &a.followers {
                f.send(Event::End {
                    run: Some(a.run),
                    result: a.ended.clone(),
                });
            }
        }
    }
}

fn attempt_event(a: &crate::store::Attempt, retry_in: Option<Duration>) -> Event {
    Event::Attempt {
        task: a.task.clone(),
        attempt: a.attempt,
        outcome: a.outcome.clone(),
        invocation_id: a.invocation_id.clone(),
        started_us: a.started_us,
        ended_us: a.ended_us,
        retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::follow::Client;

    /// A follower over a real socket pair: waits for the next run, is told its events, and
    /// its end only once systemd's part of the run is over too.
    #[test]
    fn a_follower_is_told_the_next_run_and_its_end_after_the_run_units_job() {
        let (server, client) = UnixStream::pair().unwrap();
        let mut followers = Followers::default();
        followers.add("wf".into(), Follower::new(server).unwrap(), false);
        followers.run_job_new("wf", 7, false);
        followers.opened("wf", 3, vec![("/p/a".into(), "a".into())], true);
        followers.activating("/p/other");
        followers.activating("/p/a");
        // Once per start, though systemd says `activating` at each sub-state.
        followers.activating("/p/a");
        followers.finished(3, crate::vocabulary::RunResult::Succeeded);
        assert!(!followers.is_empty(), "the run unit's job is not over yet");
        followers.run_job_removed("wf", 7, false);
        assert!(followers.is_empty());
        drop(followers);
        let mut c = Client::from(client);
        let mut got = Vec::new();
        while let Some(ev) = c.next_event() {
            got.push(ev);
        }
        assert_eq!(
            got,
            vec![
                Event::Following,
                Event::Run { id: 3 },
                Event::Running { task: "a".into() },
                Event::End {
                    run: Some(3),
                    result: Some("succeeded".into())
                },
            ]
        );
    }

    #[test]
    fn followers_of_a_replaced_run_are_told_its_end() {
        let (old_server, old_client) = UnixStream::pair().unwrap();
        let (new_server, new_client) = UnixStream::pair().unwrap();
        let mut followers = Followers::default();
        followers.add("wf".into(), Follower::new(old_server).unwrap(), false);
        followers.opened("wf", 1, vec![], true);
        followers.add("wf".into(), Follower::new(new_server).unwrap(), false);
        followers.opened("wf", 2, vec![], true);
        drop(followers);
        let mut old = Client::from(old_client);
        assert_eq!(old.next_event(), Some(Event::Following));
        assert_eq!(old.next_event(), Some(Event::Run { id: 1 }));
        assert_eq!(
            old.next_event(),
            Some(Event::End {
                run: Some(1),
                result: Some("canceled".into())
            })
        );
        let mut new = Client::from(new_client);
        assert_eq!(new.next_event(), Some(Event::Following));
        assert_eq!(new.next_event(), Some(Event::Run { id: 2 }));
    }

    #[test]
    fn a_run_units_job_that_ends_without_a_run_ends_the_wait() {
        let (server, client) = UnixStream::pair().unwrap();
        let mut followers = Followers::default();
        // A job of a run going before the follower asked ends: not the one it waits for.
        followers.add("wf".into(), Follower::new(server).unwrap(), false);
        followers.run_job_removed("wf", 5, false);
        assert!(!followers.is_empty());
        followers.run_job_new("wf", 6, false);
        followers.run_job_removed("wf", 6, false);
        assert!(followers.is_empty());
        drop(followers);
        let mut c = Client::from(client);
        assert_eq!(c.next_event(), Some(Event::Following));
        assert_eq!(
            c.next_event(),
            Some(Event::End {
                run: None,
                result: None
            })
        );
        assert_eq!(c.next_event(), None);
    }

    /// A follower of the queued run (`overlap: queue`) is not ended by a job of the run
    /// before it, such as the stop of that run at its deadline: it used to be told its run
    /// had ended, and printed the run before as its own.
    #[test]
    fn a_queued_follower_waits_through_the_jobs_of_the_run_before() {
        let (server, _client) = UnixStream::pair().unwrap();
        let mut followers = Followers::default();
        followers.add("wf".into(), Follower::new(server).unwrap(), true);
        followers.run_job_new("wf", 8, true);
        followers.run_job_removed("wf", 8, true);
        followers.run_job_removed("wf", 8, false);
        assert!(!followers.is_empty(), "ended by the run before");
        followers.run_job_new("wf", 9, false);
        followers.opened("wf", 2, Vec::new(), true);
        assert!(followers.waiting.is_empty());
    }

    /// `flow cancel` stops a trigger that waits to start the next run (`overlap: queue`):
    /// the follower of that run is told no run of it began; a follower of a run started
    /// otherwise, and a trigger that ended after it started the run, end nothing.
    #[test]
    fn a_queued_trigger_stopped_before_its_run_ends_the_wait() {
        let (queued, queued_client) = UnixStream::pair().unwrap();
        let (started, _started_client) = UnixStream::pair().unwrap();
        let (other, _other_client) = UnixStream::pair().unwrap();
        let mut followers = Followers::default();
        followers.add("wf".into(), Follower::new(started).unwrap(), true);
        followers.run_job_new("wf", 9, false);
        followers.trigger_job_removed("wf", "done");
        followers.add("wf".into(), Follower::new(queued).unwrap(), true);
        followers.add("wf".into(), Follower::new(other).unwrap(), false);
        followers.trigger_job_removed("wf", "canceled");
        assert_eq!(followers.waiting.get("wf").map(Vec::len), Some(2));
        drop(followers);
        let mut c = Client::from(queued_client);
        assert_eq!(c.next_event(), Some(Event::Following));
        assert_eq!(
            c.next_event(),
            Some(Event::End {
                run: None,
                result: Some("canceled".into())
            })
        );
        assert_eq!(c.next_event(), None);
    }

    /// A follower that rejoins is told the attempts recorded so far; an ended run's end at
    /// once, an open run's when it comes, alongside the run's other followers.
    #[test]
    fn a_rejoining_follower_is_told_what_is_recorded_then_the_rest() {
        let attempt = crate::store::Attempt {
            run_id: 4,
            task: "a".into(),
            attempt: 1,
            invocation_id: None,
            started_us: Some(1),
            ended_us: Some(2),
            outcome: crate::vocabulary::Outcome::exited(1),
            cpu_ns: None,
            memory_peak: None,
        };
        let (over, over_client) = UnixStream::pair().unwrap();
        let (open, open_client) = UnixStream::pair().unwrap();
        let mut followers = Followers::default();
        let over_result = Rejoined::Over {
            result: Some(crate::vocabulary::RunResult::Failed),
        };
        followers.rejoin("wf", 3, Follower::new(over).unwrap(), &[], over_result);
        assert!(followers.is_empty(), "an ended run keeps no follower");
        let going = Rejoined::Open {
            tasks: vec![("/p/a".into(), "a".into())],
            run_job: false,
        };
        let recorded = std::slice::from_ref(&attempt);
        followers.rejoin("wf", 4, Follower::new(open).unwrap(), recorded, going);
        followers.activating("/p/a");
        followers.finished(4, crate::vocabulary::RunResult::Succeeded);
        assert!(followers.is_empty());
        drop(followers);
        let mut c = Client::from(over_client);
        assert_eq!(c.next_event(), Some(Event::Following));
        assert_eq!(c.next_event(), Some(Event::Run { id: 3 }));
        assert_eq!(
            c.next_event(),
            Some(Event::End {
                run: Some(3),
                result: Some("failed".into())
            })
        );
        assert_eq!(c.next_event(), None);
        let mut c = Client::from(open_client);
        assert_eq!(c.next_event(), Some(Event::Following));
        assert_eq!(c.next_event(), Some(Event::Run { id: 4 }));
        assert_eq!(c.next_event(), Some(attempt_event(&attempt, None)));
        assert_eq!(c.next_event(), Some(Event::Running { task: "a".into() }));
        assert_eq!(
            c.next_event(),
            Some(Event::End {
                run: Some(4),
                result: Some("succeeded".into())
            })
        );
    }

    #[test]
    fn requests_name_a_workflow() {
        for (line, want) in [
            ("follow backup\n", Some(("follow", "backup", None))),
            ("follow a-b_c", Some(("follow", "a-b_c", None))),
            ("skipped nightly\n", Some(("skipped", "nightly", None))),
            ("queued backup\n", Some(("queued", "backup", None))),
            ("rejoin backup 12\n", Some(("rejoin", "backup", Some(12)))),
            ("rejoin backup\n", None),
            ("rejoin backup x\n", None),
            ("follow backup 12\n", None),
            ("follow ../x\n", None),
            ("follow \n", None),
            ("skipped\n", None),
            ("status backup\n", None),
        ] {
            let (mut a, b) = UnixStream::pair().unwrap();
            a.write_all(line.as_bytes()).unwrap();
            drop(a);
            let got = request(&b);
            assert_eq!(
                got.as_ref().map(|(v, wf, run)| (*v, wf.as_str(), *run)),
                want,
                "{line:?}"
            );
        }
    }
}

//! The follower: one task per Jenkins client (one job of one Jenkins) that follows every build
//! in flight with ONE job-level request per tick, plus ONE queue listing while any followed item
//! is still queued, instead of one poller per check (issue 12, part 2).
//!
//! Checks register a [`JobHandle`] (queue item or build number, as persisted for resumption) and
//! await a `watch` of what the follower last saw. The next tick is due at the nearest wait that
//! [`super::poll`] gives across the followed jobs (sparse far from a build's estimate, dense near
//! it), never denser than the policy's minimum, with a little jitter so that replicas do not poll
//! in step. A queue item no longer listed and not among the builds is asked about directly
//! (`queue/item/N/api/json`, a bounded number per tick); a build out of the polled window is asked
//! about directly too. Every request is retried with backoff by the client (bounded, see
//! [`super::MAX_RETRIES`]). A poll that still fails with a passing fault (a 5xx from Jenkins or
//! its proxy, a timeout, a dropped connection) is tried again on later ticks, backing off, for as
//! long as the outage budget ([`super::PollPolicy::outage_budget`], 30 s at the default 1 s
//! minimum) and at least [`MIN_FAILED_POLLS`] failed polls: a Jenkins restarting behind its proxy
//! does not fail a 5-minute build. Past that, or at once for a fault that will not pass (4xx,
//! certificate, proxy, an answer not understood), the checks it concerned end with the error and
//! how long it lasted, and the follower goes on for the others. A registration stays followed
//! until its owner drops it or its job reaches a final state.
//!
//! The task starts with the first registration and ends when nothing is followed (so it stops
//! with the bot, whose checks end). This module decides no verdict and downloads no artifact:
//! the check whose build finished fetches its own, over the client's pooled connections.

use super::api::JobBuild;
use super::{
    next_poll, next_queue_poll, now_ms, BuildRef, BuildState, JenkinsClient, JenkinsError,
    JobHandle, JobProgress, QueueRef, QueueState,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How many followed jobs may be asked about one by one in one tick (queue items that left the
/// queue unseen, builds older than the polled window); the rest wait for the next tick.
const DIRECT_PER_TICK: usize = 8;
/// Builds polled beyond the span of the followed ones (builds started by others meanwhile).
const WINDOW_SLACK: u64 = 16;
/// The fewest failed polls (each after the client's own retries) before a passing fault ends a
/// check, however short the outage budget: the budget is time, and a loaded machine can spend
/// it on one poll.
pub const MIN_FAILED_POLLS: u32 = 3;
/// The narrowest and widest job-level window.
const WINDOW_MIN: u64 = 32;
const WINDOW_MAX: u64 = 5000;

/// What the follower last saw of one followed job.
#[derive(Clone, Debug)]
pub(crate) enum Seen {
    /// Not polled yet.
    Pending,
    /// Queued or running (`JobProgress::Queued` / `JobProgress::Running`).
    Progress(JobProgress),
    /// Finished, with any result.
    Finished {
        /// The build.
        build: BuildRef,
        /// Its result.
        result: String,
        /// `artifacts[].relativePath`.
        artifacts: Vec<String>,
    },
    /// Cancelled in the queue (`why`: Jenkins' last reason for waiting).
    Cancelled {
        /// The queue item.
        queue: QueueRef,
        /// Why it was waiting.
        why: Option<String>,
    },
    /// Jenkins no longer knows the job.
    Lost {
        /// The last handle.
        handle: JobHandle,
        /// What happened.
        detail: String,
    },
    /// The poll that concerned this job failed (after the client's own retries), and kept
    /// failing past the outage budget when the fault could pass.
    PollFailed {
        /// Where the job was.
        handle: JobHandle,
        /// What the last poll got.
        error: JenkinsError,
        /// How long the polls had been failing (zero when the first failure ended it).
        failing_for: Duration,
        /// How many polls failed in a row.
        failed_polls: u32,
    },
}

impl Seen {
    fn is_final(&self) -> bool {
        !matches!(self, Seen::Pending | Seen::Progress(_))
    }
}

struct Entry {
    handle: JobHandle,
    tx: watch::Sender<Seen>,
    /// When this job is next worth a poll.
    due: Instant,
    /// The check's own deadline: a last poll happens shortly before it.
    deadline: Instant,
    /// When it was registered (the queue back-off runs from here).
    registered: Instant,
    /// When its build was first seen running.
    first_seen: Option<Instant>,
    /// Jenkins' last reason for waiting.
    last_why: Option<String>,
    /// A final state was sent: nothing more to poll.
    done: bool,
    /// Since when, and how many times in a row, the polls concerning it failed (passing faults).
    failing: Option<(Instant, u32)>,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    next_id: u64,
    running: bool,
    last_tick: Option<Instant>,
    /// The newest build number Jenkins listed.
    newest: u64,
    /// The window the next tick asks at least: a followed job was beyond the last one.
    widen_to: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The follower of one client; cheap to create, its task starts on the first registration.
#[derive(Default)]
pub(crate) struct Follower {
    shared: Arc<Shared>,
}

/// One followed job. Dropping it stops following the job.
pub(crate) struct Followed {
    id: u64,
    /// The handle registered (for the one case where nothing more can be seen).
    handle: JobHandle,
    shared: Arc<Shared>,
    rx: watch::Receiver<Seen>,
}

impl Followed {
    /// The next thing seen.
    pub(crate) async fn next(&mut self) -> Seen {
        if self.rx.changed().await.is_err() {
            // Only the owner removes its entry (dropping the sender), so this cannot happen while
            // it waits; were it to, the job is no longer followed: say so rather than spin.
            return Seen::Lost {
                handle: self.handle.clone(),
                detail: "linkbot stopped following the job".to_string(),
            };
        }
        self.rx.borrow_and_update().clone()
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        self.shared.lock().entries.remove(&self.id);
        self.shared.wake.notify_one();
    }
}

impl Follower {
    /// Follows `handle` until its build finishes (or the returned [`Followed`] is dropped).
    pub(crate) fn register(
        &self,
        client: &JenkinsClient,
        handle: JobHandle,
        deadline: Instant,
    ) -> Followed {
        let (tx, rx) = watch::channel(Seen::Pending);
        let now = Instant::now();
        let min = client.policy().min;
        let registered = handle.clone();
        let mut st = self.shared.lock();
        let id = st.next_id;
        st.next_id += 1;
        // Never denser than `min`: a registration joins the next tick, at most `min` away.
        let due = st.last_tick.map_or(now, |t| (t + min).max(now));
        st.entries.insert(
            id,
            Entry {
                handle,
                tx,
                due,
                deadline,
                registered: now,
                first_seen: None,
                last_why: None,
                done: false,
                failing: None,
            },
        );
        if !st.running {
            st.running = true;
            tokio::spawn(run(client.clone(), self.shared.clone()));
        }
        drop(st);
        self.shared.wake.notify_one();
        Followed {
            id,
            handle: registered,
            shared: self.shared.clone(),
            rx,
        }
    }
}

/// Cuts `wait` once so that a last poll happens shortly before `deadline` (after that poll the
/// cut would be under `min`, so the wait runs into the deadline).
fn cut(wait: Duration, deadline: Instant, min: Duration) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    let cut = left.saturating_sub(min.min(left / 10));
    if wait > cut && cut >= min {
        cut
    } else {
        wait
    }
}

/// Up to 10 % more, so that followers started together drift apart.
fn jitter(wait: Duration) -> Duration {
    wait + wait.mul_f64(fastrand::f64() * 0.1)
}

async fn run(client: JenkinsClient, shared: Arc<Shared>) {
    loop {
        let next = {
            let mut st = shared.lock();
            let next = st.entries.values().filter(|e| !e.done).map(|e| e.due).min();
            match next {
                Some(n) => n,
                None => {
                    st.running = false;
                    return;
                }
            }
        };
        let now = Instant::now();
        if next > now {
            tokio::select! {
                () = tokio::time::sleep(jitter(next - now)) => {}
                () = shared.wake.notified() => continue,
            }
        }
        tick(&client, &shared).await;
    }
}

/// What one tick needs from the table.
struct Plan {
    /// The jobs this tick answers for (registered before its requests were sent).
    ids: Vec<u64>,
    queued: bool,
    window: u32,
}

fn plan(st: &State) -> Plan {
    let live = st.entries.iter().filter(|(_, e)| !e.done);
    let mut ids = Vec::new();
    let mut queued = 0u64;
    let mut oldest: Option<u64> = None;
    let mut newest = st.newest;
    for (id, e) in live {
        ids.push(*id);
        match &e.handle {
            JobHandle::Queued(_) => queued += 1,
            JobHandle::Build(b) => {
                oldest = Some(oldest.map_or(b.number, |o| o.min(b.number)));
                newest = newest.max(b.number);
            }
        }
    }
    let span = oldest.map_or(0, |o| newest.saturating_sub(o) + 1);
    let window = (span + queued + WINDOW_SLACK)
        .max(st.widen_to)
        .clamp(WINDOW_MIN, WINDOW_MAX);
    Plan {
        ids,
        queued: queued > 0,
        window: u32::try_from(window).unwrap_or(u32::MAX),
    }
}

/// A job to ask about on its own after the shared polls.
enum Direct {
    Queue(QueueRef),
    Build(BuildRef),
}

async fn tick(client: &JenkinsClient, shared: &Shared) {
    let policy = *client.policy();
    let plan = {
        let mut st = shared.lock();
        st.last_tick = Some(Instant::now());
        plan(&st)
    };
    let listing = if plan.queued {
        Some(client.queue_listing().await)
    } else {
        None
    };
    let builds = client.job_builds(plan.window).await;
    let now = Instant::now();
    let mut direct: Vec<(u64, Direct)> = Vec::new();
    {
        let mut st = shared.lock();
        let by_number: BTreeMap<u64, &JobBuild> = match &builds {
            Ok(list) => list.iter().map(|b| (b.number, b)).collect(),
            Err(_) => BTreeMap::new(),
        };
        // The numbers the poll covered: a build missing in between is gone; one outside (older
        // than the window, or newer than the newest listed: Jenkins may list a build a moment
        // after its queue item names it) is asked about on its own.
        let (oldest_listed, newest_listed) = (
            by_number.keys().next().copied(),
            by_number.keys().next_back().copied(),
        );
        let by_queue: HashMap<u64, &JobBuild> = match &builds {
            Ok(list) => list
                .iter()
                .filter_map(|b| b.queue_id.map(|q| (q, b)))
                .collect(),
            Err(_) => HashMap::new(),
        };
        if let Some(n) = by_number.keys().next_back() {
            st.newest = st.newest.max(*n);
        }
        // The list filled the window: what it did not reach may be older, not gone. Such a job
        // waits for the next tick, which asks twice as many (up to the widest window).
        let full = builds
            .as_ref()
            .is_ok_and(|l| l.len() as u64 >= u64::from(plan.window));
        let can_widen = full && u64::from(plan.window) < WINDOW_MAX;
        // Queue ids grow with time: once the window reaches builds queued before an item, the
        // item's build, had it started, would be listed.
        let oldest_queue_id = by_queue.keys().min().copied();
        let mut missed = false;
        let job_url = client.job_url().clone();
        for id in &plan.ids {
            let Some(e) = st.entries.get_mut(id).filter(|e| !e.done) else {
                continue;
            };
            match e.handle.clone() {
                JobHandle::Queued(q) => {
                    if let Some(b) = by_queue.get(&q.id) {
                        match super::api::build_url(&job_url, b.number) {
                            Ok(url) => {
                                let build = BuildRef {
                                    number: b.number,
                                    url,
                                };
                                e.handle = JobHandle::Build(build.clone());
                                observe_build(e, build, &b.state, now, &policy);
                            }
                            Err(err) => fail(e, err, now, &policy),
                        }
                        continue;
                    }
                    match &listing {
                        Some(Err(err)) => fail(e, err.clone(), now, &policy),
                        Some(Ok(items)) if items.contains_key(&q.id) => {
                            if let Some(state) = items.get(&q.id).cloned() {
                                observe_queue(e, q, state, now, &policy);
                            }
                        }
                        _ if builds.is_err() => {
                            if let Err(err) = &builds {
                                fail(e, err.clone(), now, &policy);
                            }
                        }
                        _ if can_widen && oldest_queue_id.is_some_and(|o| o > q.id) => {
                            missed = true;
                            e.due = now + policy.min;
                        }
                        _ if direct.len() < DIRECT_PER_TICK => {
                            direct.push((*id, Direct::Queue(q)));
                        }
                        _ => e.due = now + policy.min,
                    }
                }
                JobHandle::Build(b) => match (&builds, by_number.get(&b.number)) {
                    (Err(err), _) => fail(e, err.clone(), now, &policy),
                    (Ok(_), Some(jb)) => observe_build(e, b, &jb.state, now, &policy),
                    (Ok(_), None) => {
                        let covered = oldest_listed.is_some_and(|o| b.number > o)
                            && newest_listed.is_some_and(|n| b.number < n);
                        let older = oldest_listed.is_some_and(|o| b.number < o);
                        if older && can_widen {
                            missed = true;
                            e.due = now + policy.min;
                        } else if covered {
                            finish(
                                e,
                                Seen::Lost {
                                    handle: JobHandle::Build(b.clone()),
                                    detail: format!("Jenkins no longer knows build #{}", b.number),
                                },
                            );
                        } else if direct.len() < DIRECT_PER_TICK {
                            direct.push((*id, Direct::Build(b)));
                        } else {
                            e.due = now + policy.min;
                        }
                    }
                },
            }
        }
        st.widen_to = if missed {
            (u64::from(plan.window) * 2).min(WINDOW_MAX)
        } else {
            0
        };
    }
    for (id, d) in direct {
        ask_directly(client, shared, id, d).await;
    }
}

/// A failed poll (after the client's own retries with backoff). A passing fault is polled again
/// later, backing off, while the outage lasts less than the budget or fewer than
/// [`MIN_FAILED_POLLS`] polls failed; otherwise the job's check hears of it and ends, and the
/// follower goes on for the others.
fn fail(e: &mut Entry, error: JenkinsError, now: Instant, policy: &super::PollPolicy) {
    let (since, failed) = e.failing.map_or((now, 1), |(since, n)| (since, n + 1));
    let failing_for = now.saturating_duration_since(since);
    let give_up = !error.is_passing()
        || (failed >= MIN_FAILED_POLLS && failing_for >= policy.outage_budget())
        || now >= e.deadline;
    if give_up {
        let handle = e.handle.clone();
        finish(
            e,
            Seen::PollFailed {
                handle,
                error,
                failing_for,
                failed_polls: failed,
            },
        );
        return;
    }
    tracing::debug!(
        error = %error,
        failed_polls = failed,
        failing_for_ms = failing_for.as_millis() as u64,
        "Jenkins poll failed; polling again later"
    );
    e.failing = Some((since, failed));
    e.due = now + cut(policy.outage_backoff(failed), e.deadline, policy.min);
}

fn finish(e: &mut Entry, seen: Seen) {
    debug_assert!(seen.is_final());
    e.done = true;
    e.tx.send_replace(seen);
}

fn observe_queue(
    e: &mut Entry,
    q: QueueRef,
    state: QueueState,
    now: Instant,
    policy: &super::PollPolicy,
) {
    e.failing = None;
    match state {
        QueueState::Cancelled { why } => finish(
            e,
            Seen::Cancelled {
                queue: q,
                why: why.or_else(|| e.last_why.clone()),
            },
        ),
        QueueState::Started(build) => {
            // Left the queue: the next tick finds it among the builds.
            e.handle = JobHandle::Build(build.clone());
            e.first_seen.get_or_insert(now);
            e.tx.send_replace(Seen::Progress(JobProgress::Running {
                build,
                elapsed: Duration::ZERO,
                estimated: None,
            }));
            e.due = now + cut(policy.min, e.deadline, policy.min);
        }
        QueueState::Waiting { why } => {
            if why.is_some() {
                e.last_why.clone_from(&why);
            }
            e.tx.send_replace(Seen::Progress(JobProgress::Queued { queue: q, why }));
            let wait = next_queue_poll(now.saturating_duration_since(e.registered), policy);
            e.due = now + cut(wait, e.deadline, policy.min);
        }
    }
}

fn observe_build(
    e: &mut Entry,
    build: BuildRef,
    state: &BuildState,
    now: Instant,
    policy: &super::PollPolicy,
) {
    e.failing = None;
    let finished = if state.building {
        None
    } else {
        state.result.clone()
    };
    if let Some(result) = finished {
        finish(
            e,
            Seen::Finished {
                build,
                result,
                artifacts: state.artifacts.clone(),
            },
        );
        return;
    }
    // Running (or finished without a result yet, briefly, in pipelines).
    let local = now.saturating_duration_since(*e.first_seen.get_or_insert(now));
    let elapsed = state
        .started_at_ms
        .map(|t| now_ms().saturating_sub(t))
        .filter(|ms| *ms >= 0)
        .map(|ms| Duration::from_millis(ms.unsigned_abs()).max(local))
        .unwrap_or(local);
    e.tx.send_replace(Seen::Progress(JobProgress::Running {
        build,
        elapsed,
        estimated: state.estimated,
    }));
    let wait = if state.building {
        next_poll(elapsed, state.estimated, policy)
    } else {
        policy.min
    };
    e.due = now + cut(wait, e.deadline, policy.min);
}

/// Asks about one job on its own: a queue item that left the queue unseen (Jenkins forgets
/// those after about 5 minutes: then its build is searched among the job's builds), or a build
/// older than the polled window.
async fn ask_directly(client: &JenkinsClient, shared: &Shared, id: u64, d: Direct) {
    let policy = *client.policy();
    match d {
        Direct::Queue(q) => {
            let answer = client.queue_state(&q).await;
            let searched = match &answer {
                Err(e) if e.status() == Some(404) => Some(client.build_of_queue_item(&q).await),
                _ => None,
            };
            let now = Instant::now();
            let mut st = shared.lock();
            let Some(e) = st.entries.get_mut(&id) else {
                return;
            };
            match (answer, searched) {
                (Ok(state), _) => observe_queue(e, q, state, now, &policy),
                (Err(_), Some(Ok(Some(build)))) => {
                    observe_queue(e, q, QueueState::Started(build), now, &policy);
                }
                (Err(_), Some(Ok(None))) => finish(
                    e,
                    Seen::Lost {
                        handle: JobHandle::Queued(q.clone()),
                        detail: format!(
                            "Jenkins no longer knows queue item {} and no recent build came from it",
                            q.id
                        ),
                    },
                ),
                (Err(_), Some(Err(err))) => finish(
                    e,
                    Seen::Lost {
                        handle: JobHandle::Queued(q.clone()),
                        detail: format!(
                            "Jenkins no longer knows queue item {} ({})",
                            q.id,
                            err.user_message()
                        ),
                    },
                ),
                (Err(err), None) => {
                    fail(e, err, now, &policy);
                }
            }
        }
        Direct::Build(b) => {
            let answer = client.build_state(&b).await;
            let now = Instant::now();
            let mut st = shared.lock();
            let Some(e) = st.entries.get_mut(&id) else {
                return;
            };
            match answer {
                Ok(state) => observe_build(e, b, &state, now, &policy),
                Err(err) if err.status() == Some(404) => finish(
                    e,
                    Seen::Lost {
                        handle: JobHandle::Build(b.clone()),
                        detail: format!("Jenkins no longer knows build #{}", b.number),
                    },
                ),
                Err(err) => fail(e, err, now, &policy),
            }
        }
    }
}

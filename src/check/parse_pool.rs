//! The low-priority pool artifact parsing runs on, away from the async workers.
//!
//! Parsing two 4 MiB artifacts is seconds of CPU. It runs on a few dedicated threads (cores − 1,
//! at least 1) that lower their own scheduling priority when they start (nice [`PARSE_NICE`] on
//! Linux; nothing elsewhere), so the tokio workers acking envelopes win most of a shared core.
//! Not `SCHED_IDLE`: an idle-class thread gets no CPU at all while any normal thread on the host
//! wants it, and on a loaded 2-core CI a panicking job's answer waited more than 20 s for its
//! thread to run — on a busy node that would be checks that never end. Nice 10 weighs a parse
//! about 1:10 against a worker and still guarantees it progress. Jobs come over a bounded channel (a full queue makes the caller wait,
//! asynchronously); each answer goes back on its own oneshot. A job that panics is caught on its
//! thread: the caller gets [`PoolError::Panicked`] and the thread takes the next job, so a bad
//! parse is a visible failure, never a hang or a lost thread.
//!
//! It must not know what is parsed (it runs closures), and it must not block an async task.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// One job: runs the closure and sends its answer.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// How many jobs may wait for a thread, per thread, before callers wait to hand theirs in.
const QUEUED_PER_THREAD: usize = 4;

/// Why a job gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The job panicked (its message is not kept: it could quote what was being parsed).
    #[error("the job panicked")]
    Panicked,
    /// The pool's threads are gone (the process is stopping).
    #[error("the parse pool is stopped")]
    Stopped,
}

/// A pool of low-priority threads. Cheap to clone; the threads end when the last clone is dropped
/// and the queue is empty.
#[derive(Clone, Debug)]
pub struct ParsePool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

impl ParsePool {
    /// Starts `threads` (at least 1) threads named `linkbot-parse-<n>`, each at low priority.
    pub fn start(threads: usize) -> std::io::Result<ParsePool> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>(threads * QUEUED_PER_THREAD);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("linkbot-parse-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // One thread waits on the queue at a time; the lock is released before
                        // the job runs.
                        let job = rx
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .blocking_recv();
                        let Some(job) = job else { break };
                        // The job's sender is dropped while unwinding: its caller sees Panicked.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(ParsePool { jobs: tx, threads })
    }

    /// The pool for this machine: one thread per core but one (the async workers keep a core),
    /// at least one.
    pub fn for_this_machine() -> std::io::Result<ParsePool> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ParsePool::start(cores.saturating_sub(1))
    }

    /// How many threads parse at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on a pool thread and waits (asynchronously) for its answer.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).await.map_err(|_| PoolError::Stopped)?;
        // The sender is dropped without an answer only when the job panicked (or its thread
        // ended mid-job, which only a panic does).
        rx.await.map_err(|_| PoolError::Panicked)
    }
}

/// The nice value parse threads take: low enough that a worker wins a shared core about 10:1
/// (CFS weights 1024 vs 110), never so low that a parse can starve.
pub const PARSE_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to nice [`PARSE_NICE`]. Best effort: on
/// failure the thread keeps the normal priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: `gettid` has no preconditions; `setpriority` on the calling thread's id takes plain
    // integers. Neither touches Rust memory.
    let niced = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, PARSE_NICE)
    };
    if niced != 0 {
        tracing::debug!("the parse thread keeps the normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("the pool answers within 20 s")
    }

    #[tokio::test]
    async fn runs_jobs_and_returns_their_answers() {
        let pool = ParsePool::start(2).unwrap();
        let answers = bounded(futures_util::future::join_all(
            (0..20).map(|i| pool.run(move || i * 2)),
        ))
        .await;
        let answers: Vec<i32> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_goes_on() {
        let pool = ParsePool::start(1).unwrap();
        let e = bounded(pool.run(|| -> u8 { panic!("parser bug") })).await;
        assert_eq!(e, Err(PoolError::Panicked));
        // The only thread survived the panic and takes the next job.
        assert_eq!(bounded(pool.run(|| 7)).await, Ok(7));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn jobs_run_niced_but_in_the_normal_class() {
        let pool = ParsePool::start(1).unwrap();
        let (policy, nice) = bounded(pool.run(|| {
            // SAFETY: read the calling thread's policy and nice value; no memory is passed.
            unsafe {
                (
                    libc::sched_getscheduler(0),
                    libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                )
            }
        }))
        .await
        .unwrap();
        // SCHED_OTHER: an idle-class thread could starve behind any other load on the host.
        assert_eq!(policy, libc::SCHED_OTHER);
        assert_eq!(nice, PARSE_NICE);
    }
}

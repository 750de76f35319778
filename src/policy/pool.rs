//! The libvips worker pool and the queue in front of it.
//!
//! libvips work is CPU-bound and must never run on the async workers. `workers` threads of
//! their own run the transforms; at most `queue` more may wait, each for at most `max_wait`;
//! past that the request is refused with 503 + `Retry-After` (answered after [`REFUSAL_HOLD`])
//! instead of piling up memory and latency. Sources are read before a job is queued (mounted
//! files: on the worker), so a slow client never holds one.
//!
//! A worker that finishes takes the next job itself. Handing the next job over through the
//! async runtime (a semaphore permit released on the blocking thread, the waiting task
//! scheduled, then `spawn_blocking`) left a core idle between two transforms: at 16
//! connections on 2 cores, a 2 MP JPEG → 300 px ran at 0.84 of the in-process baseline.
//! A job whose request went away while it waited is dropped from the queue, not run.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;

/// How long a refusal waits before it is answered. A client refused under a flood asks again at
/// once (a closed-loop load generator does; so does a retry loop that ignores `Retry-After`):
/// refusals answered at once kept four request threads busy, which took two thirds of the cores
/// from the image workers, and the jobs already queued waited three times longer for them
/// (docs/performance.md, change 31). A held refusal costs a timer, no CPU.
pub const REFUSAL_HOLD: Duration = Duration::from_millis(100);

/// [`Error::Overloaded`], after [`REFUSAL_HOLD`].
pub async fn refusal() -> Error {
    tokio::time::sleep(REFUSAL_HOLD).await;
    Error::Overloaded
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
    queue: usize,
    max_wait: Duration,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued (or the pool closes).
    queued: Condvar,
}

#[derive(Default)]
struct State {
    /// Jobs not yet taken, oldest first, each with the number its request removes it by.
    jobs: VecDeque<(u64, Box<dyn Job>)>,
    next_id: u64,
    /// Workers inside a job; the others are free, or about to look at the queue (under the
    /// lock, before they would park), so a job queued now is theirs.
    running: usize,
    closed: bool,
}

/// A queued closure and where its result goes, type-erased for the queue.
trait Job: Send {
    /// The request stopped waiting (client gone): nobody would read the result.
    fn abandoned(&self) -> bool;
    /// Runs the work, calls `finished` (the worker counts as free again), then sends the result:
    /// a request sent as soon as this answer arrives (a closed loop with `-queue 0`) must find
    /// the worker free, not be refused for the instant before the worker says so.
    fn run(self: Box<Self>, finished: &mut dyn FnMut());
}

type Outcome<T> = Result<T, String>;

struct Pending<F, T> {
    work: F,
    reply: oneshot::Sender<Outcome<T>>,
}

impl<F, T> Job for Pending<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(self: Box<Self>, finished: &mut dyn FnMut()) {
        let Pending { work, reply } = *self;
        // A panic in an image step fails this request, not the worker.
        let outcome = catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into())
        });
        finished();
        let _ = reply.send(outcome);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) {
        let mut state = self.lock();
        loop {
            match state.jobs.pop_front() {
                Some((_, job)) => {
                    state.running += 1;
                    drop(state);
                    let mut free = || self.lock().running -= 1;
                    match job.abandoned() {
                        // Its source bytes are freed before the lock is taken again.
                        true => {
                            drop(job);
                            free();
                        }
                        false => job.run(&mut free),
                    }
                    state = self.lock();
                }
                None if state.closed => return,
                None => state = self.queued.wait(state).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// Takes a queued job back out when its request stops waiting (timed out, or the client
/// went away and the future was dropped); a job a worker already took stays with it.
struct Withdraw<'a> {
    shared: &'a Shared,
    id: u64,
    /// Whether the job may still be queued: cleared once its answer came, so the usual
    /// request does not lock the queue a second time to look for it.
    armed: bool,
}

impl Withdraw<'_> {
    /// Whether the job was still queued (and is now gone).
    fn withdraw(&mut self) -> bool {
        self.armed = false;
        let mut state = self.shared.lock();
        let Some(at) = state.jobs.iter().position(|(id, _)| *id == self.id) else {
            return false;
        };
        let job = state.jobs.remove(at);
        drop(state);
        // Its source bytes are freed outside the lock.
        drop(job);
        true
    }
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.withdraw();
        }
    }
}

impl Pool {
    /// Starts `workers` threads (at least one).
    pub fn new(workers: usize, queue: usize, max_wait: Duration) -> Self {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Condvar::new(),
        });
        for n in 0..workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("imgedge-worker-{n}"))
                .spawn(move || shared.work())
                .expect("cannot start an image worker thread");
        }
        Pool {
            shared,
            workers,
            queue,
            max_wait,
        }
    }

    /// Runs `work` on a worker thread, queued behind the jobs already waiting.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let id = {
            let mut state = self.shared.lock();
            if self.full(&state) {
                None
            } else {
                let id = state.next_id;
                state.next_id += 1;
                state
                    .jobs
                    .push_back((id, Box::new(Pending { work, reply })));
                Some(id)
            }
        };
        let Some(id) = id else {
            return Err(refusal().await);
        };
        self.shared.queued.notify_one();
        let mut queued = Withdraw {
            shared: &self.shared,
            id,
            armed: true,
        };
        tokio::pin!(result);
        let outcome = match tokio::time::timeout(self.max_wait, &mut result).await {
            Ok(outcome) => {
                queued.armed = false;
                outcome
            }
            // Still queued after max_wait: give up. Taken meanwhile: it is running, wait for it.
            Err(_) if queued.withdraw() => return Err(Error::Overloaded),
            Err(_) => result.await,
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(worker_failed(panic)),
            Err(_) => Err(worker_failed("the worker stopped".into())),
        }
    }

    /// Whether a transform asked for now would be refused (every worker busy and the queue
    /// full). Checked before a source is read, so overload costs no source bytes in memory.
    pub fn is_saturated(&self) -> bool {
        self.full(&self.shared.lock())
    }

    /// No worker free for one more job, and `queue` jobs already waiting.
    fn full(&self, state: &State) -> bool {
        state.jobs.len() >= self.free(state) + self.queue
    }

    /// Workers not inside a job.
    fn free(&self, state: &State) -> usize {
        self.workers.saturating_sub(state.running)
    }

    /// Transforms running now.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().running
    }

    /// Transforms waiting for a worker (a job just queued for a free worker that has not
    /// taken it yet is not waiting).
    pub fn waiting(&self) -> usize {
        let state = self.shared.lock();
        state.jobs.len().saturating_sub(self.free(&state))
    }
}

impl Drop for Pool {
    /// Workers finish the jobs already queued, then exit.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.queued.notify_all();
    }
}

fn worker_failed(reason: String) -> Error {
    Error::Message {
        status: 500,
        message: format!("image worker failed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Waits (bounded) until `cond` holds on the pool.
    async fn until(pool: &Pool, cond: impl Fn(&Pool) -> bool) {
        for _ in 0..500 {
            if cond(pool) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("pool never reached the expected state");
    }

    type Busy = tokio::task::JoinHandle<Result<Option<()>, Error>>;

    /// A one-worker pool whose worker is held by a job until the sender is used.
    async fn held(queue: usize, max_wait: Duration) -> (Arc<Pool>, mpsc::Sender<()>, Busy) {
        let pool = Arc::new(Pool::new(1, queue, max_wait));
        let (release, hold) = mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || hold.recv().ok()).await })
        };
        until(&pool, |p| p.in_flight() == 1).await;
        (pool, release, busy)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_overloaded() {
        let (pool, release, busy) = held(1, Duration::from_secs(10)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        until(&pool, |p| p.waiting() == 1).await;
        assert!(pool.is_saturated());
        let asked = std::time::Instant::now();
        assert_eq!(pool.run(|| 3).await.unwrap_err(), Error::Overloaded);
        assert!(asked.elapsed() >= REFUSAL_HOLD, "the refusal is held");
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4);
        assert!(!pool.is_saturated());
        assert_eq!((pool.in_flight(), pool.waiting()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_queue_only_a_free_worker_takes_a_job() {
        let free = Pool::new(1, 0, Duration::from_secs(10));
        assert!(!free.is_saturated());
        // Back to back, as a client on one connection: each answer leaves the worker free.
        for i in 0..2000 {
            assert_eq!(free.run(move || i).await, Ok(i));
        }
        let (pool, release, busy) = held(0, Duration::from_secs(10)).await;
        assert!(pool.is_saturated());
        assert_eq!(pool.run(|| 2).await.unwrap_err(), Error::Overloaded);
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(pool.run(|| 3).await.unwrap(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_is_bounded_in_time_but_running_is_not() {
        // The held job runs well past max_wait: a job that started is never cut short.
        let (pool, release, busy) = held(8, Duration::from_millis(100)).await;
        assert_eq!(pool.run(|| 1).await.unwrap_err(), Error::Overloaded);
        assert_eq!(pool.waiting(), 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), Some(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_request_left_is_not_run() {
        let (pool, release, busy) = held(8, Duration::from_secs(10)).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let left = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move {
                pool.run(move || ran.store(true, std::sync::atomic::Ordering::SeqCst))
                    .await
            })
        };
        until(&pool, |p| p.waiting() == 1).await;
        left.abort();
        until(&pool, |p| p.waiting() == 0).await;
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        // the worker is free again and ran nothing else
        assert_eq!(pool.run(|| 5).await.unwrap(), 5);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_workers_run_two_jobs_at_once_and_a_panic_fails_only_its_request() {
        let pool = Arc::new(Pool::new(2, 8, Duration::from_secs(10)));
        let err = pool
            .run(|| -> u32 { panic!("bad step") })
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::Message {
                status: 500,
                message: "image worker failed: bad step".into()
            }
        );
        // Two jobs that each wait for the other can only finish on two threads at once.
        let (a_tx, a_rx) = mpsc::channel::<()>();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let a = pool.run(move || {
            b_tx.send(()).unwrap();
            a_rx.recv_timeout(Duration::from_secs(5)).is_ok()
        });
        let b = pool.run(move || {
            a_tx.send(()).unwrap();
            b_rx.recv_timeout(Duration::from_secs(5)).is_ok()
        });
        let (a, b) = tokio::join!(a, b);
        assert_eq!((a.unwrap(), b.unwrap()), (true, true));
        let names = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(names.unwrap().starts_with("imgedge-worker-"));
    }
}

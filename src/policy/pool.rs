//! The gate in front of the libvips worker pool.
//!
//! libvips work is CPU-bound and must never run on the async workers. At most `workers`
//! transforms run at once (each on a blocking thread), at most `queue` more may wait, each for
//! at most `max_wait`; past that the request is refused with 503 + `Retry-After` instead of
//! piling up memory and latency. Sources are read before a worker is taken, so a slow client
//! never holds one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::Error;

pub struct Pool {
    permits: Arc<Semaphore>,
    workers: usize,
    waiting: AtomicUsize,
    queue: usize,
    max_wait: Duration,
}

impl Pool {
    pub fn new(workers: usize, queue: usize, max_wait: Duration) -> Self {
        Pool {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            workers: workers.max(1),
            waiting: AtomicUsize::new(0),
            queue,
            max_wait,
        }
    }

    /// Runs `work` on a blocking thread once a worker is free.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Error::Overloaded);
                }
                let acquired =
                    tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match acquired {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(Error::Overloaded),
                }
            }
        };
        // The permit moves into the closure: it is released when the work ends, even if the
        // client went away and this future was dropped.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| Error::Message {
            status: 500,
            message: format!("image worker failed: {e}"),
        })
    }

    /// Whether a transform asked for now would be refused (every worker busy and the queue
    /// full). Checked before a source is read, so overload costs no source bytes in memory.
    pub fn is_saturated(&self) -> bool {
        self.permits.available_permits() == 0 && self.waiting.load(Ordering::Acquire) >= self.queue
    }

    /// Transforms running now.
    pub fn in_flight(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// Transforms waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_overloaded() {
        let pool = Arc::new(Pool::new(1, 1, Duration::from_secs(10)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || hold.recv().ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.waiting(), 1);
        assert!(pool.is_saturated());
        assert_eq!(pool.run(|| 3).await.unwrap_err(), Error::Overloaded);
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4);
        assert!(!pool.is_saturated());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_is_bounded_in_time() {
        let pool = Arc::new(Pool::new(1, 8, Duration::from_millis(100)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || hold.recv().ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(pool.run(|| 1).await.unwrap_err(), Error::Overloaded);
        assert_eq!(pool.waiting(), 0);
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
    }
}

//! Single-flight: concurrent misses on one key produce the variant once.
//!
//! A popular image that falls out of cache (or was never in it) is asked for by many clients
//! at once; without coalescing each of them would fetch the source and run libvips. The first
//! caller for a key becomes the *leader*: it registers a flight and spawns the lookup-and-produce
//! work as its own task, and every later caller for that key waits on the flight's result.
//!
//! - The work runs in a spawned task, not in the leader's future, so a leader whose client hangs
//!   up (its future dropped) cannot strand the waiters: the task finishes and stores anyway.
//! - The task looks in memory again, then on disk (so a burst reads the disk once too), and only
//!   then calls `produce`. A disk hit is promoted into memory.
//! - A failed `produce` is delivered to every waiter and not cached: the next request tries again.
//! - If the task dies without a result (`produce` panicked), the leader re-raises the panic and
//!   the waiters start over, one of them leading with its own `produce`.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::key::Key;
use super::purge::SourceId;
use super::stats::bump;
use super::tiered::Cache;
use super::variant::Variant;

/// How `get_or_produce` answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    HitMemory,
    HitDisk,
    /// This caller's `produce` ran (or the one of the flight it led).
    Miss,
    /// Waited for another caller's flight (whatever that flight found or produced).
    Coalesced,
}

impl Outcome {
    /// For `X-Cache`-style headers and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HitMemory => "hit-memory",
            Outcome::HitDisk => "hit-disk",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
        }
    }
}

#[derive(Clone, Copy)]
enum Found {
    Memory,
    Disk,
    Produced,
}

type Message<E> = Option<Result<(Arc<Variant>, Found), E>>;

/// In-progress flights by key. The value is a `watch::Receiver<Message<E>>` for the `E` of the
/// caller that started the flight (type-erased because `Cache` is not generic over errors).
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<Key, Box<dyn Any + Send + Sync>>>,
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Box<dyn Any + Send + Sync>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

/// Owned by the flight's task: deregisters the flight when the task ends, however it ends,
/// *before* the sender is dropped, so a woken waiter never finds a dead flight to join.
struct FlightGuard<E> {
    cache: Cache,
    key: Key,
    registered: bool,
    tx: Option<watch::Sender<Message<E>>>,
}

impl<E> FlightGuard<E> {
    fn finish(self, result: Result<(Arc<Variant>, Found), E>) {
        if let Some(tx) = &self.tx {
            // Waiters that join between this send and the deregistration in `drop` still see
            // the value: a watch channel keeps it.
            tx.send_replace(Some(result));
        }
    }
}

impl<E> Drop for FlightGuard<E> {
    fn drop(&mut self) {
        if self.registered {
            self.cache.inner.flights.lock().remove(&self.key);
        }
        // `tx` drops after this body: waiters of a task that died see the channel close.
    }
}

enum Join<E> {
    Wait(watch::Receiver<Message<E>>),
    Lead(watch::Receiver<Message<E>>, tokio::task::JoinHandle<()>),
}

impl Cache {
    /// The variant for `key`: from memory, else from disk, else made by `produce`, which runs
    /// at most once at a time per key however many callers miss together.
    ///
    /// `produce` runs in its own task (a tokio runtime is required), so it must own what it
    /// uses. Its result is stored in both tiers; an error is returned to every waiting caller
    /// and is not cached.
    pub async fn get_or_produce<F, Fut, E>(
        &self,
        key: Key,
        produce: F,
    ) -> Result<(Arc<Variant>, Outcome), E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<Variant>, E>> + Send + 'static,
        E: Clone + Send + Sync + 'static,
    {
        self.single_flight(key, None, produce).await
    }

    /// [`Cache::get_or_produce`] for a variant made from `source`, so that
    /// [`Cache::purge_source`] reaches it. The source's generation is read before `produce`
    /// starts: a purge that lands during production leaves the new variant already stale.
    pub async fn get_or_produce_for_source<F, Fut, E>(
        &self,
        key: Key,
        source: SourceId,
        produce: F,
    ) -> Result<(Arc<Variant>, Outcome), E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<Variant>, E>> + Send + 'static,
        E: Clone + Send + Sync + 'static,
    {
        self.single_flight(key, Some(source), produce).await
    }

    async fn single_flight<F, Fut, E>(
        &self,
        key: Key,
        source: Option<SourceId>,
        produce: F,
    ) -> Result<(Arc<Variant>, Outcome), E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<Variant>, E>> + Send + 'static,
        E: Clone + Send + Sync + 'static,
    {
        if let Some(v) = self.get_memory(&key).await {
            return Ok((v, Outcome::HitMemory));
        }
        let mut produce = Some(produce);
        loop {
            let (mut rx, leader) = match self.join_or_lead(key, source, &mut produce) {
                Join::Wait(rx) => (rx, None),
                Join::Lead(rx, task) => (rx, Some(task)),
            };
            let message = rx.wait_for(Option::is_some).await.map(|m| m.clone());
            match message {
                Ok(Some(Ok((variant, found)))) => {
                    let outcome = match (leader.is_some(), found) {
                        (false, _) => Outcome::Coalesced,
                        (true, Found::Memory) => Outcome::HitMemory,
                        (true, Found::Disk) => Outcome::HitDisk,
                        (true, Found::Produced) => Outcome::Miss,
                    };
                    return Ok((variant, outcome));
                }
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => unreachable!("wait_for returned before a result"),
                Err(_closed) => match leader {
                    // Our own task died: surface its panic here, as if `produce` had run inline.
                    Some(task) => match task.await {
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        _ => panic!("cache producer task for {key} ended without a result"),
                    },
                    // Someone else's did: start over (leading with our own `produce`).
                    None => continue,
                },
            }
        }
    }

    fn join_or_lead<F, Fut, E>(
        &self,
        key: Key,
        source: Option<SourceId>,
        produce: &mut Option<F>,
    ) -> Join<E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<Variant>, E>> + Send + 'static,
        E: Clone + Send + Sync + 'static,
    {
        let mut flights = self.inner.flights.lock();
        let registered = match flights.get(&key) {
            Some(any) => match any.downcast_ref::<watch::Receiver<Message<E>>>() {
                Some(rx) => {
                    bump(&self.inner.counters.coalesced_waiters);
                    return Join::Wait(rx.clone());
                }
                // A flight for this key with another error type: produce without coalescing.
                None => false,
            },
            None => true,
        };
        let (tx, rx) = watch::channel(None);
        if registered {
            flights.insert(key, Box::new(rx.clone()));
        }
        drop(flights);
        let produce = produce
            .take()
            .expect("a caller leads at most once: after leading it only returns or panics");
        let guard = FlightGuard {
            cache: self.clone(),
            key,
            registered,
            tx: Some(tx),
        };
        let task = tokio::spawn(self.clone().run_flight(key, source, produce, guard));
        Join::Lead(rx, task)
    }

    async fn run_flight<F, Fut, E>(
        self,
        key: Key,
        source: Option<SourceId>,
        produce: F,
        guard: FlightGuard<E>,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<Variant>, E>> + Send + 'static,
        E: Clone + Send + Sync + 'static,
    {
        // Memory again: a flight that ended between our miss and our registering filled it.
        let result = if let Some(v) = self.peek_memory(&key).await {
            Ok((v, Found::Memory))
        } else if let Some(v) = self.get_disk(&key).await {
            Ok((v, Found::Disk))
        } else {
            let binding = self.bind(source);
            bump(&self.inner.counters.produce_calls);
            match produce().await {
                Ok(variant) => {
                    self.store(key, variant.clone(), binding).await;
                    Ok((variant, Found::Produced))
                }
                Err(e) => {
                    bump(&self.inner.counters.produce_failures);
                    Err(e)
                }
            }
        };
        guard.finish(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tiered::tests::{config, key, variant};
    use crate::cache::{CacheConfig, Tier};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::{oneshot, Notify};

    type Res = Result<(Arc<Variant>, Outcome), String>;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_misses_produce_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_produce(key("hot"), move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok::<_, String>(variant(b"the one body"))
                    })
                    .await
            }));
        }
        // Let every caller reach the flight before the producer may finish.
        while cache.stats().coalesced_waiters < 49 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.notify_one();
        let mut outcomes = Vec::new();
        for t in tasks {
            let (v, outcome) = t.await.unwrap().unwrap();
            assert_eq!(v.body.as_ref(), b"the one body");
            outcomes.push(outcome);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == Outcome::Coalesced)
                .count(),
            49
        );
        let s = cache.stats();
        assert_eq!((s.produce_calls, s.coalesced_waiters), (1, 49));
        assert_eq!(cache.inner.flights.in_flight(), 0);
        // Now cached: no more production.
        let (_, outcome) = cache
            .get_or_produce(key("hot"), || async {
                Err::<Arc<Variant>, _>("unused".to_string())
            })
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::HitMemory);
        cache.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_does_not_stall_the_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let (started_tx, started_rx) = oneshot::channel();
        let leader = {
            let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_produce(key("k"), move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = started_tx.send(());
                        gate.notified().await;
                        Ok::<_, String>(variant(b"made"))
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_produce(key("k"), move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, String>(variant(b"waiter made it"))
                        })
                        .await
                })
            })
            .collect();
        while cache.stats().coalesced_waiters < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        gate.notify_one();
        for w in waiters {
            let (v, outcome) = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("waiters finish")
                .unwrap()
                .unwrap();
            assert_eq!(
                (v.body.as_ref(), outcome),
                (&b"made"[..], Outcome::Coalesced)
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The cancelled leader's task still stored the result.
        assert_eq!(cache.get(&key("k")).await.unwrap().0.body.as_ref(), b"made");
        cache.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_reaches_every_waiter_and_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_produce(key("bad"), move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            gate.notified().await;
                            Err::<Arc<Variant>, _>("origin said 502".to_string())
                        })
                        .await
                })
            })
            .collect();
        while cache.stats().coalesced_waiters < 9 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err(), "origin said 502");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            cache.get(&key("bad")).await.is_none(),
            "errors are not cached"
        );
        let res: Res = cache
            .get_or_produce(key("bad"), || async { Ok(variant(b"recovered")) })
            .await;
        assert_eq!(
            res.unwrap().1,
            Outcome::Miss,
            "the next request tries again"
        );
        assert_eq!(cache.stats().produce_failures, 1);
        cache.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_producer_panics_its_caller_and_waiters_retry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let gate = Arc::new(Notify::new());
        let (started_tx, started_rx) = oneshot::channel();
        let leader = {
            let (cache, gate) = (cache.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_produce(key("p"), move || async move {
                        let _ = started_tx.send(());
                        gate.notified().await;
                        if true {
                            panic!("decoder bug");
                        }
                        Ok::<_, String>(variant(b"never"))
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_produce(key("p"), || async {
                        Ok::<_, String>(variant(b"second try"))
                    })
                    .await
            })
        };
        while cache.stats().coalesced_waiters < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.notify_one();
        let err = leader.await.unwrap_err();
        assert!(err.is_panic());
        let (v, outcome) = waiter.await.unwrap().unwrap();
        assert_eq!(
            (v.body.as_ref(), outcome),
            (&b"second try"[..], Outcome::Miss)
        );
        assert_eq!(cache.inner.flights.in_flight(), 0);
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn disk_hits_are_reported_and_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache.insert(key("d"), variant(b"from disk")).await;
        cache.close().await.unwrap();
        drop(cache);
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let never = || async { Err::<Arc<Variant>, String>("must not produce".into()) };
        let (v, outcome) = cache.get_or_produce(key("d"), never).await.unwrap();
        assert_eq!(
            (v.body.as_ref(), outcome),
            (&b"from disk"[..], Outcome::HitDisk)
        );
        let (_, outcome) = cache.get_or_produce(key("d"), never).await.unwrap();
        assert_eq!(outcome, Outcome::HitMemory);
        assert_eq!(cache.get(&key("d")).await.unwrap().1, Tier::Memory);
        assert_eq!(cache.stats().produce_calls, 0);
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn works_without_any_tier() {
        let cache = Cache::open(CacheConfig {
            memory_bytes: 0,
            disk_bytes: 0,
            ..CacheConfig::default()
        })
        .await
        .unwrap();
        let res: Res = cache
            .get_or_produce(key("x"), || async { Ok(variant(b"x")) })
            .await;
        assert_eq!(res.unwrap().1, Outcome::Miss);
        let res: Res = cache
            .get_or_produce(key("x"), || async { Ok(variant(b"x")) })
            .await;
        assert_eq!(res.unwrap().1, Outcome::Miss, "nothing to hit");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_purge_during_production_leaves_no_stale_variant() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let src = SourceId::new("url:https://origin/a.jpg");
        let gate = Arc::new(Notify::new());
        let (started_tx, started_rx) = oneshot::channel();
        let producing = {
            let (cache, gate) = (cache.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_produce_for_source(key("a"), src, move || async move {
                        let _ = started_tx.send(());
                        gate.notified().await;
                        Ok::<_, String>(variant(b"from old bytes"))
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        cache.purge_source(&src).await.unwrap();
        gate.notify_one();
        let (v, _) = producing.await.unwrap().unwrap();
        assert_eq!(
            v.body.as_ref(),
            b"from old bytes",
            "the caller still gets its answer"
        );
        assert!(
            cache.get(&key("a")).await.is_none(),
            "but it is not served afterwards"
        );
        let res: Res = cache
            .get_or_produce_for_source(key("a"), src, || async { Ok(variant(b"new")) })
            .await;
        assert_eq!(res.unwrap().1, Outcome::Miss);
        assert_eq!(cache.get(&key("a")).await.unwrap().0.body.as_ref(), b"new");
        cache.close().await.unwrap();
    }
}

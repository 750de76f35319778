//! L1: recently served variants in memory (moka), bounded in bytes.
//!
//! moka is weighed by the variant's byte size rather than an entry count, because variants range
//! from a 2 KiB thumbnail to megabytes: only a byte bound keeps memory bounded. Each entry
//! expires on its own variant's TTL through moka's `Expiry`, so a stale variant leaves memory
//! without waiting to be evicted by newer ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache as Moka;
use moka::notification::RemovalCause;
use moka::Expiry;

use super::key::Key;
use super::purge::Binding;
use super::stats::{bump, Counters};
use super::variant::Variant;

/// Longest expiry handed to moka (ten years): a TTL of `u64::MAX` means "forever" to us but
/// must not overflow moka's `Instant` arithmetic.
const MAX_EXPIRY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A variant as the tiers hold it: with what it was made from, for purge-by-source.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub variant: Arc<Variant>,
    pub binding: Binding,
}

pub(crate) struct MemoryTier {
    cache: Moka<Key, Stored>,
    capacity: u64,
}

struct VariantExpiry;

impl VariantExpiry {
    /// Time left until the variant's expiry, measured against the wall clock to the
    /// millisecond (the variant's own times are whole Unix seconds).
    fn remaining(v: &Stored) -> Option<Duration> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let expires = Duration::from_secs(v.variant.expires_unix().min(u64::MAX / 2));
        Some(expires.saturating_sub(now).min(MAX_EXPIRY))
    }
}

impl Expiry<Key, Stored> for VariantExpiry {
    fn expire_after_create(&self, _key: &Key, value: &Stored, _at: Instant) -> Option<Duration> {
        Self::remaining(value)
    }

    fn expire_after_update(
        &self,
        _key: &Key,
        value: &Stored,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        // A replaced variant brings its own freshness; the old one's clock does not carry over.
        Self::remaining(value)
    }
}

impl MemoryTier {
    /// `capacity` in bytes; the caller handles 0 (tier off) by not building one.
    pub fn new(capacity: u64, counters: Arc<Counters>) -> MemoryTier {
        let cache = Moka::builder()
            .name("imgedge-variants")
            .max_capacity(capacity)
            .weigher(|_k: &Key, v: &Stored| v.variant.weight().min(u32::MAX as u64) as u32)
            .expire_after(VariantExpiry)
            .support_invalidation_closures()
            .eviction_listener(move |_k, _v, cause| match cause {
                RemovalCause::Size => bump(&counters.memory_evictions),
                RemovalCause::Expired => bump(&counters.memory_expirations),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        MemoryTier { cache, capacity }
    }

    pub async fn get(&self, key: &Key) -> Option<Stored> {
        self.cache.get(key).await
    }

    /// False if the variant alone outweighs the whole tier (moka would only evict it again).
    pub async fn insert(&self, key: Key, stored: Stored) -> bool {
        if stored.variant.weight() > self.capacity {
            return false;
        }
        self.cache.insert(key, stored).await;
        true
    }

    pub async fn remove(&self, key: &Key) {
        self.cache.invalidate(key).await;
    }

    /// Drops every entry whose binding matches (applied by moka in the background).
    pub fn remove_bound_to(&self, matches: impl Fn(&Binding) -> bool + Send + Sync + 'static) {
        if let Err(e) = self
            .cache
            .invalidate_entries_if(move |_, v| matches(&v.binding))
        {
            tracing::warn!(error = %e, "memory cache could not register a purge");
        }
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub fn bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Applies moka's pending bookkeeping now (tests; exact stats).
    pub async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::unix_now;
    use crate::cache::variant::sample;
    use std::sync::atomic::Ordering;

    fn stored(body_len: usize, ttl: u64) -> Stored {
        Stored {
            variant: Arc::new(sample(&vec![1u8; body_len], unix_now(), ttl)),
            binding: Binding::default(),
        }
    }

    fn key(i: u32) -> Key {
        Key::builder().field("i", i.to_le_bytes()).finish()
    }

    #[tokio::test]
    async fn stays_within_its_byte_budget_and_counts_evictions() {
        let counters = Arc::new(Counters::default());
        let tier = MemoryTier::new(100_000, counters.clone());
        for i in 0..50 {
            assert!(tier.insert(key(i), stored(10_000, 3600)).await);
        }
        tier.sync().await;
        assert!(tier.bytes() <= 100_000, "{} bytes", tier.bytes());
        assert!(tier.entries() <= 10);
        assert!(counters.memory_evictions.load(Ordering::Relaxed) >= 40);
    }

    #[tokio::test]
    async fn refuses_what_outweighs_the_tier() {
        let tier = MemoryTier::new(1_000, Arc::new(Counters::default()));
        assert!(!tier.insert(key(1), stored(5_000, 60)).await);
        assert!(tier.get(&key(1)).await.is_none());
        assert!(tier.insert(key(2), stored(100, 60)).await);
        assert!(tier.get(&key(2)).await.is_some());
    }

    #[tokio::test]
    async fn entries_expire_on_their_own_ttl() {
        let counters = Arc::new(Counters::default());
        let tier = MemoryTier::new(1 << 20, counters.clone());
        // Between one and two seconds left.
        let mut short = sample(b"short", unix_now(), 2);
        short.etag = "s".into();
        tier.insert(
            key(1),
            Stored {
                variant: Arc::new(short),
                binding: Binding::default(),
            },
        )
        .await;
        tier.insert(key(2), stored(10, 3600)).await;
        tier.insert(key(3), stored(10, u64::MAX)).await;
        assert!(tier.get(&key(1)).await.is_some());
        tokio::time::sleep(Duration::from_millis(2_050)).await;
        assert!(tier.get(&key(1)).await.is_none(), "expired by its own TTL");
        assert!(tier.get(&key(2)).await.is_some());
        assert!(
            tier.get(&key(3)).await.is_some(),
            "a huge TTL does not overflow"
        );
        tier.sync().await;
        assert_eq!(counters.memory_expirations.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn replacing_takes_the_new_ttl_and_remove_works() {
        let tier = MemoryTier::new(1 << 20, Arc::new(Counters::default()));
        tier.insert(key(1), stored(10, 1)).await;
        tier.insert(key(1), stored(20, 3600)).await;
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        let got = tier.get(&key(1)).await.expect("new TTL applies");
        assert_eq!(got.variant.body.len(), 20);
        tier.remove(&key(1)).await;
        assert!(tier.get(&key(1)).await.is_none());
        tier.insert(key(2), stored(10, 60)).await;
        tier.clear();
        assert!(tier.get(&key(2)).await.is_none());
    }
}

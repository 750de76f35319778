//! [`Cache`]: the two variant tiers (L1 memory, L2 disk) behind one handle, with purging,
//! statistics, single-flight production (`flight.rs`) and the source cache (`source.rs`).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::disk::{encode_record, DiskRead, DiskTier, Opened};
use super::flight::{Flights, Outcome};
use super::key::Key;
use super::memory::{MemoryTier, Stored};
use super::purge::{Binding, Generations, SourceId};
use super::source::{SourceCache, SourcePolicy};
use super::stats::{add, bump, CacheStats, Counters};
use super::unix_now;
use super::variant::Variant;

const MIB: u64 = 1 << 20;

/// Sizes and lifetimes of every cache. `Default` is what a node runs with unless configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// L1 budget in bytes; 0 turns the memory tier off. Default 256 MiB.
    pub memory_bytes: u64,
    /// L2 size in bytes; 0 turns the disk tier off. Default 2 GiB.
    pub disk_bytes: u64,
    /// L2 directory, owned by this cache (see `disk.rs` for what it keeps there). Default
    /// `./var/cache`.
    pub disk_dir: PathBuf,
    /// L2 block size: the unit foyer evicts in, and the bound on one variant's size on disk
    /// (larger ones are served from memory only). Write buffers take 4 × this much memory.
    /// A multiple of 4096, at least 64 KiB; `disk_bytes` must hold at least 4 blocks.
    /// Default 8 MiB.
    pub disk_block_bytes: u64,
    /// Freshness given to an origin response that states none (no `Cache-Control` lifetime,
    /// no `Expires`); also the natural TTL for variants of such sources. Default 1 day.
    pub default_ttl_secs: u64,
    /// Source cache (origin responses) budget in bytes; 0 turns it off. Default 64 MiB.
    pub source_memory_bytes: u64,
    /// How long a 404/410 from the origin is remembered. Default 60 s.
    pub negative_ttl_secs: u64,
    /// How long a stale origin response that has validators is kept for revalidation.
    /// Default 1 day.
    pub source_stale_keep_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_bytes: 256 * MIB,
            disk_bytes: 2048 * MIB,
            disk_dir: PathBuf::from("./var/cache"),
            disk_block_bytes: 8 * MIB,
            default_ttl_secs: 86_400,
            source_memory_bytes: 64 * MIB,
            negative_ttl_secs: 60,
            source_stale_keep_secs: 86_400,
        }
    }
}

/// Where a hit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    Memory,
    Disk,
}

impl Tier {
    /// For `X-Cache`-style headers and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
        }
    }
}

/// The cache of image variants (and of origin responses). Cheap to clone; all clones share
/// the same tiers.
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    memory: Option<MemoryTier>,
    disk: Option<DiskTier>,
    generations: RwLock<Generations>,
    /// Serialises purges so generation updates and their persistence happen in order.
    purge_lock: tokio::sync::Mutex<()>,
    pub(crate) flights: Flights,
    pub(crate) counters: Arc<Counters>,
    sources: SourceCache,
    config: CacheConfig,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Cache {
    /// Opens both tiers. Call it inside a tokio runtime; the disk tier then runs its I/O on a
    /// runtime of its own, so the cache can be used from any runtime (and outlives the one
    /// that opened it). `get_or_produce` spawns on the caller's runtime.
    ///
    /// An untrusted or damaged disk directory is not an error: the disk tier starts empty and
    /// says why in a warning. Errors are for what the operator must fix: impossible sizes, a
    /// directory that cannot be created, or one another process is using.
    pub async fn open(config: CacheConfig) -> Result<Cache, String> {
        let counters = Arc::new(Counters::default());
        let memory = (config.memory_bytes > 0)
            .then(|| MemoryTier::new(config.memory_bytes, counters.clone()));
        let (disk, generations) = if config.disk_bytes > 0 {
            let (disk, generations, opened) =
                DiskTier::open(&config.disk_dir, config.disk_bytes, config.disk_block_bytes)
                    .await?;
            match &opened {
                Opened::Recovered => tracing::info!(
                    dir = %config.disk_dir.display(),
                    "disk cache reopened with its entries"
                ),
                Opened::Clean(reason) => tracing::info!(
                    dir = %config.disk_dir.display(),
                    reason = reason.as_str(),
                    "disk cache starts empty"
                ),
            }
            (Some(disk), generations)
        } else {
            (None, Generations::default())
        };
        let sources = SourceCache::new(SourcePolicy {
            memory_bytes: config.source_memory_bytes,
            default_ttl_secs: config.default_ttl_secs,
            negative_ttl_secs: config.negative_ttl_secs,
            stale_keep_secs: config.source_stale_keep_secs,
        });
        Ok(Cache {
            inner: Arc::new(Inner {
                memory,
                disk,
                generations: RwLock::new(generations),
                purge_lock: tokio::sync::Mutex::new(()),
                flights: Flights::default(),
                counters,
                sources,
                config,
            }),
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The cache of origin responses (origin-shield role).
    pub fn sources(&self) -> &SourceCache {
        &self.inner.sources
    }

    /// A fresh variant from memory, else from disk (then promoted into memory).
    pub async fn get(&self, key: &Key) -> Option<(Arc<Variant>, Tier)> {
        if let Some(v) = self.get_memory(key).await {
            return Some((v, Tier::Memory));
        }
        self.get_disk(key).await.map(|v| (v, Tier::Disk))
    }

    /// Stores a variant not tied to any source (it is still dropped by [`Cache::purge_all`]).
    /// A variant that is already expired is not stored.
    pub async fn insert(&self, key: Key, variant: Arc<Variant>) {
        let binding = self.bind(None);
        self.store(key, variant, binding).await;
    }

    /// Stores a variant made from `source`, so [`Cache::purge_source`] reaches it.
    ///
    /// The source's generation is read now; if the variant was made from bytes fetched before
    /// a purge that completes in between, it survives that purge. `get_or_produce_for_source`
    /// reads the generation before producing and has no such window.
    pub async fn insert_for_source(&self, key: Key, variant: Arc<Variant>, source: SourceId) {
        let binding = self.bind(Some(source));
        self.store(key, variant, binding).await;
    }

    /// Drops one variant from both tiers (durably, on disk).
    pub async fn purge(&self, key: &Key) {
        if let Some(m) = &self.inner.memory {
            m.remove(key).await;
        }
        if let Some(d) = &self.inner.disk {
            d.purge(key).await;
        }
    }

    /// Drops every variant made from `source` (as passed to `insert_for_source` or
    /// `get_or_produce_for_source`), in both tiers, durably. O(1): the entries are found stale
    /// when next looked up. The source cache entry for the origin URL, if any, is separate:
    /// see [`SourceCache::remove`].
    pub async fn purge_source(&self, source: &SourceId) -> Result<(), String> {
        let guard = self.inner.purge_lock.lock().await;
        let Some(snapshot) = self.with_generations(|g| g.purge_source(*source).then(|| g.clone()))
        else {
            tracing::warn!(
                "more than {} sources purged since the last full purge; purging everything",
                super::purge::MAX_PURGED_SOURCES
            );
            drop(guard);
            return self.purge_all().await;
        };
        if let Some(m) = &self.inner.memory {
            // Memory is freed right away rather than when each entry is next looked up.
            let s = *source;
            m.remove_bound_to(move |b| b.source == Some(s));
        }
        match &self.inner.disk {
            Some(d) => d.save_generations(&snapshot).await,
            None => Ok(()),
        }
    }

    /// Drops every variant in both tiers, durably. The source cache is cleared too.
    pub async fn purge_all(&self) -> Result<(), String> {
        let _guard = self.inner.purge_lock.lock().await;
        let snapshot = self.with_generations(|g| {
            g.purge_all();
            g.clone()
        });
        if let Some(m) = &self.inner.memory {
            m.clear();
        }
        self.inner.sources.clear();
        if let Some(d) = &self.inner.disk {
            // Generations first: even if clearing the blocks fails halfway, what is left is
            // bound to the old purge-all generation and reads as stale.
            d.save_generations(&snapshot).await?;
            d.clear().await?;
        }
        Ok(())
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> CacheStats {
        let mut s = self.inner.counters.snapshot();
        if let Some(m) = &self.inner.memory {
            s.memory_bytes = m.bytes();
            s.memory_entries = m.entries();
            s.memory_capacity_bytes = m.capacity();
        }
        if let Some(d) = &self.inner.disk {
            (s.disk_io_write_bytes, s.disk_io_read_bytes) = d.io_bytes();
            s.disk_capacity_bytes = d.capacity();
            s.disk_used_bytes = d.used_bytes();
            s.disk_dropped_writes = d.dropped_writes();
        }
        s.purged_sources = self
            .inner
            .generations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .purged_sources() as u64;
        s
    }

    /// Flushes queued disk writes and stops writing; call once at shutdown. Lookups still
    /// work afterwards, inserts reach memory only.
    pub async fn close(&self) -> Result<(), String> {
        match &self.inner.disk {
            Some(d) => d.close().await,
            None => Ok(()),
        }
    }

    /// Applies moka's pending bookkeeping so `stats()` is exact (tests, shutdown reports).
    pub async fn sync(&self) {
        if let Some(m) = &self.inner.memory {
            m.sync().await;
        }
    }

    // ---- shared by get/insert and single-flight ----

    fn with_generations<T>(&self, f: impl FnOnce(&mut Generations) -> T) -> T {
        f(&mut self
            .inner
            .generations
            .write()
            .unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn bind(&self, source: Option<SourceId>) -> Binding {
        self.inner
            .generations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .bind(source)
    }

    fn is_current(&self, binding: &Binding) -> bool {
        self.inner
            .generations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_current(binding)
    }

    /// Memory lookup, counted.
    pub(crate) async fn get_memory(&self, key: &Key) -> Option<Arc<Variant>> {
        let m = self.inner.memory.as_ref()?;
        let found = self.check_memory(m, key).await;
        bump(match found {
            Some(_) => &self.inner.counters.memory_hits,
            None => &self.inner.counters.memory_misses,
        });
        found
    }

    /// [`Cache::get`] for a key the caller remembers (the proxy's shortcut for a repeated
    /// request), counted only when found: a miss here is followed by the full lookup, which
    /// counts it.
    pub async fn get_known(&self, key: &Key) -> Option<(Arc<Variant>, Outcome)> {
        if let Some(v) = self.peek_memory(key).await {
            bump(&self.inner.counters.memory_hits);
            return Some((v, Outcome::HitMemory));
        }
        let v = self.read_disk(key, false).await?;
        Some((v, Outcome::HitDisk))
    }

    /// Memory lookup without counting (single-flight re-check).
    pub(crate) async fn peek_memory(&self, key: &Key) -> Option<Arc<Variant>> {
        let m = self.inner.memory.as_ref()?;
        self.check_memory(m, key).await
    }

    async fn check_memory(&self, m: &MemoryTier, key: &Key) -> Option<Arc<Variant>> {
        let stored = m.get(key).await?;
        if !self.is_current(&stored.binding) {
            bump(&self.inner.counters.stale_generation_removed);
            m.remove(key).await;
            return None;
        }
        // moka's expiry runs on its own clock and granularity; the variant's word is final.
        stored
            .variant
            .is_fresh(unix_now())
            .then_some(stored.variant)
    }

    /// Disk lookup, counted; a hit is promoted into memory.
    pub(crate) async fn get_disk(&self, key: &Key) -> Option<Arc<Variant>> {
        self.read_disk(key, true).await
    }

    /// Disk lookup; a hit is counted and promoted into memory, a miss counted if `count_miss`.
    async fn read_disk(&self, key: &Key, count_miss: bool) -> Option<Arc<Variant>> {
        let d = self.inner.disk.as_ref()?;
        let c = &self.inner.counters;
        let found = match d.get(key).await {
            DiskRead::Hit(stored) => {
                if !self.is_current(&stored.binding) {
                    bump(&c.stale_generation_removed);
                    d.remove(key);
                    None
                } else if !stored.variant.is_fresh(unix_now()) {
                    bump(&c.disk_expired_removed);
                    d.remove(key);
                    None
                } else {
                    Some(stored)
                }
            }
            DiskRead::Miss => None,
            DiskRead::Unreadable => {
                bump(&c.disk_unreadable);
                None
            }
            DiskRead::Error(e) => {
                tracing::warn!(key = %key, error = e.as_str(), "disk cache read failed");
                bump(&c.disk_errors);
                None
            }
        };
        match found {
            Some(stored) => {
                bump(&c.disk_hits);
                let variant = stored.variant.clone();
                if let Some(m) = &self.inner.memory {
                    if m.insert(*key, stored).await {
                        bump(&c.memory_inserts);
                    }
                }
                Some(variant)
            }
            None => {
                if count_miss {
                    bump(&c.disk_misses);
                }
                None
            }
        }
    }

    /// Stores in both tiers under `binding`.
    pub(crate) async fn store(&self, key: Key, variant: Arc<Variant>, binding: Binding) {
        let c = &self.inner.counters;
        if !variant.is_fresh(unix_now()) {
            bump(&c.not_fresh_skipped);
            return;
        }
        let stored = Stored { variant, binding };
        if let Some(d) = &self.inner.disk {
            match encode_record(&stored) {
                Some(rec) if rec.len() as u64 <= d.max_record() => {
                    let len = rec.len() as u64;
                    if d.insert(key, rec) {
                        bump(&c.disk_inserts);
                        add(&c.disk_inserted_bytes, len);
                    }
                }
                _ => bump(&c.disk_skipped_too_large),
            }
        }
        if let Some(m) = &self.inner.memory {
            if m.insert(key, stored).await {
                bump(&c.memory_inserts);
            } else {
                bump(&c.memory_skipped_too_large);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cache::variant::sample;
    use std::path::Path;

    pub(crate) fn config(dir: &Path) -> CacheConfig {
        CacheConfig {
            memory_bytes: 8 * MIB,
            disk_bytes: 16 * MIB,
            disk_dir: dir.to_path_buf(),
            disk_block_bytes: MIB,
            ..CacheConfig::default()
        }
    }

    pub(crate) fn key(name: &str) -> Key {
        Key::builder().field("test", name).finish()
    }

    pub(crate) fn variant(body: &[u8]) -> Arc<Variant> {
        Arc::new(sample(body, unix_now(), 3600))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = CacheConfig::default();
        assert_eq!(c.memory_bytes, 256 << 20);
        assert_eq!(c.disk_bytes, 2 << 30);
        assert_eq!(c.disk_dir, PathBuf::from("./var/cache"));
        assert_eq!(c.default_ttl_secs, 86_400);
    }

    #[tokio::test]
    async fn insert_then_get_from_memory_then_from_disk_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert!(cache.get(&key("a")).await.is_none());
        cache.insert(key("a"), variant(b"AAA")).await;
        let (v, tier) = cache.get(&key("a")).await.unwrap();
        assert_eq!((v.body.as_ref(), tier), (&b"AAA"[..], Tier::Memory));
        cache.close().await.unwrap();
        drop(cache);

        let cache = Cache::open(config(dir.path())).await.unwrap();
        let (v, tier) = cache.get(&key("a")).await.unwrap();
        assert_eq!((v.body.as_ref(), tier), (&b"AAA"[..], Tier::Disk));
        let (_, tier) = cache.get(&key("a")).await.unwrap();
        assert_eq!(tier, Tier::Memory, "a disk hit is promoted");
        let s = cache.stats();
        assert_eq!((s.disk_hits, s.memory_hits, s.memory_misses), (1, 1, 1));
        cache.close().await.unwrap();
    }

    /// The shortcut's lookup answers from either tier and counts only what it finds: the full
    /// lookup that follows a miss counts the miss once.
    #[tokio::test]
    async fn a_known_key_is_found_in_memory_or_on_disk_and_only_hits_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache.insert(key("a"), variant(b"AAA")).await;
        let (v, outcome) = cache.get_known(&key("a")).await.unwrap();
        assert_eq!(
            (v.body.as_ref(), outcome),
            (&b"AAA"[..], Outcome::HitMemory)
        );
        cache.close().await.unwrap();
        drop(cache);

        let cache = Cache::open(config(dir.path())).await.unwrap();
        let (v, outcome) = cache.get_known(&key("a")).await.unwrap();
        assert_eq!((v.body.as_ref(), outcome), (&b"AAA"[..], Outcome::HitDisk));
        let (_, outcome) = cache.get_known(&key("a")).await.unwrap();
        assert_eq!(outcome, Outcome::HitMemory, "a disk hit is promoted");
        assert!(cache.get_known(&key("b")).await.is_none());
        let s = cache.stats();
        assert_eq!(
            (s.memory_hits, s.memory_misses, s.disk_hits, s.disk_misses),
            (1, 0, 1, 0)
        );
        cache.close().await.unwrap();
    }

    /// Opened on one runtime that then goes away (as a start-up runtime would), used from
    /// another (as pingora's service runtimes would).
    #[test]
    fn outlives_the_runtime_that_opened_it() {
        let dir = tempfile::tempdir().unwrap();
        let rt = || tokio::runtime::Runtime::new().unwrap();
        let opener = rt();
        let cache = opener.block_on(async {
            let cache = Cache::open(config(dir.path())).await.unwrap();
            cache.insert(key("early"), variant(b"early")).await;
            cache
        });
        drop(opener);
        rt().block_on(async {
            assert!(cache.get(&key("early")).await.is_some());
            cache.insert(key("late"), variant(b"late")).await;
            cache.close().await.unwrap();
        });
        drop(cache);
        rt().block_on(async {
            let cache = Cache::open(config(dir.path())).await.unwrap();
            for k in ["early", "late"] {
                assert_eq!(cache.get(&key(k)).await.unwrap().1, Tier::Disk, "{k}");
            }
            cache.close().await.unwrap();
        });
    }

    #[tokio::test]
    async fn dropping_without_close_is_safe() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache.insert(key("a"), variant(b"a")).await;
        drop(cache);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache.insert(key("b"), variant(b"b")).await;
        assert!(cache.get(&key("b")).await.is_some());
        cache.close().await.unwrap();
        // And outside any runtime.
        let cache2 = cache.clone();
        drop(cache);
        std::thread::spawn(move || drop(cache2)).join().unwrap();
    }

    #[tokio::test]
    async fn a_scrambled_cache_dir_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache.insert(key("a"), variant(b"a")).await;
        cache.close().await.unwrap();
        drop(cache);
        // Every file, meta included, overwritten with junk of another length.
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let len = entry.metadata().unwrap().len() as usize;
            let junk: Vec<u8> = (0..len / 2 + 7).map(|i| (i * 7919 % 251) as u8).collect();
            std::fs::write(entry.path(), junk).unwrap();
        }
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert!(cache.get(&key("a")).await.is_none());
        cache.insert(key("b"), variant(b"b")).await;
        cache.close().await.unwrap();
        drop(cache);
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert_eq!(cache.get(&key("b")).await.unwrap().1, Tier::Disk);
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn tiers_can_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let memory_only = Cache::open(CacheConfig {
            disk_bytes: 0,
            ..config(&dir.path().join("unused"))
        })
        .await
        .unwrap();
        memory_only.insert(key("m"), variant(b"m")).await;
        assert_eq!(memory_only.get(&key("m")).await.unwrap().1, Tier::Memory);
        assert!(
            !dir.path().join("unused").exists(),
            "no directory without a disk tier"
        );

        let disk_only = Cache::open(CacheConfig {
            memory_bytes: 0,
            ..config(dir.path())
        })
        .await
        .unwrap();
        disk_only.insert(key("d"), variant(b"d")).await;
        assert_eq!(disk_only.get(&key("d")).await.unwrap().1, Tier::Disk);
        assert_eq!(disk_only.get(&key("d")).await.unwrap().1, Tier::Disk);
        disk_only.close().await.unwrap();

        let neither = Cache::open(CacheConfig {
            memory_bytes: 0,
            disk_bytes: 0,
            ..config(dir.path())
        })
        .await
        .unwrap();
        neither.insert(key("n"), variant(b"n")).await;
        assert!(neither.get(&key("n")).await.is_none());
    }

    #[tokio::test]
    async fn expired_variants_are_neither_stored_nor_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let old = Arc::new(sample(b"old", unix_now() - 100, 10));
        cache.insert(key("old"), old).await;
        assert!(cache.get(&key("old")).await.is_none());
        assert_eq!(cache.stats().not_fresh_skipped, 1);

        // Expires while stored: one second of TTL left.
        let short = Arc::new(sample(b"short", unix_now(), 1));
        cache.insert(key("short"), short).await;
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert!(cache.get(&key("short")).await.is_none());
        assert_eq!(
            cache.stats().disk_expired_removed,
            1,
            "found stale on disk and removed"
        );
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn oversized_variants_skip_disk_but_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache
            .insert(key("big"), variant(&vec![1u8; 2 * MIB as usize]))
            .await;
        assert_eq!(cache.stats().disk_skipped_too_large, 1);
        assert_eq!(cache.get(&key("big")).await.unwrap().1, Tier::Memory);
        cache.close().await.unwrap();
        drop(cache);
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert!(cache.get(&key("big")).await.is_none());
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn purge_one_key_everywhere_and_durably() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        cache.insert(key("a"), variant(b"a")).await;
        cache.insert(key("b"), variant(b"b")).await;
        cache.purge(&key("a")).await;
        assert!(cache.get(&key("a")).await.is_none());
        assert!(cache.get(&key("b")).await.is_some());
        cache.close().await.unwrap();
        drop(cache);
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert!(cache.get(&key("a")).await.is_none());
        assert!(cache.get(&key("b")).await.is_some());
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn purge_source_reaches_all_its_variants_in_both_tiers_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cat = SourceId::new("url:https://origin/cat.jpg");
        let dog = SourceId::new("url:https://origin/dog.jpg");
        let cache = Cache::open(config(dir.path())).await.unwrap();
        for w in ["100", "200", "300"] {
            cache
                .insert_for_source(key(&format!("cat{w}")), variant(b"cat"), cat)
                .await;
            cache
                .insert_for_source(key(&format!("dog{w}")), variant(b"dog"), dog)
                .await;
        }
        cache.insert(key("plain"), variant(b"plain")).await;
        cache.close().await.unwrap();
        drop(cache);

        // Restart: the purge must reach variants that only the disk knows about.
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert_eq!(cache.get(&key("cat100")).await.unwrap().1, Tier::Disk);
        assert_eq!(cache.get(&key("cat100")).await.unwrap().1, Tier::Memory);
        cache.purge_source(&cat).await.unwrap();
        assert_eq!(cache.stats().purged_sources, 1);
        assert!(
            cache.get(&key("cat100")).await.is_none(),
            "gone from memory and disk"
        );
        for w in ["100", "200", "300"] {
            assert!(
                cache.get(&key(&format!("dog{w}"))).await.is_some(),
                "dog{w}"
            );
        }
        assert!(cache.get(&key("plain")).await.is_some());
        // New variants of the purged source are cached again.
        cache
            .insert_for_source(key("cat100"), variant(b"cat v2"), cat)
            .await;
        assert_eq!(
            cache.get(&key("cat100")).await.unwrap().0.body.as_ref(),
            b"cat v2"
        );
        cache.close().await.unwrap();
        drop(cache);

        // cat200 and cat300 were never looked up since the purge: still on disk, and only the
        // persisted generation keeps them from being served.
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert!(cache.get(&key("cat200")).await.is_none());
        assert!(cache.get(&key("cat300")).await.is_none());
        assert_eq!(cache.stats().stale_generation_removed, 2);
        assert_eq!(
            cache.get(&key("cat100")).await.unwrap().0.body.as_ref(),
            b"cat v2"
        );
        assert!(cache.get(&key("dog200")).await.is_some());
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn purge_all_empties_everything_durably() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(config(dir.path())).await.unwrap();
        let src = SourceId::new("s");
        cache.insert(key("a"), variant(b"a")).await;
        cache.insert_for_source(key("b"), variant(b"b"), src).await;
        cache.purge_all().await.unwrap();
        assert!(cache.get(&key("a")).await.is_none());
        assert!(cache.get(&key("b")).await.is_none());
        cache.insert(key("c"), variant(b"c")).await;
        cache.close().await.unwrap();
        drop(cache);
        let cache = Cache::open(config(dir.path())).await.unwrap();
        assert!(cache.get(&key("a")).await.is_none());
        assert!(cache.get(&key("b")).await.is_none());
        assert!(cache.get(&key("c")).await.is_some());
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn memory_is_bounded_in_bytes_and_evictions_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(CacheConfig {
            memory_bytes: 200_000,
            disk_bytes: 0,
            ..config(dir.path())
        })
        .await
        .unwrap();
        for i in 0..100 {
            cache
                .insert(key(&i.to_string()), variant(&[0u8; 10_000]))
                .await;
        }
        cache.sync().await;
        let s = cache.stats();
        assert!(s.memory_bytes <= 200_000, "{s:?}");
        assert!(s.memory_evictions >= 80, "{s:?}");
        assert_eq!(s.memory_capacity_bytes, 200_000);
    }

    #[tokio::test]
    async fn impossible_sizes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = Cache::open(CacheConfig {
            disk_bytes: MIB,
            ..config(dir.path())
        })
        .await
        .unwrap_err();
        assert!(err.contains("disk_bytes"), "{err}");
    }
}

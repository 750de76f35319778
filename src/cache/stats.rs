//! Counters for the cache, kept as plain atomics so this module needs no metrics library; the
//! metrics module reads a [`CacheStats`] snapshot at scrape time and exports it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters shared by the tiers and the single-flight logic.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub memory_hits: AtomicU64,
    pub memory_misses: AtomicU64,
    pub memory_inserts: AtomicU64,
    pub memory_evictions: AtomicU64,
    pub memory_expirations: AtomicU64,
    pub memory_skipped_too_large: AtomicU64,
    pub disk_hits: AtomicU64,
    pub disk_misses: AtomicU64,
    pub disk_inserts: AtomicU64,
    pub disk_inserted_bytes: AtomicU64,
    pub disk_skipped_too_large: AtomicU64,
    pub disk_expired_removed: AtomicU64,
    pub disk_unreadable: AtomicU64,
    pub disk_errors: AtomicU64,
    pub stale_generation_removed: AtomicU64,
    pub not_fresh_skipped: AtomicU64,
    pub produce_calls: AtomicU64,
    pub produce_failures: AtomicU64,
    pub coalesced_waiters: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A point-in-time copy of every cache counter and gauge. Counters only grow (over the life of
/// the process); gauges (`*_bytes`, `*_entries`) are current values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// L1 lookups that found a fresh, current variant.
    pub memory_hits: u64,
    pub memory_misses: u64,
    pub memory_inserts: u64,
    /// Entries pushed out by the size bound (not by expiry).
    pub memory_evictions: u64,
    pub memory_expirations: u64,
    /// Variants heavier than the whole L1 budget, not stored there.
    pub memory_skipped_too_large: u64,
    /// Gauge: weighed bytes in L1 (approximate; moka applies writes in batches).
    pub memory_bytes: u64,
    pub memory_entries: u64,
    pub memory_capacity_bytes: u64,

    pub disk_hits: u64,
    pub disk_misses: u64,
    /// Records handed to foyer for writing (foyer may still drop some under write pressure).
    pub disk_inserts: u64,
    pub disk_inserted_bytes: u64,
    /// Variants whose record exceeds the block size, not stored on disk.
    pub disk_skipped_too_large: u64,
    /// Expired entries found on read and deleted.
    pub disk_expired_removed: u64,
    /// Records that passed foyer's checksum but are not a variant of this version (removed).
    pub disk_unreadable: u64,
    /// I/O errors from foyer on read (served as misses).
    pub disk_errors: u64,
    /// Gauge: bytes in disk blocks holding entries (whole blocks: live entries plus space
    /// not yet reclaimed).
    pub disk_used_bytes: u64,
    /// Records foyer dropped instead of writing because its write buffer or queue was full
    /// (a write burst faster than the disk).
    pub disk_dropped_writes: u64,
    /// Bytes foyer wrote to / read from its files since start.
    pub disk_io_write_bytes: u64,
    pub disk_io_read_bytes: u64,
    pub disk_capacity_bytes: u64,

    /// Entries found bound to a purged source (or to before a purge-all), removed.
    pub stale_generation_removed: u64,
    /// Gauge: sources purged since the last purge-all (the generation table's size).
    pub purged_sources: u64,
    /// Inserts refused because the variant was already expired.
    pub not_fresh_skipped: u64,
    /// Times a `produce` closure was called (cache misses that did work).
    pub produce_calls: u64,
    pub produce_failures: u64,
    /// Callers that waited on another caller's production instead of producing.
    pub coalesced_waiters: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CacheStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            memory_hits: g(&self.memory_hits),
            memory_misses: g(&self.memory_misses),
            memory_inserts: g(&self.memory_inserts),
            memory_evictions: g(&self.memory_evictions),
            memory_expirations: g(&self.memory_expirations),
            memory_skipped_too_large: g(&self.memory_skipped_too_large),
            disk_hits: g(&self.disk_hits),
            disk_misses: g(&self.disk_misses),
            disk_inserts: g(&self.disk_inserts),
            disk_inserted_bytes: g(&self.disk_inserted_bytes),
            disk_skipped_too_large: g(&self.disk_skipped_too_large),
            disk_expired_removed: g(&self.disk_expired_removed),
            disk_unreadable: g(&self.disk_unreadable),
            disk_errors: g(&self.disk_errors),
            stale_generation_removed: g(&self.stale_generation_removed),
            not_fresh_skipped: g(&self.not_fresh_skipped),
            produce_calls: g(&self.produce_calls),
            produce_failures: g(&self.produce_failures),
            coalesced_waiters: g(&self.coalesced_waiters),
            ..CacheStats::default()
        }
    }
}

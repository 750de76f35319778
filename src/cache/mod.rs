//! Caching: why imgedge is faster than re-running libvips on every request.
//!
//! Making a variant means fetching a source and decoding, transforming and encoding it: tens of
//! milliseconds of CPU and an origin round trip. Most traffic asks for the same few variants
//! again, so every variant is kept and served from here:
//!
//! ```text
//!  Key (key.rs) ── SHA-256 over the canonical request ───────────────┐
//!                                                                    ▼
//!  Cache::get_or_produce ─► L1 memory (memory.rs, moka, bytes-bounded, per-entry TTL)
//!        (flight.rs:          │ miss
//!         one producer        ▼
//!         per key)          L2 disk (disk.rs, foyer block engine, survives restarts)
//!                             │ miss
//!                             ▼
//!                           produce() ─► stored in L1 + L2 ─► every waiting caller
//! ```
//!
//! Alongside, [`SourceCache`] (source.rs) keeps origin responses with their validators so a
//! new variant of a known image does not cost an origin download, and a stale one costs only a
//! conditional GET. Purging every variant of one source works through generations
//! (purge.rs), persisted with the disk tier so purges survive restarts.
//!
//! This module knows nothing of images or HTTP: callers hand it canonical bytes to key on,
//! finished [`Variant`]s, and origin header values.

mod disk;
mod flight;
mod foyer_gauges;
mod key;
mod memory;
mod purge;
mod source;
mod stats;
mod tiered;
mod variant;

pub use flight::Outcome;
pub(crate) use key::hex_encode;
pub use key::{Key, KeyBuilder, KEY_VERSION};
pub use purge::{SourceId, MAX_PURGED_SOURCES};
pub use source::{
    CacheControl, Lookup, OriginHeaders, SourceCache, SourceEntry, SourcePolicy, SourceStats,
};
pub use stats::CacheStats;
pub use tiered::{Cache, CacheConfig, Tier};
pub use variant::{Variant, VARIANT_MAGIC, VARIANT_VERSION};

/// Wall-clock Unix seconds: variants and origin responses carry absolute times so their
/// freshness means the same after a restart.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

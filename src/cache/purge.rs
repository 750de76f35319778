//! Purging every variant of one source, in both tiers, across restarts.
//!
//! A source (an origin URL, a mounted file) has many variants, each under its own key, and the
//! keys cannot be recomputed from the source alone. Rather than keep a source → keys index (which
//! grows with every variant ever made and is lost for disk entries on restart), every stored
//! variant carries a [`Binding`]: the source it was made from and that source's *generation* at
//! the moment production started. Purging a source bumps its generation; a lookup that finds an
//! entry bound to an older generation treats it as a miss and deletes it. Stale entries that are
//! never looked up again age out of the tiers like any other.
//!
//! The generation table holds only sources that were ever purged (plus one global counter for
//! `purge_all`), so it stays small; the disk tier persists it next to its data, with a checksum,
//! so a restart cannot resurrect purged variants. Generations are drawn from one increasing
//! counter (`epoch`), never reused, so even forgetting a source would not make an old binding
//! match again by accident.
//!
//! Capturing the generation *before* production matters: if a purge lands while a variant is
//! being made from the old source bytes, the variant arrives already stale instead of
//! outliving the purge.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::key::hex_encode;
use super::variant::Reader;

/// Past this many purged sources the table is reset by purging everything, which bounds both
/// the table and the cost of rewriting it (40 bytes a source).
pub const MAX_PURGED_SOURCES: usize = 100_000;

/// The stable identity of a source for purging: SHA-256 of whatever the caller names it by.
///
/// Use a name that does not change when the source's content does, e.g. `"url:" + origin URL`
/// or `"file:" + mounted path` (not its size or mtime, which belong in the variant key), so a
/// purge reaches every version's variants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId([u8; 32]);

impl SourceId {
    pub fn new(identity: impl AsRef<[u8]>) -> SourceId {
        let mut h = Sha256::new();
        h.update(b"imgedge/source-id/v1\0");
        h.update(identity.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(h.finalize().as_slice());
        SourceId(out)
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> SourceId {
        SourceId(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceId({})", self.to_hex())
    }
}

/// What a stored entry was made from, and the generations current when production began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Binding {
    pub source: Option<SourceId>,
    pub source_generation: u64,
    /// The `purge_all` generation.
    pub all_generation: u64,
}

/// The generation table: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Generations {
    /// Last generation handed out; generations are `1..=epoch`, 0 meaning "never purged".
    epoch: u64,
    all: u64,
    sources: HashMap<SourceId, u64>,
}

impl Generations {
    pub fn bind(&self, source: Option<SourceId>) -> Binding {
        Binding {
            source,
            source_generation: source
                .and_then(|s| self.sources.get(&s).copied())
                .unwrap_or(0),
            all_generation: self.all,
        }
    }

    pub fn is_current(&self, b: &Binding) -> bool {
        b.all_generation == self.all && *b == self.bind(b.source)
    }

    /// Invalidates every binding to `source`. Returns false when the table is full and the
    /// caller must purge everything instead (see [`MAX_PURGED_SOURCES`]).
    pub fn purge_source(&mut self, source: SourceId) -> bool {
        if self.sources.len() >= MAX_PURGED_SOURCES && !self.sources.contains_key(&source) {
            return false;
        }
        self.epoch += 1;
        self.sources.insert(source, self.epoch);
        true
    }

    /// Invalidates every binding; the per-source table is no longer needed and is dropped.
    pub fn purge_all(&mut self) {
        self.epoch += 1;
        self.all = self.epoch;
        self.sources.clear();
    }

    pub fn purged_sources(&self) -> usize {
        self.sources.len()
    }

    /// `epoch u64 | all u64 | count u32 | count × (source [32] | generation u64)`, sorted so
    /// equal tables encode equally.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.all.to_le_bytes());
        out.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        let mut entries: Vec<_> = self.sources.iter().collect();
        entries.sort();
        for (id, generation) in entries {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&generation.to_le_bytes());
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Option<Generations> {
        let epoch = r.u64()?;
        let all = r.u64()?;
        let count = r.u32()? as usize;
        // Checked against what is left before allocating anything.
        if count.checked_mul(40)? > r.buf.len().saturating_sub(r.pos) {
            return None;
        }
        let mut sources = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = SourceId(r.take(32)?.try_into().ok()?);
            let generation = r.u64()?;
            if generation == 0 || generation > epoch {
                return None;
            }
            sources.insert(id, generation);
        }
        if all > epoch || sources.len() != count {
            return None;
        }
        Some(Generations {
            epoch,
            all,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_are_stable_and_distinct() {
        assert_eq!(SourceId::new("url:a"), SourceId::new("url:a"));
        assert_ne!(SourceId::new("url:a"), SourceId::new("url:b"));
        assert_eq!(SourceId::new("x").to_hex().len(), 64);
    }

    #[test]
    fn purge_invalidates_only_that_source() {
        let a = SourceId::new("a");
        let b = SourceId::new("b");
        let mut g = Generations::default();
        let ba = g.bind(Some(a));
        let bb = g.bind(Some(b));
        let none = g.bind(None);
        assert!(g.is_current(&ba) && g.is_current(&bb) && g.is_current(&none));
        assert!(g.purge_source(a));
        assert!(!g.is_current(&ba));
        assert!(g.is_current(&bb) && g.is_current(&none));
        let ba2 = g.bind(Some(a));
        assert!(g.is_current(&ba2));
        assert!(g.purge_source(a));
        assert!(
            !g.is_current(&ba2),
            "a second purge invalidates the newer generation"
        );
    }

    #[test]
    fn purge_all_invalidates_everything_and_compacts() {
        let a = SourceId::new("a");
        let mut g = Generations::default();
        g.purge_source(a);
        let ba = g.bind(Some(a));
        let none = g.bind(None);
        g.purge_all();
        assert_eq!(g.purged_sources(), 0);
        assert!(!g.is_current(&ba));
        assert!(!g.is_current(&none));
        assert!(g.is_current(&g.bind(Some(a))));
    }

    #[test]
    fn encode_round_trip_and_rejects_garbage() {
        let mut g = Generations::default();
        for i in 0..10 {
            g.purge_source(SourceId::new(format!("s{i}")));
        }
        g.purge_all();
        g.purge_source(SourceId::new("later"));
        let mut buf = Vec::new();
        g.encode(&mut buf);
        let back = Generations::decode(&mut Reader { buf: &buf, pos: 0 }).unwrap();
        assert_eq!(back, g);
        for n in 0..buf.len() {
            assert!(Generations::decode(&mut Reader {
                buf: &buf[..n],
                pos: 0
            })
            .is_none());
        }
        // A count claiming billions of entries must not allocate them.
        let mut huge = buf.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Generations::decode(&mut Reader { buf: &huge, pos: 0 }).is_none());
    }

    #[test]
    fn full_table_asks_for_purge_all() {
        let mut g = Generations::default();
        for i in 0..MAX_PURGED_SOURCES as u64 {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&i.to_le_bytes());
            assert!(g.purge_source(SourceId::from_bytes(id)));
        }
        assert_eq!(g.purged_sources(), MAX_PURGED_SOURCES);
        assert!(
            g.purge_source(SourceId::from_bytes([0u8; 32])),
            "a known source can be re-purged"
        );
        assert!(!g.purge_source(SourceId::new("new")), "a new one cannot");
        g.purge_all();
        assert!(g.purge_source(SourceId::new("new")));
    }
}

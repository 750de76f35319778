//! L2: variants on local disk (foyer's block engine over a directory), surviving restarts.
//!
//! How foyer is set up, and why:
//! - **Only its disk half is used.** foyer is a hybrid cache with an in-memory tier of its own,
//!   but moka is L1 here; foyer's memory tier gets a filter that admits nothing, so every entry
//!   is a pass-through "phantom" and no variant is held in memory twice.
//! - **Write on insertion** (`HybridCachePolicy::WriteOnInsertion`): a record is queued for disk
//!   when it is made, not when an in-memory copy is evicted, so a crash loses only what was
//!   still queued.
//! - **Records reach foyer in batches** ([`Batch`]): foyer writes whatever its buffer holds as
//!   soon as its previous write is done, so records arriving one by one were written one by one:
//!   three `pwrite`s each (the data, the block's index, the tombstone log's page) and about six
//!   thread wake-ups, which preempted the image workers. A record now waits up to
//!   [`BATCH_DELAY`] (or until a quarter block is waiting) and goes to foyer with the others,
//!   which then become one write. Waiting records are served and purged like written ones.
//! - **Tombstone log on**: a purge writes a tombstone, so a purged entry does not come back when
//!   the blocks are scanned again after a restart.
//! - **No compression** (variants are already compressed images), psync I/O, default FIFO /
//!   invalid-ratio block eviction.
//! - **Its own runtime** (one worker thread, plus tokio's blocking pool for file I/O), so the
//!   tier does not depend on the lifetime of whichever runtime opened it.
//! - **Block size** bounds the largest record; larger variants are skipped and counted. The
//!   write buffer is two blocks (so a block-sized record fits beside others); foyer drops a
//!   record it cannot buffer or queue during a write burst, which `disk_dropped_writes` counts.
//!   Memory for buffers: 4 × block size.
//! - **TTL lives in the value**: foyer has none, so a record past its variant's TTL reads as a
//!   miss and is deleted.
//!
//! foyer's own files carry no description of their layout, and its recovery trusts the
//! directory it is given. So the directory also holds `imgedge-cache.meta`: magic, format
//! version, capacity and block size, the purge generations (see `purge.rs`), and a SHA-256 over
//! all of it, rewritten atomically. A directory whose meta is missing, unreadable, for another
//! layout or another format is not trusted: foyer's files in it are deleted and the cache starts
//! empty (with a warning saying why). Files that are not ours are never deleted — a mistyped
//! `disk_dir` pointing at someone's data must not cost them that data. Damage inside foyer's
//! files under a valid meta is caught by foyer's own checksums (blob index and entries) and
//! reads as misses; records that pass them but are not variants of this version are deleted.
//! An exclusive `flock` on `imgedge-cache.lock` keeps a second process off the same directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, PsyncIoEngineConfig, RecoverMode, Spawner,
};
use sha2::{Digest, Sha256};

use super::foyer_gauges::{FoyerGauges, Registry};
use super::key::Key;
use super::memory::Stored;
use super::purge::{Binding, Generations, SourceId};
use super::variant::{Reader, Variant};

const META_FILE: &str = "imgedge-cache.meta";
const LOCK_FILE: &str = "imgedge-cache.lock";
/// foyer's `FsDevice` names its files with this prefix.
const FOYER_PREFIX: &str = "foyer-storage-direct-fs-";
const META_MAGIC: &[u8; 16] = b"IMGEDGE-L2-META\0";
/// Covers our record layout and foyer's on-disk format: bump it when either changes (a foyer
/// upgrade included), and old directories are wiped instead of misread.
const META_FORMAT: u32 = 1;

const RECORD_MAGIC: [u8; 4] = *b"IEDR";
const RECORD_VERSION: u8 = 1;

const PAGE: u64 = 4096;
/// foyer's default blob index size, which it reserves in every block.
const BLOB_INDEX: u64 = 4096;
/// foyer's entry header (36 bytes) + our key (32) + the blob's length prefix (4).
const ENTRY_OVERHEAD: u64 = 36 + 32 + 4;
/// foyer warns below this; we refuse.
const MIN_BLOCKS: u64 = 4;
/// Any record claiming more than this is corrupt (blocks are far smaller).
const MAX_BLOB: usize = 1 << 30;
/// How long a record waits for others to be written with (see [`Batch`]): at a few hundred
/// cold requests per second, a dozen records per write; what a crash can lose besides.
const BATCH_DELAY: Duration = Duration::from_millis(50);

/// Raw record bytes as foyer stores them (length-prefixed). Decoding is deferred to us so
/// that foyer never sees a decoding error for bytes that passed its checksum.
#[derive(Debug, Clone)]
pub(crate) struct Blob(Bytes);

impl Code for Key {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer
            .write_all(self.as_bytes())
            .map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut b = [0u8; 32];
        reader.read_exact(&mut b).map_err(foyer::Error::io_error)?;
        Ok(Key::from_bytes(b))
    }

    fn estimated_size(&self) -> usize {
        32
    }
}

impl Code for Blob {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer
            .write_all(&(self.0.len() as u32).to_le_bytes())
            .and_then(|_| writer.write_all(&self.0))
            .map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut len = [0u8; 4];
        reader
            .read_exact(&mut len)
            .map_err(foyer::Error::io_error)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_BLOB {
            return Ok(Blob(Bytes::new()));
        }
        // Grows with what is really there instead of trusting `len` for an allocation.
        let mut buf = Vec::new();
        reader
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(foyer::Error::io_error)?;
        if buf.len() != len {
            return Ok(Blob(Bytes::new()));
        }
        Ok(Blob(Bytes::from(buf)))
    }

    fn estimated_size(&self) -> usize {
        4 + self.0.len()
    }
}

/// `"IEDR" | version u8 | has_source u8 | source [32]? | source_gen u64 | all_gen u64 | variant`.
pub(crate) fn encode_record(stored: &Stored) -> Option<Bytes> {
    let b = &stored.binding;
    let mut out = Vec::with_capacity(64 + stored.variant.encoded_len()?);
    out.extend_from_slice(&RECORD_MAGIC);
    out.push(RECORD_VERSION);
    match b.source {
        Some(s) => {
            out.push(1);
            out.extend_from_slice(s.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&b.source_generation.to_le_bytes());
    out.extend_from_slice(&b.all_generation.to_le_bytes());
    stored
        .variant
        .encode_into(&mut out)
        .then(|| Bytes::from(out))
}

pub(crate) fn decode_record(bytes: &Bytes) -> Option<Stored> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.take(4)? != RECORD_MAGIC.as_slice() || r.u8()? != RECORD_VERSION {
        return None;
    }
    let source = match r.u8()? {
        0 => None,
        1 => Some(SourceId::from_bytes(r.take(32)?.try_into().ok()?)),
        _ => return None,
    };
    let source_generation = r.u64()?;
    let all_generation = r.u64()?;
    let variant = Variant::decode_shared(&bytes.slice(r.pos..))?;
    Some(Stored {
        variant: Arc::new(variant),
        binding: Binding {
            source,
            source_generation,
            all_generation,
        },
    })
}

/// The shape foyer lays its files out in; a directory written with another one is not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    capacity: u64,
    block: u64,
}

impl Layout {
    /// Blocks foyer carves out of the capacity, after its tombstone log (16 bytes per possible
    /// 4 KiB entry, in whole pages).
    fn blocks(&self) -> u64 {
        let tombstones = (self.capacity / PAGE).div_ceil(PAGE / 16) * PAGE;
        self.capacity.saturating_sub(tombstones) / self.block
    }
}

/// What a read from disk found.
pub(crate) enum DiskRead {
    Hit(Stored),
    Miss,
    /// Passed foyer's checksum but is not a record of ours (deleted).
    Unreadable,
    /// foyer reported an I/O error (served as a miss).
    Error(String),
}

/// How the directory was found at open; for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Valid meta: entries were recovered.
    Recovered,
    /// Started empty, with the reason (e.g. "no meta file", "meta checksum mismatch").
    Clean(String),
}

/// Records waiting to be handed to foyer together (module comment: why). The hand-over and
/// every removal take the same lock, so a removal cannot fall between a record leaving the
/// queue and foyer indexing it (which would bring a purged record back).
struct Batch {
    cache: HybridCache<Key, Blob>,
    queue: Mutex<Queue>,
    /// The tier's I/O runtime, whose timer hands a batch over.
    runtime: tokio::runtime::Handle,
    /// Hand over at once from this many queued bytes (a quarter block: foyer's buffer is two
    /// blocks, and a batch that does not fit it is dropped).
    limit: u64,
}

/// One record per key (a newer one replaces it: one write, not two), found without a scan
/// however many requests a batch gathers.
#[derive(Default)]
struct Queue {
    records: BTreeMap<Key, Blob>,
    bytes: u64,
    /// Handed over for the last time: later records are refused.
    closed: bool,
}

impl Batch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the record; false once the batch is closed.
    fn push(self: &Arc<Self>, key: Key, blob: Blob) -> bool {
        let mut queue = self.lock();
        if queue.closed {
            return false;
        }
        queue.bytes += blob.0.len() as u64;
        if let Some(old) = queue.records.insert(key, blob) {
            queue.bytes -= old.0.len() as u64;
        }
        if queue.bytes >= self.limit {
            self.hand_over(&mut queue);
        } else if queue.records.len() == 1 {
            // The first record of a batch sets its deadline; a timer left over from a batch
            // handed over early only hands the next one over sooner.
            let batch = self.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(BATCH_DELAY).await;
                batch.flush();
            });
        }
        true
    }

    fn flush(&self) {
        self.hand_over(&mut self.lock());
    }

    /// Hands over what waits and refuses every later record, under the lock `push` takes: a
    /// record that passed the tier's own `closed` check just before a close cannot slip in
    /// after this last hand-over and be left unwritten.
    fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        self.hand_over(&mut queue);
    }

    fn hand_over(&self, queue: &mut Queue) {
        for (key, blob) in std::mem::take(&mut queue.records) {
            self.cache.insert(key, blob);
        }
        queue.bytes = 0;
    }

    fn find(&self, key: &Key) -> Option<Blob> {
        self.lock().records.get(key).cloned()
    }

    /// Removes `key` from the queue and from foyer.
    fn remove(&self, key: &Key) {
        let mut queue = self.lock();
        if let Some(old) = queue.records.remove(key) {
            queue.bytes -= old.0.len() as u64;
        }
        self.cache.remove(key);
    }

    fn clear(&self) {
        *self.lock() = Queue::default();
    }
}

pub(crate) struct DiskTier {
    /// foyer itself is `batch.cache`.
    batch: Arc<Batch>,
    dir: PathBuf,
    layout: Layout,
    max_record: u64,
    gauges: Arc<FoyerGauges>,
    closed: AtomicBool,
    /// `close` has finished.
    done: AtomicBool,
    /// Serialises meta rewrites.
    meta_write: tokio::sync::Mutex<()>,
    /// The directory's `flock`, held until [`DiskTier::close`] so a successor process (a
    /// zero-downtime upgrade) can open the cache as soon as this one has flushed.
    lock: std::sync::Mutex<Option<File>>,
}

impl DiskTier {
    /// Opens (or creates) the disk tier in `dir`. `capacity` and `block` are bytes.
    ///
    /// Returns the tier, the purge generations it had persisted, and how it was found.
    pub async fn open(
        dir: &Path,
        capacity: u64,
        block: u64,
    ) -> Result<(DiskTier, Generations, Opened), String> {
        let layout = check_layout(capacity, block)?;
        fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create disk cache directory {}: {e}", dir.display()))?;
        let lock = lock_dir(dir)?;

        let (generations, mut opened) = match read_meta(dir) {
            Ok(meta) if meta.0 == layout => (meta.1, Opened::Recovered),
            Ok(meta) => (
                Generations::default(),
                Opened::Clean(format!(
                    "written for {} bytes in {}-byte blocks, now configured for {} in {}",
                    meta.0.capacity, meta.0.block, layout.capacity, layout.block
                )),
            ),
            Err(reason) => (Generations::default(), Opened::Clean(reason)),
        };
        if let Opened::Clean(reason) = &opened {
            wipe(dir, reason)?;
        }

        let mut gauges = Arc::new(FoyerGauges::default());
        let (cache, runtime) =
            match build(dir, layout, matches!(opened, Opened::Recovered), &gauges).await {
                Ok(built) => built,
                Err(e) if opened == Opened::Recovered => {
                    let reason = format!("recovery failed: {e}");
                    wipe(dir, &reason)?;
                    opened = Opened::Clean(reason);
                    gauges = Arc::new(FoyerGauges::default());
                    build(dir, layout, false, &gauges).await?
                }
                Err(e) => return Err(e),
            };
        let generations = match opened {
            Opened::Recovered => generations,
            Opened::Clean(_) => Generations::default(),
        };
        let batch = Arc::new(Batch {
            cache,
            queue: Mutex::default(),
            runtime,
            limit: block / 4,
        });
        let tier = DiskTier {
            batch,
            dir: dir.to_path_buf(),
            layout,
            max_record: block - BLOB_INDEX - ENTRY_OVERHEAD,
            gauges,
            closed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            meta_write: tokio::sync::Mutex::new(()),
            lock: std::sync::Mutex::new(Some(lock)),
        };
        // Written on every open, so a directory is only trusted once foyer has built on it.
        tier.save_generations(&generations).await?;
        Ok((tier, generations, opened))
    }

    /// Largest record (encoded variant + binding) the tier stores.
    pub fn max_record(&self) -> u64 {
        self.max_record
    }

    pub fn capacity(&self) -> u64 {
        self.layout.capacity
    }

    pub async fn get(&self, key: &Key) -> DiskRead {
        if let Some(blob) = self.batch.find(key) {
            return self.decoded(key, &blob);
        }
        // foyer's `get` runs on the tier's I/O runtime even when its index has no such key:
        // two thread hops (57 µs in `cargo bench --bench cache`) on every cold request. The
        // index is asked here first. It knows every record on disk; one in foyer's own write
        // queue may be missed, which costs a transform, never a wrong answer.
        if !self.batch.cache.contains(key) {
            return DiskRead::Miss;
        }
        match self.batch.cache.get(key).await {
            Ok(Some(entry)) => self.decoded(key, entry.value()),
            Ok(None) => DiskRead::Miss,
            Err(e) => DiskRead::Error(e.to_string()),
        }
    }

    fn decoded(&self, key: &Key, blob: &Blob) -> DiskRead {
        match decode_record(&blob.0) {
            Some(stored) => DiskRead::Hit(stored),
            None => {
                self.remove(key);
                DiskRead::Unreadable
            }
        }
    }

    /// Queues the record for writing. False if it is larger than a block allows (not stored)
    /// or the tier is closed.
    pub fn insert(&self, key: Key, record: Bytes) -> bool {
        if record.len() as u64 > self.max_record || self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.batch.push(key, Blob(record))
    }

    /// Deletes the entry. A record still in foyer's write queue can be served until that
    /// write completes; use [`DiskTier::purge`] where that matters.
    pub fn remove(&self, key: &Key) {
        if !self.closed.load(Ordering::Acquire) {
            self.batch.remove(key);
        }
    }

    /// Deletes the entry and waits until no queued write can serve it any more.
    pub async fn purge(&self, key: &Key) {
        if !self.closed.load(Ordering::Acquire) {
            self.batch.remove(key);
            self.batch.cache.storage().wait().await;
        }
    }

    /// Deletes every entry now. Not durable on its own: foyer's `destroy` zeroes each block's
    /// first index page, but the block being written keeps its in-memory blob index and writes
    /// it back with the next record, so entries written before the clear into that block can
    /// be recovered after a restart. `Cache::purge_all` bumps the purge-all generation first,
    /// which makes any such survivor read as stale.
    pub async fn clear(&self) -> Result<(), String> {
        self.batch.clear();
        self.batch
            .cache
            .clear()
            .await
            .map_err(|e| format!("clearing the disk cache: {e}"))
    }

    /// Persists the purge generations (atomically: temp file, fsync, rename, fsync dir).
    pub async fn save_generations(&self, generations: &Generations) -> Result<(), String> {
        let _guard = self.meta_write.lock().await;
        let dir = self.dir.clone();
        let bytes = encode_meta(self.layout, generations);
        tokio::task::spawn_blocking(move || write_atomically(&dir, META_FILE, &bytes))
            .await
            .map_err(|e| format!("writing {META_FILE}: {e}"))?
    }

    /// Stops accepting records and waits until the queued ones are in the files. A call cut
    /// short (a stop whose runtime went away mid-close) can be repeated: the next one hands
    /// over and waits again; once a call has finished, the next returns at once.
    pub async fn close(&self) -> Result<(), String> {
        if self.done.load(Ordering::Acquire) {
            return Ok(());
        }
        self.closed.store(true, Ordering::Release);
        self.batch.close();
        self.batch.cache.storage().wait().await;
        let closed = self
            .batch
            .cache
            .close()
            .await
            .map_err(|e| format!("closing the disk cache: {e}"));
        // Flushed: the next process may take the directory.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.done.store(true, Ordering::Release);
        closed
    }

    /// Bytes in blocks that hold entries (live or not yet reclaimed): what the tier occupies.
    pub fn used_bytes(&self) -> u64 {
        let blocks = self.layout.blocks();
        let clean = self
            .gauges
            .clean_blocks
            .load(Ordering::Relaxed)
            .clamp(0, blocks as i64);
        (blocks - clean as u64) * self.layout.block
    }

    /// Records foyer dropped because its write buffer or queue was full.
    pub fn dropped_writes(&self) -> u64 {
        self.gauges.dropped_writes.load(Ordering::Relaxed)
    }

    /// Bytes written to / read from foyer's files since open.
    pub fn io_bytes(&self) -> (u64, u64) {
        let s = self.batch.cache.statistics();
        (s.disk_write_bytes() as u64, s.disk_read_bytes() as u64)
    }
}

fn check_layout(capacity: u64, block: u64) -> Result<Layout, String> {
    if block < 64 * 1024 || block % PAGE != 0 {
        return Err(format!(
            "disk_block_bytes must be a multiple of 4096 and at least 65536, got {block}"
        ));
    }
    let layout = Layout { capacity, block };
    let blocks = layout.blocks();
    if blocks < MIN_BLOCKS {
        return Err(format!(
            "disk_bytes = {capacity} holds only {blocks} blocks of disk_block_bytes = {block}; \
             it needs at least {MIN_BLOCKS}: raise disk_bytes or lower disk_block_bytes \
             (or set disk_bytes = 0 to turn the disk tier off)"
        ));
    }
    Ok(layout)
}

async fn build(
    dir: &Path,
    layout: Layout,
    recover: bool,
    gauges: &Arc<FoyerGauges>,
) -> Result<(HybridCache<Key, Blob>, tokio::runtime::Handle), String> {
    let device = FsDeviceBuilder::new(dir)
        .with_capacity(layout.capacity as usize)
        .build()
        .map_err(|e| format!("opening disk cache files in {}: {e}", dir.display()))?;
    // foyer's flushers, reclaimers and file I/O get a runtime of their own: the tier then
    // works whichever runtime (pingora runs one per service) opened it or calls it, and
    // outlives a runtime used only to open it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("imgedge-l2")
        .enable_all()
        .build()
        .map_err(|e| format!("starting the disk cache's I/O runtime: {e}"))?;
    let handle = runtime.handle().clone();
    let engine = BlockEngineConfig::new(device)
        .with_block_size(layout.block as usize)
        // foyer drops a record that does not fit the rest of its write buffer (it does not
        // wait for the next one): two blocks' worth lets a block-sized record in beside others.
        // Memory: two such buffers (one filling, one being written).
        .with_buffer_pool_size(layout.block as usize * 2)
        // Records queued beyond one buffer would overflow it anyway.
        .with_submit_queue_size_threshold(layout.block as usize * 2)
        .with_tombstone_log(true);
    HybridCacheBuilder::new()
        .with_name("imgedge-l2")
        .with_metrics_registry(Box::new(Registry(gauges.clone())))
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .with_flush_on_close(false)
        .memory(64)
        .with_shards(1)
        .with_filter(|_: &Key, _: &Blob| false)
        .storage()
        .with_spawner(Spawner::from(runtime))
        .with_io_engine_config(PsyncIoEngineConfig::new())
        .with_engine_config(engine)
        .with_recover_mode(if recover {
            RecoverMode::Quiet
        } else {
            RecoverMode::None
        })
        .build()
        .await
        .map(|cache| (cache, handle))
        .map_err(|e| format!("opening the disk cache in {}: {e}", dir.display()))
}

fn lock_dir(dir: &Path) -> Result<File, String> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(format!(
            "disk cache directory {} is in use by another process (lock on {LOCK_FILE}); \
             give each imgedge its own disk_dir",
            dir.display()
        ));
    }
    Ok(file)
}

/// Deletes foyer's files and our meta; leaves everything else alone.
fn wipe(dir: &Path, reason: &str) -> Result<(), String> {
    let entries = fs::read_dir(dir)
        .map_err(|e| format!("cannot list disk cache dir {}: {e}", dir.display()))?;
    let (mut removed, mut foreign) = (0usize, 0usize);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(FOYER_PREFIX) || name == META_FILE || name.starts_with(".meta.tmp") {
            fs::remove_file(entry.path())
                .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
            removed += 1;
        } else if name != LOCK_FILE {
            foreign += 1;
        }
    }
    if removed > 0 || foreign > 0 {
        tracing::warn!(
            dir = %dir.display(),
            reason,
            removed_cache_files = removed,
            unrelated_files_left_alone = foreign,
            "disk cache directory not trusted; starting with an empty disk cache"
        );
    }
    Ok(())
}

fn encode_meta(layout: Layout, generations: &Generations) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&META_FORMAT.to_le_bytes());
    out.extend_from_slice(&layout.capacity.to_le_bytes());
    out.extend_from_slice(&layout.block.to_le_bytes());
    generations.encode(&mut out);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(sum.as_slice());
    out
}

/// The layout and generations from the meta file, or why the directory is not trusted.
fn read_meta(dir: &Path) -> Result<(Layout, Generations), String> {
    let bytes = match fs::read(dir.join(META_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no {META_FILE}"))
        }
        Err(e) => return Err(format!("cannot read {META_FILE}: {e}")),
    };
    if bytes.len() < 32 + META_MAGIC.len() {
        return Err(format!("{META_FILE} is truncated"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(format!("{META_FILE} checksum mismatch"));
    }
    let mut r = Reader { buf: body, pos: 0 };
    if r.take(META_MAGIC.len()) != Some(META_MAGIC.as_slice()) {
        return Err(format!("{META_FILE} is not ours"));
    }
    let format = r.u32().ok_or("meta truncated")?;
    if format != META_FORMAT {
        return Err(format!(
            "{META_FILE} has format {format}, this build reads {META_FORMAT}"
        ));
    }
    let capacity = r.u64().ok_or("meta truncated")?;
    let block = r.u64().ok_or("meta truncated")?;
    let generations = Generations::decode(&mut r).ok_or(format!("{META_FILE} is malformed"))?;
    if r.pos != body.len() {
        return Err(format!("{META_FILE} has trailing bytes"));
    }
    Ok((Layout { capacity, block }, generations))
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let tmp = dir.join(".meta.tmp");
    let path = dir.join(name);
    let err = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, &path).map_err(err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::unix_now;
    use crate::cache::variant::sample;

    const MIB: u64 = 1 << 20;
    const CAP: u64 = 16 * MIB;
    const BLOCK: u64 = MIB;

    fn key(i: u32) -> Key {
        Key::builder().field("i", i.to_le_bytes()).finish()
    }

    fn stored(body: &[u8]) -> Stored {
        Stored {
            variant: Arc::new(sample(body, unix_now(), 3600)),
            binding: Binding {
                source: Some(SourceId::new("url:x")),
                source_generation: 3,
                all_generation: 1,
            },
        }
    }

    async fn open(dir: &Path) -> (DiskTier, Generations, Opened) {
        DiskTier::open(dir, CAP, BLOCK).await.unwrap()
    }

    fn body(i: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| (j as u32).wrapping_mul(31).wrapping_add(i) as u8)
            .collect()
    }

    /// Closes the tier and opens its directory again, as a restart does.
    async fn reopen(tier: DiskTier, dir: &Path) -> DiskTier {
        tier.close().await.unwrap();
        drop(tier);
        open(dir).await.0
    }

    async fn hit(tier: &DiskTier, k: &Key) -> Option<Stored> {
        match tier.get(k).await {
            DiskRead::Hit(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn record_round_trip_and_rejects() {
        let s = stored(b"img");
        let rec = encode_record(&s).unwrap();
        let back = decode_record(&rec).unwrap();
        assert_eq!(back.binding, s.binding);
        assert_eq!(*back.variant, *s.variant);
        let none = Stored {
            binding: Binding::default(),
            ..s.clone()
        };
        assert_eq!(
            decode_record(&encode_record(&none).unwrap())
                .unwrap()
                .binding,
            Binding::default()
        );
        for n in 0..rec.len() {
            assert!(decode_record(&rec.slice(..n)).is_none(), "prefix {n}");
        }
        let mut bad = rec.to_vec();
        bad[5] = 7; // has_source flag
        assert!(decode_record(&Bytes::from(bad)).is_none());
    }

    #[test]
    fn layouts_that_cannot_work_are_refused() {
        assert!(check_layout(CAP, BLOCK).is_ok());
        assert!(check_layout(2 << 30, 16 * MIB).is_ok());
        assert!(check_layout(3 * MIB, MIB)
            .unwrap_err()
            .contains("at least 4"));
        assert!(check_layout(CAP, 1000).is_err());
        assert!(check_layout(CAP, 4096).is_err());
    }

    #[tokio::test]
    async fn survives_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, opened) = open(dir.path()).await;
        assert!(matches!(opened, Opened::Clean(_)), "a new dir starts clean");
        assert_eq!(tier.used_bytes(), 0);
        let s = stored(&body(1, 50_000));
        tier.insert(key(1), encode_record(&s).unwrap());
        for i in 2..20 {
            tier.insert(key(i), encode_record(&stored(&body(i, 10_000))).unwrap());
        }
        // Readable before the flush too (foyer serves queued records).
        assert!(hit(&tier, &key(1)).await.is_some());
        tier.close().await.unwrap();
        drop(tier);

        let (tier, generations, opened) = open(dir.path()).await;
        assert_eq!(opened, Opened::Recovered);
        assert_eq!(generations, Generations::default());
        let back = hit(&tier, &key(1)).await.expect("recovered after reopen");
        assert_eq!(back.variant.body, s.variant.body);
        assert_eq!(back.binding, s.binding);
        for i in 2..20 {
            let got = hit(&tier, &key(i)).await.expect("every entry recovered");
            assert_eq!(got.variant.body.as_ref(), body(i, 10_000).as_slice());
        }
        assert!(matches!(tier.get(&key(999)).await, DiskRead::Miss));
        // One block of the 15 holds everything written so far.
        assert_eq!(tier.used_bytes(), BLOCK, "recovered usage is reported");
        assert_eq!(tier.dropped_writes(), 0);
        tier.close().await.unwrap();
    }

    /// An insert that passed the tier's `closed` check just before `close` set it reaches the
    /// batch after its last hand-over: the batch refuses it, so no accepted record is left
    /// unwritten (before, it was accepted and lost at the stop).
    #[tokio::test]
    async fn a_record_racing_the_close_is_refused_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        let record = |i| encode_record(&stored(&body(i, 1_000))).unwrap();
        assert!(tier.insert(key(1), record(1)));
        // What `close` does first, before the racing insert runs.
        tier.batch.close();
        assert!(
            !tier.insert(key(2), record(2)),
            "accepted after the last hand-over"
        );
        let tier = reopen(tier, dir.path()).await;
        assert!(
            hit(&tier, &key(1)).await.is_some(),
            "the record before the close is kept"
        );
        assert!(hit(&tier, &key(2)).await.is_none());
        tier.close().await.unwrap();
    }

    /// Records made close together reach the files in one write, not one each (`Batch`); while
    /// they wait they are served, and a purge reaches them.
    #[tokio::test]
    async fn records_made_together_are_written_together() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        let writes = || tier.batch.cache.statistics().disk_write_ios();
        let before = writes();
        // A few milliseconds apart, as requests finish: foyer alone would write each one
        // before the next arrives.
        for i in 0..12 {
            tier.insert(key(i), encode_record(&stored(&body(i, 5_000))).unwrap());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(hit(&tier, &key(3)).await.is_some(), "served while queued");
        // Made again while queued: the newer record is the one served and written.
        tier.insert(key(7), encode_record(&stored(b"newer")).unwrap());
        tier.purge(&key(5)).await;
        assert!(hit(&tier, &key(5)).await.is_none(), "purged while queued");
        tokio::time::sleep(BATCH_DELAY * 4).await;
        let written = writes() - before;
        // A batch is three writes: the data, the block's index, the tombstone log's page (4
        // here, with the purge's). A slow machine may split the records into a few batches;
        // foyer alone makes 37.
        assert!(
            (1..=18).contains(&written),
            "{written} writes for 12 records"
        );
        let tier = reopen(tier, dir.path()).await;
        for i in 0..12 {
            assert_eq!(hit(&tier, &key(i)).await.is_some(), i != 5, "record {i}");
        }
        let newer = hit(&tier, &key(7)).await.unwrap();
        assert_eq!(newer.variant.body.as_ref(), b"newer");
        tier.close().await.unwrap();
    }

    /// A burst faster than the disk: foyer may drop records (its queue and write buffer are
    /// bounded); every record must then be either on disk or counted as dropped.
    #[tokio::test]
    async fn a_write_burst_is_stored_or_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        let n = 20;
        for i in 0..n {
            assert!(tier.insert(key(i), encode_record(&stored(&body(i, 400_000))).unwrap()));
        }
        tier.close().await.unwrap();
        let dropped = tier.dropped_writes();
        drop(tier);
        let (tier, _, _) = open(dir.path()).await;
        let mut stored_count = 0;
        for i in 0..n {
            if let Some(got) = hit(&tier, &key(i)).await {
                assert_eq!(got.variant.body.as_ref(), body(i, 400_000).as_slice());
                stored_count += 1;
            }
        }
        assert_eq!(
            stored_count + dropped,
            n as u64,
            "{stored_count} stored, {dropped} dropped"
        );
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn removal_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        tier.insert(key(1), encode_record(&stored(b"one")).unwrap());
        tier.insert(key(2), encode_record(&stored(b"two")).unwrap());
        let tier = reopen(tier, dir.path()).await;
        tier.purge(&key(1)).await;
        assert!(hit(&tier, &key(1)).await.is_none());
        let tier = reopen(tier, dir.path()).await;
        assert!(
            hit(&tier, &key(1)).await.is_none(),
            "tombstone kept it deleted"
        );
        assert!(hit(&tier, &key(2)).await.is_some());
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn clear_empties_now_and_later_writes_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        tier.insert(key(1), encode_record(&stored(b"one")).unwrap());
        tier.clear().await.unwrap();
        assert!(hit(&tier, &key(1)).await.is_none());
        tier.insert(key(2), encode_record(&stored(b"two")).unwrap());
        tier.close().await.unwrap();
        drop(tier);
        // What is written after a clear survives it; what was cleared may come back (see
        // `clear`), which `Cache::purge_all` covers with a generation.
        let (tier, _, _) = open(dir.path()).await;
        assert!(hit(&tier, &key(2)).await.is_some());
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn records_larger_than_a_block_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        let max = tier.max_record() as usize;
        let fits = Bytes::from(vec![0u8; max]);
        let too_big = Bytes::from(vec![0u8; max + 1]);
        assert!(!tier.insert(key(2), too_big));
        // The largest allowed record is really written and read back (not silently dropped).
        let s = stored(&[]);
        let mut rec = encode_record(&s).unwrap().to_vec();
        let pad = max - rec.len();
        let mut v = (*s.variant).clone();
        v.body = Bytes::from(vec![9u8; pad]);
        rec = encode_record(&Stored {
            variant: Arc::new(v),
            binding: s.binding,
        })
        .unwrap()
        .to_vec();
        assert_eq!(rec.len(), max);
        assert!(tier.insert(key(1), Bytes::from(rec)));
        drop(fits);
        let tier = reopen(tier, dir.path()).await;
        let got = hit(&tier, &key(1))
            .await
            .expect("a block-sized record round-trips");
        assert_eq!(got.variant.body.len(), pad);
        assert!(hit(&tier, &key(2)).await.is_none());
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn generations_persist_in_the_meta() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, mut g, _) = open(dir.path()).await;
        g.purge_source(SourceId::new("url:a"));
        tier.save_generations(&g).await.unwrap();
        tier.close().await.unwrap();
        drop(tier);
        let (tier, back, opened) = open(dir.path()).await;
        assert_eq!(opened, Opened::Recovered);
        assert_eq!(back, g);
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_second_process_cannot_share_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        // flock locks are per open file description, so a second open in this process is
        // refused just as another process would be.
        let err = DiskTier::open(dir.path(), CAP, BLOCK).await.err().unwrap();
        assert!(err.contains("in use"), "{err}");
        // Closing hands the directory over while the old tier still exists (an upgrade: the
        // old process lives on to drain its requests).
        tier.close().await.unwrap();
        let (successor, _, _) = open(dir.path()).await;
        drop(tier);
        successor.close().await.unwrap();
    }

    /// Random bytes over every file foyer wrote, under a valid meta: no crash, no wrong data,
    /// and the tier keeps working.
    #[tokio::test]
    async fn random_bytes_in_cache_files_are_survived() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        for i in 0..20 {
            tier.insert(key(i), encode_record(&stored(&body(i, 20_000))).unwrap());
        }
        tier.close().await.unwrap();
        drop(tier);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for entry in fs::read_dir(dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with(FOYER_PREFIX) {
                continue;
            }
            let len = entry.metadata().unwrap().len() as usize;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            fs::write(entry.path(), junk).unwrap();
        }
        let (tier, _, opened) = open(dir.path()).await;
        assert_eq!(opened, Opened::Recovered, "the meta itself was intact");
        for i in 0..20 {
            if let Some(got) = hit(&tier, &key(i)).await {
                assert_eq!(got.variant.body.as_ref(), body(i, 20_000).as_slice());
            }
        }
        tier.insert(key(100), encode_record(&stored(b"after")).unwrap());
        assert_eq!(
            hit(&tier, &key(100)).await.unwrap().variant.body.as_ref(),
            b"after"
        );
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn corrupt_or_foreign_meta_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        tier.insert(key(1), encode_record(&stored(b"one")).unwrap());
        tier.close().await.unwrap();
        drop(tier);

        // One flipped bit in the meta.
        let meta = dir.path().join(META_FILE);
        let mut bytes = fs::read(&meta).unwrap();
        bytes[20] ^= 1;
        fs::write(&meta, &bytes).unwrap();
        let (tier, _, opened) = open(dir.path()).await;
        assert!(
            matches!(&opened, Opened::Clean(r) if r.contains("checksum")),
            "{opened:?}"
        );
        assert!(
            hit(&tier, &key(1)).await.is_none(),
            "nothing is read from an untrusted dir"
        );
        tier.insert(key(2), encode_record(&stored(b"two")).unwrap());
        tier.close().await.unwrap();
        drop(tier);

        // Same directory, other sizes: the layout differs, so it starts clean again.
        let (tier, _, opened) = DiskTier::open(dir.path(), 32 * MIB, BLOCK).await.unwrap();
        assert!(
            matches!(&opened, Opened::Clean(r) if r.contains("configured")),
            "{opened:?}"
        );
        assert!(hit(&tier, &key(2)).await.is_none());
        tier.close().await.unwrap();
        drop(tier);

        // Meta replaced by random bytes.
        fs::write(&meta, vec![0xa5u8; 300]).unwrap();
        let (tier, _, opened) = open(dir.path()).await;
        assert!(matches!(opened, Opened::Clean(_)));
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_dir_of_unrelated_files_starts_clean_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), b"precious").unwrap();
        fs::create_dir(dir.path().join("photos")).unwrap();
        fs::write(dir.path().join("photos/cat.jpg"), b"\xff\xd8").unwrap();
        // A foyer-named file full of junk and no meta: someone else's cache, or a crash
        // before the meta was written.
        fs::write(
            dir.path().join(format!("{FOYER_PREFIX}00000000")),
            vec![7u8; 123_457],
        )
        .unwrap();
        let (tier, _, opened) = open(dir.path()).await;
        assert!(
            matches!(&opened, Opened::Clean(r) if r.contains("no ")),
            "{opened:?}"
        );
        tier.insert(key(1), encode_record(&stored(b"one")).unwrap());
        assert!(hit(&tier, &key(1)).await.is_some());
        tier.close().await.unwrap();
        drop(tier);
        assert_eq!(fs::read(dir.path().join("notes.txt")).unwrap(), b"precious");
        assert!(dir.path().join("photos/cat.jpg").exists());
        let (tier, _, opened) = open(dir.path()).await;
        assert_eq!(opened, Opened::Recovered);
        assert!(hit(&tier, &key(1)).await.is_some());
        tier.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_valid_record_of_another_kind_reads_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let (tier, _, _) = open(dir.path()).await;
        tier.insert(key(1), Bytes::from_static(b"not a record"));
        assert!(matches!(tier.get(&key(1)).await, DiskRead::Unreadable));
        tier.batch.cache.storage().wait().await;
        assert!(
            matches!(tier.get(&key(1)).await, DiskRead::Miss),
            "and was deleted"
        );
        tier.close().await.unwrap();
    }
}

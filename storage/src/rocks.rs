//! The RocksDB adapter: [`RocksEngine`] puts RocksDB (Debian's librocksdb,
//! linked dynamically; `scripts/deps` installs it) behind [`KvEngine`], so
//! that the server can run on it and the tools can measure it next to our own
//! engines.
//!
//! # Configured to be comparable
//!
//! [`RocksOptions`] maps one to one onto the knobs of our LSM: memtable size
//! (`write_buffer_size`), an LRU block cache, a full (whole-key) bloom filter
//! per table, classic leveled compaction (`max_bytes_for_level_base`, a fixed
//! level ratio, no dynamic level sizing, 7 levels), a target table size,
//! 4 KiB blocks and no compression unless asked for (then zstd, or lz4 where
//! the linked library lacks zstd; RocksDB rejects a codec it was built without
//! at open, and so do we, with the reason). Index and filter blocks stay in the
//! table readers (`cache_index_and_filter_blocks = false`, every table opened
//! up front with `max_open_files = -1`), so the block cache and every block
//! counter below hold data blocks only. Statistics are on.
//!
//! # Tags and `durable_seq`
//!
//! A batch's tag is written in the same atomic RocksDB batch, under one key of
//! the column family `strata_meta`, which scans never see. With `sync_writes`
//! every write is fdatasync'd through RocksDB's WAL, so its tag is durable when
//! `write` returns. Without, a tag becomes durable at the next
//! [`KvEngine::flush`]: the highest tag written before the flush started, once
//! the memtables are flushed and the WAL synced. After a reopen, `durable_seq`
//! is the stored tag: everything RocksDB recovered is on disk. Tags that go
//! backwards store the later, lower one, which only understates.
//! `atomic_flush` is on, so the tiny meta memtable flushes along with the data
//! and never pins old WAL files.
//!
//! # Statistics
//!
//! RocksDB 7.8's C API gives the tickers only as the text of
//! `rocksdb.options-statistics`, and per-level compaction figures only as the
//! text of `rocksdb.cfstats`; both are parsed (`rocks/stats.rs`).
//!
//! | `EngineStats` | source |
//! | --- | --- |
//! | `user_bytes_written` | counted here from [`WriteBatch::user_bytes`] |
//! | `log_bytes_written` | ticker `rocksdb.wal.bytes` |
//! | `flush_bytes_written` | ticker `rocksdb.flush.write.bytes` |
//! | `compaction_bytes_written` | total: ticker `rocksdb.compact.write.bytes`, exact. The split by output level is approximate: the C API has per-level bytes only in the `Write(GB)` column of `rocksdb.cfstats`, printed to 0.1 GB, so the exact total is shared out in its proportions (L0's row also holds the flushes and weighs only what exceeds `Flush(GB)`), and while no level below 0 reads 0.1 GB, in proportion to the `Comp(cnt)` column of levels 1 and up |
//! | `other_bytes_written` | 0: RocksDB counts no MANIFEST or OPTIONS bytes |
//! | `bytes_read` | tickers `rocksdb.non.last.level.read.bytes` + `rocksdb.last.level.read.bytes`: every byte read from table files, compaction inputs and table opens included |
//! | `blocks_read` | ticker `rocksdb.block.cache.data.miss`: data blocks looked up and not cached, so read from a file (compactions look up the cache too, without filling it) |
//! | `block_cache_hits` | ticker `rocksdb.block.cache.data.hit` |
//! | `point_gets` | counted here: `get` on the engine and on snapshots |
//! | `point_get_blocks` | per get, the thread's perf-context delta of `block_cache_hit_count` + `block_read_count`: exactly the data blocks that get touched, cached or not (a get served by a memtable touches none). The tickers cannot give this: gets, scans and compactions feed the same ones |
//! | `bloom_checks` | tickers `rocksdb.bloom.filter.useful` + `rocksdb.bloom.filter.full.positive` (every probe of a full filter) |
//! | `bloom_useful` | ticker `rocksdb.bloom.filter.useful` |
//! | `disk_bytes` | the sizes of the files in the directory: tables, WALs, manifest, OPTIONS, CURRENT (not the `LOG*` info logs) |
//! | `files_per_level`, `bytes_per_level` | the live table files of the data column family, by level |
//! | `write_slowdowns`, `write_stops` | the `Stalls(count)` line of `rocksdb.cfstats`: times a slowdown (L0 files, pending compaction bytes, memtables) or a stop condition began, as RocksDB counts stalls (not per delayed write) |

mod stats;

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor, CompactOptions, DB,
    DBCompactionStyle, DBCompressionType, DBRawIterator, Options, ReadOptions, SnapshotWithThreadMode, WriteOptions,
};

use crate::batch::{BatchOp, WriteBatch};
use crate::engine::{KeyRange, KvEngine, KvIter, KvPair, KvSnapshot, Order};
use crate::error::{Result, StorageError};
use crate::stats::{Counter, EngineStats};

const DATA_CF: &str = "default";
const META_CF: &str = "strata_meta";
const TAG_KEY: &[u8] = b"durable_tag";
const NUM_LEVELS: usize = 7;

/// How [`RocksEngine`] configures RocksDB; the defaults match our LSM's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksOptions {
    /// Memtable size (`write_buffer_size`).
    pub memtable_bytes: u64,
    /// Capacity of the LRU block cache.
    pub block_cache_bytes: u64,
    /// Bits per key of the full bloom filter; 0 turns filters off.
    pub bloom_bits_per_key: u32,
    /// Size limit of level 1 (`max_bytes_for_level_base`).
    pub l1_bytes: u64,
    /// Size ratio between adjacent levels.
    pub level_ratio: u32,
    /// Target size of a table file.
    pub target_file_bytes: u64,
    /// Compress blocks: zstd if the linked library has it, else lz4.
    pub compression: bool,
    /// fdatasync every write through RocksDB's WAL.
    pub sync_writes: bool,
    /// Background flush and compaction threads.
    pub background_jobs: u32,
}

impl Default for RocksOptions {
    fn default() -> RocksOptions {
        RocksOptions {
            memtable_bytes: 64 << 20,
            block_cache_bytes: 256 << 20,
            bloom_bits_per_key: 10,
            l1_bytes: 256 << 20,
            level_ratio: 10,
            target_file_bytes: 64 << 20,
            compression: false,
            sync_writes: false,
            background_jobs: 2,
        }
    }
}

impl RocksOptions {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(StorageError::InvalidArgument(format!("rocksdb options: {what}")));
        if self.memtable_bytes == 0 || usize::try_from(self.memtable_bytes).is_err() {
            return bad("memtable_bytes must be positive and fit in memory");
        }
        if usize::try_from(self.block_cache_bytes).is_err() {
            return bad("block_cache_bytes does not fit in memory");
        }
        if self.l1_bytes == 0 || self.target_file_bytes == 0 {
            return bad("l1_bytes and target_file_bytes must be positive");
        }
        if self.level_ratio < 2 {
            return bad("level_ratio must be at least 2");
        }
        if self.background_jobs == 0 || i32::try_from(self.background_jobs).is_err() {
            return bad("background_jobs must be between 1 and 2^31-1");
        }
        Ok(())
    }

    /// RocksDB's options (used for the database and both column families).
    fn build(&self, cache: &Cache, compression: DBCompressionType) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        table.set_block_size(4096);
        if self.bloom_bits_per_key > 0 {
            table.set_bloom_filter(f64::from(self.bloom_bits_per_key), false);
        }
        table.set_cache_index_and_filter_blocks(false);

        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.enable_statistics();
        o.set_atomic_flush(true);
        o.set_max_open_files(-1);
        o.set_block_based_table_factory(&table);
        o.set_compression_type(compression);
        // Validated to fit.
        o.set_write_buffer_size(self.memtable_bytes as usize);
        o.set_compaction_style(DBCompactionStyle::Level);
        o.set_level_compaction_dynamic_level_bytes(false);
        o.set_num_levels(NUM_LEVELS as i32);
        o.set_max_bytes_for_level_base(self.l1_bytes);
        o.set_max_bytes_for_level_multiplier(f64::from(self.level_ratio));
        o.set_target_file_size_base(self.target_file_bytes);
        o.set_target_file_size_multiplier(1);
        o.set_max_background_jobs(self.background_jobs as i32);
        o
    }
}

/// RocksDB behind [`KvEngine`]; see the module docs.
pub struct RocksEngine {
    db: DB,
    dir: PathBuf,
    write_opts: WriteOptions,
    sync_writes: bool,
    compression: &'static str,
    /// Highest tag of a write that has returned.
    written_tag: AtomicU64,
    durable_tag: AtomicU64,
    user_bytes: Counter,
    gets: Counter,
    get_blocks: Counter,
}

impl fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksEngine")
            .field("dir", &self.dir)
            .field("sync_writes", &self.sync_writes)
            .field("compression", &self.compression)
            .field("durable_seq", &self.durable_seq())
            .finish_non_exhaustive()
    }
}

fn ext(e: rocksdb::Error) -> StorageError {
    StorageError::External { engine: "rocksdb", message: e.into_string() }
}

/// RocksDB's word for a codec it was built without (checked at open).
fn unsupported_compression(message: &str) -> bool {
    message.contains("is not linked with the binary")
}

impl RocksEngine {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: impl AsRef<Path>, options: RocksOptions) -> Result<RocksEngine> {
        let dir = dir.as_ref();
        options.validate()?;
        // Validated to fit in usize.
        let cache = Cache::new_lru_cache(options.block_cache_bytes as usize).map_err(ext)?;
        let codecs: &[(DBCompressionType, &'static str)] = if options.compression {
            &[(DBCompressionType::Zstd, "zstd"), (DBCompressionType::Lz4, "lz4")]
        } else {
            &[(DBCompressionType::None, "none")]
        };
        let mut refused = Vec::new();
        for &(codec, name) in codecs {
            let opts = options.build(&cache, codec);
            let cfs = [DATA_CF, META_CF].map(|cf| ColumnFamilyDescriptor::new(cf, opts.clone()));
            match DB::open_cf_descriptors(&opts, dir, cfs) {
                Ok(db) => return RocksEngine::opened(db, dir, &options, name),
                Err(e) if options.compression && unsupported_compression(e.as_ref()) => refused.push(e.into_string()),
                Err(e) => return Err(ext(e)),
            }
        }
        Err(StorageError::InvalidArgument(format!(
            "rocksdb options: compression asked for, but the linked librocksdb has neither zstd nor lz4 ({})",
            refused.join("; ")
        )))
    }

    fn opened(db: DB, dir: &Path, options: &RocksOptions, compression: &'static str) -> Result<RocksEngine> {
        let meta = db.cf_handle(META_CF).ok_or_else(|| missing_cf(META_CF))?;
        let stored =
            match db.get_cf(meta, TAG_KEY).map_err(ext)? {
                None => 0,
                Some(v) => u64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                    StorageError::corruption(dir, format!("{META_CF} tag is {} bytes, not 8", v.len()))
                })?),
            };
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(options.sync_writes);
        Ok(RocksEngine {
            db,
            dir: dir.to_path_buf(),
            write_opts,
            sync_writes: options.sync_writes,
            compression,
            written_tag: AtomicU64::new(stored),
            durable_tag: AtomicU64::new(stored),
            user_bytes: Counter::default(),
            gets: Counter::default(),
            get_blocks: Counter::default(),
        })
    }

    /// The codec in use: `none`, `zstd` or `lz4`.
    pub fn compression(&self) -> &'static str {
        self.compression
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| missing_cf(name))
    }

    /// Runs a point get, counting it and the data blocks it touched.
    fn counted_get(
        &self,
        get: impl FnOnce() -> std::result::Result<Option<Vec<u8>>, rocksdb::Error>,
    ) -> Result<Option<Vec<u8>>> {
        let (value, blocks) = stats::blocks_touched(get);
        self.gets.add(1);
        self.get_blocks.add(blocks);
        value.map_err(ext)
    }

    fn property(&self, cf: &str, name: &str) -> String {
        let value = self.cf(cf).and_then(|cf| self.db.property_value_cf(cf, name).map_err(ext));
        match value {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(property = name, error = %e, "rocksdb property unavailable");
                String::new()
            }
        }
    }
}

fn missing_cf(name: &str) -> StorageError {
    StorageError::External { engine: "rocksdb", message: format!("column family {name} is not open") }
}

/// Read options limited to `range`, or `None` if the range is empty.
fn bounded(range: &KeyRange) -> Option<ReadOptions> {
    // The least key above `k` in bytewise order is `k` + 0x00.
    let successor = |k: &Vec<u8>| {
        let mut s = k.clone();
        s.push(0);
        s
    };
    let lower = match &range.start {
        Bound::Included(k) => Some(k.clone()),
        Bound::Excluded(k) => Some(successor(k)),
        Bound::Unbounded => None,
    };
    let upper = match &range.end {
        Bound::Included(k) => Some(successor(k)),
        Bound::Excluded(k) => Some(k.clone()),
        Bound::Unbounded => None,
    };
    if let (Some(l), Some(u)) = (&lower, &upper) {
        if l >= u {
            return None;
        }
    }
    let mut opts = ReadOptions::default();
    if let Some(l) = lower {
        opts.set_iterate_lower_bound(l);
    }
    if let Some(u) = upper {
        opts.set_iterate_upper_bound(u);
    }
    Some(opts)
}

/// A streaming scan over a RocksDB iterator (which reads from the implicit
/// snapshot taken when it was created).
struct RocksScan<'a> {
    it: DBRawIterator<'a>,
    order: Order,
    started: bool,
    done: bool,
}

impl Iterator for RocksScan<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Result<KvPair>> {
        if self.done {
            return None;
        }
        match (self.started, self.order) {
            (false, Order::Forward) => self.it.seek_to_first(),
            (false, Order::Reverse) => self.it.seek_to_last(),
            (true, Order::Forward) => self.it.next(),
            (true, Order::Reverse) => self.it.prev(),
        }
        self.started = true;
        if let Some((k, v)) = self.it.item() {
            return Some(Ok((k.to_vec(), v.to_vec())));
        }
        self.done = true;
        self.it.status().err().map(|e| Err(ext(e)))
    }
}

fn scan_iter<'a>(it: Option<DBRawIterator<'a>>, order: Order) -> KvIter<'a> {
    match it {
        Some(it) => Box::new(RocksScan { it, order, started: false, done: false }),
        None => Box::new(std::iter::empty()),
    }
}

impl KvEngine for RocksEngine {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.counted_get(|| self.db.get(key))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() && batch.tag().is_none() {
            return Ok(());
        }
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.iter() {
            match op {
                BatchOp::Put(k, v) => rb.put(k, v),
                BatchOp::Delete(k) => rb.delete(k),
            }
        }
        if let Some(tag) = batch.tag() {
            rb.put_cf(self.cf(META_CF)?, TAG_KEY, tag.to_le_bytes());
        }
        self.db.write_opt(rb, &self.write_opts).map_err(ext)?;
        self.user_bytes.add(batch.user_bytes());
        if let Some(tag) = batch.tag() {
            self.written_tag.fetch_max(tag, Ordering::SeqCst);
            if self.sync_writes {
                self.durable_tag.fetch_max(tag, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>> {
        Ok(scan_iter(bounded(&range).map(|opts| self.db.raw_iterator_opt(opts)), order))
    }

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>> {
        Ok(Box::new(RocksSnapshot { engine: self, snap: self.db.snapshot() }))
    }

    fn flush(&self) -> Result<()> {
        // Every write whose tag is seen here has returned, so it is in the
        // WAL that the sync below makes durable.
        let upto = self.written_tag.load(Ordering::SeqCst);
        for cf in [DATA_CF, META_CF] {
            self.db.flush_cf(self.cf(cf)?).map_err(ext)?;
        }
        self.db.flush_wal(true).map_err(ext)?;
        self.durable_tag.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    fn compact(&self) -> Result<()> {
        let mut opts = CompactOptions::default();
        // Without Force the last level is skipped when nothing is above it, and
        // its tombstones and overwritten values would stay.
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        // The C API drops CompactRange's status; a failed compaction shows
        // as a new background error instead.
        let errors = || self.db.property_int_value("rocksdb.background-errors").map_err(ext);
        let before = errors()?;
        for cf in [DATA_CF, META_CF] {
            self.db.compact_range_cf_opt(self.cf(cf)?, None::<&[u8]>, None::<&[u8]>, &opts);
        }
        if errors()? > before {
            return Err(StorageError::External {
                engine: "rocksdb",
                message: format!("compaction failed (see {}/LOG)", self.dir.display()),
            });
        }
        Ok(())
    }

    fn durable_seq(&self) -> u64 {
        self.durable_tag.load(Ordering::SeqCst)
    }

    fn stats(&self) -> EngineStats {
        stats::collect(self)
    }
}

/// A RocksDB snapshot: reads see the state when it was taken.
struct RocksSnapshot<'a> {
    engine: &'a RocksEngine,
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl KvSnapshot for RocksSnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.engine.counted_get(|| self.snap.get(key))
    }

    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>> {
        Ok(scan_iter(bounded(&range).map(|opts| self.snap.raw_iterator_opt(opts)), order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(sync_writes: bool) -> RocksOptions {
        RocksOptions {
            memtable_bytes: 256 << 10,
            block_cache_bytes: 4 << 20,
            l1_bytes: 1 << 20,
            target_file_bytes: 256 << 10,
            sync_writes,
            ..RocksOptions::default()
        }
    }

    fn tagged(key: &[u8], tag: u64) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(key, b"v").set_tag(tag);
        b
    }

    #[test]
    fn durable_seq_with_and_without_sync() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = RocksEngine::open(dir.path(), small(false)).unwrap();
            assert_eq!(e.durable_seq(), 0);
            for tag in 1..=10 {
                e.write(tagged(format!("k{tag}").as_bytes(), tag)).unwrap();
            }
            assert_eq!(e.durable_seq(), 0, "unsynced tags wait for a flush");
            e.flush().unwrap();
            assert_eq!(e.durable_seq(), 10);
            e.write(tagged(b"k11", 11)).unwrap();
            let mut untagged = WriteBatch::new();
            untagged.put(b"k12", b"v");
            e.write(untagged).unwrap();
            assert_eq!(e.durable_seq(), 10);
        }
        {
            let e = RocksEngine::open(dir.path(), small(true)).unwrap();
            assert_eq!(e.durable_seq(), 11, "a reopen reports the recovered tag");
            e.write(tagged(b"k13", 13)).unwrap();
            assert_eq!(e.durable_seq(), 13, "a synced tag is durable at once");
            let mut only_tag = WriteBatch::new();
            only_tag.set_tag(14);
            e.write(only_tag).unwrap();
            assert_eq!(e.durable_seq(), 14, "a batch may carry only a tag");
            let keys: Vec<_> = e.scan(KeyRange::all(), Order::Forward).unwrap().map(|kv| kv.unwrap().0).collect();
            assert_eq!(keys.len(), 13, "the tag is not a user key: {keys:?}");
            e.compact().unwrap();
        }
        let e = RocksEngine::open(dir.path(), small(false)).unwrap();
        assert_eq!(e.durable_seq(), 14);
    }

    #[test]
    fn stats_are_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open(dir.path(), small(false)).unwrap();
        let key = |i: u64| format!("key{:08}", i * 2).into_bytes();
        let value = |i: u64| vec![b'a' + (i % 26) as u8; 100];
        const N: u64 = 20_000;
        // A scattered order, so that flushed tables overlap and compactions
        // merge rather than move files.
        let order: Vec<u64> = (0..N).map(|i| i * 7919 % N).collect();
        let mut user = 0;
        for chunk in order.chunks(100) {
            let mut b = WriteBatch::new();
            for &i in chunk {
                b.put(key(i), value(i));
            }
            user += b.user_bytes();
            e.write(b).unwrap();
        }
        e.flush().unwrap();
        let s = e.stats();
        assert_eq!(s.user_bytes_written, user);
        assert!(s.log_bytes_written >= user, "{s:?}");
        assert!(s.flush_bytes_written > 0, "{s:?}");
        e.compact().unwrap();
        let s = e.stats();
        assert!(s.compaction_bytes_written.iter().sum::<u64>() > 0 && s.compaction_bytes_written[0] == 0, "{s:?}");
        assert!(s.write_amplification() >= 1.0, "{s:?}");
        assert!(s.files_per_level[1..].iter().sum::<u64>() >= 1 && s.files_per_level[0] == 0, "{s:?}");
        let on_levels: u64 = s.bytes_per_level.iter().sum();
        assert!(on_levels > 0 && s.disk_bytes >= on_levels, "{s:?}");

        for i in (0..N).step_by(97) {
            assert_eq!(e.get(&key(i)).unwrap(), Some(value(i)));
        }
        let hits = e.stats();
        let gets = (0..N).step_by(97).count() as u64;
        assert_eq!(hits.point_gets, gets);
        assert!(hits.point_get_blocks >= gets, "every flushed key costs a data block: {hits:?}");
        assert!(hits.read_amplification() < 2.0, "one table per key after compaction: {hits:?}");
        assert!(hits.block_cache_hits + hits.blocks_read >= gets && hits.bytes_read > 0, "{hits:?}");

        // Odd keys fall inside the table's range but are absent.
        for i in (0..N).step_by(89) {
            assert_eq!(e.get(format!("key{:08}", i * 2 + 1).as_bytes()).unwrap(), None);
        }
        let misses = e.stats();
        assert!(misses.bloom_useful > 0 && misses.bloom_checks >= misses.bloom_useful, "{misses:?}");
        assert!(misses.point_get_blocks - hits.point_get_blocks < misses.bloom_useful, "the filter saved reads");

        let mut b = WriteBatch::new();
        b.put(b"fresh", b"in the memtable");
        e.write(b).unwrap();
        let before = e.stats().point_get_blocks;
        assert!(e.get(b"fresh").unwrap().is_some());
        assert_eq!(e.stats().point_get_blocks, before, "a memtable hit touches no block");
        let snap = e.snapshot().unwrap();
        assert_eq!(snap.get(&key(3)).unwrap(), Some(value(3)));
        assert!(e.stats().point_get_blocks > before, "snapshot gets count too");
    }

    #[test]
    fn options_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let bad = RocksOptions { level_ratio: 1, ..RocksOptions::default() };
        assert!(matches!(RocksEngine::open(dir.path(), bad), Err(StorageError::InvalidArgument(_))));
        let bad = RocksOptions { memtable_bytes: 0, ..RocksOptions::default() };
        assert!(matches!(RocksEngine::open(dir.path(), bad), Err(StorageError::InvalidArgument(_))));
        let e = RocksEngine::open(dir.path(), RocksOptions { compression: true, ..small(false) }).unwrap();
        // Debian's librocksdb links zstd.
        assert_eq!(e.compression(), "zstd");
        let mut b = WriteBatch::new();
        b.put(b"k", vec![7u8; 10_000]);
        e.write(b).unwrap();
        e.flush().unwrap();
        assert_eq!(e.get(b"k").unwrap(), Some(vec![7u8; 10_000]));
        assert_eq!(e.name(), "rocksdb");
        drop(e);
        let e = RocksEngine::open(dir.path(), small(false)).unwrap();
        assert_eq!((e.compression(), e.get(b"k").unwrap().map(|v| v.len())), ("none", Some(10_000)));
        let mut b = WriteBatch::new();
        b.delete(b"k");
        e.write(b).unwrap();
        e.compact().unwrap();
        assert_eq!(e.stats().files_per_level.iter().sum::<u64>(), 0, "the tombstone went with the value");
        assert!(unsupported_compression("Invalid argument: Compression type ZSTD is not linked with the binary."));
        let file = dir.path().join("CURRENT");
        let err = RocksEngine::open(&file, small(false)).unwrap_err();
        assert!(matches!(err, StorageError::External { engine: "rocksdb", .. }), "{err}");
    }
}

//! The LSM engine: a memtable, SSTables in levels, and background flushes and
//! compactions.
//!
//! # Structure
//!
//! * Writes get consecutive sequence numbers, go to the engine's log (if it
//!   has one: strata-wal, group commit) and into the active [`memtable`] (a
//!   concurrent skiplist). A batch becomes visible to readers all at once,
//!   and only after every earlier batch.
//! * A full memtable turns immutable and a background thread flushes it to a
//!   level-0 table (minor compaction). Level 0 holds overlapping flushes;
//!   levels 1..n are sorted runs whose size budgets grow by `level_ratio`.
//!   A background compaction thread merges a level over its budget into the
//!   next (merge compaction), keeping only the newest version of each key and
//!   dropping tombstones at the bottom. [`LsmEngine::compact`] merges every
//!   level into the last (major compaction).
//! * Readers pin a *super version* (the memtables and the table set) and read
//!   at the visible sequence number; a pinned view never changes, so scans
//!   and snapshots are consistent, and compactions never block them.
//! * The table set changes by version edits appended to the manifest
//!   ([`manifest`]); recovery replays the manifest, deletes orphan files and
//!   replays the engine log after the last flushed entry.
//!
//! Formats: [`table`] (SSTables), [`block`] (data and index blocks), [`bloom`]
//! (filters), [`version`] (edits), [`manifest`] (the edit log), [`key`]
//! (internal keys).
//!
//! # Durability
//!
//! With a log, a write is durable when its log record is (the log's
//! [`SyncPolicy`]); `durable_seq` is the highest tag whose record is synced.
//! Without a log (the server's mode: its own log is the Raft log), a write is
//! durable once its memtable is flushed; `durable_seq` is the highest tag in
//! a flushed table. Either way, a background I/O error poisons the engine:
//! every later call returns it, and nothing half-written is used.

mod background;
pub(crate) mod block;
pub(crate) mod bloom;
pub(crate) mod cache;
mod compaction;
mod engine;
pub(crate) mod iter;
pub(crate) mod key;
mod levels;
pub(crate) mod manifest;
pub(crate) mod memtable;
mod open;
mod skiplist;
pub(crate) mod table;
pub(crate) mod version;

pub use engine::LsmEngine;
pub use strata_wal::SyncPolicy;

use crate::error::{Result, StorageError};

/// How an LSM engine is configured.
#[derive(Debug, Clone)]
pub struct LsmOptions {
    /// A memtable turns immutable and is flushed at this size.
    pub memtable_bytes: usize,
    /// Immutable memtables waiting for a flush before writes stop.
    pub max_immutable_memtables: usize,
    /// Target size of a data block.
    pub block_bytes: usize,
    /// Bytes of the block cache.
    pub block_cache_bytes: u64,
    /// Bloom filter bits per key (0 disables the filters' benefit).
    pub bloom_bits_per_key: u32,
    /// zstd level for data blocks, or no compression.
    pub zstd_level: Option<i32>,
    /// Level-0 files that trigger a compaction into level 1.
    pub l0_compaction_trigger: usize,
    /// Level-0 files past which each write is delayed.
    pub l0_slowdown_trigger: usize,
    /// Level-0 files past which writes wait for compaction.
    pub l0_stop_trigger: usize,
    /// Size budget of level 1; level n+1's is `level_ratio` times level n's.
    pub l1_bytes: u64,
    /// Size ratio between adjacent levels.
    pub level_ratio: u64,
    /// Compaction output files are cut at this size.
    pub target_file_bytes: u64,
    /// Number of levels, level 0 included.
    pub levels: usize,
    /// Open tables kept in the table cache.
    pub max_open_tables: usize,
    /// The engine's own log and its sync policy; `None` for engines whose
    /// writes are logged elsewhere (the server's Raft log).
    pub log: Option<SyncPolicy>,
    /// Segment size (and preallocation step) of the engine's log.
    pub log_segment_bytes: u64,
}

impl Default for LsmOptions {
    fn default() -> Self {
        LsmOptions {
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 2,
            block_bytes: 4096,
            block_cache_bytes: 256 << 20,
            bloom_bits_per_key: 10,
            zstd_level: None,
            l0_compaction_trigger: 4,
            // RocksDB's defaults: a deeper level 0 batches more data into each
            // level-1 compaction, which lowers write amplification.
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            l1_bytes: 256 << 20,
            level_ratio: 10,
            target_file_bytes: 64 << 20,
            levels: 7,
            max_open_tables: 1000,
            log: Some(SyncPolicy::Always),
            log_segment_bytes: 64 << 20,
        }
    }
}

impl LsmOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(StorageError::InvalidArgument(format!("LsmOptions: {m}")));
        if self.memtable_bytes < 4096 || self.block_bytes < 64 || self.target_file_bytes < 4096 {
            return bad("memtable_bytes, block_bytes and target_file_bytes are too small");
        }
        if !(2..=32).contains(&self.levels) {
            return bad("levels must be between 2 and 32");
        }
        if self.level_ratio < 2 || self.l1_bytes == 0 {
            return bad("level_ratio must be at least 2 and l1_bytes positive");
        }
        if self.l0_compaction_trigger == 0
            || self.l0_slowdown_trigger < self.l0_compaction_trigger
            || self.l0_stop_trigger < self.l0_slowdown_trigger
        {
            return bad("level-0 triggers must satisfy 0 < compaction <= slowdown <= stop");
        }
        if self.max_immutable_memtables == 0 || self.max_open_tables == 0 {
            return bad("max_immutable_memtables and max_open_tables must be positive");
        }
        Ok(())
    }

    /// The size budget of `level` (>= 1).
    pub(crate) fn level_budget(&self, level: usize) -> u64 {
        let mut b = self.l1_bytes;
        for _ in 1..level {
            b = b.saturating_mul(self.level_ratio);
        }
        b
    }
}

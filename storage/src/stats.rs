//! `EngineStats`: the counters every engine reports, and the amplification
//! factors computed from them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the engine was opened (sizes are current).
///
/// * write amplification = bytes the engine wrote to files / user bytes written
/// * read amplification  = data blocks (or pages) read per point get, from the
///   cache or from a file: what a get costs beyond the one block it needs
/// * space amplification = bytes on disk / live user bytes
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    /// Key and value bytes of the batches written.
    pub user_bytes_written: u64,
    /// Bytes appended to the engine's own log.
    pub log_bytes_written: u64,
    /// Bytes written by flushes of memory to files.
    pub flush_bytes_written: u64,
    /// Bytes written by compactions, by the level they wrote to.
    pub compaction_bytes_written: Vec<u64>,
    /// Other file bytes: manifests, metadata, page-file headers.
    pub other_bytes_written: u64,
    /// Bytes read from files (cache misses).
    pub bytes_read: u64,
    /// Blocks (pages) read from files (cache misses).
    pub blocks_read: u64,
    /// Blocks (pages) served by the block cache.
    pub block_cache_hits: u64,
    /// Point gets served.
    pub point_gets: u64,
    /// Data blocks (pages) a point get touched, from the cache or a file,
    /// summed over all gets.
    pub point_get_blocks: u64,
    /// Bloom filter probes.
    pub bloom_checks: u64,
    /// Probes that ruled a table out (saved a block read).
    pub bloom_useful: u64,
    /// Bytes of the engine's files on disk.
    pub disk_bytes: u64,
    /// Files per level (LSM), or [pages in use, free pages] (B+tree).
    pub files_per_level: Vec<u64>,
    /// Bytes per level (LSM).
    pub bytes_per_level: Vec<u64>,
    /// Writes delayed by back-pressure.
    pub write_slowdowns: u64,
    /// Writes stopped by back-pressure until background work caught up.
    pub write_stops: u64,
}

impl EngineStats {
    /// Every byte the engine wrote to files.
    pub fn bytes_written(&self) -> u64 {
        self.log_bytes_written
            + self.flush_bytes_written
            + self.compaction_bytes_written.iter().sum::<u64>()
            + self.other_bytes_written
    }

    /// Bytes written to files per user byte written.
    pub fn write_amplification(&self) -> f64 {
        ratio(self.bytes_written(), self.user_bytes_written)
    }

    /// Data blocks (pages) touched per point get.
    pub fn read_amplification(&self) -> f64 {
        ratio(self.point_get_blocks, self.point_gets)
    }

    /// Bytes on disk per live user byte.
    pub fn space_amplification(&self, live_bytes: u64) -> f64 {
        ratio(self.disk_bytes, live_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A relaxed counter, for engines to keep their stats in.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

//! The block cache and the read counters tables report to.
//!
//! The block cache is `quick_cache`'s sharded cache, bounded in bytes. Its
//! policy is S3-FIFO rather than LRU: as good a hit rate for point reads, and
//! a one-pass scan cannot flush the hot set.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::lsm::block::Block;
use crate::stats::Counter;

/// Blocks by (table id, block offset).
pub(crate) type BlockCache = Cache<(u64, u64), Arc<Block>, BlockWeighter>;

#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockWeighter;

impl Weighter<(u64, u64), Arc<Block>> for BlockWeighter {
    fn weight(&self, _key: &(u64, u64), block: &Arc<Block>) -> u64 {
        // The block's bytes plus the cache's own bookkeeping.
        block.size() as u64 + 64
    }
}

/// A block cache bounded to `bytes`.
pub(crate) fn block_cache(bytes: u64) -> BlockCache {
    let estimated_blocks = (bytes / 4096).max(16) as usize;
    Cache::with_weighter(estimated_blocks, bytes.max(1), BlockWeighter)
}

/// Read-side counters, shared by every table of an engine.
#[derive(Debug, Default)]
pub(crate) struct ReadCounters {
    pub bytes_read: Counter,
    pub blocks_read: Counter,
    pub cache_hits: Counter,
    pub point_gets: Counter,
    pub point_get_blocks: Counter,
    pub bloom_checks: Counter,
    pub bloom_useful: Counter,
}

/// What a table needs to read blocks.
#[derive(Debug)]
pub(crate) struct ReadCtx {
    pub cache: BlockCache,
    pub counters: ReadCounters,
}

//! The `KvEngine` trait: what the server, snapshots, tools and benches see of
//! an engine.

use std::ops::Bound;

use crate::batch::WriteBatch;
use crate::error::Result;
use crate::stats::EngineStats;

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// An ordered stream of key/value pairs; stops after the first error.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + Send + 'a>;

/// The order of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending keys.
    Forward,
    /// Descending keys.
    Reverse,
}

/// A range of keys (bytewise order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Lower bound.
    pub start: Bound<Vec<u8>>,
    /// Upper bound.
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange { start: Bound::Unbounded, end: Bound::Unbounded }
    }

    /// `start <= key < end`.
    pub fn between(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> KeyRange {
        KeyRange { start: Bound::Included(start.into()), end: Bound::Excluded(end.into()) }
    }

    /// `key >= start`.
    pub fn from(start: impl Into<Vec<u8>>) -> KeyRange {
        KeyRange { start: Bound::Included(start.into()), end: Bound::Unbounded }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        let end = prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        KeyRange { start: Bound::Included(prefix.to_vec()), end }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.after_start(key) && self.before_end(key)
    }

    /// Whether `key` is not below the start.
    pub fn after_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// Whether `key` is not above the end.
    pub fn before_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// The range as borrowed bounds (for `BTreeMap::range` and friends).
    pub fn as_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_ref(&self.start), as_ref(&self.end))
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A consistent, read-only view of an engine at one moment.
pub trait KvSnapshot: Send + Sync {
    /// The value of `key` in this view.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The pairs of `range` in this view, in `order`.
    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>>;
}

/// An ordered key-value engine: the storage under the server.
///
/// Engines are `Send + Sync`: reads and scans run concurrently with writes,
/// and every scan sees one consistent view (a write batch is either wholly in
/// it or not at all).
pub trait KvEngine: Send + Sync {
    /// A short name: `lsm`, `btree`, `rocksdb`, `memory`.
    fn name(&self) -> &'static str;

    /// The value of `key`, if present.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Applies a batch atomically. Its tag, if any, becomes `durable_seq`
    /// once the batch is on disk.
    fn write(&self, batch: WriteBatch) -> Result<()>;

    /// The pairs of `range` in `order`, from one consistent view taken when
    /// the scan starts.
    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>>;

    /// Pins the current state for reads.
    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>>;

    /// Makes every write so far durable in the engine's files (for an LSM:
    /// flushes the memtable).
    fn flush(&self) -> Result<()>;

    /// Major compaction: rewrites the data to drop deleted and overwritten
    /// entries, bringing space amplification to its minimum.
    fn compact(&self) -> Result<()>;

    /// The highest batch tag guaranteed to be on disk (0 if none): after a
    /// crash, every batch with a tag up to this survives.
    fn durable_seq(&self) -> u64;

    /// Counters for amplification and monitoring.
    fn stats(&self) -> EngineStats;

    /// Key and value bytes of the live data (the denominator of space
    /// amplification). The default scans everything.
    fn live_bytes(&self) -> Result<u64> {
        let mut total = 0u64;
        for kv in self.scan(KeyRange::all(), Order::Forward)? {
            let (k, v) = kv?;
            total += (k.len() + v.len()) as u64;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        let r = KeyRange::prefix(b"ab");
        assert!(r.contains(b"ab") && r.contains(b"ab\xff\xff") && !r.contains(b"ac") && !r.contains(b"aa"));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert!(KeyRange::prefix(b"\xff").contains(b"\xff\xff\x00"));
    }
}

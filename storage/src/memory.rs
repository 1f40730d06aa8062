//! The memory engine: an ordered map behind a lock.
//!
//! It is the reference the other engines are tested against, and ZooKeeper's
//! classic in-memory mode in the server (restart = newest snapshot + log
//! replay, so nothing here is durable and `durable_seq` stays 0).
//!
//! The map is a persistent B-tree (`imbl::OrdMap`) of reference-counted
//! byte strings: a write mutates in place while no view is open, and a scan or
//! snapshot takes an O(1) clone of the root and reads it without holding the
//! lock, so readers never block writers and always see one consistent state.

use std::collections::VecDeque;
use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;
use parking_lot::RwLock;

use crate::batch::{BatchOp, WriteBatch};
use crate::engine::{KeyRange, KvEngine, KvIter, KvPair, KvSnapshot, Order};
use crate::error::Result;
use crate::stats::{Counter, EngineStats};

type Map = OrdMap<Bytes, Bytes>;

/// Pairs a scan copies out of the map in its first step; each later step
/// copies twice as many, up to `MAX_SCAN_CHUNK`, so that short scans copy
/// little and long ones seek rarely.
const FIRST_SCAN_CHUNK: usize = 16;
const MAX_SCAN_CHUNK: usize = 4096;

/// An ordered map behind a lock; nothing is persisted.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    state: RwLock<State>,
    user_bytes: Counter,
    gets: Counter,
}

#[derive(Debug, Default)]
struct State {
    map: Map,
    live_bytes: u64,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.state.read().map.len()
    }

    /// Whether the engine holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KvEngine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.gets.add(1);
        Ok(self.state.read().map.get(key).map(|v| v.to_vec()))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.user_bytes.add(batch.user_bytes());
        let mut s = self.state.write();
        for op in batch.iter() {
            let old = match op {
                BatchOp::Put(k, v) => s.map.insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)),
                BatchOp::Delete(k) => s.map.remove(k),
            };
            if let Some(old) = old {
                s.live_bytes -= (op.key().len() + old.len()) as u64;
            }
            if let BatchOp::Put(k, v) = op {
                s.live_bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok(())
    }

    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>> {
        let map = self.state.read().map.clone();
        Ok(Box::new(MapScan::new(map, range, order)))
    }

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>> {
        Ok(Box::new(MapSnapshot(self.state.read().map.clone())))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn compact(&self) -> Result<()> {
        Ok(())
    }

    fn durable_seq(&self) -> u64 {
        0
    }

    fn stats(&self) -> EngineStats {
        EngineStats { user_bytes_written: self.user_bytes.get(), point_gets: self.gets.get(), ..EngineStats::default() }
    }

    fn live_bytes(&self) -> Result<u64> {
        Ok(self.state.read().live_bytes)
    }
}

struct MapSnapshot(Map);

impl KvSnapshot for MapSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).map(|v| v.to_vec()))
    }

    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>> {
        Ok(Box::new(MapScan::new(self.0.clone(), range, order)))
    }
}

/// A scan over a frozen map, copying out a chunk at a time (the map cannot
/// lend an iterator that outlives a borrow of it).
struct MapScan {
    map: Map,
    range: KeyRange,
    order: Order,
    buffered: VecDeque<KvPair>,
    chunk: usize,
    done: bool,
}

impl MapScan {
    fn new(map: Map, range: KeyRange, order: Order) -> MapScan {
        MapScan { map, range, order, buffered: VecDeque::new(), chunk: FIRST_SCAN_CHUNK, done: false }
    }

    fn fill(&mut self) {
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = self.range.as_bounds();
        let it = self.map.range::<_, [u8]>(bounds);
        let n = self.chunk;
        self.chunk = (n * 2).min(MAX_SCAN_CHUNK);
        let chunk: Vec<KvPair> = match self.order {
            Order::Forward => it.take(n).map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            Order::Reverse => it.rev().take(n).map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        };
        self.done = chunk.len() < n;
        if let Some((last, _)) = chunk.last() {
            match self.order {
                Order::Forward => self.range.start = Bound::Excluded(last.clone()),
                Order::Reverse => self.range.end = Bound::Excluded(last.clone()),
            }
        }
        self.buffered.extend(chunk);
    }
}

impl Iterator for MapScan {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Result<KvPair>> {
        if self.buffered.is_empty() && !self.done {
            self.fill();
        }
        self.buffered.pop_front().map(Ok)
    }
}

//! The memtable: a concurrent skiplist of internal keys.
//!
//! Each entry keeps its internal key and value in one allocation. Readers
//! never lock: they see entries with sequence numbers up to their read
//! sequence, and the write path publishes a batch's sequence numbers only once
//! the whole batch is in.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::error::Result;
use crate::lsm::iter::{Dir, InternalIterator};
use crate::lsm::key::{self, Kind};

/// Per-entry bookkeeping of the skiplist, counted against the memtable size.
const ENTRY_OVERHEAD: usize = 64;
/// Entries a memtable iterator copies (as cheap handles) per step.
const CHUNK: usize = 64;

/// An internal key and its value in one buffer, ordered by the internal key.
#[derive(Clone, Debug)]
pub(crate) struct MemEntry {
    data: Bytes,
    key_len: u32,
}

impl MemEntry {
    fn new(user: &[u8], seq: u64, kind: Kind, value: &[u8]) -> MemEntry {
        let mut data = Vec::with_capacity(user.len() + key::TRAILER_LEN + value.len());
        key::encode_into(&mut data, user, seq, kind);
        let key_len = data.len() as u32;
        data.extend_from_slice(value);
        MemEntry { data: Bytes::from(data), key_len }
    }

    fn probe(ikey: Vec<u8>) -> MemEntry {
        let key_len = ikey.len() as u32;
        MemEntry { data: Bytes::from(ikey), key_len }
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }
}

impl PartialEq for MemEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for MemEntry {}
impl PartialOrd for MemEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MemEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        key::compare(self.key(), other.key())
    }
}

/// One memtable.
#[derive(Debug)]
pub(crate) struct Memtable {
    map: SkipMap<MemEntry, ()>,
    bytes: AtomicUsize,
    /// Highest sequence number inserted.
    max_seq: AtomicU64,
    /// Highest batch tag inserted (0 if none).
    max_tag: AtomicU64,
    /// Highest engine-log index whose batch is in this memtable (0 if none).
    last_log_index: AtomicU64,
}

impl Memtable {
    pub(crate) fn new() -> Memtable {
        Memtable {
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            max_tag: AtomicU64::new(0),
            last_log_index: AtomicU64::new(0),
        }
    }

    pub(crate) fn insert(&self, user: &[u8], seq: u64, kind: Kind, value: &[u8]) {
        let e = MemEntry::new(user, seq, kind, value);
        self.bytes.fetch_add(e.data.len() + ENTRY_OVERHEAD, AtomicOrdering::Relaxed);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
        self.map.insert(e, ());
    }

    /// Records what a batch inserted beyond its entries.
    pub(crate) fn note_batch(&self, tag: Option<u64>, log_index: Option<u64>) {
        if let Some(t) = tag {
            self.max_tag.fetch_max(t, AtomicOrdering::Relaxed);
        }
        if let Some(i) = log_index {
            self.last_log_index.fetch_max(i, AtomicOrdering::Relaxed);
        }
    }

    pub(crate) fn approximate_bytes(&self) -> usize {
        self.bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn max_seq(&self) -> u64 {
        self.max_seq.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn max_tag(&self) -> u64 {
        self.max_tag.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn last_log_index(&self) -> u64 {
        self.last_log_index.load(AtomicOrdering::Relaxed)
    }

    /// The newest version of `user` visible at `read_seq`, if this memtable
    /// has one.
    pub(crate) fn get(&self, user: &[u8], read_seq: u64) -> Option<(Kind, Vec<u8>)> {
        let probe = MemEntry::probe(key::seek_key(user, read_seq));
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let e = entry.key();
        if key::user_key(e.key()) != user {
            return None;
        }
        let kind = Kind::from_u8(key::kind_byte(e.key())).expect("memtable entries have known kinds");
        Some((kind, e.value().to_vec()))
    }

    /// Visits every entry in order (for a flush).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        for entry in self.map.iter() {
            let e = entry.key();
            f(e.key(), e.value())?;
        }
        Ok(())
    }

    /// An iterator from `target` in `dir` (see [`InternalIterator`]).
    pub(crate) fn iter(self: &Arc<Self>, dir: Dir, target: Option<&[u8]>) -> MemIter {
        let bound = match target {
            None => Bound::Unbounded,
            Some(t) => Bound::Included(MemEntry::probe(t.to_vec())),
        };
        let mut it = MemIter { mem: self.clone(), dir, bound, buffered: VecDeque::new(), exhausted: false };
        it.fill();
        it
    }
}

/// Walks a memtable a chunk at a time (a skiplist iterator borrows the map,
/// so the chunk holds cheap handles to entries instead).
pub(crate) struct MemIter {
    mem: Arc<Memtable>,
    dir: Dir,
    /// Where the next chunk starts.
    bound: Bound<MemEntry>,
    buffered: VecDeque<MemEntry>,
    exhausted: bool,
}

impl MemIter {
    fn fill(&mut self) {
        let chunk: Vec<MemEntry> = match self.dir {
            Dir::Forward => self
                .mem
                .map
                .range((self.bound.clone(), Bound::Unbounded))
                .take(CHUNK)
                .map(|e| e.key().clone())
                .collect(),
            Dir::Reverse => self
                .mem
                .map
                .range((Bound::Unbounded, self.bound.clone()))
                .rev()
                .take(CHUNK)
                .map(|e| e.key().clone())
                .collect(),
        };
        self.exhausted = chunk.len() < CHUNK;
        if let Some(last) = chunk.last() {
            self.bound = Bound::Excluded(last.clone());
        }
        self.buffered.extend(chunk);
    }
}

impl InternalIterator for MemIter {
    fn valid(&self) -> bool {
        !self.buffered.is_empty()
    }

    fn key(&self) -> &[u8] {
        self.buffered[0].key()
    }

    fn value(&self) -> &[u8] {
        self.buffered[0].value()
    }

    fn advance(&mut self) {
        self.buffered.pop_front();
        if self.buffered.is_empty() && !self.exhausted {
            self.fill();
        }
    }

    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_iteration() {
        let m = Arc::new(Memtable::new());
        for i in 0..200u64 {
            m.insert(format!("k{:04}", i % 100).as_bytes(), i + 1, Kind::Put, format!("v{i}").as_bytes());
        }
        m.insert(b"k0005", 500, Kind::Delete, b"");
        assert_eq!(m.get(b"k0005", 1000).map(|g| g.0), Some(Kind::Delete));
        assert_eq!(m.get(b"k0005", 499), Some((Kind::Put, b"v105".to_vec())));
        assert_eq!(m.get(b"k0005", 100), Some((Kind::Put, b"v5".to_vec())));
        assert_eq!(m.get(b"k0005", 5), None);
        assert_eq!(m.get(b"k0100", 1000), None);
        let mut it = m.iter(Dir::Forward, None);
        let mut n = 0;
        let mut last: Option<Vec<u8>> = None;
        while it.valid() {
            if let Some(l) = &last {
                assert_eq!(key::compare(l, it.key()), Ordering::Less);
            }
            last = Some(it.key().to_vec());
            it.advance();
            n += 1;
        }
        assert_eq!(n, 201);
        let mut it = m.iter(Dir::Reverse, Some(&key::encode(b"k0001", 0, Kind::Delete)));
        let mut seen = Vec::new();
        while it.valid() {
            seen.push(String::from_utf8(key::user_key(it.key()).to_vec()).unwrap());
            it.advance();
        }
        assert_eq!(seen, vec!["k0001", "k0001", "k0000", "k0000"]);
    }
}

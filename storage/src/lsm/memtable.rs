//! The memtable: an arena skiplist of internal keys (see `skiplist`).
//!
//! Readers never lock: they see entries with sequence numbers up to their read
//! sequence, and the write path publishes a batch's sequence numbers only once
//! the whole batch is in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use crate::error::Result;
use crate::lsm::iter::{Dir, InternalIterator};
use crate::lsm::key::{self, Kind};
use crate::lsm::skiplist::{NodeRef, SkipList};

/// One memtable.
#[derive(Debug)]
pub(crate) struct Memtable {
    list: SkipList,
    /// Highest sequence number inserted.
    max_seq: AtomicU64,
    /// Highest batch tag inserted (0 if none).
    max_tag: AtomicU64,
    /// Highest engine-log index whose batch is in this memtable (0 if none).
    last_log_index: AtomicU64,
}

impl Memtable {
    /// A memtable that will be switched out at about `budget` bytes.
    pub(crate) fn new(budget: usize) -> Memtable {
        Memtable {
            list: SkipList::new(key::compare, budget),
            max_seq: AtomicU64::new(0),
            max_tag: AtomicU64::new(0),
            last_log_index: AtomicU64::new(0),
        }
    }

    pub(crate) fn insert(&self, user: &[u8], seq: u64, kind: Kind, value: &[u8]) {
        let trailer = key::pack(seq, kind as u8).to_le_bytes();
        self.list.insert(&[user, &trailer], value);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
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

    /// Memory the memtable holds (its arena).
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.list.allocated_bytes()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.len() == 0
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
        let node = self.list.seek(&key::seek_key(user, read_seq))?;
        let k = self.list.key(node);
        if key::user_key(k) != user {
            return None;
        }
        let kind = Kind::from_u8(key::kind_byte(k)).expect("memtable entries have known kinds");
        Some((kind, self.list.value(node).to_vec()))
    }

    /// Visits every entry in order (for a flush).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        let mut n = self.list.first();
        while let Some(node) = n {
            f(self.list.key(node), self.list.value(node))?;
            n = self.list.next_node(node);
        }
        Ok(())
    }

    /// An iterator from `target` in `dir` (see [`InternalIterator`]).
    pub(crate) fn iter(self: &Arc<Self>, dir: Dir, target: Option<&[u8]>) -> MemIter {
        let node = match (dir, target) {
            (Dir::Forward, None) => self.list.first(),
            (Dir::Forward, Some(t)) => self.list.seek(t),
            (Dir::Reverse, None) => self.list.last(),
            (Dir::Reverse, Some(t)) => self.list.seek_for_prev(t),
        };
        MemIter { mem: self.clone(), dir, node }
    }
}

/// A cursor over a memtable; it keeps the memtable alive.
pub(crate) struct MemIter {
    mem: Arc<Memtable>,
    dir: Dir,
    node: Option<NodeRef>,
}

impl InternalIterator for MemIter {
    fn valid(&self) -> bool {
        self.node.is_some()
    }

    fn key(&self) -> &[u8] {
        self.mem.list.key(self.node.expect("valid"))
    }

    fn value(&self) -> &[u8] {
        self.mem.list.value(self.node.expect("valid"))
    }

    fn advance(&mut self) {
        let node = self.node.expect("valid");
        self.node = match self.dir {
            Dir::Forward => self.mem.list.next_node(node),
            Dir::Reverse => self.mem.list.prev_node(node),
        };
    }

    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn versions_and_iteration() {
        let m = Arc::new(Memtable::new(1 << 20));
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

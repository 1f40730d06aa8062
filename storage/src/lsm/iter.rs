//! Iterators: the internal-key iterator interface, the merge of many sources,
//! and the user-facing iterator that applies a read sequence and a range.
//!
//! Every iterator runs in one direction fixed at creation (forward from the
//! first entry >= a target, or reverse from the last entry <= a target), which
//! keeps the merge free of direction switches.

use std::cmp::Ordering;

use crate::engine::{KeyRange, KvPair, Order};
use crate::error::{Result, StorageError};
use crate::lsm::key::{self, Kind};

/// Direction of an iterator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Forward,
    Reverse,
}

impl From<Order> for Dir {
    fn from(o: Order) -> Dir {
        match o {
            Order::Forward => Dir::Forward,
            Order::Reverse => Dir::Reverse,
        }
    }
}

/// A positioned cursor over internal keys.
pub(crate) trait InternalIterator: Send {
    fn valid(&self) -> bool;
    /// The current internal key (only while valid).
    fn key(&self) -> &[u8];
    /// The current value (only while valid).
    fn value(&self) -> &[u8];
    /// Moves one entry in the iterator's direction.
    fn advance(&mut self);
    /// The error that stopped the iterator, if any.
    fn status(&self) -> Result<()>;
}

/// Merges sources whose internal keys are disjoint into one ordered stream.
pub(crate) struct MergeIter {
    children: Vec<Box<dyn InternalIterator>>,
    dir: Dir,
    /// Indexes of valid children, as a binary heap on their current key
    /// (smallest first going forward, largest first in reverse).
    heap: Vec<usize>,
}

impl MergeIter {
    pub(crate) fn new(children: Vec<Box<dyn InternalIterator>>, dir: Dir) -> MergeIter {
        let heap = (0..children.len()).filter(|&i| children[i].valid()).collect();
        let mut m = MergeIter { children, dir, heap };
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        m
    }

    /// Whether heap slot `a` should come before slot `b`.
    fn before(&self, a: usize, b: usize) -> bool {
        let ord = key::compare(self.children[self.heap[a]].key(), self.children[self.heap[b]].key());
        match self.dir {
            Dir::Forward => ord == Ordering::Less,
            Dir::Reverse => ord == Ordering::Greater,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if l < self.heap.len() && self.before(l, best) {
                best = l;
            }
            if r < self.heap.len() && self.before(r, best) {
                best = r;
            }
            if best == i {
                return;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }
}

impl InternalIterator for MergeIter {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn key(&self) -> &[u8] {
        self.children[self.heap[0]].key()
    }

    fn value(&self) -> &[u8] {
        self.children[self.heap[0]].value()
    }

    fn advance(&mut self) {
        let top = self.heap[0];
        self.children[top].advance();
        if !self.children[top].valid() {
            let last = self.heap.pop().expect("non-empty");
            if self.heap.is_empty() {
                return;
            }
            self.heap[0] = last;
        }
        self.sift_down(0);
    }

    fn status(&self) -> Result<()> {
        self.children.iter().try_for_each(|c| c.status())
    }
}

/// The user's view: the newest visible version of each key in the range,
/// without tombstones, in the requested order.
pub(crate) struct UserIter<I: InternalIterator> {
    inner: I,
    read_seq: u64,
    range: KeyRange,
    dir: Dir,
    last_user: Option<Vec<u8>>,
    done: bool,
    /// Keeps views (versions, memtables) alive while the iterator runs.
    _pins: Box<dyn Send + Sync>,
}

impl<I: InternalIterator> UserIter<I> {
    /// `inner` must already be positioned by [`start_target`] of the range.
    pub(crate) fn new(inner: I, read_seq: u64, range: KeyRange, dir: Dir, pins: Box<dyn Send + Sync>) -> Self {
        UserIter { inner, read_seq, range, dir, last_user: None, done: false, _pins: pins }
    }

    fn finish(&mut self) -> Option<Result<KvPair>> {
        self.done = true;
        self.inner.status().err().map(Err)
    }

    fn next_forward(&mut self) -> Option<Result<KvPair>> {
        loop {
            if !self.inner.valid() {
                return self.finish();
            }
            let k = self.inner.key();
            let user = key::user_key(k);
            if !self.range.before_end(user) {
                return self.finish();
            }
            let skip =
                key::seq(k) > self.read_seq || !self.range.after_start(user) || self.last_user.as_deref() == Some(user);
            if skip {
                self.inner.advance();
                continue;
            }
            self.last_user = Some(user.to_vec());
            let out = match Kind::from_u8(key::kind_byte(k)) {
                Some(Kind::Put) => Some((user.to_vec(), self.inner.value().to_vec())),
                Some(Kind::Delete) => None,
                None => return Some(Err(corrupt_kind())),
            };
            self.inner.advance();
            if let Some(kv) = out {
                return Some(Ok(kv));
            }
        }
    }

    /// Going backwards, a key's versions arrive oldest first: keep the last
    /// visible one before the key changes.
    fn next_reverse(&mut self) -> Option<Result<KvPair>> {
        loop {
            if !self.inner.valid() {
                return self.finish();
            }
            let user = key::user_key(self.inner.key()).to_vec();
            if !self.range.after_start(&user) {
                return self.finish();
            }
            let mut newest: Option<(Kind, Vec<u8>)> = None;
            while self.inner.valid() && key::user_key(self.inner.key()) == user.as_slice() {
                let k = self.inner.key();
                if key::seq(k) <= self.read_seq {
                    let Some(kind) = Kind::from_u8(key::kind_byte(k)) else {
                        return Some(Err(corrupt_kind()));
                    };
                    newest = Some((kind, self.inner.value().to_vec()));
                }
                self.inner.advance();
            }
            if let Some((Kind::Put, value)) = newest {
                if self.range.before_end(&user) {
                    return Some(Ok((user, value)));
                }
            }
        }
    }
}

fn corrupt_kind() -> StorageError {
    StorageError::Corruption { path: "<lsm>".into(), reason: "entry with an unknown kind".into() }
}

impl<I: InternalIterator> Iterator for UserIter<I> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Result<KvPair>> {
        if self.done {
            return None;
        }
        match self.dir {
            Dir::Forward => self.next_forward(),
            Dir::Reverse => self.next_reverse(),
        }
    }
}

/// Where an iterator over `range` in `dir` starts: forward at the first
/// version of the start key, reverse at the last version of the end key.
pub(crate) fn start_target(range: &KeyRange, dir: Dir) -> Option<Vec<u8>> {
    use std::ops::Bound;
    match dir {
        Dir::Forward => match &range.start {
            Bound::Included(k) | Bound::Excluded(k) => Some(key::seek_key(k, key::MAX_SEQ)),
            Bound::Unbounded => None,
        },
        Dir::Reverse => match &range.end {
            Bound::Included(k) | Bound::Excluded(k) => Some(key::encode(k, 0, Kind::Delete)),
            Bound::Unbounded => None,
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A vector-backed iterator for tests.
    pub(crate) struct VecIter {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        pos: usize,
        dir: Dir,
    }

    impl VecIter {
        pub(crate) fn new(mut entries: Vec<(Vec<u8>, Vec<u8>)>, dir: Dir, target: Option<&[u8]>) -> VecIter {
            entries.sort_by(|a, b| key::compare(&a.0, &b.0));
            let pos = match (dir, target) {
                (Dir::Forward, None) => 0,
                (Dir::Forward, Some(t)) => entries.partition_point(|e| key::compare(&e.0, t) == Ordering::Less),
                (Dir::Reverse, None) => entries.len().wrapping_sub(1),
                (Dir::Reverse, Some(t)) => {
                    entries.partition_point(|e| key::compare(&e.0, t) != Ordering::Greater).wrapping_sub(1)
                }
            };
            VecIter { entries, pos, dir }
        }
    }

    impl InternalIterator for VecIter {
        fn valid(&self) -> bool {
            self.pos < self.entries.len()
        }
        fn key(&self) -> &[u8] {
            &self.entries[self.pos].0
        }
        fn value(&self) -> &[u8] {
            &self.entries[self.pos].1
        }
        fn advance(&mut self) {
            self.pos = match self.dir {
                Dir::Forward => self.pos + 1,
                Dir::Reverse => self.pos.wrapping_sub(1),
            };
        }
        fn status(&self) -> Result<()> {
            Ok(())
        }
    }

    fn e(user: &str, seq: u64, kind: Kind, v: &str) -> (Vec<u8>, Vec<u8>) {
        (key::encode(user.as_bytes(), seq, kind), v.as_bytes().to_vec())
    }

    fn user_scan(
        sources: &[Vec<(Vec<u8>, Vec<u8>)>],
        read_seq: u64,
        range: KeyRange,
        dir: Dir,
    ) -> Vec<(String, String)> {
        let target = start_target(&range, dir);
        let children: Vec<Box<dyn InternalIterator>> = sources
            .iter()
            .map(|s| Box::new(VecIter::new(s.clone(), dir, target.as_deref())) as Box<dyn InternalIterator>)
            .collect();
        UserIter::new(MergeIter::new(children, dir), read_seq, range, dir, Box::new(()))
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
            })
            .collect()
    }

    #[test]
    fn merge_applies_versions_tombstones_and_ranges() {
        let newer = vec![e("a", 5, Kind::Put, "a5"), e("b", 6, Kind::Delete, ""), e("c", 9, Kind::Put, "c9")];
        let older = vec![e("a", 1, Kind::Put, "a1"), e("b", 2, Kind::Put, "b2"), e("d", 3, Kind::Put, "d3")];
        let src = [newer, older];
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        for dir in [Dir::Forward, Dir::Reverse] {
            let mut want = vec![s("a", "a5"), s("c", "c9"), s("d", "d3")];
            if dir == Dir::Reverse {
                want.reverse();
            }
            assert_eq!(user_scan(&src, 100, KeyRange::all(), dir), want);
            // At seq 4: a1 (a5 too new), b2 (its delete too new), no c.
            let mut want = vec![s("a", "a1"), s("b", "b2"), s("d", "d3")];
            if dir == Dir::Reverse {
                want.reverse();
            }
            assert_eq!(user_scan(&src, 4, KeyRange::all(), dir), want);
            let mut want = vec![s("c", "c9")];
            assert_eq!(user_scan(&src, 100, KeyRange::between("b", "d"), dir), want);
            let r = KeyRange {
                start: std::ops::Bound::Excluded(b"a".to_vec()),
                end: std::ops::Bound::Included(b"d".to_vec()),
            };
            want.push(s("d", "d3"));
            if dir == Dir::Reverse {
                want.reverse();
            }
            assert_eq!(user_scan(&src, 100, r, dir), want);
        }
    }
}

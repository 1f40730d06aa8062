//! Blocks: sorted entries with prefix-compressed keys and restart points.
//!
//! ```text
//! block   = entry* | restart offset (u32)* | restart count (u32)
//! entry   = shared varint | unshared varint | value_len varint | key[shared..] | value
//! ```
//!
//! Every `restart_interval`-th entry stores its whole key (`shared` = 0) and
//! its offset is listed as a restart point, so a lookup binary-searches the
//! restart points and then decodes at most one interval. Keys are internal
//! keys, ordered by [`super::key::compare`].

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use crate::coding::{get_len, put_varint, read_u32};
use crate::lsm::key;

/// Entries between two restart points of a data block.
pub(crate) const DATA_RESTART_INTERVAL: usize = 16;
/// Index blocks make every entry a restart point: a lookup is then a pure
/// binary search (RocksDB's index_block_restart_interval = 1).
pub(crate) const INDEX_RESTART_INTERVAL: usize = 1;

/// Accumulates sorted entries into one block.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    restart_interval: usize,
    buf: Vec<u8>,
    restarts: Vec<u32>,
    since_restart: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub(crate) fn new(restart_interval: usize) -> BlockBuilder {
        BlockBuilder {
            restart_interval,
            buf: Vec::new(),
            restarts: Vec::new(),
            since_restart: 0,
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Adds an entry; keys must arrive in increasing internal order.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) {
        let shared = if self.since_restart < self.restart_interval && self.entries > 0 {
            self.last_key.iter().zip(ikey).take_while(|(a, b)| a == b).count()
        } else {
            self.restarts.push(u32::try_from(self.buf.len()).expect("blocks stay below 4 GiB"));
            self.since_restart = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (ikey.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&ikey[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        self.since_restart += 1;
        self.entries += 1;
    }

    /// Bytes the block will take once finished.
    pub(crate) fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added.
    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Finishes the block into `out` and resets the builder.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.buf.clear();
        self.restarts.clear();
        self.since_restart = 0;
        self.last_key.clear();
        self.entries = 0;
    }
}

/// A decoded (verified, decompressed) block.
#[derive(Debug)]
pub(crate) struct Block {
    data: Vec<u8>,
    /// Offset of the restart array.
    restarts_at: usize,
    restarts: usize,
}

/// One entry's position in a block.
struct EntryAt {
    shared: usize,
    unshared: Range<usize>,
    value: Range<usize>,
}

impl Block {
    /// Wraps block bytes, checking the restart array's shape.
    pub(crate) fn new(data: Vec<u8>) -> Result<Block, &'static str> {
        let len = data.len();
        let restarts = read_u32(&data, len.checked_sub(4).ok_or("block shorter than its trailer")?)
            .ok_or("block shorter than its trailer")? as usize;
        let restarts_at = len
            .checked_sub(4)
            .and_then(|l| l.checked_sub(restarts.checked_mul(4)?))
            .ok_or("restart count exceeds the block")?;
        for i in 0..restarts {
            let r = read_u32(&data, restarts_at + 4 * i).expect("inside the block") as usize;
            if r >= restarts_at {
                return Err("restart offset outside the block");
            }
        }
        if restarts == 0 && restarts_at > 0 {
            return Err("entries without a restart point");
        }
        Ok(Block { data, restarts_at, restarts })
    }

    /// Bytes held in memory (for the cache's weight).
    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    fn restart(&self, i: usize) -> usize {
        read_u32(&self.data, self.restarts_at + 4 * i).expect("validated in new") as usize
    }

    /// Decodes the entry header at `at`.
    fn entry(&self, at: usize) -> Option<EntryAt> {
        let end = self.restarts_at;
        let mut p = at;
        let shared = get_len(&self.data[..end], &mut p)?;
        let unshared = get_len(&self.data[..end], &mut p)?;
        let vlen = get_len(&self.data[..end], &mut p)?;
        let key_end = p.checked_add(unshared)?;
        let value_end = key_end.checked_add(vlen)?;
        if value_end > end {
            return None;
        }
        Some(EntryAt { shared, unshared: p..key_end, value: key_end..value_end })
    }

    /// The whole key stored at a restart point.
    fn restart_key(&self, i: usize) -> Option<&[u8]> {
        let e = self.entry(self.restart(i))?;
        (e.shared == 0).then(|| &self.data[e.unshared])
    }
}

/// A cursor over a block's entries.
pub(crate) struct BlockIter {
    block: Arc<Block>,
    key: Vec<u8>,
    value: Range<usize>,
    /// Offset of the current entry.
    current: usize,
    /// Offset of the entry after the current one.
    next: usize,
    valid: bool,
    corrupt: bool,
}

impl BlockIter {
    pub(crate) fn new(block: Arc<Block>) -> BlockIter {
        BlockIter { block, key: Vec::new(), value: 0..0, current: 0, next: 0, valid: false, corrupt: false }
    }

    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    /// Whether decoding hit malformed bytes (the block passed its checksum,
    /// so this means a writer bug or a crafted file).
    pub(crate) fn corrupt(&self) -> bool {
        self.corrupt
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.block.data[self.value.clone()]
    }

    fn fail(&mut self) {
        self.valid = false;
        self.corrupt = true;
    }

    /// Decodes the entry at `self.next` into the cursor.
    fn step(&mut self) {
        if self.next >= self.block.restarts_at {
            self.valid = false;
            return;
        }
        let Some(e) = self.block.entry(self.next) else { return self.fail() };
        if e.shared > self.key.len() {
            return self.fail();
        }
        self.key.truncate(e.shared);
        self.key.extend_from_slice(&self.block.data[e.unshared]);
        if !key::is_valid(&self.key) {
            return self.fail();
        }
        self.current = self.next;
        self.next = e.value.end;
        self.value = e.value;
        self.valid = true;
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.next = if self.block.restarts == 0 { self.block.restarts_at } else { self.block.restart(i) };
    }

    pub(crate) fn seek_to_first(&mut self) {
        self.seek_to_restart(0);
        self.step();
    }

    pub(crate) fn next(&mut self) {
        debug_assert!(self.valid);
        self.step();
    }

    /// Positions at the first entry whose key is >= `target`.
    pub(crate) fn seek(&mut self, target: &[u8]) {
        // Last restart point whose key is < target.
        let (mut lo, mut hi) = (0usize, self.block.restarts);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            match self.block.restart_key(mid) {
                Some(k) if key::is_valid(k) => {
                    if key::compare(k, target) == Ordering::Less {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                _ => return self.fail(),
            }
        }
        self.seek_to_restart(lo);
        loop {
            self.step();
            if !self.valid || key::compare(&self.key, target) != Ordering::Less {
                return;
            }
        }
    }

    /// Positions at the last entry.
    pub(crate) fn seek_to_last(&mut self) {
        if self.block.restarts == 0 {
            self.valid = false;
            return;
        }
        self.seek_to_restart(self.block.restarts - 1);
        self.step();
        while self.valid && self.next < self.block.restarts_at {
            self.step();
        }
    }

    /// Steps back to the previous entry: decodes forward from the restart
    /// point before the current entry (restart points make this O(interval)).
    pub(crate) fn prev(&mut self) {
        debug_assert!(self.valid);
        let original = self.current;
        let mut r = self.block.restarts;
        while r > 0 && self.block.restart(r - 1) >= original {
            r -= 1;
        }
        if r == 0 {
            self.valid = false;
            return;
        }
        self.seek_to_restart(r - 1);
        loop {
            self.step();
            if !self.valid || self.next >= original {
                break;
            }
        }
        if self.valid && self.next != original {
            self.fail();
        }
    }

    /// Positions at the last entry whose key is <= `target`.
    pub(crate) fn seek_for_prev(&mut self, target: &[u8]) {
        self.seek(target);
        if self.corrupt {
            return;
        }
        if !self.valid {
            self.seek_to_last();
        } else if key::compare(&self.key, target) == Ordering::Greater {
            self.prev();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::key::{Kind, encode};

    fn build(n: u64) -> (Arc<Block>, Vec<Vec<u8>>) {
        let mut b = BlockBuilder::new(DATA_RESTART_INTERVAL);
        let keys: Vec<Vec<u8>> = (0..n).map(|i| encode(format!("key{:05}", i * 2).as_bytes(), 7, Kind::Put)).collect();
        for (i, k) in keys.iter().enumerate() {
            b.add(k, format!("value{i}").as_bytes());
        }
        let mut out = Vec::new();
        b.finish_into(&mut out);
        (Arc::new(Block::new(out).unwrap()), keys)
    }

    #[test]
    fn iterate_and_seek() {
        let (block, keys) = build(100);
        let mut it = BlockIter::new(block.clone());
        it.seek_to_first();
        for (i, k) in keys.iter().enumerate() {
            assert!(it.valid());
            assert_eq!(it.key(), &k[..]);
            assert_eq!(it.value(), format!("value{i}").as_bytes());
            it.next();
        }
        assert!(!it.valid() && !it.corrupt());
        for i in 0..100u64 {
            // Between keys: lands on the next one.
            it.seek(&encode(format!("key{:05}", i * 2 + 1).as_bytes(), 7, Kind::Put));
            if i < 99 {
                assert_eq!(it.key(), &keys[i as usize + 1][..]);
            } else {
                assert!(!it.valid());
            }
            it.seek(&keys[i as usize]);
            assert_eq!(it.key(), &keys[i as usize][..]);
        }
    }

    #[test]
    fn reverse() {
        let (block, keys) = build(100);
        let mut it = BlockIter::new(block);
        it.seek_to_last();
        for k in keys.iter().rev() {
            assert!(it.valid());
            assert_eq!(it.key(), &k[..]);
            it.prev();
        }
        assert!(!it.valid() && !it.corrupt());
        it.seek_for_prev(&encode(b"key00011", 7, Kind::Put));
        assert_eq!(it.key(), &keys[5][..]);
        it.seek_for_prev(&keys[6]);
        assert_eq!(it.key(), &keys[6][..]);
        it.seek_for_prev(&encode(b"a", 7, Kind::Put));
        assert!(!it.valid());
        it.seek_for_prev(&encode(b"z", 7, Kind::Put));
        assert_eq!(it.key(), &keys[99][..]);
    }

    #[test]
    fn empty_and_malformed_blocks() {
        let mut out = Vec::new();
        BlockBuilder::new(DATA_RESTART_INTERVAL).finish_into(&mut out);
        let mut it = BlockIter::new(Arc::new(Block::new(out).unwrap()));
        it.seek_to_first();
        assert!(!it.valid());
        assert!(Block::new(vec![1, 2]).is_err());
        assert!(Block::new(vec![0, 0, 0, 0, 9, 0, 0, 0]).is_err());
        // Garbage entries never panic.
        let (block, _) = build(40);
        let mut data = block.data.clone();
        for b in data.iter_mut().take(200) {
            *b = 0xff;
        }
        if let Ok(block) = Block::new(data) {
            let mut it = BlockIter::new(Arc::new(block));
            it.seek_to_first();
            while it.valid() {
                it.next();
            }
        }
    }
}

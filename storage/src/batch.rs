//! `WriteBatch`: puts and deletes applied atomically, with an optional tag.
//!
//! A batch is kept encoded, so that an engine can append it to its log as is:
//!
//! ```text
//! op*:  kind u8 (1 = put, 2 = delete) | key_len varint | key | [value_len varint | value]
//! ```

use crate::coding::{get_len, put_varint};
use crate::error::{Result, StorageError};

const PUT: u8 = 1;
const DELETE: u8 = 2;

/// Puts and deletes that an engine applies all or nothing. Later operations on
/// the same key win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: usize,
    tag: Option<u64>,
    user_bytes: u64,
}

/// One operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Remove `key`.
    Delete(&'a [u8]),
}

impl BatchOp<'_> {
    /// The key the operation is about.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put(k, _) | BatchOp::Delete(k) => k,
        }
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.rep.push(PUT);
        put_varint(&mut self.rep, key.len() as u64);
        self.rep.extend_from_slice(key);
        put_varint(&mut self.rep, value.len() as u64);
        self.rep.extend_from_slice(value);
        self.count += 1;
        self.user_bytes += (key.len() + value.len()) as u64;
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        self.rep.push(DELETE);
        put_varint(&mut self.rep, key.len() as u64);
        self.rep.extend_from_slice(key);
        self.count += 1;
        self.user_bytes += key.len() as u64;
        self
    }

    /// Tags the batch with a sequence number of the caller's (the zxid in the
    /// server); an engine reports the highest durable tag as `durable_seq`.
    pub fn set_tag(&mut self, tag: u64) -> &mut Self {
        self.tag = Some(tag);
        self
    }

    /// The batch's tag.
    pub fn tag(&self) -> Option<u64> {
        self.tag
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Key and value bytes the batch carries: the user bytes of write
    /// amplification.
    pub fn user_bytes(&self) -> u64 {
        self.user_bytes
    }

    /// The encoded operations.
    pub fn encoded(&self) -> &[u8] {
        &self.rep
    }

    /// The operations, in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter { rep: &self.rep, at: 0 }
    }

    /// Rebuilds a batch from [`WriteBatch::encoded`] bytes, validating them.
    pub fn decode(rep: &[u8], tag: Option<u64>) -> Result<WriteBatch> {
        let mut it = BatchIter { rep, at: 0 };
        let mut count = 0;
        let mut user_bytes = 0u64;
        while it.at < rep.len() {
            let op = it
                .next_op()
                .ok_or_else(|| StorageError::InvalidArgument(format!("malformed write batch at byte {}", it.at)))?;
            user_bytes += match op {
                BatchOp::Put(k, v) => (k.len() + v.len()) as u64,
                BatchOp::Delete(k) => k.len() as u64,
            };
            count += 1;
        }
        Ok(WriteBatch { rep: rep.to_vec(), count, tag, user_bytes })
    }
}

/// Iterator over a batch's operations.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    rep: &'a [u8],
    at: usize,
}

impl<'a> BatchIter<'a> {
    fn next_op(&mut self) -> Option<BatchOp<'a>> {
        let kind = *self.rep.get(self.at)?;
        self.at += 1;
        let klen = get_len(self.rep, &mut self.at)?;
        let key = self.rep.get(self.at..self.at.checked_add(klen)?)?;
        self.at += klen;
        match kind {
            PUT => {
                let vlen = get_len(self.rep, &mut self.at)?;
                let value = self.rep.get(self.at..self.at.checked_add(vlen)?)?;
                self.at += vlen;
                Some(BatchOp::Put(key, value))
            }
            DELETE => Some(BatchOp::Delete(key)),
            _ => None,
        }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchOp<'a>;
    fn next(&mut self) -> Option<BatchOp<'a>> {
        if self.at >= self.rep.len() {
            return None;
        }
        // A batch built through the API always decodes; `decode` validated
        // any other.
        Some(self.next_op().expect("write batch encoding was validated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1").delete(b"k2").put(b"", b"").set_tag(9);
        let ops: Vec<_> = b.iter().collect();
        assert_eq!(ops, vec![BatchOp::Put(b"k1", b"v1"), BatchOp::Delete(b"k2"), BatchOp::Put(b"", b"")]);
        assert_eq!(b.user_bytes(), 6);
        let d = WriteBatch::decode(b.encoded(), Some(9)).unwrap();
        assert_eq!(d, b);
        for cut in 0..b.encoded().len() {
            let r = WriteBatch::decode(&b.encoded()[..cut], None);
            // Cutting at an op boundary yields a shorter valid batch; anything
            // else is an error, never a panic.
            if let Ok(short) = r {
                assert!(short.len() < 3);
            }
        }
        assert!(WriteBatch::decode(&[9, 0], None).is_err());
    }
}

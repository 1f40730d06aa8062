//! Internal keys: a user key plus an 8-byte trailer holding the sequence
//! number and the entry kind.
//!
//! ```text
//! internal key = user key | trailer (u64 little-endian) = seq << 8 | kind
//! ```
//!
//! Order: user keys ascending (bytewise), then trailers descending, so that
//! the newest version of a key comes first and a seek to `(key, seq)` lands on
//! the newest version visible at `seq`.

use std::cmp::Ordering;

/// Bytes of the trailer.
pub(crate) const TRAILER_LEN: usize = 8;
/// Largest sequence number (56 bits).
pub(crate) const MAX_SEQ: u64 = (1 << 56) - 1;

/// What an entry says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A tombstone.
    Delete = 0,
    /// A value.
    Put = 1,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Delete),
            1 => Some(Kind::Put),
            _ => None,
        }
    }
}

/// Kind used in seek targets: sorts before every real entry of the same seq.
const SEEK_KIND: u8 = 0xff;

#[inline]
pub(crate) fn pack(seq: u64, kind: u8) -> u64 {
    debug_assert!(seq <= MAX_SEQ);
    (seq << 8) | u64::from(kind)
}

/// Appends the internal key of `(user, seq, kind)` to `out`.
#[inline]
pub(crate) fn encode_into(out: &mut Vec<u8>, user: &[u8], seq: u64, kind: Kind) {
    out.extend_from_slice(user);
    out.extend_from_slice(&pack(seq, kind as u8).to_le_bytes());
}

/// The internal key of `(user, seq, kind)`.
pub(crate) fn encode(user: &[u8], seq: u64, kind: Kind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user.len() + TRAILER_LEN);
    encode_into(&mut v, user, seq, kind);
    v
}

/// A seek target: the position of the newest version of `user` visible at `seq`.
pub(crate) fn seek_key(user: &[u8], seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(user.len() + TRAILER_LEN);
    v.extend_from_slice(user);
    v.extend_from_slice(&pack(seq, SEEK_KIND).to_le_bytes());
    v
}

/// The user-key part of an internal key.
#[inline]
pub(crate) fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len() - TRAILER_LEN]
}

#[inline]
pub(crate) fn trailer(ikey: &[u8]) -> u64 {
    u64::from_le_bytes(ikey[ikey.len() - TRAILER_LEN..].try_into().expect("8 bytes"))
}

/// Sequence number of an internal key.
#[inline]
pub(crate) fn seq(ikey: &[u8]) -> u64 {
    trailer(ikey) >> 8
}

/// Kind byte of an internal key.
#[inline]
pub(crate) fn kind_byte(ikey: &[u8]) -> u8 {
    trailer(ikey) as u8
}

/// Compares two internal keys (both at least `TRAILER_LEN` long).
#[inline]
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a).cmp(user_key(b)).then_with(|| trailer(b).cmp(&trailer(a)))
}

/// Whether `ikey` has a valid shape (long enough, known kind).
pub(crate) fn is_valid(ikey: &[u8]) -> bool {
    ikey.len() >= TRAILER_LEN && Kind::from_u8(kind_byte(ikey)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order() {
        let a1 = encode(b"a", 1, Kind::Put);
        let a2 = encode(b"a", 2, Kind::Put);
        let ab = encode(b"ab", 9, Kind::Put);
        let b = encode(b"b", 0, Kind::Delete);
        assert_eq!(compare(&a2, &a1), Ordering::Less, "newer first");
        assert_eq!(compare(&a1, &ab), Ordering::Less, "user key first");
        assert_eq!(compare(&ab, &b), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 2), &a2), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 1), &a2), Ordering::Greater);
        assert_eq!((seq(&a2), kind_byte(&a2), user_key(&ab)), (2, 1, &b"ab"[..]));
    }
}

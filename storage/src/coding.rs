//! Little-endian integers and LEB128 varints, for the on-disk formats.
//!
//! Hand-written rather than a crate: a dozen lines, on every hot path of
//! block decoding, and the exact byte layout is part of our documented formats.

/// Appends `v` as a LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a varint at `b[*at..]`, advancing `at`; `None` if truncated or
/// longer than 10 bytes.
#[inline]
pub fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Decodes a varint that must fit a `usize` length.
#[inline]
pub fn get_len(b: &[u8], at: &mut usize) -> Option<usize> {
    get_varint(b, at).and_then(|v| usize::try_from(v).ok())
}

/// Reads a little-endian u32 at `at`, if there are 4 bytes.
#[inline]
pub fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a little-endian u64 at `at`, if there are 8 bytes.
#[inline]
pub fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut at = 0;
            assert_eq!(get_varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
            // Every strict prefix is truncated.
            for cut in 0..b.len() {
                let mut at = 0;
                assert_eq!(get_varint(&b[..cut], &mut at), None);
            }
        }
        let mut at = 0;
        assert_eq!(get_varint(&[0xff; 11], &mut at), None);
    }
}

//! A cache-local bloom filter over a table's user keys.
//!
//! Every key's probes fall in one 512-bit block (one cache line), so a probe
//! costs at most one cache miss however large the filter (RocksDB's
//! FastLocalBloom). Our own encoding rather than the bloomfilter crate's,
//! because the bytes are part of the documented SSTable format:
//!
//! ```text
//! filter = block[n] (64 bytes each) | probes u8
//! ```
//!
//! A key's 64-bit xxh3 hash picks the block with its high half; its low half,
//! remixed by a multiplicative step per probe, picks the bits. At 10 bits per
//! key this gives about 1% false positives.

use xxhash_rust::xxh3::xxh3_64;

const BLOCK_BYTES: usize = 64;
const BLOCK_BITS: u32 = 512;

/// The hash a filter is built from and probed with.
#[inline]
pub(crate) fn key_hash(user_key: &[u8]) -> u64 {
    xxh3_64(user_key)
}

/// Number of probes for a given density (what minimises false positives for
/// a blocked filter, as RocksDB tabulates it).
fn probes_for(bits_per_key: u32) -> u8 {
    match bits_per_key {
        0..=2 => 1,
        3..=4 => 2,
        5..=6 => 3,
        7..=8 => 4,
        9..=10 => 6,
        11..=14 => 7,
        _ => 8,
    }
}

#[inline]
fn block_index(hash: u64, blocks: usize) -> usize {
    // Lemire's fast range reduction of the high 32 bits.
    (((hash >> 32) * blocks as u64) >> 32) as usize
}

#[inline]
fn probe_bits(hash: u64, probes: u8) -> impl Iterator<Item = u32> {
    let mut h = hash as u32;
    (0..probes).map(move |_| {
        h = h.wrapping_mul(0x9e37_79b9);
        h >> (32 - 9)
    })
}

/// Builds a filter from the hashes of a table's keys.
pub(crate) fn build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(u64::from(BLOCK_BITS));
    let blocks = bits.div_ceil(u64::from(BLOCK_BITS)) as usize;
    let probes = probes_for(bits_per_key);
    let mut out = vec![0u8; blocks * BLOCK_BYTES + 1];
    for &h in hashes {
        let base = block_index(h, blocks) * BLOCK_BYTES;
        for bit in probe_bits(h, probes) {
            out[base + (bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    out[blocks * BLOCK_BYTES] = probes;
    out
}

/// Whether a filter's bytes have a valid shape.
pub(crate) fn is_valid(filter: &[u8]) -> bool {
    filter.len() > BLOCK_BYTES && (filter.len() - 1) % BLOCK_BYTES == 0 && (1..=30).contains(&filter[filter.len() - 1])
}

/// False if the key with this hash is certainly not in the table.
#[inline]
pub(crate) fn may_contain(filter: &[u8], hash: u64) -> bool {
    debug_assert!(is_valid(filter));
    let blocks = (filter.len() - 1) / BLOCK_BYTES;
    let probes = filter[filter.len() - 1];
    let base = block_index(hash, blocks) * BLOCK_BYTES;
    probe_bits(hash, probes).all(|bit| filter[base + (bit / 8) as usize] & (1 << (bit % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let keys: Vec<Vec<u8>> = (0..100_000u32).map(|i| format!("key{i}").into_bytes()).collect();
        let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
        let f = build(&hashes, 10);
        assert!(is_valid(&f));
        assert!(hashes.iter().all(|&h| may_contain(&f, h)));
        let fp = (0..100_000u32).filter(|i| may_contain(&f, key_hash(format!("other{i}").as_bytes()))).count();
        let rate = fp as f64 / 100_000.0;
        assert!(rate < 0.013, "false positive rate {rate}");
    }
}

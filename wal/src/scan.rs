//! Scanning a segment's bytes on open: where its records are, where they stop,
//! and whether what follows the stop is a torn tail or corruption.
//!
//! A crash can only damage the end of the newest segment, because a segment is
//! fdatasynced before the next one is created. There, a failed record is a
//! *torn tail* unless valid records follow it; a valid record elsewhere after
//! the failure means the damage is in the middle of the log, which is
//! corruption and must not be silently cut off. "Valid" is judged by the
//! checksum chain: a record that verifies against the failed record's stored
//! checksum, or two consecutive records that verify against each other (a
//! 1-in-2^32 accident for garbage).

use crate::format::{Decoded, FrameError, FrameHeader, RECORD_HEADER_LEN, decode_record, record_crc};

/// Bytes of checksumming the tail search may spend before it gives up and
/// treats the tail as corrupt (the safe side: nothing is thrown away).
const TAIL_SEARCH_BUDGET: usize = 256 << 20;

/// What scanning a run of records found.
#[derive(Debug, Clone)]
pub struct RecordScan {
    /// Byte offset of every verified record, in order.
    pub offsets: Vec<u32>,
    /// Offset just past the last verified record.
    pub end: u64,
    /// Chained checksum of the last verified record (the seed if none).
    pub last_crc: u32,
    /// Why the scan stopped.
    pub stop: Stop,
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Zero-filled space or the end of the file: the segment ends cleanly.
    Clean,
    /// A record at `offset` failed to decode.
    Damaged {
        /// Offset of the failed record.
        offset: u64,
        /// What was wrong with it.
        error: FrameError,
        /// Whether verified records follow the damage (only searched when the
        /// caller asks: in the newest segment).
        valid_data_follows: bool,
    },
}

/// Where the non-zero bytes of `bytes` end (0 if all are zero).
pub fn nonzero_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}

/// Scans the records framed back to back in `bytes` from offset `start`,
/// chained from `seed`. With `search_tail`, a stop is examined for valid data
/// after it (needed only at the end of a log: its newest segment, or a
/// manifest). Other logs of records (the LSM manifest) reuse this framing and
/// its torn-tail rule.
pub fn scan_records(bytes: &[u8], start: usize, seed: u32, max_len: u32, search_tail: bool) -> RecordScan {
    let mut offsets = Vec::new();
    let mut at = start;
    let mut crc = seed;
    loop {
        match decode_record(&bytes[at.min(bytes.len())..], crc, max_len) {
            Ok(Decoded::Record(frame)) => {
                offsets.push(u32::try_from(at).expect("segments stay below 4 GiB"));
                at += RECORD_HEADER_LEN + frame.payload.len();
                crc = frame.crc;
            }
            Ok(Decoded::End) => {
                // Zero-filled space: a clean end, unless bytes follow it.
                let rest = &bytes[at.min(bytes.len())..];
                let stop = if search_tail && nonzero_end(rest) > 0 {
                    Stop::Damaged {
                        offset: at as u64,
                        error: FrameError::ZeroHeader,
                        valid_data_follows: valid_data_after(bytes, at, &[], max_len),
                    }
                } else {
                    Stop::Clean
                };
                return RecordScan { offsets, end: at as u64, last_crc: crc, stop };
            }
            Err(error) => {
                let valid_data_follows =
                    search_tail && valid_data_after(bytes, at, &seeds_after(bytes, at, crc, max_len), max_len);
                return RecordScan {
                    offsets,
                    end: at as u64,
                    last_crc: crc,
                    stop: Stop::Damaged { offset: at as u64, error, valid_data_follows },
                };
            }
        }
    }
}

/// The checksums the record after a damaged one at `at` may chain from: the
/// damaged record's stored checksum (intact unless the damage hit it) and the
/// checksum of its bytes as they are (right when only the stored checksum
/// was hit).
fn seeds_after(bytes: &[u8], at: usize, seed: u32, max_len: u32) -> Vec<u32> {
    let Some(rest) = bytes.get(at..).filter(|r| r.len() >= RECORD_HEADER_LEN) else {
        return Vec::new();
    };
    let h = FrameHeader::read(rest);
    let mut seeds = vec![h.crc];
    if h.len <= max_len && h.frame_len() <= rest.len() {
        seeds.push(record_crc(seed, h.kind, &rest[RECORD_HEADER_LEN..h.frame_len()]));
    }
    seeds
}

/// Whether a verified record starts anywhere after `from`: one that chains
/// from one of `seeds`, or two that chain to each other. When the search
/// exceeds its budget it answers `true`, so that undecidable damage is
/// reported rather than cut off.
fn valid_data_after(bytes: &[u8], from: usize, seeds: &[u32], max_len: u32) -> bool {
    let mut budget = TAIL_SEARCH_BUDGET;
    let mut pos = from + 1;
    // A frame header has a non-zero kind byte at +8, so only positions 8 bytes
    // before a non-zero byte can start a record: skip zero runs quickly.
    while pos + 8 < bytes.len() {
        let Some(rel) = bytes[pos + 8..].iter().position(|&b| b != 0) else {
            return false;
        };
        pos += rel;
        let candidate = &bytes[pos..];
        if candidate.len() >= RECORD_HEADER_LEN {
            let h = FrameHeader::read(candidate);
            if h.len <= max_len && h.frame_len() <= candidate.len() {
                let payload = &candidate[RECORD_HEADER_LEN..h.frame_len()];
                for &seed in seeds {
                    budget = budget.saturating_sub(payload.len());
                    if record_crc(seed, h.kind, payload) == h.crc {
                        return true;
                    }
                }
                let rest = &candidate[h.frame_len()..];
                if rest.len() >= RECORD_HEADER_LEN {
                    let next = FrameHeader::read(rest);
                    if next.len <= max_len && next.frame_len() <= rest.len() {
                        budget = budget.saturating_sub(next.len as usize);
                    }
                }
                if let Ok(Decoded::Record(_)) = decode_record(rest, h.crc, max_len) {
                    return true;
                }
                if budget == 0 {
                    return true;
                }
            }
        }
        pos += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{SegmentHeader, encode_record};

    fn segment(records: &[&[u8]], tail_zeros: usize) -> (Vec<u8>, Vec<usize>) {
        let mut b = SegmentHeader { first_index: 1, generation: 1, prev_crc: 7 }.encode().to_vec();
        let mut crc = 7;
        let mut offs = Vec::new();
        for r in records {
            offs.push(b.len());
            crc = encode_record(&mut b, crc, 1, r);
        }
        b.resize(b.len() + tail_zeros, 0);
        (b, offs)
    }

    #[test]
    fn clean_segment() {
        let (b, offs) = segment(&[b"a", b"bb", b"ccc"], 4096);
        let s = scan_records(&b, crate::format::SEGMENT_HEADER_LEN, 7, 1024, true);
        assert_eq!(s.stop, Stop::Clean);
        assert_eq!(s.offsets.iter().map(|&o| o as usize).collect::<Vec<_>>(), offs);
    }

    #[test]
    fn torn_last_record_is_not_followed_by_valid_data() {
        let (mut b, offs) = segment(&[b"aaaa", b"bbbb", b"cccccccc"], 4096);
        // Zero the second half of the last record, as a partial write leaves it.
        let last = offs[2];
        for x in &mut b[last + 12..last + 17] {
            *x = 0;
        }
        let s = scan_records(&b, crate::format::SEGMENT_HEADER_LEN, 7, 1024, true);
        assert_eq!(s.offsets.len(), 2);
        assert!(matches!(s.stop, Stop::Damaged { valid_data_follows: false, .. }));
    }

    #[test]
    fn damage_before_valid_records_is_found() {
        let (mut b, offs) = segment(&[b"aaaa", b"bbbb", b"cccc"], 4096);
        // Payload flip in the middle record: the next record chains from its
        // stored checksum.
        b[offs[1] + RECORD_HEADER_LEN] ^= 1;
        let s = scan_records(&b, crate::format::SEGMENT_HEADER_LEN, 7, 1024, true);
        assert_eq!(s.offsets.len(), 1);
        assert!(matches!(s.stop, Stop::Damaged { valid_data_follows: true, .. }));

        // A zeroed record in the middle: the two after it chain to each other.
        let (mut b, offs) = segment(&[b"aaaa", b"bbbb", b"cccc", b"dddd"], 4096);
        for x in &mut b[offs[1]..offs[2]] {
            *x = 0;
        }
        let s = scan_records(&b, crate::format::SEGMENT_HEADER_LEN, 7, 1024, true);
        assert_eq!(s.offsets.len(), 1);
        assert!(matches!(s.stop, Stop::Damaged { valid_data_follows: true, .. }));
    }
}

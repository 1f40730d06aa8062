//! The bytes on disk: segment names, the segment header and record frames.
//!
//! Everything here is pure (no I/O) so that it can be property-tested and
//! fuzzed on its own. The layout is described in the crate documentation.

use std::path::Path;

/// Magic bytes at the start of every segment.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"STRATWAL";
/// Version of the segment and record format.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header; records start right after it.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a record frame header (length, chained crc, kind).
pub const RECORD_HEADER_LEN: usize = 9;

const SEGMENT_PREFIX: &str = "log.";
const INDEX_HEX_DIGITS: usize = 16;

/// The file name of the segment whose first record has `first_index`.
pub fn segment_file_name(first_index: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_index:0width$x}", width = INDEX_HEX_DIGITS)
}

/// The first index encoded in a segment file name, if `path` names a segment.
pub fn parse_segment_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let hex = name.strip_prefix(SEGMENT_PREFIX)?;
    if hex.len() != INDEX_HEX_DIGITS || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The fixed header at the start of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Index of the first record stored in this segment.
    pub first_index: u64,
    /// Bumped by every reset of the log; segments of an older generation are
    /// leftovers of an interrupted reset and are removed on open.
    pub generation: u64,
    /// The chained checksum of the record just before `first_index` (the seed
    /// of this segment's chain); 0 at the start of a generation.
    pub prev_crc: u32,
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    Short,
    /// The magic bytes are wrong: not a segment, or overwritten.
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion(u32),
    /// The header checksum does not match.
    BadChecksum,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short => write!(f, "segment header is truncated"),
            HeaderError::BadMagic => write!(f, "segment header has the wrong magic"),
            HeaderError::UnsupportedVersion(v) => write!(f, "unsupported segment format version {v}"),
            HeaderError::BadChecksum => write!(f, "segment header checksum mismatch"),
        }
    }
}

impl SegmentHeader {
    /// Encodes the header into its fixed 64 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 12..16 reserved (zero).
        b[16..24].copy_from_slice(&self.first_index.to_le_bytes());
        b[24..32].copy_from_slice(&self.generation.to_le_bytes());
        b[32..36].copy_from_slice(&self.prev_crc.to_le_bytes());
        // 36..60 reserved (zero).
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and verifies a header.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(HeaderError::Short);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let stored_crc = read_u32(b, 60);
        if crc32c::crc32c(&b[..60]) != stored_crc {
            return Err(HeaderError::BadChecksum);
        }
        let version = read_u32(b, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        Ok(SegmentHeader { first_index: read_u64(b, 16), generation: read_u64(b, 24), prev_crc: read_u32(b, 32) })
    }
}

/// The fields of a record frame header, as read from disk (not yet verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Chained checksum stored in the frame.
    pub crc: u32,
    /// Record kind; 0 never appears in a written record.
    pub kind: u8,
}

impl FrameHeader {
    /// Reads a frame header at the start of `b` (which must hold at least
    /// [`RECORD_HEADER_LEN`] bytes).
    pub fn read(b: &[u8]) -> FrameHeader {
        FrameHeader { len: read_u32(b, 0), crc: read_u32(b, 4), kind: b[8] }
    }

    /// True for the all-zero header that preallocated space reads as.
    pub fn is_zero(&self) -> bool {
        self.len == 0 && self.crc == 0 && self.kind == 0
    }

    /// Total frame bytes (header and payload).
    pub fn frame_len(&self) -> usize {
        RECORD_HEADER_LEN + self.len as usize
    }
}

/// The chained checksum of a record: it covers the length, the kind and the
/// payload, seeded with the previous record's checksum, so that a dropped,
/// duplicated or reordered record breaks the chain.
pub fn record_crc(prev_crc: u32, kind: u8, payload: &[u8]) -> u32 {
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    let mut head = [0u8; 5];
    head[0..4].copy_from_slice(&len.to_le_bytes());
    head[4] = kind;
    let crc = crc32c::crc32c_append(prev_crc, &head);
    crc32c::crc32c_append(crc, payload)
}

/// Appends one record frame to `out` and returns its chained checksum.
pub fn encode_record(out: &mut Vec<u8>, prev_crc: u32, kind: u8, payload: &[u8]) -> u32 {
    debug_assert_ne!(kind, 0, "kind 0 is reserved for zero-filled space");
    let crc = record_crc(prev_crc, kind, payload);
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    crc
}

/// Why one frame failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes left than a frame header, or than the frame's declared length.
    Truncated,
    /// The declared length exceeds the configured maximum.
    TooLong(u32),
    /// A non-zero header with kind 0.
    ZeroKind,
    /// The chained checksum does not match.
    BadChecksum,
    /// A zero-filled frame header with data after it.
    ZeroHeader,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "record is truncated"),
            FrameError::TooLong(n) => write!(f, "record length {n} exceeds the limit"),
            FrameError::ZeroKind => write!(f, "record has kind 0"),
            FrameError::BadChecksum => write!(f, "record checksum mismatch"),
            FrameError::ZeroHeader => write!(f, "zero-filled record header followed by data"),
        }
    }
}

/// A decoded, verified frame borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Record kind (1..=255).
    pub kind: u8,
    /// Record payload.
    pub payload: &'a [u8],
    /// The record's chained checksum (the seed of the next record).
    pub crc: u32,
}

/// Outcome of decoding at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A verified record.
    Record(Frame<'a>),
    /// An all-zero header: the end of the written part of a segment.
    End,
}

/// Decodes and verifies the frame at the start of `b`, chained from `prev_crc`.
pub fn decode_record(b: &[u8], prev_crc: u32, max_len: u32) -> Result<Decoded<'_>, FrameError> {
    if b.len() < RECORD_HEADER_LEN {
        // A zero-filled remainder shorter than a header is still a clean end.
        return if b.iter().all(|&x| x == 0) { Ok(Decoded::End) } else { Err(FrameError::Truncated) };
    }
    let h = FrameHeader::read(b);
    if h.is_zero() {
        return Ok(Decoded::End);
    }
    if h.kind == 0 {
        return Err(FrameError::ZeroKind);
    }
    if h.len > max_len {
        return Err(FrameError::TooLong(h.len));
    }
    let end = h.frame_len();
    if b.len() < end {
        return Err(FrameError::Truncated);
    }
    let payload = &b[RECORD_HEADER_LEN..end];
    if record_crc(prev_crc, h.kind, payload) != h.crc {
        return Err(FrameError::BadChecksum);
    }
    Ok(Decoded::Record(Frame { kind: h.kind, payload, crc: h.crc }))
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_names_sort_by_index() {
        let a = segment_file_name(0x10);
        let b = segment_file_name(0x9);
        assert_eq!(a, "log.0000000000000010");
        assert!(b < a);
        assert_eq!(parse_segment_file_name(Path::new(&a)), Some(0x10));
        assert_eq!(parse_segment_file_name(Path::new("log.12")), None);
        assert_eq!(parse_segment_file_name(Path::new("log.000000000000001g")), None);
        assert_eq!(parse_segment_file_name(Path::new("snap.0000000000000010")), None);
    }

    #[test]
    fn header_rejects_every_flipped_bit() {
        let h = SegmentHeader { first_index: 77, generation: 3, prev_crc: 0xdead_beef };
        let enc = h.encode();
        assert_eq!(SegmentHeader::decode(&enc), Ok(h));
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut b = enc;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&b).is_err(), "bit {bit} flip accepted");
        }
        assert_eq!(SegmentHeader::decode(&enc[..10]), Err(HeaderError::Short));
    }

    proptest! {
        #![proptest_config(strata_testkit::proptest_config("wal::format", 256))]

        #[test]
        fn records_round_trip(
            seed in any::<u32>(),
            records in proptest::collection::vec((1u8..=255, proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
        ) {
            let mut buf = Vec::new();
            let mut crc = seed;
            for (kind, payload) in &records {
                crc = encode_record(&mut buf, crc, *kind, payload);
            }
            buf.extend_from_slice(&[0u8; 32]);
            let mut at = 0;
            let mut crc = seed;
            for (kind, payload) in &records {
                match decode_record(&buf[at..], crc, 1 << 20).unwrap() {
                    Decoded::Record(f) => {
                        prop_assert_eq!(f.kind, *kind);
                        prop_assert_eq!(f.payload, &payload[..]);
                        crc = f.crc;
                        at += RECORD_HEADER_LEN + payload.len();
                    }
                    Decoded::End => prop_assert!(false, "early end"),
                }
            }
            prop_assert_eq!(decode_record(&buf[at..], crc, 1 << 20).unwrap(), Decoded::End);
        }

        #[test]
        fn a_flipped_bit_never_decodes_as_the_record(
            seed in any::<u32>(),
            kind in 1u8..=255,
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            bit in any::<proptest::sample::Index>(),
        ) {
            let mut buf = Vec::new();
            encode_record(&mut buf, seed, kind, &payload);
            let bit = bit.index(buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            match decode_record(&buf, seed, 1 << 20) {
                Ok(Decoded::Record(f)) => prop_assert!(false, "corrupt frame accepted: {:?}", f),
                Ok(Decoded::End) | Err(_) => {}
            }
        }

        #[test]
        fn records_do_not_verify_under_another_seed(
            seed in any::<u32>(),
            other in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            prop_assume!(seed != other);
            let mut buf = Vec::new();
            encode_record(&mut buf, seed, 1, &payload);
            prop_assert_eq!(decode_record(&buf, other, 1 << 20), Err(FrameError::BadChecksum));
        }
    }
}

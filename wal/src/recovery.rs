//! Opening a log directory: finding the segments, verifying the chain, cutting
//! a torn tail, and refusing (or, when asked, repairing) corruption.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, Result, WalError};
use crate::format::{SegmentHeader, parse_segment_file_name};
use crate::options::WalOptions;
use crate::scan::{Stop, nonzero_end, scan_records};
use crate::segment::{Segment, create_segment, remove_segment, sync_dir, zero_range};

/// A stretch of a segment that recovery discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscardedTail {
    /// The segment.
    pub path: PathBuf,
    /// Offset of the first discarded byte.
    pub offset: u64,
    /// Non-zero bytes discarded from that segment.
    pub bytes: u64,
    /// Why the data there did not verify.
    pub reason: String,
}

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Records in the log after recovery.
    pub records: u64,
    /// A partial last write cut off the end of the newest segment.
    pub torn_tail: Option<DiscardedTail>,
    /// Corruption cut off because `repair_corruption` was set.
    pub repaired: Option<DiscardedTail>,
    /// Segments removed by the repair, after the corruption.
    pub repaired_segments_removed: Vec<PathBuf>,
    /// Segments of an older generation, left by an interrupted reset.
    pub stale_segments_removed: Vec<PathBuf>,
    /// Whether this open created a new, empty log.
    pub created: bool,
}

/// The state recovered from a directory.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: Vec<Segment>,
    pub generation: u64,
    pub report: RecoveryReport,
}

struct Found {
    path: PathBuf,
    header: SegmentHeader,
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> WalError {
    WalError::Corrupt { path: path.to_path_buf(), offset, reason: reason.into() }
}

/// Lists the segments of `dir` with verified headers, in index order, after
/// removing temporary files of interrupted creates.
fn find_segments(dir: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut removed_tmp = false;
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let path = entry.context(|| format!("listing {}", dir.display()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("log.") && name.ends_with(".tmp") {
            fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
            removed_tmp = true;
            continue;
        }
        let Some(first_index) = parse_segment_file_name(&path) else { continue };
        let mut head = [0u8; crate::format::SEGMENT_HEADER_LEN];
        let file = fs::File::open(&path).context(|| format!("opening {}", path.display()))?;
        let n = read_up_to(&file, &mut head).context(|| format!("reading {}", path.display()))?;
        let header = SegmentHeader::decode(&head[..n]).map_err(|e| corrupt(&path, 0, e.to_string()))?;
        if header.first_index != first_index {
            return Err(corrupt(
                &path,
                0,
                format!("header says first index {} but the name says {first_index}", header.first_index),
            ));
        }
        found.push(Found { path, header });
    }
    if removed_tmp {
        sync_dir(dir)?;
    }
    found.sort_by_key(|f| f.header.first_index);
    Ok(found)
}

fn read_up_to(file: &fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Opens (or creates) the log in `dir`.
pub(crate) fn recover(dir: &Path, opts: &WalOptions) -> Result<Recovered> {
    fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let mut report = RecoveryReport::default();
    let mut found = find_segments(dir)?;

    if found.is_empty() {
        let header = SegmentHeader { first_index: opts.first_index, generation: 1, prev_crc: 0 };
        // A new log has time to write its first segment out in full, which the
        // writer thread would not have on a roll.
        let (path, file) = create_segment(dir, header, opts.preallocate_bytes, None, true)?;
        report.created = true;
        report.segments = 1;
        let segment = Segment {
            path,
            file: Arc::new(file),
            first_index: opts.first_index,
            prev_crc: 0,
            offsets: Vec::new(),
            end: crate::format::SEGMENT_HEADER_LEN as u64,
            last_crc: 0,
        };
        return Ok(Recovered { segments: vec![segment], generation: 1, report });
    }

    // Segments of an older generation belong to a log that a reset replaced.
    let generation = found.iter().map(|f| f.header.generation).max().expect("non-empty");
    for stale in found.iter().filter(|f| f.header.generation < generation) {
        remove_segment(dir, &stale.path)?;
        report.stale_segments_removed.push(stale.path.clone());
    }
    found.retain(|f| f.header.generation == generation);

    let mut segments: Vec<Segment> = Vec::with_capacity(found.len());
    let count = found.len();
    for (i, f) in found.iter().enumerate() {
        let newest = i + 1 == count;
        if let Some(prev) = segments.last() {
            let expected = prev.last_index() + 1;
            let problem = if f.header.first_index != expected {
                Some(format!(
                    "segment ends at index {} but the next segment {} starts at index {}",
                    prev.last_index(),
                    f.path.display(),
                    f.header.first_index
                ))
            } else if f.header.prev_crc != prev.last_crc {
                Some(format!("the checksum chain breaks between this segment and {}", f.path.display()))
            } else {
                None
            };
            if let Some(reason) = problem {
                let prev = segments.last_mut().expect("checked");
                let (path, offset) = (prev.path.clone(), prev.end);
                if !opts.repair_corruption {
                    return Err(corrupt(&path, offset, reason));
                }
                let tail_end = prev.end;
                cut_segment(prev, offset, tail_end, &reason, &mut report, true)?;
                remove_later(dir, &found[i..], &mut report)?;
                break;
            }
        }

        let bytes = fs::read(&f.path).context(|| format!("reading {}", f.path.display()))?;
        let scan =
            scan_records(&bytes, crate::format::SEGMENT_HEADER_LEN, f.header.prev_crc, opts.max_record_bytes, newest);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&f.path)
            .context(|| format!("opening {}", f.path.display()))?;
        let mut segment = Segment {
            path: f.path.clone(),
            file: Arc::new(file),
            first_index: f.header.first_index,
            prev_crc: f.header.prev_crc,
            offsets: scan.offsets,
            end: scan.end,
            last_crc: scan.last_crc,
        };
        let tail_end = nonzero_end(&bytes) as u64;
        drop(bytes);
        match scan.stop {
            Stop::Clean => segments.push(segment),
            Stop::Damaged { offset, error, valid_data_follows } => {
                let reason =
                    if valid_data_follows { format!("{error}, and valid records follow") } else { error.to_string() };
                if newest && !valid_data_follows {
                    cut_segment(&mut segment, offset, tail_end, &reason, &mut report, false)?;
                    segments.push(segment);
                } else if opts.repair_corruption {
                    cut_segment(&mut segment, offset, tail_end, &reason, &mut report, true)?;
                    segments.push(segment);
                    remove_later(dir, &found[i + 1..], &mut report)?;
                    break;
                } else {
                    return Err(corrupt(&f.path, offset, reason));
                }
            }
        }
    }
    report.segments = segments.len();
    report.records = segments.iter().map(|s| s.offsets.len() as u64).sum();
    Ok(Recovered { segments, generation, report })
}

/// Discards a segment's bytes from `offset` to `tail_end` and records why.
fn cut_segment(
    segment: &mut Segment,
    offset: u64,
    tail_end: u64,
    reason: &str,
    report: &mut RecoveryReport,
    is_repair: bool,
) -> Result<()> {
    let discarded = zero_range(&segment.file, &segment.path, offset, tail_end.max(offset))?;
    segment.file.sync_data().context(|| format!("syncing {}", segment.path.display()))?;
    let tail = DiscardedTail { path: segment.path.clone(), offset, bytes: discarded, reason: reason.to_string() };
    tracing::warn!(
        path = %segment.path.display(),
        offset,
        bytes = discarded,
        reason,
        "{}",
        if is_repair { "repair: discarding a corrupt log tail" } else { "discarding a torn log tail" }
    );
    if is_repair {
        report.repaired = Some(tail);
    } else {
        report.torn_tail = Some(tail);
    }
    Ok(())
}

/// Removes the segments after a repaired cut, newest first, so that a crash
/// part way still leaves a contiguous log.
fn remove_later(dir: &Path, later: &[Found], report: &mut RecoveryReport) -> Result<()> {
    for f in later.iter().rev() {
        remove_segment(dir, &f.path)?;
        report.repaired_segments_removed.push(f.path.clone());
    }
    Ok(())
}

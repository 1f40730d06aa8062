//! Segment files: creating them durably, growing them, and the in-memory
//! table of where each record sits.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::format::{self, SegmentHeader, read_u32, segment_file_name};

/// One segment as the readers see it: where its records are.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub file: Arc<File>,
    pub first_index: u64,
    /// Seed of this segment's checksum chain.
    pub prev_crc: u32,
    /// Byte offset of each record; record `first_index + k` is at `offsets[k]`.
    pub offsets: Vec<u32>,
    /// Offset just past the last record.
    pub end: u64,
    /// Chained checksum of the last record (`prev_crc` if none).
    pub last_crc: u32,
}

impl Segment {
    /// Index of the last record, `first_index - 1` if the segment is empty.
    pub(crate) fn last_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64 - 1
    }

    /// Whether the segment holds `index`.
    pub(crate) fn contains(&self, index: u64) -> bool {
        index >= self.first_index && index - self.first_index < self.offsets.len() as u64
    }

    /// Byte range of the record at position `k`.
    pub(crate) fn record_range(&self, k: usize) -> (u64, u64) {
        let start = u64::from(self.offsets[k]);
        let end = self.offsets.get(k + 1).map_or(self.end, |&o| u64::from(o));
        (start, end)
    }

    /// The checksum that the record at position `k` chains from: the stored
    /// checksum of the record before it, or the segment's seed.
    pub(crate) fn seed_for(&self, k: usize) -> Result<u32> {
        if k == 0 {
            return Ok(self.prev_crc);
        }
        let mut b = [0u8; 4];
        let at = u64::from(self.offsets[k - 1]) + 4;
        self.file.read_exact_at(&mut b, at).context(|| format!("reading {} at offset {at}", self.path.display()))?;
        Ok(read_u32(&b, 0))
    }
}

/// fsyncs a directory, so that creates, renames and deletes in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).context(|| format!("syncing directory {}", dir.display()))
}

/// Reserves `[from, to)` of `file` on disk so that later writes there need no
/// new allocation and no file-size update. Falls back to extending the length
/// on filesystems without fallocate.
pub(crate) fn preallocate(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), from, to - from) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            file.set_len(to).context(|| format!("extending {} to {to} bytes", path.display()))
        }
        Err(e) => Err(crate::error::WalError::io(
            format!("preallocating {} bytes of {} at offset {from}", to - from, path.display()),
            e.into(),
        )),
    }
}

/// Overwrites `[from, to)` with zeros, so that nothing discarded there can be
/// mistaken for records later.
pub(crate) fn zero_range(file: &File, path: &Path, from: u64, to: u64) -> Result<u64> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min((to.saturating_sub(from)) as usize)];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(CHUNK);
        file.write_all_at(&zeros[..n], at).context(|| format!("zeroing {} at offset {at}", path.display()))?;
        at += n as u64;
    }
    Ok(to.saturating_sub(from))
}

/// Creates a segment durably: header and preallocation are written under a
/// temporary name, synced, renamed into place (atomically replacing a file of
/// the same name) and the directory synced. A crash leaves either no segment
/// or a whole one. A `prepared` file (zero-filled by the preparer, at the
/// given temporary path) is used instead of a fresh one; a fresh one is
/// fallocated, or with `zero_fill` written with zeros (see `prepare` for why
/// that makes later fdatasyncs cheaper).
pub(crate) fn create_segment(
    dir: &Path,
    header: SegmentHeader,
    preallocate_bytes: u64,
    prepared: Option<(File, PathBuf)>,
    zero_fill: bool,
) -> Result<(PathBuf, File)> {
    let path = dir.join(segment_file_name(header.first_index));
    let fresh_tmp = dir.join(format!("{}.tmp", segment_file_name(header.first_index)));
    let tmp = prepared.as_ref().map_or(fresh_tmp, |(_, p)| p.clone());
    let result = (|| {
        let file = match prepared {
            Some((file, _)) => file,
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)
                    .context(|| format!("creating {}", tmp.display()))?;
                let bytes = preallocate_bytes.max(format::SEGMENT_HEADER_LEN as u64);
                if zero_fill {
                    zero_range(&file, &tmp, 0, bytes)?;
                } else {
                    preallocate(&file, &tmp, 0, bytes)?;
                }
                file
            }
        };
        file.write_all_at(&header.encode(), 0).context(|| format!("writing the header of {}", tmp.display()))?;
        file.sync_all().context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, &path).context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)?;
        Ok(file)
    })();
    match result {
        Ok(file) => Ok((path, file)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes a segment file and syncs the directory, so that removals persist in
/// the order they are made.
pub(crate) fn remove_segment(dir: &Path, path: &Path) -> Result<()> {
    fs::remove_file(path).context(|| format!("removing {}", path.display()))?;
    sync_dir(dir)
}

//! The manifest: version edits appended to a log, and the `CURRENT` pointer.
//!
//! A manifest file `MANIFEST-<n>` holds version edits framed as strata-wal
//! records (length, chained crc32c, kind, payload) from its first byte; each
//! append is fdatasynced before the edit takes effect. `CURRENT` names the
//! live manifest; it is replaced atomically (write a temporary file, fsync,
//! rename, fsync the directory). Every open starts a new manifest holding one
//! edit that describes the whole recovered state, then points `CURRENT` at it.
//!
//! On open, a damaged record at the end of the manifest with nothing valid
//! after it is a torn append (the process died in it): recovery stops at the
//! last whole edit. Damage followed by valid records is corruption.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use strata_wal::format::{Decoded, decode_record, encode_record};
use strata_wal::scan::{Stop, scan_records};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil::sync_dir;
use crate::lsm::version::VersionEdit;

const CURRENT: &str = "CURRENT";
const EDIT_KIND: u8 = 1;
/// Largest edit accepted when reading a manifest.
const MAX_EDIT_BYTES: u32 = 256 << 20;

pub(crate) fn manifest_name(id: u64) -> String {
    format!("MANIFEST-{id:06}")
}

/// Parses a manifest file name.
pub(crate) fn parse_manifest_name(name: &str) -> Option<u64> {
    name.strip_prefix("MANIFEST-")?.parse().ok()
}

/// The manifest being appended to.
#[derive(Debug)]
pub(crate) struct Manifest {
    path: PathBuf,
    file: File,
    crc: u32,
    /// Bytes written to this manifest.
    pub bytes: u64,
}

impl Manifest {
    /// Creates manifest `id` holding `snapshot`, then makes it current.
    pub(crate) fn create(dir: &Path, id: u64, snapshot: &VersionEdit) -> Result<Manifest> {
        let path = dir.join(manifest_name(id));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .context(|| format!("creating {}", path.display()))?;
        let mut m = Manifest { path, file, crc: 0, bytes: 0 };
        m.append(snapshot)?;
        m.file.sync_all().context(|| format!("syncing {}", m.path.display()))?;
        set_current(dir, id)?;
        Ok(m)
    }

    /// Appends an edit and fdatasyncs it.
    pub(crate) fn append(&mut self, edit: &VersionEdit) -> Result<u64> {
        let mut buf = Vec::new();
        self.crc = encode_record(&mut buf, self.crc, EDIT_KIND, &edit.encode());
        self.file.write_all(&buf).context(|| format!("appending to {}", self.path.display()))?;
        self.file.sync_data().context(|| format!("syncing {}", self.path.display()))?;
        self.bytes += buf.len() as u64;
        Ok(buf.len() as u64)
    }
}

/// Points `CURRENT` at manifest `id`, atomically.
fn set_current(dir: &Path, id: u64) -> Result<()> {
    let tmp = dir.join("CURRENT.tmp");
    let mut f = File::create(&tmp).context(|| format!("creating {}", tmp.display()))?;
    f.write_all(format!("{}\n", manifest_name(id)).as_bytes())
        .and_then(|()| f.sync_all())
        .context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(CURRENT)).context(|| format!("renaming {} to CURRENT", tmp.display()))?;
    sync_dir(dir)
}

/// What a manifest said.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub manifest_id: u64,
    pub edits: Vec<VersionEdit>,
    /// Bytes of a torn last append that were ignored.
    pub torn_bytes: u64,
}

/// Reads the current manifest, if the directory has one.
pub(crate) fn recover(dir: &Path, levels: usize) -> Result<Option<Recovered>> {
    let current = dir.join(CURRENT);
    let name = match fs::read_to_string(&current) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(format!("reading {}", current.display()), e)),
    };
    let name = name.trim_end_matches('\n');
    let manifest_id = parse_manifest_name(name)
        .ok_or_else(|| StorageError::corruption(&current, format!("names {name:?}, not a manifest")))?;
    let path = dir.join(name);
    let bytes = fs::read(&path).context(|| format!("reading {}", path.display()))?;
    let scan = scan_records(&bytes, 0, 0, MAX_EDIT_BYTES, true);
    let torn_bytes = match scan.stop {
        Stop::Clean => 0,
        Stop::Damaged { valid_data_follows: false, .. } => bytes.len() as u64 - scan.end,
        Stop::Damaged { offset, error, valid_data_follows: true } => {
            return Err(StorageError::corruption(&path, format!("offset {offset}: {error}, and valid edits follow")));
        }
    };
    let mut edits = Vec::with_capacity(scan.offsets.len());
    let mut crc = 0;
    for &at in &scan.offsets {
        let Ok(Decoded::Record(frame)) = decode_record(&bytes[at as usize..], crc, MAX_EDIT_BYTES) else {
            return Err(StorageError::corruption(&path, format!("offset {at}: record changed while reading")));
        };
        crc = frame.crc;
        let edit = VersionEdit::decode(frame.payload, levels)
            .ok_or_else(|| StorageError::corruption(&path, format!("offset {at}: malformed version edit")))?;
        edits.push(edit);
    }
    if edits.is_empty() {
        return Err(StorageError::corruption(&path, "the manifest holds no whole edit"));
    }
    Ok(Some(Recovered { manifest_id, edits, torn_bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(n: u64) -> VersionEdit {
        VersionEdit { next_file_id: Some(n), last_seq: Some(n * 10), ..VersionEdit::default() }
    }

    #[test]
    fn torn_tail_recovers_to_the_last_whole_edit_and_flips_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::create(dir.path(), 3, &edit(1)).unwrap();
        for n in 2..=5 {
            m.append(&edit(n)).unwrap();
        }
        drop(m);
        let r = recover(dir.path(), 7).unwrap().unwrap();
        assert_eq!((r.manifest_id, r.edits.len(), r.torn_bytes), (3, 5, 0));
        let path = dir.path().join(manifest_name(3));
        let full = fs::read(&path).unwrap();
        // Every cut inside the last record: the first four edits survive.
        let last_start = full.len() - edit(5).encode().len() - 9;
        for cut in last_start + 1..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let r = recover(dir.path(), 7).unwrap().unwrap();
            assert_eq!(r.edits.len(), 4, "cut at {cut}");
            assert_eq!(r.edits[3], edit(4));
        }
        // A flipped bit in an earlier record, with valid records after it.
        for at in 0..last_start {
            let mut b = full.clone();
            b[at] ^= 0x04;
            fs::write(&path, &b).unwrap();
            match recover(dir.path(), 7) {
                Err(StorageError::Corruption { .. }) => {}
                Ok(Some(r)) => panic!("flip at {at} accepted: {} edits", r.edits.len()),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
    }
}

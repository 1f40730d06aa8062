//! Versions: which tables make up each level, and the edits between versions.
//!
//! A [`Version`] is immutable; readers hold one in an `Arc` for as long as
//! they read, so the files it names stay on disk until the last reader is
//! done (a table removed by an edit is deleted when its last `Arc` drops).
//!
//! Version edit encoding (a manifest record's payload):
//!
//! ```text
//! edit  = field*
//! field = 1 add file:    level u8 | id | size | entries | deletions | min seq | max seq
//!                        | smallest (len + bytes) | largest (len + bytes)
//!       | 2 delete file: level u8 | id
//!       | 3 next file id | 4 last seq | 5 log start | 6 flushed tag
//! (numbers are varints)
//! ```

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use crate::coding::{get_len, get_varint, put_varint};
use crate::lsm::key;

/// Name of table `id` in the engine's directory.
pub(crate) fn table_file_name(id: u64) -> String {
    format!("{id:06}.sst")
}

/// A table as the version set knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSpec {
    pub id: u64,
    pub size: u64,
    pub entries: u64,
    pub deletions: u64,
    pub min_seq: u64,
    pub max_seq: u64,
    /// Smallest and largest internal keys.
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

/// A live table file; deleted from disk when it has left every version and
/// the last reader lets go of it.
#[derive(Debug)]
pub(crate) struct FileMeta {
    pub spec: FileSpec,
    pub path: PathBuf,
    obsolete: AtomicBool,
}

impl FileMeta {
    pub(crate) fn new(dir: &Path, spec: FileSpec) -> FileMeta {
        FileMeta { path: dir.join(table_file_name(spec.id)), spec, obsolete: AtomicBool::new(false) }
    }

    pub(crate) fn id(&self) -> u64 {
        self.spec.id
    }

    pub(crate) fn smallest_user(&self) -> &[u8] {
        key::user_key(&self.spec.smallest)
    }

    pub(crate) fn largest_user(&self) -> &[u8] {
        key::user_key(&self.spec.largest)
    }

    /// Whether the file's user-key range meets `[lo, hi]`.
    pub(crate) fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.largest_user() >= lo && self.smallest_user() <= hi
    }

    /// Marks the file for deletion once unreferenced.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, AtomicOrdering::Release);
    }
}

impl Drop for FileMeta {
    fn drop(&mut self) {
        if self.obsolete.load(AtomicOrdering::Acquire) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove an obsolete table");
            }
        }
    }
}

/// The tables of every level at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    /// Level 0 newest first (files may overlap); deeper levels sorted by key
    /// and disjoint.
    pub levels: Vec<Vec<Arc<FileMeta>>>,
}

impl Version {
    pub(crate) fn empty(levels: usize) -> Version {
        Version { levels: vec![Vec::new(); levels] }
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|f| f.spec.size).sum()
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        (0..self.levels.len()).map(|l| self.level_bytes(l)).sum()
    }

    /// Files of `level` whose range meets `[lo, hi]` (user keys).
    pub(crate) fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<FileMeta>> {
        self.levels[level].iter().filter(|f| f.overlaps(lo, hi)).cloned().collect()
    }

    /// In a sorted level, the one file that may hold `user`.
    pub(crate) fn file_for(&self, level: usize, user: &[u8]) -> Option<&Arc<FileMeta>> {
        let files = &self.levels[level];
        let i = files.partition_point(|f| f.largest_user() < user);
        files.get(i).filter(|f| f.smallest_user() <= user)
    }

    /// The deepest level holding any file (0 if none).
    pub(crate) fn deepest_nonempty(&self) -> usize {
        self.levels.iter().rposition(|l| !l.is_empty()).unwrap_or(0)
    }

    /// Applies an edit, producing the next version. Newly added files become
    /// `FileMeta`s in `dir`; removed ones are marked obsolete.
    pub(crate) fn apply(&self, edit: &VersionEdit, dir: &Path) -> Version {
        let mut next = self.clone();
        for (level, id) in &edit.deleted {
            if let Some(pos) = next.levels[*level].iter().position(|f| f.id() == *id) {
                let f = next.levels[*level].remove(pos);
                if !edit.added.iter().any(|(_, s)| s.id == *id) {
                    f.mark_obsolete();
                }
            }
        }
        for (level, spec) in &edit.added {
            // A trivial move re-adds a file that the edit deleted elsewhere.
            let existing = self.levels.iter().flatten().find(|f| f.id() == spec.id).cloned();
            let meta = existing.unwrap_or_else(|| Arc::new(FileMeta::new(dir, spec.clone())));
            next.levels[*level].push(meta);
        }
        next.levels[0].sort_by(|a, b| b.spec.max_seq.cmp(&a.spec.max_seq).then(b.id().cmp(&a.id())));
        for level in next.levels.iter_mut().skip(1) {
            level.sort_by(|a, b| key::compare(&a.spec.smallest, &b.spec.smallest));
        }
        next
    }

    /// Checks the invariants of a version: sorted, disjoint deeper levels.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (l, files) in self.levels.iter().enumerate().skip(1) {
            for w in files.windows(2) {
                if key::compare(&w[0].spec.largest, &w[1].spec.smallest) != Ordering::Less {
                    return Err(format!("level {l}: tables {} and {} overlap", w[0].id(), w[1].id()));
                }
            }
        }
        Ok(())
    }
}

/// A change between two versions, and the counters that travel with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionEdit {
    pub added: Vec<(usize, FileSpec)>,
    pub deleted: Vec<(usize, u64)>,
    pub next_file_id: Option<u64>,
    pub last_seq: Option<u64>,
    /// First engine-log index still needed (the ones before are in tables).
    pub log_start: Option<u64>,
    /// Highest batch tag in tables.
    pub flushed_tag: Option<u64>,
}

const ADD: u8 = 1;
const DELETE: u8 = 2;
const NEXT_FILE_ID: u8 = 3;
const LAST_SEQ: u8 = 4;
const LOG_START: u8 = 5;
const FLUSHED_TAG: u8 = 6;

impl VersionEdit {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (level, f) in &self.added {
            out.push(ADD);
            out.push(*level as u8);
            for v in [f.id, f.size, f.entries, f.deletions, f.min_seq, f.max_seq] {
                put_varint(&mut out, v);
            }
            for k in [&f.smallest, &f.largest] {
                put_varint(&mut out, k.len() as u64);
                out.extend_from_slice(k);
            }
        }
        for (level, id) in &self.deleted {
            out.push(DELETE);
            out.push(*level as u8);
            put_varint(&mut out, *id);
        }
        for (tag, v) in [
            (NEXT_FILE_ID, self.next_file_id),
            (LAST_SEQ, self.last_seq),
            (LOG_START, self.log_start),
            (FLUSHED_TAG, self.flushed_tag),
        ] {
            if let Some(v) = v {
                out.push(tag);
                put_varint(&mut out, v);
            }
        }
        out
    }

    /// Decodes an edit; `None` if malformed. Levels must be below `levels`.
    pub(crate) fn decode(b: &[u8], levels: usize) -> Option<VersionEdit> {
        let mut e = VersionEdit::default();
        let mut at = 0;
        while at < b.len() {
            let tag = b[at];
            at += 1;
            match tag {
                ADD => {
                    let level = *b.get(at)? as usize;
                    at += 1;
                    let mut v = [0u64; 6];
                    for x in &mut v {
                        *x = get_varint(b, &mut at)?;
                    }
                    let mut keys = [Vec::new(), Vec::new()];
                    for k in &mut keys {
                        let n = get_len(b, &mut at)?;
                        *k = b.get(at..at.checked_add(n)?)?.to_vec();
                        at += n;
                    }
                    let [smallest, largest] = keys;
                    if level >= levels || !key::is_valid(&smallest) || !key::is_valid(&largest) {
                        return None;
                    }
                    let spec = FileSpec {
                        id: v[0],
                        size: v[1],
                        entries: v[2],
                        deletions: v[3],
                        min_seq: v[4],
                        max_seq: v[5],
                        smallest,
                        largest,
                    };
                    e.added.push((level, spec));
                }
                DELETE => {
                    let level = *b.get(at)? as usize;
                    at += 1;
                    if level >= levels {
                        return None;
                    }
                    e.deleted.push((level, get_varint(b, &mut at)?));
                }
                NEXT_FILE_ID => e.next_file_id = Some(get_varint(b, &mut at)?),
                LAST_SEQ => e.last_seq = Some(get_varint(b, &mut at)?),
                LOG_START => e.log_start = Some(get_varint(b, &mut at)?),
                FLUSHED_TAG => e.flushed_tag = Some(get_varint(b, &mut at)?),
                _ => return None,
            }
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::key::Kind;

    #[test]
    fn edits_round_trip() {
        let spec = FileSpec {
            id: 7,
            size: 4096,
            entries: 10,
            deletions: 1,
            min_seq: 3,
            max_seq: 99,
            smallest: key::encode(b"a", 3, Kind::Put),
            largest: key::encode(b"z", 99, Kind::Delete),
        };
        let e = VersionEdit {
            added: vec![(1, spec)],
            deleted: vec![(0, 5), (2, 6)],
            next_file_id: Some(8),
            last_seq: Some(100),
            log_start: Some(17),
            flushed_tag: Some(12),
        };
        let enc = e.encode();
        assert_eq!(VersionEdit::decode(&enc, 7), Some(e));
        for cut in 0..enc.len() {
            // Truncations decode to something shorter or fail; never panic.
            let _ = VersionEdit::decode(&enc[..cut], 7);
        }
        assert_eq!(VersionEdit::decode(&enc, 1), None, "level 1 is out of range for a 1-level tree");
    }
}

//! Compaction: picking what to merge, merging it, and major compaction.
//!
//! Leveled, as in LevelDB and RocksDB. Level 0's score is its file count over
//! the trigger; level n's is its size over its budget. The level with the
//! highest score of at least 1 is compacted: all of level 0 (its files
//! overlap) or the one file of level n that overlaps the fewest bytes of the
//! next level per byte of its own, with those overlapping files. A level-n file that overlaps nothing
//! below simply moves down.
//!
//! Merging keeps the newest version of each key only: every reader pins the
//! tables it reads (see `engine`), so no reader needs the older versions from
//! the new files. A tombstone is dropped when no deeper level can hold the key.

use std::sync::Arc;

use crate::engine::KeyRange;
use crate::error::Result;
use crate::fsutil::sync_dir;
use crate::lsm::LsmOptions;
use crate::lsm::engine::Inner;
use crate::lsm::iter::{Dir, InternalIterator, MergeIter};
use crate::lsm::key::{self, Kind};
use crate::lsm::levels::LevelIter;
use crate::lsm::table::{TableOptions, TableWriter};
use crate::lsm::version::{FileMeta, FileSpec, Version, VersionEdit};

/// What a compaction merges.
#[derive(Debug)]
pub(crate) struct Compaction {
    pub level: usize,
    pub output_level: usize,
    /// Files of `level` (all of level 0's, newest first).
    pub inputs: Vec<Arc<FileMeta>>,
    /// Overlapping files of `output_level`, sorted.
    pub next: Vec<Arc<FileMeta>>,
}

pub(crate) fn table_options(opts: &LsmOptions) -> TableOptions {
    TableOptions {
        block_bytes: opts.block_bytes,
        bloom_bits_per_key: opts.bloom_bits_per_key,
        zstd_level: opts.zstd_level,
    }
}

fn user_span(files: &[Arc<FileMeta>]) -> Option<(Vec<u8>, Vec<u8>)> {
    let lo = files.iter().map(|f| f.smallest_user()).min()?;
    let hi = files.iter().map(|f| f.largest_user()).max()?;
    Some((lo.to_vec(), hi.to_vec()))
}

/// The most urgent compaction, if any level is over its budget.
pub(crate) fn pick(v: &Version, opts: &LsmOptions) -> Option<Compaction> {
    let last = v.levels.len() - 1;
    let mut best: Option<(f64, usize)> = None;
    for level in 0..last {
        let score = if level == 0 {
            v.levels[0].len() as f64 / opts.l0_compaction_trigger as f64
        } else {
            v.level_bytes(level) as f64 / opts.level_budget(level) as f64
        };
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    }
    let (_, level) = best?;
    let inputs = if level == 0 {
        v.levels[0].clone()
    } else {
        // The file that rewrites the fewest bytes of the next level per byte
        // it moves down (RocksDB's kMinOverlappingRatio): the cheapest way
        // to bring the level under budget.
        let overlap_ratio = |f: &Arc<FileMeta>| {
            let below: u64 =
                v.overlapping(level + 1, f.smallest_user(), f.largest_user()).iter().map(|g| g.spec.size).sum();
            below as f64 / f.spec.size.max(1) as f64
        };
        let pick = v.levels[level].iter().min_by(|a, b| overlap_ratio(a).total_cmp(&overlap_ratio(b)))?;
        vec![pick.clone()]
    };
    let (lo, hi) = user_span(&inputs)?;
    let next = v.overlapping(level + 1, &lo, &hi);
    Some(Compaction { level, output_level: level + 1, inputs, next })
}

/// Runs one compaction and installs its result.
pub(crate) fn run(inner: &Inner, c: Compaction) -> Result<()> {
    let mut edit = VersionEdit::default();
    for f in &c.inputs {
        edit.deleted.push((c.level, f.id()));
    }
    for f in &c.next {
        edit.deleted.push((c.output_level, f.id()));
    }
    let version = inner.super_version().version.clone();
    if c.inputs.len() == 1 && c.next.is_empty() && (c.level > 0 || version.levels[0].len() == 1) {
        // Nothing to merge with: move the file down.
        edit.added.push((c.output_level, c.inputs[0].spec.clone()));
    } else {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        for f in &c.inputs {
            children.push(Box::new(inner.tables.get(f)?.iter(inner.ctx.clone(), Dir::Forward, None, false)));
        }
        if !c.next.is_empty() {
            children.push(Box::new(LevelIter::new(
                c.next.clone(),
                inner.tables.clone(),
                inner.ctx.clone(),
                Dir::Forward,
                None,
                false,
            )));
        }
        let output_level = c.output_level;
        let bottommost =
            |user: &[u8]| (output_level + 1..version.levels.len()).all(|l| version.file_for(l, user).is_none());
        let outputs = merge_into_tables(inner, MergeIter::new(children, Dir::Forward), &bottommost)?;
        inner.counters.compaction_bytes[output_level].add(outputs.iter().map(|s| s.size).sum());
        edit.added.extend(outputs.into_iter().map(|s| (output_level, s)));
    }
    inner.apply_edit(&mut edit, |_| {})
}

/// Writes the newest version of each key of `it` into tables cut at the
/// target size, dropping tombstones where `bottommost` says nothing older
/// can lie below.
fn merge_into_tables(inner: &Inner, mut it: MergeIter, bottommost: &dyn Fn(&[u8]) -> bool) -> Result<Vec<FileSpec>> {
    let opts = table_options(&inner.opts);
    let mut outputs: Vec<FileSpec> = Vec::new();
    let mut created: Vec<std::path::PathBuf> = Vec::new();
    let mut writer: Option<(u64, TableWriter)> = None;
    let mut last_user: Vec<u8> = Vec::new();
    let mut first = true;
    let result = (|| -> Result<()> {
        while it.valid() {
            let k = it.key();
            let user = key::user_key(k);
            if !first && user == last_user.as_slice() {
                it.advance();
                continue;
            }
            first = false;
            last_user.clear();
            last_user.extend_from_slice(user);
            if key::kind_byte(k) == Kind::Delete as u8 && bottommost(user) {
                it.advance();
                continue;
            }
            if writer.is_none() {
                let id = inner.new_file_id();
                let path = inner.table_path(id);
                created.push(path.clone());
                writer = Some((id, TableWriter::create(&path, opts)?));
            }
            let (_, w) = writer.as_mut().expect("just created");
            w.add(k, it.value())?;
            if w.file_size() >= inner.opts.target_file_bytes {
                let (id, w) = writer.take().expect("present");
                outputs.push(finish(id, w)?);
            }
            it.advance();
        }
        it.status()?;
        if let Some((id, w)) = writer.take() {
            outputs.push(finish(id, w)?);
        }
        sync_dir(&inner.dir)
    })();
    match result {
        Ok(()) => Ok(outputs),
        Err(e) => {
            for p in created {
                let _ = std::fs::remove_file(p);
            }
            Err(e)
        }
    }
}

fn finish(id: u64, w: TableWriter) -> Result<FileSpec> {
    let (size, p) = w.finish()?;
    Ok(FileSpec {
        id,
        size,
        entries: p.entries,
        deletions: p.deletions,
        min_seq: p.min_seq,
        max_seq: p.max_seq,
        smallest: p.smallest,
        largest: p.largest,
    })
}

/// Major compaction of `range`: every table holding keys in it is merged into
/// the deepest level in use, keeping one version per key and no tombstones.
pub(crate) fn major(inner: &Inner, range: &KeyRange) -> Result<()> {
    let _guard = inner.compaction_lock.lock();
    let version = inner.super_version().version.clone();
    let output_level = version.deepest_nonempty().max(1);
    // Start from the tables holding keys of the range, then take in every
    // table that overlaps what is taken, at any level, until nothing changes:
    // no table left out may hold an older version of a merged key.
    let mut inputs: Vec<(usize, Arc<FileMeta>)> = Vec::new();
    let mut span: Option<(Vec<u8>, Vec<u8>)> = None;
    loop {
        let before = inputs.len();
        for (level, files) in version.levels.iter().enumerate() {
            for f in files {
                let wanted = match &span {
                    None => range.after_start(f.largest_user()) && range.before_end(f.smallest_user()),
                    Some((lo, hi)) => f.overlaps(lo, hi),
                };
                if wanted && !inputs.iter().any(|(_, g)| g.id() == f.id()) {
                    inputs.push((level, f.clone()));
                }
            }
        }
        let files: Vec<Arc<FileMeta>> = inputs.iter().map(|(_, f)| f.clone()).collect();
        span = user_span(&files);
        if inputs.len() == before && before > 0 || span.is_none() {
            break;
        }
    }
    let already_compact =
        inputs.iter().all(|(l, f)| *l == output_level && f.spec.deletions == 0) && version.levels[0].is_empty();
    if inputs.is_empty() || (already_compact && inputs.len() <= 1) {
        return Ok(());
    }
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    for (_, f) in &inputs {
        children.push(Box::new(inner.tables.get(f)?.iter(inner.ctx.clone(), Dir::Forward, None, false)));
    }
    let outputs = merge_into_tables(inner, MergeIter::new(children, Dir::Forward), &|_| true)?;
    inner.counters.compaction_bytes[output_level].add(outputs.iter().map(|s| s.size).sum());
    let mut edit = VersionEdit {
        deleted: inputs.iter().map(|(l, f)| (*l, f.id())).collect(),
        added: outputs.into_iter().map(|s| (output_level, s)).collect(),
        ..VersionEdit::default()
    };
    inner.apply_edit(&mut edit, |_| {})
}

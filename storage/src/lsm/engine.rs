//! `LsmEngine`: the write path, the read path, and the trait implementation.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use strata_wal::Wal;

use crate::batch::{BatchOp, WriteBatch};
use crate::engine::{KeyRange, KvEngine, KvIter, KvSnapshot, Order};
use crate::error::{Result, StorageError};
use crate::lsm::LsmOptions;
use crate::lsm::bloom;
use crate::lsm::cache::ReadCtx;
use crate::lsm::iter::{Dir, InternalIterator, MergeIter, UserIter, start_target};
use crate::lsm::key::{self, Kind};
use crate::lsm::levels::{LevelIter, TableCache};
use crate::lsm::manifest::Manifest;
use crate::lsm::memtable::Memtable;
use crate::lsm::version::{Version, VersionEdit};
use crate::stats::{Counter, EngineStats};

/// Kind of the engine's log records.
pub(crate) const LOG_KIND_BATCH: u8 = 1;

/// What readers pin: the memtables and the table set of one moment.
#[derive(Debug, Clone)]
pub(crate) struct SuperVersion {
    pub mem: Arc<Memtable>,
    /// Immutable memtables, newest first.
    pub imms: Vec<Arc<Memtable>>,
    pub version: Arc<Version>,
}

/// The version set: the live version and what the manifest records with it.
#[derive(Debug)]
pub(crate) struct VersionSet {
    pub manifest: Manifest,
    pub current: Arc<Version>,
    pub next_file_id: u64,
    pub last_seq: u64,
    pub log_start: u64,
    pub flushed_tag: u64,
}

/// Publishes sequence numbers to readers strictly in order.
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    published: AtomicU64,
    turn: Mutex<()>,
    cv: Condvar,
}

impl Sequencer {
    pub(crate) fn new(at: u64) -> Sequencer {
        Sequencer { published: AtomicU64::new(at), ..Sequencer::default() }
    }

    /// The highest sequence number readers may see.
    pub(crate) fn visible(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Publishes `(after, to]` once everything up to `after` is published.
    pub(crate) fn publish(&self, after: u64, to: u64, failed: impl Fn() -> Option<StorageError>) -> Result<()> {
        let mut g = self.turn.lock();
        while self.published.load(Ordering::Acquire) != after {
            if let Some(e) = failed() {
                return Err(e);
            }
            self.cv.wait_for(&mut g, Duration::from_millis(10));
        }
        self.published.store(to, Ordering::Release);
        self.cv.notify_all();
        Ok(())
    }

    /// Waits until `seq` is published.
    pub(crate) fn wait_for(&self, seq: u64, failed: impl Fn() -> Option<StorageError>) -> Result<()> {
        let mut g = self.turn.lock();
        while self.published.load(Ordering::Acquire) < seq {
            if let Some(e) = failed() {
                return Err(e);
            }
            self.cv.wait_for(&mut g, Duration::from_millis(10));
        }
        Ok(())
    }
}

/// What the background threads and stalled writers share.
#[derive(Debug, Default)]
pub(crate) struct BgState {
    pub shutdown: bool,
    pub error: Option<StorageError>,
    pub compaction_wanted: bool,
}

/// Write-side counters.
#[derive(Debug, Default)]
pub(crate) struct WriteCounters {
    pub user_bytes: Counter,
    pub flush_bytes: Counter,
    pub compaction_bytes: Vec<Counter>,
    pub manifest_bytes: Counter,
    pub slowdowns: Counter,
    pub stops: Counter,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: LsmOptions,
    pub ctx: Arc<ReadCtx>,
    pub tables: Arc<TableCache>,
    pub current: RwLock<Arc<SuperVersion>>,
    /// Serialises sequence assignment, log submission and memtable inserts.
    pub write: Mutex<u64>,
    pub seqs: Sequencer,
    pub log: Option<Wal>,
    pub versions: Mutex<VersionSet>,
    pub bg: Mutex<BgState>,
    pub bg_cv: Condvar,
    /// Held by whichever compaction runs (background or major).
    pub compaction_lock: Mutex<()>,
    pub counters: WriteCounters,
    /// Highest tag known durable.
    pub durable_tag: AtomicU64,
    /// (log index, tag) of writes acknowledged before their log sync.
    pub unsynced_tags: Mutex<VecDeque<(u64, u64)>>,
    pub _lock: File,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableCache")
    }
}

/// A log-structured merge-tree engine; see the module documentation.
#[derive(Debug)]
pub struct LsmEngine {
    pub(crate) inner: Arc<Inner>,
    pub(crate) workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Encodes a log record: first sequence number, optional tag, batch.
pub(crate) fn encode_log_record(first_seq: u64, batch: &WriteBatch) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + batch.encoded().len());
    out.extend_from_slice(&first_seq.to_le_bytes());
    match batch.tag() {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(batch.encoded());
    out
}

/// Decodes a log record written by [`encode_log_record`].
pub(crate) fn decode_log_record(b: &[u8]) -> Option<(u64, WriteBatch)> {
    let first_seq = crate::coding::read_u64(b, 0)?;
    let (tag, rest) = match b.get(8)? {
        0 => (None, b.get(9..)?),
        1 => (Some(crate::coding::read_u64(b, 9)?), b.get(17..)?),
        _ => return None,
    };
    Some((first_seq, WriteBatch::decode(rest, tag).ok()?))
}

impl Inner {
    pub(crate) fn check_error(&self) -> Result<()> {
        match &self.bg.lock().error {
            Some(e) => Err(StorageError::Poisoned(e.to_string())),
            None => Ok(()),
        }
    }

    pub(crate) fn error(&self) -> Option<StorageError> {
        self.bg.lock().error.as_ref().map(|e| StorageError::Poisoned(e.to_string()))
    }

    /// Records a background failure; every later call returns it.
    pub(crate) fn poison(&self, e: &StorageError) {
        tracing::error!(dir = %self.dir.display(), error = %e, "LSM engine stopped after a background error");
        let mut bg = self.bg.lock();
        if bg.error.is_none() {
            bg.error = Some(e.clone());
        }
        self.bg_cv.notify_all();
    }

    pub(crate) fn super_version(&self) -> Arc<SuperVersion> {
        self.current.read().clone()
    }

    /// Delays or stops a writer while flushes or level 0 fall behind.
    fn stall(&self) -> Result<()> {
        let mut slowed = false;
        let mut stopped = false;
        loop {
            self.check_error()?;
            let sv = self.super_version();
            let l0 = sv.version.levels[0].len();
            if l0 >= self.opts.l0_stop_trigger || sv.imms.len() >= self.opts.max_immutable_memtables {
                if !stopped {
                    self.counters.stops.add(1);
                    stopped = true;
                    tracing::info!(
                        dir = %self.dir.display(),
                        l0_files = l0,
                        immutable_memtables = sv.imms.len(),
                        "writes stopped until background flushes and compactions catch up"
                    );
                }
                let mut bg = self.bg.lock();
                bg.compaction_wanted = true;
                self.bg_cv.notify_all();
                self.bg_cv.wait_for(&mut bg, Duration::from_millis(50));
                continue;
            }
            if l0 >= self.opts.l0_slowdown_trigger && !slowed && !stopped {
                self.counters.slowdowns.add(1);
                slowed = true;
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            return Ok(());
        }
    }

    /// Makes the active memtable immutable (write lock held by the caller).
    pub(crate) fn switch_memtable(&self) {
        let mut cur = self.current.write();
        if cur.mem.is_empty() {
            return;
        }
        let mut imms = vec![cur.mem.clone()];
        imms.extend(cur.imms.iter().cloned());
        *cur = Arc::new(SuperVersion {
            mem: Arc::new(Memtable::new(self.opts.memtable_bytes)),
            imms,
            version: cur.version.clone(),
        });
        drop(cur);
        self.bg_cv.notify_all();
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            if let Some(t) = batch.tag() {
                // An empty tagged batch still advances the tag: there is
                // nothing to lose by it.
                self.durable_tag.fetch_max(t, Ordering::AcqRel);
            }
            return Ok(());
        }
        self.stall()?;
        let n = batch.len() as u64;
        let (first, pending) = {
            let mut last_seq = self.write.lock();
            self.check_error()?;
            let first = *last_seq + 1;
            if first + n > key::MAX_SEQ {
                return Err(StorageError::InvalidArgument("sequence numbers exhausted".into()));
            }
            let pending = match &self.log {
                Some(log) => Some(log.submit(vec![(LOG_KIND_BATCH, encode_log_record(first, &batch))])?),
                None => None,
            };
            *last_seq += n;
            let mem = self.super_version().mem.clone();
            for (i, op) in batch.iter().enumerate() {
                match op {
                    BatchOp::Put(k, v) => mem.insert(k, first + i as u64, Kind::Put, v),
                    BatchOp::Delete(k) => mem.insert(k, first + i as u64, Kind::Delete, b""),
                }
            }
            mem.note_batch(batch.tag(), pending.as_ref().map(|p| *p.indexes().end()));
            if mem.approximate_bytes() >= self.opts.memtable_bytes {
                self.switch_memtable();
            }
            (first, pending)
        };
        self.counters.user_bytes.add(batch.user_bytes());
        let log_index = pending.as_ref().map(|p| *p.indexes().end());
        if let Some(p) = pending {
            if let Err(e) = p.wait() {
                let e = StorageError::from(e);
                self.poison(&e);
                return Err(e);
            }
        }
        self.seqs.publish(first - 1, first + n - 1, || self.error())?;
        if let Some(tag) = batch.tag() {
            match (&self.log, log_index) {
                (Some(log), Some(index)) if !log.options().sync_policy.acknowledges_after_sync() => {
                    self.unsynced_tags.lock().push_back((index, tag));
                }
                (Some(_), _) => {
                    self.durable_tag.fetch_max(tag, Ordering::AcqRel);
                }
                (None, _) => {}
            }
        }
        Ok(())
    }

    /// The value of `user` in a pinned view.
    pub(crate) fn get_at(&self, sv: &SuperVersion, read_seq: u64, user: &[u8]) -> Result<Option<Vec<u8>>> {
        self.ctx.counters.point_gets.add(1);
        let found = |r: (Kind, Vec<u8>)| match r.0 {
            Kind::Put => Some(r.1),
            Kind::Delete => None,
        };
        for mem in std::iter::once(&sv.mem).chain(sv.imms.iter()) {
            if let Some(r) = mem.get(user, read_seq) {
                return Ok(found(r));
            }
        }
        let target = key::seek_key(user, read_seq);
        let hash = bloom::key_hash(user);
        for f in &sv.version.levels[0] {
            if f.smallest_user() <= user && user <= f.largest_user() {
                if let Some(r) = self.tables.get(f)?.get(user, &target, hash, &self.ctx)? {
                    return Ok(found(r));
                }
            }
        }
        for level in 1..sv.version.levels.len() {
            if let Some(f) = sv.version.file_for(level, user) {
                if let Some(r) = self.tables.get(f)?.get(user, &target, hash, &self.ctx)? {
                    return Ok(found(r));
                }
            }
        }
        Ok(None)
    }

    /// Internal iterators over every source of a pinned view.
    pub(crate) fn sources(
        &self,
        sv: &SuperVersion,
        dir: Dir,
        target: Option<&[u8]>,
        range: &KeyRange,
    ) -> Vec<Box<dyn InternalIterator>> {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        for mem in std::iter::once(&sv.mem).chain(sv.imms.iter()) {
            children.push(Box::new(mem.iter(dir, target)));
        }
        let in_range = |f: &Arc<crate::lsm::version::FileMeta>| {
            range.after_start(f.largest_user()) && range.before_end(f.smallest_user())
        };
        for f in sv.version.levels[0].iter().filter(|f| in_range(f)) {
            match self.tables.get(f) {
                Ok(t) => children.push(Box::new(t.iter(self.ctx.clone(), dir, target, true))),
                Err(e) => children.push(Box::new(Failed(e))),
            }
        }
        for level in sv.version.levels.iter().skip(1) {
            let files: Vec<_> = level.iter().filter(|f| in_range(f)).cloned().collect();
            if !files.is_empty() {
                children.push(Box::new(LevelIter::new(
                    files,
                    self.tables.clone(),
                    self.ctx.clone(),
                    dir,
                    target,
                    true,
                )));
            }
        }
        children
    }

    pub(crate) fn scan_at(
        &self,
        sv: Arc<SuperVersion>,
        read_seq: u64,
        range: KeyRange,
        order: Order,
    ) -> KvIter<'static> {
        let dir = Dir::from(order);
        let target = start_target(&range, dir);
        let merge = MergeIter::new(self.sources(&sv, dir, target.as_deref(), &range), dir);
        Box::new(UserIter::new(merge, read_seq, range, dir, Box::new(sv)))
    }

    /// Flushes every memtable that holds data now, and waits for it.
    pub(crate) fn flush_all(&self) -> Result<()> {
        {
            let _w = self.write.lock();
            self.switch_memtable();
        }
        let waiting: Vec<Arc<Memtable>> = self.super_version().imms.clone();
        let mut bg = self.bg.lock();
        loop {
            if let Some(e) = &bg.error {
                return Err(StorageError::Poisoned(e.to_string()));
            }
            let imms = self.current.read().imms.clone();
            if !waiting.iter().any(|w| imms.iter().any(|m| Arc::ptr_eq(m, w))) {
                return Ok(());
            }
            self.bg_cv.notify_all();
            self.bg_cv.wait_for(&mut bg, Duration::from_millis(50));
        }
    }

    pub(crate) fn durable_seq(&self) -> u64 {
        if let Some(log) = &self.log {
            let synced = log.durable_index();
            let mut q = self.unsynced_tags.lock();
            while let Some(&(index, tag)) = q.front() {
                if index > synced {
                    break;
                }
                self.durable_tag.fetch_max(tag, Ordering::AcqRel);
                q.pop_front();
            }
        }
        self.durable_tag.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> EngineStats {
        let sv = self.super_version();
        let v = &sv.version;
        let c = &self.ctx.counters;
        let manifest_bytes = self.versions.lock().manifest.bytes;
        let (log_written, log_retained) =
            self.log.as_ref().map_or((0, 0), |l| (l.stats().bytes_written, l.retained_bytes()));
        EngineStats {
            user_bytes_written: self.counters.user_bytes.get(),
            log_bytes_written: log_written,
            flush_bytes_written: self.counters.flush_bytes.get(),
            compaction_bytes_written: self.counters.compaction_bytes.iter().map(Counter::get).collect(),
            other_bytes_written: self.counters.manifest_bytes.get(),
            bytes_read: c.bytes_read.get(),
            blocks_read: c.blocks_read.get(),
            block_cache_hits: c.cache_hits.get(),
            point_gets: c.point_gets.get(),
            point_get_blocks: c.point_get_blocks.get(),
            bloom_checks: c.bloom_checks.get(),
            bloom_useful: c.bloom_useful.get(),
            disk_bytes: v.total_bytes() + manifest_bytes + log_retained,
            files_per_level: v.levels.iter().map(|l| l.len() as u64).collect(),
            bytes_per_level: (0..v.levels.len()).map(|l| v.level_bytes(l)).collect(),
            write_slowdowns: self.counters.slowdowns.get(),
            write_stops: self.counters.stops.get(),
        }
    }

    /// Applies a version edit: appends it to the manifest, then installs the
    /// new version (and whatever `change` does to the super version).
    pub(crate) fn apply_edit(&self, edit: &mut VersionEdit, change: impl FnOnce(&mut SuperVersion)) -> Result<()> {
        let mut vs = self.versions.lock();
        edit.next_file_id = Some(vs.next_file_id);
        let written = vs.manifest.append(edit)?;
        self.counters.manifest_bytes.add(written);
        if let Some(s) = edit.last_seq {
            vs.last_seq = vs.last_seq.max(s);
        }
        if let Some(s) = edit.log_start {
            vs.log_start = vs.log_start.max(s);
        }
        if let Some(t) = edit.flushed_tag {
            vs.flushed_tag = vs.flushed_tag.max(t);
        }
        let next = Arc::new(vs.current.apply(edit, &self.dir));
        debug_assert!(next.check().is_ok(), "{:?}", next.check());
        vs.current = next.clone();
        for (_, id) in &edit.deleted {
            if !edit.added.iter().any(|(_, s)| s.id == *id) {
                self.tables.evict(*id);
            }
        }
        let mut cur = self.current.write();
        let mut sv = (**cur).clone();
        sv.version = next;
        change(&mut sv);
        *cur = Arc::new(sv);
        Ok(())
    }

    /// A fresh file id.
    pub(crate) fn new_file_id(&self) -> u64 {
        let mut vs = self.versions.lock();
        let id = vs.next_file_id;
        vs.next_file_id += 1;
        id
    }

    pub(crate) fn table_path(&self, id: u64) -> PathBuf {
        self.dir.join(crate::lsm::version::table_file_name(id))
    }
}

/// An iterator standing in for a source that failed to open.
struct Failed(StorageError);

impl InternalIterator for Failed {
    fn valid(&self) -> bool {
        false
    }
    fn key(&self) -> &[u8] {
        &[]
    }
    fn value(&self) -> &[u8] {
        &[]
    }
    fn advance(&mut self) {}
    fn status(&self) -> Result<()> {
        Err(self.0.clone())
    }
}

/// A pinned view of an LSM engine.
struct LsmSnapshot<'a> {
    inner: &'a Inner,
    sv: Arc<SuperVersion>,
    read_seq: u64,
}

impl KvSnapshot for LsmSnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get_at(&self.sv, self.read_seq, key)
    }

    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>> {
        Ok(self.inner.scan_at(self.sv.clone(), self.read_seq, range, order))
    }
}

impl LsmEngine {
    /// Opens (or creates) the engine in `dir`.
    pub fn open(dir: impl AsRef<Path>, opts: LsmOptions) -> Result<LsmEngine> {
        crate::lsm::open::open(dir.as_ref(), opts)
    }

    /// Major compaction of the keys in `range` only.
    pub fn compact_range(&self, range: KeyRange) -> Result<()> {
        self.inner.check_error()?;
        self.inner.flush_all()?;
        crate::lsm::compaction::major(&self.inner, &range)
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl KvEngine for LsmEngine {
    fn name(&self) -> &'static str {
        "lsm"
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // Pin the view first, then take the read sequence: every table in the
        // view holds only entries published before it was installed.
        let sv = self.inner.super_version();
        let read_seq = self.inner.seqs.visible();
        self.inner.get_at(&sv, read_seq, key)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(batch)
    }

    fn scan(&self, range: KeyRange, order: Order) -> Result<KvIter<'_>> {
        self.inner.check_error()?;
        let sv = self.inner.super_version();
        let read_seq = self.inner.seqs.visible();
        Ok(self.inner.scan_at(sv, read_seq, range, order))
    }

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>> {
        let sv = self.inner.super_version();
        let read_seq = self.inner.seqs.visible();
        Ok(Box::new(LsmSnapshot { inner: &self.inner, sv, read_seq }))
    }

    fn flush(&self) -> Result<()> {
        self.inner.check_error()?;
        self.inner.flush_all()
    }

    fn compact(&self) -> Result<()> {
        self.compact_range(KeyRange::all())
    }

    fn durable_seq(&self) -> u64 {
        self.inner.durable_seq()
    }

    fn stats(&self) -> EngineStats {
        self.inner.stats()
    }
}

impl Drop for LsmEngine {
    fn drop(&mut self) {
        // Without a log, memtables would be lost: flush them first.
        if self.inner.log.is_none() && self.inner.check_error().is_ok() {
            if let Err(e) = self.inner.flush_all() {
                tracing::warn!(error = %e, "flush on close failed");
            }
        }
        {
            let mut bg = self.inner.bg.lock();
            bg.shutdown = true;
        }
        self.inner.bg_cv.notify_all();
        for w in self.workers.lock().drain(..) {
            let _ = w.join();
        }
    }
}

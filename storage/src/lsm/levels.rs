//! Reading across tables: the table cache, and the iterator over one sorted
//! level.

use std::cmp::Ordering;
use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::error::{Result, StorageError};
use crate::lsm::cache::ReadCtx;
use crate::lsm::iter::{Dir, InternalIterator};
use crate::lsm::key;
use crate::lsm::table::{Table, TableIter};
use crate::lsm::version::FileMeta;

/// Open tables by id, bounded in count (each holds a file descriptor, its
/// index block and its bloom filter).
pub(crate) struct TableCache {
    cache: Cache<u64, Arc<Table>>,
}

impl TableCache {
    pub(crate) fn new(capacity: usize) -> TableCache {
        TableCache { cache: Cache::new(capacity) }
    }

    pub(crate) fn get(&self, f: &FileMeta) -> Result<Arc<Table>> {
        self.cache.get_or_insert_with(&f.id(), || Table::open(&f.path, f.id()).map(Arc::new))
    }

    /// Drops a table that left the live version (readers that hold it keep it).
    pub(crate) fn evict(&self, id: u64) {
        self.cache.remove(&id);
    }
}

/// Concatenates the tables of one sorted, disjoint level, opening each only
/// when the iteration reaches it.
pub(crate) struct LevelIter {
    files: Vec<Arc<FileMeta>>,
    tables: Arc<TableCache>,
    ctx: Arc<ReadCtx>,
    dir: Dir,
    /// Index of the current file (may be one past either end).
    idx: isize,
    cur: Option<TableIter>,
    fill_cache: bool,
    error: Option<StorageError>,
}

impl LevelIter {
    pub(crate) fn new(
        files: Vec<Arc<FileMeta>>,
        tables: Arc<TableCache>,
        ctx: Arc<ReadCtx>,
        dir: Dir,
        target: Option<&[u8]>,
        fill_cache: bool,
    ) -> LevelIter {
        let idx = match (dir, target) {
            (Dir::Forward, None) => 0,
            (Dir::Forward, Some(t)) => {
                files.partition_point(|f| key::compare(&f.spec.largest, t) == Ordering::Less) as isize
            }
            (Dir::Reverse, None) => files.len() as isize - 1,
            (Dir::Reverse, Some(t)) => {
                files.partition_point(|f| key::compare(&f.spec.smallest, t) != Ordering::Greater) as isize - 1
            }
        };
        let mut it = LevelIter { files, tables, ctx, dir, idx, cur: None, fill_cache, error: None };
        it.open(target);
        it.skip_exhausted();
        it
    }

    fn open(&mut self, target: Option<&[u8]>) {
        self.cur = None;
        let Some(f) = usize::try_from(self.idx).ok().and_then(|i| self.files.get(i)) else { return };
        match self.tables.get(f) {
            Ok(t) => self.cur = Some(t.iter(self.ctx.clone(), self.dir, target, self.fill_cache)),
            Err(e) => self.error = Some(e),
        }
    }

    fn skip_exhausted(&mut self) {
        while let Some(cur) = &self.cur {
            if let Err(e) = cur.status() {
                self.error = Some(e);
                self.cur = None;
                return;
            }
            if cur.valid() {
                return;
            }
            self.idx += match self.dir {
                Dir::Forward => 1,
                Dir::Reverse => -1,
            };
            self.open(None);
        }
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| c.valid())
    }

    fn key(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").key()
    }

    fn value(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").value()
    }

    fn advance(&mut self) {
        self.cur.as_mut().expect("valid").advance();
        self.skip_exhausted();
    }

    fn status(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

//! The background threads: one flushes immutable memtables, one compacts.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, StorageError};
use crate::fsutil::sync_dir;
use crate::lsm::compaction::{self, table_options};
use crate::lsm::engine::Inner;
use crate::lsm::key;
use crate::lsm::memtable::Memtable;
use crate::lsm::table::TableWriter;
use crate::lsm::version::{FileSpec, VersionEdit};

/// Starts the flush and compaction threads.
pub(crate) fn start(inner: &Arc<Inner>) -> Result<Vec<JoinHandle<()>>> {
    let spawn = |name: &str, f: fn(Arc<Inner>)| {
        let inner = inner.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(inner))
            .map_err(|e| StorageError::io(format!("starting the {name} thread"), e))
    };
    Ok(vec![spawn("strata-lsm-flush", flush_loop)?, spawn("strata-lsm-compact", compaction_loop)?])
}

fn flush_loop(inner: Arc<Inner>) {
    loop {
        let mem = {
            let mut bg = inner.bg.lock();
            loop {
                if bg.error.is_some() {
                    return;
                }
                if let Some(m) = inner.current.read().imms.last().cloned() {
                    break m;
                }
                if bg.shutdown {
                    return;
                }
                inner.bg_cv.wait(&mut bg);
            }
        };
        if let Err(e) = flush_memtable(&inner, &mem) {
            inner.poison(&e);
            return;
        }
        inner.bg.lock().compaction_wanted = true;
        inner.bg_cv.notify_all();
    }
}

/// Writes an immutable memtable to a level-0 table (minor compaction).
fn flush_memtable(inner: &Inner, mem: &Arc<Memtable>) -> Result<()> {
    // Every batch in the memtable must be published (its log record synced)
    // before its entries can reach a table.
    inner.seqs.wait_for(mem.max_seq(), || inner.error())?;
    let id = inner.new_file_id();
    let path = inner.table_path(id);
    let mut w = TableWriter::create(&path, table_options(&inner.opts))?;
    let mut last_user: Option<Vec<u8>> = None;
    let written = mem.for_each(|k, v| {
        let user = key::user_key(k);
        // Older versions of a key: pinned views still read them from the
        // memtable itself.
        if last_user.as_deref() == Some(user) {
            return Ok(());
        }
        match &mut last_user {
            Some(buf) => {
                buf.clear();
                buf.extend_from_slice(user);
            }
            None => last_user = Some(user.to_vec()),
        }
        w.add(k, v)
    });
    let finished = written.and_then(|()| w.finish()).and_then(|r| sync_dir(&inner.dir).map(|()| r));
    let (size, p) = match finished {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let log_start = (mem.last_log_index() > 0).then(|| mem.last_log_index() + 1);
    let mut edit = VersionEdit {
        added: vec![(
            0,
            FileSpec {
                id,
                size,
                entries: p.entries,
                deletions: p.deletions,
                min_seq: p.min_seq,
                max_seq: p.max_seq,
                smallest: p.smallest,
                largest: p.largest,
            },
        )],
        last_seq: Some(mem.max_seq()),
        log_start,
        flushed_tag: (mem.max_tag() > 0).then(|| mem.max_tag()),
        ..VersionEdit::default()
    };
    inner.apply_edit(&mut edit, |sv| sv.imms.retain(|m| !Arc::ptr_eq(m, mem)))?;
    inner.counters.flush_bytes.add(size);
    inner.durable_tag.fetch_max(mem.max_tag(), std::sync::atomic::Ordering::AcqRel);
    if let (Some(log), Some(start)) = (&inner.log, log_start) {
        log.purge_below(start)?;
    }
    Ok(())
}

fn compaction_loop(inner: Arc<Inner>) {
    loop {
        {
            let mut bg = inner.bg.lock();
            while !bg.compaction_wanted && !bg.shutdown && bg.error.is_none() {
                inner.bg_cv.wait_for(&mut bg, Duration::from_secs(1));
            }
            if bg.shutdown || bg.error.is_some() {
                return;
            }
            bg.compaction_wanted = false;
        }
        loop {
            let _guard = inner.compaction_lock.lock();
            if inner.bg.lock().shutdown {
                return;
            }
            let picked = {
                let vs = inner.versions.lock();
                compaction::pick(&vs.current, &inner.opts)
            };
            let Some(c) = picked else { break };
            if let Err(e) = compaction::run(&inner, c) {
                inner.poison(&e);
                return;
            }
            inner.bg_cv.notify_all();
        }
    }
}

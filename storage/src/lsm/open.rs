//! Opening an LSM engine: recovering the version set from the manifest,
//! removing orphan files, replaying the log, and starting a fresh manifest.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::{Condvar, Mutex, RwLock};
use strata_wal::{Wal, WalOptions};

use crate::batch::BatchOp;
use crate::error::{IoContext, Result, StorageError};
use crate::fsutil::{lock_dir, sync_dir};
use crate::lsm::LsmOptions;
use crate::lsm::background;
use crate::lsm::cache::{ReadCounters, ReadCtx, block_cache};
use crate::lsm::engine::{
    BgState, Inner, LsmEngine, Sequencer, SuperVersion, VersionSet, WriteCounters, decode_log_record,
};
use crate::lsm::key::Kind;
use crate::lsm::levels::TableCache;
use crate::lsm::manifest::{self, Manifest, manifest_name, parse_manifest_name};
use crate::lsm::memtable::Memtable;
use crate::lsm::version::{FileMeta, FileSpec, Version, VersionEdit, table_file_name};
use crate::stats::Counter;

const LOG_DIR: &str = "log";

/// The state the manifest describes.
#[derive(Debug, Default)]
struct State {
    files: BTreeMap<u64, (usize, FileSpec)>,
    next_file_id: u64,
    last_seq: u64,
    log_start: u64,
    flushed_tag: u64,
}

impl State {
    fn apply(&mut self, e: &VersionEdit) {
        for (_, id) in &e.deleted {
            self.files.remove(id);
        }
        for (level, spec) in &e.added {
            self.files.insert(spec.id, (*level, spec.clone()));
        }
        if let Some(v) = e.next_file_id {
            self.next_file_id = self.next_file_id.max(v);
        }
        if let Some(v) = e.last_seq {
            self.last_seq = self.last_seq.max(v);
        }
        if let Some(v) = e.log_start {
            self.log_start = self.log_start.max(v);
        }
        if let Some(v) = e.flushed_tag {
            self.flushed_tag = self.flushed_tag.max(v);
        }
    }

    fn snapshot(&self) -> VersionEdit {
        VersionEdit {
            added: self.files.values().map(|(l, s)| (*l, s.clone())).collect(),
            deleted: Vec::new(),
            next_file_id: Some(self.next_file_id),
            last_seq: Some(self.last_seq),
            log_start: Some(self.log_start),
            flushed_tag: Some(self.flushed_tag),
        }
    }
}

pub(crate) fn open(dir: &Path, opts: LsmOptions) -> Result<LsmEngine> {
    opts.validate()?;
    fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let lock = lock_dir(dir)?;
    let mut state = State { next_file_id: 1, log_start: 1, ..State::default() };
    let old_manifest = match manifest::recover(dir, opts.levels)? {
        Some(r) => {
            if r.torn_bytes > 0 {
                tracing::warn!(dir = %dir.display(), bytes = r.torn_bytes, "manifest ended in a torn edit; recovered to the last whole one");
            }
            for e in &r.edits {
                state.apply(e);
            }
            Some(r.manifest_id)
        }
        None => None,
    };
    let live_tables = remove_orphans(dir, &state, old_manifest)?;
    for (id, (_, spec)) in &state.files {
        match live_tables.get(id) {
            Some(&size) if size == spec.size => {}
            Some(&size) => {
                return Err(StorageError::corruption(
                    dir.join(table_file_name(*id)),
                    format!("table is {size} bytes, the manifest says {}", spec.size),
                ));
            }
            None => {
                return Err(StorageError::corruption(
                    dir.join(table_file_name(*id)),
                    "table named by the manifest is missing",
                ));
            }
        }
    }

    let mut version = Version::empty(opts.levels);
    for (level, spec) in state.files.values() {
        version.levels[*level].push(Arc::new(FileMeta::new(dir, spec.clone())));
    }
    // Order the levels as `Version::apply` keeps them.
    let version = version.apply(&VersionEdit::default(), dir);
    version.check().map_err(|e| StorageError::corruption(dir, e))?;

    let mut durable_tag = state.flushed_tag;
    let mut imms: Vec<Arc<Memtable>> = Vec::new();
    let mut mem = Arc::new(Memtable::new(opts.memtable_bytes));
    let log = match opts.log {
        Some(policy) => {
            let wal = Wal::open(
                dir.join(LOG_DIR),
                WalOptions {
                    first_index: state.log_start,
                    sync_policy: policy,
                    segment_bytes: opts.log_segment_bytes,
                    preallocate_bytes: opts.log_segment_bytes,
                    ..WalOptions::default()
                },
            )?;
            if wal.last_index() >= state.log_start && wal.first_index() > state.log_start {
                return Err(StorageError::corruption(
                    dir.join(LOG_DIR),
                    format!(
                        "log starts at index {} but entries from {} are needed",
                        wal.first_index(),
                        state.log_start
                    ),
                ));
            }
            for entry in wal.entries(state.log_start.max(wal.first_index())) {
                let entry = entry?;
                let (first_seq, batch) = decode_log_record(&entry.payload).ok_or_else(|| {
                    StorageError::corruption(
                        dir.join(LOG_DIR),
                        format!("log entry {} is not a write batch", entry.index),
                    )
                })?;
                for (i, op) in batch.iter().enumerate() {
                    match op {
                        BatchOp::Put(k, v) => mem.insert(k, first_seq + i as u64, Kind::Put, v),
                        BatchOp::Delete(k) => mem.insert(k, first_seq + i as u64, Kind::Delete, b""),
                    }
                }
                mem.note_batch(batch.tag(), Some(entry.index));
                state.last_seq = state.last_seq.max(first_seq + batch.len() as u64 - 1);
                // What the log holds after recovery is on disk.
                durable_tag = durable_tag.max(batch.tag().unwrap_or(0));
                if mem.approximate_bytes() >= opts.memtable_bytes {
                    imms.insert(0, std::mem::replace(&mut mem, Arc::new(Memtable::new(opts.memtable_bytes))));
                }
            }
            Some(wal)
        }
        None => {
            let log_dir = dir.join(LOG_DIR);
            if log_dir.exists() {
                let wal = Wal::open(&log_dir, WalOptions::default())?;
                if wal.last_index() >= state.log_start {
                    return Err(StorageError::InvalidArgument(format!(
                        "{} holds logged writes that are not in tables; open the engine with its log",
                        dir.display()
                    )));
                }
            }
            None
        }
    };

    // A fresh manifest describing everything recovered.
    let manifest_id = state.next_file_id;
    state.next_file_id += 1;
    let manifest = Manifest::create(dir, manifest_id, &state.snapshot())?;
    if let Some(old) = old_manifest.filter(|&old| old != manifest_id) {
        fs::remove_file(dir.join(manifest_name(old))).context(|| format!("removing {}", manifest_name(old)))?;
        sync_dir(dir)?;
    }

    let version = Arc::new(version);
    let inner = Arc::new(Inner {
        dir: dir.to_path_buf(),
        ctx: Arc::new(ReadCtx { cache: block_cache(opts.block_cache_bytes), counters: ReadCounters::default() }),
        tables: Arc::new(TableCache::new(opts.max_open_tables)),
        current: RwLock::new(Arc::new(SuperVersion { mem, imms, version: version.clone() })),
        write: Mutex::new(state.last_seq),
        seqs: Sequencer::new(state.last_seq),
        log,
        versions: Mutex::new(VersionSet {
            manifest,
            current: version,
            next_file_id: state.next_file_id,
            last_seq: state.last_seq,
            log_start: state.log_start,
            flushed_tag: state.flushed_tag,
        }),
        bg: Mutex::new(BgState { compaction_wanted: true, ..BgState::default() }),
        bg_cv: Condvar::new(),
        compaction_lock: Mutex::new(()),
        counters: WriteCounters {
            compaction_bytes: (0..opts.levels).map(|_| Counter::default()).collect(),
            ..WriteCounters::default()
        },
        durable_tag: AtomicU64::new(durable_tag),
        unsynced_tags: Mutex::new(Default::default()),
        opts,
        _lock: lock,
    });
    let workers = background::start(&inner)?;
    Ok(LsmEngine { inner, workers: Mutex::new(workers) })
}

/// Removes what a crash or an old version left behind: tables the manifest
/// does not name, old manifests, temporary files. Returns the sizes of the
/// live tables.
fn remove_orphans(dir: &Path, state: &State, current_manifest: Option<u64>) -> Result<BTreeMap<u64, u64>> {
    let mut live = BTreeMap::new();
    let mut removed = false;
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let orphan = if let Some(id) = name.strip_suffix(".sst").and_then(|n| n.parse::<u64>().ok()) {
            if state.files.contains_key(&id) {
                let size = entry.metadata().context(|| format!("reading {}", path.display()))?.len();
                live.insert(id, size);
                false
            } else {
                true
            }
        } else if let Some(id) = parse_manifest_name(&name) {
            Some(id) != current_manifest
        } else {
            name.ends_with(".tmp")
        };
        if orphan {
            tracing::info!(path = %path.display(), "removing an orphan file");
            fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(live)
}

//! The segment preparer: a background thread that zero-fills the next segment
//! file before the log needs it.
//!
//! `fallocate` reserves blocks as *unwritten* extents; the first fdatasync
//! that writes into such a block must also commit the extent's conversion to
//! the filesystem journal, which on ext4 costs a batch commit about 1.5× the
//! fdatasync of a block written before (measured by the `wal` bench). A file
//! whose blocks were written once with zeros has no such cost, so segments
//! after the first are zero-filled ahead of time, off the write path (etcd's
//! file pipeline does the same with fallocate). When no prepared file is
//! ready — the first segment, a log outrunning its preparer, a full disk — a
//! roll falls back to `fallocate`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{IoContext, Result};

/// Name of the `n`-th file prepared; it matches the `log.*.tmp` pattern that
/// open removes, so a crash leaves nothing behind, and no two preparations
/// share a name, so a file handed out is never touched by the next one.
fn prepared_name(n: u64) -> String {
    format!("log.prepared-{n}.tmp")
}
/// Zeros are written and synced in steps of this size, so that preparing
/// never floods the disk queue in front of the log's own fdatasyncs.
const STEP: usize = 1 << 20;

#[derive(Debug, Default)]
struct State {
    /// A zero-filled, synced file ready to become a segment, and its path.
    ready: Option<(File, PathBuf)>,
    /// The writer asked for a file.
    wanted: bool,
    /// A file is being prepared.
    busy: bool,
    shutdown: bool,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    signal: Condvar,
}

/// Handle to the preparer thread.
#[derive(Debug)]
pub(crate) struct SegmentPreparer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl SegmentPreparer {
    /// Starts the preparer for segments of `bytes` bytes in `dir`.
    pub(crate) fn start(dir: &Path, bytes: u64) -> Result<SegmentPreparer> {
        let inner = Arc::new(Inner { state: Mutex::new(State::default()), signal: Condvar::new() });
        let thread = {
            let inner = inner.clone();
            let dir = dir.to_path_buf();
            std::thread::Builder::new()
                .name("strata-wal-prepare".into())
                .spawn(move || run(&inner, &dir, bytes))
                .map_err(|e| crate::error::WalError::io("starting the segment preparer thread", e))?
        };
        Ok(SegmentPreparer { inner, thread: Some(thread) })
    }

    /// Asks for the next file to be prepared (a no-op while one is ready or
    /// being prepared).
    pub(crate) fn request(&self) {
        let mut s = self.inner.state.lock();
        if s.ready.is_none() && !s.wanted && !s.busy {
            s.wanted = true;
            self.inner.signal.notify_one();
        }
    }

    /// Takes the prepared file, if one is ready, with the path it lies at.
    pub(crate) fn take(&self) -> Option<(File, PathBuf)> {
        self.inner.state.lock().ready.take()
    }
}

impl Drop for SegmentPreparer {
    fn drop(&mut self) {
        self.inner.state.lock().shutdown = true;
        self.inner.signal.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // An unused prepared file would only be removed by the next open.
        if let Some((_, path)) = self.inner.state.lock().ready.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn run(inner: &Inner, dir: &Path, bytes: u64) {
    for n in 0.. {
        {
            let mut s = inner.state.lock();
            // One file at a time: prepare only when asked and none is ready.
            while !(s.shutdown || s.wanted && s.ready.is_none()) {
                inner.signal.wait(&mut s);
            }
            if s.shutdown {
                return;
            }
            s.wanted = false;
            s.busy = true;
        }
        let path = dir.join(prepared_name(n));
        let result = prepare(inner, &path, bytes);
        let mut s = inner.state.lock();
        s.busy = false;
        match result {
            Ok(Some(file)) => s.ready = Some((file, path)),
            Ok(None) => return,
            Err(e) => {
                // Rolls fall back to fallocate; the failure is only a warning.
                tracing::warn!(error = %e, "could not prepare the next log segment");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Writes `bytes` zeros to a fresh file; `None` if shut down part way.
fn prepare(inner: &Inner, path: &Path, bytes: u64) -> Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .context(|| format!("creating {}", path.display()))?;
    let zeros = vec![0u8; STEP.min(bytes as usize)];
    let mut at = 0u64;
    while at < bytes {
        if inner.state.lock().shutdown {
            let _ = std::fs::remove_file(path);
            return Ok(None);
        }
        let n = (bytes - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at).context(|| format!("zero-filling {}", path.display()))?;
        file.sync_data().context(|| format!("syncing {}", path.display()))?;
        at += n as u64;
    }
    file.sync_all().context(|| format!("syncing {}", path.display()))?;
    Ok(Some(file))
}

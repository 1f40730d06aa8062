//! File-system helpers shared by the file-backed engines.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{IoContext, Result, StorageError};

/// fsyncs a directory, so that creates, renames and deletes in it persist.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).context(|| format!("syncing directory {}", dir.display()))
}

/// Takes the directory's `LOCK` file (flock), so that two processes never
/// open one engine. The lock lasts as long as the returned file.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        StorageError::io(format!("locking {} (is another process using this engine?)", path.display()), e.into())
    })?;
    Ok(file)
}

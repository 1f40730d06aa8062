//! The storage crate's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything an engine can fail with. Cloneable, so that a background error
/// can poison an engine and be returned by every later call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing, with the file.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file failed verification; nothing from it was returned as data.
    #[error("corruption in {path}: {reason}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// What failed, and where in the file.
        reason: String,
    },
    /// The engine's own write-ahead log failed.
    #[error("engine log: {0}")]
    Log(#[from] strata_wal::WalError),
    /// A bad argument: an empty or oversized key, a bad option.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A background job (flush, compaction) failed earlier; the engine takes
    /// no more writes until reopened, so that no half-written state is used.
    #[error("engine stopped after a background error: {0}")]
    Poisoned(String),
    /// The engine is shutting down.
    #[error("the engine is closed")]
    Closed,
    /// An error reported by an external engine (RocksDB).
    #[error("{engine}: {message}")]
    External {
        /// Which engine.
        engine: &'static str,
        /// Its message.
        message: String,
    },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io { context: context.into(), source: Arc::new(source) }
    }

    pub(crate) fn corruption(path: impl Into<PathBuf>, reason: impl Into<String>) -> StorageError {
        StorageError::Corruption { path: path.into(), reason: reason.into() }
    }
}

/// Adds a context to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| StorageError::io(f(), e))
    }
}

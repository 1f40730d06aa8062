//! The log's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Result alias of this crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Everything the log can fail with. Cloneable, because one failed write
/// completes every append of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the log was doing, with the file it was doing it to.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The log's files hold data that fails verification and is not a torn
    /// tail. Nothing past `offset` is read as data.
    #[error("corrupt log at {path}, byte offset {offset}: {reason}")]
    Corrupt {
        /// The damaged segment.
        path: PathBuf,
        /// Byte offset of the first bad byte range within it.
        offset: u64,
        /// What failed.
        reason: String,
    },
    /// A payload larger than `WalOptions::max_record_bytes`.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Payload size offered.
        size: usize,
        /// The configured limit.
        limit: u32,
    },
    /// Record kind 0 is reserved (it is what zero-filled space reads as).
    #[error("record kind 0 is reserved")]
    ReservedKind,
    /// An index outside what the log holds or may be truncated to.
    #[error("index {index} is outside the log ({first}..={last})")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// First index held.
        first: u64,
        /// Last index held (first - 1 when empty).
        last: u64,
    },
    /// Options that cannot work together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The log has been closed.
    #[error("the log is closed")]
    Closed,
    /// An earlier write or sync failed in a way that leaves the file's state
    /// unknown (a failed fdatasync may have dropped dirty pages); the log takes
    /// no more writes until it is reopened and recovered.
    #[error("the log stopped taking writes after an earlier failure: {0}")]
    Poisoned(String),
}

impl WalError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> WalError {
        WalError::Io { context: context.into(), source: Arc::new(source) }
    }
}

/// Adds a context to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| WalError::io(f(), e))
    }
}

//! How a log is opened and when it syncs.

use std::time::Duration;

use crate::error::{Result, WalError};

/// When an append is acknowledged, and when the log calls fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Acknowledge an append only after an fdatasync that covers it. Appends
    /// that queue up during one fdatasync share the next one (group commit).
    Always,
    /// ZooKeeper's SyncRequestProcessor: keep writing while appends keep
    /// arriving, and fdatasync once the queue runs dry, or once `max_bytes`
    /// are unsynced, or once the oldest unsynced append waited `max_delay`.
    /// Appends are acknowledged after that fdatasync.
    Batch {
        /// Longest an unsynced append waits for its fdatasync.
        max_delay: Duration,
        /// Most bytes written between two fdatasyncs.
        max_bytes: usize,
    },
    /// Acknowledge after the write (page cache); fdatasync every interval.
    /// A crash of the machine may lose up to one interval of acknowledged
    /// appends; a crash of the process loses none.
    Interval(Duration),
    /// Acknowledge after the write; fdatasync only when asked (`Wal::sync`),
    /// when a segment is finished, and on close. For tests and benchmarks.
    Never,
}

impl SyncPolicy {
    /// Whether an append is acknowledged only once it is on disk.
    pub fn acknowledges_after_sync(&self) -> bool {
        matches!(self, SyncPolicy::Always | SyncPolicy::Batch { .. })
    }
}

/// Options for [`crate::Wal::open`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Index of the first record of a log created by this open (ignored when
    /// the directory already holds a log).
    pub first_index: u64,
    /// When appends are acknowledged and synced.
    pub sync_policy: SyncPolicy,
    /// A segment is finished, and the next one started, once it holds this
    /// many bytes (a single larger record still fits in one segment).
    pub segment_bytes: u64,
    /// Segment files grow by this many preallocated bytes at a time, so that
    /// an fdatasync never has to write a new file size (ZooKeeper's
    /// preAllocSize).
    pub preallocate_bytes: u64,
    /// Largest payload accepted (larger appends fail with
    /// [`WalError::RecordTooLarge`]; on open a larger length is damage).
    pub max_record_bytes: u32,
    /// Bytes of appends that may wait for the writer; past this, appenders
    /// wait, so memory stays bounded.
    pub max_queue_bytes: usize,
    /// On open, cut the log at the first corrupt record instead of failing
    /// (what ZooKeeper's and etcd's repair tools do). Discards everything
    /// after it, including records that may have been acknowledged.
    pub repair_corruption: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            first_index: 1,
            sync_policy: SyncPolicy::Always,
            segment_bytes: 64 << 20,
            preallocate_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
            max_queue_bytes: 16 << 20,
            repair_corruption: false,
        }
    }
}

impl WalOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(WalError::InvalidOptions(m.to_string()));
        if self.first_index == 0 {
            return bad("first_index must be at least 1 (index 0 means 'before the log')");
        }
        if self.segment_bytes < 4096 || self.preallocate_bytes < 4096 {
            return bad("segment_bytes and preallocate_bytes must be at least 4096");
        }
        // Record offsets within a segment are kept as u32.
        if self.segment_bytes + u64::from(self.max_record_bytes) + self.preallocate_bytes >= u64::from(u32::MAX) {
            return bad("segment_bytes + max_record_bytes + preallocate_bytes must stay below 4 GiB");
        }
        if self.max_queue_bytes == 0 {
            return bad("max_queue_bytes must be positive");
        }
        if let SyncPolicy::Interval(d) = self.sync_policy {
            if d.is_zero() {
                return bad("SyncPolicy::Interval needs a positive interval (use Always)");
            }
        }
        Ok(())
    }
}

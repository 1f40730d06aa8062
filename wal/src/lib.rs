//! strata-wal: a segmented, checksummed write-ahead log with group commit.
//!
//! Every durable byte of Strata passes through this log: it is the server's
//! transaction log (the Raft log, ZooKeeper's `log.<zxid>` files) and the LSM
//! engine's own log when that engine is used as a library.
//!
//! # Use
//!
//! [`Wal::open`] a directory, then [`Wal::append`] from any number of threads
//! (or [`Wal::append_async`] from tasks). One writer thread takes everything
//! queued, writes it with one `pwrite` and covers it with one `fdatasync`
//! (group commit), then acknowledges every append of the batch. When an append
//! is acknowledged is the [`SyncPolicy`]. Read back with [`Wal::get`] and
//! [`Wal::entries`]; cut a conflicting suffix with [`Wal::truncate_after`],
//! drop old segments with [`Wal::purge_below`], start over at a new index with
//! [`Wal::reset`].
//!
//! # On-disk format
//!
//! A log is a directory of segment files named `log.<first index>`, the index
//! in 16 lower-case hex digits so that names sort in log order (like
//! ZooKeeper's `log.<zxid>`). All integers are little-endian.
//!
//! ```text
//! segment header, 64 bytes:
//!   0  magic          8  "STRATWAL"
//!   8  version        4  1
//!  12  reserved       4  0
//!  16  first_index    8  index of the segment's first record
//!  24  generation     8  bumped by every reset; older generations are stale
//!  32  prev_crc       4  checksum of the record before first_index (0 at the
//!                        start of a generation): the seed of this segment's chain
//!  36  reserved      24  0
//!  60  header_crc     4  crc32c of bytes 0..60
//!
//! record frame, from byte 64 on, back to back:
//!   0  len            4  payload length
//!   4  crc            4  crc32c over (len, kind, payload), seeded with the
//!                        previous record's crc (etcd's chain: a dropped,
//!                        duplicated or reordered record breaks it)
//!   8  kind           1  caller-defined, 1..=255 (0 is never written)
//!   9  payload      len
//! ```
//!
//! Indexes are dense: the k-th record of a segment has index `first_index + k`.
//! Segments are preallocated ([`WalOptions::preallocate_bytes`], 64 MiB by
//! default, ZooKeeper's preAllocSize), so that an `fdatasync` writes data, not
//! a new file size: a new log's first segment is written out with zeros, a
//! background thread zero-fills the next segment while the current one fills
//! up, and where no such file is ready the log falls back to `fallocate` (see
//! the `prepare` module for why both). A segment grows by
//! further `fallocate` steps if a write would pass its end. The unwritten rest
//! of a segment reads as zeros, and an all-zero frame header marks the end of
//! the records.
//!
//! A `LOCK` file in the directory, held with `flock`, keeps a second process
//! from opening the same log.
//!
//! # Guarantees
//!
//! * An append acknowledged under [`SyncPolicy::Always`] or
//!   [`SyncPolicy::Batch`] is on disk: it survives a crash of the process or
//!   the machine.
//! * A crash can only leave a torn tail at the end of the newest segment (a
//!   segment is synced before the next is created, and segments are created
//!   under a temporary name, synced, then renamed, with the directory synced
//!   after every create, rename and delete). On open, a torn tail is cut off
//!   and reported in [`RecoveryReport`].
//! * A record that fails its checksum while valid records follow it is
//!   corruption: [`Wal::open`] fails with [`WalError::Corrupt`] naming the
//!   file and byte offset, unless [`WalOptions::repair_corruption`] asks to
//!   cut the log there. Reads verify the chain again, so bytes that rot
//!   after open are reported, never returned as a record.
//! * [`Wal::truncate_after`], [`Wal::purge_below`] and [`Wal::reset`] leave a
//!   log that opens cleanly if the process dies at any point inside them.
//! * A failed `fdatasync` or write poisons the log (the kernel may have
//!   dropped the dirty pages; PostgreSQL's "fsyncgate"): later appends fail
//!   with [`WalError::Poisoned`] until the log is reopened and recovered. A
//!   failure before any byte was written (preallocation on a full disk) only
//!   fails the appends that were waiting, and the log goes on.

mod completion;
mod error;
pub mod format;
mod options;
mod prepare;
mod recovery;
pub mod scan;
mod segment;
mod shared;
mod stats;
mod wal;
mod writer;

pub use error::{Result, WalError};
pub use options::{SyncPolicy, WalOptions};
pub use recovery::{DiscardedTail, RecoveryReport};
pub use stats::{HistogramSummary, WalStats};
pub use wal::{AppendFuture, Entries, Entry, Pending, Wal};

//! strata-storage: one `KvEngine` trait and Strata's engines behind it.
//!
//! * [`KvEngine`] — point get, atomic [`WriteBatch`] (with an optional tag: the
//!   zxid in the server), ordered scans forward and reverse from a consistent
//!   view, snapshots, flush, major compaction, `durable_seq` (the highest tag
//!   on disk) and [`EngineStats`], from which write, read and space
//!   amplification follow.
//! * [`LsmEngine`] — our log-structured merge-tree: memtable, SSTables with
//!   bloom filters, leveled compaction, an optional log of its own (see
//!   [`lsm`] for its structure and file formats).
//! * [`MemoryEngine`] — an ordered map behind a lock: the reference in tests
//!   and ZooKeeper's classic in-memory mode.
//! * `RocksEngine` (cargo feature `rocksdb`) — RocksDB, linked from the
//!   system's librocksdb and configured like our LSM, for comparisons.
//!
//! Every engine passes the same conformance suite (`tests/conformance.rs`):
//! scripted scenarios and a model test against `BTreeMap`.

mod batch;
pub mod coding;
mod engine;
mod error;
mod fsutil;
pub mod lsm;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;
mod stats;

pub use batch::{BatchIter, BatchOp, WriteBatch};
pub use engine::{KeyRange, KvEngine, KvIter, KvPair, KvSnapshot, Order, prefix_successor};
pub use error::{Result, StorageError};
pub use lsm::{LsmEngine, LsmOptions};
pub use memory::MemoryEngine;
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksEngine, RocksOptions};
pub use stats::{Counter, EngineStats};

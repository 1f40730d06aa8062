//! strata-storage: the `KvEngine` trait and Strata's engines.
//!
//! Not yet built: the storage issue fills this crate (the trait, the LSM
//! engine, the memory engine and the RocksDB adapter) and the B+tree issue
//! adds the paged B+tree. It sits on `strata-wal` (the LSM engine's own log).

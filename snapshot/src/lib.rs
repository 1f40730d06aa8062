//! strata-snapshot: ZooKeeper-style fuzzy snapshots of any `KvEngine`.
//!
//! Not yet built: the server-core issue fills this crate (snapshot files
//! `snapshot.<zxid hex>`, chunked and checksummed, taken while writes go on,
//! restored into an empty engine before a log replay). Its place in the
//! dependency order is fixed now: it sits on `strata-storage`.

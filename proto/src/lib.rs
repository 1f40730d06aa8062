//! strata-proto: the ZooKeeper wire protocol (jute encoding, records, opcodes,
//! error codes), with no I/O.
//!
//! Not yet built: the wire-protocol issue fills this crate. It depends on no
//! other crate of the workspace.

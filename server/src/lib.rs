//! strata-server: the ZooKeeper-compatible coordination server.
//!
//! Not yet built: the server-core issue (data tree, transactions, pipeline,
//! recovery) and the wire issue (networking, sessions, watches, ACLs) fill
//! this crate. It is the only crate that knows what a znode is.

//! strata-client: an async ZooKeeper client with Curator-style recipes.
//!
//! Not yet built: the wire-protocol issue fills this crate and the tools issue
//! adds its recipes. It sits on `strata-proto`.

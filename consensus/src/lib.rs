//! strata-consensus: Raft as a pure, deterministic state machine, and its driver.
//!
//! Not yet built: the consensus issue fills this crate (pre-vote, log
//! replication, snapshots, learners, ReadIndex). Its place in the dependency
//! order is fixed now: it sits on `strata-wal` (the Raft log) and
//! `strata-snapshot` (catching up lagging members).

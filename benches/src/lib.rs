//! strata-benches: criterion benchmarks across Strata's crates. The benches
//! live in `benches/`; this library holds what they share: opening every
//! engine with comparable settings, the db_bench-style key and value shapes,
//! and the summary tables printed after a run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_storage::lsm::SyncPolicy;
use strata_storage::{KvEngine, LsmEngine, LsmOptions, MemoryEngine};

/// Key length of the engine benches (db_bench's default).
pub const KEY_BYTES: usize = 16;
/// Value length of the engine benches (db_bench's default).
pub const VALUE_BYTES: usize = 100;

/// The settings every engine of one run shares, so that a comparison
/// compares designs rather than configurations.
#[derive(Debug, Clone)]
pub struct Shape {
    pub memtable_bytes: usize,
    pub block_cache_bytes: u64,
    pub l1_bytes: u64,
    pub level_ratio: u64,
    pub target_file_bytes: u64,
    pub bloom_bits_per_key: u32,
    /// Sync every write to the engine's log (`false`: the log is written
    /// but not synced per write, as RocksDB's default).
    pub sync_writes: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            memtable_bytes: 64 << 20,
            block_cache_bytes: 256 << 20,
            l1_bytes: 256 << 20,
            level_ratio: 10,
            target_file_bytes: 64 << 20,
            bloom_bits_per_key: 10,
            sync_writes: false,
        }
    }
}

/// The engines this build can measure.
pub fn engine_names() -> Vec<&'static str> {
    let mut v = vec!["memory", "lsm"];
    if cfg!(feature = "rocksdb") {
        v.push("rocksdb");
    }
    v
}

/// Opens engine `name` in `dir` with `shape`.
pub fn open_engine(name: &str, dir: &Path, shape: &Shape) -> Arc<dyn KvEngine> {
    match name {
        "memory" => Arc::new(MemoryEngine::new()),
        "lsm" => Arc::new(
            LsmEngine::open(
                dir,
                LsmOptions {
                    memtable_bytes: shape.memtable_bytes,
                    block_cache_bytes: shape.block_cache_bytes,
                    l1_bytes: shape.l1_bytes,
                    level_ratio: shape.level_ratio,
                    target_file_bytes: shape.target_file_bytes,
                    bloom_bits_per_key: shape.bloom_bits_per_key,
                    log: Some(if shape.sync_writes { SyncPolicy::Always } else { SyncPolicy::Never }),
                    ..LsmOptions::default()
                },
            )
            .expect("opening the LSM engine"),
        ),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Arc::new(
            strata_storage::RocksEngine::open(
                dir,
                strata_storage::RocksOptions {
                    memtable_bytes: shape.memtable_bytes as u64,
                    block_cache_bytes: shape.block_cache_bytes,
                    l1_bytes: shape.l1_bytes,
                    level_ratio: u32::try_from(shape.level_ratio).expect("a small level ratio"),
                    target_file_bytes: shape.target_file_bytes,
                    bloom_bits_per_key: shape.bloom_bits_per_key,
                    sync_writes: shape.sync_writes,
                    ..strata_storage::RocksOptions::default()
                },
            )
            .expect("opening RocksDB"),
        ),
        other => panic!("unknown engine {other}"),
    }
}

/// The 16-byte key of integer `i` (zero-padded decimal, as db_bench).
pub fn bench_key(i: u64) -> [u8; KEY_BYTES] {
    let mut k = [b'0'; KEY_BYTES];
    let s = i.to_string();
    k[KEY_BYTES - s.len()..].copy_from_slice(s.as_bytes());
    k
}

/// A 16-byte key that sorts between `bench_key(i)` and `bench_key(i + 1)`
/// and is never written: for reads of missing keys.
pub fn missing_key(i: u64) -> [u8; KEY_BYTES] {
    let mut k = [b'0'; KEY_BYTES];
    let s = i.to_string();
    k[KEY_BYTES - 1 - s.len()..KEY_BYTES - 1].copy_from_slice(s.as_bytes());
    k[KEY_BYTES - 1] = b'.';
    k
}

/// The 100-byte value written for key `i` in round `round`: it starts with
/// the key, so a read can verify it.
pub fn bench_value(i: u64, round: u64) -> [u8; VALUE_BYTES] {
    let mut v = [b'v'; VALUE_BYTES];
    v[..KEY_BYTES].copy_from_slice(&bench_key(i));
    let r = round.to_string();
    v[KEY_BYTES + 1..KEY_BYTES + 1 + r.len()].copy_from_slice(r.as_bytes());
    v
}

/// Whether a bench binary runs as a benchmark (`cargo bench`), rather than
/// once as a smoke test (`cargo test --all-targets`).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

type TallyKey = (String, String);

/// Time and element counts per (bench, engine), from the same samples
/// criterion sees (criterion does not hand its estimates back), and other
/// per-engine ratios measured along the way.
#[derive(Debug, Default)]
pub struct Tally {
    times: Mutex<BTreeMap<TallyKey, (Duration, u64)>>,
    ratios: Mutex<BTreeMap<TallyKey, (u64, u64)>>,
}

impl Tally {
    pub fn record(&self, bench: &str, engine: &str, took: Duration, elements: u64) {
        let mut m = self.times.lock().expect("tally lock");
        let e = m.entry((bench.to_string(), engine.to_string())).or_default();
        e.0 += took;
        e.1 += elements;
    }

    /// Adds to a ratio `what` = sum of numerators / sum of denominators.
    pub fn record_ratio(&self, what: &str, engine: &str, numerator: u64, denominator: u64) {
        let mut m = self.ratios.lock().expect("tally lock");
        let e = m.entry((what.to_string(), engine.to_string())).or_default();
        e.0 += numerator;
        e.1 += denominator;
    }

    pub fn ratio(&self, what: &str, engine: &str) -> Option<f64> {
        let m = self.ratios.lock().expect("tally lock");
        m.get(&(what.to_string(), engine.to_string())).filter(|(_, d)| *d > 0).map(|(n, d)| *n as f64 / *d as f64)
    }

    /// Elements per second, if measured.
    pub fn rate(&self, bench: &str, engine: &str) -> Option<f64> {
        let m = self.times.lock().expect("tally lock");
        m.get(&(bench.to_string(), engine.to_string()))
            .filter(|(d, _)| !d.is_zero())
            .map(|(d, n)| *n as f64 / d.as_secs_f64())
    }

    /// Prints ops/s per bench and engine, and each engine's ratio to `reference`.
    pub fn print(&self, benches: &[&str], engines: &[&str], reference: &str) {
        print!("\n{:<16}", "ops/s");
        for e in engines {
            print!("{e:>14}");
        }
        for e in engines.iter().filter(|e| **e != reference) {
            print!("{:>14}", format!("{e}/{reference}"));
        }
        println!();
        for b in benches {
            print!("{b:<16}");
            for e in engines {
                match self.rate(b, e) {
                    Some(r) => print!("{r:>14.0}"),
                    None => print!("{:>14}", "-"),
                }
            }
            for e in engines.iter().filter(|e| **e != reference) {
                match (self.rate(b, e), self.rate(b, reference)) {
                    (Some(a), Some(r)) => print!("{:>14.2}", a / r),
                    _ => print!("{:>14}", "-"),
                }
            }
            println!();
        }
    }
}

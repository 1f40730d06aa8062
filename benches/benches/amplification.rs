//! `cargo bench -p strata-benches --bench amplification [--features rocksdb]`
//!
//! Write, read and space amplification of every file-backed engine, measured
//! on the same workload in one run, in a configuration where the data spans
//! at least three levels (4 MiB memtables, a 16 MiB level-1 budget, ratio 10,
//! 4 MiB tables): fillrandom of N keys (`STRATA_BENCH_N`, default
//! 2,000,000; 20,000 as a smoke test), then N overwrites of random keys, all
//! in batches of 1,000, 16-byte keys and 100-byte values. Reported after the
//! background compactions settle, and again after a major compaction:
//!
//! * write amplification = bytes the engine wrote to files / user bytes
//! * read amplification  = data blocks touched per get (10,000 gets of
//!   existing keys, measured for that phase alone)
//! * space amplification = bytes on disk / live user bytes

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_benches::{Shape, bench_key, bench_mode, bench_value, engine_names, open_engine};
use strata_storage::{EngineStats, KvEngine, WriteBatch};

const BATCH: usize = 1000;
const GETS: u64 = 10_000;

/// Write amplification by cause, printed after the table.
static BREAKDOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn write(e: &dyn KvEngine, keys: impl Iterator<Item = u64>, round: u64) {
    let keys: Vec<u64> = keys.collect();
    for chunk in keys.chunks(BATCH) {
        let mut b = WriteBatch::new();
        for &k in chunk {
            b.put(bench_key(k), bench_value(k, round));
        }
        e.write(b).expect("write");
    }
}

/// Waits until background work stops writing (bytes written unchanged for
/// a second).
fn settle(e: &dyn KvEngine) {
    let mut last = e.stats().bytes_written();
    let mut still = Instant::now();
    while still.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(100));
        let now = e.stats().bytes_written();
        if now != last {
            last = now;
            still = Instant::now();
        }
    }
}

/// Data blocks per get over `GETS` gets of existing keys.
fn read_amp(e: &dyn KvEngine, n: u64, rng: &mut StdRng) -> f64 {
    let before = e.stats();
    for _ in 0..GETS {
        let k = rng.gen_range(0..n);
        assert!(e.get(&bench_key(k)).expect("get").is_some(), "key {k} missing");
    }
    let after = e.stats();
    (after.point_get_blocks - before.point_get_blocks) as f64 / (after.point_gets - before.point_gets).max(1) as f64
}

fn line(engine: &str, phase: &str, s: &EngineStats, read_amp: f64, live: u64) {
    let per_user = |b: u64| b as f64 / s.user_bytes_written.max(1) as f64;
    let levels: Vec<String> = s.compaction_bytes_written.iter().map(|&b| format!("{:.2}", per_user(b))).collect();
    BREAKDOWN.lock().expect("lock").push(format!(
        "{engine:<8} {phase:<18} log {:.2} + flush {:.2} + compaction by output level [{}] + other {:.2}",
        per_user(s.log_bytes_written),
        per_user(s.flush_bytes_written),
        levels.join(", "),
        per_user(s.other_bytes_written)
    ));
    println!(
        "{engine:<8} {phase:<18} {:>7.2} {:>7.3} {:>7.2}  {:>10.1} {:>10.1}  {:?}",
        s.write_amplification(),
        read_amp,
        s.space_amplification(live),
        s.disk_bytes as f64 / 1048576.0,
        live as f64 / 1048576.0,
        s.files_per_level
    );
}

fn main() {
    let n: u64 = std::env::var("STRATA_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench_mode() {
        2_000_000
    } else {
        20_000
    });
    let shape = Shape {
        memtable_bytes: 4 << 20,
        block_cache_bytes: 64 << 20,
        l1_bytes: 16 << 20,
        level_ratio: 10,
        target_file_bytes: 4 << 20,
        bloom_bits_per_key: 10,
        sync_writes: false,
    };
    println!("N = {n}, {shape:?}");
    println!(
        "{:<8} {:<18} {:>7} {:>7} {:>7}  {:>10} {:>10}  files per level",
        "engine", "phase", "write", "read", "space", "disk MiB", "live MiB"
    );
    for engine in engine_names().into_iter().filter(|e| *e != "memory") {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = open_engine(engine, dir.path(), &shape);
        let mut keys: Vec<u64> = (0..n).collect();
        keys.shuffle(&mut StdRng::seed_from_u64(1));
        let started = Instant::now();
        write(&*e, keys.into_iter(), 0);
        let mut rng = StdRng::seed_from_u64(2);
        let overwrites: Vec<u64> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        write(&*e, overwrites.into_iter(), 1);
        let wrote = started.elapsed();
        e.flush().expect("flush");
        settle(&*e);
        eprintln!(
            "{engine}: writes took {:.1} s, settled after {:.1} s",
            wrote.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        let live = e.live_bytes().expect("live bytes");
        let ra = read_amp(&*e, n, &mut rng);
        line(engine, "fillrandom+overwr.", &e.stats(), ra, live);
        e.compact().expect("major compaction");
        settle(&*e);
        let ra = read_amp(&*e, n, &mut rng);
        line(engine, "major compaction", &e.stats(), ra, live);
    }
    println!("\nwrite amplification by cause (bytes written per user byte):");
    for l in BREAKDOWN.lock().expect("lock").iter() {
        println!("{l}");
    }
}

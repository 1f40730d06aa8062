//! `cargo bench -p strata-benches --bench engines [--features rocksdb]`
//!
//! Every engine, over the `KvEngine` trait, in one run, with the settings of
//! `Shape::default()` (64 MiB memtables, 256 MiB block cache, 10 bloom bits
//! per key, leveled 256 MiB / x10, no compression): 16-byte keys, 100-byte
//! values, N keys (`STRATA_BENCH_N`, default 1,000,000; 5,000 when run once
//! as a smoke test by `cargo test`).
//!
//! * `fillseq`, `fillrandom` — N keys into a fresh engine, in batches of 1,000
//!   (log written, not synced per write); one element is one key.
//! * `readrandom` — gets of keys that exist, values verified; `readmissing` —
//!   gets of keys that sort among them but were never written (the bloom
//!   filters' work); `scan` — 100 keys forward from a random key; these run
//!   on an engine filled by fillrandom and flushed.
//! * `overwrite` — batches of 1,000 random existing keys into that engine.
//! * `durable_write` — single-key writes, each synced to the engine's log
//!   before it returns (engines that have a log).
//!
//! After the run it prints ops/s per bench and engine with each engine's
//! ratio to RocksDB (to the LSM engine when RocksDB is not built in), and each
//! engine's stats.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_benches::{Shape, Tally, bench_key, bench_mode, bench_value, engine_names, missing_key, open_engine};
use strata_storage::{KeyRange, KvEngine, Order, WriteBatch};

static TALLY: OnceLock<Tally> = OnceLock::new();
/// An engine filled for the read benches: its name, its directory, itself.
type Filled = (&'static str, tempfile::TempDir, Arc<dyn KvEngine>);
static FILLED: OnceLock<Vec<Filled>> = OnceLock::new();

const BATCH: usize = 1000;

fn tally() -> &'static Tally {
    TALLY.get_or_init(Tally::default)
}

fn n() -> u64 {
    std::env::var("STRATA_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench_mode() {
        1_000_000
    } else {
        5_000
    })
}

fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("STRATA_BENCH_DIR").map(Into::into).unwrap_or_else(std::env::temp_dir)
}

fn write_keys(e: &dyn KvEngine, keys: &[u64], round: u64) {
    for chunk in keys.chunks(BATCH) {
        let mut b = WriteBatch::new();
        for &k in chunk {
            b.put(bench_key(k), bench_value(k, round));
        }
        e.write(b).expect("write");
    }
}

fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n).collect();
    keys.shuffle(&mut StdRng::seed_from_u64(seed));
    keys
}

fn fills(c: &mut Criterion) {
    let n = n();
    for (bench, keys) in [("fillseq", (0..n).collect::<Vec<u64>>()), ("fillrandom", shuffled(n, 1))] {
        let mut g = c.benchmark_group(format!("engines/{bench}"));
        g.sample_size(10).sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(n));
        for engine in engine_names() {
            g.bench_function(engine, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir_in(bench_dir()).expect("temp dir");
                        let e = open_engine(engine, dir.path(), &Shape::default());
                        let start = Instant::now();
                        write_keys(&*e, &keys, 0);
                        total += start.elapsed();
                    }
                    tally().record(bench, engine, total, iters * n);
                    total
                })
            });
        }
        g.finish();
    }
}

/// One engine per kind, filled by fillrandom and flushed, shared by the read
/// benches and then overwritten.
fn filled() -> &'static [Filled] {
    FILLED.get_or_init(|| {
        let keys = shuffled(n(), 2);
        engine_names()
            .into_iter()
            .map(|name| {
                let dir = tempfile::tempdir_in(bench_dir()).expect("temp dir");
                let e = open_engine(name, dir.path(), &Shape::default());
                write_keys(&*e, &keys, 0);
                e.flush().expect("flush");
                (name, dir, e)
            })
            .collect()
    })
}

fn reads(c: &mut Criterion) {
    let n = n();
    let mut g = c.benchmark_group("engines/read");
    g.throughput(Throughput::Elements(1));
    for (name, _, e) in filled() {
        let mut rng = StdRng::seed_from_u64(3);
        g.bench_function(format!("readrandom/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let k = rng.gen_range(0..n);
                    let v = e.get(&bench_key(k)).expect("get").expect("the key was written");
                    assert_eq!(&v[..16], &bench_key(k), "wrong value for key {k}");
                }
                let took = start.elapsed();
                tally().record("readrandom", name, took, iters);
                took
            })
        });
        g.bench_function(format!("readmissing/{name}"), |b| {
            b.iter_custom(|iters| {
                let before = e.stats();
                let start = Instant::now();
                for _ in 0..iters {
                    let k = rng.gen_range(0..n);
                    assert!(e.get(&missing_key(k)).expect("get").is_none());
                }
                let took = start.elapsed();
                let after = e.stats();
                tally().record("readmissing", name, took, iters);
                tally().record_ratio(
                    "readmissing blocks per get",
                    name,
                    after.point_get_blocks - before.point_get_blocks,
                    after.point_gets - before.point_gets,
                );
                took
            })
        });
        g.bench_function(format!("scan100/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let k = rng.gen_range(0..n);
                    let got =
                        e.scan(KeyRange::from(bench_key(k).to_vec()), Order::Forward).expect("scan").take(100).count();
                    assert_eq!(got as u64, 100.min(n - k));
                }
                let took = start.elapsed();
                tally().record("scan100", name, took, iters);
                took
            })
        });
    }
    g.finish();
}

fn overwrite(c: &mut Criterion) {
    let n = n();
    let mut g = c.benchmark_group("engines/overwrite");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, _, e) in filled() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut round = 1;
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let keys: Vec<u64> = (0..iters * BATCH as u64).map(|_| rng.gen_range(0..n)).collect();
                let start = Instant::now();
                write_keys(&**e, &keys, round);
                let took = start.elapsed();
                round += 1;
                tally().record("overwrite", name, took, keys.len() as u64);
                took
            })
        });
    }
    g.finish();
}

fn durable_writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("engines/durable_write");
    g.throughput(Throughput::Elements(1));
    let shape = Shape { sync_writes: true, ..Shape::default() };
    for name in engine_names().into_iter().filter(|n| *n != "memory") {
        let dir = tempfile::tempdir_in(bench_dir()).expect("temp dir");
        let e = open_engine(name, dir.path(), &shape);
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut batch = WriteBatch::new();
                    batch.put(bench_key(i), bench_value(i, 0));
                    e.write(batch).expect("write");
                    i += 1;
                }
                let took = start.elapsed();
                tally().record("durable_write", name, took, iters);
                took
            })
        });
    }
    g.finish();
}

fn summary(_c: &mut Criterion) {
    let engines = engine_names();
    let reference = if engines.contains(&"rocksdb") { "rocksdb" } else { "lsm" };
    println!("\nN = {} keys of {} bytes, values of {} bytes", n(), 16, 100);
    tally().print(
        &["fillseq", "fillrandom", "readrandom", "readmissing", "scan100", "overwrite", "durable_write"],
        &engines,
        reference,
    );
    for name in &engines {
        if let Some(r) = tally().ratio("readmissing blocks per get", name) {
            println!("{name}: readmissing touched {r:.4} data blocks per get");
        }
    }
    println!("\nafter fillrandom + flush + reads + overwrite:");
    for (name, _, e) in filled() {
        let s = e.stats();
        println!(
            "{name:>8}: write amp {:.2}, data blocks per get {:.3}, bloom useful {}/{}, files per level {:?}",
            s.write_amplification(),
            s.read_amplification(),
            s.bloom_useful,
            s.bloom_checks,
            s.files_per_level
        );
    }
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5))
}

criterion_group! { name = benches; config = config(); targets = fills, reads, overwrite, durable_writes, summary }
criterion_main!(benches);

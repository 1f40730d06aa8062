//! `cargo bench -p strata-benches --bench wal`
//!
//! Measures, in one run and in one directory (`STRATA_BENCH_DIR`, default the
//! system temp dir):
//! * `raw_fdatasync_4k` — the disk itself: a 4 KiB pwrite + fdatasync in a
//!   loop, over a file whose blocks were written once beforehand (so neither
//!   allocation nor a file-size update is part of the cost: the floor).
//! * `durable_append/N` — 128-byte appends under `SyncPolicy::Always` from N
//!   concurrent appenders (1, 4, 16, 64); one element is one acknowledged
//!   append, so criterion's time is the per-append cost at that concurrency.
//! * `durable_append_async/64` — the same from 64 tasks on a 2-worker tokio
//!   runtime (`append_async`), as the server appends.
//!
//! After the run it prints the batch sizes group commit achieved at each
//! concurrency and the two ratios the README reports: single-appender durable
//! latency over raw fdatasync latency, and 64-appender throughput over
//! single-appender throughput.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_wal::{SyncPolicy, Wal, WalOptions};

const RECORD: usize = 128;
const RAW_WRITE: usize = 4096;
const RAW_FILE: u64 = 64 << 20;

/// Mean seconds per element of each bench, from the same samples criterion
/// sees (criterion does not hand its estimates back to the bench).
static MEANS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(name: &str, elapsed: Duration, elements: u64) {
    let mut m = MEANS.lock().unwrap();
    let e = m.entry(name.to_string()).or_default();
    e.0 += elapsed;
    e.1 += elements;
}

fn mean(name: &str) -> Option<f64> {
    let m = MEANS.lock().unwrap();
    m.get(name).map(|(d, n)| d.as_secs_f64() / *n as f64)
}

fn bench_dir() -> PathBuf {
    std::env::var_os("STRATA_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

fn raw_fdatasync(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let path = dir.path().join("raw");
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for i in 0..RAW_FILE / chunk.len() as u64 {
        file.write_all_at(&chunk, i * chunk.len() as u64).unwrap();
    }
    file.sync_all().unwrap();
    let block = vec![0x5au8; RAW_WRITE];
    let mut at = 0u64;
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_fdatasync_4k", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                file.write_all_at(&block, at).unwrap();
                file.sync_data().unwrap();
                at = (at + RAW_WRITE as u64) % RAW_FILE;
            }
            let took = start.elapsed();
            record("raw_fdatasync_4k", took, iters);
            took
        })
    });
    g.finish();
}

fn durable_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal/durable_append");
    g.throughput(Throughput::Elements(1));
    let mut batches = Vec::new();
    for appenders in [1usize, 4, 16, 64] {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let wal = Arc::new(
            Wal::open(dir.path(), WalOptions { sync_policy: SyncPolicy::Always, ..Default::default() }).unwrap(),
        );
        let name = format!("durable_append/{appenders}");
        g.bench_function(format!("{appenders}"), |b| {
            b.iter_custom(|iters| {
                // Every appender does its share; the clock runs from the
                // moment all are ready until the last acknowledgement.
                let per = iters.div_ceil(appenders as u64).max(1);
                let barrier = Arc::new(Barrier::new(appenders + 1));
                let threads: Vec<_> = (0..appenders)
                    .map(|_| {
                        let wal = wal.clone();
                        let barrier = barrier.clone();
                        std::thread::spawn(move || {
                            let payload = vec![0xa5u8; RECORD];
                            barrier.wait();
                            for _ in 0..per {
                                wal.append(1, payload.clone()).unwrap();
                            }
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                for t in threads {
                    t.join().unwrap();
                }
                let took = start.elapsed();
                record(&name, took, per * appenders as u64);
                // Criterion expects the time of `iters` elements.
                took.mul_f64(iters as f64 / (per * appenders as u64) as f64)
            })
        });
        let s = wal.stats();
        batches.push((appenders, s.batch_records, s.fsyncs, s.records_appended, s.fsync_latency_us));
    }
    g.finish();

    // The server appends from tasks, not threads: 64 tasks on a 2-worker
    // runtime, each appending in a loop with `append_async`.
    let mut g = c.benchmark_group("wal/durable_append_async");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let wal =
        Arc::new(Wal::open(dir.path(), WalOptions { sync_policy: SyncPolicy::Always, ..Default::default() }).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    g.bench_function("64", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(64).max(1);
            let start = Instant::now();
            rt.block_on(async {
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let wal = wal.clone();
                        tokio::spawn(async move {
                            for _ in 0..per {
                                wal.append_async(1, vec![0xa5u8; RECORD]).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let took = start.elapsed();
            record("durable_append_async/64", took, per * 64);
            took.mul_f64(iters as f64 / (per * 64) as f64)
        })
    });
    g.finish();
    let s = wal.stats();
    batches.push((64, s.batch_records, s.fsyncs, s.records_appended, s.fsync_latency_us));

    println!("\ngroup commit: records per batch (one write + one fdatasync each; the last row: 64 async tasks)");
    println!("{:>10} {:>10} {:>8} {:>8} {:>8} {:>14}", "appenders", "records", "mean", "p50", "max", "fsync p50 us");
    for (n, b, _fsyncs, records, lat) in &batches {
        println!("{n:>10} {records:>10} {:>8.1} {:>8} {:>8} {:>14}", b.mean, b.p50, b.max, lat.p50);
    }
    if let (Some(raw), Some(one), Some(many), Some(tasks)) =
        (mean("raw_fdatasync_4k"), mean("durable_append/1"), mean("durable_append/64"), mean("durable_append_async/64"))
    {
        println!("\nraw 4 KiB write + fdatasync:        {:>9.1} us", raw * 1e6);
        println!("durable append, 1 appender:         {:>9.1} us  ({:.0} appends/s)", one * 1e6, 1.0 / one);
        println!("durable append, 64 appenders:       {:>9.1} us  ({:.0} appends/s)", many * 1e6, 1.0 / many);
        println!("single-appender latency / raw fdatasync:  {:.2}  (target <= 1.3)", one / raw);
        println!("durable append, 64 async tasks:     {:>9.1} us  ({:.0} appends/s)", tasks * 1e6, 1.0 / tasks);
        println!("64-appender throughput / single-appender: {:.1}x (target >= 20x)", one / many);
        println!("64-task throughput / single-appender:     {:.1}x", one / tasks);
    }
}

fn config() -> Criterion {
    Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5))
}

criterion_group! { name = benches; config = config(); targets = raw_fdatasync, durable_append }
criterion_main!(benches);

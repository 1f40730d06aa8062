//! The conformance suite every engine passes before anything else: scripted
//! scenarios, and a model test of random operations against `BTreeMap`, with
//! flushes, compactions and (for engines that persist) reopens between steps.
//!
//! `conformance!(name, harness)` instantiates the whole suite for one engine.
//! Seeds are printed; `STRATA_SEED` replays, `PROPTEST_CASES` runs more.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use strata_storage::lsm::SyncPolicy;
use strata_storage::{KeyRange, KvEngine, LsmEngine, LsmOptions, MemoryEngine, Order, WriteBatch};

/// How the suite opens one engine.
pub trait Harness: Sync {
    /// Opens (or reopens) the engine in `dir`.
    fn open(&self, dir: &Path) -> Arc<dyn KvEngine>;
    /// Whether data survives a reopen.
    fn persistent(&self) -> bool;
}

struct Memory;
impl Harness for Memory {
    fn open(&self, _dir: &Path) -> Arc<dyn KvEngine> {
        Arc::new(MemoryEngine::new())
    }
    fn persistent(&self) -> bool {
        false
    }
}

/// The LSM engine with settings small enough that the suite's data spans
/// several flushes, levels and compactions.
struct Lsm {
    log: Option<SyncPolicy>,
}

impl Lsm {
    fn options(&self) -> LsmOptions {
        LsmOptions {
            memtable_bytes: 64 << 10,
            block_bytes: 1024,
            block_cache_bytes: 1 << 20,
            l1_bytes: 256 << 10,
            target_file_bytes: 64 << 10,
            l0_compaction_trigger: 2,
            l0_slowdown_trigger: 6,
            l0_stop_trigger: 10,
            log: self.log,
            log_segment_bytes: 1 << 20,
            ..LsmOptions::default()
        }
    }
}

impl Harness for Lsm {
    fn open(&self, dir: &Path) -> Arc<dyn KvEngine> {
        Arc::new(LsmEngine::open(dir, self.options()).unwrap())
    }
    fn persistent(&self) -> bool {
        true
    }
}

fn put(e: &dyn KvEngine, k: &[u8], v: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(k, v);
    e.write(b).unwrap();
}

fn del(e: &dyn KvEngine, k: &[u8]) {
    let mut b = WriteBatch::new();
    b.delete(k);
    e.write(b).unwrap();
}

fn collect(e: &dyn KvEngine, range: KeyRange, order: Order) -> Vec<(Vec<u8>, Vec<u8>)> {
    e.scan(range, order).unwrap().map(|kv| kv.unwrap()).collect()
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

pub fn crud(h: &dyn Harness) {
    let dir = tempfile::tempdir().unwrap();
    let e = h.open(dir.path());
    assert_eq!(e.get(b"a").unwrap(), None);
    put(&*e, b"a", b"1");
    put(&*e, b"b", b"2");
    assert_eq!(e.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    put(&*e, b"a", b"3");
    assert_eq!(e.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
    del(&*e, b"a");
    assert_eq!(e.get(b"a").unwrap(), None);
    del(&*e, b"never-there");
    put(&*e, b"", b"empty key");
    assert_eq!(e.get(b"").unwrap().as_deref(), Some(&b"empty key"[..]));
    put(&*e, b"empty value", b"");
    assert_eq!(e.get(b"empty value").unwrap().as_deref(), Some(&b""[..]));
    let mut b = WriteBatch::new();
    b.put(b"x", b"1").delete(b"x").put(b"y", b"1").put(b"y", b"2");
    e.write(b).unwrap();
    assert_eq!(e.get(b"x").unwrap(), None, "a later delete in a batch wins");
    assert_eq!(e.get(b"y").unwrap().as_deref(), Some(&b"2"[..]), "a later put in a batch wins");
    assert!(e.stats().user_bytes_written > 0);
}

pub fn scans(h: &dyn Harness) {
    let dir = tempfile::tempdir().unwrap();
    let e = h.open(dir.path());
    let mut model = BTreeMap::new();
    for i in 0..2000u64 {
        let k = key(i * 3);
        let v = format!("v{i}").into_bytes();
        put(&*e, &k, &v);
        model.insert(k, v);
        if i % 500 == 499 {
            e.flush().unwrap();
        }
    }
    for i in (0..2000u64).step_by(7) {
        del(&*e, &key(i * 3));
        model.remove(&key(i * 3));
    }
    let ranges = [
        KeyRange::all(),
        KeyRange::between(key(300), key(900)),
        KeyRange { start: Bound::Excluded(key(300)), end: Bound::Included(key(900)) },
        KeyRange::from(key(5990)),
        KeyRange::prefix(b"key0000"),
        KeyRange::between(key(10), key(10)),
        KeyRange::between(key(11), key(12)),
        KeyRange { start: Bound::Unbounded, end: Bound::Excluded(key(30)) },
        KeyRange::prefix(b"nothing"),
    ];
    for round in 0..2 {
        for r in &ranges {
            let want: Vec<_> = model
                .range::<Vec<u8>, _>((r.start.clone(), r.end.clone()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(collect(&*e, r.clone(), Order::Forward), want, "forward {r:?}");
            let mut rev = want.clone();
            rev.reverse();
            assert_eq!(collect(&*e, r.clone(), Order::Reverse), rev, "reverse {r:?}");
        }
        e.compact().unwrap();
        let _ = round;
    }
    // A scan can stop early and be dropped.
    let first: Vec<_> = e.scan(KeyRange::all(), Order::Reverse).unwrap().take(3).map(|kv| kv.unwrap().0).collect();
    assert_eq!(first, model.keys().rev().take(3).cloned().collect::<Vec<_>>());
}

pub fn snapshots(h: &dyn Harness) {
    let dir = tempfile::tempdir().unwrap();
    let e = h.open(dir.path());
    for i in 0..100 {
        put(&*e, &key(i), b"before");
    }
    let snap = e.snapshot().unwrap();
    let scan = e.scan(KeyRange::all(), Order::Forward).unwrap();
    for i in 0..100 {
        if i % 2 == 0 {
            put(&*e, &key(i), b"after");
        } else {
            del(&*e, &key(i));
        }
    }
    put(&*e, &key(1000), b"new");
    e.flush().unwrap();
    e.compact().unwrap();
    assert_eq!(snap.get(&key(1)).unwrap().as_deref(), Some(&b"before"[..]));
    assert_eq!(snap.get(&key(1000)).unwrap(), None);
    let seen: Vec<_> = snap.scan(KeyRange::all(), Order::Forward).unwrap().map(|kv| kv.unwrap()).collect();
    assert_eq!(seen.len(), 100);
    assert!(seen.iter().all(|(_, v)| v == b"before"));
    let seen: Vec<_> = scan.map(|kv| kv.unwrap()).collect();
    assert_eq!(seen.len(), 100, "a scan sees the state of its start");
    assert!(seen.iter().all(|(_, v)| v == b"before"));
    assert_eq!(e.get(&key(1)).unwrap(), None);
    assert_eq!(e.get(&key(2)).unwrap().as_deref(), Some(&b"after"[..]));
}

pub fn large_values(h: &dyn Harness) {
    let dir = tempfile::tempdir().unwrap();
    let e = h.open(dir.path());
    let sizes = [0usize, 1, 4095, 4096, 4097, 100_000, 1 << 20, 4 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        let v: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
        put(&*e, &key(i as u64), &v);
    }
    for round in 0..2 {
        for (i, &n) in sizes.iter().enumerate() {
            let v = e.get(&key(i as u64)).unwrap().unwrap();
            assert_eq!(v.len(), n, "round {round}");
            assert!(v.iter().enumerate().all(|(j, &b)| b == (j * 7 + i) as u8));
        }
        e.flush().unwrap();
    }
}

pub fn durability(h: &dyn Harness) {
    if !h.persistent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let e = h.open(dir.path());
        for i in 0..5000u64 {
            let mut b = WriteBatch::new();
            b.put(key(i), format!("value{i}")).set_tag(i + 1);
            e.write(b).unwrap();
        }
        del(&*e, &key(7));
        e.flush().unwrap();
        assert!(e.durable_seq() >= 5000, "flushed tags are durable: {}", e.durable_seq());
    }
    let e = h.open(dir.path());
    assert!(e.durable_seq() >= 5000);
    assert_eq!(e.get(&key(7)).unwrap(), None);
    assert_eq!(e.get(&key(4999)).unwrap().unwrap(), b"value4999");
    assert_eq!(collect(&*e, KeyRange::all(), Order::Forward).len(), 4999);
    e.compact().unwrap();
    drop(e);
    let e = h.open(dir.path());
    assert_eq!(collect(&*e, KeyRange::all(), Order::Reverse).len(), 4999);
}

/// Writers replace a whole group of keys per batch while readers scan, get and
/// snapshot, and flushes and compactions run: every view holds one generation.
pub fn concurrent_consistency(h: &dyn Harness) {
    let dir = tempfile::tempdir().unwrap();
    let e = h.open(dir.path());
    const KEYS: u64 = 200;
    let mut b = WriteBatch::new();
    for i in 0..KEYS {
        b.put(key(i), 0u64.to_be_bytes());
    }
    e.write(b).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let e = e.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut views = 0;
                while !stop.load(Ordering::Relaxed) {
                    let order = if r == 0 { Order::Forward } else { Order::Reverse };
                    let all = collect(&*e, KeyRange::all(), order);
                    assert_eq!(all.len() as u64, KEYS, "a scan saw a partial batch");
                    assert!(all.windows(2).all(|w| w[0].1 == w[1].1), "a scan mixed two batches");
                    let snap = e.snapshot().unwrap();
                    let a = snap.get(&key(0)).unwrap().unwrap();
                    let z = snap.get(&key(KEYS - 1)).unwrap().unwrap();
                    assert_eq!(a, z, "a snapshot mixed two batches");
                    views += 1;
                }
                views
            })
        })
        .collect();
    for generation in 1..=300u64 {
        let mut b = WriteBatch::new();
        for i in 0..KEYS {
            b.put(key(i), generation.to_be_bytes());
        }
        e.write(b).unwrap();
        if generation % 50 == 0 {
            e.flush().unwrap();
        }
        if generation % 120 == 0 {
            e.compact().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(e.get(&key(5)).unwrap().unwrap(), 300u64.to_be_bytes());
}

#[derive(Debug, Clone)]
enum Op {
    Put(u16, u16),
    Delete(u16),
    Batch(Vec<(u16, Option<u16>)>),
    Get(u16),
    Scan(u16, u16, bool),
    Flush,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0u16..400, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        6 => (0u16..400).prop_map(Op::Delete),
        4 => prop::collection::vec((0u16..400, proptest::option::of(any::<u16>())), 1..20).prop_map(Op::Batch),
        10 => (0u16..420).prop_map(Op::Get),
        4 => (0u16..420, 0u16..420, any::<bool>()).prop_map(|(a, b, r)| Op::Scan(a, b, r)),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn mkey(k: u16) -> Vec<u8> {
    format!("k{k:05}").into_bytes()
}

/// Values vary in size so that blocks and pages fill unevenly.
fn mval(k: u16, v: u16) -> Vec<u8> {
    let len = (v as usize * 31 + k as usize) % 300;
    let mut out = format!("{k}:{v}:").into_bytes();
    out.resize(out.len() + len, b'.');
    out
}

pub fn model(h: &dyn Harness, name: &str) {
    let config = strata_testkit::proptest_config(name, 32);
    proptest!(config, |(ops in prop::collection::vec(op(), 1..300))| {
        let dir = tempfile::tempdir().unwrap();
        let mut e = h.open(dir.path());
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    put(&*e, &mkey(k), &mval(k, v));
                    model.insert(mkey(k), mval(k, v));
                }
                Op::Delete(k) => {
                    del(&*e, &mkey(k));
                    model.remove(&mkey(k));
                }
                Op::Batch(ops) => {
                    let mut b = WriteBatch::new();
                    for (k, v) in ops {
                        match v {
                            Some(v) => {
                                b.put(mkey(k), mval(k, v));
                                model.insert(mkey(k), mval(k, v));
                            }
                            None => {
                                b.delete(mkey(k));
                                model.remove(&mkey(k));
                            }
                        }
                    }
                    e.write(b).unwrap();
                }
                Op::Get(k) => prop_assert_eq!(e.get(&mkey(k)).unwrap(), model.get(&mkey(k)).cloned()),
                Op::Scan(a, b, reverse) => {
                    let (lo, hi) = (a.min(b), a.max(b));
                    let r = KeyRange::between(mkey(lo), mkey(hi));
                    let mut want: Vec<_> = model.range(mkey(lo)..mkey(hi)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    let order = if reverse { want.reverse(); Order::Reverse } else { Order::Forward };
                    prop_assert_eq!(collect(&*e, r, order), want);
                }
                Op::Flush => e.flush().unwrap(),
                Op::Compact => e.compact().unwrap(),
                Op::Reopen => {
                    if h.persistent() {
                        drop(e);
                        e = h.open(dir.path());
                    }
                }
            }
        }
        let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(collect(&*e, KeyRange::all(), Order::Forward), all);
    });
}

macro_rules! conformance {
    ($name:ident, $harness:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn crud() {
                super::crud(&$harness)
            }
            #[test]
            fn scans() {
                super::scans(&$harness)
            }
            #[test]
            fn snapshots() {
                super::snapshots(&$harness)
            }
            #[test]
            fn large_values() {
                super::large_values(&$harness)
            }
            #[test]
            fn durability() {
                super::durability(&$harness)
            }
            #[test]
            fn concurrent_consistency() {
                super::concurrent_consistency(&$harness)
            }
            #[test]
            fn model() {
                super::model(&$harness, concat!(stringify!($name), "::model"))
            }
        }
    };
}

conformance!(memory, Memory);
conformance!(lsm_logged, Lsm { log: Some(SyncPolicy::Never) });
conformance!(lsm_unlogged, Lsm { log: None });

/// RocksDB with a 1 MiB memtable and small levels, so that the suite's few
/// megabytes go through flushes and compactions.
#[cfg(feature = "rocksdb")]
struct RocksHarness;

#[cfg(feature = "rocksdb")]
impl Harness for RocksHarness {
    fn open(&self, dir: &Path) -> Arc<dyn KvEngine> {
        let options = strata_storage::RocksOptions {
            memtable_bytes: 1 << 20,
            block_cache_bytes: 8 << 20,
            l1_bytes: 2 << 20,
            target_file_bytes: 512 << 10,
            ..Default::default()
        };
        Arc::new(strata_storage::RocksEngine::open(dir, options).unwrap())
    }
    fn persistent(&self) -> bool {
        true
    }
}

#[cfg(feature = "rocksdb")]
conformance!(rocksdb, RocksHarness);

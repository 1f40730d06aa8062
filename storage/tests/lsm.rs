//! LSM-specific tests: levels, crash recovery with and without the engine's
//! log, corruption, bloom filters, background errors, orphan files.
//!
//! Crash rounds: `STRATA_CRASH_ROUNDS` (default 30); seeds: `STRATA_SEED`.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_storage::lsm::SyncPolicy;
use strata_storage::{KeyRange, KvEngine, LsmEngine, LsmOptions, Order, StorageError, WriteBatch};
use strata_testkit::{CrashChild, child_role, count, seed};

fn small(log: Option<SyncPolicy>) -> LsmOptions {
    LsmOptions {
        memtable_bytes: 64 << 10,
        block_bytes: 1024,
        block_cache_bytes: 1 << 20,
        l1_bytes: 256 << 10,
        level_ratio: 4,
        target_file_bytes: 64 << 10,
        l0_compaction_trigger: 2,
        log,
        log_segment_bytes: 1 << 20,
        ..LsmOptions::default()
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:010}").into_bytes()
}

fn value(i: u64, round: u64) -> Vec<u8> {
    let mut v = format!("value-{i}-{round}-").into_bytes();
    v.resize(100, b'x');
    v
}

fn put(e: &LsmEngine, k: &[u8], v: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(k, v);
    e.write(b).unwrap();
}

#[test]
fn data_spreads_over_levels_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let e = LsmEngine::open(dir.path(), small(None)).unwrap();
    let seed = seed("data_spreads_over_levels_and_reads_back");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = BTreeMap::new();
    for round in 0..3 {
        for _ in 0..10_000 {
            let i = rng.gen_range(0..20_000u64);
            put(&e, &key(i), &value(i, round));
            model.insert(key(i), value(i, round));
        }
    }
    e.flush().unwrap();
    // Let background compaction settle, then check the shape.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = e.stats();
    let deep_levels = s.files_per_level.iter().skip(1).filter(|&&n| n > 0).count();
    assert!(deep_levels >= 2, "expected several levels in use: {:?}", s.files_per_level);
    assert!(s.write_amplification() > 1.5, "compaction rewrote nothing? {}", s.write_amplification());
    assert!(s.compaction_bytes_written.iter().sum::<u64>() > 0);
    for (k, v) in &model {
        assert_eq!(e.get(k).unwrap().as_ref(), Some(v));
    }
    let all: Vec<_> = e.scan(KeyRange::all(), Order::Forward).unwrap().map(|kv| kv.unwrap()).collect();
    assert_eq!(all.len(), model.len());
    e.compact().unwrap();
    let s = e.stats();
    let used: Vec<usize> = (0..s.files_per_level.len()).filter(|&l| s.files_per_level[l] > 0).collect();
    assert_eq!(used.len(), 1, "major compaction leaves one level: {:?}", s.files_per_level);
    let live = e.live_bytes().unwrap();
    let space = s.space_amplification(live);
    assert!(space < 1.3, "space amplification after major compaction {space}");
}

#[test]
fn missing_keys_rarely_read_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let e = LsmEngine::open(dir.path(), LsmOptions { memtable_bytes: 4 << 20, log: None, ..LsmOptions::default() })
        .unwrap();
    for chunk in 0..20u64 {
        let mut b = WriteBatch::new();
        for i in 0..10_000 {
            let k = chunk * 10_000 + i;
            b.put(key(k * 2), value(k, 0));
        }
        e.write(b).unwrap();
    }
    e.flush().unwrap();
    let before = e.stats();
    for k in 0..20_000u64 {
        assert!(e.get(&key(k * 20 + 1)).unwrap().is_none());
    }
    let after = e.stats();
    let blocks = (after.point_get_blocks - before.point_get_blocks) as f64 / 20_000.0;
    let tables = (after.bloom_checks - before.bloom_checks) as f64 / 20_000.0;
    eprintln!("missing keys: {blocks:.4} data blocks and {tables:.2} filter probes per get");
    assert!(blocks <= 0.05, "{blocks} blocks per missing get");
}

/// Child: writes with the log under `SyncPolicy::Always` (or without a log,
/// flushing now and then) and prints what is durable.
#[test]
fn crash_child_lsm_writer() {
    let Some(arg) = child_role("lsm-writer") else { return };
    let mut parts = arg.split(',');
    let dir = parts.next().unwrap();
    let logged = parts.next().unwrap() == "logged";
    let start: u64 = parts.next().unwrap().parse().unwrap();
    let opts = small(logged.then_some(SyncPolicy::Always));
    let e = LsmEngine::open(dir, opts).unwrap();
    println!("OPENED {}", e.durable_seq());
    let mut rng = StdRng::seed_from_u64(start);
    for tag in start.. {
        let mut b = WriteBatch::new();
        let n = rng.gen_range(1..20u64);
        for j in 0..n {
            let k = (tag * 7 + j * 13) % 5000;
            b.put(key(k), value(k, tag));
        }
        b.set_tag(tag);
        e.write(b).unwrap();
        if logged {
            println!("ACK {tag} {n}");
        } else {
            if tag % 50 == 0 {
                e.flush().unwrap();
            }
            println!("ACK {tag} {n} {}", e.durable_seq());
        }
    }
}

fn crash_rounds(mode: &str) {
    let test = format!("crash_lsm_{mode}");
    let seed = seed(&test);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let rounds = count("STRATA_CRASH_ROUNDS", 30);
    // What each acknowledged tag wrote, to check against after recovery.
    let mut next_tag = 1u64;
    let mut durable = 0u64;
    let mut written: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..rounds {
        let start = next_tag;
        let mut child = CrashChild::spawn(
            "crash_child_lsm_writer",
            "lsm-writer",
            &format!("{},{mode},{start}", dir.path().display()),
        );
        let target = rng.gen_range(0..300);
        let mut acks = Vec::new();
        while acks.len() < target {
            let Some(line) = child.next_line() else { break };
            if line.starts_with("ACK") {
                acks.push(line);
            }
        }
        if rng.gen_bool(0.5) {
            std::thread::sleep(std::time::Duration::from_micros(rng.gen_range(0..5000)));
        }
        acks.extend(child.kill().into_iter().filter(|l| l.starts_with("ACK")));
        for line in &acks {
            let f: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
            let (tag, n) = (f[0], f[1]);
            next_tag = next_tag.max(tag + 1);
            if mode == "logged" {
                durable = durable.max(tag);
            } else if let Some(&d) = f.get(2) {
                durable = durable.max(d);
            }
            written.insert(tag, n);
        }
        let e = LsmEngine::open(dir.path(), small((mode == "logged").then_some(SyncPolicy::Always)))
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        assert!(e.durable_seq() >= durable, "round {round}: durable_seq {} < acknowledged {durable}", e.durable_seq());
        // The newest durable tag touching each key decides its value.
        let mut expect: BTreeMap<u64, u64> = BTreeMap::new();
        for (&tag, &n) in written.range(..=durable) {
            for j in 0..n {
                expect.insert((tag * 7 + j * 13) % 5000, tag);
            }
        }
        for (k, tag) in &expect {
            let got = e.get(&key(*k)).unwrap().unwrap_or_else(|| panic!("round {round}: key {k} lost"));
            let got_tag: u64 = String::from_utf8_lossy(&got).split('-').nth(2).unwrap().parse().unwrap();
            assert!(got_tag >= *tag, "round {round}: key {k} holds tag {got_tag}, acknowledged {tag}");
        }
        // Acknowledged but not durable (no log): lost in the crash, and their
        // tags are written again by the next round.
        written.retain(|&t, _| t <= e.durable_seq());
        next_tag = next_tag.max(e.durable_seq() + 1);
        drop(e);
    }
    eprintln!("{test}: {rounds} rounds, {} batches acknowledged, durable up to {durable}", written.len());
}

#[test]
fn crash_lsm_logged() {
    if child_role("lsm-writer").is_none() {
        crash_rounds("logged");
    }
}

#[test]
fn crash_lsm_unlogged() {
    if child_role("lsm-writer").is_none() {
        crash_rounds("unlogged");
    }
}

fn tables(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    v.sort();
    v
}

#[test]
fn flipped_bits_in_tables_are_reported_never_returned() {
    let base = tempfile::tempdir().unwrap();
    {
        let e = LsmEngine::open(base.path(), small(None)).unwrap();
        for i in 0..3000 {
            put(&e, &key(i), &value(i, 0));
        }
        e.flush().unwrap();
    }
    let table = tables(base.path()).pop().unwrap();
    let original = std::fs::read(&table).unwrap();
    let seed = seed("flipped_bits_in_tables");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reported = 0;
    for _ in 0..60 {
        let at = rng.gen_range(0..original.len());
        let mut bytes = original.clone();
        bytes[at] ^= 1 << rng.gen_range(0..8);
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(base.path()).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
            }
        }
        std::fs::write(dir.path().join(table.file_name().unwrap()), &bytes).unwrap();
        let e = LsmEngine::open(dir.path(), small(None)).unwrap();
        let mut failed = false;
        for kv in e.scan(KeyRange::all(), Order::Forward).unwrap() {
            match kv {
                Ok((k, v)) => {
                    let i: u64 = String::from_utf8_lossy(&k[3..]).parse().unwrap();
                    assert_eq!(v, value(i, 0), "flip at {at} returned a wrong value");
                }
                Err(StorageError::Corruption { .. }) => {
                    failed = true;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        for i in (0..3000).step_by(97) {
            match e.get(&key(i)) {
                Ok(Some(v)) => assert_eq!(v, value(i, 0)),
                Ok(None) => panic!("flip at {at}: key {i} silently missing"),
                Err(StorageError::Corruption { .. }) => failed = true,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        reported += failed as u32;
    }
    assert!(reported > 0);
}

#[test]
fn background_error_poisons_the_engine() {
    if let Some(dir) = child_role("lsm-full-disk") {
        poisoned_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = CrashChild::spawn("background_error_poisons_the_engine", "lsm-full-disk", dir.path().to_str().unwrap());
    assert!(child.wait(), "the child failed (see its output above)");
}

#[allow(unsafe_code)]
fn poisoned_child(dir: &Path) {
    // SAFETY: a single-purpose child process ignoring SIGXFSZ so that writes
    // past the file-size limit fail instead of killing it.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let e = LsmEngine::open(dir, LsmOptions { memtable_bytes: 256 << 10, log: None, ..LsmOptions::default() }).unwrap();
    let limit = libc::rlimit { rlim_cur: 64 << 10, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
    // Writes go on until a flush fails; after that every write is refused.
    let mut failed = None;
    for i in 0..100_000 {
        let mut b = WriteBatch::new();
        b.put(key(i), value(i, 0));
        if let Err(e) = e.write(b) {
            failed = Some((i, e));
            break;
        }
    }
    let (at, err) = failed.expect("the file-size limit never bit");
    assert!(matches!(err, StorageError::Poisoned(ref m) if m.contains("File too large")), "{err:?}");
    assert!(matches!(e.flush(), Err(StorageError::Poisoned(_))));
    let mut b = WriteBatch::new();
    b.put(b"x", b"y");
    assert!(matches!(e.write(b), Err(StorageError::Poisoned(_))));
    // Reads of what is in memory still work.
    assert_eq!(e.get(&key(at - 1)).unwrap(), Some(value(at - 1, 0)));
}

#[test]
fn orphans_are_removed_and_missing_tables_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = LsmEngine::open(dir.path(), small(None)).unwrap();
        for i in 0..2000 {
            put(&e, &key(i), &value(i, 0));
        }
        e.flush().unwrap();
    }
    std::fs::write(dir.path().join("999999.sst"), b"orphan").unwrap();
    std::fs::write(dir.path().join("MANIFEST-999998"), b"old").unwrap();
    {
        let e = LsmEngine::open(dir.path(), small(None)).unwrap();
        assert_eq!(e.get(&key(5)).unwrap(), Some(value(5, 0)));
    }
    assert!(!dir.path().join("999999.sst").exists());
    assert!(!dir.path().join("MANIFEST-999998").exists());
    std::fs::remove_file(tables(dir.path()).pop().unwrap()).unwrap();
    match LsmEngine::open(dir.path(), small(None)) {
        Err(StorageError::Corruption { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("opened without a table: {other:?}"),
    }
}

/// Reopens between rounds of tagged writes and flushes: the newest version of
/// every key survives, whatever the flushes and compactions did.
#[test]
fn reopen_rounds_keep_newest_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut expect: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..6u64 {
        let e = LsmEngine::open(dir.path(), small(None)).unwrap();
        let mut rng = StdRng::seed_from_u64(round);
        for tag in round * 300 + 1..=round * 300 + 300 {
            let mut b = WriteBatch::new();
            let n = rng.gen_range(1..20u64);
            for j in 0..n {
                let k = (tag * 7 + j * 13) % 5000;
                b.put(key(k), value(k, tag));
                expect.insert(k, tag);
            }
            b.set_tag(tag);
            e.write(b).unwrap();
            if tag % 50 == 0 {
                e.flush().unwrap();
            }
        }
        e.flush().unwrap();
        for (k, tag) in &expect {
            let got = e.get(&key(*k)).unwrap().unwrap();
            let got_tag: u64 = String::from_utf8_lossy(&got).split('-').nth(2).unwrap().parse().unwrap();
            assert_eq!(got_tag, *tag, "round {round} key {k} stats {:?}", e.stats().files_per_level);
        }
    }
}

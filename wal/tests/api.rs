//! Behaviour of the public API: policies, concurrency, control operations.

use std::sync::Arc;
use std::time::Duration;

use strata_wal::{SyncPolicy, Wal, WalError, WalOptions};

fn small() -> WalOptions {
    WalOptions { segment_bytes: 4096, preallocate_bytes: 4096, ..WalOptions::default() }
}

fn segment_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| strata_wal::format::parse_segment_file_name(&e.as_ref().unwrap().path()).is_some())
        .count()
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[test]
fn append_read_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { first_index: 100, ..small() }).unwrap();
    assert!(wal.recovery_report().created);
    assert_eq!((wal.first_index(), wal.last_index()), (100, 99));
    for i in 0..50u64 {
        assert_eq!(wal.append(1 + (i % 3) as u8, payload(i, (i * 17 % 300) as usize)).unwrap(), 100 + i);
    }
    assert_eq!(wal.last_index(), 149);
    assert_eq!(wal.durable_index(), 149);
    let e = wal.get(120).unwrap().unwrap();
    assert_eq!((e.index, e.kind, e.payload), (120, 1 + (20 % 3) as u8, payload(20, 20 * 17 % 300)));
    assert!(wal.get(99).unwrap().is_none());
    assert!(wal.get(150).unwrap().is_none());
    let all: Vec<_> = wal.entries(130).map(|e| e.unwrap().index).collect();
    assert_eq!(all, (130..150).collect::<Vec<_>>());
    wal.close().unwrap();

    let segments = segment_count(dir.path());
    assert!(segments > 1, "small segments roll: {segments}");
    let wal = Wal::open(dir.path(), small()).unwrap();
    let r = wal.recovery_report();
    assert!(!r.created && r.torn_tail.is_none(), "{r:?}");
    assert_eq!(r.records, 50);
    assert_eq!((wal.first_index(), wal.last_index()), (100, 149));
    for (i, e) in wal.entries(100).enumerate() {
        let e = e.unwrap();
        assert_eq!(e.payload, payload(i as u64, (i as u64 * 17 % 300) as usize));
    }
    assert_eq!(wal.append(1, b"next".to_vec()).unwrap(), 150);
}

#[test]
fn rejects_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { max_record_bytes: 1000, ..small() }).unwrap();
    assert!(matches!(wal.append(0, b"x".to_vec()), Err(WalError::ReservedKind)));
    assert!(matches!(wal.append(1, vec![0; 1001]), Err(WalError::RecordTooLarge { size: 1001, limit: 1000 })));
    // A record larger than a segment still fits, alone, in one.
    assert_eq!(wal.append(1, vec![7; 1000]).unwrap(), 1);
    assert_eq!(wal.append(1, vec![8; 1000]).unwrap(), 2);
    assert!(matches!(wal.truncate_after(5), Err(WalError::IndexOutOfRange { index: 5, .. })));
    assert!(Wal::open(dir.path().join("x"), WalOptions { first_index: 0, ..small() }).is_err());
}

#[test]
fn concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), WalOptions::default()).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..50u64 {
                    let p = format!("{t}:{i}").into_bytes();
                    mine.push((wal.append(1, p.clone()).unwrap(), p));
                }
                mine
            })
        })
        .collect();
    let mut got: Vec<(u64, Vec<u8>)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    got.sort();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), (1..=800).collect::<Vec<_>>());
    for (index, p) in &got {
        assert_eq!(&wal.get(*index).unwrap().unwrap().payload, p);
    }
    let stats = wal.stats();
    assert_eq!(stats.records_appended, 800);
    assert!(stats.fsyncs < 800, "group commit coalesced nothing: {stats:?}");
    assert!(stats.batch_records.max > 1);
}

#[test]
fn every_policy_acknowledges_and_persists() {
    for policy in [
        SyncPolicy::Always,
        SyncPolicy::Batch { max_delay: Duration::from_millis(2), max_bytes: 1 << 20 },
        SyncPolicy::Interval(Duration::from_millis(5)),
        SyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalOptions { sync_policy: policy, ..small() }).unwrap();
        for i in 0..100u64 {
            wal.append(1, payload(i, 40)).unwrap();
        }
        if policy.acknowledges_after_sync() {
            assert_eq!(wal.durable_index(), 100, "{policy:?}");
        }
        if let SyncPolicy::Interval(_) = policy {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(wal.durable_index(), 100, "interval sync did not run");
        }
        wal.sync().unwrap();
        assert_eq!(wal.durable_index(), 100);
        drop(wal);
        let wal = Wal::open(dir.path(), small()).unwrap();
        assert_eq!(wal.last_index(), 100, "{policy:?}");
    }
}

#[test]
fn async_appends() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { max_queue_bytes: 256, ..small() }).unwrap();
    let futures: Vec<_> = (0..64u64).map(|i| wal.append_async(2, payload(i, 100))).collect();
    let indexes: Vec<u64> = futures.into_iter().map(block_on).map(|r| r.unwrap()).collect();
    assert_eq!(indexes, (1..=64).collect::<Vec<_>>());
    let range = block_on(wal.append_batch_async(vec![(1, b"a".to_vec()), (1, b"b".to_vec())])).unwrap();
    assert_eq!(range, 65..=66);
    assert_eq!(wal.get(66).unwrap().unwrap().payload, b"b");
}

/// A minimal executor: the log's futures need no runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn back_pressure_bounds_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), WalOptions { max_queue_bytes: 1024, ..WalOptions::default() }).unwrap());
    // Many submitters with large records: all complete, none is lost.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                let pending: Vec<_> = (0..20).map(|_| wal.submit(vec![(1, vec![1; 900])]).unwrap()).collect();
                pending.into_iter().map(|p| *p.wait().unwrap().end()).max().unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(wal.last_index(), 160);
}

#[test]
fn truncate_purge_reset() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).unwrap();
    for i in 1..=100u64 {
        wal.append(1, payload(i, 100)).unwrap();
    }
    wal.truncate_after(60).unwrap();
    assert_eq!(wal.last_index(), 60);
    assert!(wal.get(61).unwrap().is_none());
    assert_eq!(wal.append(3, b"after truncate".to_vec()).unwrap(), 61);

    let purged = wal.purge_below(40).unwrap();
    assert!(purged > 0);
    let first = wal.first_index();
    assert!(first > 1 && first <= 40, "first index {first}");
    assert!(wal.get(first - 1).unwrap().is_none());
    assert_eq!(wal.get(first).unwrap().unwrap().payload, payload(first, 100));
    drop(wal);

    let wal = Wal::open(dir.path(), small()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (first, 61));
    assert_eq!(wal.get(61).unwrap().unwrap().payload, b"after truncate");
    wal.reset(1000).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (1000, 999));
    assert_eq!(wal.append(1, b"x".to_vec()).unwrap(), 1000);
    drop(wal);
    let wal = Wal::open(dir.path(), small()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (1000, 1000));
    assert_eq!(segment_count(dir.path()), 1);
}

#[test]
fn a_second_open_of_the_same_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).unwrap();
    let err = Wal::open(dir.path(), small()).unwrap_err();
    assert!(err.to_string().contains("LOCK"), "{err}");
    drop(wal);
    Wal::open(dir.path(), small()).unwrap();
}

#[test]
fn closed_log_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), small()).unwrap());
    wal.append(1, b"a".to_vec()).unwrap();
    let w2 = wal.clone();
    drop(w2);
    // Closing through the last handle drains and syncs; a reopen sees it all.
    let wal = Arc::try_unwrap(wal).unwrap();
    wal.close().unwrap();
    let wal = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.last_index(), 1);
}

/// A full disk (simulated with a file-size limit in a child process, where
/// every write past the limit fails with EFBIG): the appends that cannot be
/// placed fail with a clear error, reads go on, and once space returns the
/// log takes appends again, with nothing lost.
#[test]
fn full_disk_fails_appends_cleanly_and_recovers() {
    if let Some(dir) = strata_testkit::child_role("full-disk") {
        full_disk_child(std::path::Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = strata_testkit::CrashChild::spawn(
        "full_disk_fails_appends_cleanly_and_recovers",
        "full-disk",
        dir.path().to_str().unwrap(),
    );
    assert!(child.wait(), "the full-disk child failed (see its output above)");
}

#[allow(unsafe_code)]
fn full_disk_child(dir: &std::path::Path) {
    // The limit must fail calls, not kill the process.
    // SAFETY: setting a signal to SIG_IGN at the start of a single-purpose child.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let opts = WalOptions { segment_bytes: 64 << 10, preallocate_bytes: 16 << 10, ..WalOptions::default() };
    let wal = Wal::open(dir, opts).unwrap();
    let limit = libc::rlimit { rlim_cur: 40 << 10, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall on a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
    let mut written = 0u64;
    let err = loop {
        match wal.append(1, payload(written, 1000)) {
            Ok(i) => written = i,
            Err(e) => break e,
        }
        assert!(written < 10_000, "the size limit never bit");
    };
    assert!(matches!(err, WalError::Io { .. }), "not an I/O error: {err:?}");
    assert!(err.to_string().contains("File too large"), "{err}");
    // Reads go on; nothing acknowledged is missing.
    assert_eq!(wal.last_index(), written);
    assert_eq!(wal.get(written).unwrap().unwrap().payload, payload(written - 1, 1000));
    // Space returns: the same log takes appends again.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &unlimited) }, 0);
    assert_eq!(wal.append(1, b"after".to_vec()).unwrap(), written + 1);
    drop(wal);
    let wal = Wal::open(dir, WalOptions::default()).unwrap();
    assert_eq!(wal.last_index(), written + 1);
}

/// Records queued by `submit` are written whether the caller waits, awaits,
/// or drops the `Pending`.
#[test]
fn submitted_records_are_written_however_they_are_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small()).unwrap();
    let p = wal.submit(vec![(1, b"waited".to_vec())]).unwrap();
    assert_eq!(p.wait().unwrap(), 1..=1);
    let p = wal.submit(vec![(1, b"awaited".to_vec())]).unwrap();
    assert_eq!(block_on(p).unwrap(), 2..=2);
    drop(wal.submit(vec![(1, b"dropped".to_vec())]).unwrap());
    let started = std::time::Instant::now();
    while wal.durable_index() < 3 {
        assert!(started.elapsed() < Duration::from_secs(10), "a dropped submission was never written");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(wal.get(3).unwrap().unwrap().payload, b"dropped");
}

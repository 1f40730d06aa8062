//! Corruption tests: flipped bits, truncation, zeroed ranges and missing
//! segments. Whatever the damage: no panic, and no record that differs from
//! what was written is ever returned. A torn tail opens as a prefix of the
//! log; damage with valid records after it fails the open with the file and
//! byte offset, unless repair is asked for.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_wal::{Wal, WalError, WalOptions};

fn options() -> WalOptions {
    WalOptions { segment_bytes: 4096, preallocate_bytes: 4096, ..WalOptions::default() }
}

fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 250) as usize + 1;
    (0..len).map(|j| (i as usize * 7 + j * 13 + 1) as u8).collect()
}

/// A closed log of `n` records in several segments; returns its segments in
/// order.
fn build(dir: &Path, n: u64) -> Vec<PathBuf> {
    let wal = Wal::open(dir, options()).unwrap();
    for i in 1..=n {
        wal.append(1, payload(i)).unwrap();
    }
    drop(wal);
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| strata_wal::format::parse_segment_file_name(p).is_some())
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for f in segments(from) {
        fs::copy(&f, to.path().join(f.file_name().unwrap())).unwrap();
    }
    to
}

/// Byte offsets where each record of a segment starts, plus its end.
fn record_bounds(path: &Path) -> Vec<u64> {
    let b = fs::read(path).unwrap();
    let mut at = 64usize;
    let mut bounds = vec![at as u64];
    while at + 9 <= b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 && b[at + 8] == 0 {
            break;
        }
        at += 9 + len;
        bounds.push(at as u64);
    }
    bounds
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Opened; holds records 1..=n, all intact.
    Prefix(u64),
    /// Refused as corrupt.
    Corrupt(PathBuf, u64),
}

/// Opens a damaged log and classifies what happened, failing on a panic,
/// an unexpected error, a record that is not the one written, or (when the
/// damage is `fresh`, not already repaired) records lost without a report.
fn open_damaged(dir: &Path, n: u64, fresh: bool) -> Outcome {
    match Wal::open(dir, options()) {
        Err(WalError::Corrupt { path, offset, reason }) => {
            assert!(!reason.is_empty());
            Outcome::Corrupt(path, offset)
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(wal) => {
            assert_eq!(wal.first_index(), 1);
            let last = wal.last_index();
            assert!(last <= n, "more records than written: {last}");
            let mut count = 0;
            for e in wal.entries(1) {
                let e = e.unwrap();
                assert_eq!(e.payload, payload(e.index), "record {} differs from what was written", e.index);
                count += 1;
            }
            assert_eq!(count, last);
            if fresh && last < n {
                assert!(wal.recovery_report().torn_tail.is_some(), "records lost without a report");
            }
            Outcome::Prefix(last)
        }
    }
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn every_bit_of_the_last_record_and_some_of_every_byte_elsewhere() {
    let seed = strata_testkit::seed("every_bit_of_the_last_record");
    let mut rng = StdRng::seed_from_u64(seed);
    let base = tempfile::tempdir().unwrap();
    let n = 60;
    let segs = build(base.path(), n);
    assert!(segs.len() >= 3, "want several segments, got {}", segs.len());
    let newest = segs.last().unwrap().clone();
    let bounds = record_bounds(&newest);
    let (last_start, last_end) = (bounds[bounds.len() - 2], bounds[bounds.len() - 1]);

    let mut outcomes = [0u32; 3];
    let mut trial = |seg: usize, offset: u64, bit: u8| {
        let d = copy_dir(base.path());
        let path = segments(d.path())[seg].clone();
        flip(&path, offset, bit);
        match open_damaged(d.path(), n, true) {
            Outcome::Prefix(k) if k == n => outcomes[0] += 1,
            Outcome::Prefix(_) => outcomes[1] += 1,
            Outcome::Corrupt(p, off) => {
                assert_eq!(p.file_name(), path.file_name(), "corruption reported in the wrong file");
                assert!(off <= offset, "reported offset {off} is past the damage at {offset}");
                outcomes[2] += 1;
            }
        }
    };
    // Every bit of the newest segment's last record: a torn tail at worst.
    for offset in last_start..last_end {
        for bit in 0..8 {
            trial(segs.len() - 1, offset, bit);
        }
    }
    // One random bit of every byte of every segment's header and records.
    for (s, seg) in segs.iter().enumerate() {
        let end = *record_bounds(seg).last().unwrap();
        for offset in 0..end {
            trial(s, offset, rng.gen_range(0..8));
        }
    }
    eprintln!("intact {}, cut to a prefix {}, refused as corrupt {}", outcomes[0], outcomes[1], outcomes[2]);
    assert!(outcomes[1] > 0 && outcomes[2] > 0);
}

#[test]
fn truncation_at_every_byte_of_the_last_record() {
    let base = tempfile::tempdir().unwrap();
    let n = 30;
    let segs = build(base.path(), n);
    let bounds = record_bounds(segs.last().unwrap());
    let (start, end) = (bounds[bounds.len() - 2], bounds[bounds.len() - 1]);
    // Cut exactly at the record's start, the log ends cleanly before it.
    for cut in start + 1..end {
        let d = copy_dir(base.path());
        let path = segments(d.path()).pop().unwrap();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
        assert_eq!(open_damaged(d.path(), n, true), Outcome::Prefix(n - 1), "cut at {cut}");
        // After the repair the log takes appends again and keeps them.
        let wal = Wal::open(d.path(), options()).unwrap();
        assert_eq!(wal.append(1, payload(n)).unwrap(), n);
        drop(wal);
        assert_eq!(open_damaged(d.path(), n, false), Outcome::Prefix(n));
    }
}

#[test]
fn zeroed_ranges() {
    let seed = strata_testkit::seed("zeroed_ranges");
    let mut rng = StdRng::seed_from_u64(seed);
    let base = tempfile::tempdir().unwrap();
    let n = 60;
    let segs = build(base.path(), n);
    for _ in 0..300 {
        let d = copy_dir(base.path());
        let s = rng.gen_range(0..segs.len());
        let path = segments(d.path())[s].clone();
        let end = *record_bounds(&path).last().unwrap();
        let from = rng.gen_range(0..end);
        let len = rng.gen_range(1..600).min(end - from);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&vec![0u8; len as usize], from).unwrap();
        drop(f);
        // Zeros over the whole tail of the newest segment are a log that
        // ended earlier: nothing can tell them from one, so no report is owed.
        let whole_tail = s + 1 == segs.len() && from + len == end;
        open_damaged(d.path(), n, !whole_tail);
    }
}

#[test]
fn zeroed_middle_record_with_valid_records_after_is_corruption() {
    let base = tempfile::tempdir().unwrap();
    let n = 30;
    let segs = build(base.path(), n);
    let newest = segs.last().unwrap();
    let bounds = record_bounds(newest);
    assert!(bounds.len() >= 5, "newest segment holds too few records");
    let f = OpenOptions::new().write(true).open(newest).unwrap();
    f.write_all_at(&vec![0u8; (bounds[2] - bounds[1]) as usize], bounds[1]).unwrap();
    drop(f);
    let d = copy_dir(base.path());
    assert_eq!(open_damaged(d.path(), n, true), Outcome::Corrupt(segments(d.path()).pop().unwrap(), bounds[1]));

    // Repair cuts the log at the damage, as ZooKeeper's and etcd's tools do.
    let wal = Wal::open(d.path(), WalOptions { repair_corruption: true, ..options() }).unwrap();
    let repaired = wal.recovery_report().repaired.clone().unwrap();
    assert_eq!(repaired.offset, bounds[1]);
    let kept = wal.last_index();
    assert!(kept < n);
    drop(wal);
    assert_eq!(open_damaged(d.path(), n, false), Outcome::Prefix(kept));
}

#[test]
fn missing_middle_segment() {
    let base = tempfile::tempdir().unwrap();
    let n = 60;
    let segs = build(base.path(), n);
    assert!(segs.len() >= 3);
    fs::remove_file(&segs[1]).unwrap();
    let err = Wal::open(base.path(), options()).unwrap_err();
    match &err {
        WalError::Corrupt { path, reason, .. } => {
            assert_eq!(path, &segs[0]);
            assert!(reason.contains("next segment"), "{reason}");
        }
        e => panic!("unexpected {e:?}"),
    }
    let wal = Wal::open(base.path(), WalOptions { repair_corruption: true, ..options() }).unwrap();
    assert_eq!(wal.recovery_report().repaired_segments_removed.len(), segs.len() - 2);
    assert!(wal.last_index() < n);
}

#[test]
fn damage_after_open_is_reported_by_reads() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path(), 10);
    let wal = Wal::open(dir.path(), options()).unwrap();
    let bounds = record_bounds(&segs[0]);
    flip(&segs[0], bounds[3] + 12, 2);
    assert!(matches!(wal.get(4), Err(WalError::Corrupt { .. })));
    let results: Vec<_> = wal.entries(1).collect();
    assert!(results[..3].iter().all(|r| r.is_ok()));
    assert!(matches!(results.last(), Some(Err(WalError::Corrupt { .. }))));
}

#[test]
fn garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 5);
    fs::write(dir.path().join("log.00000000000000ff"), b"not a segment").unwrap();
    assert!(matches!(Wal::open(dir.path(), options()), Err(WalError::Corrupt { .. })));
    // Files that are not segments are left alone.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 5);
    fs::write(dir.path().join("README"), b"x").unwrap();
    assert_eq!(Wal::open(dir.path(), options()).unwrap().last_index(), 5);
}

//! Crash tests: a child process appends under `SyncPolicy::Always` and prints
//! every acknowledged index; the parent SIGKILLs it at a random moment, then
//! reopens the log and checks that every acknowledged record is there, intact,
//! and that the log ends cleanly.
//!
//! Rounds: `STRATA_CRASH_ROUNDS` (default 50); seed: `STRATA_SEED`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_testkit::{CrashChild, child_role, count, seed};
use strata_wal::{Wal, WalOptions};

fn options() -> WalOptions {
    WalOptions { segment_bytes: 64 << 10, preallocate_bytes: 32 << 10, ..WalOptions::default() }
}

/// The payload for `seed`: its length and bytes both follow from it, so the
/// parent can check a record from the seed alone.
fn payload(seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = rng.gen_range(1..3000);
    (0..len).map(|_| rng.r#gen()).collect()
}

/// Child: append from four threads forever, printing `ACK <index> <seed>`.
#[test]
fn crash_child_appender() {
    let Some(arg) = child_role("appender") else { return };
    let (dir, child_seed) = arg.split_once(',').unwrap();
    let wal = Arc::new(Wal::open(dir, options()).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let wal = wal.clone();
            let base: u64 = child_seed.parse::<u64>().unwrap().wrapping_mul(8).wrapping_add(t) << 20;
            std::thread::spawn(move || {
                for i in 0.. {
                    let s = base + i;
                    let index = wal.append(1, payload(s)).unwrap();
                    println!("ACK {index} {s}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Child: one thread appending, truncating and purging, printing each
/// acknowledged change, so the parent knows exactly which log it must find.
#[test]
fn crash_child_truncator() {
    let Some(arg) = child_role("truncator") else { return };
    let (dir, child_seed) = arg.split_once(',').unwrap();
    let wal = Wal::open(dir, options()).unwrap();
    let mut rng = StdRng::seed_from_u64(child_seed.parse().unwrap());
    let base = child_seed.parse::<u64>().unwrap() << 20;
    for i in 0.. {
        match rng.gen_range(0..20) {
            0 => {
                let last = wal.last_index();
                let to = last.saturating_sub(rng.gen_range(0..20)).max(wal.first_index() - 1);
                println!("TRUNCATING {to}");
                wal.truncate_after(to).unwrap();
                println!("TRUNC {to}");
            }
            1 => {
                let below = wal.first_index() + rng.gen_range(0..100);
                wal.purge_below(below).unwrap();
            }
            _ => {
                let s = base + i;
                let index = wal.append(2, payload(s)).unwrap();
                println!("ACK {index} {s}");
            }
        }
    }
}

/// Reopens the log and checks it against what the children acknowledged. A
/// truncation the child was killed in may have cut the log anywhere between
/// its target and the old end; what remains must still be what was
/// acknowledged, and the acknowledged set shrinks to it.
fn verify(dir: &Path, acked: &mut BTreeMap<u64, u64>, truncating: Option<u64>, round: u64) -> bool {
    let wal = Wal::open(dir, options()).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    let first = wal.first_index();
    let last = wal.last_index();
    let required = match (truncating, acked.last_key_value()) {
        (Some(to), Some((&max, _))) => to.min(max),
        (None, Some((&max, _))) => max,
        (_, None) => 0,
    };
    assert!(last >= required, "round {round}: acknowledged index {required} lost, log ends at {last}");
    acked.retain(|&k, _| k <= last);
    for (&index, &s) in acked.range(first..) {
        let e = wal.get(index).unwrap().unwrap_or_else(|| panic!("round {round}: acknowledged index {index} missing"));
        assert_eq!(e.payload, payload(s), "round {round}: index {index} holds the wrong payload");
    }
    // The whole log reads back with an intact chain.
    let mut n = 0u64;
    for e in wal.entries(first) {
        e.unwrap_or_else(|e| panic!("round {round}: {e}"));
        n += 1;
    }
    assert_eq!(n, last + 1 - first, "round {round}");
    wal.recovery_report().torn_tail.is_some()
}

/// Applies one line of a child's output to the acknowledged set; returns the
/// number of acknowledgements it carried.
fn apply(line: &str, acked: &mut BTreeMap<u64, u64>, truncating: &mut Option<u64>) -> usize {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<u64>)) {
        (Some("ACK"), Some(Ok(i)), Some(Ok(s))) => {
            acked.insert(i, s);
            1
        }
        (Some("TRUNCATING"), Some(Ok(i)), None) => {
            *truncating = Some(i);
            0
        }
        (Some("TRUNC"), Some(Ok(i)), None) => {
            acked.retain(|&k, _| k <= i);
            *truncating = None;
            0
        }
        _ => 0,
    }
}

fn crash_rounds(test: &str, role: &str, max_acks: usize) {
    let seed = seed(test);
    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = count("STRATA_CRASH_ROUNDS", 50);
    let mut dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut torn = 0;
    let mut checked = 0;
    for round in 0..rounds {
        // A log lives for ten crashes, so that verification stays linear.
        if round % 10 == 0 {
            dir = tempfile::tempdir().unwrap();
            checked += acked.len();
            acked.clear();
        }
        let child_seed: u64 = rng.r#gen::<u32>() as u64;
        let mut child = CrashChild::spawn(
            test.replace("crash_", "crash_child_").as_str(),
            role,
            &format!("{},{child_seed}", dir.path().display()),
        );
        let target = rng.gen_range(0..max_acks);
        let mut seen = 0;
        let mut truncating = None;
        while seen < target {
            let Some(line) = child.next_line() else { break };
            seen += apply(&line, &mut acked, &mut truncating);
        }
        if rng.gen_bool(0.5) {
            std::thread::sleep(std::time::Duration::from_micros(rng.gen_range(0..3000)));
        }
        // Everything the child printed before it died is acknowledged too.
        for line in child.kill() {
            apply(&line, &mut acked, &mut truncating);
        }
        torn += verify(dir.path(), &mut acked, truncating, round) as u32;
    }
    checked += acked.len();
    eprintln!("{test}: {rounds} rounds, {checked} acknowledged records checked, {torn} reopens cut a torn tail");
}

#[test]
fn crash_appender() {
    if child_role("appender").is_some() {
        return;
    }
    crash_rounds("crash_appender", "appender", 400);
}

#[test]
fn crash_truncator() {
    if child_role("truncator").is_some() {
        return;
    }
    crash_rounds("crash_truncator", "truncator", 300);
}

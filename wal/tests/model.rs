//! Model test: random append / truncate / purge / reset / reopen / torn-write
//! sequences against an in-memory model of the log.
//!
//! Seeded through strata-testkit (the seed is printed; `STRATA_SEED=<n>`
//! replays a run, `PROPTEST_CASES=<n>` runs more cases).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;
use strata_wal::{Wal, WalOptions};

#[derive(Debug, Clone)]
enum Step {
    Append(Vec<(u8, usize)>),
    Get(f64),
    Iterate(f64),
    TruncateAfter(i64),
    Purge(f64),
    Reset(u64),
    Sync,
    Reopen,
    /// Close, then write a partial frame after the last record (a crash in
    /// the middle of a write), then reopen.
    TornWrite(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => prop::collection::vec((1u8..=255, 0usize..700), 1..5).prop_map(Step::Append),
        2 => (0.0..1.0f64).prop_map(Step::Get),
        1 => (0.0..1.0f64).prop_map(Step::Iterate),
        1 => (0i64..30).prop_map(Step::TruncateAfter),
        1 => (0.0..1.2f64).prop_map(Step::Purge),
        1 => (0u64..3).prop_map(Step::Reset),
        1 => Just(Step::Sync),
        1 => Just(Step::Reopen),
        1 => (1usize..40).prop_map(Step::TornWrite),
    ]
}

#[derive(Debug)]
struct Model {
    first: u64,
    records: Vec<(u8, Vec<u8>)>,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.records.len() as u64 - 1
    }
}

/// Payloads never end in a zero byte, so the last non-zero byte of the newest
/// segment is the end of its last record.
fn make_payload(counter: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|j| (counter.wrapping_mul(2654435761) >> (j % 24)) as u8 ^ j as u8).collect();
    if let Some(last) = p.last_mut() {
        *last = 0xab;
    }
    p
}

fn options() -> WalOptions {
    WalOptions { segment_bytes: 4096, preallocate_bytes: 4096, first_index: 5, ..WalOptions::default() }
}

fn newest_segment(dir: &Path) -> std::path::PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| strata_wal::format::parse_segment_file_name(p).is_some())
        .collect();
    names.sort();
    names.pop().unwrap()
}

fn check(wal: &Wal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(wal.first_index(), model.first);
    prop_assert_eq!(wal.last_index(), model.last());
    Ok(())
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), options()).unwrap();
    let mut model = Model { first: 5, records: Vec::new() };
    let mut counter = 0u64;
    for step in steps {
        match step {
            Step::Append(recs) => {
                let batch: Vec<(u8, Vec<u8>)> = recs
                    .iter()
                    .map(|&(kind, len)| {
                        counter += 1;
                        (kind, make_payload(counter, len))
                    })
                    .collect();
                let range = wal.append_batch(batch.clone()).unwrap();
                prop_assert_eq!(*range.start(), model.last() + 1);
                model.records.extend(batch);
            }
            Step::Get(f) => {
                let span = model.records.len() as f64 + 2.0;
                let index = (model.first as f64 - 1.0 + f * span) as u64;
                let got = wal.get(index).unwrap();
                let want = index.checked_sub(model.first).and_then(|k| model.records.get(k as usize));
                match (got, want) {
                    (None, None) => {}
                    (Some(e), Some((kind, payload))) => {
                        prop_assert_eq!(e.index, index);
                        prop_assert_eq!(e.kind, *kind);
                        prop_assert_eq!(&e.payload, payload);
                    }
                    (got, want) => prop_assert!(false, "get({}): {:?} vs model {:?}", index, got, want),
                }
            }
            Step::Iterate(f) => {
                let from = model.first + (f * model.records.len() as f64) as u64;
                let got: Vec<_> = wal.entries(from).map(|e| e.unwrap()).collect();
                let skip = (from - model.first) as usize;
                prop_assert_eq!(got.len(), model.records.len() - skip);
                for (e, (kind, payload)) in got.iter().zip(&model.records[skip..]) {
                    prop_assert_eq!(e.kind, *kind);
                    prop_assert_eq!(&e.payload, payload);
                }
            }
            Step::TruncateAfter(back) => {
                let index = (model.last() as i64 - back).max(0) as u64;
                wal.truncate_after(index).unwrap();
                if index + 1 < model.first {
                    model.first = index + 1;
                    model.records.clear();
                } else {
                    model.records.truncate((index + 1 - model.first) as usize);
                }
            }
            Step::Purge(f) => {
                let below = model.first + (f * model.records.len() as f64) as u64;
                wal.purge_below(below).unwrap();
                let first = wal.first_index();
                prop_assert!(first >= model.first && first <= below.max(model.first), "purge to {}", first);
                model.records.drain(..(first - model.first) as usize);
                model.first = first;
            }
            Step::Reset(delta) => {
                let next = model.last() + 1 + delta;
                wal.reset(next).unwrap();
                model.first = next;
                model.records.clear();
            }
            Step::Sync => {
                wal.sync().unwrap();
                prop_assert_eq!(wal.durable_index(), model.last());
            }
            Step::Reopen => {
                drop(wal);
                wal = Wal::open(dir.path(), options()).unwrap();
                prop_assert!(wal.recovery_report().torn_tail.is_none());
            }
            Step::TornWrite(len) => {
                drop(wal);
                let path = newest_segment(dir.path());
                let bytes = std::fs::read(&path).unwrap();
                let end = bytes.iter().rposition(|&b| b != 0).map_or(64, |p| p + 1).max(64);
                // The start of a frame that claims more payload than follows.
                let mut torn = Vec::new();
                torn.extend_from_slice(&(len as u32 + 50).to_le_bytes());
                torn.extend_from_slice(&0x1234_5678u32.to_le_bytes());
                torn.push(7);
                torn.extend(std::iter::repeat_n(0x5a, len));
                let f = OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&torn, end as u64).unwrap();
                drop(f);
                wal = Wal::open(dir.path(), options()).unwrap();
                let torn_tail = wal.recovery_report().torn_tail.clone();
                prop_assert!(torn_tail.is_some(), "torn write not reported");
                prop_assert_eq!(torn_tail.unwrap().offset, end as u64);
            }
        }
        check(&wal, &model)?;
    }
    // Whatever happened, a final reopen holds exactly the model.
    drop(wal);
    let wal = Wal::open(dir.path(), options()).unwrap();
    check(&wal, &model)?;
    let got: Vec<_> = wal.entries(model.first).map(|e| e.unwrap()).collect();
    prop_assert_eq!(got.len(), model.records.len());
    for (e, (kind, payload)) in got.iter().zip(&model.records) {
        prop_assert_eq!(e.kind, *kind);
        prop_assert_eq!(&e.payload, payload);
    }
    Ok(())
}

#[test]
fn log_matches_model() {
    let config = strata_testkit::proptest_config("log_matches_model", 64);
    proptest!(config, |(steps in prop::collection::vec(step(), 1..80))| {
        run(steps)?;
    });
}

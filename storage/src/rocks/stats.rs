//! `RocksEngine::stats`: RocksDB's counters turned into [`EngineStats`].
//!
//! RocksDB 7.8's C API has no ticker or map-property accessors, only texts:
//! the ticker dump of `rocksdb.options-statistics`, and the compaction table
//! and stall line of `rocksdb.cfstats-no-file-histogram`. They are parsed
//! here; anything unparseable reads as zero rather than failing `stats()`.
//! Per-get block counts come from the thread's perf context.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};

use super::{DATA_CF, META_CF, NUM_LEVELS, RocksEngine};
use crate::stats::EngineStats;

/// The engine's [`EngineStats`]; the module docs of `rocks` say where each
/// field comes from.
pub(super) fn collect(e: &RocksEngine) -> EngineStats {
    let t = Tickers::parse(&e.property(DATA_CF, "rocksdb.options-statistics"));
    let mut cf = CfStats::parse(&e.property(DATA_CF, "rocksdb.cfstats-no-file-histogram"), NUM_LEVELS);
    cf.add(&CfStats::parse(&e.property(META_CF, "rocksdb.cfstats-no-file-histogram"), NUM_LEVELS));
    let mut files_per_level = vec![0u64; NUM_LEVELS];
    let mut bytes_per_level = vec![0u64; NUM_LEVELS];
    match e.db.live_files() {
        Ok(files) => {
            for f in files.iter().filter(|f| f.column_family_name == DATA_CF) {
                let level = usize::try_from(f.level).unwrap_or(0).min(NUM_LEVELS - 1);
                files_per_level[level] += 1;
                bytes_per_level[level] += f.size as u64;
            }
        }
        Err(err) => tracing::warn!(error = %err, "rocksdb live files unavailable"),
    }
    let disk_bytes = disk_bytes(&e.dir).unwrap_or_else(|err| {
        tracing::warn!(dir = %e.dir.display(), error = %err, "cannot size the rocksdb directory");
        0
    });
    // Compactions write to the deepest level holding data when RocksDB's
    // table has nothing to split by.
    let deepest = bytes_per_level.iter().rposition(|&b| b > 0).unwrap_or(1);
    let useful = t.get("rocksdb.bloom.filter.useful");
    EngineStats {
        user_bytes_written: e.user_bytes.get(),
        log_bytes_written: t.get("rocksdb.wal.bytes"),
        flush_bytes_written: t.get("rocksdb.flush.write.bytes"),
        compaction_bytes_written: cf.split_compaction_bytes(t.get("rocksdb.compact.write.bytes"), deepest),
        other_bytes_written: 0,
        bytes_read: t.get("rocksdb.non.last.level.read.bytes") + t.get("rocksdb.last.level.read.bytes"),
        blocks_read: t.get("rocksdb.block.cache.data.miss"),
        block_cache_hits: t.get("rocksdb.block.cache.data.hit"),
        point_gets: e.gets.get(),
        point_get_blocks: e.get_blocks.get(),
        bloom_checks: useful + t.get("rocksdb.bloom.filter.full.positive"),
        bloom_useful: useful,
        disk_bytes,
        files_per_level,
        bytes_per_level,
        write_slowdowns: cf.slowdowns,
        write_stops: cf.stops,
    }
}

thread_local! {
    /// RocksDB's perf context is per thread; this is a handle to it.
    static PERF: RefCell<Option<PerfContext>> = const { RefCell::new(None) };
}

/// Runs `f` and returns the data blocks it touched on this thread: block-cache
/// hits plus blocks read. Index and filter blocks never go through either
/// (they live in the table readers), so both counters are data blocks only.
pub(super) fn blocks_touched<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let count = |p: &PerfContext| p.metric(PerfMetric::BlockCacheHitCount) + p.metric(PerfMetric::BlockReadCount);
    let before = PERF.try_with(|p| {
        let mut p = p.borrow_mut();
        let p = p.get_or_insert_with(|| {
            // The default level counts already; this only guards against a
            // thread that turned counting off before its first get.
            set_perf_stats(PerfStatsLevel::EnableCount);
            PerfContext::default()
        });
        count(p)
    });
    let out = f();
    let after = PERF.try_with(|p| p.borrow().as_ref().map(count));
    let blocks = match (before, after) {
        (Ok(b), Ok(Some(a))) => a.saturating_sub(b),
        _ => 0,
    };
    (out, blocks)
}

/// Ticker counts by name (`rocksdb.block.cache.data.miss COUNT : 12`).
#[derive(Debug, Default)]
pub(super) struct Tickers(HashMap<String, u64>);

impl Tickers {
    pub(super) fn parse(text: &str) -> Tickers {
        let mut map = HashMap::new();
        for line in text.lines() {
            // Histograms share the dump but have percentiles between the name
            // and COUNT; a ticker is exactly `name COUNT : n`.
            if let [name, "COUNT", ":", n] = line.split_whitespace().collect::<Vec<_>>()[..] {
                if let Ok(n) = n.parse() {
                    map.insert(name.to_string(), n);
                }
            }
        }
        Tickers(map)
    }

    pub(super) fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// What one column family's `rocksdb.cfstats` text tells about compactions
/// and stalls.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct CfStats {
    /// The `Write(GB)` column by output level (printed to 0.1 GB). Level 0's
    /// row counts flushes too.
    pub(super) write_gb: Vec<f64>,
    /// `Flush(GB): cumulative` (printed to 0.001 GB).
    pub(super) flush_gb: f64,
    /// The `Comp(cnt)` column by output level; level 0's counts flushes too.
    pub(super) compactions: Vec<u64>,
    /// Slowdown conditions entered (L0 files, pending compaction bytes,
    /// memtables).
    pub(super) slowdowns: u64,
    /// Stop conditions entered (same causes).
    pub(super) stops: u64,
}

impl CfStats {
    pub(super) fn parse(text: &str, levels: usize) -> CfStats {
        let mut out = CfStats {
            write_gb: vec![0.0; levels],
            flush_gb: 0.0,
            compactions: vec![0; levels],
            slowdowns: 0,
            stops: 0,
        };
        let mut header: Option<Vec<&str>> = None;
        for line in text.lines() {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            match tokens.first() {
                Some(&"Level") => header = Some(tokens),
                Some(&"Stalls(count):") => out.parse_stalls(line),
                Some(&"Flush(GB):") => {
                    if let Some(gb) = tokens.get(2).and_then(|v| v.trim_end_matches(',').parse::<f64>().ok()) {
                        out.flush_gb += gb;
                    }
                }
                Some(name) => {
                    let (Some(h), Some(level)) = (&header, name.strip_prefix('L')) else { continue };
                    let Some(level) = level.parse::<usize>().ok().filter(|&l| l < levels) else { continue };
                    // "Size" prints as two tokens ("1.50 MB"): columns after it
                    // sit as many places right of the header as the row is
                    // longer than the header.
                    let Some(shift) = tokens.len().checked_sub(h.len()) else { continue };
                    let col = |name: &str| h.iter().position(|c| *c == name).and_then(|i| tokens.get(i + shift));
                    if let Some(gb) = col("Write(GB)").and_then(|v| v.parse::<f64>().ok()) {
                        out.write_gb[level] += gb;
                    }
                    if let Some(n) = col("Comp(cnt)").and_then(|v| v.parse::<u64>().ok()) {
                        out.compactions[level] += n;
                    }
                }
                None => {}
            }
        }
        out
    }

    /// `Stalls(count): 0 level0_slowdown, 0 level0_slowdown_with_compaction,
    /// 0 level0_numfiles, ...`; the `_with_compaction` counts are subsets of
    /// the plain ones and are skipped.
    fn parse_stalls(&mut self, line: &str) {
        let body = line.trim_start_matches("Stalls(count):");
        for item in body.split(',') {
            let Some((n, what)) = item.trim().split_once(' ') else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what.trim() {
                "level0_slowdown" | "slowdown for pending_compaction_bytes" | "memtable_slowdown" => {
                    self.slowdowns += n
                }
                "level0_numfiles" | "stop for pending_compaction_bytes" | "memtable_compaction" => self.stops += n,
                _ => {}
            }
        }
    }

    pub(super) fn add(&mut self, other: &CfStats) {
        for (a, b) in self.write_gb.iter_mut().zip(&other.write_gb) {
            *a += b;
        }
        for (a, b) in self.compactions.iter_mut().zip(&other.compactions) {
            *a += b;
        }
        self.flush_gb += other.flush_gb;
        self.slowdowns += other.slowdowns;
        self.stops += other.stops;
    }

    /// Splits the exact compaction byte total by output level: in proportion
    /// to `Write(GB)` once a level below 0 shows 0.1 GB, before that in
    /// proportion to the number of compactions into each level. Level 0's row
    /// is mostly flushes: it weighs only what exceeds the flushes by the
    /// print resolution (intra-L0 compactions, which are rare), and nothing
    /// when counting.
    pub(super) fn split_compaction_bytes(&self, total: u64, fallback_level: usize) -> Vec<u64> {
        let by_bytes = self.write_gb.iter().skip(1).any(|&w| w > 0.0);
        let mut weights: Vec<f64> =
            if by_bytes { self.write_gb.clone() } else { self.compactions.iter().map(|&n| n as f64).collect() };
        if let Some(l0) = weights.first_mut() {
            let intra = *l0 - self.flush_gb;
            *l0 = if by_bytes && intra >= 0.1 { intra } else { 0.0 };
        }
        split(total, &weights, fallback_level)
    }
}

/// `total` split in proportion to `weights`, summing exactly to `total`
/// (largest remainders get the leftover units); all of it at `fallback` if
/// no weight is positive.
pub(super) fn split(total: u64, weights: &[f64], fallback: usize) -> Vec<u64> {
    let mut out = vec![0u64; weights.len()];
    let sum: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if total == 0 || out.is_empty() {
        return out;
    }
    if sum <= 0.0 {
        let at = fallback.min(out.len() - 1);
        out[at] = total;
        return out;
    }
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let share = if w > 0.0 { total as f64 * w / sum } else { 0.0 };
        out[i] = share.floor() as u64;
        given = given.saturating_add(out[i]);
        remainders.push((share - share.floor(), i));
    }
    remainders.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, i) in remainders.into_iter().take(total.saturating_sub(given) as usize) {
        out[i] += 1;
    }
    out
}

/// Bytes of RocksDB's own files in `dir`: tables, WALs, manifests, CURRENT,
/// OPTIONS. The info logs (`LOG*`) are diagnostics, not data, and are left
/// out. A file deleted while listing is skipped.
pub(super) fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("LOG") || name == "LOCK" {
            continue;
        }
        match entry.metadata() {
            Ok(m) if m.is_file() => total += m.len(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickers_skip_histograms() {
        let t = Tickers::parse(
            "rocksdb.block.cache.miss COUNT : 12\nrocksdb.db.get.micros P50 : 1.0 P95 : 2.0 COUNT : 7 SUM : 9\n\
             rocksdb.wal.bytes COUNT : 4096\ngarbage\n",
        );
        assert_eq!(t.get("rocksdb.block.cache.miss"), 12);
        assert_eq!(t.get("rocksdb.wal.bytes"), 4096);
        assert_eq!(t.get("rocksdb.db.get.micros"), 0);
        assert_eq!(t.get("absent"), 0);
    }

    #[test]
    fn cfstats_table_and_stalls() {
        let text = "\n** Compaction Stats [default] **\n\
Level    Files   Size     Score Read(GB)  Rn(GB) Rnp1(GB) Write(GB) Wnew(GB) Moved(GB) W-Amp Rd(MB/s) Wr(MB/s) Comp(sec) CompMergeCPU(sec) Comp(cnt) Avg(sec) KeyIn KeyDrop Rblob(GB) Wblob(GB)\n\
----------------------------------------------------------------------------------------------------------------\n\
  L0      2/0    1.50 MB   0.5      0.0     0.0      0.0       0.3      0.3       0.0   1.0      0.0     45.1      0.01              0.00         3    0.003       0      0       0.0       0.0\n\
  L1      1/0   12.00 KB   0.0      1.2     0.3      0.9       1.1      0.2       0.0   1.0     80.0     70.0      0.02              0.01         2    0.010    5000   100       0.0       0.0\n\
 Sum      3/0    1.51 MB   0.0      1.2     0.3      0.9       1.4      0.5       0.0   1.0     80.0     70.0      0.03              0.01         5    0.006    5000   100       0.0       0.0\n\
Flush(GB): cumulative 0.300, interval 0.000\n\
Stalls(count): 1 level0_slowdown, 1 level0_slowdown_with_compaction, 2 level0_numfiles, 2 level0_numfiles_with_compaction, 3 stop for pending_compaction_bytes, 4 slowdown for pending_compaction_bytes, 5 memtable_compaction, 6 memtable_slowdown, interval 9 total count\n";
        let s = CfStats::parse(text, 7);
        assert_eq!(s.write_gb[..3], [0.3, 1.1, 0.0]);
        assert_eq!(s.compactions[..3], [3, 2, 0]);
        assert_eq!(s.flush_gb, 0.3);
        assert_eq!((s.slowdowns, s.stops), (1 + 4 + 6, 2 + 3 + 5));
        assert_eq!(s.split_compaction_bytes(1100, 6)[..3], [0, 1100, 0], "level 0 wrote only flushes");
        let small = CfStats { write_gb: vec![0.0; 3], compactions: vec![9, 1, 3], ..s.clone() };
        assert_eq!(small.split_compaction_bytes(400, 2), [0, 100, 300], "by count, flushes left out");
        let none = CfStats { compactions: vec![9, 0, 0], ..small };
        assert_eq!(none.split_compaction_bytes(400, 2), [0, 0, 400]);
    }

    #[test]
    fn split_is_exact() {
        assert_eq!(split(10, &[1.0, 1.0, 1.0], 0).iter().sum::<u64>(), 10);
        assert_eq!(split(7, &[0.0, 0.0], 1), vec![0, 7]);
        assert_eq!(split(7, &[0.0, 0.0], 9), vec![0, 7]);
        assert_eq!(split(0, &[1.0], 0), vec![0]);
        assert!(split(5, &[], 0).is_empty());
        assert_eq!(split(u64::MAX, &[1.0, 0.0], 0), vec![u64::MAX, 0]);
    }
}

//! Counters and histograms of the log's work.

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// A summary of one histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistogramSummary {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Mean of the samples.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl HistogramSummary {
    fn of(h: &Histogram<u64>) -> HistogramSummary {
        if h.is_empty() {
            return HistogramSummary::default();
        }
        HistogramSummary {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// What the log has done since it was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalStats {
    /// Records appended.
    pub records_appended: u64,
    /// Payload bytes appended (what callers handed in).
    pub payload_bytes_appended: u64,
    /// Bytes written to segment files: frames, segment headers, and zeros
    /// written over discarded tails.
    pub bytes_written: u64,
    /// Write batches (one write per batch and segment).
    pub batches: u64,
    /// fdatasync calls on segment files.
    pub fsyncs: u64,
    /// Records per write batch: how well group commit coalesces.
    pub batch_records: HistogramSummary,
    /// fdatasync latency in microseconds.
    pub fsync_latency_us: HistogramSummary,
}

#[derive(Debug)]
struct Recorder {
    records_appended: u64,
    payload_bytes_appended: u64,
    bytes_written: u64,
    batches: u64,
    fsyncs: u64,
    batch_records: Histogram<u64>,
    fsync_latency_us: Histogram<u64>,
}

/// Collects stats; written by the log's writer thread, read by anyone.
#[derive(Debug)]
pub(crate) struct StatsCollector(Mutex<Recorder>);

impl StatsCollector {
    pub(crate) fn new() -> StatsCollector {
        let hist = || Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static histogram bounds are valid");
        StatsCollector(Mutex::new(Recorder {
            records_appended: 0,
            payload_bytes_appended: 0,
            bytes_written: 0,
            batches: 0,
            fsyncs: 0,
            batch_records: hist(),
            fsync_latency_us: hist(),
        }))
    }

    pub(crate) fn batch(&self, records: u64, payload_bytes: u64, file_bytes: u64) {
        let mut r = self.0.lock();
        r.records_appended += records;
        r.payload_bytes_appended += payload_bytes;
        r.bytes_written += file_bytes;
        r.batches += 1;
        r.batch_records.saturating_record(records.max(1));
    }

    pub(crate) fn other_bytes(&self, file_bytes: u64) {
        self.0.lock().bytes_written += file_bytes;
    }

    pub(crate) fn fsync(&self, took: Duration) {
        let mut r = self.0.lock();
        r.fsyncs += 1;
        r.fsync_latency_us.saturating_record((took.as_micros() as u64).max(1));
    }

    pub(crate) fn snapshot(&self) -> WalStats {
        let r = self.0.lock();
        WalStats {
            records_appended: r.records_appended,
            payload_bytes_appended: r.payload_bytes_appended,
            bytes_written: r.bytes_written,
            batches: r.batches,
            fsyncs: r.fsyncs,
            batch_records: HistogramSummary::of(&r.batch_records),
            fsync_latency_us: HistogramSummary::of(&r.fsync_latency_us),
        }
    }
}

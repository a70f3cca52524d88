//! Per-table metrics: read and write latency histograms (HdrHistogram, in
//! microseconds), tombstones scanned per read, and counters. Cheap to record
//! (one short mutex per histogram), read by `nodetool`-style tools.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::merge::ReadCounters;

/// Highest latency a histogram tracks (one hour, in µs); larger values are clamped.
const LATENCY_MAX_US: u64 = 3_600_000_000;

fn new_histogram() -> Mutex<Histogram<u64>> {
    let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| Histogram::new(1).unwrap_or_else(|_| unreachable!()));
    Mutex::new(histogram)
}

fn record(histogram: &Mutex<Histogram<u64>>, value: u64) {
    histogram
        .lock()
        .saturating_record(value.clamp(1, LATENCY_MAX_US));
}

/// Live metrics of one table.
#[derive(Debug)]
pub struct TableMetrics {
    write_latency_us: Mutex<Histogram<u64>>,
    read_latency_us: Mutex<Histogram<u64>>,
    range_latency_us: Mutex<Histogram<u64>>,
    tombstones_per_read: Mutex<Histogram<u64>>,
    pub writes: AtomicU64,
    pub reads: AtomicU64,
    pub range_reads: AtomicU64,
    pub tombstones_scanned: AtomicU64,
}

impl Default for TableMetrics {
    fn default() -> Self {
        TableMetrics::new()
    }
}

/// Percentiles of a histogram, in its unit: the rows `nodetool
/// tablehistograms` prints, and the mean `tablestats` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub min: u64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p98: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of a histogram (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p75: h.value_at_quantile(0.75),
            p95: h.value_at_quantile(0.95),
            p98: h.value_at_quantile(0.98),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

fn percentiles(histogram: &Mutex<Histogram<u64>>) -> Percentiles {
    Percentiles::of(&histogram.lock())
}

impl TableMetrics {
    pub fn new() -> TableMetrics {
        TableMetrics {
            write_latency_us: new_histogram(),
            read_latency_us: new_histogram(),
            range_latency_us: new_histogram(),
            tombstones_per_read: new_histogram(),
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            range_reads: AtomicU64::new(0),
            tombstones_scanned: AtomicU64::new(0),
        }
    }

    pub fn record_write(&self, latency: Duration) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        record(&self.write_latency_us, latency.as_micros() as u64);
    }

    pub fn record_read(&self, latency: Duration, counters: &ReadCounters) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        record(&self.read_latency_us, latency.as_micros() as u64);
        self.note_tombstones(counters);
    }

    pub fn record_range_read(&self, latency: Duration, counters: &ReadCounters) {
        self.range_reads.fetch_add(1, Ordering::Relaxed);
        record(&self.range_latency_us, latency.as_micros() as u64);
        self.note_tombstones(counters);
    }

    fn note_tombstones(&self, counters: &ReadCounters) {
        self.tombstones_scanned
            .fetch_add(counters.tombstones_scanned, Ordering::Relaxed);
        let mut h = self.tombstones_per_read.lock();
        h.saturating_record(counters.tombstones_scanned);
    }

    pub fn write_latency(&self) -> Percentiles {
        percentiles(&self.write_latency_us)
    }

    pub fn read_latency(&self) -> Percentiles {
        percentiles(&self.read_latency_us)
    }

    pub fn range_latency(&self) -> Percentiles {
        percentiles(&self.range_latency_us)
    }

    pub fn tombstones_per_read(&self) -> Percentiles {
        percentiles(&self.tombstones_per_read)
    }
}

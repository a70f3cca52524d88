//! Latency histograms of a stress run (HdrHistogram, 1 µs to 60 s, 3
//! significant digits, fixed size), the live progress line printed each
//! second, and the final summary (text, JSON, HdrHistogram log).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::Plan;

const LATENCY_MAX_US: u64 = 60_000_000;

/// The kind of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Write,
    Read,
}

impl OpKind {
    const ALL: [OpKind; 2] = [OpKind::Write, OpKind::Read];

    fn name(self) -> &'static str {
        match self {
            OpKind::Write => "write",
            OpKind::Read => "read",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Histograms per kind: the whole run, and the current second.
struct Histograms {
    total: [Histogram<u64>; 2],
    interval: [Histogram<u64>; 2],
}

/// Records operations as workers finish them.
pub struct Recorder {
    histograms: Mutex<Histograms>,
    errors: AtomicU64,
    interval_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Recorder {
    pub fn new() -> Result<Recorder, hdrhistogram::CreationError> {
        let empty = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)?;
        let like = || Histogram::new_from(&empty);
        Ok(Recorder {
            histograms: Mutex::new(Histograms {
                total: [like(), like()],
                interval: [like(), like()],
            }),
            errors: AtomicU64::new(0),
            interval_errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })
    }

    pub fn record(&self, kind: OpKind, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        let mut histograms = self.histograms.lock();
        let _ = histograms.total[kind.index()].record(micros);
        let _ = histograms.interval[kind.index()].record(micros);
    }

    pub fn error(&self, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.interval_errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(message.to_owned());
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().clone()
    }

    /// The current second's histogram (both kinds merged) and errors; starts the next.
    fn take_interval(&self) -> (Histogram<u64>, u64) {
        let mut histograms = self.histograms.lock();
        let mut merged = Histogram::new_from(&histograms.interval[0]);
        for h in histograms.interval.iter_mut() {
            let _ = merged.add(&*h);
            h.reset();
        }
        (merged, self.interval_errors.swap(0, Ordering::Relaxed))
    }

    pub fn summary(&self, elapsed: Duration) -> Summary {
        let histograms = self.histograms.lock();
        let mut all = Histogram::new_from(&histograms.total[0]);
        for h in &histograms.total {
            let _ = all.add(h);
        }
        Summary {
            elapsed,
            operations: all.len(),
            errors: self.errors.load(Ordering::Relaxed),
            overall: Latencies::of(&all),
            per_kind: OpKind::ALL
                .iter()
                .filter(|k| !histograms.total[k.index()].is_empty())
                .map(|k| {
                    (
                        k.name(),
                        histograms.total[k.index()].len(),
                        Latencies::of(&histograms.total[k.index()]),
                    )
                })
                .collect(),
        }
    }

    /// Writes each kind's histogram of the whole run as an HdrHistogram
    /// interval log (readable by HdrHistogram's tools, tagged by kind).
    pub fn write_hdr_log(&self, path: &Path) -> std::io::Result<()> {
        let histograms = self.histograms.lock();
        let mut file = std::fs::File::create(path)?;
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .with_base_time(SystemTime::now())
            .begin_log_with(&mut file, &mut serializer)?;
        for kind in OpKind::ALL {
            let h = &histograms.total[kind.index()];
            if h.is_empty() {
                continue;
            }
            writer
                .write_histogram(h, Duration::ZERO, Duration::ZERO, Tag::new(kind.name()))
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        Ok(())
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latencies {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latencies {
    fn of(h: &Histogram<u64>) -> Latencies {
        let ms = |us: u64| us as f64 / 1000.0;
        Latencies {
            p50: ms(h.value_at_quantile(0.5)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50": self.p50, "p95": self.p95, "p99": self.p99, "p99.9": self.p999, "max": self.max,
        })
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub elapsed: Duration,
    /// Operations that succeeded.
    pub operations: u64,
    pub errors: u64,
    pub overall: Latencies,
    pub per_kind: Vec<(&'static str, u64, Latencies)>,
}

impl Summary {
    pub fn ops_per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn text(&self) -> String {
        let mut out = String::from("\nResults:\n");
        let kinds: Vec<String> = self
            .per_kind
            .iter()
            .map(|(name, n, _)| format!("{name} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  operations     : {} ({})",
            self.operations,
            kinds.join(", ")
        );
        let _ = writeln!(out, "  errors         : {}", self.errors);
        let _ = writeln!(
            out,
            "  elapsed        : {:.2} s",
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(out, "  throughput     : {:.0} ops/s", self.ops_per_second());
        let l = &self.overall;
        let _ = writeln!(out, "  latency p50    : {:.3} ms", l.p50);
        let _ = writeln!(out, "  latency p95    : {:.3} ms", l.p95);
        let _ = writeln!(out, "  latency p99    : {:.3} ms", l.p99);
        let _ = writeln!(out, "  latency p99.9  : {:.3} ms", l.p999);
        let _ = writeln!(out, "  latency max    : {:.3} ms", l.max);
        if self.per_kind.len() > 1 {
            for (name, n, l) in &self.per_kind {
                let _ = writeln!(
                    out,
                    "  {name:<6} {n:>9} ops  p50 {:.3}  p99 {:.3}  max {:.3} ms",
                    l.p50, l.p99, l.max
                );
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let per_kind: serde_json::Map<String, serde_json::Value> = self
            .per_kind
            .iter()
            .map(|(name, n, l)| {
                (
                    (*name).to_owned(),
                    serde_json::json!({"operations": n, "latency_ms": l.json()}),
                )
            })
            .collect();
        serde_json::json!({
            "operations": self.operations,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "ops_per_s": self.ops_per_second(),
            "latency_ms": self.overall.json(),
            "per_operation": per_kind,
        })
        .to_string()
    }
}

/// Prints a progress line each second until the run stops.
pub(super) async fn progress(plan: Arc<Plan>, print: bool) {
    if print {
        println!(
            "{:>8} {:>10} {:>9} {:>9} {:>8} {:>11}",
            "time(s)", "ops/s", "p50(ms)", "p99(ms)", "errors", "total"
        );
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut total = 0u64;
    let mut last = plan.started;
    loop {
        ticker.tick().await;
        if plan.stop.load(Ordering::Acquire) {
            return;
        }
        let (h, errors) = plan.recorder.take_interval();
        let now = std::time::Instant::now();
        let seconds = (now - last).as_secs_f64().max(1e-9);
        last = now;
        total += h.len();
        if print {
            println!(
                "{:>8} {:>10.0} {:>9.3} {:>9.3} {:>8} {:>11}",
                plan.started.elapsed().as_secs(),
                h.len() as f64 / seconds,
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                errors,
                total
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_percentiles() {
        let recorder = Recorder::new().unwrap();
        for ms in 1..=100u64 {
            recorder.record(OpKind::Write, Duration::from_millis(ms));
        }
        recorder.record(OpKind::Read, Duration::from_millis(500));
        recorder.error("boom");
        let summary = recorder.summary(Duration::from_secs(2));
        assert_eq!(summary.operations, 101);
        assert_eq!(summary.errors, 1);
        assert!((summary.ops_per_second() - 50.5).abs() < 1e-9);
        assert!(
            (summary.overall.p50 - 51.0).abs() < 0.1,
            "{:?}",
            summary.overall
        );
        assert!((summary.overall.max - 500.0).abs() < 1.0);
        assert_eq!(summary.per_kind.len(), 2);
        let json: serde_json::Value = serde_json::from_str(&summary.json()).unwrap();
        assert_eq!(json["per_operation"]["write"]["operations"], 100);
        assert_eq!(recorder.first_error().as_deref(), Some("boom"));
    }

    #[test]
    fn the_hdr_log_is_readable_back() {
        let recorder = Recorder::new().unwrap();
        recorder.record(OpKind::Read, Duration::from_micros(700));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.hlog");
        recorder.write_hdr_log(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let entries: Vec<_> =
            hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes).collect();
        assert!(entries.iter().any(|e| matches!(
            e,
            Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(i)) if i.tag().map(|t| t.as_str()) == Some("read")
        )), "{entries:?}");
    }
}

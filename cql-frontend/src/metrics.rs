//! The node's client-facing metrics (Cassandra's ClientRequest and
//! connection metrics) and their Prometheus text exposition, together with
//! the storage figures the engine keeps.
//!
//! Recording is cheap and bounded: counters are atomics; latencies go into
//! one fixed-size HdrHistogram per operation (1 µs to 60 s, 3 significant
//! digits), so memory does not grow with traffic.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::node::Node;
use crate::protocol::error::CqlError;

/// Longest latency recorded exactly; longer ones count as this.
const LATENCY_MAX_US: u64 = 60_000_000;

/// Bucket bounds of the exposed latency histograms, in seconds.
const BUCKETS_S: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// What a client request did, as Cassandra's ClientRequest scopes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    /// DDL, USE, role management, DESCRIBE and the like.
    Other,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Read, Operation::Write, Operation::Other];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters and latencies of one operation.
#[derive(Debug)]
struct OperationMetrics {
    latency_us: Mutex<Histogram<u64>>,
    timeouts: AtomicU64,
    unavailables: AtomicU64,
    failures: AtomicU64,
}

impl OperationMetrics {
    fn new() -> Result<OperationMetrics, hdrhistogram::CreationError> {
        Ok(OperationMetrics {
            latency_us: Mutex::new(Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)?),
            timeouts: AtomicU64::new(0),
            unavailables: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }
}

/// The node's client metrics.
#[derive(Debug)]
pub struct ClientMetrics {
    operations: [OperationMetrics; 3],
    connections: AtomicU64,
    connections_total: AtomicU64,
    /// Requests refused with Overloaded (Cassandra counts them as dropped).
    overloaded: AtomicU64,
}

impl ClientMetrics {
    pub fn new() -> Result<ClientMetrics, hdrhistogram::CreationError> {
        Ok(ClientMetrics {
            operations: [
                OperationMetrics::new()?,
                OperationMetrics::new()?,
                OperationMetrics::new()?,
            ],
            connections: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
        })
    }

    /// Records one finished request.
    pub fn record(&self, operation: Operation, elapsed: Duration, error: Option<&CqlError>) {
        let metrics = &self.operations[operation.index()];
        let micros = (elapsed.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        // Saturating record: a value past the bound is clamped above.
        let _ = metrics.latency_us.lock().record(micros);
        match error {
            None => {}
            Some(CqlError::ReadTimeout { .. } | CqlError::WriteTimeout { .. }) => {
                metrics.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Some(CqlError::Unavailable { .. }) => {
                metrics.unavailables.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                metrics.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A request refused with Overloaded.
    pub fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection opened; the guard closes it when dropped.
    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard { metrics: self }
    }

    /// Requests served so far, per operation (for tests and nodetool).
    pub fn requests(&self, operation: Operation) -> u64 {
        self.operations[operation.index()].latency_us.lock().len()
    }

    /// Latency percentiles of one operation, in µs (`nodetool proxyhistograms`).
    pub fn latency_us(&self, operation: Operation) -> storage_lsm::stats::Percentiles {
        storage_lsm::stats::Percentiles::of(&self.operations[operation.index()].latency_us.lock())
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests refused with Overloaded so far.
    pub fn overloaded_total(&self) -> u64 {
        self.overloaded.load(Ordering::Relaxed)
    }
}

/// Counts a connection as open while it lives.
pub struct ConnectionGuard<'a> {
    metrics: &'a ClientMetrics,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes one metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes a family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Escapes a label value for the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The node's metrics in the Prometheus text exposition format (0.0.4).
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    let metrics = &node.metrics;

    family(
        &mut out,
        "ilion_client_request_latency_seconds",
        "histogram",
        "Latency of client requests as the coordinator saw them.",
    );
    for operation in Operation::ALL {
        let histogram = metrics.operations[operation.index()]
            .latency_us
            .lock()
            .clone();
        let op = operation.name();
        for bound in BUCKETS_S {
            let bound_us = (bound * 1_000_000.0) as u64;
            let count = histogram.count_between(0, bound_us);
            let _ = writeln!(
                out,
                "ilion_client_request_latency_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {count}"
            );
        }
        let total = histogram.len();
        let sum_s = histogram.mean() * total as f64 / 1_000_000.0;
        let _ = writeln!(
            out,
            "ilion_client_request_latency_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "ilion_client_request_latency_seconds_sum{{operation=\"{op}\"}} {sum_s}"
        );
        let _ = writeln!(
            out,
            "ilion_client_request_latency_seconds_count{{operation=\"{op}\"}} {total}"
        );
    }
    family(
        &mut out,
        "ilion_client_requests_total",
        "counter",
        "Client requests this node coordinated.",
    );
    for operation in Operation::ALL {
        let _ = writeln!(
            out,
            "ilion_client_requests_total{{operation=\"{}\"}} {}",
            operation.name(),
            metrics.requests(operation)
        );
    }
    family(
        &mut out,
        "ilion_client_request_errors_total",
        "counter",
        "Client requests that ended in an error, by kind.",
    );
    for operation in Operation::ALL {
        let m = &metrics.operations[operation.index()];
        for (kind, counter) in [
            ("timeout", &m.timeouts),
            ("unavailable", &m.unavailables),
            ("failure", &m.failures),
        ] {
            let _ = writeln!(
                out,
                "ilion_client_request_errors_total{{operation=\"{}\",error=\"{kind}\"}} {}",
                operation.name(),
                counter.load(Ordering::Relaxed)
            );
        }
    }
    for (name, kind, help, value) in [
        (
            "ilion_dropped_requests_total",
            "counter",
            "Requests refused with Overloaded because too many were in flight.",
            &metrics.overloaded,
        ),
        (
            "ilion_client_connections",
            "gauge",
            "Open CQL client connections.",
            &metrics.connections,
        ),
        (
            "ilion_client_connections_total",
            "counter",
            "CQL client connections accepted since start.",
            &metrics.connections_total,
        ),
    ] {
        single(&mut out, name, kind, help, value.load(Ordering::Relaxed));
    }

    render_coordinator(node, &mut out);
    render_storage(node, &mut out);

    // On a one-node ring the only endpoint is this node, and it is UP.
    out
}

/// What the coordinator did beyond answering: hints, read repair,
/// speculative retries, requests sent to a node that is not a replica.
fn render_coordinator(node: &Node, out: &mut String) {
    let stats = node.coordinator.stats();
    let (hints_stored, hints_replayed) = node
        .coordinator
        .remote()
        .map_or((0, 0), |remote| remote.hints.counts());
    let ring = node.coordinator.ring();
    single(
        out,
        "ilion_ring_live_nodes",
        "gauge",
        "Nodes in this node's ring (itself included) that it sees UP.",
        ring.endpoints().iter().filter(|e| e.up).count() as u64,
    );
    for (name, help, value) in [
        (
            "ilion_coordinator_non_replica_requests_total",
            "Single-partition requests this node coordinated without being a replica of the partition.",
            stats.non_replica.load(Ordering::Relaxed),
        ),
        (
            "ilion_read_repairs_total",
            "Replicas brought up to date by blocking read repair.",
            stats.read_repairs.load(Ordering::Relaxed),
        ),
        (
            "ilion_speculative_retries_total",
            "Reads doubled on a spare replica because one was slow or failed.",
            stats.speculative_retries.load(Ordering::Relaxed),
        ),
        (
            "ilion_hints_stored_total",
            "Hints kept for replicas that were down or did not answer.",
            hints_stored,
        ),
        (
            "ilion_hints_replayed_total",
            "Hints delivered to their replica.",
            hints_replayed,
        ),
    ] {
        single(out, name, "counter", help, value);
    }
}

/// Per-table storage figures and the commitlog.
fn render_storage(node: &Node, out: &mut String) {
    let engine = node.coordinator.engine();
    let tables: Vec<_> = node
        .catalog
        .read()
        .tables
        .values()
        .map(|t| (t.keyspace.clone(), t.name.clone(), t.table_id()))
        .collect();
    let mut rows = Vec::with_capacity(tables.len());
    for (keyspace, table, id) in tables {
        if let Ok(stats) = engine.stats(id) {
            rows.push((label(&keyspace), label(&table), stats));
        }
    }
    type Field = fn(&storage_lsm::TableStats) -> u64;
    let families: [(&str, &str, &str, Field); 6] = [
        (
            "ilion_table_memtable_bytes",
            "gauge",
            "Bytes held in the table's memtables.",
            |s| s.memtable_bytes as u64,
        ),
        (
            "ilion_table_sstables",
            "gauge",
            "SSTables of the table.",
            |s| s.sstable_count as u64,
        ),
        (
            "ilion_table_live_disk_bytes",
            "gauge",
            "Bytes of the table's live SSTables.",
            |s| s.live_disk_bytes,
        ),
        (
            "ilion_table_pending_compactions",
            "gauge",
            "Compactions the table's strategy would run now.",
            |s| s.pending_compactions as u64,
        ),
        (
            "ilion_table_partitions_estimate",
            "gauge",
            "Estimated partitions in the table.",
            |s| s.partition_count_estimate,
        ),
        (
            "ilion_table_tombstones_scanned_total",
            "counter",
            "Tombstones reads of the table went over.",
            |s| s.tombstones_scanned_total,
        ),
    ];
    for (name, kind, help, field) in families {
        family(out, name, kind, help);
        for (keyspace, table, stats) in &rows {
            let _ = writeln!(
                out,
                "{name}{{keyspace=\"{keyspace}\",table=\"{table}\"}} {}",
                field(stats)
            );
        }
    }
    single(
        out,
        "ilion_commitlog_segments",
        "gauge",
        "Commitlog segments on disk (active and waiting for flushes).",
        engine.commitlog_segments() as u64,
    );
    single(
        out,
        "ilion_compaction_throughput_bytes_per_second",
        "gauge",
        "The compaction throughput limit (0: unlimited).",
        engine.compaction_throughput(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_latencies_errors_and_connections() -> Result<(), hdrhistogram::CreationError> {
        let metrics = ClientMetrics::new()?;
        metrics.record(Operation::Read, Duration::from_micros(300), None);
        metrics.record(
            Operation::Write,
            Duration::from_secs(120),
            Some(&CqlError::Overloaded("x".into())),
        );
        assert_eq!(metrics.requests(Operation::Read), 1);
        assert_eq!(metrics.requests(Operation::Write), 1);
        assert_eq!(metrics.operations[1].failures.load(Ordering::Relaxed), 1);
        {
            let _a = metrics.connection();
            let _b = metrics.connection();
            assert_eq!(metrics.connections.load(Ordering::Relaxed), 2);
        }
        assert_eq!(metrics.connections.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.connections_total.load(Ordering::Relaxed), 2);
        Ok(())
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

//! Goal: every read the engine answers equals an obviously-correct in-memory
//! model, whatever sequence of writes, the four kinds of deletion, TTLs,
//! flushes, compactions (each strategy), clock moves and reopenings came
//! before.
//!
//! The model keeps every write ever made and answers a read by brute force:
//! reconcile each cell over all writes, then apply every deletion. The engine
//! must agree on slices (forward and reverse, with limits, on prefix ranges)
//! and on paged token scans.
//!
//! Two regimes: with random small timestamps (ties everywhere) tombstones are
//! never purged (gc_grace is huge); with increasing timestamps gc_grace is 0,
//! so compaction purges whatever it believes safe and any wrong purge shows.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use storage_lsm::model::{
    Cell, CellValue, ClusteringBound, ClusteringRange, DeletionTime, Mutation, PartitionKey,
    PartitionUpdate, RangeTombstone, Row, TableId,
};
use storage_lsm::{
    CompactionStrategy, Engine, EngineConfig, ManualClock, SliceQuery, SyncMode, TableOptions,
    TokenRange,
};

const TABLE: TableId = TableId(0xabc);
const START_S: i64 = 1_000_000;

fn key(k: u8) -> PartitionKey {
    PartitionKey::new(i64::from(k % 3) - 1, vec![k])
}

// ---------- generation ----------

#[derive(Debug, Clone)]
enum CellSpec {
    Live {
        column: u32,
        path: Option<u8>,
        value: u8,
    },
    Expiring {
        column: u32,
        path: Option<u8>,
        value: u8,
        ttl: u8,
    },
    Tombstone {
        column: u32,
        path: Option<u8>,
    },
}

#[derive(Debug, Clone)]
enum RowSpec {
    Cells {
        clustering: Vec<u8>,
        cells: Vec<CellSpec>,
    },
    Deleted {
        clustering: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
enum BoundSpec {
    Unbounded,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

#[derive(Debug, Clone)]
enum WriteSpec {
    Rows(Vec<RowSpec>),
    Static(Vec<CellSpec>),
    PartitionDeletion,
    RangeDeletion(BoundSpec, BoundSpec),
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        key: u8,
        timestamp: i64,
        write: WriteSpec,
    },
    Flush,
    CompactPending,
    CompactAll,
    Reopen,
    Advance(u8),
    Read {
        key: u8,
        start: BoundSpec,
        end: BoundSpec,
        reversed: bool,
        limit: u8,
    },
    Scan {
        page: u8,
    },
}

fn clustering() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c']), 1..=2)
}

/// Columns 1 and 2 are simple (no path); column 3 is a collection (cells
/// with paths, and path-less tombstones deleting the whole collection).
fn cell_spec() -> impl Strategy<Value = CellSpec> {
    let simple = prop::sample::select(vec![1u32, 2]);
    let element = prop::sample::select(vec![1u8, 2]);
    prop_oneof![
        3 => (simple.clone(), any::<u8>()).prop_map(|(column, value)| CellSpec::Live { column, path: None, value: value % 4 }),
        2 => (element.clone(), any::<u8>()).prop_map(|(path, value)| CellSpec::Live { column: 3, path: Some(path), value: value % 4 }),
        1 => (simple.clone(), any::<u8>(), 1u8..20).prop_map(|(column, value, ttl)| CellSpec::Expiring { column, path: None, value: value % 4, ttl }),
        1 => (element.clone(), any::<u8>(), 1u8..20).prop_map(|(path, value, ttl)| CellSpec::Expiring { column: 3, path: Some(path), value: value % 4, ttl }),
        1 => simple.prop_map(|column| CellSpec::Tombstone { column, path: None }),
        1 => prop::option::of(element).prop_map(|path| CellSpec::Tombstone { column: 3, path }),
    ]
}

fn bound_spec() -> impl Strategy<Value = BoundSpec> {
    prop_oneof![
        1 => Just(BoundSpec::Unbounded),
        2 => clustering().prop_map(BoundSpec::Inclusive),
        2 => clustering().prop_map(BoundSpec::Exclusive),
    ]
}

fn write_spec() -> impl Strategy<Value = WriteSpec> {
    let row = prop_oneof![
        5 => (clustering(), prop::collection::vec(cell_spec(), 1..3)).prop_map(|(clustering, cells)| RowSpec::Cells { clustering, cells }),
        1 => clustering().prop_map(|clustering| RowSpec::Deleted { clustering }),
    ];
    prop_oneof![
        8 => prop::collection::vec(row, 1..3).prop_map(WriteSpec::Rows),
        1 => prop::collection::vec(cell_spec(), 1..2).prop_map(WriteSpec::Static),
        1 => Just(WriteSpec::PartitionDeletion),
        2 => (bound_spec(), bound_spec()).prop_map(|(s, e)| WriteSpec::RangeDeletion(s, e)),
    ]
}

fn op(timestamps: impl Strategy<Value = i64>) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u8..6, timestamps, write_spec()).prop_map(|(key, timestamp, write)| Op::Write { key, timestamp, write }),
        2 => Just(Op::Flush),
        1 => Just(Op::CompactPending),
        1 => Just(Op::CompactAll),
        1 => Just(Op::Reopen),
        1 => (1u8..15).prop_map(Op::Advance),
        4 => (0u8..6, bound_spec(), bound_spec(), any::<bool>(), 1u8..6).prop_map(|(key, start, end, reversed, limit)| Op::Read { key, start, end, reversed, limit }),
        1 => (1u8..5).prop_map(|page| Op::Scan { page }),
    ]
}

// ---------- conversion to engine types ----------

fn to_bound(spec: &BoundSpec) -> ClusteringBound {
    match spec {
        BoundSpec::Unbounded => ClusteringBound::Unbounded,
        BoundSpec::Inclusive(p) => ClusteringBound::Inclusive(Bytes::from(p.clone())),
        BoundSpec::Exclusive(p) => ClusteringBound::Exclusive(Bytes::from(p.clone())),
    }
}

fn to_cell(spec: &CellSpec, timestamp: i64, now_s: i64) -> Cell {
    let (column, path, value) = match spec {
        CellSpec::Live {
            column,
            path,
            value,
        } => (*column, *path, CellValue::Live(Bytes::from(vec![*value]))),
        CellSpec::Expiring {
            column,
            path,
            value,
            ttl,
        } => (
            *column,
            *path,
            CellValue::Expiring {
                value: Bytes::from(vec![*value]),
                ttl_s: u32::from(*ttl),
                expires_at_s: now_s + i64::from(*ttl),
            },
        ),
        CellSpec::Tombstone { column, path } => (
            *column,
            *path,
            CellValue::Tombstone {
                deleted_at_s: now_s,
            },
        ),
    };
    Cell {
        column,
        path: path.map(|p| Bytes::from(vec![p])),
        timestamp,
        value,
    }
}

fn to_update(spec: &WriteSpec, timestamp: i64, now_s: i64) -> PartitionUpdate {
    let deletion = DeletionTime::new(timestamp, now_s);
    let mut update = PartitionUpdate::default();
    match spec {
        WriteSpec::Rows(rows) => {
            let mut by_key: BTreeMap<Vec<u8>, Row> = BTreeMap::new();
            for row in rows {
                match row {
                    RowSpec::Cells { clustering, cells } => {
                        let entry = by_key
                            .entry(clustering.clone())
                            .or_insert_with(|| Row::new(clustering.clone(), vec![]));
                        for cell in cells {
                            entry.add_cell(to_cell(cell, timestamp, now_s));
                        }
                    }
                    RowSpec::Deleted { clustering } => {
                        let entry = by_key
                            .entry(clustering.clone())
                            .or_insert_with(|| Row::new(clustering.clone(), vec![]));
                        entry.deletion = Some(deletion);
                    }
                }
            }
            update.rows = by_key.into_values().collect();
        }
        WriteSpec::Static(cells) => {
            update.static_row = Some(Row::new(
                Bytes::new(),
                cells.iter().map(|c| to_cell(c, timestamp, now_s)).collect(),
            ));
        }
        WriteSpec::PartitionDeletion => update.partition_deletion = Some(deletion),
        WriteSpec::RangeDeletion(start, end) => update.range_tombstones.push(RangeTombstone {
            range: ClusteringRange {
                start: to_bound(start),
                end: to_bound(end),
            },
            deletion,
        }),
    }
    update
}

// ---------- the model ----------

type Flat = Vec<(PartitionKey, Option<Bytes>, Vec<Cell>)>;

#[derive(Default)]
struct Model {
    writes: Vec<(PartitionKey, PartitionUpdate)>,
}

impl Model {
    /// Visible cells of one row given every write to the partition.
    fn visible_cells(
        &self,
        key: &PartitionKey,
        clustering: Option<&Bytes>,
        now_s: i64,
    ) -> Vec<Cell> {
        let mut outer: Option<DeletionTime> = None;
        let mut winners: BTreeMap<(u32, Option<Bytes>), Cell> = BTreeMap::new();
        for (k, update) in self.writes.iter().filter(|(k, _)| k == key) {
            let _ = k;
            outer = outer.max(update.partition_deletion);
            let rows: Vec<&Row> = match clustering {
                None => update.static_row.iter().collect(),
                Some(c) => {
                    for rt in &update.range_tombstones {
                        if rt.range.contains(c) {
                            outer = outer.max(Some(rt.deletion));
                        }
                    }
                    update.rows.iter().filter(|r| r.clustering == *c).collect()
                }
            };
            for row in rows {
                outer = outer.max(row.deletion);
                for cell in &row.cells {
                    let name = (cell.column, cell.path.clone());
                    let winner = match winners.remove(&name) {
                        Some(existing) => Cell::reconcile(existing, cell.clone()),
                        None => cell.clone(),
                    };
                    winners.insert(name, winner);
                }
            }
        }
        let column_tombstones: BTreeMap<u32, i64> = winners
            .iter()
            .filter(|((_, path), cell)| path.is_none() && cell.is_tombstone())
            .map(|((column, _), cell)| (*column, cell.timestamp))
            .collect();
        winners
            .into_values()
            .filter(|cell| outer.is_none_or(|d| cell.timestamp > d.timestamp))
            .filter(|cell| {
                cell.path.is_none()
                    || column_tombstones
                        .get(&cell.column)
                        .is_none_or(|&ts| cell.timestamp > ts)
            })
            .filter(|cell| cell.is_live(now_s))
            .collect()
    }

    fn clusterings(&self, key: &PartitionKey) -> Vec<Bytes> {
        let mut all: Vec<Bytes> = self
            .writes
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, u)| u.rows.iter().map(|r| r.clustering.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    fn read(
        &self,
        key: &PartitionKey,
        range: &ClusteringRange,
        reversed: bool,
        limit: usize,
        now_s: i64,
    ) -> (Vec<Cell>, Vec<(Bytes, Vec<Cell>)>) {
        let static_cells = self.visible_cells(key, None, now_s);
        let mut rows: Vec<(Bytes, Vec<Cell>)> = self
            .clusterings(key)
            .into_iter()
            .filter(|c| range.contains(c))
            .map(|c| {
                let cells = self.visible_cells(key, Some(&c), now_s);
                (c, cells)
            })
            .filter(|(_, cells)| !cells.is_empty())
            .collect();
        if reversed {
            rows.reverse();
        }
        rows.truncate(limit);
        (static_cells, rows)
    }

    fn flat_scan(&self, now_s: i64) -> Flat {
        let mut keys: Vec<PartitionKey> = self.writes.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let (static_cells, rows) =
                self.read(&key, &ClusteringRange::all(), false, usize::MAX, now_s);
            if !static_cells.is_empty() {
                out.push((key.clone(), None, static_cells));
            }
            for (c, cells) in rows {
                out.push((key.clone(), Some(c), cells));
            }
        }
        out
    }
}

// ---------- the harness ----------

struct Harness {
    dir: tempfile::TempDir,
    clock: ManualClock,
    engine: Option<Engine>,
    options: TableOptions,
}

impl Harness {
    fn new(options: TableOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START_S);
        let mut harness = Harness {
            dir,
            clock,
            engine: None,
            options,
        };
        harness.open();
        harness
            .engine()
            .create_table(TABLE, harness.options.clone())
            .unwrap();
        harness
    }

    fn open(&mut self) {
        let mut config = EngineConfig::new(
            self.dir.path().join("data"),
            self.dir.path().join("commitlog"),
        );
        config.background = false;
        config.sync = SyncMode::Periodic(std::time::Duration::from_secs(3600));
        config.clock = Arc::new(self.clock.clone());
        config.compaction_bytes_per_s = 0;
        self.engine = Some(Engine::open(config).unwrap());
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    fn flat_scan(&self, page: usize) -> Flat {
        let mut out = Vec::new();
        let mut resume = None;
        for _ in 0..10_000 {
            let result = self
                .engine()
                .scan(TABLE, &TokenRange::all(), resume.as_ref(), page)
                .unwrap();
            for partition in result.partitions {
                if let Some(row) = partition.static_row {
                    out.push((partition.key.clone(), None, row.cells));
                }
                for row in partition.rows {
                    out.push((partition.key.clone(), Some(row.clustering), row.cells));
                }
            }
            match result.resume {
                Some(r) => resume = Some(r),
                None => return out,
            }
        }
        panic!("scan did not finish");
    }
}

fn run(ops: Vec<Op>, options: TableOptions) -> Result<(), TestCaseError> {
    let mut h = Harness::new(options);
    let mut model = Model::default();
    for op in ops {
        let now_s = h.clock.now_s_value();
        match op {
            Op::Write {
                key: k,
                timestamp,
                write,
            } => {
                let update = to_update(&write, timestamp, now_s);
                model.writes.push((key(k), update.clone()));
                h.engine()
                    .apply(Mutation {
                        table: TABLE,
                        key: key(k),
                        update,
                    })
                    .unwrap();
            }
            Op::Flush => h.engine().flush(TABLE).unwrap(),
            Op::CompactPending => {
                h.engine().compact_pending(TABLE).unwrap();
            }
            Op::CompactAll => h.engine().compact_all(TABLE).unwrap(),
            Op::Reopen => {
                h.engine = None;
                h.open();
            }
            Op::Advance(seconds) => h.clock.advance(i64::from(seconds)),
            Op::Read {
                key: k,
                start,
                end,
                reversed,
                limit,
            } => {
                let range = ClusteringRange {
                    start: to_bound(&start),
                    end: to_bound(&end),
                };
                let query = SliceQuery {
                    range: range.clone(),
                    reversed,
                    limit: usize::from(limit),
                    resume_after: None,
                };
                let got = h.engine().read(TABLE, &key(k), &query).unwrap();
                let (static_cells, rows) =
                    model.read(&key(k), &range, reversed, usize::from(limit), now_s);
                let got_static = got
                    .as_ref()
                    .and_then(|p| p.static_row.as_ref())
                    .map(|r| r.cells.clone())
                    .unwrap_or_default();
                let got_rows: Vec<(Bytes, Vec<Cell>)> = got
                    .map(|p| {
                        p.rows
                            .into_iter()
                            .map(|r| (r.clustering, r.cells))
                            .collect()
                    })
                    .unwrap_or_default();
                prop_assert_eq!(&got_static, &static_cells, "static row of key {}", k);
                prop_assert_eq!(
                    &got_rows,
                    &rows,
                    "rows of key {} range {:?} reversed {}",
                    k,
                    range,
                    reversed
                );
            }
            Op::Scan { page } => {
                prop_assert_eq!(
                    h.flat_scan(usize::from(page)),
                    model.flat_scan(now_s),
                    "paged scan, page {}",
                    page
                );
            }
        }
    }
    let now_s = h.clock.now_s_value();
    prop_assert_eq!(h.flat_scan(3), model.flat_scan(now_s), "final scan");
    Ok(())
}

trait NowValue {
    fn now_s_value(&self) -> i64;
}

impl NowValue for ManualClock {
    fn now_s_value(&self) -> i64 {
        storage_lsm::Clock::now_s(self)
    }
}

fn strategies() -> Vec<CompactionStrategy> {
    vec![
        CompactionStrategy::SizeTiered {
            min_threshold: 2,
            max_threshold: 4,
        },
        CompactionStrategy::Leveled {
            sstable_size_bytes: 256,
            fanout: 2,
        },
        CompactionStrategy::TimeWindow { window_s: 5 },
    ]
}

fn cases() -> u32 {
    std::env::var("ILION_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 4000, ..ProptestConfig::default() })]

    /// Ties of timestamps everywhere; nothing purged.
    #[test]
    fn engine_matches_model_with_timestamp_ties(
        ops in prop::collection::vec(op(1i64..12), 1..40),
        strategy in 0usize..3,
    ) {
        let options = TableOptions { compaction: strategies()[strategy].clone(), gc_grace_seconds: 1_000_000_000 };
        run(ops, options)?;
    }

    /// Increasing timestamps and gc_grace 0: compaction purges all it can.
    #[test]
    fn engine_matches_model_with_purging(
        ops in prop::collection::vec(op(Just(0i64)), 1..40),
        strategy in 0usize..3,
    ) {
        let ops: Vec<Op> = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| match op {
                Op::Write { key, write, .. } => Op::Write { key, timestamp: i as i64 + 1, write },
                other => other,
            })
            .collect();
        let options = TableOptions { compaction: strategies()[strategy].clone(), gc_grace_seconds: 0 };
        run(ops, options)?;
    }
}

#[test]
fn bound_helpers_cover_scan_ranges() {
    let range = TokenRange {
        start: Bound::Excluded(-1),
        end: Bound::Included(0),
    };
    let (lo, hi) = range.key_bounds();
    let inside = key(1); // token 0
    let below = key(0); // token -1
    let in_lo = match &lo {
        Bound::Included(k) => inside >= *k && below < *k,
        _ => false,
    };
    let in_hi = match &hi {
        Bound::Excluded(k) => inside < *k,
        _ => false,
    };
    assert!(in_lo && in_hi);
}

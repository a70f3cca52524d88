//! Goal: a partition slice that must step over 1,000,000 tombstones (row,
//! cell and range) returns its live rows, does not fail, counts every
//! tombstone in the table stats, and does not buffer per tombstone: the
//! read's peak memory stays far below what holding the tombstones would take.
//!
//! (Cassandra aborts such a read at 100,000 tombstones.)

mod common;

use common::{engine, write, TABLE};
use storage_lsm::model::{
    Cell, ClusteringBound, ClusteringRange, DeletionTime, PartitionKey, PartitionUpdate,
    RangeTombstone, Row,
};
use storage_lsm::{ManualClock, SliceQuery, TableOptions};

const ROW_TOMBSTONES: u32 = 400_000;
const CELL_TOMBSTONES: u32 = 300_000;
const RANGE_TOMBSTONES: u32 = 300_000;
/// Clustering keys are this long so that buffering tombstones would show.
const CLUSTERING_BYTES: usize = 64;

fn ck(group: u8, i: u32) -> Vec<u8> {
    let mut key = vec![group];
    key.extend_from_slice(&i.to_be_bytes());
    key.resize(CLUSTERING_BYTES, 0x11);
    key
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn current_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn slice_over_a_million_tombstones_streams() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let key = PartitionKey::new(1, b"graveyard".to_vec());
    {
        let engine = engine(dir.path(), &clock);
        engine.create_table(TABLE, TableOptions::default()).unwrap();
        let deletion = DeletionTime::new(5, 1_000);
        write(
            &engine,
            &key,
            PartitionUpdate {
                rows: vec![Row::new(
                    vec![0u8],
                    vec![Cell::live(1, 1, b"first".to_vec())],
                )],
                ..Default::default()
            },
        );
        for batch in (0..ROW_TOMBSTONES).step_by(50_000) {
            let rows = (batch..batch + 50_000)
                .map(|i| Row {
                    clustering: ck(1, i).into(),
                    deletion: Some(deletion),
                    cells: vec![],
                })
                .collect();
            write(
                &engine,
                &key,
                PartitionUpdate {
                    rows,
                    ..Default::default()
                },
            );
        }
        for batch in (0..CELL_TOMBSTONES).step_by(50_000) {
            let rows = (batch..batch + 50_000)
                .map(|i| Row::new(ck(2, i), vec![Cell::tombstone(1, 5, 1_000)]))
                .collect();
            write(
                &engine,
                &key,
                PartitionUpdate {
                    rows,
                    ..Default::default()
                },
            );
        }
        for batch in (0..RANGE_TOMBSTONES).step_by(50_000) {
            let range_tombstones = (batch..batch + 50_000)
                .map(|i| RangeTombstone {
                    range: ClusteringRange {
                        start: ClusteringBound::Inclusive(ck(3, 2 * i).into()),
                        end: ClusteringBound::Exclusive(ck(3, 2 * i + 1).into()),
                    },
                    deletion,
                })
                .collect();
            write(
                &engine,
                &key,
                PartitionUpdate {
                    range_tombstones,
                    ..Default::default()
                },
            );
        }
        write(
            &engine,
            &key,
            PartitionUpdate {
                rows: vec![Row::new(
                    vec![9u8],
                    vec![Cell::live(1, 1, b"last".to_vec())],
                )],
                ..Default::default()
            },
        );
        engine.flush(TABLE).unwrap();
    }
    // A fresh engine: the tombstones are only on disk now.
    let engine = engine(dir.path(), &clock);
    let baseline_kib = current_rss_kib();
    // Reset the peak to now (Linux: writing 5 to clear_refs resets VmHWM).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = engine.stats(TABLE).unwrap().tombstones_scanned_total;
    let result = engine
        .read(TABLE, &key, &SliceQuery::all())
        .unwrap()
        .expect("live rows");
    let values: Vec<&[u8]> = result
        .rows
        .iter()
        .map(|r| r.cells[0].value_bytes().unwrap().as_ref())
        .collect();
    assert_eq!(values, vec![&b"first"[..], &b"last"[..]]);
    let peak_growth_kib = peak_rss_kib().saturating_sub(baseline_kib);
    let scanned = engine.stats(TABLE).unwrap().tombstones_scanned_total - before;
    let total = u64::from(ROW_TOMBSTONES + CELL_TOMBSTONES + RANGE_TOMBSTONES);
    assert!(
        scanned >= total,
        "counted {scanned} tombstones, expected at least {total}"
    );
    // Holding the tombstones would take at least total * CLUSTERING_BYTES (64 MB).
    assert!(
        peak_growth_kib < 24 * 1024,
        "read grew peak memory by {peak_growth_kib} KiB: tombstones are being buffered"
    );
    // Reverse, too.
    let query = SliceQuery {
        reversed: true,
        ..SliceQuery::all()
    };
    let result = engine
        .read(TABLE, &key, &query)
        .unwrap()
        .expect("live rows");
    assert_eq!(result.rows.len(), 2);
}

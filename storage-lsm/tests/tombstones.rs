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

/// The process's anonymous memory (the heap; not the mapped SSTable files,
/// whose pages are the page cache's).
fn anon_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Runs `f` while a thread samples the anonymous memory every millisecond;
/// returns `f`'s result and the highest sample.
fn with_peak_anon_kib<T>(f: impl FnOnce() -> T) -> (T, u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = anon_rss_kib();
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(anon_rss_kib());
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            peak.max(anon_rss_kib())
        });
        let result = f();
        done.store(true, Ordering::Relaxed);
        (result, sampler.join().unwrap())
    })
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
    // A fresh engine: the tombstones are only on disk now. Its chunk cache
    // is the smallest there is, so that what the read holds is measured,
    // not what the cache keeps of the chunks it passed.
    let engine = {
        let mut config = common::config(dir.path(), &clock);
        config.chunk_cache_bytes = 0;
        storage_lsm::Engine::open(config).unwrap()
    };
    let baseline_kib = anon_rss_kib();
    let before = engine.stats(TABLE).unwrap().tombstones_scanned_total;
    let (result, peak_kib) =
        with_peak_anon_kib(|| engine.read(TABLE, &key, &SliceQuery::all()).unwrap());
    let result = result.expect("live rows");
    let values: Vec<&[u8]> = result
        .rows
        .iter()
        .map(|r| r.cells[0].value_bytes().unwrap().as_ref())
        .collect();
    assert_eq!(values, vec![&b"first"[..], &b"last"[..]]);
    let peak_growth_kib = peak_kib.saturating_sub(baseline_kib);
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

//! Goal: slices of a wide partition (many row-index blocks, spread over
//! memtables and several SSTables, with range deletions crossing block
//! boundaries) return exactly the live rows, forward and reverse, with limits
//! and from the middle of a range deletion, before and after compaction;
//! and paged token scans over it and its narrow neighbours see the same.

mod common;

use std::collections::BTreeSet;

use common::{clustering, engine, row, write, TABLE};
use storage_lsm::model::{
    ClusteringBound, ClusteringRange, DeletionTime, PartitionKey, PartitionUpdate, RangeTombstone,
    Row,
};
use storage_lsm::{ManualClock, SliceQuery, TableOptions};

const ROWS: u32 = 4_000;

fn keys_of(engine: &storage_lsm::Engine, key: &PartitionKey, query: &SliceQuery) -> Vec<u32> {
    engine
        .read(TABLE, key, query)
        .unwrap()
        .map(|p| {
            p.rows
                .iter()
                .map(|r| u32::from_be_bytes(r.clustering[..4].try_into().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn range(start: u32, end: u32) -> ClusteringRange {
    ClusteringRange {
        start: ClusteringBound::Inclusive(clustering(start)),
        end: ClusteringBound::Exclusive(clustering(end)),
    }
}

/// Narrow partitions around the wide one, in token order.
fn neighbours() -> Vec<PartitionKey> {
    vec![
        PartitionKey::new(6, b"before".to_vec()),
        PartitionKey::new(7, b"a".to_vec()),
        PartitionKey::new(8, b"after".to_vec()),
    ]
}

/// A whole-table token scan in pages of `page_rows`: the rows of `wide`
/// and the keys of the other partitions, in order.
fn scan_rows(
    engine: &storage_lsm::Engine,
    wide: &PartitionKey,
    page_rows: usize,
) -> (Vec<u32>, Vec<PartitionKey>) {
    let mut rows = Vec::new();
    let mut others = Vec::new();
    let mut resume = None;
    loop {
        let page = engine
            .scan(
                TABLE,
                &storage_lsm::TokenRange::all(),
                resume.as_ref(),
                page_rows,
            )
            .unwrap();
        for partition in &page.partitions {
            if partition.key == *wide {
                rows.extend(
                    partition
                        .rows
                        .iter()
                        .map(|r| u32::from_be_bytes(r.clustering[..4].try_into().unwrap())),
                );
            } else if others.last() != Some(&partition.key) {
                others.push(partition.key.clone());
            }
        }
        match page.resume {
            Some(next) => resume = Some(next),
            None => return (rows, others),
        }
    }
}

#[test]
fn wide_partition_slices_match_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let engine = engine(dir.path(), &clock);
    engine.create_table(TABLE, TableOptions::default()).unwrap();
    let key = PartitionKey::new(7, b"wide".to_vec());
    let mut live: BTreeSet<u32> = BTreeSet::new();
    for chunk in 0..(ROWS / 500) {
        let rows: Vec<Row> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| row(i, 1, 200))
            .collect();
        live.extend(chunk * 500..(chunk + 1) * 500);
        write(
            &engine,
            &key,
            PartitionUpdate {
                rows,
                ..Default::default()
            },
        );
        if chunk == 3 {
            // Narrow neighbours, one sharing the wide partition's token.
            for neighbour in neighbours() {
                write(
                    &engine,
                    &neighbour,
                    PartitionUpdate {
                        rows: vec![row(1, 1, 10)],
                        ..Default::default()
                    },
                );
            }
            engine.flush(TABLE).unwrap();
        }
    }
    engine.flush(TABLE).unwrap();
    // Deletions, some flushed, some left in the memtable.
    let deletion = DeletionTime::new(2, 1_000);
    write(
        &engine,
        &key,
        PartitionUpdate {
            range_tombstones: vec![
                RangeTombstone {
                    range: range(1_000, 1_500),
                    deletion,
                },
                RangeTombstone {
                    range: range(2_990, 3_011),
                    deletion,
                },
            ],
            ..Default::default()
        },
    );
    live.retain(|i| !(1_000..1_500).contains(i) && !(2_990..3_011).contains(i));
    engine.flush(TABLE).unwrap();
    let deleted_rows: Vec<Row> = (0..ROWS)
        .step_by(7)
        .map(|i| Row {
            clustering: clustering(i),
            deletion: Some(deletion),
            cells: vec![],
        })
        .collect();
    for r in &deleted_rows {
        live.remove(&u32::from_be_bytes(r.clustering[..4].try_into().unwrap()));
    }
    write(
        &engine,
        &key,
        PartitionUpdate {
            rows: deleted_rows,
            ..Default::default()
        },
    );
    let revived: Vec<Row> = (1_200..1_210).map(|i| row(i, 3, 10)).collect();
    live.extend(1_200..1_210);
    write(
        &engine,
        &key,
        PartitionUpdate {
            rows: revived,
            ..Default::default()
        },
    );

    let check = |label: &str| {
        let all: Vec<u32> = live.iter().copied().collect();
        assert_eq!(
            keys_of(&engine, &key, &SliceQuery::all()),
            all,
            "{label}: forward"
        );
        let mut reversed = all.clone();
        reversed.reverse();
        let query = SliceQuery {
            reversed: true,
            ..SliceQuery::all()
        };
        assert_eq!(keys_of(&engine, &key, &query), reversed, "{label}: reverse");
        for (start, end, limit) in [
            (1_400, 1_600, 1000),
            (1_205, 2_995, 50),
            (0, 10, 3),
            (2_995, 3_020, 100),
            (3_999, 4_000, 5),
        ] {
            let expected: Vec<u32> = live.range(start..end).copied().take(limit).collect();
            let query = SliceQuery {
                range: range(start, end),
                limit,
                ..SliceQuery::all()
            };
            assert_eq!(
                keys_of(&engine, &key, &query),
                expected,
                "{label}: [{start},{end}) limit {limit}"
            );
            let expected: Vec<u32> = live.range(start..end).rev().copied().take(limit).collect();
            let query = SliceQuery {
                range: range(start, end),
                limit,
                reversed: true,
                ..SliceQuery::all()
            };
            assert_eq!(
                keys_of(&engine, &key, &query),
                expected,
                "{label}: reverse [{start},{end}) limit {limit}"
            );
        }
        // Paging through the partition with resume points.
        let mut got = Vec::new();
        let mut resume = None;
        loop {
            let query = SliceQuery {
                limit: 333,
                resume_after: resume.clone(),
                ..SliceQuery::all()
            };
            let page = keys_of(&engine, &key, &query);
            if page.is_empty() {
                break;
            }
            resume = page.last().map(|&i| clustering(i));
            got.extend(page);
        }
        assert_eq!(got, all, "{label}: paged");
        // Token scans, paged, see the same rows and every neighbour once.
        for page_rows in [333, 4_096, 1] {
            let (wide_rows, others) = scan_rows(&engine, &key, page_rows);
            assert_eq!(wide_rows, all, "{label}: token scan, pages of {page_rows}");
            assert_eq!(
                others,
                neighbours(),
                "{label}: token scan neighbours, pages of {page_rows}"
            );
        }
    };
    check("memtable + sstables");
    engine.flush(TABLE).unwrap();
    check("sstables");
    engine.compact_all(TABLE).unwrap();
    assert_eq!(engine.stats(TABLE).unwrap().sstable_count, 1);
    check("compacted");
}

//! Goal: a compaction that copies partitions whole (a partition only one
//! input holds, when that input has no tombstone and no expiring cell)
//! gives back exactly what merging them would: every partition, narrow and
//! wide, reads the same before and after, in both directions and with a
//! limit, and after a reopen; partitions several inputs hold, or that sit
//! in an input with tombstones or TTLs, are still merged and purged.

mod common;

use common::{clustering, engine, row, write, TABLE};
use storage_lsm::model::{Cell, CellValue, DeletionTime, PartitionKey, PartitionUpdate, Row};
use storage_lsm::{Engine, ManualClock, SliceQuery, TableOptions};

fn key(i: u64) -> PartitionKey {
    PartitionKey::new(
        (i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as i64,
        i.to_be_bytes().to_vec(),
    )
}

/// One row holding `i` and `timestamp` in its value, so a read shows which
/// write won.
fn put(engine: &Engine, i: u64, timestamp: i64) {
    let mut value = i.to_be_bytes().to_vec();
    value.extend_from_slice(&timestamp.to_be_bytes());
    write(
        engine,
        &key(i),
        PartitionUpdate {
            rows: vec![Row::new(Vec::new(), vec![Cell::live(1, timestamp, value)])],
            ..Default::default()
        },
    );
}

/// Wide partitions (several row-index blocks each) and what every slice of
/// them returns.
const WIDE: [u64; 2] = [10_000, 10_001];
const WIDE_ROWS: u32 = 1_500;

fn queries() -> Vec<SliceQuery> {
    let mut reversed = SliceQuery::all();
    reversed.reversed = true;
    let mut limited = SliceQuery::all();
    limited.limit = 7;
    let mut reversed_limited = reversed.clone();
    reversed_limited.limit = 300;
    vec![SliceQuery::all(), reversed, limited, reversed_limited]
}

/// Every partition the test wrote, read through every query.
fn snapshot(engine: &Engine) -> Vec<String> {
    let mut out = Vec::new();
    for i in (0..600).chain(WIDE) {
        for query in queries() {
            let read = engine.read(TABLE, &key(i), &query).unwrap();
            out.push(format!("{i} {:?}: {read:?}", query.reversed));
        }
    }
    out
}

#[test]
fn whole_partition_copies_read_as_merges_do() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let engine = engine(dir.path(), &clock);
    engine.create_table(TABLE, TableOptions::default()).unwrap();

    // Plain inputs: 0..300 at timestamp 1, then 200..400 at timestamp 2
    // (200..300 are in both: merged, the newer wins) with the wide
    // partitions split between them.
    for i in 0..300 {
        put(&engine, i, 1);
    }
    let wide_rows = |from: u32, to: u32, ts: i64| PartitionUpdate {
        rows: (from..to).map(|c| row(c, ts, 100)).collect(),
        ..Default::default()
    };
    write(&engine, &key(WIDE[0]), wide_rows(0, WIDE_ROWS, 1));
    write(&engine, &key(WIDE[1]), wide_rows(0, WIDE_ROWS / 2, 1));
    engine.flush(TABLE).unwrap();
    for i in 200..400 {
        put(&engine, i, 2);
    }
    write(
        &engine,
        &key(WIDE[1]),
        wide_rows(WIDE_ROWS / 3, WIDE_ROWS, 2),
    );
    engine.flush(TABLE).unwrap();

    // An input with tombstones and TTLs: its partitions are merged and
    // purged, never copied, even where no other input holds them.
    let now_s = 1_000_000;
    for i in 350..360 {
        write(
            &engine,
            &key(i),
            PartitionUpdate {
                partition_deletion: Some(DeletionTime::new(3, now_s)),
                ..Default::default()
            },
        );
    }
    for i in 400..500 {
        let expiring = Cell {
            column: 1,
            path: None,
            timestamp: 3,
            value: CellValue::Expiring {
                value: vec![1u8; 10].into(),
                ttl_s: 60,
                expires_at_s: now_s + 60,
            },
        };
        write(
            &engine,
            &key(i),
            PartitionUpdate {
                rows: vec![Row::new(clustering(0), vec![expiring])],
                ..Default::default()
            },
        );
    }
    engine.flush(TABLE).unwrap();
    for i in 500..600 {
        put(&engine, i, 4);
    }
    engine.flush(TABLE).unwrap();
    assert_eq!(engine.stats(TABLE).unwrap().sstable_count, 4);

    let before = snapshot(&engine);
    let newer = engine
        .read(TABLE, &key(200), &SliceQuery::all())
        .unwrap()
        .unwrap();
    assert_eq!(newer.rows[0].cells[0].timestamp, 2, "the newer write wins");
    engine.compact_all(TABLE).unwrap();
    assert_eq!(engine.stats(TABLE).unwrap().sstable_count, 1);
    let after = snapshot(&engine);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }

    // Past the TTL and gc_grace 0: the expired cells go, the copies stay.
    let options = TableOptions {
        gc_grace_seconds: 0,
        ..TableOptions::default()
    };
    engine.alter_table(TABLE, options).unwrap();
    clock.advance(120);
    engine.compact_all(TABLE).unwrap();
    for i in 400..500 {
        assert_eq!(
            engine.read(TABLE, &key(i), &SliceQuery::all()).unwrap(),
            None
        );
    }
    let live: Vec<_> = (0..600)
        .filter(|i| !(350..360).contains(i) && !(400..500).contains(i))
        .collect();
    for &i in &live {
        assert!(
            engine
                .read(TABLE, &key(i), &SliceQuery::all())
                .unwrap()
                .is_some(),
            "{i}"
        );
    }
    drop(engine);
    let engine = common::engine(dir.path(), &clock);
    let reopened = snapshot(&engine);
    for (i, (b, a)) in before.iter().zip(&reopened).enumerate() {
        let partition = i / 4;
        if (400..500).contains(&partition) {
            continue;
        }
        assert_eq!(b, a);
    }
}

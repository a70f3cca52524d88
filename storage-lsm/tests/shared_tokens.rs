//! Goal: partitions whose keys share a token are told apart by their keys,
//! even when so many share one that their index entries (which hold only
//! tokens) run over several index blocks: every key is found with its own
//! value, an absent key with a present token is not found, and a paged scan
//! returns every partition once, in (token, key) order, before and after a
//! compaction.

mod common;

use common::{row, write, TABLE};
use storage_lsm::model::{PartitionKey, PartitionUpdate};
use storage_lsm::{ManualClock, SliceQuery, TableOptions, TokenRange};

/// Partitions per shared token: enough index entries for several blocks.
const PER_TOKEN: u32 = 700;
const TOKENS: [i64; 3] = [-5, 0, 7];

fn key(token: i64, i: u32) -> PartitionKey {
    PartitionKey::new(token, format!("key-{i:05}").into_bytes())
}

fn value_len(token: i64, i: u32) -> usize {
    (i as usize + token.unsigned_abs() as usize) % 40 + 1
}

fn check(engine: &storage_lsm::Engine) {
    for token in TOKENS {
        for i in 0..PER_TOKEN {
            let found = engine
                .read(TABLE, &key(token, i), &SliceQuery::all())
                .unwrap()
                .unwrap_or_else(|| panic!("token {token} key {i} not found"));
            let value = found.rows[0].cells[0].value_bytes().unwrap();
            assert_eq!(value.len(), value_len(token, i), "token {token} key {i}");
        }
        let absent = PartitionKey::new(token, b"key-absent".to_vec());
        assert!(engine
            .read(TABLE, &absent, &SliceQuery::all())
            .unwrap()
            .is_none());
    }
    let mut seen = Vec::new();
    let mut resume = None;
    loop {
        let page = engine
            .scan(TABLE, &TokenRange::all(), resume.as_ref(), 97)
            .unwrap();
        for partition in &page.partitions {
            if seen.last() != Some(&partition.key) {
                seen.push(partition.key.clone());
            }
        }
        match page.resume {
            Some(next) => resume = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<PartitionKey> = TOKENS
        .iter()
        .flat_map(|&t| (0..PER_TOKEN).map(move |i| key(t, i)))
        .collect();
    expected.sort();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "scan order or content differs");
}

#[test]
fn keys_sharing_a_token_across_index_blocks_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let engine = common::engine(dir.path(), &clock);
    engine.create_table(TABLE, TableOptions::default()).unwrap();
    // Two SSTables, each holding every other key of every token.
    for half in 0..2 {
        for token in TOKENS {
            for i in (half..PER_TOKEN).step_by(2) {
                let update = PartitionUpdate {
                    rows: vec![row(1, 10, value_len(token, i))],
                    ..Default::default()
                };
                write(&engine, &key(token, i), update);
            }
        }
        engine.flush(TABLE).unwrap();
    }
    check(&engine);
    engine.compact_all(TABLE).unwrap();
    check(&engine);
}

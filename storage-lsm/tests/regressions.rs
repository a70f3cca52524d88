//! Named regression tests: each pins a bug that a larger test found.

mod common;

use std::sync::Arc;

use common::{write, TABLE};
use storage_lsm::model::{DeletionTime, PartitionKey, PartitionUpdate, Row};
use storage_lsm::{Engine, EngineConfig, ManualClock, SliceQuery, SyncMode, TableOptions};

/// Found by the tombstone test: a flush of a newer memtable marked commitlog
/// segments clean while an older switched memtable was still waiting for its
/// flush, so a restart lost the older memtable's writes.
#[test]
fn commitlog_keeps_records_of_unflushed_memtables() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let key = PartitionKey::new(1, b"k".to_vec());
    let config = || {
        let mut config = EngineConfig::new(dir.path().join("data"), dir.path().join("commitlog"));
        config.sync = SyncMode::Periodic(std::time::Duration::from_secs(3600));
        config.clock = Arc::new(clock.clone());
        config.memtable_flush_bytes = 2 * 1024 * 1024;
        config.commitlog_segment_size_bytes = 4 * 1024 * 1024;
        config
    };
    {
        let engine = Engine::open(config()).unwrap();
        engine.create_table(TABLE, TableOptions::default()).unwrap();
        let deletion = DeletionTime::new(5, 1_000);
        for batch in 0..40u32 {
            let rows = (batch * 5_000..(batch + 1) * 5_000)
                .map(|i| Row {
                    clustering: i.to_be_bytes().to_vec().into(),
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
            if batch % 7 == 0 {
                engine.flush(TABLE).unwrap();
            }
        }
        // Dropped without shutdown: queued flushes may not have run.
    }
    let engine = Engine::open(config()).unwrap();
    let (_, atoms) = engine
        .read_unfiltered(TABLE, &key, &SliceQuery::all())
        .unwrap()
        .unwrap();
    assert_eq!(atoms.len(), 200_000);
}

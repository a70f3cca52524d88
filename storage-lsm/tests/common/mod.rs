//! Helpers shared by the engine's integration tests.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use storage_lsm::model::{Cell, Mutation, PartitionKey, PartitionUpdate, Row, TableId};
use storage_lsm::{Engine, EngineConfig, ManualClock, SyncMode};

pub const TABLE: TableId = TableId(42);

/// An engine with background work off, on `dir`.
pub fn engine(dir: &Path, clock: &ManualClock) -> Engine {
    Engine::open(config(dir, clock)).unwrap()
}

/// The configuration of [`engine`].
pub fn config(dir: &Path, clock: &ManualClock) -> EngineConfig {
    let mut config = EngineConfig::new(dir.join("data"), dir.join("commitlog"));
    config.background = false;
    config.sync = SyncMode::Periodic(std::time::Duration::from_secs(3600));
    config.clock = Arc::new(clock.clone());
    config.compaction_bytes_per_s = 0;
    config.memtable_total_bytes_max = usize::MAX;
    config
}

pub fn clustering(i: u32) -> Bytes {
    Bytes::from(i.to_be_bytes().to_vec())
}

pub fn row(i: u32, ts: i64, value_len: usize) -> Row {
    Row::new(
        clustering(i),
        vec![Cell::live(1, ts, vec![(i % 251) as u8; value_len])],
    )
}

pub fn write(engine: &Engine, key: &PartitionKey, update: PartitionUpdate) {
    engine
        .apply(Mutation {
            table: TABLE,
            key: key.clone(),
            update,
        })
        .unwrap();
}

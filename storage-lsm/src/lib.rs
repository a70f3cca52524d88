//! Ilion's per-node storage engine: a wide-column LSM tree.
//!
//! Layout (the module tree is the design):
//! - [`model`]: partitions, clustering positions, rows, cells, deletions and
//!   reconciliation;
//! - [`codec`]: the binary encoding shared by the commitlog and SSTables;
//! - [`range_tombstones`]: a partition's range deletions as change points;
//! - [`replica`]: data answers to coordinators, and their reconciliation;
//! - [`memtable`]: recent writes in memory ([`row_map`]: a partition's rows);
//! - [`merge`]: the one-pass merge of memtables and SSTables, shadowing and
//!   live-row filtering;
//! - [`sstable`]: immutable files (data, index, filter, statistics, TOC);
//! - [`commitlog`]: durability before acknowledgement, replay after a crash;
//! - [`table`]: one table's memtables and SSTables, read/flush paths
//!   ([`range_walk`]: its partitions in a key range, across sources);
//! - [`compaction`]: strategies and the merge that purges;
//! - [`engine`]: the public API over all tables, background threads
//!   ([`background`]: their lower priority);
//! - [`stats`]: per-table latency histograms and counters;
//! - [`fs`]: the filesystem seam (fsync, atomic rename);
//! - [`clock`]: the time seam.
//!
//! Start at [`engine::Engine`]: open it with an [`engine::EngineConfig`],
//! create tables, `apply` [`model::Mutation`]s, `read` partitions with a
//! [`table::SliceQuery`], `scan` token ranges with paging.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod background;
pub mod clock;
pub mod codec;
pub mod commitlog;
pub mod compaction;
pub mod engine;
pub mod error;
pub mod fs;
pub mod log_limit;
pub mod memtable;
pub mod merge;
pub mod model;
pub mod range_tombstones;
pub mod range_walk;
pub mod replica;
pub mod row_map;
pub mod sstable;
pub mod stats;
pub mod table;

pub use clock::{Clock, ManualClock, SystemClock};
pub use commitlog::{ReplayPolicy, SyncMode};
pub use engine::{Engine, EngineConfig, ReadSources, SnapshotInfo, TableStats};
pub use error::{Error, Result};
pub use table::{
    CompactionStrategy, PartitionRows, ScanPage, ScanResume, SliceQuery, TableOptions, TokenRange,
};

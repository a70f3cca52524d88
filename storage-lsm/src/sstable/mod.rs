//! SSTables: immutable sorted files of partitions.
//!
//! - [`format`]: file names and byte layouts;
//! - [`bloom`]: the partition-key filter;
//! - [`writer`]: builds and atomically publishes one SSTable;
//! - [`reader`]: opens one, looks partitions up, streams their atoms.

pub mod bloom;
pub mod format;
pub mod reader;
pub mod writer;

pub use format::{Descriptor, SSTableStats};
pub use reader::{ChunkCache, SSTable, SSTablePartitionSource};
pub use writer::SSTableWriter;

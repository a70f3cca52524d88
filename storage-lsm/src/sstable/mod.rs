//! SSTables: immutable sorted files of partitions.
//!
//! - [`format`]: file names and byte layouts;
//! - [`bloom`]: the partition-key filter;
//! - [`chunk_cache`]: decompressed data chunks shared by an engine's SSTables;
//! - [`writer`]: builds and atomically publishes one SSTable;
//! - [`reader`]: opens one, looks partitions up, streams their atoms;
//! - [`scanner`]: walks one's partitions in token order for range scans;
//! - [`token_search`]: finds a token in the summary by interpolation.

pub mod bloom;
pub mod chunk_cache;
pub mod format;
pub mod reader;
pub mod scanner;
pub mod token_search;
pub mod writer;

pub use chunk_cache::ChunkCache;
pub use format::{Descriptor, SSTableStats};
pub use reader::{FoundPartition, SSTable, SSTablePartitionSource};
pub use scanner::SSTableScanner;
pub use writer::SSTableWriter;

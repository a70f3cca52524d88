//! The engine's one error type. Every variant carries enough context (file,
//! offset, table) for an operator to find the problem without a debugger.

use std::path::PathBuf;

use crate::model::TableId;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("checksum mismatch in {path} at offset {offset}: expected {expected:#010x}, found {found:#010x}")]
    ChecksumMismatch {
        path: PathBuf,
        offset: u64,
        expected: u32,
        found: u32,
    },
    #[error("commitlog segment {path} is damaged at offset {offset} ({reason}); {records_after} whole records follow the damage")]
    CommitlogDamaged {
        path: PathBuf,
        offset: u64,
        reason: String,
        records_after: u64,
    },
    #[error("unknown table {0:?}")]
    UnknownTable(TableId),
    #[error("table {table:?} is unavailable: {cause}")]
    TableUnavailable { table: TableId, cause: String },
    #[error("table {0:?} already exists")]
    TableExists(TableId),
    #[error("mutation of {size_bytes} bytes is larger than the limit of {limit_bytes} bytes")]
    MutationTooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the engine is shut down")]
    ShutDown,
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

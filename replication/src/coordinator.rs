//! The coordinator (Cassandra's StorageProxy): every read and write from a
//! client goes through here, which decides the replicas, checks that the
//! consistency level can be met, and gathers their answers.
//!
//! Today the ring has one node, this one: every partition's only live
//! replica is the local engine. A consistency level that needs more
//! acknowledgements than there are live replicas is Unavailable, with the
//! counts, before anything is written, exactly as Cassandra answers on a
//! one-node cluster with RF 3. The cluster issue replaces "the local engine"
//! by the replicas the ring names; callers do not change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use storage_lsm::model::{Mutation, PartitionKey, TableId};
use storage_lsm::{Engine, PartitionRows, ScanPage, ScanResume, SliceQuery, TokenRange};

use crate::consistency::ConsistencyLevel;

/// Why a request failed at the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("Cannot achieve consistency level {consistency}: {required} replicas required, {alive} alive")]
    Unavailable {
        consistency: ConsistencyLevel,
        required: usize,
        alive: usize,
    },
    #[error("Operation timed out - received only {received} responses ({required} required at {consistency})")]
    WriteTimeout {
        consistency: ConsistencyLevel,
        received: usize,
        required: usize,
        write_type: WriteType,
    },
    #[error("Operation timed out - received only {received} responses ({required} required at {consistency})")]
    ReadTimeout {
        consistency: ConsistencyLevel,
        received: usize,
        required: usize,
        data_present: bool,
    },
    #[error("storage error: {0}")]
    Storage(#[from] storage_lsm::Error),
}

/// How a keyspace places replicas, as the coordinator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub replication_factor: usize,
}

/// What kind of write timed out (the WriteTimeout error tells drivers, which
/// decide from it whether a retry is safe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteType {
    Simple,
    Batch,
    UnloggedBatch,
    Counter,
    BatchLog,
    Cas,
    View,
    Cdc,
}

impl WriteType {
    /// The name the native protocol sends.
    pub fn name(self) -> &'static str {
        match self {
            WriteType::Simple => "SIMPLE",
            WriteType::Batch => "BATCH",
            WriteType::UnloggedBatch => "UNLOGGED_BATCH",
            WriteType::Counter => "COUNTER",
            WriteType::BatchLog => "BATCH_LOG",
            WriteType::Cas => "CAS",
            WriteType::View => "VIEW",
            WriteType::Cdc => "CDC",
        }
    }
}

/// How long the coordinator waits for replicas (cassandra.yaml's
/// `read_request_timeout`, `range_request_timeout`, `write_request_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// A single-partition read.
    pub read: Duration,
    /// A token-range read (full scans, paging through a table).
    pub range: Duration,
    /// A write (every mutation of a batch shares it).
    pub write: Duration,
}

impl Default for RequestTimeouts {
    /// Cassandra's defaults: 5 s, 10 s, 2 s.
    fn default() -> Self {
        RequestTimeouts {
            read: Duration::from_secs(5),
            range: Duration::from_secs(10),
            write: Duration::from_secs(2),
        }
    }
}

/// What a read asks of the replicas: where they are, how many must
/// answer, and by when.
#[derive(Debug, Clone, Copy)]
pub struct ReadTerms {
    pub placement: Placement,
    pub consistency: ConsistencyLevel,
    pub deadline: Instant,
}

/// Routes client reads and writes to replicas.
#[derive(Debug, Clone)]
pub struct Coordinator {
    engine: Arc<Engine>,
    timeouts: RequestTimeouts,
}

impl Coordinator {
    pub fn new(engine: Arc<Engine>) -> Coordinator {
        Coordinator::with_timeouts(engine, RequestTimeouts::default())
    }

    pub fn with_timeouts(engine: Arc<Engine>, timeouts: RequestTimeouts) -> Coordinator {
        Coordinator { engine, timeouts }
    }

    /// How long requests may take; callers turn these into deadlines when a
    /// statement starts, so that every replica call it makes shares one.
    pub fn timeouts(&self) -> RequestTimeouts {
        self.timeouts
    }

    /// The local engine (for schema tables and node-local work).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Live replicas of a partition: on a one-node ring, this node, whatever
    /// the replication factor.
    fn live_replicas(&self, _placement: Placement, _token: i64) -> usize {
        1
    }

    fn check(
        &self,
        placement: Placement,
        token: i64,
        consistency: ConsistencyLevel,
    ) -> Result<(), CoordinatorError> {
        let required = consistency.block_for(placement.replication_factor);
        let alive = self.live_replicas(placement, token);
        if alive < required {
            return Err(CoordinatorError::Unavailable {
                consistency,
                required,
                alive,
            });
        }
        Ok(())
    }

    /// Writes a mutation at `consistency`. A replica acknowledgement that
    /// comes after `deadline` does not count: with too few in time the
    /// write is a WriteTimeout (it may still have been applied, as in
    /// Cassandra).
    pub fn write(
        &self,
        mutation: Mutation,
        placement: Placement,
        consistency: ConsistencyLevel,
        write_type: WriteType,
        deadline: Instant,
    ) -> Result<(), CoordinatorError> {
        self.check(placement, mutation.key.token, consistency)?;
        self.engine.apply(mutation)?;
        if Instant::now() > deadline {
            return Err(CoordinatorError::WriteTimeout {
                consistency,
                received: 0,
                required: consistency.block_for(placement.replication_factor),
                write_type,
            });
        }
        Ok(())
    }

    /// The ReadTimeout for a read that did not finish by its deadline.
    pub fn read_timeout(
        &self,
        placement: Placement,
        consistency: ConsistencyLevel,
    ) -> CoordinatorError {
        CoordinatorError::ReadTimeout {
            consistency,
            received: 0,
            required: consistency.block_for(placement.replication_factor),
            data_present: false,
        }
    }

    /// Reads one partition's live rows at `consistency`.
    pub fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        terms: ReadTerms,
    ) -> Result<Option<PartitionRows>, CoordinatorError> {
        self.check(terms.placement, key.token, terms.consistency)?;
        let rows = self.engine.read(table, key, query)?;
        if Instant::now() > terms.deadline {
            return Err(self.read_timeout(terms.placement, terms.consistency));
        }
        Ok(rows)
    }

    /// Scans a token range at `consistency`.
    pub fn scan(
        &self,
        table: TableId,
        range: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
        terms: ReadTerms,
    ) -> Result<ScanPage, CoordinatorError> {
        self.check(terms.placement, 0, terms.consistency)?;
        let page = self.engine.scan(table, range, resume, row_limit)?;
        if Instant::now() > terms.deadline {
            return Err(self.read_timeout(terms.placement, terms.consistency));
        }
        Ok(page)
    }
}

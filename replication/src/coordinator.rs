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
    #[error("storage error: {0}")]
    Storage(#[from] storage_lsm::Error),
}

/// How a keyspace places replicas, as the coordinator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub replication_factor: usize,
}

/// Routes client reads and writes to replicas.
#[derive(Debug, Clone)]
pub struct Coordinator {
    engine: Arc<Engine>,
}

impl Coordinator {
    pub fn new(engine: Arc<Engine>) -> Coordinator {
        Coordinator { engine }
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

    /// Writes a mutation at `consistency`.
    pub fn write(
        &self,
        mutation: Mutation,
        placement: Placement,
        consistency: ConsistencyLevel,
    ) -> Result<(), CoordinatorError> {
        self.check(placement, mutation.key.token, consistency)?;
        self.engine.apply(mutation)?;
        Ok(())
    }

    /// Reads one partition's live rows at `consistency`.
    pub fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        placement: Placement,
        consistency: ConsistencyLevel,
    ) -> Result<Option<PartitionRows>, CoordinatorError> {
        self.check(placement, key.token, consistency)?;
        Ok(self.engine.read(table, key, query)?)
    }

    /// Scans a token range at `consistency`.
    pub fn scan(
        &self,
        table: TableId,
        range: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
        placement: Placement,
        consistency: ConsistencyLevel,
    ) -> Result<ScanPage, CoordinatorError> {
        self.check(placement, 0, consistency)?;
        Ok(self.engine.scan(table, range, resume, row_limit)?)
    }
}

//! Hinted handoff: writes a replica missed (it was down, or did not answer
//! in time), kept durably on the coordinator and replayed to the replica
//! once it is up again.
//!
//! Hints live in an engine table of their own (so the commitlog makes them
//! durable and they survive a restart): one partition per target host id,
//! one row per hint, clustered by the time it was written and a sequence
//! number, holding the encoded mutation. A replayed hint is deleted with a
//! row tombstone. A replica down longer than `max_hint_window` gets no new
//! hints (repair has to bring it back), as in Cassandra.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use storage_lsm::model::{
    Cell, DeletionTime, Mutation, PartitionKey, PartitionUpdate, Row, TableId,
};
use storage_lsm::{Engine, SliceQuery, TableOptions, TokenRange};

use crate::internode::{decode_mutation, encode_mutation, Peers};
use crate::topology::Topology;

/// The engine table holding hints.
pub const HINTS_TABLE: TableId = TableId(0x1110_0000_0000_0000_0000_0000_0000_0003);

/// The cell holding a hint's mutation.
const CELL_MUTATION: u32 = 0;

/// Hints sent per batch while replaying.
const REPLAY_BATCH: usize = 128;

/// How often the replayer looks for replicas that are back.
const REPLAY_EVERY: Duration = Duration::from_secs(2);

/// This node's hints.
#[derive(Debug)]
pub struct Hints {
    engine: Arc<Engine>,
    /// Host ids with hints waiting.
    pending: Mutex<BTreeSet<u128>>,
    sequence: AtomicU64,
    stored: AtomicU64,
    replayed: AtomicU64,
    /// Longest a replica may be down and still get hints.
    pub max_window: Duration,
}

fn host_key(host: u128) -> PartitionKey {
    let bytes = host.to_be_bytes();
    PartitionKey::new(crate::murmur3::token_of(&bytes), bytes.to_vec())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Hints {
    /// Opens the hints table (creating it on first start) and notes which
    /// hosts have hints waiting.
    pub fn open(engine: Arc<Engine>, max_window: Duration) -> storage_lsm::Result<Hints> {
        if !engine.has_table(HINTS_TABLE) {
            engine.create_table(HINTS_TABLE, TableOptions::default())?;
        }
        let mut pending = BTreeSet::new();
        let mut resume = None;
        loop {
            let page = engine.scan(HINTS_TABLE, &TokenRange::all(), resume.as_ref(), 4096)?;
            for partition in &page.partitions {
                if let Ok(bytes) = <[u8; 16]>::try_from(partition.key.key.as_ref()) {
                    pending.insert(u128::from_be_bytes(bytes));
                }
            }
            match page.resume {
                Some(next) => resume = Some(next),
                None => break,
            }
        }
        Ok(Hints {
            engine,
            pending: Mutex::new(pending),
            sequence: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            max_window,
        })
    }

    /// Keeps `mutation` for `host`.
    pub fn store(&self, host: u128, mutation: &Mutation) -> storage_lsm::Result<()> {
        let now = now_micros();
        let mut clustering = Vec::with_capacity(16);
        clustering.extend_from_slice(&(now as u64).to_be_bytes());
        clustering.extend_from_slice(&self.sequence.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let row = Row::new(
            clustering,
            vec![Cell::live(CELL_MUTATION, now, encode_mutation(mutation))],
        );
        self.engine.apply(Mutation {
            table: HINTS_TABLE,
            key: host_key(host),
            update: PartitionUpdate {
                rows: vec![row],
                ..PartitionUpdate::default()
            },
        })?;
        self.pending.lock().insert(host);
        self.stored.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Hints written and replayed since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.stored.load(Ordering::Relaxed),
            self.replayed.load(Ordering::Relaxed),
        )
    }

    /// Whether hints wait for `host`.
    pub fn has_pending(&self, host: u128) -> bool {
        self.pending.lock().contains(&host)
    }

    fn delete(&self, host: u128, clustering: Bytes) -> storage_lsm::Result<()> {
        let now = now_micros();
        self.engine.apply(Mutation {
            table: HINTS_TABLE,
            key: host_key(host),
            update: PartitionUpdate {
                rows: vec![Row {
                    clustering,
                    deletion: Some(DeletionTime::new(now, now / 1_000_000)),
                    cells: Vec::new(),
                }],
                ..PartitionUpdate::default()
            },
        })
    }

    /// Sends `host`'s hints to `address` in order, deleting each once
    /// applied; stops at the first failure (the rest wait for the next try).
    pub async fn replay(
        self: &Arc<Self>,
        host: u128,
        address: SocketAddr,
        peers: &Peers,
        timeout: Duration,
    ) -> Result<usize, String> {
        let mut sent = 0;
        loop {
            let hints = self.clone();
            let batch = tokio::task::spawn_blocking(move || {
                let query = SliceQuery {
                    limit: REPLAY_BATCH,
                    ..SliceQuery::all()
                };
                hints.engine.read(HINTS_TABLE, &host_key(host), &query)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let rows = batch.map(|p| p.rows).unwrap_or_default();
            if rows.is_empty() {
                self.pending.lock().remove(&host);
                return Ok(sent);
            }
            for row in rows {
                let Some(bytes) = row.cells.first().and_then(|c| c.value_bytes()) else {
                    continue;
                };
                match decode_mutation(bytes) {
                    Ok(_) => peers
                        .mutate(address, bytes::Bytes::copy_from_slice(bytes), timeout)
                        .await
                        .map_err(|e| e.to_string())?,
                    Err(status) => {
                        tracing::error!(%address, error = %status.message(), "dropping a hint that does not decode");
                    }
                }
                let hints = self.clone();
                tokio::task::spawn_blocking(move || hints.delete(host, row.clustering))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                sent += 1;
                self.replayed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Replays hints to every replica that is up, every couple of seconds,
    /// for as long as the node runs.
    pub async fn replay_forever(
        self: Arc<Self>,
        topology: Arc<Topology>,
        peers: Arc<Peers>,
        timeout: Duration,
    ) {
        let mut ticks = tokio::time::interval(REPLAY_EVERY);
        loop {
            ticks.tick().await;
            let ring = topology.ring();
            for endpoint in ring.endpoints() {
                let Some(host) = endpoint.host_id else {
                    continue;
                };
                if endpoint.is_local || !endpoint.up || !self.has_pending(host) {
                    continue;
                }
                match self.replay(host, endpoint.address, &peers, timeout).await {
                    Ok(0) => {}
                    Ok(sent) => {
                        tracing::info!(endpoint = %endpoint.address, sent, "hints replayed")
                    }
                    Err(error) => {
                        tracing::debug!(endpoint = %endpoint.address, %error, "hint replay stopped; will retry")
                    }
                }
            }
        }
    }
}

//! The coordinator (Cassandra's StorageProxy): every read and write from a
//! client goes through here. It finds the replicas the ring and the
//! keyspace's strategy name, refuses with Unavailable before sending
//! anything when too few are alive for the consistency level, sends to the
//! replicas and answers as soon as enough have answered.
//!
//! - Writes go to every replica; those that are down, fail or answer late
//!   get a hint (see [`crate::hints`]). WriteTimeout carries the counts.
//! - Single-partition reads ask the closest replica for data and the others
//!   the consistency level needs for digests. If a digest differs, all of
//!   them are asked for data, the answers reconciled, and every stale
//!   replica repaired before the client gets its answer (blocking read
//!   repair: QUORUM reads are monotonic). A replica that has not answered
//!   after the speculative-retry delay is doubled by a spare live replica.
//! - Token-range reads walk the ring's ranges in token order, each from the
//!   replicas the consistency level needs, so paging resumes anywhere.
//!
//! A node alone in its ring (or built with [`Coordinator::new`]) takes the
//! direct path to its engine for everything.

mod read;
#[cfg(test)]
mod simulation;
mod write;

pub use read::{ReadAction, ReadHandler, ReadRequest};
pub use write::{ReplicaState, WriteAction, WriteHandler, WriteTarget};

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_lsm::model::{Mutation, PartitionKey, TableId};
use storage_lsm::{Engine, PartitionRows, ScanPage, ScanResume, SliceQuery, TokenRange};

use crate::consistency::{ConsistencyLevel, Requirement};
use crate::hints::Hints;
use crate::internode::{encode_mutation, Peers, ReadAnswer};
use crate::messaging::frame::{Reply, Verb};
use crate::ring::{contains, segments};
use crate::strategy::Placement;
use crate::topology::{Ring, Topology};

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
    #[error("Error during truncate: {0}")]
    Truncate(String),
    #[error("internal error: {0}")]
    Internal(String),
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
pub struct ReadTerms<'a> {
    pub placement: &'a Placement,
    pub consistency: ConsistencyLevel,
    pub deadline: Instant,
}

/// The parts a coordinator needs to reach other nodes.
#[derive(Debug)]
pub struct Remote {
    pub peers: Arc<Peers>,
    pub hints: Arc<Hints>,
    pub runtime: tokio::runtime::Handle,
}

/// What the coordinator did since start, for metrics.
#[derive(Debug, Default)]
pub struct CoordinatorStats {
    /// Single-partition requests this node coordinated without being one
    /// of the partition's replicas (a token-aware driver avoids these).
    pub non_replica: AtomicU64,
    /// Replicas brought up to date by read repair.
    pub read_repairs: AtomicU64,
    /// Reads sent to a spare replica because one was slow or failed.
    pub speculative_retries: AtomicU64,
}

/// Routes client reads and writes to replicas.
#[derive(Debug, Clone)]
pub struct Coordinator {
    engine: Arc<Engine>,
    timeouts: RequestTimeouts,
    topology: Arc<Topology>,
    remote: Option<Arc<Remote>>,
    stats: Arc<CoordinatorStats>,
}

/// A speculative retry goes out when a replica has not answered after this
/// share of the request's timeout.
const SPECULATE_AFTER_DIVISOR: u32 = 20;

impl Coordinator {
    /// A coordinator for a node alone: every replica is the local engine.
    pub fn new(engine: Arc<Engine>) -> Coordinator {
        Coordinator::with_timeouts(engine, RequestTimeouts::default())
    }

    pub fn with_timeouts(engine: Arc<Engine>, timeouts: RequestTimeouts) -> Coordinator {
        Coordinator {
            engine,
            timeouts,
            topology: Arc::new(Topology::local_only()),
            remote: None,
            stats: Arc::default(),
        }
    }

    /// A coordinator for a node in a cluster.
    pub fn clustered(
        engine: Arc<Engine>,
        timeouts: RequestTimeouts,
        topology: Arc<Topology>,
        remote: Remote,
    ) -> Coordinator {
        Coordinator {
            engine,
            timeouts,
            topology,
            remote: Some(Arc::new(remote)),
            stats: Arc::default(),
        }
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

    /// Counters since start.
    pub fn stats(&self) -> &CoordinatorStats {
        &self.stats
    }

    /// The ring as it is now.
    pub fn ring(&self) -> Arc<Ring> {
        self.topology.ring()
    }

    /// The parts that reach other nodes (None for a node built alone).
    pub fn remote(&self) -> Option<&Arc<Remote>> {
        self.remote.as_ref()
    }

    /// TRUNCATE: removes every row of `table` on every node of the ring,
    /// as Cassandra does: all nodes must be UP (else Unavailable at ALL,
    /// before anything is removed), and an error from any node fails the
    /// statement. Waits on this thread (a blocking-pool thread).
    pub fn truncate(&self, table: TableId, timeout: Duration) -> Result<(), CoordinatorError> {
        let ring = self.topology.ring();
        let peers: Vec<SocketAddr> = match &self.remote {
            Some(_) => ring
                .endpoints()
                .iter()
                .filter(|e| !e.is_local)
                .map(|e| e.address)
                .collect(),
            None => Vec::new(),
        };
        let alive = ring
            .endpoints()
            .iter()
            .filter(|e| e.is_local || e.up)
            .count();
        let all = ring.endpoints().len().max(1);
        if self.remote.is_some() && alive < all {
            return Err(CoordinatorError::Unavailable {
                consistency: ConsistencyLevel::All,
                required: all,
                alive,
            });
        }
        if let (Some(remote), false) = (&self.remote, peers.is_empty()) {
            let (tx, rx) = std::sync::mpsc::sync_channel(peers.len());
            let deadline = Instant::now() + timeout;
            for &peer in &peers {
                let tx = tx.clone();
                remote.peers.messenger().send(
                    peer,
                    Verb::Truncate(table),
                    deadline,
                    Box::new(move |result| {
                        let result = match result {
                            Ok(Reply::Done) => Ok(()),
                            Ok(other) => Err(format!("unexpected answer {other:?}")),
                            Err(error) => Err(error.to_string()),
                        };
                        let _ = tx.send((peer, result));
                    }),
                );
            }
            drop(tx);
            for _ in 0..peers.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok((_, Ok(()))) => {}
                    Ok((peer, Err(error))) => {
                        return Err(CoordinatorError::Truncate(format!("{peer}: {error}")))
                    }
                    Err(_) => {
                        return Err(CoordinatorError::Truncate(format!(
                            "not every node truncated within {timeout:?}"
                        )))
                    }
                }
            }
        }
        self.engine.truncate(table)?;
        Ok(())
    }

    /// Whether requests can only touch the local engine (then they never
    /// wait on the network and may run on the async workers).
    pub fn is_local_only(&self) -> bool {
        self.remote.is_none() || self.topology.ring().is_local_only()
    }

    /// Counts a single-partition request this node is no replica of.
    fn note_coordination(&self, ring: &Ring, replicas: &[usize]) {
        if ring.local().is_some_and(|l| !replicas.contains(&l)) {
            self.stats.non_replica.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                ?replicas,
                "coordinating a partition this node does not replicate"
            );
        }
    }

    /// Replicas of `token`, the requirement, and the live replicas closest
    /// first; Unavailable when too few are alive.
    fn plan<'a>(
        &self,
        ring: &'a Ring,
        placement: &'a Placement,
        token: i64,
        consistency: ConsistencyLevel,
    ) -> Result<(Vec<usize>, Requirement<'a>, Vec<usize>), CoordinatorError> {
        let mut replicas = placement.replicas(ring, token);
        if self.remote.is_none() {
            // A node built alone: the local engine is the replica.
            replicas = ring.local().into_iter().collect();
        }
        let needed = Requirement::of(consistency, placement, ring);
        let mut live: Vec<usize> = replicas
            .iter()
            .copied()
            .filter(|r| ring.endpoint(*r).is_some_and(|e| e.up))
            .collect();
        ring.by_proximity(&mut live);
        if consistency != ConsistencyLevel::Any {
            if let Some((required, alive)) = needed.shortfall(ring, &live) {
                return Err(CoordinatorError::Unavailable {
                    consistency,
                    required,
                    alive,
                });
            }
        }
        Ok((replicas, needed, live))
    }

    /// Writes a mutation at `consistency`. An acknowledgement that comes
    /// after `deadline` does not count: with too few in time the write is a
    /// WriteTimeout (it may still have been applied, as in Cassandra).
    pub fn write(
        &self,
        mutation: Mutation,
        placement: &Placement,
        consistency: ConsistencyLevel,
        write_type: WriteType,
        deadline: Instant,
    ) -> Result<(), CoordinatorError> {
        self.start_write(mutation, placement, consistency, write_type, deadline)?
            .wait()
    }

    /// Starts a write: Unavailable at once, else the local replica has
    /// applied it and the others' messages are queued; the returned
    /// [`PendingWrite`] gives the answer (waited for on a thread, or
    /// awaited on a task). Never blocks on the network.
    pub fn start_write(
        &self,
        mutation: Mutation,
        placement: &Placement,
        consistency: ConsistencyLevel,
        write_type: WriteType,
        deadline: Instant,
    ) -> Result<PendingWrite, CoordinatorError> {
        let ring = self.topology.ring();
        let (replicas, needed, _) = self.plan(&ring, placement, mutation.key.token, consistency)?;
        self.note_coordination(&ring, &replicas);
        crate::trace::event(|| {
            format!(
                "Writing token {} to {} replicas at {consistency}",
                mutation.key.token,
                replicas.len()
            )
        });
        let local = ring.local().filter(|l| replicas.contains(l));
        let remote = match &self.remote {
            Some(remote) if replicas.iter().any(|r| Some(*r) != local) => remote.clone(),
            _ => {
                if local.is_some() {
                    crate::trace::event(|| "Appending to commitlog and memtable locally".into());
                    self.engine.apply(mutation)?;
                }
                let result = if Instant::now() > deadline {
                    Err(CoordinatorError::WriteTimeout {
                        consistency,
                        received: 0,
                        required: needed.total(),
                        write_type,
                    })
                } else {
                    Ok(())
                };
                return Ok(PendingWrite {
                    state: PendingState::Done(result),
                });
            }
        };
        let targets = write_targets(&ring, &replicas, &remote.hints);
        let tally = needed.tally(&ring, &replicas);
        let (handler, actions) = WriteHandler::start(consistency, write_type, tally, targets);
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
        let endpoints = replicas
            .iter()
            .filter_map(|&r| ring.endpoint(r).map(|e| (r, e.address, e.host_id)))
            .collect();
        let write = Arc::new(WriteDriver {
            handler: Mutex::new(handler),
            encoded: Bytes::from(encode_mutation(&mutation)),
            mutation,
            endpoints,
            remote,
            engine: self.engine.clone(),
            answer: Mutex::new(Some(answer_tx)),
            waker: Mutex::new(None),
            deadline,
        });
        write.run(actions);
        Ok(PendingWrite {
            state: PendingState::Waiting {
                write,
                answer: answer_rx,
            },
        })
    }

    /// The ReadTimeout for a read that did not finish by its deadline.
    fn read_timeout(
        needed: &Requirement<'_>,
        consistency: ConsistencyLevel,
        received: usize,
        data_present: bool,
    ) -> CoordinatorError {
        CoordinatorError::ReadTimeout {
            consistency,
            received,
            required: needed.total(),
            data_present,
        }
    }

    /// Reads one partition's live rows at `consistency`, waiting on this
    /// thread (not an async worker's).
    pub fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        terms: ReadTerms<'_>,
    ) -> Result<Option<PartitionRows>, CoordinatorError> {
        match self.start_read(table, key, query, terms)? {
            StartedRead::Done(rows) => Ok(rows),
            StartedRead::Remote(mut driver) => {
                let (tx, rx) = mpsc::channel::<ReadEvent>();
                let sink: EventSink = Arc::new(move |event| {
                    let _ = tx.send(event);
                });
                let mut actions = driver.take_start();
                loop {
                    if let Some(answer) = driver.perform(actions, &sink) {
                        return answer;
                    }
                    let wake = driver.handler.next_wakeup();
                    actions = match rx.recv_timeout(wake.saturating_duration_since(Instant::now()))
                    {
                        Ok(event) => driver.on_event(event),
                        Err(_) => driver.handler.on_tick(Instant::now()),
                    };
                }
            }
        }
    }

    /// Reads one partition's live rows at `consistency` on an async task:
    /// the same handler as [`Coordinator::read`], awaited.
    pub async fn read_async(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        terms: ReadTerms<'_>,
    ) -> Result<Option<PartitionRows>, CoordinatorError> {
        match self.start_read(table, key, query, terms)? {
            StartedRead::Done(rows) => Ok(rows),
            StartedRead::Remote(mut driver) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReadEvent>();
                let sink: EventSink = Arc::new(move |event| {
                    let _ = tx.send(event);
                });
                let mut actions = driver.take_start();
                loop {
                    if let Some(answer) = driver.perform(actions, &sink) {
                        return answer;
                    }
                    let wake = tokio::time::Instant::from_std(driver.handler.next_wakeup());
                    actions = match tokio::time::timeout_at(wake, rx.recv()).await {
                        Ok(Some(event)) => driver.on_event(event),
                        Ok(None) | Err(_) => driver.handler.on_tick(Instant::now()),
                    };
                }
            }
        }
    }

    /// Plans a read: Unavailable, the local engine's answer when no other
    /// node is needed, or a started handler.
    fn start_read(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        terms: ReadTerms<'_>,
    ) -> Result<StartedRead<'_>, CoordinatorError> {
        let ring = self.topology.ring();
        let (replicas, needed, live) =
            self.plan(&ring, terms.placement, key.token, terms.consistency)?;
        self.note_coordination(&ring, &replicas);
        let targets = needed.choose(&ring, &live);
        crate::trace::event(|| {
            format!(
                "Reading token {} at {} from {} of {} replicas",
                key.token,
                terms.consistency,
                targets.len(),
                replicas.len()
            )
        });
        let remote = match &self.remote {
            Some(remote) if targets.iter().any(|t| Some(*t) != ring.local()) => remote.clone(),
            _ => {
                let rows = self.engine.read(table, key, query)?;
                crate::trace::trace_sources(&self.engine, table, key);
                crate::trace::event(|| {
                    format!(
                        "Read locally: {} live rows",
                        rows.as_ref().map_or(0, |r| r.rows.len())
                    )
                });
                if Instant::now() > terms.deadline {
                    return Err(Self::read_timeout(&needed, terms.consistency, 0, false));
                }
                return Ok(StartedRead::Done(rows));
            }
        };
        let spares: Vec<usize> = live
            .iter()
            .copied()
            .filter(|l| !targets.contains(l))
            .collect();
        let tally = needed.tally(&ring, &replicas);
        let request = ReadRequest {
            table,
            key: key.clone(),
            query: query.clone(),
            consistency: terms.consistency,
            now_s: self.engine.now_s(),
            deadline: terms.deadline,
            speculate_at: Instant::now() + self.timeouts.read / SPECULATE_AFTER_DIVISOR,
        };
        let (handler, actions) = ReadHandler::start(request, tally, &targets, spares);
        drop(needed);
        Ok(StartedRead::Remote(Box::new(ReadDriver {
            coordinator: self,
            remote,
            ring,
            handler,
            start: actions,
            deadline: terms.deadline,
        })))
    }

    /// Scans a token range at `consistency`: the ring's ranges in token
    /// order, each from the replicas the consistency level needs.
    pub fn scan(
        &self,
        table: TableId,
        range: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
        terms: ReadTerms<'_>,
    ) -> Result<ScanPage, CoordinatorError> {
        let ring = self.topology.ring();
        let Some(remote) = self.remote.clone().filter(|_| !ring.is_local_only()) else {
            self.plan(&ring, terms.placement, 0, terms.consistency)?;
            crate::trace::event(|| format!("Scanning token range {range:?} locally"));
            let page = self.engine.scan(table, range, resume, row_limit)?;
            crate::trace::event(|| format!("Scanned {} partitions locally", page.partitions.len()));
            if Instant::now() > terms.deadline {
                let needed = Requirement::of(terms.consistency, terms.placement, &ring);
                return Err(Self::read_timeout(&needed, terms.consistency, 0, false));
            }
            return Ok(page);
        };
        let mut partitions: Vec<PartitionRows> = Vec::new();
        let mut rows_left = row_limit;
        let start_token = resume.map(|r| r.key.token);
        for (segment, owner) in segments(&ring, range, start_token) {
            let (_, needed, live) = self.plan(&ring, terms.placement, owner, terms.consistency)?;
            let targets = needed.choose(&ring, &live);
            let resume_here = resume.filter(|r| contains(&segment, r.key.token));
            let page = self
                .scan_segment(
                    &remote,
                    &ring,
                    table,
                    &segment,
                    resume_here,
                    rows_left,
                    &targets,
                    terms.deadline,
                )
                .map_err(|received| {
                    Self::read_timeout(&needed, terms.consistency, received, false)
                })??;
            for partition in page.partitions {
                rows_left = rows_left.saturating_sub(partition.rows.len().max(1));
                partitions.push(partition);
            }
            if page.resume.is_some() || rows_left == 0 {
                let resume = page.resume.or_else(|| {
                    partitions.last().map(|p| ScanResume {
                        key: p.key.clone(),
                        clustering: p.rows.last().map(|r| r.clustering.clone()),
                    })
                });
                return Ok(ScanPage { partitions, resume });
            }
        }
        Ok(ScanPage {
            partitions,
            resume: None,
        })
    }

    /// One ring range from `targets`; their pages merged (rows reconciled
    /// cell by cell) up to the first point where one of them stopped.
    /// `Err(received)` on timeout.
    #[allow(clippy::too_many_arguments)]
    fn scan_segment(
        &self,
        remote: &Arc<Remote>,
        ring: &Ring,
        table: TableId,
        segment: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
        targets: &[usize],
        deadline: Instant,
    ) -> Result<Result<ScanPage, CoordinatorError>, usize> {
        let (tx, rx) = mpsc::channel();
        let mut local_page = None;
        for &target in targets {
            let Some(endpoint) = ring.endpoint(target) else {
                continue;
            };
            if endpoint.is_local {
                local_page = Some(self.engine.scan(table, segment, resume, row_limit));
                continue;
            }
            let peer = endpoint.address;
            let tx = tx.clone();
            remote.peers.messenger().send(
                peer,
                crate::internode::scan_verb(table, segment, resume, row_limit),
                deadline,
                Box::new(move |result| {
                    let _ =
                        tx.send(result.and_then(|reply| crate::internode::scan_page(peer, reply)));
                }),
            );
        }
        drop(tx);
        let mut pages = Vec::new();
        match local_page {
            Some(Ok(page)) => pages.push(page),
            Some(Err(error)) => return Ok(Err(error.into())),
            None => {}
        }
        while pages.len() < targets.len() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(pages.len());
            };
            match rx.recv_timeout(left) {
                Ok(Ok(page)) => pages.push(page),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "replica scan failed");
                    return Err(pages.len());
                }
                Err(_) => return Err(pages.len()),
            }
        }
        Ok(Ok(merge_pages(pages, row_limit)))
    }
}

/// How each replica of a write stands: local, up or down, and whether a
/// hint may be kept for it.
fn write_targets(ring: &Ring, replicas: &[usize], hints: &Hints) -> Vec<WriteTarget> {
    replicas
        .iter()
        .filter_map(|&replica| {
            let endpoint = ring.endpoint(replica)?;
            let state = if endpoint.is_local {
                ReplicaState::Local
            } else if endpoint.up {
                ReplicaState::Up
            } else {
                ReplicaState::Down
            };
            let within_window = endpoint
                .down_since
                .is_none_or(|since| since.elapsed() <= hints.max_window);
            Some(WriteTarget {
                replica,
                state,
                hintable: endpoint.host_id.is_some() && within_window,
            })
        })
        .collect()
}

/// Runs one write's [`WriteHandler`]: replies reach it on the messaging
/// connections' tasks, and it lives until every replica has settled, so
/// that one failing after the client's answer still gets its hint.
struct WriteDriver {
    handler: Mutex<WriteHandler>,
    mutation: Mutation,
    encoded: Bytes,
    /// Each replica's address and host id.
    endpoints: Vec<(usize, SocketAddr, Option<u128>)>,
    remote: Arc<Remote>,
    engine: Arc<Engine>,
    answer: Mutex<Option<tokio::sync::oneshot::Sender<Result<(), CoordinatorError>>>>,
    /// Wakes a thread parked in [`PendingWrite::wait`].
    waker: Mutex<Option<mpsc::SyncSender<()>>>,
    deadline: Instant,
}

/// A write under way: its answer, once the consistency level is met, a
/// replica failure decides it, or the deadline passes.
pub struct PendingWrite {
    state: PendingState,
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            PendingState::Done(result) => {
                f.debug_tuple("PendingWrite::Done").field(result).finish()
            }
            PendingState::Waiting { write, .. } => f
                .debug_struct("PendingWrite::Waiting")
                .field("deadline", &write.deadline)
                .finish(),
        }
    }
}

enum PendingState {
    /// Answered already (a write to this node alone).
    Done(Result<(), CoordinatorError>),
    Waiting {
        write: Arc<WriteDriver>,
        answer: tokio::sync::oneshot::Receiver<Result<(), CoordinatorError>>,
    },
}

/// The error for an answer the handler gave but the waiter never got (the
/// driver dropped it: a bug, reported rather than hidden).
fn lost(write: &WriteDriver) -> CoordinatorError {
    tracing::error!(deadline = ?write.deadline, "a write's answer was lost");
    CoordinatorError::Internal("a write's answer was lost".into())
}

impl PendingWrite {
    /// Waits on this thread (not an async worker's).
    pub fn wait(self) -> Result<(), CoordinatorError> {
        match self.state {
            PendingState::Done(result) => result,
            PendingState::Waiting { write, mut answer } => loop {
                match answer.try_recv() {
                    Ok(result) => return result,
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                        return write.deadline_answer().unwrap_or_else(|| Err(lost(&write)))
                    }
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                }
                let now = Instant::now();
                if now >= write.deadline {
                    return match write.deadline_answer() {
                        Some(result) => result,
                        // Answered just now: the answer is being sent.
                        None => answer.blocking_recv().unwrap_or_else(|_| Err(lost(&write))),
                    };
                }
                // Parked until the answer's sender wakes this thread.
                let (tx, rx) = mpsc::sync_channel::<()>(1);
                *write.waker.lock() = Some(tx);
                if let Ok(result) = answer.try_recv() {
                    return result;
                }
                let _ = rx.recv_timeout(write.deadline.saturating_duration_since(now));
            },
        }
    }

    /// Awaits the answer on an async task.
    pub async fn answer(self) -> Result<(), CoordinatorError> {
        match self.state {
            PendingState::Done(result) => result,
            PendingState::Waiting { write, mut answer } => {
                let deadline = tokio::time::Instant::from_std(write.deadline);
                match tokio::time::timeout_at(deadline, &mut answer).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => write.deadline_answer().unwrap_or_else(|| Err(lost(&write))),
                    Err(_) => match write.deadline_answer() {
                        Some(result) => result,
                        // Answered just now: the answer is being sent.
                        None => answer.await.unwrap_or_else(|_| Err(lost(&write))),
                    },
                }
            }
        }
    }
}

impl WriteDriver {
    /// The timeout answer when the deadline passed first; None when the
    /// handler had answered already (that answer is on its way to the
    /// waiter: take it).
    fn deadline_answer(&self) -> Option<Result<(), CoordinatorError>> {
        match self.handler.lock().on_deadline() {
            Some(WriteAction::Answer(result)) => Some(result),
            _ => None,
        }
    }

    fn run(self: &Arc<Self>, actions: Vec<WriteAction>) {
        let mut queue: VecDeque<WriteAction> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                WriteAction::Send(replica) => {
                    let Some(&(_, address, _)) =
                        self.endpoints.iter().find(|(r, _, _)| *r == replica)
                    else {
                        queue.extend(self.handler.lock().on_failure(replica));
                        continue;
                    };
                    crate::trace::event(|| format!("Sending MUTATION message to /{address}"));
                    let write = self.clone();
                    self.remote.peers.messenger().send(
                        address,
                        Verb::Mutate(self.encoded.clone()),
                        self.deadline,
                        Box::new(move |result| {
                            let next = {
                                let mut handler = write.handler.lock();
                                match result {
                                    Ok(Reply::Done) => handler.on_ack(replica),
                                    Ok(_) | Err(_) => handler.on_failure(replica),
                                }
                            };
                            write.run(next);
                        }),
                    );
                }
                WriteAction::ApplyLocal(replica) => {
                    crate::trace::event(|| "Appending to commitlog and memtable locally".into());
                    let applied = self.engine.apply(self.mutation.clone());
                    let mut handler = self.handler.lock();
                    queue.extend(match applied {
                        Ok(()) => handler.on_ack(replica),
                        Err(error) => handler.on_local_error(replica, error),
                    });
                }
                WriteAction::Hint(replica) => {
                    let host = self
                        .endpoints
                        .iter()
                        .find(|(r, _, _)| *r == replica)
                        .and_then(|(_, _, host)| *host);
                    if let Some(host) = host {
                        crate::trace::event(|| format!("Storing a hint for replica {replica}"));
                        if let Err(error) = self.remote.hints.store(host, &self.mutation) {
                            tracing::warn!(%error, "cannot keep a hint");
                        }
                    }
                }
                WriteAction::Answer(result) => {
                    if let Some(answer) = self.answer.lock().take() {
                        let _ = answer.send(result);
                    }
                    if let Some(waker) = self.waker.lock().take() {
                        let _ = waker.try_send(());
                    }
                }
            }
        }
    }
}

/// What reaches a read's driver from the messaging connections.
enum ReadEvent {
    Answer {
        replica: usize,
        digest_only: bool,
        peer: SocketAddr,
        result: Result<Reply, crate::internode::PeerError>,
    },
    Repaired {
        replica: usize,
        ok: bool,
    },
}

/// Where a read's driver gets its events: a thread's channel or a task's.
type EventSink = Arc<dyn Fn(ReadEvent) + Send + Sync>;

/// A planned read.
enum StartedRead<'a> {
    /// Answered by the local engine alone.
    Done(Option<PartitionRows>),
    Remote(Box<ReadDriver<'a>>),
}

/// Carries out one read's [`ReadHandler`] actions: local replicas answer
/// in place, the others' replies come back as [`ReadEvent`]s through the
/// caller's sink (a thread or a task waits on it).
struct ReadDriver<'a> {
    coordinator: &'a Coordinator,
    remote: Arc<Remote>,
    ring: Arc<Ring>,
    handler: ReadHandler,
    /// The handler's first actions, until the caller takes them.
    start: Vec<ReadAction>,
    deadline: Instant,
}

impl ReadDriver<'_> {
    fn take_start(&mut self) -> Vec<ReadAction> {
        std::mem::take(&mut self.start)
    }

    /// The handler's answer to an event.
    fn on_event(&mut self, event: ReadEvent) -> Vec<ReadAction> {
        match event {
            ReadEvent::Answer {
                replica,
                digest_only,
                peer,
                result,
            } => match result
                .and_then(|reply| crate::internode::read_answer(peer, reply, digest_only))
            {
                Ok(answer) => self.handler.on_answer(replica, answer),
                Err(error) => {
                    tracing::debug!(%error, "replica read failed");
                    self.handler.on_failure(replica)
                }
            },
            ReadEvent::Repaired { replica, ok } => self.handler.on_repaired(replica, ok),
        }
    }

    /// Does `actions` (and what local answers lead to); the client's
    /// answer when one of them is it.
    fn perform(
        &mut self,
        actions: Vec<ReadAction>,
        sink: &EventSink,
    ) -> Option<Result<Option<PartitionRows>, CoordinatorError>> {
        let mut queue: VecDeque<ReadAction> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                ReadAction::Answer(result) => {
                    self.coordinator
                        .stats
                        .speculative_retries
                        .fetch_add(self.handler.spares_asked() as u64, Ordering::Relaxed);
                    return Some(result);
                }
                ReadAction::Ask {
                    replica,
                    digest_only,
                } => {
                    let Some(endpoint) = self.ring.endpoint(replica) else {
                        queue.extend(self.handler.on_failure(replica));
                        continue;
                    };
                    let (table, key, query) = handler_request(&self.handler);
                    if endpoint.is_local {
                        let read = self.coordinator.engine.read_data(table, key, query);
                        crate::trace::event(|| match &read {
                            Ok(_) => format!(
                                "Reading {} locally",
                                if digest_only { "a digest" } else { "data" },
                            ),
                            Err(error) => format!("Local read failed: {error}"),
                        });
                        if let Ok(data) = &read {
                            crate::trace::trace_read(
                                &self.coordinator.engine,
                                table,
                                key,
                                data.as_ref(),
                            );
                        }
                        let next = match read {
                            Ok(data) if digest_only => self.handler.on_answer(
                                replica,
                                ReadAnswer::Digest(storage_lsm::replica::digest(data.as_ref())),
                            ),
                            Ok(data) => self.handler.on_answer(replica, ReadAnswer::Data(data)),
                            Err(error) => {
                                tracing::warn!(%error, "local replica read failed");
                                self.handler.on_failure(replica)
                            }
                        };
                        queue.extend(next);
                        continue;
                    }
                    let peer = endpoint.address;
                    crate::trace::event(|| {
                        let what = if digest_only { "digest" } else { "data" };
                        format!("Sending READ message ({what}) to /{peer}")
                    });
                    let verb = crate::internode::read_verb(table, key, query, digest_only);
                    let sink = sink.clone();
                    self.remote.peers.messenger().send(
                        peer,
                        verb,
                        self.deadline,
                        Box::new(move |result| {
                            sink(ReadEvent::Answer {
                                replica,
                                digest_only,
                                peer,
                                result,
                            })
                        }),
                    );
                }
                ReadAction::Repair { replica, mutation } => {
                    self.coordinator
                        .stats
                        .read_repairs
                        .fetch_add(1, Ordering::Relaxed);
                    let Some(endpoint) = self.ring.endpoint(replica) else {
                        queue.extend(self.handler.on_repaired(replica, false));
                        continue;
                    };
                    crate::trace::event(|| format!("Read repair of /{}", endpoint.address));
                    if endpoint.is_local {
                        let ok = match self.coordinator.engine.apply(mutation) {
                            Ok(()) => true,
                            Err(error) => {
                                tracing::warn!(%error, "local read repair failed");
                                false
                            }
                        };
                        queue.extend(self.handler.on_repaired(replica, ok));
                        continue;
                    }
                    let sink = sink.clone();
                    self.remote.peers.messenger().send(
                        endpoint.address,
                        Verb::Mutate(Bytes::from(encode_mutation(&mutation))),
                        self.deadline,
                        Box::new(move |result| {
                            let ok = matches!(result, Ok(Reply::Done));
                            sink(ReadEvent::Repaired { replica, ok })
                        }),
                    );
                }
            }
        }
        None
    }
}

fn handler_request(handler: &ReadHandler) -> (TableId, &PartitionKey, &SliceQuery) {
    let request = handler.request();
    (request.table, &request.key, &request.query)
}

/// Merges replicas' pages of one range: partitions by key, rows by
/// clustering (cells reconciled), cut at the earliest point where a page
/// stopped short, and at `row_limit` rows.
fn merge_pages(pages: Vec<ScanPage>, row_limit: usize) -> ScanPage {
    if pages.len() == 1 {
        if let Some(page) = pages.into_iter().next() {
            return page;
        }
        return ScanPage {
            partitions: Vec::new(),
            resume: None,
        };
    }
    let frontier: Option<(PartitionKey, Option<Bytes>)> = pages
        .iter()
        .filter_map(|p| p.resume.as_ref())
        .map(|r| (r.key.clone(), r.clustering.clone()))
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| frontier_cmp(&a.1, &b.1)));
    let mut merged: BTreeMap<PartitionKey, PartitionRows> = BTreeMap::new();
    for page in pages {
        for partition in page.partitions {
            match merged.get_mut(&partition.key) {
                None => {
                    merged.insert(partition.key.clone(), partition);
                }
                Some(existing) => {
                    match (&mut existing.static_row, partition.static_row) {
                        (Some(mine), Some(theirs)) => mine.merge_from(theirs),
                        (mine @ None, theirs) => *mine = theirs,
                        _ => {}
                    }
                    let mut rows: BTreeMap<Bytes, storage_lsm::model::Row> = existing
                        .rows
                        .drain(..)
                        .map(|r| (r.clustering.clone(), r))
                        .collect();
                    for row in partition.rows {
                        match rows.get_mut(&row.clustering) {
                            Some(mine) => mine.merge_from(row),
                            None => {
                                rows.insert(row.clustering.clone(), row);
                            }
                        }
                    }
                    existing.rows = rows.into_values().collect();
                }
            }
        }
    }
    let mut partitions = Vec::new();
    let mut rows_left = row_limit;
    let mut resume = None;
    for (key, mut partition) in merged {
        if let Some((frontier_key, frontier_row)) = &frontier {
            if key > *frontier_key {
                break;
            }
            if key == *frontier_key {
                if let Some(last) = frontier_row {
                    partition.rows.retain(|r| r.clustering <= *last);
                }
            }
        }
        if partition.rows.len() > rows_left {
            partition.rows.truncate(rows_left);
        }
        rows_left = rows_left.saturating_sub(partition.rows.len().max(1));
        let cut = rows_left == 0;
        if cut || frontier.as_ref().is_some_and(|(k, _)| *k == key) {
            resume = Some(ScanResume {
                key: key.clone(),
                clustering: partition.rows.last().map(|r| r.clustering.clone()),
            });
        }
        partitions.push(partition);
        if cut {
            break;
        }
    }
    if resume.is_none() {
        resume = frontier.map(|(key, clustering)| ScanResume { key, clustering });
    }
    ScanPage { partitions, resume }
}

/// Orders resume points within one partition: `None` (the whole
/// partition) comes after any row.
fn frontier_cmp(a: &Option<Bytes>, b: &Option<Bytes>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_merge_up_to_the_earliest_stop() {
        use storage_lsm::model::{Cell, Row};
        let part = |token: i64, rows: &[(&'static [u8], i64)]| PartitionRows {
            key: PartitionKey::new(token, vec![token as u8]),
            static_row: None,
            rows: rows
                .iter()
                .map(|(c, ts)| Row::new(*c, vec![Cell::live(1, *ts, vec![*ts as u8])]))
                .collect(),
        };
        let a = ScanPage {
            partitions: vec![part(1, &[(b"a", 1), (b"b", 1)])],
            resume: Some(ScanResume {
                key: PartitionKey::new(1, vec![1]),
                clustering: Some(Bytes::from_static(b"b")),
            }),
        };
        let b = ScanPage {
            partitions: vec![part(1, &[(b"a", 2), (b"c", 2)]), part(2, &[(b"x", 2)])],
            resume: None,
        };
        let merged = merge_pages(vec![a, b], 10);
        assert_eq!(merged.partitions.len(), 1, "stops where page a stopped");
        let rows = &merged.partitions[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells[0].timestamp, 2, "newer cell wins");
        assert_eq!(
            merged.resume.map(|r| r.clustering),
            Some(Some(Bytes::from_static(b"b")))
        );
    }
}

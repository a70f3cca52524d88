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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_lsm::model::{Mutation, PartitionKey, PartitionUpdate, TableId};
use storage_lsm::{Engine, PartitionRows, ScanPage, ScanResume, SliceQuery, TokenRange};

use crate::consistency::{ConsistencyLevel, Requirement};
use crate::hints::Hints;
use crate::internode::{encode_mutation, Peers, ReadAnswer};
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
            for &peer in &peers {
                let (remote_peers, tx) = (remote.peers.clone(), tx.clone());
                remote.runtime.spawn(async move {
                    let result = remote_peers.truncate(peer, table, timeout).await;
                    let _ = tx.send((peer, result));
                });
            }
            drop(tx);
            let deadline = Instant::now() + timeout;
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
        let ring = self.topology.ring();
        let (replicas, needed, _) = self.plan(&ring, placement, mutation.key.token, consistency)?;
        self.note_coordination(&ring, &replicas);
        let timed_out = |received| CoordinatorError::WriteTimeout {
            consistency,
            received,
            required: needed.total(),
            write_type,
        };
        let local = ring.local().filter(|l| replicas.contains(l));
        let remote = match &self.remote {
            Some(remote) if replicas.iter().any(|r| Some(*r) != local) => remote.clone(),
            _ => {
                if local.is_some() {
                    self.engine.apply(mutation)?;
                }
                if Instant::now() > deadline {
                    return Err(timed_out(0));
                }
                return Ok(());
            }
        };
        let mutation = Arc::new(mutation);
        let encoded = Bytes::from(encode_mutation(&mutation));
        let (acks_tx, acks) = mpsc::channel::<usize>();
        let mut hinted = 0;
        for &replica in &replicas {
            let Some(endpoint) = ring.endpoint(replica) else {
                continue;
            };
            if Some(replica) == local {
                continue;
            }
            if !endpoint.up {
                if self.hint(&remote, endpoint, &mutation) {
                    hinted += 1;
                }
                continue;
            }
            let (peer, host) = (endpoint.address, endpoint.host_id);
            let (remote_task, mutation, encoded, acks_tx) = (
                remote.clone(),
                mutation.clone(),
                encoded.clone(),
                acks_tx.clone(),
            );
            let timeout = self.timeouts.write;
            remote.runtime.spawn(async move {
                match remote_task
                    .peers
                    .mutate(peer, encoded.to_vec(), timeout)
                    .await
                {
                    Ok(()) => {
                        let _ = acks_tx.send(replica);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "replica write failed; keeping a hint");
                        if let Some(host) = host {
                            let hints = remote_task.hints.clone();
                            let _ =
                                tokio::task::spawn_blocking(move || hints.store(host, &mutation))
                                    .await;
                        }
                    }
                }
            });
        }
        drop(acks_tx);
        let mut acked = Vec::new();
        if let Some(local) = local {
            self.engine.apply(Arc::unwrap_or_clone(mutation))?;
            acked.push(local);
        }
        if consistency == ConsistencyLevel::Any && hinted > 0 {
            return Ok(());
        }
        while needed.shortfall(&ring, &acked).is_some() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(timed_out(needed.counted(&ring, &acked)));
            };
            match acks.recv_timeout(left) {
                Ok(replica) => acked.push(replica),
                Err(_) => return Err(timed_out(needed.counted(&ring, &acked))),
            }
        }
        Ok(())
    }

    /// Keeps a hint for a replica that is down, unless it has been down
    /// longer than the hint window. Returns whether one was kept.
    fn hint(
        &self,
        remote: &Remote,
        endpoint: &crate::topology::EndpointInfo,
        mutation: &Mutation,
    ) -> bool {
        let Some(host) = endpoint.host_id else {
            return false;
        };
        if endpoint
            .down_since
            .is_some_and(|since| since.elapsed() > remote.hints.max_window)
        {
            return false;
        }
        match remote.hints.store(host, mutation) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.address, %error, "cannot keep a hint");
                false
            }
        }
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

    /// Reads one partition's live rows at `consistency`.
    pub fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        terms: ReadTerms<'_>,
    ) -> Result<Option<PartitionRows>, CoordinatorError> {
        let ring = self.topology.ring();
        let (replicas, needed, live) =
            self.plan(&ring, terms.placement, key.token, terms.consistency)?;
        self.note_coordination(&ring, &replicas);
        let targets = needed.choose(&ring, &live);
        let remote = match &self.remote {
            Some(remote) if targets.iter().any(|t| Some(*t) != ring.local()) => remote.clone(),
            _ => {
                let rows = self.engine.read(table, key, query)?;
                if Instant::now() > terms.deadline {
                    return Err(Self::read_timeout(&needed, terms.consistency, 0, false));
                }
                return Ok(rows);
            }
        };
        let spares: Vec<usize> = live
            .iter()
            .copied()
            .filter(|l| !targets.contains(l))
            .collect();
        let read = PartitionRead {
            coordinator: self,
            remote: &remote,
            ring: &ring,
            table,
            key,
            query,
            deadline: terms.deadline,
        };
        let timeout = |received: usize, data: bool| {
            Self::read_timeout(&needed, terms.consistency, received, data)
        };
        let answers = read
            .gather(&targets, true, &spares)
            .map_err(|(n, d)| timeout(n, d))?;
        let data = answers.iter().find_map(|(_, a)| match a {
            ReadAnswer::Data(data) => Some(data.clone()),
            ReadAnswer::Digest(_) => None,
        });
        let Some(data) = data else {
            return Err(timeout(answers.len(), false));
        };
        let digest = storage_lsm::replica::digest(data.as_ref());
        let agree = answers.iter().all(|(_, a)| match a {
            ReadAnswer::Data(d) => storage_lsm::replica::digest(d.as_ref()) == digest,
            ReadAnswer::Digest(d) => *d == digest,
        });
        let now_s = self.engine.now_s();
        if agree {
            return Ok(storage_lsm::replica::reconcile(key, data, query, now_s)?.rows);
        }
        // Digests differ: data from everyone who answered, reconcile, repair.
        let answered: Vec<usize> = answers.iter().map(|(r, _)| *r).collect();
        let full = read
            .gather(&answered, false, &[])
            .map_err(|(n, _)| timeout(n, true))?;
        let datas: Vec<(usize, Option<PartitionUpdate>)> = full
            .into_iter()
            .filter_map(|(r, a)| match a {
                ReadAnswer::Data(d) => Some((r, d)),
                ReadAnswer::Digest(_) => None,
            })
            .collect();
        let reconciled = storage_lsm::replica::reconcile(
            key,
            datas.iter().filter_map(|(_, d)| d.clone()),
            query,
            now_s,
        )?;
        if let Some(merged) = &reconciled.merged {
            let merged_digest = storage_lsm::replica::digest(Some(merged));
            let stale: Vec<usize> = datas
                .iter()
                .filter(|(_, d)| storage_lsm::replica::digest(d.as_ref()) != merged_digest)
                .map(|(r, _)| *r)
                .collect();
            let repair = Mutation {
                table,
                key: key.clone(),
                update: merged.clone(),
            };
            read.repair(&stale, repair)
                .map_err(|_| timeout(answered.len(), true))?;
            self.stats
                .read_repairs
                .fetch_add(stale.len() as u64, Ordering::Relaxed);
        }
        Ok(reconciled.rows)
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
            let page = self.engine.scan(table, range, resume, row_limit)?;
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
            let (remote, tx, segment, resume) =
                (remote.clone(), tx.clone(), segment.clone(), resume.cloned());
            let peer = endpoint.address;
            let timeout = deadline.saturating_duration_since(Instant::now());
            remote.runtime.clone().spawn(async move {
                let page = remote
                    .peers
                    .scan(peer, table, &segment, resume.as_ref(), row_limit, timeout)
                    .await;
                let _ = tx.send(page);
            });
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

/// One single-partition read's calls to replicas.
struct PartitionRead<'a> {
    coordinator: &'a Coordinator,
    remote: &'a Arc<Remote>,
    ring: &'a Ring,
    table: TableId,
    key: &'a PartitionKey,
    query: &'a SliceQuery,
    deadline: Instant,
}

impl PartitionRead<'_> {
    /// Asks `targets` (data from the first when `digests`, else from all;
    /// digests from the rest) and waits for as many answers as targets,
    /// doubling a slow one with a spare after the speculative delay.
    /// `Err((received, data_present))` on timeout.
    fn gather(
        &self,
        targets: &[usize],
        digests: bool,
        spares: &[usize],
    ) -> Result<Vec<(usize, ReadAnswer)>, (usize, bool)> {
        let (tx, rx) = mpsc::channel();
        let mut answers: Vec<(usize, ReadAnswer)> = Vec::new();
        let mut local = None;
        for (i, &target) in targets.iter().enumerate() {
            let digest_only = digests && i > 0;
            if Some(target) == self.ring.local() {
                local = Some((target, digest_only));
            } else {
                self.send(target, digest_only, &tx);
            }
        }
        if let Some((target, digest_only)) = local {
            match self
                .coordinator
                .engine
                .read_data(self.table, self.key, self.query)
            {
                Ok(data) if digest_only => answers.push((
                    target,
                    ReadAnswer::Digest(storage_lsm::replica::digest(data.as_ref())),
                )),
                Ok(data) => answers.push((target, ReadAnswer::Data(data))),
                Err(error) => tracing::warn!(%error, "local replica read failed"),
            }
        }
        let has_data = |answers: &[(usize, ReadAnswer)]| {
            answers
                .iter()
                .any(|(_, a)| matches!(a, ReadAnswer::Data(_)))
        };
        let mut speculate_at =
            Some(Instant::now() + self.coordinator.timeouts.read / SPECULATE_AFTER_DIVISOR);
        let mut spares = spares.iter();
        loop {
            if answers.len() >= targets.len() && has_data(&answers) {
                return Ok(answers);
            }
            let now = Instant::now();
            let Some(left) = self.deadline.checked_duration_since(now) else {
                return Err((answers.len(), has_data(&answers)));
            };
            let wait = speculate_at.map_or(left, |at| left.min(at.saturating_duration_since(now)));
            let replace = match rx.recv_timeout(wait) {
                Ok((target, Ok(answer))) => {
                    if !answers.iter().any(|(t, _)| *t == target) {
                        answers.push((target, answer));
                    }
                    false
                }
                Ok((_, Err(error))) => {
                    tracing::debug!(%error, "replica read failed");
                    true
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let due = speculate_at.is_some_and(|at| Instant::now() >= at);
                    if due {
                        speculate_at = None;
                    }
                    due
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err((answers.len(), has_data(&answers)));
                }
            };
            // A failed or slow replica is doubled by a spare: for data if
            // none has come yet.
            if replace {
                if let Some(&spare) = spares.next() {
                    self.coordinator
                        .stats
                        .speculative_retries
                        .fetch_add(1, Ordering::Relaxed);
                    self.send(spare, digests && has_data(&answers), &tx);
                }
            }
        }
    }

    fn send(
        &self,
        target: usize,
        digest_only: bool,
        tx: &mpsc::Sender<(usize, Result<ReadAnswer, crate::internode::PeerError>)>,
    ) {
        let Some(endpoint) = self.ring.endpoint(target) else {
            return;
        };
        let (remote, tx) = (self.remote.clone(), tx.clone());
        let (peer, table, key, query) = (
            endpoint.address,
            self.table,
            self.key.clone(),
            self.query.clone(),
        );
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        self.remote.runtime.spawn(async move {
            let answer = remote
                .peers
                .read(peer, table, &key, &query, digest_only, timeout)
                .await;
            let _ = tx.send((target, answer));
        });
    }

    /// Sends the reconciled partition to stale replicas and waits for all
    /// of them (blocking read repair). `Err(())` on timeout.
    fn repair(&self, stale: &[usize], mutation: Mutation) -> Result<(), ()> {
        if stale.is_empty() {
            return Ok(());
        }
        let encoded = Bytes::from(encode_mutation(&mutation));
        let (tx, rx) = mpsc::channel();
        let mut pending = 0;
        for &replica in stale {
            let Some(endpoint) = self.ring.endpoint(replica) else {
                continue;
            };
            if endpoint.is_local {
                if let Err(error) = self.coordinator.engine.apply(mutation.clone()) {
                    tracing::warn!(%error, "local read repair failed");
                    return Err(());
                }
                continue;
            }
            pending += 1;
            let (remote, tx, encoded, peer): (_, _, _, SocketAddr) = (
                self.remote.clone(),
                tx.clone(),
                encoded.clone(),
                endpoint.address,
            );
            let timeout = self.deadline.saturating_duration_since(Instant::now());
            self.remote.runtime.spawn(async move {
                let _ = tx.send(remote.peers.mutate(peer, encoded.to_vec(), timeout).await);
            });
        }
        for _ in 0..pending {
            let left = self
                .deadline
                .checked_duration_since(Instant::now())
                .ok_or(())?;
            match rx.recv_timeout(left) {
                Ok(Ok(())) => {}
                _ => return Err(()),
            }
        }
        Ok(())
    }
}

/// Whether `token` is inside `range`.
fn contains(range: &TokenRange, token: i64) -> bool {
    let after_start = match range.start {
        Bound::Unbounded => true,
        Bound::Included(s) => token >= s,
        Bound::Excluded(s) => token > s,
    };
    let before_end = match range.end {
        Bound::Unbounded => true,
        Bound::Included(e) => token <= e,
        Bound::Excluded(e) => token < e,
    };
    after_start && before_end
}

/// The later of two start bounds.
fn max_start(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |bound: &Bound<i64>| match bound {
        Bound::Unbounded => (i128::MIN, 0),
        Bound::Included(t) => (i128::from(*t), 0),
        Bound::Excluded(t) => (i128::from(*t), 1),
    };
    if key(&a) >= key(&b) {
        a
    } else {
        b
    }
}

/// The earlier of two end bounds.
fn min_end(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |bound: &Bound<i64>| match bound {
        Bound::Unbounded => (i128::MAX, 0),
        Bound::Included(t) => (i128::from(*t), 0),
        Bound::Excluded(t) => (i128::from(*t), -1),
    };
    if key(&a) <= key(&b) {
        a
    } else {
        b
    }
}

/// Is the range empty?
fn is_empty(range: &TokenRange) -> bool {
    match (range.start, range.end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e)) | (Bound::Excluded(s), Bound::Included(e)) => {
            s >= e
        }
        (Bound::Excluded(s), Bound::Excluded(e)) => s >= e || s.checked_add(1) == Some(e),
    }
}

/// The ring's ranges that meet `range`, in token order, each with the
/// token that owns it; from the one holding `start_token` when resuming.
fn segments(ring: &Ring, range: &TokenRange, start_token: Option<i64>) -> Vec<(TokenRange, i64)> {
    let tokens: Vec<i64> = ring.tokens().iter().map(|(t, _)| *t).collect();
    let (Some(&first), Some(&last)) = (tokens.first(), tokens.last()) else {
        return Vec::new();
    };
    let mut pieces = vec![(Bound::Unbounded, Bound::Included(first), first)];
    for pair in tokens.windows(2) {
        if let [low, high] = pair {
            if low != high {
                pieces.push((Bound::Excluded(*low), Bound::Included(*high), *high));
            }
        }
    }
    pieces.push((Bound::Excluded(last), Bound::Unbounded, first));
    pieces
        .into_iter()
        .map(|(start, end, owner)| {
            (
                TokenRange {
                    start: max_start(start, range.start),
                    end: min_end(end, range.end),
                },
                owner,
            )
        })
        .filter(|(segment, _)| !is_empty(segment))
        .filter(|(segment, _)| {
            start_token.is_none_or(|t| {
                contains(segment, t)
                    || matches!(segment.start, Bound::Included(s) | Bound::Excluded(s) if s >= t)
            })
        })
        .collect()
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
    use crate::topology::tests::two_dc_ring;

    fn ring() -> Ring {
        two_dc_ring()
    }

    #[test]
    fn segments_cover_the_range_once_in_token_order() {
        let ring = ring();
        let all = segments(&ring, &TokenRange::all(), None);
        let owners: Vec<i64> = all.iter().map(|(_, o)| *o).collect();
        assert_eq!(owners, vec![0, 100, 200, 0]);
        assert_eq!(all[0].0.end, Bound::Included(0));
        assert_eq!(all[3].0.start, Bound::Excluded(200));
        let part = TokenRange {
            start: Bound::Excluded(50),
            end: Bound::Included(150),
        };
        let some = segments(&ring, &part, None);
        assert_eq!(some.len(), 2);
        assert_eq!(some[0].0.start, Bound::Excluded(50));
        assert_eq!(some[1].0.end, Bound::Included(150));
        let resumed = segments(&ring, &TokenRange::all(), Some(150));
        assert_eq!(
            resumed.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            vec![200, 0]
        );
    }

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

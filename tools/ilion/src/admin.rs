//! The admin gRPC service of a node (`admin_address:admin_port`, 7199 by
//! default): what `ilion nodetool` asks. Replies carry numbers; the client
//! formats them (see `nodetool/`).
//!
//! The endpoints this node knows come from gossip ([`AdminService::endpoints`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tonic::{Request, Response, Status};

use cql_frontend::metrics::Operation;
use cql_frontend::node::Node;
use cql_frontend::schema::format_uuid;
use gossip::keys;
use storage_lsm::model::TableId;

use crate::http::Readiness;

/// The generated messages, server and client of `proto/admin.proto`.
#[allow(clippy::all)]
pub mod proto {
    tonic::include_proto!("ilion.admin.v1");
}

use proto::admin_server::Admin;
use proto::*;

const PARTITIONER: &str = "org.apache.cassandra.dht.Murmur3Partitioner";
const MIB: u64 = 1024 * 1024;

/// Node-internal tables shown under the keyspace names Cassandra users know.
const INTERNAL_TABLES: [(TableId, &str, &str); 2] = [
    (
        cql_frontend::schema::SCHEMA_TABLE,
        "system_schema",
        "tables",
    ),
    (cql_frontend::auth::ROLES_TABLE, "system_auth", "roles"),
];

/// One table the request names: keyspace, table, engine id.
struct NamedTable {
    keyspace: String,
    table: String,
    id: TableId,
    compaction_class: String,
}

/// What the admin service needs of the running node.
pub struct AdminService {
    node: Arc<Node>,
    gossip: gossip::GossipHandle,
    readiness: Arc<Readiness>,
    snitch: String,
    started: Instant,
    /// Sent `true` by drain: the CQL port stops serving.
    stop_clients: watch::Sender<bool>,
}

impl AdminService {
    pub fn new(
        node: Arc<Node>,
        gossip: gossip::GossipHandle,
        readiness: Arc<Readiness>,
        snitch: &str,
        stop_clients: watch::Sender<bool>,
    ) -> AdminService {
        AdminService {
            node,
            gossip,
            readiness,
            snitch: snitch.to_owned(),
            started: Instant::now(),
            stop_clients,
        }
    }

    fn engine(&self) -> &Arc<storage_lsm::Engine> {
        self.node.coordinator.engine()
    }

    /// Every table: the catalog's, then (if asked) the node-internal ones.
    fn all_tables(&self, with_internal: bool) -> Vec<NamedTable> {
        let catalog = self.node.catalog.read();
        let mut tables: Vec<NamedTable> = catalog
            .tables
            .values()
            .map(|t| NamedTable {
                keyspace: t.keyspace.clone(),
                table: t.name.clone(),
                id: t.table_id(),
                compaction_class: t
                    .compaction
                    .iter()
                    .find(|(k, _)| k == "class")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            })
            .collect();
        if with_internal {
            tables.extend(
                INTERNAL_TABLES
                    .iter()
                    .map(|(id, keyspace, table)| NamedTable {
                        keyspace: (*keyspace).to_owned(),
                        table: (*table).to_owned(),
                        id: *id,
                        compaction_class: "SizeTieredCompactionStrategy".to_owned(),
                    }),
            );
        }
        tables
    }

    /// The tables a request names, with nodetool's refusals for unknown ones.
    fn resolve(&self, keyspace: &str, names: &[String]) -> Result<Vec<NamedTable>, Status> {
        let all = self.all_tables(true);
        if keyspace.is_empty() {
            return Ok(all);
        }
        let in_keyspace: Vec<NamedTable> =
            all.into_iter().filter(|t| t.keyspace == keyspace).collect();
        if in_keyspace.is_empty() && self.node.catalog.read().keyspace(keyspace).is_none() {
            return Err(Status::invalid_argument(format!(
                "Keyspace [{keyspace}] does not exist."
            )));
        }
        if let Some(missing) = names
            .iter()
            .find(|n| !in_keyspace.iter().any(|t| &t.table == *n))
        {
            return Err(Status::invalid_argument(format!(
                "Unknown table/column family {missing} in keyspace {keyspace}"
            )));
        }
        Ok(in_keyspace
            .into_iter()
            .filter(|t| names.is_empty() || names.contains(&t.table))
            .collect())
    }

    /// The tables of several keyspaces (all tables when none is named).
    fn resolve_keyspaces(
        &self,
        keyspaces: &[String],
        names: &[String],
    ) -> Result<Vec<NamedTable>, Status> {
        if keyspaces.is_empty() {
            return self.resolve("", names);
        }
        let mut tables = Vec::new();
        for keyspace in keyspaces {
            tables.extend(self.resolve(keyspace, names)?);
        }
        Ok(tables)
    }

    /// (keyspace, table) by engine id, for replies that name many tables.
    fn names_by_id(&self) -> HashMap<TableId, (String, String)> {
        self.all_tables(true)
            .into_iter()
            .map(|t| (t.id, (t.keyspace, t.table)))
            .collect()
    }

    /// The endpoints gossip knows, this node first, with ownership for
    /// `replication_factor` replicas per range.
    fn endpoints(&self, replication_factor: usize) -> Vec<Endpoint> {
        let views = self.gossip.endpoints();
        let tokens: Vec<Vec<i64>> = views.iter().map(|v| v.state.tokens()).collect();
        let owned = replication::ring::ownership(&tokens, replication_factor);
        views
            .into_iter()
            .zip(tokens)
            .zip(owned)
            .map(|((view, tokens), ownership)| {
                let text = |key: &str| view.state.value(key).unwrap_or_default().to_owned();
                // This node's own figures are read live; peers' come from gossip.
                let (load_bytes, schema_version) = if view.is_local {
                    (
                        self.engine().load().0,
                        format_uuid(self.node.catalog.read().version),
                    )
                } else {
                    (text(keys::LOAD).parse().unwrap_or(0), text(keys::SCHEMA))
                };
                Endpoint {
                    address: view.endpoint.ip().to_string(),
                    host_id: text(keys::HOST_ID),
                    data_center: text(keys::DC),
                    rack: text(keys::RACK),
                    up: view.up,
                    state: match text(keys::STATUS).as_str() {
                        "LEAVING" => "LEAVING",
                        "JOINING" => "JOINING",
                        "MOVING" => "MOVING",
                        _ => "NORMAL",
                    }
                    .to_owned(),
                    load_bytes,
                    tokens,
                    ownership,
                    schema_version,
                    release_version: text(keys::RELEASE_VERSION),
                }
            })
            .collect()
    }
}

/// The names of a table, or its id when the catalog no longer has it.
fn name_of(names: &HashMap<TableId, (String, String)>, id: TableId) -> (String, String) {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| ("?".to_owned(), format_uuid(id.0)))
}

/// Runs a blocking engine call off the async workers, as a gRPC status.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> storage_lsm::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("admin task failed: {e}")))?
        .map_err(|e| match e {
            storage_lsm::Error::InvalidArgument(message) => Status::invalid_argument(message),
            other => Status::internal(other.to_string()),
        })
}

fn percentiles(p: storage_lsm::stats::Percentiles) -> Option<proto::Percentiles> {
    Some(proto::Percentiles {
        count: p.count,
        mean: p.mean,
        min: p.min,
        p50: p.p50,
        p75: p.p75,
        p95: p.p95,
        p98: p.p98,
        p99: p.p99,
        max: p.max,
    })
}

fn done(tables: &[NamedTable]) -> TablesDone {
    TablesDone {
        tables: tables
            .iter()
            .map(|t| TableName {
                keyspace: t.keyspace.clone(),
                table: t.table.clone(),
            })
            .collect(),
    }
}

/// Resident set size of this process, from /proc (0 where unknown).
fn resident_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "not yet supported: {what} needs the multi-node cluster (issue 6)"
    ))
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn info(&self, _: Request<Empty>) -> Result<Response<InfoReply>, Status> {
        let info = &self.node.info;
        let (load_bytes, memtable_bytes) = self.engine().load();
        Ok(Response::new(InfoReply {
            host_id: format_uuid(info.host_id),
            release_version: cql_frontend::node::RELEASE_VERSION.to_owned(),
            cluster_name: info.cluster_name.clone(),
            data_center: info.data_center.clone(),
            rack: info.rack.clone(),
            generation: info.generation,
            uptime_seconds: self.started.elapsed().as_secs(),
            load_bytes,
            memtable_bytes,
            resident_memory_bytes: resident_memory_bytes(),
            native_transport_active: !self.readiness.draining.load(Ordering::Acquire),
            gossip_active: self.gossip.is_running(),
            commitlog_segments: self.engine().commitlog_segments() as u64,
            client_connections: self.node.metrics.open_connections(),
            tokens: info.tokens.clone(),
            draining: self.readiness.draining.load(Ordering::Acquire),
        }))
    }

    async fn cluster(
        &self,
        request: Request<ClusterRequest>,
    ) -> Result<Response<ClusterReply>, Status> {
        let keyspace = request.into_inner().keyspace;
        let replication_factor = if keyspace.is_empty() {
            1
        } else {
            self.node
                .catalog
                .read()
                .keyspace(&keyspace)
                .map(|k| k.replication_factor())
                .ok_or_else(|| {
                    Status::invalid_argument(format!("Keyspace [{keyspace}] does not exist."))
                })?
        };
        Ok(Response::new(ClusterReply {
            cluster_name: self.node.info.cluster_name.clone(),
            partitioner: PARTITIONER.to_owned(),
            snitch: self.snitch.clone(),
            endpoints: self.endpoints(replication_factor),
            local_address: self.node.info.listen_address.to_string(),
        }))
    }

    async fn gossip_info(&self, _: Request<Empty>) -> Result<Response<GossipInfoReply>, Status> {
        Ok(Response::new(GossipInfoReply {
            endpoints: self
                .gossip
                .endpoints()
                .into_iter()
                .map(|view| EndpointState {
                    address: view.endpoint.ip().to_string(),
                    generation: view.state.generation,
                    heartbeat: view.state.heartbeat,
                    states: view
                        .state
                        .states
                        .iter()
                        .map(|(name, v)| ApplicationState {
                            name: name.clone(),
                            version: v.version,
                            value: if name == keys::TOKENS {
                                "<hidden>".to_owned()
                            } else {
                                v.value.clone()
                            },
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn table_stats(
        &self,
        request: Request<TablesRequest>,
    ) -> Result<Response<TableStatsReply>, Status> {
        let request = request.into_inner();
        let tables = self.resolve(&request.keyspace, &request.tables)?;
        let engine = self.engine().clone();
        let stats = blocking(move || {
            tables
                .into_iter()
                .map(|t| engine.stats(t.id).map(|s| (t, s)))
                .collect::<storage_lsm::Result<Vec<_>>>()
        })
        .await?;
        Ok(Response::new(TableStatsReply {
            tables: stats
                .into_iter()
                .map(|(t, s)| proto::TableStats {
                    keyspace: t.keyspace,
                    table: t.table,
                    sstable_count: s.sstable_count as u64,
                    sstables_per_level: s.sstables_per_level.iter().map(|n| *n as u64).collect(),
                    live_disk_bytes: s.live_disk_bytes,
                    memtable_bytes: s.memtable_bytes as u64,
                    partition_count_estimate: s.partition_count_estimate,
                    read_latency_us: percentiles(s.read_latency_us),
                    write_latency_us: percentiles(s.write_latency_us),
                    range_latency_us: percentiles(s.range_latency_us),
                    tombstones_per_read: percentiles(s.tombstones_per_read),
                    tombstones_scanned_total: s.tombstones_scanned_total,
                    pending_compactions: s.pending_compactions as u64,
                    compaction_strategy: t.compaction_class,
                })
                .collect(),
        }))
    }

    async fn proxy_histograms(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<ProxyHistogramsReply>, Status> {
        let [read, write, other] = Operation::ALL.map(|op| self.node.metrics.latency_us(op));
        Ok(Response::new(ProxyHistogramsReply {
            read_latency_us: percentiles(read),
            write_latency_us: percentiles(write),
            other_latency_us: percentiles(other),
        }))
    }

    async fn compaction_stats(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<CompactionStatsReply>, Status> {
        let engine = self.engine();
        let names = self.names_by_id();
        let mut pending = Vec::new();
        for table in self.all_tables(true) {
            let count = engine.stats(table.id).map_or(0, |s| s.pending_compactions) as u64;
            if count > 0 {
                pending.push(TablePending {
                    keyspace: table.keyspace,
                    table: table.table,
                    pending: count,
                });
            }
        }
        let active = engine
            .active_compactions()
            .iter()
            .zip(1..)
            .map(|(progress, n): (_, u32)| {
                let (keyspace, table) = name_of(&names, progress.table);
                ActiveCompaction {
                    id: format!("{n}"),
                    kind: progress.kind.to_owned(),
                    keyspace,
                    table,
                    done_bytes: progress.done_bytes.load(Ordering::Relaxed),
                    total_bytes: progress.total_bytes,
                }
            })
            .collect();
        Ok(Response::new(CompactionStatsReply {
            pending_total: pending.iter().map(|p| p.pending).sum(),
            pending,
            active,
            throughput_mib_per_s: engine.compaction_throughput() / MIB,
        }))
    }

    async fn flush(&self, request: Request<TablesRequest>) -> Result<Response<TablesDone>, Status> {
        let request = request.into_inner();
        let tables = self.resolve(&request.keyspace, &request.tables)?;
        let engine = self.engine().clone();
        let ids: Vec<TableId> = tables.iter().map(|t| t.id).collect();
        blocking(move || ids.into_iter().try_for_each(|id| engine.flush(id))).await?;
        Ok(Response::new(done(&tables)))
    }

    async fn compact(
        &self,
        request: Request<TablesRequest>,
    ) -> Result<Response<TablesDone>, Status> {
        let request = request.into_inner();
        let tables = self.resolve(&request.keyspace, &request.tables)?;
        let engine = self.engine().clone();
        let ids: Vec<TableId> = tables.iter().map(|t| t.id).collect();
        blocking(move || {
            ids.into_iter().try_for_each(|id| {
                engine.flush(id)?;
                engine.compact_all(id)
            })
        })
        .await?;
        Ok(Response::new(done(&tables)))
    }

    async fn cleanup(
        &self,
        request: Request<TablesRequest>,
    ) -> Result<Response<TablesDone>, Status> {
        let request = request.into_inner();
        let tables = self.resolve(&request.keyspace, &request.tables)?;
        // Cleanup drops partitions of ranges this node no longer replicates.
        // While the node is alone in its ring it replicates every range, so
        // there is nothing to drop.
        if self.endpoints(1).len() > 1 {
            return Err(not_yet("cleanup"));
        }
        Ok(Response::new(done(&tables)))
    }

    async fn drain(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::info!("draining: no more client requests; flushing every table");
        self.readiness.draining.store(true, Ordering::Release);
        let _ = self.stop_clients.send(true);
        if self.gossip.is_running() {
            self.gossip.stop().await;
        }
        // As at a clean stop: every memtable flushed and the commitlog
        // emptied, so a node killed after a drain replays nothing; the
        // engine takes no writes from here on.
        let engine = self.engine().clone();
        blocking(move || engine.shutdown()).await?;
        tracing::info!("drained");
        Ok(Response::new(Empty {}))
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotReply>, Status> {
        let request = request.into_inner();
        if !request.table.is_empty() && request.keyspaces.len() != 1 {
            return Err(Status::invalid_argument(
                "When specifying the table for a snapshot, you must specify one and only one keyspace",
            ));
        }
        let only: Vec<String> = std::iter::once(request.table)
            .filter(|t| !t.is_empty())
            .collect();
        let tables = self.resolve_keyspaces(&request.keyspaces, &only)?;
        let tag = if request.tag.is_empty() {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                .to_string()
        } else {
            request.tag
        };
        let engine = self.engine().clone();
        let ids: Vec<TableId> = tables.iter().map(|t| t.id).collect();
        let name = tag.clone();
        let dirs = blocking(move || engine.snapshot_tables(&name, &ids)).await?;
        Ok(Response::new(SnapshotReply {
            tag,
            tables: dirs.len() as u64,
        }))
    }

    async fn list_snapshots(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<ListSnapshotsReply>, Status> {
        let engine = self.engine().clone();
        let found = blocking(move || engine.list_snapshots()).await?;
        let names = self.names_by_id();
        Ok(Response::new(ListSnapshotsReply {
            snapshots: found
                .into_iter()
                .map(|s| {
                    let (keyspace, table) = name_of(&names, s.table);
                    SnapshotEntry {
                        tag: s.name,
                        keyspace,
                        table,
                        true_size_bytes: s.true_size_bytes,
                        size_bytes: s.size_bytes,
                    }
                })
                .collect(),
        }))
    }

    async fn clear_snapshot(
        &self,
        request: Request<ClearSnapshotRequest>,
    ) -> Result<Response<ClearSnapshotReply>, Status> {
        let request = request.into_inner();
        if request.tag.is_empty() && !request.all {
            return Err(Status::invalid_argument(
                "Specify snapshot name or --all to clear all snapshots",
            ));
        }
        if !request.tag.is_empty() && request.all {
            return Err(Status::invalid_argument(
                "Specify only one of snapshot name or --all",
            ));
        }
        let tables = self.resolve_keyspaces(&request.keyspaces, &[])?;
        let engine = self.engine().clone();
        let ids: Vec<TableId> = tables.iter().map(|t| t.id).collect();
        let tag = Some(request.tag).filter(|t| !t.is_empty());
        let removed = blocking(move || engine.clear_snapshots(tag.as_deref(), &ids)).await?;
        Ok(Response::new(ClearSnapshotReply {
            removed: removed as u64,
        }))
    }

    async fn get_compaction_throughput(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<CompactionThroughput>, Status> {
        Ok(Response::new(CompactionThroughput {
            mib_per_s: self.engine().compaction_throughput() / MIB,
        }))
    }

    async fn set_compaction_throughput(
        &self,
        request: Request<CompactionThroughput>,
    ) -> Result<Response<Empty>, Status> {
        let mib = request.into_inner().mib_per_s;
        let bytes = mib.checked_mul(MIB).ok_or_else(|| {
            Status::invalid_argument(format!("{mib} MiB/s is too large a compaction throughput"))
        })?;
        self.engine().set_compaction_throughput(bytes);
        tracing::info!(mib_per_s = mib, "compaction throughput set");
        Ok(Response::new(Empty {}))
    }

    async fn get_trace_probability(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<TraceProbability>, Status> {
        Ok(Response::new(TraceProbability {
            probability: self.node.traces.probability(),
        }))
    }

    async fn set_trace_probability(
        &self,
        request: Request<TraceProbability>,
    ) -> Result<Response<Empty>, Status> {
        let probability = request.into_inner().probability;
        self.node
            .traces
            .set_probability(probability)
            .map_err(Status::invalid_argument)?;
        tracing::info!(probability, "trace probability set");
        Ok(Response::new(Empty {}))
    }

    async fn decommission(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(not_yet("decommission"))
    }

    async fn remove_node(&self, _: Request<RemoveNodeRequest>) -> Result<Response<Empty>, Status> {
        Err(not_yet("removenode"))
    }

    async fn repair(&self, _: Request<TablesRequest>) -> Result<Response<Empty>, Status> {
        Err(not_yet("repair"))
    }
}

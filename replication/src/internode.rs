//! The replication verbs over the internode gRPC port: [`ReplicaService`]
//! answers other nodes' coordinators from the local engine, and [`Peers`]
//! calls other nodes. Every call has a deadline; a slow or dead peer only
//! costs the requests that wait for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use storage_lsm::codec::{Reader, Writer};
use storage_lsm::model::{Mutation, PartitionKey, PartitionUpdate, TableId};
use storage_lsm::{Engine, ScanPage, ScanResume, SliceQuery, TokenRange};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::verbs;

pub mod proto {
    tonic::include_proto!("ilion.replica.v1");
}

use proto::replica_client::ReplicaClient;
use proto::replica_server::{Replica, ReplicaServer};

/// How long a new connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest message either side accepts (a page of wide rows, a schema).
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Where the schema lives, as the layer that owns it (the CQL frontend)
/// exposes it to the internode verbs.
pub trait SchemaStore: Send + Sync {
    /// Every schema partition, unfiltered (tombstones of dropped
    /// definitions included).
    fn schema_mutations(&self) -> Result<Vec<Mutation>, String>;
    /// Merges schema partitions from another node and reloads.
    fn merge_schema(&self, mutations: Vec<Mutation>) -> Result<(), String>;
}

/// The schema store, set once the CQL layer is up (before that, schema
/// verbs answer Unavailable).
pub type SchemaSlot = Arc<OnceLock<Arc<dyn SchemaStore>>>;

/// Answers the replication verbs from the local engine.
pub struct ReplicaService {
    engine: Arc<Engine>,
    schema: SchemaSlot,
}

impl ReplicaService {
    pub fn server(engine: Arc<Engine>, schema: SchemaSlot) -> ReplicaServer<ReplicaService> {
        ReplicaServer::new(ReplicaService { engine, schema })
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    fn schema(&self) -> Result<Arc<dyn SchemaStore>, Status> {
        self.schema
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("this node's schema is not loaded yet"))
    }
}

fn bad(what: &str, error: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("bad {what}: {error}"))
}

fn storage_status(error: storage_lsm::Error) -> Status {
    match error {
        storage_lsm::Error::UnknownTable(_) => Status::not_found(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// Runs engine work off the async workers (reads may touch disk, writes may
/// wait for an fsync).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("replica task failed: {e}")))?
}

pub fn decode_mutation(bytes: &[u8]) -> Result<Mutation, Status> {
    Reader::new(bytes)
        .mutation()
        .map_err(|e| bad("mutation", e))
}

pub fn encode_mutation(mutation: &Mutation) -> Vec<u8> {
    let mut w = Writer::new();
    w.mutation(mutation);
    w.buf
}

fn encode_update(update: &PartitionUpdate) -> Vec<u8> {
    let mut w = Writer::new();
    w.update(update);
    w.buf
}

#[tonic::async_trait]
impl Replica for ReplicaService {
    async fn mutate(
        &self,
        request: Request<proto::MutateRequest>,
    ) -> Result<Response<proto::MutateReply>, Status> {
        let mutation = decode_mutation(&request.into_inner().mutation)?;
        let engine = self.engine.clone();
        blocking(move || engine.apply(mutation).map_err(storage_status)).await?;
        Ok(Response::new(proto::MutateReply {}))
    }

    async fn read(
        &self,
        request: Request<proto::ReadRequest>,
    ) -> Result<Response<proto::ReadReply>, Status> {
        let request = request.into_inner();
        let table =
            verbs::decode_table(&request.table).ok_or_else(|| bad("table id", "not 16 bytes"))?;
        let key = verbs::decode_key(&request.key).map_err(|e| bad("partition key", e))?;
        let query = verbs::decode_query(&request.query).map_err(|e| bad("slice", e))?;
        let engine = self.engine.clone();
        let data = blocking(move || {
            engine
                .read_data(table, &key, &query)
                .map_err(storage_status)
        })
        .await?;
        let digest = storage_lsm::replica::digest(data.as_ref());
        Ok(Response::new(proto::ReadReply {
            found: data.is_some(),
            data: match (&data, request.digest_only) {
                (Some(update), false) => encode_update(update),
                _ => Vec::new(),
            },
            digest,
        }))
    }

    async fn scan(
        &self,
        request: Request<proto::ScanRequest>,
    ) -> Result<Response<proto::ScanReply>, Status> {
        let request = request.into_inner();
        let table =
            verbs::decode_table(&request.table).ok_or_else(|| bad("table id", "not 16 bytes"))?;
        let range = verbs::decode_range(&request.range).map_err(|e| bad("token range", e))?;
        let resume = verbs::decode_resume(&request.resume).map_err(|e| bad("resume point", e))?;
        let limit = usize::try_from(request.row_limit).unwrap_or(usize::MAX);
        let engine = self.engine.clone();
        let page = blocking(move || {
            engine
                .scan(table, &range, resume.as_ref(), limit)
                .map_err(storage_status)
        })
        .await?;
        Ok(Response::new(proto::ScanReply {
            page: verbs::encode_page(&page),
        }))
    }

    async fn push_schema(
        &self,
        request: Request<proto::SchemaMessage>,
    ) -> Result<Response<proto::SchemaReply>, Status> {
        let schema = self.schema()?;
        let mutations = request
            .into_inner()
            .mutations
            .iter()
            .map(|m| decode_mutation(m))
            .collect::<Result<Vec<_>, _>>()?;
        blocking(move || schema.merge_schema(mutations).map_err(Status::internal)).await?;
        Ok(Response::new(proto::SchemaReply {}))
    }

    async fn truncate(
        &self,
        request: Request<proto::TruncateRequest>,
    ) -> Result<Response<proto::TruncateReply>, Status> {
        let table = verbs::decode_table(&request.into_inner().table)
            .ok_or_else(|| bad("table id", "not 16 bytes"))?;
        let engine = self.engine.clone();
        blocking(move || engine.truncate(table).map_err(storage_status)).await?;
        Ok(Response::new(proto::TruncateReply {}))
    }

    async fn pull_schema(
        &self,
        _request: Request<proto::SchemaPullRequest>,
    ) -> Result<Response<proto::SchemaMessage>, Status> {
        let schema = self.schema()?;
        let mutations =
            blocking(move || schema.schema_mutations().map_err(Status::internal)).await?;
        Ok(Response::new(proto::SchemaMessage {
            mutations: mutations.iter().map(encode_mutation).collect(),
        }))
    }
}

/// Why a call to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("{peer} did not answer within {timeout:?}")]
    Timeout { peer: SocketAddr, timeout: Duration },
    #[error("{peer} answered {status}")]
    Refused { peer: SocketAddr, status: String },
    #[error("{peer} sent a bad answer: {reason}")]
    BadAnswer { peer: SocketAddr, reason: String },
}

/// A replica's answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAnswer {
    Data(Option<PartitionUpdate>),
    Digest(u64),
}

/// Calls other nodes' replication verbs (one lazily connected channel per peer).
#[derive(Debug)]
pub struct Peers {
    /// This node's listen address: connections leave from it (as
    /// Cassandra's do), so a firewall rule between two nodes cuts them.
    local: std::net::IpAddr,
    channels: Mutex<HashMap<SocketAddr, Channel>>,
}

impl Peers {
    pub fn new(local: std::net::IpAddr) -> Peers {
        Peers {
            local,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, peer: SocketAddr) -> Result<ReplicaClient<Channel>, PeerError> {
        let known = self.channels.lock().get(&peer).cloned();
        let channel = match known {
            Some(channel) => channel,
            None => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{peer}"))
                    .map_err(|e| PeerError::BadAnswer {
                        peer,
                        reason: e.to_string(),
                    })?
                    .local_address(Some(self.local))
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect_lazy();
                self.channels.lock().insert(peer, channel.clone());
                channel
            }
        };
        Ok(ReplicaClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }

    async fn call<T, F>(
        &self,
        peer: SocketAddr,
        timeout: Duration,
        call: impl FnOnce(ReplicaClient<Channel>) -> F,
    ) -> Result<T, PeerError>
    where
        F: std::future::Future<Output = Result<Response<T>, Status>>,
    {
        let client = self.client(peer)?;
        match tokio::time::timeout(timeout, call(client)).await {
            Err(_) => Err(PeerError::Timeout { peer, timeout }),
            Ok(Err(status)) => Err(PeerError::Refused {
                peer,
                status: format!("{:?}: {}", status.code(), status.message()),
            }),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    pub async fn mutate(
        &self,
        peer: SocketAddr,
        mutation: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        self.call(peer, timeout, |mut c| async move {
            c.mutate(proto::MutateRequest { mutation }).await
        })
        .await
        .map(|_| ())
    }

    pub async fn read(
        &self,
        peer: SocketAddr,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
        digest_only: bool,
        timeout: Duration,
    ) -> Result<ReadAnswer, PeerError> {
        let request = proto::ReadRequest {
            table: verbs::encode_table(table),
            key: verbs::encode_key(key),
            query: verbs::encode_query(query),
            digest_only,
        };
        let reply = self
            .call(peer, timeout, |mut c| async move { c.read(request).await })
            .await?;
        if digest_only {
            return Ok(ReadAnswer::Digest(reply.digest));
        }
        if !reply.found {
            return Ok(ReadAnswer::Data(None));
        }
        let update = Reader::new(&reply.data)
            .update()
            .map_err(|e| PeerError::BadAnswer {
                peer,
                reason: e.to_string(),
            })?;
        Ok(ReadAnswer::Data(Some(update)))
    }

    pub async fn scan(
        &self,
        peer: SocketAddr,
        table: TableId,
        range: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
        timeout: Duration,
    ) -> Result<ScanPage, PeerError> {
        let request = proto::ScanRequest {
            table: verbs::encode_table(table),
            range: verbs::encode_range(range),
            resume: verbs::encode_resume(resume),
            row_limit: u64::try_from(row_limit).unwrap_or(u64::MAX),
        };
        let reply = self
            .call(peer, timeout, |mut c| async move { c.scan(request).await })
            .await?;
        verbs::decode_page(&reply.page).map_err(|e| PeerError::BadAnswer {
            peer,
            reason: e.to_string(),
        })
    }

    pub async fn push_schema(
        &self,
        peer: SocketAddr,
        mutations: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        self.call(peer, timeout, |mut c| async move {
            c.push_schema(proto::SchemaMessage { mutations }).await
        })
        .await
        .map(|_| ())
    }

    pub async fn truncate(
        &self,
        peer: SocketAddr,
        table: TableId,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        let request = proto::TruncateRequest {
            table: verbs::encode_table(table),
        };
        self.call(
            peer,
            timeout,
            |mut c| async move { c.truncate(request).await },
        )
        .await
        .map(|_| ())
    }

    pub async fn pull_schema(
        &self,
        peer: SocketAddr,
        timeout: Duration,
    ) -> Result<Vec<Mutation>, PeerError> {
        let reply = self
            .call(peer, timeout, |mut c| async move {
                c.pull_schema(proto::SchemaPullRequest {}).await
            })
            .await?;
        reply
            .mutations
            .iter()
            .map(|m| {
                Reader::new(m).mutation().map_err(|e| PeerError::BadAnswer {
                    peer,
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

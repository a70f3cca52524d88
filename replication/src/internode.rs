//! Calls between nodes for the replication verbs: [`Peers`] is the one
//! handle the coordinator, hints and schema migration use. Mutations,
//! reads, scans and truncates travel by [`crate::messaging`] (framed, many
//! per write); schema pushes and pulls, rare and large, stay on the
//! internode gRPC service ([`ReplicaService`]). Every call has a deadline;
//! a slow or dead peer only costs the requests that wait for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use storage_lsm::codec::{Reader, Writer};
use storage_lsm::model::{Mutation, PartitionKey, PartitionUpdate, TableId};
use storage_lsm::{ScanPage, ScanResume, SliceQuery, TokenRange};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::messaging::frame::{Reply, Verb};
use crate::messaging::Messenger;
use crate::verbs;
use bytes::Bytes;

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

/// Answers the schema verbs.
pub struct ReplicaService {
    schema: SchemaSlot,
}

impl ReplicaService {
    pub fn server(schema: SchemaSlot) -> ReplicaServer<ReplicaService> {
        ReplicaServer::new(ReplicaService { schema })
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

#[tonic::async_trait]
impl Replica for ReplicaService {
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

pub use crate::messaging::PeerError;

/// A replica's answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAnswer {
    Data(Option<PartitionUpdate>),
    Digest(u64),
}

/// Calls other nodes' replication verbs: the hot ones by messaging, the
/// schema ones by gRPC (one lazily connected channel per peer).
#[derive(Debug)]
pub struct Peers {
    /// This node's listen address: connections leave from it (as
    /// Cassandra's do), so a firewall rule between two nodes cuts them.
    local: std::net::IpAddr,
    channels: Mutex<HashMap<SocketAddr, Channel>>,
    messenger: Messenger,
}

fn bad_answer(peer: SocketAddr, reason: impl std::fmt::Display) -> PeerError {
    PeerError::BadAnswer {
        peer,
        reason: reason.to_string(),
    }
}

/// A read reply as the coordinator uses it.
pub fn read_answer(
    peer: SocketAddr,
    reply: Reply,
    digest_only: bool,
) -> Result<ReadAnswer, PeerError> {
    match reply {
        Reply::Read { digest, .. } if digest_only => Ok(ReadAnswer::Digest(digest)),
        Reply::Read { found: false, .. } => Ok(ReadAnswer::Data(None)),
        Reply::Read { data, .. } => Reader::new(&data)
            .update()
            .map(|update| ReadAnswer::Data(Some(update)))
            .map_err(|e| bad_answer(peer, e)),
        other => Err(bad_answer(peer, format!("{other:?} to a read"))),
    }
}

/// The read request for a partition slice.
pub fn read_verb(
    table: TableId,
    key: &PartitionKey,
    query: &SliceQuery,
    digest_only: bool,
) -> Verb {
    Verb::Read {
        table,
        key: Bytes::from(verbs::encode_key(key)),
        query: Bytes::from(verbs::encode_query(query)),
        digest_only,
    }
}

/// The scan request for one page of a token range.
pub fn scan_verb(
    table: TableId,
    range: &TokenRange,
    resume: Option<&ScanResume>,
    row_limit: usize,
) -> Verb {
    Verb::Scan {
        table,
        range: Bytes::from(verbs::encode_range(range)),
        resume: Bytes::from(verbs::encode_resume(resume)),
        row_limit: u64::try_from(row_limit).unwrap_or(u64::MAX),
    }
}

/// A scan reply as the coordinator uses it.
pub fn scan_page(peer: SocketAddr, reply: Reply) -> Result<ScanPage, PeerError> {
    match reply {
        Reply::Page(page) => verbs::decode_page(&page).map_err(|e| bad_answer(peer, e)),
        other => Err(bad_answer(peer, format!("{other:?} to a scan"))),
    }
}

fn done(peer: SocketAddr, reply: Reply) -> Result<(), PeerError> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(bad_answer(
            peer,
            format!("{other:?} where an acknowledgement was due"),
        )),
    }
}

impl Peers {
    /// Calls from `local`; messaging connections run on `runtime`.
    pub fn new(local: std::net::IpAddr, runtime: tokio::runtime::Handle) -> Peers {
        Peers {
            local,
            channels: Mutex::new(HashMap::new()),
            messenger: Messenger::new(local, runtime),
        }
    }

    /// The messaging layer, for callers that take replies by callback.
    pub fn messenger(&self) -> &Messenger {
        &self.messenger
    }

    fn client(&self, peer: SocketAddr) -> Result<ReplicaClient<Channel>, PeerError> {
        let known = self.channels.lock().get(&peer).cloned();
        let channel = match known {
            Some(channel) => channel,
            None => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{peer}"))
                    .map_err(|e| bad_answer(peer, e))?
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

    /// Applies an encoded mutation on `peer`.
    pub async fn mutate(
        &self,
        peer: SocketAddr,
        mutation: Bytes,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        let reply = self
            .messenger
            .call(peer, Verb::Mutate(mutation), timeout)
            .await?;
        done(peer, reply)
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
        let verb = read_verb(table, key, query, digest_only);
        let reply = self.messenger.call(peer, verb, timeout).await?;
        read_answer(peer, reply, digest_only)
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
        let verb = scan_verb(table, range, resume, row_limit);
        let reply = self.messenger.call(peer, verb, timeout).await?;
        scan_page(peer, reply)
    }

    pub async fn truncate(
        &self,
        peer: SocketAddr,
        table: TableId,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        let reply = self
            .messenger
            .call(peer, Verb::Truncate(table), timeout)
            .await?;
        done(peer, reply)
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

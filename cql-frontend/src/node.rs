//! What the CQL layer knows about its node: identity (for `system.local`),
//! the schema catalog, and the coordinator every request goes through. One
//! [`Node`] is shared by all connections; each connection keeps a
//! [`Session`] (its `USE` keyspace).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::RwLock;
use replication::Coordinator;

use crate::protocol::error::CqlError;
use crate::schema::Catalog;

/// The Cassandra version drivers and cqlsh see: 5.0.0 avoids cqlsh's
/// version warning and selects the drivers' Cassandra 4+ schema parser.
/// Ilion's own version is in `system.local.ilion_version`.
pub const RELEASE_VERSION: &str = "5.0.0";

/// The node's identity as `system.local` shows it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub cluster_name: String,
    pub listen_address: IpAddr,
    pub rpc_address: IpAddr,
    pub native_port: u16,
    pub storage_port: u16,
    pub data_center: String,
    pub rack: String,
    pub host_id: u128,
    pub tokens: Vec<i64>,
    pub generation: i32,
    pub ilion_version: String,
}

impl NodeInfo {
    /// A node on 127.0.0.1 for unit tests.
    pub fn for_tests() -> NodeInfo {
        NodeInfo {
            cluster_name: "Test Cluster".into(),
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rpc_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            native_port: 9042,
            storage_port: 7000,
            data_center: "datacenter1".into(),
            rack: "rack1".into(),
            host_id: 0x1234,
            tokens: vec![0],
            generation: 1,
            ilion_version: "test".into(),
        }
    }
}

/// Shared state of the CQL layer.
#[derive(Debug)]
pub struct Node {
    pub info: NodeInfo,
    pub coordinator: Coordinator,
    pub catalog: RwLock<Catalog>,
    pub prepared: crate::prepared::PreparedCache,
    /// Client events (schema, status and topology changes), fanned out to
    /// connections that REGISTERed for them.
    pub events: tokio::sync::broadcast::Sender<ClientEvent>,
    /// Statement requests running on this node, across all connections.
    pub requests_in_flight: Arc<tokio::sync::Semaphore>,
    /// How clients prove who they are.
    pub authenticator: crate::auth::Authenticator,
    /// Client request and connection metrics.
    pub metrics: crate::metrics::ClientMetrics,
    /// Whether single-partition prepared statements run on the async
    /// workers instead of the blocking pool. Worth it (a thread hand-off
    /// per request costs more than the work) only when a write never waits
    /// for an fsync: the server turns it on in periodic commitlog mode.
    pub inline_execution: std::sync::atomic::AtomicBool,
    /// Traces of recent traced requests (`system_traces`).
    pub traces: crate::traces::TraceStore,
}

/// Statement requests the node runs at once; past it clients get Overloaded.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 4096;

/// Events queued per connection before a slow one misses some.
pub const CLIENT_EVENTS_QUEUED_MAX: usize = 256;

/// An event pushed to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    SchemaChange(crate::results::SchemaChange),
    /// A node went UP or DOWN; `address` is its CQL address and port.
    StatusChange {
        up: bool,
        address: SocketAddr,
    },
    /// A node joined (NEW_NODE) or left (REMOVED_NODE) the ring.
    TopologyChange {
        joined: bool,
        address: SocketAddr,
    },
}

impl ClientEvent {
    /// The REGISTER name of this kind of event.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientEvent::SchemaChange(_) => "SCHEMA_CHANGE",
            ClientEvent::StatusChange { .. } => "STATUS_CHANGE",
            ClientEvent::TopologyChange { .. } => "TOPOLOGY_CHANGE",
        }
    }

    /// The EVENT message body.
    pub fn encode(&self) -> bytes::Bytes {
        let mut w = crate::protocol::primitives::BodyWriter::new();
        w.write_string(self.kind());
        let (change, address) = match self {
            ClientEvent::SchemaChange(change) => {
                change.write(&mut w);
                return w.into_bytes();
            }
            ClientEvent::StatusChange { up, address } => (if *up { "UP" } else { "DOWN" }, address),
            ClientEvent::TopologyChange { joined, address } => {
                (if *joined { "NEW_NODE" } else { "REMOVED_NODE" }, address)
            }
        };
        w.write_string(change);
        let ip: Vec<u8> = match address.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        w.write_byte(ip.len() as u8);
        for byte in ip {
            w.write_byte(byte);
        }
        w.write_int(i32::from(address.port()));
        w.into_bytes()
    }
}

impl Node {
    /// Loads the schema catalog and sets up roles (the default superuser
    /// on a node that has none).
    pub fn open(
        info: NodeInfo,
        coordinator: Coordinator,
        authenticator: crate::auth::Authenticator,
        prepared_cache_bytes: usize,
    ) -> Result<Arc<Node>, CqlError> {
        let catalog = Catalog::load(coordinator.engine())?;
        crate::auth::setup(coordinator.engine())?;
        Ok(Arc::new(Node {
            info,
            coordinator,
            catalog: RwLock::new(catalog),
            prepared: crate::prepared::PreparedCache::new(prepared_cache_bytes),
            events: tokio::sync::broadcast::channel(CLIENT_EVENTS_QUEUED_MAX).0,
            requests_in_flight: Arc::new(tokio::sync::Semaphore::new(REQUESTS_IN_FLIGHT_MAX)),
            authenticator,
            metrics: crate::metrics::ClientMetrics::new()
                .map_err(|e| CqlError::Server(format!("cannot set up metrics: {e}")))?,
            inline_execution: std::sync::atomic::AtomicBool::new(false),
            traces: crate::traces::TraceStore::default(),
        }))
    }
}

/// One connection's session state.
#[derive(Debug, Default, Clone)]
pub struct Session {
    pub keyspace: Option<String>,
    /// The role this connection logged in as (`None` without authentication).
    pub user: Option<String>,
    /// The client's address (for traces).
    pub client: Option<std::net::IpAddr>,
}

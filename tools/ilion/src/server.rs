//! `ilion server`: assembles a node from its configuration and runs it until
//! SIGTERM or SIGINT.
//!
//! Start-up order: configuration is validated and the machine checked (data
//! directories writable, client port free) before anything is opened, so a
//! bad setting stops the node with a message naming the key. Then the storage
//! engine opens (replaying the commitlog) and the client port listens.
//! Shutdown stops accepting clients, flushes the engine, and returns.

use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServerArgs;
use crate::config::{Authenticator, CommitlogSync, Config, ConfigError, RawConfig};
use std::sync::Arc;

use cql_frontend::limits::ClientLimits;
use cql_frontend::node::{Node, NodeInfo};
use cql_frontend::schema::format_uuid;
use gossip::{keys, GossipConfig, GossipHandle};
use replication::hints::Hints;
use replication::internode::{Peers, ReplicaService, SchemaSlot, SchemaStore};
use replication::messaging::inbound::ReplicaHandler;
use replication::topology::Topology;
use replication::{Coordinator, Remote};
use storage_lsm::log_limit::RateLimitedLog;
use storage_lsm::{Engine, EngineConfig, SyncMode};

/// Longest time a connection task may take to notice shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Merges the configuration layers: file, then environment, then flags.
pub fn load_config(
    args: &ServerArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let file = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let env = RawConfig::from_env(env)?;
    Config::resolve(file.overridden_by(env).overridden_by(args.as_layer()))
}

/// Runs a node until a shutdown signal. Returns after a clean shutdown.
pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %config, "starting Ilion node");
    config.check_environment()?;
    let engine = Arc::new(open_engine(&config).await?);
    let data_dir = config
        .data_file_directories
        .first()
        .context("no data directory configured")?;
    let (host_id, new_node) = crate::identity::load_or_create_host_id(data_dir)?;
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i32);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let schema_slot = SchemaSlot::default();
    let replica = ReplicaService::server(schema_slot.clone());
    let replica_handler = Arc::new(ReplicaHandler::new(
        engine.clone(),
        matches!(config.commitlog_sync, CommitlogSync::Periodic { .. }),
    ));
    let gossip = start_gossip(
        &config,
        host_id,
        generation,
        Internode {
            schema: replica,
            replica: replica_handler,
        },
        shutdown_rx.clone(),
    )
    .await?;
    let tokens =
        crate::identity::tokens(data_dir, &gossip, config.num_tokens, host_id, new_node).await?;
    gossip.set_local(keys::TOKENS, gossip::encode_tokens(&tokens));
    gossip.set_local(keys::STATUS, "NORMAL");
    let topology = Topology::follow(gossip.clone());
    let hints = Arc::new(
        Hints::open(engine.clone(), config.max_hint_window).context("cannot open the hints")?,
    );
    let peers = Arc::new(Peers::new(
        config.listen_address,
        tokio::runtime::Handle::current(),
    ));
    let coordinator = Coordinator::clustered(
        engine.clone(),
        config.request_timeouts,
        topology.clone(),
        Remote {
            peers: peers.clone(),
            hints: hints.clone(),
            runtime: tokio::runtime::Handle::current(),
        },
    );
    let node = open_node(
        &config,
        coordinator,
        Identity {
            host_id,
            generation,
            tokens,
        },
    )?;
    let store: Arc<dyn SchemaStore> = node.clone();
    let _ = schema_slot.set(store);
    tokio::spawn(publish_changing_states(
        gossip.clone(),
        node.clone(),
        shutdown_rx.clone(),
    ));
    tokio::spawn(cql_frontend::migration::keep_in_agreement(
        node.clone(),
        shutdown_rx.clone(),
    ));
    tokio::spawn(hints.replay_forever(topology, peers, config.request_timeouts.write));
    tokio::spawn(tell_clients_of_membership(
        gossip.clone(),
        node.clone(),
        shutdown_rx.clone(),
    ));
    node.inline_execution.store(
        matches!(config.commitlog_sync, CommitlogSync::Periodic { .. }),
        std::sync::atomic::Ordering::Relaxed,
    );
    let addr = config.native_address();
    let listener = bind("native_transport_port", addr).await?;
    let metrics_addr = std::net::SocketAddr::new(config.listen_address, config.metrics_port);
    let metrics_listener = bind("metrics_port", metrics_addr).await?;
    let admin_addr = std::net::SocketAddr::new(config.admin_address, config.admin_port);
    let admin_listener = bind("admin_port", admin_addr).await?;
    // Stops the CQL port: at shutdown, or earlier by `nodetool drain`.
    let (stop_clients_tx, stop_clients_rx) = watch::channel(false);
    let readiness = Arc::new(crate::http::Readiness::new(gossip.clone()));
    let admin = crate::admin::AdminService::new(
        node.clone(),
        gossip.clone(),
        readiness.clone(),
        config.endpoint_snitch.class_name(),
        stop_clients_tx.clone(),
    );
    tokio::spawn(serve_grpc(
        admin_listener,
        tonic::transport::Server::builder()
            .add_service(crate::admin::proto::admin_server::AdminServer::new(admin)),
        shutdown_rx.clone(),
        "admin",
    ));
    tracing::info!(%admin_addr, "serving the admin API (nodetool) over gRPC");
    tokio::spawn(crate::http::serve(
        metrics_listener,
        node.clone(),
        readiness.clone(),
        shutdown_rx.clone(),
    ));
    tracing::info!(%metrics_addr, "serving metrics and probes over HTTP");
    tracing::info!(%addr, "listening for CQL clients");
    let limits = ClientLimits::new(config.client_limits);
    let accept = tokio::spawn(accept_loop(listener, node, limits, stop_clients_rx));
    readiness
        .serving_cql
        .store(true, std::sync::atomic::Ordering::Release);
    let signal = wait_for_shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    readiness
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    let _ = stop_clients_tx.send(true);
    if gossip.is_running() {
        gossip.stop().await;
    }
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, accept).await {
        Ok(joined) => joined.context("accept loop failed")?,
        Err(_) => tracing::warn!("connections did not close in time; leaving them"),
    }
    let flushed = tokio::task::spawn_blocking(move || engine.shutdown()).await;
    match flushed {
        Ok(Ok(())) => tracing::info!("storage engine flushed and closed"),
        Ok(Err(error)) => {
            tracing::error!(%error, "storage engine did not close cleanly; the commitlog will be replayed at the next start")
        }
        Err(error) => tracing::error!(%error, "storage engine shutdown task failed"),
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Listens on `addr`; a port in use is a configuration error naming `key`.
async fn bind(key: &'static str, addr: std::net::SocketAddr) -> Result<TcpListener, ConfigError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ConfigError::PortUnavailable { key, addr, source })
}

/// What the internode port serves besides gossip.
struct Internode {
    /// The schema verbs (gRPC).
    schema: replication::internode::proto::replica_server::ReplicaServer<ReplicaService>,
    /// The hot replication verbs (messaging).
    replica: Arc<ReplicaHandler>,
}

/// Binds the internode port (listen_address:storage_port), serves gossip and
/// the replication verbs on it, publishes this node's application states
/// and starts the rounds.
async fn start_gossip(
    config: &Config,
    host_id: u128,
    generation: i32,
    internode: Internode,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<GossipHandle> {
    let addr = std::net::SocketAddr::new(config.listen_address, config.storage_port);
    let listener = bind("storage_port", addr).await?;
    let gossip = GossipHandle::new(GossipConfig {
        cluster_name: config.cluster_name.clone(),
        local: addr,
        generation,
        seeds: config.seeds.clone(),
        phi_convict_threshold: config.phi_convict_threshold,
    });
    for (key, value) in [
        // NORMAL once the node has its tokens.
        (keys::STATUS, "JOINING".to_owned()),
        (keys::HOST_ID, format_uuid(host_id)),
        (keys::DC, config.dc.clone()),
        (keys::RACK, config.rack.clone()),
        (keys::RPC_ADDRESS, config.rpc_address.to_string()),
        (keys::NATIVE_PORT, config.native_transport_port.to_string()),
        (
            keys::RELEASE_VERSION,
            cql_frontend::node::RELEASE_VERSION.to_owned(),
        ),
        (keys::RPC_READY, "true".to_owned()),
    ] {
        gossip.set_local(key, value);
    }
    tokio::spawn(serve_internode(
        listener,
        tonic::transport::Server::builder()
            .add_service(gossip.service())
            .add_service(internode.schema),
        internode.replica,
        shutdown,
    ));
    gossip.start();
    tracing::info!(%addr, seeds = ?config.seeds, "gossiping on the internode port");
    Ok(gossip)
}

/// Keeps SCHEMA (within a fifth of a second of a change, so drivers'
/// schema agreement checks pass quickly) and LOAD (every ten seconds)
/// current in gossip.
async fn publish_changing_states(
    gossip: GossipHandle,
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
) {
    const TICK: Duration = Duration::from_millis(200);
    const LOAD_EVERY_TICKS: u64 = 50;
    let mut ticks = tokio::time::interval(TICK);
    let mut count: u64 = 0;
    let mut published = None;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticks.tick() => {}
        }
        let version = node.catalog.read().version;
        if published != Some(version) {
            gossip.set_local(keys::SCHEMA, format_uuid(version));
            gossip.spread_now();
            published = Some(version);
        }
        if count.is_multiple_of(LOAD_EVERY_TICKS) {
            let (load, _) = node.coordinator.engine().load();
            gossip.set_local(keys::LOAD, load.to_string());
        }
        count += 1;
    }
}

/// Tells registered clients when a node goes up or down (STATUS_CHANGE)
/// and when a new node joins the ring (TOPOLOGY_CHANGE), with the address
/// they reach it on.
async fn tell_clients_of_membership(
    gossip: GossipHandle,
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
) {
    use cql_frontend::node::ClientEvent;
    let mut events = gossip.subscribe();
    let normal = |view: &gossip::EndpointView| view.state.value(keys::STATUS) == Some("NORMAL");
    let mut in_ring: std::collections::HashSet<std::net::SocketAddr> = gossip
        .endpoints()
        .iter()
        .filter(|v| normal(v))
        .map(|v| v.endpoint)
        .collect();
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            event = events.recv() => match event {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        let endpoint = match &event {
            gossip::Event::Up(e) | gossip::Event::Down(e) | gossip::Event::Changed(e, _) => *e,
            _ => continue,
        };
        let Some(view) = gossip
            .endpoints()
            .into_iter()
            .find(|v| v.endpoint == endpoint)
        else {
            continue;
        };
        let address = std::net::SocketAddr::new(
            view.state
                .value(keys::RPC_ADDRESS)
                .and_then(|a| a.parse().ok())
                .unwrap_or(endpoint.ip()),
            view.state
                .value(keys::NATIVE_PORT)
                .and_then(|p| p.parse().ok())
                .unwrap_or(crate::config::defaults::NATIVE_TRANSPORT_PORT),
        );
        let client_event = match event {
            gossip::Event::Up(_) => ClientEvent::StatusChange { up: true, address },
            gossip::Event::Down(_) => ClientEvent::StatusChange { up: false, address },
            _ if normal(&view) && in_ring.insert(endpoint) => ClientEvent::TopologyChange {
                joined: true,
                address,
            },
            _ => continue,
        };
        let _ = node.events.send(client_event);
    }
}

/// Open connections of the admin API, at most, in all and from one
/// address (nodetool opens one per command).
const ADMIN_CONNECTIONS_MAX: usize = 256;
const ADMIN_CONNECTIONS_PER_SOURCE_MAX: usize = 64;
/// Open gRPC connections on the internode port (gossip, schema), at most,
/// in all and from one address (a peer keeps a few).
const INTERNODE_GRPC_CONNECTIONS_MAX: usize = 1024;
const INTERNODE_GRPC_CONNECTIONS_PER_SOURCE_MAX: usize = 32;
/// Messaging connections from one address, at most (a peer keeps one, a
/// few while reconnecting); in all, `inbound::CONNECTIONS_MAX`.
const MESSAGING_CONNECTIONS_PER_SOURCE_MAX: usize = 16;

/// Serves a gRPC router on `listener` until `shutdown` turns true, with at
/// most [`ADMIN_CONNECTIONS_MAX`] connections open.
async fn serve_grpc(
    listener: TcpListener,
    router: tonic::transport::server::Router,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
) {
    let limit = crate::conn_limit::ConnectionLimit::new(
        name,
        ADMIN_CONNECTIONS_MAX,
        ADMIN_CONNECTIONS_PER_SOURCE_MAX,
    );
    let (admitted, incoming) = tokio::sync::mpsc::channel::<std::io::Result<_>>(64);
    let mut accepting = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = async { accepting.wait_for(|stop| *stop).await.is_ok() } => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(service = name, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if let Some(stream) = limit.admit(stream) {
                if admitted.send(Ok(stream)).await.is_err() {
                    return;
                }
            }
        }
    });
    let incoming = tokio_stream::wrappers::ReceiverStream::new(incoming);
    let result = router
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = result {
        tracing::error!(service = name, %error, "gRPC service stopped");
    }
}

/// How long a new internode connection may take to say what it is.
const INTERNODE_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the internode port: connections that open with the messaging
/// magic go to the replica handler, the rest (HTTP/2) to gRPC.
async fn serve_internode(
    listener: TcpListener,
    router: tonic::transport::server::Router,
    replica: Arc<ReplicaHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (grpc_tx, grpc_rx) =
        tokio::sync::mpsc::channel::<std::io::Result<crate::conn_limit::Permitted>>(64);
    let grpc_limit = crate::conn_limit::ConnectionLimit::new(
        "internode gRPC",
        INTERNODE_GRPC_CONNECTIONS_MAX,
        INTERNODE_GRPC_CONNECTIONS_PER_SOURCE_MAX,
    );
    let messaging = crate::conn_limit::ConnectionLimit::new(
        "messaging",
        replication::messaging::inbound::CONNECTIONS_MAX,
        MESSAGING_CONNECTIONS_PER_SOURCE_MAX,
    );
    let mut grpc_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::ReceiverStream::new(grpc_rx);
        let result = router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = grpc_shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!(service = "internode", %error, "gRPC service stopped");
        }
    });
    loop {
        let stream = tokio::select! {
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "internode accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (grpc_tx, replica) = (grpc_tx.clone(), replica.clone());
        let messaging = messaging.clone();
        let grpc_limit = grpc_limit.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut hello = [0u8; 4];
            let peeked = tokio::time::timeout(INTERNODE_HELLO_TIMEOUT, async {
                loop {
                    match stream.peek(&mut hello).await {
                        Ok(n) if n >= hello.len() => return true,
                        Ok(0) | Err(_) => return false,
                        Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            })
            .await;
            if peeked != Ok(true) {
                return;
            }
            if &hello != replication::messaging::frame::MAGIC {
                if let Some(stream) = grpc_limit.admit(stream) {
                    let _ = grpc_tx.send(Ok(stream)).await;
                }
                return;
            }
            let Some(_place) = stream
                .peer_addr()
                .ok()
                .and_then(|peer| messaging.admit_from(peer.ip()))
            else {
                return;
            };
            let mut stream = stream;
            let mut header = [0u8; 5];
            if stream.read_exact(&mut header).await.is_err() {
                return;
            }
            if header[4] != replication::messaging::frame::VERSION {
                tracing::warn!(
                    version = header[4],
                    "a peer speaks another messaging version; closing its connection"
                );
                return;
            }
            replication::messaging::inbound::serve(stream, replica).await;
        });
    }
}

/// Who this node is in the ring.
struct Identity {
    host_id: u128,
    generation: i32,
    tokens: Vec<i64>,
}

/// The CQL layer's view of this node: identity, schema, coordinator.
fn open_node(
    config: &Config,
    coordinator: Coordinator,
    identity: Identity,
) -> anyhow::Result<Arc<Node>> {
    let Identity {
        host_id,
        generation,
        tokens,
    } = identity;
    let info = NodeInfo {
        cluster_name: config.cluster_name.clone(),
        listen_address: config.listen_address,
        rpc_address: config.rpc_address,
        native_port: config.native_transport_port,
        storage_port: config.storage_port,
        data_center: config.dc.clone(),
        rack: config.rack.clone(),
        host_id,
        tokens,
        generation,
        ilion_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let authenticator = match config.authenticator {
        Authenticator::AllowAll => cql_frontend::auth::Authenticator::AllowAll,
        Authenticator::Password => cql_frontend::auth::Authenticator::Password,
    };
    let node = Node::open(
        info,
        coordinator,
        authenticator,
        config.prepared_statements_cache_bytes,
    )
    .map_err(|e| anyhow::anyhow!("cannot load the schema and roles: {e}"))?;
    Ok(node)
}

/// Opens the storage engine (replaying the commitlog) off the async threads.
async fn open_engine(config: &Config) -> anyhow::Result<Engine> {
    let [data_dir] = config.data_file_directories.as_slice() else {
        return Err(ConfigError::Invalid {
            key: "data_file_directories",
            message: "more than one directory is not yet supported; give exactly one".into(),
        }
        .into());
    };
    let mut engine_config = EngineConfig::new(data_dir, &config.commitlog_directory);
    engine_config.sync = match config.commitlog_sync {
        CommitlogSync::Periodic { period } => SyncMode::Periodic(period),
        CommitlogSync::Batch => SyncMode::Batch,
    };
    engine_config.commitlog_replay = config.commit_failure_policy;
    engine_config.commitlog_segment_size_bytes = config.commitlog_segment_size_bytes;
    let started = std::time::Instant::now();
    let engine = tokio::task::spawn_blocking(move || Engine::open(engine_config))
        .await
        .context("storage engine start-up task failed")?
        .map_err(|error| match error {
            storage_lsm::Error::CommitlogDamaged { .. } => anyhow::anyhow!(
                "{error}. Refusing to start: replaying past the damage would lose the damaged \
                 writes silently. Restore the segment, or set commit_failure_policy: ignore \
                 (ILION_COMMIT_FAILURE_POLICY=ignore) to skip only the damaged record and replay \
                 every record after it"
            ),
            error => anyhow::Error::new(error).context("cannot open the storage engine"),
        })?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        tables = engine.table_ids().len(),
        replayed_mutations = engine.replay.mutations,
        "storage engine open"
    );
    for (path, offset, reason) in &engine.replay.damaged {
        tracing::error!(path = %path.display(), offset, %reason, "damaged commitlog segment set aside");
    }
    Ok(engine)
}

async fn wait_for_shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn accept_loop(
    listener: TcpListener,
    node: Arc<Node>,
    limits: Arc<ClientLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut refusals = RateLimitedLog::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admission = match limits.admit(peer.ip()) {
                        Ok(admission) => admission,
                        Err(refusal) => {
                            if let Some(also) = refusals.should_log() {
                                tracing::warn!(%peer, %refusal, refused_since_last_log = also, "client connection refused");
                            }
                            continue;
                        }
                    };
                    let shutdown = shutdown.clone();
                    let node = node.clone();
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "client connected");
                        cql_frontend::transport::serve_connection(stream, node, admission, shutdown)
                            .await;
                    });
                }
                Err(error) => {
                    if let Some(also) = refusals.should_log() {
                        tracing::warn!(%error, failed_since_last_log = also, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

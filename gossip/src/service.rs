//! The network side of gossip: the tonic service that answers SYN and ACK2
//! on the internode port, and the task that runs a round every second. Each
//! exchange runs in its own task under a timeout, so a slow or dead peer
//! never holds up gossip with the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::broadcast;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::core::{Ack, Ack2, Event, GossipConfig, Gossiper, Syn, ECHO_INTERVAL};
use crate::state::{Digest, Endpoint, EndpointState, VersionedValue};
use crate::EndpointView;

/// The generated messages, server and client of `proto/gossip.proto`.
#[allow(clippy::all)]
pub mod proto {
    tonic::include_proto!("ilion.gossip.v1");
}

use proto::gossip_client::GossipClient;
use proto::gossip_server::{Gossip, GossipServer};

/// Time between gossip rounds.
pub const ROUND: Duration = Duration::from_secs(1);
/// Longest a connect or a call to a peer may take.
const CALL_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Membership events buffered for slow subscribers (older ones are dropped).
const EVENTS_MAX: usize = 1_024;

struct Inner {
    core: Mutex<Gossiper>,
    events: broadcast::Sender<Event>,
    channels: Mutex<HashMap<Endpoint, Channel>>,
    stopped: AtomicBool,
}

/// A running gossiper, shared by the node's parts.
#[derive(Clone)]
pub struct GossipHandle {
    inner: Arc<Inner>,
}

impl GossipHandle {
    pub fn new(config: GossipConfig) -> GossipHandle {
        let (events, _) = broadcast::channel(EVENTS_MAX);
        GossipHandle {
            inner: Arc::new(Inner {
                core: Mutex::new(Gossiper::new(config)),
                events,
                channels: Mutex::new(HashMap::new()),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Sets one of this node's application states.
    pub fn set_local(&self, key: &str, value: impl Into<String>) {
        self.inner.core.lock().set_local(key, value);
    }

    /// Every known endpoint, this node first.
    pub fn endpoints(&self) -> Vec<EndpointView> {
        self.inner.core.lock().endpoints()
    }

    /// Membership changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Whether a seed other than this node is configured (a node that is
    /// its own only seed starts a new cluster).
    pub fn has_other_seeds(&self) -> bool {
        self.inner.core.lock().has_other_seeds()
    }

    pub fn is_running(&self) -> bool {
        !self.inner.stopped.load(Ordering::Acquire)
    }

    /// The service to add to the internode gRPC server.
    pub fn service(&self) -> GossipServer<GossipService> {
        GossipServer::new(GossipService {
            handle: self.clone(),
        })
    }

    /// Starts the rounds (once a second) and the echoes to live peers (twice
    /// a second), until [`GossipHandle::stop`].
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut rounds = tokio::time::interval(ROUND);
            rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while handle.is_running() {
                rounds.tick().await;
                if !handle.is_running() {
                    break;
                }
                let syns = {
                    let mut core = handle.inner.core.lock();
                    let mut rng = rand::thread_rng();
                    let syns = core.tick(Instant::now(), &mut |n| rng.gen_range(0..n.max(1)));
                    handle.publish(&mut core);
                    syns
                };
                for (target, syn) in syns {
                    tokio::spawn(handle.clone().exchange(target, syn));
                }
            }
        });
        let handle = self.clone();
        tokio::spawn(async move {
            let mut beats = tokio::time::interval(ECHO_INTERVAL);
            beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while handle.is_running() {
                beats.tick().await;
                let (from, generation, targets) = {
                    let core = handle.inner.core.lock();
                    (
                        core.local_endpoint(),
                        core.generation(),
                        core.echo_targets(),
                    )
                };
                for target in targets {
                    let Ok(channel) = handle.channel(target) else {
                        continue;
                    };
                    let message = proto::EchoMessage {
                        from: from.to_string(),
                        generation,
                    };
                    tokio::spawn(async move {
                        let mut client = GossipClient::new(channel);
                        let _ = tokio::time::timeout(CALL_TIMEOUT, client.echo(message)).await;
                    });
                }
            }
        })
    }

    /// Gossips with every live peer now (after a change others should see
    /// at once, such as a new schema version), without waiting for answers.
    pub fn spread_now(&self) {
        if !self.is_running() {
            return;
        }
        let syns = self.inner.core.lock().syns_to_live_peers();
        for (target, syn) in syns {
            tokio::spawn(self.clone().exchange(target, syn));
        }
    }

    /// Stops gossiping: tells the live peers this node shuts down (so they
    /// mark it down at once) and refuses further exchanges.
    pub async fn stop(&self) {
        let syns = self.inner.core.lock().announce_shutdown();
        let exchanges: Vec<_> = syns
            .into_iter()
            .map(|(target, syn)| tokio::spawn(self.clone().exchange(target, syn)))
            .collect();
        for exchange in exchanges {
            let _ = tokio::time::timeout(CALL_TIMEOUT * 2, exchange).await;
        }
        self.inner.stopped.store(true, Ordering::Release);
    }

    fn publish(&self, core: &mut Gossiper) {
        for event in core.take_events() {
            match &event {
                Event::Up(endpoint) => tracing::info!(%endpoint, "endpoint is UP"),
                Event::Down(endpoint) => tracing::warn!(%endpoint, "endpoint is DOWN"),
                Event::Joined(endpoint) => tracing::info!(%endpoint, "new endpoint"),
                Event::Restarted(endpoint) => tracing::info!(%endpoint, "endpoint restarted"),
                Event::Changed(..) => {}
            }
            let _ = self.inner.events.send(event);
        }
    }

    fn channel(&self, target: Endpoint) -> Result<Channel, tonic::transport::Error> {
        if let Some(channel) = self.inner.channels.lock().get(&target) {
            return Ok(channel.clone());
        }
        let local = self.inner.core.lock().local_endpoint().ip();
        // Connections leave from this node's own address (as Cassandra's
        // do), so a firewall rule between two nodes' addresses cuts them.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))?
            .local_address(Some(local))
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        self.inner.channels.lock().insert(target, channel.clone());
        Ok(channel)
    }

    /// One SYN → ACK → ACK2 exchange with `target`.
    async fn exchange(self, target: Endpoint, syn: Syn) {
        let Ok(channel) = self.channel(target) else {
            return;
        };
        let mut client = GossipClient::new(channel);
        let call = tokio::time::timeout(CALL_TIMEOUT, client.syn(syn_to_proto(&syn)));
        let ack = match call.await {
            Ok(Ok(ack)) => ack_from_proto(&ack.into_inner()),
            Ok(Err(status)) => {
                tracing::debug!(%target, %status, "gossip SYN refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%target, "gossip SYN timed out");
                return;
            }
        };
        let ack2 = {
            let mut core = self.inner.core.lock();
            let ack2 = core.handle_ack(target, &ack, Instant::now());
            self.publish(&mut core);
            ack2
        };
        let message = proto::Ack2Message {
            from: ack2.from.to_string(),
            states: states_to_proto(&ack2.states),
        };
        let _ = tokio::time::timeout(CALL_TIMEOUT, client.ack2(message)).await;
    }
}

/// Answers peers' SYN and ACK2.
pub struct GossipService {
    handle: GossipHandle,
}

fn refused_when_stopped(handle: &GossipHandle) -> Result<(), Status> {
    if handle.is_running() {
        Ok(())
    } else {
        Err(Status::unavailable("this node has stopped gossiping"))
    }
}

#[tonic::async_trait]
impl Gossip for GossipService {
    async fn syn(
        &self,
        request: Request<proto::SynMessage>,
    ) -> Result<Response<proto::AckMessage>, Status> {
        refused_when_stopped(&self.handle)?;
        let syn = syn_from_proto(&request.into_inner())?;
        let ack = self
            .handle
            .inner
            .core
            .lock()
            .handle_syn(&syn, Instant::now())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(proto::AckMessage {
            requests: ack.requests.iter().map(digest_to_proto).collect(),
            states: states_to_proto(&ack.states),
        }))
    }

    async fn echo(
        &self,
        request: Request<proto::EchoMessage>,
    ) -> Result<Response<proto::EchoReply>, Status> {
        refused_when_stopped(&self.handle)?;
        let message = request.into_inner();
        let from = parse_endpoint(&message.from)?;
        self.handle
            .inner
            .core
            .lock()
            .handle_echo(from, message.generation, Instant::now());
        Ok(Response::new(proto::EchoReply {}))
    }

    async fn ack2(
        &self,
        request: Request<proto::Ack2Message>,
    ) -> Result<Response<proto::Ack2Reply>, Status> {
        refused_when_stopped(&self.handle)?;
        let message = request.into_inner();
        let from = parse_endpoint(&message.from)?;
        let ack2 = Ack2 {
            from,
            states: states_from_proto(&message.states),
        };
        let mut core = self.handle.inner.core.lock();
        core.handle_ack2(&ack2, Instant::now());
        self.handle.publish(&mut core);
        Ok(Response::new(proto::Ack2Reply {}))
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not an endpoint (host:port)")))
}

fn digest_to_proto(digest: &Digest) -> proto::Digest {
    proto::Digest {
        endpoint: digest.endpoint.to_string(),
        generation: digest.generation,
        max_version: digest.max_version,
    }
}

/// A peer's digest; None when its endpoint does not parse.
fn digest_from_proto(digest: &proto::Digest) -> Option<Digest> {
    Some(Digest {
        endpoint: digest.endpoint.parse().ok()?,
        generation: digest.generation,
        max_version: digest.max_version,
    })
}

fn syn_to_proto(syn: &Syn) -> proto::SynMessage {
    proto::SynMessage {
        cluster_name: syn.cluster_name.clone(),
        from: syn.from.to_string(),
        digests: syn.digests.iter().map(digest_to_proto).collect(),
    }
}

fn syn_from_proto(message: &proto::SynMessage) -> Result<Syn, Status> {
    Ok(Syn {
        cluster_name: message.cluster_name.clone(),
        from: parse_endpoint(&message.from)?,
        digests: message
            .digests
            .iter()
            .filter_map(digest_from_proto)
            .collect(),
    })
}

fn states_to_proto(states: &[(Endpoint, EndpointState)]) -> Vec<proto::EndpointState> {
    states
        .iter()
        .map(|(endpoint, state)| proto::EndpointState {
            endpoint: endpoint.to_string(),
            generation: state.generation,
            heartbeat: state.heartbeat,
            states: state
                .states
                .iter()
                .map(|(name, v)| proto::ApplicationState {
                    name: name.clone(),
                    value: v.value.clone(),
                    version: v.version,
                })
                .collect(),
        })
        .collect()
}

/// Peer states; entries with an unreadable endpoint are skipped.
fn states_from_proto(states: &[proto::EndpointState]) -> Vec<(Endpoint, EndpointState)> {
    states
        .iter()
        .filter_map(|s| {
            let endpoint: Endpoint = s.endpoint.parse().ok()?;
            Some((
                endpoint,
                EndpointState {
                    generation: s.generation,
                    heartbeat: s.heartbeat,
                    states: s
                        .states
                        .iter()
                        .map(|a| {
                            (
                                a.name.clone(),
                                VersionedValue {
                                    value: a.value.clone(),
                                    version: a.version,
                                },
                            )
                        })
                        .collect(),
                },
            ))
        })
        .collect()
}

fn ack_from_proto(message: &proto::AckMessage) -> Ack {
    Ack {
        requests: message
            .requests
            .iter()
            .filter_map(digest_from_proto)
            .collect(),
        states: states_from_proto(&message.states),
    }
}

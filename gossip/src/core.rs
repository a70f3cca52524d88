//! The gossip protocol without I/O: a [`Gossiper`] is driven by `tick(now)`
//! once a round and by the SYN, ACK and ACK2 messages it receives, and
//! answers with the messages to send. Time comes in as arguments, so tests
//! (and a simulation) control it.
//!
//! One exchange: A sends SYN (a digest of every endpoint A knows) to B; B
//! answers ACK with the states A lacks and digests of what B lacks; A sends
//! ACK2 with those. A newer generation replaces an endpoint's whole state
//! (the node restarted); within a generation, higher versions win.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::detector::ArrivalWindow;
use crate::state::{Digest, Endpoint, EndpointState, VersionedValue};

/// Longest gap between two of our own rounds before we distrust our own
/// failure detector (we were paused, not them).
const LOCAL_PAUSE_MAX: Duration = Duration::from_secs(5);
/// How often a node tells each live peer it is alive, straight to it. The
/// exchange spreads heartbeats once a round, which makes the mean interval
/// about a second and conviction at phi 8 take ~18 s; echoes twice a
/// second bring it to ~9 s.
pub const ECHO_INTERVAL: Duration = Duration::from_millis(500);
/// The STATUS of a node that is stopping (drained or shut down).
pub const SHUTDOWN: &str = "shutdown";

/// A change in membership, for the ring, the coordinator and client events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// First heard of this endpoint.
    Joined(Endpoint),
    /// The endpoint restarted (a new generation).
    Restarted(Endpoint),
    Up(Endpoint),
    Down(Endpoint),
    /// An application state of the endpoint changed.
    Changed(Endpoint, String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Syn {
    pub cluster_name: String,
    pub from: Endpoint,
    pub digests: Vec<Digest>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// What the SYN's sender should send back: states newer than these.
    pub requests: Vec<Digest>,
    pub states: Vec<(Endpoint, EndpointState)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ack2 {
    pub from: Endpoint,
    pub states: Vec<(Endpoint, EndpointState)>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("cluster name mismatch: {from} is in cluster {theirs:?}, this node in {ours:?}")]
    ClusterNameMismatch {
        from: Endpoint,
        theirs: String,
        ours: String,
    },
}

/// An endpoint as this node sees it.
#[derive(Debug, Clone)]
struct Peer {
    state: EndpointState,
    up: bool,
    arrivals: ArrivalWindow,
}

/// A snapshot of one endpoint for readers (nodetool, metrics, the ring).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointView {
    pub endpoint: Endpoint,
    pub up: bool,
    pub state: EndpointState,
    pub is_local: bool,
}

/// How this node gossips.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub cluster_name: String,
    pub local: Endpoint,
    pub generation: i32,
    pub seeds: Vec<Endpoint>,
    pub phi_convict_threshold: f64,
}

/// One node's gossip state machine.
#[derive(Debug)]
pub struct Gossiper {
    config: GossipConfig,
    local: EndpointState,
    /// The last version handed out (heartbeats and states share it).
    version: u64,
    peers: HashMap<Endpoint, Peer>,
    last_tick: Option<Instant>,
    events: Vec<Event>,
}

impl Gossiper {
    pub fn new(config: GossipConfig) -> Gossiper {
        Gossiper {
            local: EndpointState::new(config.generation),
            config,
            version: 0,
            peers: HashMap::new(),
            last_tick: None,
            events: Vec::new(),
        }
    }

    pub fn local_endpoint(&self) -> Endpoint {
        self.config.local
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Sets one of this node's application states (spread from the next round).
    pub fn set_local(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        if self.local.value(key) == Some(value.as_str()) {
            return;
        }
        let version = self.next_version();
        self.local
            .states
            .insert(key.to_owned(), VersionedValue { value, version });
    }

    /// The changes since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Every known endpoint, this node first.
    pub fn endpoints(&self) -> Vec<EndpointView> {
        let mut views = vec![EndpointView {
            endpoint: self.config.local,
            up: true,
            state: self.local.clone(),
            is_local: true,
        }];
        let mut peers: Vec<EndpointView> = self
            .peers
            .iter()
            .map(|(endpoint, peer)| EndpointView {
                endpoint: *endpoint,
                up: peer.up,
                state: peer.state.clone(),
                is_local: false,
            })
            .collect();
        peers.sort_by_key(|v| v.endpoint);
        views.extend(peers);
        views
    }

    fn digests(&self) -> Vec<Digest> {
        std::iter::once(Digest {
            endpoint: self.config.local,
            generation: self.local.generation,
            max_version: self.local.max_version(),
        })
        .chain(self.peers.iter().map(|(endpoint, peer)| Digest {
            endpoint: *endpoint,
            generation: peer.state.generation,
            max_version: peer.state.max_version(),
        }))
        .collect()
    }

    fn state_of(&self, endpoint: &Endpoint) -> Option<&EndpointState> {
        if *endpoint == self.config.local {
            Some(&self.local)
        } else {
            self.peers.get(endpoint).map(|p| &p.state)
        }
    }

    /// One gossip round: beat, judge peers, and pick whom to gossip with.
    /// `pick(n)` returns a random index below `n` (the caller's randomness).
    pub fn tick(
        &mut self,
        now: Instant,
        pick: &mut dyn FnMut(usize) -> usize,
    ) -> Vec<(Endpoint, Syn)> {
        let paused = self
            .last_tick
            .is_some_and(|last| now.saturating_duration_since(last) > LOCAL_PAUSE_MAX);
        self.last_tick = Some(now);
        self.local.heartbeat = self.next_version();
        if !paused {
            self.convict(now);
        }
        let live: Vec<Endpoint> = self
            .peers
            .iter()
            .filter(|(_, p)| p.up)
            .map(|(e, _)| *e)
            .collect();
        let dead: Vec<Endpoint> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.up)
            .map(|(e, _)| *e)
            .collect();
        let seeds: Vec<Endpoint> = self
            .config
            .seeds
            .iter()
            .copied()
            .filter(|s| *s != self.config.local)
            .collect();
        let mut targets: Vec<Endpoint> = Vec::new();
        if let Some(peer) = choose(&live, pick) {
            targets.push(peer);
        }
        // Sometimes an unreachable peer, so a healed partition is noticed.
        if !dead.is_empty() && pick(live.len() + 1) == 0 {
            if let Some(peer) = choose(&dead, pick) {
                targets.push(peer);
            }
        }
        // A seed when no live peer is a seed, or when we know too few.
        let gossiped_to_seed = targets.iter().any(|t| seeds.contains(t));
        if !gossiped_to_seed
            && (live.len() < seeds.len() || pick(live.len() + dead.len() + 1) < seeds.len())
        {
            if let Some(seed) = choose(&seeds, pick) {
                targets.push(seed);
            }
        }
        targets.sort();
        targets.dedup();
        let syn = Syn {
            cluster_name: self.config.cluster_name.clone(),
            from: self.config.local,
            digests: self.digests(),
        };
        targets.into_iter().map(|t| (t, syn.clone())).collect()
    }

    /// Marks this node as shutting down; returns a SYN for every live peer
    /// so they learn it now instead of convicting it later.
    pub fn announce_shutdown(&mut self) -> Vec<(Endpoint, Syn)> {
        self.set_local(crate::state::keys::STATUS, SHUTDOWN);
        self.syns_to_live_peers()
    }

    /// A SYN for every live peer: spreads a change of this node's state now
    /// instead of over the next rounds.
    pub fn syns_to_live_peers(&self) -> Vec<(Endpoint, Syn)> {
        let syn = Syn {
            cluster_name: self.config.cluster_name.clone(),
            from: self.config.local,
            digests: self.digests(),
        };
        self.peers
            .iter()
            .filter(|(_, p)| p.up)
            .map(|(endpoint, _)| (*endpoint, syn.clone()))
            .collect()
    }

    fn convict(&mut self, now: Instant) {
        let threshold = self.config.phi_convict_threshold;
        for (endpoint, peer) in &mut self.peers {
            if peer.up && peer.arrivals.phi(now) > threshold {
                peer.up = false;
                self.events.push(Event::Down(*endpoint));
            }
        }
    }

    fn check_cluster(&self, from: Endpoint, cluster_name: &str) -> Result<(), GossipError> {
        if cluster_name != self.config.cluster_name {
            return Err(GossipError::ClusterNameMismatch {
                from,
                theirs: cluster_name.to_owned(),
                ours: self.config.cluster_name.clone(),
            });
        }
        Ok(())
    }

    /// A message came straight from `endpoint`: evidence it is alive, on
    /// top of the heartbeats others relay.
    fn heard_from(&mut self, endpoint: Endpoint, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&endpoint) {
            peer.arrivals.report(now);
        }
    }

    /// The peers to send a failure-detector echo to (every [`ECHO_INTERVAL`]).
    pub fn echo_targets(&self) -> Vec<Endpoint> {
        self.peers
            .iter()
            .filter(|(_, p)| p.up)
            .map(|(endpoint, _)| *endpoint)
            .collect()
    }

    /// An echo from `from` (of generation `generation`) arrived.
    pub fn handle_echo(&mut self, from: Endpoint, generation: i32, now: Instant) {
        if self
            .peers
            .get(&from)
            .is_some_and(|p| p.state.generation == generation)
        {
            self.heard_from(from, now);
        }
    }

    pub fn has_other_seeds(&self) -> bool {
        self.config.seeds.iter().any(|s| *s != self.config.local)
    }

    pub fn generation(&self) -> i32 {
        self.local.generation
    }

    /// Answers a SYN.
    pub fn handle_syn(&mut self, syn: &Syn, now: Instant) -> Result<Ack, GossipError> {
        self.check_cluster(syn.from, &syn.cluster_name)?;
        self.heard_from(syn.from, now);
        let mut requests = Vec::new();
        let mut states = Vec::new();
        for digest in &syn.digests {
            match self.state_of(&digest.endpoint) {
                None => requests.push(Digest {
                    max_version: 0,
                    ..*digest
                }),
                Some(ours) if ours.generation < digest.generation => requests.push(Digest {
                    max_version: 0,
                    ..*digest
                }),
                Some(ours) if ours.generation > digest.generation => {
                    states.push((digest.endpoint, ours.clone()));
                }
                Some(ours) => {
                    let our_max = ours.max_version();
                    if our_max > digest.max_version {
                        states.push((digest.endpoint, ours.newer_than(digest.max_version)));
                    } else if our_max < digest.max_version {
                        requests.push(Digest {
                            max_version: our_max,
                            ..*digest
                        });
                    }
                }
            }
        }
        // Endpoints the sender has not heard of at all.
        for digest in self.digests() {
            if !syn.digests.iter().any(|d| d.endpoint == digest.endpoint) {
                if let Some(ours) = self.state_of(&digest.endpoint) {
                    states.push((digest.endpoint, ours.clone()));
                }
            }
        }
        Ok(Ack { requests, states })
    }

    /// Takes the ACK `from` sent; returns the ACK2 to send back.
    pub fn handle_ack(&mut self, from: Endpoint, ack: &Ack, now: Instant) -> Ack2 {
        self.heard_from(from, now);
        for (endpoint, state) in &ack.states {
            self.apply(*endpoint, state, now);
        }
        let states = ack
            .requests
            .iter()
            .filter_map(|digest| {
                let ours = self.state_of(&digest.endpoint)?;
                Some(if ours.generation > digest.generation {
                    (digest.endpoint, ours.clone())
                } else {
                    (digest.endpoint, ours.newer_than(digest.max_version))
                })
            })
            .collect();
        Ack2 {
            from: self.config.local,
            states,
        }
    }

    pub fn handle_ack2(&mut self, ack2: &Ack2, now: Instant) {
        self.heard_from(ack2.from, now);
        for (endpoint, state) in &ack2.states {
            self.apply(*endpoint, state, now);
        }
    }

    /// Merges what a peer said of an endpoint.
    fn apply(&mut self, endpoint: Endpoint, remote: &EndpointState, now: Instant) {
        if endpoint == self.config.local {
            return;
        }
        let Some(peer) = self.peers.get_mut(&endpoint) else {
            let up = remote.value(crate::state::keys::STATUS) != Some(SHUTDOWN);
            self.peers.insert(
                endpoint,
                Peer {
                    state: remote.clone(),
                    up,
                    arrivals: ArrivalWindow::new(now),
                },
            );
            self.events.push(Event::Joined(endpoint));
            if up {
                self.events.push(Event::Up(endpoint));
            }
            return;
        };
        if remote.generation < peer.state.generation {
            return;
        }
        if remote.generation > peer.state.generation {
            peer.state = remote.clone();
            peer.arrivals = ArrivalWindow::new(now);
            self.events.push(Event::Restarted(endpoint));
            if !peer.up {
                peer.up = true;
                self.events.push(Event::Up(endpoint));
            }
            return;
        }
        let shut_down =
            |state: &EndpointState| state.value(crate::state::keys::STATUS) == Some(SHUTDOWN);
        if remote.heartbeat > peer.state.heartbeat {
            peer.state.heartbeat = remote.heartbeat;
            peer.arrivals.report(now);
            if !peer.up && !shut_down(remote) && !shut_down(&peer.state) {
                peer.up = true;
                self.events.push(Event::Up(endpoint));
            }
        }
        for (key, value) in &remote.states {
            let newer = peer
                .state
                .states
                .get(key)
                .is_none_or(|ours| ours.version < value.version);
            if newer {
                peer.state.states.insert(key.clone(), value.clone());
                self.events.push(Event::Changed(endpoint, key.clone()));
            }
        }
        if peer.up && shut_down(&peer.state) {
            peer.up = false;
            self.events.push(Event::Down(endpoint));
        }
    }
}

fn choose(candidates: &[Endpoint], pick: &mut dyn FnMut(usize) -> usize) -> Option<Endpoint> {
    if candidates.is_empty() {
        return None;
    }
    candidates
        .get(pick(candidates.len()) % candidates.len())
        .copied()
}

#[cfg(test)]
mod tests {
    //! A small deterministic simulation: nodes exchange messages in memory,
    //! with a seeded random choice of peers and of lost messages.

    use super::*;

    fn endpoint(i: u8) -> Endpoint {
        std::net::SocketAddr::from(([127, 0, 0, i], 7000))
    }

    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }

    fn cluster(n: u8) -> Vec<Gossiper> {
        (1..=n)
            .map(|i| {
                let mut g = Gossiper::new(GossipConfig {
                    cluster_name: "Test Cluster".into(),
                    local: endpoint(i),
                    generation: 100,
                    seeds: vec![endpoint(1)],
                    phi_convict_threshold: 8.0,
                });
                g.set_local("STATUS", "NORMAL");
                g
            })
            .collect()
    }

    /// Runs `rounds` one-second rounds; nodes in `down` neither send nor
    /// answer; each message is lost with probability `loss_percent`.
    fn run(
        nodes: &mut [Gossiper],
        start: Instant,
        rounds: u64,
        down: &[usize],
        loss_percent: usize,
        rng: &mut Lcg,
    ) {
        let count = nodes.len() as u32;
        for round in 0..rounds {
            for i in 0..nodes.len() {
                if down.contains(&i) {
                    continue;
                }
                // Each node's rounds keep their own phase within the second.
                let now = start
                    + Duration::from_secs(round)
                    + Duration::from_millis(1_000) * i as u32 / count;
                for half in [Duration::ZERO, ECHO_INTERVAL] {
                    let from = nodes[i].local_endpoint();
                    let generation = nodes[i].generation();
                    for target in nodes[i].echo_targets() {
                        let Some(j) = nodes.iter().position(|g| g.local_endpoint() == target)
                        else {
                            continue;
                        };
                        if !down.contains(&j) && rng.below(100) >= loss_percent {
                            nodes[j].handle_echo(from, generation, now + half);
                        }
                    }
                }
                let syns = nodes[i].tick(now, &mut |n| rng.below(n));
                for (target, syn) in syns {
                    let Some(j) = nodes.iter().position(|g| g.local_endpoint() == target) else {
                        continue;
                    };
                    if down.contains(&j) || rng.below(100) < loss_percent {
                        continue;
                    }
                    let Ok(ack) = nodes[j].handle_syn(&syn, now) else {
                        continue;
                    };
                    if rng.below(100) < loss_percent {
                        continue;
                    }
                    let ack2 = nodes[i].handle_ack(target, &ack, now);
                    if rng.below(100) < loss_percent {
                        continue;
                    }
                    nodes[j].handle_ack2(&ack2, now);
                }
            }
        }
    }

    fn sees_up(g: &Gossiper) -> Vec<Endpoint> {
        g.endpoints()
            .iter()
            .filter(|v| v.up)
            .map(|v| v.endpoint)
            .collect()
    }

    #[test]
    fn three_nodes_converge_then_notice_a_death_and_a_restart() {
        let mut rng = Lcg(42);
        let mut nodes = cluster(3);
        let start = Instant::now();
        run(&mut nodes, start, 5, &[], 0, &mut rng);
        for g in &nodes {
            assert_eq!(sees_up(g).len(), 3, "{:?}", g.endpoints());
            let events = g.take_events_for_test();
            assert!(events.iter().filter(|e| matches!(e, Event::Up(_))).count() >= 2);
        }
        // Node 3 stops; the others convict it within 15 s.
        let stopped = start + Duration::from_secs(5);
        let mut convicted_after = None;
        for second in 0..20 {
            run(
                &mut nodes,
                stopped + Duration::from_secs(second),
                1,
                &[2],
                0,
                &mut rng,
            );
            if nodes[..2]
                .iter()
                .all(|g| !sees_up(g).contains(&endpoint(3)))
            {
                convicted_after = Some(second);
                break;
            }
        }
        let after = convicted_after.unwrap_or(u64::MAX);
        assert!(
            (5..=12).contains(&after),
            "node 3 seen down after {after} s"
        );
        // It comes back with a new generation and is seen up again.
        let mut restarted = Gossiper::new(GossipConfig {
            generation: 200,
            ..nodes[2].config.clone()
        });
        restarted.set_local("STATUS", "NORMAL");
        nodes[2] = restarted;
        let back = stopped + Duration::from_secs(30);
        run(&mut nodes, back, 5, &[], 0, &mut rng);
        for g in &nodes[..2] {
            let view = g
                .endpoints()
                .into_iter()
                .find(|v| v.endpoint == endpoint(3));
            assert!(
                view.as_ref()
                    .is_some_and(|v| v.up && v.state.generation == 200),
                "{view:?}"
            );
        }
    }

    #[test]
    fn convergence_survives_message_loss() {
        let mut rng = Lcg(7);
        let mut nodes = cluster(5);
        nodes[4].set_local("SCHEMA", "v2");
        run(&mut nodes, Instant::now(), 20, &[], 30, &mut rng);
        for g in &nodes {
            assert_eq!(sees_up(g).len(), 5, "{:?}", g.endpoints());
            let node5 = g
                .endpoints()
                .into_iter()
                .find(|v| v.endpoint == endpoint(5));
            assert_eq!(
                node5.and_then(|v| v.state.value("SCHEMA").map(str::to_owned)),
                Some("v2".into())
            );
        }
    }

    #[test]
    fn a_shutdown_is_seen_at_once() {
        let mut rng = Lcg(3);
        let mut nodes = cluster(2);
        let start = Instant::now();
        run(&mut nodes, start, 3, &[], 0, &mut rng);
        assert_eq!(sees_up(&nodes[0]).len(), 2);
        let now = start + Duration::from_secs(3);
        for (target, syn) in nodes[1].announce_shutdown() {
            assert_eq!(target, endpoint(1));
            let ack = nodes[0]
                .handle_syn(&syn, now)
                .unwrap_or_else(|e| panic!("{e}"));
            let ack2 = nodes[1].handle_ack(target, &ack, now);
            nodes[0].handle_ack2(&ack2, now);
        }
        assert_eq!(sees_up(&nodes[0]), vec![endpoint(1)]);
    }

    #[test]
    fn another_cluster_is_refused() {
        let mut nodes = cluster(1);
        let syn = Syn {
            cluster_name: "Other".into(),
            from: endpoint(9),
            digests: Vec::new(),
        };
        assert!(matches!(
            nodes[0].handle_syn(&syn, Instant::now()),
            Err(GossipError::ClusterNameMismatch { .. })
        ));
    }

    impl Gossiper {
        fn take_events_for_test(&self) -> Vec<Event> {
            self.events.clone()
        }
    }
}

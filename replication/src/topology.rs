//! Token metadata: which endpoints are in the ring, where they are (dc,
//! rack), which tokens they own and whether they are up, as one immutable
//! [`Ring`] snapshot that requests read without locks held.
//!
//! [`Topology`] keeps the current snapshot. It is rebuilt from gossip on
//! every membership event and once a second, so a request that started on
//! one ring finishes on it even if the ring changes meanwhile (the seam
//! bootstrap and decommission will need).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gossip::{keys, EndpointView, GossipHandle};
use parking_lot::{Mutex, RwLock};

/// One endpoint of the ring.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInfo {
    /// Internode address (listen_address:storage_port): its name in gossip.
    pub address: SocketAddr,
    pub host_id: Option<u128>,
    pub dc: String,
    pub rack: String,
    pub rpc_address: IpAddr,
    pub native_port: u16,
    pub release_version: String,
    /// The schema version it gossips.
    pub schema: Option<u128>,
    pub tokens: Vec<i64>,
    pub up: bool,
    pub is_local: bool,
    /// Since when it has been down, as this node saw it.
    pub down_since: Option<Instant>,
}

/// An immutable view of the ring.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    endpoints: Vec<EndpointInfo>,
    /// `(token, endpoint index)`, sorted by token.
    tokens: Vec<(i64, usize)>,
    local: Option<usize>,
}

impl Ring {
    /// A ring of the given endpoints (tokens taken from each).
    pub fn new(endpoints: Vec<EndpointInfo>) -> Ring {
        let mut tokens: Vec<(i64, usize)> = endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.tokens.iter().map(move |t| (*t, i)))
            .collect();
        tokens.sort_unstable();
        let local = endpoints.iter().position(|e| e.is_local);
        Ring {
            endpoints,
            tokens,
            local,
        }
    }

    pub fn endpoints(&self) -> &[EndpointInfo] {
        &self.endpoints
    }

    pub fn endpoint(&self, index: usize) -> Option<&EndpointInfo> {
        self.endpoints.get(index)
    }

    /// This node's index, if it is in the ring.
    pub fn local(&self) -> Option<usize> {
        self.local
    }

    /// The local data center ("" when this node is not in the ring).
    pub fn local_dc(&self) -> &str {
        self.local
            .and_then(|i| self.endpoints.get(i))
            .map_or("", |e| e.dc.as_str())
    }

    /// Whether every partition's only possible replica is this node.
    pub fn is_local_only(&self) -> bool {
        self.endpoints.iter().all(|e| e.is_local)
    }

    /// Sorted `(token, endpoint index)` pairs.
    pub fn tokens(&self) -> &[(i64, usize)] {
        &self.tokens
    }

    /// Position in [`Ring::tokens`] of the first token at or after `token`
    /// (wrapping to 0): the token whose range `(previous, t]` holds it.
    pub fn owner_position(&self, token: i64) -> usize {
        let position = self.tokens.partition_point(|(t, _)| *t < token);
        if position == self.tokens.len() {
            0
        } else {
            position
        }
    }

    /// Endpoint indices clockwise from the owner of `token`, each ring
    /// token once (an endpoint appears once per vnode).
    pub fn walk(&self, token: i64) -> impl Iterator<Item = usize> + '_ {
        let start = self.owner_position(token);
        self.tokens
            .iter()
            .cycle()
            .skip(start)
            .take(self.tokens.len())
            .map(|(_, endpoint)| *endpoint)
    }

    /// Sorts replica indices closest first: this node, then its data
    /// center, then the rest (stable within each group).
    pub fn by_proximity(&self, replicas: &mut [usize]) {
        let local_dc = self.local_dc().to_owned();
        replicas.sort_by_key(|i| match self.endpoints.get(*i) {
            Some(e) if e.is_local => 0,
            Some(e) if e.dc == local_dc => 1,
            _ => 2,
        });
    }
}

/// A UUID in its text form (`8-4-4-4-12` hex digits).
pub fn parse_uuid(text: &str) -> Option<u128> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32)
        .then(|| u128::from_str_radix(&hex, 16).ok())
        .flatten()
}

/// How long membership can go without a refresh.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The current ring, kept up to date from gossip.
#[derive(Debug)]
pub struct Topology {
    ring: RwLock<Arc<Ring>>,
    down_since: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Topology {
    /// A ring of one endpoint: this node, owning everything (unit tests and
    /// nodes without gossip).
    pub fn local_only() -> Topology {
        let local = EndpointInfo {
            address: SocketAddr::from(([127, 0, 0, 1], 7000)),
            host_id: None,
            dc: "datacenter1".into(),
            rack: "rack1".into(),
            rpc_address: IpAddr::from([127, 0, 0, 1]),
            native_port: 9042,
            release_version: String::new(),
            schema: None,
            tokens: vec![0],
            up: true,
            is_local: true,
            down_since: None,
        };
        Topology {
            ring: RwLock::new(Arc::new(Ring::new(vec![local]))),
            down_since: Mutex::new(HashMap::new()),
        }
    }

    /// The ring as gossip shows it now, refreshed on every membership event
    /// and each second after.
    pub fn follow(gossip: GossipHandle) -> Arc<Topology> {
        let topology = Arc::new(Topology {
            ring: RwLock::new(Arc::new(Ring::default())),
            down_since: Mutex::new(HashMap::new()),
        });
        topology.refresh(&gossip.endpoints());
        let following = Arc::downgrade(&topology);
        let mut events = gossip.subscribe();
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(REFRESH_EVERY, events.recv()).await;
                let Some(topology) = following.upgrade() else {
                    return;
                };
                if !gossip.is_running() {
                    return;
                }
                topology.refresh(&gossip.endpoints());
            }
        });
        topology
    }

    /// The current snapshot.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.read().clone()
    }

    /// Rebuilds the ring from gossip's endpoints: those in the ring are the
    /// ones with tokens that are NORMAL (or stopped: a stopped node still
    /// owns its ranges).
    pub fn refresh(&self, views: &[EndpointView]) {
        let now = Instant::now();
        let mut down_since = self.down_since.lock();
        let endpoints: Vec<EndpointInfo> = views
            .iter()
            .filter(|view| {
                matches!(
                    view.state.value(keys::STATUS),
                    Some("NORMAL" | gossip::SHUTDOWN)
                )
            })
            .filter_map(|view| {
                let tokens = view.state.tokens();
                if tokens.is_empty() {
                    return None;
                }
                let up = view.up || view.is_local;
                let since = if up {
                    down_since.remove(&view.endpoint);
                    None
                } else {
                    Some(*down_since.entry(view.endpoint).or_insert(now))
                };
                let value = |key: &str| view.state.value(key).unwrap_or_default().to_owned();
                Some(EndpointInfo {
                    address: view.endpoint,
                    host_id: view.state.value(keys::HOST_ID).and_then(parse_uuid),
                    dc: value(keys::DC),
                    rack: value(keys::RACK),
                    rpc_address: view
                        .state
                        .value(keys::RPC_ADDRESS)
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(view.endpoint.ip()),
                    native_port: view
                        .state
                        .value(keys::NATIVE_PORT)
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(9042),
                    release_version: value(keys::RELEASE_VERSION),
                    schema: view.state.value(keys::SCHEMA).and_then(parse_uuid),
                    tokens,
                    up,
                    is_local: view.is_local,
                    down_since: since,
                })
            })
            .collect();
        *self.ring.write() = Arc::new(Ring::new(endpoints));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three endpoints: two in dc1 (tokens 0 and 100), one in dc2 (200);
    /// the first is the local node.
    pub fn two_dc_ring() -> Ring {
        Ring::new(vec![
            endpoint(1, "dc1", "r1", &[0]),
            endpoint(2, "dc1", "r1", &[100]),
            endpoint(3, "dc2", "r1", &[200]),
        ])
    }

    /// An endpoint on 127.0.0.`n` in `dc`/`rack` with these tokens.
    pub fn endpoint(n: u8, dc: &str, rack: &str, tokens: &[i64]) -> EndpointInfo {
        EndpointInfo {
            address: SocketAddr::from(([127, 0, 0, n], 7000)),
            host_id: Some(u128::from(n)),
            dc: dc.into(),
            rack: rack.into(),
            rpc_address: IpAddr::from([127, 0, 0, n]),
            native_port: 9042,
            release_version: String::new(),
            schema: None,
            tokens: tokens.to_vec(),
            up: true,
            is_local: n == 1,
            down_since: None,
        }
    }

    #[test]
    fn a_token_belongs_to_the_first_token_at_or_after_it() {
        let ring = Ring::new(vec![
            endpoint(1, "dc1", "r1", &[-100, 100]),
            endpoint(2, "dc1", "r1", &[0]),
        ]);
        let owner = |t: i64| ring.walk(t).next();
        assert_eq!(owner(-100), Some(0));
        assert_eq!(owner(-99), Some(1));
        assert_eq!(owner(0), Some(1));
        assert_eq!(owner(50), Some(0));
        assert_eq!(
            owner(101),
            Some(0),
            "past the last token wraps to the first"
        );
        assert_eq!(ring.walk(50).collect::<Vec<_>>(), vec![0, 0, 1]);
        assert!(!ring.is_local_only());
        let mut replicas = vec![1, 0];
        ring.by_proximity(&mut replicas);
        assert_eq!(replicas, vec![0, 1]);
    }
}

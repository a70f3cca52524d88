//! Replication strategies: which endpoints hold a partition's replicas.
//!
//! - SimpleStrategy: the owner of the token and the next distinct endpoints
//!   clockwise, `replication_factor` in all.
//! - NetworkTopologyStrategy: per data center, walking clockwise, endpoints
//!   on racks not yet used first; once every rack of the data center holds
//!   a replica, the endpoints skipped for their rack are taken in the order
//!   they were met (Cassandra's rule).
//! - Local: this node only (system keyspaces).

use crate::topology::Ring;

/// How a keyspace places its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Simple { replication_factor: usize },
    NetworkTopology { data_centers: Vec<(String, usize)> },
    Local,
}

impl Placement {
    /// Replicas per partition, over all data centers.
    pub fn replication_factor(&self) -> usize {
        match self {
            Placement::Simple { replication_factor } => *replication_factor,
            Placement::NetworkTopology { data_centers } => {
                data_centers.iter().map(|(_, rf)| rf).sum()
            }
            Placement::Local => 1,
        }
    }

    /// Replicas per partition in one data center (SimpleStrategy knows no
    /// data centers: all of them count, as in Cassandra).
    pub fn replication_factor_in(&self, dc: &str) -> usize {
        match self {
            Placement::Simple { replication_factor } => *replication_factor,
            Placement::NetworkTopology { data_centers } => data_centers
                .iter()
                .find(|(name, _)| name == dc)
                .map_or(0, |(_, rf)| *rf),
            Placement::Local => 1,
        }
    }

    /// The data centers with replicas (None: SimpleStrategy, no per-DC rule).
    pub fn data_centers(&self) -> Option<Vec<&str>> {
        match self {
            Placement::NetworkTopology { data_centers } => {
                Some(data_centers.iter().map(|(dc, _)| dc.as_str()).collect())
            }
            _ => None,
        }
    }

    /// The endpoints (indices into `ring`) that replicate `token`, in ring
    /// order from its owner.
    pub fn replicas(&self, ring: &Ring, token: i64) -> Vec<usize> {
        match self {
            Placement::Local => ring.local().into_iter().collect(),
            Placement::Simple { replication_factor } => {
                let mut replicas = Vec::with_capacity(*replication_factor);
                for endpoint in ring.walk(token) {
                    if replicas.len() == *replication_factor {
                        break;
                    }
                    if !replicas.contains(&endpoint) {
                        replicas.push(endpoint);
                    }
                }
                replicas
            }
            Placement::NetworkTopology { data_centers } => {
                let mut replicas = Vec::new();
                for (dc, rf) in data_centers {
                    replicas.extend(replicas_in_dc(ring, token, dc, *rf));
                }
                replicas
            }
        }
    }
}

/// NetworkTopologyStrategy's choice within one data center.
fn replicas_in_dc(ring: &Ring, token: i64, dc: &str, rf: usize) -> Vec<usize> {
    let in_dc = |i: &usize| ring.endpoint(*i).is_some_and(|e| e.dc == dc);
    let mut racks: Vec<&str> = ring
        .endpoints()
        .iter()
        .filter(|e| e.dc == dc)
        .map(|e| e.rack.as_str())
        .collect();
    racks.sort_unstable();
    racks.dedup();
    let mut chosen: Vec<usize> = Vec::with_capacity(rf);
    let mut skipped: Vec<usize> = Vec::new();
    let mut racks_used: Vec<&str> = Vec::new();
    for endpoint in ring.walk(token).filter(in_dc) {
        if chosen.len() == rf {
            break;
        }
        if chosen.contains(&endpoint) || skipped.contains(&endpoint) {
            continue;
        }
        let rack = ring.endpoint(endpoint).map_or("", |e| e.rack.as_str());
        if racks_used.len() == racks.len() {
            chosen.push(endpoint);
        } else if racks_used.contains(&rack) {
            skipped.push(endpoint);
        } else {
            racks_used.push(rack);
            chosen.push(endpoint);
            if racks_used.len() == racks.len() {
                // Every rack has one: the skipped endpoints come next.
                let room = rf - chosen.len();
                chosen.extend(skipped.drain(..).take(room));
            }
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::tests::endpoint;

    #[test]
    fn simple_strategy_takes_distinct_endpoints_clockwise() {
        let ring = Ring::new(vec![
            endpoint(1, "dc1", "r1", &[0, 10]),
            endpoint(2, "dc1", "r1", &[5]),
            endpoint(3, "dc1", "r1", &[20]),
        ]);
        let simple = |rf| Placement::Simple {
            replication_factor: rf,
        };
        assert_eq!(simple(1).replicas(&ring, 1), vec![1]);
        assert_eq!(simple(2).replicas(&ring, 1), vec![1, 0]);
        assert_eq!(simple(3).replicas(&ring, 6), vec![0, 2, 1]);
        assert_eq!(
            simple(5).replicas(&ring, 6),
            vec![0, 2, 1],
            "no more than the endpoints"
        );
        assert_eq!(simple(2).replicas(&ring, 25), vec![0, 1], "wraps around");
        assert_eq!(Placement::Local.replicas(&ring, 25), vec![0]);
    }

    #[test]
    fn network_topology_counts_per_dc_and_spreads_over_racks() {
        let ring = Ring::new(vec![
            endpoint(1, "dc1", "r1", &[0]),
            endpoint(2, "dc1", "r1", &[10]),
            endpoint(3, "dc1", "r2", &[20]),
            endpoint(4, "dc2", "r1", &[30]),
            endpoint(5, "dc2", "r1", &[40]),
        ]);
        let nts = Placement::NetworkTopology {
            data_centers: vec![("dc1".into(), 2), ("dc2".into(), 1)],
        };
        // From token 0: endpoint 1 (r1), endpoint 2 skipped (r1 used), endpoint 3 (r2).
        assert_eq!(nts.replicas(&ring, 0), vec![0, 2, 3]);
        assert_eq!(nts.replication_factor(), 3);
        assert_eq!(nts.replication_factor_in("dc2"), 1);
        assert_eq!(nts.replication_factor_in("dc9"), 0);
        let three = Placement::NetworkTopology {
            data_centers: vec![("dc1".into(), 3)],
        };
        // All racks used after endpoints 1 and 3: the skipped endpoint 2 follows.
        assert_eq!(three.replicas(&ring, 0), vec![0, 2, 1]);
    }
}

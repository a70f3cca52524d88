//! Consistency levels and how many replica answers each one needs: the one
//! place the coordinator's consistency arithmetic lives.
//!
//! Plain arithmetic, no I/O: given a keyspace's placement, the ring (who
//! is in which data center) and the live replicas, a [`Requirement`] says
//! how many must acknowledge in which data centers, whether the request
//! can be attempted at all (else it is Unavailable, before anything is
//! sent), which replicas to ask first, and what counts an error reports.
//! Pinned by table-driven cases in `testdata/consistency.txt` (every level
//! against SimpleStrategy and NetworkTopologyStrategy layouts and live sets)
//! and an exhaustive check of single data center rings.

use std::fmt;

use crate::strategy::Placement;
use crate::topology::Ring;

/// A CQL consistency level (protocol codes of section 3 of the v4 spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsistencyLevel {
    Any,
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalQuorum,
    EachQuorum,
    Serial,
    LocalSerial,
    LocalOne,
}

impl ConsistencyLevel {
    pub fn from_code(code: u16) -> Option<ConsistencyLevel> {
        use ConsistencyLevel::*;
        Some(match code {
            0x0000 => Any,
            0x0001 => One,
            0x0002 => Two,
            0x0003 => Three,
            0x0004 => Quorum,
            0x0005 => All,
            0x0006 => LocalQuorum,
            0x0007 => EachQuorum,
            0x0008 => Serial,
            0x0009 => LocalSerial,
            0x000A => LocalOne,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        use ConsistencyLevel::*;
        match self {
            Any => 0x0000,
            One => 0x0001,
            Two => 0x0002,
            Three => 0x0003,
            Quorum => 0x0004,
            All => 0x0005,
            LocalQuorum => 0x0006,
            EachQuorum => 0x0007,
            Serial => 0x0008,
            LocalSerial => 0x0009,
            LocalOne => 0x000A,
        }
    }

    /// Replica acknowledgements needed with `replication_factor` replicas
    /// (one data center). `Any` needs one acknowledgement, which a hint can give.
    pub fn block_for(self, replication_factor: usize) -> usize {
        use ConsistencyLevel::*;
        match self {
            Any | One | LocalOne => 1,
            Two => 2,
            Three => 3,
            Quorum | LocalQuorum | EachQuorum | Serial | LocalSerial => replication_factor / 2 + 1,
            All => replication_factor,
        }
    }
}

/// Acknowledgements a consistency level needs: `(data center, count)`
/// groups, `None` meaning any data center; all must be met. Borrows the
/// data center names from the ring and the placement (no allocation per
/// request beyond the group list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement<'a> {
    groups: Vec<(Option<&'a str>, usize)>,
}

impl<'a> Requirement<'a> {
    pub fn of(
        consistency: ConsistencyLevel,
        placement: &'a Placement,
        ring: &'a Ring,
    ) -> Requirement<'a> {
        use ConsistencyLevel::*;
        let local_dc = ring.local_dc();
        let quorum_in = |dc: &str| placement.replication_factor_in(dc) / 2 + 1;
        let groups = match (consistency, placement) {
            (_, Placement::Local) => vec![(None, 1)],
            (LocalOne, _) => vec![(Some(local_dc), 1)],
            (LocalQuorum | LocalSerial, _) => vec![(Some(local_dc), quorum_in(local_dc))],
            (EachQuorum, Placement::NetworkTopology { data_centers }) => data_centers
                .iter()
                .map(|(dc, _)| (Some(dc.as_str()), quorum_in(dc)))
                .collect(),
            (other, _) => vec![(None, other.block_for(placement.replication_factor()))],
        };
        Requirement { groups }
    }

    fn in_group(group: &Option<&str>, ring: &Ring, endpoint: usize) -> bool {
        match group {
            None => true,
            Some(dc) => ring.endpoint(endpoint).is_some_and(|e| e.dc == *dc),
        }
    }

    /// The first group `endpoints` fall short of: `(required, have)`.
    pub fn shortfall(&self, ring: &Ring, endpoints: &[usize]) -> Option<(usize, usize)> {
        self.groups.iter().find_map(|(dc, required)| {
            let have = endpoints
                .iter()
                .filter(|e| Requirement::in_group(dc, ring, **e))
                .count();
            (have < *required).then_some((*required, have))
        })
    }

    /// Total acknowledgements required (the count errors report).
    pub fn total(&self) -> usize {
        self.groups.iter().map(|(_, n)| n).sum()
    }

    /// Counts toward the requirement, as errors report them.
    pub fn counted(&self, ring: &Ring, endpoints: &[usize]) -> usize {
        self.groups
            .iter()
            .map(|(dc, required)| {
                endpoints
                    .iter()
                    .filter(|e| Requirement::in_group(dc, ring, **e))
                    .count()
                    .min(*required)
            })
            .sum()
    }

    /// The fewest of `live` (closest first) that meet every group.
    pub fn choose(&self, ring: &Ring, live: &[usize]) -> Vec<usize> {
        let mut chosen = Vec::new();
        for &endpoint in live {
            if self.shortfall(ring, &chosen).is_none() {
                break;
            }
            let helps = self.groups.iter().any(|(dc, required)| {
                Requirement::in_group(dc, ring, endpoint)
                    && chosen
                        .iter()
                        .filter(|e| Requirement::in_group(dc, ring, **e))
                        .count()
                        < *required
            });
            if helps {
                chosen.push(endpoint);
            }
        }
        chosen
    }

    /// This requirement for one request's replicas, owned (no ring
    /// needed to count its acknowledgements).
    pub fn tally(&self, ring: &Ring, replicas: &[usize]) -> Tally {
        Tally {
            groups: self
                .groups
                .iter()
                .map(|(dc, required)| TallyGroup {
                    required: *required,
                    members: replicas
                        .iter()
                        .copied()
                        .filter(|r| Requirement::in_group(dc, ring, *r))
                        .collect(),
                    have: 0,
                })
                .collect(),
            counted: Vec::new(),
        }
    }
}

/// Counts one request's acknowledgements against its requirement: each
/// replica once, in the groups (data centers) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    groups: Vec<TallyGroup>,
    counted: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TallyGroup {
    required: usize,
    members: Vec<usize>,
    have: usize,
}

impl Tally {
    /// Counts `replica`'s acknowledgement (a second one from it changes nothing).
    pub fn count(&mut self, replica: usize) {
        if self.counted.contains(&replica) {
            return;
        }
        self.counted.push(replica);
        for group in &mut self.groups {
            if group.members.contains(&replica) {
                group.have += 1;
            }
        }
    }

    /// Whether every group has what it requires.
    pub fn met(&self) -> bool {
        self.groups.iter().all(|g| g.have >= g.required)
    }

    /// Acknowledgements that count, as errors report them.
    pub fn received(&self) -> usize {
        self.groups.iter().map(|g| g.have.min(g.required)).sum()
    }

    /// Acknowledgements required in all.
    pub fn required(&self) -> usize {
        self.groups.iter().map(|g| g.required).sum()
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConsistencyLevel::*;
        let name = match self {
            Any => "ANY",
            One => "ONE",
            Two => "TWO",
            Three => "THREE",
            Quorum => "QUORUM",
            All => "ALL",
            LocalQuorum => "LOCAL_QUORUM",
            EachQuorum => "EACH_QUORUM",
            Serial => "SERIAL",
            LocalSerial => "LOCAL_SERIAL",
            LocalOne => "LOCAL_ONE",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::tests::{endpoint, two_dc_ring};

    fn ring() -> Ring {
        two_dc_ring()
    }

    #[test]
    fn consistency_levels_need_their_counts_per_data_center() {
        let ring = ring();
        let nts = Placement::NetworkTopology {
            data_centers: vec![("dc1".into(), 2), ("dc2".into(), 1)],
        };
        let needed = |cl| Requirement::of(cl, &nts, &ring);
        assert_eq!(needed(ConsistencyLevel::Quorum).groups, vec![(None, 2)]);
        assert_eq!(needed(ConsistencyLevel::All).groups, vec![(None, 3)]);
        assert_eq!(
            needed(ConsistencyLevel::LocalQuorum).groups,
            vec![(Some("dc1"), 2)]
        );
        assert_eq!(
            needed(ConsistencyLevel::EachQuorum).groups,
            vec![(Some("dc1"), 2), (Some("dc2"), 1)]
        );
        let local_quorum = needed(ConsistencyLevel::LocalQuorum);
        // Endpoint 3 is in dc2: it does not count for LOCAL_QUORUM.
        assert_eq!(local_quorum.shortfall(&ring, &[0, 2]), Some((2, 1)));
        assert_eq!(local_quorum.shortfall(&ring, &[0, 1]), None);
        assert_eq!(local_quorum.choose(&ring, &[2, 0, 1]), vec![0, 1]);
        assert_eq!(
            needed(ConsistencyLevel::One).choose(&ring, &[2, 0]),
            vec![2]
        );
    }

    #[test]
    fn quorum_arithmetic() {
        assert_eq!(ConsistencyLevel::Quorum.block_for(3), 2);
        assert_eq!(ConsistencyLevel::Quorum.block_for(1), 1);
        assert_eq!(ConsistencyLevel::Quorum.block_for(4), 3);
        assert_eq!(ConsistencyLevel::All.block_for(3), 3);
        assert_eq!(ConsistencyLevel::Two.block_for(1), 2);
        for code in 0..=0x0A {
            assert_eq!(
                ConsistencyLevel::from_code(code).map(|c| c.code()),
                Some(code)
            );
        }
        assert!(ConsistencyLevel::from_code(0x0B).is_none());
    }

    /// A ring and placement for a LAYOUT of `testdata/consistency.txt`,
    /// and the live endpoints (closest first) for a LIVE.
    fn case_ring(layout: &str, live: &str) -> (Ring, Placement, Vec<usize>) {
        let mut endpoints = Vec::new();
        let mut by_dc: Vec<(String, Vec<usize>)> = Vec::new();
        let placement = match layout.strip_prefix("simple:") {
            Some(rf) => {
                let rf: usize = rf.parse().unwrap_or_else(|e| panic!("simple:RF: {e}"));
                by_dc.push(("dc1".into(), (0..rf).collect()));
                for i in 0..rf {
                    endpoints.push(endpoint(i as u8 + 1, "dc1", "r1", &[i as i64]));
                }
                Placement::Simple {
                    replication_factor: rf,
                }
            }
            None => {
                let mut data_centers = Vec::new();
                for part in layout.split(',') {
                    let (dc, rf) = part
                        .split_once(':')
                        .unwrap_or_else(|| panic!("dc:RF, not {part}"));
                    let rf: usize = rf.parse().unwrap_or_else(|e| panic!("RF: {e}"));
                    let first = endpoints.len();
                    for _ in 0..rf {
                        let n = endpoints.len() as u8 + 1;
                        endpoints.push(endpoint(n, dc, "r1", &[i64::from(n)]));
                    }
                    by_dc.push((dc.to_owned(), (first..first + rf).collect()));
                    data_centers.push((dc.to_owned(), rf));
                }
                Placement::NetworkTopology { data_centers }
            }
        };
        let mut up = Vec::new();
        for part in live.split(',') {
            let (dc, n) = part
                .split_once(':')
                .unwrap_or_else(|| panic!("dc:N, not {part}"));
            let n: usize = n.parse().unwrap_or_else(|e| panic!("N: {e}"));
            let members = &by_dc
                .iter()
                .find(|(name, _)| name == dc)
                .unwrap_or_else(|| panic!("no {dc} in the layout"))
                .1;
            up.extend(members.iter().take(n));
        }
        (Ring::new(endpoints), placement, up)
    }

    fn level(name: &str) -> ConsistencyLevel {
        (0..=0x0A)
            .filter_map(ConsistencyLevel::from_code)
            .find(|c| c.to_string() == name)
            .unwrap_or_else(|| panic!("unknown level {name}"))
    }

    /// What the arithmetic says of a case, in the data file's words.
    fn outcome(requirement: &Requirement<'_>, ring: &Ring, live: &[usize]) -> String {
        match requirement.shortfall(ring, live) {
            Some((required, alive)) => format!("unavailable {required} {alive}"),
            None => format!("ok {}", requirement.choose(ring, live).len()),
        }
    }

    #[test]
    fn every_case_of_the_data_file_holds() {
        let data = include_str!("testdata/consistency.txt");
        let mut cases = 0;
        for (number, line) in data.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (case, expected) = line
                .split_once(" => ")
                .unwrap_or_else(|| panic!("line {}: CASE => EXPECTED", number + 1));
            let mut words = case.split_whitespace();
            let (Some(layout), Some(cl), Some(live)) = (words.next(), words.next(), words.next())
            else {
                panic!("line {}: LAYOUT CONSISTENCY LIVE", number + 1);
            };
            let (ring, placement, up) = case_ring(layout, live);
            let requirement = Requirement::of(level(cl), &placement, &ring);
            assert_eq!(
                outcome(&requirement, &ring, &up),
                expected,
                "line {}: {line}",
                number + 1
            );
            cases += 1;
        }
        assert!(cases >= 30, "{cases} cases");
    }

    /// Every level, every replication factor up to 7 and every number of
    /// live replicas on one data center, against the rule written out
    /// independently: the same with SimpleStrategy and with
    /// NetworkTopologyStrategy.
    #[test]
    fn single_data_center_rings_follow_the_rule_for_every_live_count() {
        use ConsistencyLevel::*;
        for rf in 1..=7usize {
            for live in 0..=rf {
                for cl in [
                    One,
                    Two,
                    Three,
                    Quorum,
                    All,
                    LocalOne,
                    LocalQuorum,
                    EachQuorum,
                ] {
                    let required = match cl {
                        One | LocalOne => 1,
                        Two => 2,
                        Three => 3,
                        All => rf,
                        _ => rf / 2 + 1,
                    };
                    let expected = if live >= required {
                        format!("ok {required}")
                    } else {
                        format!("unavailable {required} {live}")
                    };
                    for layout in [format!("simple:{rf}"), format!("dc1:{rf}")] {
                        let (ring, placement, up) = case_ring(&layout, &format!("dc1:{live}"));
                        let requirement = Requirement::of(cl, &placement, &ring);
                        assert_eq!(
                            outcome(&requirement, &ring, &up),
                            expected,
                            "{layout} {cl} live {live}"
                        );
                    }
                }
            }
        }
    }
}

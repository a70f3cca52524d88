//! Nemeses: the faults of a run, on a timeline. Each cycle picks one of the
//! chosen nemeses, starts its fault, waits, ends it, and waits again; every
//! start and end is recorded with its time, for the report and the plot.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::history::History;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Nemesis {
    /// iptables partitions: random halves, a node isolated, majority and
    /// minority, or a bridge (two halves that share one node).
    Partition,
    /// SIGKILL of random nodes, restarted when the fault ends.
    Kill,
    /// SIGSTOP of random nodes, SIGCONT when the fault ends.
    Pause,
    /// Clock skew: random nodes run up to 30 s ahead or behind, put right
    /// when the fault ends (libfaketime).
    Clock,
}

impl Nemesis {
    pub fn parse(name: &str) -> anyhow::Result<Nemesis> {
        Ok(match name {
            "partition" => Nemesis::Partition,
            "kill" => Nemesis::Kill,
            "pause" => Nemesis::Pause,
            "clock" => Nemesis::Clock,
            other => {
                anyhow::bail!("unknown nemesis {other:?}; use partition, kill, pause or clock")
            }
        })
    }
}

/// One entry of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Nanoseconds since the run started.
    pub time: u64,
    pub nemesis: Nemesis,
    /// `start` or `stop`.
    pub phase: &'static str,
    pub detail: String,
}

/// A fault in effect, to be ended.
enum Active {
    Partition,
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Skewed(Vec<usize>),
}

/// How the cluster's nodes are cut into groups.
fn partition_groups(rng: &mut StdRng, n: usize) -> (String, Vec<Vec<usize>>) {
    let mut nodes: Vec<usize> = (0..n).collect();
    nodes.shuffle(rng);
    match rng.gen_range(0..4) {
        0 => {
            let (a, b) = nodes.split_at(n / 2);
            ("random halves".into(), vec![a.to_vec(), b.to_vec()])
        }
        1 => {
            let (a, b) = nodes.split_at(1);
            ("one node isolated".into(), vec![a.to_vec(), b.to_vec()])
        }
        2 => {
            let majority = n / 2 + 1;
            let (a, b) = nodes.split_at(majority);
            ("majority and minority".into(), vec![a.to_vec(), b.to_vec()])
        }
        _ => ("bridge".into(), Vec::new()),
    }
}

/// Starts one fault of `nemesis`.
fn start(
    nemesis: Nemesis,
    cluster: &mut Cluster,
    rng: &mut StdRng,
) -> anyhow::Result<(Active, String)> {
    let n = cluster.nodes.len();
    let pick_some = |rng: &mut StdRng| {
        let mut nodes: Vec<usize> = (0..n).collect();
        nodes.shuffle(rng);
        // At most a minority, so a majority stays to serve QUORUM.
        let count = rng.gen_range(1..=n.saturating_sub(1) / 2 + usize::from(n <= 2));
        nodes.truncate(count.max(1));
        nodes.sort_unstable();
        nodes
    };
    Ok(match nemesis {
        Nemesis::Partition => {
            let (kind, groups) = partition_groups(rng, n);
            if groups.is_empty() {
                // A bridge: two halves, one node in both.
                let mut nodes: Vec<usize> = (0..n).collect();
                nodes.shuffle(rng);
                let bridge = nodes[0];
                let half = (n - 1) / 2;
                let (left, right) = nodes[1..].split_at(half);
                for &a in left {
                    for &b in right {
                        cluster.cut(a, b)?;
                    }
                }
                let detail = format!(
                    "{kind}: {:?} | {} | {:?}",
                    cluster.names(left),
                    cluster.nodes[bridge],
                    cluster.names(right)
                );
                (Active::Partition, detail)
            } else {
                cluster.partition(&groups)?;
                let described: Vec<Vec<String>> = groups.iter().map(|g| cluster.names(g)).collect();
                (Active::Partition, format!("{kind}: {described:?}"))
            }
        }
        Nemesis::Kill => {
            let nodes = pick_some(rng);
            for &node in &nodes {
                cluster.kill(node)?;
            }
            let names = cluster.names(&nodes);
            (Active::Killed(nodes), format!("killed {names:?}"))
        }
        Nemesis::Pause => {
            let nodes = pick_some(rng);
            for &node in &nodes {
                cluster.pause(node)?;
            }
            let names = cluster.names(&nodes);
            (Active::Paused(nodes), format!("paused {names:?}"))
        }
        Nemesis::Clock => {
            let nodes = pick_some(rng);
            let mut skews = Vec::new();
            for &node in &nodes {
                let mut seconds: i64 = rng.gen_range(-30..=30);
                if seconds == 0 {
                    seconds = -30;
                }
                cluster.skew(node, seconds)?;
                skews.push(format!("{} {seconds:+} s", cluster.nodes[node]));
            }
            // libfaketime rereads its file within a second.
            std::thread::sleep(Duration::from_millis(1100));
            (Active::Skewed(nodes), format!("clocks skewed: {skews:?}"))
        }
    })
}

/// Ends a fault.
fn stop(active: Active, cluster: &mut Cluster) -> anyhow::Result<String> {
    Ok(match active {
        Active::Partition => {
            cluster.heal()?;
            "healed".into()
        }
        Active::Killed(nodes) => {
            for &node in &nodes {
                cluster.restart(node)?;
            }
            "restarted".into()
        }
        Active::Paused(nodes) => {
            for &node in &nodes {
                cluster.resume(node)?;
            }
            "resumed".into()
        }
        Active::Skewed(nodes) => {
            for &node in &nodes {
                cluster.skew(node, 0)?;
            }
            std::thread::sleep(Duration::from_millis(1100));
            "clocks put right".into()
        }
    })
}

/// Runs faults of the chosen kinds until `until` (nanoseconds on the
/// history's clock), each lasting `period` with `period` of calm between;
/// ends with everything healed. Returns the timeline.
pub fn run(
    nemeses: &[Nemesis],
    cluster: &mut Cluster,
    history: &History,
    until: u64,
    period: Duration,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Event>> {
    let mut timeline = Vec::new();
    if nemeses.is_empty() {
        std::thread::sleep(Duration::from_nanos(until.saturating_sub(history.now())));
        return Ok(timeline);
    }
    loop {
        std::thread::sleep(period);
        if history.now() + period.as_nanos() as u64 > until {
            break;
        }
        let Some(&nemesis) = nemeses.choose(rng) else {
            break;
        };
        let (active, detail) = start(nemesis, cluster, rng)?;
        eprintln!("nemesis: {detail}");
        timeline.push(Event {
            time: history.now(),
            nemesis,
            phase: "start",
            detail,
        });
        std::thread::sleep(period);
        let detail = stop(active, cluster)?;
        eprintln!("nemesis: {detail}");
        timeline.push(Event {
            time: history.now(),
            nemesis,
            phase: "stop",
            detail,
        });
    }
    let left = until.saturating_sub(history.now());
    std::thread::sleep(Duration::from_nanos(left));
    Ok(timeline)
}

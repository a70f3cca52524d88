//! Goal: three real nodes started by `ilion cluster` find each other by
//! gossip: each sees all three UP within 10 s; a SIGKILLed node is seen
//! DOWN within 15 s and UP again within 15 s of its restart; a node stopped
//! cleanly is seen DOWN at once; `nodetool status` shows all of it.
//!
//! Addresses: this test owns 127.0.12.x.

use crate::common;

use std::time::Duration;

use common::{cluster, run_ilion, wait_for_state as wait_for, ClusterCleanup};

#[test]
fn gossip_sees_nodes_come_and_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let _cleanup = ClusterCleanup(&dir);
    let nodes = ["127.0.12.1", "127.0.12.2", "127.0.12.3"];
    cluster(&dir, "start -n 3 --base-address 127.0.12.1");

    for address in nodes {
        let took = wait_for(&nodes, address, "UN", Duration::from_secs(10));
        eprintln!("{address} seen UP by all after {took:?}");
    }
    let (_, status, _) = run_ilion(&["nodetool", "-h", nodes[0], "status"]);
    let owned: f64 = status
        .lines()
        .filter(|l| l.starts_with("UN"))
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|p| p.trim_end_matches('%').parse::<f64>().ok())
        .sum();
    assert!(
        (owned - 100.0).abs() < 0.5,
        "ownership adds up to the ring: {status}"
    );
    let (_, gossip, _) = run_ilion(&["nodetool", "-h", nodes[1], "gossipinfo"]);
    for address in nodes {
        assert!(gossip.contains(&format!("/{address}\n")), "{gossip}");
    }
    let (_, described, _) = run_ilion(&["nodetool", "-h", nodes[2], "describecluster"]);
    assert!(described.contains("\tLive: 3\n"), "{described}");

    // A crash: seen DOWN within 15 s, UP within 15 s of the restart.
    cluster(&dir, "kill node2");
    let took = wait_for(
        &[nodes[0], nodes[2]],
        nodes[1],
        "DN",
        Duration::from_secs(15),
    );
    eprintln!("killed node seen DOWN after {took:?}");
    cluster(&dir, "start node2");
    let took = wait_for(
        &[nodes[0], nodes[2]],
        nodes[1],
        "UN",
        Duration::from_secs(15),
    );
    eprintln!("restarted node seen UP after {took:?}");
    let (_, described, _) = run_ilion(&["nodetool", "-h", nodes[0], "describecluster"]);
    assert!(described.contains("\tUnreachable: 0\n"), "{described}");

    // A clean stop announces itself: DOWN at once, not after conviction.
    cluster(&dir, "stop node3");
    let took = wait_for(
        &[nodes[0], nodes[1]],
        nodes[2],
        "DN",
        Duration::from_secs(3),
    );
    eprintln!("stopped node seen DOWN after {took:?}");
}

//! Goal: `ilion cluster` runs a local cluster the way ccm does: `start -n 3`
//! brings up three real nodes on their own loopback addresses and returns
//! once they serve CQL; `status`, `kill`, `start node`, `logs`, `stop` and
//! `clear` do what they say, and clients and nodetool reach every node.
//!
//! Addresses: this test owns 127.0.11.x.

use crate::common;

use std::time::Duration;

use common::{cluster, run_cluster, run_ilion, ClusterCleanup};
use scylla::client::session_builder::SessionBuilder;

/// The state column of a node's line in `ilion cluster status`.
fn state(status: &str, node: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{node} ")))
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap_or_else(|| panic!("no {node} in:\n{status}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_launcher_starts_kills_and_clears_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let _cleanup = ClusterCleanup(&dir);

    let (code, _, err) = run_cluster(&dir, "status");
    assert_eq!(code, 1);
    assert!(err.contains("no cluster in"), "{err}");

    let started = cluster(
        &dir,
        "start -n 3 --base-address 127.0.11.1 --wait-seconds 60",
    );
    for (node, address) in [
        ("node1", "127.0.11.1"),
        ("node2", "127.0.11.2"),
        ("node3", "127.0.11.3"),
    ] {
        assert_eq!(state(&started, node), "UP", "{started}");
        assert!(started.contains(address), "{started}");
    }
    assert!(
        started.contains("Connect with: ilion shell 127.0.11.1 9042"),
        "{started}"
    );
    // The data center is named as ccm and a lone node name it.
    let (_, status, _) = common::run_ilion(&["nodetool", "-h", "127.0.11.1", "status"]);
    assert!(status.contains("Datacenter: datacenter1"), "{status}");

    // Every node serves CQL on its own address, and nodetool reaches it.
    for address in ["127.0.11.1", "127.0.11.2", "127.0.11.3"] {
        let session = SessionBuilder::new()
            .known_node(format!("{address}:9042"))
            .build()
            .await
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        // The driver discovers every node: ask this one.
        let mut local =
            scylla::statement::unprepared::Statement::new("SELECT rpc_address FROM system.local");
        local.set_load_balancing_policy(Some(
            scylla::policies::load_balancing::SingleTargetLoadBalancingPolicy::new(
                scylla::policies::load_balancing::NodeIdentifier::NodeAddress(
                    format!("{address}:9042").parse().unwrap(),
                ),
                None,
            ),
        ));
        let (rpc,): (std::net::IpAddr,) = session
            .query_unpaged(local, &[])
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        assert_eq!(rpc.to_string(), address);
        let (_, text, _) = run_ilion(&["nodetool", "-h", address, "status"]);
        assert!(text.contains(&format!("UN  {address}")), "{text}");
    }

    // A crash, then a restart of that node alone.
    assert!(cluster(&dir, "kill node2").starts_with("node2 killed"));
    let status = cluster(&dir, "status");
    assert_eq!(state(&status, "node2"), "STOPPED", "{status}");
    assert_eq!(state(&status, "node1"), "UP", "{status}");
    let restarted = cluster(&dir, "start node2");
    assert_eq!(state(&restarted, "node2"), "UP", "{restarted}");
    assert!(
        cluster(&dir, "logs node2")
            .matches("listening for CQL clients")
            .count()
            == 2,
        "the log keeps both runs"
    );
    let tail = cluster(&dir, "logs node1 --tail 1");
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(
        !tail.contains('\u{1b}'),
        "no terminal colours in a log file: {tail}"
    );

    // Refusals.
    let (code, _, err) = run_cluster(&dir, "stop node9");
    assert_eq!(code, 1);
    assert!(
        err.contains("no node node9; the nodes are node1, node2, node3"),
        "{err}"
    );
    let (code, _, err) = run_cluster(&dir, "start -n 5");
    assert_eq!(code, 1);
    assert!(err.contains("holds a cluster of 3 nodes"), "{err}");

    // A clean stop flushes: node3's log says so.
    let stopped = cluster(&dir, "stop");
    assert_eq!(stopped.lines().count(), 3, "{stopped}");
    let status = cluster(&dir, "status");
    for node in ["node1", "node2", "node3"] {
        assert_eq!(state(&status, node), "STOPPED", "{status}");
    }
    assert!(cluster(&dir, "logs node3").contains("shutdown complete"));

    assert!(cluster(&dir, "clear").contains("removed"));
    assert!(!dir.exists());
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect_timeout(
        &"127.0.11.1:9042".parse().unwrap(),
        Duration::from_millis(500)
    )
    .is_err());
}

//! Goal: a live node serves Prometheus metrics and the Kubernetes probes on
//! its metrics port; the counters move with the requests clients send
//! (scraped, as Prometheus would, from the running process).

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{metric as sample, Node};
use scylla::client::session_builder::SessionBuilder;

fn http(port: u16, request: &str) -> (u16, String) {
    common::http(SocketAddr::from(([127, 0, 0, 1], port)), request)
}

fn get(port: u16, path: &str) -> (u16, String) {
    common::http_get(SocketAddr::from(([127, 0, 0, 1], port)), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_follow_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.metrics;

    assert_eq!(get(port, "/probes/live"), (200, "live\n".into()));
    assert_eq!(get(port, "/probes/ready"), (200, "ready\n".into()));
    assert_eq!(get(port, "/nope").0, 404);
    assert_eq!(
        http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
        405
    );
    let (status, _) = http(port, &format!("GET /{} HTTP/1.1\r\n", "x".repeat(20_000)));
    assert_eq!(status, 431, "an oversized request head is refused");

    let (status, before) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(before.contains("# TYPE ilion_client_request_latency_seconds histogram"));
    let writes_before = sample(&before, "ilion_client_requests_total{operation=\"write\"}");

    let session = SessionBuilder::new()
        .known_node(node.native_addr().to_string())
        .build()
        .await
        .expect("connect");
    session
        .query_unpaged("CREATE KEYSPACE m WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", &[])
        .await
        .unwrap();
    session
        .query_unpaged("CREATE TABLE m.t (k int PRIMARY KEY, v text)", &[])
        .await
        .unwrap();
    let insert = session
        .prepare("INSERT INTO m.t (k, v) VALUES (?, ?)")
        .await
        .unwrap();
    for k in 0..100i32 {
        session.execute_unpaged(&insert, (k, "v")).await.unwrap();
    }
    for k in 0..30i32 {
        session
            .query_unpaged("SELECT v FROM m.t WHERE k = ?", (k,))
            .await
            .unwrap();
    }
    assert!(session
        .query_unpaged("SELECT * FROM m.nope", &[])
        .await
        .is_err());

    let (_, after) = get(port, "/metrics");
    let writes = sample(&after, "ilion_client_requests_total{operation=\"write\"}") - writes_before;
    assert_eq!(writes, 100.0, "each insert is one coordinated write");
    assert!(sample(&after, "ilion_client_requests_total{operation=\"read\"}") >= 30.0);
    assert!(
        sample(
            &after,
            "ilion_client_request_errors_total{operation=\"read\",error=\"failure\"}"
        ) >= 1.0,
        "the failed SELECT is counted"
    );
    let count = sample(
        &after,
        "ilion_client_request_latency_seconds_count{operation=\"write\"}",
    );
    let inf = sample(
        &after,
        "ilion_client_request_latency_seconds_bucket{operation=\"write\",le=\"+Inf\"}",
    );
    assert_eq!(count, inf, "the +Inf bucket holds every request");
    assert!(sample(&after, "ilion_client_connections") >= 1.0);
    assert!(
        sample(
            &after,
            "ilion_table_memtable_bytes{keyspace=\"m\",table=\"t\"}"
        ) > 0.0,
        "the table's memtable holds the rows"
    );
    assert_eq!(
        sample(&after, "ilion_table_sstables{keyspace=\"m\",table=\"t\"}"),
        0.0
    );
    assert!(sample(&after, "ilion_commitlog_segments") >= 1.0);
    assert_eq!(sample(&after, "ilion_gossip_live_endpoints"), 1.0);
}

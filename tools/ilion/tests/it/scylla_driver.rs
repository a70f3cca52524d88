//! Goal: the real Rust `scylla` driver (1.9, which speaks only protocol v4
//! and reads system tables with strict type checks through prepared
//! statements) connects to a real node with LZ4 compression, discovers it, prepares, inserts and
//! reads typed rows, pages, runs a batch, and sees a table it created in its
//! schema metadata.

use crate::common;

use std::time::Duration;

use common::Node;
use futures_util::StreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::client::Compression;
use scylla::statement::batch::Batch;

async fn session(node: &Node) -> Session {
    SessionBuilder::new()
        .known_node(node.native_addr().to_string())
        .connection_timeout(Duration::from_secs(10))
        .compression(Some(Compression::Lz4))
        .build()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "scylla driver cannot connect: {e}\nnode log:\n{}",
                node.log_text()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_driver_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let session = session(&node).await;
    assert_eq!(
        session.get_cluster_state().get_nodes_info().len(),
        1,
        "discovers the node"
    );

    session
        .query_unpaged("CREATE KEYSPACE rs WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", &[])
        .await
        .unwrap();
    session
        .query_unpaged(
            "CREATE TABLE rs.t (k int, c int, v text, big bigint, PRIMARY KEY (k, c))",
            &[],
        )
        .await
        .unwrap();
    let insert = session
        .prepare("INSERT INTO rs.t (k, c, v, big) VALUES (?, ?, ?, ?)")
        .await
        .unwrap();
    for c in 0..250i32 {
        session
            .execute_unpaged(&insert, (1i32, c, format!("v{c}"), i64::from(c) << 40))
            .await
            .unwrap();
    }
    let mut select = session
        .prepare("SELECT c, v, big FROM rs.t WHERE k = ?")
        .await
        .unwrap();
    select.set_page_size(64);
    let mut rows = session
        .execute_iter(select, (1i32,))
        .await
        .unwrap()
        .rows_stream::<(i32, String, i64)>()
        .unwrap();
    let mut seen = Vec::new();
    while let Some(row) = rows.next().await {
        let (c, v, big) = row.unwrap();
        assert_eq!(v, format!("v{c}"));
        assert_eq!(big, i64::from(c) << 40);
        seen.push(c);
    }
    assert_eq!(
        seen,
        (0..250).collect::<Vec<_>>(),
        "all pages, in clustering order"
    );

    let mut batch = Batch::default();
    batch.append_statement(insert.clone());
    batch.append_statement("DELETE FROM rs.t WHERE k = ? AND c = ?");
    session
        .batch(&batch, ((2i32, 1i32, "batched", 7i64), (1i32, 0i32)))
        .await
        .unwrap();
    let result = session
        .query_unpaged("SELECT v FROM rs.t WHERE k = 2", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let values: Vec<String> = result
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(values, vec!["batched".to_owned()]);
    let gone = session
        .query_unpaged("SELECT v FROM rs.t WHERE k = 1 AND c = 0", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(gone.rows_num(), 0, "batched delete applied");

    session.refresh_metadata().await.unwrap();
    let state = session.get_cluster_state();
    let keyspace = state
        .get_keyspace("rs")
        .expect("keyspace in driver metadata");
    assert!(
        keyspace.tables.contains_key("t"),
        "table in driver metadata"
    );
}

//! Goal: `ilion nodetool` does against a live node what an operator's
//! runbook expects of nodetool: it reads the node's state in nodetool's
//! output shapes, flushes, compacts, snapshots, drains, changes settings,
//! refuses bad names with nodetool's messages, and says "not yet supported"
//! (exit 1) for what a single node cannot do.

use crate::common;

use std::time::Duration;

use common::{run_ilion, Node};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// Runs `ilion nodetool -p <port> <args>`; returns (exit code, stdout, stderr).
fn nodetool(port: u16, args: &str) -> (i32, String, String) {
    let port = port.to_string();
    let mut all = vec!["nodetool", "-h", "127.0.0.1", "-p", &port];
    all.extend(args.split_whitespace());
    run_ilion(&all)
}

/// `nodetool` that must succeed; returns its output.
fn ok(port: u16, args: &str) -> String {
    let (code, out, err) = nodetool(port, args);
    assert_eq!(code, 0, "nodetool {args} failed: {err}");
    out
}

/// The value after `label: ` in nodetool's `label: value` lines.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label)?.trim().strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
}

async fn insert_rows(session: &Session, from: i32, to: i32) {
    let insert = session
        .prepare("INSERT INTO ops.t (k, v) VALUES (?, ?)")
        .await
        .unwrap();
    for k in from..to {
        session
            .execute_unpaged(&insert, (k, "value"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodetool_reads_and_operates_a_live_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let admin = node.ports.admin;
    let session = SessionBuilder::new()
        .known_node(node.native_addr().to_string())
        .build()
        .await
        .expect("connect");
    session
        .query_unpaged("CREATE KEYSPACE ops WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", &[])
        .await
        .unwrap();
    session
        .query_unpaged("CREATE TABLE ops.t (k int PRIMARY KEY, v text)", &[])
        .await
        .unwrap();
    insert_rows(&session, 0, 200).await;
    let (host_id, schema_version) = session
        .query_unpaged("SELECT host_id, schema_version FROM system.local", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(uuid::Uuid, uuid::Uuid)>()
        .unwrap();

    // Reading the node.
    let status = ok(admin, "status");
    let line = status
        .lines()
        .find(|l| l.starts_with("UN"))
        .unwrap_or_else(|| panic!("no UN line:\n{status}"));
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(line.contains(" 16 "), "16 vnodes: {line}");
    assert!(line.contains("100.0%"), "a lone node owns the ring: {line}");
    assert!(line.contains(&host_id.to_string()), "{line}");
    assert!(ok(admin, "status ops").contains("Owns (effective)"));

    let info = ok(admin, "info");
    assert_eq!(field(&info, "ID"), host_id.to_string());
    assert_eq!(field(&info, "Native Transport active"), "true");
    assert!(
        ok(admin, "info -T")
            .lines()
            .filter(|l| l.starts_with("Token"))
            .count()
            == 16
    );

    let described = ok(admin, "describecluster");
    assert_eq!(field(&described, "Name"), "Test Cluster");
    assert!(
        described.contains(&format!("{schema_version}: [127.0.0.1]")),
        "the schema version clients see: {described}"
    );
    assert!(
        ok(admin, "ring")
            .lines()
            .filter(|l| l.starts_with("127.0.0.1"))
            .count()
            == 16
    );
    let gossip = ok(admin, "gossipinfo");
    assert!(gossip.starts_with("/127.0.0.1\n"), "{gossip}");
    assert!(
        gossip
            .lines()
            .any(|l| l.starts_with("  HOST_ID:") && l.ends_with(&format!(":{host_id}"))),
        "{gossip}"
    );
    assert!(
        gossip
            .lines()
            .any(|l| l.starts_with("  STATUS:") && l.ends_with(":NORMAL")),
        "{gossip}"
    );
    assert!(ok(admin, "version").starts_with("ReleaseVersion: "));

    let stats = ok(admin, "tablestats ops.t");
    assert_eq!(field(&stats, "Total number of tables"), "1");
    assert_eq!(field(&stats, "Local write count"), "200");
    assert_eq!(field(&stats, "SSTable count"), "0");
    assert_ne!(field(&stats, "Memtable data size"), "0");

    // Flush and compact change what the node reports.
    assert_eq!(ok(admin, "flush ops"), "");
    let stats = ok(admin, "tablestats ops");
    assert_eq!(field(&stats, "SSTable count"), "1");
    assert_eq!(field(&stats, "Memtable data size"), "0");
    assert_eq!(field(&stats, "Number of partitions (estimate)"), "200");
    insert_rows(&session, 200, 300).await;
    ok(admin, "flush ops t");
    assert_eq!(field(&ok(admin, "tablestats ops.t"), "SSTable count"), "2");
    ok(admin, "compact ops t");
    assert_eq!(field(&ok(admin, "tablestats ops.t"), "SSTable count"), "1");
    assert_eq!(field(&ok(admin, "compactionstats"), "pending tasks"), "0");
    ok(admin, "cleanup ops");

    let histograms = ok(admin, "tablehistograms ops t");
    assert!(histograms.starts_with("ops/t histograms"), "{histograms}");
    assert!(
        histograms.lines().any(|l| l.starts_with("99%")),
        "{histograms}"
    );
    assert_eq!(ok(admin, "tablehistograms ops.t"), histograms);
    let proxy = ok(admin, "proxyhistograms");
    let max_write: f64 = proxy
        .lines()
        .find(|l| l.starts_with("Max"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{proxy}"));
    assert!(max_write > 0.0, "300 writes were coordinated: {proxy}");

    // Snapshots: taken, listed, refused twice, cleared.
    let taken = ok(admin, "snapshot -t before-upgrade ops");
    assert!(taken.contains("[before-upgrade]"), "{taken}");
    let listed = ok(admin, "listsnapshots");
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["before-upgrade", "ops", "t"]),
        "{listed}"
    );
    let (code, _, err) = nodetool(admin, "snapshot -t before-upgrade ops");
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    ok(admin, "clearsnapshot -t before-upgrade");
    assert!(ok(admin, "listsnapshots").contains("There are no snapshots"));

    // Settings.
    ok(admin, "setcompactionthroughput 16");
    assert_eq!(
        ok(admin, "getcompactionthroughput"),
        "Current compaction throughput: 16 MiB/s\n"
    );
    // Probabilistic tracing: at 1 every request is traced (kept in
    // system_traces, the client not told), at 0 none.
    let before = trace_sessions(&session).await;
    ok(admin, "settraceprobability 1");
    assert_eq!(
        ok(admin, "gettraceprobability"),
        "Current trace probability: 1\n"
    );
    for k in 0..5 {
        let result = session
            .query_unpaged(format!("SELECT v FROM ops.t WHERE k = {k}"), &[])
            .await
            .unwrap();
        assert_eq!(
            result.tracing_id(),
            None,
            "a sampled trace is not the client's"
        );
    }
    ok(admin, "settraceprobability 0");
    let sampled = trace_sessions(&session).await;
    assert!(
        sampled >= before + 5,
        "{before} then {sampled} trace sessions"
    );
    for k in 0..5 {
        session
            .query_unpaged(format!("SELECT v FROM ops.t WHERE k = {k}"), &[])
            .await
            .unwrap();
    }
    assert_eq!(
        trace_sessions(&session).await,
        sampled,
        "nothing traced at 0"
    );
    let (code, _, err) = nodetool(admin, "settraceprobability 1.5");
    assert_eq!(code, 1);
    assert!(err.contains("between 0 and 1"), "{err}");

    // Refusals: bad names, and what one node cannot do yet.
    let (code, _, err) = nodetool(admin, "flush nope");
    assert_eq!(
        (code, err.trim()),
        (1, "nodetool: Keyspace [nope] does not exist.")
    );
    let (code, _, err) = nodetool(admin, "tablestats ops.nope");
    assert_eq!(code, 1);
    assert!(
        err.contains("Unknown table/column family nope in keyspace ops"),
        "{err}"
    );
    for unsupported in ["decommission", "repair ops", "removenode x"] {
        let (code, _, err) = nodetool(admin, unsupported);
        assert_eq!(code, 1, "{unsupported}");
        assert!(err.contains("not yet supported"), "{unsupported}: {err}");
    }

    // Drain: clients are turned away, data stays.
    assert_eq!(ok(admin, "drain"), "");
    let info = ok(admin, "info");
    assert_eq!(field(&info, "Native Transport active"), "false");
    assert_eq!(field(&info, "Mode"), "DRAINED");
    let stats = ok(admin, "tablestats ops.t");
    assert_eq!(field(&stats, "Memtable data size"), "0");
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        SessionBuilder::new()
            .known_node(node.native_addr().to_string())
            .build(),
    )
    .await
    .expect("a drained node answers at once");
    assert!(refused.is_err(), "a drained node takes no new clients");
    drop(session);
    assert!(
        node.signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "a drained node still stops cleanly"
    );

    // Nothing listening: nodetool says so and fails.
    let (code, _, err) = nodetool(admin, "status");
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Failed to connect to '127.0.0.1:{admin}'")),
        "{err}"
    );
}

/// How many trace sessions the node keeps.
async fn trace_sessions(session: &Session) -> usize {
    session
        .query_unpaged("SELECT session_id FROM system_traces.sessions", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows_num()
}

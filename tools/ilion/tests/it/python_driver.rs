//! Goal: the real Python `cassandra-driver` (pinned in
//! `tests/python/requirements.txt`, installed by `cargo xtask venv`) works
//! against a real `ilion server`: connect with protocol negotiation, schema
//! metadata, every supported type round-tripping, paging, deletes, batches,
//! TTL, the error classes drivers act on; and acknowledged writes survive a
//! SIGKILL of the server.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{python, Node};

const START_LIMIT: Duration = Duration::from_secs(20);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/driver_test.py")
}

fn run_driver(node: &Node, args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("180")
        .arg(python())
        .arg(script())
        .arg(node.ports.native.to_string())
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "driver script {args:?} failed ({}):\n{stdout}\n{stderr}\nnode log:\n{}",
        output.status,
        node.log_text()
    );
    stdout
}

#[test]
fn python_driver_full_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["full"]);
    assert!(out.contains("all checks passed"), "{out}");
}

/// Statements Cassandra accepts that Ilion once refused (issue 19): static
/// columns by the partition key alone, ALTER KEYSPACE of durable_writes
/// alone, a trailing comma, quoted type names in frozen<>, GROUP BY past
/// key columns restricted to one value.
#[test]
fn python_driver_cql_parity() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["parity"]);
    assert!(out.contains("parity: all checks passed"), "{out}");
}

/// PasswordAuthenticator: the default superuser, roles, refused logins and
/// who may manage roles; the roles survive a restart.
#[test]
fn python_driver_password_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ilion.yaml");
    std::fs::write(&config, "authenticator: PasswordAuthenticator\n").unwrap();
    let data = dir.path().join("n");
    let mut node = Node::start(&data, &["--config", config.to_str().unwrap()]);
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["auth"]);
    assert!(out.contains("auth: all checks passed"), "{out}");
}

/// Schema changes on live tables and types, filtering, duration literals.
#[test]
fn python_driver_alter_filtering_durations() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut node = Node::start(&data, &[]);
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["alter"]);
    assert!(out.contains("alter: all checks passed"), "{out}");
    // The altered schema (column ids, types, options) survives a restart.
    node.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("SIGKILL ends the process");
    let mut node = Node::start(&data, &[]);
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["query", "SELECT * FROM ks.t WHERE k = 1"]);
    assert_eq!(out.trim(), "1|1|one|None|1.5|new|SortedSet([3])");
}

/// With 1 ms write and range timeouts, a big batch is a WriteTimeout and a
/// filtering scan a ReadTimeout, with the counts drivers read.
#[test]
fn python_driver_request_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ilion.yaml");
    std::fs::write(
        &config,
        "write_request_timeout: 1ms\nrange_request_timeout: 1ms\n",
    )
    .unwrap();
    let mut node = Node::start(
        &dir.path().join("n"),
        &["--config", config.to_str().unwrap()],
    );
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["timeouts"]);
    assert!(out.contains("timeouts: all checks passed"), "{out}");
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut node = Node::start(&data, &["--commitlog-sync", "batch"]);
    node.wait_ready(START_LIMIT);
    let count = run_driver(&node, &["write"]).trim().to_owned();
    node.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("SIGKILL ends the process");
    let mut node = Node::start(&data, &[]);
    node.wait_ready(START_LIMIT);
    let out = run_driver(&node, &["read", &count]);
    assert!(out.contains("all 500 rows present"), "{out}");
}

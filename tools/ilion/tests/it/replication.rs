//! Goal: three real nodes started by `ilion cluster` are one database.
//!
//! - A DDL on one node is on every node within 5 s and the Python driver's
//!   schema agreement check passes; the Python driver and the Rust `scylla`
//!   driver discover all three nodes from one contact point.
//! - The Python driver's default token-aware policy sends every prepared
//!   write to a replica of its partition (no node counts a request it was
//!   no replica of), where round-robin does not.
//! - RF 3: QUORUM writes and reads succeed with a node SIGKILLed; ALL fails
//!   with Unavailable naming 3 required and 2 alive; what was written while
//!   the node was down reaches it by hints once it is back (read at ONE
//!   from that node alone), and so does a DDL it missed (it pulls the
//!   schema); a registered connection gets STATUS_CHANGE DOWN and UP.
//! - Full scans and their paging cover every node's ranges, and a page
//!   started on one coordinator continues on another.
//! - A paused replica (SIGSTOP, not yet convicted): ALL writes time out
//!   with 2 of 3 acknowledgements; QUORUM reads speculate on the spare.
//! - A node cut off with iptables (a chain of our own, removed afterwards)
//!   refuses QUORUM while the majority side accepts it; after healing, a
//!   read at ALL repairs it (hints are off in that test: a 1 ms window), so
//!   every replica holds the data.
//!
//! Addresses: 127.0.13.x and 127.0.14.x.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    cluster, frame, http_get, metric, python, read_reply, startup_body, string, wait_for_state,
    ClusterCleanup,
};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/cluster_test.py")
}

/// Runs one mode of `cluster_test.py` against `nodes`; its stdout.
fn driver(dir: &Path, nodes: &[&str], args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("120")
        .arg(python())
        .arg(script())
        .arg(nodes.join(","))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let logs: Vec<String> = (1..=nodes.len())
            .map(|i| {
                let (_, out, _) = common::run_cluster(dir, &format!("logs node{i} --tail 30"));
                format!("node{i}:\n{out}")
            })
            .collect();
        panic!(
            "cluster_test.py {args:?} failed ({}):\n{stdout}\n{stderr}\n{}",
            output.status,
            logs.join("\n")
        );
    }
    stdout
}

fn scrape(node: &str) -> String {
    let addr: SocketAddr = format!("{node}:9180").parse().unwrap();
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn total(nodes: &[&str], series: &str) -> f64 {
    nodes.iter().map(|n| metric(&scrape(n), series)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_route_and_hand_off_hints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let _cleanup = ClusterCleanup(&dir);
    let nodes = ["127.0.13.1", "127.0.13.2", "127.0.13.3"];
    cluster(&dir, "start -n 3 --base-address 127.0.13.1");
    for node in nodes {
        wait_for_state(&nodes, node, "UN", Duration::from_secs(10));
    }

    let out = driver(&dir, &nodes, &["schema"]);
    eprintln!("{out}");

    // The Rust driver discovers every node from one contact point.
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(format!("{}:9042", nodes[2]))
        .connection_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("scylla driver connects");
    let mut found = Vec::new();
    for _ in 0..50 {
        found = session
            .get_cluster_state()
            .get_nodes_info()
            .iter()
            .map(|n| n.address.ip().to_string())
            .collect();
        if found.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    found.sort();
    assert_eq!(found, nodes, "the scylla driver's view of the cluster");
    drop(session);

    // Token-aware routing: every write lands on its partition's replica
    // (counted by the nodes, scraped by the script around its writes).
    // Statements whose replicas are awaited on a task: reads before
    // writes, many reads, more than a task does before a thread takes over.
    let out = driver(&dir, &nodes, &["shapes"]);
    assert!(out.contains("shapes ok"), "{out}");

    let out = driver(&dir, &nodes, &["routing", "token-aware", "300"]);
    assert!(out.contains("misrouted=0\n"), "{out}");
    for node in nodes {
        let writes = metric(
            &scrape(node),
            "ilion_client_requests_total{operation=\"write\"}",
        );
        assert!(writes > 0.0, "{node} got none of the token-aware writes");
    }
    let out = driver(&dir, &nodes, &["routing", "round-robin", "300"]);
    assert!(
        !out.contains("misrouted=0\n"),
        "round-robin should reach non-replicas (the check can fail): {out}"
    );

    // RF 3 with a node down: QUORUM works, ALL is Unavailable with counts.
    driver(&dir, &nodes, &["write", "QUORUM", "0", "100"]);
    driver(&dir, &nodes, &["read", "ALL", "0", "100"]);
    let mut events = register(nodes[0]);
    cluster(&dir, "kill node3");
    wait_for_state(&nodes[..2], nodes[2], "DN", Duration::from_secs(15));
    expect_status_event(&mut events, "DOWN", nodes[2]);
    let up = &nodes[..2];
    driver(&dir, up, &["write", "QUORUM", "100", "200"]);
    // A DDL it misses: it pulls the schema when it is back.
    driver(
        &dir,
        up,
        &["ddl", "CREATE TABLE ks.late (k int PRIMARY KEY, v text)"],
    );
    driver(&dir, up, &["read", "QUORUM", "0", "200"]);
    let out = driver(&dir, up, &["unavailable", "ALL"]);
    assert!(out.contains("required=3 alive=2"), "{out}");

    // Back up: the writes it missed arrive as hints.
    cluster(&dir, "start node3");
    wait_for_state(&nodes[..2], nodes[2], "UN", Duration::from_secs(15));
    expect_status_event(&mut events, "UP", nodes[2]);
    driver(&dir, &[nodes[2]], &["has-table", "ks", "late", "5"]);
    let out = driver(&dir, &[nodes[2]], &["count-one", "100", "200", "20"]);
    assert!(out.starts_with("found=100 "), "{out}");
    let replayed = total(up, "ilion_hints_replayed_total");
    assert!(replayed >= 100.0, "hints replayed: {replayed}");
    eprintln!("{out}; {replayed} hints replayed");

    // Full scans walk every node's ranges; paging resumes on another node.
    driver(&dir, &nodes, &["scan", "ONE", "200"]);
    driver(&dir, &nodes, &["scan", "QUORUM", "200"]);

    // A paused replica (not yet convicted): ALL times out with the counts,
    // QUORUM reads go on by speculating on the spare replica.
    let pid = pid_of(&dir, "node2");
    signal(pid, "STOP");
    let out = driver(&dir, &nodes[..1], &["timeout", "ALL"]);
    let before = metric(&scrape(nodes[0]), "ilion_speculative_retries_total");
    driver(&dir, &nodes[..1], &["read", "QUORUM", "0", "10"]);
    let speculated = metric(&scrape(nodes[0]), "ilion_speculative_retries_total") - before;
    signal(pid, "CONT");
    assert!(out.starts_with("received=2 required=3"), "{out}");
    assert!(
        speculated > 0.0,
        "no speculative retry while a replica was paused"
    );
}

/// A raw CQL connection to `node` registered for status, topology and
/// schema events.
fn register(node: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(format!("{node}:9042")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(&frame(4, 1, 0x01, &startup_body()))
        .unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().opcode, 0x02, "READY");
    let mut body = 3u16.to_be_bytes().to_vec();
    for kind in ["STATUS_CHANGE", "TOPOLOGY_CHANGE", "SCHEMA_CHANGE"] {
        body.extend(string(kind));
    }
    stream.write_all(&frame(4, 2, 0x0B, &body)).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().opcode, 0x02, "READY");
    stream
}

/// Reads events until a STATUS_CHANGE `change` for `address`:9042 (other
/// events are skipped); panics if none comes within 20 s.
fn expect_status_event(stream: &mut std::net::TcpStream, change: &str, address: &str) {
    let ip: std::net::Ipv4Addr = address.parse().unwrap();
    let mut wanted = string("STATUS_CHANGE");
    wanted.extend(string(change));
    wanted.push(4);
    wanted.extend(ip.octets());
    wanted.extend(9042i32.to_be_bytes());
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let Some(event) = read_reply(stream) else {
            break;
        };
        if event.opcode == 0x0C && event.body == wanted {
            return;
        }
    }
    panic!("no STATUS_CHANGE {change} event for {address}");
}

fn pid_of(dir: &Path, node: &str) -> u32 {
    std::fs::read_to_string(dir.join(node).join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// A chain of our own in the filter table, jumped to from INPUT; removed
/// (with everything in it) when dropped.
struct Firewall {
    chain: &'static str,
}

fn iptables(args: &[&str]) -> bool {
    Command::new("iptables")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or_else(|e| panic!("iptables is needed for the partition test: {e}"))
}

impl Firewall {
    fn new(chain: &'static str) -> Firewall {
        let firewall = Firewall { chain };
        firewall.remove();
        assert!(
            iptables(&["-w", "-N", chain]),
            "cannot create chain {chain}"
        );
        assert!(iptables(&["-w", "-I", "INPUT", "-j", chain]));
        firewall
    }

    /// Drops everything between `a` and `b`, both ways.
    fn cut(&self, a: &str, b: &str) {
        for (from, to) in [(a, b), (b, a)] {
            assert!(iptables(&[
                "-w", "-A", self.chain, "-s", from, "-d", to, "-j", "DROP"
            ]));
        }
    }

    fn heal(&self) {
        assert!(iptables(&["-w", "-F", self.chain]));
    }

    fn remove(&self) {
        while iptables(&["-w", "-D", "INPUT", "-j", self.chain]) {}
        iptables(&["-w", "-F", self.chain]);
        iptables(&["-w", "-X", self.chain]);
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.remove();
    }
}

#[test]
fn a_partitioned_minority_refuses_quorum_and_is_repaired_after_healing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let _cleanup = ClusterCleanup(&dir);
    let nodes = ["127.0.14.1", "127.0.14.2", "127.0.14.3"];
    cluster(
        &dir,
        "start -n 3 --base-address 127.0.14.1 --conf max_hint_window=1ms",
    );
    for node in nodes {
        wait_for_state(&nodes, node, "UN", Duration::from_secs(10));
    }
    driver(&dir, &nodes, &["schema"]);

    let firewall = Firewall::new("ILION_T14");
    firewall.cut(nodes[2], nodes[0]);
    firewall.cut(nodes[2], nodes[1]);
    wait_for_state(&nodes[..2], nodes[2], "DN", Duration::from_secs(15));
    wait_for_state(&[nodes[2]], nodes[0], "DN", Duration::from_secs(15));
    wait_for_state(&[nodes[2]], nodes[1], "DN", Duration::from_secs(15));

    // The majority side takes QUORUM writes; the minority refuses them.
    driver(&dir, &nodes[..2], &["write", "QUORUM", "0", "50"]);
    let out = driver(&dir, &[nodes[2]], &["refused", "QUORUM"]);
    eprintln!("minority answered {out}");

    firewall.heal();
    wait_for_state(&nodes[..2], nodes[2], "UN", Duration::from_secs(15));
    wait_for_state(&[nodes[2]], nodes[0], "UN", Duration::from_secs(15));
    // No hints (1 ms window): the minority node lacks the writes...
    let out = driver(&dir, &[nodes[2]], &["count-one", "0", "50", "0"]);
    assert!(out.starts_with("found=0 "), "{out}");
    // ...until a read at ALL repairs it.
    driver(&dir, &nodes[..1], &["read", "ALL", "0", "50"]);
    let out = driver(&dir, &[nodes[2]], &["count-one", "0", "50", "0"]);
    assert!(out.starts_with("found=50 "), "{out}");
    let repairs = total(&nodes, "ilion_read_repairs_total");
    assert!(repairs >= 50.0, "read repairs: {repairs}");
    drop(firewall);
}

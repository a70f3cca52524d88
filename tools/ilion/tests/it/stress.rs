//! Goal: `ilion stress` drives a real node as a user would run it: write
//! then read workloads with a summary, JSON and HdrHistogram output, a
//! mixed ratio, a rate cap that holds, a user profile, and a clear error
//! when nothing listens.

use crate::common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ilion_bin, Node};

fn stress(node_port: u16, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(ilion_bin())
        .arg("stress")
        .args(args)
        .args(["--port", &node_port.to_string()])
        .output()
        .expect("run ilion stress")
}

fn ok(output: &Output, node: &Node) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ilion stress failed ({}):\n{stdout}\n{}\nnode log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        node.log_text()
    );
    stdout
}

#[test]
fn stress_write_read_mixed_rate_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.native;

    // Write every key once (sequential), then read them back.
    let json = dir.path().join("write.json");
    let hdr = dir.path().join("write.hlog");
    let out = ok(
        &stress(
            port,
            &[
                "write",
                "-n",
                "5000",
                "--keys",
                "5000",
                "--distribution",
                "sequential",
                "--concurrency",
                "32",
                "--json",
                json.to_str().unwrap(),
                "--hdr-out",
                hdr.to_str().unwrap(),
            ],
        ),
        &node,
    );
    assert!(out.contains("operations     : 5000 (write 5000)"), "{out}");
    assert!(out.contains("errors         : 0"), "{out}");
    assert!(out.contains("latency p99.9"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["operations"], 5000);
    assert!(summary["ops_per_s"].as_f64().unwrap() > 0.0);
    assert!(summary["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let log = std::fs::read(&hdr).unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("Tag=write"),
        "HdrHistogram log"
    );

    let out = ok(
        &stress(port, &["read", "-n", "3000", "--keys", "5000"]),
        &node,
    );
    assert!(out.contains("operations     : 3000 (read 3000)"), "{out}");

    let out = ok(
        &stress(
            port,
            &[
                "mixed",
                "ratio(write=1,read=3)",
                "-n",
                "4000",
                "--keys",
                "5000",
                "--distribution",
                "zipf",
            ],
        ),
        &node,
    );
    assert!(out.contains("(write 1000, read 3000)"), "{out}");

    // --rate caps the throughput: 600 operations at 300/s take about 2 s.
    let started = Instant::now();
    let out = ok(
        &stress(
            port,
            &["write", "-n", "600", "--rate", "300", "--concurrency", "8"],
        ),
        &node,
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "a 300/s cap held 600 ops for {took:?}\n{out}"
    );

    // --duration runs for about that long, with progress lines each second.
    let out = ok(
        &stress(port, &["write", "--duration", "3s", "--rate", "200"]),
        &node,
    );
    let progress_lines = out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert!(progress_lines >= 2, "progress lines each second:\n{out}");

    // A user profile with its own table and statements.
    let profile = dir.path().join("profile.yaml");
    std::fs::write(
        &profile,
        "keyspace: shop\n\
         keyspace_definition: \"CREATE KEYSPACE IF NOT EXISTS shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}\"\n\
         table: orders\n\
         table_definition: CREATE TABLE IF NOT EXISTS shop.orders (id bigint, item int, note text, PRIMARY KEY (id, item))\n\
         queries:\n  insert: INSERT INTO shop.orders (id, item, note) VALUES (?, ?, ?)\n  read: SELECT * FROM shop.orders WHERE id = ?\n",
    )
    .unwrap();
    let out = ok(
        &stress(
            port,
            &[
                "mixed",
                "-n",
                "800",
                "--profile",
                profile.to_str().unwrap(),
                "--value-size",
                "20",
            ],
        ),
        &node,
    );
    assert!(out.contains("on shop.orders"), "{out}");
    assert!(out.contains("errors         : 0"), "{out}");
}

#[test]
fn stress_says_clearly_when_nothing_listens() {
    let port = common::free_port();
    let output = stress(port, &["write", "-n", "10", "--connect-timeout", "2"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn stress_refuses_bad_arguments_with_a_reason() {
    let port = common::free_port();
    let output = stress(port, &["write", "ratio(write=1)"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("only with the mixed workload"));
    let output = stress(port, &["mixed", "ratio(scan=1)"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown operation"));
}

/// `ilion stress scan` reads every row once by token ranges with paging
/// (the Spark connector's way), whatever the split and page sizes, and
/// reports rows per second.
#[test]
fn stress_scan_reads_every_row_once_by_token_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let port = node.ports.native;
    ok(
        &stress(
            port,
            &[
                "write",
                "-n",
                "12345",
                "--keys",
                "12345",
                "--distribution",
                "sequential",
                "--quiet",
            ],
        ),
        &node,
    );
    for (splits, page_size, concurrency) in
        [("1", "100000", "1"), ("37", "333", "8"), ("500", "7", "16")]
    {
        let out = ok(
            &stress(
                port,
                &[
                    "scan",
                    "--splits",
                    splits,
                    "--page-size",
                    page_size,
                    "--concurrency",
                    concurrency,
                ],
            ),
            &node,
        );
        assert!(
            out.contains("Rows scanned         : 12345\n"),
            "splits {splits}, page size {page_size}:\n{out}"
        );
        assert!(out.contains("Rows/s"), "{out}");
    }
    let refused = stress(port, &["scan", "--splits", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--splits must be between 1 and"));
}

//! Goal: the real `cqlsh` (PyPI 6.2.2, pinned, installed by `cargo xtask
//! venv`) runs a scripted session against a real node as a Cassandra user
//! would: DDL, inserts, SELECTs printed as cqlsh prints them (no raw bytes,
//! no warnings), server-side DESCRIBE, and clear errors.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::Node;

fn cqlsh() -> PathBuf {
    common::venv_bin("cqlsh")
}

fn run(node: &Node, args: &[&str]) -> (bool, String) {
    let output = Command::new("timeout")
        .arg("60")
        .arg(cqlsh())
        .arg("127.0.0.1")
        .arg(node.ports.native.to_string())
        .args(args)
        .env("CQLSH_NO_BUNDLED", "1")
        .output()
        .expect("run cqlsh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn scripted_session_prints_like_cassandra() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let script = dir.path().join("session.cql");
    std::fs::write(
        &script,
        "CREATE KEYSPACE demo WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n\
         USE demo;\n\
         CREATE TABLE users (id int PRIMARY KEY, name text, score double, joined timestamp, tags frozen<set<text>>, id2 uuid);\n\
         INSERT INTO users (id, name, score, joined, tags, id2) VALUES (1, 'Ada', 9.5, '2024-05-01 12:30:00+0000', {'math', 'code'}, 123e4567-e89b-12d3-a456-426614174000);\n\
         INSERT INTO users (id, name) VALUES (2, 'Grace');\n\
         SELECT id, name, score, joined, tags, id2 FROM users WHERE id = 1;\n\
         SELECT * FROM users WHERE id = 2;\n",
    )
    .unwrap();
    let (ok, out) = run(&node, &["-f", script.to_str().unwrap()]);
    assert!(ok, "{out}\n{}", node.log_text());
    for expected in [
        " id | name | score | joined                          | tags             | id2",
        "  1 |  Ada |   9.5 | 2024-05-01 12:30:00.000000+0000 | {'code', 'math'} | 123e4567-e89b-12d3-a456-426614174000",
        "(1 rows)",
        "Grace",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        !out.contains("Warning") && !out.contains("Failed to format"),
        "{out}"
    );

    let (ok, out) = run(&node, &["-e", "DESCRIBE KEYSPACES"]);
    assert!(
        ok && out.contains("demo") && out.contains("system_schema"),
        "{out}"
    );
    let (ok, out) = run(&node, &["-e", "DESCRIBE TABLE demo.users"]);
    assert!(
        ok && out.contains("CREATE TABLE demo.users (") && out.contains("PRIMARY KEY (id)"),
        "{out}"
    );
    let (ok, out) = run(
        &node,
        &[
            "-e",
            "SELECT cluster_name, release_version FROM system.local",
        ],
    );
    assert!(
        ok && out.contains("Test Cluster") && out.contains("5.0.0"),
        "{out}"
    );

    let (_, out) = run(&node, &["-e", "SELECT * FROM demo.nope"]);
    assert!(
        out.contains("InvalidRequest") && out.contains("unconfigured table nope"),
        "{out}"
    );
    let (_, out) = run(&node, &["-e", "SELECT * FRM demo.users"]);
    assert!(
        out.contains("SyntaxException") || out.contains("Syntax"),
        "{out}"
    );
}

/// COPY FROM and COPY TO move 10,000 rows through a CSV file unchanged.
#[test]
fn copy_from_and_to_csv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("n"), &[]);
    node.wait_ready(Duration::from_secs(20));
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    let mut csv = String::new();
    for i in 0..10_000 {
        csv.push_str(&format!("{i},name {i},{}\n", f64::from(i) * 0.5));
    }
    std::fs::write(&input, &csv).unwrap();
    let (ok, out) = run(&node, &["-e", "CREATE KEYSPACE c WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}; CREATE TABLE c.t (id int PRIMARY KEY, name text, score double);"]);
    assert!(ok, "{out}");
    let (ok, out) = run(
        &node,
        &[
            "-e",
            &format!("COPY c.t (id, name, score) FROM '{}'", input.display()),
        ],
    );
    assert!(
        ok && out.contains("10000 rows imported") && out.contains("(0 skipped)"),
        "{out}"
    );
    let (ok, out) = run(
        &node,
        &[
            "-e",
            &format!("COPY c.t (id, name, score) TO '{}'", output.display()),
        ],
    );
    assert!(ok && out.contains("10000 rows exported"), "{out}");
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(std::fs::read_to_string(&output).unwrap()),
        sorted(csv)
    );
}

/// With PasswordAuthenticator, `cqlsh -u/-p` logs in with the default
/// superuser, creates a role that then logs in itself; a wrong password is
/// refused with cqlsh's usual message.
#[test]
fn login_with_username_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ilion.yaml");
    std::fs::write(&config, "authenticator: PasswordAuthenticator\n").unwrap();
    let mut node = Node::start(
        &dir.path().join("n"),
        &["--config", config.to_str().unwrap()],
    );
    node.wait_ready(Duration::from_secs(20));
    let (ok, out) = run(
        &node,
        &[
            "-u",
            "cassandra",
            "-p",
            "cassandra",
            "-e",
            "CREATE ROLE reader WITH PASSWORD = 'pages' AND LOGIN = true; LIST ROLES",
        ],
    );
    assert!(ok, "{out}\n{}", node.log_text());
    assert!(out.contains("reader") && out.contains("cassandra"), "{out}");
    let (ok, out) = run(
        &node,
        &[
            "-u",
            "reader",
            "-p",
            "pages",
            "-e",
            "SELECT release_version FROM system.local",
        ],
    );
    assert!(ok && out.contains("5.0.0"), "{out}");
    let (ok, out) = run(
        &node,
        &[
            "-u",
            "reader",
            "-p",
            "wrong",
            "-e",
            "SELECT now() FROM system.local",
        ],
    );
    assert!(!ok, "a wrong password must fail: {out}");
    assert!(
        out.contains("Provided username reader and/or password are incorrect"),
        "{out}"
    );
    let (ok, out) = run(&node, &["-e", "SELECT now() FROM system.local"]);
    assert!(!ok && out.contains("requires authentication"), "{out}");
}

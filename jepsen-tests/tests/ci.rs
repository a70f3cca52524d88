//! Goal: the CI subset of the fault-injection suite passes on every
//! submission: each workload (set, register) under each nemesis
//! (partition, kill, pause) and the set under clock skew, a short run each
//! against five real nodes, every history checked valid, every run folder
//! complete. (The register under clock skew is not claimed linearizable:
//! last write wins by timestamp; it is run on demand, see the README.)
//!
//! Two tests, run side by side by nextest, each its runs one at a time on
//! a range of its own. Addresses: 127.0.40.x (set), 127.0.41.x (register).

use std::path::Path;
use std::process::Command;

fn harness() -> &'static str {
    env!("CARGO_BIN_EXE_jepsen-tests")
}

fn run(store: &Path, base_address: &str, workload: &str, nemesis: &str) {
    let output = Command::new("timeout")
        .arg("240")
        .arg(harness())
        .args([
            "test",
            "--workload",
            workload,
            "--nemesis",
            nemesis,
            "--time-limit",
            "20",
            "--fault-seconds",
            "4",
            "--nodes",
            "5",
            "--base-address",
            base_address,
            "--seed",
            "42",
            "--store",
        ])
        .arg(store)
        .output()
        .expect("run jepsen-tests");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{workload} under {nemesis} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(": valid "), "{stdout}");
}

#[test]
fn the_set_survives_every_nemesis() {
    let store = tempfile::tempdir().unwrap();
    for nemesis in ["partition", "kill", "pause", "clock"] {
        run(store.path(), "127.0.40.1", "set", nemesis);
    }
    check_run_folders(store.path(), 4);
}

#[test]
fn the_register_survives_every_nemesis() {
    let store = tempfile::tempdir().unwrap();
    for nemesis in ["partition", "kill", "pause"] {
        run(store.path(), "127.0.41.1", "register", nemesis);
    }
    check_run_folders(store.path(), 3);
}

/// Every run left a complete folder with a valid verdict.
fn check_run_folders(store: &Path, runs: usize) {
    let folders: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), runs, "one folder per run: {folders:?}");
    for folder in folders {
        for file in [
            "history.jsonl",
            "timeline.json",
            "verdict.json",
            "latency.png",
            "index.html",
        ] {
            let path = folder.join(file);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(size > 0, "{} is missing or empty", path.display());
        }
        let logs = std::fs::read_dir(folder.join("logs")).unwrap().count();
        assert_eq!(logs, 5, "five node logs in {}", folder.display());
        let verdict: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("verdict.json")).unwrap())
                .unwrap();
        assert_eq!(verdict["valid"], true, "{verdict}");
        assert!(
            verdict["faults"].as_u64().unwrap() >= 1,
            "no fault injected: {verdict}"
        );
    }
}

#[test]
fn an_unknown_nemesis_is_refused() {
    let output = Command::new(harness())
        .args(["test", "--nemesis", "meteor", "--time-limit", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown nemesis \"meteor\""), "{stderr}");
}

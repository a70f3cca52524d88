//! Goal: `ilion server` runs as a real process: it listens on its configured
//! port, answers a TCP connect, stops cleanly on SIGTERM and SIGINT within 5 s,
//! and refuses bad configuration with a message naming the key.

use crate::common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ilion_bin, Node, Ports};

const START_LIMIT: Duration = Duration::from_secs(20);
const STOP_LIMIT: Duration = Duration::from_secs(5);

#[test]
fn starts_listens_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("node"), &[]);
    node.wait_ready(START_LIMIT);
    assert!(
        dir.path().join("node/data").is_dir(),
        "data directory created"
    );
    assert!(
        dir.path().join("node/commitlog").is_dir(),
        "commitlog directory created"
    );
    let status = node
        .signal_and_wait(libc::SIGTERM, STOP_LIMIT)
        .expect("ilion must exit within 5 s of SIGTERM");
    assert!(
        status.success(),
        "clean exit expected, got {status}; log:\n{}",
        node.log_text()
    );
    let log = node.log_text();
    assert!(log.contains("storage engine open"), "log:\n{log}");
    assert!(
        log.contains("storage engine flushed and closed"),
        "log:\n{log}"
    );
    assert!(log.contains("shutdown complete"), "log:\n{log}");
}

#[test]
fn stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("node"), &[]);
    node.wait_ready(START_LIMIT);
    let status = node
        .signal_and_wait(libc::SIGINT, STOP_LIMIT)
        .expect("ilion must exit within 5 s of SIGINT");
    assert!(status.success(), "{status}");
}

#[test]
fn json_logs_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("node"), &["--log-format", "json"]);
    node.wait_ready(START_LIMIT);
    node.signal_and_wait(libc::SIGTERM, STOP_LIMIT)
        .expect("exit");
    let log = node.log_text();
    let first = log.lines().next().expect("at least one log line");
    assert!(
        first.starts_with('{') && first.contains("\"level\""),
        "not JSON: {first}"
    );
}

fn run_server_expecting_failure(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &std::path::Path,
) -> String {
    let mut command = Command::new(ilion_bin());
    command
        .arg("server")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG");
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(!output.status.success(), "bad configuration must fail");
    assert_eq!(output.status.code(), Some(2));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn refuses_unknown_key_in_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ilion.yaml");
    std::fs::write(&file, "cluster_name: x\nnative_transport_prot: 9042\n").unwrap();
    let stderr = run_server_expecting_failure(&["-c", file.to_str().unwrap()], &[], dir.path());
    assert!(
        stderr.contains("unknown field `native_transport_prot`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn refuses_bad_type_in_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ilion.yaml");
    std::fs::write(&file, "num_tokens: sixteen\n").unwrap();
    let stderr = run_server_expecting_failure(&["-c", file.to_str().unwrap()], &[], dir.path());
    assert!(stderr.contains("num_tokens: invalid type"), "{stderr}");
}

#[test]
fn refuses_unknown_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_server_expecting_failure(&[], &[("ILION_CLUSTER_NAEM", "x")], dir.path());
    assert!(stderr.contains("ILION_CLUSTER_NAEM"), "{stderr}");
}

#[test]
fn refuses_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let ports = Ports::free();
    let stderr = run_server_expecting_failure(
        &[
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
            "--native-transport-port",
            &port,
            "--storage-port",
            &ports.storage.to_string(),
            "--admin-port",
            &ports.admin.to_string(),
            "--metrics-port",
            &ports.metrics.to_string(),
        ],
        &[],
        dir.path(),
    );
    assert!(stderr.contains("native_transport_port:"), "{stderr}");
    assert!(stderr.contains(&port), "{stderr}");
}

#[test]
fn refuses_unwritable_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let file = dir.path().join("ilion.yaml");
    std::fs::write(
        &file,
        format!(
            "data_file_directories: [{}]\ncommitlog_directory: {}\nhints_directory: {}\n",
            blocker.join("data").display(),
            dir.path().join("cl").display(),
            dir.path().join("hints").display()
        ),
    )
    .unwrap();
    let ports = Ports::free();
    let mut args = vec!["-c".to_owned(), file.display().to_string()];
    args.extend(ports.as_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = run_server_expecting_failure(&args, &[], dir.path());
    assert!(stderr.contains("data_file_directories:"), "{stderr}");
    assert!(stderr.contains("not writable"), "{stderr}");
}

/// Precedence end to end: flag beats environment beats file.
#[test]
fn flag_beats_environment_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ilion.yaml");
    let ports = Ports::free();
    // The file names a port that the environment overrides, then a flag overrides that.
    std::fs::write(&file, "native_transport_port: 1\nnum_tokens: 0\n").unwrap();
    // num_tokens 0 from the file is fixed by the environment, so the node can start.
    let mut child = Command::new(ilion_bin())
        .arg("server")
        .arg("-c")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .args(ports.as_args())
        .env("ILION_NUM_TOKENS", "8")
        .env("ILION_NATIVE_TRANSPORT_PORT", "2")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports.native));
    let deadline = std::time::Instant::now() + START_LIMIT;
    let mut connected = false;
    while std::time::Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            connected = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        connected,
        "node should listen on the flag's port; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

//! Helpers shared by the tests that run a real `ilion` process: free ports,
//! a node in a temporary directory, waiting for its port, stopping it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ilion` binary cargo built for these tests.
pub fn ilion_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ilion"))
}

/// A port nobody listens on right now (the kernel picks it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// The four ports of a node, all free and distinct.
pub struct Ports {
    pub native: u16,
    pub storage: u16,
    pub admin: u16,
    pub metrics: u16,
}

impl Ports {
    pub fn free() -> Ports {
        // Hold all four listeners at once so the kernel cannot hand out one twice.
        let listeners: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
            .collect();
        let port = |i: usize| listeners[i].local_addr().expect("local addr").port();
        Ports {
            native: port(0),
            storage: port(1),
            admin: port(2),
            metrics: port(3),
        }
    }

    pub fn as_args(&self) -> Vec<String> {
        vec![
            "--native-transport-port".into(),
            self.native.to_string(),
            "--storage-port".into(),
            self.storage.to_string(),
            "--admin-port".into(),
            self.admin.to_string(),
            "--metrics-port".into(),
            self.metrics.to_string(),
        ]
    }
}

/// A running `ilion server` that is killed when dropped.
pub struct Node {
    pub child: Child,
    pub ports: Ports,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Node {
    /// Starts `ilion server` with data under `data_dir` and the given extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Node {
        let ports = Ports::free();
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("create log file");
        let child = Command::new(ilion_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(ports.as_args())
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn ilion server");
        Node {
            child,
            ports,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub fn native_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.native))
    }

    /// Waits until the CQL port accepts connections, or panics with the log.
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ilion exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&self.native_addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "ilion did not listen within {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits up to `limit` for the process to exit.
    pub fn signal_and_wait(
        &mut self,
        signal: i32,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let pid = self.child.id() as libc::pid_t;
        let rc = unsafe_kill(pid, signal);
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: libc::pid_t, signal: i32) -> i32 {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ilion <args>` to completion; returns (exit code, stdout, stderr).
pub fn run_ilion<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let output = Command::new(ilion_bin())
        .args(args)
        .output()
        .expect("run ilion");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `ilion cluster --dir <dir> <args>` (args split at whitespace).
pub fn run_cluster(dir: &Path, args: &str) -> (i32, String, String) {
    let mut all = vec![
        "cluster".to_owned(),
        "--dir".to_owned(),
        dir.display().to_string(),
    ];
    all.extend(args.split_whitespace().map(str::to_owned));
    run_ilion(&all)
}

/// Clears the `ilion cluster` in a directory when dropped, so a failed
/// assertion leaves no node running.
pub struct ClusterCleanup<'a>(pub &'a Path);

impl Drop for ClusterCleanup<'_> {
    fn drop(&mut self) {
        let _ = run_cluster(self.0, "clear");
    }
}

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

/// Where test ports come from: below the kernel's ephemeral range
/// (32768–60999 here), so no client connection of a parallel test (drivers,
/// internode connections) can take a port between our pick and the
/// server's bind, as a kernel-picked port could be.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port in [`TEST_PORTS`] nobody listens on right now, held open until
/// the caller drops it.
fn bind_test_port() -> TcpListener {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for _ in 0..1000 {
        let draw = DRAWS.fetch_add(1, Ordering::Relaxed);
        let mixed =
            (seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
        let port = TEST_PORTS.start + ((mixed >> 32) % span) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener;
        }
    }
    panic!("no free port in {TEST_PORTS:?} after 1000 tries");
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    bind_test_port().local_addr().expect("local addr").port()
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
        // Hold all four listeners at once so no port is picked twice.
        let listeners: Vec<TcpListener> = (0..4).map(|_| bind_test_port()).collect();
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
        Node::start_with_env(data_dir, extra, &[])
    }

    /// [`Node::start`] with environment variables set for the process.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Node {
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
            .envs(env.iter().copied())
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

    /// Waits up to `limit` for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
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

/// `ilion cluster --dir <dir> <args>`, which must succeed; its stdout.
pub fn cluster(dir: &Path, args: &str) -> String {
    let (code, out, err) = run_cluster(dir, args);
    assert_eq!(code, 0, "ilion cluster {args}: {err}");
    out
}

/// The two-letter state `nodetool status` on `on` shows for `address`.
pub fn nodetool_state(on: &str, address: &str) -> Option<String> {
    let (code, out, _) = run_ilion(&["nodetool", "-h", on, "status"]);
    if code != 0 {
        return None;
    }
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(address))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// Waits until every observer's `nodetool status` shows `address` in
/// `state` (`UN`, `DN`, …); returns how long it took. Panics past `limit`
/// with what each observer shows.
pub fn wait_for_state(observers: &[&str], address: &str, state: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if observers
            .iter()
            .all(|on| nodetool_state(on, address).as_deref() == Some(state))
        {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            let views: Vec<String> = observers
                .iter()
                .map(|on| {
                    let (_, out, err) = run_ilion(&["nodetool", "-h", on, "status"]);
                    format!("{on}:\n{out}{err}")
                })
                .collect();
            panic!(
                "{address} not {state} within {limit:?}:\n{}",
                views.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A program of the test venv (`cargo xtask venv` makes it): `python`,
/// `cqlsh`.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    assert!(
        path.exists(),
        "no {name} at {}: run `cargo xtask venv` (cargo xtask ci does it first)",
        path.display()
    );
    path
}

/// The Python of the test venv.
pub fn python() -> PathBuf {
    venv_bin("python")
}

/// One HTTP request to `addr`; returns the status code and the body.
pub fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` from `addr`.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

/// The value of the Prometheus sample whose name and labels are exactly `series`.
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
}

/// A native protocol frame as a raw-socket test reads it.
pub struct Reply {
    pub version: u8,
    pub stream: i16,
    pub opcode: u8,
    pub body: Vec<u8>,
}

/// A native protocol frame (uncompressed) with this header and body.
pub fn frame(version: u8, stream: i16, opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![version, 0];
    out.extend_from_slice(&stream.to_be_bytes());
    out.push(opcode);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A protocol `[string]`.
pub fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// A STARTUP body with only CQL_VERSION.
pub fn startup_body() -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend(string("CQL_VERSION"));
    body.extend(string("3.4.7"));
    body
}

/// The next frame on `stream`, or None when it fails or times out.
pub fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    use std::io::Read;
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).ok()?;
    let len = i32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(Reply {
        version: header[0],
        stream: i16::from_be_bytes([header[2], header[3]]),
        opcode: header[4],
        body,
    })
}

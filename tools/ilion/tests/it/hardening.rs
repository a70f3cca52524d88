//! Goal: a real `ilion server` survives what a hostile or careless client,
//! a damaged disk or a full one does to it (issue 17), each point a
//! regression that failed before its fix:
//!
//! - statements nested thousands deep get errors, the node serves on;
//! - empty, long and odd names are refused, and the schema survives a
//!   restart whole;
//! - more rows than any cap come back whole (paged, unpaged, by token
//!   range, through cqlsh's COPY TO);
//! - a damaged commitlog record stops start-up naming the segment, and
//!   `commit_failure_policy: ignore` loses only that record;
//! - SIGTERM flushes: the next start replays nothing;
//! - a full disk fails writes, leaves no partial segments, logs its error
//!   once a minute, and the node starts again once space is freed;
//! - silent connections and partial frames cannot lock clients out or hold
//!   the node's memory; the prepared cache is bounded in bytes; probes
//!   answer with hundreds of idle connections on the metrics port; idle
//!   connections on the internode and admin ports cost little and are
//!   capped per source address, so one host cannot lock peers out;
//! - options out of range and a 1 MB clustering key are refused; login
//!   time does not tell whether a role exists; protocol v3 PREPARE works.
//!
//! Client source addresses of their own: 127.0.16.2, 127.0.17.2, 127.0.18.2,
//! 127.0.18.3, 127.0.18.4.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{frame, python, startup_body, venv_bin, Node};

const START_LIMIT: Duration = Duration::from_secs(30);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/hardening_test.py")
}

/// Runs one mode of `hardening_test.py` against `node`; its stdout.
fn attack(node: &Node, args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("300")
        .arg(python())
        .arg(script())
        .arg(format!("127.0.0.1:{}", node.ports.native))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "hardening_test.py {args:?} failed ({}):\n{stdout}\n{stderr}\nnode log (tail):\n{}",
        output.status,
        tail(&node.log_text(), 40)
    );
    stdout
}

/// How many of the rows `fill` writes (0..`rows`) the node holds.
fn present_rows(node: &Node, rows: usize) -> usize {
    let out = attack(node, &["present", &rows.to_string()]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a row count: {out}"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn config_file(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("ilion.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start(data: &Path, extra: &[&str]) -> Node {
    let mut node = Node::start(data, extra);
    node.wait_ready(START_LIMIT);
    node
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
fn statements_nested_thousands_deep_are_refused_and_the_node_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let out = attack(&node, &["nesting"]);
    assert!(out.contains("nesting: all checks passed"), "{out}");
    assert!(!node.log_text().contains("overflowed its stack"));
}

#[test]
fn bad_names_are_refused_and_the_schema_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut node = start(&data, &[]);
    let out = attack(&node, &["names"]);
    assert!(out.contains("names: all checks passed"), "{out}");
    for round in 0..2 {
        let status = node
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(30))
            .expect("SIGTERM stops the node");
        assert!(status.success(), "round {round}: {status}");
        node = start(&data, &[]);
        let (code, out, err) = common::run_ilion(&[
            "shell",
            "127.0.0.1",
            &node.ports.native.to_string(),
            "-e",
            "SELECT v FROM hard.kept WHERE k = 1",
        ]);
        assert_eq!(code, 0, "round {round}: {out}{err}\n{}", node.log_text());
        assert!(out.contains("(1 rows)"), "round {round}: {out}");
    }
}

#[test]
fn more_rows_than_any_cap_come_back_whole() {
    const ROWS: usize = 250_000;
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let out = attack(&node, &["rows", &ROWS.to_string()]);
    assert!(out.contains("rows: all 250000 rows"), "{out}");
    // cqlsh's COPY TO: every row in the file.
    let csv = dir.path().join("r.csv");
    let output = Command::new("timeout")
        .arg("300")
        .arg(venv_bin("cqlsh"))
        .arg("127.0.0.1")
        .arg(node.ports.native.to_string())
        .arg("-e")
        .arg(format!("COPY hard.r (p, c) TO '{}'", csv.display()))
        .output()
        .expect("run cqlsh");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert_eq!(lines, ROWS, "COPY TO exported {lines} of {ROWS} rows");
}

/// The commitlog segment holding the most records.
fn fullest_segment(commitlog: &Path) -> (PathBuf, usize) {
    std::fs::read_dir(commitlog)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let used = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
            (p, used)
        })
        .max_by_key(|(_, used)| *used)
        .expect("a segment")
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_commitlog_stops_start_up_and_the_policy_skips_only_that_record() {
    const ROWS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let config = config_file(dir.path(), "commitlog_sync: batch\n");
    let config = config.to_str().unwrap();
    let mut node = start(&data, &["--config", config]);
    attack(&node, &["fill", &ROWS.to_string()]);
    node.signal_and_wait(libc::SIGKILL, Duration::from_secs(10))
        .expect("SIGKILL");
    let (segment, used) = fullest_segment(&data.join("commitlog"));
    assert!(used > 500_000, "{} holds {used} bytes", segment.display());
    flip(&segment, used / 3);

    // Refused, naming the segment, the offset and what follows.
    let mut refused = Node::start(&data, &["--config", config]);
    let status = refused
        .wait_exit(Duration::from_secs(30))
        .expect("a node with a damaged commitlog must not start");
    assert!(!status.success());
    let log = refused.log_text();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(log.contains(&name), "{log}");
    assert!(log.contains("whole records follow the damage"), "{log}");
    assert!(log.contains("commit_failure_policy: ignore"), "{log}");
    drop(refused);

    // With the policy: only the damaged record is lost.
    let mut node = Node::start_with_env(
        &data,
        &["--config", config],
        &[("ILION_COMMIT_FAILURE_POLICY", "ignore")],
    );
    node.wait_ready(START_LIMIT);
    let present = present_rows(&node, ROWS);
    assert_eq!(present, ROWS - 1, "only the damaged record may be lost");
    assert!(node.log_text().contains("damaged record skipped"));
}

#[test]
fn sigterm_and_drain_flush_and_the_next_start_replays_nothing() {
    const ROWS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut node = start(&data, &[]);
    attack(&node, &["fill", &ROWS.to_string()]);
    let status = node
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(30))
        .expect("SIGTERM stops the node");
    assert!(status.success());
    assert!(node
        .log_text()
        .contains("storage engine flushed and closed"));
    let mut node = start(&data, &[]);
    let log = node.log_text();
    assert!(log.contains("replayed_mutations=0"), "{log}");
    let out = attack(&node, &["count", &ROWS.to_string()]);
    assert!(out.contains("all 20000 rows present"), "{out}");
    // `nodetool drain` does the same: killed after it, the node replays nothing.
    attack(&node, &["fill", "100"]);
    let (code, out, err) =
        common::run_ilion(&["nodetool", "-p", &node.ports.admin.to_string(), "drain"]);
    assert_eq!(code, 0, "{out}{err}");
    node.signal_and_wait(libc::SIGKILL, Duration::from_secs(10))
        .expect("SIGKILL");
    let node = start(&data, &[]);
    let log = node.log_text();
    assert!(log.contains("replayed_mutations=0"), "{log}");
    let out = attack(&node, &["count", &ROWS.to_string()]);
    assert!(out.contains("all 20000 rows present"), "{out}");
}

/// A tmpfs of `size_mib` at `dir`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size_mib: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until it is full; returns the bytes written.
fn fill_disk(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = file.sync_all();
    written
}

#[test]
fn a_full_disk_fails_writes_and_the_node_restarts_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), 64);
    let config = config_file(dir.path(), "commitlog_segment_size: 8MiB\n");
    let config = config.to_str().unwrap();

    // A node whose disk fills while it runs.
    let data = disk.0.join("n1");
    let mut node = start(&data, &["--config", config]);
    attack(&node, &["fill", "1000"]);
    let filler = disk.0.join("filler");
    fill_disk(&filler);
    let out = attack(&node, &["fill_until_error"]);
    let failed: usize = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("failed="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(failed > 0, "writes must fail on a full disk: {out}");
    // Give the commitlog thread time to retry its spare segment.
    std::thread::sleep(Duration::from_secs(3));
    let log = node.log_text();
    let repeats = log
        .matches("cannot prepare the next commitlog segment")
        .count();
    assert!(
        repeats <= 2,
        "the same error {repeats} times:\n{}",
        tail(&log, 20)
    );
    // No partly made segment: every segment file has its full size.
    for entry in std::fs::read_dir(data.join("commitlog")).unwrap() {
        let path = entry.unwrap().path();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 8 * 1024 * 1024, "{} has {len} bytes", path.display());
    }
    node.signal_and_wait(libc::SIGKILL, Duration::from_secs(10))
        .expect("SIGKILL");
    std::fs::remove_file(&filler).unwrap();
    let node = start(&data, &["--config", config]);
    let present = present_rows(&node, 1000);
    assert_eq!(present, 1000, "rows written before the disk filled");
    drop(node);
    std::fs::remove_dir_all(&data).unwrap();

    // A node restarted with less room than a new segment needs: it
    // replays, flushes and removes the old segments before it makes one
    // (making it first, as before, failed with ENOSPC).
    let data = disk.0.join("n2");
    let mut node = start(&data, &["--config", config]);
    attack(&node, &["fill", "1000"]);
    node.signal_and_wait(libc::SIGKILL, Duration::from_secs(10))
        .expect("SIGKILL");
    let ballast = disk.0.join("ballast");
    fill_disk(&ballast);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&ballast)
        .unwrap();
    let keep = std::fs::metadata(&ballast)
        .unwrap()
        .len()
        .saturating_sub(4 * 1024 * 1024);
    file.set_len(keep).unwrap();
    drop(file);
    let node = start(&data, &["--config", config]);
    let present = present_rows(&node, 1000);
    assert_eq!(present, 1000, "rows replayed on a nearly full disk");
}

/// A TCP connection to `server` from the loopback address `source`.
fn connect_from(source: [u8; 4], server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), socket.connect(server))
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))?
    })?;
    stream.into_std().and_then(|s| {
        s.set_nonblocking(false)?;
        Ok(s)
    })
}

/// Whether the server closed `stream` (a read gives EOF or an error
/// within `wait`).
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn silent_connections_neither_lock_clients_out_nor_stay() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "native_transport_handshake_timeout: 3s\n");
    let node = start(
        &dir.path().join("n"),
        &["--config", config.to_str().unwrap()],
    );
    let server = node.native_addr();
    let mut silent: Vec<TcpStream> = (0..1024)
        .filter_map(|_| connect_from([127, 0, 16, 2], server).ok())
        .collect();
    assert!(silent.len() >= 1000, "{} connections made", silent.len());
    // A driver from another address connects and queries within a second.
    let out = attack(&node, &["ping"]);
    let seconds: f64 = out
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::MAX);
    assert!(seconds < 1.0, "{out}");
    // Past the per-address limit the rest were closed at once; the others
    // are closed once the handshake time is up.
    std::thread::sleep(Duration::from_secs(4));
    let mut still_open = 0;
    for stream in &mut silent {
        if !closed_by_server(stream, Duration::from_millis(20)) {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "silent connections left open");
    assert!(node.log_text().contains("client connection refused"));
}

#[test]
fn partial_frames_cannot_hold_the_nodes_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let server = node.native_addr();
    let pid = node.child.id();
    let before = rss_bytes(pid);
    // Before STARTUP only small frames are read.
    let mut early = connect_from([127, 0, 17, 2], server).unwrap();
    let mut header = frame(4, 0, 0x07, &[]);
    header[5..9].copy_from_slice(&(1_000_000i32).to_be_bytes());
    early.write_all(&header).unwrap();
    early
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reply = common::read_reply(&mut early).expect("an error reply");
    assert_eq!(reply.opcode, 0x00, "ERROR");
    assert!(String::from_utf8_lossy(&reply.body).contains("before STARTUP and login"));
    // 200 connections start, then each sends most of a 16 MiB QUERY.
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut s = connect_from([127, 0, 17, 2], server).unwrap();
        s.write_all(&frame(4, 1, 0x01, &startup_body())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let ready = common::read_reply(&mut s).expect("READY");
        assert_eq!(ready.opcode, 0x02);
        let mut header = frame(4, 2, 0x07, &[]);
        header[5..9].copy_from_slice(&(16 * 1024 * 1024i32).to_be_bytes());
        s.write_all(&header).unwrap();
        s.set_nonblocking(true).unwrap();
        streams.push(s);
    }
    let chunk = vec![b'x'; 256 * 1024];
    let mut sent = vec![0usize; streams.len()];
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let mut progress = false;
        for (s, sent) in streams.iter_mut().zip(sent.iter_mut()) {
            if *sent >= 15 * 1024 * 1024 {
                continue;
            }
            if let Ok(n) = s.write(&chunk) {
                *sent += n;
                progress |= n > 0;
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let total_sent: usize = sent.iter().sum();
    let during = rss_bytes(pid);
    let grew = during.saturating_sub(before);
    eprintln!(
        "sent {} MiB in partial frames; RSS {} -> {} MiB",
        total_sent >> 20,
        before >> 20,
        during >> 20
    );
    // 64 MiB of request bytes per address, and slack for buffers.
    assert!(
        grew < 160 * 1024 * 1024,
        "RSS grew by {} MiB with 200 partial 16 MiB frames",
        grew >> 20
    );
    // Clients from elsewhere are unaffected.
    let out = attack(&node, &["v3"]);
    assert!(out.contains("v3: all checks passed"), "{out}");
    drop(streams);
}

#[test]
fn the_prepared_cache_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "prepared_statements_cache_size: 32MiB\n");
    let node = start(
        &dir.path().join("n"),
        &["--config", config.to_str().unwrap()],
    );
    let pid = node.child.id();
    attack(&node, &["prepare_big", "5"]);
    let before = rss_bytes(pid);
    let out = attack(&node, &["prepare_big", "300"]);
    assert!(out.contains("prepared 300 statements"), "{out}");
    let after = rss_bytes(pid);
    let grew = after.saturating_sub(before);
    eprintln!("RSS {} -> {} MiB", before >> 20, after >> 20);
    assert!(
        grew < 200 * 1024 * 1024,
        "300 prepared statements of 1 MB grew RSS by {} MiB",
        grew >> 20
    );
}

#[test]
fn probes_answer_with_hundreds_of_idle_connections_open() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let metrics = SocketAddr::from(([127, 0, 0, 1], node.ports.metrics));
    let idle: Vec<TcpStream> = (0..500)
        .filter_map(|_| connect_from([127, 0, 18, 2], metrics).ok())
        .collect();
    assert_eq!(idle.len(), 500);
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        let (status, _) = common::http_get(metrics, "/probes/live");
        times.push(started.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    assert!(
        times[4] < Duration::from_millis(100),
        "median probe {:?}: {times:?}",
        times[4]
    );
    assert!(times[8] < Duration::from_secs(1), "{times:?}");
    drop(idle);
}

/// How many of `streams` the server has closed (checked without waiting,
/// after the server has had time to refuse them: which ones are refused
/// depends on the order their tasks run, not the order they connected).
fn count_closed(streams: &mut [TcpStream]) -> usize {
    std::thread::sleep(Duration::from_secs(2));
    let mut buf = [0u8; 256];
    let mut closed = 0;
    for stream in streams.iter_mut() {
        stream.set_nonblocking(true).unwrap();
        closed += usize::from(match stream.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        });
    }
    closed
}

#[test]
fn idle_messaging_connections_cost_little_and_are_capped_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let pid = node.child.id();
    let internode = SocketAddr::from(([127, 0, 0, 1], node.ports.storage));
    let before = rss_bytes(pid);
    // From one address: each says it speaks messaging, then idles.
    let open_from = |source: [u8; 4], count: usize| -> Vec<TcpStream> {
        (0..count)
            .map(|n| {
                let mut stream = connect_from(source, internode)
                    .unwrap_or_else(|e| panic!("connection {n}: {e} (is `ulimit -n` over 1,200?)"));
                stream.write_all(b"ILMS\x01").unwrap();
                stream
            })
            .collect()
    };
    let mut hostile = open_from([127, 0, 18, 3], 1100);
    let during = rss_bytes(pid);
    let grew = during.saturating_sub(before);
    eprintln!(
        "RSS {} -> {} MiB with 1,100 idle messaging connections",
        before >> 20,
        during >> 20
    );
    // Was 64 KiB of read buffer per connection held open (69 MiB for these).
    assert!(grew < 24 * 1024 * 1024, "RSS grew by {} MiB", grew >> 20);
    // One address keeps at most 16; a peer elsewhere still gets in.
    assert_eq!(count_closed(&mut hostile), 1100 - 16);
    let mut peer = open_from([127, 0, 18, 4], 1);
    assert_eq!(count_closed(&mut peer), 0, "another address is served");
    assert!(
        node.log_text()
            .contains("connection refused: too many open service=\"messaging\""),
        "the refusal is logged"
    );
    // Clients are served all along.
    let out = attack(&node, &["v3"]);
    assert!(out.contains("v3: all checks passed"), "{out}");
}

#[test]
fn idle_grpc_connections_are_capped_per_source_on_the_internode_and_admin_ports() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for (port, per_source) in [(node.ports.storage, 32), (node.ports.admin, 64)] {
        let server = SocketAddr::from(([127, 0, 0, 1], port));
        let open_from = |source: [u8; 4], count: usize| -> Vec<TcpStream> {
            (0..count)
                .map(|_| {
                    let mut stream = connect_from(source, server).unwrap();
                    stream.write_all(preface).unwrap();
                    stream
                })
                .collect()
        };
        let mut hostile = open_from([127, 0, 18, 3], per_source + 20);
        assert_eq!(
            count_closed(&mut hostile),
            20,
            "connections past {per_source} from one address on port {port} are closed"
        );
        let mut other = open_from([127, 0, 18, 4], 1);
        assert_eq!(
            count_closed(&mut other),
            0,
            "another address is served on port {port}"
        );
        drop(hostile);
    }
    let log = node.log_text();
    assert!(
        log.contains("service=\"internode gRPC\" limit=1024 per_source_limit=32")
            && log.contains("service=\"admin\" limit=256 per_source_limit=64"),
        "refusals are logged: {}",
        tail(&log, 10)
    );
    let admin = node.ports.admin.to_string();
    let (code, out, err) = common::run_ilion(&["nodetool", "-p", &admin, "info"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn out_of_range_options_and_huge_clustering_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let out = attack(&node, &["validation"]);
    assert!(out.contains("validation: all checks passed"), "{out}");
}

#[test]
fn login_time_does_not_tell_whether_a_role_exists() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "authenticator: PasswordAuthenticator\n");
    let node = start(
        &dir.path().join("n"),
        &["--config", config.to_str().unwrap()],
    );
    let out = attack(&node, &["login_timing"]);
    assert!(out.contains("login_timing:"), "{out}");
}

#[test]
fn protocol_v3_prepares_executes_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("n"), &[]);
    let out = attack(&node, &["v3"]);
    assert!(out.contains("v3: all checks passed"), "{out}");
}

/// Runs one mode of `hardening_test.py` against the cluster `nodes`.
fn attack_cluster(dir: &Path, nodes: &[&str], args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("120")
        .arg(python())
        .arg(script())
        .arg(format!("{}:9042", nodes.join(",")))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let logs: Vec<String> = (1..=nodes.len())
            .map(|i| common::run_cluster(dir, &format!("logs node{i} --tail 30")).1)
            .collect();
        panic!(
            "hardening_test.py {args:?} failed ({}):\n{stdout}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            logs.join("\n")
        );
    }
    stdout
}

/// TRUNCATE reaches every replica (and is Unavailable with a node down);
/// schema merged from a peer raises TYPE and UPDATED KEYSPACE events; a
/// traced request shows the replica's own steps.
/// Addresses: 127.0.15.x.
#[test]
fn truncate_schema_events_and_replica_traces_cross_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let _cleanup = common::ClusterCleanup(&dir);
    let nodes = ["127.0.15.1", "127.0.15.2"];
    common::cluster(&dir, "start -n 2 --base-address 127.0.15.1");
    for node in nodes {
        common::wait_for_state(&nodes, node, "UN", Duration::from_secs(15));
    }
    let out = attack_cluster(&dir, &nodes, &["events"]);
    assert!(out.contains("events: all checks passed"), "{out}");
    let out = attack_cluster(&dir, &nodes, &["replica_traces"]);
    assert!(out.contains("replica_traces: all checks passed"), "{out}");
    let out = attack_cluster(&dir, &nodes, &["truncate"]);
    assert!(out.contains("truncate: all checks passed"), "{out}");
    common::cluster(&dir, "kill node2");
    common::wait_for_state(&nodes[..1], nodes[1], "DN", Duration::from_secs(20));
    let out = attack_cluster(&dir, &nodes, &["truncate_down"]);
    assert!(out.contains("Unavailable as expected"), "{out}");
}

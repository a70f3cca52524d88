//! Goal: a write the engine acknowledged survives SIGKILL at any moment —
//! including in the middle of flushes and compactions — and nothing that was
//! not acknowledged comes back corrupted.
//!
//! The parent runs this same test binary as a child (`CRASH_CHILD_DIR` set)
//! that writes sequential keys in `batch` sync mode with tiny memtables and
//! aggressive size-tiered compaction, so flushes and compactions run all the
//! time, and prints `ack N` after each acknowledged write. The parent kills it
//! at a random moment, reopens the engine, and checks every acknowledged key;
//! then starts the child again after the last key it saw. A second test does
//! the same in `periodic` mode: a process kill loses nothing the kernel has,
//! so acknowledged writes older than one sync period must all be there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage_lsm::model::{Cell, Mutation, PartitionKey, PartitionUpdate, Row, TableId};
use storage_lsm::{
    CompactionStrategy, Engine, EngineConfig, SliceQuery, SyncMode, SystemClock, TableOptions,
};

const TABLE: TableId = TableId(7);
const KILLS: usize = 20;
/// Writes per child thread per round, so that checking stays quick.
const WRITES_PER_THREAD_MAX: usize = 2_000;

fn key(i: u64) -> PartitionKey {
    // Spread keys over the ring like real tokens do.
    let token = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as i64;
    PartitionKey::new(token, i.to_be_bytes().to_vec())
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(200, (i % 251) as u8);
    v
}

fn config(dir: &std::path::Path, sync: SyncMode) -> EngineConfig {
    let mut config = EngineConfig::new(dir.join("data"), dir.join("commitlog"));
    config.sync = sync;
    config.clock = Arc::new(SystemClock);
    config.memtable_flush_bytes = 256 * 1024;
    config.commitlog_segment_size_bytes = 1024 * 1024;
    config.compaction_bytes_per_s = 0;
    config
}

fn sync_mode(name: &str) -> SyncMode {
    match name {
        "batch" => SyncMode::Batch,
        _ => SyncMode::Periodic(Duration::from_millis(100)),
    }
}

/// The child: writes until killed. Does nothing when run as a normal test.
#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var("CRASH_CHILD_DIR") else {
        return;
    };
    let start: u64 = std::env::var("CRASH_CHILD_START").unwrap().parse().unwrap();
    let sync = sync_mode(&std::env::var("CRASH_CHILD_SYNC").unwrap());
    let engine = Engine::open(config(std::path::Path::new(&dir), sync)).unwrap();
    if !engine.has_table(TABLE) {
        let options = TableOptions {
            compaction: CompactionStrategy::SizeTiered {
                min_threshold: 2,
                max_threshold: 8,
            },
            ..TableOptions::default()
        };
        engine.create_table(TABLE, options).unwrap();
    }
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let engine = &engine;
            move || {
                let mut out = std::io::stdout();
                for i in (start + t..).step_by(4).take(WRITES_PER_THREAD_MAX) {
                    let update = PartitionUpdate {
                        rows: vec![Row::new(
                            Vec::new(),
                            vec![Cell::live(1, i as i64 + 1, value(i))],
                        )],
                        ..Default::default()
                    };
                    engine
                        .apply(Mutation {
                            table: TABLE,
                            key: key(i),
                            update,
                        })
                        .unwrap();
                    use std::io::Write;
                    writeln!(out, "ack {i}").unwrap();
                    out.flush().unwrap();
                }
                // Enough for this round: wait for the kill.
                std::thread::sleep(Duration::from_secs(3600));
            }
        })
        .collect();
    std::thread::scope(|scope| {
        for thread in threads {
            scope.spawn(thread);
        }
    });
}

struct Round {
    acked: Vec<u64>,
}

fn run_child(dir: &std::path::Path, start: u64, sync: &str, kill_after: Duration) -> Round {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CRASH_CHILD_DIR", dir)
        .env("CRASH_CHILD_START", start.to_string())
        .env("CRASH_CHILD_SYNC", sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack ") {
                acked.push(n.parse::<u64>().unwrap());
            }
        }
        acked
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    Round {
        acked: reader.join().unwrap(),
    }
}

fn check(dir: &std::path::Path, acked: &[u64], sync: SyncMode) -> usize {
    let mut config = config(dir, sync);
    config.background = false;
    let engine = Engine::open(config).unwrap();
    let mut missing = Vec::new();
    for &i in acked {
        let got = engine.read(TABLE, &key(i), &SliceQuery::all()).unwrap();
        match got {
            Some(partition) => {
                let cell = &partition.rows[0].cells[0];
                assert_eq!(
                    cell.value_bytes().unwrap().as_ref(),
                    value(i).as_slice(),
                    "key {i} corrupted"
                );
            }
            None => missing.push(i),
        }
    }
    // Anything present beyond the acknowledged keys must be intact too.
    let page = engine
        .scan(TABLE, &storage_lsm::TokenRange::all(), None, usize::MAX)
        .unwrap();
    for partition in page.partitions {
        let i = u64::from_be_bytes(partition.key.key[..8].try_into().unwrap());
        assert_eq!(
            partition.rows[0].cells[0].value_bytes().unwrap().as_ref(),
            value(i).as_slice()
        );
    }
    assert!(
        missing.is_empty() || !matches!(sync, SyncMode::Batch),
        "lost acknowledged writes {missing:?}"
    );
    missing.len()
}

fn crash_rounds(sync_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sync = sync_mode(sync_name);
    let mut all_acked: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let started = Instant::now();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(150 + seed % 500);
        let result = run_child(dir.path(), next, sync_name, delay);
        all_acked.extend(&result.acked);
        next = all_acked.iter().max().map_or(next, |m| m + 1) + 8;
        let missing = check(dir.path(), &all_acked, sync);
        // Periodic mode: a process kill keeps what the kernel has, so nothing
        // acknowledged may be missing either.
        assert_eq!(
            missing, 0,
            "round {round}: {missing} acknowledged writes missing"
        );
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "crash test too slow"
        );
    }
    assert!(
        all_acked.len() > 1_000,
        "only {} writes acknowledged in {KILLS} rounds",
        all_acked.len()
    );
    // Flushes and compactions really ran: several SSTable generations exist.
    let sstables = std::fs::read_dir(dir.path().join("data").join(TABLE.dir_name()))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("TOC.txt"))
        .count();
    assert!(sstables >= 1);
}

#[test]
fn acknowledged_writes_survive_sigkill_in_batch_mode() {
    crash_rounds("batch");
}

#[test]
fn acknowledged_writes_survive_sigkill_in_periodic_mode() {
    crash_rounds("periodic");
}

//! Goal: damaged files are detected by checksum and named, never a panic and
//! never wrong data; the rest of the table and other tables keep working;
//! commitlog damage stops replay (or, by policy, costs only the damaged
//! record), and a torn tail costs only the torn record.

mod common;

use std::path::{Path, PathBuf};

use common::{engine, write, TABLE};
use storage_lsm::model::{Cell, PartitionKey, PartitionUpdate, Row, TableId};
use storage_lsm::{Error, ManualClock, SliceQuery, TableOptions};

const OTHER: TableId = TableId(43);
const PARTITIONS: u64 = 2_000;

fn key(i: u64) -> PartitionKey {
    PartitionKey::new(i as i64 * 1_000, i.to_be_bytes().to_vec())
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:08}-{}", "x".repeat(100)).into_bytes()
}

fn fill(engine: &storage_lsm::Engine, table: TableId) {
    for i in 0..PARTITIONS {
        let update = PartitionUpdate {
            rows: vec![Row::new(vec![1u8], vec![Cell::live(1, 1, value(i))])],
            ..Default::default()
        };
        engine
            .apply(storage_lsm::model::Mutation {
                table,
                key: key(i),
                update,
            })
            .unwrap();
    }
}

fn setup() -> (tempfile::TempDir, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let engine = engine(dir.path(), &clock);
    engine.create_table(TABLE, TableOptions::default()).unwrap();
    engine.create_table(OTHER, TableOptions::default()).unwrap();
    fill(&engine, TABLE);
    fill(&engine, OTHER);
    engine.flush_all().unwrap();
    engine.shutdown().unwrap();
    (dir, clock)
}

fn component(dir: &Path, table: TableId, suffix: &str) -> PathBuf {
    let table_dir = dir.join("data").join(table.dir_name());
    std::fs::read_dir(&table_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap()
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn read_all(engine: &storage_lsm::Engine, table: TableId) -> (usize, Vec<Error>) {
    let mut ok = 0;
    let mut errors = Vec::new();
    for i in 0..PARTITIONS {
        match engine.read(table, &key(i), &SliceQuery::all()) {
            Ok(Some(p)) => {
                assert_eq!(
                    p.rows[0].cells[0].value_bytes().unwrap().as_ref(),
                    value(i).as_slice(),
                    "wrong data for {i}"
                );
                ok += 1;
            }
            Ok(None) => panic!("partition {i} silently missing"),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

#[test]
fn flipped_data_block_byte_is_named_and_contained() {
    let (dir, clock) = setup();
    let data = component(dir.path(), TABLE, "Data.db");
    flip(&data, 100);
    let engine = engine(dir.path(), &clock);
    let (ok, errors) = read_all(&engine, TABLE);
    assert!(!errors.is_empty(), "damage not detected");
    assert!(
        ok > 0,
        "one damaged chunk must not take the whole table down"
    );
    for error in &errors {
        let text = error.to_string();
        assert!(
            text.contains("Data.db") && text.contains("offset"),
            "{text}"
        );
    }
    let (other_ok, other_errors) = read_all(&engine, OTHER);
    assert_eq!(other_ok, PARTITIONS as usize);
    assert!(other_errors.is_empty());
}

#[test]
fn flipped_index_byte_is_named_and_contained() {
    let (dir, clock) = setup();
    let index = component(dir.path(), TABLE, "Index.db");
    flip(&index, 20);
    let engine = engine(dir.path(), &clock);
    let (ok, errors) = read_all(&engine, TABLE);
    assert!(!errors.is_empty(), "damage not detected");
    assert!(ok > 0);
    assert!(
        errors.iter().all(|e| e.to_string().contains("Index.db")),
        "{:?}",
        errors[0]
    );
    assert_eq!(read_all(&engine, OTHER).0, PARTITIONS as usize);
}

#[test]
fn flipped_filter_byte_keeps_reads_correct() {
    let (dir, clock) = setup();
    let filter = component(dir.path(), TABLE, "Filter.db");
    flip(&filter, 30);
    let engine = engine(dir.path(), &clock);
    // The damaged filter is ignored (logged with its path): every read still answers right.
    assert_eq!(read_all(&engine, TABLE).0, PARTITIONS as usize);
}

#[test]
fn damaged_statistics_make_only_that_table_unavailable() {
    let (dir, clock) = setup();
    let stats = component(dir.path(), TABLE, "Statistics.db");
    flip(&stats, 20);
    let engine = engine(dir.path(), &clock);
    let error = engine
        .read(TABLE, &key(1), &SliceQuery::all())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("Statistics.db") && error.contains("unavailable"),
        "{error}"
    );
    assert_eq!(engine.unavailable_tables().len(), 1);
    assert_eq!(read_all(&engine, OTHER).0, PARTITIONS as usize);
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort_by_key(|p| {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        name.trim_start_matches("CommitLog-")
            .parse::<u64>()
            .unwrap()
    });
    segments
}

/// Writes PARTITIONS mutations without flushing, over several small segments.
fn unflushed(dir: &Path, clock: &ManualClock) {
    let mut config = storage_lsm::EngineConfig::new(dir.join("data"), dir.join("commitlog"));
    config.background = false;
    config.commitlog_segment_size_bytes = 64 * 1024;
    config.clock = std::sync::Arc::new(clock.clone());
    config.memtable_flush_bytes = usize::MAX;
    config.memtable_total_bytes_max = usize::MAX;
    let engine = storage_lsm::Engine::open(config).unwrap();
    engine.create_table(TABLE, TableOptions::default()).unwrap();
    for i in 0..PARTITIONS {
        write(
            &engine,
            &key(i),
            PartitionUpdate {
                rows: vec![Row::new(vec![1u8], vec![Cell::live(1, 1, value(i))])],
                ..Default::default()
            },
        );
    }
    // Dropped without a flush: the commitlog alone holds the data.
}

/// The partitions an engine holds, of those `unflushed` wrote.
fn present(engine: &storage_lsm::Engine) -> Vec<u64> {
    (0..PARTITIONS)
        .filter(|&i| {
            engine
                .read(TABLE, &key(i), &SliceQuery::all())
                .unwrap()
                .is_some()
        })
        .collect()
}

/// Regression (issue 17): one flipped byte in the middle of a segment with
/// records after it used to be cut as a "torn tail", dropping every record
/// after it while the node started as if healthy.
#[test]
fn damaged_commitlog_record_refuses_to_open_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    unflushed(dir.path(), &clock);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "want several segments, got {}", segs.len());
    // The middle of an earlier segment, and the middle of the last one.
    for victim in [&segs[1], segs.last().unwrap()] {
        let used = std::fs::read(victim)
            .unwrap()
            .iter()
            .rposition(|&b| b != 0)
            .unwrap();
        flip(victim, used / 2);
        let config = common::config(dir.path(), &clock);
        match storage_lsm::Engine::open(config) {
            Err(Error::CommitlogDamaged {
                path,
                records_after,
                ..
            }) => {
                assert_eq!(&path, victim);
                assert!(records_after > 10, "{records_after} records after");
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a damaged commitlog must not open by default"),
        }
        flip(victim, used / 2);
    }
    // Nothing was lost by refusing: with the bytes mended, all replays.
    let engine = engine(dir.path(), &clock);
    assert_eq!(present(&engine).len() as u64, PARTITIONS);
}

#[test]
fn damaged_commitlog_record_is_skipped_alone_when_the_policy_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    unflushed(dir.path(), &clock);
    let segs = segments(dir.path());
    let last = segs.last().unwrap();
    let used = std::fs::read(last)
        .unwrap()
        .iter()
        .rposition(|&b| b != 0)
        .unwrap();
    flip(last, used / 2);
    flip(&segs[1], used / 3);
    let mut config = common::config(dir.path(), &clock);
    config.commitlog_replay = storage_lsm::ReplayPolicy::SkipDamaged;
    let engine = storage_lsm::Engine::open(config).unwrap();
    let report = &engine.replay;
    assert_eq!(report.damaged.len(), 2, "{report:?}");
    assert!(report.torn_tail.is_none(), "{report:?}");
    // Exactly the two damaged records are missing; everything after each
    // of them replayed.
    let present = present(&engine);
    assert_eq!(present.len() as u64, PARTITIONS - 2, "{report:?}");
    assert!(present.contains(&(PARTITIONS - 1)));
    assert!(dir.path().join("commitlog").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".damaged")));
}

#[test]
fn presized_segments_replay_cleanly_up_to_their_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    unflushed(dir.path(), &clock);
    let segs = segments(dir.path());
    let last = segs.last().unwrap();
    assert_eq!(
        std::fs::metadata(last).unwrap().len(),
        64 * 1024,
        "segments are created at their full size"
    );
    // A clean replay: the zeros after each segment's records are its end.
    {
        let engine = engine(dir.path(), &clock);
        assert!(engine.replay.damaged.is_empty(), "{:?}", engine.replay);
        assert!(engine.replay.torn_tail.is_none(), "{:?}", engine.replay);
        assert_eq!(engine.replay.mutations, PARTITIONS);
    }
}

#[test]
fn torn_commitlog_tail_is_cut_at_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    unflushed(dir.path(), &clock);
    let last = segments(dir.path()).pop().unwrap();
    // Segments are created at full size; the records end at the last
    // nonzero byte (a record's CRC is never all zeros).
    let bytes = std::fs::read(&last).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(end - 7).unwrap();
    let engine = engine(dir.path(), &clock);
    assert!(engine.replay.torn_tail.is_some());
    assert!(engine.replay.damaged.is_empty());
    let present = (0..PARTITIONS)
        .filter(|&i| {
            engine
                .read(TABLE, &key(i), &SliceQuery::all())
                .unwrap()
                .is_some()
        })
        .count() as u64;
    assert_eq!(present, PARTITIONS - 1, "only the torn record may be lost");
}

//! Goal: no bytes a disk or a peer can hold make the engine's readers
//! panic: the mutation codec (arbitrary bytes, and valid encodings with a
//! flipped byte), commitlog replay of arbitrary and damaged segments under
//! both replay policies, and SSTables with a byte flipped anywhere in any
//! component (reads answer data or an error naming the file). Property-based
//! fuzzing with `proptest`, kept short for CI; longer runs:
//! `PROPTEST_CASES=20000 cargo test -p storage-lsm --test fuzz_readers`.

mod common;

use std::path::PathBuf;

use common::{engine, write, TABLE};
use proptest::prelude::*;
use storage_lsm::codec::{Reader, Writer};
use storage_lsm::commitlog::{CommitLog, ReplayPolicy};
use storage_lsm::model::{Cell, Mutation, PartitionKey, PartitionUpdate, Row};
use storage_lsm::{ManualClock, SliceQuery, TableOptions, TokenRange};

fn mutation(i: u32, len: usize) -> Mutation {
    Mutation {
        table: TABLE,
        key: PartitionKey::new(i64::from(i) * 7919, i.to_be_bytes().to_vec()),
        update: PartitionUpdate {
            rows: vec![Row::new(
                i.to_be_bytes().to_vec(),
                vec![Cell::live(1, 1, vec![i as u8; len])],
            )],
            ..Default::default()
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn the_mutation_codec_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Reader::new(&bytes).mutation();
        let _ = Reader::new(&bytes).update();
    }

    #[test]
    fn flipped_mutations_never_panic(
        i in any::<u32>(),
        len in 0usize..200,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut w = Writer::new();
        w.mutation(&mutation(i, len));
        let mut bytes = w.buf;
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        let _ = Reader::new(&bytes).mutation();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn damaged_commitlogs_replay_or_refuse_never_panic(
        count in 1u32..200,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = CommitLog::create(
                dir.path(),
                storage_lsm::SyncMode::Batch,
                64 * 1024,
                true,
                1,
            ).unwrap();
            for i in 0..count {
                log.append(&mutation(i, (i % 90) as usize)).unwrap();
            }
            log.sync_now().unwrap();
        }
        let segment: PathBuf = dir.path().join("CommitLog-1.log");
        let mut bytes = std::fs::read(&segment).unwrap();
        let used = bytes.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
        for (at, flip) in &flips {
            let at = at.index(used);
            bytes[at] ^= flip;
        }
        bytes.splice(used..used, garbage.iter().copied());
        bytes.truncate(64 * 1024);
        std::fs::write(&segment, &bytes).unwrap();
        for policy in [ReplayPolicy::Stop, ReplayPolicy::SkipDamaged] {
            let mut replayed = 0u32;
            let mut foreign = 0u32;
            let result = CommitLog::replay(dir.path(), policy, |m| {
                if m.table != TABLE {
                    foreign += 1;
                }
                replayed += 1;
                Ok(())
            });
            prop_assert!(foreign == 0, "a damaged record replayed as another table's");
            if let Ok((_, report)) = &result {
                prop_assert!(replayed as u64 == report.mutations);
                prop_assert!(replayed <= count + 1);
            }
        }
    }
}

/// An engine with a few flushed SSTables, then every component with a byte
/// flipped at a random place: reads and scans give data or errors.
#[test]
fn sstables_with_a_flipped_byte_anywhere_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    {
        let engine = engine(dir.path(), &clock);
        engine.create_table(TABLE, TableOptions::default()).unwrap();
        for i in 0..400u32 {
            let m = mutation(i, 40 + (i % 100) as usize);
            write(&engine, &m.key, m.update);
        }
        engine.flush_all().unwrap();
        engine.shutdown().unwrap();
    }
    let table_dir = dir.path().join("data").join(TABLE.dir_name());
    let components: Vec<PathBuf> = std::fs::read_dir(&table_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    assert!(!components.is_empty());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(
            &(
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                1u8..=255,
            ),
            |(which, at, flip)| {
                let path = &components[which.index(components.len())];
                let original = std::fs::read(path).unwrap();
                let mut damaged = original.clone();
                if !damaged.is_empty() {
                    let at = at.index(damaged.len());
                    damaged[at] ^= flip;
                }
                std::fs::write(path, &damaged).unwrap();
                let opened = storage_lsm::Engine::open(common::config(dir.path(), &clock));
                if let Ok(engine) = opened {
                    for i in (0..400u32).step_by(7) {
                        let key = mutation(i, 0).key;
                        let _ = engine.read(TABLE, &key, &SliceQuery::all());
                    }
                    let _ = engine.scan(TABLE, &TokenRange::all(), None, usize::MAX);
                }
                std::fs::write(path, &original).unwrap();
                Ok(())
            },
        )
        .unwrap();
}

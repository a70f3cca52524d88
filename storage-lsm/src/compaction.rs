//! Compaction: choosing SSTables to merge (size-tiered, leveled, time-window)
//! and merging them into new ones, purging what may be purged.
//!
//! A compaction merges its inputs partition by partition with the same
//! [`MergeIterator`] reads use, then:
//! - tombstones, and expired cells (as tombstones dated at their expiry), are dropped only when older than `gc_grace_seconds` **and**
//!   no SSTable or memtable outside the compaction may hold the partition
//!   with data at or below the tombstone's timestamp (else that data would
//!   come back to life);
//! - a partition that only one input holds is copied byte for byte, without
//!   decoding, when that input holds no tombstone and no expiring cell
//!   (its statistics say so): merging and purging it would change nothing.
//!
//! Crash safety: after the outputs are published, a log
//! `compaction-<gen>.log` listing the inputs is written and fsynced; then the
//! inputs are deleted and the log removed. At open, a leftover log's inputs
//! are deleted ([`recover_interrupted`]). Without a log, a crash leaves inputs
//! and outputs side by side, which reads merge correctly.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fs;
use crate::memtable::Memtable;
use crate::merge::{Atom, AtomSource, MergeIterator, PartitionHeader};
use crate::model::{CellValue, ClusteringPosition, DeletionTime, PartitionKey, Row};
use crate::sstable::format::Component;
use crate::sstable::{Descriptor, SSTable, SSTablePartitionSource, SSTableWriter};
use crate::table::{CompactionStrategy, Table, TableView};

/// Index entries read per input per step when merging partition keys.
const KEY_BATCH: usize = 256;
/// Size-tiered: SSTables below this size all share one bucket.
const STCS_SMALL_BYTES: u64 = 50 * 1024 * 1024;
/// Leveled: SSTables in level 0 before they are compacted into level 1.
const LCS_L0_TRIGGER: usize = 4;

/// A chosen compaction: inputs and the level of the outputs.
#[derive(Debug, Clone)]
pub struct CompactionTask {
    pub inputs: Vec<Arc<SSTable>>,
    pub output_level: u32,
    /// Cut outputs at this many uncompressed bytes (leveled), or never.
    pub output_size_bytes: Option<u64>,
}

/// A running compaction as `nodetool compactionstats` shows it: bytes of
/// data written against the inputs' uncompressed size.
#[derive(Debug)]
pub struct CompactionProgress {
    pub table: crate::model::TableId,
    /// "Compaction" (strategy-chosen) or "Major compaction".
    pub kind: &'static str,
    pub total_bytes: u64,
    pub done_bytes: AtomicU64,
}

impl CompactionProgress {
    pub fn new(table: &Table, task: &CompactionTask, kind: &'static str) -> CompactionProgress {
        CompactionProgress {
            table: table.id,
            kind,
            total_bytes: task
                .inputs
                .iter()
                .map(|s| s.stats.uncompressed_size_bytes)
                .sum(),
            done_bytes: AtomicU64::new(0),
        }
    }
}

/// Shared compaction throughput limit, in bytes per second (0 = unlimited).
#[derive(Debug, Default)]
pub struct Throttle {
    pub bytes_per_s: AtomicU64,
}

impl Throttle {
    pub fn new(bytes_per_s: u64) -> Throttle {
        Throttle {
            bytes_per_s: AtomicU64::new(bytes_per_s),
        }
    }

    /// Sleeps as needed so `written` bytes since `started` respect the limit.
    fn pace(&self, written: u64, started: Instant) {
        let rate = self.bytes_per_s.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(written as f64 / rate as f64);
        let elapsed = started.elapsed();
        if due > elapsed {
            std::thread::sleep((due - elapsed).min(Duration::from_millis(500)));
        }
    }
}

/// Picks the next compaction for a table, if any is due.
pub fn pick(
    view: &TableView,
    strategy: &CompactionStrategy,
    busy: &[u64],
) -> Option<CompactionTask> {
    let candidates: Vec<Arc<SSTable>> = view
        .sstables
        .iter()
        .filter(|s| !busy.contains(&s.generation()))
        .cloned()
        .collect();
    match strategy {
        CompactionStrategy::SizeTiered {
            min_threshold,
            max_threshold,
        } => pick_size_tiered(candidates, *min_threshold, *max_threshold).map(|inputs| {
            CompactionTask {
                inputs,
                output_level: 0,
                output_size_bytes: None,
            }
        }),
        CompactionStrategy::Leveled {
            sstable_size_bytes,
            fanout,
        } => pick_leveled(
            &view.sstables,
            &candidates,
            busy,
            *sstable_size_bytes,
            *fanout,
        ),
        CompactionStrategy::TimeWindow { window_s } => pick_time_window(candidates, *window_s),
    }
}

fn pick_size_tiered(
    mut sstables: Vec<Arc<SSTable>>,
    min_threshold: usize,
    max_threshold: usize,
) -> Option<Vec<Arc<SSTable>>> {
    sstables.sort_by_key(|s| s.stats.data_size_bytes);
    let mut buckets: Vec<Vec<Arc<SSTable>>> = Vec::new();
    for sstable in sstables {
        let size = sstable.stats.data_size_bytes;
        let fits = buckets.last().is_some_and(|bucket| {
            let average =
                bucket.iter().map(|s| s.stats.data_size_bytes).sum::<u64>() / bucket.len() as u64;
            (size <= STCS_SMALL_BYTES && average <= STCS_SMALL_BYTES)
                || size <= average + average / 2
        });
        if fits {
            if let Some(bucket) = buckets.last_mut() {
                bucket.push(sstable);
            }
        } else {
            buckets.push(vec![sstable]);
        }
    }
    buckets
        .into_iter()
        .filter(|b| b.len() >= min_threshold.max(2))
        .max_by_key(|b| b.len())
        .map(|mut bucket| {
            bucket.truncate(max_threshold.max(2));
            bucket
        })
}

fn overlaps(a: &SSTable, b: &SSTable) -> bool {
    a.stats.first() <= b.stats.last() && b.stats.first() <= a.stats.last()
}

fn pick_leveled(
    all: &[Arc<SSTable>],
    candidates: &[Arc<SSTable>],
    busy: &[u64],
    sstable_size_bytes: u64,
    fanout: u64,
) -> Option<CompactionTask> {
    let level_of = |s: &Arc<SSTable>| s.stats.level;
    let in_level = |level: u32| -> Vec<Arc<SSTable>> {
        all.iter()
            .filter(|s| level_of(s) == level)
            .cloned()
            .collect()
    };
    let free = |set: &[Arc<SSTable>]| set.iter().all(|s| !busy.contains(&s.generation()));
    let level0: Vec<Arc<SSTable>> = candidates
        .iter()
        .filter(|s| level_of(s) == 0)
        .cloned()
        .collect();
    if level0.len() >= LCS_L0_TRIGGER {
        let mut inputs = level0.clone();
        inputs.extend(
            in_level(1)
                .into_iter()
                .filter(|s1| level0.iter().any(|s0| overlaps(s0, s1))),
        );
        if free(&inputs) {
            return Some(CompactionTask {
                inputs,
                output_level: 1,
                output_size_bytes: Some(sstable_size_bytes),
            });
        }
    }
    let max_level = all.iter().map(level_of).max().unwrap_or(0);
    for level in 1..=max_level {
        let sstables = in_level(level);
        let size: u64 = sstables
            .iter()
            .map(|s| s.stats.uncompressed_size_bytes)
            .sum();
        let target = sstable_size_bytes.saturating_mul(fanout.max(2).saturating_pow(level));
        if size <= target {
            continue;
        }
        let Some(chosen) = sstables
            .iter()
            .filter(|s| !busy.contains(&s.generation()))
            .min_by_key(|s| s.generation())
        else {
            continue;
        };
        let mut inputs = vec![chosen.clone()];
        inputs.extend(
            in_level(level + 1)
                .into_iter()
                .filter(|s| overlaps(chosen, s)),
        );
        if free(&inputs) {
            return Some(CompactionTask {
                inputs,
                output_level: level + 1,
                output_size_bytes: Some(sstable_size_bytes),
            });
        }
    }
    None
}

fn pick_time_window(sstables: Vec<Arc<SSTable>>, window_s: i64) -> Option<CompactionTask> {
    let window_us = window_s.max(1).saturating_mul(1_000_000);
    let mut windows: BTreeMap<i64, Vec<Arc<SSTable>>> = BTreeMap::new();
    for sstable in sstables {
        let window = sstable.stats.max_timestamp.div_euclid(window_us);
        windows.entry(window).or_default().push(sstable);
    }
    let newest = windows.keys().next_back().copied()?;
    for (window, sstables) in windows.iter().rev() {
        if *window == newest {
            if let Some(inputs) = pick_size_tiered(sstables.clone(), 4, 32) {
                return Some(CompactionTask {
                    inputs,
                    output_level: 0,
                    output_size_bytes: None,
                });
            }
        } else if sstables.len() > 1 {
            return Some(CompactionTask {
                inputs: sstables.clone(),
                output_level: 0,
                output_size_bytes: None,
            });
        }
    }
    None
}

/// Decides which tombstones of one partition may be dropped.
struct Purger {
    gc_before_s: i64,
    /// Tombstones at or above this timestamp might shadow data elsewhere.
    max_purgeable_timestamp: i64,
    now_s: i64,
}

impl Purger {
    fn can_purge(&self, deletion: &DeletionTime) -> bool {
        deletion.local_deletion_time_s < self.gc_before_s
            && deletion.timestamp < self.max_purgeable_timestamp
    }

    fn deletion(&self, deletion: Option<DeletionTime>) -> Option<DeletionTime> {
        deletion.filter(|d| !self.can_purge(d))
    }

    fn row(&self, mut row: Row) -> Row {
        row.deletion = self.deletion(row.deletion);
        row.cells = std::mem::take(&mut row.cells)
            .into_iter()
            .filter(|cell| match cell.value {
                CellValue::Tombstone { deleted_at_s } => {
                    !self.can_purge(&DeletionTime::new(cell.timestamp, deleted_at_s))
                }
                // An expired cell is dead; it goes once it could go as a
                // tombstone dated at its expiry. It is not turned into a
                // tombstone first: that would change which cell wins a tie of
                // timestamps against a cell outside this compaction.
                CellValue::Expiring { expires_at_s, .. } => {
                    expires_at_s > self.now_s
                        || !self.can_purge(&DeletionTime::new(cell.timestamp, expires_at_s))
                }
                CellValue::Live(_) => true,
            })
            .collect();
        row
    }
}

/// The merged, purged atoms of one partition, fed to the writer.
struct PurgingSource {
    merge: MergeIterator,
    purger: Purger,
}

impl AtomSource for PurgingSource {
    fn next_atom(&mut self) -> Result<Option<Atom>> {
        while let Some(atom) = self.merge.next_atom()? {
            match atom {
                Atom::Row(row) => {
                    let row = self.purger.row(row);
                    if !row.is_empty() {
                        return Ok(Some(Atom::Row(row)));
                    }
                }
                Atom::Marker(mut marker) => {
                    marker.before = self.purger.deletion(marker.before);
                    marker.after = self.purger.deletion(marker.after);
                    if marker.before != marker.after {
                        return Ok(Some(Atom::Marker(marker)));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// One input's position in a compaction: the SSTable, its next index
/// entries, the last key fetched, and whether it has no more.
type InputCursor = (
    Arc<SSTable>,
    std::collections::VecDeque<crate::sstable::format::IndexEntry>,
    Option<PartitionKey>,
    bool,
);

/// A partition that some inputs hold, merged and purged, for the writer.
struct MergedPartition {
    header: PartitionHeader,
    atoms: PurgingSource,
}

/// Merges the partition `key` from the inputs that hold it (`holders`,
/// each with `key` first in its queue, which this takes), purging what no
/// SSTable outside the compaction (`others`) and no memtable can hold
/// older data for.
fn merged_partition<'a>(
    holders: impl Iterator<Item = &'a mut InputCursor>,
    key: &PartitionKey,
    others: &[Arc<SSTable>],
    memtables: &[Arc<Memtable>],
    now_s: i64,
    gc_grace_s: i64,
) -> Result<MergedPartition> {
    let mut headers = Vec::new();
    let mut sources: Vec<Box<dyn AtomSource>> = Vec::new();
    for (sstable, queue, _, _) in holders {
        if let Some(entry) = queue.pop_front() {
            let mut partition = sstable.partition_at(entry)?;
            headers.push(std::mem::take(&mut partition.header));
            sources.push(Box::new(SSTablePartitionSource::new(
                sstable.clone(),
                partition,
                ClusteringPosition::bottom(),
                ClusteringPosition::top(),
                false,
            )));
        }
    }
    let max_purgeable_timestamp = others
        .iter()
        .filter(|s| s.may_contain(key))
        .map(|s| s.stats.min_timestamp)
        .chain(
            memtables
                .iter()
                .filter(|m| m.get(key).is_some())
                .filter_map(|m| m.timestamp_range().map(|(min, _)| min)),
        )
        .min()
        .unwrap_or(i64::MAX);
    let purger = Purger {
        gc_before_s: now_s.saturating_sub(gc_grace_s),
        max_purgeable_timestamp,
        now_s,
    };
    let header = PartitionHeader::merge(headers);
    let merge = MergeIterator::new(sources, false, header.deletion)?;
    Ok(MergedPartition {
        header: PartitionHeader {
            deletion: purger.deletion(header.deletion),
            static_row: header
                .static_row
                .map(|row| purger.row(row))
                .filter(|row| !row.is_empty()),
        },
        atoms: PurgingSource { merge, purger },
    })
}

/// The output the next partition goes to: the last one, or a new one when
/// there is none yet or the last reached the task's output size.
fn output_for<'w>(
    outputs: &'w mut Vec<SSTableWriter>,
    table: &Table,
    task: &CompactionTask,
    now_s: i64,
) -> Result<&'w mut SSTableWriter> {
    let needs_new = match (outputs.last(), task.output_size_bytes) {
        (None, _) => true,
        (Some(w), Some(limit)) => w.uncompressed_len() >= limit,
        (Some(_), None) => false,
    };
    if needs_new {
        let descriptor = Descriptor::in_dir(&table.dir, table.allocate_generation());
        outputs.push(SSTableWriter::create(descriptor, task.output_level, now_s)?);
    }
    outputs
        .last_mut()
        .ok_or_else(|| Error::InvalidArgument("compaction has no output".into()))
}

/// Runs one compaction of `table` and publishes its outputs.
pub fn run(
    table: &Table,
    task: &CompactionTask,
    now_s: i64,
    throttle: &Throttle,
    progress: &CompactionProgress,
) -> Result<()> {
    let started = Instant::now();
    let gc_grace_s = table.options().gc_grace_seconds;
    let view = table.view();
    let input_generations: Vec<u64> = task.inputs.iter().map(|s| s.generation()).collect();
    let others: Vec<Arc<SSTable>> = view
        .sstables
        .iter()
        .filter(|s| !input_generations.contains(&s.generation()))
        .cloned()
        .collect();
    let memtables: Vec<_> = std::iter::once(view.active.clone())
        .chain(view.flushing.iter().cloned())
        .collect();
    let mut outputs: Vec<SSTableWriter> = Vec::new();
    let mut published = Vec::new();
    let mut cursors: Vec<InputCursor> = task
        .inputs
        .iter()
        .map(|s| (s.clone(), Default::default(), None, false))
        .collect();
    let mut written = 0u64;
    loop {
        // Refill each input's queue of index entries.
        for (sstable, queue, last, done) in cursors.iter_mut() {
            if queue.is_empty() && !*done {
                let lo = last.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                let entries = sstable.entries_in(lo, Bound::Unbounded, KEY_BATCH)?;
                *done = entries.len() < KEY_BATCH;
                if let Some(entry) = entries.last() {
                    *last = Some(entry.key.clone());
                }
                queue.extend(entries);
            }
        }
        let Some(key) = cursors
            .iter()
            .filter_map(|(_, queue, _, _)| queue.front().map(|e| &e.key))
            .min()
            .cloned()
        else {
            break;
        };
        let mut holders = cursors
            .iter_mut()
            .filter(|(_, queue, _, _)| queue.front().is_some_and(|e| e.key == key));
        let (first, second) = (holders.next(), holders.next());
        let writer = output_for(&mut outputs, table, task, now_s)?;
        let before = writer.uncompressed_len();
        match (first, second) {
            // Only one input holds the partition and nothing in that input
            // can be purged or expire: it is copied as it is.
            (Some((sstable, queue, _, _)), None) if sstable.stats.partitions_copy_whole() => {
                if let Some(entry) = queue.pop_front() {
                    writer.copy_partition(sstable, &entry)?;
                }
            }
            (first, second) => {
                let holders = first.into_iter().chain(second).chain(holders);
                let mut source =
                    merged_partition(holders, &key, &others, &memtables, now_s, gc_grace_s)?;
                writer.add_partition(&key, &source.header, &mut source.atoms)?;
            }
        }
        written += writer.uncompressed_len() - before;
        progress.done_bytes.store(written, Ordering::Relaxed);
        throttle.pace(written, started);
    }
    for writer in outputs {
        if let Some(stats) = writer.finish()? {
            published.push(Arc::new(table.open_sstable(stats.generation)?));
        }
    }
    let log_generation = table.allocate_generation();
    let log_path = table.dir.join(format!("compaction-{log_generation}.log"));
    let log: String = input_generations.iter().map(|g| format!("{g}\n")).collect();
    fs::write_atomic(&log_path, log.as_bytes())?;
    table.replace_sstables(&task.inputs, published);
    for sstable in &task.inputs {
        delete_sstable(&sstable.descriptor)?;
    }
    fs::remove_file(&log_path)?;
    tracing::debug!(
        table = ?table.id,
        inputs = task.inputs.len(),
        bytes = written,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compaction done"
    );
    Ok(())
}

/// Deletes an SSTable's files, TOC first so a crash midway leaves no
/// half-SSTable that looks whole.
pub fn delete_sstable(descriptor: &Descriptor) -> Result<()> {
    fs::remove_file(&descriptor.path(Component::Toc))?;
    for component in Component::ALL {
        fs::remove_file(&descriptor.path(component))?;
    }
    Ok(())
}

/// Finishes compactions a crash interrupted (see the module doc).
pub fn recover_interrupted(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("compaction-") && name.ends_with(".log")) {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
        for line in text.lines() {
            let generation: u64 = line.trim().parse().map_err(|_| Error::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!("bad generation {line:?} in compaction log"),
            })?;
            delete_sstable(&Descriptor::in_dir(dir, generation))?;
        }
        fs::remove_file(&path)?;
    }
    Ok(())
}

//! One table: its memtables, its SSTables, and the read, write and flush
//! paths over them.
//!
//! State is a small snapshot behind a lock ([`TableView`]): the active
//! memtable, memtables being flushed, and the live SSTables. A read clones
//! the snapshot's `Arc`s and merges without holding the lock; a flush or
//! compaction swaps SSTables in and out under it. A write holds the table's
//! write barrier in shared mode while it appends to the commitlog and applies
//! to the memtable, so that a memtable switch (exclusive mode) sees every
//! commitlog record before the switch position in the old memtable.

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::commitlog::Position;
use crate::error::{Error, Result};
use crate::fs;
use crate::memtable::{MemPartitionSource, Memtable, MemtableMemory};
use crate::merge::{
    shadow_row, shadows_own_cells, Atom, AtomSource, LiveRows, MergeIterator, PartitionHeader,
    ReadCounters, VecSource,
};
use crate::model::{
    ClusteringPosition, ClusteringRange, PartitionKey, PartitionUpdate, Row, TableId,
};
use crate::range_walk::{RangeWalk, WalkStep};
use crate::sstable::format::IndexEntry;
use crate::sstable::reader::KeyBytes;
use crate::sstable::{
    ChunkCache, Descriptor, FoundPartition, SSTable, SSTablePartitionSource, SSTableWriter,
};
use crate::stats::TableMetrics;

/// How a table compacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionStrategy {
    /// Merge SSTables of similar size once `min_threshold` of them gather.
    SizeTiered {
        min_threshold: usize,
        max_threshold: usize,
    },
    /// Levels of non-overlapping SSTables, each `fanout` times the one before.
    Leveled {
        sstable_size_bytes: u64,
        fanout: u64,
    },
    /// SSTables grouped by the time window of their newest data; old windows
    /// are compacted into one SSTable each.
    TimeWindow { window_s: i64 },
}

impl Default for CompactionStrategy {
    fn default() -> Self {
        CompactionStrategy::SizeTiered {
            min_threshold: 4,
            max_threshold: 32,
        }
    }
}

/// Per-table settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    pub compaction: CompactionStrategy,
    /// Tombstones younger than this are never purged.
    pub gc_grace_seconds: i64,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            compaction: CompactionStrategy::default(),
            gc_grace_seconds: 864_000,
        }
    }
}

impl TableOptions {
    /// A small text form stored beside the table's SSTables.
    pub fn encode(&self) -> String {
        let strategy = match &self.compaction {
            CompactionStrategy::SizeTiered {
                min_threshold,
                max_threshold,
            } => format!("size_tiered {min_threshold} {max_threshold}"),
            CompactionStrategy::Leveled {
                sstable_size_bytes,
                fanout,
            } => format!("leveled {sstable_size_bytes} {fanout}"),
            CompactionStrategy::TimeWindow { window_s } => format!("time_window {window_s}"),
        };
        format!(
            "compaction {strategy}\ngc_grace_seconds {}\n",
            self.gc_grace_seconds
        )
    }

    pub fn decode(text: &str) -> Option<TableOptions> {
        let mut options = TableOptions::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["compaction", "size_tiered", min, max] => {
                    options.compaction = CompactionStrategy::SizeTiered {
                        min_threshold: min.parse().ok()?,
                        max_threshold: max.parse().ok()?,
                    }
                }
                ["compaction", "leveled", size, fanout] => {
                    options.compaction = CompactionStrategy::Leveled {
                        sstable_size_bytes: size.parse().ok()?,
                        fanout: fanout.parse().ok()?,
                    }
                }
                ["compaction", "time_window", window] => {
                    options.compaction = CompactionStrategy::TimeWindow {
                        window_s: window.parse().ok()?,
                    }
                }
                ["gc_grace_seconds", value] => options.gc_grace_seconds = value.parse().ok()?,
                [] => {}
                _ => return None,
            }
        }
        Some(options)
    }
}

/// Which rows of a partition to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceQuery {
    pub range: ClusteringRange,
    pub reversed: bool,
    /// Most live rows to return.
    pub limit: usize,
    /// Resume strictly after (forward) or before (reversed) this row.
    pub resume_after: Option<Bytes>,
}

impl SliceQuery {
    pub fn all() -> SliceQuery {
        SliceQuery {
            range: ClusteringRange::all(),
            reversed: false,
            limit: usize::MAX,
            resume_after: None,
        }
    }

    /// The exclusive positions the sources read between.
    pub(crate) fn positions(&self) -> (ClusteringPosition, ClusteringPosition) {
        let mut start = self.range.start_position();
        let mut end = self.range.end_position();
        if let Some(resume) = &self.resume_after {
            let at = ClusteringPosition::at(resume.clone());
            if self.reversed {
                end = end.min(at);
            } else {
                start = start.max(at);
            }
        }
        (start, end)
    }
}

/// A partition's live data as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRows {
    pub key: PartitionKey,
    pub static_row: Option<Row>,
    pub rows: Vec<Row>,
}

/// Which partitions a scan covers, by token: `(start, end]` in Cassandra's
/// ring sense when both are bounded, here as explicit bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRange {
    pub start: Bound<i64>,
    pub end: Bound<i64>,
}

impl TokenRange {
    pub fn all() -> TokenRange {
        TokenRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// The same bounds over partition keys.
    pub fn key_bounds(&self) -> (Bound<PartitionKey>, Bound<PartitionKey>) {
        let at = |token: i64| PartitionKey::new(token, Bytes::new());
        let start = match self.start {
            Bound::Unbounded => Bound::Unbounded,
            Bound::Included(t) => Bound::Included(at(t)),
            Bound::Excluded(i64::MAX) => {
                Bound::Excluded(PartitionKey::new(i64::MAX, vec![0xff; 1024]))
            }
            Bound::Excluded(t) => Bound::Included(at(t + 1)),
        };
        let end = match self.end {
            Bound::Unbounded | Bound::Included(i64::MAX) => Bound::Unbounded,
            Bound::Included(t) => Bound::Excluded(at(t + 1)),
            Bound::Excluded(t) => Bound::Excluded(at(t)),
        };
        (start, end)
    }
}

/// A page of a token-range scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub partitions: Vec<PartitionRows>,
    /// Where to resume, if the row limit cut the scan short.
    pub resume: Option<ScanResume>,
}

/// The last row a scan page returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResume {
    pub key: PartitionKey,
    /// `None`: resume after the whole partition.
    pub clustering: Option<Bytes>,
}

/// Partitions a scan page makes room for before it reads any.
const SCAN_PAGE_RESERVED: usize = 4_096;

/// A partition's index entry in one SSTable.
type EntryIn = (Arc<SSTable>, IndexEntry);

/// The mutable part of a table, swapped under a lock.
#[derive(Debug, Clone)]
pub struct TableView {
    pub active: Arc<Memtable>,
    pub flushing: Vec<Arc<Memtable>>,
    pub sstables: Vec<Arc<SSTable>>,
}

/// What every table of an engine shares.
#[derive(Debug, Clone)]
pub struct TableShared {
    /// The engine's count of memtable bytes.
    pub memory: MemtableMemory,
    pub chunk_cache: Arc<ChunkCache>,
}

/// One table of the engine.
#[derive(Debug)]
pub struct Table {
    pub id: TableId,
    pub dir: PathBuf,
    options: RwLock<TableOptions>,
    /// Replaced, never changed in place: a read takes the current view with
    /// one reference count.
    view: RwLock<Arc<TableView>>,
    /// Shared by writers, exclusive for a memtable switch (see the module doc).
    write_barrier: RwLock<()>,
    shared: TableShared,
    next_generation: AtomicU64,
    /// SSTables (by generation) that a compaction is working on.
    pub(crate) compacting: Mutex<Vec<u64>>,
    pub metrics: TableMetrics,
}

impl Table {
    /// Opens a table directory: removes unfinished SSTables, finishes
    /// interrupted compactions, opens the rest.
    pub fn open(
        id: TableId,
        dir: &Path,
        options: TableOptions,
        shared: TableShared,
    ) -> Result<Table> {
        fs::create_dir_all(dir)?;
        crate::compaction::recover_interrupted(dir)?;
        let mut generations = std::collections::BTreeMap::new();
        let mut max_generation = 0;
        let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
        for entry in entries {
            let entry = entry.map_err(Error::io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") {
                fs::remove_file(&entry.path())?;
                continue;
            }
            if let Some((generation, component)) = Descriptor::parse_file_name(&name) {
                max_generation = max_generation.max(generation);
                let has_toc = generations.entry(generation).or_insert(false);
                *has_toc |= component == crate::sstable::format::Component::Toc;
            }
        }
        let mut sstables = Vec::new();
        for (generation, has_toc) in generations {
            let descriptor = Descriptor::in_dir(dir, generation);
            if !has_toc {
                for component in crate::sstable::format::Component::ALL {
                    fs::remove_file(&descriptor.path(component))?;
                }
                continue;
            }
            sstables.push(Arc::new(SSTable::open(
                descriptor,
                shared.chunk_cache.clone(),
            )?));
        }
        Ok(Table {
            id,
            dir: dir.to_owned(),
            options: RwLock::new(options),
            view: RwLock::new(Arc::new(TableView {
                active: Arc::new(Memtable::new(Position::default(), shared.memory.clone())),
                flushing: Vec::new(),
                sstables,
            })),
            write_barrier: RwLock::new(()),
            shared,
            next_generation: AtomicU64::new(max_generation + 1),
            compacting: Mutex::new(Vec::new()),
            metrics: TableMetrics::new(),
        })
    }

    pub fn options(&self) -> TableOptions {
        self.options.read().clone()
    }

    pub fn set_options(&self, options: TableOptions) -> Result<()> {
        fs::write_atomic(&self.dir.join("options.txt"), options.encode().as_bytes())?;
        *self.options.write() = options;
        Ok(())
    }

    pub fn view(&self) -> Arc<TableView> {
        self.view.read().clone()
    }

    /// Opens one of this table's SSTables by generation.
    pub(crate) fn open_sstable(&self, generation: u64) -> Result<SSTable> {
        SSTable::open(
            Descriptor::in_dir(&self.dir, generation),
            self.shared.chunk_cache.clone(),
        )
    }

    /// Bytes in the active memtable (without cloning the view).
    pub fn active_memtable_bytes(&self) -> usize {
        self.view.read().active.size_bytes()
    }

    pub(crate) fn allocate_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, AtomicOrdering::SeqCst)
    }

    /// Runs `write` (commitlog append) and applies the update to the active
    /// memtable, both inside the shared write barrier.
    pub fn apply<T>(
        &self,
        key: PartitionKey,
        update: PartitionUpdate,
        write: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let _barrier = self.write_barrier.read();
        let result = write()?;
        let active = self.view.read().active.clone();
        active.apply(key, update);
        self.metrics.record_write(started.elapsed());
        Ok(result)
    }

    /// Switches to a fresh memtable; returns the old one (to flush) unless it
    /// is empty. `position` gives the commitlog position at the switch.
    pub fn switch_memtable(
        &self,
        position: impl FnOnce() -> Position,
    ) -> Option<(Arc<Memtable>, Position)> {
        let _barrier = self.write_barrier.write();
        let mut guard = self.view.write();
        let view = Arc::make_mut(&mut guard);
        if view.active.is_empty() {
            return None;
        }
        let position = position();
        let fresh = Memtable::new(position, self.shared.memory.clone());
        let old = std::mem::replace(&mut view.active, Arc::new(fresh));
        view.flushing.push(old.clone());
        Some((old, position))
    }

    /// Writes a switched memtable to a new SSTable and publishes it.
    /// `switched_at` is the commitlog position of its switch; returns the
    /// position up to which the commitlog no longer needs this table's
    /// records: `switched_at`, or the start of an older memtable still
    /// waiting for its own flush.
    pub fn flush_memtable(
        &self,
        memtable: &Arc<Memtable>,
        switched_at: Position,
        now_s: i64,
    ) -> Result<Position> {
        let started = std::time::Instant::now();
        let descriptor = Descriptor::in_dir(&self.dir, self.allocate_generation());
        let mut writer = SSTableWriter::create(descriptor, 0, now_s)?;
        for (key, partition) in memtable.iter() {
            // Most partitions are written straight from the memtable.
            let locked = partition.lock();
            if let Some(rows) = locked.rows_as_written() {
                let header = PartitionHeader::merge([locked.header()]);
                writer.add_rows(&key, &header, rows)?;
                continue;
            }
            drop(locked);
            let header = PartitionHeader::merge([partition.lock().header()]);
            let source = MemPartitionSource::new(
                partition,
                ClusteringPosition::bottom(),
                ClusteringPosition::top(),
                false,
            );
            let mut merge = MergeIterator::new(vec![Box::new(source)], false, header.deletion)?;
            writer.add_partition(&key, &header, &mut merge)?;
        }
        let partitions = writer.partition_count();
        let published = match writer.finish()? {
            Some(stats) => Some(Arc::new(self.open_sstable(stats.generation)?)),
            None => None,
        };
        let mut guard = self.view.write();
        let view = Arc::make_mut(&mut guard);
        view.flushing.retain(|m| !Arc::ptr_eq(m, memtable));
        view.sstables.extend(published);
        let still_needed = view
            .flushing
            .iter()
            .map(|m| m.commitlog_lower_bound())
            .min();
        tracing::debug!(
            table = ?self.id,
            partitions,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "memtable flushed"
        );
        Ok(still_needed.map_or(switched_at, |lower| lower.min(switched_at)))
    }

    /// Replaces `inputs` with `outputs` in the live set.
    pub(crate) fn replace_sstables(&self, inputs: &[Arc<SSTable>], outputs: Vec<Arc<SSTable>>) {
        let mut guard = self.view.write();
        let view = Arc::make_mut(&mut guard);
        view.sstables
            .retain(|s| !inputs.iter().any(|i| i.generation() == s.generation()));
        view.sstables.extend(outputs);
    }

    /// Sources for one partition across memtables and SSTables; returns the
    /// merged header and the merge iterator.
    fn partition_merge(
        &self,
        view: &TableView,
        key: &PartitionKey,
        start: &ClusteringPosition,
        end: &ClusteringPosition,
        reversed: bool,
    ) -> Result<Option<(PartitionHeader, MergeIterator)>> {
        let mut found = Vec::new();
        for sstable in &view.sstables {
            if let Some(partition) = sstable.find_partition(key)? {
                found.push((sstable.clone(), partition));
            }
        }
        self.merge_found(view, key, found, start, end, reversed)
    }

    /// Like [`Table::partition_merge`], with the SSTable index entries of the
    /// partition already found (a scan finds them while listing keys).
    fn merge_with_entries(
        &self,
        view: &TableView,
        key: &PartitionKey,
        entries: Vec<EntryIn>,
        start: &ClusteringPosition,
        end: &ClusteringPosition,
        reversed: bool,
    ) -> Result<Option<(PartitionHeader, MergeIterator)>> {
        let found = entries
            .into_iter()
            .map(|(sstable, entry)| {
                let partition = sstable.partition_at(entry)?;
                Ok((sstable, partition))
            })
            .collect::<Result<Vec<_>>>()?;
        self.merge_found(view, key, found, start, end, reversed)
    }

    /// The merge of one partition's memtable rows and the SSTable
    /// partitions found for it.
    fn merge_found(
        &self,
        view: &TableView,
        key: &PartitionKey,
        found: Vec<(Arc<SSTable>, FoundPartition)>,
        start: &ClusteringPosition,
        end: &ClusteringPosition,
        reversed: bool,
    ) -> Result<Option<(PartitionHeader, MergeIterator)>> {
        let mut headers = Vec::new();
        let mut sources: Vec<Box<dyn AtomSource>> = Vec::new();
        let memtables = std::iter::once(&view.active).chain(view.flushing.iter());
        for memtable in memtables {
            if let Some(partition) = memtable.get(key) {
                headers.push(partition.lock().header());
                sources.push(Box::new(MemPartitionSource::new(
                    partition,
                    start.clone(),
                    end.clone(),
                    reversed,
                )));
            }
        }
        for (sstable, mut partition) in found {
            headers.push(std::mem::take(&mut partition.header));
            sources.push(Box::new(SSTablePartitionSource::new(
                sstable,
                partition,
                start.clone(),
                end.clone(),
                reversed,
            )));
        }
        if sources.is_empty() {
            return Ok(None);
        }
        let header = PartitionHeader::merge(headers);
        let merge = MergeIterator::new(sources, reversed, header.deletion)?;
        Ok(Some((header, merge)))
    }

    /// Which memtables and SSTables hold a partition.
    pub fn sources_of(&self, key: &PartitionKey) -> Result<crate::engine::ReadSources> {
        let view = self.view();
        let memtables = std::iter::once(&view.active)
            .chain(view.flushing.iter())
            .filter(|memtable| memtable.get(key).is_some())
            .count();
        let mut sstables = 0;
        for sstable in &view.sstables {
            if sstable.find_partition(key)?.is_some() {
                sstables += 1;
            }
        }
        Ok(crate::engine::ReadSources {
            memtables,
            sstables,
            sstables_total: view.sstables.len(),
        })
    }

    /// Live rows of one partition at `now_s`.
    pub fn read_partition(
        &self,
        key: &PartitionKey,
        query: &SliceQuery,
        now_s: i64,
    ) -> Result<Option<PartitionRows>> {
        let started = Instant::now();
        let view = self.view();
        let result = self.read_with_view(&view, key, query, now_s);
        if let Ok((_, counters)) = &result {
            self.metrics.record_read(started.elapsed(), counters);
        }
        result.map(|(rows, _)| rows)
    }

    fn read_with_view(
        &self,
        view: &TableView,
        key: &PartitionKey,
        query: &SliceQuery,
        now_s: i64,
    ) -> Result<(Option<PartitionRows>, ReadCounters)> {
        let (start, end) = query.positions();
        let merged = self.partition_merge(view, key, &start, &end, query.reversed)?;
        live_rows_of(key, merged, query.limit, now_s)
    }
}

/// [`live_rows_of`] for a partition only one source holds, from its
/// header and atoms: without range deletions, each row is shadowed by the
/// partition deletion and its own tombstones alone, so no merge is needed.
fn live_rows_of_one_source(
    key: PartitionKey,
    header: PartitionHeader,
    atoms: &mut Vec<Atom>,
    limit: usize,
    now_s: i64,
) -> Result<(Option<PartitionRows>, ReadCounters)> {
    let header = PartitionHeader::merge([header]);
    if atoms.iter().any(|atom| matches!(atom, Atom::Marker(_))) {
        let source: Box<dyn AtomSource> = Box::new(VecSource::new(std::mem::take(atoms)));
        let merge = MergeIterator::new(vec![source], false, header.deletion)?;
        return live_rows_of(&key, Some((header, merge)), limit, now_s);
    }
    let (mut counters, static_row) = live_static_row(header.static_row, header.deletion, now_s);
    let mut rows = Vec::with_capacity(atoms.len().min(limit));
    for atom in atoms.drain(..) {
        if rows.len() >= limit {
            break;
        }
        let Atom::Row(row) = atom else {
            continue;
        };
        let row = if header.deletion.is_some() || shadows_own_cells(&row) {
            shadow_row(row, header.deletion)
        } else {
            row
        };
        if row.is_empty() {
            continue;
        }
        if let Some(row) = crate::merge::live_part(row, now_s, &mut counters) {
            rows.push(row);
        }
    }
    counters.live_rows = rows.len() as u64;
    Ok((
        partition_rows(std::borrow::Cow::Owned(key), static_row, rows),
        counters,
    ))
}

/// The counters a partition's header starts a read with (its deletion is
/// a tombstone scanned), and its live static row.
fn live_static_row(
    static_row: Option<Row>,
    deletion: Option<crate::model::DeletionTime>,
    now_s: i64,
) -> (ReadCounters, Option<Row>) {
    let mut counters = ReadCounters::default();
    if deletion.is_some() {
        counters.tombstones_scanned += 1;
    }
    let static_row = static_row.and_then(|row| crate::merge::live_part(row, now_s, &mut counters));
    (counters, static_row)
}

/// A partition as a client sees it, if it shows anything (the key is
/// copied only then).
fn partition_rows(
    key: std::borrow::Cow<'_, PartitionKey>,
    static_row: Option<Row>,
    rows: Vec<Row>,
) -> Option<PartitionRows> {
    if rows.is_empty() && static_row.is_none() {
        return None;
    }
    Some(PartitionRows {
        key: key.into_owned(),
        static_row,
        rows,
    })
}

/// Drains a partition's merge into the rows a client sees.
pub(crate) fn live_rows_of(
    key: &PartitionKey,
    merged: Option<(PartitionHeader, MergeIterator)>,
    limit: usize,
    now_s: i64,
) -> Result<(Option<PartitionRows>, ReadCounters)> {
    let Some((header, merge)) = merged else {
        return Ok((None, ReadCounters::default()));
    };
    let (mut counters, static_row) = live_static_row(header.static_row, header.deletion, now_s);
    let mut live = LiveRows::new(merge, now_s, limit);
    let mut rows = Vec::new();
    while let Some(row) = live.next_row()? {
        rows.push(row);
    }
    counters.tombstones_scanned += live.counters.tombstones_scanned;
    counters.live_rows = live.counters.live_rows;
    Ok((
        partition_rows(std::borrow::Cow::Borrowed(key), static_row, rows),
        counters,
    ))
}

impl Table {
    /// Unfiltered merged atoms of one partition (tombstones kept), for
    /// replica responses and tests.
    pub fn read_unfiltered(
        &self,
        key: &PartitionKey,
        query: &SliceQuery,
    ) -> Result<Option<(PartitionHeader, Vec<Atom>)>> {
        let view = self.view();
        let (start, end) = query.positions();
        let Some((header, mut merge)) =
            self.partition_merge(&view, key, &start, &end, query.reversed)?
        else {
            return Ok(None);
        };
        let mut atoms = Vec::new();
        while let Some(atom) = merge.next_atom()? {
            atoms.push(atom);
        }
        Ok(Some((header, atoms)))
    }

    /// A replica's data answer for one partition slice: the slice's
    /// unfiltered content (every row in range, tombstones kept, no limit:
    /// the coordinator applies the limit after reconciling).
    pub fn read_data(
        &self,
        key: &PartitionKey,
        query: &SliceQuery,
    ) -> Result<Option<crate::model::PartitionUpdate>> {
        let view = self.view();
        let (start, end) = query.positions();
        let Some((header, mut merge)) = self.partition_merge(&view, key, &start, &end, false)?
        else {
            return Ok(None);
        };
        crate::replica::update_of(header, &mut merge)
    }

    /// Every partition in `range`, unfiltered, in token order (including
    /// partitions that hold nothing but tombstones), at most `max`.
    pub fn scan_data(&self, range: &TokenRange, max: usize) -> Result<Vec<crate::model::Mutation>> {
        let view = self.view();
        let (lo, hi) = range.key_bounds();
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        self.for_each_partition(&view, lo, hi, |key, merged| {
            if let Some((header, mut merge)) = merged {
                if let Some(update) = crate::replica::update_of(header, &mut merge)? {
                    out.push(crate::model::Mutation {
                        table: self.id,
                        key: key.clone(),
                        update,
                    });
                }
            }
            Ok(if out.len() >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(out)
    }

    /// Visits every partition after `lo` and before `hi`, in token order,
    /// merged across memtables and SSTables, until `visit` breaks.
    fn for_each_partition(
        &self,
        view: &TableView,
        lo: Bound<PartitionKey>,
        hi: Bound<PartitionKey>,
        mut visit: impl FnMut(
            &PartitionKey,
            Option<(PartitionHeader, MergeIterator)>,
        ) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        // Replicas' scan pages may end up in a memtable (read repair):
        // their keys must not keep chunks alive.
        let mut walk = RangeWalk::new(view, lo, hi, KeyBytes::Copied);
        while let Some(step) = walk.next_partition()? {
            let Some(key) = Self::key_of_step(&walk, &step) else {
                continue;
            };
            let merged = self.merge_step(view, &mut walk, &key, &step)?;
            if visit(&key, merged)?.is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The whole-partition merge of one step of a range walk.
    fn merge_step(
        &self,
        view: &TableView,
        walk: &mut RangeWalk,
        key: &PartitionKey,
        step: &WalkStep,
    ) -> Result<Option<(PartitionHeader, MergeIterator)>> {
        let mut with_sstables = Vec::with_capacity(step.sstables.len());
        for &index in &step.sstables {
            if let Some(found) = walk.take_entry(index)? {
                with_sstables.push(found);
            }
        }
        self.merge_with_entries(
            view,
            key,
            with_sstables,
            &ClusteringPosition::bottom(),
            &ClusteringPosition::top(),
            false,
        )
    }

    /// The key of a step of a range walk.
    fn key_of_step(walk: &RangeWalk, step: &WalkStep) -> Option<PartitionKey> {
        step.memtable_key.clone().or_else(|| {
            step.sstables
                .first()
                .and_then(|&index| walk.entry(index))
                .map(|entry| entry.key.clone())
        })
    }

    /// Live rows of one step of a range walk, at most `limit`: a narrow
    /// partition that only one SSTable holds is decoded straight from the
    /// walk's cursor (the usual case after compaction) into `atoms`, a
    /// buffer kept across steps; any other goes through the merge.
    fn live_rows_of_step(
        &self,
        view: &TableView,
        walk: &mut RangeWalk,
        step: WalkStep,
        atoms: &mut Vec<Atom>,
        limit: usize,
        now_s: i64,
    ) -> Result<(Option<PartitionRows>, ReadCounters)> {
        if let (None, &[index]) = (&step.memtable_key, step.sstables.as_slice()) {
            if let Some(header) = walk.read_narrow(index, atoms)? {
                if let Some((_, entry)) = walk.take_entry(index)? {
                    return live_rows_of_one_source(entry.key, header, atoms, limit, now_s);
                }
            }
        }
        let Some(key) = Self::key_of_step(walk, &step) else {
            return Ok((None, ReadCounters::default()));
        };
        let merged = self.merge_step(view, walk, &key, &step)?;
        live_rows_of(&key, merged, limit, now_s)
    }

    /// Live rows of the partitions in `range`, in token order, at most
    /// `row_limit` rows, resuming after `resume`.
    pub fn scan(
        &self,
        range: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
        now_s: i64,
    ) -> Result<ScanPage> {
        let started = Instant::now();
        let view = self.view();
        let (range_lo, range_hi) = range.key_bounds();
        // Room for a page of narrow partitions up front (grown beyond).
        let mut partitions = Vec::with_capacity(row_limit.min(SCAN_PAGE_RESERVED));
        let mut rows_left = row_limit;
        let mut counters_total = ReadCounters::default();
        let mut lo: Bound<PartitionKey> = range_lo;
        if let Some(resume) = resume {
            let query = SliceQuery {
                resume_after: resume.clustering.clone(),
                limit: rows_left,
                ..SliceQuery::all()
            };
            if resume.clustering.is_some() {
                let (result, counters) = self.read_with_view(&view, &resume.key, &query, now_s)?;
                counters_total.tombstones_scanned += counters.tombstones_scanned;
                if let Some(mut part) = result {
                    part.static_row = None;
                    if !part.rows.is_empty() {
                        rows_left -= part.rows.len();
                        partitions.push(part);
                    }
                }
            }
            lo = Bound::Excluded(resume.key.clone());
        }
        if rows_left > 0 {
            // A client's page: its rows may share the data chunks.
            let mut walk = RangeWalk::new(&view, lo, range_hi, KeyBytes::Shared);
            let mut atoms = Vec::new();
            while let Some(step) = walk.next_partition()? {
                let (result, counters) =
                    self.live_rows_of_step(&view, &mut walk, step, &mut atoms, rows_left, now_s)?;
                counters_total.tombstones_scanned += counters.tombstones_scanned;
                if let Some(part) = result {
                    rows_left = rows_left.saturating_sub(part.rows.len().max(1));
                    partitions.push(part);
                }
                if rows_left == 0 {
                    break;
                }
            }
        }
        let resume = if rows_left == 0 {
            partitions.last().map(|p| ScanResume {
                key: p.key.clone(),
                clustering: p.rows.last().map(|r| r.clustering.clone()),
            })
        } else {
            None
        };
        counters_total.live_rows = (row_limit - rows_left) as u64;
        self.metrics
            .record_range_read(started.elapsed(), &counters_total);
        Ok(ScanPage { partitions, resume })
    }

    /// Bytes on disk of every live SSTable.
    pub fn live_disk_bytes(&self) -> u64 {
        self.view()
            .sstables
            .iter()
            .map(|s| s.size_on_disk_bytes())
            .sum()
    }
}

//! The engine: the API the coordinator and the frontend use.
//!
//! ```text
//! Engine::open(config)            discover tables, replay the commitlog
//! engine.create_table(id, opts)   a directory <data_dir>/<id>/
//! engine.apply(mutation)          commitlog, then memtable; durable per sync mode
//! engine.read(table, key, slice)  live rows of one partition
//! engine.scan(table, range, ...)  live rows by token range, with a resume point
//! engine.flush / compact / snapshot / stats / drop_table / truncate
//! ```
//!
//! Threads: with `background: true` the engine runs a flusher (switched
//! memtables to SSTables), a compactor (strategy-chosen compactions, throttled)
//! and a commitlog thread (keeps the next segment ready; in periodic sync
//! mode, syncs). With `background: false`
//! nothing happens unless asked, which keeps tests deterministic.
//!
//! Backpressure: when all memtables together pass
//! `memtable_total_bytes_max`, writers wait (up to [`WRITE_STALL_MAX`]) for
//! flushes to free memory instead of growing it without bound.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::commitlog::{CommitLog, ReplayPolicy, ReplayReport, SyncMode};
use crate::compaction::{self, Throttle};
use crate::error::{Error, Result};
use crate::fs;
use crate::log_limit::RateLimitedLog;
use crate::memtable::{Memtable, MemtableMemory};
use crate::model::{Mutation, PartitionKey, TableId};
use crate::sstable::format::Component;
use crate::sstable::ChunkCache;
use crate::stats::Percentiles;
use crate::table::{
    PartitionRows, ScanPage, ScanResume, SliceQuery, Table, TableOptions, TableShared, TokenRange,
};

/// Longest a writer waits for memtable memory before failing with an error.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(30);

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub commitlog_dir: PathBuf,
    pub sync: SyncMode,
    pub commitlog_segment_size_bytes: u64,
    /// Commitlog records are LZ4-compressed when that saves an eighth or
    /// more (as Cassandra's `commitlog_compression: LZ4Compressor`, per
    /// record so that each stays whole on its own).
    pub commitlog_compression: bool,
    /// What replay does with damage that is not a torn tail.
    pub commitlog_replay: ReplayPolicy,
    /// A table's memtable is switched and flushed past this size (its
    /// real memory: about 500 bytes for a one-cell row of 100 bytes). The
    /// default, 128 MiB, is below Cassandra's (a third of a quarter of the
    /// heap); half of it made twice the flushes and about a third more
    /// compaction writes for the same data.
    pub memtable_flush_bytes: usize,
    /// All memtables (active and flushing) together; writers wait past it.
    pub memtable_total_bytes_max: usize,
    /// Decompressed SSTable chunks kept in memory, all tables together.
    pub chunk_cache_bytes: usize,
    /// Compaction throughput limit (0 = unlimited).
    pub compaction_bytes_per_s: u64,
    pub background: bool,
    pub clock: Arc<dyn Clock>,
}

impl EngineConfig {
    /// Defaults for a node with its data under `root`.
    pub fn new(data_dir: impl Into<PathBuf>, commitlog_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            commitlog_dir: commitlog_dir.into(),
            sync: SyncMode::Periodic(Duration::from_secs(10)),
            commitlog_segment_size_bytes: 32 * 1024 * 1024,
            commitlog_compression: true,
            commitlog_replay: ReplayPolicy::Stop,
            memtable_flush_bytes: 128 * 1024 * 1024,
            memtable_total_bytes_max: 512 * 1024 * 1024,
            chunk_cache_bytes: 64 * 1024 * 1024,
            compaction_bytes_per_s: 64 * 1024 * 1024,
            background: true,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The sources of one partition (see [`Engine::sources_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSources {
    /// Memtables (the active one and those being flushed) holding it.
    pub memtables: usize,
    /// SSTables holding it.
    pub sstables: usize,
    /// SSTables of the table.
    pub sstables_total: usize,
}

/// Summary of one table, for `nodetool tablestats`-style output.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStats {
    pub sstable_count: usize,
    /// SSTable count per level (index = level).
    pub sstables_per_level: Vec<usize>,
    pub live_disk_bytes: u64,
    pub memtable_bytes: usize,
    pub partition_count_estimate: u64,
    pub read_latency_us: Percentiles,
    pub write_latency_us: Percentiles,
    pub range_latency_us: Percentiles,
    pub tombstones_per_read: Percentiles,
    pub tombstones_scanned_total: u64,
    pub pending_compactions: usize,
}

/// A switched memtable waiting for the flusher, with its switch position.
type QueuedFlush = (Arc<Table>, Arc<Memtable>, crate::commitlog::Position);

struct Shared {
    config: EngineConfig,
    /// Looked up on every request: a fast hash (table ids are ours, not a
    /// client's).
    tables: RwLock<HashMap<TableId, Arc<Table>, foldhash::fast::RandomState>>,
    /// Tables whose files could not be opened, with the reason.
    unavailable: HashMap<TableId, String>,
    commitlog: CommitLog,
    throttle: Throttle,
    /// Compactions running now (for `compactionstats`).
    active_compactions: Mutex<Vec<Arc<compaction::CompactionProgress>>>,
    shutdown: AtomicBool,
    /// Memtables waiting for the flusher.
    flush_queue: Mutex<Vec<QueuedFlush>>,
    work: Condvar,
    work_lock: Mutex<()>,
    /// Signalled whenever a flush frees memory.
    flushed: Condvar,
    flushed_lock: Mutex<()>,
    /// What every table shares: the memtable byte count (the write
    /// back-pressure measure) and the chunk cache.
    table_shared: TableShared,
}

/// A node's storage engine.
pub struct Engine {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub replay: ReplayReport,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.shared.config.data_dir)
            .finish()
    }
}

/// One snapshot of one table, as `nodetool listsnapshots` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    pub table: TableId,
    pub name: String,
    /// Bytes of every file in the snapshot.
    pub size_bytes: u64,
    /// Bytes only the snapshot holds (files no live SSTable links to).
    pub true_size_bytes: u64,
}

fn check_snapshot_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(Error::InvalidArgument(format!(
            "bad snapshot name {name:?}"
        )));
    }
    Ok(())
}

/// (all bytes, bytes of files with no other hard link) of a snapshot directory.
fn snapshot_sizes(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let (mut all, mut own) = (0, 0);
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        let meta = std::fs::metadata(&path).map_err(Error::io(&path))?;
        all += meta.len();
        if meta.nlink() <= 1 {
            own += meta.len();
        }
    }
    Ok((all, own))
}

fn options_path(dir: &Path) -> PathBuf {
    dir.join("options.txt")
}

impl Engine {
    /// Opens the engine: tables from the data directory, then commitlog replay,
    /// then a flush of whatever was replayed.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        fs::create_dir_all(&config.data_dir)?;
        let mut tables = HashMap::with_hasher(foldhash::fast::RandomState::default());
        let table_shared = TableShared {
            memory: MemtableMemory::default(),
            chunk_cache: ChunkCache::new(config.chunk_cache_bytes),
        };
        let mut unavailable: HashMap<TableId, String> = HashMap::new();
        let entries = std::fs::read_dir(&config.data_dir).map_err(Error::io(&config.data_dir))?;
        for entry in entries {
            let entry = entry.map_err(Error::io(&config.data_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = TableId::from_dir_name(&name) else {
                continue;
            };
            let dir = entry.path();
            let options_file = options_path(&dir);
            let options = match std::fs::read_to_string(&options_file) {
                Ok(text) => TableOptions::decode(&text).ok_or_else(|| Error::Corrupt {
                    path: options_file.clone(),
                    offset: 0,
                    reason: "table options do not parse".into(),
                })?,
                Err(_) => continue, // a table directory whose creation did not finish
            };
            match Table::open(id, &dir, options, table_shared.clone()) {
                Ok(table) => {
                    tables.insert(id, Arc::new(table));
                }
                Err(error) => {
                    tracing::error!(table = ?id, %error, "table cannot be opened; it stays unavailable until repaired");
                    unavailable.insert(id, error.to_string());
                }
            }
        }
        let mut replayed_tables: Vec<TableId> = Vec::new();
        let mut kept_for_unavailable = false;
        let (old_segments, replay) =
            CommitLog::replay(&config.commitlog_dir, config.commitlog_replay, |mutation| {
                if unavailable.contains_key(&mutation.table) {
                    kept_for_unavailable = true;
                } else if let Some(table) = tables.get(&mutation.table) {
                    if !replayed_tables.contains(&mutation.table) {
                        replayed_tables.push(mutation.table);
                    }
                    table.apply(mutation.key, mutation.update, || Ok(()))?;
                }
                Ok(())
            })?;
        let now_s = config.clock.now_s();
        for id in &replayed_tables {
            if let Some(table) = tables.get(id) {
                if let Some((memtable, position)) = table.switch_memtable(Default::default) {
                    table.flush_memtable(&memtable, position, now_s)?;
                }
            }
        }
        let damaged: Vec<&PathBuf> = replay.damaged.iter().map(|(p, _, _)| p).collect();
        for (_, segment) in &old_segments {
            if damaged.contains(&segment) {
                let aside = segment.with_extension("log.damaged");
                fs::rename(segment, &aside)?;
            } else if kept_for_unavailable {
                // Holds writes of a table that could not be opened: keep them
                // for a replay once the table is repaired.
                let aside = segment.with_extension("log.unreplayed");
                fs::rename(segment, &aside)?;
            } else {
                fs::remove_file(segment)?;
            }
        }
        // The new segment is made only now, after the replayed data is
        // flushed and the old segments are gone: a node restarted after
        // its disk filled needs no room for it before that.
        let commitlog = CommitLog::create(
            &config.commitlog_dir,
            config.sync,
            config.commitlog_segment_size_bytes,
            config.commitlog_compression,
            old_segments.last().map_or(1, |(id, _)| id + 1),
        )?;
        let shared = Arc::new(Shared {
            throttle: Throttle::new(config.compaction_bytes_per_s),
            active_compactions: Mutex::new(Vec::new()),
            config,
            tables: RwLock::new(tables),
            unavailable,
            commitlog,
            shutdown: AtomicBool::new(false),
            flush_queue: Mutex::new(Vec::new()),
            work: Condvar::new(),
            work_lock: Mutex::new(()),
            flushed: Condvar::new(),
            flushed_lock: Mutex::new(()),
            table_shared,
        });
        let engine = Engine {
            shared,
            threads: Mutex::new(Vec::new()),
            replay,
        };
        if engine.shared.config.background {
            engine.start_threads();
        }
        Ok(engine)
    }

    fn start_threads(&self) {
        let mut threads = self.threads.lock();
        let shared = self.shared.clone();
        threads.extend(
            std::thread::Builder::new()
                .name("ilion-flush".into())
                .spawn(move || {
                    crate::background::set_scheduling(crate::background::FLUSH_NICENESS, None);
                    flusher(&shared)
                })
                .ok(),
        );
        let shared = self.shared.clone();
        threads.extend(
            std::thread::Builder::new()
                .name("ilion-compact".into())
                .spawn(move || {
                    crate::background::set_scheduling(crate::background::COMPACTION_NICENESS, None);
                    crate::sstable::chunk_cache::stream_on_this_thread();
                    compactor(&shared)
                })
                .ok(),
        );
        let period = match self.shared.config.sync {
            SyncMode::Periodic(period) => Some(period),
            SyncMode::Batch => None,
        };
        let shared = self.shared.clone();
        threads.extend(
            std::thread::Builder::new()
                .name("ilion-commitlog".into())
                .spawn(move || {
                    crate::background::set_scheduling(0, None);
                    commitlog_worker(&shared, period)
                })
                .ok(),
        );
    }

    fn table(&self, id: TableId) -> Result<Arc<Table>> {
        if let Some(cause) = self.shared.unavailable.get(&id) {
            return Err(Error::TableUnavailable {
                table: id,
                cause: cause.clone(),
            });
        }
        self.shared
            .tables
            .read()
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownTable(id))
    }

    /// Tables that could not be opened, with the error that names the damage.
    pub fn unavailable_tables(&self) -> Vec<(TableId, String)> {
        self.shared
            .unavailable
            .iter()
            .map(|(id, cause)| (*id, cause.clone()))
            .collect()
    }

    pub fn now_s(&self) -> i64 {
        self.shared.config.clock.now_s()
    }

    /// Creates a table; its options are stored beside its SSTables.
    pub fn create_table(&self, id: TableId, options: TableOptions) -> Result<()> {
        let mut tables = self.shared.tables.write();
        if tables.contains_key(&id) || self.shared.unavailable.contains_key(&id) {
            return Err(Error::TableExists(id));
        }
        let dir = self.shared.config.data_dir.join(id.dir_name());
        fs::create_dir_all(&dir)?;
        fs::write_atomic(&options_path(&dir), options.encode().as_bytes())?;
        let shared = self.shared.table_shared.clone();
        tables.insert(id, Arc::new(Table::open(id, &dir, options, shared)?));
        Ok(())
    }

    pub fn has_table(&self, id: TableId) -> bool {
        self.shared.tables.read().contains_key(&id) || self.shared.unavailable.contains_key(&id)
    }

    pub fn table_ids(&self) -> Vec<TableId> {
        self.shared.tables.read().keys().copied().collect()
    }

    pub fn alter_table(&self, id: TableId, options: TableOptions) -> Result<()> {
        self.table(id)?.set_options(options)
    }

    /// Drops a table and deletes its files.
    pub fn drop_table(&self, id: TableId) -> Result<()> {
        let table = self
            .shared
            .tables
            .write()
            .remove(&id)
            .ok_or(Error::UnknownTable(id))?;
        self.shared.commitlog.forget_table(id)?;
        std::fs::remove_dir_all(&table.dir).map_err(Error::io(&table.dir))?;
        Ok(())
    }

    /// Removes every row of a table (data written before the call): flushes,
    /// waits for queued flushes, then deletes every SSTable.
    pub fn truncate(&self, id: TableId) -> Result<()> {
        let table = self.table(id)?;
        self.flush(id)?;
        let started = Instant::now();
        while !table.view().flushing.is_empty() {
            if started.elapsed() > WRITE_STALL_MAX {
                return Err(Error::InvalidArgument(
                    "truncate timed out waiting for flushes".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let sstables = table.view().sstables.clone();
        table.replace_sstables(&sstables, Vec::new());
        for sstable in &sstables {
            compaction::delete_sstable(&sstable.descriptor)?;
        }
        Ok(())
    }

    /// Applies a mutation: commitlog first, then memtable. Returns once the
    /// write is as durable as the sync mode promises.
    pub fn apply(&self, mutation: Mutation) -> Result<()> {
        if self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(Error::ShutDown);
        }
        let table = self.table(mutation.table)?;
        self.wait_for_memory()?;
        let commitlog = &self.shared.commitlog;
        let record = commitlog.encode_record(&mutation)?;
        let table_id = mutation.table;
        let position = table.apply(mutation.key, mutation.update, || {
            commitlog.append_record(table_id, &record)
        })?;
        if commitlog.mode() == SyncMode::Batch {
            commitlog.wait_durable(position)?;
        }
        if table.active_memtable_bytes() >= self.shared.config.memtable_flush_bytes {
            self.schedule_flush(&table);
        }
        Ok(())
    }

    fn total_memtable_bytes(&self) -> usize {
        self.shared.table_shared.memory.load(Ordering::Relaxed)
    }

    fn wait_for_memory(&self) -> Result<()> {
        let limit = self.shared.config.memtable_total_bytes_max;
        if self.total_memtable_bytes() < limit {
            return Ok(());
        }
        if !self.shared.config.background {
            self.flush_all()?;
            return Ok(());
        }
        let started = Instant::now();
        // Make sure something is flushing, then wait for memory to free up.
        let largest = self
            .shared
            .tables
            .read()
            .values()
            .max_by_key(|t| t.active_memtable_bytes())
            .cloned();
        if let Some(table) = largest {
            self.schedule_flush(&table);
        }
        let mut guard = self.shared.flushed_lock.lock();
        while self.total_memtable_bytes() >= limit {
            if started.elapsed() > WRITE_STALL_MAX {
                return Err(Error::InvalidArgument(format!(
                    "write stalled for {}s waiting for memtable flushes",
                    WRITE_STALL_MAX.as_secs()
                )));
            }
            self.shared
                .flushed
                .wait_for(&mut guard, Duration::from_millis(50));
        }
        Ok(())
    }

    fn schedule_flush(&self, table: &Arc<Table>) {
        if !self.shared.config.background {
            if let Err(error) = self.flush(table.id) {
                tracing::error!(table = ?table.id, %error, "flush failed");
            }
            return;
        }
        if let Some((memtable, position)) =
            table.switch_memtable(|| self.shared.commitlog.current_position())
        {
            self.shared
                .flush_queue
                .lock()
                .push((table.clone(), memtable, position));
            self.shared.work.notify_all();
        }
    }

    /// Live rows of one partition.
    pub fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
    ) -> Result<Option<PartitionRows>> {
        self.table(table)?.read_partition(key, query, self.now_s())
    }

    /// Unfiltered atoms of one partition (tombstones kept).
    pub fn read_unfiltered(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
    ) -> Result<Option<(crate::merge::PartitionHeader, Vec<crate::merge::Atom>)>> {
        self.table(table)?.read_unfiltered(key, query)
    }

    /// Which of the table's memtables and SSTables hold a partition (for
    /// traces: it looks the partition up again).
    pub fn sources_of(&self, table: TableId, key: &PartitionKey) -> Result<ReadSources> {
        self.table(table)?.sources_of(key)
    }

    /// A replica's data answer: the slice unfiltered (see [`crate::replica`]).
    pub fn read_data(
        &self,
        table: TableId,
        key: &PartitionKey,
        query: &SliceQuery,
    ) -> Result<Option<crate::model::PartitionUpdate>> {
        self.table(table)?.read_data(key, query)
    }

    /// Up to `max` whole partitions of a token range, unfiltered, as
    /// mutations (schema exchange, small tables).
    pub fn scan_data(
        &self,
        table: TableId,
        range: &TokenRange,
        max: usize,
    ) -> Result<Vec<Mutation>> {
        self.table(table)?.scan_data(range, max)
    }

    /// Live rows by token range, at most `row_limit`, resuming after `resume`.
    pub fn scan(
        &self,
        table: TableId,
        range: &TokenRange,
        resume: Option<&ScanResume>,
        row_limit: usize,
    ) -> Result<ScanPage> {
        self.table(table)?
            .scan(range, resume, row_limit, self.now_s())
    }

    /// Flushes a table's memtable now and waits for it.
    pub fn flush(&self, id: TableId) -> Result<()> {
        let table = self.table(id)?;
        if let Some((memtable, position)) =
            table.switch_memtable(|| self.shared.commitlog.current_position())
        {
            let clean = table.flush_memtable(&memtable, position, self.now_s())?;
            self.shared.commitlog.mark_clean(id, clean)?;
            self.shared.flushed.notify_all();
        }
        Ok(())
    }

    pub fn flush_all(&self) -> Result<()> {
        for id in self.table_ids() {
            self.flush(id)?;
        }
        Ok(())
    }

    /// Runs the compactions the table's strategy wants until none is due.
    pub fn compact_pending(&self, id: TableId) -> Result<usize> {
        let table = self.table(id)?;
        let mut done = 0;
        while let Some(task) = reserve(&table) {
            run_compaction(&self.shared, &table, &task, "Compaction")?;
            done += 1;
        }
        Ok(done)
    }

    /// Major compaction: every SSTable of the table into one (or, for
    /// leveled tables, one run of non-overlapping SSTables).
    pub fn compact_all(&self, id: TableId) -> Result<()> {
        let table = self.table(id)?;
        let view = table.view();
        let busy = table.compacting.lock().clone();
        if view.sstables.is_empty() || view.sstables.iter().any(|s| busy.contains(&s.generation()))
        {
            return Ok(());
        }
        let (output_level, output_size_bytes) = match table.options().compaction {
            crate::table::CompactionStrategy::Leveled {
                sstable_size_bytes, ..
            } => (1, Some(sstable_size_bytes)),
            _ => (0, None),
        };
        let task = compaction::CompactionTask {
            inputs: view.sstables.clone(),
            output_level,
            output_size_bytes,
        };
        table
            .compacting
            .lock()
            .extend(task.inputs.iter().map(|s| s.generation()));
        run_compaction(&self.shared, &table, &task, "Major compaction")
    }

    /// The compactions running now, with their progress.
    pub fn active_compactions(&self) -> Vec<Arc<compaction::CompactionProgress>> {
        self.shared.active_compactions.lock().clone()
    }

    /// Sets the compaction throughput limit (0 = unlimited).
    pub fn set_compaction_throughput(&self, bytes_per_s: u64) {
        self.shared
            .throttle
            .bytes_per_s
            .store(bytes_per_s, Ordering::Relaxed);
    }

    pub fn compaction_throughput(&self) -> u64 {
        self.shared.throttle.bytes_per_s.load(Ordering::Relaxed)
    }

    /// Hard-links every SSTable of every table into
    /// `<table dir>/snapshots/<name>/`, after flushing.
    pub fn snapshot(&self, name: &str) -> Result<Vec<PathBuf>> {
        self.snapshot_tables(name, &self.table_ids())
    }

    /// Snapshots the given tables (flushed first) under one name. A name
    /// already used by one of them is refused, as Cassandra does.
    pub fn snapshot_tables(&self, name: &str, ids: &[TableId]) -> Result<Vec<PathBuf>> {
        check_snapshot_name(name)?;
        let tables = ids
            .iter()
            .map(|id| self.table(*id))
            .collect::<Result<Vec<_>>>()?;
        if let Some(table) = tables
            .iter()
            .find(|t| t.dir.join("snapshots").join(name).exists())
        {
            return Err(Error::InvalidArgument(format!(
                "snapshot {name} already exists (in {})",
                table.dir.display()
            )));
        }
        let mut dirs = Vec::new();
        for table in tables {
            self.flush(table.id)?;
            let dir = table.dir.join("snapshots").join(name);
            fs::create_dir_all(&dir)?;
            for sstable in table.view().sstables.iter() {
                for component in Component::ALL {
                    let from = sstable.descriptor.path(component);
                    let Some(file_name) = from.file_name() else {
                        continue;
                    };
                    let to = dir.join(file_name);
                    std::fs::hard_link(&from, &to).map_err(Error::io(&to))?;
                }
            }
            fs::write_atomic(&options_path(&dir), table.options().encode().as_bytes())?;
            fs::sync_dir(&dir)?;
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Every snapshot of every table, by table then name.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let mut found = Vec::new();
        for id in self.table_ids() {
            let root = self.table(id)?.dir.join("snapshots");
            let Ok(entries) = std::fs::read_dir(&root) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(Error::io(&root))?;
                let (size_bytes, true_size_bytes) = snapshot_sizes(&entry.path())?;
                found.push(SnapshotInfo {
                    table: id,
                    name: entry.file_name().to_string_lossy().into_owned(),
                    size_bytes,
                    true_size_bytes,
                });
            }
        }
        found.sort_by(|a, b| (a.table, &a.name).cmp(&(b.table, &b.name)));
        Ok(found)
    }

    /// Removes the named snapshot (or, with `None`, every snapshot) of the
    /// given tables. Returns how many snapshot directories were removed.
    pub fn clear_snapshots(&self, name: Option<&str>, ids: &[TableId]) -> Result<usize> {
        if let Some(name) = name {
            check_snapshot_name(name)?;
        }
        let mut removed = 0;
        for id in ids {
            let root = self.table(*id)?.dir.join("snapshots");
            let Ok(entries) = std::fs::read_dir(&root) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(Error::io(&root))?;
                if name.is_none_or(|n| entry.file_name().to_string_lossy() == n) {
                    let path = entry.path();
                    std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn stats(&self, id: TableId) -> Result<TableStats> {
        let table = self.table(id)?;
        let view = table.view();
        let mut per_level = Vec::new();
        for sstable in &view.sstables {
            let level = sstable.stats.level as usize;
            if per_level.len() <= level {
                per_level.resize(level + 1, 0);
            }
            if let Some(count) = per_level.get_mut(level) {
                *count += 1;
            }
        }
        let busy = table.compacting.lock().clone();
        let pending =
            usize::from(compaction::pick(&view, &table.options().compaction, &busy).is_some());
        Ok(TableStats {
            sstable_count: view.sstables.len(),
            sstables_per_level: per_level,
            live_disk_bytes: view.sstables.iter().map(|s| s.size_on_disk_bytes()).sum(),
            memtable_bytes: view.active.size_bytes()
                + view.flushing.iter().map(|m| m.size_bytes()).sum::<usize>(),
            partition_count_estimate: view
                .sstables
                .iter()
                .map(|s| s.stats.partition_count)
                .sum::<u64>()
                + view.active.partition_count() as u64,
            read_latency_us: table.metrics.read_latency(),
            write_latency_us: table.metrics.write_latency(),
            range_latency_us: table.metrics.range_latency(),
            tombstones_per_read: table.metrics.tombstones_per_read(),
            tombstones_scanned_total: table.metrics.tombstones_scanned.load(Ordering::Relaxed),
            pending_compactions: pending,
        })
    }

    /// Bytes of live SSTables and of memtables over every table (a node's
    /// "load"), without the per-table work of [`Engine::stats`].
    pub fn load(&self) -> (u64, u64) {
        self.shared
            .tables
            .read()
            .values()
            .map(|table| {
                let view = table.view();
                let disk: u64 = view.sstables.iter().map(|s| s.size_on_disk_bytes()).sum();
                let memory = view.active.size_bytes()
                    + view.flushing.iter().map(|m| m.size_bytes()).sum::<usize>();
                (disk, memory as u64)
            })
            .fold((0, 0), |(disk, memory), (d, m)| (disk + d, memory + m))
    }

    /// Commitlog segments on disk.
    pub fn commitlog_segments(&self) -> usize {
        self.shared.commitlog.segment_count()
    }

    /// Flushes everything, stops background threads; later writes fail.
    pub fn shutdown(&self) -> Result<()> {
        if self.shared.shutdown.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.shared.work.notify_all();
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
        // Drain flushes the threads did not get to.
        let queued: Vec<_> = self.shared.flush_queue.lock().drain(..).collect();
        for (table, memtable, position) in queued {
            let clean = table.flush_memtable(&memtable, position, self.now_s())?;
            self.shared.commitlog.mark_clean(table.id, clean)?;
        }
        // A clean stop flushes every memtable, so the next start has
        // nothing to replay.
        let mut first_error = None;
        for id in self.table_ids() {
            if let Err(error) = self.flush(id) {
                tracing::error!(table = ?id, %error, "memtable not flushed at shutdown; its commitlog stays for replay");
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error {
            self.shared.commitlog.sync_now()?;
            return Err(error);
        }
        if !self.shared.commitlog.close_clean()? {
            tracing::warn!("commitlog still holds unflushed data after the shutdown flush; it will be replayed");
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.work.notify_all();
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
        let _ = self.shared.commitlog.sync_now();
    }
}

fn reserve(table: &Table) -> Option<compaction::CompactionTask> {
    let mut busy = table.compacting.lock();
    let task = compaction::pick(&table.view(), &table.options().compaction, &busy)?;
    busy.extend(task.inputs.iter().map(|s| s.generation()));
    Some(task)
}

/// Runs a reserved compaction, visible in [`Engine::active_compactions`]
/// while it runs, and releases its inputs afterwards.
fn run_compaction(
    shared: &Shared,
    table: &Table,
    task: &compaction::CompactionTask,
    kind: &'static str,
) -> Result<()> {
    let progress = Arc::new(compaction::CompactionProgress::new(table, task, kind));
    shared.active_compactions.lock().push(progress.clone());
    let now_s = shared.config.clock.now_s();
    let result = compaction::run(table, task, now_s, &shared.throttle, &progress);
    shared
        .active_compactions
        .lock()
        .retain(|p| !Arc::ptr_eq(p, &progress));
    release(table, task);
    result
}

fn release(table: &Table, task: &compaction::CompactionTask) {
    table
        .compacting
        .lock()
        .retain(|g| !task.inputs.iter().any(|s| s.generation() == *g));
}

fn wait_for_work(shared: &Shared, timeout: Duration) {
    let mut guard = shared.work_lock.lock();
    if !shared.shutdown.load(Ordering::Relaxed) {
        shared.work.wait_for(&mut guard, timeout);
    }
}

fn flusher(shared: &Shared) {
    let mut failures = RateLimitedLog::new(Duration::from_secs(60));
    while !shared.shutdown.load(Ordering::Relaxed) {
        let next = {
            let mut queue = shared.flush_queue.lock();
            if queue.is_empty() {
                None
            } else {
                Some(queue.remove(0))
            }
        };
        match next {
            Some((table, memtable, position)) => {
                let now_s = shared.config.clock.now_s();
                match table.flush_memtable(&memtable, position, now_s) {
                    Ok(clean) => {
                        failures.reset();
                        if let Err(error) = shared.commitlog.mark_clean(table.id, clean) {
                            tracing::error!(%error, "commitlog cleanup failed");
                        }
                    }
                    Err(error) => {
                        if let Some(suppressed) = failures.should_log() {
                            tracing::error!(table = ?table.id, %error, suppressed, "flush failed; will retry every second");
                        }
                        shared.flush_queue.lock().push((table, memtable, position));
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                shared.flushed.notify_all();
                shared.work.notify_all();
            }
            None => wait_for_work(shared, Duration::from_millis(200)),
        }
    }
}

fn compactor(shared: &Shared) {
    let mut failures = RateLimitedLog::new(Duration::from_secs(60));
    while !shared.shutdown.load(Ordering::Relaxed) {
        let tables: Vec<Arc<Table>> = shared.tables.read().values().cloned().collect();
        let mut did_work = false;
        for table in tables {
            if shared.shutdown.load(Ordering::Relaxed) {
                return;
            }
            if let Some(task) = reserve(&table) {
                match run_compaction(shared, &table, &task, "Compaction") {
                    Ok(()) => {
                        failures.reset();
                        did_work = true;
                    }
                    Err(error) => {
                        // Not retried at once (a full disk fails again):
                        // the loop waits for other work first.
                        if let Some(suppressed) = failures.should_log() {
                            tracing::error!(table = ?table.id, %error, suppressed, "compaction failed");
                        }
                    }
                }
            }
        }
        if !did_work {
            wait_for_work(shared, Duration::from_secs(1));
        }
    }
}

/// Periodic mode also syncs as soon as this much is unsynced, so no sync
/// (the syncer's, or the one a segment switch makes while writers wait) has
/// much to write out.
pub const COMMITLOG_SYNC_LAG_BYTES: u64 = 1024 * 1024;

/// The commitlog's own thread: keeps a spare segment ready, and in periodic
/// mode (`period`) syncs every period, or sooner once
/// [`COMMITLOG_SYNC_LAG_BYTES`] are unsynced.
fn commitlog_worker(shared: &Shared, period: Option<Duration>) {
    let mut last = Instant::now();
    let mut spare_failures = RateLimitedLog::new(Duration::from_secs(60));
    let mut sync_failures = RateLimitedLog::new(Duration::from_secs(60));
    let mut spare_retry_at = Instant::now();
    while !shared.shutdown.load(Ordering::Relaxed) {
        if Instant::now() >= spare_retry_at {
            match shared.commitlog.prepare_spare() {
                Ok(()) => spare_failures.reset(),
                Err(error) => {
                    // A full disk: try again in a second, not every loop.
                    spare_retry_at = Instant::now() + Duration::from_secs(1);
                    if let Some(suppressed) = spare_failures.should_log() {
                        tracing::error!(%error, suppressed, "cannot prepare the next commitlog segment");
                    }
                }
            }
        }
        let Some(period) = period else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let wait = period
            .saturating_sub(last.elapsed())
            .min(Duration::from_millis(20));
        if !wait.is_zero() && shared.commitlog.unsynced_bytes() < COMMITLOG_SYNC_LAG_BYTES {
            std::thread::sleep(wait);
            continue;
        }
        last = Instant::now();
        match shared.commitlog.periodic_sync() {
            Ok(()) => sync_failures.reset(),
            Err(error) => {
                if let Some(suppressed) = sync_failures.should_log() {
                    tracing::error!(%error, suppressed, "commitlog sync failed");
                }
            }
        }
    }
}

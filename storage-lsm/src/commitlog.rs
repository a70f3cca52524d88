//! The commitlog: every mutation is appended here before it is acknowledged,
//! and replayed into memtables after a crash.
//!
//! Segments are files `CommitLog-<id>.log` of `segment_size_bytes`, created
//! at that size (allocated up front) and mapped into memory; a record is
//! copied into the mapping, so an append costs no system call and a killed
//! process loses nothing the kernel has (the mapping is the page cache), as
//! with Cassandra's memory-mapped segments. Zeros after the last record are
//! the unwritten rest. The engine's commitlog thread keeps the next segment
//! made and mapped ahead of time ([`CommitLog::prepare_spare`]), so the
//! writer that fills a segment does not wait for a file; a full segment is
//! fsynced by the next sync, before the active one. Layout:
//! - header: `u32 magic, u32 version, u64 id, u32 crc32(previous 16 bytes)`;
//! - records: `u32 len, u32 crc32(len LE bytes ++ payload), payload`, where
//!   the payload is `u8 codec` and one encoded [`Mutation`]: as is (codec
//!   0), or LZ4-compressed with its length first (codec 1) when compression
//!   is on and it saves at least an eighth. (Version 1 segments, from before
//!   the codec byte, hold the mutation alone; replay reads both.)
//!
//! Sync modes: `Periodic` fsyncs from a background thread every period, or
//! sooner once a megabyte is unsynced (a crash may lose up to one period);
//! `Batch` acknowledges a write only
//! after an fsync that covers it, and writers waiting at the same time share
//! one fsync (group commit).
//!
//! A segment is deleted once no table has unflushed data in it: each segment
//! remembers, per table, the last offset written; a flush marks a table clean
//! up to the position where its memtable was switched.
//!
//! Replay reads segments in id order. A bad record in the last segment with
//! no whole record after it is a torn tail (the crash interrupted a write):
//! replay stops there. Any other bad record is damage: by default
//! ([`ReplayPolicy::Stop`]) the commitlog refuses to open, naming the
//! segment, the offset and how many whole records follow; with
//! [`ReplayPolicy::SkipDamaged`] only the damaged record is skipped, every
//! record after it is replayed, the damage is reported with file and offset,
//! and the segment is set aside.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use parking_lot::{Condvar, Mutex};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::fs;
use crate::model::{Mutation, TableId};

const MAGIC: u32 = 0x494c_434c; // "ILCL"
const VERSION: u32 = 2;
const HEADER_BYTES: usize = 20;
const RECORD_HEADER_BYTES: usize = 8;
/// A record's codec byte: the mutation as is.
const CODEC_PLAIN: u8 = 0;
/// A record's codec byte: the mutation LZ4-compressed, its length first.
const CODEC_LZ4: u8 = 1;
/// Mutations shorter than this are never worth compressing.
const COMPRESS_BYTES_MIN: usize = 64;
const SEGMENT_BYTES_MIN: u64 = 64 * 1024;

/// When the commitlog is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Periodic(Duration),
    Batch,
}

/// What replay does with a damaged record that is not a torn tail (valid
/// records follow it, or it is in an earlier segment): Cassandra's
/// `commit_failure_policy` at replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayPolicy {
    /// Refuse to open: replaying past the damage would lose the damaged
    /// writes without anyone deciding to.
    #[default]
    Stop,
    /// Skip only the damaged record, replay every whole record after it,
    /// and log what was skipped (the segment is set aside afterwards).
    SkipDamaged,
}

/// A point in the commitlog: segment id and byte offset after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What replay found.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    pub segments: usize,
    pub mutations: u64,
    /// Where the last segment's torn tail was cut, if it had one.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Damage found before the last segment: file, offset, reason.
    pub damaged: Vec<(PathBuf, u64, String)>,
}

struct Segment {
    id: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// Per table, the end offset of its last record in this segment
    /// (updated on every append: a fast hash).
    dirty: HashMap<TableId, u64, foldhash::fast::RandomState>,
    /// A full segment whose records are not all fsynced yet (the next sync
    /// covers it before the active segment).
    needs_sync: bool,
}

struct State {
    active: Segment,
    /// The active segment's bytes, mapped: appends copy records here.
    active_map: MmapMut,
    /// Full segments not yet deleted, by id.
    closed: BTreeMap<u64, Segment>,
    /// The next segment, created and mapped ahead of time (see
    /// [`CommitLog::prepare_spare`]), so a writer that fills a segment
    /// does not wait for a file to be made.
    spare: Option<(Segment, MmapMut)>,
    next_id: u64,
    written: Position,
    /// A segment was created since the directory was last synced: the next
    /// sync makes its name durable too.
    dir_unsynced: bool,
    /// Set by a clean close ([`CommitLog::close_clean`]): the segments are
    /// gone and appends are refused.
    closed_clean: bool,
}

struct SyncState {
    synced: Position,
    syncing: bool,
}

/// The node's commitlog.
pub struct CommitLog {
    dir: PathBuf,
    mode: SyncMode,
    segment_size_bytes: u64,
    compress: bool,
    state: Mutex<State>,
    sync: Mutex<SyncState>,
    synced_cond: Condvar,
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .finish()
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("CommitLog-{id}.log"))
}

/// Creates a segment with its header, sized to `size_bytes` and allocated
/// up front, and maps it. Appends then never grow the file, so they never
/// wait for the filesystem's journal (which a sync of the same file may be
/// committing), and a full disk is an error here instead of a fault in a
/// writer later. Replay reads the zeros after the last record as the
/// segment's end.
///
/// Nothing is fsynced here (writers may be waiting): the next sync of the
/// commitlog covers the header and the directory entry, and until then a
/// crash leaves at worst a last segment with a torn header, which replay
/// cuts like any torn tail.
fn create_segment(dir: &Path, id: u64, size_bytes: u64) -> Result<(Segment, MmapMut)> {
    let path = segment_path(dir, id);
    let made = make_segment(&path, id, size_bytes);
    if made.is_err() {
        // A segment that could not be made whole (a full disk) leaves
        // nothing behind: no partly allocated file for replay to read.
        let _ = std::fs::remove_file(&path);
    }
    made
}

fn make_segment(path: &Path, id: u64, size_bytes: u64) -> Result<(Segment, MmapMut)> {
    let path = path.to_owned();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    allocate(&file, size_bytes).map_err(Error::io(&path))?;
    let mut map = map_segment(&file).map_err(Error::io(&path))?;
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&id.to_le_bytes());
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    map.get_mut(..HEADER_BYTES)
        .ok_or_else(|| Error::io(&path)(std::io::Error::other("segment smaller than its header")))?
        .copy_from_slice(&header);
    let segment = Segment {
        id,
        path,
        file: Arc::new(file),
        len: HEADER_BYTES as u64,
        dirty: HashMap::default(),
        needs_sync: false,
    };
    Ok((segment, map))
}

/// Gives `file` its full length, with its blocks allocated where the
/// filesystem can (elsewhere it stays sparse).
fn allocate(file: &File, size_bytes: u64) -> std::io::Result<()> {
    file.set_len(size_bytes)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(size_bytes).map_err(std::io::Error::other)?;
        #[allow(unsafe_code)]
        // SAFETY: fallocate only reads its integer arguments; the descriptor
        // is open for writing for the duration of the call.
        let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(error);
            }
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn map_segment(file: &File) -> std::io::Result<MmapMut> {
    // SAFETY: a segment file is written only through this mapping, by the
    // commitlog that created it, under its state lock; nothing truncates
    // it while it is mapped (it is deleted, not shrunk, once clean).
    unsafe { MmapMut::map_mut(file) }
}

/// Lists existing segments by id.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_prefix("CommitLog-")
            .and_then(|rest| rest.strip_suffix(".log"))
            .and_then(|id| id.parse::<u64>().ok())
        {
            segments.push((id, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

impl CommitLog {
    /// Replays every existing segment through `apply`, then returns the
    /// replayed segments (to delete once their data is flushed) and a fresh
    /// commitlog that starts a new segment after them.
    pub fn open(
        dir: &Path,
        mode: SyncMode,
        segment_size_bytes: u64,
        compress: bool,
        policy: ReplayPolicy,
        apply: impl FnMut(Mutation) -> Result<()>,
    ) -> Result<(CommitLog, Vec<PathBuf>, ReplayReport)> {
        let (segments, report) = CommitLog::replay(dir, policy, apply)?;
        let next_id = segments.last().map_or(1, |(id, _)| id + 1);
        let log = CommitLog::create(dir, mode, segment_size_bytes, compress, next_id)?;
        Ok((log, segments.into_iter().map(|(_, p)| p).collect(), report))
    }

    /// Replays every existing segment through `apply`; returns them by id
    /// (to delete once their data is flushed) and what replay found.
    /// Creates nothing, so a node whose disk is nearly full can replay and
    /// flush before it needs room for a new segment.
    pub fn replay(
        dir: &Path,
        policy: ReplayPolicy,
        mut apply: impl FnMut(Mutation) -> Result<()>,
    ) -> Result<(Vec<(u64, PathBuf)>, ReplayReport)> {
        fs::create_dir_all(dir)?;
        let segments = list_segments(dir)?;
        let mut report = ReplayReport {
            segments: segments.len(),
            ..ReplayReport::default()
        };
        // A spare segment made ahead of time may follow the one that was
        // being written: the torn-tail rule applies to the last segment
        // that holds records, and a spare has nothing to replay.
        let holds_records = segments
            .iter()
            .map(|(_, path)| segment_holds_records(path))
            .collect::<Result<Vec<bool>>>()?;
        let last_index = holds_records.iter().rposition(|&h| h).unwrap_or(0);
        for (i, (_, path)) in segments.iter().enumerate() {
            if holds_records.get(i) == Some(&true) {
                replay_segment(path, i == last_index, policy, &mut report, &mut apply)?;
            }
        }
        Ok((segments, report))
    }

    /// A commitlog whose first segment is `next_id` (after every segment
    /// replayed).
    pub fn create(
        dir: &Path,
        mode: SyncMode,
        segment_size_bytes: u64,
        compress: bool,
        next_id: u64,
    ) -> Result<CommitLog> {
        fs::create_dir_all(dir)?;
        let segment_size_bytes = segment_size_bytes.max(SEGMENT_BYTES_MIN);
        let (active, active_map) = create_segment(dir, next_id, segment_size_bytes)?;
        active.file.sync_all().map_err(Error::io(&active.path))?;
        fs::sync_dir(dir)?;
        let written = Position {
            segment: next_id,
            offset: active.len,
        };
        let log = CommitLog {
            dir: dir.to_owned(),
            mode,
            segment_size_bytes,
            compress,
            state: Mutex::new(State {
                active,
                active_map,
                closed: BTreeMap::new(),
                spare: None,
                next_id: next_id + 1,
                written,
                dir_unsynced: false,
                closed_clean: false,
            }),
            sync: Mutex::new(SyncState {
                synced: written,
                syncing: false,
            }),
            synced_cond: Condvar::new(),
        };
        Ok(log)
    }

    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// Appends one mutation; returns the position after it. The caller must
    /// call [`CommitLog::wait_durable`] before acknowledging in batch mode.
    pub fn append(&self, mutation: &Mutation) -> Result<Position> {
        let record = self.encode_record(mutation)?;
        self.append_record(mutation.table, &record)
    }

    /// Encodes a mutation as one record (so it can be done before taking locks).
    pub fn encode_record(&self, mutation: &Mutation) -> Result<Vec<u8>> {
        // One buffer: the header's place first, the payload after it, then
        // the header filled in.
        let mut writer = Writer::new();
        writer.buf.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
        writer.u8(CODEC_PLAIN);
        writer.mutation(mutation);
        let mut record = writer.buf;
        let plain = RECORD_HEADER_BYTES + 1;
        if self.compress && record.len() - plain >= COMPRESS_BYTES_MIN {
            let compressed =
                lz4_flex::block::compress_prepend_size(record.get(plain..).unwrap_or_default());
            if compressed.len() <= (record.len() - plain) * 7 / 8 {
                record.truncate(RECORD_HEADER_BYTES);
                record.push(CODEC_LZ4);
                record.extend_from_slice(&compressed);
            }
        }
        let len = (record.len() - RECORD_HEADER_BYTES) as u32;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len.to_le_bytes());
        hasher.update(record.get(RECORD_HEADER_BYTES..).unwrap_or_default());
        let crc = hasher.finalize();
        if let Some(place) = record.get_mut(..4) {
            place.copy_from_slice(&len.to_le_bytes());
        }
        if let Some(place) = record.get_mut(4..RECORD_HEADER_BYTES) {
            place.copy_from_slice(&crc.to_le_bytes());
        }
        if record.len() as u64 > self.segment_size_bytes / 2 {
            return Err(Error::MutationTooLarge {
                size_bytes: record.len(),
                limit_bytes: (self.segment_size_bytes / 2) as usize,
            });
        }
        Ok(record)
    }

    /// Appends a record made by [`CommitLog::encode_record`] for `table`.
    pub fn append_record(&self, table: TableId, record: &[u8]) -> Result<Position> {
        let mut state = self.state.lock();
        if state.closed_clean {
            return Err(Error::ShutDown);
        }
        if state.active.len + record.len() as u64 > self.segment_size_bytes {
            self.switch_segment(&mut state)?;
        }
        let State {
            active: segment,
            active_map,
            ..
        } = &mut *state;
        let start = segment.len as usize;
        active_map
            .get_mut(start..start + record.len())
            .ok_or_else(|| {
                Error::io(&segment.path)(std::io::Error::other("record runs past the segment"))
            })?
            .copy_from_slice(record);
        segment.len += record.len() as u64;
        segment.dirty.insert(table, segment.len);
        let position = Position {
            segment: segment.id,
            offset: segment.len,
        };
        state.written = position;
        Ok(position)
    }

    /// Makes the next segment the active one: the spare if one is ready,
    /// a new one otherwise. The full segment is not synced here (writers
    /// wait on this lock): the next sync covers it before the new one.
    fn switch_segment(&self, state: &mut State) -> Result<()> {
        let (next, next_map) = match state.spare.take() {
            Some(spare) => spare,
            None => {
                let made = create_segment(&self.dir, state.next_id, self.segment_size_bytes)?;
                state.next_id += 1;
                state.dir_unsynced = true;
                made
            }
        };
        assert!(
            next.id > state.active.id,
            "commitlog segments must be used in id order"
        );
        state.active_map = next_map;
        let mut full = std::mem::replace(&mut state.active, next);
        full.needs_sync = true;
        state.closed.insert(full.id, full);
        Ok(())
    }

    /// Creates and maps the next segment ahead of time, if none is ready,
    /// outside the lock writers take. Called by the engine's commitlog
    /// thread; a segment made in between by a writer (the spare was late)
    /// makes this one useless, and it is removed.
    pub fn prepare_spare(&self) -> Result<()> {
        let id = {
            let mut state = self.state.lock();
            if state.spare.is_some() {
                return Ok(());
            }
            state.next_id += 1;
            state.next_id - 1
        };
        let (segment, map) = create_segment(&self.dir, id, self.segment_size_bytes)?;
        let mut state = self.state.lock();
        if segment.id > state.active.id && state.spare.is_none() {
            state.spare = Some((segment, map));
            state.dir_unsynced = true;
            return Ok(());
        }
        drop(state);
        drop(map);
        fs::remove_file(&segment.path)
    }

    /// The position after the last appended record.
    pub fn current_position(&self) -> Position {
        self.state.lock().written
    }

    /// Blocks until everything up to `position` is fsynced (batch mode's
    /// group commit: one waiter syncs for all).
    pub fn wait_durable(&self, position: Position) -> Result<()> {
        let mut sync = self.sync.lock();
        loop {
            if sync.synced >= position {
                return Ok(());
            }
            if !sync.syncing {
                sync.syncing = true;
                drop(sync);
                let result = self.sync_now();
                sync = self.sync.lock();
                sync.syncing = false;
                if let Ok(synced) = result {
                    if synced > sync.synced {
                        sync.synced = synced;
                    }
                }
                self.synced_cond.notify_all();
                result?;
            } else {
                self.synced_cond.wait(&mut sync);
            }
        }
    }

    /// Fsyncs the full segments not yet synced, then the active one (and
    /// the directory, when a segment was created since); returns the
    /// position now durable.
    pub fn sync_now(&self) -> Result<Position> {
        let (full, file, path, position, dir_unsynced) = {
            let mut state = self.state.lock();
            let full: Vec<(u64, Arc<File>, PathBuf)> = state
                .closed
                .values()
                .filter(|s| s.needs_sync)
                .map(|s| (s.id, s.file.clone(), s.path.clone()))
                .collect();
            (
                full,
                state.active.file.clone(),
                state.active.path.clone(),
                state.written,
                std::mem::take(&mut state.dir_unsynced),
            )
        };
        if dir_unsynced {
            if let Err(error) = fs::sync_dir(&self.dir) {
                self.state.lock().dir_unsynced = true;
                return Err(error);
            }
        }
        for (id, file, path) in full {
            file.sync_data().map_err(Error::io(&path))?;
            if let Some(segment) = self.state.lock().closed.get_mut(&id) {
                segment.needs_sync = false;
            }
        }
        file.sync_data().map_err(Error::io(&path))?;
        Ok(position)
    }

    /// Bytes appended since the last completed sync (counting a whole
    /// segment for each switch in between).
    pub fn unsynced_bytes(&self) -> u64 {
        let written = self.state.lock().written;
        let synced = self.sync.lock().synced;
        if written.segment == synced.segment {
            written.offset.saturating_sub(synced.offset)
        } else {
            (written.segment - synced.segment) * self.segment_size_bytes + written.offset
        }
    }

    /// Periodic mode's background sync; also records the durable position.
    pub fn periodic_sync(&self) -> Result<()> {
        let position = self.sync_now()?;
        let mut sync = self.sync.lock();
        if position > sync.synced {
            sync.synced = position;
        }
        Ok(())
    }

    /// Records that `table`'s data up to `position` is flushed, and deletes
    /// segments no table needs any more.
    pub fn mark_clean(&self, table: TableId, position: Position) -> Result<()> {
        let removable = {
            let mut state = self.state.lock();
            let clean = |segment: &mut Segment| {
                if segment.id < position.segment
                    || (segment.id == position.segment
                        && segment
                            .dirty
                            .get(&table)
                            .is_some_and(|&end| end <= position.offset))
                {
                    segment.dirty.remove(&table);
                }
            };
            for segment in state.closed.values_mut() {
                clean(segment);
            }
            clean(&mut state.active);
            let removable: Vec<u64> = state
                .closed
                .values()
                .filter(|s| s.dirty.is_empty())
                .map(|s| s.id)
                .collect();
            removable
                .into_iter()
                .filter_map(|id| state.closed.remove(&id))
                .map(|s| s.path)
                .collect::<Vec<_>>()
        };
        for path in removable {
            fs::remove_file(&path)?;
        }
        Ok(())
    }

    /// At a clean shutdown, once every memtable is flushed: when no segment
    /// holds unflushed data, deletes every segment (the spare too) so that
    /// the next start replays nothing, and refuses appends from then on.
    /// Returns whether it did; a segment still dirty keeps them all, to be
    /// replayed.
    pub fn close_clean(&self) -> Result<bool> {
        self.sync_now()?;
        let paths = {
            let mut state = self.state.lock();
            let dirty = !state.active.dirty.is_empty()
                || state.closed.values().any(|s| !s.dirty.is_empty());
            if dirty {
                return Ok(false);
            }
            state.closed_clean = true;
            let mut paths: Vec<PathBuf> = std::mem::take(&mut state.closed)
                .into_values()
                .map(|s| s.path)
                .collect();
            paths.push(state.active.path.clone());
            if let Some((spare, _)) = state.spare.take() {
                paths.push(spare.path);
            }
            paths
        };
        for path in &paths {
            fs::remove_file(path)?;
        }
        fs::sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Forgets a dropped table everywhere.
    pub fn forget_table(&self, table: TableId) -> Result<()> {
        self.mark_clean(
            table,
            Position {
                segment: u64::MAX,
                offset: u64::MAX,
            },
        )
    }

    /// Segments still on disk (for stats).
    pub fn segment_count(&self) -> usize {
        let state = self.state.lock();
        state.closed.len() + 1
    }

    /// Total bytes in live segments.
    pub fn size_bytes(&self) -> u64 {
        let state = self.state.lock();
        state.active.len + state.closed.values().map(|s| s.len).sum::<u64>()
    }
}

/// Whether a segment has anything after its header: the first record's
/// length word is not zero (a spare made ahead of time, or a segment cut
/// short while it was made, has none).
fn segment_holds_records(path: &Path) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(Error::io(path))?;
    let mut first_len = [0u8; 4];
    match file.read_exact_at(&mut first_len, HEADER_BYTES as u64) {
        Ok(()) => Ok(first_len != [0; 4]),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path)(e)),
    }
}

fn replay_segment(
    path: &Path,
    is_last: bool,
    policy: ReplayPolicy,
    report: &mut ReplayReport,
    apply: &mut impl FnMut(Mutation) -> Result<()>,
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let header_ok = bytes.len() >= HEADER_BYTES
        && bytes.get(..4) == Some(&MAGIC.to_le_bytes()[..])
        && bytes
            .get(16..20)
            .zip(bytes.get(..16))
            .is_some_and(|(crc, body)| crc == crc32fast::hash(body).to_le_bytes());
    let version = bytes
        .get(4..8)
        .and_then(|v| v.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let header_problem = if !header_ok {
        Some("bad segment header".to_owned())
    } else if !(1..=VERSION).contains(&version) {
        Some(format!("unsupported segment version {version}"))
    } else {
        None
    };
    if let Some(reason) = header_problem {
        let resume = next_record(&bytes, HEADER_BYTES);
        if is_last && resume.is_none() {
            // A crash while the segment was being made.
            tracing::warn!(path = %path.display(), %reason, "commitlog: cutting torn tail");
            report.torn_tail = Some((path.to_owned(), 0));
            return Ok(());
        }
        // Records whose version is unknown cannot be decoded: nothing of
        // the segment is replayed, whatever the policy.
        return damaged(path, 0, reason, &bytes, resume, policy, report).map(|_| ());
    }
    let mut at = HEADER_BYTES;
    let started = Instant::now();
    while at < bytes.len() {
        if bytes
            .get(at..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0))
        {
            break; // the unwritten rest of a presized segment
        }
        let problem = match check_record(&bytes, at) {
            Ok(payload) => match decode_record(version, payload) {
                Ok(mutation) => {
                    apply(mutation)?;
                    report.mutations += 1;
                    at += RECORD_HEADER_BYTES + payload.len();
                    continue;
                }
                Err(reason) => format!("record does not decode: {reason}"),
            },
            Err(reason) => reason,
        };
        let resume = next_record(&bytes, at + 1);
        if is_last && resume.is_none() {
            // Nothing whole after it: the crash interrupted this write.
            tracing::warn!(path = %path.display(), offset = at, reason = %problem, "commitlog: cutting torn tail");
            report.torn_tail = Some((path.to_owned(), at as u64));
            break;
        }
        match damaged(path, at, problem, &bytes, resume, policy, report)? {
            Some(next) => at = next,
            None => break,
        }
    }
    tracing::info!(path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "commitlog segment replayed");
    Ok(())
}

/// Damage that is not a torn tail, at `at`: with [`ReplayPolicy::Stop`] an
/// error naming the segment, the offset and how many whole records follow;
/// with [`ReplayPolicy::SkipDamaged`] it is logged and reported, and
/// `resume`, the offset of the next whole record, returned.
fn damaged(
    path: &Path,
    at: usize,
    reason: String,
    bytes: &[u8],
    resume: Option<usize>,
    policy: ReplayPolicy,
    report: &mut ReplayReport,
) -> Result<Option<usize>> {
    match policy {
        ReplayPolicy::Stop => Err(Error::CommitlogDamaged {
            path: path.to_owned(),
            offset: at as u64,
            reason,
            records_after: resume.map_or(0, |from| count_records(bytes, from)),
        }),
        ReplayPolicy::SkipDamaged => {
            let skipped_bytes = resume.unwrap_or(bytes.len()) - at;
            tracing::error!(path = %path.display(), offset = at, skipped_bytes, %reason,
                "commitlog: damaged record skipped (commit failure policy: ignore); replay goes on after it");
            report.damaged.push((path.to_owned(), at as u64, reason));
            Ok(resume)
        }
    }
}

/// The payload of the whole record at `at` (its length fits and its
/// checksum matches), or why not.
fn check_record(bytes: &[u8], at: usize) -> std::result::Result<&[u8], String> {
    let Some(header) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
        return Err("record header cut short".into());
    };
    let len_bytes: [u8; 4] = header
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 4]);
    let crc_bytes: [u8; 4] = header
        .get(4..)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 4]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 {
        return Err("record of 0 bytes".into());
    }
    let Some(payload) = bytes.get(at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + len) else {
        return Err(format!("record of {len} bytes runs past the end"));
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    let found = hasher.finalize();
    let expected = u32::from_le_bytes(crc_bytes);
    if found != expected {
        return Err(format!(
            "checksum mismatch: expected {expected:#010x}, found {found:#010x}"
        ));
    }
    Ok(payload)
}

/// The offset of the first whole record at or after `from` (length in
/// bounds, a known codec byte, checksum matching), searched byte by byte.
fn next_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER_BYTES)).find(|&at| {
        let plausible = bytes
            .get(at + RECORD_HEADER_BYTES)
            .is_some_and(|&codec| codec == CODEC_PLAIN || codec == CODEC_LZ4);
        plausible && check_record(bytes, at).is_ok()
    })
}

/// How many whole records lie from `from` on, stepping over damage.
fn count_records(bytes: &[u8], from: usize) -> u64 {
    let mut count = 0;
    let mut at = Some(from);
    while let Some(start) = at {
        match check_record(bytes, start) {
            Ok(payload) => {
                count += 1;
                at = Some(start + RECORD_HEADER_BYTES + payload.len());
            }
            Err(_) => at = next_record(bytes, start + 1),
        }
    }
    count
}

/// The mutation in a record's payload, as a segment of `version` wrote it.
fn decode_record(version: u32, payload: &[u8]) -> std::result::Result<Mutation, String> {
    let decode = |bytes: &[u8]| {
        Reader::new(bytes)
            .mutation()
            .map_err(|e| e.reason.to_owned())
    };
    if version == 1 {
        return decode(payload);
    }
    match payload.split_first() {
        Some((&CODEC_PLAIN, mutation)) => decode(mutation),
        Some((&CODEC_LZ4, compressed)) => {
            let mutation = lz4_flex::block::decompress_size_prepended(compressed)
                .map_err(|e| format!("does not decompress: {e}"))?;
            decode(&mutation)
        }
        Some((codec, _)) => Err(format!("unknown codec {codec}")),
        None => Err("empty record".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PartitionKey, PartitionUpdate, Row};

    fn mutation(i: u32) -> Mutation {
        Mutation {
            table: TableId(7),
            key: PartitionKey::new(i64::from(i), i.to_be_bytes().to_vec()),
            update: PartitionUpdate {
                rows: vec![Row::new(Vec::new(), Vec::new())],
                ..Default::default()
            },
        }
    }

    /// Opens the commitlog in `dir` with the smallest segments; returns it
    /// and the replay: the tokens of the records replayed, in order, and
    /// the report.
    fn replayed(dir: &Path) -> Result<(CommitLog, (Vec<i64>, ReplayReport))> {
        let mut tokens = Vec::new();
        let (log, _, report) = CommitLog::open(
            dir,
            SyncMode::Batch,
            SEGMENT_BYTES_MIN,
            false,
            ReplayPolicy::Stop,
            |m| {
                tokens.push(m.key.token);
                Ok(())
            },
        )?;
        Ok((log, (tokens, report)))
    }

    /// A record torn by a crash is a torn tail, not damage, when an unused
    /// spare segment follows its segment; the records before it replay.
    #[test]
    fn torn_record_before_a_spare_is_a_torn_tail() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io(Path::new("tmp")))?;
        let (log, _) = replayed(dir.path())?;
        for i in 0..10u32 {
            log.append(&mutation(i))?;
        }
        log.prepare_spare()?;
        {
            // A record header whose payload never arrived.
            let mut state = log.state.lock();
            let at = state.active.len as usize;
            if let Some(torn) = state.active_map.get_mut(at..at + 8) {
                torn.copy_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4]);
            }
        }
        drop(log);
        let (_, (tokens, report)) = replayed(dir.path())?;
        assert_eq!(tokens, (0..10i64).collect::<Vec<_>>());
        assert!(report.torn_tail.is_some(), "{report:?}");
        assert!(report.damaged.is_empty(), "{report:?}");
        Ok(())
    }

    /// Segments made ahead of time are taken in id order, with or without
    /// a spare ready at each switch, and every record replays in order;
    /// the spare left unused at the end replays as an empty segment.
    #[test]
    fn spare_segments_keep_records_in_order() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io(Path::new("tmp")))?;
        let (log, _) = replayed(dir.path())?;
        let mut ids = Vec::new();
        for i in 0..20_000u32 {
            // A spare is ready at some switches and not at others.
            if i % 3_000 == 0 {
                log.prepare_spare()?;
            }
            let position = log.append(&mutation(i))?;
            if ids.last() != Some(&position.segment) {
                ids.push(position.segment);
            }
            if i % 5_000 == 0 {
                log.wait_durable(position)?;
            }
        }
        log.prepare_spare()?;
        assert!(ids.len() > 5, "the records span several segments: {ids:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
        drop(log);
        let (_, (tokens, _)) = replayed(dir.path())?;
        assert_eq!(tokens, (0..20_000i64).collect::<Vec<_>>());
        Ok(())
    }
}

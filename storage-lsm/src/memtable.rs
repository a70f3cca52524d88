//! The memtable: a table's recent writes in memory, sorted, until they are
//! flushed to an SSTable.
//!
//! Partitions sit in B-trees ordered by `(token, key)`, one per shard of
//! the token range ([`SHARDS`]), each behind a read-write lock held only for
//! one lookup or insert (a B-tree finds a key in a few cache lines where a
//! skip list of the same size chases a pointer per level). Each partition is
//! behind its own mutex, so writers to different partitions never wait for
//! each other's rows. Readers copy a partition's atoms out a chunk at a time
//! ([`MEMTABLE_READ_CHUNK`]), never holding a lock while the caller works and
//! never copying a whole wide partition at once.
//!
//! A memtable counts its approximate size; the table switches to a fresh one
//! when it passes the configured limit, and the old one becomes read-only
//! while it flushes.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::commitlog::Position;
use crate::error::Result;
use crate::merge::{shadows_own_cells, Atom, AtomSource, PartitionHeader};
use crate::model::{
    max_deletion, ClusteringPosition, DeletionTime, PartitionKey, PartitionUpdate, Row,
};
use crate::range_tombstones::{RangeMarker, RangeTombstoneList};
use crate::row_map::RowMap;

/// What a partition costs in memory beyond its data: its B-tree slot
/// (key, value pointer, its share of the node), the shared, locked partition and its
/// collections' headers. Counted so the memtable limit bounds real memory.
const PARTITION_OVERHEAD_BYTES: usize = std::mem::size_of::<MemPartition>()
    + std::mem::size_of::<PartitionKey>()
    + 4 * std::mem::size_of::<usize>() // B-tree slot and edges, refcounts
    + std::mem::size_of::<Mutex<()>>();

/// Atoms copied out of a memtable partition per lock acquisition.
pub const MEMTABLE_READ_CHUNK: usize = 256;

/// One partition's data in a memtable.
#[derive(Debug, Default)]
pub struct MemPartition {
    pub deletion: Option<DeletionTime>,
    pub static_row: Option<Row>,
    pub rows: RowMap,
    pub range_tombstones: RangeTombstoneList,
}

impl MemPartition {
    fn apply(&mut self, update: PartitionUpdate) {
        self.deletion = max_deletion(self.deletion, update.partition_deletion);
        if let Some(row) = update.static_row {
            match &mut self.static_row {
                Some(existing) => existing.merge_from(row),
                None => self.static_row = Some(row),
            }
        }
        for rt in update.range_tombstones {
            self.range_tombstones.add(
                rt.range.start_position(),
                rt.range.end_position(),
                rt.deletion,
            );
        }
        for row in update.rows {
            self.rows.merge(row);
        }
    }

    /// The rows, borrowed, when they can be written as they are: a narrow
    /// partition in which nothing shadows anything (no partition, range or
    /// row deletion, no column tombstone, no empty row). Otherwise the
    /// partition must go through the merge, which removes what is shadowed.
    pub fn rows_as_written(&self) -> Option<impl Iterator<Item = &Row>> {
        let RowMap::Narrow(rows) = &self.rows else {
            return None;
        };
        let plain = self.deletion.is_none()
            && self.range_tombstones.is_empty()
            && rows
                .iter()
                .all(|(_, row)| !row.is_empty() && !shadows_own_cells(row));
        plain.then(|| rows.iter().map(|(_, row)| row))
    }

    pub fn header(&self) -> PartitionHeader {
        PartitionHeader {
            deletion: self.deletion,
            static_row: self.static_row.clone(),
        }
    }
}

/// Bytes held by all of an engine's memtables together: each memtable adds
/// what it takes and gives it back when it is dropped (after its flush, once
/// no reader holds it).
pub type MemtableMemory = Arc<AtomicUsize>;

/// Memtable shards: `1 << SHARD_BITS` of them, each a contiguous range of
/// tokens.
const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;

/// The shard of `token`. Flipping the sign bit maps token order onto
/// unsigned order, so shard `i` holds tokens below those of shard `i + 1`
/// and the shards in turn hold the partitions in order.
fn shard_of(token: i64) -> usize {
    (((token as u64) ^ (1 << 63)) >> (64 - SHARD_BITS)) as usize
}

/// Whether `(lo, hi)` holds no key at all (a `BTreeMap` range must not be
/// asked for then: it panics on bounds out of order).
fn is_empty_range(lo: Bound<&PartitionKey>, hi: Bound<&PartitionKey>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => {
            l >= h
        }
        _ => false,
    }
}

type Partitions = BTreeMap<PartitionKey, Arc<Mutex<MemPartition>>>;

/// A table's in-memory write buffer.
#[derive(Debug)]
pub struct Memtable {
    shards: Box<[RwLock<Partitions>]>,
    partition_count: AtomicUsize,
    size_bytes: AtomicUsize,
    memory: MemtableMemory,
    min_timestamp: AtomicI64,
    max_timestamp: AtomicI64,
    /// Commitlog position when this memtable began taking writes: records
    /// before it are not in this memtable.
    commitlog_lower_bound: Position,
}

impl Memtable {
    pub fn new(commitlog_lower_bound: Position, memory: MemtableMemory) -> Memtable {
        Memtable {
            commitlog_lower_bound,
            shards: (0..SHARDS).map(|_| RwLock::new(BTreeMap::new())).collect(),
            partition_count: AtomicUsize::new(0),
            size_bytes: AtomicUsize::new(0),
            memory,
            min_timestamp: AtomicI64::new(i64::MAX),
            max_timestamp: AtomicI64::new(i64::MIN),
        }
    }

    fn shard(&self, token: i64) -> &RwLock<Partitions> {
        &self.shards[shard_of(token)]
    }

    /// Applies one partition update.
    pub fn apply(&self, key: PartitionKey, update: PartitionUpdate) {
        let mut size = update.size_bytes();
        if let Some((min, max)) = update.timestamp_range() {
            self.min_timestamp.fetch_min(min, AtomicOrdering::Relaxed);
            self.max_timestamp.fetch_max(max, AtomicOrdering::Relaxed);
        }
        let shard = self.shard(key.token);
        let existing = shard.read().get(&key).cloned();
        let partition = match existing {
            Some(partition) => partition,
            None => {
                let key_bytes = key.key.len();
                let mut map = shard.write();
                map.entry(key)
                    .or_insert_with(|| {
                        size += PARTITION_OVERHEAD_BYTES + key_bytes;
                        self.partition_count.fetch_add(1, AtomicOrdering::Relaxed);
                        Arc::new(Mutex::new(MemPartition::default()))
                    })
                    .clone()
            }
        };
        partition.lock().apply(update);
        self.size_bytes.fetch_add(size, AtomicOrdering::Relaxed);
        self.memory.fetch_add(size, AtomicOrdering::Relaxed);
    }

    pub fn commitlog_lower_bound(&self) -> Position {
        self.commitlog_lower_bound
    }

    pub fn size_bytes(&self) -> usize {
        self.size_bytes.load(AtomicOrdering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.partition_count() == 0
    }

    pub fn partition_count(&self) -> usize {
        self.partition_count.load(AtomicOrdering::Relaxed)
    }

    /// Lowest and highest timestamps written, if anything was.
    pub fn timestamp_range(&self) -> Option<(i64, i64)> {
        let min = self.min_timestamp.load(AtomicOrdering::Relaxed);
        let max = self.max_timestamp.load(AtomicOrdering::Relaxed);
        (min <= max).then_some((min, max))
    }

    pub fn get(&self, key: &PartitionKey) -> Option<Arc<Mutex<MemPartition>>> {
        self.shard(key.token).read().get(key).cloned()
    }

    /// Partition keys in `(lo, hi)` order, at most `max`, for range scans.
    pub fn keys_in(
        &self,
        lo: Bound<&PartitionKey>,
        hi: Bound<&PartitionKey>,
        max: usize,
    ) -> Vec<PartitionKey> {
        let mut keys = Vec::new();
        if is_empty_range(lo, hi) {
            return keys;
        }
        let first = match lo {
            Bound::Included(k) | Bound::Excluded(k) => shard_of(k.token),
            Bound::Unbounded => 0,
        };
        let last = match hi {
            Bound::Included(k) | Bound::Excluded(k) => shard_of(k.token),
            Bound::Unbounded => SHARDS - 1,
        };
        for shard in self.shards.get(first..=last).unwrap_or_default() {
            if keys.len() >= max {
                break;
            }
            let wanted = max - keys.len();
            keys.extend(
                shard
                    .read()
                    .range((lo, hi))
                    .take(wanted)
                    .map(|(k, _)| k.clone()),
            );
        }
        keys
    }

    /// Every partition in order (flush): one shard is copied out at a time
    /// under its lock.
    pub fn iter(&self) -> impl Iterator<Item = (PartitionKey, Arc<Mutex<MemPartition>>)> + '_ {
        self.shards.iter().flat_map(|shard| {
            shard
                .read()
                .iter()
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect::<Vec<_>>()
        })
    }
}

impl Drop for Memtable {
    fn drop(&mut self) {
        self.memory.fetch_sub(
            self.size_bytes.load(AtomicOrdering::Relaxed),
            AtomicOrdering::Relaxed,
        );
    }
}

/// Streams the atoms of one memtable partition between two positions.
pub struct MemPartitionSource {
    partition: Arc<Mutex<MemPartition>>,
    start: ClusteringPosition,
    end: ClusteringPosition,
    reversed: bool,
    buffer: VecDeque<Atom>,
    resume_after: Option<ClusteringPosition>,
    opened: bool,
    exhausted: bool,
}

impl MemPartitionSource {
    /// Atoms in `[start, end)`, in stream order.
    pub fn new(
        partition: Arc<Mutex<MemPartition>>,
        start: ClusteringPosition,
        end: ClusteringPosition,
        reversed: bool,
    ) -> MemPartitionSource {
        let empty = start >= end;
        MemPartitionSource {
            partition,
            start,
            end,
            reversed,
            buffer: VecDeque::new(),
            resume_after: None,
            opened: false,
            exhausted: empty,
        }
    }

    fn load_chunk(&mut self) {
        let partition = self.partition.lock();
        if !self.opened {
            self.opened = true;
            let (position, open) = if self.reversed {
                let value = partition.range_tombstones.value_before(&self.end);
                (self.end.clone(), value)
            } else {
                let value = partition.range_tombstones.value_at(&self.start);
                (self.start.clone(), value)
            };
            if open.is_some() {
                self.buffer.push_back(Atom::Marker(RangeMarker {
                    position,
                    before: None,
                    after: open,
                }));
            }
        }
        let resume_after = self.resume_after.clone();
        let (lo, hi) = match (&resume_after, self.reversed) {
            (Some(p), false) => (Bound::Excluded(p), Bound::Excluded(&self.end)),
            (Some(p), true) => (Bound::Excluded(&self.start), Bound::Excluded(p)),
            (None, _) => (Bound::Excluded(&self.start), Bound::Excluded(&self.end)),
        };
        let rows = partition.rows.range(lo, hi);
        let points = partition.range_tombstones.points_in((lo, hi));
        let mut rows: Box<dyn Iterator<Item = (&ClusteringPosition, &Row)>> = if self.reversed {
            Box::new(rows.rev())
        } else {
            Box::new(rows)
        };
        let mut points: Box<dyn Iterator<Item = (&ClusteringPosition, &Option<DeletionTime>)>> =
            if self.reversed {
                Box::new(points.rev())
            } else {
                Box::new(points)
            };
        let mut next_row = rows.next();
        let mut next_point = points.next();
        let mut taken = 0;
        while taken < MEMTABLE_READ_CHUNK {
            let take_row = match (next_row, next_point) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((rp, _)), Some((pp, _))) => (rp < pp) != self.reversed,
            };
            if take_row {
                if let Some((position, row)) = next_row {
                    self.resume_after = Some(position.clone());
                    self.buffer.push_back(Atom::Row(row.clone()));
                }
                next_row = rows.next();
            } else {
                if let Some((position, after)) = next_point {
                    self.resume_after = Some(position.clone());
                    let before = partition.range_tombstones.value_before(position);
                    let marker = RangeMarker {
                        position: position.clone(),
                        before,
                        after: *after,
                    };
                    if marker.before != marker.after {
                        let marker = if self.reversed {
                            marker.reversed()
                        } else {
                            marker
                        };
                        self.buffer.push_back(Atom::Marker(marker));
                    }
                }
                next_point = points.next();
            }
            taken += 1;
        }
        if taken < MEMTABLE_READ_CHUNK {
            self.exhausted = true;
            let (position, open) = if self.reversed {
                (
                    self.start.clone(),
                    partition.range_tombstones.value_at(&self.start),
                )
            } else {
                (
                    self.end.clone(),
                    partition.range_tombstones.value_before(&self.end),
                )
            };
            if open.is_some() {
                self.buffer.push_back(Atom::Marker(RangeMarker {
                    position,
                    before: open,
                    after: None,
                }));
            }
        }
    }
}

impl AtomSource for MemPartitionSource {
    fn next_atom(&mut self) -> Result<Option<Atom>> {
        if self.buffer.is_empty() && !self.exhausted {
            self.load_chunk();
        }
        Ok(self.buffer.pop_front())
    }
}

//! A cursor over one SSTable's partitions in token order, for range scans:
//! it reads the index a block at a time and the data in order, keeping the
//! chunk it is in, so that a scan costs one index decode and one chunk
//! lookup per chunk, not per partition.
//!
//! A narrow partition (one row-index block) can be decoded whole from the
//! cursor's chunk ([`SSTableScanner::read_narrow`]), which is what a range
//! scan does with a partition that no other source holds.

use std::collections::VecDeque;
use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use crate::error::Result;
use crate::merge::{Atom, PartitionHeader};
use crate::model::PartitionKey;
use crate::sstable::format::{EntryHead, IndexEntry};
use crate::sstable::reader::{place, ChunkMemo, KeyBytes, Placement, SSTable, Visit};

/// Index entries a cursor holds at most: one index block's worth (see
/// [`crate::sstable::format::INDEX_BLOCK_BYTES`]), bounded against a
/// damaged block that claims many.
const ENTRIES_HELD_MAX: usize = 4_096;

/// Walks one SSTable's partitions with keys within bounds, in order.
pub struct SSTableScanner {
    sstable: Arc<SSTable>,
    /// The next index block to read.
    next_block: usize,
    /// Partitions before this bound are passed over; `Unbounded` once the
    /// walk is past it.
    lo: Bound<PartitionKey>,
    hi: Bound<PartitionKey>,
    /// Entries read from the index and not yet taken, in order.
    entries: VecDeque<IndexEntry>,
    /// The index walk reached `hi` or the end of the SSTable.
    finished: bool,
    memo: ChunkMemo,
    /// How the keys it reads hold their bytes; a narrow partition's atoms
    /// read by [`SSTableScanner::read_narrow_front`] share the chunk too
    /// when this is [`KeyBytes::Shared`].
    key_bytes: KeyBytes,
}

impl SSTableScanner {
    /// A cursor at the first partition at or after `lo`.
    pub fn new(
        sstable: Arc<SSTable>,
        lo: Bound<PartitionKey>,
        hi: Bound<PartitionKey>,
        key_bytes: KeyBytes,
    ) -> SSTableScanner {
        let next_block = match &lo {
            Bound::Unbounded => 0,
            Bound::Included(k) | Bound::Excluded(k) => sstable.first_block_for(k.token),
        };
        let past_end = match &lo {
            Bound::Unbounded => false,
            Bound::Included(k) | Bound::Excluded(k) => k.token > sstable.stats.last_token,
        };
        SSTableScanner {
            sstable,
            next_block,
            lo,
            hi,
            entries: VecDeque::new(),
            finished: past_end,
            memo: ChunkMemo::default(),
            key_bytes,
        }
    }

    pub fn sstable(&self) -> &Arc<SSTable> {
        &self.sstable
    }

    /// The next partition's index entry, without taking it.
    pub fn peek(&mut self) -> Result<Option<&IndexEntry>> {
        while self.entries.is_empty() && !self.finished {
            self.read_index_block()?;
        }
        Ok(self.entries.front())
    }

    /// The next partition's index entry as last peeked (`None` also
    /// before the first peek).
    pub fn front(&self) -> Option<&IndexEntry> {
        self.entries.front()
    }

    /// Takes the next partition's index entry.
    pub fn take(&mut self) -> Result<Option<IndexEntry>> {
        self.peek()?;
        Ok(self.entries.pop_front())
    }

    /// Reads the entries of the next index block that are within bounds.
    fn read_index_block(&mut self) -> Result<()> {
        if self.next_block >= self.sstable.index_block_count() {
            self.finished = true;
            return Ok(());
        }
        let block = self.next_block;
        self.next_block += 1;
        let sstable = &self.sstable;
        let memo = &mut self.memo;
        let lo = &mut self.lo;
        let hi = &self.hi;
        let entries = &mut self.entries;
        let key_bytes = self.key_bytes;
        let mut reached_hi = false;
        let mut visit = |head: &EntryHead| -> Result<Visit> {
            let lo_token = match &*lo {
                Bound::Unbounded => i64::MIN,
                Bound::Included(k) | Bound::Excluded(k) => k.token,
            };
            if head.token < lo_token {
                return Ok(Visit::Skip);
            }
            let key = sstable.key_of(head, memo, key_bytes)?;
            Ok(match place(&key, lo.as_ref(), hi.as_ref()) {
                Placement::After => {
                    reached_hi = true;
                    Visit::Stop
                }
                Placement::Within => {
                    // Keys come in order: every later one is past `lo` too.
                    *lo = Bound::Unbounded;
                    Visit::Take(key)
                }
                Placement::Before => Visit::Skip,
            })
        };
        let mut take = |entry: IndexEntry| {
            entries.push_back(entry);
            entries.len() >= ENTRIES_HELD_MAX
        };
        let walked = sstable.walk_block(block, &mut visit, &mut take)?;
        if reached_hi {
            self.finished = true;
        } else if let (ControlFlow::Break(()), Some(last)) = (walked, self.entries.back()) {
            // A full buffer broke the walk: the rest of this block is read
            // again when needed, its earlier entries skipped by `lo`.
            self.lo = Bound::Excluded(last.key.clone());
            self.next_block = block;
        }
        Ok(())
    }

    /// The next partition's header if it is narrow, and every atom into `atoms` (emptied
    /// first), decoded from the data in one read; `None` for a partition of
    /// more than one row-index block (read those through
    /// [`crate::sstable::SSTablePartitionSource`]).
    pub fn read_narrow_front(&mut self, atoms: &mut Vec<Atom>) -> Result<Option<PartitionHeader>> {
        let Some(entry) = self.entries.front() else {
            return Ok(None);
        };
        self.sstable
            .read_narrow(entry, &mut self.memo, self.key_bytes, atoms)
    }
}

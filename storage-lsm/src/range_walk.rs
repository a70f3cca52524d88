//! Walks a table's partitions in a key range, in token order, across its
//! memtables and SSTables at once: one cursor per source (a memtable's keys
//! a batch at a time, an SSTable's index and data in order) and one merge of
//! their keys for the whole range, so that each partition is found once
//! instead of looked up in every source.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::error::Result;
use crate::memtable::Memtable;
use crate::merge::{Atom, PartitionHeader};
use crate::model::PartitionKey;
use crate::sstable::format::IndexEntry;
use crate::sstable::reader::KeyBytes;
use crate::sstable::{SSTable, SSTableScanner};
use crate::table::TableView;

/// Keys a memtable cursor takes from its memtable at a time.
const MEMTABLE_KEY_BATCH: usize = 256;

/// One memtable's keys in the range, a batch at a time.
struct MemtableCursor {
    memtable: Arc<Memtable>,
    keys: VecDeque<PartitionKey>,
    /// Where the next batch starts.
    after: Bound<PartitionKey>,
    hi: Bound<PartitionKey>,
    exhausted: bool,
}

impl MemtableCursor {
    fn peek(&mut self) -> Option<&PartitionKey> {
        if self.keys.is_empty() && !self.exhausted {
            let batch =
                self.memtable
                    .keys_in(self.after.as_ref(), self.hi.as_ref(), MEMTABLE_KEY_BATCH);
            self.exhausted = batch.len() < MEMTABLE_KEY_BATCH;
            if let Some(last) = batch.last() {
                self.after = Bound::Excluded(last.clone());
            }
            self.keys.extend(batch);
        }
        self.keys.front()
    }
}

/// One partition of the walk: the key from a memtable that holds it, if
/// one does, and the SSTable cursors that hold it (their next entry is the
/// partition's until the walk moves on; see [`RangeWalk::take_entry`]).
#[derive(Debug)]
pub struct WalkStep {
    pub memtable_key: Option<PartitionKey>,
    pub sstables: SmallVec<[usize; 4]>,
}

/// The walk over one table view (see the module doc).
pub struct RangeWalk {
    memtables: Vec<MemtableCursor>,
    sstables: Vec<SSTableScanner>,
    /// The SSTable cursors of the last step whose entries were not taken:
    /// the next step passes them, so no partition is walked twice.
    pending: SmallVec<[usize; 4]>,
}

impl RangeWalk {
    /// A walk over the partitions of `view` after `lo` and before `hi`;
    /// what it reads from SSTables holds its bytes as `key_bytes` says.
    pub fn new(
        view: &TableView,
        lo: Bound<PartitionKey>,
        hi: Bound<PartitionKey>,
        key_bytes: KeyBytes,
    ) -> RangeWalk {
        let memtables = std::iter::once(&view.active)
            .chain(view.flushing.iter())
            .map(|memtable| MemtableCursor {
                memtable: memtable.clone(),
                keys: VecDeque::new(),
                after: lo.clone(),
                hi: hi.clone(),
                exhausted: false,
            })
            .collect();
        let sstables = view
            .sstables
            .iter()
            .map(|sstable| SSTableScanner::new(sstable.clone(), lo.clone(), hi.clone(), key_bytes))
            .collect();
        RangeWalk {
            memtables,
            sstables,
            pending: SmallVec::new(),
        }
    }

    /// The index entry of the current step's partition in SSTable cursor
    /// `index`, if the step has it there and it was not taken.
    pub fn entry(&self, index: usize) -> Option<&IndexEntry> {
        if !self.pending.contains(&index) {
            return None;
        }
        self.sstables.get(index).and_then(SSTableScanner::front)
    }

    /// Takes the current step's entry from SSTable cursor `index`, with its
    /// SSTable.
    pub fn take_entry(&mut self, index: usize) -> Result<Option<(Arc<SSTable>, IndexEntry)>> {
        let Some(at) = self.pending.iter().position(|&i| i == index) else {
            return Ok(None);
        };
        self.pending.swap_remove(at);
        let Some(scanner) = self.sstables.get_mut(index) else {
            return Ok(None);
        };
        Ok(scanner
            .take()?
            .map(|entry| (scanner.sstable().clone(), entry)))
    }

    /// Decodes the current step's partition in SSTable cursor `index` into
    /// `atoms`, if it is narrow, leaving the entry in place (see
    /// [`SSTableScanner::read_narrow`]).
    pub fn read_narrow(
        &mut self,
        index: usize,
        atoms: &mut Vec<Atom>,
    ) -> Result<Option<PartitionHeader>> {
        if !self.pending.contains(&index) {
            return Ok(None);
        }
        match self.sstables.get_mut(index) {
            Some(scanner) => scanner.read_narrow_front(atoms),
            None => Ok(None),
        }
    }

    /// The next partition in the range, or `None` at its end.
    pub fn next_partition(&mut self) -> Result<Option<WalkStep>> {
        for index in std::mem::take(&mut self.pending) {
            if let Some(scanner) = self.sstables.get_mut(index) {
                scanner.take()?;
            }
        }
        for cursor in &mut self.memtables {
            cursor.peek();
        }
        for scanner in &mut self.sstables {
            scanner.peek()?;
        }
        // The lowest key, and every source that holds it, found without
        // copying keys.
        let mut lowest: Option<&PartitionKey> = None;
        let memtable_fronts = self.memtables.iter().map(|c| c.keys.front());
        let sstable_fronts = self.sstables.iter().map(|s| s.front().map(|e| &e.key));
        for key in memtable_fronts.chain(sstable_fronts).flatten() {
            if lowest.is_none_or(|low| key < low) {
                lowest = Some(key);
            }
        }
        let Some(lowest) = lowest else {
            return Ok(None);
        };
        let holds = |front: Option<&PartitionKey>| front == Some(lowest);
        let in_memtables: SmallVec<[usize; 4]> = (0..self.memtables.len())
            .filter(|&i| holds(self.memtables.get(i).and_then(|c| c.keys.front())))
            .collect();
        let in_sstables: SmallVec<[usize; 4]> = (0..self.sstables.len())
            .filter(|&i| holds(self.sstables.get(i).and_then(|s| s.front()).map(|e| &e.key)))
            .collect();
        let mut memtable_key = None;
        for i in in_memtables {
            if let Some(key) = self.memtables.get_mut(i).and_then(|c| c.keys.pop_front()) {
                memtable_key.get_or_insert(key);
            }
        }
        self.pending = in_sstables.clone();
        Ok(Some(WalkStep {
            memtable_key,
            sstables: in_sstables,
        }))
    }
}

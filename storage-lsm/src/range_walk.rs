//! Walks a table's partitions in a key range, in token order, across its
//! memtables and SSTables at once: one cursor per source (a memtable's keys
//! a batch at a time, an SSTable's index and data in order) and one merge of
//! their keys for the whole range, so that each partition is found once
//! instead of looked up in every source.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use crate::error::Result;
use crate::memtable::Memtable;
use crate::model::PartitionKey;
use crate::sstable::format::IndexEntry;
use crate::sstable::SSTableScanner;
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

/// One partition of the walk: its key, whether a memtable holds it, and
/// the SSTables that do (by cursor, with their index entries).
pub struct WalkStep {
    pub key: PartitionKey,
    pub in_memtable: bool,
    pub entries: Vec<(usize, IndexEntry)>,
}

/// The walk over one table view (see the module doc).
pub struct RangeWalk {
    memtables: Vec<MemtableCursor>,
    sstables: Vec<SSTableScanner>,
}

impl RangeWalk {
    /// A walk over the partitions of `view` after `lo` and before `hi`.
    pub fn new(view: &TableView, lo: Bound<PartitionKey>, hi: Bound<PartitionKey>) -> RangeWalk {
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
            .map(|sstable| SSTableScanner::new(sstable.clone(), lo.clone(), hi.clone()))
            .collect();
        RangeWalk {
            memtables,
            sstables,
        }
    }

    /// The SSTable cursor a step's entry came from.
    pub fn scanner(&mut self, index: usize) -> Option<&mut SSTableScanner> {
        self.sstables.get_mut(index)
    }

    /// The next partition in the range, or `None` at its end.
    pub fn next_partition(&mut self) -> Result<Option<WalkStep>> {
        for cursor in &mut self.memtables {
            cursor.peek();
        }
        for scanner in &mut self.sstables {
            scanner.peek()?;
        }
        // The lowest key's source, found without copying keys.
        let mut lowest: Option<(&PartitionKey, Source)> = None;
        let fronts = self
            .memtables
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.keys.front().map(|k| (k, Source::Memtable(i))))
            .chain(
                self.sstables
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.front().map(|e| (&e.key, Source::SSTable(i)))),
            );
        for (key, source) in fronts {
            if lowest.is_none_or(|(low, _)| key < low) {
                lowest = Some((key, source));
            }
        }
        let Some((_, source)) = lowest else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        let key = match source {
            Source::Memtable(i) => self.memtables.get_mut(i).and_then(|c| c.keys.pop_front()),
            Source::SSTable(i) => match self.sstables.get_mut(i) {
                Some(scanner) => scanner.take()?.map(|entry| {
                    let key = entry.key.clone();
                    entries.push((i, entry));
                    key
                }),
                None => None,
            },
        };
        let Some(key) = key else {
            return Ok(None);
        };
        let mut in_memtable = matches!(source, Source::Memtable(_));
        for cursor in &mut self.memtables {
            if cursor.keys.front() == Some(&key) {
                cursor.keys.pop_front();
                in_memtable = true;
            }
        }
        for (index, scanner) in self.sstables.iter_mut().enumerate() {
            if scanner.front().is_some_and(|entry| entry.key == key) {
                if let Some(entry) = scanner.take()? {
                    entries.push((index, entry));
                }
            }
        }
        Ok(Some(WalkStep {
            key,
            in_memtable,
            entries,
        }))
    }
}

/// Where the lowest key of a step is.
#[derive(Debug, Clone, Copy)]
enum Source {
    Memtable(usize),
    SSTable(usize),
}

//! Merging one partition's data from many sources (memtables, SSTables) in a
//! single streaming pass, in forward or reverse clustering order.
//!
//! Each source yields [`Atom`]s in stream order: rows, and [`RangeMarker`]s
//! where its range deletion changes. A source opens with a marker at the slice
//! start if a range deletion is already in effect there, and closes with one
//! at the slice end. The [`MergeIterator`] keeps, per source, the range
//! deletion in effect and emits the *unfiltered* merged stream: rows
//! reconciled cell by cell with shadowed data removed, and markers where the
//! strongest range deletion changes. Tombstones are kept in that stream (a
//! replica must return them for read repair, compaction must write them);
//! [`LiveRows`] drops them for clients and counts what it skipped.
//!
//! Memory is bounded by the number of sources and the size of one row per
//! source: nothing is buffered per tombstone.

use std::cmp::Ordering;

use crate::error::Result;
use crate::model::{max_deletion, ClusteringPosition, DeletionTime, Row};
use crate::range_tombstones::RangeMarker;

/// One element of a partition's clustering-ordered stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    Row(Row),
    Marker(RangeMarker),
}

impl Atom {
    pub fn position(&self) -> ClusteringPosition {
        match self {
            Atom::Row(row) => ClusteringPosition::at(row.clustering.clone()),
            Atom::Marker(marker) => marker.position.clone(),
        }
    }

    /// How this atom's position compares with `position` (without building
    /// the atom's position).
    pub fn cmp_position(&self, position: &ClusteringPosition) -> Ordering {
        match self {
            Atom::Row(row) => position.cmp_key(&row.clustering).reverse(),
            Atom::Marker(marker) => marker.position.cmp(position),
        }
    }
}

/// A stream of atoms of one partition, in stream order.
pub trait AtomSource: Send {
    fn next_atom(&mut self) -> Result<Option<Atom>>;
}

/// A source over atoms already in memory (tests, small partitions).
#[derive(Debug)]
pub struct VecSource {
    atoms: std::vec::IntoIter<Atom>,
}

impl VecSource {
    pub fn new(atoms: Vec<Atom>) -> VecSource {
        VecSource {
            atoms: atoms.into_iter(),
        }
    }
}

impl AtomSource for VecSource {
    fn next_atom(&mut self) -> Result<Option<Atom>> {
        Ok(self.atoms.next())
    }
}

/// What a partition holds outside its clustering order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionHeader {
    pub deletion: Option<DeletionTime>,
    pub static_row: Option<Row>,
}

impl PartitionHeader {
    /// Merges the headers of several sources; the static row is shadowed by
    /// the partition deletion.
    pub fn merge(headers: impl IntoIterator<Item = PartitionHeader>) -> PartitionHeader {
        let mut deletion = None;
        let mut static_row: Option<Row> = None;
        for header in headers {
            deletion = max_deletion(deletion, header.deletion);
            if let Some(row) = header.static_row {
                match &mut static_row {
                    Some(existing) => existing.merge_from(row),
                    None => static_row = Some(row),
                }
            }
        }
        let static_row = static_row
            .map(|row| shadow_row(row, deletion))
            .filter(|row| !row.is_empty());
        PartitionHeader {
            deletion,
            static_row,
        }
    }
}

/// Removes from `row` what `deletion` (partition or range) shadows, and what
/// the row's own deletion and column tombstones shadow.
pub fn shadow_row(mut row: Row, deletion: Option<DeletionTime>) -> Row {
    if let (Some(own), Some(outer)) = (row.deletion, deletion) {
        if outer.timestamp >= own.timestamp {
            row.deletion = None;
        }
    }
    let effective = max_deletion(deletion, row.deletion);
    let mut column_deletion: Option<(u32, i64)> = None;
    row.cells.retain(|cell| {
        if effective.is_some_and(|d| d.shadows(cell.timestamp)) {
            return false;
        }
        if let Some((column, timestamp)) = column_deletion {
            if cell.column == column && cell.path.is_some() && cell.timestamp <= timestamp {
                return false;
            }
        }
        if cell.path.is_none() && cell.is_tombstone() {
            column_deletion = Some((cell.column, cell.timestamp));
        }
        true
    });
    row
}

/// Whether [`shadow_row`] with no outer deletion could remove anything from
/// `row`: within a row only its own deletion and column tombstones shadow.
pub fn shadows_own_cells(row: &Row) -> bool {
    row.deletion.is_some()
        || row
            .cells
            .iter()
            .any(|cell| cell.path.is_none() && cell.is_tombstone())
}

struct Head {
    source: Box<dyn AtomSource>,
    next: Option<Atom>,
    position: Option<ClusteringPosition>,
    range_deletion: Option<DeletionTime>,
}

impl Head {
    fn advance(&mut self) -> Result<Option<Atom>> {
        let next = self.source.next_atom()?;
        self.position = next.as_ref().map(Atom::position);
        Ok(std::mem::replace(&mut self.next, next))
    }
}

/// Merges the atom streams of one partition's sources (see the module doc).
pub struct MergeIterator {
    heads: Vec<Head>,
    reversed: bool,
    partition_deletion: Option<DeletionTime>,
    range_deletion: Option<DeletionTime>,
}

impl MergeIterator {
    /// `partition_deletion` is the merged partition deletion of all sources.
    pub fn new(
        sources: Vec<Box<dyn AtomSource>>,
        reversed: bool,
        partition_deletion: Option<DeletionTime>,
    ) -> Result<MergeIterator> {
        let mut heads = Vec::with_capacity(sources.len());
        for source in sources {
            let mut head = Head {
                source,
                next: None,
                position: None,
                range_deletion: None,
            };
            head.advance()?;
            heads.push(head);
        }
        Ok(MergeIterator {
            heads,
            reversed,
            partition_deletion,
            range_deletion: None,
        })
    }

    fn stream_cmp(&self, a: &ClusteringPosition, b: &ClusteringPosition) -> Ordering {
        if self.reversed {
            b.cmp(a)
        } else {
            a.cmp(b)
        }
    }

    /// A range deletion no stronger than the partition deletion adds nothing.
    fn clamp(&self, deletion: Option<DeletionTime>) -> Option<DeletionTime> {
        match (deletion, self.partition_deletion) {
            (Some(d), Some(p)) if p.timestamp >= d.timestamp => None,
            (d, _) => d,
        }
    }

    /// The next merged atom, or `None` at the end of the partition.
    pub fn next_atom(&mut self) -> Result<Option<Atom>> {
        loop {
            let mut lowest: Option<ClusteringPosition> = None;
            for head in &self.heads {
                if let Some(position) = &head.position {
                    let lower = match &lowest {
                        None => true,
                        Some(low) => self.stream_cmp(position, low) == Ordering::Less,
                    };
                    if lower {
                        lowest = Some(position.clone());
                    }
                }
            }
            let Some(position) = lowest else {
                return Ok(None);
            };
            let mut row: Option<Row> = None;
            let mut saw_marker = false;
            for head in &mut self.heads {
                if head.position.as_ref() != Some(&position) {
                    continue;
                }
                match head.advance()? {
                    Some(Atom::Marker(marker)) => {
                        head.range_deletion = marker.after;
                        saw_marker = true;
                    }
                    Some(Atom::Row(next)) => match &mut row {
                        Some(existing) => existing.merge_from(next),
                        None => row = Some(next),
                    },
                    None => {}
                }
            }
            if saw_marker {
                let strongest = self
                    .heads
                    .iter()
                    .fold(None, |acc, head| max_deletion(acc, head.range_deletion));
                let strongest = self.clamp(strongest);
                if strongest != self.range_deletion {
                    let marker = RangeMarker {
                        position,
                        before: self.range_deletion,
                        after: strongest,
                    };
                    self.range_deletion = strongest;
                    return Ok(Some(Atom::Marker(marker)));
                }
                continue;
            }
            if let Some(row) = row {
                let outer = max_deletion(self.partition_deletion, self.range_deletion);
                let row = shadow_row(row, outer);
                if !row.is_empty() {
                    return Ok(Some(Atom::Row(row)));
                }
            }
        }
    }
}

impl AtomSource for MergeIterator {
    fn next_atom(&mut self) -> Result<Option<Atom>> {
        MergeIterator::next_atom(self)
    }
}

/// Counters of one read, for table stats and tombstone warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounters {
    pub live_rows: u64,
    pub tombstones_scanned: u64,
}

/// Turns an unfiltered merged stream into the live rows a client sees at
/// `now_s`, up to `limit` rows, counting the tombstones it skips.
pub struct LiveRows {
    merge: MergeIterator,
    now_s: i64,
    limit: usize,
    pub counters: ReadCounters,
}

impl LiveRows {
    pub fn new(merge: MergeIterator, now_s: i64, limit: usize) -> LiveRows {
        LiveRows {
            merge,
            now_s,
            limit,
            counters: ReadCounters::default(),
        }
    }

    pub fn next_row(&mut self) -> Result<Option<Row>> {
        while self.counters.live_rows < self.limit as u64 {
            let Some(atom) = self.merge.next_atom()? else {
                return Ok(None);
            };
            match atom {
                Atom::Marker(_) => self.counters.tombstones_scanned += 1,
                Atom::Row(row) => {
                    if let Some(row) = live_part(row, self.now_s, &mut self.counters) {
                        self.counters.live_rows += 1;
                        return Ok(Some(row));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// The live cells of a (shadowed) row at `now_s`, or `None` if none are live.
pub fn live_part(mut row: Row, now_s: i64, counters: &mut ReadCounters) -> Option<Row> {
    if row.deletion.take().is_some() {
        counters.tombstones_scanned += 1;
    }
    let before = row.cells.len();
    row.cells.retain(|cell| cell.is_live(now_s));
    counters.tombstones_scanned += (before - row.cells.len()) as u64;
    if row.cells.is_empty() {
        None
    } else {
        Some(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cell;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn marker(prefix: &'static [u8], before: Option<i64>, after: Option<i64>) -> Atom {
        Atom::Marker(RangeMarker {
            position: ClusteringPosition::before(prefix),
            before: before.map(|t| DeletionTime::new(t, 0)),
            after: after.map(|t| DeletionTime::new(t, 0)),
        })
    }

    fn row(key: &'static [u8], ts: i64) -> Atom {
        Atom::Row(Row::new(key, vec![Cell::live(1, ts, key)]))
    }

    #[test]
    fn range_deletion_in_one_source_shadows_rows_of_another() -> TestResult {
        let a = VecSource::new(vec![row(b"a", 1), row(b"c", 1), row(b"e", 1)]);
        let b = VecSource::new(vec![
            marker(b"b", None, Some(5)),
            marker(b"d", Some(5), None),
        ]);
        let merge = MergeIterator::new(vec![Box::new(a), Box::new(b)], false, None)?;
        let mut live = LiveRows::new(merge, 0, usize::MAX);
        let mut keys = Vec::new();
        while let Some(r) = live.next_row()? {
            keys.push(r.clustering.clone());
        }
        assert_eq!(keys, vec![&b"a"[..], &b"e"[..]]);
        assert_eq!(live.counters.tombstones_scanned, 2);
        Ok(())
    }
}

//! The rows of one memtable partition, sorted by clustering: a short vector
//! while the partition is narrow, a B-tree once it is wide.
//!
//! Most partitions hold one row or a few. A B-tree allocates a node with
//! room for eleven entries even for one row, so a narrow partition would
//! cost about ten times the memory the memtable counts for it; a sorted
//! vector costs what it holds. Past [`NARROW_ROWS_MAX`] rows, inserting into
//! the middle of a vector gets dear, and the partition moves to a B-tree
//! for good.

use std::collections::{btree_map, BTreeMap};
use std::ops::Bound;

use crate::model::{ClusteringPosition, Row};

/// Rows a partition keeps in a sorted vector before it becomes a B-tree.
pub const NARROW_ROWS_MAX: usize = 32;

/// Rows by clustering position.
#[derive(Debug)]
pub enum RowMap {
    Narrow(Vec<(ClusteringPosition, Row)>),
    Wide(BTreeMap<ClusteringPosition, Row>),
}

impl Default for RowMap {
    fn default() -> RowMap {
        RowMap::Narrow(Vec::new())
    }
}

impl RowMap {
    /// Adds `row`, merging it into the row already at its clustering.
    pub fn merge(&mut self, row: Row) {
        let position = ClusteringPosition::at(row.clustering.clone());
        match self {
            RowMap::Narrow(rows) => match rows.binary_search_by(|(p, _)| p.cmp(&position)) {
                Ok(at) => {
                    if let Some((_, existing)) = rows.get_mut(at) {
                        existing.merge_from(row);
                    }
                }
                Err(at) if rows.len() < NARROW_ROWS_MAX => rows.insert(at, (position, row)),
                Err(_) => {
                    let mut wide: BTreeMap<_, _> = std::mem::take(rows).into_iter().collect();
                    wide.insert(position, row);
                    *self = RowMap::Wide(wide);
                }
            },
            RowMap::Wide(rows) => match rows.entry(position) {
                btree_map::Entry::Occupied(mut existing) => existing.get_mut().merge_from(row),
                btree_map::Entry::Vacant(slot) => {
                    slot.insert(row);
                }
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            RowMap::Narrow(rows) => rows.len(),
            RowMap::Wide(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows between two bounds, in clustering order (reversible). Callers
    /// pass `lo <= hi`, and not two equal excluded bounds.
    pub fn range<'a>(
        &'a self,
        lo: Bound<&ClusteringPosition>,
        hi: Bound<&ClusteringPosition>,
    ) -> RowRange<'a> {
        match self {
            RowMap::Narrow(rows) => {
                let start = match lo {
                    Bound::Included(k) => rows.partition_point(|(p, _)| p < k),
                    Bound::Excluded(k) => rows.partition_point(|(p, _)| p <= k),
                    Bound::Unbounded => 0,
                };
                let end = match hi {
                    Bound::Included(k) => rows.partition_point(|(p, _)| p <= k),
                    Bound::Excluded(k) => rows.partition_point(|(p, _)| p < k),
                    Bound::Unbounded => rows.len(),
                };
                let slice = rows.get(start.min(end)..end).unwrap_or_default();
                RowRange::Narrow(slice.iter())
            }
            RowMap::Wide(rows) => RowRange::Wide(rows.range((lo, hi))),
        }
    }
}

/// An iterator over a [`RowMap::range`].
pub enum RowRange<'a> {
    Narrow(std::slice::Iter<'a, (ClusteringPosition, Row)>),
    Wide(btree_map::Range<'a, ClusteringPosition, Row>),
}

impl<'a> Iterator for RowRange<'a> {
    type Item = (&'a ClusteringPosition, &'a Row);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RowRange::Narrow(rows) => rows.next().map(|(p, r)| (p, r)),
            RowRange::Wide(rows) => rows.next(),
        }
    }
}

impl DoubleEndedIterator for RowRange<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            RowRange::Narrow(rows) => rows.next_back().map(|(p, r)| (p, r)),
            RowRange::Wide(rows) => rows.next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cell;

    fn row(clustering: u32, value: u8) -> Row {
        Row::new(
            clustering.to_be_bytes().to_vec(),
            vec![Cell::live(1, i64::from(value), vec![value])],
        )
    }

    fn at(clustering: u32) -> ClusteringPosition {
        ClusteringPosition::at(clustering.to_be_bytes().to_vec())
    }

    fn keys<'a>(range: impl Iterator<Item = (&'a ClusteringPosition, &'a Row)>) -> Vec<u32> {
        range
            .map(|(_, r)| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&r.clustering[..4]);
                u32::from_be_bytes(b)
            })
            .collect()
    }

    /// Narrow and wide maps answer every range the same way as a B-tree.
    #[test]
    fn narrow_and_wide_ranges_match_a_btree() {
        for count in [0u32, 1, 5, NARROW_ROWS_MAX as u32, 100] {
            let mut map = RowMap::default();
            let mut model = BTreeMap::new();
            // Inserted out of order, each twice (the second merges).
            for i in (0..count).rev().chain(0..count) {
                let clustering = i * 2;
                map.merge(row(clustering, (i % 7) as u8));
                model.insert(at(clustering), ());
            }
            assert_eq!(map.len(), model.len());
            assert_eq!(
                matches!(map, RowMap::Wide(_)),
                count as usize > NARROW_ROWS_MAX
            );
            for (lo, hi) in [(0u32, 10u32), (3, 3), (4, 4), (1, 199), (50, 60)] {
                let bounds = [
                    (Bound::Included(at(lo)), Bound::Included(at(hi))),
                    (Bound::Excluded(at(lo)), Bound::Included(at(hi))),
                    (Bound::Included(at(lo)), Bound::Excluded(at(hi))),
                    (Bound::Unbounded, Bound::Included(at(hi))),
                    (Bound::Included(at(lo)), Bound::Unbounded),
                ];
                for (l, h) in bounds {
                    if lo == hi && matches!((&l, &h), (Bound::Excluded(_), Bound::Excluded(_))) {
                        continue;
                    }
                    let expected: Vec<u32> = model
                        .range((l.as_ref(), h.as_ref()))
                        .map(|(p, _)| {
                            let mut b = [0u8; 4];
                            b.copy_from_slice(&p.prefix[..4]);
                            u32::from_be_bytes(b)
                        })
                        .collect();
                    assert_eq!(keys(map.range(l.as_ref(), h.as_ref())), expected);
                    let mut reversed = expected.clone();
                    reversed.reverse();
                    assert_eq!(keys(map.range(l.as_ref(), h.as_ref()).rev()), reversed);
                }
            }
        }
    }
}

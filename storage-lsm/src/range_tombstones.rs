//! A partition's range tombstones as a piecewise-constant function over
//! clustering positions: the deletion in effect at each point of the
//! clustering order.
//!
//! Stored as change points: at each position in the map, the deletion in
//! effect from there on (until the next point) becomes the mapped value.
//! Overlapping range tombstones are folded in as they arrive (the stronger
//! deletion wins on the overlap), so a reader sees a sequence of
//! non-overlapping boundaries, which is also how SSTables store them.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::model::{max_deletion, ClusteringPosition, DeletionTime};

/// A boundary in a stream of atoms: the range deletion in effect changes from
/// `before` to `after` at `position`, "before" and "after" in the order of the
/// stream (so a reversed stream swaps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMarker {
    pub position: ClusteringPosition,
    pub before: Option<DeletionTime>,
    pub after: Option<DeletionTime>,
}

impl RangeMarker {
    /// The same boundary seen from the other direction.
    pub fn reversed(self) -> RangeMarker {
        RangeMarker {
            position: self.position,
            before: self.after,
            after: self.before,
        }
    }
}

/// Range deletions of one partition, folded into change points.
#[derive(Debug, Clone, Default)]
pub struct RangeTombstoneList {
    points: BTreeMap<ClusteringPosition, Option<DeletionTime>>,
}

impl RangeTombstoneList {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Number of change points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Deletes `[start, end)` with `deletion`, keeping stronger deletions already there.
    pub fn add(
        &mut self,
        start: ClusteringPosition,
        end: ClusteringPosition,
        deletion: DeletionTime,
    ) {
        if start >= end {
            return;
        }
        let at_start = self.value_at(&start);
        let at_end = self.value_at(&end);
        for (_, value) in self
            .points
            .range_mut((Bound::Excluded(&start), Bound::Excluded(&end)))
        {
            *value = max_deletion(*value, Some(deletion));
        }
        self.points
            .insert(start, max_deletion(at_start, Some(deletion)));
        self.points.entry(end).or_insert(at_end);
    }

    /// The deletion in effect at `position` (from the last point at or before it).
    pub fn value_at(&self, position: &ClusteringPosition) -> Option<DeletionTime> {
        self.points
            .range(..=position)
            .next_back()
            .and_then(|(_, v)| *v)
    }

    /// The deletion in effect just before `position`.
    pub fn value_before(&self, position: &ClusteringPosition) -> Option<DeletionTime> {
        self.points
            .range(..position)
            .next_back()
            .and_then(|(_, v)| *v)
    }

    /// Change points within `bounds`, in forward order and forward sense.
    pub fn points_in<'a>(
        &'a self,
        bounds: (Bound<&'a ClusteringPosition>, Bound<&'a ClusteringPosition>),
    ) -> std::collections::btree_map::Range<'a, ClusteringPosition, Option<DeletionTime>> {
        self.points.range::<ClusteringPosition, _>(bounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(b: &'static [u8]) -> ClusteringPosition {
        ClusteringPosition::before(b)
    }

    #[test]
    fn overlapping_ranges_keep_the_stronger_deletion() {
        let mut list = RangeTombstoneList::default();
        let weak = DeletionTime::new(5, 0);
        let strong = DeletionTime::new(9, 0);
        list.add(pos(b"b"), pos(b"f"), weak);
        list.add(pos(b"d"), pos(b"h"), strong);
        list.add(pos(b"a"), pos(b"c"), DeletionTime::new(1, 0));
        assert_eq!(
            list.value_at(&ClusteringPosition::at(&b"a"[..])),
            Some(DeletionTime::new(1, 0))
        );
        assert_eq!(
            list.value_at(&ClusteringPosition::at(&b"b5"[..])),
            Some(weak)
        );
        assert_eq!(
            list.value_at(&ClusteringPosition::at(&b"c"[..])),
            Some(weak)
        );
        assert_eq!(
            list.value_at(&ClusteringPosition::at(&b"e"[..])),
            Some(strong)
        );
        assert_eq!(
            list.value_at(&ClusteringPosition::at(&b"g"[..])),
            Some(strong)
        );
        assert_eq!(list.value_at(&ClusteringPosition::at(&b"h"[..])), None);
    }
}

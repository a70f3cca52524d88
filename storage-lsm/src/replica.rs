//! What a replica answers a coordinator's data read with, and how the
//! coordinator reconciles several answers.
//!
//! A data answer is a partition's slice *unfiltered*, as a
//! [`PartitionUpdate`]: rows with their cell and row tombstones, the
//! partition deletion, and range deletions turned back from the stream's
//! markers into [`RangeTombstone`]s. The same shape is a mutation, so the
//! coordinator can send a reconciled answer back to a stale replica as an
//! ordinary write (read repair), and hash it for a digest read.
//!
//! Reconciling answers folds them into a scratch [`Memtable`] and reads it
//! with the engine's own merge, so replicas' answers are merged by exactly
//! the rules a node's memtables and SSTables are.

use std::hash::{Hash, Hasher};

use crate::codec::Writer;
use crate::commitlog::Position;
use crate::error::Result;
use crate::memtable::{MemPartitionSource, Memtable};
use crate::merge::{Atom, AtomSource, MergeIterator, PartitionHeader};
use crate::model::{
    ClusteringBound, ClusteringPosition, ClusteringRange, DeletionTime, PartitionKey,
    PartitionUpdate, PositionKind, RangeTombstone,
};
use crate::table::{PartitionRows, SliceQuery};

/// Turns a partition's merged, forward-ordered unfiltered stream into an
/// update (None when the slice holds nothing at all).
pub fn update_of(
    header: PartitionHeader,
    merge: &mut MergeIterator,
) -> Result<Option<PartitionUpdate>> {
    let mut update = PartitionUpdate {
        partition_deletion: header.deletion,
        static_row: header.static_row,
        ..PartitionUpdate::default()
    };
    let mut open: Option<(ClusteringPosition, DeletionTime)> = None;
    while let Some(atom) = merge.next_atom()? {
        match atom {
            Atom::Row(row) => update.rows.push(row),
            Atom::Marker(marker) => {
                if let Some((start, deletion)) = open.take() {
                    update.range_tombstones.push(RangeTombstone {
                        range: ClusteringRange {
                            start: start_bound(&start),
                            end: end_bound(&marker.position),
                        },
                        deletion,
                    });
                }
                if let Some(deletion) = marker.after {
                    open = Some((marker.position, deletion));
                }
            }
        }
    }
    let empty = update.partition_deletion.is_none()
        && update.static_row.is_none()
        && update.rows.is_empty()
        && update.range_tombstones.is_empty();
    Ok((!empty).then_some(update))
}

/// A stream position where a range deletion starts, as a range's start bound.
fn start_bound(position: &ClusteringPosition) -> ClusteringBound {
    match position.kind {
        PositionKind::Before if position.prefix.is_empty() => ClusteringBound::Unbounded,
        PositionKind::Before => ClusteringBound::Inclusive(position.prefix.clone()),
        PositionKind::At | PositionKind::After => {
            ClusteringBound::Exclusive(position.prefix.clone())
        }
    }
}

/// A stream position where a range deletion ends, as a range's end bound.
fn end_bound(position: &ClusteringPosition) -> ClusteringBound {
    match position.kind {
        PositionKind::After if position.prefix.is_empty() => ClusteringBound::Unbounded,
        PositionKind::After => ClusteringBound::Inclusive(position.prefix.clone()),
        PositionKind::At | PositionKind::Before => {
            ClusteringBound::Exclusive(position.prefix.clone())
        }
    }
}

/// A digest of a data answer: equal answers have equal digests on every
/// node running the same release.
pub fn digest(answer: Option<&PartitionUpdate>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match answer {
        None => 0u8.hash(&mut hasher),
        Some(update) => {
            let mut writer = Writer::new();
            writer.update(update);
            1u8.hash(&mut hasher);
            writer.buf.hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// The outcome of reconciling replicas' answers to one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// What the client sees: the live rows of the merged answers.
    pub rows: Option<PartitionRows>,
    /// The merged answer, unfiltered (what a stale replica is repaired with).
    pub merged: Option<PartitionUpdate>,
}

/// Merges replicas' data answers for `key` and reads `query` from them at
/// `now_s`.
pub fn reconcile(
    key: &PartitionKey,
    answers: impl IntoIterator<Item = PartitionUpdate>,
    query: &SliceQuery,
    now_s: i64,
) -> Result<Reconciled> {
    let scratch = Memtable::new(Position::default(), Default::default());
    for answer in answers {
        scratch.apply(key.clone(), answer);
    }
    let Some(partition) = scratch.get(key) else {
        return Ok(Reconciled {
            rows: None,
            merged: None,
        });
    };
    let header = partition.lock().header();
    let all = || -> Vec<Box<dyn AtomSource>> {
        vec![Box::new(MemPartitionSource::new(
            partition.clone(),
            ClusteringPosition::bottom(),
            ClusteringPosition::top(),
            false,
        ))]
    };
    let mut everything = MergeIterator::new(all(), false, header.deletion)?;
    let merged = update_of(header.clone(), &mut everything)?;
    let (start, end) = query.positions();
    let sources: Vec<Box<dyn AtomSource>> = vec![Box::new(MemPartitionSource::new(
        partition.clone(),
        start,
        end,
        query.reversed,
    ))];
    let slice = MergeIterator::new(sources, query.reversed, header.deletion)?;
    let (rows, _) = crate::table::live_rows_of(key, Some((header, slice)), query.limit, now_s)?;
    Ok(Reconciled { rows, merged })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cell, Row};
    use bytes::Bytes;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn key() -> PartitionKey {
        PartitionKey::new(7, &b"k"[..])
    }

    fn row(clustering: &'static [u8], timestamp: i64, value: &'static [u8]) -> Row {
        Row::new(clustering, vec![Cell::live(1, timestamp, value)])
    }

    #[test]
    fn a_newer_tombstone_on_one_replica_hides_an_older_row_on_another() -> TestResult {
        let live = PartitionUpdate {
            rows: vec![row(b"a", 10, b"old"), row(b"b", 10, b"kept")],
            ..PartitionUpdate::default()
        };
        let deleted = PartitionUpdate {
            range_tombstones: vec![RangeTombstone {
                range: ClusteringRange {
                    start: ClusteringBound::Inclusive(Bytes::from_static(b"a")),
                    end: ClusteringBound::Inclusive(Bytes::from_static(b"a")),
                },
                deletion: DeletionTime::new(20, 1),
            }],
            ..PartitionUpdate::default()
        };
        let reconciled = reconcile(&key(), [live, deleted], &SliceQuery::all(), 100)?;
        let rows = reconciled.rows.ok_or("no rows")?;
        assert_eq!(rows.rows.len(), 1);
        assert_eq!(rows.rows[0].clustering.as_ref(), b"b");
        let merged = reconciled.merged.ok_or("nothing merged")?;
        assert_eq!(merged.range_tombstones.len(), 1, "{merged:?}");
        // The merged answer, applied again, reconciles to itself.
        let again = reconcile(&key(), [merged.clone()], &SliceQuery::all(), 100)?;
        assert_eq!(again.merged.as_ref(), Some(&merged));
        assert_eq!(digest(again.merged.as_ref()), digest(Some(&merged)));
        Ok(())
    }

    #[test]
    fn newest_cell_wins_and_limit_and_order_apply() -> TestResult {
        let a = PartitionUpdate {
            rows: vec![row(b"a", 10, b"x"), row(b"c", 10, b"x")],
            ..PartitionUpdate::default()
        };
        let b = PartitionUpdate {
            rows: vec![row(b"a", 11, b"y"), row(b"b", 5, b"y")],
            ..PartitionUpdate::default()
        };
        let query = SliceQuery {
            reversed: true,
            limit: 2,
            ..SliceQuery::all()
        };
        let rows = reconcile(&key(), [a, b], &query, 100)?
            .rows
            .ok_or("no rows")?;
        let keys: Vec<&[u8]> = rows.rows.iter().map(|r| r.clustering.as_ref()).collect();
        assert_eq!(keys, vec![&b"c"[..], &b"b"[..]]);
        let all = reconcile(
            &key(),
            [
                PartitionUpdate {
                    rows: vec![row(b"a", 10, b"x")],
                    ..PartitionUpdate::default()
                },
                PartitionUpdate {
                    rows: vec![row(b"a", 11, b"y")],
                    ..PartitionUpdate::default()
                },
            ],
            &SliceQuery::all(),
            100,
        )?;
        let first = all.rows.ok_or("no rows")?;
        assert_eq!(
            first.rows[0].cells[0].value_bytes().map(|b| b.as_ref()),
            Some(&b"y"[..])
        );
        Ok(())
    }

    #[test]
    fn no_answers_reconcile_to_nothing_and_digests_tell_answers_apart() -> TestResult {
        let none = reconcile(&key(), [], &SliceQuery::all(), 100)?;
        assert_eq!(none.rows, None);
        let one = PartitionUpdate {
            rows: vec![row(b"a", 10, b"x")],
            ..PartitionUpdate::default()
        };
        let other = PartitionUpdate {
            rows: vec![row(b"a", 11, b"x")],
            ..PartitionUpdate::default()
        };
        assert_ne!(digest(Some(&one)), digest(Some(&other)));
        assert_ne!(digest(None), digest(Some(&one)));
        Ok(())
    }
}

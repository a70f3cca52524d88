//! The engine's data model: partitions, clustering positions, rows, cells and
//! the four kinds of deletion, with Cassandra's reconciliation rules.
//!
//! The engine knows no CQL types. Keys are bytes: a partition is keyed by
//! `(token, key bytes)`; rows inside it are keyed by *byte-comparable*
//! clustering bytes, so that `memcmp` order is the order clients expect (the
//! frontend encodes typed values, including `DESC`, that way).
//!
//! Clustering *prefixes* matter for range deletions: a bound on prefix `P`
//! covers every row whose key starts with `P`. [`ClusteringPosition`] places
//! such bounds between keys: `Before(P)` sorts before every key starting with
//! `P`, `After(P)` after all of them. The frontend must encode each clustering
//! component so that component boundaries are byte boundaries (prefix-free
//! components), which byte-comparable encodings are.
//!
//! Reconciliation is last-write-wins per cell by timestamp. At equal
//! timestamps a tombstone beats an expiring cell beats a live cell, then the
//! greater value wins, then the later expiry: a total order, so merging is
//! commutative and associative and replicas converge whatever the order of
//! arrival. A deletion with timestamp `T` shadows data with timestamp `<= T`.

use std::cmp::Ordering;

use bytes::Bytes;

/// A table's identity inside the engine (the CQL table's UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u128);

impl TableId {
    /// The directory name of the table: 32 lowercase hex digits.
    pub fn dir_name(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// Parses [`TableId::dir_name`] back.
    pub fn from_dir_name(name: &str) -> Option<TableId> {
        if name.len() != 32 {
            return None;
        }
        u128::from_str_radix(name, 16).ok().map(TableId)
    }
}

/// A partition's key: its token first, then the raw key bytes, which is the
/// order partitions are stored and scanned in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    pub token: i64,
    pub key: Bytes,
}

impl PartitionKey {
    pub fn new(token: i64, key: impl Into<Bytes>) -> PartitionKey {
        PartitionKey {
            token,
            key: key.into(),
        }
    }
}

/// A deletion: data with a timestamp at or below `timestamp` is shadowed.
/// `local_deletion_time_s` (seconds since the epoch, node-local) decides when
/// the tombstone may be purged (after `gc_grace_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeletionTime {
    pub timestamp: i64,
    pub local_deletion_time_s: i64,
}

impl DeletionTime {
    pub fn new(timestamp: i64, local_deletion_time_s: i64) -> DeletionTime {
        DeletionTime {
            timestamp,
            local_deletion_time_s,
        }
    }

    /// Does this deletion shadow data written at `timestamp`?
    pub fn shadows(&self, timestamp: i64) -> bool {
        timestamp <= self.timestamp
    }
}

impl PartialOrd for DeletionTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DeletionTime {
    /// The stronger deletion sorts higher: later timestamp, then later local time.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.timestamp, self.local_deletion_time_s)
            .cmp(&(other.timestamp, other.local_deletion_time_s))
    }
}

/// The stronger of two optional deletions.
pub fn max_deletion(a: Option<DeletionTime>, b: Option<DeletionTime>) -> Option<DeletionTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What a cell holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CellValue {
    Live(Bytes),
    /// A value with a TTL; dead from `expires_at_s` on.
    Expiring {
        value: Bytes,
        ttl_s: u32,
        expires_at_s: i64,
    },
    /// A deleted cell. Without a cell path it deletes the whole column,
    /// collection elements included (see [`Cell::path`]).
    Tombstone {
        deleted_at_s: i64,
    },
}

impl CellValue {
    fn rank(&self) -> u8 {
        match self {
            CellValue::Live(_) => 0,
            CellValue::Expiring { .. } => 1,
            CellValue::Tombstone { .. } => 2,
        }
    }
}

/// One cell of a row: a column, an optional path (a collection element's key),
/// a write timestamp in microseconds and a value or tombstone.
///
/// A column is either *simple* (cells without a path) or *complex* (a
/// collection: cells with paths). On a complex column a tombstone without a
/// path deletes every element with a timestamp at or below its own: that is
/// how a whole collection is overwritten or deleted. A column must not mix
/// live path-less cells with element cells (the frontend never does); if it
/// did, a later path-less live cell would not bring back elements that an
/// earlier whole-column tombstone already removed in a flush or compaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    pub column: u32,
    pub path: Option<Bytes>,
    pub timestamp: i64,
    pub value: CellValue,
}

impl Cell {
    pub fn live(column: u32, timestamp: i64, value: impl Into<Bytes>) -> Cell {
        Cell {
            column,
            path: None,
            timestamp,
            value: CellValue::Live(value.into()),
        }
    }

    pub fn tombstone(column: u32, timestamp: i64, deleted_at_s: i64) -> Cell {
        Cell {
            column,
            path: None,
            timestamp,
            value: CellValue::Tombstone { deleted_at_s },
        }
    }

    /// The order cells sit in within a row: by column, then path (no path first).
    pub fn name_cmp(&self, other: &Cell) -> Ordering {
        (self.column, &self.path).cmp(&(other.column, &other.path))
    }

    /// Is the cell live at `now_s`?
    pub fn is_live(&self, now_s: i64) -> bool {
        match &self.value {
            CellValue::Live(_) => true,
            CellValue::Expiring { expires_at_s, .. } => now_s < *expires_at_s,
            CellValue::Tombstone { .. } => false,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        matches!(self.value, CellValue::Tombstone { .. })
    }

    /// The value bytes of a live or expiring cell.
    pub fn value_bytes(&self) -> Option<&Bytes> {
        match &self.value {
            CellValue::Live(v) | CellValue::Expiring { value: v, .. } => Some(v),
            CellValue::Tombstone { .. } => None,
        }
    }

    /// Which of two versions of the same cell wins (see the module doc).
    pub fn reconcile(a: Cell, b: Cell) -> Cell {
        if Cell::wins_over(&b, &a) {
            b
        } else {
            a
        }
    }

    /// Does `self` win over `other` (same name)? A strict total order.
    pub fn wins_over(&self, other: &Cell) -> bool {
        let key = |c: &Cell| {
            let (value, expiry) = match &c.value {
                CellValue::Live(v) => (Some(v.clone()), 0),
                CellValue::Expiring {
                    value,
                    expires_at_s,
                    ..
                } => (Some(value.clone()), *expires_at_s),
                CellValue::Tombstone { deleted_at_s } => (None, *deleted_at_s),
            };
            (c.timestamp, c.value.rank(), value, expiry)
        };
        key(self) > key(other)
    }

    /// Rough in-memory size, for memtable accounting.
    pub fn size_bytes(&self) -> usize {
        let value = self.value_bytes().map_or(0, Bytes::len);
        48 + value + self.path.as_ref().map_or(0, Bytes::len)
    }
}

/// A row: clustering bytes, an optional row deletion, and cells sorted by
/// [`Cell::name_cmp`] with at most one cell per name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Row {
    pub clustering: Bytes,
    pub deletion: Option<DeletionTime>,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn new(clustering: impl Into<Bytes>, cells: Vec<Cell>) -> Row {
        let mut row = Row {
            clustering: clustering.into(),
            deletion: None,
            cells: Vec::new(),
        };
        for cell in cells {
            row.add_cell(cell);
        }
        row
    }

    /// Adds a cell, reconciling with an existing cell of the same name.
    pub fn add_cell(&mut self, cell: Cell) {
        match self.cells.binary_search_by(|c| c.name_cmp(&cell)) {
            Ok(i) => {
                if let Some(existing) = self.cells.get_mut(i) {
                    if cell.wins_over(existing) {
                        *existing = cell;
                    }
                }
            }
            Err(i) => self.cells.insert(i, cell),
        }
    }

    /// Merges `other` (same clustering) into `self`.
    pub fn merge_from(&mut self, other: Row) {
        self.deletion = max_deletion(self.deletion, other.deletion);
        if self.cells.is_empty() {
            self.cells = other.cells;
            return;
        }
        let mine = std::mem::take(&mut self.cells);
        self.cells = merge_sorted_cells(mine, other.cells);
    }

    pub fn size_bytes(&self) -> usize {
        32 + self.clustering.len() + self.cells.iter().map(Cell::size_bytes).sum::<usize>()
    }

    /// Is there nothing in this row (no deletion, no cells)?
    pub fn is_empty(&self) -> bool {
        self.deletion.is_none() && self.cells.is_empty()
    }
}

/// Merges two name-sorted cell lists, reconciling equal names.
pub fn merge_sorted_cells(a: Vec<Cell>, b: Vec<Cell>) -> Vec<Cell> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.name_cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => out.extend(a.next()),
            Ordering::Greater => out.extend(b.next()),
            Ordering::Equal => {
                if let (Some(x), Some(y)) = (a.next(), b.next()) {
                    out.push(Cell::reconcile(x, y));
                }
            }
        }
    }
    out
}

/// Where a clustering position sits relative to the keys starting with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PositionKind {
    /// Before every key that starts with the prefix.
    Before,
    /// Exactly the key equal to the prefix (a row's own position).
    At,
    /// After every key that starts with the prefix.
    After,
}

/// A point in a partition's clustering order: a row key, or the edge of the
/// set of keys sharing a prefix. Ordered as described in the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusteringPosition {
    pub prefix: Bytes,
    pub kind: PositionKind,
}

impl ClusteringPosition {
    pub fn before(prefix: impl Into<Bytes>) -> ClusteringPosition {
        ClusteringPosition {
            prefix: prefix.into(),
            kind: PositionKind::Before,
        }
    }

    pub fn at(key: impl Into<Bytes>) -> ClusteringPosition {
        ClusteringPosition {
            prefix: key.into(),
            kind: PositionKind::At,
        }
    }

    pub fn after(prefix: impl Into<Bytes>) -> ClusteringPosition {
        ClusteringPosition {
            prefix: prefix.into(),
            kind: PositionKind::After,
        }
    }

    /// The position before every row.
    pub fn bottom() -> ClusteringPosition {
        ClusteringPosition::before(Bytes::new())
    }

    /// The position after every row.
    pub fn top() -> ClusteringPosition {
        ClusteringPosition::after(Bytes::new())
    }

    /// Compares this position with a row key.
    pub fn cmp_key(&self, key: &[u8]) -> Ordering {
        compare_positions(&self.prefix, self.kind, key, PositionKind::At)
    }
}

impl PartialOrd for ClusteringPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ClusteringPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_positions(&self.prefix, self.kind, &other.prefix, other.kind)
    }
}

/// Compares two positions symbol by symbol: the bytes of the prefix, then an
/// end symbol where `Before` < `At` < any byte < `After`.
fn compare_positions(a: &[u8], ak: PositionKind, b: &[u8], bk: PositionKind) -> Ordering {
    let common = a.len().min(b.len());
    let (a_head, a_tail) = a.split_at(common);
    let (b_head, b_tail) = b.split_at(common);
    // Most tables have empty clustering keys or compare against the
    // partition's edges: no bytes to compare then.
    if common > 0 {
        match a_head.cmp(b_head) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    let symbol = |tail: &[u8], kind: PositionKind| -> i32 {
        match (tail.first(), kind) {
            (Some(&byte), _) => i32::from(byte),
            (None, PositionKind::Before) => -2,
            (None, PositionKind::At) => -1,
            (None, PositionKind::After) => 256,
        }
    };
    symbol(a_tail, ak).cmp(&symbol(b_tail, bk))
}

/// One end of a clustering range, on a prefix (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClusteringBound {
    Unbounded,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

/// A range of rows `[start, end]` in clustering order, bounds on prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusteringRange {
    pub start: ClusteringBound,
    pub end: ClusteringBound,
}

impl ClusteringRange {
    /// Every row of the partition.
    pub fn all() -> ClusteringRange {
        ClusteringRange {
            start: ClusteringBound::Unbounded,
            end: ClusteringBound::Unbounded,
        }
    }

    /// The position where the range starts (inclusive).
    pub fn start_position(&self) -> ClusteringPosition {
        match &self.start {
            ClusteringBound::Unbounded => ClusteringPosition::bottom(),
            ClusteringBound::Inclusive(p) => ClusteringPosition::before(p.clone()),
            ClusteringBound::Exclusive(p) => ClusteringPosition::after(p.clone()),
        }
    }

    /// The position where the range ends (exclusive).
    pub fn end_position(&self) -> ClusteringPosition {
        match &self.end {
            ClusteringBound::Unbounded => ClusteringPosition::top(),
            ClusteringBound::Inclusive(p) => ClusteringPosition::after(p.clone()),
            ClusteringBound::Exclusive(p) => ClusteringPosition::before(p.clone()),
        }
    }

    /// Does the range hold the row with this key?
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start_position().cmp_key(key) == Ordering::Less
            && self.end_position().cmp_key(key) == Ordering::Greater
    }

    /// Is the range empty (start at or after end)?
    pub fn is_empty(&self) -> bool {
        self.start_position() >= self.end_position()
    }
}

/// A deletion of every row in a clustering range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeTombstone {
    pub range: ClusteringRange,
    pub deletion: DeletionTime,
}

/// Everything one write does to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionUpdate {
    pub partition_deletion: Option<DeletionTime>,
    pub range_tombstones: Vec<RangeTombstone>,
    pub static_row: Option<Row>,
    pub rows: Vec<Row>,
}

impl PartitionUpdate {
    /// Rough in-memory size, for memtable accounting and commitlog limits.
    pub fn size_bytes(&self) -> usize {
        64 + self.range_tombstones.len() * 64
            + self.static_row.as_ref().map_or(0, Row::size_bytes)
            + self.rows.iter().map(Row::size_bytes).sum::<usize>()
    }

    /// The highest and lowest timestamps this update carries, if any.
    pub fn timestamp_range(&self) -> Option<(i64, i64)> {
        let mut stamps = Vec::new();
        stamps.extend(self.partition_deletion.map(|d| d.timestamp));
        stamps.extend(self.range_tombstones.iter().map(|rt| rt.deletion.timestamp));
        for row in self.static_row.iter().chain(self.rows.iter()) {
            stamps.extend(row.deletion.map(|d| d.timestamp));
            stamps.extend(row.cells.iter().map(|c| c.timestamp));
        }
        let min = stamps.iter().copied().min()?;
        let max = stamps.iter().copied().max()?;
        Some((min, max))
    }
}

/// A write to one partition of one table: the unit of the commitlog and of
/// replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub table: TableId,
    pub key: PartitionKey,
    pub update: PartitionUpdate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_around_prefixes() {
        let before = ClusteringPosition::before(&b"ab"[..]);
        let at = ClusteringPosition::at(&b"ab"[..]);
        let longer = ClusteringPosition::at(&b"ab\x00"[..]);
        let after = ClusteringPosition::after(&b"ab"[..]);
        let next = ClusteringPosition::at(&b"ac"[..]);
        assert!(ClusteringPosition::bottom() < before);
        assert!(before < at && at < longer && longer < after && after < next);
        assert!(next < ClusteringPosition::top());
        assert!(ClusteringPosition::after(&b"ab\xff\xff"[..]) < after);
    }

    #[test]
    fn ranges_on_prefixes_cover_extensions() {
        let range = ClusteringRange {
            start: ClusteringBound::Inclusive(Bytes::from_static(b"b")),
            end: ClusteringBound::Inclusive(Bytes::from_static(b"c")),
        };
        assert!(range.contains(b"b"));
        assert!(range.contains(b"b\x01"));
        assert!(range.contains(b"c\xff"));
        assert!(!range.contains(b"a\xff"));
        assert!(!range.contains(b"d"));
        let exclusive = ClusteringRange {
            start: ClusteringBound::Exclusive(Bytes::from_static(b"b")),
            end: ClusteringBound::Exclusive(Bytes::from_static(b"d")),
        };
        assert!(!exclusive.contains(b"b"));
        assert!(!exclusive.contains(b"ba"));
        assert!(exclusive.contains(b"c5"));
        assert!(!exclusive.contains(b"d"));
    }

    #[test]
    fn tombstone_wins_ties_then_greater_value() {
        let live = Cell::live(1, 10, &b"z"[..]);
        let dead = Cell::tombstone(1, 10, 0);
        assert!(dead.wins_over(&live));
        assert_eq!(Cell::reconcile(live.clone(), dead.clone()), dead);
        let small = Cell::live(1, 10, &b"a"[..]);
        assert_eq!(Cell::reconcile(small.clone(), live.clone()), live);
        assert_eq!(Cell::reconcile(live.clone(), small), live);
        let newer = Cell::live(1, 11, &b"a"[..]);
        assert_eq!(Cell::reconcile(dead, newer.clone()), newer);
    }
}

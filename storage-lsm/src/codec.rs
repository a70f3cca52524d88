//! Binary encoding of the data model, shared by the commitlog and SSTables.
//!
//! Integers are LEB128 varints (signed ones zig-zagged) so small numbers take
//! one byte. Decoding never panics: every read is bounds-checked and a bad
//! byte becomes a [`DecodeError`] carrying the offset, which the caller turns
//! into an [`crate::Error::Corrupt`] naming the file.
//!
//! Layouts (all varints unless noted):
//! - bytes: `len, bytes`
//! - deletion: `timestamp (zigzag), local_deletion_time_s (zigzag)`
//! - optional X: `0` or `1, X`
//! - cell: `flags u8 (bits 0-1 kind: 0 live, 1 expiring, 2 tombstone; bit 2 has path),
//!   column, [path bytes], timestamp (zigzag), kind fields`
//! - row: `clustering bytes, optional deletion, cell count, cells`
//! - position: `kind u8 (0 before, 1 at, 2 after), prefix bytes`
//! - update: `optional partition deletion, optional static row,
//!   range tombstone count, (start position, end position, deletion)*, row count, rows`

use bytes::Bytes;

use crate::model::{
    Cell, CellValue, ClusteringBound, ClusteringPosition, ClusteringRange, DeletionTime, Mutation,
    PartitionKey, PartitionUpdate, PositionKind, RangeTombstone, Row, TableId,
};

/// Longest byte string the decoder accepts (a value, key or path).
pub const BYTES_LEN_MAX: u64 = 256 * 1024 * 1024;

/// Most elements of any one list the decoder accepts (cells of a row, rows of an update).
pub const LIST_LEN_MAX: u64 = 16 * 1024 * 1024;

/// Bytes that do not decode, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at offset {offset}")]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Appends encoded values to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub fn signed(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    pub fn fixed_i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    pub fn deletion(&mut self, d: &DeletionTime) {
        self.signed(d.timestamp);
        self.signed(d.local_deletion_time_s);
    }

    pub fn opt_deletion(&mut self, d: &Option<DeletionTime>) {
        match d {
            None => self.u8(0),
            Some(d) => {
                self.u8(1);
                self.deletion(d);
            }
        }
    }

    pub fn cell(&mut self, cell: &Cell) {
        let kind = match cell.value {
            CellValue::Live(_) => 0,
            CellValue::Expiring { .. } => 1,
            CellValue::Tombstone { .. } => 2,
        };
        let flags = kind | if cell.path.is_some() { 4 } else { 0 };
        self.u8(flags);
        self.varint(u64::from(cell.column));
        if let Some(path) = &cell.path {
            self.bytes(path);
        }
        self.signed(cell.timestamp);
        match &cell.value {
            CellValue::Live(value) => self.bytes(value),
            CellValue::Expiring {
                value,
                ttl_s,
                expires_at_s,
            } => {
                self.bytes(value);
                self.varint(u64::from(*ttl_s));
                self.signed(*expires_at_s);
            }
            CellValue::Tombstone { deleted_at_s } => self.signed(*deleted_at_s),
        }
    }

    pub fn row(&mut self, row: &Row) {
        self.bytes(&row.clustering);
        self.opt_deletion(&row.deletion);
        self.varint(row.cells.len() as u64);
        for cell in &row.cells {
            self.cell(cell);
        }
    }

    pub fn position(&mut self, position: &ClusteringPosition) {
        self.u8(match position.kind {
            PositionKind::Before => 0,
            PositionKind::At => 1,
            PositionKind::After => 2,
        });
        self.bytes(&position.prefix);
    }

    pub fn partition_key(&mut self, key: &PartitionKey) {
        self.fixed_i64(key.token);
        self.bytes(&key.key);
    }

    pub fn update(&mut self, update: &PartitionUpdate) {
        self.opt_deletion(&update.partition_deletion);
        match &update.static_row {
            None => self.u8(0),
            Some(row) => {
                self.u8(1);
                self.row(row);
            }
        }
        self.varint(update.range_tombstones.len() as u64);
        for rt in &update.range_tombstones {
            self.position(&rt.range.start_position());
            self.position(&rt.range.end_position());
            self.deletion(&rt.deletion);
        }
        self.varint(update.rows.len() as u64);
        for row in &update.rows {
            self.row(row);
        }
    }

    pub fn mutation(&mut self, mutation: &Mutation) {
        self.buf.extend_from_slice(&mutation.table.0.to_be_bytes());
        self.partition_key(&mutation.key);
        self.update(&mutation.update);
    }
}

/// Reads encoded values from a byte slice, never past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// `buf` as shared bytes, when the reader may hand out slices of it
    /// instead of copies (see [`Reader::over_shared`]).
    shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            shared: None,
        }
    }

    /// A reader whose decoded byte strings share `buf`'s memory instead of
    /// copying it: each keeps all of `buf` alive, so use it only for
    /// results that live briefly (a scan page on its way to a client),
    /// never for data kept (a memtable, a cache).
    pub fn over_shared(buf: &'a Bytes) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            shared: Some(buf),
        }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn fail<T>(&self, reason: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.pos,
            reason,
        })
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.fail("unexpected end of data"),
        }
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(slice) => {
                self.pos += len;
                Ok(slice)
            }
            None => self.fail("length runs past the end of data"),
        }
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most varints (lengths, counts, small offsets) are one byte.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("varint longer than 10 bytes")
    }

    pub fn signed(&mut self) -> Result<i64, DecodeError> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub fn fixed_i64(&mut self) -> Result<i64, DecodeError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    pub fn u32_len(&mut self, max: u64, reason: &'static str) -> Result<usize, DecodeError> {
        let len = self.varint()?;
        if len > max {
            return self.fail(reason);
        }
        Ok(len as usize)
    }

    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let shared = self.shared;
        self.bytes_ref().map(|bytes| match shared {
            Some(shared) => shared.slice_ref(bytes),
            None => Bytes::copy_from_slice(bytes),
        })
    }

    /// A length-prefixed byte string, borrowed from the buffer.
    pub fn bytes_ref(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32_len(BYTES_LEN_MAX, "byte string longer than the limit")?;
        self.take(len)
    }

    pub fn deletion(&mut self) -> Result<DeletionTime, DecodeError> {
        Ok(DeletionTime {
            timestamp: self.signed()?,
            local_deletion_time_s: self.signed()?,
        })
    }

    pub fn opt_deletion(&mut self) -> Result<Option<DeletionTime>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.deletion()?)),
            _ => self.fail("bad optional flag"),
        }
    }

    pub fn cell(&mut self) -> Result<Cell, DecodeError> {
        let flags = self.u8()?;
        if flags & !0b111 != 0 {
            return self.fail("unknown cell flags");
        }
        let column = u32::try_from(self.varint()?).or_else(|_| self.fail("column id too large"))?;
        let path = if flags & 4 != 0 {
            Some(self.bytes()?)
        } else {
            None
        };
        let timestamp = self.signed()?;
        let value = match flags & 3 {
            0 => CellValue::Live(self.bytes()?),
            1 => CellValue::Expiring {
                value: self.bytes()?,
                ttl_s: u32::try_from(self.varint()?).or_else(|_| self.fail("ttl too large"))?,
                expires_at_s: self.signed()?,
            },
            2 => CellValue::Tombstone {
                deleted_at_s: self.signed()?,
            },
            _ => return self.fail("unknown cell kind"),
        };
        Ok(Cell {
            column,
            path,
            timestamp,
            value,
        })
    }

    pub fn row(&mut self) -> Result<Row, DecodeError> {
        let clustering = self.bytes()?;
        let deletion = self.opt_deletion()?;
        let count = self.u32_len(LIST_LEN_MAX, "too many cells in a row")?;
        let mut cells: Vec<Cell> = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let cell = self.cell()?;
            if let Some(last) = cells.last() {
                if last.name_cmp(&cell) != std::cmp::Ordering::Less {
                    return self.fail("cells out of order");
                }
            }
            cells.push(cell);
        }
        Ok(Row {
            clustering,
            deletion,
            cells,
        })
    }

    pub fn position(&mut self) -> Result<ClusteringPosition, DecodeError> {
        let kind = match self.u8()? {
            0 => PositionKind::Before,
            1 => PositionKind::At,
            2 => PositionKind::After,
            _ => return self.fail("unknown position kind"),
        };
        Ok(ClusteringPosition {
            prefix: self.bytes()?,
            kind,
        })
    }

    pub fn partition_key(&mut self) -> Result<PartitionKey, DecodeError> {
        let token = self.fixed_i64()?;
        Ok(PartitionKey::new(token, self.bytes()?))
    }

    /// A partition key's token and bytes, borrowed (nothing is copied).
    pub fn partition_key_ref(&mut self) -> Result<(i64, &'a [u8]), DecodeError> {
        Ok((self.fixed_i64()?, self.bytes_ref()?))
    }

    /// Moves past a clustering position without copying it.
    pub fn skip_position(&mut self) -> Result<(), DecodeError> {
        if self.u8()? > 2 {
            return self.fail("unknown position kind");
        }
        self.bytes_ref().map(|_| ())
    }

    pub fn update(&mut self) -> Result<PartitionUpdate, DecodeError> {
        let partition_deletion = self.opt_deletion()?;
        let static_row = match self.u8()? {
            0 => None,
            1 => Some(self.row()?),
            _ => return self.fail("bad optional flag"),
        };
        let rt_count = self.u32_len(LIST_LEN_MAX, "too many range tombstones")?;
        let mut range_tombstones = Vec::with_capacity(rt_count.min(1024));
        for _ in 0..rt_count {
            let start = self.position()?;
            let end = self.position()?;
            let deletion = self.deletion()?;
            let range = range_from_positions(start, end).or_else(|reason| self.fail(reason))?;
            range_tombstones.push(RangeTombstone { range, deletion });
        }
        let row_count = self.u32_len(LIST_LEN_MAX, "too many rows")?;
        let mut rows = Vec::with_capacity(row_count.min(1024));
        for _ in 0..row_count {
            rows.push(self.row()?);
        }
        Ok(PartitionUpdate {
            partition_deletion,
            range_tombstones,
            static_row,
            rows,
        })
    }

    pub fn mutation(&mut self) -> Result<Mutation, DecodeError> {
        let id = self.take(16)?;
        let mut array = [0u8; 16];
        array.copy_from_slice(id);
        Ok(Mutation {
            table: TableId(u128::from_be_bytes(array)),
            key: self.partition_key()?,
            update: self.update()?,
        })
    }
}

/// Turns a start and an end position back into a range.
fn range_from_positions(
    start: ClusteringPosition,
    end: ClusteringPosition,
) -> Result<ClusteringRange, &'static str> {
    let start = match start.kind {
        PositionKind::Before if start.prefix.is_empty() => ClusteringBound::Unbounded,
        PositionKind::Before => ClusteringBound::Inclusive(start.prefix),
        PositionKind::After => ClusteringBound::Exclusive(start.prefix),
        PositionKind::At => return Err("a range cannot start at a row"),
    };
    let end = match end.kind {
        PositionKind::After if end.prefix.is_empty() => ClusteringBound::Unbounded,
        PositionKind::After => ClusteringBound::Inclusive(end.prefix),
        PositionKind::Before => ClusteringBound::Exclusive(end.prefix),
        PositionKind::At => return Err("a range cannot end at a row"),
    };
    Ok(ClusteringRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn varints_round_trip() -> TestResult {
        for value in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            let mut w = Writer::new();
            w.signed(value);
            assert_eq!(Reader::new(&w.buf).signed()?, value);
        }
        Ok(())
    }

    #[test]
    fn mutation_round_trips() -> TestResult {
        let mutation = Mutation {
            table: TableId(7),
            key: PartitionKey::new(-5, &b"pk"[..]),
            update: PartitionUpdate {
                partition_deletion: Some(DeletionTime::new(3, 4)),
                range_tombstones: vec![RangeTombstone {
                    range: ClusteringRange {
                        start: ClusteringBound::Inclusive(Bytes::from_static(b"a")),
                        end: ClusteringBound::Unbounded,
                    },
                    deletion: DeletionTime::new(9, 10),
                }],
                static_row: Some(Row::new(Bytes::new(), vec![Cell::live(1, 5, &b"s"[..])])),
                rows: vec![Row::new(
                    &b"c1"[..],
                    vec![
                        Cell::live(2, 6, &b"v"[..]),
                        Cell {
                            column: 3,
                            path: Some(Bytes::from_static(b"k")),
                            timestamp: 7,
                            value: CellValue::Expiring {
                                value: Bytes::from_static(b"e"),
                                ttl_s: 60,
                                expires_at_s: 1000,
                            },
                        },
                        Cell::tombstone(4, 8, 99),
                    ],
                )],
            },
        };
        let mut w = Writer::new();
        w.mutation(&mutation);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.mutation()?, mutation);
        assert!(r.is_empty());
        // Every truncation fails cleanly instead of panicking.
        for len in 0..w.buf.len() {
            assert!(Reader::new(&w.buf[..len]).mutation().is_err());
        }
        Ok(())
    }
}

//! Cells of a row and the column values they make: one cell per simple
//! column, one per element of a non-frozen collection (its path says which),
//! and collections' wire form split into elements and assembled again.

use bytes::{BufMut, Bytes, BytesMut};

use storage_lsm::model::{Cell, CellValue, PartitionUpdate, Row};

use crate::protocol::error::CqlError;
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::types::CqlType;

use super::invalid;

pub(super) fn cell(
    column: u32,
    timestamp: i64,
    ttl: i64,
    now_s: i64,
    value: Option<Bytes>,
) -> Cell {
    let value = match value {
        None => CellValue::Tombstone {
            deleted_at_s: now_s,
        },
        Some(value) if ttl > 0 => CellValue::Expiring {
            value,
            ttl_s: ttl as u32,
            expires_at_s: now_s + ttl,
        },
        Some(value) => CellValue::Live(value),
    };
    Cell {
        column,
        path: None,
        timestamp,
        value,
    }
}

pub(super) fn cells_update(
    table: &TableSchema,
    assigned: &[(&ColumnSchema, Vec<Cell>)],
    clustering: Bytes,
) -> Result<PartitionUpdate, CqlError> {
    let mut cells = Vec::new();
    let mut statics = Vec::new();
    for (column, column_cells) in assigned {
        match column.kind {
            ColumnKind::Regular => cells.extend(column_cells.iter().cloned()),
            ColumnKind::Static => statics.extend(column_cells.iter().cloned()),
            _ => {}
        }
    }
    let mut update = PartitionUpdate::default();
    let has_clustering = table.clustering().next().is_some();
    if !cells.is_empty() || !has_clustering || statics.is_empty() {
        update.rows.push(Row::new(clustering, cells));
    }
    if !statics.is_empty() {
        update.static_row = Some(Row::new(Bytes::new(), statics));
    }
    Ok(update)
}

/// A list element's cell path: appended elements sort after every earlier
/// one, prepended elements before every earlier one, in statement order.
pub(super) fn list_path(timestamp: i64, index: usize, prepend: bool) -> Bytes {
    let micros = timestamp.max(0) as u64;
    let time = if prepend {
        0x7fff_ffff_ffff_ffff - micros
    } else {
        0x8000_0000_0000_0000 | micros
    };
    let random: u32 = rand::random();
    let mut path = Vec::with_capacity(16);
    path.extend_from_slice(&time.to_be_bytes());
    path.extend_from_slice(&(index as u32).to_be_bytes());
    path.extend_from_slice(&random.to_be_bytes());
    Bytes::from(path)
}

pub(super) fn element_cell(
    column: u32,
    path: Bytes,
    timestamp: i64,
    ttl: i64,
    now_s: i64,
    value: Option<Bytes>,
) -> Cell {
    Cell {
        path: Some(path),
        ..cell(column, timestamp, ttl, now_s, value)
    }
}

/// The cell path of a non-frozen user-defined type's field: its position,
/// two bytes big-endian (so cells sort in field order).
pub(super) fn field_path(index: usize) -> Result<Bytes, CqlError> {
    let index = u16::try_from(index)
        .map_err(|_| invalid(format!("a user-defined type has no field {index}")))?;
    Ok(Bytes::copy_from_slice(&index.to_be_bytes()))
}

/// A non-frozen user-defined type's value from its field cells: every
/// field in order, null where no live cell holds it; `None` when no field
/// has a value (Cassandra reads such a value as null).
fn assemble_fields(fields: usize, cells: &[&Cell]) -> Result<Option<Bytes>, CqlError> {
    let mut values: Vec<Option<&Bytes>> = vec![None; fields];
    for cell in cells {
        let path = cell.path.as_deref().unwrap_or_default();
        let index: [u8; 2] = path.try_into().map_err(|_| {
            CqlError::Server(format!(
                "stored field path of column {} is malformed ({} bytes)",
                cell.column,
                path.len()
            ))
        })?;
        // A field past the type's end cannot be written; skip rather than fail.
        if let Some(slot) = values.get_mut(usize::from(u16::from_be_bytes(index))) {
            *slot = cell.value_bytes();
        }
    }
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = BytesMut::new();
    for value in values {
        match value {
            Some(value) => {
                out.put_i32(value.len() as i32);
                out.put_slice(value);
            }
            None => out.put_i32(-1),
        }
    }
    Ok(Some(out.freeze()))
}

/// A non-frozen collection's or user-defined type's serialized value from
/// its element cells (in path order), or `None` when it has no live element.
pub(super) fn assemble_collection(
    column: &ColumnSchema,
    cells: &[&Cell],
) -> Result<Option<Bytes>, CqlError> {
    if let CqlType::UserType(udt) = &column.ty {
        return assemble_fields(udt.fields.len(), cells);
    }
    if cells.is_empty() {
        return Ok(None);
    }
    let mut out = BytesMut::new();
    out.put_i32(cells.len() as i32);
    for cell in cells {
        let path = cell.path.as_deref().unwrap_or_default();
        let value = cell.value_bytes().cloned().unwrap_or_default();
        match &column.ty {
            CqlType::Set(element) => {
                let (item, _) = element.decode_comparable(path, false).map_err(|e| {
                    CqlError::Server(format!("stored set element is malformed: {}", e.0))
                })?;
                out.put_i32(item.len() as i32);
                out.put_slice(&item);
            }
            CqlType::Map(key, _) => {
                let (item, _) = key.decode_comparable(path, false).map_err(|e| {
                    CqlError::Server(format!("stored map key is malformed: {}", e.0))
                })?;
                out.put_i32(item.len() as i32);
                out.put_slice(&item);
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
            _ => {
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
        }
    }
    Ok(Some(out.freeze()))
}

/// The element cells of one collection column in a row.
pub(super) fn element_cells(row: Option<&Row>, column: u32) -> Vec<&Cell> {
    row.map(|r| {
        r.cells
            .iter()
            .filter(|c| c.column == column && c.path.is_some())
            .collect()
    })
    .unwrap_or_default()
}

/// The parts of a serialized map (`per_entry` = 2) or list/set (1).
pub(super) fn split_entries(bytes: &[u8], per_entry: usize) -> Result<Vec<Bytes>, CqlError> {
    let bad = || invalid("malformed collection value");
    let count = i32::from_be_bytes(
        bytes
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let mut at = 4;
    let mut out = Vec::new();
    for _ in 0..(count.max(0) as usize).saturating_mul(per_entry) {
        let len = i32::from_be_bytes(
            bytes
                .get(at..at + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        at += 4;
        let len = usize::try_from(len).map_err(|_| bad())?;
        out.push(Bytes::copy_from_slice(
            bytes.get(at..at + len).ok_or_else(bad)?,
        ));
        at += len;
    }
    Ok(out)
}

pub(super) fn split_collection(bytes: &[u8]) -> Result<Vec<Bytes>, CqlError> {
    split_entries(bytes, 1)
}

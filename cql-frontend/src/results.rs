//! RESULT bodies (section 4.2.5): Void, Rows with their metadata,
//! SetKeyspace, SchemaChange.

use bytes::Bytes;

use crate::protocol::primitives::BodyWriter;
use crate::types::CqlType;

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub keyspace: String,
    pub table: String,
    pub name: String,
    pub ty: CqlType,
}

/// A page of rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rows {
    pub columns: Vec<ColumnSpec>,
    pub rows: Vec<Vec<Option<Bytes>>>,
    /// Set when more pages follow.
    pub paging_state: Option<Bytes>,
}

/// What a schema change touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// CREATED, UPDATED or DROPPED.
    pub change: &'static str,
    /// KEYSPACE or TABLE.
    pub target: &'static str,
    pub keyspace: String,
    pub name: Option<String>,
}

impl SchemaChange {
    pub fn write(&self, w: &mut BodyWriter) {
        w.write_string(self.change);
        w.write_string(self.target);
        w.write_string(&self.keyspace);
        if let Some(name) = &self.name {
            w.write_string(name);
        }
    }
}

/// A RESULT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultBody {
    Void,
    Rows(Rows),
    SetKeyspace(String),
    SchemaChange(SchemaChange),
}

impl ResultBody {
    pub fn write(&self, w: &mut BodyWriter, skip_metadata: bool) {
        match self {
            ResultBody::Void => w.write_int(0x0001),
            ResultBody::Rows(rows) => {
                w.write_int(0x0002);
                write_rows(rows, w, skip_metadata);
            }
            ResultBody::SetKeyspace(keyspace) => {
                w.write_int(0x0003);
                w.write_string(keyspace);
            }
            ResultBody::SchemaChange(change) => {
                w.write_int(0x0005);
                change.write(w);
            }
        }
    }
}

fn write_rows(rows: &Rows, w: &mut BodyWriter, skip_metadata: bool) {
    let global = rows
        .columns
        .first()
        .map(|first| {
            rows.columns
                .iter()
                .all(|c| c.keyspace == first.keyspace && c.table == first.table)
        })
        .unwrap_or(true);
    let mut flags = 0;
    if global {
        flags |= 0x0001;
    }
    if rows.paging_state.is_some() {
        flags |= 0x0002;
    }
    if skip_metadata {
        flags |= 0x0004;
    }
    w.write_int(flags);
    w.write_int(rows.columns.len() as i32);
    if let Some(state) = &rows.paging_state {
        w.write_bytes(Some(state));
    }
    if !skip_metadata {
        if global {
            let (keyspace, table) = rows
                .columns
                .first()
                .map_or(("", ""), |c| (c.keyspace.as_str(), c.table.as_str()));
            w.write_string(keyspace);
            w.write_string(table);
        }
        for column in &rows.columns {
            if !global {
                w.write_string(&column.keyspace);
                w.write_string(&column.table);
            }
            w.write_string(&column.name);
            column.ty.write_option(w);
        }
    }
    w.write_int(rows.rows.len() as i32);
    for row in &rows.rows {
        for value in row {
            w.write_bytes(value.as_deref());
        }
    }
}

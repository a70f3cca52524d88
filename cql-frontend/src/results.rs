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

/// How the metadata of rows is written back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataRequest {
    /// The client holds the metadata already (the SKIP_METADATA flag).
    pub skip: bool,
    /// v5 EXECUTE: the client's result metadata id was not the statement's
    /// current one, so the full metadata goes back with this new id.
    pub changed_id: Option<[u8; 16]>,
}

impl MetadataRequest {
    pub fn full() -> MetadataRequest {
        MetadataRequest::default()
    }
}

/// A 16-byte fingerprint of some bytes (statement and metadata ids).
pub fn fingerprint(bytes: &[u8]) -> [u8; 16] {
    let high = replication::murmur3::murmur3_hash(bytes) as u64;
    let mut salted = Vec::with_capacity(bytes.len() + 1);
    salted.push(b'#');
    salted.extend_from_slice(bytes);
    let low = replication::murmur3::murmur3_hash(&salted) as u64;
    (u128::from(high) << 64 | u128::from(low)).to_be_bytes()
}

/// The v5 result metadata id of rows with these columns.
pub fn metadata_id(columns: &[ColumnSpec]) -> [u8; 16] {
    let mut w = BodyWriter::new();
    for column in columns {
        w.write_string(&column.keyspace);
        w.write_string(&column.table);
        w.write_string(&column.name);
        column.ty.write_option(&mut w);
    }
    fingerprint(&w.into_bytes())
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
    pub fn write(&self, w: &mut BodyWriter, metadata: &MetadataRequest) {
        match self {
            ResultBody::Void => w.write_int(0x0001),
            ResultBody::Rows(rows) => {
                w.write_int(0x0002);
                let changed = metadata.changed_id;
                write_rows(rows, w, metadata.skip && changed.is_none(), changed);
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

/// Whether every column is of one table (the metadata's global table spec).
pub(crate) fn one_table(specs: &[ColumnSpec]) -> bool {
    specs.first().is_none_or(|first| {
        specs
            .iter()
            .all(|c| c.keyspace == first.keyspace && c.table == first.table)
    })
}

/// Column specs: the table once when all share it, else per column.
pub(crate) fn write_specs(w: &mut BodyWriter, specs: &[ColumnSpec]) {
    let global = one_table(specs);
    if global {
        let (keyspace, table) = specs
            .first()
            .map_or(("", ""), |c| (c.keyspace.as_str(), c.table.as_str()));
        w.write_string(keyspace);
        w.write_string(table);
    }
    for spec in specs {
        if !global {
            w.write_string(&spec.keyspace);
            w.write_string(&spec.table);
        }
        w.write_string(&spec.name);
        spec.ty.write_option(w);
    }
}

fn write_rows(
    rows: &Rows,
    w: &mut BodyWriter,
    skip_metadata: bool,
    new_metadata_id: Option<[u8; 16]>,
) {
    let global = one_table(&rows.columns);
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
    if new_metadata_id.is_some() {
        flags |= 0x0008;
    }
    w.write_int(flags);
    w.write_int(rows.columns.len() as i32);
    if let Some(state) = &rows.paging_state {
        w.write_bytes(Some(state));
    }
    if let Some(id) = new_metadata_id {
        w.write_short_bytes(&id);
    }
    if !skip_metadata {
        write_specs(w, &rows.columns);
    }
    w.write_int(rows.rows.len() as i32);
    for row in &rows.rows {
        for value in row {
            w.write_bytes(value.as_deref());
        }
    }
}

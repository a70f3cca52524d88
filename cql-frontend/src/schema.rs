//! The schema catalog: keyspaces and tables, validated from their DDL, and
//! kept durable in an engine table of their own.
//!
//! Each keyspace is a partition of [`SCHEMA_TABLE`] keyed by its name; the
//! row with empty clustering holds its `CREATE KEYSPACE` text, and one row per
//! table (clustered by table name) holds the table's `CREATE TABLE` text and
//! id. At start the texts are parsed again, in order, to rebuild the
//! catalog: one code path for creating and for loading. This module is the
//! one place schema changes go through, so a cluster-wide metadata log can
//! replace it later.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use storage_lsm::model::{
    Cell, DeletionTime, Mutation, PartitionKey, PartitionUpdate, Row, TableId,
};
use storage_lsm::{CompactionStrategy, Engine, SliceQuery, TableOptions, TokenRange};

use crate::cql::ast::{
    AlterTable, AlterType, ColumnDef, Literal, OptionValue, QualifiedName, Statement,
};
use crate::cql::parser::parse;
use crate::protocol::error::CqlError;
use crate::types::{CqlType, UserType};

/// The engine table that stores the schema itself.
pub const SCHEMA_TABLE: TableId = TableId(0x1110_0000_0000_0000_0000_0000_0000_0001);
/// Cell holding a `CREATE` statement's text.
const CELL_CQL: u32 = 1;
/// Cell holding a table's id (16 bytes).
const CELL_ID: u32 = 2;
/// Cell holding a table's column ids (see [`encode_column_ids`]).
const CELL_COLUMN_IDS: u32 = 3;

/// Keyspaces that exist on every node and cannot be changed.
pub const SYSTEM_KEYSPACES: [&str; 5] = [
    "system",
    "system_schema",
    "system_auth",
    "system_distributed",
    "system_traces",
];

/// How a keyspace replicates (the coordinator's placement rule).
pub use replication::Placement as Strategy;

/// A keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceSchema {
    pub name: String,
    pub strategy: Strategy,
    pub durable_writes: bool,
}

impl KeyspaceSchema {
    /// `replication` as `system_schema.keyspaces` shows it.
    pub fn replication_map(&self) -> Vec<(String, String)> {
        match &self.strategy {
            Strategy::Simple { replication_factor } => vec![
                (
                    "class".into(),
                    "org.apache.cassandra.locator.SimpleStrategy".into(),
                ),
                ("replication_factor".into(), replication_factor.to_string()),
            ],
            Strategy::NetworkTopology { data_centers } => {
                let mut map = vec![(
                    "class".into(),
                    "org.apache.cassandra.locator.NetworkTopologyStrategy".into(),
                )];
                map.extend(
                    data_centers
                        .iter()
                        .map(|(dc, rf)| (dc.clone(), rf.to_string())),
                );
                map
            }
            Strategy::Local => vec![(
                "class".into(),
                "org.apache.cassandra.locator.LocalStrategy".into(),
            )],
        }
    }

    /// Replicas per partition (summed over data centers).
    pub fn replication_factor(&self) -> usize {
        self.strategy.replication_factor()
    }
}

/// What part of the primary key a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    PartitionKey,
    Clustering,
    Static,
    Regular,
}

impl ColumnKind {
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::PartitionKey => "partition_key",
            ColumnKind::Clustering => "clustering",
            ColumnKind::Static => "static",
            ColumnKind::Regular => "regular",
        }
    }
}

/// A column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: CqlType,
    pub kind: ColumnKind,
    /// Position within the partition key or clustering; -1 otherwise.
    pub position: i32,
    /// The engine's column id for regular and static columns (0 is the row marker).
    pub id: u32,
    pub descending: bool,
}

/// Cell id of the row marker an `INSERT` writes, so that a row exists even
/// when all its other columns are null.
pub const ROW_MARKER: u32 = 0;

/// A table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub keyspace: String,
    pub name: String,
    pub id: u128,
    /// Partition key, clustering, then the other columns by name (the order
    /// of `SELECT *`).
    pub columns: Vec<ColumnSchema>,
    pub gc_grace_seconds: i64,
    pub default_time_to_live: i64,
    pub comment: String,
    pub compaction: Vec<(String, String)>,
    /// `compression` as given (normalized as Cassandra stores it). The
    /// engine compresses every SSTable with LZ4 in 4 KiB chunks whatever
    /// this says (README, limits).
    pub compression: Vec<(String, String)>,
    pub create_cql: String,
    /// The id the next added column gets: ids of dropped columns are never
    /// given again, so their old cells stay invisible.
    pub next_column_id: u32,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether `ALTER TABLE DROP` ever removed a column: ids run from 1
    /// with none skipped otherwise.
    pub fn has_dropped_columns(&self) -> bool {
        let stored = self
            .columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Regular | ColumnKind::Static))
            .count();
        self.next_column_id as usize > stored + 1
    }

    pub fn partition_key(&self) -> impl Iterator<Item = &ColumnSchema> {
        self.columns
            .iter()
            .filter(|c| c.kind == ColumnKind::PartitionKey)
    }

    pub fn clustering(&self) -> impl Iterator<Item = &ColumnSchema> {
        self.columns
            .iter()
            .filter(|c| c.kind == ColumnKind::Clustering)
    }

    pub fn table_id(&self) -> TableId {
        TableId(self.id)
    }

    pub fn engine_options(&self) -> TableOptions {
        let class = self
            .compaction
            .iter()
            .find(|(k, _)| k == "class")
            .map(|(_, v)| v.rsplit('.').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let get = |key: &str| {
            self.compaction
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let compaction = match class.as_str() {
            "LeveledCompactionStrategy" => CompactionStrategy::Leveled {
                sstable_size_bytes: get("sstable_size_in_mb").unwrap_or(160) * 1024 * 1024,
                fanout: get("fanout_size").unwrap_or(10),
            },
            "TimeWindowCompactionStrategy" => {
                let size = get("compaction_window_size").unwrap_or(1) as i64;
                let unit = self
                    .compaction
                    .iter()
                    .find(|(k, _)| k == "compaction_window_unit")
                    .map_or("DAYS", |(_, v)| v.as_str());
                let seconds = match unit {
                    "MINUTES" => 60,
                    "HOURS" => 3600,
                    _ => 86_400,
                };
                CompactionStrategy::TimeWindow {
                    window_s: size * seconds,
                }
            }
            _ => CompactionStrategy::SizeTiered {
                min_threshold: get("min_threshold").unwrap_or(4) as usize,
                max_threshold: get("max_threshold").unwrap_or(32) as usize,
            },
        };
        TableOptions {
            compaction,
            gc_grace_seconds: self.gc_grace_seconds,
        }
    }

    /// The id as a UUID string.
    pub fn id_string(&self) -> String {
        format_uuid(self.id)
    }
}

/// Formats 128 bits as a UUID.
pub fn format_uuid(id: u128) -> String {
    let hex = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// All keyspaces and tables.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub keyspaces: BTreeMap<String, KeyspaceSchema>,
    pub tables: BTreeMap<(String, String), Arc<TableSchema>>,
    /// User-defined types by (keyspace, name).
    pub types: BTreeMap<(String, String), Arc<UserType>>,
    /// Digest of every definition, shown as `schema_version`.
    pub version: u128,
}

fn invalid(message: impl Into<String>) -> CqlError {
    CqlError::Invalid(message.into())
}

fn literal_text(literal: &Literal) -> String {
    match literal {
        Literal::Str(s)
        | Literal::Integer(s)
        | Literal::Float(s)
        | Literal::Uuid(s)
        | Literal::Duration(s) => s.clone(),
        Literal::Bool(b) => b.to_string(),
        Literal::Blob(_) => String::new(),
        Literal::Null => "null".into(),
    }
}

/// Largest replication factor a keyspace may ask for (per data center):
/// a larger one names more replicas than any cluster has, and makes every
/// write Unavailable (Cassandra's `maximum_replication_factor` guardrail).
pub const REPLICATION_FACTOR_MAX: usize = 128;

/// Longest TTL (Cassandra's: 20 years), also for `default_time_to_live`.
pub const TTL_MAX_S: i64 = 630_720_000;

/// The smallest `bloom_filter_fp_chance` Cassandra supports.
const BLOOM_FILTER_FP_CHANCE_MIN: f64 = 6.71e-05;

/// Validates `CREATE KEYSPACE` options.
pub fn keyspace_from_options(
    name: &str,
    options: &[(String, OptionValue)],
) -> Result<KeyspaceSchema, CqlError> {
    keyspace_with_options(name, options, None)
}

/// Validates `CREATE KEYSPACE` options, or `ALTER KEYSPACE` ones over the
/// `previous` definition (what an ALTER does not name stays, as in
/// Cassandra: `WITH durable_writes = false` keeps the replication).
fn keyspace_with_options(
    name: &str,
    options: &[(String, OptionValue)],
    previous: Option<&KeyspaceSchema>,
) -> Result<KeyspaceSchema, CqlError> {
    let mut strategy = previous.map(|p| p.strategy.clone());
    let mut durable_writes = previous.is_none_or(|p| p.durable_writes);
    for (key, value) in options {
        match (key.as_str(), value) {
            ("replication", OptionValue::Map(entries)) => {
                let class = entries
                    .iter()
                    .find(|(k, _)| k == "class")
                    .map(|(_, v)| v.rsplit('.').next().unwrap_or_default().to_owned())
                    .ok_or_else(|| invalid("Missing replication strategy class"))?;
                let factor = |text: &str| {
                    let rf = text.parse::<usize>().map_err(|_| {
                        invalid(format!(
                            "Replication factor must be a non-negative integer, not {text:?}"
                        ))
                    })?;
                    if rf > REPLICATION_FACTOR_MAX {
                        return Err(invalid(format!(
                            "Replication factor {rf} is larger than the maximum of {REPLICATION_FACTOR_MAX}"
                        )));
                    }
                    Ok(rf)
                };
                strategy = Some(match class.as_str() {
                    "SimpleStrategy" => {
                        let rf = entries
                            .iter()
                            .find(|(k, _)| k == "replication_factor")
                            .ok_or_else(|| invalid("SimpleStrategy requires a replication_factor strategy option."))?;
                        if let Some((unknown, _)) = entries.iter().find(|(k, _)| k != "class" && k != "replication_factor") {
                            return Err(invalid(format!("Unrecognized strategy option {{{unknown}}} passed to SimpleStrategy for keyspace {name}")));
                        }
                        Strategy::Simple { replication_factor: factor(&rf.1)? }
                    }
                    "NetworkTopologyStrategy" => {
                        let mut data_centers = Vec::new();
                        for (dc, rf) in entries.iter().filter(|(k, _)| k != "class") {
                            data_centers.push((dc.clone(), factor(rf)?));
                        }
                        Strategy::NetworkTopology { data_centers }
                    }
                    other => return Err(invalid(format!("Unable to find replication strategy class '{other}'; use SimpleStrategy or NetworkTopologyStrategy"))),
                });
            }
            ("durable_writes", OptionValue::Literal(literal)) => {
                durable_writes = match literal_text(literal).to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(invalid(format!(
                            "durable_writes must be true or false, not {other}"
                        )))
                    }
                }
            }
            (other, _) => return Err(invalid(format!("Unknown keyspace property '{other}'"))),
        }
    }
    let strategy = strategy.ok_or_else(|| invalid("Missing mandatory option 'replication'"))?;
    Ok(KeyspaceSchema {
        name: name.to_owned(),
        strategy,
        durable_writes,
    })
}

/// Validates a `CREATE TABLE` and builds its schema.
#[allow(clippy::too_many_arguments)]
pub fn table_from_definition(
    keyspace: &str,
    name: &str,
    id: u128,
    columns: &[ColumnDef],
    partition_key: &[String],
    clustering: &[String],
    clustering_order: &[(String, bool)],
    options: &[(String, OptionValue)],
    create_cql: &str,
) -> Result<TableSchema, CqlError> {
    if partition_key.is_empty() {
        return Err(invalid(format!(
            "No PRIMARY KEY specified for table '{name}' (exactly one required)"
        )));
    }
    let find = |column: &str| {
        columns.iter().find(|c| c.name == column).ok_or_else(|| {
            invalid(format!(
                "Unknown definition {column} referenced in PRIMARY KEY"
            ))
        })
    };
    let mut seen = std::collections::HashSet::new();
    for column in columns {
        if !seen.insert(column.name.as_str()) {
            return Err(invalid(format!(
                "Duplicate column {} declaration for table {keyspace}.{name}",
                column.name
            )));
        }
    }
    let mut out = Vec::new();
    for (position, column) in partition_key.iter().enumerate() {
        let def = find(column)?;
        if def.ty.is_multi_cell() {
            return Err(invalid(format!(
                "Invalid non-frozen {} type {} for PRIMARY KEY component {column}",
                def.ty.multi_cell_kind(),
                def.ty
            )));
        }
        out.push(ColumnSchema {
            name: column.clone(),
            ty: def.ty.clone(),
            kind: ColumnKind::PartitionKey,
            position: position as i32,
            id: 0,
            descending: false,
        });
    }
    for (position, column) in clustering.iter().enumerate() {
        let def = find(column)?;
        if def.ty.is_multi_cell() {
            return Err(invalid(format!(
                "Invalid non-frozen {} type {} for PRIMARY KEY component {column}",
                def.ty.multi_cell_kind(),
                def.ty
            )));
        }
        if partition_key.contains(column) {
            return Err(invalid(format!(
                "{column} appears twice in the PRIMARY KEY"
            )));
        }
        let descending = match clustering_order.get(position) {
            Some((ordered, descending)) if ordered == column => *descending,
            Some(_) => return Err(invalid("The order of columns in the CLUSTERING ORDER directive must match that of the clustering columns")),
            None => false,
        };
        out.push(ColumnSchema {
            name: column.clone(),
            ty: def.ty.clone(),
            kind: ColumnKind::Clustering,
            position: position as i32,
            id: 0,
            descending,
        });
    }
    if clustering_order.len() > clustering.len() {
        return Err(invalid(
            "Only clustering key columns can be defined in CLUSTERING ORDER directive",
        ));
    }
    let mut others: Vec<&ColumnDef> = columns
        .iter()
        .filter(|c| !partition_key.contains(&c.name) && !clustering.contains(&c.name))
        .collect();
    others.sort_by(|a, b| a.name.cmp(&b.name));
    let next_column_id = others.len() as u32 + 1;
    for (i, def) in others.into_iter().enumerate() {
        if def.is_static && clustering.is_empty() {
            return Err(invalid(format!(
                "Static column {} cannot be added to a table without clustering columns",
                def.name
            )));
        }
        let kind = if def.is_static {
            ColumnKind::Static
        } else {
            ColumnKind::Regular
        };
        out.push(ColumnSchema {
            name: def.name.clone(),
            ty: def.ty.clone(),
            kind,
            position: -1,
            id: i as u32 + 1,
            descending: false,
        });
    }
    for column in columns.iter().filter(|c| c.is_static) {
        if partition_key.contains(&column.name) || clustering.contains(&column.name) {
            return Err(invalid(format!(
                "Static column {} cannot be part of the PRIMARY KEY",
                column.name
            )));
        }
    }
    let mut table = TableSchema {
        keyspace: keyspace.to_owned(),
        name: name.to_owned(),
        id,
        columns: out,
        gc_grace_seconds: 864_000,
        default_time_to_live: 0,
        comment: String::new(),
        compaction: vec![
            (
                "class".into(),
                "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy".into(),
            ),
            ("max_threshold".into(), "32".into()),
            ("min_threshold".into(), "4".into()),
        ],
        compression: default_compression(),
        create_cql: create_cql.to_owned(),
        next_column_id,
    };
    apply_table_options(&mut table, options)?;
    Ok(table)
}

/// Sets a table's `WITH` options (from `CREATE TABLE` or `ALTER TABLE`).
fn apply_table_options(
    table: &mut TableSchema,
    options: &[(String, OptionValue)],
) -> Result<(), CqlError> {
    for (key, value) in options {
        let number = |value: &OptionValue| match value {
            OptionValue::Literal(l) => literal_text(l)
                .parse::<i64>()
                .map_err(|_| invalid(format!("{key} must be an integer"))),
            OptionValue::Map(_) => Err(invalid(format!("{key} must be an integer"))),
        };
        let fraction = |value: &OptionValue| match value {
            OptionValue::Literal(l) => literal_text(l)
                .parse::<f64>()
                .map_err(|_| invalid(format!("{key} must be a number"))),
            OptionValue::Map(_) => Err(invalid(format!("{key} must be a number"))),
        };
        let within = |n: i64, min: i64, max: i64| {
            if n < min {
                Err(invalid(format!(
                    "{key} must be greater than or equal to {min} (got {n})"
                )))
            } else if n > max {
                Err(invalid(format!(
                    "{key} must be less than or equal to {max} (got {n})"
                )))
            } else {
                Ok(n)
            }
        };
        match key.as_str() {
            "gc_grace_seconds" => {
                table.gc_grace_seconds = within(number(value)?, 0, i64::from(i32::MAX))?
            }
            "default_time_to_live" => {
                table.default_time_to_live = within(number(value)?, 0, TTL_MAX_S)?
            }
            "bloom_filter_fp_chance" => {
                let chance = fraction(value)?;
                if !(chance > BLOOM_FILTER_FP_CHANCE_MIN && chance <= 1.0) {
                    return Err(invalid(format!(
                        "bloom_filter_fp_chance must be larger than {BLOOM_FILTER_FP_CHANCE_MIN:E} and less than or equal to 1.0 (got {chance})"
                    )));
                }
            }
            "crc_check_chance" => {
                let chance = fraction(value)?;
                if !(0.0..=1.0).contains(&chance) {
                    return Err(invalid(format!(
                        "crc_check_chance should be between 0.0 and 1.0 (got {chance})"
                    )));
                }
            }
            "min_index_interval" | "max_index_interval" | "memtable_flush_period_in_ms" => {
                within(number(value)?, 0, i64::from(i32::MAX))?;
            }
            "comment" => {
                if let OptionValue::Literal(l) = value {
                    table.comment = literal_text(l);
                }
            }
            "compaction" => {
                let OptionValue::Map(entries) = value else {
                    return Err(invalid("compaction must be a map"));
                };
                let class = entries
                    .iter()
                    .find(|(k, _)| k == "class")
                    .map(|(_, v)| v.rsplit('.').next().unwrap_or_default())
                    .unwrap_or_default();
                if ![
                    "SizeTieredCompactionStrategy",
                    "LeveledCompactionStrategy",
                    "TimeWindowCompactionStrategy",
                ]
                .contains(&class)
                {
                    return Err(invalid(format!(
                        "Unable to find compaction strategy class '{class}'"
                    )));
                }
                check_compaction_thresholds(entries)?;
                let mut entries = entries.clone();
                for (k, v) in entries.iter_mut() {
                    if k == "class" && !v.contains('.') {
                        *v = format!("org.apache.cassandra.db.compaction.{v}");
                    }
                }
                entries.sort();
                table.compaction = entries;
            }
            "compression" => {
                let OptionValue::Map(entries) = value else {
                    return Err(invalid("compression must be a map"));
                };
                table.compression = compression_options(entries)?;
            }
            "caching"
            | "speculative_retry"
            | "additional_write_policy"
            | "read_repair"
            | "cdc"
            | "extensions" => {}
            other => return Err(invalid(format!("Unknown property '{other}'"))),
        }
    }
    Ok(())
}

/// The `compression` Cassandra stores when a table names none.
pub fn default_compression() -> Vec<(String, String)> {
    vec![
        ("chunk_length_in_kb".into(), "16".into()),
        (
            "class".into(),
            "org.apache.cassandra.io.compress.LZ4Compressor".into(),
        ),
    ]
}

/// Checks `compression` sub-options as Cassandra does and normalizes them
/// as it stores them: `{'enabled': 'false'}` alone when disabled (also
/// for `{}`), the class
/// fully qualified, `chunk_length_in_kb` 16 unless given.
fn compression_options(entries: &[(String, String)]) -> Result<Vec<(String, String)>, CqlError> {
    const KNOWN: [&str; 6] = [
        "class",
        "chunk_length_in_kb",
        "chunk_length_kb",
        "enabled",
        "crc_check_chance",
        "min_compress_ratio",
    ];
    const CLASSES: [&str; 5] = [
        "LZ4Compressor",
        "SnappyCompressor",
        "DeflateCompressor",
        "ZstdCompressor",
        "NoopCompressor",
    ];
    let unknown: Vec<&str> = entries
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "Unknown compression options [{}]",
            unknown.join(", ")
        )));
    }
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if entries.is_empty() {
        // `compression = {}` turns it off, as in Cassandra.
        return Ok(vec![("enabled".into(), "false".into())]);
    }
    match get("enabled").map(str::to_ascii_lowercase).as_deref() {
        Some("false") => return Ok(vec![("enabled".into(), "false".into())]),
        Some("true") | None => {}
        Some(other) => {
            return Err(invalid(format!(
                "Invalid value {other} for 'enabled' compression sub-option: use true or false"
            )))
        }
    }
    let Some(class) = get("class") else {
        return Err(invalid(
            "Missing sub-option 'class' for the 'compression' option.",
        ));
    };
    let short = class.rsplit('.').next().unwrap_or_default();
    if !CLASSES.contains(&short) {
        return Err(invalid(format!(
            "Could not create Compression for type {class}"
        )));
    }
    let chunk = get("chunk_length_in_kb")
        .or(get("chunk_length_kb"))
        .unwrap_or("16");
    match chunk.parse::<u32>() {
        Ok(kb) if kb > 0 && kb.is_power_of_two() => {}
        _ => {
            return Err(invalid(format!(
                "Invalid 'chunk_length_in_kb' value {chunk}: it must be a positive power of 2"
            )))
        }
    }
    let mut out = vec![
        ("chunk_length_in_kb".to_owned(), chunk.to_owned()),
        (
            "class".to_owned(),
            format!("org.apache.cassandra.io.compress.{short}"),
        ),
    ];
    for key in ["crc_check_chance", "min_compress_ratio"] {
        if let Some(value) = get(key) {
            if value.parse::<f64>().is_err() {
                return Err(invalid(format!(
                    "Invalid '{key}' value {value}: not a number"
                )));
            }
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// The compaction thresholds Cassandra accepts: integers, `min_threshold`
/// at least 2, `max_threshold` not below it.
fn check_compaction_thresholds(entries: &[(String, String)]) -> Result<(), CqlError> {
    let threshold = |key: &str, default: i64| -> Result<i64, CqlError> {
        match entries.iter().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<i64>()
                .map_err(|_| invalid(format!("{key} must be an integer, not {v:?}"))),
        }
    };
    let min = threshold("min_threshold", 4)?;
    let max = threshold("max_threshold", 32)?;
    if min <= 0 || max <= 0 {
        return Err(invalid("Disabling compaction by setting compaction thresholds to 0 has been removed, set the compaction option 'enabled' to false instead."));
    }
    if min < 2 {
        return Err(invalid(format!(
            "Min compaction threshold cannot be less than 2 (got {min})"
        )));
    }
    if max < min {
        return Err(invalid(format!(
            "Max compaction threshold ({max}) cannot be less than min compaction threshold ({min})"
        )));
    }
    Ok(())
}

/// A table's column ids as stored: `[u32 next id]` then per regular or
/// static column `[u32 id][u16 name length][name]`.
fn encode_column_ids(table: &TableSchema) -> Vec<u8> {
    let mut out = table.next_column_id.to_be_bytes().to_vec();
    for column in table
        .columns
        .iter()
        .filter(|c| matches!(c.kind, ColumnKind::Regular | ColumnKind::Static))
    {
        out.extend_from_slice(&column.id.to_be_bytes());
        out.extend_from_slice(&(column.name.len() as u16).to_be_bytes());
        out.extend_from_slice(column.name.as_bytes());
    }
    out
}

/// Gives a table loaded from its `CREATE` text the column ids it had.
fn apply_column_ids(table: &mut TableSchema, stored: &[u8]) -> Result<(), CqlError> {
    let bad = || {
        CqlError::Server(format!(
            "stored column ids of table {}.{} are damaged",
            table.keyspace, table.name
        ))
    };
    let take = |at: &mut usize, n: usize| -> Result<&[u8], CqlError> {
        let part = stored.get(*at..*at + n).ok_or_else(bad)?;
        *at += n;
        Ok(part)
    };
    let mut at = 0;
    let next = u32::from_be_bytes(take(&mut at, 4)?.try_into().map_err(|_| bad())?);
    let mut ids = std::collections::HashMap::new();
    while at < stored.len() {
        let id = u32::from_be_bytes(take(&mut at, 4)?.try_into().map_err(|_| bad())?);
        let len = u16::from_be_bytes(take(&mut at, 2)?.try_into().map_err(|_| bad())?);
        let name = String::from_utf8_lossy(take(&mut at, usize::from(len))?).into_owned();
        ids.insert(name, id);
    }
    for column in table
        .columns
        .iter_mut()
        .filter(|c| matches!(c.kind, ColumnKind::Regular | ColumnKind::Static))
    {
        column.id = *ids.get(&column.name).ok_or_else(|| {
            CqlError::Server(format!(
                "stored schema of table {}.{} has no id for column {}",
                table.keyspace, table.name, column.name
            ))
        })?;
        if column.id >= next {
            return Err(bad());
        }
    }
    table.next_column_id = next;
    Ok(())
}

/// Longest keyspace or table name (Cassandra's `NAME_LENGTH`): names
/// become directory and file names.
pub const NAME_LENGTH_MAX: usize = 48;

/// Refuses a keyspace or table name Cassandra refuses: empty, longer
/// than [`NAME_LENGTH_MAX`], or with characters other than letters, digits
/// and `_`. (An empty table name used to overwrite its keyspace's stored
/// definition.)
pub fn check_name(kind: &str, name: &str) -> Result<(), CqlError> {
    let valid = !name.is_empty()
        && name.chars().count() <= NAME_LENGTH_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    Err(CqlError::Invalid(format!(
        "{kind} name must not be empty, more than {NAME_LENGTH_MAX} characters long, \
         or contain non-alphanumeric-underscore characters (got \"{name}\")"
    )))
}

/// Longest user type name: it travels as a `[string]` (a 16-bit length)
/// in SCHEMA_CHANGE events.
pub const TYPE_NAME_BYTES_MAX: usize = u16::MAX as usize;

/// Refuses a user type name Cassandra refuses: only the empty one (type
/// names are no file names, so `"test.field@#$%@%#!"` is fine, as the
/// Python driver's tests use it); and one too long for the protocol.
pub fn check_type_name(name: &str) -> Result<(), CqlError> {
    if name.is_empty() {
        return Err(CqlError::Invalid("Type name must not be empty".into()));
    }
    if name.len() > TYPE_NAME_BYTES_MAX {
        return Err(CqlError::Invalid(format!(
            "Type name is {} bytes long; the limit is {TYPE_NAME_BYTES_MAX}",
            name.len()
        )));
    }
    Ok(())
}

fn schema_key(keyspace: &str) -> PartitionKey {
    PartitionKey::new(
        replication::murmur3::token_of(keyspace.as_bytes()),
        keyspace.as_bytes().to_vec(),
    )
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Catalog {
    /// Rebuilds the catalog from the schema table (creating it on first start).
    pub fn load(engine: &Engine) -> Result<Catalog, CqlError> {
        if !engine.has_table(SCHEMA_TABLE) {
            engine
                .create_table(SCHEMA_TABLE, TableOptions::default())
                .map_err(|e| CqlError::Server(format!("cannot create the schema table: {e}")))?;
        }
        let mut catalog = Catalog::default();
        let page = engine
            .scan(SCHEMA_TABLE, &TokenRange::all(), None, usize::MAX)
            .map_err(|e| CqlError::Server(format!("cannot read the schema: {e}")))?;
        for partition in page.partitions {
            let mut rows = partition.rows;
            rows.sort_by(|a, b| a.clustering.cmp(&b.clustering)); // the keyspace row (empty clustering) first
                                                                  // Types may use types stored after them: those wait for a later round.
            let mut waiting_types = Vec::new();
            for row in rows {
                let cell = |column: u32| {
                    row.cells
                        .iter()
                        .find(|c| c.column == column)
                        .and_then(|c| c.value_bytes())
                        .cloned()
                };
                let Some(cql) = cell(CELL_CQL) else { continue };
                let text = String::from_utf8_lossy(&cql).into_owned();
                let statement = parse(&text).map_err(|e| {
                    CqlError::Server(format!("stored schema does not parse ({e}): {text}"))
                })?;
                let id = cell(CELL_ID)
                    .and_then(|b| <[u8; 16]>::try_from(b.as_ref()).ok())
                    .map(u128::from_be_bytes);
                let ids = cell(CELL_COLUMN_IDS);
                if matches!(statement, Statement::CreateType { .. }) {
                    waiting_types.push((statement, text));
                    continue;
                }
                if !waiting_types.is_empty() {
                    catalog.apply_types(std::mem::take(&mut waiting_types))?;
                }
                catalog.apply_definition(&statement, id, ids.as_deref(), &text)?;
            }
            if !waiting_types.is_empty() {
                catalog.apply_types(waiting_types)?;
            }
        }
        catalog.check_loaded()?;
        catalog.refresh_version();
        Ok(catalog)
    }

    /// Every stored table and type belongs to a stored keyspace: a
    /// definition that lost its keyspace stops start-up, naming both,
    /// instead of leaving the keyspace out silently.
    fn check_loaded(&self) -> Result<(), CqlError> {
        let orphans = self
            .tables
            .keys()
            .map(|(ks, name)| ("table", ks, name))
            .chain(self.types.keys().map(|(ks, name)| ("type", ks, name)));
        for (kind, keyspace, name) in orphans {
            if !self.keyspaces.contains_key(keyspace) {
                return Err(CqlError::Server(format!(
                    "the stored schema has {kind} {keyspace}.\"{name}\" but no definition of keyspace \
                     {keyspace}; the schema table ({SCHEMA_TABLE:?}) is damaged: start-up stops rather \
                     than load the schema without that keyspace"
                )));
            }
        }
        Ok(())
    }

    fn refresh_version(&mut self) {
        let mut text = String::new();
        for table in self.tables.values() {
            text.push_str(&table.create_cql);
            text.push_str(&table.id_string());
        }
        for keyspace in self.keyspaces.values() {
            text.push_str(&format!("{keyspace:?}"));
        }
        for udt in self.types.values() {
            text.push_str(&format!("{udt:?}"));
        }
        // A name-based (version 3) UUID layout.
        let id = u128::from_be_bytes(crate::results::fingerprint(text.as_bytes()))
            & !(0xf000u128 << 64)
            | (0x3000u128 << 64);
        self.version = id & !(0xc000u128 << 48) | (0x8000u128 << 48);
    }

    /// Adds stored types, each once the types it uses are known.
    fn apply_types(&mut self, mut waiting: Vec<(Statement, String)>) -> Result<(), CqlError> {
        while !waiting.is_empty() {
            let before = waiting.len();
            let mut last_error = None;
            let mut still = Vec::new();
            for (statement, text) in waiting {
                match self.apply_definition(&statement, None, None, &text) {
                    Ok(()) => {}
                    Err(error) => {
                        last_error = Some(error);
                        still.push((statement, text));
                    }
                }
            }
            if still.len() == before {
                return Err(last_error
                    .unwrap_or_else(|| CqlError::Server("stored types do not resolve".into())));
            }
            waiting = still;
        }
        Ok(())
    }

    /// Adds a keyspace or table from its `CREATE` statement (no persistence).
    fn apply_definition(
        &mut self,
        statement: &Statement,
        id: Option<u128>,
        column_ids: Option<&[u8]>,
        text: &str,
    ) -> Result<(), CqlError> {
        match statement {
            Statement::CreateKeyspace { name, options, .. } => {
                let keyspace = keyspace_from_options(name, options)?;
                self.keyspaces.insert(name.clone(), keyspace);
            }
            Statement::CreateType { name, fields, .. } => {
                let keyspace = name
                    .keyspace
                    .clone()
                    .ok_or_else(|| CqlError::Server("stored type without keyspace".into()))?;
                let udt = self.user_type(&keyspace, &name.name, fields)?;
                self.types
                    .insert((keyspace, name.name.clone()), Arc::new(udt));
            }
            Statement::CreateTable {
                name,
                columns,
                partition_key,
                clustering,
                clustering_order,
                options,
                ..
            } => {
                let keyspace = name
                    .keyspace
                    .clone()
                    .ok_or_else(|| CqlError::Server("stored table without keyspace".into()))?;
                let columns = &self.resolve_columns(&keyspace, columns)?;
                let id = id.ok_or_else(|| {
                    CqlError::Server(format!("stored table {keyspace}.{} has no id", name.name))
                })?;
                let mut table = table_from_definition(
                    &keyspace,
                    &name.name,
                    id,
                    columns,
                    partition_key,
                    clustering,
                    clustering_order,
                    options,
                    text,
                )?;
                if let Some(stored) = column_ids {
                    apply_column_ids(&mut table, stored)?;
                }
                self.tables
                    .insert((keyspace, name.name.clone()), Arc::new(table));
            }
            _ => {
                return Err(CqlError::Server(format!(
                    "unexpected stored schema statement: {text}"
                )))
            }
        }
        Ok(())
    }

    pub fn keyspace(&self, name: &str) -> Option<&KeyspaceSchema> {
        self.keyspaces.get(name)
    }

    pub fn table(&self, keyspace: &str, name: &str) -> Option<Arc<TableSchema>> {
        self.tables
            .get(&(keyspace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Creates a keyspace; `Ok(false)` if it existed and `if_not_exists` was given.
    pub fn create_keyspace(
        &mut self,
        engine: &Engine,
        name: &str,
        if_not_exists: bool,
        options: &[(String, OptionValue)],
    ) -> Result<bool, CqlError> {
        check_name("Keyspace", name)?;
        if SYSTEM_KEYSPACES.contains(&name) || self.keyspaces.contains_key(name) {
            if if_not_exists {
                return Ok(false);
            }
            return Err(CqlError::AlreadyExists {
                message: format!("Keyspace {name} already exists"),
                keyspace: name.to_owned(),
                table: String::new(),
            });
        }
        let keyspace = keyspace_from_options(name, options)?;
        write_keyspace_row(engine, &keyspace)?;
        self.keyspaces.insert(name.to_owned(), keyspace);
        self.refresh_version();
        Ok(true)
    }

    pub fn alter_keyspace(
        &mut self,
        engine: &Engine,
        name: &str,
        options: &[(String, OptionValue)],
    ) -> Result<(), CqlError> {
        if SYSTEM_KEYSPACES.contains(&name) {
            return Err(CqlError::Unauthorized(format!(
                "Cannot alter system keyspace {name}"
            )));
        }
        let Some(previous) = self.keyspaces.get(name) else {
            return Err(invalid(format!("Keyspace '{name}' does not exist")));
        };
        let keyspace = keyspace_with_options(name, options, Some(previous))?;
        write_keyspace_row(engine, &keyspace)?;
        self.keyspaces.insert(name.to_owned(), keyspace);
        self.refresh_version();
        Ok(())
    }

    /// Drops a keyspace and its tables; `Ok(false)` if absent and `if_exists`.
    pub fn drop_keyspace(
        &mut self,
        engine: &Engine,
        name: &str,
        if_exists: bool,
    ) -> Result<bool, CqlError> {
        if SYSTEM_KEYSPACES.contains(&name) {
            return Err(CqlError::Unauthorized(format!(
                "Cannot drop system keyspace {name}"
            )));
        }
        if !self.keyspaces.contains_key(name) {
            if if_exists {
                return Ok(false);
            }
            return Err(invalid(format!("Keyspace '{name}' doesn't exist")));
        }
        let tables: Vec<(String, String)> = self
            .tables
            .keys()
            .filter(|(ks, _)| ks == name)
            .cloned()
            .collect();
        for key in tables {
            if let Some(table) = self.tables.remove(&key) {
                let _ = engine.drop_table(table.table_id());
            }
        }
        self.types.retain(|(ks, _), _| ks != name);
        let update = PartitionUpdate {
            partition_deletion: Some(DeletionTime::new(now_micros(), now_micros() / 1_000_000)),
            ..Default::default()
        };
        store_schema_update(engine, name, update)?;
        self.keyspaces.remove(name);
        self.refresh_version();
        Ok(true)
    }

    /// Creates a table; `Ok(None)` if it existed and `if_not_exists` was given.
    pub fn create_table(
        &mut self,
        engine: &Engine,
        statement: &Statement,
        current_keyspace: Option<&str>,
    ) -> Result<Option<Arc<TableSchema>>, CqlError> {
        let Statement::CreateTable {
            name,
            if_not_exists,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
        } = statement
        else {
            return Err(CqlError::Server("not a CREATE TABLE".into()));
        };
        check_name("Table", &name.name)?;
        let keyspace = self.keyspace_for_new(name, current_keyspace, "tables")?;
        if self
            .tables
            .contains_key(&(keyspace.clone(), name.name.clone()))
        {
            if *if_not_exists {
                return Ok(None);
            }
            return Err(CqlError::AlreadyExists {
                message: format!("Object {keyspace}.{} already exists", name.name),
                keyspace: keyspace.clone(),
                table: name.name.clone(),
            });
        }
        let columns = &self.resolve_columns(&keyspace, columns)?;
        let id: u128 = rand_uuid_v4();
        let probe = table_from_definition(
            &keyspace,
            &name.name,
            id,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
            "",
        )?;
        let canonical = canonical_table_cql(
            &probe,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
        );
        let table = TableSchema {
            create_cql: canonical.clone(),
            ..probe
        };
        engine
            .create_table(table.table_id(), table.engine_options())
            .map_err(|e| CqlError::Server(format!("cannot create table storage: {e}")))?;
        write_table_row(engine, &table)?;
        let table = Arc::new(table);
        self.tables
            .insert((keyspace, name.name.clone()), table.clone());
        self.refresh_version();
        Ok(Some(table))
    }

    /// The keyspace a new table or type named `name` goes into: an existing
    /// keyspace that is not a system one.
    fn keyspace_for_new(
        &self,
        name: &QualifiedName,
        current_keyspace: Option<&str>,
        kind: &str,
    ) -> Result<String, CqlError> {
        let keyspace = resolve_keyspace(name, current_keyspace)?;
        if SYSTEM_KEYSPACES.contains(&keyspace.as_str()) {
            return Err(CqlError::Unauthorized(format!(
                "Cannot create {kind} in system keyspace {keyspace}"
            )));
        }
        if !self.keyspaces.contains_key(&keyspace) {
            return Err(invalid(format!("Keyspace '{keyspace}' doesn't exist")));
        }
        Ok(keyspace)
    }

    /// `ty` with every user-defined type name resolved in `keyspace`.
    pub fn resolve_type(&self, keyspace: &str, ty: &CqlType) -> Result<CqlType, CqlError> {
        let resolve = |inner: &CqlType| self.resolve_type(keyspace, inner).map(Box::new);
        Ok(match ty {
            CqlType::UserTypeName(name) => {
                match self.types.get(&(keyspace.to_owned(), name.clone())) {
                    Some(udt) => CqlType::UserType(udt.clone()),
                    None => return Err(invalid(format!("Unknown type {keyspace}.{name}"))),
                }
            }
            CqlType::List(e) => CqlType::List(resolve(e)?),
            CqlType::Set(e) => CqlType::Set(resolve(e)?),
            CqlType::Frozen(e) => CqlType::Frozen(resolve(e)?),
            CqlType::Map(k, v) => CqlType::Map(resolve(k)?, resolve(v)?),
            CqlType::Tuple(items) => CqlType::Tuple(
                items
                    .iter()
                    .map(|i| self.resolve_type(keyspace, i))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Column definitions with their types resolved; a user-defined type
    /// must be frozen (non-frozen UDTs are not built yet).
    fn resolve_columns(
        &self,
        keyspace: &str,
        columns: &[ColumnDef],
    ) -> Result<Vec<ColumnDef>, CqlError> {
        columns
            .iter()
            .map(|column| {
                let ty = self.resolve_type(keyspace, &column.ty)?;
                check_column_type(&ty, &column.name)?;
                Ok(ColumnDef {
                    ty,
                    ..column.clone()
                })
            })
            .collect()
    }

    fn user_type(
        &self,
        keyspace: &str,
        name: &str,
        fields: &[(String, CqlType)],
    ) -> Result<UserType, CqlError> {
        if fields.len() > TYPE_FIELDS_MAX {
            return Err(too_many_fields(name, fields.len()));
        }
        let mut seen = std::collections::HashSet::new();
        let mut resolved = Vec::with_capacity(fields.len());
        for (field, ty) in fields {
            if !seen.insert(field.as_str()) {
                return Err(invalid(format!(
                    "Duplicate field name {field} in type {name}"
                )));
            }
            let ty = self.resolve_type(keyspace, ty)?;
            check_udts_frozen(&ty, field)?;
            if matches!(ty, CqlType::Counter) {
                return Err(invalid("A user type cannot contain counters"));
            }
            resolved.push((field.clone(), ty));
        }
        Ok(UserType {
            keyspace: keyspace.to_owned(),
            name: name.to_owned(),
            fields: resolved,
        })
    }

    /// Creates a user-defined type; `Ok(None)` if it existed and `if_not_exists`.
    pub fn create_type(
        &mut self,
        engine: &Engine,
        name: &QualifiedName,
        if_not_exists: bool,
        fields: &[(String, CqlType)],
        current_keyspace: Option<&str>,
    ) -> Result<Option<Arc<UserType>>, CqlError> {
        check_type_name(&name.name)?;
        let keyspace = self.keyspace_for_new(name, current_keyspace, "types")?;
        if self
            .types
            .contains_key(&(keyspace.clone(), name.name.clone()))
        {
            if if_not_exists {
                return Ok(None);
            }
            return Err(invalid(format!(
                "A user type with name '{}' already exists",
                name.name
            )));
        }
        let udt = Arc::new(self.user_type(&keyspace, &name.name, fields)?);
        write_type_row(engine, &udt)?;
        self.types
            .insert((keyspace, name.name.clone()), udt.clone());
        self.refresh_version();
        Ok(Some(udt))
    }

    /// Drops a user-defined type that nothing uses; `Ok(false)` if absent and `if_exists`.
    pub fn drop_type(
        &mut self,
        engine: &Engine,
        name: &QualifiedName,
        if_exists: bool,
        current_keyspace: Option<&str>,
    ) -> Result<bool, CqlError> {
        let keyspace = resolve_keyspace(name, current_keyspace)?;
        let key = (keyspace.clone(), name.name.clone());
        let Some(udt) = self.types.get(&key).cloned() else {
            if if_exists {
                return Ok(false);
            }
            return Err(invalid(format!(
                "Type '{keyspace}.{}' doesn't exist",
                name.name
            )));
        };
        let uses = |ty: &CqlType| {
            let mut found = false;
            ty.visit(&mut |t| found |= matches!(t, CqlType::UserType(u) if **u == *udt));
            found
        };
        for ((ks, table_name), table) in &self.tables {
            if ks == &keyspace && table.columns.iter().any(|c| uses(&c.ty)) {
                return Err(invalid(format!(
                    "Cannot drop user type {keyspace}.{} as it is still used by table {keyspace}.{table_name}",
                    name.name
                )));
            }
        }
        for ((ks, other), other_type) in &self.types {
            if ks == &keyspace
                && other != &name.name
                && other_type.fields.iter().any(|(_, t)| uses(t))
            {
                return Err(invalid(format!(
                    "Cannot drop user type {keyspace}.{} as it is still used by user type {other}",
                    name.name
                )));
            }
        }
        delete_schema_row(engine, &keyspace, type_clustering(&name.name))?;
        self.types.remove(&key);
        self.refresh_version();
        Ok(true)
    }

    /// Changes a table's columns or options; `Ok(None)` if it is absent
    /// and `if_exists` was given.
    pub fn alter_table(
        &mut self,
        engine: &Engine,
        name: &QualifiedName,
        if_exists: bool,
        change: &AlterTable,
        current_keyspace: Option<&str>,
    ) -> Result<Option<Arc<TableSchema>>, CqlError> {
        let keyspace = resolve_keyspace(name, current_keyspace)?;
        if SYSTEM_KEYSPACES.contains(&keyspace.as_str()) {
            return Err(CqlError::Unauthorized(format!(
                "Cannot alter tables of system keyspace {keyspace}"
            )));
        }
        let key = (keyspace.clone(), name.name.clone());
        let Some(current) = self.tables.get(&key).cloned() else {
            if if_exists {
                return Ok(None);
            }
            return Err(invalid(format!(
                "Table '{keyspace}.{}' doesn't exist",
                name.name
            )));
        };
        let mut table = (*current).clone();
        match change {
            AlterTable::Add {
                if_not_exists,
                columns,
            } => {
                for def in columns {
                    if table.column(&def.name).is_some() {
                        if *if_not_exists {
                            continue;
                        }
                        return Err(invalid(format!(
                            "Column with name '{}' already exists",
                            def.name
                        )));
                    }
                    let ty = self.resolve_type(&keyspace, &def.ty)?;
                    check_column_type(&ty, &def.name)?;
                    if matches!(ty, CqlType::Counter) {
                        return Err(CqlError::not_yet_supported("counters"));
                    }
                    if def.is_static && table.clustering().next().is_none() {
                        return Err(invalid(format!(
                            "Static column {} cannot be added to a table without clustering columns",
                            def.name
                        )));
                    }
                    table.columns.push(ColumnSchema {
                        name: def.name.clone(),
                        ty,
                        kind: if def.is_static {
                            ColumnKind::Static
                        } else {
                            ColumnKind::Regular
                        },
                        position: -1,
                        id: table.next_column_id,
                        descending: false,
                    });
                    table.next_column_id += 1;
                }
            }
            AlterTable::Drop { if_exists, columns } => {
                for column in columns {
                    let Some(found) = table.column(column) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(invalid(format!(
                            "Column {column} was not found in table {}",
                            table.name
                        )));
                    };
                    if matches!(
                        found.kind,
                        ColumnKind::PartitionKey | ColumnKind::Clustering
                    ) {
                        return Err(invalid(format!("Cannot drop PRIMARY KEY column {column}")));
                    }
                    table.columns.retain(|c| c.name != *column);
                }
            }
            AlterTable::Rename { if_exists, pairs } => {
                for (from, to) in pairs {
                    let Some(found) = table.column(from) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(invalid(format!(
                            "Column {from} was not found in table {}",
                            table.name
                        )));
                    };
                    if !matches!(
                        found.kind,
                        ColumnKind::PartitionKey | ColumnKind::Clustering
                    ) {
                        return Err(invalid(format!(
                            "Cannot rename non PRIMARY KEY column {from}"
                        )));
                    }
                    if table.column(to).is_some() {
                        return Err(invalid(format!(
                            "Cannot rename column {from} to {to} in table {}; another column with that name already exists",
                            table.name
                        )));
                    }
                    for column in table.columns.iter_mut().filter(|c| c.name == *from) {
                        column.name = to.clone();
                    }
                }
            }
            AlterTable::With(options) => {
                apply_table_options(&mut table, options)?;
                engine
                    .alter_table(table.table_id(), table.engine_options())
                    .map_err(|e| CqlError::Server(format!("cannot change table storage: {e}")))?;
            }
        }
        let (key_columns, others): (Vec<ColumnSchema>, Vec<ColumnSchema>) = table
            .columns
            .into_iter()
            .partition(|c| matches!(c.kind, ColumnKind::PartitionKey | ColumnKind::Clustering));
        let mut others = others;
        others.sort_by(|a, b| a.name.cmp(&b.name));
        table.columns = key_columns.into_iter().chain(others).collect();
        table.create_cql = table_cql(&table);
        write_table_row(engine, &table)?;
        let table = Arc::new(table);
        self.tables.insert(key, table.clone());
        self.refresh_version();
        Ok(Some(table))
    }

    /// Adds or renames fields of a type; `Ok(None)` if it is absent and
    /// `if_exists` was given. Tables and types using it see the change.
    pub fn alter_type(
        &mut self,
        engine: &Engine,
        name: &QualifiedName,
        if_exists: bool,
        change: &AlterType,
        current_keyspace: Option<&str>,
    ) -> Result<Option<Arc<UserType>>, CqlError> {
        let keyspace = resolve_keyspace(name, current_keyspace)?;
        let key = (keyspace.clone(), name.name.clone());
        let Some(current) = self.types.get(&key).cloned() else {
            if if_exists {
                return Ok(None);
            }
            return Err(invalid(format!(
                "Type '{keyspace}.{}' doesn't exist",
                name.name
            )));
        };
        let mut udt = (*current).clone();
        match change {
            AlterType::Add {
                if_not_exists,
                field,
                ty,
            } => {
                if udt.fields.iter().any(|(f, _)| f == field) {
                    if *if_not_exists {
                        return Ok(Some(current));
                    }
                    return Err(invalid(format!(
                        "Cannot add new field {field} to type {}: a field with name {field} already exists",
                        udt.name
                    )));
                }
                let ty = self.resolve_type(&keyspace, ty)?;
                check_udts_frozen(&ty, field)?;
                if matches!(&ty, CqlType::UserType(u) if u.name == udt.name) {
                    return Err(invalid(format!("Type {} cannot refer to itself", udt.name)));
                }
                if udt.fields.len() >= TYPE_FIELDS_MAX {
                    return Err(too_many_fields(&udt.name, udt.fields.len() + 1));
                }
                // A non-frozen column of this type stores each field in a
                // cell of its own: a field there cannot be a non-frozen
                // collection (as CREATE TABLE refuses it).
                if ty.is_multi_cell() {
                    let used_unfrozen = self.tables.values().find_map(|table| {
                        table
                            .columns
                            .iter()
                            .find(|c| {
                                matches!(&c.ty, CqlType::UserType(u)
                                    if u.name == udt.name && u.keyspace == udt.keyspace)
                            })
                            .map(|c| format!("{}.{}.{}", table.keyspace, table.name, c.name))
                    });
                    if let Some(column) = used_unfrozen {
                        return Err(invalid(format!(
                            "Cannot add the non-frozen collection field {field} of type {ty} to {}: \
                             column {column} holds the type non-frozen (use frozen<{ty}>)",
                            udt.name
                        )));
                    }
                }
                udt.fields.push((field.clone(), ty));
            }
            AlterType::Rename { if_exists, pairs } => {
                for (from, to) in pairs {
                    if !udt.fields.iter().any(|(f, _)| f == from) {
                        if *if_exists {
                            continue;
                        }
                        return Err(invalid(format!(
                            "Unknown field {from} in user type {}",
                            udt.name
                        )));
                    }
                    if udt.fields.iter().any(|(f, _)| f == to) {
                        return Err(invalid(format!(
                            "Duplicate field name {to} in type {}",
                            udt.name
                        )));
                    }
                    for (field, _) in udt.fields.iter_mut().filter(|(f, _)| f == from) {
                        field.clone_from(to);
                    }
                }
            }
        }
        write_type_row(engine, &udt)?;
        // Tables and types hold the type resolved: build them again from
        // the stored definitions, which name it.
        *self = Catalog::load(engine)?;
        Ok(self.types.get(&key).cloned())
    }

    /// Drops a table; `Ok(false)` if absent and `if_exists`.
    pub fn drop_table(
        &mut self,
        engine: &Engine,
        name: &QualifiedName,
        if_exists: bool,
        current_keyspace: Option<&str>,
    ) -> Result<bool, CqlError> {
        let keyspace = resolve_keyspace(name, current_keyspace)?;
        let Some(table) = self.tables.remove(&(keyspace.clone(), name.name.clone())) else {
            if if_exists {
                return Ok(false);
            }
            return Err(invalid(format!(
                "Table '{keyspace}.{}' doesn't exist",
                name.name
            )));
        };
        delete_schema_row(
            engine,
            &keyspace,
            Bytes::from(name.name.clone().into_bytes()),
        )?;
        let _ = engine.drop_table(table.table_id());
        self.refresh_version();
        Ok(true)
    }
}

/// The keyspace a name refers to, given the connection's `USE`.
pub fn resolve_keyspace(name: &QualifiedName, current: Option<&str>) -> Result<String, CqlError> {
    match (&name.keyspace, current) {
        (Some(keyspace), _) => Ok(keyspace.clone()),
        (None, Some(current)) => Ok(current.to_owned()),
        (None, None) => Err(invalid("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")),
    }
}

fn rand_uuid_v4() -> u128 {
    let random: u128 = rand::random();
    (random & !(0xf000u128 << 64) | (0x4000u128 << 64)) & !(0xc000u128 << 48) | (0x8000u128 << 48)
}

/// Writes one row of a keyspace's schema partition, every cell with the
/// same timestamp.
fn write_schema_row(
    engine: &Engine,
    keyspace: &str,
    clustering: Bytes,
    cells: Vec<(u32, Vec<u8>)>,
) -> Result<(), CqlError> {
    let timestamp = now_micros();
    let cells = cells
        .into_iter()
        .map(|(column, value)| Cell::live(column, timestamp, value))
        .collect();
    let update = PartitionUpdate {
        rows: vec![Row::new(clustering, cells)],
        ..Default::default()
    };
    store_schema_update(engine, keyspace, update)
}

/// Stores a keyspace's definition (the row with empty clustering).
fn write_keyspace_row(engine: &Engine, keyspace: &KeyspaceSchema) -> Result<(), CqlError> {
    let cql = canonical_keyspace_cql(keyspace);
    write_schema_row(
        engine,
        &keyspace.name,
        Bytes::new(),
        vec![(CELL_CQL, cql.into_bytes())],
    )
}

/// Stores a type's definition.
fn write_type_row(engine: &Engine, udt: &UserType) -> Result<(), CqlError> {
    let cql = canonical_type_cql(udt);
    write_schema_row(
        engine,
        &udt.keyspace,
        type_clustering(&udt.name),
        vec![(CELL_CQL, cql.into_bytes())],
    )
}

/// Stores a table's definition: its `CREATE` text, id and column ids.
fn write_table_row(engine: &Engine, table: &TableSchema) -> Result<(), CqlError> {
    write_schema_row(
        engine,
        &table.keyspace,
        Bytes::from(table.name.clone().into_bytes()),
        vec![
            (CELL_CQL, table.create_cql.clone().into_bytes()),
            (CELL_ID, table.id.to_be_bytes().to_vec()),
            (CELL_COLUMN_IDS, encode_column_ids(table)),
        ],
    )
}

/// Deletes one definition (a table's or a type's row) from its keyspace's
/// schema partition.
fn delete_schema_row(engine: &Engine, keyspace: &str, clustering: Bytes) -> Result<(), CqlError> {
    let row = Row {
        clustering,
        deletion: Some(DeletionTime::new(now_micros(), now_micros() / 1_000_000)),
        cells: vec![],
    };
    let update = PartitionUpdate {
        rows: vec![row],
        ..Default::default()
    };
    store_schema_update(engine, keyspace, update)
}

/// Writes one schema change and flushes the schema table: a schema change
/// (creation or drop) must survive a crash even in periodic sync mode.
fn store_schema_update(
    engine: &Engine,
    keyspace: &str,
    update: PartitionUpdate,
) -> Result<(), CqlError> {
    engine
        .apply(Mutation {
            table: SCHEMA_TABLE,
            key: schema_key(keyspace),
            update,
        })
        .map_err(|e| CqlError::Server(format!("cannot store the schema change: {e}")))?;
    engine
        .flush(SCHEMA_TABLE)
        .map_err(|e| CqlError::Server(format!("cannot persist the schema: {e}")))
}

/// Where a type's definition lives in its keyspace's schema partition:
/// before every table (table rows are keyed by their non-empty name), after
/// the keyspace row (empty), so types load before the tables using them.
fn type_clustering(name: &str) -> Bytes {
    let mut key = vec![0u8];
    key.extend_from_slice(name.as_bytes());
    Bytes::from(key)
}

/// Fields of a user-defined type, at most: the protocol describes a type
/// with a `[short]` count of its fields.
pub const TYPE_FIELDS_MAX: usize = u16::MAX as usize;

fn too_many_fields(name: &str, count: usize) -> CqlError {
    invalid(format!(
        "Type {name} would have {count} fields; a user-defined type has at most {TYPE_FIELDS_MAX} (the protocol counts them in 16 bits)"
    ))
}

/// A column's type: a user-defined type may be non-frozen at the top (one
/// cell per field) when its fields hold no non-frozen collection; inside
/// collections and tuples it must be frozen (as Cassandra requires).
fn check_column_type(ty: &CqlType, column: &str) -> Result<(), CqlError> {
    if let CqlType::UserType(udt) = ty {
        if let Some((field, field_ty)) = udt.fields.iter().find(|(_, t)| t.is_multi_cell()) {
            return Err(invalid(format!(
                "Non-frozen UDTs with nested non-frozen collections are not supported: \
                 field {field} of type {field_ty} in {} (column {column}; use frozen<{field_ty}>)",
                udt.name
            )));
        }
        return Ok(());
    }
    check_udts_frozen(ty, column)
}

/// Refuses a user-defined type that is not frozen inside a collection, a
/// tuple or another type (`what` names the column or field).
fn check_udts_frozen(ty: &CqlType, what: &str) -> Result<(), CqlError> {
    fn check(ty: &CqlType, frozen: bool, what: &str) -> Result<(), CqlError> {
        match ty {
            CqlType::UserType(udt) if !frozen => Err(invalid(format!(
                "Non-frozen UDTs are not allowed inside collections or other types: \
                 {what} holds {}; use frozen<{}>",
                udt.name, udt.name
            ))),
            CqlType::Frozen(inner) => check(inner, true, what),
            CqlType::List(e) | CqlType::Set(e) => check(e, frozen, what),
            CqlType::Map(k, v) => {
                check(k, frozen, what)?;
                check(v, frozen, what)
            }
            CqlType::Tuple(items) => items.iter().try_for_each(|i| check(i, true, what)),
            _ => Ok(()),
        }
    }
    check(ty, false, what)
}

/// `CREATE TYPE` text as DESCRIBE shows it.
pub fn canonical_type_cql(udt: &UserType) -> String {
    let fields: Vec<String> = udt
        .fields
        .iter()
        .map(|(name, ty)| format!("    {} {ty}", quote(name)))
        .collect();
    format!(
        "CREATE TYPE {}.{} (\n{}\n);",
        quote(&udt.keyspace),
        quote(&udt.name),
        fields.join(",\n")
    )
}

/// An identifier as CQL text: bare when it is lower-case, quoted otherwise.
pub fn quote(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `CREATE KEYSPACE` text as DESCRIBE shows it.
pub fn canonical_keyspace_cql(keyspace: &KeyspaceSchema) -> String {
    let replication: Vec<String> = keyspace
        .replication_map()
        .iter()
        .map(|(k, v)| format!("'{k}': '{v}'"))
        .collect();
    format!(
        "CREATE KEYSPACE {} WITH replication = {{{}}} AND durable_writes = {};",
        quote(&keyspace.name),
        replication.join(", "),
        keyspace.durable_writes
    )
}

fn canonical_table_cql(
    table: &TableSchema,
    columns: &[ColumnDef],
    partition_key: &[String],
    clustering: &[String],
    clustering_order: &[(String, bool)],
    options: &[(String, OptionValue)],
) -> String {
    let mut lines: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "    {} {}{}",
                quote(&c.name),
                c.ty,
                if c.is_static { " static" } else { "" }
            )
        })
        .collect();
    let pk = if partition_key.len() == 1 {
        quote(&partition_key[0])
    } else {
        format!(
            "({})",
            partition_key
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut key = vec![pk];
    key.extend(clustering.iter().map(|c| quote(c)));
    lines.push(format!("    PRIMARY KEY ({})", key.join(", ")));
    let mut with = Vec::new();
    if !clustering_order.is_empty() {
        let order: Vec<String> = clustering_order
            .iter()
            .map(|(c, d)| format!("{} {}", quote(c), if *d { "DESC" } else { "ASC" }))
            .collect();
        with.push(format!("CLUSTERING ORDER BY ({})", order.join(", ")));
    }
    for (key, value) in options {
        let text = match value {
            OptionValue::Literal(Literal::Str(s)) => format!("'{}'", s.replace('\'', "''")),
            OptionValue::Literal(l) => literal_text(l),
            OptionValue::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("'{k}': '{v}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        with.push(format!("{key} = {text}"));
    }
    let mut cql = format!(
        "CREATE TABLE {}.{} (\n{}\n)",
        quote(&table.keyspace),
        quote(&table.name),
        lines.join(",\n")
    );
    if !with.is_empty() {
        cql.push_str(&format!(" WITH {}", with.join("\n    AND ")));
    }
    cql.push(';');
    cql
}

/// The `CREATE TABLE` text of a table as it is now (after `ALTER TABLE`).
fn table_cql(table: &TableSchema) -> String {
    let columns: Vec<ColumnDef> = table
        .columns
        .iter()
        .map(|c| ColumnDef {
            name: c.name.clone(),
            ty: c.ty.clone(),
            is_static: c.kind == ColumnKind::Static,
        })
        .collect();
    let partition_key: Vec<String> = table.partition_key().map(|c| c.name.clone()).collect();
    let clustering: Vec<String> = table.clustering().map(|c| c.name.clone()).collect();
    let clustering_order: Vec<(String, bool)> = table
        .clustering()
        .map(|c| (c.name.clone(), c.descending))
        .collect();
    let number = |n: i64| OptionValue::Literal(Literal::Integer(n.to_string()));
    let mut options = vec![
        (
            "compaction".to_owned(),
            OptionValue::Map(table.compaction.clone()),
        ),
        (
            "compression".to_owned(),
            OptionValue::Map(table.compression.clone()),
        ),
        (
            "default_time_to_live".to_owned(),
            number(table.default_time_to_live),
        ),
        (
            "gc_grace_seconds".to_owned(),
            number(table.gc_grace_seconds),
        ),
    ];
    if !table.comment.is_empty() {
        options.push((
            "comment".to_owned(),
            OptionValue::Literal(Literal::Str(table.comment.clone())),
        ));
    }
    canonical_table_cql(
        table,
        &columns,
        &partition_key,
        &clustering,
        &clustering_order,
        &options,
    )
}

/// Reads a keyspace's stored rows (for tests and repair of the catalog).
pub fn stored_definitions(engine: &Engine, keyspace: &str) -> Result<Vec<String>, CqlError> {
    let rows = engine
        .read(SCHEMA_TABLE, &schema_key(keyspace), &SliceQuery::all())
        .map_err(|e| CqlError::Server(e.to_string()))?;
    Ok(rows
        .map(|p| {
            p.rows
                .iter()
                .filter_map(|r| r.cells.iter().find(|c| c.column == CELL_CQL))
                .filter_map(|c| {
                    c.value_bytes()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Regression (issue 17): a table named "" stored its row where its
    /// keyspace's definition lives, and the next start silently loaded the
    /// schema without that keyspace. Such damage now stops the load,
    /// naming what lost its keyspace.
    #[test]
    fn a_table_whose_keyspace_definition_is_gone_stops_the_load() -> TestResult {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(storage_lsm::EngineConfig::new(
            dir.path().join("data"),
            dir.path().join("commitlog"),
        ))?;
        let mut catalog = Catalog::load(&engine)?;
        let options = [(
            "replication".to_owned(),
            OptionValue::Map(vec![
                ("class".into(), "SimpleStrategy".into()),
                ("replication_factor".into(), "1".into()),
            ]),
        )];
        catalog.create_keyspace(&engine, "ks", false, &options)?;
        let statement = parse("CREATE TABLE ks.t (k int PRIMARY KEY, v int)")?;
        catalog.create_table(&engine, &statement, None)?;
        assert!(Catalog::load(&engine)?.keyspace("ks").is_some());
        // The keyspace's row overwritten by a table definition, as the
        // empty table name did.
        let table = catalog.table("ks", "t").ok_or("table")?;
        write_schema_row(
            &engine,
            "ks",
            Bytes::new(),
            vec![
                (CELL_CQL, table.create_cql.clone().into_bytes()),
                (CELL_ID, table.id.to_be_bytes().to_vec()),
            ],
        )?;
        let error = Catalog::load(&engine).err().ok_or("the load must fail")?;
        assert!(
            error.to_string().contains("no definition of keyspace ks"),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn names_are_checked_as_cassandra_checks_them() {
        assert!(check_name("Table", "users_2").is_ok());
        assert!(check_name("Table", &"t".repeat(NAME_LENGTH_MAX)).is_ok());
        for bad in ["", "a-b", "a b", "é", "a.b"] {
            assert!(check_name("Table", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("Keyspace", &"k".repeat(NAME_LENGTH_MAX + 1)).is_err());
    }
}

//! Server-side `DESCRIBE` (Cassandra 4+): rows of `keyspace_name, type,
//! name, create_statement`, which cqlsh prints as they come.

use bytes::Bytes;

use crate::cql::ast::DescribeTarget;
use crate::node::{Node, Session};
use crate::protocol::error::CqlError;
use crate::results::{ColumnSpec, ResultBody, Rows};
use crate::schema::{
    canonical_keyspace_cql, quote, resolve_keyspace, ColumnKind, TableSchema, SYSTEM_KEYSPACES,
};
use crate::types::CqlType;

fn spec(name: &str) -> ColumnSpec {
    ColumnSpec {
        keyspace: String::new(),
        table: "describe".into(),
        name: name.into(),
        ty: CqlType::Text,
    }
}

fn text(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

fn map_text(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort();
    format!(
        "{{{}}}",
        sorted
            .iter()
            .map(|(k, v)| format!("'{k}': '{v}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `CREATE TABLE` as DESCRIBE shows it: every column, the key, every option.
pub fn describe_table(table: &TableSchema) -> String {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            format!(
                "    {} {}{}",
                quote(&c.name),
                c.ty,
                if c.kind == ColumnKind::Static {
                    " static"
                } else {
                    ""
                }
            )
        })
        .collect();
    let pk: Vec<String> = table.partition_key().map(|c| quote(&c.name)).collect();
    let mut key = vec![if pk.len() == 1 {
        pk.concat()
    } else {
        format!("({})", pk.join(", "))
    }];
    key.extend(table.clustering().map(|c| quote(&c.name)));
    lines.push(format!("    PRIMARY KEY ({})", key.join(", ")));
    let mut options = Vec::new();
    let order: Vec<String> = table
        .clustering()
        .map(|c| {
            format!(
                "{} {}",
                quote(&c.name),
                if c.descending { "DESC" } else { "ASC" }
            )
        })
        .collect();
    if !order.is_empty() {
        options.push(format!("CLUSTERING ORDER BY ({})", order.join(", ")));
    }
    options.extend([
        "additional_write_policy = '99p'".to_owned(),
        "bloom_filter_fp_chance = 0.01".to_owned(),
        "caching = {'keys': 'ALL', 'rows_per_partition': 'NONE'}".to_owned(),
        "cdc = false".to_owned(),
        format!("comment = '{}'", table.comment.replace('\'', "''")),
        format!("compaction = {}", map_text(&table.compaction)),
        format!("compression = {}", map_text(&table.compression)),
        "crc_check_chance = 1.0".to_owned(),
        format!("default_time_to_live = {}", table.default_time_to_live),
        "extensions = {}".to_owned(),
        format!("gc_grace_seconds = {}", table.gc_grace_seconds),
        "max_index_interval = 2048".to_owned(),
        "memtable_flush_period_in_ms = 0".to_owned(),
        "min_index_interval = 128".to_owned(),
        "read_repair = 'BLOCKING'".to_owned(),
        "speculative_retry = '99p'".to_owned(),
    ]);
    format!(
        "CREATE TABLE {}.{} (\n{}\n) WITH {};",
        quote(&table.keyspace),
        quote(&table.name),
        lines.join(",\n"),
        options.join("\n    AND ")
    )
}

fn element_rows(rows: Vec<[String; 4]>) -> ResultBody {
    ResultBody::Rows(Rows {
        columns: vec![
            spec("keyspace_name"),
            spec("type"),
            spec("name"),
            spec("create_statement"),
        ],
        rows: rows
            .iter()
            .map(|r| r.iter().map(|s| text(s)).collect())
            .collect(),
        paging_state: None,
    })
}

/// Answers a DESCRIBE.
pub fn describe(
    node: &Node,
    session: &Session,
    target: &DescribeTarget,
) -> Result<ResultBody, CqlError> {
    let catalog = node.catalog.read();
    let keyspace_rows = |name: &str| -> Result<Vec<[String; 4]>, CqlError> {
        let keyspace = catalog
            .keyspace(name)
            .ok_or_else(|| CqlError::Invalid(format!("'{name}' not found in keyspaces")))?;
        let mut rows = vec![[
            name.to_owned(),
            "keyspace".into(),
            name.to_owned(),
            canonical_keyspace_cql(keyspace),
        ]];
        for udt in catalog.types.values().filter(|t| t.keyspace == name) {
            rows.push([
                name.to_owned(),
                "type".into(),
                udt.name.clone(),
                crate::schema::canonical_type_cql(udt),
            ]);
        }
        for table in catalog.tables.values().filter(|t| t.keyspace == name) {
            rows.push([
                name.to_owned(),
                "table".into(),
                table.name.clone(),
                describe_table(table),
            ]);
        }
        Ok(rows)
    };
    match target {
        DescribeTarget::Keyspaces => {
            let mut names: Vec<String> = SYSTEM_KEYSPACES.iter().map(|s| (*s).to_owned()).collect();
            names.extend(catalog.keyspaces.keys().cloned());
            names.sort();
            Ok(element_rows(
                names
                    .into_iter()
                    .map(|n| [n.clone(), "keyspace".into(), n, String::new()])
                    .collect(),
            ))
        }
        DescribeTarget::Keyspace(name) => {
            let name = match name {
                Some(name) => name.clone(),
                None => session.keyspace.clone().ok_or_else(|| {
                    CqlError::Invalid("No keyspace specified and no current keyspace".into())
                })?,
            };
            Ok(element_rows(keyspace_rows(&name)?))
        }
        DescribeTarget::Tables => Ok(element_rows(
            catalog
                .tables
                .values()
                .filter(|t| session.keyspace.as_ref().is_none_or(|k| *k == t.keyspace))
                .map(|t| {
                    [
                        t.keyspace.clone(),
                        "table".into(),
                        t.name.clone(),
                        String::new(),
                    ]
                })
                .collect(),
        )),
        DescribeTarget::Table(name) => {
            let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
            let table = catalog.table(&keyspace, &name.name).ok_or_else(|| {
                CqlError::Invalid(format!(
                    "'{}' not found in keyspace '{keyspace}'",
                    name.name
                ))
            })?;
            Ok(element_rows(vec![[
                keyspace,
                "table".into(),
                table.name.clone(),
                describe_table(&table),
            ]]))
        }
        DescribeTarget::Schema => {
            let mut rows = Vec::new();
            for name in catalog.keyspaces.keys() {
                rows.extend(keyspace_rows(name)?);
            }
            Ok(element_rows(rows))
        }
        DescribeTarget::Cluster => Ok(ResultBody::Rows(Rows {
            columns: vec![spec("cluster"), spec("partitioner"), spec("snitch")],
            rows: vec![vec![
                text(&node.info.cluster_name),
                text("org.apache.cassandra.dht.Murmur3Partitioner"),
                text("org.apache.cassandra.locator.SimpleSnitch"),
            ]],
            paging_state: None,
        })),
        DescribeTarget::EmptyList => Ok(element_rows(Vec::new())),
        DescribeTarget::Types => Ok(element_rows(
            catalog
                .types
                .values()
                .filter(|t| session.keyspace.as_ref().is_none_or(|k| *k == t.keyspace))
                .map(|t| {
                    [
                        t.keyspace.clone(),
                        "type".into(),
                        t.name.clone(),
                        String::new(),
                    ]
                })
                .collect(),
        )),
        DescribeTarget::Type(name) => {
            let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
            let udt = catalog
                .types
                .get(&(keyspace.clone(), name.name.clone()))
                .ok_or_else(|| {
                    CqlError::Invalid(format!(
                        "User defined type '{}' not found in '{keyspace}'",
                        name.name
                    ))
                })?;
            Ok(element_rows(vec![[
                keyspace,
                "type".into(),
                udt.name.clone(),
                crate::schema::canonical_type_cql(udt),
            ]]))
        }
        DescribeTarget::Name(name) => {
            if name.keyspace.is_none() && catalog.keyspace(&name.name).is_some() {
                return Ok(element_rows(keyspace_rows(&name.name)?));
            }
            drop(catalog);
            describe(node, session, &DescribeTarget::Table(name.clone()))
        }
    }
}

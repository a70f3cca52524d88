//! The `system` and `system_schema` tables drivers and cqlsh read at
//! connect time, built on demand from the node's identity and the schema
//! catalog (`shared/data/driver-contract.md` is the map of what they read).

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::node::{Node, NodeInfo};
use crate::results::ColumnSpec;
use crate::schema::{format_uuid, Catalog, ColumnKind};
use crate::types::CqlType;

/// A virtual table's columns and rows.
#[derive(Debug, Clone)]
pub struct VirtualTable {
    pub columns: Vec<ColumnSpec>,
    pub rows: Vec<Vec<Option<Bytes>>>,
}

pub(crate) fn text(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

fn int(v: i32) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

fn double(v: f64) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

pub(crate) fn boolean(v: bool) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&[u8::from(v)]))
}

fn uuid(v: u128) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

fn inet(addr: IpAddr) -> Option<Bytes> {
    Some(match addr {
        IpAddr::V4(v4) => Bytes::copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => Bytes::copy_from_slice(&v6.octets()),
    })
}

fn elements(items: &[&[u8]]) -> Option<Bytes> {
    let mut out = BytesMut::new();
    out.put_i32(items.len() as i32);
    for item in items {
        out.put_i32(item.len() as i32);
        out.put_slice(item);
    }
    Some(out.freeze())
}

fn text_set(items: &[String]) -> Option<Bytes> {
    let mut sorted: Vec<&String> = items.iter().collect();
    sorted.sort();
    let parts: Vec<&[u8]> = sorted.iter().map(|s| s.as_bytes()).collect();
    elements(&parts)
}

fn text_map(entries: &[(String, String)]) -> Option<Bytes> {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort();
    let mut out = BytesMut::new();
    out.put_i32(sorted.len() as i32);
    for (k, v) in sorted {
        out.put_i32(k.len() as i32);
        out.put_slice(k.as_bytes());
        out.put_i32(v.len() as i32);
        out.put_slice(v.as_bytes());
    }
    Some(out.freeze())
}

fn columns(keyspace: &str, table: &str, defs: &[(&str, &str)]) -> Vec<ColumnSpec> {
    defs.iter()
        .map(|(name, ty)| ColumnSpec {
            keyspace: keyspace.to_owned(),
            table: table.to_owned(),
            name: (*name).to_owned(),
            ty: CqlType::parse(ty).unwrap_or(CqlType::Blob),
        })
        .collect()
}

/// `(name, type)` of each column of a virtual table.
type ColumnDefs = &'static [(&'static str, &'static str)];

/// Column definitions of every virtual table, and how many of the leading
/// columns form the partition key and the clustering.
fn definitions(keyspace: &str, table: &str) -> Option<(ColumnDefs, usize, usize)> {
    const MAP: &str = "frozen<map<text, text>>";
    Some(match (keyspace, table) {
        ("system", "local") => (
            &[
                ("key", "text"),
                ("bootstrapped", "text"),
                ("broadcast_address", "inet"),
                ("broadcast_port", "int"),
                ("cluster_name", "text"),
                ("cql_version", "text"),
                ("data_center", "text"),
                ("gossip_generation", "int"),
                ("host_id", "uuid"),
                ("ilion_version", "text"),
                ("listen_address", "inet"),
                ("listen_port", "int"),
                ("native_protocol_version", "text"),
                ("partitioner", "text"),
                ("rack", "text"),
                ("release_version", "text"),
                ("rpc_address", "inet"),
                ("rpc_port", "int"),
                ("schema_version", "uuid"),
                ("tokens", "set<text>"),
            ],
            1,
            0,
        ),
        ("system", "peers") => (
            &[
                ("peer", "inet"),
                ("data_center", "text"),
                ("host_id", "uuid"),
                ("preferred_ip", "inet"),
                ("rack", "text"),
                ("release_version", "text"),
                ("rpc_address", "inet"),
                ("schema_version", "uuid"),
                ("tokens", "set<text>"),
            ],
            1,
            0,
        ),
        ("system", "peers_v2") => (
            &[
                ("peer", "inet"),
                ("peer_port", "int"),
                ("data_center", "text"),
                ("host_id", "uuid"),
                ("native_address", "inet"),
                ("native_port", "int"),
                ("preferred_ip", "inet"),
                ("preferred_port", "int"),
                ("rack", "text"),
                ("release_version", "text"),
                ("schema_version", "uuid"),
                ("tokens", "set<text>"),
            ],
            1,
            1,
        ),
        ("system_auth", "roles") => (
            &[
                ("role", "text"),
                ("can_login", "boolean"),
                ("is_superuser", "boolean"),
                ("member_of", "set<text>"),
                ("salted_hash", "text"),
            ],
            1,
            0,
        ),
        ("system_traces", "sessions") => (
            &[
                ("session_id", "uuid"),
                ("client", "inet"),
                ("command", "text"),
                ("coordinator", "inet"),
                ("coordinator_port", "int"),
                ("duration", "int"),
                ("parameters", "map<text, text>"),
                ("request", "text"),
                ("started_at", "timestamp"),
            ],
            1,
            0,
        ),
        ("system_traces", "events") => (
            &[
                ("session_id", "uuid"),
                ("event_id", "timeuuid"),
                ("activity", "text"),
                ("source", "inet"),
                ("source_elapsed", "int"),
                ("source_port", "int"),
                ("thread", "text"),
            ],
            1,
            1,
        ),
        ("system", "size_estimates") => (
            &[
                ("keyspace_name", "text"),
                ("table_name", "text"),
                ("range_start", "text"),
                ("range_end", "text"),
                ("mean_partition_size", "bigint"),
                ("partitions_count", "bigint"),
            ],
            1,
            3,
        ),
        ("system_schema", "keyspaces") => (
            &[
                ("keyspace_name", "text"),
                ("durable_writes", "boolean"),
                ("replication", MAP),
            ],
            1,
            0,
        ),
        ("system_schema", "tables") => (
            &[
                ("keyspace_name", "text"),
                ("table_name", "text"),
                ("additional_write_policy", "text"),
                ("bloom_filter_fp_chance", "double"),
                ("caching", MAP),
                ("cdc", "boolean"),
                ("comment", "text"),
                ("compaction", MAP),
                ("compression", MAP),
                ("crc_check_chance", "double"),
                ("dclocal_read_repair_chance", "double"),
                ("default_time_to_live", "int"),
                ("extensions", "frozen<map<text, blob>>"),
                ("flags", "frozen<set<text>>"),
                ("gc_grace_seconds", "int"),
                ("id", "uuid"),
                ("max_index_interval", "int"),
                ("memtable_flush_period_in_ms", "int"),
                ("min_index_interval", "int"),
                ("read_repair", "text"),
                ("read_repair_chance", "double"),
                ("speculative_retry", "text"),
            ],
            1,
            1,
        ),
        ("system_schema", "columns") => (
            &[
                ("keyspace_name", "text"),
                ("table_name", "text"),
                ("column_name", "text"),
                ("clustering_order", "text"),
                ("column_name_bytes", "blob"),
                ("kind", "text"),
                ("position", "int"),
                ("type", "text"),
            ],
            1,
            2,
        ),
        ("system_schema", "types") => (
            &[
                ("keyspace_name", "text"),
                ("type_name", "text"),
                ("field_names", "frozen<list<text>>"),
                ("field_types", "frozen<list<text>>"),
            ],
            1,
            1,
        ),
        ("system_schema", "functions") => (
            &[
                ("keyspace_name", "text"),
                ("function_name", "text"),
                ("argument_types", "frozen<list<text>>"),
                ("argument_names", "frozen<list<text>>"),
                ("body", "text"),
                ("called_on_null_input", "boolean"),
                ("language", "text"),
                ("return_type", "text"),
            ],
            1,
            2,
        ),
        ("system_schema", "aggregates") => (
            &[
                ("keyspace_name", "text"),
                ("aggregate_name", "text"),
                ("argument_types", "frozen<list<text>>"),
                ("final_func", "text"),
                ("initcond", "text"),
                ("return_type", "text"),
                ("state_func", "text"),
                ("state_type", "text"),
            ],
            1,
            2,
        ),
        ("system_schema", "triggers") => (
            &[
                ("keyspace_name", "text"),
                ("table_name", "text"),
                ("trigger_name", "text"),
                ("options", MAP),
            ],
            1,
            2,
        ),
        ("system_schema", "indexes") => (
            &[
                ("keyspace_name", "text"),
                ("table_name", "text"),
                ("index_name", "text"),
                ("kind", "text"),
                ("options", MAP),
            ],
            1,
            2,
        ),
        ("system_schema", "views") => (
            &[
                ("keyspace_name", "text"),
                ("view_name", "text"),
                ("base_table_id", "uuid"),
                ("base_table_name", "text"),
                ("bloom_filter_fp_chance", "double"),
                ("caching", MAP),
                ("comment", "text"),
                ("compaction", MAP),
                ("compression", MAP),
                ("crc_check_chance", "double"),
                ("dclocal_read_repair_chance", "double"),
                ("default_time_to_live", "int"),
                ("extensions", "frozen<map<text, blob>>"),
                ("gc_grace_seconds", "int"),
                ("id", "uuid"),
                ("include_all_columns", "boolean"),
                ("max_index_interval", "int"),
                ("memtable_flush_period_in_ms", "int"),
                ("min_index_interval", "int"),
                ("read_repair_chance", "double"),
                ("speculative_retry", "text"),
                ("where_clause", "text"),
            ],
            1,
            1,
        ),
        ("system_schema", "dropped_columns") => (
            &[
                ("keyspace_name", "text"),
                ("table_name", "text"),
                ("column_name", "text"),
                ("dropped_time", "timestamp"),
                ("kind", "text"),
                ("type", "text"),
            ],
            1,
            2,
        ),
        _ => return None,
    })
}

/// Every virtual table, for `system_schema` itself.
const VIRTUAL_TABLES: [(&str, &str); 17] = [
    ("system", "local"),
    ("system", "peers"),
    ("system", "peers_v2"),
    ("system", "size_estimates"),
    ("system_auth", "roles"),
    ("system_schema", "keyspaces"),
    ("system_schema", "tables"),
    ("system_schema", "columns"),
    ("system_schema", "types"),
    ("system_schema", "functions"),
    ("system_schema", "aggregates"),
    ("system_schema", "triggers"),
    ("system_schema", "indexes"),
    ("system_schema", "views"),
    ("system_schema", "dropped_columns"),
    ("system_traces", "sessions"),
    ("system_traces", "events"),
];

/// The virtual table `keyspace.table`, if it is one this node serves.
pub fn virtual_table(
    keyspace: &str,
    table: &str,
    node: &Node,
    catalog: &Catalog,
) -> Option<VirtualTable> {
    let (defs, _, _) = definitions(keyspace, table)?;
    let columns = columns(keyspace, table, defs);
    let rows = match (keyspace, table) {
        ("system", "local") => local(&node.info, catalog),
        ("system", "peers") => peers(node, false),
        ("system", "peers_v2") => peers(node, true),
        ("system_auth", "roles") => roles(node),
        ("system", "size_estimates") => size_estimates(node, catalog),
        ("system_schema", "keyspaces") => keyspaces(catalog),
        ("system_schema", "tables") => tables(catalog),
        ("system_schema", "columns") => schema_columns(catalog),
        ("system_schema", "types") => types(catalog),
        ("system_traces", "sessions") => trace_sessions(node),
        ("system_traces", "events") => trace_events(node),
        _ => Vec::new(),
    };
    Some(VirtualTable { columns, rows })
}

/// `system_traces.sessions`: the traces this node keeps.
fn trace_sessions(node: &Node) -> Vec<Vec<Option<Bytes>>> {
    node.traces
        .sessions()
        .into_iter()
        .map(|session| {
            vec![
                Some(crate::traces::session_id_bytes(&session)),
                session.client.and_then(inet),
                text(session.command),
                inet(session.coordinator),
                int(session.coordinator_port),
                session.duration_us.and_then(int),
                text_map(&session.parameters),
                text(&session.request),
                Some(Bytes::copy_from_slice(&session.started_at_ms.to_be_bytes())),
            ]
        })
        .collect()
}

/// `system_traces.events`: the steps of the traces this node keeps.
fn trace_events(node: &Node) -> Vec<Vec<Option<Bytes>>> {
    let mut rows = Vec::new();
    for session in node.traces.sessions() {
        for event in &session.events {
            rows.push(vec![
                Some(crate::traces::session_id_bytes(&session)),
                Some(Bytes::copy_from_slice(&event.event_id)),
                text(&event.activity),
                inet(event.source),
                int(event.source_elapsed_us),
                int(session.coordinator_port),
                text(&event.thread),
            ]);
        }
    }
    rows
}

/// `system_schema.types`: each user-defined type's fields, in order.
fn types(catalog: &Catalog) -> Vec<Vec<Option<Bytes>>> {
    catalog
        .types
        .values()
        .map(|udt| {
            let names: Vec<&[u8]> = udt.fields.iter().map(|(n, _)| n.as_bytes()).collect();
            let types: Vec<String> = udt.fields.iter().map(|(_, t)| t.to_string()).collect();
            let type_bytes: Vec<&[u8]> = types.iter().map(|t| t.as_bytes()).collect();
            vec![
                text(&udt.keyspace),
                text(&udt.name),
                elements(&names),
                elements(&type_bytes),
            ]
        })
        .collect()
}

/// `system_auth.roles`; a role table that cannot be read shows no rows
/// (logged), as the other virtual tables never fail.
fn roles(node: &Node) -> Vec<Vec<Option<Bytes>>> {
    match crate::auth::list(node.coordinator.engine()) {
        Ok(roles) => roles
            .into_iter()
            .map(|role| {
                vec![
                    text(&role.name),
                    boolean(role.login),
                    boolean(role.superuser),
                    None,
                    role.salted_hash.as_deref().and_then(text),
                ]
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list roles for system_auth.roles");
            Vec::new()
        }
    }
}

/// `system.size_estimates`: one row per user table covering the whole
/// ring (this node owns all of it), from the engine's partition estimate
/// and on-disk size.
fn size_estimates(node: &Node, catalog: &Catalog) -> Vec<Vec<Option<Bytes>>> {
    let engine = node.coordinator.engine();
    let mut rows = Vec::new();
    for ((keyspace, name), table) in &catalog.tables {
        let Ok(stats) = engine.stats(table.table_id()) else {
            continue;
        };
        let partitions = stats.partition_count_estimate as i64;
        let mean = if partitions > 0 {
            (stats.live_disk_bytes as i64 + stats.memtable_bytes as i64) / partitions
        } else {
            0
        };
        rows.push(vec![
            text(keyspace),
            text(name),
            text(&i64::MIN.to_string()),
            text(&i64::MIN.to_string()),
            Some(Bytes::copy_from_slice(&mean.to_be_bytes())),
            Some(Bytes::copy_from_slice(&partitions.to_be_bytes())),
        ]);
    }
    rows
}

fn local(node: &NodeInfo, catalog: &Catalog) -> Vec<Vec<Option<Bytes>>> {
    let tokens: Vec<String> = node.tokens.iter().map(i64::to_string).collect();
    vec![vec![
        text("local"),
        text("COMPLETED"),
        inet(node.listen_address),
        int(i32::from(node.storage_port)),
        text(&node.cluster_name),
        text(crate::protocol::messages::CQL_VERSION),
        text(&node.data_center),
        int(node.generation),
        uuid(node.host_id),
        text(&node.ilion_version),
        inet(node.listen_address),
        int(i32::from(node.storage_port)),
        text("4"),
        text("org.apache.cassandra.dht.Murmur3Partitioner"),
        text(&node.rack),
        text(crate::node::RELEASE_VERSION),
        inet(node.rpc_address),
        int(i32::from(node.native_port)),
        uuid(catalog.version),
        text_set(&tokens),
    ]]
}

/// `system.peers` (or `peers_v2`): every other endpoint of the ring, up or
/// down, as gossip last described it.
fn peers(node: &Node, v2: bool) -> Vec<Vec<Option<Bytes>>> {
    let ring = node.coordinator.ring();
    ring.endpoints()
        .iter()
        .filter(|e| !e.is_local)
        .map(|e| {
            let tokens: Vec<String> = e.tokens.iter().map(i64::to_string).collect();
            let (host_id, schema) = (e.host_id.and_then(uuid), e.schema.and_then(uuid));
            if v2 {
                vec![
                    inet(e.address.ip()),
                    int(i32::from(e.address.port())),
                    text(&e.dc),
                    host_id,
                    inet(e.rpc_address),
                    int(i32::from(e.native_port)),
                    None,
                    None,
                    text(&e.rack),
                    text(&e.release_version),
                    schema,
                    text_set(&tokens),
                ]
            } else {
                vec![
                    inet(e.address.ip()),
                    text(&e.dc),
                    host_id,
                    None,
                    text(&e.rack),
                    text(&e.release_version),
                    inet(e.rpc_address),
                    schema,
                    text_set(&tokens),
                ]
            }
        })
        .collect()
}

fn keyspaces(catalog: &Catalog) -> Vec<Vec<Option<Bytes>>> {
    let mut rows = Vec::new();
    for name in crate::schema::SYSTEM_KEYSPACES {
        let local = [(
            "class".to_string(),
            "org.apache.cassandra.locator.LocalStrategy".to_string(),
        )];
        rows.push(vec![text(name), boolean(true), text_map(&local)]);
    }
    for keyspace in catalog.keyspaces.values() {
        rows.push(vec![
            text(&keyspace.name),
            boolean(keyspace.durable_writes),
            text_map(&keyspace.replication_map()),
        ]);
    }
    rows
}

/// A table's options as `system_schema.tables` shows them.
struct TableOptionsRow<'a> {
    comment: &'a str,
    compaction: &'a [(String, String)],
    compression: &'a [(String, String)],
    ttl: i64,
    gc_grace: i64,
}

/// One `system_schema.tables` row.
fn table_row(
    keyspace: &str,
    name: &str,
    id: u128,
    options: TableOptionsRow<'_>,
) -> Vec<Option<Bytes>> {
    let TableOptionsRow {
        comment,
        compaction,
        compression,
        ttl,
        gc_grace,
    } = options;
    let caching = [
        ("keys".to_string(), "ALL".to_string()),
        ("rows_per_partition".to_string(), "NONE".to_string()),
    ];
    vec![
        text(keyspace),
        text(name),
        text("99p"),
        double(0.01),
        text_map(&caching),
        boolean(false),
        text(comment),
        text_map(compaction),
        text_map(compression),
        double(1.0),
        double(0.0),
        int(ttl as i32),
        elements(&[]),
        text_set(&["compound".to_string()]),
        int(gc_grace as i32),
        uuid(id),
        int(2048),
        int(0),
        int(128),
        text("BLOCKING"),
        double(0.0),
        text("99p"),
    ]
}

/// A stable id for a virtual table.
fn virtual_id(keyspace: &str, table: &str) -> u128 {
    let high = replication::murmur3::murmur3_hash(keyspace.as_bytes()) as u64;
    let low = replication::murmur3::murmur3_hash(table.as_bytes()) as u64;
    u128::from(high) << 64 | u128::from(low)
}

fn tables(catalog: &Catalog) -> Vec<Vec<Option<Bytes>>> {
    let local_compaction = [(
        "class".to_string(),
        "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy".to_string(),
    )];
    let mut rows: Vec<Vec<Option<Bytes>>> = VIRTUAL_TABLES
        .iter()
        .map(|(ks, t)| {
            let compression = crate::schema::default_compression();
            let options = TableOptionsRow {
                comment: "",
                compaction: &local_compaction,
                compression: &compression,
                ttl: 0,
                gc_grace: 0,
            };
            table_row(ks, t, virtual_id(ks, t), options)
        })
        .collect();
    for table in catalog.tables.values() {
        let options = TableOptionsRow {
            comment: &table.comment,
            compaction: &table.compaction,
            compression: &table.compression,
            ttl: table.default_time_to_live,
            gc_grace: table.gc_grace_seconds,
        };
        rows.push(table_row(&table.keyspace, &table.name, table.id, options));
    }
    rows
}

fn column_row(
    keyspace: &str,
    table: &str,
    name: &str,
    order: &str,
    kind: &str,
    position: i32,
    ty: &str,
) -> Vec<Option<Bytes>> {
    vec![
        text(keyspace),
        text(table),
        text(name),
        text(order),
        Some(Bytes::copy_from_slice(name.as_bytes())),
        text(kind),
        int(position),
        text(ty),
    ]
}

fn schema_columns(catalog: &Catalog) -> Vec<Vec<Option<Bytes>>> {
    let mut rows = Vec::new();
    for (ks, t) in VIRTUAL_TABLES {
        let Some((defs, pk, clustering)) = definitions(ks, t) else {
            continue;
        };
        for (i, (name, ty)) in defs.iter().enumerate() {
            let (kind, order, position) = if i < pk {
                ("partition_key", "none", i as i32)
            } else if i < pk + clustering {
                ("clustering", "asc", (i - pk) as i32)
            } else {
                ("regular", "none", -1)
            };
            let ty = CqlType::parse(ty).map_or_else(|_| (*ty).to_owned(), |t| t.to_string());
            rows.push(column_row(ks, t, name, order, kind, position, &ty));
        }
    }
    for table in catalog.tables.values() {
        for column in &table.columns {
            let order = match column.kind {
                ColumnKind::Clustering if column.descending => "desc",
                ColumnKind::Clustering => "asc",
                _ => "none",
            };
            rows.push(column_row(
                &table.keyspace,
                &table.name,
                &column.name,
                order,
                column.kind.name(),
                column.position,
                &column.ty.to_string(),
            ));
        }
    }
    rows
}

/// A table id as the driver shows it (for messages).
pub fn describe_id(id: u128) -> String {
    format_uuid(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn every_row_matches_its_columns() -> TestResult {
        let dir = tempfile::tempdir()?;
        let engine = storage_lsm::Engine::open(storage_lsm::EngineConfig::new(
            dir.path().join("data"),
            dir.path().join("commitlog"),
        ))?;
        let node = Node::open(
            NodeInfo::for_tests(),
            replication::Coordinator::new(std::sync::Arc::new(engine)),
            crate::auth::Authenticator::AllowAll,
            64 * 1024 * 1024,
        )?;
        let catalog = Catalog::default();
        for (ks, t) in [
            ("system", "local"),
            ("system", "peers"),
            ("system", "peers_v2"),
            ("system", "size_estimates"),
            ("system_auth", "roles"),
            ("system_schema", "keyspaces"),
            ("system_schema", "tables"),
            ("system_schema", "columns"),
            ("system_schema", "views"),
        ] {
            let table = virtual_table(ks, t, &node, &catalog)
                .ok_or_else(|| format!("no virtual table {ks}.{t}"))?;
            assert!(
                !table.columns.is_empty(),
                "{ks}.{t} must have columns (drivers crash on zero)"
            );
            for row in &table.rows {
                assert_eq!(row.len(), table.columns.len(), "{ks}.{t}");
            }
        }
        Ok(())
    }
}

//! Prepared statements: PREPARE parses once and describes the bind
//! variables (and, for SELECT, the result columns); EXECUTE runs the stored
//! statement with the bound values.
//!
//! The cache lives in memory, bounded in bytes (`prepared_statements_cache_size`)
//! and by [`PREPARED_STATEMENTS_MAX`], the least recently used dropped
//! first; an EXECUTE of an id it does not hold (after a restart, or an
//! eviction) gets Unprepared, and drivers prepare again. Bind metadata carries the
//! partition key's bind indexes so drivers can route token-aware.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cql::ast::{
    Assignment, BindMarker, Deleted, Operator, Relation, Selector, Statement, Term, Using,
};
use crate::cql::parser::parse;
use crate::node::{Node, Session};
use crate::protocol::error::CqlError;
use crate::protocol::primitives::BodyWriter;
use crate::results::ColumnSpec;
use crate::schema::{resolve_keyspace, ColumnKind, TableSchema, SYSTEM_KEYSPACES};
use crate::system_tables::virtual_table;
use crate::types::CqlType;

/// Most prepared statements a node keeps, however small; past it (or past
/// the cache's bytes) the least recently used are dropped.
pub const PREPARED_STATEMENTS_MAX: usize = 10_000;

/// What one statement is counted as: its text twice (the text and the
/// parsed statement, which grows with it) and a fixed part for the
/// descriptions and the entry. An estimate, not a measurement.
fn entry_bytes(query: &str) -> usize {
    2 * query.len() + 2048
}

/// One prepared statement.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub query: String,
    /// The keyspace `USE`d when it was prepared (resolves unqualified names).
    pub keyspace: Option<String>,
    pub statement: Statement,
    pub binds: Vec<ColumnSpec>,
    pub partition_key_indexes: Vec<u16>,
    /// A read or write of one partition named whole by bind markers: short
    /// work, which a node may run on its async workers (see
    /// [`crate::node::Node::inline_execution`]).
    pub single_partition: bool,
    pub result_columns: Option<Vec<ColumnSpec>>,
    /// The v5 result metadata id of `result_columns`, computed once here.
    pub result_metadata_id: [u8; 16],
}

/// A cached statement, when it was last used, and the bytes it counts.
struct Entry {
    used: u64,
    bytes: usize,
    prepared: std::sync::Arc<Prepared>,
}

/// What the cache holds, under one lock.
#[derive(Default)]
struct Entries {
    map: HashMap<[u8; 16], Entry>,
    /// Ticks on every use: the least recently used has the smallest.
    clock: u64,
    bytes: usize,
}

/// The node's prepared statement cache, bounded in bytes (Cassandra's
/// `prepared_statements_cache_size`) and in count.
pub struct PreparedCache {
    entries: Mutex<Entries>,
    bytes_max: usize,
}

impl std::fmt::Debug for PreparedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.lock();
        f.debug_struct("PreparedCache")
            .field("statements", &entries.map.len())
            .field("bytes", &entries.bytes)
            .field("bytes_max", &self.bytes_max)
            .finish()
    }
}

impl PreparedCache {
    pub fn new(bytes_max: usize) -> PreparedCache {
        PreparedCache {
            entries: Mutex::new(Entries::default()),
            bytes_max,
        }
    }

    pub fn get(&self, id: &[u8]) -> Option<std::sync::Arc<Prepared>> {
        let key: [u8; 16] = id.try_into().ok()?;
        let mut entries = self.entries.lock();
        entries.clock += 1;
        let now = entries.clock;
        entries.map.get_mut(&key).map(|entry| {
            entry.used = now;
            entry.prepared.clone()
        })
    }

    /// Statements held and the bytes they count.
    pub fn size(&self) -> (usize, usize) {
        let entries = self.entries.lock();
        (entries.map.len(), entries.bytes)
    }

    /// Forgets every statement (after a schema change that alters what
    /// they describe); clients get Unprepared and prepare again.
    pub fn clear(&self) {
        let mut entries = self.entries.lock();
        entries.map.clear();
        entries.bytes = 0;
    }

    /// Keeps `prepared`, dropping the least recently used statements until
    /// it fits; a statement larger than the whole cache is refused.
    fn insert(
        &self,
        id: [u8; 16],
        prepared: Prepared,
    ) -> Result<std::sync::Arc<Prepared>, CqlError> {
        let bytes = entry_bytes(&prepared.query);
        if bytes > self.bytes_max {
            return Err(CqlError::Invalid(format!(
                "prepared statement of {} bytes counts {bytes} bytes in the prepared statement cache, \
                 more than all of it ({} bytes, prepared_statements_cache_size); \
                 send it unprepared or raise the cache size",
                prepared.query.len(),
                self.bytes_max
            )));
        }
        let mut entries = self.entries.lock();
        entries.clock += 1;
        let now = entries.clock;
        if let Some(old) = entries.map.remove(&id) {
            entries.bytes -= old.bytes;
        }
        while entries.bytes + bytes > self.bytes_max || entries.map.len() >= PREPARED_STATEMENTS_MAX
        {
            let Some(oldest) = entries
                .map
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(evicted) = entries.map.remove(&oldest) {
                entries.bytes -= evicted.bytes;
            }
        }
        let prepared = std::sync::Arc::new(prepared);
        entries.bytes += bytes;
        entries.map.insert(
            id,
            Entry {
                used: now,
                bytes,
                prepared: prepared.clone(),
            },
        );
        assert!(
            entries.bytes <= self.bytes_max,
            "prepared statement cache over its bytes"
        );
        Ok(prepared)
    }
}

/// The id of a query text in a keyspace.
fn statement_id(keyspace: Option<&str>, query: &str) -> [u8; 16] {
    let text = format!("{}\u{0}{query}", keyspace.unwrap_or(""));
    crate::results::fingerprint(text.as_bytes())
}

/// Prepares `query`; returns its id and description.
pub fn prepare(
    node: &Node,
    session: &Session,
    query: &str,
) -> Result<([u8; 16], std::sync::Arc<Prepared>), CqlError> {
    let statement = parse(query).map_err(|e| CqlError::Syntax(e.to_string()))?;
    if let Statement::NotYetSupported(what) = &statement {
        return Err(CqlError::not_yet_supported(what));
    }
    let (binds, partition_key_indexes, result_columns) = describe(node, session, &statement)?;
    let id = statement_id(session.keyspace.as_deref(), query);
    let single_partition = !partition_key_indexes.is_empty()
        && matches!(
            statement,
            Statement::Insert { .. }
                | Statement::Update { .. }
                | Statement::Delete { .. }
                | Statement::Select { .. }
        );
    let prepared = Prepared {
        single_partition,
        query: query.to_owned(),
        keyspace: session.keyspace.clone(),
        statement,
        binds,
        partition_key_indexes,
        result_metadata_id: crate::results::metadata_id(
            result_columns.as_deref().unwrap_or_default(),
        ),
        result_columns,
    };
    Ok((id, node.prepared.insert(id, prepared)?))
}

type Description = (Vec<ColumnSpec>, Vec<u16>, Option<Vec<ColumnSpec>>);

/// Bind variables, partition key bind indexes and result columns of a statement.
fn describe(
    node: &Node,
    session: &Session,
    statement: &Statement,
) -> Result<Description, CqlError> {
    let mut markers: Vec<(BindMarker, ColumnSpec, Option<String>)> = Vec::new();
    let table_of =
        |name: &crate::cql::ast::QualifiedName| -> Result<std::sync::Arc<TableSchema>, CqlError> {
            let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
            node.catalog
                .read()
                .table(&keyspace, &name.name)
                .ok_or_else(|| CqlError::Invalid(format!("unconfigured table {}", name.name)))
        };
    let mut result_columns = None;
    let mut table_for_keys = None;
    match statement {
        Statement::Insert {
            table,
            columns,
            values,
            using,
            ..
        } => {
            let schema = table_of(table)?;
            if columns.len() != values.len() {
                return Err(CqlError::Invalid(format!(
                    "Unmatched column names/values: {} columns, {} values",
                    columns.len(),
                    values.len()
                )));
            }
            check_insert_names_key(&schema, columns)?;
            for (column, term) in columns.iter().zip(values) {
                let ty = schema
                    .column(column)
                    .map(|c| c.ty.clone())
                    .ok_or_else(|| CqlError::Invalid(format!("Undefined column name {column}")))?;
                collect(term, &schema, column, &ty, &mut markers);
            }
            collect_using(using, &schema, &mut markers);
            table_for_keys = Some(schema);
        }
        Statement::Update {
            table,
            using,
            assignments,
            relations,
            ..
        } => {
            let schema = table_of(table)?;
            collect_using(using, &schema, &mut markers);
            for (column, assignment) in assignments {
                let ty = schema
                    .column(column)
                    .map(|c| c.ty.clone())
                    .ok_or_else(|| CqlError::Invalid(format!("Undefined column name {column}")))?;
                match assignment {
                    Assignment::Set(term) | Assignment::Add(term) | Assignment::Prepend(term) => {
                        collect(term, &schema, column, &ty, &mut markers)
                    }
                    Assignment::Remove(term) => {
                        let removed = match &ty {
                            CqlType::Map(key, _) => CqlType::Set(key.clone()),
                            other => other.clone(),
                        };
                        collect(term, &schema, column, &removed, &mut markers)
                    }
                    Assignment::SetField(field, term) => {
                        let field_ty = match ty.unfrozen() {
                            CqlType::UserType(udt) => udt
                                .fields
                                .iter()
                                .find(|(name, _)| name == field)
                                .map(|(_, t)| t.clone()),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            CqlError::Invalid(format!(
                                "Unknown field {field} in value of column {column}"
                            ))
                        })?;
                        collect(
                            term,
                            &schema,
                            &format!("{column}.{field}"),
                            &field_ty,
                            &mut markers,
                        )
                    }
                    Assignment::SetElement(key, value) => {
                        // Named and typed as Cassandra names them:
                        // key(m)/value(m) for a map, idx(l)/value(l) for a list.
                        let (key_name, key_ty, value_ty) = match ty.unfrozen() {
                            CqlType::Map(k, v) => ("key", (**k).clone(), (**v).clone()),
                            CqlType::List(e) => ("idx", CqlType::Int, (**e).clone()),
                            _ => ("idx", CqlType::Int, ty.clone()),
                        };
                        let key_column = format!("{key_name}({column})");
                        let value_column = format!("value({column})");
                        collect(key, &schema, &key_column, &key_ty, &mut markers);
                        collect(value, &schema, &value_column, &value_ty, &mut markers);
                    }
                }
            }
            collect_relations(relations, &schema, &mut markers)?;
            table_for_keys = Some(schema);
        }
        Statement::Delete {
            table,
            columns,
            using,
            relations,
            ..
        } => {
            let schema = table_of(table)?;
            for (column, part) in columns {
                let Deleted::Element(element) = part else {
                    continue;
                };
                let ty = schema
                    .column(column)
                    .map(|c| c.ty.clone())
                    .ok_or_else(|| CqlError::Invalid(format!("Undefined column name {column}")))?;
                // Named as Cassandra names them: key(m) for a map or set,
                // idx(l) for a list.
                let (name, element_ty) = match ty.unfrozen() {
                    CqlType::Map(key, _) | CqlType::Set(key) => ("key", (**key).clone()),
                    _ => ("idx", CqlType::Int),
                };
                collect(
                    element,
                    &schema,
                    &format!("{name}({column})"),
                    &element_ty,
                    &mut markers,
                );
            }
            collect_using(using, &schema, &mut markers);
            collect_relations(relations, &schema, &mut markers)?;
            table_for_keys = Some(schema);
        }
        Statement::Select {
            table,
            selectors,
            relations,
            limit,
            json,
            ..
        } => {
            let keyspace = resolve_keyspace(table, session.keyspace.as_deref())?;
            if SYSTEM_KEYSPACES.contains(&keyspace.as_str()) {
                let catalog = node.catalog.read();
                let virtual_table = virtual_table(&keyspace, &table.name, node, &catalog)
                    .ok_or_else(|| {
                        CqlError::Invalid(format!("unconfigured table {}", table.name))
                    })?;
                for relation in relations {
                    if let Relation::Column { column, value, .. } = relation {
                        if let Some(spec) = virtual_table.columns.iter().find(|c| &c.name == column)
                        {
                            collect_spec(value, spec.clone(), &mut markers);
                        }
                    }
                }
                result_columns = Some(select_columns(&virtual_table.columns, selectors)?);
            } else {
                let schema = table_of(table)?;
                collect_relations(relations, &schema, &mut markers)?;
                result_columns = Some(crate::executor::result_columns(&schema, selectors, *json)?);
                table_for_keys = Some(schema);
            }
            if let Some(term) = limit {
                collect_spec(
                    term,
                    ColumnSpec {
                        keyspace: keyspace.clone(),
                        table: table.name.clone(),
                        name: "[limit]".into(),
                        ty: CqlType::Int,
                    },
                    &mut markers,
                );
            }
        }
        Statement::Batch { .. } => {
            return Err(CqlError::not_yet_supported("preparing a BATCH statement"))
        }
        _ => {}
    }
    markers.sort_by_key(|(marker, _, _)| match marker {
        BindMarker::Positional(i) => *i,
        BindMarker::Named(_, i) => *i,
    });
    let binds: Vec<ColumnSpec> = markers
        .iter()
        .map(|(marker, spec, _)| match marker {
            BindMarker::Named(name, _) => ColumnSpec {
                name: name.clone(),
                ..spec.clone()
            },
            BindMarker::Positional(_) => spec.clone(),
        })
        .collect();
    let mut partition_key_indexes = Vec::new();
    if let Some(schema) = table_for_keys {
        for column in schema.partition_key() {
            match markers
                .iter()
                .position(|(_, _, key_column)| key_column.as_deref() == Some(column.name.as_str()))
            {
                Some(index) => partition_key_indexes.push(index as u16),
                None => {
                    partition_key_indexes.clear();
                    break;
                }
            }
        }
    }
    Ok((binds, partition_key_indexes, result_columns))
}

fn spec(table: &TableSchema, name: &str, ty: CqlType) -> ColumnSpec {
    ColumnSpec {
        keyspace: table.keyspace.clone(),
        table: table.name.clone(),
        name: name.to_owned(),
        ty,
    }
}

fn collect_spec(
    term: &Term,
    spec: ColumnSpec,
    out: &mut Vec<(BindMarker, ColumnSpec, Option<String>)>,
) {
    if let Term::Bind(marker) = term {
        out.push((marker.clone(), spec, None));
    }
}

/// Records the bind markers of `term`, a value of `column`.
fn collect(
    term: &Term,
    table: &TableSchema,
    column: &str,
    ty: &CqlType,
    out: &mut Vec<(BindMarker, ColumnSpec, Option<String>)>,
) {
    let is_key = table
        .column(column)
        .is_some_and(|c| c.kind == ColumnKind::PartitionKey);
    match term {
        Term::Bind(marker) => out.push((
            marker.clone(),
            spec(table, column, ty.clone()),
            is_key.then(|| column.to_owned()),
        )),
        Term::List(items) | Term::Set(items) | Term::Tuple(items) => {
            let element = match ty.unfrozen() {
                CqlType::List(e) | CqlType::Set(e) => (**e).clone(),
                other => other.clone(),
            };
            for item in items {
                collect(item, table, column, &element, out);
            }
        }
        _ => {}
    }
}

fn collect_using(
    using: &Using,
    table: &TableSchema,
    out: &mut Vec<(BindMarker, ColumnSpec, Option<String>)>,
) {
    if let Some(term) = &using.timestamp {
        collect_spec(term, spec(table, "[timestamp]", CqlType::BigInt), out);
    }
    if let Some(term) = &using.ttl {
        collect_spec(term, spec(table, "[ttl]", CqlType::Int), out);
    }
}

fn collect_relations(
    relations: &[Relation],
    table: &TableSchema,
    out: &mut Vec<(BindMarker, ColumnSpec, Option<String>)>,
) -> Result<(), CqlError> {
    for relation in relations {
        match relation {
            Relation::Column { column, op, value } => {
                let ty = table
                    .column(column)
                    .map(|c| c.ty.clone())
                    .ok_or_else(|| CqlError::Invalid(format!("Undefined column name {column}")))?;
                let ty = crate::executor::operand_type(&ty, *op).clone();
                match (op, value) {
                    (Operator::In, Term::Bind(marker)) => out.push((
                        marker.clone(),
                        spec(table, &format!("in({column})"), CqlType::List(Box::new(ty))),
                        None,
                    )),
                    _ => collect(value, table, column, &ty, out),
                }
            }
            Relation::Token { value, .. } => collect_spec(
                value,
                spec(table, "partition key token", CqlType::BigInt),
                out,
            ),
            Relation::MultiColumn { columns, op, value } => {
                let types: Vec<CqlType> = columns
                    .iter()
                    .map(|name| {
                        table.column(name).map(|c| c.ty.clone()).ok_or_else(|| {
                            CqlError::Invalid(format!("Undefined column name {name}"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let label = format!("({})", columns.join(","));
                match (op, value) {
                    (Operator::In, Term::Bind(marker)) => out.push((
                        marker.clone(),
                        spec(
                            table,
                            &format!("in{label}"),
                            CqlType::List(Box::new(CqlType::Tuple(types))),
                        ),
                        None,
                    )),
                    (_, Term::Bind(marker)) => out.push((
                        marker.clone(),
                        spec(table, &label, CqlType::Tuple(types)),
                        None,
                    )),
                    (_, Term::Tuple(items)) if *op != Operator::In => {
                        for ((item, name), ty) in items.iter().zip(columns).zip(&types) {
                            collect(item, table, name, ty, out);
                        }
                    }
                    (_, Term::Tuple(tuples) | Term::List(tuples)) => {
                        for tuple in tuples {
                            if let Term::Tuple(items) = tuple {
                                for ((item, name), ty) in items.iter().zip(columns).zip(&types) {
                                    collect(item, table, name, ty, out);
                                }
                            } else if let Term::Bind(marker) = tuple {
                                out.push((
                                    marker.clone(),
                                    spec(table, &label, CqlType::Tuple(types.clone())),
                                    None,
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// An INSERT must name the whole partition key, and the whole clustering
/// key unless it writes only static columns: checked at PREPARE as
/// Cassandra does (JSON inserts name their columns in the value).
fn check_insert_names_key(table: &TableSchema, columns: &[String]) -> Result<(), CqlError> {
    if columns.is_empty() {
        return Ok(());
    }
    let named = |c: &crate::schema::ColumnSchema| columns.contains(&c.name);
    if let Some(missing) = table.partition_key().find(|c| !named(c)) {
        return Err(CqlError::Invalid(format!(
            "Some partition key parts are missing: {}",
            missing.name
        )));
    }
    let statics_only = columns.iter().all(|n| {
        table
            .column(n)
            .is_some_and(|c| matches!(c.kind, ColumnKind::PartitionKey | ColumnKind::Static))
    }) && columns.iter().any(|n| {
        table
            .column(n)
            .is_some_and(|c| c.kind == ColumnKind::Static)
    });
    if !statics_only {
        if let Some(missing) = table.clustering().find(|c| !named(c)) {
            return Err(CqlError::Invalid(format!(
                "Some clustering keys are missing: {}",
                missing.name
            )));
        }
    }
    Ok(())
}

fn select_columns(all: &[ColumnSpec], selectors: &[Selector]) -> Result<Vec<ColumnSpec>, CqlError> {
    if selectors.is_empty() {
        return Ok(all.to_vec());
    }
    let mut out = Vec::new();
    for selector in selectors {
        let (inner, alias) = match selector {
            Selector::Aliased(inner, alias) => (inner.as_ref(), Some(alias.clone())),
            other => (other, None),
        };
        match inner {
            Selector::Column(name) => {
                let column = all
                    .iter()
                    .find(|c| &c.name == name)
                    .ok_or_else(|| CqlError::Invalid(format!("Undefined column name {name}")))?;
                out.push(ColumnSpec {
                    name: alias.unwrap_or_else(|| column.name.clone()),
                    ..column.clone()
                });
            }
            Selector::CountAll => {
                let first = all
                    .first()
                    .cloned()
                    .ok_or_else(|| CqlError::Invalid("no columns".into()))?;
                out.push(ColumnSpec {
                    name: alias.unwrap_or_else(|| "count".into()),
                    ty: CqlType::BigInt,
                    ..first
                });
            }
            _ => return Err(CqlError::not_yet_supported("functions in selections")),
        }
    }
    Ok(out)
}

fn global_flag(specs: &[ColumnSpec]) -> i32 {
    i32::from(crate::results::one_table(specs))
}

/// The RESULT body of a PREPARE (kind 4) in `version`'s layout.
pub fn prepared_result(id: &[u8; 16], prepared: &Prepared, version: u8) -> Bytes {
    let mut w = BodyWriter::new();
    w.write_int(0x0004);
    w.write_short_bytes(id);
    if version >= 5 {
        w.write_short_bytes(&prepared.result_metadata_id);
    }
    // Bind variable metadata.
    w.write_int(global_flag(&prepared.binds));
    w.write_int(prepared.binds.len() as i32);
    // The partition key's bind indexes arrived with v4; a v3 driver reads
    // the column specifications right after the count.
    if version >= 4 {
        w.write_int(prepared.partition_key_indexes.len() as i32);
        for index in &prepared.partition_key_indexes {
            w.write_short(*index);
        }
    }
    crate::results::write_specs(&mut w, &prepared.binds);
    // Result metadata.
    match &prepared.result_columns {
        Some(columns) => {
            w.write_int(global_flag(columns));
            w.write_int(columns.len() as i32);
            crate::results::write_specs(&mut w, columns);
        }
        None => {
            w.write_int(0x0004);
            w.write_int(0);
        }
    }
    w.into_bytes()
}

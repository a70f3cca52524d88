//! INSERT, UPDATE and DELETE turned into one partition's mutation: the
//! write's timestamp and TTL, the row marker, column and collection-element
//! cells, list operations by index, and deletes of this node's trace rows.

use bytes::Bytes;

use storage_lsm::model::{
    Cell, ClusteringBound, ClusteringRange, DeletionTime, Mutation, PartitionKey, PartitionUpdate,
    RangeTombstone, Row,
};

use crate::cql::ast::{Assignment, Deleted, Operator, Relation, Statement, Term, Using};
use crate::node::Session;
use crate::protocol::error::CqlError;
use crate::protocol::primitives::Value;
use crate::results::ResultBody;
use crate::schema::{ColumnKind, ColumnSchema, TableSchema, ROW_MARKER};
use crate::types::CqlType;
use crate::values::{split_tuple, term_value};

use crate::schema::TTL_MAX_S;

use super::cells::{
    cell, cells_update, element_cell, field_path, list_path, split_collection, split_entries,
};
use super::keys::{clustering_key, partition_key};
use super::{invalid, Context};

/// A write to one column, evaluated.
#[derive(Debug, Clone)]
pub(super) enum ColumnWrite {
    Set(Value),
    Add(Value),
    Prepend(Value),
    Remove(Value),
    SetElement(Bytes, Value),
    /// One field of a non-frozen user-defined type, by position.
    SetField(usize, Value),
}

/// The position and type of a field of a non-frozen user-defined type
/// column named in a statement (`SET addr.zip = ?`, `DELETE addr.zip`).
fn udt_field<'c>(column: &'c ColumnSchema, field: &str) -> Result<(usize, &'c CqlType), CqlError> {
    let CqlType::UserType(udt) = &column.ty else {
        return Err(invalid(format!(
            "Invalid field {field} of column {} of type {}: only a non-frozen user-defined type's fields can be set or deleted one by one",
            column.name, column.ty
        )));
    };
    udt.fields
        .iter()
        .position(|(name, _)| name == field)
        .map(|index| (index, &udt.fields[index].1))
        .ok_or_else(|| {
            invalid(format!(
                "Unknown field {field} in value of user defined type {}",
                udt.name
            ))
        })
}

/// The cells a column write becomes. A non-frozen collection is one cell
/// per element; overwriting it first deletes the old elements (a column
/// tombstone one microsecond older than the new elements).
pub(super) fn column_cells(
    column: &ColumnSchema,
    write: &ColumnWrite,
    timestamp: i64,
    ttl: i64,
    now_s: i64,
) -> Result<Vec<Cell>, CqlError> {
    if !column.ty.is_multi_cell() {
        return match write {
            ColumnWrite::Set(Value::Set(bytes)) => Ok(vec![cell(
                column.id,
                timestamp,
                ttl,
                now_s,
                Some(bytes.clone()),
            )]),
            ColumnWrite::Set(Value::Null) => Ok(vec![cell(column.id, timestamp, ttl, now_s, None)]),
            ColumnWrite::Set(Value::NotSet) => Ok(Vec::new()),
            _ => Err(invalid(format!(
                "Invalid operation on column {}",
                column.name
            ))),
        };
    }
    let elements = |bytes: &Bytes, prepend: bool| -> Result<Vec<Cell>, CqlError> {
        let mut out = Vec::new();
        match &column.ty {
            CqlType::Set(element) => {
                for item in split_collection(bytes)? {
                    let mut path = Vec::new();
                    element
                        .encode_comparable(&item, false, &mut path)
                        .map_err(|e| invalid(e.0))?;
                    out.push(element_cell(
                        column.id,
                        Bytes::from(path),
                        timestamp,
                        ttl,
                        now_s,
                        Some(Bytes::new()),
                    ));
                }
            }
            CqlType::Map(key, _) => {
                let items = split_entries(bytes, 2)?;
                for pair in items.chunks(2) {
                    let (Some(k), Some(v)) = (pair.first(), pair.get(1)) else {
                        continue;
                    };
                    let mut path = Vec::new();
                    key.encode_comparable(k, false, &mut path)
                        .map_err(|e| invalid(e.0))?;
                    out.push(element_cell(
                        column.id,
                        Bytes::from(path),
                        timestamp,
                        ttl,
                        now_s,
                        Some(v.clone()),
                    ));
                }
            }
            CqlType::UserType(udt) => {
                let fields = split_tuple(bytes)?;
                if fields.len() > udt.fields.len() {
                    return Err(invalid(format!(
                        "Invalid value for {}: {} fields, but type {} has {}",
                        column.name,
                        fields.len(),
                        udt.name,
                        udt.fields.len()
                    )));
                }
                for (i, field) in fields.into_iter().enumerate() {
                    if let Some(value) = field {
                        out.push(element_cell(
                            column.id,
                            field_path(i)?,
                            timestamp,
                            ttl,
                            now_s,
                            Some(value),
                        ));
                    }
                }
            }
            CqlType::List(_) => {
                for (i, item) in split_collection(bytes)?.into_iter().enumerate() {
                    out.push(element_cell(
                        column.id,
                        list_path(timestamp, i, prepend),
                        timestamp,
                        ttl,
                        now_s,
                        Some(item),
                    ));
                }
            }
            _ => {}
        }
        Ok(out)
    };
    match write {
        ColumnWrite::Set(Value::Set(bytes)) => {
            let mut cells = vec![Cell::tombstone(
                column.id,
                timestamp.saturating_sub(1),
                now_s,
            )];
            cells.extend(elements(bytes, false)?);
            Ok(cells)
        }
        ColumnWrite::Set(Value::Null) => Ok(vec![Cell::tombstone(column.id, timestamp, now_s)]),
        ColumnWrite::Add(Value::Set(bytes)) => elements(bytes, false),
        ColumnWrite::Prepend(Value::Set(bytes)) => elements(bytes, true),
        ColumnWrite::Remove(Value::Set(bytes)) => {
            let key_ty = match &column.ty {
                CqlType::Set(element) => element,
                CqlType::Map(key, _) => key,
                _ => {
                    return Err(CqlError::not_yet_supported(
                        "removing list elements by value",
                    ))
                }
            };
            let mut cells = Vec::new();
            for item in split_collection(bytes)? {
                let mut path = Vec::new();
                key_ty
                    .encode_comparable(&item, false, &mut path)
                    .map_err(|e| invalid(e.0))?;
                cells.push(element_cell(
                    column.id,
                    Bytes::from(path),
                    timestamp,
                    0,
                    now_s,
                    None,
                ));
            }
            Ok(cells)
        }
        ColumnWrite::SetField(index, value) => {
            let value = match value {
                Value::Set(v) => Some(v.clone()),
                Value::Null => None,
                Value::NotSet => return Ok(Vec::new()),
            };
            Ok(vec![element_cell(
                column.id,
                field_path(*index)?,
                timestamp,
                ttl,
                now_s,
                value,
            )])
        }
        ColumnWrite::SetElement(key, value) => {
            let CqlType::Map(key_ty, _) = &column.ty else {
                return Err(CqlError::not_yet_supported(
                    "setting list elements by index",
                ));
            };
            let mut path = Vec::new();
            key_ty
                .encode_comparable(key, false, &mut path)
                .map_err(|e| invalid(e.0))?;
            let value = match value {
                Value::Set(v) => Some(v.clone()),
                _ => None,
            };
            Ok(vec![element_cell(
                column.id,
                Bytes::from(path),
                timestamp,
                ttl,
                now_s,
                value,
            )])
        }
        _ => Ok(Vec::new()),
    }
}

impl Context<'_> {
    /// Timestamp (µs) and TTL (s) a write uses.
    pub(super) fn write_time(
        &self,
        table: &TableSchema,
        using: &Using,
        outer: Option<&Using>,
    ) -> Result<(i64, i64), CqlError> {
        let timestamp = match using
            .timestamp
            .as_ref()
            .or(outer.and_then(|u| u.timestamp.as_ref()))
        {
            Some(term) => self.int_option(term, "timestamp")?,
            None => self.params.timestamp.unwrap_or(self.bindings.now_micros),
        };
        let ttl = match using.ttl.as_ref().or(outer.and_then(|u| u.ttl.as_ref())) {
            Some(term) => self.int_option(term, "ttl")?,
            None => table.default_time_to_live,
        };
        if ttl < 0 {
            return Err(invalid(format!(
                "A TTL must be greater or equal to 0, but was {ttl}"
            )));
        }
        if ttl > TTL_MAX_S {
            return Err(invalid(format!(
                "ttl is too large. requested ({ttl}) maximum ({TTL_MAX_S})"
            )));
        }
        Ok((timestamp, ttl))
    }

    pub(super) fn mutation(
        &self,
        session: &Session,
        statement: &Statement,
        outer: Option<&Using>,
    ) -> Result<(std::sync::Arc<TableSchema>, Mutation), CqlError> {
        let now_s = self.bindings.now_micros / 1_000_000;
        if matches!(
            statement,
            Statement::Insert {
                if_not_exists: true,
                ..
            } | Statement::Update {
                has_conditions: true,
                ..
            } | Statement::Delete {
                has_conditions: true,
                ..
            }
        ) {
            return Err(CqlError::not_yet_supported(
                "lightweight transactions (IF conditions)",
            ));
        }
        match statement {
            Statement::Insert {
                table: name,
                columns,
                values,
                json,
                using,
                ..
            } => {
                let table = self.table(name, session)?;
                let from_json;
                let (columns, values) = match json {
                    Some((text, default_unset)) => {
                        from_json = self.json_columns(&table, text, *default_unset)?;
                        (&from_json.0, &from_json.1)
                    }
                    None => (columns, values),
                };
                if columns.len() != values.len() {
                    return Err(invalid(format!(
                        "Unmatched column names/values: {} columns, {} values",
                        columns.len(),
                        values.len()
                    )));
                }
                let (timestamp, ttl) = self.write_time(&table, using, outer)?;
                let mut assigned = Vec::with_capacity(columns.len());
                for (column, term) in columns.iter().zip(values) {
                    let schema = table
                        .column(column)
                        .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                    if assigned
                        .iter()
                        .any(|(c, _): &(&ColumnSchema, Value)| c.name == *column)
                    {
                        return Err(invalid(format!(
                            "Multiple definitions found for column {column}"
                        )));
                    }
                    assigned.push((schema, term_value(&schema.ty, term, column, self.bindings)?));
                }
                let key = partition_key(&table, |c| {
                    assigned
                        .iter()
                        .find(|(s, _)| s.name == c.name)
                        .map(|(_, v)| v.clone())
                })?;
                // Only the partition key and static columns: no row, the
                // static row alone (as Cassandra writes it).
                let kind_given =
                    |kind: fn(&ColumnKind) -> bool| assigned.iter().any(|(s, _)| kind(&s.kind));
                let statics_only = table.clustering().next().is_some()
                    && kind_given(|k| matches!(k, ColumnKind::Static))
                    && !kind_given(|k| matches!(k, ColumnKind::Clustering | ColumnKind::Regular));
                let clustering = if statics_only {
                    Bytes::new()
                } else {
                    clustering_key(&table, |c| {
                        assigned
                            .iter()
                            .find(|(s, _)| s.name == c.name)
                            .map(|(_, v)| v.clone())
                    })?
                };
                let mut written = Vec::with_capacity(assigned.len());
                for (schema, value) in &assigned {
                    if matches!(schema.kind, ColumnKind::Regular | ColumnKind::Static) {
                        let cells = column_cells(
                            schema,
                            &ColumnWrite::Set(value.clone()),
                            timestamp,
                            ttl,
                            now_s,
                        )?;
                        written.push((*schema, cells));
                    }
                }
                let mut update = cells_update(&table, &written, clustering)?;
                if statics_only {
                    // No row marker: the static row is the whole write.
                } else if let Some(row) = update.rows.first_mut() {
                    row.add_cell(cell(ROW_MARKER, timestamp, ttl, now_s, Some(Bytes::new())));
                } else {
                    update.rows.push(Row::new(
                        Bytes::new(),
                        vec![cell(ROW_MARKER, timestamp, ttl, now_s, Some(Bytes::new()))],
                    ));
                }
                Ok((
                    table.clone(),
                    Mutation {
                        table: table.table_id(),
                        key,
                        update,
                    },
                ))
            }
            Statement::Update {
                table: name,
                using,
                assignments,
                relations,
                ..
            } => {
                let table = self.table(name, session)?;
                let (timestamp, ttl) = self.write_time(&table, using, outer)?;
                let restrictions = self.restrictions(&table, relations)?;
                let key = restrictions.single_partition(&table)?;
                // Only static columns set: the partition key alone names them.
                let only_statics = !assignments.is_empty()
                    && assignments.iter().all(|(column, _)| {
                        table
                            .column(column)
                            .is_some_and(|c| matches!(c.kind, ColumnKind::Static))
                    });
                let clustering = if only_statics && !restrictions.restricts_clustering() {
                    Bytes::new()
                } else {
                    restrictions.full_clustering(&table)?
                };
                let mut assigned = Vec::with_capacity(assignments.len());
                for (column, assignment) in assignments {
                    let schema = table
                        .column(column)
                        .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                    if matches!(
                        schema.kind,
                        ColumnKind::PartitionKey | ColumnKind::Clustering
                    ) {
                        return Err(invalid(format!(
                            "PRIMARY KEY part {column} found in SET part"
                        )));
                    }
                    if let Some(cells) = self.list_update(
                        &table,
                        &key,
                        &clustering,
                        schema,
                        assignment,
                        timestamp,
                        ttl,
                        now_s,
                    )? {
                        assigned.push((schema, cells));
                        continue;
                    }
                    let write = self.column_write(schema, assignment)?;
                    assigned.push((schema, column_cells(schema, &write, timestamp, ttl, now_s)?));
                }
                let update = cells_update(&table, &assigned, clustering)?;
                Ok((
                    table.clone(),
                    Mutation {
                        table: table.table_id(),
                        key,
                        update,
                    },
                ))
            }
            Statement::Delete {
                table: name,
                columns,
                using,
                relations,
                ..
            } => {
                let table = self.table(name, session)?;
                if using.ttl.is_some() {
                    return Err(invalid("Cannot set a TTL on DELETE"));
                }
                let (timestamp, _) = self.write_time(&table, using, outer)?;
                let deletion = DeletionTime::new(timestamp, now_s);
                let restrictions = self.restrictions(&table, relations)?;
                let key = restrictions.single_partition(&table)?;
                let clustering_count = table.clustering().count();
                let mut update = PartitionUpdate::default();
                if !columns.is_empty() {
                    let mut cells = Vec::new();
                    let mut statics = Vec::new();
                    for (column, part) in columns {
                        let schema = table
                            .column(column)
                            .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                        let mut tombstone = Cell::tombstone(schema.id, timestamp, now_s);
                        if let Deleted::Field(field) = part {
                            tombstone.path = Some(field_path(udt_field(schema, field)?.0)?);
                        }
                        if let Deleted::Element(element) = part {
                            tombstone.path = Some(match schema.ty {
                                CqlType::List(_) => {
                                    let clustering = match schema.kind {
                                        ColumnKind::Static => Bytes::new(),
                                        _ => restrictions.full_clustering(&table)?,
                                    };
                                    let elements =
                                        self.list_elements(&table, &key, &clustering, schema)?;
                                    let index = self.list_index(element, schema)?;
                                    elements
                                        .get(index)
                                        .map(|(path, _)| path.clone())
                                        .ok_or_else(|| {
                                            invalid(format!(
                                                "Attempted to delete an element from a list which is null or has fewer than {} elements",
                                                index + 1
                                            ))
                                        })?
                                }
                                _ => self.element_path(schema, element)?,
                            });
                        }
                        match schema.kind {
                            ColumnKind::PartitionKey | ColumnKind::Clustering => {
                                return Err(invalid(format!(
                                    "Invalid identifier {column} for deletion (should not be a PRIMARY KEY part)"
                                )))
                            }
                            ColumnKind::Static => statics.push(tombstone),
                            ColumnKind::Regular => cells.push(tombstone),
                        }
                    }
                    // Rows are named only when a regular column is deleted:
                    // static columns alone need the partition key alone.
                    if !cells.is_empty() {
                        let rows = if clustering_count > 0 {
                            restrictions.full_clusterings(&table)?
                        } else {
                            vec![restrictions.full_clustering(&table)?]
                        };
                        for clustering in rows {
                            update.rows.push(Row::new(clustering, cells.clone()));
                        }
                    }
                    if !statics.is_empty() {
                        update.static_row = Some(Row::new(Bytes::new(), statics));
                    }
                } else if restrictions.clustering_depth == clustering_count
                    && restrictions.clustering_slice.is_none()
                    && clustering_count > 0
                {
                    for clustering in restrictions.full_clusterings(&table)? {
                        update.rows.push(Row {
                            clustering,
                            deletion: Some(deletion),
                            cells: Vec::new(),
                        });
                    }
                } else if !restrictions.restricts_clustering() {
                    update.partition_deletion = Some(deletion);
                } else {
                    for range in restrictions.clustering_ranges(&table)? {
                        update
                            .range_tombstones
                            .push(RangeTombstone { range, deletion });
                    }
                }
                Ok((
                    table.clone(),
                    Mutation {
                        table: table.table_id(),
                        key,
                        update,
                    },
                ))
            }
            _ => Err(invalid(
                "Only INSERT, UPDATE and DELETE statements are allowed in a BATCH",
            )),
        }
    }

    /// The columns and values of an `INSERT JSON`.
    pub(super) fn json_columns(
        &self,
        table: &TableSchema,
        text: &Term,
        default_unset: bool,
    ) -> Result<(Vec<String>, Vec<Term>), CqlError> {
        let text = match term_value(&CqlType::Text, text, "[json]", self.bindings)? {
            Value::Set(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| invalid("INSERT JSON needs UTF-8 text"))?,
            _ => return Err(invalid("Got null for INSERT JSON values")),
        };
        let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "Could not decode JSON string as a map: {e}. (String was: {text})"
            ))
        })?;
        let serde_json::Value::Object(object) = parsed else {
            return Err(invalid(format!(
                "Could not decode JSON string as a map: it is not an object. (String was: {text})"
            )));
        };
        let mut given: Vec<(String, serde_json::Value)> = Vec::with_capacity(object.len());
        for (key, value) in object {
            let name = match key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                Some(quoted) => quoted.to_owned(),
                None => key.to_ascii_lowercase(),
            };
            if table.column(&name).is_none() {
                return Err(invalid(format!(
                    "JSON values map contains unrecognized column: {key}"
                )));
            }
            given.push((name, value));
        }
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for column in &table.columns {
            match given.iter().find(|(name, _)| *name == column.name) {
                Some((_, value)) => {
                    columns.push(column.name.clone());
                    values.push(crate::json::to_term(&column.ty, value, &column.name)?);
                }
                None if default_unset
                    || matches!(
                        column.kind,
                        ColumnKind::PartitionKey | ColumnKind::Clustering
                    ) => {}
                None => {
                    columns.push(column.name.clone());
                    values.push(Term::Literal(crate::cql::ast::Literal::Null));
                }
            }
        }
        Ok((columns, values))
    }

    /// The live elements (cell path, value) of a non-frozen list in one
    /// row, in list order: what index and by-value operations need.
    pub(super) fn list_elements(
        &self,
        table: &TableSchema,
        key: &PartitionKey,
        clustering: &Bytes,
        column: &ColumnSchema,
    ) -> Result<Vec<(Bytes, Bytes)>, CqlError> {
        let point = if clustering.is_empty() {
            ClusteringRange::all()
        } else {
            ClusteringRange {
                start: ClusteringBound::Inclusive(clustering.clone()),
                end: ClusteringBound::Inclusive(clustering.clone()),
            }
        };
        let Some(partition) =
            self.read_slices(table, key, std::slice::from_ref(&point), false, 1, None)?
        else {
            return Ok(Vec::new());
        };
        let row = match column.kind {
            ColumnKind::Static => partition.static_row.as_ref(),
            _ => partition.rows.first(),
        };
        let mut elements: Vec<(Bytes, Bytes)> = row
            .map(|row| {
                row.cells
                    .iter()
                    .filter(|c| c.column == column.id)
                    .filter_map(|c| Some((c.path.clone()?, c.value_bytes()?.clone())))
                    .collect()
            })
            .unwrap_or_default();
        elements.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(elements)
    }

    pub(super) fn list_index(&self, term: &Term, column: &ColumnSchema) -> Result<usize, CqlError> {
        match term_value(&CqlType::Int, term, &column.name, self.bindings)? {
            Value::Set(bytes) => {
                let index = i32::from_be_bytes(
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| invalid("a list index is an int"))?,
                );
                usize::try_from(index)
                    .map_err(|_| invalid(format!("Invalid negative list index {index}")))
            }
            _ => Err(invalid(format!(
                "Invalid null value for list index of {}",
                column.name
            ))),
        }
    }

    /// `l[i] = v` and `l = l - [v, ...]` on a non-frozen list: cells that
    /// overwrite or delete existing elements, found by reading the row
    /// first (as Cassandra does). `None` for every other assignment.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn list_update(
        &self,
        table: &TableSchema,
        key: &PartitionKey,
        clustering: &Bytes,
        column: &ColumnSchema,
        assignment: &Assignment,
        timestamp: i64,
        ttl: i64,
        now_s: i64,
    ) -> Result<Option<Vec<Cell>>, CqlError> {
        let CqlType::List(element_ty) = &column.ty else {
            return Ok(None);
        };
        let row_clustering = match column.kind {
            ColumnKind::Static => Bytes::new(),
            _ => clustering.clone(),
        };
        match assignment {
            Assignment::SetElement(index, value) => {
                let index = self.list_index(index, column)?;
                let elements = self.list_elements(table, key, &row_clustering, column)?;
                let Some((path, _)) = elements.get(index) else {
                    return Err(invalid(format!(
                        "List index {index} out of bound, list has size {}",
                        elements.len()
                    )));
                };
                let value = match term_value(element_ty, value, &column.name, self.bindings)? {
                    Value::Set(bytes) => Some(bytes),
                    Value::Null => None,
                    Value::NotSet => return Ok(Some(Vec::new())),
                };
                Ok(Some(vec![element_cell(
                    column.id,
                    path.clone(),
                    timestamp,
                    ttl,
                    now_s,
                    value,
                )]))
            }
            Assignment::Remove(values) => {
                let Value::Set(bytes) =
                    term_value(&column.ty, values, &column.name, self.bindings)?
                else {
                    return Ok(Some(Vec::new()));
                };
                let doomed = split_collection(&bytes)?;
                let elements = self.list_elements(table, key, &row_clustering, column)?;
                Ok(Some(
                    elements
                        .into_iter()
                        .filter(|(_, value)| doomed.contains(value))
                        .map(|(path, _)| element_cell(column.id, path, timestamp, 0, now_s, None))
                        .collect(),
                ))
            }
            _ => Ok(None),
        }
    }

    /// The cell path of one collection element named in a statement.
    pub(super) fn element_path(
        &self,
        column: &ColumnSchema,
        element: &Term,
    ) -> Result<Bytes, CqlError> {
        let key_ty = match column.ty.unfrozen() {
            CqlType::Map(key, _) if column.ty.is_multi_cell() => key,
            CqlType::Set(element) if column.ty.is_multi_cell() => element,
            CqlType::List(_) if column.ty.is_multi_cell() => {
                return Err(CqlError::not_yet_supported("list elements by index"))
            }
            _ => {
                return Err(invalid(format!(
                    "Invalid element access on column {}: it is not a non-frozen map or set",
                    column.name
                )))
            }
        };
        match term_value(key_ty, element, &column.name, self.bindings)? {
            Value::Set(key) => {
                let mut path = Vec::new();
                key_ty
                    .encode_comparable(&key, false, &mut path)
                    .map_err(|e| invalid(e.0))?;
                Ok(Bytes::from(path))
            }
            _ => Err(invalid(format!(
                "Invalid null key for column {}",
                column.name
            ))),
        }
    }

    /// Evaluates one `SET` clause against its column.
    pub(super) fn column_write(
        &self,
        column: &ColumnSchema,
        assignment: &Assignment,
    ) -> Result<ColumnWrite, CqlError> {
        let value = |term: &Term, ty: &CqlType| term_value(ty, term, &column.name, self.bindings);
        let collection = column.ty.is_multi_cell() && !matches!(column.ty, CqlType::UserType(_));
        match assignment {
            Assignment::Set(term) => Ok(ColumnWrite::Set(value(term, &column.ty)?)),
            Assignment::SetField(field, term) => {
                let (index, ty) = udt_field(column, field)?;
                let name = format!("{}.{field}", column.name);
                Ok(ColumnWrite::SetField(
                    index,
                    term_value(ty, term, &name, self.bindings)?,
                ))
            }
            _ if matches!(column.ty, CqlType::Counter) => Err(CqlError::not_yet_supported("counters")),
            _ if !collection => Err(invalid(format!(
                "Invalid operation on column {} of type {}: only non-frozen collections support +, - and [ ]",
                column.name, column.ty
            ))),
            Assignment::Add(term) => Ok(ColumnWrite::Add(value(term, &column.ty)?)),
            Assignment::Prepend(term) => match column.ty {
                CqlType::List(_) => Ok(ColumnWrite::Prepend(value(term, &column.ty)?)),
                _ => Err(invalid(format!(
                    "Invalid operation: prepend is only for lists, and {} is a {}",
                    column.name, column.ty
                ))),
            },
            Assignment::Remove(term) => match &column.ty {
                CqlType::Set(_) => Ok(ColumnWrite::Remove(value(term, &column.ty)?)),
                CqlType::Map(key, _) => Ok(ColumnWrite::Remove(value(term, &CqlType::Set(key.clone()))?)),
                _ => Err(CqlError::not_yet_supported("removing list elements by value")),
            },
            Assignment::SetElement(key, element) => match &column.ty {
                CqlType::Map(key_ty, value_ty) => {
                    let Value::Set(key) = value(key, key_ty)? else {
                        return Err(invalid(format!("Invalid null map key for column {}", column.name)));
                    };
                    Ok(ColumnWrite::SetElement(key, value(element, value_ty)?))
                }
                _ => Err(CqlError::not_yet_supported("setting list elements by index")),
            },
        }
    }

    /// `DELETE [columns] FROM system_traces.sessions WHERE session_id = ?`:
    /// traces are the node's own (see [`crate::traces`]), so a client may
    /// delete them as Cassandra lets it delete rows of its trace tables.
    pub(super) fn delete_trace(
        &self,
        table: &str,
        columns: &[(String, Deleted)],
        relations: &[Relation],
    ) -> Result<ResultBody, CqlError> {
        if table != "sessions" {
            return Err(CqlError::not_yet_supported(&format!(
                "DELETE from system_traces.{table} (only system_traces.sessions)"
            )));
        }
        let [Relation::Column {
            column,
            op: Operator::Eq,
            value,
        }] = relations
        else {
            return Err(invalid(
                "DELETE from system_traces.sessions needs WHERE session_id = <uuid>",
            ));
        };
        if column != "session_id" {
            return Err(invalid(format!(
                "DELETE from system_traces.sessions needs WHERE session_id = <uuid>, not {column}"
            )));
        }
        if columns.iter().any(|(_, part)| part != &Deleted::Column) {
            return Err(invalid(
                "DELETE of a map entry from system_traces.sessions is not supported",
            ));
        }
        let Value::Set(id) = term_value(&CqlType::Uuid, value, column, self.bindings)? else {
            return Err(invalid(
                "Invalid null value in condition for column session_id",
            ));
        };
        let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
        self.node.traces.delete(&id, &names).map_err(invalid)?;
        Ok(ResultBody::Void)
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    #[test]
    fn statics_are_written_with_only_the_partition_key() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (p int, c int, s text STATIC, v int, PRIMARY KEY (p, c))",
            "INSERT INTO t (p, s) VALUES (1, 'only static')",
        ])?;
        assert_eq!(
            node.rows("SELECT p, c, s, v FROM t")?,
            rows(&[&["1", "null", "\"only static\"", "null"]])
        );
        node.run_all(&[
            "UPDATE t SET s = 'updated' WHERE p = 1",
            "INSERT INTO t (p, c, v) VALUES (1, 10, 100)",
        ])?;
        assert_eq!(
            node.rows("SELECT p, c, s, v FROM t")?,
            rows(&[&["1", "10", "\"updated\"", "100"]])
        );
        node.run("DELETE s FROM t WHERE p = 1")?;
        assert_eq!(node.rows("SELECT s, v FROM t")?, rows(&[&["null", "100"]]));
        let error = node.error("UPDATE t SET v = 1 WHERE p = 1")?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m.contains("Some clustering keys are missing")),
            "{error:?}"
        );
        Ok(())
    }

    #[test]
    fn list_set_and_map_operations_change_elements() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>)",
            "INSERT INTO t (k, l, s, m) VALUES (1, [2, 3], {'b'}, {'x': 1})",
            "UPDATE t SET l = [1] + l, l = l + [4] WHERE k = 1",
            "UPDATE t SET l[0] = 10, s = s + {'a'}, m['y'] = 2 WHERE k = 1",
            "UPDATE t SET l = l - [3], s = s - {'b'}, m = m - {'x'} WHERE k = 1",
        ])?;
        assert_eq!(
            node.rows("SELECT l, s, m FROM t WHERE k = 1")?,
            rows(&[&["[10, 2, 4]", "[\"a\"]", "{\"y\": 2}"]])
        );
        node.run("DELETE l[1] FROM t WHERE k = 1")?;
        assert_eq!(
            node.rows("SELECT l FROM t WHERE k = 1")?,
            rows(&[&["[10, 4]"]])
        );
        let error = node.error("UPDATE t SET l[5] = 1 WHERE k = 1")?;
        assert!(matches!(error, CqlError::Invalid(_)), "{error:?}");
        Ok(())
    }

    #[test]
    fn timestamps_decide_and_deletes_shadow() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int, c int, v int, PRIMARY KEY (k, c))",
            "INSERT INTO t (k, c, v) VALUES (1, 1, 1) USING TIMESTAMP 100",
            "INSERT INTO t (k, c, v) VALUES (1, 1, 2) USING TIMESTAMP 50",
            "INSERT INTO t (k, c, v) VALUES (1, 2, 2) USING TIMESTAMP 100",
            "INSERT INTO t (k, c, v) VALUES (1, 3, 3) USING TIMESTAMP 100",
        ])?;
        assert_eq!(
            node.rows("SELECT c, v, writetime(v) FROM t WHERE k = 1")?,
            rows(&[&["1", "1", "100"], &["2", "2", "100"], &["3", "3", "100"]])
        );
        node.run("DELETE FROM t USING TIMESTAMP 200 WHERE k = 1 AND c >= 2")?;
        assert_eq!(node.rows("SELECT c FROM t WHERE k = 1")?, rows(&[&["1"]]));
        node.run("DELETE FROM t USING TIMESTAMP 99 WHERE k = 1")?;
        assert_eq!(
            node.rows("SELECT c FROM t WHERE k = 1")?,
            rows(&[&["1"]]),
            "an older partition deletion leaves the newer row"
        );
        Ok(())
    }

    #[test]
    fn functions_compute_written_and_compared_values() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int PRIMARY KEY, v int, name text, h blob)",
            "INSERT INTO t (k, v, name, h) VALUES (abs(-1), round(7), mask_default('secret'), mask_hash('x'))",
            "UPDATE t SET v = abs(-5) WHERE k = abs(-1)",
        ])?;
        let row = node.rows("SELECT k, v, name FROM t WHERE k = abs(-1)")?;
        assert_eq!(row, rows(&[&["1", "5", "\"****\""]]));
        let hash = node.rows("SELECT h FROM t WHERE k = 1")?;
        assert_eq!(hash[0][0].len(), 2 + 2 + 64, "{hash:?}");
        let error = node.error("INSERT INTO t (k, name) VALUES (2, mask_hash('x'))")?;
        assert!(
            error.to_string().contains("cannot assign result"),
            "{error:?}"
        );
        Ok(())
    }

    #[test]
    fn functions_in_terms_refuse_what_cassandra_refuses() -> TestResult {
        use crate::protocol::messages::{BoundValues, QueryParameters};
        use crate::protocol::primitives::Value;
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE f (k int PRIMARY KEY, n int, t text, a ascii, d decimal)")?;
        for (cql, fragment) in [
            (
                "INSERT INTO f (k, n) VALUES (1, mask_inner(1094795585, 1, 1))",
                "takes and gives text",
            ),
            (
                "INSERT INTO f (k, t) VALUES (1, mask_inner('abcdef', 1, 1, '##'))",
                "exactly one character",
            ),
            (
                "INSERT INTO f (k, a) VALUES (1, mask_inner('abcdef', 1, 1, 'é'))",
                "must be ASCII",
            ),
            ("INSERT INTO f (k, d) VALUES (1, abs(-1.5))", "not decimal"),
            (
                "INSERT INTO f (k, n) VALUES (1, abs(1, 2))",
                "1 required but 2 provided",
            ),
        ] {
            let error = node.error(cql)?;
            assert!(error.to_string().contains(fragment), "{cql}: {error:?}");
        }
        node.run("INSERT INTO f (k, n) VALUES (1, 5)")?;
        let unset = QueryParameters {
            values: BoundValues::Positional(vec![Value::NotSet]),
            ..QueryParameters::default()
        };
        let refused = node.run_with("UPDATE f SET n = abs(?) WHERE k = 1", unset);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("Invalid unset value")),
            "{refused:?}"
        );
        assert_eq!(
            node.rows("SELECT n FROM f WHERE k = 1")?,
            rows(&[&["5"]]),
            "n kept"
        );
        Ok(())
    }

    #[test]
    fn bad_writes_name_what_to_fix() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE t (k int, c int, v int, PRIMARY KEY (k, c))")?;
        for (cql, fragment) in [
            (
                "INSERT INTO t (k, v) VALUES (1, 1)",
                "Some clustering keys are missing: c",
            ),
            (
                "INSERT INTO t (c, v) VALUES (1, 1)",
                "Some partition key parts are missing: k",
            ),
            ("INSERT INTO t (k, c, v) VALUES (1, 1, 'x')", "v"),
            ("INSERT INTO t (k, c, nope) VALUES (1, 1, 1)", "nope"),
            (
                "INSERT INTO t (k, c, v) VALUES (1, 1, 1) USING TTL -1",
                "TTL",
            ),
        ] {
            let error = node.error(cql)?;
            assert!(
                matches!(&error, CqlError::Invalid(m) if m.contains(fragment)),
                "{cql}: {error:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn counter_updates_are_refused_as_not_yet_supported() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE c (k int PRIMARY KEY, n counter)")?;
        let error = node.error("UPDATE c SET n = n + 1 WHERE k = 1")?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m == "not yet supported: counters"),
            "{error:?}"
        );
        Ok(())
    }
}

#[cfg(test)]
mod udt_tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    fn node() -> Result<TestNode, Box<dyn std::error::Error>> {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TYPE user (state text, has_corn boolean)",
            "CREATE TABLE t (a int PRIMARY KEY, b user)",
        ])?;
        Ok(node)
    }

    #[test]
    fn non_frozen_udt_fields_are_written_one_by_one() -> TestResult {
        let mut node = node()?;
        node.run_all(&[
            "INSERT INTO t (a, b) VALUES (0, {state: 'Nebraska', has_corn: true})",
            "UPDATE t SET b.has_corn = false WHERE a = 0",
        ])?;
        assert_eq!(
            node.rows("SELECT b, b.state FROM t WHERE a = 0")?,
            rows(&[&[
                "{\"state\": \"Nebraska\", \"has_corn\": false}",
                "\"Nebraska\""
            ]])
        );
        node.run("UPDATE t SET b.state = null WHERE a = 0")?;
        assert_eq!(
            node.rows("SELECT b FROM t WHERE a = 0")?,
            rows(&[&["{\"state\": null, \"has_corn\": false}"]])
        );
        node.run("DELETE b.has_corn FROM t WHERE a = 0")?;
        assert_eq!(
            node.rows("SELECT b FROM t WHERE a = 0")?,
            rows(&[&["null"]]),
            "a value with every field null reads as null, as in Cassandra"
        );
        node.run_all(&[
            "UPDATE t SET b.has_corn = true WHERE a = 0",
            "UPDATE t SET b = {state: 'Iowa'} WHERE a = 0",
        ])?;
        assert_eq!(
            node.rows("SELECT b FROM t WHERE a = 0")?,
            rows(&[&["{\"state\": \"Iowa\", \"has_corn\": null}"]]),
            "setting the whole value replaces every field"
        );
        node.run_all(&[
            "ALTER TYPE user ADD zip int",
            "UPDATE t SET b.zip = 68501 WHERE a = 0",
        ])?;
        assert_eq!(
            node.rows("SELECT b FROM t WHERE a = 0")?,
            rows(&[&["{\"state\": \"Iowa\", \"has_corn\": null, \"zip\": 68501}"]])
        );
        node.run("DELETE b FROM t WHERE a = 0")?;
        assert_eq!(
            node.rows("SELECT b FROM t WHERE a = 0")?,
            rows(&[&["null"]])
        );
        Ok(())
    }

    #[test]
    fn types_are_capped_at_what_the_protocol_can_describe() -> TestResult {
        let mut node = TestNode::new()?;
        let fields = |count: usize| -> String {
            (0..count)
                .map(|i| format!("f{i} int"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let error = node.error(&format!("CREATE TYPE huge ({})", fields(65_536)))?;
        assert!(error.to_string().contains("at most 65535"), "{error:?}");
        node.run(&format!("CREATE TYPE most ({})", fields(65_535)))?;
        let error = node.error("ALTER TYPE most ADD one_more int")?;
        assert!(error.to_string().contains("at most 65535"), "{error:?}");
        node.run("CREATE TABLE wide (k int PRIMARY KEY, v most)")?;
        node.run("UPDATE wide SET v.f65534 = 7 WHERE k = 1")?;
        assert_eq!(
            node.rows("SELECT v.f65534, v.f0 FROM wide WHERE k = 1")?,
            rows(&[&["7", "null"]])
        );
        let components = vec!["int"; 65_536].join(", ");
        let error = node.error(&format!(
            "CREATE TABLE tup (k int PRIMARY KEY, t tuple<{components}>)"
        ))?;
        assert!(
            error.to_string().contains("at most 65535 components"),
            "{error:?}"
        );
        Ok(())
    }

    #[test]
    fn a_bound_value_with_more_fields_than_its_type_is_refused() -> TestResult {
        use crate::protocol::messages::{BoundValues, QueryParameters};
        use crate::protocol::primitives::Value;
        let mut node = node()?;
        let mut five = Vec::new();
        for field in 0..5u8 {
            five.extend_from_slice(&1i32.to_be_bytes());
            five.push(field);
        }
        let params = QueryParameters {
            values: BoundValues::Positional(vec![Value::Set(bytes::Bytes::from(five))]),
            ..QueryParameters::default()
        };
        let refused = node.run_with("INSERT INTO t (a, b) VALUES (9, ?)", params);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("5 fields, but type user has 2")),
            "{refused:?}"
        );
        Ok(())
    }

    #[test]
    fn non_frozen_udts_show_unfrozen_in_the_schema() -> TestResult {
        let mut node = node()?;
        assert_eq!(
            node.rows(
                "SELECT type FROM system_schema.columns \
                 WHERE keyspace_name = 'ks' AND table_name = 't' AND column_name = 'b'"
            )?,
            rows(&[&["\"user\""]])
        );
        Ok(())
    }

    #[test]
    fn misuses_of_non_frozen_udts_are_refused() -> TestResult {
        let mut node = node()?;
        node.run_all(&[
            "CREATE TABLE f (a int PRIMARY KEY, b frozen<user>)",
            "CREATE TYPE listy (l list<int>)",
        ])?;
        for (cql, fragment) in [
            ("UPDATE t SET b.nope = 1 WHERE a = 0", "Unknown field nope"),
            ("UPDATE t SET b.has_corn = 'yes' WHERE a = 0", "has_corn"),
            (
                "UPDATE f SET b.state = 'x' WHERE a = 0",
                "non-frozen user-defined type",
            ),
            ("DELETE b.nope FROM t WHERE a = 0", "Unknown field nope"),
            (
                "UPDATE t SET b = b + {state: 'x'} WHERE a = 0",
                "Invalid operation",
            ),
            ("SELECT writetime(b) FROM t", "non-frozen"),
            (
                "CREATE TABLE x (a int PRIMARY KEY, l list<user>)",
                "not allowed inside collections",
            ),
            ("CREATE TABLE x (a user PRIMARY KEY)", "PRIMARY KEY"),
            (
                "CREATE TABLE x (a int PRIMARY KEY, v listy)",
                "nested non-frozen collections",
            ),
            (
                "ALTER TYPE user ADD tags set<text>",
                "column ks.t.b holds the type non-frozen",
            ),
        ] {
            let error = node.error(cql)?;
            assert!(
                matches!(&error, CqlError::Invalid(m) | CqlError::Syntax(m) if m.contains(fragment)),
                "{cql}: {error:?}"
            );
        }
        Ok(())
    }
}

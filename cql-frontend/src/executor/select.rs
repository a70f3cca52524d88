//! SELECT: single-partition reads and token-range scans, paged, and each
//! partition's rows shaped into the result (virtual system tables too).

use bytes::Bytes;

use replication::ReadTerms;
use storage_lsm::model::{Cell, CellValue, ClusteringRange, PartitionKey, Row};
use storage_lsm::{PartitionRows, ScanResume, SliceQuery, TokenRange};

use crate::cql::ast::{Operator, Relation, Selector, Statement};
use crate::node::Session;
use crate::protocol::error::CqlError;
use crate::protocol::primitives::Value;
use crate::results::{ColumnSpec, ResultBody, Rows};
use crate::schema::{
    resolve_keyspace, ColumnKind, ColumnSchema, TableSchema, ROW_MARKER, SYSTEM_KEYSPACES,
};
use crate::system_tables::virtual_table;
use crate::values::term_value;

use super::aggregate::{group_columns, Fold, AGGREGATE_PAGE_ROWS};
use super::cells::{assemble_collection, element_cells};
use super::keys::{clustering_components, partition_key_components};
use super::paging::{rows_left, PagingState};
use super::restrictions::{Filter, Restrictions};
use super::selection::{project, Projected};
use super::{coordinator_error, invalid, Context, NeededRead};
use crate::functions::ClockFunction;

/// Rows an unpaged SELECT (no page size) may return: past it the client
/// gets an error that says to page, never a result cut short.
pub(super) const UNPAGED_ROWS_MAX: usize = 1_000_000;

/// Rows read from replicas at a time while an unpaged SELECT gathers its
/// whole result.
pub(super) const UNPAGED_FETCH_ROWS: usize = 10_000;

/// How a SELECT shapes each partition's rows.
pub(super) struct Shape {
    pub(super) has_clustering_restriction: bool,
    /// At most this many rows per partition (DISTINCT is 1).
    pub(super) per_partition_limit: Option<usize>,
    pub(super) now_s: i64,
}

pub(super) fn materialize(
    table: &TableSchema,
    partition: &PartitionRows,
    projection: &[Projected],
    shape: &Shape,
    filters: &[Filter],
    out: &mut Vec<Vec<Option<Bytes>>>,
) -> Result<(), CqlError> {
    let has_clustering_restriction = shape.has_clustering_restriction;
    let now_s = shape.now_s;
    let key_components = partition_key_components(table, &partition.key.key)?;
    let static_value = |id: u32| {
        partition
            .static_row
            .as_ref()
            .and_then(|r| r.cells.iter().find(|c| c.column == id))
            .and_then(|c| c.value_bytes().cloned())
    };
    let mut emit = |row: Option<&Row>| -> Result<(), CqlError> {
        let clustering = match row {
            Some(row) => clustering_components(table, &row.clustering)?,
            None => Vec::new(),
        };
        let value = |column: &ColumnSchema| -> Option<Bytes> {
            match column.kind {
                ColumnKind::PartitionKey => key_components.get(column.position as usize).cloned(),
                ColumnKind::Clustering => clustering.get(column.position as usize).cloned(),
                ColumnKind::Static if column.ty.is_multi_cell() => assemble_collection(
                    column,
                    &element_cells(partition.static_row.as_ref(), column.id),
                )
                .ok()
                .flatten(),
                ColumnKind::Regular if column.ty.is_multi_cell() => {
                    assemble_collection(column, &element_cells(row, column.id))
                        .ok()
                        .flatten()
                }
                ColumnKind::Static => static_value(column.id),
                ColumnKind::Regular => row
                    .and_then(|r| r.cells.iter().find(|c| c.column == column.id))
                    .and_then(|c| c.value_bytes().cloned()),
            }
        };
        if filters
            .iter()
            .any(|filter| !filter.matches(value(&filter.column).as_ref()))
        {
            return Ok(());
        }
        let cell_of = |column: &ColumnSchema| -> Option<&Cell> {
            let source = match column.kind {
                ColumnKind::Static => partition.static_row.as_ref(),
                _ => row,
            };
            source.and_then(|r| {
                r.cells
                    .iter()
                    .find(|c| c.column == column.id && c.path.is_none())
            })
        };
        out.push(
            projection
                .iter()
                .map(|p| match p {
                    Projected::Column(column, _) => value(column),
                    Projected::Aggregate(_, Some(column), _) => value(column),
                    Projected::Aggregate(_, None, _) => Some(Bytes::new()),
                    Projected::WriteTime(column, _) => {
                        cell_of(column).map(|c| Bytes::copy_from_slice(&c.timestamp.to_be_bytes()))
                    }
                    Projected::Scalar(expr, _) => expr.eval(&value, partition.key.token),
                    Projected::Ttl(column, _) => cell_of(column).and_then(|c| match c.value {
                        CellValue::Expiring { expires_at_s, .. } => Some(Bytes::copy_from_slice(
                            &((expires_at_s - now_s).max(0) as i32).to_be_bytes(),
                        )),
                        _ => None,
                    }),
                })
                .collect(),
        );
        Ok(())
    };
    if partition.rows.is_empty() {
        if partition.static_row.is_some() && !has_clustering_restriction {
            emit(None)?;
        }
        return Ok(());
    }
    // After ALTER TABLE DROP, a row may hold only cells of dropped
    // columns: it no longer exists.
    let dropped_any = table.has_dropped_columns();
    let exists = |row: &&Row| {
        !dropped_any
            || row.cells.iter().any(|cell| {
                cell.column == ROW_MARKER
                    || table
                        .columns
                        .iter()
                        .any(|c| c.id == cell.column && c.kind == ColumnKind::Regular)
            })
    };
    for row in partition
        .rows
        .iter()
        .filter(exists)
        .take(shape.per_partition_limit.unwrap_or(usize::MAX))
    {
        emit(Some(row))?;
    }
    Ok(())
}

impl Context<'_> {
    pub(super) fn select(
        &self,
        session: &Session,
        statement: &Statement,
    ) -> Result<ResultBody, CqlError> {
        let Statement::Select {
            table: name,
            json,
            distinct,
            selectors,
            relations,
            group_by,
            order_by,
            per_partition_limit,
            limit,
            allow_filtering,
        } = statement
        else {
            return Err(CqlError::Server("not a SELECT".into()));
        };
        let is_system = resolve_keyspace(name, session.keyspace.as_deref())
            .is_ok_and(|k| SYSTEM_KEYSPACES.contains(&k.as_str()));
        if !group_by.is_empty() && is_system {
            return Err(CqlError::not_yet_supported("GROUP BY on system tables"));
        }
        let select_json = *json;
        let per_partition_limit = match per_partition_limit {
            Some(term) => {
                let n = self.int_option(term, "per partition limit")?;
                if n <= 0 {
                    return Err(invalid(format!(
                        "PER PARTITION LIMIT must be strictly positive, not {n}"
                    )));
                }
                Some(n as usize)
            }
            None => None,
        };
        let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
        let limit = match limit {
            Some(term) => {
                let n = self.int_option(term, "limit")?;
                if n <= 0 {
                    return Err(invalid(format!("LIMIT must be strictly positive, not {n}")));
                }
                Some(n as usize)
            }
            None => None,
        };
        if SYSTEM_KEYSPACES.contains(&keyspace.as_str()) || keyspace == "system_virtual_schema" {
            let catalog = self.node.catalog.read();
            let Some(table) = virtual_table(&keyspace, &name.name, self.node, &catalog) else {
                return Err(invalid(format!("unconfigured table {}", name.name)));
            };
            drop(catalog);
            return self.select_virtual(table, selectors, relations, limit);
        }
        let table = self.table(name, session)?;
        let mut restrictions = self.restrictions(&table, relations)?;
        restrictions.scan_with_filters(&table)?;
        if !restrictions.filters.is_empty() && !allow_filtering {
            return Err(invalid("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING"));
        }
        let mut projection = project(&table, selectors)?;
        let group_columns = group_columns(&table, group_by, &restrictions)?;
        let visible = projection.len();
        // Group key columns ride along, hidden, after the selected ones.
        projection.extend(
            group_columns
                .iter()
                .map(|c| Projected::Column(c.clone(), None)),
        );
        if *distinct {
            if let Some(Projected::Column(column, _)) = projection.iter().find(|p| {
                !matches!(p, Projected::Column(c, _) if matches!(c.kind, ColumnKind::PartitionKey | ColumnKind::Static))
            }) {
                return Err(invalid(format!(
                    "SELECT DISTINCT queries must only request partition key columns and/or static columns (not {})",
                    column.name
                )));
            }
        }
        let reversed = self.reversed(&table, order_by, &restrictions)?;
        let page_size = self.params.page_size.filter(|&p| p > 0).map(|p| p as usize);
        let state = PagingState::decode(self.params.paging_state.as_ref())?;
        let remaining = state
            .as_ref()
            .and_then(|s| s.remaining)
            .or(limit)
            .unwrap_or(usize::MAX);
        let page_rows = page_size
            .unwrap_or(UNPAGED_FETCH_ROWS)
            .min(remaining)
            .max(1);
        let placement = self.placement(&table);
        let pk_count = table.partition_key().count();
        let fetch = |state: Option<&PagingState>,
                     page_rows: usize,
                     remaining: usize|
         -> Result<(Vec<PartitionRows>, Option<PagingState>), CqlError> {
            Ok(if restrictions.partition.len() == pk_count {
                let keys = restrictions.partition_keys(&table)?;
                let ranges = restrictions.clustering_ranges(&table)?;
                // Resume in the partition the last page ended in: after its
                // last row, or after all of it (no clustering).
                let start = match state {
                    Some(state) => keys
                        .iter()
                        .position(|k| *k == state.key)
                        .ok_or_else(|| invalid("the paging state does not belong to this query"))?,
                    None => 0,
                };
                let mut partitions = Vec::new();
                let mut next = None;
                let mut taken = 0;
                for (i, key) in keys.iter().enumerate().skip(start) {
                    let resume_after = match state {
                        Some(state) if i == start => match &state.clustering {
                            Some(clustering) => Some(clustering.clone()),
                            None => continue,
                        },
                        _ => None,
                    };
                    let want = page_rows - taken;
                    let Some(rows) =
                        self.read_slices(&table, key, &ranges, reversed, want, resume_after)?
                    else {
                        continue;
                    };
                    taken += rows.rows.len();
                    let full = rows.rows.len() >= want;
                    let last = rows.rows.last().map(|r| r.clustering.clone());
                    partitions.push(rows);
                    if full {
                        if page_rows < remaining {
                            next = Some(PagingState {
                                key: key.clone(),
                                clustering: last,
                                remaining: rows_left(remaining, taken),
                            });
                        }
                        break;
                    }
                }
                (partitions, next)
            } else if restrictions.partition.is_empty() {
                if restrictions.restricts_clustering() && !allow_filtering {
                    return Err(invalid("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING"));
                }
                if restrictions.restricts_clustering() {
                    return Err(CqlError::not_yet_supported(
                        "filtering on clustering columns in a full scan",
                    ));
                }
                if !order_by.is_empty() {
                    return Err(invalid("ORDER BY is only supported when the partition key is restricted by an EQ or an IN."));
                }
                let range = TokenRange {
                    start: restrictions.token_start,
                    end: restrictions.token_end,
                };
                let resume = state.map(|s| ScanResume {
                    key: s.key.clone(),
                    clustering: s.clustering.clone(),
                });
                if let Some(on_task) = self.on_task {
                    on_task.borrow_mut().needs_thread = true;
                    return Err(CqlError::Server(
                        "internal: this statement's scan runs on a thread".into(),
                    ));
                }
                let page = self
                    .node
                    .coordinator
                    .scan(
                        table.table_id(),
                        &range,
                        resume.as_ref(),
                        page_rows,
                        ReadTerms {
                            placement: &placement,
                            consistency: self.consistency,
                            deadline: self.range_deadline(),
                        },
                    )
                    .map_err(coordinator_error)?;
                let returned: usize = page.partitions.iter().map(|p| p.rows.len().max(1)).sum();
                let next = match page.resume {
                    Some(resume) if page_rows < remaining => Some(PagingState {
                        key: resume.key,
                        clustering: resume.clustering,
                        remaining: rows_left(remaining, returned),
                    }),
                    _ => None,
                };
                (page.partitions, next)
            } else {
                let missing: Vec<&str> = table
                    .partition_key()
                    .filter(|c| {
                        !restrictions
                            .partition
                            .iter()
                            .any(|(p, _)| *p == c.position as usize)
                    })
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(invalid(format!("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. Partition key parts: {} must be restricted as other parts are", missing.join(", "))));
            })
        };
        let has_clustering_restriction = restrictions.restricts_clustering();
        if !group_columns.is_empty()
            || projection
                .iter()
                .any(|p| matches!(p, Projected::Aggregate(..)))
        {
            if restrictions.partition.is_empty() {
                crate::warnings::warn("Aggregation query used without partition key".into());
            } else if restrictions
                .partition
                .iter()
                .any(|(_, values)| values.len() > 1)
            {
                crate::warnings::warn(
                    "Aggregation query used on multiple partition keys (IN restriction)".into(),
                );
            }
            // Aggregates see every row: fetch page after page, folding as we go.
            let shape = Shape {
                has_clustering_restriction,
                per_partition_limit: if *distinct {
                    Some(1)
                } else {
                    per_partition_limit
                },
                now_s: self.bindings.now_micros / 1_000_000,
            };
            let new_folds = || {
                projection
                    .iter()
                    .take(visible)
                    .map(Fold::new)
                    .collect::<Vec<Fold>>()
            };
            let mut folds = new_folds();
            let mut group: Option<Vec<Option<Bytes>>> = None;
            let mut output = Vec::new();
            let mut cursor: Option<PagingState> = None;
            loop {
                let (partitions, more) = fetch(cursor.as_ref(), AGGREGATE_PAGE_ROWS, usize::MAX)?;
                let mut rows = Vec::new();
                for partition in &partitions {
                    materialize(
                        &table,
                        partition,
                        &projection,
                        &shape,
                        &restrictions.filters,
                        &mut rows,
                    )?;
                }
                for row in &rows {
                    let key: Vec<Option<Bytes>> = row.iter().skip(visible).cloned().collect();
                    if group.as_ref().is_some_and(|g| *g != key) {
                        let finished = std::mem::replace(&mut folds, new_folds());
                        output.push(
                            finished
                                .into_iter()
                                .map(Fold::finish)
                                .collect::<Result<Vec<_>, _>>()?,
                        );
                    }
                    group = Some(key);
                    for (fold, value) in folds.iter_mut().zip(row) {
                        fold.add(value.as_ref())?;
                    }
                }
                match more {
                    Some(state) => cursor = Some(state),
                    None => break,
                }
            }
            // Without GROUP BY an aggregate has one row even over no rows.
            if group.is_some() || group_columns.is_empty() {
                output.push(
                    folds
                        .into_iter()
                        .map(Fold::finish)
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            output.truncate(limit.unwrap_or(usize::MAX));
            let columns = projection
                .iter()
                .take(visible)
                .filter_map(|p| p.spec(&table))
                .collect();
            return Ok(ResultBody::Rows(Rows {
                columns,
                rows: output,
                paging_state: None,
            }));
        }
        let (partitions, next) = match page_size {
            Some(_) => fetch(state.as_ref(), page_rows, remaining)?,
            None => {
                // Unpaged: the whole result, gathered page by page.
                let mut all = Vec::new();
                let mut returned = 0usize;
                let mut cursor = state;
                loop {
                    let left = cursor
                        .as_ref()
                        .and_then(|c| c.remaining)
                        .unwrap_or(remaining);
                    let (partitions, more) =
                        fetch(cursor.as_ref(), page_rows.min(left).max(1), left)?;
                    returned += partitions
                        .iter()
                        .map(|p| p.rows.len().max(1))
                        .sum::<usize>();
                    if returned > UNPAGED_ROWS_MAX {
                        return Err(invalid(format!(
                            "this SELECT returns more than {UNPAGED_ROWS_MAX} rows, the most an unpaged \
                             query may return: page it (set a fetch size in the driver, or PAGING ON in the shell) \
                             or add a LIMIT"
                        )));
                    }
                    all.extend(partitions);
                    match more {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                (all, None)
            }
        };
        let mut rows = Vec::new();
        for partition in &partitions {
            let shape = Shape {
                has_clustering_restriction,
                per_partition_limit: if *distinct {
                    Some(1)
                } else {
                    per_partition_limit
                },
                now_s: self.bindings.now_micros / 1_000_000,
            };
            materialize(
                &table,
                partition,
                &projection,
                &shape,
                &restrictions.filters,
                &mut rows,
            )?;
        }
        rows.truncate(remaining);
        let columns: Vec<ColumnSpec> = projection.iter().filter_map(|p| p.spec(&table)).collect();
        let (columns, rows) = if select_json {
            crate::json::rows_as_json(&table.keyspace, &table.name, columns, rows)
        } else {
            (columns, rows)
        };
        Ok(ResultBody::Rows(Rows {
            columns,
            rows,
            paging_state: next.map(|s| s.encode()),
        }))
    }

    /// Rows of one partition within `ranges` (disjoint, in storage order),
    /// at most `limit`, after `resume_after` if given.
    pub(super) fn read_slices(
        &self,
        table: &TableSchema,
        key: &PartitionKey,
        ranges: &[ClusteringRange],
        reversed: bool,
        limit: usize,
        resume_after: Option<Bytes>,
    ) -> Result<Option<PartitionRows>, CqlError> {
        let placement = self.placement(table);
        let mut merged: Option<PartitionRows> = None;
        let ordered: Vec<&ClusteringRange> = if reversed {
            ranges.iter().rev().collect()
        } else {
            ranges.iter().collect()
        };
        for range in ordered {
            let taken = merged.as_ref().map_or(0, |m| m.rows.len());
            if taken >= limit {
                break;
            }
            let query = SliceQuery {
                range: range.clone(),
                reversed,
                limit: limit - taken,
                resume_after: resume_after.clone(),
            };
            let result = match self.on_task {
                Some(on_task) => {
                    let needed = NeededRead {
                        table: table.table_id(),
                        key: key.clone(),
                        query,
                        placement: placement.clone(),
                        consistency: self.consistency,
                        deadline: self.read_deadline(),
                    };
                    let mut on_task = on_task.borrow_mut();
                    let at = on_task.reads_used;
                    on_task.reads_used += 1;
                    match on_task.reads_done.get(at) {
                        Some((done, result)) if *done == needed => result.clone()?,
                        _ => {
                            on_task.read_needed = Some(needed);
                            return Err(CqlError::Server(
                                "internal: this statement's read runs on its task".into(),
                            ));
                        }
                    }
                }
                None => self
                    .node
                    .coordinator
                    .read(
                        table.table_id(),
                        key,
                        &query,
                        ReadTerms {
                            placement: &placement,
                            consistency: self.consistency,
                            deadline: self.read_deadline(),
                        },
                    )
                    .map_err(coordinator_error)?,
            };
            match (&mut merged, result) {
                (_, None) => {}
                (None, Some(rows)) => merged = Some(rows),
                (Some(merged), Some(rows)) => merged.rows.extend(rows.rows),
            }
        }
        Ok(merged)
    }

    pub(super) fn reversed(
        &self,
        table: &TableSchema,
        order_by: &[(String, bool)],
        restrictions: &Restrictions,
    ) -> Result<bool, CqlError> {
        if order_by.is_empty() {
            return Ok(false);
        }
        if restrictions.partition.len() != table.partition_key().count() {
            return Err(invalid("ORDER BY is only supported when the partition key is restricted by an EQ or an IN."));
        }
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        let mut reversed = None;
        for (i, (column, descending)) in order_by.iter().enumerate() {
            let schema = clustering.get(i).filter(|c| &c.name == column).ok_or_else(|| invalid("Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY"))?;
            let this = *descending != schema.descending;
            if reversed.is_some_and(|r| r != this) {
                return Err(invalid(format!(
                    "Unsupported order by relation on {column}"
                )));
            }
            reversed = Some(this);
        }
        Ok(reversed.unwrap_or(false))
    }

    pub(super) fn select_virtual(
        &self,
        table: crate::system_tables::VirtualTable,
        selectors: &[Selector],
        relations: &[Relation],
        limit: Option<usize>,
    ) -> Result<ResultBody, CqlError> {
        let mut filters = Vec::new();
        for relation in relations {
            let Relation::Column {
                column,
                op: Operator::Eq,
                value,
            } = relation
            else {
                return Err(CqlError::not_yet_supported(
                    "restrictions other than = on system tables",
                ));
            };
            let index = table
                .columns
                .iter()
                .position(|c| &c.name == column)
                .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
            let Some(spec) = table.columns.get(index) else {
                continue;
            };
            let Value::Set(bytes) = term_value(&spec.ty, value, column, self.bindings)? else {
                return Err(invalid(format!(
                    "Invalid null value in condition for column {column}"
                )));
            };
            filters.push((index, bytes));
        }
        // What each selected column is: a column of the table, or a clock
        // function (`SELECT now() FROM system.local`, as cqlsh users write).
        enum Picked {
            Column(usize, Option<String>),
            Clock(ClockFunction, ColumnSpec),
        }
        let picked: Vec<Picked> = if selectors.is_empty() {
            (0..table.columns.len())
                .map(|i| Picked::Column(i, None))
                .collect()
        } else {
            let mut out = Vec::new();
            for selector in selectors {
                let (inner, alias) = match selector {
                    Selector::Aliased(inner, alias) => (inner.as_ref(), Some(alias.clone())),
                    other => (other, None),
                };
                match inner {
                    Selector::Column(name) => {
                        let index = table
                            .columns
                            .iter()
                            .position(|c| &c.name == name)
                            .ok_or_else(|| invalid(format!("Undefined column name {name}")))?;
                        out.push(Picked::Column(index, alias));
                    }
                    Selector::Function { name, args } if args.is_empty() => {
                        let Some((function, ty)) = ClockFunction::from_name(name) else {
                            return Err(CqlError::not_yet_supported(
                                "functions other than now(), uuid() and currentX() in selections on system tables",
                            ));
                        };
                        let spec = ColumnSpec {
                            keyspace: table.columns.first().map(|c| c.keyspace.clone()).unwrap_or_default(),
                            table: table.columns.first().map(|c| c.table.clone()).unwrap_or_default(),
                            name: alias.unwrap_or_else(|| format!("system.{name}()")),
                            ty,
                        };
                        out.push(Picked::Clock(function, spec));
                    }
                    _ => {
                        return Err(CqlError::not_yet_supported(
                            "functions other than now(), uuid() and currentX() in selections on system tables",
                        ))
                    }
                }
            }
            out
        };
        let rows: Vec<Vec<Option<Bytes>>> = table
            .rows
            .iter()
            .filter(|row| {
                filters
                    .iter()
                    .all(|(i, v)| row.get(*i).and_then(|c| c.as_ref()) == Some(v))
            })
            .take(limit.unwrap_or(usize::MAX))
            .map(|row| {
                picked
                    .iter()
                    .map(|p| match p {
                        Picked::Column(i, _) => row.get(*i).cloned().flatten(),
                        Picked::Clock(function, _) => Some(function.value()),
                    })
                    .collect()
            })
            .collect();
        let columns = picked
            .iter()
            .filter_map(|p| match p {
                Picked::Column(i, alias) => table.columns.get(*i).map(|c| ColumnSpec {
                    name: alias.clone().unwrap_or_else(|| c.name.clone()),
                    ..c.clone()
                }),
                Picked::Clock(_, spec) => Some(spec.clone()),
            })
            .collect();
        Ok(ResultBody::Rows(Rows {
            columns,
            rows,
            paging_state: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{render, rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    fn table(partitions: i32, per_partition: i32) -> Result<TestNode, Box<dyn std::error::Error>> {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE t (p int, c int, v text, PRIMARY KEY (p, c))")?;
        for p in 0..partitions {
            for c in 0..per_partition {
                node.run(&format!(
                    "INSERT INTO t (p, c, v) VALUES ({p}, {c}, 'v{p}.{c}')"
                ))?;
            }
        }
        Ok(node)
    }

    #[test]
    fn pages_cover_every_row_once_across_partitions() -> TestResult {
        let mut node = table(7, 5)?;
        let mut seen = Vec::new();
        let mut state = None;
        let mut pages = 0;
        loop {
            let page = node.page("SELECT p, c FROM t", 4, state)?;
            assert!(page.rows.len() <= 4, "a page holds at most its size");
            seen.extend(render(&page));
            pages += 1;
            assert!(pages <= 20, "paging must end");
            state = page.paging_state;
            if state.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 35, "{seen:?}");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 35, "no row twice");
        Ok(())
    }

    #[test]
    fn limits_order_and_distinct_shape_the_rows() -> TestResult {
        let mut node = table(3, 4)?;
        assert_eq!(
            node.rows("SELECT c FROM t WHERE p = 1 ORDER BY c DESC LIMIT 2")?,
            rows(&[&["3"], &["2"]])
        );
        let mut firsts = node.rows("SELECT p, c FROM t PER PARTITION LIMIT 1")?;
        firsts.sort();
        assert_eq!(firsts, rows(&[&["0", "0"], &["1", "0"], &["2", "0"]]));
        assert_eq!(node.rows("SELECT p, c FROM t LIMIT 5")?.len(), 5);
        let mut keys = node.rows("SELECT DISTINCT p FROM t")?;
        keys.sort();
        assert_eq!(keys, rows(&[&["0"], &["1"], &["2"]]));
        let error = node.error("SELECT c FROM t WHERE p = 1 LIMIT 0")?;
        assert!(matches!(error, CqlError::Invalid(_)), "{error:?}");
        Ok(())
    }

    #[test]
    fn a_limit_carries_across_pages() -> TestResult {
        let mut node = table(1, 10)?;
        let first = node.page("SELECT c FROM t WHERE p = 0 LIMIT 7", 5, None)?;
        assert_eq!(first.rows.len(), 5);
        let second = node.page("SELECT c FROM t WHERE p = 0 LIMIT 7", 5, first.paging_state)?;
        assert_eq!(render(&second), rows(&[&["5"], &["6"]]));
        assert!(second.paging_state.is_none(), "the LIMIT is met");
        Ok(())
    }

    #[test]
    fn system_tables_answer_like_cassandras() -> TestResult {
        let mut node = TestNode::new()?;
        let local = node.rows("SELECT cluster_name, data_center FROM system.local")?;
        assert_eq!(local, rows(&[&["\"Test Cluster\"", "\"datacenter1\""]]));
        node.run("CREATE TABLE t (k int PRIMARY KEY, v int)")?;
        let columns = node.rows(
            "SELECT column_name, kind FROM system_schema.columns \
             WHERE keyspace_name = 'ks' AND table_name = 't'",
        )?;
        assert_eq!(
            columns,
            rows(&[&["\"k\"", "\"partition_key\""], &["\"v\"", "\"regular\""]])
        );
        Ok(())
    }
}

//! A WHERE clause resolved against the table: which partitions, which
//! clustering ranges, and which per-row filters its relations select, with
//! Cassandra's rules (and messages) for what may be restricted how.

use std::ops::Bound;

use bytes::Bytes;

use storage_lsm::model::{ClusteringBound, ClusteringRange, PartitionKey};

use crate::cql::ast::{Operator, Relation, Term};
use crate::protocol::error::CqlError;
use crate::protocol::primitives::Value;
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::types::CqlType;
use crate::values::{split_tuple, term_value};

use super::cells::{split_collection, split_entries};
use super::keys::{encode_prefix, key_from_components};
use super::{invalid, Context};

/// A range restriction on one clustering column.
#[derive(Debug, Clone)]
pub(super) struct Slice {
    pub(super) position: usize,
    /// The order of the first sliced column (a multi-column slice has one order).
    pub(super) descending: bool,
    /// Values from `position` on, and whether the bound is inclusive.
    pub(super) lower: Option<(Vec<Bytes>, bool)>,
    pub(super) upper: Option<(Vec<Bytes>, bool)>,
}

/// The type of the value a relation on a column of type `ty` compares
/// with: an element for CONTAINS, a key for CONTAINS KEY, else `ty`.
pub(crate) fn operand_type(ty: &CqlType, op: Operator) -> &CqlType {
    match (op, ty.unfrozen()) {
        (Operator::Contains, CqlType::List(item) | CqlType::Set(item) | CqlType::Map(_, item)) => {
            item
        }
        (Operator::ContainsKey, CqlType::Map(key, _)) => key,
        _ => ty,
    }
}

/// A restriction checked on each row: `column op value` (several values
/// for IN).
#[derive(Debug, Clone)]
pub(super) struct Filter {
    pub(super) column: ColumnSchema,
    pub(super) op: Operator,
    pub(super) values: Vec<Bytes>,
}

impl Filter {
    pub(super) fn new(
        column: &ColumnSchema,
        op: Operator,
        values: Vec<Bytes>,
    ) -> Result<Filter, CqlError> {
        let collection = matches!(
            column.ty.unfrozen(),
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..)
        );
        match op {
            Operator::Contains if !collection => Err(invalid(format!(
                "Cannot use CONTAINS on non-collection column {}",
                column.name
            ))),
            Operator::ContainsKey if !matches!(column.ty.unfrozen(), CqlType::Map(..)) => {
                Err(invalid(format!(
                    "Cannot use CONTAINS KEY on non-map column {}",
                    column.name
                )))
            }
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge
                if column.ty.is_multi_cell() =>
            {
                Err(invalid(format!(
                    "Slice restrictions are not supported on non-frozen collection column {}",
                    column.name
                )))
            }
            _ => Ok(Filter {
                column: column.clone(),
                op,
                values,
            }),
        }
    }

    /// Whether a row whose column holds `value` passes (a null never does).
    pub(super) fn matches(&self, value: Option<&Bytes>) -> bool {
        let Some(value) = value else {
            return false;
        };
        let ty = &self.column.ty;
        let comparable = |ty: &CqlType, bytes: &[u8]| {
            let mut out = Vec::new();
            ty.encode_comparable(bytes, false, &mut out)
                .ok()
                .map(|()| out)
        };
        match self.op {
            Operator::Contains | Operator::ContainsKey => {
                let (element_ty, entries) = match (ty.unfrozen(), self.op) {
                    (CqlType::Map(key, _), Operator::ContainsKey) => (
                        key.as_ref(),
                        split_entries(value, 2)
                            .map(|e| e.into_iter().step_by(2).collect::<Vec<_>>()),
                    ),
                    (CqlType::Map(_, item), _) => (
                        item.as_ref(),
                        split_entries(value, 2).map(|e| e.into_iter().skip(1).step_by(2).collect()),
                    ),
                    (CqlType::List(item) | CqlType::Set(item), _) => {
                        (item.as_ref(), split_collection(value))
                    }
                    _ => return false,
                };
                let Ok(entries) = entries else { return false };
                self.values.iter().all(|wanted| {
                    let wanted = comparable(element_ty, wanted);
                    entries
                        .iter()
                        .any(|e| wanted.is_some() && comparable(element_ty, e) == wanted)
                })
            }
            op => {
                let Some(actual) = comparable(ty, value) else {
                    return false;
                };
                self.values.iter().any(|wanted| {
                    let Some(wanted) = comparable(ty, wanted) else {
                        return false;
                    };
                    match op {
                        Operator::Lt => actual < wanted,
                        Operator::Le => actual <= wanted,
                        Operator::Gt => actual > wanted,
                        Operator::Ge => actual >= wanted,
                        _ => actual == wanted,
                    }
                })
            }
        }
    }
}

/// One restriction on clustering columns, before they are combined:
/// `width` columns from `position`, with one tuple (=, slices) or several (IN).
pub(super) struct ClusteringOp {
    pub(super) position: usize,
    pub(super) width: usize,
    pub(super) op: Operator,
    pub(super) tuples: Vec<Vec<Bytes>>,
}

/// Most clustering prefixes IN restrictions may expand to (Cassandra's
/// `max_clustering_key_restrictions_per_query` is 100 by default).
pub(super) const CLUSTERING_PREFIXES_MAX: usize = 1_000;

#[derive(Debug)]
pub(super) struct Restrictions {
    /// Per partition key position, its values (one for =, several for IN).
    pub(super) partition: Vec<(usize, Vec<Bytes>)>,
    /// The clustering prefixes restricted by = and IN (one empty prefix
    /// when none is), all `clustering_depth` columns long.
    pub(super) clustering_prefixes: Vec<Vec<Bytes>>,
    pub(super) clustering_depth: usize,
    pub(super) clustering_slice: Option<Slice>,
    /// Restrictions checked row by row (they need ALLOW FILTERING).
    pub(super) filters: Vec<Filter>,
    /// The partition key relations (=, IN), kept to become filters when
    /// the key is not restricted whole.
    pub(super) partition_relations: Vec<Filter>,
    /// The single-column clustering relations, kept to become filters in a
    /// scan.
    pub(super) clustering_relations: Vec<Filter>,
    pub(super) has_multi_column: bool,
    pub(super) token_start: Bound<i64>,
    pub(super) token_end: Bound<i64>,
    pub(super) has_token: bool,
}

impl Default for Restrictions {
    fn default() -> Self {
        Restrictions {
            partition: Vec::new(),
            clustering_prefixes: vec![Vec::new()],
            clustering_depth: 0,
            clustering_slice: None,
            filters: Vec::new(),
            partition_relations: Vec::new(),
            clustering_relations: Vec::new(),
            has_multi_column: false,
            token_start: Bound::Unbounded,
            token_end: Bound::Unbounded,
            has_token: false,
        }
    }
}

impl Restrictions {
    /// When the partition key is not restricted whole, the read is a scan:
    /// the key and clustering relations it has become row filters (which
    /// need ALLOW FILTERING, as in Cassandra).
    pub(super) fn scan_with_filters(&mut self, table: &TableSchema) -> Result<(), CqlError> {
        if self.partition.len() == table.partition_key().count() {
            return Ok(());
        }
        if self.has_multi_column {
            return Err(CqlError::not_yet_supported(
                "multi-column relations without the whole partition key",
            ));
        }
        self.partition.clear();
        self.filters.append(&mut self.partition_relations);
        self.filters.append(&mut self.clustering_relations);
        self.clustering_prefixes = vec![Vec::new()];
        self.clustering_depth = 0;
        self.clustering_slice = None;
        Ok(())
    }

    pub(super) fn partition_keys(
        &self,
        table: &TableSchema,
    ) -> Result<Vec<PartitionKey>, CqlError> {
        let mut combos: Vec<Vec<Bytes>> = vec![Vec::new()];
        for column in table.partition_key() {
            let values = self
                .partition
                .iter()
                .find(|(p, _)| *p == column.position as usize)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    invalid(format!(
                        "Missing mandatory PRIMARY KEY part {}",
                        column.name
                    ))
                })?;
            combos = combos
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push(v.clone());
                        next
                    })
                })
                .collect();
            if combos.len() > 1_000 {
                return Err(invalid(
                    "IN restrictions produce more than 1000 partition keys",
                ));
            }
        }
        let mut keys: Vec<PartitionKey> = combos
            .iter()
            .map(|components| key_from_components(components))
            .collect::<Result<_, _>>()?;
        keys.dedup();
        Ok(keys)
    }

    pub(super) fn single_partition(&self, table: &TableSchema) -> Result<PartitionKey, CqlError> {
        if self.has_token || !self.filters.is_empty() {
            return Err(invalid(
                "Only the primary key can be restricted in a modification statement",
            ));
        }
        let keys = self.partition_keys(table)?;
        match keys.as_slice() {
            [key] => Ok(key.clone()),
            _ => Err(CqlError::not_yet_supported(
                "IN on the partition key of a modification",
            )),
        }
    }

    /// Whether any clustering column is restricted.
    pub(super) fn restricts_clustering(&self) -> bool {
        self.clustering_depth > 0 || self.clustering_slice.is_some()
    }

    /// The whole clustering of each row a modification names.
    pub(super) fn full_clusterings(&self, table: &TableSchema) -> Result<Vec<Bytes>, CqlError> {
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        if self.clustering_slice.is_some() || self.clustering_depth != clustering.len() {
            let missing = clustering
                .get(self.clustering_depth)
                .map_or("", |c| c.name.as_str());
            return Err(invalid(format!(
                "Some clustering keys are missing: {missing}"
            )));
        }
        self.clustering_prefixes
            .iter()
            .map(|prefix| encode_prefix(&clustering, prefix).map(Bytes::from))
            .collect()
    }

    /// The one row a modification names (IN is refused here).
    pub(super) fn full_clustering(&self, table: &TableSchema) -> Result<Bytes, CqlError> {
        let mut rows = self.full_clusterings(table)?;
        match (rows.pop(), rows.is_empty()) {
            (Some(row), true) => Ok(row),
            _ => Err(CqlError::not_yet_supported(
                "IN on clustering columns of an UPDATE or INSERT",
            )),
        }
    }

    /// The clustering ranges the restrictions select, in storage order.
    pub(super) fn clustering_ranges(
        &self,
        table: &TableSchema,
    ) -> Result<Vec<ClusteringRange>, CqlError> {
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        let mut ranges = Vec::with_capacity(self.clustering_prefixes.len());
        let mut prefixes: Vec<Vec<u8>> = self
            .clustering_prefixes
            .iter()
            .map(|prefix| encode_prefix(&clustering, prefix))
            .collect::<Result<_, _>>()?;
        prefixes.sort();
        prefixes.dedup();
        for prefix in prefixes {
            ranges.push(self.range_within(&clustering, prefix)?);
        }
        Ok(ranges)
    }

    pub(super) fn range_within(
        &self,
        clustering: &[&ColumnSchema],
        prefix: Vec<u8>,
    ) -> Result<ClusteringRange, CqlError> {
        let prefix_bound = || {
            if prefix.is_empty() {
                ClusteringBound::Unbounded
            } else {
                ClusteringBound::Inclusive(Bytes::from(prefix.clone()))
            }
        };
        let Some(slice) = &self.clustering_slice else {
            return Ok(ClusteringRange {
                start: prefix_bound(),
                end: prefix_bound(),
            });
        };
        let bound = |value: &(Vec<Bytes>, bool)| -> Result<ClusteringBound, CqlError> {
            let mut key = prefix.clone();
            let columns = clustering.get(slice.position..).unwrap_or_default();
            key.extend(encode_prefix(columns, &value.0)?);
            Ok(if value.1 {
                ClusteringBound::Inclusive(Bytes::from(key))
            } else {
                ClusteringBound::Exclusive(Bytes::from(key))
            })
        };
        let lower = slice
            .lower
            .as_ref()
            .map(bound)
            .transpose()?
            .unwrap_or_else(prefix_bound);
        let upper = slice
            .upper
            .as_ref()
            .map(bound)
            .transpose()?
            .unwrap_or_else(prefix_bound);
        // A DESC column stores larger values first: CQL's lower bound is the byte order's end.
        Ok(if slice.descending {
            ClusteringRange {
                start: upper,
                end: lower,
            }
        } else {
            ClusteringRange {
                start: lower,
                end: upper,
            }
        })
    }
}

impl Context<'_> {
    pub(super) fn restrictions(
        &self,
        table: &TableSchema,
        relations: &[Relation],
    ) -> Result<Restrictions, CqlError> {
        let mut r = Restrictions::default();
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        let mut clustering_ops: Vec<ClusteringOp> = Vec::new();
        for relation in relations {
            match relation {
                Relation::Column { column, op, value } => {
                    let schema = table
                        .column(column)
                        .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                    if *op == Operator::Ne {
                        return Err(invalid(format!(
                            "Unsupported \"!=\" relation on column {column}"
                        )));
                    }
                    let values = self.relation_values(schema, *op, value)?;
                    match schema.kind {
                        ColumnKind::PartitionKey if matches!(op, Operator::Eq | Operator::In) => {
                            r.partition_relations
                                .push(Filter::new(schema, *op, values.clone())?);
                            r.partition.push((schema.position as usize, values));
                        }
                        ColumnKind::PartitionKey => {
                            r.filters.push(Filter::new(schema, *op, values)?);
                        }
                        ColumnKind::Clustering
                            if matches!(op, Operator::Contains | Operator::ContainsKey) =>
                        {
                            r.filters.push(Filter::new(schema, *op, values)?);
                        }
                        ColumnKind::Clustering => {
                            r.clustering_relations
                                .push(Filter::new(schema, *op, values.clone())?);
                            let tuples = values.into_iter().map(|v| vec![v]).collect();
                            clustering_ops.push(ClusteringOp {
                                position: schema.position as usize,
                                width: 1,
                                op: *op,
                                tuples,
                            });
                        }
                        _ => r.filters.push(Filter::new(schema, *op, values)?),
                    }
                }
                Relation::Token { op, value, .. } => {
                    let token = self.int_option(value, "token")?;
                    match op {
                        Operator::Gt => r.token_start = Bound::Excluded(token),
                        Operator::Ge => r.token_start = Bound::Included(token),
                        Operator::Lt => r.token_end = Bound::Excluded(token),
                        Operator::Le => r.token_end = Bound::Included(token),
                        Operator::Eq => {
                            r.token_start = Bound::Included(token);
                            r.token_end = Bound::Included(token);
                        }
                        _ => return Err(invalid("Unsupported operator on token()")),
                    }
                    r.has_token = true;
                }
                Relation::MultiColumn { columns, op, value } => {
                    r.has_multi_column = true;
                    clustering_ops.push(self.multi_column_op(&clustering, columns, *op, value)?);
                }
            }
        }
        clustering_ops.sort_by_key(|op| op.position);
        let mut slice_so_far: Option<Slice> = None;
        for op in clustering_ops {
            let column = clustering
                .get(op.position)
                .ok_or_else(|| invalid("bad clustering position"))?;
            if op.position > r.clustering_depth {
                let previous = clustering
                    .get(op.position.saturating_sub(1))
                    .map_or("", |c| c.name.as_str());
                return Err(invalid(format!(
                    "Clustering column \"{}\" cannot be restricted (preceding column \"{previous}\" is restricted by a non-EQ relation or not restricted)",
                    column.name
                )));
            }
            match op.op {
                Operator::Eq | Operator::In if op.position == r.clustering_depth => {
                    // Each prefix so far continues with each listed tuple.
                    let mut next = Vec::new();
                    for prefix in &r.clustering_prefixes {
                        for tuple in &op.tuples {
                            let mut longer = prefix.clone();
                            longer.extend(tuple.iter().cloned());
                            next.push(longer);
                        }
                    }
                    if next.len() > CLUSTERING_PREFIXES_MAX {
                        return Err(invalid(format!(
                            "IN restrictions on clustering columns produce more than {CLUSTERING_PREFIXES_MAX} combinations"
                        )));
                    }
                    r.clustering_prefixes = next;
                    r.clustering_depth += op.width;
                }
                Operator::Eq | Operator::In => {
                    return Err(invalid(format!(
                        "{} cannot be restricted by more than one relation if it includes an Equal",
                        column.name
                    )))
                }
                Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
                    let descending = column.descending;
                    let slice = slice_so_far.get_or_insert_with(|| Slice {
                        position: op.position,
                        descending,
                        lower: None,
                        upper: None,
                    });
                    if slice.position != op.position {
                        return Err(invalid(
                            "Only one clustering column may be restricted by a range",
                        ));
                    }
                    let values = op.tuples.into_iter().next().unwrap_or_default();
                    match op.op {
                        Operator::Gt => slice.lower = Some((values, false)),
                        Operator::Ge => slice.lower = Some((values, true)),
                        Operator::Lt => slice.upper = Some((values, false)),
                        _ => slice.upper = Some((values, true)),
                    }
                }
                _ => {
                    return Err(CqlError::not_yet_supported(
                        "this operator on clustering columns",
                    ))
                }
            }
        }
        r.clustering_slice = slice_so_far;
        Ok(r)
    }

    /// A `(c1, c2) op (v1, v2)` relation: consecutive clustering columns of
    /// one order, and their values as tuples.
    pub(super) fn multi_column_op(
        &self,
        clustering: &[&ColumnSchema],
        columns: &[String],
        op: Operator,
        value: &Term,
    ) -> Result<ClusteringOp, CqlError> {
        let mut schemas = Vec::with_capacity(columns.len());
        for name in columns {
            let schema = clustering
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "Multi-column relations can only be applied to clustering columns but was applied to: {name}"
                    ))
                })?;
            schemas.push(*schema);
        }
        let first = schemas.first().map_or(0, |c| c.position as usize);
        for (i, schema) in schemas.iter().enumerate() {
            if schema.position as usize != first + i {
                return Err(invalid(format!(
                    "Clustering columns must appear in the PRIMARY KEY order in multi-column relations: ({})",
                    columns.join(", ")
                )));
            }
        }
        if matches!(
            op,
            Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le
        ) && schemas
            .iter()
            .any(|c| c.descending != schemas[0].descending)
        {
            return Err(CqlError::not_yet_supported(
                "multi-column slices over clustering columns of mixed ASC/DESC order",
            ));
        }
        let tuple_type = CqlType::Tuple(schemas.iter().map(|c| c.ty.clone()).collect());
        let label = format!("({})", columns.join(", "));
        let one = |term: &Term| -> Result<Vec<Bytes>, CqlError> {
            let Value::Set(bytes) = term_value(&tuple_type, term, &label, self.bindings)? else {
                return Err(invalid(format!(
                    "Invalid null value in condition for {label}"
                )));
            };
            let parts = split_tuple(&bytes)?;
            if parts.len() != schemas.len() {
                return Err(invalid(format!(
                    "Expected {} elements in value tuple for {label}, but got {}",
                    schemas.len(),
                    parts.len()
                )));
            }
            parts
                .into_iter()
                .map(|part| {
                    part.ok_or_else(|| {
                        invalid(format!("Invalid null value in condition for {label}"))
                    })
                })
                .collect()
        };
        let tuples = match (op, value) {
            (Operator::In, Term::Tuple(items) | Term::List(items)) => {
                items.iter().map(one).collect::<Result<Vec<_>, _>>()?
            }
            (Operator::In, Term::Bind(_)) => {
                let list = CqlType::List(Box::new(tuple_type.clone()));
                let Value::Set(bytes) = term_value(&list, value, &label, self.bindings)? else {
                    return Err(invalid(format!(
                        "Invalid null value for IN restriction on {label}"
                    )));
                };
                split_collection(&bytes)?
                    .iter()
                    .map(|item| {
                        split_tuple(item)?
                            .into_iter()
                            .map(|part| {
                                part.ok_or_else(|| {
                                    invalid(format!("Invalid null value in condition for {label}"))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            (Operator::In, _) => return Err(invalid("IN needs a list of tuples")),
            (_, term) => vec![one(term)?],
        };
        Ok(ClusteringOp {
            position: first,
            width: schemas.len(),
            op,
            tuples,
        })
    }

    pub(super) fn relation_values(
        &self,
        column: &ColumnSchema,
        op: Operator,
        term: &Term,
    ) -> Result<Vec<Bytes>, CqlError> {
        let ty = operand_type(&column.ty, op);
        let one = |term: &Term| -> Result<Bytes, CqlError> {
            match term_value(ty, term, &column.name, self.bindings)? {
                Value::Set(bytes) => Ok(bytes),
                _ => Err(invalid(format!(
                    "Invalid null value in condition for column {}",
                    column.name
                ))),
            }
        };
        match (op, term) {
            (Operator::In, Term::Tuple(items) | Term::List(items)) => {
                items.iter().map(one).collect()
            }
            (Operator::In, Term::Bind(_)) => match term_value(
                &CqlType::List(Box::new(ty.clone())),
                term,
                &column.name,
                self.bindings,
            )? {
                Value::Set(bytes) => split_collection(&bytes),
                _ => Err(invalid(format!(
                    "Invalid null value for IN restriction on {}",
                    column.name
                ))),
            },
            (Operator::In, _) => Err(invalid("IN needs a list of values")),
            (_, term) => Ok(vec![one(term)?]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    fn table() -> Result<TestNode, Box<dyn std::error::Error>> {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE t (p int, c1 int, c2 text, v int, PRIMARY KEY (p, c1, c2))")?;
        for p in 1..=2 {
            for c1 in 1..=3 {
                for c2 in ["a", "b"] {
                    node.run(&format!(
                        "INSERT INTO t (p, c1, c2, v) VALUES ({p}, {c1}, '{c2}', {})",
                        p * 100 + c1 * 10
                    ))?;
                }
            }
        }
        Ok(node)
    }

    #[test]
    fn partition_and_clustering_restrictions_select_rows() -> TestResult {
        let mut node = table()?;
        assert_eq!(
            node.rows("SELECT c1, c2 FROM t WHERE p = 1 AND c1 > 1 AND c1 <= 2")?,
            rows(&[&["2", "\"a\""], &["2", "\"b\""]])
        );
        assert_eq!(
            node.rows("SELECT c1, c2 FROM t WHERE p = 1 AND c1 = 3 AND c2 > 'a'")?,
            rows(&[&["3", "\"b\""]])
        );
        let mut found =
            node.rows("SELECT p, c1 FROM t WHERE p IN (2, 1) AND c1 IN (3, 1) AND c2 = 'a'")?;
        found.sort();
        assert_eq!(
            found,
            rows(&[&["1", "1"], &["1", "3"], &["2", "1"], &["2", "3"]])
        );
        assert_eq!(
            node.rows(
                "SELECT c1, c2 FROM t WHERE p = 1 AND (c1, c2) > (2, 'a') AND (c1, c2) < (3, 'b')"
            )?,
            rows(&[&["2", "\"b\""], &["3", "\"a\""]])
        );
        Ok(())
    }

    #[test]
    fn filtering_needs_allow_filtering() -> TestResult {
        let mut node = table()?;
        let error = node.error("SELECT * FROM t WHERE v = 110")?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m.contains("ALLOW FILTERING")),
            "{error:?}"
        );
        assert_eq!(
            node.rows("SELECT p, c1, c2 FROM t WHERE v = 210 ALLOW FILTERING")?,
            rows(&[&["2", "1", "\"a\""], &["2", "1", "\"b\""]])
        );
        let error = node.error("SELECT * FROM t WHERE p = 1 AND c2 = 'a'")?;
        assert!(matches!(error, CqlError::Invalid(_)), "{error:?}");
        Ok(())
    }

    #[test]
    fn restrictions_cassandra_refuses_are_refused() -> TestResult {
        let mut node = table()?;
        for cql in [
            "SELECT * FROM t WHERE p = 1 AND p = 2",
            "SELECT * FROM t WHERE p > 1",
            "SELECT * FROM t WHERE nope = 1",
            "SELECT * FROM t WHERE p = 'text'",
        ] {
            let error = node.error(cql)?;
            assert!(matches!(error, CqlError::Invalid(_)), "{cql}: {error:?}");
        }
        Ok(())
    }

    #[test]
    fn too_many_clustering_prefixes_name_the_limit() -> TestResult {
        let mut node = table()?;
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let list = many.join(", ");
        let error = node.error(&format!(
            "SELECT * FROM t WHERE p = 1 AND c1 IN ({list}) AND c2 IN ({})",
            many.iter()
                .map(|v| format!("'{v}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m.contains("1000")),
            "{error:?}"
        );
        Ok(())
    }
}

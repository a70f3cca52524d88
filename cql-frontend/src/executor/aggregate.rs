//! Aggregates (count, min, max, sum, avg) folded over the selected rows,
//! and the columns a GROUP BY groups on.

use bytes::Bytes;

use crate::protocol::error::CqlError;
use crate::schema::{ColumnSchema, TableSchema};
use crate::types::CqlType;

use super::invalid;
use super::restrictions::Restrictions;
use super::selection::Projected;

/// Checks that `GROUP BY` names a prefix of the primary key, where key
/// columns restricted to one value (`=`) may be left out, as in Cassandra
/// (`WHERE p = 1 GROUP BY c1`); returns the prefix's columns, those left
/// out included (they are the same on every row).
pub(super) fn group_columns(
    table: &TableSchema,
    group_by: &[String],
    restrictions: &Restrictions,
) -> Result<Vec<ColumnSchema>, CqlError> {
    let one_value = |column: &ColumnSchema, clustering_index: Option<usize>| match clustering_index
    {
        None => restrictions
            .partition
            .iter()
            .any(|(p, values)| *p == column.position as usize && values.len() == 1),
        Some(i) => i < restrictions.clustering_depth && restrictions.clustering_prefixes.len() == 1,
    };
    let key: Vec<(&ColumnSchema, Option<usize>)> = table
        .partition_key()
        .map(|c| (c, None))
        .chain(table.clustering().enumerate().map(|(i, c)| (c, Some(i))))
        .collect();
    let mut out = Vec::new();
    let mut at = 0;
    for name in group_by {
        loop {
            match key.get(at) {
                Some((column, _)) if column.name == *name => {
                    out.push((*column).clone());
                    at += 1;
                    break;
                }
                Some((column, index)) if one_value(column, *index) => {
                    out.push((*column).clone());
                    at += 1;
                }
                _ => {
                    return Err(invalid(format!(
                        "Group by currently only support groups of columns following their declared order in the PRIMARY KEY ({name} is out of order)"
                    )))
                }
            }
        }
    }
    if !out.is_empty() && out.len() < table.partition_key().count() {
        return Err(invalid(
            "Group by is not supported on only a part of the partition key",
        ));
    }
    Ok(out)
}

/// Rows fetched per internal page while an aggregate folds them.
pub(super) const AGGREGATE_PAGE_ROWS: usize = 5_000;

/// The native aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AggregateKind {
    Count,
    Min,
    Max,
    Sum,
    Avg,
}

impl AggregateKind {
    pub(super) fn from_name(name: &str) -> Option<AggregateKind> {
        Some(match name {
            "count" => AggregateKind::Count,
            "min" => AggregateKind::Min,
            "max" => AggregateKind::Max,
            "sum" => AggregateKind::Sum,
            "avg" => AggregateKind::Avg,
            _ => return None,
        })
    }
}

pub(super) fn is_numeric(ty: &CqlType) -> bool {
    matches!(
        ty,
        CqlType::TinyInt
            | CqlType::SmallInt
            | CqlType::Int
            | CqlType::BigInt
            | CqlType::VarInt
            | CqlType::Float
            | CqlType::Double
            | CqlType::Counter
    )
}

/// One output column of an aggregate query, folded row by row.
pub(super) struct Fold {
    pub(super) kind: Option<AggregateKind>,
    pub(super) ty: Option<CqlType>,
    pub(super) count: i64,
    /// Min/max so far: its byte-comparable form and its value.
    pub(super) best: Option<(Vec<u8>, Bytes)>,
    pub(super) int_sum: i128,
    pub(super) float_sum: f64,
    /// A plain column's value from the first row (Cassandra's behaviour).
    pub(super) first: Option<Option<Bytes>>,
}

impl Fold {
    pub(super) fn new(projected: &Projected) -> Fold {
        let (kind, ty) = match projected {
            Projected::Aggregate(kind, column, _) => {
                (Some(*kind), column.as_ref().map(|c| c.ty.clone()))
            }
            _ => (None, None),
        };
        Fold {
            kind,
            ty,
            count: 0,
            best: None,
            int_sum: 0,
            float_sum: 0.0,
            first: None,
        }
    }

    pub(super) fn add(&mut self, value: Option<&Bytes>) -> Result<(), CqlError> {
        let Some(kind) = self.kind else {
            if self.first.is_none() {
                self.first = Some(value.cloned());
            }
            return Ok(());
        };
        let Some(value) = value else {
            return Ok(()); // nulls do not count
        };
        self.count += 1;
        let ty = self.ty.clone().unwrap_or(CqlType::BigInt);
        match kind {
            AggregateKind::Count => {}
            AggregateKind::Min | AggregateKind::Max => {
                let mut key = Vec::new();
                ty.encode_comparable(value, false, &mut key)
                    .map_err(|e| CqlError::Server(e.0))?;
                let better = match &self.best {
                    None => true,
                    Some((best, _)) if kind == AggregateKind::Min => key < *best,
                    Some((best, _)) => key > *best,
                };
                if better {
                    self.best = Some((key, value.clone()));
                }
            }
            AggregateKind::Sum | AggregateKind::Avg => match ty {
                CqlType::Float => {
                    self.float_sum += f64::from(f32::from_be_bytes(
                        value.as_ref().try_into().unwrap_or([0; 4]),
                    ))
                }
                CqlType::Double => {
                    self.float_sum +=
                        f64::from_be_bytes(value.as_ref().try_into().unwrap_or([0; 8]))
                }
                _ => {
                    let mut extended = [if value.first().is_some_and(|b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    }; 16];
                    let start = 16usize.saturating_sub(value.len());
                    extended[start..].copy_from_slice(
                        value
                            .get(value.len().saturating_sub(16)..)
                            .unwrap_or_default(),
                    );
                    self.int_sum += i128::from_be_bytes(extended);
                }
            },
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Option<Bytes>, CqlError> {
        let Some(kind) = self.kind else {
            return Ok(self.first.flatten());
        };
        let ty = self.ty.unwrap_or(CqlType::BigInt);
        Ok(match kind {
            AggregateKind::Count => Some(Bytes::copy_from_slice(&self.count.to_be_bytes())),
            AggregateKind::Min | AggregateKind::Max => self.best.map(|(_, value)| value),
            AggregateKind::Sum | AggregateKind::Avg => {
                let divisor = if kind == AggregateKind::Avg {
                    self.count.max(1)
                } else {
                    1
                };
                Some(match ty {
                    CqlType::Float => Bytes::copy_from_slice(
                        &((self.float_sum / divisor as f64) as f32).to_be_bytes(),
                    ),
                    CqlType::Double => {
                        Bytes::copy_from_slice(&(self.float_sum / divisor as f64).to_be_bytes())
                    }
                    _ => {
                        let total = self.int_sum / i128::from(divisor);
                        let bytes = total.to_be_bytes();
                        let width = ty.fixed_width().unwrap_or(16);
                        Bytes::copy_from_slice(bytes.get(16 - width.min(16)..).unwrap_or_default())
                    }
                })
            }
        })
    }
}

//! Aggregates (count, min, max, sum, avg) folded over the selected rows,
//! and the columns a GROUP BY groups on.

use bytes::Bytes;
use num_bigint::BigInt;

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
            | CqlType::Decimal
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
    /// varint sums: exact, however large.
    pub(super) big_sum: BigInt,
    /// decimal sum, or for avg Cassandra's running mean (each value moves
    /// it by `(value - mean) / count`, rounded half-even at the mean's scale).
    pub(super) decimal: Decimal,
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
            big_sum: BigInt::default(),
            decimal: Decimal::default(),
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
                CqlType::VarInt => self.big_sum += BigInt::from_signed_bytes_be(value),
                CqlType::Decimal => {
                    let number = Decimal::decode(value)
                        .ok_or_else(|| CqlError::Server("a stored decimal is malformed".into()))?;
                    self.decimal = if kind == AggregateKind::Sum {
                        self.decimal.add(&number)?
                    } else {
                        let step = number.sub(&self.decimal)?.div_half_even(self.count);
                        self.decimal.add(&step)?
                    };
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
                    CqlType::VarInt => {
                        Bytes::from((self.big_sum / BigInt::from(divisor)).to_signed_bytes_be())
                    }
                    CqlType::Decimal => self.decimal.encode(),
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

/// Digits a decimal sum or mean may widen a value by to align scales.
const DECIMAL_WIDENING_MAX: u32 = 100_000;

/// A decimal as Cassandra's `BigDecimal`: unscaled × 10^-scale.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Decimal {
    unscaled: BigInt,
    scale: i32,
}

impl Decimal {
    /// The wire form: a 4-byte scale, then the unscaled varint.
    fn decode(bytes: &[u8]) -> Option<Decimal> {
        let scale = i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
        Some(Decimal {
            unscaled: BigInt::from_signed_bytes_be(bytes.get(4..)?),
            scale,
        })
    }

    fn encode(&self) -> Bytes {
        let mut out = self.scale.to_be_bytes().to_vec();
        out.extend(self.unscaled.to_signed_bytes_be());
        Bytes::from(out)
    }

    /// Both values at the larger scale; refused when that would take more
    /// than [`DECIMAL_WIDENING_MAX`] digits (a scale of 2,000,000,000
    /// would otherwise compute a power of ten of that many digits).
    fn aligned(&self, other: &Decimal) -> Result<(BigInt, BigInt, i32), CqlError> {
        let scale = self.scale.max(other.scale);
        let widen = |d: &Decimal| -> Result<BigInt, CqlError> {
            let by = u32::try_from(i64::from(scale) - i64::from(d.scale)).unwrap_or(0);
            if by == 0 || d.unscaled.sign() == num_bigint::Sign::NoSign {
                return Ok(d.unscaled.clone());
            }
            if by > DECIMAL_WIDENING_MAX {
                return Err(invalid(format!(
                    "Cannot add decimals whose scales differ by {by} digits (at most {DECIMAL_WIDENING_MAX})"
                )));
            }
            Ok(&d.unscaled * BigInt::from(10u8).pow(by))
        };
        Ok((widen(self)?, widen(other)?, scale))
    }

    fn add(&self, other: &Decimal) -> Result<Decimal, CqlError> {
        let (a, b, scale) = self.aligned(other)?;
        Ok(Decimal {
            unscaled: a + b,
            scale,
        })
    }

    fn sub(&self, other: &Decimal) -> Result<Decimal, CqlError> {
        let (a, b, scale) = self.aligned(other)?;
        Ok(Decimal {
            unscaled: a - b,
            scale,
        })
    }

    /// Divided by a count at this scale, rounded half to even (Java's
    /// `divide(BigDecimal.valueOf(count), RoundingMode.HALF_EVEN)`).
    fn div_half_even(&self, count: i64) -> Decimal {
        let divisor = BigInt::from(count.max(1));
        let quotient = &self.unscaled / &divisor;
        let remainder = &self.unscaled - &quotient * &divisor;
        let twice = (&remainder * BigInt::from(2)).magnitude().clone();
        let away = match twice.cmp(divisor.magnitude()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => (&quotient % BigInt::from(2)) != BigInt::default(),
            std::cmp::Ordering::Less => false,
        };
        let unscaled = if !away {
            quotient
        } else if remainder.sign() == num_bigint::Sign::Minus {
            quotient - 1
        } else {
            quotient + 1
        };
        Decimal {
            unscaled,
            scale: self.scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    fn table() -> Result<TestNode, Box<dyn std::error::Error>> {
        let mut node = TestNode::new()?;
        node.run(
            "CREATE TABLE t (p int, c1 int, c2 int, v int, d decimal, n varint, \
             PRIMARY KEY (p, c1, c2))",
        )?;
        for p in 1..=2 {
            for c1 in 1..=2 {
                for c2 in 1..=3 {
                    node.run(&format!(
                        "INSERT INTO t (p, c1, c2, v, d, n) VALUES ({p}, {c1}, {c2}, {v}, {v}.5, \
                         {v}00000000000000000000000000000000000)",
                        v = c1 * 10 + c2
                    ))?;
                }
            }
        }
        Ok(node)
    }

    #[test]
    fn aggregates_fold_every_selected_row() -> TestResult {
        let mut node = table()?;
        assert_eq!(
            node.rows("SELECT count(*), min(v), max(v), sum(v), avg(v) FROM t WHERE p = 1")?,
            rows(&[&["6", "11", "23", "102", "17"]])
        );
        // Exact, past what 64 or 128 bits hold, as Cassandra's BigDecimal
        // and BigInteger sums are.
        assert_eq!(
            node.rows("SELECT sum(d), avg(d), sum(n), avg(n) FROM t WHERE p = 1")?,
            rows(&[&[
                "105.0",
                "17.5",
                "10200000000000000000000000000000000000",
                "1700000000000000000000000000000000000"
            ]])
        );
        assert_eq!(node.rows("SELECT count(*) FROM t")?, rows(&[&["12"]]));
        assert_eq!(
            node.rows("SELECT count(*) FROM t WHERE p = 3")?,
            rows(&[&["0"]]),
            "an aggregate over no rows is one row"
        );
        Ok(())
    }

    #[test]
    fn a_decimal_mean_rounds_half_even_at_its_scale() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE m (k int PRIMARY KEY, d decimal)")?;
        for (k, d) in [(1, "1"), (2, "2"), (3, "2")] {
            node.run(&format!("INSERT INTO m (k, d) VALUES ({k}, {d})"))?;
        }
        // Cassandra's running mean at scale 0: 1, then 1 + (2-1)/2 = 1
        // (0.5 rounds to even 0), then 1 + (2-1)/3 = 1.
        assert_eq!(
            node.rows("SELECT avg(d), sum(d) FROM m")?,
            rows(&[&["1", "5"]])
        );
        Ok(())
    }

    #[test]
    fn decimals_of_far_apart_scales_are_refused_not_expanded() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE m (k int PRIMARY KEY, d decimal)")?;
        node.run("INSERT INTO m (k, d) VALUES (1, 1E-2000000000)")?;
        node.run("INSERT INTO m (k, d) VALUES (2, 1E+2000000000)")?;
        assert_eq!(
            node.rows("SELECT d FROM m WHERE k = 1")?,
            rows(&[&["1E-2000000000"]]),
            "such a value reads back as it was written"
        );
        let started = std::time::Instant::now();
        assert_eq!(
            node.rows("SELECT sum(d), avg(d) FROM m WHERE k = 1")?,
            rows(&[&["1E-2000000000", "1E-2000000000"]]),
            "one such value alone needs no widening"
        );
        for cql in ["SELECT sum(d) FROM m", "SELECT avg(d) FROM m"] {
            let error = node.error(cql)?;
            assert!(
                error.to_string().contains("at most 100000"),
                "{cql}: {error:?}"
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "refused at once"
        );
        Ok(())
    }

    #[test]
    fn group_by_groups_on_a_primary_key_prefix() -> TestResult {
        let mut node = table()?;
        assert_eq!(
            node.rows("SELECT c1, count(*), max(v) FROM t WHERE p = 1 GROUP BY c1")?,
            rows(&[&["1", "3", "13"], &["2", "3", "23"]])
        );
        let mut per_partition = node.rows("SELECT p, sum(v) FROM t GROUP BY p")?;
        per_partition.sort();
        assert_eq!(per_partition, rows(&[&["1", "102"], &["2", "102"]]));
        let error = node.error("SELECT v, count(*) FROM t GROUP BY v")?;
        assert!(matches!(error, CqlError::Invalid(_)), "{error:?}");
        Ok(())
    }
}

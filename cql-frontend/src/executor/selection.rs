//! What a SELECT returns: its selectors resolved against the table into
//! output columns, and the result metadata a prepared statement announces.

use bytes::Bytes;

use crate::cql::ast::{Literal, Selector, Term};
use crate::protocol::error::CqlError;
use crate::results::ColumnSpec;
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::types::CqlType;

use super::aggregate::{is_numeric, AggregateKind};
use super::functions::{
    apply_scalar, castable, ClockFunction, CollectionFunction, MathFunction, ScalarFunction,
};
use super::invalid;

/// A selected output.
pub(super) enum Projected {
    Column(ColumnSchema, Option<String>),
    /// An aggregate over all selected rows: which, of what column (none
    /// for `count(*)`), and its output name.
    Aggregate(AggregateKind, Option<ColumnSchema>, String),
    /// `writetime(column)`, and its output name.
    WriteTime(ColumnSchema, String),
    /// `ttl(column)`, and its output name.
    Ttl(ColumnSchema, String),
    /// A value computed from the row (`token(k)`, `toDate(ts)`, a cast,
    /// `home.zip`, `toUnixTimestamp(now())`), and its output name.
    Scalar(Expr, String),
}

impl Projected {
    pub(super) fn spec(&self, table: &TableSchema) -> Option<ColumnSpec> {
        let (name, ty) = match self {
            Projected::Column(c, alias) => (
                alias.clone().unwrap_or_else(|| c.name.clone()),
                c.ty.clone(),
            ),
            Projected::WriteTime(_, name) => (name.clone(), CqlType::BigInt),
            Projected::Ttl(_, name) => (name.clone(), CqlType::Int),
            Projected::Scalar(expr, name) => (name.clone(), expr.ty().clone()),
            Projected::Aggregate(kind, column, name) => {
                let ty = match (kind, column) {
                    (AggregateKind::Count, _) | (_, None) => CqlType::BigInt,
                    (_, Some(column)) => column.ty.clone(),
                };
                (name.clone(), ty)
            }
        };
        Some(ColumnSpec {
            keyspace: table.keyspace.clone(),
            table: table.name.clone(),
            name,
            ty,
        })
    }
}

/// The result columns of a SELECT on a table, as a prepared statement
/// announces them.
pub fn result_columns(
    table: &TableSchema,
    selectors: &[Selector],
    json: bool,
) -> Result<Vec<ColumnSpec>, CqlError> {
    if json {
        return Ok(vec![ColumnSpec {
            keyspace: table.keyspace.clone(),
            table: table.name.clone(),
            name: "[json]".into(),
            ty: CqlType::Text,
        }]);
    }
    Ok(project(table, selectors)?
        .iter()
        .filter_map(|p| p.spec(table))
        .collect())
}

pub(super) fn project(
    table: &TableSchema,
    selectors: &[Selector],
) -> Result<Vec<Projected>, CqlError> {
    if selectors.is_empty() {
        return Ok(table
            .columns
            .iter()
            .map(|c| Projected::Column(c.clone(), None))
            .collect());
    }
    let mut out = Vec::new();
    for selector in selectors {
        let (inner, alias) = match selector {
            Selector::Aliased(inner, alias) => (inner.as_ref(), Some(alias.clone())),
            other => (other, None),
        };
        match inner {
            Selector::Column(name) => {
                let column = table
                    .column(name)
                    .ok_or_else(|| invalid(format!("Undefined column name {name}")))?;
                out.push(Projected::Column(column.clone(), alias));
            }
            Selector::CountAll => out.push(Projected::Aggregate(
                AggregateKind::Count,
                None,
                alias.unwrap_or_else(|| "count".into()),
            )),
            Selector::Function { name, args } if name == "writetime" || name == "ttl" => {
                let [Selector::Column(column_name)] = args.as_slice() else {
                    return Err(invalid(format!("{name}() takes one column")));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                if matches!(
                    column.kind,
                    ColumnKind::PartitionKey | ColumnKind::Clustering
                ) {
                    return Err(invalid(format!(
                        "Cannot use selection function {name} on PRIMARY KEY part {column_name}"
                    )));
                }
                if column.ty.is_multi_cell() {
                    return Err(invalid(format!(
                        "Cannot use selection function {name} on non-frozen {} {column_name}",
                        if matches!(column.ty, CqlType::UserType(_)) {
                            "UDT"
                        } else {
                            "collection"
                        }
                    )));
                }
                let output = alias.unwrap_or_else(|| format!("{name}({column_name})"));
                out.push(if name == "writetime" {
                    Projected::WriteTime(column.clone(), output)
                } else {
                    Projected::Ttl(column.clone(), output)
                });
            }
            Selector::Function { name, args } if AggregateKind::from_name(name).is_some() => {
                let kind = AggregateKind::from_name(name).unwrap_or(AggregateKind::Count);
                let [Selector::Column(column_name)] = args.as_slice() else {
                    return Err(invalid(format!("{name}() takes one column")));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                if matches!(kind, AggregateKind::Sum | AggregateKind::Avg)
                    && !is_numeric(&column.ty)
                {
                    return Err(invalid(format!(
                        "Invalid call to function {name}: {column_name} is a {}, not a number",
                        column.ty
                    )));
                }
                let output = alias.unwrap_or_else(|| format!("system.{name}({column_name})"));
                out.push(Projected::Aggregate(kind, Some(column.clone()), output));
            }
            Selector::Aliased(..) => return Err(invalid("nested aliases")),
            Selector::Term(_) => {
                return Err(CqlError::not_yet_supported(
                    "a constant as a selector (only as a function's argument)",
                ))
            }
            scalar_selector => {
                let (expr, name) = scalar(table, scalar_selector)?;
                out.push(Projected::Scalar(expr, alias.unwrap_or(name)));
            }
        }
    }
    Ok(out)
}

/// A value a selection computes from one row: a column's, a constant's,
/// or a function's of other such values (`toUnixTimestamp(now())`).
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Column(ColumnSchema),
    Constant(Option<Bytes>, CqlType),
    /// A function of its arguments' values, and its result type.
    Call(ScalarFunction, Vec<Expr>, CqlType),
}

impl Expr {
    pub(super) fn ty(&self) -> &CqlType {
        match self {
            Expr::Column(column) => &column.ty,
            Expr::Constant(_, ty) | Expr::Call(_, _, ty) => ty,
        }
    }

    /// This row's value: `column` gives a column's value, `token` is the
    /// partition's token. A function that cannot apply gives null.
    pub(super) fn eval(
        &self,
        column: &dyn Fn(&ColumnSchema) -> Option<Bytes>,
        token: i64,
    ) -> Option<Bytes> {
        match self {
            Expr::Column(c) => column(c),
            Expr::Constant(value, _) => value.clone(),
            Expr::Call(function, args, ty) => {
                let argument = args.first();
                apply_scalar(
                    function,
                    argument.map_or(&CqlType::BigInt, Expr::ty),
                    ty,
                    argument.and_then(|a| a.eval(column, token)),
                    token,
                )
            }
        }
    }
}

/// Functions of functions nest at most this deep in a selection.
const NESTING_MAX: usize = 16;

/// Resolves a selector that computes one value per row, and names its
/// output as Cassandra does (`system.abs(v)`, `cast(v as text)`, `a.b`).
fn scalar(table: &TableSchema, selector: &Selector) -> Result<(Expr, String), CqlError> {
    nested_scalar(table, selector, 0)
}

fn nested_scalar(
    table: &TableSchema,
    selector: &Selector,
    depth: usize,
) -> Result<(Expr, String), CqlError> {
    if depth > NESTING_MAX {
        return Err(invalid(format!(
            "functions nest at most {NESTING_MAX} deep in a selection"
        )));
    }
    match selector {
        Selector::Column(name) => {
            let column = table
                .column(name)
                .ok_or_else(|| invalid(format!("Undefined column name {name}")))?;
            Ok((Expr::Column(column.clone()), name.clone()))
        }
        Selector::Field(base, field) => {
            let (inner, inner_name) = nested_scalar(table, base, depth + 1)?;
            let CqlType::UserType(udt) = inner.ty().unfrozen() else {
                return Err(invalid(format!(
                    "Invalid field selection: {inner_name} of type {} is not a user type",
                    inner.ty()
                )));
            };
            let Some(index) = udt.fields.iter().position(|(f, _)| f == field) else {
                return Err(invalid(format!(
                    "{inner_name} of type {} has no field {field}",
                    inner.ty()
                )));
            };
            let ty = udt.fields[index].1.clone();
            Ok((
                Expr::Call(ScalarFunction::Field(vec![index]), vec![inner], ty),
                format!("{inner_name}.{field}"),
            ))
        }
        Selector::Cast(inner, to) => {
            let (inner, inner_name) = nested_scalar(table, inner, depth + 1)?;
            if !castable(inner.ty(), to) {
                return Err(invalid(format!("{} cannot be cast to {to}", inner.ty())));
            }
            Ok((
                Expr::Call(ScalarFunction::Cast, vec![inner], to.clone()),
                format!("cast({inner_name} as {to})"),
            ))
        }
        Selector::Function { name, args } => call(table, name, args, depth),
        Selector::Term(_) => Err(invalid(
            "a constant in a selection needs a function to be the argument of",
        )),
        Selector::CountAll | Selector::Aliased(..) => Err(invalid(
            "count(*) and aliases cannot be the argument of a function",
        )),
    }
}

/// A function call in a selection: its arguments resolved, checked
/// against what the function takes, and its result type.
fn call(
    table: &TableSchema,
    name: &str,
    args: &[Selector],
    depth: usize,
) -> Result<(Expr, String), CqlError> {
    if name == "token" {
        let key: Vec<ColumnSchema> = table.partition_key().cloned().collect();
        let given: Vec<&str> = args
            .iter()
            .filter_map(|a| match a {
                Selector::Column(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        let expected: Vec<&str> = key.iter().map(|c| c.name.as_str()).collect();
        if given != expected {
            return Err(invalid(format!(
                "Invalid arguments for token(): it takes the partition key columns ({})",
                expected.join(", ")
            )));
        }
        let output = format!("system.token({})", expected.join(", "));
        let columns = key.into_iter().map(Expr::Column).collect();
        return Ok((
            Expr::Call(ScalarFunction::Token, columns, CqlType::BigInt),
            output,
        ));
    }
    if let Some((clock, ty)) = ClockFunction::from_name(name) {
        if !args.is_empty() {
            return Err(invalid(format!(
                "Invalid number of arguments in call to function system.{name}: 0 required but {} provided",
                args.len()
            )));
        }
        return Ok((
            Expr::Call(ScalarFunction::Clock(clock), Vec::new(), ty),
            format!("system.{name}()"),
        ));
    }
    let time = matches!(
        name,
        "totimestamp" | "tounixtimestamp" | "todate" | "dateof" | "unixtimestampof"
    );
    let reinterpretation = crate::values::reinterpretation(name);
    let math = MathFunction::from_name(name);
    let collection = CollectionFunction::from_name(name);
    if !time
        && reinterpretation.is_none()
        && math.is_none()
        && collection.is_none()
        && name != "tojson"
    {
        return Err(
            if name == "writetime" || name == "ttl" || AggregateKind::from_name(name).is_some() {
                CqlError::not_yet_supported(&format!("{name}() as the argument of a function"))
            } else {
                CqlError::not_yet_supported(&format!("the {name}() function in a selection"))
            },
        );
    }
    let [arg] = args else {
        return Err(invalid(format!(
            "Invalid number of arguments in call to function system.{name}: 1 required but {} provided",
            args.len()
        )));
    };
    let expected = reinterpretation.as_ref().map(|(from, _)| from);
    let (inner, inner_name) = argument(table, arg, expected, depth)?;
    let from = inner.ty().clone();
    let type_error = || {
        invalid(format!(
            "Type error: {inner_name} of type {from} cannot be passed as argument 0 of function system.{name}"
        ))
    };
    let (function, ty) = if time {
        let (function, ty) = match name {
            "totimestamp" | "dateof" => (ScalarFunction::ToTimestamp, CqlType::Timestamp),
            "todate" => (ScalarFunction::ToDate, CqlType::Date),
            _ => (ScalarFunction::ToUnixTimestamp, CqlType::BigInt),
        };
        let accepted = match function {
            ScalarFunction::ToDate => matches!(from, CqlType::TimeUuid | CqlType::Timestamp),
            _ => matches!(from, CqlType::TimeUuid | CqlType::Timestamp | CqlType::Date),
        };
        if !accepted {
            return Err(type_error());
        }
        (function, ty)
    } else if let Some(math) = math {
        let fixed_number = is_numeric(&from)
            && !matches!(from, CqlType::VarInt | CqlType::Decimal | CqlType::Counter);
        if !fixed_number {
            return Err(type_error());
        }
        (ScalarFunction::Math(math), from.clone())
    } else if let Some((takes, to)) = reinterpretation {
        if from.unfrozen() != &takes {
            return Err(invalid(format!(
                "Type error: {inner_name} of type {from} cannot be passed as argument 0 of function system.{name} of type {takes}"
            )));
        }
        (ScalarFunction::Reinterpret, to)
    } else if let Some(collection) = collection {
        let ty = collection.result_type(&from).ok_or_else(type_error)?;
        (ScalarFunction::Collection(collection), ty)
    } else {
        (ScalarFunction::ToJson, CqlType::Text)
    };
    Ok((
        Expr::Call(function, vec![inner], ty),
        format!("system.{name}({inner_name})"),
    ))
}

/// A function's argument: a nested selector, or a constant typed as the
/// function takes it (else an integer is an int, or a bigint or varint
/// when it does not fit; a float a double), or as its cast says.
fn argument(
    table: &TableSchema,
    selector: &Selector,
    expected: Option<&CqlType>,
    depth: usize,
) -> Result<(Expr, String), CqlError> {
    let Selector::Term(term) = selector else {
        return nested_scalar(table, selector, depth + 1);
    };
    let (ty, literal) = match term {
        Term::Cast(ty, inner) => (ty.clone(), inner.as_ref()),
        other => (
            match (expected, other) {
                (Some(ty), _) => ty.clone(),
                (None, Term::Literal(literal)) => literal_type(literal)?,
                _ => CqlType::Text,
            },
            other,
        ),
    };
    let Term::Literal(literal) = literal else {
        return Err(CqlError::not_yet_supported(
            "bind markers and collections as function arguments in a selection",
        ));
    };
    let value = match literal {
        Literal::Null => None,
        literal => Some(crate::values::literal_value(&ty, literal, "argument")?),
    };
    let text = match literal {
        Literal::Str(text) => format!("'{}'", text.replace('\'', "''")),
        Literal::Integer(text)
        | Literal::Float(text)
        | Literal::Uuid(text)
        | Literal::Duration(text) => text.clone(),
        Literal::Bool(value) => value.to_string(),
        Literal::Blob(bytes) => format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Literal::Null => "null".into(),
    };
    Ok((Expr::Constant(value, ty), text))
}

/// The type of a constant with nothing to say otherwise.
fn literal_type(literal: &Literal) -> Result<CqlType, CqlError> {
    Ok(match literal {
        Literal::Integer(text) => match text.parse::<i64>() {
            Ok(n) if i32::try_from(n).is_ok() => CqlType::Int,
            Ok(_) => CqlType::BigInt,
            Err(_) => CqlType::VarInt,
        },
        Literal::Float(_) => CqlType::Double,
        Literal::Str(_) => CqlType::Text,
        Literal::Bool(_) => CqlType::Boolean,
        Literal::Uuid(_) => CqlType::Uuid,
        Literal::Blob(_) => CqlType::Blob,
        Literal::Duration(_) => CqlType::Duration,
        Literal::Null => {
            return Err(invalid(
                "null as a function's argument needs a type: write (type) null",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;
    use crate::results::ResultBody;

    #[test]
    fn selectors_name_their_columns_as_cassandra_does() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TYPE addr (street text, zip int)",
            "CREATE TABLE t (k int PRIMARY KEY, v int, home frozen<addr>)",
            "INSERT INTO t (k, v, home) VALUES (1, 2, {street: 'Main', zip: 12345}) USING TTL 1000",
        ])?;
        let ResultBody::Rows(result) = node.run(
            "SELECT k AS key, writetime(v), ttl(v), home.zip, CAST(v AS text), token(k) FROM t",
        )?
        else {
            return Err("expected rows".into());
        };
        let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "writetime(v)",
                "ttl(v)",
                "home.zip",
                "cast(v as text)",
                "system.token(k)"
            ]
        );
        let row = result.rows.first().ok_or("one row")?;
        assert_eq!(row.len(), 6);
        assert_eq!(
            node.rows("SELECT home.zip, home.street, CAST(v AS text) FROM t")?,
            rows(&[&["12345", "\"Main\"", "\"2\""]])
        );
        let ttl = node.rows("SELECT ttl(v) FROM t")?;
        let left: i64 = ttl[0][0].parse()?;
        assert!((990..=1000).contains(&left), "ttl {left}");
        Ok(())
    }

    #[test]
    fn selections_of_what_is_not_there_are_refused() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE t (k int PRIMARY KEY, v int, l list<int>)")?;
        for (cql, fragment) in [
            ("SELECT nope FROM t", "nope"),
            ("SELECT writetime(k) FROM t", "k"),
            ("SELECT v.field FROM t", "v"),
            ("SELECT CAST(l AS int) FROM t", "l"),
            ("SELECT no_such_function(v) FROM t", "no_such_function"),
        ] {
            let error = node.error(cql)?;
            assert!(
                matches!(&error, CqlError::Invalid(m) if m.contains(fragment)),
                "{cql}: {error:?}"
            );
        }
        Ok(())
    }
}

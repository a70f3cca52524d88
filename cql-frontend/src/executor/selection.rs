//! What a SELECT returns: its selectors resolved against the table into
//! output columns, and the result metadata a prepared statement announces.

use crate::cql::ast::Selector;
use crate::protocol::error::CqlError;
use crate::results::ColumnSpec;
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::types::CqlType;

use super::aggregate::{is_numeric, AggregateKind};
use super::functions::{castable, ClockFunction, CollectionFunction, MathFunction, ScalarFunction};
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
    /// A function of column values (`token(k)`, `toDate(ts)`, a cast), its
    /// result type and output name.
    Scalar(ScalarFunction, Vec<ColumnSchema>, CqlType, String),
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
            Projected::Scalar(_, _, ty, name) => (name.clone(), ty.clone()),
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

/// The one column a function of a column is called on, and the name of
/// its result (the alias, or `system.name(column)` as Cassandra names it).
pub(super) fn function_column<'t>(
    table: &'t TableSchema,
    name: &str,
    args: &[Selector],
    alias: Option<String>,
) -> Result<(&'t ColumnSchema, String), CqlError> {
    let [Selector::Column(column_name)] = args else {
        return Err(CqlError::not_yet_supported(&format!(
            "{name}() of anything but one column"
        )));
    };
    let column = table
        .column(column_name)
        .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
    let output = alias.unwrap_or_else(|| format!("system.{name}({column_name})"));
    Ok((column, output))
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
                    return Err(invalid(format!("Cannot use selection function {name} on non-frozen collection {column_name}")));
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
            Selector::Function { name, args } if name == "token" => {
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
                let output =
                    alias.unwrap_or_else(|| format!("system.token({})", expected.join(", ")));
                out.push(Projected::Scalar(
                    ScalarFunction::Token,
                    key,
                    CqlType::BigInt,
                    output,
                ));
            }
            Selector::Function { name, args }
                if matches!(
                    name.as_str(),
                    "totimestamp" | "tounixtimestamp" | "todate" | "dateof" | "unixtimestampof"
                ) =>
            {
                let [Selector::Column(column_name)] = args.as_slice() else {
                    return Err(invalid(format!("{name}() takes one column")));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                let (function, ty) = match name.as_str() {
                    "totimestamp" | "dateof" => (ScalarFunction::ToTimestamp, CqlType::Timestamp),
                    "todate" => (ScalarFunction::ToDate, CqlType::Date),
                    _ => (ScalarFunction::ToUnixTimestamp, CqlType::BigInt),
                };
                let accepted = match function {
                    ScalarFunction::ToDate => {
                        matches!(column.ty, CqlType::TimeUuid | CqlType::Timestamp)
                    }
                    _ => matches!(
                        column.ty,
                        CqlType::TimeUuid | CqlType::Timestamp | CqlType::Date
                    ),
                };
                if !accepted {
                    return Err(invalid(format!(
                        "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name}",
                        column.ty
                    )));
                }
                let output = alias.unwrap_or_else(|| format!("system.{name}({column_name})"));
                out.push(Projected::Scalar(
                    function,
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Cast(inner, to) => {
                let Selector::Column(column_name) = inner.as_ref() else {
                    return Err(CqlError::not_yet_supported("CAST of anything but a column"));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                if !castable(&column.ty, to) {
                    return Err(invalid(format!("{} cannot be cast to {to}", column.ty)));
                }
                let output = alias.unwrap_or_else(|| format!("cast({column_name} as {to})"));
                out.push(Projected::Scalar(
                    ScalarFunction::Cast,
                    vec![column.clone()],
                    to.clone(),
                    output,
                ));
            }
            Selector::Function { name, args }
                if MathFunction::from_name(name).is_some()
                    || crate::values::reinterpretation(name).is_some() =>
            {
                let (column, output) = function_column(table, name, args, alias)?;
                let column_name = &column.name;
                let (function, ty) = if let Some(math) = MathFunction::from_name(name) {
                    let fixed_number = is_numeric(&column.ty)
                        && !matches!(
                            column.ty,
                            CqlType::VarInt | CqlType::Decimal | CqlType::Counter
                        );
                    if !fixed_number {
                        return Err(invalid(format!(
                            "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name}",
                            column.ty
                        )));
                    }
                    (ScalarFunction::Math(math), column.ty.clone())
                } else {
                    let (from, to) = crate::values::reinterpretation(name)
                        .unwrap_or((CqlType::Blob, CqlType::Blob));
                    if column.ty.unfrozen() != &from {
                        return Err(invalid(format!(
                            "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name} of type {from}",
                            column.ty
                        )));
                    }
                    (ScalarFunction::Reinterpret, to)
                };
                out.push(Projected::Scalar(
                    function,
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Function { name, args } if name == "tojson" => {
                let (column, output) = function_column(table, name, args, alias)?;
                out.push(Projected::Scalar(
                    ScalarFunction::ToJson,
                    vec![column.clone()],
                    CqlType::Text,
                    output,
                ));
            }
            Selector::Function { name, args } if ClockFunction::from_name(name).is_some() => {
                if !args.is_empty() {
                    return Err(invalid(format!(
                        "Invalid number of arguments in call to function system.{name}: 0 required but {} provided",
                        args.len()
                    )));
                }
                let (function, ty) = ClockFunction::from_name(name)
                    .ok_or_else(|| CqlError::Server("a clock function vanished".into()))?;
                let output = alias.unwrap_or_else(|| format!("system.{name}()"));
                out.push(Projected::Scalar(
                    ScalarFunction::Clock(function),
                    Vec::new(),
                    ty,
                    output,
                ));
            }
            Selector::Function { name, args } if CollectionFunction::from_name(name).is_some() => {
                let function = CollectionFunction::from_name(name)
                    .ok_or_else(|| CqlError::Server("a collection function vanished".into()))?;
                let (column, output) = function_column(table, name, args, alias)?;
                let column_name = &column.name;
                let ty = function.result_type(&column.ty).ok_or_else(|| {
                    invalid(format!(
                        "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name}",
                        column.ty
                    ))
                })?;
                out.push(Projected::Scalar(
                    ScalarFunction::Collection(function),
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Function { name, .. } => {
                return Err(CqlError::not_yet_supported(&format!(
                    "the {name}() function in a selection"
                )))
            }
            Selector::Field(..) => {
                let mut names = Vec::new();
                let mut base = inner;
                while let Selector::Field(of, field) = base {
                    names.push(field.as_str());
                    base = of.as_ref();
                }
                names.reverse();
                let Selector::Column(column_name) = base else {
                    return Err(CqlError::not_yet_supported(
                        "field selection of anything but a column",
                    ));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                let mut ty = column.ty.clone();
                let mut path = Vec::with_capacity(names.len());
                for name in &names {
                    let CqlType::UserType(udt) = ty.unfrozen() else {
                        return Err(invalid(format!(
                            "Invalid field selection: {column_name} of type {} is not a user type",
                            column.ty
                        )));
                    };
                    let Some(index) = udt.fields.iter().position(|(f, _)| f == name) else {
                        return Err(invalid(format!(
                            "{} of type {} has no field {name}",
                            column_name, column.ty
                        )));
                    };
                    path.push(index);
                    ty = udt.fields[index].1.clone();
                }
                let output = alias.unwrap_or_else(|| format!("{column_name}.{}", names.join(".")));
                out.push(Projected::Scalar(
                    ScalarFunction::Field(path),
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Aliased(..) => return Err(invalid("nested aliases")),
        }
    }
    Ok(out)
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

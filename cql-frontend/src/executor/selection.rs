//! What a SELECT returns: its selectors resolved against the table into
//! output columns, and the result metadata a prepared statement announces.

use bytes::Bytes;

use crate::cql::ast::{Literal, Selector, Term};
use crate::protocol::error::CqlError;
use crate::results::ColumnSpec;
use crate::schema::{ColumnKind, ColumnSchema, TableSchema};
use crate::types::CqlType;

use super::aggregate::{is_numeric, AggregateKind};
use super::invalid;
use crate::functions::{
    apply_scalar, castable, numeric_fixed, ClockFunction, CollectionFunction, MaskFunction,
    MathFunction, ScalarFunction,
};

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
                let values: Vec<(&CqlType, Option<Bytes>)> = args
                    .iter()
                    .map(|a| (a.ty(), a.eval(column, token)))
                    .collect();
                apply_scalar(function, &values, ty, token)
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
    if let Some(mask) = MaskFunction::from_name(name) {
        return mask_call(table, name, mask, args, depth);
    }
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
    let (inner, inner_name) = argument(table, name, arg, expected, depth)?;
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
        if !numeric_fixed(&from) {
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

/// A masking function: the masked value, then its other arguments typed
/// as the function takes them.
fn mask_call(
    table: &TableSchema,
    name: &str,
    mask: MaskFunction,
    args: &[Selector],
    depth: usize,
) -> Result<(Expr, String), CqlError> {
    let Some(first) = args.first() else {
        return Err(invalid(format!(
            "Invalid number of arguments in call to function system.{name}: at least 1 required but 0 provided"
        )));
    };
    let (masked, masked_name) = argument(table, name, first, None, depth)?;
    let (rest, needed, ty) = mask.signature(masked.ty());
    if args.len() < needed || args.len() > rest.len() + 1 {
        let wanted = if needed == rest.len() + 1 {
            needed.to_string()
        } else {
            format!("{needed} to {}", rest.len() + 1)
        };
        return Err(invalid(format!(
            "Invalid number of arguments in call to function system.{name}: {wanted} required but {} provided",
            args.len()
        )));
    }
    if matches!(mask, MaskFunction::Inner | MaskFunction::Outer)
        && !matches!(masked.ty().unfrozen(), CqlType::Text | CqlType::Ascii)
    {
        return Err(invalid(format!(
            "Type error: {masked_name} of type {} cannot be passed as argument 0 of function system.{name} (it takes text)",
            masked.ty()
        )));
    }
    let mut exprs = vec![masked];
    let mut names = vec![masked_name];
    for (selector, expected) in args[1..].iter().zip(&rest) {
        let (expr, text) = argument(table, name, selector, Some(expected), depth)?;
        if expr.ty().unfrozen() != expected.unfrozen() {
            return Err(invalid(format!(
                "Type error: {text} of type {} cannot be passed to function system.{name}, which takes {expected}",
                expr.ty()
            )));
        }
        if let (MaskFunction::Inner | MaskFunction::Outer, 3, Expr::Constant(Some(padding), _)) =
            (mask, exprs.len(), &expr)
        {
            MaskFunction::check_padding(exprs[0].ty(), padding).map_err(|reason| {
                invalid(format!("In call to function system.{name}: {reason}"))
            })?;
        }
        if let (MaskFunction::Hash, Expr::Constant(Some(algorithm), _)) = (mask, &expr) {
            let known = std::str::from_utf8(algorithm).is_ok_and(|a| {
                MaskFunction::HASHES
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(a))
            });
            if !known {
                return Err(invalid(format!(
                    "Unsupported hash algorithm {text} in system.{name}: use one of {}",
                    MaskFunction::HASHES.join(", ")
                )));
            }
        }
        exprs.push(expr);
        names.push(text);
    }
    Ok((
        Expr::Call(ScalarFunction::Mask(mask), exprs, ty),
        format!("system.{name}({})", names.join(", ")),
    ))
}

/// A function's argument: a nested selector, or a constant typed as the
/// function takes it (else an integer is an int, or a bigint or varint
/// when it does not fit; a float a double), or as its cast says.
fn argument(
    table: &TableSchema,
    function: &str,
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
            "function arguments in a selection other than columns, functions and literals (or casts of literals)",
        ));
    };
    let value = match literal {
        Literal::Null => None,
        literal => Some(crate::values::literal_value(
            &ty,
            literal,
            &format!("an argument of {function}"),
        )?),
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

#[cfg(test)]
mod function_tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    #[test]
    fn math_collection_and_blob_functions_apply_per_row() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int PRIMARY KEY, d double, i int, l list<int>, m map<text, int>)",
            "INSERT INTO t (k, d, i, l, m) VALUES (1, -2.5, -7, [3, 1, 2], {'a': 1, 'b': 2})",
        ])?;
        assert_eq!(
            node.rows("SELECT abs(i), abs(d), round(d), exp(0.0), log10(100.0) FROM t")?,
            rows(&[&["7", "2.5", "-2.0", "1.0", "2.0"]]),
            "round is Java's Math.round: -2.5 goes to -2"
        );
        node.run("INSERT INTO t (k, i, d) VALUES (2, -2147483648, 1e300)")?;
        assert_eq!(
            node.rows("SELECT abs(i), exp((int) 100), round(d) FROM t WHERE k = 2")?,
            rows(&[&["-2147483648", "2147483647", "9.223372036854776E18"]]),
            "Java's arithmetic: abs wraps, casts saturate, Math.round gives a long"
        );
        assert_eq!(
            node.rows("SELECT map_keys(m), map_values(m), collection_count(l) FROM t WHERE k = 1")?,
            rows(&[&["[\"a\", \"b\"]", "[1, 2]", "3"]])
        );
        assert_eq!(
            node.rows("SELECT intAsBlob(i), blobAsInt(intAsBlob(i)) FROM t WHERE k = 1")?,
            rows(&[&["\"0xfffffff9\"", "-7"]])
        );
        Ok(())
    }

    #[test]
    fn masking_functions_hide_values() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TYPE addr (street text, zip int)",
            "CREATE TABLE t (k int PRIMARY KEY, name text, n int, home frozen<addr>, tags set<text>)",
            "INSERT INTO t (k, name, n, home, tags) VALUES (1, 'Alice Smith', 42, {street: 'Main', zip: 1}, {'a'})",
        ])?;
        assert_eq!(
            node.rows(
                "SELECT mask_null(name), mask_default(name), mask_default(n), mask_default(home), \
                 mask_default(tags), mask_replace(n, 0), mask_replace(name, 'redacted') FROM t"
            )?,
            rows(&[&[
                "null",
                "\"****\"",
                "0",
                "{\"street\": \"****\", \"zip\": 0}",
                "[]",
                "0",
                "\"redacted\""
            ]])
        );
        assert_eq!(
            node.rows(
                "SELECT mask_inner(name, 1, 2), mask_outer(name, 2, 1), mask_inner(name, 0, 0, '#') FROM t"
            )?,
            rows(&[&["\"A********th\"", "\"**ice Smit*\"", "\"###########\""]])
        );
        let hashed = node.rows("SELECT mask_hash(name), mask_hash(name, 'SHA-512') FROM t")?;
        // "0x" and 32 (or 64) bytes in hex, quoted.
        assert_eq!(hashed[0][0].len(), 2 + 2 + 64, "{hashed:?}");
        assert_eq!(hashed[0][1].len(), 2 + 2 + 128, "{hashed:?}");
        for (cql, fragment) in [
            ("SELECT mask_inner(n, 1, 1) FROM t", "takes text"),
            (
                "SELECT mask_replace(n, 'x') FROM t",
                "an argument of mask_replace",
            ),
            (
                "SELECT mask_hash(name, 'MD4') FROM t",
                "Unsupported hash algorithm",
            ),
            ("SELECT mask_inner(name) FROM t", "3 to 4 required"),
        ] {
            let error = node.error(cql)?;
            assert!(error.to_string().contains(fragment), "{cql}: {error:?}");
        }
        Ok(())
    }

    #[test]
    fn collection_sums_and_means_are_in_the_element_type() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int PRIMARY KEY, l list<int>, d set<double>, e list<int>, s set<text>)",
            "INSERT INTO t (k, l, d, e, s) VALUES (1, [1, 2, 4], {0.5, 1.5}, [], {'a'})",
        ])?;
        assert_eq!(
            node.rows("SELECT collection_sum(l), collection_avg(l), collection_sum(d), collection_avg(d) FROM t")?,
            rows(&[&["7", "2", "2.0", "1.0"]])
        );
        let error = node.error("SELECT collection_sum(s) FROM t")?;
        assert!(error.to_string().contains("Type error"), "{error:?}");
        Ok(())
    }

    #[test]
    fn functions_take_functions_and_typed_constants() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int PRIMARY KEY, i int, b blob)",
            "INSERT INTO t (k, i, b) VALUES (1, -3, 0x0000002a)",
        ])?;
        assert_eq!(
            node.rows(
                "SELECT abs(abs(i)), blobAsInt(b), abs((bigint) -5), abs(-9000000000) FROM t"
            )?,
            rows(&[&["3", "42", "5", "9000000000"]])
        );
        let deep = (0..20).fold("i".to_owned(), |inner, _| format!("abs({inner})"));
        let error = node.error(&format!("SELECT {deep} FROM t"))?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m.contains("at most 16")),
            "{error:?}"
        );
        for (cql, fragment) in [
            ("SELECT abs('text') FROM t", "text"),
            ("SELECT blobAsInt(i) FROM t", "blob"),
            (
                "SELECT abs(writetime(i)) FROM t",
                "writetime() as the argument",
            ),
            ("SELECT abs(null) FROM t", "needs a type"),
            ("SELECT abs(?) FROM t", "other than columns"),
            ("SELECT 1 FROM t", "constant as a selector"),
        ] {
            let error = node.error(cql)?;
            assert!(error.to_string().contains(fragment), "{cql}: {error:?}");
        }
        Ok(())
    }

    #[test]
    fn clock_functions_answer_now() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE t (k int PRIMARY KEY)")?;
        node.run("INSERT INTO t (k) VALUES (1)")?;
        let now = node.rows("SELECT toUnixTimestamp(now()), currentDate() FROM t")?;
        let millis: i64 = now[0][0].parse()?;
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        assert!((wall - millis).abs() < 60_000, "now() {millis} vs {wall}");
        assert_eq!(now[0][1].len(), "\"2026-12-07\"".len(), "{now:?}");
        Ok(())
    }
}

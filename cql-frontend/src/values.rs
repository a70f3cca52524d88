//! Turning the values in a statement (literals, bind markers, collection
//! literals, `now()`-style functions) into the protocol's serialized form of
//! the column's type, with errors that name the column and the type.

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::cql::ast::{BindMarker, Literal, Term};
use crate::protocol::error::CqlError;
use crate::protocol::messages::BoundValues;
use crate::protocol::primitives::Value;
use crate::types::CqlType;

/// Where bind values come from, and the statement's clock.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    pub values: &'a BoundValues,
    pub now_micros: i64,
}

fn invalid(message: impl Into<String>) -> CqlError {
    CqlError::Invalid(message.into())
}

/// The serialized value of `term` for a column of type `ty`.
pub fn term_value(
    ty: &CqlType,
    term: &Term,
    column: &str,
    bindings: Bindings<'_>,
) -> Result<Value, CqlError> {
    match term {
        Term::Bind(marker) => {
            let value = bound(marker, bindings.values, column)?;
            if let (Value::Set(bytes), Some(width)) = (&value, ty.fixed_width()) {
                if bytes.len() != width {
                    return Err(invalid(format!(
                        "Expected {width} byte {ty} for \"{column}\" but got {} bytes",
                        bytes.len()
                    )));
                }
            }
            Ok(value)
        }
        Term::Literal(Literal::Null) => Ok(Value::Null),
        Term::Literal(literal) => literal_value(ty, literal, column).map(Value::Set),
        Term::Cast(_, inner) => term_value(ty, inner, column, bindings),
        Term::Function { name, args } => function_value(ty, name, args, column, bindings),
        Term::List(items) | Term::Set(items) => {
            let element = match ty.unfrozen() {
                CqlType::List(e) | CqlType::Set(e) => e,
                other => {
                    return Err(invalid(format!(
                        "Invalid list literal for {column} of type {other}"
                    )))
                }
            };
            let mut encoded = Vec::with_capacity(items.len());
            for item in items {
                match term_value(element, item, column, bindings)? {
                    Value::Set(bytes) => encoded.push(bytes),
                    _ => {
                        return Err(invalid(format!(
                            "null is not supported inside collections ({column})"
                        )))
                    }
                }
            }
            if matches!(ty.unfrozen(), CqlType::Set(_)) {
                sort_by_comparable(element, &mut encoded)?;
                encoded.dedup();
            }
            Ok(Value::Set(collection(
                &encoded.iter().map(|b| vec![b.clone()]).collect::<Vec<_>>(),
            )))
        }
        Term::Map(entries) => {
            let (key_ty, value_ty) = match ty.unfrozen() {
                CqlType::Map(k, v) => (k, v),
                CqlType::UserType(udt) => return user_type_value(udt, entries, column, bindings),
                // `{}` parses as an empty map; it is also an empty set.
                CqlType::Set(_) if entries.is_empty() => return Ok(Value::Set(collection(&[]))),
                other => {
                    return Err(invalid(format!(
                        "Invalid map literal for {column} of type {other}"
                    )))
                }
            };
            let mut pairs = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let (Value::Set(k), Value::Set(v)) = (
                    term_value(key_ty, k, column, bindings)?,
                    term_value(value_ty, v, column, bindings)?,
                ) else {
                    return Err(invalid(format!(
                        "null is not supported inside collections ({column})"
                    )));
                };
                pairs.push((k, v));
            }
            let mut keyed: Vec<(Vec<u8>, Bytes, Bytes)> = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                let mut order = Vec::new();
                key_ty
                    .encode_comparable(&k, false, &mut order)
                    .map_err(|e| invalid(e.0))?;
                keyed.push((order, k, v));
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed.dedup_by(|a, b| a.0 == b.0);
            Ok(Value::Set(collection(
                &keyed
                    .into_iter()
                    .map(|(_, k, v)| vec![k, v])
                    .collect::<Vec<_>>(),
            )))
        }
        Term::Tuple(items) => {
            let CqlType::Tuple(types) = ty.unfrozen() else {
                return Err(invalid(format!(
                    "Invalid tuple literal for {column} of type {ty}"
                )));
            };
            if items.len() > types.len() {
                return Err(invalid(format!("Invalid tuple literal for {column}: too many elements. Type {ty} expects {} but got {}", types.len(), items.len())));
            }
            let mut out = BytesMut::new();
            for (item, item_ty) in items.iter().zip(types) {
                match term_value(item_ty, item, column, bindings)? {
                    Value::Set(bytes) => {
                        out.put_i32(bytes.len() as i32);
                        out.put_slice(&bytes);
                    }
                    _ => out.put_i32(-1),
                }
            }
            Ok(Value::Set(out.freeze()))
        }
    }
}

fn sort_by_comparable(ty: &CqlType, items: &mut [Bytes]) -> Result<(), CqlError> {
    let mut keyed = Vec::with_capacity(items.len());
    for item in items.iter() {
        let mut order = Vec::new();
        ty.encode_comparable(item, false, &mut order)
            .map_err(|e| invalid(e.0))?;
        keyed.push((order, item.clone()));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (slot, (_, item)) in items.iter_mut().zip(keyed) {
        *slot = item;
    }
    Ok(())
}

/// The protocol's collection form: `[int] n`, then each element as `[bytes]`
/// (maps: key and value alternating).
fn collection(elements: &[Vec<Bytes>]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(elements.len() as i32);
    for parts in elements {
        for part in parts {
            out.put_i32(part.len() as i32);
            out.put_slice(part);
        }
    }
    out.freeze()
}

fn bound(marker: &BindMarker, values: &BoundValues, column: &str) -> Result<Value, CqlError> {
    match (marker, values) {
        (BindMarker::Positional(i), BoundValues::Positional(list)) => {
            list.get(*i).cloned().ok_or_else(|| {
                invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    i + 1,
                    list.len()
                ))
            })
        }
        (BindMarker::Named(_, i), BoundValues::Positional(list)) => {
            list.get(*i).cloned().ok_or_else(|| {
                invalid(format!(
                    "There were {} markers in CQL but {} bound variables",
                    i + 1,
                    list.len()
                ))
            })
        }
        (BindMarker::Named(name, _), BoundValues::Named(list)) => list
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| invalid(format!("No value bound for :{name}"))),
        (_, _) => Err(invalid(format!(
            "No value bound for the marker of column {column}"
        ))),
    }
}

fn parse_int<T: std::str::FromStr>(text: &str, ty: &CqlType, column: &str) -> Result<T, CqlError> {
    text.parse::<T>().map_err(|_| {
        invalid(format!(
            "Invalid {ty} constant ({text}) for \"{column}\" of type {ty}"
        ))
    })
}

/// A literal's serialized value.
/// A custom type's value from a string, as Cassandra's `fromString` reads
/// it: a `CompositeType`'s components separated by `:` (trailing ones may be
/// left out), each in its class's text form; other custom types take blob
/// literals and bound values only.
fn custom_from_string(class: &str, text: &str, column: &str) -> Result<Vec<u8>, CqlError> {
    const COMPOSITE: &str = "org.apache.cassandra.db.marshal.CompositeType(";
    let Some(inner) = class
        .strip_prefix(COMPOSITE)
        .and_then(|c| c.strip_suffix(')'))
    else {
        return Err(CqlError::not_yet_supported(&format!(
            "values of custom type {class} written as strings (use a blob literal or a bound value) for \"{column}\""
        )));
    };
    let components: Vec<&str> = inner.split(',').collect();
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > components.len() {
        return Err(invalid(format!(
            "Invalid composite value {text:?} for \"{column}\": {} components for a type of {}",
            parts.len(),
            components.len()
        )));
    }
    let mut out = Vec::new();
    for (part, component) in parts.iter().zip(&components) {
        let simple = component.rsplit('.').next().unwrap_or_default();
        let bytes: Vec<u8> = match simple {
            "AsciiType" | "UTF8Type" => part.as_bytes().to_vec(),
            "Int32Type" => parse_int::<i32>(part, &CqlType::Int, column)?
                .to_be_bytes()
                .to_vec(),
            "LongType" => parse_int::<i64>(part, &CqlType::BigInt, column)?
                .to_be_bytes()
                .to_vec(),
            "BytesType" => hex_bytes(part).ok_or_else(|| {
                invalid(format!("Invalid hex component {part:?} for \"{column}\""))
            })?,
            other => {
                return Err(CqlError::not_yet_supported(&format!(
                    "composite components of type {other} written as strings for \"{column}\""
                )))
            }
        };
        let len = u16::try_from(bytes.len()).map_err(|_| {
            invalid(format!(
                "A composite component of \"{column}\" is over 65,535 bytes"
            ))
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
        out.push(0);
    }
    Ok(out)
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

pub fn literal_value(ty: &CqlType, literal: &Literal, column: &str) -> Result<Bytes, CqlError> {
    let mismatch = || {
        invalid(format!(
            "Invalid constant {} for \"{column}\" of type {ty}",
            literal_display(literal)
        ))
    };
    let bytes: Vec<u8> = match (ty.unfrozen(), literal) {
        (CqlType::Int, Literal::Integer(n)) => parse_int::<i32>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::BigInt | CqlType::Counter, Literal::Integer(n)) => parse_int::<i64>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::SmallInt, Literal::Integer(n)) => parse_int::<i16>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::TinyInt, Literal::Integer(n)) => parse_int::<i8>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::VarInt, Literal::Integer(n)) => varint_bytes(parse_int::<i128>(n, ty, column)?),
        (CqlType::Float, Literal::Integer(n) | Literal::Float(n)) => parse_int::<f32>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::Double, Literal::Integer(n) | Literal::Float(n)) => parse_int::<f64>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::Decimal, Literal::Integer(n) | Literal::Float(n) | Literal::Str(n)) => decimal_bytes(n).ok_or_else(mismatch)?,
        (CqlType::Boolean, Literal::Bool(b)) => vec![u8::from(*b)],
        (CqlType::Text, Literal::Str(s)) => s.as_bytes().to_vec(),
        (CqlType::Ascii, Literal::Str(s)) => {
            if !s.is_ascii() {
                return Err(invalid(format!("Invalid ASCII character in string literal for \"{column}\"")));
            }
            s.as_bytes().to_vec()
        }
        (CqlType::Blob | CqlType::Custom(_), Literal::Blob(b)) => b.clone(),
        (CqlType::Custom(class), Literal::Str(text)) => custom_from_string(class, text, column)?,
        (CqlType::Uuid, Literal::Uuid(u)) => uuid_bytes(u).ok_or_else(mismatch)?.to_vec(),
        (CqlType::TimeUuid, Literal::Uuid(u)) => {
            let bytes = uuid_bytes(u).ok_or_else(mismatch)?;
            if bytes[6] >> 4 != 1 {
                return Err(invalid(format!("Unsupported UUID version for timeuuid column \"{column}\": {u} is not a version 1 UUID")));
            }
            bytes.to_vec()
        }
        (CqlType::Timestamp, Literal::Integer(n)) => parse_int::<i64>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::Timestamp, Literal::Str(s)) => parse_timestamp_ms(s)
            .ok_or_else(|| invalid(format!("Unable to parse a date/time from '{s}' for \"{column}\" (use e.g. '2024-05-01 12:30:00+0000')")))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Date, Literal::Str(s)) => {
            let days = parse_date_days(s).ok_or_else(|| invalid(format!("Unable to coerce '{s}' to a formatted date (yyyy-mm-dd) for \"{column}\"")))?;
            ((days + (1i64 << 31)) as u32).to_be_bytes().to_vec()
        }
        (CqlType::Date, Literal::Integer(n)) => parse_int::<u32>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::Time, Literal::Str(s)) => parse_time_nanos(s)
            .ok_or_else(|| invalid(format!("Unable to coerce '{s}' to a formatted time (hh:mm:ss[.fffffffff]) for \"{column}\"")))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Time, Literal::Integer(n)) => parse_int::<i64>(n, ty, column)?.to_be_bytes().to_vec(),
        (CqlType::Inet, Literal::Str(s)) => match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.octets().to_vec(),
            Ok(IpAddr::V6(v6)) => v6.octets().to_vec(),
            Err(_) => return Err(invalid(format!("Unable to make inet address from '{s}' for \"{column}\""))),
        },
        (CqlType::Duration, Literal::Duration(text)) => {
            let (months, days, nanos) = parse_duration(text).ok_or_else(|| {
                invalid(format!("Unable to convert '{text}' to a duration for \"{column}\""))
            })?;
            encode_duration(months, days, nanos)
        }
        _ => return Err(mismatch()),
    };
    Ok(Bytes::from(bytes))
}

fn literal_display(literal: &Literal) -> String {
    match literal {
        Literal::Str(s) => format!("'{s}'"),
        Literal::Integer(s) | Literal::Float(s) | Literal::Uuid(s) | Literal::Duration(s) => {
            s.clone()
        }
        Literal::Bool(b) => b.to_string(),
        Literal::Blob(b) => format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Literal::Null => "null".into(),
    }
}

/// `<type>asblob` (type → blob) and `blobas<type>` (blob → type), by
/// lowercase name: the argument's and the result's types.
pub(crate) fn reinterpretation(name: &str) -> Option<(CqlType, CqlType)> {
    let native = |text: &str| {
        CqlType::parse(text).ok().filter(|t| {
            t.fixed_width().is_some()
                || matches!(
                    t,
                    CqlType::Text
                        | CqlType::Ascii
                        | CqlType::VarInt
                        | CqlType::Decimal
                        | CqlType::Inet
                        | CqlType::Duration
                )
        })
    };
    if let Some(target) = name.strip_prefix("blobas") {
        return native(target).map(|t| (CqlType::Blob, t));
    }
    let source = name.strip_suffix("asblob")?;
    native(source).map(|t| (t, CqlType::Blob))
}

/// The value of a function call in a term (INSERT and UPDATE values, WHERE
/// terms): the reinterpretations `blobAs<type>(blob)` and
/// `<type>AsBlob(value)`, which keep a null and may give an empty value (as
/// `blobAsInt(0x)` does in Cassandra), then the other native functions.
fn function_value(
    ty: &CqlType,
    name: &str,
    args: &[Term],
    column: &str,
    bindings: Bindings<'_>,
) -> Result<Value, CqlError> {
    if let ("fromjson", [arg]) = (name, args) {
        let Value::Set(text) = term_value(&CqlType::Text, arg, column, bindings)? else {
            return Ok(Value::Null);
        };
        let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            invalid(format!(
                "Could not decode JSON string for \"{column}\": {e}"
            ))
        })?;
        let term = crate::json::to_term(ty, &json, column)?;
        return term_value(ty, &term, column, bindings);
    }
    if let Some(value) = catalog_value(ty, name, args, column, bindings)? {
        return Ok(value);
    }
    let (Some((from, to)), [arg]) = (reinterpretation(name), args) else {
        return function_bytes(ty, name, args, column, bindings).map(Value::Set);
    };
    if to != *ty.unfrozen() {
        return Err(invalid(format!(
            "Type error: cannot assign result of function {name} (type {to}) to {column} (type {ty})"
        )));
    }
    let value = term_value(&from, arg, column, bindings)?;
    if let (Value::Set(bytes), Some(width)) = (&value, to.fixed_width()) {
        if !bytes.is_empty() && bytes.len() != width {
            return Err(invalid(format!(
                "In call to function {name}, value 0x{} is not a valid binary representation for type {to}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )));
        }
    }
    Ok(value)
}

/// A math or masking function of constants, its result assigned to a
/// column of type `ty` (`VALUES (abs(-2))`, `SET v = mask_default('x')`);
/// `None` when `name` is neither.
fn catalog_value(
    ty: &CqlType,
    name: &str,
    args: &[Term],
    column: &str,
    bindings: Bindings<'_>,
) -> Result<Option<Value>, CqlError> {
    use crate::functions::{apply_math, apply_scalar, MaskFunction, MathFunction, ScalarFunction};
    let arity = |least: usize, most: usize| {
        let wanted = if least == most {
            least.to_string()
        } else {
            format!("{least} to {most}")
        };
        invalid(format!(
            "Invalid number of arguments in call to function system.{name}: {wanted} required but {} provided",
            args.len()
        ))
    };
    // An argument's value; UNSET is refused, as Cassandra refuses it.
    let argument = |arg: &Term, arg_ty: &CqlType| -> Result<Option<Bytes>, CqlError> {
        match term_value(arg_ty, arg, column, bindings)? {
            Value::Set(bytes) => Ok(Some(bytes)),
            Value::Null => Ok(None),
            Value::NotSet => Err(invalid(format!(
                "Invalid unset value for argument in call to function {name}"
            ))),
        }
    };
    let assign_error = |result: &CqlType| {
        invalid(format!(
            "Type error: cannot assign result of function system.{name} (type {result}) to {column} (type {ty})"
        ))
    };
    if let Some(math) = MathFunction::from_name(name) {
        let [arg] = args else {
            return Err(arity(1, 1));
        };
        if !crate::functions::numeric_fixed(ty.unfrozen()) {
            return Err(invalid(format!(
                "Type error: system.{name} gives tinyint, smallint, int, bigint, float or double, not {ty} (the type of {column})"
            )));
        }
        let Some(bytes) = argument(arg, ty)? else {
            return Ok(Some(Value::Null));
        };
        return apply_math(math, ty.unfrozen(), &bytes)
            .map(|b| Some(Value::Set(b)))
            .ok_or_else(|| assign_error(ty));
    }
    let Some(mask) = MaskFunction::from_name(name) else {
        return Ok(None);
    };
    // The masked value has the column's type, except for mask_hash (a
    // blob of any value's hash): there a constant is text unless cast.
    let masked_ty = if mask == MaskFunction::Hash {
        match args.first() {
            Some(Term::Cast(cast, _)) => cast.clone(),
            _ => CqlType::Text,
        }
    } else {
        ty.clone()
    };
    let (rest, needed, result) = mask.signature(&masked_ty);
    if args.len() < needed || args.len() > rest.len() + 1 {
        return Err(arity(needed, rest.len() + 1));
    }
    if result.unfrozen() != ty.unfrozen() {
        return Err(assign_error(&result));
    }
    if matches!(mask, MaskFunction::Inner | MaskFunction::Outer)
        && !matches!(ty.unfrozen(), CqlType::Text | CqlType::Ascii)
    {
        return Err(invalid(format!(
            "Type error: system.{name} takes and gives text, not {ty} (the type of {column})"
        )));
    }
    let mut values = Vec::with_capacity(args.len());
    for (arg, arg_ty) in args.iter().zip(std::iter::once(&masked_ty).chain(&rest)) {
        values.push((arg_ty, argument(arg, arg_ty)?));
    }
    if let Some((_, Some(padding))) = values.get(3) {
        MaskFunction::check_padding(ty, padding)
            .map_err(|reason| invalid(format!("In call to function system.{name}: {reason}")))?;
    }
    Ok(Some(
        apply_scalar(&ScalarFunction::Mask(mask), &values, ty, 0).map_or(Value::Null, Value::Set),
    ))
}

fn function_bytes(
    ty: &CqlType,
    name: &str,
    args: &[Term],
    column: &str,
    bindings: Bindings<'_>,
) -> Result<Bytes, CqlError> {
    match (name, args) {
        ("now", []) => Ok(Bytes::from(timeuuid(bindings.now_micros).to_vec())),
        ("uuid", []) => Ok(Bytes::from(random_uuid().to_vec())),
        ("currenttimestamp", []) => Ok(Bytes::from(
            (bindings.now_micros / 1000).to_be_bytes().to_vec(),
        )),
        ("currentdate", []) => Ok(Bytes::from(
            (((bindings.now_micros / 86_400_000_000) + (1i64 << 31)) as u32)
                .to_be_bytes()
                .to_vec(),
        )),
        ("mintimeuuid" | "maxtimeuuid", [inner]) => {
            if !matches!(ty.unfrozen(), CqlType::TimeUuid) {
                return Err(invalid(format!(
                    "Type error: cannot assign result of function system.{name} (type timeuuid) to {column} (type {ty})"
                )));
            }
            let millis = match term_value(&CqlType::Timestamp, inner, column, bindings)? {
                Value::Set(b) if b.len() == 8 => {
                    i64::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 8]))
                }
                _ => return Err(invalid(format!("{name}() needs a timestamp argument"))),
            };
            Ok(Bytes::from(
                edge_timeuuid(millis, name == "maxtimeuuid").to_vec(),
            ))
        }
        ("totimestamp" | "todate" | "tounixtimestamp", [inner]) => {
            let micros = match term_value(&CqlType::TimeUuid, inner, column, bindings)? {
                Value::Set(b) if b.len() == 16 => timeuuid_micros(&b),
                _ => {
                    return Err(invalid(format!(
                        "{name}() needs a timeuuid or date argument"
                    )))
                }
            };
            Ok(Bytes::from(match name {
                "todate" => (((micros / 86_400_000_000) + (1i64 << 31)) as u32)
                    .to_be_bytes()
                    .to_vec(),
                _ => (micros / 1000).to_be_bytes().to_vec(),
            }))
        }
        _ => {
            let _ = ty;
            Err(invalid(format!(
                "Unknown function {name} called with {} arguments",
                args.len()
            )))
        }
    }
}

/// The lowest (or highest) version 1 UUID of a millisecond, as Cassandra's
/// `minTimeuuid`/`maxTimeuuid` build them: no real id equals one, so they
/// bound a time range of timeuuids (`t > maxTimeuuid('2013-01-01')`).
pub fn edge_timeuuid(millis: i64, highest: bool) -> [u8; 16] {
    // 100 ns intervals since 1582-10-15; the highest is the millisecond's last.
    let first = (millis as u64)
        .wrapping_mul(10_000)
        .wrapping_add(0x01b2_1dd2_1381_4000);
    let ticks = if highest {
        first.wrapping_add(9_999)
    } else {
        first
    };
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&((ticks & 0xffff_ffff) as u32).to_be_bytes());
    out[4..6].copy_from_slice(&(((ticks >> 32) & 0xffff) as u16).to_be_bytes());
    out[6..8].copy_from_slice(&((((ticks >> 48) & 0x0fff) as u16) | 0x1000).to_be_bytes());
    // Cassandra's clock sequence and node of the lowest and highest ids.
    let tail: u8 = if highest { 0x7f } else { 0x80 };
    out[8..16].copy_from_slice(&[tail; 8]);
    out
}

/// A random (version 4) UUID, as `uuid()` makes.
pub fn random_uuid() -> [u8; 16] {
    let random: u128 = rand::random();
    let v4 = (random & !(0xf000u128 << 64) | (0x4000u128 << 64)) & !(0xc000u128 << 48)
        | (0x8000u128 << 48);
    v4.to_be_bytes()
}

/// A version 1 UUID for a time (random node and clock sequence).
pub fn timeuuid(micros: i64) -> [u8; 16] {
    // 100 ns intervals since 1582-10-15.
    let ticks = (micros as u64)
        .wrapping_mul(10)
        .wrapping_add(0x01b2_1dd2_1381_4000);
    let time_low = (ticks & 0xffff_ffff) as u32;
    let time_mid = ((ticks >> 32) & 0xffff) as u16;
    let time_hi = (((ticks >> 48) & 0x0fff) as u16) | 0x1000;
    let random: u64 = rand::random();
    let clock_seq = ((random >> 48) as u16 & 0x3fff) | 0x8000;
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&time_low.to_be_bytes());
    out[4..6].copy_from_slice(&time_mid.to_be_bytes());
    out[6..8].copy_from_slice(&time_hi.to_be_bytes());
    out[8..10].copy_from_slice(&clock_seq.to_be_bytes());
    out[10..16].copy_from_slice(&random.to_be_bytes()[2..8]);
    out[10] |= 0x01; // multicast bit: a random node id
    out
}

fn timeuuid_micros(bytes: &[u8]) -> i64 {
    let b = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0));
    let time_low = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
    let time_mid = (b(4) << 8) | b(5);
    let time_hi = ((b(6) & 0x0f) << 8) | b(7);
    let ticks = (time_hi << 48) | (time_mid << 32) | time_low;
    (ticks.wrapping_sub(0x01b2_1dd2_1381_4000) / 10) as i64
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let value = u128::from_str_radix(&hex, 16).ok()?;
    Some(value.to_be_bytes())
}

fn varint_bytes(value: i128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

fn decimal_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int_part}{frac_part}");
    let unscaled: i128 = digits.parse().ok()?;
    let scale = frac_part.len() as i32 - exponent;
    let mut out = scale.to_be_bytes().to_vec();
    out.extend(varint_bytes(unscaled));
    Some(out)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_date_days(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn parse_time_nanos(text: &str) -> Option<i64> {
    let (hms, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if h > 23 || m > 59 || s > 59 || fraction.len() > 9 {
        return None;
    }
    let nanos: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(((h * 60 + m) * 60 + s) * 1_000_000_000 + nanos)
}

/// Parses `yyyy-mm-dd[( |T)hh:mm[:ss[.fff]]][Z|+hhmm|+hh:mm]` to ms since the epoch.
fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let date_end = text.find(['T', ' ']).unwrap_or(text.len());
    let days = parse_date_days(&text[..date_end])?;
    let mut rest = text.get(date_end + 1..).unwrap_or("").trim();
    let mut offset_minutes = 0i64;
    if let Some(stripped) = rest.strip_suffix('Z') {
        rest = stripped;
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let zone = rest[at + 1..].replace(':', "");
        if zone.len() == 4 {
            let hours: i64 = zone[..2].parse().ok()?;
            let minutes: i64 = zone[2..].parse().ok()?;
            offset_minutes = (hours * 60 + minutes) * if &rest[at..at + 1] == "-" { -1 } else { 1 };
            rest = rest[..at].trim();
        }
    }
    let mut millis_of_day = 0;
    if !rest.is_empty() {
        let (hms, fraction) = rest.split_once('.').unwrap_or((rest, ""));
        let mut parts = hms.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let m: i64 = parts.next()?.parse().ok()?;
        let s: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
        let ms: i64 = if fraction.is_empty() {
            0
        } else {
            format!("{:0<3}", &fraction[..fraction.len().min(3)])
                .parse()
                .ok()?
        };
        millis_of_day = ((h * 60 + m) * 60 + s) * 1000 + ms;
    }
    Some(days * 86_400_000 + millis_of_day - offset_minutes * 60_000)
}

/// The components of a serialized tuple (`None` for a null component).
pub fn split_tuple(bytes: &[u8]) -> Result<Vec<Option<Bytes>>, CqlError> {
    let mut parts = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((length, tail)) = rest.split_first_chunk::<4>() else {
            return Err(invalid("malformed tuple value"));
        };
        let length = i32::from_be_bytes(*length);
        if length < 0 {
            parts.push(None);
            rest = tail;
            continue;
        }
        let length = length as usize;
        let (part, tail) = (tail.get(..length), tail.get(length..));
        let (Some(part), Some(tail)) = (part, tail) else {
            return Err(invalid("malformed tuple value"));
        };
        parts.push(Some(Bytes::copy_from_slice(part)));
        rest = tail;
    }
    Ok(parts)
}

/// A user-defined type literal `{field: value, ...}`: every field in
/// declaration order, absent ones null.
fn user_type_value(
    udt: &crate::types::UserType,
    entries: &[(Term, Term)],
    column: &str,
    bindings: Bindings,
) -> Result<Value, CqlError> {
    let mut values: Vec<Option<Bytes>> = vec![None; udt.fields.len()];
    for (key, value) in entries {
        let Term::Literal(Literal::Str(name)) = key else {
            return Err(invalid(format!(
                "Invalid user type literal for {column}: field names must be identifiers"
            )));
        };
        let Some(index) = udt.fields.iter().position(|(field, _)| field == name) else {
            return Err(invalid(format!(
                "Unknown field '{name}' in value of user defined type {}",
                udt.name
            )));
        };
        let Some((_, field_ty)) = udt.fields.get(index) else {
            continue;
        };
        if let Value::Set(bytes) = term_value(field_ty, value, column, bindings)? {
            if let Some(slot) = values.get_mut(index) {
                *slot = Some(bytes);
            }
        }
    }
    let mut out = BytesMut::new();
    for value in values {
        match value {
            Some(bytes) => {
                out.put_i32(bytes.len() as i32);
                out.put_slice(&bytes);
            }
            None => out.put_i32(-1),
        }
    }
    Ok(Value::Set(out.freeze()))
}

/// A duration literal as (months, days, nanoseconds): `1y2mo3w4d5h6m7s8ms9us10ns`
/// (units in any case, `µs` too), ISO 8601 `P1Y2M3DT4H5M6S` or `P2W`, with
/// an optional leading `-`. `None` if the text is not one.
pub fn parse_duration(text: &str) -> Option<(i32, i32, i64)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (months, days, nanos) = if let Some(iso) = lower.strip_prefix('p') {
        parse_iso_duration(iso)?
    } else {
        parse_unit_duration(&lower)?
    };
    let sign = if negative { -1 } else { 1 };
    Some((
        i32::try_from(months).ok()? * sign,
        i32::try_from(days).ok()? * sign,
        nanos.checked_mul(sign as i64)?,
    ))
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// `(number, unit)` pairs of a duration text, numbers first.
fn duration_parts(text: &str) -> Option<Vec<(i64, String)>> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let mut digits = String::new();
        while let Some(c) = chars.peek().filter(|c| c.is_ascii_digit()) {
            digits.push(*c);
            chars.next();
        }
        let mut unit = String::new();
        while let Some(c) = chars.peek().filter(|c| !c.is_ascii_digit()) {
            unit.push(*c);
            chars.next();
        }
        if digits.is_empty() || unit.is_empty() {
            return None;
        }
        parts.push((digits.parse().ok()?, unit));
    }
    (!parts.is_empty()).then_some(parts)
}

fn parse_unit_duration(text: &str) -> Option<(i64, i64, i64)> {
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i64);
    for (n, unit) in duration_parts(text)? {
        match unit.as_str() {
            "y" => months = months.checked_add(n.checked_mul(12)?)?,
            "mo" => months = months.checked_add(n)?,
            "w" => days = days.checked_add(n.checked_mul(7)?)?,
            "d" => days = days.checked_add(n)?,
            other => {
                let per = match other {
                    "h" => 3600 * NANOS_PER_SECOND,
                    "m" => 60 * NANOS_PER_SECOND,
                    "s" => NANOS_PER_SECOND,
                    "ms" => 1_000_000,
                    "us" | "µs" => 1_000,
                    "ns" => 1,
                    _ => return None,
                };
                nanos = nanos.checked_add(n.checked_mul(per)?)?;
            }
        }
    }
    Some((months, days, nanos))
}

fn parse_iso_duration(text: &str) -> Option<(i64, i64, i64)> {
    let (date, time) = match text.split_once('t') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i64);
    if !date.is_empty() {
        for (n, unit) in duration_parts(date)? {
            match unit.as_str() {
                "y" => months = months.checked_add(n.checked_mul(12)?)?,
                "m" => months = months.checked_add(n)?,
                "w" => days = days.checked_add(n.checked_mul(7)?)?,
                "d" => days = days.checked_add(n)?,
                _ => return None,
            }
        }
    }
    if let Some(time) = time {
        for (n, unit) in duration_parts(time)? {
            let per = match unit.as_str() {
                "h" => 3600 * NANOS_PER_SECOND,
                "m" => 60 * NANOS_PER_SECOND,
                "s" => NANOS_PER_SECOND,
                _ => return None,
            };
            nanos = nanos.checked_add(n.checked_mul(per)?)?;
        }
    }
    if date.is_empty() && time.is_none() {
        return None;
    }
    Some((months, days, nanos))
}

/// A duration value as the protocol sends it: three zig-zag vints.
pub fn encode_duration(months: i32, days: i32, nanos: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    for value in [i64::from(months), i64::from(days), nanos] {
        write_unsigned_vint(((value << 1) ^ (value >> 63)) as u64, &mut out);
    }
    out
}

/// Cassandra's unsigned vint: the count of leading 1 bits of the first
/// byte is the count of bytes that follow.
fn write_unsigned_vint(value: u64, out: &mut Vec<u8>) {
    let magnitude = (value | 1).leading_zeros() as usize;
    let size = (639 - magnitude * 9) >> 6;
    if size == 1 {
        out.push(value as u8);
        return;
    }
    let bytes = value.to_be_bytes();
    let mut encoded = bytes[8 - size.min(8)..].to_vec();
    if size == 9 {
        encoded.insert(0, 0xff);
    } else {
        encoded[0] |= !(0xffu8 >> (size - 1));
    }
    out.extend_from_slice(&encoded);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn duration_literals_in_every_form() {
        let nanos = |h: i64, m: i64, sec: i64| (h * 3600 + m * 60 + sec) * 1_000_000_000;
        assert_eq!(parse_duration("1h30m"), Some((0, 0, nanos(1, 30, 0))));
        assert_eq!(parse_duration("-2d"), Some((0, -2, 0)));
        assert_eq!(parse_duration("1Y2MO"), Some((14, 0, 0)));
        assert_eq!(parse_duration("3ms4us5ns"), Some((0, 0, 3_004_005)));
        assert_eq!(
            parse_duration("P1Y2M3DT4H5M6S"),
            Some((14, 3, nanos(4, 5, 6)))
        );
        assert_eq!(parse_duration("PT1M"), Some((0, 0, nanos(0, 1, 0))));
        assert_eq!(parse_duration("P2W"), Some((0, 14, 0)));
        for bad in [
            "",
            "h",
            "1",
            "1parsec",
            "P",
            "PT",
            "P1H",
            "1h1",
            "99999999999999999999y",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_encode_as_zigzag_vints() {
        assert_eq!(encode_duration(0, 0, 0), vec![0, 0, 0]);
        assert_eq!(encode_duration(1, -1, 63), vec![2, 1, 126]);
        // 64 zig-zags to 128: two bytes, the first marked 10xxxxxx.
        assert_eq!(encode_duration(0, 0, 64), vec![0, 0, 0x80, 0x80]);
        // i64::MIN zig-zags to u64::MAX: nine bytes.
        let long = encode_duration(0, 0, i64::MIN);
        assert_eq!(long.len(), 2 + 9);
        assert!(long[2..].iter().all(|b| *b == 0xff));
    }

    #[test]
    fn literals_serialize_as_the_protocol_does() -> TestResult {
        let v = |ty: &str, lit: Literal| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
            Ok(literal_value(&CqlType::parse(ty)?, &lit, "c")?.to_vec())
        };
        assert_eq!(
            v("int", Literal::Integer("-2".into()))?,
            (-2i32).to_be_bytes()
        );
        assert_eq!(
            v("timestamp", Literal::Str("1970-01-02 00:00:00+0000".into()))?,
            86_400_000i64.to_be_bytes()
        );
        assert_eq!(
            v("timestamp", Literal::Str("2024-02-29T12:00:00Z".into()))?,
            1_709_208_000_000i64.to_be_bytes()
        );
        assert_eq!(
            v("date", Literal::Str("1970-01-01".into()))?,
            (1u32 << 31).to_be_bytes()
        );
        assert_eq!(
            v("varint", Literal::Integer("128".into()))?,
            vec![0x00, 0x80]
        );
        assert_eq!(v("varint", Literal::Integer("-1".into()))?, vec![0xff]);
        assert_eq!(
            v("decimal", Literal::Float("1.25".into()))?,
            vec![0, 0, 0, 2, 0x7d]
        );
        assert_eq!(
            v("inet", Literal::Str("127.0.0.2".into()))?,
            vec![127, 0, 0, 2]
        );
        assert!(literal_value(&CqlType::Int, &Literal::Str("x".into()), "c")
            .unwrap_err()
            .to_string()
            .contains("\"c\""));
        assert!(
            literal_value(&CqlType::Int, &Literal::Integer("99999999999".into()), "c").is_err()
        );
        Ok(())
    }

    #[test]
    fn sets_are_sorted_and_deduplicated() -> TestResult {
        let ty = CqlType::parse("set<int>")?;
        let values = BoundValues::None;
        let bindings = Bindings {
            values: &values,
            now_micros: 0,
        };
        let term = Term::Set(vec![
            Term::Literal(Literal::Integer("3".into())),
            Term::Literal(Literal::Integer("-1".into())),
            Term::Literal(Literal::Integer("3".into())),
        ]);
        let Value::Set(bytes) = term_value(&ty, &term, "s", bindings)? else {
            return Err("a set literal gave no value".into());
        };
        assert_eq!(
            bytes.as_ref(),
            &[0, 0, 0, 2, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4, 0, 0, 0, 3][..]
        );
        Ok(())
    }

    #[test]
    fn now_is_a_version_one_uuid_of_the_time() {
        let micros = 1_700_000_000_123_456;
        let id = timeuuid(micros);
        assert_eq!(id[6] >> 4, 1);
        assert_eq!(timeuuid_micros(&id), micros);
    }
}

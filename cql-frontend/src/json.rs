//! JSON for `SELECT JSON` and `INSERT JSON`: values rendered as Cassandra
//! renders them (numbers as numbers; text, uuids, dates, times, inets and
//! timestamps as strings; blobs as "0x..."; collections as arrays and
//! objects), and JSON values turned back into terms of a column's type.

use bytes::Bytes;

use crate::cql::ast::{Literal, Term};
use crate::protocol::error::CqlError;
use crate::results::ColumnSpec;
use crate::types::CqlType;

fn invalid(message: impl Into<String>) -> CqlError {
    CqlError::Invalid(message.into())
}

/// Rows as one `[json]` text column.
pub fn rows_as_json(
    keyspace: &str,
    table: &str,
    columns: Vec<ColumnSpec>,
    rows: Vec<Vec<Option<Bytes>>>,
) -> (Vec<ColumnSpec>, Vec<Vec<Option<Bytes>>>) {
    let spec = ColumnSpec {
        keyspace: keyspace.to_owned(),
        table: table.to_owned(),
        name: "[json]".into(),
        ty: CqlType::Text,
    };
    let rows = rows
        .into_iter()
        .map(|row| {
            let fields: Vec<String> = columns
                .iter()
                .zip(row.iter())
                .map(|(column, value)| {
                    let rendered = value
                        .as_ref()
                        .map_or_else(|| "null".to_owned(), |v| render(&column.ty, v));
                    format!("{}: {rendered}", quote(&column.name))
                })
                .collect();
            vec![Some(Bytes::from(format!("{{{}}}", fields.join(", "))))]
        })
        .collect();
    (vec![spec], rows)
}

fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn be<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let start = N.saturating_sub(bytes.len());
    let take = bytes.len().min(N);
    out[start..].copy_from_slice(&bytes[bytes.len() - take..]);
    out
}

fn uuid_text(bytes: &[u8]) -> String {
    crate::schema::format_uuid(u128::from_be_bytes(be::<16>(bytes)))
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn elements(bytes: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let count = i32::from_be_bytes(be::<4>(bytes.get(..4).unwrap_or_default()));
    let mut at = 4;
    for _ in 0..count.max(0) {
        let Some(len) = bytes
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes(be::<4>(b)))
        else {
            break;
        };
        at += 4;
        let len = usize::try_from(len).unwrap_or(0);
        out.push(Bytes::copy_from_slice(
            bytes.get(at..at + len).unwrap_or_default(),
        ));
        at += len;
    }
    out
}

/// One value as JSON text.
/// A decimal's text as Java's `BigDecimal.toString()` writes it (which is
/// what Cassandra shows): plain digits unless the scale is negative or the
/// exponent is below -6, then `1.23E+5`.
pub fn decimal_text(bytes: &[u8]) -> Option<String> {
    let scale = i64::from(i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?));
    let unscaled = num_bigint::BigInt::from_signed_bytes_be(bytes.get(4..)?);
    let sign = if unscaled.sign() == num_bigint::Sign::Minus {
        "-"
    } else {
        ""
    };
    let digits = unscaled.magnitude().to_string();
    let length = digits.len() as i64;
    let adjusted = length - 1 - scale;
    let text = if scale >= 0 && adjusted >= -6 {
        if scale == 0 {
            digits
        } else if length > scale {
            let point = (length - scale) as usize;
            format!("{}.{}", &digits[..point], &digits[point..])
        } else {
            format!("0.{}{digits}", "0".repeat((scale - length) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent = if adjusted >= 0 {
            format!("+{adjusted}")
        } else {
            adjusted.to_string()
        };
        format!("{first}{fraction}E{exponent}")
    };
    Some(format!("{sign}{text}"))
}

pub fn render(ty: &CqlType, bytes: &[u8]) -> String {
    match ty.unfrozen() {
        CqlType::TinyInt => i8::from_be_bytes(be::<1>(bytes)).to_string(),
        CqlType::SmallInt => i16::from_be_bytes(be::<2>(bytes)).to_string(),
        CqlType::Int => i32::from_be_bytes(be::<4>(bytes)).to_string(),
        CqlType::BigInt | CqlType::Counter => i64::from_be_bytes(be::<8>(bytes)).to_string(),
        CqlType::VarInt => num_bigint::BigInt::from_signed_bytes_be(bytes).to_string(),
        CqlType::Decimal => decimal_text(bytes).unwrap_or_else(|| hex(bytes)),
        CqlType::Float => float32(f32::from_be_bytes(be::<4>(bytes))),
        CqlType::Double => float(f64::from_be_bytes(be::<8>(bytes))),
        CqlType::Boolean => (bytes.first().copied().unwrap_or(0) != 0).to_string(),
        CqlType::Text | CqlType::Ascii => quote(&String::from_utf8_lossy(bytes)),
        CqlType::Uuid | CqlType::TimeUuid => quote(&uuid_text(bytes)),
        CqlType::Blob | CqlType::Custom(_) => hex(bytes),
        CqlType::Inet => quote(&match bytes.len() {
            4 => std::net::Ipv4Addr::from(be::<4>(bytes)).to_string(),
            _ => std::net::Ipv6Addr::from(be::<16>(bytes)).to_string(),
        }),
        CqlType::Timestamp => {
            let millis = i64::from_be_bytes(be::<8>(bytes));
            let (y, m, d) = civil_from_days(millis.div_euclid(86_400_000));
            let ms = millis.rem_euclid(86_400_000);
            quote(&format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            ))
        }
        CqlType::Date => {
            let days = i64::from(u32::from_be_bytes(be::<4>(bytes))) - (1i64 << 31);
            let (y, m, d) = civil_from_days(days);
            quote(&format!("{y:04}-{m:02}-{d:02}"))
        }
        CqlType::Time => {
            let nanos = i64::from_be_bytes(be::<8>(bytes));
            quote(&format!(
                "{:02}:{:02}:{:02}.{:09}",
                nanos / 3_600_000_000_000,
                nanos / 60_000_000_000 % 60,
                nanos / 1_000_000_000 % 60,
                nanos % 1_000_000_000
            ))
        }
        CqlType::List(element) | CqlType::Set(element) => {
            let items: Vec<String> = elements(bytes).iter().map(|e| render(element, e)).collect();
            format!("[{}]", items.join(", "))
        }
        CqlType::Map(key, value) => {
            let parts = elements_pairs(bytes);
            let items: Vec<String> = parts
                .iter()
                .map(|(k, v)| {
                    let rendered_key = render(key, k);
                    let key_text = if rendered_key.starts_with('"') {
                        rendered_key
                    } else {
                        quote(&rendered_key)
                    };
                    format!("{key_text}: {}", render(value, v))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        CqlType::Tuple(types) => {
            let Ok(parts) = crate::values::split_tuple(bytes) else {
                return hex(bytes);
            };
            let items: Vec<String> = types
                .iter()
                .zip(&parts)
                .map(|(ty, part)| part.as_ref().map_or("null".to_owned(), |p| render(ty, p)))
                .collect();
            format!("[{}]", items.join(", "))
        }
        CqlType::UserType(udt) => {
            let Ok(parts) = crate::values::split_tuple(bytes) else {
                return hex(bytes);
            };
            let items: Vec<String> = udt
                .fields
                .iter()
                .zip(&parts)
                .map(|((name, ty), part)| {
                    let value = part.as_ref().map_or("null".to_owned(), |p| render(ty, p));
                    format!("{}: {value}", quote(name))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        CqlType::Duration | CqlType::Frozen(_) | CqlType::UserTypeName(_) => hex(bytes),
    }
}

/// Bytes as a quoted `0x...` JSON string.
fn hex(bytes: &[u8]) -> String {
    quote(&format!(
        "0x{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn elements_pairs(bytes: &[u8]) -> Vec<(Bytes, Bytes)> {
    let count = i32::from_be_bytes(be::<4>(bytes.get(..4).unwrap_or_default()));
    let mut doubled = Vec::with_capacity(8 + bytes.len());
    doubled.extend_from_slice(&(count.max(0).saturating_mul(2)).to_be_bytes());
    doubled.extend_from_slice(bytes.get(4..).unwrap_or_default());
    let flat = elements(&doubled);
    flat.chunks(2)
        .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))
        .collect()
}

/// A double as Java's `Double.toString` writes it (what Cassandra's toJson
/// shows): the shortest digits that read back, plain from 10^-3 up to
/// 10^7, else `d.dddE±n`; NaN and the infinities quoted.
fn float(value: f64) -> String {
    java_float_text(value, value.to_string(), format!("{value:e}"))
}

/// A float as Java's `Float.toString` writes it: a float's own shortest
/// digits (`0.1`, not the double nearest it, `0.10000000149011612`).
fn float32(value: f32) -> String {
    java_float_text(f64::from(value), value.to_string(), format!("{value:e}"))
}

fn java_float_text(value: f64, plain: String, scientific: String) -> String {
    if !value.is_finite() {
        return quote(&plain.replace("inf", "Infinity"));
    }
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        return if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        };
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// A JSON value as a term of type `ty`.
pub fn to_term(ty: &CqlType, value: &serde_json::Value, column: &str) -> Result<Term, CqlError> {
    use serde_json::Value as J;
    let lit = |l: Literal| Ok(Term::Literal(l));
    match (ty.unfrozen(), value) {
        (_, J::Null) => lit(Literal::Null),
        (CqlType::Boolean, J::Bool(b)) => lit(Literal::Bool(*b)),
        (CqlType::Boolean, J::String(s)) => lit(Literal::Bool(s.eq_ignore_ascii_case("true"))),
        (
            CqlType::TinyInt
            | CqlType::SmallInt
            | CqlType::Int
            | CqlType::BigInt
            | CqlType::VarInt
            | CqlType::Timestamp
            | CqlType::Counter,
            J::Number(n),
        ) => lit(Literal::Integer(n.to_string())),
        (CqlType::Float | CqlType::Double | CqlType::Decimal, J::Number(n)) => {
            lit(Literal::Float(n.to_string()))
        }
        (
            CqlType::TinyInt | CqlType::SmallInt | CqlType::Int | CqlType::BigInt | CqlType::VarInt,
            J::String(s),
        ) => lit(Literal::Integer(s.clone())),
        (CqlType::Float | CqlType::Double, J::String(s)) => lit(Literal::Float(s.clone())),
        (CqlType::Uuid | CqlType::TimeUuid, J::String(s)) => lit(Literal::Uuid(s.clone())),
        (CqlType::Blob, J::String(s)) => {
            let hex = s.strip_prefix("0x").ok_or_else(|| {
                invalid(format!(
                    "Value '{s}' for column {column} is not a blob (0x...)"
                ))
            })?;
            if hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "Value '{s}' for column {column} is not valid hex"
                )));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect();
            lit(Literal::Blob(bytes))
        }
        (_, J::String(s)) => lit(Literal::Str(s.clone())),
        (CqlType::List(element), J::Array(items)) => Ok(Term::List(
            items
                .iter()
                .map(|i| to_term(element, i, column))
                .collect::<Result<_, _>>()?,
        )),
        (CqlType::Set(element), J::Array(items)) => Ok(Term::Set(
            items
                .iter()
                .map(|i| to_term(element, i, column))
                .collect::<Result<_, _>>()?,
        )),
        (CqlType::UserType(udt), J::Object(entries)) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let Some((_, field_ty)) = udt.fields.iter().find(|(name, _)| name == k) else {
                    return Err(CqlError::Invalid(format!(
                        "Unknown field '{k}' in value of user defined type {}",
                        udt.name
                    )));
                };
                out.push((
                    Term::Literal(Literal::Str(k.clone())),
                    to_term(field_ty, v, column)?,
                ));
            }
            Ok(Term::Map(out))
        }
        (CqlType::Tuple(types), J::Array(items)) => Ok(Term::Tuple(
            types
                .iter()
                .zip(items)
                .map(|(t, i)| to_term(t, i, column))
                .collect::<Result<_, _>>()?,
        )),
        (CqlType::Map(key, val), J::Object(entries)) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let key_json = match key.unfrozen() {
                    CqlType::Text
                    | CqlType::Ascii
                    | CqlType::Uuid
                    | CqlType::TimeUuid
                    | CqlType::Inet
                    | CqlType::Date
                    | CqlType::Time
                    | CqlType::Timestamp
                    | CqlType::Blob => J::String(k.clone()),
                    _ => serde_json::from_str(k).unwrap_or(J::String(k.clone())),
                };
                out.push((to_term(key, &key_json, column)?, to_term(val, v, column)?));
            }
            Ok(Term::Map(out))
        }
        (ty, other) => Err(invalid(format!(
            "Unable to make {ty} from JSON value {other} for column {column}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::decimal_text;

    fn decimal(scale: i32, unscaled: i64) -> Vec<u8> {
        let mut out = scale.to_be_bytes().to_vec();
        out.extend(num_bigint::BigInt::from(unscaled).to_signed_bytes_be());
        out
    }

    #[test]
    fn floats_read_as_javas_to_string_writes_them() {
        for (value, text) in [
            (9.223372036854776e18, "9.223372036854776E18"),
            (1e300, "1.0E300"),
            (1.5e-7, "1.5E-7"),
            (0.001, "0.001"),
            (1234567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
        ] {
            assert_eq!(super::float(value), text);
        }
        assert_eq!(super::float32(0.1), "0.1");
        assert_eq!(super::float32(1e30), "1.0E30");
        assert_eq!(super::float(f64::NAN), "\"NaN\"");
        assert_eq!(super::float(f64::NEG_INFINITY), "\"-Infinity\"");
    }

    #[test]
    fn decimals_read_as_javas_big_decimal_writes_them() {
        for (scale, unscaled, text) in [
            (1, 1050, "105.0"),
            (0, 5, "5"),
            (3, 5, "0.005"),
            (-2, 123, "1.23E+4"),
            (10, 1, "1E-10"),
            (7, -15, "-0.0000015"),
            (8, 15, "1.5E-7"),
            (2, -12345, "-123.45"),
        ] {
            assert_eq!(
                decimal_text(&decimal(scale, unscaled)).as_deref(),
                Some(text)
            );
        }
        assert_eq!(decimal_text(&[0, 0]), None, "too short for a scale");
    }
}

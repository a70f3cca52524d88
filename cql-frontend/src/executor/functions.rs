//! Scalar functions a selection applies to one row's values: clock,
//! collection and math functions, casts, and UDT field access.

use bytes::Bytes;

use crate::types::CqlType;

/// Functions of one row's values that a selection may apply.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ScalarFunction {
    /// The partition's token (its arguments are the partition key columns).
    Token,
    ToTimestamp,
    ToUnixTimestamp,
    ToDate,
    Cast,
    /// A field of a user-defined type's value, by position at each level.
    Field(Vec<usize>),
    /// `<type>AsBlob` and `blobAs<type>`: the same bytes, another type
    /// (checked against the target's width when it has one).
    Reinterpret,
    /// `abs`, `exp`, `log`, `log10`, `round` of a number, in its own type.
    Math(MathFunction),
    /// `now()`, `uuid()`, `currentTimestamp()` and the like: no argument,
    /// evaluated for each row as Cassandra does.
    Clock(ClockFunction),
    /// `map_keys`, `map_values`, `collection_count`, `collection_min`,
    /// `collection_max` of a collection column (Cassandra 5.0).
    Collection(CollectionFunction),
    /// `toJson(column)`: the value as JSON text (`null` for a null).
    ToJson,
}

/// The native functions of no argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClockFunction {
    Now,
    Uuid,
    CurrentTimestamp,
    CurrentDate,
    CurrentTime,
    CurrentTimeUuid,
}

impl ClockFunction {
    /// The function and its result type, by lowercase name.
    pub(super) fn from_name(name: &str) -> Option<(ClockFunction, CqlType)> {
        Some(match name {
            "now" => (ClockFunction::Now, CqlType::TimeUuid),
            "uuid" => (ClockFunction::Uuid, CqlType::Uuid),
            "currenttimestamp" => (ClockFunction::CurrentTimestamp, CqlType::Timestamp),
            "currentdate" => (ClockFunction::CurrentDate, CqlType::Date),
            "currenttime" => (ClockFunction::CurrentTime, CqlType::Time),
            "currenttimeuuid" => (ClockFunction::CurrentTimeUuid, CqlType::TimeUuid),
            _ => return None,
        })
    }

    pub(super) fn value(self) -> Bytes {
        const DAY_US: i64 = 86_400_000_000;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        match self {
            ClockFunction::Now | ClockFunction::CurrentTimeUuid => {
                Bytes::copy_from_slice(&crate::values::timeuuid(micros))
            }
            ClockFunction::Uuid => Bytes::copy_from_slice(&crate::values::random_uuid()),
            ClockFunction::CurrentTimestamp => {
                Bytes::copy_from_slice(&(micros / 1000).to_be_bytes())
            }
            ClockFunction::CurrentDate => {
                let days = micros.div_euclid(DAY_US) + (1 << 31);
                Bytes::copy_from_slice(&(days as u32).to_be_bytes())
            }
            ClockFunction::CurrentTime => {
                Bytes::copy_from_slice(&(micros.rem_euclid(DAY_US) * 1000).to_be_bytes())
            }
        }
    }
}

/// The native collection functions (Cassandra 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CollectionFunction {
    MapKeys,
    MapValues,
    Count,
    Min,
    Max,
}

impl CollectionFunction {
    pub(super) fn from_name(name: &str) -> Option<CollectionFunction> {
        Some(match name {
            "map_keys" => CollectionFunction::MapKeys,
            "map_values" => CollectionFunction::MapValues,
            "collection_count" => CollectionFunction::Count,
            "collection_min" => CollectionFunction::Min,
            "collection_max" => CollectionFunction::Max,
            _ => return None,
        })
    }

    /// The result type for a column of type `ty`, if it takes one.
    pub(super) fn result_type(self, ty: &CqlType) -> Option<CqlType> {
        match (self, ty.unfrozen()) {
            (CollectionFunction::MapKeys, CqlType::Map(k, _)) => Some(CqlType::Set(k.clone())),
            (CollectionFunction::MapValues, CqlType::Map(_, v)) => Some(CqlType::List(v.clone())),
            (CollectionFunction::Count, CqlType::Map(..) | CqlType::List(_) | CqlType::Set(_)) => {
                Some(CqlType::Int)
            }
            (
                CollectionFunction::Min | CollectionFunction::Max,
                CqlType::List(e) | CqlType::Set(e),
            ) => Some((**e).clone()),
            _ => None,
        }
    }

    /// Applies the function to a protocol-encoded collection of type `ty`.
    pub(super) fn apply(self, ty: &CqlType, value: &[u8]) -> Option<Bytes> {
        let (count, items) = collection_items(value)?;
        match self {
            CollectionFunction::Count => Some(Bytes::copy_from_slice(
                &i32::try_from(count).ok()?.to_be_bytes(),
            )),
            CollectionFunction::MapKeys | CollectionFunction::MapValues => {
                let take = usize::from(self == CollectionFunction::MapValues);
                let picked: Vec<&[u8]> = items.iter().skip(take).step_by(2).copied().collect();
                let mut out = Vec::new();
                out.extend_from_slice(&i32::try_from(picked.len()).ok()?.to_be_bytes());
                for item in picked {
                    out.extend_from_slice(&i32::try_from(item.len()).ok()?.to_be_bytes());
                    out.extend_from_slice(item);
                }
                Some(Bytes::from(out))
            }
            CollectionFunction::Min | CollectionFunction::Max => {
                let (CqlType::List(element) | CqlType::Set(element)) = ty.unfrozen() else {
                    return None;
                };
                let mut keyed: Vec<(Vec<u8>, &[u8])> = items
                    .iter()
                    .map(|item| {
                        let mut key = Vec::new();
                        element.encode_comparable(item, false, &mut key).ok()?;
                        Some((key, *item))
                    })
                    .collect::<Option<_>>()?;
                keyed.sort();
                let chosen = if self == CollectionFunction::Min {
                    keyed.first()
                } else {
                    keyed.last()
                };
                chosen.map(|(_, item)| Bytes::copy_from_slice(item))
            }
        }
    }
}

/// A protocol-encoded collection's element count and its elements (a map's
/// keys and values alternate); `None` if it is malformed.
pub(super) fn collection_items(value: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    let count = usize::try_from(i32::from_be_bytes(value.get(..4)?.try_into().ok()?)).ok()?;
    let mut at = 4;
    let mut items = Vec::new();
    while at < value.len() {
        let len =
            usize::try_from(i32::from_be_bytes(value.get(at..at + 4)?.try_into().ok()?)).ok()?;
        at += 4;
        items.push(value.get(at..at + len)?);
        at += len;
    }
    Some((count, items))
}

/// The native math functions (Cassandra 5.0): each returns its argument's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MathFunction {
    Abs,
    Exp,
    Log,
    Log10,
    Round,
}

impl MathFunction {
    pub(super) fn from_name(name: &str) -> Option<MathFunction> {
        Some(match name {
            "abs" => MathFunction::Abs,
            "exp" => MathFunction::Exp,
            "log" => MathFunction::Log,
            "log10" => MathFunction::Log10,
            "round" => MathFunction::Round,
            _ => return None,
        })
    }

    pub(super) fn apply(self, x: f64) -> f64 {
        match self {
            MathFunction::Abs => x.abs(),
            MathFunction::Exp => x.exp(),
            MathFunction::Log => x.ln(),
            MathFunction::Log10 => x.log10(),
            MathFunction::Round => x.round(),
        }
    }
}

/// A math function of a fixed-width number, in the number's type (integer
/// results truncated, as Cassandra's).
pub(super) fn apply_math(function: MathFunction, ty: &CqlType, bytes: &[u8]) -> Option<Bytes> {
    let int = |value: i64| -> Option<i64> {
        match function {
            MathFunction::Abs => value.checked_abs(),
            MathFunction::Round => Some(value),
            other => Some(other.apply(value as f64) as i64),
        }
    };
    Some(match ty {
        CqlType::TinyInt => {
            let v = int(i64::from(i8::from_be_bytes(bytes.try_into().ok()?)))?;
            Bytes::copy_from_slice(&i8::try_from(v).ok()?.to_be_bytes())
        }
        CqlType::SmallInt => {
            let v = int(i64::from(i16::from_be_bytes(bytes.try_into().ok()?)))?;
            Bytes::copy_from_slice(&i16::try_from(v).ok()?.to_be_bytes())
        }
        CqlType::Int => {
            let v = int(i64::from(i32::from_be_bytes(bytes.try_into().ok()?)))?;
            Bytes::copy_from_slice(&i32::try_from(v).ok()?.to_be_bytes())
        }
        CqlType::BigInt | CqlType::Counter => {
            let v = int(i64::from_be_bytes(bytes.try_into().ok()?))?;
            Bytes::copy_from_slice(&v.to_be_bytes())
        }
        CqlType::Float => {
            let v = function.apply(f64::from(f32::from_be_bytes(bytes.try_into().ok()?)));
            Bytes::copy_from_slice(&(v as f32).to_be_bytes())
        }
        CqlType::Double => {
            let v = function.apply(f64::from_be_bytes(bytes.try_into().ok()?));
            Bytes::copy_from_slice(&v.to_be_bytes())
        }
        _ => return None,
    })
}

/// Milliseconds since the epoch in a version 1 (time) UUID.
pub(super) fn timeuuid_millis(bytes: &[u8]) -> Option<i64> {
    let b: [u8; 16] = bytes.try_into().ok()?;
    let time_low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let time_mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let time_hi = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    let ticks = time_hi << 48 | time_mid << 32 | time_low;
    // 100 ns ticks since 1582-10-15.
    Some((ticks as i64 - 0x01b2_1dd2_1381_4000) / 10_000)
}

/// Evaluates a scalar function on its argument values.
pub(super) fn apply_scalar(
    function: &ScalarFunction,
    from: &CqlType,
    to: &CqlType,
    value: Option<Bytes>,
    token: i64,
) -> Option<Bytes> {
    const DAY_MS: i64 = 86_400_000;
    let millis = |bytes: &[u8]| -> Option<i64> {
        match from {
            CqlType::TimeUuid => timeuuid_millis(bytes),
            CqlType::Timestamp => Some(i64::from_be_bytes(bytes.try_into().ok()?)),
            CqlType::Date => {
                let days = i64::from(u32::from_be_bytes(bytes.try_into().ok()?)) - (1 << 31);
                Some(days * DAY_MS)
            }
            _ => None,
        }
    };
    match function {
        ScalarFunction::Token => Some(Bytes::copy_from_slice(&token.to_be_bytes())),
        ScalarFunction::ToTimestamp | ScalarFunction::ToUnixTimestamp => {
            let ms = millis(&value?)?;
            Some(Bytes::copy_from_slice(&ms.to_be_bytes()))
        }
        ScalarFunction::ToDate => {
            let days = millis(&value?)?.div_euclid(DAY_MS) + (1 << 31);
            Some(Bytes::copy_from_slice(&(days as u32).to_be_bytes()))
        }
        ScalarFunction::Cast => cast_value(from, to, &value?),
        ScalarFunction::Reinterpret => {
            let value = value?;
            match to.fixed_width() {
                Some(width) if value.len() != width && !value.is_empty() => None,
                _ => Some(value),
            }
        }
        ScalarFunction::Math(math) => apply_math(*math, from, &value?),
        ScalarFunction::Clock(clock) => Some(clock.value()),
        ScalarFunction::ToJson => Some(Bytes::from(match value {
            Some(bytes) => crate::json::render(from, &bytes),
            None => "null".to_owned(),
        })),
        ScalarFunction::Collection(collection) => collection.apply(from, &value?),
        ScalarFunction::Field(path) => {
            let mut value = value?;
            for &index in path {
                value = udt_field(&value, index)?;
            }
            Some(value)
        }
    }
}

/// Field `index` of a serialized user-type value (`[int length][bytes]`
/// per field); None when null or absent (a field added after the value
/// was written).
pub(super) fn udt_field(value: &Bytes, index: usize) -> Option<Bytes> {
    let mut at = 0usize;
    for field in 0..=index {
        let length = i32::from_be_bytes(value.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if length < 0 {
            if field == index {
                return None;
            }
            continue;
        }
        let end = at.checked_add(length as usize)?;
        if field == index {
            return Some(value.slice(at..end.min(value.len())));
        }
        at = end;
    }
    None
}

/// `CAST(value AS to)` between numbers, and from anything to text.
pub(super) fn cast_value(from: &CqlType, to: &CqlType, bytes: &[u8]) -> Option<Bytes> {
    if matches!(to, CqlType::Text | CqlType::Ascii) {
        let rendered = crate::json::render(from, bytes);
        let text = match from {
            CqlType::Text
            | CqlType::Ascii
            | CqlType::Uuid
            | CqlType::TimeUuid
            | CqlType::Inet
            | CqlType::Timestamp
            | CqlType::Date
            | CqlType::Time => serde_json::from_str::<String>(&rendered).unwrap_or(rendered),
            _ => rendered,
        };
        return Some(Bytes::from(text.into_bytes()));
    }
    let number: f64 = match from {
        CqlType::TinyInt => f64::from(i8::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::SmallInt => f64::from(i16::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::Int => f64::from(i32::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::BigInt | CqlType::Counter => i64::from_be_bytes(bytes.try_into().ok()?) as f64,
        CqlType::Float => f64::from(f32::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::Double => f64::from_be_bytes(bytes.try_into().ok()?),
        _ => return None,
    };
    let exact = |n: f64| n.trunc();
    Some(match to {
        CqlType::TinyInt => Bytes::copy_from_slice(&(exact(number) as i8).to_be_bytes()),
        CqlType::SmallInt => Bytes::copy_from_slice(&(exact(number) as i16).to_be_bytes()),
        CqlType::Int => Bytes::copy_from_slice(&(exact(number) as i32).to_be_bytes()),
        CqlType::BigInt => Bytes::copy_from_slice(&(exact(number) as i64).to_be_bytes()),
        CqlType::Float => Bytes::copy_from_slice(&(number as f32).to_be_bytes()),
        CqlType::Double => Bytes::copy_from_slice(&number.to_be_bytes()),
        _ => return None,
    })
}

/// Whether `CAST(from AS to)` is one this node evaluates.
pub(super) fn castable(from: &CqlType, to: &CqlType) -> bool {
    let numeric = |t: &CqlType| {
        matches!(
            t,
            CqlType::TinyInt
                | CqlType::SmallInt
                | CqlType::Int
                | CqlType::BigInt
                | CqlType::Counter
                | CqlType::Float
                | CqlType::Double
        )
    };
    matches!(to, CqlType::Text | CqlType::Ascii) && !from.is_multi_cell()
        || numeric(from) && numeric(to) && !matches!(to, CqlType::Counter)
}

#[cfg(test)]
mod tests {
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
            rows(&[&["7", "2.5", "-3.0", "1.0", "2.0"]])
        );
        assert_eq!(
            node.rows("SELECT map_keys(m), map_values(m), collection_count(l) FROM t")?,
            rows(&[&["[\"a\", \"b\"]", "[1, 2]", "3"]])
        );
        assert_eq!(
            node.rows("SELECT intAsBlob(i), blobAsInt(intAsBlob(i)) FROM t")?,
            rows(&[&["\"0xfffffff9\"", "-7"]])
        );
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
            ("SELECT abs(?) FROM t", "bind markers"),
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

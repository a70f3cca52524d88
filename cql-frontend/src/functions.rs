//! The native scalar functions (Cassandra 5.0's): clock, time conversion,
//! collection, math and masking functions, casts, type reinterpretation
//! and UDT field access, applied to argument values; selections apply
//! them per row ([`crate::executor`]), terms to constants ([`crate::values`]).

use bytes::Bytes;

use crate::types::CqlType;

/// Functions of one row's values that a selection may apply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScalarFunction {
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
    /// `mask_null`, `mask_default`, `mask_replace`, `mask_inner`,
    /// `mask_outer`, `mask_hash` (Cassandra 5.0's dynamic data masking).
    Mask(MaskFunction),
}

/// The masking functions: each hides its first argument's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaskFunction {
    /// null, of the argument's type.
    Null,
    /// A fixed value of the argument's type (`****`, 0, false, ...).
    Default,
    /// The second argument instead.
    Replace,
    /// Text with all but `begin` leading and `end` trailing characters
    /// padded (`*` unless a fourth argument says).
    Inner,
    /// Text with its `begin` leading and `end` trailing characters padded.
    Outer,
    /// The SHA-256 (or the algorithm the second argument names) of the
    /// value's bytes, as a blob.
    Hash,
}

impl MaskFunction {
    pub(crate) fn from_name(name: &str) -> Option<MaskFunction> {
        Some(match name {
            "mask_null" => MaskFunction::Null,
            "mask_default" => MaskFunction::Default,
            "mask_replace" => MaskFunction::Replace,
            "mask_inner" => MaskFunction::Inner,
            "mask_outer" => MaskFunction::Outer,
            "mask_hash" => MaskFunction::Hash,
            _ => return None,
        })
    }

    /// The types of the arguments after the first (the masked value), the
    /// count the function needs at least, and its result type.
    pub(crate) fn signature(self, masked: &CqlType) -> (Vec<CqlType>, usize, CqlType) {
        match self {
            MaskFunction::Null | MaskFunction::Default => (Vec::new(), 1, masked.clone()),
            MaskFunction::Replace => (vec![masked.clone()], 2, masked.clone()),
            MaskFunction::Inner | MaskFunction::Outer => (
                vec![CqlType::Int, CqlType::Int, CqlType::Text],
                3,
                masked.clone(),
            ),
            MaskFunction::Hash => (vec![CqlType::Text], 1, CqlType::Blob),
        }
    }

    /// Whether `padding` may pad a value of type `masked`: exactly one
    /// character, ASCII for an ascii value (Cassandra's rule).
    pub(crate) fn check_padding(masked: &CqlType, padding: &[u8]) -> Result<char, String> {
        let text =
            std::str::from_utf8(padding).map_err(|_| "the padding is not UTF-8".to_owned())?;
        let mut chars = text.chars();
        let (Some(first), None) = (chars.next(), chars.next()) else {
            return Err(format!(
                "the padding argument should have exactly one character, not {text:?}"
            ));
        };
        if matches!(masked.unfrozen(), CqlType::Ascii) && !first.is_ascii() {
            return Err(format!(
                "the padding {first:?} of an ascii value must be ASCII"
            ));
        }
        Ok(first)
    }

    /// The hash algorithms `mask_hash` knows.
    pub(crate) const HASHES: [&'static str; 2] = ["SHA-256", "SHA-512"];

    fn apply(self, ty: &CqlType, args: &[(&CqlType, Option<Bytes>)]) -> Option<Bytes> {
        let value = args.first().and_then(|(_, v)| v.clone());
        let int_arg = |at: usize| -> usize {
            args.get(at)
                .and_then(|(_, v)| v.as_deref())
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| usize::try_from(i32::from_be_bytes(b)).unwrap_or(0))
        };
        match self {
            MaskFunction::Null => None,
            MaskFunction::Default => Some(masked_default(ty)),
            MaskFunction::Replace => args.get(1).and_then(|(_, v)| v.clone()),
            MaskFunction::Inner | MaskFunction::Outer => {
                let text = String::from_utf8(value?.to_vec()).ok()?;
                let padding = match args.get(3).and_then(|(_, v)| v.as_deref()) {
                    Some(padding) => MaskFunction::check_padding(ty, padding).ok()?,
                    None => '*',
                };
                let (begin, end) = (int_arg(1), int_arg(2));
                let length = text.chars().count();
                let kept_tail = length.saturating_sub(end);
                let masked: String = text
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        let outer = i < begin || i >= kept_tail;
                        if outer == (self == MaskFunction::Outer) {
                            padding
                        } else {
                            c
                        }
                    })
                    .collect();
                Some(Bytes::from(masked.into_bytes()))
            }
            MaskFunction::Hash => {
                use sha2::Digest;
                let value = value?;
                let algorithm = args
                    .get(1)
                    .and_then(|(_, v)| v.as_deref())
                    .map_or(Some("SHA-256"), |b| std::str::from_utf8(b).ok())?;
                match algorithm.to_ascii_uppercase().as_str() {
                    "SHA-256" => Some(Bytes::copy_from_slice(&sha2::Sha256::digest(&value))),
                    "SHA-512" => Some(Bytes::copy_from_slice(&sha2::Sha512::digest(&value))),
                    _ => None,
                }
            }
        }
    }
}

/// The value `mask_default` shows for a type (Cassandra's masked values:
/// `****` for text, zero for numbers and times, false, the nil UUID, an
/// empty collection, each field or component masked in turn).
pub(crate) fn masked_default(ty: &CqlType) -> Bytes {
    let bytes: Vec<u8> = match ty.unfrozen() {
        CqlType::Text | CqlType::Ascii => b"****".to_vec(),
        CqlType::TinyInt => vec![0],
        CqlType::SmallInt => vec![0; 2],
        CqlType::Int | CqlType::Float => vec![0; 4],
        CqlType::BigInt
        | CqlType::Counter
        | CqlType::Double
        | CqlType::Timestamp
        | CqlType::Time => {
            vec![0; 8]
        }
        CqlType::VarInt => vec![0],
        CqlType::Decimal => vec![0, 0, 0, 0, 0],
        CqlType::Boolean => vec![0],
        CqlType::Date => (1u32 << 31).to_be_bytes().to_vec(),
        CqlType::Uuid => vec![0; 16],
        // The nil UUID with version 1 set: a timeuuid column takes it.
        CqlType::TimeUuid => {
            let mut id = vec![0; 16];
            id[6] = 0x10;
            id[8] = 0x80;
            id
        }
        CqlType::Inet => vec![0; 4],
        CqlType::Duration => vec![0, 0, 0],
        CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) => vec![0; 4],
        CqlType::Tuple(items) => fields_of(items.iter()),
        CqlType::UserType(udt) => fields_of(udt.fields.iter().map(|(_, t)| t)),
        _ => Vec::new(),
    };
    Bytes::from(bytes)
}

fn fields_of<'t>(types: impl Iterator<Item = &'t CqlType>) -> Vec<u8> {
    let mut out = Vec::new();
    for ty in types {
        let value = masked_default(ty);
        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
        out.extend_from_slice(&value);
    }
    out
}

/// The native functions of no argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClockFunction {
    Now,
    Uuid,
    CurrentTimestamp,
    CurrentDate,
    CurrentTime,
    CurrentTimeUuid,
}

impl ClockFunction {
    /// The function and its result type, by lowercase name.
    pub(crate) fn from_name(name: &str) -> Option<(ClockFunction, CqlType)> {
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

    pub(crate) fn value(self) -> Bytes {
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
pub(crate) enum CollectionFunction {
    MapKeys,
    MapValues,
    Count,
    Min,
    Max,
    Sum,
    Avg,
}

impl CollectionFunction {
    pub(crate) fn from_name(name: &str) -> Option<CollectionFunction> {
        Some(match name {
            "map_keys" => CollectionFunction::MapKeys,
            "map_values" => CollectionFunction::MapValues,
            "collection_count" => CollectionFunction::Count,
            "collection_min" => CollectionFunction::Min,
            "collection_max" => CollectionFunction::Max,
            "collection_sum" => CollectionFunction::Sum,
            "collection_avg" => CollectionFunction::Avg,
            _ => return None,
        })
    }

    /// The result type for a column of type `ty`, if it takes one.
    pub(crate) fn result_type(self, ty: &CqlType) -> Option<CqlType> {
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
            (
                CollectionFunction::Sum | CollectionFunction::Avg,
                CqlType::List(e) | CqlType::Set(e),
            ) if e.fixed_width().is_some() && numeric_fixed(e) => Some((**e).clone()),
            _ => None,
        }
    }

    /// Applies the function to a protocol-encoded collection of type `ty`.
    pub(crate) fn apply(self, ty: &CqlType, value: &[u8]) -> Option<Bytes> {
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
            CollectionFunction::Sum | CollectionFunction::Avg => {
                let (CqlType::List(element) | CqlType::Set(element)) = ty.unfrozen() else {
                    return None;
                };
                fold_numbers(element, &items, self == CollectionFunction::Avg)
            }
        }
    }
}

/// The fixed-width numbers the math functions, `collection_sum` and
/// `collection_avg` take.
pub(crate) fn numeric_fixed(ty: &CqlType) -> bool {
    matches!(
        ty,
        CqlType::TinyInt
            | CqlType::SmallInt
            | CqlType::Int
            | CqlType::BigInt
            | CqlType::Float
            | CqlType::Double
    )
}

/// The sum (or mean) of numbers, in their type: integers wrap as Java's
/// do, an integer mean truncates, an empty collection gives zero.
fn fold_numbers(ty: &CqlType, items: &[&[u8]], mean: bool) -> Option<Bytes> {
    let count = items.len().max(1);
    let float = matches!(ty, CqlType::Float | CqlType::Double);
    let (mut int_sum, mut float_sum) = (0i128, 0f64);
    for item in items {
        match ty {
            CqlType::Float => float_sum += f64::from(f32::from_be_bytes((*item).try_into().ok()?)),
            CqlType::Double => float_sum += f64::from_be_bytes((*item).try_into().ok()?),
            _ => {
                let width = ty.fixed_width()?;
                let bytes: &[u8] = item;
                if bytes.len() != width {
                    return None;
                }
                let mut full = [if bytes.first()? & 0x80 != 0 { 0xff } else { 0 }; 16];
                full[16 - width..].copy_from_slice(bytes);
                int_sum += i128::from_be_bytes(full);
            }
        }
    }
    if float {
        let value = if mean {
            float_sum / count as f64
        } else {
            float_sum
        };
        return Some(match ty {
            CqlType::Float => Bytes::copy_from_slice(&(value as f32).to_be_bytes()),
            _ => Bytes::copy_from_slice(&value.to_be_bytes()),
        });
    }
    let value = if mean {
        int_sum / count as i128
    } else {
        int_sum
    };
    let width = ty.fixed_width()?;
    Some(Bytes::copy_from_slice(&value.to_be_bytes()[16 - width..]))
}

/// A protocol-encoded collection's element count and its elements (a map's
/// keys and values alternate); `None` if it is malformed.
pub(crate) fn collection_items(value: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
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
pub(crate) enum MathFunction {
    Abs,
    Exp,
    Log,
    Log10,
    Round,
}

impl MathFunction {
    pub(crate) fn from_name(name: &str) -> Option<MathFunction> {
        Some(match name {
            "abs" => MathFunction::Abs,
            "exp" => MathFunction::Exp,
            "log" => MathFunction::Log,
            "log10" => MathFunction::Log10,
            "round" => MathFunction::Round,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, x: f64) -> f64 {
        match self {
            MathFunction::Abs => x.abs(),
            MathFunction::Exp => x.exp(),
            MathFunction::Log => x.ln(),
            MathFunction::Log10 => x.log10(),
            MathFunction::Round => java_round(x),
        }
    }
}

/// A math function of a fixed-width number, in the number's type, as
/// Cassandra's Java computes it: `abs` wraps at the type's minimum, `exp`,
/// `log` and `log10` of an integer saturate to its type (Java's casts),
/// `round` is Java's `Math.round` (halves up, toward +∞; a double's result
/// within a long's range, a float's within an int's).
pub(crate) fn apply_math(function: MathFunction, ty: &CqlType, bytes: &[u8]) -> Option<Bytes> {
    macro_rules! integer {
        ($t:ty) => {{
            let v = <$t>::from_be_bytes(bytes.try_into().ok()?);
            let out: $t = match function {
                MathFunction::Abs => v.wrapping_abs(),
                MathFunction::Round => v,
                other => other.apply(v as f64) as $t,
            };
            Bytes::copy_from_slice(&out.to_be_bytes())
        }};
    }
    Some(match ty {
        CqlType::TinyInt => integer!(i8),
        CqlType::SmallInt => integer!(i16),
        CqlType::Int => integer!(i32),
        CqlType::BigInt | CqlType::Counter => integer!(i64),
        CqlType::Float => {
            let v = f64::from(f32::from_be_bytes(bytes.try_into().ok()?));
            let out = match function {
                MathFunction::Round => java_round(v) as i32 as f32,
                other => other.apply(v) as f32,
            };
            Bytes::copy_from_slice(&out.to_be_bytes())
        }
        CqlType::Double => {
            let v = f64::from_be_bytes(bytes.try_into().ok()?);
            let out = match function {
                MathFunction::Round => java_round(v) as i64 as f64,
                other => other.apply(v),
            };
            Bytes::copy_from_slice(&out.to_be_bytes())
        }
        _ => return None,
    })
}

/// Java's `Math.round` before its cast: the nearest integer, halves toward
/// +∞ (`-2.5` → `-2`), NaN → 0.
fn java_round(x: f64) -> f64 {
    if x.is_nan() {
        return 0.0;
    }
    let up = (x + 0.5).floor();
    // x + 0.5 may round up in floating point (0.49999999999999994).
    if up - x > 0.5 {
        up - 1.0
    } else {
        up
    }
}

/// Milliseconds since the epoch in a version 1 (time) UUID.
pub(crate) fn timeuuid_millis(bytes: &[u8]) -> Option<i64> {
    let b: [u8; 16] = bytes.try_into().ok()?;
    let time_low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let time_mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let time_hi = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    let ticks = time_hi << 48 | time_mid << 32 | time_low;
    // 100 ns ticks since 1582-10-15.
    Some((ticks as i64 - 0x01b2_1dd2_1381_4000) / 10_000)
}

/// Evaluates a scalar function on its arguments' types and values (`to`
/// is its result type, `token` the row's partition token).
pub(crate) fn apply_scalar(
    function: &ScalarFunction,
    args: &[(&CqlType, Option<Bytes>)],
    to: &CqlType,
    token: i64,
) -> Option<Bytes> {
    let (from, value) = args
        .first()
        .map_or((&CqlType::BigInt, None), |(ty, value)| (*ty, value.clone()));
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
        ScalarFunction::Mask(mask) => mask.apply(from, args),
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
pub(crate) fn udt_field(value: &Bytes, index: usize) -> Option<Bytes> {
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
pub(crate) fn cast_value(from: &CqlType, to: &CqlType, bytes: &[u8]) -> Option<Bytes> {
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
pub(crate) fn castable(from: &CqlType, to: &CqlType) -> bool {
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

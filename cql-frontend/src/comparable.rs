//! The byte-comparable form of CQL values: clustering keys and the cell
//! paths of collection elements are stored in it, so that the engine's
//! byte order is CQL's order (Cassandra's comparators), ascending or, with
//! every byte inverted, descending.
//!
//! - fixed-width numbers: big-endian with the sign bit flipped (floats:
//!   every bit of a negative one flipped); booleans and dates as they are;
//! - uuids and timeuuids: the version, then a timeuuid's timestamp (its
//!   fields reordered, high to low) or another uuid's first half, then the
//!   second half as signed bytes (Cassandra's `TimeUUIDType`/`UUIDType`);
//! - `varint`: a sign marker, the length (inverted for negatives), then the
//!   minimal two's-complement bytes, so that longer means larger for
//!   positives and smaller for negatives;
//! - tuples and user-defined types: each component in turn, `0x01` and its
//!   form, or `0x00` for null (a null sorts first, as in Cassandra); fields
//!   a value lacks count as null;
//! - frozen lists, sets and maps: each element (a map: key then value)
//!   after `0x01`, then `0x00`, so that a prefix sorts first;
//! - everything else (text, blobs, inet, decimal...): the bytes with `0x00`
//!   escaped as `0x00 0xFF`, then `0x00 0x00`. (`decimal` therefore orders
//!   by its encoding, not numerically: a known gap.)
//!
//! Every form ends where a reader can tell, so that components follow one
//! another in a clustering key without lengths.

use crate::types::{CqlType, TypeError};

/// Appends the byte-comparable form of `value` (a protocol-encoded value of
/// `ty`) to `out`.
pub fn encode(
    ty: &CqlType,
    value: &[u8],
    descending: bool,
    out: &mut Vec<u8>,
) -> Result<(), TypeError> {
    let start = out.len();
    encode_ascending(ty, value, out)?;
    if descending {
        for b in out.iter_mut().skip(start) {
            *b = !*b;
        }
    }
    Ok(())
}

/// Reads one byte-comparable component back into its protocol value;
/// returns the value and the bytes consumed.
pub fn decode(ty: &CqlType, bytes: &[u8], descending: bool) -> Result<(Vec<u8>, usize), TypeError> {
    let mut input = Input {
        bytes,
        at: 0,
        flip: descending,
    };
    let mut out = Vec::new();
    decode_ascending(ty, &mut input, &mut out)?;
    Ok((out, input.at))
}

fn short(ty: &CqlType) -> TypeError {
    TypeError(format!("a {ty} value is cut short"))
}

/// The next `[bytes]` of a protocol value (`None`: null).
fn take_bytes<'a>(
    ty: &CqlType,
    value: &'a [u8],
    at: &mut usize,
) -> Result<Option<&'a [u8]>, TypeError> {
    let len = value
        .get(*at..*at + 4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or_else(|| short(ty))?;
    *at += 4;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    let bytes = value.get(*at..*at + len).ok_or_else(|| short(ty))?;
    *at += len;
    Ok(Some(bytes))
}

/// The element count of a protocol-encoded collection.
fn take_count(ty: &CqlType, value: &[u8], at: &mut usize) -> Result<usize, TypeError> {
    let count = value
        .get(*at..*at + 4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or_else(|| short(ty))?;
    *at += 4;
    usize::try_from(count).map_err(|_| TypeError(format!("a {ty} value has a negative count")))
}

fn encode_ascending(ty: &CqlType, value: &[u8], out: &mut Vec<u8>) -> Result<(), TypeError> {
    match (ty.unfrozen(), ty.fixed_width()) {
        (CqlType::Float | CqlType::Double, Some(width)) => {
            check_width(ty, value, width)?;
            let negative = value.first().is_some_and(|b| b & 0x80 != 0);
            out.extend(value.iter().enumerate().map(|(i, b)| {
                if negative {
                    !b
                } else if i == 0 {
                    b ^ 0x80
                } else {
                    *b
                }
            }));
        }
        (CqlType::Uuid | CqlType::TimeUuid, Some(width)) => {
            check_width(ty, value, width)?;
            encode_uuid(value, out);
        }
        (CqlType::Boolean | CqlType::Date, Some(width)) => {
            // Unsigned already (date is an unsigned day number centred on 2^31).
            check_width(ty, value, width)?;
            out.extend_from_slice(value);
        }
        (_, Some(width)) => {
            check_width(ty, value, width)?;
            out.extend(
                value
                    .iter()
                    .enumerate()
                    .map(|(i, b)| if i == 0 { b ^ 0x80 } else { *b }),
            );
        }
        (CqlType::VarInt, None) => encode_varint(value, out),
        (CqlType::Tuple(types), None) => encode_components(ty, types.iter(), value, out)?,
        (CqlType::UserType(udt), None) => {
            encode_components(ty, udt.fields.iter().map(|(_, t)| t), value, out)?
        }
        (CqlType::List(element) | CqlType::Set(element), None) => {
            let mut at = 0;
            for _ in 0..take_count(ty, value, &mut at)? {
                let item = take_bytes(ty, value, &mut at)?
                    .ok_or_else(|| TypeError(format!("null inside a {ty} value")))?;
                out.push(1);
                encode_ascending(element, item, out)?;
            }
            out.push(0);
        }
        (CqlType::Map(key_type, value_type), None) => {
            let mut at = 0;
            for _ in 0..take_count(ty, value, &mut at)? {
                let key = take_bytes(ty, value, &mut at)?
                    .ok_or_else(|| TypeError(format!("null key inside a {ty} value")))?;
                let item = take_bytes(ty, value, &mut at)?
                    .ok_or_else(|| TypeError(format!("null value inside a {ty} value")))?;
                out.push(1);
                encode_ascending(key_type, key, out)?;
                encode_ascending(value_type, item, out)?;
            }
            out.push(0);
        }
        (_, None) => encode_escaped(value, out),
    }
    Ok(())
}

/// A uuid as Cassandra orders uuids and timeuuids: by version, then a
/// time-based (version 1) one by its timestamp (`time_hi`, `time_mid`,
/// `time_low`) and any other by its first half as it is, then the second
/// half byte by byte as signed bytes. The version leads as a byte of its own.
fn encode_uuid(value: &[u8], out: &mut Vec<u8>) {
    let version = value.get(6).map_or(0, |b| b >> 4);
    out.push(version);
    if version == 1 {
        out.extend_from_slice(&value[6..8]);
        out.extend_from_slice(&value[4..6]);
        out.extend_from_slice(&value[0..4]);
    } else {
        out.extend_from_slice(&value[0..8]);
    }
    out.extend(value[8..16].iter().map(|b| b ^ 0x80));
}

fn decode_uuid(input: &mut Input<'_>, out: &mut Vec<u8>) -> Result<(), TypeError> {
    let version = input.byte()?;
    let first = input.take(8)?;
    if version == 1 {
        out.extend_from_slice(&first[4..8]);
        out.extend_from_slice(&first[2..4]);
        out.extend_from_slice(&first[0..2]);
    } else {
        out.extend_from_slice(&first);
    }
    out.extend(input.take(8)?.iter().map(|b| b ^ 0x80));
    Ok(())
}

fn encode_components<'t>(
    ty: &CqlType,
    types: impl Iterator<Item = &'t CqlType>,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TypeError> {
    let mut at = 0;
    for component in types {
        let item = if at < value.len() {
            take_bytes(ty, value, &mut at)?
        } else {
            None
        };
        match item {
            Some(item) => {
                out.push(1);
                encode_ascending(component, item, out)?;
            }
            None => out.push(0),
        }
    }
    if at < value.len() {
        return Err(TypeError(format!(
            "a {ty} value has more components than its type"
        )));
    }
    Ok(())
}

fn encode_escaped(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Markers of a `varint`'s sign; empty (an "empty value") sorts first.
const VARINT_EMPTY: u8 = 0;
const VARINT_NEGATIVE: u8 = 1;
const VARINT_NON_NEGATIVE: u8 = 2;

fn encode_varint(value: &[u8], out: &mut Vec<u8>) {
    let Some(&first) = value.first() else {
        out.push(VARINT_EMPTY);
        return;
    };
    let negative = first & 0x80 != 0;
    // The minimal two's-complement form: no redundant sign bytes.
    let pad = if negative { 0xFF } else { 0x00 };
    let mut start = 0;
    while start + 1 < value.len()
        && value[start] == pad
        && (value[start + 1] & 0x80 != 0) == negative
    {
        start += 1;
    }
    let minimal = &value[start..];
    let len = u32::try_from(minimal.len()).unwrap_or(u32::MAX);
    if negative {
        out.push(VARINT_NEGATIVE);
        out.extend_from_slice(&(!len).to_be_bytes());
    } else {
        out.push(VARINT_NON_NEGATIVE);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(minimal);
}

/// Byte-comparable input, read with every byte inverted when descending.
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
    flip: bool,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, TypeError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| TypeError("a clustering or path component is cut short".into()))?;
        self.at += 1;
        Ok(if self.flip { !b } else { b })
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, TypeError> {
        (0..n).map(|_| self.byte()).collect()
    }
}

fn put_bytes(out: &mut Vec<u8>, item: Option<&[u8]>) {
    match item {
        Some(item) => {
            out.extend_from_slice(&(item.len() as i32).to_be_bytes());
            out.extend_from_slice(item);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn decode_ascending(
    ty: &CqlType,
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
) -> Result<(), TypeError> {
    match (ty.unfrozen(), ty.fixed_width()) {
        (CqlType::Float | CqlType::Double, Some(width)) => {
            let raw = input.take(width)?;
            let was_negative = raw.first().is_some_and(|b| b & 0x80 == 0);
            out.extend(raw.iter().enumerate().map(|(i, b)| {
                if was_negative {
                    !b
                } else if i == 0 {
                    b ^ 0x80
                } else {
                    *b
                }
            }));
        }
        (CqlType::Uuid | CqlType::TimeUuid, Some(_)) => decode_uuid(input, out)?,
        (CqlType::Boolean | CqlType::Date, Some(width)) => {
            out.extend(input.take(width)?);
        }
        (_, Some(width)) => {
            let raw = input.take(width)?;
            out.extend(
                raw.iter()
                    .enumerate()
                    .map(|(i, b)| if i == 0 { b ^ 0x80 } else { *b }),
            );
        }
        (CqlType::VarInt, None) => match input.byte()? {
            VARINT_EMPTY => {}
            marker @ (VARINT_NEGATIVE | VARINT_NON_NEGATIVE) => {
                let raw = input.take(4)?;
                let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
                let len = if marker == VARINT_NEGATIVE { !len } else { len };
                if len as usize > input.bytes.len() {
                    return Err(TypeError("a varint component claims too many bytes".into()));
                }
                out.extend(input.take(len as usize)?);
            }
            other => return Err(TypeError(format!("bad varint marker {other}"))),
        },
        (CqlType::Tuple(types), None) => decode_components(types.iter(), input, out)?,
        (CqlType::UserType(udt), None) => {
            decode_components(udt.fields.iter().map(|(_, t)| t), input, out)?
        }
        (CqlType::List(element) | CqlType::Set(element), None) => {
            let mut items = Vec::new();
            let mut count: i32 = 0;
            while input.byte()? == 1 {
                let mut item = Vec::new();
                decode_ascending(element, input, &mut item)?;
                put_bytes(&mut items, Some(&item));
                count = count.saturating_add(1);
            }
            out.extend_from_slice(&count.to_be_bytes());
            out.extend(items);
        }
        (CqlType::Map(key_type, value_type), None) => {
            let mut items = Vec::new();
            let mut count: i32 = 0;
            while input.byte()? == 1 {
                let mut key = Vec::new();
                decode_ascending(key_type, input, &mut key)?;
                let mut item = Vec::new();
                decode_ascending(value_type, input, &mut item)?;
                put_bytes(&mut items, Some(&key));
                put_bytes(&mut items, Some(&item));
                count = count.saturating_add(1);
            }
            out.extend_from_slice(&count.to_be_bytes());
            out.extend(items);
        }
        (_, None) => loop {
            match input.byte()? {
                0 => match input.byte()? {
                    0 => break,
                    0xFF => out.push(0),
                    _ => return Err(TypeError("bad escape in a clustering component".into())),
                },
                b => out.push(b),
            }
        },
    }
    Ok(())
}

fn decode_components<'t>(
    types: impl Iterator<Item = &'t CqlType>,
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
) -> Result<(), TypeError> {
    for component in types {
        match input.byte()? {
            0 => put_bytes(out, None),
            1 => {
                let mut item = Vec::new();
                decode_ascending(component, input, &mut item)?;
                put_bytes(out, Some(&item));
            }
            other => return Err(TypeError(format!("bad component marker {other}"))),
        }
    }
    Ok(())
}

fn check_width(ty: &CqlType, value: &[u8], width: usize) -> Result<(), TypeError> {
    if value.len() != width {
        return Err(TypeError(format!(
            "a {ty} value has {width} bytes, not {}",
            value.len()
        )));
    }
    Ok(())
}

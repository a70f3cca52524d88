//! Values and result tables as cqlsh prints them: `True`, `0xcafe`,
//! `2024-01-02 03:04:05.000000+0000`, `{'a': 1}`, `null`; a table with
//! left-aligned headers and right-aligned values, or EXPAND's one block per
//! row; colours on a terminal only.

use std::fmt::Write as _;

use scylla::value::CqlValue;
use unicode_width::UnicodeWidthStr;

/// Significant digits cqlsh shows for `float` and `double`.
const FLOAT_PRECISION: usize = 5;
/// cqlsh 6.2's `DEFAULT_DOUBLE_PRECISION` (earlier cqlsh used 12).
const DOUBLE_PRECISION: usize = 5;

/// What colour a printed value takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    Number,
    Null,
    Other,
}

/// One printed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub kind: Kind,
    /// The width cqlsh counts for it when sizing columns (see
    /// [`cqlsh_width`]); its padding is counted from this.
    pub width: usize,
}

impl Cell {
    pub fn of(value: Option<&CqlValue>) -> Cell {
        match value {
            None => Cell {
                text: "null".to_owned(),
                kind: Kind::Null,
                width: 4,
            },
            Some(v) => Cell {
                text: value_text(v, false),
                width: cqlsh_width(v, false),
                kind: match v {
                    CqlValue::Text(_) | CqlValue::Ascii(_) => Kind::Text,
                    CqlValue::Int(_)
                    | CqlValue::BigInt(_)
                    | CqlValue::SmallInt(_)
                    | CqlValue::TinyInt(_)
                    | CqlValue::Float(_)
                    | CqlValue::Double(_)
                    | CqlValue::Varint(_)
                    | CqlValue::Decimal(_)
                    | CqlValue::Counter(_) => Kind::Number,
                    _ => Kind::Other,
                },
            },
        }
    }

    fn painted(&self, color: bool, width: usize, right: bool) -> String {
        let pad = " ".repeat(width.saturating_sub(self.width));
        let body = if color {
            let code = match self.kind {
                Kind::Text => "\x1b[1;33m",
                Kind::Number | Kind::Other => "\x1b[1;32m",
                Kind::Null => "\x1b[1;31m",
            };
            format!("{code}{}\x1b[0m", self.text)
        } else {
            self.text.clone()
        };
        if right {
            format!("{pad}{body}")
        } else {
            format!("{body}{pad}")
        }
    }
}

fn header(name: &str, color: bool, width: usize) -> String {
    let pad = " ".repeat(width.saturating_sub(name.width()));
    if color {
        format!("\x1b[1;35m{name}\x1b[0m{pad}")
    } else {
        format!("{name}{pad}")
    }
}

/// A page of rows as cqlsh's table (without the row count).
pub fn table(names: &[String], rows: &[Vec<Cell>], color: bool) -> String {
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.width)
                .chain(std::iter::once(name.width()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::from("\n");
    let heads: Vec<String> = names
        .iter()
        .zip(&widths)
        .map(|(n, w)| header(n, color, *w))
        .collect();
    let _ = writeln!(out, " {}", heads.join(" | ").trim_end());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "-{}-", rule.join("-+-"));
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| c.painted(color, *w, true))
            .collect();
        let _ = writeln!(out, " {}", cells.join(" | "));
    }
    out
}

/// A page of rows as EXPAND ON prints them: `@ Row n` blocks.
pub fn expanded(names: &[String], rows: &[Vec<Cell>], color: bool, first_row: usize) -> String {
    let name_width = names.iter().map(|n| n.width()).max().unwrap_or(0);
    let value_width = rows.iter().flatten().map(|c| c.width).max().unwrap_or(0);
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(out, "\n@ Row {}", first_row + i);
        let _ = writeln!(
            out,
            "-{}-+-{}-",
            "-".repeat(name_width),
            "-".repeat(value_width)
        );
        for (name, cell) in names.iter().zip(row) {
            let _ = writeln!(
                out,
                " {} | {}",
                header(name, color, name_width),
                cell.painted(color, 0, false)
            );
        }
    }
    out
}

/// Text as cqlsh shows it: backslashes doubled, control characters as
/// Python writes them (`\n`, `\x01`, `\xa0`).
pub fn escaped_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{a0}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            other => out.push(other),
        }
    }
    out
}

/// The width cqlsh counts for a value when it sizes columns: a
/// collection's is its parts' plus 2 per element (4 per map entry or UDT
/// field), so an empty collection counts 0 where it prints 2 characters
/// (cqlsh's arithmetic, kept so columns line up as cqlsh lines them up).
pub fn cqlsh_width(value: &CqlValue, nested: bool) -> usize {
    let of = |v: &Option<CqlValue>| v.as_ref().map_or(4, |v| cqlsh_width(v, true));
    match value {
        CqlValue::List(items) | CqlValue::Set(items) | CqlValue::Vector(items) => {
            2 * items.len() + items.iter().map(|v| cqlsh_width(v, true)).sum::<usize>()
        }
        CqlValue::Tuple(items) => 2 * items.len() + items.iter().map(of).sum::<usize>(),
        CqlValue::Map(entries) => {
            4 * entries.len()
                + entries
                    .iter()
                    .map(|(k, v)| cqlsh_width(k, true) + cqlsh_width(v, true))
                    .sum::<usize>()
        }
        CqlValue::UserDefinedType { fields, .. } => {
            4 * fields.len()
                + fields
                    .iter()
                    .map(|(name, v)| escaped_text(name).width() + of(v))
                    .sum::<usize>()
        }
        other => value_text(other, nested).width(),
    }
}

/// A value as DESCRIBE prints it: text as it is (statements span lines),
/// anything else as [`value_text`].
pub fn described_text(value: &CqlValue) -> String {
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => s.clone(),
        other => value_text(other, false),
    }
}

/// A value as cqlsh prints it; inside a collection, strings are quoted.
pub fn value_text(value: &CqlValue, nested: bool) -> String {
    let quoted = |s: &str| {
        if nested {
            format!("'{}'", s.replace('\'', "''"))
        } else {
            s.to_owned()
        }
    };
    let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => quoted(&escaped_text(s)),
        CqlValue::Boolean(b) => if *b { "True" } else { "False" }.to_owned(),
        CqlValue::Blob(bytes) => {
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("0x");
            for b in bytes {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        }
        CqlValue::Int(v) => v.to_string(),
        CqlValue::BigInt(v) => v.to_string(),
        CqlValue::SmallInt(v) => v.to_string(),
        CqlValue::TinyInt(v) => v.to_string(),
        CqlValue::Counter(c) => c.0.to_string(),
        CqlValue::Float(v) => cqlsh_float_text(f64::from(*v), FLOAT_PRECISION),
        CqlValue::Double(v) => cqlsh_float_text(*v, DOUBLE_PRECISION),
        CqlValue::Varint(v) => {
            num_bigint::BigInt::from_signed_bytes_be(v.as_signed_bytes_be_slice()).to_string()
        }
        CqlValue::Decimal(d) => {
            let (mantissa, scale) = d.as_signed_be_bytes_slice_and_exponent();
            decimal_text(
                &num_bigint::BigInt::from_signed_bytes_be(mantissa).to_string(),
                scale,
            )
        }
        CqlValue::Uuid(u) => u.to_string(),
        CqlValue::Timeuuid(u) => u.to_string(),
        CqlValue::Inet(ip) => quoted(&ip.to_string()),
        CqlValue::Timestamp(t) => quoted(&timestamp_text(t.0)),
        CqlValue::Date(d) => quoted(&date_text(d.0)),
        CqlValue::Time(t) => quoted(&time_text(t.0)),
        CqlValue::Duration(d) => duration_text(d.months, d.days, d.nanoseconds),
        CqlValue::Empty => String::new(),
        CqlValue::List(items) => {
            format!("[{}]", join(&mut items.iter().map(|v| value_text(v, true))))
        }
        CqlValue::Vector(items) => {
            format!("[{}]", join(&mut items.iter().map(|v| value_text(v, true))))
        }
        CqlValue::Set(items) => format!(
            "{{{}}}",
            join(&mut items.iter().map(|v| value_text(v, true)))
        ),
        CqlValue::Map(entries) => format!(
            "{{{}}}",
            join(&mut entries.iter().map(|(k, v)| format!(
                "{}: {}",
                value_text(k, true),
                value_text(v, true)
            )))
        ),
        CqlValue::Tuple(items) => format!(
            "({})",
            join(&mut items.iter().map(|v| {
                v.as_ref()
                    .map_or_else(|| "null".to_owned(), |v| value_text(v, true))
            }))
        ),
        CqlValue::UserDefinedType { fields, .. } => format!(
            "{{{}}}",
            join(&mut fields.iter().map(|(name, v)| {
                let v = v
                    .as_ref()
                    .map_or_else(|| "null".to_owned(), |v| value_text(v, true));
                format!("{name}: {v}")
            }))
        ),
        other => format!("{other:?}"),
    }
}

/// A float as cqlsh shows it: `%.Ng` with N widened by the digits before
/// the point when the number stays in plain notation (so `3.14159`, not
/// `3.1416`, at precision 5), as its `format_floating_point_type` does.
pub fn cqlsh_float_text(value: f64, precision: usize) -> String {
    let mut precision = precision;
    if value.is_finite() && value.abs() > f64::EPSILON {
        // Python's int(): toward zero.
        let exponent = value.abs().log10().trunc() as i64;
        if (-4..precision as i64).contains(&exponent) {
            precision = usize::try_from(precision as i64 + exponent + 1).unwrap_or(1);
        }
    }
    float_text(value, precision)
}

/// `%.Ng` as Python prints it: N significant digits, no trailing zeros,
/// exponent form outside 1e-4 ..= 1e(N).
pub fn float_text(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let scientific = format!("{:.*e}", precision.saturating_sub(1), value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim(&format!("{value:.decimals$}"))
    }
}

/// An unscaled integer and a scale as Python's `Decimal` prints it (what
/// cqlsh shows): `12345`, 2 → `123.45`; scientific when the scale is
/// negative or the exponent below -6 (`1E+10`, `1E-8`).
fn decimal_text(unscaled: &str, scale: i32) -> String {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", unscaled),
    };
    let adjusted = digits.len() as i64 - 1 - i64::from(scale);
    if scale < 0 || adjusted < -6 {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if adjusted >= 0 { "+" } else { "" };
        return format!("{sign}{first}{fraction}E{exponent_sign}{adjusted}");
    }
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Milliseconds since the epoch as cqlsh prints a timestamp (UTC): it
/// divides by 1000.0 into a float of seconds and Python's `timedelta`
/// rounds that float to the nearest microsecond, so far from 1970 the
/// microseconds show the float's error (`23:59:59.998993` for `.999` in
/// 9999); the same arithmetic here, exactly.
pub fn timestamp_text(millis: i64) -> String {
    let micros = float_seconds_micros(millis as f64 / 1000.0);
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || millis.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S%.6f+0000").to_string(),
    )
}

/// A float of seconds in whole microseconds, rounded half to even from the
/// float's exact value (as CPython's `timedelta(seconds=x)` does).
fn float_seconds_micros(seconds: f64) -> i64 {
    if !seconds.is_finite() {
        return 0;
    }
    // seconds = mantissa × 2^exponent exactly.
    let bits = seconds.to_bits();
    let negative = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let scaled = i128::from(mantissa) * 1_000_000;
    let micros = if exponent >= 0 {
        scaled.checked_shl(exponent as u32).unwrap_or(i128::MAX)
    } else if exponent <= -127 {
        0
    } else {
        let shift = (-exponent) as u32;
        let whole = scaled >> shift;
        let rest = scaled - (whole << shift);
        let half = 1i128 << (shift - 1);
        if rest > half || (rest == half && whole % 2 == 1) {
            whole + 1
        } else {
            whole
        }
    };
    let micros = i64::try_from(micros).unwrap_or(i64::MAX);
    if negative {
        -micros
    } else {
        micros
    }
}

/// A CQL `date` (days since the epoch, offset by 2^31).
pub fn date_text(days: u32) -> String {
    let since_epoch = i64::from(days) - (1i64 << 31);
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(since_epoch)))
        .map_or_else(
            || since_epoch.to_string(),
            |d| d.format("%Y-%m-%d").to_string(),
        )
}

/// A CQL `time` (nanoseconds since midnight).
pub fn time_text(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        nanos.rem_euclid(1_000_000_000)
    )
}

/// A duration as cqlsh prints it: `1y2mo3d4h5m6s7ms8us9ns`.
pub fn duration_text(months: i32, days: i32, nanos: i64) -> String {
    if months == 0 && days == 0 && nanos == 0 {
        return "0".to_owned();
    }
    let negative = months < 0 || days < 0 || nanos < 0;
    let mut out = String::from(if negative { "-" } else { "" });
    let mut part = |value: u64, unit: &str| {
        if value > 0 {
            let _ = write!(out, "{value}{unit}");
        }
    };
    let months = u64::from(months.unsigned_abs());
    part(months / 12, "y");
    part(months % 12, "mo");
    part(u64::from(days.unsigned_abs()), "d");
    let mut n = nanos.unsigned_abs();
    for (size, unit) in [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ] {
        part(n / size, unit);
        n %= size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_like_python_percent_g() {
        assert_eq!(cqlsh_float_text(std::f64::consts::PI, 5), "3.14159");
        assert_eq!(cqlsh_float_text(123.456789, 5), "123.45679");
        assert_eq!(cqlsh_float_text(0.000123456, 5), "0.000123");
        assert_eq!(cqlsh_float_text(-0.05, 5), "-0.05");
        assert_eq!(cqlsh_float_text(1234567.0, 5), "1.2346e+06");
        assert_eq!(cqlsh_float_text(0.0, 5), "0");
        assert_eq!(
            timestamp_text(253_402_300_799_999),
            "9999-12-31 23:59:59.998993+0000"
        );
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999000+0000");
        assert_eq!(
            timestamp_text(1_704_164_645_678),
            "2024-01-02 03:04:05.678000+0000"
        );
        assert_eq!(decimal_text("1", -10), "1E+10");
        assert_eq!(decimal_text("1", 8), "1E-8");
        assert_eq!(decimal_text("-15", 10), "-1.5E-9");
        assert_eq!(decimal_text("12345", 2), "123.45");
        assert_eq!(decimal_text("5", 0), "5");
        assert_eq!(decimal_text("1", 6), "0.000001");
        assert_eq!(escaped_text("a\\b\nc\u{1}\u{a0}é"), "a\\\\b\\nc\\x01\\xa0é");
        assert_eq!(float_text(1.5, 5), "1.5");
        assert_eq!(float_text(1.234567, 5), "1.2346");
        assert_eq!(float_text(0.1 + 0.2, 12), "0.3");
        assert_eq!(float_text(123456.0, 5), "1.2346e+05");
        assert_eq!(float_text(0.00001, 5), "1e-05");
        assert_eq!(float_text(100.0, 12), "100");
        assert_eq!(float_text(f64::NAN, 5), "NaN");
        assert_eq!(float_text(f64::NEG_INFINITY, 5), "-Infinity");
    }

    #[test]
    fn values_read_like_cqlsh() {
        assert_eq!(value_text(&CqlValue::Boolean(true), false), "True");
        assert_eq!(
            value_text(&CqlValue::Blob(vec![0xca, 0xfe]), false),
            "0xcafe"
        );
        assert_eq!(value_text(&CqlValue::Text("it's".into()), false), "it's");
        let set = CqlValue::Set(vec![
            CqlValue::Text("a".into()),
            CqlValue::Text("it's".into()),
        ]);
        assert_eq!(value_text(&set, false), "{'a', 'it''s'}");
        let map = CqlValue::Map(vec![(CqlValue::Text("k".into()), CqlValue::Int(1))]);
        assert_eq!(value_text(&map, false), "{'k': 1}");
        let tuple = CqlValue::Tuple(vec![Some(CqlValue::Int(1)), None]);
        assert_eq!(value_text(&tuple, false), "(1, null)");
        assert_eq!(
            timestamp_text(1_700_000_000_123),
            "2023-11-14 22:13:20.123000+0000"
        );
        assert_eq!(date_text(1u32 << 31), "1970-01-01");
        assert_eq!(time_text(3_723_000_000_004), "01:02:03.000000004");
        assert_eq!(duration_text(14, 3, 5_400_000_000_000), "1y2mo3d1h30m");
        assert_eq!(duration_text(0, -2, 0), "-2d");
        assert_eq!(decimal_text("12345", 2), "123.45");
        assert_eq!(decimal_text("-5", 3), "-0.005");
        assert_eq!(
            decimal_text("7", -2),
            "7E+2",
            "as Python's Decimal prints it"
        );
    }

    #[test]
    fn tables_align_like_cqlsh() {
        let names = vec!["k".to_owned(), "name".to_owned()];
        let rows = vec![
            vec![
                Cell::of(Some(&CqlValue::Int(1))),
                Cell::of(Some(&CqlValue::Text("ann".into()))),
            ],
            vec![Cell::of(Some(&CqlValue::Int(100))), Cell::of(None)],
        ];
        assert_eq!(
            table(&names, &rows, false),
            "\n k   | name\n-----+------\n   1 |  ann\n 100 | null\n"
        );
        assert_eq!(
            expanded(&names, &rows[..1], false, 1),
            "\n@ Row 1\n------+-----\n k    | 1\n name | ann\n"
        );
        assert!(table(&names, &rows, true).contains("\x1b[1;35mk\x1b[0m"));
    }
}

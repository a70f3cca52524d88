//! CQL types: parsing their CQL names, their protocol type options, values
//! as the protocol carries them, and the byte-comparable encoding that turns
//! typed clustering values into engine keys.
//!
//! Byte-comparable encoding (one clustering component): fixed-width types
//! are big-endian with the sign bit flipped (floats: all bits flipped when
//! negative), so that `memcmp` order is CQL order; variable-width types
//! escape `0x00` as `0x00 0xFF` and end with `0x00 0x00`. Both are
//! prefix-free, so a bound on the first components covers exactly the rows
//! that share them. A `DESC` component has every byte inverted.

use std::fmt;

/// A CQL data type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CqlType {
    Ascii,
    BigInt,
    Blob,
    Boolean,
    Counter,
    Date,
    Decimal,
    Double,
    Duration,
    Float,
    Inet,
    Int,
    SmallInt,
    Text,
    Time,
    Timestamp,
    TimeUuid,
    TinyInt,
    Uuid,
    VarInt,
    List(Box<CqlType>),
    Set(Box<CqlType>),
    Map(Box<CqlType>, Box<CqlType>),
    Tuple(Vec<CqlType>),
    Frozen(Box<CqlType>),
    /// A user-defined type, resolved against its keyspace.
    UserType(std::sync::Arc<UserType>),
    /// A type name as written, before the schema resolves it to a
    /// [`CqlType::UserType`].
    UserTypeName(String),
    /// A custom type, written as a string of its server class
    /// (`'org.apache.cassandra.db.marshal.CompositeType(AsciiType,
    /// Int32Type)'`): the class with every marshal class in it fully
    /// qualified. Its values are opaque bytes to Ilion.
    Custom(String),
}

/// The definition of a user-defined type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserType {
    pub keyspace: String,
    pub name: String,
    pub fields: Vec<(String, CqlType)>,
}

impl CqlType {
    /// Calls `f` on this type and every type inside it.
    pub fn visit(&self, f: &mut impl FnMut(&CqlType)) {
        f(self);
        match self {
            CqlType::List(e) | CqlType::Set(e) | CqlType::Frozen(e) => e.visit(f),
            CqlType::Map(k, v) => {
                k.visit(f);
                v.visit(f);
            }
            CqlType::Tuple(items) => items.iter().for_each(|i| i.visit(f)),
            CqlType::UserType(udt) => udt.fields.iter().for_each(|(_, t)| t.visit(f)),
            _ => {}
        }
    }
}

/// A type name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TypeError(pub String);

impl CqlType {
    /// Parses a type as written in CQL (`int`, `frozen<map<text, int>>`).
    pub fn parse(text: &str) -> Result<CqlType, TypeError> {
        check_type_nesting(text)?;
        let mut parser = TypeParser { text, at: 0 };
        let ty = parser.parse_type()?;
        parser.skip_space();
        if parser.at != text.len() {
            return Err(TypeError(format!(
                "unexpected text after type: {:?}",
                &text[parser.at..]
            )));
        }
        Ok(ty)
    }

    /// Without `frozen<>`.
    pub fn unfrozen(&self) -> &CqlType {
        match self {
            CqlType::Frozen(inner) => inner.unfrozen(),
            other => other,
        }
    }

    /// Is this stored as one cell per part: a non-frozen collection (per
    /// element) or user-defined type (per field)?
    pub fn is_multi_cell(&self) -> bool {
        matches!(
            self,
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(_, _) | CqlType::UserType(_)
        )
    }

    /// What a multi-cell type is, in error messages.
    pub fn multi_cell_kind(&self) -> &'static str {
        match self {
            CqlType::UserType(_) => "user-defined",
            _ => "collection",
        }
    }

    /// The protocol's `[option]` id for this type (section 4.2.5.2).
    pub fn option_id(&self) -> u16 {
        match self.unfrozen() {
            CqlType::Ascii => 0x0001,
            CqlType::BigInt => 0x0002,
            CqlType::Blob => 0x0003,
            CqlType::Boolean => 0x0004,
            CqlType::Counter => 0x0005,
            CqlType::Decimal => 0x0006,
            CqlType::Double => 0x0007,
            CqlType::Float => 0x0008,
            CqlType::Int => 0x0009,
            CqlType::Timestamp => 0x000B,
            CqlType::Uuid => 0x000C,
            CqlType::Text => 0x000D,
            CqlType::VarInt => 0x000E,
            CqlType::TimeUuid => 0x000F,
            CqlType::Inet => 0x0010,
            CqlType::Date => 0x0011,
            CqlType::Time => 0x0012,
            CqlType::SmallInt => 0x0013,
            CqlType::TinyInt => 0x0014,
            CqlType::Duration => 0x0015,
            CqlType::List(_) => 0x0020,
            CqlType::Map(_, _) => 0x0021,
            CqlType::Set(_) => 0x0022,
            CqlType::Tuple(_) => 0x0031,
            CqlType::UserType(_) => 0x0030,
            CqlType::Frozen(_) | CqlType::UserTypeName(_) | CqlType::Custom(_) => 0x0000,
        }
    }

    /// Writes the protocol `[option]` for this type.
    pub fn write_option(&self, w: &mut crate::protocol::primitives::BodyWriter) {
        w.write_short(self.option_id());
        match self.unfrozen() {
            CqlType::List(e) | CqlType::Set(e) => e.write_option(w),
            CqlType::Map(k, v) => {
                k.write_option(w);
                v.write_option(w);
            }
            CqlType::Tuple(items) => {
                w.write_short(items.len() as u16);
                for item in items {
                    item.write_option(w);
                }
            }
            CqlType::UserType(udt) => {
                w.write_string(&udt.keyspace);
                w.write_string(&udt.name);
                w.write_short(udt.fields.len() as u16);
                for (name, ty) in &udt.fields {
                    w.write_string(name);
                    ty.write_option(w);
                }
            }
            CqlType::Custom(class) => w.write_string(class),
            _ => {}
        }
    }

    /// Width in bytes of a fixed-width type's values.
    pub fn fixed_width(&self) -> Option<usize> {
        Some(match self.unfrozen() {
            CqlType::Boolean | CqlType::TinyInt => 1,
            CqlType::SmallInt => 2,
            CqlType::Int | CqlType::Float | CqlType::Date => 4,
            CqlType::BigInt
            | CqlType::Counter
            | CqlType::Double
            | CqlType::Timestamp
            | CqlType::Time => 8,
            CqlType::Uuid | CqlType::TimeUuid => 16,
            _ => return None,
        })
    }

    /// Appends the byte-comparable form of `value` (a protocol-encoded value
    /// of this type) to `out` (see [`crate::comparable`]).
    pub fn encode_comparable(
        &self,
        value: &[u8],
        descending: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), TypeError> {
        crate::comparable::encode(self, value, descending, out)
    }

    /// Reads one byte-comparable component back into its protocol value;
    /// returns the value and the bytes consumed.
    pub fn decode_comparable(
        &self,
        bytes: &[u8],
        descending: bool,
    ) -> Result<(Vec<u8>, usize), TypeError> {
        crate::comparable::decode(self, bytes, descending)
    }
}

impl fmt::Display for CqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CqlType::Ascii => write!(f, "ascii"),
            CqlType::BigInt => write!(f, "bigint"),
            CqlType::Blob => write!(f, "blob"),
            CqlType::Boolean => write!(f, "boolean"),
            CqlType::Counter => write!(f, "counter"),
            CqlType::Date => write!(f, "date"),
            CqlType::Decimal => write!(f, "decimal"),
            CqlType::Double => write!(f, "double"),
            CqlType::Duration => write!(f, "duration"),
            CqlType::Float => write!(f, "float"),
            CqlType::Inet => write!(f, "inet"),
            CqlType::Int => write!(f, "int"),
            CqlType::SmallInt => write!(f, "smallint"),
            CqlType::Text => write!(f, "text"),
            CqlType::Time => write!(f, "time"),
            CqlType::Timestamp => write!(f, "timestamp"),
            CqlType::TimeUuid => write!(f, "timeuuid"),
            CqlType::TinyInt => write!(f, "tinyint"),
            CqlType::Uuid => write!(f, "uuid"),
            CqlType::VarInt => write!(f, "varint"),
            CqlType::List(e) => write!(f, "list<{e}>"),
            CqlType::Set(e) => write!(f, "set<{e}>"),
            CqlType::Map(k, v) => write!(f, "map<{k}, {v}>"),
            CqlType::Tuple(items) => {
                write!(f, "tuple<")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, ">")
            }
            CqlType::Frozen(inner) => write!(f, "frozen<{inner}>"),
            CqlType::UserType(udt) => write!(f, "{}", crate::schema::quote(&udt.name)),
            CqlType::UserTypeName(name) => write!(f, "{}", crate::schema::quote(name)),
            CqlType::Custom(class) => write!(f, "'{}'", class.replace('\'', "''")),
        }
    }
}

/// How deeply type parameters may nest (`frozen<list<...>>`): parsing,
/// printing and decoding a type recurse once per level, so a deeper type
/// from a client could exhaust a request thread's stack.
pub const TYPE_NESTING_DEPTH_MAX: usize = 64;

/// Refuses a type whose `<` nest deeper than [`TYPE_NESTING_DEPTH_MAX`],
/// before anything recurses over it.
fn check_type_nesting(text: &str) -> Result<(), TypeError> {
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '<' => {
                depth += 1;
                if depth > TYPE_NESTING_DEPTH_MAX {
                    return Err(TypeError(format!(
                        "type parameters nest deeper than {TYPE_NESTING_DEPTH_MAX} levels"
                    )));
                }
            }
            '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Where Cassandra's marshal classes live.
const MARSHAL_PACKAGE: &str = "org.apache.cassandra.db.marshal.";

/// The marshal classes a custom type string may name (Cassandra's own;
/// it cannot load others either).
const MARSHAL_CLASSES: [&str; 34] = [
    "AsciiType",
    "BooleanType",
    "ByteType",
    "BytesType",
    "CollectionType",
    "ColumnToCollectionType",
    "CompositeType",
    "CounterColumnType",
    "DateType",
    "DecimalType",
    "DoubleType",
    "DurationType",
    "DynamicCompositeType",
    "EmptyType",
    "FloatType",
    "FrozenType",
    "InetAddressType",
    "Int32Type",
    "IntegerType",
    "LexicalUUIDType",
    "ListType",
    "LongType",
    "MapType",
    "PartitionerDefinedOrder",
    "ReversedType",
    "SetType",
    "ShortType",
    "SimpleDateType",
    "TimeType",
    "TimeUUIDType",
    "TimestampType",
    "TupleType",
    "UTF8Type",
    "UUIDType",
];

/// A type written as a class string: a native type when the class is one
/// (`'Int32Type'` is `int`), else [`CqlType::Custom`] with every class in it
/// fully qualified, as Cassandra stores it.
fn custom_type(class: &str) -> Result<CqlType, TypeError> {
    let class = class.trim();
    if class.is_empty() {
        return Err(TypeError("expected a type in \"\"".into()));
    }
    let simple = class.strip_prefix(MARSHAL_PACKAGE).unwrap_or(class);
    let native = match simple {
        "AsciiType" => Some(CqlType::Ascii),
        "LongType" => Some(CqlType::BigInt),
        "BytesType" => Some(CqlType::Blob),
        "BooleanType" => Some(CqlType::Boolean),
        "CounterColumnType" => Some(CqlType::Counter),
        "SimpleDateType" => Some(CqlType::Date),
        "DecimalType" => Some(CqlType::Decimal),
        "DoubleType" => Some(CqlType::Double),
        "DurationType" => Some(CqlType::Duration),
        "FloatType" => Some(CqlType::Float),
        "InetAddressType" => Some(CqlType::Inet),
        "Int32Type" => Some(CqlType::Int),
        "ShortType" => Some(CqlType::SmallInt),
        "UTF8Type" => Some(CqlType::Text),
        "TimeType" => Some(CqlType::Time),
        "TimestampType" => Some(CqlType::Timestamp),
        "TimeUUIDType" => Some(CqlType::TimeUuid),
        "ByteType" => Some(CqlType::TinyInt),
        "UUIDType" => Some(CqlType::Uuid),
        "IntegerType" => Some(CqlType::VarInt),
        _ => None,
    };
    if let Some(native) = native {
        return Ok(native);
    }
    Ok(CqlType::Custom(qualify_classes(class)?))
}

/// Qualifies every class name in a class string with the marshal package
/// (names with a `.` are left as written); `alias=>Class` pairs and
/// parameters in parentheses keep their shape, spaces are dropped.
fn qualify_classes(class: &str) -> Result<String, TypeError> {
    let mut out = String::with_capacity(class.len() + 64);
    let mut name = String::new();
    let flush = |name: &mut String, out: &mut String| -> Result<(), TypeError> {
        if !name.is_empty() {
            let simple = name.strip_prefix(MARSHAL_PACKAGE).unwrap_or(name);
            if !MARSHAL_CLASSES.contains(&simple) {
                return Err(TypeError(format!(
                    "Unable to find abstract-type class '{name}' (Ilion knows Cassandra's marshal classes only)"
                )));
            }
            out.push_str(MARSHAL_PACKAGE);
            out.push_str(simple);
            name.clear();
        }
        Ok(())
    };
    let unbalanced = || TypeError(format!("unbalanced parentheses in custom type {class:?}"));
    let mut depth = 0usize;
    let mut chars = class.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | ')' | ',' => {
                flush(&mut name, &mut out)?;
                match c {
                    '(' if depth >= TYPE_NESTING_DEPTH_MAX => {
                        return Err(TypeError(format!(
                            "type parameters nest deeper than {TYPE_NESTING_DEPTH_MAX} levels"
                        )))
                    }
                    '(' => depth += 1,
                    ')' => depth = depth.checked_sub(1).ok_or_else(unbalanced)?,
                    _ => {}
                }
                out.push(c);
            }
            '=' if chars.peek() == Some(&'>') => {
                chars.next();
                // What came before was an alias, not a class.
                out.push_str(&name);
                name.clear();
                out.push_str("=>");
            }
            c if c.is_whitespace() => {}
            c if c.is_alphanumeric() || c == '.' || c == '_' || c == '$' => name.push(c),
            other => {
                return Err(TypeError(format!(
                    "unexpected {other:?} in custom type {class:?}"
                )))
            }
        }
    }
    flush(&mut name, &mut out)?;
    if depth != 0 {
        return Err(unbalanced());
    }
    Ok(out)
}

struct TypeParser<'a> {
    text: &'a str,
    at: usize,
}

impl TypeParser<'_> {
    fn skip_space(&mut self) {
        while let Some(c) = self.text[self.at..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.at += c.len_utf8();
        }
    }

    fn word(&mut self) -> String {
        self.skip_space();
        let rest = &self.text[self.at..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.at += len;
        rest[..len].to_ascii_lowercase()
    }

    fn expect_char(&mut self, c: char) -> Result<(), TypeError> {
        self.skip_space();
        if self.text[self.at..].starts_with(c) {
            self.at += c.len_utf8();
            Ok(())
        } else {
            Err(TypeError(format!("expected '{c}' in type {:?}", self.text)))
        }
    }

    /// A `'string'` (`''` inside is one quote).
    fn string(&mut self) -> Result<String, TypeError> {
        self.delimited('\'', "custom type string")
    }

    /// A `"quoted"` name, case kept (`""` inside is one quote).
    fn quoted(&mut self) -> Result<String, TypeError> {
        self.delimited('"', "quoted name")
    }

    /// Text between two `quote`s from here, a doubled quote inside standing
    /// for one.
    fn delimited(&mut self, quote: char, what: &str) -> Result<String, TypeError> {
        let mut text = String::new();
        let mut chars = self.text[self.at + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c != quote {
                text.push(c);
                continue;
            }
            if self.text[self.at + 1 + i + 1..].starts_with(quote) {
                text.push(quote);
                chars.next();
                continue;
            }
            self.at += 1 + i + 1;
            return Ok(text);
        }
        Err(TypeError(format!(
            "unterminated {what} in type {:?}",
            self.text
        )))
    }

    fn parse_type(&mut self) -> Result<CqlType, TypeError> {
        self.skip_space();
        if self.text[self.at..].starts_with('"') {
            // A quoted name is always a user type's, even "int".
            return Ok(CqlType::UserTypeName(self.quoted()?));
        }
        if self.text[self.at..].starts_with('\'') {
            let class = self.string()?;
            return custom_type(&class);
        }
        let name = self.word();
        Ok(match name.as_str() {
            "ascii" => CqlType::Ascii,
            "bigint" => CqlType::BigInt,
            "blob" => CqlType::Blob,
            "boolean" => CqlType::Boolean,
            "counter" => CqlType::Counter,
            "date" => CqlType::Date,
            "decimal" => CqlType::Decimal,
            "double" => CqlType::Double,
            "duration" => CqlType::Duration,
            "float" => CqlType::Float,
            "inet" => CqlType::Inet,
            "int" => CqlType::Int,
            "smallint" => CqlType::SmallInt,
            "text" | "varchar" => CqlType::Text,
            "time" => CqlType::Time,
            "timestamp" => CqlType::Timestamp,
            "timeuuid" => CqlType::TimeUuid,
            "tinyint" => CqlType::TinyInt,
            "uuid" => CqlType::Uuid,
            "varint" => CqlType::VarInt,
            "list" | "set" | "frozen" => {
                self.expect_char('<')?;
                let inner = self.parse_type()?;
                self.expect_char('>')?;
                match name.as_str() {
                    "list" => CqlType::List(Box::new(inner)),
                    "set" => CqlType::Set(Box::new(inner)),
                    _ => CqlType::Frozen(Box::new(inner)),
                }
            }
            "map" => {
                self.expect_char('<')?;
                let key = self.parse_type()?;
                self.expect_char(',')?;
                let value = self.parse_type()?;
                self.expect_char('>')?;
                CqlType::Map(Box::new(key), Box::new(value))
            }
            "tuple" => {
                self.expect_char('<')?;
                let mut items = vec![self.parse_type()?];
                loop {
                    self.skip_space();
                    if self.text[self.at..].starts_with('>') {
                        self.at += 1;
                        break;
                    }
                    self.expect_char(',')?;
                    if items.len() >= u16::MAX as usize {
                        return Err(TypeError(format!(
                            "a tuple has at most {} components (the protocol counts them in 16 bits)",
                            u16::MAX
                        )));
                    }
                    items.push(self.parse_type()?);
                }
                CqlType::Tuple(items)
            }
            "" => return Err(TypeError(format!("expected a type in {:?}", self.text))),
            other => CqlType::UserTypeName(other.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn parses_and_prints_types() -> TestResult {
        for text in [
            "int",
            "frozen<map<text, list<int>>>",
            "tuple<int, text>",
            "set<uuid>",
        ] {
            assert_eq!(CqlType::parse(text)?.to_string(), text);
        }
        assert_eq!(CqlType::parse("VARCHAR")?, CqlType::Text);
        assert!(CqlType::parse("map<int>").is_err());
        // Other names are user-defined types, resolved later by the schema.
        assert_eq!(
            CqlType::parse("frozen<Address>")?,
            CqlType::Frozen(Box::new(CqlType::UserTypeName("address".into())))
        );
        Ok(())
    }

    fn comparable(ty: &CqlType, value: &[u8], desc: bool) -> Result<Vec<u8>, TypeError> {
        let mut out = Vec::new();
        ty.encode_comparable(value, desc, &mut out)?;
        Ok(out)
    }

    #[test]
    fn comparable_encoding_orders_like_cql() -> TestResult {
        let ints: Vec<i32> = vec![i32::MIN, -5, -1, 0, 1, 7, i32::MAX];
        let enc: Vec<Vec<u8>> = ints
            .iter()
            .map(|i| comparable(&CqlType::Int, &i.to_be_bytes(), false))
            .collect::<Result<_, _>>()?;
        assert!(enc.windows(2).all(|w| w[0] < w[1]));
        let desc: Vec<Vec<u8>> = ints
            .iter()
            .map(|i| comparable(&CqlType::Int, &i.to_be_bytes(), true))
            .collect::<Result<_, _>>()?;
        assert!(desc.windows(2).all(|w| w[0] > w[1]));
        let doubles = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-9, 3.0, f64::INFINITY];
        let enc: Vec<Vec<u8>> = doubles
            .iter()
            .map(|d| comparable(&CqlType::Double, &d.to_be_bytes(), false))
            .collect::<Result<_, _>>()?;
        assert!(enc.windows(2).all(|w| w[0] <= w[1]));
        let texts = ["", "a", "a\0", "a\0b", "ab", "b"];
        let enc: Vec<Vec<u8>> = texts
            .iter()
            .map(|t| comparable(&CqlType::Text, t.as_bytes(), false))
            .collect::<Result<_, _>>()?;
        assert!(enc.windows(2).all(|w| w[0] < w[1]), "{enc:?}");
        for (ty, value) in [
            (CqlType::Text, &b"a\0b"[..]),
            (CqlType::Double, &(-2.5f64).to_be_bytes()[..]),
            (CqlType::BigInt, &(-9i64).to_be_bytes()[..]),
            (CqlType::VarInt, &[0xff, 0x7f][..]),
            (CqlType::VarInt, &[][..]),
        ] {
            for desc in [false, true] {
                let bytes = comparable(&ty, value, desc)?;
                let (back, used) = ty.decode_comparable(&bytes, desc)?;
                assert_eq!((back.as_slice(), used), (value, bytes.len()));
            }
        }
        Ok(())
    }

    /// A protocol `[bytes]` (None: null).
    fn item(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn tuple(parts: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            item(&mut out, *part);
        }
        out
    }

    fn collection(elements: &[&[u8]]) -> Vec<u8> {
        let mut out = (elements.len() as i32).to_be_bytes().to_vec();
        for element in elements {
            item(&mut out, Some(element));
        }
        out
    }

    /// Values listed in CQL's order must encode in increasing byte order,
    /// decreasing when descending, and decode back to themselves.
    fn assert_orders(ty: &CqlType, values: &[Vec<u8>]) -> TestResult {
        for desc in [false, true] {
            let encoded: Vec<Vec<u8>> = values
                .iter()
                .map(|v| comparable(ty, v, desc))
                .collect::<Result<_, _>>()?;
            for (pair, values) in encoded.windows(2).zip(values.windows(2)) {
                let ordered = if desc {
                    pair[0] > pair[1]
                } else {
                    pair[0] < pair[1]
                };
                assert!(
                    ordered,
                    "{ty}: {:?} before {:?} (desc {desc})",
                    values[0], values[1]
                );
            }
            for (value, bytes) in values.iter().zip(&encoded) {
                let mut followed = bytes.clone();
                followed.extend_from_slice(&[0x42, 0x00]);
                let (back, used) = ty.decode_comparable(&followed, desc)?;
                assert_eq!((&back, used), (value, bytes.len()), "{ty} round trip");
            }
        }
        Ok(())
    }

    #[test]
    fn composite_values_order_component_by_component() -> TestResult {
        let int = |i: i32| i.to_be_bytes().to_vec();
        // Varints: numerically, whatever their length.
        let varints: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x80, 0x00, 0x00],
            vec![0xff, 0x00],
            vec![0x80],
            vec![0xff],
            vec![0x00],
            vec![0x01],
            vec![0x7f],
            vec![0x00, 0x80],
            vec![0x01, 0x00, 0x00],
        ];
        assert_orders(&CqlType::VarInt, &varints)?;
        // Tuples: by the first component, then the next; null first; a
        // negative int before a positive; a shorter text before a longer one
        // only when it is a prefix.
        let ty = CqlType::parse("tuple<int, text>")?;
        let tuples = vec![
            tuple(&[None, Some(b"z")]),
            tuple(&[Some(&int(-5)), Some(b"b")]),
            tuple(&[Some(&int(1)), None]),
            tuple(&[Some(&int(1)), Some(b"")]),
            tuple(&[Some(&int(1)), Some(b"a")]),
            tuple(&[Some(&int(1)), Some(b"aa")]),
            tuple(&[Some(&int(1)), Some(b"b")]),
            tuple(&[Some(&int(2)), Some(b"a")]),
        ];
        assert_orders(&ty, &tuples)?;
        // Frozen lists and sets: element by element, a prefix first.
        let ty = CqlType::parse("frozen<list<int>>")?;
        let lists = vec![
            collection(&[]),
            collection(&[&int(-3)]),
            collection(&[&int(1)]),
            collection(&[&int(1), &int(-7)]),
            collection(&[&int(1), &int(2)]),
            collection(&[&int(2)]),
        ];
        assert_orders(&ty, &lists)?;
        // Frozen maps: key, then value, entry by entry ({1: 'v1', 2: 'v2'}
        // before {3: 'v3'}, as the driver suite's map of UDTs expects).
        let ty = CqlType::parse("frozen<map<int, text>>")?;
        let map = |entries: &[(i32, &[u8])]| {
            let mut out = (entries.len() as i32).to_be_bytes().to_vec();
            for (k, v) in entries {
                item(&mut out, Some(&int(*k)));
                item(&mut out, Some(v));
            }
            out
        };
        let maps = vec![
            map(&[]),
            map(&[(1, b"v1")]),
            map(&[(1, b"v1"), (2, b"v2")]),
            map(&[(1, b"v2")]),
            map(&[(3, b"v3")]),
        ];
        assert_orders(&ty, &maps)?;
        // Nesting: a tuple holding a frozen list.
        let ty = CqlType::parse("tuple<frozen<list<int>>, int>")?;
        let nested = vec![
            tuple(&[Some(&collection(&[&int(1)])), Some(&int(9))]),
            tuple(&[Some(&collection(&[&int(1), &int(0)])), Some(&int(0))]),
            tuple(&[Some(&collection(&[&int(2)])), Some(&int(-1))]),
        ];
        assert_orders(&ty, &nested)?;
        // Timeuuids by time, whatever their time_low (which wraps every
        // seven minutes); at one time, by the rest as signed bytes.
        let at = |millis: i64, tail: u8| {
            let mut id = crate::values::edge_timeuuid(millis, false);
            id[8..].copy_from_slice(&[tail; 8]);
            id.to_vec()
        };
        let timeuuids = vec![
            at(1_000, 0x80),
            at(1_000, 0xff),
            at(1_000, 0x00),
            at(1_000, 0x7f),
            at(1_001, 0x80),
            at(430_000, 0x80),
            at(10_000_000, 0x80),
            at(1_700_000_000_000, 0x80),
        ];
        assert_orders(&CqlType::TimeUuid, &timeuuids)?;
        // Uuids: by version first; random (v4) ones by their bytes.
        let mut v4 = [0x11u8; 16];
        v4[6] = 0x40;
        let mut v4b = v4;
        v4b[0] = 0x12;
        assert_orders(
            &CqlType::Uuid,
            &[at(5, 0x80), at(9, 0x80), v4.to_vec(), v4b.to_vec()],
        )?;
        // Damage is an error, not a panic.
        let ty = CqlType::parse("frozen<list<int>>")?;
        assert!(comparable(&ty, &[0, 0, 0, 5, 0, 0], false).is_err());
        assert!(ty.decode_comparable(&[1, 0x80], false).is_err());
        assert!(CqlType::VarInt
            .decode_comparable(&[2, 0xff, 0xff, 0xff, 0xff], false)
            .is_err());
        Ok(())
    }
}

//! The native protocol's notation (`[int]`, `[short]`, `[string]`,
//! `[long string]`, `[bytes]`, `[value]`, `[string map]`, ...) as readers
//! over a request body and writers into a response body, named after the
//! spec (section 3 of `native_protocol_v4.spec`).
//!
//! Readers never panic: a body too short for what it claims is a
//! [`ProtocolViolation`], which the connection answers with a ProtocolError.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

/// A request body that does not follow the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolViolation(pub String);

fn violation<T>(what: impl Into<String>) -> Result<T, ProtocolViolation> {
    Err(ProtocolViolation(what.into()))
}

/// A `[value]`: bytes, null (-1) or not set (-2, v4+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Set(Bytes),
    Null,
    NotSet,
}

/// Reads spec notation from a request body.
#[derive(Debug, Clone)]
pub struct BodyReader {
    body: Bytes,
}

impl BodyReader {
    pub fn new(body: Bytes) -> BodyReader {
        BodyReader { body }
    }

    pub fn remaining(&self) -> usize {
        self.body.len()
    }

    fn take(&mut self, len: usize, what: &str) -> Result<Bytes, ProtocolViolation> {
        if self.body.len() < len {
            return violation(format!(
                "not enough bytes to read {what}: need {len}, have {}",
                self.body.len()
            ));
        }
        Ok(self.body.split_to(len))
    }

    pub fn read_byte(&mut self) -> Result<u8, ProtocolViolation> {
        let b = self.take(1, "a byte")?;
        Ok(b.first().copied().unwrap_or(0))
    }

    pub fn read_short(&mut self) -> Result<u16, ProtocolViolation> {
        let b = self.take(2, "a [short]")?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn read_int(&mut self) -> Result<i32, ProtocolViolation> {
        let b = self.take(4, "an [int]")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_long(&mut self) -> Result<i64, ProtocolViolation> {
        let b = self.take(8, "a [long]")?;
        let mut array = [0u8; 8];
        array.copy_from_slice(&b);
        Ok(i64::from_be_bytes(array))
    }

    pub fn read_string(&mut self) -> Result<String, ProtocolViolation> {
        let len = self.read_short()? as usize;
        let b = self.take(len, "a [string]")?;
        String::from_utf8(b.to_vec()).or_else(|_| violation("a [string] is not valid UTF-8"))
    }

    pub fn read_long_string(&mut self) -> Result<String, ProtocolViolation> {
        let len = self.read_int()?;
        if len < 0 {
            return violation(format!("negative [long string] length {len}"));
        }
        let b = self.take(len as usize, "a [long string]")?;
        String::from_utf8(b.to_vec()).or_else(|_| violation("a [long string] is not valid UTF-8"))
    }

    pub fn read_short_bytes(&mut self) -> Result<Bytes, ProtocolViolation> {
        let len = self.read_short()? as usize;
        self.take(len, "[short bytes]")
    }

    /// `[bytes]`: `None` for a negative length (null).
    pub fn read_bytes(&mut self) -> Result<Option<Bytes>, ProtocolViolation> {
        let len = self.read_int()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize, "[bytes]").map(Some)
    }

    pub fn read_value(&mut self) -> Result<Value, ProtocolViolation> {
        let len = self.read_int()?;
        match len {
            -1 => Ok(Value::Null),
            -2 => Ok(Value::NotSet),
            n if n < 0 => violation(format!("invalid [value] length {n}")),
            n => self.take(n as usize, "a [value]").map(Value::Set),
        }
    }

    pub fn read_string_list(&mut self) -> Result<Vec<String>, ProtocolViolation> {
        let n = self.read_short()?;
        (0..n).map(|_| self.read_string()).collect()
    }

    pub fn read_string_map(&mut self) -> Result<HashMap<String, String>, ProtocolViolation> {
        let n = self.read_short()?;
        let mut map = HashMap::with_capacity(usize::from(n).min(64));
        for _ in 0..n {
            let key = self.read_string()?;
            let value = self.read_string()?;
            map.insert(key, value);
        }
        Ok(map)
    }

    pub fn read_bytes_map(&mut self) -> Result<HashMap<String, Option<Bytes>>, ProtocolViolation> {
        let n = self.read_short()?;
        let mut map = HashMap::with_capacity(usize::from(n).min(64));
        for _ in 0..n {
            let key = self.read_string()?;
            let value = self.read_bytes()?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// Writes spec notation into a response body.
#[derive(Debug, Default)]
pub struct BodyWriter {
    pub buf: BytesMut,
}

impl BodyWriter {
    pub fn new() -> BodyWriter {
        BodyWriter::default()
    }

    pub fn write_byte(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub fn write_short(&mut self, v: u16) {
        self.buf.put_u16(v);
    }

    pub fn write_int(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn write_long(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    /// `[string]`; text longer than a short can hold is cut at a character boundary.
    pub fn write_string(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.write_short(end as u16);
        self.buf.put_slice(&s.as_bytes()[..end]);
    }

    pub fn write_long_string(&mut self, s: &str) {
        self.write_int(s.len() as i32);
        self.buf.put_slice(s.as_bytes());
    }

    pub fn write_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.write_int(-1),
            Some(b) => {
                self.write_int(b.len() as i32);
                self.buf.put_slice(b);
            }
        }
    }

    pub fn write_short_bytes(&mut self, b: &[u8]) {
        self.write_short(b.len() as u16);
        self.buf.put_slice(b);
    }

    pub fn write_string_list(&mut self, list: &[&str]) {
        self.write_short(list.len() as u16);
        for s in list {
            self.write_string(s);
        }
    }

    pub fn write_string_multimap(&mut self, map: &[(&str, Vec<&str>)]) {
        self.write_short(map.len() as u16);
        for (key, values) in map {
            self.write_string(key);
            self.write_string_list(values);
        }
    }

    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn round_trips() -> TestResult {
        let mut w = BodyWriter::new();
        w.write_string("καλημέρα");
        w.write_long_string("SELECT * FROM t");
        w.write_bytes(None);
        w.write_bytes(Some(b"ab"));
        w.write_string_list(&["a", "b"]);
        let mut r = BodyReader::new(w.into_bytes());
        assert_eq!(r.read_string()?, "καλημέρα");
        assert_eq!(r.read_long_string()?, "SELECT * FROM t");
        assert_eq!(r.read_bytes()?, None);
        assert_eq!(r.read_bytes()?.as_deref(), Some(&b"ab"[..]));
        assert_eq!(r.read_string_list()?, vec!["a", "b"]);
        assert_eq!(r.remaining(), 0);
        Ok(())
    }

    #[test]
    fn short_bodies_are_violations_not_panics() {
        let mut r = BodyReader::new(Bytes::from_static(&[0, 5, b'a']));
        assert!(r.read_string().is_err());
        let mut r = BodyReader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xf0]));
        assert!(r.read_value().is_err());
        let mut r = BodyReader::new(Bytes::from_static(&[0, 2, 0xc3, 0x28]));
        assert!(r.read_string().is_err(), "bad UTF-8");
    }
}

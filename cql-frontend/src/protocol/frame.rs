//! Frames of the native protocol (v3, v4, and v5's envelopes, which travel
//! inside segments after STARTUP: see [`crate::protocol::segment`]): a
//! 9-byte header `version, flags, stream (i16), opcode, length (i32)`
//! followed by `length` bytes of body (section 2 of the v4 spec).
//!
//! A header is checked completely before its body is read: an unknown
//! opcode, a response-direction version byte, or a length over
//! [`FRAME_BODY_BYTES_MAX`] is a protocol violation that closes the
//! connection, so a peer cannot make the node allocate what it declares.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::primitives::ProtocolViolation;

pub const HEADER_BYTES: usize = 9;
/// Largest body accepted (Cassandra's `native_transport_max_frame_size`, 16 MiB).
pub const FRAME_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Versions this node speaks.
pub const SUPPORTED_VERSIONS: [u8; 4] = [3, 4, 5, BETA_VERSION];
/// The beta version (Cassandra 5.0's 6/v6-beta): a client must set
/// [`flags::USE_BETA`] on every frame to speak it; it is v5 otherwise.
pub const BETA_VERSION: u8 = 6;
/// The version used to answer a request in a version we do not speak.
pub const FALLBACK_VERSION: u8 = 4;

pub mod flags {
    pub const COMPRESSION: u8 = 0x01;
    pub const TRACING: u8 = 0x02;
    pub const CUSTOM_PAYLOAD: u8 = 0x04;
    pub const WARNING: u8 = 0x08;
    pub const USE_BETA: u8 = 0x10;
}

/// Message kinds (section 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Error = 0x00,
    Startup = 0x01,
    Ready = 0x02,
    Authenticate = 0x03,
    Options = 0x05,
    Supported = 0x06,
    Query = 0x07,
    Result = 0x08,
    Prepare = 0x09,
    Execute = 0x0A,
    Register = 0x0B,
    Event = 0x0C,
    Batch = 0x0D,
    AuthChallenge = 0x0E,
    AuthResponse = 0x0F,
    AuthSuccess = 0x10,
}

impl Opcode {
    pub fn from_byte(b: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match b {
            0x00 => Error,
            0x01 => Startup,
            0x02 => Ready,
            0x03 => Authenticate,
            0x05 => Options,
            0x06 => Supported,
            0x07 => Query,
            0x08 => Result,
            0x09 => Prepare,
            0x0A => Execute,
            0x0B => Register,
            0x0C => Event,
            0x0D => Batch,
            0x0E => AuthChallenge,
            0x0F => AuthResponse,
            0x10 => AuthSuccess,
            _ => return None,
        })
    }
}

/// A request frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: u8,
    pub flags: u8,
    pub stream: i16,
    pub opcode: Opcode,
    pub body_len: usize,
}

/// What the first bytes of a buffer say.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    /// Fewer than 9 bytes so far.
    Incomplete,
    /// A client speaking a version we do not: answer and close.
    UnsupportedVersion {
        version: u8,
        stream: i16,
    },
    Ok(FrameHeader),
}

/// Checks a request header at the start of `buf` without consuming it.
pub fn check_header(buf: &[u8]) -> Result<HeaderCheck, ProtocolViolation> {
    let Some(header) = buf.get(..HEADER_BYTES) else {
        return Ok(HeaderCheck::Incomplete);
    };
    let mut h = header;
    let version_byte = h.get_u8();
    let flags = h.get_u8();
    let stream = h.get_i16();
    let opcode_byte = h.get_u8();
    let length = h.get_i32();
    if version_byte & 0x80 != 0 {
        return Err(ProtocolViolation(format!(
            "frame has the response direction bit set (version byte {version_byte:#04x})"
        )));
    }
    let version = version_byte & 0x7f;
    let beta_unflagged = version == BETA_VERSION && flags & flags::USE_BETA == 0;
    if !SUPPORTED_VERSIONS.contains(&version) || beta_unflagged {
        return Ok(HeaderCheck::UnsupportedVersion { version, stream });
    }
    let opcode = Opcode::from_byte(opcode_byte)
        .ok_or_else(|| ProtocolViolation(format!("unknown opcode {opcode_byte:#04x}")))?;
    if length < 0 || length as usize > FRAME_BODY_BYTES_MAX {
        return Err(ProtocolViolation(format!(
            "frame body length {length} is outside 0..={FRAME_BODY_BYTES_MAX}"
        )));
    }
    Ok(HeaderCheck::Ok(FrameHeader {
        version,
        flags,
        stream,
        opcode,
        body_len: length as usize,
    }))
}

/// A response frame ready to be written.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    pub version: u8,
    pub flags: u8,
    pub stream: i16,
    pub opcode: Opcode,
    pub body: Bytes,
}

impl ResponseFrame {
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER_BYTES + self.body.len());
        out.put_u8(0x80 | self.version);
        out.put_u8(self.flags);
        out.put_i16(self.stream);
        out.put_u8(self.opcode as u8);
        out.put_i32(self.body.len() as i32);
        out.put_slice(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn headers_are_checked_before_bodies() -> TestResult {
        assert_eq!(check_header(&[4, 0, 0])?, HeaderCheck::Incomplete);
        let ok = check_header(&[4, 0, 0, 1, 5, 0, 0, 0, 0])?;
        assert!(matches!(
            ok,
            HeaderCheck::Ok(FrameHeader {
                opcode: Opcode::Options,
                stream: 1,
                ..
            })
        ));
        assert!(matches!(
            check_header(&[6, 0, 0, 9, 5, 0, 0, 0, 0])?,
            HeaderCheck::UnsupportedVersion {
                version: 6,
                stream: 9
            }
        ));
        assert!(
            check_header(&[4, 0, 0, 1, 0x42, 0, 0, 0, 0]).is_err(),
            "unknown opcode"
        );
        assert!(
            check_header(&[4, 0, 0, 1, 7, 0x7f, 0xff, 0xff, 0xff]).is_err(),
            "huge length"
        );
        assert!(
            check_header(&[4, 0, 0, 1, 7, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "negative length"
        );
        assert!(
            check_header(&[0x84, 0, 0, 1, 7, 0, 0, 0, 0]).is_err(),
            "response bit"
        );
        Ok(())
    }
}

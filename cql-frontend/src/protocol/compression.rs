//! Frame body compression negotiated in STARTUP (section 5 of the v4 spec).
//!
//! - LZ4: the uncompressed length as a big-endian `u32`, then one LZ4 block.
//! - Snappy: one raw Snappy block (its own varint length header).
//!
//! A declared length over [`FRAME_BODY_BYTES_MAX`] is refused before
//! anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::frame::FRAME_BODY_BYTES_MAX;
use crate::protocol::primitives::ProtocolViolation;

/// Algorithms a client may ask for, as SUPPORTED lists them.
pub const ALGORITHMS: [&str; 2] = ["lz4", "snappy"];

/// A compression algorithm a connection negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Lz4,
    Snappy,
}

impl Compression {
    /// The algorithm named in STARTUP's `COMPRESSION` option.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name.to_ascii_lowercase().as_str() {
            "lz4" => Some(Compression::Lz4),
            "snappy" => Some(Compression::Snappy),
            _ => None,
        }
    }

    pub fn compress(self, body: &[u8]) -> Bytes {
        match self {
            Compression::Lz4 => lz4_compress(body),
            Compression::Snappy => snappy_compress(body),
        }
    }

    pub fn decompress(self, body: &[u8]) -> Result<Bytes, ProtocolViolation> {
        match self {
            Compression::Lz4 => lz4_decompress(body),
            Compression::Snappy => snappy_decompress(body),
        }
    }
}

pub fn lz4_compress(body: &[u8]) -> Bytes {
    let compressed = lz4_flex::block::compress(body);
    let mut out = BytesMut::with_capacity(4 + compressed.len());
    out.put_u32(body.len() as u32);
    out.put_slice(&compressed);
    out.freeze()
}

pub fn lz4_decompress(body: &[u8]) -> Result<Bytes, ProtocolViolation> {
    let Some((length, block)) = body.split_first_chunk::<4>() else {
        return Err(ProtocolViolation(
            "compressed body shorter than its length prefix".into(),
        ));
    };
    let length = u32::from_be_bytes(*length) as usize;
    if length > FRAME_BODY_BYTES_MAX {
        return Err(ProtocolViolation(format!(
            "compressed body declares {length} bytes, over the limit of {FRAME_BODY_BYTES_MAX}"
        )));
    }
    let bytes = lz4_flex::block::decompress(block, length)
        .map_err(|e| ProtocolViolation(format!("LZ4 body does not decompress: {e}")))?;
    if bytes.len() != length {
        return Err(ProtocolViolation(
            "LZ4 body is shorter than it declares".into(),
        ));
    }
    Ok(Bytes::from(bytes))
}

fn snappy_compress(body: &[u8]) -> Bytes {
    // Compression of a buffer in memory fails only past snap's own limit
    // (about 4 GiB), far above any frame we write; an empty body is the fallback.
    match snap::raw::Encoder::new().compress_vec(body) {
        Ok(compressed) => Bytes::from(compressed),
        Err(_) => Bytes::new(),
    }
}

fn snappy_decompress(body: &[u8]) -> Result<Bytes, ProtocolViolation> {
    let length = snap::raw::decompress_len(body)
        .map_err(|e| ProtocolViolation(format!("Snappy body has no valid length header: {e}")))?;
    if length > FRAME_BODY_BYTES_MAX {
        return Err(ProtocolViolation(format!(
            "compressed body declares {length} bytes, over the limit of {FRAME_BODY_BYTES_MAX}"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map(Bytes::from)
        .map_err(|e| ProtocolViolation(format!("Snappy body does not decompress: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn round_trip_and_refusals() -> TestResult {
        let body = b"SELECT * FROM system.local WHERE key = 'local'".repeat(20);
        for algorithm in [Compression::Lz4, Compression::Snappy] {
            let compressed = algorithm.compress(&body);
            assert!(compressed.len() < body.len(), "{algorithm:?} compresses");
            assert_eq!(algorithm.decompress(&compressed)?.as_ref(), body.as_slice());
            let mut truncated = compressed.to_vec();
            truncated.truncate(truncated.len() / 2);
            assert!(algorithm.decompress(&truncated).is_err(), "{algorithm:?}");
        }
        assert!(lz4_decompress(&[0, 0]).is_err());
        assert!(lz4_decompress(&[0x7f, 0xff, 0xff, 0xff, 0x10]).is_err());
        // A Snappy varint header declaring 256 MiB.
        assert!(snappy_decompress(&[0x80, 0x80, 0x80, 0x80, 0x01, 0]).is_err());
        assert_eq!(Compression::from_name("LZ4"), Some(Compression::Lz4));
        assert_eq!(Compression::from_name("zstd"), None);
        Ok(())
    }
}

//! Frame body compression negotiated in STARTUP. LZ4 as the native protocol
//! defines it: the uncompressed length as a big-endian `u32`, then one LZ4
//! block. A declared length over [`FRAME_BODY_BYTES_MAX`] is refused before
//! anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::frame::FRAME_BODY_BYTES_MAX;
use crate::protocol::primitives::ProtocolViolation;

/// Algorithms a client may ask for, as SUPPORTED lists them.
pub const ALGORITHMS: [&str; 1] = ["lz4"];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let body = b"SELECT * FROM system.local WHERE key = 'local'".repeat(20);
        assert_eq!(
            lz4_decompress(&lz4_compress(&body)).unwrap().as_ref(),
            body.as_slice()
        );
        assert!(lz4_decompress(&[0, 0]).is_err());
        assert!(lz4_decompress(&[0x7f, 0xff, 0xff, 0xff, 0x10]).is_err());
        let mut garbage = lz4_compress(&body).to_vec();
        garbage.truncate(garbage.len() / 2);
        assert!(lz4_decompress(&garbage).is_err());
    }
}

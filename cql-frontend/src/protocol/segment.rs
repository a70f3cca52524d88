//! Protocol v5's segment framing (the "frame" layer of the v5 spec, beneath
//! its message envelopes): after the STARTUP exchange every byte of a v5
//! connection travels in segments.
//!
//! A segment is a little-endian header — the payload length (17 bits), with
//! LZ4 the uncompressed length (17 bits, 0 meaning "stored uncompressed"),
//! then the self-contained flag — followed by a CRC24 of the header, the
//! payload, and a CRC32 of the payload. A self-contained segment holds whole
//! envelopes; a large envelope is cut across several segments that are not.
//!
//! Checksums are verified before a payload is used: a damaged segment is a
//! protocol violation that closes the connection, never a wrong answer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::primitives::ProtocolViolation;

/// Largest payload of one segment (128 KiB - 1).
pub const PAYLOAD_BYTES_MAX: usize = 128 * 1024 - 1;
const CRC24_BYTES: usize = 3;
const CRC32_BYTES: usize = 4;
const CRC24_INIT: u32 = 0x0087_5060;
const CRC24_POLY: u32 = 0x0197_4F0B;
/// Bytes the payload checksum starts from, as the protocol defines it.
const CRC32_SEED: [u8; 4] = [0xfa, 0x2d, 0x55, 0xca];

/// The CRC24 of a header's `length` low bytes, least significant first.
fn crc24(mut header: u64, length: usize) -> u32 {
    let mut crc = CRC24_INIT;
    for _ in 0..length {
        crc ^= ((header & 0xff) as u32) << 16;
        header >>= 8;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= CRC24_POLY;
            }
        }
    }
    crc & 0x00ff_ffff
}

fn crc32(payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&CRC32_SEED);
    hasher.update(payload);
    hasher.finalize()
}

fn put_le(out: &mut BytesMut, value: u64, length: usize) {
    for i in 0..length {
        out.put_u8((value >> (8 * i)) as u8);
    }
}

fn get_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |value, byte| value << 8 | u64::from(*byte))
}

/// How the segments of one connection are written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCodec {
    /// LZ4 was negotiated in STARTUP.
    pub lz4: bool,
}

/// One decoded segment.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    pub payload: Bytes,
    pub self_contained: bool,
}

impl SegmentCodec {
    fn header_bytes(self) -> usize {
        if self.lz4 {
            5
        } else {
            3
        }
    }

    /// Appends `envelopes` as segments: one self-contained segment when it
    /// fits, otherwise consecutive segments that are not self-contained.
    pub fn encode(self, envelopes: &[u8], out: &mut BytesMut) {
        if envelopes.len() <= PAYLOAD_BYTES_MAX {
            self.encode_one(envelopes, true, out);
        } else {
            for part in envelopes.chunks(PAYLOAD_BYTES_MAX) {
                self.encode_one(part, false, out);
            }
        }
    }

    fn encode_one(self, payload: &[u8], self_contained: bool, out: &mut BytesMut) {
        assert!(
            payload.len() <= PAYLOAD_BYTES_MAX,
            "segment payload too long"
        );
        let compressed = if self.lz4 {
            Some(lz4_flex::block::compress(payload)).filter(|c| c.len() < payload.len())
        } else {
            None
        };
        let (stored, uncompressed_len): (&[u8], usize) = match &compressed {
            Some(c) => (c, payload.len()),
            None => (payload, 0),
        };
        let mut header = stored.len() as u64;
        let mut flag_offset = 17;
        if self.lz4 {
            header |= (uncompressed_len as u64) << 17;
            flag_offset += 17;
        }
        if self_contained {
            header |= 1 << flag_offset;
        }
        let header_bytes = self.header_bytes();
        out.reserve(header_bytes + CRC24_BYTES + stored.len() + CRC32_BYTES);
        put_le(out, header, header_bytes);
        put_le(out, u64::from(crc24(header, header_bytes)), CRC24_BYTES);
        out.put_slice(stored);
        put_le(out, u64::from(crc32(stored)), CRC32_BYTES);
    }

    /// Takes one whole segment off the front of `buf`; `Ok(None)` if it is
    /// not all there yet. Checksums are verified before anything is returned.
    pub fn decode(self, buf: &mut BytesMut) -> Result<Option<Segment>, ProtocolViolation> {
        let header_bytes = self.header_bytes();
        let Some(head) = buf.get(..header_bytes + CRC24_BYTES) else {
            return Ok(None);
        };
        let header = get_le(&head[..header_bytes]);
        let expected = get_le(&head[header_bytes..]) as u32;
        let actual = crc24(header, header_bytes);
        if expected != actual {
            return Err(ProtocolViolation(format!(
                "segment header checksum mismatch (received {expected:#08x}, computed {actual:#08x})"
            )));
        }
        let payload_len = (header & PAYLOAD_BYTES_MAX as u64) as usize;
        let (uncompressed_len, flags) = if self.lz4 {
            (
                ((header >> 17) & PAYLOAD_BYTES_MAX as u64) as usize,
                header >> 34,
            )
        } else {
            (0, header >> 17)
        };
        let total = header_bytes + CRC24_BYTES + payload_len + CRC32_BYTES;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let segment = buf.split_to(total);
        let stored = &segment[header_bytes + CRC24_BYTES..total - CRC32_BYTES];
        let expected = get_le(&segment[total - CRC32_BYTES..]) as u32;
        let actual = crc32(stored);
        if expected != actual {
            return Err(ProtocolViolation(format!(
                "segment payload checksum mismatch (received {expected:#010x}, computed {actual:#010x})"
            )));
        }
        let payload = if uncompressed_len == 0 {
            Bytes::copy_from_slice(stored)
        } else {
            let bytes = lz4_flex::block::decompress(stored, uncompressed_len).map_err(|e| {
                ProtocolViolation(format!("segment payload does not decompress: {e}"))
            })?;
            if bytes.len() != uncompressed_len {
                return Err(ProtocolViolation(
                    "segment payload is shorter than its header declares".into(),
                ));
            }
            Bytes::from(bytes)
        };
        Ok(Some(Segment {
            payload,
            self_contained: flags & 1 == 1,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn round_trips_small_and_large_payloads() -> TestResult {
        for lz4 in [false, true] {
            let codec = SegmentCodec { lz4 };
            for payload in [
                b"tiny".to_vec(),
                b"compressible ".repeat(2000),
                (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ] {
                let mut wire = BytesMut::new();
                codec.encode(&payload, &mut wire);
                let mut back = Vec::new();
                let mut contained = Vec::new();
                while let Some(segment) = codec.decode(&mut wire)? {
                    back.extend_from_slice(&segment.payload);
                    contained.push(segment.self_contained);
                }
                assert!(wire.is_empty());
                assert_eq!(back, payload, "lz4={lz4}");
                assert_eq!(contained.len() == 1, contained.iter().all(|c| *c));
            }
        }
        Ok(())
    }

    #[test]
    fn partial_segments_wait_and_damage_is_refused() -> TestResult {
        let codec = SegmentCodec { lz4: false };
        let mut wire = BytesMut::new();
        codec.encode(b"hello envelopes", &mut wire);
        let whole = wire.clone();
        let mut partial = BytesMut::from(&whole[..whole.len() - 1]);
        assert_eq!(codec.decode(&mut partial)?, None);
        for position in [0, 4, 8, whole.len() - 1] {
            let mut damaged = whole.clone();
            damaged[position] ^= 0x10;
            assert!(codec.decode(&mut damaged).is_err(), "byte {position}");
        }
        Ok(())
    }

    #[test]
    fn header_checksum_matches_the_protocol() {
        // An uncompressed self-contained segment of 4 bytes: header 0x020004.
        let mut wire = BytesMut::new();
        SegmentCodec { lz4: false }.encode(b"abcd", &mut wire);
        assert_eq!(&wire[..3], &[0x04, 0x00, 0x02]);
        assert_eq!(get_le(&wire[3..6]) as u32, crc24(0x02_0004, 3));
    }
}

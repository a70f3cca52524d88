//! The internode messaging wire format: one frame per request or reply,
//! many frames per write system call.
//!
//! ```text
//! length  u32   bytes after this field (at most FRAME_BYTES_MAX)
//! crc     u32   CRC32 of the bytes after this field
//! id      u64   the request's id; a reply carries its request's id
//! kind    u8    a verb (requests) or a reply kind; its high bit (TRACED)
//!               says a trace trailer follows the body
//! timeout u32   requests: milliseconds the sender still waits; replies: 0
//! body          the verb's or reply's fields, in the storage codec
//! trailer       requests: the trace id (u64); replies: the trace id, the
//!               replica's time on it (µs) and its steps (activity, µs
//!               since it began, thread), at most TRACE_EVENTS_MAX
//! ```
//!
//! A connection starts with [`MAGIC`] and [`VERSION`] from the side that
//! opened it (the internode port tells these connections from gRPC ones by
//! the first four bytes). Decoding never panics: a short buffer is
//! "need more", anything else wrong is a [`FrameError`] that closes the
//! connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use storage_lsm::codec::{DecodeError, Reader, Writer};
use storage_lsm::model::TableId;

use crate::trace::{ReplicaSteps, TRACE_EVENTS_MAX};

/// The first bytes of a messaging connection.
pub const MAGIC: &[u8; 4] = b"ILMS";
/// The messaging version this node speaks.
pub const VERSION: u8 = 1;
/// Largest frame either side accepts (a page of wide rows).
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes before a frame's body.
const HEADER_BYTES: usize = 4 + 4 + 8 + 1 + 4;

/// The kind bit that says a trace trailer follows the body.
const TRACED: u8 = 0x80;

/// What a request asks of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// Apply a mutation (storage codec bytes): a write, a hint, a repair.
    Mutate(Bytes),
    /// A partition slice's unfiltered data, or only its digest.
    Read {
        table: TableId,
        key: Bytes,
        query: Bytes,
        digest_only: bool,
    },
    /// One page of a token range's live rows.
    Scan {
        table: TableId,
        range: Bytes,
        resume: Bytes,
        row_limit: u64,
    },
    /// Remove every row of a table written before the request.
    Truncate(TableId),
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A mutation or truncate was applied.
    Done,
    /// A read's answer: the data (empty when not found or digest only).
    Read {
        found: bool,
        digest: u64,
        data: Bytes,
    },
    /// A scan page (verbs' page encoding).
    Page(Bytes),
    /// The replica could not do it; the reason, for the log.
    Failed(String),
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request {
        id: u64,
        timeout_ms: u32,
        verb: Verb,
        /// The coordinator's trace, when the request is traced.
        trace: Option<u64>,
    },
    Reply {
        id: u64,
        reply: Reply,
        /// The replica's steps, when the request was traced.
        steps: Option<ReplicaSteps>,
    },
}

/// Why a frame cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the {FRAME_BYTES_MAX}-byte limit")]
    TooLong(usize),
    #[error("frame checksum mismatch (expected {expected:#010x}, computed {computed:#010x})")]
    Checksum { expected: u32, computed: u32 },
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("bad frame body: {0}")]
    Body(#[from] DecodeError),
    #[error("frame shorter than its header")]
    Short,
}

mod kind {
    pub const MUTATE: u8 = 1;
    pub const READ: u8 = 2;
    pub const SCAN: u8 = 3;
    pub const TRUNCATE: u8 = 4;
    pub const DONE: u8 = 64;
    pub const READ_REPLY: u8 = 65;
    pub const PAGE: u8 = 66;
    pub const FAILED: u8 = 67;
}

fn read_table(r: &mut Reader<'_>) -> Result<TableId, DecodeError> {
    let at = r.offset();
    crate::verbs::decode_table(r.take(16)?).ok_or(DecodeError {
        offset: at,
        reason: "table id",
    })
}

/// Appends `message` as one frame.
pub fn encode(message: &Message, out: &mut BytesMut) {
    let mut body = Writer::new();
    let (id, kind, timeout_ms) = match message {
        Message::Request {
            id,
            timeout_ms,
            verb,
            trace,
        } => {
            let kind = match verb {
                Verb::Mutate(mutation) => {
                    body.bytes(mutation);
                    kind::MUTATE
                }
                Verb::Read {
                    table,
                    key,
                    query,
                    digest_only,
                } => {
                    body.buf
                        .extend_from_slice(&crate::verbs::encode_table(*table));
                    body.bytes(key);
                    body.bytes(query);
                    body.u8(u8::from(*digest_only));
                    kind::READ
                }
                Verb::Scan {
                    table,
                    range,
                    resume,
                    row_limit,
                } => {
                    body.buf
                        .extend_from_slice(&crate::verbs::encode_table(*table));
                    body.bytes(range);
                    body.bytes(resume);
                    body.varint(*row_limit);
                    kind::SCAN
                }
                Verb::Truncate(table) => {
                    body.buf
                        .extend_from_slice(&crate::verbs::encode_table(*table));
                    kind::TRUNCATE
                }
            };
            let kind = match trace {
                Some(trace) => {
                    body.fixed_i64(*trace as i64);
                    kind | TRACED
                }
                None => kind,
            };
            (*id, kind, *timeout_ms)
        }
        Message::Reply { id, reply, steps } => {
            let kind = match reply {
                Reply::Done => kind::DONE,
                Reply::Read {
                    found,
                    digest,
                    data,
                } => {
                    body.u8(u8::from(*found));
                    body.fixed_i64(*digest as i64);
                    body.bytes(data);
                    kind::READ_REPLY
                }
                Reply::Page(page) => {
                    body.bytes(page);
                    kind::PAGE
                }
                Reply::Failed(reason) => {
                    body.bytes(reason.as_bytes());
                    kind::FAILED
                }
            };
            let kind = match steps {
                Some(steps) => {
                    write_steps(steps, &mut body);
                    kind | TRACED
                }
                None => kind,
            };
            (*id, kind, 0)
        }
    };
    let after_crc = 8 + 1 + 4 + body.buf.len();
    out.reserve(8 + after_crc);
    out.put_u32((4 + after_crc) as u32);
    let crc_at = out.len();
    out.put_u32(0);
    let start = out.len();
    out.put_u64(id);
    out.put_u8(kind);
    out.put_u32(timeout_ms);
    out.put_slice(&body.buf);
    let crc = crc32fast::hash(&out[start..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Takes one whole frame off the front of `buf`: `Ok(None)` until one has
/// fully arrived.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(FrameError::TooLong(length));
    }
    if length < HEADER_BYTES - 4 {
        return Err(FrameError::Short);
    }
    if buf.len() < 4 + length {
        buf.reserve(4 + length - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let frame = buf.split_to(length).freeze();
    let expected = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let computed = crc32fast::hash(&frame[4..]);
    if expected != computed {
        return Err(FrameError::Checksum { expected, computed });
    }
    let mut header = &frame[4..HEADER_BYTES - 4];
    let id = header.get_u64();
    let kind = header.get_u8();
    let timeout_ms = header.get_u32();
    let body = frame.slice(HEADER_BYTES - 4..);
    let mut r = Reader::new(&body);
    // Byte strings are sliced from the frame, not copied.
    let slice = |r: &mut Reader<'_>| -> Result<Bytes, DecodeError> {
        let raw = r.bytes_ref()?;
        Ok(body.slice_ref(raw))
    };
    let traced = kind & TRACED != 0;
    let verb = match kind & !TRACED {
        kind::MUTATE => Some(Verb::Mutate(slice(&mut r)?)),
        kind::READ => Some(Verb::Read {
            table: read_table(&mut r)?,
            key: slice(&mut r)?,
            query: slice(&mut r)?,
            digest_only: r.u8()? != 0,
        }),
        kind::SCAN => Some(Verb::Scan {
            table: read_table(&mut r)?,
            range: slice(&mut r)?,
            resume: slice(&mut r)?,
            row_limit: r.varint()?,
        }),
        kind::TRUNCATE => Some(Verb::Truncate(read_table(&mut r)?)),
        _ => None,
    };
    if let Some(verb) = verb {
        let trace = if traced {
            Some(r.fixed_i64()? as u64)
        } else {
            None
        };
        return Ok(Some(Message::Request {
            id,
            timeout_ms,
            verb,
            trace,
        }));
    }
    let reply = match kind & !TRACED {
        kind::DONE => Reply::Done,
        kind::READ_REPLY => Reply::Read {
            found: r.u8()? != 0,
            digest: r.fixed_i64()? as u64,
            data: slice(&mut r)?,
        },
        kind::PAGE => Reply::Page(slice(&mut r)?),
        kind::FAILED => Reply::Failed(String::from_utf8_lossy(&slice(&mut r)?).into_owned()),
        _ => return Err(FrameError::UnknownKind(kind)),
    };
    let steps = if traced {
        Some(read_steps(&mut r)?)
    } else {
        None
    };
    Ok(Some(Message::Reply { id, reply, steps }))
}

fn write_steps(steps: &ReplicaSteps, body: &mut Writer) {
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    body.fixed_i64(steps.trace as i64);
    body.varint(micros(steps.took));
    // The gathering keeps at most TRACE_EVENTS_MAX, its last step naming
    // the limit (see `trace::event`); the reader refuses more.
    debug_assert!(steps.events.len() <= TRACE_EVENTS_MAX);
    body.varint(steps.events.len() as u64);
    for (activity, since_start, thread) in &steps.events {
        body.bytes(activity.as_bytes());
        body.varint(micros(*since_start));
        body.bytes(thread.as_bytes());
    }
}

fn read_steps(r: &mut Reader<'_>) -> Result<ReplicaSteps, DecodeError> {
    let trace = r.fixed_i64()? as u64;
    let took = std::time::Duration::from_micros(r.varint()?);
    let at = r.offset();
    let count = r.varint()?;
    if count > TRACE_EVENTS_MAX as u64 {
        return Err(DecodeError {
            offset: at,
            reason: "more trace steps than a trace keeps",
        });
    }
    let mut events = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let activity = String::from_utf8_lossy(r.bytes_ref()?).into_owned();
        let since_start = std::time::Duration::from_micros(r.varint()?);
        let thread = String::from_utf8_lossy(r.bytes_ref()?).into_owned();
        events.push((activity, since_start, thread));
    }
    Ok(ReplicaSteps {
        trace,
        took,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        let table = TableId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        vec![
            Message::Request {
                id: 1,
                timeout_ms: 2000,
                verb: Verb::Mutate(Bytes::from_static(b"mutation")),
                trace: None,
            },
            Message::Request {
                id: u64::MAX,
                timeout_ms: 0,
                verb: Verb::Read {
                    table,
                    key: Bytes::from_static(b"k"),
                    query: Bytes::new(),
                    digest_only: true,
                },
                trace: None,
            },
            Message::Request {
                id: 3,
                timeout_ms: 10_000,
                verb: Verb::Scan {
                    table,
                    range: Bytes::from_static(b"r"),
                    resume: Bytes::new(),
                    row_limit: 5000,
                },
                trace: None,
            },
            Message::Request {
                id: 4,
                timeout_ms: 1,
                verb: Verb::Truncate(table),
                trace: None,
            },
            Message::Reply {
                id: 5,
                reply: Reply::Done,
                steps: None,
            },
            Message::Reply {
                id: 6,
                reply: Reply::Read {
                    found: true,
                    digest: u64::MAX - 1,
                    data: Bytes::from_static(b"rows"),
                },
                steps: None,
            },
            Message::Reply {
                id: 7,
                reply: Reply::Page(Bytes::from(vec![7u8; 100_000])),
                steps: None,
            },
            Message::Reply {
                id: 8,
                reply: Reply::Failed("unknown table".into()),
                steps: None,
            },
            Message::Request {
                id: 9,
                timeout_ms: 100,
                verb: Verb::Mutate(Bytes::from_static(b"traced")),
                trace: Some(u64::MAX - 7),
            },
            Message::Reply {
                id: 9,
                reply: Reply::Done,
                steps: Some(ReplicaSteps {
                    trace: u64::MAX - 7,
                    took: std::time::Duration::from_micros(321),
                    events: vec![
                        (
                            "Appending to commitlog".into(),
                            std::time::Duration::from_micros(5),
                            "messaging".into(),
                        ),
                        (
                            "Adding to t memtable".into(),
                            std::time::Duration::from_micros(300),
                            "messaging".into(),
                        ),
                    ],
                }),
            },
        ]
    }

    #[test]
    fn every_message_comes_back_as_sent_from_one_stream() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut stream = BytesMut::new();
        for message in samples() {
            encode(&message, &mut stream);
        }
        // Arriving a byte at a time changes nothing.
        let mut arriving = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in stream.iter() {
            arriving.put_u8(*byte);
            while let Some(message) = decode(&mut arriving)? {
                decoded.push(message);
            }
        }
        assert_eq!(decoded, samples());
        assert!(arriving.is_empty());
        Ok(())
    }

    #[test]
    fn a_flipped_bit_anywhere_after_the_length_is_caught() {
        let mut one = BytesMut::new();
        encode(&samples()[5], &mut one);
        for at in 4..one.len() {
            for bit in 0..8 {
                let mut damaged = one.clone();
                damaged[at] ^= 1 << bit;
                assert!(
                    decode(&mut damaged).is_err(),
                    "flip of bit {bit} at byte {at} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn lengths_out_of_bounds_are_refused_before_buffering() {
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert_eq!(
            decode(&mut huge),
            Err(FrameError::TooLong(u32::MAX as usize))
        );
        let mut tiny = BytesMut::from(&[0u8, 0, 0, 3, 1, 2, 3][..]);
        assert_eq!(decode(&mut tiny), Err(FrameError::Short));
    }
}

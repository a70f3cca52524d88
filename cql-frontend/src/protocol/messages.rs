//! Request bodies as the client sends them (section 4.1) and response bodies
//! as the node writes them (section 4.2).

use std::collections::HashMap;

use bytes::Bytes;

use crate::protocol::error::CqlError;
use crate::protocol::frame::Opcode;
use crate::protocol::primitives::{BodyReader, BodyWriter, ProtocolViolation, Value};

/// The CQL version this node speaks (`SUPPORTED`'s `CQL_VERSION`).
pub const CQL_VERSION: &str = "3.4.7";

/// Bound values of a query: by position or by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BoundValues {
    #[default]
    None,
    Positional(Vec<Value>),
    Named(Vec<(String, Value)>),
}

/// `<query_parameters>` of QUERY and EXECUTE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryParameters {
    pub consistency: u16,
    pub values: BoundValues,
    pub skip_metadata: bool,
    pub page_size: Option<i32>,
    pub paging_state: Option<Bytes>,
    pub serial_consistency: Option<u16>,
    pub timestamp: Option<i64>,
    /// v5: the keyspace the statement runs in, instead of the session's.
    pub keyspace: Option<String>,
    /// v5: the time the client says it is, in seconds (for TTL expiry).
    pub now_in_seconds: Option<i32>,
}

/// Reads the flags of QUERY, EXECUTE and BATCH: a byte before v5, an int from v5.
fn read_flags(r: &mut BodyReader, version: u8) -> Result<u32, ProtocolViolation> {
    if version >= 5 {
        Ok(r.read_int()? as u32)
    } else {
        Ok(u32::from(r.read_byte()?))
    }
}

mod query_flags {
    pub const VALUES: u32 = 0x01;
    pub const SKIP_METADATA: u32 = 0x02;
    pub const PAGE_SIZE: u32 = 0x04;
    pub const PAGING_STATE: u32 = 0x08;
    pub const SERIAL_CONSISTENCY: u32 = 0x10;
    pub const DEFAULT_TIMESTAMP: u32 = 0x20;
    pub const NAMES_FOR_VALUES: u32 = 0x40;
    pub const WITH_KEYSPACE: u32 = 0x80;
    pub const NOW_IN_SECONDS: u32 = 0x100;
}

impl QueryParameters {
    pub fn read(r: &mut BodyReader, version: u8) -> Result<QueryParameters, ProtocolViolation> {
        use query_flags::*;
        let consistency = r.read_short()?;
        let flags = read_flags(r, version)?;
        let mut params = QueryParameters {
            consistency,
            skip_metadata: flags & SKIP_METADATA != 0,
            ..QueryParameters::default()
        };
        if flags & VALUES != 0 {
            let n = r.read_short()?;
            if flags & NAMES_FOR_VALUES != 0 {
                let mut named = Vec::with_capacity(usize::from(n).min(1024));
                for _ in 0..n {
                    let name = r.read_string()?;
                    named.push((name, r.read_value()?));
                }
                params.values = BoundValues::Named(named);
            } else {
                let mut values = Vec::with_capacity(usize::from(n).min(1024));
                for _ in 0..n {
                    values.push(r.read_value()?);
                }
                params.values = BoundValues::Positional(values);
            }
        }
        if flags & PAGE_SIZE != 0 {
            params.page_size = Some(r.read_int()?);
        }
        if flags & PAGING_STATE != 0 {
            params.paging_state = r.read_bytes()?;
        }
        if flags & SERIAL_CONSISTENCY != 0 {
            params.serial_consistency = Some(r.read_short()?);
        }
        if flags & DEFAULT_TIMESTAMP != 0 {
            params.timestamp = Some(r.read_long()?);
        }
        if version >= 5 && flags & WITH_KEYSPACE != 0 {
            params.keyspace = Some(r.read_string()?);
        }
        if version >= 5 && flags & NOW_IN_SECONDS != 0 {
            params.now_in_seconds = Some(r.read_int()?);
        }
        Ok(params)
    }
}

/// One statement of a BATCH message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchStatement {
    Query(String),
    Prepared(Bytes),
}

/// A BATCH message (section 4.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    /// 0 logged, 1 unlogged, 2 counter.
    pub kind: u8,
    pub statements: Vec<(BatchStatement, Vec<Value>)>,
    pub consistency: u16,
    pub serial_consistency: Option<u16>,
    pub timestamp: Option<i64>,
    /// v5: the keyspace of unqualified names in the batch.
    pub keyspace: Option<String>,
}

impl BatchRequest {
    fn read(r: &mut BodyReader, version: u8) -> Result<BatchRequest, ProtocolViolation> {
        let kind = r.read_byte()?;
        if kind > 2 {
            return Err(ProtocolViolation(format!("unknown BATCH type {kind}")));
        }
        let n = r.read_short()?;
        let mut statements = Vec::with_capacity(usize::from(n).min(1024));
        for _ in 0..n {
            let statement = match r.read_byte()? {
                0 => BatchStatement::Query(r.read_long_string()?),
                1 => BatchStatement::Prepared(r.read_short_bytes()?),
                other => {
                    return Err(ProtocolViolation(format!(
                        "unknown BATCH statement kind {other}"
                    )))
                }
            };
            let count = r.read_short()?;
            let mut values = Vec::with_capacity(usize::from(count).min(1024));
            for _ in 0..count {
                values.push(r.read_value()?);
            }
            statements.push((statement, values));
        }
        let consistency = r.read_short()?;
        let flags = read_flags(r, version)?;
        if flags & query_flags::NAMES_FOR_VALUES != 0 {
            return Err(ProtocolViolation(
                "named values in BATCH are not supported by the protocol".into(),
            ));
        }
        let serial_consistency = if flags & query_flags::SERIAL_CONSISTENCY != 0 {
            Some(r.read_short()?)
        } else {
            None
        };
        let timestamp = if flags & query_flags::DEFAULT_TIMESTAMP != 0 {
            Some(r.read_long()?)
        } else {
            None
        };
        let keyspace = if version >= 5 && flags & query_flags::WITH_KEYSPACE != 0 {
            Some(r.read_string()?)
        } else {
            None
        };
        if version >= 5 && flags & query_flags::NOW_IN_SECONDS != 0 {
            r.read_int()?;
        }
        Ok(BatchRequest {
            kind,
            statements,
            consistency,
            serial_consistency,
            timestamp,
            keyspace,
        })
    }
}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Startup(HashMap<String, String>),
    Options,
    Query {
        query: String,
        params: QueryParameters,
    },
    Prepare {
        query: String,
        /// v5: the keyspace of unqualified names.
        keyspace: Option<String>,
    },
    Execute {
        id: Bytes,
        /// v5: the id of the result metadata the client holds.
        result_metadata_id: Option<Bytes>,
        params: QueryParameters,
    },
    Batch(BatchRequest),
    Register {
        events: Vec<String>,
    },
    AuthResponse(Option<Bytes>),
}

impl Request {
    /// Parses a request body; every byte must be accounted for.
    pub fn parse(opcode: Opcode, body: Bytes, version: u8) -> Result<Request, CqlError> {
        let mut r = BodyReader::new(body);
        let request =
            Request::parse_body(opcode, &mut r, version).map_err(|e| CqlError::Protocol(e.0))?;
        Ok(request)
    }

    fn parse_body(
        opcode: Opcode,
        r: &mut BodyReader,
        version: u8,
    ) -> Result<Request, ProtocolViolation> {
        Ok(match opcode {
            Opcode::Startup => Request::Startup(r.read_string_map()?),
            Opcode::Options => Request::Options,
            Opcode::Query => Request::Query {
                query: r.read_long_string()?,
                params: QueryParameters::read(r, version)?,
            },
            Opcode::Prepare => {
                let query = r.read_long_string()?;
                let keyspace = if version >= 5 && r.read_int()? & 0x01 != 0 {
                    Some(r.read_string()?)
                } else {
                    None
                };
                Request::Prepare { query, keyspace }
            }
            Opcode::Execute => {
                let id = r.read_short_bytes()?;
                let result_metadata_id = if version >= 5 {
                    Some(r.read_short_bytes()?)
                } else {
                    None
                };
                Request::Execute {
                    id,
                    result_metadata_id,
                    params: QueryParameters::read(r, version)?,
                }
            }
            Opcode::Batch => Request::Batch(BatchRequest::read(r, version)?),
            Opcode::Register => Request::Register {
                events: r.read_string_list()?,
            },
            Opcode::AuthResponse => Request::AuthResponse(r.read_bytes()?),
            other => {
                return Err(ProtocolViolation(format!(
                    "{other:?} is a response opcode; clients may not send it"
                )))
            }
        })
    }
}

/// A response to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Error(CqlError),
    Ready,
    Supported,
    Authenticate(String),
    /// The end of a successful SASL exchange (no final token).
    AuthSuccess,
    /// A RESULT; how to write the metadata of rows (section 4.2.5.2).
    Result(crate::results::ResultBody, crate::results::MetadataRequest),
    /// A RESULT body already encoded (a PREPARE's answer).
    EncodedResult(Bytes),
}

impl Response {
    pub fn opcode(&self) -> Opcode {
        match self {
            Response::Error(_) => Opcode::Error,
            Response::Ready => Opcode::Ready,
            Response::Supported => Opcode::Supported,
            Response::Authenticate(_) => Opcode::Authenticate,
            Response::AuthSuccess => Opcode::AuthSuccess,
            Response::Result(..) | Response::EncodedResult(_) => Opcode::Result,
        }
    }

    pub fn encode_body(&self) -> Bytes {
        let mut w = BodyWriter::new();
        match self {
            Response::Error(error) => error.encode(&mut w),
            Response::Ready => {}
            Response::Supported => {
                w.write_string_multimap(&[
                    ("CQL_VERSION", vec![CQL_VERSION]),
                    (
                        "COMPRESSION",
                        crate::protocol::compression::ALGORITHMS.to_vec(),
                    ),
                    ("PROTOCOL_VERSIONS", vec!["3/v3", "4/v4", "5/v5"]),
                ]);
            }
            Response::Authenticate(class) => w.write_string(class),
            Response::AuthSuccess => w.write_bytes(None),
            Response::Result(body, metadata) => body.write(&mut w, metadata),
            Response::EncodedResult(body) => return body.clone(),
        }
        w.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn query_with_positional_values_and_paging() -> TestResult {
        let mut w = BodyWriter::new();
        w.write_long_string("SELECT * FROM ks.t WHERE k = ?");
        w.write_short(0x0001); // ONE
        w.write_byte(0x01 | 0x04 | 0x20);
        w.write_short(1);
        w.write_bytes(Some(b"\x00\x00\x00\x2a"));
        w.write_int(5000);
        w.write_long(1_700_000_000_000_000);
        let request = Request::parse(Opcode::Query, w.into_bytes(), 4)?;
        let Request::Query { query, params } = request else {
            return Err("parsed as another request".into());
        };
        assert!(query.starts_with("SELECT"));
        assert_eq!(params.page_size, Some(5000));
        assert_eq!(params.timestamp, Some(1_700_000_000_000_000));
        assert_eq!(
            params.values,
            BoundValues::Positional(vec![Value::Set(Bytes::from_static(b"\x00\x00\x00\x2a"))])
        );
        Ok(())
    }

    #[test]
    fn v5_execute_has_int_flags_metadata_id_and_keyspace() -> TestResult {
        let mut w = BodyWriter::new();
        w.write_short_bytes(&[1; 16]);
        w.write_short_bytes(&[2; 16]);
        w.write_short(0x0004); // QUORUM
        w.write_int(0x02 | 0x80 | 0x100);
        w.write_string("ks");
        w.write_int(1_700_000_000);
        let request = Request::parse(Opcode::Execute, w.into_bytes(), 5)?;
        let Request::Execute {
            result_metadata_id,
            params,
            ..
        } = request
        else {
            return Err("parsed as another request".into());
        };
        assert_eq!(result_metadata_id.as_deref(), Some(&[2u8; 16][..]));
        assert!(params.skip_metadata);
        assert_eq!(params.keyspace.as_deref(), Some("ks"));
        assert_eq!(params.now_in_seconds, Some(1_700_000_000));
        Ok(())
    }

    #[test]
    fn truncated_bodies_are_protocol_errors() {
        let err =
            Request::parse(Opcode::Query, Bytes::from_static(&[0, 0, 0, 10, b'S']), 4).unwrap_err();
        assert_eq!(err.code(), 0x000A);
        let err = Request::parse(Opcode::Result, Bytes::new(), 4).unwrap_err();
        assert_eq!(err.code(), 0x000A);
    }
}

//! The CQL side of an Ilion node.
//!
//! Layout:
//! - [`protocol`]: the native protocol without I/O — frames, primitives,
//!   messages, error codes (v3 and v4 today; v5 segment framing next);
//! - [`transport`]: one tokio task per client connection, driving the codec;
//! - [`cql`]: lexer, AST and parser of the CQL language;
//! - [`types`]: CQL types, protocol type options, byte-comparable keys.
//!
//! Status (issue 4): the handshake works (OPTIONS/SUPPORTED, STARTUP/READY,
//! REGISTER, version negotiation, protocol errors); QUERY, PREPARE, EXECUTE
//! and BATCH answer `Invalid: not yet supported: ...` until the CQL parser,
//! schema catalog and executor land.

pub mod cql;
pub mod protocol;
pub mod schema;
pub mod transport;
pub mod types;
pub mod values;

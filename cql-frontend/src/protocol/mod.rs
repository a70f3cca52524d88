//! The CQL native protocol, without I/O: frames, the spec's primitive
//! notation, request and response messages, error codes. The transport
//! module drives it over TCP.

pub mod compression;
pub mod error;
pub mod frame;
pub mod messages;
pub mod primitives;
pub mod segment;

//! The CQL side of an Ilion node.
//!
//! Owns the native protocol codec (v4/v5 frames), the CQL lexer and parser,
//! CQL types and value codecs, the schema catalog and `system*` tables,
//! statement execution through the coordinator, the prepared statement cache,
//! authentication and client events.
//!
//! Status: not built yet (issue 4).

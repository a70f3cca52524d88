//! The CQL side of an Ilion node.
//!
//! Layout:
//! - [`protocol`]: the native protocol without I/O — frames, primitives,
//!   messages, error codes (v3 and v4 today; v5 segment framing next);
//! - [`transport`]: one tokio task per client connection, driving the codec;
//! - [`cql`]: lexer, AST and parser of the CQL language;
//! - [`types`]: CQL types, protocol type options, byte-comparable keys.
//!
//! - [`prepared`]: the prepared statement cache and bind metadata;
//! - [`describe`]: server-side DESCRIBE;
//! - [`schema`]: the catalog of keyspaces and tables, stored in the engine;
//! - [`values`]: literals and bind values to serialized values;
//! - [`executor`]: statements to coordinator calls and RESULTs;
//! - [`results`]: RESULT bodies; [`system_tables`]: `system.*` and
//!   `system_schema.*` as drivers read them; [`node`]: shared node state.
//!
//! Status (issue 4): protocol v3/v4 with LZ4, concurrent statements per
//! connection with in-flight limits, QUERY/PREPARE/EXECUTE/BATCH, paging,
//! SCHEMA_CHANGE events, DDL for keyspaces and tables, INSERT/UPDATE/DELETE
//! (collections element by element), SELECT with slices, ORDER BY, LIMIT,
//! PER PARTITION LIMIT, DISTINCT, aggregates, GROUP BY, writetime/ttl,
//! INSERT/SELECT JSON, server-side DESCRIBE, system tables. Not yet (answered `not yet
//! supported`): v5 framing, Snappy, authentication, LWT, indexes, views,
//! UDTs, counters.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod cql;
pub mod describe;
pub mod executor;
pub mod json;
pub mod metrics;
pub mod node;
pub mod prepared;
pub mod protocol;
pub mod results;
pub mod roles;
pub mod schema;
pub mod system_tables;
pub mod transport;
pub mod types;
pub mod values;

//! The CQL side of an Ilion node.
//!
//! Layout:
//! - [`protocol`]: the native protocol without I/O — frames, v5 segments,
//!   compression, primitives, messages, error codes;
//! - [`transport`]: one tokio task per client connection, driving the codec;
//! - [`auth`] and [`roles`]: password authentication and role statements;
//! - [`cql`]: lexer, AST and parser of the CQL language;
//! - [`types`]: CQL types and protocol type options; [`comparable`]: the
//!   byte-comparable form of values (clustering keys, collection paths);
//! - [`prepared`]: the prepared statement cache and bind metadata;
//! - [`describe`]: server-side DESCRIBE;
//! - [`schema`]: the catalog of keyspaces, types and tables, stored in the
//!   engine; [`migration`]: schema agreement with the other nodes;
//! - [`values`] and [`json`]: literals, bind values and JSON to serialized
//!   values;
//! - [`executor`]: statements to coordinator calls and RESULTs;
//!   [`warnings`]: what a statement tells its client beside its answer;
//! - [`results`]: RESULT bodies; [`system_tables`]: `system.*` and
//!   `system_schema.*` as drivers read them; [`metrics`]: client request
//!   metrics; [`node`]: shared node state and client events.
//!
//! Not yet (answered `not yet supported`): LWT, secondary indexes,
//! materialized views, counters, tracing.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod comparable;
pub mod cql;
pub mod describe;
pub mod executor;
pub mod functions;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod migration;
pub mod node;
pub mod prepared;
pub mod protocol;
pub mod results;
pub mod roles;
pub mod schema;
pub mod system_tables;
pub mod traces;
pub mod transport;
pub mod types;
pub mod values;
pub mod warnings;

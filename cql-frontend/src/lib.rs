//! The CQL side of an Ilion node.
//!
//! Layout:
//! - [`protocol`]: the native protocol without I/O — frames, primitives,
//!   messages, error codes (v3 and v4 today; v5 segment framing next);
//! - [`transport`]: one tokio task per client connection, driving the codec;
//! - [`cql`]: lexer, AST and parser of the CQL language;
//! - [`types`]: CQL types, protocol type options, byte-comparable keys.
//!
//! - [`schema`]: the catalog of keyspaces and tables, stored in the engine;
//! - [`values`]: literals and bind values to serialized values;
//! - [`executor`]: statements to coordinator calls and RESULTs;
//! - [`results`]: RESULT bodies; [`system_tables`]: `system.*` and
//!   `system_schema.*` as drivers read them; [`node`]: shared node state.
//!
//! Status (issue 4): v3/v4 handshake, QUERY for DDL (keyspaces, tables),
//! INSERT/UPDATE/DELETE/BATCH, SELECT by partition key with clustering
//! slices, full scans with paging. PREPARE/EXECUTE, the BATCH message,
//! v5 framing, compression, authentication, events and collection element
//! operations answer `not yet supported`.

pub mod cql;
pub mod describe;
pub mod executor;
pub mod node;
pub mod prepared;
pub mod protocol;
pub mod results;
pub mod schema;
pub mod system_tables;
pub mod transport;
pub mod types;
pub mod values;

//! The tests that run the real `ilion` binary (and real clients against
//! it), one module per area, linked into one test binary so the workspace
//! links it once. Each test starts its own node or cluster on ports the
//! kernel hands out, or on a `127.0.N.x` range of its own (named at the top
//! of its module); nextest runs every test in a process of its own.

mod common;

mod cluster;
mod cql_protocol;
mod cqlsh;
mod gossip;
mod hardening;
mod metrics_http;
mod nodetool;
mod python_driver;
mod replication;
mod scylla_driver;
mod server_process;
mod shell;
mod stress;

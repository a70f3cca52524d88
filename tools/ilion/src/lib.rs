//! The `ilion` program: configuration, node assembly and the command-line
//! front of every tool (`server`, `shell`, `nodetool`, `stress`, `cluster`).
//!
//! Layout:
//! - [`admin`]: the node's admin gRPC service (what `nodetool` asks);
//! - [`cluster`]: `ilion cluster`, the ccm-style local cluster launcher;
//! - [`cli`]: the clap definitions of every subcommand and its flags;
//! - [`consistency`]: consistency level names for the CQL clients;
//! - [`config`]: YAML file, `ILION_*` environment and flags merged into a
//!   validated [`config::Config`];
//! - [`conn_limit`]: open connections of the internode and admin ports,
//!   capped in all and per source address;
//! - [`identity`]: the host id and tokens, kept in the data directory;
//! - [`http`]: the metrics and probes HTTP port;
//! - [`logging`]: the `tracing` subscriber (text or JSON);
//! - [`nodetool`]: `ilion nodetool`, the admin API's command-line client;
//! - [`shell`]: `ilion shell`, the cqlsh-style shell;
//! - [`stress`]: `ilion stress`, the load generator (a CQL client only);
//! - [`text`]: aligned plain-text tables;
//! - [`server`]: assembles a node from its configuration and runs it until
//!   SIGTERM/SIGINT.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conn_limit;
pub mod consistency;
pub mod http;
pub mod identity;
pub mod logging;
pub mod nodetool;
pub mod server;
pub mod shell;
pub mod stress;
pub mod text;

//! The `ilion` program: configuration, node assembly and the command-line
//! front of every tool (`server`, `shell`, `nodetool`, `stress`, `cluster`).
//!
//! Layout:
//! - [`admin`]: the node's admin gRPC service (what `nodetool` asks);
//! - [`cluster`]: `ilion cluster`, the ccm-style local cluster launcher;
//! - [`cli`]: the clap definitions of every subcommand and its flags;
//! - [`config`]: YAML file, `ILION_*` environment and flags merged into a
//!   validated [`config::Config`];
//! - [`http`]: the metrics and probes HTTP port;
//! - [`logging`]: the `tracing` subscriber (text or JSON);
//! - [`nodetool`]: `ilion nodetool`, the admin API's command-line client;
//! - [`stress`]: `ilion stress`, the load generator (a CQL client only);
//! - [`text`]: aligned plain-text tables;
//! - [`server`]: assembles a node from its configuration and runs it until
//!   SIGTERM/SIGINT.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod http;
pub mod logging;
pub mod nodetool;
pub mod server;
pub mod stress;
pub mod text;

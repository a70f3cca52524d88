//! Command-line definitions for every `ilion` subcommand.
//!
//! Flags of `ilion server` form the last configuration layer (after the YAML
//! file and the `ILION_*` environment); [`ServerArgs::as_layer`] turns them into
//! one.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{RawConfig, SeedParameters, SeedProviderEntry};

/// Ilion: a wide-column distributed database that speaks Cassandra's CQL.
#[derive(Debug, Parser)]
#[command(name = "ilion", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The tools in the one `ilion` program.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (CQL on 127.0.0.1:9042, data under ./data by default).
    Server(ServerArgs),
    /// cqlsh-style shell: `ilion shell [host [port]]`, cqlsh's flags.
    Shell(crate::shell::ShellArgs),
    /// nodetool-style operations client of a node's admin API (port 7199).
    Nodetool(crate::nodetool::NodetoolArgs),
    /// cassandra-stress-style load generator against any CQL server.
    Stress(crate::stress::StressArgs),
    /// ccm-style local cluster launcher (nodes on 127.0.0.1, .2, …).
    Cluster(crate::cluster::ClusterArgs),
}

/// `ilion server` flags. Each overrides the YAML key of the same name and its
/// `ILION_*` environment variable.
#[derive(Debug, Args, Default)]
pub struct ServerArgs {
    /// YAML configuration file with cassandra.yaml key names (optional).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Root directory for data, commitlog and hints (default ./data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Name of the cluster this node belongs to.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Address peers reach this node on.
    #[arg(long)]
    pub listen_address: Option<String>,
    /// Address CQL clients connect to (default: listen_address).
    #[arg(long)]
    pub rpc_address: Option<String>,
    /// CQL native protocol port (default 9042).
    #[arg(long)]
    pub native_transport_port: Option<u16>,
    /// Internode port (default 7000).
    #[arg(long)]
    pub storage_port: Option<u16>,
    /// Admin gRPC port used by `ilion nodetool` (default 7199).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// HTTP port for metrics and health probes (default 9180).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Comma-separated seed addresses.
    #[arg(long)]
    pub seeds: Option<String>,
    /// Vnodes owned by this node (default 16).
    #[arg(long)]
    pub num_tokens: Option<u32>,
    /// Commitlog sync mode: periodic (default) or batch.
    #[arg(long)]
    pub commitlog_sync: Option<String>,
    /// Log format: text (default) or json.
    #[arg(long)]
    pub log_format: Option<String>,
}

impl ServerArgs {
    /// The flags as a configuration layer.
    pub fn as_layer(&self) -> RawConfig {
        let under_root = |sub: &str| {
            self.data_dir
                .as_ref()
                .map(|root| root.join(sub).display().to_string())
        };
        RawConfig {
            cluster_name: self.cluster_name.clone(),
            num_tokens: self.num_tokens,
            seed_provider: self.seeds.as_ref().map(|seeds| {
                vec![SeedProviderEntry {
                    class_name: "org.apache.cassandra.locator.SimpleSeedProvider".into(),
                    parameters: vec![SeedParameters {
                        seeds: seeds.clone(),
                    }],
                }]
            }),
            listen_address: self.listen_address.clone(),
            rpc_address: self.rpc_address.clone(),
            native_transport_port: self.native_transport_port,
            storage_port: self.storage_port,
            admin_port: self.admin_port,
            metrics_port: self.metrics_port,
            data_file_directories: under_root("data").map(|d| vec![d]),
            commitlog_directory: under_root("commitlog"),
            hints_directory: under_root("hints"),
            commitlog_sync: self.commitlog_sync.clone(),
            log_format: self.log_format.clone(),
            ..RawConfig::default()
        }
    }
}

//! `ilion nodetool`: the command-line client of a node's admin API, with
//! nodetool's command names, flags and output shapes.
//!
//! `mod.rs` parses the command and calls the node; `format.rs` turns the
//! replies into nodetool's text.

mod format;

use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};
use tonic::transport::{Channel, Endpoint};

use crate::admin::proto::admin_client::AdminClient;
use crate::admin::proto::{
    ClearSnapshotRequest, ClusterRequest, CompactionThroughput, Empty, RemoveNodeRequest,
    SnapshotRequest, TablesRequest, TraceProbability,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `ilion nodetool [-h host] [-p port] <command>`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct NodetoolArgs {
    /// Node hostname or IP address.
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    pub host: String,
    /// Admin API port of the node.
    #[arg(short = 'p', long = "port", default_value_t = crate::config::defaults::ADMIN_PORT)]
    pub port: u16,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    #[command(subcommand)]
    pub command: NodetoolCommand,
}

/// Keyspace, then tables of it; none means every keyspace.
#[derive(Debug, Args)]
pub struct KeyspaceTables {
    pub keyspace: Option<String>,
    pub tables: Vec<String>,
}

impl KeyspaceTables {
    fn request(self) -> TablesRequest {
        TablesRequest {
            keyspace: self.keyspace.unwrap_or_default(),
            tables: self.tables,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum NodetoolCommand {
    /// Print cluster information (state, load, ownership, host id).
    Status {
        /// Show effective ownership for this keyspace's replication.
        keyspace: Option<String>,
    },
    /// Print node information (uptime, load, memory, tokens).
    Info {
        /// Show every token of the node.
        #[arg(short = 'T', long)]
        tokens: bool,
    },
    /// Print the token ring.
    Ring {
        /// Show effective ownership for this keyspace's replication.
        keyspace: Option<String>,
    },
    /// Print the name, snitch, partitioner and schema versions of the cluster.
    Describecluster,
    /// Show the gossip information of the cluster.
    Gossipinfo,
    /// Print the release version.
    Version,
    /// Print statistics on tables.
    #[command(alias = "cfstats")]
    Tablestats {
        /// Show sizes in KiB, MiB, GiB.
        #[arg(short = 'H', long = "human-readable")]
        human_readable: bool,
        /// `keyspace` or `keyspace.table`, any number; none means all.
        names: Vec<String>,
    },
    /// Print latency and tombstone histograms of one table.
    #[command(alias = "cfhistograms")]
    Tablehistograms {
        /// `keyspace table` or `keyspace.table`.
        names: Vec<String>,
    },
    /// Print coordinator latency histograms.
    Proxyhistograms,
    /// Print pending and running compactions.
    Compactionstats {
        #[arg(short = 'H', long = "human-readable")]
        human_readable: bool,
    },
    /// Flush memtables to SSTables.
    Flush(KeyspaceTables),
    /// Force a major compaction.
    Compact(KeyspaceTables),
    /// Drop data of ranges this node no longer replicates.
    Cleanup(KeyspaceTables),
    /// Stop serving clients and flush everything (before a restart).
    Drain,
    /// Take a snapshot of keyspaces (all by default).
    Snapshot {
        /// Name of the snapshot (default: the current time in milliseconds).
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
        /// Only this table (give exactly one keyspace).
        #[arg(long = "table", visible_alias = "column-family", short_alias = 'c')]
        table: Option<String>,
        keyspaces: Vec<String>,
    },
    /// List snapshots.
    Listsnapshots,
    /// Remove snapshots.
    Clearsnapshot {
        /// Name of the snapshot to remove.
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
        /// Remove every snapshot.
        #[arg(long)]
        all: bool,
        keyspaces: Vec<String>,
    },
    /// Print the compaction throughput limit in MiB/s.
    Getcompactionthroughput,
    /// Set the compaction throughput limit in MiB/s (0 = unthrottled).
    Setcompactionthroughput { mib_per_s: u64 },
    /// Print the query tracing probability.
    Gettraceprobability,
    /// Set the query tracing probability (0..1).
    Settraceprobability { probability: f64 },
    /// Leave the ring, streaming data away.
    Decommission,
    /// Remove a dead node from the ring.
    Removenode { host_id: String },
    /// Repair keyspaces with the other replicas.
    Repair(KeyspaceTables),
}

/// A failure to report: the message and the exit code.
pub struct Failure {
    pub message: String,
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        Failure {
            message: status.message().to_owned(),
        }
    }
}

/// Runs one nodetool command; returns what to print on success.
pub async fn run(args: NodetoolArgs) -> Result<String, Failure> {
    let address = format!("{}:{}", args.host, args.port);
    let mut client = connect(&address).await?;
    let empty = || tonic::Request::new(Empty {});
    Ok(match args.command {
        NodetoolCommand::Status { keyspace } => {
            let reply = client
                .cluster(cluster_request(&keyspace))
                .await?
                .into_inner();
            format::status(&reply, keyspace.is_some())
        }
        NodetoolCommand::Info { tokens } => {
            format::info(&client.info(empty()).await?.into_inner(), tokens)
        }
        NodetoolCommand::Ring { keyspace } => {
            let reply = client
                .cluster(cluster_request(&keyspace))
                .await?
                .into_inner();
            format::ring(&reply)
        }
        NodetoolCommand::Describecluster => {
            format::describe_cluster(&client.cluster(cluster_request(&None)).await?.into_inner())
        }
        NodetoolCommand::Gossipinfo => {
            format::gossip_info(&client.gossip_info(empty()).await?.into_inner())
        }
        NodetoolCommand::Version => {
            let reply = client.info(empty()).await?.into_inner();
            format!("ReleaseVersion: {}\n", reply.release_version)
        }
        NodetoolCommand::Tablestats {
            human_readable,
            names,
        } => {
            let mut tables = Vec::new();
            let requests = if names.is_empty() {
                vec![TablesRequest::default()]
            } else {
                names.iter().map(|n| split_name(n)).collect()
            };
            for request in requests {
                tables.extend(client.table_stats(request).await?.into_inner().tables);
            }
            format::table_stats(&tables, human_readable)
        }
        NodetoolCommand::Tablehistograms { names } => {
            let request = match names.as_slice() {
                [one] if one.contains('.') => split_name(one),
                [keyspace, table] => TablesRequest {
                    keyspace: keyspace.clone(),
                    tables: vec![table.clone()],
                },
                _ => {
                    return Err(Failure {
                        message: "tablehistograms requires <keyspace> <table> or <keyspace.table> format argument".into(),
                    })
                }
            };
            let reply = client.table_stats(request).await?.into_inner();
            reply.tables.iter().map(format::table_histograms).collect()
        }
        NodetoolCommand::Proxyhistograms => {
            format::proxy_histograms(&client.proxy_histograms(empty()).await?.into_inner())
        }
        NodetoolCommand::Compactionstats { human_readable } => format::compaction_stats(
            &client.compaction_stats(empty()).await?.into_inner(),
            human_readable,
        ),
        NodetoolCommand::Flush(target) => {
            client.flush(target.request()).await?;
            String::new()
        }
        NodetoolCommand::Compact(target) => {
            client.compact(target.request()).await?;
            String::new()
        }
        NodetoolCommand::Cleanup(target) => {
            client.cleanup(target.request()).await?;
            String::new()
        }
        NodetoolCommand::Drain => {
            client.drain(empty()).await?;
            String::new()
        }
        NodetoolCommand::Snapshot {
            tag,
            table,
            keyspaces,
        } => {
            let reply = client
                .snapshot(SnapshotRequest {
                    tag: tag.unwrap_or_default(),
                    keyspaces: keyspaces.clone(),
                    table: table.unwrap_or_default(),
                })
                .await?
                .into_inner();
            let which = keyspaces_label(&keyspaces);
            format!(
                "Requested creating snapshot(s) for {which} with snapshot name [{}] and options {{skipFlush=false}}\nSnapshot directory: {}\n",
                reply.tag, reply.tag
            )
        }
        NodetoolCommand::Listsnapshots => {
            format::list_snapshots(&client.list_snapshots(empty()).await?.into_inner())
        }
        NodetoolCommand::Clearsnapshot {
            tag,
            all,
            keyspaces,
        } => {
            let tag = tag.unwrap_or_default();
            client
                .clear_snapshot(ClearSnapshotRequest {
                    tag: tag.clone(),
                    all,
                    keyspaces: keyspaces.clone(),
                })
                .await?;
            let which = keyspaces_label(&keyspaces);
            if all {
                format!("Requested clearing snapshot(s) for {which} with [all snapshots]\n")
            } else {
                format!("Requested clearing snapshot(s) for {which} with snapshot name [{tag}]\n")
            }
        }
        NodetoolCommand::Getcompactionthroughput => {
            let reply = client
                .get_compaction_throughput(empty())
                .await?
                .into_inner();
            format!("Current compaction throughput: {} MiB/s\n", reply.mib_per_s)
        }
        NodetoolCommand::Setcompactionthroughput { mib_per_s } => {
            client
                .set_compaction_throughput(CompactionThroughput { mib_per_s })
                .await?;
            String::new()
        }
        NodetoolCommand::Gettraceprobability => {
            let reply = client.get_trace_probability(empty()).await?.into_inner();
            format!("Current trace probability: {}\n", reply.probability)
        }
        NodetoolCommand::Settraceprobability { probability } => {
            client
                .set_trace_probability(TraceProbability { probability })
                .await?;
            String::new()
        }
        NodetoolCommand::Decommission => {
            client.decommission(empty()).await?;
            String::new()
        }
        NodetoolCommand::Removenode { host_id } => {
            client.remove_node(RemoveNodeRequest { host_id }).await?;
            String::new()
        }
        NodetoolCommand::Repair(target) => {
            client.repair(target.request()).await?;
            String::new()
        }
    })
}

/// `[all keyspaces]` or `[ks1, ks2]`, as nodetool echoes a request.
fn keyspaces_label(keyspaces: &[String]) -> String {
    if keyspaces.is_empty() {
        "[all keyspaces]".to_owned()
    } else {
        format!("[{}]", keyspaces.join(", "))
    }
}

fn cluster_request(keyspace: &Option<String>) -> ClusterRequest {
    ClusterRequest {
        keyspace: keyspace.clone().unwrap_or_default(),
    }
}

/// `keyspace` or `keyspace.table` as a request.
fn split_name(name: &str) -> TablesRequest {
    match name.split_once('.') {
        Some((keyspace, table)) => TablesRequest {
            keyspace: keyspace.to_owned(),
            tables: vec![table.to_owned()],
        },
        None => TablesRequest {
            keyspace: name.to_owned(),
            tables: Vec::new(),
        },
    }
}

async fn connect(address: &str) -> Result<AdminClient<Channel>, Failure> {
    let failed = |reason: String| Failure {
        message: format!("Failed to connect to '{address}': {reason}"),
    };
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint.connect().await.map_err(|e| {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        failed(reason)
    })?;
    Ok(AdminClient::new(channel))
}

//! Node configuration: one YAML file in Cassandra's vocabulary, then `ILION_*`
//! environment variables, then command-line flags, each layer overriding the
//! one before it.
//!
//! Every key is optional. Loading happens in two steps:
//! 1. each layer is read into a [`RawConfig`] (all fields optional, unknown keys
//!    refused, types checked by serde so the error names the key);
//! 2. the merged layers are resolved into a [`Config`] whose fields are typed
//!    and validated (addresses parse, ports are non-zero and distinct, enums are
//!    known names).
//!
//! Checks that touch the machine (data directories writable, ports free) are in
//! [`Config::check_environment`], run by the server before it starts anything.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ILION_";

/// Highest `num_tokens` accepted; more vnodes than this only slow the ring down.
pub const NUM_TOKENS_MAX: u32 = 1024;

/// Why a configuration was refused. Every variant names the key (or the
/// environment variable, or the file) and says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{key}: directory {path} is not writable: {source}")]
    Unwritable {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{key}: cannot listen on {addr}: {source} (is another node or program using that port?)"
    )]
    PortUnavailable {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One layer of configuration as written by a person: every key optional.
/// The key names are Cassandra's (`cassandra.yaml`) where Cassandra has one.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub cluster_name: Option<String>,
    pub num_tokens: Option<u32>,
    pub seed_provider: Option<Vec<SeedProviderEntry>>,
    pub listen_address: Option<String>,
    pub rpc_address: Option<String>,
    pub native_transport_port: Option<u16>,
    pub storage_port: Option<u16>,
    /// Ilion's admin gRPC port (Cassandra's JMX port number).
    pub admin_port: Option<u16>,
    /// Address of the admin gRPC service (default: listen_address when it is
    /// a loopback address, else 127.0.0.1; nodetool is local by default).
    pub admin_address: Option<String>,
    /// Ilion's HTTP port for Prometheus metrics and health probes.
    pub metrics_port: Option<u16>,
    pub data_file_directories: Option<Vec<String>>,
    pub commitlog_directory: Option<String>,
    pub hints_directory: Option<String>,
    pub commitlog_sync: Option<String>,
    /// A duration: `10000ms`, `10s`, or a bare number of milliseconds.
    pub commitlog_sync_period: Option<DurationValue>,
    pub commitlog_sync_period_in_ms: Option<u64>,
    /// How long a coordinator waits for a single-partition read.
    pub read_request_timeout: Option<DurationValue>,
    /// How long a coordinator waits for a token-range read.
    pub range_request_timeout: Option<DurationValue>,
    /// How long a coordinator waits for a write.
    pub write_request_timeout: Option<DurationValue>,
    pub endpoint_snitch: Option<String>,
    pub phi_convict_threshold: Option<f64>,
    /// How long a replica may be down and still get hints.
    pub max_hint_window: Option<DurationValue>,
    /// Data center of this node (Cassandra keeps it in cassandra-rackdc.properties).
    pub dc: Option<String>,
    /// Rack of this node (Cassandra keeps it in cassandra-rackdc.properties).
    pub rack: Option<String>,
    pub authenticator: Option<String>,
    /// `text` (default) or `json`.
    pub log_format: Option<String>,
    /// What start-up does with a damaged commitlog record that is not a
    /// torn tail: `stop` (default; also `stop_commit`, `die`) or `ignore`.
    pub commit_failure_policy: Option<String>,
    /// Size of a commitlog segment (`32MiB`).
    pub commitlog_segment_size: Option<SizeValue>,
    /// Client connections at once (-1: the default, 1024).
    pub native_transport_max_concurrent_connections: Option<i64>,
    /// Client connections at once from one address (-1: the default, 256).
    pub native_transport_max_concurrent_connections_per_ip: Option<i64>,
    /// Request bytes held in memory at once, all clients (`256MiB`).
    pub native_transport_max_request_data_in_flight: Option<SizeValue>,
    /// Request bytes held in memory at once, clients of one address (`64MiB`).
    pub native_transport_max_request_data_in_flight_per_ip: Option<SizeValue>,
    /// How long a new connection may take to send STARTUP and log in (`10s`).
    pub native_transport_handshake_timeout: Option<DurationValue>,
    /// Memory for prepared statements (`64MiB`); least recently used go first.
    pub prepared_statements_cache_size: Option<SizeValue>,
}

/// A size written `64MiB`, `512KiB`, `1GiB`, `100B`, or a bare number of bytes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn parse(&self) -> Result<u64, String> {
        let text = match self {
            SizeValue::Bytes(bytes) => return Ok(*bytes),
            SizeValue::Text(text) => text.trim(),
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("expected a size such as 64MiB, got {text:?}"))?;
        let unit: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {text:?}; use B, KiB, MiB or GiB"
                ))
            }
        };
        amount
            .checked_mul(unit)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

/// `seed_provider` entry, as in cassandra.yaml:
/// `- class_name: ...SimpleSeedProvider` / `parameters: [{seeds: "a,b"}]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedProviderEntry {
    pub class_name: String,
    #[serde(default)]
    pub parameters: Vec<SeedParameters>,
}

/// The parameters of a seed provider: a comma-separated list of seed addresses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedParameters {
    pub seeds: String,
}

/// A duration written as `250ms`, `10s`, `1m`, or a bare number of milliseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Millis(u64),
    Text(String),
}

impl DurationValue {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            DurationValue::Millis(ms) => Ok(Duration::from_millis(*ms)),
            DurationValue::Text(text) => parse_duration(text, Duration::from_millis(1)),
        }
    }
}

/// A duration written `250ms`, `10s`, `2m` or `1h`; a bare number counts
/// in `bare_unit` (milliseconds in configuration files, as in Cassandra).
pub fn parse_duration(text: &str, bare_unit: Duration) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u32 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as 10000ms or 10s, got {text:?}"))?;
    let unit = match unit.trim() {
        "" => bare_unit,
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?}; use ms, s, m or h"
            ))
        }
    };
    Ok(unit.saturating_mul(amount))
}

impl RawConfig {
    /// Reads one YAML file. An empty file is an empty layer.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        RawConfig::from_yaml(&text).map_err(|message| ConfigError::ParseFile {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses YAML text; the error message names the offending key.
    pub fn from_yaml(text: &str) -> Result<RawConfig, String> {
        if text.trim().is_empty() {
            return Ok(RawConfig::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads every `ILION_<KEY>` variable from `vars`. `ILION_SEEDS` is a
    /// shorthand for the seed list. An unknown `ILION_*` variable is refused:
    /// it is almost always a typo that would otherwise be silently ignored.
    pub fn from_env<I>(vars: I) -> Result<RawConfig, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut mapping = serde_yaml_ng::Mapping::new();
        for (var, value) in vars {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let yaml_value = env_value(&key, &value);
            let field = if key == "seeds" {
                "seed_provider".to_owned()
            } else {
                key
            };
            mapping.insert(serde_yaml_ng::Value::String(field), yaml_value);
        }
        // Deserialise one variable at a time so the error names the variable.
        let mut layer = RawConfig::default();
        for (field, value) in mapping {
            let field_name = field.as_str().unwrap_or_default().to_owned();
            let mut single = serde_yaml_ng::Mapping::new();
            single.insert(field, value);
            let one: RawConfig = serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(single))
                .map_err(|e| ConfigError::Env {
                var: env_var_name(&field_name),
                message: e.to_string(),
            })?;
            layer = layer.overridden_by(one);
        }
        Ok(layer)
    }

    /// Returns `self` with every key that `other` sets replaced by `other`'s value.
    pub fn overridden_by(self, other: RawConfig) -> RawConfig {
        RawConfig {
            cluster_name: other.cluster_name.or(self.cluster_name),
            num_tokens: other.num_tokens.or(self.num_tokens),
            seed_provider: other.seed_provider.or(self.seed_provider),
            listen_address: other.listen_address.or(self.listen_address),
            rpc_address: other.rpc_address.or(self.rpc_address),
            native_transport_port: other.native_transport_port.or(self.native_transport_port),
            storage_port: other.storage_port.or(self.storage_port),
            admin_port: other.admin_port.or(self.admin_port),
            admin_address: other.admin_address.or(self.admin_address),
            metrics_port: other.metrics_port.or(self.metrics_port),
            data_file_directories: other.data_file_directories.or(self.data_file_directories),
            commitlog_directory: other.commitlog_directory.or(self.commitlog_directory),
            hints_directory: other.hints_directory.or(self.hints_directory),
            commitlog_sync: other.commitlog_sync.or(self.commitlog_sync),
            commitlog_sync_period: other.commitlog_sync_period.or(self.commitlog_sync_period),
            commitlog_sync_period_in_ms: other
                .commitlog_sync_period_in_ms
                .or(self.commitlog_sync_period_in_ms),
            read_request_timeout: other.read_request_timeout.or(self.read_request_timeout),
            range_request_timeout: other.range_request_timeout.or(self.range_request_timeout),
            write_request_timeout: other.write_request_timeout.or(self.write_request_timeout),
            endpoint_snitch: other.endpoint_snitch.or(self.endpoint_snitch),
            phi_convict_threshold: other.phi_convict_threshold.or(self.phi_convict_threshold),
            max_hint_window: other.max_hint_window.or(self.max_hint_window),
            dc: other.dc.or(self.dc),
            rack: other.rack.or(self.rack),
            authenticator: other.authenticator.or(self.authenticator),
            log_format: other.log_format.or(self.log_format),
            commit_failure_policy: other.commit_failure_policy.or(self.commit_failure_policy),
            commitlog_segment_size: other.commitlog_segment_size.or(self.commitlog_segment_size),
            native_transport_max_concurrent_connections: other
                .native_transport_max_concurrent_connections
                .or(self.native_transport_max_concurrent_connections),
            native_transport_max_concurrent_connections_per_ip: other
                .native_transport_max_concurrent_connections_per_ip
                .or(self.native_transport_max_concurrent_connections_per_ip),
            native_transport_max_request_data_in_flight: other
                .native_transport_max_request_data_in_flight
                .or(self.native_transport_max_request_data_in_flight),
            native_transport_max_request_data_in_flight_per_ip: other
                .native_transport_max_request_data_in_flight_per_ip
                .or(self.native_transport_max_request_data_in_flight_per_ip),
            native_transport_handshake_timeout: other
                .native_transport_handshake_timeout
                .or(self.native_transport_handshake_timeout),
            prepared_statements_cache_size: other
                .prepared_statements_cache_size
                .or(self.prepared_statements_cache_size),
        }
    }
}

fn env_var_name(field: &str) -> String {
    let key = if field == "seed_provider" {
        "seeds"
    } else {
        field
    };
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Turns an environment variable's text into the YAML value its key expects:
/// lists are comma-separated, the seed shorthand becomes a seed provider, and
/// everything else is read as a YAML scalar (so `9042` is a number).
fn env_value(key: &str, value: &str) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match key {
        "seeds" => {
            let mut params = serde_yaml_ng::Mapping::new();
            params.insert(Value::String("seeds".into()), Value::String(value.into()));
            let mut entry = serde_yaml_ng::Mapping::new();
            entry.insert(
                Value::String("class_name".into()),
                Value::String(SIMPLE_SEED_PROVIDER.into()),
            );
            entry.insert(
                Value::String("parameters".into()),
                Value::Sequence(vec![Value::Mapping(params)]),
            );
            Value::Sequence(vec![Value::Mapping(entry)])
        }
        "data_file_directories" => Value::Sequence(
            value
                .split(',')
                .map(|dir| Value::String(dir.trim().to_owned()))
                .collect(),
        ),
        _ => serde_yaml_ng::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned())),
    }
}

const SIMPLE_SEED_PROVIDER: &str = "org.apache.cassandra.locator.SimpleSeedProvider";

/// When the commitlog is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitlogSync {
    /// fsync every `period`; a crash may lose up to one period of acknowledged writes.
    Periodic { period: Duration },
    /// Acknowledge a write only after its record is fsynced; concurrent writers share
    /// one fsync (group commit).
    Batch,
}

/// Where a node learns its data center and rack from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snitch {
    /// One data center, one rack, whatever `dc`/`rack` say.
    Simple,
    /// `dc`/`rack` from this node's configuration, spread to peers by gossip.
    GossipingPropertyFile,
}

impl Snitch {
    /// The snitch's name as Cassandra spells it.
    pub fn class_name(self) -> &'static str {
        match self {
            Snitch::Simple => "org.apache.cassandra.locator.SimpleSnitch",
            Snitch::GossipingPropertyFile => {
                "org.apache.cassandra.locator.GossipingPropertyFileSnitch"
            }
        }
    }
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticator {
    AllowAll,
    Password,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A validated node configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cluster_name: String,
    pub num_tokens: u32,
    /// Internode addresses of the seeds (a seed without a port uses this
    /// node's storage_port).
    pub seeds: Vec<SocketAddr>,
    /// Phi above which gossip convicts a silent peer (Cassandra's 8).
    pub phi_convict_threshold: f64,
    pub max_hint_window: Duration,
    pub listen_address: IpAddr,
    pub rpc_address: IpAddr,
    pub native_transport_port: u16,
    pub storage_port: u16,
    pub admin_address: IpAddr,
    pub admin_port: u16,
    pub metrics_port: u16,
    pub data_file_directories: Vec<PathBuf>,
    pub commitlog_directory: PathBuf,
    pub hints_directory: PathBuf,
    pub commitlog_sync: CommitlogSync,
    pub request_timeouts: replication::RequestTimeouts,
    pub endpoint_snitch: Snitch,
    pub dc: String,
    pub rack: String,
    pub authenticator: Authenticator,
    pub log_format: LogFormat,
    pub commit_failure_policy: storage_lsm::ReplayPolicy,
    pub commitlog_segment_size_bytes: u64,
    pub client_limits: cql_frontend::limits::LimitsConfig,
    pub prepared_statements_cache_bytes: usize,
}

/// Defaults: a single node on 127.0.0.1 with everything under `./data`.
pub mod defaults {
    pub const CLUSTER_NAME: &str = "Test Cluster";
    pub const NUM_TOKENS: u32 = 16;
    pub const NATIVE_TRANSPORT_PORT: u16 = 9042;
    pub const STORAGE_PORT: u16 = 7000;
    pub const ADMIN_PORT: u16 = 7199;
    pub const METRICS_PORT: u16 = 9180;
    pub const DATA_ROOT: &str = "data";
    pub const COMMITLOG_SYNC_PERIOD_MS: u64 = 10_000;
    pub const DC: &str = "datacenter1";
    pub const RACK: &str = "rack1";
    pub const PHI_CONVICT_THRESHOLD: f64 = 8.0;
    /// Cassandra's default `max_hint_window`.
    pub const MAX_HINT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3 * 3600);
    pub const PREPARED_STATEMENTS_CACHE_BYTES: usize = 64 * 1024 * 1024;
    pub const COMMITLOG_SEGMENT_BYTES: usize = 32 * 1024 * 1024;
}

impl Config {
    /// Validates a merged layer and fills in defaults.
    pub fn resolve(raw: RawConfig) -> Result<Config, ConfigError> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let client_limits = resolve_client_limits(&raw)?;
        let listen_address = match &raw.listen_address {
            Some(text) => parse_address("listen_address", text)?,
            None => loopback,
        };
        let rpc_address = match &raw.rpc_address {
            Some(text) => parse_address("rpc_address", text)?,
            None => listen_address,
        };
        let storage_port = port("storage_port", raw.storage_port, defaults::STORAGE_PORT)?;
        let admin_address = match &raw.admin_address {
            Some(text) => parse_address("admin_address", text)?,
            None if listen_address.is_loopback() => listen_address,
            None => loopback,
        };
        let data_root = PathBuf::from(defaults::DATA_ROOT);
        let data_file_directories = match raw.data_file_directories {
            Some(dirs) if dirs.is_empty() => {
                return Err(invalid(
                    "data_file_directories",
                    "needs at least one directory",
                ))
            }
            Some(dirs) => dirs.into_iter().map(PathBuf::from).collect(),
            None => vec![data_root.join("data")],
        };
        let defaults = replication::RequestTimeouts::default();
        let config = Config {
            cluster_name: non_empty("cluster_name", raw.cluster_name, defaults::CLUSTER_NAME)?,
            num_tokens: resolve_num_tokens(raw.num_tokens)?,
            seeds: resolve_seeds(raw.seed_provider.as_deref(), listen_address, storage_port)?,
            phi_convict_threshold: resolve_phi(raw.phi_convict_threshold)?,
            max_hint_window: timeout(
                "max_hint_window",
                raw.max_hint_window.as_ref(),
                defaults::MAX_HINT_WINDOW,
            )?,
            listen_address,
            rpc_address,
            native_transport_port: port(
                "native_transport_port",
                raw.native_transport_port,
                defaults::NATIVE_TRANSPORT_PORT,
            )?,
            storage_port,
            admin_address,
            admin_port: port("admin_port", raw.admin_port, defaults::ADMIN_PORT)?,
            metrics_port: port("metrics_port", raw.metrics_port, defaults::METRICS_PORT)?,
            data_file_directories,
            commitlog_directory: raw
                .commitlog_directory
                .map(PathBuf::from)
                .unwrap_or_else(|| data_root.join("commitlog")),
            hints_directory: raw
                .hints_directory
                .map(PathBuf::from)
                .unwrap_or_else(|| data_root.join("hints")),
            commitlog_sync: resolve_commitlog_sync(
                raw.commitlog_sync.as_deref(),
                raw.commitlog_sync_period.as_ref(),
                raw.commitlog_sync_period_in_ms,
            )?,
            request_timeouts: replication::RequestTimeouts {
                read: timeout(
                    "read_request_timeout",
                    raw.read_request_timeout.as_ref(),
                    defaults.read,
                )?,
                range: timeout(
                    "range_request_timeout",
                    raw.range_request_timeout.as_ref(),
                    defaults.range,
                )?,
                write: timeout(
                    "write_request_timeout",
                    raw.write_request_timeout.as_ref(),
                    defaults.write,
                )?,
            },
            endpoint_snitch: resolve_snitch(raw.endpoint_snitch.as_deref())?,
            dc: non_empty("dc", raw.dc, defaults::DC)?,
            rack: non_empty("rack", raw.rack, defaults::RACK)?,
            authenticator: resolve_authenticator(raw.authenticator.as_deref())?,
            log_format: resolve_log_format(raw.log_format.as_deref())?,
            commit_failure_policy: resolve_commit_failure_policy(
                raw.commit_failure_policy.as_deref(),
            )?,
            client_limits,
            commitlog_segment_size_bytes: size(
                "commitlog_segment_size",
                raw.commitlog_segment_size.as_ref(),
                defaults::COMMITLOG_SEGMENT_BYTES,
                1024 * 1024,
            )? as u64,
            prepared_statements_cache_bytes: size(
                "prepared_statements_cache_size",
                raw.prepared_statements_cache_size.as_ref(),
                defaults::PREPARED_STATEMENTS_CACHE_BYTES,
                1024 * 1024,
            )?,
        };
        config.check_distinct_ports()?;
        Ok(config)
    }

    fn check_distinct_ports(&self) -> Result<(), ConfigError> {
        let ports: [(&'static str, u16); 4] = [
            ("native_transport_port", self.native_transport_port),
            ("storage_port", self.storage_port),
            ("admin_port", self.admin_port),
            ("metrics_port", self.metrics_port),
        ];
        for (i, (key, port)) in ports.iter().enumerate() {
            for (other_key, other_port) in ports.iter().skip(i + 1) {
                if port == other_port {
                    return Err(invalid(
                        other_key,
                        format!("port {other_port} is already used by {key}; give each port its own number"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks what only the machine can tell: every data directory can be
    /// created and written, and the client port is free. Run before the node
    /// starts anything, so a bad setting stops it with a clear message.
    pub fn check_environment(&self) -> Result<(), ConfigError> {
        for dir in &self.data_file_directories {
            check_writable("data_file_directories", dir)?;
        }
        check_writable("commitlog_directory", &self.commitlog_directory)?;
        check_writable("hints_directory", &self.hints_directory)?;
        let addr = self.native_address();
        TcpListener::bind(addr).map_err(|source| ConfigError::PortUnavailable {
            key: "native_transport_port",
            addr,
            source,
        })?;
        Ok(())
    }

    /// Where CQL clients connect.
    pub fn native_address(&self) -> SocketAddr {
        SocketAddr::new(self.rpc_address, self.native_transport_port)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster_name={:?} listen_address={} rpc_address={} native_transport_port={} \
             storage_port={} num_tokens={} data_file_directories={:?} commitlog_directory={} \
             commitlog_sync={:?} dc={} rack={}",
            self.cluster_name,
            self.listen_address,
            self.rpc_address,
            self.native_transport_port,
            self.storage_port,
            self.num_tokens,
            self.data_file_directories,
            self.commitlog_directory.display(),
            self.commitlog_sync,
            self.dc,
            self.rack,
        )
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

fn non_empty(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(invalid(key, "must not be empty")),
        Some(v) => Ok(v),
        None => Ok(default.to_owned()),
    }
}

fn parse_address(key: &'static str, text: &str) -> Result<IpAddr, ConfigError> {
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse().map_err(|_| {
        invalid(
            key,
            format!("{text:?} is not an IP address (write e.g. 127.0.0.1)"),
        )
    })
}

fn port(key: &'static str, value: Option<u16>, default: u16) -> Result<u16, ConfigError> {
    match value {
        Some(0) => Err(invalid(key, "port 0 is not allowed; choose 1-65535")),
        Some(p) => Ok(p),
        None => Ok(default),
    }
}

fn resolve_num_tokens(value: Option<u32>) -> Result<u32, ConfigError> {
    match value {
        None => Ok(defaults::NUM_TOKENS),
        Some(n) if (1..=NUM_TOKENS_MAX).contains(&n) => Ok(n),
        Some(n) => Err(invalid(
            "num_tokens",
            format!("{n} is out of range; choose 1-{NUM_TOKENS_MAX} (default 16)"),
        )),
    }
}

/// Phi threshold: Cassandra's default 8; sensible values are 5 to 16.
fn resolve_phi(value: Option<f64>) -> Result<f64, ConfigError> {
    match value {
        None => Ok(defaults::PHI_CONVICT_THRESHOLD),
        Some(phi) if (1.0..=100.0).contains(&phi) => Ok(phi),
        Some(phi) => Err(invalid(
            "phi_convict_threshold",
            format!(
                "{phi} is out of range; use a value from 1 to 100 (default 8, 5 to 16 is usual)"
            ),
        )),
    }
}

fn resolve_seeds(
    providers: Option<&[SeedProviderEntry]>,
    listen_address: IpAddr,
    storage_port: u16,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let Some(providers) = providers else {
        return Ok(vec![SocketAddr::new(listen_address, storage_port)]);
    };
    let mut seeds = Vec::new();
    for provider in providers {
        let class = provider.class_name.rsplit('.').next().unwrap_or_default();
        if class != "SimpleSeedProvider" {
            return Err(invalid(
                "seed_provider",
                format!(
                    "class_name {:?} is not supported; use org.apache.cassandra.locator.SimpleSeedProvider",
                    provider.class_name
                ),
            ));
        }
        for params in &provider.parameters {
            for seed in params
                .seeds
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                // `host` or `host:port` (the seed's storage port).
                let seed_addr = match seed.parse::<SocketAddr>() {
                    Ok(addr) => addr,
                    Err(_) => SocketAddr::new(parse_address("seed_provider", seed)?, storage_port),
                };
                seeds.push(seed_addr);
            }
        }
    }
    if seeds.is_empty() {
        return Err(invalid(
            "seed_provider",
            "lists no seeds; give at least one address in parameters: [{seeds: \"127.0.0.1\"}]",
        ));
    }
    Ok(seeds)
}

/// A timeout or window: a positive duration.
fn timeout(
    key: &'static str,
    value: Option<&DurationValue>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let duration = value.parse().map_err(|message| invalid(key, message))?;
    if duration.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(duration)
}

fn resolve_commitlog_sync(
    mode: Option<&str>,
    period: Option<&DurationValue>,
    period_in_ms: Option<u64>,
) -> Result<CommitlogSync, ConfigError> {
    let period = match (period, period_in_ms) {
        (Some(value), _) => value
            .parse()
            .map_err(|message| invalid("commitlog_sync_period", message))?,
        (None, Some(ms)) => Duration::from_millis(ms),
        (None, None) => Duration::from_millis(defaults::COMMITLOG_SYNC_PERIOD_MS),
    };
    match mode.unwrap_or("periodic") {
        "periodic" => {
            if period.is_zero() {
                return Err(invalid(
                    "commitlog_sync_period",
                    "must be greater than zero in periodic mode",
                ));
            }
            Ok(CommitlogSync::Periodic { period })
        }
        "batch" | "group" => Ok(CommitlogSync::Batch),
        other => Err(invalid(
            "commitlog_sync",
            format!("{other:?} is not a sync mode; use periodic, batch or group"),
        )),
    }
}

fn resolve_snitch(name: Option<&str>) -> Result<Snitch, ConfigError> {
    let Some(name) = name else {
        return Ok(Snitch::Simple);
    };
    match name.rsplit('.').next().unwrap_or_default() {
        "SimpleSnitch" => Ok(Snitch::Simple),
        "GossipingPropertyFileSnitch" => Ok(Snitch::GossipingPropertyFile),
        _ => Err(invalid(
            "endpoint_snitch",
            format!("{name:?} is not supported; use SimpleSnitch or GossipingPropertyFileSnitch"),
        )),
    }
}

fn resolve_authenticator(name: Option<&str>) -> Result<Authenticator, ConfigError> {
    let Some(name) = name else {
        return Ok(Authenticator::AllowAll);
    };
    match name.rsplit('.').next().unwrap_or_default() {
        "AllowAllAuthenticator" => Ok(Authenticator::AllowAll),
        "PasswordAuthenticator" => Ok(Authenticator::Password),
        _ => Err(invalid(
            "authenticator",
            format!(
                "{name:?} is not supported; use AllowAllAuthenticator or PasswordAuthenticator"
            ),
        )),
    }
}

fn resolve_commit_failure_policy(
    name: Option<&str>,
) -> Result<storage_lsm::ReplayPolicy, ConfigError> {
    match name.unwrap_or("stop") {
        "stop" | "stop_commit" | "die" => Ok(storage_lsm::ReplayPolicy::Stop),
        "ignore" => Ok(storage_lsm::ReplayPolicy::SkipDamaged),
        other => Err(invalid(
            "commit_failure_policy",
            format!("{other:?} is not a policy; use stop, stop_commit, die or ignore"),
        )),
    }
}

/// A size key in bytes, at least `min_bytes`.
fn size(
    key: &'static str,
    value: Option<&SizeValue>,
    default: usize,
    min_bytes: u64,
) -> Result<usize, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let bytes = value.parse().map_err(|message| invalid(key, message))?;
    if bytes < min_bytes {
        return Err(invalid(
            key,
            format!("{bytes} bytes is below the minimum of {min_bytes} bytes"),
        ));
    }
    usize::try_from(bytes).map_err(|_| invalid(key, format!("{bytes} bytes is too large")))
}

/// A connection count: a positive number, or -1 for the default.
fn connection_count(
    key: &'static str,
    value: Option<i64>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None | Some(-1) => Ok(default),
        Some(n) if n >= 1 => usize::try_from(n).map_err(|_| invalid(key, "too large")),
        Some(n) => Err(invalid(
            key,
            format!("{n} is not a connection count; give a positive number or -1 for the default"),
        )),
    }
}

fn resolve_client_limits(
    raw: &RawConfig,
) -> Result<cql_frontend::limits::LimitsConfig, ConfigError> {
    let defaults = cql_frontend::limits::LimitsConfig::default();
    // A frame may be as large as the protocol allows; a budget smaller
    // than one frame would refuse requests drivers send.
    let frame = cql_frontend::protocol::frame::FRAME_BODY_BYTES_MAX as u64;
    Ok(cql_frontend::limits::LimitsConfig {
        connections_max: connection_count(
            "native_transport_max_concurrent_connections",
            raw.native_transport_max_concurrent_connections,
            defaults.connections_max,
        )?,
        connections_per_ip_max: connection_count(
            "native_transport_max_concurrent_connections_per_ip",
            raw.native_transport_max_concurrent_connections_per_ip,
            defaults.connections_per_ip_max,
        )?,
        request_bytes_in_flight_max: size(
            "native_transport_max_request_data_in_flight",
            raw.native_transport_max_request_data_in_flight.as_ref(),
            defaults.request_bytes_in_flight_max,
            frame,
        )?,
        request_bytes_in_flight_per_ip_max: size(
            "native_transport_max_request_data_in_flight_per_ip",
            raw.native_transport_max_request_data_in_flight_per_ip
                .as_ref(),
            defaults.request_bytes_in_flight_per_ip_max,
            frame,
        )?,
        handshake_timeout: timeout(
            "native_transport_handshake_timeout",
            raw.native_transport_handshake_timeout.as_ref(),
            defaults.handshake_timeout,
        )?,
    })
}

fn resolve_log_format(name: Option<&str>) -> Result<LogFormat, ConfigError> {
    match name.unwrap_or("text") {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid(
            "log_format",
            format!("{other:?} is not a log format; use text or json"),
        )),
    }
}

fn check_writable(key: &'static str, dir: &Path) -> Result<(), ConfigError> {
    let unwritable = |source| ConfigError::Unwritable {
        key,
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let probe = dir.join(".ilion-write-probe");
    std::fs::write(&probe, b"probe").map_err(unwritable)?;
    std::fs::remove_file(&probe).map_err(unwritable)?;
    Ok(())
}

/// The keys a YAML file may set, for `--help` and error messages.
pub fn known_keys() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("cluster_name", "name shared by every node of the cluster"),
        ("num_tokens", "vnodes owned by this node (default 16)"),
        ("seed_provider", "SimpleSeedProvider with a seeds list"),
        ("listen_address", "address peers reach this node on"),
        ("rpc_address", "address CQL clients connect to"),
        ("native_transport_port", "CQL port (default 9042)"),
        ("storage_port", "internode port (default 7000)"),
        ("admin_port", "admin gRPC port (default 7199)"),
        (
            "phi_convict_threshold",
            "gossip failure detector sensitivity (default 8)",
        ),
        (
            "max_hint_window",
            "how long a down replica still gets hints (default 3h)",
        ),
        (
            "admin_address",
            "admin gRPC address (default: listen_address if loopback, else 127.0.0.1)",
        ),
        ("metrics_port", "Prometheus/probes HTTP port (default 9180)"),
        ("data_file_directories", "where SSTables live"),
        ("commitlog_directory", "where commitlog segments live"),
        ("hints_directory", "where hints live"),
        ("commitlog_sync", "periodic (default) or batch"),
        (
            "commitlog_sync_period",
            "fsync period in periodic mode (default 10000ms)",
        ),
        (
            "endpoint_snitch",
            "SimpleSnitch or GossipingPropertyFileSnitch",
        ),
        ("dc", "data center of this node"),
        ("rack", "rack of this node"),
        (
            "authenticator",
            "AllowAllAuthenticator or PasswordAuthenticator",
        ),
        ("log_format", "text (default) or json"),
        (
            "commitlog_segment_size",
            "size of a commitlog segment (default 32MiB; a mutation may be half of it)",
        ),
        (
            "commit_failure_policy",
            "damaged commitlog at start-up: stop (default) or ignore (skip the damaged record)",
        ),
        (
            "native_transport_max_concurrent_connections",
            "client connections at once (default 1024)",
        ),
        (
            "native_transport_max_concurrent_connections_per_ip",
            "client connections at once from one address (default 256)",
        ),
        (
            "native_transport_max_request_data_in_flight",
            "request bytes in memory at once (default 256MiB)",
        ),
        (
            "native_transport_max_request_data_in_flight_per_ip",
            "request bytes in memory at once for one address (default 64MiB)",
        ),
        (
            "native_transport_handshake_timeout",
            "time a new connection has to start and log in (default 10s)",
        ),
        (
            "prepared_statements_cache_size",
            "memory for prepared statements (default 64MiB)",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_a_single_local_node_under_data() {
        let config = Config::resolve(RawConfig::default()).unwrap();
        assert_eq!(config.rpc_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.native_transport_port, 9042);
        assert_eq!(
            config.data_file_directories,
            vec![PathBuf::from("data/data")]
        );
        assert_eq!(config.commitlog_directory, PathBuf::from("data/commitlog"));
        assert_eq!(config.seeds, vec![SocketAddr::from(([127, 0, 0, 1], 7000))]);
        assert_eq!(
            config.commitlog_sync,
            CommitlogSync::Periodic {
                period: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn file_then_env_then_flags() {
        let file = RawConfig::from_yaml(
            "cluster_name: from-file\nnative_transport_port: 9100\nstorage_port: 7100\nnum_tokens: 8\n",
        )
        .unwrap();
        let env = RawConfig::from_env(env(&[
            ("ILION_NATIVE_TRANSPORT_PORT", "9200"),
            ("ILION_STORAGE_PORT", "7200"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        let flags = RawConfig {
            native_transport_port: Some(9300),
            ..RawConfig::default()
        };
        let config = Config::resolve(file.overridden_by(env).overridden_by(flags)).unwrap();
        assert_eq!(config.cluster_name, "from-file");
        assert_eq!(config.num_tokens, 8);
        assert_eq!(config.storage_port, 7200, "env beats file");
        assert_eq!(config.native_transport_port, 9300, "flags beat env");
    }

    #[test]
    fn cassandra_yaml_shapes_are_understood() {
        let raw = RawConfig::from_yaml(
            r#"
cluster_name: 'Ilion Cluster'
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:7000,127.0.0.2"
listen_address: 127.0.0.2
data_file_directories:
  - /var/lib/ilion/data
commitlog_sync: batch
commitlog_sync_period: 2s
endpoint_snitch: org.apache.cassandra.locator.GossipingPropertyFileSnitch
"#,
        )
        .unwrap();
        let config = Config::resolve(raw).unwrap();
        assert_eq!(config.seeds.len(), 2);
        assert_eq!(config.rpc_address.to_string(), "127.0.0.2");
        assert_eq!(config.commitlog_sync, CommitlogSync::Batch);
        assert_eq!(config.endpoint_snitch, Snitch::GossipingPropertyFile);
        assert_eq!(
            config.admin_address.to_string(),
            "127.0.0.2",
            "admin follows a loopback listen_address"
        );
    }

    #[test]
    fn admin_stays_on_loopback_unless_configured() {
        let raw = RawConfig::from_yaml("listen_address: 10.1.2.3\n").unwrap();
        let config = Config::resolve(raw).unwrap();
        assert_eq!(config.admin_address.to_string(), "127.0.0.1");
        let raw =
            RawConfig::from_yaml("listen_address: 10.1.2.3\nadmin_address: 10.1.2.3\n").unwrap();
        assert_eq!(
            Config::resolve(raw).unwrap().admin_address.to_string(),
            "10.1.2.3"
        );
    }

    #[test]
    fn env_seeds_and_directories_are_comma_lists() {
        let raw = RawConfig::from_env(env(&[
            ("ILION_SEEDS", "127.0.0.1, 127.0.0.3"),
            ("ILION_DATA_FILE_DIRECTORIES", "/a,/b"),
        ]))
        .unwrap();
        let config = Config::resolve(raw).unwrap();
        assert_eq!(config.seeds.len(), 2);
        assert_eq!(
            config.data_file_directories,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = RawConfig::from_yaml("native_transport_prot: 9042\n").unwrap_err();
        assert!(err.contains("native_transport_prot"), "{err}");
    }

    #[test]
    fn bad_type_in_file_names_the_key() {
        let err = RawConfig::from_yaml("native_transport_port: lots\n").unwrap_err();
        assert!(err.contains("native_transport_port"), "{err}");
    }

    #[test]
    fn unknown_env_variable_is_refused() {
        let err = RawConfig::from_env(env(&[("ILION_NATIVE_PORT", "1")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ILION_NATIVE_PORT"), "{text}");
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn bad_env_type_names_the_variable() {
        let err = RawConfig::from_env(env(&[("ILION_NUM_TOKENS", "many")])).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("environment variable ILION_NUM_TOKENS"));
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("listen_address: not-an-ip\n", "listen_address"),
            ("native_transport_port: 0\n", "native_transport_port"),
            ("num_tokens: 5000\n", "num_tokens"),
            ("commitlog_sync: sometimes\n", "commitlog_sync"),
            (
                "commitlog_sync_period: 10 parsecs\n",
                "commitlog_sync_period",
            ),
            ("endpoint_snitch: Ec2Snitch\n", "endpoint_snitch"),
            ("authenticator: LdapAuthenticator\n", "authenticator"),
            ("data_file_directories: []\n", "data_file_directories"),
            ("storage_port: 9042\n", "storage_port"),
            ("cluster_name: ''\n", "cluster_name"),
            ("log_format: xml\n", "log_format"),
            (
                "seed_provider:\n  - class_name: K8sSeedProvider\n",
                "seed_provider",
            ),
        ];
        for (yaml, key) in cases {
            let raw = RawConfig::from_yaml(yaml).unwrap();
            let err = Config::resolve(raw).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{yaml:?} gave {err}");
        }
    }

    #[test]
    fn unwritable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let raw = RawConfig {
            data_file_directories: Some(vec![file.join("sub").display().to_string()]),
            commitlog_directory: Some(dir.path().join("cl").display().to_string()),
            hints_directory: Some(dir.path().join("h").display().to_string()),
            native_transport_port: Some(1), // never reached
            ..RawConfig::default()
        };
        let err = Config::resolve(raw)
            .unwrap()
            .check_environment()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("data_file_directories:"), "{err}");
    }

    #[test]
    fn port_in_use_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let raw = RawConfig {
            data_file_directories: Some(vec![dir.path().join("d").display().to_string()]),
            commitlog_directory: Some(dir.path().join("cl").display().to_string()),
            hints_directory: Some(dir.path().join("h").display().to_string()),
            native_transport_port: Some(port),
            ..RawConfig::default()
        };
        let err = Config::resolve(raw)
            .unwrap()
            .check_environment()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("native_transport_port:"), "{err}");
        assert!(err.contains(&port.to_string()), "{err}");
    }
}

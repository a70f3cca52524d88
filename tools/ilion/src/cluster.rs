//! `ilion cluster`: a ccm-style launcher of a local cluster for development
//! and tests. Node `i` (from 1) binds 127.0.0.i (from `--base-address`), so
//! every node keeps Cassandra's port numbers on an address of its own.
//!
//! Layout of the cluster directory (`--dir`, default `.ilion-cluster`):
//!
//! ```text
//! cluster.json         name, ports and the nodes (address, dc, rack)
//! node1/ilion.yaml     the node's configuration (cassandra.yaml keys)
//! node1/data/          data, commitlog and hints
//! node1/node.log       what the node printed
//! node1/pid            the running process
//! ```
//!
//! Nodes run in process groups of their own, so they outlive the command
//! that started them and a Ctrl-C in its terminal does not reach them. A pid
//! is only signalled when its command line names the node's configuration.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

const CLUSTER_FILE: &str = "cluster.json";
/// How long `stop` waits for a node to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Largest cluster the launcher makes (addresses 127.0.0.1 … .100).
const NODES_MAX: usize = 100;
/// Nodes per data center when `-n` is not given.
const DEFAULT_NODES: usize = 3;

fn no_cluster(dir: &Path) -> anyhow::Error {
    anyhow!(
        "no cluster in {}; create one with `ilion cluster start -n 3`",
        dir.display()
    )
}

/// `ilion cluster <command>`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Directory holding the cluster's nodes.
    #[arg(
        long,
        global = true,
        env = "ILION_CLUSTER_DIR",
        default_value = ".ilion-cluster"
    )]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the cluster if needed and start it (or one node); waits until
    /// the nodes serve CQL.
    Start(StartArgs),
    /// Show each node: address, process, whether it serves CQL.
    Status,
    /// Stop the cluster or one node (SIGTERM: flushes, then exits).
    Stop { node: Option<String> },
    /// Kill the cluster or one node (SIGKILL: a crash).
    Kill { node: Option<String> },
    /// Print a node's log.
    Logs {
        node: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Kill every node and remove the cluster directory.
    Clear,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Start only this node (node1, node2, …) of an existing cluster.
    pub node: Option<String>,
    /// Nodes per data center, when creating the cluster (default 3).
    #[arg(short = 'n', long = "nodes")]
    pub nodes: Option<usize>,
    /// Data centers (datacenter1, datacenter2, …, as ccm names them), when creating the cluster.
    #[arg(long, default_value_t = 1)]
    pub dcs: usize,
    /// cluster_name of the nodes.
    #[arg(long, default_value = "Test Cluster")]
    pub name: String,
    /// Address of node1; node i gets the i-th address from it.
    #[arg(long, default_value = "127.0.0.1")]
    pub base_address: std::net::Ipv4Addr,
    /// Vnodes per node.
    #[arg(long, default_value_t = crate::config::defaults::NUM_TOKENS)]
    pub num_tokens: u32,
    #[arg(long, default_value_t = crate::config::defaults::NATIVE_TRANSPORT_PORT)]
    pub native_port: u16,
    #[arg(long, default_value_t = crate::config::defaults::STORAGE_PORT)]
    pub storage_port: u16,
    #[arg(long, default_value_t = crate::config::defaults::ADMIN_PORT)]
    pub admin_port: u16,
    #[arg(long, default_value_t = crate::config::defaults::METRICS_PORT)]
    pub metrics_port: u16,
    /// Longest wait for the nodes to serve CQL, in seconds.
    #[arg(long, default_value_t = 60)]
    pub wait_seconds: u64,
    /// An extra configuration key for every node, e.g.
    /// `--conf max_hint_window=10m` (repeatable; not the keys the launcher
    /// writes itself).
    #[arg(long = "conf", value_name = "KEY=VALUE", value_parser = parse_conf)]
    pub conf: Vec<(String, String)>,
}

/// Keys `ilion cluster` writes into each node's file itself.
const LAUNCHER_KEYS: &[&str] = &[
    "cluster_name",
    "num_tokens",
    "listen_address",
    "rpc_address",
    "native_transport_port",
    "storage_port",
    "admin_port",
    "metrics_port",
    "seed_provider",
    "endpoint_snitch",
    "dc",
    "rack",
    "data_file_directories",
    "commitlog_directory",
    "hints_directory",
];

fn parse_conf(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
    {
        return Err(format!(
            "{key:?} is not a configuration key (lower case and _)"
        ));
    }
    if LAUNCHER_KEYS.contains(&key) {
        return Err(format!(
            "{key} is set by `ilion cluster` itself; use its own flag"
        ));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// The ports every node of the cluster uses, each on its own address.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Ports {
    native: u16,
    storage: u16,
    admin: u16,
    metrics: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeSpec {
    name: String,
    address: IpAddr,
    dc: String,
    rack: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterSpec {
    name: String,
    ports: Ports,
    num_tokens: u32,
    nodes: Vec<NodeSpec>,
    /// Extra configuration keys every node gets.
    #[serde(default)]
    conf: Vec<(String, String)>,
}

/// A node of a cluster on disk.
struct NodeDir<'a> {
    spec: &'a NodeSpec,
    dir: PathBuf,
    ports: Ports,
}

impl NodeDir<'_> {
    fn config(&self) -> PathBuf {
        self.dir.join("ilion.yaml")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }

    /// The pid of this node's running process, if it runs.
    fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // A zombie (state Z, after the ')' closing the command name) is dead.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim().chars().next());
        let config = self.config().display().to_string();
        let ours = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|arg| arg == config);
        (ours && state != Some('Z')).then_some(pid)
    }

    /// Whether the node answers its readiness probe (serves CQL).
    fn ready(&self) -> bool {
        http_get(
            SocketAddr::new(self.spec.address, self.ports.metrics),
            "/probes/ready",
        )
        .is_some_and(|(status, _)| status == 200)
    }

    fn write_config(&self, cluster: &ClusterSpec, seeds: &str) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        let yaml = format!(
            "# Written by `ilion cluster`; edit and restart the node to change it.\n\
             cluster_name: {name:?}\n\
             num_tokens: {tokens}\n\
             listen_address: {address}\n\
             rpc_address: {address}\n\
             native_transport_port: {native}\n\
             storage_port: {storage}\n\
             admin_port: {admin}\n\
             metrics_port: {metrics}\n\
             seed_provider:\n  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n    parameters:\n      - seeds: \"{seeds}\"\n\
             endpoint_snitch: GossipingPropertyFileSnitch\n\
             dc: {dc}\n\
             rack: {rack}\n\
             data_file_directories:\n  - {data_dir}\n\
             commitlog_directory: {commitlog}\n\
             hints_directory: {hints}\n",
            name = cluster.name,
            tokens = cluster.num_tokens,
            address = self.spec.address,
            native = self.ports.native,
            storage = self.ports.storage,
            admin = self.ports.admin,
            metrics = self.ports.metrics,
            dc = self.spec.dc,
            rack = self.spec.rack,
            data_dir = data.join("data").display(),
            commitlog = data.join("commitlog").display(),
            hints = data.join("hints").display(),
        );
        let mut yaml = yaml;
        for (key, value) in &cluster.conf {
            yaml.push_str(&format!("{key}: {value}\n"));
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        std::fs::write(self.config(), yaml)
            .with_context(|| format!("cannot write {}", self.config().display()))
    }

    /// Starts the node unless it runs; returns the new process.
    fn start(&self) -> anyhow::Result<Option<std::process::Child>> {
        if self.running_pid().is_some() {
            return Ok(None);
        }
        // Another process on this node's address (an old node of a
        // cluster whose directory is gone, say) would answer for it.
        // A node of this directory killed a moment ago may still be closing
        // its sockets: give it two seconds before calling the port taken.
        for port in [self.ports.native, self.ports.storage, self.ports.metrics] {
            let addr = SocketAddr::new(self.spec.address, port);
            let deadline = Instant::now() + Duration::from_secs(2);
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                if Instant::now() >= deadline {
                    bail!(
                        "{addr} is already in use by another process; is a node of another cluster still running there?"
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .with_context(|| format!("cannot open {}", self.log().display()))?;
        let binary = std::env::current_exe().context("cannot find the ilion binary")?;
        let mut command = Command::new(binary);
        // Each node is configured by its file alone: ILION_* variables meant
        // for the launcher (or one node) must not reach every node.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ILION_") {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("server")
            .arg("--config")
            .arg(self.config())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", self.spec.name))?;
        std::fs::write(self.pid_file(), format!("{}\n", child.id()))
            .with_context(|| format!("cannot write {}", self.pid_file().display()))?;
        Ok(Some(child))
    }

    fn signal(&self, signal: rustix::process::Signal) -> anyhow::Result<Option<i32>> {
        let Some(pid) = self.running_pid() else {
            return Ok(None);
        };
        let target = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| anyhow!("bad pid {pid} in {}", self.pid_file().display()))?;
        rustix::process::kill_process(target, signal)
            .with_context(|| format!("cannot signal {} (pid {pid})", self.spec.name))?;
        Ok(Some(pid))
    }

    /// Waits until process `pid` has exited: gone, or a zombie. Not until
    /// it merely stops looking like ours — an exiting process drops its
    /// memory (and with it its command line) before it closes its files,
    /// so its ports would still be taken for a moment.
    fn wait_exit(pid: i32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let exited = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => matches!(
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.trim().chars().next()),
                    Some('Z' | 'X')
                ),
            };
            // A zombie leader may still have threads exiting, holding the
            // sockets: done only when its task list holds nothing else.
            if exited && Self::threads_left(pid) <= 1 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Threads process `pid` still has (0 once it is gone).
    fn threads_left(pid: i32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// One HTTP GET; the status code and body, or None when nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_owned()))
}

/// Waits until every running node has every running node in its ring and
/// UP, so a driver connecting now discovers them all.
fn wait_for_ring(cluster: &Cluster, deadline: Instant, wait_seconds: u64) -> anyhow::Result<()> {
    let running: Vec<NodeDir<'_>> = cluster
        .nodes()
        .into_iter()
        .filter(|n| n.running_pid().is_some())
        .collect();
    let live_in_ring = |node: &NodeDir<'_>| -> Option<usize> {
        let (_, body) = http_get(
            SocketAddr::new(node.spec.address, node.ports.metrics),
            "/metrics",
        )?;
        body.lines()
            .find_map(|l| l.strip_prefix("ilion_ring_live_nodes "))
            .and_then(|v| v.trim().parse().ok())
    };
    loop {
        let behind: Vec<&str> = running
            .iter()
            .filter(|n| live_in_ring(n).is_none_or(|live| live < running.len()))
            .map(|n| n.spec.name.as_str())
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not see all {} nodes UP in the ring within {wait_seconds} s",
                behind.join(", "),
                running.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Cluster {
    dir: PathBuf,
    spec: ClusterSpec,
}

impl Cluster {
    fn load(dir: &Path) -> anyhow::Result<Option<Cluster>> {
        let path = dir.join(CLUSTER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let spec = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster description", path.display()))?;
        Ok(Some(Cluster {
            dir: dir.to_owned(),
            spec,
        }))
    }

    fn existing(dir: &Path) -> anyhow::Result<Cluster> {
        Cluster::load(dir)?.ok_or_else(|| no_cluster(dir))
    }

    fn create(dir: &Path, args: &StartArgs) -> anyhow::Result<Cluster> {
        let per_dc = args.nodes.unwrap_or(DEFAULT_NODES);
        let total = per_dc.saturating_mul(args.dcs);
        if total == 0 || total > NODES_MAX {
            bail!(
                "a cluster has 1 to {NODES_MAX} nodes; -n {per_dc} --dcs {} asks for {total}",
                args.dcs
            );
        }
        let base = u32::from(args.base_address);
        let mut nodes = Vec::new();
        for i in 0..total {
            let offset = u32::try_from(i).context("too many nodes")?;
            let address = std::net::Ipv4Addr::from(
                base.checked_add(offset)
                    .context("addresses run past 255.255.255.255")?,
            );
            if !address.is_loopback() {
                bail!(
                    "node{} would bind {address}, which is not a loopback address",
                    i + 1
                );
            }
            nodes.push(NodeSpec {
                name: format!("node{}", i + 1),
                address: IpAddr::V4(address),
                dc: format!("datacenter{}", i / per_dc + 1),
                rack: "rack1".to_owned(),
            });
        }
        let spec = ClusterSpec {
            name: args.name.clone(),
            ports: Ports {
                native: args.native_port,
                storage: args.storage_port,
                admin: args.admin_port,
                metrics: args.metrics_port,
            },
            num_tokens: args.num_tokens,
            nodes,
            conf: args.conf.clone(),
        };
        let cluster = Cluster {
            dir: dir.to_owned(),
            spec,
        };
        // The first node of each data center is a seed.
        let seeds: Vec<String> = cluster
            .spec
            .nodes
            .iter()
            .step_by(per_dc)
            .map(|n| n.address.to_string())
            .collect();
        for node in cluster.nodes() {
            node.write_config(&cluster.spec, &seeds.join(","))?;
        }
        let json = serde_json::to_string_pretty(&cluster.spec)?;
        std::fs::write(dir.join(CLUSTER_FILE), json)
            .with_context(|| format!("cannot write {}", dir.join(CLUSTER_FILE).display()))?;
        Ok(cluster)
    }

    fn nodes(&self) -> Vec<NodeDir<'_>> {
        self.spec
            .nodes
            .iter()
            .map(|spec| NodeDir {
                spec,
                dir: self.dir.join(&spec.name),
                ports: self.spec.ports,
            })
            .collect()
    }

    /// The named node, or every node.
    fn select(&self, name: Option<&str>) -> anyhow::Result<Vec<NodeDir<'_>>> {
        let nodes = self.nodes();
        match name {
            None => Ok(nodes),
            Some(name) => {
                let known: Vec<String> = nodes.iter().map(|n| n.spec.name.clone()).collect();
                let chosen: Vec<NodeDir<'_>> =
                    nodes.into_iter().filter(|n| n.spec.name == name).collect();
                if chosen.is_empty() {
                    bail!("no node {name}; the nodes are {}", known.join(", "));
                }
                Ok(chosen)
            }
        }
    }
}

/// Runs one `ilion cluster` command; returns what to print.
pub fn run(args: ClusterArgs) -> anyhow::Result<String> {
    let dir = args.dir;
    match args.command {
        ClusterCommand::Start(start) => run_start(&dir, &start),
        ClusterCommand::Status => Ok(status(&Cluster::existing(&dir)?)),
        ClusterCommand::Stop { node } => {
            let cluster = Cluster::existing(&dir)?;
            let mut out = String::new();
            for node in cluster.select(node.as_deref())? {
                let Some(pid) = node.signal(rustix::process::Signal::TERM)? else {
                    continue;
                };
                if !NodeDir::wait_exit(pid, STOP_GRACE) {
                    bail!(
                        "{} did not stop within {STOP_GRACE:?}; `ilion cluster kill {}` ends it",
                        node.spec.name,
                        node.spec.name
                    );
                }
                out.push_str(&format!("{} stopped\n", node.spec.name));
            }
            Ok(out)
        }
        ClusterCommand::Kill { node } => {
            let cluster = Cluster::existing(&dir)?;
            let mut out = String::new();
            for node in cluster.select(node.as_deref())? {
                if let Some(pid) = node.signal(rustix::process::Signal::KILL)? {
                    NodeDir::wait_exit(pid, Duration::from_secs(5));
                    out.push_str(&format!("{} killed (pid {pid})\n", node.spec.name));
                }
            }
            Ok(out)
        }
        ClusterCommand::Logs { node, tail } => {
            let cluster = Cluster::existing(&dir)?;
            let nodes = cluster.select(Some(&node))?;
            let node = nodes.first().context("no such node")?;
            Ok(match tail {
                Some(lines) => format!("{}\n", node.log_tail(lines)),
                None => std::fs::read_to_string(node.log())
                    .with_context(|| format!("cannot read {}", node.log().display()))?,
            })
        }
        ClusterCommand::Clear => {
            let Some(cluster) = Cluster::load(&dir)? else {
                return Ok(format!("no cluster in {}\n", dir.display()));
            };
            for node in cluster.nodes() {
                if let Some(pid) = node.signal(rustix::process::Signal::KILL)? {
                    NodeDir::wait_exit(pid, Duration::from_secs(5));
                }
            }
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
            Ok(format!("cluster in {} removed\n", dir.display()))
        }
    }
}

fn run_start(dir: &Path, args: &StartArgs) -> anyhow::Result<String> {
    let cluster = match (Cluster::load(dir)?, &args.node) {
        (Some(cluster), _) => {
            let asked = args.nodes.map(|n| n.saturating_mul(args.dcs));
            if asked.is_some_and(|n| n != cluster.spec.nodes.len()) {
                bail!(
                    "{} holds a cluster of {} nodes; `ilion cluster clear` it first to make another",
                    dir.display(),
                    cluster.spec.nodes.len()
                );
            }
            cluster
        }
        (None, Some(_)) => return Err(no_cluster(dir)),
        (None, None) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Cluster::create(dir, args)?
        }
    };
    let nodes = cluster.select(args.node.as_deref())?;
    // One at a time, as ccm does: a new node chooses its tokens against the
    // ring of the nodes already up.
    let deadline = Instant::now() + Duration::from_secs(args.wait_seconds);
    for node in &nodes {
        let child = node.start()?;
        wait_until_serving(node, child, deadline, args.wait_seconds)?;
    }
    wait_for_ring(&cluster, deadline, args.wait_seconds)?;
    let first = nodes.first().context("the cluster has no nodes")?;
    Ok(format!(
        "{}\nConnect with: ilion shell {} {}   (or cqlsh, or any CQL driver)\n",
        status(&cluster),
        first.spec.address,
        cluster.spec.ports.native
    ))
}

/// Waits until `node` serves CQL; fails with the end of its log if it exits
/// or the deadline passes.
fn wait_until_serving(
    node: &NodeDir<'_>,
    mut child: Option<std::process::Child>,
    deadline: Instant,
    wait_seconds: u64,
) -> anyhow::Result<()> {
    loop {
        // A process we just started is judged by its exit status (its
        // command line is the launcher's until it execs); one already
        // running by its pid file. Checked before readiness: another
        // process answering on the node's address must not pass for it.
        let exited = match &mut child {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => node.running_pid().is_none(),
        };
        if !exited && node.ready() {
            return Ok(());
        }
        if exited {
            bail!(
                "{} exited while starting; the end of {}:\n{}",
                node.spec.name,
                node.log().display(),
                node.log_tail(20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not serve CQL within {wait_seconds} s; the end of {}:\n{}",
                node.spec.name,
                node.log().display(),
                node.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(cluster: &Cluster) -> String {
    let mut out = format!(
        "Cluster '{}' in {}\n",
        cluster.spec.name,
        cluster.dir.display()
    );
    let mut rows = vec![vec![
        "node".to_owned(),
        "address".to_owned(),
        "dc".to_owned(),
        "rack".to_owned(),
        "pid".to_owned(),
        "state".to_owned(),
        "cql".to_owned(),
        "nodetool".to_owned(),
    ]];
    for node in cluster.nodes() {
        let pid = node.running_pid();
        let state = match pid {
            None => "STOPPED",
            Some(_) if node.ready() => "UP",
            Some(_) => "STARTING",
        };
        rows.push(vec![
            node.spec.name.clone(),
            node.spec.address.to_string(),
            node.spec.dc.clone(),
            node.spec.rack.clone(),
            pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            state.to_owned(),
            format!("{}:{}", node.spec.address, node.ports.native),
            format!("-h {} -p {}", node.spec.address, node.ports.admin),
        ]);
    }
    out.push_str(&crate::text::columns(&rows));
    out
}

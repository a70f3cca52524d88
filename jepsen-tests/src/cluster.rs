//! The system under test: an `ilion cluster` of real processes on
//! 127.0.B.1 … 127.0.B.N, and the faults done to it (SIGKILL and restart,
//! SIGSTOP/SIGCONT, iptables partitions in a chain of our own, and clock
//! skew: with clocks enabled every node runs under libfaketime, reading its
//! offset from a file of its own that the nemesis rewrites).
//!
//! [`Cluster`] tears everything down when dropped (also after a failed
//! run): the processes, their directory unless asked to keep it, and every
//! firewall rule it added.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A running cluster.
pub struct Cluster {
    ilion: PathBuf,
    dir: PathBuf,
    pub nodes: Vec<Ipv4Addr>,
    chain: String,
    firewalled: bool,
    /// libfaketime, when the nodes' clocks can be skewed.
    faketime: Option<PathBuf>,
}

/// Where Debian's libfaketime package puts the library.
const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

impl Cluster {
    /// Starts `count` nodes from `base` (e.g. 127.0.30.1) in `dir`, waiting
    /// until every node sees every other UP in its ring. With `clocks`,
    /// every node is restarted under libfaketime (offset 0) before the run,
    /// so the clock nemesis can skew it.
    pub fn start(
        ilion: &Path,
        dir: &Path,
        base: Ipv4Addr,
        count: usize,
        clocks: bool,
    ) -> anyhow::Result<Cluster> {
        let [a, b, c, first] = base.octets();
        let nodes: Vec<Ipv4Addr> = (0..count)
            .map(|i| Ipv4Addr::new(a, b, c, first + i as u8))
            .collect();
        let mut cluster = Cluster {
            ilion: ilion.to_owned(),
            dir: dir.to_owned(),
            nodes,
            chain: format!("ILION_JEPSEN_{b}_{c}"),
            firewalled: false,
            faketime: None,
        };
        cluster.teardown().clear_firewall();
        let _ = cluster.ilion_cluster(&["clear"]);
        cluster.ilion_cluster(&[
            "start",
            "-n",
            &count.to_string(),
            "--base-address",
            &base.to_string(),
            "--wait-seconds",
            "90",
        ])?;
        if clocks {
            let library = LIBFAKETIME
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .context("the clock nemesis needs libfaketime (apt install faketime)")?;
            cluster.faketime = Some(library);
            for node in 0..count {
                cluster.skew(node, 0)?;
                cluster.ilion_cluster(&["stop", &Self::name(node)])?;
                cluster.restart(node)?;
            }
        }
        Ok(cluster)
    }

    fn clock_file(&self, node: usize) -> PathBuf {
        self.dir.join(format!("{}.clock", Self::name(node)))
    }

    /// Sets `node`'s clock `seconds` ahead of real time (behind if
    /// negative); libfaketime rereads the file within a second.
    pub fn skew(&self, node: usize, seconds: i64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.faketime.is_some(),
            "this cluster runs without libfaketime"
        );
        std::fs::write(self.clock_file(node), format!("{seconds:+}\n"))
            .with_context(|| format!("cannot write {}", self.clock_file(node).display()))
    }

    fn ilion_cluster(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(&self.ilion)
            .arg("cluster")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", self.ilion.display()))?;
        if !output.status.success() {
            bail!(
                "ilion cluster {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The addresses of `nodes`, for the timeline.
    pub fn names(&self, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|i| self.nodes[*i].to_string()).collect()
    }

    fn name(node: usize) -> String {
        format!("node{}", node + 1)
    }

    pub fn kill(&self, node: usize) -> anyhow::Result<()> {
        self.ilion_cluster(&["kill", &Self::name(node)]).map(|_| ())
    }

    /// Starts a stopped node (under libfaketime when clocks are enabled)
    /// and waits until the ring sees it.
    pub fn restart(&self, node: usize) -> anyhow::Result<()> {
        let name = Self::name(node);
        let mut command = Command::new(&self.ilion);
        command.arg("cluster").arg("--dir").arg(&self.dir).args([
            "start",
            &name,
            "--wait-seconds",
            "90",
        ]);
        if let Some(library) = &self.faketime {
            command
                .env("LD_PRELOAD", library)
                .env("FAKETIME_TIMESTAMP_FILE", self.clock_file(node))
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", self.ilion.display()))?;
        if !output.status.success() {
            bail!(
                "ilion cluster start {name}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn pid(&self, node: usize) -> anyhow::Result<i32> {
        let path = self.dir.join(Self::name(node)).join("pid");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} holds no pid", path.display()))
    }

    fn signal(&self, node: usize, signal: rustix::process::Signal) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.pid(node)?).context("pid 0 is no process")?;
        rustix::process::kill_process(pid, signal)
            .with_context(|| format!("cannot signal {}", Self::name(node)))
    }

    pub fn pause(&self, node: usize) -> anyhow::Result<()> {
        self.signal(node, rustix::process::Signal::STOP)
    }

    pub fn resume(&self, node: usize) -> anyhow::Result<()> {
        self.signal(node, rustix::process::Signal::CONT)
    }

    fn iptables(args: &[&str]) -> bool {
        Command::new("iptables")
            .arg("-w")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Cuts the cluster into `groups` (node indices): nothing passes
    /// between nodes of different groups.
    pub fn partition(&mut self, groups: &[Vec<usize>]) -> anyhow::Result<()> {
        if !self.firewalled {
            if !Self::iptables(&["-N", &self.chain])
                || !Self::iptables(&["-I", "INPUT", "-j", &self.chain])
            {
                bail!(
                    "cannot set up iptables chain {} (is iptables installed, are we root?)",
                    self.chain
                );
            }
            self.firewalled = true;
        }
        for (i, group) in groups.iter().enumerate() {
            for other in groups.iter().skip(i + 1) {
                for &a in group {
                    for &b in other {
                        let (a, b) = (self.nodes[a].to_string(), self.nodes[b].to_string());
                        for (from, to) in [(&a, &b), (&b, &a)] {
                            if !Self::iptables(&[
                                "-A",
                                &self.chain,
                                "-s",
                                from,
                                "-d",
                                to,
                                "-j",
                                "DROP",
                            ]) {
                                bail!("cannot add a rule to {}", self.chain);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops the two-way link between `a` and `b` only (for bridges).
    pub fn cut(&mut self, a: usize, b: usize) -> anyhow::Result<()> {
        self.partition(&[vec![a], vec![b]])
    }

    /// Removes every partition.
    pub fn heal(&self) -> anyhow::Result<()> {
        if self.firewalled && !Self::iptables(&["-F", &self.chain]) {
            bail!("cannot flush {}", self.chain);
        }
        Ok(())
    }

    /// Copies every node's log into `into`.
    pub fn collect_logs(&self, into: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(into)?;
        for node in 0..self.nodes.len() {
            let log = self.dir.join(Self::name(node)).join("node.log");
            if log.exists() {
                std::fs::copy(&log, into.join(format!("{}.log", Self::name(node))))?;
            }
        }
        Ok(())
    }
}

/// What tearing a cluster down needs, apart from the cluster (for a
/// Ctrl-C handler on another thread).
#[derive(Debug, Clone)]
pub struct Teardown {
    ilion: PathBuf,
    dir: PathBuf,
    chain: String,
    nodes: usize,
}

impl Teardown {
    /// Removes our chain and the jump to it (left over from a run that
    /// died, or ours).
    fn clear_firewall(&self) {
        while Cluster::iptables(&["-D", "INPUT", "-j", &self.chain]) {}
        Cluster::iptables(&["-F", &self.chain]);
        Cluster::iptables(&["-X", &self.chain]);
    }

    /// Removes the firewall chain, resumes paused nodes (SIGKILL would do,
    /// but a stopped process holds its ports until it runs), and clears the
    /// cluster. Safe to run twice.
    pub fn run(&self) {
        self.clear_firewall();
        for node in 0..self.nodes {
            let pid = std::fs::read_to_string(self.dir.join(Cluster::name(node)).join("pid"))
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
            }
        }
        let _ = Command::new(&self.ilion)
            .arg("cluster")
            .arg("--dir")
            .arg(&self.dir)
            .arg("clear")
            .output();
    }
}

impl Cluster {
    /// How to tear this cluster down from elsewhere.
    pub fn teardown(&self) -> Teardown {
        Teardown {
            ilion: self.ilion.clone(),
            dir: self.dir.clone(),
            chain: self.chain.clone(),
            nodes: self.nodes.len(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown().run();
    }
}

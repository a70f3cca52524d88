//! Jepsen-style fault-injection tests against real `ilion` processes.
//!
//! `jepsen-tests test --workload set --nemesis partition,kill --time-limit 60
//! --nodes 5` starts a cluster with `ilion cluster`, runs concurrent
//! clients (the Rust `scylla` driver, one session each) while the nemeses
//! inject faults on a timeline, heals everything, waits a quiet period,
//! reads the final state, checks the history, and writes a folder with the
//! history, the timeline, the verdict, a latency plot and an HTML page.
//! `jepsen-tests suite` runs every workload under every nemesis and their
//! combination. The exit code is 0 when every run is valid, 1 when a
//! checker found anomalies, 2 on an error.
//!
//! Layout: [`cluster`] (processes and faults), [`nemesis`] (the timeline),
//! [`workload`] (clients and checkers), [`linear`] (the linearizability
//! checker), [`history`], [`report`].

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod history;
mod linear;
mod nemesis;
mod report;
mod workload;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rand::SeedableRng;
use scylla::statement::Consistency;

use crate::cluster::Cluster;
use crate::history::{History, Kind};
use crate::nemesis::Nemesis;
use crate::workload::Workload;

#[derive(Parser)]
#[command(
    name = "jepsen-tests",
    about = "Fault-injection tests against real ilion processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one named test.
    Test(TestArgs),
    /// Runs every workload under every nemesis, then all nemeses together.
    Suite(TestArgs),
}

#[derive(Args, Clone)]
struct TestArgs {
    /// `set` or `register`.
    #[arg(long, default_value = "set")]
    workload: String,
    /// Comma-separated: partition, kill, pause, clock.
    #[arg(long, default_value = "partition")]
    nemesis: String,
    /// Seconds of client load (the faults happen during it).
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Clients (each with its own driver session).
    #[arg(long, default_value_t = 5)]
    concurrency: u32,
    /// Consistency level of the clients' reads and writes.
    #[arg(long, default_value = "QUORUM")]
    consistency: String,
    /// Seconds each fault lasts (and each calm between faults).
    #[arg(long, default_value_t = 5)]
    fault_seconds: u64,
    /// Address of the first node; the others follow it.
    #[arg(long, default_value = "127.0.30.1")]
    base_address: Ipv4Addr,
    /// Where run folders go.
    #[arg(long, default_value = "jepsen-tests/store")]
    store: PathBuf,
    /// The ilion binary (default: beside this one, as cargo builds them).
    #[arg(long, env = "ILION_BIN")]
    ilion: Option<PathBuf>,
    /// Seed of the nemesis schedule (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

fn consistency(name: &str) -> anyhow::Result<Consistency> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        "ANY" => Consistency::Any,
        other => anyhow::bail!("unknown consistency level {other}"),
    })
}

fn ilion_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().context("cannot find this program")?;
    let dir = me.parent().context("this program has no directory")?;
    // Integration tests run from target/<profile>/deps.
    for candidate in [dir.join("ilion"), dir.join("../ilion")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "no ilion binary beside {}: build it (cargo build -p ilion) or pass --ilion",
        me.display()
    )
}

/// Runs one test; returns whether it was valid and where its folder is.
fn run_test(args: &TestArgs) -> anyhow::Result<(bool, PathBuf)> {
    let workload = Workload::parse(&args.workload)?;
    let nemeses: Vec<Nemesis> = args
        .nemesis
        .split(',')
        .filter(|n| !n.is_empty() && *n != "none")
        .map(Nemesis::parse)
        .collect::<anyhow::Result<_>>()?;
    let level = consistency(&args.consistency)?;
    anyhow::ensure!(args.nodes >= 3, "at least 3 nodes (RF 3)");
    let ilion = ilion_binary(args.ilion.as_deref())?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!(
        "{}-{}-{stamp}",
        args.workload,
        args.nemesis.replace(',', "+")
    );
    let folder = args.store.join(&name);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let seed = args.seed.unwrap_or(stamp);
    eprintln!(
        "jepsen-tests: {} under {} on {} nodes for {} s (seed {seed}) -> {}",
        args.workload,
        args.nemesis,
        args.nodes,
        args.time_limit,
        folder.display()
    );
    let cluster_dir = folder.join("cluster");
    let clocks = nemeses.contains(&Nemesis::Clock);
    let mut cluster = Cluster::start(&ilion, &cluster_dir, args.base_address, args.nodes, clocks)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Ctrl-C: take the cluster and the firewall rules down before leaving.
    let teardown = cluster.teardown();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("jepsen-tests: interrupted; tearing the cluster down");
            teardown.run();
            std::process::exit(130);
        }
    });
    let contact = format!("{}:9042", cluster.nodes[0]);
    let admin = runtime.block_on(workload::session(&contact))?;
    runtime.block_on(workload::setup(&admin, workload))?;

    let started = Instant::now();
    let history = History::new(started);
    let until = Duration::from_secs(args.time_limit).as_nanos() as u64;
    let mut clients = Vec::new();
    for process in 0..args.concurrency {
        let contact = format!(
            "{}:9042",
            cluster.nodes[process as usize % cluster.nodes.len()]
        );
        let session = Arc::new(runtime.block_on(workload::session(&contact))?);
        let history = history.clone();
        clients.push(runtime.spawn(async move {
            match workload {
                Workload::Set => {
                    workload::set_client(session, process, level, history, until).await
                }
                Workload::Register => {
                    workload::register_client(session, process, level, history, until).await
                }
            }
        }));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let timeline = nemesis::run(
        &nemeses,
        &mut cluster,
        &history,
        until,
        Duration::from_secs(args.fault_seconds),
        &mut rng,
    );
    // Heal whatever is left, even after a nemesis error.
    let healed = cluster.heal();
    for client in clients {
        runtime
            .block_on(client)
            .context("a client task failed")?
            .context("a client failed")?;
    }
    let timeline = timeline?;
    healed?;
    let end = history.now();
    eprintln!("jepsen-tests: healed; quiet period before the final read");
    std::thread::sleep(Duration::from_secs(5));
    let ops = history.ops();
    let result = match workload {
        Workload::Set => {
            let read = runtime.block_on(workload::read_set(&admin, 30))?;
            serde_json::to_value(workload::check_set(&ops, &read))?
        }
        Workload::Register => serde_json::to_value(workload::check_register(&ops))?,
    };
    let valid = result.get("valid").and_then(|v| v.as_bool()) == Some(true);
    let count = |kind: Kind| ops.iter().filter(|o| o.kind == kind).count();
    let verdict = report::Verdict {
        valid,
        workload: args.workload.clone(),
        nemeses: nemeses
            .iter()
            .map(|n| format!("{n:?}").to_lowercase())
            .collect(),
        nodes: args.nodes,
        time_limit_s: args.time_limit,
        operations: count(Kind::Invoke),
        ok: count(Kind::Ok),
        fail: count(Kind::Fail),
        info: count(Kind::Info),
        faults: timeline.iter().filter(|e| e.phase == "start").count(),
        result,
    };
    history.write(&folder.join("history.jsonl"))?;
    report::write(&folder, &ops, &timeline, &verdict, end)?;
    cluster.collect_logs(&folder.join("logs"))?;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&cluster_dir);
    println!(
        "{}: {} {} ops ({} ok, {} fail, {} info), {} faults -> {}",
        name,
        if valid { "valid" } else { "INVALID" },
        verdict.operations,
        verdict.ok,
        verdict.fail,
        verdict.info,
        verdict.faults,
        folder.join("index.html").display()
    );
    Ok((valid, folder))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runs: Vec<TestArgs> = match &cli.command {
        Command::Test(args) => vec![args.clone()],
        Command::Suite(args) => {
            let mut runs = Vec::new();
            for workload in ["set", "register"] {
                for nemesis in [
                    "partition",
                    "kill",
                    "pause",
                    "clock",
                    "partition,kill,pause",
                ] {
                    runs.push(TestArgs {
                        workload: workload.into(),
                        nemesis: nemesis.into(),
                        ..args.clone()
                    });
                }
            }
            runs
        }
    };
    let mut all_valid = true;
    for run in &runs {
        match run_test(run) {
            Ok((valid, _)) => all_valid &= valid,
            Err(error) => {
                eprintln!("jepsen-tests: {error:#}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if all_valid {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

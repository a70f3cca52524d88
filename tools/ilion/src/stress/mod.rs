//! `ilion stress`: a cassandra-stress-style load generator. It is only a
//! CQL client (the `scylla` driver, prepared statements, token-aware
//! routing), so it measures any CQL server the same way.
//!
//! Each operation has a number; with `--rate` it also has an intended start
//! time (`start + number / rate`). A worker that reaches an operation late
//! (because the server was slow) counts its latency from the intended
//! start, not from when it got to it: a stalled server shows in the tail
//! instead of slowing the clock (no coordinated omission). A worker that is
//! early waits for the [`pacer`], and counts from when it is released
//! (pacing lateness is the client's, not the server's).
//!
//! Layout: [`distribution`] picks keys, [`profile`] holds the statements and
//! makes bind values, [`pacer`] releases operations at the rate, [`report`]
//! keeps the histograms and prints.

pub mod distribution;
pub mod pacer;
pub mod profile;
pub mod report;
pub mod scan;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::SeedableRng;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::client::PoolSize;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::CqlValue;

use distribution::{DistributionKind, KeyDistribution};
use profile::{make_value, value_makers, Profile, ValueMaker};
use report::{OpKind, Recorder};

/// Most concurrent operations a run may keep in flight.
pub const CONCURRENCY_MAX: usize = 4096;

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Write,
    Read,
    /// Writes and reads in the proportions of `ratio(write=W,read=R)`.
    Mixed,
    /// Every row, by token ranges with paging (as the Spark connector reads).
    Scan,
}

/// `ilion stress` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StressArgs {
    /// write, read, or mixed.
    #[arg(value_enum)]
    pub workload: Workload,
    /// For mixed: `ratio(write=1,read=3)` (the default).
    pub ratio: Option<String>,
    /// Number of operations (default 100000 unless --duration is given).
    #[arg(short = 'n', long = "ops")]
    pub ops: Option<u64>,
    /// Run for this long instead: `30s`, `2m`, `500ms`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Connections per node.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// How keys are drawn.
    #[arg(long, value_enum, default_value = "uniform")]
    pub distribution: DistributionKind,
    /// Size of the key space.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Bytes (or characters) of each generated value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Consistency level of every operation.
    #[arg(long = "cl", default_value = "ONE")]
    pub consistency: String,
    /// Cap on operations per second (latency is then measured from each
    /// operation's intended start).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Write the latency histograms (HdrHistogram interval log) here.
    #[arg(long, value_name = "FILE")]
    pub hdr_out: Option<PathBuf>,
    /// Write the summary as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// A YAML profile with the keyspace, table and statements to use.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Replication factor of the built-in keyspace.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: u32,
    /// Contact points (repeat for several).
    #[arg(long = "host", default_value = "127.0.0.1")]
    pub hosts: Vec<String>,
    /// CQL port.
    #[arg(long, default_value_t = 9042)]
    pub port: u16,
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Seconds to wait for the first connection.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// No progress lines (the summary is still printed).
    #[arg(long)]
    pub quiet: bool,
    /// Scan: token ranges the ring is split into.
    #[arg(long, default_value_t = 256)]
    pub splits: u64,
    /// Scan: rows a page.
    #[arg(long, default_value_t = 5000)]
    pub page_size: i32,
}

/// `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::config::parse_duration(text, Duration::from_secs(1))
}

/// `ratio(write=1,read=3)` → (1, 3).
pub fn parse_ratio(text: &str) -> Result<(u64, u64), String> {
    let inner = text
        .trim()
        .strip_prefix("ratio(")
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected ratio(write=W,read=R), got {text:?}"))?;
    let (mut write, mut read) = (0, 0);
    for part in inner.split(',') {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("expected name=weight in {text:?}, got {part:?}"))?;
        let weight: u64 = weight
            .trim()
            .parse()
            .map_err(|_| format!("weight of {name} must be a whole number in {text:?}"))?;
        match name.trim() {
            "write" | "insert" => write = weight,
            "read" => read = weight,
            other => {
                return Err(format!(
                    "unknown operation {other:?} in {text:?}; use write and read"
                ))
            }
        }
    }
    if write + read == 0 {
        return Err(format!("{text:?} gives every operation weight 0"));
    }
    Ok((write, read))
}

fn parse_consistency(text: &str) -> anyhow::Result<Consistency> {
    crate::consistency::parse(text).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown consistency level {text:?}; use one of {}",
            crate::consistency::names()
        )
    })
}

/// A prepared statement and how to fill its binds.
struct Statement {
    prepared: PreparedStatement,
    makers: Vec<ValueMaker>,
}

impl Statement {
    async fn prepare(
        session: &Session,
        cql: &str,
        consistency: Consistency,
    ) -> anyhow::Result<Statement> {
        let mut prepared = session
            .prepare(cql)
            .await
            .with_context(|| format!("cannot prepare {cql:?}"))?;
        prepared.set_consistency(consistency);
        let specs = prepared.get_variable_col_specs();
        let types: Vec<_> = specs
            .iter()
            .map(|spec| (spec.name().to_owned(), spec.typ().clone()))
            .collect();
        let key_indexes: Vec<usize> = prepared
            .get_variable_pk_indexes()
            .iter()
            .map(|pk| pk.index as usize)
            .collect();
        let makers = value_makers(&types, &key_indexes)
            .map_err(|e| anyhow::anyhow!("statement {cql:?}: {e}"))?;
        Ok(Statement { prepared, makers })
    }
}

/// What every worker shares.
struct Plan {
    session: Session,
    write: Statement,
    read: Statement,
    keys: KeyDistribution,
    /// Out of `write + read` operations, the first `write` are writes.
    ratio: (u64, u64),
    value_size: usize,
    ops: Option<u64>,
    until: Option<Instant>,
    rate: Option<u64>,
    /// Releases operations at `rate`, when there is one.
    pacer: Option<pacer::Pacer>,
    started: Instant,
    next: AtomicU64,
    stop: AtomicBool,
    recorder: Recorder,
}

impl Plan {
    fn kind(&self, op: u64) -> OpKind {
        let (write, read) = self.ratio;
        if op % (write + read) < write {
            OpKind::Write
        } else {
            OpKind::Read
        }
    }
}

/// Runs a stress workload and prints its summary.
pub async fn run(args: StressArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        bail!("--concurrency must be between 1 and {CONCURRENCY_MAX}");
    }
    let connections =
        NonZeroUsize::new(args.connections).context("--connections must be at least 1")?;
    if args.rate == Some(0) {
        bail!("--rate must be at least 1 operation per second");
    }
    let ratio = match (args.workload, &args.ratio) {
        (Workload::Write, None) => (1, 0),
        (Workload::Read, None) => (0, 1),
        (Workload::Mixed, None) => (1, 3),
        (Workload::Mixed, Some(text)) => parse_ratio(text).map_err(anyhow::Error::msg)?,
        (Workload::Scan, None) => (0, 1),
        (_, Some(text)) => bail!("{text:?}: a ratio goes only with the mixed workload"),
    };
    let consistency = parse_consistency(&args.consistency)?;
    let keys = KeyDistribution::new(args.distribution, args.keys)?;
    let profile = match &args.profile {
        Some(path) => Profile::from_file(path)?,
        None => Profile::standard(args.replication_factor),
    };
    let ops = match (args.ops, args.duration) {
        _ if args.workload == Workload::Scan => None,
        (Some(_), Some(_)) => bail!("give -n or --duration, not both"),
        (None, None) => Some(100_000),
        (ops, _) => ops,
    };

    let contact_points: Vec<String> = args
        .hosts
        .iter()
        .map(|h| format!("{h}:{}", args.port))
        .collect();
    let mut builder = SessionBuilder::new()
        .known_nodes(&contact_points)
        .pool_size(PoolSize::PerHost(connections))
        .connection_timeout(Duration::from_secs(args.connect_timeout));
    if let (Some(user), Some(password)) = (&args.username, &args.password) {
        builder = builder.user(user, password);
    }
    let session = builder.build().await.with_context(|| {
        format!(
            "cannot connect to {} (is a CQL server running there?)",
            contact_points.join(", ")
        )
    })?;
    for ddl in [&profile.keyspace_definition, &profile.table_definition]
        .into_iter()
        .flatten()
    {
        session
            .query_unpaged(ddl.as_str(), &[])
            .await
            .with_context(|| format!("cannot run {ddl:?}"))?;
    }
    session
        .await_schema_agreement()
        .await
        .context("the nodes do not agree on the schema")?;
    let write = Statement::prepare(&session, &profile.queries.insert, consistency).await?;
    let read = Statement::prepare(&session, &profile.queries.read, consistency).await?;
    if args.workload == Workload::Scan {
        // The partition key's columns, from the read statement's binds.
        let specs = read.prepared.get_variable_col_specs();
        let key_columns = read
            .prepared
            .get_variable_pk_indexes()
            .iter()
            .filter_map(|pk| specs.get_by_index(pk.index as usize))
            .map(|spec| spec.name().to_owned())
            .collect();
        let terms = scan::ScanTerms {
            keyspace: profile.keyspace.clone(),
            table: profile.table.clone(),
            key_columns,
            splits: args.splits,
            page_size: args.page_size,
            concurrency: args.concurrency,
            consistency,
            passes: match (args.ops, args.duration) {
                (_, Some(_)) => None,
                (ops, None) => Some(ops.unwrap_or(1)),
            },
            until: args.duration.map(|d| Instant::now() + d),
            quiet: args.quiet,
        };
        return scan::run(session, terms).await;
    }

    if !args.quiet {
        println!(
            "ilion stress: {} on {}.{}, {}, concurrency {}, {:?} keys over {}, consistency {}, {}{}",
            match args.workload {
                Workload::Mixed => format!("mixed write={} read={}", ratio.0, ratio.1),
                other => format!("{other:?}").to_lowercase(),
            },
            profile.keyspace,
            profile.table,
            match (ops, args.duration) {
                (Some(n), _) => format!("{n} operations"),
                (None, Some(d)) => format!("{} s", d.as_secs_f64()),
                _ => String::new(),
            },
            args.concurrency,
            args.distribution,
            args.keys,
            args.consistency.to_ascii_uppercase(),
            contact_points.join(", "),
            args.rate
                .map(|r| format!(", at most {r} ops/s"))
                .unwrap_or_default(),
        );
    }
    let started = Instant::now();
    let until = args.duration.map(|d| started + d);
    let pacer = match args.rate {
        Some(rate) => Some(
            pacer::Pacer::start(rate, started, until).context("cannot start the pacing thread")?,
        ),
        None => None,
    };
    let plan = Arc::new(Plan {
        session,
        write,
        read,
        keys,
        ratio,
        value_size: args.value_size,
        ops,
        until,
        rate: args.rate,
        pacer,
        started,
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        recorder: Recorder::new()?,
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| tokio::spawn(work(plan.clone(), worker as u64)))
        .collect();
    let progress = tokio::spawn(report::progress(plan.clone(), !args.quiet));
    for worker in workers {
        worker.await.context("a stress worker failed")?;
    }
    let elapsed = started.elapsed();
    plan.stop.store(true, Ordering::Release);
    progress.abort();
    let summary = plan.recorder.summary(elapsed);
    print!("{}", summary.text());
    if let Some(path) = &args.json {
        std::fs::write(path, summary.json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.hdr_out {
        plan.recorder
            .write_hdr_log(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if summary.operations == 0 && summary.errors > 0 {
        bail!(
            "every operation failed; the first error: {}",
            plan.recorder.first_error().unwrap_or_default()
        );
    }
    Ok(())
}

/// One worker: takes operation numbers until the run ends.
async fn work(plan: Arc<Plan>, worker: u64) {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(worker.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234);
    loop {
        if let Some(pacer) = &plan.pacer {
            if !pacer.wait().await {
                return;
            }
        }
        let op = plan.next.fetch_add(1, Ordering::Relaxed);
        if plan.ops.is_some_and(|n| op >= n) || plan.stop.load(Ordering::Acquire) {
            return;
        }
        let intended = match plan.rate {
            Some(rate) => {
                let at = plan.started + Duration::from_secs_f64(op as f64 / rate as f64);
                if plan.until.is_some_and(|until| at >= until) {
                    return;
                }
                // Behind schedule, the wait counts (no coordinated omission);
                // released a little early, the operation counts from now.
                at.min(Instant::now())
            }
            None => Instant::now(),
        };
        if plan.until.is_some_and(|until| intended >= until) {
            return;
        }
        let kind = plan.kind(op);
        let statement = match kind {
            OpKind::Write => &plan.write,
            OpKind::Read => &plan.read,
        };
        let key = plan.keys.key(op, &mut rng);
        let values: Vec<CqlValue> = statement
            .makers
            .iter()
            .map(|maker| make_value(maker, key, plan.value_size, &mut rng))
            .collect();
        let outcome = plan
            .session
            .execute_unpaged(&statement.prepared, values)
            .await;
        let latency = intended.elapsed();
        match outcome {
            Ok(_) => plan.recorder.record(kind, latency),
            Err(error) => plan.recorder.error(&error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_durations_parse_as_cassandra_stress_writes_them() {
        assert_eq!(parse_ratio("ratio(write=1,read=3)"), Ok((1, 3)));
        assert_eq!(parse_ratio("ratio(read=2)"), Ok((0, 2)));
        assert!(parse_ratio("ratio(write=0,read=0)").is_err());
        assert!(parse_ratio("ratio(scan=1)").unwrap_err().contains("scan"));
        assert!(parse_ratio("write=1").is_err());
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1 fortnight").is_err());
    }
}

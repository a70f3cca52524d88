//! Side-by-side engine benchmark: the same workloads on Ilion's storage
//! engine and, when built with their features, fjall and RocksDB, in one run.
//!
//! Workloads (16-byte keys, 100-byte values, write-ahead log on, no fsync per
//! write): load N keys in random order; reopen; M random point reads
//! (throughput and latency percentiles); a scan of S consecutive keys from a
//! random start; the write latency tail during the load (flushes and
//! compactions run under it); write amplification (bytes the process wrote to disk during
//! the load and close, divided by user bytes); space on disk after a full
//! compaction. Prints each engine's figures and the ratio to the best peer.
//!
//! ```sh
//! cargo run --release -p benches --features fjall --bin engine-bench
//! cargo run --release -p benches --features fjall,rocksdb --bin engine-bench -- --keys 2000000
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The allocator `ilion server` runs on, so the engine is measured as it
/// runs in production; every engine in the run shares it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;

#[derive(Parser)]
#[command(about = "Ilion's storage engine side by side with fjall and RocksDB")]
struct Args {
    /// Keys to load (random order).
    #[arg(long, default_value_t = 2_000_000)]
    keys: u64,
    /// Random point reads after reopening.
    #[arg(long, default_value_t = 1_000_000)]
    reads: u64,
    /// Consecutive keys to scan.
    #[arg(long, default_value_t = 100_000)]
    scan: usize,
    /// Engines to run, comma-separated (ilion, fjall, rocksdb).
    #[arg(long, default_value = "ilion,fjall,rocksdb")]
    engines: String,
    /// Where to put the data (a fresh subdirectory per engine).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed for key order and read choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rounds of every engine; each round starts with the next engine in
    /// turn, and with more than one the median of each figure is reported
    /// too (this machine's speed drifts within minutes).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// One engine under test.
trait Kv {
    fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()>;
    fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<usize>>;
    /// Reads `count` keys in the engine's order from `start`; returns how many.
    fn scan(&mut self, start: &[u8], count: usize) -> anyhow::Result<usize>;
    fn close(self: Box<Self>) -> anyhow::Result<()>;
    fn major_compact(&mut self) -> anyhow::Result<()>;
    /// A line on the engine's shape (files, pending work), if it tells one.
    fn shape(&self) -> Option<String> {
        None
    }
}

type Opener = fn(&Path) -> anyhow::Result<Box<dyn Kv>>;

mod ilion {
    //! Ilion's engine as a key-value store: one partition per key, the value
    //! in one cell of the partition's single row.

    use std::path::Path;
    use std::time::Duration;

    use storage_lsm::model::{Cell, Mutation, PartitionKey, PartitionUpdate, Row, TableId};
    use storage_lsm::{Engine, EngineConfig, SliceQuery, SyncMode, TableOptions, TokenRange};

    const TABLE: TableId = TableId(1);

    pub struct Ilion {
        engine: Engine,
    }

    fn key(k: &[u8]) -> PartitionKey {
        PartitionKey::new(replication::murmur3::token_of(k), k.to_vec())
    }

    pub fn open(dir: &Path) -> anyhow::Result<Box<dyn super::Kv>> {
        let mut config = EngineConfig::new(dir.join("data"), dir.join("commitlog"));
        config.sync = SyncMode::Periodic(Duration::from_secs(10));
        config.compaction_bytes_per_s = 0;
        let engine = Engine::open(config)?;
        if !engine.has_table(TABLE) {
            engine.create_table(TABLE, TableOptions::default())?;
        }
        Ok(Box::new(Ilion { engine }))
    }

    impl super::Kv for Ilion {
        fn put(&mut self, k: &[u8], v: &[u8]) -> anyhow::Result<()> {
            let update = PartitionUpdate {
                rows: vec![Row::new(Vec::new(), vec![Cell::live(1, 1, v.to_vec())])],
                ..Default::default()
            };
            Ok(self.engine.apply(Mutation {
                table: TABLE,
                key: key(k),
                update,
            })?)
        }

        fn get(&mut self, k: &[u8]) -> anyhow::Result<Option<usize>> {
            let found = self.engine.read(TABLE, &key(k), &SliceQuery::all())?;
            Ok(found.and_then(|p| {
                p.rows
                    .first()
                    .and_then(|r| r.cells.first())
                    .and_then(|c| c.value_bytes().map(|v| v.len()))
            }))
        }

        fn scan(&mut self, start: &[u8], count: usize) -> anyhow::Result<usize> {
            let range = TokenRange {
                start: std::ops::Bound::Included(key(start).token),
                end: std::ops::Bound::Unbounded,
            };
            // Page by page, as every consumer of the engine reads a range
            // (CQL paging, replicas' scan pages), so that the figure is
            // the iteration's and not one huge page's memory: the peers'
            // iterators do not keep what they visited either.
            const PAGE_ROWS: usize = 4_096;
            let mut scanned = 0;
            let mut resume = None;
            while scanned < count {
                let page = self.engine.scan(
                    TABLE,
                    &range,
                    resume.as_ref(),
                    PAGE_ROWS.min(count - scanned),
                )?;
                scanned += page.partitions.len();
                match page.resume {
                    Some(next) => resume = Some(next),
                    None => break,
                }
            }
            Ok(scanned)
        }

        fn close(self: Box<Self>) -> anyhow::Result<()> {
            Ok(self.engine.shutdown()?)
        }

        fn major_compact(&mut self) -> anyhow::Result<()> {
            self.engine.flush(TABLE)?;
            Ok(self.engine.compact_all(TABLE)?)
        }

        fn shape(&self) -> Option<String> {
            let stats = self.engine.stats(TABLE).ok()?;
            Some(format!(
                "{} sstables, {} MiB, {} pending compactions",
                stats.sstable_count,
                stats.live_disk_bytes / 1_048_576,
                stats.pending_compactions
            ))
        }
    }
}

#[cfg(feature = "fjall")]
mod fjall_kv {
    use std::path::Path;

    pub struct Fjall {
        db: fjall::Database,
        items: fjall::Keyspace,
    }

    pub fn open(dir: &Path) -> anyhow::Result<Box<dyn super::Kv>> {
        let db = fjall::Database::builder(dir).open()?;
        let items = db.keyspace("items", fjall::KeyspaceCreateOptions::default)?;
        Ok(Box::new(Fjall { db, items }))
    }

    impl super::Kv for Fjall {
        fn put(&mut self, k: &[u8], v: &[u8]) -> anyhow::Result<()> {
            Ok(self.items.insert(k, v)?)
        }

        fn get(&mut self, k: &[u8]) -> anyhow::Result<Option<usize>> {
            Ok(self.items.get(k)?.map(|v| v.len()))
        }

        fn scan(&mut self, start: &[u8], count: usize) -> anyhow::Result<usize> {
            let mut n = 0;
            for guard in self.items.range(start..).take(count) {
                guard.into_inner()?;
                n += 1;
            }
            Ok(n)
        }

        fn close(self: Box<Self>) -> anyhow::Result<()> {
            self.db.persist(fjall::PersistMode::SyncAll)?;
            Ok(())
        }

        fn major_compact(&mut self) -> anyhow::Result<()> {
            Ok(self.items.major_compact()?)
        }
    }
}

#[cfg(feature = "rocksdb")]
mod rocksdb_kv {
    use std::path::Path;

    pub struct Rocks {
        db: rocksdb::DB,
    }

    pub fn open(dir: &Path) -> anyhow::Result<Box<dyn super::Kv>> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        Ok(Box::new(Rocks {
            db: rocksdb::DB::open(&options, dir)?,
        }))
    }

    impl super::Kv for Rocks {
        fn put(&mut self, k: &[u8], v: &[u8]) -> anyhow::Result<()> {
            Ok(self.db.put(k, v)?)
        }

        fn get(&mut self, k: &[u8]) -> anyhow::Result<Option<usize>> {
            Ok(self.db.get_pinned(k)?.map(|v| v.len()))
        }

        fn scan(&mut self, start: &[u8], count: usize) -> anyhow::Result<usize> {
            let mut n = 0;
            let mode = rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward);
            for item in self.db.iterator(mode).take(count) {
                item?;
                n += 1;
            }
            Ok(n)
        }

        fn close(self: Box<Self>) -> anyhow::Result<()> {
            self.db.flush()?;
            Ok(())
        }

        fn major_compact(&mut self) -> anyhow::Result<()> {
            self.db.compact_range::<&[u8], &[u8]>(None, None);
            Ok(())
        }
    }
}

fn opener(name: &str) -> Option<Opener> {
    match name {
        "ilion" => Some(ilion::open),
        #[cfg(feature = "fjall")]
        "fjall" => Some(fjall_kv::open),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Some(rocksdb_kv::open),
        _ => None,
    }
}

/// Bytes this process has written to storage so far (Linux /proc/self/io).
fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find(|l| l.starts_with("write_bytes:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes a directory tree takes on disk (allocated blocks, so sparse files
/// such as Ilion's presized commitlog segments count what they use).
fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                e.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
            }
        })
        .sum()
}

fn make_key(i: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    key[..8].copy_from_slice(&i.to_be_bytes());
    key[8..].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
    key
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    load_ops_per_s: f64,
    /// Write latency during the load, while flushes and compactions run.
    write_p99_us: f64,
    write_p999_us: f64,
    read_ops_per_s: f64,
    read_p50_us: f64,
    read_p99_us: f64,
    scan_keys_per_s: f64,
    write_amplification: f64,
    space_after_compaction_mb: f64,
}

fn progress(label: &str, done: u64, total: u64, started: Instant) {
    if total >= 10 && done.is_multiple_of(total / 10) {
        eprintln!(
            "  {label}: {:>3}% ({done}/{total}, {:.0} ops/s)",
            done * 100 / total,
            done as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    }
}

fn run_engine(name: &str, open: Opener, dir: &Path, args: &Args) -> anyhow::Result<Figures> {
    eprintln!("== {name}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut order: Vec<u64> = (0..args.keys).collect();
    order.shuffle(&mut rng);
    let value = vec![0x5au8; VALUE_BYTES];
    let written_before = write_bytes();
    let mut kv = open(dir)?;
    let mut writes = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let started = Instant::now();
    for (n, &i) in order.iter().enumerate() {
        let t = Instant::now();
        kv.put(&make_key(i), &value)?;
        writes.saturating_record(t.elapsed().as_nanos() as u64);
        progress("load", n as u64 + 1, args.keys, started);
    }
    let load_s = started.elapsed().as_secs_f64();
    kv.close()?;
    let written = write_bytes() - written_before;
    let user_bytes = args.keys * (KEY_BYTES + VALUE_BYTES) as u64;

    let mut kv = open(dir)?;
    if let Some(shape) = kv.shape() {
        eprintln!("  reopened: {shape}");
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let started = Instant::now();
    for n in 0..args.reads {
        let i = rng.gen_range(0..args.keys);
        let t = Instant::now();
        let found = kv.get(&make_key(i))?;
        histogram.saturating_record(t.elapsed().as_nanos() as u64);
        anyhow::ensure!(
            found == Some(VALUE_BYTES),
            "{name}: key {i} missing or wrong"
        );
        progress("read", n + 1, args.reads, started);
    }
    let read_s = started.elapsed().as_secs_f64();
    if let Some(shape) = kv.shape() {
        eprintln!("  after reads: {shape}");
    }

    let start_key = make_key(rng.gen_range(0..args.keys));
    let started = Instant::now();
    let scanned = kv.scan(&start_key, args.scan)?;
    let scan_s = started.elapsed().as_secs_f64();
    eprintln!("  scan: {scanned} keys in {:.3}s", scan_s);

    eprintln!("  full compaction...");
    kv.major_compact()?;
    kv.close()?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(Figures {
        load_ops_per_s: args.keys as f64 / load_s,
        write_p99_us: writes.value_at_quantile(0.99) as f64 / 1000.0,
        write_p999_us: writes.value_at_quantile(0.999) as f64 / 1000.0,
        read_ops_per_s: args.reads as f64 / read_s,
        read_p50_us: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        read_p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        scan_keys_per_s: scanned as f64 / scan_s.max(1e-9),
        write_amplification: written as f64 / user_bytes as f64,
        space_after_compaction_mb: dir_size(dir) as f64 / 1_048_576.0,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The engine's flushes and compactions, with RUST_LOG=storage_lsm=debug.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let root = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let names: Vec<&str> = args
        .engines
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut rounds: Vec<Vec<(String, Figures)>> = Vec::new();
    for round in 0..args.rounds.max(1) {
        if args.rounds > 1 {
            eprintln!("=== round {} of {}", round + 1, args.rounds);
        }
        let mut results: Vec<(String, Figures)> = Vec::new();
        for i in 0..names.len() {
            let name = names[(round + i) % names.len()];
            let Some(open) = opener(name) else {
                eprintln!("skipping {name}: not built in (enable its cargo feature) or unknown");
                continue;
            };
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir)?;
            let figures = run_engine(name, open, &dir, &args)
                .with_context(|| format!("benchmark of {name}"))?;
            results.push((name.to_owned(), figures));
            std::fs::remove_dir_all(&dir).ok();
        }
        results.sort_by_key(|(name, _)| names.iter().position(|n| n == name));
        if args.rounds > 1 {
            println!("\nround {} of {}:", round + 1, args.rounds);
        }
        print_table(&args, &results);
        rounds.push(results);
    }
    if rounds.len() > 1 {
        let medians: Vec<(String, Figures)> = rounds[0]
            .iter()
            .map(|(name, _)| {
                let of_engine: Vec<Figures> = rounds
                    .iter()
                    .filter_map(|round| round.iter().find(|(n, _)| n == name).map(|(_, f)| *f))
                    .collect();
                (name.clone(), median_figures(&of_engine))
            })
            .collect();
        println!("\nmedian of {} rounds:", rounds.len());
        print_table(&args, &medians);
    }
    Ok(())
}

/// Each figure's median over rounds (the upper middle of an even count).
fn median_figures(rounds: &[Figures]) -> Figures {
    let median = |pick: fn(&Figures) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    Figures {
        load_ops_per_s: median(|f| f.load_ops_per_s),
        write_p99_us: median(|f| f.write_p99_us),
        write_p999_us: median(|f| f.write_p999_us),
        read_ops_per_s: median(|f| f.read_ops_per_s),
        read_p50_us: median(|f| f.read_p50_us),
        read_p99_us: median(|f| f.read_p99_us),
        scan_keys_per_s: median(|f| f.scan_keys_per_s),
        write_amplification: median(|f| f.write_amplification),
        space_after_compaction_mb: median(|f| f.space_after_compaction_mb),
    }
}

fn print_table(args: &Args, results: &[(String, Figures)]) {
    println!(
        "\nkeys={} reads={} scan={} (16-byte keys, 100-byte values)\n",
        args.keys, args.reads, args.scan
    );
    println!(
        "| engine | load ops/s | write p99 µs | write p99.9 µs | point reads ops/s | read p50 µs | read p99 µs | scan keys/s | write amp | space after compaction MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, f) in results {
        println!(
            "| {name} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {:.2} | {:.1} |",
            f.load_ops_per_s,
            f.write_p99_us,
            f.write_p999_us,
            f.read_ops_per_s,
            f.read_p50_us,
            f.read_p99_us,
            f.scan_keys_per_s,
            f.write_amplification,
            f.space_after_compaction_mb
        );
    }
    let Some((_, ilion)) = results.iter().find(|(n, _)| n == "ilion") else {
        return;
    };
    let peers: Vec<&Figures> = results
        .iter()
        .filter(|(n, _)| n != "ilion")
        .map(|(_, f)| f)
        .collect();
    if peers.is_empty() {
        return;
    }
    let best = |pick: fn(&Figures) -> f64, higher_better: bool| {
        peers.iter().map(|f| pick(f)).fold(
            if higher_better { f64::MIN } else { f64::MAX },
            |a, b| if higher_better { a.max(b) } else { a.min(b) },
        )
    };
    println!("\nIlion / best peer (>1 is better for throughput; <1 is better for latency, amplification, space):");
    println!(
        "  load throughput  {:.2}x",
        ilion.load_ops_per_s / best(|f| f.load_ops_per_s, true)
    );
    println!(
        "  write p99        {:.2}x",
        ilion.write_p99_us / best(|f| f.write_p99_us, false)
    );
    println!(
        "  read throughput  {:.2}x",
        ilion.read_ops_per_s / best(|f| f.read_ops_per_s, true)
    );
    println!(
        "  read p99         {:.2}x",
        ilion.read_p99_us / best(|f| f.read_p99_us, false)
    );
    println!(
        "  scan throughput  {:.2}x",
        ilion.scan_keys_per_s / best(|f| f.scan_keys_per_s, true)
    );
    println!(
        "  write amp        {:.2}x",
        ilion.write_amplification / best(|f| f.write_amplification, false)
    );
    println!(
        "  space            {:.2}x",
        ilion.space_after_compaction_mb / best(|f| f.space_after_compaction_mb, false)
    );
}

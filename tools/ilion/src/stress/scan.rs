//! `ilion stress scan`: reads a whole table the way the Spark connector,
//! `COPY TO` and analytics jobs do: the token ring split into `--splits`
//! ranges (`token(key) > start AND token(key) <= end`), each read with
//! paging (`--page-size` rows a page) by one of `--concurrency` workers,
//! ranges handed out in order. Reports rows per second, and each page's
//! latency in the read histogram. One pass over the ring per `-n`, or
//! passes until `--duration` ends.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use scylla::client::session::Session;
use scylla::response::PagingState;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use super::report::{OpKind, Recorder};

/// Most token ranges a scan may split the ring into.
pub const SPLITS_MAX: u64 = 1 << 20;

/// What a scan run was asked.
#[derive(Debug, Clone)]
pub struct ScanTerms {
    pub keyspace: String,
    pub table: String,
    /// The partition key columns, in order.
    pub key_columns: Vec<String>,
    pub splits: u64,
    pub page_size: i32,
    pub concurrency: usize,
    pub consistency: Consistency,
    /// Passes over the ring (`None`: until `until`).
    pub passes: Option<u64>,
    pub until: Option<Instant>,
    pub quiet: bool,
}

/// `(start, end]` of split `i` of `splits` over the Murmur3 ring.
pub fn split_bounds(i: u64, splits: u64) -> (i64, i64) {
    let width = u128::from(u64::MAX) / u128::from(splits.max(1));
    let offset = |n: u64| -> i64 {
        let at = i128::from(i64::MIN) + (width * u128::from(n)) as i128;
        at.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    };
    let end = if i + 1 >= splits {
        i64::MAX
    } else {
        offset(i + 1)
    };
    (offset(i), end)
}

struct Shared {
    session: Session,
    statement: PreparedStatement,
    terms: ScanTerms,
    next: AtomicU64,
    rows: AtomicU64,
    recorder: Recorder,
}

/// Runs the scan and prints its summary (rows, rows/s, page latency).
pub async fn run(session: Session, terms: ScanTerms) -> anyhow::Result<()> {
    if terms.splits == 0 || terms.splits > SPLITS_MAX {
        bail!("--splits must be between 1 and {SPLITS_MAX}");
    }
    if terms.page_size < 1 {
        bail!("--page-size must be at least 1");
    }
    if terms.key_columns.is_empty() {
        bail!("the table's partition key is not known");
    }
    let key = terms.key_columns.join(", ");
    let cql = format!(
        "SELECT * FROM {}.{} WHERE token({key}) > ? AND token({key}) <= ?",
        terms.keyspace, terms.table
    );
    let mut statement = session
        .prepare(cql.as_str())
        .await
        .with_context(|| format!("cannot prepare {cql:?}"))?;
    statement.set_consistency(terms.consistency);
    statement.set_page_size(terms.page_size);
    if !terms.quiet {
        println!(
            "ilion stress: scan of {}.{} in {} token ranges, {} rows a page, concurrency {}, {}",
            terms.keyspace,
            terms.table,
            terms.splits,
            terms.page_size,
            terms.concurrency,
            match (terms.passes, terms.until) {
                (Some(n), _) => format!("{n} pass(es)"),
                _ => "until the duration ends".to_owned(),
            }
        );
    }
    let shared = Arc::new(Shared {
        session,
        statement,
        terms: terms.clone(),
        next: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        recorder: Recorder::new()?,
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..terms.concurrency)
        .map(|_| tokio::spawn(work(shared.clone())))
        .collect();
    let progress = tokio::spawn(progress(shared.clone(), started));
    for worker in workers {
        worker.await.context("a scan worker failed")??;
    }
    progress.abort();
    let elapsed = started.elapsed();
    let rows = shared.rows.load(Ordering::Relaxed);
    let summary = shared.recorder.summary(elapsed);
    print!("{}", summary.text());
    println!(
        "Rows scanned         : {rows}\nRows/s               : {:.0}",
        rows as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// One worker: takes the next token range until every pass is done.
async fn work(shared: Arc<Shared>) -> anyhow::Result<()> {
    let splits = shared.terms.splits;
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let pass = n / splits;
        if shared.terms.passes.is_some_and(|passes| pass >= passes)
            || shared
                .terms
                .until
                .is_some_and(|until| Instant::now() >= until)
        {
            return Ok(());
        }
        let (start, end) = split_bounds(n % splits, splits);
        let mut paging = PagingState::start();
        loop {
            let began = Instant::now();
            let page = shared
                .session
                .execute_single_page(&shared.statement, (start, end), paging)
                .await;
            let (result, next) = match page {
                Ok(page) => page,
                Err(error) => {
                    shared.recorder.error(&error.to_string());
                    bail!("scan of ({start}, {end}] failed: {error}");
                }
            };
            shared.recorder.record(OpKind::Read, began.elapsed());
            let rows = result.into_rows_result().map_or(0, |r| r.rows_num());
            shared.rows.fetch_add(rows as u64, Ordering::Relaxed);
            match next.into_paging_control_flow() {
                ControlFlow::Continue(state) => paging = state,
                ControlFlow::Break(()) => break,
            }
        }
    }
}

/// A line a second: rows so far and the rate of the last second.
async fn progress(shared: Arc<Shared>, started: Instant) {
    let mut last = 0;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let rows = shared.rows.load(Ordering::Relaxed);
        if !shared.terms.quiet {
            println!(
                "{:>6.1}s  rows {rows:>12}  rows/s {:>10}",
                started.elapsed().as_secs_f64(),
                rows - last
            );
        }
        last = rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_the_ring_once_in_order() {
        for splits in [1u64, 2, 3, 7, 64, 1000] {
            let bounds: Vec<(i64, i64)> = (0..splits).map(|i| split_bounds(i, splits)).collect();
            assert_eq!(bounds[0].0, i64::MIN, "{splits}");
            assert_eq!(bounds[bounds.len() - 1].1, i64::MAX, "{splits}");
            for pair in bounds.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "{splits}: contiguous");
                assert!(pair[0].0 < pair[0].1, "{splits}: not empty");
            }
        }
    }
}

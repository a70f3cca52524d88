//! BATCH messages: every statement's mutation built and checked first, then
//! all written; the size warning Cassandra gives for large batches.

use std::time::Instant;

use bytes::Bytes;

use replication::WriteType;
use storage_lsm::model::Mutation;

use crate::cql::ast::Statement;
use crate::metrics::Operation;
use crate::node::{Node, Session};
use crate::protocol::error::CqlError;
use crate::protocol::messages::QueryParameters;
use crate::results::ResultBody;
use crate::schema::TableSchema;
use crate::values::Bindings;

use super::{consistency_of, invalid, now_micros, Context};

/// Cassandra's `unlogged_batch_across_partitions_warn_threshold` default.
const UNLOGGED_PARTITIONS_WARN: usize = 10;

/// Warns, in Cassandra's words, of a batch larger than
/// `batch_size_warn_threshold` (5 KiB), and of an unlogged batch over more
/// than 10 partitions.
pub(super) fn warn_of_batch(
    mutations: &[(std::sync::Arc<TableSchema>, Mutation)],
    write_type: WriteType,
) {
    if write_type == WriteType::UnloggedBatch {
        // Distinct partition keys, whatever their tables, as Cassandra counts.
        let mut partitions: Vec<&Bytes> = mutations.iter().map(|(_, m)| &m.key.key).collect();
        partitions.sort();
        partitions.dedup();
        if partitions.len() > UNLOGGED_PARTITIONS_WARN {
            let mut tables: Vec<String> = mutations
                .iter()
                .map(|(t, _)| format!("{}.{}", t.keyspace, t.name))
                .collect();
            tables.sort();
            tables.dedup();
            crate::warnings::warn(format!(
                "Unlogged batch covering {} partitions detected against table{} [{}]. \
                 You should use a logged batch for atomicity, or asynchronous writes for performance.",
                partitions.len(),
                if tables.len() == 1 { "" } else { "s" },
                tables.join(", ")
            ));
        }
    }
    warn_of_batch_size(mutations);
}

/// Warns when a batch's mutations are larger than Cassandra's
/// `batch_size_warn_threshold` (5 KiB), in Cassandra's words.
fn warn_of_batch_size(mutations: &[(std::sync::Arc<TableSchema>, Mutation)]) {
    let size: usize = mutations
        .iter()
        .map(|(_, m)| replication::internode::encode_mutation(m).len())
        .sum();
    let limit = crate::warnings::BATCH_SIZE_WARN_BYTES;
    if size <= limit {
        return;
    }
    let mut tables: Vec<String> = mutations
        .iter()
        .map(|(t, _)| format!("{}.{}", t.keyspace, t.name))
        .collect();
    tables.sort();
    tables.dedup();
    crate::warnings::warn(format!(
        "Batch for [{}] is of size {size}, exceeding specified threshold of {limit} by {}.",
        tables.join(", "),
        size - limit
    ));
}

/// Runs the statements of a BATCH message: every mutation is built (and
/// checked) first, then all are written.
pub fn execute_batch(
    node: &Node,
    session: &mut Session,
    statements: &[(Statement, crate::protocol::messages::BoundValues)],
    params: &QueryParameters,
    write_type: WriteType,
) -> Result<ResultBody, CqlError> {
    let started = Instant::now();
    let consistency = consistency_of(params)?;
    let now = now_micros();
    let mut mutations = Vec::with_capacity(statements.len());
    for (statement, values) in statements {
        if !matches!(
            statement,
            Statement::Insert { .. } | Statement::Update { .. } | Statement::Delete { .. }
        ) {
            return Err(invalid(
                "Only INSERT, UPDATE and DELETE statements are allowed in a BATCH",
            ));
        }
        let context = Context {
            node,
            params,
            consistency,
            bindings: Bindings {
                values,
                now_micros: now,
            },
            started,
            on_task: None,
        };
        mutations.push(context.mutation(session, statement, None)?);
    }
    let bindings = Bindings {
        values: &params.values,
        now_micros: now,
    };
    let context = Context {
        node,
        params,
        consistency,
        bindings,
        started,
        on_task: None,
    };
    let result = context.write_all(mutations, write_type);
    node.metrics
        .record(Operation::Write, started.elapsed(), result.as_ref().err());
    result.map(|()| ResultBody::Void)
}

#[cfg(test)]
mod tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;

    #[test]
    fn a_batch_writes_every_statement_or_none() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE a (k int PRIMARY KEY, v int)",
            "CREATE TABLE b (k int PRIMARY KEY, v text)",
            "BEGIN BATCH \
               INSERT INTO a (k, v) VALUES (1, 1); \
               INSERT INTO b (k, v) VALUES (1, 'one'); \
               UPDATE a SET v = 2 WHERE k = 2; \
             APPLY BATCH",
        ])?;
        assert_eq!(
            node.rows("SELECT k, v FROM a WHERE k IN (1, 2)")?,
            rows(&[&["1", "1"], &["2", "2"]])
        );
        assert_eq!(node.rows("SELECT v FROM b")?, rows(&[&["\"one\""]]));
        let error = node.error(
            "BEGIN BATCH \
               INSERT INTO a (k, v) VALUES (3, 3); \
               INSERT INTO b (k, v) VALUES (3, 3); \
             APPLY BATCH",
        )?;
        assert!(matches!(error, CqlError::Invalid(_)), "{error:?}");
        assert!(
            node.rows("SELECT v FROM a WHERE k = 3")?.is_empty(),
            "a batch with a bad statement writes nothing"
        );
        Ok(())
    }

    #[test]
    fn large_and_scattered_batches_warn_as_cassandras_do() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE a (k int PRIMARY KEY, v text)")?;
        let inserts = |count: usize, value: &str| -> String {
            (0..count)
                .map(|k| format!("INSERT INTO a (k, v) VALUES ({k}, '{value}');"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let run = |node: &mut TestNode, cql: &str| -> Result<Vec<String>, CqlError> {
            crate::warnings::begin();
            node.run(cql)?;
            Ok(crate::warnings::take())
        };
        let quiet = run(
            &mut node,
            &format!("BEGIN UNLOGGED BATCH {} APPLY BATCH", inserts(10, "x")),
        )?;
        assert!(quiet.is_empty(), "{quiet:?}");
        let scattered = run(
            &mut node,
            &format!("BEGIN UNLOGGED BATCH {} APPLY BATCH", inserts(11, "x")),
        )?;
        assert_eq!(
            scattered,
            [
                "Unlogged batch covering 11 partitions detected against table [ks.a]. \
              You should use a logged batch for atomicity, or asynchronous writes for performance."
            ]
        );
        let logged = run(
            &mut node,
            &format!("BEGIN BATCH {} APPLY BATCH", inserts(11, "x")),
        )?;
        assert!(
            logged.is_empty(),
            "a logged batch may span partitions: {logged:?}"
        );
        let big = run(
            &mut node,
            &format!("BEGIN BATCH {} APPLY BATCH", inserts(3, &"y".repeat(3000))),
        )?;
        assert!(
            big.len() == 1 && big[0].starts_with("Batch for [ks.a] is of size"),
            "{big:?}"
        );
        let aggregate = run(&mut node, "SELECT count(*) FROM a WHERE k IN (1, 2)")?;
        assert_eq!(
            aggregate,
            ["Aggregation query used on multiple partition keys (IN restriction)"]
        );
        Ok(())
    }

    #[test]
    fn a_batch_timestamp_applies_to_its_statements() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE a (k int PRIMARY KEY, v int)",
            "BEGIN UNLOGGED BATCH USING TIMESTAMP 1000 \
               INSERT INTO a (k, v) VALUES (1, 1); \
               INSERT INTO a (k, v) VALUES (2, 2); \
             APPLY BATCH",
        ])?;
        assert_eq!(
            node.rows("SELECT writetime(v) FROM a WHERE k IN (1, 2)")?,
            rows(&[&["1000"], &["1000"]])
        );
        Ok(())
    }
}

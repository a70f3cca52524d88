//! Statement execution: parse, resolve against the schema, turn into
//! coordinator reads and writes, and build the RESULT.
//!
//! This module holds the entry points (a blocking run, and a run on an
//! async task that stops for each read it needs) and [`Context`], one
//! request's node, parameters and deadlines. The jobs live beside it:
//! [`ddl`] (schema statements, TRUNCATE), [`write`] (INSERT/UPDATE/DELETE to
//! a mutation) over [`cells`], [`restrictions`] (WHERE) over [`keys`],
//! [`select`] (reads, scans, shaping rows) with [`selection`] (what is
//! projected, applying [`crate::functions`]), [`aggregate`] and
//! [`paging`], and [`batch`].
//!
//! Keys: a partition key is the column's serialized value, or for a compound
//! key each component as `u16 length, bytes, 0x00` (Cassandra's layout, so
//! tokens match drivers'); the token is its Murmur3 hash. Clustering columns
//! become one byte-comparable key ([`crate::types`]). An `INSERT` also writes
//! a row marker cell ([`crate::schema::ROW_MARKER`]) so the row exists with
//! all columns null.

use std::time::Instant;

use std::cell::RefCell;

use replication::{
    ConsistencyLevel, CoordinatorError, PendingWrite, Placement, ReadTerms, WriteType,
};
use storage_lsm::model::{Mutation, PartitionKey};
use storage_lsm::{PartitionRows, SliceQuery};

use crate::cql::ast::{QualifiedName, Statement, Term};
use crate::cql::parser::parse;
use crate::metrics::Operation;
use crate::node::{Node, Session};
use crate::protocol::error::CqlError;
use crate::protocol::messages::QueryParameters;
use crate::protocol::primitives::Value;
use crate::results::ResultBody;
use crate::schema::{resolve_keyspace, TableSchema, SYSTEM_KEYSPACES};
use crate::types::CqlType;
use crate::values::{term_value, Bindings};

use self::batch::warn_of_batch;

mod aggregate;
mod batch;
mod cells;
mod ddl;
#[cfg(test)]
mod harness;
mod keys;
mod paging;
mod restrictions;
mod select;
mod selection;
mod write;

pub use batch::execute_batch;
pub(crate) use restrictions::operand_type;
pub use selection::result_columns;

/// How long TRUNCATE waits for every node (Cassandra's
/// `truncate_request_timeout`).
const TRUNCATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn invalid(message: impl Into<String>) -> CqlError {
    CqlError::Invalid(message.into())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn coordinator_error(error: CoordinatorError) -> CqlError {
    match error {
        CoordinatorError::Unavailable {
            consistency,
            required,
            alive,
        } => CqlError::Unavailable {
            message: format!("Cannot achieve consistency level {consistency}"),
            consistency: consistency.code(),
            required: required as i32,
            alive: alive as i32,
        },
        CoordinatorError::WriteTimeout {
            consistency,
            received,
            required,
            write_type,
        } => CqlError::WriteTimeout {
            message: format!("Operation timed out - received only {received} responses."),
            consistency: consistency.code(),
            received: received as i32,
            block_for: required as i32,
            write_type: write_type.name(),
        },
        CoordinatorError::ReadTimeout {
            consistency,
            received,
            required,
            data_present,
        } => CqlError::ReadTimeout {
            message: format!("Operation timed out - received only {received} responses."),
            consistency: consistency.code(),
            received: received as i32,
            block_for: required as i32,
            data_present,
        },
        CoordinatorError::Storage(error) => CqlError::Server(format!("storage error: {error}")),
        error @ CoordinatorError::Truncate(_) => CqlError::Truncate(error.to_string()),
        error @ CoordinatorError::Internal(_) => CqlError::Server(error.to_string()),
    }
}

/// Parses and runs one statement.
pub fn execute(
    node: &Node,
    session: &mut Session,
    query: &str,
    params: &QueryParameters,
) -> Result<ResultBody, CqlError> {
    let statement = parse(query).map_err(|e| CqlError::Syntax(e.to_string()))?;
    execute_statement(node, session, &statement, params)
}

/// Runs a parsed (or prepared) statement.
pub fn execute_statement(
    node: &Node,
    session: &mut Session,
    statement: &Statement,
    params: &QueryParameters,
) -> Result<ResultBody, CqlError> {
    let started = Instant::now();
    let result = run_statement(node, session, statement, params, started, None);
    finish(node, statement, started, result)
}

/// What a statement run on an async task leaves for the task to await:
/// the writes it started, and the read it needs next. The task does that
/// read and runs the statement again, which then finds it done (a
/// statement's reads come in the same order on every run).
#[derive(Debug, Default)]
pub struct OnTask {
    writes: Vec<PendingWrite>,
    reads_done: Vec<(NeededRead, Result<Option<PartitionRows>, CqlError>)>,
    reads_used: usize,
    read_needed: Option<NeededRead>,
    /// The statement scans token ranges (a filtering SELECT whose key is
    /// not restricted by =): a scan waits on its thread, so it must run on
    /// a blocking thread, not on the task.
    needs_thread: bool,
}

/// A single-partition read a statement needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NeededRead {
    table: storage_lsm::model::TableId,
    key: PartitionKey,
    query: SliceQuery,
    placement: Placement,
    consistency: ConsistencyLevel,
    deadline: Instant,
}

/// Reads of one statement on one async task, at most (more falls back to
/// a blocking thread).
pub const TASK_READS_MAX: usize = 8;

/// Runs a statement on an async task: writes are started, not waited
/// for; a read not yet done stops the run and is named in the result.
pub fn run_on_task(
    node: &Node,
    session: &mut Session,
    statement: &Statement,
    params: &QueryParameters,
    started: Instant,
    on_task: &RefCell<OnTask>,
) -> TaskRun {
    on_task.borrow_mut().reads_used = 0;
    let result = run_statement(node, session, statement, params, started, Some(on_task));
    let mut state = on_task.borrow_mut();
    if state.needs_thread {
        debug_assert!(state.writes.is_empty(), "a write started before a scan");
        return TaskRun::NeedsThread;
    }
    match state.read_needed.take() {
        Some(read) => {
            // A statement reads before it writes: a run that stops for a
            // read has started no write (the next run would repeat it).
            debug_assert!(state.writes.is_empty(), "a write started before a read");
            TaskRun::NeedsRead(read)
        }
        None => TaskRun::Done(result, std::mem::take(&mut state.writes)),
    }
}

/// How a run on a task ended.
#[derive(Debug)]
pub enum TaskRun {
    /// The statement's result, once these writes are answered.
    Done(Result<ResultBody, CqlError>, Vec<PendingWrite>),
    /// Do this read, then run the statement again.
    NeedsRead(NeededRead),
    /// Run the statement on a blocking thread instead.
    NeedsThread,
}

/// Does a read a run on a task needed (keep its result with
/// [`OnTask::keep_read`] for the next run).
pub async fn read_on_task(
    node: &Node,
    read: &NeededRead,
) -> Result<Option<PartitionRows>, CqlError> {
    node.coordinator
        .read_async(
            read.table,
            &read.key,
            &read.query,
            ReadTerms {
                placement: &read.placement,
                consistency: read.consistency,
                deadline: read.deadline,
            },
        )
        .await
        .map_err(coordinator_error)
}

impl OnTask {
    /// Keeps a read's result for the statement's next run.
    pub fn keep_read(&mut self, read: NeededRead, result: Result<Option<PartitionRows>, CqlError>) {
        self.reads_done.push((read, result));
    }
}

/// Awaits the writes a run on a task started: the statement's answer (the
/// first replica error, as a blocking write would have given it), with its
/// metrics recorded.
pub async fn finish_on_task(
    node: &Node,
    statement: &Statement,
    started: Instant,
    mut result: Result<ResultBody, CqlError>,
    writes: Vec<PendingWrite>,
) -> Result<ResultBody, CqlError> {
    for pending in writes {
        if let Err(error) = pending.answer().await {
            if result.is_ok() {
                result = Err(coordinator_error(error));
            }
        }
    }
    finish(node, statement, started, result)
}

fn run_statement(
    node: &Node,
    session: &mut Session,
    statement: &Statement,
    params: &QueryParameters,
    started: Instant,
    on_task: Option<&RefCell<OnTask>>,
) -> Result<ResultBody, CqlError> {
    let consistency = consistency_of(params)?;
    let bindings = Bindings {
        values: &params.values,
        now_micros: now_micros(),
    };
    let context = Context {
        node,
        params,
        consistency,
        bindings,
        started,
        on_task,
    };
    context.run(session, statement)
}

/// Records the statement's metrics and announces schema changes.
fn finish(
    node: &Node,
    statement: &Statement,
    started: Instant,
    result: Result<ResultBody, CqlError>,
) -> Result<ResultBody, CqlError> {
    let operation = match statement {
        Statement::Select { .. } => Operation::Read,
        Statement::Insert { .. }
        | Statement::Update { .. }
        | Statement::Delete { .. }
        | Statement::Batch { .. } => Operation::Write,
        _ => Operation::Other,
    };
    node.metrics
        .record(operation, started.elapsed(), result.as_ref().err());
    if let Ok(ResultBody::SchemaChange(change)) = &result {
        crate::migration::announce(node);
        // No receivers is fine: nobody registered.
        let _ = node
            .events
            .send(crate::node::ClientEvent::SchemaChange(change.clone()));
    }
    result
}

struct Context<'a> {
    node: &'a Node,
    params: &'a QueryParameters,
    consistency: ConsistencyLevel,
    bindings: Bindings<'a>,
    /// When the request arrived: its deadlines count from here.
    started: Instant,
    /// Set when running on an async task: writes are started and kept
    /// here instead of waited for, reads come from here (see [`OnTask`]).
    on_task: Option<&'a RefCell<OnTask>>,
}

/// The consistency level a request asks for.
fn consistency_of(params: &QueryParameters) -> Result<ConsistencyLevel, CqlError> {
    ConsistencyLevel::from_code(params.consistency).ok_or_else(|| {
        CqlError::Protocol(format!(
            "unknown consistency level {:#06x}",
            params.consistency
        ))
    })
}

impl Context<'_> {
    fn run(&self, session: &mut Session, statement: &Statement) -> Result<ResultBody, CqlError> {
        match statement {
            Statement::Use(_)
            | Statement::CreateKeyspace { .. }
            | Statement::AlterKeyspace { .. }
            | Statement::DropKeyspace { .. }
            | Statement::CreateTable { .. }
            | Statement::CreateType { .. }
            | Statement::DropType { .. }
            | Statement::AlterTable { .. }
            | Statement::AlterType { .. }
            | Statement::DropTable { .. }
            | Statement::Truncate(_) => self.schema_statement(session, statement),
            Statement::Delete {
                table: name,
                columns,
                relations,
                ..
            } if resolve_keyspace(name, session.keyspace.as_deref())
                .is_ok_and(|k| k == "system_traces") =>
            {
                self.delete_trace(&name.name, columns, relations)
            }
            Statement::Insert { .. } | Statement::Update { .. } | Statement::Delete { .. } => {
                let (table, mutation) = self.mutation(session, statement, None)?;
                self.write(&table, mutation, WriteType::Simple)?;
                Ok(ResultBody::Void)
            }
            Statement::Batch {
                using,
                statements,
                logged,
            } => {
                let write_type = if *logged {
                    WriteType::Batch
                } else {
                    WriteType::UnloggedBatch
                };
                let mut mutations = Vec::with_capacity(statements.len());
                for inner in statements {
                    mutations.push(self.mutation(session, inner, Some(using))?);
                }
                self.write_all(mutations, write_type)?;
                Ok(ResultBody::Void)
            }
            Statement::Select { .. } => self.select(session, statement),
            Statement::Describe(target) => crate::describe::describe(self.node, session, target),
            Statement::CreateRole { .. }
            | Statement::AlterRole { .. }
            | Statement::DropRole { .. }
            | Statement::ListRoles { .. } => crate::roles::execute(self.node, session, statement),
            Statement::NotYetSupported(what) => Err(CqlError::not_yet_supported(what)),
        }
    }

    fn table(
        &self,
        name: &QualifiedName,
        session: &Session,
    ) -> Result<std::sync::Arc<TableSchema>, CqlError> {
        let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
        let catalog = self.node.catalog.read();
        if catalog.keyspace(&keyspace).is_none() && !SYSTEM_KEYSPACES.contains(&keyspace.as_str()) {
            return Err(invalid(format!("Keyspace {keyspace} does not exist")));
        }
        catalog
            .table(&keyspace, &name.name)
            .ok_or_else(|| invalid(format!("unconfigured table {}", name.name)))
    }

    fn placement(&self, table: &TableSchema) -> Placement {
        let catalog = self.node.catalog.read();
        catalog
            .keyspace(&table.keyspace)
            .map_or(Placement::Local, |k| k.strategy.clone())
    }

    fn write(
        &self,
        table: &TableSchema,
        mutation: Mutation,
        write_type: WriteType,
    ) -> Result<(), CqlError> {
        let deadline = self.started + self.node.coordinator.timeouts().write;
        let pending = self
            .node
            .coordinator
            .start_write(
                mutation,
                &self.placement(table),
                self.consistency,
                write_type,
                deadline,
            )
            .map_err(coordinator_error)?;
        match self.on_task {
            Some(on_task) => {
                on_task.borrow_mut().writes.push(pending);
                Ok(())
            }
            None => pending.wait().map_err(coordinator_error),
        }
    }

    /// Writes every mutation of a batch. A timeout does not stop the batch
    /// half way (the rest would be lost for no reason): all are sent, and
    /// the first timeout is the answer.
    fn write_all(
        &self,
        mutations: Vec<(std::sync::Arc<TableSchema>, Mutation)>,
        write_type: WriteType,
    ) -> Result<(), CqlError> {
        warn_of_batch(&mutations, write_type);
        let mut timed_out = None;
        for (table, mutation) in mutations {
            match self.write(&table, mutation, write_type) {
                Ok(()) => {}
                Err(error @ CqlError::WriteTimeout { .. }) => {
                    timed_out.get_or_insert(error);
                }
                Err(error) => return Err(error),
            }
        }
        timed_out.map_or(Ok(()), Err)
    }

    /// When a single-partition read must have finished.
    fn read_deadline(&self) -> Instant {
        self.started + self.node.coordinator.timeouts().read
    }

    /// When a token-range read must have finished.
    fn range_deadline(&self) -> Instant {
        self.started + self.node.coordinator.timeouts().range
    }

    fn int_option(&self, term: &Term, what: &str) -> Result<i64, CqlError> {
        match term_value(&CqlType::BigInt, term, what, self.bindings) {
            Ok(Value::Set(bytes)) if bytes.len() == 8 => Ok(i64::from_be_bytes(
                bytes.as_ref().try_into().unwrap_or([0; 8]),
            )),
            Ok(Value::Set(bytes)) if bytes.len() == 4 => Ok(i64::from(i32::from_be_bytes(
                bytes.as_ref().try_into().unwrap_or([0; 4]),
            ))),
            Ok(_) => Err(invalid(format!("Invalid null value of {what}"))),
            Err(_) => match term_value(&CqlType::Int, term, what, self.bindings)? {
                Value::Set(bytes) if bytes.len() == 4 => Ok(i64::from(i32::from_be_bytes(
                    bytes.as_ref().try_into().unwrap_or([0; 4]),
                ))),
                _ => Err(invalid(format!("Invalid value of {what}"))),
            },
        }
    }
}

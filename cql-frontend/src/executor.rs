//! Statement execution: parse, resolve against the schema, turn into
//! coordinator reads and writes, and build the RESULT.
//!
//! Keys: a partition key is the column's serialized value, or for a compound
//! key each component as `u16 length, bytes, 0x00` (Cassandra's layout, so
//! tokens match drivers'); the token is its Murmur3 hash. Clustering columns
//! become one byte-comparable key ([`crate::types`]). An `INSERT` also writes
//! a row marker cell ([`ROW_MARKER`]) so the row exists with all columns null.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Instant;

use std::cell::RefCell;

use replication::{
    ConsistencyLevel, CoordinatorError, PendingWrite, Placement, ReadTerms, WriteType,
};
use storage_lsm::model::{
    Cell, CellValue, ClusteringBound, ClusteringRange, DeletionTime, Mutation, PartitionKey,
    PartitionUpdate, RangeTombstone, Row,
};
use storage_lsm::{PartitionRows, ScanResume, SliceQuery, TokenRange};

use crate::cql::ast::{
    Assignment, Operator, QualifiedName, Relation, Selector, Statement, Term, Using,
};
use crate::cql::parser::parse;
use crate::metrics::Operation;
use crate::node::{Node, Session};
use crate::protocol::error::CqlError;
use crate::protocol::messages::QueryParameters;
use crate::protocol::primitives::Value;
use crate::results::{ColumnSpec, ResultBody, Rows, SchemaChange};
use crate::schema::{
    resolve_keyspace, ColumnKind, ColumnSchema, TableSchema, ROW_MARKER, SYSTEM_KEYSPACES,
};
use crate::system_tables::virtual_table;
use crate::types::CqlType;
use crate::values::{split_tuple, term_value, Bindings};

use crate::schema::TTL_MAX_S;

/// How long TRUNCATE waits for every node (Cassandra's
/// `truncate_request_timeout`).
const TRUNCATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Rows an unpaged SELECT (no page size) may return: past it the client
/// gets an error that says to page, never a result cut short.
const UNPAGED_ROWS_MAX: usize = 1_000_000;
/// Rows read from replicas at a time while an unpaged SELECT gathers its
/// whole result.
const UNPAGED_FETCH_ROWS: usize = 10_000;

/// What a paging state says is left of a LIMIT after `taken` rows;
/// `None` when there was no LIMIT (`remaining` is `usize::MAX`).
fn rows_left(remaining: usize, taken: usize) -> Option<usize> {
    (remaining != usize::MAX).then(|| remaining.saturating_sub(taken))
}

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

impl Context<'_> {
    fn run(&self, session: &mut Session, statement: &Statement) -> Result<ResultBody, CqlError> {
        let engine = self.node.coordinator.engine();
        let schema_change = |change, target, keyspace: &str, name: Option<&str>| {
            ResultBody::SchemaChange(SchemaChange {
                change,
                target,
                keyspace: keyspace.to_owned(),
                name: name.map(str::to_owned),
            })
        };
        match statement {
            Statement::Use(keyspace) => {
                if !SYSTEM_KEYSPACES.contains(&keyspace.as_str())
                    && self.node.catalog.read().keyspace(keyspace).is_none()
                {
                    return Err(invalid(format!("Keyspace '{keyspace}' does not exist")));
                }
                session.keyspace = Some(keyspace.clone());
                Ok(ResultBody::SetKeyspace(keyspace.clone()))
            }
            Statement::CreateKeyspace {
                name,
                if_not_exists,
                options,
            } => {
                let created = self.node.catalog.write().create_keyspace(
                    engine,
                    name,
                    *if_not_exists,
                    options,
                )?;
                Ok(if created {
                    schema_change("CREATED", "KEYSPACE", name, None)
                } else {
                    ResultBody::Void
                })
            }
            Statement::AlterKeyspace { name, options } => {
                self.node
                    .catalog
                    .write()
                    .alter_keyspace(engine, name, options)?;
                Ok(schema_change("UPDATED", "KEYSPACE", name, None))
            }
            Statement::DropKeyspace { name, if_exists } => {
                let dropped = self
                    .node
                    .catalog
                    .write()
                    .drop_keyspace(engine, name, *if_exists)?;
                if dropped {
                    // Statements on its tables must not run against new
                    // tables of the same names (CASSANDRA-15252): clients
                    // are told Unprepared and prepare again.
                    self.node.prepared.clear();
                }
                Ok(if dropped {
                    schema_change("DROPPED", "KEYSPACE", name, None)
                } else {
                    ResultBody::Void
                })
            }
            Statement::CreateTable { .. } => {
                let created = self.node.catalog.write().create_table(
                    engine,
                    statement,
                    session.keyspace.as_deref(),
                )?;
                Ok(created.map_or(ResultBody::Void, |table| {
                    schema_change("CREATED", "TABLE", &table.keyspace, Some(&table.name))
                }))
            }
            Statement::CreateType {
                name,
                if_not_exists,
                fields,
            } => {
                let created = self.node.catalog.write().create_type(
                    engine,
                    name,
                    *if_not_exists,
                    fields,
                    session.keyspace.as_deref(),
                )?;
                Ok(created.map_or(ResultBody::Void, |udt| {
                    schema_change("CREATED", "TYPE", &udt.keyspace, Some(&udt.name))
                }))
            }
            Statement::DropType { name, if_exists } => {
                let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
                let dropped = self.node.catalog.write().drop_type(
                    engine,
                    name,
                    *if_exists,
                    session.keyspace.as_deref(),
                )?;
                Ok(if dropped {
                    schema_change("DROPPED", "TYPE", &keyspace, Some(&name.name))
                } else {
                    ResultBody::Void
                })
            }
            Statement::AlterTable {
                name,
                if_exists,
                change,
            } => {
                let altered = self.node.catalog.write().alter_table(
                    engine,
                    name,
                    *if_exists,
                    change,
                    session.keyspace.as_deref(),
                )?;
                // Prepared statements describe the old columns: drivers
                // prepare again when told Unprepared.
                self.node.prepared.clear();
                Ok(altered.map_or(ResultBody::Void, |table| {
                    schema_change("UPDATED", "TABLE", &table.keyspace, Some(&table.name))
                }))
            }
            Statement::AlterType {
                name,
                if_exists,
                change,
            } => {
                let altered = self.node.catalog.write().alter_type(
                    engine,
                    name,
                    *if_exists,
                    change,
                    session.keyspace.as_deref(),
                )?;
                self.node.prepared.clear();
                Ok(altered.map_or(ResultBody::Void, |udt| {
                    schema_change("UPDATED", "TYPE", &udt.keyspace, Some(&udt.name))
                }))
            }
            Statement::DropTable { name, if_exists } => {
                let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
                let dropped = self.node.catalog.write().drop_table(
                    engine,
                    name,
                    *if_exists,
                    session.keyspace.as_deref(),
                )?;
                if dropped {
                    // As for a dropped keyspace (CASSANDRA-15252).
                    self.node.prepared.clear();
                }
                Ok(if dropped {
                    schema_change("DROPPED", "TABLE", &keyspace, Some(&name.name))
                } else {
                    ResultBody::Void
                })
            }
            Statement::Truncate(name) => {
                let table = self.table(name, session)?;
                self.node
                    .coordinator
                    .truncate(table.table_id(), TRUNCATE_TIMEOUT)
                    .map_err(coordinator_error)?;
                Ok(ResultBody::Void)
            }
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
        warn_of_batch_size(&mutations);
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

    /// Timestamp (µs) and TTL (s) a write uses.
    fn write_time(
        &self,
        table: &TableSchema,
        using: &Using,
        outer: Option<&Using>,
    ) -> Result<(i64, i64), CqlError> {
        let timestamp = match using
            .timestamp
            .as_ref()
            .or(outer.and_then(|u| u.timestamp.as_ref()))
        {
            Some(term) => self.int_option(term, "timestamp")?,
            None => self.params.timestamp.unwrap_or(self.bindings.now_micros),
        };
        let ttl = match using.ttl.as_ref().or(outer.and_then(|u| u.ttl.as_ref())) {
            Some(term) => self.int_option(term, "ttl")?,
            None => table.default_time_to_live,
        };
        if ttl < 0 {
            return Err(invalid(format!(
                "A TTL must be greater or equal to 0, but was {ttl}"
            )));
        }
        if ttl > TTL_MAX_S {
            return Err(invalid(format!(
                "ttl is too large. requested ({ttl}) maximum ({TTL_MAX_S})"
            )));
        }
        Ok((timestamp, ttl))
    }

    fn mutation(
        &self,
        session: &Session,
        statement: &Statement,
        outer: Option<&Using>,
    ) -> Result<(std::sync::Arc<TableSchema>, Mutation), CqlError> {
        let now_s = self.bindings.now_micros / 1_000_000;
        if matches!(
            statement,
            Statement::Insert {
                if_not_exists: true,
                ..
            } | Statement::Update {
                has_conditions: true,
                ..
            } | Statement::Delete {
                has_conditions: true,
                ..
            }
        ) {
            return Err(CqlError::not_yet_supported(
                "lightweight transactions (IF conditions)",
            ));
        }
        match statement {
            Statement::Insert {
                table: name,
                columns,
                values,
                json,
                using,
                ..
            } => {
                let table = self.table(name, session)?;
                let from_json;
                let (columns, values) = match json {
                    Some((text, default_unset)) => {
                        from_json = self.json_columns(&table, text, *default_unset)?;
                        (&from_json.0, &from_json.1)
                    }
                    None => (columns, values),
                };
                if columns.len() != values.len() {
                    return Err(invalid(format!(
                        "Unmatched column names/values: {} columns, {} values",
                        columns.len(),
                        values.len()
                    )));
                }
                let (timestamp, ttl) = self.write_time(&table, using, outer)?;
                let mut assigned = Vec::with_capacity(columns.len());
                for (column, term) in columns.iter().zip(values) {
                    let schema = table
                        .column(column)
                        .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                    if assigned
                        .iter()
                        .any(|(c, _): &(&ColumnSchema, Value)| c.name == *column)
                    {
                        return Err(invalid(format!(
                            "Multiple definitions found for column {column}"
                        )));
                    }
                    assigned.push((schema, term_value(&schema.ty, term, column, self.bindings)?));
                }
                let key = partition_key(&table, |c| {
                    assigned
                        .iter()
                        .find(|(s, _)| s.name == c.name)
                        .map(|(_, v)| v.clone())
                })?;
                // Only the partition key and static columns: no row, the
                // static row alone (as Cassandra writes it).
                let kind_given =
                    |kind: fn(&ColumnKind) -> bool| assigned.iter().any(|(s, _)| kind(&s.kind));
                let statics_only = table.clustering().next().is_some()
                    && kind_given(|k| matches!(k, ColumnKind::Static))
                    && !kind_given(|k| matches!(k, ColumnKind::Clustering | ColumnKind::Regular));
                let clustering = if statics_only {
                    Bytes::new()
                } else {
                    clustering_key(&table, |c| {
                        assigned
                            .iter()
                            .find(|(s, _)| s.name == c.name)
                            .map(|(_, v)| v.clone())
                    })?
                };
                let mut written = Vec::with_capacity(assigned.len());
                for (schema, value) in &assigned {
                    if matches!(schema.kind, ColumnKind::Regular | ColumnKind::Static) {
                        let cells = column_cells(
                            schema,
                            &ColumnWrite::Set(value.clone()),
                            timestamp,
                            ttl,
                            now_s,
                        )?;
                        written.push((*schema, cells));
                    }
                }
                let mut update = cells_update(&table, &written, clustering)?;
                if statics_only {
                    // No row marker: the static row is the whole write.
                } else if let Some(row) = update.rows.first_mut() {
                    row.add_cell(cell(ROW_MARKER, timestamp, ttl, now_s, Some(Bytes::new())));
                } else {
                    update.rows.push(Row::new(
                        Bytes::new(),
                        vec![cell(ROW_MARKER, timestamp, ttl, now_s, Some(Bytes::new()))],
                    ));
                }
                Ok((
                    table.clone(),
                    Mutation {
                        table: table.table_id(),
                        key,
                        update,
                    },
                ))
            }
            Statement::Update {
                table: name,
                using,
                assignments,
                relations,
                ..
            } => {
                let table = self.table(name, session)?;
                let (timestamp, ttl) = self.write_time(&table, using, outer)?;
                let restrictions = self.restrictions(&table, relations)?;
                let key = restrictions.single_partition(&table)?;
                // Only static columns set: the partition key alone names them.
                let only_statics = !assignments.is_empty()
                    && assignments.iter().all(|(column, _)| {
                        table
                            .column(column)
                            .is_some_and(|c| matches!(c.kind, ColumnKind::Static))
                    });
                let clustering = if only_statics && !restrictions.restricts_clustering() {
                    Bytes::new()
                } else {
                    restrictions.full_clustering(&table)?
                };
                let mut assigned = Vec::with_capacity(assignments.len());
                for (column, assignment) in assignments {
                    let schema = table
                        .column(column)
                        .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                    if matches!(
                        schema.kind,
                        ColumnKind::PartitionKey | ColumnKind::Clustering
                    ) {
                        return Err(invalid(format!(
                            "PRIMARY KEY part {column} found in SET part"
                        )));
                    }
                    if let Some(cells) = self.list_update(
                        &table,
                        &key,
                        &clustering,
                        schema,
                        assignment,
                        timestamp,
                        ttl,
                        now_s,
                    )? {
                        assigned.push((schema, cells));
                        continue;
                    }
                    let write = self.column_write(schema, assignment)?;
                    assigned.push((schema, column_cells(schema, &write, timestamp, ttl, now_s)?));
                }
                let update = cells_update(&table, &assigned, clustering)?;
                Ok((
                    table.clone(),
                    Mutation {
                        table: table.table_id(),
                        key,
                        update,
                    },
                ))
            }
            Statement::Delete {
                table: name,
                columns,
                using,
                relations,
                ..
            } => {
                let table = self.table(name, session)?;
                if using.ttl.is_some() {
                    return Err(invalid("Cannot set a TTL on DELETE"));
                }
                let (timestamp, _) = self.write_time(&table, using, outer)?;
                let deletion = DeletionTime::new(timestamp, now_s);
                let restrictions = self.restrictions(&table, relations)?;
                let key = restrictions.single_partition(&table)?;
                let clustering_count = table.clustering().count();
                let mut update = PartitionUpdate::default();
                if !columns.is_empty() {
                    let mut cells = Vec::new();
                    let mut statics = Vec::new();
                    for (column, element) in columns {
                        let schema = table
                            .column(column)
                            .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                        let mut tombstone = Cell::tombstone(schema.id, timestamp, now_s);
                        if let Some(element) = element {
                            tombstone.path = Some(match schema.ty {
                                CqlType::List(_) => {
                                    let clustering = match schema.kind {
                                        ColumnKind::Static => Bytes::new(),
                                        _ => restrictions.full_clustering(&table)?,
                                    };
                                    let elements =
                                        self.list_elements(&table, &key, &clustering, schema)?;
                                    let index = self.list_index(element, schema)?;
                                    elements
                                        .get(index)
                                        .map(|(path, _)| path.clone())
                                        .ok_or_else(|| {
                                            invalid(format!(
                                                "Attempted to delete an element from a list which is null or has fewer than {} elements",
                                                index + 1
                                            ))
                                        })?
                                }
                                _ => self.element_path(schema, element)?,
                            });
                        }
                        match schema.kind {
                            ColumnKind::PartitionKey | ColumnKind::Clustering => {
                                return Err(invalid(format!(
                                    "Invalid identifier {column} for deletion (should not be a PRIMARY KEY part)"
                                )))
                            }
                            ColumnKind::Static => statics.push(tombstone),
                            ColumnKind::Regular => cells.push(tombstone),
                        }
                    }
                    // Rows are named only when a regular column is deleted:
                    // static columns alone need the partition key alone.
                    if !cells.is_empty() {
                        let rows = if clustering_count > 0 {
                            restrictions.full_clusterings(&table)?
                        } else {
                            vec![restrictions.full_clustering(&table)?]
                        };
                        for clustering in rows {
                            update.rows.push(Row::new(clustering, cells.clone()));
                        }
                    }
                    if !statics.is_empty() {
                        update.static_row = Some(Row::new(Bytes::new(), statics));
                    }
                } else if restrictions.clustering_depth == clustering_count
                    && restrictions.clustering_slice.is_none()
                    && clustering_count > 0
                {
                    for clustering in restrictions.full_clusterings(&table)? {
                        update.rows.push(Row {
                            clustering,
                            deletion: Some(deletion),
                            cells: Vec::new(),
                        });
                    }
                } else if !restrictions.restricts_clustering() {
                    update.partition_deletion = Some(deletion);
                } else {
                    for range in restrictions.clustering_ranges(&table)? {
                        update
                            .range_tombstones
                            .push(RangeTombstone { range, deletion });
                    }
                }
                Ok((
                    table.clone(),
                    Mutation {
                        table: table.table_id(),
                        key,
                        update,
                    },
                ))
            }
            _ => Err(invalid(
                "Only INSERT, UPDATE and DELETE statements are allowed in a BATCH",
            )),
        }
    }

    /// The columns and values of an `INSERT JSON`.
    fn json_columns(
        &self,
        table: &TableSchema,
        text: &Term,
        default_unset: bool,
    ) -> Result<(Vec<String>, Vec<Term>), CqlError> {
        let text = match term_value(&CqlType::Text, text, "[json]", self.bindings)? {
            Value::Set(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| invalid("INSERT JSON needs UTF-8 text"))?,
            _ => return Err(invalid("Got null for INSERT JSON values")),
        };
        let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "Could not decode JSON string as a map: {e}. (String was: {text})"
            ))
        })?;
        let serde_json::Value::Object(object) = parsed else {
            return Err(invalid(format!(
                "Could not decode JSON string as a map: it is not an object. (String was: {text})"
            )));
        };
        let mut given: Vec<(String, serde_json::Value)> = Vec::with_capacity(object.len());
        for (key, value) in object {
            let name = match key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                Some(quoted) => quoted.to_owned(),
                None => key.to_ascii_lowercase(),
            };
            if table.column(&name).is_none() {
                return Err(invalid(format!(
                    "JSON values map contains unrecognized column: {key}"
                )));
            }
            given.push((name, value));
        }
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for column in &table.columns {
            match given.iter().find(|(name, _)| *name == column.name) {
                Some((_, value)) => {
                    columns.push(column.name.clone());
                    values.push(crate::json::to_term(&column.ty, value, &column.name)?);
                }
                None if default_unset
                    || matches!(
                        column.kind,
                        ColumnKind::PartitionKey | ColumnKind::Clustering
                    ) => {}
                None => {
                    columns.push(column.name.clone());
                    values.push(Term::Literal(crate::cql::ast::Literal::Null));
                }
            }
        }
        Ok((columns, values))
    }

    /// The live elements (cell path, value) of a non-frozen list in one
    /// row, in list order: what index and by-value operations need.
    fn list_elements(
        &self,
        table: &TableSchema,
        key: &PartitionKey,
        clustering: &Bytes,
        column: &ColumnSchema,
    ) -> Result<Vec<(Bytes, Bytes)>, CqlError> {
        let point = if clustering.is_empty() {
            ClusteringRange::all()
        } else {
            ClusteringRange {
                start: ClusteringBound::Inclusive(clustering.clone()),
                end: ClusteringBound::Inclusive(clustering.clone()),
            }
        };
        let Some(partition) =
            self.read_slices(table, key, std::slice::from_ref(&point), false, 1, None)?
        else {
            return Ok(Vec::new());
        };
        let row = match column.kind {
            ColumnKind::Static => partition.static_row.as_ref(),
            _ => partition.rows.first(),
        };
        let mut elements: Vec<(Bytes, Bytes)> = row
            .map(|row| {
                row.cells
                    .iter()
                    .filter(|c| c.column == column.id)
                    .filter_map(|c| Some((c.path.clone()?, c.value_bytes()?.clone())))
                    .collect()
            })
            .unwrap_or_default();
        elements.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(elements)
    }

    fn list_index(&self, term: &Term, column: &ColumnSchema) -> Result<usize, CqlError> {
        match term_value(&CqlType::Int, term, &column.name, self.bindings)? {
            Value::Set(bytes) => {
                let index = i32::from_be_bytes(
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| invalid("a list index is an int"))?,
                );
                usize::try_from(index)
                    .map_err(|_| invalid(format!("Invalid negative list index {index}")))
            }
            _ => Err(invalid(format!(
                "Invalid null value for list index of {}",
                column.name
            ))),
        }
    }

    /// `l[i] = v` and `l = l - [v, ...]` on a non-frozen list: cells that
    /// overwrite or delete existing elements, found by reading the row
    /// first (as Cassandra does). `None` for every other assignment.
    #[allow(clippy::too_many_arguments)]
    fn list_update(
        &self,
        table: &TableSchema,
        key: &PartitionKey,
        clustering: &Bytes,
        column: &ColumnSchema,
        assignment: &Assignment,
        timestamp: i64,
        ttl: i64,
        now_s: i64,
    ) -> Result<Option<Vec<Cell>>, CqlError> {
        let CqlType::List(element_ty) = &column.ty else {
            return Ok(None);
        };
        let row_clustering = match column.kind {
            ColumnKind::Static => Bytes::new(),
            _ => clustering.clone(),
        };
        match assignment {
            Assignment::SetElement(index, value) => {
                let index = self.list_index(index, column)?;
                let elements = self.list_elements(table, key, &row_clustering, column)?;
                let Some((path, _)) = elements.get(index) else {
                    return Err(invalid(format!(
                        "List index {index} out of bound, list has size {}",
                        elements.len()
                    )));
                };
                let value = match term_value(element_ty, value, &column.name, self.bindings)? {
                    Value::Set(bytes) => Some(bytes),
                    Value::Null => None,
                    Value::NotSet => return Ok(Some(Vec::new())),
                };
                Ok(Some(vec![element_cell(
                    column.id,
                    path.clone(),
                    timestamp,
                    ttl,
                    now_s,
                    value,
                )]))
            }
            Assignment::Remove(values) => {
                let Value::Set(bytes) =
                    term_value(&column.ty, values, &column.name, self.bindings)?
                else {
                    return Ok(Some(Vec::new()));
                };
                let doomed = split_collection(&bytes)?;
                let elements = self.list_elements(table, key, &row_clustering, column)?;
                Ok(Some(
                    elements
                        .into_iter()
                        .filter(|(_, value)| doomed.contains(value))
                        .map(|(path, _)| element_cell(column.id, path, timestamp, 0, now_s, None))
                        .collect(),
                ))
            }
            _ => Ok(None),
        }
    }

    /// The cell path of one collection element named in a statement.
    fn element_path(&self, column: &ColumnSchema, element: &Term) -> Result<Bytes, CqlError> {
        let key_ty = match column.ty.unfrozen() {
            CqlType::Map(key, _) if column.ty.is_multi_cell() => key,
            CqlType::Set(element) if column.ty.is_multi_cell() => element,
            CqlType::List(_) if column.ty.is_multi_cell() => {
                return Err(CqlError::not_yet_supported("list elements by index"))
            }
            _ => {
                return Err(invalid(format!(
                    "Invalid element access on column {}: it is not a non-frozen map or set",
                    column.name
                )))
            }
        };
        match term_value(key_ty, element, &column.name, self.bindings)? {
            Value::Set(key) => {
                let mut path = Vec::new();
                key_ty
                    .encode_comparable(&key, false, &mut path)
                    .map_err(|e| invalid(e.0))?;
                Ok(Bytes::from(path))
            }
            _ => Err(invalid(format!(
                "Invalid null key for column {}",
                column.name
            ))),
        }
    }

    /// Evaluates one `SET` clause against its column.
    fn column_write(
        &self,
        column: &ColumnSchema,
        assignment: &Assignment,
    ) -> Result<ColumnWrite, CqlError> {
        let value = |term: &Term, ty: &CqlType| term_value(ty, term, &column.name, self.bindings);
        let collection = column.ty.is_multi_cell();
        match assignment {
            Assignment::Set(term) => Ok(ColumnWrite::Set(value(term, &column.ty)?)),
            _ if matches!(column.ty, CqlType::Counter) => Err(CqlError::not_yet_supported("counters")),
            _ if !collection => Err(invalid(format!(
                "Invalid operation on column {} of type {}: only non-frozen collections support +, - and [ ]",
                column.name, column.ty
            ))),
            Assignment::Add(term) => Ok(ColumnWrite::Add(value(term, &column.ty)?)),
            Assignment::Prepend(term) => match column.ty {
                CqlType::List(_) => Ok(ColumnWrite::Prepend(value(term, &column.ty)?)),
                _ => Err(invalid(format!(
                    "Invalid operation: prepend is only for lists, and {} is a {}",
                    column.name, column.ty
                ))),
            },
            Assignment::Remove(term) => match &column.ty {
                CqlType::Set(_) => Ok(ColumnWrite::Remove(value(term, &column.ty)?)),
                CqlType::Map(key, _) => Ok(ColumnWrite::Remove(value(term, &CqlType::Set(key.clone()))?)),
                _ => Err(CqlError::not_yet_supported("removing list elements by value")),
            },
            Assignment::SetElement(key, element) => match &column.ty {
                CqlType::Map(key_ty, value_ty) => {
                    let Value::Set(key) = value(key, key_ty)? else {
                        return Err(invalid(format!("Invalid null map key for column {}", column.name)));
                    };
                    Ok(ColumnWrite::SetElement(key, value(element, value_ty)?))
                }
                _ => Err(CqlError::not_yet_supported("setting list elements by index")),
            },
        }
    }

    fn restrictions(
        &self,
        table: &TableSchema,
        relations: &[Relation],
    ) -> Result<Restrictions, CqlError> {
        let mut r = Restrictions::default();
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        let mut clustering_ops: Vec<ClusteringOp> = Vec::new();
        for relation in relations {
            match relation {
                Relation::Column { column, op, value } => {
                    let schema = table
                        .column(column)
                        .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
                    if *op == Operator::Ne {
                        return Err(invalid(format!(
                            "Unsupported \"!=\" relation on column {column}"
                        )));
                    }
                    let values = self.relation_values(schema, *op, value)?;
                    match schema.kind {
                        ColumnKind::PartitionKey if matches!(op, Operator::Eq | Operator::In) => {
                            r.partition_relations
                                .push(Filter::new(schema, *op, values.clone())?);
                            r.partition.push((schema.position as usize, values));
                        }
                        ColumnKind::PartitionKey => {
                            r.filters.push(Filter::new(schema, *op, values)?);
                        }
                        ColumnKind::Clustering
                            if matches!(op, Operator::Contains | Operator::ContainsKey) =>
                        {
                            r.filters.push(Filter::new(schema, *op, values)?);
                        }
                        ColumnKind::Clustering => {
                            r.clustering_relations
                                .push(Filter::new(schema, *op, values.clone())?);
                            let tuples = values.into_iter().map(|v| vec![v]).collect();
                            clustering_ops.push(ClusteringOp {
                                position: schema.position as usize,
                                width: 1,
                                op: *op,
                                tuples,
                            });
                        }
                        _ => r.filters.push(Filter::new(schema, *op, values)?),
                    }
                }
                Relation::Token { op, value, .. } => {
                    let token = self.int_option(value, "token")?;
                    match op {
                        Operator::Gt => r.token_start = Bound::Excluded(token),
                        Operator::Ge => r.token_start = Bound::Included(token),
                        Operator::Lt => r.token_end = Bound::Excluded(token),
                        Operator::Le => r.token_end = Bound::Included(token),
                        Operator::Eq => {
                            r.token_start = Bound::Included(token);
                            r.token_end = Bound::Included(token);
                        }
                        _ => return Err(invalid("Unsupported operator on token()")),
                    }
                    r.has_token = true;
                }
                Relation::MultiColumn { columns, op, value } => {
                    r.has_multi_column = true;
                    clustering_ops.push(self.multi_column_op(&clustering, columns, *op, value)?);
                }
            }
        }
        clustering_ops.sort_by_key(|op| op.position);
        let mut slice_so_far: Option<Slice> = None;
        for op in clustering_ops {
            let column = clustering
                .get(op.position)
                .ok_or_else(|| invalid("bad clustering position"))?;
            if op.position > r.clustering_depth {
                let previous = clustering
                    .get(op.position.saturating_sub(1))
                    .map_or("", |c| c.name.as_str());
                return Err(invalid(format!(
                    "Clustering column \"{}\" cannot be restricted (preceding column \"{previous}\" is restricted by a non-EQ relation or not restricted)",
                    column.name
                )));
            }
            match op.op {
                Operator::Eq | Operator::In if op.position == r.clustering_depth => {
                    // Each prefix so far continues with each listed tuple.
                    let mut next = Vec::new();
                    for prefix in &r.clustering_prefixes {
                        for tuple in &op.tuples {
                            let mut longer = prefix.clone();
                            longer.extend(tuple.iter().cloned());
                            next.push(longer);
                        }
                    }
                    if next.len() > CLUSTERING_PREFIXES_MAX {
                        return Err(invalid(format!(
                            "IN restrictions on clustering columns produce more than {CLUSTERING_PREFIXES_MAX} combinations"
                        )));
                    }
                    r.clustering_prefixes = next;
                    r.clustering_depth += op.width;
                }
                Operator::Eq | Operator::In => {
                    return Err(invalid(format!(
                        "{} cannot be restricted by more than one relation if it includes an Equal",
                        column.name
                    )))
                }
                Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
                    let descending = column.descending;
                    let slice = slice_so_far.get_or_insert_with(|| Slice {
                        position: op.position,
                        descending,
                        lower: None,
                        upper: None,
                    });
                    if slice.position != op.position {
                        return Err(invalid(
                            "Only one clustering column may be restricted by a range",
                        ));
                    }
                    let values = op.tuples.into_iter().next().unwrap_or_default();
                    match op.op {
                        Operator::Gt => slice.lower = Some((values, false)),
                        Operator::Ge => slice.lower = Some((values, true)),
                        Operator::Lt => slice.upper = Some((values, false)),
                        _ => slice.upper = Some((values, true)),
                    }
                }
                _ => {
                    return Err(CqlError::not_yet_supported(
                        "this operator on clustering columns",
                    ))
                }
            }
        }
        r.clustering_slice = slice_so_far;
        Ok(r)
    }

    /// A `(c1, c2) op (v1, v2)` relation: consecutive clustering columns of
    /// one order, and their values as tuples.
    fn multi_column_op(
        &self,
        clustering: &[&ColumnSchema],
        columns: &[String],
        op: Operator,
        value: &Term,
    ) -> Result<ClusteringOp, CqlError> {
        let mut schemas = Vec::with_capacity(columns.len());
        for name in columns {
            let schema = clustering
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "Multi-column relations can only be applied to clustering columns but was applied to: {name}"
                    ))
                })?;
            schemas.push(*schema);
        }
        let first = schemas.first().map_or(0, |c| c.position as usize);
        for (i, schema) in schemas.iter().enumerate() {
            if schema.position as usize != first + i {
                return Err(invalid(format!(
                    "Clustering columns must appear in the PRIMARY KEY order in multi-column relations: ({})",
                    columns.join(", ")
                )));
            }
        }
        if matches!(
            op,
            Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le
        ) && schemas
            .iter()
            .any(|c| c.descending != schemas[0].descending)
        {
            return Err(CqlError::not_yet_supported(
                "multi-column slices over clustering columns of mixed ASC/DESC order",
            ));
        }
        let tuple_type = CqlType::Tuple(schemas.iter().map(|c| c.ty.clone()).collect());
        let label = format!("({})", columns.join(", "));
        let one = |term: &Term| -> Result<Vec<Bytes>, CqlError> {
            let Value::Set(bytes) = term_value(&tuple_type, term, &label, self.bindings)? else {
                return Err(invalid(format!(
                    "Invalid null value in condition for {label}"
                )));
            };
            let parts = split_tuple(&bytes)?;
            if parts.len() != schemas.len() {
                return Err(invalid(format!(
                    "Expected {} elements in value tuple for {label}, but got {}",
                    schemas.len(),
                    parts.len()
                )));
            }
            parts
                .into_iter()
                .map(|part| {
                    part.ok_or_else(|| {
                        invalid(format!("Invalid null value in condition for {label}"))
                    })
                })
                .collect()
        };
        let tuples = match (op, value) {
            (Operator::In, Term::Tuple(items) | Term::List(items)) => {
                items.iter().map(one).collect::<Result<Vec<_>, _>>()?
            }
            (Operator::In, Term::Bind(_)) => {
                let list = CqlType::List(Box::new(tuple_type.clone()));
                let Value::Set(bytes) = term_value(&list, value, &label, self.bindings)? else {
                    return Err(invalid(format!(
                        "Invalid null value for IN restriction on {label}"
                    )));
                };
                split_collection(&bytes)?
                    .iter()
                    .map(|item| {
                        split_tuple(item)?
                            .into_iter()
                            .map(|part| {
                                part.ok_or_else(|| {
                                    invalid(format!("Invalid null value in condition for {label}"))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            (Operator::In, _) => return Err(invalid("IN needs a list of tuples")),
            (_, term) => vec![one(term)?],
        };
        Ok(ClusteringOp {
            position: first,
            width: schemas.len(),
            op,
            tuples,
        })
    }

    fn relation_values(
        &self,
        column: &ColumnSchema,
        op: Operator,
        term: &Term,
    ) -> Result<Vec<Bytes>, CqlError> {
        let ty = operand_type(&column.ty, op);
        let one = |term: &Term| -> Result<Bytes, CqlError> {
            match term_value(ty, term, &column.name, self.bindings)? {
                Value::Set(bytes) => Ok(bytes),
                _ => Err(invalid(format!(
                    "Invalid null value in condition for column {}",
                    column.name
                ))),
            }
        };
        match (op, term) {
            (Operator::In, Term::Tuple(items) | Term::List(items)) => {
                items.iter().map(one).collect()
            }
            (Operator::In, Term::Bind(_)) => match term_value(
                &CqlType::List(Box::new(ty.clone())),
                term,
                &column.name,
                self.bindings,
            )? {
                Value::Set(bytes) => split_collection(&bytes),
                _ => Err(invalid(format!(
                    "Invalid null value for IN restriction on {}",
                    column.name
                ))),
            },
            (Operator::In, _) => Err(invalid("IN needs a list of values")),
            (_, term) => Ok(vec![one(term)?]),
        }
    }

    fn select(&self, session: &Session, statement: &Statement) -> Result<ResultBody, CqlError> {
        let Statement::Select {
            table: name,
            json,
            distinct,
            selectors,
            relations,
            group_by,
            order_by,
            per_partition_limit,
            limit,
            allow_filtering,
        } = statement
        else {
            return Err(CqlError::Server("not a SELECT".into()));
        };
        let is_system = resolve_keyspace(name, session.keyspace.as_deref())
            .is_ok_and(|k| SYSTEM_KEYSPACES.contains(&k.as_str()));
        if !group_by.is_empty() && is_system {
            return Err(CqlError::not_yet_supported("GROUP BY on system tables"));
        }
        let select_json = *json;
        let per_partition_limit = match per_partition_limit {
            Some(term) => {
                let n = self.int_option(term, "per partition limit")?;
                if n <= 0 {
                    return Err(invalid(format!(
                        "PER PARTITION LIMIT must be strictly positive, not {n}"
                    )));
                }
                Some(n as usize)
            }
            None => None,
        };
        let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
        let limit = match limit {
            Some(term) => {
                let n = self.int_option(term, "limit")?;
                if n <= 0 {
                    return Err(invalid(format!("LIMIT must be strictly positive, not {n}")));
                }
                Some(n as usize)
            }
            None => None,
        };
        if SYSTEM_KEYSPACES.contains(&keyspace.as_str()) || keyspace == "system_virtual_schema" {
            let catalog = self.node.catalog.read();
            let Some(table) = virtual_table(&keyspace, &name.name, self.node, &catalog) else {
                return Err(invalid(format!("unconfigured table {}", name.name)));
            };
            drop(catalog);
            return self.select_virtual(table, selectors, relations, limit);
        }
        let table = self.table(name, session)?;
        let mut restrictions = self.restrictions(&table, relations)?;
        restrictions.scan_with_filters(&table)?;
        if !restrictions.filters.is_empty() && !allow_filtering {
            return Err(invalid("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING"));
        }
        let mut projection = project(&table, selectors)?;
        let group_columns = group_columns(&table, group_by, &restrictions)?;
        let visible = projection.len();
        // Group key columns ride along, hidden, after the selected ones.
        projection.extend(
            group_columns
                .iter()
                .map(|c| Projected::Column(c.clone(), None)),
        );
        if *distinct {
            if let Some(Projected::Column(column, _)) = projection.iter().find(|p| {
                !matches!(p, Projected::Column(c, _) if matches!(c.kind, ColumnKind::PartitionKey | ColumnKind::Static))
            }) {
                return Err(invalid(format!(
                    "SELECT DISTINCT queries must only request partition key columns and/or static columns (not {})",
                    column.name
                )));
            }
        }
        let reversed = self.reversed(&table, order_by, &restrictions)?;
        let page_size = self.params.page_size.filter(|&p| p > 0).map(|p| p as usize);
        let state = PagingState::decode(self.params.paging_state.as_ref())?;
        let remaining = state
            .as_ref()
            .and_then(|s| s.remaining)
            .or(limit)
            .unwrap_or(usize::MAX);
        let page_rows = page_size
            .unwrap_or(UNPAGED_FETCH_ROWS)
            .min(remaining)
            .max(1);
        let placement = self.placement(&table);
        let pk_count = table.partition_key().count();
        let fetch = |state: Option<&PagingState>,
                     page_rows: usize,
                     remaining: usize|
         -> Result<(Vec<PartitionRows>, Option<PagingState>), CqlError> {
            Ok(if restrictions.partition.len() == pk_count {
                let keys = restrictions.partition_keys(&table)?;
                let ranges = restrictions.clustering_ranges(&table)?;
                // Resume in the partition the last page ended in: after its
                // last row, or after all of it (no clustering).
                let start = match state {
                    Some(state) => keys
                        .iter()
                        .position(|k| *k == state.key)
                        .ok_or_else(|| invalid("the paging state does not belong to this query"))?,
                    None => 0,
                };
                let mut partitions = Vec::new();
                let mut next = None;
                let mut taken = 0;
                for (i, key) in keys.iter().enumerate().skip(start) {
                    let resume_after = match state {
                        Some(state) if i == start => match &state.clustering {
                            Some(clustering) => Some(clustering.clone()),
                            None => continue,
                        },
                        _ => None,
                    };
                    let want = page_rows - taken;
                    let Some(rows) =
                        self.read_slices(&table, key, &ranges, reversed, want, resume_after)?
                    else {
                        continue;
                    };
                    taken += rows.rows.len();
                    let full = rows.rows.len() >= want;
                    let last = rows.rows.last().map(|r| r.clustering.clone());
                    partitions.push(rows);
                    if full {
                        if page_rows < remaining {
                            next = Some(PagingState {
                                key: key.clone(),
                                clustering: last,
                                remaining: rows_left(remaining, taken),
                            });
                        }
                        break;
                    }
                }
                (partitions, next)
            } else if restrictions.partition.is_empty() {
                if restrictions.restricts_clustering() && !allow_filtering {
                    return Err(invalid("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING"));
                }
                if restrictions.restricts_clustering() {
                    return Err(CqlError::not_yet_supported(
                        "filtering on clustering columns in a full scan",
                    ));
                }
                if !order_by.is_empty() {
                    return Err(invalid("ORDER BY is only supported when the partition key is restricted by an EQ or an IN."));
                }
                let range = TokenRange {
                    start: restrictions.token_start,
                    end: restrictions.token_end,
                };
                let resume = state.map(|s| ScanResume {
                    key: s.key.clone(),
                    clustering: s.clustering.clone(),
                });
                if let Some(on_task) = self.on_task {
                    on_task.borrow_mut().needs_thread = true;
                    return Err(CqlError::Server(
                        "internal: this statement's scan runs on a thread".into(),
                    ));
                }
                let page = self
                    .node
                    .coordinator
                    .scan(
                        table.table_id(),
                        &range,
                        resume.as_ref(),
                        page_rows,
                        ReadTerms {
                            placement: &placement,
                            consistency: self.consistency,
                            deadline: self.range_deadline(),
                        },
                    )
                    .map_err(coordinator_error)?;
                let returned: usize = page.partitions.iter().map(|p| p.rows.len().max(1)).sum();
                let next = match page.resume {
                    Some(resume) if page_rows < remaining => Some(PagingState {
                        key: resume.key,
                        clustering: resume.clustering,
                        remaining: rows_left(remaining, returned),
                    }),
                    _ => None,
                };
                (page.partitions, next)
            } else {
                let missing: Vec<&str> = table
                    .partition_key()
                    .filter(|c| {
                        !restrictions
                            .partition
                            .iter()
                            .any(|(p, _)| *p == c.position as usize)
                    })
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(invalid(format!("Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. Partition key parts: {} must be restricted as other parts are", missing.join(", "))));
            })
        };
        let has_clustering_restriction = restrictions.restricts_clustering();
        if !group_columns.is_empty()
            || projection
                .iter()
                .any(|p| matches!(p, Projected::Aggregate(..)))
        {
            if restrictions.partition.is_empty() {
                crate::warnings::warn("Aggregation query used without partition key".into());
            }
            // Aggregates see every row: fetch page after page, folding as we go.
            let shape = Shape {
                has_clustering_restriction,
                per_partition_limit: if *distinct {
                    Some(1)
                } else {
                    per_partition_limit
                },
                now_s: self.bindings.now_micros / 1_000_000,
            };
            let new_folds = || {
                projection
                    .iter()
                    .take(visible)
                    .map(Fold::new)
                    .collect::<Vec<Fold>>()
            };
            let mut folds = new_folds();
            let mut group: Option<Vec<Option<Bytes>>> = None;
            let mut output = Vec::new();
            let mut cursor: Option<PagingState> = None;
            loop {
                let (partitions, more) = fetch(cursor.as_ref(), AGGREGATE_PAGE_ROWS, usize::MAX)?;
                let mut rows = Vec::new();
                for partition in &partitions {
                    materialize(
                        &table,
                        partition,
                        &projection,
                        &shape,
                        &restrictions.filters,
                        &mut rows,
                    )?;
                }
                for row in &rows {
                    let key: Vec<Option<Bytes>> = row.iter().skip(visible).cloned().collect();
                    if group.as_ref().is_some_and(|g| *g != key) {
                        let finished = std::mem::replace(&mut folds, new_folds());
                        output.push(
                            finished
                                .into_iter()
                                .map(Fold::finish)
                                .collect::<Result<Vec<_>, _>>()?,
                        );
                    }
                    group = Some(key);
                    for (fold, value) in folds.iter_mut().zip(row) {
                        fold.add(value.as_ref())?;
                    }
                }
                match more {
                    Some(state) => cursor = Some(state),
                    None => break,
                }
            }
            // Without GROUP BY an aggregate has one row even over no rows.
            if group.is_some() || group_columns.is_empty() {
                output.push(
                    folds
                        .into_iter()
                        .map(Fold::finish)
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            output.truncate(limit.unwrap_or(usize::MAX));
            let columns = projection
                .iter()
                .take(visible)
                .filter_map(|p| p.spec(&table))
                .collect();
            return Ok(ResultBody::Rows(Rows {
                columns,
                rows: output,
                paging_state: None,
            }));
        }
        let (partitions, next) = match page_size {
            Some(_) => fetch(state.as_ref(), page_rows, remaining)?,
            None => {
                // Unpaged: the whole result, gathered page by page.
                let mut all = Vec::new();
                let mut returned = 0usize;
                let mut cursor = state;
                loop {
                    let left = cursor
                        .as_ref()
                        .and_then(|c| c.remaining)
                        .unwrap_or(remaining);
                    let (partitions, more) =
                        fetch(cursor.as_ref(), page_rows.min(left).max(1), left)?;
                    returned += partitions
                        .iter()
                        .map(|p| p.rows.len().max(1))
                        .sum::<usize>();
                    if returned > UNPAGED_ROWS_MAX {
                        return Err(invalid(format!(
                            "this SELECT returns more than {UNPAGED_ROWS_MAX} rows, the most an unpaged \
                             query may return: page it (set a fetch size in the driver, or PAGING ON in the shell) \
                             or add a LIMIT"
                        )));
                    }
                    all.extend(partitions);
                    match more {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                (all, None)
            }
        };
        let mut rows = Vec::new();
        for partition in &partitions {
            let shape = Shape {
                has_clustering_restriction,
                per_partition_limit: if *distinct {
                    Some(1)
                } else {
                    per_partition_limit
                },
                now_s: self.bindings.now_micros / 1_000_000,
            };
            materialize(
                &table,
                partition,
                &projection,
                &shape,
                &restrictions.filters,
                &mut rows,
            )?;
        }
        rows.truncate(remaining);
        let columns: Vec<ColumnSpec> = projection.iter().filter_map(|p| p.spec(&table)).collect();
        let (columns, rows) = if select_json {
            crate::json::rows_as_json(&table.keyspace, &table.name, columns, rows)
        } else {
            (columns, rows)
        };
        Ok(ResultBody::Rows(Rows {
            columns,
            rows,
            paging_state: next.map(|s| s.encode()),
        }))
    }

    /// Rows of one partition within `ranges` (disjoint, in storage order),
    /// at most `limit`, after `resume_after` if given.
    fn read_slices(
        &self,
        table: &TableSchema,
        key: &PartitionKey,
        ranges: &[ClusteringRange],
        reversed: bool,
        limit: usize,
        resume_after: Option<Bytes>,
    ) -> Result<Option<PartitionRows>, CqlError> {
        let placement = self.placement(table);
        let mut merged: Option<PartitionRows> = None;
        let ordered: Vec<&ClusteringRange> = if reversed {
            ranges.iter().rev().collect()
        } else {
            ranges.iter().collect()
        };
        for range in ordered {
            let taken = merged.as_ref().map_or(0, |m| m.rows.len());
            if taken >= limit {
                break;
            }
            let query = SliceQuery {
                range: range.clone(),
                reversed,
                limit: limit - taken,
                resume_after: resume_after.clone(),
            };
            let result = match self.on_task {
                Some(on_task) => {
                    let needed = NeededRead {
                        table: table.table_id(),
                        key: key.clone(),
                        query,
                        placement: placement.clone(),
                        consistency: self.consistency,
                        deadline: self.read_deadline(),
                    };
                    let mut on_task = on_task.borrow_mut();
                    let at = on_task.reads_used;
                    on_task.reads_used += 1;
                    match on_task.reads_done.get(at) {
                        Some((done, result)) if *done == needed => result.clone()?,
                        _ => {
                            on_task.read_needed = Some(needed);
                            return Err(CqlError::Server(
                                "internal: this statement's read runs on its task".into(),
                            ));
                        }
                    }
                }
                None => self
                    .node
                    .coordinator
                    .read(
                        table.table_id(),
                        key,
                        &query,
                        ReadTerms {
                            placement: &placement,
                            consistency: self.consistency,
                            deadline: self.read_deadline(),
                        },
                    )
                    .map_err(coordinator_error)?,
            };
            match (&mut merged, result) {
                (_, None) => {}
                (None, Some(rows)) => merged = Some(rows),
                (Some(merged), Some(rows)) => merged.rows.extend(rows.rows),
            }
        }
        Ok(merged)
    }

    fn reversed(
        &self,
        table: &TableSchema,
        order_by: &[(String, bool)],
        restrictions: &Restrictions,
    ) -> Result<bool, CqlError> {
        if order_by.is_empty() {
            return Ok(false);
        }
        if restrictions.partition.len() != table.partition_key().count() {
            return Err(invalid("ORDER BY is only supported when the partition key is restricted by an EQ or an IN."));
        }
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        let mut reversed = None;
        for (i, (column, descending)) in order_by.iter().enumerate() {
            let schema = clustering.get(i).filter(|c| &c.name == column).ok_or_else(|| invalid("Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY"))?;
            let this = *descending != schema.descending;
            if reversed.is_some_and(|r| r != this) {
                return Err(invalid(format!(
                    "Unsupported order by relation on {column}"
                )));
            }
            reversed = Some(this);
        }
        Ok(reversed.unwrap_or(false))
    }

    /// `DELETE [columns] FROM system_traces.sessions WHERE session_id = ?`:
    /// traces are the node's own (see [`crate::traces`]), so a client may
    /// delete them as Cassandra lets it delete rows of its trace tables.
    fn delete_trace(
        &self,
        table: &str,
        columns: &[(String, Option<Term>)],
        relations: &[Relation],
    ) -> Result<ResultBody, CqlError> {
        if table != "sessions" {
            return Err(CqlError::not_yet_supported(&format!(
                "DELETE from system_traces.{table} (only system_traces.sessions)"
            )));
        }
        let [Relation::Column {
            column,
            op: Operator::Eq,
            value,
        }] = relations
        else {
            return Err(invalid(
                "DELETE from system_traces.sessions needs WHERE session_id = <uuid>",
            ));
        };
        if column != "session_id" {
            return Err(invalid(format!(
                "DELETE from system_traces.sessions needs WHERE session_id = <uuid>, not {column}"
            )));
        }
        if columns.iter().any(|(_, element)| element.is_some()) {
            return Err(invalid(
                "DELETE of a map entry from system_traces.sessions is not supported",
            ));
        }
        let Value::Set(id) = term_value(&CqlType::Uuid, value, column, self.bindings)? else {
            return Err(invalid(
                "Invalid null value in condition for column session_id",
            ));
        };
        let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
        self.node.traces.delete(&id, &names).map_err(invalid)?;
        Ok(ResultBody::Void)
    }

    fn select_virtual(
        &self,
        table: crate::system_tables::VirtualTable,
        selectors: &[Selector],
        relations: &[Relation],
        limit: Option<usize>,
    ) -> Result<ResultBody, CqlError> {
        let mut filters = Vec::new();
        for relation in relations {
            let Relation::Column {
                column,
                op: Operator::Eq,
                value,
            } = relation
            else {
                return Err(CqlError::not_yet_supported(
                    "restrictions other than = on system tables",
                ));
            };
            let index = table
                .columns
                .iter()
                .position(|c| &c.name == column)
                .ok_or_else(|| invalid(format!("Undefined column name {column}")))?;
            let Some(spec) = table.columns.get(index) else {
                continue;
            };
            let Value::Set(bytes) = term_value(&spec.ty, value, column, self.bindings)? else {
                return Err(invalid(format!(
                    "Invalid null value in condition for column {column}"
                )));
            };
            filters.push((index, bytes));
        }
        // What each selected column is: a column of the table, or a clock
        // function (`SELECT now() FROM system.local`, as cqlsh users write).
        enum Picked {
            Column(usize, Option<String>),
            Clock(ClockFunction, ColumnSpec),
        }
        let picked: Vec<Picked> = if selectors.is_empty() {
            (0..table.columns.len())
                .map(|i| Picked::Column(i, None))
                .collect()
        } else {
            let mut out = Vec::new();
            for selector in selectors {
                let (inner, alias) = match selector {
                    Selector::Aliased(inner, alias) => (inner.as_ref(), Some(alias.clone())),
                    other => (other, None),
                };
                match inner {
                    Selector::Column(name) => {
                        let index = table
                            .columns
                            .iter()
                            .position(|c| &c.name == name)
                            .ok_or_else(|| invalid(format!("Undefined column name {name}")))?;
                        out.push(Picked::Column(index, alias));
                    }
                    Selector::Function { name, args } if args.is_empty() => {
                        let Some((function, ty)) = ClockFunction::from_name(name) else {
                            return Err(CqlError::not_yet_supported(
                                "functions other than now(), uuid() and currentX() in selections on system tables",
                            ));
                        };
                        let spec = ColumnSpec {
                            keyspace: table.columns.first().map(|c| c.keyspace.clone()).unwrap_or_default(),
                            table: table.columns.first().map(|c| c.table.clone()).unwrap_or_default(),
                            name: alias.unwrap_or_else(|| format!("system.{name}()")),
                            ty,
                        };
                        out.push(Picked::Clock(function, spec));
                    }
                    _ => {
                        return Err(CqlError::not_yet_supported(
                            "functions other than now(), uuid() and currentX() in selections on system tables",
                        ))
                    }
                }
            }
            out
        };
        let rows: Vec<Vec<Option<Bytes>>> = table
            .rows
            .iter()
            .filter(|row| {
                filters
                    .iter()
                    .all(|(i, v)| row.get(*i).and_then(|c| c.as_ref()) == Some(v))
            })
            .take(limit.unwrap_or(usize::MAX))
            .map(|row| {
                picked
                    .iter()
                    .map(|p| match p {
                        Picked::Column(i, _) => row.get(*i).cloned().flatten(),
                        Picked::Clock(function, _) => Some(function.value()),
                    })
                    .collect()
            })
            .collect();
        let columns = picked
            .iter()
            .filter_map(|p| match p {
                Picked::Column(i, alias) => table.columns.get(*i).map(|c| ColumnSpec {
                    name: alias.clone().unwrap_or_else(|| c.name.clone()),
                    ..c.clone()
                }),
                Picked::Clock(_, spec) => Some(spec.clone()),
            })
            .collect();
        Ok(ResultBody::Rows(Rows {
            columns,
            rows,
            paging_state: None,
        }))
    }
}

/// A range restriction on one clustering column.
#[derive(Debug, Clone)]
struct Slice {
    position: usize,
    /// The order of the first sliced column (a multi-column slice has one order).
    descending: bool,
    /// Values from `position` on, and whether the bound is inclusive.
    lower: Option<(Vec<Bytes>, bool)>,
    upper: Option<(Vec<Bytes>, bool)>,
}

/// One restriction on clustering columns, before they are combined:
/// `width` columns from `position`, with one tuple (=, slices) or several (IN).
/// The type of the value a relation on a column of type `ty` compares
/// with: an element for CONTAINS, a key for CONTAINS KEY, else `ty`.
pub(crate) fn operand_type(ty: &CqlType, op: Operator) -> &CqlType {
    match (op, ty.unfrozen()) {
        (Operator::Contains, CqlType::List(item) | CqlType::Set(item) | CqlType::Map(_, item)) => {
            item
        }
        (Operator::ContainsKey, CqlType::Map(key, _)) => key,
        _ => ty,
    }
}

/// A restriction checked on each row: `column op value` (several values
/// for IN).
#[derive(Debug, Clone)]
struct Filter {
    column: ColumnSchema,
    op: Operator,
    values: Vec<Bytes>,
}

impl Filter {
    fn new(column: &ColumnSchema, op: Operator, values: Vec<Bytes>) -> Result<Filter, CqlError> {
        let collection = matches!(
            column.ty.unfrozen(),
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..)
        );
        match op {
            Operator::Contains if !collection => Err(invalid(format!(
                "Cannot use CONTAINS on non-collection column {}",
                column.name
            ))),
            Operator::ContainsKey if !matches!(column.ty.unfrozen(), CqlType::Map(..)) => {
                Err(invalid(format!(
                    "Cannot use CONTAINS KEY on non-map column {}",
                    column.name
                )))
            }
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge
                if column.ty.is_multi_cell() =>
            {
                Err(invalid(format!(
                    "Slice restrictions are not supported on non-frozen collection column {}",
                    column.name
                )))
            }
            _ => Ok(Filter {
                column: column.clone(),
                op,
                values,
            }),
        }
    }

    /// Whether a row whose column holds `value` passes (a null never does).
    fn matches(&self, value: Option<&Bytes>) -> bool {
        let Some(value) = value else {
            return false;
        };
        let ty = &self.column.ty;
        let comparable = |ty: &CqlType, bytes: &[u8]| {
            let mut out = Vec::new();
            ty.encode_comparable(bytes, false, &mut out)
                .ok()
                .map(|()| out)
        };
        match self.op {
            Operator::Contains | Operator::ContainsKey => {
                let (element_ty, entries) = match (ty.unfrozen(), self.op) {
                    (CqlType::Map(key, _), Operator::ContainsKey) => (
                        key.as_ref(),
                        split_entries(value, 2)
                            .map(|e| e.into_iter().step_by(2).collect::<Vec<_>>()),
                    ),
                    (CqlType::Map(_, item), _) => (
                        item.as_ref(),
                        split_entries(value, 2).map(|e| e.into_iter().skip(1).step_by(2).collect()),
                    ),
                    (CqlType::List(item) | CqlType::Set(item), _) => {
                        (item.as_ref(), split_collection(value))
                    }
                    _ => return false,
                };
                let Ok(entries) = entries else { return false };
                self.values.iter().all(|wanted| {
                    let wanted = comparable(element_ty, wanted);
                    entries
                        .iter()
                        .any(|e| wanted.is_some() && comparable(element_ty, e) == wanted)
                })
            }
            op => {
                let Some(actual) = comparable(ty, value) else {
                    return false;
                };
                self.values.iter().any(|wanted| {
                    let Some(wanted) = comparable(ty, wanted) else {
                        return false;
                    };
                    match op {
                        Operator::Lt => actual < wanted,
                        Operator::Le => actual <= wanted,
                        Operator::Gt => actual > wanted,
                        Operator::Ge => actual >= wanted,
                        _ => actual == wanted,
                    }
                })
            }
        }
    }
}

struct ClusteringOp {
    position: usize,
    width: usize,
    op: Operator,
    tuples: Vec<Vec<Bytes>>,
}

/// Most clustering prefixes IN restrictions may expand to (Cassandra's
/// `max_clustering_key_restrictions_per_query` is 100 by default).
const CLUSTERING_PREFIXES_MAX: usize = 1_000;

#[derive(Debug)]
struct Restrictions {
    /// Per partition key position, its values (one for =, several for IN).
    partition: Vec<(usize, Vec<Bytes>)>,
    /// The clustering prefixes restricted by = and IN (one empty prefix
    /// when none is), all `clustering_depth` columns long.
    clustering_prefixes: Vec<Vec<Bytes>>,
    clustering_depth: usize,
    clustering_slice: Option<Slice>,
    /// Restrictions checked row by row (they need ALLOW FILTERING).
    filters: Vec<Filter>,
    /// The partition key relations (=, IN), kept to become filters when
    /// the key is not restricted whole.
    partition_relations: Vec<Filter>,
    /// The single-column clustering relations, kept to become filters in a
    /// scan.
    clustering_relations: Vec<Filter>,
    has_multi_column: bool,
    token_start: Bound<i64>,
    token_end: Bound<i64>,
    has_token: bool,
}

impl Default for Restrictions {
    fn default() -> Self {
        Restrictions {
            partition: Vec::new(),
            clustering_prefixes: vec![Vec::new()],
            clustering_depth: 0,
            clustering_slice: None,
            filters: Vec::new(),
            partition_relations: Vec::new(),
            clustering_relations: Vec::new(),
            has_multi_column: false,
            token_start: Bound::Unbounded,
            token_end: Bound::Unbounded,
            has_token: false,
        }
    }
}

impl Restrictions {
    /// When the partition key is not restricted whole, the read is a scan:
    /// the key and clustering relations it has become row filters (which
    /// need ALLOW FILTERING, as in Cassandra).
    fn scan_with_filters(&mut self, table: &TableSchema) -> Result<(), CqlError> {
        if self.partition.len() == table.partition_key().count() {
            return Ok(());
        }
        if self.has_multi_column {
            return Err(CqlError::not_yet_supported(
                "multi-column relations without the whole partition key",
            ));
        }
        self.partition.clear();
        self.filters.append(&mut self.partition_relations);
        self.filters.append(&mut self.clustering_relations);
        self.clustering_prefixes = vec![Vec::new()];
        self.clustering_depth = 0;
        self.clustering_slice = None;
        Ok(())
    }

    fn partition_keys(&self, table: &TableSchema) -> Result<Vec<PartitionKey>, CqlError> {
        let mut combos: Vec<Vec<Bytes>> = vec![Vec::new()];
        for column in table.partition_key() {
            let values = self
                .partition
                .iter()
                .find(|(p, _)| *p == column.position as usize)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    invalid(format!(
                        "Missing mandatory PRIMARY KEY part {}",
                        column.name
                    ))
                })?;
            combos = combos
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push(v.clone());
                        next
                    })
                })
                .collect();
            if combos.len() > 1_000 {
                return Err(invalid(
                    "IN restrictions produce more than 1000 partition keys",
                ));
            }
        }
        let mut keys: Vec<PartitionKey> = combos
            .iter()
            .map(|components| key_from_components(components))
            .collect::<Result<_, _>>()?;
        keys.dedup();
        Ok(keys)
    }

    fn single_partition(&self, table: &TableSchema) -> Result<PartitionKey, CqlError> {
        if self.has_token || !self.filters.is_empty() {
            return Err(invalid(
                "Only the primary key can be restricted in a modification statement",
            ));
        }
        let keys = self.partition_keys(table)?;
        match keys.as_slice() {
            [key] => Ok(key.clone()),
            _ => Err(CqlError::not_yet_supported(
                "IN on the partition key of a modification",
            )),
        }
    }

    /// Whether any clustering column is restricted.
    fn restricts_clustering(&self) -> bool {
        self.clustering_depth > 0 || self.clustering_slice.is_some()
    }

    /// The whole clustering of each row a modification names.
    fn full_clusterings(&self, table: &TableSchema) -> Result<Vec<Bytes>, CqlError> {
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        if self.clustering_slice.is_some() || self.clustering_depth != clustering.len() {
            let missing = clustering
                .get(self.clustering_depth)
                .map_or("", |c| c.name.as_str());
            return Err(invalid(format!(
                "Some clustering keys are missing: {missing}"
            )));
        }
        self.clustering_prefixes
            .iter()
            .map(|prefix| encode_prefix(&clustering, prefix).map(Bytes::from))
            .collect()
    }

    /// The one row a modification names (IN is refused here).
    fn full_clustering(&self, table: &TableSchema) -> Result<Bytes, CqlError> {
        let mut rows = self.full_clusterings(table)?;
        match (rows.pop(), rows.is_empty()) {
            (Some(row), true) => Ok(row),
            _ => Err(CqlError::not_yet_supported(
                "IN on clustering columns of an UPDATE or INSERT",
            )),
        }
    }

    /// The clustering ranges the restrictions select, in storage order.
    fn clustering_ranges(&self, table: &TableSchema) -> Result<Vec<ClusteringRange>, CqlError> {
        let clustering: Vec<&ColumnSchema> = table.clustering().collect();
        let mut ranges = Vec::with_capacity(self.clustering_prefixes.len());
        let mut prefixes: Vec<Vec<u8>> = self
            .clustering_prefixes
            .iter()
            .map(|prefix| encode_prefix(&clustering, prefix))
            .collect::<Result<_, _>>()?;
        prefixes.sort();
        prefixes.dedup();
        for prefix in prefixes {
            ranges.push(self.range_within(&clustering, prefix)?);
        }
        Ok(ranges)
    }

    fn range_within(
        &self,
        clustering: &[&ColumnSchema],
        prefix: Vec<u8>,
    ) -> Result<ClusteringRange, CqlError> {
        let prefix_bound = || {
            if prefix.is_empty() {
                ClusteringBound::Unbounded
            } else {
                ClusteringBound::Inclusive(Bytes::from(prefix.clone()))
            }
        };
        let Some(slice) = &self.clustering_slice else {
            return Ok(ClusteringRange {
                start: prefix_bound(),
                end: prefix_bound(),
            });
        };
        let bound = |value: &(Vec<Bytes>, bool)| -> Result<ClusteringBound, CqlError> {
            let mut key = prefix.clone();
            let columns = clustering.get(slice.position..).unwrap_or_default();
            key.extend(encode_prefix(columns, &value.0)?);
            Ok(if value.1 {
                ClusteringBound::Inclusive(Bytes::from(key))
            } else {
                ClusteringBound::Exclusive(Bytes::from(key))
            })
        };
        let lower = slice
            .lower
            .as_ref()
            .map(bound)
            .transpose()?
            .unwrap_or_else(prefix_bound);
        let upper = slice
            .upper
            .as_ref()
            .map(bound)
            .transpose()?
            .unwrap_or_else(prefix_bound);
        // A DESC column stores larger values first: CQL's lower bound is the byte order's end.
        Ok(if slice.descending {
            ClusteringRange {
                start: upper,
                end: lower,
            }
        } else {
            ClusteringRange {
                start: lower,
                end: upper,
            }
        })
    }
}

/// The byte-comparable encoding of values of consecutive clustering columns.
fn encode_prefix(columns: &[&ColumnSchema], values: &[Bytes]) -> Result<Vec<u8>, CqlError> {
    let mut out = Vec::new();
    for (column, value) in columns.iter().zip(values) {
        column
            .ty
            .encode_comparable(value, column.descending, &mut out)
            .map_err(|e| invalid(e.0))?;
    }
    Ok(out)
}

fn key_from_components(components: &[Bytes]) -> Result<PartitionKey, CqlError> {
    let bytes: Bytes = match components {
        [single] => single.clone(),
        many => {
            let mut out = BytesMut::new();
            for component in many {
                if component.len() > u16::MAX as usize {
                    return Err(invalid(
                        "Partition key component too large (over 65535 bytes)",
                    ));
                }
                out.put_u16(component.len() as u16);
                out.put_slice(component);
                out.put_u8(0);
            }
            out.freeze()
        }
    };
    if bytes.is_empty() {
        return Err(invalid("Key may not be empty"));
    }
    if bytes.len() > u16::MAX as usize {
        return Err(invalid(
            "Key length of partition key is longer than maximum of 65535",
        ));
    }
    Ok(PartitionKey::new(
        replication::murmur3::token_of(&bytes),
        bytes,
    ))
}

fn partition_key(
    table: &TableSchema,
    value_of: impl Fn(&ColumnSchema) -> Option<Value>,
) -> Result<PartitionKey, CqlError> {
    let mut components = Vec::new();
    for column in table.partition_key() {
        match value_of(column) {
            Some(Value::Set(bytes)) => components.push(bytes),
            Some(_) => {
                return Err(invalid(format!(
                    "Invalid null value in condition for column {}",
                    column.name
                )))
            }
            None => {
                return Err(invalid(format!(
                    "Some partition key parts are missing: {}",
                    column.name
                )))
            }
        }
    }
    key_from_components(&components)
}

fn clustering_key(
    table: &TableSchema,
    value_of: impl Fn(&ColumnSchema) -> Option<Value>,
) -> Result<Bytes, CqlError> {
    let mut out = Vec::new();
    for column in table.clustering() {
        match value_of(column) {
            Some(Value::Set(bytes)) if bytes.len() > u16::MAX as usize => {
                return Err(invalid(format!(
                    "Key length of {} is longer than maximum of {} (clustering column {})",
                    bytes.len(),
                    u16::MAX,
                    column.name
                )))
            }
            Some(Value::Set(bytes)) => column
                .ty
                .encode_comparable(&bytes, column.descending, &mut out)
                .map_err(|e| invalid(e.0))?,
            Some(_) => {
                return Err(invalid(format!(
                    "Invalid null value in condition for column {}",
                    column.name
                )))
            }
            None => {
                return Err(invalid(format!(
                    "Some clustering keys are missing: {}",
                    column.name
                )))
            }
        }
    }
    Ok(Bytes::from(out))
}

fn cell(column: u32, timestamp: i64, ttl: i64, now_s: i64, value: Option<Bytes>) -> Cell {
    let value = match value {
        None => CellValue::Tombstone {
            deleted_at_s: now_s,
        },
        Some(value) if ttl > 0 => CellValue::Expiring {
            value,
            ttl_s: ttl as u32,
            expires_at_s: now_s + ttl,
        },
        Some(value) => CellValue::Live(value),
    };
    Cell {
        column,
        path: None,
        timestamp,
        value,
    }
}

fn cells_update(
    table: &TableSchema,
    assigned: &[(&ColumnSchema, Vec<Cell>)],
    clustering: Bytes,
) -> Result<PartitionUpdate, CqlError> {
    let mut cells = Vec::new();
    let mut statics = Vec::new();
    for (column, column_cells) in assigned {
        match column.kind {
            ColumnKind::Regular => cells.extend(column_cells.iter().cloned()),
            ColumnKind::Static => statics.extend(column_cells.iter().cloned()),
            _ => {}
        }
    }
    let mut update = PartitionUpdate::default();
    let has_clustering = table.clustering().next().is_some();
    if !cells.is_empty() || !has_clustering || statics.is_empty() {
        update.rows.push(Row::new(clustering, cells));
    }
    if !statics.is_empty() {
        update.static_row = Some(Row::new(Bytes::new(), statics));
    }
    Ok(update)
}

/// A write to one column, evaluated.
#[derive(Debug, Clone)]
enum ColumnWrite {
    Set(Value),
    Add(Value),
    Prepend(Value),
    Remove(Value),
    SetElement(Bytes, Value),
}

/// A list element's cell path: appended elements sort after every earlier
/// one, prepended elements before every earlier one, in statement order.
fn list_path(timestamp: i64, index: usize, prepend: bool) -> Bytes {
    let micros = timestamp.max(0) as u64;
    let time = if prepend {
        0x7fff_ffff_ffff_ffff - micros
    } else {
        0x8000_0000_0000_0000 | micros
    };
    let random: u32 = rand::random();
    let mut path = Vec::with_capacity(16);
    path.extend_from_slice(&time.to_be_bytes());
    path.extend_from_slice(&(index as u32).to_be_bytes());
    path.extend_from_slice(&random.to_be_bytes());
    Bytes::from(path)
}

fn element_cell(
    column: u32,
    path: Bytes,
    timestamp: i64,
    ttl: i64,
    now_s: i64,
    value: Option<Bytes>,
) -> Cell {
    Cell {
        path: Some(path),
        ..cell(column, timestamp, ttl, now_s, value)
    }
}

/// The cells a column write becomes. A non-frozen collection is one cell
/// per element; overwriting it first deletes the old elements (a column
/// tombstone one microsecond older than the new elements).
fn column_cells(
    column: &ColumnSchema,
    write: &ColumnWrite,
    timestamp: i64,
    ttl: i64,
    now_s: i64,
) -> Result<Vec<Cell>, CqlError> {
    if !column.ty.is_multi_cell() {
        return match write {
            ColumnWrite::Set(Value::Set(bytes)) => Ok(vec![cell(
                column.id,
                timestamp,
                ttl,
                now_s,
                Some(bytes.clone()),
            )]),
            ColumnWrite::Set(Value::Null) => Ok(vec![cell(column.id, timestamp, ttl, now_s, None)]),
            ColumnWrite::Set(Value::NotSet) => Ok(Vec::new()),
            _ => Err(invalid(format!(
                "Invalid operation on column {}",
                column.name
            ))),
        };
    }
    let elements = |bytes: &Bytes, prepend: bool| -> Result<Vec<Cell>, CqlError> {
        let mut out = Vec::new();
        match &column.ty {
            CqlType::Set(element) => {
                for item in split_collection(bytes)? {
                    let mut path = Vec::new();
                    element
                        .encode_comparable(&item, false, &mut path)
                        .map_err(|e| invalid(e.0))?;
                    out.push(element_cell(
                        column.id,
                        Bytes::from(path),
                        timestamp,
                        ttl,
                        now_s,
                        Some(Bytes::new()),
                    ));
                }
            }
            CqlType::Map(key, _) => {
                let items = split_entries(bytes, 2)?;
                for pair in items.chunks(2) {
                    let (Some(k), Some(v)) = (pair.first(), pair.get(1)) else {
                        continue;
                    };
                    let mut path = Vec::new();
                    key.encode_comparable(k, false, &mut path)
                        .map_err(|e| invalid(e.0))?;
                    out.push(element_cell(
                        column.id,
                        Bytes::from(path),
                        timestamp,
                        ttl,
                        now_s,
                        Some(v.clone()),
                    ));
                }
            }
            CqlType::List(_) => {
                for (i, item) in split_collection(bytes)?.into_iter().enumerate() {
                    out.push(element_cell(
                        column.id,
                        list_path(timestamp, i, prepend),
                        timestamp,
                        ttl,
                        now_s,
                        Some(item),
                    ));
                }
            }
            _ => {}
        }
        Ok(out)
    };
    match write {
        ColumnWrite::Set(Value::Set(bytes)) => {
            let mut cells = vec![Cell::tombstone(column.id, timestamp - 1, now_s)];
            cells.extend(elements(bytes, false)?);
            Ok(cells)
        }
        ColumnWrite::Set(Value::Null) => Ok(vec![Cell::tombstone(column.id, timestamp, now_s)]),
        ColumnWrite::Add(Value::Set(bytes)) => elements(bytes, false),
        ColumnWrite::Prepend(Value::Set(bytes)) => elements(bytes, true),
        ColumnWrite::Remove(Value::Set(bytes)) => {
            let key_ty = match &column.ty {
                CqlType::Set(element) => element,
                CqlType::Map(key, _) => key,
                _ => {
                    return Err(CqlError::not_yet_supported(
                        "removing list elements by value",
                    ))
                }
            };
            let mut cells = Vec::new();
            for item in split_collection(bytes)? {
                let mut path = Vec::new();
                key_ty
                    .encode_comparable(&item, false, &mut path)
                    .map_err(|e| invalid(e.0))?;
                cells.push(element_cell(
                    column.id,
                    Bytes::from(path),
                    timestamp,
                    0,
                    now_s,
                    None,
                ));
            }
            Ok(cells)
        }
        ColumnWrite::SetElement(key, value) => {
            let CqlType::Map(key_ty, _) = &column.ty else {
                return Err(CqlError::not_yet_supported(
                    "setting list elements by index",
                ));
            };
            let mut path = Vec::new();
            key_ty
                .encode_comparable(key, false, &mut path)
                .map_err(|e| invalid(e.0))?;
            let value = match value {
                Value::Set(v) => Some(v.clone()),
                _ => None,
            };
            Ok(vec![element_cell(
                column.id,
                Bytes::from(path),
                timestamp,
                ttl,
                now_s,
                value,
            )])
        }
        _ => Ok(Vec::new()),
    }
}

/// A non-frozen collection's serialized value from its element cells (in
/// path order), or `None` when it has no live element.
fn assemble_collection(column: &ColumnSchema, cells: &[&Cell]) -> Result<Option<Bytes>, CqlError> {
    if cells.is_empty() {
        return Ok(None);
    }
    let mut out = BytesMut::new();
    out.put_i32(cells.len() as i32);
    for cell in cells {
        let path = cell.path.as_deref().unwrap_or_default();
        let value = cell.value_bytes().cloned().unwrap_or_default();
        match &column.ty {
            CqlType::Set(element) => {
                let (item, _) = element.decode_comparable(path, false).map_err(|e| {
                    CqlError::Server(format!("stored set element is malformed: {}", e.0))
                })?;
                out.put_i32(item.len() as i32);
                out.put_slice(&item);
            }
            CqlType::Map(key, _) => {
                let (item, _) = key.decode_comparable(path, false).map_err(|e| {
                    CqlError::Server(format!("stored map key is malformed: {}", e.0))
                })?;
                out.put_i32(item.len() as i32);
                out.put_slice(&item);
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
            _ => {
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
        }
    }
    Ok(Some(out.freeze()))
}

/// The element cells of one collection column in a row.
fn element_cells(row: Option<&Row>, column: u32) -> Vec<&Cell> {
    row.map(|r| {
        r.cells
            .iter()
            .filter(|c| c.column == column && c.path.is_some())
            .collect()
    })
    .unwrap_or_default()
}

/// The parts of a serialized map (`per_entry` = 2) or list/set (1).
fn split_entries(bytes: &[u8], per_entry: usize) -> Result<Vec<Bytes>, CqlError> {
    let bad = || invalid("malformed collection value");
    let count = i32::from_be_bytes(
        bytes
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let mut at = 4;
    let mut out = Vec::new();
    for _ in 0..(count.max(0) as usize).saturating_mul(per_entry) {
        let len = i32::from_be_bytes(
            bytes
                .get(at..at + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        at += 4;
        let len = usize::try_from(len).map_err(|_| bad())?;
        out.push(Bytes::copy_from_slice(
            bytes.get(at..at + len).ok_or_else(bad)?,
        ));
        at += len;
    }
    Ok(out)
}

/// A selected output.
enum Projected {
    Column(ColumnSchema, Option<String>),
    /// An aggregate over all selected rows: which, of what column (none
    /// for `count(*)`), and its output name.
    Aggregate(AggregateKind, Option<ColumnSchema>, String),
    /// `writetime(column)`, and its output name.
    WriteTime(ColumnSchema, String),
    /// `ttl(column)`, and its output name.
    Ttl(ColumnSchema, String),
    /// A function of column values (`token(k)`, `toDate(ts)`, a cast), its
    /// result type and output name.
    Scalar(ScalarFunction, Vec<ColumnSchema>, CqlType, String),
}

/// Functions of one row's values that a selection may apply.
#[derive(Debug, Clone, PartialEq)]
enum ScalarFunction {
    /// The partition's token (its arguments are the partition key columns).
    Token,
    ToTimestamp,
    ToUnixTimestamp,
    ToDate,
    Cast,
    /// A field of a user-defined type's value, by position at each level.
    Field(Vec<usize>),
    /// `<type>AsBlob` and `blobAs<type>`: the same bytes, another type
    /// (checked against the target's width when it has one).
    Reinterpret,
    /// `abs`, `exp`, `log`, `log10`, `round` of a number, in its own type.
    Math(MathFunction),
    /// `now()`, `uuid()`, `currentTimestamp()` and the like: no argument,
    /// evaluated for each row as Cassandra does.
    Clock(ClockFunction),
    /// `map_keys`, `map_values`, `collection_count`, `collection_min`,
    /// `collection_max` of a collection column (Cassandra 5.0).
    Collection(CollectionFunction),
    /// `toJson(column)`: the value as JSON text (`null` for a null).
    ToJson,
}

/// The native functions of no argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClockFunction {
    Now,
    Uuid,
    CurrentTimestamp,
    CurrentDate,
    CurrentTime,
    CurrentTimeUuid,
}

impl ClockFunction {
    /// The function and its result type, by lowercase name.
    fn from_name(name: &str) -> Option<(ClockFunction, CqlType)> {
        Some(match name {
            "now" => (ClockFunction::Now, CqlType::TimeUuid),
            "uuid" => (ClockFunction::Uuid, CqlType::Uuid),
            "currenttimestamp" => (ClockFunction::CurrentTimestamp, CqlType::Timestamp),
            "currentdate" => (ClockFunction::CurrentDate, CqlType::Date),
            "currenttime" => (ClockFunction::CurrentTime, CqlType::Time),
            "currenttimeuuid" => (ClockFunction::CurrentTimeUuid, CqlType::TimeUuid),
            _ => return None,
        })
    }

    fn value(self) -> Bytes {
        const DAY_US: i64 = 86_400_000_000;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        match self {
            ClockFunction::Now | ClockFunction::CurrentTimeUuid => {
                Bytes::copy_from_slice(&crate::values::timeuuid(micros))
            }
            ClockFunction::Uuid => Bytes::copy_from_slice(&crate::values::random_uuid()),
            ClockFunction::CurrentTimestamp => {
                Bytes::copy_from_slice(&(micros / 1000).to_be_bytes())
            }
            ClockFunction::CurrentDate => {
                let days = micros.div_euclid(DAY_US) + (1 << 31);
                Bytes::copy_from_slice(&(days as u32).to_be_bytes())
            }
            ClockFunction::CurrentTime => {
                Bytes::copy_from_slice(&(micros.rem_euclid(DAY_US) * 1000).to_be_bytes())
            }
        }
    }
}

/// The native collection functions (Cassandra 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CollectionFunction {
    MapKeys,
    MapValues,
    Count,
    Min,
    Max,
}

impl CollectionFunction {
    fn from_name(name: &str) -> Option<CollectionFunction> {
        Some(match name {
            "map_keys" => CollectionFunction::MapKeys,
            "map_values" => CollectionFunction::MapValues,
            "collection_count" => CollectionFunction::Count,
            "collection_min" => CollectionFunction::Min,
            "collection_max" => CollectionFunction::Max,
            _ => return None,
        })
    }

    /// The result type for a column of type `ty`, if it takes one.
    fn result_type(self, ty: &CqlType) -> Option<CqlType> {
        match (self, ty.unfrozen()) {
            (CollectionFunction::MapKeys, CqlType::Map(k, _)) => Some(CqlType::Set(k.clone())),
            (CollectionFunction::MapValues, CqlType::Map(_, v)) => Some(CqlType::List(v.clone())),
            (CollectionFunction::Count, CqlType::Map(..) | CqlType::List(_) | CqlType::Set(_)) => {
                Some(CqlType::Int)
            }
            (
                CollectionFunction::Min | CollectionFunction::Max,
                CqlType::List(e) | CqlType::Set(e),
            ) => Some((**e).clone()),
            _ => None,
        }
    }

    /// Applies the function to a protocol-encoded collection of type `ty`.
    fn apply(self, ty: &CqlType, value: &[u8]) -> Option<Bytes> {
        let (count, items) = collection_items(value)?;
        match self {
            CollectionFunction::Count => Some(Bytes::copy_from_slice(
                &i32::try_from(count).ok()?.to_be_bytes(),
            )),
            CollectionFunction::MapKeys | CollectionFunction::MapValues => {
                let take = usize::from(self == CollectionFunction::MapValues);
                let picked: Vec<&[u8]> = items.iter().skip(take).step_by(2).copied().collect();
                let mut out = Vec::new();
                out.extend_from_slice(&i32::try_from(picked.len()).ok()?.to_be_bytes());
                for item in picked {
                    out.extend_from_slice(&i32::try_from(item.len()).ok()?.to_be_bytes());
                    out.extend_from_slice(item);
                }
                Some(Bytes::from(out))
            }
            CollectionFunction::Min | CollectionFunction::Max => {
                let (CqlType::List(element) | CqlType::Set(element)) = ty.unfrozen() else {
                    return None;
                };
                let mut keyed: Vec<(Vec<u8>, &[u8])> = items
                    .iter()
                    .map(|item| {
                        let mut key = Vec::new();
                        element.encode_comparable(item, false, &mut key).ok()?;
                        Some((key, *item))
                    })
                    .collect::<Option<_>>()?;
                keyed.sort();
                let chosen = if self == CollectionFunction::Min {
                    keyed.first()
                } else {
                    keyed.last()
                };
                chosen.map(|(_, item)| Bytes::copy_from_slice(item))
            }
        }
    }
}

/// A protocol-encoded collection's element count and its elements (a map's
/// keys and values alternate); `None` if it is malformed.
fn collection_items(value: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    let count = usize::try_from(i32::from_be_bytes(value.get(..4)?.try_into().ok()?)).ok()?;
    let mut at = 4;
    let mut items = Vec::new();
    while at < value.len() {
        let len =
            usize::try_from(i32::from_be_bytes(value.get(at..at + 4)?.try_into().ok()?)).ok()?;
        at += 4;
        items.push(value.get(at..at + len)?);
        at += len;
    }
    Some((count, items))
}

/// The native math functions (Cassandra 5.0): each returns its argument's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MathFunction {
    Abs,
    Exp,
    Log,
    Log10,
    Round,
}

impl MathFunction {
    fn from_name(name: &str) -> Option<MathFunction> {
        Some(match name {
            "abs" => MathFunction::Abs,
            "exp" => MathFunction::Exp,
            "log" => MathFunction::Log,
            "log10" => MathFunction::Log10,
            "round" => MathFunction::Round,
            _ => return None,
        })
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            MathFunction::Abs => x.abs(),
            MathFunction::Exp => x.exp(),
            MathFunction::Log => x.ln(),
            MathFunction::Log10 => x.log10(),
            MathFunction::Round => x.round(),
        }
    }
}

/// A math function of a fixed-width number, in the number's type (integer
/// results truncated, as Cassandra's).
fn apply_math(function: MathFunction, ty: &CqlType, bytes: &[u8]) -> Option<Bytes> {
    let int = |value: i64| -> Option<i64> {
        match function {
            MathFunction::Abs => value.checked_abs(),
            MathFunction::Round => Some(value),
            other => Some(other.apply(value as f64) as i64),
        }
    };
    Some(match ty {
        CqlType::TinyInt => {
            let v = int(i64::from(i8::from_be_bytes(bytes.try_into().ok()?)))?;
            Bytes::copy_from_slice(&i8::try_from(v).ok()?.to_be_bytes())
        }
        CqlType::SmallInt => {
            let v = int(i64::from(i16::from_be_bytes(bytes.try_into().ok()?)))?;
            Bytes::copy_from_slice(&i16::try_from(v).ok()?.to_be_bytes())
        }
        CqlType::Int => {
            let v = int(i64::from(i32::from_be_bytes(bytes.try_into().ok()?)))?;
            Bytes::copy_from_slice(&i32::try_from(v).ok()?.to_be_bytes())
        }
        CqlType::BigInt | CqlType::Counter => {
            let v = int(i64::from_be_bytes(bytes.try_into().ok()?))?;
            Bytes::copy_from_slice(&v.to_be_bytes())
        }
        CqlType::Float => {
            let v = function.apply(f64::from(f32::from_be_bytes(bytes.try_into().ok()?)));
            Bytes::copy_from_slice(&(v as f32).to_be_bytes())
        }
        CqlType::Double => {
            let v = function.apply(f64::from_be_bytes(bytes.try_into().ok()?));
            Bytes::copy_from_slice(&v.to_be_bytes())
        }
        _ => return None,
    })
}

/// Milliseconds since the epoch in a version 1 (time) UUID.
fn timeuuid_millis(bytes: &[u8]) -> Option<i64> {
    let b: [u8; 16] = bytes.try_into().ok()?;
    let time_low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let time_mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let time_hi = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    let ticks = time_hi << 48 | time_mid << 32 | time_low;
    // 100 ns ticks since 1582-10-15.
    Some((ticks as i64 - 0x01b2_1dd2_1381_4000) / 10_000)
}

/// Evaluates a scalar function on its argument values.
fn apply_scalar(
    function: &ScalarFunction,
    from: &CqlType,
    to: &CqlType,
    value: Option<Bytes>,
    token: i64,
) -> Option<Bytes> {
    const DAY_MS: i64 = 86_400_000;
    let millis = |bytes: &[u8]| -> Option<i64> {
        match from {
            CqlType::TimeUuid => timeuuid_millis(bytes),
            CqlType::Timestamp => Some(i64::from_be_bytes(bytes.try_into().ok()?)),
            CqlType::Date => {
                let days = i64::from(u32::from_be_bytes(bytes.try_into().ok()?)) - (1 << 31);
                Some(days * DAY_MS)
            }
            _ => None,
        }
    };
    match function {
        ScalarFunction::Token => Some(Bytes::copy_from_slice(&token.to_be_bytes())),
        ScalarFunction::ToTimestamp | ScalarFunction::ToUnixTimestamp => {
            let ms = millis(&value?)?;
            Some(Bytes::copy_from_slice(&ms.to_be_bytes()))
        }
        ScalarFunction::ToDate => {
            let days = millis(&value?)?.div_euclid(DAY_MS) + (1 << 31);
            Some(Bytes::copy_from_slice(&(days as u32).to_be_bytes()))
        }
        ScalarFunction::Cast => cast_value(from, to, &value?),
        ScalarFunction::Reinterpret => {
            let value = value?;
            match to.fixed_width() {
                Some(width) if value.len() != width && !value.is_empty() => None,
                _ => Some(value),
            }
        }
        ScalarFunction::Math(math) => apply_math(*math, from, &value?),
        ScalarFunction::Clock(clock) => Some(clock.value()),
        ScalarFunction::ToJson => Some(Bytes::from(match value {
            Some(bytes) => crate::json::render(from, &bytes),
            None => "null".to_owned(),
        })),
        ScalarFunction::Collection(collection) => collection.apply(from, &value?),
        ScalarFunction::Field(path) => {
            let mut value = value?;
            for &index in path {
                value = udt_field(&value, index)?;
            }
            Some(value)
        }
    }
}

/// Field `index` of a serialized user-type value (`[int length][bytes]`
/// per field); None when null or absent (a field added after the value
/// was written).
fn udt_field(value: &Bytes, index: usize) -> Option<Bytes> {
    let mut at = 0usize;
    for field in 0..=index {
        let length = i32::from_be_bytes(value.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if length < 0 {
            if field == index {
                return None;
            }
            continue;
        }
        let end = at.checked_add(length as usize)?;
        if field == index {
            return Some(value.slice(at..end.min(value.len())));
        }
        at = end;
    }
    None
}

/// `CAST(value AS to)` between numbers, and from anything to text.
fn cast_value(from: &CqlType, to: &CqlType, bytes: &[u8]) -> Option<Bytes> {
    if matches!(to, CqlType::Text | CqlType::Ascii) {
        let rendered = crate::json::render(from, bytes);
        let text = match from {
            CqlType::Text
            | CqlType::Ascii
            | CqlType::Uuid
            | CqlType::TimeUuid
            | CqlType::Inet
            | CqlType::Timestamp
            | CqlType::Date
            | CqlType::Time => serde_json::from_str::<String>(&rendered).unwrap_or(rendered),
            _ => rendered,
        };
        return Some(Bytes::from(text.into_bytes()));
    }
    let number: f64 = match from {
        CqlType::TinyInt => f64::from(i8::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::SmallInt => f64::from(i16::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::Int => f64::from(i32::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::BigInt | CqlType::Counter => i64::from_be_bytes(bytes.try_into().ok()?) as f64,
        CqlType::Float => f64::from(f32::from_be_bytes(bytes.try_into().ok()?)),
        CqlType::Double => f64::from_be_bytes(bytes.try_into().ok()?),
        _ => return None,
    };
    let exact = |n: f64| n.trunc();
    Some(match to {
        CqlType::TinyInt => Bytes::copy_from_slice(&(exact(number) as i8).to_be_bytes()),
        CqlType::SmallInt => Bytes::copy_from_slice(&(exact(number) as i16).to_be_bytes()),
        CqlType::Int => Bytes::copy_from_slice(&(exact(number) as i32).to_be_bytes()),
        CqlType::BigInt => Bytes::copy_from_slice(&(exact(number) as i64).to_be_bytes()),
        CqlType::Float => Bytes::copy_from_slice(&(number as f32).to_be_bytes()),
        CqlType::Double => Bytes::copy_from_slice(&number.to_be_bytes()),
        _ => return None,
    })
}

/// Whether `CAST(from AS to)` is one this node evaluates.
fn castable(from: &CqlType, to: &CqlType) -> bool {
    let numeric = |t: &CqlType| {
        matches!(
            t,
            CqlType::TinyInt
                | CqlType::SmallInt
                | CqlType::Int
                | CqlType::BigInt
                | CqlType::Counter
                | CqlType::Float
                | CqlType::Double
        )
    };
    matches!(to, CqlType::Text | CqlType::Ascii) && !from.is_multi_cell()
        || numeric(from) && numeric(to) && !matches!(to, CqlType::Counter)
}

impl Projected {
    fn spec(&self, table: &TableSchema) -> Option<ColumnSpec> {
        let (name, ty) = match self {
            Projected::Column(c, alias) => (
                alias.clone().unwrap_or_else(|| c.name.clone()),
                c.ty.clone(),
            ),
            Projected::WriteTime(_, name) => (name.clone(), CqlType::BigInt),
            Projected::Ttl(_, name) => (name.clone(), CqlType::Int),
            Projected::Scalar(_, _, ty, name) => (name.clone(), ty.clone()),
            Projected::Aggregate(kind, column, name) => {
                let ty = match (kind, column) {
                    (AggregateKind::Count, _) | (_, None) => CqlType::BigInt,
                    (_, Some(column)) => column.ty.clone(),
                };
                (name.clone(), ty)
            }
        };
        Some(ColumnSpec {
            keyspace: table.keyspace.clone(),
            table: table.name.clone(),
            name,
            ty,
        })
    }
}

/// The result columns of a SELECT on a table, as a prepared statement
/// announces them.
pub fn result_columns(
    table: &TableSchema,
    selectors: &[Selector],
    json: bool,
) -> Result<Vec<ColumnSpec>, CqlError> {
    if json {
        return Ok(vec![ColumnSpec {
            keyspace: table.keyspace.clone(),
            table: table.name.clone(),
            name: "[json]".into(),
            ty: CqlType::Text,
        }]);
    }
    Ok(project(table, selectors)?
        .iter()
        .filter_map(|p| p.spec(table))
        .collect())
}

/// The one column a function of a column is called on, and the name of
/// its result (the alias, or `system.name(column)` as Cassandra names it).
fn function_column<'t>(
    table: &'t TableSchema,
    name: &str,
    args: &[Selector],
    alias: Option<String>,
) -> Result<(&'t ColumnSchema, String), CqlError> {
    let [Selector::Column(column_name)] = args else {
        return Err(CqlError::not_yet_supported(&format!(
            "{name}() of anything but one column"
        )));
    };
    let column = table
        .column(column_name)
        .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
    let output = alias.unwrap_or_else(|| format!("system.{name}({column_name})"));
    Ok((column, output))
}

fn project(table: &TableSchema, selectors: &[Selector]) -> Result<Vec<Projected>, CqlError> {
    if selectors.is_empty() {
        return Ok(table
            .columns
            .iter()
            .map(|c| Projected::Column(c.clone(), None))
            .collect());
    }
    let mut out = Vec::new();
    for selector in selectors {
        let (inner, alias) = match selector {
            Selector::Aliased(inner, alias) => (inner.as_ref(), Some(alias.clone())),
            other => (other, None),
        };
        match inner {
            Selector::Column(name) => {
                let column = table
                    .column(name)
                    .ok_or_else(|| invalid(format!("Undefined column name {name}")))?;
                out.push(Projected::Column(column.clone(), alias));
            }
            Selector::CountAll => out.push(Projected::Aggregate(
                AggregateKind::Count,
                None,
                alias.unwrap_or_else(|| "count".into()),
            )),
            Selector::Function { name, args } if name == "writetime" || name == "ttl" => {
                let [Selector::Column(column_name)] = args.as_slice() else {
                    return Err(invalid(format!("{name}() takes one column")));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                if matches!(
                    column.kind,
                    ColumnKind::PartitionKey | ColumnKind::Clustering
                ) {
                    return Err(invalid(format!(
                        "Cannot use selection function {name} on PRIMARY KEY part {column_name}"
                    )));
                }
                if column.ty.is_multi_cell() {
                    return Err(invalid(format!("Cannot use selection function {name} on non-frozen collection {column_name}")));
                }
                let output = alias.unwrap_or_else(|| format!("{name}({column_name})"));
                out.push(if name == "writetime" {
                    Projected::WriteTime(column.clone(), output)
                } else {
                    Projected::Ttl(column.clone(), output)
                });
            }
            Selector::Function { name, args } if AggregateKind::from_name(name).is_some() => {
                let kind = AggregateKind::from_name(name).unwrap_or(AggregateKind::Count);
                let [Selector::Column(column_name)] = args.as_slice() else {
                    return Err(invalid(format!("{name}() takes one column")));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                if matches!(kind, AggregateKind::Sum | AggregateKind::Avg)
                    && !is_numeric(&column.ty)
                {
                    return Err(invalid(format!(
                        "Invalid call to function {name}: {column_name} is a {}, not a number",
                        column.ty
                    )));
                }
                let output = alias.unwrap_or_else(|| format!("system.{name}({column_name})"));
                out.push(Projected::Aggregate(kind, Some(column.clone()), output));
            }
            Selector::Function { name, args } if name == "token" => {
                let key: Vec<ColumnSchema> = table.partition_key().cloned().collect();
                let given: Vec<&str> = args
                    .iter()
                    .filter_map(|a| match a {
                        Selector::Column(c) => Some(c.as_str()),
                        _ => None,
                    })
                    .collect();
                let expected: Vec<&str> = key.iter().map(|c| c.name.as_str()).collect();
                if given != expected {
                    return Err(invalid(format!(
                        "Invalid arguments for token(): it takes the partition key columns ({})",
                        expected.join(", ")
                    )));
                }
                let output =
                    alias.unwrap_or_else(|| format!("system.token({})", expected.join(", ")));
                out.push(Projected::Scalar(
                    ScalarFunction::Token,
                    key,
                    CqlType::BigInt,
                    output,
                ));
            }
            Selector::Function { name, args }
                if matches!(
                    name.as_str(),
                    "totimestamp" | "tounixtimestamp" | "todate" | "dateof" | "unixtimestampof"
                ) =>
            {
                let [Selector::Column(column_name)] = args.as_slice() else {
                    return Err(invalid(format!("{name}() takes one column")));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                let (function, ty) = match name.as_str() {
                    "totimestamp" | "dateof" => (ScalarFunction::ToTimestamp, CqlType::Timestamp),
                    "todate" => (ScalarFunction::ToDate, CqlType::Date),
                    _ => (ScalarFunction::ToUnixTimestamp, CqlType::BigInt),
                };
                let accepted = match function {
                    ScalarFunction::ToDate => {
                        matches!(column.ty, CqlType::TimeUuid | CqlType::Timestamp)
                    }
                    _ => matches!(
                        column.ty,
                        CqlType::TimeUuid | CqlType::Timestamp | CqlType::Date
                    ),
                };
                if !accepted {
                    return Err(invalid(format!(
                        "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name}",
                        column.ty
                    )));
                }
                let output = alias.unwrap_or_else(|| format!("system.{name}({column_name})"));
                out.push(Projected::Scalar(
                    function,
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Cast(inner, to) => {
                let Selector::Column(column_name) = inner.as_ref() else {
                    return Err(CqlError::not_yet_supported("CAST of anything but a column"));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                if !castable(&column.ty, to) {
                    return Err(invalid(format!("{} cannot be cast to {to}", column.ty)));
                }
                let output = alias.unwrap_or_else(|| format!("cast({column_name} as {to})"));
                out.push(Projected::Scalar(
                    ScalarFunction::Cast,
                    vec![column.clone()],
                    to.clone(),
                    output,
                ));
            }
            Selector::Function { name, args }
                if MathFunction::from_name(name).is_some()
                    || crate::values::reinterpretation(name).is_some() =>
            {
                let (column, output) = function_column(table, name, args, alias)?;
                let column_name = &column.name;
                let (function, ty) = if let Some(math) = MathFunction::from_name(name) {
                    let fixed_number = is_numeric(&column.ty)
                        && !matches!(column.ty, CqlType::VarInt | CqlType::Counter);
                    if !fixed_number {
                        return Err(invalid(format!(
                            "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name}",
                            column.ty
                        )));
                    }
                    (ScalarFunction::Math(math), column.ty.clone())
                } else {
                    let (from, to) = crate::values::reinterpretation(name)
                        .unwrap_or((CqlType::Blob, CqlType::Blob));
                    if column.ty.unfrozen() != &from {
                        return Err(invalid(format!(
                            "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name} of type {from}",
                            column.ty
                        )));
                    }
                    (ScalarFunction::Reinterpret, to)
                };
                out.push(Projected::Scalar(
                    function,
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Function { name, args } if name == "tojson" => {
                let (column, output) = function_column(table, name, args, alias)?;
                out.push(Projected::Scalar(
                    ScalarFunction::ToJson,
                    vec![column.clone()],
                    CqlType::Text,
                    output,
                ));
            }
            Selector::Function { name, args } if ClockFunction::from_name(name).is_some() => {
                if !args.is_empty() {
                    return Err(invalid(format!(
                        "Invalid number of arguments in call to function system.{name}: 0 required but {} provided",
                        args.len()
                    )));
                }
                let (function, ty) = ClockFunction::from_name(name)
                    .ok_or_else(|| CqlError::Server("a clock function vanished".into()))?;
                let output = alias.unwrap_or_else(|| format!("system.{name}()"));
                out.push(Projected::Scalar(
                    ScalarFunction::Clock(function),
                    Vec::new(),
                    ty,
                    output,
                ));
            }
            Selector::Function { name, args } if CollectionFunction::from_name(name).is_some() => {
                let function = CollectionFunction::from_name(name)
                    .ok_or_else(|| CqlError::Server("a collection function vanished".into()))?;
                let (column, output) = function_column(table, name, args, alias)?;
                let column_name = &column.name;
                let ty = function.result_type(&column.ty).ok_or_else(|| {
                    invalid(format!(
                        "Type error: {column_name} of type {} cannot be passed as argument 0 of function system.{name}",
                        column.ty
                    ))
                })?;
                out.push(Projected::Scalar(
                    ScalarFunction::Collection(function),
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Function { name, .. } => {
                return Err(CqlError::not_yet_supported(&format!(
                    "the {name}() function in a selection"
                )))
            }
            Selector::Field(..) => {
                let mut names = Vec::new();
                let mut base = inner;
                while let Selector::Field(of, field) = base {
                    names.push(field.as_str());
                    base = of.as_ref();
                }
                names.reverse();
                let Selector::Column(column_name) = base else {
                    return Err(CqlError::not_yet_supported(
                        "field selection of anything but a column",
                    ));
                };
                let column = table
                    .column(column_name)
                    .ok_or_else(|| invalid(format!("Undefined column name {column_name}")))?;
                let mut ty = column.ty.clone();
                let mut path = Vec::with_capacity(names.len());
                for name in &names {
                    let CqlType::UserType(udt) = ty.unfrozen() else {
                        return Err(invalid(format!(
                            "Invalid field selection: {column_name} of type {} is not a user type",
                            column.ty
                        )));
                    };
                    let Some(index) = udt.fields.iter().position(|(f, _)| f == name) else {
                        return Err(invalid(format!(
                            "{} of type {} has no field {name}",
                            column_name, column.ty
                        )));
                    };
                    path.push(index);
                    ty = udt.fields[index].1.clone();
                }
                let output = alias.unwrap_or_else(|| format!("{column_name}.{}", names.join(".")));
                out.push(Projected::Scalar(
                    ScalarFunction::Field(path),
                    vec![column.clone()],
                    ty,
                    output,
                ));
            }
            Selector::Aliased(..) => return Err(invalid("nested aliases")),
        }
    }
    Ok(out)
}

fn partition_key_components(table: &TableSchema, key: &[u8]) -> Result<Vec<Bytes>, CqlError> {
    let count = table.partition_key().count();
    if count == 1 {
        return Ok(vec![Bytes::copy_from_slice(key)]);
    }
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        let len_bytes = key
            .get(at..at + 2)
            .ok_or_else(|| CqlError::Server("stored partition key is malformed".into()))?;
        let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let value = key
            .get(at + 2..at + 2 + len)
            .ok_or_else(|| CqlError::Server("stored partition key is malformed".into()))?;
        out.push(Bytes::copy_from_slice(value));
        at += 2 + len + 1;
    }
    Ok(out)
}

fn clustering_components(table: &TableSchema, clustering: &[u8]) -> Result<Vec<Bytes>, CqlError> {
    let mut out = Vec::new();
    let mut at = 0;
    for column in table.clustering() {
        let rest = clustering.get(at..).unwrap_or_default();
        let (value, used) = column
            .ty
            .decode_comparable(rest, column.descending)
            .map_err(|e| {
                CqlError::Server(format!("stored clustering key is malformed: {}", e.0))
            })?;
        out.push(Bytes::from(value));
        at += used;
    }
    Ok(out)
}

/// Checks that `GROUP BY` names a prefix of the primary key, where key
/// columns restricted to one value (`=`) may be left out, as in Cassandra
/// (`WHERE p = 1 GROUP BY c1`); returns the prefix's columns, those left
/// out included (they are the same on every row).
fn group_columns(
    table: &TableSchema,
    group_by: &[String],
    restrictions: &Restrictions,
) -> Result<Vec<ColumnSchema>, CqlError> {
    let one_value = |column: &ColumnSchema, clustering_index: Option<usize>| match clustering_index
    {
        None => restrictions
            .partition
            .iter()
            .any(|(p, values)| *p == column.position as usize && values.len() == 1),
        Some(i) => i < restrictions.clustering_depth && restrictions.clustering_prefixes.len() == 1,
    };
    let key: Vec<(&ColumnSchema, Option<usize>)> = table
        .partition_key()
        .map(|c| (c, None))
        .chain(table.clustering().enumerate().map(|(i, c)| (c, Some(i))))
        .collect();
    let mut out = Vec::new();
    let mut at = 0;
    for name in group_by {
        loop {
            match key.get(at) {
                Some((column, _)) if column.name == *name => {
                    out.push((*column).clone());
                    at += 1;
                    break;
                }
                Some((column, index)) if one_value(column, *index) => {
                    out.push((*column).clone());
                    at += 1;
                }
                _ => {
                    return Err(invalid(format!(
                        "Group by currently only support groups of columns following their declared order in the PRIMARY KEY ({name} is out of order)"
                    )))
                }
            }
        }
    }
    if !out.is_empty() && out.len() < table.partition_key().count() {
        return Err(invalid(
            "Group by is not supported on only a part of the partition key",
        ));
    }
    Ok(out)
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

/// Rows fetched per internal page while an aggregate folds them.
const AGGREGATE_PAGE_ROWS: usize = 5_000;

/// The native aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggregateKind {
    Count,
    Min,
    Max,
    Sum,
    Avg,
}

impl AggregateKind {
    fn from_name(name: &str) -> Option<AggregateKind> {
        Some(match name {
            "count" => AggregateKind::Count,
            "min" => AggregateKind::Min,
            "max" => AggregateKind::Max,
            "sum" => AggregateKind::Sum,
            "avg" => AggregateKind::Avg,
            _ => return None,
        })
    }
}

fn is_numeric(ty: &CqlType) -> bool {
    matches!(
        ty,
        CqlType::TinyInt
            | CqlType::SmallInt
            | CqlType::Int
            | CqlType::BigInt
            | CqlType::VarInt
            | CqlType::Float
            | CqlType::Double
            | CqlType::Counter
    )
}

/// One output column of an aggregate query, folded row by row.
struct Fold {
    kind: Option<AggregateKind>,
    ty: Option<CqlType>,
    count: i64,
    /// Min/max so far: its byte-comparable form and its value.
    best: Option<(Vec<u8>, Bytes)>,
    int_sum: i128,
    float_sum: f64,
    /// A plain column's value from the first row (Cassandra's behaviour).
    first: Option<Option<Bytes>>,
}

impl Fold {
    fn new(projected: &Projected) -> Fold {
        let (kind, ty) = match projected {
            Projected::Aggregate(kind, column, _) => {
                (Some(*kind), column.as_ref().map(|c| c.ty.clone()))
            }
            _ => (None, None),
        };
        Fold {
            kind,
            ty,
            count: 0,
            best: None,
            int_sum: 0,
            float_sum: 0.0,
            first: None,
        }
    }

    fn add(&mut self, value: Option<&Bytes>) -> Result<(), CqlError> {
        let Some(kind) = self.kind else {
            if self.first.is_none() {
                self.first = Some(value.cloned());
            }
            return Ok(());
        };
        let Some(value) = value else {
            return Ok(()); // nulls do not count
        };
        self.count += 1;
        let ty = self.ty.clone().unwrap_or(CqlType::BigInt);
        match kind {
            AggregateKind::Count => {}
            AggregateKind::Min | AggregateKind::Max => {
                let mut key = Vec::new();
                ty.encode_comparable(value, false, &mut key)
                    .map_err(|e| CqlError::Server(e.0))?;
                let better = match &self.best {
                    None => true,
                    Some((best, _)) if kind == AggregateKind::Min => key < *best,
                    Some((best, _)) => key > *best,
                };
                if better {
                    self.best = Some((key, value.clone()));
                }
            }
            AggregateKind::Sum | AggregateKind::Avg => match ty {
                CqlType::Float => {
                    self.float_sum += f64::from(f32::from_be_bytes(
                        value.as_ref().try_into().unwrap_or([0; 4]),
                    ))
                }
                CqlType::Double => {
                    self.float_sum +=
                        f64::from_be_bytes(value.as_ref().try_into().unwrap_or([0; 8]))
                }
                _ => {
                    let mut extended = [if value.first().is_some_and(|b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    }; 16];
                    let start = 16usize.saturating_sub(value.len());
                    extended[start..].copy_from_slice(
                        value
                            .get(value.len().saturating_sub(16)..)
                            .unwrap_or_default(),
                    );
                    self.int_sum += i128::from_be_bytes(extended);
                }
            },
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<Bytes>, CqlError> {
        let Some(kind) = self.kind else {
            return Ok(self.first.flatten());
        };
        let ty = self.ty.unwrap_or(CqlType::BigInt);
        Ok(match kind {
            AggregateKind::Count => Some(Bytes::copy_from_slice(&self.count.to_be_bytes())),
            AggregateKind::Min | AggregateKind::Max => self.best.map(|(_, value)| value),
            AggregateKind::Sum | AggregateKind::Avg => {
                let divisor = if kind == AggregateKind::Avg {
                    self.count.max(1)
                } else {
                    1
                };
                Some(match ty {
                    CqlType::Float => Bytes::copy_from_slice(
                        &((self.float_sum / divisor as f64) as f32).to_be_bytes(),
                    ),
                    CqlType::Double => {
                        Bytes::copy_from_slice(&(self.float_sum / divisor as f64).to_be_bytes())
                    }
                    _ => {
                        let total = self.int_sum / i128::from(divisor);
                        let bytes = total.to_be_bytes();
                        let width = ty.fixed_width().unwrap_or(16);
                        Bytes::copy_from_slice(bytes.get(16 - width.min(16)..).unwrap_or_default())
                    }
                })
            }
        })
    }
}

/// How a SELECT shapes each partition's rows.
struct Shape {
    has_clustering_restriction: bool,
    /// At most this many rows per partition (DISTINCT is 1).
    per_partition_limit: Option<usize>,
    now_s: i64,
}

fn materialize(
    table: &TableSchema,
    partition: &PartitionRows,
    projection: &[Projected],
    shape: &Shape,
    filters: &[Filter],
    out: &mut Vec<Vec<Option<Bytes>>>,
) -> Result<(), CqlError> {
    let has_clustering_restriction = shape.has_clustering_restriction;
    let now_s = shape.now_s;
    let key_components = partition_key_components(table, &partition.key.key)?;
    let static_value = |id: u32| {
        partition
            .static_row
            .as_ref()
            .and_then(|r| r.cells.iter().find(|c| c.column == id))
            .and_then(|c| c.value_bytes().cloned())
    };
    let mut emit = |row: Option<&Row>| -> Result<(), CqlError> {
        let clustering = match row {
            Some(row) => clustering_components(table, &row.clustering)?,
            None => Vec::new(),
        };
        let value = |column: &ColumnSchema| -> Option<Bytes> {
            match column.kind {
                ColumnKind::PartitionKey => key_components.get(column.position as usize).cloned(),
                ColumnKind::Clustering => clustering.get(column.position as usize).cloned(),
                ColumnKind::Static if column.ty.is_multi_cell() => assemble_collection(
                    column,
                    &element_cells(partition.static_row.as_ref(), column.id),
                )
                .ok()
                .flatten(),
                ColumnKind::Regular if column.ty.is_multi_cell() => {
                    assemble_collection(column, &element_cells(row, column.id))
                        .ok()
                        .flatten()
                }
                ColumnKind::Static => static_value(column.id),
                ColumnKind::Regular => row
                    .and_then(|r| r.cells.iter().find(|c| c.column == column.id))
                    .and_then(|c| c.value_bytes().cloned()),
            }
        };
        if filters
            .iter()
            .any(|filter| !filter.matches(value(&filter.column).as_ref()))
        {
            return Ok(());
        }
        let cell_of = |column: &ColumnSchema| -> Option<&Cell> {
            let source = match column.kind {
                ColumnKind::Static => partition.static_row.as_ref(),
                _ => row,
            };
            source.and_then(|r| {
                r.cells
                    .iter()
                    .find(|c| c.column == column.id && c.path.is_none())
            })
        };
        out.push(
            projection
                .iter()
                .map(|p| match p {
                    Projected::Column(column, _) => value(column),
                    Projected::Aggregate(_, Some(column), _) => value(column),
                    Projected::Aggregate(_, None, _) => Some(Bytes::new()),
                    Projected::WriteTime(column, _) => {
                        cell_of(column).map(|c| Bytes::copy_from_slice(&c.timestamp.to_be_bytes()))
                    }
                    Projected::Scalar(function, columns, ty, _) => {
                        let argument = columns.first();
                        apply_scalar(
                            function,
                            argument.map_or(&CqlType::BigInt, |c| &c.ty),
                            ty,
                            argument.and_then(&value),
                            partition.key.token,
                        )
                    }
                    Projected::Ttl(column, _) => cell_of(column).and_then(|c| match c.value {
                        CellValue::Expiring { expires_at_s, .. } => Some(Bytes::copy_from_slice(
                            &((expires_at_s - now_s).max(0) as i32).to_be_bytes(),
                        )),
                        _ => None,
                    }),
                })
                .collect(),
        );
        Ok(())
    };
    if partition.rows.is_empty() {
        if partition.static_row.is_some() && !has_clustering_restriction {
            emit(None)?;
        }
        return Ok(());
    }
    // After ALTER TABLE DROP, a row may hold only cells of dropped
    // columns: it no longer exists.
    let dropped_any = table.has_dropped_columns();
    let exists = |row: &&Row| {
        !dropped_any
            || row.cells.iter().any(|cell| {
                cell.column == ROW_MARKER
                    || table
                        .columns
                        .iter()
                        .any(|c| c.id == cell.column && c.kind == ColumnKind::Regular)
            })
    };
    for row in partition
        .rows
        .iter()
        .filter(exists)
        .take(shape.per_partition_limit.unwrap_or(usize::MAX))
    {
        emit(Some(row))?;
    }
    Ok(())
}

fn split_collection(bytes: &[u8]) -> Result<Vec<Bytes>, CqlError> {
    split_entries(bytes, 1)
}

/// Where the next page starts: independent of the connection, so a driver
/// may fetch it on any connection (gocql does).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PagingState {
    key: PartitionKey,
    clustering: Option<Bytes>,
    remaining: Option<usize>,
}

impl PagingState {
    const VERSION: u8 = 1;

    fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(Self::VERSION);
        out.put_i64(self.key.token);
        out.put_u32(self.key.key.len() as u32);
        out.put_slice(&self.key.key);
        match &self.clustering {
            Some(c) => {
                out.put_u8(1);
                out.put_u32(c.len() as u32);
                out.put_slice(c);
            }
            None => out.put_u8(0),
        }
        out.put_i64(self.remaining.map_or(-1, |r| r as i64));
        out.freeze()
    }

    fn decode(bytes: Option<&Bytes>) -> Result<Option<PagingState>, CqlError> {
        let Some(bytes) = bytes else { return Ok(None) };
        let bad = || {
            CqlError::Protocol(
                "invalid paging state (was it made by another Ilion version?)".into(),
            )
        };
        let mut r = crate::protocol::primitives::BodyReader::new(bytes.clone());
        if r.read_byte().map_err(|_| bad())? != Self::VERSION {
            return Err(bad());
        }
        let token = r.read_long().map_err(|_| bad())?;
        let key = r.read_bytes().map_err(|_| bad())?.ok_or_else(bad)?;
        let clustering = match r.read_byte().map_err(|_| bad())? {
            0 => None,
            _ => Some(r.read_bytes().map_err(|_| bad())?.ok_or_else(bad)?),
        };
        let remaining = r.read_long().map_err(|_| bad())?;
        Ok(Some(PagingState {
            key: PartitionKey::new(token, key),
            clustering,
            remaining: usize::try_from(remaining).ok(),
        }))
    }
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

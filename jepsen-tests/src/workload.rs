//! Workloads (what the clients do) and their checkers (what the history
//! must satisfy).
//!
//! - `set` (Jepsen's Cassandra set test): each client inserts unique
//!   elements at the chosen consistency level; after the faults are healed
//!   one read at ALL lists the set. Lost: acknowledged but absent;
//!   unexpected: present but never attempted; recovered: present though
//!   its insert's outcome was unknown; indeterminate: unknown and absent.
//!   Valid when nothing is lost or unexpected.
//! - `register`: a few keys, each a register; clients read and write them
//!   at the chosen level; each key's history must be linearizable
//!   ([`crate::linear`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use serde::Serialize;

use crate::history::{pairs, History, Kind, Op};
use crate::linear::{self, RegisterOp, Timed};

/// Which workload a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Set,
    Register,
}

impl Workload {
    pub fn parse(name: &str) -> anyhow::Result<Workload> {
        Ok(match name {
            "set" => Workload::Set,
            "register" => Workload::Register,
            other => anyhow::bail!("unknown workload {other:?}; use set or register"),
        })
    }
}

/// How long a client waits for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Registers in the register workload.
const REGISTER_KEYS: i64 = 3;

/// A driver session for one client, token-aware, no retries (an error
/// must reach the history as the server sent it).
pub async fn session(contact: &str) -> anyhow::Result<Session> {
    let profile = scylla::client::execution_profile::ExecutionProfile::builder()
        .retry_policy(Arc::new(
            scylla::policies::retry::FallthroughRetryPolicy::new(),
        ))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .build();
    Ok(SessionBuilder::new()
        .known_node(contact)
        .connection_timeout(Duration::from_secs(10))
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await?)
}

/// Creates the workload's keyspace and table (RF 3).
pub async fn setup(session: &Session, workload: Workload) -> anyhow::Result<()> {
    session
        .query_unpaged(
            "CREATE KEYSPACE IF NOT EXISTS jepsen WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
            &[],
        )
        .await?;
    let table = match workload {
        Workload::Set => "CREATE TABLE IF NOT EXISTS jepsen.elements (value bigint PRIMARY KEY)",
        Workload::Register => {
            "CREATE TABLE IF NOT EXISTS jepsen.registers (id bigint PRIMARY KEY, value bigint)"
        }
    };
    session.query_unpaged(table, &[]).await?;
    session.await_schema_agreement().await?;
    Ok(())
}

/// How a failed request ends up in the history.
fn outcome(error: &ExecutionError, read: bool) -> Kind {
    match error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => match db {
            // Refused before anything was sent to a replica.
            DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::Invalid
            | DbError::SyntaxError => Kind::Fail,
            _ if read => Kind::Fail,
            _ => Kind::Info,
        },
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => Kind::Fail,
        // A read changes nothing: whatever happened, it did not happen.
        _ if read => Kind::Fail,
        _ => Kind::Info,
    }
}

/// One client of the set workload until `until` (history nanoseconds).
pub async fn set_client(
    session: Arc<Session>,
    process: u32,
    consistency: Consistency,
    history: History,
    until: u64,
) -> anyhow::Result<()> {
    let mut insert: PreparedStatement = session
        .prepare("INSERT INTO jepsen.elements (value) VALUES (?)")
        .await?;
    insert.set_consistency(consistency);
    let mut next: i64 = 0;
    while history.now() < until {
        let element = i64::from(process) * 1_000_000_000 + next;
        next += 1;
        let invoke = history.record(op(process, Kind::Invoke, "add", element.into(), None));
        let result = session.execute_unpaged(&insert, (element,)).await;
        complete_write(&history, invoke, result);
    }
    Ok(())
}

/// Records how a write ended: ok, or what its error makes of it.
fn complete_write<T>(history: &History, invoke: Op, result: Result<T, ExecutionError>) {
    let (kind, error) = match result {
        Ok(_) => (Kind::Ok, None),
        Err(e) => (outcome(&e, false), Some(e.to_string())),
    };
    history.record(Op {
        kind,
        error,
        ..invoke
    });
}

fn op(process: u32, kind: Kind, f: &'static str, value: serde_json::Value, key: Option<i64>) -> Op {
    Op {
        process,
        kind,
        f,
        value,
        time: 0,
        key,
        error: None,
    }
}

/// The final read of the set: every element, at ALL, retried until it
/// succeeds or `attempts` run out.
pub async fn read_set(session: &Session, attempts: usize) -> anyhow::Result<BTreeSet<i64>> {
    let mut last_error = None;
    for _ in 0..attempts {
        let mut statement =
            scylla::statement::unprepared::Statement::new("SELECT value FROM jepsen.elements");
        statement.set_consistency(Consistency::All);
        statement.set_page_size(5000);
        match read_all(session, statement).await {
            Ok(values) => return Ok(values),
            Err(e) => {
                last_error = Some(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no attempt to read the set")))
}

async fn read_all(
    session: &Session,
    statement: scylla::statement::unprepared::Statement,
) -> anyhow::Result<BTreeSet<i64>> {
    use futures_util::StreamExt;
    let mut rows = session
        .query_iter(statement, &[])
        .await?
        .rows_stream::<(i64,)>()?;
    let mut values = BTreeSet::new();
    while let Some(row) = rows.next().await {
        values.insert(row?.0);
    }
    Ok(values)
}

/// What the set checker found.
#[derive(Debug, Clone, Serialize)]
pub struct SetVerdict {
    pub valid: bool,
    pub attempted: usize,
    pub acknowledged: usize,
    pub read: usize,
    pub lost: Vec<i64>,
    pub unexpected: Vec<i64>,
    pub recovered: usize,
    pub indeterminate: usize,
}

/// Checks the set history against the final read.
pub fn check_set(ops: &[Op], read: &BTreeSet<i64>) -> SetVerdict {
    let mut attempted = BTreeSet::new();
    let mut acknowledged = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for (invoke, completion) in pairs(ops) {
        let Some(element) = invoke.value.as_i64() else {
            continue;
        };
        attempted.insert(element);
        match completion.map(|c| c.kind) {
            Some(Kind::Ok) => {
                acknowledged.insert(element);
            }
            Some(Kind::Fail) => {}
            _ => {
                unknown.insert(element);
            }
        }
    }
    let lost: Vec<i64> = acknowledged.difference(read).copied().collect();
    let unexpected: Vec<i64> = read.difference(&attempted).copied().collect();
    let recovered = unknown.intersection(read).count();
    SetVerdict {
        valid: lost.is_empty() && unexpected.is_empty(),
        attempted: attempted.len(),
        acknowledged: acknowledged.len(),
        read: read.len(),
        lost,
        unexpected,
        recovered,
        indeterminate: unknown.len() - recovered,
    }
}

/// One client of the register workload: random reads and writes of one key
/// until `until`.
pub async fn register_client(
    session: Arc<Session>,
    process: u32,
    consistency: Consistency,
    history: History,
    until: u64,
) -> anyhow::Result<()> {
    let mut write = session
        .prepare("INSERT INTO jepsen.registers (id, value) VALUES (?, ?)")
        .await?;
    write.set_consistency(consistency);
    let mut read = session
        .prepare("SELECT value FROM jepsen.registers WHERE id = ?")
        .await?;
    read.set_consistency(consistency);
    let key = i64::from(process) % REGISTER_KEYS;
    let mut next: i64 = 0;
    while history.now() < until {
        let writing = rand::thread_rng().gen_bool(0.5);
        if writing {
            // Unique values: process and counter.
            let value = i64::from(process) * 1_000_000 + next;
            next += 1;
            let invoke =
                history.record(op(process, Kind::Invoke, "write", value.into(), Some(key)));
            let result = session.execute_unpaged(&write, (key, value)).await;
            complete_write(&history, invoke, result);
        } else {
            let invoke = history.record(op(
                process,
                Kind::Invoke,
                "read",
                serde_json::Value::Null,
                Some(key),
            ));
            let result = async {
                let rows = session
                    .execute_unpaged(&read, (key,))
                    .await?
                    .into_rows_result()?;
                let value = rows.maybe_first_row::<(Option<i64>,)>()?.and_then(|(v,)| v);
                Ok::<_, anyhow::Error>(value)
            }
            .await;
            match result {
                Ok(value) => {
                    history.record(Op {
                        kind: Kind::Ok,
                        value: value.map_or(serde_json::Value::Null, Into::into),
                        ..invoke
                    });
                }
                Err(e) => {
                    let kind = match e.downcast_ref::<ExecutionError>() {
                        Some(error) => outcome(error, true),
                        None => Kind::Fail,
                    };
                    history.record(Op {
                        kind,
                        error: Some(e.to_string()),
                        ..invoke
                    });
                }
            }
        }
    }
    Ok(())
}

/// What the register checker found, per key.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterVerdict {
    pub valid: bool,
    pub keys: Vec<KeyVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyVerdict {
    pub key: i64,
    pub operations: usize,
    pub linearizable: bool,
    /// For a violation: the operation (a line of the history) no order
    /// could place, and how deep the search got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<String>,
}

/// Checks every key's history for linearizability.
pub fn check_register(ops: &[Op]) -> RegisterVerdict {
    let mut keys = Vec::new();
    for key in 0..REGISTER_KEYS {
        let mut timed: Vec<(Timed, Op)> = Vec::new();
        for (invoke, completion) in pairs(ops) {
            if invoke.key != Some(key) {
                continue;
            }
            let kind = completion.as_ref().map_or(Kind::Info, |c| c.kind);
            if kind == Kind::Fail {
                continue;
            }
            let returned = (kind == Kind::Ok).then(|| completion.as_ref().map_or(0, |c| c.time));
            let op = match invoke.f {
                "write" => RegisterOp::Write(invoke.value.as_i64().unwrap_or_default()),
                _ => RegisterOp::Read(completion.as_ref().and_then(|c| c.value.as_i64())),
            };
            timed.push((
                Timed {
                    op,
                    invoked: invoke.time,
                    returned,
                },
                invoke,
            ));
        }
        let history: Vec<Timed> = timed.iter().map(|(t, _)| t.clone()).collect();
        let result = linear::check(&history);
        keys.push(KeyVerdict {
            key,
            operations: history.len(),
            linearizable: result.is_ok(),
            anomaly: result.err().map(|v| {
                let stuck = timed
                    .get(v.stuck_at)
                    .map(|(t, o)| format!("{:?} by process {} at {} ns", t.op, o.process, o.time));
                format!(
                    "no linearization places {} (the search linearized at most {} operations)",
                    stuck.unwrap_or_else(|| "the remaining operations".into()),
                    v.deepest
                )
            }),
        });
    }
    RegisterVerdict {
        valid: keys.iter().all(|k| k.linearizable),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(process: u32, kind: Kind, f: &'static str, value: serde_json::Value, time: u64) -> Op {
        Op {
            process,
            kind,
            f,
            value,
            time,
            key: Some(0),
            error: None,
        }
    }

    #[test]
    fn the_set_checker_names_lost_unexpected_and_recovered_elements() {
        let ops = vec![
            at(0, Kind::Invoke, "add", 1.into(), 1),
            at(0, Kind::Ok, "add", 1.into(), 2),
            at(0, Kind::Invoke, "add", 2.into(), 3),
            at(0, Kind::Ok, "add", 2.into(), 4),
            at(1, Kind::Invoke, "add", 3.into(), 1),
            at(1, Kind::Info, "add", 3.into(), 9),
            at(1, Kind::Invoke, "add", 4.into(), 10),
            at(1, Kind::Fail, "add", 4.into(), 11),
        ];
        let read: BTreeSet<i64> = [1, 3, 99].into_iter().collect();
        let verdict = check_set(&ops, &read);
        assert!(!verdict.valid);
        assert_eq!(verdict.lost, vec![2]);
        assert_eq!(verdict.unexpected, vec![99]);
        assert_eq!(verdict.recovered, 1);
        assert_eq!(verdict.indeterminate, 0);
        let fine: BTreeSet<i64> = [1, 2].into_iter().collect();
        assert!(check_set(&ops, &fine).valid);
    }

    #[test]
    fn the_register_checker_finds_a_stale_read() {
        let good = vec![
            at(0, Kind::Invoke, "write", 5.into(), 1),
            at(0, Kind::Ok, "write", 5.into(), 2),
            at(1, Kind::Invoke, "read", serde_json::Value::Null, 3),
            at(1, Kind::Ok, "read", 5.into(), 4),
        ];
        assert!(check_register(&good).valid);
        let mut stale = good.clone();
        stale.push(at(0, Kind::Invoke, "write", 6.into(), 5));
        stale.push(at(0, Kind::Ok, "write", 6.into(), 6));
        stale.push(at(1, Kind::Invoke, "read", serde_json::Value::Null, 7));
        stale.push(at(1, Kind::Ok, "read", 5.into(), 8));
        let verdict = check_register(&stale);
        assert!(!verdict.valid);
        assert!(verdict.keys[0].anomaly.is_some());
    }
}

//! A node over a temporary engine for the executor's in-process tests:
//! statements run as one client's session would run them, and rows come
//! back rendered as CQL's JSON (`1`, `"a"`, `[1, 2]`, `null`), so a test
//! reads like a cqlsh session.

use std::error::Error;
use std::sync::Arc;

use bytes::Bytes;

use crate::node::{Node, NodeInfo, Session};
use crate::protocol::error::CqlError;
use crate::protocol::messages::QueryParameters;
use crate::results::{ResultBody, Rows};

pub(super) type TestResult = Result<(), Box<dyn Error>>;

pub(super) struct TestNode {
    node: Arc<Node>,
    session: Session,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// A fresh node with keyspace `ks` (RF 1) as the session's keyspace.
    pub(super) fn new() -> Result<TestNode, Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let engine = storage_lsm::Engine::open(storage_lsm::EngineConfig::new(
            dir.path().join("data"),
            dir.path().join("commitlog"),
        ))?;
        let coordinator = replication::Coordinator::new(Arc::new(engine));
        let node = Node::open(
            NodeInfo::for_tests(),
            coordinator,
            crate::auth::Authenticator::AllowAll,
            64 * 1024 * 1024,
        )?;
        let mut test = TestNode {
            node,
            session: Session::default(),
            _dir: dir,
        };
        test.run(
            "CREATE KEYSPACE ks WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1}",
        )?;
        test.run("USE ks")?;
        Ok(test)
    }

    /// Runs one statement at consistency ONE.
    pub(super) fn run(&mut self, cql: &str) -> Result<ResultBody, CqlError> {
        self.run_with(cql, QueryParameters::default())
    }

    /// Runs one statement with these parameters (consistency ONE unless
    /// they say otherwise).
    pub(super) fn run_with(
        &mut self,
        cql: &str,
        mut params: QueryParameters,
    ) -> Result<ResultBody, CqlError> {
        if params.consistency == 0 {
            params.consistency = 1;
        }
        super::execute(&self.node, &mut self.session, cql, &params)
    }

    /// Runs statements in order, stopping at the first error.
    pub(super) fn run_all(&mut self, statements: &[&str]) -> Result<(), CqlError> {
        for cql in statements {
            self.run(cql)?;
        }
        Ok(())
    }

    /// One page of a SELECT.
    pub(super) fn page(
        &mut self,
        cql: &str,
        page_size: i32,
        paging_state: Option<Bytes>,
    ) -> Result<Rows, Box<dyn Error>> {
        let params = QueryParameters {
            page_size: Some(page_size),
            paging_state,
            ..QueryParameters::default()
        };
        match self.run_with(cql, params)? {
            ResultBody::Rows(rows) => Ok(rows),
            other => Err(format!("{cql}: expected rows, got {other:?}").into()),
        }
    }

    /// A SELECT's rows, each value rendered as CQL's JSON.
    pub(super) fn rows(&mut self, cql: &str) -> Result<Vec<Vec<String>>, Box<dyn Error>> {
        match self.run(cql)? {
            ResultBody::Rows(rows) => Ok(render(&rows)),
            other => Err(format!("{cql}: expected rows, got {other:?}").into()),
        }
    }

    /// The error a statement must fail with.
    pub(super) fn error(&mut self, cql: &str) -> Result<CqlError, Box<dyn Error>> {
        match self.run(cql) {
            Ok(result) => Err(format!("{cql}: expected an error, got {result:?}").into()),
            Err(error) => Ok(error),
        }
    }
}

/// Rows rendered as CQL's JSON, `null` for an absent value.
pub(super) fn render(rows: &Rows) -> Vec<Vec<String>> {
    rows.rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&rows.columns)
                .map(|(value, column)| {
                    value
                        .as_ref()
                        .map_or_else(|| "null".into(), |v| crate::json::render(&column.ty, v))
                })
                .collect()
        })
        .collect()
}

/// Rows written as a test expects them: `rows(&[&["1", "\"a\""]])`.
pub(super) fn rows(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|row| row.iter().map(|v| (*v).to_owned()).collect())
        .collect()
}

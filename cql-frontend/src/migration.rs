//! Schema agreement between nodes (Cassandra's migration manager, classic
//! model): a DDL is applied by its coordinator and pushed to every live
//! node; every node gossips its schema version; a node that sees a live
//! peer with another version pulls that peer's schema and merges it.
//!
//! The unit of exchange is the schema table's partitions, unfiltered: its
//! cells and tombstones reconcile last-write-wins like any data, so pushes
//! and pulls can arrive in any order, twice, or from several nodes and
//! still converge. After a merge the catalog is rebuilt from the schema
//! table, engine tables are created or dropped to match, and the node's
//! own clients are told what changed.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replication::internode::{encode_mutation, SchemaStore};
use storage_lsm::model::Mutation;
use storage_lsm::TokenRange;

use crate::node::{ClientEvent, Node};
use crate::protocol::error::CqlError;
use crate::results::SchemaChange;
use crate::schema::{Catalog, SCHEMA_TABLE};

/// How long a DDL waits for live peers to take its schema.
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a node compares its schema version with its peers'.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Every partition of the schema table, unfiltered.
fn schema_mutations(node: &Node) -> Result<Vec<Mutation>, CqlError> {
    node.coordinator
        .engine()
        .scan_data(SCHEMA_TABLE, &TokenRange::all(), usize::MAX)
        .map_err(|e| CqlError::Server(format!("cannot read the schema: {e}")))
}

/// Sends this node's schema to every live peer and waits (a bounded time)
/// for them to take it. Peers that miss it pull it later.
pub fn announce(node: &Node) {
    let Some(remote) = node.coordinator.remote() else {
        return;
    };
    let ring = node.coordinator.ring();
    let peers: Vec<_> = ring
        .endpoints()
        .iter()
        .filter(|e| !e.is_local && e.up)
        .map(|e| e.address)
        .collect();
    if peers.is_empty() {
        return;
    }
    let mutations = match schema_mutations(node) {
        Ok(mutations) => mutations.iter().map(encode_mutation).collect::<Vec<_>>(),
        Err(error) => {
            tracing::warn!(%error, "cannot announce the schema change");
            return;
        }
    };
    let (tx, rx) = mpsc::channel();
    for peer in &peers {
        let (remote_peers, tx, mutations, peer) =
            (remote.peers.clone(), tx.clone(), mutations.clone(), *peer);
        remote.runtime.spawn(async move {
            let result = remote_peers
                .push_schema(peer, mutations, PUSH_TIMEOUT)
                .await;
            let _ = tx.send((peer, result));
        });
    }
    drop(tx);
    let deadline = Instant::now() + PUSH_TIMEOUT;
    for _ in 0..peers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, Ok(()))) => {}
            Ok((peer, Err(error))) => {
                tracing::warn!(%peer, %error, "peer did not take the schema change; it will pull it")
            }
            Err(_) => break,
        }
    }
}

/// Merges schema partitions from another node, then rebuilds the catalog.
pub fn merge(node: &Node, mutations: Vec<Mutation>) -> Result<(), CqlError> {
    let engine = node.coordinator.engine();
    for mutation in mutations {
        if mutation.table != SCHEMA_TABLE {
            return Err(CqlError::Server(format!(
                "a schema message carried a write to table {:?}",
                mutation.table
            )));
        }
        engine
            .apply(mutation)
            .map_err(|e| CqlError::Server(format!("cannot store the merged schema: {e}")))?;
    }
    engine
        .flush(SCHEMA_TABLE)
        .map_err(|e| CqlError::Server(format!("cannot persist the merged schema: {e}")))?;
    reload(node)
}

/// Rebuilds the catalog from the schema table, brings the engine's tables
/// in line with it, and tells this node's clients what changed.
fn reload(node: &Node) -> Result<(), CqlError> {
    let engine = node.coordinator.engine();
    let mut catalog = node.catalog.write();
    let fresh = Catalog::load(engine)?;
    if fresh.version == catalog.version {
        return Ok(());
    }
    let mut events = Vec::new();
    // Types first: tables created in the same change may use them.
    for (key, udt) in &fresh.types {
        match catalog.types.get(key) {
            None => events.push(change("CREATED", "TYPE", &key.0, Some(&key.1))),
            Some(old) if old != udt => events.push(change("UPDATED", "TYPE", &key.0, Some(&key.1))),
            Some(_) => {}
        }
    }
    for (key, table) in &fresh.tables {
        match catalog.tables.get(key) {
            None => {
                if !engine.has_table(table.table_id()) {
                    engine
                        .create_table(table.table_id(), table.engine_options())
                        .map_err(|e| {
                            CqlError::Server(format!(
                                "cannot create table {}.{}: {e}",
                                key.0, key.1
                            ))
                        })?;
                }
                events.push(change("CREATED", "TABLE", &key.0, Some(&key.1)));
            }
            Some(old) if old.create_cql != table.create_cql => {
                if old.table_id() == table.table_id() {
                    engine
                        .alter_table(table.table_id(), table.engine_options())
                        .map_err(|e| {
                            CqlError::Server(format!("cannot alter table {}.{}: {e}", key.0, key.1))
                        })?;
                }
                events.push(change("UPDATED", "TABLE", &key.0, Some(&key.1)));
            }
            Some(_) => {}
        }
    }
    let live_ids: BTreeSet<_> = fresh.tables.values().map(|t| t.table_id()).collect();
    for (key, old) in &catalog.tables {
        if !fresh.tables.contains_key(key) {
            if !live_ids.contains(&old.table_id()) {
                let _ = engine.drop_table(old.table_id());
            }
            events.push(change("DROPPED", "TABLE", &key.0, Some(&key.1)));
        }
    }
    for key in catalog.types.keys() {
        if !fresh.types.contains_key(key) {
            events.push(change("DROPPED", "TYPE", &key.0, Some(&key.1)));
        }
    }
    for (name, keyspace) in &fresh.keyspaces {
        match catalog.keyspaces.get(name) {
            None => events.insert(0, change("CREATED", "KEYSPACE", name, None)),
            Some(old) if old != keyspace => events.push(change("UPDATED", "KEYSPACE", name, None)),
            Some(_) => {}
        }
    }
    for name in catalog.keyspaces.keys() {
        if !fresh.keyspaces.contains_key(name) {
            events.push(change("DROPPED", "KEYSPACE", name, None));
        }
    }
    *catalog = fresh;
    drop(catalog);
    tracing::info!(changes = events.len(), "schema merged from a peer");
    for event in events {
        let _ = node.events.send(ClientEvent::SchemaChange(event));
    }
    Ok(())
}

fn change(
    kind: &'static str,
    target: &'static str,
    keyspace: &str,
    name: Option<&str>,
) -> SchemaChange {
    SchemaChange {
        change: kind,
        target,
        keyspace: keyspace.into(),
        name: name.map(str::to_owned),
    }
}

impl SchemaStore for Node {
    fn schema_mutations(&self) -> Result<Vec<Mutation>, String> {
        schema_mutations(self).map_err(|e| e.to_string())
    }

    fn merge_schema(&self, mutations: Vec<Mutation>) -> Result<(), String> {
        merge(self, mutations).map_err(|e| e.to_string())
    }
}

/// Pulls the schema from a live peer whose gossiped version differs from
/// this node's, once per check, for as long as the node runs.
pub async fn keep_in_agreement(node: Arc<Node>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(remote) = node.coordinator.remote().cloned() else {
        return;
    };
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mine = node.catalog.read().version;
        let ring = node.coordinator.ring();
        let Some(peer) = ring
            .endpoints()
            .iter()
            .find(|e| !e.is_local && e.up && e.schema.is_some_and(|v| v != mine))
            .map(|e| e.address)
        else {
            continue;
        };
        match remote.peers.pull_schema(peer, PUSH_TIMEOUT).await {
            Ok(mutations) => {
                let merging = node.clone();
                let merged = tokio::task::spawn_blocking(move || merge(&merging, mutations)).await;
                match merged {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%peer, %error, "cannot merge a peer's schema"),
                    Err(error) => tracing::warn!(%peer, %error, "schema merge task failed"),
                }
            }
            Err(error) => tracing::debug!(%peer, %error, "schema pull failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{NodeInfo, Session};
    use crate::protocol::messages::QueryParameters;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn node(dir: &std::path::Path) -> Result<Arc<Node>, Box<dyn std::error::Error>> {
        let engine = storage_lsm::Engine::open(storage_lsm::EngineConfig::new(
            dir.join("data"),
            dir.join("commitlog"),
        ))?;
        let coordinator = replication::Coordinator::new(Arc::new(engine));
        Ok(Node::open(
            NodeInfo::for_tests(),
            coordinator,
            crate::auth::Authenticator::AllowAll,
            64 * 1024 * 1024,
        )?)
    }

    fn run(node: &Node, cql: &str) -> TestResult {
        let params = QueryParameters {
            consistency: 1,
            ..QueryParameters::default()
        };
        crate::executor::execute(node, &mut Session::default(), cql, &params)?;
        Ok(())
    }

    #[test]
    fn a_schema_has_one_version_however_it_was_built() -> TestResult {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let (first, second) = (node(a.path())?, node(b.path())?);
        for cql in [
            "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
            "CREATE TYPE ks.address (street text, zip int)",
            "CREATE TABLE ks.t (k int, c text, v frozen<address>, PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC)",
            "ALTER TABLE ks.t ADD w int",
            "CREATE TABLE ks.gone (k int PRIMARY KEY)",
            "DROP TABLE ks.gone",
        ] {
            run(&first, cql)?;
        }
        let built = first.catalog.read().version;
        let loaded = Catalog::load(first.coordinator.engine())?.version;
        assert_eq!(
            built, loaded,
            "the version a DDL leaves equals the one a restart computes"
        );

        merge(&second, schema_mutations(&first)?)?;
        assert_eq!(
            second.catalog.read().version,
            built,
            "a merged schema has the same version"
        );
        assert!(second.catalog.read().table("ks", "t").is_some());
        assert!(second.catalog.read().table("ks", "gone").is_none());
        let id = second
            .catalog
            .read()
            .table("ks", "t")
            .map(|t| t.table_id())
            .ok_or("no table")?;
        assert!(
            second.coordinator.engine().has_table(id),
            "the merge created the engine table"
        );

        // A drop merged later removes the keyspace and its tables.
        run(&first, "DROP KEYSPACE ks")?;
        merge(&second, schema_mutations(&first)?)?;
        assert!(second.catalog.read().keyspace("ks").is_none());
        assert!(!second.coordinator.engine().has_table(id));
        assert_eq!(second.catalog.read().version, first.catalog.read().version);
        Ok(())
    }
}
